//! Shared by every Gantry service: typed configuration, JWT keys and
//! validation, the registry client and watch, the common HTTP surface,
//! logging and shutdown.

pub mod component;
pub mod config;
pub mod credentials;
pub mod discovery;
pub mod error;
pub mod file;
pub mod http;
pub mod identity;
pub mod jwks;
pub mod jwt;
pub mod name;
pub mod registration;
pub mod registry;
pub mod serve;
pub mod service;
pub mod session;
pub mod shard;
pub mod shutdown;
pub mod store;
pub mod telemetry;
pub mod tls;
pub mod trace;
pub mod watch;
