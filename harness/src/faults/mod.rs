//! The fault proxy: named links, each a listener in front of one hop of a
//! stack (a service instance, a service's Redis, its registry), with
//! Toxiproxy's toxics and semantics plus HTTP faults Toxiproxy lacks.
//!
//! It is driven three ways: from Rust ([`FaultProxy::add_toxic`], or
//! `stack.link("user", 2)` on a stack started with fault links), from the
//! reusable Cucumber steps, and over Toxiproxy's own HTTP API
//! ([`api::serve`]), so an existing Toxiproxy client drives it unchanged.
//! It runs in the test's process, or alone as `gantry serve faultproxy`.
//!
//! A link is put in a hop through discovery, not configuration: the harness
//! registers an instance with its link's address (the registry's check still
//! goes to the instance itself, as a sidecar's would), so the gateway reaches
//! it through the link with no setting changed.

pub mod api;
mod http;
pub mod link;
pub mod state;
pub mod toxic;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;

use tokio::sync::Mutex;

pub use link::Link;
pub use state::{LinkEvent, Protocol, State};
pub use toxic::{Kind, Stream, Toxic};

/// Why the fault proxy refused a request (each maps to Toxiproxy's status).
#[derive(Debug, thiserror::Error)]
pub enum FaultError {
    /// No link has this name: a typo, or one never added (404).
    #[error("no link named {0:?}")]
    NoLink(String),
    /// A link of this name is running: remove it first, or use
    /// [`FaultProxy::ensure`] (409).
    #[error("a link named {0:?} exists already")]
    LinkExists(String),
    /// The link has no toxic of this name (404).
    #[error("link {link:?} has no toxic named {toxic:?}")]
    NoToxic {
        /// The link's name.
        link: String,
        /// The toxic's name.
        toxic: String,
    },
    /// The link has a toxic of this name: name the new one otherwise, or
    /// update the one there (409).
    #[error("link {link:?} has a toxic named {toxic:?} already")]
    ToxicExists {
        /// The link's name.
        link: String,
        /// The toxic's name.
        toxic: String,
    },
    /// A request that cannot work: a bad address or attribute, an HTTP
    /// toxic on a TCP link; the message says which (400).
    #[error("{0}")]
    Invalid(String),
    /// The link could not listen on its address, e.g. a port taken (409).
    #[error("listening on {addr}: {source}")]
    Listen {
        /// The `ip:port` it was to listen on.
        addr: String,
        /// Why the OS refused.
        #[source]
        source: std::io::Error,
    },
}

/// A set of named links, shared by the Rust API, the steps and the HTTP API.
#[derive(Debug, Clone, Default)]
pub struct FaultProxy {
    links: Arc<Mutex<BTreeMap<String, Link>>>,
}

/// One link as Toxiproxy's API shows a proxy.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct LinkView {
    /// The link's name, e.g. `user-2` or `user-2.redis`.
    pub name: String,
    /// `ip:port` clients connect to.
    pub listen: String,
    /// `host:port` it forwards to.
    pub upstream: String,
    /// Whether it listens; a disabled link refuses every connection.
    pub enabled: bool,
    /// What it speaks; TCP when absent (Toxiproxy's own clients do not send it).
    #[serde(default)]
    pub protocol: Protocol,
    /// The toxics in force, in the order they were added.
    #[serde(default)]
    pub toxics: Vec<Toxic>,
}

impl FaultProxy {
    /// A proxy with no links.
    pub fn new() -> Self {
        Self::default()
    }

    /// Starts a link named `name` listening on `listen` (port 0: any free
    /// one) in front of `upstream`; returns the address it listens on.
    pub async fn add(
        &self,
        name: &str,
        listen: &str,
        upstream: &str,
        protocol: Protocol,
    ) -> Result<SocketAddr, FaultError> {
        let mut links = self.links.lock().await;
        if links.contains_key(name) {
            return Err(FaultError::LinkExists(name.to_owned()));
        }
        let at: SocketAddr = listen
            .parse()
            .map_err(|_| FaultError::Invalid(format!("listen {listen:?} is not an ip:port")))?;
        let link = Link::start(name, at, upstream, protocol)
            .await
            .map_err(|source| FaultError::Listen {
                addr: listen.to_owned(),
                source,
            })?;
        let addr = link.listen;
        links.insert(name.to_owned(), link);
        Ok(addr)
    }

    /// The link `name` in front of `upstream`: started on a free loopback
    /// port if new, else pointed at `upstream` (an instance restarted on
    /// another port keeps its link, toxics and address). Returns its address.
    pub async fn ensure(&self, name: &str, upstream: &str, protocol: Protocol) -> Result<SocketAddr, FaultError> {
        if let Ok(at) = self.addr(name).await {
            self.set_upstream(name, upstream).await?;
            return Ok(at);
        }
        self.add(name, "127.0.0.1:0", upstream, protocol).await
    }

    /// Stops the link and closes its connections.
    pub async fn remove(&self, name: &str) -> Result<(), FaultError> {
        self.links
            .lock()
            .await
            .remove(name)
            .map(drop)
            .ok_or_else(|| FaultError::NoLink(name.to_owned()))
    }

    /// Every link, by name.
    pub async fn list(&self) -> Vec<LinkView> {
        self.links.lock().await.values().map(view).collect()
    }

    /// The link `name` as Toxiproxy's API shows it.
    pub async fn get(&self, name: &str) -> Result<LinkView, FaultError> {
        self.links
            .lock()
            .await
            .get(name)
            .map(view)
            .ok_or_else(|| FaultError::NoLink(name.to_owned()))
    }

    /// Where the link `name` listens.
    pub async fn addr(&self, name: &str) -> Result<SocketAddr, FaultError> {
        self.with(name, |l| l.listen).await
    }

    async fn with<T>(&self, name: &str, f: impl FnOnce(&mut Link) -> T) -> Result<T, FaultError> {
        let mut links = self.links.lock().await;
        let link = links.get_mut(name).ok_or_else(|| FaultError::NoLink(name.to_owned()))?;
        Ok(f(link))
    }

    /// Enables (listens again) or disables (refuses, every connection
    /// closed) the link, as Toxiproxy's `enabled`.
    pub async fn set_enabled(&self, name: &str, enabled: bool) -> Result<(), FaultError> {
        let mut links = self.links.lock().await;
        let link = links.get_mut(name).ok_or_else(|| FaultError::NoLink(name.to_owned()))?;
        if enabled {
            link.enable().await.map_err(|source| FaultError::Listen {
                addr: link.listen.to_string(),
                source,
            })?;
            if link.state.toxics().is_empty() {
                link.state.healed();
            }
            Ok(())
        } else {
            link.disable().await;
            link.state.faulted("cut");
            Ok(())
        }
    }

    /// Points the link at another upstream (new connections only).
    pub async fn set_upstream(&self, name: &str, upstream: &str) -> Result<(), FaultError> {
        self.with(name, |l| {
            *l.state
                .upstream
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner) = upstream.to_owned();
        })
        .await
    }

    /// Changes the link's toxics with `change`, which says what is wrong
    /// instead, if anything (then nothing changes and no connection hears
    /// of it). A link left with no toxics and listening is healed.
    async fn edit<T>(
        &self,
        name: &str,
        change: impl FnOnce(&State, &mut Vec<Toxic>) -> Result<T, FaultError>,
    ) -> Result<T, FaultError> {
        self.with(name, |link| {
            let mut result = None;
            link.state.toxics.send_if_modified(|toxics| {
                let r = change(&link.state, Arc::make_mut(toxics));
                let changed = r.is_ok();
                result = Some(r);
                changed
            });
            if link.state.toxics.borrow().is_empty() && link.is_enabled() {
                link.state.healed();
            }
            result.expect("the change ran")
        })
        .await?
    }

    /// Adds `toxic` to the link (named `<type>_<stream>` if unnamed); it
    /// takes effect on open connections too. Returns it as stored.
    pub async fn add_toxic(&self, name: &str, mut toxic: Toxic) -> Result<Toxic, FaultError> {
        if toxic.name.is_empty() {
            toxic.name = toxic.default_name();
        }
        toxic.check().map_err(FaultError::Invalid)?;
        self.edit(name, |state, toxics| {
            if toxic.kind.is_http() && state.protocol != Protocol::Http {
                return Err(FaultError::Invalid(format!(
                    "{} needs an HTTP link; {name:?} is a TCP link",
                    toxic.kind.type_name()
                )));
            }
            if toxics.iter().any(|t| t.name == toxic.name) {
                return Err(FaultError::ToxicExists {
                    link: name.to_owned(),
                    toxic: toxic.name.clone(),
                });
            }
            toxics.push(toxic.clone());
            state.faulted(toxic.kind.type_name());
            Ok(toxic)
        })
        .await
    }

    /// Replaces the toxic named `toxic.name` (its attributes, toxicity).
    pub async fn update_toxic(&self, name: &str, toxic: Toxic) -> Result<Toxic, FaultError> {
        toxic.check().map_err(FaultError::Invalid)?;
        self.edit(name, |_, toxics| {
            let at = toxics
                .iter()
                .position(|t| t.name == toxic.name)
                .ok_or_else(|| no_toxic(name, &toxic.name))?;
            toxics[at] = toxic.clone();
            Ok(toxic)
        })
        .await
    }

    /// Removes the toxic named `toxic` from the link; the link heals when
    /// it was the last one.
    pub async fn remove_toxic(&self, name: &str, toxic: &str) -> Result<(), FaultError> {
        self.edit(name, |_, toxics| {
            let at = toxics
                .iter()
                .position(|t| t.name == toxic)
                .ok_or_else(|| no_toxic(name, toxic))?;
            toxics.remove(at);
            Ok(())
        })
        .await
    }

    /// Removes every toxic of the link.
    pub async fn clear(&self, name: &str) -> Result<(), FaultError> {
        self.edit(name, |state, toxics| {
            toxics.clear();
            state
                .seen
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .clear();
            Ok(())
        })
        .await
    }

    /// Toxiproxy's `/reset`: every link enabled, every toxic removed.
    pub async fn reset(&self) -> Result<(), FaultError> {
        let names: Vec<String> = self.links.lock().await.keys().cloned().collect();
        for name in names {
            self.clear(&name).await?;
            self.set_enabled(&name, true).await?;
        }
        Ok(())
    }
}

/// One link of a [`FaultProxy`], by name: what `stack.link("user", 2)`
/// gives.
#[derive(Debug, Clone)]
pub struct LinkHandle {
    proxy: FaultProxy,
    name: String,
}

impl LinkHandle {
    /// The link `name` of `proxy`, not checked here: a call on a link that
    /// does not exist fails with [`FaultError::NoLink`].
    pub fn new(proxy: &FaultProxy, name: &str) -> Self {
        Self {
            proxy: proxy.clone(),
            name: name.to_owned(),
        }
    }

    /// The link's name, e.g. `user-2`.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Adds `toxic` (see [`FaultProxy::add_toxic`]).
    pub async fn add(&self, toxic: Toxic) -> Result<Toxic, FaultError> {
        self.proxy.add_toxic(&self.name, toxic).await
    }

    /// Removes the toxic named `toxic` (see [`FaultProxy::remove_toxic`]).
    pub async fn remove(&self, toxic: &str) -> Result<(), FaultError> {
        self.proxy.remove_toxic(&self.name, toxic).await
    }

    /// Removes every toxic: the hop heals.
    pub async fn clear(&self) -> Result<(), FaultError> {
        self.proxy.clear(&self.name).await
    }

    /// Refuses connections and closes those open (the hop is cut).
    pub async fn disable(&self) -> Result<(), FaultError> {
        self.proxy.set_enabled(&self.name, false).await
    }

    /// Listens again after [`LinkHandle::disable`]; the hop heals unless
    /// toxics remain.
    pub async fn enable(&self) -> Result<(), FaultError> {
        self.proxy.set_enabled(&self.name, true).await
    }

    /// Where the link listens: the address the hop's client is given in
    /// place of its upstream.
    pub async fn addr(&self) -> Result<SocketAddr, FaultError> {
        self.proxy.addr(&self.name).await
    }

    /// How long since the fault in place began (none: healthy).
    pub async fn faulted_for(&self) -> Result<Option<std::time::Duration>, FaultError> {
        self.proxy
            .with(&self.name, |l| l.state.faulted_since().map(|at| at.elapsed()))
            .await
    }

    /// What happened on the link, in order (see [`state::LinkEvent`]).
    pub async fn events(&self) -> Result<Vec<(tokio::time::Instant, state::LinkEvent)>, FaultError> {
        self.proxy
            .with(&self.name, |l| {
                l.state
                    .events
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner)
                    .clone()
            })
            .await
    }

    /// Requests this (HTTP) link received: what the gateway sent the instance.
    pub async fn requests(&self) -> Result<usize, FaultError> {
        self.proxy.with(&self.name, |l| l.state.requests()).await
    }
}

fn no_toxic(link: &str, toxic: &str) -> FaultError {
    FaultError::NoToxic {
        link: link.to_owned(),
        toxic: toxic.to_owned(),
    }
}

fn view(l: &Link) -> LinkView {
    LinkView {
        name: l.state.name.clone(),
        listen: l.listen.to_string(),
        upstream: l.state.upstream(),
        enabled: l.is_enabled(),
        protocol: l.state.protocol,
        toxics: l.state.toxics().to_vec(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn faults_and_heals_are_recorded_for_the_timeline() {
        let proxy = FaultProxy::new();
        proxy
            .add("l", "127.0.0.1:0", "127.0.0.1:9", Protocol::Tcp)
            .await
            .unwrap();
        let link = LinkHandle::new(&proxy, "l");
        link.add(Toxic::new(Kind::Latency { latency: 5, jitter: 0 }, Stream::Downstream))
            .await
            .unwrap();
        assert!(link.faulted_for().await.unwrap().is_some());
        link.clear().await.unwrap();
        link.disable().await.unwrap();
        link.enable().await.unwrap();
        let kinds: Vec<LinkEvent> = link.events().await.unwrap().into_iter().map(|(_, e)| e).collect();
        assert_eq!(
            kinds,
            [
                LinkEvent::Faulted("latency"),
                LinkEvent::Healed,
                LinkEvent::Faulted("cut"),
                LinkEvent::Healed
            ]
        );
        let dup = link
            .add(Toxic::new(Kind::Bandwidth { rate: 1 }, Stream::Upstream))
            .await;
        assert!(dup.is_ok());
        let again = link
            .add(Toxic::new(Kind::Bandwidth { rate: 2 }, Stream::Upstream))
            .await;
        assert!(matches!(again, Err(FaultError::ToxicExists { .. })), "{again:?}");
        let http_on_tcp = link.add(Toxic::new(Kind::HttpHang {}, Stream::Downstream)).await;
        assert!(matches!(http_on_tcp, Err(FaultError::Invalid(_))), "{http_on_tcp:?}");
    }

    /// A service closes a kept-alive connection it has answered (its idle
    /// timeout): through an HTTP link the client sees that connection close
    /// too, as it would without the link, and a later request goes out on
    /// a new one. Left open, the link's end would reset the next request.
    #[tokio::test]
    async fn an_http_link_closes_the_clients_connection_when_the_service_closes_its_own() {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let service = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let service_at = service.local_addr().unwrap();
        tokio::spawn(async move {
            while let Ok((mut s, _)) = service.accept().await {
                tokio::spawn(async move {
                    let mut buf = [0u8; 1024];
                    let _ = s.read(&mut buf).await;
                    let _ = s.write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok").await;
                    // Idle now: closed after a moment, as an idle timeout does.
                    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                });
            }
        });
        let proxy = FaultProxy::new();
        let at = proxy
            .add("idle", "127.0.0.1:0", &service_at.to_string(), Protocol::Http)
            .await
            .unwrap();
        let mut c = tokio::net::TcpStream::connect(at).await.unwrap();
        c.write_all(b"GET /x HTTP/1.1\r\nHost: h\r\n\r\n").await.unwrap();
        let mut got = vec![0u8; 1024];
        let n = c.read(&mut got).await.unwrap();
        assert!(
            String::from_utf8_lossy(&got[..n]).starts_with("HTTP/1.1 200"),
            "answered"
        );
        let rest = tokio::time::timeout(std::time::Duration::from_secs(5), c.read(&mut got))
            .await
            .expect("the client's connection closes, not hangs");
        assert_eq!(rest.expect("a close, not a reset"), 0, "closed (EOF)");
    }

    #[tokio::test]
    async fn an_http_link_whose_service_side_fails_resets_the_client_as_the_service_would() {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let echo = crate::drive::echo::Echo::start("echo-h").await.unwrap();
        let proxy = FaultProxy::new();
        let at = proxy
            .add("h", "127.0.0.1:0", &echo.addr().to_string(), Protocol::Http)
            .await
            .unwrap();
        let link = LinkHandle::new(&proxy, "h");
        link.add(Toxic::new(Kind::ResetPeer { timeout: 0 }, Stream::Downstream))
            .await
            .unwrap();
        let mut c = tokio::net::TcpStream::connect(at).await.unwrap();
        c.write_all(b"GET /x HTTP/1.1\r\nHost: h\r\n\r\n").await.unwrap();
        let mut got = Vec::new();
        let e = c.read_to_end(&mut got).await.unwrap_err();
        assert_eq!(e.kind(), std::io::ErrorKind::ConnectionReset, "{e}; read {got:?}");
        // The request reached the service once; the link noted it severed.
        assert_eq!(echo.requests(), 1);
        let severed = link
            .events()
            .await
            .unwrap()
            .iter()
            .any(|(_, e)| *e == LinkEvent::Request(0));
        assert!(severed, "the link records the severed request");
    }
}
