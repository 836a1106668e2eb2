//! The containers of a stack run by Docker, through testcontainers (the
//! `containers` feature). See the parent module.

use testcontainers::bollard::models::HostConfig;
use testcontainers::core::{IntoContainerPort, WaitFor};
use testcontainers::runners::AsyncRunner;
use testcontainers::{ContainerAsync, ContainerRequest, GenericImage, ImageExt};

use super::{ContainerState, FILES_DIR, HOST_ALIAS, HostReach, Join, LABEL, PUBLISH_ADDRESS, Request, STARTUP_TIMEOUT};
use crate::error::HarnessError;

/// Why containers of these images cannot be run here, or `None` when they
/// can: a Docker engine answers and every image is present (this workplace
/// cannot pull).
pub async fn unavailable_because(images: &[&str]) -> Option<String> {
    let docker = match testcontainers::bollard::Docker::connect_with_local_defaults() {
        Ok(d) => d,
        Err(e) => return Some(format!("no Docker engine ({e})")),
    };
    if let Err(e) = docker.ping().await {
        return Some(format!("the Docker engine does not answer ({e})"));
    }
    for image in images {
        if docker.inspect_image(image).await.is_err() {
            return Some(format!(
                "image {image} is not present (build it with ci/images/build.sh, or pull it)"
            ));
        }
    }
    None
}

fn split_image(image: &str) -> (String, String) {
    // A colon after the last slash separates the tag (a registry port does not).
    match image.rsplit_once(':') {
        Some((name, tag)) if !tag.contains('/') => (name.to_owned(), tag.to_owned()),
        _ => (image.to_owned(), "latest".to_owned()),
    }
}

/// A running container with the faults a test can inflict on it.
pub struct Container {
    name: String,
    // Boxed: the handle is large and lives beside small process handles.
    inner: Option<Box<ContainerAsync<GenericImage>>>,
}

impl std::fmt::Debug for Container {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Container")
            .field("name", &self.name)
            .field("id", &self.inner.as_ref().map(|c| c.id().to_owned()))
            .finish()
    }
}

fn failed(name: &str, what: &str, e: impl std::fmt::Display) -> HarnessError {
    HarnessError::Container {
        name: name.to_owned(),
        detail: format!("{what}: {e}"),
    }
}

impl Container {
    /// Its name in the stack, e.g. `redis-1` (not Docker's container name).
    pub fn name(&self) -> &str {
        &self.name
    }

    fn inner(&self) -> Result<&ContainerAsync<GenericImage>, HarnessError> {
        self.inner
            .as_deref()
            .ok_or_else(|| HarnessError::NotRunning(self.name.clone()))
    }

    /// Stops at once (SIGKILL); the container stays, to be started again.
    pub async fn kill(&mut self) -> Result<(), HarnessError> {
        self.inner()?
            .stop_with_timeout(Some(0))
            .await
            .map_err(|e| failed(&self.name, "kill", e))
    }

    /// `docker stop`: SIGTERM, then SIGKILL after 10 s.
    pub async fn stop(&mut self) -> Result<(), HarnessError> {
        self.inner()?
            .stop_with_timeout(Some(10))
            .await
            .map_err(|e| failed(&self.name, "stop", e))
    }

    /// `docker start` on the stopped container: same ports, same data.
    pub async fn start_again(&mut self) -> Result<(), HarnessError> {
        self.inner()?.start().await.map_err(|e| failed(&self.name, "start", e))
    }

    /// `docker pause`: it hangs with its sockets open.
    pub async fn pause(&self) -> Result<(), HarnessError> {
        self.inner()?.pause().await.map_err(|e| failed(&self.name, "pause", e))
    }

    /// `docker unpause` after [`Container::pause`].
    pub async fn resume(&self) -> Result<(), HarnessError> {
        self.inner()?
            .unpause()
            .await
            .map_err(|e| failed(&self.name, "unpause", e))
    }

    /// What Docker says of the container now.
    async fn inspected(&self) -> Result<testcontainers::bollard::models::ContainerState, HarnessError> {
        let inner = self.inner()?;
        let inspected = docker()
            .map_err(|e| failed(&self.name, "connect to Docker", e))?
            .inspect_container(inner.id(), None)
            .await
            .map_err(|e| failed(&self.name, "inspect", e))?;
        Ok(inspected.state.unwrap_or_default())
    }

    /// Whether it runs, is paused, or is stopped (killed, or exited), as
    /// Docker says: what a test left it as.
    pub async fn state(&self) -> Result<ContainerState, HarnessError> {
        let state = self.inspected().await?;
        Ok(match (state.running, state.paused) {
            (_, Some(true)) => ContainerState::Paused,
            (Some(true), _) => ContainerState::Running,
            _ => ContainerState::Stopped,
        })
    }

    /// What its image's `HEALTHCHECK` says now (`starting`, `healthy`,
    /// `unhealthy`), or `None` when the image has none.
    pub async fn health(&self) -> Result<Option<String>, HarnessError> {
        let status = self.inspected().await?.health.and_then(|h| h.status);
        Ok(status.map(|s| s.to_string()).filter(|s| !s.is_empty() && s != "none"))
    }

    /// Stops and removes the container.
    pub async fn remove(&mut self) -> Result<(), HarnessError> {
        match self.inner.take() {
            Some(c) => (*c).rm().await.map_err(|e| failed(&self.name, "remove", e)),
            None => Ok(()),
        }
    }
}

/// Rewrites every port binding to [`PUBLISH_ADDRESS`] and turns off
/// publishing all exposed ports: testcontainers leaves the host address
/// empty, which Docker reads as every address (IPv4 and IPv6).
fn publish_on_loopback_only(host_config: &mut HostConfig) {
    host_config.publish_all_ports = Some(false);
    for bindings in host_config
        .port_bindings
        .iter_mut()
        .flat_map(|m| m.values_mut())
        .flatten()
    {
        for binding in bindings {
            binding.host_ip = Some(PUBLISH_ADDRESS.to_owned());
        }
    }
}

/// A network of one stack's containers. Created with the stack's first
/// container, removed when the stack stops (or the process is interrupted:
/// it carries [`LABEL`]).
#[derive(Debug)]
pub struct StackNetwork {
    name: String,
    reach: HostReach,
}

impl StackNetwork {
    /// Creates a network for the stack called `stack` (any text; made
    /// safe for Docker), labelled with this process's pid.
    pub async fn create(stack: &str) -> Result<Self, HarnessError> {
        use std::sync::atomic::{AtomicUsize, Ordering};
        use testcontainers::bollard::models::NetworkCreateRequest;
        static NEXT: AtomicUsize = AtomicUsize::new(1);
        guard_signals();
        let docker = docker().map_err(|e| failed("network", "connect to Docker", e))?;
        let safe: String = stack
            .chars()
            .map(|c| if c.is_ascii_alphanumeric() || c == '-' { c } else { '-' })
            .collect();
        let name = format!(
            "gantry-{safe}-{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        );
        let request = NetworkCreateRequest {
            name: name.clone(),
            driver: Some("bridge".into()),
            labels: Some([(LABEL.to_owned(), std::process::id().to_string())].into()),
            ..Default::default()
        };
        docker
            .create_network(request)
            .await
            .map_err(|e| failed(&name, "create the stack's network", e))?;
        let gateway = docker
            .inspect_network(&name, None)
            .await
            .ok()
            .and_then(|n| n.ipam)
            .and_then(|ipam| ipam.config)
            .and_then(|configs| configs.into_iter().find_map(|c| c.gateway));
        // The gateway is an address of this host when the engine runs here:
        // a relay can listen on it. In a virtual machine it is not.
        let reach = match gateway {
            Some(ip) if std::net::TcpListener::bind((ip.as_str(), 0)).is_ok() => HostReach::Relayed { ip },
            _ => HostReach::Direct,
        };
        Ok(Self { name, reach })
    }

    /// The network's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// How its containers reach the host's processes.
    pub fn reach(&self) -> &HostReach {
        &self.reach
    }

    /// Removes the network (once its containers are gone).
    pub async fn remove(&self) {
        if let Ok(docker) = docker()
            && let Err(e) = docker.remove_network(&self.name).await
        {
            tracing::warn!(network = %self.name, error = %e, "could not remove the stack's network");
        }
    }
}

fn docker() -> Result<testcontainers::bollard::Docker, testcontainers::bollard::errors::Error> {
    testcontainers::bollard::Docker::connect_with_local_defaults()
}

/// Starts the container built by `request` on host port `port`, once. A
/// port taken meanwhile fails with Docker's "already allocated" in the
/// error, which the stack's start-on-a-free-port routine retries.
async fn start_on(
    name: &str,
    port: u16,
    join: Option<Join<'_>>,
    request: testcontainers::ContainerRequest<GenericImage>,
) -> Result<Container, HarnessError> {
    guard_signals();
    // Named, so a start that fails half-way can be cleaned up exactly; the
    // attempt's number keeps two attempts apart (a retry while the one
    // before is still being removed, or two stacks handed the same free
    // port): CI once saw Docker refuse a name already in use.
    static ATTEMPT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let attempt = ATTEMPT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let container_name = format!("gantry-{name}-{}-{port}-{attempt}", std::process::id());
    let host = join.as_ref().map(|j| match j.network.reach() {
        HostReach::Relayed { ip } => ip.clone(),
        HostReach::Direct => "host-gateway".to_owned(),
    });
    let started = request
        .with_container_name(&container_name)
        .with_label(LABEL, std::process::id().to_string())
        .with_host_config_modifier(move |host_config| {
            publish_on_loopback_only(host_config);
            if let Some(host) = &host {
                host_config.extra_hosts = Some(vec![format!("{HOST_ALIAS}:{host}")]);
            }
        })
        .with_startup_timeout(STARTUP_TIMEOUT)
        .start()
        .await;
    let inner = match started {
        Ok(inner) => inner,
        Err(e) => {
            // The container may have been created without starting: remove it.
            remove_unstarted(&container_name).await;
            return Err(failed(name, "start", e));
        }
    };
    let container = Container {
        name: name.to_owned(),
        inner: Some(Box::new(inner)),
    };
    if let Some(join) = join {
        // Joined once started (testcontainers names no aliases at
        // creation); it stays joined across a stop and a start.
        if let Err(e) = connect(&container, &join).await {
            remove_unstarted(&container_name).await;
            return Err(e);
        }
    }
    Ok(container)
}

/// Connects `container` to its stack's network under its aliases.
async fn connect(container: &Container, join: &Join<'_>) -> Result<(), HarnessError> {
    use testcontainers::bollard::models::{EndpointSettings, NetworkConnectRequest};
    let docker = docker().map_err(|e| failed(&container.name, "connect to Docker", e))?;
    let request = NetworkConnectRequest {
        container: container.inner()?.id().to_owned(),
        endpoint_config: Some(EndpointSettings {
            aliases: Some(join.aliases.clone()),
            ..Default::default()
        }),
    };
    docker
        .connect_network(join.network.name(), request)
        .await
        .map_err(|e| failed(&container.name, "join the stack's network", e))
}

/// Removes a container that was created but could not start
/// (testcontainers leaves it behind when starting fails).
async fn remove_unstarted(container_name: &str) {
    use testcontainers::bollard::query_parameters::RemoveContainerOptions;
    let Ok(docker) = testcontainers::bollard::Docker::connect_with_local_defaults() else {
        return;
    };
    let force = RemoveContainerOptions {
        force: true,
        ..Default::default()
    };
    if let Err(e) = docker.remove_container(container_name, Some(force)).await {
        tracing::warn!(container = container_name, error = %e, "could not remove a container that failed to start");
    }
}

/// The signals after which a process's containers are removed.
const GUARDED: [libc::c_int; 3] = [libc::SIGINT, libc::SIGTERM, libc::SIGQUIT];

/// Installs, once per process, the handler that removes this process's
/// containers when a signal would end it: SIGINT, SIGTERM or SIGQUIT whose
/// action is still the default (termination). A signal the program handles
/// itself (`gantry up` stops its stack gracefully on each) is left to it.
///
/// Why not testcontainers' `watchdog`: it stops only the containers it
/// registered, and panics (so the process then ignores the signal, and
/// stays) when one was removed behind its back — which the harness does for
/// a container whose start failed on a taken port. Removing by label needs
/// no registry of ids and finds every container this process created.
///
/// The handlers are in place when this returns (before the first container
/// is created), on a thread of their own with its own runtime, so they
/// outlive the runtime of the test that started the container.
pub fn guard_signals() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let signals: Vec<libc::c_int> = GUARDED.into_iter().filter(|s| has_default_action(*s)).collect();
        if signals.is_empty() {
            return;
        }
        let runtime = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
            Ok(rt) => rt,
            Err(e) => {
                tracing::warn!(error = %e, "no signal guard for containers: could not start its runtime");
                return;
            }
        };
        let mut streams = Vec::new();
        {
            let _in_runtime = runtime.enter();
            for &signal in &signals {
                match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::from_raw(signal)) {
                    Ok(stream) => streams.push((signal, stream)),
                    Err(e) => tracing::warn!(signal, error = %e, "no signal guard for containers on this signal"),
                }
            }
        }
        let spawned = std::thread::Builder::new()
            .name("gantry-container-guard".into())
            .spawn(move || {
                runtime.block_on(async move {
                    let (first, mut received) = tokio::sync::mpsc::channel(1);
                    for (signal, mut stream) in streams {
                        let first = first.clone();
                        tokio::spawn(async move {
                            stream.recv().await;
                            let _ = first.send(signal).await;
                        });
                    }
                    if let Some(signal) = received.recv().await {
                        remove_own_containers().await;
                        die_of(signal);
                    }
                });
            });
        if let Err(e) = spawned {
            tracing::warn!(error = %e, "no signal guard for containers: could not start its thread");
        }
    });
}

/// Whether `signal` would still terminate the process (nobody handles or
/// ignores it).
fn has_default_action(signal: libc::c_int) -> bool {
    // SAFETY: sigaction(2) with a null new action only reads the current one
    // into `old`, which is a plain C struct, valid when zeroed.
    unsafe {
        let mut old: libc::sigaction = std::mem::zeroed();
        libc::sigaction(signal, std::ptr::null(), &mut old) == 0 && old.sa_sigaction == libc::SIG_DFL
    }
}

/// Removes (forcibly) every container labelled with this process's pid,
/// then its networks.
pub async fn remove_own_containers() {
    use testcontainers::bollard::query_parameters::{
        ListContainersOptionsBuilder, ListNetworksOptionsBuilder, RemoveContainerOptions,
    };
    let Ok(docker) = docker() else {
        return;
    };
    let filter = std::collections::HashMap::from([("label", vec![format!("{LABEL}={}", std::process::id())])]);
    let list = ListContainersOptionsBuilder::new().all(true).filters(&filter).build();
    if let Ok(containers) = docker.list_containers(Some(list)).await {
        for id in containers.into_iter().filter_map(|c| c.id) {
            let force = RemoveContainerOptions {
                force: true,
                ..Default::default()
            };
            if let Err(e) = docker.remove_container(&id, Some(force)).await {
                eprintln!("gantry: could not remove container {id}: {e}");
            }
        }
    }
    let list = ListNetworksOptionsBuilder::new().filters(&filter).build();
    if let Ok(networks) = docker.list_networks(Some(list)).await {
        for name in networks.into_iter().filter_map(|n| n.name) {
            if let Err(e) = docker.remove_network(&name).await {
                eprintln!("gantry: could not remove network {name}: {e}");
            }
        }
    }
}

/// Restores `signal`'s default action and raises it: the process ends as
/// the signal meant it to (its exit status says which signal).
fn die_of(signal: libc::c_int) {
    // SAFETY: signal(2) and raise(2) with a valid signal number.
    unsafe {
        libc::signal(signal, libc::SIG_DFL);
        libc::raise(signal);
    }
}

/// Starts the container `request` describes. Readiness is the caller's
/// business (a spec's `Ready`), not a log wait here.
pub async fn start(request: Request<'_>) -> Result<Container, HarnessError> {
    let (image_name, tag) = split_image(request.image);
    let mut image = GenericImage::new(image_name, tag)
        .with_wait_for(WaitFor::Nothing)
        .with_exposed_port(request.port.tcp());
    if let Some((inside, _)) = request.udp {
        image = image.with_exposed_port(inside.udp());
    }
    let mut built: ContainerRequest<GenericImage> = image.into();
    built = built.with_mapped_port(request.host_port, request.port.tcp());
    if let Some((inside, host)) = request.udp {
        built = built.with_mapped_port(host, inside.udp());
    }
    for (k, v) in request.env {
        built = built.with_env_var(k, v);
    }
    // Secrets travel in files copied in, not on a command line the host's
    // `ps` shows to every user.
    for (file, contents) in request.files {
        built = built.with_copy_to(format!("{FILES_DIR}/{file}"), contents.clone().into_bytes());
    }
    if !request.cmd.is_empty() {
        built = built.with_cmd(request.cmd.to_vec());
    }
    for m in request.mounts {
        use testcontainers::core::{AccessMode, Mount};
        let access = if m.read_only {
            AccessMode::ReadOnly
        } else {
            AccessMode::ReadWrite
        };
        built = built.with_mount(Mount::bind_mount(m.host.display().to_string(), &m.inside).with_access_mode(access));
    }
    start_on(request.name, request.host_port, request.join, built).await
}

impl Container {
    /// Everything the container has written to stdout and stderr so far.
    pub async fn logs(&self) -> String {
        let (out, err) = self.log_bytes().await;
        format!("{}{}", String::from_utf8_lossy(&out), String::from_utf8_lossy(&err))
    }

    /// Its stdout and its stderr so far, from Docker (empty once removed).
    pub async fn log_bytes(&self) -> (Vec<u8>, Vec<u8>) {
        let Ok(inner) = self.inner() else {
            return (Vec::new(), Vec::new());
        };
        let out = inner.stdout_to_vec().await.unwrap_or_default();
        let err = inner.stderr_to_vec().await.unwrap_or_default();
        (out, err)
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use testcontainers::bollard::models::{HostConfig, PortBinding};

    use super::{publish_on_loopback_only, split_image};

    #[test]
    fn ports_are_published_on_loopback_only() {
        // What testcontainers builds for `with_mapped_port`: no host address.
        let mut config = HostConfig {
            port_bindings: Some(HashMap::from([(
                "6379/tcp".to_owned(),
                Some(vec![PortBinding {
                    host_ip: None,
                    host_port: Some("42483".into()),
                }]),
            )])),
            publish_all_ports: Some(true),
            ..Default::default()
        };
        publish_on_loopback_only(&mut config);
        assert_eq!(config.publish_all_ports, Some(false));
        let bindings = &config.port_bindings.unwrap()["6379/tcp"];
        assert_eq!(
            bindings,
            &Some(vec![PortBinding {
                host_ip: Some("127.0.0.1".into()),
                host_port: Some("42483".into()),
            }])
        );
    }

    #[test]
    fn image_names_split_into_name_and_tag() {
        assert_eq!(split_image("redis:7.4.2"), ("redis".into(), "7.4.2".into()));
        assert_eq!(
            split_image("gantry/registry"),
            ("gantry/registry".into(), "latest".into())
        );
        assert_eq!(
            split_image("localhost:5000/redis"),
            ("localhost:5000/redis".into(), "latest".into())
        );
        assert_eq!(
            split_image("localhost:5000/redis:7"),
            ("localhost:5000/redis".into(), "7".into())
        );
    }
}
