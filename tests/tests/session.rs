//! Session state: persistent sessions in memory, offline queue, takeover
//! (3.1.1 §3.1.2.4 / §4.1, 5.0 §3.1.2.4 / §3.1.2.11 / §4.1).

use std::time::Duration;

use tern_blackbox::*;

fn persistent_v311(b: &Broker, id: &str) -> (RawClient, Connack) {
    RawClient::handshake(b.addr(), &Connect::v311(id).clean(false))
}

fn persistent_v5(b: &Broker, id: &str, expiry: u32) -> (RawClient, Connack) {
    RawClient::handshake(
        b.addr(),
        &Connect::v5(id)
            .clean(false)
            .props(Props::new().u32(SESSION_EXPIRY_INTERVAL, expiry)),
    )
}

#[test]
fn mqtt_3_2_2_2_clean_session_gives_session_present_0() {
    let b = Broker::start();
    let id = unique_id("c");
    let (c, _) = persistent_v311(&b, &id);
    c.disconnect();
    let (_c, ack) = RawClient::handshake(b.addr(), &Connect::v311(&id));
    assert!(!ack.session_present, "[MQTT-3.2.2-1]");
}

#[test]
fn mqtt_3_2_2_3_resumed_session_present_1() {
    let b = Broker::start();
    let id = unique_id("c");
    let (c, ack) = persistent_v311(&b, &id);
    assert!(!ack.session_present, "[MQTT-3.2.2-3] no session yet");
    c.disconnect();
    let (_c, ack) = persistent_v311(&b, &id);
    assert!(ack.session_present, "[MQTT-3.2.2-2]");
}

#[test]
fn mqtt_3_1_2_4_subscriptions_survive_reconnect() {
    let b = Broker::start();
    let id = unique_id("c");
    let (mut c, _) = persistent_v311(&b, &id);
    c.subscribe("sess/t", 1);
    c.disconnect();
    let (mut c, ack) = persistent_v311(&b, &id);
    assert!(ack.session_present);
    let mut p = RawClient::v311(b.addr(), &unique_id("p"));
    p.publish("sess/t", b"still", 1, false);
    assert_eq!(c.expect_publish().payload, b"still");
}

#[test]
fn mqtt_3_1_2_5_offline_qos1_and_qos2_queued_in_order() {
    let b = Broker::start();
    let id = unique_id("c");
    let (mut c, _) = persistent_v311(&b, &id);
    c.subscribe("off/#", 2);
    c.disconnect();
    let mut p = RawClient::v311(b.addr(), &unique_id("p"));
    p.publish("off/a", b"1", 1, false);
    p.publish("off/a", b"2", 2, false);
    p.publish("off/a", b"q0", 0, false); // MAY be queued
    p.publish("off/a", b"3", 1, false);
    let (mut c, ack) = persistent_v311(&b, &id);
    assert!(ack.session_present);
    c.subscribe("sentinel/end", 0);
    p.publish("sentinel/end", b"", 0, false);
    let got: Vec<Vec<u8>> = c
        .collect_until_topic("sentinel/end")
        .into_iter()
        .map(|m| m.payload)
        .filter(|p| p != b"q0")
        .collect();
    assert_eq!(got, [b"1".to_vec(), b"2".to_vec(), b"3".to_vec()]);
}

#[test]
fn mqtt_3_1_2_6_clean_session_discards_previous_state() {
    let b = Broker::start();
    let id = unique_id("c");
    let (mut c, _) = persistent_v311(&b, &id);
    c.subscribe("cs/t", 1);
    c.disconnect();
    let (mut c, ack) = RawClient::handshake(b.addr(), &Connect::v311(&id));
    assert!(!ack.session_present);
    let mut p = RawClient::v311(b.addr(), &unique_id("p"));
    p.publish("cs/t", b"x", 1, false);
    c.subscribe("sentinel/end", 0);
    p.publish("sentinel/end", b"", 0, false);
    assert!(c.collect_until_topic("sentinel/end").is_empty());
}

#[test]
fn mqtt_3_1_4_3_takeover_closes_existing_connection_v311() {
    let b = Broker::start();
    let id = unique_id("t");
    let (mut old, _) = persistent_v311(&b, &id);
    old.subscribe("take/t", 1);
    let (mut new, ack) = persistent_v311(&b, &id);
    assert!(ack.session_present, "session carried to the new connection");
    old.expect_closed();
    let mut p = RawClient::v311(b.addr(), &unique_id("p"));
    p.publish("take/t", b"x", 1, false);
    assert_eq!(new.expect_publish().payload, b"x");
}

#[test]
fn mqtt_3_1_4_3_takeover_v5_sends_disconnect_0x8e() {
    let b = Broker::start();
    let id = unique_id("t5");
    let (mut old, _) = persistent_v5(&b, &id, 60);
    let (_new, ack) = persistent_v5(&b, &id, 60);
    assert!(ack.session_present);
    // Mosquitto 2.0.11 closes without DISCONNECT 0x8E (known deviation).
    old.expect_disconnect(0x8E, is_tern());
}

#[test]
fn v5_session_expiry_zero_ends_session_on_disconnect() {
    let b = Broker::start();
    let id = unique_id("e0");
    let (c, _) = persistent_v5(&b, &id, 0);
    c.disconnect();
    let (_c, ack) = persistent_v5(&b, &id, 0);
    assert!(!ack.session_present);
}

#[test]
fn v5_session_expires_after_interval() {
    let b = Broker::start();
    let id = unique_id("e1");
    let (mut c, _) = persistent_v5(&b, &id, 1);
    c.subscribe("exp/t", 1);
    c.disconnect();
    std::thread::sleep(Duration::from_millis(2500));
    let (_c, ack) = persistent_v5(&b, &id, 60);
    assert!(!ack.session_present, "session should have expired after 1 s");
}

#[test]
fn v5_disconnect_may_update_session_expiry() {
    let b = Broker::start();
    let id = unique_id("e2");
    let (mut c, _) = persistent_v5(&b, &id, 60);
    // Set the interval to 0 at DISCONNECT: the session ends now.
    c.send(&disconnect_props(0, &Props::new().u32(SESSION_EXPIRY_INTERVAL, 0)));
    let _ = c.closed_within(TIMEOUT);
    let (_c, ack) = persistent_v5(&b, &id, 60);
    assert!(!ack.session_present);
}

#[test]
fn mqtt_3_14_2_22_disconnect_cannot_set_expiry_when_connect_had_zero() {
    let b = Broker::start();
    let id = unique_id("e3");
    let (mut c, _) = persistent_v5(&b, &id, 0);
    c.send(&disconnect_props(0, &Props::new().u32(SESSION_EXPIRY_INTERVAL, 60)));
    // Protocol Error: the server may answer DISCONNECT 0x82 and closes.
    let seen = c.closed_within(TIMEOUT).expect("closed");
    for p in seen {
        assert_eq!(p.disconnect().0, 0x82);
    }
}

#[test]
fn v5_offline_queue_delivered_after_reconnect() {
    let b = Broker::start();
    let id = unique_id("q5");
    let (mut c, _) = persistent_v5(&b, &id, 60);
    c.subscribe("q5/t", 1);
    c.drop_abruptly();
    let mut p = RawClient::v5(b.addr(), &unique_id("p"));
    for i in 0..5u8 {
        p.publish("q5/t", &[i], 1, false);
    }
    let (mut c, connack) = persistent_v5(&b, &id, 60);
    assert!(connack.session_present);
    for i in 0..5u8 {
        let m = c.expect_publish();
        assert_eq!(m.payload, [i]);
        c.send(&ack(PUBACK, m.pid));
    }
}

#[test]
fn offline_queue_is_bounded_by_max_queued_messages() {
    let b = Broker::start_with("[limits]\nmax_queued_messages = 5\n");
    let id = unique_id("bq");
    let (mut c, _) = persistent_v311(&b, &id);
    c.subscribe("bq/t", 1);
    c.disconnect();
    let mut p = RawClient::v311(b.addr(), &unique_id("p"));
    for i in 0..50u8 {
        p.publish("bq/t", &[i], 1, false);
    }
    let (mut c, _) = persistent_v311(&b, &id);
    c.subscribe("sentinel/end", 0);
    p.publish("sentinel/end", b"", 0, false);
    let got = c.collect_until_topic("sentinel/end");
    // At most the queue bound (plus in-flight allowance) survives.
    assert!(!got.is_empty() && got.len() <= 5 + 32, "got {}", got.len());
}
