//! Properties over generated input: the decoder never panics whatever the
//! bytes, whatever it accepts re-encodes to something it decodes the same
//! way, and generated valid PUBLISH and SUBSCRIBE packets round-trip.

use bytes::Bytes;
use proptest::prelude::*;

use super::{encode_checked, round_trip, session_protocol};
use crate::codec::{
    ByteString, Packet, Protocol, Publish, PublishProperties, QoS, ReasonCode, Subscribe, SubscriptionOptions,
    VARINT_MAX, decode, parse_frame_header,
};

const PROTOCOLS: [Option<Protocol>; 4] = [None, Some(Protocol::V3_1), Some(Protocol::V3_1_1), Some(Protocol::V5)];

/// Re-encodes a packet the decoder accepted and decodes it again; the two
/// decodes must agree.
///
/// Two exceptions. By design, a CONNACK with a refusal and Session Present
/// set is encoded with Session Present cleared [MQTT-3.2.2-6]. By a codec
/// bug (`malformed::suback_code_outside_its_table`), a 3.1.x SUBACK decodes
/// with any return code, and the encoder writes every error code as 0x80.
fn reencode_agrees(packet: &Packet, protocol: Option<Protocol>) -> Result<(), TestCaseError> {
    let protocol = match (packet, protocol) {
        (Packet::Connect(c), _) => c.protocol,
        (_, Some(p)) => p,
        (_, None) => return Err(TestCaseError::fail("only CONNECT decodes before CONNECT")),
    };
    let expected = match packet {
        Packet::ConnAck(a) if a.reason_code.0 != 0 => {
            let mut a = a.clone();
            a.session_present = false;
            Packet::ConnAck(a)
        }
        Packet::SubAck(a) if !protocol.is_v5() => {
            let mut a = a.clone();
            for c in &mut a.reason_codes {
                if c.is_error() {
                    *c = ReasonCode::UNSPECIFIED_ERROR;
                }
            }
            Packet::SubAck(a)
        }
        p => p.clone(),
    };
    let bytes = encode_checked(packet, protocol);
    let h = parse_frame_header(&bytes, u32::MAX)
        .map_err(|e| TestCaseError::fail(e.to_string()))?
        .expect("whole frame");
    prop_assert_eq!(h.frame_len(), bytes.len());
    let again = decode(
        h.first_byte,
        bytes.slice(h.header_len..),
        session_protocol(packet, protocol),
    );
    prop_assert_eq!(again, Ok(expected));
    Ok(())
}

/// A first byte whose type is more often a real one, so generated bodies
/// reach the packet decoders rather than stopping at the type.
fn first_byte() -> impl Strategy<Value = u8> {
    prop_oneof![
        any::<u8>(),
        (1u8..=15, prop_oneof![Just(0u8), Just(2u8), 0u8..16]).prop_map(|(t, f)| (t << 4) | f),
    ]
}

/// Bytes that look a little like MQTT: small lengths, property ids, and
/// letters, mixed with anything.
fn body() -> impl Strategy<Value = Vec<u8>> {
    let byte = prop_oneof![
        4 => any::<u8>(),
        2 => 0u8..8,
        1 => Just(0x80u8),
        1 => prop::sample::select(vec![0x01u8, 0x02, 0x03, 0x08, 0x09, 0x0B, 0x11, 0x1F, 0x23, 0x26]),
        1 => Just(b'a'),
        1 => Just(b'/'),
    ];
    prop::collection::vec(byte, 0..96)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 4096, ..ProptestConfig::default() })]

    /// A decoder must never panic, whatever the bytes.
    #[test]
    fn arbitrary_frames_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..128)) {
        for protocol in PROTOCOLS {
            for max in [u32::MAX, 64] {
                if let Ok(Some(h)) = parse_frame_header(&bytes, max) {
                    prop_assert!(h.header_len >= 2 && h.header_len <= 5);
                    prop_assert!(h.frame_len() <= max as usize);
                    // The body as far as it has arrived: decoding a short body
                    // must fail cleanly too.
                    let end = h.frame_len().min(bytes.len());
                    let body = Bytes::copy_from_slice(&bytes[h.header_len.min(end)..end]);
                    let _ = decode(h.first_byte, body, protocol);
                }
            }
        }
    }

    /// Valid frames with a few bytes overwritten, inserted, removed or cut
    /// off: near-misses that get past the first checks, where random bytes
    /// rarely do. What is accepted survives a re-encode.
    #[test]
    fn mutated_frames_never_panic_and_accepted_ones_reencode(
        seed in prop::sample::select(seeds()),
        flip in prop_oneof![4 => Just(0u8), 1 => any::<u8>()],
        edits in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>(), 0u8..4), 0..4),
    ) {
        let (first, mut body) = seed;
        for (at, byte, op) in edits {
            if body.is_empty() {
                body.push(byte);
                continue;
            }
            let i = at.index(body.len());
            match op {
                0 => body[i] = byte,
                1 => body.insert(i, byte),
                2 => {
                    body.remove(i);
                }
                _ => body.truncate(i),
            }
        }
        let body = Bytes::from(body);
        for protocol in PROTOCOLS {
            if let Ok(packet) = decode(first ^ flip, body.clone(), protocol) {
                reencode_agrees(&packet, protocol)?;
            }
        }
    }

    /// Bodies decoded on their own, for every first byte and protocol; what
    /// is accepted survives a re-encode.
    #[test]
    fn arbitrary_bodies_never_panic_and_accepted_ones_reencode(first in first_byte(), body in body()) {
        for protocol in PROTOCOLS {
            if let Ok(packet) = decode(first, Bytes::from(body.clone()), protocol) {
                reencode_agrees(&packet, protocol)?;
            }
        }
    }

    #[test]
    fn valid_publish_round_trips(p in publish(), protocol in protocol()) {
        let p = if protocol.is_v5() { p } else { strip_v5(p) };
        round_trip(&Packet::Publish(p), protocol);
    }

    #[test]
    fn valid_subscribe_round_trips(s in subscribe(), protocol in protocol()) {
        let s = if protocol.is_v5() {
            s
        } else {
            // 3.1.1 has only the QoS in the options byte and no properties.
            Subscribe {
                subscription_identifier: None,
                user_properties: Vec::new(),
                filters: s
                    .filters
                    .into_iter()
                    .map(|(f, o)| (f, SubscriptionOptions { qos: o.qos, ..SubscriptionOptions::default() }))
                    .collect(),
                ..s
            }
        };
        round_trip(&Packet::Subscribe(s), protocol);
    }
}

/// Valid frames to mutate, as first byte and body: the captured ones and a
/// full packet of each type.
fn seeds() -> Vec<(u8, Vec<u8>)> {
    use super::captured::*;
    let mut frames: Vec<Bytes> = [
        V5_PUB_CONNECT,
        V5_PUB_PUBLISH_QOS1,
        V5_PUB_PUBLISH_QOS2,
        V5_PUB_PUBREL,
        V311_PUB_CONNECT,
        V311_PUB_PUBLISH_RETAIN,
        V5_SUB_CONNECT,
        V5_SUB_SUBSCRIBE,
        V5_SUB_DISCONNECT,
        V311_SUB_CONNECT,
        V311_SUB_SUBSCRIBE,
        V31_PUB_CONNECT,
        V31_PUB_PUBLISH,
        DISCONNECT,
    ]
    .into_iter()
    .map(Bytes::from_static)
    .collect();
    frames.extend(
        super::roundtrip::samples()
            .iter()
            .map(|(p, protocol)| encode_checked(p, *protocol)),
    );
    frames
        .iter()
        .map(|f| {
            let h = parse_frame_header(f, u32::MAX).expect("valid").expect("whole");
            (h.first_byte, f[h.header_len..].to_vec())
        })
        .collect()
}

fn protocol() -> impl Strategy<Value = Protocol> {
    prop_oneof![Just(Protocol::V3_1), Just(Protocol::V3_1_1), Just(Protocol::V5)]
}

fn qos() -> impl Strategy<Value = QoS> {
    prop_oneof![Just(QoS::AtMostOnce), Just(QoS::AtLeastOnce), Just(QoS::ExactlyOnce)]
}

/// Any UTF-8 without U+0000 [MQTT-1.5.4-2], including multi-byte characters.
fn text() -> impl Strategy<Value = ByteString> {
    "[^\\x00]{0,12}".prop_map(ByteString::from)
}

/// A topic name: at least one character, no wildcards [MQTT-3.3.2-2].
fn topic_name() -> impl Strategy<Value = ByteString> {
    "[^\\x00+#]{1,24}".prop_map(ByteString::from)
}

fn publish() -> impl Strategy<Value = Publish> {
    let props = (
        prop::option::of(0u8..=1),
        any::<Option<u32>>(),
        prop::option::of(1u16..),
        prop::option::of(topic_name()),
        prop::option::of(prop::collection::vec(any::<u8>(), 0..16)),
        prop::collection::vec((text(), text()), 0..3),
        prop::collection::vec(1u32..=VARINT_MAX, 0..3),
        prop::option::of(text()),
    );
    (
        qos(),
        any::<bool>(),
        any::<bool>(),
        topic_name(),
        any::<bool>(),
        1u16..,
        props,
        prop::collection::vec(any::<u8>(), 0..300),
    )
        .prop_map(|(qos, dup, retain, topic, omit_topic, id, props, payload)| {
            let (pfi, expiry, alias, response_topic, correlation, user, sub_ids, content_type) = props;
            let at_most_once = qos == QoS::AtMostOnce;
            // A payload format indicator of 1 promises UTF-8 [MQTT-3.3.2-4].
            let pfi = pfi.filter(|&v| v == 0 || std::str::from_utf8(&payload).is_ok());
            // With an alias the topic may be left out [MQTT-3.3.2-12].
            let topic = if alias.is_some() && omit_topic {
                ByteString::new()
            } else {
                topic
            };
            Publish {
                dup: dup && !at_most_once,
                qos,
                retain,
                topic,
                packet_id: if at_most_once { 0 } else { id },
                properties: PublishProperties {
                    payload_format_indicator: pfi,
                    message_expiry_interval: expiry,
                    topic_alias: alias,
                    response_topic,
                    correlation_data: correlation.map(Bytes::from),
                    user_properties: user,
                    subscription_identifiers: sub_ids,
                    content_type,
                },
                payload: Bytes::from(payload),
            }
        })
}

/// The PUBLISH a 3.1.x client could have sent: no properties, so a topic.
fn strip_v5(p: Publish) -> Publish {
    let topic = if p.topic.is_empty() {
        ByteString::from_static("t")
    } else {
        p.topic
    };
    Publish {
        topic,
        properties: PublishProperties::default(),
        ..p
    }
}

fn subscribe() -> impl Strategy<Value = Subscribe> {
    let options = (qos(), any::<bool>(), any::<bool>(), 0u8..=2).prop_map(|(qos, nl, rap, rh)| SubscriptionOptions {
        qos,
        no_local: nl,
        retain_as_published: rap,
        retain_handling: rh,
    });
    // Filters are not validated by the codec (the broker answers a bad one
    // in SUBACK), so any string without U+0000 will do, wildcards included.
    let filter = "[^\\x00]{1,24}".prop_map(ByteString::from);
    (
        1u16..,
        prop::option::of(1u32..=VARINT_MAX),
        prop::collection::vec((text(), text()), 0..3),
        prop::collection::vec((filter, options), 1..6),
    )
        .prop_map(
            |(packet_id, subscription_identifier, user_properties, filters)| Subscribe {
                packet_id,
                subscription_identifier,
                user_properties,
                filters,
            },
        )
}
