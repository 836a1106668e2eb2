//! Keep-alive HTTP/1.1 connections to one upstream instance.
//!
//! Each endpoint keeps its idle connections per worker thread. A request
//! takes a ready one (or dials), sends on it directly, and puts it back as
//! soon as the response head arrives: hyper's connection task finishes the
//! body and marks the connection ready again, and [`Pool::checkout`] only
//! hands out ready ones. Compared with hyper-util's pooled client there is no
//! pool key to hash, no absolute URI to build and rewrite, and no lock another
//! core takes: a worker's connections live and stay on its thread.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use bytes::Bytes;
use http::uri::Authority;
use http::{Request, Response};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::client::conn::http1;
use hyper_util::rt::TokioIo;

use crate::shard::Sharded;

/// Idle connections kept per endpoint and worker; more are closed on return.
pub const DEFAULT_MAX_IDLE: usize = 256;
/// An idle connection unused this long is closed rather than reused, as
/// nginx's upstream `keepalive_timeout` does (upstreams may have closed it).
pub const DEFAULT_IDLE_TIMEOUT: Duration = Duration::from_secs(60);

/// The sending half of one upstream connection.
pub type Sender = http1::SendRequest<Full<Bytes>>;

struct Idle {
    sender: Sender,
    since_ms: u64,
}

/// The idle connections to one endpoint, one list per worker.
#[derive(Default)]
pub struct Pool {
    idle: Sharded<Mutex<Vec<Idle>>>,
}

impl std::fmt::Debug for Pool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pool").finish_non_exhaustive()
    }
}

/// Why a request got no response.
#[derive(Debug, thiserror::Error)]
pub enum SendError {
    /// Nothing reached the upstream (no connection, or it closed first).
    #[error("{0}")]
    Unsent(String),
    /// A kept-alive connection closed after the request was written and
    /// before any answer: most likely the upstream closed it while idle, as
    /// servers with an idle timeout do, so it says nothing against the
    /// instance; the request may or may not have been seen.
    #[error("kept-alive connection closed: {0}")]
    Stale(String),
    /// The upstream failed after the request may have been sent.
    #[error("{0}")]
    Failed(String),
}

/// Why no connection could be had.
#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    #[error("connect: {0}")]
    Io(#[from] std::io::Error),
    #[error("connect timed out after {0:?}")]
    Timeout(Duration),
    #[error("HTTP/1.1 handshake: {0}")]
    Handshake(#[from] hyper::Error),
}

impl Pool {
    /// The most recently returned ready connection of this worker, if any.
    /// Closed and long-idle connections met on the way are dropped.
    pub fn checkout(&self, now_ms: u64) -> Option<Sender> {
        let mut idle = self.idle.local().lock().unwrap_or_else(PoisonError::into_inner);
        let expired = |c: &Idle| now_ms.saturating_sub(c.since_ms) > DEFAULT_IDLE_TIMEOUT.as_millis() as u64;
        let mut i = idle.len();
        while i > 0 {
            i -= 1;
            let c = &idle[i];
            if c.sender.is_closed() || expired(c) {
                // What moves into `i` was already looked at.
                idle.swap_remove(i);
            } else if c.sender.is_ready() {
                return Some(idle.swap_remove(i).sender);
            }
        }
        None
    }

    /// Gives a connection back for reuse once its response is under way.
    pub fn checkin(&self, sender: Sender, now_ms: u64) {
        if sender.is_closed() {
            return;
        }
        let mut idle = self.idle.local().lock().unwrap_or_else(PoisonError::into_inner);
        if idle.len() < DEFAULT_MAX_IDLE {
            idle.push(Idle {
                sender,
                since_ms: now_ms,
            });
        }
    }

    /// Sends `request` to the instance at `authority` on a ready pooled
    /// connection, or on a new one (counted in `connects`). A pooled
    /// connection the upstream closed before the request was written is no
    /// failure: hyper hands the request back and it goes out on a fresh
    /// connection. The connection goes back to the pool as soon as the
    /// response head is in.
    pub async fn send(
        &self,
        authority: &Authority,
        connect_timeout: Duration,
        connects: &AtomicU64,
        mut request: Request<Full<Bytes>>,
        now_ms: u64,
    ) -> Result<Response<Incoming>, SendError> {
        loop {
            let (mut sender, reused) = match self.checkout(now_ms) {
                Some(sender) => (sender, true),
                None => {
                    connects.fetch_add(1, Ordering::Relaxed);
                    let sender = connect(authority, connect_timeout)
                        .await
                        .map_err(|e| SendError::Unsent(e.to_string()))?;
                    (sender, false)
                }
            };
            match sender.try_send_request(request).await {
                Ok(response) => {
                    self.checkin(sender, now_ms);
                    return Ok(response);
                }
                Err(mut e) => match e.take_message() {
                    Some(unsent) if reused => request = unsent,
                    // A new connection closed before the request was
                    // written: nothing reached the upstream.
                    Some(_) => return Err(SendError::Unsent(gantry_common::error::chain(e.error()))),
                    None => {
                        let detail = gantry_common::error::chain(e.error());
                        return Err(if reused && e.error().is_incomplete_message() {
                            SendError::Stale(detail)
                        } else {
                            SendError::Failed(detail)
                        });
                    }
                },
            }
        }
    }
}

/// Opens a new connection to `authority` and drives it on the calling
/// thread's runtime until the upstream or the last [`Sender`] closes it.
pub async fn connect(authority: &Authority, timeout: Duration) -> Result<Sender, ConnectError> {
    let stream = tokio::time::timeout(timeout, tokio::net::TcpStream::connect(authority.as_str()))
        .await
        .map_err(|_| ConnectError::Timeout(timeout))??;
    stream.set_nodelay(true)?;
    let (sender, conn) = http1::Builder::new().handshake(TokioIo::new(stream)).await?;
    tokio::spawn(async move {
        if let Err(e) = conn.await {
            tracing::debug!(error = %e, "upstream connection ended with an error");
        }
    });
    Ok(sender)
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::AtomicUsize;

    use hyper::server::conn::http1 as server;
    use hyper::service::service_fn;
    use tokio::net::TcpListener;

    use super::*;

    /// A real upstream on a free port that counts the connections it accepts
    /// and closes the connection after each answer when `close` is set.
    async fn upstream(close: bool) -> (Authority, Arc<AtomicUsize>) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let authority: Authority = listener.local_addr().unwrap().to_string().parse().unwrap();
        let accepted = Arc::new(AtomicUsize::new(0));
        let count = accepted.clone();
        tokio::spawn(async move {
            loop {
                let (stream, _) = listener.accept().await.unwrap();
                count.fetch_add(1, Ordering::SeqCst);
                tokio::spawn(async move {
                    let svc = service_fn(|_req| async {
                        Ok::<_, hyper::Error>(hyper::Response::new(Full::new(Bytes::from("ok"))))
                    });
                    let _ = server::Builder::new()
                        .keep_alive(!close)
                        .serve_connection(TokioIo::new(stream), svc)
                        .await;
                });
            }
        });
        (authority, accepted)
    }

    async fn get(pool: &Pool, authority: &Authority) -> Result<Bytes, SendError> {
        use http_body_util::BodyExt;
        let req = Request::get("/")
            .header("host", authority.as_str())
            .body(Full::default())
            .unwrap();
        let connects = AtomicU64::new(0);
        let resp = pool.send(authority, Duration::from_secs(1), &connects, req, 0).await?;
        Ok(resp.into_body().collect().await.unwrap().to_bytes())
    }

    fn idle(pool: &Pool) -> usize {
        pool.idle.local().lock().unwrap().len()
    }

    /// Reads one request head (the tests send no bodies).
    async fn read_head(stream: &mut tokio::net::TcpStream) {
        use tokio::io::AsyncReadExt;
        let mut seen = Vec::new();
        let mut byte = [0u8; 1];
        while !seen.ends_with(b"\r\n\r\n") {
            assert_eq!(stream.read(&mut byte).await.unwrap(), 1, "the client closed first");
            seen.push(byte[0]);
        }
    }

    #[tokio::test]
    async fn sequential_requests_reuse_one_connection() {
        let (authority, accepted) = upstream(false).await;
        let pool = Pool::default();
        for _ in 0..20 {
            assert_eq!(get(&pool, &authority).await.unwrap(), "ok");
        }
        assert_eq!(accepted.load(Ordering::SeqCst), 1);
        assert_eq!(idle(&pool), 1);
    }

    #[tokio::test]
    async fn a_connection_the_upstream_closed_is_not_handed_out() {
        let (authority, accepted) = upstream(true).await;
        let pool = Pool::default();
        for _ in 0..5 {
            assert_eq!(get(&pool, &authority).await.unwrap(), "ok");
            // Wait until hyper has seen the close, then the pool must skip it.
            let sender_closed = async {
                let all_closed = || pool.idle.local().lock().unwrap().iter().all(|c| c.sender.is_closed());
                while !all_closed() {
                    tokio::task::yield_now().await;
                }
            };
            tokio::time::timeout(Duration::from_secs(5), sender_closed)
                .await
                .unwrap();
            assert!(pool.checkout(0).is_none());
            assert_eq!(idle(&pool), 0, "a closed connection stayed in the pool");
        }
        assert_eq!(accepted.load(Ordering::SeqCst), 5);
    }

    #[tokio::test]
    async fn long_idle_connections_are_dropped() {
        let (authority, _) = upstream(false).await;
        let pool = Pool::default();
        let sender = connect(&authority, Duration::from_secs(1)).await.unwrap();
        pool.checkin(sender, 0);
        let later = DEFAULT_IDLE_TIMEOUT.as_millis() as u64 + 1;
        assert!(pool.checkout(later).is_none());
        assert_eq!(idle(&pool), 0);
    }

    #[tokio::test]
    async fn a_kept_alive_connection_closed_after_the_write_is_stale_not_failed() {
        use tokio::io::AsyncWriteExt;
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let authority: Authority = listener.local_addr().unwrap().to_string().parse().unwrap();
        tokio::spawn(async move {
            // First connection: answer once, keep it alive, then close it on
            // the second request without answering (an idle-timeout race).
            let (mut stream, _) = listener.accept().await.unwrap();
            read_head(&mut stream).await;
            stream
                .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok")
                .await
                .unwrap();
            read_head(&mut stream).await;
            drop(stream);
            // Second connection: closed without an answer at its first request.
            let (mut stream, _) = listener.accept().await.unwrap();
            read_head(&mut stream).await;
        });
        let pool = Pool::default();
        assert_eq!(get(&pool, &authority).await.unwrap(), "ok");
        // Let hyper mark the connection ready, so the next request reuses it.
        let ready = async {
            while !pool.idle.local().lock().unwrap().iter().any(|c| c.sender.is_ready()) {
                tokio::task::yield_now().await;
            }
        };
        tokio::time::timeout(Duration::from_secs(5), ready).await.unwrap();
        let stale = get(&pool, &authority).await.unwrap_err();
        assert!(matches!(stale, SendError::Stale(_)), "{stale:?}");
        // The same on a brand-new connection says something about the instance.
        let failed = get(&pool, &authority).await.unwrap_err();
        assert!(matches!(failed, SendError::Failed(_)), "{failed:?}");
    }

    #[tokio::test]
    async fn connecting_to_nothing_is_a_connect_error() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let authority: Authority = listener.local_addr().unwrap().to_string().parse().unwrap();
        drop(listener);
        let err = connect(&authority, Duration::from_secs(1)).await.unwrap_err();
        assert!(matches!(err, ConnectError::Io(_)), "{err}");
    }
}
