//! A test upstream: an HTTP server that answers every request with a JSON
//! description of the request it received, and keeps a log of them.
//!
//! Why: what a gateway does to a request on its way (headers it strips or
//! adds, the body and method it passes on) is only visible where the request
//! arrives. A real service answers with its own data and hides all that; an
//! [`Echo`] registered as an instance of a service shows it, and counts every
//! connection and request, so a check can also say how often a broken
//! instance was tried ([`Mode::CloseConnections`]).
//!
//! [`EchoInstance`] is an echo registered in the registry like any instance,
//! by the services' own [`Registration`]: with a TTL check that the harness
//! heartbeats, as an orchestrator does for the processes it runs, and that a
//! test can fail and pass again while the server keeps answering
//! ([`Registration::set_check`]).

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use bytes::Bytes;
use gantry_common::registration::Registration;
use gantry_common::registry::{AgentRegistration, RegistryClient, RegistryError, ServiceRecord};
use http_body_util::{BodyExt as _, Full, Limited};
use hyper::body::Incoming;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use serde::{Deserialize, Serialize};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::{JoinHandle, JoinSet};

use crate::error::HarnessError;
use crate::faults::{FaultProxy, Protocol};
use crate::stack::{DEFAULT_CHECK_TTL, Stack, wait_passing};

/// The largest request body an echo reads; a larger one is answered 413.
pub const MAX_BODY_BYTES: usize = 1024 * 1024;

/// How an [`Echo`] treats what it is sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Answer every request `200` with the [`Received`] request as JSON.
    Answer,
    /// Close every connection as soon as it is accepted, unread and
    /// unanswered, and close the connections already open. The process (and
    /// its registry check) stays alive: a failure only passive health checks
    /// (a proxy's outlier ejection) can see. Each such connection is counted
    /// in [`Echo::closed_unanswered`], so the attempts a proxy made on a
    /// broken instance can be counted at the instance.
    CloseConnections,
}

/// One request as the echo received it. It is also the JSON body of the
/// echo's answer, so a client can read it from the response alone.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Received {
    /// The id the echo was started with (also sent as `X-Instance-Id`).
    pub instance: String,
    /// The method as it arrived, e.g. `POST`.
    pub method: String,
    /// The path as it arrived, without the query.
    pub path: String,
    /// The query string without the `?`, if the request had one.
    pub query: Option<String>,
    /// Every header in the order received, names lower-cased; a repeated
    /// header appears once per value. Values that are not UTF-8 are decoded
    /// lossily.
    pub headers: Vec<(String, String)>,
    /// The body decoded as UTF-8 (invalid sequences replaced); `body_len` is
    /// its exact length in bytes.
    pub body: String,
    /// The body's exact length in bytes.
    pub body_len: usize,
    /// The address of the peer that sent it (the proxy, behind a gateway).
    pub peer: String,
}

impl Received {
    /// The first value of header `name` (any case).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.header_values(name).into_iter().next()
    }

    /// Every value of header `name` (any case), in order.
    pub fn header_values(&self, name: &str) -> Vec<&str> {
        self.headers
            .iter()
            .filter(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
            .collect()
    }

    /// The echo's answer body parsed back.
    pub fn from_json(body: &str) -> Result<Self, serde_json::Error> {
        serde_json::from_str(body)
    }
}

/// What the server tasks share with the [`Echo`] handle.
struct Shared {
    id: String,
    mode: watch::Sender<Mode>,
    log: Mutex<Vec<Received>>,
    connections: AtomicUsize,
    closed_unanswered: AtomicUsize,
}

/// A running echo server on `127.0.0.1`, in this process. Dropping it stops
/// the server and closes its connections.
pub struct Echo {
    addr: SocketAddr,
    shared: Arc<Shared>,
    server: JoinHandle<()>,
}

impl std::fmt::Debug for Echo {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Echo")
            .field("id", &self.shared.id)
            .field("addr", &self.addr)
            .field("mode", &self.mode())
            .finish_non_exhaustive()
    }
}

impl Echo {
    /// Starts an echo answering as `id` on a free loopback port.
    pub async fn start(id: &str) -> std::io::Result<Self> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let shared = Arc::new(Shared {
            id: id.to_owned(),
            mode: watch::Sender::new(Mode::Answer),
            log: Mutex::new(Vec::new()),
            connections: AtomicUsize::new(0),
            closed_unanswered: AtomicUsize::new(0),
        });
        let server = tokio::spawn(serve(listener, shared.clone()));
        Ok(Self { addr, shared, server })
    }

    /// The id it answers as (`X-Instance-Id`, [`Received::instance`]).
    pub fn id(&self) -> &str {
        &self.shared.id
    }

    /// The loopback address it listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// How it treats what it is sent now.
    pub fn mode(&self) -> Mode {
        *self.shared.mode.borrow()
    }

    /// Switches how the echo behaves from now on; switching to
    /// [`Mode::CloseConnections`] also closes the connections open now, so
    /// a proxy's kept-alive ones do not keep being answered.
    pub fn set_mode(&self, mode: Mode) {
        self.shared.mode.send_replace(mode);
    }

    /// Every request answered so far, oldest first.
    pub fn received(&self) -> Vec<Received> {
        self.shared.log.lock().unwrap_or_else(PoisonError::into_inner).clone()
    }

    /// How many requests were answered so far.
    pub fn requests(&self) -> usize {
        self.shared.log.lock().unwrap_or_else(PoisonError::into_inner).len()
    }

    /// How many connections were accepted so far, in any mode.
    pub fn connections(&self) -> usize {
        self.shared.connections.load(Ordering::SeqCst)
    }

    /// How many connections were accepted and closed unanswered in
    /// [`Mode::CloseConnections`]: each is one attempt a client made on the
    /// broken instance.
    pub fn closed_unanswered(&self) -> usize {
        self.shared.closed_unanswered.load(Ordering::SeqCst)
    }
}

impl Drop for Echo {
    fn drop(&mut self) {
        // The accept loop owns the connection tasks: aborting it drops them.
        self.server.abort();
    }
}

async fn serve(listener: TcpListener, shared: Arc<Shared>) {
    let mut connections = JoinSet::new();
    loop {
        let (stream, peer) = match listener.accept().await {
            Ok(accepted) => accepted,
            Err(e) => {
                // Out of descriptors and the like: pause rather than spin.
                tracing::debug!(error = %e, "echo accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        shared.connections.fetch_add(1, Ordering::SeqCst);
        // Reap finished connections so the set does not grow for ever.
        while connections.try_join_next().is_some() {}
        if *shared.mode.borrow() == Mode::CloseConnections {
            shared.closed_unanswered.fetch_add(1, Ordering::SeqCst);
            drop(stream);
            continue;
        }
        let _ = stream.set_nodelay(true);
        let mut mode = shared.mode.subscribe();
        let for_service = shared.clone();
        let service = hyper::service::service_fn(move |req| answer(for_service.clone(), peer, req));
        connections.spawn(async move {
            let conn = hyper::server::conn::http1::Builder::new().serve_connection(TokioIo::new(stream), service);
            tokio::select! {
                result = conn => {
                    if let Err(e) = result {
                        tracing::debug!(error = %e, "echo connection ended with an error");
                    }
                }
                // Dropping the connection closes it, mid-request or idle.
                _ = mode.wait_for(|m| *m == Mode::CloseConnections) => {}
            }
        });
    }
}

async fn answer(
    shared: Arc<Shared>,
    peer: SocketAddr,
    req: Request<Incoming>,
) -> Result<Response<Full<Bytes>>, Infallible> {
    let (parts, body) = req.into_parts();
    let body = match Limited::new(body, MAX_BODY_BYTES).collect().await {
        Ok(collected) => collected.to_bytes(),
        Err(e) => {
            let status = if e.is::<http_body_util::LengthLimitError>() {
                hyper::StatusCode::PAYLOAD_TOO_LARGE
            } else {
                hyper::StatusCode::BAD_REQUEST
            };
            let mut r = Response::new(Full::new(Bytes::new()));
            *r.status_mut() = status;
            return Ok(r);
        }
    };
    let received = Received {
        instance: shared.id.clone(),
        method: parts.method.to_string(),
        path: parts.uri.path().to_owned(),
        query: parts.uri.query().map(str::to_owned),
        headers: parts
            .headers
            .iter()
            .map(|(n, v)| {
                (
                    n.as_str().to_owned(),
                    String::from_utf8_lossy(v.as_bytes()).into_owned(),
                )
            })
            .collect(),
        body: String::from_utf8_lossy(&body).into_owned(),
        body_len: body.len(),
        peer: peer.to_string(),
    };
    let json = serde_json::to_vec(&received).expect("strings always serialize");
    shared.log.lock().unwrap_or_else(PoisonError::into_inner).push(received);
    let mut r = Response::new(Full::new(Bytes::from(json)));
    let h = r.headers_mut();
    h.insert(
        hyper::header::CONTENT_TYPE,
        "application/json".parse().expect("a header value"),
    );
    if let Ok(id) = shared.id.parse() {
        h.insert("x-instance-id", id);
    }
    Ok(r)
}

/// The most attempts a client with passive health (outlier ejection) may
/// make on an instance that fails every one of them, within `elapsed` of the
/// first failure, when each failure ejects the instance and its `n`th
/// ejection in a row (from 1) lasts `ejection(n)`, and requests try it one
/// at a time. Failure k (from 0) comes no earlier than the sum of the first
/// k ejections (with Gantry's defaults, 1 s × n: 0, 1, 3, 6, 10 s …), so the
/// bound is 1 plus how many of those sums fit in `elapsed`. Count the
/// attempts at the instance ([`Echo::closed_unanswered`]) and compare.
pub fn attempts_allowed(elapsed: Duration, ejection: impl Fn(u32) -> Duration) -> usize {
    let mut attempts = 1;
    let mut next_at = Duration::ZERO;
    for n in 1.. {
        let time = ejection(n);
        assert!(!time.is_zero(), "a zero ejection allows any number of attempts");
        next_at += time;
        if next_at > elapsed {
            break;
        }
        attempts += 1;
    }
    attempts
}

/// An [`Echo`] registered as an instance of a service, with the
/// [`Registration`] that heartbeats its TTL check (and lets a test fail it,
/// [`Registration::set_check`]). Dropping it stops both; the registry drops
/// the instance when its check has expired and been critical for a while, or
/// at once with [`EchoInstance::deregister`].
#[derive(Debug)]
pub struct EchoInstance {
    /// The server, to switch its mode and read what it received.
    pub echo: Echo,
    /// Its registration: heartbeats its TTL check; a test fails and passes
    /// the check through it.
    pub registration: Registration,
}

impl EchoInstance {
    /// Starts an echo answering as `id` and registers it as instance `id` of
    /// `service` at its loopback address in `registry` (which must carry the
    /// registry's ACL token, e.g. `Stack::registry()`), with a TTL check of
    /// `ttl`; returns once the registry lists it as passing.
    pub async fn start(registry: RegistryClient, service: &str, id: &str, ttl: Duration) -> Result<Self, HarnessError> {
        Self::start_behind(registry, service, id, ttl, None).await
    }

    /// [`EchoInstance::start`], registered at the address `faults` gives
    /// its link named `id` (an HTTP link in front of it), when given.
    pub async fn start_behind(
        registry: RegistryClient,
        service: &str,
        id: &str,
        ttl: Duration,
        faults: Option<&FaultProxy>,
    ) -> Result<Self, HarnessError> {
        let echo = Echo::start(id)
            .await
            .map_err(|e| HarnessError::Io(format!("starting echo upstream {id}"), e))?;
        let advertised = match faults {
            Some(f) => f
                .ensure(id, &echo.addr().to_string(), Protocol::Http)
                .await
                .map_err(|e| HarnessError::Faults(format!("the link {id}: {e}")))?,
            None => echo.addr(),
        };
        let record = ServiceRecord {
            id: id.to_owned(),
            name: service.to_owned(),
            address: advertised.ip().to_string(),
            port: advertised.port(),
            tags: vec!["echo".to_owned()],
            meta: BTreeMap::from([("harness".to_owned(), "echo".to_owned())]),
        };
        // Reaped only long after: a check failed on purpose must not get the
        // instance removed in the middle of a test.
        let reg = AgentRegistration::with_ttl(record, ttl, Duration::from_secs(60));
        let registration = Registration::start(registry.clone(), reg)
            .await
            .map_err(|e| HarnessError::Unsupported(format!("registering echo upstream {id} as {service}: {e}")))?;
        wait_passing(&registry, service, id, None).await?;
        Ok(Self { echo, registration })
    }

    /// Starts one registered as instance `id` of `service` in `stack`'s
    /// registry (with its ACL token), heartbeated with the TTL the stack's
    /// own services use.
    /// On a stack with fault links, it is registered behind a link of its
    /// own named `id` (`stack.link_named(id)`).
    pub async fn in_stack(stack: &Stack, service: &str, id: &str) -> Result<Self, HarnessError> {
        Self::start_behind(stack.registry(), service, id, DEFAULT_CHECK_TTL, stack.faults()).await
    }

    /// Its instance id, which is also the id the echo answers as.
    pub fn id(&self) -> &str {
        self.echo.id()
    }

    /// Stops heartbeating and removes the instance from the registry; the
    /// server stops when this is dropped.
    pub async fn deregister(self) -> Result<(), RegistryError> {
        self.registration.deregister().await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn answers_with_what_it_received_and_logs_it() {
        let echo = Echo::start("echo-t").await.unwrap();
        let http = reqwest::Client::new();
        let resp = http
            .post(format!("http://{}/some/path?a=1&b=two", echo.addr()))
            .header("x-probe", "one")
            .header("x-probe", "two")
            .body("hello, upstream")
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 200);
        assert_eq!(resp.headers()["x-instance-id"], "echo-t");
        let got = Received::from_json(&resp.text().await.unwrap()).unwrap();
        assert_eq!(got.instance, "echo-t");
        assert_eq!(got.method, "POST");
        assert_eq!(got.path, "/some/path");
        assert_eq!(got.query.as_deref(), Some("a=1&b=two"));
        assert_eq!(got.header_values("X-Probe"), ["one", "two"]);
        assert_eq!(got.body, "hello, upstream");
        assert_eq!(got.body_len, 15);
        assert!(got.peer.starts_with("127.0.0.1:"), "{}", got.peer);
        assert_eq!(echo.received(), [got]);
        assert_eq!(echo.requests(), 1);
        assert_eq!(echo.connections(), 1);
        assert_eq!(echo.closed_unanswered(), 0);
    }

    #[tokio::test]
    async fn closing_mode_counts_attempts_and_drops_open_connections() {
        let echo = Echo::start("echo-c").await.unwrap();
        let url = format!("http://{}/", echo.addr());
        // A kept-alive connection answered once…
        let http = reqwest::Client::new();
        assert_eq!(http.get(&url).send().await.unwrap().status(), 200);
        echo.set_mode(Mode::CloseConnections);
        // …is closed by the switch, and every new one is closed unanswered.
        for _ in 0..3 {
            let fresh = reqwest::Client::builder().pool_max_idle_per_host(0).build().unwrap();
            assert!(fresh.get(&url).send().await.is_err());
        }
        assert_eq!(echo.closed_unanswered(), 3);
        assert!(http.get(&url).send().await.is_err());
        assert_eq!(echo.requests(), 1);
        // The client found its kept-alive connection closed and dialled again.
        assert!(echo.closed_unanswered() >= 4, "{}", echo.closed_unanswered());
        echo.set_mode(Mode::Answer);
        assert_eq!(http.get(&url).send().await.unwrap().status(), 200);
        assert_eq!(echo.requests(), 2);
    }

    #[test]
    fn attempts_allowed_follow_the_ejections() {
        let s = Duration::from_secs;
        // Ejections of 1 s × n, at most 30 s (the gateway's defaults).
        let allowed = |e| attempts_allowed(e, |n| s(u64::from(n)).min(s(30)));
        assert_eq!(allowed(Duration::from_millis(400)), 1);
        assert_eq!(allowed(s(1)), 2);
        assert_eq!(allowed(s(2)), 2);
        assert_eq!(allowed(s(3)), 3);
        assert_eq!(allowed(s(6)), 4);
        assert_eq!(allowed(s(10)), 5);
        // Doubling from 1 s: 1, 3, 7 s.
        assert_eq!(attempts_allowed(s(7), |n| s(1 << (n - 1))), 4);
    }

    #[tokio::test]
    async fn stops_when_dropped() {
        let echo = Echo::start("echo-d").await.unwrap();
        let addr = echo.addr();
        drop(echo);
        let mut refused = false;
        for _ in 0..100 {
            if tokio::net::TcpStream::connect(addr).await.is_err() {
                refused = true;
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        assert!(refused, "the echo still accepts connections after it was dropped");
    }
}
