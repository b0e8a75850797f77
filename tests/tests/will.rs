//! Will messages (3.1.1 §3.1.2.5, 5.0 §3.1.2.5 / §3.1.3.2).

use std::time::Duration;

use tern_blackbox::*;

#[test]
fn mqtt_3_1_2_8_will_published_on_abrupt_close() {
    let b = Broker::start();
    let mut s = RawClient::v311(b.addr(), &unique_id("s"));
    s.subscribe("will/a", 1);
    let (w, ack) = RawClient::handshake(
        b.addr(),
        &Connect::v311(&unique_id("w")).will(Will::new("will/a", b"gone", 1, false)),
    );
    assert_eq!(ack.code, 0);
    w.drop_abruptly();
    let m = s.expect_publish();
    assert_eq!(m.topic, "will/a");
    assert_eq!(m.payload, b"gone");
    assert_eq!(m.qos, 1);
}

#[test]
fn mqtt_3_1_2_10_will_removed_on_clean_disconnect() {
    let b = Broker::start();
    let mut s = RawClient::v311(b.addr(), &unique_id("s"));
    s.subscribe("will/b", 0);
    let (w, _) = RawClient::handshake(
        b.addr(),
        &Connect::v311(&unique_id("w")).will(Will::new("will/b", b"gone", 0, false)),
    );
    w.disconnect();
    s.expect_silence(Duration::from_millis(500));
}

#[test]
fn will_published_on_keep_alive_timeout() {
    let b = Broker::start();
    let mut s = RawClient::v311(b.addr(), &unique_id("s"));
    s.subscribe("will/ka", 0);
    let (_w, _) = RawClient::handshake(
        b.addr(),
        &Connect::v311(&unique_id("w"))
            .keep_alive(1)
            .will(Will::new("will/ka", b"timeout", 0, false)),
    );
    // Keep the socket open but silent: after 1.5 s the broker must drop it and publish the will.
    let m = s
        .try_read_packet(Duration::from_secs(10))
        .expect("will within 10 s")
        .publish(false);
    assert_eq!(m.payload, b"timeout");
}

#[test]
fn mqtt_3_1_2_17_will_retain_stored() {
    let b = Broker::start();
    let (w, _) = RawClient::handshake(
        b.addr(),
        &Connect::v311(&unique_id("w")).will(Will::new("will/r", b"last", 0, true)),
    );
    w.drop_abruptly();
    let mut s = RawClient::v311(b.addr(), &unique_id("s"));
    assert!(wait_until(TIMEOUT, || {
        s.subscribe("will/r", 0);
        match s.try_read_packet(Duration::from_millis(300)) {
            Ok(p) => {
                // A subscription made before the will went out gets the live
                // copy (RETAIN 0); the next SUBSCRIBE then gets the stored one.
                let m = p.publish(false);
                assert_eq!(m.payload, b"last");
                m.retain
            }
            Err(_) => false,
        }
    }));
}

#[test]
fn v5_disconnect_with_will_message_0x04_publishes_will() {
    let b = Broker::start();
    let mut s = RawClient::v5(b.addr(), &unique_id("s"));
    s.subscribe("will/5", 0);
    let (mut w, _) = RawClient::handshake(
        b.addr(),
        &Connect::v5(&unique_id("w")).will(Will::new("will/5", b"asked", 0, false)),
    );
    w.send(&disconnect(Some(0x04)));
    let m = s.expect_publish();
    assert_eq!(m.payload, b"asked");
}

#[test]
fn v5_will_properties_forwarded() {
    let b = Broker::start();
    let mut s = RawClient::v5(b.addr(), &unique_id("s"));
    s.subscribe("will/p", 0);
    let mut will = Will::new("will/p", b"{}", 0, false);
    will.props = Props::new().str(CONTENT_TYPE, "application/json").user("who", "me");
    let (w, _) = RawClient::handshake(b.addr(), &Connect::v5(&unique_id("w")).will(will));
    w.drop_abruptly();
    let m = s.expect_publish();
    assert_eq!(
        prop(&m.props, CONTENT_TYPE),
        Some(&Prop::Str("application/json".into()))
    );
    assert_eq!(
        prop(&m.props, USER_PROPERTY),
        Some(&Prop::Pair("who".into(), "me".into()))
    );
}

#[test]
fn v5_will_delay_interval_delays_publication() {
    let b = Broker::start();
    let mut s = RawClient::v5(b.addr(), &unique_id("s"));
    s.subscribe("will/d", 0);
    let mut will = Will::new("will/d", b"late", 0, false);
    will.props = Props::new().u32(WILL_DELAY_INTERVAL, 2);
    let (w, _) = RawClient::handshake(
        b.addr(),
        &Connect::v5(&unique_id("w"))
            .props(Props::new().u32(SESSION_EXPIRY_INTERVAL, 60))
            .will(will),
    );
    w.drop_abruptly();
    s.expect_silence(Duration::from_millis(1000));
    let m = s.expect_publish();
    assert_eq!(m.payload, b"late");
}

#[test]
fn mqtt_3_1_4_3_will_delay_reconnect_cancels_will() {
    let b = Broker::start();
    let mut s = RawClient::v5(b.addr(), &unique_id("s"));
    s.subscribe("will/c", 0);
    let id = unique_id("w");
    let mut will = Will::new("will/c", b"never", 0, false);
    will.props = Props::new().u32(WILL_DELAY_INTERVAL, 2);
    let cp = Connect::v5(&id)
        .clean(false)
        .props(Props::new().u32(SESSION_EXPIRY_INTERVAL, 60))
        .will(will);
    let (w, _) = RawClient::handshake(b.addr(), &cp);
    w.drop_abruptly();
    let (_w2, ack) = RawClient::handshake(
        b.addr(),
        &Connect::v5(&id)
            .clean(false)
            .props(Props::new().u32(SESSION_EXPIRY_INTERVAL, 60)),
    );
    assert!(ack.session_present);
    s.expect_silence(Duration::from_millis(3000));
}

/// Only 0x00 discards the will [MQTT-3.14.4-3]; a client that ends with an
/// error code still has it published [MQTT-3.1.2-8].
#[test]
fn mqtt_3_14_4_3_v5_disconnect_with_an_error_code_keeps_the_will() {
    if skip_unless_tern("Mosquitto 2.0 discards the will on any DISCONNECT but 0x04") {
        return;
    }
    let b = Broker::start();
    let mut s = RawClient::v5(b.addr(), &unique_id("s"));
    s.subscribe("will/err", 0);
    let (mut w, _) = RawClient::handshake(
        b.addr(),
        &Connect::v5(&unique_id("w")).will(Will::new("will/err", b"failed", 0, false)),
    );
    // 0x80: unspecified error.
    w.send(&disconnect(Some(0x80)));
    assert_eq!(s.expect_publish().payload, b"failed");
}

/// Will Retain 0: the will is published as a non-retained message
/// [MQTT-3.1.2-14] (3.1.1: [MQTT-3.1.2-16]): a later subscriber gets nothing.
#[test]
fn mqtt_3_1_2_14_will_retain_0_is_not_retained() {
    let b = Broker::start();
    let mut s = RawClient::v5(b.addr(), &unique_id("s"));
    s.subscribe("will/nr", 0);
    let (w, _) = RawClient::handshake(
        b.addr(),
        &Connect::v5(&unique_id("w")).will(Will::new("will/nr", b"gone", 0, false)),
    );
    w.drop_abruptly();
    let m = s.expect_publish();
    assert!(!m.retain);
    let mut late = RawClient::v5(b.addr(), &unique_id("late"));
    late.subscribe("will/nr", 0);
    late.expect_silence(Duration::from_millis(300));
}
