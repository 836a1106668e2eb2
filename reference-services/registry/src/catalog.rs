//! The dev registry's state: services, their checks and the Raft-like
//! index that blocking queries wait on. Pure data and rules: no HTTP, no
//! clock of its own (every operation is told `now`), no tasks. Running the
//! HTTP and TCP checks is [`crate::runner`]'s job; it reports here.

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use gantry_common::registry::ServiceRecord;
use serde::Serialize;
use tokio::time::Instant;

use crate::definition::{CheckKind, Probe};

/// A check's health, with Consul's spelling.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Passing,
    Warning,
    Critical,
}

impl Status {
    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "passing" => Some(Status::Passing),
            "warning" => Some(Status::Warning),
            "critical" => Some(Status::Critical),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Status::Passing => "passing",
            Status::Warning => "warning",
            Status::Critical => "critical",
        }
    }
}

/// A check as registered: what it is and how it starts.
#[derive(Debug, Clone)]
pub struct CheckSpec {
    pub id: String,
    pub name: String,
    pub notes: String,
    pub kind: CheckKind,
    /// The status before the first result (Consul's default is critical).
    pub status: Status,
    pub deregister_after: Option<Duration>,
}

/// A check as held: its spec and its current state.
#[derive(Debug, Clone)]
pub struct Check {
    pub spec: CheckSpec,
    pub status: Status,
    pub output: String,
    /// When a TTL check turns critical unless updated; `None` for checks
    /// the registry runs itself.
    pub expires_at: Option<Instant>,
    pub critical_since: Option<Instant>,
    pub create_index: u64,
    pub modify_index: u64,
}

impl Check {
    pub fn id(&self) -> &str {
        &self.spec.id
    }

    /// The HTTP or TCP probe the registry runs for this check, with the
    /// generation (its create index) that tells a re-registered check from
    /// the one it replaced.
    pub fn probe(&self) -> Option<(&Probe, u64)> {
        match &self.spec.kind {
            CheckKind::Ttl(_) => None,
            CheckKind::Probe(p) => Some((p, self.create_index)),
        }
    }

    /// Sets status and output; whether anything changed.
    fn set(&mut self, status: Status, output: &str, now: Instant) -> bool {
        if self.status == status && self.output == output {
            return false;
        }
        if self.status != status {
            self.critical_since = (status == Status::Critical).then_some(now);
        }
        self.status = status;
        self.output = output.to_owned();
        true
    }
}

/// A registered instance: the record it was registered with and its checks.
#[derive(Debug, Clone)]
pub struct Service {
    pub record: ServiceRecord,
    pub checks: Vec<Check>,
    pub create_index: u64,
    pub modify_index: u64,
}

impl Service {
    /// Passing when every check passes, as `?passing` requires.
    pub fn passing(&self) -> bool {
        self.checks.iter().all(|c| c.status == Status::Passing)
    }
}

/// Why a catalog operation was refused; maps onto Consul's status codes.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum CatalogError {
    #[error("Unknown service ID {0:?}. Ensure that the service ID is passed, not the service name.")]
    UnknownService(String),
    #[error("Unknown check ID {0:?}. Ensure that the check ID is passed, not the check name.")]
    UnknownCheck(String),
    /// Consul refuses TTL updates to a check the agent runs itself.
    #[error("CheckID {0:?} does not have associated TTL")]
    NotTtl(String),
    /// A duration so large that the deadline it sets cannot be represented.
    #[error("Invalid check: {0} is out of range")]
    OutOfRange(String),
}

/// `now + d`, or `None` when that instant cannot be represented.
pub fn later(now: Instant, d: Duration) -> Option<Instant> {
    now.checked_add(d)
}

/// Every service of this agent, and the index of the last change.
#[derive(Debug)]
pub struct Catalog {
    services: BTreeMap<String, Service>,
    /// The index of the last write, like Consul's Raft index; starts at 1.
    index: u64,
    /// The index of the last change to each service name, so a blocking
    /// query on one service does not wake for another's heartbeat.
    name_index: HashMap<String, u64>,
}

impl Default for Catalog {
    fn default() -> Self {
        Self {
            services: BTreeMap::new(),
            index: 1,
            name_index: HashMap::new(),
        }
    }
}

impl Catalog {
    fn bump(&mut self, name: &str) -> u64 {
        self.index += 1;
        self.name_index.insert(name.to_owned(), self.index);
        self.index
    }

    /// The index a query on `name` reports: its last change, never below 1.
    pub fn index_of(&self, name: &str) -> u64 {
        self.name_index.get(name).copied().unwrap_or(1).max(1)
    }

    /// The index of the whole catalog.
    pub fn index(&self) -> u64 {
        self.index
    }

    /// Adds or replaces a service and its checks (`replace-existing-checks`).
    /// Refuses, changing nothing, a TTL or grace whose deadline cannot be
    /// represented (it would overflow [`Instant`] later, in the reaper).
    pub fn register(
        &mut self,
        record: ServiceRecord,
        checks: Vec<CheckSpec>,
        now: Instant,
    ) -> Result<(), CatalogError> {
        for c in &checks {
            // The grace starts at the latest when a TTL runs out.
            let grace_from = match &c.kind {
                CheckKind::Ttl(ttl) => {
                    later(now, *ttl).ok_or_else(|| CatalogError::OutOfRange(format!("TTL {ttl:?}")))?
                }
                CheckKind::Probe(_) => now,
            };
            if let Some(after) = c.deregister_after
                && later(grace_from, after).is_none()
            {
                return Err(CatalogError::OutOfRange(format!(
                    "DeregisterCriticalServiceAfter {after:?}"
                )));
            }
        }
        let previous_name = self.services.get(&record.id).map(|s| s.record.name.clone());
        let index = self.bump(&record.name);
        if let Some(old) = previous_name.filter(|old| *old != record.name) {
            self.bump(&old);
        }
        let create_index = self.services.get(&record.id).map_or(index, |s| s.create_index);
        let checks = checks
            .into_iter()
            .map(|spec| Check {
                expires_at: match &spec.kind {
                    CheckKind::Ttl(ttl) => Some(later(now, *ttl).unwrap_or(now)),
                    CheckKind::Probe(_) => None,
                },
                critical_since: (spec.status == Status::Critical).then_some(now),
                status: spec.status,
                output: String::new(),
                spec,
                create_index: index,
                modify_index: index,
            })
            .collect();
        self.services.insert(
            record.id.clone(),
            Service {
                record,
                checks,
                create_index,
                modify_index: index,
            },
        );
        Ok(())
    }

    pub fn deregister(&mut self, id: &str) -> Result<(), CatalogError> {
        let service = self
            .services
            .remove(id)
            .ok_or_else(|| CatalogError::UnknownService(id.to_owned()))?;
        self.bump(&service.record.name);
        Ok(())
    }

    fn find_check(&mut self, check_id: &str) -> Option<(String, &mut Check)> {
        self.services.values_mut().find_map(|s| {
            let i = s.checks.iter().position(|c| c.id() == check_id)?;
            Some((s.record.name.clone(), &mut s.checks[i]))
        })
    }

    /// Sets a TTL check's status; its timer restarts with every update.
    pub fn update_check(
        &mut self,
        check_id: &str,
        status: Status,
        output: &str,
        now: Instant,
    ) -> Result<(), CatalogError> {
        let next_index = self.index + 1;
        let (service, check) = self
            .find_check(check_id)
            .ok_or_else(|| CatalogError::UnknownCheck(check_id.to_owned()))?;
        let CheckKind::Ttl(ttl) = check.spec.kind else {
            return Err(CatalogError::NotTtl(check_id.to_owned()));
        };
        // Checked at registration; a clock this far on cannot happen, but
        // an overflow must never panic: such a check then never expires.
        check.expires_at = later(now, ttl).or(check.expires_at);
        // A heartbeat that changes nothing must not wake every watcher.
        if check.set(status, output, now) {
            check.modify_index = next_index;
            self.bump(&service);
        }
        Ok(())
    }

    /// Records what the registry's own run of an HTTP or TCP check decided.
    /// `generation` must match the check's (a result from the run of a check
    /// since replaced is dropped). Returns whether anything changed.
    pub fn record_probe(
        &mut self,
        check_id: &str,
        generation: u64,
        status: Status,
        output: &str,
        now: Instant,
    ) -> bool {
        let next_index = self.index + 1;
        let Some((service, check)) = self.find_check(check_id) else {
            return false;
        };
        if check.probe().map(|(_, g)| g) != Some(generation) || !check.set(status, output, now) {
            return false;
        }
        check.modify_index = next_index;
        self.bump(&service);
        true
    }

    /// Expires TTL checks whose time is up and removes services that have
    /// been critical for longer than they asked. Returns whether anything changed.
    pub fn reap(&mut self, now: Instant) -> bool {
        let mut changed_names = Vec::new();
        for service in self.services.values_mut() {
            for check in &mut service.checks {
                if let Some(expires) = check.expires_at
                    && check.status != Status::Critical
                    && now >= expires
                {
                    check.status = Status::Critical;
                    check.output = "TTL expired".to_owned();
                    check.critical_since = Some(now);
                    changed_names.push(service.record.name.clone());
                }
            }
        }
        let doomed: Vec<(String, String)> = self
            .services
            .values()
            .filter(|s| {
                s.checks
                    .iter()
                    .any(|c| match (c.spec.deregister_after, c.critical_since) {
                        (Some(after), Some(since)) => later(since, after).is_some_and(|due| now >= due),
                        _ => false,
                    })
            })
            .map(|s| (s.record.id.clone(), s.record.name.clone()))
            .collect();
        for (id, name) in doomed {
            self.services.remove(&id);
            changed_names.push(name);
        }
        for name in &changed_names {
            self.bump(name);
        }
        !changed_names.is_empty()
    }

    /// The instant at which the next TTL expiry or deregistration is due.
    pub fn next_deadline(&self) -> Option<Instant> {
        self.services
            .values()
            .flat_map(|s| &s.checks)
            .filter_map(|c| match (c.status, c.spec.deregister_after, c.critical_since) {
                (Status::Critical, Some(after), Some(since)) => later(since, after),
                (Status::Critical, _, _) => None,
                _ => c.expires_at,
            })
            .min()
    }

    pub fn services(&self) -> impl Iterator<Item = &Service> {
        self.services.values()
    }

    pub fn service(&self, id: &str) -> Option<&Service> {
        self.services.get(id)
    }

    pub fn instances_of<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a Service> + 'a {
        self.services.values().filter(move |s| s.record.name == name)
    }

    /// Every check the registry must run itself: `(check id, generation, probe)`.
    pub fn probes(&self) -> impl Iterator<Item = (&str, u64, &Probe)> {
        self.services
            .values()
            .flat_map(|s| &s.checks)
            .filter_map(|c| c.probe().map(|(p, g)| (c.id(), g, p)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ttl_check(id: &str, ttl_ms: u64, deregister_ms: Option<u64>) -> CheckSpec {
        CheckSpec {
            id: id.into(),
            name: "ttl".into(),
            notes: String::new(),
            kind: CheckKind::Ttl(Duration::from_millis(ttl_ms)),
            status: Status::Critical,
            deregister_after: deregister_ms.map(Duration::from_millis),
        }
    }

    fn register(c: &mut Catalog, id: &str, name: &str, check: CheckSpec, now: Instant) {
        try_register(c, id, name, check, now).unwrap();
    }

    fn try_register(c: &mut Catalog, id: &str, name: &str, check: CheckSpec, now: Instant) -> Result<(), CatalogError> {
        let record = ServiceRecord {
            id: id.into(),
            name: name.into(),
            address: "127.0.0.1".into(),
            port: 1,
            ..ServiceRecord::default()
        };
        c.register(record, vec![check], now)
    }

    #[test]
    fn ttl_checks_start_critical_pass_then_expire() {
        let t0 = Instant::now();
        let mut c = Catalog::default();
        register(&mut c, "u1", "user", ttl_check("service:u1", 1_000, None), t0);
        assert!(!c.instances_of("user").next().unwrap().passing());
        c.update_check("service:u1", Status::Passing, "", t0).unwrap();
        assert!(c.instances_of("user").next().unwrap().passing());
        assert!(!c.reap(t0 + Duration::from_millis(999)));
        assert!(c.reap(t0 + Duration::from_millis(1_000)));
        let s = c.instances_of("user").next().unwrap();
        assert!(!s.passing());
        assert_eq!(s.checks[0].output, "TTL expired");
    }

    #[test]
    fn critical_services_are_deregistered_after_their_grace() {
        let t0 = Instant::now();
        let mut c = Catalog::default();
        register(&mut c, "u1", "user", ttl_check("service:u1", 100, Some(500)), t0);
        c.update_check("service:u1", Status::Passing, "", t0).unwrap();
        c.reap(t0 + Duration::from_millis(100));
        assert_eq!(c.instances_of("user").count(), 1);
        assert!(c.reap(t0 + Duration::from_millis(600)));
        assert_eq!(c.instances_of("user").count(), 0);
    }

    #[test]
    fn index_moves_on_change_only_and_per_name() {
        let t0 = Instant::now();
        let mut c = Catalog::default();
        register(&mut c, "u1", "user", ttl_check("service:u1", 1_000, None), t0);
        register(&mut c, "a1", "auth", ttl_check("service:a1", 1_000, None), t0);
        let user_index = c.index_of("user");
        c.update_check("service:a1", Status::Passing, "", t0).unwrap();
        assert_eq!(
            c.index_of("user"),
            user_index,
            "auth's change must not move user's index"
        );
        c.update_check("service:u1", Status::Passing, "", t0).unwrap();
        let after_pass = c.index_of("user");
        assert!(after_pass > user_index);
        c.update_check("service:u1", Status::Passing, "", t0).unwrap();
        assert_eq!(
            c.index_of("user"),
            after_pass,
            "a heartbeat that changes nothing keeps the index"
        );
        assert!(c.index_of("nothing") >= 1);
    }

    #[test]
    fn durations_whose_deadline_overflows_are_refused_and_change_nothing() {
        let t0 = Instant::now();
        let mut c = Catalog::default();
        let index = c.index();
        let mut huge_ttl = ttl_check("service:u1", 1_000, None);
        huge_ttl.kind = CheckKind::Ttl(Duration::MAX);
        assert!(matches!(
            try_register(&mut c, "u1", "user", huge_ttl, t0),
            Err(CatalogError::OutOfRange(_))
        ));
        let mut huge_grace = ttl_check("service:u1", 1_000, None);
        huge_grace.deregister_after = Some(Duration::MAX);
        assert!(matches!(
            try_register(&mut c, "u1", "user", huge_grace, t0),
            Err(CatalogError::OutOfRange(_))
        ));
        assert_eq!(c.services().count(), 0);
        assert_eq!(c.index(), index, "a refused registration is not a change");
        // A grace that fits is reaped as usual.
        register(&mut c, "u2", "user", ttl_check("service:u2", 100, Some(100)), t0);
        assert_eq!(c.next_deadline(), Some(t0 + Duration::from_millis(100)));
        assert!(!c.reap(t0 + Duration::from_millis(99)));
        assert!(c.reap(t0 + Duration::from_millis(100)));
        assert_eq!(c.services().count(), 0);
    }

    fn tcp_check(id: &str, deregister_ms: Option<u64>) -> CheckSpec {
        use crate::definition::{Target, Thresholds};
        CheckSpec {
            id: id.into(),
            name: "tcp".into(),
            notes: String::new(),
            kind: CheckKind::Probe(Probe {
                target: Target::Tcp("127.0.0.1:1".into()),
                interval: Duration::from_millis(100),
                timeout: Duration::from_secs(1),
                thresholds: Thresholds::default(),
            }),
            status: Status::Critical,
            deregister_after: deregister_ms.map(Duration::from_millis),
        }
    }

    #[test]
    fn probe_results_count_only_for_the_registration_that_ran_them() {
        let t0 = Instant::now();
        let mut c = Catalog::default();
        register(&mut c, "w1", "web", tcp_check("service:w1", None), t0);
        let (_, first, _) = c
            .probes()
            .next()
            .map(|(id, g, p)| (id.to_owned(), g, p.clone()))
            .unwrap();
        register(&mut c, "w1", "web", tcp_check("service:w1", None), t0);
        let (_, second, _) = c
            .probes()
            .next()
            .map(|(id, g, p)| (id.to_owned(), g, p.clone()))
            .unwrap();
        assert_ne!(first, second, "a registration starts a new generation");
        let index = c.index();
        assert!(!c.record_probe("service:w1", first, Status::Passing, "old", t0));
        assert_eq!(c.index(), index, "a replaced check's result changes nothing");
        assert!(c.record_probe("service:w1", second, Status::Passing, "ok", t0));
        assert!(c.instances_of("web").next().unwrap().passing());
        assert!(
            !c.record_probe("service:w1", second, Status::Passing, "ok", t0),
            "the same result again is no change"
        );
        assert_eq!(
            c.update_check("service:w1", Status::Passing, "", t0),
            Err(CatalogError::NotTtl("service:w1".into())),
            "a check the registry runs takes no TTL updates"
        );
    }

    #[test]
    fn a_probe_check_critical_past_its_grace_removes_the_service() {
        let t0 = Instant::now();
        let mut c = Catalog::default();
        register(&mut c, "w1", "web", tcp_check("service:w1", Some(500)), t0);
        let generation = c.probes().next().unwrap().1;
        c.record_probe("service:w1", generation, Status::Passing, "ok", t0);
        assert_eq!(c.next_deadline(), None, "a passing probe check sets no deadline");
        let t1 = t0 + Duration::from_millis(100);
        c.record_probe("service:w1", generation, Status::Critical, "refused", t1);
        assert_eq!(c.next_deadline(), Some(t1 + Duration::from_millis(500)));
        assert!(!c.reap(t1 + Duration::from_millis(499)));
        assert!(c.reap(t1 + Duration::from_millis(500)));
        assert_eq!(c.probes().count(), 0);
    }

    #[test]
    fn unknown_ids_are_errors() {
        let mut c = Catalog::default();
        assert!(matches!(c.deregister("x"), Err(CatalogError::UnknownService(_))));
        assert!(matches!(
            c.update_check("x", Status::Passing, "", Instant::now()),
            Err(CatalogError::UnknownCheck(_))
        ));
    }
}
