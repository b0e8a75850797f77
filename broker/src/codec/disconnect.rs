//! DISCONNECT (MQTT 5.0 §3.14; 3.1.1 §3.14).

use bytes::{BufMut, Bytes, BytesMut};
use bytestring::ByteString;

use super::primitives::Reader;
use super::properties::{self as prop, Kind, PropWriter, Props};
use super::{DecodeError, EncodeError, Protocol, ReasonCode, UserProperties};

/// Reason codes a DISCONNECT may carry (MQTT 5.0 §3.14.2.1).
const DISCONNECT_CODES: &[u8] = &[
    0x00, 0x04, 0x80, 0x81, 0x82, 0x83, 0x87, 0x89, 0x8B, 0x8D, 0x8E, 0x8F, 0x90, 0x93, 0x94, 0x95, 0x96, 0x97, 0x98,
    0x99, 0x9A, 0x9B, 0x9C, 0x9D, 0x9E, 0x9F, 0xA0, 0xA1, 0xA2,
];

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Disconnect {
    pub reason_code: ReasonCode,
    pub properties: DisconnectProperties,
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct DisconnectProperties {
    pub session_expiry_interval: Option<u32>,
    pub reason_string: Option<ByteString>,
    pub user_properties: UserProperties,
    pub server_reference: Option<ByteString>,
}

impl Disconnect {
    pub(crate) fn decode(flags: u8, body: Bytes, protocol: Protocol) -> Result<Disconnect, DecodeError> {
        if flags != 0 {
            return Err(DecodeError::InvalidFlags { packet_type: 14, flags });
        }
        let mut r = Reader::new(body);
        let mut d = Disconnect::default();
        if protocol.is_v5() && !r.is_empty() {
            let code = r.u8()?;
            if !DISCONNECT_CODES.contains(&code) {
                return Err(DecodeError::InvalidReasonCode {
                    code,
                    packet: "DISCONNECT",
                });
            }
            d.reason_code = ReasonCode(code);
            if !r.is_empty() {
                let p = Props::decode(&mut r, Kind::Disconnect)?;
                d.properties = DisconnectProperties {
                    session_expiry_interval: p.session_expiry_interval,
                    reason_string: p.reason_string,
                    user_properties: p.user_properties,
                    server_reference: p.server_reference,
                };
            }
        }
        r.finish()?;
        Ok(d)
    }

    pub(crate) fn encode_body(&self, protocol: Protocol, out: &mut BytesMut) -> Result<u8, EncodeError> {
        let p = &self.properties;
        let no_props = p.session_expiry_interval.is_none()
            && p.reason_string.is_none()
            && p.user_properties.is_empty()
            && p.server_reference.is_none();
        if protocol.is_v5() && !(self.reason_code == ReasonCode::NORMAL_DISCONNECTION && no_props) {
            out.put_u8(self.reason_code.0);
            if !no_props {
                let mut w = PropWriter::default();
                w.u32(prop::SESSION_EXPIRY_INTERVAL, p.session_expiry_interval);
                w.str(prop::REASON_STRING, p.reason_string.as_ref())?;
                w.user(&p.user_properties)?;
                w.str(prop::SERVER_REFERENCE, p.server_reference.as_ref())?;
                w.finish(out);
            }
        }
        Ok(0xE0)
    }
}
