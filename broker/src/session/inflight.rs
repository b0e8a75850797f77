//! Outgoing QoS 1 and 2 messages sent and not yet acknowledged.
//!
//! Bounded by the smaller of the client's Receive Maximum and the broker's
//! `max_inflight` [MQTT-3.3.4-7], so a linear scan is cheap and order of
//! sending is kept for resending after a reconnect [MQTT-4.4.0-1].

use std::collections::VecDeque;

use super::Delivery;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InflightStage {
    /// PUBLISH sent; waiting for PUBACK (QoS 1) or PUBREC (QoS 2).
    Published,
    /// PUBREC received and PUBREL sent; waiting for PUBCOMP.
    Released,
}

#[derive(Debug)]
pub struct Inflight {
    pub packet_id: u16,
    pub stage: InflightStage,
    pub delivery: Delivery,
}

#[derive(Debug, Default)]
pub struct Outgoing {
    items: VecDeque<Inflight>,
    last_id: u16,
}

impl Outgoing {
    pub fn len(&self) -> usize {
        self.items.len()
    }

    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    /// Picks a packet identifier no unacknowledged message uses
    /// [MQTT-2.2.1-4]. `None` only if all 65,535 are taken, which the
    /// in-flight bound prevents.
    pub fn next_packet_id(&mut self) -> Option<u16> {
        for _ in 0..u16::MAX {
            self.last_id = if self.last_id == u16::MAX { 1 } else { self.last_id + 1 };
            let id = self.last_id;
            if !self.items.iter().any(|i| i.packet_id == id) {
                return Some(id);
            }
        }
        None
    }

    pub fn push(&mut self, packet_id: u16, delivery: Delivery) {
        self.items.push_back(Inflight {
            packet_id,
            stage: InflightStage::Published,
            delivery,
        });
    }

    /// Removes a message acknowledged by PUBACK or PUBCOMP. Acks usually come
    /// in order, so the front is checked first.
    pub fn complete(&mut self, packet_id: u16, stage: InflightStage) -> Option<Delivery> {
        let i = self.position(packet_id, stage)?;
        let removed = self.items.remove(i).map(|i| i.delivery);
        if self.items.is_empty() && self.items.capacity() > 64 {
            self.items = VecDeque::new();
        }
        removed
    }

    /// PUBREC received: the message is now the receiver's; from here only
    /// PUBREL is ever resent [MQTT-4.3.3-4]. Whether the identifier is
    /// known, and the delivery if this PUBREC released it (not a repeat).
    pub fn release(&mut self, packet_id: u16) -> (bool, Option<&Delivery>) {
        match self.position(packet_id, InflightStage::Published) {
            Some(i) => {
                self.items[i].stage = InflightStage::Released;
                (true, Some(&self.items[i].delivery))
            }
            None => (self.position(packet_id, InflightStage::Released).is_some(), None),
        }
    }

    /// Whether a message in flight uses `packet_id`.
    pub fn uses(&self, packet_id: u16) -> bool {
        self.items.iter().any(|i| i.packet_id == packet_id)
    }

    /// Puts back a message in flight as it was before a restart.
    pub fn restore(&mut self, packet_id: u16, stage: InflightStage, delivery: Delivery) {
        self.items.push_back(Inflight {
            packet_id,
            stage,
            delivery,
        });
    }

    pub fn iter(&self) -> impl Iterator<Item = &Inflight> {
        self.items.iter()
    }

    pub fn drain_all(&mut self) -> VecDeque<Inflight> {
        std::mem::take(&mut self.items)
    }

    fn position(&self, packet_id: u16, stage: InflightStage) -> Option<usize> {
        self.items
            .iter()
            .position(|i| i.packet_id == packet_id && i.stage == stage)
    }
}
