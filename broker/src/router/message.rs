//! The routed message: decoded once, shared by every subscriber it reaches.

use bytes::Bytes;
use bytestring::ByteString;
use std::time::Instant;

use std::time::Duration;

use crate::codec::{LastWill, PublishProperties, QoS};

/// A PUBLISH as the broker keeps it once it has been accepted. Shared behind
/// an `Arc` by all queues it is in, so fan-out to N subscribers copies no
/// payload: each connection encodes it straight into its write buffer.
#[derive(Debug)]
pub struct Message {
    pub topic: ByteString,
    pub payload: Bytes,
    pub qos: QoS,
    pub retain: bool,
    /// Forwarded v5 properties; the topic alias and subscription identifiers
    /// of the publisher are never kept [MQTT-3.3.2-7] [MQTT-3.3.4-6].
    pub properties: Option<Box<PublishProperties>>,
    /// When the message expiry interval runs out [MQTT-3.3.2-5].
    pub expires_at: Option<Instant>,
    /// Session of the publisher, for No Local [MQTT-3.8.3-3]; 0 for the
    /// broker's own messages ($SYS, wills of ended sessions keep theirs).
    pub origin: u64,
    /// Its record in the store, once a persistent session queued it;
    /// deleted when the message is dropped.
    pub stored: std::sync::OnceLock<crate::store::StoredMsg>,
}

impl Message {
    /// The message a will becomes when it is published [MQTT-3.1.3-9]; its
    /// expiry interval starts now.
    pub fn from_will(w: LastWill, origin: u64) -> Message {
        let p = w.properties;
        let properties = PublishProperties {
            payload_format_indicator: p.payload_format_indicator,
            message_expiry_interval: None,
            topic_alias: None,
            response_topic: p.response_topic,
            correlation_data: p.correlation_data,
            user_properties: p.user_properties,
            subscription_identifiers: Vec::new(),
            content_type: p.content_type,
        };
        Message {
            topic: w.topic,
            payload: w.payload,
            qos: w.qos,
            retain: w.retain,
            properties: (!properties.is_empty()).then(|| Box::new(properties)),
            expires_at: p
                .message_expiry_interval
                .map(|s| Instant::now() + Duration::from_secs(u64::from(s))),
            origin,
            stored: Default::default(),
        }
    }

    /// The message a PUBLISH becomes, its properties already stripped of
    /// what is never forwarded.
    pub fn from_publish(p: crate::codec::Publish, expires_at: Option<Instant>, origin: u64) -> Message {
        let props = p.properties;
        Message {
            topic: p.topic,
            payload: p.payload,
            qos: p.qos,
            retain: p.retain,
            properties: (!props.is_empty()).then(|| Box::new(props)),
            expires_at,
            origin,
            stored: Default::default(),
        }
    }

    /// Seconds left of the message expiry interval, `None` when it has none,
    /// `Some(0)`... never: an expired message is reported by `is_expired`.
    pub fn remaining_expiry(&self, now: Instant) -> Option<u32> {
        self.expires_at.map(|at| {
            let left = at.saturating_duration_since(now);
            // Round up so a message with 0.4 s left is not sent as "0", which
            // would read as "expires now" to a bridge downstream.
            u32::try_from(left.as_millis().div_ceil(1000))
                .unwrap_or(u32::MAX)
                .max(1)
        })
    }

    pub fn is_expired(&self, now: Instant) -> bool {
        self.expires_at.is_some_and(|at| at <= now)
    }

    /// Bytes this message holds, for queue accounting.
    pub fn weight(&self) -> usize {
        self.topic.len() + self.payload.len() + 64
    }
}
