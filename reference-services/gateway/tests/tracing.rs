//! W3C `traceparent` through the gateway, seen where the request arrives:
//! an echo upstream registered in a real (in-process) dev registry, behind
//! a gateway on port 0.

use std::net::SocketAddr;
use std::time::Duration;

use gantry_common::trace::TraceParent;
use gantry_harness::drive::echo::{EchoInstance, Received};
use gantry_harness::drive::raw::read_response;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;
use tokio::time::timeout;

mod support;
use support::SLACK;

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
    _served: support::Gateway,
    _registry: support::Registry,
}

/// A registry, an echo as the greeter, and a gateway routing `/greet` to
/// it, returned once the gateway has found the echo.
async fn start() -> Fixture {
    let registry = support::registry().await;
    let greeter = EchoInstance::start(registry.client.clone(), "greeter", "greeter-1", Duration::from_secs(30))
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let served = support::serve(support::config(dir.path(), ROUTES, &registry.client), None).await;
    support::until_instances(&served.admin, "greeter", &["greeter-1"]).await;
    Fixture {
        gateway: served.addr,
        _greeter: greeter,
        _dir: dir,
        _served: served,
        _registry: registry,
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
