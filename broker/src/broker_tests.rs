//! Session lifecycle without sockets, on tokio's paused clock: expiry and
//! will delays are checked by advancing time, never by sleeping.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;

use super::*;
use crate::codec::QoS;
use crate::router::Subscription;

fn broker() -> Arc<Broker> {
    Arc::new(Broker::new(Limits::default()))
}

fn msg(topic: &str, qos: QoS, origin: u64) -> Arc<Message> {
    Arc::new(Message {
        topic: topic.into(),
        payload: Bytes::from_static(b"x"),
        qos,
        retain: false,
        properties: None,
        expires_at: None,
        origin,
    })
}

fn sub(qos: QoS) -> Subscription {
    Subscription {
        qos,
        no_local: false,
        retain_as_published: false,
        retain_handling: 0,
        id: None,
    }
}

async fn attach(b: &Arc<Broker>, id: &str, clean: bool, expiry: u32) -> Attached {
    b.attach(&ByteString::from(id), clean, Protocol::V5, expiry)
        .await
        .expect("attach")
}

fn subscribe(b: &Broker, a: &Attached, filter: &str, qos: QoS) {
    b.router.subscribe(&a.session, filter, None, sub(qos));
    a.session.state.lock().subscriptions.insert(filter.into(), sub(qos));
}

fn queued(a: &Arc<Session>) -> usize {
    a.state.lock().queue.len()
}

#[tokio::test(start_paused = true)]
async fn persistent_session_queues_qos1_while_offline_and_resumes() {
    let b = broker();
    let a = attach(&b, "c1", true, 60).await;
    subscribe(&b, &a, "t/#", QoS::AtLeastOnce);
    let session = a.session.clone();
    b.detach(a, None, 60);
    b.publish(&msg("t/1", QoS::AtLeastOnce, 0));
    b.publish(&msg("t/2", QoS::AtMostOnce, 0));
    // QoS 0 is not kept for an offline session; QoS 1 is.
    assert_eq!(queued(&session), 1);
    let again = attach(&b, "c1", false, 60).await;
    assert!(again.session_present);
    assert!(Arc::ptr_eq(&again.session, &session));
}

#[tokio::test(start_paused = true)]
async fn mqtt_3_1_2_4_clean_start_discards_the_session() {
    let b = broker();
    let a = attach(&b, "c1", false, 60).await;
    subscribe(&b, &a, "t", QoS::AtLeastOnce);
    b.detach(a, None, 60);
    let fresh = attach(&b, "c1", true, 60).await;
    assert!(!fresh.session_present);
    assert_eq!(b.publish(&msg("t", QoS::AtLeastOnce, 0)).matched, 0);
}

#[tokio::test(start_paused = true)]
async fn session_expires_after_its_interval() {
    let b = broker();
    let a = attach(&b, "c1", false, 30).await;
    subscribe(&b, &a, "t", QoS::AtLeastOnce);
    b.detach(a, None, 30);
    tokio::time::sleep(Duration::from_secs(29)).await;
    assert!(b.registry.get("c1").is_some());
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert!(b.registry.get("c1").is_none());
    assert_eq!(b.publish(&msg("t", QoS::AtLeastOnce, 0)).matched, 0);
}

#[tokio::test(start_paused = true)]
async fn mqtt_3_1_4_3_takeover_kicks_the_old_connection() {
    let b = broker();
    let old = attach(&b, "c1", false, 60).await;
    let kick = old.kick.clone();
    let session = old.session.clone();
    let b2 = b.clone();
    let newer = tokio::spawn(async move { attach(&b2, "c1", false, 60).await });
    while kick.reason().is_none() {
        session.wake.notified().await;
    }
    assert_eq!(kick.reason(), Some(ReasonCode::SESSION_TAKEN_OVER));
    b.detach(old, None, 60);
    let newer = newer.await.expect("join");
    assert!(newer.session_present);
}

#[tokio::test(start_paused = true)]
async fn mqtt_3_1_3_9_delayed_will_is_cancelled_by_reconnect() {
    let b = broker();
    let watcher = attach(&b, "watcher", true, 60).await;
    subscribe(&b, &watcher, "will", QoS::AtLeastOnce);
    let a = attach(&b, "c1", false, 60).await;
    b.detach(a, Some((msg("will", QoS::AtLeastOnce, 0), 10)), 60);
    tokio::time::sleep(Duration::from_secs(5)).await;
    let _back = attach(&b, "c1", false, 60).await;
    tokio::time::sleep(Duration::from_secs(10)).await;
    assert_eq!(queued(&watcher.session), 0);
}

#[tokio::test(start_paused = true)]
async fn mqtt_3_1_3_9_delayed_will_is_sent_after_the_delay() {
    let b = broker();
    let watcher = attach(&b, "watcher", true, 60).await;
    subscribe(&b, &watcher, "will", QoS::AtLeastOnce);
    let a = attach(&b, "c1", false, 60).await;
    b.detach(a, Some((msg("will", QoS::AtLeastOnce, 0), 10)), 60);
    tokio::time::sleep(Duration::from_secs(9)).await;
    assert_eq!(queued(&watcher.session), 0);
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(queued(&watcher.session), 1);
}

#[tokio::test(start_paused = true)]
async fn will_is_sent_when_the_session_ends_before_the_delay() {
    let b = broker();
    let watcher = attach(&b, "watcher", true, 60).await;
    subscribe(&b, &watcher, "will", QoS::AtLeastOnce);
    let a = attach(&b, "c1", false, 5).await;
    b.detach(a, Some((msg("will", QoS::AtLeastOnce, 0), 100)), 5);
    tokio::time::sleep(Duration::from_secs(6)).await;
    assert_eq!(queued(&watcher.session), 1);
}

#[tokio::test(start_paused = true)]
async fn no_local_skips_the_publishers_own_session() {
    let b = broker();
    let a = attach(&b, "c1", true, 0).await;
    let s = Subscription {
        no_local: true,
        ..sub(QoS::AtMostOnce)
    };
    b.router.subscribe(&a.session, "t", None, s);
    assert_eq!(b.publish(&msg("t", QoS::AtMostOnce, a.session.id)).matched, 0);
    assert_eq!(b.publish(&msg("t", QoS::AtMostOnce, 0)).matched, 1);
}

#[tokio::test(start_paused = true)]
async fn shared_group_round_robins_and_redelivers_when_a_member_ends() {
    let b = broker();
    let m1 = attach(&b, "m1", true, 0).await;
    let m2 = attach(&b, "m2", true, 0).await;
    for m in [&m1, &m2] {
        b.router
            .subscribe(&m.session, "$share/g/t", Some(("g", "t")), sub(QoS::AtLeastOnce));
        m.session
            .state
            .lock()
            .subscriptions
            .insert("$share/g/t".into(), sub(QoS::AtLeastOnce));
    }
    for _ in 0..4 {
        b.publish(&msg("t", QoS::AtLeastOnce, 0));
    }
    assert_eq!(queued(&m1.session), 2);
    assert_eq!(queued(&m2.session), 2);
    let m2_session = m2.session.clone();
    b.detach(m1, None, 0);
    assert_eq!(queued(&m2_session), 4, "m1's unacknowledged messages go to m2");
}
