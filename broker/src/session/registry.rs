//! Sessions by client identifier.

use std::borrow::Borrow;
use std::collections::HashSet;
use std::hash::{Hash, Hasher};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use parking_lot::Mutex;

use super::Session;

/// A session keyed by its own client id, so the table holds one pointer per
/// session instead of a copy of the id next to it.
#[derive(Debug)]
struct ById(Arc<Session>);

impl Borrow<str> for ById {
    fn borrow(&self) -> &str {
        &self.0.client_id
    }
}

impl PartialEq for ById {
    fn eq(&self, other: &Self) -> bool {
        self.0.client_id == other.0.client_id
    }
}

impl Eq for ById {}

impl Hash for ById {
    // Must hash as the `str` it borrows as.
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.0.client_id.hash(state);
    }
}

#[derive(Debug, Default)]
pub struct Registry {
    sessions: Mutex<HashSet<ById>>,
    next_id: AtomicU64,
}

impl Registry {
    pub fn get(&self, client_id: &str) -> Option<Arc<Session>> {
        self.sessions.lock().get(client_id).map(|s| s.0.clone())
    }

    /// A fresh session identity; never 0, which marks the broker's own
    /// messages.
    pub fn next_id(&self) -> u64 {
        self.next_id.fetch_add(1, Ordering::Relaxed) + 1
    }

    /// Registers `session` unless another one holds its client id.
    pub fn insert_if_absent(&self, session: &Arc<Session>) -> bool {
        let mut set = self.sessions.lock();
        if set.contains(&*session.client_id) {
            return false;
        }
        set.insert(ById(session.clone()));
        true
    }

    /// Removes `session` only if it is still the one registered under its
    /// client id: a newer session with the same id must survive an old
    /// one's cleanup.
    pub fn remove(&self, session: &Arc<Session>) -> bool {
        let mut set = self.sessions.lock();
        match set.get(&*session.client_id) {
            Some(current) if Arc::ptr_eq(&current.0, session) => {
                set.remove(&*session.client_id);
                let len = set.len();
                if set.capacity() > 64 && len < set.capacity() / 4 {
                    // Give back the table of a past connection storm.
                    set.shrink_to(len * 2);
                }
                true
            }
            _ => false,
        }
    }

    pub fn is_current(&self, session: &Arc<Session>) -> bool {
        self.sessions
            .lock()
            .get(&*session.client_id)
            .is_some_and(|s| Arc::ptr_eq(&s.0, session))
    }

    pub fn len(&self) -> usize {
        self.sessions.lock().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Visits every session under the registry lock: `f` must be quick and
    /// must not touch the registry.
    pub fn for_each(&self, mut f: impl FnMut(&Arc<Session>)) {
        for s in self.sessions.lock().iter() {
            f(&s.0);
        }
    }

    pub fn all(&self) -> Vec<Arc<Session>> {
        self.sessions.lock().iter().map(|s| s.0.clone()).collect()
    }
}
