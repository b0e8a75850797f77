//! JSON Web Tokens as credentials, for operators who want no plugin: the
//! token travels as the CONNECT password (or user name), is verified with
//! keys from files (an HMAC secret, PEM public keys, a JWKS with key ids),
//! and its claims say what the client may publish and read.
//!
//! Verification is `jsonwebtoken` on `ring`, the provider rustls uses, so
//! the binary carries one crypto stack.

use std::path::{Path, PathBuf};

use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{Algorithm, DecodingKey, Validation, decode, decode_header};
use serde_json::Value;

use crate::config::{JwtConfig, TokenIn};

#[derive(Debug, thiserror::Error)]
pub enum JwtSetupError {
    #[error("{path}: cannot read: {source}")]
    Read { path: PathBuf, source: std::io::Error },
    #[error("{path}: {reason}")]
    Key { path: PathBuf, reason: String },
    #[error("algorithm {0:?} is not one jsonwebtoken knows (HS256, RS256, ES256, EdDSA, ...)")]
    Algorithm(String),
}

struct Key {
    kid: Option<String>,
    key: DecodingKey,
    /// Algorithms this key can verify.
    hmac: bool,
}

/// A verified token: who it says the client is allowed to be, until when.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verified {
    /// Unix seconds.
    pub expires_at: u64,
    pub publish: Option<Vec<String>>,
    pub subscribe: Option<Vec<String>>,
}

/// Why a token was refused; logged, never sent to the client.
#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    #[error("header: {0}")]
    Header(jsonwebtoken::errors::Error),
    #[error("algorithm {0:?} not allowed")]
    Algorithm(Algorithm),
    #[error("no key with id {0:?}")]
    UnknownKey(String),
    #[error("no configured key verifies it: {0}")]
    Invalid(jsonwebtoken::errors::Error),
    #[error("no key for algorithm {0:?}")]
    NoKey(Algorithm),
}

pub struct Jwt {
    keys: Vec<Key>,
    algorithms: Vec<Algorithm>,
    issuer: Option<String>,
    audience: Option<String>,
    token_in: TokenIn,
    publish_claim: String,
    subscribe_claim: String,
}

impl std::fmt::Debug for Jwt {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Jwt")
            .field("keys", &self.keys.len())
            .field("algorithms", &self.algorithms)
            .finish_non_exhaustive()
    }
}

fn read(path: &Path) -> Result<Vec<u8>, JwtSetupError> {
    std::fs::read(path).map_err(|source| JwtSetupError::Read {
        path: path.to_path_buf(),
        source,
    })
}

impl Jwt {
    pub fn load(c: &JwtConfig) -> Result<Jwt, JwtSetupError> {
        let mut keys = Vec::new();
        if let Some(path) = &c.hmac_secret_file {
            let secret = read(path)?;
            // A trailing newline from `echo secret > file` is not part of it.
            let secret = secret.trim_ascii_end();
            if secret.len() < 32 {
                return Err(JwtSetupError::Key {
                    path: path.clone(),
                    reason: "an HMAC secret must be at least 32 bytes".into(),
                });
            }
            keys.push(Key {
                kid: None,
                key: DecodingKey::from_secret(secret),
                hmac: true,
            });
        }
        for path in &c.public_key_files {
            let pem = read(path)?;
            let key = DecodingKey::from_rsa_pem(&pem)
                .or_else(|_| DecodingKey::from_ec_pem(&pem))
                .or_else(|_| DecodingKey::from_ed_pem(&pem))
                .map_err(|e| JwtSetupError::Key {
                    path: path.clone(),
                    reason: format!("not an RSA, EC or Ed25519 public key in PEM: {e}"),
                })?;
            keys.push(Key {
                kid: None,
                key,
                hmac: false,
            });
        }
        if let Some(path) = &c.jwks_file {
            let set: JwkSet = serde_json::from_slice(&read(path)?).map_err(|e| JwtSetupError::Key {
                path: path.clone(),
                reason: format!("not a JWKS: {e}"),
            })?;
            for jwk in &set.keys {
                let key = DecodingKey::from_jwk(jwk).map_err(|e| JwtSetupError::Key {
                    path: path.clone(),
                    reason: format!("key {:?}: {e}", jwk.common.key_id),
                })?;
                keys.push(Key {
                    kid: jwk.common.key_id.clone(),
                    key,
                    hmac: matches!(jwk.algorithm, jsonwebtoken::jwk::AlgorithmParameters::OctetKey(_)),
                });
            }
        }
        let algorithms = c
            .algorithms
            .iter()
            .map(|a| a.parse::<Algorithm>().map_err(|_| JwtSetupError::Algorithm(a.clone())))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Jwt {
            keys,
            algorithms,
            issuer: c.issuer.clone(),
            audience: c.audience.clone(),
            token_in: c.token_in,
            publish_claim: c.publish_claim.clone(),
            subscribe_claim: c.subscribe_claim.clone(),
        })
    }

    /// The token in a CONNECT, if it carries something shaped like one.
    pub fn token<'a>(&self, username: Option<&'a str>, password: Option<&'a [u8]>) -> Option<&'a str> {
        let raw = match self.token_in {
            TokenIn::Password => std::str::from_utf8(password?).ok()?,
            TokenIn::Username => username?,
        };
        (raw.split('.').count() == 3).then_some(raw)
    }

    pub fn verify(&self, token: &str) -> Result<Verified, TokenError> {
        let header = decode_header(token).map_err(TokenError::Header)?;
        if !self.algorithms.contains(&header.alg) {
            return Err(TokenError::Algorithm(header.alg));
        }
        let hmac = matches!(header.alg, Algorithm::HS256 | Algorithm::HS384 | Algorithm::HS512);
        let candidates: Vec<&Key> = match &header.kid {
            Some(kid) if self.keys.iter().any(|k| k.kid.is_some()) => {
                let found: Vec<&Key> = self.keys.iter().filter(|k| k.kid.as_ref() == Some(kid)).collect();
                if found.is_empty() {
                    return Err(TokenError::UnknownKey(kid.clone()));
                }
                found
            }
            _ => self.keys.iter().filter(|k| k.hmac == hmac).collect(),
        };
        if candidates.is_empty() {
            return Err(TokenError::NoKey(header.alg));
        }
        let mut validation = Validation::new(header.alg);
        validation.validate_nbf = true;
        validation.leeway = 0;
        validation.set_required_spec_claims(&["exp"]);
        if let Some(iss) = &self.issuer {
            validation.set_issuer(&[iss]);
        }
        match &self.audience {
            Some(aud) => validation.set_audience(&[aud]),
            None => validation.validate_aud = false,
        }
        let mut last = None;
        for key in candidates {
            match decode::<Value>(token, &key.key, &validation) {
                Ok(data) => {
                    let claims = data.claims;
                    return Ok(Verified {
                        expires_at: claims.get("exp").and_then(Value::as_u64).unwrap_or(0),
                        publish: string_list(&claims, &self.publish_claim),
                        subscribe: string_list(&claims, &self.subscribe_claim),
                    });
                }
                Err(e) => last = Some(e),
            }
        }
        Err(TokenError::Invalid(last.unwrap_or_else(|| {
            jsonwebtoken::errors::ErrorKind::InvalidSignature.into()
        })))
    }
}

/// A list of strings at a dotted claim path (`acl.pub`).
fn string_list(claims: &Value, path: &str) -> Option<Vec<String>> {
    let mut v = claims;
    for part in path.split('.') {
        v = v.get(part)?;
    }
    Some(
        v.as_array()?
            .iter()
            .filter_map(|x| x.as_str().map(str::to_owned))
            .collect(),
    )
}
