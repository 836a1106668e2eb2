//! Normalise: the first stage. A request gets one meaning before anything
//! reads it, so what the gateway routes on and what the service reads are
//! the same request (Envoy's `normalize_path`, `merge_slashes` and
//! `path_with_escaped_slashes_action`; nginx's `merge_slashes`):
//!
//! - **path**: percent-encoded unreserved characters decoded and other
//!   escapes upper-cased (RFC 3986 §6.2.2.1–2), dot segments removed
//!   (§5.2.4), repeated slashes merged; an escaped `/` or `\` as the
//!   [`EscapedSlashes`] policy says; a malformed escape is a 400. Routing,
//!   `strip_prefix` and the forwarded request all use the result.
//! - **host**: exactly one `Host` of valid authority syntax (RFC 9112 §3.2),
//!   and for an absolute-form request, the target's authority in its place.
//! - **credentials**: at most one `Authorization`.
//! - **header names with underscores**: as the [`Underscores`] policy says.
//!
//! The common request (an origin-form path with nothing to change, one
//! `Host`) is only scanned: nothing is allocated.

use gantry_common::credentials::authorization_count;
use gantry_common::error::ApiError;
use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::request::Parts;
use http::uri::{PathAndQuery, Uri};
use http::{StatusCode, Version};

use crate::edge::{EdgePolicy, EscapedSlashes, Underscores};

/// Gives `parts` its one meaning under `edge`, or says why it has none.
pub fn request(parts: &mut Parts, edge: &EdgePolicy) -> Result<(), ApiError> {
    one_host(parts)?;
    if let Some(path) = path(parts.uri.path(), edge.escaped_slashes).map_err(PathError::to_api_error)? {
        parts.uri = origin_form(&path, parts.uri.query()).ok_or_else(|| PathError::Malformed.to_api_error())?;
    }
    if authorization_count(&parts.headers) > 1 {
        return Err(ApiError::bad_request(
            "ambiguous_credentials",
            "more than one Authorization header; send one credential",
        ));
    }
    underscores(&mut parts.headers, edge.headers_with_underscores)
}

/// Why a path has no single meaning.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PathError {
    /// A `%` not followed by two hex digits.
    Malformed,
    /// An escaped `/` or `\`, or a raw `\`, refused by policy.
    EscapedSlash,
}

impl PathError {
    fn to_api_error(self) -> ApiError {
        match self {
            PathError::Malformed => ApiError::bad_request("bad_path", "the path holds a malformed percent-escape"),
            PathError::EscapedSlash => ApiError::bad_request(
                "escaped_slash",
                "the path holds an escaped '/' or '\\' (%2F, %5C) or a backslash, which services read differently",
            ),
        }
    }
}

/// `raw`, normalised: `None` when it already is (the common case, which
/// allocates nothing), else the normal form.
pub fn path(raw: &str, escaped: EscapedSlashes) -> Result<Option<String>, PathError> {
    if is_normal(raw) {
        return Ok(None);
    }
    // 1. Escapes: unreserved ones decoded, others upper-cased; slashes by policy.
    let bytes = raw.as_bytes();
    let mut decoded = String::with_capacity(raw.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' => {
                let hex = |b: Option<&u8>| b.and_then(|b| (*b as char).to_digit(16));
                let (Some(hi), Some(lo)) = (hex(bytes.get(i + 1)), hex(bytes.get(i + 2))) else {
                    return Err(PathError::Malformed);
                };
                let byte = (hi * 16 + lo) as u8;
                match byte {
                    b'/' | b'\\' => match escaped {
                        EscapedSlashes::Reject => return Err(PathError::EscapedSlash),
                        EscapedSlashes::Unescape => decoded.push('/'),
                        EscapedSlashes::Keep => push_escape(&mut decoded, byte),
                    },
                    b if is_unreserved(b) => decoded.push(b as char),
                    b => push_escape(&mut decoded, b),
                }
                i += 3;
            }
            b'\\' => {
                match escaped {
                    EscapedSlashes::Reject => return Err(PathError::EscapedSlash),
                    EscapedSlashes::Unescape => decoded.push('/'),
                    EscapedSlashes::Keep => push_escape(&mut decoded, b'\\'),
                }
                i += 1;
            }
            _ => {
                // Any other byte as it came (the URI parser let it through);
                // copy the whole run up to the next escape at once.
                let end = bytes[i..]
                    .iter()
                    .position(|b| matches!(b, b'%' | b'\\'))
                    .map_or(bytes.len(), |n| i + n);
                decoded.push_str(&raw[i..end]);
                i = end;
            }
        }
    }
    // 2. Segments: dot segments resolved, empty ones (repeated slashes) merged.
    let mut segments: Vec<&str> = Vec::new();
    let mut trailing_slash = false;
    for segment in decoded.split('/').skip(1) {
        trailing_slash = false;
        match segment {
            "" => trailing_slash = true,
            "." => trailing_slash = true,
            ".." => {
                segments.pop();
                trailing_slash = true;
            }
            s => segments.push(s),
        }
    }
    let mut out = String::with_capacity(decoded.len());
    for s in &segments {
        out.push('/');
        out.push_str(s);
    }
    if trailing_slash || segments.is_empty() {
        out.push('/');
    }
    Ok(Some(out))
}

/// Whether `path` is already normal: no escape, no backslash, no empty,
/// `.` or `..` segment (the root `/` alone excepted).
fn is_normal(path: &str) -> bool {
    let bytes = path.as_bytes();
    if bytes.first() != Some(&b'/') {
        // Origin-form paths start with '/'; `*` (OPTIONS) is left alone.
        return true;
    }
    let mut segment_start = 1;
    for (i, &b) in bytes.iter().enumerate().skip(1) {
        match b {
            b'%' | b'\\' => return false,
            b'/' => {
                if !is_plain_segment(&bytes[segment_start..i]) {
                    return false;
                }
                segment_start = i + 1;
            }
            _ => {}
        }
    }
    // The last segment may be empty (a trailing slash), not a dot segment.
    !matches!(&bytes[segment_start..], b"." | b"..")
}

/// A segment that is neither empty nor a dot segment.
fn is_plain_segment(s: &[u8]) -> bool {
    !matches!(s, b"" | b"." | b"..")
}

/// RFC 3986 §2.3.
fn is_unreserved(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~')
}

fn push_escape(out: &mut String, b: u8) {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    out.push('%');
    out.push(HEX[(b >> 4) as usize] as char);
    out.push(HEX[(b & 15) as usize] as char);
}

/// `/path?query` as a URI.
fn origin_form(path: &str, query: Option<&str>) -> Option<Uri> {
    let pq = match query {
        Some(q) => PathAndQuery::try_from(format!("{path}?{q}")),
        None => PathAndQuery::try_from(path),
    };
    pq.ok().map(Uri::from)
}

/// Exactly one valid `Host`; an absolute-form target's authority replaces
/// it (RFC 9112 §3.2.2), so the service reads the host that was routed.
fn one_host(parts: &mut Parts) -> Result<(), ApiError> {
    let mut hosts = parts.headers.get_all(header::HOST).iter();
    let first = hosts.next();
    if hosts.next().is_some() {
        return Err(ApiError::bad_request("bad_host", "more than one Host header"));
    }
    if let Some(authority) = parts.uri.authority() {
        if !is_authority(authority.as_str().as_bytes()) {
            return Err(ApiError::bad_request(
                "bad_host",
                "the request target's authority is not a host and port",
            ));
        }
        let value = HeaderValue::from_str(authority.as_str())
            .map_err(|_| ApiError::bad_request("bad_host", "the request target's authority is not a host and port"))?;
        parts.headers.insert(header::HOST, value);
        return Ok(());
    }
    match first {
        Some(host) if is_authority(host.as_bytes()) => Ok(()),
        Some(_) => Err(ApiError::bad_request(
            "bad_host",
            "the Host header is not a host and optional port",
        )),
        None if parts.version == Version::HTTP_11 => Err(ApiError::bad_request(
            "bad_host",
            "an HTTP/1.1 request needs a Host header",
        )),
        None => Ok(()),
    }
}

/// RFC 3986 §3.2.2–3 `host [ ":" port ]`, without userinfo: a reg-name
/// (unreserved, sub-delims, escapes), an IPv4 address, or an IP literal in
/// brackets; the port digits only. Empty is allowed (RFC 9112 §3.2).
fn is_authority(a: &[u8]) -> bool {
    let (host, port) = if a.first() == Some(&b'[') {
        let Some(end) = a.iter().position(|b| *b == b']') else {
            return false;
        };
        let literal = &a[1..end];
        if literal.is_empty()
            || !literal
                .iter()
                .all(|b| b.is_ascii_hexdigit() || matches!(b, b':' | b'.'))
        {
            return false;
        }
        match &a[end + 1..] {
            [] => return true,
            [b':', port @ ..] => (&a[..0], port),
            _ => return false,
        }
    } else {
        match a.iter().rposition(|b| *b == b':') {
            Some(colon) => (&a[..colon], &a[colon + 1..]),
            None => (a, &a[..0]),
        }
    };
    is_reg_name(host) && port.len() <= 5 && port.iter().all(u8::is_ascii_digit)
}

/// RFC 3986 §3.2.2 `reg-name` (which an IPv4 address is too).
fn is_reg_name(host: &[u8]) -> bool {
    let mut i = 0;
    while i < host.len() {
        match host[i] {
            b'%' if host
                .get(i + 1..i + 3)
                .is_some_and(|h| h.iter().all(u8::is_ascii_hexdigit)) =>
            {
                i += 3
            }
            b if is_unreserved(b) || b"!$&'()*+,;=".contains(&b) => i += 1,
            _ => return false,
        }
    }
    true
}

/// Header names with an underscore: dropped, refused or kept, per `policy`.
fn underscores(headers: &mut HeaderMap, policy: Underscores) -> Result<(), ApiError> {
    if policy == Underscores::Allow || !headers.keys().any(|n| n.as_str().contains('_')) {
        return Ok(());
    }
    let named: Vec<HeaderName> = headers.keys().filter(|n| n.as_str().contains('_')).cloned().collect();
    if policy == Underscores::Reject {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "underscore_header",
            format!(
                "header names with underscores are refused here ({}); use dashes",
                named.iter().map(HeaderName::as_str).collect::<Vec<_>>().join(", ")
            ),
        ));
    }
    for name in named {
        headers.remove(name);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use http::Request;

    use super::*;

    fn norm(p: &str) -> Result<String, PathError> {
        path(p, EscapedSlashes::Reject).map(|n| n.unwrap_or_else(|| p.to_owned()))
    }

    #[test]
    fn a_normal_path_is_left_as_it_is_without_a_copy() {
        for p in ["/", "/users/me", "/a/b/", "/a.b/..c/d.", "*", "/a/.x"] {
            assert_eq!(path(p, EscapedSlashes::Reject), Ok(None), "{p}");
        }
    }

    #[test]
    fn dot_segments_go_and_slashes_merge() {
        assert_eq!(norm("/open/../locked/x").unwrap(), "/locked/x");
        assert_eq!(norm("/open/./x").unwrap(), "/open/x");
        assert_eq!(norm("//locked/x").unwrap(), "/locked/x");
        assert_eq!(norm("/a//b///c").unwrap(), "/a/b/c");
        assert_eq!(norm("/a/b/..").unwrap(), "/a/");
        assert_eq!(norm("/a/b/.").unwrap(), "/a/b/");
        assert_eq!(norm("/../../etc").unwrap(), "/etc");
        assert_eq!(norm("/..").unwrap(), "/");
        assert_eq!(norm("/api/x/../admin/y").unwrap(), "/api/admin/y");
    }

    #[test]
    fn unreserved_escapes_are_decoded_before_dots_are_resolved() {
        assert_eq!(norm("/open/%2e%2e/locked/x").unwrap(), "/locked/x");
        assert_eq!(norm("/open/%2E./locked").unwrap(), "/locked");
        assert_eq!(norm("/%6cocked/x").unwrap(), "/locked/x");
        assert_eq!(norm("/a%7Eb%2d").unwrap(), "/a~b-");
        // Reserved and other escapes stay escaped, in capitals.
        assert_eq!(norm("/a%3ab%20c%c3%a9").unwrap(), "/a%3Ab%20c%C3%A9");
        assert_eq!(norm("/a%25252e").unwrap(), "/a%25252e", "decoded once, not again");
    }

    #[test]
    fn malformed_escapes_are_refused() {
        for p in ["/a%", "/a%2", "/a%zz", "/a%2g"] {
            assert_eq!(norm(p), Err(PathError::Malformed), "{p}");
        }
    }

    #[test]
    fn escaped_slashes_follow_the_policy() {
        for p in ["/open%2F..%2Flocked", "/a%2fb", "/a%5cb", "/a\\b"] {
            assert_eq!(norm(p), Err(PathError::EscapedSlash), "{p}");
        }
        let keep = |p| path(p, EscapedSlashes::Keep).unwrap().unwrap();
        assert_eq!(keep("/open%2f..%2Flocked"), "/open%2F..%2Flocked");
        assert_eq!(keep("/a%5cb"), "/a%5Cb");
        let unescape = |p| path(p, EscapedSlashes::Unescape).unwrap().unwrap();
        assert_eq!(unescape("/open%2F..%2Flocked/x"), "/locked/x");
        assert_eq!(unescape("/a\\..\\b"), "/b");
    }

    fn parts(req: Request<()>) -> Parts {
        req.into_parts().0
    }

    #[test]
    fn exactly_one_valid_host() {
        let ok = |h: &str| one_host(&mut parts(Request::get("/x").header("host", h).body(()).unwrap())).is_ok();
        for good in [
            "a.example",
            "a.example:8080",
            "127.0.0.1:1",
            "[::1]:80",
            "[::1]",
            "",
            "a-b_c~d",
        ] {
            assert!(ok(good), "{good}");
        }
        for bad in [
            "public.example:80@evil.example",
            "a.example/x",
            "a b",
            "a.example:80:80x",
            "a.example:123456",
            "[::1",
            "[zz]",
            "a%zz",
        ] {
            assert!(!ok(bad), "{bad}");
        }
        let mut two = parts(
            Request::get("/x")
                .header("host", "a")
                .header("host", "b")
                .body(())
                .unwrap(),
        );
        assert!(one_host(&mut two).is_err());
        let mut none = parts(Request::get("/x").body(()).unwrap());
        assert!(one_host(&mut none).is_err(), "HTTP/1.1 needs a Host");
        let mut old = parts(Request::get("/x").version(Version::HTTP_10).body(()).unwrap());
        assert!(one_host(&mut old).is_ok(), "HTTP/1.0 may go without");
    }

    #[test]
    fn an_absolute_form_target_replaces_the_host() {
        let mut p = parts(
            Request::get("http://public.example/hosted/x")
                .header("host", "evil.example")
                .body(())
                .unwrap(),
        );
        request(&mut p, &EdgePolicy::default()).unwrap();
        assert_eq!(p.headers[header::HOST], "public.example");
        let mut p = parts(Request::get("http://u@public.example/x").body(()).unwrap());
        assert!(one_host(&mut p).is_err(), "userinfo is refused");
    }

    #[test]
    fn the_normal_path_is_the_uri_and_the_query_stays() {
        let mut p = parts(
            Request::get("/a/../b//c?x=%2e%2e/../y")
                .header("host", "h")
                .body(())
                .unwrap(),
        );
        request(&mut p, &EdgePolicy::default()).unwrap();
        assert_eq!(p.uri, "/b/c?x=%2e%2e/../y");
    }

    #[test]
    fn two_authorizations_are_refused() {
        let mut p = parts(
            Request::get("/x")
                .header("host", "h")
                .header("authorization", "Bearer a")
                .header("authorization", "Bearer b")
                .body(())
                .unwrap(),
        );
        let e = request(&mut p, &EdgePolicy::default()).unwrap_err();
        assert_eq!((e.status, e.code), (StatusCode::BAD_REQUEST, "ambiguous_credentials"));
    }

    #[test]
    fn underscored_names_are_dropped_refused_or_kept() {
        let make = || {
            let mut h = HeaderMap::new();
            h.insert("x_user_id", HeaderValue::from_static("admin"));
            h.insert("x-probe", HeaderValue::from_static("1"));
            h
        };
        let mut h = make();
        underscores(&mut h, Underscores::Drop).unwrap();
        assert!(!h.contains_key("x_user_id") && h.contains_key("x-probe"));
        let e = underscores(&mut make(), Underscores::Reject).unwrap_err();
        assert!(e.message.contains("x_user_id"), "{}", e.message);
        let mut h = make();
        underscores(&mut h, Underscores::Allow).unwrap();
        assert_eq!(h.len(), 2);
    }
}
