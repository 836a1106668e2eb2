//! Sanitize: what a client sends that must not reach a service as it
//! was sent. Hop-by-hop headers go, identity headers a client claims go
//! (only the gateway sets them, see [`super::identify::pass_on`]), and the
//! request gets its id and `X-Forwarded-For`.

use gantry_common::http::X_REQUEST_ID;
use http::{HeaderMap, HeaderName, HeaderValue};

use crate::headers::{strip_hop_by_hop, strip_identity};

static X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");

/// Cleans `headers` for the trip upstream.
pub fn headers(headers: &mut HeaderMap, client_ip: &HeaderValue, request_id: &HeaderValue) {
    strip_hop_by_hop(headers);
    strip_identity(headers);
    headers.insert(X_REQUEST_ID.clone(), request_id.clone());
    // X-Forwarded-For: append to what an earlier proxy said, as nginx's
    // $proxy_add_x_forwarded_for does; no allocation in the common case.
    let forwarded = match headers.get(&X_FORWARDED_FOR).and_then(|v| v.to_str().ok()) {
        Some(prior) => HeaderValue::from_str(&format!("{prior}, {}", client_ip.to_str().unwrap_or(""))).ok(),
        None => Some(client_ip.clone()),
    };
    if let Some(v) = forwarded {
        headers.insert(X_FORWARDED_FOR.clone(), v);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn claimed_identity_goes_and_forwarding_headers_come() {
        let mut h = HeaderMap::new();
        h.insert("x-user-id", HeaderValue::from_static("admin"));
        h.insert("x-username", HeaderValue::from_static("root"));
        h.insert("x-forwarded-for", HeaderValue::from_static("10.0.0.1"));
        h.insert(X_REQUEST_ID.clone(), HeaderValue::from_static("client-chosen"));
        headers(
            &mut h,
            &HeaderValue::from_static("127.0.0.1"),
            &HeaderValue::from_static("rid-1"),
        );
        assert!(!h.contains_key("x-user-id") && !h.contains_key("x-username"));
        assert_eq!(h["x-forwarded-for"], "10.0.0.1, 127.0.0.1");
        assert_eq!(h[&X_REQUEST_ID], "rid-1");
    }
}
