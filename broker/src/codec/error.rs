//! Decoding and encoding errors. Each decoding error names the normative
//! statement it enforces and maps to the v5 reason code sent back.

use super::ReasonCode;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    #[error("packet of {size} bytes exceeds the maximum packet size of {max} [MQTT-3.2.2-15]")]
    PacketTooLarge { size: usize, max: u32 },
    #[error("remaining length uses more than four bytes [MQTT-1.5.5-1]")]
    MalformedRemainingLength,
    #[error("first packet must be CONNECT [MQTT-3.1.0-1]")]
    FirstPacketNotConnect,
}

impl DecodeError {
    /// The reason code to put in CONNACK or DISCONNECT for this error.
    pub fn reason_code(&self) -> ReasonCode {
        match self {
            DecodeError::PacketTooLarge { .. } => ReasonCode::PACKET_TOO_LARGE,
            DecodeError::FirstPacketNotConnect => ReasonCode::PROTOCOL_ERROR,
            _ => ReasonCode::MALFORMED_PACKET,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EncodeError {
    #[error("{what} does not fit its field")]
    FieldTooLong { what: &'static str },
    #[error("packet of {size} bytes exceeds the 268,435,455 byte limit of the remaining length")]
    PacketTooLarge { size: usize },
}
