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

    /// A QoS 2 PUBLISH was routed and answered with PUBREC [MQTT-4.3.3-9].
    pub fn qos2_received(&self, packet_id: u16) {
        self.state.lock().incoming_qos2.push(packet_id);
    }

    /// PUBREL for an inbound QoS 2 flow; false when the identifier was not
    /// awaiting one.
    pub fn qos2_released(&self, packet_id: u16) -> bool {
        let mut st = self.state.lock();
        match st.incoming_qos2.iter().position(|&id| id == packet_id) {
            Some(i) => {
                st.incoming_qos2.swap_remove(i);
                true
            }
            None => false,
        }
    }

    /// PUBACK (QoS 1, stage `Published`) or PUBCOMP (QoS 2, stage
    /// `Released`) for an outgoing message; false when nothing matched.
    pub fn acknowledged(&self, packet_id: u16, stage: InflightStage, qos: QoS) -> bool {
        let mut st = self.state.lock();
        let known = st
            .outgoing
            .iter()
            .any(|i| i.packet_id == packet_id && i.stage == stage && i.delivery.qos == qos);
        if known {
            st.outgoing.complete(packet_id, stage);
        }
        known
    }

    /// PUBREC for an outgoing QoS 2 message. An error code ends the flow
    /// without PUBREL [MQTT-4.3.3-4]: `None`. Otherwise whether the
    /// identifier was known, for the PUBREL's reason code.
    pub fn received(&self, packet_id: u16, refused: bool) -> Option<bool> {
        let mut st = self.state.lock();
        if refused {
            st.outgoing.complete(packet_id, InflightStage::Published);
            return None;
        }
        Some(st.outgoing.release(packet_id))
    }

    /// Records a subscription; the router holds the matching side.
    pub fn subscribed(&self, filter: &str, sub: Subscription) {
        self.state.lock().subscriptions.insert(Box::from(filter), sub);
    }

    /// Forgets a subscription; true when there was one.
    pub fn unsubscribed(&self, filter: &str) -> bool {
        self.state.lock().subscriptions.remove(filter).is_some()
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
