//! W3C Trace Context (`traceparent`, <https://www.w3.org/TR/trace-context/>):
//! the one header that lets a failed request be followed across every hop's
//! log. Each hop keeps the caller's trace-id and sends its own span as the
//! parent-id of the next request; a hop that receives none (or one that does
//! not parse) starts a new trace rather than pass garbage on.

use http::{HeaderMap, HeaderName, HeaderValue};

pub static TRACEPARENT: HeaderName = HeaderName::from_static("traceparent");
/// Vendor data that travels with a valid `traceparent`; dropped with a
/// malformed one (the spec lets a hop that restarts the trace drop it).
pub static TRACESTATE: HeaderName = HeaderName::from_static("tracestate");

/// The version this implementation writes (and the only one whose exact
/// length it enforces).
const VERSION: u8 = 0;
/// `00-` + 32 + `-` + 16 + `-` + 2.
const LEN: usize = 55;
/// The `sampled` flag: set on traces this code starts, since every hop logs
/// every request's trace-id (the trace is recorded, in the logs).
pub const SAMPLED: u8 = 0x01;

/// A parsed `traceparent`: whose trace, which span sent it, its flags.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TraceParent {
    pub trace_id: [u8; 16],
    pub parent_id: [u8; 8],
    pub flags: u8,
}

impl TraceParent {
    /// Parses a header value by the spec's rules: lowercase hex only, no
    /// all-zero ids, version `ff` invalid, version 00 exactly 55 bytes; a
    /// later version may carry more after a `-`, which is ignored.
    pub fn parse(value: &[u8]) -> Option<Self> {
        if value.len() < LEN {
            return None;
        }
        let version = hex_byte(&value[0..2])?;
        if version == 0xff || (version == VERSION && value.len() != LEN) {
            return None;
        }
        if value.len() > LEN && value[LEN] != b'-' {
            return None;
        }
        if value[2] != b'-' || value[35] != b'-' || value[52] != b'-' {
            return None;
        }
        let mut trace_id = [0u8; 16];
        for (i, b) in trace_id.iter_mut().enumerate() {
            *b = hex_byte(&value[3 + 2 * i..5 + 2 * i])?;
        }
        let mut parent_id = [0u8; 8];
        for (i, b) in parent_id.iter_mut().enumerate() {
            *b = hex_byte(&value[36 + 2 * i..38 + 2 * i])?;
        }
        let flags = hex_byte(&value[53..55])?;
        if trace_id == [0; 16] || parent_id == [0; 8] {
            return None;
        }
        Some(Self {
            trace_id,
            parent_id,
            flags,
        })
    }

    /// The `traceparent` of `headers`, if there is exactly one and it is
    /// valid (two copies are as bad as a malformed one: the spec says so).
    pub fn from_headers(headers: &HeaderMap) -> Option<Self> {
        let mut all = headers.get_all(&TRACEPARENT).iter();
        let first = all.next()?;
        if all.next().is_some() {
            return None;
        }
        Self::parse(first.as_bytes())
    }

    /// A new trace, as a hop that received none starts it.
    pub fn new_root() -> Self {
        Self {
            trace_id: nonzero(),
            parent_id: nonzero(),
            flags: SAMPLED,
        }
    }

    /// The same trace with a new span of this hop as the parent-id: what
    /// goes on the request to the next hop.
    pub fn child(&self) -> Self {
        Self {
            parent_id: nonzero(),
            ..*self
        }
    }

    /// The trace-id as 32 lowercase hex digits, as logs print it.
    pub fn trace_id_hex(&self) -> String {
        hex(&self.trace_id)
    }

    /// The header value, always in version 00 form.
    pub fn to_header(&self) -> HeaderValue {
        let mut out = [0u8; LEN];
        out[..3].copy_from_slice(b"00-");
        write_hex(&self.trace_id, &mut out[3..35]);
        out[35] = b'-';
        write_hex(&self.parent_id, &mut out[36..52]);
        out[52] = b'-';
        write_hex(&[self.flags], &mut out[53..55]);
        HeaderValue::from_bytes(&out).expect("hex digits and dashes are a valid header value")
    }
}

impl std::fmt::Display for TraceParent {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.to_header().to_str().unwrap_or_default())
    }
}

/// The trace a request continues at this hop: the caller's trace-id with
/// this hop's own span as the parent-id, or a new trace when the caller sent
/// none or a malformed one (which is never passed on). One mechanism for the
/// gateway and any service that calls another.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Hop {
    /// What goes to the next hop: the trace-id, and this hop's span as parent-id.
    pub next: TraceParent,
    /// False when this is a new trace, so the caller's `tracestate` (vendor
    /// data of a trace that does not go on) must not be passed on either.
    pub continued: bool,
}

impl Hop {
    /// The hop for a request that arrived with `headers`.
    pub fn of(headers: &HeaderMap) -> Self {
        match TraceParent::from_headers(headers) {
            Some(incoming) => Self {
                next: incoming.child(),
                continued: true,
            },
            None => Self {
                next: TraceParent::new_root(),
                continued: false,
            },
        }
    }

    /// Sets `headers` up for the next hop: this hop's `traceparent`, and no
    /// `tracestate` when the trace was restarted.
    pub fn apply(&self, headers: &mut HeaderMap) {
        if !self.continued {
            headers.remove(&TRACESTATE);
        }
        headers.insert(TRACEPARENT.clone(), self.next.to_header());
    }
}

/// [`Hop::of`] then [`Hop::apply`] on the same headers; returns what was set.
pub fn propagate(headers: &mut HeaderMap) -> TraceParent {
    let hop = Hop::of(headers);
    hop.apply(headers);
    hop.next
}

const HEX: &[u8; 16] = b"0123456789abcdef";

fn write_hex(bytes: &[u8], out: &mut [u8]) {
    for (i, b) in bytes.iter().enumerate() {
        out[2 * i] = HEX[usize::from(b >> 4)];
        out[2 * i + 1] = HEX[usize::from(b & 15)];
    }
}

fn hex(bytes: &[u8]) -> String {
    let mut out = vec![0u8; bytes.len() * 2];
    write_hex(bytes, &mut out);
    String::from_utf8(out).expect("hex digits are UTF-8")
}

/// One byte from two lowercase hex digits (uppercase is invalid in a
/// `traceparent`).
fn hex_byte(two: &[u8]) -> Option<u8> {
    let digit = |c: u8| match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        _ => None,
    };
    Some(digit(two[0])? << 4 | digit(two[1])?)
}

/// Random bytes that are not all zero (an all-zero id is invalid). Ids
/// must be unique, not secret: the thread-local generator will do.
fn nonzero<const N: usize>() -> [u8; N] {
    loop {
        let mut out = [0u8; N];
        fastrand::fill(&mut out);
        if out != [0u8; N] {
            return out;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const VALID: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

    #[test]
    fn the_specs_example_parses_and_prints_back() {
        let t = TraceParent::parse(VALID.as_bytes()).expect("valid");
        assert_eq!(t.trace_id_hex(), "4bf92f3577b34da6a3ce929d0e0e4736");
        assert_eq!(t.flags, 1);
        assert_eq!(t.to_header(), VALID);
        assert_eq!(t.to_string(), VALID);
    }

    #[test]
    fn malformed_values_are_refused() {
        for bad in [
            "",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7",
            "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
            "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
            "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-",
            "00_4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e473g-00f067aa0ba902b7-01",
            "0x-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01x",
        ] {
            assert_eq!(TraceParent::parse(bad.as_bytes()), None, "{bad:?}");
        }
    }

    #[test]
    fn a_later_version_is_read_by_its_version_00_prefix() {
        let later = "01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-what-comes-next";
        let t = TraceParent::parse(later.as_bytes()).expect("a later version is read");
        assert_eq!(t.to_header(), VALID, "and forwarded as version 00");
    }

    #[test]
    fn a_valid_traceparent_is_continued_with_a_new_parent_id() {
        let mut h = HeaderMap::new();
        h.insert(&TRACEPARENT, HeaderValue::from_static(VALID));
        h.insert(&TRACESTATE, HeaderValue::from_static("vendor=1"));
        let incoming = TraceParent::parse(VALID.as_bytes()).unwrap();
        let sent = propagate(&mut h);
        assert_eq!(sent.trace_id, incoming.trace_id);
        assert_ne!(sent.parent_id, incoming.parent_id);
        assert_eq!(sent.flags, incoming.flags);
        assert_eq!(h[&TRACEPARENT], sent.to_header());
        assert_eq!(h[&TRACESTATE], "vendor=1", "tracestate travels with a valid trace");
        assert_eq!(TraceParent::parse(h[&TRACEPARENT].as_bytes()), Some(sent));
    }

    #[test]
    fn a_missing_malformed_or_doubled_traceparent_starts_a_new_trace() {
        let doubled = {
            let mut h = HeaderMap::new();
            h.append(&TRACEPARENT, HeaderValue::from_static(VALID));
            h.append(&TRACEPARENT, HeaderValue::from_static(VALID));
            h
        };
        let malformed = {
            let mut h = HeaderMap::new();
            h.insert(&TRACEPARENT, HeaderValue::from_static("00-zz-yy-01"));
            h.insert(&TRACESTATE, HeaderValue::from_static("vendor=1"));
            h
        };
        for mut h in [HeaderMap::new(), doubled, malformed] {
            let sent = propagate(&mut h);
            assert_ne!(sent.trace_id_hex(), "4bf92f3577b34da6a3ce929d0e0e4736");
            assert_eq!(sent.flags, SAMPLED);
            assert_eq!(h.get_all(&TRACEPARENT).iter().count(), 1, "exactly one goes on");
            let forwarded = TraceParent::parse(h[&TRACEPARENT].as_bytes()).expect("what goes on is valid");
            assert_eq!(forwarded, sent);
            assert!(!h.contains_key(&TRACESTATE), "a restarted trace drops tracestate");
        }
        assert_ne!(TraceParent::new_root().trace_id, TraceParent::new_root().trace_id);
    }
}
