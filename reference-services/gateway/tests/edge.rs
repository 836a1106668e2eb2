//! The gateway's edge against hostile or careless clients, on bound port-0
//! listeners: slow headers and bodies, stalled connections, the connection
//! cap, and what the public and admin listeners serve.

use std::net::SocketAddr;
use std::time::Duration;

use gantry_common::registry::RegistryClient;
use gantry_gateway::GatewayConfig;
use gantry_harness::drive::raw::{read_response, read_to_close};
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream};
use tokio::time::{Instant, timeout};

/// Time any single check may take before the test fails: generous, since
/// only "eventually, within the configured timeout plus slack" is asserted.
const SLACK: Duration = Duration::from_secs(10);

struct Gateway {
    public: SocketAddr,
    admin: SocketAddr,
    _stop: tokio::sync::oneshot::Sender<()>,
}

/// A gateway with no registry, Redis or upstream to reach: its own
/// endpoints still answer, which is all the edge needs.
async fn gateway(tweak: impl FnOnce(&mut GatewayConfig)) -> Gateway {
    let mut cfg = GatewayConfig::from_env().expect("the default gateway config");
    cfg.registry = RegistryClient::new("127.0.0.1:1");
    cfg.redis_url = "redis://127.0.0.1:1".into();
    cfg.workers = 2;
    tweak(&mut cfg);
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let admin = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let (public, admin_addr) = (listener.local_addr().unwrap(), admin.local_addr().unwrap());
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(gantry_gateway::run(listener, Some(admin), cfg, async move {
        let _ = stopped.await;
    }));
    Gateway {
        public,
        admin: admin_addr,
        _stop: stop,
    }
}

async fn get(addr: SocketAddr, path: &str) -> (u16, String) {
    let mut s = TcpStream::connect(addr).await.unwrap();
    s.write_all(format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").as_bytes())
        .await
        .unwrap();
    timeout(SLACK, read_response(&mut s)).await.expect("an answer in time")
}

/// A connection that sent half a request head and nothing since.
async fn slowloris(addr: SocketAddr) -> TcpStream {
    let mut s = TcpStream::connect(addr).await.unwrap();
    s.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n").await.unwrap();
    s
}

async fn metric(admin: SocketAddr, series: &str) -> f64 {
    let (status, text) = get(admin, "/metrics").await;
    assert_eq!(status, 200, "{text}");
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.trim().parse().ok())
        .unwrap_or_else(|| panic!("{series} not in {text}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn half_a_request_head_is_cut_off_after_the_header_timeout() {
    let header_timeout = Duration::from_secs(1);
    let gw = gateway(|c| c.limits.header_timeout = header_timeout).await;
    let started = Instant::now();
    let mut s = slowloris(gw.public).await;
    let said = timeout(header_timeout + SLACK, read_to_close(&mut s))
        .await
        .expect("the gateway closed the connection");
    let took = started.elapsed();
    println!("a half-sent head was closed after {took:?} (header timeout {header_timeout:?})");
    assert!(said.is_empty() || said.starts_with("HTTP/1.1 408"), "{said:?}");
    // The timer closed it, not something that happens at once.
    assert!(took >= header_timeout, "closed after {took:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_head_trickled_in_a_byte_at_a_time_is_cut_off_too() {
    // The deadline is on the whole head, not on silence between bytes.
    let header_timeout = Duration::from_secs(1);
    let gw = gateway(|c| c.limits.header_timeout = header_timeout).await;
    let started = Instant::now();
    let mut s = TcpStream::connect(gw.public).await.unwrap();
    s.write_all(b"GET /healthz HTTP/1.1\r\n").await.unwrap();
    // The attacker's pace: a header byte every 100 ms, for ever.
    let trickle = async {
        let mut tick = tokio::time::interval(Duration::from_millis(100));
        loop {
            tick.tick().await;
            if s.write_all(b"X").await.is_err() {
                break;
            }
        }
    };
    timeout(header_timeout + SLACK, trickle)
        .await
        .expect("the gateway closed the trickling connection");
    assert!(started.elapsed() >= header_timeout);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_keep_alive_connection_is_closed_after_the_header_timeout() {
    let header_timeout = Duration::from_secs(1);
    let gw = gateway(|c| c.limits.header_timeout = header_timeout).await;
    let mut s = TcpStream::connect(gw.public).await.unwrap();
    s.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n").await.unwrap();
    let (status, _) = read_response(&mut s).await;
    assert_eq!(status, 200);
    let idle = Instant::now();
    let said = timeout(header_timeout + SLACK, read_to_close(&mut s))
        .await
        .expect("the idle connection was closed");
    assert!(said.is_empty(), "{said:?}");
    assert!(idle.elapsed() >= header_timeout - Duration::from_millis(50));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_body_that_does_not_arrive_in_time_is_answered_408_and_the_connection_closed() {
    let gw = gateway(|c| c.limits.body_timeout = Duration::from_secs(1)).await;
    let mut s = TcpStream::connect(gw.public).await.unwrap();
    s.write_all(
        b"POST /auth/login HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{\"user",
    )
    .await
    .unwrap();
    let said = timeout(SLACK, read_to_close(&mut s)).await.expect("an answer");
    assert!(said.starts_with("HTTP/1.1 408"), "{said}");
    assert!(said.contains("\"error\":\"body_timeout\""), "{said}");
    assert!(said.to_ascii_lowercase().contains("connection: close"), "{said}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hundreds_of_stalled_connections_do_not_stop_healthz() {
    const STALLED: usize = 300;
    // Long enough that none is cut off while the test runs.
    let gw = gateway(|c| c.limits.header_timeout = Duration::from_secs(60)).await;
    let mut stalled = Vec::with_capacity(STALLED);
    for _ in 0..STALLED {
        stalled.push(slowloris(gw.public).await);
    }
    // Every stalled connection is held open by the gateway...
    let series = "gantry_gateway_connections_open";
    let deadline = Instant::now() + SLACK;
    while metric(gw.admin, series).await < STALLED as f64 {
        assert!(
            Instant::now() < deadline,
            "the gateway never held {STALLED} connections"
        );
        tokio::task::yield_now().await;
    }
    // ...and still answers a new one.
    for _ in 0..10 {
        let (status, body) = get(gw.public, "/healthz").await;
        assert_eq!(status, 200, "{body}");
    }
    println!(
        "{STALLED} stalled connections held, /healthz answered; open: {}",
        metric(gw.admin, series).await
    );
    drop(stalled);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn over_the_connection_cap_a_new_connection_gets_503_and_established_ones_are_served() {
    let gw = gateway(|c| {
        c.limits.max_connections = 3;
        c.limits.header_timeout = Duration::from_secs(60);
    })
    .await;
    // One established keep-alive connection that has been served...
    let mut kept = TcpStream::connect(gw.public).await.unwrap();
    kept.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    assert_eq!(read_response(&mut kept).await.0, 200);
    // ...and two stalled ones fill the cap.
    let stalled = [slowloris(gw.public).await, slowloris(gw.public).await];

    let mut refused = TcpStream::connect(gw.public).await.unwrap();
    let said = timeout(SLACK, read_to_close(&mut refused))
        .await
        .expect("refused quickly");
    assert!(said.starts_with("HTTP/1.1 503"), "{said:?}");
    assert!(said.contains("too_many_connections"), "{said:?}");
    assert!(said.to_ascii_lowercase().contains("connection: close"), "{said:?}");
    // A client that sends its request first reads the 503 too, not a reset.
    let mut eager = TcpStream::connect(gw.public).await.unwrap();
    eager
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    let said = timeout(SLACK, read_to_close(&mut eager))
        .await
        .expect("refused quickly");
    assert!(said.starts_with("HTTP/1.1 503"), "{said:?}");

    // The established connection is still served.
    for _ in 0..3 {
        kept.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
            .await
            .unwrap();
        assert_eq!(timeout(SLACK, read_response(&mut kept)).await.unwrap().0, 200);
    }
    // The admin listener is not behind the client cap.
    assert!(metric(gw.admin, "gantry_gateway_connections_refused_total").await >= 2.0);

    // When connections end, their places are given back.
    drop(stalled);
    let deadline = Instant::now() + SLACK;
    loop {
        let mut s = TcpStream::connect(gw.public).await.unwrap();
        s.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            .await
            .unwrap();
        let said = timeout(SLACK, read_to_close(&mut s)).await.unwrap();
        if said.starts_with("HTTP/1.1 200") {
            break;
        }
        assert!(Instant::now() < deadline, "no place was given back: {said:?}");
        tokio::task::yield_now().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn operator_endpoints_are_on_the_admin_listener_only() {
    let gw = gateway(|_| {}).await;
    let (status, _) = get(gw.public, "/metrics").await;
    assert_eq!(status, 404, "metrics on the public listener");
    let (status, text) = get(gw.admin, "/metrics").await;
    assert_eq!(status, 200);
    assert!(text.contains("gantry_gateway_requests_total"), "{text}");

    // Public readiness: the status and nothing about what is missing.
    let (status, text) = get(gw.public, "/readyz").await;
    assert_eq!(status, 503);
    let body = &text[text.find("\r\n\r\n").unwrap() + 4..];
    assert_eq!(body, r#"{"status":"not_ready"}"#);
    // The detail is on the admin listener.
    let (status, text) = get(gw.admin, "/readyz").await;
    assert_eq!(status, 503);
    assert!(
        text.contains("problems") && text.contains("redis unreachable"),
        "{text}"
    );

    let (status, text) = get(gw.public, "/openapi.json").await;
    assert_eq!(status, 200);
    assert!(!text.contains("/metrics"), "the public document lists /metrics");
    let (status, text) = get(gw.admin, "/openapi.json").await;
    assert_eq!(status, 200);
    assert!(text.contains("/metrics"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_an_admin_listener_the_operator_endpoints_are_nowhere() {
    let mut cfg = GatewayConfig::from_env().unwrap();
    cfg.registry = RegistryClient::new("127.0.0.1:1");
    cfg.redis_url = "redis://127.0.0.1:1".into();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let public = listener.local_addr().unwrap();
    let (_stop, stopped) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(gantry_gateway::run(listener, None, cfg, async move {
        let _ = stopped.await;
    }));
    assert_eq!(get(public, "/healthz").await.0, 200);
    assert_eq!(get(public, "/metrics").await.0, 404);
}
