//! v5 properties (MQTT 5.0 §2.2.2): one decoder for every packet, checking
//! each identifier against the packets that may carry it and refusing
//! duplicates; writers for the encoders.

use bytes::{BufMut, Bytes, BytesMut};
use bytestring::ByteString;

use super::primitives::{Reader, VARINT_MAX, put_binary, put_str, put_varint};
use super::{DecodeError, EncodeError, UserProperties};

pub(crate) const PAYLOAD_FORMAT_INDICATOR: u8 = 0x01;
pub(crate) const MESSAGE_EXPIRY_INTERVAL: u8 = 0x02;
pub(crate) const CONTENT_TYPE: u8 = 0x03;
pub(crate) const RESPONSE_TOPIC: u8 = 0x08;
pub(crate) const CORRELATION_DATA: u8 = 0x09;
pub(crate) const SUBSCRIPTION_IDENTIFIER: u8 = 0x0B;
pub(crate) const SESSION_EXPIRY_INTERVAL: u8 = 0x11;
pub(crate) const ASSIGNED_CLIENT_IDENTIFIER: u8 = 0x12;
pub(crate) const SERVER_KEEP_ALIVE: u8 = 0x13;
pub(crate) const AUTHENTICATION_METHOD: u8 = 0x15;
pub(crate) const AUTHENTICATION_DATA: u8 = 0x16;
pub(crate) const REQUEST_PROBLEM_INFORMATION: u8 = 0x17;
pub(crate) const WILL_DELAY_INTERVAL: u8 = 0x18;
pub(crate) const REQUEST_RESPONSE_INFORMATION: u8 = 0x19;
pub(crate) const RESPONSE_INFORMATION: u8 = 0x1A;
pub(crate) const SERVER_REFERENCE: u8 = 0x1C;
pub(crate) const REASON_STRING: u8 = 0x1F;
pub(crate) const RECEIVE_MAXIMUM: u8 = 0x21;
pub(crate) const TOPIC_ALIAS_MAXIMUM: u8 = 0x22;
pub(crate) const TOPIC_ALIAS: u8 = 0x23;
pub(crate) const MAXIMUM_QOS: u8 = 0x24;
pub(crate) const RETAIN_AVAILABLE: u8 = 0x25;
pub(crate) const USER_PROPERTY: u8 = 0x26;
pub(crate) const MAXIMUM_PACKET_SIZE: u8 = 0x27;
pub(crate) const WILDCARD_SUBSCRIPTION_AVAILABLE: u8 = 0x28;
pub(crate) const SUBSCRIPTION_IDENTIFIER_AVAILABLE: u8 = 0x29;
pub(crate) const SHARED_SUBSCRIPTION_AVAILABLE: u8 = 0x2A;

/// Which packet a property block belongs to (MQTT 5.0 table 2-4).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    Connect,
    Will,
    ConnAck,
    Publish,
    Ack,
    Subscribe,
    SubAck,
    Unsubscribe,
    UnsubAck,
    Disconnect,
    Auth,
}

impl Kind {
    fn name(self) -> &'static str {
        match self {
            Kind::Connect => "CONNECT",
            Kind::Will => "will properties",
            Kind::ConnAck => "CONNACK",
            Kind::Publish => "PUBLISH",
            Kind::Ack => "PUBACK/PUBREC/PUBREL/PUBCOMP",
            Kind::Subscribe => "SUBSCRIBE",
            Kind::SubAck => "SUBACK",
            Kind::Unsubscribe => "UNSUBSCRIBE",
            Kind::UnsubAck => "UNSUBACK",
            Kind::Disconnect => "DISCONNECT",
            Kind::Auth => "AUTH",
        }
    }
}

fn allowed(id: u8, kind: Kind) -> Result<bool, DecodeError> {
    use Kind::*;
    Ok(match id {
        PAYLOAD_FORMAT_INDICATOR | MESSAGE_EXPIRY_INTERVAL | CONTENT_TYPE | RESPONSE_TOPIC | CORRELATION_DATA => {
            matches!(kind, Publish | Will)
        }
        SUBSCRIPTION_IDENTIFIER => matches!(kind, Publish | Subscribe),
        SESSION_EXPIRY_INTERVAL => matches!(kind, Connect | ConnAck | Disconnect),
        ASSIGNED_CLIENT_IDENTIFIER | SERVER_KEEP_ALIVE | RESPONSE_INFORMATION | MAXIMUM_QOS | RETAIN_AVAILABLE => {
            kind == ConnAck
        }
        WILDCARD_SUBSCRIPTION_AVAILABLE | SUBSCRIPTION_IDENTIFIER_AVAILABLE | SHARED_SUBSCRIPTION_AVAILABLE => {
            kind == ConnAck
        }
        AUTHENTICATION_METHOD | AUTHENTICATION_DATA => matches!(kind, Connect | ConnAck | Auth),
        REQUEST_PROBLEM_INFORMATION | REQUEST_RESPONSE_INFORMATION => kind == Connect,
        WILL_DELAY_INTERVAL => kind == Will,
        SERVER_REFERENCE => matches!(kind, ConnAck | Disconnect),
        REASON_STRING => matches!(kind, ConnAck | Ack | SubAck | UnsubAck | Disconnect | Auth),
        RECEIVE_MAXIMUM | TOPIC_ALIAS_MAXIMUM | MAXIMUM_PACKET_SIZE => matches!(kind, Connect | ConnAck),
        TOPIC_ALIAS => kind == Publish,
        USER_PROPERTY => true,
        other => return Err(DecodeError::UnknownProperty(other)),
    })
}

/// Every property any packet can carry; each packet's decoder takes the
/// fields it owns.
#[derive(Debug, Default)]
pub(crate) struct Props {
    pub payload_format_indicator: Option<u8>,
    pub message_expiry_interval: Option<u32>,
    pub content_type: Option<ByteString>,
    pub response_topic: Option<ByteString>,
    pub correlation_data: Option<Bytes>,
    pub subscription_identifiers: Vec<u32>,
    pub session_expiry_interval: Option<u32>,
    pub assigned_client_identifier: Option<ByteString>,
    pub server_keep_alive: Option<u16>,
    pub authentication_method: Option<ByteString>,
    pub authentication_data: Option<Bytes>,
    pub request_problem_information: Option<u8>,
    pub will_delay_interval: Option<u32>,
    pub request_response_information: Option<u8>,
    pub response_information: Option<ByteString>,
    pub server_reference: Option<ByteString>,
    pub reason_string: Option<ByteString>,
    pub receive_maximum: Option<u16>,
    pub topic_alias_maximum: Option<u16>,
    pub topic_alias: Option<u16>,
    pub maximum_qos: Option<u8>,
    pub retain_available: Option<u8>,
    pub user_properties: UserProperties,
    pub maximum_packet_size: Option<u32>,
    pub wildcard_subscription_available: Option<u8>,
    pub subscription_identifier_available: Option<u8>,
    pub shared_subscription_available: Option<u8>,
}

fn once<T>(slot: &mut Option<T>, id: u8, value: T) -> Result<(), DecodeError> {
    if slot.is_some() {
        return Err(DecodeError::DuplicateProperty(id));
    }
    *slot = Some(value);
    Ok(())
}

fn flag(r: &mut Reader, id: u8) -> Result<u8, DecodeError> {
    match r.u8()? {
        v @ (0 | 1) => Ok(v),
        _ => Err(DecodeError::InvalidPropertyValue(id)),
    }
}

impl Props {
    /// Reads a property length and the block it announces.
    pub fn decode(r: &mut Reader, kind: Kind) -> Result<Props, DecodeError> {
        let len = r.varint()? as usize;
        let mut p = Props::default();
        if len == 0 {
            return Ok(p);
        }
        let mut r = r.sub(len)?;
        while !r.is_empty() {
            // Identifiers are variable byte integers, but every defined one
            // fits in one byte.
            let id = u8::try_from(r.varint()?).map_err(|_| DecodeError::UnknownProperty(0xFF))?;
            if !allowed(id, kind)? {
                return Err(DecodeError::PropertyNotAllowed {
                    id,
                    packet: kind.name(),
                });
            }
            match id {
                PAYLOAD_FORMAT_INDICATOR => {
                    let v = flag(&mut r, id)?;
                    once(&mut p.payload_format_indicator, id, v)?
                }
                MESSAGE_EXPIRY_INTERVAL => once(&mut p.message_expiry_interval, id, r.u32()?)?,
                CONTENT_TYPE => once(&mut p.content_type, id, r.string()?)?,
                RESPONSE_TOPIC => {
                    let t = r.string()?;
                    if t.contains(['+', '#']) {
                        return Err(DecodeError::WildcardInTopicName);
                    }
                    once(&mut p.response_topic, id, t)?
                }
                CORRELATION_DATA => once(&mut p.correlation_data, id, r.binary()?)?,
                SUBSCRIPTION_IDENTIFIER => {
                    let v = r.varint()?;
                    if v == 0 {
                        return Err(DecodeError::SubscriptionIdZero);
                    }
                    if kind == Kind::Subscribe && !p.subscription_identifiers.is_empty() {
                        return Err(DecodeError::DuplicateProperty(id));
                    }
                    p.subscription_identifiers.push(v);
                }
                SESSION_EXPIRY_INTERVAL => once(&mut p.session_expiry_interval, id, r.u32()?)?,
                ASSIGNED_CLIENT_IDENTIFIER => once(&mut p.assigned_client_identifier, id, r.string()?)?,
                SERVER_KEEP_ALIVE => once(&mut p.server_keep_alive, id, r.u16()?)?,
                AUTHENTICATION_METHOD => once(&mut p.authentication_method, id, r.string()?)?,
                AUTHENTICATION_DATA => once(&mut p.authentication_data, id, r.binary()?)?,
                REQUEST_PROBLEM_INFORMATION => {
                    let v = flag(&mut r, id)?;
                    once(&mut p.request_problem_information, id, v)?
                }
                WILL_DELAY_INTERVAL => once(&mut p.will_delay_interval, id, r.u32()?)?,
                REQUEST_RESPONSE_INFORMATION => {
                    let v = flag(&mut r, id)?;
                    once(&mut p.request_response_information, id, v)?
                }
                RESPONSE_INFORMATION => once(&mut p.response_information, id, r.string()?)?,
                SERVER_REFERENCE => once(&mut p.server_reference, id, r.string()?)?,
                REASON_STRING => once(&mut p.reason_string, id, r.string()?)?,
                RECEIVE_MAXIMUM => {
                    let v = r.u16()?;
                    if v == 0 {
                        return Err(DecodeError::InvalidPropertyValue(id));
                    }
                    once(&mut p.receive_maximum, id, v)?
                }
                TOPIC_ALIAS_MAXIMUM => once(&mut p.topic_alias_maximum, id, r.u16()?)?,
                TOPIC_ALIAS => {
                    let v = r.u16()?;
                    if v == 0 {
                        return Err(DecodeError::TopicAliasZero);
                    }
                    once(&mut p.topic_alias, id, v)?
                }
                MAXIMUM_QOS => {
                    let v = flag(&mut r, id)?;
                    once(&mut p.maximum_qos, id, v)?
                }
                RETAIN_AVAILABLE => {
                    let v = flag(&mut r, id)?;
                    once(&mut p.retain_available, id, v)?
                }
                USER_PROPERTY => {
                    let k = r.string()?;
                    let v = r.string()?;
                    p.user_properties.push((k, v));
                }
                MAXIMUM_PACKET_SIZE => {
                    let v = r.u32()?;
                    if v == 0 {
                        return Err(DecodeError::InvalidPropertyValue(id));
                    }
                    once(&mut p.maximum_packet_size, id, v)?
                }
                WILDCARD_SUBSCRIPTION_AVAILABLE => {
                    let v = flag(&mut r, id)?;
                    once(&mut p.wildcard_subscription_available, id, v)?
                }
                SUBSCRIPTION_IDENTIFIER_AVAILABLE => {
                    let v = flag(&mut r, id)?;
                    once(&mut p.subscription_identifier_available, id, v)?
                }
                SHARED_SUBSCRIPTION_AVAILABLE => {
                    let v = flag(&mut r, id)?;
                    once(&mut p.shared_subscription_available, id, v)?
                }
                other => return Err(DecodeError::UnknownProperty(other)),
            }
        }
        Ok(p)
    }
}

/// Collects a property block for encoding, then writes it with its length.
#[derive(Default)]
pub(crate) struct PropWriter {
    buf: BytesMut,
}

impl PropWriter {
    pub fn u8(&mut self, id: u8, v: Option<u8>) {
        if let Some(v) = v {
            self.buf.put_u8(id);
            self.buf.put_u8(v);
        }
    }

    pub fn flag(&mut self, id: u8, v: Option<bool>) {
        self.u8(id, v.map(u8::from));
    }

    pub fn u16(&mut self, id: u8, v: Option<u16>) {
        if let Some(v) = v {
            self.buf.put_u8(id);
            self.buf.put_u16(v);
        }
    }

    pub fn u32(&mut self, id: u8, v: Option<u32>) {
        if let Some(v) = v {
            self.buf.put_u8(id);
            self.buf.put_u32(v);
        }
    }

    pub fn varint(&mut self, id: u8, v: u32) {
        self.buf.put_u8(id);
        put_varint(&mut self.buf, v.min(VARINT_MAX));
    }

    pub fn str(&mut self, id: u8, v: Option<&ByteString>) -> Result<(), EncodeError> {
        if let Some(v) = v {
            self.buf.put_u8(id);
            put_str(&mut self.buf, v, "string property")?;
        }
        Ok(())
    }

    pub fn bin(&mut self, id: u8, v: Option<&Bytes>) -> Result<(), EncodeError> {
        if let Some(v) = v {
            self.buf.put_u8(id);
            put_binary(&mut self.buf, v, "binary property")?;
        }
        Ok(())
    }

    pub fn user(&mut self, props: &UserProperties) -> Result<(), EncodeError> {
        for (k, v) in props {
            self.buf.put_u8(USER_PROPERTY);
            put_str(&mut self.buf, k, "user property name")?;
            put_str(&mut self.buf, v, "user property value")?;
        }
        Ok(())
    }

    pub fn is_empty(&self) -> bool {
        self.buf.is_empty()
    }

    /// Length prefix and block, appended to `out`.
    pub fn finish(self, out: &mut BytesMut) {
        put_varint(out, self.buf.len() as u32);
        out.put_slice(&self.buf);
    }
}
