//! Frames as real clients send them: captured from Debian's
//! `mosquitto_pub` / `mosquitto_sub` (mosquitto-clients 2.0) connecting to a
//! listener that logged every frame in hex and answered with just enough
//! (CONNACK, SUBACK, PUBACK, PUBREC, PUBCOMP) to keep them going. The
//! command line is above each capture.
//!
//! Each is decoded and checked field by field, then re-encoded: Tern writes
//! fields and properties in the same order as mosquitto, so the bytes must
//! come back identical.

use bytes::Bytes;

use super::{decode_frame, encode_checked, session_protocol};
use crate::codec::{Packet, Protocol, QoS, ReasonCode};

// mosquitto_pub -V mqttv5 -i tern-cap -q 1 -t sensors/temp -m 21.5
//   -D publish user-property unit celsius -D publish content-type text/plain
//   -D connect session-expiry-interval 60
#[rustfmt::skip]
pub(super) const V5_PUB_CONNECT: &[u8] = &[
    0x10, 0x1d,                                     // CONNECT, 29 bytes
    0x00, 0x04, b'M', b'Q', b'T', b'T', 0x05,       // "MQTT" level 5
    0x02, 0x00, 0x3c,                               // clean start, keep alive 60
    0x08,                                           // 8 bytes of properties:
    0x11, 0x00, 0x00, 0x00, 0x3c,                   //   session expiry 60
    0x21, 0x00, 0x14,                               //   receive maximum 20
    0x00, 0x08, b't', b'e', b'r', b'n', b'-', b'c', b'a', b'p',
];
#[rustfmt::skip]
pub(super) const V5_PUB_PUBLISH_QOS1: &[u8] = &[
    0x32, 0x32,                                     // PUBLISH QoS 1, 50 bytes
    0x00, 0x0c, b's', b'e', b'n', b's', b'o', b'r', b's', b'/', b't', b'e', b'm', b'p',
    0x00, 0x01,                                     // packet id 1
    0x1d,                                           // 29 bytes of properties:
    0x26, 0x00, 0x04, b'u', b'n', b'i', b't',       //   user property "unit"
    0x00, 0x07, b'c', b'e', b'l', b's', b'i', b'u', b's', // = "celsius"
    0x03, 0x00, 0x0a, b't', b'e', b'x', b't', b'/', b'p', b'l', b'a', b'i', b'n', // content type
    b'2', b'1', b'.', b'5',                         // payload
];

// mosquitto_pub -V mqttv5 -i tern-cap -q 2 -t a/b -m hello
#[rustfmt::skip]
pub(super) const V5_PUB_PUBLISH_QOS2: &[u8] = &[
    0x34, 0x0d,                                     // PUBLISH QoS 2, 13 bytes
    0x00, 0x03, b'a', b'/', b'b',
    0x00, 0x01,                                     // packet id 1
    0x00,                                           // no properties
    b'h', b'e', b'l', b'l', b'o',
];
// Sent after the PUBREC: reason code and properties left out (§3.6.2.1).
pub(super) const V5_PUB_PUBREL: &[u8] = &[0x62, 0x02, 0x00, 0x01];

// mosquitto_pub -V mqttv311 -i tern-cap -q 0 -r -t sensors/temp -m 21.5
//   -u alice -P secret --will-topic clients/tern-cap --will-payload gone --will-qos 1
#[rustfmt::skip]
pub(super) const V311_PUB_CONNECT: &[u8] = &[
    0x10, 0x3b,                                     // CONNECT, 59 bytes
    0x00, 0x04, b'M', b'Q', b'T', b'T', 0x04,       // "MQTT" level 4
    0xce,                                           // user, password, will QoS 1, will, clean
    0x00, 0x3c,                                     // keep alive 60
    0x00, 0x08, b't', b'e', b'r', b'n', b'-', b'c', b'a', b'p',
    0x00, 0x10, b'c', b'l', b'i', b'e', b'n', b't', b's', b'/', b't', b'e', b'r', b'n', b'-', b'c', b'a', b'p',
    0x00, 0x04, b'g', b'o', b'n', b'e',             // will payload
    0x00, 0x05, b'a', b'l', b'i', b'c', b'e',
    0x00, 0x06, b's', b'e', b'c', b'r', b'e', b't',
];
#[rustfmt::skip]
pub(super) const V311_PUB_PUBLISH_RETAIN: &[u8] = &[
    0x31, 0x12,                                     // PUBLISH QoS 0 retained, 18 bytes
    0x00, 0x0c, b's', b'e', b'n', b's', b'o', b'r', b's', b'/', b't', b'e', b'm', b'p',
    b'2', b'1', b'.', b'5',
];

// mosquitto_sub -V mqttv5 -i tern-sub -q 2 -t 'sensors/+/temp' -t 'alerts/#' -W 1
//   -D subscribe subscription-identifier 7 -D subscribe user-property k v
#[rustfmt::skip]
pub(super) const V5_SUB_CONNECT: &[u8] = &[
    0x10, 0x18,
    0x00, 0x04, b'M', b'Q', b'T', b'T', 0x05,
    0x02, 0x00, 0x3c,
    0x03, 0x21, 0x00, 0x14,                         // receive maximum 20
    0x00, 0x08, b't', b'e', b'r', b'n', b'-', b's', b'u', b'b',
];
#[rustfmt::skip]
pub(super) const V5_SUB_SUBSCRIBE: &[u8] = &[
    0x82, 0x28,                                     // SUBSCRIBE, 40 bytes
    0x00, 0x01,                                     // packet id 1
    0x09,                                           // 9 bytes of properties:
    0x0b, 0x07,                                     //   subscription identifier 7
    0x26, 0x00, 0x01, b'k', 0x00, 0x01, b'v',       //   user property k = v
    0x00, 0x0e, b's', b'e', b'n', b's', b'o', b'r', b's', b'/', b'+', b'/', b't', b'e', b'm', b'p',
    0x02,                                           // QoS 2
    0x00, 0x08, b'a', b'l', b'e', b'r', b't', b's', b'/', b'#',
    0x02,
];
// What `-W 1` sends when its timeout fires: reason 0x04, disconnect with
// will message, and no properties.
pub(super) const V5_SUB_DISCONNECT: &[u8] = &[0xe0, 0x01, 0x04];

// mosquitto_sub -V mqttv311 -i tern-sub -q 1 -t 'sensors/#' -W 1
#[rustfmt::skip]
pub(super) const V311_SUB_CONNECT: &[u8] = &[
    0x10, 0x14,
    0x00, 0x04, b'M', b'Q', b'T', b'T', 0x04,
    0x02, 0x00, 0x3c,
    0x00, 0x08, b't', b'e', b'r', b'n', b'-', b's', b'u', b'b',
];
#[rustfmt::skip]
pub(super) const V311_SUB_SUBSCRIBE: &[u8] = &[
    0x82, 0x0e,
    0x00, 0x01,
    0x00, 0x09, b's', b'e', b'n', b's', b'o', b'r', b's', b'/', b'#',
    0x01,
];

// mosquitto_pub -V mqttv31 -i tern-cap -q 0 -t a/b -m hi
#[rustfmt::skip]
pub(super) const V31_PUB_CONNECT: &[u8] = &[
    0x10, 0x16,
    0x00, 0x06, b'M', b'Q', b'I', b's', b'd', b'p', 0x03, // "MQIsdp" level 3
    0x02, 0x00, 0x3c,
    0x00, 0x08, b't', b'e', b'r', b'n', b'-', b'c', b'a', b'p',
];
pub(super) const V31_PUB_PUBLISH: &[u8] = &[0x30, 0x07, 0x00, 0x03, b'a', b'/', b'b', b'h', b'i'];

/// Every client above ends with this DISCONNECT, in every version.
pub(super) const DISCONNECT: &[u8] = &[0xe0, 0x00];

/// Decodes, then checks the encoder gives back the captured bytes.
fn decode_and_reencode(bytes: &[u8], protocol: Protocol) -> Packet {
    let protocol_now = match bytes[0] >> 4 {
        1 => None,
        _ => Some(protocol),
    };
    let packet = decode_frame(bytes, protocol_now).unwrap_or_else(|e| panic!("{bytes:02x?}: {e}"));
    assert_eq!(session_protocol(&packet, protocol), protocol_now);
    assert_eq!(&encode_checked(&packet, protocol)[..], bytes, "re-encoding {packet:?}");
    packet
}

#[test]
fn mosquitto_pub_v5() {
    let Packet::Connect(c) = decode_and_reencode(V5_PUB_CONNECT, Protocol::V5) else {
        panic!("not CONNECT")
    };
    assert_eq!(c.protocol, Protocol::V5);
    assert!(c.clean_start);
    assert_eq!(c.keep_alive, 60);
    assert_eq!(c.client_id, "tern-cap");
    assert_eq!(c.properties.session_expiry_interval, Some(60));
    assert_eq!(c.properties.receive_maximum, Some(20));
    assert!(c.will.is_none() && c.username.is_none() && c.password.is_none());

    let Packet::Publish(p) = decode_and_reencode(V5_PUB_PUBLISH_QOS1, Protocol::V5) else {
        panic!("not PUBLISH")
    };
    assert_eq!(
        (p.qos, p.dup, p.retain, p.packet_id),
        (QoS::AtLeastOnce, false, false, 1)
    );
    assert_eq!(p.topic, "sensors/temp");
    assert_eq!(p.properties.user_properties, vec![("unit".into(), "celsius".into())]);
    assert_eq!(p.properties.content_type.as_deref(), Some("text/plain"));
    assert_eq!(p.payload, Bytes::from_static(b"21.5"));

    let Packet::Publish(p) = decode_and_reencode(V5_PUB_PUBLISH_QOS2, Protocol::V5) else {
        panic!("not PUBLISH")
    };
    assert_eq!((p.qos, p.packet_id), (QoS::ExactlyOnce, 1));
    assert!(p.properties.is_empty());
    assert_eq!(p.payload, Bytes::from_static(b"hello"));

    let Packet::PubRel(r) = decode_and_reencode(V5_PUB_PUBREL, Protocol::V5) else {
        panic!("not PUBREL")
    };
    assert_eq!((r.packet_id, r.reason_code), (1, ReasonCode::SUCCESS));

    assert_eq!(
        decode_and_reencode(DISCONNECT, Protocol::V5),
        Packet::Disconnect(Default::default())
    );
}

#[test]
fn mosquitto_pub_v311_with_will_and_credentials() {
    let Packet::Connect(c) = decode_and_reencode(V311_PUB_CONNECT, Protocol::V3_1_1) else {
        panic!("not CONNECT")
    };
    assert_eq!(c.protocol, Protocol::V3_1_1);
    assert_eq!(c.client_id, "tern-cap");
    let will = c.will.as_ref().expect("will");
    assert_eq!(will.topic, "clients/tern-cap");
    assert_eq!(will.payload, Bytes::from_static(b"gone"));
    assert_eq!((will.qos, will.retain), (QoS::AtLeastOnce, false));
    assert_eq!(c.username.as_deref(), Some("alice"));
    assert_eq!(c.password.as_deref(), Some(&b"secret"[..]));

    let Packet::Publish(p) = decode_and_reencode(V311_PUB_PUBLISH_RETAIN, Protocol::V3_1_1) else {
        panic!("not PUBLISH")
    };
    assert_eq!((p.qos, p.retain, p.packet_id), (QoS::AtMostOnce, true, 0));
    assert_eq!(p.topic, "sensors/temp");
    assert_eq!(p.payload, Bytes::from_static(b"21.5"));

    decode_and_reencode(DISCONNECT, Protocol::V3_1_1);
}

#[test]
fn mosquitto_sub_v5_with_subscription_identifier() {
    let Packet::Connect(c) = decode_and_reencode(V5_SUB_CONNECT, Protocol::V5) else {
        panic!("not CONNECT")
    };
    assert_eq!(c.client_id, "tern-sub");

    let Packet::Subscribe(s) = decode_and_reencode(V5_SUB_SUBSCRIBE, Protocol::V5) else {
        panic!("not SUBSCRIBE")
    };
    assert_eq!(s.packet_id, 1);
    assert_eq!(s.subscription_identifier, Some(7));
    assert_eq!(s.user_properties, vec![("k".into(), "v".into())]);
    let filters: Vec<(&str, QoS)> = s.filters.iter().map(|(f, o)| (&**f, o.qos)).collect();
    assert_eq!(
        filters,
        [("sensors/+/temp", QoS::ExactlyOnce), ("alerts/#", QoS::ExactlyOnce)]
    );
    assert!(
        s.filters
            .iter()
            .all(|(_, o)| !o.no_local && !o.retain_as_published && o.retain_handling == 0)
    );

    let Packet::Disconnect(d) = decode_and_reencode(V5_SUB_DISCONNECT, Protocol::V5) else {
        panic!("not DISCONNECT")
    };
    assert_eq!(d.reason_code, ReasonCode::DISCONNECT_WITH_WILL);
}

#[test]
fn mosquitto_sub_v311() {
    let Packet::Connect(c) = decode_and_reencode(V311_SUB_CONNECT, Protocol::V3_1_1) else {
        panic!("not CONNECT")
    };
    assert_eq!((c.protocol, c.client_id.as_ref()), (Protocol::V3_1_1, "tern-sub"));

    let Packet::Subscribe(s) = decode_and_reencode(V311_SUB_SUBSCRIBE, Protocol::V3_1_1) else {
        panic!("not SUBSCRIBE")
    };
    assert_eq!(s.filters.len(), 1);
    assert_eq!((&*s.filters[0].0, s.filters[0].1.qos), ("sensors/#", QoS::AtLeastOnce));
}

#[test]
fn mosquitto_pub_v31() {
    let Packet::Connect(c) = decode_and_reencode(V31_PUB_CONNECT, Protocol::V3_1) else {
        panic!("not CONNECT")
    };
    assert_eq!(c.protocol, Protocol::V3_1);
    let Packet::Publish(p) = decode_and_reencode(V31_PUB_PUBLISH, Protocol::V3_1) else {
        panic!("not PUBLISH")
    };
    assert_eq!((p.topic.as_ref(), &p.payload[..]), ("a/b", &b"hi"[..]));
}

#[test]
fn a_stream_of_frames_splits_at_the_right_places() {
    // The frames of one session back to back, as one read returns them.
    let stream: Vec<u8> = [V5_PUB_CONNECT, V5_PUB_PUBLISH_QOS1, V5_PUB_PUBLISH_QOS2, DISCONNECT].concat();
    let mut pos = 0;
    let mut types = Vec::new();
    let mut protocol = None;
    while let Some(h) = crate::codec::parse_frame_header(&stream[pos..], u32::MAX).unwrap() {
        let body = Bytes::copy_from_slice(&stream[pos + h.header_len..pos + h.frame_len()]);
        let packet = crate::codec::decode(h.first_byte, body, protocol).unwrap();
        if let Packet::Connect(c) = &packet {
            protocol = Some(c.protocol);
        }
        types.push(packet.packet_type());
        pos += h.frame_len();
    }
    assert_eq!(pos, stream.len());
    assert_eq!(types, [1, 3, 3, 14]);
}
