//! Forward: the last stage. The request goes to an instance of its
//! service, chosen by the service's balancing policy; a failure that is
//! safe to retry is retried on another instance, within the retry budget.

use std::sync::atomic::Ordering;

use bytes::Bytes;
use http::header::{self, HeaderValue};
use http::uri::PathAndQuery;
use http::{Method, Request, Response, Uri, Version};
use http_body_util::{Either, Full};

use crate::error::ProxyError;
use crate::headers::strip_hop_by_hop;
use crate::proxy::{Body, Gateway};
use crate::routes::strip_prefix;
use crate::snapshot::Service;
use crate::upstream::Endpoint;

/// The URI the service is sent: the origin form (`/path?query`), as nginx
/// sends it, with `strip` taken off the path when the route strips its
/// prefix. `None` only if the rewritten path is not a valid URI path, which
/// a path the prefix matched cannot be. Takes the URI by value: without a
/// prefix to strip, the common origin-form request passes as it came.
pub fn upstream_uri(uri: Uri, strip: Option<&str>) -> Option<Uri> {
    let Some(prefix) = strip else {
        return Some(match (uri.scheme(), uri.path_and_query()) {
            (Some(_), Some(pq)) => Uri::from(pq.clone()),
            _ => uri,
        });
    };
    let path = strip_prefix(prefix, uri.path());
    let rewritten = match uri.query() {
        Some(query) => format!("{path}?{query}"),
        None => path.to_owned(),
    };
    PathAndQuery::try_from(rewritten).ok().map(Uri::from)
}

/// Decrements an endpoint's in-flight count however the attempt ends,
/// including when the caller goes away and the future is dropped.
struct InFlight<'a>(&'a Endpoint);

impl<'a> InFlight<'a> {
    fn start(e: &'a Endpoint) -> Self {
        e.outstanding.fetch_add(1, Ordering::Relaxed);
        e.requests.fetch_add(1, Ordering::Relaxed);
        Self(e)
    }
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.outstanding.fetch_sub(1, Ordering::Relaxed);
    }
}

fn is_idempotent(method: &Method) -> bool {
    matches!(
        *method,
        Method::GET | Method::HEAD | Method::OPTIONS | Method::PUT | Method::DELETE | Method::TRACE
    )
}

impl Gateway {
    /// Sends the request to an instance of `service`, retrying on others
    /// when that is safe, within the service's retry budget.
    pub(crate) async fn forward(
        &self,
        service: &Service,
        parts: http::request::Parts,
        body: Bytes,
    ) -> Result<Response<Body>, ProxyError> {
        let policy = service.policy;
        let upstream = &*service.upstream;
        let snapshot = upstream.snapshot.load();
        let idempotent = is_idempotent(&parts.method);
        let http::request::Parts {
            method,
            mut uri,
            mut headers,
            ..
        } = parts;
        // Retries are at most `declared::MAX_RETRIES` (5): this holds them all.
        let mut tried = [usize::MAX; 8];
        let mut attempts = 0usize;
        let mut last_error = None;
        while attempts <= policy.retries as usize {
            let now_ms = self.clock.now_ms();
            let Some(i) = upstream.pick(&snapshot, policy.lb, &tried[..attempts], now_ms) else {
                break;
            };
            tried[attempts] = i;
            attempts += 1;
            if attempts > 1 {
                upstream.retries.fetch_add(1, Ordering::Relaxed);
            }
            let endpoint = &snapshot.endpoints[i];
            // Copy the request only when another attempt could still need
            // it; the last possible attempt (the only one, with one
            // instance) takes it, so the common case copies nothing.
            let could_retry = attempts <= policy.retries as usize && attempts < snapshot.endpoints.len();
            let mut request = Request::new(Full::new(body.clone()));
            *request.method_mut() = method.clone();
            *request.version_mut() = Version::HTTP_11;
            if could_retry {
                *request.uri_mut() = uri.clone();
                *request.headers_mut() = headers.clone();
            } else {
                *request.uri_mut() = std::mem::take(&mut uri);
                *request.headers_mut() = std::mem::take(&mut headers);
            }
            if !request.headers().contains_key(header::HOST) {
                let host = HeaderValue::from_str(endpoint.authority.as_str());
                request
                    .headers_mut()
                    .insert(header::HOST, host.expect("an authority is a header value"));
            }

            let in_flight = InFlight::start(endpoint);
            let attempt = endpoint.pool.send(
                &endpoint.authority,
                policy.connect_timeout,
                &upstream.connects,
                request,
                now_ms,
            );
            let outcome = tokio::time::timeout(policy.request_timeout, attempt).await;
            drop(in_flight);
            let error = match outcome {
                Ok(Ok(mut response)) => {
                    endpoint.succeeded();
                    strip_hop_by_hop(response.headers_mut());
                    return Ok(response.map(Either::Left));
                }
                Ok(Err(e)) => ProxyError::from_send(&endpoint.id, e),
                Err(_) => ProxyError::Timeout {
                    instance: endpoint.id.clone(),
                },
            };
            upstream.failures.fetch_add(1, Ordering::Relaxed);
            if error.ejects() {
                let backoff = endpoint.eject(self.clock.now_ms());
                upstream.ejections.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(service = %service.name, instance = %endpoint.id, ?backoff, error = %error, "ejected instance");
            }
            let retry = error.retry_safe(idempotent);
            last_error = Some(error);
            if !retry {
                break;
            }
        }
        Err(last_error.unwrap_or_else(|| ProxyError::NoInstance {
            service: (*service.name).into(),
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rewritten(uri: &str, strip: Option<&str>) -> String {
        upstream_uri(uri.parse().unwrap(), strip).unwrap().to_string()
    }

    #[test]
    fn the_service_gets_the_origin_form_with_the_prefix_stripped_if_asked() {
        assert_eq!(rewritten("/greet/x?q=1", Some("/greet")), "/x?q=1");
        assert_eq!(rewritten("/greet", Some("/greet")), "/");
        assert_eq!(rewritten("/greet/", Some("/greet")), "/");
        assert_eq!(rewritten("/greet?q=1", Some("/greet")), "/?q=1");
        assert_eq!(rewritten("http://h.example/greet/x?q=1", Some("/greet")), "/x?q=1");
        assert_eq!(rewritten("/greet/x?q=1", None), "/greet/x?q=1");
        assert_eq!(rewritten("http://h.example/greet/x?q=1", None), "/greet/x?q=1");
        assert_eq!(rewritten("/x", Some("/")), "/x");
    }
}
