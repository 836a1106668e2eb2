//! What the HTTP/TCP check and endpoint contract tests share: the
//! registries to run against (a fresh dev registry, and real Consul when
//! `CONSUL_HTTP_ADDR` is set), raw HTTP calls in Consul's terms, small
//! local servers for checks to probe, and polling with a deadline.
//!
//! Checks against real Consul need Consul to reach this machine's test
//! servers: an agent on this host (`consul agent -dev`) does. For one that
//! does not share the loopback (a container), set
//! `GANTRY_CONTRACT_CHECK_HOST` to the address it reaches this host by; the
//! test servers then listen on every interface.

#![allow(dead_code)]

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicU16, AtomicUsize, Ordering};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use serde_json::Value;
use tokio::net::TcpListener;
use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;

/// The dev registry's management token in these tests.
pub const TOKEN: &str = "6c1b4d7e-2f0a-4e8b-9c3d-5a6f7e8d9c0b";
/// Where the check servers are reached from the registry (see the module docs).
pub const CHECK_HOST_VAR: &str = "GANTRY_CONTRACT_CHECK_HOST";

/// A registry under test, reached over raw HTTP with its token.
#[derive(Clone)]
pub struct Registry {
    pub label: String,
    pub base: String,
    pub token: Option<String>,
    /// The dev registry (not real Consul): it honours sub-second intervals
    /// and graces, and refuses what Consul lets pass.
    pub is_dev: bool,
}

/// A dev registry on a free port with ACLs on; its `host:port`.
pub async fn dev_registry() -> String {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let options = gantry_registry::Options {
        acl_token: Some(TOKEN.to_owned()),
        ..gantry_registry::Options::default()
    };
    tokio::spawn(gantry_registry::run(listener, options, std::future::pending()));
    addr.to_string()
}

/// A fresh dev registry, and real Consul when `CONSUL_HTTP_ADDR` is set
/// (with `CONSUL_HTTP_TOKEN` when its ACLs are on).
pub async fn registries() -> Vec<Registry> {
    let mut out = vec![Registry {
        label: "dev registry".into(),
        base: format!("http://{}", dev_registry().await),
        token: Some(TOKEN.into()),
        is_dev: true,
    }];
    if let Ok(addr) = std::env::var("CONSUL_HTTP_ADDR") {
        let base = if addr.contains("://") {
            addr.clone()
        } else {
            format!("http://{addr}")
        };
        out.push(Registry {
            label: format!("consul at {addr}"),
            base: base.trim_end_matches('/').to_owned(),
            token: std::env::var("CONSUL_HTTP_TOKEN").ok().filter(|t| !t.is_empty()),
            is_dev: false,
        });
    }
    out
}

/// An answer: status, headers, body text.
pub struct Answer {
    pub status: u16,
    pub headers: reqwest::header::HeaderMap,
    pub text: String,
}

impl Answer {
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.text).unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.text))
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
}

impl Registry {
    async fn send(&self, req: reqwest::RequestBuilder, token: bool) -> Answer {
        let req = match (&self.token, token) {
            (Some(t), true) => req.header("X-Consul-Token", t),
            _ => req,
        };
        let resp = req.send().await.unwrap();
        let status = resp.status().as_u16();
        let headers = resp.headers().clone();
        Answer {
            status,
            headers,
            text: resp.text().await.unwrap(),
        }
    }

    pub async fn get(&self, path: &str) -> Answer {
        self.send(reqwest::Client::new().get(format!("{}{path}", self.base)), true)
            .await
    }

    /// A read without any token (Consul's anonymous token).
    pub async fn get_anonymous(&self, path: &str) -> Answer {
        self.send(reqwest::Client::new().get(format!("{}{path}", self.base)), false)
            .await
    }

    pub async fn put(&self, path: &str, body: &Value) -> Answer {
        let req = reqwest::Client::new()
            .put(format!("{}{path}", self.base))
            .body(body.to_string());
        self.send(req, true).await
    }

    /// A PUT whose body is `bytes` as they are (a KV value).
    pub async fn put_bytes(&self, path: &str, bytes: impl Into<reqwest::Body>) -> Answer {
        let req = reqwest::Client::new().put(format!("{}{path}", self.base)).body(bytes);
        self.send(req, true).await
    }

    pub async fn delete(&self, path: &str) -> Answer {
        self.send(reqwest::Client::new().delete(format!("{}{path}", self.base)), true)
            .await
    }

    /// The `X-Consul-Index` of an answer, which a read must carry.
    pub fn index(&self, a: &Answer) -> u64 {
        a.header("X-Consul-Index")
            .and_then(|i| i.parse().ok())
            .unwrap_or_else(|| panic!("{}: no X-Consul-Index on a read", self.label))
    }

    /// The agent's node name, from `/v1/agent/self`.
    pub async fn node_name(&self) -> String {
        let a = self.get("/v1/agent/self").await;
        assert_eq!(a.status, 200, "{}: {}", self.label, a.text);
        a.json()["Config"]["NodeName"]
            .as_str()
            .unwrap_or_else(|| panic!("{}: no Config.NodeName in {}", self.label, a.text))
            .to_owned()
    }

    /// Registers `body` (`PUT /v1/agent/service/register`), which must succeed.
    pub async fn register(&self, body: Value) {
        let a = self.put("/v1/agent/service/register", &body).await;
        assert_eq!(a.status, 200, "{}: registering {body}: {}", self.label, a.text);
    }

    pub async fn deregister(&self, id: &str) {
        let a = self
            .put(&format!("/v1/agent/service/deregister/{id}"), &Value::Null)
            .await;
        assert_eq!(a.status, 200, "{}: deregistering {id}: {}", self.label, a.text);
    }

    /// The check `id` as this agent holds it (`/v1/agent/checks`, which a
    /// Consul agent answers from its local state, updated as each run ends).
    pub async fn check(&self, id: &str) -> Option<Value> {
        let a = self.get("/v1/agent/checks").await;
        assert_eq!(a.status, 200, "{}: {}", self.label, a.text);
        a.json().get(id).cloned()
    }

    /// `(Status, Output)` of the check `id`, which must exist.
    pub async fn check_state(&self, id: &str) -> (String, String) {
        let c = self
            .check(id)
            .await
            .unwrap_or_else(|| panic!("{}: no check {id}", self.label));
        (
            c["Status"].as_str().unwrap_or_default().to_owned(),
            c["Output"].as_str().unwrap_or_default().to_owned(),
        )
    }

    /// Polls until the check `id` has `status`; its output then.
    pub async fn until_status(&self, id: &str, status: &str) -> String {
        let what = format!("{}: check {id} to be {status}", self.label);
        eventually(&what, self.patience(), || async {
            let (s, output) = self.check_state(id).await;
            (s == status).then_some(output)
        })
        .await
    }

    /// How long a change driven by checks may take to show: Consul runs
    /// checks at most once a second, the dev registry as often as asked.
    pub fn patience(&self) -> Duration {
        if self.is_dev {
            Duration::from_secs(10)
        } else {
            Duration::from_secs(30)
        }
    }
}

/// Polls `probe` until it yields a value, failing the test naming `what`
/// when `within` runs out.
pub async fn eventually<T, F, Fut>(what: &str, within: Duration, mut probe: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = Instant::now() + within;
    loop {
        if let Some(v) = probe().await {
            return v;
        }
        assert!(Instant::now() < deadline, "gave up after {within:?} waiting for {what}");
        // The pause between polls, not a stand-in for readiness.
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

/// A name no other test run uses.
pub fn unique(prefix: &str) -> String {
    format!(
        "{prefix}-{}",
        gantry_common::jwt::random_id(6).to_lowercase().replace(['-', '_'], "x")
    )
}

/// A listener for a check server, and the `host:port` the registry reaches it at.
pub async fn check_listener() -> (TcpListener, String) {
    let (bind, host) = match std::env::var(CHECK_HOST_VAR) {
        Ok(host) if !host.is_empty() => ("0.0.0.0:0", host),
        _ => ("127.0.0.1:0", "127.0.0.1".to_owned()),
    };
    let listener = TcpListener::bind(bind).await.unwrap();
    let port = listener.local_addr().unwrap().port();
    (listener, format!("{host}:{port}"))
}

/// A `host:port` where nothing listens (bound, then closed).
pub async fn closed_port() -> String {
    let (listener, addr) = check_listener().await;
    drop(listener);
    addr
}

/// Serves HTTP/1 on `listener`, answering each request with what `answer` gives.
fn serve<F, Fut>(listener: TcpListener, answer: F)
where
    F: Fn() -> Fut + Clone + Send + Sync + 'static,
    Fut: Future<Output = (u16, String)> + Send + 'static,
{
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let answer = answer.clone();
            tokio::spawn(async move {
                let service = hyper::service::service_fn(move |_req: hyper::Request<Incoming>| {
                    let answer = answer.clone();
                    async move {
                        let (status, body) = answer().await;
                        hyper::Response::builder()
                            .status(status)
                            .body(Full::new(Bytes::from(body)))
                    }
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
}

/// An HTTP server answering every request with the status it is set to
/// (body `status N`), counting requests.
pub struct FixedServer {
    pub url: String,
    status: Arc<AtomicU16>,
    hits: Arc<AtomicUsize>,
}

impl FixedServer {
    pub async fn start(status: u16) -> Self {
        let (listener, addr) = check_listener().await;
        let status = Arc::new(AtomicU16::new(status));
        let hits = Arc::new(AtomicUsize::new(0));
        let (s, h) = (status.clone(), hits.clone());
        serve(listener, move || {
            let (s, h) = (s.clone(), h.clone());
            async move {
                h.fetch_add(1, Ordering::SeqCst);
                let code = s.load(Ordering::SeqCst);
                (code, format!("status {code}"))
            }
        });
        Self {
            url: format!("http://{addr}/health"),
            status,
            hits,
        }
    }

    pub fn set(&self, status: u16) {
        self.status.store(status, Ordering::SeqCst);
    }

    pub fn hits(&self) -> usize {
        self.hits.load(Ordering::SeqCst)
    }
}

/// A request held by a [`ScriptedServer`] until the test answers it.
pub struct Pending(oneshot::Sender<u16>);

impl Pending {
    pub fn answer(self, status: u16) {
        let _ = self.0.send(status);
    }
}

/// An HTTP server whose every answer the test gives, one request at a
/// time: it sees each check run arrive and decides its result.
pub struct ScriptedServer {
    pub url: String,
    requests: mpsc::UnboundedReceiver<Pending>,
}

impl ScriptedServer {
    pub async fn start() -> Self {
        let (listener, addr) = check_listener().await;
        let (tx, requests) = mpsc::unbounded_channel();
        serve(listener, move || {
            let tx = tx.clone();
            async move {
                let (reply, answer) = oneshot::channel();
                if tx.send(Pending(reply)).is_err() {
                    return (503, "the test is over".to_owned());
                }
                let code = answer.await.unwrap_or(503);
                (code, format!("status {code}"))
            }
        });
        Self {
            url: format!("http://{addr}/health"),
            requests,
        }
    }

    /// The next check run's request, within `within`.
    pub async fn next(&mut self, within: Duration) -> Pending {
        tokio::time::timeout(within, self.requests.recv())
            .await
            .unwrap_or_else(|_| panic!("no check request within {within:?}"))
            .expect("the server runs while the test does")
    }
}

/// A server that accepts connections and never answers; its URL.
pub async fn silent_server() -> String {
    let (listener, addr) = check_listener().await;
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((stream, _)) = listener.accept().await {
            held.push(stream);
        }
    });
    format!("http://{addr}/health")
}
