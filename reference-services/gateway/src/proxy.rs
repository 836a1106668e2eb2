//! The request path, as named stages (Pingora's `ProxyHttp` phases are the
//! model): **normalize** (one meaning: path, Host, credentials, header
//! names; or 400), **route** (which service, or 404/405), **sanitize** (headers a
//! client must not control), **identity** (who is calling, as the route
//! demands), **body** (read within limits), **forward** (to an instance,
//! with retries). Each stage is a small function in [`crate::stages`];
//! [`Gateway::dispatch`] reads as the list of them.

use std::net::IpAddr;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use arc_swap::ArcSwap;
use bytes::Bytes;
use gantry_common::error::ApiError;
use gantry_common::http::{MAX_HEADER_BYTES, X_INSTANCE_ID, X_REQUEST_ID, header_bytes, request_id};
use gantry_common::trace::Hop;
use http::header::{self, HeaderValue};
use http::{Request, Response, StatusCode};
use http_body_util::{Either, Full};
use hyper::body::Incoming;
use tokio::time::Instant;

use crate::config::GatewayConfig;
use crate::identity::Identity;
use crate::metrics::Metrics;
use crate::reload::ReloadCounts;
use crate::routes::Lookup;
use crate::snapshot::{Routing, ServiceId};
use crate::stages;
use crate::upstream::Clock;

/// What the gateway answers with: an upstream's streamed body or its own.
pub type Body = Either<Incoming, Full<Bytes>>;

/// One request's context, shared by its stages (Pingora's `CTX`): made
/// once when it arrives, and filled in as the stages learn about it.
pub struct RequestCtx<'a> {
    /// The configuration in force for the whole request.
    pub routing: &'a Routing,
    pub peer: &'a Peer,
    /// Its `X-Request-Id`: the client's when well-formed, else a new one.
    pub request_id: HeaderValue,
    /// Its hop of the W3C trace (the caller's trace, the gateway's span).
    pub trace: Hop,
    /// The service its route leads to, once routed: the metrics count the
    /// answer against it, the gateway's own answers under "none".
    pub service: Option<ServiceId>,
}

pub struct Gateway {
    pub cfg: GatewayConfig,
    /// The configuration in force; a reload swaps in a new one.
    pub routing: ArcSwap<Routing>,
    pub identity: Arc<Identity>,
    pub metrics: Metrics,
    pub redis_ok: AtomicBool,
    /// Client connections open, over all workers, against the cap.
    pub connections: Arc<gantry_common::serve::Connections>,
    pub reloads: ReloadCounts,
    pub(crate) clock: Clock,
    instance_id: HeaderValue,
    /// `https` when this gateway terminates TLS, else `http`: the scheme
    /// clients used, sent upstream as `X-Forwarded-Proto`.
    scheme: HeaderValue,
    /// The public port, sent upstream as `X-Forwarded-Port`.
    port: HeaderValue,
}

/// The other end of a client connection, worked out once per connection.
#[derive(Debug, Clone)]
pub struct Peer {
    pub ip: IpAddr,
    /// `ip` as a header value (`X-Forwarded-For`, `X-Real-IP`).
    pub ip_header: HeaderValue,
}

impl Peer {
    pub fn new(ip: IpAddr) -> Self {
        let ip_header = HeaderValue::from_str(&ip.to_string()).expect("an IP address is a header value");
        Self { ip, ip_header }
    }
}

impl Gateway {
    pub fn new(cfg: GatewayConfig, routing: Routing, identity: Arc<Identity>, instance_id: &str, port: u16) -> Self {
        let scheme = HeaderValue::from_static(if cfg.tls.is_some() { "https" } else { "http" });
        Self {
            metrics: Metrics::new(cfg.workers),
            connections: gantry_common::serve::Connections::new(cfg.limits.max_connections),
            cfg,
            routing: ArcSwap::from_pointee(routing),
            identity,
            redis_ok: AtomicBool::new(false),
            reloads: ReloadCounts::default(),
            clock: Clock::default(),
            instance_id: HeaderValue::from_str(instance_id).unwrap_or_else(|_| HeaderValue::from_static("gateway")),
            scheme,
            port: HeaderValue::from(port),
        }
    }

    /// Answers one request from `peer`.
    pub async fn handle(&self, req: Request<Incoming>, peer: &Peer) -> Response<Body> {
        let started = Instant::now();
        // The access line is off the hot path unless debug logging is on:
        // only then is anything of the request kept for it.
        let access = tracing::enabled!(tracing::Level::DEBUG).then(|| (req.method().clone(), req.uri().clone()));
        // One configuration for the whole request, even if a reload lands meanwhile.
        let routing = self.routing.load();
        let mut ctx = RequestCtx {
            routing: &routing,
            peer,
            request_id: request_id(req.headers().get(&X_REQUEST_ID)),
            trace: Hop::of(req.headers()),
            service: None,
        };
        let mut response = match self.dispatch(&mut ctx, req).await {
            Ok(answer) => answer,
            Err(e) => self.own_response(&e),
        };
        if let Some((method, uri)) = access {
            tracing::debug!(
                request_id = ctx.request_id.to_str().unwrap_or_default(),
                trace_id = %ctx.trace.next.trace_id_hex(),
                %method,
                path = uri.path(),
                status = response.status().as_u16(),
                took_ms = started.elapsed().as_secs_f64() * 1000.0,
                "answered"
            );
        }
        // The context's last use: its request id moves into the answer.
        let RequestCtx {
            request_id, service, ..
        } = ctx;
        let headers = response.headers_mut();
        if !headers.contains_key(&X_REQUEST_ID) {
            headers.insert(X_REQUEST_ID.clone(), request_id);
        }
        let upstream = service.map(|id| &*routing.service(id).upstream);
        self.metrics
            .record(upstream, response.status().as_u16(), started.elapsed());
        response
    }

    /// The stages, in order, over one request and its context.
    async fn dispatch(&self, ctx: &mut RequestCtx<'_>, req: Request<Incoming>) -> Result<Response<Body>, ApiError> {
        if header_bytes(req.headers()) > MAX_HEADER_BYTES {
            return Err(ApiError::new(
                StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
                "headers_too_large",
                format!("request headers exceed {MAX_HEADER_BYTES} bytes"),
            ));
        }
        let routing = ctx.routing;
        let (mut parts, body) = req.into_parts();

        // Normalize: one meaning (path, Host, credentials, header names)
        // before anything reads the request, or a 400.
        stages::normalize::request(&mut parts, &routing.edge)?;
        if let Some(own) = self.public_endpoint(&parts.method, parts.uri.path()) {
            return Ok(own);
        }

        // Route: which service, and what the route asks of the request.
        let route = match stages::route::find(routing, &parts) {
            Lookup::Found(route) => route,
            Lookup::WrongMethod(allow) => return Ok(self.method_not_allowed(allow)),
            Lookup::NotFound => return Err(ApiError::not_found("no route for this path")),
        };
        ctx.service = Some(route.service);
        let service = routing.service(route.service);

        // Sanitize: nothing hop-by-hop, no client-claimed identity; our
        // request id, our span of the trace and the forwarding headers.
        let origin = stages::sanitize::Origin {
            client_ip: &ctx.peer.ip_header,
            trusted: routing.edge.trusts(ctx.peer.ip),
            scheme: &self.scheme,
            port: &self.port,
        };
        stages::sanitize::headers(&mut parts.headers, origin, &ctx.request_id, &ctx.trace);

        // Identity: verified as the route demands; passed on as headers if it asks.
        let caller = stages::identify::caller(&self.identity, route.identity, &mut parts.headers, || {
            routing.jwks_urls()
        })
        .await
        .map_err(|d| d.to_api_error())?;
        stages::identify::keep_verified(&mut parts.headers, caller.as_ref(), route.pass_credentials);
        if route.identity_headers {
            stages::identify::pass_on(&mut parts.headers, caller.as_ref());
        }

        // Body: whole, within its size and time limits.
        let body = stages::body::read(&parts.headers, body, self.cfg.limits.body_timeout).await?;

        // Forward: the path the service sees, then an instance, retrying when safe.
        let strip = route.strip_prefix.then_some(&*route.prefix);
        parts.uri = stages::forward::upstream_uri(std::mem::take(&mut parts.uri), strip)
            .ok_or_else(|| ApiError::bad_request("bad_path", "the request path could not be rewritten"))?;
        self.forward(service, parts, body).await.map_err(|e| {
            // The detail (instance, OS error) is for the log; the client gets
            // a generic message and the request id to quote.
            tracing::warn!(
                request_id = ctx.request_id.to_str().unwrap_or_default(),
                trace_id = %ctx.trace.next.trace_id_hex(),
                service = %service.name,
                error = %e,
                "upstream request failed"
            );
            e.to_api_error()
        })
    }

    /// An answer of the gateway's own (errors and admin endpoints).
    pub(crate) fn own_response(&self, e: &ApiError) -> Response<Body> {
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

    pub(crate) fn own_body(&self, status: StatusCode, content_type: &'static str, body: String) -> Response<Body> {
        let mut r = Response::new(Either::Right(Full::new(Bytes::from(body))));
        *r.status_mut() = status;
        r.headers_mut()
            .insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
        r.headers_mut().insert(X_INSTANCE_ID.clone(), self.instance_id.clone());
        r
    }

    /// 405 for a path whose routes take other methods, saying which (RFC 9110 §15.5.6).
    fn method_not_allowed(&self, allow: &HeaderValue) -> Response<Body> {
        let e = ApiError::new(
            StatusCode::METHOD_NOT_ALLOWED,
            "method_not_allowed",
            "this path does not accept this method; see the Allow header",
        );
        let mut r = self.own_response(&e);
        r.headers_mut().insert(header::ALLOW, allow.clone());
        r
    }
}
