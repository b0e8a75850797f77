//! Frames the specifications call malformed or a protocol error, built by
//! hand byte by byte, each with the error the decoder must return. Spec ids
//! are MQTT 5.0 unless marked 3.1.1.
//!
//! Frames the decoder wrongly accepts are kept as `#[ignore]`d tests at the
//! end, named after the rule, so the table stays green while the bug is
//! visible.

use super::{decode_frame, decode_frame_max};
use crate::codec::{DecodeError, Packet, Protocol, ReasonCode, parse_frame_header};

use DecodeError::*;

/// Before CONNECT: only CONNECT is accepted.
const FIRST: Option<Protocol> = None;
const V31: Option<Protocol> = Some(Protocol::V3_1);
const V4: Option<Protocol> = Some(Protocol::V3_1_1);
const V5: Option<Protocol> = Some(Protocol::V5);

struct Case {
    name: &'static str,
    protocol: Option<Protocol>,
    bytes: &'static [u8],
    expected: DecodeError,
}

fn case(name: &'static str, protocol: Option<Protocol>, bytes: &'static [u8], expected: DecodeError) -> Case {
    Case {
        name,
        protocol,
        bytes,
        expected,
    }
}

fn not_allowed(id: u8, packet: &'static str) -> DecodeError {
    PropertyNotAllowed { id, packet }
}

#[rustfmt::skip]
fn cases() -> Vec<Case> {
    vec![
        // ---- Fixed header --------------------------------------------------
        // [MQTT-1.5.5-1] a variable byte integer has at most four bytes.
        case("remaining length of five bytes", V5,
            &[0x30, 0x80, 0x80, 0x80, 0x80, 0x01], MalformedRemainingLength),
        // [MQTT-2.1.2] packet type 0 is reserved.
        case("packet type 0", V4, &[0x00, 0x00], ReservedPacketType),
        // [MQTT-3.1.0-1]
        case("PINGREQ before CONNECT", FIRST, &[0xC0, 0x00], FirstPacketNotConnect),
        case("PUBLISH before CONNECT", FIRST, &[0x30, 0x03, 0x00, 0x01, b'a'], FirstPacketNotConnect),
        // [MQTT-3.1.0-2]
        case("second CONNECT", V4,
            &[0x10, 13, 0, 4, b'M', b'Q', b'T', b'T', 4, 0x02, 0, 60, 0, 1, b'a'], SecondConnect),
        // AUTH is packet type 15 only from v5 on (3.1.1 §2.2.1: reserved).
        case("AUTH in 3.1.1", V4, &[0xF0, 0x00], AuthBeforeV5),
        case("AUTH in 3.1", V31, &[0xF0, 0x00], AuthBeforeV5),

        // ---- Reserved flags, every packet type [MQTT-2.1.3-1] -------------
        case("CONNECT flags 0001", FIRST,
            &[0x11, 13, 0, 4, b'M', b'Q', b'T', b'T', 4, 0x02, 0, 60, 0, 1, b'a'],
            InvalidFlags { packet_type: 1, flags: 1 }),
        case("CONNACK flags 0001", V4, &[0x21, 2, 0, 0], InvalidFlags { packet_type: 2, flags: 1 }),
        case("PUBACK flags 0001", V4, &[0x41, 2, 0, 1], InvalidFlags { packet_type: 4, flags: 1 }),
        case("PUBREC flags 1000", V5, &[0x58, 2, 0, 1], InvalidFlags { packet_type: 5, flags: 8 }),
        // [MQTT-3.6.1-1] PUBREL flags are exactly 0010.
        case("PUBREL flags 0000", V4, &[0x60, 2, 0, 1], InvalidFlags { packet_type: 6, flags: 0 }),
        case("PUBREL flags 0110", V5, &[0x66, 2, 0, 1], InvalidFlags { packet_type: 6, flags: 6 }),
        case("PUBCOMP flags 0010", V4, &[0x72, 2, 0, 1], InvalidFlags { packet_type: 7, flags: 2 }),
        // [MQTT-3.8.1-1] SUBSCRIBE flags are exactly 0010.
        case("SUBSCRIBE flags 0000", V4, &[0x80, 6, 0, 1, 0, 1, b'a', 0],
            InvalidFlags { packet_type: 8, flags: 0 }),
        case("SUBSCRIBE flags 0011", V5, &[0x83, 7, 0, 1, 0, 0, 1, b'a', 0],
            InvalidFlags { packet_type: 8, flags: 3 }),
        case("SUBACK flags 0010", V4, &[0x92, 3, 0, 1, 0], InvalidFlags { packet_type: 9, flags: 2 }),
        // [MQTT-3.10.1-1]
        case("UNSUBSCRIBE flags 0000", V4, &[0xA0, 5, 0, 1, 0, 1, b'a'],
            InvalidFlags { packet_type: 10, flags: 0 }),
        case("UNSUBACK flags 0001", V5, &[0xB1, 2, 0, 1], InvalidFlags { packet_type: 11, flags: 1 }),
        case("PINGREQ flags 0001", V4, &[0xC1, 0], InvalidFlags { packet_type: 12, flags: 1 }),
        case("PINGRESP flags 0100", V5, &[0xD4, 0], InvalidFlags { packet_type: 13, flags: 4 }),
        // [MQTT-3.14.1-1]
        case("DISCONNECT flags 0010", V4, &[0xE2, 0], InvalidFlags { packet_type: 14, flags: 2 }),
        // [MQTT-3.15.1-1]
        case("AUTH flags 0001", V5, &[0xF1, 0], InvalidFlags { packet_type: 15, flags: 1 }),

        // ---- Truncated fields: the frame is whole, a field runs past it ----
        case("CONNECT protocol name cut", FIRST, &[0x10, 3, 0, 4, b'M'], Truncated),
        case("CONNECT without keep alive", FIRST, &[0x10, 8, 0, 4, b'M', b'Q', b'T', b'T', 4, 0x02], Truncated),
        // [MQTT-3.1.3-3] the client identifier must be present.
        case("CONNECT without client id", FIRST,
            &[0x10, 10, 0, 4, b'M', b'Q', b'T', b'T', 4, 0x02, 0, 60], Truncated),
        case("CONNECT client id longer than frame", FIRST,
            &[0x10, 13, 0, 4, b'M', b'Q', b'T', b'T', 4, 0x02, 0, 60, 0, 5, b'a'], Truncated),
        // [MQTT-3.1.2-9] will flag set: will topic and payload must follow.
        case("CONNECT will flag without will topic", FIRST,
            &[0x10, 13, 0, 4, b'M', b'Q', b'T', b'T', 4, 0x06, 0, 60, 0, 1, b'a'], Truncated),
        // [MQTT-3.1.2-17] user name flag set: the user name must follow.
        case("CONNECT user name flag without user name", FIRST,
            &[0x10, 13, 0, 4, b'M', b'Q', b'T', b'T', 4, 0x82, 0, 60, 0, 1, b'a'], Truncated),
        case("CONNACK of one byte", V4, &[0x20, 1, 0], Truncated),
        case("PUBLISH topic longer than frame", V4, &[0x30, 3, 0, 5, b'a'], Truncated),
        case("PUBLISH QoS 1 without packet id", V4, &[0x32, 3, 0, 1, b'a'], Truncated),
        case("PUBLISH v5 without property length", V5, &[0x32, 5, 0, 1, b'a', 0, 1], Truncated),
        case("PUBLISH property block longer than frame", V5, &[0x30, 5, 0, 1, b'a', 5, 0x01], Truncated),
        // Message Expiry Interval is four bytes; the block holds one.
        case("PUBLISH property value cut by its block", V5,
            &[0x30, 7, 0, 1, b'a', 2, 0x02, 0x00, 0xFF], Truncated),
        case("PUBACK of one byte", V4, &[0x40, 1, 0], Truncated),
        case("SUBSCRIBE without options byte", V4, &[0x82, 5, 0, 1, 0, 1, b'a'], Truncated),
        case("UNSUBSCRIBE filter longer than frame", V4, &[0xA2, 5, 0, 1, 0, 9, b'a'], Truncated),
        // [MQTT-1.5.5-1] varints inside the body: four bytes at most.
        case("property length of five bytes", V5,
            &[0x30, 8, 0, 1, b'a', 0x80, 0x80, 0x80, 0x80, 0x01], MalformedVarInt),
        case("subscription identifier of five bytes", V5,
            &[0x82, 13, 0, 1, 6, 0x0B, 0x80, 0x80, 0x80, 0x80, 0x01, 0, 1, b'a', 0], MalformedVarInt),

        // ---- Trailing bytes after the last field --------------------------
        case("PINGREQ with a body", V4, &[0xC0, 1, 0], TrailingBytes(1)),
        case("PINGRESP with a body", V5, &[0xD0, 2, 0, 0], TrailingBytes(2)),
        case("CONNECT with a byte after the client id", FIRST,
            &[0x10, 14, 0, 4, b'M', b'Q', b'T', b'T', 4, 0x02, 0, 60, 0, 1, b'a', 0], TrailingBytes(1)),
        case("CONNACK 3.1.1 of three bytes", V4, &[0x20, 3, 0, 0, 0], TrailingBytes(1)),
        // 3.1.1 acknowledgements are exactly the packet identifier.
        case("PUBACK 3.1.1 of three bytes", V4, &[0x40, 3, 0, 1, 0], TrailingBytes(1)),
        case("UNSUBACK 3.1.1 of three bytes", V4, &[0xB0, 3, 0, 1, 0], TrailingBytes(1)),
        case("DISCONNECT 3.1.1 with a body", V4, &[0xE0, 1, 0], TrailingBytes(1)),
        case("PUBACK v5 after its properties", V5, &[0x40, 5, 0, 1, 0x00, 0x00, 0xFF], TrailingBytes(1)),
        case("AUTH after its properties", V5, &[0xF0, 3, 0x00, 0x00, 0x00], TrailingBytes(1)),
        case("DISCONNECT v5 after its properties", V5, &[0xE0, 3, 0x00, 0x00, 0x00], TrailingBytes(1)),

        // ---- Strings [MQTT-1.5.4-1] [MQTT-1.5.4-2] ------------------------
        case("PUBLISH topic not UTF-8", V4, &[0x30, 4, 0, 2, 0xC3, 0x28], InvalidUtf8),
        // U+D800 encoded as UTF-8 (CESU style): a surrogate, forbidden.
        case("PUBLISH topic with a surrogate", V5, &[0x30, 6, 0, 3, 0xED, 0xA0, 0x80, 0], InvalidUtf8),
        // "Modified UTF-8" NUL (C0 80) is an overlong form, not UTF-8.
        case("CONNECT client id with overlong NUL", FIRST,
            &[0x10, 14, 0, 4, b'M', b'Q', b'T', b'T', 4, 0x02, 0, 60, 0, 2, 0xC0, 0x80], InvalidUtf8),
        case("CONNECT user name not UTF-8", FIRST,
            &[0x10, 16, 0, 4, b'M', b'Q', b'T', b'T', 4, 0x82, 0, 60, 0, 1, b'a', 0, 1, 0xFF], InvalidUtf8),
        case("user property name not UTF-8", V5,
            &[0x40, 10, 0, 1, 0x00, 6, 0x26, 0, 1, 0xFE, 0, 0], InvalidUtf8),
        case("PUBLISH topic with U+0000", V4, &[0x30, 5, 0, 3, b'a', 0, b'b'], NullCharacter),
        case("CONNECT client id with U+0000", FIRST,
            &[0x10, 13, 0, 4, b'M', b'Q', b'T', b'T', 4, 0x02, 0, 60, 0, 1, 0], NullCharacter),
        case("SUBSCRIBE filter with U+0000", V4, &[0x82, 7, 0, 1, 0, 2, b'a', 0, 0], NullCharacter),
        case("UNSUBSCRIBE filter with U+0000", V5, &[0xA2, 6, 0, 1, 0, 0, 1, 0], NullCharacter),
        case("reason string with U+0000", V5, &[0x40, 8, 0, 1, 0x80, 4, 0x1F, 0, 1, 0], NullCharacter),

        // ---- PUBLISH -------------------------------------------------------
        // [MQTT-3.3.2-2]
        case("PUBLISH topic with +", V4, &[0x30, 5, 0, 3, b'a', b'/', b'+'], WildcardInTopicName),
        case("PUBLISH topic with #", V5, &[0x30, 4, 0, 1, b'#', 0], WildcardInTopicName),
        // [MQTT-3.3.2-14]
        case("PUBLISH response topic with #", V5,
            &[0x30, 8, 0, 1, b'a', 4, 0x08, 0, 1, b'#'], WildcardInTopicName),
        // [MQTT-3.3.1-4]
        case("PUBLISH QoS 3", V4, &[0x36, 5, 0, 1, b'a', 0, 1], InvalidQos),
        case("PUBLISH QoS 3 with DUP", V5, &[0x3E, 6, 0, 1, b'a', 0, 1, 0], InvalidQos),
        // [MQTT-3.3.1-2]
        case("PUBLISH DUP on QoS 0", V4, &[0x38, 3, 0, 1, b'a'], DupOnQos0),
        // [MQTT-2.2.1-3]
        case("PUBLISH QoS 1 packet id 0", V4, &[0x32, 5, 0, 1, b'a', 0, 0], ZeroPacketId),
        case("PUBLISH QoS 2 packet id 0", V5, &[0x34, 6, 0, 1, b'a', 0, 0, 0], ZeroPacketId),
        // [MQTT-4.7.3-1]; v5 allows it only with a topic alias.
        case("PUBLISH empty topic 3.1.1", V4, &[0x30, 2, 0, 0], EmptyTopic),
        case("PUBLISH empty topic v5 without alias", V5, &[0x30, 3, 0, 0, 0], EmptyTopic),
        // [MQTT-3.3.2-8]
        case("PUBLISH topic alias 0", V5, &[0x30, 7, 0, 1, b'a', 3, 0x23, 0, 0], TopicAliasZero),
        // §3.3.2.3.2: payload format 1 means UTF-8 (the receiver may check).
        case("PUBLISH payload not UTF-8 as announced", V5,
            &[0x30, 7, 0, 1, b'a', 2, 0x01, 0x01, 0xFF], PayloadNotUtf8),
        case("PUBLISH payload format indicator 2", V5,
            &[0x30, 6, 0, 1, b'a', 2, 0x01, 0x02], InvalidPropertyValue(0x01)),

        // ---- Properties (§2.2.2) -------------------------------------------
        case("PUBLISH message expiry twice", V5,
            &[0x30, 14, 0, 1, b'a', 10, 0x02, 0, 0, 0, 1, 0x02, 0, 0, 0, 2], DuplicateProperty(0x02)),
        case("PUBLISH topic alias twice", V5,
            &[0x30, 10, 0, 1, b'a', 6, 0x23, 0, 1, 0x23, 0, 2], DuplicateProperty(0x23)),
        case("PUBACK reason string twice", V5,
            &[0x40, 12, 0, 1, 0x00, 8, 0x1F, 0, 1, b'x', 0x1F, 0, 1, b'y'], DuplicateProperty(0x1F)),
        case("SUBSCRIBE two subscription identifiers", V5,
            &[0x82, 11, 0, 1, 4, 0x0B, 1, 0x0B, 2, 0, 1, b'a', 0], DuplicateProperty(0x0B)),
        case("CONNECT session expiry twice", FIRST,
            &[0x10, 24, 0, 4, b'M', b'Q', b'T', b'T', 5, 0x02, 0, 60,
              10, 0x11, 0, 0, 0, 1, 0x11, 0, 0, 0, 2, 0, 1, b'a'], DuplicateProperty(0x11)),
        case("session expiry in PUBLISH", V5,
            &[0x30, 9, 0, 1, b'a', 5, 0x11, 0, 0, 0, 1], not_allowed(0x11, "PUBLISH")),
        case("reason string in PUBLISH", V5,
            &[0x30, 8, 0, 1, b'a', 4, 0x1F, 0, 1, b'x'], not_allowed(0x1F, "PUBLISH")),
        case("topic alias in CONNECT", FIRST,
            &[0x10, 17, 0, 4, b'M', b'Q', b'T', b'T', 5, 0x02, 0, 60, 3, 0x23, 0, 1, 0, 1, b'a'],
            not_allowed(0x23, "CONNECT")),
        case("will delay in CONNECT properties", FIRST,
            &[0x10, 19, 0, 4, b'M', b'Q', b'T', b'T', 5, 0x02, 0, 60, 5, 0x18, 0, 0, 0, 1, 0, 1, b'a'],
            not_allowed(0x18, "CONNECT")),
        case("session expiry in will properties", FIRST,
            &[0x10, 25, 0, 4, b'M', b'Q', b'T', b'T', 5, 0x06, 0, 60, 0, 0, 1, b'a',
              5, 0x11, 0, 0, 0, 1, 0, 1, b'w', 0, 0], not_allowed(0x11, "will properties")),
        case("subscription identifier in UNSUBSCRIBE", V5,
            &[0xA2, 8, 0, 1, 2, 0x0B, 1, 0, 1, b'a'], not_allowed(0x0B, "UNSUBSCRIBE")),
        case("content type in DISCONNECT", V5,
            &[0xE0, 6, 0x00, 4, 0x03, 0, 1, b'x'], not_allowed(0x03, "DISCONNECT")),
        case("maximum QoS in SUBACK", V5,
            &[0x90, 6, 0, 1, 2, 0x24, 1, 0], not_allowed(0x24, "SUBACK")),
        case("authentication method in PUBACK", V5,
            &[0x40, 8, 0, 1, 0x00, 4, 0x15, 0, 1, b'x'], not_allowed(0x15, "PUBACK/PUBREC/PUBREL/PUBCOMP")),
        case("unknown property 0x00", V5, &[0x40, 5, 0, 1, 0x00, 1, 0x00], UnknownProperty(0x00)),
        case("unknown property 0x7F", V5, &[0x30, 6, 0, 1, b'a', 2, 0x7F, 0], UnknownProperty(0x7F)),
        // An identifier is a varint; 0x80 0x02 is 256, past every defined one.
        case("property identifier 256", V5, &[0x30, 6, 0, 1, b'a', 2, 0x80, 0x02], UnknownProperty(0xFF)),
        // §3.8.2.1.2: "It is a Protocol Error if the Subscription Identifier has a value of 0."
        case("subscription identifier 0 in SUBSCRIBE", V5,
            &[0x82, 9, 0, 1, 2, 0x0B, 0, 0, 1, b'a', 0], SubscriptionIdZero),
        case("subscription identifier 0 in PUBLISH", V5, &[0x30, 6, 0, 1, b'a', 2, 0x0B, 0], SubscriptionIdZero),
        // §3.1.2.11.3 / §3.1.2.11.4: zero is a protocol error.
        case("receive maximum 0", FIRST,
            &[0x10, 17, 0, 4, b'M', b'Q', b'T', b'T', 5, 0x02, 0, 60, 3, 0x21, 0, 0, 0, 1, b'a'],
            InvalidPropertyValue(0x21)),
        case("maximum packet size 0", FIRST,
            &[0x10, 19, 0, 4, b'M', b'Q', b'T', b'T', 5, 0x02, 0, 60, 5, 0x27, 0, 0, 0, 0, 0, 1, b'a'],
            InvalidPropertyValue(0x27)),
        // §3.1.2.11.7: values other than 0 and 1 are a protocol error.
        case("request problem information 2", FIRST,
            &[0x10, 16, 0, 4, b'M', b'Q', b'T', b'T', 5, 0x02, 0, 60, 2, 0x17, 2, 0, 1, b'a'],
            InvalidPropertyValue(0x17)),
        case("maximum QoS 2 in CONNACK", V5, &[0x20, 5, 0, 0, 2, 0x24, 2], InvalidPropertyValue(0x24)),

        // ---- SUBSCRIBE / UNSUBSCRIBE --------------------------------------
        // [MQTT-3.8.3-5] bits 6 and 7 of the options are reserved.
        case("subscription options bit 6", V5, &[0x82, 7, 0, 1, 0, 0, 1, b'a', 0x40], SubscriptionOptionsReserved),
        case("subscription options bit 7", V5, &[0x82, 7, 0, 1, 0, 0, 1, b'a', 0x81], SubscriptionOptionsReserved),
        // 3.1.1 [MQTT-3.8.3-4]: bits 2-7 are reserved there (no local & co. are v5).
        case("subscription options no local in 3.1.1", V4,
            &[0x82, 6, 0, 1, 0, 1, b'a', 0x04], SubscriptionOptionsReserved),
        // §3.8.3.1: retain handling 3 is a protocol error.
        case("retain handling 3", V5, &[0x82, 7, 0, 1, 0, 0, 1, b'a', 0x30], InvalidRetainHandling),
        case("subscription QoS 3", V5, &[0x82, 7, 0, 1, 0, 0, 1, b'a', 0x03], InvalidSubscriptionQos),
        case("subscription QoS 3 in 3.1.1", V4, &[0x82, 6, 0, 1, 0, 1, b'a', 0x03], InvalidSubscriptionQos),
        // [MQTT-3.8.3-2] (3.1.1 [MQTT-3.8.3-3]), [MQTT-3.10.2-2] (3.1.1 [MQTT-3.10.3-2])
        case("SUBSCRIBE without filters 3.1.1", V4, &[0x82, 2, 0, 1], NoTopicFilters),
        case("SUBSCRIBE without filters v5", V5, &[0x82, 3, 0, 1, 0], NoTopicFilters),
        case("UNSUBSCRIBE without filters 3.1.1", V4, &[0xA2, 2, 0, 1], NoTopicFilters),
        case("UNSUBSCRIBE without filters v5", V5, &[0xA2, 3, 0, 1, 0], NoTopicFilters),
        // [MQTT-2.2.1-3]
        case("SUBSCRIBE packet id 0", V4, &[0x82, 6, 0, 0, 0, 1, b'a', 0], ZeroPacketId),
        case("UNSUBSCRIBE packet id 0", V5, &[0xA2, 6, 0, 0, 0, 0, 1, b'a'], ZeroPacketId),
        case("SUBACK packet id 0", V4, &[0x90, 3, 0, 0, 0], ZeroPacketId),
        case("PUBACK packet id 0", V4, &[0x40, 2, 0, 0], ZeroPacketId),
        case("PUBREL packet id 0", V5, &[0x62, 2, 0, 0], ZeroPacketId),

        // ---- CONNECT -------------------------------------------------------
        // [MQTT-3.1.2-3]
        case("CONNECT reserved flag", FIRST,
            &[0x10, 13, 0, 4, b'M', b'Q', b'T', b'T', 4, 0x03, 0, 60, 0, 1, b'a'], ConnectReservedFlag),
        // [MQTT-3.1.2-11]
        case("CONNECT will QoS without will flag", FIRST,
            &[0x10, 13, 0, 4, b'M', b'Q', b'T', b'T', 4, 0x0A, 0, 60, 0, 1, b'a'], WillFlagsWithoutWill),
        // [MQTT-3.1.2-13]
        case("CONNECT will retain without will flag", FIRST,
            &[0x10, 13, 0, 4, b'M', b'Q', b'T', b'T', 4, 0x22, 0, 60, 0, 1, b'a'], WillFlagsWithoutWill),
        // [MQTT-3.1.2-12]
        case("CONNECT will QoS 3", FIRST,
            &[0x10, 13, 0, 4, b'M', b'Q', b'T', b'T', 4, 0x1E, 0, 60, 0, 1, b'a'], InvalidWillQos),
        // 3.1.1 [MQTT-3.1.2-22]
        case("CONNECT password without user name 3.1.1", FIRST,
            &[0x10, 13, 0, 4, b'M', b'Q', b'T', b'T', 4, 0x42, 0, 60, 0, 1, b'a'], PasswordWithoutUsername),
        case("CONNECT password without user name 3.1", FIRST,
            &[0x10, 15, 0, 6, b'M', b'Q', b'I', b's', b'd', b'p', 3, 0x42, 0, 60, 0, 1, b'a'],
            PasswordWithoutUsername),
        // [MQTT-3.1.2-1] [MQTT-3.1.2-2]
        case("CONNECT protocol level 6", FIRST,
            &[0x10, 13, 0, 4, b'M', b'Q', b'T', b'T', 6, 0x02, 0, 60, 0, 1, b'a'], UnsupportedProtocol { level: 6 }),
        case("CONNECT MQTT at level 3", FIRST,
            &[0x10, 13, 0, 4, b'M', b'Q', b'T', b'T', 3, 0x02, 0, 60, 0, 1, b'a'], UnsupportedProtocol { level: 3 }),
        case("CONNECT MQIsdp at level 4", FIRST,
            &[0x10, 15, 0, 6, b'M', b'Q', b'I', b's', b'd', b'p', 4, 0x02, 0, 60, 0, 1, b'a'],
            UnsupportedProtocol { level: 4 }),
        case("CONNECT protocol name in lower case", FIRST,
            &[0x10, 13, 0, 4, b'm', b'q', b't', b't', 4, 0x02, 0, 60, 0, 1, b'a'], UnsupportedProtocol { level: 4 }),
        case("CONNECT will payload not UTF-8 as announced", FIRST,
            &[0x10, 23, 0, 4, b'M', b'Q', b'T', b'T', 5, 0x06, 0, 60, 0, 0, 1, b'a',
              2, 0x01, 0x01, 0, 1, b'w', 0, 1, 0xFF], PayloadNotUtf8),

        // ---- CONNACK -------------------------------------------------------
        // [MQTT-3.2.2-1]
        case("CONNACK reserved acknowledge flags", V4, &[0x20, 2, 0x02, 0], ConnAckReservedFlags),
        case("CONNACK v5 reserved acknowledge flags", V5, &[0x20, 3, 0x80, 0, 0], ConnAckReservedFlags),
        // 3.1.1 §3.2.2.3: return codes 6-255 are reserved.
        case("CONNACK 3.1.1 return code 6", V4, &[0x20, 2, 0, 6],
            InvalidReasonCode { code: 6, packet: "CONNACK" }),

        // ---- Reason codes that the packet does not define ------------------
        // [MQTT-3.4.2-1]
        case("PUBACK reason 0x01", V5, &[0x40, 3, 0, 1, 0x01], InvalidReasonCode { code: 0x01, packet: "PUBACK" }),
        // [MQTT-3.5.2-1]
        case("PUBREC reason 0x92", V5, &[0x50, 3, 0, 1, 0x92], InvalidReasonCode { code: 0x92, packet: "PUBREC" }),
        // [MQTT-3.6.2-1]
        case("PUBREL reason 0x10", V5, &[0x62, 3, 0, 1, 0x10], InvalidReasonCode { code: 0x10, packet: "PUBREL" }),
        // [MQTT-3.7.2.1-1]
        case("PUBCOMP reason 0x80", V5, &[0x70, 3, 0, 1, 0x80], InvalidReasonCode { code: 0x80, packet: "PUBCOMP" }),
        // [MQTT-3.14.2-1]
        case("DISCONNECT reason 0x01", V5, &[0xE0, 1, 0x01], InvalidReasonCode { code: 0x01, packet: "DISCONNECT" }),
        // [MQTT-3.15.2-1]
        case("AUTH reason 0x01", V5, &[0xF0, 1, 0x01], InvalidReasonCode { code: 0x01, packet: "AUTH" }),
    ]
}

#[test]
fn malformed_table() {
    let cases = cases();
    let mut failures = Vec::new();
    for c in &cases {
        match decode_frame(c.bytes, c.protocol) {
            Err(e) if e == c.expected => {}
            other => failures.push(format!("{}: expected Err({:?}), got {:?}", c.name, c.expected, other)),
        }
        // Every malformed frame closes the connection with an error code.
        assert!(c.expected.reason_code().is_error(), "{}", c.name);
    }
    assert!(
        failures.is_empty(),
        "{} of {} cases:\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n")
    );
}

#[test]
fn table_names_are_unique() {
    let cases = cases();
    let mut names: Vec<_> = cases.iter().map(|c| c.name).collect();
    names.sort_unstable();
    names.dedup();
    assert_eq!(names.len(), cases.len());
}

#[test]
fn packet_too_large() {
    // [MQTT-3.2.2-15] a PUBLISH of 12 bytes against a maximum of 11.
    let frame = [0x30, 10, 0, 1, b'a', 1, 2, 3, 4, 5, 6, 7];
    assert_eq!(
        decode_frame_max(&frame, V4, 11),
        Err(PacketTooLarge { size: 12, max: 11 })
    );
    // Exactly the maximum is fine.
    assert!(matches!(decode_frame_max(&frame, V4, 12), Ok(Packet::Publish(_))));
    // The limit counts the fixed header too, and is checked from the header
    // alone, before the body has arrived: 16,383 + 3 bytes.
    assert_eq!(
        parse_frame_header(&[0x30, 0xFF, 0x7F], 1024),
        Err(PacketTooLarge {
            size: 16_386,
            max: 1024
        })
    );
}

#[test]
fn remaining_length_fails_before_the_fifth_byte_arrives() {
    // Four continuation bytes are already wrong [MQTT-1.5.5-1]: no need to
    // wait for a fifth.
    assert_eq!(
        parse_frame_header(&[0xC0, 0xFF, 0xFF, 0xFF, 0xFF], u32::MAX),
        Err(MalformedRemainingLength)
    );
}

#[test]
fn incomplete_frames_wait_for_more_bytes() {
    let frame = [0x30, 0x80, 0x01, 0, 1, b'a']; // remaining length 128
    for n in 0..3 {
        assert_eq!(parse_frame_header(&frame[..n], u32::MAX), Ok(None), "prefix of {n}");
    }
    let h = parse_frame_header(&frame, u32::MAX).unwrap().unwrap();
    assert_eq!((h.header_len, h.remaining_len, h.frame_len()), (3, 128, 131));
    // The largest remaining length in four bytes.
    let h = parse_frame_header(&[0x30, 0xFF, 0xFF, 0xFF, 0x7F], u32::MAX)
        .unwrap()
        .unwrap();
    assert_eq!(h.remaining_len, 268_435_455);
}

#[test]
fn every_prefix_of_a_connect_body_is_truncated() {
    // A v5 CONNECT with will, user name, password and properties: its last
    // field is the password, so cutting it anywhere leaves a field short.
    let full = super::encode_checked(
        &Packet::Connect(Box::new(crate::codec::Connect {
            protocol: Protocol::V5,
            clean_start: true,
            keep_alive: 10,
            client_id: "c".into(),
            will: Some(crate::codec::LastWill {
                topic: "w".into(),
                payload: bytes::Bytes::from_static(b"x"),
                qos: crate::codec::QoS::AtLeastOnce,
                retain: false,
                properties: crate::codec::WillProperties {
                    will_delay_interval: Some(5),
                    ..Default::default()
                },
            }),
            username: Some("u".into()),
            password: Some(bytes::Bytes::from_static(b"p")),
            properties: crate::codec::ConnectProperties {
                session_expiry_interval: Some(60),
                ..Default::default()
            },
        })),
        Protocol::V5,
    );
    let body = &full[2..];
    for n in 0..body.len() {
        let cut = bytes::Bytes::copy_from_slice(&body[..n]);
        assert_eq!(
            crate::codec::decode(0x10, cut, FIRST),
            Err(Truncated),
            "body cut at {n}"
        );
    }
}

#[test]
fn reason_code_mapping() {
    let cases = [
        (PacketTooLarge { size: 2, max: 1 }, ReasonCode::PACKET_TOO_LARGE),
        (
            UnsupportedProtocol { level: 9 },
            ReasonCode::UNSUPPORTED_PROTOCOL_VERSION,
        ),
        (TopicAliasZero, ReasonCode::TOPIC_ALIAS_INVALID),
        (PayloadNotUtf8, ReasonCode::PAYLOAD_FORMAT_INVALID),
        (WildcardInTopicName, ReasonCode::TOPIC_NAME_INVALID),
        // §2.2.2.2 and each property's text: duplicates are protocol errors.
        (DuplicateProperty(0x02), ReasonCode::PROTOCOL_ERROR),
        (SubscriptionIdZero, ReasonCode::PROTOCOL_ERROR),
        (InvalidRetainHandling, ReasonCode::PROTOCOL_ERROR),
        // "It is a Protocol Error if the Maximum QoS field has the value 3" (5.0 §3.8.3.1).
        (InvalidSubscriptionQos, ReasonCode::PROTOCOL_ERROR),
        (SecondConnect, ReasonCode::PROTOCOL_ERROR),
        (ZeroPacketId, ReasonCode::PROTOCOL_ERROR),
        (NoTopicFilters, ReasonCode::PROTOCOL_ERROR),
        // [MQTT-3.1.2-3], [MQTT-3.3.1-4], [MQTT-3.8.3-5]: malformed.
        (ConnectReservedFlag, ReasonCode::MALFORMED_PACKET),
        (InvalidQos, ReasonCode::MALFORMED_PACKET),
        (SubscriptionOptionsReserved, ReasonCode::MALFORMED_PACKET),
        // §2.2.2.2: an identifier not valid for the packet is malformed.
        (not_allowed(0x11, "PUBLISH"), ReasonCode::MALFORMED_PACKET),
        (UnknownProperty(0x7F), ReasonCode::MALFORMED_PACKET),
        (Truncated, ReasonCode::MALFORMED_PACKET),
        (InvalidUtf8, ReasonCode::MALFORMED_PACKET),
        (MalformedRemainingLength, ReasonCode::MALFORMED_PACKET),
        (
            InvalidFlags {
                packet_type: 3,
                flags: 6,
            },
            ReasonCode::MALFORMED_PACKET,
        ),
    ];
    for (err, code) in cases {
        assert_eq!(err.reason_code(), code, "{err:?}");
    }
}

// ---- Accepted although the spec forbids it (codec bugs) -------------------

#[test]
fn non_minimal_remaining_length_is_malformed() {
    // PINGREQ with remaining length 0 written in two bytes.
    assert_eq!(decode_frame(&[0xC0, 0x80, 0x00], V5), Err(MalformedRemainingLength));
}

#[test]
fn non_minimal_varint_in_properties_is_malformed() {
    // PUBACK v5 whose property length 0 is written in two bytes.
    assert_eq!(
        decode_frame(&[0x40, 5, 0, 1, 0x00, 0x80, 0x00], V5),
        Err(MalformedVarInt)
    );
    // SUBSCRIBE whose subscription identifier 1 is written in two bytes.
    assert_eq!(
        decode_frame(&[0x82, 10, 0, 1, 3, 0x0B, 0x81, 0x00, 0, 1, b'a', 0], V5),
        Err(MalformedVarInt)
    );
}

#[test]
fn connack_v5_reason_code_outside_its_table() {
    // 0x01 is not a CONNACK reason code (§3.2.2.2 table 3-1).
    assert_eq!(
        decode_frame(&[0x20, 3, 0, 0x01, 0], V5),
        Err(InvalidReasonCode {
            code: 0x01,
            packet: "CONNACK"
        })
    );
}

#[test]
fn suback_code_outside_its_table() {
    // 3.1.1 allows 0x00, 0x01, 0x02 and 0x80 only.
    assert_eq!(
        decode_frame(&[0x90, 3, 0, 1, 0x03], V4),
        Err(InvalidReasonCode {
            code: 0x03,
            packet: "SUBACK"
        })
    );
    // 0x10 (no matching subscribers) is a PUBACK code, not a SUBACK one.
    assert_eq!(
        decode_frame(&[0x90, 4, 0, 1, 0, 0x10], V5),
        Err(InvalidReasonCode {
            code: 0x10,
            packet: "SUBACK"
        })
    );
}

#[test]
fn unsuback_code_outside_its_table() {
    // 0x02 is a SUBACK code (granted QoS 2), not an UNSUBACK one.
    assert_eq!(
        decode_frame(&[0xB0, 4, 0, 1, 0, 0x02], V5),
        Err(InvalidReasonCode {
            code: 0x02,
            packet: "UNSUBACK"
        })
    );
}
