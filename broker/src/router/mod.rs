//! Fan-out: from one accepted PUBLISH to the queues of every session whose
//! subscription matches.
//!
//! Owns the subscription tree, shared subscription groups and retained
//! messages. Never touches a socket: it only offers [`Delivery`]s to
//! sessions, whose connections encode and write them. One `Arc<Message>` is
//! shared by all deliveries of a publish.

mod message;
mod retained;
mod shared;

use std::sync::Arc;
use std::time::Instant;

use parking_lot::RwLock;

pub use message::Message;
pub use retained::{RetainOutcome, Retained};
pub use shared::{SharedGroup, SharedSubscriptions};

use crate::codec::QoS;
use crate::session::{Delivery, Offer, Session, SessionRef};
use crate::store::Store;
use crate::topic::SubscriptionTree;

/// The options of one subscription, kept in the tree.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Subscription {
    pub qos: QoS,
    pub no_local: bool,
    pub retain_as_published: bool,
    pub retain_handling: u8,
    pub id: Option<u32>,
}

/// What one publish reached.
#[derive(Debug, Default, Clone, Copy)]
pub struct FanOut {
    pub matched: usize,
    pub dropped: usize,
    /// Sessions that could not store it (the store is full).
    pub refused: usize,
    /// The last store op it caused; its acknowledgement waits for it.
    pub written: u64,
}

impl FanOut {
    fn count(&mut self, offer: Offer) {
        match offer {
            Offer::Queued(written) => self.written = self.written.max(written),
            Offer::Dropped => self.dropped += 1,
            Offer::Refused => self.refused += 1,
            Offer::Skipped => {}
        }
    }
}

#[derive(Debug)]
pub struct Router {
    subs: RwLock<SubscriptionTree<SessionRef, Subscription>>,
    shared: SharedSubscriptions,
    pub retained: Retained,
}

impl Router {
    pub fn new(max_retained: usize, store: Store) -> Router {
        Router {
            subs: RwLock::new(SubscriptionTree::default()),
            shared: SharedSubscriptions::default(),
            retained: Retained::new(max_retained, store),
        }
    }

    /// Adds or replaces a subscription; returns true if it replaced one
    /// [MQTT-3.8.4-3]. `filter` is the full filter, `$share/...` included.
    pub fn subscribe(
        &self,
        session: &Arc<Session>,
        filter: &str,
        share: Option<(&str, &str)>,
        sub: Subscription,
    ) -> bool {
        match share {
            Some((group, inner)) => self.shared.subscribe(group, inner, session, sub),
            None => self
                .subs
                .write()
                .insert(filter, SessionRef(session.clone()), sub)
                .is_some(),
        }
    }

    pub fn unsubscribe(&self, session: &Arc<Session>, filter: &str, share: Option<(&str, &str)>) -> bool {
        match share {
            Some((group, inner)) => self.shared.unsubscribe(group, inner, session),
            None => self.subs.write().remove(filter, &SessionRef(session.clone())).is_some(),
        }
    }

    /// Offers `msg` to every matching session. Called with no session lock
    /// held (see the lock order in `session`).
    pub fn publish(&self, msg: &Arc<Message>) -> FanOut {
        let mut out = FanOut::default();
        {
            let tree = self.subs.read();
            tree.for_each_match(&msg.topic, |session, sub| {
                if sub.no_local && session.0.id == msg.origin {
                    return;
                }
                out.matched += 1;
                out.count(session.0.offer(delivery_for(msg, sub, None)));
            });
        }
        self.shared.for_each_pick(&msg.topic, |group, session, sub| {
            out.matched += 1;
            out.count(session.offer(delivery_for(msg, &sub, Some(group.clone()))));
        });
        out
    }

    /// Offers a message that `leaving` will never acknowledge to another
    /// member of the shared group it came through [MQTT-4.8.2-6].
    pub fn redeliver_shared(&self, leaving: &Arc<Session>, d: Delivery) {
        let Some(group) = d.via.clone() else { return };
        if let Some((session, sub)) = group.pick_other(leaving) {
            session.offer(delivery_for(&d.msg, &sub, Some(group)));
        }
    }

    /// Retained messages a new subscription should receive, as deliveries
    /// with RETAIN set [MQTT-3.3.1-8].
    pub fn retained_for(&self, filter: &str, sub: &Subscription, now: Instant) -> Vec<Delivery> {
        self.retained
            .matching(filter, now)
            .into_iter()
            .map(|m| {
                let mut d = delivery_for(&m, sub, None);
                d.retain = true;
                d
            })
            .collect()
    }
}

fn delivery_for(msg: &Arc<Message>, sub: &Subscription, via: Option<Arc<SharedGroup>>) -> Delivery {
    Delivery {
        msg: msg.clone(),
        qos: msg.qos.min(sub.qos),
        // 3.1.1 always clears RETAIN on live delivery [MQTT-3.3.1-9]; v5 keeps
        // it only for Retain As Published subscriptions [MQTT-3.3.1-12].
        retain: msg.retain && sub.retain_as_published,
        subscription_id: sub.id,
        via,
        seq: 0,
        written: 0,
    }
}
