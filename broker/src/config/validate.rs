//! Semantic checks that the types alone cannot express, and warnings about
//! settings that are legal but probably not what the operator meant.
//!
//! Errors stop the broker from starting; warnings are returned as text for
//! the caller to log once logging is set up.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::Duration;

use super::error::ConfigError;
use super::schema::Config;

/// Smallest packet size worth allowing: a CONNECT with a short client id
/// and a few properties must fit.
const MIN_PACKET_SIZE: u32 = 64;
/// The largest packet MQTT can encode: a 268_435_455 byte remaining length
/// plus the fixed header.
const MAX_PACKET_SIZE: u32 = 268_435_460;
/// MQTT 3.1.1 and 5.0 require servers to accept client ids of 23 bytes.
const MIN_CLIENT_ID_LEN: usize = 23;

impl Config {
    /// Checks ranges and cross-field rules. Called by the loaders; call it
    /// again after changing a `Config` in code. `origin` names the source in
    /// the error.
    pub fn validate(&self, origin: &str) -> Result<(), ConfigError> {
        let bad = |key: &str, message: String| Err(ConfigError::invalid(origin, key, message));
        let l = &self.limits;

        if let Err(error) = tracing_subscriber::EnvFilter::try_new(&self.log.level) {
            return bad(
                "log.level",
                format!("invalid filter {:?}: {error}", self.log.level),
            );
        }
        if l.max_connections == 0 {
            return bad("limits.max_connections", "must be at least 1".into());
        }
        if !(MIN_PACKET_SIZE..=MAX_PACKET_SIZE).contains(&l.max_packet_size) {
            return bad(
                "limits.max_packet_size",
                format!(
                    "must be between {MIN_PACKET_SIZE} and {MAX_PACKET_SIZE} bytes, got {}",
                    l.max_packet_size
                ),
            );
        }
        if l.receive_maximum == 0 {
            return bad("limits.receive_maximum", "must be at least 1".into());
        }
        if l.max_inflight == 0 {
            return bad("limits.max_inflight", "must be at least 1".into());
        }
        if l.max_qos > 2 {
            return bad(
                "limits.max_qos",
                format!("must be 0, 1 or 2, got {}", l.max_qos),
            );
        }
        // Session expiry travels as a four byte number of seconds.
        if l.max_session_expiry > Duration::from_secs(u64::from(u32::MAX)) {
            return bad(
                "limits.max_session_expiry",
                format!("must be at most {} seconds", u32::MAX),
            );
        }
        if l.handshake_timeout.is_zero() {
            return bad(
                "limits.handshake_timeout",
                "must be greater than zero, or idle sockets are never closed".into(),
            );
        }
        if l.max_client_id_len == 0 {
            return bad("limits.max_client_id_len", "must be at least 1".into());
        }

        if self.listeners.is_empty() {
            return bad("listener", "at least one [[listener]] is required".into());
        }
        let mut names: HashMap<&str, usize> = HashMap::new();
        for (index, listener) in self.listeners.iter().enumerate() {
            let key = |field: &str| format!("listener[{index}].{field}");
            if let Some(first) = names.insert(&listener.name, index) {
                return bad(
                    &key("name"),
                    format!(
                        "duplicate listener name {:?} (also used by listener[{first}])",
                        listener.name
                    ),
                );
            }
            if let Some(first) = self.listeners[..index]
                .iter()
                .position(|other| binds_conflict(other.bind, listener.bind))
            {
                return bad(
                    &key("bind"),
                    format!(
                        "{} conflicts with listener[{first}] ({})",
                        listener.bind, self.listeners[first].bind
                    ),
                );
            }
            if !listener.protocol.is_supported() {
                return bad(
                    &key("protocol"),
                    format!(
                        "{:?} is not supported yet by this build",
                        listener.protocol.as_str()
                    ),
                );
            }
            if listener.max_connections == Some(0) {
                return bad(&key("max_connections"), "must be at least 1".into());
            }
        }
        Ok(())
    }

    /// Legal settings that are likely mistakes or risky, as one readable
    /// line each. Empty for the embedded default.
    pub fn warnings(&self) -> Vec<String> {
        let mut warnings = Vec::new();
        let l = &self.limits;
        for (index, listener) in self.listeners.iter().enumerate() {
            if listener.allow_anonymous && !listener.bind.ip().is_loopback() {
                warnings.push(format!(
                    "listener[{index}] ({:?}) allows anonymous clients on {}, which is reachable from other machines",
                    listener.name, listener.bind
                ));
            }
            if let Some(max) = listener.max_connections
                && max > l.max_connections
            {
                warnings.push(format!(
                    "listener[{index}].max_connections ({max}) exceeds limits.max_connections ({}), which still applies",
                    l.max_connections
                ));
            }
        }
        if l.max_client_id_len < MIN_CLIENT_ID_LEN {
            warnings.push(format!(
                "limits.max_client_id_len ({}) is below the {MIN_CLIENT_ID_LEN} bytes MQTT requires servers to accept",
                l.max_client_id_len
            ));
        }
        if l.max_queued_bytes < u64::from(l.max_packet_size) {
            warnings.push(format!(
                "limits.max_queued_bytes ({}) is smaller than limits.max_packet_size ({}), so the largest messages can never be queued",
                l.max_queued_bytes, l.max_packet_size
            ));
        }
        if !self.sys.interval.is_zero() && self.sys.interval < Duration::from_secs(1) {
            warnings.push(format!(
                "sys.interval ({:?}) is under a second; $SYS publishing will cost noticeable CPU",
                self.sys.interval
            ));
        }
        warnings
    }
}

/// Whether two listeners would fight over the same socket: the same port
/// and family, with equal addresses or either one the wildcard address.
/// Port 0 asks the OS for a fresh port, so it never conflicts.
fn binds_conflict(a: SocketAddr, b: SocketAddr) -> bool {
    a.port() != 0
        && a.port() == b.port()
        && a.is_ipv4() == b.is_ipv4()
        && (a.ip() == b.ip() || a.ip().is_unspecified() || b.ip().is_unspecified())
}
