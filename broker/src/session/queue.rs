//! The bounded queue of deliveries waiting for a session's connection.
//!
//! Bounded by message count and bytes so a subscriber that stops reading,
//! or stays offline, can never grow the broker's memory without limit. When
//! full it evicts the oldest QoS 0 message first (losing one is allowed by
//! QoS 0's contract), and otherwise refuses the newcomer.

use std::collections::VecDeque;

use crate::codec::QoS;

use super::Delivery;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PushOutcome {
    Queued,
    /// Queued after evicting the oldest QoS 0 message.
    QueuedEvicted,
    /// Not queued: the queue is full of QoS 1/2 messages.
    Dropped,
}

#[derive(Debug, Default)]
pub struct OutQueue {
    items: VecDeque<Delivery>,
    bytes: usize,
    qos0: usize,
}

impl OutQueue {
    pub fn len(&self) -> usize {
        self.items.len()
    }

    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    pub fn bytes(&self) -> usize {
        self.bytes
    }

    pub fn iter(&self) -> impl Iterator<Item = &Delivery> {
        self.items.iter()
    }

    pub fn front(&self) -> Option<&Delivery> {
        self.items.front()
    }

    pub fn push(&mut self, d: Delivery, max_messages: usize, max_bytes: usize) -> PushOutcome {
        let weight = d.msg.weight();
        let mut outcome = PushOutcome::Queued;
        while self.items.len() >= max_messages || self.bytes + weight > max_bytes {
            if self.items.is_empty() {
                // A single message larger than the byte bound: refuse it rather
                // than let one message break the bound.
                return PushOutcome::Dropped;
            }
            if !self.evict_oldest_qos0() {
                return PushOutcome::Dropped;
            }
            outcome = PushOutcome::QueuedEvicted;
        }
        self.account_in(&d);
        self.items.push_back(d);
        outcome
    }

    /// Puts back a delivery at the head (a resend after reconnect goes before
    /// newer messages, keeping order [MQTT-4.6.0-1]). Never refused: it was
    /// already counted against the bounds once.
    pub fn push_front(&mut self, d: Delivery) {
        self.account_in(&d);
        self.items.push_front(d);
    }

    pub fn pop_front(&mut self) -> Option<Delivery> {
        let d = self.items.pop_front()?;
        self.account_out(&d);
        if self.items.is_empty() && self.items.capacity() > 64 {
            // Give a burst's memory back: idle sessions must stay small.
            self.items = VecDeque::new();
        }
        Some(d)
    }

    pub fn drain_all(&mut self) -> VecDeque<Delivery> {
        self.bytes = 0;
        self.qos0 = 0;
        std::mem::take(&mut self.items)
    }

    /// Keeps only the deliveries `keep` accepts; the others, returned.
    pub fn retain(&mut self, mut keep: impl FnMut(&Delivery) -> bool) -> Vec<Delivery> {
        let mut removed = Vec::new();
        let mut kept = VecDeque::with_capacity(self.items.len());
        for d in self.items.drain(..) {
            if keep(&d) { kept.push_back(d) } else { removed.push(d) }
        }
        self.items = kept;
        self.recount();
        removed
    }

    /// Drops QoS 0 messages, which are not kept for offline sessions.
    pub fn drop_qos0(&mut self) -> usize {
        let before = self.items.len();
        self.items.retain(|d| d.qos != QoS::AtMostOnce);
        self.recount();
        before - self.items.len()
    }

    fn evict_oldest_qos0(&mut self) -> bool {
        if self.qos0 == 0 {
            return false;
        }
        match self.items.iter().position(|d| d.qos == QoS::AtMostOnce) {
            Some(i) => {
                if let Some(d) = self.items.remove(i) {
                    self.account_out(&d);
                }
                true
            }
            None => false,
        }
    }

    fn account_in(&mut self, d: &Delivery) {
        self.bytes += d.msg.weight();
        if d.qos == QoS::AtMostOnce {
            self.qos0 += 1;
        }
    }

    fn account_out(&mut self, d: &Delivery) {
        self.bytes -= d.msg.weight();
        if d.qos == QoS::AtMostOnce {
            self.qos0 -= 1;
        }
    }

    fn recount(&mut self) {
        self.bytes = self.items.iter().map(|d| d.msg.weight()).sum();
        self.qos0 = self.items.iter().filter(|d| d.qos == QoS::AtMostOnce).count();
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::router::Message;

    fn delivery(qos: QoS, payload: &'static [u8]) -> Delivery {
        let msg = Message {
            topic: "t".into(),
            payload: bytes::Bytes::from_static(payload),
            qos,
            retain: false,
            properties: None,
            expires_at: None,
            origin: 0,
            stored: Default::default(),
        };
        Delivery::new(Arc::new(msg), qos, false)
    }

    #[test]
    fn full_queue_evicts_oldest_qos0_first() {
        let mut q = OutQueue::default();
        assert_eq!(
            q.push(delivery(QoS::AtLeastOnce, b"a"), 2, 1 << 20),
            PushOutcome::Queued
        );
        assert_eq!(q.push(delivery(QoS::AtMostOnce, b"b"), 2, 1 << 20), PushOutcome::Queued);
        assert_eq!(
            q.push(delivery(QoS::AtLeastOnce, b"c"), 2, 1 << 20),
            PushOutcome::QueuedEvicted
        );
        assert_eq!(q.len(), 2);
        assert_eq!(
            q.pop_front().map(|d| d.msg.payload.clone()),
            Some(bytes::Bytes::from_static(b"a"))
        );
        assert_eq!(
            q.pop_front().map(|d| d.msg.payload.clone()),
            Some(bytes::Bytes::from_static(b"c"))
        );
    }

    #[test]
    fn full_queue_of_qos1_refuses_newcomer() {
        let mut q = OutQueue::default();
        q.push(delivery(QoS::AtLeastOnce, b"a"), 1, 1 << 20);
        assert_eq!(
            q.push(delivery(QoS::AtLeastOnce, b"b"), 1, 1 << 20),
            PushOutcome::Dropped
        );
        assert_eq!(q.len(), 1);
    }

    #[test]
    fn byte_bound_holds() {
        let mut q = OutQueue::default();
        let max = 2 * delivery(QoS::AtMostOnce, b"x").msg.weight();
        for _ in 0..10 {
            q.push(delivery(QoS::AtMostOnce, b"x"), 100, max);
        }
        assert!(q.bytes() <= max);
        assert_eq!(q.len(), 2);
    }
}
