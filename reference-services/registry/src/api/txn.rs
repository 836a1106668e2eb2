//! `PUT /v1/txn`: KV operations applied all or nothing, as Consul's
//! `txn_endpoint.go` answers them: 200 with `Results` (reads with values,
//! writes with their new indexes), or 409 with every failure by its
//! position. Node, service and check operations are refused with 400:
//! the dev registry's transactions are KV only.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use base64::Engine;
use serde::Deserialize;
use serde_json::{Value, json};
use tokio::time::Instant;

use super::kv::{MAX_VALUE_BYTES, entry};
use super::{decode, refuse};
use crate::catalog::kv::Write;
use crate::catalog::txn::{MAX_OPS, Op, Outcome};
use crate::state::Registry;

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
struct OpBody {
    #[serde(rename = "KV")]
    kv: Option<KvOpBody>,
    node: Option<Value>,
    service: Option<Value>,
    check: Option<Value>,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "PascalCase", default, deny_unknown_fields)]
struct KvOpBody {
    verb: String,
    key: String,
    value: Option<String>,
    flags: u64,
    index: u64,
    session: String,
    /// Consul Enterprise's; one namespace and partition here.
    #[serde(rename = "Namespace")]
    _namespace: Option<String>,
    #[serde(rename = "Partition")]
    _partition: Option<String>,
}

/// A refusal: its status and Consul's words.
type Refusal = (StatusCode, String);

fn bad(text: impl Into<String>) -> Refusal {
    (StatusCode::BAD_REQUEST, text.into())
}

/// The operations of a body, or the answer refusing it.
fn ops(body: &[u8]) -> Result<Vec<Op>, Refusal> {
    let mut value: Value = serde_json::from_slice(body).map_err(|e| bad(format!("Failed to parse body: {e}")))?;
    if let Some(list) = value.as_array_mut() {
        for op in list {
            if let Some(object) = decode::fold_as::<OpBody>(op)
                && let Some(kv) = object.get_mut("KV")
            {
                decode::fold_as::<KvOpBody>(kv);
            }
        }
    }
    let bodies: Vec<OpBody> = serde_json::from_value(value).map_err(|e| bad(format!("Failed to parse body: {e}")))?;
    if bodies.len() > MAX_OPS {
        return Err((
            StatusCode::PAYLOAD_TOO_LARGE,
            format!(
                "Transaction contains too many operations ({} > {MAX_OPS})",
                bodies.len()
            ),
        ));
    }
    bodies.into_iter().map(op).collect()
}

fn op(body: OpBody) -> Result<Op, Refusal> {
    let Some(kv) = body.kv else {
        let kind = [
            ("Node", body.node.is_some()),
            ("Service", body.service.is_some()),
            ("Check", body.check.is_some()),
        ]
        .into_iter()
        .find(|(_, present)| *present)
        .map_or("an empty", |(kind, _)| kind);
        return Err(bad(format!(
            "{kind} operation: the dev registry's transactions take KV operations only"
        )));
    };
    let value = match kv.value {
        None => Bytes::new(),
        Some(text) => Bytes::from(
            base64::engine::general_purpose::STANDARD
                .decode(text.as_bytes())
                .map_err(|e| bad(format!("Failed to parse body: {e}")))?,
        ),
    };
    if value.len() > MAX_VALUE_BYTES {
        return Err((
            StatusCode::PAYLOAD_TOO_LARGE,
            format!(
                "Value for key {:?} is too large ({} > {MAX_VALUE_BYTES} bytes)",
                kv.key,
                value.len()
            ),
        ));
    }
    if kv.key.is_empty() && kv.verb != "delete-tree" && kv.verb != "get-tree" {
        return Err(bad("Must provide key"));
    }
    let write = Write { value, flags: kv.flags };
    let (key, index, session) = (kv.key, kv.index, kv.session);
    Ok(match kv.verb.as_str() {
        "set" => Op::Set { key, write },
        "cas" => Op::Cas { key, write, index },
        "lock" => Op::Lock { key, write, session },
        "unlock" => Op::Unlock { key, write, session },
        "get" => Op::Get { key },
        "get-tree" => Op::GetTree { prefix: key },
        "check-index" => Op::CheckIndex { key, index },
        "check-session" => Op::CheckSession { key, session },
        "check-not-exists" => Op::CheckNotExists { key },
        "delete" => Op::Delete { key },
        "delete-tree" => Op::DeleteTree { prefix: key },
        "delete-cas" => Op::DeleteCas { key, index },
        other => return Err(bad(format!("unknown KV verb {other:?}"))),
    })
}

fn result(o: &Outcome) -> Value {
    let mut e = entry(&o.entry);
    if !o.with_value {
        e["Value"] = Value::Null;
    }
    json!({"KV": e})
}

pub async fn txn(State(reg): State<Arc<Registry>>, body: Bytes) -> Response {
    let ops = match ops(&body) {
        Ok(ops) => ops,
        Err((status, text)) => return refuse(status, text),
    };
    let done = reg.write(|c| Ok(c.kv_txn(&ops, Instant::now())));
    match done {
        Ok(Ok(outcomes)) => {
            let results: Vec<Value> = outcomes.iter().map(result).collect();
            axum::Json(json!({"Results": results, "Errors": null})).into_response()
        }
        Ok(Err(failures)) => {
            let errors: Vec<Value> = failures
                .into_iter()
                .map(|(at, what)| json!({"OpIndex": at, "What": what}))
                .collect();
            (
                StatusCode::CONFLICT,
                axum::Json(json!({"Results": null, "Errors": errors})),
            )
                .into_response()
        }
        Err(e) => super::refused(&e),
    }
}
