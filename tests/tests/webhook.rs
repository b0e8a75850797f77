//! `[auth.webhooks.NAME]`: VerneMQ-style `auth_on_register` against an
//! HTTP server started by the test: ok, error, next, slow past the
//! timeout, down, garbage; and the cache of "ok" answers.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tern_blackbox::*;

/// A one-thread HTTP server answering each POST with `answer(body)`; counts
/// requests and keeps the last body and hook header.
struct Hooks {
    addr: std::net::SocketAddr,
    calls: Arc<AtomicUsize>,
    last: Arc<Mutex<(String, String)>>,
}

fn serve(answer: fn(&str) -> (u16, String, Duration)) -> Hooks {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().expect("addr");
    let calls = Arc::new(AtomicUsize::new(0));
    let last = Arc::new(Mutex::new((String::new(), String::new())));
    let (c, l) = (calls.clone(), last.clone());
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            let (c, l) = (c.clone(), l.clone());
            std::thread::spawn(move || handle(stream, answer, &c, &l));
        }
    });
    Hooks { addr, calls, last }
}

fn handle(
    stream: TcpStream,
    answer: fn(&str) -> (u16, String, Duration),
    calls: &AtomicUsize,
    last: &Mutex<(String, String)>,
) {
    let mut reader = BufReader::new(stream.try_clone().expect("clone"));
    loop {
        let mut len = 0;
        let mut hook = String::new();
        let mut line = String::new();
        if reader.read_line(&mut line).unwrap_or(0) == 0 {
            return;
        }
        loop {
            line.clear();
            if reader.read_line(&mut line).unwrap_or(0) == 0 {
                return;
            }
            let l = line.trim_end().to_ascii_lowercase();
            if l.is_empty() {
                break;
            }
            if let Some(v) = l.strip_prefix("content-length:") {
                len = v.trim().parse().unwrap_or(0);
            }
            if let Some(v) = l.strip_prefix("vernemq-hook:") {
                hook = v.trim().to_owned();
            }
        }
        let mut body = vec![0u8; len];
        if reader.read_exact(&mut body).is_err() {
            return;
        }
        let body = String::from_utf8_lossy(&body).into_owned();
        calls.fetch_add(1, Ordering::SeqCst);
        *last.lock().expect("lock") = (hook, body.clone());
        let (status, text, delay) = answer(&body);
        std::thread::sleep(delay);
        let resp = format!(
            "HTTP/1.1 {status} X\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{text}",
            text.len()
        );
        let mut w = &stream;
        if w.write_all(resp.as_bytes()).is_err() {
            return;
        }
    }
}

fn broker(url: &str, extra: &str) -> Broker {
    Broker::start_with(&format!(
        "[auth.webhooks.central]\nurl = \"{url}\"\ntimeout = \"500ms\"\n{extra}\n\n[[listener]]\nname = \"default\"\n\
         bind = \"127.0.0.1:0\"\nallow_anonymous = false\nauth = [\"webhook:central\"]\n"
    ))
}

fn connack(b: &Broker, user: &str, pw: &str) -> u8 {
    RawClient::handshake(b.addr(), &Connect::v5(&unique_id("w")).user(user, Some(pw.as_bytes())))
        .1
        .code
}

fn by_user(body: &str) -> (u16, String, Duration) {
    let v: serde_json::Value = serde_json::from_str(body).unwrap_or_default();
    let ok = r#"{"result":"ok"}"#.to_owned();
    match v["username"].as_str().unwrap_or("") {
        "alice" if v["password"] == "secret" => (200, ok, Duration::ZERO),
        "next" => (200, r#"{"result":"next"}"#.to_owned(), Duration::ZERO),
        "slow" => (200, ok, Duration::from_secs(2)),
        "garbage" => (200, "{not json".to_owned(), Duration::ZERO),
        "broken" => (500, String::new(), Duration::ZERO),
        _ => (200, r#"{"result":{"error":"not_allowed"}}"#.to_owned(), Duration::ZERO),
    }
}

#[test]
fn auth_on_register_ok_error_next_and_failures() {
    if skip_unless_tern("webhooks") {
        return;
    }
    let hooks = serve(by_user);
    let b = broker(&format!("http://{}/auth", hooks.addr), "");
    assert_eq!(connack(&b, "alice", "secret"), 0);
    {
        let (hook, body) = hooks.last.lock().expect("lock").clone();
        assert_eq!(hook, "auth_on_register");
        let v: serde_json::Value = serde_json::from_str(&body).expect("json body");
        assert_eq!(v["username"], "alice");
        assert!(v["client_id"].as_str().is_some_and(|c| c.starts_with('w')));
        assert_eq!(v["peer_addr"], "127.0.0.1");
    }
    assert_eq!(connack(&b, "alice", "wrong"), 0x87, "error: not authorized");
    // "next" with nothing after it: a named client nobody vouched for.
    assert_eq!(connack(&b, "next", "x"), 0x86);
    // Failures fail closed by default: 0x88 Server unavailable.
    assert_eq!(connack(&b, "slow", "x"), 0x88, "past the timeout");
    assert_eq!(connack(&b, "garbage", "x"), 0x88);
    assert_eq!(connack(&b, "broken", "x"), 0x88);
}

#[test]
fn a_down_endpoint_follows_on_failure() {
    if skip_unless_tern("webhooks") {
        return;
    }
    let port = tern_blackbox::broker::free_port();
    let url = format!("http://127.0.0.1:{port}/auth");
    let closed = broker(&url, "");
    assert_eq!(connack(&closed, "alice", "secret"), 0x88);
    let open = broker(&url, "on_failure = \"allow\"");
    assert_eq!(connack(&open, "alice", "secret"), 0);
}

#[test]
fn ok_answers_are_cached_for_the_ttl() {
    if skip_unless_tern("webhooks") {
        return;
    }
    let hooks = serve(by_user);
    let b = broker(&format!("http://{}/auth", hooks.addr), "cache_ttl = \"60s\"");
    let id = unique_id("same");
    for _ in 0..5 {
        let c = Connect::v5(&id).user("alice", Some(b"secret"));
        assert_eq!(RawClient::handshake(b.addr(), &c).1.code, 0);
    }
    assert_eq!(hooks.calls.load(Ordering::SeqCst), 1, "one call, then the cache");
    // A different password is not the cached answer.
    let c = Connect::v5(&id).user("alice", Some(b"other"));
    assert_eq!(RawClient::handshake(b.addr(), &c).1.code, 0x87);
    assert_eq!(hooks.calls.load(Ordering::SeqCst), 2);
}

/// Publish and subscribe hooks: `secret/...` and `deny/...` are refused,
/// `low/...` is capped at QoS 0, everything else is ok.
fn by_topic(body: &str) -> (u16, String, Duration) {
    let v: serde_json::Value = serde_json::from_str(body).unwrap_or_default();
    if let Some(topic) = v["topic"].as_str() {
        let slow = topic.starts_with("slow/");
        return if topic.starts_with("secret/") {
            (200, r#"{"result":{"error":"not_allowed"}}"#.to_owned(), Duration::ZERO)
        } else {
            let delay = if slow {
                Duration::from_millis(200)
            } else {
                Duration::ZERO
            };
            (200, r#"{"result":"ok"}"#.to_owned(), delay)
        };
    }
    if let Some(topics) = v["topics"].as_array() {
        let changed: Vec<String> = topics
            .iter()
            .filter_map(|t| t["topic"].as_str())
            .filter_map(|t| {
                if t.starts_with("deny/") {
                    Some(format!(r#"{{"topic":"{t}","qos":128}}"#))
                } else if t.starts_with("low/") {
                    Some(format!(r#"{{"topic":"{t}","qos":0}}"#))
                } else {
                    None
                }
            })
            .collect();
        return (
            200,
            format!(r#"{{"result":"ok","topics":[{}]}}"#, changed.join(",")),
            Duration::ZERO,
        );
    }
    (200, r#"{"result":"ok"}"#.to_owned(), Duration::ZERO)
}

fn pub_sub_broker(url: &str, extra: &str) -> Broker {
    broker(
        url,
        &format!("hooks = [\"auth_on_register\", \"auth_on_publish\", \"auth_on_subscribe\"]\n{extra}"),
    )
}

fn client(b: &Broker, v5: bool) -> RawClient {
    let id = unique_id("h");
    let c = if v5 { Connect::v5(&id) } else { Connect::v311(&id) };
    let (c, ack) = RawClient::handshake(b.addr(), &c.user("alice", Some(b"pw")));
    assert_eq!(ack.code, 0);
    c
}

#[test]
fn auth_on_publish_refuses_with_0x87_and_keeps_the_order_of_acks_and_messages() {
    if skip_unless_tern("webhooks") {
        return;
    }
    let hooks = serve(by_topic);
    let b = pub_sub_broker(&format!("http://{}/auth", hooks.addr), "");
    let mut sub = client(&b, true);
    assert_eq!(sub.subscribe("#", 1), 1);
    let mut p = client(&b, true);
    // Pipelined: the slow answer for the first must not let the later ones
    // overtake it, on the wire to the publisher or to the subscriber.
    p.send(&publish5("slow/1", b"1", 1, false, 1));
    p.send(&publish5("secret/2", b"2", 1, false, 2));
    p.send(&publish5("open/3", b"3", 1, false, 3));
    let acks: Vec<(u16, u8)> = (0..3).map(|_| p.read_until(PUBACK).0.ack()).collect();
    assert_eq!(acks, [(1, 0), (2, 0x87), (3, 0)], "in order, the secret one refused");
    let got: Vec<Vec<u8>> = (0..2).map(|_| sub.expect_publish().payload).collect();
    assert_eq!(got, [b"1".to_vec(), b"3".to_vec()]);
    sub.expect_silence(Duration::from_millis(200));
    let (hook, body) = hooks.last.lock().expect("lock").clone();
    assert_eq!(hook, "auth_on_publish");
    let v: serde_json::Value = serde_json::from_str(&body).expect("json body");
    assert_eq!(v["topic"], "open/3");
    assert_eq!(v["username"], "alice");
    assert_eq!(v["qos"], 1);
    assert_eq!(v["payload"], "Mw==", "base64 of the payload, as VerneMQ sends it");
}

#[test]
fn auth_on_publish_refusal_on_3_1_1_is_acknowledged_and_dropped() {
    if skip_unless_tern("webhooks") {
        return;
    }
    let hooks = serve(by_topic);
    let b = pub_sub_broker(&format!("http://{}/auth", hooks.addr), "");
    let mut sub = client(&b, false);
    assert_eq!(sub.subscribe("#", 1), 1);
    let mut p = client(&b, false);
    p.send(&publish311("secret/x", b"no", 1, false, 7));
    assert_eq!(p.read_until(PUBACK).0.ack().0, 7);
    p.send(&publish311("open/x", b"yes", 1, false, 8));
    assert_eq!(p.read_until(PUBACK).0.ack().0, 8);
    assert_eq!(sub.expect_publish().payload, b"yes");
}

#[test]
fn auth_on_subscribe_refuses_or_caps_each_filter() {
    if skip_unless_tern("webhooks") {
        return;
    }
    let hooks = serve(by_topic);
    let b = pub_sub_broker(&format!("http://{}/auth", hooks.addr), "");
    let mut c = client(&b, true);
    c.send(&subscribe(
        5,
        &[("open/#", 1), ("deny/#", 1), ("low/#", 2)],
        Some(&Props::new()),
    ));
    let (pid, codes) = c.read_until(SUBACK).0.suback(true);
    assert_eq!((pid, codes), (5, vec![1, 0x87, 0]));
    assert_eq!(hooks.last.lock().expect("lock").0, "auth_on_subscribe");
    let mut p = client(&b, true);
    p.publish("deny/x", b"d", 0, false);
    p.publish("low/x", b"l", 1, false);
    let got = c.expect_publish();
    assert_eq!(
        (got.topic.as_str(), got.qos),
        ("low/x", 0),
        "capped at QoS 0; nothing from deny/#"
    );
}

#[test]
fn publish_hook_failures_follow_on_failure_and_ok_answers_are_cached() {
    if skip_unless_tern("webhooks") {
        return;
    }
    let hooks = serve(by_topic);
    let b = pub_sub_broker(&format!("http://{}/auth", hooks.addr), "cache_ttl = \"60s\"");
    let mut p = client(&b, true);
    let before = hooks.calls.load(Ordering::SeqCst);
    for i in 1..=5 {
        p.send(&publish5("open/same", b"x", 1, false, i));
        assert_eq!(p.read_until(PUBACK).0.ack().0, i);
    }
    assert_eq!(
        hooks.calls.load(Ordering::SeqCst) - before,
        1,
        "one request, then the cache"
    );

    // An endpoint that is down: on_failure = "deny" (the default) refuses
    // with 0x83, "allow" lets through.
    let port = tern_blackbox::broker::free_port();
    let url = format!("http://127.0.0.1:{port}/auth");
    for (policy, code) in [("deny", 0x83), ("allow", 0x10)] {
        let b = Broker::start_with(&format!(
            "[auth.webhooks.central]\nurl = \"{url}\"\ntimeout = \"300ms\"\non_failure = \"{policy}\"\n\
             hooks = [\"auth_on_publish\"]\n\n[[listener]]\nname = \"default\"\nbind = \"127.0.0.1:0\"\n\
             allow_anonymous = true\nauth = [\"webhook:central\"]\n"
        ));
        let mut p = RawClient::v5(b.addr(), &unique_id("f"));
        p.send(&publish5("any/t", b"x", 1, false, 1));
        assert_eq!(p.read_until(PUBACK).0.ack(), (1, code), "on_failure = {policy}");
    }
}
