//! The session's side of each protocol flow: what a connection asks of the
//! session when a packet arrives. Every change the protocol makes to state
//! that outlives a connection goes through here, `Outgoing` or the queue,
//! never through the fields directly: these methods are where the storage
//! engine will record what must survive a restart.

use crate::codec::{LastWill, QoS};
use crate::router::Subscription;

use super::{InflightStage, Session};

/// How an inbound QoS 2 PUBLISH relates to the ones awaiting PUBREL.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InboundQos2 {
    New,
    /// Its packet identifier awaits PUBREL: already routed, answer PUBREC
    /// again and route nothing [MQTT-4.3.3-10].
    Duplicate,
    /// As many await PUBREL as Receive Maximum allows.
    WindowFull,
}

impl Session {
    pub fn inbound_qos2(&self, packet_id: u16, receive_maximum: u16) -> InboundQos2 {
        let st = self.state.lock();
        if st.incoming_qos2.contains(&packet_id) {
            InboundQos2::Duplicate
        } else if st.incoming_qos2.len() >= usize::from(receive_maximum) {
            InboundQos2::WindowFull
        } else {
            InboundQos2::New
        }
    }

    /// A QoS 2 PUBLISH was routed and answered with PUBREC [MQTT-4.3.3-9];
    /// the store op the PUBREC must wait for.
    pub fn qos2_received(&self, packet_id: u16) -> u64 {
        let mut st = self.state.lock();
        st.incoming_qos2.push(packet_id);
        if st.stored {
            self.limits.store.put_incoming(&self.client_id, packet_id)
        } else {
            0
        }
    }

    /// PUBREL for an inbound QoS 2 flow: `None` when the identifier was not
    /// awaiting one, else the store op the PUBCOMP must wait for (until it
    /// is durable, a resent PUBLISH with the identifier would be taken for
    /// the old one and lost).
    pub fn qos2_released(&self, packet_id: u16) -> Option<u64> {
        let mut st = self.state.lock();
        let i = st.incoming_qos2.iter().position(|&id| id == packet_id)?;
        st.incoming_qos2.swap_remove(i);
        Some(if st.stored {
            self.limits.store.del_incoming(&self.client_id, packet_id)
        } else {
            0
        })
    }

    /// PUBACK (QoS 1, stage `Published`) or PUBCOMP (QoS 2, stage
    /// `Released`) for an outgoing message; false when nothing matched.
    pub fn acknowledged(&self, packet_id: u16, stage: InflightStage, qos: QoS) -> bool {
        let mut st = self.state.lock();
        let known = st
            .outgoing
            .iter()
            .any(|i| i.packet_id == packet_id && i.stage == stage && i.delivery.qos == qos);
        if known
            && let Some(d) = st.outgoing.complete(packet_id, stage)
            && d.seq != 0
        {
            self.limits.store.del_delivery(&self.client_id, d.seq);
        }
        known
    }

    /// PUBREC for an outgoing QoS 2 message. An error code ends the flow
    /// without PUBREL [MQTT-4.3.3-4]: `None`. Otherwise whether the
    /// identifier was known, for the PUBREL's reason code, and the store op
    /// the PUBREL must wait for (once PUBREL is out, only PUBREL may ever be
    /// sent again for it, restart or not).
    pub fn received(&self, packet_id: u16, refused: bool) -> Option<(bool, u64)> {
        let mut st = self.state.lock();
        let store = &self.limits.store;
        if refused {
            if let Some(d) = st.outgoing.complete(packet_id, InflightStage::Published)
                && d.seq != 0
            {
                store.del_delivery(&self.client_id, d.seq);
            }
            return None;
        }
        let (known, newly) = st.outgoing.release(packet_id);
        let written = match newly {
            Some(d) if d.seq != 0 => {
                let mut record = d.record(d.msg.stored.get().map_or(0, |m| m.id));
                record.released = true;
                store.put_delivery(&self.client_id, d.seq, &record)
            }
            _ => 0,
        };
        Some((known, written))
    }

    /// Records a subscription; the router holds the matching side. The
    /// store op the SUBACK must wait for.
    pub fn subscribed(&self, filter: &str, sub: Subscription) -> u64 {
        let mut st = self.state.lock();
        st.subscriptions.insert(Box::from(filter), sub);
        if st.stored {
            self.limits.store.put_subscription(&self.client_id, filter, &sub)
        } else {
            0
        }
    }

    /// Forgets a subscription: whether there was one, and the store op the
    /// UNSUBACK must wait for.
    pub fn unsubscribed(&self, filter: &str) -> (bool, u64) {
        let mut st = self.state.lock();
        let existed = st.subscriptions.remove(filter).is_some();
        let written = if existed && st.stored {
            self.limits.store.del_subscription(&self.client_id, filter)
        } else {
            0
        };
        (existed, written)
    }

    /// Sets (at CONNECT) or discards (at a normal DISCONNECT) the attached
    /// connection's will.
    pub fn set_will(&self, will: Option<Box<LastWill>>) {
        self.state.lock().will = will;
    }

    /// The will, taken for publishing.
    pub fn take_will(&self) -> Option<Box<LastWill>> {
        self.state.lock().will.take()
    }
}
