//! From an accepted socket to an attached session: read CONNECT within the
//! handshake timeout, check it, attach the session, answer CONNACK.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::{Buf, Bytes, BytesMut};
use bytestring::ByteString;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::auth::{self, ConnectInfo};
use crate::broker::{Attached, Broker, NEVER_EXPIRES};
use crate::codec::{
    self, ConnAck, ConnAckProperties, Connect, DecodeError, LastWill, Packet, Protocol, QoS, ReasonCode,
};
use crate::listener::ListenerSettings;
use crate::shutdown::ShutdownSignal;
use crate::topic::{topic_levels, validate_topic_name};

use super::socket::Socket;

/// A byte stream the handshake can run over: plain TCP, or TLS over TCP.
/// After CONNACK the connection loop takes the socket back, with the TLS
/// session when there is one, to drive both by readiness.
pub trait Transport: AsyncRead + AsyncWrite + Unpin + Send {
    fn into_parts(self) -> (Socket, Option<Box<rustls::ServerConnection>>);
    /// The subject CN of a verified client certificate.
    fn peer_identity(&self) -> Option<String>;
}

impl Transport for TcpStream {
    fn into_parts(self) -> (Socket, Option<Box<rustls::ServerConnection>>) {
        (Socket::Tcp(self), None)
    }

    fn peer_identity(&self) -> Option<String> {
        None
    }
}

impl Transport for tokio_rustls::server::TlsStream<TcpStream> {
    fn into_parts(self) -> (Socket, Option<Box<rustls::ServerConnection>>) {
        let (tcp, tls) = self.into_inner();
        (Socket::Tcp(tcp), Some(Box::new(tls)))
    }

    fn peer_identity(&self) -> Option<String> {
        crate::listener::peer_common_name(self.get_ref().1)
    }
}

/// WebSocket: the local end of the pair the frames are moved through
/// ([`super::ws`]); TLS, if any, was ended before the framing.
impl Transport for tokio::net::UnixStream {
    fn into_parts(self) -> (Socket, Option<Box<rustls::ServerConnection>>) {
        (Socket::Unix(self), None)
    }

    fn peer_identity(&self) -> Option<String> {
        None
    }
}

/// A connection that passed the handshake.
pub struct Accepted {
    pub stream: Socket,
    /// The TLS session of an `mqtts` connection, continued by hand by the
    /// connection loop on the same socket.
    pub tls: Option<Box<rustls::ServerConnection>>,
    pub peer: SocketAddr,
    pub listener: Arc<ListenerSettings>,
    pub broker: Arc<Broker>,
    pub attached: Attached,
    pub protocol: Protocol,
    /// Seconds; 0 disables keep alive.
    pub keep_alive: u16,
    /// How many unacknowledged QoS 1/2 PUBLISHes we may send [MQTT-3.3.4-9].
    pub send_window: u16,
    /// The client's Maximum Packet Size [MQTT-3.1.2-24].
    pub client_max_packet: u32,
    pub will: Option<LastWill>,
    /// For the publish and subscribe webhooks.
    pub username: Option<Box<str>>,
    pub expiry_interval: u32,
    /// Expiry as the client asked at CONNECT, to police DISCONNECT
    /// [MQTT-3.14.2-2].
    pub connect_expiry_was_zero: bool,
    /// Bytes received after CONNECT in the same reads.
    pub rest: BytesMut,
}

#[derive(Debug, thiserror::Error)]
enum ReadConnectError {
    #[error("closed before CONNECT")]
    Eof,
    #[error("{0}")]
    Io(#[from] std::io::Error),
    #[error("{0}")]
    Decode(#[from] DecodeError),
}

pub async fn handshake<S: Transport>(
    mut stream: S,
    peer: SocketAddr,
    broker: Arc<Broker>,
    listener_settings: Arc<ListenerSettings>,
    mut shutdown: ShutdownSignal,
) -> Option<Accepted> {
    let broker = &broker;
    let listener = &*listener_settings;
    let limits = &broker.limits;
    let read = tokio::select! {
        r = tokio::time::timeout(limits.handshake_timeout, read_connect(&mut stream, limits.max_packet_size)) => r,
        _ = shutdown.wait() => return None,
    };
    let (connect, rest) = match read {
        Err(_) => {
            tracing::debug!(timeout = ?limits.handshake_timeout, "closing: no CONNECT within the handshake timeout");
            return None;
        }
        Ok(Err(ReadConnectError::Decode(e))) => {
            crate::metrics::Metrics::add(&broker.metrics.malformed_packets, 1);
            tracing::info!(error = %e, "closing: bad CONNECT");
            if e.reason_code() == ReasonCode::UNSUPPORTED_PROTOCOL_VERSION {
                // A 3.1.1-shaped CONNACK with return code 1 is what a client of
                // any version can read [MQTT-3.1.2-2].
                let _ = stream.write_all(&[0x20, 0x02, 0x00, 0x01]).await;
            }
            return None;
        }
        Ok(Err(e)) => {
            tracing::debug!(error = %e, "closing before CONNECT");
            return None;
        }
        Ok(Ok(x)) => x,
    };
    let protocol = connect.protocol;
    let (client_id, assigned) = match client_identifier(&connect, broker) {
        Ok(x) => x,
        Err(reason) => return refuse(stream, protocol, reason, "client identifier not valid").await,
    };
    tracing::Span::current().record("client_id", tracing::field::display(&client_id));

    if let Err((reason, why)) = check_will(&connect, broker) {
        if !protocol.is_v5() && reason == ReasonCode::TOPIC_NAME_INVALID {
            // 3.1.1 has no CONNACK code for a bad will topic: the
            // connection is closed without one [MQTT-3.1.4-1] [MQTT-3.2.2-6].
            tracing::info!(why, "closing: CONNECT with an invalid will topic");
            return None;
        }
        return refuse(stream, protocol, reason, why).await;
    }
    if connect.properties.authentication_method.is_some() {
        // No enhanced authentication method is supported yet [MQTT-4.12.0-1].
        return refuse(
            stream,
            protocol,
            ReasonCode::BAD_AUTHENTICATION_METHOD,
            "unsupported authentication method",
        )
        .await;
    }
    // With use_identity_as_username the certificate names the client, as
    // in Mosquitto: CONNECT's user name and password are not used.
    let identity = if listener.use_identity_as_username {
        match stream.peer_identity() {
            Some(cn) => Some(cn),
            None => {
                return refuse(
                    stream,
                    protocol,
                    ReasonCode::NOT_AUTHORIZED,
                    "no client certificate identity",
                )
                .await;
            }
        }
    } else {
        None
    };
    let info = ConnectInfo {
        client_id: &client_id,
        username: identity.as_deref().or(connect.username.as_deref()),
        password: if identity.is_some() {
            None
        } else {
            connect.password.as_deref()
        },
        certified: identity.is_some(),
    };
    let admission = match auth::check_connect(listener, &info, peer).await {
        Ok(a) => a,
        Err(reason) => return refuse(stream, protocol, reason, "not authorised").await,
    };
    let acl = admission.acl;
    let username: Option<Box<str>> = info.username.map(Box::from);
    if let (Some(acl), Some(will)) = (&acl, &connect.will)
        && !acl.can_write(&will.topic)
    {
        return refuse(stream, protocol, ReasonCode::NOT_AUTHORIZED, "will topic not writable").await;
    }

    let max_expiry = u32::try_from(limits.max_session_expiry.as_secs()).unwrap_or(NEVER_EXPIRES);
    let requested_expiry = if protocol.is_v5() {
        connect.properties.session_expiry_interval.unwrap_or(0)
    } else if connect.clean_start {
        0
    } else {
        // 3.1.x persistent sessions have no expiry of their own; the
        // broker's cap bounds how long an abandoned one is kept.
        NEVER_EXPIRES
    };
    let expiry_interval = requested_expiry.min(max_expiry);

    let attached = match broker
        .attach(&client_id, connect.clean_start, protocol, expiry_interval, acl)
        .await
    {
        Ok(a) => a,
        Err(e) => {
            tracing::warn!(error = %e, "refusing connection");
            return refuse(stream, protocol, ReasonCode::SERVER_BUSY, "takeover failed").await;
        }
    };
    if let Some(exp) = admission.expires_at {
        // Closed with 0x87 when the token runs out (swept with keep alive).
        attached
            .session
            .auth_deadline
            .store(broker.clock_ds_at(exp), std::sync::atomic::Ordering::Relaxed);
    }

    // Only v5 can tell the client (Server Keep Alive); a 3.1.x client keeps
    // the interval it asked for.
    let keep_alive = if protocol.is_v5() && connect.keep_alive > limits.max_keep_alive {
        limits.max_keep_alive
    } else {
        connect.keep_alive
    };
    let mut props = ConnAckProperties::default();
    if protocol.is_v5() {
        if expiry_interval != requested_expiry {
            props.session_expiry_interval = Some(expiry_interval);
        }
        props.receive_maximum = Some(limits.receive_maximum);
        if limits.max_qos < 2 {
            props.maximum_qos = QoS::from_u8(limits.max_qos);
        }
        if !limits.retain_available {
            props.retain_available = Some(false);
        }
        props.maximum_packet_size = Some(limits.max_packet_size);
        props.assigned_client_identifier = assigned.then(|| client_id.clone());
        props.topic_alias_maximum = (limits.topic_alias_maximum > 0).then_some(limits.topic_alias_maximum);
        if keep_alive != connect.keep_alive {
            props.server_keep_alive = Some(keep_alive);
        }
    }
    let connack = Packet::ConnAck(ConnAck {
        // A clean start never has a session present [MQTT-3.2.2-2].
        session_present: attached.session_present && !connect.clean_start,
        reason_code: ReasonCode::SUCCESS,
        properties: props,
    });
    let mut out = BytesMut::new();
    if let Err(e) = codec::encode(&connack, protocol, &mut out) {
        tracing::error!(error = %e, "cannot encode CONNACK");
        broker.detach(attached, None, expiry_interval);
        return None;
    }
    if let Err(e) = stream.write_all(&out).await {
        tracing::debug!(error = %e, "closing: CONNACK write failed");
        broker.detach(attached, None, expiry_interval);
        return None;
    }
    tracing::info!(
        protocol = ?protocol,
        clean_start = connect.clean_start,
        keep_alive,
        session_present = attached.session_present,
        "client connected"
    );
    let send_window = connect
        .properties
        .receive_maximum
        .unwrap_or(u16::MAX)
        .min(limits.max_inflight)
        .max(1);
    let connect = *connect;
    let (stream, tls) = stream.into_parts();
    Some(Accepted {
        stream,
        tls,
        peer,
        listener: listener_settings.clone(),
        broker: broker.clone(),
        attached,
        protocol,
        keep_alive,
        send_window,
        client_max_packet: connect.properties.maximum_packet_size.unwrap_or(u32::MAX),
        will: connect.will,
        username,
        expiry_interval,
        connect_expiry_was_zero: requested_expiry == 0,
        rest,
    })
}

async fn read_connect<S: Transport>(
    stream: &mut S,
    max_packet_size: u32,
) -> Result<(Box<Connect>, BytesMut), ReadConnectError> {
    let mut buf = BytesMut::with_capacity(256);
    loop {
        if let Some(&first) = buf.first() {
            // Anything but CONNECT first closes the connection at once, before
            // its body is read [MQTT-3.1.0-1].
            if first >> 4 != 1 {
                return Err(DecodeError::FirstPacketNotConnect.into());
            }
        }
        if let Some(h) = codec::parse_frame_header(&buf, max_packet_size)? {
            if buf.len() >= h.frame_len() {
                let body = Bytes::copy_from_slice(&buf[h.header_len..h.frame_len()]);
                buf.advance(h.frame_len());
                return match codec::decode(h.first_byte, body, None)? {
                    Packet::Connect(c) => Ok((c, buf)),
                    _ => Err(DecodeError::FirstPacketNotConnect.into()),
                };
            }
            buf.reserve(h.frame_len() - buf.len());
        }
        if stream.read_buf(&mut buf).await? == 0 {
            return Err(ReadConnectError::Eof);
        }
    }
}

/// The client identifier to use and whether the server assigned it.
fn client_identifier(connect: &Connect, broker: &Broker) -> Result<(ByteString, bool), ReasonCode> {
    let id = &connect.client_id;
    if id.is_empty() {
        // 3.1 requires an identifier; 3.1.1 allows an empty one only with a
        // clean session [MQTT-3.1.3-7] [MQTT-3.1.3-8]; v5 assigns one
        // [MQTT-3.1.3-6].
        let allowed = match connect.protocol {
            Protocol::V3_1 => false,
            Protocol::V3_1_1 => connect.clean_start,
            Protocol::V5 => true,
        };
        if !allowed {
            return Err(ReasonCode::CLIENT_IDENTIFIER_NOT_VALID);
        }
        let assigned = format!("tern-{:016x}", broker.registry.next_id() ^ random_salt());
        return Ok((ByteString::from(assigned), true));
    }
    if id.len() > broker.limits.max_client_id_len {
        return Err(ReasonCode::CLIENT_IDENTIFIER_NOT_VALID);
    }
    Ok((id.clone(), false))
}

/// Keeps assigned identifiers from being guessable across broker restarts.
fn random_salt() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u64(0x7465726e);
    h.finish()
}

fn check_will(connect: &Connect, broker: &Broker) -> Result<(), (ReasonCode, &'static str)> {
    let Some(will) = &connect.will else { return Ok(()) };
    if validate_topic_name(&will.topic).is_err() {
        return Err((ReasonCode::TOPIC_NAME_INVALID, "will topic not valid"));
    }
    if topic_levels(&will.topic) > broker.limits.max_topic_levels {
        return Err((
            ReasonCode::TOPIC_NAME_INVALID,
            "will topic deeper than limits.max_topic_levels",
        ));
    }
    if will.qos as u8 > broker.limits.max_qos {
        return Err((
            ReasonCode::QOS_NOT_SUPPORTED,
            "will QoS above maximum QoS [MQTT-3.2.2-12]",
        ));
    }
    if will.retain && !broker.limits.retain_available {
        return Err((
            ReasonCode::RETAIN_NOT_SUPPORTED,
            "will retain not available [MQTT-3.2.2-13]",
        ));
    }
    Ok(())
}

async fn refuse<S: Transport>(
    mut stream: S,
    protocol: Protocol,
    reason: ReasonCode,
    why: &'static str,
) -> Option<Accepted> {
    tracing::info!(reason = format_args!("{:#04x}", reason.0), why, "refusing connection");
    let connack = Packet::ConnAck(ConnAck {
        session_present: false,
        reason_code: reason,
        properties: ConnAckProperties::default(),
    });
    let mut out = BytesMut::new();
    if codec::encode(&connack, protocol, &mut out).is_ok() {
        let _ = stream.write_all(&out).await;
    }
    // Give the client a moment to read CONNACK before the close [MQTT-3.2.2-7].
    let _ = stream.shutdown().await;
    let _ = tokio::time::timeout(Duration::from_millis(100), stream.read(&mut [0u8; 16])).await;
    None
}
