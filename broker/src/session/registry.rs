//! Sessions by client identifier.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use bytestring::ByteString;
use parking_lot::Mutex;

use super::Session;

#[derive(Debug, Default)]
pub struct Registry {
    sessions: Mutex<HashMap<ByteString, Arc<Session>>>,
    next_id: AtomicU64,
}

impl Registry {
    pub fn get(&self, client_id: &str) -> Option<Arc<Session>> {
        self.sessions.lock().get(client_id).cloned()
    }

    /// A fresh session identity; never 0, which marks the broker's own
    /// messages.
    pub fn next_id(&self) -> u64 {
        self.next_id.fetch_add(1, Ordering::Relaxed) + 1
    }

    /// Registers `session` unless another one holds its client id.
    pub fn insert_if_absent(&self, session: &Arc<Session>) -> bool {
        let mut map = self.sessions.lock();
        if map.contains_key(&session.client_id) {
            return false;
        }
        map.insert(session.client_id.clone(), session.clone());
        true
    }

    /// Removes `session` only if it is still the one registered under its
    /// client id: a newer session with the same id must survive an old
    /// one's cleanup.
    pub fn remove(&self, session: &Arc<Session>) -> bool {
        let mut map = self.sessions.lock();
        match map.get(&session.client_id) {
            Some(current) if Arc::ptr_eq(current, session) => {
                map.remove(&session.client_id);
                true
            }
            _ => false,
        }
    }

    pub fn is_current(&self, session: &Arc<Session>) -> bool {
        self.sessions
            .lock()
            .get(&session.client_id)
            .is_some_and(|s| Arc::ptr_eq(s, session))
    }

    pub fn len(&self) -> usize {
        self.sessions.lock().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn all(&self) -> Vec<Arc<Session>> {
        self.sessions.lock().values().cloned().collect()
    }
}
