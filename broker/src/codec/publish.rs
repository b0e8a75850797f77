//! PUBLISH (MQTT 5.0 §3.3; 3.1.1 §3.3).

use bytes::{Bytes, BytesMut};
use bytestring::ByteString;

use super::{Protocol, QoS, UserProperties};

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

/// Writes `parts` to `out`; returns the number of bytes written. Properties
/// are written only for v5.
pub fn encode_publish_parts(parts: &PublishParts<'_>, protocol: Protocol, out: &mut BytesMut) -> usize {
    let _ = (parts, protocol, out);
    todo!("codec helper")
}
