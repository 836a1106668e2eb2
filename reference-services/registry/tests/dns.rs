//! The DNS contract, written from Consul's DNS documentation ("Service
//! lookups", RFC 2782 form, tags): a fresh dev registry with DNS on, and
//! real Consul too when `CONSUL_HTTP_ADDR` and `CONSUL_DNS_ADDR` (its UDP
//! DNS address, port 8600 by default) are set. The queries are made and
//! read by a small client here, independent of the registry's own codec.

mod support;

use std::net::{Ipv4Addr, SocketAddr};
use std::time::Duration;

use serde_json::json;
use support::{Registry, TOKEN, unique};
use tokio::net::{TcpListener, UdpSocket};

const A: u16 = 1;
const SRV: u16 = 33;

/// A dev registry with DNS on, and its DNS address.
async fn dev_with_dns() -> (Registry, SocketAddr) {
    let http = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let dns = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let (base, dns_addr) = (
        format!("http://{}", http.local_addr().unwrap()),
        dns.local_addr().unwrap(),
    );
    let options = gantry_registry::Options {
        acl_token: Some(TOKEN.to_owned()),
        ..gantry_registry::Options::default()
    };
    tokio::spawn(gantry_registry::run_with_dns(
        http,
        Some(dns),
        options,
        std::future::pending(),
    ));
    let reg = Registry {
        label: "dev registry".into(),
        base,
        token: Some(TOKEN.into()),
        is_dev: true,
    };
    (reg, dns_addr)
}

async fn targets() -> Vec<(Registry, SocketAddr)> {
    let mut out = vec![dev_with_dns().await];
    if let (Some(consul), Ok(dns)) = (
        support::registries().await.into_iter().find(|r| !r.is_dev),
        std::env::var("CONSUL_DNS_ADDR"),
    ) {
        out.push((consul, dns.parse().expect("CONSUL_DNS_ADDR: host:port")));
    }
    out
}

/// What an answer says: its rcode, A addresses, SRV (port, weight,
/// target), and the A addresses of the additional section.
#[derive(Debug, Default)]
struct Reply {
    rcode: u8,
    a: Vec<Ipv4Addr>,
    srv: Vec<(u16, u16, String)>,
    additional_a: Vec<Ipv4Addr>,
}

fn query(name: &str, qtype: u16) -> Vec<u8> {
    let mut q = vec![0x12, 0x34, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0];
    for label in name.split('.') {
        q.push(label.len() as u8);
        q.extend_from_slice(label.as_bytes());
    }
    q.push(0);
    q.extend_from_slice(&qtype.to_be_bytes());
    q.extend_from_slice(&1u16.to_be_bytes());
    q
}

/// Reads a (possibly compressed) name at `at`; the name and where it ends.
fn name(msg: &[u8], mut at: usize) -> (String, usize) {
    let mut labels = Vec::new();
    let mut end = None;
    loop {
        let len = msg[at];
        if len & 0xc0 == 0xc0 {
            end.get_or_insert(at + 2);
            at = usize::from(u16::from_be_bytes([len & 0x3f, msg[at + 1]]));
            continue;
        }
        if len == 0 {
            return (labels.join("."), end.unwrap_or(at + 1));
        }
        labels.push(String::from_utf8_lossy(&msg[at + 1..at + 1 + usize::from(len)]).into_owned());
        at += 1 + usize::from(len);
    }
}

fn parse(msg: &[u8]) -> Reply {
    let count = |i: usize| usize::from(u16::from_be_bytes([msg[i], msg[i + 1]]));
    let mut reply = Reply {
        rcode: msg[3] & 0x0f,
        ..Reply::default()
    };
    let (_, mut at) = name(msg, 12);
    at += 4;
    let (an, ns, ar) = (count(6), count(8), count(10));
    for i in 0..an + ns + ar {
        let (_, after) = name(msg, at);
        let rtype = u16::from_be_bytes([msg[after], msg[after + 1]]);
        let len = usize::from(u16::from_be_bytes([msg[after + 8], msg[after + 9]]));
        let data = after + 10;
        match rtype {
            A => {
                let ip = Ipv4Addr::new(msg[data], msg[data + 1], msg[data + 2], msg[data + 3]);
                if i < an {
                    reply.a.push(ip);
                } else if i >= an + ns {
                    reply.additional_a.push(ip);
                }
            }
            SRV if i < an => {
                let weight = u16::from_be_bytes([msg[data + 2], msg[data + 3]]);
                let port = u16::from_be_bytes([msg[data + 4], msg[data + 5]]);
                reply.srv.push((port, weight, name(msg, data + 6).0));
            }
            _ => {}
        }
        at = data + len;
    }
    reply.a.sort();
    reply.srv.sort();
    reply.additional_a.sort();
    reply
}

async fn ask(dns: SocketAddr, name: &str, qtype: u16) -> Reply {
    let socket = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    socket.send_to(&query(name, qtype), dns).await.unwrap();
    let mut buf = [0u8; 1500];
    let (len, _) = tokio::time::timeout(Duration::from_secs(5), socket.recv_from(&mut buf))
        .await
        .unwrap_or_else(|_| panic!("no DNS answer from {dns} for {name}"))
        .unwrap();
    parse(&buf[..len])
}

/// `<service>.service.consul` answers the instances whose checks are not
/// critical, `<tag>.<service>…` those with the tag; SRV answers their
/// ports and weights with the addresses in the additional section, in the
/// plain and the RFC 2782 form; an unknown service is NXDOMAIN.
#[tokio::test]
async fn services_resolve_to_their_healthy_instances_by_name_and_tag() {
    for (reg, dns) in targets().await {
        let name = unique("dns");
        for (n, address, tag, status, weight) in [
            (1, "127.0.0.1", "primary", "passing", 10),
            (2, "127.0.0.2", "backup", "passing", 1),
            (3, "127.0.0.3", "primary", "critical", 1),
        ] {
            reg.register(json!({
                "ID": format!("{name}-{n}"), "Name": name, "Address": address, "Port": 9700 + n,
                "Tags": [tag], "Weights": {"Passing": weight, "Warning": 1},
                "Check": {"TTL": "60s", "Status": status},
            }))
            .await;
        }
        let ip = |last: u8| Ipv4Addr::new(127, 0, 0, last);
        let label = &reg.label;
        let all = ask(dns, &format!("{name}.service.consul"), A).await;
        assert_eq!((all.rcode, all.a.clone()), (0, vec![ip(1), ip(2)]), "{label}: {all:?}");
        let tagged = ask(dns, &format!("primary.{name}.service.consul"), A).await;
        assert_eq!(tagged.a, [ip(1)], "{label}: by tag, critical left out: {tagged:?}");
        let in_dc = ask(dns, &format!("{name}.service.dc1.consul"), A).await;
        assert_eq!(in_dc.a, [ip(1), ip(2)], "{label}: with the datacenter");

        let srv = ask(dns, &format!("_{name}._tcp.service.consul"), SRV).await;
        let ports: Vec<(u16, u16)> = srv.srv.iter().map(|(p, w, _)| (*p, *w)).collect();
        assert_eq!(ports, [(9701, 10), (9702, 1)], "{label}: {srv:?}");
        assert_eq!(srv.additional_a, [ip(1), ip(2)], "{label}: the targets' addresses");
        assert!(
            srv.srv.iter().all(|(_, _, t)| t.ends_with(".consul")),
            "{label}: {srv:?}"
        );
        let backup = ask(dns, &format!("_{name}._backup.service.consul"), SRV).await;
        assert_eq!(backup.srv.len(), 1, "{label}: {backup:?}");
        assert_eq!(backup.srv[0].0, 9702);

        let missing = ask(dns, &format!("{name}-nope.service.consul"), A).await;
        assert_eq!(missing.rcode, 3, "{label}: NXDOMAIN: {missing:?}");
        assert!(missing.a.is_empty());
        for n in 1..=3 {
            reg.deregister(&format!("{name}-{n}")).await;
        }
    }
}
