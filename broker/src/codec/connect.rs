//! CONNECT and CONNACK (MQTT 5.0 §3.1, §3.2; 3.1.1 §3.1, §3.2).

use bytes::{BufMut, Bytes, BytesMut};
use bytestring::ByteString;

use super::primitives::{Reader, put_binary, put_str};
use super::properties::{self as prop, Kind, PropWriter, Props};
use super::{DecodeError, EncodeError, Protocol, QoS, ReasonCode, UserProperties};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Connect {
    pub protocol: Protocol,
    /// Clean Session on 3.1.x, Clean Start on 5.0.
    pub clean_start: bool,
    pub keep_alive: u16,
    pub client_id: ByteString,
    pub will: Option<LastWill>,
    pub username: Option<ByteString>,
    pub password: Option<Bytes>,
    pub properties: ConnectProperties,
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ConnectProperties {
    pub session_expiry_interval: Option<u32>,
    pub receive_maximum: Option<u16>,
    pub maximum_packet_size: Option<u32>,
    pub topic_alias_maximum: Option<u16>,
    pub request_response_information: Option<bool>,
    pub request_problem_information: Option<bool>,
    pub user_properties: UserProperties,
    pub authentication_method: Option<ByteString>,
    pub authentication_data: Option<Bytes>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LastWill {
    pub topic: ByteString,
    pub payload: Bytes,
    pub qos: QoS,
    pub retain: bool,
    pub properties: WillProperties,
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct WillProperties {
    pub will_delay_interval: Option<u32>,
    pub payload_format_indicator: Option<u8>,
    pub message_expiry_interval: Option<u32>,
    pub content_type: Option<ByteString>,
    pub response_topic: Option<ByteString>,
    pub correlation_data: Option<Bytes>,
    pub user_properties: UserProperties,
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ConnAck {
    pub session_present: bool,
    /// v5 reason code; the encoder maps it to a 3.1.1 return code.
    pub reason_code: ReasonCode,
    pub properties: ConnAckProperties,
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ConnAckProperties {
    pub session_expiry_interval: Option<u32>,
    pub receive_maximum: Option<u16>,
    pub maximum_qos: Option<QoS>,
    pub retain_available: Option<bool>,
    pub maximum_packet_size: Option<u32>,
    pub assigned_client_identifier: Option<ByteString>,
    pub topic_alias_maximum: Option<u16>,
    pub reason_string: Option<ByteString>,
    pub user_properties: UserProperties,
    pub wildcard_subscription_available: Option<bool>,
    pub subscription_identifiers_available: Option<bool>,
    pub shared_subscription_available: Option<bool>,
    pub server_keep_alive: Option<u16>,
    pub response_information: Option<ByteString>,
    pub server_reference: Option<ByteString>,
    pub authentication_method: Option<ByteString>,
    pub authentication_data: Option<Bytes>,
}

impl Connect {
    pub(crate) fn decode(flags: u8, body: Bytes) -> Result<Connect, DecodeError> {
        if flags != 0 {
            return Err(DecodeError::InvalidFlags { packet_type: 1, flags });
        }
        let mut r = Reader::new(body);
        let name = r.binary()?;
        let level = r.u8()?;
        let protocol = match (&name[..], level) {
            (b"MQTT", 4) => Protocol::V3_1_1,
            (b"MQTT", 5) => Protocol::V5,
            (b"MQIsdp", 3) => Protocol::V3_1,
            _ => return Err(DecodeError::UnsupportedProtocol { level }),
        };
        let cflags = r.u8()?;
        if cflags & 0x01 != 0 {
            return Err(DecodeError::ConnectReservedFlag);
        }
        let clean_start = cflags & 0x02 != 0;
        let will_flag = cflags & 0x04 != 0;
        let will_qos = (cflags >> 3) & 0x03;
        let will_retain = cflags & 0x20 != 0;
        let password_flag = cflags & 0x40 != 0;
        let username_flag = cflags & 0x80 != 0;
        if !will_flag && (will_qos != 0 || will_retain) {
            return Err(DecodeError::WillFlagsWithoutWill);
        }
        let will_qos = QoS::from_u8(will_qos).ok_or(DecodeError::InvalidWillQos)?;
        // v5 allows a password without a user name; 3.1.x does not.
        if password_flag && !username_flag && protocol != Protocol::V5 {
            return Err(DecodeError::PasswordWithoutUsername);
        }
        let keep_alive = r.u16()?;
        let properties = if protocol.is_v5() {
            let p = Props::decode(&mut r, Kind::Connect)?;
            ConnectProperties {
                session_expiry_interval: p.session_expiry_interval,
                receive_maximum: p.receive_maximum,
                maximum_packet_size: p.maximum_packet_size,
                topic_alias_maximum: p.topic_alias_maximum,
                request_response_information: p.request_response_information.map(|v| v == 1),
                request_problem_information: p.request_problem_information.map(|v| v == 1),
                user_properties: p.user_properties,
                authentication_method: p.authentication_method,
                authentication_data: p.authentication_data,
            }
        } else {
            ConnectProperties::default()
        };
        let client_id = r.string()?;
        let will = if will_flag {
            let properties = if protocol.is_v5() {
                let p = Props::decode(&mut r, Kind::Will)?;
                WillProperties {
                    will_delay_interval: p.will_delay_interval,
                    payload_format_indicator: p.payload_format_indicator,
                    message_expiry_interval: p.message_expiry_interval,
                    content_type: p.content_type,
                    response_topic: p.response_topic,
                    correlation_data: p.correlation_data,
                    user_properties: p.user_properties,
                }
            } else {
                WillProperties::default()
            };
            let topic = r.string()?;
            let payload = r.binary()?;
            if properties.payload_format_indicator == Some(1) && std::str::from_utf8(&payload).is_err() {
                return Err(DecodeError::PayloadNotUtf8);
            }
            Some(LastWill {
                topic,
                payload,
                qos: will_qos,
                retain: will_retain,
                properties,
            })
        } else {
            None
        };
        let username = if username_flag { Some(r.string()?) } else { None };
        let password = if password_flag { Some(r.binary()?) } else { None };
        r.finish()?;
        Ok(Connect {
            protocol,
            clean_start,
            keep_alive,
            client_id,
            will,
            username,
            password,
            properties,
        })
    }

    pub(crate) fn encode_body(&self, out: &mut BytesMut) -> Result<u8, EncodeError> {
        let (name, level): (&str, u8) = match self.protocol {
            Protocol::V3_1 => ("MQIsdp", 3),
            Protocol::V3_1_1 => ("MQTT", 4),
            Protocol::V5 => ("MQTT", 5),
        };
        put_str(out, name, "protocol name")?;
        out.put_u8(level);
        let mut flags = 0u8;
        if self.clean_start {
            flags |= 0x02;
        }
        if let Some(w) = &self.will {
            flags |= 0x04 | ((w.qos as u8) << 3);
            if w.retain {
                flags |= 0x20;
            }
        }
        if self.password.is_some() {
            flags |= 0x40;
        }
        if self.username.is_some() {
            flags |= 0x80;
        }
        out.put_u8(flags);
        out.put_u16(self.keep_alive);
        let v5 = self.protocol.is_v5();
        if v5 {
            let p = &self.properties;
            let mut w = PropWriter::default();
            w.u32(prop::SESSION_EXPIRY_INTERVAL, p.session_expiry_interval);
            w.u16(prop::RECEIVE_MAXIMUM, p.receive_maximum);
            w.u32(prop::MAXIMUM_PACKET_SIZE, p.maximum_packet_size);
            w.u16(prop::TOPIC_ALIAS_MAXIMUM, p.topic_alias_maximum);
            w.flag(prop::REQUEST_RESPONSE_INFORMATION, p.request_response_information);
            w.flag(prop::REQUEST_PROBLEM_INFORMATION, p.request_problem_information);
            w.user(&p.user_properties)?;
            w.str(prop::AUTHENTICATION_METHOD, p.authentication_method.as_ref())?;
            w.bin(prop::AUTHENTICATION_DATA, p.authentication_data.as_ref())?;
            w.finish(out);
        }
        put_str(out, &self.client_id, "client identifier")?;
        if let Some(will) = &self.will {
            if v5 {
                let p = &will.properties;
                let mut w = PropWriter::default();
                w.u32(prop::WILL_DELAY_INTERVAL, p.will_delay_interval);
                w.u8(prop::PAYLOAD_FORMAT_INDICATOR, p.payload_format_indicator);
                w.u32(prop::MESSAGE_EXPIRY_INTERVAL, p.message_expiry_interval);
                w.str(prop::CONTENT_TYPE, p.content_type.as_ref())?;
                w.str(prop::RESPONSE_TOPIC, p.response_topic.as_ref())?;
                w.bin(prop::CORRELATION_DATA, p.correlation_data.as_ref())?;
                w.user(&p.user_properties)?;
                w.finish(out);
            }
            put_str(out, &will.topic, "will topic")?;
            put_binary(out, &will.payload, "will payload")?;
        }
        if let Some(u) = &self.username {
            put_str(out, u, "user name")?;
        }
        if let Some(p) = &self.password {
            put_binary(out, p, "password")?;
        }
        Ok(0x10)
    }
}

/// CONNACK reason codes of MQTT 5.0 §3.2.2.2 [MQTT-3.2.2-8].
const CONNACK_CODES: &[u8] = &[
    0x00, 0x80, 0x81, 0x82, 0x83, 0x84, 0x85, 0x86, 0x87, 0x88, 0x89, 0x8A, 0x8C, 0x90, 0x95, 0x97, 0x99, 0x9A, 0x9B,
    0x9C, 0x9D, 0x9F,
];

impl ConnAck {
    pub(crate) fn decode(flags: u8, body: Bytes, protocol: Protocol) -> Result<ConnAck, DecodeError> {
        if flags != 0 {
            return Err(DecodeError::InvalidFlags { packet_type: 2, flags });
        }
        let mut r = Reader::new(body);
        let ack_flags = r.u8()?;
        if ack_flags & 0xFE != 0 {
            return Err(DecodeError::ConnAckReservedFlags);
        }
        let code = r.u8()?;
        let known = if protocol.is_v5() {
            CONNACK_CODES.contains(&code)
        } else {
            code <= 5
        };
        if !known {
            return Err(DecodeError::InvalidReasonCode {
                code,
                packet: "CONNACK",
            });
        }
        let (reason_code, properties) = if protocol.is_v5() {
            let p = Props::decode(&mut r, Kind::ConnAck)?;
            let props = ConnAckProperties {
                session_expiry_interval: p.session_expiry_interval,
                receive_maximum: p.receive_maximum,
                maximum_qos: p.maximum_qos.and_then(QoS::from_u8),
                retain_available: p.retain_available.map(|v| v == 1),
                maximum_packet_size: p.maximum_packet_size,
                assigned_client_identifier: p.assigned_client_identifier,
                topic_alias_maximum: p.topic_alias_maximum,
                reason_string: p.reason_string,
                user_properties: p.user_properties,
                wildcard_subscription_available: p.wildcard_subscription_available.map(|v| v == 1),
                subscription_identifiers_available: p.subscription_identifier_available.map(|v| v == 1),
                shared_subscription_available: p.shared_subscription_available.map(|v| v == 1),
                server_keep_alive: p.server_keep_alive,
                response_information: p.response_information,
                server_reference: p.server_reference,
                authentication_method: p.authentication_method,
                authentication_data: p.authentication_data,
            };
            (ReasonCode(code), props)
        } else {
            let reason = match code {
                0 => ReasonCode::SUCCESS,
                1 => ReasonCode::UNSUPPORTED_PROTOCOL_VERSION,
                2 => ReasonCode::CLIENT_IDENTIFIER_NOT_VALID,
                3 => ReasonCode::SERVER_UNAVAILABLE,
                4 => ReasonCode::BAD_USER_NAME_OR_PASSWORD,
                5 => ReasonCode::NOT_AUTHORIZED,
                other => {
                    return Err(DecodeError::InvalidReasonCode {
                        code: other,
                        packet: "CONNACK",
                    });
                }
            };
            (reason, ConnAckProperties::default())
        };
        r.finish()?;
        Ok(ConnAck {
            session_present: ack_flags & 1 == 1,
            reason_code,
            properties,
        })
    }

    pub(crate) fn encode_body(&self, protocol: Protocol, out: &mut BytesMut) -> Result<u8, EncodeError> {
        // Session present is 0 whenever the return code is not success
        // [MQTT-3.2.2-6].
        out.put_u8(u8::from(
            self.session_present && self.reason_code == ReasonCode::SUCCESS,
        ));
        if !protocol.is_v5() {
            out.put_u8(self.reason_code.to_v3_connack());
            return Ok(0x20);
        }
        out.put_u8(self.reason_code.0);
        let p = &self.properties;
        let mut w = PropWriter::default();
        w.u32(prop::SESSION_EXPIRY_INTERVAL, p.session_expiry_interval);
        w.u16(prop::RECEIVE_MAXIMUM, p.receive_maximum);
        w.u8(prop::MAXIMUM_QOS, p.maximum_qos.map(|q| q as u8));
        w.flag(prop::RETAIN_AVAILABLE, p.retain_available);
        w.u32(prop::MAXIMUM_PACKET_SIZE, p.maximum_packet_size);
        w.str(prop::ASSIGNED_CLIENT_IDENTIFIER, p.assigned_client_identifier.as_ref())?;
        w.u16(prop::TOPIC_ALIAS_MAXIMUM, p.topic_alias_maximum);
        w.str(prop::REASON_STRING, p.reason_string.as_ref())?;
        w.user(&p.user_properties)?;
        w.flag(prop::WILDCARD_SUBSCRIPTION_AVAILABLE, p.wildcard_subscription_available);
        w.flag(
            prop::SUBSCRIPTION_IDENTIFIER_AVAILABLE,
            p.subscription_identifiers_available,
        );
        w.flag(prop::SHARED_SUBSCRIPTION_AVAILABLE, p.shared_subscription_available);
        w.u16(prop::SERVER_KEEP_ALIVE, p.server_keep_alive);
        w.str(prop::RESPONSE_INFORMATION, p.response_information.as_ref())?;
        w.str(prop::SERVER_REFERENCE, p.server_reference.as_ref())?;
        w.str(prop::AUTHENTICATION_METHOD, p.authentication_method.as_ref())?;
        w.bin(prop::AUTHENTICATION_DATA, p.authentication_data.as_ref())?;
        w.finish(out);
        Ok(0x20)
    }
}
