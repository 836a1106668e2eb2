//! Sanitize: what a client sends that must not reach a service as it
//! was sent. Hop-by-hop headers go, identity headers a client claims go
//! (only the gateway sets them, see [`super::identify::pass_on`]), and the
//! request gets its id, its `traceparent` and `X-Forwarded-For`.

use gantry_common::http::X_REQUEST_ID;
use gantry_common::trace::Hop;
#[cfg(test)]
use gantry_common::trace::TraceParent;
use http::{HeaderMap, HeaderName, HeaderValue};

use crate::headers::{strip_hop_by_hop, strip_identity};

static X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
static X_FORWARDED_PROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");

/// Cleans `headers` for the trip upstream; `trace` is the request's
/// [`Hop`], worked out before any stage ran so that even a request refused
/// early is logged with the trace-id it would have had.
pub fn headers(
    headers: &mut HeaderMap,
    client_ip: &HeaderValue,
    scheme: &HeaderValue,
    request_id: &HeaderValue,
    trace: &Hop,
) {
    strip_hop_by_hop(headers);
    strip_identity(headers);
    headers.insert(X_REQUEST_ID.clone(), request_id.clone());
    trace.apply(headers);
    // The scheme the client used, which only the edge knows: services build
    // absolute URLs and `Secure` cookies from it. A client's copy is
    // overwritten, never trusted.
    headers.insert(X_FORWARDED_PROTO.clone(), scheme.clone());
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
        let t = Hop::of(&h);
        h.insert("x-forwarded-proto", HeaderValue::from_static("https"));
        headers(
            &mut h,
            &HeaderValue::from_static("127.0.0.1"),
            &HeaderValue::from_static("http"),
            &HeaderValue::from_static("rid-1"),
            &t,
        );
        assert!(!h.contains_key("x-user-id") && !h.contains_key("x-username"));
        assert_eq!(h["x-forwarded-for"], "10.0.0.1, 127.0.0.1");
        assert_eq!(h["x-forwarded-proto"], "http", "the client's copy is overwritten");
        assert_eq!(h[&X_REQUEST_ID], "rid-1");
        assert_eq!(TraceParent::from_headers(&h), Some(t.next));
    }

    const INCOMING: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

    fn sanitized(sent: &[(&'static str, &'static str)]) -> (HeaderMap, TraceParent) {
        let mut h = HeaderMap::new();
        for (k, v) in sent {
            h.append(*k, HeaderValue::from_static(v));
        }
        let t = Hop::of(&h);
        let ip = HeaderValue::from_static("127.0.0.1");
        headers(
            &mut h,
            &ip,
            &HeaderValue::from_static("https"),
            &HeaderValue::from_static("rid"),
            &t,
        );
        (h, t.next)
    }

    #[test]
    fn a_valid_trace_is_continued_with_the_gateways_span_as_parent() {
        let (h, sent) = sanitized(&[("traceparent", INCOMING), ("tracestate", "v=1")]);
        let forwarded = TraceParent::from_headers(&h).expect("one valid traceparent goes on");
        assert_eq!(forwarded, sent);
        assert_eq!(forwarded.trace_id_hex(), "4bf92f3577b34da6a3ce929d0e0e4736");
        assert_ne!(h["traceparent"], INCOMING, "the gateway's own span is the parent");
        assert_eq!(h["tracestate"], "v=1");
    }

    #[test]
    fn a_malformed_or_missing_trace_is_never_passed_on() {
        for sent in [
            &[][..],
            &[("traceparent", "00-not-a-trace-01"), ("tracestate", "v=1")][..],
            &[("traceparent", INCOMING), ("traceparent", INCOMING)][..],
        ] {
            let (h, new) = sanitized(sent);
            assert_eq!(h.get_all("traceparent").iter().count(), 1, "{sent:?}");
            assert_eq!(TraceParent::from_headers(&h), Some(new), "{sent:?}");
            assert_ne!(new.trace_id_hex(), "4bf92f3577b34da6a3ce929d0e0e4736", "{sent:?}");
            assert!(!h.contains_key("tracestate"), "{sent:?}");
        }
    }
}
