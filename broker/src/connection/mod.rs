//! Drives one client's MQTT connection over one transport: handshake,
//! then a loop that reads packets, acts on them through the [`Broker`], and
//! writes what its session has queued.
//!
//! Owns the socket and the per-connection protocol state (keep alive, topic
//! aliases, flow-control windows). Holds no buffer while idle: reads land in
//! a per-thread scratch buffer and only a partial frame is kept; the write
//! buffer is released once flushed. A bad packet closes this connection and
//! nothing else.

/// Logs an event in the connection's span, making the span only when the
/// event's level is enabled.
macro_rules! conn_event {
    ($conn:expr, $lvl:expr, $($arg:tt)+) => {
        if tracing::enabled!($lvl) {
            let _entered = $conn.span().entered();
            tracing::event!($lvl, $($arg)+);
        }
    };
}

mod handshake;
mod hooks;
mod inbound;
mod outbound;
mod proxy;
mod run;
mod scratch;
mod socket;
mod task;
mod ws;

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;

use tokio::net::TcpStream;
use tracing::Instrument;

use crate::broker::Broker;
use crate::codec::{DecodeError, ReasonCode};
use crate::listener::ListenerSettings;
use crate::shutdown::ShutdownSignal;

/// Why a connection ended. Each maps to the reason code of the DISCONNECT
/// sent to a v5 client, when one is sent.
#[derive(Debug, thiserror::Error)]
pub enum CloseReason {
    #[error("client sent DISCONNECT")]
    ClientDisconnect,
    #[error("client closed the connection")]
    Eof,
    #[error("i/o error: {0}")]
    Io(#[from] std::io::Error),
    #[error("malformed packet: {0}")]
    Decode(#[from] DecodeError),
    #[error("protocol error: {what}")]
    Protocol { reason: ReasonCode, what: &'static str },
    #[error("keep alive timed out [MQTT-3.1.2-22]")]
    KeepAliveTimeout,
    #[error("session taken over by a new connection [MQTT-3.1.4-3]")]
    TakenOver,
    #[error("server shutting down")]
    Shutdown,
    #[error("credentials expired")]
    CredentialsExpired,
}

impl CloseReason {
    pub fn protocol(reason: ReasonCode, what: &'static str) -> CloseReason {
        CloseReason::Protocol { reason, what }
    }

    /// The close a [`crate::session::Session::kick`] with `code` asks for.
    pub fn kicked(code: ReasonCode) -> CloseReason {
        match code {
            ReasonCode::SESSION_TAKEN_OVER => CloseReason::TakenOver,
            ReasonCode::KEEP_ALIVE_TIMEOUT => CloseReason::KeepAliveTimeout,
            ReasonCode::NOT_AUTHORIZED => CloseReason::CredentialsExpired,
            _ => CloseReason::Shutdown,
        }
    }

    /// The reason code of the DISCONNECT a v5 client gets, or `None` when the
    /// client ended the connection itself.
    pub fn disconnect_code(&self) -> Option<ReasonCode> {
        match self {
            CloseReason::ClientDisconnect | CloseReason::Eof | CloseReason::Io(_) => None,
            CloseReason::Decode(e) => Some(e.reason_code()),
            CloseReason::Protocol { reason, .. } => Some(*reason),
            CloseReason::KeepAliveTimeout => Some(ReasonCode::KEEP_ALIVE_TIMEOUT),
            CloseReason::TakenOver => Some(ReasonCode::SESSION_TAKEN_OVER),
            CloseReason::Shutdown => Some(ReasonCode::SERVER_SHUTTING_DOWN),
            CloseReason::CredentialsExpired => Some(ReasonCode::NOT_AUTHORIZED),
        }
    }
}

/// Serves one accepted TCP connection to its end.
///
/// Not an `async fn`: its arguments would then live in the task for the
/// connection's whole life. The handshake owns them, boxed, and is freed
/// once done, so an idle connection's task holds only the run loop.
///
/// Every log line of a connection carries the `conn` span (peer, listener,
/// client id). The handshake runs inside one; after it, the span is made
/// again only where a line is logged ([`conn_event!`]): a live span costs
/// a few hundred bytes in the subscriber for as long as it lives, which
/// would be a third of an idle connection's memory.
///
/// `guard` is dropped when the connection ends (the listener counts live
/// connections with it). The returned future is the whole task, holding
/// the connection inline: wrapping it in an `async` block would store it
/// twice.
pub fn serve<G: Send + Unpin + 'static>(
    stream: TcpStream,
    peer: SocketAddr,
    broker: Arc<Broker>,
    listener: Arc<ListenerSettings>,
    shutdown: ShutdownSignal,
    guard: G,
) -> impl Future<Output = ()> + Send + 'static {
    let _ = stream.set_nodelay(true);
    let listener_name = listener.name.clone();
    let handshake = async move {
        let mut stream = stream;
        let mut peer = peer;
        if listener.proxy_protocol {
            let timeout = broker.limits.handshake_timeout;
            match tokio::time::timeout(timeout, proxy::read_header(&mut stream)).await {
                Ok(Ok(Some(client))) => peer = client,
                Ok(Ok(None)) => {}
                Ok(Err(e)) => {
                    tracing::info!(%peer, listener = %listener.name, error = %e, "closing: bad PROXY header");
                    return None;
                }
                Err(_) => {
                    tracing::info!(%peer, listener = %listener.name, "closing: no PROXY header within the handshake timeout");
                    return None;
                }
            }
        }
        // The span names the client the load balancer saw, when there is one.
        let span = conn_span(&peer, &listener_name, None);
        connect(stream, peer, broker, listener, shutdown).instrument(span).await
    };
    task::ConnTask::new(handshake, guard)
}

/// The transport handshakes the listener asks for, then MQTT's.
async fn connect(
    stream: TcpStream,
    peer: SocketAddr,
    broker: Arc<Broker>,
    listener: Arc<ListenerSettings>,
    shutdown: ShutdownSignal,
) -> Option<handshake::Accepted> {
    {
        let tls = listener.tls.as_ref().map(|t| t.read().clone());
        match (tls, listener.ws_path.clone()) {
            (None, None) => handshake::handshake(stream, peer, broker, listener, shutdown).await,
            (Some(config), None) => {
                let tls = accept_tls(stream, config, &broker).await?;
                handshake::handshake(tls, peer, broker, listener, shutdown).await
            }
            (None, Some(path)) => {
                let ws = upgrade_ws(stream, &path, &broker).await?;
                handshake::handshake(ws, peer, broker, listener, shutdown).await
            }
            (Some(config), Some(path)) => {
                let tls = accept_tls(stream, config, &broker).await?;
                let ws = upgrade_ws(tls, &path, &broker).await?;
                handshake::handshake(ws, peer, broker, listener, shutdown).await
            }
        }
    }
}

/// The TLS handshake, within the same timeout as CONNECT: a socket that
/// starts one and stalls is closed all the same.
async fn accept_tls(
    stream: TcpStream,
    config: Arc<rustls::ServerConfig>,
    broker: &Broker,
) -> Option<tokio_rustls::server::TlsStream<TcpStream>> {
    let timeout = broker.limits.handshake_timeout;
    let acceptor = tokio_rustls::TlsAcceptor::from(config);
    match tokio::time::timeout(timeout, acceptor.accept(stream)).await {
        Ok(Ok(tls)) => Some(tls),
        Ok(Err(e)) => {
            tracing::info!(error = %e, "TLS handshake failed");
            None
        }
        Err(_) => {
            tracing::info!(?timeout, "closing: TLS handshake not done within the handshake timeout");
            None
        }
    }
}

/// The WebSocket upgrade, within the handshake timeout too.
async fn upgrade_ws<S>(stream: S, path: &str, broker: &Broker) -> Option<tokio::net::UnixStream>
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let timeout = broker.limits.handshake_timeout;
    match tokio::time::timeout(timeout, ws::upgrade(stream, path, broker.limits.max_packet_size)).await {
        Ok(Ok(s)) => Some(s),
        Ok(Err(e)) => {
            tracing::info!(error = %e, "WebSocket upgrade refused");
            None
        }
        Err(_) => {
            tracing::info!(?timeout, "closing: no WebSocket upgrade within the handshake timeout");
            None
        }
    }
}

/// The span every log line of one connection is logged in.
fn conn_span(peer: &SocketAddr, listener: &str, client_id: Option<&str>) -> tracing::Span {
    match client_id {
        Some(id) => tracing::info_span!("conn", %peer, %listener, client_id = %id),
        None => tracing::info_span!("conn", %peer, %listener, client_id = tracing::field::Empty),
    }
}
