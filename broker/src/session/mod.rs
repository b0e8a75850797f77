//! Per-client session state: what survives a connection.
//!
//! A [`Session`] is shared between the router (which queues deliveries into
//! it) and at most one connection (which drains it). Its state sits behind a
//! short-held mutex; nothing here does I/O or waits on time, so the rules are
//! testable without sockets. Lock order: the router's tree lock may be held
//! while a session lock is taken, never the other way round.

mod flows;
mod inflight;
mod queue;
mod registry;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::task::Waker;
use std::time::Duration;

use parking_lot::Mutex;
use tokio::sync::Semaphore;

pub use flows::InboundQos2;
pub use inflight::{Inflight, InflightStage, Outgoing};
pub use queue::{OutQueue, PushOutcome};
pub use registry::Registry;

use crate::auth::Grant;
use crate::codec::{LastWill, Protocol, QoS, ReasonCode};
use crate::router::{Message, SharedGroup, Subscription};
use crate::store::{DeliveryRecord, SessionRecord, Store};

/// One message on its way to one session, with the options of the
/// subscription that matched it.
#[derive(Debug, Clone)]
pub struct Delivery {
    pub msg: Arc<Message>,
    /// The lower of the message's and the subscription's QoS [MQTT-3.8.4-8].
    pub qos: QoS,
    pub retain: bool,
    pub subscription_id: Option<u32>,
    /// The shared subscription group that chose this session, so the message
    /// can go to another member if this session ends unacknowledged.
    pub via: Option<Arc<SharedGroup>>,
    /// Its place in the session's stored sequence, which also gives its
    /// packet identifier; 0 when not stored.
    pub seq: u64,
    /// The store op that wrote it, for QoS 2: such a message is sent only
    /// once that op is durable, so a crash can never make a receiver see
    /// it twice.
    pub written: u64,
}

impl Delivery {
    /// Its stored form, pointing at message `message`.
    pub fn record(&self, message: u64) -> DeliveryRecord {
        DeliveryRecord {
            message,
            qos: self.qos,
            retain: self.retain,
            released: false,
            subscription_id: self.subscription_id,
        }
    }

    pub fn new(msg: Arc<Message>, qos: QoS, retain: bool) -> Delivery {
        Delivery {
            msg,
            qos,
            retain,
            subscription_id: None,
            via: None,
            seq: 0,
            written: 0,
        }
    }

    /// The packet identifier a stored delivery always goes out with, so
    /// after a restart it is sent again under the same one [MQTT-4.4.0-1].
    pub fn stored_packet_id(&self) -> Option<u16> {
        (self.seq != 0).then(|| (self.seq % 65_535) as u16 + 1)
    }
}

/// Bounds applied to one session, from `[limits]`, and the store its
/// changes go to when it is persistent.
#[derive(Debug, Clone)]
pub struct SessionLimits {
    pub max_queued_messages: usize,
    pub max_queued_bytes: usize,
    pub max_inflight: u16,
    pub store: Store,
}

#[derive(Debug)]
pub struct SessionState {
    pub queue: OutQueue,
    pub outgoing: Outgoing,
    /// Packet identifiers of QoS 2 PUBLISHes received and answered with
    /// PUBREC, awaiting PUBREL [MQTT-4.3.3-9].
    pub incoming_qos2: Vec<u16>,
    /// A B-tree rather than a hash map: empty, it costs no allocation and
    /// fewer bytes, and most clients hold a handful of subscriptions.
    pub subscriptions: BTreeMap<Box<str>, Subscription>,
    /// A connection is attached and draining the queue.
    pub online: bool,
    /// Session expiry interval in force, seconds (0xFFFF_FFFF = never).
    pub expiry_interval: u32,
    /// Bumped at every attach and detach, so a timer armed for an older
    /// disconnection (expiry, delayed will) can tell it is stale.
    pub generation: u64,
    pub protocol: Protocol,
    /// Messages this session lost to a full queue.
    pub dropped: u64,
    /// Why the attached connection must close (takeover, shutdown, keep
    /// alive), set by [`Session::kick`]. Cleared at every attach and detach,
    /// so a kick meant for an old connection can never hit a new one.
    pub kicked: Option<ReasonCode>,
    /// The attached connection's task, woken by [`Session::offer`] when the
    /// queue goes from empty to not, and by kicks. Kept under the state lock
    /// so a wake can never slip between the connection's check and its
    /// registration.
    pub waker: Option<Waker>,
    /// Set with a wake for new deliveries; the connection clears it.
    pub woken: bool,
    /// The attached connection's will, published when it closes unless it
    /// disconnects normally [MQTT-3.1.2-8]. Kept here rather than in the
    /// connection so a shutdown can publish every will before it closes
    /// any connection.
    pub will: Option<Box<LastWill>>,
    /// A will waiting for its Will Delay Interval [MQTT-3.1.3-9].
    pub pending_will: Option<Arc<Message>>,
    /// What the last connection may read: messages it may not are never
    /// queued. Kept after a disconnect, for the offline queue.
    pub acl: Grant,
    /// Kept in the store: every change to it is written there too.
    pub stored: bool,
    /// The last stored sequence number given to a delivery.
    pub last_seq: u64,
    /// When its last connection closed, Unix ms; 0 while attached. Stored
    /// with the session so its expiry counts the time the broker was down.
    pub disconnected_at: u64,
}

/// A client's session. Identity is the allocation: two `Arc<Session>` are the
/// same session when they point at the same one.
#[derive(Debug)]
pub struct Session {
    /// Its own exact allocation: a slice of the CONNECT packet would pin
    /// the whole packet, password included, for the session's life.
    pub client_id: Box<str>,
    /// Unique per session over the broker's life; the origin of its messages
    /// for No Local.
    pub id: u64,
    /// Shared by all sessions of a broker: one pointer, not a copy each.
    pub limits: Arc<SessionLimits>,
    pub state: Mutex<SessionState>,
    /// One permit, held by the attached connection for its whole life
    /// (taken with `forget`, given back when its [`crate::broker::Attached`]
    /// drops); a new connection for the same client id waits for it after
    /// kicking the old one, so two never drive the session at once.
    pub owner: Semaphore,
    /// When the attached connection's keep alive runs out, in deciseconds of
    /// the broker's clock; 0 for none. Checked by one sweeper for all
    /// connections, so an idle connection carries no timer of its own.
    pub keep_alive_deadline: AtomicU32,
    /// When the attached connection's credentials (a token) run out, same
    /// clock; 0 for never. Swept with the keep alive.
    pub auth_deadline: AtomicU32,
}

/// What happened to a delivery offered to a session.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Offer {
    /// Queued; the number of the store op that wrote it, 0 if none.
    Queued(u64),
    /// QoS 0 to an offline session: not kept, by choice (as Mosquitto's
    /// default `queue_qos0_messages false`).
    Skipped,
    Dropped,
    /// Not queued: it would have to be stored and the store is full.
    Refused,
}

impl Session {
    pub fn new(client_id: Box<str>, id: u64, limits: Arc<SessionLimits>, protocol: Protocol) -> Session {
        Session {
            client_id,
            id,
            limits,
            state: Mutex::new(SessionState {
                queue: OutQueue::default(),
                outgoing: Outgoing::default(),
                incoming_qos2: Vec::new(),
                subscriptions: BTreeMap::new(),
                online: false,
                expiry_interval: 0,
                generation: 0,
                protocol,
                dropped: 0,
                kicked: None,
                waker: None,
                woken: false,
                will: None,
                pending_will: None,
                acl: None,
                stored: false,
                last_seq: 0,
                disconnected_at: 0,
            }),
            owner: Semaphore::new(1),
            keep_alive_deadline: AtomicU32::new(0),
            auth_deadline: AtomicU32::new(0),
        }
    }

    /// Queues a delivery and wakes the connection if the queue was empty.
    pub fn offer(&self, mut d: Delivery) -> Offer {
        let mut st = self.state.lock();
        if !st.online && d.qos == QoS::AtMostOnce {
            return Offer::Skipped;
        }
        if let Some(acl) = &st.acl
            && !acl.can_read(&d.msg.topic)
        {
            return Offer::Skipped;
        }
        let store = &self.limits.store;
        let persist = st.stored && d.qos != QoS::AtMostOnce;
        if persist {
            if !store.has_room(d.msg.weight()) {
                st.dropped += 1;
                return Offer::Refused;
            }
            st.last_seq += 1;
            d.seq = st.last_seq;
        }
        let stored = persist.then(|| (d.msg.clone(), d.record(0)));
        let was_empty = st.queue.is_empty();
        let seq = d.seq;
        // The write must come before the delivery can be sent, so a QoS 2
        // delivery knows which op to wait for.
        let written = match stored {
            Some((msg, mut record)) => {
                record.message = store.persist_message(&msg);
                store.put_delivery(&self.client_id, seq, &record)
            }
            None => 0,
        };
        d.written = written;
        match st
            .queue
            .push(d, self.limits.max_queued_messages, self.limits.max_queued_bytes)
        {
            PushOutcome::Queued => {}
            PushOutcome::QueuedEvicted => st.dropped += 1,
            PushOutcome::Dropped => {
                st.dropped += 1;
                if seq != 0 {
                    store.del_delivery(&self.client_id, seq);
                }
                return Offer::Dropped;
            }
        }
        let waker = if was_empty && st.online {
            st.woken = true;
            st.waker.take()
        } else {
            None
        };
        drop(st);
        if let Some(w) = waker {
            w.wake();
        }
        Offer::Queued(written)
    }

    /// Asks the attached connection, if any, to close with `reason`. The
    /// first reason given wins.
    pub fn kick(&self, reason: ReasonCode) {
        let mut st = self.state.lock();
        if !st.online || st.kicked.is_some() {
            return;
        }
        st.kicked = Some(reason);
        let waker = st.waker.take();
        drop(st);
        if let Some(w) = waker {
            w.wake();
        }
    }

    /// Kicks the attached connection if its keep alive ran out by `now`
    /// (deciseconds of the broker's clock) [MQTT-3.1.2-22].
    pub fn check_keep_alive(&self, now: u32) {
        let deadline = self.keep_alive_deadline.load(Ordering::Relaxed);
        if deadline != 0 && now > deadline {
            self.keep_alive_deadline.store(0, Ordering::Relaxed);
            self.kick(ReasonCode::KEEP_ALIVE_TIMEOUT);
        }
        let deadline = self.auth_deadline.load(Ordering::Relaxed);
        if deadline != 0 && now >= deadline {
            self.auth_deadline.store(0, Ordering::Relaxed);
            self.kick(ReasonCode::NOT_AUTHORIZED);
        }
    }

    /// Writes the session's own record as `st` has it now, with `will` (a
    /// delayed will: when it is due, Unix ms, and its message record); the
    /// store op's number.
    pub fn write_record(&self, st: &SessionState, will: Option<(u64, Vec<u8>)>) -> u64 {
        // The queue is in sequence order and everything sent left it from
        // the front: what is still in it was never sent.
        let unsent_from = if st.online || st.disconnected_at == 0 {
            0
        } else {
            st.queue
                .iter()
                .map(|d| d.seq)
                .find(|&s| s != 0)
                .unwrap_or(st.last_seq + 1)
        };
        let record = SessionRecord {
            protocol: st.protocol,
            expiry_interval: st.expiry_interval,
            disconnected_at: st.disconnected_at,
            unsent_from,
            will,
        };
        self.limits.store.put_session(&self.client_id, &record)
    }

    pub fn session_expiry(&self) -> Duration {
        Duration::from_secs(u64::from(self.state.lock().expiry_interval))
    }
}

impl PartialEq for Session {
    fn eq(&self, other: &Self) -> bool {
        std::ptr::eq(self, other)
    }
}

/// A session as a key in the subscription tree: equality and hash by
/// identity, so lookups never compare client id strings.
#[derive(Debug, Clone)]
pub struct SessionRef(pub Arc<Session>);

impl PartialEq for SessionRef {
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.0, &other.0)
    }
}

impl Eq for SessionRef {}

impl std::hash::Hash for SessionRef {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.0.id.hash(state);
    }
}
