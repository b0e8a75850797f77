//! Minimal client-side MQTT 3.1.1 / 5.0 codec and connection.
//!
//! A load generator wants pre-encoded frames it can copy and patch (packet id,
//! timestamp) and a parser that walks a big read buffer without allocating,
//! so this is deliberately not a general MQTT library: it encodes only what the
//! scenarios send and decodes just enough of what brokers answer.
//!
//! With `--tls-ca` every connection is TLS (rustls on ring, TLS 1.3 only):
//! [`Stream`] hides which, and [`Conn::send`] flushes because tokio-rustls
//! may keep part of a write in the session's buffer when the socket is full.

use std::io;
use std::net::SocketAddr;
use std::path::Path;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context as TaskContext, Poll};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use bytes::{Buf, BytesMut};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;
use tokio_rustls::rustls;
use tokio_rustls::rustls::pki_types::{CertificateDer, ServerName, pem::PemObject};

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum, serde::Serialize)]
pub enum Proto {
    /// MQTT 3.1.1 (protocol level 4)
    #[value(name = "3")]
    V311,
    /// MQTT 5.0 (protocol level 5)
    #[value(name = "5")]
    V5,
}

/// Packet type nibbles (high 4 bits of the fixed header).
pub const CONNACK: u8 = 2;
pub const PUBLISH: u8 = 3;
pub const PUBACK: u8 = 4;
pub const PUBREC: u8 = 5;
pub const PUBREL: u8 = 6;
pub const PUBCOMP: u8 = 7;
pub const SUBACK: u8 = 9;
pub const PINGRESP: u8 = 13;
pub const DISCONNECT: u8 = 14;

pub const PINGREQ_FRAME: [u8; 2] = [0xC0, 0];
pub const DISCONNECT_FRAME: [u8; 2] = [0xE0, 0];

fn put_varint(out: &mut Vec<u8>, mut n: usize) {
    loop {
        let mut b = (n % 128) as u8;
        n /= 128;
        if n > 0 {
            b |= 0x80;
        }
        out.push(b);
        if n == 0 {
            break;
        }
    }
}

fn put_str(out: &mut Vec<u8>, s: &[u8]) {
    out.extend_from_slice(&(s.len() as u16).to_be_bytes());
    out.extend_from_slice(s);
}

/// Prefix `body` with a fixed header.
fn frame(first: u8, body: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(body.len() + 5);
    out.push(first);
    put_varint(&mut out, body.len());
    out.extend_from_slice(body);
    out
}

/// User name and password every client of this run connects with
/// (`--username`/`--password`), for runs against brokers that check them.
pub static CREDENTIALS: std::sync::OnceLock<(String, String)> = std::sync::OnceLock::new();

/// CONNECT with a v5 Session Expiry Interval property (0x11) when
/// `session_expiry` is set; 3.1.1 has no such property (a persistent session
/// there is `clean = false`).
pub fn encode_connect_session(
    proto: Proto,
    client_id: &str,
    keep_alive: u16,
    clean: bool,
    session_expiry: Option<u32>,
) -> Vec<u8> {
    let creds = CREDENTIALS.get();
    let mut b = Vec::with_capacity(32 + client_id.len());
    put_str(&mut b, b"MQTT");
    b.push(if proto == Proto::V5 { 5 } else { 4 });
    let mut flags = if clean { 0x02 } else { 0 };
    if creds.is_some() {
        flags |= 0xC0; // user name and password
    }
    b.push(flags);
    b.extend_from_slice(&keep_alive.to_be_bytes());
    if proto == Proto::V5 {
        match session_expiry {
            Some(e) => {
                b.push(5); // properties length
                b.push(0x11);
                b.extend_from_slice(&e.to_be_bytes());
            }
            None => b.push(0), // no properties
        }
    }
    put_str(&mut b, client_id.as_bytes());
    if let Some((user, password)) = creds {
        put_str(&mut b, user.as_bytes());
        put_str(&mut b, password.as_bytes());
    }
    frame(0x10, &b)
}

/// A PUBLISH frame plus where to patch it.
#[derive(Clone)]
pub struct PublishTemplate {
    pub bytes: Vec<u8>,
    /// Offset of the 2-byte packet id (QoS > 0 only).
    pub pkid_off: Option<usize>,
    /// Offset of the payload; its first 8 bytes carry the send timestamp.
    pub payload_off: usize,
}

impl PublishTemplate {
    pub fn new(proto: Proto, topic: &str, qos: u8, retain: bool, payload_len: usize) -> Self {
        let mut b = Vec::with_capacity(topic.len() + payload_len + 8);
        put_str(&mut b, topic.as_bytes());
        let pkid = (qos > 0).then(|| {
            let at = b.len();
            b.extend_from_slice(&1u16.to_be_bytes());
            at
        });
        if proto == Proto::V5 {
            b.push(0);
        }
        let payload_at = b.len();
        // Payload: a recognisable filler; the timestamp overwrites the head.
        b.extend((0..payload_len).map(|i| b'a' + (i % 26) as u8));
        let first = 0x30 | (qos << 1) | u8::from(retain);
        let bytes = frame(first, &b);
        let header = bytes.len() - b.len();
        PublishTemplate {
            pkid_off: pkid.map(|p| p + header),
            payload_off: payload_at + header,
            bytes,
        }
    }

    /// Append a copy to `out` with packet id and timestamp patched in.
    #[inline]
    pub fn append(&self, out: &mut Vec<u8>, pkid: u16, ts_ns: u64) {
        let at = out.len();
        out.extend_from_slice(&self.bytes);
        if let Some(p) = self.pkid_off {
            out[at + p..at + p + 2].copy_from_slice(&pkid.to_be_bytes());
        }
        let pay = at + self.payload_off;
        let n = (self.bytes.len() - self.payload_off).min(8);
        out[pay..pay + n].copy_from_slice(&ts_ns.to_le_bytes()[..n]);
    }
}

pub fn encode_subscribe(proto: Proto, pkid: u16, filters: &[String], qos: u8) -> Vec<u8> {
    let mut b = Vec::with_capacity(8 + filters.iter().map(|f| f.len() + 3).sum::<usize>());
    b.extend_from_slice(&pkid.to_be_bytes());
    if proto == Proto::V5 {
        b.push(0);
    }
    for f in filters {
        put_str(&mut b, f.as_bytes());
        b.push(qos);
    }
    frame(0x82, &b)
}

/// PUBACK / PUBREC / PUBREL / PUBCOMP: 4 bytes in both versions (a v5
/// receiver treats a missing reason code as Success).
#[inline]
pub fn put_ack(out: &mut Vec<u8>, kind: u8, pkid: u16) {
    let first = (kind << 4) | if kind == PUBREL { 0x02 } else { 0 };
    out.extend_from_slice(&[first, 2]);
    out.extend_from_slice(&pkid.to_be_bytes());
}

/// One decoded inbound packet; `body` borrows the read buffer.
pub struct Packet<'a> {
    pub kind: u8,
    pub flags: u8,
    pub body: &'a [u8],
}

impl Packet<'_> {
    /// Packet id of an ack or SUBACK (first two bytes of the variable header).
    pub fn pkid(&self) -> u16 {
        match self.body {
            [a, b, ..] => u16::from_be_bytes([*a, *b]),
            _ => 0,
        }
    }

    pub fn qos(&self) -> u8 {
        (self.flags >> 1) & 3
    }

    /// For PUBLISH: (packet id, payload).
    pub fn publish(&self, proto: Proto) -> Option<(u16, &[u8])> {
        let b = self.body;
        let tlen = u16::from_be_bytes([*b.first()?, *b.get(1)?]) as usize;
        let mut at = 2 + tlen;
        let mut pkid = 0;
        if self.qos() > 0 {
            pkid = u16::from_be_bytes([*b.get(at)?, *b.get(at + 1)?]);
            at += 2;
        }
        if proto == Proto::V5 {
            let (plen, used) = varint(b.get(at..)?)?;
            at += used + plen;
        }
        Some((pkid, b.get(at..)?))
    }
}

/// Decode a variable byte integer: (value, bytes used).
fn varint(b: &[u8]) -> Option<(usize, usize)> {
    let mut v = 0usize;
    for (i, byte) in b.iter().take(4).enumerate() {
        v |= ((byte & 0x7f) as usize) << (7 * i);
        if byte & 0x80 == 0 {
            return Some((v, i + 1));
        }
    }
    None
}

/// Split the next complete packet off `buf[*pos..]`.
#[inline]
pub fn next_packet<'a>(buf: &'a [u8], pos: &mut usize) -> Option<Packet<'a>> {
    let rest = buf.get(*pos..)?;
    let first = *rest.first()?;
    let (len, used) = varint(rest.get(1..)?)?;
    let body = rest.get(1 + used..1 + used + len)?;
    *pos += 1 + used + len;
    Some(Packet {
        kind: first >> 4,
        flags: first & 0x0f,
        body,
    })
}

/// Nanoseconds since a process-wide origin: publisher and subscriber share
/// this process, so the difference is an end-to-end latency.
pub fn now_ns(origin: Instant) -> u64 {
    origin.elapsed().as_nanos() as u64
}

/// Read timestamp from a payload written by `PublishTemplate::append`.
#[inline]
pub fn payload_ts(payload: &[u8]) -> Option<u64> {
    let b: [u8; 8] = payload.get(..8)?.try_into().ok()?;
    Some(u64::from_le_bytes(b))
}

/// TLS settings every connection of this run uses (`--tls-ca`), set once
/// before the first connect; unset = plain TCP.
pub static TLS: std::sync::OnceLock<Tls> = std::sync::OnceLock::new();

pub struct Tls {
    connector: TlsConnector,
    name: ServerName<'static>,
}

impl Tls {
    /// Trust the PEM CA(s) in `ca_file`; `name` is the server name sent
    /// (SNI) and checked against the certificate. TLS 1.3 only. Without
    /// `resume`, every connection makes a full handshake (rustls would
    /// otherwise resume with the tickets both brokers send). With no CA,
    /// nothing the server presents is checked (`--tls-skip-verify`).
    pub fn new(ca_file: Option<&Path>, name: &str, resume: bool) -> Result<Tls> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let builder = rustls::ClientConfig::builder_with_provider(provider.clone())
            .with_protocol_versions(&[&rustls::version::TLS13])
            .context("TLS 1.3")?;
        let mut config = match ca_file {
            Some(ca_file) => {
                let mut roots = rustls::RootCertStore::empty();
                for cert in
                    CertificateDer::pem_file_iter(ca_file).with_context(|| format!("read {}", ca_file.display()))?
                {
                    roots
                        .add(cert.with_context(|| format!("parse {}", ca_file.display()))?)
                        .context("add CA")?;
                }
                if roots.is_empty() {
                    bail!("no certificate in {}", ca_file.display());
                }
                builder.with_root_certificates(roots).with_no_client_auth()
            }
            None => builder
                .dangerous()
                .with_custom_certificate_verifier(Arc::new(SkipVerify(provider)))
                .with_no_client_auth(),
        };
        if !resume {
            config.resumption = rustls::client::Resumption::disabled();
        }
        Ok(Tls {
            connector: TlsConnector::from(Arc::new(config)),
            name: ServerName::try_from(name.to_owned()).context("--tls-name")?,
        })
    }

    pub async fn wrap(&self, tcp: TcpStream) -> io::Result<TlsStream<TcpStream>> {
        self.connector.connect(self.name.clone(), tcp).await
    }
}

/// Accepts any certificate and signature: the server does exactly the same
/// work either way, and the client saves two ECDSA verifications per
/// handshake (the chain and CertificateVerify), which is most of what makes
/// a one-core TLS client slower than the server it measures.
#[derive(Debug)]
struct SkipVerify(Arc<rustls::crypto::CryptoProvider>);

impl rustls::client::danger::ServerCertVerifier for SkipVerify {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: rustls::pki_types::UnixTime,
    ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        Ok(rustls::client::danger::ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        _message: &[u8],
        _cert: &CertificateDer<'_>,
        _dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        Ok(rustls::client::danger::HandshakeSignatureValid::assertion())
    }

    fn verify_tls13_signature(
        &self,
        _message: &[u8],
        _cert: &CertificateDer<'_>,
        _dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        Ok(rustls::client::danger::HandshakeSignatureValid::assertion())
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

/// TCP connect (Nagle off: we batch frames ourselves) and, with `--tls-ca`,
/// the TLS handshake.
pub async fn open_stream(addr: SocketAddr) -> Result<Stream> {
    let tcp = TcpStream::connect(addr)
        .await
        .with_context(|| format!("connect {addr}"))?;
    tcp.set_nodelay(true)?;
    Ok(match TLS.get() {
        Some(tls) => Stream::Tls(Box::new(
            tls.wrap(tcp)
                .await
                .with_context(|| format!("TLS handshake with {addr}"))?,
        )),
        None => Stream::Tcp(tcp),
    })
}

/// A plain or a TLS connection.
pub enum Stream {
    Tcp(TcpStream),
    Tls(Box<TlsStream<TcpStream>>),
}

impl Stream {
    pub fn tcp(&self) -> &TcpStream {
        match self {
            Stream::Tcp(s) => s,
            Stream::Tls(s) => s.get_ref().0,
        }
    }
}

impl AsyncRead for Stream {
    fn poll_read(self: Pin<&mut Self>, cx: &mut TaskContext<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Tcp(s) => Pin::new(s).poll_read(cx, buf),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for Stream {
    fn poll_write(self: Pin<&mut Self>, cx: &mut TaskContext<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Stream::Tcp(s) => Pin::new(s).poll_write(cx, buf),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_write(cx, buf),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Tcp(s) => Pin::new(s).poll_flush(cx),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Tcp(s) => Pin::new(s).poll_shutdown(cx),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_shutdown(cx),
        }
    }
}

/// A connected client: the socket and a large read buffer.
pub struct Conn {
    pub stream: Stream,
    pub rbuf: BytesMut,
    pub proto: Proto,
}

/// Reads go into chunks this big so that one syscall drains many frames.
pub const READ_CHUNK: usize = 256 * 1024;

impl Conn {
    pub async fn connect(addr: SocketAddr, proto: Proto, client_id: &str, keep_alive: u16) -> Result<Conn> {
        Ok(Conn::connect_session(addr, proto, client_id, keep_alive, true, None)
            .await?
            .0)
    }

    /// Connect with the given clean flag (v5: Clean Start) and, for v5, a
    /// Session Expiry Interval; returns the CONNACK's session-present flag.
    /// Packets the broker sends right after the CONNACK (a resumed session's
    /// queue) stay in `rbuf`.
    pub async fn connect_session(
        addr: SocketAddr,
        proto: Proto,
        client_id: &str,
        keep_alive: u16,
        clean: bool,
        session_expiry: Option<u32>,
    ) -> Result<(Conn, bool)> {
        let mut c = Conn {
            stream: open_stream(addr).await?,
            rbuf: BytesMut::with_capacity(4096),
            proto,
        };
        c.send(&encode_connect_session(
            proto,
            client_id,
            keep_alive,
            clean,
            session_expiry,
        ))
        .await?;
        let (kind, body) = c.expect_one(Duration::from_secs(10)).await?;
        if kind != CONNACK {
            bail!("expected CONNACK, got packet type {kind}");
        }
        match body.get(1) {
            Some(0) => Ok((c, body.first().is_some_and(|f| f & 1 == 1))),
            code => bail!("CONNACK refused: {code:?}"),
        }
    }

    /// Subscribe and wait for the SUBACK; filters go in batches so a
    /// 100,000-topic tree does not need 100,000 round trips.
    pub async fn subscribe(&mut self, filters: &[String], qos: u8) -> Result<()> {
        const PER_PACKET: usize = 200;
        let mut pkid = 1u16;
        for chunk in filters.chunks(PER_PACKET) {
            self.send(&encode_subscribe(self.proto, pkid, chunk, qos)).await?;
            let (kind, body) = self.expect_one(Duration::from_secs(30)).await?;
            if kind != SUBACK {
                bail!("expected SUBACK, got packet type {kind}");
            }
            // Codes start after pkid (+ v5 properties); >= 0x80 is failure.
            let codes = match self.proto {
                Proto::V311 => body.get(2..),
                Proto::V5 => body.get(2..).and_then(|r| varint(r).and_then(|(l, u)| r.get(u + l..))),
            };
            if codes.unwrap_or(&[]).iter().any(|c| *c >= 0x80) {
                bail!("SUBACK rejected a filter");
            }
            pkid = pkid.wrapping_add(1).max(1);
        }
        Ok(())
    }

    /// Write all of `buf` and flush it: over TLS a write may leave records
    /// in rustls' buffer when the socket is full, and nothing else would
    /// push them out while we wait for the broker's answer.
    pub async fn send(&mut self, buf: &[u8]) -> io::Result<()> {
        self.stream.write_all(buf).await?;
        self.stream.flush().await
    }

    /// Read exactly one packet (used only during setup, not on hot paths).
    pub async fn expect_one(&mut self, timeout: Duration) -> Result<(u8, Vec<u8>)> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let mut pos = 0;
            if let Some(p) = next_packet(&self.rbuf, &mut pos) {
                let out = (p.kind, p.body.to_vec());
                self.rbuf.advance(pos);
                return Ok(out);
            }
            let n = tokio::time::timeout_at(deadline, self.stream.read_buf(&mut self.rbuf))
                .await
                .context("timed out waiting for broker")??;
            if n == 0 {
                bail!("broker closed the connection");
            }
        }
    }

    /// Round-trip a PINGREQ: proves a held connection is still served.
    pub async fn ping(&mut self) -> Result<()> {
        self.send(&PINGREQ_FRAME).await?;
        match self.expect_one(Duration::from_secs(10)).await?.0 {
            PINGRESP => Ok(()),
            k => bail!("expected PINGRESP, got packet type {k}"),
        }
    }

    /// Polite close: DISCONNECT (no will), then FIN.
    pub async fn disconnect(mut self) -> Result<()> {
        self.send(&DISCONNECT_FRAME).await?;
        self.stream.shutdown().await?;
        Ok(())
    }

    /// Read one big chunk; returns false on EOF.
    pub async fn fill(&mut self) -> Result<bool> {
        if self.rbuf.capacity() - self.rbuf.len() < READ_CHUNK / 4 {
            self.rbuf.reserve(READ_CHUNK);
        }
        Ok(self.stream.read_buf(&mut self.rbuf).await? > 0)
    }

    /// Close with RST instead of FIN so that tens of thousands of short-lived
    /// client sockets do not sit in TIME_WAIT and exhaust ephemeral ports
    /// across rounds.
    pub fn abort(self) {
        set_linger_zero(self.stream.tcp());
    }
}

pub fn set_linger_zero(stream: &TcpStream) {
    use std::os::fd::AsRawFd;
    let l = libc::linger {
        l_onoff: 1,
        l_linger: 0,
    };
    // SAFETY: valid fd owned by `stream`; the option struct outlives the call.
    unsafe {
        libc::setsockopt(
            stream.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_LINGER,
            (&l as *const libc::linger).cast(),
            std::mem::size_of::<libc::linger>() as libc::socklen_t,
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn publish_roundtrip_v5_and_v311() {
        for proto in [Proto::V311, Proto::V5] {
            for qos in 0..=2 {
                let t = PublishTemplate::new(proto, "bench/x", qos, false, 64);
                let mut out = Vec::new();
                t.append(&mut out, 513, 0xdead_beef);
                t.append(&mut out, 7, 42);
                let mut pos = 0;
                let p = next_packet(&out, &mut pos).expect("first");
                assert_eq!(p.kind, PUBLISH);
                assert_eq!(p.qos(), qos);
                let (id, pay) = p.publish(proto).expect("parse");
                assert_eq!(pay.len(), 64);
                assert_eq!(payload_ts(pay), Some(0xdead_beef));
                if qos > 0 {
                    assert_eq!(id, 513);
                }
                let p = next_packet(&out, &mut pos).expect("second");
                assert_eq!(payload_ts(p.publish(proto).expect("parse").1), Some(42));
                assert!(next_packet(&out, &mut pos).is_none());
            }
        }
    }

    #[test]
    fn connect_carries_session_expiry() {
        let f = encode_connect_session(Proto::V5, "c", 60, false, Some(3600));
        // header(2) + "MQTT"(6) + level + flags + keep alive(2) + props
        assert_eq!(f[9], 0, "clean start off");
        assert_eq!(&f[12..18], &[5, 0x11, 0, 0, 0x0e, 0x10]);
        let f = encode_connect_session(Proto::V311, "c", 60, false, Some(3600));
        assert_eq!(f[9], 0);
        assert_eq!(&f[12..15], &[0, 1, b'c'], "no properties in 3.1.1");
    }

    #[test]
    fn tls_settings_refuse_a_ca_file_without_certificates() {
        let path = std::env::temp_dir().join(format!("tern-bench-empty-ca-{}.pem", std::process::id()));
        std::fs::write(&path, "not a certificate\n").expect("write");
        let err = Tls::new(Some(&path), "localhost", false).err().expect("refused");
        assert!(err.to_string().contains("no certificate"), "{err:#}");
        let _ = std::fs::remove_file(&path);
        assert!(Tls::new(None, "localhost", false).is_ok(), "--tls-skip-verify");
        assert!(Tls::new(None, "not a name!", false).is_err(), "bad --tls-name");
    }

    #[test]
    fn varint_sizes() {
        for n in [0usize, 127, 128, 16_383, 16_384, 2_097_151, 2_097_152] {
            let mut v = Vec::new();
            put_varint(&mut v, n);
            assert_eq!(varint(&v), Some((n, v.len())));
        }
    }

    #[test]
    fn partial_frame_waits() {
        let t = PublishTemplate::new(Proto::V311, "a", 1, false, 300);
        let mut pos = 0;
        assert!(next_packet(&t.bytes[..t.bytes.len() - 1], &mut pos).is_none());
        assert_eq!(pos, 0);
    }
}
