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
/// The topic trees walk levels recursively; this keeps that walk well within
/// a worker thread's stack.
const MAX_TOPIC_LEVELS: usize = 1024;

impl Config {
    /// Checks ranges and cross-field rules. Called by the loaders; call it
    /// again after changing a `Config` in code. `origin` names the source in
    /// the error.
    pub fn validate(&self, origin: &str) -> Result<(), ConfigError> {
        let bad = |key: &str, message: String| Err(ConfigError::invalid(origin, key, message));
        let l = &self.limits;

        if let Err(error) = self.log.level.parse::<tracing_subscriber::filter::Targets>() {
            return bad("log.level", format!("invalid filter {:?}: {error}", self.log.level));
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
            return bad("limits.max_qos", format!("must be 0, 1 or 2, got {}", l.max_qos));
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
        if !(1..=MAX_TOPIC_LEVELS).contains(&l.max_topic_levels) {
            return bad(
                "limits.max_topic_levels",
                format!("must be between 1 and {MAX_TOPIC_LEVELS}"),
            );
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
                    format!("{:?} is not supported yet by this build", listener.protocol.as_str()),
                );
            }
            if listener.max_connections == Some(0) {
                return bad(&key("max_connections"), "must be at least 1".into());
            }
            let tls = listener.protocol.is_tls();
            for (field, value) in [("cert_file", &listener.cert_file), ("key_file", &listener.key_file)] {
                if tls && value.is_none() {
                    return bad(
                        &key(field),
                        "an mqtts or wss listener needs a certificate and its key (PEM files)".into(),
                    );
                }
                if !tls && value.is_some() {
                    return bad(&key(field), "only mqtts and wss listeners take a certificate".into());
                }
            }
            for (field, set) in [
                ("require_certificate", listener.require_certificate),
                ("use_identity_as_username", listener.use_identity_as_username),
            ] {
                if set && listener.ca_file.is_none() {
                    return bad(
                        &key(field),
                        "needs ca_file: the CA client certificates are checked against".into(),
                    );
                }
            }
            if listener.ca_file.is_some() && !tls {
                return bad(
                    &key("ca_file"),
                    "only mqtts and wss listeners check client certificates".into(),
                );
            }
            for source in &listener.auth {
                match source.as_str() {
                    "password_file" if self.auth.password_file.is_none() => {
                        return bad(
                            &key("auth"),
                            "names \"password_file\" but [auth] has no password_file".into(),
                        );
                    }
                    "acl_file" if self.auth.acl_file.is_none() => {
                        return bad(&key("auth"), "names \"acl_file\" but [auth] has no acl_file".into());
                    }
                    "jwt" if self.auth.jwt.is_none() => {
                        return bad(&key("auth"), "names \"jwt\" but there is no [auth.jwt]".into());
                    }
                    "password_file" | "acl_file" | "jwt" => {}
                    hook if hook.starts_with("webhook:") => {
                        let name = &hook["webhook:".len()..];
                        if !self.auth.webhooks.contains_key(name) {
                            return bad(
                                &key("auth"),
                                format!("names {hook:?} but there is no [auth.webhooks.{name}]"),
                            );
                        }
                    }
                    other => {
                        return bad(
                            &key("auth"),
                            format!(
                                "unknown credential source {other:?}; this build knows \"password_file\", \"acl_file\" and \"jwt\""
                            ),
                        );
                    }
                }
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::ListenerConfig;

    fn listener(name: &str, bind: &str) -> ListenerConfig {
        ListenerConfig::new(name, bind.parse().unwrap())
    }

    fn base() -> Config {
        Config {
            listeners: vec![listener("a", "127.0.0.1:1883")],
            ..Config::default()
        }
    }

    fn error(config: &Config) -> String {
        config.validate("tern.toml").unwrap_err().to_string()
    }

    #[test]
    fn base_is_valid() {
        base().validate("tern.toml").unwrap();
        Config::embedded_default().validate("tern.toml").unwrap();
    }

    #[test]
    fn requires_a_listener() {
        assert_eq!(
            error(&Config::default()),
            "tern.toml: listener: at least one [[listener]] is required"
        );
        // Also through the loader, where an empty file is otherwise valid.
        let error = Config::from_toml_str("", "tern.toml").unwrap_err();
        assert_eq!(error.key(), Some("listener"));
    }

    #[test]
    fn duplicate_listener_names_and_binds() {
        let mut config = base();
        config.listeners.push(listener("a", "127.0.0.1:1884"));
        assert_eq!(
            error(&config),
            "tern.toml: listener[1].name: duplicate listener name \"a\" (also used by listener[0])"
        );

        let mut config = base();
        config.listeners.push(listener("b", "127.0.0.1:1883"));
        assert!(error(&config).starts_with("tern.toml: listener[1].bind: 127.0.0.1:1883 conflicts with listener[0]"));

        // The wildcard address overlaps every address of its family.
        let mut config = base();
        config.listeners.push(listener("b", "0.0.0.0:1883"));
        assert!(error(&config).starts_with("tern.toml: listener[1].bind:"));

        // Different ports, families or port 0 are fine.
        let mut config = base();
        config.listeners.push(listener("b", "[::]:1883"));
        config.listeners.push(listener("c", "0.0.0.0:1884"));
        config.listeners.push(listener("d", "127.0.0.1:0"));
        config.listeners.push(listener("e", "127.0.0.1:0"));
        config.validate("tern.toml").unwrap();
    }

    #[test]
    fn duplicate_names_from_the_file() {
        let text = "[[listener]]\nbind = \"127.0.0.1:1\"\n\
                    [[listener]]\nname = \"listener-0\"\nbind = \"127.0.0.1:2\"\n";
        let error = Config::from_toml_str(text, "tern.toml").unwrap_err();
        assert_eq!(error.key(), Some("listener[1].name"));
    }

    #[test]
    fn mqtts_needs_a_certificate_and_only_mqtts_takes_one() {
        let text = "[[listener]]\nbind = \"127.0.0.1:1\"\nprotocol = \"mqtts\"\ncert_file = \"c.pem\"\n";
        let error = Config::from_toml_str(text, "tern.toml").unwrap_err();
        assert_eq!(error.key(), Some("listener[0].key_file"));
        let text = "[[listener]]\nbind = \"127.0.0.1:1\"\ncert_file = \"c.pem\"\n";
        let error = Config::from_toml_str(text, "tern.toml").unwrap_err();
        assert_eq!(error.key(), Some("listener[0].cert_file"));
    }

    #[test]
    fn wss_needs_a_certificate() {
        let text = "[[listener]]\nbind = \"127.0.0.1:1\"\nprotocol = \"wss\"\n";
        let error = Config::from_toml_str(text, "tern.toml").unwrap_err();
        assert_eq!(error.key(), Some("listener[0].cert_file"));
        let text = "[[listener]]\nbind = \"127.0.0.1:1\"\nprotocol = \"ws\"\npath = \"/ws\"\n";
        assert!(Config::from_toml_str(text, "tern.toml").is_ok());
    }

    #[test]
    fn out_of_range_limits() {
        type Change = fn(&mut Config);
        let cases: &[(&str, Change)] = &[
            ("limits.max_packet_size", |c| c.limits.max_packet_size = 63),
            ("limits.max_packet_size", |c| c.limits.max_packet_size = 268_435_461),
            ("limits.receive_maximum", |c| c.limits.receive_maximum = 0),
            ("limits.max_inflight", |c| c.limits.max_inflight = 0),
            ("limits.max_qos", |c| c.limits.max_qos = 3),
            ("limits.max_connections", |c| c.limits.max_connections = 0),
            ("limits.handshake_timeout", |c| {
                c.limits.handshake_timeout = Duration::ZERO
            }),
            ("limits.max_session_expiry", |c| {
                c.limits.max_session_expiry = Duration::from_secs(u64::from(u32::MAX) + 1)
            }),
            ("limits.max_client_id_len", |c| c.limits.max_client_id_len = 0),
            ("limits.max_topic_levels", |c| c.limits.max_topic_levels = 0),
            ("limits.max_topic_levels", |c| c.limits.max_topic_levels = 5000),
            ("log.level", |c| c.log.level = "tern=loud".to_owned()),
            ("listener[0].auth", |c| {
                c.listeners[0].auth = vec!["password_file".into()]
            }),
            ("listener[0].auth", |c| c.listeners[0].auth = vec!["ldap".into()]),
            ("listener[0].max_connections", |c| {
                c.listeners[0].max_connections = Some(0)
            }),
        ];
        for (key, change) in cases {
            let mut config = base();
            change(&mut config);
            let error = config.validate("tern.toml").unwrap_err();
            assert_eq!(error.key(), Some(*key), "{error}");
        }
        // The edges of the packet size range are allowed.
        for size in [64, 268_435_460] {
            let mut config = base();
            config.limits.max_packet_size = size;
            config.validate("tern.toml").unwrap();
        }
    }

    #[test]
    fn out_of_range_from_the_file() {
        let text = "[limits]\nmax_packet_size = \"32B\"\n[[listener]]\nbind = \"127.0.0.1:1\"\n";
        let error = Config::from_toml_str(text, "tern.toml").unwrap_err().to_string();
        assert_eq!(
            error,
            "tern.toml: limits.max_packet_size: must be between 64 and 268435460 bytes, got 32"
        );
    }

    #[test]
    fn warnings() {
        assert!(base().warnings().is_empty());

        let mut config = base();
        config.listeners.push(ListenerConfig {
            allow_anonymous: true,
            max_connections: Some(20_000),
            ..listener("lan", "0.0.0.0:1884")
        });
        config.limits.max_client_id_len = 10;
        config.limits.max_queued_bytes = 1024;
        config.sys.interval = Duration::from_millis(100);
        let warnings = config.warnings();
        assert_eq!(warnings.len(), 5, "{warnings:#?}");
        assert!(warnings[0].contains("anonymous"), "{}", warnings[0]);
        assert!(warnings[0].contains("0.0.0.0:1884"), "{}", warnings[0]);
        assert!(
            warnings[1].starts_with("listener[1].max_connections"),
            "{}",
            warnings[1]
        );

        // Anonymous on loopback is the intended local default.
        let mut config = base();
        config.listeners[0].allow_anonymous = true;
        config.listeners.push(ListenerConfig {
            allow_anonymous: true,
            ..listener("v6", "[::1]:1883")
        });
        assert!(config.warnings().is_empty());
    }
}
