//! SUBSCRIBE / UNSUBSCRIBE and topic matching (§3.8-3.11, §4.7).

use std::time::Duration;

use tern_blackbox::*;

fn deliveries(b: &Broker, filter: &str, topics: &[&str]) -> Vec<String> {
    let mut s = RawClient::v311(b.addr(), &unique_id("s"));
    assert_eq!(s.subscribe(filter, 0), 0, "filter {filter}");
    s.subscribe("sentinel/end", 0);
    let mut p = RawClient::v311(b.addr(), &unique_id("p"));
    for t in topics {
        p.publish(t, b"x", 0, false);
    }
    p.publish("sentinel/end", b"", 0, false);
    s.collect_until_topic("sentinel/end")
        .into_iter()
        .map(|m| m.topic)
        .collect()
}

#[test]
fn mqtt_3_8_4_1_suback_same_packet_id() {
    let b = Broker::start();
    let mut c = RawClient::v311(b.addr(), &unique_id("c"));
    c.send(&subscribe(0xBEEF, &[("a", 1)], None));
    c.expect(&[0x90, 0x03, 0xBE, 0xEF, 0x01]);
}

#[test]
fn mqtt_3_8_4_6_suback_one_code_per_filter_in_order() {
    let b = Broker::start();
    let mut c = RawClient::v311(b.addr(), &unique_id("c"));
    c.send(&subscribe(3, &[("a", 2), ("b", 0), ("c", 1)], None));
    c.expect(&[0x90, 0x05, 0x00, 0x03, 0x02, 0x00, 0x01]);
}

#[test]
fn mqtt_3_8_4_3_resubscribe_replaces_subscription() {
    let b = Broker::start();
    let mut s = RawClient::v311(b.addr(), &unique_id("s"));
    s.subscribe("r/t", 0);
    s.subscribe("r/t", 1);
    let mut p = RawClient::v311(b.addr(), &unique_id("p"));
    p.publish("r/t", b"x", 1, false);
    let m = s.expect_publish();
    assert_eq!(m.qos, 1);
    s.send(&ack(PUBACK, m.pid));
    assert!(s.sync().is_empty(), "delivered once only");
}

#[test]
fn mqtt_4_7_1_multilevel_wildcard() {
    let b = Broker::start();
    let got = deliveries(&b, "sport/#", &["sport", "sport/tennis", "sport/tennis/x", "other"]);
    assert_eq!(got, ["sport", "sport/tennis", "sport/tennis/x"]);
}

#[test]
fn mqtt_4_7_1_single_level_wildcard() {
    let b = Broker::start();
    let got = deliveries(&b, "sport/+/p", &["sport/t/p", "sport/p", "sport/a/b/p", "sport//p"]);
    assert_eq!(got, ["sport/t/p", "sport//p"]);
}

#[test]
fn mqtt_4_7_2_1_dollar_topics_not_matched_by_leading_wildcard() {
    let b = Broker::start();
    let mut s = RawClient::v311(b.addr(), &unique_id("s"));
    s.subscribe("#", 0);
    s.subscribe("+/x", 0);
    s.subscribe("sentinel/end", 0);
    let mut p = RawClient::v311(b.addr(), &unique_id("p"));
    p.publish("$foo/x", b"x", 0, false);
    p.publish("plain/x", b"y", 0, false);
    p.publish("sentinel/end", b"", 0, false);
    let got: Vec<String> = s
        .collect_until_topic("sentinel/end")
        .into_iter()
        .map(|m| m.topic)
        .filter(|t| !t.starts_with("$SYS"))
        .collect();
    // "plain/x" matches both filters: one or two copies are both conformant
    // for overlapping subscriptions in 3.1.1; v5 requires one per subscription
    // at most. "$foo/x" must never appear.
    assert!(got.iter().all(|t| t == "plain/x"), "{got:?}");
    assert!(!got.is_empty());
}

#[test]
fn mqtt_4_7_3_topic_names_are_case_sensitive() {
    let b = Broker::start();
    let got = deliveries(&b, "Case/T", &["case/t", "Case/T", "CASE/T"]);
    assert_eq!(got, ["Case/T"]);
}

#[test]
fn mqtt_4_7_1_2_invalid_filters_rejected() {
    let b = Broker::start();
    for bad in ["a/#/b", "a#", "a/b+", "+a"] {
        let mut c = RawClient::v311(b.addr(), &unique_id("bad"));
        c.send(&subscribe311(1, bad, 0));
        // 3.1.1: failure code 0x80 or close; v5 is checked in malformed.rs.
        if let Ok(p) = c.try_read_packet(TIMEOUT) {
            let (_, codes) = p.suback(false);
            assert_eq!(codes, [0x80], "filter {bad}");
        }
    }
}

#[test]
fn mqtt_3_10_4_unsubscribe_stops_delivery_and_unsuback() {
    let b = Broker::start();
    let mut s = RawClient::v311(b.addr(), &unique_id("s"));
    s.subscribe("u/t", 0);
    s.send(&unsubscribe(0x0A0B, &["u/t"], None));
    // [MQTT-3.10.4-4] UNSUBACK with the same packet id.
    s.expect(&[0xB0, 0x02, 0x0A, 0x0B]);
    let mut p = RawClient::v311(b.addr(), &unique_id("p"));
    p.publish("u/t", b"x", 0, false);
    p.sync();
    assert!(s.sync().is_empty());
}

#[test]
fn mqtt_3_10_4_5_unsubscribe_unknown_filter_still_acked() {
    let b = Broker::start();
    let mut s = RawClient::v311(b.addr(), &unique_id("s"));
    s.send(&unsubscribe(5, &["never/subscribed"], None));
    s.expect(&[0xB0, 0x02, 0x00, 0x05]);
}

#[test]
fn v5_unsuback_reason_codes() {
    let b = Broker::start();
    let mut s = RawClient::v5(b.addr(), &unique_id("s"));
    s.subscribe("u5/a", 0);
    s.send(&unsubscribe(6, &["u5/a", "u5/none"], Some(&Props::new())));
    let p = s.read_packet();
    assert_eq!(p.kind(), UNSUBACK);
    let (pid, codes) = p.suback(true);
    assert_eq!(pid, 6);
    // 0x00 Success, 0x11 No subscription existed.
    assert_eq!(codes, [0x00, 0x11]);
}

#[test]
fn v5_suback_grants_requested_qos() {
    let b = Broker::start();
    let mut s = RawClient::v5(b.addr(), &unique_id("s"));
    s.send(&subscribe(
        4,
        &[("g/0", 0), ("g/1", 1), ("g/2", 2)],
        Some(&Props::new()),
    ));
    let (pid, codes) = s.read_packet().suback(true);
    assert_eq!(pid, 4);
    assert_eq!(codes, [0, 1, 2]);
}

#[test]
fn overlapping_subscriptions_v5_deliver_with_max_qos_or_per_subscription() {
    let b = Broker::start();
    let mut s = RawClient::v5(b.addr(), &unique_id("s"));
    s.subscribe("ov/#", 0);
    s.subscribe("ov/+", 1);
    let mut p = RawClient::v5(b.addr(), &unique_id("p"));
    p.publish("ov/x", b"x", 1, false);
    let first = s.expect_publish();
    if first.qos == 1 {
        s.send(&ack(PUBACK, first.pid));
    }
    let more = s.sync();
    // [MQTT-3.3.4-2]: either one message at the max QoS, or one per subscription.
    if more.is_empty() {
        assert_eq!(first.qos, 1);
    } else {
        assert_eq!(more.len(), 1);
    }
    let _ = Duration::ZERO;
}
