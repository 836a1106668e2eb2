//! Toxiproxy's HTTP API over a [`FaultProxy`], so Toxiproxy's clients
//! (Go, Ruby, Python, Java, .NET …) drive it unchanged: `GET /version`,
//! `POST /reset`, `GET|POST /proxies`, `POST /populate`,
//! `GET|POST|PATCH|DELETE /proxies/{proxy}`,
//! `GET|POST /proxies/{proxy}/toxics` and
//! `GET|POST|PATCH|DELETE /proxies/{proxy}/toxics/{toxic}`. A proxy is a
//! link; a link may also say `"protocol": "http"` for the HTTP toxics.
//! Errors are Toxiproxy's `{"error": …, "status": …}`.

use std::future::Future;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde_json::{Value, json};
use tokio::net::TcpListener;

use super::{FaultError, FaultProxy, LinkView, Protocol, Toxic};

/// The version reported at `/version`: the Toxiproxy API this speaks.
pub const VERSION: &str = "2.12.0";

/// The API's routes over `proxy`.
pub fn router(proxy: FaultProxy) -> Router {
    Router::new()
        .route("/version", get(version))
        .route("/reset", post(reset))
        .route("/proxies", get(list).post(create))
        .route("/populate", post(populate))
        .route("/proxies/{proxy}", get(show).post(update).patch(update).delete(remove))
        .route("/proxies/{proxy}/toxics", get(toxics).post(add_toxic))
        .route(
            "/proxies/{proxy}/toxics/{toxic}",
            get(show_toxic)
                .post(update_toxic)
                .patch(update_toxic)
                .delete(remove_toxic),
        )
        .with_state(proxy)
}

/// Serves the API on `listener` until `shutdown` resolves.
pub async fn serve(
    listener: TcpListener,
    proxy: FaultProxy,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(listener, router(proxy))
        .with_graceful_shutdown(shutdown)
        .await
}

/// An API error as Toxiproxy writes one.
struct ApiError(StatusCode, String);

impl From<FaultError> for ApiError {
    fn from(e: FaultError) -> Self {
        let status = match e {
            FaultError::NoLink(_) | FaultError::NoToxic { .. } => StatusCode::NOT_FOUND,
            FaultError::LinkExists(_) | FaultError::ToxicExists { .. } | FaultError::Listen { .. } => {
                StatusCode::CONFLICT
            }
            FaultError::Invalid(_) => StatusCode::BAD_REQUEST,
        };
        ApiError(status, e.to_string())
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = json!({"error": self.1, "status": self.0.as_u16()});
        (self.0, axum::Json(body)).into_response()
    }
}

type Answer = Result<Response, ApiError>;

fn parse<T: serde::de::DeserializeOwned>(body: &[u8]) -> Result<T, ApiError> {
    serde_json::from_slice(body).map_err(|e| ApiError(StatusCode::BAD_REQUEST, format!("bad request body: {e}")))
}

fn ok(status: StatusCode, v: impl serde::Serialize) -> Answer {
    Ok((status, axum::Json(v)).into_response())
}

async fn version() -> Answer {
    ok(StatusCode::OK, json!({"version": VERSION}))
}

async fn reset(State(p): State<FaultProxy>) -> Answer {
    p.reset().await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

async fn list(State(p): State<FaultProxy>) -> Answer {
    let by_name: serde_json::Map<String, Value> = p
        .list()
        .await
        .into_iter()
        .map(|l| (l.name.clone(), serde_json::to_value(l).expect("a link is JSON")))
        .collect();
    ok(StatusCode::OK, by_name)
}

/// A proxy as a client creates one: `listen` may be left out (any port).
#[derive(serde::Deserialize)]
struct NewLink {
    name: String,
    #[serde(default = "any_port")]
    listen: String,
    upstream: String,
    #[serde(default = "enabled")]
    enabled: bool,
    #[serde(default)]
    protocol: Protocol,
}

fn any_port() -> String {
    "127.0.0.1:0".to_owned()
}

fn enabled() -> bool {
    true
}

async fn start(p: &FaultProxy, new: NewLink) -> Result<LinkView, ApiError> {
    let listen = new.listen.replace("localhost:", "127.0.0.1:");
    p.add(&new.name, &listen, &new.upstream, new.protocol).await?;
    if !new.enabled {
        p.set_enabled(&new.name, false).await?;
    }
    Ok(p.get(&new.name).await?)
}

async fn create(State(p): State<FaultProxy>, body: Bytes) -> Answer {
    let new: NewLink = parse(&body)?;
    ok(StatusCode::CREATED, start(&p, new).await?)
}

async fn populate(State(p): State<FaultProxy>, body: Bytes) -> Answer {
    let all: Vec<NewLink> = parse(&body)?;
    let mut made = Vec::with_capacity(all.len());
    for new in all {
        // As Toxiproxy: an existing proxy of that name is replaced.
        let _ = p.remove(&new.name).await;
        made.push(start(&p, new).await?);
    }
    ok(StatusCode::CREATED, json!({"proxies": made}))
}

async fn show(State(p): State<FaultProxy>, Path(name): Path<String>) -> Answer {
    ok(StatusCode::OK, p.get(&name).await?)
}

#[derive(serde::Deserialize)]
struct LinkChange {
    enabled: Option<bool>,
    upstream: Option<String>,
}

async fn update(State(p): State<FaultProxy>, Path(name): Path<String>, body: Bytes) -> Answer {
    let change: LinkChange = parse(&body)?;
    if let Some(upstream) = change.upstream {
        p.set_upstream(&name, &upstream).await?;
    }
    if let Some(enabled) = change.enabled {
        p.set_enabled(&name, enabled).await?;
    }
    ok(StatusCode::OK, p.get(&name).await?)
}

async fn remove(State(p): State<FaultProxy>, Path(name): Path<String>) -> Answer {
    p.remove(&name).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

async fn toxics(State(p): State<FaultProxy>, Path(name): Path<String>) -> Answer {
    ok(StatusCode::OK, p.get(&name).await?.toxics)
}

async fn add_toxic(State(p): State<FaultProxy>, Path(name): Path<String>, body: Bytes) -> Answer {
    let toxic: Toxic = parse(&body)?;
    ok(StatusCode::OK, p.add_toxic(&name, toxic).await?)
}

async fn find_toxic(p: &FaultProxy, name: &str, toxic: &str) -> Result<Toxic, ApiError> {
    p.get(name)
        .await?
        .toxics
        .into_iter()
        .find(|t| t.name == toxic)
        .ok_or_else(|| {
            FaultError::NoToxic {
                link: name.to_owned(),
                toxic: toxic.to_owned(),
            }
            .into()
        })
}

async fn show_toxic(State(p): State<FaultProxy>, Path((name, toxic)): Path<(String, String)>) -> Answer {
    ok(StatusCode::OK, find_toxic(&p, &name, &toxic).await?)
}

/// As Toxiproxy: the body's fields (and its attributes, one by one) are
/// written over the toxic's; its name and type stay.
async fn update_toxic(State(p): State<FaultProxy>, Path((name, toxic)): Path<(String, String)>, body: Bytes) -> Answer {
    let current = find_toxic(&p, &name, &toxic).await?;
    let change: Value = parse(&body)?;
    let mut merged = serde_json::to_value(&current).expect("a toxic is JSON");
    if let (Some(to), Some(from)) = (merged.as_object_mut(), change.as_object()) {
        for (k, v) in from {
            match (k.as_str(), v) {
                ("name" | "type", _) => {}
                ("attributes", Value::Object(attrs)) => {
                    let slot = to.entry("attributes").or_insert_with(|| json!({}));
                    if let Some(slot) = slot.as_object_mut() {
                        slot.extend(attrs.clone());
                    }
                }
                _ => {
                    to.insert(k.clone(), v.clone());
                }
            }
        }
    }
    let updated: Toxic =
        serde_json::from_value(merged).map_err(|e| ApiError(StatusCode::BAD_REQUEST, format!("bad toxic: {e}")))?;
    ok(StatusCode::OK, p.update_toxic(&name, updated).await?)
}

async fn remove_toxic(State(p): State<FaultProxy>, Path((name, toxic)): Path<(String, String)>) -> Answer {
    p.remove_toxic(&name, &toxic).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}
