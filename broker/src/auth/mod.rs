//! Who may connect. For now only the per-listener anonymous policy; the
//! built-in sources (password file, ACL, JWT, webhooks) and the WebAssembly
//! plugin chain plug in here.

use crate::codec::ReasonCode;
use crate::listener::ListenerSettings;

/// What the connecting client claims, as auth sources will see it.
#[derive(Debug, Clone, Copy)]
pub struct ConnectInfo<'a> {
    pub client_id: &'a str,
    pub username: Option<&'a str>,
    pub password: Option<&'a [u8]>,
}

/// Decides whether a CONNECT is let in; the error is the CONNACK reason.
pub fn check_connect(listener: &ListenerSettings, info: &ConnectInfo<'_>) -> Result<(), ReasonCode> {
    if listener.allow_anonymous {
        return Ok(());
    }
    match info.username {
        // No credential source exists yet, so a claimed identity cannot be
        // checked: refuse it as a bad user name or password rather than let it
        // through.
        Some(_) => Err(ReasonCode::BAD_USER_NAME_OR_PASSWORD),
        None => Err(ReasonCode::NOT_AUTHORIZED),
    }
}
