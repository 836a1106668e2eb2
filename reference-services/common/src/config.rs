//! Reading typed configuration from the environment, once, at start.
//!
//! Every service parses its whole configuration before it binds a port, so a
//! bad value stops the process with a message that names the variable, the
//! value it found and what it expected — never a panic deep inside a request.

use std::fmt::Display;
use std::ops::RangeInclusive;
use std::str::FromStr;
use std::time::Duration;

/// A configuration value that could not be used.
#[derive(Debug, thiserror::Error)]
#[error("{var}={value:?} is not valid: expected {expected}")]
pub struct ConfigError {
    /// The environment variable at fault.
    pub var: &'static str,
    /// What it held.
    pub value: String,
    /// What it should have held, for people.
    pub expected: String,
}

impl ConfigError {
    pub fn new(var: &'static str, value: impl Into<String>, expected: impl Into<String>) -> Self {
        Self {
            var,
            value: value.into(),
            expected: expected.into(),
        }
    }
}

/// The raw value of `var`, or `None` when unset or empty.
pub fn raw(var: &'static str) -> Option<String> {
    std::env::var(var).ok().filter(|v| !v.trim().is_empty())
}

/// `var` parsed as `T`, or `default` when unset.
pub fn parse_or<T: FromStr>(var: &'static str, default: T, expected: &str) -> Result<T, ConfigError> {
    match raw(var) {
        None => Ok(default),
        Some(v) => v.trim().parse().map_err(|_| ConfigError::new(var, v, expected)),
    }
}

/// `var` as a whole number within `range`, or `default` when unset; the
/// error names the range.
pub fn number_in<T: FromStr + PartialOrd + Display>(
    var: &'static str,
    default: T,
    range: RangeInclusive<T>,
) -> Result<T, ConfigError> {
    let n = parse_or(var, default, &number_range(&range))?;
    number_within(var, n, &range)
}

fn number_range<T: Display>(range: &RangeInclusive<T>) -> String {
    format!("a whole number from {} to {}", range.start(), range.end())
}

fn number_within<T: PartialOrd + Display>(
    var: &'static str,
    n: T,
    range: &RangeInclusive<T>,
) -> Result<T, ConfigError> {
    if !range.contains(&n) {
        return Err(ConfigError::new(var, n.to_string(), number_range(range)));
    }
    Ok(n)
}

/// `var` as a duration within `range`, or `default` when unset; the error
/// names the range.
pub fn duration_in(
    var: &'static str,
    default: Duration,
    range: RangeInclusive<Duration>,
) -> Result<Duration, ConfigError> {
    duration_within(var, duration_or(var, default)?, &range)
}

/// `d` if it lies in `range`, else the error for `var` that names the range.
pub fn duration_within(
    var: &'static str,
    d: Duration,
    range: &RangeInclusive<Duration>,
) -> Result<Duration, ConfigError> {
    if !range.contains(&d) {
        return Err(ConfigError::new(
            var,
            format_duration(d),
            format!(
                "a duration from {} to {}",
                format_duration(*range.start()),
                format_duration(*range.end())
            ),
        ));
    }
    Ok(d)
}

/// `var` as a string, or `default` when unset.
pub fn string_or(var: &'static str, default: &str) -> String {
    raw(var).unwrap_or_else(|| default.to_owned())
}

/// `var` as a boolean (`true/false/1/0/yes/no`), or `default` when unset.
pub fn bool_or(var: &'static str, default: bool) -> Result<bool, ConfigError> {
    match raw(var) {
        None => Ok(default),
        Some(v) => match v.trim().to_ascii_lowercase().as_str() {
            "1" | "true" | "yes" | "on" => Ok(true),
            "0" | "false" | "no" | "off" => Ok(false),
            _ => Err(ConfigError::new(var, v, "true or false")),
        },
    }
}

/// `var` as a duration (`250ms`, `10s`, `5m`, `1h`, or bare seconds), or `default`.
pub fn duration_or(var: &'static str, default: Duration) -> Result<Duration, ConfigError> {
    match raw(var) {
        None => Ok(default),
        Some(v) => {
            parse_duration(&v).ok_or_else(|| ConfigError::new(var, v, "a duration such as 500ms, 10s, 5m or 1h"))
        }
    }
}

/// Parses the duration forms Consul and Go use (`500ms`, `10s`, `1m`, `2h`);
/// a bare number is seconds.
pub fn parse_duration(text: &str) -> Option<Duration> {
    let text = text.trim();
    let split = text
        .find(|c: char| !c.is_ascii_digit() && c != '.')
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let number: f64 = number.parse().ok()?;
    if !number.is_finite() || number < 0.0 {
        return None;
    }
    let seconds = match unit {
        "" | "s" => number,
        "ms" => number / 1_000.0,
        "us" | "µs" => number / 1_000_000.0,
        "ns" => number / 1_000_000_000.0,
        "m" => number * 60.0,
        "h" => number * 3_600.0,
        _ => return None,
    };
    Duration::try_from_secs_f64(seconds).ok()
}

/// Formats a duration the way Consul accepts it (`10s`, `250ms`).
pub fn format_duration(d: Duration) -> String {
    if d.subsec_millis() == 0 {
        format!("{}s", d.as_secs())
    } else {
        format!("{}ms", d.as_millis())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_parse_like_consul() {
        assert_eq!(parse_duration("10s"), Some(Duration::from_secs(10)));
        assert_eq!(parse_duration("250ms"), Some(Duration::from_millis(250)));
        assert_eq!(parse_duration("1m"), Some(Duration::from_secs(60)));
        assert_eq!(parse_duration("1.5s"), Some(Duration::from_millis(1500)));
        assert_eq!(parse_duration("7"), Some(Duration::from_secs(7)));
        assert_eq!(parse_duration("ten"), None);
        assert_eq!(parse_duration("10 parsecs"), None);
        assert_eq!(parse_duration("-1s"), None);
        assert_eq!(format_duration(Duration::from_secs(3)), "3s");
        assert_eq!(format_duration(Duration::from_millis(1500)), "1500ms");
    }

    #[test]
    fn values_out_of_their_range_name_the_range() {
        let e = number_within("GANTRY_X", 0u32, &(1..=10)).unwrap_err();
        assert_eq!((e.var, e.value.as_str()), ("GANTRY_X", "0"));
        assert!(e.expected.contains("from 1 to 10"), "{e}");
        assert_eq!(number_within("GANTRY_X", 7u32, &(1..=10)).unwrap(), 7);
        assert_eq!(number_in("GANTRY_SURELY_UNSET_IN_TESTS", 5u32, 1..=10).unwrap(), 5);

        let hour = Duration::from_secs(3600);
        let e = duration_within("GANTRY_Y", hour, &(Duration::ZERO..=Duration::from_secs(60))).unwrap_err();
        assert_eq!(e.value, "3600s");
        assert!(e.expected.contains("from 0s to 60s"), "{e}");
        assert_eq!(
            duration_within("GANTRY_Y", hour, &(Duration::ZERO..=hour)).unwrap(),
            hour
        );
    }

    #[test]
    fn config_error_names_the_variable() {
        let e = ConfigError::new("GANTRY_X", "abc", "a port number");
        let text = e.to_string();
        assert!(text.contains("GANTRY_X") && text.contains("abc") && text.contains("a port number"));
    }
}
