//! One configuration in force: the services with their settings and
//! upstream state, the route table, the JWKS source. Immutable; a reload
//! builds a new one and swaps it in whole (arc-swap), so a request sees one
//! configuration from start to end and never takes a lock to read it.

use crate::config::GatewayConfig;
use crate::declared::Declared;
use crate::edge::EdgePolicy;
use crate::policy::Policy;
use crate::routes::RouteTable;
use crate::upstream::Upstream;
use std::sync::Arc;

/// A service's place in its [`Routing`]'s service list. Services are not a
/// closed set any more, so they are told apart by this index, which only
/// means something with the snapshot it came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ServiceId(pub usize);

/// One service of a configuration.
#[derive(Debug)]
pub struct Service {
    pub name: Arc<str>,
    pub policy: Policy,
    /// Its instances and counters, carried over from the previous snapshot
    /// when the service stays (pools, ejections and counts survive a reload).
    pub upstream: Arc<Upstream>,
}

/// The configuration the request path reads.
#[derive(Debug)]
pub struct Routing {
    pub services: Box<[Service]>,
    pub table: RouteTable,
    /// Where token keys come from, if anywhere.
    pub jwks: Option<ServiceId>,
    /// Some route verifies callers, so readiness waits for the JWKS.
    pub needs_identity: bool,
    /// What ambiguous requests get (the routes file's `[edge]`).
    pub edge: EdgePolicy,
}

impl Routing {
    /// The snapshot for `declared`, with defaults from `cfg`. A service
    /// `previous` also had keeps its [`Upstream`] (the same `Arc`).
    pub fn build(declared: &Declared, cfg: &GatewayConfig, previous: Option<&Routing>) -> Self {
        let services = declared
            .services
            .iter()
            .map(|spec| {
                let kept = previous.and_then(|p| p.by_name(&spec.name));
                Service {
                    name: kept.map_or_else(|| spec.name.as_str().into(), |s| s.name.clone()),
                    policy: spec.policy.resolve(&cfg.policy),
                    upstream: kept.map_or_else(|| Arc::new(Upstream::new(cfg.workers)), |s| s.upstream.clone()),
                }
            })
            .collect();
        Self {
            services,
            table: RouteTable::new(declared),
            jwks: declared.jwks_service.map(ServiceId),
            needs_identity: declared.needs_identity(),
            edge: declared.edge.clone(),
        }
    }

    pub fn service(&self, id: ServiceId) -> &Service {
        &self.services[id.0]
    }

    pub fn by_name(&self, name: &str) -> Option<&Service> {
        self.services.iter().find(|s| *s.name == *name)
    }

    /// Base URLs of the JWKS source's instances (empty when there is none).
    pub fn jwks_urls(&self) -> Vec<String> {
        self.jwks
            .map(|id| self.service(id).upstream.base_urls())
            .unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;
    use crate::policy::LbPolicy;

    fn cfg() -> GatewayConfig {
        let mut cfg = GatewayConfig::from_env().expect("the default config");
        cfg.policy.lb = LbPolicy::RoundRobin;
        cfg.policy.retries = 2;
        cfg
    }

    #[test]
    fn settings_default_to_the_environment_and_files_override_them() {
        let text = "[[services]]\nname = \"a\"\n[[services]]\nname = \"b\"\nlb = \"p2c\"\nretries = 0\n";
        let d = Declared::parse(text, Path::new("t.toml")).unwrap();
        let cfg = cfg();
        let r = Routing::build(&d, &cfg, None);
        assert_eq!(r.services[0].policy.lb, LbPolicy::RoundRobin);
        assert_eq!(r.services[0].policy.retries, 2);
        assert_eq!(r.services[0].policy.request_timeout, cfg.policy.request_timeout);
        assert_eq!(r.services[1].policy.lb, LbPolicy::P2c);
        assert_eq!(r.services[1].policy.retries, 0);
        assert!(r.jwks.is_none() && !r.needs_identity);
    }

    #[test]
    fn a_service_that_stays_keeps_its_upstream_and_a_new_one_starts_afresh() {
        let cfg = cfg();
        let first = Routing::build(&Declared::reference(), &cfg, None);
        let text = "[[services]]\nname = \"user\"\nretries = 1\n[[services]]\nname = \"greeter\"\n";
        let d = Declared::parse(text, Path::new("t.toml")).unwrap();
        let next = Routing::build(&d, &cfg, Some(&first));
        let user_before = &first.by_name("user").unwrap().upstream;
        let user_after = next.by_name("user").unwrap();
        assert!(Arc::ptr_eq(user_before, &user_after.upstream));
        assert_eq!(user_after.policy.retries, 1, "settings come from the new file");
        assert!(next.by_name("auth").is_none());
        assert!(!next.by_name("greeter").unwrap().upstream.snapshot.load().received);
    }
}
