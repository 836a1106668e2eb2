//! The node and the agent: `/v1/agent/self`, `/v1/agent/members`,
//! `/v1/catalog/nodes` and `/v1/catalog/node/<node>`. The dev registry is
//! one agent, a server, on one node; clients read its name and datacenter
//! from here (Go's `Agent().NodeName()`, Fabio at start, consul-template's
//! `nodes`).

use std::sync::Arc;

use axum::extract::{Extension, Path, Query, State};
use axum::response::Response;
use serde_json::{Value, json};

use super::json::{self, DATACENTER, NODE_ID, NODE_NAME};
use super::{BlockingQuery, blocking_read, read_answer, refuse};
use axum::http::StatusCode;

use crate::acl::{ANONYMOUS_ACCESSOR_ID, Access};
use crate::catalog::Catalog;
use crate::filter::Shape;
use crate::state::Registry;

/// The server address Consul's status endpoints name (its RPC port).
pub const SERVER_ADDR: &str = "127.0.0.1:8300";
/// The Consul version whose API the dev registry follows.
pub const CONSUL_VERSION: &str = "1.20.0";

/// The node's Serf member, as `/v1/agent/members` lists it.
fn member() -> Value {
    json!({
        "Name": NODE_NAME,
        "Addr": "127.0.0.1",
        "Port": 8301,
        "Tags": {
            "role": "consul", "dc": DATACENTER, "port": "8300", "bootstrap": "1",
            "build": format!("{CONSUL_VERSION}:gantry"), "vsn": "2", "vsn_min": "2", "vsn_max": "3",
            "id": NODE_ID,
        },
        "Status": 1,
        "ProtocolMin": 1, "ProtocolMax": 5, "ProtocolCur": 2,
        "DelegateMin": 2, "DelegateMax": 5, "DelegateCur": 4,
    })
}

/// `GET /v1/agent/self`: the agent's configuration and member; the
/// anonymous token may not read it (Consul requires `agent:read`).
pub async fn agent_self(Extension(access): Extension<Access>) -> Response {
    if !access.can_read() {
        return refuse(
            StatusCode::FORBIDDEN,
            format!(
                "Permission denied: token with AccessorID '{ANONYMOUS_ACCESSOR_ID}' lacks permission 'agent:read' on \"{NODE_NAME}\""
            ),
        );
    }
    let body = json!({
        "Config": {
            "Datacenter": DATACENTER,
            "PrimaryDatacenter": DATACENTER,
            "NodeName": NODE_NAME,
            "NodeID": NODE_ID,
            "Revision": "gantry",
            "Server": true,
            "Version": CONSUL_VERSION,
        },
        "Coord": {"Vec": [0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0], "Error": 1.5, "Adjustment": 0.0, "Height": 1.0e-5},
        "Member": member(),
        "Meta": {"consul-network-segment": ""},
    });
    read_answer(access, None, body)
}

/// `GET /v1/agent/members`.
pub async fn members(Extension(access): Extension<Access>) -> Response {
    read_answer(access, None, json!([member()]))
}

/// `GET /v1/catalog/nodes`: the one node.
pub async fn nodes(
    State(reg): State<Arc<Registry>>,
    Extension(access): Extension<Access>,
    Query(q): Query<BlockingQuery>,
) -> Response {
    blocking_read(&reg, access, q, Some(Shape::node()), |_| 1, |_| json!([json::node()])).await
}

/// `GET /v1/catalog/node/<node>`: the node and its services by id; `null`
/// for a node that is not there, as Consul answers.
pub async fn node(
    State(reg): State<Arc<Registry>>,
    Extension(access): Extension<Access>,
    Path(node): Path<String>,
    Query(q): Query<BlockingQuery>,
) -> Response {
    blocking_read(&reg, access, q, None, Catalog::index, move |c| {
        if node != NODE_NAME {
            return Value::Null;
        }
        let services: serde_json::Map<String, Value> =
            c.services().map(|s| (s.record.id.clone(), json::service(s))).collect();
        json!({"Node": json::node(), "Services": services})
    })
    .await
}
