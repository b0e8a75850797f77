//! The byte layout of every stored record.
//!
//! Fixed-size little-endian fields, and for messages the MQTT 5.0 PUBLISH
//! encoding the codec already reads and writes: no second serialisation
//! format to keep in step, and a record is about as small as the packet.
//! Each layout starts with a version byte so a later Tern can read it.

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bytes::{Bytes, BytesMut};

use crate::codec::{self, Packet, Protocol, PublishParts, QoS};
use crate::router::{Message, Subscription};

use super::StoreError;

const VERSION: u8 = 1;

/// Milliseconds since the Unix epoch: stored times must mean the same after
/// a restart, which an `Instant` does not.
pub fn unix_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

fn corrupt(what: &str) -> StoreError {
    StoreError::Record(what.to_owned())
}

fn u64_at(b: &[u8], at: usize) -> Option<u64> {
    Some(u64::from_le_bytes(b.get(at..at + 8)?.try_into().ok()?))
}

fn u32_at(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_le_bytes(b.get(at..at + 4)?.try_into().ok()?))
}

/// A message: version, expiry as Unix milliseconds (0: none), then the
/// PUBLISH as MQTT 5.0 encodes it (its expiry property left out).
pub fn encode_message(msg: &Message) -> Vec<u8> {
    let now = Instant::now();
    let expires = msg.expires_at.map_or(0, |at| {
        let left = at.saturating_duration_since(now);
        unix_ms()
            .saturating_add(u64::try_from(left.as_millis()).unwrap_or(u64::MAX))
            .max(1)
    });
    let parts = PublishParts {
        dup: false,
        qos: msg.qos,
        retain: msg.retain,
        topic: &msg.topic,
        packet_id: if msg.qos == QoS::AtMostOnce { 0 } else { 1 },
        properties: msg.properties.as_deref(),
        message_expiry_interval: None,
        topic_alias: None,
        subscription_identifiers: &[],
        payload: &msg.payload,
    };
    let mut out = BytesMut::with_capacity(9 + codec::publish_parts_len(&parts, Protocol::V5));
    out.extend_from_slice(&[VERSION]);
    out.extend_from_slice(&expires.to_le_bytes());
    codec::encode_publish_parts(&parts, Protocol::V5, &mut out);
    out.to_vec()
}

/// The message of a record, `None` when it expired while stored.
pub fn decode_message(b: &[u8], origin: u64) -> Result<Option<Message>, StoreError> {
    if b.first() != Some(&VERSION) {
        return Err(corrupt("message record of an unknown version"));
    }
    let expires = u64_at(b, 1).ok_or_else(|| corrupt("message record too short"))?;
    let expires_at = if expires == 0 {
        None
    } else {
        let now = unix_ms();
        if expires <= now {
            return Ok(None);
        }
        Some(Instant::now() + Duration::from_millis(expires - now))
    };
    let frame = &b[9..];
    let header = codec::parse_frame_header(frame, u32::MAX)
        .map_err(|e| corrupt(&format!("message record: {e}")))?
        .ok_or_else(|| corrupt("message record truncated"))?;
    let body = frame
        .get(header.header_len..header.header_len + header.remaining_len)
        .ok_or_else(|| corrupt("message record truncated"))?;
    let packet = codec::decode(frame[0], Bytes::copy_from_slice(body), Some(Protocol::V5))
        .map_err(|e| corrupt(&format!("message record: {e}")))?;
    let Packet::Publish(p) = packet else {
        return Err(corrupt("message record is not a PUBLISH"));
    };
    let mut p = p;
    p.properties.topic_alias = None;
    p.properties.message_expiry_interval = None;
    Ok(Some(Message::from_publish(p, expires_at, origin)))
}

/// One message queued for (or in flight to) one session.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DeliveryRecord {
    pub message: u64,
    pub qos: QoS,
    pub retain: bool,
    /// PUBREC received and PUBREL sent: only PUBREL is ever sent again.
    pub released: bool,
    pub subscription_id: Option<u32>,
}

pub const DELIVERY_LEN: usize = 15;

impl DeliveryRecord {
    pub fn encode(&self) -> [u8; DELIVERY_LEN] {
        let mut b = [0; DELIVERY_LEN];
        b[0] = VERSION;
        b[1..9].copy_from_slice(&self.message.to_le_bytes());
        b[9] = self.qos as u8;
        b[10] = u8::from(self.retain) | u8::from(self.released) << 1;
        b[11..15].copy_from_slice(&self.subscription_id.unwrap_or(0).to_le_bytes());
        b
    }

    pub fn decode(b: &[u8]) -> Result<DeliveryRecord, StoreError> {
        if b.len() != DELIVERY_LEN || b[0] != VERSION {
            return Err(corrupt("delivery record of a wrong size or version"));
        }
        let qos = QoS::from_u8(b[9]).ok_or_else(|| corrupt("delivery record with a bad QoS"))?;
        let sub = u32_at(b, 11).unwrap_or(0);
        Ok(DeliveryRecord {
            message: u64_at(b, 1).unwrap_or(0),
            qos,
            retain: b[10] & 1 != 0,
            released: b[10] & 2 != 0,
            subscription_id: (sub != 0).then_some(sub),
        })
    }
}

pub fn encode_subscription(s: &Subscription) -> [u8; 8] {
    let mut b = [0; 8];
    b[0] = VERSION;
    b[1] = s.qos as u8;
    b[2] = u8::from(s.no_local) | u8::from(s.retain_as_published) << 1;
    b[3] = s.retain_handling;
    b[4..8].copy_from_slice(&s.id.unwrap_or(0).to_le_bytes());
    b
}

pub fn decode_subscription(b: &[u8]) -> Result<Subscription, StoreError> {
    if b.len() != 8 || b[0] != VERSION {
        return Err(corrupt("subscription record of a wrong size or version"));
    }
    let id = u32_at(b, 4).unwrap_or(0);
    Ok(Subscription {
        qos: QoS::from_u8(b[1]).ok_or_else(|| corrupt("subscription record with a bad QoS"))?,
        no_local: b[2] & 1 != 0,
        retain_as_published: b[2] & 2 != 0,
        retain_handling: b[3],
        id: (id != 0).then_some(id),
    })
}

/// A session's own fields; its subscriptions, deliveries and inbound QoS 2
/// identifiers are records of their own, so a change to one never rewrites
/// the others.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionRecord {
    pub protocol: Protocol,
    pub expiry_interval: u32,
    /// When its last connection closed (Unix ms); 0 while one was attached,
    /// which after a crash means "when the broker stopped".
    pub disconnected_at: u64,
    /// Deliveries from this sequence number on were never sent (they were
    /// queued when the connection closed, or after): after a restart they
    /// go out as first sends, DUP clear. 0 while a connection is attached:
    /// any of them may have been sent.
    pub unsent_from: u64,
    /// A will waiting for its delay: when it is due (Unix ms) and the
    /// message.
    pub will: Option<(u64, Vec<u8>)>,
}

impl SessionRecord {
    pub fn encode(&self) -> Vec<u8> {
        let mut b = Vec::with_capacity(30 + self.will.as_ref().map_or(0, |w| w.1.len()));
        b.push(VERSION);
        b.push(self.protocol as u8);
        b.extend_from_slice(&self.expiry_interval.to_le_bytes());
        b.extend_from_slice(&self.disconnected_at.to_le_bytes());
        b.extend_from_slice(&self.unsent_from.to_le_bytes());
        if let Some((due, msg)) = &self.will {
            b.extend_from_slice(&due.to_le_bytes());
            b.extend_from_slice(msg);
        }
        b
    }

    pub fn decode(b: &[u8]) -> Result<SessionRecord, StoreError> {
        if b.len() < 22 || b[0] != VERSION {
            return Err(corrupt("session record of a wrong size or version"));
        }
        let protocol = match b[1] {
            3 => Protocol::V3_1,
            4 => Protocol::V3_1_1,
            5 => Protocol::V5,
            _ => return Err(corrupt("session record with a bad protocol level")),
        };
        let will = match u64_at(b, 22) {
            Some(due) => Some((due, b[30..].to_vec())),
            None if b.len() == 22 => None,
            None => return Err(corrupt("session record with a truncated will")),
        };
        Ok(SessionRecord {
            protocol,
            expiry_interval: u32_at(b, 2).unwrap_or(0),
            disconnected_at: u64_at(b, 6).unwrap_or(0),
            unsent_from: u64_at(b, 14).unwrap_or(0),
            will,
        })
    }
}

#[cfg(test)]
mod tests {
    use bytestring::ByteString;

    use super::*;
    use crate::codec::PublishProperties;

    #[test]
    fn message_round_trips_with_properties_and_expiry() {
        let msg = Message {
            topic: ByteString::from("a/b"),
            payload: Bytes::from_static(b"hello"),
            qos: QoS::ExactlyOnce,
            retain: true,
            properties: Some(Box::new(PublishProperties {
                content_type: Some(ByteString::from("text/plain")),
                user_properties: vec![(ByteString::from("k"), ByteString::from("v"))],
                ..Default::default()
            })),
            expires_at: Some(Instant::now() + Duration::from_secs(60)),
            origin: 7,
            stored: Default::default(),
        };
        let back = decode_message(&encode_message(&msg), 0).unwrap().unwrap();
        assert_eq!(back.topic, msg.topic);
        assert_eq!(back.payload, msg.payload);
        assert_eq!(back.qos, msg.qos);
        assert!(back.retain);
        assert_eq!(back.properties, msg.properties);
        let left = back.remaining_expiry(Instant::now()).unwrap();
        assert!((58..=60).contains(&left), "{left}");
    }

    fn qos1(topic: &str, payload: &'static [u8]) -> Message {
        Message {
            topic: ByteString::from(topic),
            payload: Bytes::from_static(payload),
            qos: QoS::AtLeastOnce,
            retain: false,
            properties: None,
            expires_at: None,
            origin: 0,
            stored: Default::default(),
        }
    }

    #[test]
    fn expired_message_decodes_to_none() {
        let mut b = encode_message(&qos1("t", b""));
        b[1..9].copy_from_slice(&1u64.to_le_bytes());
        assert!(decode_message(&b, 0).unwrap().is_none());
    }

    #[test]
    fn truncated_records_are_errors() {
        let b = encode_message(&qos1("t", b"xyz"));
        for cut in 0..b.len() {
            assert!(decode_message(&b[..cut], 0).is_err(), "cut at {cut}");
        }
        assert!(DeliveryRecord::decode(&[1, 2, 3]).is_err());
        assert!(SessionRecord::decode(&[1, 4]).is_err());
    }

    #[test]
    fn session_and_delivery_round_trip() {
        let s = SessionRecord {
            protocol: Protocol::V5,
            expiry_interval: 3600,
            disconnected_at: 1_700_000_000_000,
            unsent_from: 12,
            will: Some((1_700_000_005_000, vec![1, 2, 3])),
        };
        assert_eq!(SessionRecord::decode(&s.encode()).unwrap(), s);
        let s = SessionRecord { will: None, ..s };
        assert_eq!(SessionRecord::decode(&s.encode()).unwrap(), s);
        let d = DeliveryRecord {
            message: 42,
            qos: QoS::ExactlyOnce,
            retain: true,
            released: true,
            subscription_id: Some(9),
        };
        assert_eq!(DeliveryRecord::decode(&d.encode()).unwrap(), d);
        let sub = Subscription {
            qos: QoS::AtLeastOnce,
            no_local: true,
            retain_as_published: false,
            retain_handling: 2,
            id: None,
        };
        assert_eq!(decode_subscription(&encode_subscription(&sub)).unwrap(), sub);
    }
}
