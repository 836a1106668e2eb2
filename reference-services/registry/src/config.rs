//! The dev registry's configuration, parsed once at start.

use std::net::SocketAddr;

use gantry_common::config::{ConfigError, parse_or, raw};
use gantry_common::serve::Limits;

/// The variable that holds the registry's management token.
pub const ACL_TOKEN_VAR: &str = "GANTRY_REGISTRY_ACL_TOKEN";
/// The variable that says where the registry listens.
pub const LISTEN_VAR: &str = "GANTRY_LISTEN";
/// The port Consul's HTTP API listens on, and so does the dev registry.
pub const DEFAULT_PORT: u16 = 8500;
/// Where the registry listens unless `GANTRY_LISTEN` says otherwise:
/// loopback, because without a token anyone who reaches it may write.
pub const DEFAULT_LISTEN: SocketAddr =
    SocketAddr::new(std::net::IpAddr::V4(std::net::Ipv4Addr::LOCALHOST), DEFAULT_PORT);

/// How the dev registry runs.
#[derive(Debug, Clone)]
pub struct Options {
    /// `GANTRY_LISTEN`, default [`DEFAULT_LISTEN`]. [`crate::run`] takes a
    /// bound listener; this says what to bind.
    pub listen: SocketAddr,
    /// `GANTRY_REGISTRY_ACL_TOKEN`: the management token; `None` turns ACLs
    /// off (anyone may write).
    pub acl_token: Option<String>,
    /// What one client connection may cost, as on every other listener:
    /// `GANTRY_HEADER_TIMEOUT`, `GANTRY_BODY_TIMEOUT`,
    /// `GANTRY_MAX_CONNECTIONS` (see [`Limits`]). The header deadline bounds
    /// reading a request head only, so a blocking query holds its request
    /// open for its whole `wait` whatever it is.
    pub limits: Limits,
    /// `GANTRY_DNS_LISTEN`: where Consul's DNS interface answers over UDP
    /// (Consul's port is 8600); off when unset.
    pub dns_listen: Option<SocketAddr>,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            listen: DEFAULT_LISTEN,
            acl_token: None,
            limits: Limits::default(),
            dns_listen: None,
        }
    }
}

impl Options {
    pub fn from_env() -> Result<Self, ConfigError> {
        Ok(Self {
            listen: parse_or(LISTEN_VAR, DEFAULT_LISTEN, "host:port, e.g. 127.0.0.1:8500")?,
            acl_token: raw(ACL_TOKEN_VAR).map(|t| t.trim().to_owned()),
            limits: Limits::from_env()?,
            dns_listen: match raw(crate::dns::DNS_LISTEN_VAR) {
                None => None,
                Some(_) => Some(parse_or(
                    crate::dns::DNS_LISTEN_VAR,
                    DEFAULT_LISTEN,
                    "host:port for DNS over UDP, e.g. 127.0.0.1:8600",
                )?),
            },
        })
    }
}
