//! The dev registry's state: services, their TTL checks and the Raft-like
//! index that blocking queries wait on. Pure data and rules, no HTTP.

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use serde::Serialize;
use tokio::time::Instant;

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
}

#[derive(Debug, Clone)]
pub struct Check {
    pub id: String,
    pub name: String,
    pub ttl: Duration,
    pub status: Status,
    pub output: String,
    pub deregister_after: Option<Duration>,
    pub expires_at: Instant,
    pub critical_since: Option<Instant>,
    pub create_index: u64,
    pub modify_index: u64,
}

#[derive(Debug, Clone)]
pub struct Service {
    pub id: String,
    pub name: String,
    pub address: String,
    pub port: u16,
    pub tags: Vec<String>,
    pub meta: BTreeMap<String, String>,
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

/// A TTL check as registered.
#[derive(Debug, Clone)]
pub struct CheckSpec {
    pub id: String,
    pub name: String,
    pub ttl: Duration,
    pub status: Status,
    pub deregister_after: Option<Duration>,
}

/// Why a catalog operation was refused; maps onto Consul's status codes.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum CatalogError {
    #[error("Unknown service ID {0:?}. Ensure that the service ID is passed, not the service name.")]
    UnknownService(String),
    #[error("Unknown check ID {0:?}. Ensure that the check ID is passed, not the check name.")]
    UnknownCheck(String),
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
    #[allow(clippy::too_many_arguments)]
    pub fn register(
        &mut self,
        id: String,
        name: String,
        address: String,
        port: u16,
        tags: Vec<String>,
        meta: BTreeMap<String, String>,
        checks: Vec<CheckSpec>,
        now: Instant,
    ) -> Result<(), CatalogError> {
        for c in &checks {
            let expires = later(now, c.ttl).ok_or_else(|| CatalogError::OutOfRange(format!("TTL {:?}", c.ttl)))?;
            // The grace starts at the latest when the TTL runs out.
            if let Some(after) = c.deregister_after
                && later(expires, after).is_none()
            {
                return Err(CatalogError::OutOfRange(format!(
                    "DeregisterCriticalServiceAfter {after:?}"
                )));
            }
        }
        let previous_name = self.services.get(&id).map(|s| s.name.clone());
        let index = self.bump(&name);
        if let Some(old) = previous_name.filter(|old| *old != name) {
            self.bump(&old);
        }
        let create_index = self.services.get(&id).map_or(index, |s| s.create_index);
        let checks = checks
            .into_iter()
            .map(|c| Check {
                id: c.id,
                name: c.name,
                ttl: c.ttl,
                output: String::new(),
                deregister_after: c.deregister_after,
                expires_at: later(now, c.ttl).unwrap_or(now),
                critical_since: (c.status == Status::Critical).then_some(now),
                status: c.status,
                create_index: index,
                modify_index: index,
            })
            .collect();
        self.services.insert(
            id.clone(),
            Service {
                id,
                name,
                address,
                port,
                tags,
                meta,
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
        self.bump(&service.name);
        Ok(())
    }

    /// Sets a check's status; a TTL check's timer restarts with every update.
    pub fn update_check(
        &mut self,
        check_id: &str,
        status: Status,
        output: &str,
        now: Instant,
    ) -> Result<(), CatalogError> {
        let next_index = self.index + 1;
        let (service, check) = self
            .services
            .values_mut()
            .find_map(|s| {
                let i = s.checks.iter().position(|c| c.id == check_id)?;
                Some((s.name.clone(), &mut s.checks[i]))
            })
            .ok_or_else(|| CatalogError::UnknownCheck(check_id.to_owned()))?;
        // Checked at registration; a clock this far on cannot happen, but
        // an overflow must never panic: such a check then never expires.
        check.expires_at = later(now, check.ttl).unwrap_or(check.expires_at);
        // A heartbeat that changes nothing must not wake every watcher.
        if check.status == status && check.output == output {
            return Ok(());
        }
        if check.status != status {
            check.critical_since = (status == Status::Critical).then_some(now);
        }
        check.status = status;
        check.output = output.to_owned();
        check.modify_index = next_index;
        self.bump(&service);
        Ok(())
    }

    /// Expires TTL checks whose time is up and removes services that have
    /// been critical for longer than they asked. Returns whether anything changed.
    pub fn reap(&mut self, now: Instant) -> bool {
        let mut changed_names = Vec::new();
        for service in self.services.values_mut() {
            for check in &mut service.checks {
                if check.status != Status::Critical && now >= check.expires_at {
                    check.status = Status::Critical;
                    check.output = "TTL expired".to_owned();
                    check.critical_since = Some(now);
                    changed_names.push(service.name.clone());
                }
            }
        }
        let doomed: Vec<(String, String)> = self
            .services
            .values()
            .filter(|s| {
                s.checks.iter().any(|c| match (c.deregister_after, c.critical_since) {
                    (Some(after), Some(since)) => later(since, after).is_some_and(|due| now >= due),
                    _ => false,
                })
            })
            .map(|s| (s.id.clone(), s.name.clone()))
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

    /// The instants at which the next TTL expiry or deregistration is due.
    pub fn next_deadline(&self) -> Option<Instant> {
        self.services
            .values()
            .flat_map(|s| &s.checks)
            .filter_map(|c| match (c.status, c.deregister_after, c.critical_since) {
                (Status::Critical, Some(after), Some(since)) => later(since, after),
                (Status::Critical, _, _) => None,
                _ => Some(c.expires_at),
            })
            .min()
    }

    pub fn services(&self) -> impl Iterator<Item = &Service> {
        self.services.values()
    }

    pub fn instances_of<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a Service> + 'a {
        self.services.values().filter(move |s| s.name == name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ttl_check(id: &str, ttl_ms: u64, deregister_ms: Option<u64>) -> CheckSpec {
        CheckSpec {
            id: id.into(),
            name: "ttl".into(),
            ttl: Duration::from_millis(ttl_ms),
            status: Status::Critical,
            deregister_after: deregister_ms.map(Duration::from_millis),
        }
    }

    fn register(c: &mut Catalog, id: &str, name: &str, check: CheckSpec, now: Instant) {
        try_register(c, id, name, check, now).unwrap();
    }

    fn try_register(c: &mut Catalog, id: &str, name: &str, check: CheckSpec, now: Instant) -> Result<(), CatalogError> {
        c.register(
            id.into(),
            name.into(),
            "127.0.0.1".into(),
            1,
            vec![],
            BTreeMap::new(),
            vec![check],
            now,
        )
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
        huge_ttl.ttl = Duration::MAX;
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
