//! Identity: who is calling, as much as the route asks to know. A bearer
//! token or a `SESSION` cookie is verified by [`Identity`]; a session's
//! token is put in `Authorization` for the service.

use gantry_common::session;
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
    if let Some(sid) = cookie_session(headers) {
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

fn bearer(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
}

fn cookie_session(headers: &HeaderMap) -> Option<&str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find_map(session::from_cookie_header)
}

#[cfg(test)]
mod tests {
    use http::HeaderValue;

    use super::*;

    #[test]
    fn a_caller_is_passed_on_and_no_caller_sets_nothing() {
        let mut h = HeaderMap::new();
        pass_on(&mut h, None);
        assert!(h.is_empty());
        let caller = Caller {
            user_id: HeaderValue::from_static("u_1"),
            username: None,
        };
        pass_on(&mut h, Some(&caller));
        assert_eq!(h[&X_USER_ID], "u_1");
        assert!(!h.contains_key(&X_USERNAME));
    }

    #[test]
    fn the_bearer_scheme_is_case_insensitive() {
        let mut h = HeaderMap::new();
        h.insert(header::AUTHORIZATION, HeaderValue::from_static("bEaReR abc "));
        assert_eq!(bearer(&h), Some("abc"));
        h.insert(header::AUTHORIZATION, HeaderValue::from_static("Basic abc"));
        assert_eq!(bearer(&h), None);
    }
}
