//! The HTTP front of an HTTP link: each request meets the link's `http_*`
//! toxics (answered with a status by the link itself, delayed, or left
//! hanging after its headers), then goes on to the service over one
//! connection through the link's TCP toxics. A failure on the way to the
//! service resets the client's connection, as the service's own reset
//! would look: the client sees a reset, never an answer the service did
//! not give.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::{Arc, PoisonError};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full};
use hyper::body::{Body, Frame, Incoming};
use hyper::client::conn::http1 as client;
use hyper::server::conn::http1 as server;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;
use tokio::sync::Mutex;

use super::state::{LinkEvent, State};
use super::toxic::{Kind, Stream};

type Answer = Response<BoxBody<Bytes, hyper::Error>>;

/// Serves one client connection, sending its requests through `inner`
/// (the link's own TCP listener) to the service.
pub async fn serve(client: TcpStream, inner: SocketAddr, state: Arc<State>) {
    let Ok(upstream) = TcpStream::connect(inner).await else {
        return;
    };
    let _ = upstream.set_nodelay(true);
    let Ok((sender, conn)) = client::handshake::<_, Incoming>(TokioIo::new(upstream)).await else {
        return;
    };
    // When the service closes its side (an idle keep-alive connection it
    // times out), the client's connection closes too, as it would without
    // the link: left open, the client's next request would meet a dead end
    // and a reset instead of a connection it knows to be closed.
    let (upstream_closed, mut closed) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(async move {
        let _ = conn.await;
        let _ = upstream_closed.send(());
    });
    let sender = Arc::new(Mutex::new(sender));
    // Kept to make the close a reset when the service's side fails.
    let socket = std::os::fd::AsRawFd::as_raw_fd(&client);
    let service = service_fn(move |req: Request<Incoming>| {
        let sender = sender.clone();
        let state = state.clone();
        async move { answer(req, &sender, &state, socket).await }
    });
    let served = server::Builder::new().serve_connection(TokioIo::new(client), service);
    tokio::pin!(served);
    tokio::select! {
        _ = served.as_mut() => {}
        _ = &mut closed => {
            // Closes at once when idle; a request under way is finished first.
            served.as_mut().graceful_shutdown();
            let _ = served.await;
        }
    }
}

/// Why a request got no answer from the service: the client's connection
/// is reset.
#[derive(Debug, thiserror::Error)]
#[error("the service's side of the link failed: {0}")]
pub struct Severed(String);

async fn answer(
    req: Request<Incoming>,
    sender: &Mutex<client::SendRequest<Incoming>>,
    state: &State,
    fd: std::os::fd::RawFd,
) -> Result<Answer, Severed> {
    let mut noted = Noted { state, status: None };
    let toxics = state.toxics();
    let mut hang = false;
    for t in toxics.iter().filter(|t| t.stream == Stream::Downstream) {
        match t.kind {
            Kind::HttpError { status, first } => {
                let n = {
                    let mut seen = state.seen.lock().unwrap_or_else(PoisonError::into_inner);
                    let n = seen.entry(t.name.clone()).or_default();
                    *n += 1;
                    *n
                };
                if (first == 0 || n <= first) && t.roll() {
                    noted.status = Some(status);
                    return Ok(injected(status, &state.name));
                }
            }
            Kind::HttpDelay { delay } if t.roll() => {
                tokio::time::sleep(Duration::from_millis(delay)).await;
            }
            Kind::HttpHang {} if t.roll() => hang = true,
            _ => {}
        }
    }
    let mut sender = sender.lock().await;
    let sent = async {
        sender.ready().await?;
        sender.send_request(req).await
    };
    match sent.await {
        Ok(response) if hang => {
            noted.status = Some(response.status().as_u16());
            let (parts, _body) = response.into_parts();
            Ok(Response::from_parts(parts, Never.boxed()))
        }
        Ok(response) => {
            noted.status = Some(response.status().as_u16());
            Ok(response.map(BodyExt::boxed))
        }
        Err(e) => {
            super::state::reset_on_close(fd);
            Err(Severed(e.to_string()))
        }
    }
}

/// Notes a request on the link when its answer is decided, or as severed
/// (status 0) when it never is: the client gave up, or the service's side
/// failed.
struct Noted<'a> {
    state: &'a State,
    status: Option<u16>,
}

impl Drop for Noted<'_> {
    fn drop(&mut self) {
        self.state.note(LinkEvent::Request(self.status.unwrap_or(0)));
    }
}

/// The link's own answer for an `http_error` toxic: JSON that says so.
fn injected(status: u16, link: &str) -> Answer {
    let body = serde_json::json!({
        "error": "fault_injected",
        "message": format!("the fault proxy's link {link} answered {status} in place of the service"),
    })
    .to_string();
    let mut r = Response::new(Full::new(Bytes::from(body)).map_err(|n: Infallible| match n {}).boxed());
    *r.status_mut() = hyper::StatusCode::from_u16(status).unwrap_or(hyper::StatusCode::SERVICE_UNAVAILABLE);
    r.headers_mut().insert(
        hyper::header::CONTENT_TYPE,
        hyper::header::HeaderValue::from_static("application/json"),
    );
    r
}

/// A body that never yields: the answer hangs after its headers.
struct Never;

impl Body for Never {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, hyper::Error>>> {
        Poll::Pending
    }
}
