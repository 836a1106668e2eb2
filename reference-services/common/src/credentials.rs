//! Where a request carries its credentials: an `Authorization: Bearer`
//! token or the `SESSION` cookie. One parser for the gateway and every
//! service, so they can never disagree on what counts as presenting one.

use http::HeaderMap;
use http::header;

use crate::session;

/// The token of an `Authorization: Bearer <token>` header (the scheme is
/// case-insensitive, RFC 9110 §11.1), if there is one.
pub fn bearer(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
}

/// The `SESSION` cookie's value from any of the request's `Cookie` headers,
/// as sent: callers check [`session::is_well_formed`] before using it.
pub fn session_cookie(headers: &HeaderMap) -> Option<&str> {
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

    fn with(pairs: &[(header::HeaderName, &'static str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (name, value) in pairs {
            h.append(name.clone(), HeaderValue::from_static(value));
        }
        h
    }

    #[test]
    fn a_bearer_token_is_found_whatever_the_scheme_case() {
        assert_eq!(bearer(&with(&[(header::AUTHORIZATION, "Bearer abc")])), Some("abc"));
        assert_eq!(bearer(&with(&[(header::AUTHORIZATION, "bearer  abc ")])), Some("abc"));
        assert_eq!(bearer(&with(&[(header::AUTHORIZATION, "Basic abc")])), None);
        assert_eq!(bearer(&with(&[(header::AUTHORIZATION, "Bearer")])), None);
        assert_eq!(bearer(&HeaderMap::new()), None);
    }

    #[test]
    fn the_session_cookie_is_found_in_any_cookie_header() {
        let h = with(&[(header::COOKIE, "a=1"), (header::COOKIE, "b=2; SESSION=xyz")]);
        assert_eq!(session_cookie(&h), Some("xyz"));
        assert_eq!(session_cookie(&with(&[(header::COOKIE, "SESSIONX=1")])), None);
    }
}
