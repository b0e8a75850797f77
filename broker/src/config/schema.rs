//! The configuration structs, their TOML names and their defaults.
//!
//! Every section rejects unknown keys so a typo is an error rather than a
//! silently ignored setting. Sizes and durations use std types in the public
//! fields and the readable string forms from [`super::units`] in the file.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::units;

/// The whole broker configuration, as read from `tern.toml`.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    pub log: LogConfig,
    pub runtime: RuntimeConfig,
    pub sys: SysConfig,
    pub limits: Limits,
    pub auth: AuthConfig,
    pub store: StoreConfig,
    /// `[[listener]]` tables; at least one is required (checked in
    /// validation, so the default value can stay empty).
    #[serde(rename = "listener")]
    pub listeners: Vec<ListenerConfig>,
}

/// `[auth]`: the credential sources listeners can name in their `auth`
/// chain. Relative paths are relative to the configuration file.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AuthConfig {
    /// A Mosquitto password file (`user:$7$...` or `$6$` lines), as written
    /// by `mosquitto_passwd` or `tern passwd`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub password_file: Option<PathBuf>,
    /// A Mosquitto ACL file (`user`, `topic [read|write|readwrite|deny]`,
    /// `pattern` with `%c` and `%u`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub acl_file: Option<PathBuf>,
    /// `[auth.jwt]`: JSON Web Tokens, for listeners naming "jwt".
    #[serde(skip_serializing_if = "Option::is_none")]
    pub jwt: Option<JwtConfig>,
    /// `[auth.webhooks.NAME]`: HTTP endpoints, for listeners naming
    /// "webhook:NAME".
    #[serde(skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub webhooks: std::collections::BTreeMap<String, WebhookConfig>,
}

/// `[auth.webhooks.NAME]`
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WebhookConfig {
    /// The endpoint every hook is POSTed to (`http://` or `https://`).
    pub url: String,
    /// How long an answer may take.
    #[serde(with = "units::duration", default = "default_webhook_timeout")]
    pub timeout: Duration,
    /// How long an "ok" for the same client id, user and password is
    /// reused without asking again; "0s" to always ask.
    #[serde(with = "units::duration", default = "default_webhook_cache")]
    pub cache_ttl: Duration,
    /// What a timeout, a failed request or an unreadable answer means.
    #[serde(default)]
    pub on_failure: OnFailure,
    /// Idle connections kept to the endpoint.
    #[serde(default = "default_webhook_pool")]
    pub max_connections: usize,
    /// Which hooks are sent to this endpoint.
    #[serde(default = "default_webhook_hooks")]
    pub hooks: Vec<WebhookHook>,
}

/// A VerneMQ webhook name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum WebhookHook {
    /// CONNECT: may the client connect.
    AuthOnRegister,
    /// Each PUBLISH the client sends: may it publish there.
    AuthOnPublish,
    /// Each SUBSCRIBE: which of its filters it may have, at what QoS.
    AuthOnSubscribe,
}

fn default_webhook_hooks() -> Vec<WebhookHook> {
    vec![WebhookHook::AuthOnRegister]
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OnFailure {
    /// Refuse (CONNACK 0x88 Server unavailable): fail closed.
    #[default]
    Deny,
    /// Ask the next source in the chain.
    Next,
    /// Let the client in: fail open.
    Allow,
}

fn default_webhook_timeout() -> Duration {
    Duration::from_secs(2)
}

fn default_webhook_cache() -> Duration {
    Duration::from_secs(60)
}

fn default_webhook_pool() -> usize {
    8
}

/// `[auth.jwt]`
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct JwtConfig {
    /// Which CONNECT field carries the token.
    pub token_in: TokenIn,
    /// A file holding the HMAC secret (HS256/384/512), at least 32 bytes.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hmac_secret_file: Option<PathBuf>,
    /// PEM public keys (RSA, EC or Ed25519), tried in turn.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub public_key_files: Vec<PathBuf>,
    /// A JSON Web Key Set; a token's `kid` picks its key.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub jwks_file: Option<PathBuf>,
    /// Accepted `alg` values; anything else is refused.
    pub algorithms: Vec<String>,
    /// Required `iss`, if set.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub issuer: Option<String>,
    /// Required `aud`, if set.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub audience: Option<String>,
    /// Dotted path of the claim listing filters the client may publish to
    /// (`%c` and `%u` are put in). Without it in the token, other ACL
    /// sources (or none) apply.
    pub publish_claim: String,
    /// Dotted path of the claim listing filters the client may read.
    pub subscribe_claim: String,
}

impl Default for JwtConfig {
    fn default() -> Self {
        JwtConfig {
            token_in: TokenIn::Password,
            hmac_secret_file: None,
            public_key_files: Vec::new(),
            jwks_file: None,
            algorithms: vec!["HS256".into(), "RS256".into(), "ES256".into()],
            issuer: None,
            audience: None,
            publish_claim: "acl.pub".into(),
            subscribe_claim: "acl.sub".into(),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TokenIn {
    #[default]
    Password,
    Username,
}

/// `[log]`
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LogConfig {
    pub format: LogFormat,
    /// A `tracing_subscriber::filter::Targets` directive such as `"info"` or
    /// `"tern=debug,info"`.
    pub level: String,
}

impl Default for LogConfig {
    fn default() -> Self {
        LogConfig {
            format: LogFormat::Human,
            level: "info".to_owned(),
        }
    }
}

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Readable single-line text.
    #[default]
    Human,
    /// One JSON object per line, for log shippers.
    Json,
}

/// `[runtime]`
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RuntimeConfig {
    /// Tokio worker threads; 0 means one per core.
    pub worker_threads: usize,
}

/// `[sys]`
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SysConfig {
    /// How often `$SYS` topics are published; zero disables them.
    #[serde(with = "units::duration")]
    pub interval: Duration,
}

impl Default for SysConfig {
    fn default() -> Self {
        SysConfig {
            interval: Duration::from_secs(10),
        }
    }
}

/// `[store]`: where sessions, queued messages and retained messages are
/// kept, and when an acknowledgement may go out.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct StoreConfig {
    pub engine: StoreEngine,
    /// Folder of the database file (`tern.redb`); relative to the
    /// configuration file, or to the working directory for the embedded
    /// default.
    pub data_dir: PathBuf,
    pub durability: Durability,
    /// `batched`: the longest an acknowledgement waits for its commit.
    #[serde(with = "units::duration")]
    pub sync_interval: Duration,
    /// `batched`: commit early once this many writes are waiting.
    pub sync_batch: usize,
    /// redb's page cache (its own default, 1 GiB, is more than a Pi Zero has).
    #[serde(with = "units::bytes_u64")]
    pub cache_size: u64,
    /// Stored data beyond which new QoS 1/2 messages that need storing are
    /// refused.
    #[serde(with = "units::bytes_u64")]
    pub max_bytes: u64,
}

impl Default for StoreConfig {
    fn default() -> Self {
        StoreConfig {
            engine: StoreEngine::Redb,
            data_dir: PathBuf::from("tern-data"),
            durability: Durability::Batched,
            sync_interval: Duration::from_millis(5),
            sync_batch: 1024,
            cache_size: 4 << 20,
            max_bytes: 1 << 30,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum StoreEngine {
    /// One redb file under `data_dir`.
    #[default]
    Redb,
    /// Nothing on disk: sessions and retained messages end with the process.
    Memory,
}

/// What an acknowledgement promises about the message it acknowledges.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Durability {
    /// On disk (fsync'd) before the ack; a commit starts as soon as
    /// anything waits.
    Strict,
    /// On disk before the ack; commits grouped every `sync_interval`.
    #[default]
    Batched,
    /// Acks do not wait; a kill or power cut may lose the last second.
    None,
}

/// `[limits]`: resource caps. The defaults suit a Raspberry Pi serving a
/// few thousand clients.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Limits {
    /// Connections across the whole broker.
    pub max_connections: usize,
    /// Largest packet accepted or sent, 64 ..= 268_435_460 bytes.
    #[serde(with = "units::bytes_u32")]
    pub max_packet_size: u32,
    /// Inbound QoS 1/2 publishes in flight per client (advertised in
    /// CONNACK); must be > 0.
    pub receive_maximum: u16,
    /// Outbound QoS 1/2 publishes in flight per session; must be > 0.
    pub max_inflight: u16,
    /// Messages queued per session while in flight is full or the client is
    /// offline.
    pub max_queued_messages: usize,
    /// Bytes queued per session.
    #[serde(with = "units::bytes_u64")]
    pub max_queued_bytes: u64,
    /// Topic aliases accepted per client; 0 disables them.
    pub topic_alias_maximum: u16,
    /// Cap on the session expiry interval a client may ask for.
    #[serde(with = "units::duration")]
    pub max_session_expiry: Duration,
    /// Seconds; clients asking for more are told the server keep alive.
    pub max_keep_alive: u16,
    /// Time from socket open to CONNECT received.
    #[serde(with = "units::duration")]
    pub handshake_timeout: Duration,
    /// Highest QoS granted, 0 ..= 2.
    pub max_qos: u8,
    pub retain_available: bool,
    pub max_retained_messages: usize,
    pub max_client_id_len: usize,
    /// Levels allowed in a topic name or filter; bounds the work (and the
    /// stack) one PUBLISH or SUBSCRIBE can cost the topic trees.
    pub max_topic_levels: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_connections: 10_000,
            max_packet_size: 256 * 1024,
            receive_maximum: 32,
            max_inflight: 32,
            max_queued_messages: 1000,
            max_queued_bytes: 1024 * 1024,
            topic_alias_maximum: 16,
            max_session_expiry: Duration::from_secs(7 * 86_400),
            max_keep_alive: 65_535,
            handshake_timeout: Duration::from_secs(10),
            max_qos: 2,
            retain_available: true,
            max_retained_messages: 100_000,
            max_client_id_len: 256,
            max_topic_levels: 128,
        }
    }
}

/// One `[[listener]]`. `bind` is required, so this struct has no `Default`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListenerConfig {
    /// Unique name used in logs and metrics; the loader fills in
    /// `"listener-<index>"` when the file leaves it out.
    #[serde(default)]
    pub name: String,
    #[serde(deserialize_with = "units::socket_addr")]
    pub bind: SocketAddr,
    #[serde(default)]
    pub protocol: ListenerProtocol,
    #[serde(default)]
    pub allow_anonymous: bool,
    /// Per-listener connection cap, within `limits.max_connections`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_connections: Option<usize>,
    /// Credential sources asked in order, e.g. `["password_file"]`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub auth: Vec<String>,
    /// `mqtts`: the server certificate chain, PEM (relative paths are
    /// relative to the configuration file).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cert_file: Option<PathBuf>,
    /// `mqtts`: the certificate's private key, PEM (PKCS#8, PKCS#1 or SEC1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key_file: Option<PathBuf>,
    /// `mqtts`: CA certificates (PEM) that client certificates must chain
    /// to. With it, clients may present a certificate.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca_file: Option<PathBuf>,
    /// `mqtts` with `ca_file`: refuse clients without a valid certificate.
    #[serde(default)]
    pub require_certificate: bool,
    /// `ws` / `wss`: the HTTP path of the WebSocket upgrade.
    #[serde(default = "default_ws_path")]
    pub path: String,
    /// Every connection starts with a PROXY protocol v1 or v2 header (from
    /// HAProxy or a cloud load balancer) naming the real client; one
    /// without it is closed. Only for listeners behind such a proxy.
    #[serde(default)]
    pub proxy_protocol: bool,
    /// `mqtts` with `ca_file`: the client certificate's subject CN is the
    /// client's user name (as in Mosquitto), whatever CONNECT says; it then
    /// needs no password, and ACLs and `%u` apply to it.
    #[serde(default)]
    pub use_identity_as_username: bool,
}

/// Transport for a listener. Only plain MQTT over TCP is implemented; the
/// others parse so configuration files can be written ahead of support, and
/// validation rejects them with a clear message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ListenerProtocol {
    #[default]
    Mqtt,
    Mqtts,
    Ws,
    Wss,
}

impl ListenerProtocol {
    /// The TOML spelling, for messages.
    pub fn as_str(self) -> &'static str {
        match self {
            ListenerProtocol::Mqtt => "mqtt",
            ListenerProtocol::Mqtts => "mqtts",
            ListenerProtocol::Ws => "ws",
            ListenerProtocol::Wss => "wss",
        }
    }

    /// Whether this build can serve the protocol.
    pub fn is_supported(self) -> bool {
        true
    }

    /// Whether the listener speaks TLS (and needs a certificate).
    pub fn is_tls(self) -> bool {
        matches!(self, ListenerProtocol::Mqtts | ListenerProtocol::Wss)
    }
}

fn default_ws_path() -> String {
    "/mqtt".to_owned()
}

impl ListenerConfig {
    /// A plain MQTT listener on `bind` with every optional setting at its
    /// default (anonymous clients refused).
    pub fn new(name: &str, bind: SocketAddr) -> ListenerConfig {
        ListenerConfig {
            name: name.to_owned(),
            bind,
            protocol: ListenerProtocol::Mqtt,
            allow_anonymous: false,
            max_connections: None,
            auth: Vec::new(),
            cert_file: None,
            key_file: None,
            ca_file: None,
            path: default_ws_path(),
            proxy_protocol: false,
            require_certificate: false,
            use_identity_as_username: false,
        }
    }
}
