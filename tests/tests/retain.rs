//! Retained messages (3.1.1 §3.3.1.3, 5.0 §3.3.1.3).

use tern_blackbox::*;

#[test]
fn mqtt_3_3_1_6_retained_message_sent_on_subscribe_with_retain_flag() {
    let b = Broker::start();
    let mut p = RawClient::v311(b.addr(), &unique_id("p"));
    p.publish("ret/a", b"kept", 1, true);
    let mut s = RawClient::v311(b.addr(), &unique_id("s"));
    s.subscribe("ret/#", 1);
    let m = s.expect_publish();
    assert_eq!(m.topic, "ret/a");
    assert_eq!(m.payload, b"kept");
    assert!(m.retain, "[MQTT-3.3.1-8] RETAIN=1 on new-subscription delivery");
    assert_eq!(m.qos, 1);
}

#[test]
fn mqtt_3_3_1_9_live_delivery_has_retain_clear() {
    let b = Broker::start();
    let mut s = RawClient::v311(b.addr(), &unique_id("s"));
    s.subscribe("live/a", 0);
    let mut p = RawClient::v311(b.addr(), &unique_id("p"));
    p.publish("live/a", b"x", 0, true);
    let m = s.expect_publish();
    assert!(!m.retain, "[MQTT-3.3.1-9] 3.1.1 clears RETAIN on live delivery");
}

#[test]
fn mqtt_3_3_1_7_new_retained_replaces_old() {
    let b = Broker::start();
    let mut p = RawClient::v311(b.addr(), &unique_id("p"));
    p.publish("rep/a", b"one", 0, true);
    p.publish("rep/a", b"two", 0, true);
    p.sync();
    let mut s = RawClient::v311(b.addr(), &unique_id("s"));
    s.subscribe("rep/a", 0);
    let m = s.expect_publish();
    assert_eq!(m.payload, b"two");
    assert!(s.sync().is_empty());
}

#[test]
fn mqtt_3_3_1_10_zero_length_retained_clears() {
    let b = Broker::start();
    let mut p = RawClient::v311(b.addr(), &unique_id("p"));
    p.publish("clr/a", b"x", 1, true);
    p.publish("clr/a", b"", 1, true);
    let mut s = RawClient::v311(b.addr(), &unique_id("s"));
    s.subscribe("clr/a", 0);
    s.subscribe("sentinel/end", 0);
    p.publish("sentinel/end", b"", 0, false);
    let got = s.collect_until_topic("sentinel/end");
    assert!(got.is_empty(), "[MQTT-3.3.1-11] nothing retained: {got:?}");
}

#[test]
fn mqtt_3_3_1_12_zero_length_retained_is_delivered_live() {
    let b = Broker::start();
    let mut s = RawClient::v311(b.addr(), &unique_id("s"));
    s.subscribe("zl/a", 0);
    let mut p = RawClient::v311(b.addr(), &unique_id("p"));
    p.publish("zl/a", b"", 0, true);
    let m = s.expect_publish();
    assert!(m.payload.is_empty());
}

#[test]
fn retained_qos0_not_stored_replaced_semantics_qos0() {
    // [MQTT-3.3.1-7] a retained QoS 0 message replaces any retained one.
    let b = Broker::start();
    let mut p = RawClient::v311(b.addr(), &unique_id("p"));
    p.publish("q0/a", b"one", 1, true);
    p.publish("q0/a", b"zero", 0, true);
    p.sync();
    let mut s = RawClient::v311(b.addr(), &unique_id("s"));
    s.subscribe("q0/a", 1);
    let m = s.expect_publish();
    assert_eq!(m.payload, b"zero");
    assert_eq!(m.qos, 0);
}

#[test]
fn retained_wildcard_subscription_gets_all_matching() {
    let b = Broker::start();
    let mut p = RawClient::v311(b.addr(), &unique_id("p"));
    for t in ["rw/a", "rw/b", "rw/c/d", "other/x"] {
        p.publish(t, t.as_bytes(), 0, true);
    }
    p.sync();
    let mut s = RawClient::v311(b.addr(), &unique_id("s"));
    s.subscribe("rw/+", 0);
    let mut topics = vec![s.expect_publish().topic, s.expect_publish().topic];
    topics.sort();
    assert_eq!(topics, ["rw/a", "rw/b"]);
    assert!(s.sync().is_empty());
}

#[test]
fn v5_retain_available_false_rejects_retained_publish() {
    if skip_unless_tern("retain_available = false behaviour") {
        return;
    }
    let b = Broker::start_with("[limits]\nretain_available = false\n");
    let (mut c, ack) = RawClient::handshake(b.addr(), &Connect::v5(&unique_id("ra")));
    assert_eq!(prop(&ack.props, RETAIN_AVAILABLE), Some(&Prop::Byte(0)));
    c.send(&publish5("ra/t", b"x", 0, true, 0));
    // [MQTT-3.3.1-? / 3.2.2-14] DISCONNECT 0x9A Retain not supported.
    c.expect_disconnect(0x9A, true);
}

/// A PUBLISH with RETAIN 0 neither stores nor replaces nor clears the
/// retained message of its topic [MQTT-3.3.1-8] (3.1.1: [MQTT-3.3.1-12]).
#[test]
fn mqtt_3_3_1_8_retain_0_leaves_the_retained_message_alone() {
    let b = Broker::start();
    let mut p = RawClient::v5(b.addr(), &unique_id("p"));
    p.publish("keep/t", b"kept", 1, true);
    p.publish("keep/t", b"live", 1, false);
    p.publish("keep/t", b"", 1, false);
    let mut s = RawClient::v5(b.addr(), &unique_id("s"));
    s.subscribe("keep/t", 1);
    let m = s.expect_publish();
    assert_eq!((m.payload.as_slice(), m.retain), (&b"kept"[..], true));
}
