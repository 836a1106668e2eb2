//! `/v1/kv/<key>`: Consul's KV store over HTTP, as its `kvs_endpoint.go`
//! answers: entries as JSON arrays with base64 values (`?raw` for the bare
//! value), `?recurse` and `?keys[&separator=]` for prefixes, `?cas`,
//! `?acquire` and `?release` on writes, `true`/`false` as the answer of a
//! write, 404 with the index for a key that is not there, and blocking
//! reads on a key or a prefix.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Extension, Path, RawQuery, State};
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use serde_json::{Value, json};
use tokio::time::Instant;

use super::{BlockingQuery, refuse, refused, with_index};
use crate::acl::{self, ANONYMOUS_ACCESSOR_ID, Access};
use crate::catalog::kv::{Entry, Write};
use crate::state::Registry;

/// Consul's `kv_max_value_size` default: the largest value a PUT may carry.
pub const MAX_VALUE_BYTES: usize = 512 * 1024;

/// A KV request's query: flags by presence (`?recurse`), values by key.
#[derive(Default)]
struct KvQuery {
    recurse: bool,
    keys: bool,
    raw: bool,
    separator: Option<String>,
    flags: Option<String>,
    cas: Option<String>,
    acquire: Option<String>,
    release: Option<String>,
    blocking: BlockingQuery,
}

impl KvQuery {
    fn parse(raw: Option<&str>) -> Self {
        let mut q = KvQuery::default();
        let mut misspelled_separator = None;
        for (k, v) in form_urlencoded::parse(raw.unwrap_or_default().as_bytes()) {
            let v = v.into_owned();
            match k.as_ref() {
                "recurse" => q.recurse = true,
                "keys" => q.keys = true,
                "raw" => q.raw = true,
                "separator" => q.separator = Some(v),
                // Consul takes its old misspelling too; `separator` wins.
                "seperator" => misspelled_separator = Some(v),
                "flags" => q.flags = Some(v),
                "cas" => q.cas = Some(v),
                "acquire" => q.acquire = Some(v),
                "release" => q.release = Some(v),
                "index" => q.blocking.index = Some(v),
                "wait" => q.blocking.wait = Some(v),
                _ => {}
            }
        }
        q.separator = q.separator.or(misspelled_separator);
        q
    }
}

/// `GET`, `PUT` and `DELETE` on `/v1/kv/<key>`.
pub async fn kv(
    State(reg): State<Arc<Registry>>,
    Extension(access): Extension<Access>,
    method: Method,
    key: Option<Path<String>>,
    RawQuery(raw): RawQuery,
    body: Bytes,
) -> Response {
    let key = key.map(|Path(k)| k).unwrap_or_default();
    let q = KvQuery::parse(raw.as_deref());
    match method {
        Method::GET => read(&reg, access, &key, q).await,
        Method::PUT => put(&reg, &key, &q, body),
        Method::DELETE => delete(&reg, &key, &q),
        other => {
            let mut resp = refuse(StatusCode::METHOD_NOT_ALLOWED, format!("method {other} not allowed"));
            resp.headers_mut()
                .insert(header::ALLOW, HeaderValue::from_static("OPTIONS,GET,PUT,DELETE"));
            resp
        }
    }
}

/// An entry as Consul's `DirEntry`: an empty value is `null`, and
/// `Session` is there only while the key is held.
pub(super) fn entry(e: &Entry) -> Value {
    let mut v = json!({
        "LockIndex": e.lock_index,
        "Key": e.key,
        "Flags": e.flags,
        "Value": (!e.value.is_empty()).then(|| base64::engine::general_purpose::STANDARD.encode(&e.value)),
        "CreateIndex": e.create_index,
        "ModifyIndex": e.modify_index,
    });
    if let Some(session) = &e.session {
        v["Session"] = session.clone().into();
    }
    v
}

/// 404 with the index a blocking client waits on next, and an empty body.
fn not_found(index: u64) -> Response {
    let mut resp = with_index(index, Value::Null);
    *resp.status_mut() = StatusCode::NOT_FOUND;
    *resp.body_mut() = axum::body::Body::empty();
    resp.headers_mut().remove(header::CONTENT_TYPE);
    resp
}

async fn read(reg: &Registry, access: Access, key: &str, q: KvQuery) -> Response {
    let (index, wait) = match q.blocking.parse() {
        Ok(p) => p,
        Err(r) => return *r,
    };
    if q.keys || q.recurse {
        let prefix = key.to_owned();
        reg.block_until(index, wait, |c| c.kv.index_of_prefix(&prefix)).await;
        let (index, body) = reg.read(|c| {
            let body: Vec<Value> = if q.keys {
                c.kv.keys(&prefix, q.separator.as_deref())
                    .into_iter()
                    .map(Value::from)
                    .collect()
            } else {
                c.kv.list(&prefix).map(entry).collect()
            };
            (c.kv.index_of_prefix(&prefix), body)
        });
        // The anonymous token's reads are filtered to nothing, as Consul filters them.
        let hidden = !access.can_read() && !body.is_empty();
        let body = if access.can_read() { body } else { Vec::new() };
        let mut resp = if body.is_empty() && !(q.keys && prefix.is_empty()) {
            not_found(index)
        } else {
            with_index(index, Value::Array(body))
        };
        if hidden {
            resp.headers_mut()
                .insert(acl::FILTERED_HEADER, HeaderValue::from_static("true"));
        }
        return resp;
    }
    if key.is_empty() {
        return refuse(StatusCode::BAD_REQUEST, "Missing key name");
    }
    if !access.can_read() {
        return refuse(
            StatusCode::FORBIDDEN,
            format!(
                "Permission denied: token with AccessorID '{ANONYMOUS_ACCESSOR_ID}' lacks permission 'key:read' on \"{key}\""
            ),
        );
    }
    reg.block_until(index, wait, |c| c.kv.index_of_key(key)).await;
    let (index, found) = reg.read(|c| (c.kv.index_of_key(key), c.kv.get(key).cloned()));
    match found {
        None => not_found(index),
        Some(e) if q.raw => {
            let mut resp = with_index(index, Value::Null);
            *resp.body_mut() = axum::body::Body::from(e.value);
            let h = resp.headers_mut();
            // As Consul: a value is never rendered as a page by a browser.
            h.insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain"));
            h.insert("X-Content-Type-Options", HeaderValue::from_static("nosniff"));
            h.insert("Content-Security-Policy", HeaderValue::from_static("sandbox"));
            resp
        }
        Some(e) => with_index(index, json!([entry(&e)])),
    }
}

/// A query value that must be an unsigned number.
fn number(name: &str, text: Option<&str>) -> Result<Option<u64>, Box<Response>> {
    match text {
        None => Ok(None),
        Some(t) => t.parse::<u64>().map(Some).map_err(|_| {
            Box::new(refuse(
                StatusCode::BAD_REQUEST,
                format!("Invalid {name} {t:?}: expected an unsigned number"),
            ))
        }),
    }
}

/// The answer of a KV write: `true` or `false`, as JSON.
fn answered(result: Result<bool, crate::catalog::CatalogError>) -> Response {
    match result {
        Ok(done) => axum::Json(done).into_response(),
        Err(e) => refused(&e),
    }
}

/// Two of `cas`, `acquire` and `release` (or `recurse` and `cas` on a
/// delete) cannot go together: 400, with Consul's words.
fn conflicting(raw: &[(&str, bool)]) -> Option<Response> {
    let given: Vec<&str> = raw.iter().filter(|(_, on)| *on).map(|(name, _)| *name).collect();
    (given.len() > 1).then(|| {
        refuse(
            StatusCode::BAD_REQUEST,
            format!("Conflicting flags: {}\n", given.join("&")),
        )
    })
}

fn put(reg: &Arc<Registry>, key: &str, q: &KvQuery, body: Bytes) -> Response {
    if key.is_empty() {
        return refuse(StatusCode::BAD_REQUEST, "Missing key name");
    }
    if let Some(r) = conflicting(&[
        ("cas", q.cas.is_some()),
        ("acquire", q.acquire.is_some()),
        ("release", q.release.is_some()),
    ]) {
        return r;
    }
    if body.len() > MAX_VALUE_BYTES {
        return refuse(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!(
                "Request body({} bytes) too large, max size: {MAX_VALUE_BYTES} bytes. See https://developer.hashicorp.com/docs/agent/config/config-files#kv_max_value_size.",
                body.len()
            ),
        );
    }
    let (flags, cas) = match (number("flags", q.flags.as_deref()), number("cas", q.cas.as_deref())) {
        (Ok(f), Ok(c)) => (f.unwrap_or(0), c),
        (Err(r), _) | (_, Err(r)) => return *r,
    };
    let write = Write { value: body, flags };
    answered(reg.write(|c| {
        if let Some(session) = &q.acquire {
            c.kv_acquire(key, write, session, Instant::now())
        } else if let Some(session) = &q.release {
            c.kv_release(key, write, session)
        } else {
            Ok(c.kv_set(key, write, cas))
        }
    }))
}

fn delete(reg: &Arc<Registry>, key: &str, q: &KvQuery) -> Response {
    if let Some(r) = conflicting(&[("recurse", q.recurse), ("cas", q.cas.is_some())]) {
        return r;
    }
    if q.recurse {
        return answered(reg.write(|c| {
            c.kv_delete_tree(key);
            Ok(true)
        }));
    }
    if key.is_empty() {
        return refuse(StatusCode::BAD_REQUEST, "Missing key name");
    }
    let cas = match number("cas", q.cas.as_deref()) {
        Ok(c) => c,
        Err(r) => return *r,
    };
    answered(reg.write(|c| Ok(c.kv_delete(key, cas))))
}
