//! Startup: the broker's state put back from what the store held.

use std::sync::Arc;
use std::time::Duration;

use crate::broker::{Broker, NEVER_EXPIRES};
use crate::metrics::Metrics;
use crate::session::{Delivery, InflightStage, Session};
use crate::store::{Snapshot, StoredSession, decode_message, unix_ms};
use crate::topic::parse_shared;

/// What a restore found, for the startup log line.
#[derive(Debug, Default, Clone, Copy)]
pub struct Restored {
    pub sessions: usize,
    pub expired_sessions: usize,
    pub queued: usize,
    pub expired_messages: usize,
    pub retained: usize,
}

impl Broker {
    /// Rebuilds sessions, subscriptions, queues and retained messages from
    /// `snapshot`. Sessions whose expiry ran out while the broker was down
    /// are ended (their delayed wills published), as are messages whose
    /// expiry did. Must run before any listener accepts.
    pub fn restore(self: &Arc<Self>, mut snapshot: Snapshot) -> Restored {
        let store = self.store().clone();
        let mut r = Restored::default();
        let now = unix_ms();
        for msg in std::mem::take(&mut snapshot.retained) {
            self.router.retained.restore(Arc::new(msg));
            r.retained += 1;
        }
        for topic in std::mem::take(&mut snapshot.expired_retained) {
            store.del_retained(&topic, None);
            r.expired_messages += 1;
        }
        let mut due_wills = Vec::new();
        for stored in std::mem::take(&mut snapshot.sessions) {
            // Connected when the broker stopped: it disconnected then; the
            // store has no better time than now.
            let disconnected_at = match stored.record.disconnected_at {
                0 => now,
                t => t,
            };
            let will = stored.record.will.as_ref().and_then(|(due, bytes)| {
                let msg = decode_message(bytes, 0).ok().flatten()?;
                Some((*due, Arc::new(msg)))
            });
            let expiry = stored.record.expiry_interval;
            let ends_at = disconnected_at.saturating_add(u64::from(expiry) * 1000);
            if expiry != NEVER_EXPIRES && ends_at <= now {
                store.del_session(&stored.client_id, stored.deliveries.len());
                r.expired_sessions += 1;
                // The session's end sends its will, delay or not
                // [MQTT-3.1.3-9].
                due_wills.extend(will.map(|(_, w)| w));
                continue;
            }
            let (session, queued, expired) = self.restore_session(&stored, disconnected_at, &snapshot);
            r.sessions += 1;
            r.queued += queued;
            r.expired_messages += expired;
            let generation = session.state.lock().generation;
            if let Some((due, w)) = will {
                if due <= now {
                    due_wills.push(w);
                    session.write_record(&session.state.lock(), None);
                } else {
                    session.state.lock().pending_will = Some(w);
                    self.schedule_will(session.clone(), generation, Duration::from_millis(due - now));
                }
            }
            if expiry != NEVER_EXPIRES {
                self.schedule_expiry(session, generation, Duration::from_millis(ends_at - now));
            }
        }
        // Every message the sessions hold is tied to its record; those
        // no session holds (their deliveries were acknowledged just before
        // a crash) drop here, and their records with them.
        for (id, msg) in &snapshot.messages {
            match msg {
                Some(m) => store.adopt_message(m, *id, snapshot.message_bytes.get(id).copied().unwrap_or(0)),
                None => {
                    r.expired_messages += 1;
                    store.del_message(*id);
                }
            }
        }
        drop(snapshot.messages);
        for w in due_wills {
            self.publish(&w);
        }
        r
    }

    fn restore_session(
        self: &Arc<Self>,
        stored: &StoredSession,
        disconnected_at: u64,
        snapshot: &Snapshot,
    ) -> (Arc<Session>, usize, usize) {
        let store = self.store();
        let session = Arc::new(Session::new(
            Box::from(stored.client_id.as_str()),
            self.registry.next_id(),
            self.session_limits().clone(),
            stored.record.protocol,
        ));
        let (mut queued, mut expired) = (0, 0);
        {
            let mut st = session.state.lock();
            st.stored = true;
            st.expiry_interval = stored.record.expiry_interval;
            st.disconnected_at = disconnected_at;
            st.incoming_qos2 = stored.incoming_qos2.clone();
            for (filter, sub) in &stored.subscriptions {
                let share = parse_shared(filter).ok().flatten();
                self.router
                    .subscribe(&session, filter, share.as_ref().map(|s| (s.group, s.filter)), *sub);
                st.subscriptions.insert(Box::from(filter.as_str()), *sub);
            }
            Metrics::add(&self.metrics.subscriptions, stored.subscriptions.len() as u64);
            let max_inflight = usize::from(self.limits.max_inflight);
            for (seq, record) in &stored.deliveries {
                st.last_seq = st.last_seq.max(*seq);
                let Some(Some(msg)) = snapshot.messages.get(&record.message) else {
                    store.del_delivery(&stored.client_id, *seq);
                    expired += 1;
                    continue;
                };
                let d = Delivery {
                    msg: msg.clone(),
                    qos: record.qos,
                    retain: record.retain,
                    subscription_id: record.subscription_id,
                    via: None,
                    seq: *seq,
                    written: 0,
                };
                let Some(packet_id) = d.stored_packet_id() else {
                    continue;
                };
                // What may have been sent before the stop goes again as a
                // resend (DUP set, same identifier); PUBREL for the
                // released ones [MQTT-4.4.0-1]. What was queued while the
                // client was away goes as a first send.
                let maybe_sent = stored.record.unsent_from == 0 || *seq < stored.record.unsent_from;
                if record.released {
                    st.outgoing.restore(packet_id, InflightStage::Released, d);
                } else if maybe_sent && st.outgoing.len() < max_inflight && !st.outgoing.uses(packet_id) {
                    st.outgoing.restore(packet_id, InflightStage::Published, d);
                } else {
                    st.queue.push(d, usize::MAX, usize::MAX);
                }
                queued += 1;
            }
        }
        self.registry.insert_if_absent(&session);
        (session, queued, expired)
    }
}
