//! The user service's configuration, parsed once at start.

use gantry_common::config::ConfigError;
use gantry_common::jwt::JwtConfig;
use gantry_common::registry::RegistryClient;
use gantry_common::service::ServiceSettings;

/// Where the user service listens unless `GANTRY_LISTEN` says otherwise.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:8082";

/// [`ServiceSettings`], [`JwtConfig`] and `CONSUL_HTTP_ADDR`; nothing of its own.
#[derive(Debug, Clone)]
pub struct UserConfig {
    pub service: ServiceSettings,
    pub jwt: JwtConfig,
    pub registry: RegistryClient,
}

impl UserConfig {
    pub fn from_env() -> Result<Self, ConfigError> {
        Ok(Self {
            service: ServiceSettings::from_env("user", DEFAULT_LISTEN)?,
            jwt: JwtConfig::from_env()?,
            registry: RegistryClient::from_env()?,
        })
    }
}
