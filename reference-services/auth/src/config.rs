//! The auth service's configuration, parsed once at start.

use std::time::Duration;

use gantry_common::config::{self, ConfigError};
use gantry_common::jwt::JwtConfig;
use gantry_common::registry::RegistryClient;
use gantry_common::service::ServiceSettings;

/// Where auth listens unless `GANTRY_LISTEN` says otherwise.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:8081";
/// How long a session lives (`GANTRY_SESSION_TTL`).
pub const DEFAULT_SESSION_TTL: Duration = Duration::from_secs(30 * 60);
/// Failed logins allowed before throttling starts (`GANTRY_LOGIN_MAX_FAILURES`).
pub const DEFAULT_MAX_FAILURES: u32 = 5;
/// The longest a throttled account waits.
pub const MAX_LOCKOUT: Duration = Duration::from_secs(15 * 60);

/// | variable | default | meaning |
/// |---|---|---|
/// | `GANTRY_SESSION_TTL` | `30m` | session lifetime in Redis and cookie `Max-Age` |
/// | `GANTRY_TOKEN_TTL` | the session TTL | access token lifetime (`exp - iat`) |
/// | `GANTRY_COOKIE_SECURE` | `true` | add `Secure` to the cookie; `false` only for plain-HTTP loopback |
/// | `GANTRY_LOGIN_MAX_FAILURES` | `5` | failures before each further one doubles a lockout (1 s … 15 min) |
///
/// plus [`ServiceSettings`], [`JwtConfig`] and `CONSUL_HTTP_ADDR`.
#[derive(Debug, Clone)]
pub struct AuthConfig {
    pub service: ServiceSettings,
    pub jwt: JwtConfig,
    pub registry: RegistryClient,
    pub session_ttl: Duration,
    pub token_ttl: Duration,
    pub cookie_secure: bool,
    pub max_failures: u32,
}

impl AuthConfig {
    pub fn from_env() -> Result<Self, ConfigError> {
        let session_ttl = config::duration_or("GANTRY_SESSION_TTL", DEFAULT_SESSION_TTL)?;
        if session_ttl < Duration::from_secs(1) {
            return Err(ConfigError::new(
                "GANTRY_SESSION_TTL",
                config::format_duration(session_ttl),
                "at least 1s",
            ));
        }
        let token_ttl = config::duration_or("GANTRY_TOKEN_TTL", session_ttl)?;
        if token_ttl < Duration::from_secs(1) {
            return Err(ConfigError::new(
                "GANTRY_TOKEN_TTL",
                config::format_duration(token_ttl),
                "at least 1s",
            ));
        }
        Ok(Self {
            service: ServiceSettings::from_env("auth", DEFAULT_LISTEN)?,
            jwt: JwtConfig::from_env()?,
            registry: RegistryClient::from_env()?,
            session_ttl,
            token_ttl,
            cookie_secure: config::bool_or("GANTRY_COOKIE_SECURE", true)?,
            max_failures: config::parse_or("GANTRY_LOGIN_MAX_FAILURES", DEFAULT_MAX_FAILURES, "a whole number")?,
        })
    }
}
