//! Identity: who is calling, as much as the route asks to know. A bearer
//! token or a `SESSION` cookie is verified by [`Identity`]; a session's
//! token is put in `Authorization` for the service.

use gantry_common::credentials::{bearer, session_cookie, strip_session_cookie};
use http::header::{self, HeaderMap, HeaderName};

use crate::declared::IdentityMode;
use crate::identity::{Caller, Denied, Identity};

/// Set by the gateway from the verified token's `sub` (`identity_headers`).
pub static X_USER_ID: HeaderName = HeaderName::from_static("x-user-id");
/// Set by the gateway from the verified token's `username`, when it has one.
pub static X_USERNAME: HeaderName = HeaderName::from_static("x-username");

/// The verified caller, as `mode` demands: `None` when the route needs no
/// identity, or makes it optional and none was presented. Credentials that
/// are presented are checked even where optional: a bad one is a 401, not
/// an anonymous request.
pub async fn caller(
    identity: &Identity,
    mode: IdentityMode,
    headers: &mut HeaderMap,
    jwks_urls: impl FnOnce() -> Vec<String>,
) -> Result<Option<Caller>, Denied> {
    if mode == IdentityMode::None {
        return Ok(None);
    }
    if let Some(token) = bearer(headers) {
        return identity.bearer(token, jwks_urls).await.map(Some);
    }
    if let Some(sid) = session_cookie(headers) {
        let (authorization, caller) = identity.session(sid, jwks_urls).await?;
        headers.insert(header::AUTHORIZATION, authorization);
        return Ok(Some(caller));
    }
    match mode {
        IdentityMode::Required => Err(Denied::Unauthorized("a bearer token or session cookie is required")),
        IdentityMode::Optional | IdentityMode::None => Ok(None),
    }
}

/// Passes the verified caller on as `X-User-Id` and `X-Username`, as Kong
/// passes `X-Consumer-*`; sets nothing without one. Client-sent copies were
/// removed by the sanitize stage, so what arrives is only ever this.
pub fn pass_on(headers: &mut HeaderMap, caller: Option<&Caller>) {
    let Some(caller) = caller else { return };
    headers.insert(X_USER_ID.clone(), caller.user_id.clone());
    if let Some(name) = &caller.username {
        headers.insert(X_USERNAME.clone(), name.clone());
    }
}

/// Leaves the service only the credential the gateway verified, unless the
/// route passes credentials on as sent (`pass_credentials`): the verified
/// bearer token or the session's token in `Authorization`, never the
/// replayable `SESSION` cookie, and with no verified caller (`identity =
/// "none"`, or optional without credentials) no `Authorization` at all.
pub fn keep_verified(headers: &mut HeaderMap, caller: Option<&Caller>, pass_credentials: bool) {
    if pass_credentials {
        return;
    }
    strip_session_cookie(headers);
    if caller.is_none() {
        headers.remove(header::AUTHORIZATION);
    }
}
