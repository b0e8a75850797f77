//! Who may connect: the per-listener anonymous policy (3.1.1 §3.2.2.3, 5.0
//! §3.2.2.2) and enhanced authentication (5.0 §4.12), which tern does not
//! support yet.

use tern_blackbox::*;

const CLOSED_AND_OPEN: &str = "[[listener]]\nname = \"closed\"\nbind = \"127.0.0.1:0\"\nallow_anonymous = false\n\n\
     [[listener]]\nname = \"open\"\nbind = \"127.0.0.1:0\"\nallow_anonymous = true\n";

#[test]
fn anonymous_refused_where_not_allowed_v311() {
    if skip_unless_tern("per-listener allow_anonymous") {
        return;
    }
    let b = Broker::start_with(CLOSED_AND_OPEN);
    let closed = b.listener("closed").unwrap();
    let mut c = RawClient::connect(closed);
    c.send(&Connect::v311(&unique_id("anon")).bytes());
    // 0x05 Not authorized, then close [MQTT-3.2.2-5].
    c.expect(&[0x20, 0x02, 0x00, 0x05]);
    c.expect_closed();
    // A user name no source can check is refused as bad credentials (0x04).
    let mut c = RawClient::connect(closed);
    c.send(&Connect::v311(&unique_id("user")).user("alice", Some(b"pw")).bytes());
    c.expect(&[0x20, 0x02, 0x00, 0x04]);
    c.expect_closed();
    // The other listener lets anonymous clients in.
    let open = b.listener("open").unwrap();
    RawClient::v311(open, &unique_id("ok")).disconnect();
}

#[test]
fn anonymous_refused_where_not_allowed_v5() {
    if skip_unless_tern("per-listener allow_anonymous") {
        return;
    }
    let b = Broker::start_with(CLOSED_AND_OPEN);
    let closed = b.listener("closed").unwrap();
    let (mut c, ack) = RawClient::handshake(closed, &Connect::v5(&unique_id("anon")));
    assert_eq!(ack.code, 0x87, "Not authorized");
    assert!(!ack.session_present, "[MQTT-3.2.2-6]");
    c.expect_closed();
    let (mut c, ack) = RawClient::handshake(closed, &Connect::v5(&unique_id("user")).user("alice", Some(b"pw")));
    assert_eq!(ack.code, 0x86, "Bad User Name or Password");
    c.expect_closed();
}

#[test]
fn refused_client_leaves_no_session_and_no_will() {
    if skip_unless_tern("per-listener allow_anonymous") {
        return;
    }
    let b = Broker::start_with(CLOSED_AND_OPEN);
    let open = b.listener("open").unwrap();
    let closed = b.listener("closed").unwrap();
    let mut watcher = RawClient::v311(open, &unique_id("watch"));
    watcher.subscribe("auth/will", 0);
    let id = unique_id("refused");
    let (mut c, ack) = RawClient::handshake(
        closed,
        &Connect::v311(&id)
            .clean(false)
            .will(Will::new("auth/will", b"x", 0, false)),
    );
    assert_eq!(ack.code, 0x05);
    c.expect_closed();
    // No session was kept for a refused CONNECT.
    let (_c, ack) = RawClient::handshake(open, &Connect::v311(&id).clean(false));
    assert!(!ack.session_present);
    // And a refused connection's will is never published.
    watcher.expect_silence(std::time::Duration::from_millis(300));
}

#[test]
fn mqtt_4_12_0_1_unsupported_authentication_method_refused_0x8c() {
    let b = Broker::start();
    let cp = Connect::v5(&unique_id("scram")).props(
        Props::new()
            .str(AUTHENTICATION_METHOD, "SCRAM-SHA-1")
            .bin(0x16, b"client-first"),
    );
    let (mut c, ack) = RawClient::handshake(b.addr(), &cp);
    // [MQTT-4.12.0-1] a method the server does not support: CONNACK 0x8C
    // Bad authentication method (or 0x87), then close.
    assert!(ack.code == 0x8C || ack.code == 0x87, "CONNACK {:#04x}", ack.code);
    c.expect_closed();
}

#[test]
fn mqtt_3_1_2_29_request_problem_information_0_keeps_reason_strings_off_acks() {
    let b = Broker::start();
    let (mut c, ack) = RawClient::handshake(
        b.addr(),
        &Connect::v5(&unique_id("rpi")).props(Props::new().byte(REQUEST_PROBLEM_INFORMATION, 0)),
    );
    assert_eq!(ack.code, 0);
    // A PUBLISH the broker refuses (into $SYS) gets a PUBACK with an error
    // code, but no Reason String or User Property when the client asked for
    // none.
    c.send(&publish5("$SYS/not-yours", b"x", 1, false, 3));
    let p = c.read_until_keep(PUBACK);
    let mut cur = Cursor::new(&p.body);
    assert_eq!(cur.u16(), 3);
    if !cur.at_end() {
        let _reason = cur.u8();
        if !cur.at_end() {
            let props = cur.props();
            assert!(
                prop(&props, REASON_STRING).is_none() && prop(&props, USER_PROPERTY).is_none(),
                "[MQTT-3.1.2-29] {props:?}"
            );
        }
    }
}

/// After refusing a CONNECT the server processes nothing more from that
/// client [MQTT-3.1.4-6]: a retained PUBLISH sent right behind the refused
/// CONNECT is never stored.
#[test]
fn mqtt_3_1_4_6_nothing_after_a_refused_connect_is_processed() {
    if skip_unless_tern("two listeners with different anonymous policies") {
        return;
    }
    let b = Broker::start_with(
        "[[listener]]\nname = \"closed\"\nbind = \"127.0.0.1:0\"\nallow_anonymous = false\n\n\
         [[listener]]\nname = \"open\"\nbind = \"127.0.0.1:0\"\nallow_anonymous = true\n",
    );
    let closed = b.listener("closed").expect("closed listener");
    let open = b.listener("open").expect("open listener");
    let mut c = RawClient::connect(closed);
    let mut bytes = Connect::v5(&unique_id("refused")).bytes();
    bytes.extend(publish5("after/refusal", b"sneaked", 0, true, 0));
    c.send(&bytes);
    let seen = c.closed_within(TIMEOUT).expect("closed");
    assert!(seen.iter().all(|p| p.kind() == CONNACK), "{seen:02x?}");
    let mut s = RawClient::v5(open, &unique_id("s"));
    s.subscribe("after/refusal", 0);
    s.expect_silence(std::time::Duration::from_millis(300));
}
