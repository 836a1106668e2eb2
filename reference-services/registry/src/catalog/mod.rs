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

pub mod kv;
pub mod sessions;
pub mod txn;

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

impl CheckSpec {
    /// The check that holds a service or the node in maintenance: critical,
    /// with the operator's reason (or Consul's default words) as its notes.
    fn maintenance(id: String, name: &str, reason: &str, default_reason: &str) -> Self {
        Self {
            id,
            name: name.to_owned(),
            notes: if reason.is_empty() { default_reason } else { reason }.to_owned(),
            kind: CheckKind::Maintenance,
            status: Status::Critical,
            deregister_after: None,
        }
    }
}

impl Check {
    /// A check as registered at `index`, keeping the status and output of
    /// the check it replaces (`kept`), as Consul's agent restores them.
    fn new(spec: CheckSpec, kept: Option<&Check>, index: u64, now: Instant) -> Self {
        let (status, output) = match kept {
            // A maintenance check is critical whatever was there before.
            Some(old) if spec.kind != CheckKind::Maintenance => (old.status, old.output.clone()),
            _ => (spec.status, String::new()),
        };
        Check {
            expires_at: match &spec.kind {
                CheckKind::Ttl(ttl) => Some(later(now, *ttl).unwrap_or(now)),
                CheckKind::Probe(_) | CheckKind::Maintenance => None,
            },
            critical_since: match kept {
                Some(old) if old.status == status => old.critical_since,
                _ => (status == Status::Critical).then_some(now),
            },
            status,
            output,
            spec,
            create_index: index,
            modify_index: index,
        }
    }

    pub fn id(&self) -> &str {
        &self.spec.id
    }

    /// The HTTP or TCP probe the registry runs for this check, with the
    /// generation (its create index) that tells a re-registered check from
    /// the one it replaced.
    pub fn probe(&self) -> Option<(&Probe, u64)> {
        match &self.spec.kind {
            CheckKind::Ttl(_) | CheckKind::Maintenance => None,
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

/// What a registration carries beyond the [`ServiceRecord`] the stack's
/// own client reads: kept and answered as Consul keeps them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Extras {
    pub weights: Weights,
    pub enable_tag_override: bool,
    /// `TaggedAddresses`: a name (`lan_ipv4`, `wan`, …) to an address and port.
    pub tagged_addresses: BTreeMap<String, (String, u16)>,
}

impl Default for Extras {
    fn default() -> Self {
        Self {
            weights: Weights { passing: 1, warning: 1 },
            enable_tag_override: false,
            tagged_addresses: BTreeMap::new(),
        }
    }
}

/// DNS SRV weights by health, as Consul's `Weights` (default 1 and 1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Weights {
    pub passing: u32,
    pub warning: u32,
}

/// A registered instance: the record it was registered with and its checks.
#[derive(Debug, Clone)]
pub struct Service {
    pub record: ServiceRecord,
    pub extras: Extras,
    pub checks: Vec<Check>,
    pub create_index: u64,
    pub modify_index: u64,
}

impl Service {
    /// Whether every one of the service's own checks passes (the node's
    /// checks count too: see [`Catalog::passing`]).
    fn own_checks_pass(&self) -> bool {
        self.checks.iter().all(|c| c.status == Status::Passing)
    }
}

/// The id and name of the check that puts a service in maintenance, as
/// Consul's agent names it.
pub fn maintenance_check_id(service_id: &str) -> String {
    format!("_service_maintenance:{service_id}")
}
/// The id of the check that puts the whole node in maintenance.
pub const NODE_MAINTENANCE_ID: &str = "_node_maintenance";

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
    /// A request that names something the way Consul refuses (with its words).
    #[error("{0}")]
    Invalid(String),
    /// A request that names something not there, in Consul's words.
    #[error("{0}")]
    NotFound(String),
    /// The KV or session operation's precondition did not hold: answered
    /// `false`, not an error, by the KV endpoints; an error in a transaction.
    #[error("{0}")]
    Conflict(String),
}

/// `now + d`, or `None` when that instant cannot be represented.
pub fn later(now: Instant, d: Duration) -> Option<Instant> {
    now.checked_add(d)
}

/// Every service of this agent, its node's own checks, the KV store and
/// the sessions, and the index of the last change: one Raft-like index
/// for all, as Consul's.
#[derive(Debug)]
pub struct Catalog {
    services: BTreeMap<String, Service>,
    /// Checks of the node rather than of a service (a node's maintenance,
    /// a check registered without `ServiceID`): every service on the node
    /// fails when one of them does, as in Consul.
    node_checks: Vec<Check>,
    pub(crate) kv: kv::Store,
    pub(crate) sessions: sessions::Sessions,
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
            node_checks: Vec::new(),
            kv: kv::Store::default(),
            sessions: sessions::Sessions::default(),
            index: 1,
            name_index: HashMap::new(),
        }
    }
}

/// Where a check lives.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Owner {
    Service(String),
    Node,
}

impl Catalog {
    fn bump(&mut self, name: &str) -> u64 {
        self.index += 1;
        self.name_index.insert(name.to_owned(), self.index);
        self.index
    }

    /// A change every service's health reads (a node check): moves every
    /// name's index.
    fn bump_all(&mut self) -> u64 {
        self.index += 1;
        let names: Vec<String> = self.services.values().map(|s| s.record.name.clone()).collect();
        for name in names {
            self.name_index.insert(name, self.index);
        }
        self.index
    }

    fn bump_owner(&mut self, owner: &Owner) -> u64 {
        match owner {
            Owner::Service(name) => self.bump(&name.clone()),
            Owner::Node => self.bump_all(),
        }
    }

    /// The index a write about to happen will stamp.
    fn next_index(&self) -> u64 {
        self.index + 1
    }

    /// The index a query on `name` reports: its last change, never below 1.
    pub fn index_of(&self, name: &str) -> u64 {
        self.name_index.get(name).copied().unwrap_or(1).max(1)
    }

    /// The index of the whole catalog.
    pub fn index(&self) -> u64 {
        self.index
    }

    /// Adds or replaces a service and its checks. A check registered again
    /// under the same id keeps its status and output (Consul's agent
    /// snapshots check state before a registration and restores it), and
    /// checks the body does not name are kept unless `replace_checks`
    /// (`?replace-existing-checks`). Refuses, changing nothing, a TTL or
    /// grace whose deadline cannot be represented (it would overflow
    /// [`Instant`] later, in the reaper).
    pub fn register(
        &mut self,
        record: ServiceRecord,
        extras: Extras,
        checks: Vec<CheckSpec>,
        replace_checks: bool,
        now: Instant,
    ) -> Result<(), CatalogError> {
        for c in &checks {
            validate_deadlines(c, now)?;
        }
        let previous = self.services.remove(&record.id);
        let index = self.bump(&record.name);
        if let Some(old) = previous
            .as_ref()
            .map(|s| &s.record.name)
            .filter(|old| **old != record.name)
        {
            let old = old.clone();
            self.bump(&old);
        }
        let create_index = previous.as_ref().map_or(index, |s| s.create_index);
        let mut old_checks = previous.map(|s| s.checks).unwrap_or_default();
        let mut new_checks: Vec<Check> = checks
            .into_iter()
            .map(|spec| {
                let kept = old_checks
                    .iter()
                    .position(|c| c.id() == spec.id)
                    .map(|i| old_checks.remove(i));
                Check::new(spec, kept.as_ref(), index, now)
            })
            .collect();
        if !replace_checks {
            new_checks.extend(old_checks);
        }
        self.services.insert(
            record.id.clone(),
            Service {
                record,
                extras,
                checks: new_checks,
                create_index,
                modify_index: index,
            },
        );
        self.sessions_follow_checks(now);
        Ok(())
    }

    /// Adds or replaces one check, of the service `service_id` or (with
    /// none) of the node, as `/v1/agent/check/register` does; a check
    /// registered again keeps its status and output.
    pub fn register_check(
        &mut self,
        service_id: Option<&str>,
        spec: CheckSpec,
        now: Instant,
    ) -> Result<(), CatalogError> {
        validate_deadlines(&spec, now)?;
        let owner = match service_id {
            Some(id) => Owner::Service(
                self.services
                    .get(id)
                    .map(|s| s.record.name.clone())
                    .ok_or_else(|| CatalogError::NotFound(format!("ServiceID {id:?} does not exist")))?,
            ),
            None => Owner::Node,
        };
        // A check id is unique on the node: one registered elsewhere moves here.
        let kept = self.take_check(&spec.id);
        let index = self.bump_owner(&owner);
        if let Some((Owner::Service(from), _)) = &kept
            && Owner::Service(from.clone()) != owner
        {
            let from = from.clone();
            self.bump(&from);
        }
        let check = Check::new(spec, kept.as_ref().map(|(_, c)| c), index, now);
        match service_id {
            Some(id) => {
                if let Some(s) = self.services.get_mut(id) {
                    s.checks.push(check);
                    s.modify_index = index;
                }
            }
            None => self.node_checks.push(check),
        }
        self.sessions_follow_checks(now);
        Ok(())
    }

    /// Removes a check wherever it is (`/v1/agent/check/deregister/{id}`).
    pub fn deregister_check(&mut self, check_id: &str, now: Instant) -> Result<(), CatalogError> {
        let (owner, _) = self
            .take_check(check_id)
            .ok_or_else(|| CatalogError::UnknownCheck(check_id.to_owned()))?;
        self.bump_owner(&owner);
        self.sessions_follow_checks(now);
        Ok(())
    }

    /// Removes and returns the check `check_id`, and where it was.
    fn take_check(&mut self, check_id: &str) -> Option<(Owner, Check)> {
        if let Some(i) = self.node_checks.iter().position(|c| c.id() == check_id) {
            return Some((Owner::Node, self.node_checks.remove(i)));
        }
        self.services.values_mut().find_map(|s| {
            let i = s.checks.iter().position(|c| c.id() == check_id)?;
            Some((Owner::Service(s.record.name.clone()), s.checks.remove(i)))
        })
    }

    /// Puts a service in maintenance (a critical check
    /// `_service_maintenance:<id>` carrying `reason`) or takes it out.
    pub fn service_maintenance(
        &mut self,
        service_id: &str,
        enable: bool,
        reason: &str,
        now: Instant,
    ) -> Result<(), CatalogError> {
        if !self.services.contains_key(service_id) {
            return Err(CatalogError::UnknownService(service_id.to_owned()));
        }
        let check_id = maintenance_check_id(service_id);
        let present = self.services[service_id].checks.iter().any(|c| c.id() == check_id);
        match (enable, present) {
            (true, false) => self.register_check(
                Some(service_id),
                CheckSpec::maintenance(
                    check_id,
                    "Service Maintenance Mode",
                    reason,
                    "Maintenance mode is enabled for this service, but no reason was provided. This is a default message.",
                ),
                now,
            ),
            (false, true) => self.deregister_check(&check_id, now),
            // Already as asked: no change, as Consul's agent.
            _ => Ok(()),
        }
    }

    /// Puts the node in maintenance (`_node_maintenance`) or takes it out:
    /// every service on it then fails its health.
    pub fn node_maintenance(&mut self, enable: bool, reason: &str, now: Instant) -> Result<(), CatalogError> {
        let present = self.node_checks.iter().any(|c| c.id() == NODE_MAINTENANCE_ID);
        match (enable, present) {
            (true, false) => self.register_check(
                None,
                CheckSpec::maintenance(
                    NODE_MAINTENANCE_ID.to_owned(),
                    "Node Maintenance Mode",
                    reason,
                    "Maintenance mode is enabled for this node, but no reason was provided. This is a default message.",
                ),
                now,
            ),
            (false, true) => self.deregister_check(NODE_MAINTENANCE_ID, now),
            _ => Ok(()),
        }
    }

    pub fn deregister(&mut self, id: &str, now: Instant) -> Result<(), CatalogError> {
        let service = self
            .services
            .remove(id)
            .ok_or_else(|| CatalogError::UnknownService(id.to_owned()))?;
        self.bump(&service.record.name);
        self.sessions_follow_checks(now);
        Ok(())
    }

    fn find_check(&mut self, check_id: &str) -> Option<(Owner, &mut Check)> {
        if let Some(c) = self.node_checks.iter_mut().find(|c| c.spec.id == check_id) {
            return Some((Owner::Node, c));
        }
        self.services.values_mut().find_map(|s| {
            let i = s.checks.iter().position(|c| c.id() == check_id)?;
            Some((Owner::Service(s.record.name.clone()), &mut s.checks[i]))
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
        let next_index = self.next_index();
        let (owner, check) = self
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
            self.bump_owner(&owner);
            self.sessions_follow_checks(now);
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
        let next_index = self.next_index();
        let Some((owner, check)) = self.find_check(check_id) else {
            return false;
        };
        if check.probe().map(|(_, g)| g) != Some(generation) || !check.set(status, output, now) {
            return false;
        }
        check.modify_index = next_index;
        self.bump_owner(&owner);
        self.sessions_follow_checks(now);
        true
    }

    /// Expires TTL checks whose time is up, removes services that have
    /// been critical for longer than they asked, and invalidates sessions
    /// whose TTL ran out. Returns whether anything changed.
    pub fn reap(&mut self, now: Instant) -> bool {
        let mut changed: Vec<Owner> = Vec::new();
        let expire = |check: &mut Check| {
            let due = check
                .expires_at
                .is_some_and(|expires| check.status != Status::Critical && now >= expires);
            if due {
                check.status = Status::Critical;
                check.output = "TTL expired".to_owned();
                check.critical_since = Some(now);
            }
            due
        };
        for service in self.services.values_mut() {
            for check in &mut service.checks {
                if expire(check) {
                    changed.push(Owner::Service(service.record.name.clone()));
                }
            }
        }
        for check in &mut self.node_checks {
            if expire(check) {
                changed.push(Owner::Node);
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
            changed.push(Owner::Service(name));
        }
        for owner in &changed {
            self.bump_owner(owner);
        }
        let before = self.index;
        self.sessions_follow_checks(now);
        self.expire_sessions(now);
        !changed.is_empty() || self.index != before
    }

    /// The instant at which the next TTL expiry, deregistration or session
    /// expiry is due.
    pub fn next_deadline(&self) -> Option<Instant> {
        let check_deadline = |c: &Check| match (c.status, c.spec.deregister_after, c.critical_since) {
            (Status::Critical, Some(after), Some(since)) => later(since, after),
            (Status::Critical, _, _) => None,
            _ => c.expires_at,
        };
        self.services
            .values()
            .flat_map(|s| &s.checks)
            .chain(&self.node_checks)
            .filter_map(check_deadline)
            .chain(self.sessions.next_expiry())
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

    /// The node's own checks (not of any service).
    pub fn node_checks(&self) -> &[Check] {
        &self.node_checks
    }

    /// Passing when every check of the service and of its node passes, as
    /// `?passing` requires.
    pub fn passing(&self, s: &Service) -> bool {
        s.own_checks_pass() && self.node_checks.iter().all(|c| c.status == Status::Passing)
    }

    /// The status of the check `check_id`, wherever it is.
    pub fn check_status(&self, check_id: &str) -> Option<Status> {
        self.node_checks
            .iter()
            .chain(self.services.values().flat_map(|s| &s.checks))
            .find(|c| c.id() == check_id)
            .map(|c| c.status)
    }

    /// Every check the registry must run itself: `(check id, generation, probe)`.
    pub fn probes(&self) -> impl Iterator<Item = (&str, u64, &Probe)> {
        self.services
            .values()
            .flat_map(|s| &s.checks)
            .chain(&self.node_checks)
            .filter_map(|c| c.probe().map(|(p, g)| (c.id(), g, p)))
    }
}

/// Refuses a check whose TTL or grace sets a deadline past what [`Instant`]
/// can hold.
fn validate_deadlines(c: &CheckSpec, now: Instant) -> Result<(), CatalogError> {
    // The grace starts at the latest when a TTL runs out.
    let grace_from = match &c.kind {
        CheckKind::Ttl(ttl) => later(now, *ttl).ok_or_else(|| CatalogError::OutOfRange(format!("TTL {ttl:?}")))?,
        CheckKind::Probe(_) | CheckKind::Maintenance => now,
    };
    if let Some(after) = c.deregister_after
        && later(grace_from, after).is_none()
    {
        return Err(CatalogError::OutOfRange(format!(
            "DeregisterCriticalServiceAfter {after:?}"
        )));
    }
    Ok(())
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
        c.register(record, Extras::default(), vec![check], true, now)
    }

    #[test]
    fn ttl_checks_start_critical_pass_then_expire() {
        let t0 = Instant::now();
        let mut c = Catalog::default();
        register(&mut c, "u1", "user", ttl_check("service:u1", 1_000, None), t0);
        assert!(!c.passing(c.instances_of("user").next().unwrap()));
        c.update_check("service:u1", Status::Passing, "", t0).unwrap();
        assert!(c.passing(c.instances_of("user").next().unwrap()));
        assert!(!c.reap(t0 + Duration::from_millis(999)));
        assert!(c.reap(t0 + Duration::from_millis(1_000)));
        let s = c.instances_of("user").next().unwrap();
        assert!(!c.passing(s));
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
        assert!(c.passing(c.instances_of("web").next().unwrap()));
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
        assert!(matches!(
            c.deregister("x", Instant::now()),
            Err(CatalogError::UnknownService(_))
        ));
        assert!(matches!(
            c.update_check("x", Status::Passing, "", Instant::now()),
            Err(CatalogError::UnknownCheck(_))
        ));
    }
}
