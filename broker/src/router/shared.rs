//! Shared subscriptions (`$share/{group}/{filter}`, MQTT 5.0 §4.8.2): each
//! message matching a group goes to one member, chosen round robin among
//! the members whose connection is up.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use parking_lot::{Mutex, RwLock};

use crate::session::{Session, SessionRef};
use crate::topic::SubscriptionTree;

use super::Subscription;

/// One shared subscription group on one filter.
#[derive(Debug)]
pub struct SharedGroup {
    pub name: Box<str>,
    pub filter: Box<str>,
    members: Mutex<Vec<(Arc<Session>, Subscription)>>,
    cursor: AtomicUsize,
}

impl SharedGroup {
    /// Picks the next member round robin, preferring one with a connection
    /// so messages do not wait behind an offline member.
    pub fn pick(&self) -> Option<(Arc<Session>, Subscription)> {
        let members = self.members.lock();
        let n = members.len();
        if n == 0 {
            return None;
        }
        let start = self.cursor.fetch_add(1, Ordering::Relaxed);
        for k in 0..n {
            let (s, sub) = &members[(start + k) % n];
            if s.state.lock().online {
                return Some((s.clone(), *sub));
            }
        }
        let (s, sub) = &members[start % n];
        Some((s.clone(), *sub))
    }

    /// Picks a member other than `leaving`, for redelivery of a message
    /// whose receiver's session ended before acknowledging it.
    pub fn pick_other(&self, leaving: &Arc<Session>) -> Option<(Arc<Session>, Subscription)> {
        let members = self.members.lock();
        let others: Vec<_> = members.iter().filter(|(s, _)| !Arc::ptr_eq(s, leaving)).collect();
        if others.is_empty() {
            return None;
        }
        let start = self.cursor.fetch_add(1, Ordering::Relaxed);
        let online = others
            .iter()
            .cycle()
            .skip(start % others.len())
            .take(others.len())
            .find(|(s, _)| s.state.lock().online);
        let (s, sub) = online.copied().unwrap_or(others[start % others.len()]);
        Some((s.clone(), *sub))
    }
}

#[derive(Debug, Clone)]
struct GroupRef(Arc<SharedGroup>);

impl PartialEq for GroupRef {
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.0, &other.0)
    }
}
impl Eq for GroupRef {}
impl std::hash::Hash for GroupRef {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        (Arc::as_ptr(&self.0) as usize).hash(state);
    }
}

/// Groups by (group name, filter).
type Groups = HashMap<(Box<str>, Box<str>), Arc<SharedGroup>>;

#[derive(Debug, Default)]
pub struct SharedSubscriptions {
    tree: RwLock<SubscriptionTree<GroupRef, ()>>,
    groups: Mutex<Groups>,
}

impl SharedSubscriptions {
    /// Adds or updates `session` in the group; returns true if it was
    /// already a member.
    pub fn subscribe(&self, group: &str, filter: &str, session: &Arc<Session>, sub: Subscription) -> bool {
        let mut groups = self.groups.lock();
        let key = (Box::from(group), Box::from(filter));
        let g = groups
            .entry(key)
            .or_insert_with(|| {
                let g = Arc::new(SharedGroup {
                    name: group.into(),
                    filter: filter.into(),
                    members: Mutex::new(Vec::new()),
                    cursor: AtomicUsize::new(0),
                });
                self.tree.write().insert(filter, GroupRef(g.clone()), ());
                g
            })
            .clone();
        let mut members = g.members.lock();
        match members.iter_mut().find(|(s, _)| Arc::ptr_eq(s, session)) {
            Some(m) => {
                m.1 = sub;
                true
            }
            None => {
                members.push((session.clone(), sub));
                false
            }
        }
    }

    pub fn unsubscribe(&self, group: &str, filter: &str, session: &Arc<Session>) -> bool {
        let mut groups = self.groups.lock();
        let key = (Box::from(group), Box::from(filter));
        let Some(g) = groups.get(&key).cloned() else {
            return false;
        };
        // The members lock is released before the tree lock is taken:
        // publishing takes them in the other order.
        let (removed, empty) = {
            let mut members = g.members.lock();
            let before = members.len();
            members.retain(|(s, _)| !Arc::ptr_eq(s, session));
            (members.len() != before, members.is_empty())
        };
        if empty {
            groups.remove(&key);
            self.tree.write().remove(filter, &GroupRef(g.clone()));
        }
        removed
    }

    /// Calls `f` with the chosen member of every group matching `topic`.
    pub fn for_each_pick(&self, topic: &str, mut f: impl FnMut(&Arc<SharedGroup>, Arc<Session>, Subscription)) {
        let tree = self.tree.read();
        tree.for_each_match(topic, |g, _| {
            if let Some((s, sub)) = g.0.pick() {
                f(&g.0, s, sub);
            }
        });
    }

    pub fn is_member(&self, group: &str, filter: &str, session: &SessionRef) -> bool {
        let groups = self.groups.lock();
        groups
            .get(&(Box::from(group), Box::from(filter)))
            .is_some_and(|g| g.members.lock().iter().any(|(s, _)| Arc::ptr_eq(s, &session.0)))
    }
}
