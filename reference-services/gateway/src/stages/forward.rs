//! Forward: the last stage. The request goes to an instance of its
//! service, chosen by the service's balancing policy; a failure or an
//! answer its `retry_on` covers is retried on another instance, within the
//! retry budget, and every attempt feeds outlier detection.

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
use crate::upstream::{Endpoint, Outcome, Snapshot, Upstream};

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

/// Counts a request among its service's retries in flight (the retry
/// budget's numerator) from its first retry until it ends.
struct Retrying<'a>(&'a Upstream);

impl<'a> Retrying<'a> {
    /// Takes a place among the service's retries in flight if the budget
    /// admits one more with `in_flight` requests in flight: checked and
    /// taken in one step, so two requests cannot both take the last place.
    fn take(u: &'a Upstream, in_flight: usize, policy: &crate::policy::Policy) -> Option<Self> {
        let before = u
            .retrying
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |now| {
                policy.budget_admits(in_flight, now).then_some(now + 1)
            })
            .ok()?;
        u.retrying_peak.fetch_max(before + 1, Ordering::Relaxed);
        Some(Self(u))
    }
}

impl Drop for Retrying<'_> {
    fn drop(&mut self) {
        self.0.retrying.fetch_sub(1, Ordering::Relaxed);
    }
}

impl Gateway {
    /// Sends the request to an instance of `service`, retrying on others
    /// what the service's `retry_on` covers, within its retry budget, and
    /// telling outlier detection how each attempt went.
    pub(crate) async fn forward(
        &self,
        service: &Service,
        parts: http::request::Parts,
        body: Bytes,
    ) -> Result<Response<Body>, ProxyError> {
        let policy = &service.policy;
        let upstream = &*service.upstream;
        let snapshot = upstream.snapshot.load();
        let idempotent = is_idempotent(&parts.method);
        let http::request::Parts {
            method,
            mut uri,
            mut headers,
            ..
        } = parts;
        // Retries are at most `policy::MAX_RETRIES` (5): this holds them all.
        let mut tried = [usize::MAX; 8];
        let mut attempts = 0usize;
        // What the client gets when no attempt settles it: the last failure,
        // or the last answer that was retried (as Envoy returns it).
        let mut last: Option<Result<Response<Body>, ProxyError>> = None;
        let mut retrying: Option<Retrying<'_>> = None;
        while attempts <= policy.retries as usize {
            let now_ms = self.clock.now_ms();
            let Some(i) = upstream.pick(&snapshot, policy.lb, &tried[..attempts], now_ms) else {
                break;
            };
            if attempts > 0 {
                let in_flight = upstream.in_flight(&snapshot) + 1;
                let admitted = match &retrying {
                    // Its place is held: it must still fit beside the others'.
                    Some(_) => policy.budget_admits(in_flight, upstream.retrying.load(Ordering::Relaxed) - 1),
                    None => match Retrying::take(upstream, in_flight, policy) {
                        Some(place) => {
                            retrying = Some(place);
                            true
                        }
                        None => false,
                    },
                };
                if !admitted {
                    upstream.retry_overflow.fetch_add(1, Ordering::Relaxed);
                    break;
                }
                upstream.retries.fetch_add(1, Ordering::Relaxed);
            }
            tried[attempts] = i;
            attempts += 1;
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
                    let status = response.status().as_u16();
                    self.observe(service, &snapshot, endpoint, Outcome::Answered(status));
                    strip_hop_by_hop(response.headers_mut());
                    let response = response.map(Either::Left);
                    if !(could_retry && idempotent && policy.retry_on.retries_status(status)) {
                        return Ok(response);
                    }
                    upstream.failures.fetch_add(1, Ordering::Relaxed);
                    last = Some(Ok(response));
                    continue;
                }
                Ok(Err(e)) => ProxyError::from_send(&endpoint.id, e),
                Err(_) => ProxyError::Timeout {
                    instance: endpoint.id.clone(),
                },
            };
            upstream.failures.fetch_add(1, Ordering::Relaxed);
            if error.counts_against_instance() {
                self.observe(service, &snapshot, endpoint, Outcome::LocalFailure);
            }
            let retry = error.retried_under(&policy.retry_on, idempotent);
            last = Some(Err(error));
            if !retry {
                break;
            }
        }
        last.unwrap_or_else(|| {
            Err(ProxyError::NoInstance {
                service: (*service.name).into(),
            })
        })
    }

    /// Outlier detection: counts `outcome` for `endpoint` and ejects it when
    /// a detector trips and `max_ejection_percent` allows.
    fn observe(&self, service: &Service, snapshot: &Snapshot, endpoint: &Endpoint, outcome: Outcome) {
        let o = &service.policy.outlier;
        let Some(why) = endpoint.observe(outcome, o) else {
            return;
        };
        let upstream = &service.upstream;
        match upstream.eject(snapshot, endpoint, why, o, self.clock.now_ms()) {
            Some(time) => tracing::warn!(
                service = %service.name,
                instance = %endpoint.id,
                detector = why.name(),
                ejected_for = ?time,
                "ejected instance"
            ),
            None => tracing::warn!(
                service = %service.name,
                instance = %endpoint.id,
                detector = why.name(),
                "not ejected: max_ejection_percent of the service's instances are out already"
            ),
        }
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
