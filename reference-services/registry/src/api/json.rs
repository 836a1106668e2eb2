//! The JSON shapes of Consul's answers: services, checks, the node and its
//! Serf health check.

use std::time::Duration;

use serde_json::{Value, json};

use crate::catalog::{Check, Extras, Service};
use crate::definition::{CheckKind, Target};

/// The node every service of the dev registry lives on.
pub const NODE_NAME: &str = "gantry-dev";
pub const NODE_ID: &str = "00000000-0000-0000-0000-00000000dev0";
pub const DATACENTER: &str = "dc1";

/// A service as `/v1/agent/services` and `/v1/health/service` show it.
pub fn service(s: &Service) -> Value {
    let mut v = json!({
        "ID": s.record.id,
        "Service": s.record.name,
        "Tags": s.record.tags,
        "Address": s.record.address,
        "Meta": s.record.meta,
        "Port": s.record.port,
        "Weights": weights(&s.extras),
        "EnableTagOverride": s.extras.enable_tag_override,
        "Datacenter": DATACENTER,
        "CreateIndex": s.create_index,
        "ModifyIndex": s.modify_index,
    });
    if let Some(tagged) = tagged_addresses(&s.extras) {
        v["TaggedAddresses"] = tagged;
    }
    v
}

pub fn weights(e: &Extras) -> Value {
    json!({"Passing": e.weights.passing, "Warning": e.weights.warning})
}

/// `TaggedAddresses`, left out when there are none (Go's `omitempty`).
pub fn tagged_addresses(e: &Extras) -> Option<Value> {
    (!e.tagged_addresses.is_empty()).then(|| {
        e.tagged_addresses
            .iter()
            .map(|(name, (address, port))| (name.clone(), json!({"Address": address, "Port": port})))
            .collect::<serde_json::Map<_, _>>()
            .into()
    })
}

/// A check as Consul's `HealthCheck`, with its definition: of the service
/// `s`, or of the node when `None`.
pub fn check(s: Option<&Service>, c: &Check) -> Value {
    let spec = &c.spec;
    let mut definition = json!({
        "Interval": "0s",
        "Timeout": "0s",
        "DeregisterCriticalServiceAfter": go_duration(spec.deregister_after.unwrap_or_default()),
    });
    let (interval, timeout) = match &spec.kind {
        CheckKind::Ttl(ttl) => {
            definition["TTL"] = go_duration(*ttl).into();
            (Duration::ZERO, Duration::ZERO)
        }
        CheckKind::Maintenance => (Duration::ZERO, Duration::ZERO),
        CheckKind::Probe(p) => {
            match &p.target {
                Target::Http(h) => {
                    definition["HTTP"] = h.url.clone().into();
                    definition["Method"] = h.method.as_str().into();
                    definition["Body"] = h.body.clone().into();
                    let mut header = serde_json::Map::new();
                    for name in h.headers.keys() {
                        let values: Vec<Value> = h
                            .headers
                            .get_all(name)
                            .iter()
                            .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned().into())
                            .collect();
                        header.insert(name.as_str().to_owned(), Value::Array(values));
                    }
                    definition["Header"] = Value::Object(header);
                }
                Target::Tcp(addr) => definition["TCP"] = addr.clone().into(),
            }
            definition["Interval"] = go_duration(p.interval).into();
            definition["Timeout"] = go_duration(p.timeout).into();
            (p.interval, p.timeout)
        }
    };
    json!({
        "Node": NODE_NAME,
        "CheckID": spec.id,
        "Name": spec.name,
        "Status": c.status,
        "Notes": spec.notes,
        "Output": c.output,
        "ServiceID": s.map_or("", |s| &s.record.id),
        "ServiceName": s.map_or("", |s| &s.record.name),
        "ServiceTags": s.map_or(&[][..], |s| &s.record.tags),
        "Type": spec.kind.type_name(),
        "Interval": if interval.is_zero() { String::new() } else { go_duration(interval) },
        "Timeout": if timeout.is_zero() { String::new() } else { go_duration(timeout) },
        "ExposedPort": 0,
        "Definition": definition,
        "CreateIndex": c.create_index,
        "ModifyIndex": c.modify_index,
    })
}

/// Every check of a service, in registration order.
pub fn checks(s: &Service) -> impl Iterator<Item = Value> + '_ {
    s.checks.iter().map(move |c| check(Some(s), c))
}

pub fn node() -> Value {
    json!({
        "ID": NODE_ID,
        "Node": NODE_NAME,
        "Address": "127.0.0.1",
        "Datacenter": DATACENTER,
        "TaggedAddresses": {"lan": "127.0.0.1", "wan": "127.0.0.1"},
        "Meta": {},
        "CreateIndex": 1,
        "ModifyIndex": 1,
    })
}

/// The node's own check, which Consul lists with the node's services.
pub fn serf_check() -> Value {
    json!({
        "Node": NODE_NAME,
        "CheckID": "serfHealth",
        "Name": "Serf Health Status",
        "Status": "passing",
        "Notes": "",
        "Output": "Agent alive and reachable",
        "ServiceID": "",
        "ServiceName": "",
        "ServiceTags": [],
        "Type": "",
        "Interval": "",
        "Timeout": "",
        "ExposedPort": 0,
        "Definition": {},
        "CreateIndex": 1,
        "ModifyIndex": 1,
    })
}

/// A duration as Go's `time.Duration.String` prints it (`1m30s`, `250ms`,
/// `0s`), which is how Consul writes durations in its answers.
pub fn go_duration(d: Duration) -> String {
    let nanos = d.as_nanos();
    if nanos == 0 {
        return "0s".to_owned();
    }
    let fraction = |value: u128, unit: u128| {
        let whole = value / unit;
        let rest = value % unit;
        if rest == 0 {
            whole.to_string()
        } else {
            let digits = unit.ilog10() as usize;
            let frac = format!("{rest:0digits$}");
            format!("{whole}.{}", frac.trim_end_matches('0'))
        }
    };
    if nanos < 1_000 {
        return format!("{nanos}ns");
    }
    if nanos < 1_000_000 {
        return format!("{}µs", fraction(nanos, 1_000));
    }
    if nanos < 1_000_000_000 {
        return format!("{}ms", fraction(nanos, 1_000_000));
    }
    let secs = d.as_secs();
    let (h, m, s) = (secs / 3600, (secs / 60) % 60, secs % 60);
    let seconds = fraction(
        u128::from(s) * 1_000_000_000 + u128::from(d.subsec_nanos()),
        1_000_000_000,
    );
    match (h, m) {
        (0, 0) => format!("{seconds}s"),
        (0, m) => format!("{m}m{seconds}s"),
        (h, m) => format!("{h}h{m}m{seconds}s"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_print_as_go_prints_them() {
        for (d, text) in [
            (Duration::ZERO, "0s"),
            (Duration::from_nanos(5), "5ns"),
            (Duration::from_micros(1500), "1.5ms"),
            (Duration::from_millis(100), "100ms"),
            (Duration::from_secs(10), "10s"),
            (Duration::from_millis(1500), "1.5s"),
            (Duration::from_secs(90), "1m30s"),
            (Duration::from_secs(3600), "1h0m0s"),
        ] {
            assert_eq!(go_duration(d), text, "{d:?}");
        }
    }
}
