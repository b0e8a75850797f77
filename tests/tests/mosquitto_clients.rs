//! Interop with Debian's Mosquitto command-line clients (`mosquitto_pub`,
//! `mosquitto_sub`, `mosquitto_rr` from `mosquitto-clients`), over MQTT
//! 3.1.1 and 5.0. `tests/run` installs them; without them these tests skip.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc::{self, Receiver};
use std::time::{Duration, Instant};

use tern_blackbox::*;

const VERSIONS: [&str; 2] = ["mqttv311", "mqttv5"];

/// True (after a notice) when the Mosquitto clients are not installed.
fn skip_without_clients() -> bool {
    let found = ["mosquitto_pub", "mosquitto_sub", "stdbuf"].iter().all(|p| {
        Command::new(p)
            .arg("--help")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok()
    });
    if !found {
        eprintln!("SKIP: mosquitto_pub / mosquitto_sub not installed (apt-get install mosquitto-clients)");
    }
    !found
}

/// Runs a client to completion (killed after 10 s); panics unless it exits 0.
fn run(program: &str, b: &Broker, args: &[&str]) -> String {
    let port = b.port().to_string();
    let (status, out, err) = run_to_end(
        Command::new(program).args(["-h", "127.0.0.1", "-p", &port]).args(args),
        Duration::from_secs(10),
    );
    assert!(
        status.success(),
        "{program} {args:?} exited {status}\nstdout:\n{out}\nstderr:\n{err}"
    );
    out
}

fn mosquitto_pub(b: &Broker, args: &[&str]) {
    run("mosquitto_pub", b, args);
}

/// A running `mosquitto_sub -d` whose stdout (line-buffered through
/// `stdbuf`) and stderr lines arrive on a channel. Killed on drop.
struct Sub {
    child: Child,
    lines: Receiver<String>,
    seen: Vec<String>,
}

impl Sub {
    fn start(b: &Broker, args: &[&str]) -> Sub {
        let port = b.port().to_string();
        let mut child = Command::new("stdbuf")
            .args(["-oL", "mosquitto_sub", "-d", "-h", "127.0.0.1", "-p", &port])
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn mosquitto_sub");
        let (tx, lines) = mpsc::channel();
        let out = child.stdout.take().unwrap();
        let err = child.stderr.take().unwrap();
        let tx2 = tx.clone();
        std::thread::spawn(move || {
            for l in BufReader::new(out).lines().map_while(Result::ok) {
                let _ = tx.send(l);
            }
        });
        std::thread::spawn(move || {
            for l in BufReader::new(err).lines().map_while(Result::ok) {
                let _ = tx2.send(format!("stderr: {l}"));
            }
        });
        Sub {
            child,
            lines,
            seen: Vec::new(),
        }
    }

    /// Starts and waits for the SUBACK.
    fn subscribed(b: &Broker, args: &[&str]) -> Sub {
        let mut s = Sub::start(b, args);
        s.wait_line(|l| l.starts_with("Subscribed (mid"));
        s
    }

    fn wait_line(&mut self, pred: impl Fn(&str) -> bool) -> String {
        let deadline = Instant::now() + TIMEOUT;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(l) => {
                    self.seen.push(l.clone());
                    if pred(&l) {
                        return l;
                    }
                }
                Err(_) => panic!(
                    "mosquitto_sub: expected line not seen; output so far:\n{}",
                    self.seen.join("\n")
                ),
            }
        }
    }

    /// The next `n` lines printed with the `MSG|` format prefix, prefix removed.
    fn messages(&mut self, n: usize) -> Vec<String> {
        (0..n)
            .map(|_| self.wait_line(|l| l.starts_with("MSG|"))["MSG|".len()..].to_string())
            .collect()
    }

    fn wait_exit(&mut self) -> ExitStatus {
        let deadline = Instant::now() + TIMEOUT;
        loop {
            if let Some(st) = self.child.try_wait().expect("try_wait") {
                return st;
            }
            assert!(Instant::now() < deadline, "mosquitto_sub still running");
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Sub {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if std::thread::panicking() {
            while let Ok(l) = self.lines.try_recv() {
                self.seen.push(l);
            }
            eprintln!("----- mosquitto_sub output -----\n{}", self.seen.join("\n"));
        }
    }
}

#[test]
fn pub_sub_qos_0_1_2() {
    if skip_without_clients() {
        return;
    }
    let b = Broker::start();
    for v in VERSIONS {
        let filter = format!("mc/{v}/#");
        let mut sub = Sub::subscribed(&b, &["-V", v, "-q", "2", "-t", &filter, "-F", "MSG|%t|%q|%r|%p"]);
        for qos in ["0", "1", "2"] {
            let topic = format!("mc/{v}/q{qos}");
            mosquitto_pub(&b, &["-V", v, "-q", qos, "-t", &topic, "-m", &format!("hello {qos}")]);
            let got = sub.messages(1);
            assert_eq!(got, [format!("{topic}|{qos}|0|hello {qos}")], "{v}");
        }
    }
}

#[test]
fn subscription_qos_caps_delivery_qos() {
    if skip_without_clients() {
        return;
    }
    let b = Broker::start();
    let mut sub = Sub::subscribed(&b, &["-V", "mqttv5", "-q", "1", "-t", "mc/cap", "-F", "MSG|%q"]);
    mosquitto_pub(&b, &["-V", "mqttv311", "-q", "2", "-t", "mc/cap", "-m", "x"]);
    // [MQTT-3.8.4-8] delivered at min(published, granted) QoS.
    assert_eq!(sub.messages(1), ["1"]);
}

#[test]
fn raw_and_mosquitto_clients_interoperate_both_ways() {
    if skip_without_clients() {
        return;
    }
    let b = Broker::start();
    let mut raw = RawClient::v5(b.addr(), &unique_id("raw"));
    raw.subscribe("mc/to-raw", 2);
    let mut sub = Sub::subscribed(&b, &["-V", "mqttv5", "-q", "2", "-t", "mc/from-raw", "-F", "MSG|%q|%p"]);
    mosquitto_pub(&b, &["-V", "mqttv5", "-q", "2", "-t", "mc/to-raw", "-m", "to raw"]);
    let m = raw.expect_publish();
    assert_eq!((m.qos, m.payload.as_slice()), (2, &b"to raw"[..]));
    raw.send(&ack(PUBREC, m.pid));
    let rel = raw.read_packet();
    assert_eq!((rel.kind(), rel.ack().0), (PUBREL, m.pid));
    raw.send(&ack(PUBCOMP, m.pid));
    raw.publish("mc/from-raw", b"from raw", 2, false);
    assert_eq!(sub.messages(1), ["2|from raw"]);
}

#[test]
fn retained_message_set_read_and_cleared() {
    if skip_without_clients() {
        return;
    }
    let b = Broker::start();
    for v in VERSIONS {
        let topic = format!("mc/ret/{v}");
        mosquitto_pub(&b, &["-V", v, "-q", "1", "-r", "-t", &topic, "-m", "kept"]);
        let out = run(
            "mosquitto_sub",
            &b,
            &["-V", v, "-t", &topic, "-C", "1", "-W", "5", "-F", "%r|%p"],
        );
        assert_eq!(out.trim_end(), "1|kept", "{v}: retained flag set on a new subscription");
        // -n sends a zero-length retained message, which clears it [MQTT-3.3.1-10].
        mosquitto_pub(&b, &["-V", v, "-q", "1", "-r", "-t", &topic, "-n"]);
        let mut s = RawClient::v311(b.addr(), &unique_id("check"));
        s.subscribe(&topic, 0);
        s.expect_silence(Duration::from_millis(300));
    }
}

#[test]
fn persistent_session_with_c_receives_messages_queued_while_away() {
    if skip_without_clients() {
        return;
    }
    let b = Broker::start();
    for v in VERSIONS {
        let id = unique_id(&format!("mc-persist-{v}"));
        let topic = format!("mc/persist/{v}");
        // -E: subscribe, then disconnect normally; -c keeps the session.
        run(
            "mosquitto_sub",
            &b,
            &["-V", v, "-c", "-i", &id, "-q", "1", "-t", &topic, "-E"],
        );
        for i in 1..=3 {
            mosquitto_pub(&b, &["-V", v, "-q", "1", "-t", &topic, "-m", &format!("queued {i}")]);
        }
        let out = run(
            "mosquitto_sub",
            &b,
            &[
                "-V", v, "-c", "-i", &id, "-q", "1", "-t", &topic, "-C", "3", "-W", "5", "-F", "%q|%p",
            ],
        );
        let got: Vec<&str> = out.lines().collect();
        assert_eq!(got, ["1|queued 1", "1|queued 2", "1|queued 3"], "{v}");
    }
}

#[test]
fn clean_session_does_not_receive_messages_from_while_away() {
    if skip_without_clients() {
        return;
    }
    let b = Broker::start();
    let id = unique_id("mc-clean");
    run("mosquitto_sub", &b, &["-i", &id, "-q", "1", "-t", "mc/clean", "-E"]);
    mosquitto_pub(&b, &["-q", "1", "-t", "mc/clean", "-m", "lost"]);
    let mut sub = Sub::subscribed(
        &b,
        &["-i", &id, "-q", "1", "-t", "mc/clean", "-t", "mc/end", "-F", "MSG|%t"],
    );
    mosquitto_pub(&b, &["-q", "1", "-t", "mc/end", "-m", "end"]);
    assert_eq!(sub.messages(1), ["mc/end"]);
}

#[test]
fn will_from_mosquitto_sub_published_when_it_dies() {
    if skip_without_clients() {
        return;
    }
    let b = Broker::start();
    for v in VERSIONS {
        let will_topic = format!("mc/will/{v}");
        let mut watcher = RawClient::v311(b.addr(), &unique_id("watch"));
        watcher.subscribe(&will_topic, 1);
        let mut sub = Sub::subscribed(
            &b,
            &[
                "-V",
                v,
                "-t",
                "mc/anything",
                "--will-topic",
                &will_topic,
                "--will-payload",
                "it died",
                "--will-qos",
                "1",
            ],
        );
        // SIGKILL: the TCP connection ends without DISCONNECT.
        sub.child.kill().expect("kill mosquitto_sub");
        let m = watcher.expect_publish();
        assert_eq!(
            (m.topic.as_str(), m.payload.as_slice(), m.qos),
            (will_topic.as_str(), &b"it died"[..], 1)
        );
    }
}

#[test]
fn will_from_mosquitto_sub_not_published_on_normal_exit() {
    if skip_without_clients() {
        return;
    }
    let b = Broker::start();
    let mut watcher = RawClient::v311(b.addr(), &unique_id("watch"));
    watcher.subscribe("mc/will/normal", 1);
    let mut sub = Sub::subscribed(
        &b,
        &[
            "-t",
            "mc/exit",
            "-C",
            "1",
            "--will-topic",
            "mc/will/normal",
            "--will-payload",
            "x",
            "-F",
            "MSG|%p",
        ],
    );
    // -C 1: exits with a DISCONNECT after one message [MQTT-3.1.2-10].
    mosquitto_pub(&b, &["-t", "mc/exit", "-m", "bye"]);
    assert_eq!(sub.messages(1), ["bye"]);
    assert!(sub.wait_exit().success());
    watcher.expect_silence(Duration::from_millis(500));
}

#[test]
fn v5_properties_seen_by_mosquitto_sub() {
    if skip_without_clients() {
        return;
    }
    let b = Broker::start();
    let mut sub = Sub::subscribed(
        &b,
        &[
            "-V",
            "mqttv5",
            "-q",
            "1",
            "-t",
            "mc/props",
            "-F",
            "MSG|%P|%E|%C|%R|%D|%F|%p",
        ],
    );
    mosquitto_pub(
        &b,
        &[
            "-V",
            "mqttv5",
            "-q",
            "1",
            "-t",
            "mc/props",
            "-m",
            "with props",
            "-D",
            "publish",
            "user-property",
            "k1",
            "v1",
            "-D",
            "publish",
            "user-property",
            "k2",
            "v2",
            "-D",
            "publish",
            "message-expiry-interval",
            "120",
            "-D",
            "publish",
            "content-type",
            "text/plain",
            "-D",
            "publish",
            "response-topic",
            "mc/resp",
            "-D",
            "publish",
            "correlation-data",
            "c0rr",
            "-D",
            "publish",
            "payload-format-indicator",
            "1",
        ],
    );
    let got = sub.messages(1).remove(0);
    let f: Vec<&str> = got.split('|').collect();
    // [MQTT-3.3.2-17] [MQTT-3.3.2-18] user properties in order.
    assert_eq!(f[0], "k1:v1 k2:v2", "{got}");
    // [MQTT-3.3.2-6] the expiry is forwarded, less the time spent waiting.
    let expiry: u32 = f[1].parse().unwrap_or_else(|_| panic!("expiry in {got}"));
    assert!((100..=120).contains(&expiry), "{got}");
    assert_eq!(&f[2..], ["text/plain", "mc/resp", "c0rr", "1", "with props"], "{got}");
}

#[test]
fn v5_retained_message_expiry_counts_down() {
    if skip_without_clients() {
        return;
    }
    let b = Broker::start();
    mosquitto_pub(
        &b,
        &[
            "-V",
            "mqttv5",
            "-r",
            "-t",
            "mc/exp",
            "-m",
            "x",
            "-D",
            "publish",
            "message-expiry-interval",
            "60",
        ],
    );
    std::thread::sleep(Duration::from_millis(2100));
    let out = run(
        "mosquitto_sub",
        &b,
        &["-V", "mqttv5", "-t", "mc/exp", "-C", "1", "-W", "5", "-F", "%E"],
    );
    let left: u32 = out.trim().parse().unwrap_or_else(|_| panic!("expiry: {out:?}"));
    // [MQTT-3.3.2-6] the interval sent is the original less the time held.
    assert!((1..=58).contains(&left), "remaining expiry {left}");
}

#[test]
fn large_payload_from_file() {
    if skip_without_clients() {
        return;
    }
    let b = Broker::start();
    let payload: Vec<u8> = (0..200 * 1024u32).map(|i| (i * 7 % 251) as u8).collect();
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("payload.bin");
    std::fs::write(&file, &payload).unwrap();
    let hex: String = payload.iter().map(|b| format!("{b:02x}")).collect();
    for v in VERSIONS {
        let topic = format!("mc/big/{v}");
        let mut raw = RawClient::v311(b.addr(), &unique_id("raw"));
        raw.subscribe(&topic, 1);
        let mut sub = Sub::subscribed(&b, &["-V", v, "-q", "1", "-t", &topic, "-F", "MSG|%l|%x"]);
        mosquitto_pub(&b, &["-V", v, "-q", "1", "-t", &topic, "-f", file.to_str().unwrap()]);
        let got = sub.messages(1).remove(0);
        let (len, got_hex) = got.split_once('|').expect("len|hex");
        assert_eq!(len, payload.len().to_string(), "{v}");
        assert!(got_hex == hex, "{v}: payload differs");
        let m = raw.expect_publish();
        assert!(m.payload == payload, "{v}: raw subscriber payload differs");
    }
}

#[test]
fn mqtt_v31_client() {
    if skip_without_clients() {
        return;
    }
    let b = Broker::start();
    let mut sub = Sub::subscribed(&b, &["-V", "mqttv31", "-q", "1", "-t", "mc/v31", "-F", "MSG|%q|%p"]);
    mosquitto_pub(&b, &["-V", "mqttv31", "-q", "1", "-t", "mc/v31", "-m", "old"]);
    assert_eq!(sub.messages(1), ["1|old"]);
}

#[test]
fn request_response_with_mosquitto_rr() {
    if skip_without_clients() {
        return;
    }
    let b = Broker::start();
    let mut responder = RawClient::v5(b.addr(), &unique_id("responder"));
    responder.subscribe("mc/req", 1);
    let port = b.port().to_string();
    let rr = std::thread::spawn(move || {
        Command::new("mosquitto_rr")
            .args(["-h", "127.0.0.1", "-p", &port, "-V", "mqttv5", "-q", "1"])
            .args(["-t", "mc/req", "-e", "mc/resp", "-m", "ping", "-W", "5"])
            .stdin(Stdio::null())
            .output()
            .expect("run mosquitto_rr")
    });
    let req = responder.expect_publish();
    responder.send(&ack(PUBACK, req.pid));
    assert_eq!(req.payload, b"ping");
    let Some(Prop::Str(resp_topic)) = prop(&req.props, RESPONSE_TOPIC).cloned() else {
        panic!("[MQTT-3.3.2-15] Response Topic forwarded: {:?}", req.props);
    };
    let mut props = Props::new();
    if let Some(Prop::Bin(corr)) = prop(&req.props, CORRELATION_DATA) {
        props = props.bin(CORRELATION_DATA, corr);
    }
    responder.send(&publish(&resp_topic, b"pong", 1, false, 5, Some(&props)));
    let out = rr.join().expect("mosquitto_rr thread");
    assert!(
        out.status.success(),
        "mosquitto_rr: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim_end(), "pong");
}
