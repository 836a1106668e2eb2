//! The edge policy: what the gateway does with the parts of a request that
//! could mean two things to two readers, set in the routes file's `[edge]`
//! table (see [`crate::declared`]) and reloaded with it.
//!
//! The defaults are the safe ones, as Envoy's and nginx's are: an escaped
//! `/` or `\` in a path is refused, header names with underscores are
//! dropped, and no peer is trusted to say who the client was.

use std::net::IpAddr;

use serde::Deserialize;

/// What an escaped `/` (`%2F`) or `\` (`%5C`), or a raw `\`, in a path gets
/// (Envoy's `path_with_escaped_slashes_action`). A service that decodes the
/// path after routing would otherwise see a different path from the one
/// the gateway routed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EscapedSlashes {
    /// 400: the path has no single meaning.
    #[default]
    Reject,
    /// Passed on still escaped, routed as part of its segment (`%2F` never
    /// separates segments): for services that treat it as data.
    Keep,
    /// Decoded to `/` before the path is normalised and routed, so the
    /// service sees the very path the gateway routed.
    Unescape,
}

/// What a request header whose name holds an `_` gets (Envoy's
/// `headers_with_underscores_action`, nginx's `underscores_in_headers`).
/// CGI, WSGI, Rack and PHP read `X_User_Id` and `X-User-Id` both as
/// `HTTP_X_USER_ID`, so one can pass for the other behind a proxy that
/// strips only the dashed spelling.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Underscores {
    /// Removed before the request goes on.
    #[default]
    Drop,
    /// 400, naming the header.
    Reject,
    /// Passed on (identity headers are still removed in any spelling).
    Allow,
}

/// An address block, `10.0.0.0/8` or `::1/128` (a bare address is one
/// address).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cidr {
    addr: IpAddr,
    bits: u8,
}

impl Cidr {
    /// Whether `ip` is in this block (an IPv4-mapped IPv6 address counts as
    /// its IPv4 address).
    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = match ip {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
            v4 => v4,
        };
        match (self.addr, ip) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => {
                masked(u32::from(net).into(), 32, self.bits) == masked(u32::from(ip).into(), 32, self.bits)
            }
            (IpAddr::V6(net), IpAddr::V6(ip)) => {
                masked(u128::from(net), 128, self.bits) == masked(u128::from(ip), 128, self.bits)
            }
            _ => false,
        }
    }
}

/// `value`'s top `bits` of `width`.
fn masked(value: u128, width: u8, bits: u8) -> u128 {
    if bits == 0 {
        return 0;
    }
    value >> (width - bits)
}

impl std::str::FromStr for Cidr {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        let (addr, bits) = match s.split_once('/') {
            Some((addr, bits)) => (addr, Some(bits)),
            None => (s, None),
        };
        let addr: IpAddr = addr.parse().map_err(|_| {
            format!("{s:?} is not an address or address block: expected e.g. \"10.0.0.0/8\" or \"::1\"")
        })?;
        let width = if addr.is_ipv4() { 32 } else { 128 };
        let bits = match bits {
            None => width,
            Some(b) => b
                .parse::<u8>()
                .ok()
                .filter(|b| *b <= width)
                .ok_or_else(|| format!("{s:?} has a prefix length other than 0 to {width}"))?,
        };
        Ok(Self { addr, bits })
    }
}

impl<'de> Deserialize<'de> for Cidr {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        String::deserialize(d)?.parse().map_err(serde::de::Error::custom)
    }
}

/// The whole `[edge]` table.
#[derive(Debug, Clone, PartialEq, Eq, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EdgePolicy {
    #[serde(default)]
    pub escaped_slashes: EscapedSlashes,
    #[serde(default)]
    pub headers_with_underscores: Underscores,
    /// Peers (say, a load balancer in front) whose `X-Forwarded-*`,
    /// `X-Real-IP` and `Forwarded` are kept, as Envoy's
    /// `xff_num_trusted_hops` and nginx's `set_real_ip_from` do; anyone
    /// else's are replaced by what the gateway saw.
    #[serde(default)]
    pub trusted_proxies: Vec<Cidr>,
}

impl EdgePolicy {
    /// Whether a connection from `peer` may vouch for the client.
    pub fn trusts(&self, peer: IpAddr) -> bool {
        self.trusted_proxies.iter().any(|c| c.contains(peer))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn blocks_hold_their_addresses_and_no_others() {
        let net: Cidr = "10.1.0.0/16".parse().unwrap();
        assert!(net.contains(ip("10.1.2.3")));
        assert!(!net.contains(ip("10.2.0.1")));
        assert!(net.contains(ip("::ffff:10.1.0.9")), "IPv4-mapped");
        assert!(!net.contains(ip("::1")));
        let one: Cidr = "127.0.0.1".parse().unwrap();
        assert!(one.contains(ip("127.0.0.1")) && !one.contains(ip("127.0.0.2")));
        let all: Cidr = "0.0.0.0/0".parse().unwrap();
        assert!(all.contains(ip("203.0.113.9")));
        let v6: Cidr = "fd00::/8".parse().unwrap();
        assert!(v6.contains(ip("fd12::1")) && !v6.contains(ip("fe80::1")));
        for bad in ["10.0.0.0/33", "10.0.0/8", "example.com", "::/129", "10.0.0.0/x"] {
            assert!(bad.parse::<Cidr>().is_err(), "{bad}");
        }
    }

    #[test]
    fn nobody_is_trusted_by_default() {
        let p = EdgePolicy::default();
        assert!(!p.trusts(ip("127.0.0.1")));
        assert_eq!(p.escaped_slashes, EscapedSlashes::Reject);
        assert_eq!(p.headers_with_underscores, Underscores::Drop);
    }
}
