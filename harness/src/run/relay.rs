//! Lets the containers of a stack reach a process on the host that listens
//! on the host's loopback only: a listener on the host's address on the
//! stack's network (which `host.docker.internal` names in its containers)
//! that copies each connection to the process, byte for byte. The process
//! stays on loopback, out of reach of anything else.

use std::net::SocketAddr;

use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

/// A relay to one host process; it stops accepting when dropped.
#[derive(Debug)]
pub struct Relay {
    port: u16,
    accepting: JoinHandle<()>,
}

impl Relay {
    /// Listens on a free port of `ip` and relays every connection to `upstream`.
    pub async fn start(ip: &str, upstream: SocketAddr) -> std::io::Result<Self> {
        let listener = TcpListener::bind((ip, 0)).await?;
        let port = listener.local_addr()?.port();
        let accepting = tokio::spawn(async move {
            while let Ok((mut inbound, _)) = listener.accept().await {
                tokio::spawn(async move {
                    // An upstream that is down (killed by a test) refuses,
                    // and the container sees its connection closed.
                    if let Ok(mut outbound) = TcpStream::connect(upstream).await {
                        let _ = outbound.set_nodelay(true);
                        let _ = inbound.set_nodelay(true);
                        let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                    }
                });
            }
        });
        Ok(Self { port, accepting })
    }

    /// The port containers reach it on, at `host.docker.internal`.
    pub fn port(&self) -> u16 {
        self.port
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        self.accepting.abort();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    #[tokio::test]
    async fn bytes_go_both_ways_and_a_dead_upstream_closes_the_connection() {
        let upstream = TcpListener::bind("127.0.0.1:0").await.expect("a port");
        let at = upstream.local_addr().expect("its address");
        let server = tokio::spawn(async move {
            let (mut s, _) = upstream.accept().await.expect("a connection");
            let mut buf = [0u8; 4];
            s.read_exact(&mut buf).await.expect("four bytes");
            s.write_all(&buf.map(|b| b.to_ascii_uppercase()))
                .await
                .expect("written");
        });
        let relay = Relay::start("127.0.0.1", at).await.expect("a relay");
        let mut c = TcpStream::connect(("127.0.0.1", relay.port()))
            .await
            .expect("connected");
        c.write_all(b"ping").await.expect("sent");
        let mut back = [0u8; 4];
        c.read_exact(&mut back).await.expect("answered");
        assert_eq!(&back, b"PING");
        server.await.expect("the upstream is done, its listener closed");

        // Nothing listens upstream any more: the relay closes at once.
        let mut c = TcpStream::connect(("127.0.0.1", relay.port()))
            .await
            .expect("connected");
        let mut rest = Vec::new();
        assert_eq!(c.read_to_end(&mut rest).await.expect("closed"), 0);
    }
}
