//! The contract between auth (which writes sessions and revocations) and the
//! gateway (which reads them): key names, the cookie, the pub/sub channel.

use serde::{Deserialize, Serialize};

/// The session cookie's name.
pub const COOKIE: &str = "SESSION";
/// Redis channel on which auth announces revoked sessions and tokens.
pub const REVOCATION_CHANNEL: &str = "gantry:revocations";
/// The field of the `session:<id>` hash that holds the JWT.
pub const JWT_FIELD: &str = "jwt";
/// The field of the `session:<id>` hash that holds the user id.
pub const SUB_FIELD: &str = "sub";
/// The field of the `session:<id>` hash that holds the JWT's `jti`.
pub const JTI_FIELD: &str = "jti";
/// The field of the `session:<id>` hash that holds the session's absolute
/// deadline (Unix seconds): set at login, carried over by refresh, so no
/// chain of refreshes keeps a session alive past it.
pub const MAX_EXP_FIELD: &str = "max_exp";
/// Session ids are 256 random bits, base64url: always this long.
pub const ID_LEN: usize = 43;

/// `session:<id>`: a hash with the session's JWT, user id, `jti` and deadline.
pub fn key(id: &str) -> String {
    format!("session:{id}")
}

/// `revoked:<iss>:<jti>`: present while a revoked token would still be valid.
pub fn revoked_key(iss: &str, jti: &str) -> String {
    format!("revoked:{iss}:{jti}")
}

/// A fresh session id (256 bits from the OS).
pub fn new_id() -> String {
    crate::jwt::random_id(32)
}

/// True when `id` has the shape of a session id we issue. Anything else is
/// refused without a Redis round trip.
pub fn is_well_formed(id: &str) -> bool {
    id.len() == ID_LEN && id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// The `SESSION` cookie's value in a `Cookie` header, if any.
pub fn from_cookie_header(header: &str) -> Option<&str> {
    header
        .split(';')
        .map(str::trim)
        .find_map(|pair| pair.strip_prefix(COOKIE)?.strip_prefix('='))
        .map(|v| v.trim_matches('"'))
}

/// Whether one `name=value` pair of a `Cookie` header is the `SESSION` cookie.
pub fn is_session_pair(pair: &str) -> bool {
    pair.trim()
        .strip_prefix(COOKIE)
        .is_some_and(|rest| rest.starts_with('='))
}

/// What auth publishes when a session or token is revoked.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Revocation {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sid: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jti: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub iss: Option<String>,
    /// When the revoked token would have expired anyway (Unix seconds).
    #[serde(default)]
    pub exp: u64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_session_cookie_among_others() {
        assert_eq!(from_cookie_header("a=1; SESSION=abc; b=2"), Some("abc"));
        assert_eq!(from_cookie_header("SESSION=\"abc\""), Some("abc"));
        assert_eq!(from_cookie_header("SESSIONX=abc"), None);
        assert_eq!(from_cookie_header("a=1"), None);
    }

    #[test]
    fn only_our_id_shape_is_well_formed() {
        assert!(is_well_formed(&new_id()));
        assert!(!is_well_formed("short"));
        assert!(!is_well_formed(&"*".repeat(ID_LEN)));
        assert!(!is_well_formed(&"a".repeat(ID_LEN + 1)));
    }
}
