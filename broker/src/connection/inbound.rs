//! What a connection does with each packet its client sends.

use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::codec::{
    self, AckProperties, Packet, PubResp, Publish, QoS, ReasonCode, SubAck, Subscribe, UnsubAck, Unsubscribe,
};
use crate::router::{FanOut, Message, Subscription};
use crate::session::{InboundQos2, InflightStage};
use crate::topic::{parse_shared, topic_levels, validate_filter};

use super::CloseReason;
use super::run::Conn;

impl Conn {
    pub(super) fn handle(&mut self, packet: Packet) -> Result<(), CloseReason> {
        match packet {
            Packet::Publish(p) => self.on_publish(p),
            Packet::PubAck(a) => {
                self.on_ack(a.packet_id, InflightStage::Published, QoS::AtLeastOnce);
                Ok(())
            }
            Packet::PubRec(r) => self.on_pubrec(r),
            Packet::PubRel(r) => self.on_pubrel(r),
            Packet::PubComp(c) => {
                self.on_ack(c.packet_id, InflightStage::Released, QoS::ExactlyOnce);
                Ok(())
            }
            Packet::Subscribe(s) => self.on_subscribe(s),
            Packet::Unsubscribe(u) => self.on_unsubscribe(u),
            Packet::PingReq => {
                self.send(&Packet::PingResp);
                Ok(())
            }
            Packet::Disconnect(d) => self.on_disconnect(d),
            Packet::Connect(_) => Err(CloseReason::protocol(
                ReasonCode::PROTOCOL_ERROR,
                "second CONNECT [MQTT-3.1.0-2]",
            )),
            Packet::Auth(_) => Err(CloseReason::protocol(
                ReasonCode::PROTOCOL_ERROR,
                "AUTH without an authentication method in CONNECT [MQTT-4.12.0-6]",
            )),
            Packet::ConnAck(_) | Packet::SubAck(_) | Packet::UnsubAck(_) | Packet::PingResp => Err(
                CloseReason::protocol(ReasonCode::PROTOCOL_ERROR, "server-to-client packet sent by a client"),
            ),
        }
    }

    pub(super) fn send(&mut self, packet: &Packet) {
        if let Err(e) = codec::encode(packet, self.protocol, &mut self.wbuf) {
            conn_event!(self, tracing::Level::ERROR, error = %e, "cannot encode a packet; dropped");
        }
    }

    /// Sends an acknowledgement once store op `written` is durable (0: no
    /// wait), after every acknowledgement held before it: acks keep the
    /// order of the packets they answer [MQTT-4.6.0-2] [MQTT-4.6.0-3].
    pub(super) fn send_ack(&mut self, packet: &Packet, written: u64) {
        if written == 0 && self.held.is_none() {
            self.send(packet);
            return;
        }
        let mut buf = bytes::BytesMut::new();
        if let Err(e) = codec::encode(packet, self.protocol, &mut buf) {
            conn_event!(self, tracing::Level::ERROR, error = %e, "cannot encode a packet; dropped");
            return;
        }
        self.held.get_or_insert_default().push_back((written, buf.freeze()));
    }

    /// Moves held acknowledgements whose writes are durable to the write
    /// buffer; `waker` is woken by the commit that frees the next one.
    pub(super) fn release_held(&mut self, waker: &std::task::Waker) {
        let Some(held) = self.held.as_mut() else { return };
        let store = self.broker.store();
        while let Some(&(written, _)) = held.front() {
            if !store.poll_durable(written, waker) {
                return;
            }
            if let Some((_, bytes)) = held.pop_front() {
                self.wbuf.extend_from_slice(&bytes);
            }
        }
        self.held = None;
    }

    fn on_publish(&mut self, mut p: Publish) -> Result<(), CloseReason> {
        let broker = self.broker.clone();
        let limits = &broker.limits;
        if p.qos as u8 > limits.max_qos {
            return Err(CloseReason::protocol(
                ReasonCode::QOS_NOT_SUPPORTED,
                "QoS above Maximum QoS [MQTT-3.2.2-11]",
            ));
        }
        if p.retain && !limits.retain_available {
            return Err(CloseReason::protocol(
                ReasonCode::RETAIN_NOT_SUPPORTED,
                "retain not available [MQTT-3.2.2-14]",
            ));
        }
        if !p.properties.subscription_identifiers.is_empty() {
            return Err(CloseReason::protocol(
                ReasonCode::PROTOCOL_ERROR,
                "subscription identifier in a client PUBLISH [MQTT-3.3.4-6]",
            ));
        }
        self.resolve_topic_alias(&mut p)?;
        self.stats.messages_received += 1;

        if p.qos == QoS::ExactlyOnce {
            let state = self.attached.session.inbound_qos2(p.packet_id, limits.receive_maximum);
            if state == InboundQos2::Duplicate {
                // Already routed; the PUBREC went missing. Route once only
                // [MQTT-4.3.3-10].
                self.send_ack(
                    &Packet::PubRec(PubResp {
                        packet_id: p.packet_id,
                        ..Default::default()
                    }),
                    0,
                );
                return Ok(());
            }
            if state == InboundQos2::WindowFull {
                return Err(CloseReason::protocol(
                    ReasonCode::RECEIVE_MAXIMUM_EXCEEDED,
                    "more QoS 2 PUBLISHes in flight than Receive Maximum [MQTT-3.3.4-9]",
                ));
            }
        }

        let refusal = if p.topic.starts_with('$') {
            // $-topics belong to the server [MQTT-4.7.2-1]; clients do not
            // publish into them.
            conn_event!(self, tracing::Level::DEBUG, topic = %p.topic, "dropping a client PUBLISH to a $ topic");
            Some(ReasonCode::NOT_AUTHORIZED)
        } else if let Some(acl) = &self.acl
            && !acl.can_write(&p.topic)
        {
            // Refused, and the client is told on v5 [MQTT-3.3.4]; 3.1.1 has
            // no way to say it, so the message is acknowledged and dropped,
            // as Mosquitto does.
            conn_event!(self, tracing::Level::DEBUG, topic = %p.topic, "PUBLISH refused by the ACL");
            Some(ReasonCode::NOT_AUTHORIZED)
        } else if topic_levels(&p.topic) > limits.max_topic_levels {
            if !self.protocol.is_v5() {
                // 3.1.1 has no way to refuse one PUBLISH; closing is the only
                // refusal the client can notice.
                return Err(CloseReason::protocol(
                    ReasonCode::TOPIC_NAME_INVALID,
                    "topic deeper than limits.max_topic_levels",
                ));
            }
            conn_event!(
                self,
                tracing::Level::INFO,
                levels = topic_levels(&p.topic),
                max = limits.max_topic_levels,
                "dropping a PUBLISH deeper than limits.max_topic_levels"
            );
            Some(ReasonCode::TOPIC_NAME_INVALID)
        } else {
            None
        };
        if refusal.is_none() {
            match self.ask_publish_hooks(p) {
                Some(back) => p = back,
                // Set aside until the webhook answers.
                None => return Ok(()),
            }
        }
        self.finish_publish(p, refusal)
    }

    /// Routes an accepted PUBLISH (or refuses it with `refusal`) and
    /// acknowledges it.
    pub(super) fn finish_publish(&mut self, p: Publish, refusal: Option<ReasonCode>) -> Result<(), CloseReason> {
        let (packet_id, qos) = (p.packet_id, p.qos);
        let mut written = 0;
        let reason = if let Some(code) = refusal {
            code
        } else {
            let out = self.route(p);
            written = out.written;
            if out.refused > 0 && qos != QoS::AtMostOnce {
                if !self.protocol.is_v5() {
                    // 3.1.1 cannot refuse a PUBLISH: no acknowledgement,
                    // so the client keeps the message and sends it again
                    // after reconnecting.
                    return Ok(());
                }
                ReasonCode::QUOTA_EXCEEDED
            } else if out.matched == 0 {
                ReasonCode::NO_MATCHING_SUBSCRIBERS
            } else {
                ReasonCode::SUCCESS
            }
        };
        let ack = PubResp {
            packet_id,
            reason_code: reason,
            properties: AckProperties::default(),
        };
        match qos {
            QoS::AtMostOnce => {}
            QoS::AtLeastOnce => self.send_ack(&Packet::PubAck(ack), written),
            QoS::ExactlyOnce => {
                if !reason.is_error() {
                    written = written.max(self.attached.session.qos2_received(packet_id));
                }
                self.send_ack(&Packet::PubRec(ack), written);
            }
        }
        Ok(())
    }

    /// Replaces an inbound topic alias with its topic, or records a new
    /// alias [MQTT-3.3.2-12].
    fn resolve_topic_alias(&mut self, p: &mut Publish) -> Result<(), CloseReason> {
        let Some(alias) = p.properties.topic_alias.take() else {
            return Ok(());
        };
        let max = self.broker.limits.topic_alias_maximum;
        if alias == 0 || alias > max {
            return Err(CloseReason::protocol(
                ReasonCode::TOPIC_ALIAS_INVALID,
                "topic alias 0 or above Topic Alias Maximum [MQTT-3.3.2-9] [MQTT-3.3.2-10]",
            ));
        }
        if self.aliases.is_empty() {
            self.aliases = vec![None; usize::from(max)].into_boxed_slice();
        }
        let slot = &mut self.aliases[usize::from(alias - 1)];
        if p.topic.is_empty() {
            match slot {
                Some(topic) => p.topic = topic.clone(),
                None => {
                    return Err(CloseReason::protocol(
                        ReasonCode::PROTOCOL_ERROR,
                        "unknown topic alias [MQTT-3.3.2-12]",
                    ));
                }
            }
        } else {
            *slot = Some(p.topic.clone());
        }
        Ok(())
    }

    fn route(&mut self, mut p: Publish) -> FanOut {
        let expires_at = p
            .properties
            .message_expiry_interval
            .take()
            .map(|s| Instant::now() + Duration::from_secs(u64::from(s)));
        p.properties.topic_alias = None;
        p.properties.subscription_identifiers.clear();
        let msg = Arc::new(Message::from_publish(p, expires_at, self.attached.session.id));
        self.broker.publish(&msg)
    }

    fn on_ack(&mut self, packet_id: u16, stage: InflightStage, qos: QoS) {
        if !self.attached.session.acknowledged(packet_id, stage, qos) {
            conn_event!(
                self,
                tracing::Level::DEBUG,
                packet_id,
                "acknowledgement for an unknown packet identifier ignored"
            );
        }
    }

    fn on_pubrec(&mut self, r: PubResp) -> Result<(), CloseReason> {
        // A refusal finishes the message: no PUBREL [MQTT-4.3.3-4].
        let Some((known, written)) = self.attached.session.received(r.packet_id, r.reason_code.is_error()) else {
            return Ok(());
        };
        let reason = if known {
            ReasonCode::SUCCESS
        } else {
            ReasonCode::PACKET_IDENTIFIER_NOT_FOUND
        };
        self.send_ack(
            &Packet::PubRel(PubResp {
                packet_id: r.packet_id,
                reason_code: reason,
                ..Default::default()
            }),
            written,
        );
        Ok(())
    }

    fn on_pubrel(&mut self, r: PubResp) -> Result<(), CloseReason> {
        let released = self.attached.session.qos2_released(r.packet_id);
        let reason = if released.is_some() {
            ReasonCode::SUCCESS
        } else {
            ReasonCode::PACKET_IDENTIFIER_NOT_FOUND
        };
        self.send_ack(
            &Packet::PubComp(PubResp {
                packet_id: r.packet_id,
                reason_code: reason,
                ..Default::default()
            }),
            released.unwrap_or(0),
        );
        Ok(())
    }

    fn on_subscribe(&mut self, s: Subscribe) -> Result<(), CloseReason> {
        match self.ask_subscribe_hooks(s) {
            Some(s) => self.subscribe_with(s, None),
            // Set aside until the webhook answers.
            None => Ok(()),
        }
    }

    /// Subscribes to the filters of `s` that `verdicts` (a webhook's answer,
    /// one per filter; `None`: no webhook asked) allows, at no more than the
    /// QoS it allows.
    pub(super) fn subscribe_with(
        &mut self,
        s: Subscribe,
        verdicts: Option<crate::auth::FilterVerdicts>,
    ) -> Result<(), CloseReason> {
        let broker = self.broker.clone();
        let limits = &broker.limits;
        let now = Instant::now();
        let session = self.attached.session.clone();
        let mut codes = Vec::with_capacity(s.filters.len());
        let mut retained = Vec::new();
        let mut written = 0;
        for (i, (filter, opts)) in s.filters.iter().enumerate() {
            let cap = match verdicts.as_ref().map(|v| v.get(i).copied().flatten()) {
                Some(None) => {
                    conn_event!(self, tracing::Level::DEBUG, filter = %filter, "subscription refused by a webhook");
                    codes.push(ReasonCode::NOT_AUTHORIZED);
                    continue;
                }
                Some(Some(q)) => q,
                None => 2,
            };
            let share = match parse_shared(filter) {
                Ok(share) => share,
                Err(e) => {
                    conn_event!(self, tracing::Level::DEBUG, filter = %filter, error = %e, "subscription refused");
                    codes.push(ReasonCode::TOPIC_FILTER_INVALID);
                    continue;
                }
            };
            let inner: &str = share.as_ref().map_or(filter, |sh| sh.filter);
            if share.is_none() && validate_filter(inner).is_err() {
                codes.push(ReasonCode::TOPIC_FILTER_INVALID);
                continue;
            }
            if topic_levels(inner) > limits.max_topic_levels {
                conn_event!(
                    self,
                    tracing::Level::INFO,
                    levels = topic_levels(inner),
                    max = limits.max_topic_levels,
                    "subscription refused: deeper than limits.max_topic_levels"
                );
                codes.push(ReasonCode::TOPIC_FILTER_INVALID);
                continue;
            }
            if share.is_some() && opts.no_local {
                return Err(CloseReason::protocol(
                    ReasonCode::PROTOCOL_ERROR,
                    "No Local on a shared subscription [MQTT-3.8.3-4]",
                ));
            }
            let qos = QoS::from_u8((opts.qos as u8).min(limits.max_qos).min(cap)).unwrap_or(QoS::AtMostOnce);
            let sub = Subscription {
                qos,
                no_local: opts.no_local,
                retain_as_published: opts.retain_as_published,
                retain_handling: opts.retain_handling,
                id: s.subscription_identifier,
            };
            let existed =
                self.broker
                    .router
                    .subscribe(&session, filter, share.as_ref().map(|sh| (sh.group, sh.filter)), sub);
            written = written.max(session.subscribed(filter, sub));
            if !existed {
                crate::metrics::Metrics::add(&self.broker.metrics.subscriptions, 1);
            }
            // Retained messages are never sent for a shared subscription
            // [MQTT-3.8.4-4 v5 §4.8.2]; retain handling 1 sends them only for a
            // new one, 2 never [MQTT-3.3.1-9] [MQTT-3.3.1-10] [MQTT-3.3.1-11].
            let send_retained =
                share.is_none() && (opts.retain_handling == 0 || (opts.retain_handling == 1 && !existed));
            if send_retained {
                let acl = &self.acl;
                retained.extend(
                    self.broker
                        .router
                        .retained_for(inner, &sub, now)
                        .into_iter()
                        .filter(|d| acl.as_ref().is_none_or(|a| a.can_read(&d.msg.topic))),
                );
            }
            codes.push(ReasonCode(qos as u8));
        }
        self.send_ack(
            &Packet::SubAck(SubAck {
                packet_id: s.packet_id,
                properties: AckProperties::default(),
                reason_codes: codes,
            }),
            written,
        );
        // Bounded so a client that subscribes again and again without
        // reading cannot grow this list past one full retained store.
        let owed = self.replay.as_ref().map_or(0, |r| r.len());
        let room = limits.max_retained_messages.saturating_sub(owed);
        if retained.len() > room {
            conn_event!(
                self,
                tracing::Level::WARN,
                dropped = retained.len() - room,
                "retained messages not sent: the client has not yet read those of its earlier subscriptions"
            );
            self.stats.dropped += u32::try_from(retained.len() - room).unwrap_or(u32::MAX);
            retained.truncate(room);
        }
        if !retained.is_empty() {
            self.replay.get_or_insert_default().extend(retained);
        }
        Ok(())
    }

    fn on_unsubscribe(&mut self, u: Unsubscribe) -> Result<(), CloseReason> {
        let session = self.attached.session.clone();
        let mut codes = Vec::with_capacity(u.filters.len());
        let mut written = 0;
        for filter in &u.filters {
            let share = parse_shared(filter).ok().flatten();
            let (removed_here, w) = session.unsubscribed(filter);
            written = written.max(w);
            let removed =
                self.broker
                    .router
                    .unsubscribe(&session, filter, share.as_ref().map(|sh| (sh.group, sh.filter)));
            if removed_here || removed {
                crate::metrics::Metrics::sub(&self.broker.metrics.subscriptions, 1);
                codes.push(ReasonCode::SUCCESS);
            } else {
                codes.push(ReasonCode::NO_SUBSCRIPTION_EXISTED);
            }
        }
        self.send_ack(
            &Packet::UnsubAck(UnsubAck {
                packet_id: u.packet_id,
                properties: AckProperties::default(),
                reason_codes: codes,
            }),
            written,
        );
        Ok(())
    }

    fn on_disconnect(&mut self, d: codec::Disconnect) -> Result<(), CloseReason> {
        if let Some(expiry) = d.properties.session_expiry_interval {
            if self.connect_expiry_was_zero && expiry != 0 {
                return Err(CloseReason::protocol(
                    ReasonCode::PROTOCOL_ERROR,
                    "session expiry set in DISCONNECT after 0 in CONNECT [MQTT-3.14.2-2]",
                ));
            }
            let max = u32::try_from(self.broker.limits.max_session_expiry.as_secs()).unwrap_or(u32::MAX);
            self.expiry_interval = expiry.min(max);
        }
        // Only a normal disconnection (0x00, and every 3.1.1 DISCONNECT)
        // discards the will [MQTT-3.14.4-3]; 0x04 and the error codes keep
        // it [MQTT-3.1.2-8].
        if !self.protocol.is_v5() || d.reason_code == ReasonCode::SUCCESS {
            self.attached.session.set_will(None);
        }
        Err(CloseReason::ClientDisconnect)
    }
}
