//! Body: the request body, read whole before any attempt so a retry can
//! send it again, within [`MAX_BODY_BYTES`] and the body deadline.

use std::time::Duration;

use bytes::Bytes;
use gantry_common::error::ApiError;
use gantry_common::http::MAX_BODY_BYTES;
use http::StatusCode;
use http::header::{self, HeaderMap};
use http_body_util::{BodyExt, Limited};
use hyper::body::{Body as _, Incoming};

/// The whole body, or the 4xx that says why not: 413 when declared or
/// found too large, 408 when it did not arrive within `timeout`, 400 when
/// it could not be read.
pub async fn read(headers: &HeaderMap, body: Incoming, timeout: Duration) -> Result<Bytes, ApiError> {
    let too_large = || {
        ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "body_too_large",
            format!("request body exceeds {MAX_BODY_BYTES} bytes"),
        )
    };
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > MAX_BODY_BYTES as u64) {
        return Err(too_large());
    }
    // A request without a body (most GETs) skips the deadline: no timer to set.
    if body.is_end_stream() {
        return Ok(Bytes::new());
    }
    // A deadline on the whole body: a client trickling it in must not
    // hold the connection (and this request's memory) for ever.
    match tokio::time::timeout(timeout, Limited::new(body, MAX_BODY_BYTES).collect()).await {
        Ok(Ok(collected)) => Ok(collected.to_bytes()),
        Ok(Err(e)) if e.is::<http_body_util::LengthLimitError>() => Err(too_large()),
        Ok(Err(_)) => Err(ApiError::bad_request(
            "unreadable_body",
            "the request body could not be read",
        )),
        Err(_) => {
            let timeout = gantry_common::config::format_duration(timeout);
            Err(ApiError::new(
                StatusCode::REQUEST_TIMEOUT,
                "body_timeout",
                format!("the request body did not arrive within {timeout}"),
            ))
        }
    }
}
