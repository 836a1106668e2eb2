//! What a link shares with its connections and its controllers: the
//! upstream, the toxics in force (a watch, so a change reaches open
//! connections at once), and the record of what happened on it, which the
//! fault's timeline, its request count and its age are all read from. Also the socket-level reset both
//! the TCP pipes and the HTTP front use.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use tokio::net::TcpStream;
use tokio::sync::watch;
use tokio::task::AbortHandle;
use tokio::time::Instant;

use super::toxic::Toxic;

/// What a link speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Protocol {
    /// Bytes: the TCP toxics only (any protocol: Redis, the registry, HTTP).
    #[default]
    Tcp,
    /// HTTP/1.1 requests: the `http_*` toxics too.
    Http,
}

/// What a link shares with its connections; changes reach them at once.
#[derive(Debug)]
pub struct State {
    /// The link's name, e.g. `user-2`.
    pub name: String,
    /// What the link speaks, fixed when it starts.
    pub protocol: Protocol,
    /// `host:port` new connections go to; it changes when an instance
    /// restarts on another port.
    pub upstream: Mutex<String>,
    /// The toxics in force; open connections watch it, so a change reaches
    /// them at once.
    pub toxics: watch::Sender<Arc<Vec<Toxic>>>,
    /// What happened on the link, in order ([`crate::report::timeline`]);
    /// at most [`MAX_EVENTS`] requests are kept, every fault and heal.
    pub events: Mutex<Vec<(Instant, LinkEvent)>>,
    /// Bytes `timeout` toxics swallowed (a half-open connection's loss).
    pub swallowed: AtomicU64,
    /// How many requests each `http_error` toxic has seen (its `first`).
    pub(super) seen: Mutex<HashMap<String, u64>>,
    open: Mutex<Vec<AbortHandle>>,
}

/// The most requests a link records (a long load keeps its first ones).
pub const MAX_EVENTS: usize = 200_000;

/// One thing that happened on a link.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LinkEvent {
    /// A toxic of this type was added.
    Faulted(&'static str),
    /// Every toxic was removed.
    Healed,
    /// An HTTP link's request and what the client got: the service's
    /// status, the link's own (`http_error`), or 0 when the connection was
    /// severed.
    Request(u16),
}

impl State {
    /// A link's state: enabled, no toxics, nothing recorded.
    pub fn new(name: &str, upstream: &str, protocol: Protocol) -> Self {
        Self {
            name: name.to_owned(),
            protocol,
            upstream: Mutex::new(upstream.to_owned()),
            toxics: watch::Sender::new(Arc::new(Vec::new())),
            events: Mutex::new(Vec::new()),
            swallowed: AtomicU64::new(0),
            seen: Mutex::new(HashMap::new()),
            open: Mutex::new(Vec::new()),
        }
    }

    /// Notes a fault of `kind` (a toxic's type, or `cut`).
    pub fn faulted(&self, kind: &'static str) {
        self.note(LinkEvent::Faulted(kind));
    }

    /// Notes the heal of the fault in place, if there is one.
    pub fn healed(&self) {
        if self.faulted_since().is_some() {
            self.note(LinkEvent::Healed);
        }
    }

    /// Notes `event` now. Requests beyond [`MAX_EVENTS`] are not kept;
    /// faults and heals always are.
    pub fn note(&self, event: LinkEvent) {
        let mut events = self.events.lock().unwrap_or_else(PoisonError::into_inner);
        if events.len() < MAX_EVENTS || !matches!(event, LinkEvent::Request(_)) {
            events.push((Instant::now(), event));
        }
    }

    /// When the fault in place began: its first toxic since the last heal.
    pub fn faulted_since(&self) -> Option<Instant> {
        let events = self.events.lock().unwrap_or_else(PoisonError::into_inner);
        let after_heal = events
            .iter()
            .rposition(|(_, e)| *e == LinkEvent::Healed)
            .map_or(0, |i| i + 1);
        events[after_heal..]
            .iter()
            .find(|(_, e)| matches!(e, LinkEvent::Faulted(_)))
            .map(|(t, _)| *t)
    }

    /// Requests an HTTP link's front received (as recorded).
    pub fn requests(&self) -> usize {
        let events = self.events.lock().unwrap_or_else(PoisonError::into_inner);
        events
            .iter()
            .filter(|(_, e)| matches!(e, LinkEvent::Request(_)))
            .count()
    }

    /// Counts `n` bytes a `timeout` toxic swallowed.
    pub fn swallow(&self, n: usize) {
        self.swallowed.fetch_add(n as u64, Ordering::Relaxed);
    }

    pub(super) fn track(&self, task: AbortHandle) {
        let mut open = self.open.lock().unwrap_or_else(PoisonError::into_inner);
        open.retain(|t| !t.is_finished());
        open.push(task);
    }

    /// Closes every connection open now.
    pub fn close_all(&self) {
        for t in self.open.lock().unwrap_or_else(PoisonError::into_inner).drain(..) {
            t.abort();
        }
    }

    /// Where new connections go now.
    pub fn upstream(&self) -> String {
        self.upstream.lock().unwrap_or_else(PoisonError::into_inner).clone()
    }

    /// The toxics in force now.
    pub fn toxics(&self) -> Arc<Vec<Toxic>> {
        self.toxics.borrow().clone()
    }
}

/// Makes the socket's close a reset (SO_LINGER 0): unsent data is dropped
/// and the peer reads ECONNRESET.
pub fn reset(s: &TcpStream) {
    use std::os::fd::AsRawFd;
    reset_on_close(s.as_raw_fd());
}

/// [`reset`] by descriptor, for a socket another owner (hyper) holds.
pub fn reset_on_close(fd: std::os::fd::RawFd) {
    let linger = libc::linger {
        l_onoff: 1,
        l_linger: 0,
    };
    // SAFETY: `fd` is an open socket for the duration of the call (callers
    // hold its owner); setsockopt only reads `linger`. A zero linger never
    // blocks the close.
    unsafe {
        libc::setsockopt(
            fd,
            libc::SOL_SOCKET,
            libc::SO_LINGER,
            (&linger as *const libc::linger).cast(),
            std::mem::size_of::<libc::linger>() as libc::socklen_t,
        );
    }
}
