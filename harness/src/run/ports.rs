//! Free loopback ports for the processes of a stack.

use std::net::TcpListener;

/// A port that was free a moment ago. Processes are started on fixed ports
/// (not port 0) so a restarted instance comes back where it was.
pub fn free_port() -> std::io::Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

/// True when `port` can be bound on loopback now.
pub fn is_free(port: u16) -> bool {
    TcpListener::bind(("127.0.0.1", port)).is_ok()
}
