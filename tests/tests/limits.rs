//! Resource limits from `[limits]` and the protocol limits they map to:
//! Maximum Packet Size (5.0 §3.1.2.11.4, §3.2.2.3.6), Receive Maximum and
//! flow control (§4.9), Maximum QoS, Retain Available, Topic Alias Maximum,
//! keep alive (§3.1.2.10), connection caps, queues, and a subscriber that
//! stops reading. Each test starts its own broker.

use std::io::Write;
use std::net::Shutdown;
use std::time::{Duration, Instant};

use tern_blackbox::*;

/// v5 client with CONNECT properties; CONNACK must be success.
fn v5_with(b: &Broker, id: &str, props: Props) -> RawClient {
    let (c, ack) = RawClient::handshake(b.addr(), &Connect::v5(id).props(props));
    assert_eq!(ack.code, 0, "CONNACK refused");
    c
}

/// The broker process is still running and serves a new client.
fn assert_serving(b: &mut Broker) {
    if let Some(st) = b.wait_exit(Duration::ZERO) {
        panic!("broker exited: {st}");
    }
    let mut c = RawClient::v311(b.addr(), &unique_id("probe"));
    assert!(c.sync().is_empty());
    c.disconnect();
}

/// A connection attempt that must be refused: either the socket is closed
/// at once or a CONNACK with an error code comes back, then the close.
fn assert_refused(addr: std::net::SocketAddr, v5: bool) {
    let mut c = RawClient::connect(addr);
    let _ = c.try_send(&Connect::new(if v5 { V5 } else { V311 }, &unique_id("extra")).bytes());
    let seen = c
        .closed_within(TIMEOUT)
        .unwrap_or_else(|e| panic!("extra connection not refused: {e}"));
    for p in &seen {
        let ack = p.connack(v5);
        assert!(ack.code != 0, "extra connection accepted: {seen:02x?}");
    }
}

// ---------------------------------------------------------------------------
// Maximum Packet Size
// ---------------------------------------------------------------------------

#[test]
fn mqtt_3_2_2_15_v5_publish_over_max_packet_size_disconnect_0x95() {
    let mut b = Broker::start_with("[limits]\nmax_packet_size = \"1KiB\"\n");
    let mut c = RawClient::v5(b.addr(), &unique_id("big"));
    // A packet just under the limit is fine.
    c.publish("mps/t", &[b'x'; 900], 1, false);
    let _ = c.try_send(&publish5("mps/t", &[b'x'; 2000], 1, false, 2));
    // [MQTT-3.2.2-15] the client broke the limit: DISCONNECT 0x95 Packet too
    // large (§4.13), then close.
    c.expect_disconnect(0x95, is_tern());
    assert_serving(&mut b);
}

#[test]
fn v311_publish_over_max_packet_size_closes() {
    let mut b = Broker::start_with("[limits]\nmax_packet_size = \"1KiB\"\n");
    let mut c = RawClient::v311(b.addr(), &unique_id("big"));
    let _ = c.try_send(&publish311("mps/t", &[b'x'; 4000], 0, false, 0));
    assert_eq!(c.expect_closed(), None, "3.1.1 has no DISCONNECT from the server");
    assert_serving(&mut b);
}

#[test]
fn oversize_publish_is_refused_before_its_body_arrives() {
    // Only the fixed header of a huge PUBLISH is sent: the broker must judge
    // it by its remaining length, not wait for (and buffer) 100 MB.
    let mut b = Broker::start_with("[limits]\nmax_packet_size = \"64KiB\"\n");
    let mut c = RawClient::v5(b.addr(), &unique_id("hdr"));
    let mut head = vec![0x30];
    head.extend(varint(100 * 1024 * 1024));
    head.extend(string("mps/t"));
    c.send(&head);
    c.expect_disconnect(0x95, is_tern());
    assert_serving(&mut b);
}

#[test]
fn oversize_connect_is_refused() {
    let mut b = Broker::start_with("[limits]\nmax_packet_size = \"1KiB\"\n");
    let big = "v".repeat(3000);
    let cp = Connect::v5(&unique_id("c")).props(Props::new().user("k", &big));
    let mut c = RawClient::connect(b.addr());
    let _ = c.try_send(&cp.bytes());
    // The server MAY answer CONNACK 0x95 before closing; it must not accept.
    let seen = c
        .closed_within(TIMEOUT)
        .expect("oversize CONNECT closes the connection");
    for p in &seen {
        let code = p.connack(true).code;
        assert!(code >= 0x80, "CONNACK {code:#04x} for an oversize CONNECT");
    }
    assert_serving(&mut b);
}

#[test]
fn mqtt_3_1_2_25_server_never_sends_more_than_client_maximum_packet_size() {
    if skip_unless_tern("mosquitto 2.0.11 sends a PUBLISH one byte over the client's Maximum Packet Size") {
        return;
    }
    const MAX: u32 = 256;
    let b = Broker::start();
    let mut s = v5_with(&b, &unique_id("s"), Props::new().u32(MAXIMUM_PACKET_SIZE, MAX));
    s.subscribe("mps/t", 1);
    s.subscribe("sentinel/end", 0);
    let mut p = RawClient::v5(b.addr(), &unique_id("p"));
    // QoS 0 on "mps/t" with no properties: 1 + 2 (remaining length) + 2+5
    // (topic) + 1 (empty property block) + payload = 11 + payload bytes.
    p.publish("mps/t", &[b'a'; 245], 0, false); // exactly 256: sent
    p.publish("mps/t", &[b'b'; 246], 0, false); // 257: dropped
    // QoS 1 adds the packet identifier.
    p.publish("mps/t", &[b'c'; 243], 1, false); // exactly 256: sent
    p.publish("mps/t", &[b'd'; 244], 1, false); // 257: dropped
    // Properties count too [MQTT-3.1.2-24].
    p.send(&publish(
        "mps/t",
        &[b'e'; 200],
        0,
        false,
        0,
        Some(&Props::new().user("k", &"v".repeat(60))),
    ));
    p.publish("mps/t", b"small", 1, false);
    p.publish("sentinel/end", b"", 0, false);
    let mut got = Vec::new();
    loop {
        let pk = s.read_packet();
        assert!(
            pk.bytes().len() <= MAX as usize,
            "[MQTT-3.1.2-24] broker sent a {}-byte packet (type {}, body starts {:02x?}) to a client with \
             Maximum Packet Size {MAX}",
            pk.bytes().len(),
            pk.kind(),
            &pk.body[..pk.body.len().min(12)]
        );
        if pk.kind() != PUBLISH {
            continue;
        }
        let m = pk.publish(true);
        if m.qos == 1 {
            s.send(&ack(PUBACK, m.pid));
        }
        if m.topic == "sentinel/end" {
            break;
        }
        got.push((m.payload[0], m.payload.len()));
    }
    // [MQTT-3.1.2-25] the ones that do not fit are discarded, the rest flow.
    assert_eq!(got, [(b'a', 245), (b'c', 243), (b's', 5)]);
}

#[test]
fn mqtt_3_1_2_24_resend_after_reconnect_respects_the_new_maximum_packet_size() {
    let b = Broker::start();
    let id = unique_id("resend");
    let connect = |max: u32| {
        Connect::v5(&id).clean(false).props(
            Props::new()
                .u32(SESSION_EXPIRY_INTERVAL, 60)
                .u32(MAXIMUM_PACKET_SIZE, max),
        )
    };
    let (mut s, _) = RawClient::handshake(b.addr(), &connect(100_000));
    s.subscribe("resend/t", 1);
    let mut p = RawClient::v5(b.addr(), &unique_id("p"));
    p.publish("resend/t", &[b'x'; 2000], 1, false);
    // Received but never acknowledged: it is in flight when the client goes.
    assert_eq!(s.expect_publish().payload.len(), 2000);
    s.drop_abruptly();
    let (mut s, connack) = RawClient::handshake(b.addr(), &connect(500));
    assert!(connack.session_present);
    p.publish("resend/t", b"small", 1, false);
    loop {
        let pk = s.read_packet();
        assert!(
            pk.bytes().len() <= 500,
            "[MQTT-3.1.2-24] {}-byte packet to a client whose Maximum Packet Size is now 500",
            pk.bytes().len()
        );
        let m = pk.publish(true);
        s.send(&ack(PUBACK, m.pid));
        if m.payload == b"small" {
            break;
        }
    }
}

#[test]
fn retained_message_over_client_maximum_packet_size_not_sent_on_subscribe() {
    let b = Broker::start();
    let mut p = RawClient::v5(b.addr(), &unique_id("p"));
    p.publish("mpsr/big", &[b'x'; 1000], 1, true);
    p.publish("mpsr/small", b"ok", 1, true);
    let mut s = v5_with(&b, &unique_id("s"), Props::new().u32(MAXIMUM_PACKET_SIZE, 200));
    s.subscribe("mpsr/#", 0);
    let m = s.expect_publish();
    assert_eq!((m.topic.as_str(), m.payload.as_slice()), ("mpsr/small", &b"ok"[..]));
    s.expect_silence(Duration::from_millis(300));
}

#[test]
fn mqtt_3_1_2_25_disconnect_reason_string_dropped_to_fit_client_maximum_packet_size() {
    const MAX: u32 = 24;
    let b = Broker::start_with("[limits]\ntopic_alias_maximum = 2\n");
    let (mut c, ack) = RawClient::handshake(
        b.addr(),
        &Connect::v5(&unique_id("tiny")).props(Props::new().u32(MAXIMUM_PACKET_SIZE, MAX)),
    );
    assert_eq!(ack.code, 0);
    let _ = c.try_send(&publish(
        "tiny/t",
        b"x",
        0,
        false,
        0,
        Some(&Props::new().u16(TOPIC_ALIAS, 9)),
    ));
    let seen = c.closed_within(TIMEOUT).expect("closed after a bad topic alias");
    assert!(!is_tern() || !seen.is_empty(), "tern sends a DISCONNECT first");
    for p in &seen {
        // [MQTT-3.1.2-24] even the DISCONNECT must fit; the Reason String is
        // what goes [MQTT-3.1.2-25].
        assert!(p.bytes().len() <= MAX as usize, "{}-byte {p:02x?}", p.bytes().len());
        assert_eq!(p.disconnect().0, 0x94);
    }
}

// ---------------------------------------------------------------------------
// Connection caps
// ---------------------------------------------------------------------------

#[test]
fn max_connections_refuses_the_extra_connection() {
    if skip_unless_tern("mosquitto 2.0.11 admitted a third client with max_connections 2") {
        return;
    }
    let b = Broker::start_with("[limits]\nmax_connections = 2\n");
    let c1 = RawClient::v5(b.addr(), &unique_id("c1"));
    let mut c2 = RawClient::v311(b.addr(), &unique_id("c2"));
    assert_refused(b.addr(), true);
    assert_refused(b.addr(), false);
    // The admitted ones are unaffected.
    assert!(c2.sync().is_empty());
    // A slot freed is a slot available again.
    c1.disconnect();
    let mut admitted = Vec::new();
    assert!(
        wait_until(TIMEOUT, || {
            let mut c = RawClient::connect(b.addr());
            let _ = c.try_send(&Connect::v311(&unique_id("c3")).bytes());
            match c.try_read_packet(Duration::from_millis(500)) {
                Ok(p) if p.connack(false).code == 0 => {
                    admitted.push(c);
                    true
                }
                _ => false,
            }
        }),
        "a connection slot freed by a disconnect must be reusable"
    );
}

#[test]
fn max_connections_per_listener() {
    if skip_unless_tern("per-listener max_connections next to an uncapped listener") {
        return;
    }
    let b = Broker::start_with(
        "[[listener]]\nname = \"capped\"\nbind = \"127.0.0.1:0\"\nallow_anonymous = true\nmax_connections = 1\n\n\
         [[listener]]\nname = \"open\"\nbind = \"127.0.0.1:0\"\nallow_anonymous = true\n",
    );
    let capped = b.listener("capped").expect("capped listener");
    let open = b.listener("open").expect("open listener");
    let _c1 = RawClient::v5(capped, &unique_id("c1"));
    assert_refused(capped, true);
    assert_refused(capped, false);
    // The other listener has only the broker-wide cap.
    let _o: Vec<RawClient> = (0..3)
        .map(|i| RawClient::v5(open, &unique_id(&format!("o{i}"))))
        .collect();
}

#[test]
fn max_connections_counts_across_listeners() {
    if skip_unless_tern("broker-wide max_connections over two listeners") {
        return;
    }
    let b = Broker::start_with(
        "[limits]\nmax_connections = 2\n\n\
         [[listener]]\nname = \"a\"\nbind = \"127.0.0.1:0\"\nallow_anonymous = true\n\n\
         [[listener]]\nname = \"b\"\nbind = \"127.0.0.1:0\"\nallow_anonymous = true\n",
    );
    let a = b.listener("a").unwrap();
    let bb = b.listener("b").unwrap();
    let _c1 = RawClient::v5(a, &unique_id("c1"));
    let _c2 = RawClient::v5(bb, &unique_id("c2"));
    assert_refused(a, true);
    assert_refused(bb, true);
}

// ---------------------------------------------------------------------------
// Flow control
// ---------------------------------------------------------------------------

#[test]
fn mqtt_3_3_4_7_client_over_receive_maximum_disconnect_0x93() {
    if skip_unless_tern("receive_maximum (mosquitto 2.0.11 does not enforce it)") {
        return;
    }
    let b = Broker::start_with("[limits]\nreceive_maximum = 2\n");
    let (mut c, connack) = RawClient::handshake(b.addr(), &Connect::v5(&unique_id("rx")));
    assert_eq!(prop(&connack.props, RECEIVE_MAXIMUM), Some(&Prop::U16(2)));
    // Two QoS 2 in flight, released: the window is free again.
    for round in 0..3u16 {
        for i in 1..=2u16 {
            c.send(&publish5("rx/t", b"x", 2, false, round * 2 + i));
        }
        let recs = [c.read_packet(), c.read_packet()];
        for rec in &recs {
            assert_eq!(rec.kind(), PUBREC, "{rec:02x?}");
            c.send(&ack(PUBREL, rec.ack().0));
        }
        for _ in 0..2 {
            assert_eq!(c.read_packet().kind(), PUBCOMP);
        }
    }
    // QoS 1 is acknowledged at once, so it never fills the window.
    for _ in 0..10 {
        c.publish("rx/q1", b"x", 1, false);
    }
    // Now three unreleased QoS 2: the third exceeds Receive Maximum 2.
    for pid in 201..=203u16 {
        let _ = c.try_send(&publish5("rx/t", b"x", 2, false, pid));
    }
    let seen = c
        .closed_within(TIMEOUT)
        .expect("closed after exceeding Receive Maximum");
    let d = seen
        .iter()
        .find(|p| p.kind() == DISCONNECT)
        .unwrap_or_else(|| panic!("no DISCONNECT in {seen:02x?}"));
    assert_eq!(d.disconnect().0, 0x93, "[MQTT-3.3.4-7] Receive Maximum exceeded");
    // Exactly two PUBRECs before the DISCONNECT: the third was not accepted.
    assert_eq!(seen.iter().filter(|p| p.kind() == PUBREC).count(), 2, "{seen:02x?}");
}

#[test]
fn max_inflight_bounds_outbound_qos1_window_v311() {
    if skip_unless_tern("mosquitto 2.0.11 sends more than max_inflight_messages") {
        return;
    }
    let b = Broker::start_with("[limits]\nmax_inflight = 3\n");
    let mut s = RawClient::v311(b.addr(), &unique_id("s"));
    s.subscribe("inf/t", 1);
    let mut p = RawClient::v311(b.addr(), &unique_id("p"));
    for i in 0..10u8 {
        p.publish("inf/t", &[i], 1, false);
    }
    let first: Vec<Publish> = (0..3).map(|_| s.expect_publish()).collect();
    assert_eq!(
        first.iter().map(|m| m.payload[0]).collect::<Vec<_>>(),
        [0, 1, 2],
        "in order (§4.6)"
    );
    s.expect_silence(Duration::from_millis(400));
    // Each acknowledgement lets exactly one more through.
    s.send(&ack(PUBACK, first[0].pid));
    let m = s.expect_publish();
    assert_eq!(m.payload, [3]);
    s.expect_silence(Duration::from_millis(300));
    s.send(&ack(PUBACK, first[1].pid));
    s.send(&ack(PUBACK, first[2].pid));
    s.send(&ack(PUBACK, m.pid));
    let mut rest = Vec::new();
    while rest.len() < 6 {
        let m = s.expect_publish();
        s.send(&ack(PUBACK, m.pid));
        rest.push(m.payload[0]);
    }
    assert_eq!(rest, [4, 5, 6, 7, 8, 9]);
}

#[test]
fn max_inflight_caps_a_larger_v5_receive_maximum() {
    if skip_unless_tern("mosquitto 2.0.11 sends more than max_inflight_messages") {
        return;
    }
    let b = Broker::start_with("[limits]\nmax_inflight = 2\n");
    let mut s = v5_with(&b, &unique_id("s"), Props::new().u16(RECEIVE_MAXIMUM, 100));
    s.subscribe("inf5/t", 2);
    let mut p = RawClient::v5(b.addr(), &unique_id("p"));
    for i in 0..5u8 {
        p.publish("inf5/t", &[i], 2, false);
    }
    let a = s.expect_publish();
    let c = s.expect_publish();
    assert_eq!((a.payload[0], c.payload[0]), (0, 1));
    s.expect_silence(Duration::from_millis(400));
    // QoS 2: the slot frees at PUBCOMP, not at PUBREC (§4.9).
    s.send(&ack(PUBREC, a.pid));
    let rel = s.read_until_keep(PUBREL);
    assert_eq!(rel.ack().0, a.pid);
    s.expect_silence(Duration::from_millis(300));
    s.send(&ack(PUBCOMP, a.pid));
    assert_eq!(s.expect_publish().payload, [2]);
}

// ---------------------------------------------------------------------------
// Offline queue bounds
// ---------------------------------------------------------------------------

/// Subscribe persistently at QoS 1, go away, let `publish` run, come back
/// and collect what was kept (acking it), in order.
fn offline_queue_after(b: &Broker, topic: &str, publish: impl FnOnce(&mut RawClient)) -> Vec<Vec<u8>> {
    let id = unique_id("off");
    let (mut c, _) = RawClient::handshake(b.addr(), &Connect::v311(&id).clean(false));
    c.subscribe(topic, 1);
    c.subscribe("sentinel/end", 1);
    c.disconnect();
    let mut p = RawClient::v311(b.addr(), &unique_id("p"));
    publish(&mut p);
    let (mut c, ack) = RawClient::handshake(b.addr(), &Connect::v311(&id).clean(false));
    assert!(ack.session_present);
    // The sentinel goes out once the session is back online, so it is never
    // counted against the offline bound.
    p.publish("sentinel/end", b"", 1, false);
    c.collect_until_topic("sentinel/end")
        .into_iter()
        .map(|m| m.payload)
        .collect()
}

#[test]
fn max_queued_messages_bounds_offline_session_queue() {
    let b = Broker::start_with("[limits]\nmax_queued_messages = 5\n");
    let got = offline_queue_after(&b, "bq/t", |p| {
        for i in 0..40u8 {
            p.publish("bq/t", &[i], 1, false);
        }
    });
    let ids: Vec<u8> = got.iter().map(|p| p[0]).collect();
    if is_tern() {
        assert_eq!(ids.len(), 5, "exactly the queue bound is kept: {ids:?}");
    } else {
        assert!(!ids.is_empty() && ids.len() <= 5 + 20, "{ids:?}");
    }
    // Whichever end was dropped, what is kept is a contiguous, ordered run
    // of the oldest or the newest.
    let contiguous = ids.windows(2).all(|w| w[1] == w[0] + 1);
    assert!(contiguous, "kept messages in order, no holes: {ids:?}");
    assert!(
        ids[0] == 0 || *ids.last().unwrap() == 39,
        "oldest or newest kept: {ids:?}"
    );
}

#[test]
fn max_queued_bytes_bounds_offline_session_queue() {
    let b = Broker::start_with("[limits]\nmax_queued_messages = 1000\nmax_queued_bytes = \"8KiB\"\n");
    let got = offline_queue_after(&b, "bb/t", |p| {
        for i in 0..40u8 {
            let mut payload = vec![i; 1000];
            payload[0] = i;
            p.publish("bb/t", &payload, 1, false);
        }
    });
    let total: usize = got.iter().map(Vec::len).sum();
    assert!(!got.is_empty(), "some messages are kept");
    // Mosquitto checks the bound before adding, so it may overshoot by one.
    let bound = if is_tern() { 8 * 1024 } else { 8 * 1024 + 1000 };
    assert!(
        total <= bound,
        "{} messages, {total} bytes kept past an 8 KiB bound",
        got.len()
    );
    let ids: Vec<u8> = got.iter().map(|p| p[0]).collect();
    assert!(ids.windows(2).all(|w| w[1] == w[0] + 1), "ordered, no holes: {ids:?}");
}

#[test]
fn queue_bound_keeps_qos1_over_qos0_for_online_slow_reader() {
    // An online subscriber that does not read: its queue is bounded too, and
    // when full it gives up QoS 0 before QoS 1.
    if skip_unless_tern("tern's eviction order (QoS 0 first)") {
        return;
    }
    let b = Broker::start_with("[limits]\nmax_queued_messages = 4\nmax_inflight = 1\n");
    let mut s = RawClient::v311(b.addr(), &unique_id("s"));
    s.subscribe("mix/#", 1);
    let mut p = RawClient::v311(b.addr(), &unique_id("p"));
    // The first QoS 1 fills the in-flight window (1); the next one waits at
    // the head of the queue, and everything after it queues behind it.
    p.publish("mix/q1", b"first", 1, false);
    let first = s.expect_publish();
    p.publish("mix/q1", &[0], 1, false);
    for i in 0..4u8 {
        p.publish("mix/q0", &[i], 0, false);
    }
    for i in 1..4u8 {
        p.publish("mix/q1", &[i], 1, false);
    }
    assert!(p.sync().is_empty());
    s.send(&ack(PUBACK, first.pid));
    let mut got = Vec::new();
    for _ in 0..4 {
        let m = s.expect_publish();
        if m.qos == 1 {
            s.send(&ack(PUBACK, m.pid));
        }
        got.push((m.topic, m.payload[0]));
    }
    s.expect_silence(Duration::from_millis(300));
    let want: Vec<(String, u8)> = (0..4u8).map(|i| ("mix/q1".to_string(), i)).collect();
    assert_eq!(got, want, "the QoS 0 messages were evicted for the QoS 1 ones");
}

// ---------------------------------------------------------------------------
// Timeouts
// ---------------------------------------------------------------------------

#[test]
fn handshake_timeout_closes_a_silent_socket() {
    if skip_unless_tern("handshake_timeout") {
        return;
    }
    let mut b = Broker::start_with("[limits]\nhandshake_timeout = \"1s\"\n");
    let mut silent = RawClient::connect(b.addr());
    // Half a CONNECT is no better than nothing.
    let mut partial = RawClient::connect(b.addr());
    let connect = Connect::v311("partial").bytes();
    partial.send(&connect[..5]);
    assert_eq!(silent.expect_closed_within(Duration::from_secs(5)), None);
    assert_eq!(partial.expect_closed_within(Duration::from_secs(5)), None);
    assert_serving(&mut b);
}

#[test]
fn handshake_timeout_does_not_affect_connected_clients() {
    if skip_unless_tern("handshake_timeout") {
        return;
    }
    let b = Broker::start_with("[limits]\nhandshake_timeout = \"1s\"\n");
    let mut c = RawClient::v311(b.addr(), &unique_id("c"));
    std::thread::sleep(Duration::from_millis(1500));
    assert!(c.sync().is_empty(), "a connected client outlives the handshake timeout");
}

#[test]
fn mqtt_3_1_2_22_v5_keep_alive_expiry_disconnects_0x8d_and_publishes_will() {
    let b = Broker::start();
    let mut s = RawClient::v5(b.addr(), &unique_id("s"));
    s.subscribe("ka/will", 0);
    let (mut w, ack) = RawClient::handshake(
        b.addr(),
        &Connect::v5(&unique_id("w"))
            .keep_alive(1)
            .will(Will::new("ka/will", b"silent", 0, false)),
    );
    assert_eq!(ack.code, 0);
    // [MQTT-3.1.2-22] 1.5 x keep alive without a packet: the server closes,
    // a v5 client hears 0x8D Keep Alive timeout first. (Mosquitto checks
    // keep alive only every few seconds.)
    let limit = Duration::from_secs(if is_tern() { 5 } else { 15 });
    match w.expect_closed_within(limit) {
        Some(r) => assert_eq!(r, 0x8D, "DISCONNECT reason code"),
        None if is_tern() => panic!("closed without DISCONNECT 0x8D"),
        None => {}
    }
    let m = s
        .try_read_packet(Duration::from_secs(5))
        .expect("will after keep-alive expiry [MQTT-3.1.2-8]")
        .publish(true);
    assert_eq!((m.topic.as_str(), m.payload.as_slice()), ("ka/will", &b"silent"[..]));
}

#[test]
fn keep_alive_is_satisfied_by_pingreq() {
    let b = Broker::start();
    let mut c = RawClient::connect(b.addr());
    c.send(&Connect::v311(&unique_id("ka")).keep_alive(1).bytes());
    c.expect(&[0x20, 0x02, 0x00, 0x00]);
    // Three seconds, twice the 1.5 s grace, kept alive by PINGREQs.
    for _ in 0..5 {
        std::thread::sleep(Duration::from_millis(600));
        c.send(&pingreq());
        c.expect(&[0xD0, 0x00]);
    }
}

#[test]
fn keep_alive_zero_means_no_timeout() {
    let b = Broker::start();
    let mut c = RawClient::connect(b.addr());
    c.send(&Connect::v311(&unique_id("ka0")).keep_alive(0).bytes());
    c.expect(&[0x20, 0x02, 0x00, 0x00]);
    // Keep alive 0 turns the mechanism off (§3.1.2.10).
    c.expect_silence(Duration::from_millis(2500));
    assert!(c.sync().is_empty());
}

// ---------------------------------------------------------------------------
// Client identifier, QoS, retain, topic alias
// ---------------------------------------------------------------------------

#[test]
fn max_session_expiry_caps_the_requested_interval() {
    if skip_unless_tern("max_session_expiry") {
        return;
    }
    let b = Broker::start_with("[limits]\nmax_session_expiry = \"1s\"\n");
    let id = unique_id("cap");
    let persistent = Connect::v5(&id)
        .clean(false)
        .props(Props::new().u32(SESSION_EXPIRY_INTERVAL, 3600));
    let (c, ack) = RawClient::handshake(b.addr(), &persistent);
    // §3.2.2.3.2: a server that uses another interval than asked says so.
    assert_eq!(prop(&ack.props, SESSION_EXPIRY_INTERVAL), Some(&Prop::U32(1)));
    c.disconnect();
    std::thread::sleep(Duration::from_millis(2200));
    let (_c, ack) = RawClient::handshake(b.addr(), &persistent);
    assert!(!ack.session_present, "the session expired after the capped 1 s");
}

#[test]
fn max_client_id_len_refuses_longer_identifiers() {
    if skip_unless_tern("max_client_id_len") {
        return;
    }
    let b = Broker::start_with("[limits]\nmax_client_id_len = 8\n");
    let ok = RawClient::v311(b.addr(), "abcdefgh");
    ok.disconnect();
    // 3.1.1: CONNACK 0x02 Identifier rejected, then close [MQTT-3.2.2-5].
    let mut c = RawClient::connect(b.addr());
    c.send(&Connect::v311("abcdefghi").bytes());
    c.expect(&[0x20, 0x02, 0x00, 0x02]);
    c.expect_closed();
    // 5.0: CONNACK 0x85 Client Identifier not valid.
    let (mut c, ack) = RawClient::handshake(b.addr(), &Connect::v5("abcdefghi"));
    assert_eq!(ack.code, 0x85);
    c.expect_closed();
}

#[test]
fn max_qos_1_downgrades_subscriptions() {
    let b = Broker::start_with("[limits]\nmax_qos = 1\n");
    let (mut s5, connack) = RawClient::handshake(b.addr(), &Connect::v5(&unique_id("s5")));
    // [MQTT-3.2.2-9] Maximum QoS is sent when below 2.
    assert_eq!(prop(&connack.props, MAXIMUM_QOS), Some(&Prop::Byte(1)));
    assert_eq!(s5.subscribe("mq/t", 2), 1, "v5 SUBACK grants QoS 1");
    let mut s3 = RawClient::v311(b.addr(), &unique_id("s3"));
    assert_eq!(s3.subscribe("mq/t", 2), 1, "3.1.1 SUBACK grants QoS 1");
    let mut p = RawClient::v5(b.addr(), &unique_id("p"));
    p.publish("mq/t", b"x", 1, false);
    for s in [&mut s5, &mut s3] {
        let m = s.expect_publish();
        assert_eq!(m.qos, 1);
        s.send(&ack(PUBACK, m.pid));
    }
}

#[test]
fn mqtt_3_2_2_11_v5_publish_above_maximum_qos_disconnect_0x9b() {
    let b = Broker::start_with("[limits]\nmax_qos = 1\n");
    let mut c = RawClient::v5(b.addr(), &unique_id("q2"));
    let _ = c.try_send(&publish5("mq/t", b"x", 2, false, 1));
    c.expect_disconnect(0x9B, is_tern());
}

#[test]
fn mqtt_3_2_2_12_will_qos_above_maximum_qos_refused_0x9b() {
    let b = Broker::start_with("[limits]\nmax_qos = 1\n");
    let (mut c, ack) = RawClient::handshake(
        b.addr(),
        &Connect::v5(&unique_id("wq")).will(Will::new("mq/will", b"x", 2, false)),
    );
    assert_eq!(ack.code, 0x9B, "CONNACK 0x9B QoS not supported");
    c.expect_closed();
}

#[test]
fn retain_available_false_refuses_retained_publish_and_will() {
    let b = Broker::start_with("[limits]\nretain_available = false\n");
    let (mut c, ack) = RawClient::handshake(b.addr(), &Connect::v5(&unique_id("r")));
    assert_eq!(ack.code, 0);
    // Retain Available 0 is announced (§3.2.2.3.5).
    assert_eq!(prop(&ack.props, RETAIN_AVAILABLE), Some(&Prop::Byte(0)));
    // A plain PUBLISH still flows.
    c.publish("ra/t", b"x", 1, false);
    let _ = c.try_send(&publish5("ra/t", b"x", 0, true, 0));
    // [MQTT-3.2.2-14] DISCONNECT 0x9A Retain not supported.
    c.expect_disconnect(0x9A, is_tern());

    let (mut w, ack) = RawClient::handshake(
        b.addr(),
        &Connect::v5(&unique_id("w")).will(Will::new("ra/will", b"x", 0, true)),
    );
    // [MQTT-3.2.2-13] a retained will is refused with 0x9A.
    assert_eq!(ack.code, 0x9A);
    w.expect_closed();
}

#[test]
fn retain_available_false_stores_nothing_for_v311() {
    let b = Broker::start_with("[limits]\nretain_available = false\n");
    let mut p = RawClient::v311(b.addr(), &unique_id("p"));
    // 3.1.1 has no way to refuse it; whatever the broker does, nothing must
    // be retained.
    let _ = p.try_send(&publish311("ra3/t", b"x", 0, true, 0));
    let _ = p.closed_within(Duration::from_millis(300));
    let mut s = RawClient::v311(b.addr(), &unique_id("s"));
    s.subscribe("ra3/t", 0);
    s.expect_silence(Duration::from_millis(500));
}

#[test]
fn mqtt_3_3_2_9_topic_alias_maximum_2_allows_1_and_2_refuses_3_with_0x94() {
    let b = Broker::start_with("[limits]\ntopic_alias_maximum = 2\n");
    let mut c = RawClient::v5(b.addr(), &unique_id("ta"));
    // Aliases 1 and 2 are fine.
    for a in 1..=2u16 {
        c.send(&publish(
            "ta/t",
            b"x",
            0,
            false,
            0,
            Some(&Props::new().u16(TOPIC_ALIAS, a)),
        ));
    }
    assert!(c.sync().is_empty());
    let _ = c.try_send(&publish(
        "ta/t",
        b"x",
        0,
        false,
        0,
        Some(&Props::new().u16(TOPIC_ALIAS, 3)),
    ));
    c.expect_disconnect(0x94, is_tern());
}

#[test]
fn topic_alias_maximum_zero_refuses_any_alias() {
    let b = Broker::start_with("[limits]\ntopic_alias_maximum = 0\n");
    let (mut c, ack) = RawClient::handshake(b.addr(), &Connect::v5(&unique_id("ta0")));
    // Absent means 0 [MQTT-3.2.2-18]; 0 itself is allowed too.
    assert!(matches!(
        prop(&ack.props, TOPIC_ALIAS_MAXIMUM),
        None | Some(Prop::U16(0))
    ));
    let _ = c.try_send(&publish(
        "ta/t",
        b"x",
        0,
        false,
        0,
        Some(&Props::new().u16(TOPIC_ALIAS, 1)),
    ));
    // [MQTT-3.2.2-18] [MQTT-3.3.2-9]
    c.expect_disconnect(0x94, is_tern());
}

// ---------------------------------------------------------------------------
// A subscriber that stops reading, and large backlogs
// ---------------------------------------------------------------------------

#[test]
fn slow_consumer_does_not_stall_others_or_grow_memory() {
    const N: usize = 1600;
    const SIZE: usize = 64 * 1024;
    let b = Broker::start();
    // The slow one subscribes and then never reads again.
    let mut slow = RawClient::v311(b.addr(), &unique_id("slow"));
    slow.subscribe("flood/#", 0);
    let mut fast = RawClient::v311(b.addr(), &unique_id("fast"));
    fast.subscribe("flood/#", 1);
    let mut p = RawClient::v311(b.addr(), &unique_id("p"));
    p.publish("flood/warmup", b"w", 0, false);
    assert_eq!(fast.expect_publish().topic, "flood/warmup");
    let before = b.rss_kib();

    let reader = std::thread::spawn(move || {
        let mut count = 0usize;
        let mut last = None;
        loop {
            let m = match fast.try_read_packet(Duration::from_secs(20)) {
                Ok(pk) if pk.kind() == PUBLISH => pk.publish(false),
                Ok(_) => continue,
                Err(e) => return Err(format!("fast subscriber stalled after {count} messages: {e}")),
            };
            if m.qos == 1 {
                fast.send(&ack(PUBACK, m.pid));
            }
            if m.topic == "flood/end" {
                return Ok(count);
            }
            let seq = u32::from_be_bytes(m.payload[..4].try_into().unwrap());
            if let Some(prev) = last {
                assert!(seq > prev, "out of order: {seq} after {prev}");
            }
            last = Some(seq);
            count += 1;
        }
    });

    p.stream.set_write_timeout(Some(Duration::from_secs(20))).unwrap();
    let mut payload = vec![b'f'; SIZE];
    for i in 0..N as u32 {
        payload[..4].copy_from_slice(&i.to_be_bytes());
        p.stream
            .write_all(&publish311("flood/data", &payload, 0, false, 0))
            .unwrap_or_else(|e| panic!("publisher blocked at message {i}: {e}"));
    }
    // The end marker is QoS 1: a bounded queue may shed QoS 0 but not this.
    p.publish("flood/end", b"", 1, false);
    let after_publish = b.rss_kib();
    let got = reader.join().expect("reader thread").unwrap_or_else(|e| panic!("{e}"));
    let after = after_publish.max(b.rss_kib());
    let growth_mib = after.saturating_sub(before) / 1024;
    eprintln!(
        "slow consumer: fast subscriber got {got}/{N}; RSS {} -> {} MiB",
        before / 1024,
        after / 1024
    );
    assert!(
        growth_mib < 64,
        "broker RSS grew {growth_mib} MiB while {} MiB went to a subscriber that does not read",
        (N * SIZE) >> 20
    );
    // QoS 0 may be shed under pressure, but the fast subscriber must not be
    // starved because of the slow one.
    assert!(got >= N / 4, "fast subscriber got only {got}/{N}");
    // Closed only now, so it stayed connected and unread through the flood.
    let _ = slow.stream.shutdown(Shutdown::Both);
}

#[test]
fn backlog_of_large_qos1_messages_drains_without_further_activity() {
    const N: usize = 200;
    const SIZE: usize = 100 * 1024;
    let b = Broker::start_with("[limits]\nmax_queued_messages = 1000\nmax_queued_bytes = \"64MiB\"\n");
    let mut s = RawClient::v311(b.addr(), &unique_id("s"));
    s.subscribe("backlog/t", 1);
    let mut p = RawClient::v311(b.addr(), &unique_id("p"));
    let mut payload = vec![b'b'; SIZE];
    for i in 0..N as u32 {
        payload[..4].copy_from_slice(&i.to_be_bytes());
        p.publish("backlog/t", &payload, 1, false);
    }
    // Nothing else is published from here on: the subscriber's own reads and
    // PUBACKs are all that drive the rest out.
    for i in 0..N as u32 {
        let pk = s
            .try_read_packet(Duration::from_secs(10))
            .unwrap_or_else(|e| panic!("stalled after {i} of {N} messages: {e}"));
        let m = pk.publish(false);
        assert_eq!(m.payload.len(), SIZE);
        assert_eq!(u32::from_be_bytes(m.payload[..4].try_into().unwrap()), i, "in order");
        s.send(&ack(PUBACK, m.pid));
    }
    s.expect_silence(Duration::from_millis(200));
}

/// Publishes `n` retained QoS 1 messages of `size` bytes on `storm/<i>`,
/// keeping at most 16 unacknowledged.
fn publish_retained_storm(p: &mut RawClient, n: u16, size: usize) {
    let payload = vec![b'r'; size];
    let mut outstanding = 0;
    for i in 1..=n {
        p.send(&publish311(&format!("storm/{i}"), &payload, 1, true, i));
        outstanding += 1;
        if outstanding == 16 || i == n {
            for _ in 0..outstanding {
                p.read_until_keep(PUBACK);
            }
            outstanding = 0;
        }
    }
}

/// Subscribes to `#` at `qos` and reads retained messages (acking) until
/// `want` have arrived or a second passes with nothing new.
fn read_retained(s: &mut RawClient, qos: u8, want: usize) -> std::collections::BTreeSet<String> {
    s.subscribe("#", qos);
    let mut topics = std::collections::BTreeSet::new();
    while topics.len() < want {
        let Ok(pk) = s.try_read_packet(Duration::from_secs(1)) else {
            break;
        };
        let m = pk.publish(false);
        assert!(m.retain, "retained delivery on subscribe carries RETAIN");
        if m.qos == 1 {
            s.send(&ack(PUBACK, m.pid));
        }
        topics.insert(m.topic);
    }
    topics
}

#[test]
fn mqtt_3_3_1_6_retained_storm_500_of_10k_all_delivered_with_default_limits() {
    let b = Broker::start();
    let mut p = RawClient::v311(b.addr(), &unique_id("p"));
    let start = Instant::now();
    publish_retained_storm(&mut p, 500, 10 * 1024);
    eprintln!("500 retained published in {:?}", start.elapsed());
    let mut s = RawClient::v311(b.addr(), &unique_id("s"));
    // [MQTT-3.3.1-6] every matching retained message is sent to a new
    // subscription; the client is online and reading.
    let topics = read_retained(&mut s, 1, 500);
    assert_eq!(topics.len(), 500, "retained messages received on subscribe to #");
}

#[test]
fn retained_storm_500_of_10k_all_delivered_with_room_in_the_queue() {
    let b = Broker::start_with("[limits]\nmax_queued_bytes = \"16MiB\"\n");
    let mut p = RawClient::v311(b.addr(), &unique_id("p"));
    publish_retained_storm(&mut p, 500, 10 * 1024);
    for qos in [0, 1] {
        let mut s = RawClient::v311(b.addr(), &unique_id("s"));
        let topics = read_retained(&mut s, qos, 500);
        assert_eq!(topics.len(), 500, "QoS {qos} subscription to #");
    }
}
