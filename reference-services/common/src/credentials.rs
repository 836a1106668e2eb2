//! Where a request carries its credentials: an `Authorization: Bearer`
//! token or the `SESSION` cookie. One parser for the gateway and every
//! service, so they can never disagree on what counts as presenting one.

use http::HeaderMap;
use http::header;

use crate::session;

/// The token of an `Authorization: Bearer <token>` header, if there is one:
/// the scheme in any case (RFC 9110 §11.1), then one or more spaces or tabs
/// (RFC 9110's `1*SP`, and the tab every HTTP parser accepts as whitespace),
/// then a token with no whitespace in it (RFC 6750 §2.1's `b64token`).
pub fn bearer(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, rest) = value.split_once([' ', '\t'])?;
    let token = rest.trim_matches([' ', '\t']);
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty() && !token.contains([' ', '\t'])).then_some(token)
}

/// How many `Authorization` headers a request carries: more than one is
/// ambiguous (which did the gateway verify, which will the service read?).
pub fn authorization_count(headers: &HeaderMap) -> usize {
    headers.get_all(header::AUTHORIZATION).iter().count()
}

/// Removes the `SESSION` cookie from every `Cookie` header, keeping the
/// request's other cookies; a header left empty goes. Allocates only when
/// there is a `SESSION` cookie to remove.
pub fn strip_session_cookie(headers: &mut HeaderMap) {
    if session_cookie(headers).is_none() {
        return;
    }
    let kept: Vec<String> = headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .map(|v| {
            v.split(';')
                .map(str::trim)
                .filter(|pair| !pair.is_empty() && !session::is_session_pair(pair))
                .collect::<Vec<_>>()
                .join("; ")
        })
        .filter(|v| !v.is_empty())
        .collect();
    headers.remove(header::COOKIE);
    for v in kept {
        if let Ok(v) = http::HeaderValue::from_str(&v) {
            headers.append(header::COOKIE, v);
        }
    }
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
        assert_eq!(bearer(&with(&[(header::AUTHORIZATION, "Bearer\tabc")])), Some("abc"));
        assert_eq!(
            bearer(&with(&[(header::AUTHORIZATION, "BEARER \t abc\t")])),
            Some("abc")
        );
        assert_eq!(bearer(&with(&[(header::AUTHORIZATION, "Bearer  ")])), None);
        assert_eq!(bearer(&with(&[(header::AUTHORIZATION, "Bearer a b")])), None);
        assert_eq!(bearer(&with(&[(header::AUTHORIZATION, "Bearerabc")])), None);
        assert_eq!(bearer(&HeaderMap::new()), None);
    }

    #[test]
    fn the_session_cookie_is_found_in_any_cookie_header() {
        let h = with(&[(header::COOKIE, "a=1"), (header::COOKIE, "b=2; SESSION=xyz")]);
        assert_eq!(session_cookie(&h), Some("xyz"));
        assert_eq!(session_cookie(&with(&[(header::COOKIE, "SESSIONX=1")])), None);
    }

    #[test]
    fn only_the_session_cookie_is_stripped() {
        let mut h = with(&[
            (header::COOKIE, "a=1; SESSION=xyz; b=2"),
            (header::COOKIE, "SESSION=abc"),
        ]);
        strip_session_cookie(&mut h);
        let left: Vec<_> = h.get_all(header::COOKIE).iter().collect();
        assert_eq!(left, ["a=1; b=2"]);
        let mut h = with(&[(header::COOKIE, "SESSIONX=1")]);
        strip_session_cookie(&mut h);
        assert_eq!(h[header::COOKIE], "SESSIONX=1");
        assert_eq!(
            authorization_count(&with(&[(header::AUTHORIZATION, "a"), (header::AUTHORIZATION, "b")])),
            2
        );
    }
}
