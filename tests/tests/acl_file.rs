//! `[auth] acl_file`: Mosquitto's ACL syntax and semantics, with users from
//! a password file, checked by the real broker with raw clients.

use std::path::Path;
use std::process::Command;

use tern_blackbox::broker::tern_bin;
use tern_blackbox::*;

const NOT_AUTHORIZED: u8 = 0x87;

const ACL: &str = "\
# anonymous clients
topic readwrite public/#

user alice
topic readwrite alice/#
topic deny alice/secret
topic read shared/#
topic write will/alice

user bob
topic write shared/#
topic write alice/#

pattern readwrite devices/%c/#
";

fn passwd(file: &Path, user: &str, pw: &str) {
    use std::io::Write;
    let mut child = Command::new(tern_bin())
        .args(["passwd", "--stdin"])
        .arg(file)
        .arg(user)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("tern passwd");
    writeln!(child.stdin.take().expect("stdin"), "{pw}").expect("write");
    assert!(child.wait().expect("wait").success());
}

struct Setup {
    broker: Broker,
    _dir: tempfile::TempDir,
}

fn setup() -> Setup {
    let dir = tempfile::tempdir().expect("tempdir");
    passwd(&dir.path().join("passwd"), "alice", "a");
    passwd(&dir.path().join("passwd"), "bob", "b");
    std::fs::write(dir.path().join("acl"), ACL).expect("acl");
    let broker = Broker::start_with(&format!(
        "[auth]\npassword_file = {:?}\nacl_file = {:?}\n\n[[listener]]\nname = \"default\"\n\
         bind = \"127.0.0.1:0\"\nallow_anonymous = true\nauth = [\"password_file\", \"acl_file\"]\n",
        dir.path().join("passwd"),
        dir.path().join("acl"),
    ));
    Setup { broker, _dir: dir }
}

fn client(b: &Broker, id: &str, user: Option<(&str, &str)>) -> RawClient {
    let c = Connect::v5(id);
    let c = match user {
        Some((u, p)) => c.user(u, Some(p.as_bytes())),
        None => c,
    };
    let (rc, ack) = RawClient::handshake(b.addr(), &c);
    assert_eq!(ack.code, 0, "CONNACK for {id}");
    rc
}

/// Publishes QoS 1 and returns the PUBACK reason code.
fn publish(c: &mut RawClient, topic: &str, retain: bool) -> u8 {
    c.send(&publish5(topic, topic.as_bytes(), 1, retain, 9));
    let ack = c.read_until_keep(PUBACK).ack();
    assert_eq!(ack.0, 9);
    ack.1
}

/// Topics that reached `c`, up to a sentinel published by `from`.
fn received(c: &mut RawClient, from: &mut RawClient, sentinel: &str) -> Vec<String> {
    from.send(&publish5(sentinel, b"end", 0, false, 0));
    c.collect_until_topic(sentinel).into_iter().map(|m| m.topic).collect()
}

#[test]
fn publish_needs_write_access_and_a_deny_wins() {
    if skip_unless_tern("[auth] acl_file") {
        return;
    }
    let s = setup();
    let mut alice = client(&s.broker, "a1", Some(("alice", "a")));
    let mut bob = client(&s.broker, "b1", Some(("bob", "b")));
    let mut anon = client(&s.broker, "anon1", None);
    assert!(publish(&mut alice, "alice/notes", false) < 0x80);
    assert_eq!(publish(&mut alice, "alice/secret", false), NOT_AUTHORIZED, "deny wins");
    assert_eq!(publish(&mut alice, "shared/x", false), NOT_AUTHORIZED, "read-only");
    assert!(publish(&mut bob, "shared/x", false) < 0x80);
    assert_eq!(
        publish(&mut bob, "public/x", false),
        NOT_AUTHORIZED,
        "anonymous rules are not bob's"
    );
    assert!(publish(&mut anon, "public/x", false) < 0x80);
    assert_eq!(publish(&mut anon, "alice/notes", false), NOT_AUTHORIZED);
    // Patterns apply to everyone, with the client id put in.
    assert!(publish(&mut anon, "devices/anon1/state", false) < 0x80);
    assert_eq!(publish(&mut anon, "devices/other/state", false), NOT_AUTHORIZED);
}

#[test]
fn a_subscriber_only_receives_what_it_may_read() {
    if skip_unless_tern("[auth] acl_file") {
        return;
    }
    let s = setup();
    let mut alice = client(&s.broker, "a2", Some(("alice", "a")));
    let mut bob = client(&s.broker, "b2", Some(("bob", "b")));
    let mut anon = client(&s.broker, "anon2", None);
    // Subscribing to everything is allowed; reading is checked per message.
    alice.subscribe("#", 1);
    anon.subscribe("#", 1);
    publish(&mut bob, "shared/news", false);
    publish(&mut bob, "alice/inbox", false);
    publish(&mut anon, "public/hello", false);
    publish(&mut anon, "devices/anon2/state", false);
    let for_alice = received(&mut alice, &mut alice_sentinel_publisher(&s.broker), "alice/end");
    assert_eq!(for_alice, ["shared/news", "alice/inbox"]);
    let for_anon = received(&mut anon, &mut anon_sentinel_publisher(&s.broker), "public/end");
    assert_eq!(for_anon, ["public/hello", "devices/anon2/state"]);
}

fn alice_sentinel_publisher(b: &Broker) -> RawClient {
    client(b, "a-sentinel", Some(("alice", "a")))
}

fn anon_sentinel_publisher(b: &Broker) -> RawClient {
    client(b, "anon-sentinel", None)
}

#[test]
fn retained_messages_are_filtered_too() {
    if skip_unless_tern("[auth] acl_file") {
        return;
    }
    let s = setup();
    let mut bob = client(&s.broker, "b3", Some(("bob", "b")));
    publish(&mut bob, "shared/kept", true);
    let mut anon = client(&s.broker, "anon3", None);
    publish(&mut anon, "public/kept", true);

    let mut alice = client(&s.broker, "a3", Some(("alice", "a")));
    alice.subscribe("#", 1);
    let got = received(&mut alice, &mut alice_sentinel_publisher(&s.broker), "alice/end3");
    assert_eq!(got, ["shared/kept"]);
    let mut other = client(&s.broker, "anon4", None);
    other.subscribe("#", 1);
    let got = received(&mut other, &mut anon_sentinel_publisher(&s.broker), "public/end3");
    assert_eq!(got, ["public/kept"]);
}

#[test]
fn a_will_on_a_topic_the_client_may_not_write_is_refused_at_connect() {
    if skip_unless_tern("[auth] acl_file") {
        return;
    }
    let s = setup();
    let refused = Connect::v5("a5")
        .user("alice", Some(b"a"))
        .will(Will::new("shared/will", b"x", 0, false));
    assert_eq!(RawClient::handshake(s.broker.addr(), &refused).1.code, NOT_AUTHORIZED);
    let fine = Connect::v5("a6")
        .user("alice", Some(b"a"))
        .will(Will::new("will/alice", b"x", 0, false));
    assert_eq!(RawClient::handshake(s.broker.addr(), &fine).1.code, 0);
}

#[test]
fn v311_publish_refused_by_the_acl_is_acknowledged_and_dropped() {
    if skip_unless_tern("[auth] acl_file") {
        return;
    }
    let s = setup();
    let mut alice = client(&s.broker, "a7", Some(("alice", "a")));
    alice.subscribe("alice/#", 1);
    let (mut old, ack) = RawClient::handshake(s.broker.addr(), &Connect::v311("old").user("bob", Some(b"b")));
    assert_eq!(ack.code, 0);
    // bob may write alice/#, not public/#.
    old.publish("public/x", b"no", 1, false);
    old.publish("alice/from-bob", b"yes", 1, false);
    let got = received(&mut alice, &mut alice_sentinel_publisher(&s.broker), "alice/end7");
    assert_eq!(got, ["alice/from-bob"]);
}

#[test]
fn a_malformed_acl_file_stops_startup_naming_file_and_line() {
    if skip_unless_tern("[auth] acl_file") {
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(dir.path().join("acl"), "user alice\ntopic read a/#/b\n").expect("acl");
    let cfg = dir.path().join("tern.toml");
    std::fs::write(
        &cfg,
        "[auth]\nacl_file = \"acl\"\n\n[[listener]]\nbind = \"127.0.0.1:0\"\nallow_anonymous = true\nauth = [\"acl_file\"]\n",
    )
    .expect("cfg");
    let file_and_line = format!("{}:2:", dir.path().join("acl").display());
    assert_config_refused(&cfg, &[&file_and_line, "acl_file"]);
}

#[test]
fn sighup_reloads_users_and_rules_without_dropping_anyone() {
    if skip_unless_tern("SIGHUP reload") {
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let pw = dir.path().join("passwd");
    let acl = dir.path().join("acl");
    passwd(&pw, "alice", "a");
    passwd(&pw, "bob", "b");
    std::fs::write(&acl, ACL).expect("acl");
    let b = Broker::start_with(&format!(
        "[auth]\npassword_file = {pw:?}\nacl_file = {acl:?}\n\n[[listener]]\nname = \"default\"\n\
         bind = \"127.0.0.1:0\"\nallow_anonymous = true\nauth = [\"password_file\", \"acl_file\"]\n"
    ));
    let mut alice = client(&b, "a8", Some(("alice", "a")));
    alice.subscribe("#", 1);
    let mut bob = client(&b, "b8", Some(("bob", "b")));
    publish(&mut bob, "shared/before", false);

    // carol in, bob's password out; alice may no longer read shared/#.
    passwd(&pw, "carol", "c");
    let text = std::fs::read_to_string(&pw).expect("pw");
    let without_bob: String = text
        .lines()
        .filter(|l| !l.starts_with("bob:"))
        .map(|l| format!("{l}\n"))
        .collect();
    std::fs::write(&pw, without_bob).expect("pw");
    std::fs::write(&acl, ACL.replace("topic read shared/#", "topic deny shared/#")).expect("acl");
    b.send_signal(libc::SIGHUP);
    assert!(b.wait_log("ACL file reloaded", TIMEOUT), "{}", b.stderr_log());

    let carol = Connect::v5("c8").user("carol", Some(b"c"));
    assert_eq!(RawClient::handshake(b.addr(), &carol).1.code, 0, "new user admitted");
    let bob_again = Connect::v5("b9").user("bob", Some(b"b"));
    assert_eq!(
        RawClient::handshake(b.addr(), &bob_again).1.code,
        0x86,
        "removed user refused"
    );
    // The connected bob was not dropped, and still may write shared/#; alice
    // no longer receives it.
    publish(&mut bob, "shared/after", false);
    publish(&mut bob, "alice/after", false);
    let got = received(&mut alice, &mut alice_sentinel_publisher(&b), "alice/end8");
    assert_eq!(got, ["shared/before", "alice/after"]);
}

#[test]
fn a_reload_with_a_broken_file_keeps_the_old_one() {
    if skip_unless_tern("SIGHUP reload") {
        return;
    }
    let s = setup();
    let acl = s._dir.path().join("acl");
    std::fs::write(&acl, "allow alice/#\n").expect("acl");
    s.broker.send_signal(libc::SIGHUP);
    assert!(
        s.broker.wait_log("ACL file not reloaded", TIMEOUT),
        "{}",
        s.broker.stderr_log()
    );
    let mut alice = client(&s.broker, "a10", Some(("alice", "a")));
    assert!(publish(&mut alice, "alice/still", false) < 0x80);
    assert_eq!(publish(&mut alice, "alice/secret", false), NOT_AUTHORIZED);
}

#[test]
fn tern_reload_sends_sighup_to_the_broker_in_the_pid_file() {
    if skip_unless_tern("tern reload") {
        return;
    }
    let s = setup();
    let pid_file = s._dir.path().join("tern.pid");
    std::fs::write(&pid_file, format!("{}\n", s.broker.pid())).expect("pid file");
    let (status, out, err) = run_to_end(
        Command::new(tern_bin()).arg("reload").arg("--pid-file").arg(&pid_file),
        TIMEOUT,
    );
    assert!(status.success(), "{out}{err}");
    assert!(
        s.broker.wait_log("ACL file reloaded", TIMEOUT),
        "{}",
        s.broker.stderr_log()
    );
    // A pid file naming no process is an error, not a silent success.
    std::fs::write(&pid_file, "999999999\n").expect("pid file");
    let (status, _, err) = run_to_end(
        Command::new(tern_bin()).arg("reload").arg("--pid-file").arg(&pid_file),
        TIMEOUT,
    );
    assert!(!status.success(), "{err}");
}
