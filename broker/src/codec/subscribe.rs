//! SUBSCRIBE, SUBACK, UNSUBSCRIBE and UNSUBACK (MQTT 5.0 §3.8–3.11).

use bytes::{BufMut, Bytes, BytesMut};
use bytestring::ByteString;

use super::primitives::{Reader, put_str};
use super::properties::{self as prop, Kind, PropWriter, Props};
use super::{AckProperties, DecodeError, EncodeError, Protocol, QoS, ReasonCode, UserProperties};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Subscribe {
    pub packet_id: u16,
    pub subscription_identifier: Option<u32>,
    pub user_properties: UserProperties,
    /// At least one [MQTT-3.8.3-3].
    pub filters: Vec<(ByteString, SubscriptionOptions)>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct SubscriptionOptions {
    pub qos: QoS,
    pub no_local: bool,
    pub retain_as_published: bool,
    /// 0 send retained on subscribe, 1 only if the subscription is new,
    /// 2 never.
    pub retain_handling: u8,
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SubAck {
    pub packet_id: u16,
    pub properties: AckProperties,
    /// One per filter, in order. 3.1.1 allows 0, 1, 2 and 0x80 only; the
    /// encoder maps every v5 error code to 0x80 there.
    pub reason_codes: Vec<ReasonCode>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unsubscribe {
    pub packet_id: u16,
    pub user_properties: UserProperties,
    pub filters: Vec<ByteString>,
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct UnsubAck {
    pub packet_id: u16,
    pub properties: AckProperties,
    /// v5 only; 3.1.1 UNSUBACK has no payload.
    pub reason_codes: Vec<ReasonCode>,
}

impl SubscriptionOptions {
    fn decode(b: u8, protocol: Protocol) -> Result<SubscriptionOptions, DecodeError> {
        let reserved = if protocol.is_v5() { 0xC0 } else { 0xFC };
        if b & reserved != 0 {
            return Err(DecodeError::SubscriptionOptionsReserved);
        }
        let qos = QoS::from_u8(b & 0x03).ok_or(DecodeError::InvalidSubscriptionQos)?;
        let retain_handling = (b >> 4) & 0x03;
        if retain_handling == 3 {
            return Err(DecodeError::InvalidRetainHandling);
        }
        Ok(SubscriptionOptions {
            qos,
            no_local: b & 0x04 != 0,
            retain_as_published: b & 0x08 != 0,
            retain_handling,
        })
    }

    fn encode(&self, protocol: Protocol) -> u8 {
        let mut b = self.qos as u8;
        if protocol.is_v5() {
            b |= u8::from(self.no_local) << 2
                | u8::from(self.retain_as_published) << 3
                | (self.retain_handling & 3) << 4;
        }
        b
    }
}

fn packet_id(r: &mut Reader) -> Result<u16, DecodeError> {
    match r.u16()? {
        0 => Err(DecodeError::ZeroPacketId),
        id => Ok(id),
    }
}

impl Subscribe {
    pub(crate) fn decode(flags: u8, body: Bytes, protocol: Protocol) -> Result<Subscribe, DecodeError> {
        if flags != 0b0010 {
            return Err(DecodeError::InvalidFlags { packet_type: 8, flags });
        }
        let mut r = Reader::new(body);
        let packet_id = packet_id(&mut r)?;
        let (subscription_identifier, user_properties) = if protocol.is_v5() {
            let p = Props::decode(&mut r, Kind::Subscribe)?;
            (p.subscription_identifiers.first().copied(), p.user_properties)
        } else {
            (None, Vec::new())
        };
        let mut filters = Vec::new();
        while !r.is_empty() {
            let filter = r.string()?;
            let options = SubscriptionOptions::decode(r.u8()?, protocol)?;
            filters.push((filter, options));
        }
        if filters.is_empty() {
            return Err(DecodeError::NoTopicFilters);
        }
        Ok(Subscribe {
            packet_id,
            subscription_identifier,
            user_properties,
            filters,
        })
    }

    pub(crate) fn encode_body(&self, protocol: Protocol, out: &mut BytesMut) -> Result<u8, EncodeError> {
        out.put_u16(self.packet_id);
        if protocol.is_v5() {
            let mut w = PropWriter::default();
            if let Some(id) = self.subscription_identifier {
                w.varint(prop::SUBSCRIPTION_IDENTIFIER, id);
            }
            w.user(&self.user_properties)?;
            w.finish(out);
        }
        for (f, o) in &self.filters {
            put_str(out, f, "topic filter")?;
            out.put_u8(o.encode(protocol));
        }
        Ok(0x82)
    }
}

/// SUBACK codes: 3.1.1 §3.9.3 and 5.0 §3.9.3 [MQTT-3.9.3-2].
const SUBACK_CODES_V3: &[u8] = &[0x00, 0x01, 0x02, 0x80];
const SUBACK_CODES_V5: &[u8] = &[0x00, 0x01, 0x02, 0x80, 0x83, 0x87, 0x8F, 0x91, 0x97, 0x9E, 0xA1, 0xA2];
/// UNSUBACK codes: 5.0 §3.11.3 [MQTT-3.11.3-2].
const UNSUBACK_CODES: &[u8] = &[0x00, 0x11, 0x80, 0x83, 0x87, 0x8F, 0x91];

fn reason_codes(raw: &[u8], allowed: &[u8], packet: &'static str) -> Result<Vec<ReasonCode>, DecodeError> {
    raw.iter()
        .map(|&code| {
            if allowed.contains(&code) {
                Ok(ReasonCode(code))
            } else {
                Err(DecodeError::InvalidReasonCode { code, packet })
            }
        })
        .collect()
}

impl SubAck {
    pub(crate) fn decode(flags: u8, body: Bytes, protocol: Protocol) -> Result<SubAck, DecodeError> {
        if flags != 0 {
            return Err(DecodeError::InvalidFlags { packet_type: 9, flags });
        }
        let mut r = Reader::new(body);
        let packet_id = packet_id(&mut r)?;
        let properties = if protocol.is_v5() {
            AckProperties::from_props(Props::decode(&mut r, Kind::SubAck)?)
        } else {
            AckProperties::default()
        };
        let allowed = if protocol.is_v5() {
            SUBACK_CODES_V5
        } else {
            SUBACK_CODES_V3
        };
        let reason_codes = reason_codes(&r.rest(), allowed, "SUBACK")?;
        Ok(SubAck {
            packet_id,
            properties,
            reason_codes,
        })
    }

    pub(crate) fn encode_body(&self, protocol: Protocol, out: &mut BytesMut) -> Result<u8, EncodeError> {
        out.put_u16(self.packet_id);
        if protocol.is_v5() {
            self.properties.write(out)?;
            out.extend(self.reason_codes.iter().map(|c| c.0));
        } else {
            // 3.1.1 knows only granted QoS 0-2 and failure 0x80 [MQTT-3.9.3].
            out.extend(self.reason_codes.iter().map(|c| if c.is_error() { 0x80 } else { c.0 }));
        }
        Ok(0x90)
    }
}

impl Unsubscribe {
    pub(crate) fn decode(flags: u8, body: Bytes, protocol: Protocol) -> Result<Unsubscribe, DecodeError> {
        if flags != 0b0010 {
            return Err(DecodeError::InvalidFlags { packet_type: 10, flags });
        }
        let mut r = Reader::new(body);
        let packet_id = packet_id(&mut r)?;
        let user_properties = if protocol.is_v5() {
            Props::decode(&mut r, Kind::Unsubscribe)?.user_properties
        } else {
            Vec::new()
        };
        let mut filters = Vec::new();
        while !r.is_empty() {
            filters.push(r.string()?);
        }
        if filters.is_empty() {
            return Err(DecodeError::NoTopicFilters);
        }
        Ok(Unsubscribe {
            packet_id,
            user_properties,
            filters,
        })
    }

    pub(crate) fn encode_body(&self, protocol: Protocol, out: &mut BytesMut) -> Result<u8, EncodeError> {
        out.put_u16(self.packet_id);
        if protocol.is_v5() {
            let mut w = PropWriter::default();
            w.user(&self.user_properties)?;
            w.finish(out);
        }
        for f in &self.filters {
            put_str(out, f, "topic filter")?;
        }
        Ok(0xA2)
    }
}

impl UnsubAck {
    pub(crate) fn decode(flags: u8, body: Bytes, protocol: Protocol) -> Result<UnsubAck, DecodeError> {
        if flags != 0 {
            return Err(DecodeError::InvalidFlags { packet_type: 11, flags });
        }
        let mut r = Reader::new(body);
        let packet_id = packet_id(&mut r)?;
        if !protocol.is_v5() {
            r.finish()?;
            return Ok(UnsubAck {
                packet_id,
                ..Default::default()
            });
        }
        let properties = AckProperties::from_props(Props::decode(&mut r, Kind::UnsubAck)?);
        let reason_codes = reason_codes(&r.rest(), UNSUBACK_CODES, "UNSUBACK")?;
        Ok(UnsubAck {
            packet_id,
            properties,
            reason_codes,
        })
    }

    pub(crate) fn encode_body(&self, protocol: Protocol, out: &mut BytesMut) -> Result<u8, EncodeError> {
        out.put_u16(self.packet_id);
        if protocol.is_v5() {
            self.properties.write(out)?;
            out.extend(self.reason_codes.iter().map(|c| c.0));
        }
        Ok(0xB0)
    }
}
