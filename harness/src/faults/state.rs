//! What a link shares with its connections and its controllers: the
//! upstream, the toxics in force (a watch, so a change reaches open
//! connections at once), counters, and the record of what happened on it
//! that a fault's timeline is read from. Also the socket-level reset both
//! the TCP pipes and the HTTP front use.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64};
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
    pub name: String,
    pub protocol: Protocol,
    pub upstream: Mutex<String>,
    pub enabled: AtomicBool,
    pub toxics: watch::Sender<Arc<Vec<Toxic>>>,
    /// Connections accepted, and requests an HTTP link answered itself.
    pub connections: AtomicU64,
    /// Requests an HTTP link's front received.
    pub requests: AtomicU64,
    pub injected: AtomicU64,
    /// When the first toxic of the current set was added (none: healthy).
    pub faulted_at: Mutex<Option<Instant>>,
    /// What happened on the link, in order, for a fault's timeline
    /// ([`crate::report::timeline`]); at most [`MAX_EVENTS`] are kept.
    pub events: Mutex<Vec<(Instant, LinkEvent)>>,
    /// How many requests each `http_error` toxic has seen (its `first`).
    pub(super) seen: Mutex<HashMap<String, u64>>,
    open: Mutex<Vec<AbortHandle>>,
}

/// The most events a link keeps (a long load keeps its first ones).
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
            enabled: AtomicBool::new(true),
            toxics: watch::Sender::new(Arc::new(Vec::new())),
            connections: AtomicU64::new(0),
            requests: AtomicU64::new(0),
            injected: AtomicU64::new(0),
            faulted_at: Mutex::new(None),
            events: Mutex::new(Vec::new()),
            seen: Mutex::new(HashMap::new()),
            open: Mutex::new(Vec::new()),
        }
    }

    /// Notes a fault of `kind` (a toxic's type, or `cut`).
    pub fn faulted(&self, kind: &'static str) {
        self.note(LinkEvent::Faulted(kind));
        self.faulted_at
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get_or_insert_with(Instant::now);
    }

    /// Notes the heal of the fault in place, if there is one.
    pub fn healed(&self) {
        let was = self.faulted_at.lock().unwrap_or_else(PoisonError::into_inner).take();
        if was.is_some() {
            self.note(LinkEvent::Healed);
        }
    }

    /// Notes `event` now.
    pub fn note(&self, event: LinkEvent) {
        let mut events = self.events.lock().unwrap_or_else(PoisonError::into_inner);
        if events.len() < MAX_EVENTS {
            events.push((Instant::now(), event));
        }
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

    pub fn upstream(&self) -> String {
        self.upstream.lock().unwrap_or_else(PoisonError::into_inner).clone()
    }

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
