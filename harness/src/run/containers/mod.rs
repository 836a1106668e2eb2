//! Running an image as a container, through testcontainers: what the
//! `containers` provider runs Redis and the registry with, and what a
//! service described with an image runs as. What runs in it (its image,
//! command, files, readiness) is the stack's business, in its spec.
//!
//! Host ports are fixed at start, so a container stopped and started again
//! (a fault a test injects) comes back where it was. They are published on
//! 127.0.0.1 only, never on every host address (Docker's default). Inside its
//! container each program listens on all of the container's interfaces, as it
//! must for Docker's forwarding to reach it; what guards it is the loopback-only
//! publication, Redis's password and the registry's ACL token. Every container
//! carries the label `gantry.stack` (its value: the pid of the process that
//! started it), so `docker ps -a --filter label=gantry.stack` shows anything a
//! run left behind.
//!
//! The containers of one stack share a network of its own ([`StackNetwork`]),
//! where each is known by its service's name (`catalog`, shared by its
//! replicas) and its instance's (`catalog-2`), and reaches the host as
//! `host.docker.internal`; no container uses the host's network, so the
//! same works on Docker Desktop.
//!
//! Nothing is left behind when the process is interrupted either: the first
//! container a process starts installs [`guard_signals`], which on SIGINT,
//! SIGTERM or SIGQUIT removes every container and network labelled with this
//! process's pid and then dies of the signal as it would have.

use std::time::Duration;

/// The label every container of a stack carries.
pub const LABEL: &str = "gantry.stack";
/// How long a container may take to start.
pub const STARTUP_TIMEOUT: Duration = Duration::from_secs(60);

/// What a container is doing, as Docker says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ContainerState {
    /// Its process runs.
    Running,
    /// Frozen (`docker pause`).
    Paused,
    /// Killed, stopped or exited: `docker start` runs it again.
    Stopped,
}

/// The only host address containers are published on.
pub const PUBLISH_ADDRESS: &str = "127.0.0.1";

/// The name by which a container reaches the host it runs on.
pub const HOST_ALIAS: &str = "host.docker.internal";

/// How a container on a [`StackNetwork`] reaches a process on the host that
/// listens on the host's loopback only.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HostReach {
    /// Through a relay the harness runs on the host's address on this
    /// network (`ip`), which `host.docker.internal` names in the
    /// containers: a Docker engine on this host (Linux), where a container
    /// cannot reach the host's loopback.
    Relayed {
        /// The host's address on the network (the network's gateway).
        ip: String,
    },
    /// Directly, on the process's own port: an engine in a virtual machine
    /// (Docker Desktop), whose `host-gateway` leads to the host's loopback.
    Direct,
}

/// Where a container joins its stack's network: the network, the names it
/// is known by there, and what `host.docker.internal` is in it.
#[derive(Debug, Clone)]
pub struct Join<'a> {
    /// The stack's network.
    pub network: &'a StackNetwork,
    /// Its names on the network: its service's and its instance's.
    pub aliases: Vec<String>,
}

/// True when a container could not start because its host port was taken.
pub fn port_was_taken(detail: &str) -> bool {
    detail.contains("already allocated") || detail.contains("address already in use")
}

/// Where a spec's private files are put inside its container.
pub const FILES_DIR: &str = "/etc/gantry";

/// A container to start: `image` running `cmd` (the image's own when
/// empty) with `env` and `files` (name, contents) copied into [`FILES_DIR`],
/// its program listening on `port` inside, published on the host's
/// loopback on `host_port`, on its stack's network when `join` says.
#[derive(Debug, Clone)]
pub struct Request<'a> {
    /// Its name in the stack, e.g. `redis-1`; Docker's name is made from it.
    pub name: &'a str,
    /// The image and its tag, e.g. `redis:7.4.2` (`latest` when untagged).
    pub image: &'a str,
    /// The port its program listens on inside the container.
    pub port: u16,
    /// The host port it is reached on (fixed, so a restart keeps it).
    pub host_port: u16,
    /// A UDP port inside, and the host port it is published on.
    pub udp: Option<(u16, u16)>,
    /// Its stack's network and its names there.
    pub join: Option<Join<'a>>,
    /// The command to run; the image's own when empty.
    pub cmd: &'a [String],
    /// Environment (key, value), placeholders already filled.
    pub env: &'a [(String, String)],
    /// Files (name, contents) copied into [`FILES_DIR`] before it starts.
    pub files: &'a [(String, String)],
    /// Paths of the host it sees.
    pub mounts: &'a [crate::stack::Mount],
}

#[cfg(feature = "containers")]
mod docker;
#[cfg(feature = "containers")]
pub use docker::{Container, StackNetwork, guard_signals, remove_own_containers, start, unavailable_because};

#[cfg(not(feature = "containers"))]
mod off;
#[cfg(not(feature = "containers"))]
pub use off::{Container, StackNetwork, guard_signals, remove_own_containers, start, unavailable_because};
