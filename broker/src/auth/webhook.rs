//! VerneMQ-style webhooks: a JSON POST to an HTTP(S) endpoint per hook,
//! with the hook named in the `vernemq-hook` header, answered with
//! `{"result": "ok"}`, `{"result": "next"}` or `{"result": {"error": ...}}`.
//! Bounded by a timeout; what a timeout, a failed request or an answer that
//! is not one of those means is the operator's `on_failure` choice.
//!
//! Hooks: `auth_on_register` (CONNECT), `auth_on_publish` (each PUBLISH)
//! and `auth_on_subscribe` (each SUBSCRIBE), as the endpoint's `hooks`
//! list says. A connection waiting for a publish or subscribe answer reads
//! nothing more from its client meanwhile, so packets keep their order.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use base64::Engine;
use bytes::Bytes;
use bytestring::ByteString;

use crate::config::{OnFailure, WebhookConfig, WebhookHook};

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
    /// so a reconnect storm does not call the endpoint for each client;
    /// and allowed publishes and subscriptions by a digest of (hook,
    /// client id, user, topic or filter, QoS), so a client publishing to
    /// the same topic again costs no request within the TTL.
    allowed: Mutex<HashMap<[u8; 32], Instant>>,
    hooks: Vec<WebhookHook>,
}

/// A PUBLISH to check, owned: the request outlives the packet's handling.
#[derive(Debug, Clone)]
pub struct PublishCheck {
    pub client_id: Box<str>,
    pub username: Option<Box<str>>,
    pub topic: ByteString,
    pub qos: u8,
    pub retain: bool,
    pub payload: Bytes,
}

/// A SUBSCRIBE to check: its filters and requested QoS.
#[derive(Debug, Clone)]
pub struct SubscribeCheck {
    pub client_id: Box<str>,
    pub username: Option<Box<str>>,
    pub filters: Vec<(ByteString, u8)>,
}

/// The answer for each filter of a SUBSCRIBE, in order: the highest QoS it
/// may have, or `None` when refused.
pub type FilterVerdicts = Vec<Option<u8>>;

/// A subscribe hook's answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SubscribeDecision {
    Allow(FilterVerdicts),
    Deny,
    Next,
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
            hooks: c.hooks.clone(),
        })
    }

    pub fn serves(&self, hook: WebhookHook) -> bool {
        self.hooks.contains(&hook)
    }

    fn cached(&self, key: &[u8; 32], now: Instant) -> bool {
        let mut cache = self.allowed.lock();
        match cache.get(key) {
            Some(&until) if until > now => true,
            Some(_) => {
                cache.remove(key);
                false
            }
            None => false,
        }
    }

    fn remember(&self, key: [u8; 32], now: Instant) {
        if self.cache_ttl.is_zero() {
            return;
        }
        let mut cache = self.allowed.lock();
        if cache.len() >= 100_000 {
            cache.retain(|_, until| *until > now);
        }
        cache.insert(key, now + self.cache_ttl);
    }

    fn topic_key(hook: &str, client_id: &str, username: Option<&str>, topic: &str, qos: u8, retain: bool) -> [u8; 32] {
        Sha256::new()
            .chain_update(hook)
            .chain_update([0])
            .chain_update(client_id)
            .chain_update([0])
            .chain_update(username.unwrap_or_default())
            .chain_update([0])
            .chain_update(topic)
            .chain_update([0, qos, u8::from(retain)])
            .finalize()
            .into()
    }

    /// A cached "ok" for this publish, if there is one: no request needed.
    /// Borrowed fields, so the common case builds nothing.
    pub fn publish_allowed_cached(&self, client_id: &str, username: Option<&str>, p: &crate::codec::Publish) -> bool {
        let key = Self::topic_key("p", client_id, username, &p.topic, p.qos as u8, p.retain);
        self.cached(&key, Instant::now())
    }

    /// POSTs `body` as `hook`; the `result` of the answer, or why there is
    /// none.
    async fn call(&self, hook: &str, body: &Value) -> Result<Value, String> {
        let resp = self
            .client
            .post(&self.url)
            .header("vernemq-hook", hook)
            .json(body)
            .send()
            .await
            .map_err(|e| e.to_string())?;
        if !resp.status().is_success() {
            return Err(format!("HTTP {}", resp.status()));
        }
        resp.json::<Value>().await.map_err(|e| e.to_string())
    }

    fn failed(&self, hook: &str, why: &str) -> OnFailure {
        tracing::warn!(webhook = %self.name, hook, error = %why, on_failure = ?self.on_failure, "webhook failed");
        self.on_failure
    }

    pub async fn auth_on_publish(&self, c: &PublishCheck) -> Decision {
        let key = Self::topic_key("p", &c.client_id, c.username.as_deref(), &c.topic, c.qos, c.retain);
        let now = Instant::now();
        if self.cached(&key, now) {
            return Decision::Allow(None);
        }
        let body = json!({
            "username": c.username.as_deref(),
            "client_id": &*c.client_id,
            "mountpoint": "",
            "qos": c.qos,
            "topic": &*c.topic,
            "payload": base64::engine::general_purpose::STANDARD.encode(&c.payload),
            "retain": c.retain,
        });
        let answer = self.call("auth_on_publish", &body).await;
        match answer.as_ref().map(|v| &v["result"]) {
            Ok(Value::String(s)) if s == "ok" => {
                self.remember(key, now);
                Decision::Allow(None)
            }
            Ok(Value::String(s)) if s == "next" => Decision::Next,
            Ok(Value::Object(o)) if o.contains_key("error") => {
                tracing::debug!(webhook = %self.name, topic = %c.topic, error = %o["error"], "auth_on_publish refused");
                Decision::Deny(ReasonCode::NOT_AUTHORIZED)
            }
            other => {
                let why = match other {
                    Err(e) => e.clone(),
                    Ok(v) => format!("unexpected answer {v}"),
                };
                match self.failed("auth_on_publish", &why) {
                    OnFailure::Deny => Decision::Deny(ReasonCode::IMPLEMENTATION_SPECIFIC_ERROR),
                    OnFailure::Next => Decision::Next,
                    OnFailure::Allow => Decision::Allow(None),
                }
            }
        }
    }

    /// VerneMQ's answer may carry `topics` with a QoS per filter, 128
    /// refusing it; without them every filter is allowed as asked.
    pub async fn auth_on_subscribe(&self, c: &SubscribeCheck) -> SubscribeDecision {
        let now = Instant::now();
        let keys: Vec<[u8; 32]> = c
            .filters
            .iter()
            .map(|(f, q)| Self::topic_key("s", &c.client_id, c.username.as_deref(), f, *q, false))
            .collect();
        if keys.iter().all(|k| self.cached(k, now)) {
            return SubscribeDecision::Allow(c.filters.iter().map(|(_, q)| Some(*q)).collect());
        }
        let topics: Vec<Value> = c
            .filters
            .iter()
            .map(|(f, q)| json!({"topic": &**f, "qos": q}))
            .collect();
        let body = json!({
            "username": c.username.as_deref(),
            "client_id": &*c.client_id,
            "mountpoint": "",
            "topics": topics,
        });
        let answer = self.call("auth_on_subscribe", &body).await;
        match answer.as_ref().map(|v| (&v["result"], &v["topics"])) {
            Ok((Value::String(s), changed)) if s == "ok" => {
                let verdicts: FilterVerdicts = c
                    .filters
                    .iter()
                    .map(|(f, q)| {
                        let granted = changed.as_array().and_then(|list| {
                            list.iter()
                                .find(|t| t["topic"].as_str() == Some(&**f))
                                .and_then(|t| t["qos"].as_u64())
                        });
                        match granted {
                            Some(g) if g > 2 => None,
                            Some(g) => Some((g as u8).min(*q)),
                            None => Some(*q),
                        }
                    })
                    .collect();
                for (k, v) in keys.into_iter().zip(&verdicts) {
                    if v.is_some() {
                        self.remember(k, now);
                    }
                }
                SubscribeDecision::Allow(verdicts)
            }
            Ok((Value::String(s), _)) if s == "next" => SubscribeDecision::Next,
            Ok((Value::Object(o), _)) if o.contains_key("error") => {
                tracing::debug!(webhook = %self.name, error = %o["error"], "auth_on_subscribe refused");
                SubscribeDecision::Deny
            }
            other => {
                let why = match other {
                    Err(e) => e.clone(),
                    Ok((v, _)) => format!("unexpected answer {v}"),
                };
                match self.failed("auth_on_subscribe", &why) {
                    OnFailure::Deny => SubscribeDecision::Deny,
                    OnFailure::Next => SubscribeDecision::Next,
                    OnFailure::Allow => SubscribeDecision::Allow(c.filters.iter().map(|(_, q)| Some(*q)).collect()),
                }
            }
        }
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
        if self.cached(&key, now) {
            return Decision::Allow(None);
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
        let answer = self.call("auth_on_register", &body).await;
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
                match self.failed("auth_on_register", &why) {
                    OnFailure::Deny => Decision::Deny(ReasonCode::SERVER_UNAVAILABLE),
                    OnFailure::Next => Decision::Next,
                    OnFailure::Allow => Decision::Allow(None),
                }
            }
        };
        if decision == Decision::Allow(None) && answer.is_ok() {
            self.remember(key, now);
        }
        decision
    }
}
