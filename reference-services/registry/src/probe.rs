//! One run of an HTTP or TCP check, judged and described as Consul's
//! `CheckHTTP` and `CheckTCP` do: HTTP 2xx passing, 429 warning, anything
//! else (or no answer within the timeout) critical; TCP passing when a
//! connection opens. The `Output` strings copy Consul's, error texts
//! included (they are Go's), so what an operator reads does not depend on
//! which registry ran the check.
//!
//! Each HTTP run opens its own connection and asks the server to close it
//! (Consul disables keep-alives "to prevent failing checks due to the
//! keepalive interval"), through hyper's bare HTTP/1 client: no pool, no TLS.

use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use http::header::{ACCEPT, CONNECTION, HOST, USER_AGENT};
use http::{HeaderValue, Request};
use http_body_util::{BodyExt as _, Full};
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;
use tokio::time::{Instant, timeout_at};

use crate::catalog::Status;
use crate::definition::{HttpTarget, OUTPUT_MAX_BYTES, Probe, Target};

/// The `User-Agent` of HTTP checks unless the check sets one (Consul's).
pub const USER_AGENT_VALUE: &str = "Consul Health Check";
/// The `Accept` of HTTP checks unless the check sets one (Consul's).
pub const ACCEPT_VALUE: &str = "text/plain, text/*, */*";

/// Runs `probe` once: the status it found and the check's `Output`.
pub async fn run(probe: &Probe) -> (Status, String) {
    let deadline = Instant::now() + probe.timeout;
    match &probe.target {
        Target::Http(t) => http(t, deadline).await,
        Target::Tcp(addr) => tcp(addr, deadline).await,
    }
}

async fn tcp(addr: &str, deadline: Instant) -> (Status, String) {
    match timeout_at(deadline, dial(addr)).await {
        Ok(Ok(_)) => (Status::Passing, format!("TCP connect {addr}: Success")),
        Ok(Err(e)) => (Status::Critical, e),
        Err(_) => (Status::Critical, format!("dial tcp {addr}: i/o timeout")),
    }
}

/// Connects to `host:port`, failing with Go's `net.Dial` wording.
async fn dial(addr: &str) -> Result<TcpStream, String> {
    let addrs: Vec<SocketAddr> = match tokio::net::lookup_host(addr).await {
        Ok(a) => a.collect(),
        Err(e) => {
            let host = addr.rsplit_once(':').map_or(addr, |(h, _)| h);
            return Err(format!("dial tcp: lookup {host}: {}", go_error(&e)));
        }
    };
    let mut last = None;
    for a in &addrs {
        match TcpStream::connect(a).await {
            Ok(s) => return Ok(s),
            Err(e) => last = Some(format!("dial tcp {a}: connect: {}", go_error(&e))),
        }
    }
    Err(last.unwrap_or_else(|| format!("dial tcp: lookup {addr}: no such host")))
}

/// An OS error as Go prints it: `connection refused`, not
/// `Connection refused (os error 111)`.
fn go_error(e: &std::io::Error) -> String {
    let text = e.to_string();
    let text = match text.find(" (os error") {
        Some(i) => &text[..i],
        None => &text,
    };
    let mut chars = text.chars();
    match chars.next() {
        Some(first) => first.to_lowercase().chain(chars).collect(),
        None => text.to_owned(),
    }
}

async fn http(t: &HttpTarget, deadline: Instant) -> (Status, String) {
    // Go's url.Error: the method with only its first letter upper-case.
    let op = {
        let m = t.method.as_str();
        format!("{}{}", &m[..1.min(m.len())], m.get(1..).unwrap_or("").to_lowercase())
    };
    let failed = |why: String| (Status::Critical, format!("{op} \"{}\": {why}", t.url));
    let (head, mut body, _conn) = match timeout_at(deadline, exchange(t)).await {
        Ok(Ok(answer)) => answer,
        Ok(Err(why)) => return failed(why),
        Err(_) => {
            return failed("context deadline exceeded (Client.Timeout exceeded while awaiting headers)".to_owned());
        }
    };
    // The body within what is left of the timeout; Consul keeps what it got.
    let mut output = Vec::new();
    while let Ok(Some(Ok(frame))) = timeout_at(deadline, body.frame()).await {
        if let Ok(data) = frame.into_data() {
            output.extend_from_slice(&data);
            if output.len() > OUTPUT_MAX_BYTES {
                output.drain(..output.len() - OUTPUT_MAX_BYTES);
            }
        }
    }
    let code = head.status.as_u16();
    let reason = head
        .extensions
        .get::<hyper::ext::ReasonPhrase>()
        .map(|r| String::from_utf8_lossy(r.as_bytes()).into_owned())
        .or_else(|| head.status.canonical_reason().map(str::to_owned))
        .unwrap_or_default();
    let status = match code {
        200..=299 => Status::Passing,
        429 => Status::Warning,
        _ => Status::Critical,
    };
    let output = format!(
        "HTTP {} {}: {} Output: {}",
        t.method,
        t.url,
        format!("{code} {reason}").trim_end(),
        String::from_utf8_lossy(&output)
    );
    (status, output)
}

/// Aborts the task driving a connection when the run that owns it ends,
/// however it ends (a timeout drops it mid-flight).
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

type Answer = (http::response::Parts, hyper::body::Incoming, AbortOnDrop);

/// Sends the check's request on a fresh connection; the response head, its
/// body still to read, and the connection's driver.
async fn exchange(t: &HttpTarget) -> Result<Answer, String> {
    let authority = t.uri.authority().ok_or_else(|| "no host in URL".to_owned())?;
    let addr = format!("{}:{}", authority.host(), authority.port_u16().unwrap_or(80));
    let stream = dial(&addr).await?;
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .map_err(|e| e.to_string())?;
    let conn = AbortOnDrop(tokio::spawn(async move {
        let _ = conn.await;
    }));
    let path = t.uri.path_and_query().map_or("/", |p| p.as_str());
    let mut req = Request::builder()
        .method(t.method.clone())
        .uri(path)
        .body(Full::new(Bytes::from(t.body.clone())))
        .map_err(|e| e.to_string())?;
    let headers = req.headers_mut();
    headers.extend(t.headers.clone());
    if !headers.contains_key(HOST) {
        let host = HeaderValue::from_str(authority.as_str()).map_err(|e| e.to_string())?;
        headers.insert(HOST, host);
    }
    headers
        .entry(USER_AGENT)
        .or_insert(HeaderValue::from_static(USER_AGENT_VALUE));
    headers.entry(ACCEPT).or_insert(HeaderValue::from_static(ACCEPT_VALUE));
    headers.insert(CONNECTION, HeaderValue::from_static("close"));
    let resp = sender.send_request(req).await.map_err(|e| {
        if e.is_incomplete_message() {
            "EOF".to_owned()
        } else {
            e.to_string()
        }
    })?;
    let (head, body) = resp.into_parts();
    Ok((head, body, conn))
}

/// How long to wait before a check's first run: a random part of its
/// interval, as Consul's `lib.RandomStagger`, so checks registered together
/// do not all run at once.
pub fn stagger(interval: Duration) -> Duration {
    interval.mul_f64(fastrand::f64())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn os_errors_read_as_go_prints_them() {
        let e = std::io::Error::other("Connection refused (os error 111)");
        assert_eq!(go_error(&e), "connection refused");
        assert_eq!(go_error(&std::io::Error::other("")), "");
    }
}
