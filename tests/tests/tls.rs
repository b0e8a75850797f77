//! `mqtts` listeners: certificates made in the test with rcgen, real
//! clients (`mosquitto_pub` / `mosquitto_sub` with `--cafile`), and what a
//! TLS port does with plaintext, a wrong CA and a handshake that stalls.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, KeyPair};
use tern_blackbox::broker::tern_bin;
use tern_blackbox::*;

struct Pki {
    dir: tempfile::TempDir,
}

impl Pki {
    /// A CA and a server certificate for localhost signed by it, as PEM
    /// files: ca.pem, server.pem, server.key; and an unrelated CA.
    fn new() -> Pki {
        let dir = tempfile::tempdir().expect("tempdir");
        let ca_key = KeyPair::generate().expect("key");
        let mut ca = CertificateParams::new(Vec::<String>::new()).expect("params");
        ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca.distinguished_name.push(DnType::CommonName, "tern test CA");
        let ca_cert = ca.self_signed(&ca_key).expect("CA");
        let server_key = KeyPair::generate().expect("key");
        let mut server = CertificateParams::new(vec!["localhost".to_owned()]).expect("params");
        server.distinguished_name.push(DnType::CommonName, "localhost");
        let server_cert = server.signed_by(&server_key, &ca_cert, &ca_key).expect("server cert");
        let other_key = KeyPair::generate().expect("key");
        let mut other = CertificateParams::new(Vec::<String>::new()).expect("params");
        other.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        let other_ca = other.self_signed(&other_key).expect("other CA");
        // Client certificates: one from our CA, one expired, one from
        // another CA.
        let client = |name: &str, cn: &str, signer: &rcgen::Certificate, signer_key: &KeyPair, expired: bool| {
            let key = KeyPair::generate().expect("key");
            let mut p = CertificateParams::new(Vec::<String>::new()).expect("params");
            p.distinguished_name.push(DnType::CommonName, cn);
            if expired {
                p.not_before = rcgen::date_time_ymd(2020, 1, 1);
                p.not_after = rcgen::date_time_ymd(2021, 1, 1);
            }
            let cert = p.signed_by(&key, signer, signer_key).expect("client cert");
            std::fs::write(dir.path().join(format!("{name}.pem")), cert.pem()).expect("write");
            std::fs::write(dir.path().join(format!("{name}.key")), key.serialize_pem()).expect("write");
        };
        client("device1", "device-1", &ca_cert, &ca_key, false);
        client("expired", "device-1", &ca_cert, &ca_key, true);
        client("stranger", "device-1", &other_ca, &other_key, false);
        std::fs::write(dir.path().join("ca.pem"), ca_cert.pem()).expect("write");
        std::fs::write(dir.path().join("other-ca.pem"), other_ca.pem()).expect("write");
        std::fs::write(dir.path().join("server.pem"), server_cert.pem()).expect("write");
        std::fs::write(dir.path().join("server.key"), server_key.serialize_pem()).expect("write");
        Pki { dir }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn broker(&self, extra: &str) -> Broker {
        self.broker_with(extra, "")
    }

    /// `listener` lines are added to the TLS listener's table.
    fn broker_with(&self, extra: &str, listener: &str) -> Broker {
        Broker::start_with(&format!(
            "{extra}\n[[listener]]\nname = \"tls\"\nbind = \"127.0.0.1:0\"\nprotocol = \"mqtts\"\n\
             allow_anonymous = true\ncert_file = {:?}\nkey_file = {:?}\n{listener}\n",
            self.path("server.pem"),
            self.path("server.key"),
        ))
    }

    /// mosquitto_pub with the client certificate `name` (or none).
    fn publish_as(&self, b: &Broker, name: Option<&str>, topic: &str) -> bool {
        let mut cmd = mosquitto(
            "mosquitto_pub",
            b,
            &self.path("ca.pem"),
            &["-t", topic, "-m", "x", "-q", "1"],
        );
        if let Some(n) = name {
            cmd.arg("--cert").arg(self.path(&format!("{n}.pem")));
            cmd.arg("--key").arg(self.path(&format!("{n}.key")));
        }
        run_to_end(&mut cmd, TIMEOUT).0.success()
    }
}

fn mosquitto(program: &str, b: &Broker, ca: &Path, args: &[&str]) -> Command {
    let mut cmd = Command::new(program);
    cmd.args(["-h", "localhost", "-p", &b.port().to_string(), "--cafile"])
        .arg(ca)
        .args(args);
    cmd
}

fn have_clients() -> bool {
    let ok = Command::new("mosquitto_pub").arg("--help").output().is_ok();
    if !ok {
        eprintln!("SKIP: mosquitto-clients not installed");
    }
    ok
}

#[test]
fn mosquitto_clients_talk_to_tern_over_tls() {
    if skip_unless_tern("mqtts listener") || !have_clients() {
        return;
    }
    let pki = Pki::new();
    let b = pki.broker("");
    let big = pki.path("big");
    let payload: Vec<u8> = (0..200_000u32).map(|i| (i % 251) as u8).collect();
    std::fs::write(&big, &payload).expect("write");
    let out = pki.path("got");
    let mut sub = mosquitto(
        "mosquitto_sub",
        &b,
        &pki.path("ca.pem"),
        &["-t", "tls/#", "-C", "2", "-W", "10", "-V", "mqttv5"],
    )
    .stdout(std::fs::File::create(&out).expect("out"))
    .spawn()
    .expect("mosquitto_sub");
    std::thread::sleep(Duration::from_millis(500));
    for args in [
        vec!["-t", "tls/small", "-m", "hello", "-q", "1"],
        vec!["-t", "tls/big", "-q", "1", "-f", big.to_str().expect("utf-8 path")],
    ] {
        let (status, o, e) = run_to_end(&mut mosquitto("mosquitto_pub", &b, &pki.path("ca.pem"), &args), TIMEOUT);
        assert!(status.success(), "mosquitto_pub {args:?}: {o}{e}");
    }
    assert!(sub.wait().expect("wait").success(), "mosquitto_sub got both");
    let got = std::fs::read(&out).expect("read");
    assert!(got.starts_with(b"hello\n"), "{:?}", &got[..got.len().min(20)]);
    assert_eq!(
        &got[6..6 + payload.len()],
        payload.as_slice(),
        "200 kB payload intact through TLS"
    );
}

#[test]
fn a_client_that_does_not_trust_the_certificate_cannot_connect() {
    if skip_unless_tern("mqtts listener") || !have_clients() {
        return;
    }
    let pki = Pki::new();
    let b = pki.broker("");
    let (status, _, _) = run_to_end(
        &mut mosquitto("mosquitto_pub", &b, &pki.path("other-ca.pem"), &["-t", "t", "-m", "x"]),
        TIMEOUT,
    );
    assert!(
        !status.success(),
        "a certificate from an unknown CA must be refused by the client"
    );
    // And the broker goes on serving the ones that trust it.
    let (status, o, e) = run_to_end(
        &mut mosquitto("mosquitto_pub", &b, &pki.path("ca.pem"), &["-t", "t", "-m", "x"]),
        TIMEOUT,
    );
    assert!(status.success(), "{o}{e}");
}

#[test]
fn plaintext_mqtt_on_a_tls_port_is_closed() {
    if skip_unless_tern("mqtts listener") {
        return;
    }
    let pki = Pki::new();
    let b = pki.broker("");
    let mut s = TcpStream::connect(b.addr()).expect("connect");
    s.set_read_timeout(Some(TIMEOUT)).expect("timeout");
    s.write_all(&Connect::v311("plain").bytes()).expect("write");
    let mut buf = [0u8; 64];
    let n = s.read(&mut buf).unwrap_or(0);
    // A TLS alert at most, never a CONNACK (0x20).
    assert!(n == 0 || buf[0] != 0x20, "got {:02x?}", &buf[..n]);
    if n > 0 {
        assert_eq!(s.read(&mut buf).unwrap_or(0), 0, "closed after the alert");
    }
}

#[test]
fn a_tls_handshake_that_stalls_is_closed_by_the_handshake_timeout() {
    if skip_unless_tern("mqtts listener") {
        return;
    }
    let pki = Pki::new();
    let b = pki.broker("[limits]\nhandshake_timeout = \"1s\"\n");
    let start = Instant::now();
    let mut stalled: Vec<TcpStream> = (0..20)
        .map(|_| TcpStream::connect(b.addr()).expect("connect"))
        .collect();
    // Half a ClientHello on one of them.
    stalled[0]
        .write_all(&[0x16, 0x03, 0x01, 0x02, 0x00, 0x01])
        .expect("write");
    for s in &mut stalled {
        s.set_read_timeout(Some(Duration::from_secs(5))).expect("timeout");
        let mut buf = [0u8; 16];
        assert!(matches!(s.read(&mut buf), Ok(0) | Err(_)), "closed");
    }
    let took = start.elapsed();
    assert!(
        took >= Duration::from_millis(900) && took < Duration::from_secs(5),
        "{took:?}"
    );
}

#[test]
fn a_bad_certificate_file_stops_startup_naming_the_listener_and_file() {
    if skip_unless_tern("mqtts listener") {
        return;
    }
    let pki = Pki::new();
    std::fs::write(pki.path("broken.pem"), "not a certificate\n").expect("write");
    let cfg = pki.path("tern.toml");
    std::fs::write(
        &cfg,
        "[[listener]]\nname = \"tls\"\nbind = \"127.0.0.1:0\"\nprotocol = \"mqtts\"\n\
         cert_file = \"broken.pem\"\nkey_file = \"server.key\"\n",
    )
    .expect("cfg");
    let (status, out, err) = run_to_end(
        Command::new(tern_bin())
            .arg("--config")
            .arg(&cfg)
            .env_remove("RUST_BACKTRACE"),
        TIMEOUT,
    );
    assert!(!status.success(), "{out}{err}");
    assert!(err.contains("listener tls"), "{err}");
    assert!(err.contains("broken.pem"), "{err}");
}

#[test]
fn require_certificate_admits_only_valid_client_certificates() {
    if skip_unless_tern("mutual TLS") || !have_clients() {
        return;
    }
    let pki = Pki::new();
    let b = pki.broker_with(
        "",
        &format!("ca_file = {:?}\nrequire_certificate = true", pki.path("ca.pem")),
    );
    assert!(pki.publish_as(&b, Some("device1"), "m/t"), "a certificate from our CA");
    assert!(!pki.publish_as(&b, None, "m/t"), "no certificate");
    assert!(
        !pki.publish_as(&b, Some("stranger"), "m/t"),
        "a certificate from another CA"
    );
    assert!(!pki.publish_as(&b, Some("expired"), "m/t"), "an expired certificate");
    assert!(pki.publish_as(&b, Some("device1"), "m/t"), "still serving");
}

#[test]
fn the_certificate_cn_is_the_user_name_the_acl_sees() {
    if skip_unless_tern("use_identity_as_username") || !have_clients() {
        return;
    }
    let pki = Pki::new();
    std::fs::write(pki.path("acl"), "user device-1\ntopic readwrite dev/1/#\n").expect("acl");
    let b = pki.broker_with(
        &format!("[auth]\nacl_file = {:?}\n", pki.path("acl")),
        &format!(
            "ca_file = {:?}\nrequire_certificate = true\nuse_identity_as_username = true\nauth = [\"acl_file\"]",
            pki.path("ca.pem")
        ),
    );
    let out = pki.path("got");
    let mut sub = mosquitto(
        "mosquitto_sub",
        &b,
        &pki.path("ca.pem"),
        &["-t", "#", "-C", "1", "-W", "10", "-v"],
    )
    .arg("--cert")
    .arg(pki.path("device1.pem"))
    .arg("--key")
    .arg(pki.path("device1.key"))
    .stdout(std::fs::File::create(&out).expect("out"))
    .spawn()
    .expect("mosquitto_sub");
    std::thread::sleep(Duration::from_millis(500));
    // CN device-1 may write dev/1/#, not dev/2/#; the first is what arrives.
    pki.publish_as(&b, Some("device1"), "dev/2/x");
    assert!(pki.publish_as(&b, Some("device1"), "dev/1/x"));
    assert!(sub.wait().expect("wait").success());
    assert_eq!(std::fs::read_to_string(&out).expect("read"), "dev/1/x x\n");
}

#[test]
fn sighup_reloads_the_certificate_without_dropping_connections() {
    if skip_unless_tern("certificate reload") || !have_clients() {
        return;
    }
    let pki = Pki::new();
    let b = pki.broker("");
    // A client connected before the reload stays connected.
    let sub = mosquitto(
        "mosquitto_sub",
        &b,
        &pki.path("ca.pem"),
        &["-t", "r/#", "-C", "1", "-W", "15"],
    )
    .stdout(std::process::Stdio::piped())
    .spawn()
    .expect("mosquitto_sub");
    std::thread::sleep(Duration::from_millis(500));
    // The new certificate is signed by another CA.
    let next = Pki::new();
    std::fs::copy(next.path("server.pem"), pki.path("server.pem")).expect("copy");
    std::fs::copy(next.path("server.key"), pki.path("server.key")).expect("copy");
    b.send_signal(libc::SIGHUP);
    assert!(b.wait_log("TLS certificate reloaded", TIMEOUT), "{}", b.stderr_log());
    let publish = |ca: &Path| {
        run_to_end(
            &mut mosquitto("mosquitto_pub", &b, ca, &["-t", "r/x", "-m", "after", "-q", "1"]),
            TIMEOUT,
        )
        .0
        .success()
    };
    assert!(
        !publish(&pki.path("ca.pem")),
        "the old CA no longer verifies new handshakes"
    );
    assert!(publish(&next.path("ca.pem")), "the new certificate is served");
    let out = sub.wait_with_output().expect("wait");
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "after\n",
        "the old connection survived"
    );
}

#[test]
fn a_thousand_stalled_tls_sockets_are_closed_and_memory_stays_bounded() {
    if skip_unless_tern("mqtts listener") {
        return;
    }
    let pki = Pki::new();
    let b = pki.broker("[limits]\nhandshake_timeout = \"1s\"\n");
    let wave = || {
        let mut socks = Vec::new();
        for i in 0..1000 {
            let mut s = TcpStream::connect(b.addr()).expect("connect");
            if i % 2 == 0 {
                // Half of them start a TLS handshake and stall.
                let _ = s.write_all(&[0x16, 0x03, 0x01, 0x02, 0x00, 0x01, 0x00, 0x01, 0xfc, 0x03, 0x03]);
            }
            socks.push(s);
        }
        let during = b.rss_kib();
        for s in &mut socks {
            s.set_read_timeout(Some(Duration::from_secs(10))).expect("timeout");
            let mut buf = [0u8; 16];
            assert!(
                matches!(s.read(&mut buf), Ok(0) | Err(_)),
                "every stalled socket is closed"
            );
        }
        drop(socks);
        std::thread::sleep(Duration::from_millis(300));
        (during, b.rss_kib())
    };
    let before = b.rss_kib();
    let waves: Vec<(u64, u64)> = (0..3).map(|_| wave()).collect();
    eprintln!("RSS KiB: before {before}; (with 1,000 stalled, after they closed) per wave: {waves:?}");
    // glibc keeps what it freed for reuse, so RSS does not fall back to the
    // start (an allocation probe showed the live heap back at its idle size
    // after every wave); it must stay bounded however many waves come.
    for (during, after) in waves {
        assert!(
            during < before + 64 * 1024,
            "1,000 half-open TLS sockets: {before} -> {during} KiB"
        );
        assert!(after < before + 64 * 1024, "after they closed: {before} -> {after} KiB");
    }
}
