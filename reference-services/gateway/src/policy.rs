//! How requests to one service are sent, retried, and when an instance is
//! set aside: one resolved [`Policy`] per service — the gateway's defaults
//! (the environment, [`Policy::from_env`]) with the routes file's
//! per-service [`Overrides`] on top ([`Overrides::resolve`]).
//!
//! The knobs and their names are Envoy's, so an Envoy user finds what they
//! expect: a retry policy (`retry_on`, `retriable_status_codes`, a per-try
//! timeout, a retry budget) and passive outlier detection
//! (`consecutive_5xx`, `consecutive_gateway_failure`, locally-originated
//! failures counted apart as with `split_external_local_origin_errors`,
//! `base_ejection_time` × the times ejected up to `max_ejection_time`,
//! `max_ejection_percent`).
//!
//! | variable | file key | default | meaning |
//! |---|---|---|---|
//! | `GANTRY_LB` | `lb` | `round_robin` | `round_robin` or `p2c` (least outstanding of two) |
//! | `GANTRY_CONNECT_TIMEOUT` | `connect_timeout` | `1s` | to open a connection to an instance |
//! | `GANTRY_REQUEST_TIMEOUT` | `request_timeout` | `30s` | per attempt (Envoy's per-try timeout), to the response headers; a timeout is a gateway error (504) |
//! | `GANTRY_MAX_RETRIES` | `retries` | `2` | 0 to 5 further attempts, each on an instance not yet tried |
//! | `GANTRY_RETRY_ON` | `retry_on` | `connect-failure,reset,gateway-error` | what is retried: `connect-failure` (any method: nothing was sent), `reset` (connection lost before a full answer), `gateway-error` (502, 503, 504 and per-try timeouts), `5xx` (any 5xx and timeouts), `retriable-status-codes`; `none` retries nothing. All but `connect-failure` retry only idempotent methods (GET, HEAD, OPTIONS, PUT, DELETE, TRACE) |
//! | `GANTRY_RETRIABLE_STATUS_CODES` | `retriable_status_codes` | none | statuses retried when `retry_on` has `retriable-status-codes`, e.g. `409,429` |
//! | `GANTRY_RETRY_BUDGET` | `retry_budget` | `20` | retries in flight may be at most this percent of the service's requests in flight (never fewer than 10), so retries cannot multiply an overload; `100` lifts it |
//! | `GANTRY_CONSECUTIVE_5XX` | `consecutive_5xx` | `5` | 5xx answers in a row that eject an instance; `0` is off |
//! | `GANTRY_CONSECUTIVE_GATEWAY_FAILURE` | `consecutive_gateway_failure` | `0` (off, as Envoy enforces it by default) | 502, 503 or 504 answers in a row that eject an instance |
//! | `GANTRY_CONSECUTIVE_LOCAL_ORIGIN_FAILURE` | `consecutive_local_origin_failure` | `1` | refused connections, resets and timeouts in a row that eject an instance; `0` is off |
//! | `GANTRY_BASE_EJECTION_TIME` | `base_ejection_time` | `1s` | an ejection lasts this × the instance's ejections in a row |
//! | `GANTRY_MAX_EJECTION_TIME` | `max_ejection_time` | `30s` | the longest one ejection lasts |
//! | `GANTRY_MAX_EJECTION_PERCENT` | `max_ejection_percent` | `50` | the most of a service's instances ejected at once (at least one always may be), so a fully sick service keeps answering |
//!
//! `base_ejection_time` is shorter than Envoy's 30 s on purpose: the
//! registry's health checks take a dead instance out within its TTL, so
//! passive ejection only bridges the seconds until they do, and a short
//! first ejection lets a recovered instance take traffic again at once.

use std::time::Duration;

use gantry_common::config::{self, ConfigError};
use serde::Deserialize;

/// How the gateway picks among healthy instances.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LbPolicy {
    /// Each instance in turn.
    #[serde(alias = "rr")]
    RoundRobin,
    /// Two at random; the one with fewer requests in flight.
    P2c,
}

/// Time allowed to open a connection to an upstream instance.
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(1);
/// Time allowed for one upstream attempt to answer with its headers.
pub const DEFAULT_REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
/// Extra attempts on other instances after a failure that may be retried.
pub const DEFAULT_MAX_RETRIES: u32 = 2;
/// The most retries a service may be given: the request path keeps the
/// instances it tried in a fixed array of `MAX_RETRIES + 1` or more.
pub const MAX_RETRIES: u32 = 5;
/// Retries in flight allowed whatever the budget's percent says (Envoy's
/// `min_retry_concurrency`): a quiet service can always retry a little.
/// Envoy's default is 3, which fails a request whenever a fourth caller
/// meets a dying instance at the same moment (a SIGKILL under 8 callers
/// does); 10 lets a kill under moderate load cost nothing, while a storm of
/// hundreds in flight is still held to the percent.
pub const MIN_RETRY_CONCURRENCY: usize = 10;

/// How requests to one service are sent, with every setting resolved.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Policy {
    pub lb: LbPolicy,
    pub connect_timeout: Duration,
    /// Per attempt, to the response headers.
    pub request_timeout: Duration,
    pub retries: u32,
    pub retry_on: RetryOn,
    /// Percent of the service's requests in flight that may be retries.
    pub retry_budget: u32,
    pub outlier: Outlier,
}

/// When an instance is set aside (ejected) from balancing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Outlier {
    /// 5xx answers in a row; 0 is off.
    pub consecutive_5xx: u32,
    /// 502/503/504 answers in a row; 0 is off.
    pub consecutive_gateway_failure: u32,
    /// Refused connections, resets and timeouts in a row; 0 is off.
    pub consecutive_local_origin_failure: u32,
    pub base_ejection_time: Duration,
    pub max_ejection_time: Duration,
    pub max_ejection_percent: u32,
}

impl Outlier {
    /// The defaults (see the module's table).
    pub const DEFAULT: Outlier = Outlier {
        consecutive_5xx: 5,
        consecutive_gateway_failure: 0,
        consecutive_local_origin_failure: 1,
        base_ejection_time: Duration::from_secs(1),
        max_ejection_time: Duration::from_secs(30),
        max_ejection_percent: 50,
    };

    /// How long the `n`th ejection in a row lasts (n from 1).
    pub fn ejection_time(&self, n: u32) -> Duration {
        self.base_ejection_time
            .saturating_mul(n.max(1))
            .min(self.max_ejection_time)
    }

    /// Whether one more of `total` instances may be ejected while `ejected`
    /// already are: at least one always may (as Envoy), else up to the percent.
    pub fn may_eject(&self, ejected: usize, total: usize) -> bool {
        ejected == 0 || (ejected + 1) * 100 <= total * self.max_ejection_percent as usize
    }
}

/// One reason to retry, as Envoy's `retry_on` names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Condition {
    ConnectFailure,
    Reset,
    GatewayError,
    FiveXx,
    RetriableStatusCodes,
}

impl Condition {
    pub const ALL: [Condition; 5] = [
        Condition::ConnectFailure,
        Condition::Reset,
        Condition::GatewayError,
        Condition::FiveXx,
        Condition::RetriableStatusCodes,
    ];

    pub const fn name(self) -> &'static str {
        match self {
            Condition::ConnectFailure => "connect-failure",
            Condition::Reset => "reset",
            Condition::GatewayError => "gateway-error",
            Condition::FiveXx => "5xx",
            Condition::RetriableStatusCodes => "retriable-status-codes",
        }
    }

    const fn bit(self) -> u8 {
        1 << self as u8
    }
}

/// What is retried: a set of [`Condition`]s and the statuses
/// `retriable-status-codes` names. `Copy`, so the request path reads it
/// from the snapshot without touching a reference count.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct RetryOn {
    conditions: u8,
    /// Bit `s - 100` for each status `s` from 100 to 599.
    statuses: [u64; 8],
}

/// What `retry_on` may hold, for error messages.
pub fn retry_on_expected() -> String {
    let names: Vec<&str> = Condition::ALL.iter().map(|c| c.name()).collect();
    format!("\"none\" or a comma-separated list of {}", names.join(", "))
}

impl RetryOn {
    /// Envoy users' usual choice: what was never sent, and what failed
    /// at the gateway level.
    pub const DEFAULT: RetryOn = RetryOn {
        conditions: Condition::ConnectFailure.bit() | Condition::Reset.bit() | Condition::GatewayError.bit(),
        statuses: [0; 8],
    };

    /// The conditions named in `names` (`none` alone for no retries).
    pub fn parse<'a>(names: impl IntoIterator<Item = &'a str>) -> Result<Self, String> {
        let mut on = RetryOn::default();
        for name in names.into_iter().map(str::trim) {
            if name == "none" {
                continue;
            }
            match Condition::ALL.iter().find(|c| c.name() == name) {
                Some(c) => on.conditions |= c.bit(),
                None => return Err(format!("{name:?} is not a retry condition")),
            }
        }
        Ok(on)
    }

    pub fn has(&self, c: Condition) -> bool {
        self.conditions & c.bit() != 0
    }

    /// This set with `codes` as its retriable status codes.
    pub fn with_statuses(mut self, codes: &[u16]) -> Result<Self, u16> {
        self.statuses = [0; 8];
        for &code in codes {
            if !(100..=599).contains(&code) {
                return Err(code);
            }
            let bit = usize::from(code - 100);
            self.statuses[bit / 64] |= 1 << (bit % 64);
        }
        Ok(self)
    }

    fn listed(&self, status: u16) -> bool {
        if !(100..=599).contains(&status) {
            return false;
        }
        let bit = usize::from(status - 100);
        self.statuses[bit / 64] & (1 << (bit % 64)) != 0
    }

    /// Whether an answer with `status` is retried (idempotent requests only).
    pub fn retries_status(&self, status: u16) -> bool {
        (status >= 500 && self.has(Condition::FiveXx))
            || (matches!(status, 502..=504) && self.has(Condition::GatewayError))
            || (self.has(Condition::RetriableStatusCodes) && self.listed(status))
    }

    /// Whether a per-try timeout is retried: it is a gateway error (504).
    pub fn retries_timeout(&self) -> bool {
        self.has(Condition::GatewayError) || self.has(Condition::FiveXx)
    }
}

impl Policy {
    /// The gateway's defaults, from the environment (see the module's table).
    pub fn from_env() -> Result<Self, ConfigError> {
        let lb = match config::string_or("GANTRY_LB", "round_robin").as_str() {
            "round_robin" | "rr" => LbPolicy::RoundRobin,
            "p2c" | "least_outstanding" => LbPolicy::P2c,
            other => return Err(ConfigError::new("GANTRY_LB", other, "round_robin or p2c")),
        };
        let retry_on = match config::raw("GANTRY_RETRY_ON") {
            None => RetryOn::DEFAULT,
            Some(v) => RetryOn::parse(v.split(','))
                .map_err(|_| ConfigError::new("GANTRY_RETRY_ON", &v, retry_on_expected()))?,
        };
        let retry_on = match config::raw("GANTRY_RETRIABLE_STATUS_CODES") {
            None => retry_on,
            Some(v) => {
                let expected = "a comma-separated list of HTTP statuses from 100 to 599, e.g. 409,429";
                let codes: Vec<u16> = v
                    .split(',')
                    .map(|c| c.trim().parse::<u16>())
                    .collect::<Result<_, _>>()
                    .map_err(|_| ConfigError::new("GANTRY_RETRIABLE_STATUS_CODES", &v, expected))?;
                retry_on
                    .with_statuses(&codes)
                    .map_err(|_| ConfigError::new("GANTRY_RETRIABLE_STATUS_CODES", &v, expected))?
            }
        };
        let d = Outlier::DEFAULT;
        let base_ejection_time = config::duration_or("GANTRY_BASE_EJECTION_TIME", d.base_ejection_time)?;
        let max_ejection_time = config::duration_or("GANTRY_MAX_EJECTION_TIME", d.max_ejection_time)?;
        if max_ejection_time < base_ejection_time {
            return Err(ConfigError::new(
                "GANTRY_MAX_EJECTION_TIME",
                config::format_duration(max_ejection_time),
                format!(
                    "at least GANTRY_BASE_EJECTION_TIME ({})",
                    config::format_duration(base_ejection_time)
                ),
            ));
        }
        Ok(Self {
            lb,
            connect_timeout: config::duration_or("GANTRY_CONNECT_TIMEOUT", DEFAULT_CONNECT_TIMEOUT)?,
            request_timeout: config::duration_or("GANTRY_REQUEST_TIMEOUT", DEFAULT_REQUEST_TIMEOUT)?,
            retries: config::number_in("GANTRY_MAX_RETRIES", DEFAULT_MAX_RETRIES, 0..=MAX_RETRIES)?,
            retry_on,
            retry_budget: config::number_in("GANTRY_RETRY_BUDGET", 20, 0..=100)?,
            outlier: Outlier {
                consecutive_5xx: config::number_in("GANTRY_CONSECUTIVE_5XX", d.consecutive_5xx, 0..=1000)?,
                consecutive_gateway_failure: config::number_in(
                    "GANTRY_CONSECUTIVE_GATEWAY_FAILURE",
                    d.consecutive_gateway_failure,
                    0..=1000,
                )?,
                consecutive_local_origin_failure: config::number_in(
                    "GANTRY_CONSECUTIVE_LOCAL_ORIGIN_FAILURE",
                    d.consecutive_local_origin_failure,
                    0..=1000,
                )?,
                base_ejection_time,
                max_ejection_time,
                max_ejection_percent: config::number_in(
                    "GANTRY_MAX_EJECTION_PERCENT",
                    d.max_ejection_percent,
                    0..=100,
                )?,
            },
        })
    }

    /// Whether one more retry may start for a service with `in_flight`
    /// requests in flight and `retrying` retries among them.
    pub fn budget_admits(&self, in_flight: usize, retrying: usize) -> bool {
        let allowed = (in_flight * self.retry_budget as usize / 100).max(MIN_RETRY_CONCURRENCY);
        self.retry_budget > 0 && retrying < allowed
    }
}

/// One `[[services]]` entry's own settings; each `None` takes the
/// gateway's default. The routes file's reader fills it in
/// ([`crate::declared`]), checking each value where it is written.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Overrides {
    pub lb: Option<LbPolicy>,
    pub connect_timeout: Option<Duration>,
    pub request_timeout: Option<Duration>,
    pub retries: Option<u32>,
    pub retry_on: Option<RetryOn>,
    pub retriable_status_codes: Option<Vec<u16>>,
    pub retry_budget: Option<u32>,
    pub consecutive_5xx: Option<u32>,
    pub consecutive_gateway_failure: Option<u32>,
    pub consecutive_local_origin_failure: Option<u32>,
    pub base_ejection_time: Option<Duration>,
    pub max_ejection_time: Option<Duration>,
    pub max_ejection_percent: Option<u32>,
}

impl Overrides {
    /// `defaults` with this entry's settings in their place.
    pub fn resolve(&self, defaults: &Policy) -> Policy {
        let d = defaults;
        let o = &d.outlier;
        let mut retry_on = self.retry_on.unwrap_or(d.retry_on);
        if let Some(codes) = &self.retriable_status_codes {
            retry_on = retry_on.with_statuses(codes).unwrap_or(retry_on);
        }
        let base = self.base_ejection_time.unwrap_or(o.base_ejection_time);
        let max = self.max_ejection_time.unwrap_or(o.max_ejection_time);
        Policy {
            lb: self.lb.unwrap_or(d.lb),
            connect_timeout: self.connect_timeout.unwrap_or(d.connect_timeout),
            request_timeout: self.request_timeout.unwrap_or(d.request_timeout),
            retries: self.retries.unwrap_or(d.retries),
            retry_on,
            retry_budget: self.retry_budget.unwrap_or(d.retry_budget),
            outlier: Outlier {
                consecutive_5xx: self.consecutive_5xx.unwrap_or(o.consecutive_5xx),
                consecutive_gateway_failure: self
                    .consecutive_gateway_failure
                    .unwrap_or(o.consecutive_gateway_failure),
                consecutive_local_origin_failure: self
                    .consecutive_local_origin_failure
                    .unwrap_or(o.consecutive_local_origin_failure),
                base_ejection_time: base,
                // A file that lengthens the base past the default cap raises the cap with it.
                max_ejection_time: max.max(base),
                max_ejection_percent: self.max_ejection_percent.unwrap_or(o.max_ejection_percent),
            },
        }
    }
}

/// A whole number from `MIN` to `MAX`, refused with the range otherwise.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Bounded<const MIN: u32, const MAX: u32>(pub u32);

impl<'de, const MIN: u32, const MAX: u32> Deserialize<'de> for Bounded<MIN, MAX> {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let n = i64::deserialize(d)?;
        match u32::try_from(n) {
            Ok(v) if (MIN..=MAX).contains(&v) => Ok(Bounded(v)),
            _ => Err(serde::de::Error::custom(format!(
                "{n} is out of range: expected a whole number from {MIN} to {MAX}"
            ))),
        }
    }
}

/// `retry_on` in the file: a list of condition names (`[]` for none).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FileRetryOn(pub RetryOn);

impl<'de> Deserialize<'de> for FileRetryOn {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let names = Vec::<String>::deserialize(d)?;
        RetryOn::parse(names.iter().map(String::as_str))
            .map(FileRetryOn)
            .map_err(|why| serde::de::Error::custom(format!("{why}: expected a list of {}", list_of_conditions())))
    }
}

fn list_of_conditions() -> String {
    let names: Vec<String> = Condition::ALL.iter().map(|c| format!("{:?}", c.name())).collect();
    names.join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn defaults() -> Policy {
        Policy::from_env().expect("the defaults")
    }

    #[test]
    fn defaults_are_what_an_envoy_user_would_pick() {
        let p = defaults();
        assert!(p.retry_on.has(Condition::ConnectFailure) && p.retry_on.has(Condition::Reset));
        assert!(p.retry_on.retries_status(503) && p.retry_on.retries_status(502) && p.retry_on.retries_status(504));
        assert!(!p.retry_on.retries_status(500), "500 is not a gateway error");
        assert!(!p.retry_on.retries_status(429));
        assert_eq!(p.retry_budget, 20);
        assert_eq!(p.outlier.consecutive_5xx, 5);
        assert_eq!(p.outlier.consecutive_local_origin_failure, 1);
    }

    #[test]
    fn retry_conditions_parse_and_name_what_is_wrong() {
        let on = RetryOn::parse(["5xx", "retriable-status-codes"]).unwrap();
        let on = on.with_statuses(&[409]).unwrap();
        assert!(on.retries_status(500) && on.retries_status(409) && !on.retries_status(404));
        assert_eq!(RetryOn::parse(["none"]).unwrap(), RetryOn::default());
        assert!(RetryOn::parse(["5xx", "sometimes"]).unwrap_err().contains("sometimes"));
        assert!(RetryOn::default().with_statuses(&[600]).is_err());
    }

    #[test]
    fn ejections_grow_per_ejection_up_to_the_cap() {
        let o = defaults().outlier;
        assert_eq!(o.ejection_time(1), Duration::from_secs(1));
        assert_eq!(o.ejection_time(3), Duration::from_secs(3));
        assert_eq!(o.ejection_time(1000), Duration::from_secs(30));
    }

    #[test]
    fn max_ejection_percent_keeps_some_instances_but_always_allows_one() {
        let mut o = defaults().outlier;
        o.max_ejection_percent = 50;
        assert!(o.may_eject(0, 3) && !o.may_eject(1, 3));
        assert!(o.may_eject(1, 4) && !o.may_eject(2, 4));
        o.max_ejection_percent = 0;
        assert!(o.may_eject(0, 1), "one always may");
        o.max_ejection_percent = 100;
        assert!(o.may_eject(2, 3) && !o.may_eject(3, 3));
    }

    #[test]
    fn the_budget_is_a_share_of_what_is_in_flight_with_a_floor() {
        let mut p = defaults();
        assert!(
            p.budget_admits(1, 9) && !p.budget_admits(1, 10),
            "10 retries whatever the share"
        );
        assert!(p.budget_admits(100, 19) && !p.budget_admits(100, 20));
        p.retry_budget = 0;
        assert!(!p.budget_admits(100, 0), "0 switches retries off");
    }

    #[test]
    fn a_file_entry_overrides_only_what_it_names() {
        let d = defaults();
        let o = Overrides {
            retry_on: Some(RetryOn::parse(["5xx"]).unwrap()),
            consecutive_5xx: Some(0),
            base_ejection_time: Some(Duration::from_secs(45)),
            ..Overrides::default()
        };
        let p = o.resolve(&d);
        assert!(p.retry_on.retries_status(500) && !p.retry_on.has(Condition::ConnectFailure));
        assert_eq!(p.outlier.consecutive_5xx, 0);
        assert_eq!(
            p.outlier.max_ejection_time,
            Duration::from_secs(45),
            "the cap follows a longer base"
        );
        assert_eq!(p.lb, d.lb);
        assert_eq!(p.retries, d.retries);
    }
}
