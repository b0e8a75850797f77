//! Decoding and encoding errors. Each decoding error names the normative
//! statement it enforces and maps to the v5 reason code sent back.

use super::ReasonCode;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    #[error("packet of {size} bytes exceeds the maximum packet size of {max} [MQTT-3.2.2-15]")]
    PacketTooLarge { size: usize, max: u32 },
    #[error("remaining length uses more than four bytes [MQTT-1.5.5-1]")]
    MalformedRemainingLength,
    #[error("variable byte integer uses more than four bytes [MQTT-1.5.5-1]")]
    MalformedVarInt,
    #[error("first packet must be CONNECT [MQTT-3.1.0-1]")]
    FirstPacketNotConnect,
    #[error("a second CONNECT is a protocol error [MQTT-3.1.0-2]")]
    SecondConnect,
    #[error("packet type 0 is reserved [MQTT-2.1.2]")]
    ReservedPacketType,
    #[error("AUTH is only defined in MQTT 5.0 [MQTT-2.1.2]")]
    AuthBeforeV5,
    #[error("reserved flags {flags:#06b} wrong for packet type {packet_type} [MQTT-2.1.3-1]")]
    InvalidFlags { packet_type: u8, flags: u8 },
    #[error("packet ends before its fields do [MQTT-1.5]")]
    Truncated,
    #[error("{0} bytes after the last field of the packet")]
    TrailingBytes(usize),
    #[error("string is not valid UTF-8 [MQTT-1.5.4-1]")]
    InvalidUtf8,
    #[error("string contains U+0000 [MQTT-1.5.4-2]")]
    NullCharacter,
    #[error("unsupported protocol name or level {level} [MQTT-3.1.2-1] [MQTT-3.1.2-2]")]
    UnsupportedProtocol { level: u8 },
    #[error("CONNECT reserved flag is set [MQTT-3.1.2-3]")]
    ConnectReservedFlag,
    #[error("will QoS or will retain set without the will flag [MQTT-3.1.2-11] [MQTT-3.1.2-13]")]
    WillFlagsWithoutWill,
    #[error("will QoS 3 [MQTT-3.1.2-12]")]
    InvalidWillQos,
    #[error("password flag set without user name flag [MQTT-3.1.2-22]")]
    PasswordWithoutUsername,
    #[error("QoS 3 in PUBLISH [MQTT-3.3.1-4]")]
    InvalidQos,
    #[error("DUP set on a QoS 0 PUBLISH [MQTT-3.3.1-2]")]
    DupOnQos0,
    #[error("wildcard in a PUBLISH topic name [MQTT-3.3.2-2]")]
    WildcardInTopicName,
    #[error("empty topic name without a topic alias [MQTT-4.7.3-1]")]
    EmptyTopic,
    #[error("packet identifier 0 [MQTT-2.2.1-3]")]
    ZeroPacketId,
    #[error("topic alias 0 [MQTT-3.3.2-8]")]
    TopicAliasZero,
    #[error("property {0:#04x} appears more than once [MQTT-2.2.2-2]")]
    DuplicateProperty(u8),
    #[error("property {id:#04x} is not allowed in {packet} [MQTT-2.2.2-2]")]
    PropertyNotAllowed { id: u8, packet: &'static str },
    #[error("unknown property identifier {0:#04x} [MQTT-2.2.2-2]")]
    UnknownProperty(u8),
    #[error("property {0:#04x} has a value outside its range [MQTT-3.1.2]")]
    InvalidPropertyValue(u8),
    #[error("subscription identifier 0 [MQTT-3.8.2.1.2]")]
    SubscriptionIdZero,
    #[error("payload is not UTF-8 as its payload format indicator says [MQTT-3.3.2-4]")]
    PayloadNotUtf8,
    #[error("SUBSCRIBE or UNSUBSCRIBE without a topic filter [MQTT-3.8.3-2] [MQTT-3.10.3-2]")]
    NoTopicFilters,
    #[error("reserved subscription option bits set [MQTT-3.8.3-5]")]
    SubscriptionOptionsReserved,
    #[error("requested QoS 3 in SUBSCRIBE [MQTT-3.8.3-4]")]
    InvalidSubscriptionQos,
    #[error("retain handling 3 in SUBSCRIBE [MQTT-3.8.3-4]")]
    InvalidRetainHandling,
    #[error("reason code {code:#04x} is not allowed in {packet}")]
    InvalidReasonCode { code: u8, packet: &'static str },
    #[error("CONNACK flags bits 7-1 are reserved [MQTT-3.2.2-1]")]
    ConnAckReservedFlags,
}

impl DecodeError {
    /// The reason code to put in CONNACK or DISCONNECT for this error.
    pub fn reason_code(&self) -> ReasonCode {
        use DecodeError::*;
        match self {
            PacketTooLarge { .. } => ReasonCode::PACKET_TOO_LARGE,
            UnsupportedProtocol { .. } => ReasonCode::UNSUPPORTED_PROTOCOL_VERSION,
            TopicAliasZero => ReasonCode::TOPIC_ALIAS_INVALID,
            PayloadNotUtf8 => ReasonCode::PAYLOAD_FORMAT_INVALID,
            WildcardInTopicName => ReasonCode::TOPIC_NAME_INVALID,
            FirstPacketNotConnect
            | SecondConnect
            | DuplicateProperty(_)
            | InvalidPropertyValue(_)
            | SubscriptionIdZero
            | NoTopicFilters
            | InvalidRetainHandling
            | InvalidSubscriptionQos
            | EmptyTopic
            | AuthBeforeV5
            | ZeroPacketId => ReasonCode::PROTOCOL_ERROR,
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
