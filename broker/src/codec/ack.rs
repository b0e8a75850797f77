//! PUBACK, PUBREC, PUBREL and PUBCOMP (MQTT 5.0 §3.4–3.7).

use bytes::{BufMut, Bytes, BytesMut};
use bytestring::ByteString;

use super::primitives::Reader;
use super::properties::{self as prop, Kind, PropWriter, Props};
use super::{DecodeError, EncodeError, Protocol, ReasonCode, UserProperties};

/// The body shared by the four QoS acknowledgement packets.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct PubResp {
    pub packet_id: u16,
    pub reason_code: ReasonCode,
    pub properties: AckProperties,
}

/// Properties of the acknowledgements that carry only a reason string and
/// user properties (PUBACK family, SUBACK, UNSUBACK).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct AckProperties {
    pub reason_string: Option<ByteString>,
    pub user_properties: UserProperties,
}

const PUBACK_PUBREC_CODES: &[u8] = &[0x00, 0x10, 0x80, 0x83, 0x87, 0x90, 0x91, 0x97, 0x99];
const PUBREL_PUBCOMP_CODES: &[u8] = &[0x00, 0x92];

fn packet_name(packet_type: u8) -> &'static str {
    match packet_type {
        4 => "PUBACK",
        5 => "PUBREC",
        6 => "PUBREL",
        _ => "PUBCOMP",
    }
}

impl AckProperties {
    pub(crate) fn from_props(p: Props) -> AckProperties {
        AckProperties {
            reason_string: p.reason_string,
            user_properties: p.user_properties,
        }
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.reason_string.is_none() && self.user_properties.is_empty()
    }

    pub(crate) fn write(&self, out: &mut BytesMut) -> Result<(), EncodeError> {
        let mut w = PropWriter::default();
        w.str(prop::REASON_STRING, self.reason_string.as_ref())?;
        w.user(&self.user_properties)?;
        w.finish(out);
        Ok(())
    }
}

impl PubResp {
    /// Decodes PUBACK (4), PUBREC (5), PUBREL (6) or PUBCOMP (7).
    pub(crate) fn decode(packet_type: u8, flags: u8, body: Bytes, protocol: Protocol) -> Result<PubResp, DecodeError> {
        let expected = if packet_type == 6 { 0b0010 } else { 0 };
        if flags != expected {
            return Err(DecodeError::InvalidFlags { packet_type, flags });
        }
        let mut r = Reader::new(body);
        let packet_id = r.u16()?;
        if packet_id == 0 {
            return Err(DecodeError::ZeroPacketId);
        }
        let mut resp = PubResp {
            packet_id,
            ..Default::default()
        };
        // v5 may shorten the packet to the identifier alone when the reason
        // is success and there are no properties [MQTT-3.4.2-1 §3.4.2.1].
        if protocol.is_v5() && !r.is_empty() {
            let code = r.u8()?;
            let allowed = if packet_type <= 5 {
                PUBACK_PUBREC_CODES
            } else {
                PUBREL_PUBCOMP_CODES
            };
            if !allowed.contains(&code) {
                return Err(DecodeError::InvalidReasonCode {
                    code,
                    packet: packet_name(packet_type),
                });
            }
            resp.reason_code = ReasonCode(code);
            if !r.is_empty() {
                resp.properties = AckProperties::from_props(Props::decode(&mut r, Kind::Ack)?);
            }
        }
        r.finish()?;
        Ok(resp)
    }

    pub(crate) fn encode_body(
        &self,
        packet_type: u8,
        protocol: Protocol,
        out: &mut BytesMut,
    ) -> Result<u8, EncodeError> {
        out.put_u16(self.packet_id);
        if protocol.is_v5() && (self.reason_code != ReasonCode::SUCCESS || !self.properties.is_empty()) {
            out.put_u8(self.reason_code.0);
            if !self.properties.is_empty() {
                self.properties.write(out)?;
            }
        }
        let flags = if packet_type == 6 { 0b0010 } else { 0 };
        Ok((packet_type << 4) | flags)
    }
}
