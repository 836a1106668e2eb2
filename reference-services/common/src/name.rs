//! The one rule for a service's name: what the gateway's routes file, the
//! harness's stack file and specs, and a placeholder naming a service
//! (`{url:<service>}`) all accept, so a name one part takes is never
//! refused by another.

use std::fmt;

/// The rule, in words, for error messages.
pub const SERVICE_NAME_RULE: &str = "1 to 64 letters, digits, '-', '_' or '.', starting with a letter or digit";

/// Whether `name` follows [`SERVICE_NAME_RULE`]: what Consul's catalog
/// takes and a DNS name can carry; starting with a letter or digit keeps
/// `.` and `..` (and option-like `-x`) out, since a name becomes a file
/// name and an argument in the harness.
pub fn is_service_name(name: &str) -> bool {
    let mut bytes = name.bytes();
    name.len() <= 64
        && bytes.next().is_some_and(|b| b.is_ascii_alphanumeric())
        && bytes.all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
}

/// `text` made into a name most systems take (a username, a file name):
/// lower-cased, every character but `a-z 0-9 _ . -` turned into `-`,
/// leading dots dropped, at most `max` characters.
pub fn slug(text: &str, max: usize) -> String {
    text.chars()
        .map(|c| c.to_ascii_lowercase())
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-') {
                c
            } else {
                '-'
            }
        })
        .skip_while(|c| *c == '.')
        .take(max)
        .collect()
}

/// A service name that follows [`SERVICE_NAME_RULE`].
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ServiceName(String);

/// A name that does not follow [`SERVICE_NAME_RULE`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0:?} is not a service name: expected {SERVICE_NAME_RULE}")]
pub struct BadServiceName(pub String);

impl ServiceName {
    pub fn parse(name: impl Into<String>) -> Result<Self, BadServiceName> {
        let name = name.into();
        match is_service_name(&name) {
            true => Ok(Self(name)),
            false => Err(BadServiceName(name)),
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for ServiceName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl AsRef<str> for ServiceName {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_slug_is_lower_case_safe_characters_and_bounded() {
        assert_eq!(slug("Order Clerk", 64), "order-clerk");
        assert_eq!(slug("..hidden/x", 64), "hidden-x");
        assert_eq!(slug("abcdef", 3), "abc");
    }

    #[test]
    fn one_rule_for_every_part() {
        for good in ["user", "api.v2", "auth-v2", "a_b", "x", "9lives"] {
            assert!(is_service_name(good), "{good}");
        }
        for bad in ["", ".", "..", "-x", "_x", ".hidden", "a b", "a/b", "ü", &"a".repeat(65)] {
            assert!(!is_service_name(bad), "{bad:?}");
        }
        assert_eq!(ServiceName::parse("api.v2").unwrap().to_string(), "api.v2");
        let e = ServiceName::parse("a b").unwrap_err().to_string();
        assert!(e.contains("\"a b\"") && e.contains(SERVICE_NAME_RULE), "{e}");
    }
}
