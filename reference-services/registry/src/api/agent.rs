//! `/v1/agent/*`: this agent's services and checks, deregistration and TTL
//! updates.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Extension, Path, Query, State};
use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::Value;
use tokio::time::Instant;

use super::register::{self, fold_check};
use super::{BlockingQuery, decode, filtered, json, read_answer, refuse, written};
use crate::acl::{ANONYMOUS_ACCESSOR_ID, Access};
use crate::catalog::{Catalog, Status};
use crate::filter::Shape;
use crate::state::Registry;

pub async fn deregister(State(reg): State<Arc<Registry>>, Path(id): Path<String>) -> Response {
    written(reg.write(|c| c.deregister(&id, Instant::now())))
}

#[derive(Deserialize, Default)]
pub struct NoteQuery {
    #[serde(default)]
    note: String,
}

async fn set_check(reg: &Arc<Registry>, id: &str, status: Status, output: &str) -> Response {
    written(reg.write(|c| c.update_check(id, status, output, Instant::now())))
}

pub async fn check_pass(
    State(reg): State<Arc<Registry>>,
    Path(id): Path<String>,
    Query(q): Query<NoteQuery>,
) -> Response {
    set_check(&reg, &id, Status::Passing, &q.note).await
}

pub async fn check_warn(
    State(reg): State<Arc<Registry>>,
    Path(id): Path<String>,
    Query(q): Query<NoteQuery>,
) -> Response {
    set_check(&reg, &id, Status::Warning, &q.note).await
}

pub async fn check_fail(
    State(reg): State<Arc<Registry>>,
    Path(id): Path<String>,
    Query(q): Query<NoteQuery>,
) -> Response {
    set_check(&reg, &id, Status::Critical, &q.note).await
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct UpdateBody {
    status: String,
    #[serde(default)]
    output: String,
}

pub async fn check_update(State(reg): State<Arc<Registry>>, Path(id): Path<String>, body: Bytes) -> Response {
    let body: UpdateBody = match serde_json::from_slice(&body) {
        Ok(b) => b,
        Err(e) => return refuse(StatusCode::BAD_REQUEST, format!("Request decode failed: {e}")),
    };
    let Some(status) = Status::parse(&body.status) else {
        return refuse(
            StatusCode::BAD_REQUEST,
            format!("Invalid check status: '{}'", body.status),
        );
    };
    set_check(&reg, &id, status, &body.output).await
}

/// `GET /v1/agent/services`, with `?filter=` over the services.
pub async fn services(
    State(reg): State<Arc<Registry>>,
    Extension(access): Extension<Access>,
    Query(q): Query<BlockingQuery>,
) -> Response {
    let filter = match q.filter(Shape::service()) {
        Ok(f) => f,
        Err(r) => return *r,
    };
    let map: serde_json::Map<String, Value> =
        reg.read(|c| c.services().map(|s| (s.record.id.clone(), json::service(s))).collect());
    read_answer(access, None, filtered(Value::Object(map), filter.as_ref()))
}

/// `GET /v1/agent/checks`, with `?filter=` over the checks.
pub async fn checks(
    State(reg): State<Arc<Registry>>,
    Extension(access): Extension<Access>,
    Query(q): Query<BlockingQuery>,
) -> Response {
    let filter = match q.filter(Shape::check()) {
        Ok(f) => f,
        Err(r) => return *r,
    };
    let map: serde_json::Map<String, Value> = reg.read(|c| {
        let node = c
            .node_checks()
            .iter()
            .map(|check| (check.id().to_owned(), json::check(None, check)));
        let services = c.services().flat_map(|s| {
            s.checks
                .iter()
                .map(move |check| (check.id().to_owned(), json::check(Some(s), check)))
        });
        node.chain(services).collect()
    });
    read_answer(access, None, filtered(Value::Object(map), filter.as_ref()))
}

/// The service `id` as `/v1/agent/service/{id}` answers it, with its
/// `ContentHash`; `None` when there is no such service.
fn agent_service(c: &Catalog, id: &str) -> Option<(String, String, Value)> {
    let s = c.service(id)?;
    let mut body = json::service(s);
    let hash = content_hash(&body);
    body["ContentHash"] = hash.clone().into();
    Some((s.record.name.clone(), hash, body))
}

/// 64-bit FNV-1a of the answer, in hex: changes when the answer does,
/// which is all a hash-based blocking query needs.
fn content_hash(body: &Value) -> String {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in body.to_string().bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    format!("{h:016x}")
}

/// `GET /v1/agent/service/{id}`, with Consul's hash-based blocking
/// (`?hash=` and `?wait=`): 404 `unknown service ID: …` for an unknown id,
/// and, with ACLs on, 403 for the anonymous token (it may not read it).
pub async fn service(
    State(reg): State<Arc<Registry>>,
    Extension(access): Extension<Access>,
    Path(id): Path<String>,
    Query(q): Query<BlockingQuery>,
) -> Response {
    let wait = match q.wait() {
        Ok(w) => w,
        Err(r) => return *r,
    };
    if let Some(hash) = q.hash.as_deref().filter(|h| !h.is_empty()) {
        reg.wait_while(wait, |c| agent_service(c, &id).is_some_and(|(_, h, _)| h == hash))
            .await;
    }
    let Some((name, hash, body)) = reg.read(|c| agent_service(c, &id)) else {
        return refuse(StatusCode::NOT_FOUND, format!("unknown service ID: {id}"));
    };
    if !access.can_read() {
        return refuse(
            StatusCode::FORBIDDEN,
            format!(
                "Permission denied: token with AccessorID '{ANONYMOUS_ACCESSOR_ID}' lacks permission 'service:read' on \"{name}\""
            ),
        );
    }
    let mut resp = axum::Json(body).into_response();
    if let Ok(v) = HeaderValue::from_str(&hash) {
        resp.headers_mut().insert("X-Consul-ContentHash", v);
    }
    resp
}

/// `PUT /v1/agent/check/register`: one check, of the service `ServiceID`
/// or, without one, of the node (Consul's `CheckDefinition`: `ID` or
/// `CheckID`, `Name`, `ServiceID`, and a check's fields).
pub async fn check_register(State(reg): State<Arc<Registry>>, body: Bytes) -> Response {
    let mut value: Value = match serde_json::from_slice(&body) {
        Ok(v) => v,
        Err(e) => return refuse(StatusCode::BAD_REQUEST, format!("Request decode failed: {e}")),
    };
    let Some(object) = value.as_object_mut() else {
        return refuse(
            StatusCode::BAD_REQUEST,
            "Request decode failed: the body is not a JSON object",
        );
    };
    decode::fold_keys(object, &["ID", "ServiceID"]);
    let id = object.remove("ID");
    let service_id = object.remove("ServiceID");
    let text = |v: Option<Value>| match v {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s).filter(|s| !s.is_empty())),
        Some(other) => Err(format!("Request decode failed: expected a string, got {other}")),
    };
    let (id, service_id) = match (text(id), text(service_id)) {
        (Ok(id), Ok(service)) => (id, service),
        (Err(e), _) | (_, Err(e)) => return refuse(StatusCode::BAD_REQUEST, e),
    };
    fold_check(&mut value);
    let check: register::CheckBody = match serde_json::from_value(value) {
        Ok(c) => c,
        Err(e) => return refuse(StatusCode::BAD_REQUEST, format!("Request decode failed: {e}")),
    };
    let Some(name) = check.name.clone().filter(|n| !n.is_empty()) else {
        return refuse(StatusCode::BAD_REQUEST, "Missing check name");
    };
    let id = id.or_else(|| check.check_id.clone()).unwrap_or_else(|| name.clone());
    let spec = match register::check_spec(check, id, service_id.as_deref().unwrap_or_default()) {
        Ok(s) => s,
        Err(r) => return *r,
    };
    written(reg.write(|c| c.register_check(service_id.as_deref(), spec, Instant::now())))
}

/// `PUT /v1/agent/check/deregister/{id}`.
pub async fn check_deregister(State(reg): State<Arc<Registry>>, Path(id): Path<String>) -> Response {
    written(reg.write(|c| c.deregister_check(&id, Instant::now())))
}

/// `?enable=` and `?reason=` of the maintenance endpoints.
#[derive(Deserialize, Default)]
pub struct MaintenanceQuery {
    enable: Option<String>,
    #[serde(default)]
    reason: String,
}

impl MaintenanceQuery {
    /// `enable` is required and a boolean, as Consul's `strconv.ParseBool`.
    fn enable(&self) -> Result<bool, String> {
        let refusal = match self.enable.as_deref() {
            None | Some("") => "Missing value for enable".to_owned(),
            Some("1" | "t" | "T" | "true" | "TRUE" | "True") => return Ok(true),
            Some("0" | "f" | "F" | "false" | "FALSE" | "False") => return Ok(false),
            Some(other) => format!("Invalid value for enable: {other:?}"),
        };
        Err(refusal)
    }
}

/// `PUT /v1/agent/service/maintenance/{id}?enable=&reason=`: a critical
/// check `_service_maintenance:<id>` takes the instance out of `?passing`
/// until maintenance is off (as `consul maint -service`).
pub async fn service_maintenance(
    State(reg): State<Arc<Registry>>,
    Path(id): Path<String>,
    Query(q): Query<MaintenanceQuery>,
) -> Response {
    let enable = match q.enable() {
        Ok(e) => e,
        Err(e) => return refuse(StatusCode::BAD_REQUEST, e),
    };
    written(reg.write(|c| c.service_maintenance(&id, enable, &q.reason, Instant::now())))
}

/// `PUT /v1/agent/maintenance?enable=&reason=`: the whole node (every
/// service on it) in or out of maintenance.
pub async fn node_maintenance(State(reg): State<Arc<Registry>>, Query(q): Query<MaintenanceQuery>) -> Response {
    let enable = match q.enable() {
        Ok(e) => e,
        Err(e) => return refuse(StatusCode::BAD_REQUEST, e),
    };
    written(reg.write(|c| c.node_maintenance(enable, &q.reason, Instant::now())))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_content_hash_follows_the_content() {
        let a = serde_json::json!({"ID": "a", "Port": 1});
        let b = serde_json::json!({"ID": "a", "Port": 2});
        assert_eq!(content_hash(&a), content_hash(&a.clone()));
        assert_ne!(content_hash(&a), content_hash(&b));
        assert_eq!(content_hash(&a).len(), 16);
    }
}
