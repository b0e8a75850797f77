//! MQTT 5.0 features (§3.1.2.11, §3.3.2.3, §3.8.3.1, §4.8 etc.).

use std::time::Duration;

use tern_blackbox::*;

/// v5 client with CONNECT properties.
fn v5_with(b: &Broker, id: &str, props: Props) -> RawClient {
    let (c, ack) = RawClient::handshake(b.addr(), &Connect::v5(id).props(props));
    assert_eq!(ack.code, 0);
    c
}

fn sub_with_props(c: &mut RawClient, filter: &str, opts: u8, props: Props) -> u8 {
    c.send(&subscribe(21, &[(filter, opts)], Some(&props)));
    let p = c.read_until_keep(SUBACK);
    let (pid, codes) = p.suback(true);
    assert_eq!(pid, 21);
    codes[0]
}

#[test]
fn mqtt_3_2_2_16_assigned_client_identifier_for_empty_id() {
    let b = Broker::start();
    let (_c, ack) = RawClient::handshake(b.addr(), &Connect::v5(""));
    assert_eq!(ack.code, 0);
    match prop(&ack.props, ASSIGNED_CLIENT_IDENTIFIER) {
        Some(Prop::Str(s)) => assert!(!s.is_empty()),
        other => panic!("[MQTT-3.2.2-16] Assigned Client Identifier missing: {other:?}"),
    }
}

#[test]
fn mqtt_3_3_2_12_inbound_topic_alias_maps_topic() {
    let b = Broker::start();
    let mut s = RawClient::v5(b.addr(), &unique_id("s"));
    s.subscribe("alias/t", 0);
    let mut p = RawClient::v5(b.addr(), &unique_id("p"));
    p.send(&publish(
        "alias/t",
        b"1",
        0,
        false,
        0,
        Some(&Props::new().u16(TOPIC_ALIAS, 1)),
    ));
    p.send(&publish("", b"2", 0, false, 0, Some(&Props::new().u16(TOPIC_ALIAS, 1))));
    for want in [b"1", b"2"] {
        let m = s.expect_publish();
        assert_eq!(m.topic, "alias/t");
        assert_eq!(m.payload, want);
        assert!(
            prop(&m.props, TOPIC_ALIAS).is_none(),
            "inbound alias must not leak to subscribers"
        );
    }
}

#[test]
fn mqtt_3_3_2_12_topic_alias_can_be_remapped() {
    let b = Broker::start();
    let mut s = RawClient::v5(b.addr(), &unique_id("s"));
    s.subscribe("remap/#", 0);
    let mut p = RawClient::v5(b.addr(), &unique_id("p"));
    let a = Props::new().u16(TOPIC_ALIAS, 2);
    p.send(&publish("remap/a", b"1", 0, false, 0, Some(&a)));
    p.send(&publish("remap/b", b"2", 0, false, 0, Some(&a)));
    p.send(&publish("", b"3", 0, false, 0, Some(&a)));
    let topics: Vec<String> = (0..3).map(|_| s.expect_publish().topic).collect();
    assert_eq!(topics, ["remap/a", "remap/b", "remap/b"]);
}

#[test]
fn mqtt_3_8_2_subscription_identifier_returned_in_publish() {
    let b = Broker::start();
    let mut s = RawClient::v5(b.addr(), &unique_id("s"));
    sub_with_props(&mut s, "sid/#", 0, Props::new().var(SUBSCRIPTION_IDENTIFIER, 42));
    let mut p = RawClient::v5(b.addr(), &unique_id("p"));
    p.publish("sid/x", b"x", 0, false);
    let m = s.expect_publish();
    // [MQTT-3.3.4-3]
    assert_eq!(prop(&m.props, SUBSCRIPTION_IDENTIFIER), Some(&Prop::Var(42)));
}

#[test]
fn mqtt_3_3_4_4_overlapping_subscription_identifiers() {
    let b = Broker::start();
    let mut s = RawClient::v5(b.addr(), &unique_id("s"));
    sub_with_props(&mut s, "ids/#", 0, Props::new().var(SUBSCRIPTION_IDENTIFIER, 1));
    sub_with_props(&mut s, "ids/+", 0, Props::new().var(SUBSCRIPTION_IDENTIFIER, 2));
    sub_with_props(&mut s, "sentinel/end", 0, Props::new());
    let mut p = RawClient::v5(b.addr(), &unique_id("p"));
    p.publish("ids/x", b"x", 0, false);
    p.publish("sentinel/end", b"", 0, false);
    let got = s.collect_until_topic("sentinel/end");
    let mut ids: Vec<u32> = got
        .iter()
        .flat_map(|m| props_all(&m.props, SUBSCRIPTION_IDENTIFIER))
        .map(|p| match p {
            Prop::Var(v) => *v,
            _ => unreachable!(),
        })
        .collect();
    ids.sort();
    // One message with both ids [MQTT-3.3.4-4] or one per subscription [MQTT-3.3.4-5].
    assert_eq!(ids, [1, 2]);
}

#[test]
fn mqtt_3_8_3_3_no_local_suppresses_own_messages() {
    let b = Broker::start();
    let mut c = RawClient::v5(b.addr(), &unique_id("nl"));
    c.subscribe("nl/t", 0x04);
    c.subscribe("sentinel/end", 0);
    c.publish("nl/t", b"mine", 0, false);
    let mut other = RawClient::v5(b.addr(), &unique_id("o"));
    other.publish("nl/t", b"theirs", 0, false);
    other.publish("sentinel/end", b"", 0, false);
    let got: Vec<Vec<u8>> = c
        .collect_until_topic("sentinel/end")
        .into_iter()
        .map(|m| m.payload)
        .collect();
    assert_eq!(got, [b"theirs".to_vec()]);
}

#[test]
fn mqtt_3_3_1_12_retain_as_published() {
    let b = Broker::start();
    let mut rap = RawClient::v5(b.addr(), &unique_id("rap"));
    rap.subscribe("rap/t", 0x08);
    let mut plain = RawClient::v5(b.addr(), &unique_id("plain"));
    plain.subscribe("rap/t", 0);
    let mut p = RawClient::v5(b.addr(), &unique_id("p"));
    p.publish("rap/t", b"x", 0, true);
    assert!(rap.expect_publish().retain, "[MQTT-3.3.1-13] RAP=1 keeps RETAIN");
    assert!(!plain.expect_publish().retain, "[MQTT-3.3.1-12] RAP=0 clears RETAIN");
}

#[test]
fn mqtt_3_3_1_9_retain_handling_0_1_2() {
    let b = Broker::start();
    let mut p = RawClient::v5(b.addr(), &unique_id("p"));
    p.publish("rh/t", b"kept", 0, true);
    // 0: send retained at subscribe time.
    let mut c0 = RawClient::v5(b.addr(), &unique_id("c0"));
    c0.subscribe("rh/t", 0x00);
    assert_eq!(c0.expect_publish().payload, b"kept");
    // 1: only if the subscription did not exist [MQTT-3.3.1-10].
    let mut c1 = RawClient::v5(b.addr(), &unique_id("c1"));
    c1.subscribe("rh/t", 0x10);
    assert_eq!(c1.expect_publish().payload, b"kept");
    c1.subscribe("rh/t", 0x10);
    assert!(c1.sync().is_empty(), "RH=1 must not resend on re-subscribe");
    // 2: never [MQTT-3.3.1-11].
    let mut c2 = RawClient::v5(b.addr(), &unique_id("c2"));
    c2.subscribe("rh/t", 0x20);
    c2.subscribe("sentinel/end", 0);
    p.publish("sentinel/end", b"", 0, false);
    assert!(c2.collect_until_topic("sentinel/end").is_empty());
}

#[test]
fn mqtt_3_3_2_5_expired_retained_message_not_delivered() {
    let b = Broker::start();
    let mut p = RawClient::v5(b.addr(), &unique_id("p"));
    p.send(&publish(
        "exp/r",
        b"short",
        1,
        true,
        3,
        Some(&Props::new().u32(MESSAGE_EXPIRY_INTERVAL, 1)),
    ));
    p.read_until_keep(PUBACK);
    std::thread::sleep(Duration::from_millis(2200));
    let mut s = RawClient::v5(b.addr(), &unique_id("s"));
    s.subscribe("exp/r", 0);
    s.subscribe("sentinel/end", 0);
    p.publish("sentinel/end", b"", 0, false);
    assert!(s.collect_until_topic("sentinel/end").is_empty());
}

#[test]
fn mqtt_3_3_2_6_message_expiry_decremented_in_forwarded_publish() {
    let b = Broker::start();
    let id = unique_id("s");
    let persistent = Connect::v5(&id)
        .clean(false)
        .props(Props::new().u32(SESSION_EXPIRY_INTERVAL, 60));
    let (mut s, _) = RawClient::handshake(b.addr(), &persistent);
    s.subscribe("exp/q", 1);
    s.drop_abruptly();
    let mut p = RawClient::v5(b.addr(), &unique_id("p"));
    p.send(&publish(
        "exp/q",
        b"x",
        1,
        false,
        3,
        Some(&Props::new().u32(MESSAGE_EXPIRY_INTERVAL, 100)),
    ));
    p.read_until_keep(PUBACK);
    std::thread::sleep(Duration::from_millis(1200));
    let (mut s, ack) = RawClient::handshake(b.addr(), &persistent);
    assert!(ack.session_present);
    let m = s.expect_publish();
    match prop(&m.props, MESSAGE_EXPIRY_INTERVAL) {
        Some(Prop::U32(v)) => assert!(*v < 100, "expiry not reduced: {v}"),
        other => panic!("expiry missing: {other:?}"),
    }
}

#[test]
fn mqtt_4_8_2_shared_subscription_each_message_to_one_member() {
    let b = Broker::start();
    let mut a = RawClient::v5(b.addr(), &unique_id("a"));
    let mut c = RawClient::v5(b.addr(), &unique_id("c"));
    a.subscribe("$share/g/sh/t", 1);
    c.subscribe("$share/g/sh/t", 1);
    a.subscribe("sentinel/end", 0);
    c.subscribe("sentinel/end", 0);
    let mut p = RawClient::v5(b.addr(), &unique_id("p"));
    for i in 0..10u8 {
        p.publish("sh/t", &[i], 1, false);
    }
    p.publish("sentinel/end", b"", 0, false);
    let ga = a.collect_until_topic("sentinel/end");
    let gc = c.collect_until_topic("sentinel/end");
    let mut all: Vec<u8> = ga.iter().chain(gc.iter()).map(|m| m.payload[0]).collect();
    all.sort();
    assert_eq!(all, (0..10).collect::<Vec<u8>>(), "each message exactly once");
    assert!(ga.iter().all(|m| m.topic == "sh/t"));
    // Round robin: both members get work.
    assert!(!ga.is_empty() && !gc.is_empty(), "{} / {}", ga.len(), gc.len());
    if is_tern() {
        assert_eq!((ga.len(), gc.len()), (5, 5), "tern distributes round robin");
    }
}

#[test]
fn shared_and_normal_subscription_both_receive() {
    let b = Broker::start();
    let mut sh = RawClient::v5(b.addr(), &unique_id("sh"));
    let mut n = RawClient::v5(b.addr(), &unique_id("n"));
    sh.subscribe("$share/grp/mix/t", 0);
    n.subscribe("mix/t", 0);
    let mut p = RawClient::v5(b.addr(), &unique_id("p"));
    p.publish("mix/t", b"x", 0, false);
    assert_eq!(sh.expect_publish().topic, "mix/t");
    assert_eq!(n.expect_publish().topic, "mix/t");
}

#[test]
fn mqtt_3_3_2_request_response_properties_forwarded_unaltered() {
    let b = Broker::start();
    let mut s = RawClient::v5(b.addr(), &unique_id("s"));
    s.subscribe("req/t", 0);
    let mut p = RawClient::v5(b.addr(), &unique_id("p"));
    let props = Props::new()
        .byte(PAYLOAD_FORMAT_INDICATOR, 1)
        .str(RESPONSE_TOPIC, "resp/abc")
        .bin(CORRELATION_DATA, &[0, 1, 2, 0xFF])
        .str(CONTENT_TYPE, "text/plain");
    p.send(&publish("req/t", b"ping", 0, false, 0, Some(&props)));
    let m = s.expect_publish();
    // [MQTT-3.3.2-4] [MQTT-3.3.2-15] [MQTT-3.3.2-16] [MQTT-3.3.2-20]
    assert_eq!(prop(&m.props, PAYLOAD_FORMAT_INDICATOR), Some(&Prop::Byte(1)));
    assert_eq!(prop(&m.props, RESPONSE_TOPIC), Some(&Prop::Str("resp/abc".into())));
    assert_eq!(prop(&m.props, CORRELATION_DATA), Some(&Prop::Bin(vec![0, 1, 2, 0xFF])));
    assert_eq!(prop(&m.props, CONTENT_TYPE), Some(&Prop::Str("text/plain".into())));
}

#[test]
fn mqtt_3_3_2_17_user_properties_forwarded_in_order() {
    let b = Broker::start();
    let mut s = RawClient::v5(b.addr(), &unique_id("s"));
    s.subscribe("up/t", 0);
    let mut p = RawClient::v5(b.addr(), &unique_id("p"));
    let props = Props::new().user("a", "1").user("b", "2").user("a", "3");
    p.send(&publish("up/t", b"x", 0, false, 0, Some(&props)));
    let m = s.expect_publish();
    let ups: Vec<&Prop> = props_all(&m.props, USER_PROPERTY);
    // [MQTT-3.3.2-17] [MQTT-3.3.2-18] order and duplicates preserved.
    assert_eq!(
        ups,
        [
            &Prop::Pair("a".into(), "1".into()),
            &Prop::Pair("b".into(), "2".into()),
            &Prop::Pair("a".into(), "3".into()),
        ]
    );
}

#[test]
fn mqtt_3_3_4_9_server_respects_client_receive_maximum() {
    let b = Broker::start();
    let mut s = v5_with(&b, &unique_id("s"), Props::new().u16(RECEIVE_MAXIMUM, 2));
    s.subscribe("rm/t", 1);
    let mut p = RawClient::v5(b.addr(), &unique_id("p"));
    for i in 0..5u8 {
        p.publish("rm/t", &[i], 1, false);
    }
    let m0 = s.expect_publish();
    let m1 = s.expect_publish();
    // Nothing more until an ack frees a slot.
    s.expect_silence(Duration::from_millis(500));
    s.send(&ack(PUBACK, m0.pid));
    let m2 = s.expect_publish();
    assert_eq!(m2.payload, [2]);
    s.send(&ack(PUBACK, m1.pid));
    s.send(&ack(PUBACK, m2.pid));
    for i in 3..5u8 {
        let m = s.expect_publish();
        assert_eq!(m.payload, [i]);
        s.send(&ack(PUBACK, m.pid));
    }
}

#[test]
fn mqtt_3_3_4_7_exceeding_server_receive_maximum_disconnect_0x93() {
    let b = Broker::start_with("[limits]\nreceive_maximum = 2\nmax_inflight = 2\n");
    let (mut c, ack) = RawClient::handshake(b.addr(), &Connect::v5(&unique_id("rx")));
    if is_tern() {
        assert_eq!(prop(&ack.props, RECEIVE_MAXIMUM), Some(&Prop::U16(2)));
    }
    let rm = match prop(&ack.props, RECEIVE_MAXIMUM) {
        Some(Prop::U16(v)) => *v,
        _ => {
            eprintln!("SKIP: broker sent no Receive Maximum");
            return;
        }
    };
    if !is_tern() {
        eprintln!("SKIP: mosquitto 2.0.11 does not enforce its Receive Maximum");
        return;
    }
    // QoS 2 without PUBREL keeps each one in flight.
    for pid in 1..=rm + 1 {
        let _ = c.try_send(&publish5("rx/t", b"x", 2, false, pid));
    }
    let seen = c.closed_within(TIMEOUT).expect("closed");
    let d = seen.iter().find(|p| p.kind() == DISCONNECT).expect("DISCONNECT");
    assert_eq!(d.disconnect().0, 0x93);
}

#[test]
fn mqtt_3_1_2_24_publish_larger_than_client_maximum_packet_size_dropped() {
    let b = Broker::start();
    let mut s = v5_with(&b, &unique_id("s"), Props::new().u32(MAXIMUM_PACKET_SIZE, 128));
    s.subscribe("mps/t", 0);
    s.subscribe("sentinel/end", 0);
    let mut p = RawClient::v5(b.addr(), &unique_id("p"));
    p.publish("mps/t", &[b'x'; 500], 0, false);
    p.publish("mps/t", b"small", 0, false);
    p.publish("sentinel/end", b"", 0, false);
    let got: Vec<Vec<u8>> = s
        .collect_until_topic("sentinel/end")
        .into_iter()
        .map(|m| m.payload)
        .collect();
    assert_eq!(got, [b"small".to_vec()]);
}

#[test]
fn connack_maximum_packet_size_when_configured() {
    let b = Broker::start_with("[limits]\nmax_packet_size = \"2KiB\"\n");
    let (_c, ack) = RawClient::handshake(b.addr(), &Connect::v5(&unique_id("c")));
    assert_eq!(prop(&ack.props, MAXIMUM_PACKET_SIZE), Some(&Prop::U32(2048)));
}

#[test]
fn v5_topic_alias_maximum_in_connack() {
    let b = Broker::start_with("[limits]\ntopic_alias_maximum = 16\n");
    let (_c, ack) = RawClient::handshake(b.addr(), &Connect::v5(&unique_id("c")));
    assert_eq!(prop(&ack.props, TOPIC_ALIAS_MAXIMUM), Some(&Prop::U16(16)));
}

#[test]
fn v5_puback_reason_no_matching_subscribers_or_success() {
    let b = Broker::start();
    let mut c = RawClient::v5(b.addr(), &unique_id("c"));
    c.send(&publish5("nobody/here", b"x", 1, false, 5));
    let (pid, rc) = c.read_packet().ack();
    assert_eq!(pid, 5);
    // 0x10 No matching subscribers is allowed; 0x00 too.
    assert!(rc == 0x00 || rc == 0x10, "rc {rc:#x}");
}

#[test]
fn mqtt_3_8_3_4_no_local_on_shared_subscription_is_protocol_error() {
    let b = Broker::start();
    let mut c = RawClient::v5(b.addr(), &unique_id("c"));
    c.send(&subscribe5(1, "$share/g/x", 0x04));
    if is_tern() {
        // [MQTT-3.8.3-4] Protocol Error -> DISCONNECT 0x82 and close.
        c.expect_disconnect(0x82, true);
    } else {
        eprintln!("SKIP: mosquitto 2.0.11 accepts No Local on shared subscriptions");
    }
}

#[test]
fn v5_server_keep_alive_overrides_client() {
    let b = Broker::start_with("[limits]\nmax_keep_alive = 10\n");
    let (_c, ack) = RawClient::handshake(b.addr(), &Connect::v5(&unique_id("ka")).keep_alive(1000));
    assert_eq!(ack.code, 0);
    assert_eq!(prop(&ack.props, SERVER_KEEP_ALIVE), Some(&Prop::U16(10)));
}

/// A QoS 2 message a shared-group member had started to receive is not
/// sent to another member when that member's session ends [MQTT-4.8.2-5].
#[test]
fn mqtt_4_8_2_5_started_qos2_shared_delivery_is_not_redelivered() {
    if skip_unless_tern("shared subscription redelivery policy") {
        return;
    }
    let b = Broker::start();
    let mut a = RawClient::v5(b.addr(), &unique_id("a"));
    a.subscribe("$share/g/sq2", 2);
    let mut c = RawClient::v5(b.addr(), &unique_id("c"));
    c.subscribe("$share/g/sq2", 2);
    let mut p = RawClient::v5(b.addr(), &unique_id("p"));
    p.publish("sq2", b"once", 2, false);
    // Whoever got it leaves without PUBREC, ending its session.
    let (got, other) = match a.try_read_packet(Duration::from_secs(1)) {
        Ok(pk) if pk.kind() == PUBLISH => (a, c),
        _ => (c, a),
    };
    let mut other = other;
    got.drop_abruptly();
    other.expect_silence(Duration::from_millis(500));
}

/// Topic alias mappings belong to one connection [MQTT-3.3.2-7]: a new
/// connection of the same session cannot use an alias set by the old one.
#[test]
fn mqtt_3_3_2_7_topic_aliases_do_not_outlive_the_connection() {
    let b = Broker::start();
    let id = unique_id("alias");
    let connect = || {
        Connect::v5(&id)
            .clean(false)
            .props(Props::new().u32(SESSION_EXPIRY_INTERVAL, 60))
    };
    let (mut first, _) = RawClient::handshake(b.addr(), &connect());
    first.send(&publish(
        "al/t",
        b"set",
        0,
        false,
        0,
        Some(&Props::new().u16(TOPIC_ALIAS, 1)),
    ));
    first.sync();
    first.disconnect();
    let (mut second, ack) = RawClient::handshake(b.addr(), &connect());
    assert!(ack.session_present);
    // Alias 1 with an empty topic: unknown on this connection.
    second.send(&publish(
        "",
        b"use",
        0,
        false,
        0,
        Some(&Props::new().u16(TOPIC_ALIAS, 1)),
    ));
    second.expect_disconnect(0x82, is_tern());
}
