//! Topics and filters with tens of thousands of levels. A topic may be up to
//! 65,535 bytes [MQTT-4.7.3-3], so `a/a/a/...` can have 32,768 levels; a
//! broker that walks its topic trie recursively can overflow its stack on
//! one such packet. Whatever the broker decides (deliver, or refuse
//! clearly), it must not crash and must go on serving everyone else.

use std::time::Duration;

use tern_blackbox::*;

/// 30,000 levels of `level`: 59,999 bytes for a one-character level.
const LEVELS: usize = 30_000;

fn deep(level: &str) -> String {
    vec![level; LEVELS].join("/")
}

/// The broker process is still running and still routes between two new
/// clients.
fn assert_serving(b: &mut Broker) {
    if let Some(st) = b.wait_exit(Duration::from_millis(100)) {
        panic!("broker died: {st}");
    }
    let mut s = RawClient::v311(b.addr(), &unique_id("after-s"));
    s.subscribe("after/t", 1);
    let mut p = RawClient::v311(b.addr(), &unique_id("after-p"));
    p.publish("after/t", b"still here", 1, false);
    let m = s.expect_publish();
    assert_eq!(m.payload, b"still here");
}

/// What a client saw after sending something deep: a packet, or the close.
#[derive(Debug)]
enum Outcome {
    Packet(Packet),
    Closed(Option<u8>),
}

fn next(c: &mut RawClient) -> Outcome {
    match c.try_read_packet(TIMEOUT) {
        Ok(p) if p.kind() == DISCONNECT => {
            let r = p.disconnect().0;
            let _ = c.closed_within(TIMEOUT);
            Outcome::Closed(Some(r))
        }
        Ok(p) => Outcome::Packet(p),
        Err(e) if e.kind() == std::io::ErrorKind::TimedOut => panic!("no answer within {TIMEOUT:?}"),
        Err(_) => Outcome::Closed(None),
    }
}

#[test]
fn publish_to_a_30000_level_topic_with_a_hash_subscriber() {
    let mut b = Broker::start();
    let topic = deep("a");
    assert!(topic.len() <= 65_535);
    let mut all = RawClient::v5(b.addr(), &unique_id("all"));
    all.subscribe("#", 0);
    let mut p = RawClient::v5(b.addr(), &unique_id("p"));
    p.send(&publish5(&topic, b"deep", 1, false, 1));
    match next(&mut p) {
        Outcome::Packet(pk) => {
            assert_eq!(pk.kind(), PUBACK, "{pk:02x?}");
            if pk.ack().1 < 0x80 {
                let m = all.expect_publish();
                assert_eq!((m.topic.len(), m.payload.as_slice()), (topic.len(), &b"deep"[..]));
            }
        }
        // A clear refusal is acceptable.
        Outcome::Closed(r) => assert!(r.is_none_or(|r| r >= 0x80), "DISCONNECT {r:?}"),
    }
    assert_serving(&mut b);
}

/// Subscribes `c` to `filter`; true when the broker granted it. A clear
/// refusal (SUBACK failure code, or DISCONNECT / close) is acceptable.
fn try_subscribe(c: &mut RawClient, filter: &str, qos: u8) -> bool {
    c.send(&subscribe(3, &[(filter, qos)], c.v5.then(Props::new).as_ref()));
    match next(c) {
        Outcome::Packet(pk) => {
            let (pid, codes) = pk.suback(c.v5);
            assert_eq!(pid, 3);
            codes[0] < 0x80
        }
        Outcome::Closed(r) => {
            assert!(r.is_none_or(|r| r >= 0x80), "DISCONNECT {r:?}");
            false
        }
    }
}

/// Publishes retained QoS 1 on `topic`; true when the broker accepted it.
fn try_publish_retained(c: &mut RawClient, topic: &str, payload: &[u8]) -> bool {
    c.send(&publish311(topic, payload, 1, true, 1));
    match next(c) {
        Outcome::Packet(pk) => pk.kind() == PUBACK,
        Outcome::Closed(_) => false,
    }
}

#[test]
fn subscribe_to_a_30000_level_filter() {
    let mut b = Broker::start();
    let mut s = RawClient::v5(b.addr(), &unique_id("s"));
    try_subscribe(&mut s, &deep("a"), 1);
    let mut w = RawClient::v5(b.addr(), &unique_id("w"));
    let mut filter = deep("+");
    filter.push_str("/#");
    try_subscribe(&mut w, &filter, 1);
    assert_serving(&mut b);
}

#[test]
fn publish_matching_a_30000_level_subscription() {
    let mut b = Broker::start();
    let topic = deep("a");
    let mut all = RawClient::v5(b.addr(), &unique_id("all"));
    all.subscribe("#", 0);
    let mut s = RawClient::v5(b.addr(), &unique_id("s"));
    let granted = try_subscribe(&mut s, &topic, 1);
    let mut p = RawClient::v5(b.addr(), &unique_id("p"));
    p.send(&publish5(&topic, b"deep", 1, false, 1));
    let accepted = match next(&mut p) {
        Outcome::Packet(pk) => pk.kind() == PUBACK && pk.ack().1 < 0x80,
        Outcome::Closed(_) => false,
    };
    if granted && accepted {
        let m = s.expect_publish();
        assert_eq!(m.topic, topic);
        s.send(&ack(PUBACK, m.pid));
        assert_eq!(all.expect_publish().topic, topic);
    }
    assert_serving(&mut b);
}

#[test]
fn publish_matching_a_30000_level_wildcard_subscription() {
    let mut b = Broker::start();
    let mut filter = deep("+");
    filter.push_str("/#");
    let mut s = RawClient::v5(b.addr(), &unique_id("s"));
    let granted = try_subscribe(&mut s, &filter, 0);
    let topic = deep("b");
    let mut p = RawClient::v5(b.addr(), &unique_id("p"));
    p.send(&publish5(&topic, b"deep", 0, false, 0));
    p.send(&pingreq());
    if let Outcome::Packet(pk) = next(&mut p) {
        assert_eq!(pk.kind(), PINGRESP, "{pk:02x?}");
        if granted {
            assert_eq!(s.expect_publish().topic, topic);
        }
    }
    assert_serving(&mut b);
}

#[test]
fn unsubscribe_a_30000_level_filter() {
    let mut b = Broker::start();
    let topic = deep("a");
    let mut s = RawClient::v311(b.addr(), &unique_id("s"));
    if try_subscribe(&mut s, &topic, 0) {
        s.send(&unsubscribe(6, &[&topic], None));
        if let Outcome::Packet(pk) = next(&mut s) {
            assert_eq!(pk.kind(), UNSUBACK);
        }
    }
    assert_serving(&mut b);
}

#[test]
fn session_end_removes_a_30000_level_subscription() {
    let mut b = Broker::start();
    let mut s = RawClient::v311(b.addr(), &unique_id("s"));
    try_subscribe(&mut s, &deep("a"), 0);
    // A clean session ends with its connection, taking its subscriptions.
    s.drop_abruptly();
    std::thread::sleep(Duration::from_millis(200));
    assert_serving(&mut b);
}

#[test]
fn hash_subscription_with_a_30000_level_retained_topic() {
    let mut b = Broker::start();
    let topic = deep("r");
    let mut p = RawClient::v311(b.addr(), &unique_id("p"));
    let stored = try_publish_retained(&mut p, &topic, b"kept");
    // A new `#` subscriber walks the whole retained tree.
    let mut s = RawClient::v311(b.addr(), &unique_id("s"));
    assert!(try_subscribe(&mut s, "#", 0), "a plain `#` subscription is granted");
    if stored {
        let m = s.expect_publish();
        assert_eq!((m.topic.len(), m.retain), (topic.len(), true));
    }
    assert_serving(&mut b);
}

#[test]
fn deep_filter_with_a_30000_level_retained_topic() {
    let mut b = Broker::start();
    let topic = deep("r");
    let mut p = RawClient::v311(b.addr(), &unique_id("p"));
    let stored = try_publish_retained(&mut p, &topic, b"kept");
    let mut s = RawClient::v311(b.addr(), &unique_id("s"));
    if try_subscribe(&mut s, &topic, 0) && stored {
        let m = s.expect_publish();
        assert_eq!((m.topic.len(), m.retain), (topic.len(), true));
    }
    assert_serving(&mut b);
}

#[test]
fn clearing_a_30000_level_retained_topic() {
    let mut b = Broker::start();
    let topic = deep("r");
    let mut p = RawClient::v311(b.addr(), &unique_id("p"));
    if try_publish_retained(&mut p, &topic, b"kept") {
        // [MQTT-3.3.1-10] an empty retained payload clears the topic.
        try_publish_retained(&mut p, &topic, b"");
    }
    assert_serving(&mut b);
}

#[test]
fn deep_topic_in_a_will() {
    let mut b = Broker::start();
    let topic = deep("w");
    let mut s = RawClient::v311(b.addr(), &unique_id("s"));
    s.subscribe("#", 0);
    let mut w = RawClient::connect(b.addr());
    w.send(
        &Connect::v311(&unique_id("w"))
            .will(Will::new(&topic, b"bye", 0, true))
            .bytes(),
    );
    // Accepted, or refused with a CONNACK code or a close.
    if let Outcome::Packet(pk) = next(&mut w)
        && pk.connack(false).code == 0
    {
        w.drop_abruptly();
        let m = s.expect_publish();
        assert_eq!(m.topic.len(), topic.len());
    }
    assert_serving(&mut b);
}

/// Tern's own bound: `limits.max_topic_levels`. A v5 PUBLISH over it gets
/// PUBACK 0x90 (Topic Name invalid), a filter over it SUBACK 0x8F, and a
/// 3.1.1 publisher, which has no way to hear a refusal, is disconnected.
#[test]
fn topics_deeper_than_max_topic_levels_are_refused_clearly() {
    if skip_unless_tern("limits.max_topic_levels") {
        return;
    }
    let mut b = Broker::start_with("[limits]\nmax_topic_levels = 4\n");
    let mut s = RawClient::v5(b.addr(), &unique_id("s"));
    s.send(&subscribe(
        3,
        &[("a/b/c/d", 1), ("a/b/c/d/e", 1), ("+/+/+/+/#", 1)],
        Some(&Props::new()),
    ));
    let (_, codes) = s.read_packet().suback(true);
    assert_eq!(codes, [1, 0x8F, 0x8F]);

    let mut p = RawClient::v5(b.addr(), &unique_id("p"));
    p.send(&publish5("a/b/c/d/e", b"deep", 1, false, 7));
    let pk = p.read_packet();
    assert_eq!((pk.kind(), pk.ack()), (PUBACK, (7, 0x90)));
    p.publish("a/b/c/d", b"ok", 1, false);
    assert_eq!(s.expect_publish().payload, b"ok");

    let mut old = RawClient::v311(b.addr(), &unique_id("old"));
    old.send(&publish311("a/b/c/d/e", b"deep", 1, false, 8));
    if let Err(e) = old.closed_within(TIMEOUT) {
        panic!("3.1.1 publisher over the limit is not disconnected: {e}");
    }
    assert_serving(&mut b);
}
