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

use super::{BlockingQuery, json, read_answer, refuse, written};
use crate::acl::{ANONYMOUS_ACCESSOR_ID, Access};
use crate::catalog::{Catalog, Status};
use crate::state::Registry;

pub async fn deregister(State(reg): State<Arc<Registry>>, Path(id): Path<String>) -> Response {
    written(reg.write(|c| c.deregister(&id)))
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

pub async fn services(State(reg): State<Arc<Registry>>, Extension(access): Extension<Access>) -> Response {
    let map: serde_json::Map<String, Value> =
        reg.read(|c| c.services().map(|s| (s.record.id.clone(), json::service(s))).collect());
    read_answer(access, None, Value::Object(map))
}

pub async fn checks(State(reg): State<Arc<Registry>>, Extension(access): Extension<Access>) -> Response {
    let map: serde_json::Map<String, Value> = reg.read(|c| {
        c.services()
            .flat_map(|s| {
                s.checks
                    .iter()
                    .map(move |check| (check.id().to_owned(), json::check(s, check)))
            })
            .collect()
    });
    read_answer(access, None, Value::Object(map))
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
