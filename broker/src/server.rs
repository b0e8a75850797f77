//! Starts a configured broker: binds every listener, reports where, runs
//! until told to stop, then shuts down gracefully.

use std::future::Future;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use crate::auth;
use crate::broker::Broker;
use crate::config::{Config, ListenerProtocol};
use crate::listener::{self, ConnTracker, ListenerSettings};
use crate::shutdown::{Shutdown, ShutdownSignal};
use crate::store::Store;
use crate::sys;

/// How long shutdown waits for connections to say goodbye.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(5);

/// How often keep alive deadlines are checked.
const KEEP_ALIVE_SWEEP: Duration = Duration::from_millis(250);

#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    #[error("listener {name}: cannot bind {addr}")]
    Bind {
        name: String,
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("cannot write the ready file {path}")]
    ReadyFile { path: PathBuf, source: std::io::Error },
    #[error("[auth] password_file")]
    PasswordFile(#[source] auth::PasswordFileError),
    #[error("[auth] acl_file")]
    AclFile(#[source] auth::AclFileError),
    #[error("[auth.jwt]")]
    Jwt(#[source] auth::JwtSetupError),
    #[error("[auth.webhooks.{name}]")]
    Webhook {
        name: String,
        source: auth::WebhookSetupError,
    },
    #[error("[store]")]
    Store(#[source] crate::store::StoreError),
    #[error("listener {name}: TLS")]
    Tls {
        name: String,
        source: listener::TlsSetupError,
    },
}

/// A bound listener, as reported in logs and the ready file.
#[derive(Debug, Clone)]
pub struct BoundListener {
    pub name: String,
    pub protocol: ListenerProtocol,
    pub addr: SocketAddr,
    pub allow_anonymous: bool,
}

/// Runs the broker until `stop` resolves.
pub async fn run(config: Config, ready_file: Option<&Path>, stop: impl Future<Output = ()>) -> Result<(), ServerError> {
    let opened = Store::open(&config.store).map_err(ServerError::Store)?;
    let store = opened.store.clone();
    let broker = Arc::new(Broker::new(config.limits.clone(), store.clone()));
    if store.is_persistent() {
        let started = std::time::Instant::now();
        let r = broker.restore(opened.snapshot);
        tracing::info!(
            path = %crate::store::db_path(&config.store.data_dir).display(),
            durability = ?config.store.durability,
            sessions = r.sessions,
            queued = r.queued,
            retained = r.retained,
            expired_sessions = r.expired_sessions,
            expired_messages = r.expired_messages,
            took_ms = started.elapsed().as_millis() as u64,
            "store opened"
        );
    }
    let (shutdown, signal) = Shutdown::new();
    let tracker = ConnTracker::default();

    let password_file = match &config.auth.password_file {
        Some(path) => {
            let file = auth::PasswordFile::load(path).map_err(ServerError::PasswordFile)?;
            tracing::info!(path = %path.display(), users = file.len(), "password file loaded");
            Some(Arc::new(parking_lot::RwLock::new(Arc::new(file))))
        }
        None => None,
    };
    let acl_file = match &config.auth.acl_file {
        Some(path) => {
            let file = auth::AclFile::load(path).map_err(ServerError::AclFile)?;
            tracing::info!(path = %path.display(), "ACL file loaded");
            Some(Arc::new(parking_lot::RwLock::new(Arc::new(file))))
        }
        None => None,
    };
    let jwt = match &config.auth.jwt {
        Some(c) => Some(Arc::new(auth::Jwt::load(c).map_err(ServerError::Jwt)?)),
        None => None,
    };
    let mut webhooks = std::collections::HashMap::new();
    for (name, c) in &config.auth.webhooks {
        let hook = auth::Webhook::new(name, c).map_err(|source| ServerError::Webhook {
            name: name.clone(),
            source,
        })?;
        webhooks.insert(format!("webhook:{name}"), Arc::new(hook));
    }

    let mut bound = Vec::new();
    let mut sockets = Vec::new();
    let mut certificates = Vec::new();
    for l in &config.listeners {
        let socket = listener::bind(l.bind).map_err(|source| ServerError::Bind {
            name: l.name.clone(),
            addr: l.bind,
            source,
        })?;
        let addr = socket.local_addr().map_err(|source| ServerError::Bind {
            name: l.name.clone(),
            addr: l.bind,
            source,
        })?;
        bound.push(BoundListener {
            name: l.name.clone(),
            protocol: l.protocol,
            addr,
            allow_anonymous: l.allow_anonymous,
        });
        let settings = ListenerSettings {
            name: l.name.clone(),
            allow_anonymous: l.allow_anonymous,
            max_connections: l.max_connections,
            tls: match (&l.cert_file, &l.key_file) {
                (Some(cert), Some(key)) => {
                    let client_ca = l.ca_file.as_deref().map(|ca| (ca, l.require_certificate));
                    let config = listener::server_config(cert, key, client_ca).map_err(|source| ServerError::Tls {
                        name: l.name.clone(),
                        source,
                    })?;
                    let handle = Arc::new(parking_lot::RwLock::new(config));
                    certificates.push((l.clone(), handle.clone()));
                    Some(handle)
                }
                _ => None,
            },
            use_identity_as_username: l.use_identity_as_username,
            proxy_protocol: l.proxy_protocol,
            ws_path: matches!(l.protocol, ListenerProtocol::Ws | ListenerProtocol::Wss).then(|| l.path.clone()),
            // Validation made sure every name is known and configured.
            auth: l
                .auth
                .iter()
                .filter_map(|name| match name.as_str() {
                    "password_file" => password_file.clone().map(auth::Source::PasswordFile),
                    "acl_file" => acl_file.clone().map(auth::Source::AclFile),
                    "jwt" => jwt.clone().map(auth::Source::Jwt),
                    hook => webhooks.get(hook).cloned().map(auth::Source::Webhook),
                })
                .collect(),
        };
        sockets.push((socket, settings));
    }
    for b in &bound {
        tracing::info!(
            listener = %b.name,
            addr = %b.addr,
            protocol = ?b.protocol,
            anonymous = if b.allow_anonymous { "allowed" } else { "refused" },
            "listening"
        );
    }
    for (socket, settings) in sockets {
        tokio::spawn(listener::accept_loop(
            socket,
            Arc::new(settings),
            broker.clone(),
            signal.clone(),
            tracker.clone(),
        ));
    }
    tokio::spawn(sys::publish_loop(broker.clone(), config.sys.interval, signal.clone()));
    tokio::spawn(keep_alive_loop(broker.clone(), signal.clone()));
    // Registered before the ready file is written: SIGHUP's default action
    // would end the process.
    match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()) {
        Ok(hup) => {
            tokio::spawn(reload_on_sighup(
                hup,
                broker.clone(),
                password_file.clone(),
                acl_file.clone(),
                certificates,
                signal.clone(),
            ));
        }
        Err(e) => tracing::warn!(error = %e, "cannot listen for SIGHUP; reload unavailable"),
    }
    if let Some(path) = ready_file {
        write_ready_file(path, &bound).map_err(|source| ServerError::ReadyFile {
            path: path.to_path_buf(),
            source,
        })?;
    }

    stop.await;
    tracing::info!(connections = tracker.live(), "shutting down");
    shutdown.trigger();
    broker.begin_shutdown();
    tracker.wait_idle(DRAIN_TIMEOUT).await;
    // After every connection let go of its session, so their last changes
    // (disconnect times, delayed wills) are in the final commit.
    store.close();
    if let Some(thread) = opened.thread {
        let _ = tokio::task::spawn_blocking(move || thread.join()).await;
    }
    tracing::info!("stopped");
    Ok(())
}

/// Closes connections whose keep alive ran out [MQTT-3.1.2-22]. One sweep
/// over the sessions a few times a second replaces a timer per connection;
/// a silent client is closed at most the sweep period plus the clock's
/// 100 ms resolution after its one and a half keep alive periods.
async fn keep_alive_loop(broker: Arc<Broker>, mut shutdown: ShutdownSignal) {
    let mut tick = tokio::time::interval(KEEP_ALIVE_SWEEP);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = tick.tick() => broker.sweep_keep_alive(),
            _ = shutdown.wait() => return,
        }
    }
}

/// SIGHUP re-reads the password and ACL files and TLS certificates without
/// dropping a connection: new connections are checked against the new files, and every
/// connected client's read and write permissions are recompiled, so a
/// subscription the new ACL no longer allows simply stops delivering. A
/// file that no longer parses is reported and the old one kept.
async fn reload_on_sighup(
    mut hup: tokio::signal::unix::Signal,
    broker: Arc<Broker>,
    password_file: Option<auth::Reloadable<auth::PasswordFile>>,
    acl_file: Option<auth::Reloadable<auth::AclFile>>,
    certificates: Vec<(crate::config::ListenerConfig, auth::Reloadable<rustls::ServerConfig>)>,
    mut shutdown: ShutdownSignal,
) {
    loop {
        tokio::select! {
            got = hup.recv() => if got.is_none() { return },
            _ = shutdown.wait() => return,
        }
        if let Some(current) = &password_file {
            let path = current.read().path().to_path_buf();
            match auth::PasswordFile::load(&path) {
                Ok(file) => {
                    tracing::info!(path = %path.display(), users = file.len(), "password file reloaded");
                    *current.write() = Arc::new(file);
                }
                Err(e) => tracing::error!(error = %e, "password file not reloaded; keeping the previous one"),
            }
        }
        // New TLS handshakes use the new certificate; sessions already up
        // keep theirs.
        for (l, current) in &certificates {
            let (Some(cert), Some(key)) = (&l.cert_file, &l.key_file) else {
                continue;
            };
            let client_ca = l.ca_file.as_deref().map(|ca| (ca, l.require_certificate));
            match listener::server_config(cert, key, client_ca) {
                Ok(config) => {
                    *current.write() = config;
                    tracing::info!(listener = %l.name, "TLS certificate reloaded");
                }
                Err(e) => {
                    tracing::error!(listener = %l.name, error = %e, "TLS certificate not reloaded; keeping the previous one")
                }
            }
        }
        if let Some(current) = &acl_file {
            let path = current.read().path().to_path_buf();
            match auth::AclFile::load(&path) {
                Ok(file) => {
                    let file = Arc::new(file);
                    *current.write() = file.clone();
                    let mut clients = 0;
                    // Outside the registry lock: compiling is not free and
                    // connections keep arriving.
                    for s in broker.registry.all() {
                        let acl = s.state.lock().acl.clone();
                        if let Some(acl) = acl {
                            acl.recompile(&file);
                            clients += 1;
                        }
                    }
                    tracing::info!(path = %path.display(), clients, "ACL file reloaded");
                }
                Err(e) => tracing::error!(error = %e, "ACL file not reloaded; keeping the previous one"),
            }
        }
    }
}

/// One line per listener, `name protocol addr`, written whole (temp file and
/// rename) so a reader never sees half of it.
fn write_ready_file(path: &Path, bound: &[BoundListener]) -> std::io::Result<()> {
    let mut text = String::new();
    for b in bound {
        text.push_str(&format!("{} {} {}\n", b.name, b.protocol.as_str(), b.addr));
    }
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, text)?;
    std::fs::rename(&tmp, path)
}
