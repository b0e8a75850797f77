//! VerneMQ-style webhooks: a JSON POST to an HTTP(S) endpoint per hook,
//! with the hook named in the `vernemq-hook` header, answered with
//! `{"result": "ok"}`, `{"result": "next"}` or `{"result": {"error": ...}}`.
//! Bounded by a timeout; what a timeout, a failed request or an answer that
//! is not one of those means is the operator's `on_failure` choice.
//!
//! Implemented: `auth_on_register` (CONNECT). Not yet: `auth_on_publish`
//! and `auth_on_subscribe`, which need the connection to wait on an answer
//! per packet without reordering.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use crate::config::{OnFailure, WebhookConfig};

use super::{ConnectInfo, Decision};
use crate::codec::ReasonCode;

#[derive(Debug, thiserror::Error)]
#[error("cannot build the HTTP client: {0}")]
pub struct WebhookSetupError(#[from] reqwest::Error);

#[derive(Debug)]
pub struct Webhook {
    name: String,
    url: String,
    client: reqwest::Client,
    on_failure: OnFailure,
    cache_ttl: Duration,
    /// Allowed registrations by a digest of (client id, user, password),
    /// so a reconnect storm does not call the endpoint for each client.
    allowed: Mutex<HashMap<[u8; 32], Instant>>,
}

impl Webhook {
    pub fn new(name: &str, c: &WebhookConfig) -> Result<Webhook, WebhookSetupError> {
        let client = reqwest::Client::builder()
            .timeout(c.timeout)
            .pool_max_idle_per_host(c.max_connections)
            .build()?;
        Ok(Webhook {
            name: name.to_owned(),
            url: c.url.clone(),
            client,
            on_failure: c.on_failure,
            cache_ttl: c.cache_ttl,
            allowed: Mutex::new(HashMap::new()),
        })
    }

    pub async fn auth_on_register(&self, info: &ConnectInfo<'_>, peer: SocketAddr) -> Decision {
        let key: [u8; 32] = Sha256::new()
            .chain_update(info.client_id)
            .chain_update([0])
            .chain_update(info.username.unwrap_or_default())
            .chain_update([0])
            .chain_update(info.password.unwrap_or_default())
            .finalize()
            .into();
        let now = Instant::now();
        {
            let mut cache = self.allowed.lock();
            match cache.get(&key) {
                Some(&until) if until > now => return Decision::Allow(None),
                Some(_) => {
                    cache.remove(&key);
                }
                None => {}
            }
        }
        let body = json!({
            "peer_addr": peer.ip().to_string(),
            "peer_port": peer.port(),
            "username": info.username,
            "password": info.password.map(String::from_utf8_lossy),
            "mountpoint": "",
            "client_id": info.client_id,
            "clean_session": true,
        });
        let answer = async {
            let resp = self
                .client
                .post(&self.url)
                .header("vernemq-hook", "auth_on_register")
                .json(&body)
                .send()
                .await
                .map_err(|e| e.to_string())?;
            if !resp.status().is_success() {
                return Err(format!("HTTP {}", resp.status()));
            }
            resp.json::<Value>().await.map_err(|e| e.to_string())
        }
        .await;
        let decision = match answer.as_ref().map(|v| &v["result"]) {
            Ok(Value::String(s)) if s == "ok" => Decision::Allow(None),
            Ok(Value::String(s)) if s == "next" => Decision::Next,
            Ok(Value::Object(o)) if o.contains_key("error") => {
                tracing::info!(webhook = %self.name, error = %o["error"], "auth_on_register refused");
                Decision::Deny(ReasonCode::NOT_AUTHORIZED)
            }
            other => {
                let why = match other {
                    Err(e) => e.clone(),
                    Ok(v) => format!("unexpected answer {v}"),
                };
                tracing::warn!(webhook = %self.name, error = %why, on_failure = ?self.on_failure, "auth_on_register failed");
                match self.on_failure {
                    OnFailure::Deny => Decision::Deny(ReasonCode::SERVER_UNAVAILABLE),
                    OnFailure::Next => Decision::Next,
                    OnFailure::Allow => Decision::Allow(None),
                }
            }
        };
        if decision == Decision::Allow(None) && answer.is_ok() && !self.cache_ttl.is_zero() {
            let mut cache = self.allowed.lock();
            if cache.len() >= 100_000 {
                cache.retain(|_, until| *until > now);
            }
            cache.insert(key, now + self.cache_ttl);
        }
        decision
    }
}
