//! MQTT 3.1, 3.1.1 and 5.0 packets: types, a strict decoder and an encoder.
//!
//! Owns the wire format and nothing else: it knows no sockets, sessions or
//! time. The decoder works on one frame at a time, bounded by the remaining
//! length, and rejects every malformed case the specifications name with a
//! [`DecodeError`] that carries the normative id and the v5 reason code.
//!
//! One file per packet family; `primitives` and `properties` hold the field
//! encodings they share.

mod ack;
mod auth;
mod connect;
mod disconnect;
mod error;
mod frame;
mod primitives;
mod properties;
mod publish;
mod reason;
mod subscribe;
#[cfg(test)]
mod tests;

pub use ack::{AckProperties, PubResp};
pub use auth::{Auth, AuthProperties};
pub use connect::{ConnAck, ConnAckProperties, Connect, ConnectProperties, LastWill, WillProperties};
pub use disconnect::{Disconnect, DisconnectProperties};
pub use error::{DecodeError, EncodeError};
pub use frame::{FrameHeader, decode, encode, encoded_len, parse_frame_header};
pub use primitives::VARINT_MAX;
pub use publish::{Publish, PublishParts, PublishProperties, encode_publish_parts, publish_parts_len};
pub use reason::ReasonCode;
pub use subscribe::{SubAck, Subscribe, SubscriptionOptions, UnsubAck, Unsubscribe};

pub use bytestring::ByteString;

/// Protocol level byte of CONNECT.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Protocol {
    /// MQTT 3.1, protocol name "MQIsdp", level 3.
    V3_1 = 3,
    /// MQTT 3.1.1, level 4.
    V3_1_1 = 4,
    /// MQTT 5.0, level 5.
    V5 = 5,
}

impl Protocol {
    pub fn is_v5(self) -> bool {
        self == Protocol::V5
    }
}

/// Quality of service of a PUBLISH or a subscription.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub enum QoS {
    #[default]
    AtMostOnce = 0,
    AtLeastOnce = 1,
    ExactlyOnce = 2,
}

impl QoS {
    pub fn from_u8(v: u8) -> Option<QoS> {
        match v {
            0 => Some(QoS::AtMostOnce),
            1 => Some(QoS::AtLeastOnce),
            2 => Some(QoS::ExactlyOnce),
            _ => None,
        }
    }
}

/// User properties in wire order; names may repeat [MQTT-3.1.3-10].
pub type UserProperties = Vec<(ByteString, ByteString)>;

/// Every MQTT control packet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Packet {
    Connect(Box<Connect>),
    ConnAck(ConnAck),
    Publish(Publish),
    PubAck(PubResp),
    PubRec(PubResp),
    PubRel(PubResp),
    PubComp(PubResp),
    Subscribe(Subscribe),
    SubAck(SubAck),
    Unsubscribe(Unsubscribe),
    UnsubAck(UnsubAck),
    PingReq,
    PingResp,
    Disconnect(Disconnect),
    Auth(Auth),
}

impl Packet {
    /// Control packet type, the high nibble of the first byte.
    pub fn packet_type(&self) -> u8 {
        match self {
            Packet::Connect(_) => 1,
            Packet::ConnAck(_) => 2,
            Packet::Publish(_) => 3,
            Packet::PubAck(_) => 4,
            Packet::PubRec(_) => 5,
            Packet::PubRel(_) => 6,
            Packet::PubComp(_) => 7,
            Packet::Subscribe(_) => 8,
            Packet::SubAck(_) => 9,
            Packet::Unsubscribe(_) => 10,
            Packet::UnsubAck(_) => 11,
            Packet::PingReq => 12,
            Packet::PingResp => 13,
            Packet::Disconnect(_) => 14,
            Packet::Auth(_) => 15,
        }
    }
}
