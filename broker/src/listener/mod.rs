//! Listeners: bind, accept, bound the number of connections, and hand each
//! socket to a connection task.

mod tcp;
mod tls;

pub use tcp::{ConnTracker, accept_loop, bind};
pub use tls::{TlsSetupError, peer_common_name, server_config};

/// What a connection needs to know about the listener it came in on.
#[derive(Debug, Clone)]
pub struct ListenerSettings {
    pub name: String,
    pub allow_anonymous: bool,
    pub max_connections: Option<usize>,
    /// Credential sources, asked in order ([`crate::auth::check_connect`]).
    pub auth: Vec<crate::auth::Source>,
    /// `mqtts`: the TLS handshake comes first. Swapped on SIGHUP when the
    /// certificate files change; connections already up keep their session.
    pub tls: Option<crate::auth::Reloadable<rustls::ServerConfig>>,
    /// The client certificate's CN is the user name.
    pub use_identity_as_username: bool,
    /// `ws` / `wss`: the HTTP path of the WebSocket upgrade.
    pub ws_path: Option<String>,
    /// Connections start with a PROXY protocol header naming the client.
    pub proxy_protocol: bool,
}
