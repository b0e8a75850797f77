//! The broker's shared state and the session lifecycle: attach a connection
//! to a session (new, resumed, taken over), detach it, expire it, and
//! publish wills.
//!
//! Everything a connection needs from the rest of the broker goes through
//! [`Broker`]; it does no socket I/O.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use bytestring::ByteString;

use crate::auth::Grant;
use crate::codec::{Protocol, ReasonCode};
use crate::config::Limits;
use crate::metrics::Metrics;
use crate::router::{FanOut, Message, RetainOutcome, Router};
use crate::session::{Registry, Session, SessionLimits};
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
    pub fn new(limits: Limits) -> Broker {
        let session_limits = Arc::new(SessionLimits {
            max_queued_messages: limits.max_queued_messages,
            max_queued_bytes: usize::try_from(limits.max_queued_bytes).unwrap_or(usize::MAX),
            max_inflight: limits.max_inflight,
        });
        Broker {
            router: Router::new(limits.max_retained_messages),
            limits,
            registry: Registry::default(),
            metrics: Metrics::default(),
            started: Instant::now(),
            session_limits,
            clock_origin: tokio::time::Instant::now(),
            shutting_down: AtomicBool::new(false),
        }
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
            let broker = self.clone();
            let s = session.clone();
            tokio::spawn(async move {
                tokio::time::sleep(Duration::from_secs(u64::from(delay))).await;
                broker.fire_pending_will(&s, generation);
            });
        }

        if expiry_interval == 0 {
            self.end_session(&session);
        } else if expiry_interval != NEVER_EXPIRES {
            let broker = self.clone();
            let after = Duration::from_secs(u64::from(expiry_interval));
            tokio::spawn(async move {
                tokio::time::sleep(after).await;
                let current = session.state.lock().generation == generation;
                if current {
                    tracing::debug!(client_id = %session.client_id, "session expired");
                    broker.end_session(&session);
                }
            });
        }
    }

    fn fire_pending_will(&self, session: &Arc<Session>, generation: u64) {
        let will = {
            let mut st = session.state.lock();
            if st.generation != generation {
                return;
            }
            st.pending_will.take()
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
            wills.extend(st.pending_will.take());
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
        if msg.retain && self.router.retained.store(msg) == RetainOutcome::Full {
            tracing::warn!(topic = %msg.topic, max = self.limits.max_retained_messages, "retained message store is full; message delivered but not retained");
        }
        let out = self.router.publish(msg);
        Metrics::add(&self.metrics.publish_dropped, out.dropped as u64);
        out
    }
}

#[cfg(test)]
#[path = "broker_tests.rs"]
mod tests;
