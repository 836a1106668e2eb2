//! Raw HTTP/1.1 over TCP, for the checks an HTTP client would hide: a
//! half-sent request head, a connection kept alive on purpose, what a server
//! writes before it closes.

use tokio::io::AsyncReadExt;
use tokio::net::TcpStream;

/// Reads until the server closes (or resets) the connection: all it sent.
pub async fn read_to_close(stream: &mut TcpStream) -> String {
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    while let Ok(n) = stream.read(&mut buf).await
        && n > 0
    {
        out.extend_from_slice(&buf[..n]);
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Reads one response whose body has a `content-length` (none: empty),
/// leaving the connection open: its status and its whole text.
///
/// # Panics
/// When the connection fails or closes before a whole response, or the
/// status line is not HTTP/1.1's: a test's assertion, with what was read.
pub async fn read_response(stream: &mut TcpStream) -> (u16, String) {
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        let text = String::from_utf8_lossy(&out).into_owned();
        if let Some(end) = text.find("\r\n\r\n") {
            let length = text[..end]
                .lines()
                .find_map(|l| {
                    l.to_ascii_lowercase()
                        .strip_prefix("content-length:")
                        .map(|v| v.trim().to_owned())
                })
                .and_then(|v| v.parse::<usize>().ok())
                .unwrap_or(0);
            if out.len() >= end + 4 + length {
                let status = text.get(9..12).and_then(|s| s.parse().ok());
                let status = status.unwrap_or_else(|| panic!("not an HTTP/1.1 status line: {text:?}"));
                return (status, text);
            }
        }
        let n = stream.read(&mut buf).await.expect("reading a response");
        assert!(n > 0, "closed before a whole response: {text:?}");
        out.extend_from_slice(&buf[..n]);
    }
}
