//! The HTTP face of the dev registry: Consul's paths, JSON field names,
//! status codes and blocking-query headers.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Extension, Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, put};
use serde::Deserialize;
use serde_json::{Value, json};
use tokio::time::Instant;

use super::Registry;
use super::acl::{self, Access, Acl};
use super::catalog::{CheckSpec, Service, Status};
use gantry_common::config::parse_duration;

/// The node every service of the dev registry lives on.
pub const NODE_NAME: &str = "gantry-dev";
const NODE_ID: &str = "00000000-0000-0000-0000-00000000dev0";
const DATACENTER: &str = "dc1";
/// Consul's default and maximum `wait` for blocking queries.
pub const DEFAULT_WAIT: Duration = Duration::from_secs(300);
pub const MAX_WAIT: Duration = Duration::from_secs(600);
/// The longest duration Consul accepts (Go's `time.Duration`, int64
/// nanoseconds, about 292 years); longer ones are refused with 400.
pub const MAX_DURATION: Duration = Duration::from_nanos(i64::MAX as u64);

pub fn router(registry: Arc<Registry>, acl: Acl) -> Router {
    Router::new()
        .route("/v1/agent/service/register", put(register))
        .route("/v1/agent/service/deregister/{id}", put(deregister))
        .route("/v1/agent/check/pass/{id}", put(check_pass))
        .route("/v1/agent/check/warn/{id}", put(check_warn))
        .route("/v1/agent/check/fail/{id}", put(check_fail))
        .route("/v1/agent/check/update/{id}", put(check_update))
        .route("/v1/agent/services", get(agent_services))
        .route("/v1/agent/checks", get(agent_checks))
        .route("/v1/health/service/{name}", get(health_service))
        .route("/v1/catalog/services", get(catalog_services))
        .route("/v1/catalog/service/{name}", get(catalog_service))
        .route("/v1/status/leader", get(|| async { axum::Json("127.0.0.1:8300") }))
        .fallback(|| async { (StatusCode::NOT_FOUND, "404 page not found\n") })
        .layer(axum::middleware::from_fn_with_state(Arc::new(acl), acl::enforce))
        .with_state(registry)
}

/// Consul answers errors as plain text with a status; so do we.
fn refuse(status: StatusCode, text: impl Into<String>) -> Response {
    (status, text.into()).into_response()
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct RegisterBody {
    #[serde(rename = "ID", default)]
    id: Option<String>,
    name: Option<String>,
    #[serde(default)]
    tags: Option<Vec<String>>,
    #[serde(default)]
    address: Option<String>,
    #[serde(default)]
    port: Option<u16>,
    #[serde(default)]
    meta: Option<BTreeMap<String, String>>,
    #[serde(default)]
    check: Option<CheckBody>,
    #[serde(default)]
    checks: Option<Vec<CheckBody>>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct CheckBody {
    #[serde(rename = "CheckID", default)]
    check_id: Option<String>,
    #[serde(default)]
    name: Option<String>,
    #[serde(rename = "TTL", default)]
    ttl: Option<String>,
    #[serde(default)]
    deregister_critical_service_after: Option<String>,
    #[serde(default)]
    status: Option<String>,
    #[serde(rename = "HTTP", default)]
    http: Option<String>,
    #[serde(rename = "TCP", default)]
    tcp: Option<String>,
}

async fn register(State(reg): State<Arc<Registry>>, body: Bytes) -> Response {
    let body: RegisterBody = match serde_json::from_slice(&body) {
        Ok(b) => b,
        Err(e) => return refuse(StatusCode::BAD_REQUEST, format!("Request decode failed: {e}")),
    };
    let Some(name) = body.name.filter(|n| !n.is_empty()) else {
        return refuse(StatusCode::BAD_REQUEST, "Missing service name");
    };
    let id = body.id.filter(|i| !i.is_empty()).unwrap_or_else(|| name.clone());
    let mut specs = Vec::new();
    let bodies = body.check.into_iter().chain(body.checks.unwrap_or_default());
    for (i, check) in bodies.enumerate() {
        if check.http.is_some() || check.tcp.is_some() {
            return refuse(
                StatusCode::BAD_REQUEST,
                "Invalid check: the dev registry supports TTL checks only",
            );
        }
        let ttl = match check.ttl.as_deref() {
            Some(text) => match duration("TTL", text) {
                Ok(d) => d,
                Err(r) => return *r,
            },
            None => {
                return refuse(
                    StatusCode::BAD_REQUEST,
                    "Invalid check: TTL must be a duration such as 10s",
                );
            }
        };
        let deregister_after = match check.deregister_critical_service_after.as_deref() {
            None | Some("") => None,
            Some(text) => match duration("DeregisterCriticalServiceAfter", text) {
                Ok(d) => Some(d),
                Err(r) => return *r,
            },
        };
        let status = match check.status.as_deref() {
            None | Some("") => Status::Critical,
            Some(s) => match Status::parse(s) {
                Some(s) => s,
                None => return refuse(StatusCode::BAD_REQUEST, format!("Invalid check status {s:?}")),
            },
        };
        let default_id = if i == 0 {
            format!("service:{id}")
        } else {
            format!("service:{id}:{}", i + 1)
        };
        specs.push(CheckSpec {
            id: check.check_id.filter(|c| !c.is_empty()).unwrap_or(default_id),
            name: check.name.unwrap_or_else(|| format!("Service '{name}' check")),
            ttl,
            status,
            deregister_after,
        });
    }
    reg.write(|c| {
        c.register(
            id,
            name,
            body.address.unwrap_or_default(),
            body.port.unwrap_or(0),
            body.tags.unwrap_or_default(),
            body.meta.unwrap_or_default(),
            specs,
            Instant::now(),
        )
    })
}

/// A check's duration field, refused with 400 when it is not a duration or
/// longer than Consul accepts.
fn duration(field: &str, text: &str) -> Result<Duration, Box<Response>> {
    match parse_duration(text) {
        None => Err(Box::new(refuse(
            StatusCode::BAD_REQUEST,
            format!("Invalid check: {field} {text:?} is not a duration such as 10s"),
        ))),
        Some(d) if d > MAX_DURATION => Err(Box::new(refuse(
            StatusCode::BAD_REQUEST,
            format!(
                "Invalid check: {field} {text:?} is out of range: at most {}h",
                MAX_DURATION.as_secs() / 3600
            ),
        ))),
        Some(d) => Ok(d),
    }
}

async fn deregister(State(reg): State<Arc<Registry>>, Path(id): Path<String>) -> Response {
    reg.write(|c| c.deregister(&id))
}

#[derive(Deserialize, Default)]
struct NoteQuery {
    #[serde(default)]
    note: String,
}

async fn check_pass(State(reg): State<Arc<Registry>>, Path(id): Path<String>, Query(q): Query<NoteQuery>) -> Response {
    reg.write(|c| c.update_check(&id, Status::Passing, &q.note, Instant::now()))
}

async fn check_warn(State(reg): State<Arc<Registry>>, Path(id): Path<String>, Query(q): Query<NoteQuery>) -> Response {
    reg.write(|c| c.update_check(&id, Status::Warning, &q.note, Instant::now()))
}

async fn check_fail(State(reg): State<Arc<Registry>>, Path(id): Path<String>, Query(q): Query<NoteQuery>) -> Response {
    reg.write(|c| c.update_check(&id, Status::Critical, &q.note, Instant::now()))
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct UpdateBody {
    status: String,
    #[serde(default)]
    output: String,
}

async fn check_update(State(reg): State<Arc<Registry>>, Path(id): Path<String>, body: Bytes) -> Response {
    let body: UpdateBody = match serde_json::from_slice(&body) {
        Ok(b) => b,
        Err(e) => return refuse(StatusCode::BAD_REQUEST, format!("Request decode failed: {e}")),
    };
    let Some(status) = Status::parse(&body.status) else {
        return refuse(
            StatusCode::BAD_REQUEST,
            format!("Invalid check status: {:?}", body.status),
        );
    };
    reg.write(|c| c.update_check(&id, status, &body.output, Instant::now()))
}

fn service_json(s: &Service) -> Value {
    json!({
        "ID": s.id,
        "Service": s.name,
        "Tags": s.tags,
        "Address": s.address,
        "Meta": s.meta,
        "Port": s.port,
        "Weights": {"Passing": 1, "Warning": 1},
        "EnableTagOverride": false,
        "Datacenter": DATACENTER,
        "CreateIndex": s.create_index,
        "ModifyIndex": s.modify_index,
    })
}

fn checks_json(s: &Service) -> Vec<Value> {
    s.checks
        .iter()
        .map(|c| {
            json!({
                "Node": NODE_NAME,
                "CheckID": c.id,
                "Name": c.name,
                "Status": c.status,
                "Notes": "",
                "Output": c.output,
                "ServiceID": s.id,
                "ServiceName": s.name,
                "ServiceTags": s.tags,
                "Type": "ttl",
                "Definition": {},
                "CreateIndex": c.create_index,
                "ModifyIndex": c.modify_index,
            })
        })
        .collect()
}

fn node_json() -> Value {
    json!({
        "ID": NODE_ID,
        "Node": NODE_NAME,
        "Address": "127.0.0.1",
        "Datacenter": DATACENTER,
        "TaggedAddresses": {"lan": "127.0.0.1", "wan": "127.0.0.1"},
        "Meta": {},
        "CreateIndex": 1,
        "ModifyIndex": 1,
    })
}

fn serf_check() -> Value {
    json!({
        "Node": NODE_NAME,
        "CheckID": "serfHealth",
        "Name": "Serf Health Status",
        "Status": "passing",
        "Notes": "",
        "Output": "Agent alive and reachable",
        "ServiceID": "",
        "ServiceName": "",
        "ServiceTags": [],
        "Type": "",
        "Definition": {},
        "CreateIndex": 1,
        "ModifyIndex": 1,
    })
}

/// A read's answer: its result `body` (a JSON array or object) as `access`
/// may see it, with the blocking `index` when the endpoint has one. The
/// anonymous token (ACLs' default deny) sees an empty result of the same
/// shape, and Consul's header says results were filtered when there were any.
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

async fn agent_services(State(reg): State<Arc<Registry>>, Extension(access): Extension<Access>) -> Response {
    let map: serde_json::Map<String, Value> =
        reg.read(|c| c.services().map(|s| (s.id.clone(), service_json(s))).collect());
    read_answer(access, None, Value::Object(map))
}

async fn agent_checks(State(reg): State<Arc<Registry>>, Extension(access): Extension<Access>) -> Response {
    let map: serde_json::Map<String, Value> = reg.read(|c| {
        c.services()
            .flat_map(|s| s.checks.iter().map(|c| c.id.clone()).zip(checks_json(s)))
            .collect()
    });
    read_answer(access, None, Value::Object(map))
}

/// Blocking-query parameters, as Consul reads them.
#[derive(Deserialize, Default)]
struct BlockingQuery {
    index: Option<String>,
    wait: Option<String>,
    passing: Option<String>,
}

impl BlockingQuery {
    fn parse(&self) -> Result<(Option<u64>, Duration), Box<Response>> {
        let index = match self.index.as_deref() {
            None | Some("") => None,
            Some(text) => match text.parse::<u64>() {
                Ok(i) => Some(i),
                Err(_) => return Err(Box::new(refuse(StatusCode::BAD_REQUEST, "Invalid index"))),
            },
        };
        let wait = match self.wait.as_deref() {
            None | Some("") => DEFAULT_WAIT,
            Some(text) => match parse_duration(text) {
                Some(w) => w.min(MAX_WAIT),
                None => return Err(Box::new(refuse(StatusCode::BAD_REQUEST, "Invalid wait time"))),
            },
        };
        Ok((index, wait))
    }

    /// `?passing`, `?passing=true` and `?passing=1` all filter; `false` does not.
    fn passing(&self) -> bool {
        match self.passing.as_deref() {
            None => false,
            Some(v) => !matches!(v, "false" | "0"),
        }
    }
}

fn with_index(index: u64, body: Value) -> Response {
    let mut headers = HeaderMap::new();
    headers.insert("X-Consul-Index", HeaderValue::from(index.max(1)));
    headers.insert("X-Consul-KnownLeader", HeaderValue::from_static("true"));
    headers.insert("X-Consul-LastContact", HeaderValue::from_static("0"));
    (headers, axum::Json(body)).into_response()
}

async fn health_service(
    State(reg): State<Arc<Registry>>,
    Extension(access): Extension<Access>,
    Path(name): Path<String>,
    Query(q): Query<BlockingQuery>,
) -> Response {
    let (index, wait) = match q.parse() {
        Ok(p) => p,
        Err(r) => return *r,
    };
    let passing = q.passing();
    reg.block_on_name(&name, index, wait).await;
    let (index, body) = reg.read(|c| {
        let entries: Vec<Value> = c
            .instances_of(&name)
            .filter(|s| !passing || s.passing())
            .map(|s| {
                let mut checks = vec![serf_check()];
                checks.extend(checks_json(s));
                json!({"Node": node_json(), "Service": service_json(s), "Checks": checks})
            })
            .collect();
        (c.index_of(&name), Value::Array(entries))
    });
    read_answer(access, Some(index), body)
}

async fn catalog_services(
    State(reg): State<Arc<Registry>>,
    Extension(access): Extension<Access>,
    Query(q): Query<BlockingQuery>,
) -> Response {
    let (index, wait) = match q.parse() {
        Ok(p) => p,
        Err(r) => return *r,
    };
    reg.block_on_catalog(index, wait).await;
    let (index, body) = reg.read(|c| {
        let mut map: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for s in c.services() {
            let tags = map.entry(s.name.clone()).or_default();
            for t in &s.tags {
                if !tags.contains(t) {
                    tags.push(t.clone());
                }
            }
        }
        (c.index(), serde_json::to_value(map).unwrap_or_default())
    });
    read_answer(access, Some(index), body)
}

async fn catalog_service(
    State(reg): State<Arc<Registry>>,
    Extension(access): Extension<Access>,
    Path(name): Path<String>,
    Query(q): Query<BlockingQuery>,
) -> Response {
    let (index, wait) = match q.parse() {
        Ok(p) => p,
        Err(r) => return *r,
    };
    reg.block_on_name(&name, index, wait).await;
    let (index, body) = reg.read(|c| {
        let entries: Vec<Value> = c
            .instances_of(&name)
            .map(|s| {
                json!({
                    "ID": NODE_ID,
                    "Node": NODE_NAME,
                    "Address": "127.0.0.1",
                    "Datacenter": DATACENTER,
                    "ServiceID": s.id,
                    "ServiceName": s.name,
                    "ServiceAddress": s.address,
                    "ServicePort": s.port,
                    "ServiceTags": s.tags,
                    "ServiceMeta": s.meta,
                    "CreateIndex": s.create_index,
                    "ModifyIndex": s.modify_index,
                })
            })
            .collect();
        (c.index_of(&name), Value::Array(entries))
    });
    read_answer(access, Some(index), body)
}
