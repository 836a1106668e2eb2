//! The request path: the gateway's own endpoints, identity, balancing,
//! retries; and the operator endpoints served on the admin listener.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use bytes::Bytes;
use gantry_common::error::ApiError;
use gantry_common::http::{MAX_BODY_BYTES, MAX_HEADER_BYTES, X_INSTANCE_ID, X_REQUEST_ID, header_bytes, request_id};
use gantry_common::session;
use http::header::{self, HeaderValue};
use http::{Method, Request, Response, StatusCode, Uri, Version};
use http_body_util::{BodyExt, Either, Full, Limited};
use hyper::body::{Body as _, Incoming};
use tokio::time::Instant;

use crate::config::GatewayConfig;
use crate::error::ProxyError;
use crate::headers::{strip_hop_by_hop, strip_identity};
use crate::identity::{Denied, Identity};
use crate::metrics::Metrics;
use crate::routes::{self, SERVICES};
use crate::upstream::{Clock, Endpoint, Upstream};

static X_FORWARDED_FOR: http::HeaderName = http::HeaderName::from_static("x-forwarded-for");

/// What the gateway answers with: an upstream's streamed body or its own.
pub type Body = Either<Incoming, Full<Bytes>>;

pub struct Gateway {
    pub cfg: GatewayConfig,
    pub upstreams: [Upstream; SERVICES.len()],
    pub identity: Arc<Identity>,
    pub metrics: Metrics,
    pub redis_ok: AtomicBool,
    /// Client connections open, over all workers, against the cap.
    pub connections: Arc<gantry_common::serve::Connections>,
    clock: Clock,
    instance_id: HeaderValue,
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

fn bearer(headers: &http::HeaderMap) -> Option<&str> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
}

fn cookie_session(headers: &http::HeaderMap) -> Option<&str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find_map(session::from_cookie_header)
}

impl Gateway {
    pub fn new(cfg: GatewayConfig, identity: Arc<Identity>, instance_id: &str) -> Self {
        Self {
            metrics: Metrics::new(cfg.workers),
            connections: gantry_common::serve::Connections::new(cfg.limits.max_connections),
            cfg,
            upstreams: Default::default(),
            identity,
            redis_ok: AtomicBool::new(false),
            clock: Clock::default(),
            instance_id: HeaderValue::from_str(instance_id).unwrap_or_else(|_| HeaderValue::from_static("gateway")),
        }
    }

    /// Answers one request. `client_ip` is the peer's address as a header
    /// value, made once per connection.
    pub async fn handle(&self, req: Request<Incoming>, client_ip: &HeaderValue) -> Response<Body> {
        let started = Instant::now();
        let rid = request_id(req.headers().get(&X_REQUEST_ID));
        let (mut response, service) = match self.dispatch(req, client_ip, &rid).await {
            Ok(answer) => answer,
            Err((e, service)) => (self.own_response(&e), service),
        };
        let headers = response.headers_mut();
        if !headers.contains_key(&X_REQUEST_ID) {
            headers.insert(X_REQUEST_ID.clone(), rid);
        }
        self.metrics
            .record(service, response.status().as_u16(), started.elapsed());
        response
    }

    /// An answer of the gateway's own (errors and admin endpoints).
    fn own_response(&self, e: &ApiError) -> Response<Body> {
        let mut r = Response::new(Either::Right(Full::new(Bytes::from(e.body()))));
        *r.status_mut() = e.status;
        let h = r.headers_mut();
        h.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
        h.insert(X_INSTANCE_ID.clone(), self.instance_id.clone());
        if e.status == StatusCode::UNAUTHORIZED {
            h.insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        if let Some(secs) = e.retry_after {
            h.insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        if e.status == StatusCode::REQUEST_TIMEOUT {
            // The rest of the body may still come: the connection is done.
            h.insert(header::CONNECTION, HeaderValue::from_static("close"));
        }
        r
    }

    fn own_body(&self, status: StatusCode, content_type: &'static str, body: String) -> Response<Body> {
        let mut r = Response::new(Either::Right(Full::new(Bytes::from(body))));
        *r.status_mut() = status;
        r.headers_mut()
            .insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
        r.headers_mut().insert(X_INSTANCE_ID.clone(), self.instance_id.clone());
        r
    }

    fn auth_urls(&self) -> Vec<String> {
        self.upstreams[0].base_urls()
    }

    async fn dispatch(
        &self,
        req: Request<Incoming>,
        client_ip: &HeaderValue,
        rid: &HeaderValue,
    ) -> Result<(Response<Body>, Option<usize>), (ApiError, Option<usize>)> {
        if header_bytes(req.headers()) > MAX_HEADER_BYTES {
            let e = ApiError::new(
                StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
                "headers_too_large",
                format!("request headers exceed {MAX_HEADER_BYTES} bytes"),
            );
            return Err((e, None));
        }
        let path = req.uri().path();
        let Some(route) = routes::find(path) else {
            return match (req.method(), path) {
                (&Method::GET, "/healthz") => Ok((
                    self.own_body(StatusCode::OK, "application/json", r#"{"status":"ok"}"#.into()),
                    None,
                )),
                // Status only: what is missing is for operators (admin listener).
                (&Method::GET, "/readyz") => {
                    let (status, body) = if self.readiness().0 {
                        (StatusCode::OK, r#"{"status":"ready"}"#)
                    } else {
                        (StatusCode::SERVICE_UNAVAILABLE, r#"{"status":"not_ready"}"#)
                    };
                    Ok((self.own_body(status, "application/json", body.into()), None))
                }
                (&Method::GET, "/openapi.json") => Ok((
                    self.own_body(StatusCode::OK, "application/json", crate::openapi::DOCUMENT.into()),
                    None,
                )),
                _ => Err((ApiError::not_found("no route for this path"), None)),
            };
        };
        let service = route.service;
        let fail = |e: ApiError| (e, Some(service));

        let (mut parts, body) = req.into_parts();
        strip_hop_by_hop(&mut parts.headers);
        strip_identity(&mut parts.headers);

        if route.requires_identity {
            let denied = if let Some(token) = bearer(&parts.headers) {
                self.identity.bearer(token, || self.auth_urls()).await.err()
            } else if let Some(sid) = cookie_session(&parts.headers) {
                match self.identity.session(sid, || self.auth_urls()).await {
                    Ok(authorization) => {
                        parts.headers.insert(header::AUTHORIZATION, authorization);
                        None
                    }
                    Err(d) => Some(d),
                }
            } else {
                Some(Denied::Unauthorized("a bearer token or session cookie is required"))
            };
            if let Some(d) = denied {
                return Err(fail(d.to_api_error()));
            }
        }

        let too_large = || {
            ApiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "body_too_large",
                format!("request body exceeds {MAX_BODY_BYTES} bytes"),
            )
        };
        let declared = parts
            .headers
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok());
        if declared.is_some_and(|n| n > MAX_BODY_BYTES as u64) {
            return Err(fail(too_large()));
        }
        // A deadline on the whole body: a client trickling it in must not
        // hold the connection (and this request's memory) for ever. A
        // request without a body (most GETs) skips it: no timer to set.
        let read = async {
            if body.is_end_stream() {
                return Ok(Ok(http_body_util::Collected::default()));
            }
            tokio::time::timeout(
                self.cfg.limits.body_timeout,
                Limited::new(body, MAX_BODY_BYTES).collect(),
            )
            .await
        };
        let body = match read.await {
            Ok(Ok(collected)) => collected.to_bytes(),
            Ok(Err(e)) if e.is::<http_body_util::LengthLimitError>() => return Err(fail(too_large())),
            Err(_) => {
                let timeout = gantry_common::config::format_duration(self.cfg.limits.body_timeout);
                return Err(fail(ApiError::new(
                    StatusCode::REQUEST_TIMEOUT,
                    "body_timeout",
                    format!("the request body did not arrive within {timeout}"),
                )));
            }
            Ok(Err(_)) => {
                return Err(fail(ApiError::bad_request(
                    "unreadable_body",
                    "the request body could not be read",
                )));
            }
        };

        parts.headers.insert(X_REQUEST_ID.clone(), rid.clone());
        // X-Forwarded-For: append to what an earlier proxy said, as nginx's
        // $proxy_add_x_forwarded_for does; no allocation in the common case.
        let forwarded = match parts.headers.get(&X_FORWARDED_FOR).and_then(|v| v.to_str().ok()) {
            Some(prior) => HeaderValue::from_str(&format!("{prior}, {}", client_ip.to_str().unwrap_or(""))).ok(),
            None => Some(client_ip.clone()),
        };
        if let Some(v) = forwarded {
            parts.headers.insert(X_FORWARDED_FOR.clone(), v);
        }

        let response = self.forward(service, parts, body).await.map_err(|e| {
            // The detail (instance, OS error) is for the log; the client gets
            // a generic message and the request id to quote.
            tracing::warn!(request_id = rid.to_str().unwrap_or_default(), service = SERVICES[service], error = %e, "upstream request failed");
            fail(e.to_api_error())
        })?;
        Ok((response, Some(service)))
    }

    /// Sends the request to an instance of `service`, retrying on others
    /// when that is safe, within the retry budget.
    async fn forward(
        &self,
        service: usize,
        parts: http::request::Parts,
        body: Bytes,
    ) -> Result<Response<Body>, ProxyError> {
        let upstream = &self.upstreams[service];
        let snapshot = upstream.snapshot.load();
        let idempotent = is_idempotent(&parts.method);
        let http::request::Parts {
            method,
            uri,
            mut headers,
            ..
        } = parts;
        // Upstreams get the origin form (`/path?query`), as nginx sends it.
        let mut uri = match (uri.scheme(), uri.path_and_query()) {
            (Some(_), Some(pq)) => Uri::from(pq.clone()),
            _ => uri,
        };
        let mut tried = [usize::MAX; 8];
        let mut attempts = 0usize;
        let mut last_error = ProxyError::NoInstance {
            service: SERVICES[service],
        };
        while attempts <= self.cfg.max_retries as usize {
            let now_ms = self.clock.now_ms();
            let Some(i) = upstream.pick(&snapshot, self.cfg.lb, &tried[..attempts], now_ms) else {
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
            let could_retry = attempts <= self.cfg.max_retries as usize && attempts < snapshot.endpoints.len();
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
                self.cfg.connect_timeout,
                &upstream.connects,
                request,
                now_ms,
            );
            let outcome = tokio::time::timeout(self.cfg.request_timeout, attempt).await;
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
                tracing::warn!(service = SERVICES[service], instance = %endpoint.id, ?backoff, error = %error, "ejected instance");
            }
            let retry = error.retry_safe(idempotent);
            last_error = error;
            if !retry {
                break;
            }
        }
        Err(last_error)
    }

    /// Answers a request to the admin listener: operator endpoints only.
    pub fn handle_admin<B>(&self, req: &Request<B>) -> Response<Body> {
        match (req.method(), req.uri().path()) {
            (&Method::GET, "/healthz") => {
                self.own_body(StatusCode::OK, "application/json", r#"{"status":"ok"}"#.into())
            }
            (&Method::GET, "/readyz") => {
                let (ready, body) = self.readiness();
                let status = if ready {
                    StatusCode::OK
                } else {
                    StatusCode::SERVICE_UNAVAILABLE
                };
                self.own_body(status, "application/json", body)
            }
            (&Method::GET, "/metrics") => {
                self.own_body(StatusCode::OK, "text/plain; version=0.0.4", self.render_metrics())
            }
            (&Method::GET, "/openapi.json") => self.own_body(
                StatusCode::OK,
                "application/json",
                crate::openapi::ADMIN_DOCUMENT.into(),
            ),
            _ => self.own_response(&ApiError::not_found("no such admin endpoint")),
        }
    }

    /// Whether the gateway is ready, and the detailed JSON body saying why not.
    fn readiness(&self) -> (bool, String) {
        let mut problems = Vec::new();
        let mut counts = serde_json::Map::new();
        for (name, upstream) in SERVICES.iter().zip(&self.upstreams) {
            let snap = upstream.snapshot.load();
            counts.insert((*name).into(), snap.endpoints.len().into());
            if !snap.received {
                problems.push(format!("no registry answer yet for {name}"));
            } else if snap.endpoints.is_empty() {
                problems.push(format!("no passing instance of {name}"));
            }
        }
        let redis = self.redis_ok.load(Ordering::Relaxed);
        if !redis {
            problems.push("redis unreachable".to_owned());
        }
        let keys = self.identity.keys().current().len();
        if keys == 0 {
            problems.push("no token verification keys yet (JWKS not fetched)".to_owned());
        }
        let ready = problems.is_empty();
        let body = serde_json::json!({
            "status": if ready { "ready" } else { "not_ready" },
            "instances": counts,
            "redis": if redis { "ok" } else { "unreachable" },
            "verification_keys": keys,
            "problems": problems,
        });
        (ready, body.to_string())
    }

    fn render_metrics(&self) -> String {
        use std::fmt::Write;
        let mut out = String::with_capacity(4096);
        self.metrics.render_requests(&mut out);
        let series = [
            (
                "gantry_gateway_upstream_retries_total",
                "Retries on another instance.",
                0,
            ),
            (
                "gantry_gateway_upstream_ejections_total",
                "Instances ejected after a failure.",
                1,
            ),
            ("gantry_gateway_upstream_failures_total", "Failed upstream attempts.", 2),
            (
                "gantry_gateway_upstream_connects_total",
                "Upstream connections opened (idle ones are reused).",
                3,
            ),
        ];
        for (name, help, which) in series {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} counter");
            for (service, u) in SERVICES.iter().zip(&self.upstreams) {
                let v = [&u.retries, &u.ejections, &u.failures, &u.connects][which].load(Ordering::Relaxed);
                let _ = writeln!(out, "{name}{{service=\"{service}\"}} {v}");
            }
        }
        out.push_str("# HELP gantry_gateway_upstream_requests_total Attempts sent to each current instance.\n");
        out.push_str("# TYPE gantry_gateway_upstream_requests_total counter\n");
        for (service, u) in SERVICES.iter().zip(&self.upstreams) {
            for e in &u.snapshot.load().endpoints {
                let _ = writeln!(
                    out,
                    "gantry_gateway_upstream_requests_total{{service=\"{service}\",instance=\"{}\"}} {}",
                    e.id,
                    e.requests.load(Ordering::Relaxed)
                );
            }
        }
        let stats = &self.identity.stats;
        let sum = |read: fn(&crate::identity::IdentityStats) -> &std::sync::atomic::AtomicU64| -> u64 {
            stats.all().map(|s| read(s).load(Ordering::Relaxed)).sum()
        };
        let identity: [(&str, u64); 6] = [
            ("gantry_gateway_token_cache_hits_total", sum(|s| &s.token_hits)),
            ("gantry_gateway_token_cache_misses_total", sum(|s| &s.token_misses)),
            ("gantry_gateway_session_cache_hits_total", sum(|s| &s.session_hits)),
            ("gantry_gateway_session_lookups_total", sum(|s| &s.session_lookups)),
            ("gantry_gateway_revocations_total", sum(|s| &s.revocations)),
            (
                "gantry_gateway_denylist_unanswered_total",
                sum(|s| &s.denylist_unanswered),
            ),
        ];
        for (name, v) in identity {
            let _ = writeln!(out, "# TYPE {name} counter\n{name} {v}");
        }
        let _ = writeln!(
            out,
            "# HELP gantry_gateway_connections_open Client connections open.\n\
             # TYPE gantry_gateway_connections_open gauge\n\
             gantry_gateway_connections_open {}\n\
             # HELP gantry_gateway_connections_refused_total Client connections refused at the connection cap.\n\
             # TYPE gantry_gateway_connections_refused_total counter\n\
             gantry_gateway_connections_refused_total {}",
            self.connections.open(),
            self.connections.refused()
        );
        out
    }
}
