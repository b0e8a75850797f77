//! `ws` and `wss` listeners (MQTT 5.0 §6): the upgrade on the listener's
//! path with the `mqtt` subprotocol, MQTT packets in binary frames (split
//! across frames or several in one), with a real WebSocket client
//! (tungstenite), over TLS too.

use std::net::TcpStream;
use std::sync::Arc;
use std::time::Duration;

use tern_blackbox::broker::workspace_dir;
use tern_blackbox::*;
use tungstenite::client::IntoClientRequest;
use tungstenite::{Message, WebSocket};

fn ws_broker(extra_listener: &str) -> Broker {
    Broker::start_with(&format!(
        "[[listener]]\nname = \"ws\"\nbind = \"127.0.0.1:0\"\nprotocol = \"ws\"\nallow_anonymous = true\n{extra_listener}\n"
    ))
}

fn request(url: &str) -> tungstenite::handshake::client::Request {
    let mut req = url.into_client_request().expect("request");
    req.headers_mut()
        .insert("sec-websocket-protocol", "mqtt".parse().expect("header"));
    req
}

fn open<S: std::io::Read + std::io::Write>(stream: S, url: &str) -> WebSocket<S> {
    let (ws, resp) = tungstenite::client(request(url), stream).expect("upgrade");
    assert_eq!(
        resp.headers()
            .get("sec-websocket-protocol")
            .map(|v| v.to_str().unwrap_or("")),
        Some("mqtt"),
        "[MQTT-6.0.0-4] the server selects the mqtt subprotocol"
    );
    ws
}

/// The next binary frame's bytes.
fn read_bin<S: std::io::Read + std::io::Write>(ws: &mut WebSocket<S>) -> Vec<u8> {
    loop {
        match ws.read().expect("read") {
            Message::Binary(b) => return b.to_vec(),
            Message::Ping(_) | Message::Pong(_) => {}
            other => panic!("expected a binary frame, got {other:?}"),
        }
    }
}

fn tcp(b: &Broker) -> TcpStream {
    let s = TcpStream::connect(b.addr()).expect("connect");
    s.set_read_timeout(Some(TIMEOUT)).expect("timeout");
    s
}

#[test]
fn mqtt_over_websocket_round_trip_with_packets_split_and_joined() {
    if skip_unless_tern("ws listener") {
        return;
    }
    let b = ws_broker("");
    let url = format!("ws://{}/mqtt", b.addr());
    let mut sub = open(tcp(&b), &url);
    // CONNECT split across two frames [MQTT-6.0.0-2].
    let connect = Connect::v5(&unique_id("wsub")).bytes();
    let (a, rest) = connect.split_at(5);
    sub.send(Message::Binary(a.to_vec().into())).expect("send");
    sub.send(Message::Binary(rest.to_vec().into())).expect("send");
    assert_eq!(read_bin(&mut sub)[0], 0x20, "CONNACK");
    sub.send(Message::Binary(
        subscribe(1, &[("ws/#", 1)], Some(&Props::new())).into(),
    ))
    .expect("send");
    assert_eq!(read_bin(&mut sub)[0], 0x90, "SUBACK");

    let mut publisher = open(tcp(&b), &url);
    // CONNECT and two PUBLISHes in one frame.
    let mut joined = Connect::v311(&unique_id("wpub")).bytes();
    joined.extend(publish311("ws/a", b"one", 0, false, 0));
    joined.extend(publish311("ws/b", &vec![7u8; 100_000], 0, false, 0));
    publisher.send(Message::Binary(joined.into())).expect("send");
    assert_eq!(read_bin(&mut publisher)[0], 0x20, "CONNACK");

    // The subscriber gets both; the large one may come in several frames.
    let mut got = Vec::new();
    while got.len() < 2 + 2 + 4 + 3 + 2 + 2 + 4 + 3 + 100_000 {
        got.extend(read_bin(&mut sub));
    }
    assert_eq!(got[0] >> 4, 3, "PUBLISH");
    assert!(got.windows(3).any(|w| w == b"one"));
    assert!(got.ends_with(&[7u8; 1000]));
}

#[test]
fn a_wrong_path_or_a_text_frame_is_refused() {
    if skip_unless_tern("ws listener") {
        return;
    }
    let b = ws_broker("path = \"/mqtt\"");
    let err = tungstenite::client(request(&format!("ws://{}/other", b.addr())), tcp(&b)).expect_err("404");
    assert!(err.to_string().contains("404"), "{err}");

    let mut ws = open(tcp(&b), &format!("ws://{}/mqtt", b.addr()));
    ws.send(Message::Binary(Connect::v311(&unique_id("t")).bytes().into()))
        .expect("send");
    assert_eq!(read_bin(&mut ws)[0], 0x20);
    // Text frames are not MQTT [MQTT-6.0.0-1]: the connection is closed.
    ws.send(Message::Text("hello".into())).expect("send");
    let closed = loop {
        match ws.read() {
            Ok(Message::Close(_)) | Err(_) => break true,
            Ok(_) => {}
        }
    };
    assert!(closed);
    // The broker goes on.
    let mut again = open(tcp(&b), &format!("ws://{}/mqtt", b.addr()));
    again
        .send(Message::Binary(Connect::v311(&unique_id("u")).bytes().into()))
        .expect("send");
    assert_eq!(read_bin(&mut again)[0], 0x20);
}

/// A broker with one `wss` listener serving `cert` (written into `dir`).
fn wss_broker(dir: &std::path::Path, cert: &rcgen::Certificate, key: &rcgen::KeyPair) -> Broker {
    std::fs::write(dir.join("c.pem"), cert.pem()).expect("write");
    std::fs::write(dir.join("c.key"), key.serialize_pem()).expect("write");
    Broker::start_with(&format!(
        "[[listener]]\nname = \"wss\"\nbind = \"127.0.0.1:0\"\nprotocol = \"wss\"\nallow_anonymous = true\n\
         cert_file = {:?}\nkey_file = {:?}\n",
        dir.join("c.pem"),
        dir.join("c.key")
    ))
}

/// The folder of the MQTT.js scripts, or `None` (with a SKIP line) when the
/// package is not installed (`tests/run` installs it where Node is).
fn mqtt_js() -> Option<std::path::PathBuf> {
    let js = workspace_dir().join("tests/js");
    if js.join("node_modules/mqtt").exists() {
        Some(js)
    } else {
        eprintln!("SKIP: MQTT.js not installed (cd tests/js && npm ci)");
        None
    }
}

#[test]
fn mqtt_over_secure_websocket() {
    if skip_unless_tern("wss listener") {
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let key = rcgen::KeyPair::generate().expect("key");
    let cert = rcgen::CertificateParams::new(vec!["localhost".to_owned()])
        .expect("params")
        .self_signed(&key)
        .expect("cert");
    let b = wss_broker(dir.path(), &cert, &key);
    let mut roots = rustls::RootCertStore::empty();
    roots.add(cert.der().clone()).expect("root");
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("versions")
        .with_root_certificates(roots)
        .with_no_client_auth();
    let conn = rustls::ClientConnection::new(Arc::new(config), "localhost".try_into().expect("name")).expect("tls");
    let stream = rustls::StreamOwned::new(conn, tcp(&b));
    let mut ws = open(stream, &format!("wss://localhost:{}/mqtt", b.port()));
    ws.send(Message::Binary(Connect::v5(&unique_id("wss")).bytes().into()))
        .expect("send");
    assert_eq!(read_bin(&mut ws)[0], 0x20, "CONNACK over TLS + WebSocket");
    ws.send(Message::Binary(pingreq().into())).expect("send");
    assert_eq!(read_bin(&mut ws), [0xD0, 0x00], "PINGRESP");
    std::thread::sleep(Duration::from_millis(10));
}

/// MQTT.js, the client browser apps use, over WebSocket (skipped without
/// Node or the package: `tests/run` installs it).
#[test]
fn mqtt_js_over_websocket() {
    if skip_unless_tern("ws listener") {
        return;
    }
    let Some(js) = mqtt_js() else { return };
    let b = ws_broker("");
    let (status, out, err) = run_to_end(
        std::process::Command::new("node")
            .arg(js.join("ws_roundtrip.js"))
            .arg(format!("ws://{}/mqtt", b.addr())),
        Duration::from_secs(15),
    );
    assert!(
        status.success() && out.trim() == "ok",
        "MQTT.js: {status}\n{out}\n{err}"
    );
}

/// MQTT.js over `wss`, verifying the broker's certificate against a CA
/// made here (passed as MQTT.js's `ca` option, so Node's own trust store
/// plays no part): the TLS + WebSocket path a browser-style app takes.
/// Skipped like the `ws` one without Node or the package.
#[test]
fn mqtt_js_over_secure_websocket() {
    if skip_unless_tern("wss listener") {
        return;
    }
    let Some(js) = mqtt_js() else { return };
    let dir = tempfile::tempdir().expect("tempdir");
    let ca_key = rcgen::KeyPair::generate().expect("key");
    let mut ca = rcgen::CertificateParams::new(Vec::<String>::new()).expect("params");
    ca.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    ca.distinguished_name.push(rcgen::DnType::CommonName, "tern test CA");
    let ca_cert = ca.self_signed(&ca_key).expect("CA");
    let key = rcgen::KeyPair::generate().expect("key");
    let mut server = rcgen::CertificateParams::new(vec!["localhost".to_owned()]).expect("params");
    server.distinguished_name.push(rcgen::DnType::CommonName, "localhost");
    let cert = server.signed_by(&key, &ca_cert, &ca_key).expect("server cert");
    let other_key = rcgen::KeyPair::generate().expect("key");
    let mut other = rcgen::CertificateParams::new(Vec::<String>::new()).expect("params");
    other.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    let other_ca = other.self_signed(&other_key).expect("other CA");
    std::fs::write(dir.path().join("ca.pem"), ca_cert.pem()).expect("write");
    std::fs::write(dir.path().join("other-ca.pem"), other_ca.pem()).expect("write");
    let b = wss_broker(dir.path(), &cert, &key);
    let node = |ca: &str| {
        run_to_end(
            std::process::Command::new("node")
                .arg(js.join("ws_roundtrip.js"))
                .arg(format!("wss://localhost:{}/mqtt", b.port()))
                .arg(dir.path().join(ca)),
            Duration::from_secs(15),
        )
    };
    let (status, out, err) = node("ca.pem");
    assert!(
        status.success() && out.trim() == "ok",
        "MQTT.js over wss: {status}\n{out}\n{err}"
    );
    // The CA really is checked: trusting another one, MQTT.js refuses.
    let (status, out, err) = node("other-ca.pem");
    assert!(
        !status.success() && out.trim() != "ok" && err.contains("certificate"),
        "MQTT.js must refuse a certificate from an unknown CA: {status}\n{out}\n{err}"
    );
}
