//! Header hygiene at the edge: hop-by-hop headers never cross the proxy, and
//! identity headers are only ever set by the gateway itself.

use http::HeaderMap;
use http::header::{self, HeaderName};

/// RFC 9110 §7.6.1 hop-by-hop headers, plus the non-standard ones proxies drop.
const HOP_BY_HOP: [HeaderName; 8] = [
    header::CONNECTION,
    header::TE,
    header::TRAILER,
    header::TRANSFER_ENCODING,
    header::UPGRADE,
    header::PROXY_AUTHORIZATION,
    HeaderName::from_static("keep-alive"),
    HeaderName::from_static("proxy-connection"),
];

/// Names a client might use to claim an identity the gateway did not
/// verify, in any spelling a service may read as the same: `X_User_Id` is
/// `HTTP_X_USER_ID` to CGI, WSGI, Rack and PHP, as `X-User-Id` is.
fn is_identity_header(name: &str) -> bool {
    const PREFIXES: [&str; 6] = [
        "x-user",
        "x-auth",
        "x-consumer-",
        "x-remote-user",
        "x-forwarded-user",
        "remote-user",
    ];
    PREFIXES.iter().any(|p| {
        name.len() >= p.len()
            && name
                .bytes()
                .zip(p.bytes())
                .all(|(n, p)| n == p || (n == b'_' && p == b'-'))
    })
}

/// Removes hop-by-hop headers, including those the `Connection` header names.
pub fn strip_hop_by_hop(headers: &mut HeaderMap) {
    if headers.contains_key(header::CONNECTION) {
        let named: Vec<HeaderName> = headers
            .get_all(header::CONNECTION)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .filter_map(|t| HeaderName::from_bytes(t.trim().as_bytes()).ok())
            .collect();
        for name in named {
            headers.remove(name);
        }
    }
    for name in &HOP_BY_HOP {
        headers.remove(name);
    }
}

/// Removes client-supplied identity headers. Allocates only when one is present.
pub fn strip_identity(headers: &mut HeaderMap) {
    if !headers.keys().any(|n| is_identity_header(n.as_str())) {
        return;
    }
    let spoofed: Vec<HeaderName> = headers
        .keys()
        .filter(|n| is_identity_header(n.as_str()))
        .cloned()
        .collect();
    for name in spoofed {
        headers.remove(name);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hop_by_hop_and_connection_named_headers_go() {
        let mut h = HeaderMap::new();
        h.insert(header::CONNECTION, "keep-alive, x-secret".parse().unwrap());
        h.insert("x-secret", "1".parse().unwrap());
        h.insert("keep-alive", "timeout=5".parse().unwrap());
        h.insert(header::TRANSFER_ENCODING, "chunked".parse().unwrap());
        h.insert(header::ACCEPT, "*/*".parse().unwrap());
        strip_hop_by_hop(&mut h);
        assert_eq!(h.len(), 1);
        assert!(h.contains_key(header::ACCEPT));
    }

    #[test]
    fn spoofed_identity_goes() {
        let mut h = HeaderMap::new();
        for name in [
            "x-user-id",
            "x-userid",
            "x-authenticated-userid",
            "x-consumer-id",
            "x-forwarded-user",
            "remote-user",
            "x_user_id",
            "x-user_id",
            "remote_user",
        ] {
            h.insert(HeaderName::from_static(name), "admin".parse().unwrap());
        }
        h.insert(header::AUTHORIZATION, "Bearer t".parse().unwrap());
        strip_identity(&mut h);
        assert_eq!(h.len(), 1);
        assert!(h.contains_key(header::AUTHORIZATION));
    }
}
