//! One link of the fault proxy: a listener whose every connection is
//! forwarded to the link's upstream, the bytes of each direction passing
//! through that direction's toxics (Toxiproxy's model). An HTTP link puts
//! an HTTP front on it ([`super::http`]): requests meet the `http_*`
//! toxics there, then travel to the service over the link's TCP toxics.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use bytes::Bytes;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;
use tokio::time::Instant;

use super::state::{Protocol, State, reset};
use super::toxic::{Kind, Stream, Toxic};

/// How long a link waits for its upstream to accept a connection before
/// it closes the client's.
pub const UPSTREAM_CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// A running link: its listener (and, for HTTP, the inner TCP one).
#[derive(Debug)]
pub struct Link {
    /// What its connections and its controllers share: upstream, toxics, events.
    pub state: Arc<State>,
    /// Where clients connect (what is registered in place of the service).
    pub listen: SocketAddr,
    accept: Option<JoinHandle<()>>,
    inner: Option<(SocketAddr, JoinHandle<()>)>,
}

impl Link {
    /// A link named `name` on `listen` (port 0 for any) to `upstream`.
    pub async fn start(name: &str, listen: SocketAddr, upstream: &str, protocol: Protocol) -> std::io::Result<Self> {
        let state = Arc::new(State::new(name, upstream, protocol));
        let listener = TcpListener::bind(listen).await?;
        let listen = listener.local_addr()?;
        let mut link = Link {
            state,
            listen,
            accept: None,
            inner: None,
        };
        if protocol == Protocol::Http {
            let inner = TcpListener::bind("127.0.0.1:0").await?;
            let at = inner.local_addr()?;
            link.inner = Some((at, tokio::spawn(accept(inner, link.state.clone(), None))));
        }
        link.accept = Some(tokio::spawn(accept(
            listener,
            link.state.clone(),
            link.inner.as_ref().map(|i| i.0),
        )));
        Ok(link)
    }

    /// Whether it listens (Toxiproxy's `enabled`).
    pub fn is_enabled(&self) -> bool {
        self.accept.is_some()
    }

    /// Stops listening and closes every connection (Toxiproxy's disable):
    /// clients are refused until [`Link::enable`].
    pub async fn disable(&mut self) {
        if let Some(task) = self.accept.take() {
            task.abort();
            // Once it has ended, its listener is closed: enabling again can
            // bind the same address at once.
            let _ = task.await;
        }
        self.state.close_all();
    }

    /// Listens again on the same address.
    pub async fn enable(&mut self) -> std::io::Result<()> {
        if self.accept.is_some() {
            return Ok(());
        }
        let listener = TcpListener::bind(self.listen).await?;
        self.accept = Some(tokio::spawn(accept(
            listener,
            self.state.clone(),
            self.inner.as_ref().map(|i| i.0),
        )));
        Ok(())
    }
}

impl Drop for Link {
    fn drop(&mut self) {
        if let Some(t) = self.accept.take() {
            t.abort();
        }
        if let Some((_, t)) = self.inner.take() {
            t.abort();
        }
        self.state.close_all();
    }
}

/// Accepts connections: TCP ones are piped to the upstream; with `inner`
/// set, they get the HTTP front, which sends requests on through `inner`.
async fn accept(listener: TcpListener, state: Arc<State>, inner: Option<SocketAddr>) {
    loop {
        let Ok((client, _)) = listener.accept().await else {
            continue;
        };
        let _ = client.set_nodelay(true);
        let s = state.clone();
        let task = match inner {
            None => tokio::spawn(async move { pipe_connection(client, &s).await }),
            Some(inner) => tokio::spawn(async move { super::http::serve(client, inner, s).await }),
        };
        state.track(task.abort_handle());
    }
}

/// How a connection ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum End {
    Open,
    /// Closed normally (FIN).
    Close,
    /// Reset (RST): unsent data discarded.
    Reset,
}

/// Whether each toxic applies to this connection: rolled against its
/// toxicity once, the first time the connection meets it.
#[derive(Default)]
struct Rolls(Mutex<HashMap<String, bool>>);

impl Rolls {
    fn active(&self, toxics: &[Toxic], stream: Stream) -> Vec<Toxic> {
        let mut rolls = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        toxics
            .iter()
            .filter(|t| t.stream == stream && !t.kind.is_http())
            .filter(|t| *rolls.entry(t.name.clone()).or_insert_with(|| t.roll()))
            .cloned()
            .collect()
    }
}

/// Forwards one client connection to the upstream through the toxics.
async fn pipe_connection(client: TcpStream, state: &State) {
    let upstream = match tokio::time::timeout(UPSTREAM_CONNECT_TIMEOUT, TcpStream::connect(state.upstream())).await {
        Ok(Ok(s)) => s,
        // As Toxiproxy: the client's connection is closed.
        _ => return,
    };
    let _ = upstream.set_nodelay(true);
    let (client, upstream) = (Arc::new(client), Arc::new(upstream));
    let end = watch::Sender::new(End::Open);
    let rolls = Rolls::default();
    let up = pipe(&client, &upstream, Stream::Upstream, state, &end, &rolls);
    let down = pipe(&upstream, &client, Stream::Downstream, state, &end, &rolls);
    tokio::join!(up, down);
    if *end.borrow() == End::Reset {
        reset(&client);
        reset(&upstream);
    }
}

/// Half-closes the socket's sending side (FIN), keeping it readable.
fn shutdown_write(s: &TcpStream) {
    use std::os::fd::AsRawFd;
    // SAFETY: the descriptor is open for as long as `s` lives.
    unsafe {
        libc::shutdown(s.as_raw_fd(), libc::SHUT_WR);
    }
}

async fn read(s: &TcpStream, buf: &mut [u8]) -> std::io::Result<usize> {
    loop {
        s.readable().await?;
        match s.try_read(buf) {
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => continue,
            other => return other,
        }
    }
}

async fn write_all(s: &TcpStream, mut data: &[u8]) -> std::io::Result<()> {
    while !data.is_empty() {
        s.writable().await?;
        match s.try_write(data) {
            Ok(n) => data = &data[n..],
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => continue,
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// Resolves when the connection ends (the guard `wait_for` returns is
/// dropped here, so callers' futures stay `Send`).
async fn ended(end: &mut watch::Receiver<End>) {
    let _ = end.wait_for(|e| *e != End::Open).await;
}

/// Waits `d` unless the connection ends first; false if it did.
async fn hold(d: Duration, end: &mut watch::Receiver<End>) -> bool {
    if !d.is_zero() {
        tokio::select! {
            _ = tokio::time::sleep(d) => {}
            _ = ended(end) => return false,
        }
    }
    *end.borrow() == End::Open
}

/// One direction: a reader stamping each chunk with its arrival, and a
/// writer applying the direction's toxics to it (so latency delays a
/// stream rather than slowing it, as Toxiproxy's does).
async fn pipe(
    from: &TcpStream,
    to: &TcpStream,
    stream: Stream,
    state: &State,
    end: &watch::Sender<End>,
    rolls: &Rolls,
) {
    let (tx, mut rx) = mpsc::channel::<Option<(Instant, Bytes)>>(64);
    let mut reader_end = end.subscribe();
    let reader = async move {
        let mut buf = vec![0u8; 32 * 1024];
        loop {
            tokio::select! {
                r = read(from, &mut buf) => {
                    let chunk = match r {
                        Ok(n) if n > 0 => Some((Instant::now(), Bytes::copy_from_slice(&buf[..n]))),
                        _ => None,
                    };
                    let last = chunk.is_none();
                    if tx.send(chunk).await.is_err() || last {
                        return;
                    }
                }
                _ = ended(&mut reader_end) => return,
            }
        }
    };
    let writer = write_through_toxics(to, stream, state, end, rolls, &mut rx);
    tokio::join!(reader, writer);
}

/// What one direction's toxics, as this connection rolled them, do to its
/// bytes: worked out once each time the toxics change, not per chunk.
#[derive(Debug, Default)]
struct Plan {
    /// Latency toxics (each chunk draws its jitter).
    latency: Vec<Kind>,
    bandwidth: Option<u64>,
    slow_close: Option<Duration>,
    /// `timeout`'s milliseconds: nothing passes (and after them, close).
    timeout: Option<u64>,
    /// `reset_peer`'s delay after the first data.
    reset: Option<Duration>,
    limit: Option<u64>,
    /// Slicer's average size, variation and pause.
    slicer: Option<(usize, usize, Duration)>,
    blackhole: bool,
}

impl Plan {
    fn of(toxics: &[Toxic]) -> Self {
        let mut plan = Plan::default();
        for t in toxics {
            match t.kind {
                Kind::Latency { .. } => plan.latency.push(t.kind.clone()),
                Kind::Bandwidth { rate } if rate > 0 => plan.bandwidth = Some(rate),
                Kind::SlowClose { delay } => plan.slow_close = Some(Duration::from_millis(delay)),
                Kind::Timeout { timeout } => plan.timeout = Some(timeout),
                Kind::ResetPeer { timeout } => plan.reset = Some(Duration::from_millis(timeout)),
                Kind::LimitData { bytes } => plan.limit = Some(bytes),
                Kind::Slicer {
                    average_size,
                    size_variation,
                    delay,
                } => plan.slicer = Some((average_size.max(1), size_variation, Duration::from_micros(delay))),
                Kind::Blackhole {} => plan.blackhole = true,
                _ => {}
            }
        }
        plan
    }
}

async fn write_through_toxics(
    to: &TcpStream,
    stream: Stream,
    state: &State,
    end: &watch::Sender<End>,
    rolls: &Rolls,
    rx: &mut mpsc::Receiver<Option<(Instant, Bytes)>>,
) {
    let mut toxics_rx = state.toxics.subscribe();
    let mut end_rx = end.subscribe();
    let mut passed: u64 = 0;
    let mut timeout_at: Option<Instant> = None;
    let mut reset_at: Option<Instant> = None;
    // Whether a timeout toxic swallowed data: the stream cannot resume.
    let mut lost = false;
    let far = || Instant::now() + Duration::from_secs(86_400 * 365);
    let mut plan = Plan::default();
    let mut changed = true;
    loop {
        if changed {
            plan = Plan::of(&rolls.active(&toxics_rx.borrow_and_update(), stream));
            changed = false;
            timeout_at = match plan.timeout {
                Some(ms) if ms > 0 => timeout_at.or(Some(Instant::now() + Duration::from_millis(ms))),
                _ => None,
            };
            if plan.reset.is_none() {
                reset_at = None;
            }
        }
        if lost && plan.timeout.is_none() {
            end.send_replace(End::Reset);
            return;
        }
        if plan.blackhole {
            // Hold everything: read nothing more until the toxics change.
            tokio::select! {
                _ = ended(&mut end_rx) => return,
                _ = toxics_rx.changed() => changed = true,
            }
            continue;
        }
        // Biased: a change of the toxics made before a chunk was taken is
        // always applied to it. Picked at random, a chunk that arrived while
        // this task waited to run could pass under the toxics it replaced (a
        // latency added just before a request let its answer through at once).
        let chunk = tokio::select! {
            biased;
            _ = ended(&mut end_rx) => return,
            _ = toxics_rx.changed() => {
                changed = true;
                continue;
            }
            _ = tokio::time::sleep_until(timeout_at.unwrap_or_else(far)), if timeout_at.is_some() => {
                end.send_replace(End::Close);
                return;
            }
            _ = tokio::time::sleep_until(reset_at.unwrap_or_else(far)), if reset_at.is_some() => {
                end.send_replace(End::Reset);
                return;
            }
            chunk = rx.recv() => chunk,
        };
        let Some(Some((arrived, mut data))) = chunk else {
            // The source closed: pass the close on, late if slow_close says so.
            if hold(plan.slow_close.unwrap_or_default(), &mut end_rx).await {
                shutdown_write(to);
            }
            return;
        };
        if plan.timeout.is_some() {
            // Nothing passes while a timeout toxic is in place.
            state.swallow(data.len());
            lost = true;
            continue;
        }
        if let Some(after) = plan.reset {
            // As Toxiproxy's reset_peer: the first data starts the clock,
            // and nothing more passes.
            reset_at = reset_at.or(Some(Instant::now() + after));
            if after.is_zero() {
                end.send_replace(End::Reset);
                return;
            }
            continue;
        }
        let latency = plan.latency.iter().filter_map(Kind::latency).max().unwrap_or_default();
        let wait = (arrived + latency).saturating_duration_since(Instant::now());
        if !hold(wait, &mut end_rx).await {
            return;
        }
        if let Some(limit) = plan.limit {
            let room = limit.saturating_sub(passed);
            if (data.len() as u64) >= room {
                data.truncate(room as usize);
                let _ = write_all(to, &data).await;
                end.send_replace(End::Close);
                return;
            }
        }
        passed += data.len() as u64;
        let mut rest = &data[..];
        while !rest.is_empty() {
            let n = match plan.slicer {
                Some((avg, var, _)) => {
                    let spread = if var == 0 { 0 } else { fastrand::usize(0..=2 * var) };
                    (avg + spread).saturating_sub(var).clamp(1, rest.len())
                }
                // Bandwidth-limited: a few milliseconds' worth at a time.
                None => plan
                    .bandwidth
                    .map_or(rest.len(), |r| ((r * 1024 / 100) as usize).clamp(1, rest.len())),
            };
            if write_all(to, &rest[..n]).await.is_err() {
                end.send_replace(End::Close);
                return;
            }
            rest = &rest[n..];
            let mut pause = plan.slicer.map(|s| s.2).unwrap_or_default();
            if let Some(r) = plan.bandwidth {
                pause += Duration::from_secs_f64(n as f64 / (r as f64 * 1024.0));
            }
            if !hold(pause, &mut end_rx).await {
                return;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::Ordering;

    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    use super::*;

    /// An upstream that echoes what it reads, for each connection.
    async fn echo_server() -> SocketAddr {
        let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let at = l.local_addr().unwrap();
        tokio::spawn(async move {
            while let Ok((mut s, _)) = l.accept().await {
                tokio::spawn(async move {
                    let mut buf = [0u8; 4096];
                    while let Ok(n) = s.read(&mut buf).await {
                        if n == 0 || s.write_all(&buf[..n]).await.is_err() {
                            return;
                        }
                    }
                });
            }
        });
        at
    }

    async fn link_to_echo() -> Link {
        let up = echo_server().await;
        Link::start("t", "127.0.0.1:0".parse().unwrap(), &up.to_string(), Protocol::Tcp)
            .await
            .unwrap()
    }

    fn add(link: &Link, t: Toxic) {
        link.state.toxics.send_modify(|v| Arc::make_mut(v).push(t));
    }

    #[tokio::test]
    async fn passes_bytes_both_ways_untouched_without_toxics() {
        let link = link_to_echo().await;
        let mut c = TcpStream::connect(link.listen).await.unwrap();
        c.write_all(b"hello").await.unwrap();
        let mut got = [0u8; 5];
        c.read_exact(&mut got).await.unwrap();
        assert_eq!(&got, b"hello");
    }

    #[tokio::test]
    async fn latency_holds_each_chunk() {
        let link = link_to_echo().await;
        add(
            &link,
            Toxic::new(
                Kind::Latency {
                    latency: 150,
                    jitter: 0,
                },
                Stream::Downstream,
            ),
        );
        let mut c = TcpStream::connect(link.listen).await.unwrap();
        let t = std::time::Instant::now();
        c.write_all(b"x").await.unwrap();
        let mut got = [0u8; 1];
        c.read_exact(&mut got).await.unwrap();
        assert!(t.elapsed() >= Duration::from_millis(150), "{:?}", t.elapsed());
    }

    /// The race a loaded machine hits: the toxics change, then a chunk
    /// arrives, and only then does the writer run, finding both ready. The
    /// change must win every time, or the chunk passes without its latency.
    #[tokio::test]
    async fn a_latency_added_before_a_chunk_is_taken_always_delays_it() {
        for round in 0..20 {
            let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
            let to = TcpStream::connect(listener.local_addr().unwrap()).await.unwrap();
            let (mut far_end, _) = listener.accept().await.unwrap();
            let state = State::new("race", "127.0.0.1:1", Protocol::Tcp);
            let (end, rolls) = (watch::Sender::new(End::Open), Rolls::default());
            let (tx, mut rx) = mpsc::channel(4);
            let writer = write_through_toxics(&to, Stream::Downstream, &state, &end, &rolls, &mut rx);
            tokio::pin!(writer);
            // Polled once: its plan (no toxics) is made and it waits.
            assert!(tokio::time::timeout(Duration::ZERO, &mut writer).await.is_err());
            state.toxics.send_modify(|v| {
                Arc::make_mut(v).push(Toxic::new(
                    Kind::Latency {
                        latency: 120,
                        jitter: 0,
                    },
                    Stream::Downstream,
                ))
            });
            let sent = Instant::now();
            tx.send(Some((sent, Bytes::from_static(b"x")))).await.unwrap();
            let read = async {
                let mut got = [0u8; 1];
                far_end.read_exact(&mut got).await.unwrap();
                sent.elapsed()
            };
            let took = tokio::select! {
                took = read => took,
                () = &mut writer => panic!("the writer ended"),
            };
            assert!(
                took >= Duration::from_millis(120),
                "round {round}: the chunk passed in {took:?}"
            );
        }
    }

    #[tokio::test]
    async fn reset_peer_resets_at_the_first_data() {
        let link = link_to_echo().await;
        add(&link, Toxic::new(Kind::ResetPeer { timeout: 0 }, Stream::Downstream));
        let mut c = TcpStream::connect(link.listen).await.unwrap();
        c.write_all(b"ping").await.unwrap();
        let mut got = [0u8; 4];
        let e = c.read_exact(&mut got).await.unwrap_err();
        assert_eq!(e.kind(), std::io::ErrorKind::ConnectionReset, "{e}");
    }

    #[tokio::test]
    async fn limit_data_closes_after_the_limit() {
        let link = link_to_echo().await;
        add(&link, Toxic::new(Kind::LimitData { bytes: 3 }, Stream::Downstream));
        let mut c = TcpStream::connect(link.listen).await.unwrap();
        c.write_all(b"abcdef").await.unwrap();
        let mut got = Vec::new();
        c.read_to_end(&mut got).await.unwrap();
        assert_eq!(got, b"abc");
    }

    #[tokio::test]
    async fn timeout_passes_nothing_then_closes() {
        let link = link_to_echo().await;
        add(&link, Toxic::new(Kind::Timeout { timeout: 100 }, Stream::Upstream));
        let mut c = TcpStream::connect(link.listen).await.unwrap();
        c.write_all(b"lost").await.unwrap();
        let mut got = Vec::new();
        let _ = c.read_to_end(&mut got).await;
        assert!(got.is_empty(), "{got:?}");
    }

    #[tokio::test]
    async fn a_blackhole_holds_data_and_delivers_it_in_order_when_it_goes() {
        let link = link_to_echo().await;
        add(&link, Toxic::new(Kind::Blackhole {}, Stream::Upstream));
        let mut c = TcpStream::connect(link.listen).await.unwrap();
        c.write_all(b"held").await.unwrap();
        let mut got = [0u8; 4];
        let waited = tokio::time::timeout(Duration::from_millis(200), c.read_exact(&mut got)).await;
        assert!(waited.is_err(), "nothing passes while it is in place");
        link.state.toxics.send_replace(Arc::new(Vec::new()));
        c.read_exact(&mut got).await.unwrap();
        assert_eq!(&got, b"held");
    }

    #[tokio::test]
    async fn a_connection_that_lost_data_to_a_timeout_is_reset_when_it_goes() {
        let link = link_to_echo().await;
        add(&link, Toxic::new(Kind::Timeout { timeout: 0 }, Stream::Upstream));
        let mut c = TcpStream::connect(link.listen).await.unwrap();
        c.write_all(b"lost").await.unwrap();
        // Only once the link has swallowed the bytes does the toxic go.
        let swallowed = || async { Ok::<_, String>(link.state.swallowed.load(Ordering::Relaxed) == 4) };
        crate::run::wait::until("the link to swallow 4 bytes", Duration::from_secs(5), None, swallowed)
            .await
            .unwrap();
        link.state.toxics.send_replace(Arc::new(Vec::new()));
        let mut got = [0u8; 4];
        let e = c.read_exact(&mut got).await.unwrap_err();
        assert!(
            matches!(
                e.kind(),
                std::io::ErrorKind::ConnectionReset | std::io::ErrorKind::UnexpectedEof
            ),
            "{e}"
        );
    }

    #[tokio::test]
    async fn slicer_cuts_a_chunk_into_pieces_that_arrive_whole() {
        let link = link_to_echo().await;
        add(
            &link,
            Toxic::new(
                Kind::Slicer {
                    average_size: 2,
                    size_variation: 1,
                    delay: 1000,
                },
                Stream::Downstream,
            ),
        );
        let mut c = TcpStream::connect(link.listen).await.unwrap();
        c.write_all(b"abcdefghij").await.unwrap();
        let mut got = [0u8; 10];
        c.read_exact(&mut got).await.unwrap();
        assert_eq!(&got, b"abcdefghij");
    }

    #[tokio::test]
    async fn slow_close_holds_the_close_but_not_the_data() {
        // An upstream that answers and closes at once.
        let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let up = l.local_addr().unwrap();
        tokio::spawn(async move {
            let (mut s, _) = l.accept().await.unwrap();
            s.write_all(b"bye").await.unwrap();
        });
        let link = Link::start("s", "127.0.0.1:0".parse().unwrap(), &up.to_string(), Protocol::Tcp)
            .await
            .unwrap();
        add(&link, Toxic::new(Kind::SlowClose { delay: 300 }, Stream::Downstream));
        let mut c = TcpStream::connect(link.listen).await.unwrap();
        let mut got = [0u8; 3];
        c.read_exact(&mut got).await.unwrap();
        let data_at = std::time::Instant::now();
        let mut rest = Vec::new();
        c.read_to_end(&mut rest).await.unwrap();
        assert!(rest.is_empty());
        assert!(
            data_at.elapsed() >= Duration::from_millis(250),
            "closed after {:?}",
            data_at.elapsed()
        );
    }

    #[tokio::test]
    async fn a_disabled_link_refuses_and_an_enabled_one_serves_again() {
        let mut link = link_to_echo().await;
        link.disable().await;
        assert!(TcpStream::connect(link.listen).await.is_err());
        link.enable().await.unwrap();
        let mut c = TcpStream::connect(link.listen).await.unwrap();
        c.write_all(b"ok").await.unwrap();
        let mut got = [0u8; 2];
        c.read_exact(&mut got).await.unwrap();
    }
}
