//! `/v1/session/*`: create, destroy, renew, and read sessions, as Consul's
//! `session_endpoint.go` answers (see [`crate::catalog::sessions`] for what
//! a session does to the locks it holds).

use std::sync::Arc;
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::{Extension, Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::{Value, json};
use tokio::time::Instant;

use super::json::{NODE_NAME, go_duration};
use super::register::{Refusal, decode_body};
use super::{BlockingQuery, blocking_read, decode, refuse, refused};
use crate::acl::Access;
use crate::catalog::sessions::{Behavior, DEFAULT_LOCK_DELAY, MAX_TTL, MIN_TTL, SERF_CHECK, Session, SessionSpec};
use crate::catalog::{Catalog, CatalogError};
use crate::state::Registry;
use gantry_common::config::parse_duration;

#[derive(Deserialize, Default)]
#[serde(rename_all = "PascalCase", default)]
struct CreateBody {
    name: Option<String>,
    node: Option<String>,
    lock_delay: Option<Value>,
    behavior: Option<String>,
    #[serde(rename = "TTL")]
    ttl: Option<String>,
    /// The deprecated name of `NodeChecks`.
    checks: Option<Vec<String>>,
    node_checks: Option<Vec<String>>,
    service_checks: Option<Vec<ServiceCheckBody>>,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "PascalCase", default)]
struct ServiceCheckBody {
    #[serde(rename = "ID")]
    id: String,
    /// Consul Enterprise's; the dev registry has one namespace.
    #[serde(rename = "Namespace")]
    _namespace: Option<String>,
}

fn fold_create(body: &mut Value) {
    let Some(object) = decode::fold_as::<CreateBody>(body) else {
        return;
    };
    if let Some(Value::Array(checks)) = object.get_mut("ServiceChecks") {
        for check in checks {
            decode::fold_as::<ServiceCheckBody>(check);
        }
    }
}

fn bad(text: impl Into<String>) -> Refusal {
    Box::new(refuse(StatusCode::BAD_REQUEST, text.into()))
}

/// `LockDelay` as Consul reads it: a duration such as `"15s"`, or a
/// number of nanoseconds, where any value under 1000 means seconds.
fn lock_delay(value: Option<Value>) -> Result<Duration, Refusal> {
    let nanos_or_seconds = |n: u64| {
        if n < 1000 {
            Duration::from_secs(n)
        } else {
            Duration::from_nanos(n)
        }
    };
    match value {
        None | Some(Value::Null) => Ok(DEFAULT_LOCK_DELAY),
        Some(Value::Number(n)) => n
            .as_u64()
            .map(nanos_or_seconds)
            .ok_or_else(|| bad(format!("Request decode failed: LockDelay {n} is not a duration"))),
        Some(Value::String(s)) => match parse_duration(&s) {
            Some(d) => Ok(u64::try_from(d.as_nanos()).map_or(d, nanos_or_seconds)),
            None => Err(bad(format!("Request decode failed: time: invalid duration {s:?}"))),
        },
        Some(other) => Err(bad(format!(
            "Request decode failed: LockDelay {other} is not a duration"
        ))),
    }
}

fn spec(body: CreateBody, id: String) -> Result<SessionSpec, Refusal> {
    let behavior = match body.behavior.as_deref() {
        None | Some("" | "release") => Behavior::Release,
        Some("delete") => Behavior::Delete,
        Some(other) => return Err(bad(format!("Invalid Behavior setting '{other}'"))),
    };
    let ttl = match body.ttl.as_deref().filter(|t| !t.is_empty()) {
        None => None,
        Some(text) => match parse_duration(text) {
            None => {
                return Err(bad(format!(
                    "Session TTL '{text}' invalid: time: invalid duration {text:?}"
                )));
            }
            Some(d) if d.is_zero() => None,
            Some(d) if !(MIN_TTL..=MAX_TTL).contains(&d) => {
                return Err(bad(format!(
                    "Invalid Session TTL '{}', must be between [{}={}]",
                    d.as_nanos(),
                    go_duration(MIN_TTL),
                    go_duration(MAX_TTL)
                )));
            }
            Some(d) => Some(d),
        },
    };
    let node = body
        .node
        .filter(|n| !n.is_empty())
        .unwrap_or_else(|| NODE_NAME.to_owned());
    if node != NODE_NAME {
        return Err(bad("Missing node registration"));
    }
    // Consul's `fixupEmptySessionChecks`: no check fields at all means the
    // node's serfHealth; an empty list given means none.
    let node_checks = match (body.node_checks, body.checks) {
        (Some(n), _) => n,
        (None, Some(c)) => c,
        (None, None) => vec![SERF_CHECK.to_owned()],
    };
    Ok(SessionSpec {
        id,
        name: body.name.unwrap_or_default(),
        node,
        lock_delay: lock_delay(body.lock_delay)?,
        behavior,
        ttl,
        node_checks,
        service_checks: body
            .service_checks
            .unwrap_or_default()
            .into_iter()
            .map(|c| c.id)
            .collect(),
    })
}

/// `PUT /v1/session/create`: `{"ID": …}`. The body may be empty.
pub async fn create(State(reg): State<Arc<Registry>>, body: Bytes) -> Response {
    let body: CreateBody = if body.iter().all(u8::is_ascii_whitespace) {
        CreateBody::default()
    } else {
        match decode_body(&body, fold_create) {
            Ok(b) => b,
            Err(r) => return *r,
        }
    };
    let id = gantry_common::jwt::uuid_v4();
    let spec = match spec(body, id.clone()) {
        Ok(s) => s,
        Err(r) => return *r,
    };
    match reg.write(|c| c.create_session(spec, Instant::now())) {
        Ok(()) => axum::Json(json!({"ID": id})).into_response(),
        Err(e) => refused(&e),
    }
}

/// The session as Consul's `structs.Session` renders it: `LockDelay` in
/// nanoseconds, `TTL` as a duration text.
pub fn session(s: &Session) -> Value {
    let spec = &s.spec;
    json!({
        "ID": spec.id,
        "Name": spec.name,
        "Node": spec.node,
        "LockDelay": u64::try_from(spec.lock_delay.as_nanos()).unwrap_or(u64::MAX),
        "Behavior": spec.behavior.as_str(),
        "TTL": spec.ttl.map(go_duration).unwrap_or_default(),
        "NodeChecks": spec.node_checks,
        "ServiceChecks": (!spec.service_checks.is_empty()).then(|| {
            spec.service_checks.iter().map(|id| json!({"ID": id, "Namespace": ""})).collect::<Vec<_>>()
        }),
        "CreateIndex": s.create_index,
        "ModifyIndex": s.modify_index,
    })
}

fn sessions_where(c: &Catalog, keep: impl Fn(&Session) -> bool) -> Value {
    Value::Array(c.sessions.all().filter(|s| keep(s)).map(session).collect())
}

/// `PUT /v1/session/destroy/<id>`: `true`, whether or not it was there.
pub async fn destroy(State(reg): State<Arc<Registry>>, Path(id): Path<String>) -> Response {
    let done: Result<(), CatalogError> = reg.write(|c| {
        c.destroy_session(&id, Instant::now());
        Ok(())
    });
    match done {
        Ok(()) => axum::Json(true).into_response(),
        Err(e) => refused(&e),
    }
}

/// `PUT /v1/session/renew/<id>`: the session, in a list of one; 404 when
/// it is gone (its holder must then start over).
pub async fn renew(State(reg): State<Arc<Registry>>, Path(id): Path<String>) -> Response {
    let renewed = reg.write(|c| Ok(c.renew_session(&id, Instant::now()).map(session)));
    match renewed {
        Ok(Some(s)) => axum::Json(json!([s])).into_response(),
        Ok(None) => refuse(StatusCode::NOT_FOUND, format!("Session id '{id}' not found")),
        Err(e) => refused(&e),
    }
}

/// `GET /v1/session/info/<id>`: a list of one, or an empty list.
pub async fn info(
    State(reg): State<Arc<Registry>>,
    Extension(access): Extension<Access>,
    Path(id): Path<String>,
    Query(q): Query<BlockingQuery>,
) -> Response {
    blocking_read(&reg, access, q, None, sessions_index, |c| {
        sessions_where(c, |s| s.spec.id == id)
    })
    .await
}

/// `GET /v1/session/list`.
pub async fn list(
    State(reg): State<Arc<Registry>>,
    Extension(access): Extension<Access>,
    Query(q): Query<BlockingQuery>,
) -> Response {
    blocking_read(&reg, access, q, None, sessions_index, |c| sessions_where(c, |_| true)).await
}

/// `GET /v1/session/node/<node>`.
pub async fn node(
    State(reg): State<Arc<Registry>>,
    Extension(access): Extension<Access>,
    Path(node): Path<String>,
    Query(q): Query<BlockingQuery>,
) -> Response {
    blocking_read(&reg, access, q, None, sessions_index, |c| {
        sessions_where(c, |s| s.spec.node == node)
    })
    .await
}

fn sessions_index(c: &Catalog) -> u64 {
    c.sessions.index()
}
