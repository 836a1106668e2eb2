//! The auth service's configuration, parsed once at start.

use std::ops::RangeInclusive;
use std::time::Duration;

use gantry_common::config::{self, ConfigError};
use gantry_common::jwt::JwtConfig;
use gantry_common::registry::RegistryClient;
use gantry_common::service::ServiceSettings;

/// Where auth listens unless `GANTRY_LISTEN` says otherwise.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:8081";
/// How long a session lives without a refresh (`GANTRY_SESSION_TTL`).
pub const DEFAULT_SESSION_TTL: Duration = Duration::from_secs(30 * 60);
/// How long a session can be kept alive by refreshing it
/// (`GANTRY_SESSION_MAX_AGE`): a stolen cookie stops working at this age
/// however diligently the thief refreshes it. Twelve hours is a working day
/// with margin, as common identity providers default to.
pub const DEFAULT_SESSION_MAX_AGE: Duration = Duration::from_secs(12 * 3600);
/// Failed logins allowed for one username from one client address before
/// each further attempt waits for a doubling lockout
/// (`GANTRY_LOGIN_MAX_FAILURES`). Low, because it is what one guesser gets.
pub const DEFAULT_MAX_FAILURES: u32 = 5;
/// Failed logins allowed for one username from all addresses together in
/// [`FAILURE_WINDOW`] (`GANTRY_LOGIN_ACCOUNT_MAX_FAILURES`). Much higher than
/// the per-address limit: it exists to stop guessing spread over many
/// addresses, and it is the only limit an attacker elsewhere can spend to
/// keep the owner out, so it must take many addresses to reach.
pub const DEFAULT_ACCOUNT_MAX_FAILURES: u32 = 100;
/// The first lockout, once the per-address failures are used up
/// (`GANTRY_LOGIN_FIRST_LOCKOUT`); each further failure doubles it, up to
/// [`MAX_LOCKOUT`]. Short, so a user who mistyped waits a moment, not a while.
pub const DEFAULT_FIRST_LOCKOUT: Duration = Duration::from_secs(1);
/// The longest a throttled username and address waits.
pub const MAX_LOCKOUT: Duration = Duration::from_secs(15 * 60);
/// How long failures are remembered: the per-address count slides (each
/// failure restarts it), the per-account count is a fixed window.
pub const FAILURE_WINDOW: Duration = MAX_LOCKOUT;
/// Password hashes waiting for a free core, per core
/// (`GANTRY_HASH_QUEUE` overrides the total). Each waits about one hash time
/// per four in front of it, so four per core keeps the wait well under a
/// second; beyond it a login is answered 503 at once instead of queueing
/// memory and latency without bound.
pub const DEFAULT_HASH_QUEUE_PER_CORE: usize = 4;

/// | variable | default | meaning |
/// |---|---|---|
/// | `GANTRY_SESSION_TTL` | `30m` | session lifetime in Redis and cookie `Max-Age`, renewed by refresh |
/// | `GANTRY_SESSION_MAX_AGE` | `12h` | absolute session lifetime from login; refresh cannot extend it |
/// | `GANTRY_TOKEN_TTL` | the session TTL | access token lifetime (`exp - iat`), never past the session's end |
/// | `GANTRY_COOKIE_SECURE` | `true` | add `Secure` to the cookie; `false` only for plain-HTTP loopback |
/// | `GANTRY_LOGIN_MAX_FAILURES` | `5` | failures per username and client address before each further one doubles a lockout |
/// | `GANTRY_LOGIN_FIRST_LOCKOUT` | `1s` | the first of those lockouts (doubling up to 15 min) |
/// | `GANTRY_LOGIN_ACCOUNT_MAX_FAILURES` | `100` | failures per username from all addresses in 15 min; then 429 for everyone until the window ends |
/// | `GANTRY_HASH_CONCURRENCY` | the number of cores | password hashes computed at once |
/// | `GANTRY_HASH_QUEUE` | 4 × that | hashes waiting for a slot; beyond it 503 with `Retry-After` |
///
/// The client address is the rightmost `X-Forwarded-For` entry (the one the
/// gateway appends from the TCP peer), else the TCP peer itself.
///
/// plus [`ServiceSettings`], [`JwtConfig`] and `CONSUL_HTTP_ADDR`.
#[derive(Debug, Clone)]
pub struct AuthConfig {
    pub service: ServiceSettings,
    pub jwt: JwtConfig,
    pub registry: RegistryClient,
    pub session_ttl: Duration,
    pub session_max_age: Duration,
    pub token_ttl: Duration,
    pub cookie_secure: bool,
    pub max_failures: u32,
    pub account_max_failures: u32,
    pub first_lockout: Duration,
    pub hash_concurrency: usize,
    pub hash_queue: usize,
}

/// Lifetimes: under a second is a misconfiguration, not a policy.
const LIFETIME: RangeInclusive<Duration> = Duration::from_secs(1)..=Duration::from_secs(365 * 24 * 3600);

/// The cores this process may use, as the default hashing concurrency.
pub fn cores() -> usize {
    std::thread::available_parallelism().map_or(1, usize::from)
}

impl AuthConfig {
    pub fn from_env() -> Result<Self, ConfigError> {
        let session_ttl = config::duration_in("GANTRY_SESSION_TTL", DEFAULT_SESSION_TTL, LIFETIME)?;
        let session_max_age = config::duration_in("GANTRY_SESSION_MAX_AGE", DEFAULT_SESSION_MAX_AGE, LIFETIME)?;
        let token_ttl = config::duration_in("GANTRY_TOKEN_TTL", session_ttl, LIFETIME)?;
        let first_lockout = config::duration_in(
            "GANTRY_LOGIN_FIRST_LOCKOUT",
            DEFAULT_FIRST_LOCKOUT,
            Duration::from_millis(1)..=MAX_LOCKOUT,
        )?;
        let hash_concurrency = config::number_in("GANTRY_HASH_CONCURRENCY", cores(), 1..=1024)?;
        let hash_queue = config::number_in(
            "GANTRY_HASH_QUEUE",
            hash_concurrency * DEFAULT_HASH_QUEUE_PER_CORE,
            0..=100_000,
        )?;
        Ok(Self {
            service: ServiceSettings::from_env("auth", DEFAULT_LISTEN)?,
            jwt: JwtConfig::from_env()?,
            registry: RegistryClient::from_env()?,
            session_ttl,
            session_max_age,
            token_ttl,
            cookie_secure: config::bool_or("GANTRY_COOKIE_SECURE", true)?,
            max_failures: config::number_in("GANTRY_LOGIN_MAX_FAILURES", DEFAULT_MAX_FAILURES, 1..=1_000)?,
            account_max_failures: config::number_in(
                "GANTRY_LOGIN_ACCOUNT_MAX_FAILURES",
                DEFAULT_ACCOUNT_MAX_FAILURES,
                1..=1_000_000,
            )?,
            first_lockout,
            hash_concurrency,
            hash_queue,
        })
    }
}
