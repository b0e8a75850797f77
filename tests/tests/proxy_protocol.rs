//! `proxy_protocol = true`: connections from a load balancer start with a
//! PROXY v1 or v2 header naming the real client; the broker logs (and will
//! authorize) by that address, and refuses connections without one.

use std::time::Duration;

use tern_blackbox::*;

fn broker() -> Broker {
    Broker::start_with(
        "[[listener]]\nname = \"lb\"\nbind = \"127.0.0.1:0\"\nallow_anonymous = true\nproxy_protocol = true\n",
    )
}

fn v2_tcp4(src: [u8; 4], src_port: u16, local: bool) -> Vec<u8> {
    let mut h = b"\r\n\r\n\0\r\nQUIT\n".to_vec();
    h.push(if local { 0x20 } else { 0x21 });
    h.push(0x11);
    h.extend(12u16.to_be_bytes());
    h.extend(src);
    h.extend([192, 0, 2, 1]);
    h.extend(src_port.to_be_bytes());
    h.extend(1883u16.to_be_bytes());
    h
}

fn connects_after(b: &Broker, header: &[u8], id: &str) -> u8 {
    let mut c = RawClient::connect(b.addr());
    let mut bytes = header.to_vec();
    bytes.extend(Connect::v311(id).bytes());
    c.send(&bytes);
    c.read_packet().connack(false).code
}

#[test]
fn v1_and_v2_headers_name_the_client() {
    if skip_unless_tern("proxy_protocol") {
        return;
    }
    let b = broker();
    assert_eq!(
        connects_after(&b, b"PROXY TCP4 203.0.113.7 192.0.2.1 4242 1883\r\n", "via-v1"),
        0
    );
    assert_eq!(
        connects_after(&b, &v2_tcp4([198, 51, 100, 9], 5151, false), "via-v2"),
        0
    );
    // A v2 LOCAL header (a health check) keeps the socket's own address.
    assert_eq!(connects_after(&b, &v2_tcp4([198, 51, 100, 10], 6161, true), "local"), 0);
    assert!(b.wait_log("peer=203.0.113.7:4242", TIMEOUT), "{}", b.stderr_log());
    assert!(b.wait_log("peer=198.51.100.9:5151", TIMEOUT), "{}", b.stderr_log());
    assert!(!b.stderr_log().contains("198.51.100.10"), "LOCAL names nobody");
}

#[test]
fn a_connection_without_a_header_is_closed() {
    if skip_unless_tern("proxy_protocol") {
        return;
    }
    let b = broker();
    let mut c = RawClient::connect(b.addr());
    c.send(&Connect::v311("direct").bytes());
    let seen = c.closed_within(TIMEOUT).expect("closed");
    assert!(
        seen.is_empty(),
        "no CONNACK for a connection that skipped the proxy: {seen:02x?}"
    );
    // A header that stalls half way is closed by the handshake timeout.
    let b = Broker::start_with(
        "[limits]\nhandshake_timeout = \"1s\"\n\n[[listener]]\nname = \"lb\"\nbind = \"127.0.0.1:0\"\n\
         allow_anonymous = true\nproxy_protocol = true\n",
    );
    let mut half = RawClient::connect(b.addr());
    half.send(b"PROXY TCP4 203.0.113.7 ");
    let start = std::time::Instant::now();
    half.closed_within(Duration::from_secs(5)).expect("closed");
    assert!(start.elapsed() >= Duration::from_millis(900));
}
