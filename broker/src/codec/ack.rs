//! PUBACK, PUBREC, PUBREL and PUBCOMP (MQTT 5.0 §3.4–3.7).

use bytestring::ByteString;

use super::{ReasonCode, UserProperties};

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
