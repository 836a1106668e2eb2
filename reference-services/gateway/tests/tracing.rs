//! W3C `traceparent` through the gateway, seen where the request arrives:
//! an echo upstream registered in a real (in-process) dev registry, behind
//! a gateway on port 0.

use std::net::SocketAddr;
use std::time::Duration;

use gantry_common::registry::RegistryClient;
use gantry_common::trace::TraceParent;
use gantry_gateway::GatewayConfig;
use gantry_harness::echo::{EchoInstance, Received};
use gantry_harness::metrics::Scrape;
use gantry_harness::raw::read_response;
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream};
use tokio::time::{Instant, timeout};

const SLACK: Duration = Duration::from_secs(10);

const ROUTES: &str = r#"
[[services]]
name = "greeter"

[[routes]]
prefix = "/greet"
service = "greeter"
"#;

struct Fixture {
    gateway: SocketAddr,
    _greeter: EchoInstance,
    _dir: tempfile::TempDir,
    _stop: tokio::sync::oneshot::Sender<()>,
    _registry_stop: tokio::sync::oneshot::Sender<()>,
}

/// A registry, an echo as the greeter, and a gateway routing `/greet` to
/// it, returned once the gateway has found the echo.
async fn start() -> Fixture {
    let registry_listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let registry = RegistryClient::new(&registry_listener.local_addr().unwrap().to_string());
    let (registry_stop, registry_stopped) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(gantry_harness::registry::run(
        registry_listener,
        gantry_harness::registry::Options::default(),
        async move {
            let _ = registry_stopped.await;
        },
    ));
    let greeter = EchoInstance::start(registry.clone(), "greeter", "greeter-1", Duration::from_secs(30))
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let routes_file = dir.path().join("gateway.toml");
    std::fs::write(&routes_file, ROUTES).unwrap();
    let mut cfg = GatewayConfig::from_env().expect("the default gateway config");
    cfg.registry = registry;
    cfg.redis_url = "redis://127.0.0.1:1".into();
    cfg.workers = 2;
    let cfg = cfg.with_routes_file(&routes_file).expect("the routes file");
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let admin = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let gateway = listener.local_addr().unwrap();
    let admin_url = format!("http://{}", admin.local_addr().unwrap());
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(gantry_gateway::run(listener, Some(admin), cfg, async move {
        let _ = stopped.await;
    }));
    // Ready when the gateway's metrics list the echo as an instance.
    let series = "gantry_gateway_upstream_requests_total{service=\"greeter\",instance=\"greeter-1\"}";
    let deadline = Instant::now() + SLACK;
    while !Scrape::of(&admin_url).await.is_ok_and(|s| s.0.contains(series)) {
        assert!(Instant::now() < deadline, "the gateway never found greeter-1");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    Fixture {
        gateway,
        _greeter: greeter,
        _dir: dir,
        _stop: stop,
        _registry_stop: registry_stop,
    }
}

/// What the echo received for `GET /greet` sent with `headers`.
async fn through(gateway: SocketAddr, headers: &[(&str, &str)]) -> Received {
    let mut s = TcpStream::connect(gateway).await.unwrap();
    let mut head = "GET /greet HTTP/1.1\r\nHost: gateway.test\r\nConnection: close\r\n".to_owned();
    for (name, value) in headers {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    head.push_str("\r\n");
    s.write_all(head.as_bytes()).await.unwrap();
    let (status, response) = timeout(SLACK, read_response(&mut s)).await.expect("an answer in time");
    assert_eq!(status, 200, "{response}");
    let body = response.split_once("\r\n\r\n").map_or("", |(_, body)| body);
    Received::from_json(body).unwrap_or_else(|e| panic!("not an echo answer ({e}): {response}"))
}

/// The one `traceparent` the echo received, parsed.
fn arrived(got: &Received) -> TraceParent {
    let all = got.header_values("traceparent");
    assert_eq!(all.len(), 1, "exactly one traceparent arrives: {all:?}");
    TraceParent::parse(all[0].as_bytes()).unwrap_or_else(|| panic!("a valid traceparent arrives: {all:?}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_trace_id_goes_through_with_the_gateways_span_as_parent() {
    let f = start().await;
    let sent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
    let got = through(f.gateway, &[("traceparent", sent), ("x-request-id", "trace-test-1")]).await;
    let upstream = arrived(&got);
    assert_eq!(upstream.trace_id_hex(), "4bf92f3577b34da6a3ce929d0e0e4736");
    assert_ne!(upstream.to_header(), sent, "the gateway's own span is the parent-id");
    assert_eq!(upstream.flags, 1);
    assert_eq!(got.header_values("x-request-id"), ["trace-test-1"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_without_or_with_a_bad_trace_gets_a_fresh_valid_one() {
    let f = start().await;
    let first = arrived(&through(f.gateway, &[]).await);
    let second = arrived(&through(f.gateway, &[]).await);
    assert_ne!(first.trace_id, second.trace_id, "each request starts its own trace");
    let bad = "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01";
    let got = through(f.gateway, &[("traceparent", bad), ("tracestate", "vendor=1")]).await;
    let restarted = arrived(&got);
    assert_ne!(
        restarted.trace_id_hex(),
        "4bf92f3577b34da6a3ce929d0e0e4736",
        "a malformed traceparent is not continued"
    );
    assert_eq!(got.header("tracestate"), None, "nor is its tracestate passed on");
    assert!(
        got.header_values("x-request-id")
            .first()
            .is_some_and(|id| !id.is_empty()),
        "the gateway gives the request an id"
    );
}
