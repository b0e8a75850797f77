//! Protocol violations and malformed input (§1.5, §2, §4.13, and the "MUST
//! close the Network Connection" statements of §3).

use std::time::Duration;

use tern_blackbox::*;

/// Expect a close, optionally preceded by a v5 DISCONNECT whose reason is
/// one of `reasons`. Under tern, when `tern_reason` is given, that exact
/// DISCONNECT is required.
fn expect_rejected(c: &mut RawClient, reasons: &[u8], tern_reason: Option<u8>) {
    let got = c.expect_closed();
    if let Some(r) = got {
        assert!(
            reasons.contains(&r),
            "DISCONNECT reason {r:#04x}, wanted one of {reasons:02x?}"
        );
    }
    if let (true, Some(want)) = (is_tern(), tern_reason) {
        assert_eq!(got, Some(want), "tern must send DISCONNECT {want:#04x}");
    }
}

#[test]
fn mqtt_3_1_0_1_first_packet_must_be_connect() {
    let b = Broker::start();
    let mut c = RawClient::connect(b.addr());
    c.send(&publish311("a/b", b"x", 0, false, 0));
    c.expect_closed();
}

#[test]
fn garbage_before_connect_closes() {
    let b = Broker::start();
    let mut c = RawClient::connect(b.addr());
    c.send(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n");
    c.expect_closed();
}

#[test]
fn mqtt_3_1_0_2_second_connect_is_protocol_violation() {
    let b = Broker::start();
    let mut c = RawClient::v311(b.addr(), &unique_id("c"));
    c.send(&Connect::v311(&unique_id("c")).bytes());
    c.expect_closed();

    let mut c = RawClient::v5(b.addr(), &unique_id("c"));
    c.send(&Connect::v5(&unique_id("c")).bytes());
    expect_rejected(&mut c, &[0x82], Some(0x82));
}

#[test]
fn mqtt_1_5_5_remaining_length_over_four_bytes_closes() {
    let b = Broker::start();
    let mut c = RawClient::v5(b.addr(), &unique_id("c"));
    c.send(&[0x30, 0xFF, 0xFF, 0xFF, 0xFF, 0x01]);
    expect_rejected(&mut c, &[0x81, 0x95], Some(0x81));
}

#[test]
fn oversize_packet_v5_disconnect_0x95() {
    let b = Broker::start_with("[limits]\nmax_packet_size = \"1KiB\"\n");
    let mut c = RawClient::v5(b.addr(), &unique_id("c"));
    // [MQTT-3.2.2-15] / §4.13: Packet too large.
    let _ = c.try_send(&publish5("big/t", &[b'x'; 4096], 0, false, 0));
    expect_rejected(&mut c, &[0x95], Some(0x95));
}

#[test]
fn oversize_packet_v311_closes() {
    let b = Broker::start_with("[limits]\nmax_packet_size = \"1KiB\"\n");
    let mut c = RawClient::v311(b.addr(), &unique_id("c"));
    let _ = c.try_send(&publish311("big/t", &[b'x'; 4096], 0, false, 0));
    c.expect_closed();
}

#[test]
fn oversize_connect_closes_before_connack() {
    let b = Broker::start_with("[limits]\nmax_packet_size = \"1KiB\"\n");
    let mut c = RawClient::connect(b.addr());
    let mut w = Will::new("w", &[0u8; 4000], 0, false);
    w.props = Props::new();
    let _ = c.try_send(&Connect::v5("big").will(w).bytes());
    let seen = c.closed_within(TIMEOUT).expect("closed");
    for p in seen {
        // CONNACK 0x95 is allowed.
        assert_eq!(p.connack(true).code, 0x95);
    }
}

#[test]
fn mqtt_3_3_2_8_topic_alias_zero_is_0x94() {
    let b = Broker::start_with("[limits]\ntopic_alias_maximum = 4\n");
    let mut c = RawClient::v5(b.addr(), &unique_id("c"));
    c.send(&publish(
        "ta/t",
        b"x",
        0,
        false,
        0,
        Some(&Props::new().u16(TOPIC_ALIAS, 0)),
    ));
    // Mosquitto answers 0x81; tern must use the specific 0x94.
    expect_rejected(&mut c, &[0x94, 0x81], Some(0x94));
}

#[test]
fn mqtt_3_3_2_9_topic_alias_above_maximum_is_0x94() {
    let b = Broker::start_with("[limits]\ntopic_alias_maximum = 4\n");
    let mut c = RawClient::v5(b.addr(), &unique_id("c"));
    c.send(&publish(
        "ta/t",
        b"x",
        0,
        false,
        0,
        Some(&Props::new().u16(TOPIC_ALIAS, 5)),
    ));
    expect_rejected(&mut c, &[0x94], Some(0x94));
}

#[test]
fn unknown_topic_alias_with_empty_topic_is_protocol_error() {
    let b = Broker::start_with("[limits]\ntopic_alias_maximum = 4\n");
    let mut c = RawClient::v5(b.addr(), &unique_id("c"));
    c.send(&publish("", b"x", 0, false, 0, Some(&Props::new().u16(TOPIC_ALIAS, 3))));
    expect_rejected(&mut c, &[0x82], Some(0x82));
}

#[test]
fn mqtt_1_5_4_1_invalid_utf8_topic_closes() {
    let b = Broker::start();
    for v5 in [false, true] {
        let mut c = if v5 {
            RawClient::v5(b.addr(), &unique_id("c"))
        } else {
            RawClient::v311(b.addr(), &unique_id("c"))
        };
        let mut body = vec![0x00, 0x03, b'a', 0xC3, 0x28]; // ill-formed UTF-8
        if v5 {
            body.push(0);
        }
        body.extend_from_slice(b"x");
        c.send(&packet(0x30, &body));
        expect_rejected(&mut c, &[0x81, 0x80], if v5 { Some(0x81) } else { None });
    }
}

#[test]
fn mqtt_1_5_4_2_null_character_in_topic_closes() {
    let b = Broker::start();
    let mut c = RawClient::v311(b.addr(), &unique_id("c"));
    c.send(&packet(0x30, &[0x00, 0x03, b'a', 0x00, b'b', b'x']));
    c.expect_closed();
}

#[test]
fn mqtt_1_5_4_invalid_utf8_client_id_rejected() {
    let b = Broker::start();
    let mut c = RawClient::connect(b.addr());
    let mut body = string("MQTT");
    body.extend([4, 0x02, 0, 60, 0x00, 0x02, 0xFF, 0xFE]);
    c.send(&packet(0x10, &body));
    let seen = c.closed_within(TIMEOUT).expect("closed");
    for p in seen {
        assert_ne!(p.connack(false).code, 0);
    }
}

#[test]
fn mqtt_3_3_2_2_wildcard_in_publish_topic_closes() {
    let b = Broker::start();
    for t in ["a/+", "a/#"] {
        let mut c = RawClient::v311(b.addr(), &unique_id("c"));
        c.send(&publish311(t, b"x", 0, false, 0));
        c.expect_closed();
        let mut c = RawClient::v5(b.addr(), &unique_id("c"));
        c.send(&publish5(t, b"x", 0, false, 0));
        // 0x90 Topic Name invalid.
        expect_rejected(&mut c, &[0x90, 0x82, 0x81], Some(0x90));
    }
}

#[test]
fn mqtt_3_3_1_4_qos_3_closes() {
    let b = Broker::start();
    let mut c = RawClient::v311(b.addr(), &unique_id("c"));
    c.send(&packet(0x36, &[0x00, 0x01, b'a', 0x00, 0x01, b'x']));
    c.expect_closed();
    let mut c = RawClient::v5(b.addr(), &unique_id("c"));
    c.send(&packet(0x36, &[0x00, 0x01, b'a', 0x00, 0x01, 0x00, b'x']));
    expect_rejected(&mut c, &[0x81], Some(0x81));
}

#[test]
fn mqtt_3_8_1_1_subscribe_reserved_flags_must_be_0010() {
    let b = Broker::start();
    let mut c = RawClient::v311(b.addr(), &unique_id("c"));
    let mut s = subscribe311(1, "a", 0);
    s[0] = 0x80;
    c.send(&s);
    c.expect_closed();
}

#[test]
fn mqtt_3_6_1_1_pubrel_reserved_flags_must_be_0010() {
    let b = Broker::start();
    let mut c = RawClient::v5(b.addr(), &unique_id("c"));
    c.send(&publish5("a", b"x", 2, false, 1));
    let _ = c.read_until_keep(PUBREC);
    c.send(&[0x60, 0x02, 0x00, 0x01]);
    expect_rejected(&mut c, &[0x81], Some(0x81));
}

#[test]
fn mqtt_2_1_3_1_pingreq_reserved_flags_closes() {
    if skip_unless_tern("mosquitto 2.0.11 ignores PINGREQ flags") {
        return;
    }
    let b = Broker::start();
    let mut c = RawClient::v311(b.addr(), &unique_id("c"));
    c.send(&[0xC1, 0x00]);
    c.expect_closed();
}

#[test]
fn packet_type_zero_is_malformed() {
    let b = Broker::start();
    let mut c = RawClient::v311(b.addr(), &unique_id("c"));
    c.send(&[0x00, 0x00]);
    c.expect_closed();
}

#[test]
fn mqtt_3_8_3_3_subscribe_without_filters_closes() {
    let b = Broker::start();
    let mut c = RawClient::v311(b.addr(), &unique_id("c"));
    c.send(&packet(0x82, &[0x00, 0x01]));
    c.expect_closed();
}

#[test]
fn mqtt_3_10_3_2_unsubscribe_without_filters_closes() {
    let b = Broker::start();
    let mut c = RawClient::v311(b.addr(), &unique_id("c"));
    c.send(&packet(0xA2, &[0x00, 0x01]));
    c.expect_closed();
}

#[test]
fn mqtt_3_8_3_4_subscribe_qos_3_closes() {
    let b = Broker::start();
    let mut c = RawClient::v311(b.addr(), &unique_id("c"));
    c.send(&subscribe311(1, "a", 3));
    c.expect_closed();
}

#[test]
fn mqtt_2_3_1_1_qos1_publish_with_packet_id_zero_closes() {
    let b = Broker::start();
    let mut c = RawClient::v5(b.addr(), &unique_id("c"));
    c.send(&publish5("a", b"x", 1, false, 0));
    expect_rejected(&mut c, &[0x81, 0x82], None);
}

#[test]
fn mqtt_3_1_2_11_will_qos_without_will_flag_closes() {
    let b = Broker::start();
    let mut c = RawClient::connect(b.addr());
    let mut body = string("MQTT");
    body.extend([4, 0x02 | 0x08, 0, 60]);
    body.extend(string("wq"));
    c.send(&packet(0x10, &body));
    let seen = c.closed_within(TIMEOUT).expect("closed");
    for p in seen {
        assert_ne!(p.connack(false).code, 0);
    }
}

#[test]
fn mqtt_3_1_2_22_password_without_username_v311_closes() {
    let b = Broker::start();
    let mut c = RawClient::connect(b.addr());
    let mut body = string("MQTT");
    body.extend([4, 0x02 | 0x40, 0, 60]);
    body.extend(string("pw"));
    body.extend(bin(b"secret"));
    c.send(&packet(0x10, &body));
    let seen = c.closed_within(TIMEOUT).expect("closed");
    for p in seen {
        assert_ne!(p.connack(false).code, 0);
    }
}

#[test]
fn mqtt_3_3_4_6_client_sent_subscription_identifier_is_protocol_error() {
    let b = Broker::start();
    let mut c = RawClient::v5(b.addr(), &unique_id("c"));
    c.send(&publish(
        "a",
        b"x",
        0,
        false,
        0,
        Some(&Props::new().var(SUBSCRIPTION_IDENTIFIER, 3)),
    ));
    if is_tern() {
        expect_rejected(&mut c, &[0x82], Some(0x82));
    } else {
        eprintln!("SKIP strictness: mosquitto tolerates this");
    }
}

#[test]
fn mqtt_4_12_0_1_auth_without_method_is_protocol_error() {
    let b = Broker::start();
    let mut c = RawClient::v5(b.addr(), &unique_id("c"));
    c.send(&[0xF0, 0x02, 0x18, 0x00]);
    expect_rejected(&mut c, &[0x82, 0x81, 0x8C], Some(0x82));
}

#[test]
fn duplicate_property_is_protocol_error() {
    let b = Broker::start();
    let mut c = RawClient::v5(b.addr(), &unique_id("c"));
    let props = Props::new()
        .byte(PAYLOAD_FORMAT_INDICATOR, 0)
        .byte(PAYLOAD_FORMAT_INDICATOR, 0);
    c.send(&publish("a", b"x", 0, false, 0, Some(&props)));
    expect_rejected(&mut c, &[0x82, 0x81], Some(0x82));
}

#[test]
fn mqtt_3_3_2_payload_format_utf8_violation_may_be_rejected() {
    // [MQTT-3.3.2-4]: a receiver MAY validate; either accept or 0x99.
    let b = Broker::start();
    let mut c = RawClient::v5(b.addr(), &unique_id("c"));
    let props = Props::new().byte(PAYLOAD_FORMAT_INDICATOR, 1);
    c.send(&publish("pf/t", &[0xFF, 0xFE], 1, false, 4, Some(&props)));
    match c.try_read_packet(TIMEOUT) {
        Ok(p) if p.kind() == PUBACK => {
            let (_, rc) = p.ack();
            assert!(rc == 0 || rc == 0x10 || rc == 0x99, "rc {rc:#x}");
        }
        Ok(p) if p.kind() == DISCONNECT => assert_eq!(p.disconnect().0, 0x99),
        other => panic!("unexpected {other:?}"),
    }
}

#[test]
fn half_connect_then_stall_closed_by_handshake_timeout() {
    if skip_unless_tern("handshake_timeout (mosquitto has none)") {
        return;
    }
    let b = Broker::start_with("[limits]\nhandshake_timeout = \"1s\"\n");
    let mut c = RawClient::connect(b.addr());
    let full = Connect::v311("half").bytes();
    c.send(&full[..full.len() / 2]);
    c.expect_closed_within(Duration::from_secs(5));
}

#[test]
fn half_packet_then_stall_closed_by_keep_alive() {
    let b = Broker::start();
    let mut c = RawClient::connect(b.addr());
    c.send(&Connect::v311(&unique_id("half")).keep_alive(1).bytes());
    c.expect(&[0x20, 0x02, 0x00, 0x00]);
    let p = publish311("half/t", &[b'x'; 100], 0, false, 0);
    c.send(&p[..20]);
    c.expect_closed_within(Duration::from_secs(10));
}

#[test]
fn client_that_never_reads_does_not_stall_others() {
    let b = Broker::start();
    // A subscriber that never reads its socket.
    let mut stuck = RawClient::v311(b.addr(), &unique_id("stuck"));
    stuck.subscribe("flood/#", 0);
    let mut fast = RawClient::v311(b.addr(), &unique_id("fast"));
    fast.subscribe("flood/#", 0);
    let mut p = RawClient::v311(b.addr(), &unique_id("p"));
    let payload = vec![b'z'; 16 * 1024];
    let reader = std::thread::spawn(move || {
        let mut n = 0;
        loop {
            let m = fast.expect_publish();
            if m.topic == "flood/end" {
                return n;
            }
            n += 1;
        }
    });
    // ~32 MiB total, far more than socket buffers hold for `stuck`.
    for _ in 0..2000 {
        p.publish("flood/data", &payload, 0, false);
    }
    p.publish("flood/end", b"", 0, false);
    p.sync();
    let got = reader.join().expect("fast subscriber kept receiving");
    assert!(got > 0);
    drop(stuck);
}
