//! notes: a small Rust HTTP service that knows nothing of Gantry.
//!
//! Unlike the greeter it does not trust identity headers: it verifies the
//! bearer token on every request itself (a resource server in OAuth terms),
//! with the issuer's public keys fetched from `JWKS_URL` — so it stays safe
//! even if something other than the gateway can reach it.
//!
//! Environment:
//!   PORT          where to listen (required)
//!   HOST          the address to bind (default 127.0.0.1; 0.0.0.0 in a container)
//!   JWKS_URL      the issuer's JSON Web Key Set (required)
//!   JWT_AUDIENCE  the `aud` a token must carry (required)
//!   INSTANCE_ID   sent back in `X-Served-By` (default `notes-<port>`)
//!   GATEWAY_URL   the gateway, through which `GET /notes/greeting` asks the
//!                 greeter (optional): balanced over its instances, and
//!                 retried around a dead one, by the gateway
//!   GREETER_URL   the greeter itself (optional), which `GET /notes/greeting/direct`
//!                 asks on a new connection each time, once more on a
//!                 transport error: by a name that several instances answer
//!                 to (Docker's DNS), a dead one is not asked twice

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde_json::{Value, json};

/// Unknown key ids trigger a JWKS fetch at most this often, so a flood of
/// forged `kid`s cannot turn into a flood of requests to the issuer.
const MIN_REFETCH: Duration = Duration::from_secs(1);

struct Keys {
    by_kid: HashMap<String, DecodingKey>,
    fetched: Option<Instant>,
}

struct App {
    jwks_url: String,
    validation: Validation,
    keys: Mutex<Keys>,
    http: reqwest::Client,
    instance: HeaderValue,
    notes: Mutex<Vec<(String, String)>>,
    gateway: Option<String>,
    greeter: Option<String>,
    /// No kept-alive connections: each call looks the greeter's name up again.
    direct: reqwest::Client,
}

#[derive(serde::Deserialize)]
struct Claims {
    sub: String,
    #[serde(default)]
    username: Option<String>,
}

fn error(status: StatusCode, code: &str, message: &str) -> Response {
    let mut r = (status, Json(json!({"error": code, "message": message}))).into_response();
    if status == StatusCode::UNAUTHORIZED {
        r.headers_mut()
            .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
    }
    r
}

impl App {
    /// The key for `kid`, fetching the JWKS when it is not known yet.
    async fn key(&self, kid: &str) -> Option<DecodingKey> {
        {
            let keys = self.keys.lock().expect("keys lock");
            if let Some(k) = keys.by_kid.get(kid) {
                return Some(k.clone());
            }
            if keys.fetched.is_some_and(|t| t.elapsed() < MIN_REFETCH) {
                return None;
            }
        }
        let fetched = async {
            self.http
                .get(&self.jwks_url)
                .send()
                .await?
                .error_for_status()?
                .json::<JwkSet>()
                .await
        }
        .await;
        let mut keys = self.keys.lock().expect("keys lock");
        keys.fetched = Some(Instant::now());
        match fetched {
            Ok(set) => {
                for jwk in &set.keys {
                    if let (Some(id), Ok(key)) = (jwk.common.key_id.clone(), DecodingKey::from_jwk(jwk)) {
                        keys.by_kid.insert(id, key);
                    }
                }
            }
            Err(e) => eprintln!("notes: fetching {} failed: {e}", self.jwks_url),
        }
        keys.by_kid.get(kid).cloned()
    }

    async fn verify(&self, headers: &HeaderMap) -> Result<Claims, Response> {
        let unauthorized = |m: &str| error(StatusCode::UNAUTHORIZED, "unauthenticated", m);
        let token = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer ").or_else(|| v.strip_prefix("bearer ")))
            .ok_or_else(|| unauthorized("a bearer token is required"))?;
        let head = jsonwebtoken::decode_header(token).map_err(|_| unauthorized("the token is malformed"))?;
        let kid = head.kid.ok_or_else(|| unauthorized("the token names no key"))?;
        let key = self
            .key(&kid)
            .await
            .ok_or_else(|| unauthorized("the token's key is unknown"))?;
        jsonwebtoken::decode::<Claims>(token, &key, &self.validation)
            .map(|data| data.claims)
            .map_err(|_| unauthorized("the token is invalid or expired"))
    }
}

async fn health() -> Json<Value> {
    Json(json!({"status": "ok"}))
}

async fn list(State(app): State<Arc<App>>, headers: HeaderMap) -> Response {
    let claims = match app.verify(&headers).await {
        Ok(c) => c,
        Err(r) => return r,
    };
    let mine: Vec<String> = {
        let all = app.notes.lock().expect("notes lock");
        all.iter()
            .filter(|(owner, _)| *owner == claims.sub)
            .map(|(_, text)| text.clone())
            .collect()
    };
    served(
        &app,
        Json(json!({"owner": claims.sub, "username": claims.username, "notes": mine})).into_response(),
    )
}

async fn add(State(app): State<Arc<App>>, headers: HeaderMap, body: axum::body::Bytes) -> Response {
    let claims = match app.verify(&headers).await {
        Ok(c) => c,
        Err(r) => return r,
    };
    let text = match serde_json::from_slice::<Value>(&body) {
        Ok(v) => match v.get("text").and_then(Value::as_str) {
            Some(t) if !t.is_empty() && t.len() <= 1000 => t.to_owned(),
            _ => {
                return error(
                    StatusCode::BAD_REQUEST,
                    "bad_note",
                    "expected {\"text\": \"1 to 1000 characters\"}",
                );
            }
        },
        Err(_) => return error(StatusCode::BAD_REQUEST, "bad_json", "the body is not JSON"),
    };
    app.notes
        .lock()
        .expect("notes lock")
        .push((claims.sub.clone(), text.clone()));
    served(
        &app,
        (StatusCode::CREATED, Json(json!({"owner": claims.sub, "text": text}))).into_response(),
    )
}

/// The greeter's greeting for the caller, asked through the gateway with
/// the caller's own token.
async fn greeting(State(app): State<Arc<App>>, headers: HeaderMap) -> Response {
    let claims = match app.verify(&headers).await {
        Ok(c) => c,
        Err(r) => return r,
    };
    let Some(gateway) = &app.gateway else {
        return error(StatusCode::NOT_FOUND, "not_found", "GATEWAY_URL is not set");
    };
    let mut ask = app.http.get(format!("{gateway}/greet/hello"));
    if let Some(auth) = headers.get(header::AUTHORIZATION) {
        ask = ask.header(header::AUTHORIZATION, auth);
    }
    greeted(&app, &claims, ask.send().await).await
}

/// The greeter's greeting for the caller, asked of the greeter itself: notes
/// verified the token, so it says who the caller is as the gateway would.
async fn greeting_direct(State(app): State<Arc<App>>, headers: HeaderMap) -> Response {
    let claims = match app.verify(&headers).await {
        Ok(c) => c,
        Err(r) => return r,
    };
    let Some(greeter) = &app.greeter else {
        return error(StatusCode::NOT_FOUND, "not_found", "GREETER_URL is not set");
    };
    let ask = || {
        app.direct
            .get(format!("{greeter}/hello"))
            .header("x-user-id", &claims.sub)
            .header("x-username", claims.username.as_deref().unwrap_or(&claims.sub))
            .send()
    };
    // A GET is safe to send again: once more when the first instance the
    // name led to did not answer at all.
    let answer = match ask().await {
        Err(_) => ask().await,
        answered => answered,
    };
    greeted(&app, &claims, answer).await
}

/// What the greeter answered, as notes answers it: its greeting, or 502.
async fn greeted(app: &App, claims: &Claims, answer: reqwest::Result<reqwest::Response>) -> Response {
    let greeting = match answer {
        Ok(a) if a.status().is_success() => a.json::<Value>().await.ok(),
        _ => None,
    };
    match greeting {
        Some(greeting) => served(
            app,
            Json(json!({"owner": claims.sub, "greeting": greeting})).into_response(),
        ),
        None => error(
            StatusCode::BAD_GATEWAY,
            "greeter_unavailable",
            "the greeter did not answer",
        ),
    }
}

fn served(app: &App, mut r: Response) -> Response {
    r.headers_mut().insert("x-served-by", app.instance.clone());
    r
}

fn required(name: &str, example: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| {
        eprintln!("notes: {name} must be set, e.g. {name}={example}");
        std::process::exit(2)
    })
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let port: u16 = required("PORT", "8080").parse().unwrap_or_else(|_| {
        eprintln!("notes: PORT must be a port number");
        std::process::exit(2)
    });
    let mut validation = Validation::new(Algorithm::EdDSA);
    validation.set_audience(&[required("JWT_AUDIENCE", "my-api")]);
    let instance = std::env::var("INSTANCE_ID").unwrap_or_else(|_| format!("notes-{port}"));
    let app = Arc::new(App {
        jwks_url: required("JWKS_URL", "http://127.0.0.1:8000/auth/.well-known/jwks.json"),
        validation,
        keys: Mutex::new(Keys {
            by_kid: HashMap::new(),
            fetched: None,
        }),
        http: reqwest::Client::builder()
            .timeout(Duration::from_secs(2))
            .build()
            .expect("an HTTP client"),
        instance: HeaderValue::from_str(&instance).unwrap_or(HeaderValue::from_static("notes")),
        notes: Mutex::new(Vec::new()),
        gateway: std::env::var("GATEWAY_URL").ok().filter(|g| !g.is_empty()),
        greeter: std::env::var("GREETER_URL").ok().filter(|g| !g.is_empty()),
        direct: reqwest::Client::builder()
            .timeout(Duration::from_secs(2))
            .pool_max_idle_per_host(0)
            .build()
            .expect("an HTTP client"),
    });
    let router = Router::new()
        .route("/health", get(health))
        .route("/notes", get(list).post(add))
        .route("/notes/greeting", get(greeting))
        .route("/notes/greeting/direct", get(greeting_direct))
        .with_state(app);
    let host = std::env::var("HOST").unwrap_or_else(|_| "127.0.0.1".to_owned());
    let listener = tokio::net::TcpListener::bind((host.as_str(), port))
        .await
        .unwrap_or_else(|e| {
            eprintln!("notes: cannot listen on {host}:{port}: {e}");
            std::process::exit(1)
        });
    println!("notes listening on {host}:{port} as {instance}");
    let stop = async {
        let mut term =
            tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).expect("SIGTERM handler");
        term.recv().await;
    };
    if let Err(e) = axum::serve(listener, router).with_graceful_shutdown(stop).await {
        eprintln!("notes: {e}");
        std::process::exit(1);
    }
}
