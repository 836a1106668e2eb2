//! Consul's DNS interface, over UDP: `<service>.service.consul` answers A
//! records for the instances whose checks are not critical (Consul's
//! default, `only_passing = false`: warning instances are answered too),
//! `<tag>.<service>.service.consul` only those carrying the tag, SRV
//! records with each instance's port and weight, and the RFC 2782 form
//! `_<service>._<tag or tcp>.service.consul`; a datacenter may follow
//! (`web.service.dc1.consul`), and `<node>.node.consul` names the node.
//! As Consul: TTL 0, an unknown or empty service is NXDOMAIN with the SOA,
//! an IP address is an A record, a host name a CNAME, and an SRV target is
//! `<hex ip>.addr.dc1.consul.` with the address in the additional section.
//! Answers past 512 bytes are cut and marked truncated (Consul's UDP rule;
//! it also serves TCP, which the dev registry does not).

use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;

use tokio::net::UdpSocket;

use crate::catalog::{Catalog, Service, Status};
use crate::state::Registry;

/// The variable that turns DNS on: where its UDP socket binds.
pub const DNS_LISTEN_VAR: &str = "GANTRY_DNS_LISTEN";
/// The domain Consul answers for.
const DOMAIN: &str = "consul";
use crate::api::json::DATACENTER;
/// The largest UDP answer without EDNS0 (RFC 1035).
const UDP_MAX: usize = 512;

const TYPE_A: u16 = 1;
const TYPE_CNAME: u16 = 5;
const TYPE_SOA: u16 = 6;
const TYPE_AAAA: u16 = 28;
const TYPE_SRV: u16 = 33;
const TYPE_ANY: u16 = 255;
const CLASS_IN: u16 = 1;

const RCODE_FORMERR: u8 = 1;
const RCODE_NXDOMAIN: u8 = 3;
const RCODE_NOTIMP: u8 = 4;
const RCODE_REFUSED: u8 = 5;

/// Serves DNS on `socket` until the task is dropped.
pub async fn serve(socket: UdpSocket, registry: Arc<Registry>) {
    if let Ok(addr) = socket.local_addr() {
        tracing::info!(%addr, "dev registry serving DNS");
    }
    let mut buf = [0u8; 1500];
    loop {
        let (len, peer) = match socket.recv_from(&mut buf).await {
            Ok(got) => got,
            Err(e) => {
                // ICMP errors of an earlier send surface here on Linux: not fatal.
                tracing::debug!(error = %e, "DNS receive failed");
                continue;
            }
        };
        let Some(reply) = registry.read(|c| answer(&buf[..len], c)) else {
            continue;
        };
        if let Err(e) = socket.send_to(&reply, peer).await {
            tracing::debug!(error = %e, %peer, "DNS reply not sent");
        }
    }
}

/// A question: the name as asked (labels) and its type.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Question {
    labels: Vec<String>,
    qtype: u16,
    qclass: u16,
    /// The question's bytes as asked, echoed in the reply.
    raw: Vec<u8>,
}

/// A record to answer with.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Record {
    A(Ipv4Addr),
    Aaaa(std::net::Ipv6Addr),
    Cname(String),
    Srv { weight: u16, port: u16, target: String },
    Soa,
}

/// The reply to `query`, or `None` when it is not a DNS query at all
/// (too short to carry an id): nothing is sent back.
pub fn answer(query: &[u8], catalog: &Catalog) -> Option<Vec<u8>> {
    if query.len() < 12 {
        return None;
    }
    let id = [query[0], query[1]];
    let flags = u16::from_be_bytes([query[2], query[3]]);
    let opcode = (flags >> 11) & 0xf;
    let rd = flags & 0x0100 != 0;
    let is_query = flags & 0x8000 == 0;
    if !is_query {
        return None;
    }
    let questions = u16::from_be_bytes([query[4], query[5]]);
    let reply = |rcode: u8, question: Option<&Question>, answers: &[(String, Record)], extra: &[(String, Record)]| {
        encode(id, rd, rcode, question, answers, extra)
    };
    if opcode != 0 {
        return Some(reply(RCODE_NOTIMP, None, &[], &[]));
    }
    if questions != 1 {
        return Some(reply(RCODE_FORMERR, None, &[], &[]));
    }
    let Some(q) = parse_question(query) else {
        return Some(reply(RCODE_FORMERR, None, &[], &[]));
    };
    if q.qclass != CLASS_IN && q.qclass != 255 {
        return Some(reply(RCODE_REFUSED, Some(&q), &[], &[]));
    }
    let name = q.labels.join(".");
    let Some(lookup) = Lookup::parse(&q.labels) else {
        // Not ours: the dev registry has no recursors.
        return Some(reply(RCODE_REFUSED, Some(&q), &[], &[]));
    };
    let soa = [(DOMAIN.to_owned(), Record::Soa)];
    match lookup {
        Lookup::Node(node) => {
            if node != crate::api::json::NODE_NAME {
                return Some(reply(RCODE_NXDOMAIN, Some(&q), &[], &soa));
            }
            let answers = match q.qtype {
                TYPE_A | TYPE_ANY => vec![(name, Record::A(Ipv4Addr::LOCALHOST))],
                _ => Vec::new(),
            };
            let extra: &[(String, Record)] = if answers.is_empty() { &soa } else { &[] };
            Some(reply(0, Some(&q), &answers, extra))
        }
        Lookup::Addr(ip) => {
            let answers = match (q.qtype, ip) {
                (TYPE_A | TYPE_ANY, IpAddr::V4(v4)) => vec![(name, Record::A(v4))],
                (TYPE_AAAA | TYPE_ANY, IpAddr::V6(v6)) => vec![(name, Record::Aaaa(v6))],
                _ => Vec::new(),
            };
            Some(reply(0, Some(&q), &answers, &[]))
        }
        Lookup::Service { service, tag } => {
            let found: Vec<&Service> = catalog
                .instances_of(&service)
                .filter(|s| tag.as_ref().is_none_or(|t| s.record.tags.contains(t)))
                .filter(|s| !critical(catalog, s))
                .collect();
            if found.is_empty() {
                return Some(reply(RCODE_NXDOMAIN, Some(&q), &[], &soa));
            }
            let mut answers = Vec::new();
            let mut extra = Vec::new();
            for s in found {
                let address = if s.record.address.is_empty() {
                    "127.0.0.1"
                } else {
                    s.record.address.as_str()
                };
                let ip = address.parse::<IpAddr>().ok();
                if matches!(q.qtype, TYPE_A | TYPE_AAAA | TYPE_ANY) {
                    match (ip, q.qtype) {
                        (Some(IpAddr::V4(v4)), TYPE_A | TYPE_ANY) => answers.push((name.clone(), Record::A(v4))),
                        (Some(IpAddr::V6(v6)), TYPE_AAAA | TYPE_ANY) => {
                            answers.push((name.clone(), Record::Aaaa(v6)));
                        }
                        (None, _) => answers.push((name.clone(), Record::Cname(address.to_owned()))),
                        _ => {}
                    }
                }
                if matches!(q.qtype, TYPE_SRV | TYPE_ANY) {
                    let weight = if warning(catalog, s) {
                        s.extras.weights.warning
                    } else {
                        s.extras.weights.passing
                    };
                    let target = match ip {
                        Some(ip) => addr_name(ip),
                        None => address.to_owned(),
                    };
                    answers.push((
                        name.clone(),
                        Record::Srv {
                            weight: u16::try_from(weight).unwrap_or(u16::MAX),
                            port: s.record.port,
                            target: target.clone(),
                        },
                    ));
                    match ip {
                        Some(IpAddr::V4(v4)) => extra.push((target, Record::A(v4))),
                        Some(IpAddr::V6(v6)) => extra.push((target, Record::Aaaa(v6))),
                        None => {}
                    }
                }
            }
            if answers.is_empty() {
                return Some(reply(0, Some(&q), &[], &soa));
            }
            Some(reply(0, Some(&q), &answers, &extra))
        }
    }
}

fn critical(c: &Catalog, s: &Service) -> bool {
    s.checks
        .iter()
        .chain(c.node_checks())
        .any(|check| check.status == Status::Critical)
}

fn warning(c: &Catalog, s: &Service) -> bool {
    s.checks
        .iter()
        .chain(c.node_checks())
        .any(|check| check.status == Status::Warning)
}

/// `7f000001.addr.dc1.consul`: the name Consul gives an SRV target that is
/// an IP address.
fn addr_name(ip: IpAddr) -> String {
    let hex: String = match ip {
        IpAddr::V4(v4) => v4.octets().iter().map(|b| format!("{b:02x}")).collect(),
        IpAddr::V6(v6) => v6.octets().iter().map(|b| format!("{b:02x}")).collect(),
    };
    format!("{hex}.addr.{DATACENTER}.{DOMAIN}")
}

/// What a name under `.consul` asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Lookup {
    Service { service: String, tag: Option<String> },
    Node(String),
    Addr(IpAddr),
}

impl Lookup {
    fn parse(labels: &[String]) -> Option<Self> {
        let lower: Vec<String> = labels.iter().map(|l| l.to_ascii_lowercase()).collect();
        let mut rest: &[String] = lower.strip_suffix(&[DOMAIN.to_owned()])?;
        // An optional datacenter after the kind.
        if rest.len() >= 2 && rest[rest.len() - 1] == DATACENTER {
            rest = &rest[..rest.len() - 1];
        }
        let (kind, head) = rest.split_last()?;
        match kind.as_str() {
            "service" => match head {
                // RFC 2782: _service._tag (or _tcp/_udp: no tag).
                [service, proto] if service.starts_with('_') && proto.starts_with('_') => {
                    let tag = &proto[1..];
                    Some(Lookup::Service {
                        service: service[1..].to_owned(),
                        tag: (!matches!(tag, "tcp" | "udp")).then(|| tag.to_owned()),
                    })
                }
                [service] => Some(Lookup::Service {
                    service: service.clone(),
                    tag: None,
                }),
                [tag, service] => Some(Lookup::Service {
                    service: service.clone(),
                    tag: Some(tag.clone()),
                }),
                _ => None,
            },
            "node" => match head {
                [node] => Some(Lookup::Node(node.clone())),
                _ => None,
            },
            "addr" => match head {
                [hex] => parse_hex_ip(hex).map(Lookup::Addr),
                _ => None,
            },
            _ => None,
        }
    }
}

fn parse_hex_ip(hex: &str) -> Option<IpAddr> {
    let bytes: Option<Vec<u8>> = (0..hex.len())
        .step_by(2)
        .map(|i| hex.get(i..i + 2).and_then(|b| u8::from_str_radix(b, 16).ok()))
        .collect();
    match bytes?.as_slice() {
        [a, b, c, d] => Some(IpAddr::V4(Ipv4Addr::new(*a, *b, *c, *d))),
        v6 if v6.len() == 16 => {
            let mut o = [0u8; 16];
            o.copy_from_slice(v6);
            Some(IpAddr::V6(o.into()))
        }
        _ => None,
    }
}

/// The one question of a query (after the 12-byte header). Compression is
/// not allowed in a question's name (nothing precedes it to point at).
fn parse_question(msg: &[u8]) -> Option<Question> {
    let mut at = 12;
    let mut labels = Vec::new();
    loop {
        let len = usize::from(*msg.get(at)?);
        at += 1;
        if len == 0 {
            break;
        }
        if len > 63 {
            return None;
        }
        let label = msg.get(at..at + len)?;
        labels.push(String::from_utf8_lossy(label).into_owned());
        at += len;
    }
    let fixed = msg.get(at..at + 4)?;
    let qtype = u16::from_be_bytes([fixed[0], fixed[1]]);
    let qclass = u16::from_be_bytes([fixed[2], fixed[3]]);
    Some(Question {
        labels,
        qtype,
        qclass,
        raw: msg[12..at + 4].to_vec(),
    })
}

fn push_name(out: &mut Vec<u8>, name: &str) {
    for label in name.trim_end_matches('.').split('.').filter(|l| !l.is_empty()) {
        let bytes = &label.as_bytes()[..label.len().min(63)];
        out.push(bytes.len() as u8);
        out.extend_from_slice(bytes);
    }
    out.push(0);
}

fn push_record(out: &mut Vec<u8>, name: &str, record: &Record) {
    push_name(out, name);
    let (rtype, data) = match record {
        Record::A(ip) => (TYPE_A, ip.octets().to_vec()),
        Record::Aaaa(ip) => (TYPE_AAAA, ip.octets().to_vec()),
        Record::Cname(target) => {
            let mut d = Vec::new();
            push_name(&mut d, target);
            (TYPE_CNAME, d)
        }
        Record::Srv { weight, port, target } => {
            let mut d = Vec::new();
            d.extend_from_slice(&1u16.to_be_bytes());
            d.extend_from_slice(&weight.to_be_bytes());
            d.extend_from_slice(&port.to_be_bytes());
            push_name(&mut d, target);
            (TYPE_SRV, d)
        }
        Record::Soa => {
            let mut d = Vec::new();
            push_name(&mut d, &format!("ns.{DOMAIN}"));
            push_name(&mut d, &format!("hostmaster.{DOMAIN}"));
            // serial, refresh, retry, expire, minimum (Consul's defaults).
            for n in [1u32, 3600, 600, 86400, 0] {
                d.extend_from_slice(&n.to_be_bytes());
            }
            (TYPE_SOA, d)
        }
    };
    out.extend_from_slice(&rtype.to_be_bytes());
    out.extend_from_slice(&CLASS_IN.to_be_bytes());
    out.extend_from_slice(&0u32.to_be_bytes()); // TTL 0, as Consul's default
    out.extend_from_slice(&(data.len() as u16).to_be_bytes());
    out.extend_from_slice(&data);
}

/// A reply: the header, the question echoed, then answers and the
/// additional (or, for the SOA, authority) records, cut at 512 bytes.
fn encode(
    id: [u8; 2],
    rd: bool,
    rcode: u8,
    question: Option<&Question>,
    answers: &[(String, Record)],
    extra: &[(String, Record)],
) -> Vec<u8> {
    let mut out = Vec::with_capacity(UDP_MAX);
    out.extend_from_slice(&id);
    // QR, AA, RD as asked, RA off (no recursion).
    let mut flags: u16 = 0x8000 | 0x0400 | u16::from(rcode);
    if rd {
        flags |= 0x0100;
    }
    out.extend_from_slice(&flags.to_be_bytes());
    out.extend_from_slice(&u16::from(question.is_some()).to_be_bytes());
    out.extend_from_slice(&[0; 6]);
    if let Some(q) = question {
        out.extend_from_slice(&q.raw);
    }
    let header_counts = |out: &mut Vec<u8>, an: u16, ns: u16, ar: u16| {
        out[6..8].copy_from_slice(&an.to_be_bytes());
        out[8..10].copy_from_slice(&ns.to_be_bytes());
        out[10..12].copy_from_slice(&ar.to_be_bytes());
    };
    let (mut an, mut ns, mut ar) = (0u16, 0u16, 0u16);
    let mut truncated = false;
    for (name, record) in answers {
        let before = out.len();
        push_record(&mut out, name, record);
        if out.len() > UDP_MAX {
            out.truncate(before);
            truncated = true;
            break;
        }
        an += 1;
    }
    if !truncated {
        for (name, record) in extra {
            let before = out.len();
            push_record(&mut out, name, record);
            if out.len() > UDP_MAX {
                // Additional records are optional: leave them out, no TC.
                out.truncate(before);
                break;
            }
            if matches!(record, Record::Soa) {
                ns += 1;
            } else {
                ar += 1;
            }
        }
    }
    header_counts(&mut out, an, ns, ar);
    if truncated {
        out[2] |= 0x02;
    }
    out
}

#[cfg(test)]
mod tests {
    use gantry_common::registry::ServiceRecord;
    use tokio::time::Instant;

    use super::*;
    use crate::catalog::Extras;

    fn query(name: &str, qtype: u16) -> Vec<u8> {
        let mut q = vec![0xab, 0xcd, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0];
        push_name(&mut q, name);
        q.extend_from_slice(&qtype.to_be_bytes());
        q.extend_from_slice(&CLASS_IN.to_be_bytes());
        q
    }

    fn catalog_with(n: u16) -> Catalog {
        let mut c = Catalog::default();
        for i in 1..=n {
            let record = ServiceRecord {
                id: format!("web-{i}"),
                name: "web".into(),
                address: format!("10.0.{}.{}", i / 256, i % 256),
                port: 8000 + i,
                ..ServiceRecord::default()
            };
            c.register(record, Extras::default(), vec![], true, Instant::now())
                .unwrap();
        }
        c
    }

    #[test]
    fn hostile_or_broken_messages_never_panic() {
        let c = catalog_with(3);
        assert_eq!(answer(&[0; 5], &c), None, "too short to answer");
        let mut rng = fastrand::Rng::with_seed(7);
        for _ in 0..20_000 {
            let len = rng.usize(0..80);
            let mut msg: Vec<u8> = (0..len).map(|_| rng.u8(..)).collect();
            if len > 2 && rng.bool() {
                msg[2] &= 0x7f; // a query, so it is parsed further
            }
            let _ = answer(&msg, &c);
        }
        let mut two_questions = query("web.service.consul", TYPE_A);
        two_questions[5] = 2;
        assert_eq!(answer(&two_questions, &c).unwrap()[3] & 0x0f, RCODE_FORMERR);
        let outside = answer(&query("example.com", TYPE_A), &c).unwrap();
        assert_eq!(outside[3] & 0x0f, RCODE_REFUSED, "no recursion");
    }

    #[test]
    fn an_answer_past_512_bytes_is_cut_and_marked_truncated() {
        let c = catalog_with(100);
        let reply = answer(&query("web.service.consul", TYPE_A), &c).unwrap();
        assert!(reply.len() <= UDP_MAX);
        assert_ne!(reply[2] & 0x02, 0, "TC set");
        let answers = u16::from_be_bytes([reply[6], reply[7]]);
        assert!(answers > 10 && answers < 100, "{answers} answers");
        let few = answer(&query("web.service.consul", TYPE_A), &catalog_with(2)).unwrap();
        assert_eq!(few[2] & 0x02, 0);
        assert_eq!(u16::from_be_bytes([few[6], few[7]]), 2);
    }

    #[test]
    fn names_read_as_consul_reads_them() {
        let parse = |n: &str| Lookup::parse(&n.split('.').map(str::to_owned).collect::<Vec<_>>());
        let service = |s: &str, t: Option<&str>| {
            Some(Lookup::Service {
                service: s.into(),
                tag: t.map(str::to_owned),
            })
        };
        assert_eq!(parse("web.service.consul"), service("web", None));
        assert_eq!(
            parse("Web.Service.DC1.Consul"),
            service("web", None),
            "case-insensitive"
        );
        assert_eq!(parse("v1.web.service.consul"), service("web", Some("v1")));
        assert_eq!(parse("_web._tcp.service.consul"), service("web", None));
        assert_eq!(parse("_web._v1.service.consul"), service("web", Some("v1")));
        assert_eq!(
            parse("7f000001.addr.dc1.consul"),
            Some(Lookup::Addr(IpAddr::V4(Ipv4Addr::LOCALHOST)))
        );
        assert_eq!(parse("gantry-dev.node.consul"), Some(Lookup::Node("gantry-dev".into())));
        assert_eq!(parse("web.service.example.com"), None);
        assert_eq!(parse("consul"), None);
    }
}
