//! The HTTP face of the dev registry: Consul's paths, JSON field names,
//! status codes and blocking-query headers.

mod agent;
mod catalog;
mod decode;
mod health;
pub(crate) mod json;
mod kv;
mod node;
mod register;
mod session;
mod txn;

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get, put};
use http_body_util::{BodyExt, Limited};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::acl::{self, Access, Acl};
use crate::catalog::CatalogError;
use crate::state::Registry;
use gantry_common::config::parse_duration;

/// Consul's default and maximum `wait` for blocking queries.
pub const DEFAULT_WAIT: Duration = Duration::from_secs(300);
pub const MAX_WAIT: Duration = Duration::from_secs(600);

/// The largest request body read: axum's default limit, which the
/// endpoints' `Bytes` bodies had before [`body_within`] read them.
pub const MAX_BODY_BYTES: usize = 2 * 1024 * 1024;

/// The API, reading each request body within `body_timeout`
/// ([`gantry_common::serve::Limits::body_timeout`]).
pub fn router(registry: Arc<Registry>, acl: Acl, body_timeout: Duration) -> Router {
    Router::new()
        .route("/v1/agent/service/register", put(register::register))
        .route("/v1/agent/service/deregister/{id}", put(agent::deregister))
        .route("/v1/agent/service/{id}", get(agent::service))
        .route("/v1/agent/check/register", put(agent::check_register))
        .route("/v1/agent/check/deregister/{id}", put(agent::check_deregister))
        .route("/v1/agent/service/maintenance/{id}", put(agent::service_maintenance))
        .route("/v1/agent/maintenance", put(agent::node_maintenance))
        .route("/v1/agent/self", get(node::agent_self))
        .route("/v1/agent/members", get(node::members))
        .route("/v1/catalog/nodes", get(node::nodes))
        .route("/v1/catalog/node/{node}", get(node::node))
        .route(
            "/v1/catalog/datacenters",
            get(|| async { axum::Json([json::DATACENTER]) }),
        )
        .route("/v1/status/peers", get(|| async { axum::Json([node::SERVER_ADDR]) }))
        .route("/v1/agent/check/pass/{id}", put(agent::check_pass))
        .route("/v1/agent/check/warn/{id}", put(agent::check_warn))
        .route("/v1/agent/check/fail/{id}", put(agent::check_fail))
        .route("/v1/agent/check/update/{id}", put(agent::check_update))
        .route("/v1/agent/services", get(agent::services))
        .route("/v1/agent/checks", get(agent::checks))
        .route("/v1/health/service/{name}", get(health::service))
        .route("/v1/health/checks/{name}", get(health::checks))
        .route("/v1/health/state/{state}", get(health::state))
        .route("/v1/catalog/services", get(catalog::services))
        .route("/v1/catalog/service/{name}", get(catalog::service))
        .route("/v1/kv/", any(kv::kv))
        .route("/v1/kv/{*key}", any(kv::kv))
        .route("/v1/txn", put(txn::txn))
        .route("/v1/session/create", put(session::create))
        .route("/v1/session/destroy/{id}", put(session::destroy))
        .route("/v1/session/renew/{id}", put(session::renew))
        .route("/v1/session/info/{id}", get(session::info))
        .route("/v1/session/list", get(session::list))
        .route("/v1/session/node/{node}", get(session::node))
        .route("/v1/status/leader", get(|| async { axum::Json(node::SERVER_ADDR) }))
        .fallback(|| async { (StatusCode::NOT_FOUND, "404 page not found\n") })
        // Inside the ACL check: a refused write is refused before its body is read.
        .layer(axum::middleware::from_fn_with_state(body_timeout, body_within))
        .layer(axum::middleware::from_fn_with_state(Arc::new(acl), acl::enforce))
        .with_state(registry)
}

/// Reads the whole request body within `deadline` before any handler
/// runs, so a client that trickles a body holds its connection for a
/// bounded time, as on every other listener: 408 after the deadline, 413
/// past [`MAX_BODY_BYTES`], 400 when the body breaks off (plain text, as
/// Consul answers errors).
async fn body_within(State(deadline): State<Duration>, req: Request, next: Next) -> Response {
    let (parts, body) = req.into_parts();
    let collected = tokio::time::timeout(deadline, Limited::new(body, MAX_BODY_BYTES).collect()).await;
    let bytes = match collected {
        Ok(Ok(collected)) => collected.to_bytes(),
        Ok(Err(e)) if e.is::<http_body_util::LengthLimitError>() => {
            return refuse(
                StatusCode::PAYLOAD_TOO_LARGE,
                format!("Request body exceeds {MAX_BODY_BYTES} bytes"),
            );
        }
        Ok(Err(_)) => return refuse(StatusCode::BAD_REQUEST, "Request body could not be read"),
        Err(_) => {
            return refuse(
                StatusCode::REQUEST_TIMEOUT,
                format!("Request body did not arrive within {deadline:?}"),
            );
        }
    };
    next.run(Request::from_parts(parts, Body::from(bytes))).await
}

/// Consul answers errors as plain text with a status; so do we.
fn refuse(status: StatusCode, text: impl Into<String>) -> Response {
    (status, text.into()).into_response()
}

/// A write's answer as Consul gives it: 200 with an empty body, or the
/// refusal's status and reason.
fn written(result: Result<(), CatalogError>) -> Response {
    match result {
        Ok(()) => StatusCode::OK.into_response(),
        Err(e) => refused(&e),
    }
}

/// A refused write: 404 for what is not there, 409 for a precondition
/// that did not hold, 400 for the rest.
fn refused(e: &CatalogError) -> Response {
    let status = match e {
        CatalogError::UnknownService(_) | CatalogError::UnknownCheck(_) | CatalogError::NotFound(_) => {
            StatusCode::NOT_FOUND
        }
        CatalogError::Conflict(_) => StatusCode::CONFLICT,
        CatalogError::OutOfRange(_) | CatalogError::NotTtl(_) | CatalogError::Invalid(_) => StatusCode::BAD_REQUEST,
    };
    refuse(status, e.to_string())
}

/// A read's answer: its result `body` (a JSON array or object) as `access`
/// may see it, with the blocking `index` when the endpoint has one. The
/// anonymous token (ACLs' default deny) sees an empty result of the same
/// shape, and Consul's header says results were filtered when there were any.
/// A read as Consul's blocking queries make it: `?index`/`?wait` parsed,
/// then (with an index) a wait until `index_of` moves past it or the wait
/// ends, then `body` read at the index it is answered with.
/// An endpoint that takes `?filter=` names the `shape` of its entries.
async fn blocking_read(
    reg: &Registry,
    access: Access,
    q: BlockingQuery,
    shape: Option<crate::filter::Shape>,
    index_of: impl Fn(&crate::catalog::Catalog) -> u64,
    body: impl FnOnce(&crate::catalog::Catalog) -> Value,
) -> Response {
    let (index, wait) = match q.parse() {
        Ok(p) => p,
        Err(r) => return *r,
    };
    let filter = match shape.map(|s| q.filter(s)).transpose() {
        Ok(f) => f.flatten(),
        Err(r) => return *r,
    };
    reg.block_until(index, wait, &index_of).await;
    let (index, body) = reg.read(|c| (index_of(c), body(c)));
    read_answer(access, Some(index), filtered(body, filter.as_ref()))
}

fn read_answer(access: Access, index: Option<u64>, body: Value) -> Response {
    let (body, hidden) = match body {
        Value::Array(a) if !access.can_read() => (json!([]), !a.is_empty()),
        Value::Object(m) if !access.can_read() => (json!({}), !m.is_empty()),
        body => (body, false),
    };
    let mut resp = match index {
        Some(index) => with_index(index, body),
        None => axum::Json(body).into_response(),
    };
    if hidden {
        resp.headers_mut()
            .insert(acl::FILTERED_HEADER, HeaderValue::from_static("true"));
    }
    resp
}

/// Blocking-query parameters, as Consul reads them.
#[derive(Deserialize, Default)]
struct BlockingQuery {
    index: Option<String>,
    wait: Option<String>,
    passing: Option<String>,
    hash: Option<String>,
    filter: Option<String>,
}

impl BlockingQuery {
    fn wait(&self) -> Result<Duration, Box<Response>> {
        match self.wait.as_deref() {
            None | Some("") => Ok(DEFAULT_WAIT),
            Some(text) => match parse_duration(text) {
                Some(w) => Ok(w.min(MAX_WAIT)),
                None => Err(Box::new(refuse(StatusCode::BAD_REQUEST, "Invalid wait time"))),
            },
        }
    }

    fn parse(&self) -> Result<(Option<u64>, Duration), Box<Response>> {
        let index = match self.index.as_deref() {
            None | Some("") => None,
            Some(text) => match text.parse::<u64>() {
                Ok(i) => Some(i),
                Err(_) => return Err(Box::new(refuse(StatusCode::BAD_REQUEST, "Invalid index"))),
            },
        };
        Ok((index, self.wait()?))
    }

    /// `?filter=`, checked against the `shape` of the endpoint's entries
    /// (400 naming what is wrong; Consul answers 500, but the fault is
    /// the request's); `None` when absent or empty.
    fn filter(&self, shape: crate::filter::Shape) -> Result<Option<crate::filter::Filter>, Box<Response>> {
        match self.filter.as_deref().filter(|f| !f.trim().is_empty()) {
            None => Ok(None),
            Some(text) => crate::filter::Filter::new(text, shape)
                .map(Some)
                .map_err(|e| Box::new(refuse(StatusCode::BAD_REQUEST, e))),
        }
    }

    /// `?passing`, `?passing=true` and `?passing=1` filter; `false` and `0`
    /// do not; anything else is refused, as Consul's `strconv.ParseBool`.
    fn passing(&self) -> Result<bool, Box<Response>> {
        match self.passing.as_deref() {
            None => Ok(false),
            Some("" | "1" | "t" | "T" | "true" | "TRUE" | "True") => Ok(true),
            Some("0" | "f" | "F" | "false" | "FALSE" | "False") => Ok(false),
            Some(_) => Err(Box::new(refuse(StatusCode::BAD_REQUEST, "Invalid value for ?passing"))),
        }
    }
}

/// `body` with only the entries `filter` admits (all without one).
fn filtered(body: Value, filter: Option<&crate::filter::Filter>) -> Value {
    match filter {
        Some(f) => f.apply(body),
        None => body,
    }
}

/// The `?tag=` values of a query (Consul takes the key several times: an
/// instance must carry every one).
fn tags(raw: Option<&str>) -> Vec<String> {
    form_urlencoded::parse(raw.unwrap_or_default().as_bytes())
        .filter(|(k, _)| k == "tag")
        .map(|(_, v)| v.into_owned())
        .collect()
}

/// Whether an instance's `carried` tags include every one `wanted`.
fn has_tags(carried: &[String], wanted: &[String]) -> bool {
    wanted.iter().all(|t| carried.contains(t))
}

fn with_index(index: u64, body: Value) -> Response {
    let mut headers = HeaderMap::new();
    headers.insert("X-Consul-Index", HeaderValue::from(index.max(1)));
    headers.insert("X-Consul-KnownLeader", HeaderValue::from_static("true"));
    headers.insert("X-Consul-LastContact", HeaderValue::from_static("0"));
    (headers, axum::Json(body)).into_response()
}
