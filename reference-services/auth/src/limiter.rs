//! Login throttling, counted in Redis before any password is checked.
//!
//! Two counts limit guessing:
//!
//! - per **username and client address**: [`AuthConfig::max_failures`]
//!   attempts, then each further one waits for a lockout that doubles from
//!   [`AuthConfig::first_lockout`] up to [`MAX_LOCKOUT`]. An attacker's
//!   guesses lock out the attacker's address only, never the owner's.
//! - per **username** over all addresses: [`AuthConfig::account_max_failures`]
//!   in a fixed [`FAILURE_WINDOW`], against guessing spread over many addresses.
//!
//! An attempt is counted (and a lockout it triggers is set) atomically, in
//! one Lua script, *before* the password is hashed, so a burst of concurrent
//! guesses gets exactly the allowed number evaluated and the rest are
//! refused without costing a hash. A successful login gives its attempt back
//! and clears its address's count; so does one that could not be evaluated
//! because the hashing queue was full.
//!
//! [`AuthConfig::max_failures`]: crate::config::AuthConfig::max_failures
//! [`AuthConfig::first_lockout`]: crate::config::AuthConfig::first_lockout
//! [`AuthConfig::account_max_failures`]: crate::config::AuthConfig::account_max_failures

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use axum::extract::{ConnectInfo, FromRequestParts};
use axum::http::HeaderMap;
use axum::http::request::Parts;
use gantry_common::store::Store;

use crate::config::{FAILURE_WINDOW, MAX_LOCKOUT};

/// The client address used when neither the gateway nor the connection says.
pub const UNKNOWN_CLIENT: &str = "unknown";

/// The address a login comes from, as a key part: the rightmost
/// `X-Forwarded-For` entry, which the gateway appends from the TCP peer it
/// saw (entries to its left are whatever the client claimed, so they are
/// never used); without one, the TCP peer; else [`UNKNOWN_CLIENT`].
///
/// Auth must only be reachable through the gateway: a client that can reach
/// it directly can write the rightmost entry itself, and then only the
/// per-account ceiling limits it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientAddr(pub String);

impl<S: Send + Sync> FromRequestParts<S> for ClientAddr {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        let peer = parts
            .extensions
            .get::<ConnectInfo<SocketAddr>>()
            .map(|ConnectInfo(addr)| addr.ip());
        Ok(client_addr(&parts.headers, peer))
    }
}

/// See [`ClientAddr`].
pub fn client_addr(headers: &HeaderMap, peer: Option<IpAddr>) -> ClientAddr {
    // Several X-Forwarded-For lines read as one list, in order (RFC 9110 §5.3).
    let forwarded = headers
        .get_all("x-forwarded-for")
        .iter()
        .next_back()
        .map(|v| v.to_str().map(|s| s.rsplit(',').next().unwrap_or("").trim()));
    let ip = match forwarded {
        Some(Ok(last)) => parse_ip(last).or(peer),
        // Present but not text: not written by the gateway; trust the peer.
        Some(Err(_)) | None => peer,
    };
    ClientAddr(ip.map_or_else(|| UNKNOWN_CLIENT.to_owned(), key_of))
}

fn parse_ip(text: &str) -> Option<IpAddr> {
    let text = text.trim();
    text.parse::<IpAddr>()
        .ok()
        .or_else(|| text.parse::<SocketAddr>().ok().map(|s| s.ip()))
}

/// An address as a key: IPv4 as is, IPv6 by its /64 (one host is usually
/// given a whole /64, so counting single IPv6 addresses would let it rotate
/// through billions of them).
fn key_of(ip: IpAddr) -> String {
    match ip {
        IpAddr::V4(v4) => v4.to_string(),
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => v4.to_string(),
            None => {
                let s = v6.segments();
                format!("{:x}:{:x}:{:x}:{:x}::/64", s[0], s[1], s[2], s[3])
            }
        },
    }
}

fn pair_key(name: &str, addr: &ClientAddr) -> String {
    format!("auth:failures:{name}:{}", addr.0)
}

fn lockout_key(name: &str, addr: &ClientAddr) -> String {
    format!("auth:lockout:{name}:{}", addr.0)
}

fn account_key(name: &str) -> String {
    format!("auth:account-failures:{name}")
}

/// KEYS: the pair's count, the pair's lockout, the account's count.
/// ARGV: per-pair maximum, per-account maximum, window (ms), first lockout
/// (ms), longest lockout (ms). Returns `{1, n}` when admitted as the pair's
/// n-th attempt, `{0, ms}` when refused for another `ms`.
const ADMIT: &str = r"
local wait = redis.call('PTTL', KEYS[2])
if wait > 0 then return {0, wait} end
local account = tonumber(redis.call('GET', KEYS[3]) or '0')
if account >= tonumber(ARGV[2]) then
  local left = redis.call('PTTL', KEYS[3])
  if left <= 0 then left = tonumber(ARGV[3]) end
  return {0, left}
end
local n = redis.call('INCR', KEYS[1])
redis.call('PEXPIRE', KEYS[1], ARGV[3])
redis.call('INCR', KEYS[3])
if redis.call('PTTL', KEYS[3]) < 0 then redis.call('PEXPIRE', KEYS[3], ARGV[3]) end
local max = tonumber(ARGV[1])
if n >= max then
  local lockout = math.min(tonumber(ARGV[4]) * 2 ^ math.min(n - max, 40), tonumber(ARGV[5]))
  redis.call('SET', KEYS[2], '1', 'PX', string.format('%d', math.max(lockout, 1)))
end
return {1, n}
";

/// KEYS as for [`ADMIT`]. ARGV[1] is `success` (the pair's count is
/// cleared) or `refund` (the attempt is taken back). Either way the lockout
/// the attempt may have set goes, and the account's count gives it back. A
/// count taken back to zero is deleted, so attempts that were never
/// evaluated (a flood answered 503) leave no keys behind in Redis.
const RELEASE: &str = r"
local function give_back(key)
  if tonumber(redis.call('GET', key) or '0') > 1 then
    redis.call('DECR', key)
  else
    redis.call('DEL', key)
  end
end
if ARGV[1] == 'success' then
  redis.call('DEL', KEYS[1])
else
  give_back(KEYS[1])
end
redis.call('DEL', KEYS[2])
give_back(KEYS[3])
return 1
";

/// The limits, as configured.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub max_failures: u32,
    pub account_max_failures: u32,
    pub first_lockout: Duration,
}

/// What [`admit`] decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admission {
    /// Go ahead and check the password.
    Admitted,
    /// Refused for this long; the password is not looked at.
    Refused(Duration),
}

fn script(source: &str, name: &str, addr: &ClientAddr) -> redis::Cmd {
    let mut cmd = redis::cmd("EVAL");
    cmd.arg(source)
        .arg(3)
        .arg(pair_key(name, addr))
        .arg(lockout_key(name, addr))
        .arg(account_key(name));
    cmd
}

/// Counts an attempt to log in as `name` from `addr`, unless it is refused.
pub async fn admit(store: &Store, limits: Limits, name: &str, addr: &ClientAddr) -> redis::RedisResult<Admission> {
    let mut cmd = script(ADMIT, name, addr);
    cmd.arg(limits.max_failures)
        .arg(limits.account_max_failures)
        .arg(FAILURE_WINDOW.as_millis() as u64)
        .arg(limits.first_lockout.as_millis().max(1) as u64)
        .arg(MAX_LOCKOUT.as_millis() as u64);
    let (admitted, n): (i64, i64) = store.run(&cmd).await?;
    Ok(if admitted == 1 {
        Admission::Admitted
    } else {
        Admission::Refused(Duration::from_millis(n.max(1) as u64))
    })
}

/// The attempt succeeded: clear the address's count and give the attempt
/// back to the account.
pub async fn succeeded(store: &Store, name: &str, addr: &ClientAddr) -> redis::RedisResult<()> {
    let mut cmd = script(RELEASE, name, addr);
    cmd.arg("success");
    store.run::<i64>(&cmd).await.map(drop)
}

/// The attempt was admitted but never evaluated: take it back.
pub async fn refund(store: &Store, name: &str, addr: &ClientAddr) -> redis::RedisResult<()> {
    let mut cmd = script(RELEASE, name, addr);
    cmd.arg("refund");
    store.run::<i64>(&cmd).await.map(drop)
}

#[cfg(test)]
mod tests {
    use std::net::Ipv4Addr;

    use axum::http::HeaderValue;
    use futures_util::FutureExt;

    use super::*;

    fn xff(values: &[&str]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for v in values {
            h.append("x-forwarded-for", HeaderValue::from_str(v).unwrap());
        }
        h
    }

    const PEER: Option<IpAddr> = Some(IpAddr::V4(Ipv4Addr::new(10, 9, 8, 7)));

    #[test]
    fn the_rightmost_forwarded_entry_is_the_client() {
        // What a client claimed is on the left; the gateway appended the peer.
        let h = xff(&["1.2.3.4, 6.6.6.6, 192.0.2.10"]);
        assert_eq!(client_addr(&h, PEER).0, "192.0.2.10");
        // Over several lines, the last line's last entry.
        let h = xff(&["1.2.3.4", "5.6.7.8, 192.0.2.11"]);
        assert_eq!(client_addr(&h, PEER).0, "192.0.2.11");
    }

    #[test]
    fn without_a_usable_forwarded_entry_the_peer_then_unknown() {
        assert_eq!(client_addr(&HeaderMap::new(), PEER).0, "10.9.8.7");
        assert_eq!(client_addr(&xff(&["1.2.3.4, garbage"]), PEER).0, "10.9.8.7");
        assert_eq!(client_addr(&xff(&["1.2.3.4, "]), PEER).0, "10.9.8.7");
        assert_eq!(client_addr(&HeaderMap::new(), None).0, UNKNOWN_CLIENT);
        let mut h = HeaderMap::new();
        h.insert("x-forwarded-for", HeaderValue::from_bytes(b"\xff").unwrap());
        assert_eq!(client_addr(&h, PEER).0, "10.9.8.7");
    }

    #[test]
    fn addresses_become_safe_keys() {
        // IPv6 counts by /64; IPv4-mapped IPv6 as IPv4; ports dropped.
        let a = client_addr(&xff(&["2001:db8:1:2:aaaa::1"]), None).0;
        let b = client_addr(&xff(&["2001:db8:1:2:bbbb::2"]), None).0;
        assert_eq!(a, "2001:db8:1:2::/64");
        assert_eq!(a, b);
        assert_eq!(client_addr(&xff(&["::ffff:192.0.2.1"]), None).0, "192.0.2.1");
        assert_eq!(client_addr(&xff(&["192.0.2.1:4711"]), None).0, "192.0.2.1");
        assert_eq!(client_addr(&xff(&["[2001:db8::1]:4711"]), None).0, "2001:db8:0:0::/64");
    }

    #[test]
    fn the_peer_from_connect_info_is_used() {
        let (mut parts, ()) = axum::http::Request::new(()).into_parts();
        parts
            .extensions
            .insert(ConnectInfo(SocketAddr::from(([198, 51, 100, 1], 5000))));
        let addr = ClientAddr::from_request_parts(&mut parts, &())
            .now_or_never()
            .expect("the extractor never waits");
        assert_eq!(addr.unwrap().0, "198.51.100.1");
    }
}
