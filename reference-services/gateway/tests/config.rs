//! The declarative configuration end to end: a gateway on port 0 with a
//! routes file, in front of echo upstreams registered in a real (in-process)
//! dev registry, so what each route does to a request is seen where the
//! request arrives. Reloads go through the same [`Reloader`] the binary's
//! SIGHUP handler uses.
//!
//! Tokens are HS256 here, so the gateway verifies them with its configured
//! secret and fetches no JWKS (fetching it from `jwks_service` is covered by
//! the stack's scenarios, against the real auth service).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use gantry_common::jwt::{JwtConfig, KeyKind, Signer, now_secs};
use gantry_gateway::{ReloadError, Reloader};
use gantry_harness::drive::echo::{EchoInstance, Received};
use gantry_harness::drive::metrics::Scrape;
use gantry_harness::drive::raw::read_response;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;
use tokio::time::{Instant, timeout};

mod support;
use support::SLACK;
const SECRET: &[u8] = b"0123456789abcdef0123456789abcdef-config-tests";

/// Routes to two services: `/greet` strips its prefix, verifies a token
/// when one is presented and passes the caller on; `/private` needs one.
const ROUTES: &str = r#"
jwks_service = "greeter"

[[services]]
name = "greeter"

[[routes]]
prefix = "/greet"
methods = ["GET", "POST"]
service = "greeter"
identity = "optional"
identity_headers = true
strip_prefix = true

[[routes]]
prefix = "/private"
service = "greeter"
identity = "required"
identity_headers = true
"#;

/// [`ROUTES`] plus the service `other` and a route to it.
fn with_other_route() -> String {
    format!("{ROUTES}\n[[services]]\nname = \"other\"\n\n[[routes]]\nprefix = \"/other\"\nservice = \"other\"\n")
}

struct Fixture {
    gateway: SocketAddr,
    admin: String,
    reloader: Reloader,
    routes_file: PathBuf,
    greeter: EchoInstance,
    other: EchoInstance,
    _dir: tempfile::TempDir,
    _served: support::Gateway,
    _registry: support::Registry,
}

impl Fixture {
    /// A registry, an echo for each service, and a gateway on [`ROUTES`],
    /// returned once the gateway has found the greeter's instance.
    async fn start() -> Self {
        let registry = support::registry().await;
        let ttl = Duration::from_secs(30);
        let greeter = EchoInstance::start(registry.client.clone(), "greeter", "greeter-1", ttl)
            .await
            .unwrap();
        let other = EchoInstance::start(registry.client.clone(), "other", "other-1", ttl)
            .await
            .unwrap();
        let dir = tempfile::tempdir().unwrap();
        let mut cfg = support::config(dir.path(), ROUTES, &registry.client);
        cfg.jwt = JwtConfig {
            kind: KeyKind::Hs256,
            secret: Some(Arc::from(SECRET)),
            ..cfg.jwt
        };
        let routes_file = cfg.routes_file.clone().expect("the routes file");
        let (reloader, reloads) = gantry_gateway::reload::channel();
        let served = support::serve(cfg, Some(reloads)).await;
        let fixture = Self {
            gateway: served.addr,
            admin: served.admin.clone(),
            reloader,
            routes_file,
            greeter,
            other,
            _dir: dir,
            _served: served,
            _registry: registry,
        };
        fixture.until_instances("greeter", &["greeter-1"]).await;
        fixture
    }

    /// Waits until the gateway's snapshot of `service` is `ids`.
    async fn until_instances(&self, service: &str, ids: &[&str]) {
        support::until_instances(&self.admin, service, ids).await;
    }

    async fn connect(&self) -> TcpStream {
        TcpStream::connect(self.gateway).await.unwrap()
    }

    async fn metric(&self, series: &str) -> f64 {
        Scrape::of(&self.admin).await.unwrap().value(series)
    }
}

/// A token for user `u_42`, named `ada`.
fn token() -> String {
    let cfg = JwtConfig::from_env().expect("the default JWT config");
    let now = now_secs();
    Signer::hs256(SECRET).sign(&serde_json::json!({
        "sub": "u_42", "iss": cfg.issuer, "aud": cfg.audience, "username": "ada",
        "iat": now, "exp": now + 600, "jti": "config-test",
    }))
}

/// Sends `method path` with `headers` on `stream`, kept alive; the status
/// and the whole response (head and body).
async fn send(stream: &mut TcpStream, method: &str, path: &str, headers: &[(&str, &str)]) -> (u16, String) {
    let mut head = format!("{method} {path} HTTP/1.1\r\nHost: gateway.test\r\n");
    for (name, value) in headers {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    head.push_str("\r\n");
    stream.write_all(head.as_bytes()).await.unwrap();
    timeout(SLACK, read_response(stream)).await.expect("an answer in time")
}

/// What the echo behind the gateway received, from its answer.
fn received(status: u16, response: &str) -> Received {
    assert_eq!(status, 200, "{response}");
    let body = response.split_once("\r\n\r\n").map_or("", |(_, body)| body);
    Received::from_json(body).unwrap_or_else(|e| panic!("not an echo answer ({e}): {response}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn routes_strip_prefixes_and_pass_on_only_the_verified_identity() {
    let f = Fixture::start().await;
    let mut c = f.connect().await;
    let bearer = format!("Bearer {}", token());
    let spoofed = [("X-User-Id", "admin"), ("X-Username", "root")];

    // No credentials on an optional route: through, with no identity at all.
    let (status, body) = send(&mut c, "GET", "/greet/hello?x=1", &spoofed).await;
    let got = received(status, &body);
    assert_eq!((got.path.as_str(), got.query.as_deref()), ("/hello", Some("x=1")));
    assert_eq!(got.header("x-user-id"), None, "a client-sent X-User-Id arrived");
    assert_eq!(got.header("x-username"), None, "a client-sent X-Username arrived");

    // A valid token: the gateway's headers, and only those.
    let mut with_token = spoofed.to_vec();
    with_token.push(("Authorization", &bearer));
    let (status, body) = send(&mut c, "POST", "/greet", &with_token).await;
    let got = received(status, &body);
    assert_eq!(got.path, "/");
    assert_eq!(got.header_values("x-user-id"), ["u_42"]);
    assert_eq!(got.header_values("x-username"), ["ada"]);

    // A bad token where identity is optional is still a 401, not anonymous.
    let (status, _) = send(&mut c, "GET", "/greet", &[("Authorization", "Bearer not-a-token")]).await;
    assert_eq!(status, 401);

    // A required route: 401 without, the caller's headers with; no stripping.
    let (status, _) = send(&mut c, "GET", "/private/x", &spoofed).await;
    assert_eq!(status, 401);
    let (status, body) = send(&mut c, "GET", "/private/x", &with_token).await;
    let got = received(status, &body);
    assert_eq!(got.path, "/private/x");
    assert_eq!(got.header_values("x-user-id"), ["u_42"]);

    // Other methods: 405 naming the ones there are; other paths: 404.
    let (status, text) = send(&mut c, "DELETE", "/greet/x", &[]).await;
    assert_eq!(status, 405, "{text}");
    assert!(text.to_ascii_lowercase().contains("\r\nallow: get, post\r\n"), "{text}");
    let (status, _) = send(&mut c, "GET", "/greetings", &[]).await;
    assert_eq!(status, 404);
    let (status, _) = send(&mut c, "GET", "/other/x", &[]).await;
    assert_eq!(status, 404);
    assert_eq!(f.other.echo.requests(), 0);
    assert_eq!(f.greeter.echo.requests(), 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reload_adds_a_route_and_no_connection_or_request_notices() {
    let f = Fixture::start().await;
    // A connection kept alive from before the reload.
    let mut before = f.connect().await;
    assert_eq!(send(&mut before, "GET", "/greet/a", &[]).await.0, 200);
    assert_eq!(send(&mut before, "GET", "/other/x", &[]).await.0, 404);

    // Requests all through the reload, on one kept-alive connection.
    let stop = Arc::new(AtomicBool::new(false));
    let (sent, failed) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    let load = {
        let (stop, sent, failed) = (stop.clone(), sent.clone(), failed.clone());
        let mut c = f.connect().await;
        tokio::spawn(async move {
            while !stop.load(Ordering::SeqCst) {
                let (status, _) = send(&mut c, "GET", "/greet/load", &[]).await;
                sent.fetch_add(1, Ordering::SeqCst);
                if status != 200 {
                    failed.fetch_add(1, Ordering::SeqCst);
                }
            }
        })
    };
    // Some requests go out before the reload, some after.
    let deadline = Instant::now() + SLACK;
    while sent.load(Ordering::SeqCst) < 20 {
        assert!(Instant::now() < deadline, "the load made no progress");
        tokio::task::yield_now().await;
    }
    let answered_before = f
        .metric("gantry_gateway_requests_total{route=\"greeter\",status=\"2xx\"}")
        .await;

    std::fs::write(&f.routes_file, with_other_route()).unwrap();
    let report = f.reloader.reload().await.expect("the new file is accepted");
    assert_eq!(report.added, ["other"]);
    assert!(report.removed.is_empty());
    assert_eq!(report.routes, 3);
    let at_reload = sent.load(Ordering::SeqCst);

    // The new route works at once, on the connection opened before.
    let (status, body) = send(&mut before, "GET", "/other/x", &[]).await;
    assert_eq!(received(status, &body).instance, "other-1");
    assert_eq!(send(&mut before, "GET", "/greet/a", &[]).await.0, 200);

    let deadline = Instant::now() + SLACK;
    while sent.load(Ordering::SeqCst) < at_reload + 20 {
        assert!(Instant::now() < deadline, "the load stalled after the reload");
        tokio::task::yield_now().await;
    }
    stop.store(true, Ordering::SeqCst);
    load.await.unwrap();
    assert_eq!(
        failed.load(Ordering::SeqCst),
        0,
        "of {} requests",
        sent.load(Ordering::SeqCst)
    );

    // The greeter stayed, so did its counters.
    let answered_after = f
        .metric("gantry_gateway_requests_total{route=\"greeter\",status=\"2xx\"}")
        .await;
    assert!(
        answered_after >= answered_before + 20.0,
        "{answered_before} then {answered_after}"
    );
    assert_eq!(
        f.metric("gantry_gateway_config_reloads_total{result=\"ok\"}").await,
        1.0
    );
    assert_eq!(
        f.metric("gantry_gateway_config_reloads_total{result=\"error\"}").await,
        0.0
    );

    // Removing a route and its service: gone for the next request.
    std::fs::write(&f.routes_file, ROUTES).unwrap();
    let report = f.reloader.reload().await.expect("the original file is accepted");
    assert_eq!(report.removed, ["other"]);
    assert_eq!(send(&mut before, "GET", "/other/x", &[]).await.0, 404);
    let scrape = Scrape::of(&f.admin).await.unwrap();
    assert!(
        scrape
            .get("gantry_gateway_requests_total{route=\"other\",status=\"2xx\"}")
            .is_none()
    );
    assert_eq!(send(&mut before, "GET", "/greet/a", &[]).await.0, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_file_on_reload_keeps_the_routes_in_force() {
    let f = Fixture::start().await;
    let mut c = f.connect().await;
    let bad = with_other_route().replace("prefix = \"/other\"", "prefix = \"/other\"\nhots = \"x\"");
    std::fs::write(&f.routes_file, &bad).unwrap();
    let line = bad.lines().position(|l| l.starts_with("hots")).unwrap() + 1;

    let err = f.reloader.reload().await.expect_err("the file has an unknown key");
    assert!(matches!(err, ReloadError::File(_)), "{err:?}");
    let text = err.to_string();
    let file = f.routes_file.display().to_string();
    assert!(text.starts_with(&format!("{file}:{line}:1: ")), "{text}");
    assert!(text.contains("hots"), "{text}");

    assert_eq!(send(&mut c, "GET", "/greet/a", &[]).await.0, 200);
    assert_eq!(send(&mut c, "GET", "/other/x", &[]).await.0, 404);
    assert_eq!(
        f.metric("gantry_gateway_config_reloads_total{result=\"error\"}").await,
        1.0
    );
    assert_eq!(
        f.metric("gantry_gateway_config_reloads_total{result=\"ok\"}").await,
        0.0
    );

    // Fixed, it is taken.
    std::fs::write(&f.routes_file, with_other_route()).unwrap();
    f.reloader.reload().await.expect("the fixed file");
    assert_eq!(send(&mut c, "GET", "/other/x", &[]).await.0, 200);
}
