//! The connection loop: wait for bytes, deliveries, a kick, shutdown or the
//! keep-alive deadline; read and act in batches; write in batches.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::{Buf, Bytes, BytesMut};
use bytestring::ByteString;
use tokio::io::Interest;
use tokio::net::TcpStream;

use super::CloseReason;
use super::handshake::Accepted;
use super::scratch::with_scratch;
use crate::broker::{Attached, Broker};
use crate::codec::{self, Disconnect, LastWill, Packet, Protocol, ReasonCode};
use crate::metrics::Metrics;
use crate::router::Message;
use crate::session::Delivery;
use crate::shutdown::ShutdownSignal;

/// Stop reading from a client, and stop pulling deliveries from its queue,
/// while this much is waiting to be written: a client that does not read
/// pushes back on itself through TCP, not on the broker's memory.
pub(super) const WRITE_HIGH_WATER: usize = 64 * 1024;

/// Bytes read from one socket before other tasks get a turn: one scratch
/// buffer, about 800 small PUBLISHes, which is also about what a
/// subscriber drains per turn, so fan-in stays fair.
const READ_BUDGET: usize = 64 * 1024;

pub(super) struct Conn {
    pub stream: TcpStream,
    pub broker: Arc<Broker>,
    pub attached: Attached,
    pub protocol: Protocol,
    pub send_window: u16,
    pub client_max_packet: u32,
    pub keep_alive: u16,
    pub will: Option<Box<LastWill>>,
    pub expiry_interval: u32,
    pub connect_expiry_was_zero: bool,
    /// Inbound topic aliases, allocated on first use [MQTT-3.3.2-12].
    pub aliases: Vec<Option<ByteString>>,
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
    /// its delivery record.
    pub replay: VecDeque<Delivery>,
    pub stats: LocalStats,
}

/// Counters kept per connection and folded into the broker's once per
/// batch.
#[derive(Default)]
pub(super) struct LocalStats {
    pub messages_received: u64,
    pub messages_sent: u64,
    pub bytes_received: u64,
    pub bytes_sent: u64,
    pub dropped: u64,
}

impl Conn {
    /// The boxed connection and the bytes that arrived after CONNECT.
    pub(super) fn from_accepted(mut accepted: Accepted) -> (Box<Conn>, BytesMut) {
        let rest = std::mem::take(&mut accepted.rest);
        (Box::new(Conn::new(accepted)), rest)
    }

    fn new(accepted: Accepted) -> Conn {
        Conn {
            stream: accepted.stream,
            broker: accepted.broker,
            resend_pending: accepted.attached.session_present,
            attached: accepted.attached,
            protocol: accepted.protocol,
            keep_alive: accepted.keep_alive,
            send_window: accepted.send_window,
            client_max_packet: accepted.client_max_packet,
            will: accepted.will.map(Box::new),
            expiry_interval: accepted.expiry_interval,
            connect_expiry_was_zero: accepted.connect_expiry_was_zero,
            aliases: Vec::new(),
            replay: VecDeque::new(),
            rbuf: BytesMut::new(),
            wbuf: BytesMut::new(),
            stats: LocalStats::default(),
        }
    }
}

/// Runs a connection to its end. The connection lives in a box so the
/// task's future stays small: an idle connection costs the box, this loop's
/// waiters and the socket.
pub async fn run(mut conn: Box<Conn>, rest: BytesMut, shutdown: ShutdownSignal) {
    let keep_alive = conn.keep_alive;
    let kick = conn.attached.kick.clone();
    let session = conn.attached.session.clone();

    // The server allows one and a half keep alive periods of silence
    // [MQTT-3.1.2-22].
    let grace = (keep_alive > 0).then(|| Duration::from_millis(u64::from(keep_alive) * 1500));
    let mut last_heard = Instant::now();
    let far = Duration::from_secs(86_400 * 365);
    let sleep = tokio::time::sleep(grace.unwrap_or(far));
    tokio::pin!(sleep);

    let mut reason = if rest.is_empty() {
        Ok(())
    } else {
        conn.process(&rest).map(|consumed| conn.keep_partial(&rest[consumed..]))
    };
    drop(rest);

    while reason.is_ok() {
        if let Some(code) = kick.reason() {
            reason = Err(if code == ReasonCode::SESSION_TAKEN_OVER {
                CloseReason::TakenOver
            } else {
                CloseReason::Shutdown
            });
            break;
        }
        if shutdown.is_triggered() {
            reason = Err(CloseReason::Shutdown);
            break;
        }
        let more = conn.pump();
        if let Err(e) = conn.flush() {
            reason = Err(e.into());
            break;
        }
        conn.fold_stats();
        if more && conn.wbuf.len() < WRITE_HIGH_WATER {
            // The queue still holds deliveries and the socket took the last
            // batch: no wake will come for them (the queue is not empty), so
            // go round again, after letting other tasks run.
            tokio::task::yield_now().await;
            continue;
        }
        if conn.wbuf.is_empty() {
            // Idle connections hold no write buffer.
            conn.wbuf = BytesMut::new();
        }
        // One readiness future for both directions keeps the task small.
        let can_read = conn.wbuf.len() < WRITE_HIGH_WATER;
        let interest = match (can_read, !conn.wbuf.is_empty()) {
            (true, true) => Interest::READABLE | Interest::WRITABLE,
            (true, false) => Interest::READABLE,
            (false, _) => Interest::WRITABLE,
        };
        tokio::select! {
            biased;
            r = conn.stream.ready(interest) => match r {
                Ok(ready) if ready.is_readable() || ready.is_read_closed() => {
                    last_heard = Instant::now();
                    match conn.read_batch() {
                        // Readiness futures do not spend tokio's cooperative
                        // budget, so a publisher that always has bytes waiting
                        // would never let the subscribers' tasks on this
                        // worker run: yield after each full budget.
                        Ok(true) => tokio::task::yield_now().await,
                        Ok(false) => {}
                        Err(e) => reason = Err(e),
                    }
                }
                Ok(_) => {}
                Err(e) => reason = Err(e.into()),
            },
            // New deliveries, a takeover or shutdown: the top of the loop
            // sorts out which.
            _ = session.wake.notified() => {}
            _ = &mut sleep => {
                if let Some(grace) = grace {
                    let deadline = last_heard + grace;
                    if Instant::now() >= deadline {
                        reason = Err(CloseReason::KeepAliveTimeout);
                    } else {
                        sleep.as_mut().reset(deadline.into());
                    }
                } else {
                    sleep.as_mut().reset((Instant::now() + far).into());
                }
            }
        }
    }
    let reason = match reason {
        Err(r) => r,
        Ok(()) => CloseReason::Eof,
    };
    // Boxed: the closing path's timer and write future are rare and should
    // not size every connection's task.
    Box::pin(conn.close(reason)).await;
}

impl Conn {
    /// Reads what the socket has (up to a budget) and acts on every complete
    /// packet. Payloads are copied out of the scratch buffer, so a message
    /// never pins a read buffer. True when it stopped with bytes possibly
    /// still waiting.
    fn read_batch(&mut self) -> Result<bool, CloseReason> {
        let mut total = 0;
        loop {
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
                self.stats.bytes_received += n as u64;
                if self.rbuf.is_empty() {
                    let consumed = self.process(&scratch[..n])?;
                    self.keep_partial(&scratch[consumed..n]);
                } else {
                    self.rbuf.extend_from_slice(&scratch[..n]);
                    let buffered = std::mem::take(&mut self.rbuf);
                    let consumed = self.process(&buffered)?;
                    self.keep_partial(&buffered[consumed..]);
                }
                Ok(Some(n))
            })?;
            match step {
                Some(n) => total += n,
                None => return Ok(false),
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
        }
        Ok(pos)
    }

    /// Writes as much of the write buffer as the socket takes now.
    fn flush(&mut self) -> std::io::Result<()> {
        while !self.wbuf.is_empty() {
            match self.stream.try_write(&self.wbuf) {
                Ok(0) => return Err(std::io::ErrorKind::WriteZero.into()),
                Ok(n) => {
                    self.stats.bytes_sent += n as u64;
                    self.wbuf.advance(n);
                }
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    fn fold_stats(&mut self) {
        let s = std::mem::take(&mut self.stats);
        let m = &self.broker.metrics;
        Metrics::add(&m.messages_received, s.messages_received);
        Metrics::add(&m.messages_sent, s.messages_sent);
        Metrics::add(&m.bytes_received, s.bytes_received);
        Metrics::add(&m.bytes_sent, s.bytes_sent);
        Metrics::add(&m.publish_dropped, s.dropped);
    }

    /// Ends the connection: a v5 client hears why [MQTT-4.13.2-1], pending
    /// writes get a bounded chance to leave, the session is detached and the
    /// will published when the spec says so.
    async fn close(mut self: Box<Self>, reason: CloseReason) {
        match &reason {
            CloseReason::ClientDisconnect | CloseReason::Eof | CloseReason::Shutdown | CloseReason::TakenOver => {
                tracing::info!(reason = %reason, "client disconnected")
            }
            CloseReason::KeepAliveTimeout => tracing::info!(reason = %reason, "client disconnected"),
            CloseReason::Io(e) => tracing::debug!(error = %e, "client connection lost"),
            CloseReason::Decode(_) | CloseReason::Protocol { .. } => {
                Metrics::add(
                    &self.broker.metrics.malformed_packets,
                    u64::from(matches!(reason, CloseReason::Decode(_))),
                );
                tracing::warn!(reason = %reason, "closing connection")
            }
        }
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
        if !self.wbuf.is_empty() {
            use tokio::io::AsyncWriteExt;
            let buf = std::mem::take(&mut self.wbuf);
            let _ = tokio::time::timeout(Duration::from_secs(1), self.stream.write_all(&buf)).await;
        }
        self.fold_stats();
        // A persistent session keeps the retained messages it was owed, within
        // its queue's bounds, for its next connection.
        for d in std::mem::take(&mut self.replay) {
            self.attached.session.offer(d);
        }
        // A will is published unless the client disconnected normally
        // [MQTT-3.1.2-8] [MQTT-3.14.4-3]; DISCONNECT 0x04 keeps it.
        let will = self.will.take().map(|w| {
            let delay = w.properties.will_delay_interval.unwrap_or(0);
            (Arc::new(will_message(*w, self.attached.session.id)), delay)
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

fn will_message(w: LastWill, origin: u64) -> Message {
    let p = w.properties;
    let properties = codec::PublishProperties {
        payload_format_indicator: p.payload_format_indicator,
        message_expiry_interval: None,
        topic_alias: None,
        response_topic: p.response_topic,
        correlation_data: p.correlation_data,
        user_properties: p.user_properties,
        subscription_identifiers: Vec::new(),
        content_type: p.content_type,
    };
    Message {
        topic: w.topic,
        payload: w.payload,
        qos: w.qos,
        retain: w.retain,
        properties: (!properties.is_empty()).then(|| Box::new(properties)),
        expires_at: p
            .message_expiry_interval
            .map(|s| Instant::now() + Duration::from_secs(u64::from(s))),
        origin,
    }
}
