//! Moving queued deliveries into the write buffer, within the client's
//! flow-control window and Maximum Packet Size.

use std::task::Waker;
use std::time::Instant;

use crate::codec::{self, Packet, PubResp, PublishParts, QoS};
use crate::session::{Delivery, InflightStage, SessionState};

use super::CloseReason;
use super::run::{Conn, WRITE_HIGH_WATER};

impl Conn {
    /// Encodes queued deliveries (after any resends) until the queue is
    /// empty, the in-flight window is full or the write buffer is at its
    /// high-water mark. Encoding happens under the session lock, which the
    /// router only takes to append: the critical section is a memcpy.
    ///
    /// True when it stopped at the high-water mark with deliveries left; an
    /// error when the connection has been kicked.
    pub(super) fn pump(&mut self, waker: &Waker) -> Result<bool, CloseReason> {
        let session = self.attached.session.clone();
        let mut st = session.state.lock();
        if let Some(code) = st.kicked {
            return Err(CloseReason::kicked(code));
        }
        Ok(self.pump_locked(&mut st, waker))
    }

    /// `waker` is woken when a QoS 2 delivery held back until its store
    /// write is durable may go.
    pub(super) fn pump_locked(&mut self, st: &mut SessionState, waker: &Waker) -> bool {
        if self.wbuf.len() >= WRITE_HIGH_WATER {
            return true;
        }
        if self.resend_pending {
            self.resend_pending = false;
            self.resend(st);
        }
        let now = Instant::now();
        while let Some(replay) = self.replay.as_mut() {
            let Some(front) = replay.front() else {
                self.replay = None;
                break;
            };
            if front.qos != QoS::AtMostOnce && st.outgoing.len() >= usize::from(self.send_window) {
                return false;
            }
            if self.wbuf.len() >= WRITE_HIGH_WATER {
                return true;
            }
            let Some(d) = replay.pop_front() else { continue };
            if !d.msg.is_expired(now) {
                self.deliver(st, d, now);
            }
        }
        loop {
            let Some(front) = st.queue.front() else { return false };
            if front.qos != QoS::AtMostOnce && st.outgoing.len() >= usize::from(self.send_window) {
                // An acknowledgement reopens the window and runs the pump.
                return false;
            }
            if let Some(id) = front.stored_packet_id()
                && st.outgoing.uses(id)
            {
                // Its fixed identifier is still taken by a message 65,535
                // places earlier: wait for that one's acknowledgement.
                return false;
            }
            if front.qos == QoS::ExactlyOnce && !self.broker.store().poll_durable(front.written, waker) {
                // Sent before its store write is durable, a crash could
                // have the publisher resend it and this client get it
                // twice. The commit wakes us.
                return false;
            }
            if self.wbuf.len() >= WRITE_HIGH_WATER {
                return true;
            }
            let Some(d) = st.queue.pop_front() else { return false };
            if d.msg.is_expired(now) {
                self.forget_stored(&d);
                continue;
            }
            self.deliver(st, d, now);
        }
    }

    fn deliver(&mut self, st: &mut SessionState, d: Delivery, now: Instant) {
        let packet_id = if d.qos == QoS::AtMostOnce {
            0
        } else if let Some(id) = d.stored_packet_id() {
            id
        } else {
            match st.outgoing.next_packet_id() {
                Some(id) => id,
                None => {
                    self.stats.dropped += 1;
                    return;
                }
            }
        };
        let sub_ids = d.subscription_id.as_slice();
        let parts = PublishParts {
            dup: false,
            qos: d.qos,
            retain: d.retain,
            topic: &d.msg.topic,
            packet_id,
            properties: d.msg.properties.as_deref(),
            message_expiry_interval: d.msg.remaining_expiry(now),
            topic_alias: None,
            subscription_identifiers: sub_ids,
            payload: &d.msg.payload,
        };
        // A packet larger than the client accepts is dropped for this
        // client only [MQTT-3.1.2-25].
        if codec::publish_parts_len(&parts, self.protocol) > self.client_max_packet as usize {
            conn_event!(self, tracing::Level::DEBUG, topic = %d.msg.topic, "message exceeds the client's Maximum Packet Size; not sent to it");
            self.stats.dropped += 1;
            self.forget_stored(&d);
            return;
        }
        codec::encode_publish_parts(&parts, self.protocol, &mut self.wbuf);
        self.stats.messages_sent += 1;
        if d.qos != QoS::AtMostOnce {
            st.outgoing.push(packet_id, d);
        }
    }

    /// A stored delivery that will never be sent (expired, too large for
    /// the client) leaves the store too.
    fn forget_stored(&self, d: &Delivery) {
        if d.seq != 0 {
            self.broker
                .store()
                .del_delivery(&self.attached.session.client_id, d.seq);
        }
    }

    /// After a session resumes, unacknowledged PUBLISHes go again with DUP
    /// set and PUBRELs again, in their original order [MQTT-4.4.0-1]. A
    /// PUBLISH now larger than the new connection's Maximum Packet Size is
    /// discarded as if it had been delivered [MQTT-3.1.2-25].
    fn resend(&mut self, st: &mut SessionState) {
        let now = Instant::now();
        let mut too_large = Vec::new();
        for i in st.outgoing.iter() {
            match i.stage {
                InflightStage::Published => {
                    let d = &i.delivery;
                    let parts = PublishParts {
                        dup: true,
                        qos: d.qos,
                        retain: d.retain,
                        topic: &d.msg.topic,
                        packet_id: i.packet_id,
                        properties: d.msg.properties.as_deref(),
                        message_expiry_interval: d.msg.remaining_expiry(now),
                        topic_alias: None,
                        subscription_identifiers: d.subscription_id.as_slice(),
                        payload: &d.msg.payload,
                    };
                    if codec::publish_parts_len(&parts, self.protocol) > self.client_max_packet as usize {
                        too_large.push(i.packet_id);
                        continue;
                    }
                    codec::encode_publish_parts(&parts, self.protocol, &mut self.wbuf);
                    self.stats.messages_sent += 1;
                }
                InflightStage::Released => {
                    let rel = Packet::PubRel(PubResp {
                        packet_id: i.packet_id,
                        ..Default::default()
                    });
                    if let Err(e) = codec::encode(&rel, self.protocol, &mut self.wbuf) {
                        conn_event!(self, tracing::Level::ERROR, error = %e, "cannot encode PUBREL");
                    }
                }
            }
        }
        for packet_id in too_large {
            if let Some(d) = st.outgoing.complete(packet_id, InflightStage::Published) {
                self.forget_stored(&d);
            }
            self.stats.dropped += 1;
        }
    }
}
