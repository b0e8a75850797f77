//! A blocking byte-level MQTT client for exact expectations.

use std::collections::VecDeque;
use std::io::{self, ErrorKind, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use crate::packets::{self, Connack, Connect, Packet, Publish};

/// Default bound on every wait.
pub const TIMEOUT: Duration = Duration::from_secs(5);

/// A raw TCP connection to the broker.
pub struct RawClient {
    pub stream: TcpStream,
    /// Whether packets are decoded as v5 by the convenience helpers.
    pub v5: bool,
    /// Packets read while waiting for something else (e.g. a PUBLISH that
    /// arrived before a SUBACK); [`RawClient::read_packet`] returns them first.
    pub pending: VecDeque<Packet>,
}

impl RawClient {
    /// Open a TCP connection (nothing is sent).
    pub fn connect(addr: impl Into<SocketAddr>) -> RawClient {
        let addr = addr.into();
        let stream = TcpStream::connect_timeout(&addr, TIMEOUT).expect("TCP connect");
        stream.set_nodelay(true).ok();
        RawClient {
            stream,
            v5: false,
            pending: VecDeque::new(),
        }
    }

    /// TCP connect, send CONNECT, read CONNACK (any code).
    pub fn handshake(addr: impl Into<SocketAddr>, c: &Connect) -> (RawClient, Connack) {
        let mut rc = RawClient::connect(addr);
        rc.v5 = c.level == packets::V5;
        rc.send(&c.bytes());
        let p = rc.read_packet();
        let ack = p.connack(rc.v5);
        (rc, ack)
    }

    /// v3.1.1 clean session, CONNACK must be accepted.
    pub fn v311(addr: impl Into<SocketAddr>, client_id: &str) -> RawClient {
        let (c, ack) = RawClient::handshake(addr, &Connect::v311(client_id));
        assert_eq!(ack.code, 0, "CONNACK refused");
        c
    }

    /// v5 clean start, CONNACK must be success.
    pub fn v5(addr: impl Into<SocketAddr>, client_id: &str) -> RawClient {
        let (c, ack) = RawClient::handshake(addr, &Connect::v5(client_id));
        assert_eq!(ack.code, 0, "CONNACK refused");
        c
    }

    pub fn send(&mut self, b: &[u8]) {
        self.stream.write_all(b).expect("send");
    }

    /// Send, ignoring errors (the broker may already have closed).
    pub fn try_send(&mut self, b: &[u8]) -> io::Result<()> {
        self.stream.write_all(b)
    }

    fn read_exact_by(&mut self, buf: &mut [u8], deadline: Instant) -> io::Result<()> {
        let mut got = 0;
        while got < buf.len() {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(io::Error::new(ErrorKind::TimedOut, "timed out"));
            }
            self.stream.set_read_timeout(Some(left))?;
            match self.stream.read(&mut buf[got..]) {
                Ok(0) => return Err(io::Error::new(ErrorKind::UnexpectedEof, "EOF")),
                Ok(n) => got += n,
                Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                    return Err(io::Error::new(ErrorKind::TimedOut, "timed out"));
                }
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    /// Read one packet within `timeout`.
    pub fn try_read_packet(&mut self, timeout: Duration) -> io::Result<Packet> {
        if let Some(p) = self.pending.pop_front() {
            return Ok(p);
        }
        let deadline = Instant::now() + timeout;
        let mut first = [0u8; 1];
        self.read_exact_by(&mut first, deadline)?;
        let mut len: usize = 0;
        let mut mult = 1usize;
        for i in 0..4 {
            let mut b = [0u8; 1];
            self.read_exact_by(&mut b, deadline)?;
            len += usize::from(b[0] & 0x7F) * mult;
            mult *= 128;
            if b[0] & 0x80 == 0 {
                break;
            }
            if i == 3 {
                return Err(io::Error::new(ErrorKind::InvalidData, "remaining length > 4 bytes"));
            }
        }
        let mut body = vec![0u8; len];
        self.read_exact_by(&mut body, deadline)?;
        Ok(Packet { first: first[0], body })
    }

    /// Read one packet, panicking after [`TIMEOUT`].
    pub fn read_packet(&mut self) -> Packet {
        self.try_read_packet(TIMEOUT)
            .unwrap_or_else(|e| panic!("reading a packet: {e}"))
    }

    /// Read packets until one of type `kind` arrives (others are returned too).
    pub fn read_until(&mut self, kind: u8) -> (Packet, Vec<Packet>) {
        let mut skipped = Vec::new();
        loop {
            let p = self.read_packet();
            if p.kind() == kind {
                return (p, skipped);
            }
            skipped.push(p);
        }
    }

    /// Like [`RawClient::read_until`], but packets of other types are kept in
    /// `pending` for later reads.
    pub fn read_until_keep(&mut self, kind: u8) -> Packet {
        let mut skipped = Vec::new();
        let found = loop {
            let p = self
                .try_read_packet_fresh(TIMEOUT)
                .unwrap_or_else(|e| panic!("waiting for packet type {kind}: {e}"));
            if p.kind() == kind {
                break p;
            }
            skipped.push(p);
        };
        self.pending.extend(skipped);
        found
    }

    fn try_read_packet_fresh(&mut self, timeout: Duration) -> io::Result<Packet> {
        let keep = std::mem::take(&mut self.pending);
        let r = self.try_read_packet(timeout);
        let mut keep = keep;
        keep.extend(std::mem::take(&mut self.pending));
        self.pending = keep;
        r
    }

    /// Read exactly `expected.len()` bytes and compare.
    pub fn expect(&mut self, expected: &[u8]) {
        let mut buf = vec![0u8; expected.len()];
        self.read_exact_by(&mut buf, Instant::now() + TIMEOUT)
            .unwrap_or_else(|e| panic!("expecting {expected:02x?}: {e}"));
        assert_eq!(buf, expected, "unexpected bytes from broker");
    }

    /// Expect a PUBLISH and decode it.
    pub fn expect_publish(&mut self) -> Publish {
        let p = self.read_packet();
        p.publish(self.v5)
    }

    /// The connection must be closed (EOF or reset) within `timeout`. Any
    /// packets read before the close are returned.
    pub fn closed_within(&mut self, timeout: Duration) -> Result<Vec<Packet>, String> {
        let deadline = Instant::now() + timeout;
        let mut seen = Vec::new();
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(format!("still open after {timeout:?}; got {seen:02x?}"));
            }
            match self.try_read_packet(left) {
                Ok(p) => seen.push(p),
                Err(e) if e.kind() == ErrorKind::TimedOut => {
                    return Err(format!("still open after {timeout:?}; got {seen:02x?}"));
                }
                Err(_) => return Ok(seen),
            }
        }
    }

    /// The broker must close the connection within [`TIMEOUT`] without sending
    /// anything but (for v5) an optional DISCONNECT. Returns that DISCONNECT's
    /// reason code if there was one.
    pub fn expect_closed(&mut self) -> Option<u8> {
        self.expect_closed_within(TIMEOUT)
    }

    pub fn expect_closed_within(&mut self, timeout: Duration) -> Option<u8> {
        let seen = self.closed_within(timeout).unwrap_or_else(|e| panic!("{e}"));
        let mut reason = None;
        for p in &seen {
            assert_eq!(
                p.kind(),
                packets::DISCONNECT,
                "only DISCONNECT may precede the close; got {seen:02x?}"
            );
            reason = Some(p.disconnect().0);
        }
        reason
    }

    /// v5: the broker must send DISCONNECT with `reason` then close. When
    /// `strict` is false a bare close is also accepted (other brokers).
    pub fn expect_disconnect(&mut self, reason: u8, strict: bool) {
        match self.expect_closed() {
            Some(r) => assert_eq!(r, reason, "DISCONNECT reason code"),
            None if strict => panic!("closed without DISCONNECT {reason:#04x}"),
            None => {}
        }
    }

    /// Nothing must arrive within `d` (the connection must also stay open).
    pub fn expect_silence(&mut self, d: Duration) {
        match self.try_read_packet(d) {
            Err(e) if e.kind() == ErrorKind::TimedOut => {}
            Err(e) => panic!("expected silence, got error {e}"),
            Ok(p) => panic!("expected silence, got {p:02x?}"),
        }
    }

    /// Round trip a PINGREQ: proves everything sent before it was processed
    /// and returns the packets that arrived before the PINGRESP.
    pub fn sync(&mut self) -> Vec<Packet> {
        self.send(&packets::pingreq());
        let (_, before) = self.read_until(packets::PINGRESP);
        before
    }

    /// Read PUBLISH packets (acking QoS 1/2) until one on `sentinel` arrives;
    /// return the ones before it. Publish the sentinel last from the same
    /// publisher to get a deterministic "everything so far has arrived" point.
    pub fn collect_until_topic(&mut self, sentinel: &str) -> Vec<Publish> {
        let mut out = Vec::new();
        loop {
            let p = self.read_packet();
            if p.kind() != packets::PUBLISH {
                continue;
            }
            let m = p.publish(self.v5);
            match m.qos {
                1 => self.send(&packets::ack(packets::PUBACK, m.pid)),
                2 => {
                    self.send(&packets::ack(packets::PUBREC, m.pid));
                    let rel = self.read_until_keep(packets::PUBREL);
                    self.send(&packets::ack(packets::PUBCOMP, rel.ack().0));
                }
                _ => {}
            }
            if m.topic == sentinel {
                return out;
            }
            out.push(m);
        }
    }

    /// Subscribe (v3 QoS / v5 options byte) and assert the SUBACK grants `expect`.
    pub fn subscribe(&mut self, filter: &str, opts: u8) -> u8 {
        let pid = 7;
        if self.v5 {
            self.send(&packets::subscribe5(pid, filter, opts));
        } else {
            self.send(&packets::subscribe311(pid, filter, opts));
        }
        let p = self.read_until_keep(packets::SUBACK);
        let (got, codes) = p.suback(self.v5);
        assert_eq!(got, pid, "SUBACK packet id");
        assert_eq!(codes.len(), 1);
        codes[0]
    }

    /// Publish at QoS 0/1/2, completing the flow.
    pub fn publish(&mut self, topic: &str, payload: &[u8], qos: u8, retain: bool) {
        let pid = 11;
        if self.v5 {
            self.send(&packets::publish5(topic, payload, qos, retain, pid));
        } else {
            self.send(&packets::publish311(topic, payload, qos, retain, pid));
        }
        match qos {
            0 => {}
            1 => {
                let p = self.read_until_keep(packets::PUBACK);
                assert_eq!(p.ack().0, pid);
            }
            _ => {
                let p = self.read_until_keep(packets::PUBREC);
                assert_eq!(p.ack().0, pid);
                self.send(&packets::ack(packets::PUBREL, pid));
                let p = self.read_until_keep(packets::PUBCOMP);
                assert_eq!(p.ack().0, pid);
            }
        }
    }

    /// Send a clean DISCONNECT and close the socket.
    pub fn disconnect(mut self) {
        let d = if self.v5 {
            packets::disconnect(Some(0))
        } else {
            packets::disconnect(None)
        };
        let _ = self.try_send(&d);
        let _ = self.stream.shutdown(Shutdown::Write);
        // Wait for the broker to close its side so the disconnect is processed.
        let _ = self.closed_within(Duration::from_secs(2));
    }

    /// Drop the TCP connection abruptly (no DISCONNECT).
    pub fn drop_abruptly(self) {
        let _ = self.stream.shutdown(Shutdown::Both);
    }
}
