//! The limits every axum service serves with, tested over raw TCP the way a
//! hostile client behaves: half a header and silence (Slowloris), a body
//! that never arrives, more connections than allowed.

use std::time::Duration;

use axum::Router;
use axum::routing::{get, post};
use gantry_common::serve::Limits;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// Far beyond any limit under test: an answer that has not come by then
/// never will.
const PATIENCE: Duration = Duration::from_secs(20);

async fn start(limits: Limits) -> (std::net::SocketAddr, tokio::sync::oneshot::Sender<()>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let router = Router::new()
        .route("/echo", post(|body: String| async move { body }))
        .route("/peer", get(|| async { "ok" }));
    let app = gantry_common::http::standard(router, "test", "test-1", "{}", &limits);
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(gantry_common::serve::serve(listener, app, limits, async move {
        let _ = stopped.await;
    }));
    (addr, stop)
}

/// Reads until the server closes the connection (or `PATIENCE` runs out,
/// which fails the test): everything it sent.
async fn read_to_close(stream: &mut TcpStream) -> String {
    let mut out = Vec::new();
    let read = tokio::time::timeout(PATIENCE, stream.read_to_end(&mut out)).await;
    assert!(read.is_ok(), "the server kept the connection open");
    String::from_utf8_lossy(&out).into_owned()
}

async fn healthz(addr: std::net::SocketAddr) -> String {
    let mut s = TcpStream::connect(addr).await.unwrap();
    s.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    read_to_close(&mut s).await
}

fn limits(header: u64, body: u64, max: usize) -> Limits {
    Limits {
        header_timeout: Duration::from_millis(header),
        body_timeout: Duration::from_millis(body),
        max_connections: max,
    }
}

#[tokio::test]
async fn half_a_header_is_cut_off_and_others_are_still_served() {
    let (addr, _stop) = start(limits(500, 10_000, 1_000)).await;
    let mut stalled = Vec::new();
    for _ in 0..200 {
        let mut s = TcpStream::connect(addr).await.unwrap();
        s.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n").await.unwrap();
        stalled.push(s);
    }
    // While they stall, others are answered.
    assert!(healthz(addr).await.starts_with("HTTP/1.1 200"));
    // And every stalled one is closed by the server, with no request served.
    for s in &mut stalled {
        let answer = read_to_close(s).await;
        assert!(!answer.contains("200 OK"), "{answer}");
    }
}

#[tokio::test]
async fn a_body_that_never_arrives_gets_408() {
    let (addr, _stop) = start(limits(10_000, 500, 1_000)).await;
    let mut s = TcpStream::connect(addr).await.unwrap();
    s.write_all(b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\nContent-Type: text/plain\r\n\r\nabc")
        .await
        .unwrap();
    let answer = read_to_close(&mut s).await;
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert!(answer.contains("\"body_timeout\""), "{answer}");
}

#[tokio::test]
async fn a_body_over_the_limit_gets_413_before_any_handler() {
    let (addr, _stop) = start(limits(10_000, 10_000, 1_000)).await;
    let mut s = TcpStream::connect(addr).await.unwrap();
    let body = vec![b'x'; gantry_common::http::MAX_BODY_BYTES + 1];
    let head = format!(
        "POST /echo HTTP/1.1\r\nHost: x\r\nContent-Type: text/plain\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    s.write_all(head.as_bytes()).await.unwrap();
    // The server may answer before it has read it all; a reset on the rest is fine.
    let _ = s.write_all(&body).await;
    let answer = read_to_close(&mut s).await;
    assert!(answer.starts_with("HTTP/1.1 413"), "{answer}");
    assert!(answer.contains("\"body_too_large\""), "{answer}");
}

#[tokio::test]
async fn past_the_connection_cap_new_ones_get_503_and_old_ones_are_served() {
    let (addr, _stop) = start(limits(10_000, 10_000, 3)).await;
    // Three keep-alive connections, each proven open by an answer.
    let mut held = Vec::new();
    for _ in 0..3 {
        let mut s = TcpStream::connect(addr).await.unwrap();
        s.write_all(b"GET /peer HTTP/1.1\r\nHost: x\r\n\r\n").await.unwrap();
        let mut buf = [0u8; 512];
        let n = tokio::time::timeout(PATIENCE, s.read(&mut buf)).await.unwrap().unwrap();
        assert!(buf[..n].starts_with(b"HTTP/1.1 200"));
        held.push(s);
    }
    let mut extra = TcpStream::connect(addr).await.unwrap();
    let answer = read_to_close(&mut extra).await;
    assert!(answer.starts_with("HTTP/1.1 503"), "{answer}");
    assert!(answer.contains("too_many_connections"), "{answer}");
    // The established ones still get answers.
    let s = &mut held[0];
    s.write_all(b"GET /peer HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    assert!(read_to_close(s).await.starts_with("HTTP/1.1 200"));
    // And once one closes, a new connection is served again.
    drop(held);
    let mut answered = false;
    for _ in 0..50 {
        if healthz(addr).await.starts_with("HTTP/1.1 200") {
            answered = true;
            break;
        }
        tokio::task::yield_now().await;
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(answered, "connections freed by closing were not given back");
}
