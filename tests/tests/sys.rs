//! `$SYS/broker/...` statistics (Mosquitto's topic names) and the rules for
//! topics that start with `$` (3.1.1 / 5.0 §4.7.2).

use std::time::{Duration, Instant};

use tern_blackbox::*;

const SYS_1S: &str = "[sys]\ninterval = \"1s\"\n";

/// Reads PUBLISHes until one on `topic` satisfies `pred` (bounded); returns
/// its payload as text.
fn wait_sys(c: &mut RawClient, topic: &str, timeout: Duration, mut pred: impl FnMut(&str) -> bool) -> String {
    let deadline = Instant::now() + timeout;
    let mut last = None;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let pk = c
            .try_read_packet(left)
            .unwrap_or_else(|e| panic!("waiting for {topic} (last value {last:?}): {e}"));
        if pk.kind() != PUBLISH {
            continue;
        }
        let m = pk.publish(c.v5);
        if m.topic != topic {
            continue;
        }
        let v = String::from_utf8(m.payload).expect("UTF-8 $SYS value");
        if pred(&v) {
            return v;
        }
        last = Some(v);
    }
}

/// The leading integer of a `$SYS` value such as `"17"` or `"3 seconds"`.
fn number(v: &str) -> u64 {
    v.split_whitespace()
        .next()
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("not a number: {v:?}"))
}

#[test]
fn sys_version_and_uptime_are_published() {
    let b = Broker::start_with(SYS_1S);
    let mut c = RawClient::v311(b.addr(), &unique_id("sys"));
    c.subscribe("$SYS/broker/version", 0);
    c.subscribe("$SYS/broker/uptime", 0);
    let version = wait_sys(&mut c, "$SYS/broker/version", TIMEOUT, |_| true);
    assert!(!version.trim().is_empty());
    if is_tern() {
        assert!(version.starts_with("tern "), "version {version:?}");
    }
    let first = number(&wait_sys(&mut c, "$SYS/broker/uptime", TIMEOUT, |_| true));
    // Uptime moves on with the next publications.
    let later = wait_sys(&mut c, "$SYS/broker/uptime", TIMEOUT, |v| number(v) > first);
    assert!(later.ends_with("seconds"), "uptime {later:?}");
}

#[test]
fn sys_topics_are_retained() {
    let b = Broker::start_with(SYS_1S);
    // Let one round of $SYS publications happen first.
    let mut first = RawClient::v311(b.addr(), &unique_id("sys"));
    first.subscribe("$SYS/broker/uptime", 0);
    wait_sys(&mut first, "$SYS/broker/uptime", TIMEOUT, |_| true);
    let mut c = RawClient::v311(b.addr(), &unique_id("late"));
    c.subscribe("$SYS/broker/version", 0);
    let m = c.expect_publish();
    assert_eq!(m.topic, "$SYS/broker/version");
    assert!(m.retain, "a new subscriber gets the retained value at once");
}

#[test]
fn sys_clients_and_message_counters_increase() {
    let b = Broker::start_with(SYS_1S);
    let mut c = RawClient::v311(b.addr(), &unique_id("sys"));
    c.subscribe("$SYS/broker/#", 0);
    // The retained value may predate this client; wait for one that counts it.
    let connected = number(&wait_sys(&mut c, "$SYS/broker/clients/connected", TIMEOUT, |v| {
        number(v) >= 1
    }));
    let received = number(&wait_sys(&mut c, "$SYS/broker/messages/received", TIMEOUT, |_| true));
    let sent = number(&wait_sys(&mut c, "$SYS/broker/messages/sent", TIMEOUT, |_| true));

    let mut s = RawClient::v311(b.addr(), &unique_id("s"));
    s.subscribe("ctr/t", 1);
    let mut p = RawClient::v311(b.addr(), &unique_id("p"));
    for i in 0..5u8 {
        p.publish("ctr/t", &[i], 1, false);
    }
    for _ in 0..5 {
        let m = s.expect_publish();
        s.send(&ack(PUBACK, m.pid));
    }
    let t = Duration::from_secs(5);
    wait_sys(&mut c, "$SYS/broker/clients/connected", t, |v| {
        number(v) >= connected + 2
    });
    wait_sys(&mut c, "$SYS/broker/messages/received", t, |v| {
        number(v) >= received + 5
    });
    wait_sys(&mut c, "$SYS/broker/messages/sent", t, |v| number(v) >= sent + 5);
    // And back down when clients leave.
    s.disconnect();
    p.disconnect();
    wait_sys(&mut c, "$SYS/broker/clients/connected", t, |v| number(v) <= connected);
}

#[test]
fn mqtt_4_7_2_1_wildcards_at_the_first_level_do_not_match_sys() {
    let b = Broker::start_with(SYS_1S);
    let mut wild = RawClient::v311(b.addr(), &unique_id("wild"));
    wild.subscribe("#", 0);
    wild.subscribe("+/broker/#", 0);
    wild.subscribe("+/broker/uptime", 0);
    // Control: a $SYS subscriber proves $SYS traffic happened meanwhile.
    let mut sys = RawClient::v311(b.addr(), &unique_id("sys"));
    sys.subscribe("$SYS/#", 0);
    let start = number(&wait_sys(&mut sys, "$SYS/broker/uptime", TIMEOUT, |_| true));
    wait_sys(&mut sys, "$SYS/broker/uptime", TIMEOUT, |v| number(v) >= start + 2);
    let mut p = RawClient::v311(b.addr(), &unique_id("p"));
    p.publish("sentinel/end", b"", 0, false);
    let got: Vec<String> = wild
        .collect_until_topic("sentinel/end")
        .into_iter()
        .map(|m| m.topic)
        .collect();
    // [MQTT-4.7.2-1] '#' and '+' at the first level never match a topic
    // starting with '$'.
    assert!(got.is_empty(), "wildcard subscriber got {got:?}");
}

#[test]
fn clients_cannot_publish_into_sys() {
    let b = Broker::start_with(SYS_1S);
    let mut watcher = RawClient::v5(b.addr(), &unique_id("watch"));
    watcher.subscribe("$SYS/#", 0);
    watcher.subscribe("sentinel/end", 0);
    let mut p = RawClient::v5(b.addr(), &unique_id("p"));
    p.publish("$SYS/broker/fake", b"forged", 0, true);
    p.send(&publish5("$SYS/broker/version", b"forged", 1, true, 9));
    let (pid, _rc) = p.read_until_keep(PUBACK).ack();
    assert_eq!(pid, 9, "a QoS 1 PUBLISH is still acknowledged");
    p.send(&publish5("$SYS/other", b"forged", 2, false, 10));
    let (pid, rc) = p.read_until_keep(PUBREC).ack();
    assert_eq!(pid, 10);
    if rc < 0x80 {
        // An error code in PUBREC ends the flow; otherwise complete it.
        p.send(&ack(PUBREL, 10));
        p.read_until_keep(PUBCOMP);
    }
    p.publish("sentinel/end", b"", 0, false);
    let forged: Vec<(String, Vec<u8>)> = watcher
        .collect_until_topic("sentinel/end")
        .into_iter()
        .filter(|m| m.payload == b"forged")
        .map(|m| (m.topic, m.payload))
        .collect();
    assert!(
        forged.is_empty(),
        "client PUBLISHes reached $SYS subscribers: {forged:?}"
    );
    // Nor were they retained.
    let mut late = RawClient::v5(b.addr(), &unique_id("late"));
    late.subscribe("$SYS/broker/fake", 0);
    late.subscribe("$SYS/broker/version", 0);
    let mut p2 = RawClient::v5(b.addr(), &unique_id("p2"));
    late.subscribe("sentinel/end", 0);
    p2.publish("sentinel/end", b"", 0, false);
    for m in late.collect_until_topic("sentinel/end") {
        assert_ne!(m.payload, b"forged", "{} retained a client's value", m.topic);
    }
}

#[test]
fn sys_retained_topics_do_not_count_against_max_retained_messages() {
    let b = Broker::start_with("[sys]\ninterval = \"1s\"\n[limits]\nmax_retained_messages = 2\n");
    // Wait until $SYS has published (and retained) its values.
    let mut sys = RawClient::v311(b.addr(), &unique_id("sys"));
    sys.subscribe("$SYS/broker/uptime", 0);
    wait_sys(&mut sys, "$SYS/broker/uptime", TIMEOUT, |_| true);
    let mut p = RawClient::v311(b.addr(), &unique_id("p"));
    p.publish("user/a", b"1", 1, true);
    p.publish("user/b", b"2", 1, true);
    let mut s = RawClient::v311(b.addr(), &unique_id("s"));
    s.subscribe("user/#", 0);
    s.subscribe("sentinel/end", 0);
    p.publish("sentinel/end", b"", 0, false);
    let mut got: Vec<(String, bool)> = s
        .collect_until_topic("sentinel/end")
        .into_iter()
        .map(|m| (m.topic, m.retain))
        .collect();
    got.sort();
    assert_eq!(
        got,
        [("user/a".to_string(), true), ("user/b".to_string(), true)],
        "both user messages retained with max_retained_messages = 2"
    );
}
