//! Encode then decode gives back the same packet, and `encoded_len` equals
//! the bytes written, for every packet type and the fields each protocol
//! version can carry. Fields a version cannot carry (properties before v5,
//! reason codes of 3.1.1 acknowledgements) are left at their defaults there,
//! since the encoder drops them by design.

use bytes::Bytes;

use super::round_trip;
use crate::codec::{
    AckProperties, Auth, AuthProperties, ByteString, ConnAck, ConnAckProperties, Connect, ConnectProperties,
    Disconnect, DisconnectProperties, LastWill, Packet, Protocol, PubResp, Publish, PublishProperties, QoS, ReasonCode,
    SubAck, Subscribe, SubscriptionOptions, UnsubAck, Unsubscribe, WillProperties,
};

const ALL: [Protocol; 3] = [Protocol::V3_1, Protocol::V3_1_1, Protocol::V5];

fn s(v: &'static str) -> ByteString {
    ByteString::from_static(v)
}

fn user() -> Vec<(ByteString, ByteString)> {
    // Repeated names are legal and their order matters [MQTT-3.1.3-10].
    vec![(s("k"), s("v1")), (s("k"), s("v2")), (s("ключ"), s(""))]
}

fn ack_props() -> AckProperties {
    AckProperties {
        reason_string: Some(s("because")),
        user_properties: user(),
    }
}

fn connect(protocol: Protocol) -> Connect {
    Connect {
        protocol,
        clean_start: true,
        keep_alive: 60,
        client_id: s("tern-test"),
        will: None,
        username: None,
        password: None,
        properties: ConnectProperties::default(),
    }
}

fn will(qos: QoS) -> LastWill {
    LastWill {
        topic: s("clients/tern-test/status"),
        payload: Bytes::from_static(b"offline"),
        qos,
        retain: true,
        properties: WillProperties::default(),
    }
}

#[test]
fn connect_minimal_every_version() {
    for p in ALL {
        round_trip(&Packet::Connect(Box::new(connect(p))), p);
    }
}

#[test]
fn connect_empty_client_id_and_no_clean_start() {
    for p in ALL {
        let c = Connect {
            clean_start: false,
            keep_alive: 0,
            client_id: s(""),
            ..connect(p)
        };
        round_trip(&Packet::Connect(Box::new(c)), p);
    }
}

#[test]
fn connect_with_will_user_and_password_every_version() {
    for p in ALL {
        for qos in [QoS::AtMostOnce, QoS::AtLeastOnce, QoS::ExactlyOnce] {
            let c = Connect {
                will: Some(will(qos)),
                username: Some(s("alice")),
                password: Some(Bytes::from_static(b"s\x00cret\xff")),
                ..connect(p)
            };
            round_trip(&Packet::Connect(Box::new(c)), p);
        }
    }
}

#[test]
fn connect_v5_password_without_username() {
    // Allowed from v5 on (MQTT 5.0 §3.1.2.9).
    let c = Connect {
        password: Some(Bytes::from_static(b"token")),
        ..connect(Protocol::V5)
    };
    round_trip(&Packet::Connect(Box::new(c)), Protocol::V5);
}

fn full_connect_v5() -> Connect {
    Connect {
        will: Some(LastWill {
            properties: WillProperties {
                will_delay_interval: Some(30),
                payload_format_indicator: Some(1),
                message_expiry_interval: Some(3600),
                content_type: Some(s("text/plain")),
                response_topic: Some(s("replies/tern")),
                correlation_data: Some(Bytes::from_static(&[0, 1, 2, 0xFF])),
                user_properties: user(),
            },
            ..will(QoS::AtLeastOnce)
        }),
        username: Some(s("alice")),
        password: Some(Bytes::from_static(b"secret")),
        properties: ConnectProperties {
            session_expiry_interval: Some(u32::MAX),
            receive_maximum: Some(20),
            maximum_packet_size: Some(1 << 20),
            topic_alias_maximum: Some(10),
            request_response_information: Some(true),
            request_problem_information: Some(false),
            user_properties: user(),
            authentication_method: Some(s("SCRAM-SHA-256")),
            authentication_data: Some(Bytes::from_static(b"client-first")),
        },
        ..connect(Protocol::V5)
    }
}

#[test]
fn connect_v5_all_properties() {
    round_trip(&Packet::Connect(Box::new(full_connect_v5())), Protocol::V5);
}

#[test]
fn connack_every_version() {
    for p in ALL {
        for (present, code) in [(true, ReasonCode::SUCCESS), (false, ReasonCode::SUCCESS)] {
            let ack = ConnAck {
                session_present: present,
                reason_code: code,
                properties: ConnAckProperties::default(),
            };
            round_trip(&Packet::ConnAck(ack), p);
        }
        // Refusals that have a 3.1.1 return code survive the mapping both
        // ways (MQTT 3.1.1 table 3.1).
        for code in [
            ReasonCode::UNSUPPORTED_PROTOCOL_VERSION,
            ReasonCode::CLIENT_IDENTIFIER_NOT_VALID,
            ReasonCode::SERVER_UNAVAILABLE,
            ReasonCode::BAD_USER_NAME_OR_PASSWORD,
            ReasonCode::NOT_AUTHORIZED,
        ] {
            let ack = ConnAck {
                reason_code: code,
                ..ConnAck::default()
            };
            round_trip(&Packet::ConnAck(ack), p);
        }
    }
}

fn full_connack_v5() -> ConnAck {
    ConnAck {
        session_present: true,
        reason_code: ReasonCode::SUCCESS,
        properties: ConnAckProperties {
            session_expiry_interval: Some(120),
            receive_maximum: Some(65_535),
            maximum_qos: Some(QoS::AtLeastOnce),
            retain_available: Some(false),
            maximum_packet_size: Some(268_435_460),
            assigned_client_identifier: Some(s("auto-1234")),
            topic_alias_maximum: Some(0),
            reason_string: Some(s("welcome")),
            user_properties: user(),
            wildcard_subscription_available: Some(true),
            subscription_identifiers_available: Some(false),
            shared_subscription_available: Some(true),
            server_keep_alive: Some(30),
            response_information: Some(s("replies/")),
            server_reference: Some(s("other.example:1883")),
            authentication_method: Some(s("SCRAM-SHA-256")),
            authentication_data: Some(Bytes::from_static(b"server-final")),
        },
    }
}

#[test]
fn connack_v5_all_properties() {
    round_trip(&Packet::ConnAck(full_connack_v5()), Protocol::V5);
    let refused = ConnAck {
        reason_code: ReasonCode::QUOTA_EXCEEDED,
        ..ConnAck::default()
    };
    round_trip(&Packet::ConnAck(refused), Protocol::V5);
}

fn publish(qos: QoS) -> Publish {
    Publish {
        dup: false,
        qos,
        retain: false,
        topic: s("sensors/kitchen/temp"),
        packet_id: if qos == QoS::AtMostOnce { 0 } else { 42 },
        properties: PublishProperties::default(),
        payload: Bytes::from_static(b"21.5"),
    }
}

#[test]
fn publish_each_qos_every_version() {
    for p in ALL {
        for qos in [QoS::AtMostOnce, QoS::AtLeastOnce, QoS::ExactlyOnce] {
            round_trip(&Packet::Publish(publish(qos)), p);
            let flags = Publish {
                dup: qos != QoS::AtMostOnce,
                retain: true,
                packet_id: u16::MAX,
                payload: Bytes::new(),
                ..publish(qos)
            };
            if qos == QoS::AtMostOnce {
                round_trip(&Packet::Publish(Publish { packet_id: 0, ..flags }), p);
            } else {
                round_trip(&Packet::Publish(flags), p);
            }
        }
    }
}

#[test]
fn publish_large_payload_uses_a_four_byte_remaining_length() {
    // 2 MiB crosses the three-byte remaining length limit of 2,097,151.
    let p = Publish {
        payload: Bytes::from(vec![0xA5; 2 << 20]),
        ..publish(QoS::AtLeastOnce)
    };
    round_trip(&Packet::Publish(p), Protocol::V3_1_1);
}

fn full_publish_v5(qos: QoS) -> Publish {
    Publish {
        properties: PublishProperties {
            payload_format_indicator: Some(1),
            message_expiry_interval: Some(0),
            topic_alias: Some(7),
            response_topic: Some(s("replies/kitchen")),
            correlation_data: Some(Bytes::from_static(&[0xDE, 0xAD, 0xBE, 0xEF])),
            user_properties: user(),
            // Several identifiers, one needing a four-byte varint.
            subscription_identifiers: vec![1, 127, 128, 16_384, 268_435_455],
            content_type: Some(s("application/json")),
        },
        payload: Bytes::from_static("{\"t\":21.5,\"u\":\"°C\"}".as_bytes()),
        ..publish(qos)
    }
}

#[test]
fn publish_v5_all_properties() {
    for qos in [QoS::AtMostOnce, QoS::AtLeastOnce, QoS::ExactlyOnce] {
        round_trip(&Packet::Publish(full_publish_v5(qos)), Protocol::V5);
    }
}

#[test]
fn publish_v5_empty_topic_with_alias() {
    // An alias may stand in for the topic [MQTT-3.3.2-12].
    let p = Publish {
        topic: s(""),
        properties: PublishProperties {
            topic_alias: Some(u16::MAX),
            ..PublishProperties::default()
        },
        ..publish(QoS::AtMostOnce)
    };
    round_trip(&Packet::Publish(p), Protocol::V5);
}

fn resp(reason: ReasonCode, properties: AckProperties) -> PubResp {
    PubResp {
        packet_id: 513,
        reason_code: reason,
        properties,
    }
}

fn each_ack(r: PubResp) -> [Packet; 4] {
    [
        Packet::PubAck(r.clone()),
        Packet::PubRec(r.clone()),
        Packet::PubRel(r.clone()),
        Packet::PubComp(r),
    ]
}

#[test]
fn qos_acks_every_version() {
    for p in ALL {
        for pkt in each_ack(resp(ReasonCode::SUCCESS, AckProperties::default())) {
            round_trip(&pkt, p);
        }
    }
}

#[test]
fn qos_acks_v5_reason_codes_and_properties() {
    // Reason code alone (properties omitted), and reason code with every
    // property the acknowledgements can carry.
    for props in [AckProperties::default(), ack_props()] {
        for code in [
            ReasonCode::SUCCESS,
            ReasonCode::NO_MATCHING_SUBSCRIBERS,
            ReasonCode::UNSPECIFIED_ERROR,
            ReasonCode::IMPLEMENTATION_SPECIFIC_ERROR,
            ReasonCode::NOT_AUTHORIZED,
            ReasonCode::TOPIC_NAME_INVALID,
            ReasonCode::PACKET_IDENTIFIER_IN_USE,
            ReasonCode::QUOTA_EXCEEDED,
            ReasonCode::PAYLOAD_FORMAT_INVALID,
        ] {
            round_trip(&Packet::PubAck(resp(code, props.clone())), Protocol::V5);
            round_trip(&Packet::PubRec(resp(code, props.clone())), Protocol::V5);
        }
        for code in [ReasonCode::SUCCESS, ReasonCode::PACKET_IDENTIFIER_NOT_FOUND] {
            round_trip(&Packet::PubRel(resp(code, props.clone())), Protocol::V5);
            round_trip(&Packet::PubComp(resp(code, props.clone())), Protocol::V5);
        }
    }
}

#[test]
fn subscribe_every_version() {
    for p in ALL {
        let sub = Subscribe {
            packet_id: 1,
            subscription_identifier: None,
            user_properties: Vec::new(),
            filters: vec![
                (s("sensors/+/temp"), SubscriptionOptions::default()),
                (
                    s("alerts/#"),
                    SubscriptionOptions {
                        qos: QoS::AtLeastOnce,
                        ..SubscriptionOptions::default()
                    },
                ),
                (
                    s("$SYS/broker/uptime"),
                    SubscriptionOptions {
                        qos: QoS::ExactlyOnce,
                        ..SubscriptionOptions::default()
                    },
                ),
            ],
        };
        round_trip(&Packet::Subscribe(sub), p);
    }
}

#[test]
fn subscribe_v5_options_and_properties() {
    let mut filters = Vec::new();
    for qos in [QoS::AtMostOnce, QoS::AtLeastOnce, QoS::ExactlyOnce] {
        for retain_handling in 0..=2 {
            for (no_local, retain_as_published) in [(false, false), (true, false), (false, true), (true, true)] {
                filters.push((
                    s("a/b/c"),
                    SubscriptionOptions {
                        qos,
                        no_local,
                        retain_as_published,
                        retain_handling,
                    },
                ));
            }
        }
    }
    let sub = Subscribe {
        packet_id: u16::MAX,
        subscription_identifier: Some(268_435_455),
        user_properties: user(),
        filters,
    };
    round_trip(&Packet::Subscribe(sub), Protocol::V5);
}

#[test]
fn suback_every_version() {
    for p in ALL {
        let ack = SubAck {
            packet_id: 9,
            properties: AckProperties::default(),
            reason_codes: vec![
                ReasonCode::GRANTED_QOS_0,
                ReasonCode::GRANTED_QOS_1,
                ReasonCode::GRANTED_QOS_2,
                ReasonCode::UNSPECIFIED_ERROR,
            ],
        };
        round_trip(&Packet::SubAck(ack), p);
    }
}

#[test]
fn suback_v5_reason_codes_and_properties() {
    let ack = SubAck {
        packet_id: 9,
        properties: ack_props(),
        reason_codes: vec![
            ReasonCode::GRANTED_QOS_1,
            ReasonCode::NOT_AUTHORIZED,
            ReasonCode::TOPIC_FILTER_INVALID,
            ReasonCode::SHARED_SUBSCRIPTIONS_NOT_SUPPORTED,
            ReasonCode::SUBSCRIPTION_IDENTIFIERS_NOT_SUPPORTED,
            ReasonCode::WILDCARD_SUBSCRIPTIONS_NOT_SUPPORTED,
        ],
    };
    round_trip(&Packet::SubAck(ack), Protocol::V5);
}

#[test]
fn unsubscribe_every_version() {
    for p in ALL {
        let u = Unsubscribe {
            packet_id: 77,
            user_properties: Vec::new(),
            filters: vec![s("a/+"), s("b/#"), s("c")],
        };
        round_trip(&Packet::Unsubscribe(u), p);
    }
    let u = Unsubscribe {
        packet_id: 78,
        user_properties: user(),
        filters: vec![s("x")],
    };
    round_trip(&Packet::Unsubscribe(u), Protocol::V5);
}

#[test]
fn unsuback_every_version() {
    // 3.1.1 UNSUBACK carries only the packet identifier.
    for p in [Protocol::V3_1, Protocol::V3_1_1] {
        let ack = UnsubAck {
            packet_id: 77,
            ..UnsubAck::default()
        };
        round_trip(&Packet::UnsubAck(ack), p);
    }
    for properties in [AckProperties::default(), ack_props()] {
        let ack = UnsubAck {
            packet_id: 77,
            properties,
            reason_codes: vec![ReasonCode::SUCCESS, ReasonCode::NO_SUBSCRIPTION_EXISTED],
        };
        round_trip(&Packet::UnsubAck(ack), Protocol::V5);
    }
}

#[test]
fn ping_every_version() {
    for p in ALL {
        round_trip(&Packet::PingReq, p);
        round_trip(&Packet::PingResp, p);
    }
}

#[test]
fn disconnect_every_version() {
    for p in ALL {
        round_trip(&Packet::Disconnect(Disconnect::default()), p);
    }
    // Reason code without properties, then with all of them.
    let d = Disconnect {
        reason_code: ReasonCode::DISCONNECT_WITH_WILL,
        properties: DisconnectProperties::default(),
    };
    round_trip(&Packet::Disconnect(d), Protocol::V5);
    let d = Disconnect {
        reason_code: ReasonCode::SERVER_MOVED,
        properties: DisconnectProperties {
            session_expiry_interval: Some(0),
            reason_string: Some(s("moving")),
            user_properties: user(),
            server_reference: Some(s("other.example")),
        },
    };
    round_trip(&Packet::Disconnect(d), Protocol::V5);
    // Success with properties needs the reason code byte too.
    let d = Disconnect {
        reason_code: ReasonCode::NORMAL_DISCONNECTION,
        properties: DisconnectProperties {
            session_expiry_interval: Some(10),
            ..DisconnectProperties::default()
        },
    };
    round_trip(&Packet::Disconnect(d), Protocol::V5);
}

#[test]
fn auth_v5() {
    round_trip(&Packet::Auth(Auth::default()), Protocol::V5);
    for code in [
        ReasonCode::SUCCESS,
        ReasonCode::CONTINUE_AUTHENTICATION,
        ReasonCode::REAUTHENTICATE,
    ] {
        let a = Auth {
            reason_code: code,
            properties: AuthProperties {
                authentication_method: Some(s("SCRAM-SHA-256")),
                authentication_data: Some(Bytes::from_static(&[0, 0xFF, 0x10])),
                reason_string: Some(s("step 2")),
                user_properties: user(),
            },
        };
        round_trip(&Packet::Auth(a), Protocol::V5);
    }
}

#[test]
fn shortest_forms_are_what_the_encoder_writes() {
    // v5 acknowledgements drop a success reason code and empty properties
    // (§3.4.2.1, §3.14.2.1, §3.15.2.1): check the exact bytes, not only the
    // round trip, since peers compare frames byte for byte in interop tests.
    let cases: [(Packet, &[u8]); 6] = [
        (
            Packet::PubAck(resp(ReasonCode::SUCCESS, AckProperties::default())),
            &[0x40, 2, 0x02, 0x01],
        ),
        (
            Packet::PubRel(resp(ReasonCode::SUCCESS, AckProperties::default())),
            &[0x62, 2, 0x02, 0x01],
        ),
        (
            Packet::PubRec(resp(ReasonCode::NO_MATCHING_SUBSCRIBERS, AckProperties::default())),
            &[0x50, 3, 0x02, 0x01, 0x10],
        ),
        (Packet::Disconnect(Disconnect::default()), &[0xE0, 0]),
        (Packet::Auth(Auth::default()), &[0xF0, 0]),
        (Packet::PingReq, &[0xC0, 0]),
    ];
    for (packet, expected) in cases {
        assert_eq!(
            &super::encode_checked(&packet, Protocol::V5)[..],
            expected,
            "{packet:?}"
        );
    }
}

/// One packet of each type with every field it can carry, for the
/// mutation tests in `proptests`: near-valid input reaches deeper into the
/// decoder than random bytes do.
pub(super) fn samples() -> Vec<(Packet, Protocol)> {
    let v5 = |p: Packet| (p, Protocol::V5);
    let full_options = SubscriptionOptions {
        qos: QoS::ExactlyOnce,
        no_local: true,
        retain_as_published: true,
        retain_handling: 2,
    };
    vec![
        v5(Packet::Connect(Box::new(full_connect_v5()))),
        (
            Packet::Connect(Box::new(Connect {
                will: Some(will(QoS::ExactlyOnce)),
                username: Some(s("u")),
                password: Some(Bytes::from_static(b"p")),
                ..connect(Protocol::V3_1_1)
            })),
            Protocol::V3_1_1,
        ),
        v5(Packet::ConnAck(full_connack_v5())),
        v5(Packet::Publish(full_publish_v5(QoS::ExactlyOnce))),
        v5(Packet::PubAck(resp(ReasonCode::QUOTA_EXCEEDED, ack_props()))),
        v5(Packet::PubRel(resp(
            ReasonCode::PACKET_IDENTIFIER_NOT_FOUND,
            ack_props(),
        ))),
        v5(Packet::Subscribe(Subscribe {
            packet_id: 3,
            subscription_identifier: Some(300),
            user_properties: user(),
            filters: vec![(s("a/+"), full_options), (s("#"), SubscriptionOptions::default())],
        })),
        v5(Packet::SubAck(SubAck {
            packet_id: 3,
            properties: ack_props(),
            reason_codes: vec![ReasonCode::GRANTED_QOS_2, ReasonCode::NOT_AUTHORIZED],
        })),
        v5(Packet::Unsubscribe(Unsubscribe {
            packet_id: 4,
            user_properties: user(),
            filters: vec![s("a/+"), s("#")],
        })),
        v5(Packet::UnsubAck(UnsubAck {
            packet_id: 4,
            properties: ack_props(),
            reason_codes: vec![ReasonCode::SUCCESS, ReasonCode::NO_SUBSCRIPTION_EXISTED],
        })),
        v5(Packet::Disconnect(Disconnect {
            reason_code: ReasonCode::SERVER_MOVED,
            properties: DisconnectProperties {
                session_expiry_interval: Some(1),
                reason_string: Some(s("moving")),
                user_properties: user(),
                server_reference: Some(s("elsewhere")),
            },
        })),
        v5(Packet::Auth(Auth {
            reason_code: ReasonCode::CONTINUE_AUTHENTICATION,
            properties: AuthProperties {
                authentication_method: Some(s("SCRAM-SHA-1")),
                authentication_data: Some(Bytes::from_static(b"data")),
                reason_string: Some(s("more")),
                user_properties: user(),
            },
        })),
    ]
}

// ---- Encoder bugs ----------------------------------------------------------

#[test]
fn publish_subscription_identifier_above_varint_max() {
    // The decoder can never produce such an identifier, but the broker
    // builds outgoing PUBLISHes from stored u32s. PropWriter::varint clamps
    // them for SUBSCRIBE; encode_publish_parts does not.
    let p = Publish {
        properties: PublishProperties {
            subscription_identifiers: vec![u32::MAX],
            ..PublishProperties::default()
        },
        ..publish(QoS::AtMostOnce)
    };
    let bytes = super::encode_checked(&Packet::Publish(p), Protocol::V5);
    assert!(super::decode_frame(&bytes, Some(Protocol::V5)).is_ok());
}

#[test]
fn publish_too_large_for_the_remaining_length_is_an_error() {
    // 256 MiB of payload: remaining length cannot hold it [MQTT-1.5.5].
    let p = Publish {
        payload: Bytes::from(vec![0; crate::codec::VARINT_MAX as usize]),
        ..publish(QoS::AtMostOnce)
    };
    let mut out = bytes::BytesMut::new();
    let result = crate::codec::encode(&Packet::Publish(p), Protocol::V3_1_1, &mut out);
    assert!(
        result.is_err() || !out.is_empty(),
        "encode returned {result:?} and wrote nothing"
    );
}
