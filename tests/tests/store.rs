//! Durable storage (`[store]`): persistent sessions, their queued and in-flight
//! messages and the retained messages after the broker is killed (-9) or
//! stopped and started again on the same data dir; a full store; a corrupt
//! file; `tern store check|compact`; the memory engine.
//!
//! The promise under test: an ack the broker sends for something it stores
//! (PUBACK, PUBREC, PUBCOMP) means it is on disk, so nothing acknowledged may
//! be lost by a kill -9 at any moment. The crash tests kill the process at
//! random points (seed printed; `TERN_STORE_SEED=<n>` replays a run).
//!
//! Tern-only: the suite runs Mosquitto with persistence off.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use tern_blackbox::*;

/// Session limits far above anything these tests queue: a message dropped
/// for a full session queue would look like a lost one.
const ROOMY_QUEUES: &str = "[limits]\nmax_queued_messages = 1000000\nmax_queued_bytes = \"512MiB\"\n";

/// Config for a broker with `store` as its `[store]` section body.
fn store_fragment(store: &str) -> String {
    format!("[store]\n{store}\n\n{ROOMY_QUEUES}")
}

fn start(store: &str) -> Broker {
    Broker::start_with(&store_fragment(store))
}

/// The crash tests push thousands of messages; debug logging of each one
/// would slow the broker down and bury the interesting lines.
fn start_quiet(store: &str) -> Broker {
    Broker::start_with(&format!("[log]\nlevel = \"info\"\n\n{}", store_fragment(store)))
}

fn persistent_v5_expiry(addr: SocketAddr, id: &str, expiry: u32) -> (RawClient, Connack) {
    let (c, connack) = RawClient::handshake(
        addr,
        &Connect::v5(id)
            .clean(false)
            .props(Props::new().u32(SESSION_EXPIRY_INTERVAL, expiry)),
    );
    assert_eq!(connack.code, 0, "CONNACK for {id}");
    (c, connack)
}

fn persistent_v5(addr: SocketAddr, id: &str) -> (RawClient, Connack) {
    persistent_v5_expiry(addr, id, 3600)
}

fn persistent_v311(addr: SocketAddr, id: &str) -> (RawClient, Connack) {
    let (c, connack) = RawClient::handshake(addr, &Connect::v311(id).clean(false));
    assert_eq!(connack.code, 0, "CONNACK for {id}");
    (c, connack)
}

/// A persistent v5 session subscribed to `filter`, then offline: what it is
/// sent from now on has to be stored.
fn offline_subscriber(b: &Broker, id: &str, filter: &str, qos: u8) {
    let (mut s, _) = persistent_v5(b.addr(), id);
    assert_eq!(s.subscribe(filter, qos), qos, "SUBACK for {filter}");
    s.disconnect();
}

/// Waits until everything the broker stored so far is committed. The store
/// spec promises only that PUBACK/PUBREC/PUBCOMP wait for the disk; a
/// persistent session's CONNACK need not, and the spec does not say so for
/// SUBACK or the broker's PUBREL either (the README says they wait). A
/// retained QoS 1 PUBLISH's PUBACK comes after the commit that holds it and,
/// commits being applied in order, after every store write made before it.
fn wait_for_commit(addr: SocketAddr) {
    let mut c = RawClient::v5(addr, &unique_id("commit"));
    let topic = format!("store-test/commit/{}", unique_id("t"));
    c.send(&publish5(&topic, b"c", 1, true, 1));
    let (pid, rc) = c.read_until_keep(PUBACK).ack();
    assert_eq!(pid, 1, "PUBACK packet id");
    assert!(
        rc < 0x80,
        "the commit barrier (a retained QoS 1 PUBLISH) was refused: {rc:#04x}"
    );
    c.disconnect();
}

/// Publish an empty non-retained message on `topic` from a fresh client and
/// complete its flow. Queued behind everything already in a session's queue,
/// so a subscriber that reads up to it has seen all earlier messages.
fn send_sentinel(addr: SocketAddr, topic: &str, qos: u8) {
    let mut p = RawClient::v5(addr, &unique_id("sentinel"));
    p.publish(topic, b"", qos, false);
    p.disconnect();
}

/// A payload of `len` bytes (at least 4) whose first four carry `n`.
fn numbered(n: u32, len: usize) -> Vec<u8> {
    let mut v = n.to_be_bytes().to_vec();
    v.resize(len.max(4), b'.');
    v
}

fn number(payload: &[u8]) -> u32 {
    let head: [u8; 4] = payload
        .get(..4)
        .and_then(|h| h.try_into().ok())
        .unwrap_or_else(|| panic!("payload does not start with a 4-byte number: {payload:02x?}"));
    u32::from_be_bytes(head)
}

/// The numbers of the PUBLISHes `c` receives (acking each) before the one
/// on `sentinel`.
fn numbers_until(c: &mut RawClient, sentinel: &str) -> Vec<u32> {
    c.collect_until_topic(sentinel)
        .iter()
        .map(|m| number(&m.payload))
        .collect()
}

/// Reads PUBLISHes (acking QoS 1) until every number in `expected` has
/// arrived; for when no sentinel can be queued behind them (a full store).
fn receive_all(c: &mut RawClient, expected: &BTreeSet<u32>) -> Vec<u32> {
    let mut got = Vec::new();
    let mut seen = BTreeSet::new();
    while !expected.is_subset(&seen) {
        let p = c.try_read_packet(TIMEOUT).unwrap_or_else(|e| {
            let missing: Vec<u32> = expected.difference(&seen).copied().collect();
            panic!(
                "{e} after {} deliveries; {} acknowledged messages never came: {missing:?}",
                got.len(),
                missing.len()
            )
        });
        if p.kind() != PUBLISH {
            continue;
        }
        let m = p.publish(c.v5);
        if m.qos == 1 {
            c.send(&ack(PUBACK, m.pid));
        }
        let n = number(&m.payload);
        got.push(n);
        seen.insert(n);
    }
    got
}

/// The same PUBLISH with DUP=1, as a client sends it again after reconnecting.
fn with_dup(mut bytes: Vec<u8>) -> Vec<u8> {
    bytes[0] |= 0x08;
    bytes
}

#[derive(Clone, Copy, Debug)]
enum Restart {
    Graceful,
    Kill9,
}

fn restart(b: &mut Broker, how: Restart) {
    match how {
        Restart::Graceful => b.restart_graceful(),
        Restart::Kill9 => b.restart_after_kill9(),
    }
}

/// xorshift64: kill points that differ from run to run but can be replayed.
struct XorShift(u64);

impl XorShift {
    fn seeded(test: &str) -> XorShift {
        let seed = std::env::var("TERN_STORE_SEED")
            .ok()
            .and_then(|s| s.parse::<u64>().ok())
            .unwrap_or_else(|| {
                let nanos = SystemTime::now()
                    .duration_since(UNIX_EPOCH)
                    .map(|d| d.as_nanos() as u64)
                    .unwrap_or(0);
                nanos ^ u64::from(std::process::id())
            });
        eprintln!("{test}: seed {seed} (TERN_STORE_SEED={seed} replays these kill points)");
        // xorshift never leaves zero.
        XorShift(seed | 1)
    }

    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        x
    }

    /// `runs` delays in 20..300 ms, one random point in each of `runs` equal
    /// bands: early kills hit the first commits, late ones a steady stream.
    fn kill_points(&mut self, runs: u64) -> Vec<Duration> {
        let band = 280 / runs;
        (0..runs)
            .map(|i| Duration::from_millis(20 + i * band + self.next() % band))
            .collect()
    }
}

// ---------------------------------------------------------------------------
// Crash consistency: a publisher streams numbered messages, the broker is
// killed at a random moment, and every acknowledged number must come out.

/// Publishes in flight at once; below the broker's receive maximum (32).
const WINDOW: usize = 20;
/// Packet id = number + 1, so no id is reused within a run.
const MAX_MESSAGES: u32 = 60_000;

/// What the publisher knew when its connection died.
#[derive(Debug, Default)]
struct Published {
    /// Numbers 0..sent were written to the socket.
    sent: u32,
    /// QoS 1: PUBACK with success. QoS 2: PUBCOMP received.
    done: BTreeSet<u32>,
    /// QoS 2: PUBREC with success, PUBREL sent, no PUBCOMP (packet id -> number).
    released: BTreeMap<u16, u32>,
    /// Sent with no answer yet (packet id -> number).
    unanswered: BTreeMap<u16, u32>,
    /// Acks with a failure reason code: (number, code).
    refused: Vec<(u32, u8)>,
    /// Why the stream stopped.
    end: String,
}

/// Streams numbered QoS `qos` messages on `topic`, `WINDOW` in flight, until
/// the connection fails or `MAX_MESSAGES` are done.
fn publish_numbered(mut c: RawClient, topic: &str, qos: u8) -> Published {
    let mut out = Published::default();
    loop {
        while out.unanswered.len() + out.released.len() < WINDOW && out.sent < MAX_MESSAGES {
            let n = out.sent;
            let pid = (n + 1) as u16;
            if let Err(e) = c.try_send(&publish5(topic, &numbered(n, 4), qos, false, pid)) {
                out.end = format!("send: {e}");
                return out;
            }
            out.unanswered.insert(pid, n);
            out.sent += 1;
        }
        if out.unanswered.is_empty() && out.released.is_empty() {
            out.end = "all sent and acknowledged".into();
            return out;
        }
        let p = match c.try_read_packet(TIMEOUT) {
            Ok(p) => p,
            Err(e) => {
                out.end = format!("read: {e}");
                return out;
            }
        };
        match p.kind() {
            PUBACK | PUBREC => {
                let (pid, rc) = p.ack();
                let Some(n) = out.unanswered.remove(&pid) else {
                    out.end = format!("ack for unknown packet id {pid}: {p:02x?}");
                    return out;
                };
                if rc >= 0x80 {
                    out.refused.push((n, rc));
                } else if p.kind() == PUBACK {
                    out.done.insert(n);
                } else {
                    out.released.insert(pid, n);
                    if let Err(e) = c.try_send(&ack(PUBREL, pid)) {
                        out.end = format!("send PUBREL: {e}");
                        return out;
                    }
                }
            }
            PUBCOMP => {
                let (pid, _) = p.ack();
                match out.released.remove(&pid) {
                    Some(n) => {
                        out.done.insert(n);
                    }
                    None => {
                        out.end = format!("PUBCOMP for unknown packet id {pid}");
                        return out;
                    }
                }
            }
            _ => {
                out.end = format!("unexpected packet {p:02x?}");
                return out;
            }
        }
    }
}

/// Where the subscriber is while the publisher streams and the kill comes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Subscriber {
    /// Every message is queued (stored) for it.
    Offline,
    /// Messages are in flight to it, acked as they come, at the kill.
    Online,
}

/// What a subscriber has taken in, as an application sees it.
#[derive(Debug, Default)]
struct Inbox {
    /// Numbers handed to the application, in arrival order.
    delivered: Vec<u32>,
    /// QoS 2 ids answered with PUBREC, awaiting PUBREL. A PUBLISH with one
    /// of these ids is a resend of a message already handed over, not a new
    /// one (5.0 §4.3.3, receiver Method B).
    awaiting_rel: BTreeMap<u16, u32>,
}

impl Inbox {
    /// Answer one packet as a client does; the topic when it is a PUBLISH.
    /// Empty payloads (sentinels) are not counted.
    fn take(&mut self, c: &mut RawClient, p: &Packet) -> std::io::Result<Option<String>> {
        match p.kind() {
            PUBLISH => {
                let m = p.publish(c.v5);
                let n = (!m.payload.is_empty()).then(|| number(&m.payload));
                match m.qos {
                    1 => {
                        self.delivered.extend(n);
                        c.try_send(&ack(PUBACK, m.pid))?;
                    }
                    2 => {
                        if !self.awaiting_rel.contains_key(&m.pid) {
                            self.delivered.extend(n);
                            self.awaiting_rel.insert(m.pid, n.unwrap_or(u32::MAX));
                        }
                        c.try_send(&ack(PUBREC, m.pid))?;
                    }
                    _ => self.delivered.extend(n),
                }
                Ok(Some(m.topic))
            }
            PUBREL => {
                let (pid, _) = p.ack();
                self.awaiting_rel.remove(&pid);
                c.try_send(&ack(PUBCOMP, pid))?;
                Ok(None)
            }
            _ => Ok(None),
        }
    }
}

/// After the restart the QoS 2 publisher finishes its flows as a real
/// client does [MQTT-4.4.0-1]: PUBREL again for ids the broker answered with
/// PUBREC, the PUBLISH again (DUP=1) for ids with no answer. Returns whether
/// the broker said session present.
fn resume_qos2_publisher(b: &Broker, pub_id: &str, published: &Published, label: &str) -> bool {
    let (mut p, connack) = persistent_v5(b.addr(), pub_id);
    // Packet id order is send order.
    let mut resume: BTreeMap<u16, (u32, bool)> = BTreeMap::new();
    resume.extend(published.released.iter().map(|(&pid, &n)| (pid, (n, true))));
    resume.extend(published.unanswered.iter().map(|(&pid, &n)| (pid, (n, false))));
    for (&pid, &(n, released)) in &resume {
        if !released {
            p.send(&with_dup(publish5(CRASH_TOPIC, &numbered(n, 4), 2, false, pid)));
            let (got, rc) = p.read_until_keep(PUBREC).ack();
            assert_eq!(got, pid, "PUBREC packet id");
            assert!(rc < 0x80, "{label}: PUBREC {rc:#04x} for the resent message {n}");
        }
        p.send(&ack(PUBREL, pid));
        let (got, rc) = p.read_until_keep(PUBCOMP).ack();
        assert_eq!(got, pid, "PUBCOMP packet id");
        // 0x92 (id not found) is right when our first PUBREL was processed
        // and committed but its PUBCOMP was lost with the process.
        assert!(
            rc == 0x00 || (released && rc == 0x92),
            "{label}: PUBCOMP {rc:#04x} for message {n} (PUBREC before the kill: {released})"
        );
    }
    p.disconnect();
    connack.session_present
}

const CRASH_TOPIC: &str = "crash/m";
const CRASH_SENTINEL: &str = "crash/end";

/// One crash run: a publisher streams numbered QoS `qos` messages to one
/// persistent subscriber, the broker is SIGKILLed after `delay` and
/// restarted. QoS 1: every number the publisher saw acknowledged reaches
/// the subscriber. QoS 2: once the publisher has finished its flows, every
/// number reaches the application exactly once. Returns how many messages
/// were acknowledged before the kill.
fn kill9_run(qos: u8, durability: &str, mode: Subscriber, delay: Duration) -> usize {
    let label = format!("QoS {qos}, {durability}, {mode:?} subscriber, killed after {delay:?}");
    let mut b = start_quiet(&format!("durability = \"{durability}\""));
    let sub = unique_id("crash-sub");
    let (mut s, _) = persistent_v5(b.addr(), &sub);
    assert_eq!(s.subscribe("crash/#", qos), qos, "SUBACK");
    let receiver = match mode {
        Subscriber::Offline => {
            s.disconnect();
            None
        }
        Subscriber::Online => Some(std::thread::spawn(move || {
            let mut inbox = Inbox::default();
            while let Ok(p) = s.try_read_packet(TIMEOUT) {
                if inbox.take(&mut s, &p).is_err() {
                    break;
                }
            }
            inbox
        })),
    };
    // QoS 2: a persistent publisher, so it can finish its flows afterwards.
    let pub_id = unique_id("crash-pub");
    let publisher = if qos == 2 {
        persistent_v5(b.addr(), &pub_id).0
    } else {
        RawClient::v5(b.addr(), &pub_id)
    };
    wait_for_commit(b.addr());
    let stream = std::thread::spawn(move || publish_numbered(publisher, CRASH_TOPIC, qos));
    // The kill point, not a synchronisation: any moment must be safe.
    std::thread::sleep(delay);
    b.kill9();
    let published = stream.join().expect("publisher thread");
    let mut inbox = receiver
        .map(|r| r.join().expect("subscriber thread"))
        .unwrap_or_default();
    let before = inbox.delivered.len();
    b.launch();
    assert!(published.refused.is_empty(), "{label}: refused {:?}", published.refused);

    // Checked last: a lost publisher session shows up below as lost or
    // doubled messages, which say more.
    let publisher_session = (qos == 2).then(|| resume_qos2_publisher(&b, &pub_id, &published, &label));
    let (mut s, connack) = persistent_v5(b.addr(), &sub);
    assert!(
        connack.session_present,
        "{label}: the subscriber's session (committed before the kill) is gone"
    );
    send_sentinel(b.addr(), CRASH_SENTINEL, qos);
    loop {
        let p = s
            .try_read_packet(TIMEOUT)
            .unwrap_or_else(|e| panic!("{label}: no sentinel ({e}); {} delivered so far", inbox.delivered.len()));
        let topic = inbox.take(&mut s, &p).expect("answer the broker");
        if topic.as_deref() == Some(CRASH_SENTINEL) {
            break;
        }
    }
    eprintln!(
        "{label}: sent {}, acknowledged {} (+{} awaiting PUBCOMP, {} unanswered), delivered {} before and {} after; publisher ended with {}",
        published.sent,
        published.done.len(),
        published.released.len(),
        published.unanswered.len(),
        before,
        inbox.delivered.len() - before,
        published.end
    );

    let mut times: BTreeMap<u32, usize> = BTreeMap::new();
    for &n in &inbox.delivered {
        *times.entry(n).or_default() += 1;
    }
    // QoS 2: the publisher has now completed every number it sent.
    let expected: Vec<u32> = if qos == 2 {
        (0..published.sent).collect()
    } else {
        published.done.iter().copied().collect()
    };
    let lost: Vec<u32> = expected.into_iter().filter(|n| !times.contains_key(n)).collect();
    assert!(
        lost.is_empty(),
        "{label}: {} acknowledged messages lost: {:?}",
        lost.len(),
        &lost[..lost.len().min(20)]
    );
    if qos == 2 {
        let twice: Vec<(u32, usize)> = times.iter().filter(|&(_, &k)| k > 1).map(|(&n, &k)| (n, k)).collect();
        assert!(
            twice.is_empty(),
            "{label}: QoS 2 handed to the application more than once (number, times): {:?}",
            &twice[..twice.len().min(20)]
        );
    }
    assert!(
        times.keys().all(|&n| n < published.sent),
        "{label}: delivered a number never sent"
    );
    if let Some(present) = publisher_session {
        assert!(
            present,
            "{label}: the publisher's session (committed before the kill) is gone"
        );
    }
    published.done.len() + published.released.len()
}

/// `runs` crash runs at kill points spread over 20..300 ms.
fn kill9_runs(test: &str, qos: u8, mode: Subscriber, durabilities: &[&str]) {
    let mut rng = XorShift::seeded(test);
    let points = rng.kill_points(durabilities.len() as u64);
    let mut acknowledged = 0;
    for (durability, delay) in durabilities.iter().zip(points) {
        acknowledged += kill9_run(qos, durability, mode, delay);
    }
    assert!(
        acknowledged > 0,
        "every kill came before the first acknowledgement, so nothing was checked"
    );
}

#[test]
fn qos1_acknowledged_messages_survive_kill9_batched() {
    if skip_unless_tern("durable store") {
        return;
    }
    kill9_runs(
        "qos1_acknowledged_messages_survive_kill9_batched",
        1,
        Subscriber::Offline,
        &["batched"; 4],
    );
}

#[test]
fn qos1_acknowledged_messages_survive_kill9_strict() {
    if skip_unless_tern("durable store") {
        return;
    }
    kill9_runs(
        "qos1_acknowledged_messages_survive_kill9_strict",
        1,
        Subscriber::Offline,
        &["strict"],
    );
}

#[test]
fn qos1_online_subscriber_gets_every_acknowledged_message_across_kill9() {
    if skip_unless_tern("durable store") {
        return;
    }
    kill9_runs(
        "qos1_online_subscriber_gets_every_acknowledged_message_across_kill9",
        1,
        Subscriber::Online,
        &["batched", "strict", "batched"],
    );
}

#[test]
fn qos2_messages_delivered_exactly_once_across_kill9_batched() {
    if skip_unless_tern("durable store") {
        return;
    }
    kill9_runs(
        "qos2_messages_delivered_exactly_once_across_kill9_batched",
        2,
        Subscriber::Offline,
        &["batched"; 4],
    );
}

#[test]
fn qos2_messages_delivered_exactly_once_across_kill9_strict() {
    if skip_unless_tern("durable store") {
        return;
    }
    kill9_runs(
        "qos2_messages_delivered_exactly_once_across_kill9_strict",
        2,
        Subscriber::Offline,
        &["strict"],
    );
}

#[test]
fn qos2_online_subscriber_gets_each_message_exactly_once_across_kill9() {
    if skip_unless_tern("durable store") {
        return;
    }
    kill9_runs(
        "qos2_online_subscriber_gets_each_message_exactly_once_across_kill9",
        2,
        Subscriber::Online,
        &["batched", "strict", "batched"],
    );
}

/// A persistent publisher's QoS 2 PUBLISH (id 42) answered with PUBREC, then
/// the broker is killed before the PUBREL. Returns the broker (restarted),
/// the reconnected publisher and the offline subscriber's id.
fn qos2_inbound_awaiting_pubrel_at_kill(topic: &str) -> (Broker, RawClient, String) {
    let mut b = start("");
    let sub = unique_id("rel-sub");
    offline_subscriber(&b, &sub, &format!("{topic}/#"), 2);
    let pub_id = unique_id("rel-pub");
    let (mut p, _) = persistent_v5(b.addr(), &pub_id);
    p.send(&publish5(&format!("{topic}/x"), b"once", 2, false, 42));
    let (pid, rc) = p.read_until_keep(PUBREC).ack();
    assert_eq!((pid, rc), (42, 0x00), "PUBREC");
    b.restart_after_kill9();
    let (p, connack) = persistent_v5(b.addr(), &pub_id);
    assert!(
        connack.session_present,
        "the publisher's session is gone after the kill"
    );
    (b, p, sub)
}

/// The payloads the offline subscriber `sub` gets, up to a sentinel.
fn payloads_for(b: &Broker, sub: &str, topic: &str) -> Vec<Vec<u8>> {
    let (mut s, connack) = persistent_v5(b.addr(), sub);
    assert!(connack.session_present, "the subscriber's session is gone");
    let sentinel = format!("{topic}/end");
    send_sentinel(b.addr(), &sentinel, 2);
    s.collect_until_topic(&sentinel)
        .into_iter()
        .map(|m| m.payload)
        .collect()
}

#[test]
fn qos2_pubrel_after_kill9_completes_the_id_acknowledged_with_pubrec() {
    if skip_unless_tern("durable store") {
        return;
    }
    let (b, mut p, sub) = qos2_inbound_awaiting_pubrel_at_kill("rel1");
    p.send(&ack(PUBREL, 42));
    let comp = p.read_until_keep(PUBCOMP).ack();
    assert_eq!(
        comp,
        (42, 0x00),
        "PUBCOMP for an id the broker acknowledged with PUBREC before the kill (0x92 = it forgot the id)"
    );
    assert_eq!(
        payloads_for(&b, &sub, "rel1"),
        [b"once".to_vec()],
        "delivered exactly once"
    );
}

#[test]
fn qos2_dup_publish_resent_after_kill9_is_not_routed_twice() {
    if skip_unless_tern("durable store") {
        return;
    }
    let (b, mut p, sub) = qos2_inbound_awaiting_pubrel_at_kill("rel2");
    // The broker still holds id 42 awaiting PUBREL, so this copy must only be
    // answered, not routed again [MQTT-4.3.3-10].
    p.send(&with_dup(publish5("rel2/x", b"once", 2, false, 42)));
    let (pid, rc) = p.read_until_keep(PUBREC).ack();
    assert_eq!((pid, rc), (42, 0x00), "PUBREC for the DUP resend");
    p.send(&ack(PUBREL, 42));
    assert_eq!(p.read_until_keep(PUBCOMP).ack(), (42, 0x00), "PUBCOMP");
    assert_eq!(
        payloads_for(&b, &sub, "rel2"),
        [b"once".to_vec()],
        "delivered exactly once"
    );
}

#[test]
fn outbound_qos2_awaiting_pubcomp_resumes_with_pubrel_after_kill9() {
    if skip_unless_tern("durable store") {
        return;
    }
    let mut b = start("");
    let sub = unique_id("out2-sub");
    let (mut s, _) = persistent_v5(b.addr(), &sub);
    assert_eq!(s.subscribe("out2/#", 2), 2);
    let mut p = RawClient::v5(b.addr(), &unique_id("out2-pub"));
    p.publish("out2/x", b"once", 2, false);
    let m = s.expect_publish();
    assert_eq!((m.qos, m.payload.as_slice()), (2, &b"once"[..]));
    s.send(&ack(PUBREC, m.pid));
    let (rel, _) = s.read_until_keep(PUBREL).ack();
    assert_eq!(rel, m.pid, "PUBREL packet id");
    wait_for_commit(b.addr());
    b.restart_after_kill9();

    let (mut s, connack) = persistent_v5(b.addr(), &sub);
    assert!(connack.session_present, "the subscriber's session is gone");
    let first = s.read_packet();
    assert_eq!(
        first.kind(),
        PUBREL,
        "[MQTT-4.4.0-1] the broker had our PUBREC, so it resends PUBREL, not the PUBLISH; got {first:02x?}"
    );
    assert_eq!(first.ack().0, m.pid, "PUBREL resent with the original packet id");
    s.send(&ack(PUBCOMP, m.pid));
    send_sentinel(b.addr(), "out2/end", 2);
    let again = s.collect_until_topic("out2/end");
    assert!(again.is_empty(), "the completed message came again: {again:?}");
}

// ---------------------------------------------------------------------------
// Retained messages.

/// What a new subscriber to `filter` gets as retained messages.
fn retained(b: &Broker, filter: &str) -> Vec<Publish> {
    let mut s = RawClient::v5(b.addr(), &unique_id("ret-s"));
    s.subscribe(filter, 1);
    s.subscribe("ret-sentinel/end", 0);
    send_sentinel(b.addr(), "ret-sentinel/end", 0);
    let mut got = s.collect_until_topic("ret-sentinel/end");
    got.sort_by(|a, b| a.topic.cmp(&b.topic));
    got
}

fn retained_messages_survive(how: Restart) {
    let mut b = start("");
    let mut p = RawClient::v5(b.addr(), &unique_id("ret-p"));
    p.publish("keep/a", b"one", 1, true);
    p.publish("keep/b", b"two", 2, true);
    p.disconnect();
    restart(&mut b, how);
    let got = retained(&b, "keep/#");
    let summary: Vec<(&str, &[u8], bool)> = got
        .iter()
        .map(|m| (m.topic.as_str(), m.payload.as_slice(), m.retain))
        .collect();
    assert_eq!(
        summary,
        [("keep/a", &b"one"[..], true), ("keep/b", &b"two"[..], true)],
        "retained messages after {how:?}"
    );
}

#[test]
fn retained_messages_survive_graceful_restart() {
    if skip_unless_tern("durable store") {
        return;
    }
    retained_messages_survive(Restart::Graceful);
}

#[test]
fn retained_messages_survive_kill9() {
    if skip_unless_tern("durable store") {
        return;
    }
    retained_messages_survive(Restart::Kill9);
}

/// The retained message is first made durable by a restart, so the clear
/// has something on disk to remove (set and clear cannot fold into one
/// commit).
fn cleared_retained_message_stays_cleared(how: Restart) {
    let mut b = start("");
    let mut p = RawClient::v5(b.addr(), &unique_id("clr-p"));
    p.publish("gone/a", b"soon gone", 1, true);
    p.disconnect();
    b.restart_graceful();
    assert_eq!(retained(&b, "gone/#").len(), 1, "set before the clear");
    let mut p = RawClient::v5(b.addr(), &unique_id("clr-p"));
    p.publish("gone/a", b"", 1, true);
    p.disconnect();
    restart(&mut b, how);
    let got = retained(&b, "gone/#");
    assert!(
        got.is_empty(),
        "[MQTT-3.3.1-10] cleared before {how:?}, back after: {got:?}"
    );
}

#[test]
fn cleared_retained_message_stays_cleared_after_graceful_restart() {
    if skip_unless_tern("durable store") {
        return;
    }
    cleared_retained_message_stays_cleared(Restart::Graceful);
}

#[test]
fn cleared_retained_message_stays_cleared_after_kill9() {
    if skip_unless_tern("durable store") {
        return;
    }
    cleared_retained_message_stays_cleared(Restart::Kill9);
}

/// A retained message is kept whatever its QoS; QoS 0 only means nothing is
/// acknowledged, so a kill may lose it but a graceful stop must not.
#[test]
fn retained_qos0_message_survives_graceful_restart() {
    if skip_unless_tern("durable store") {
        return;
    }
    let mut b = start("");
    let mut p = RawClient::v5(b.addr(), &unique_id("ret0-p"));
    p.publish("keep0/a", b"zero", 0, true);
    assert!(p.sync().is_empty());
    p.disconnect();
    b.restart_graceful();
    let got = retained(&b, "keep0/#");
    assert_eq!(got.len(), 1, "retained QoS 0 message after a graceful restart: {got:?}");
    assert_eq!((got[0].payload.as_slice(), got[0].qos), (&b"zero"[..], 0));
}

// ---------------------------------------------------------------------------
// Sessions.

fn subscriptions_survive(v5: bool, how: Restart) {
    let mut b = start("");
    let id = unique_id("subs");
    let connect = |addr: SocketAddr| {
        if v5 {
            persistent_v5(addr, &id)
        } else {
            persistent_v311(addr, &id)
        }
    };
    let (mut s, _) = connect(b.addr());
    assert_eq!(s.subscribe("subs/+/x", 1), 1);
    s.disconnect();
    if matches!(how, Restart::Kill9) {
        wait_for_commit(b.addr());
    }
    restart(&mut b, how);
    let (mut s, connack) = connect(b.addr());
    assert!(
        connack.session_present,
        "[MQTT-3.2.2-2] session present after {how:?} (v5: {v5})"
    );
    let mut p = RawClient::v5(b.addr(), &unique_id("subs-p"));
    p.publish("subs/a/x", b"no resubscribe", 1, false);
    let m = s
        .try_read_packet(TIMEOUT)
        .unwrap_or_else(|e| panic!("no PUBLISH after {how:?} ({e}): the subscription was not restored"));
    let m = m.publish(v5);
    assert_eq!(
        (m.topic.as_str(), m.payload.as_slice()),
        ("subs/a/x", &b"no resubscribe"[..])
    );
}

#[test]
fn v5_session_subscriptions_survive_graceful_restart() {
    if skip_unless_tern("durable store") {
        return;
    }
    subscriptions_survive(true, Restart::Graceful);
}

#[test]
fn v311_clean_session_false_subscriptions_survive_graceful_restart() {
    if skip_unless_tern("durable store") {
        return;
    }
    subscriptions_survive(false, Restart::Graceful);
}

#[test]
fn v5_session_subscriptions_survive_kill9() {
    if skip_unless_tern("durable store") {
        return;
    }
    subscriptions_survive(true, Restart::Kill9);
}

#[test]
fn session_expiry_counts_the_time_the_broker_was_down() {
    if skip_unless_tern("durable store") {
        return;
    }
    let mut b = start("");
    let id = unique_id("exp2");
    let (mut c, _) = persistent_v5_expiry(b.addr(), &id, 2);
    c.subscribe("exp2/t", 1);
    c.disconnect();
    b.stop();
    // The expiry has to run out while the broker is down; nothing to wait on.
    std::thread::sleep(Duration::from_secs(3));
    b.launch();
    let (_c, connack) = persistent_v5(b.addr(), &id);
    assert!(
        !connack.session_present,
        "a 2 s session, disconnected 3 s ago (all of it downtime), was restored"
    );
}

#[test]
fn long_expiry_sessions_are_restored_whether_connected_at_stop_or_not() {
    if skip_unless_tern("durable store") {
        return;
    }
    let mut b = start("");
    let gone = unique_id("exp3600-gone");
    let (mut c, _) = persistent_v5(b.addr(), &gone);
    c.subscribe("exp3600/t", 1);
    c.disconnect();
    let online = unique_id("exp3600-online");
    let (mut still, _) = persistent_v5(b.addr(), &online);
    still.subscribe("exp3600/t", 1);
    b.restart_graceful();
    drop(still);
    for id in [&gone, &online] {
        let (_c, connack) = persistent_v5(b.addr(), id);
        assert!(connack.session_present, "session {id} (expiry 3600) not restored");
    }
}

/// Kill -9 (after a commit) rather than a stop: a broker that wrongly stored
/// these sessions gets no chance to delete them at shutdown.
#[test]
fn clean_sessions_are_never_restored() {
    if skip_unless_tern("durable store") {
        return;
    }
    let mut b = start("");
    let v5_zero = unique_id("clean-v5");
    let v311_clean = unique_id("clean-v311");
    let v311_gone = unique_id("clean-v311-gone");
    // v5, Clean Start 0 but Session Expiry 0: the session ends with the connection.
    let (mut a, _) = persistent_v5_expiry(b.addr(), &v5_zero, 0);
    a.subscribe("clean/t", 1);
    let mut c = RawClient::v311(b.addr(), &v311_clean);
    c.subscribe("clean/t", 1);
    let mut d = RawClient::v311(b.addr(), &v311_gone);
    d.subscribe("clean/t", 1);
    d.disconnect();
    wait_for_commit(b.addr());
    b.restart_after_kill9();
    drop((a, c));
    let (_a, connack) = persistent_v5(b.addr(), &v5_zero);
    assert!(!connack.session_present, "v5 session with expiry 0 restored");
    for id in [&v311_clean, &v311_gone] {
        let (_c, connack) = persistent_v311(b.addr(), id);
        assert!(!connack.session_present, "3.1.1 clean session {id} restored");
    }
}

/// Kill -9 (after a commit), not a stop: a graceful stop may publish the
/// will itself, and then the startup path would go untested.
#[test]
fn delayed_will_of_a_session_that_expired_while_down_is_published_once_at_startup() {
    if skip_unless_tern("durable store") {
        return;
    }
    let mut b = start("");
    let sub = unique_id("will-sub");
    offline_subscriber(&b, &sub, "dwill/#", 1);
    let mut will = Will::new("dwill/gone", b"expired while down", 1, false);
    will.props = Props::new().u32(WILL_DELAY_INTERVAL, 2);
    let (w, connack) = RawClient::handshake(
        b.addr(),
        &Connect::v5(&unique_id("will-w"))
            .clean(false)
            .props(Props::new().u32(SESSION_EXPIRY_INTERVAL, 2))
            .will(will),
    );
    assert_eq!(connack.code, 0);
    // No DISCONNECT: the will stays armed, delayed by 2 s.
    w.drop_abruptly();
    wait_for_commit(b.addr());
    b.kill9();
    // Both the will delay and the session expire while the broker is down.
    std::thread::sleep(Duration::from_secs(3));
    b.launch();
    let (mut s, connack) = persistent_v5(b.addr(), &sub);
    assert!(connack.session_present);
    send_sentinel(b.addr(), "dwill/end", 1);
    let got: Vec<(String, Vec<u8>)> = s
        .collect_until_topic("dwill/end")
        .into_iter()
        .map(|m| (m.topic, m.payload))
        .collect();
    assert_eq!(
        got,
        [("dwill/gone".to_string(), b"expired while down".to_vec())],
        "the delayed will, once, before anything published after the restart"
    );
}

#[test]
fn queued_message_expiry_counts_the_time_the_broker_was_down() {
    if skip_unless_tern("durable store") {
        return;
    }
    let mut b = start("");
    let sub = unique_id("mexp");
    offline_subscriber(&b, &sub, "mexp/#", 1);
    let mut p = RawClient::v5(b.addr(), &unique_id("mexp-p"));
    let published_at = Instant::now();
    for (topic, secs, pid) in [("mexp/short", 1, 21), ("mexp/long", 3600, 22)] {
        let props = Props::new().u32(MESSAGE_EXPIRY_INTERVAL, secs);
        p.send(&publish(topic, topic.as_bytes(), 1, false, pid, Some(&props)));
        let (got, rc) = p.read_until_keep(PUBACK).ack();
        assert_eq!((got, rc), (pid, 0x00), "PUBACK for {topic}");
    }
    p.disconnect();
    b.stop();
    // The 1 s message has to expire while the broker is down.
    std::thread::sleep(Duration::from_secs(2));
    b.launch();
    let (mut s, connack) = persistent_v5(b.addr(), &sub);
    assert!(connack.session_present);
    send_sentinel(b.addr(), "mexp/end", 1);
    let got = s.collect_until_topic("mexp/end");
    let waited = published_at.elapsed().as_secs() as u32;
    let topics: Vec<&str> = got.iter().map(|m| m.topic.as_str()).collect();
    assert_eq!(topics, ["mexp/long"], "the 1 s message expired during the downtime");
    match prop(&got[0].props, MESSAGE_EXPIRY_INTERVAL) {
        Some(Prop::U32(left)) => assert!(
            *left < 3600 && *left + waited + 2 >= 3600,
            "[MQTT-3.3.2-6] expiry interval {left}: 3600 minus the ~{waited} s waited (downtime included)"
        ),
        other => panic!("[MQTT-3.3.2-6] forwarded without its Message Expiry Interval: {other:?}"),
    }
}

/// Ten QoS 1 messages queued for an offline session, then kill -9 and a
/// restart; returns the broker and the reconnected subscriber.
fn offline_queue_of_ten_across_kill9(prefix: &str) -> (Broker, RawClient) {
    let mut b = start("");
    let sub = unique_id(prefix);
    offline_subscriber(&b, &sub, &format!("{prefix}/#"), 1);
    let mut p = RawClient::v5(b.addr(), &unique_id("ord-p"));
    for n in 0..10u32 {
        p.publish(&format!("{prefix}/m"), &numbered(n, 4), 1, false);
    }
    p.disconnect();
    b.restart_after_kill9();
    // Receive Maximum 20: all ten may be in flight at once, unacknowledged.
    let (s, connack) = RawClient::handshake(
        b.addr(),
        &Connect::v5(&sub)
            .clean(false)
            .props(Props::new().u32(SESSION_EXPIRY_INTERVAL, 3600).u16(RECEIVE_MAXIMUM, 20)),
    );
    assert!(connack.session_present, "session gone after kill -9");
    (b, s)
}

#[test]
fn offline_queue_is_delivered_in_order_after_kill9_with_valid_packet_ids() {
    if skip_unless_tern("durable store") {
        return;
    }
    let (b, mut s) = offline_queue_of_ten_across_kill9("ord");
    let msgs: Vec<Publish> = (0..10).map(|_| s.expect_publish()).collect();
    let order: Vec<u32> = msgs.iter().map(|m| number(&m.payload)).collect();
    assert_eq!(
        order,
        (0..10).collect::<Vec<u32>>(),
        "[MQTT-4.6.0-6] order after restart"
    );
    let ids: BTreeSet<u16> = msgs.iter().map(|m| m.pid).collect();
    assert!(
        !ids.contains(&0) && ids.len() == 10 && msgs.iter().all(|m| m.qos == 1),
        "[MQTT-2.2.1-3] ten in-flight QoS 1 messages need ten distinct non-zero ids: {:?}",
        msgs.iter().map(|m| (m.qos, m.pid)).collect::<Vec<_>>()
    );
    for m in &msgs {
        s.send(&ack(PUBACK, m.pid));
    }
    send_sentinel(b.addr(), "ord/end", 1);
    let again = numbers_until(&mut s, "ord/end");
    assert!(again.is_empty(), "acknowledged messages sent again: {again:?}");
}

/// DUP=1 tells the client it may already have this message (5.0
/// §3.3.1.1). These were queued while the session was offline, so no earlier
/// attempt exists; a flag on every restored message makes a client that
/// de-duplicates on DUP do needless work. Stricter than the clauses require
/// (they only demand DUP=1 on a re-delivery).
#[test]
fn messages_queued_while_offline_are_not_marked_dup_after_restart() {
    if skip_unless_tern("durable store") {
        return;
    }
    let (_b, mut s) = offline_queue_of_ten_across_kill9("nodup");
    let msgs: Vec<Publish> = (0..10).map(|_| s.expect_publish()).collect();
    assert!(
        msgs.iter().all(|m| !m.dup),
        "never sent before the kill, yet DUP=1: {:?}",
        msgs.iter().map(|m| (number(&m.payload), m.dup)).collect::<Vec<_>>()
    );
}

#[test]
fn inflight_messages_are_resent_with_dup_and_their_ids_after_kill9() {
    if skip_unless_tern("durable store") {
        return;
    }
    let mut b = start("");
    let sub = unique_id("dup");
    let (mut s, _) = persistent_v5(b.addr(), &sub);
    assert_eq!(s.subscribe("dup/#", 1), 1);
    let mut p = RawClient::v5(b.addr(), &unique_id("dup-p"));
    for n in 0..10u32 {
        p.publish("dup/m", &numbered(n, 4), 1, false);
    }
    // Received and deliberately not acknowledged.
    let before: Vec<Publish> = (0..10).map(|_| s.expect_publish()).collect();
    wait_for_commit(b.addr());
    b.restart_after_kill9();

    let (mut s, connack) = persistent_v5(b.addr(), &sub);
    assert!(connack.session_present, "session gone after kill -9");
    let after: Vec<Publish> = (0..10).map(|_| s.expect_publish()).collect();
    let order: Vec<u32> = after.iter().map(|m| number(&m.payload)).collect();
    assert_eq!(order, (0..10).collect::<Vec<u32>>(), "resent in the original order");
    assert!(
        after.iter().all(|m| m.dup),
        "[MQTT-3.3.1-1] possibly sent before, so DUP=1: {:?}",
        after.iter().map(|m| m.dup).collect::<Vec<_>>()
    );
    let ids_before: Vec<u16> = before.iter().map(|m| m.pid).collect();
    let ids_after: Vec<u16> = after.iter().map(|m| m.pid).collect();
    assert_eq!(
        ids_after, ids_before,
        "[MQTT-4.4.0-1] resent with the original packet ids"
    );
    for m in &after {
        s.send(&ack(PUBACK, m.pid));
    }
    send_sentinel(b.addr(), "dup/end", 1);
    let again = numbers_until(&mut s, "dup/end");
    assert!(again.is_empty(), "acknowledged messages sent again: {again:?}");
}

// ---------------------------------------------------------------------------
// A full store.

/// Publishes numbered QoS 1 messages of `size` bytes to the offline
/// subscriber's `full/#` until a PUBACK says 0x97 (Quota exceeded); returns
/// the numbers acknowledged with success before that.
fn fill_until_refused(b: &Broker, size: usize, limit: u32) -> BTreeSet<u32> {
    let mut p = RawClient::v5(b.addr(), &unique_id("full-p"));
    let mut acked = BTreeSet::new();
    for n in 0..limit {
        let pid = (n % 60_000 + 1) as u16;
        p.send(&publish5("full/m", &numbered(n, size), 1, false, pid));
        let (got, rc) = p.read_until_keep(PUBACK).ack();
        assert_eq!(got, pid, "PUBACK packet id");
        match rc {
            0x00 => {
                acked.insert(n);
            }
            0x97 => {
                assert!(
                    !acked.is_empty(),
                    "the very first {size}-byte message was refused: the bound leaves no room at all"
                );
                p.disconnect();
                return acked;
            }
            other => panic!("PUBACK {other:#04x} for message {n}; expected 0x00, or 0x97 once full"),
        }
    }
    panic!(
        "{limit} messages of {size} bytes ({} KiB) all accepted: the store never said it was full",
        u64::from(limit) * size as u64 / 1024
    )
}

/// Fill, check the refusal (log line, and with `sys` the `$SYS` counter,
/// which needs `[sys] interval = "1s"`) and that QoS 0 keeps flowing, then
/// restart and collect everything acknowledged.
fn full_store_loses_nothing_acknowledged(b: &mut Broker, size: usize, limit: u32, sys: bool) {
    let sub = unique_id("full-sub");
    offline_subscriber(b, &sub, "full/#", 1);
    let mut live = RawClient::v5(b.addr(), &unique_id("full-live"));
    assert_eq!(live.subscribe("live/#", 0), 0);

    let acked = fill_until_refused(b, size, limit);
    assert!(
        b.wait_log("store is full", Duration::from_secs(5)),
        "no \"store is full\" line in the log"
    );
    if sys {
        let mut c = RawClient::v5(b.addr(), &unique_id("full-sys"));
        c.subscribe("$SYS/broker/store/refused", 0);
        let deadline = Instant::now() + Duration::from_secs(5);
        let mut last = None;
        loop {
            let pk = c
                .try_read_packet(deadline.saturating_duration_since(Instant::now()))
                .unwrap_or_else(|e| panic!("no $SYS/broker/store/refused >= 1 (last {last:?}): {e}"));
            if pk.kind() != PUBLISH {
                continue;
            }
            let v = String::from_utf8(pk.publish(true).payload).expect("UTF-8 $SYS value");
            if v.trim().parse::<u64>().is_ok_and(|n| n >= 1) {
                break;
            }
            last = Some(v);
        }
    }
    // A message that reaches only clean sessions needs no storing: QoS 0,
    // and QoS 1 too (acknowledged at once, README "Durability").
    let mut p = RawClient::v5(b.addr(), &unique_id("full-q0"));
    p.publish("live/x", b"still flowing", 0, false);
    let m = live
        .try_read_packet(TIMEOUT)
        .unwrap_or_else(|e| panic!("QoS 0 stopped flowing with the store full: {e}"));
    assert_eq!(m.publish(true).payload, b"still flowing");
    p.send(&publish5("live/y", b"qos 1, nothing to store", 1, false, 3));
    let (pid, rc) = p.read_until_keep(PUBACK).ack();
    assert_eq!(
        (pid, rc),
        (3, 0x00),
        "QoS 1 to a clean subscriber only, with the store full"
    );
    // 3.1.1 has no reason codes: a refused QoS 1 PUBLISH goes unanswered.
    let mut v3 = RawClient::v311(b.addr(), &unique_id("full-v3"));
    v3.send(&publish311("full/m", &numbered(u32::MAX, size), 1, false, 5));
    let before = v3.sync();
    assert!(
        before.iter().all(|pk| pk.kind() != PUBACK),
        "3.1.1 PUBACK for a message the full store cannot hold: {before:02x?}"
    );

    b.restart_graceful();
    let (mut s, connack) = persistent_v5(b.addr(), &sub);
    assert!(connack.session_present, "the subscriber's session is gone");
    let got = receive_all(&mut s, &acked);
    eprintln!(
        "acknowledged {} before the refusal, delivered {}",
        acked.len(),
        got.len()
    );
}

#[test]
fn full_store_refuses_with_0x97_keeps_qos0_flowing_and_loses_nothing_acknowledged() {
    if skip_unless_tern("durable store") {
        return;
    }
    let mut b = Broker::start_with(&format!(
        "{}\n[sys]\ninterval = \"1s\"\n",
        store_fragment("max_bytes = \"64KiB\"")
    ));
    full_store_loses_nothing_acknowledged(&mut b, 4096, 1000, true);
}

/// A tmpfs mounted for one test, unmounted on drop.
struct Tmpfs(tempfile::TempDir);

impl Tmpfs {
    /// None when mounting is not allowed here (not root, no CAP_SYS_ADMIN).
    fn mount(size: &str) -> Option<Tmpfs> {
        let dir = tempfile::tempdir().expect("tempdir");
        let ok = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tern-test-store"])
            .arg(dir.path())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .map(|st| st.success())
            .unwrap_or(false);
        ok.then_some(Tmpfs(dir))
    }

    fn path(&self) -> &Path {
        self.0.path()
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(self.0.path()).status();
    }
}

#[test]
fn full_filesystem_refuses_with_0x97_and_loses_nothing_acknowledged() {
    if skip_unless_tern("durable store") {
        return;
    }
    let Some(disk) = Tmpfs::mount("2m") else {
        eprintln!("SKIP: cannot mount a tmpfs here (needs root)");
        return;
    };
    // Declared after `disk`, so dropped (killed) before the unmount.
    let mut b = start(&format!(
        "data_dir = \"{}\"\nmax_bytes = \"1GiB\"",
        disk.path().display()
    ));
    full_store_loses_nothing_acknowledged(&mut b, 16 * 1024, 2000, false);
}

// ---------------------------------------------------------------------------
// Corrupt files and the `tern store` commands.

/// `text` mentions `path` as given or canonicalised.
fn mentions(text: &str, path: &Path) -> bool {
    text.contains(&path.display().to_string())
        || fs::canonicalize(path).is_ok_and(|c| text.contains(&c.display().to_string()))
}

/// The broker must refuse to start on `b`'s store file, say why, and
/// `tern store check` must fail on it too.
fn assert_refuses_corrupt_store(b: &mut Broker) {
    let file = b.store_file();
    match b.try_launch() {
        Ok(()) => panic!("tern started on the corrupt store {}", file.display()),
        Err(LaunchError::TimedOut) => {
            panic!(
                "tern neither started nor exited on the corrupt store {}",
                file.display()
            )
        }
        Err(LaunchError::Exited(st)) => {
            let err = b.stderr_log();
            assert_eq!(st.code(), Some(1), "exit status; stderr:\n{err}");
            assert!(mentions(&err, &file), "stderr names {}:\n{err}", file.display());
            let lower = err.to_lowercase();
            assert!(
                lower.contains("corrupt") || lower.contains("not a tern store"),
                "stderr says the store is corrupt:\n{err}"
            );
            assert!(
                err.contains("tern store check"),
                "stderr suggests `tern store check`:\n{err}"
            );
        }
    }
    let (st, out, err) = b.store_command("check");
    assert_eq!(
        st.code(),
        Some(1),
        "`tern store check` on a corrupt store; stdout:\n{out}\nstderr:\n{err}"
    );
    assert!(
        !format!("{out}{err}").trim().is_empty(),
        "`tern store check` exits 1 without saying what is wrong"
    );
}

#[test]
fn garbage_store_file_stops_startup_and_fails_store_check() {
    if skip_unless_tern("durable store") {
        return;
    }
    let mut b = Broker::prepare_with(&store_fragment(""));
    fs::create_dir_all(b.data_dir()).expect("create data dir");
    let mut rng = XorShift(0x5eed_0f7e_4200);
    let mut garbage = b"this is not a redb file\n".repeat(64);
    garbage.extend((0..64 * 1024).map(|_| rng.next() as u8));
    fs::write(b.store_file(), garbage).expect("write garbage");
    assert_refuses_corrupt_store(&mut b);
}

/// A broker with some of everything stored: a persistent session with a
/// subscription and three queued messages, and a retained message. Stopped.
fn stopped_broker_with_state() -> (Broker, String) {
    let mut b = start("");
    let sub = unique_id("state");
    offline_subscriber(&b, &sub, "state/#", 1);
    let mut p = RawClient::v5(b.addr(), &unique_id("state-p"));
    for n in 0..3u32 {
        p.publish("state/q", &numbered(n, 64), 1, false);
    }
    p.publish("state-retained/a", b"kept", 1, true);
    p.disconnect();
    b.stop();
    (b, sub)
}

#[test]
fn truncated_store_file_stops_startup_and_fails_store_check() {
    if skip_unless_tern("durable store") {
        return;
    }
    let (mut b, _) = stopped_broker_with_state();
    let file = b.store_file();
    let len = fs::metadata(&file)
        .unwrap_or_else(|e| panic!("{}: {e}", file.display()))
        .len();
    assert!(len > 0, "empty store file");
    fs::OpenOptions::new()
        .write(true)
        .open(&file)
        .and_then(|f| f.set_len(len / 2))
        .expect("truncate the store file");
    assert_refuses_corrupt_store(&mut b);
}

#[test]
fn store_check_summarises_a_healthy_store_and_compact_keeps_its_contents() {
    if skip_unless_tern("durable store") {
        return;
    }
    let (mut b, sub) = stopped_broker_with_state();
    let (st, out, err) = b.store_command("check");
    assert!(
        st.success(),
        "`tern store check` on a healthy store: {st}\n{out}\n{err}"
    );
    let lower = out.to_lowercase();
    for word in ["session", "queued", "retained", "bytes"] {
        assert!(lower.contains(word), "the summary mentions {word}:\n{out}");
    }
    let (st, out, err) = b.store_command("compact");
    assert!(st.success(), "`tern store compact`: {st}\n{out}\n{err}");
    assert!(
        out.chars().any(|c| c.is_ascii_digit()),
        "compact prints the sizes before and after:\n{out}"
    );
    let (st, out, err) = b.store_command("check");
    assert!(st.success(), "`tern store check` after compact: {st}\n{out}\n{err}");

    b.launch();
    let kept = retained(&b, "state-retained/#");
    assert_eq!(kept.len(), 1, "retained message after compact: {kept:?}");
    let (mut s, connack) = persistent_v5(b.addr(), &sub);
    assert!(connack.session_present, "session after compact");
    send_sentinel(b.addr(), "state/end", 1);
    assert_eq!(
        numbers_until(&mut s, "state/end"),
        [0, 1, 2],
        "queued messages after compact"
    );
}

/// The store spec writes `tern store check [--config FILE]`; the README
/// `tern [--config FILE] store check`. Both should work.
#[test]
fn store_check_accepts_config_after_the_subcommand() {
    if skip_unless_tern("durable store") {
        return;
    }
    let (b, _) = stopped_broker_with_state();
    let (st, out, err) = run_to_end(
        Command::new(tern_blackbox::broker::tern_bin())
            .args(["store", "check", "--config"])
            .arg(b.config_path())
            .env_remove("RUST_BACKTRACE"),
        Duration::from_secs(30),
    );
    assert!(st.success(), "`tern store check --config FILE`: {st}\n{out}\n{err}");
}

#[test]
fn store_check_without_config_reads_tern_data_in_the_working_dir() {
    if skip_unless_tern("durable store") {
        return;
    }
    let (b, _) = stopped_broker_with_state();
    // The config's dir is the temp dir, so its default data dir is the one the
    // embedded default config finds from there.
    let (st, out, err) = run_to_end(
        Command::new(tern_blackbox::broker::tern_bin())
            .args(["store", "check"])
            .current_dir(b.dir())
            .env_remove("RUST_BACKTRACE"),
        Duration::from_secs(30),
    );
    assert!(
        st.success(),
        "`tern store check` in {}: {st}\n{out}\n{err}",
        b.dir().display()
    );
    assert!(out.to_lowercase().contains("session"), "summary:\n{out}");
}

#[test]
fn unknown_store_engine_and_durability_are_refused() {
    if skip_unless_tern("durable store") {
        return;
    }
    for (fragment, needles) in [
        ("[store]\nengine = \"rocks\"\n", ["engine", "rocks"]),
        ("[store]\ndurability = \"sometimes\"\n", ["durability", "sometimes"]),
    ] {
        let b = Broker::prepare_with(fragment);
        assert_config_refused(&b.config_path(), &needles);
    }
}

// ---------------------------------------------------------------------------
// Other engines and modes.

#[test]
fn memory_engine_writes_nothing_and_forgets_everything_on_restart() {
    if skip_unless_tern("durable store") {
        return;
    }
    let mut b = start("engine = \"memory\"");
    let sub = unique_id("mem");
    offline_subscriber(&b, &sub, "mem/#", 1);
    let mut p = RawClient::v5(b.addr(), &unique_id("mem-p"));
    p.publish("mem/q", b"queued", 1, false);
    p.publish("mem-retained/a", b"kept", 1, true);
    p.disconnect();
    b.stop();
    let dir = b.data_dir();
    let entries: Vec<_> = fs::read_dir(&dir)
        .map(|it| it.filter_map(|e| e.ok()).map(|e| e.file_name()).collect())
        .unwrap_or_default();
    assert!(
        entries.is_empty(),
        "engine = \"memory\" wrote into {}: {entries:?}",
        dir.display()
    );
    b.launch();
    let (_s, connack) = persistent_v5(b.addr(), &sub);
    assert!(!connack.session_present, "engine = \"memory\" restored a session");
    let kept = retained(&b, "mem-retained/#");
    assert!(
        kept.is_empty(),
        "engine = \"memory\" restored a retained message: {kept:?}"
    );
}

/// `none` gives up on kill -9, not on a graceful stop: the commits happen,
/// only without fsync.
#[test]
fn durability_none_keeps_everything_across_a_graceful_restart() {
    if skip_unless_tern("durable store") {
        return;
    }
    let mut b = start("durability = \"none\"");
    let sub = unique_id("none");
    offline_subscriber(&b, &sub, "none/#", 1);
    let mut p = RawClient::v5(b.addr(), &unique_id("none-p"));
    for n in 0..3u32 {
        p.publish("none/q", &numbered(n, 4), 1, false);
    }
    p.disconnect();
    b.restart_graceful();
    let (mut s, connack) = persistent_v5(b.addr(), &sub);
    assert!(connack.session_present, "session lost across a graceful restart");
    send_sentinel(b.addr(), "none/end", 1);
    assert_eq!(numbers_until(&mut s, "none/end"), [0, 1, 2]);
}
