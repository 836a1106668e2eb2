//! Sanitize: what a client sends that must not reach a service as it
//! was sent. Hop-by-hop headers go, identity headers a client claims go
//! (only the gateway sets them, see [`super::identify::pass_on`]), and the
//! request gets its id, its `traceparent` and the forwarding headers
//! (`X-Forwarded-For`, `-Proto`, `-Host`, `-Port`, `X-Real-IP`), which a
//! client can only add to when it is a trusted proxy.

use gantry_common::http::X_REQUEST_ID;
use gantry_common::trace::Hop;
#[cfg(test)]
use gantry_common::trace::TraceParent;
use http::header::{FORWARDED, HOST};
use http::{HeaderMap, HeaderName, HeaderValue};

use crate::headers::{strip_hop_by_hop, strip_identity};

static X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
static X_FORWARDED_PROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");
static X_FORWARDED_HOST: HeaderName = HeaderName::from_static("x-forwarded-host");
static X_FORWARDED_PORT: HeaderName = HeaderName::from_static("x-forwarded-port");
static X_REAL_IP: HeaderName = HeaderName::from_static("x-real-ip");

/// What the gateway knows of where a request came from, which only the
/// edge can know: the forwarding headers are made of it.
#[derive(Debug, Clone, Copy)]
pub struct Origin<'a> {
    /// The peer's address, made a header value once per connection.
    pub client_ip: &'a HeaderValue,
    /// The peer is a trusted proxy (`[edge] trusted_proxies`): what it says
    /// of the client is kept and added to.
    pub trusted: bool,
    /// `https` when the gateway terminates TLS, else `http`.
    pub scheme: &'a HeaderValue,
    /// The port the gateway listens on.
    pub port: &'a HeaderValue,
}

/// Cleans `headers` for the trip upstream; `trace` is the request's
/// [`Hop`], worked out before any stage ran so that even a request refused
/// early is logged with the trace-id it would have had.
pub fn headers(headers: &mut HeaderMap, origin: Origin<'_>, request_id: &HeaderValue, trace: &Hop) {
    strip_hop_by_hop(headers);
    strip_identity(headers);
    headers.insert(X_REQUEST_ID.clone(), request_id.clone());
    trace.apply(headers);
    if origin.trusted {
        // A proxy in front said who the client was: X-Forwarded-For gets
        // this hop appended, as nginx's $proxy_add_x_forwarded_for does,
        // and the rest is kept, or set where it said nothing.
        let prior: Vec<&str> = headers
            .get_all(&X_FORWARDED_FOR)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .collect();
        let forwarded = match prior.is_empty() {
            true => Some(origin.client_ip.clone()),
            false => HeaderValue::from_str(&format!(
                "{}, {}",
                prior.join(", "),
                origin.client_ip.to_str().unwrap_or("")
            ))
            .ok(),
        };
        if let Some(v) = forwarded {
            headers.insert(X_FORWARDED_FOR.clone(), v);
        }
        set_if_absent(headers, &X_REAL_IP, origin.client_ip);
        set_if_absent(headers, &X_FORWARDED_PROTO, origin.scheme);
        set_if_absent(headers, &X_FORWARDED_PORT, origin.port);
        if let Some(host) = headers.get(HOST).cloned() {
            set_if_absent(headers, &X_FORWARDED_HOST, &host);
        }
        return;
    }
    // Anyone else's say is replaced by what the gateway saw: services build
    // absolute URLs, `Secure` cookies, audit logs and rate limits from
    // these, so a client must not choose them. No allocation: each value
    // was made once (per connection, or at start) or is the request's own.
    headers.remove(FORWARDED);
    headers.insert(X_FORWARDED_FOR.clone(), origin.client_ip.clone());
    headers.insert(X_REAL_IP.clone(), origin.client_ip.clone());
    headers.insert(X_FORWARDED_PROTO.clone(), origin.scheme.clone());
    headers.insert(X_FORWARDED_PORT.clone(), origin.port.clone());
    match headers.get(HOST).cloned() {
        Some(host) => headers.insert(X_FORWARDED_HOST.clone(), host),
        None => headers.remove(&X_FORWARDED_HOST),
    };
}

fn set_if_absent(headers: &mut HeaderMap, name: &HeaderName, value: &HeaderValue) {
    if !headers.contains_key(name) {
        headers.insert(name.clone(), value.clone());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn origin(trusted: bool) -> Origin<'static> {
        static IP: HeaderValue = HeaderValue::from_static("127.0.0.1");
        static SCHEME: HeaderValue = HeaderValue::from_static("http");
        static PORT: HeaderValue = HeaderValue::from_static("8000");
        Origin {
            client_ip: &IP,
            trusted,
            scheme: &SCHEME,
            port: &PORT,
        }
    }

    /// What a client (or a proxy) might say of where the request came from.
    fn claimed() -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert("host", HeaderValue::from_static("api.example"));
        h.insert("x-forwarded-for", HeaderValue::from_static("10.0.0.1"));
        h.append("x-forwarded-for", HeaderValue::from_static("10.0.0.2"));
        h.insert("x-forwarded-proto", HeaderValue::from_static("https"));
        h.insert("x-forwarded-host", HeaderValue::from_static("evil.example"));
        h.insert("x-forwarded-port", HeaderValue::from_static("443"));
        h.insert("x-real-ip", HeaderValue::from_static("203.0.113.9"));
        h.insert("forwarded", HeaderValue::from_static("for=203.0.113.9;proto=https"));
        h
    }

    #[test]
    fn claimed_identity_goes_and_forwarding_headers_come() {
        let mut h = claimed();
        h.insert("x-user-id", HeaderValue::from_static("admin"));
        h.insert("x-username", HeaderValue::from_static("root"));
        h.insert(X_REQUEST_ID.clone(), HeaderValue::from_static("client-chosen"));
        let t = Hop::of(&h);
        headers(&mut h, origin(false), &HeaderValue::from_static("rid-1"), &t);
        assert!(!h.contains_key("x-user-id") && !h.contains_key("x-username"));
        assert_eq!(h.get_all("x-forwarded-for").iter().collect::<Vec<_>>(), ["127.0.0.1"]);
        assert_eq!(h["x-real-ip"], "127.0.0.1");
        assert_eq!(h["x-forwarded-proto"], "http", "the client's copy is overwritten");
        assert_eq!(h["x-forwarded-host"], "api.example", "the Host that was routed");
        assert_eq!(h["x-forwarded-port"], "8000");
        assert!(!h.contains_key("forwarded"));
        assert_eq!(h[&X_REQUEST_ID], "rid-1");
        assert_eq!(TraceParent::from_headers(&h), Some(t.next));
    }

    #[test]
    fn a_trusted_proxy_is_added_to_and_kept() {
        let mut h = claimed();
        let t = Hop::of(&h);
        headers(&mut h, origin(true), &HeaderValue::from_static("rid"), &t);
        assert_eq!(h["x-forwarded-for"], "10.0.0.1, 10.0.0.2, 127.0.0.1");
        assert_eq!(h["x-real-ip"], "203.0.113.9");
        assert_eq!(h["x-forwarded-proto"], "https");
        assert_eq!(h["x-forwarded-host"], "evil.example");
        assert_eq!(h["x-forwarded-port"], "443");
        assert_eq!(h["forwarded"], "for=203.0.113.9;proto=https");
        // A trusted proxy that said nothing: the gateway says it.
        let mut h = HeaderMap::new();
        h.insert("host", HeaderValue::from_static("api.example"));
        headers(&mut h, origin(true), &HeaderValue::from_static("rid"), &t);
        assert_eq!(h["x-forwarded-for"], "127.0.0.1");
        assert_eq!(h["x-forwarded-host"], "api.example");
        assert_eq!(h["x-forwarded-proto"], "http");
    }

    const INCOMING: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

    fn sanitized(sent: &[(&'static str, &'static str)]) -> (HeaderMap, TraceParent) {
        let mut h = HeaderMap::new();
        for (k, v) in sent {
            h.append(*k, HeaderValue::from_static(v));
        }
        let t = Hop::of(&h);
        headers(&mut h, origin(false), &HeaderValue::from_static("rid"), &t);
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
