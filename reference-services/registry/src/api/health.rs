//! `/v1/health/*`: instances with their checks, the checks of a service,
//! and checks by state.

use std::sync::Arc;

use axum::extract::{Extension, Path, Query, RawQuery, State};
use axum::http::StatusCode;
use axum::response::Response;
use serde_json::Value;

use super::{BlockingQuery, blocking_read, has_tags, json, refuse, tags};
use crate::acl::Access;
use crate::catalog::{Catalog, Status};
use crate::filter::Shape;
use crate::state::Registry;

/// `GET /v1/health/service/{name}`: every instance with the node, its
/// checks and the node's Serf check; `?passing` keeps only instances whose
/// every check passes, `?tag=` (any number of times) only those carrying
/// every tag given, as Consul's `health_endpoint.go` filters them.
pub async fn service(
    State(reg): State<Arc<Registry>>,
    Extension(access): Extension<Access>,
    Path(name): Path<String>,
    Query(q): Query<BlockingQuery>,
    RawQuery(raw): RawQuery,
) -> Response {
    let wanted = tags(raw.as_deref());
    let passing = match q.passing() {
        Ok(p) => p,
        Err(r) => return *r,
    };
    blocking_read(
        &reg,
        access,
        q,
        Some(Shape::health_entry()),
        |c| c.index_of(&name),
        |c| {
            let entries: Vec<Value> = c
                .instances_of(&name)
                .filter(|s| !passing || c.passing(s))
                .filter(|s| has_tags(&s.record.tags, &wanted))
                .map(|s| {
                    let mut checks = vec![json::serf_check()];
                    checks.extend(c.node_checks().iter().map(|check| json::check(None, check)));
                    checks.extend(json::checks(s));
                    serde_json::json!({"Node": json::node(), "Service": json::service(s), "Checks": checks})
                })
                .collect();
            Value::Array(entries)
        },
    )
    .await
}

/// `GET /v1/health/checks/{name}`: the checks of every instance of a
/// service (not the node's Serf check, as in Consul). It has no `?passing`.
pub async fn checks(
    State(reg): State<Arc<Registry>>,
    Extension(access): Extension<Access>,
    Path(name): Path<String>,
    Query(q): Query<BlockingQuery>,
) -> Response {
    blocking_read(
        &reg,
        access,
        q,
        Some(Shape::check()),
        |c| c.index_of(&name),
        |c| {
            let checks: Vec<Value> = c.instances_of(&name).flat_map(json::checks).collect();
            Value::Array(checks)
        },
    )
    .await
}

/// A state `/v1/health/state/{state}` takes: one status, or `any`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum StateFilter {
    Any,
    Only(Status),
}

impl StateFilter {
    fn parse(text: &str) -> Option<Self> {
        match text {
            "any" => Some(StateFilter::Any),
            other => Status::parse(other).map(StateFilter::Only),
        }
    }

    fn admits(self, status: Status) -> bool {
        match self {
            StateFilter::Any => true,
            StateFilter::Only(s) => s == status,
        }
    }
}

/// `GET /v1/health/state/{state}`: every check in that state, the node's
/// Serf check (always passing) included. An unknown state is refused with
/// 400 (Consul answers it with an empty list, which hides a typo).
pub async fn state(
    State(reg): State<Arc<Registry>>,
    Extension(access): Extension<Access>,
    Path(state): Path<String>,
    Query(q): Query<BlockingQuery>,
) -> Response {
    let Some(filter) = StateFilter::parse(&state) else {
        return refuse(
            StatusCode::BAD_REQUEST,
            format!("Invalid check state {state:?}: expected any, passing, warning or critical"),
        );
    };
    blocking_read(&reg, access, q, Some(Shape::check()), Catalog::index, |c| {
        let mut checks = Vec::new();
        if filter.admits(Status::Passing) {
            checks.push(json::serf_check());
        }
        checks.extend(
            c.node_checks()
                .iter()
                .filter(|check| filter.admits(check.status))
                .map(|check| json::check(None, check)),
        );
        for s in c.services() {
            checks.extend(
                s.checks
                    .iter()
                    .filter(|check| filter.admits(check.status))
                    .map(|check| json::check(Some(s), check)),
            );
        }
        Value::Array(checks)
    })
    .await
}
