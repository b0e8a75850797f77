//! AUTH (MQTT 5.0 §3.15), v5 only.

use bytes::{BufMut, Bytes, BytesMut};
use bytestring::ByteString;

use super::primitives::Reader;
use super::properties::{self as prop, Kind, PropWriter, Props};
use super::{DecodeError, EncodeError, ReasonCode, UserProperties};

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Auth {
    pub reason_code: ReasonCode,
    pub properties: AuthProperties,
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct AuthProperties {
    pub authentication_method: Option<ByteString>,
    pub authentication_data: Option<Bytes>,
    pub reason_string: Option<ByteString>,
    pub user_properties: UserProperties,
}

impl Auth {
    pub(crate) fn decode(flags: u8, body: Bytes) -> Result<Auth, DecodeError> {
        if flags != 0 {
            return Err(DecodeError::InvalidFlags { packet_type: 15, flags });
        }
        let mut r = Reader::new(body);
        let mut a = Auth::default();
        if !r.is_empty() {
            let code = r.u8()?;
            if ![0x00, 0x18, 0x19].contains(&code) {
                return Err(DecodeError::InvalidReasonCode { code, packet: "AUTH" });
            }
            a.reason_code = ReasonCode(code);
            if !r.is_empty() {
                let p = Props::decode(&mut r, Kind::Auth)?;
                a.properties = AuthProperties {
                    authentication_method: p.authentication_method,
                    authentication_data: p.authentication_data,
                    reason_string: p.reason_string,
                    user_properties: p.user_properties,
                };
            }
        }
        r.finish()?;
        Ok(a)
    }

    pub(crate) fn encode_body(&self, out: &mut BytesMut) -> Result<u8, EncodeError> {
        let p = &self.properties;
        let mut w = PropWriter::default();
        w.str(prop::AUTHENTICATION_METHOD, p.authentication_method.as_ref())?;
        w.bin(prop::AUTHENTICATION_DATA, p.authentication_data.as_ref())?;
        w.str(prop::REASON_STRING, p.reason_string.as_ref())?;
        w.user(&p.user_properties)?;
        if self.reason_code != ReasonCode::SUCCESS || !w.is_empty() {
            out.put_u8(self.reason_code.0);
            w.finish(out);
        }
        Ok(0xF0)
    }
}
