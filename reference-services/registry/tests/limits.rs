//! The dev registry serves within the same connection limits as every other
//! listener (`gantry_common::serve::Limits`), tested over raw TCP the way a
//! hostile client behaves, and without cutting off what a blocking query
//! legitimately holds open.

use std::net::SocketAddr;
use std::time::Duration;

use gantry_common::serve::Limits;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::time::Instant;

/// Beyond any limit under test: an answer that has not come by then never will.
const PATIENCE: Duration = Duration::from_secs(20);
/// What a limit may overrun by on a loaded machine. Well under the
/// defaults (10 s for headers), so a test cannot pass on the defaults.
const SLACK: Duration = Duration::from_secs(2);

fn limits(header: Duration, body: Duration, max_connections: usize) -> Limits {
    Limits {
        header_timeout: header,
        body_timeout: body,
        max_connections,
    }
}

/// A dev registry (ACLs off) on a free port within `limits`; dropping the
/// sender shuts it down.
async fn start(limits: Limits) -> (SocketAddr, tokio::sync::oneshot::Sender<()>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let options = gantry_registry::Options {
        limits,
        ..gantry_registry::Options::default()
    };
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(gantry_registry::run(listener, options, async move {
        let _ = stopped.await;
    }));
    (addr, stop)
}

/// Reads until the server closes the connection, for at most `within`
/// (which fails the test): everything it sent.
async fn read_to_close(stream: &mut TcpStream, within: Duration) -> String {
    let mut out = Vec::new();
    let read = tokio::time::timeout(within, stream.read_to_end(&mut out)).await;
    assert!(read.is_ok(), "the registry kept the connection open beyond {within:?}");
    String::from_utf8_lossy(&out).into_owned()
}

/// One response on a keep-alive connection: its head and its body (the
/// registry's answers carry `content-length`).
async fn read_response(stream: &mut TcpStream, within: Duration) -> (String, String) {
    let read = async {
        let mut buf = Vec::new();
        let mut chunk = [0u8; 4096];
        let head_end = loop {
            if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                break i + 4;
            }
            let n = stream.read(&mut chunk).await.unwrap();
            assert!(
                n > 0,
                "closed before a whole response head: {}",
                String::from_utf8_lossy(&buf)
            );
            buf.extend_from_slice(&chunk[..n]);
        };
        let head = String::from_utf8_lossy(&buf[..head_end]).into_owned();
        let length: usize = header(&head, "content-length")
            .unwrap_or_else(|| panic!("no content-length: {head}"))
            .parse()
            .unwrap();
        while buf.len() < head_end + length {
            let n = stream.read(&mut chunk).await.unwrap();
            assert!(n > 0, "closed within a response body");
            buf.extend_from_slice(&chunk[..n]);
        }
        let body = String::from_utf8_lossy(&buf[head_end..head_end + length]).into_owned();
        (head, body)
    };
    tokio::time::timeout(within, read)
        .await
        .unwrap_or_else(|_| panic!("no response within {within:?}"))
}

fn header<'a>(head: &'a str, name: &str) -> Option<&'a str> {
    head.lines().find_map(|line| {
        let (n, v) = line.split_once(':')?;
        n.eq_ignore_ascii_case(name).then(|| v.trim())
    })
}

/// `GET path` on a connection of its own: the whole answer.
async fn get(addr: SocketAddr, path: &str) -> String {
    let mut s = TcpStream::connect(addr).await.unwrap();
    s.write_all(format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").as_bytes())
        .await
        .unwrap();
    read_to_close(&mut s, PATIENCE).await
}

#[tokio::test]
async fn half_a_request_head_is_cut_off_within_the_header_timeout_while_others_are_answered() {
    let header_timeout = Duration::from_millis(300);
    let (addr, _stop) = start(limits(header_timeout, Duration::from_secs(10), 1_000)).await;
    let started = Instant::now();
    let mut stalled = Vec::new();
    for _ in 0..50 {
        let mut s = TcpStream::connect(addr).await.unwrap();
        s.write_all(b"GET /v1/catalog/services HTTP/1.1\r\nHost: x\r\n")
            .await
            .unwrap();
        stalled.push(s);
    }
    // While they stall, the registry answers others.
    let answer = get(addr, "/v1/catalog/services").await;
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    // Every stalled one is closed by the registry within the header
    // timeout (counted from before the first was opened), unanswered.
    let deadline = started + header_timeout + SLACK;
    for s in &mut stalled {
        let within = deadline.saturating_duration_since(Instant::now());
        let answer = read_to_close(s, within).await;
        assert!(!answer.contains(" 200 "), "a half request was answered: {answer}");
    }
    // And the registry still answers.
    let answer = get(addr, "/v1/status/leader").await;
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
}

#[tokio::test]
async fn a_blocking_query_outlives_the_header_timeout_and_returns_after_its_wait() {
    let header_timeout = Duration::from_millis(300);
    let (addr, _stop) = start(limits(header_timeout, Duration::from_secs(10), 1_000)).await;
    // One keep-alive connection: a plain read, then a blocking query at the
    // index it answered, then another read; as a watcher uses one.
    let mut conn = TcpStream::connect(addr).await.unwrap();
    conn.write_all(b"GET /v1/catalog/services HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    let (head, _) = read_response(&mut conn, PATIENCE).await;
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    let index = header(&head, "x-consul-index").expect("X-Consul-Index").to_owned();

    // Five times the header timeout, which also bounds an idle keep-alive
    // connection: neither may end a query that is waiting.
    let wait = header_timeout * 5;
    let asked = Instant::now();
    let query = format!(
        "GET /v1/catalog/services?index={index}&wait={}ms HTTP/1.1\r\nHost: x\r\n\r\n",
        wait.as_millis()
    );
    conn.write_all(query.as_bytes()).await.unwrap();
    // Consul adds up to wait/16 of jitter.
    let (head, body) = read_response(&mut conn, wait + wait / 16 + SLACK).await;
    let took = asked.elapsed();
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    assert!(
        took >= wait,
        "answered after {took:?}, before its wait of {wait:?}: {head}"
    );
    assert_eq!(header(&head, "x-consul-index"), Some(index.as_str()), "nothing changed");
    assert_eq!(body, "{}");

    // The connection is still good for the next request.
    conn.write_all(b"GET /v1/status/leader HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let answer = read_to_close(&mut conn, PATIENCE).await;
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
}

#[tokio::test]
async fn past_the_connection_cap_new_connections_get_503_and_held_ones_are_served() {
    let (addr, _stop) = start(limits(Duration::from_secs(10), Duration::from_secs(10), 2)).await;
    // Two keep-alive connections, each proven open by an answer.
    let mut held = Vec::new();
    for _ in 0..2 {
        let mut s = TcpStream::connect(addr).await.unwrap();
        s.write_all(b"GET /v1/status/leader HTTP/1.1\r\nHost: x\r\n\r\n")
            .await
            .unwrap();
        let (head, _) = read_response(&mut s, PATIENCE).await;
        assert!(head.starts_with("HTTP/1.1 200"), "{head}");
        held.push(s);
    }
    let answer = get(addr, "/v1/status/leader").await;
    assert!(answer.starts_with("HTTP/1.1 503"), "{answer}");
    assert!(answer.contains("too_many_connections"), "{answer}");
    // The held ones are still answered.
    let s = &mut held[0];
    s.write_all(b"GET /v1/status/leader HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let answer = read_to_close(s, PATIENCE).await;
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
}

#[tokio::test]
async fn a_registration_body_that_never_arrives_gets_408() {
    let body_timeout = Duration::from_millis(300);
    let (addr, _stop) = start(limits(Duration::from_secs(10), body_timeout, 1_000)).await;
    let mut s = TcpStream::connect(addr).await.unwrap();
    s.write_all(b"PUT /v1/agent/service/register HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{\"Na")
        .await
        .unwrap();
    let (head, body) = read_response(&mut s, body_timeout + SLACK).await;
    assert!(head.starts_with("HTTP/1.1 408"), "{head}{body}");
    // Nothing was registered.
    let answer = get(addr, "/v1/agent/services").await;
    assert!(answer.ends_with("{}"), "{answer}");
}
