//! The connection loop: wait for bytes, deliveries, a kick, shutdown or the
//! keep-alive deadline; read and act in batches; write in batches.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::{Buf, Bytes, BytesMut};
use bytestring::ByteString;
use tracing::Instrument;

use super::CloseReason;
use super::handshake::Accepted;
use super::scratch::with_scratch;
use super::socket::Socket;
use crate::broker::{Attached, Broker};
use crate::codec::{self, Disconnect, Packet, Protocol};
use crate::listener::ListenerSettings;
use crate::metrics::Metrics;
use crate::router::Message;
use crate::session::Delivery;

/// Stop reading from a client, and stop pulling deliveries from its queue,
/// while this much is waiting to be written: a client that does not read
/// pushes back on itself through TCP, not on the broker's memory.
pub(super) const WRITE_HIGH_WATER: usize = 64 * 1024;

/// Acknowledgements held for the store beyond which a client is not read.
const MAX_HELD: usize = 1024;

/// Bytes read from one socket before other tasks get a turn: one scratch
/// buffer, about 800 small PUBLISHes, which is also about what a
/// subscriber drains per turn, so fan-in stays fair.
const READ_BUDGET: usize = 64 * 1024;

pub(super) struct Conn {
    pub stream: Socket,
    /// The TLS session of an `mqtts` connection: ciphertext moves between
    /// it and the socket by readiness, like plain bytes do.
    pub tls: Option<Box<rustls::ServerConnection>>,
    pub broker: Arc<Broker>,
    pub attached: Attached,
    /// For the `conn` span, made again whenever a line is logged.
    pub peer: SocketAddr,
    pub listener: Arc<ListenerSettings>,
    /// What the client may publish to; `None`: anything.
    pub acl: crate::auth::Grant,
    pub protocol: Protocol,
    pub send_window: u16,
    pub client_max_packet: u32,
    pub keep_alive: u16,
    pub expiry_interval: u32,
    pub connect_expiry_was_zero: bool,
    /// Inbound topic aliases, allocated on first use [MQTT-3.3.2-12].
    pub aliases: Box<[Option<ByteString>]>,
    /// A partial frame carried over between reads; empty (unallocated) in
    /// the common case.
    pub rbuf: BytesMut,
    pub wbuf: BytesMut,
    /// Inflight messages must be resent before anything new [MQTT-4.4.0-1].
    pub resend_pending: bool,
    /// Retained messages owed to new subscriptions, sent before the queue.
    /// Kept here rather than in the session queue so a subscription to `#`
    /// gets every retained message, not just what fits the queue's bounds:
    /// the messages are shared with the retained store, so each costs only
    /// its delivery record. Boxed: most connections never have any.
    #[expect(clippy::box_collection, reason = "8 bytes per idle connection instead of 32")]
    pub replay: Option<Box<VecDeque<Delivery>>>,
    /// Acknowledgements waiting for their store writes to be durable,
    /// each with the op it waits for, in the order they must be sent.
    /// Boxed: most connections never hold any.
    #[expect(clippy::box_collection, reason = "8 bytes per idle connection instead of 32")]
    pub held: Option<Box<VecDeque<(u64, Bytes)>>>,
    /// Publish and subscribe webhooks: the user name they are told and the
    /// packet waiting for an answer. `None` where the listener has none.
    pub hooks: Option<Box<super::hooks::HookState>>,
    pub stats: LocalStats,
}

/// Counters kept per connection and folded into the broker's once per
/// batch, so a batch never exceeds 32 bits of any.
#[derive(Default)]
pub(super) struct LocalStats {
    pub messages_received: u32,
    pub messages_sent: u32,
    pub bytes_received: u32,
    pub bytes_sent: u32,
    pub dropped: u32,
}

impl Conn {
    /// The boxed connection; bytes that arrived after CONNECT wait in its
    /// read buffer.
    pub(super) fn from_accepted(accepted: Accepted) -> Conn {
        accepted.attached.session.set_will(accepted.will.map(Box::new));
        let acl = accepted.attached.session.state.lock().acl.clone();
        let hooks = super::hooks::HookState::for_listener(&accepted.listener, accepted.username);
        Conn {
            hooks,
            acl,
            stream: accepted.stream,
            tls: accepted.tls,
            broker: accepted.broker,
            peer: accepted.peer,
            listener: accepted.listener,
            resend_pending: accepted.attached.session_present,
            attached: accepted.attached,
            protocol: accepted.protocol,
            keep_alive: accepted.keep_alive,
            send_window: accepted.send_window,
            client_max_packet: accepted.client_max_packet,
            expiry_interval: accepted.expiry_interval,
            connect_expiry_was_zero: accepted.connect_expiry_was_zero,
            aliases: Box::default(),
            replay: None,
            held: None,
            // An empty remainder may still hold the handshake's read buffer.
            rbuf: if accepted.rest.is_empty() {
                BytesMut::new()
            } else {
                accepted.rest
            },
            wbuf: BytesMut::new(),
            stats: LocalStats::default(),
        }
    }

    /// The connection's `conn` span, as the handshake had it.
    pub(super) fn span(&self) -> tracing::Span {
        super::conn_span(&self.peer, &self.listener.name, Some(&self.attached.session.client_id))
    }
}

/// What woke a waiting connection.
enum Event {
    Readable,
    /// Writable, or new deliveries: either way, pump and flush.
    Writable,
}

/// The close, boxed: its timer and write future are rare and should not
/// size every connection's task.
pub(super) fn closing(conn: Box<Conn>, reason: CloseReason) -> std::pin::Pin<Box<dyn Future<Output = ()> + Send>> {
    let span = conn.span();
    Box::pin(conn.close(reason).instrument(span))
}

impl Conn {
    /// Serves the connection until something ends it, and says what. A
    /// hand-written poll rather than an `async fn`: its only state is the
    /// box, so the task stays a pointer and a few words.
    pub(super) fn poll_drive(&mut self, cx: &mut Context<'_>) -> Poll<CloseReason> {
        loop {
            self.release_held(cx.waker());
            if let Err(e) = self.poll_hooks(cx) {
                return Poll::Ready(e);
            }
            let more = match self.pump(cx.waker()) {
                Ok(more) => more,
                Err(e) => return Poll::Ready(e),
            };
            if let Err(e) = self.flush() {
                return Poll::Ready(e.into());
            }
            self.fold_stats();
            if more && self.wbuf.len() < WRITE_HIGH_WATER {
                // The queue still holds deliveries and the socket took the
                // last batch: no wake will come for them (the queue is not
                // empty), so come round again after other tasks had a turn.
                // Woken while running, a tokio task goes to the back of
                // the queue, as `yield_now` would put it.
                cx.waker().wake_by_ref();
                return Poll::Pending;
            }
            if self.wbuf.is_empty() {
                // Idle connections hold no write buffer.
                self.wbuf = BytesMut::new();
            }
            match std::task::ready!(self.poll_event(cx)) {
                Ok(Event::Readable) => {
                    self.touch_keep_alive();
                    match self.read_batch() {
                        // A publisher that always has bytes waiting must not
                        // keep the subscribers' tasks on this worker from
                        // running.
                        Ok(true) => {
                            cx.waker().wake_by_ref();
                            return Poll::Pending;
                        }
                        Ok(false) => {}
                        Err(e) => return Poll::Ready(e),
                    }
                }
                Ok(Event::Writable) => {}
                Err(e) => return Poll::Ready(e),
            }
        }
    }

    /// Bytes that came with CONNECT, before the first wait.
    pub(super) fn process_leftover(&mut self) -> Result<(), CloseReason> {
        if !self.rbuf.is_empty() {
            let rest = std::mem::take(&mut self.rbuf);
            let consumed = self.process(&rest)?;
            self.keep_partial(&rest[consumed..]);
        }
        // The TLS handshake may have decrypted more than CONNECT already.
        if let Some(mut tls) = self.tls.take() {
            let result = with_scratch(|scratch| self.drain_plaintext(&mut tls, scratch));
            self.tls = Some(tls);
            result?;
        }
        Ok(())
    }
}

impl Conn {
    /// Waits for the socket to be readable (unless the write buffer is at
    /// its high-water mark) or writable (when there is something to write),
    /// for new deliveries, or for a kick.
    fn poll_event(&mut self, cx: &mut Context<'_>) -> Poll<Result<Event, CloseReason>> {
        {
            let mut st = self.attached.session.state.lock();
            if let Some(code) = st.kicked {
                return Poll::Ready(Err(CloseReason::kicked(code)));
            }
            if std::mem::take(&mut st.woken) {
                return Poll::Ready(Ok(Event::Writable));
            }
            if !st.waker.as_ref().is_some_and(|w| w.will_wake(cx.waker())) {
                st.waker = Some(cx.waker().clone());
            }
        }
        // A client whose acknowledgements wait for the store (or for a
        // store that cannot write) is not read from meanwhile: it pushes
        // back through TCP rather than on the broker's memory.
        if self.wbuf.len() < WRITE_HIGH_WATER
            && self.held.as_ref().is_none_or(|h| h.len() < MAX_HELD)
            && !self.suspended()
            && let Poll::Ready(r) = self.stream.poll_read_ready(cx)
        {
            return Poll::Ready(r.map(|()| Event::Readable).map_err(CloseReason::from));
        }
        if self.wants_write()
            && let Poll::Ready(r) = self.stream.poll_write_ready(cx)
        {
            return Poll::Ready(r.map(|()| Event::Writable).map_err(CloseReason::from));
        }
        Poll::Pending
    }

    /// Something arrived from the client: its keep alive starts again. The
    /// server allows one and a half periods of silence [MQTT-3.1.2-22].
    pub(super) fn touch_keep_alive(&self) {
        if self.keep_alive > 0 {
            let grace_ds = u32::from(self.keep_alive) * 15;
            let deadline = self.broker.clock_ds().saturating_add(grace_ds).max(1);
            self.attached
                .session
                .keep_alive_deadline
                .store(deadline, std::sync::atomic::Ordering::Relaxed);
        }
    }
}

impl Conn {
    /// Reads what the socket has (up to a budget) and acts on every complete
    /// packet. Payloads are copied out of the scratch buffer, so a message
    /// never pins a read buffer. True when it stopped with bytes possibly
    /// still waiting.
    fn read_batch(&mut self) -> Result<bool, CloseReason> {
        let mut total = 0;
        loop {
            if self.suspended() {
                // Waiting for a webhook: what the client sends next waits
                // in the socket.
                return Ok(false);
            }
            if total >= READ_BUDGET || self.wbuf.len() >= WRITE_HIGH_WATER {
                return Ok(true);
            }
            let step = with_scratch(|scratch| -> Result<Option<usize>, CloseReason> {
                let n = match self.stream.try_read(scratch) {
                    Ok(0) => return Err(CloseReason::Eof),
                    Ok(n) => n,
                    Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => return Ok(None),
                    Err(e) if e.kind() == std::io::ErrorKind::Interrupted => return Ok(Some(0)),
                    Err(e) => return Err(e.into()),
                };
                self.stats.bytes_received += n as u32;
                match self.tls.take() {
                    None => self.consume(&scratch[..n])?,
                    Some(mut tls) => {
                        let result = self.decrypt(&mut tls, n, scratch);
                        self.tls = Some(tls);
                        result?;
                    }
                }
                Ok(Some(n))
            })?;
            match step {
                Some(n) => total += n,
                None => return Ok(false),
            }
        }
    }

    /// Acts on plaintext bytes as they arrived, keeping a partial frame.
    fn consume(&mut self, data: &[u8]) -> Result<(), CloseReason> {
        if self.suspended() {
            // Plaintext a TLS record held beyond the set-aside packet: kept,
            // in order, for when the answer comes.
            self.rbuf.extend_from_slice(data);
            return Ok(());
        }
        if self.rbuf.is_empty() {
            let consumed = self.process(data)?;
            self.keep_partial(&data[consumed..]);
        } else {
            self.rbuf.extend_from_slice(data);
            let buffered = std::mem::take(&mut self.rbuf);
            let consumed = self.process(&buffered)?;
            self.keep_partial(&buffered[consumed..]);
        }
        Ok(())
    }

    /// Feeds the `n` bytes of ciphertext at the start of `scratch` to the TLS
    /// session and acts on the plaintext that comes out, reusing `scratch`
    /// for it once the ciphertext is in.
    fn decrypt(&mut self, tls: &mut rustls::ServerConnection, n: usize, scratch: &mut [u8]) -> Result<(), CloseReason> {
        let mut fed = 0;
        while fed < n {
            let mut input = &scratch[fed..n];
            let took = tls.read_tls(&mut input)?;
            if took == 0 {
                break;
            }
            fed += took;
            tls.process_new_packets().map_err(tls_error)?;
            // The ciphertext not yet taken stays in `scratch[fed..n]`; the
            // plaintext goes to a buffer of its own while any is left.
            if fed < n {
                self.drain_plaintext(tls, &mut vec![0; 16 * 1024])?;
            }
        }
        self.drain_plaintext(tls, scratch)
    }

    /// Acts on every plaintext byte the TLS session holds.
    pub(super) fn drain_plaintext(
        &mut self,
        tls: &mut rustls::ServerConnection,
        buf: &mut [u8],
    ) -> Result<(), CloseReason> {
        use std::io::Read;
        loop {
            match tls.reader().read(buf) {
                // close_notify: the client ended the session cleanly.
                Ok(0) => return Err(CloseReason::Eof),
                Ok(m) => self.consume(&buf[..m])?,
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => return Ok(()),
                Err(e) => return Err(e.into()),
            }
        }
    }

    /// Keeps the bytes of an incomplete frame for the next read.
    pub(super) fn keep_partial(&mut self, rest: &[u8]) {
        if rest.is_empty() {
            self.rbuf = BytesMut::new();
        } else {
            let mut b = BytesMut::with_capacity(rest.len().max(64));
            b.extend_from_slice(rest);
            self.rbuf = b;
        }
    }

    /// Acts on every complete frame in `data`; returns the bytes consumed.
    pub(super) fn process(&mut self, data: &[u8]) -> Result<usize, CloseReason> {
        let max = self.broker.limits.max_packet_size;
        let mut pos = 0;
        while let Some(h) = codec::parse_frame_header(&data[pos..], max)? {
            let end = pos + h.frame_len();
            if end > data.len() {
                break;
            }
            let body = Bytes::copy_from_slice(&data[pos + h.header_len..end]);
            let packet = codec::decode(h.first_byte, body, Some(self.protocol))?;
            pos = end;
            self.handle(packet)?;
            if self.suspended() {
                break;
            }
        }
        Ok(pos)
    }

    /// Writes as much of the write buffer as the socket takes now.
    fn flush(&mut self) -> std::io::Result<()> {
        let Some(mut tls) = self.tls.take() else {
            while !self.wbuf.is_empty() {
                match self.stream.try_write(&self.wbuf) {
                    Ok(0) => return Err(std::io::ErrorKind::WriteZero.into()),
                    Ok(n) => {
                        self.stats.bytes_sent += n as u32;
                        self.wbuf.advance(n);
                    }
                    Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
                    Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                    Err(e) => return Err(e),
                }
            }
            return Ok(());
        };
        let result = self.flush_tls(&mut tls);
        self.tls = Some(tls);
        result
    }

    /// Moves plaintext into the TLS session (which holds a bounded amount)
    /// and its records out to the socket, until one or the other is full.
    fn flush_tls(&mut self, tls: &mut rustls::ServerConnection) -> std::io::Result<()> {
        use std::io::Write;
        loop {
            while !self.wbuf.is_empty() {
                let n = tls.writer().write(&self.wbuf)?;
                if n == 0 {
                    break;
                }
                self.wbuf.advance(n);
            }
            if !tls.wants_write() {
                return Ok(());
            }
            match tls.write_tls(&mut SocketWriter(&self.stream)) {
                Ok(0) => return Err(std::io::ErrorKind::WriteZero.into()),
                Ok(n) => self.stats.bytes_sent += n as u32,
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => return Ok(()),
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
    }

    /// Whether anything waits to go out, in our buffer or the TLS session's.
    pub(super) fn wants_write(&self) -> bool {
        !self.wbuf.is_empty() || self.tls.as_ref().is_some_and(|t| t.wants_write())
    }

    fn fold_stats(&mut self) {
        let s = std::mem::take(&mut self.stats);
        let m = &self.broker.metrics;
        Metrics::add(&m.messages_received, u64::from(s.messages_received));
        Metrics::add(&m.messages_sent, u64::from(s.messages_sent));
        Metrics::add(&m.bytes_received, u64::from(s.bytes_received));
        Metrics::add(&m.bytes_sent, u64::from(s.bytes_sent));
        Metrics::add(&m.publish_dropped, u64::from(s.dropped));
    }

    /// Ends the connection: a v5 client hears why [MQTT-4.13.2-1], pending
    /// writes get a bounded chance to leave, the session is detached and the
    /// will published when the spec says so.
    async fn close(mut self: Box<Self>, reason: CloseReason) {
        match &reason {
            CloseReason::ClientDisconnect | CloseReason::Eof | CloseReason::Shutdown | CloseReason::TakenOver => {
                tracing::info!(reason = %reason, "client disconnected")
            }
            CloseReason::KeepAliveTimeout | CloseReason::CredentialsExpired => {
                tracing::info!(reason = %reason, "client disconnected")
            }
            CloseReason::Io(e) => tracing::debug!(error = %e, "client connection lost"),
            CloseReason::Decode(_) | CloseReason::Protocol { .. } => {
                Metrics::add(
                    &self.broker.metrics.malformed_packets,
                    u64::from(matches!(reason, CloseReason::Decode(_))),
                );
                tracing::warn!(reason = %reason, "closing connection")
            }
        }
        if matches!(reason, CloseReason::Shutdown) {
            // What was queued before the kick (the wills of the clients the
            // shutdown disconnects, among others) goes out ahead of the
            // DISCONNECT.
            let session = self.attached.session.clone();
            let mut st = session.state.lock();
            self.pump_locked(&mut st, std::task::Waker::noop());
        }
        // Acknowledgements whose store writes are durable go; the others
        // never do, and their clients will send those messages again.
        self.release_held(std::task::Waker::noop());
        if self.protocol.is_v5()
            && let Some(code) = reason.disconnect_code()
        {
            // The reason string names the rule broken, which is what a
            // developer debugging a client needs; it is dropped if it would
            // break the client's Maximum Packet Size [MQTT-3.1.2-25].
            let mut d = Disconnect {
                reason_code: code,
                ..Default::default()
            };
            d.properties.reason_string = Some(reason.to_string().into());
            let mut packet = Packet::Disconnect(d);
            if codec::encoded_len(&packet, self.protocol) > self.client_max_packet as usize {
                packet = Packet::Disconnect(Disconnect {
                    reason_code: code,
                    ..Default::default()
                });
            }
            let _ = codec::encode(&packet, self.protocol, &mut self.wbuf);
        }
        if let Some(tls) = &mut self.tls {
            tls.send_close_notify();
        }
        // What is left gets a second to leave, then the socket closes.
        let _ = tokio::time::timeout(Duration::from_secs(1), async {
            while self.flush().is_ok() && self.wants_write() {
                if self.stream.writable().await.is_err() {
                    break;
                }
            }
        })
        .await;
        self.fold_stats();
        // A persistent session keeps the retained messages it was owed, within
        // its queue's bounds, for its next connection.
        for d in self.replay.take().into_iter().flat_map(|r| *r) {
            self.attached.session.offer(d);
        }
        // A will is published unless the client disconnected normally
        // [MQTT-3.1.2-8] [MQTT-3.14.4-3]; DISCONNECT 0x04 keeps it. At
        // shutdown the broker has published it already.
        let will = self.attached.session.take_will().map(|w| {
            let delay = w.properties.will_delay_interval.unwrap_or(0);
            (Arc::new(Message::from_will(*w, self.attached.session.id)), delay)
        });
        let Conn {
            broker,
            attached,
            expiry_interval,
            ..
        } = *self;
        broker.detach(attached, will, expiry_interval);
    }
}

/// `io::Write` over a non-blocking socket, for rustls' `write_tls`.
struct SocketWriter<'a>(&'a Socket);

impl std::io::Write for SocketWriter<'_> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.try_write(buf)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// A TLS protocol failure, as the I/O error it ends the connection with.
fn tls_error(e: rustls::Error) -> CloseReason {
    CloseReason::Io(std::io::Error::new(std::io::ErrorKind::InvalidData, e))
}
