//! Retained messages: the last retained PUBLISH per topic (MQTT 5.0 §3.3.1.3).

use std::sync::Arc;
use std::time::Instant;

use parking_lot::RwLock;

use crate::topic::TopicMap;

use super::Message;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RetainOutcome {
    Stored,
    Cleared,
    /// The store is at `max_retained_messages` and the topic is new.
    Full,
    /// The disk store has no room for it: not retained.
    NoRoom,
}

#[derive(Debug, Default)]
struct Store {
    map: TopicMap<Arc<Message>>,
    /// Entries outside `$` topics. Only these count against the cap: the
    /// broker's own `$SYS` status must never crowd out clients' messages,
    /// nor be refused because clients filled the store.
    client_topics: usize,
}

#[derive(Debug)]
pub struct Retained {
    store: RwLock<Store>,
    max: usize,
    disk: crate::store::Store,
}

impl Retained {
    pub fn new(max: usize, disk: crate::store::Store) -> Retained {
        Retained {
            store: RwLock::new(Store::default()),
            max,
            disk,
        }
    }

    /// Stores `msg` as the topic's retained message, or clears it when the
    /// payload is empty [MQTT-3.3.1-6] [MQTT-3.3.1-7]; with the store op
    /// the publisher's acknowledgement waits for. `$SYS` status is never
    /// written to disk: it is rebuilt at startup.
    pub fn store(&self, msg: &Arc<Message>) -> (RetainOutcome, u64) {
        let counted = usize::from(!msg.topic.starts_with('$'));
        let mut store = self.store.write();
        if msg.payload.is_empty() {
            if let Some(old) = store.map.remove(&msg.topic) {
                store.client_topics -= counted;
                let written = if counted == 1 {
                    self.disk.del_retained(&msg.topic, Some(&old))
                } else {
                    0
                };
                return (RetainOutcome::Cleared, written);
            }
            return (RetainOutcome::Cleared, 0);
        }
        if counted == 1 && store.client_topics >= self.max && store.map.get(&msg.topic).is_none() {
            return (RetainOutcome::Full, 0);
        }
        if counted == 1 && !self.disk.has_room(msg.weight()) {
            return (RetainOutcome::NoRoom, 0);
        }
        // Written under the lock, so two publishes to one topic reach the
        // disk in the order they replaced each other here.
        let written = if counted == 1 { self.disk.put_retained(msg) } else { 0 };
        match store.map.insert(&msg.topic, msg.clone()) {
            None => store.client_topics += counted,
            Some(old) if counted == 1 => self.disk.forget_retained(&old),
            Some(_) => {}
        }
        (RetainOutcome::Stored, written)
    }

    /// Puts back a retained message read from the store at startup.
    pub fn restore(&self, msg: Arc<Message>) {
        let mut store = self.store.write();
        let topic = msg.topic.clone();
        if store.map.insert(&topic, msg).is_none() {
            store.client_topics += 1;
        }
    }

    /// Retained messages matching `filter`, skipping expired ones.
    pub fn matching(&self, filter: &str, now: Instant) -> Vec<Arc<Message>> {
        let mut out = Vec::new();
        self.store.read().map.for_each_matching(filter, |_, m| {
            if !m.is_expired(now) {
                out.push(m.clone());
            }
        });
        out
    }

    /// Retained messages on client topics, the ones `max` bounds.
    pub fn len(&self) -> usize {
        self.store.read().client_topics
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;
    use bytestring::ByteString;

    use super::*;
    use crate::codec::QoS;

    fn msg(topic: &str, payload: &'static str) -> Arc<Message> {
        Arc::new(Message {
            topic: ByteString::from(topic),
            payload: Bytes::from_static(payload.as_bytes()),
            qos: QoS::AtMostOnce,
            retain: true,
            properties: None,
            expires_at: None,
            origin: 0,
            stored: Default::default(),
        })
    }

    #[test]
    fn sys_topics_do_not_count_against_the_cap() {
        let r = Retained::new(2, crate::store::Store::default());
        for i in 0..20 {
            assert_eq!(
                r.store(&msg(&format!("$SYS/broker/x{i}"), "1")).0,
                RetainOutcome::Stored
            );
        }
        assert_eq!(r.store(&msg("a", "1")).0, RetainOutcome::Stored);
        assert_eq!(r.store(&msg("b", "1")).0, RetainOutcome::Stored);
        assert_eq!(r.store(&msg("c", "1")).0, RetainOutcome::Full);
        // Replacing an existing topic is always allowed.
        assert_eq!(r.store(&msg("a", "2")).0, RetainOutcome::Stored);
        assert_eq!(r.len(), 2);
        assert_eq!(r.store(&msg("a", "")).0, RetainOutcome::Cleared);
        assert_eq!(r.store(&msg("c", "1")).0, RetainOutcome::Stored);
        assert_eq!(r.matching("#", Instant::now()).len(), 2);
        assert_eq!(r.matching("$SYS/#", Instant::now()).len(), 20);
    }
}
