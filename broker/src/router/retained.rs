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
}

#[derive(Debug)]
pub struct Retained {
    map: RwLock<TopicMap<Arc<Message>>>,
    max: usize,
}

impl Retained {
    pub fn new(max: usize) -> Retained {
        Retained {
            map: RwLock::new(TopicMap::default()),
            max,
        }
    }

    /// Stores `msg` as the topic's retained message, or clears it when the
    /// payload is empty [MQTT-3.3.1-6] [MQTT-3.3.1-7].
    pub fn store(&self, msg: &Arc<Message>) -> RetainOutcome {
        let mut map = self.map.write();
        if msg.payload.is_empty() {
            map.remove(&msg.topic);
            return RetainOutcome::Cleared;
        }
        if map.len() >= self.max && map.get(&msg.topic).is_none() {
            return RetainOutcome::Full;
        }
        map.insert(&msg.topic, msg.clone());
        RetainOutcome::Stored
    }

    /// Retained messages matching `filter`, skipping expired ones.
    pub fn matching(&self, filter: &str, now: Instant) -> Vec<Arc<Message>> {
        let mut out = Vec::new();
        self.map.read().for_each_matching(filter, |_, m| {
            if !m.is_expired(now) {
                out.push(m.clone());
            }
        });
        out
    }

    pub fn len(&self) -> usize {
        self.map.read().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}
