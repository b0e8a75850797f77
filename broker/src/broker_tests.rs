//! Session lifecycle without sockets, on tokio's paused clock: expiry and
//! will delays are checked by advancing time, never by sleeping.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;

use super::*;
use crate::codec::QoS;
use crate::router::Subscription;

fn broker() -> Arc<Broker> {
    Arc::new(Broker::new(Limits::default(), crate::store::Store::default()))
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
        stored: Default::default(),
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
    b.attach(&ByteString::from(id), clean, Protocol::V5, expiry, None)
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
    let session = old.session.clone();
    let b2 = b.clone();
    let newer = tokio::spawn(async move { attach(&b2, "c1", false, 60).await });
    while session.state.lock().kicked.is_none() {
        tokio::task::yield_now().await;
    }
    assert_eq!(session.state.lock().kicked, Some(ReasonCode::SESSION_TAKEN_OVER));
    b.detach(old, None, 60);
    // The new connection's attach starts it unkicked.
    let newer = newer.await.expect("join");
    assert!(newer.session_present);
    assert_eq!(session.state.lock().kicked, None);
    b.detach(newer, None, 60);
}

#[tokio::test(start_paused = true)]
async fn keep_alive_sweep_kicks_only_expired_connections() {
    let b = broker();
    let silent = attach(&b, "silent", true, 0).await;
    let chatty = attach(&b, "chatty", true, 0).await;
    let none = attach(&b, "none", true, 0).await;
    let now = b.clock_ds();
    silent
        .session
        .keep_alive_deadline
        .store(now + 10, std::sync::atomic::Ordering::Relaxed);
    chatty
        .session
        .keep_alive_deadline
        .store(now + 1000, std::sync::atomic::Ordering::Relaxed);
    tokio::time::advance(std::time::Duration::from_secs(2)).await;
    b.sweep_keep_alive();
    assert_eq!(silent.session.state.lock().kicked, Some(ReasonCode::KEEP_ALIVE_TIMEOUT));
    assert_eq!(chatty.session.state.lock().kicked, None);
    assert_eq!(none.session.state.lock().kicked, None);
}

#[tokio::test(start_paused = true)]
async fn takeover_after_clean_start_gets_a_fresh_session() {
    let b = broker();
    let old = attach(&b, "c1", false, 60).await;
    let b2 = b.clone();
    let newer = tokio::spawn(async move { attach(&b2, "c1", true, 60).await });
    while old.session.state.lock().kicked.is_none() {
        tokio::task::yield_now().await;
    }
    b.detach(old, None, 60);
    let newer = newer.await.expect("join");
    assert!(!newer.session_present);
    // The old session's permit was given back and the new one is held.
    assert!(newer.session.owner.try_acquire().is_err());
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
