//! Serving HTTP/1.1 on a bound listener with the limits a server facing
//! untrusted clients needs: a deadline on request headers (Slowloris), a cap
//! on open connections, and graceful draining on shutdown.
//!
//! `axum::serve` has none of these knobs, so the axum services serve through
//! here instead; the body deadline is in [`crate::http::standard`], where the
//! body is read.

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::ops::RangeInclusive;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

use axum::Router;
use axum::extract::ConnectInfo;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use crate::config::{self, ConfigError};

/// Time a client has to send a request's whole header block. Hyper starts
/// this clock whenever a connection waits for a request, so it is also how
/// long an idle keep-alive connection is kept.
pub const DEFAULT_HEADER_TIMEOUT: Duration = Duration::from_secs(10);
/// Time a client has to send a request's whole body once its headers are in.
pub const DEFAULT_BODY_TIMEOUT: Duration = Duration::from_secs(30);
/// Open client connections beyond which new ones are refused at once.
pub const DEFAULT_MAX_CONNECTIONS: usize = 10_000;
/// How long in-flight requests may take to finish after shutdown begins.
pub const DRAIN_TIMEOUT: Duration = Duration::from_secs(30);

/// What one connection may cost the server.
///
/// | variable | default | meaning |
/// |---|---|---|
/// | `GANTRY_HEADER_TIMEOUT` | `10s` | to send the request headers; also the keep-alive idle time |
/// | `GANTRY_BODY_TIMEOUT` | `30s` | to send the request body, after the headers (408 after it) |
/// | `GANTRY_MAX_CONNECTIONS` | `10000` | open connections; more are answered 503 and closed |
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    pub header_timeout: Duration,
    pub body_timeout: Duration,
    pub max_connections: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            header_timeout: DEFAULT_HEADER_TIMEOUT,
            body_timeout: DEFAULT_BODY_TIMEOUT,
            max_connections: DEFAULT_MAX_CONNECTIONS,
        }
    }
}

/// The range a client-side timeout may be set to: zero would refuse
/// everyone, and an hour is no protection already.
const TIMEOUT_RANGE: RangeInclusive<Duration> = Duration::from_millis(100)..=Duration::from_secs(3600);

impl Limits {
    /// `GANTRY_HEADER_TIMEOUT`, `GANTRY_BODY_TIMEOUT`, `GANTRY_MAX_CONNECTIONS`.
    pub fn from_env() -> Result<Self, ConfigError> {
        Ok(Self {
            header_timeout: config::duration_in("GANTRY_HEADER_TIMEOUT", DEFAULT_HEADER_TIMEOUT, TIMEOUT_RANGE)?,
            body_timeout: config::duration_in("GANTRY_BODY_TIMEOUT", DEFAULT_BODY_TIMEOUT, TIMEOUT_RANGE)?,
            max_connections: config::number_in("GANTRY_MAX_CONNECTIONS", DEFAULT_MAX_CONNECTIONS, 1..=1_000_000)?,
        })
    }
}

/// What a connection over [`Limits::max_connections`] is told before it is
/// closed: a complete answer, so a well-behaved client sees why.
pub const OVERLOADED_RESPONSE: &[u8] = b"HTTP/1.1 503 Service Unavailable\r\n\
content-type: application/json\r\n\
retry-after: 1\r\n\
connection: close\r\n\
content-length: 89\r\n\r\n\
{\"error\":\"too_many_connections\",\"message\":\"the server is at its connection limit; retry\"}";

/// How long a refused connection is read from (and the bytes dropped) after
/// its 503 before it is closed, so the client reads the answer instead of a
/// reset caused by its own unread request.
pub const REFUSE_LINGER: Duration = Duration::from_secs(1);
/// Refused connections lingering at once; beyond this they close at once.
pub const MAX_LINGERING: usize = 256;

/// Open connections of one listener against its cap, and what was refused.
#[derive(Debug)]
pub struct Connections {
    max: usize,
    open: AtomicUsize,
    refused: AtomicU64,
    lingering: AtomicUsize,
}

/// One admitted connection; the count drops when it does.
#[derive(Debug)]
pub struct Admitted(Arc<Connections>);

impl Drop for Admitted {
    fn drop(&mut self) {
        self.0.open.fetch_sub(1, Ordering::Relaxed);
    }
}

impl Connections {
    pub fn new(max: usize) -> Arc<Self> {
        Arc::new(Self {
            max,
            open: AtomicUsize::new(0),
            refused: AtomicU64::new(0),
            lingering: AtomicUsize::new(0),
        })
    }

    /// A place for one more connection, unless `max` are open.
    pub fn admit(self: &Arc<Self>) -> Option<Admitted> {
        let admitted = self
            .open
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| {
                (n < self.max).then_some(n + 1)
            })
            .is_ok();
        admitted.then(|| Admitted(self.clone()))
    }

    pub fn open(&self) -> usize {
        self.open.load(Ordering::Relaxed)
    }

    pub fn refused(&self) -> u64 {
        self.refused.load(Ordering::Relaxed)
    }

    /// Answers [`OVERLOADED_RESPONSE`] and closes, never waiting on the
    /// client: one non-blocking write (a fresh socket's send buffer has
    /// room), then, in a task of its own, a FIN and the client's bytes read
    /// and dropped for at most [`REFUSE_LINGER`] (at most [`MAX_LINGERING`]
    /// at once), so closing with unread data does not reset the answer away.
    pub fn refuse(self: &Arc<Self>, stream: TcpStream) {
        self.refused.fetch_add(1, Ordering::Relaxed);
        let _ = stream.try_write(OVERLOADED_RESPONSE);
        if self.lingering.fetch_add(1, Ordering::Relaxed) >= MAX_LINGERING {
            self.lingering.fetch_sub(1, Ordering::Relaxed);
            return;
        }
        let connections = self.clone();
        tokio::spawn(async move {
            let mut stream = stream;
            let drain = async {
                let _ = stream.shutdown().await;
                let mut sink = [0u8; 1024];
                while let Ok(n) = stream.read(&mut sink).await
                    && n > 0
                {}
            };
            let _ = tokio::time::timeout(REFUSE_LINGER, drain).await;
            connections.lingering.fetch_sub(1, Ordering::Relaxed);
        });
    }
}

/// The HTTP/1.1 settings of every listener facing clients: hyper's header
/// read timeout (it needs a timer, or it never fires) bounds both a slow
/// request head and an idle keep-alive connection.
pub fn http1_builder(header_timeout: Duration) -> http1::Builder {
    let mut builder = http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(header_timeout)
        .keep_alive(true)
        .max_buf_size(crate::http::MAX_HEADER_BYTES * 4);
    builder
}

/// Accepts on `listener` until `shutdown` resolves, serving each connection
/// with the service `make(peer)` gives, within `limits` (header deadline,
/// connection cap); then lets in-flight requests finish for up to
/// [`DRAIN_TIMEOUT`]. The axum services and the gateway's admin listener
/// serve through here; the gateway's client listener deals connections to
/// its worker threads instead, with the same [`Connections`] and builder.
pub async fn serve_with<S, B>(
    listener: TcpListener,
    limits: Limits,
    make: impl Fn(SocketAddr) -> S,
    shutdown: impl Future<Output = ()>,
) -> std::io::Result<()>
where
    S: hyper::service::Service<http::Request<Incoming>, Response = http::Response<B>, Error = Infallible>
        + Send
        + 'static,
    S::Future: Send + 'static,
    B: hyper::body::Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let connections = Connections::new(limits.max_connections);
    let builder = http1_builder(limits.header_timeout);
    let graceful = GracefulShutdown::new();
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(conn) => conn,
                Err(e) => {
                    // Out of file descriptors and the like: back off, keep serving.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let Some(admitted) = connections.admit() else {
            tracing::warn!(%peer, limit = limits.max_connections, "connection refused: at the connection limit");
            connections.refuse(stream);
            continue;
        };
        let _ = stream.set_nodelay(true);
        let conn = graceful.watch(builder.serve_connection(TokioIo::new(stream), make(peer)));
        tokio::spawn(async move {
            if let Err(e) = conn.await {
                tracing::debug!(error = %e, %peer, "connection ended with an error");
            }
            drop(admitted);
        });
    }
    drop(listener);
    if tokio::time::timeout(DRAIN_TIMEOUT, graceful.shutdown()).await.is_err() {
        tracing::warn!("drain timed out; closing remaining connections");
    }
    Ok(())
}

/// Serves an axum `router` through [`serve_with`]. Each request carries the
/// peer's address as [`ConnectInfo<SocketAddr>`].
pub async fn serve(
    listener: TcpListener,
    router: Router,
    limits: Limits,
    shutdown: impl Future<Output = ()>,
) -> std::io::Result<()> {
    let make = |peer: SocketAddr| {
        let router = router.clone();
        hyper::service::service_fn(move |mut req: http::Request<Incoming>| {
            req.extensions_mut().insert(ConnectInfo(peer));
            let mut router = router.clone();
            async move {
                let response = tower_service::Service::call(&mut router, req.map(axum::body::Body::new)).await;
                Ok::<_, Infallible>(response.unwrap_or_else(|never| match never {}))
            }
        })
    };
    serve_with(listener, limits, make, shutdown).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_client_timeout_out_of_range_names_its_variable() {
        for bad in [Duration::ZERO, Duration::from_millis(99), Duration::from_secs(3601)] {
            let e = config::duration_within("GANTRY_HEADER_TIMEOUT", bad, &TIMEOUT_RANGE).unwrap_err();
            assert_eq!(e.var, "GANTRY_HEADER_TIMEOUT");
            assert!(e.to_string().contains("from 100ms to 3600s"), "{e}");
        }
        assert!(TIMEOUT_RANGE.contains(&DEFAULT_HEADER_TIMEOUT) && TIMEOUT_RANGE.contains(&DEFAULT_BODY_TIMEOUT));
    }

    #[test]
    fn the_connection_count_is_capped_and_given_back() {
        let c = Connections::new(2);
        let (a, b) = (c.admit().unwrap(), c.admit().unwrap());
        assert!(c.admit().is_none());
        drop(a);
        assert_eq!(c.open(), 1);
        assert!(c.admit().is_some());
        drop(b);
    }

    #[test]
    fn the_overload_answer_is_well_formed() {
        let text = std::str::from_utf8(OVERLOADED_RESPONSE).unwrap();
        let (head, body) = text.split_once("\r\n\r\n").unwrap();
        let declared: usize = head
            .lines()
            .find_map(|l| l.strip_prefix("content-length: "))
            .unwrap()
            .parse()
            .unwrap();
        assert_eq!(declared, body.len());
        let json: serde_json::Value = serde_json::from_str(body).unwrap();
        assert_eq!(json["error"], "too_many_connections");
        assert!(head.contains("connection: close"));
    }
}
