//! What every Gantry service's HTTP surface has in common: request ids,
//! `X-Instance-Id`, size limits and a body deadline, JSON errors for every
//! refusal. Serving itself (deadlines, the connection cap) is [`crate::serve`].

use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use http::{HeaderName, HeaderValue, StatusCode};
use http_body_util::{BodyExt, Limited};
use tracing::Instrument;

use crate::error::ApiError;
use crate::serve::Limits;
use crate::trace::TraceParent;

/// The largest request body any endpoint accepts.
pub const MAX_BODY_BYTES: usize = 64 * 1024;
/// The largest total size of request headers (names and values) accepted.
pub const MAX_HEADER_BYTES: usize = 16 * 1024;

pub static X_REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");
pub static X_INSTANCE_ID: HeaderName = HeaderName::from_static("x-instance-id");

/// The total size of a header map, as counted against [`MAX_HEADER_BYTES`].
pub fn header_bytes(headers: &http::HeaderMap) -> usize {
    headers
        .iter()
        .map(|(name, value)| name.as_str().len() + value.len() + 4)
        .sum()
}

/// A request id that is safe to echo: the caller's when it is short and
/// printable, else a fresh one.
pub fn request_id(incoming: Option<&HeaderValue>) -> HeaderValue {
    if let Some(v) = incoming {
        let ok = v.len() <= 128 && v.as_bytes().iter().all(|b| b.is_ascii_graphic());
        if ok && !v.is_empty() {
            return v.clone();
        }
    }
    new_request_id()
}

/// 64 random bits as 16 hex digits, from a thread-local generator: request
/// ids must be unique, not secret, and this is on every request's path.
pub fn new_request_id() -> HeaderValue {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut n = fastrand::u64(..);
    let mut out = [0u8; 16];
    for b in out.iter_mut().rev() {
        *b = HEX[(n & 15) as usize];
        n >>= 4;
    }
    HeaderValue::from_bytes(&out).expect("hex digits are a valid header value")
}

struct Context {
    service: &'static str,
    instance_id: HeaderValue,
    body_timeout: std::time::Duration,
}

/// Wraps a service's routes with the common behaviour: `/healthz`,
/// `/openapi.json` (serving `openapi`), request ids, limits and JSON errors.
/// `service` names the span; `instance_id` goes out on every response;
/// `limits.body_timeout` bounds how long a client may take to send a body.
pub fn standard(
    router: Router,
    service: &'static str,
    instance_id: &str,
    openapi: &'static str,
    limits: &Limits,
) -> Router {
    let ctx = Arc::new(Context {
        service,
        instance_id: HeaderValue::from_str(instance_id).unwrap_or_else(|_| HeaderValue::from_static("invalid")),
        body_timeout: limits.body_timeout,
    });
    router
        .route(
            "/healthz",
            get(|| async { axum::Json(serde_json::json!({"status": "ok"})) }),
        )
        .route(
            "/openapi.json",
            get(move || async move { ([(http::header::CONTENT_TYPE, "application/json")], openapi) }),
        )
        .fallback(not_found)
        .layer(middleware::from_fn_with_state(ctx, request_context))
}

async fn not_found() -> ApiError {
    ApiError::not_found("no such route")
}

tokio::task_local! {
    /// The ids of the request a task is answering, for calls it makes on
    /// its behalf ([`outgoing_ids`]).
    static CURRENT: Ids;
}

/// The ids a request came with: its `X-Request-Id` and its trace.
#[derive(Debug, Clone)]
struct Ids {
    request_id: HeaderValue,
    trace: TraceParent,
}

/// `X-Request-Id` and `traceparent` for a call this service makes while
/// answering a request: the request's id, and its trace with a new span of
/// this service as the parent. Outside a request (a background task), a
/// fresh id and a new trace.
pub fn outgoing_ids() -> (HeaderValue, HeaderValue) {
    CURRENT
        .try_with(|ids| (ids.request_id.clone(), ids.trace.child().to_header()))
        .unwrap_or_else(|_| (new_request_id(), TraceParent::new_root().to_header()))
}

async fn request_context(State(ctx): State<Arc<Context>>, req: Request, next: Next) -> Response {
    let started = std::time::Instant::now();
    let rid = request_id(req.headers().get(&X_REQUEST_ID));
    // The caller's trace, or a new one when it sent none (or a bad one).
    let trace = TraceParent::from_headers(req.headers()).unwrap_or_else(TraceParent::new_root);
    let span = tracing::info_span!(
        "request",
        service = ctx.service,
        request_id = rid.to_str().unwrap_or(""),
        trace_id = %trace.trace_id_hex(),
        method = %req.method(),
        path = req.uri().path(),
    );
    let ids = Ids {
        request_id: rid.clone(),
        trace,
    };
    let answer = async {
        if header_bytes(req.headers()) > MAX_HEADER_BYTES {
            return ApiError::new(
                StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
                "headers_too_large",
                format!("request headers exceed {MAX_HEADER_BYTES} bytes"),
            )
            .into_response();
        }
        let req = match read_body(req, ctx.body_timeout).await {
            Ok(req) => req,
            Err(e) => return e.into_response(),
        };
        let response = next.run(req).await;
        let status = response.status();
        let has_body_type = response.headers().contains_key(http::header::CONTENT_TYPE);
        if status == StatusCode::METHOD_NOT_ALLOWED && !has_body_type {
            let mut replaced =
                ApiError::new(status, "method_not_allowed", "method not allowed on this route").into_response();
            if let Some(allow) = response.headers().get(http::header::ALLOW) {
                replaced.headers_mut().insert(http::header::ALLOW, allow.clone());
            }
            return replaced;
        }
        response
    };
    let mut response = CURRENT.scope(ids, answer).instrument(span.clone()).await;
    // The access line, inside the request's span: every request a service
    // answers can be found in its log by its request id or its trace id.
    let status = response.status().as_u16();
    let took_ms = started.elapsed().as_secs_f64() * 1000.0;
    span.in_scope(|| {
        if response.status().is_server_error() {
            tracing::warn!(status, took_ms, "answered with a server error");
        } else {
            tracing::info!(status, took_ms, "answered");
        }
    });
    let headers = response.headers_mut();
    headers.insert(X_INSTANCE_ID.clone(), ctx.instance_id.clone());
    headers.insert(X_REQUEST_ID.clone(), rid);
    response
}

/// Reads the whole body (every endpoint takes a small JSON body, at most
/// [`MAX_BODY_BYTES`]) within `deadline`, so a client that trickles its body
/// holds a connection for a bounded time and never a handler: 408 after the
/// deadline, 413 past the size limit, 400 when the body breaks off.
async fn read_body(req: Request, deadline: std::time::Duration) -> Result<Request, ApiError> {
    let (parts, body) = req.into_parts();
    let collected = tokio::time::timeout(deadline, Limited::new(body, MAX_BODY_BYTES).collect()).await;
    let bytes = match collected {
        Ok(Ok(collected)) => collected.to_bytes(),
        Ok(Err(e)) if e.is::<http_body_util::LengthLimitError>() => {
            return Err(ApiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "body_too_large",
                format!("request body exceeds {MAX_BODY_BYTES} bytes"),
            ));
        }
        Ok(Err(_)) => {
            return Err(ApiError::bad_request(
                "unreadable_body",
                "the request body could not be read",
            ));
        }
        Err(_) => {
            return Err(ApiError::new(
                StatusCode::REQUEST_TIMEOUT,
                "body_timeout",
                format!("the request body did not arrive within {deadline:?}"),
            ));
        }
    };
    Ok(Request::from_parts(parts, Body::from(bytes)))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A service whose one route answers with the ids it would send on a
    /// call it made while answering ([`outgoing_ids`]), served on port 0.
    async fn serve_ids() -> String {
        let router = Router::new().route(
            "/ids",
            get(|| async {
                let (rid, trace) = outgoing_ids();
                format!("{} {}", rid.to_str().unwrap(), trace.to_str().unwrap())
            }),
        );
        let app = standard(router, "test", "test-1", "{}", &Limits::default());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await });
        format!("http://{addr}/ids")
    }

    #[tokio::test]
    async fn a_call_made_while_answering_carries_the_requests_ids() {
        let url = serve_ids().await;
        let incoming = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
        let http = reqwest::Client::new();
        let said = http
            .get(&url)
            .header("x-request-id", "rid-7")
            .header("traceparent", incoming)
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        let (rid, trace) = said.split_once(' ').unwrap();
        assert_eq!(rid, "rid-7");
        let trace = TraceParent::parse(trace.as_bytes()).expect("a valid traceparent goes on");
        assert_eq!(trace.trace_id_hex(), "4bf92f3577b34da6a3ce929d0e0e4736");
        assert_ne!(trace.to_string(), incoming, "this service's span is the parent");

        // Without ids, the call still gets a valid trace and an id.
        let said = http.get(&url).send().await.unwrap().text().await.unwrap();
        let (rid, trace) = said.split_once(' ').unwrap();
        assert_eq!(rid.len(), 16, "{said}");
        assert!(TraceParent::parse(trace.as_bytes()).is_some(), "{said}");
    }

    #[test]
    fn outside_a_request_the_ids_are_fresh() {
        let (rid, trace) = outgoing_ids();
        assert_eq!(rid.len(), 16);
        assert!(TraceParent::parse(trace.as_bytes()).is_some());
    }
}
