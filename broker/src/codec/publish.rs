//! PUBLISH (MQTT 5.0 §3.3; 3.1.1 §3.3).

use bytes::{BufMut, Bytes, BytesMut};
use bytestring::ByteString;

use super::primitives::{Reader, put_fixed_header, put_varint, varint_len};
use super::properties::{self as prop, Kind, Props};
use super::{DecodeError, Protocol, QoS, UserProperties};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Publish {
    pub dup: bool,
    pub qos: QoS,
    pub retain: bool,
    /// May be empty on v5 when a topic alias stands for it.
    pub topic: ByteString,
    /// Zero for QoS 0; never zero otherwise [MQTT-2.2.1-3].
    pub packet_id: u16,
    pub properties: PublishProperties,
    pub payload: Bytes,
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct PublishProperties {
    pub payload_format_indicator: Option<u8>,
    pub message_expiry_interval: Option<u32>,
    pub topic_alias: Option<u16>,
    pub response_topic: Option<ByteString>,
    pub correlation_data: Option<Bytes>,
    pub user_properties: UserProperties,
    pub subscription_identifiers: Vec<u32>,
    pub content_type: Option<ByteString>,
}

impl PublishProperties {
    pub fn is_empty(&self) -> bool {
        *self == PublishProperties::default()
    }
}

/// An outgoing PUBLISH described by borrowed parts, so a message shared by
/// many subscribers is encoded straight into each connection's write buffer
/// without building a [`Publish`] per subscriber.
#[derive(Debug, Clone, Copy)]
pub struct PublishParts<'a> {
    pub dup: bool,
    pub qos: QoS,
    pub retain: bool,
    /// Empty when `topic_alias` names an alias the client already knows.
    pub topic: &'a str,
    pub packet_id: u16,
    /// Properties forwarded from the publisher. Its `topic_alias`,
    /// `subscription_identifiers` and `message_expiry_interval` are ignored:
    /// the fields below replace them per subscriber.
    pub properties: Option<&'a PublishProperties>,
    pub message_expiry_interval: Option<u32>,
    pub topic_alias: Option<u16>,
    pub subscription_identifiers: &'a [u32],
    pub payload: &'a [u8],
}

impl Publish {
    pub(crate) fn decode(flags: u8, body: Bytes, protocol: Protocol) -> Result<Publish, DecodeError> {
        let dup = flags & 0x08 != 0;
        let qos = QoS::from_u8((flags >> 1) & 0x03).ok_or(DecodeError::InvalidQos)?;
        let retain = flags & 0x01 != 0;
        if dup && qos == QoS::AtMostOnce {
            return Err(DecodeError::DupOnQos0);
        }
        let mut r = Reader::new(body);
        let topic = r.string()?;
        if topic.contains(['+', '#']) {
            return Err(DecodeError::WildcardInTopicName);
        }
        let packet_id = if qos == QoS::AtMostOnce {
            0
        } else {
            match r.u16()? {
                0 => return Err(DecodeError::ZeroPacketId),
                id => id,
            }
        };
        let properties = if protocol.is_v5() {
            let p = Props::decode(&mut r, Kind::Publish)?;
            PublishProperties {
                payload_format_indicator: p.payload_format_indicator,
                message_expiry_interval: p.message_expiry_interval,
                topic_alias: p.topic_alias,
                response_topic: p.response_topic,
                correlation_data: p.correlation_data,
                user_properties: p.user_properties,
                subscription_identifiers: p.subscription_identifiers,
                content_type: p.content_type,
            }
        } else {
            PublishProperties::default()
        };
        if topic.is_empty() && properties.topic_alias.is_none() {
            return Err(DecodeError::EmptyTopic);
        }
        let payload = r.rest();
        if properties.payload_format_indicator == Some(1) && std::str::from_utf8(&payload).is_err() {
            return Err(DecodeError::PayloadNotUtf8);
        }
        Ok(Publish {
            dup,
            qos,
            retain,
            topic,
            packet_id,
            properties,
            payload,
        })
    }

    pub(crate) fn parts(&self) -> PublishParts<'_> {
        PublishParts {
            dup: self.dup,
            qos: self.qos,
            retain: self.retain,
            topic: &self.topic,
            packet_id: self.packet_id,
            properties: Some(&self.properties),
            message_expiry_interval: self.properties.message_expiry_interval,
            topic_alias: self.properties.topic_alias,
            subscription_identifiers: &self.properties.subscription_identifiers,
            payload: &self.payload,
        }
    }
}

fn str_prop_len(s: Option<&ByteString>) -> usize {
    s.map_or(0, |s| 3 + s.len())
}

/// Bytes of the property block (without its length prefix).
fn properties_len(parts: &PublishParts<'_>) -> usize {
    let mut n = 0;
    if let Some(p) = parts.properties {
        n += p.payload_format_indicator.map_or(0, |_| 2);
        n += str_prop_len(p.response_topic.as_ref());
        n += p.correlation_data.as_ref().map_or(0, |d| 3 + d.len());
        n += p
            .user_properties
            .iter()
            .map(|(k, v)| 5 + k.len() + v.len())
            .sum::<usize>();
        n += str_prop_len(p.content_type.as_ref());
    }
    n += parts.message_expiry_interval.map_or(0, |_| 5);
    n += parts.topic_alias.map_or(0, |_| 3);
    n += parts
        .subscription_identifiers
        .iter()
        .map(|&id| 1 + varint_len(id))
        .sum::<usize>();
    n
}

fn remaining_len(parts: &PublishParts<'_>, protocol: Protocol) -> (usize, usize) {
    let props = if protocol.is_v5() { properties_len(parts) } else { 0 };
    let mut n = 2 + parts.topic.len() + parts.payload.len();
    if parts.qos != QoS::AtMostOnce {
        n += 2;
    }
    if protocol.is_v5() {
        n += varint_len(props as u32) + props;
    }
    (n, props)
}

/// The size [`encode_publish_parts`] writes, for Maximum Packet Size checks.
pub fn publish_parts_len(parts: &PublishParts<'_>, protocol: Protocol) -> usize {
    let (remaining, _) = remaining_len(parts, protocol);
    1 + varint_len(remaining as u32) + remaining
}

fn put_str_prop(out: &mut BytesMut, id: u8, s: &[u8]) {
    out.put_u8(id);
    out.put_u16(s.len() as u16);
    out.put_slice(s);
}

/// Writes `parts` to `out`; returns the number of bytes written. Properties
/// are written only for v5.
///
/// Strings longer than 65,535 bytes cannot reach here: every topic and
/// property was decoded from a two-byte length or built by the broker.
pub fn encode_publish_parts(parts: &PublishParts<'_>, protocol: Protocol, out: &mut BytesMut) -> usize {
    let before = out.len();
    let (remaining, props_len) = remaining_len(parts, protocol);
    let first = 0x30 | (u8::from(parts.dup) << 3) | ((parts.qos as u8) << 1) | u8::from(parts.retain);
    if put_fixed_header(out, first, remaining).is_err() {
        return 0;
    }
    out.put_u16(parts.topic.len() as u16);
    out.put_slice(parts.topic.as_bytes());
    if parts.qos != QoS::AtMostOnce {
        out.put_u16(parts.packet_id);
    }
    if protocol.is_v5() {
        put_varint(out, props_len as u32);
        let p = parts.properties;
        if let Some(v) = p.and_then(|p| p.payload_format_indicator) {
            out.put_u8(prop::PAYLOAD_FORMAT_INDICATOR);
            out.put_u8(v);
        }
        if let Some(v) = parts.message_expiry_interval {
            out.put_u8(prop::MESSAGE_EXPIRY_INTERVAL);
            out.put_u32(v);
        }
        if let Some(v) = parts.topic_alias {
            out.put_u8(prop::TOPIC_ALIAS);
            out.put_u16(v);
        }
        if let Some(p) = p {
            if let Some(t) = &p.response_topic {
                put_str_prop(out, prop::RESPONSE_TOPIC, t.as_bytes());
            }
            if let Some(d) = &p.correlation_data {
                put_str_prop(out, prop::CORRELATION_DATA, d);
            }
            for (k, v) in &p.user_properties {
                out.put_u8(prop::USER_PROPERTY);
                out.put_u16(k.len() as u16);
                out.put_slice(k.as_bytes());
                out.put_u16(v.len() as u16);
                out.put_slice(v.as_bytes());
            }
        }
        for &id in parts.subscription_identifiers {
            out.put_u8(prop::SUBSCRIPTION_IDENTIFIER);
            put_varint(out, id);
        }
        if let Some(t) = p.and_then(|p| p.content_type.as_ref()) {
            put_str_prop(out, prop::CONTENT_TYPE, t.as_bytes());
        }
    }
    out.put_slice(parts.payload);
    out.len() - before
}
