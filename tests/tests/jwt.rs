//! `[auth.jwt]`: JSON Web Tokens as the CONNECT password, verified with an
//! HMAC secret or a JWKS picked by `kid`; `acl` claims as permissions;
//! disconnection with 0x87 when the token expires.

use std::path::Path;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use jsonwebtoken::{Algorithm, EncodingKey, Header, encode};
use serde_json::json;
use tern_blackbox::*;

const SECRET: &[u8] = b"an HMAC secret of at least 32 bytes, for tests";
const OTHER: &[u8] = b"another HMAC secret of at least 32 bytes, forged";
const NOT_AUTHORIZED: u8 = 0x87;
const BAD_CREDENTIALS: u8 = 0x86;

fn now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).expect("clock").as_secs()
}

fn token(secret: &[u8], kid: Option<&str>, claims: serde_json::Value) -> String {
    let mut header = Header::new(Algorithm::HS256);
    header.kid = kid.map(str::to_owned);
    encode(&header, &claims, &EncodingKey::from_secret(secret)).expect("encode")
}

fn b64url(b: &[u8]) -> String {
    // JWKS "k" is base64url without padding; only the test needs it.
    const T: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut out = String::new();
    for chunk in b.chunks(3) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |n, (i, &x)| n | u32::from(x) << (16 - 8 * i));
        for i in 0..=chunk.len() {
            out.push(T[(n >> (18 - 6 * i) & 63) as usize] as char);
        }
    }
    out
}

fn broker(dir: &Path, jwt: &str) -> Broker {
    Broker::start_with(&format!(
        "[auth.jwt]\n{jwt}\n\n[[listener]]\nname = \"default\"\nbind = \"127.0.0.1:0\"\n\
         allow_anonymous = false\nauth = [\"jwt\"]\n# {}\n",
        dir.display()
    ))
}

fn hmac_broker(dir: &Path) -> Broker {
    let secret = dir.join("secret");
    std::fs::write(&secret, SECRET).expect("secret");
    broker(
        dir,
        &format!("hmac_secret_file = {secret:?}\naudience = \"tern\"\nissuer = \"tests\""),
    )
}

fn connack(b: &Broker, id: &str, password: &str) -> (RawClient, u8) {
    let (c, ack) = RawClient::handshake(b.addr(), &Connect::v5(id).user("device", Some(password.as_bytes())));
    (c, ack.code)
}

fn claims(exp: u64) -> serde_json::Value {
    json!({"sub": "device", "iss": "tests", "aud": "tern", "exp": exp})
}

#[test]
fn valid_expired_forged_and_wrong_audience_tokens() {
    if skip_unless_tern("[auth.jwt]") {
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let b = hmac_broker(dir.path());
    assert_eq!(connack(&b, "ok", &token(SECRET, None, claims(now() + 600))).1, 0);
    assert_eq!(
        connack(&b, "expired", &token(SECRET, None, claims(now() - 10))).1,
        BAD_CREDENTIALS
    );
    assert_eq!(
        connack(&b, "forged", &token(OTHER, None, claims(now() + 600))).1,
        BAD_CREDENTIALS
    );
    let mut wrong_aud = claims(now() + 600);
    wrong_aud["aud"] = json!("someone-else");
    assert_eq!(connack(&b, "aud", &token(SECRET, None, wrong_aud)).1, BAD_CREDENTIALS);
    let mut wrong_iss = claims(now() + 600);
    wrong_iss["iss"] = json!("mallory");
    assert_eq!(connack(&b, "iss", &token(SECRET, None, wrong_iss)).1, BAD_CREDENTIALS);
    let mut no_exp = claims(0);
    no_exp.as_object_mut().expect("object").remove("exp");
    assert_eq!(connack(&b, "noexp", &token(SECRET, None, no_exp)).1, BAD_CREDENTIALS);
    // Not a token at all: nobody vouches for the user name.
    assert_eq!(connack(&b, "plain", "hunter2").1, BAD_CREDENTIALS);
    // No credentials on a listener without anonymous access.
    let (_, ack) = RawClient::handshake(b.addr(), &Connect::v5("anon"));
    assert_eq!(ack.code, NOT_AUTHORIZED);
}

#[test]
fn jwks_keys_are_picked_by_kid() {
    if skip_unless_tern("[auth.jwt]") {
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let jwks = dir.path().join("jwks.json");
    let set = json!({"keys": [
        {"kty": "oct", "kid": "k1", "alg": "HS256", "k": b64url(SECRET)},
        {"kty": "oct", "kid": "k2", "alg": "HS256", "k": b64url(OTHER)},
    ]});
    std::fs::write(&jwks, set.to_string()).expect("jwks");
    let b = broker(dir.path(), &format!("jwks_file = {jwks:?}\nalgorithms = [\"HS256\"]"));
    let c = json!({"exp": now() + 600});
    assert_eq!(connack(&b, "k1", &token(SECRET, Some("k1"), c.clone())).1, 0);
    assert_eq!(connack(&b, "k2", &token(OTHER, Some("k2"), c.clone())).1, 0);
    assert_eq!(
        connack(&b, "swapped", &token(SECRET, Some("k2"), c.clone())).1,
        BAD_CREDENTIALS
    );
    assert_eq!(connack(&b, "unknown", &token(SECRET, Some("k9"), c)).1, BAD_CREDENTIALS);
}

#[test]
fn acl_claims_are_the_clients_permissions() {
    if skip_unless_tern("[auth.jwt]") {
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let b = hmac_broker(dir.path());
    let mut c = claims(now() + 600);
    c["acl"] = json!({"pub": ["devices/%c/out"], "sub": ["devices/%c/in", "broadcast/#"]});
    let (mut d, code) = connack(&b, "d1", &token(SECRET, None, c.clone()));
    assert_eq!(code, 0);
    d.subscribe("#", 1);
    let (mut other, code) = connack(&b, "d2", &token(SECRET, None, c));
    assert_eq!(code, 0);

    let ack = |cl: &mut RawClient, topic: &str| {
        cl.send(&publish5(topic, b"x", 1, false, 3));
        cl.read_until_keep(PUBACK).ack().1
    };
    assert!(ack(&mut d, "devices/d1/out") < 0x80);
    assert_eq!(ack(&mut d, "devices/d2/out"), NOT_AUTHORIZED);
    assert_eq!(
        ack(&mut other, "devices/d1/in"),
        NOT_AUTHORIZED,
        "d2 may only write devices/d2/out"
    );
    // d1 reads its own inbox and broadcasts, nothing else.
    let mut sender = {
        let mut all = claims(now() + 600);
        all["acl"] = json!({"pub": ["#"], "sub": []});
        connack(&b, "admin", &token(SECRET, None, all)).0
    };
    for t in ["devices/d1/in", "devices/d2/in", "broadcast/all", "devices/d1/zz"] {
        assert!(ack(&mut sender, t) < 0x80);
    }
    sender.send(&publish5("broadcast/end", b"end", 0, false, 0));
    let got: Vec<String> = d
        .collect_until_topic("broadcast/end")
        .into_iter()
        .map(|m| m.topic)
        .collect();
    assert_eq!(got, ["devices/d1/in", "broadcast/all"]);
}

#[test]
fn the_connection_closes_with_0x87_when_the_token_expires() {
    if skip_unless_tern("[auth.jwt]") {
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let b = hmac_broker(dir.path());
    let (mut c, code) = connack(&b, "short", &token(SECRET, None, claims(now() + 2)));
    assert_eq!(code, 0);
    let (mut long, code) = connack(&b, "long", &token(SECRET, None, claims(now() + 600)));
    assert_eq!(code, 0);
    match c.try_read_packet(Duration::from_secs(6)) {
        Ok(p) if p.kind() == DISCONNECT => assert_eq!(p.disconnect().0, NOT_AUTHORIZED),
        other => panic!("expected DISCONNECT 0x87 at expiry, got {other:?}"),
    }
    // The other client is untouched.
    long.sync();
}
