//! The gateway's configuration, parsed once at start: the environment, and
//! the declarative routes file it may name (see [`crate::declared`]).

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use gantry_common::config::{self, ConfigError};
use gantry_common::jwt::JwtConfig;
use gantry_common::registry::RegistryClient;
use gantry_common::serve::Limits;
use gantry_common::service::DEFAULT_REDIS_URL;
use gantry_common::tls::TlsFiles;

use crate::declared::{Declared, DeclaredError};
use crate::policy::Policy;

/// Where the gateway listens unless `GANTRY_LISTEN` says otherwise.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:8000";
/// How long a session lookup is trusted without asking Redis again.
pub const DEFAULT_SESSION_CACHE_TTL: Duration = Duration::from_secs(5);
/// The most a session lookup may be cached: revocations are pushed, but a
/// missed push must not keep a dead session alive for long.
pub const MAX_SESSION_CACHE_TTL: Duration = Duration::from_secs(5);

/// The variable naming the declarative routes file.
pub const CONFIG_FILE_VAR: &str = "GANTRY_GATEWAY_CONFIG";

/// Why the gateway's configuration could not be had: a variable, or the
/// routes file, each naming what to fix.
#[derive(Debug, thiserror::Error)]
pub enum GatewayConfigError {
    #[error(transparent)]
    Env(#[from] ConfigError),
    /// The file's own error (file, line, what was expected) is the source.
    #[error("{CONFIG_FILE_VAR} names a routes file that was refused")]
    File(#[from] DeclaredError),
}

/// | variable | default | meaning |
/// |---|---|---|
/// | `GANTRY_LISTEN` | `127.0.0.1:8000` | where the gateway listens |
/// | `GANTRY_ADMIN_LISTEN` | off | where operator endpoints (`/metrics`, detailed `/readyz`) are served; off unless set |
/// | `GANTRY_HEADER_TIMEOUT` | `10s` | to send a request's headers; also how long an idle keep-alive connection is kept, and, with TLS, the time to finish the handshake |
/// | `GANTRY_BODY_TIMEOUT` | `30s` | to send a request's body once the headers are in (408 after it) |
/// | `GANTRY_MAX_CONNECTIONS` | `10000` | open client connections; more are answered 503 and closed |
/// | `GANTRY_GATEWAY_CONFIG` | the reference routes | a TOML file of services and routes ([`crate::declared`]); read again on SIGHUP |
/// | `GANTRY_LB`, `GANTRY_*_TIMEOUT`, `GANTRY_MAX_RETRIES`, `GANTRY_RETRY_*`, `GANTRY_CONSECUTIVE_*`, `GANTRY_*_EJECTION_*` | | how requests to a service are sent, retried and when an instance is ejected: the defaults of every service, each overridable per service in the routes file ([`crate::policy`] has the table) |
/// | `GANTRY_SESSION_CACHE_TTL` | `5s` | session lookup cache, at most 5 s |
/// | `GANTRY_WORKERS` | the number of cores | worker threads (thread per core) |
/// | `GANTRY_INSTANCE_ID` | `gateway-<port>` | sent as `X-Instance-Id` on the gateway's own answers |
/// | `GANTRY_TLS_CERT` | off | PEM certificate chain (server's first): the public listener speaks HTTPS; needs `GANTRY_TLS_KEY` |
/// | `GANTRY_TLS_KEY` | off | PEM private key (PKCS#8, PKCS#1 or SEC1) of `GANTRY_TLS_CERT`'s certificate |
/// | `REDIS_URL`, `CONSUL_HTTP_ADDR`, `GANTRY_JWT_*` | | as for every service |
#[derive(Debug, Clone)]
pub struct GatewayConfig {
    pub listen: std::net::SocketAddr,
    /// Operator endpoints' address; `None` serves them nowhere. Off by
    /// default, as Envoy's admin is: a fixed default port would collide
    /// between gateways on one machine, and an operator surface should exist
    /// only where someone chose to put it.
    pub admin_listen: Option<std::net::SocketAddr>,
    pub instance_id: Option<String>,
    pub jwt: JwtConfig,
    pub registry: RegistryClient,
    pub redis_url: String,
    /// The routes file, read again on every reload; `None` keeps the
    /// built-in reference routes (and a reload has nothing to read).
    pub routes_file: Option<PathBuf>,
    /// The services and routes in force at start: `routes_file`'s, or
    /// [`Declared::reference`].
    pub declared: Declared,
    /// The defaults for a service that does not set its own.
    pub policy: Policy,
    pub session_cache_ttl: Duration,
    /// Worker threads, each with its own runtime and upstream pool.
    pub workers: usize,
    /// What one client connection may cost: header and body deadlines
    /// (the header one is also the keep-alive idle time), the connection cap.
    pub limits: Limits,
    /// TLS for the public listener, as Kong and Traefik terminate it; `None`
    /// serves plain HTTP. The admin listener never uses it: it is the
    /// operators' private listener, bound where only they reach it, and
    /// scrapers and probes should not need a CA to read it.
    pub tls: Option<Arc<rustls::ServerConfig>>,
}

impl GatewayConfig {
    /// Reads the environment and, when `GANTRY_GATEWAY_CONFIG` names one,
    /// the routes file: a mistake in either stops the gateway before it binds.
    pub fn from_env() -> Result<Self, GatewayConfigError> {
        let session_cache_ttl = config::duration_or("GANTRY_SESSION_CACHE_TTL", DEFAULT_SESSION_CACHE_TTL)?;
        if session_cache_ttl > MAX_SESSION_CACHE_TTL {
            return Err(ConfigError::new(
                "GANTRY_SESSION_CACHE_TTL",
                config::format_duration(session_cache_ttl),
                "at most 5s",
            )
            .into());
        }
        let routes_file = config::raw(CONFIG_FILE_VAR).map(|p| PathBuf::from(p.trim()));
        Ok(Self {
            listen: config::parse_or(
                "GANTRY_LISTEN",
                DEFAULT_LISTEN.parse().expect("valid default"),
                "host:port",
            )?,
            admin_listen: match config::raw("GANTRY_ADMIN_LISTEN") {
                None => None,
                Some(v) => Some(
                    v.trim()
                        .parse()
                        .map_err(|_| ConfigError::new("GANTRY_ADMIN_LISTEN", v, "host:port, e.g. 127.0.0.1:9000"))?,
                ),
            },
            instance_id: config::raw("GANTRY_INSTANCE_ID"),
            jwt: JwtConfig::from_env()?,
            registry: RegistryClient::from_env()?,
            redis_url: config::string_or("REDIS_URL", DEFAULT_REDIS_URL),
            declared: match &routes_file {
                Some(path) => Declared::load(path)?,
                None => Declared::reference(),
            },
            routes_file,
            policy: Policy::from_env()?,
            session_cache_ttl,
            workers: config::number_in(
                "GANTRY_WORKERS",
                std::thread::available_parallelism().map_or(1, |n| n.get()),
                1..=256,
            )?,
            limits: Limits::from_env()?,
            // Read once here: a bad certificate or key stops the gateway
            // before it binds, naming the variable and the reason.
            tls: TlsFiles::from_env()?.map(|f| f.server_config()).transpose()?,
        })
    }

    /// This configuration with its routes from the file at `path` (which
    /// reloads read again), as `GANTRY_GATEWAY_CONFIG=path` would give.
    pub fn with_routes_file(mut self, path: impl Into<PathBuf>) -> Result<Self, DeclaredError> {
        let path = path.into();
        self.declared = Declared::load(&path)?;
        self.routes_file = Some(path);
        Ok(self)
    }
}
