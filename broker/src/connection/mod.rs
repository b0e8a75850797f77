//! Drives one client's MQTT connection over one transport: handshake,
//! then a loop that reads packets, acts on them through the [`Broker`], and
//! writes what its session has queued.
//!
//! Owns the socket and the per-connection protocol state (keep alive, topic
//! aliases, flow-control windows). Holds no buffer while idle: reads land in
//! a per-thread scratch buffer and only a partial frame is kept; the write
//! buffer is released once flushed. A bad packet closes this connection and
//! nothing else.

mod handshake;
mod inbound;
mod outbound;
mod run;
mod scratch;

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
}

impl CloseReason {
    pub fn protocol(reason: ReasonCode, what: &'static str) -> CloseReason {
        CloseReason::Protocol { reason, what }
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
        }
    }
}

/// Serves one accepted TCP connection to its end.
///
/// Not an `async fn`: its arguments would then live in the task for the
/// connection's whole life. The handshake owns them, boxed, and is freed
/// once done, so an idle connection's task holds only the run loop.
pub fn serve(
    stream: TcpStream,
    peer: SocketAddr,
    broker: Arc<Broker>,
    listener: Arc<ListenerSettings>,
    shutdown: ShutdownSignal,
) -> impl Future<Output = ()> {
    let span = tracing::info_span!("conn", %peer, listener = %listener.name, client_id = tracing::field::Empty);
    let _ = stream.set_nodelay(true);
    let handshake = Box::pin(handshake::handshake(stream, broker, listener, shutdown.clone()));
    async move {
        let Some((conn, rest)) = handshake.await.map(run::Conn::from_accepted) else {
            return;
        };
        run::run(conn, rest, shutdown).await;
    }
    .instrument(span)
}
