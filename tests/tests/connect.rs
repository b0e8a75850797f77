//! CONNECT / CONNACK behaviour (MQTT 3.1.1 §3.1-3.2, MQTT 5.0 §3.1-3.2).

use std::time::Duration;

use tern_blackbox::*;

#[test]
fn ready_file_lists_default_listener() {
    let b = Broker::start();
    assert!(!b.listeners().is_empty());
    assert!(b.addr().ip().is_loopback());
    assert_ne!(b.addr().port(), 0);
}

#[test]
fn v311_connect_gets_connack_accepted() {
    let b = Broker::start();
    let mut c = RawClient::connect(b.addr());
    c.send(&Connect::v311(&unique_id("c")).bytes());
    // [MQTT-3.2.0-1] CONNACK is the first packet; clean session -> SP 0, rc 0.
    c.expect(&[0x20, 0x02, 0x00, 0x00]);
    c.disconnect();
}

#[test]
fn v31_connect_mqisdp_is_accepted() {
    let b = Broker::start();
    let mut c = RawClient::connect(b.addr());
    c.send(&Connect::new(V31, &unique_id("c")).bytes());
    c.expect(&[0x20, 0x02, 0x00, 0x00]);
}

#[test]
fn v5_connect_gets_connack_success() {
    let b = Broker::start();
    let (c, ack) = RawClient::handshake(b.addr(), &Connect::v5(&unique_id("c")));
    assert_eq!(ack.code, 0);
    assert!(!ack.session_present);
    c.disconnect();
}

#[test]
fn mqtt_3_1_2_1_unsupported_protocol_name_closes() {
    let b = Broker::start();
    let mut c = RawClient::connect(b.addr());
    let mut body = string("MQTX");
    body.extend([4, 0x02, 0, 60]);
    body.extend(string("x"));
    c.send(&packet(0x10, &body));
    // The server MAY send CONNACK 0x84/0x01 first; it MUST close.
    let seen = c.closed_within(TIMEOUT).expect("closed");
    for p in seen {
        assert_eq!(p.kind(), CONNACK);
    }
}

#[test]
fn mqtt_3_1_2_2_unacceptable_protocol_level_v311() {
    let b = Broker::start();
    let mut c = RawClient::connect(b.addr());
    c.send(&Connect::new(6, "lvl").bytes());
    // [MQTT-3.1.2-2] CONNACK 0x01 (3.1.1) / 0x84 (5.0) then close.
    let seen = c.closed_within(TIMEOUT).expect("closed");
    assert_eq!(seen.len(), 1, "expected exactly one CONNACK: {seen:02x?}");
    let code = seen[0].connack(false).code;
    assert!(code == 0x01 || code == 0x84, "code {code:#x}");
}

#[test]
fn mqtt_3_1_2_3_reserved_connect_flag_closes() {
    let b = Broker::start();
    for level in [V311, V5] {
        let mut c = RawClient::connect(b.addr());
        let mut cp = Connect::new(level, "rsv");
        cp.reserved_flag = true;
        c.send(&cp.bytes());
        let seen = c.closed_within(TIMEOUT).expect("closed");
        for p in &seen {
            // v5 may answer CONNACK 0x81 Malformed Packet before closing.
            let ack = p.connack(level == V5);
            assert_ne!(ack.code, 0, "must not accept");
        }
    }
}

#[test]
fn mqtt_3_1_3_8_empty_client_id_without_clean_session_rejected_v311() {
    let b = Broker::start();
    let mut c = RawClient::connect(b.addr());
    c.send(&Connect::v311("").clean(false).bytes());
    // [MQTT-3.1.3-8] CONNACK 0x02 Identifier rejected, then close [MQTT-3.1.3-9].
    c.expect(&[0x20, 0x02, 0x00, 0x02]);
    c.expect_closed();
}

#[test]
fn mqtt_3_1_3_6_empty_client_id_with_clean_session_assigned_v311() {
    let b = Broker::start();
    let mut c = RawClient::connect(b.addr());
    c.send(&Connect::v311("").bytes());
    c.expect(&[0x20, 0x02, 0x00, 0x00]);
    c.disconnect();
}

#[test]
fn mqtt_3_1_3_5_long_client_id_characters_allowed() {
    let b = Broker::start();
    let id = "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ";
    let mut c = RawClient::connect(b.addr());
    c.send(&Connect::v311(id).bytes());
    c.expect(&[0x20, 0x02, 0x00, 0x00]);
}

#[test]
fn mqtt_3_1_4_5_v5_connack_advertises_capabilities_consistently() {
    let b = Broker::start();
    let (_c, ack) = RawClient::handshake(b.addr(), &Connect::v5(&unique_id("cap")));
    assert_eq!(ack.code, 0);
    // Any Receive Maximum present must be non-zero [MQTT-3.2.2-?] and any
    // Maximum QoS must be 0 or 1 (2 is signalled by absence).
    if let Some(Prop::U16(rm)) = prop(&ack.props, RECEIVE_MAXIMUM) {
        assert!(*rm > 0);
    }
    if let Some(Prop::Byte(q)) = prop(&ack.props, MAXIMUM_QOS) {
        assert!(*q <= 1, "Maximum QoS property must be 0 or 1, got {q}");
    }
}

#[test]
fn tern_connack_carries_configured_limits() {
    if skip_unless_tern("CONNACK properties from [limits]") {
        return;
    }
    let b = Broker::start_with("[limits]\nreceive_maximum = 7\ntopic_alias_maximum = 5\nmax_packet_size = \"64KiB\"\n");
    let (_c, ack) = RawClient::handshake(b.addr(), &Connect::v5(&unique_id("lim")));
    assert_eq!(ack.code, 0);
    assert_eq!(prop(&ack.props, RECEIVE_MAXIMUM), Some(&Prop::U16(7)));
    assert_eq!(prop(&ack.props, TOPIC_ALIAS_MAXIMUM), Some(&Prop::U16(5)));
    assert_eq!(prop(&ack.props, MAXIMUM_PACKET_SIZE), Some(&Prop::U32(64 * 1024)));
}

#[test]
fn mqtt_3_1_2_22_keep_alive_expiry_closes_connection() {
    let b = Broker::start();
    let mut c = RawClient::connect(b.addr());
    c.send(&Connect::v311(&unique_id("ka")).keep_alive(1).bytes());
    c.expect(&[0x20, 0x02, 0x00, 0x00]);
    // [MQTT-3.1.2-24] 1.5 x keep alive without a packet -> close.
    c.expect_closed_within(Duration::from_secs(5));
}

#[test]
fn mqtt_3_12_4_1_pingreq_answered_with_pingresp() {
    let b = Broker::start();
    let mut c = RawClient::v311(b.addr(), &unique_id("ping"));
    c.send(&pingreq());
    c.expect(&[0xD0, 0x00]);
}

#[test]
fn mqtt_3_1_4_2_duplicate_client_id_takes_over() {
    let b = Broker::start();
    let id = unique_id("dup");
    let mut first = RawClient::v311(b.addr(), &id);
    let _second = RawClient::v311(b.addr(), &id);
    first.expect_closed();
}

#[test]
fn v5_server_keep_alive_when_over_max() {
    if skip_unless_tern("max_keep_alive -> Server Keep Alive") {
        return;
    }
    let b = Broker::start_with("[limits]\nmax_keep_alive = 30\n");
    let (_c, ack) = RawClient::handshake(b.addr(), &Connect::v5(&unique_id("ska")).keep_alive(600));
    assert_eq!(ack.code, 0);
    // [MQTT-3.2.2-21] the client must use the Server Keep Alive.
    assert_eq!(prop(&ack.props, SERVER_KEEP_ALIVE), Some(&Prop::U16(30)));
}

/// 3.1.1 has no CONNACK code for a will topic that is not a topic name:
/// the server closes without one [MQTT-3.1.4-1] [MQTT-3.2.2-6].
#[test]
fn mqtt_3_2_2_6_v311_invalid_will_topic_closes_without_connack() {
    let b = Broker::start();
    let mut c = RawClient::connect(b.addr());
    c.send(
        &Connect::v311(&unique_id("w"))
            .will(Will::new("will/#", b"x", 0, false))
            .bytes(),
    );
    let seen = c.closed_within(TIMEOUT).expect("closed");
    assert!(seen.is_empty(), "no CONNACK expected, got {seen:02x?}");
}
