//! Settings every service process shares: where it listens, how it is known
//! in the registry, and where Redis is.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::Duration;

use crate::config::{self, ConfigError};
use crate::registry::{AgentRegistration, RegistryError, ServiceRecord};
use crate::serve::Limits;

/// Why a service could not start, or stopped abnormally.
#[derive(Debug, thiserror::Error)]
pub enum ServiceError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error("could not register in the registry at {addr}: {source}")]
    Register { addr: String, source: RegistryError },
    #[error("serving HTTP failed: {0}")]
    Serve(#[from] std::io::Error),
}

/// TTL of a service's health check unless `GANTRY_CHECK_TTL` says otherwise.
pub const DEFAULT_CHECK_TTL: Duration = Duration::from_secs(10);
/// How long a critical service stays registered (`GANTRY_DEREGISTER_AFTER`).
pub const DEFAULT_DEREGISTER_AFTER: Duration = Duration::from_secs(60);
/// Where Redis is unless `REDIS_URL` says otherwise.
pub const DEFAULT_REDIS_URL: &str = "redis://127.0.0.1:6379";

/// | variable | default | meaning |
/// |---|---|---|
/// | `GANTRY_LISTEN` | per service | `host:port` to bind |
/// | `GANTRY_ADVERTISE_ADDR` | the bound host (127.0.0.1 for 0.0.0.0) | address registered for others to call |
/// | `GANTRY_ADVERTISE_PORT` | the bound port | port registered for others to call (a proxy or a NAT in front) |
/// | `GANTRY_INSTANCE_ID` | `<service>-<port>` | registry id, sent as `X-Instance-Id` |
/// | `GANTRY_CHECK_TTL` | `10s` | TTL of the health check; heartbeat every third |
/// | `GANTRY_DEREGISTER_AFTER` | `60s` | critical this long → removed |
/// | `REDIS_URL` | `redis://127.0.0.1:6379` | Redis |
/// | `GANTRY_WATCH_WAIT` | `30s` | how long a blocking registry query waits for a change (Consul's `wait`): also the longest a watch stays on a connection gone silent |
///
/// plus the connection [`Limits`] (`GANTRY_HEADER_TIMEOUT`, `GANTRY_BODY_TIMEOUT`,
/// `GANTRY_MAX_CONNECTIONS`).
#[derive(Debug, Clone)]
pub struct ServiceSettings {
    pub service: &'static str,
    pub listen: SocketAddr,
    pub advertise: Option<String>,
    pub advertise_port: Option<u16>,
    pub instance_id: Option<String>,
    pub check_ttl: Duration,
    pub deregister_after: Duration,
    pub redis_url: String,
    /// What one client connection may cost.
    pub limits: Limits,
}

impl ServiceSettings {
    pub fn from_env(service: &'static str, default_listen: &str) -> Result<Self, ConfigError> {
        let listen = config::parse_or(
            "GANTRY_LISTEN",
            default_listen.parse().expect("default listen addresses are valid"),
            "host:port, e.g. 127.0.0.1:8080",
        )?;
        let check_ttl = config::duration_or("GANTRY_CHECK_TTL", DEFAULT_CHECK_TTL)?;
        if check_ttl < Duration::from_millis(300) {
            return Err(ConfigError::new(
                "GANTRY_CHECK_TTL",
                config::format_duration(check_ttl),
                "at least 300ms",
            ));
        }
        Ok(Self {
            service,
            listen,
            advertise: config::raw("GANTRY_ADVERTISE_ADDR"),
            advertise_port: match config::raw("GANTRY_ADVERTISE_PORT") {
                None => None,
                Some(_) => Some(config::number_in("GANTRY_ADVERTISE_PORT", 1, 1..=u16::MAX)?),
            },
            instance_id: config::raw("GANTRY_INSTANCE_ID"),
            check_ttl,
            deregister_after: config::duration_or("GANTRY_DEREGISTER_AFTER", DEFAULT_DEREGISTER_AFTER)?,
            redis_url: config::string_or("REDIS_URL", DEFAULT_REDIS_URL),
            limits: Limits::from_env()?,
        })
    }

    /// The instance id, given the port actually bound.
    pub fn instance_id(&self, bound: SocketAddr) -> String {
        self.instance_id
            .clone()
            .unwrap_or_else(|| format!("{}-{}", self.service, bound.port()))
    }

    /// What to register, given the address actually bound.
    pub fn registration(&self, bound: SocketAddr) -> AgentRegistration {
        let address = self.advertise.clone().unwrap_or_else(|| {
            if bound.ip().is_unspecified() {
                "127.0.0.1".to_owned()
            } else {
                bound.ip().to_string()
            }
        });
        let service = ServiceRecord {
            id: self.instance_id(bound),
            name: self.service.to_owned(),
            address,
            port: self.advertise_port.unwrap_or(bound.port()),
            tags: vec!["gantry".to_owned()],
            meta: BTreeMap::from([("version".to_owned(), env!("CARGO_PKG_VERSION").to_owned())]),
        };
        AgentRegistration::with_ttl(service, self.check_ttl, self.deregister_after)
    }
}
