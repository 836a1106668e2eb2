//! Sessions, as Consul's: a session is tied to health checks and, with a
//! TTL, to its renewals; when a check it names turns critical (or goes),
//! or its TTL runs out, or it is destroyed, it ends, and the KV locks it
//! holds are released (`Behavior = release`) or their keys deleted
//! (`delete`), each key then closed to `acquire` for the session's
//! lock-delay. That is the whole of leader election and `consul lock`.

use std::collections::BTreeMap;
use std::time::Duration;

use tokio::time::Instant;

use super::{Catalog, CatalogError, Status, later};

/// Consul invalidates a TTL session only after twice its TTL
/// (`structs.SessionTTLMultiplier`), to tolerate a late renewal.
pub const TTL_MULTIPLIER: u32 = 2;
/// The bounds Consul puts on a session's TTL (`session_ttl_min` and 24 h).
pub const MIN_TTL: Duration = Duration::from_secs(10);
pub const MAX_TTL: Duration = Duration::from_secs(24 * 3600);
/// Consul's default lock-delay, and the longest it applies (a longer one is
/// kept as asked and applied as 60 s).
pub const DEFAULT_LOCK_DELAY: Duration = Duration::from_secs(15);
pub const MAX_LOCK_DELAY: Duration = Duration::from_secs(60);
/// The node's own health check, which every session names unless told not
/// to; the dev registry's node is always alive, so it always passes.
pub const SERF_CHECK: &str = "serfHealth";

/// What happens to a session's locks when it ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Behavior {
    Release,
    Delete,
}

impl Behavior {
    pub fn as_str(self) -> &'static str {
        match self {
            Behavior::Release => "release",
            Behavior::Delete => "delete",
        }
    }
}

/// A session as asked for: the id is the caller's (a random UUID), so that
/// this module stays free of randomness.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionSpec {
    pub id: String,
    pub name: String,
    pub node: String,
    pub lock_delay: Duration,
    pub behavior: Behavior,
    pub ttl: Option<Duration>,
    /// Node checks by id (`serfHealth` by default).
    pub node_checks: Vec<String>,
    /// Service checks by id.
    pub service_checks: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Session {
    pub spec: SessionSpec,
    pub create_index: u64,
    pub modify_index: u64,
    /// When a TTL session ends unless renewed: TTL × [`TTL_MULTIPLIER`].
    pub expires_at: Option<Instant>,
}

impl Session {
    fn checks(&self) -> impl Iterator<Item = &String> {
        self.spec.node_checks.iter().chain(&self.spec.service_checks)
    }
}

#[derive(Debug, Default)]
pub struct Sessions {
    by_id: BTreeMap<String, Session>,
    /// The last index that created or ended a session (Consul's `sessions`
    /// table index), which the session reads block on.
    index: u64,
}

impl Sessions {
    pub fn index(&self) -> u64 {
        self.index.max(1)
    }

    pub fn get(&self, id: &str) -> Option<&Session> {
        self.by_id.get(id)
    }

    pub fn all(&self) -> impl Iterator<Item = &Session> {
        self.by_id.values()
    }

    pub(super) fn next_expiry(&self) -> Option<Instant> {
        self.by_id.values().filter_map(|s| s.expires_at).min()
    }
}

/// When a TTL session created or renewed at `now` ends.
fn expiry(ttl: Option<Duration>, now: Instant) -> Option<Instant> {
    ttl.and_then(|ttl| later(now, ttl * TTL_MULTIPLIER))
}

/// The session operations, on the catalog: they read checks and end locks.
impl Catalog {
    /// The status of a check a session may name (`serfHealth` always passes).
    fn session_check(&self, id: &str) -> Option<Status> {
        if id == SERF_CHECK {
            return Some(Status::Passing);
        }
        self.check_status(id)
    }

    /// `PUT /v1/session/create`: refused when a check it names is missing
    /// or critical, as Consul refuses it.
    pub fn create_session(&mut self, spec: SessionSpec, now: Instant) -> Result<(), CatalogError> {
        for check in spec.node_checks.iter().chain(&spec.service_checks) {
            match self.session_check(check) {
                None => return Err(CatalogError::Invalid(format!("Missing check '{check}' registration"))),
                Some(Status::Critical) => {
                    return Err(CatalogError::Invalid(format!("Check '{check}' is in critical state")));
                }
                Some(_) => {}
            }
        }
        let index = self.next_index();
        self.index = index;
        self.sessions.index = index;
        let expires_at = expiry(spec.ttl, now);
        self.sessions.by_id.insert(
            spec.id.clone(),
            Session {
                spec,
                create_index: index,
                modify_index: index,
                expires_at,
            },
        );
        Ok(())
    }

    /// `PUT /v1/session/renew/<id>`: restarts its TTL.
    pub fn renew_session(&mut self, id: &str, now: Instant) -> Option<&Session> {
        let s = self.sessions.by_id.get_mut(id)?;
        s.expires_at = expiry(s.spec.ttl, now);
        Some(s)
    }

    /// `PUT /v1/session/destroy/<id>`, and every other way a session ends:
    /// its locks are released or deleted and closed for its lock-delay.
    /// Ending a session that is not there changes nothing.
    pub fn destroy_session(&mut self, id: &str, now: Instant) {
        let Some(session) = self.sessions.by_id.remove(id) else {
            return;
        };
        let index = self.next_index();
        self.index = index;
        self.sessions.index = index;
        let delay = session.spec.lock_delay.min(MAX_LOCK_DELAY);
        let until = (!delay.is_zero()).then(|| later(now, delay)).flatten();
        let delete = session.spec.behavior == Behavior::Delete;
        for key in self.kv.held_by(id) {
            self.kv.session_ended(&key, delete, until, index);
        }
    }

    /// Ends every session a check it names no longer allows (missing or
    /// critical): called after every change to checks.
    pub(super) fn sessions_follow_checks(&mut self, now: Instant) {
        let doomed: Vec<String> = self
            .sessions
            .all()
            .filter(|s| {
                s.checks()
                    .any(|c| matches!(self.session_check(c), None | Some(Status::Critical)))
            })
            .map(|s| s.spec.id.clone())
            .collect();
        for id in doomed {
            self.destroy_session(&id, now);
        }
    }

    /// Ends the TTL sessions not renewed in time, and forgets lock-delays
    /// that are over.
    pub(super) fn expire_sessions(&mut self, now: Instant) {
        let doomed: Vec<String> = self
            .sessions
            .all()
            .filter(|s| s.expires_at.is_some_and(|at| now >= at))
            .map(|s| s.spec.id.clone())
            .collect();
        for id in doomed {
            self.destroy_session(&id, now);
        }
        self.kv.forget_delays(now);
    }
}

#[cfg(test)]
mod tests {
    use super::super::kv::Write;
    use super::*;

    fn spec(id: &str, behavior: Behavior, ttl: Option<u64>) -> SessionSpec {
        SessionSpec {
            id: id.into(),
            name: "lock".into(),
            node: "n".into(),
            lock_delay: Duration::from_secs(15),
            behavior,
            ttl: ttl.map(Duration::from_secs),
            node_checks: vec![SERF_CHECK.into()],
            service_checks: vec![],
        }
    }

    fn w() -> Write {
        Write::default()
    }

    #[test]
    fn one_holder_at_a_time_and_the_lock_index_counts_new_holders() {
        let t0 = Instant::now();
        let mut c = Catalog::default();
        c.create_session(spec("s1", Behavior::Release, None), t0).unwrap();
        c.create_session(spec("s2", Behavior::Release, None), t0).unwrap();
        assert_eq!(c.kv_acquire("lead", w(), "s1", t0), Ok(true));
        assert_eq!(c.kv_acquire("lead", w(), "s2", t0), Ok(false));
        assert_eq!(c.kv_acquire("lead", w(), "s1", t0), Ok(true), "the holder again");
        assert_eq!(c.kv.get("lead").unwrap().lock_index, 1);
        assert_eq!(c.kv_release("lead", w(), "s2"), Ok(false), "not the holder");
        assert_eq!(c.kv_release("lead", w(), "s1"), Ok(true));
        assert_eq!(c.kv.get("lead").unwrap().session, None);
        assert_eq!(
            c.kv_acquire("lead", w(), "s2", t0),
            Ok(true),
            "a release has no lock-delay"
        );
        assert_eq!(c.kv.get("lead").unwrap().lock_index, 2);
        assert!(c.kv_acquire("lead", w(), "nope", t0).is_err());
    }

    #[test]
    fn a_destroyed_session_releases_its_locks_and_they_stay_closed_for_the_lock_delay() {
        let t0 = Instant::now();
        let mut c = Catalog::default();
        c.create_session(spec("s1", Behavior::Release, None), t0).unwrap();
        c.create_session(spec("s2", Behavior::Release, None), t0).unwrap();
        c.kv_acquire("lead", w(), "s1", t0).unwrap();
        c.destroy_session("s1", t0);
        assert_eq!(c.kv.get("lead").unwrap().session, None, "released, not deleted");
        assert_eq!(c.kv_acquire("lead", w(), "s2", t0 + Duration::from_secs(14)), Ok(false));
        assert_eq!(c.kv_acquire("lead", w(), "s2", t0 + Duration::from_secs(15)), Ok(true));
    }

    #[test]
    fn a_delete_session_removes_its_keys() {
        let t0 = Instant::now();
        let mut c = Catalog::default();
        c.create_session(spec("s1", Behavior::Delete, None), t0).unwrap();
        c.kv_acquire("ephemeral", w(), "s1", t0).unwrap();
        c.destroy_session("s1", t0);
        assert!(c.kv.get("ephemeral").is_none());
    }

    #[test]
    fn a_ttl_session_ends_after_twice_its_ttl_unless_renewed() {
        let t0 = Instant::now();
        let mut c = Catalog::default();
        c.create_session(spec("s1", Behavior::Release, Some(10)), t0).unwrap();
        assert_eq!(c.next_deadline(), Some(t0 + Duration::from_secs(20)));
        c.renew_session("s1", t0 + Duration::from_secs(15)).unwrap();
        assert!(!c.reap(t0 + Duration::from_secs(30)));
        assert!(c.sessions.get("s1").is_some());
        assert!(c.reap(t0 + Duration::from_secs(35)));
        assert!(c.sessions.get("s1").is_none());
    }

    #[test]
    fn a_session_ends_when_a_check_it_names_turns_critical() {
        use crate::catalog::{CheckSpec, Extras};
        use crate::definition::CheckKind;
        use gantry_common::registry::ServiceRecord;
        let t0 = Instant::now();
        let mut c = Catalog::default();
        let record = ServiceRecord {
            id: "w1".into(),
            name: "web".into(),
            ..ServiceRecord::default()
        };
        let check = CheckSpec {
            id: "service:w1".into(),
            name: "ttl".into(),
            notes: String::new(),
            kind: CheckKind::Ttl(Duration::from_secs(30)),
            status: Status::Passing,
            deregister_after: None,
        };
        c.register(record, Extras::default(), vec![check], true, t0).unwrap();
        let mut s = spec("s1", Behavior::Release, None);
        s.service_checks = vec!["service:w1".into()];
        c.create_session(s.clone(), t0).unwrap();
        c.kv_acquire("lead", w(), "s1", t0).unwrap();
        c.update_check("service:w1", Status::Critical, "down", t0).unwrap();
        assert!(c.sessions.get("s1").is_none());
        assert_eq!(c.kv.get("lead").unwrap().session, None);
        assert_eq!(
            c.create_session(s, t0),
            Err(CatalogError::Invalid("Check 'service:w1' is in critical state".into()))
        );
    }
}
