//! The broker's shared state and the session lifecycle: attach a connection
//! to a session (new, resumed, taken over), detach it, expire it, and
//! publish wills.
//!
//! Everything a connection needs from the rest of the broker goes through
//! [`Broker`]; it does no socket I/O.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::time::{Duration, Instant};

use bytestring::ByteString;

use crate::auth::Grant;
use crate::codec::{Protocol, ReasonCode};
use crate::config::Limits;
use crate::metrics::Metrics;
use crate::router::{FanOut, Message, RetainOutcome, Router};
use crate::session::{Registry, Session, SessionLimits};
use crate::store::{Store, encode_message, unix_ms};
use crate::topic::parse_shared;

/// How long a new connection waits for the one it takes over to let go.
const TAKEOVER_TIMEOUT: Duration = Duration::from_secs(5);

/// Session expiry interval that means "never" [MQTT-3.1.2-23].
pub const NEVER_EXPIRES: u32 = u32::MAX;

#[derive(Debug)]
pub struct Broker {
    pub limits: Limits,
    pub registry: Registry,
    pub router: Router,
    pub metrics: Metrics,
    pub started: Instant,
    session_limits: Arc<SessionLimits>,
    /// Origin of [`Broker::clock_ds`]; tokio's clock, so tests can pause it.
    clock_origin: tokio::time::Instant,
    /// Set once shutdown begins, so a connection that attaches after the
    /// others were kicked is kicked too.
    shutting_down: AtomicBool,
    /// When "store is full" was last logged (broker clock), so a flood of
    /// refusals logs once in a while, not once per message.
    last_full_warning: AtomicU32,
}

/// A connection's hold on its session: owns the session's single owner
/// permit and gives it back when dropped, however the connection ends.
#[derive(Debug)]
pub struct Attached {
    pub session: Arc<Session>,
    pub session_present: bool,
}

impl Drop for Attached {
    fn drop(&mut self) {
        self.session.owner.add_permits(1);
    }
}

#[derive(Debug, thiserror::Error)]
pub enum AttachError {
    #[error("the connection holding this client id did not let go within {0:?}")]
    TakeoverTimeout(Duration),
}

impl Broker {
    pub fn new(limits: Limits, store: Store) -> Broker {
        let session_limits = Arc::new(SessionLimits {
            max_queued_messages: limits.max_queued_messages,
            max_queued_bytes: usize::try_from(limits.max_queued_bytes).unwrap_or(usize::MAX),
            max_inflight: limits.max_inflight,
            store: store.clone(),
        });
        Broker {
            router: Router::new(limits.max_retained_messages, store),
            limits,
            registry: Registry::default(),
            metrics: Metrics::default(),
            started: Instant::now(),
            session_limits,
            clock_origin: tokio::time::Instant::now(),
            shutting_down: AtomicBool::new(false),
            last_full_warning: AtomicU32::new(0),
        }
    }

    pub fn store(&self) -> &Store {
        &self.session_limits.store
    }

    /// The broker's coarse clock: deciseconds since start, wrapping after
    /// 13 years. Cheap to compare and to keep in an `AtomicU32`.
    pub fn clock_ds(&self) -> u32 {
        (self.clock_origin.elapsed().as_millis() / 100) as u32
    }

    /// The broker clock's reading when `unix_secs` comes, for deadlines
    /// given as wall-clock times (a token's `exp`); never 0.
    pub fn clock_ds_at(&self, unix_secs: u64) -> u32 {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        let ahead = u32::try_from(unix_secs.saturating_sub(now).saturating_mul(10)).unwrap_or(u32::MAX);
        self.clock_ds().saturating_add(ahead).max(1)
    }

    /// Kicks every connection whose keep alive ran out. Run a few times a
    /// second by one task, in place of a timer per connection.
    pub fn sweep_keep_alive(&self) {
        let now = self.clock_ds();
        self.registry.for_each(|s| s.check_keep_alive(now));
    }

    /// Attaches a connection to the session of `client_id`, taking it over
    /// from a connection that holds it [MQTT-3.1.4-3], and discarding it
    /// first when `clean_start` is set [MQTT-3.1.2-4].
    pub async fn attach(
        self: &Arc<Self>,
        client_id: &ByteString,
        clean_start: bool,
        protocol: Protocol,
        expiry_interval: u32,
        acl: Grant,
    ) -> Result<Attached, AttachError> {
        loop {
            let Some(old) = self.registry.get(client_id) else {
                let session = Arc::new(Session::new(
                    Box::from(&**client_id),
                    self.registry.next_id(),
                    self.session_limits.clone(),
                    protocol,
                ));
                // A fresh session: nobody else can hold its permit.
                let Ok(permit) = session.owner.try_acquire() else {
                    continue;
                };
                if !self.registry.insert_if_absent(&session) {
                    continue;
                }
                permit.forget();
                return Ok(self.finish_attach(session, false, protocol, expiry_interval, acl));
            };
            old.kick(ReasonCode::SESSION_TAKEN_OVER);
            match tokio::time::timeout(TAKEOVER_TIMEOUT, old.owner.acquire()).await {
                Err(_) => return Err(AttachError::TakeoverTimeout(TAKEOVER_TIMEOUT)),
                // The semaphore is never closed.
                Ok(Err(_)) => continue,
                Ok(Ok(permit)) => permit.forget(),
            }
            if !self.registry.is_current(&old) {
                old.owner.add_permits(1);
                continue;
            }
            if clean_start {
                old.owner.add_permits(1);
                self.end_session(&old);
                continue;
            }
            return Ok(self.finish_attach(old, true, protocol, expiry_interval, acl));
        }
    }

    /// Marks `session` online for a connection whose owner permit has been
    /// taken (and forgotten): the returned [`Attached`] gives it back.
    fn finish_attach(
        &self,
        session: Arc<Session>,
        session_present: bool,
        protocol: Protocol,
        expiry_interval: u32,
        acl: Grant,
    ) -> Attached {
        {
            let mut st = session.state.lock();
            // Set under the lock that marks it online: nothing is queued for
            // this connection without its read permissions.
            st.acl = acl;
            if let Some(grant) = st.acl.clone() {
                // What was queued under older permissions (before a reload,
                // or before a restart, when none are known) is checked
                // against the new ones.
                for d in st.queue.retain(|d| grant.can_read(&d.msg.topic)) {
                    if d.seq != 0 {
                        self.session_limits.store.del_delivery(&session.client_id, d.seq);
                    }
                }
            }
            st.online = true;
            st.generation += 1;
            st.protocol = protocol;
            st.expiry_interval = expiry_interval;
            st.kicked = None;
            st.woken = false;
            st.waker = None;
            // A reconnect before the will delay ran out cancels the will
            // [MQTT-3.1.3-9].
            st.pending_will = None;
            st.disconnected_at = 0;
            let store = &self.session_limits.store;
            if store.is_persistent() {
                if expiry_interval > 0 {
                    if !st.stored {
                        // A session that outlives its connection from now
                        // on. Its queue stays in memory only: it can be
                        // non-empty here just after a takeover of a
                        // connection that had asked for no session.
                        st.stored = true;
                        for (filter, sub) in &st.subscriptions {
                            store.put_subscription(&session.client_id, filter, sub);
                        }
                    }
                    session.write_record(&st, None);
                } else if st.stored {
                    store.del_session(&session.client_id, st.queue.len() + st.outgoing.len());
                    st.stored = false;
                }
            }
        }
        Metrics::add(&self.metrics.clients_connected, 1);
        let attached = Attached {
            session,
            session_present,
        };
        if self.shutting_down.load(Ordering::Acquire) {
            attached.session.kick(ReasonCode::SERVER_SHUTTING_DOWN);
        }
        attached
    }

    /// Detaches the connection from its session. `will` is the connection's
    /// will when it must be published (not after a normal DISCONNECT), with
    /// its delay in seconds. `expiry_interval` is the one in force at the
    /// end, as DISCONNECT may change it [MQTT-3.14.2-2].
    pub fn detach(self: &Arc<Self>, attached: Attached, will: Option<(Arc<Message>, u32)>, expiry_interval: u32) {
        let session = attached.session.clone();
        // The will goes when its delay runs out or the session ends,
        // whichever comes first [MQTT-3.1.3-9].
        let (now_will, delayed_will) = match will {
            Some((w, delay)) if delay > 0 && expiry_interval > 0 => (None, Some((w, delay.min(expiry_interval)))),
            Some((w, _)) => (Some(w), None),
            None => (None, None),
        };
        let generation = {
            let mut st = session.state.lock();
            st.online = false;
            st.kicked = None;
            st.waker = None;
            st.woken = false;
            st.generation += 1;
            st.expiry_interval = expiry_interval;
            // Set before the owner lock is released, so a connection that
            // resumes the session right away is sure to cancel it.
            st.pending_will = delayed_will.as_ref().map(|(w, _)| w.clone());
            st.disconnected_at = unix_ms();
            if st.stored && expiry_interval > 0 {
                let will = delayed_will
                    .as_ref()
                    .map(|(w, delay)| (st.disconnected_at + u64::from(*delay) * 1000, encode_message(w)));
                session.write_record(&st, will);
            }
            let dropped = st.queue.drop_qos0();
            Metrics::add(&self.metrics.publish_dropped, dropped as u64);
            st.generation
        };
        session.keep_alive_deadline.store(0, Ordering::Relaxed);
        session.auth_deadline.store(0, Ordering::Relaxed);
        Metrics::sub(&self.metrics.clients_connected, 1);
        // Gives the owner permit back.
        drop(attached);

        if let Some(will) = now_will {
            self.publish(&will);
        }
        if let Some((_, delay)) = delayed_will {
            self.schedule_will(session.clone(), generation, Duration::from_secs(u64::from(delay)));
        }

        if expiry_interval == 0 {
            self.end_session(&session);
        } else if expiry_interval != NEVER_EXPIRES {
            self.schedule_expiry(session, generation, Duration::from_secs(u64::from(expiry_interval)));
        }
    }

    /// Ends `session` after `after`, unless a connection attached to it in
    /// the meantime.
    pub(crate) fn schedule_expiry(self: &Arc<Self>, session: Arc<Session>, generation: u64, after: Duration) {
        let broker = self.clone();
        tokio::spawn(async move {
            tokio::time::sleep(after).await;
            let current = session.state.lock().generation == generation;
            if current {
                tracing::debug!(client_id = %session.client_id, "session expired");
                broker.end_session(&session);
            }
        });
    }

    /// Publishes `session`'s pending will after `after`, unless a
    /// connection attached to it in the meantime.
    pub(crate) fn schedule_will(self: &Arc<Self>, session: Arc<Session>, generation: u64, after: Duration) {
        let broker = self.clone();
        tokio::spawn(async move {
            tokio::time::sleep(after).await;
            broker.fire_pending_will(&session, generation);
        });
    }

    pub(crate) fn session_limits(&self) -> &Arc<SessionLimits> {
        &self.session_limits
    }

    fn fire_pending_will(&self, session: &Arc<Session>, generation: u64) {
        let will = {
            let mut st = session.state.lock();
            if st.generation != generation {
                return;
            }
            let will = st.pending_will.take();
            if will.is_some() && st.stored {
                // Published now: a restart must not publish it again.
                session.write_record(&st, None);
            }
            will
        };
        if let Some(will) = will {
            self.publish(&will);
        }
    }

    /// Ends a session: its subscriptions go, unacknowledged shared-group
    /// messages go to another member, and a pending will is published.
    pub fn end_session(&self, session: &Arc<Session>) {
        if !self.registry.remove(session) {
            return;
        }
        let (subscriptions, queued, inflight, will) = {
            let mut st = session.state.lock();
            if st.stored {
                st.stored = false;
                self.session_limits
                    .store
                    .del_session(&session.client_id, st.queue.len() + st.outgoing.len());
            }
            (
                std::mem::take(&mut st.subscriptions),
                st.queue.drain_all(),
                st.outgoing.drain_all(),
                st.pending_will.take(),
            )
        };
        Metrics::sub(&self.metrics.subscriptions, subscriptions.len() as u64);
        for filter in subscriptions.keys() {
            let share = parse_shared(filter).ok().flatten();
            self.router
                .unsubscribe(session, filter, share.as_ref().map(|s| (s.group, s.filter)));
        }
        // A QoS 2 message whose delivery had started is never sent to another
        // member [MQTT-4.8.2-5]; QoS 1 in flight and anything still queued
        // is [MQTT-4.8.2-6].
        let unstarted = inflight
            .into_iter()
            .map(|i| i.delivery)
            .filter(|d| d.qos != crate::codec::QoS::ExactlyOnce);
        for d in unstarted.chain(queued) {
            if d.via.is_some() {
                self.router.redeliver_shared(session, d);
            }
        }
        if let Some(will) = will {
            self.publish(&will);
        }
    }

    /// Asks every attached connection, and any that attaches from now on,
    /// to close for shutdown.
    ///
    /// Sessions live in memory, so every one ends with the broker and every
    /// will is due now, delayed or not [MQTT-3.1.3-9]. They are all
    /// published before any connection is told to close, so subscribers
    /// still connected receive them ahead of their DISCONNECT.
    pub fn begin_shutdown(&self) {
        self.shutting_down.store(true, Ordering::Release);
        let sessions = self.registry.all();
        let mut wills = Vec::new();
        for s in &sessions {
            let mut st = s.state.lock();
            if let Some(w) = st.will.take() {
                wills.push(Arc::new(Message::from_will(*w, s.id)));
            }
            if let Some(w) = st.pending_will.take() {
                wills.push(w);
                if st.stored {
                    s.write_record(&st, None);
                }
            }
        }
        for w in &wills {
            self.publish(w);
        }
        for s in &sessions {
            s.kick(ReasonCode::SERVER_SHUTTING_DOWN);
        }
    }

    /// Routes an accepted message: stores or clears it as retained, then
    /// offers it to every matching subscription.
    pub fn publish(&self, msg: &Arc<Message>) -> FanOut {
        let mut retained = (RetainOutcome::Stored, 0);
        if msg.retain {
            retained = self.router.retained.store(msg);
            if retained.0 == RetainOutcome::Full {
                tracing::warn!(topic = %msg.topic, max = self.limits.max_retained_messages, "retained message store is full; message delivered but not retained");
            }
        }
        let mut out = self.router.publish(msg);
        out.written = out.written.max(retained.1);
        if retained.0 == RetainOutcome::NoRoom {
            out.refused += 1;
        }
        if out.refused > 0 {
            self.warn_store_full(msg, out.refused);
        }
        Metrics::add(&self.metrics.publish_dropped, out.dropped as u64);
        out
    }

    fn warn_store_full(&self, msg: &Message, refused: usize) {
        let now = self.clock_ds();
        let last = self.last_full_warning.load(Ordering::Relaxed);
        if last != 0 && now.wrapping_sub(last) < 100 {
            return;
        }
        self.last_full_warning.store(now.max(1), Ordering::Relaxed);
        let (_, refusals, bytes) = self.store().stats().unwrap_or_default();
        tracing::warn!(
            topic = %msg.topic,
            sessions = refused,
            stored_bytes = bytes,
            refused_total = refusals,
            "store is full (store.max_bytes reached or the disk refuses writes): QoS 1/2 messages that must be stored are refused (v5: 0x97, 3.1.1: not acknowledged); QoS 0 still flows"
        );
    }
}

#[cfg(test)]
#[path = "broker_tests.rs"]
mod tests;
