//! Per-client session state: what survives a connection.
//!
//! A [`Session`] is shared between the router (which queues deliveries into
//! it) and at most one connection (which drains it). Its state sits behind a
//! short-held mutex; nothing here does I/O or waits on time, so the rules are
//! testable without sockets. Lock order: the router's tree lock may be held
//! while a session lock is taken, never the other way round.

mod inflight;
mod queue;
mod registry;

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU8, Ordering};
use std::time::Duration;

use bytestring::ByteString;
use parking_lot::Mutex;
use tokio::sync::Notify;

pub use inflight::{Inflight, InflightStage, Outgoing};
pub use queue::{OutQueue, PushOutcome};
pub use registry::Registry;

use crate::codec::{Protocol, QoS, ReasonCode};
use crate::router::{Message, SharedGroup, Subscription};

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
}

impl Delivery {
    pub fn new(msg: Arc<Message>, qos: QoS, retain: bool) -> Delivery {
        Delivery {
            msg,
            qos,
            retain,
            subscription_id: None,
            via: None,
        }
    }
}

/// Bounds applied to one session, from `[limits]`.
#[derive(Debug, Clone, Copy)]
pub struct SessionLimits {
    pub max_queued_messages: usize,
    pub max_queued_bytes: usize,
    pub max_inflight: u16,
}

#[derive(Debug)]
pub struct SessionState {
    pub queue: OutQueue,
    pub outgoing: Outgoing,
    /// Packet identifiers of QoS 2 PUBLISHes received and answered with
    /// PUBREC, awaiting PUBREL [MQTT-4.3.3-9].
    pub incoming_qos2: Vec<u16>,
    pub subscriptions: HashMap<Box<str>, Subscription>,
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
    /// Asks the attached connection to close (takeover, shutdown). One per
    /// connection, so a kick meant for an old connection can never hit a
    /// new one.
    pub kick: Option<Arc<Kick>>,
    /// A will waiting for its Will Delay Interval [MQTT-3.1.3-9].
    pub pending_will: Option<Arc<Message>>,
}

/// A client's session. Identity is the allocation: two `Arc<Session>` are the
/// same session when they point at the same one.
#[derive(Debug)]
pub struct Session {
    pub client_id: ByteString,
    /// Unique per session over the broker's life; the origin of its messages
    /// for No Local.
    pub id: u64,
    pub limits: SessionLimits,
    pub state: Mutex<SessionState>,
    /// Wakes the attached connection when the queue goes from empty to not.
    pub wake: Notify,
    /// Held by the attached connection for its whole life; a new connection
    /// for the same client id takes it after kicking the old one, so the two
    /// never drive the session at once.
    pub owner: Arc<tokio::sync::Mutex<()>>,
}

/// A request for one connection to close, with the reason its v5 client is
/// told. Signalled through the session's `wake`, so a connection waits on a
/// single notification for both new deliveries and kicks.
#[derive(Debug, Default)]
pub struct Kick(AtomicU8);

impl Kick {
    pub fn reason(&self) -> Option<ReasonCode> {
        match self.0.load(Ordering::Acquire) {
            0 => None,
            r => Some(ReasonCode(r)),
        }
    }
}

/// What happened to a delivery offered to a session.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Offer {
    Queued,
    /// QoS 0 to an offline session: not kept, by choice (as Mosquitto's
    /// default `queue_qos0_messages false`).
    Skipped,
    Dropped,
}

impl Session {
    pub fn new(client_id: ByteString, id: u64, limits: SessionLimits, protocol: Protocol) -> Session {
        Session {
            client_id,
            id,
            limits,
            state: Mutex::new(SessionState {
                queue: OutQueue::default(),
                outgoing: Outgoing::default(),
                incoming_qos2: Vec::new(),
                subscriptions: HashMap::new(),
                online: false,
                expiry_interval: 0,
                generation: 0,
                protocol,
                dropped: 0,
                kick: None,
                pending_will: None,
            }),
            wake: Notify::new(),
            owner: Arc::new(tokio::sync::Mutex::new(())),
        }
    }

    /// Queues a delivery and wakes the connection if the queue was empty.
    pub fn offer(&self, d: Delivery) -> Offer {
        let mut st = self.state.lock();
        if !st.online && d.qos == QoS::AtMostOnce {
            return Offer::Skipped;
        }
        let was_empty = st.queue.is_empty();
        match st
            .queue
            .push(d, self.limits.max_queued_messages, self.limits.max_queued_bytes)
        {
            PushOutcome::Queued => {}
            PushOutcome::QueuedEvicted => st.dropped += 1,
            PushOutcome::Dropped => {
                st.dropped += 1;
                return Offer::Dropped;
            }
        }
        let online = st.online;
        drop(st);
        if was_empty && online {
            self.wake.notify_one();
        }
        Offer::Queued
    }

    /// Asks the attached connection, if any, to close with `reason`.
    pub fn kick(&self, reason: ReasonCode) {
        let kick = self.state.lock().kick.take();
        if let Some(kick) = kick {
            kick.0.store(reason.0, Ordering::Release);
            self.wake.notify_one();
        }
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
