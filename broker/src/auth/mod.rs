//! Who may connect: each listener's chain of credential sources, asked in
//! order, then its anonymous policy. ACL files, JWT, webhooks and the
//! WebAssembly plugins plug into the same chain.

mod acl_file;
mod jwt;
mod password_file;
mod webhook;

use std::sync::Arc;

pub use acl_file::{AclFile, AclFileError, ClientAcl};
pub use jwt::{Jwt, JwtSetupError, Verified};
pub use password_file::{DEFAULT_ITERATIONS, PasswordFile, PasswordFileError, Verdict, hash_password};
pub use webhook::{FilterVerdicts, PublishCheck, SubscribeCheck, SubscribeDecision, Webhook, WebhookSetupError};

use crate::codec::ReasonCode;
use crate::config::WebhookHook;
use crate::listener::ListenerSettings;

/// What the connecting client claims, as auth sources will see it.
#[derive(Debug, Clone, Copy)]
pub struct ConnectInfo<'a> {
    pub client_id: &'a str,
    pub username: Option<&'a str>,
    pub password: Option<&'a [u8]>,
    /// The user name comes from a client certificate the TLS handshake
    /// verified: it needs no other credential.
    pub certified: bool,
}

/// One source's answer, as plugins will give it too.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// Let in; a token may say what the client may do and until when.
    Allow(Option<Verified>),
    Deny(ReasonCode),
    /// Not this source's client: ask the next one.
    Next,
}

/// A credential source a listener can name in its `auth` list.
#[derive(Debug, Clone)]
pub enum Source {
    PasswordFile(Reloadable<PasswordFile>),
    /// Authorizes only: never decides a CONNECT.
    AclFile(Reloadable<AclFile>),
    Jwt(Arc<Jwt>),
    Webhook(Arc<Webhook>),
}

/// A loaded file that SIGHUP can replace while connections use it.
pub type Reloadable<T> = Arc<parking_lot::RwLock<Arc<T>>>;

impl Source {
    async fn check_connect(&self, info: &ConnectInfo<'_>, peer: std::net::SocketAddr) -> Decision {
        match self {
            Source::Webhook(hook) if hook.serves(WebhookHook::AuthOnRegister) => {
                hook.auth_on_register(info, peer).await
            }
            Source::Webhook(_) => Decision::Next,
            Source::PasswordFile(file) => {
                let Some(user) = info.username else {
                    return Decision::Next;
                };
                let file = file.read().clone();
                match file.check(user, info.password.unwrap_or_default()) {
                    Verdict::Valid => Decision::Allow(None),
                    Verdict::WrongPassword => Decision::Deny(ReasonCode::BAD_USER_NAME_OR_PASSWORD),
                    Verdict::UnknownUser => Decision::Next,
                }
            }
            Source::AclFile(_) => Decision::Next,
            Source::Jwt(jwt) => {
                let Some(token) = jwt.token(info.username, info.password) else {
                    return Decision::Next;
                };
                match jwt.verify(token) {
                    Ok(v) => Decision::Allow(Some(v)),
                    Err(e) => {
                        tracing::info!(error = %e, "token refused");
                        Decision::Deny(ReasonCode::BAD_USER_NAME_OR_PASSWORD)
                    }
                }
            }
        }
    }
}

/// What a let-in client may do, and until when.
#[derive(Debug, Default)]
pub struct Admission {
    pub acl: Grant,
    /// Unix seconds at which its credentials run out (a token's `exp`).
    pub expires_at: Option<u64>,
}

/// What a let-in client may do: `None` where no ACL source is configured
/// (everything).
pub type Grant = Option<Arc<ClientAcl>>;

/// Decides whether a CONNECT is let in; the error is the CONNACK reason.
///
/// The first source that allows or denies decides. When none does, a client
/// that gave a user name is refused if the listener checks credentials at
/// all (a name nobody knows is a bad one), and a client without one is let
/// in only where anonymous clients are allowed.
///
/// A token's `acl` claims, when present, are the client's permissions;
/// otherwise the listener's ACL file's, if it has one; otherwise none are
/// checked.
pub async fn check_connect(
    listener: &ListenerSettings,
    info: &ConnectInfo<'_>,
    peer: std::net::SocketAddr,
) -> Result<Admission, ReasonCode> {
    let token = authenticate(listener, info, peer).await?;
    let from_token = token.as_ref().and_then(|t| {
        (t.publish.is_some() || t.subscribe.is_some()).then(|| {
            Arc::new(ClientAcl::from_lists(
                info.client_id,
                info.username,
                t.publish.as_deref().unwrap_or_default(),
                t.subscribe.as_deref().unwrap_or_default(),
            ))
        })
    });
    let acl = from_token.or_else(|| {
        listener.auth.iter().find_map(|s| match s {
            Source::AclFile(acl) => Some(Arc::new(acl.read().for_client(info.client_id, info.username))),
            Source::PasswordFile(_) | Source::Jwt(_) | Source::Webhook(_) => None,
        })
    });
    Ok(Admission {
        acl,
        expires_at: token.map(|t| t.expires_at),
    })
}

async fn authenticate(
    listener: &ListenerSettings,
    info: &ConnectInfo<'_>,
    peer: std::net::SocketAddr,
) -> Result<Option<Verified>, ReasonCode> {
    if info.certified {
        return Ok(None);
    }
    let mut checks_credentials = false;
    for source in &listener.auth {
        checks_credentials |= !matches!(source, Source::AclFile(_));
        match source.check_connect(info, peer).await {
            Decision::Allow(token) => return Ok(token),
            Decision::Deny(code) => return Err(code),
            Decision::Next => {}
        }
    }
    match info.username {
        Some(_) if checks_credentials => Err(ReasonCode::BAD_USER_NAME_OR_PASSWORD),
        _ if listener.allow_anonymous => Ok(None),
        // No credential source can check a claimed identity: refuse it as
        // a bad user name or password rather than let it through.
        Some(_) => Err(ReasonCode::BAD_USER_NAME_OR_PASSWORD),
        None => Err(ReasonCode::NOT_AUTHORIZED),
    }
}

/// The listener's webhooks that serve `hook`, in chain order.
pub fn hooks_for(listener: &ListenerSettings, hook: WebhookHook) -> impl Iterator<Item = &Arc<Webhook>> {
    listener.auth.iter().filter_map(move |s| match s {
        Source::Webhook(h) if h.serves(hook) => Some(h),
        _ => None,
    })
}

/// Asks the publish hooks in order: the first "ok" lets the PUBLISH
/// through, the first refusal stops it (its reason code); when all say
/// "next" it goes through, having passed the listener's ACL already.
pub async fn check_publish(hooks: Vec<Arc<Webhook>>, check: PublishCheck) -> Option<ReasonCode> {
    for h in hooks {
        match h.auth_on_publish(&check).await {
            Decision::Allow(_) => return None,
            Decision::Deny(code) => return Some(code),
            Decision::Next => {}
        }
    }
    None
}

/// Asks the subscribe hooks in order, as [`check_publish`] does; `None`
/// lets every filter through as asked.
pub async fn check_subscribe(hooks: Vec<Arc<Webhook>>, check: SubscribeCheck) -> Option<FilterVerdicts> {
    for h in hooks {
        match h.auth_on_subscribe(&check).await {
            SubscribeDecision::Allow(v) => return Some(v),
            SubscribeDecision::Deny => return Some(vec![None; check.filters.len()]),
            SubscribeDecision::Next => {}
        }
    }
    None
}
