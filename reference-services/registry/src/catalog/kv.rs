//! The KV store, with Consul's index semantics: every entry carries the
//! index that created it and the one that last changed it; a deleted key
//! leaves a tombstone so a blocking read of its prefix still sees the
//! delete move the index; a key held by a session is a lock
//! (`?acquire`/`?release`), and a lock its session lost stays closed for
//! the session's lock-delay. Pure data, as the rest of [`super`]: told `now`.

use std::collections::{BTreeMap, HashMap};
use std::ops::Bound;

use bytes::Bytes;
use tokio::time::Instant;

use super::sessions::Sessions;
use super::{Catalog, CatalogError};

/// How many tombstones are kept before the oldest are dropped; dropping
/// one raises [`Store::reaped_index`], below which no prefix's index falls,
/// so a blocking read may wake for nothing but never misses a delete.
const MAX_TOMBSTONES: usize = 10_000;

/// One key and what it holds, as Consul's `DirEntry`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub key: String,
    pub value: Bytes,
    pub flags: u64,
    /// The session holding the key as a lock.
    pub session: Option<String>,
    /// How many times the lock was acquired by a new holder.
    pub lock_index: u64,
    pub create_index: u64,
    pub modify_index: u64,
}

/// What a write puts in an entry: its value and flags.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Write {
    pub value: Bytes,
    pub flags: u64,
}

#[derive(Debug, Default, Clone)]
pub struct Store {
    entries: BTreeMap<String, Entry>,
    /// Deleted keys and the index that deleted them.
    tombstones: BTreeMap<String, u64>,
    /// The highest index among tombstones dropped for room.
    reaped_index: u64,
    /// The last index that changed the store (Consul's `kvs` table index).
    index: u64,
    /// Keys a session lost, closed to `acquire` until the instant.
    lock_delays: HashMap<String, Instant>,
}

/// The keys under `prefix`, in order.
fn under<'a, T>(map: &'a BTreeMap<String, T>, prefix: &'a str) -> impl Iterator<Item = (&'a String, &'a T)> + 'a {
    map.range::<str, _>((Bound::Included(prefix), Bound::Unbounded))
        .take_while(move |(k, _)| k.starts_with(prefix))
}

impl Store {
    /// The index of the store's last change (deletes included).
    pub fn index(&self) -> u64 {
        self.index
    }

    pub fn get(&self, key: &str) -> Option<&Entry> {
        self.entries.get(key)
    }

    /// Every entry whose key starts with `prefix`, in key order.
    pub fn list<'a>(&'a self, prefix: &'a str) -> impl Iterator<Item = &'a Entry> + 'a {
        under(&self.entries, prefix).map(|(_, e)| e)
    }

    /// The keys under `prefix`; with a `separator`, a key is cut after the
    /// first separator past the prefix and the cut keys are listed once,
    /// as folders (Consul's `?keys&separator=/`).
    pub fn keys(&self, prefix: &str, separator: Option<&str>) -> Vec<String> {
        let mut out: Vec<String> = Vec::new();
        for (key, _) in under(&self.entries, prefix) {
            let listed = match separator.filter(|s| !s.is_empty()) {
                Some(sep) => match key[prefix.len()..].find(sep) {
                    Some(at) => &key[..prefix.len() + at + sep.len()],
                    None => key.as_str(),
                },
                None => key.as_str(),
            };
            // Keys come in order, so a folder's keys are together.
            if out.last().map(String::as_str) != Some(listed) {
                out.push(listed.to_owned());
            }
        }
        out
    }

    /// The index a read of one key answers with: the key's last change,
    /// or, for a key that is not there, the store's.
    pub fn index_of_key(&self, key: &str) -> u64 {
        self.entries.get(key).map_or(self.index, |e| e.modify_index).max(1)
    }

    /// The index a read of a prefix answers with: the last change under it
    /// (deletes included), or the store's when nothing is or was there.
    pub fn index_of_prefix(&self, prefix: &str) -> u64 {
        let live = under(&self.entries, prefix).map(|(_, e)| e.modify_index).max();
        let dead = under(&self.tombstones, prefix).map(|(_, i)| *i).max();
        match live.max(dead) {
            Some(i) => i.max(self.reaped_index).max(1),
            None => self.index.max(1),
        }
    }

    /// Whether `key` is closed to `acquire` at `now` by a lost lock's delay.
    pub(super) fn delayed(&self, key: &str, now: Instant) -> bool {
        self.lock_delays.get(key).is_some_and(|until| now < *until)
    }

    fn bury(&mut self, key: String, index: u64) {
        self.tombstones.insert(key, index);
        while self.tombstones.len() > MAX_TOMBSTONES {
            let Some((oldest, at)) = self
                .tombstones
                .iter()
                .min_by_key(|(_, i)| **i)
                .map(|(k, i)| (k.clone(), *i))
            else {
                break;
            };
            self.tombstones.remove(&oldest);
            self.reaped_index = self.reaped_index.max(at);
        }
    }

    /// Writes `entry` at `index` (an existing key keeps its create index).
    fn put(&mut self, key: &str, write: Write, session: Option<String>, lock_index: u64, index: u64) {
        let create_index = self.entries.get(key).map_or(index, |e| e.create_index);
        self.tombstones.remove(key);
        self.entries.insert(
            key.to_owned(),
            Entry {
                key: key.to_owned(),
                value: write.value,
                flags: write.flags,
                session,
                lock_index,
                create_index,
                modify_index: index,
            },
        );
        self.index = index;
    }

    fn remove(&mut self, key: &str, index: u64) -> bool {
        if self.entries.remove(key).is_none() {
            return false;
        }
        self.bury(key.to_owned(), index);
        self.index = index;
        true
    }

    /// What a session's end does to a key it holds: `delete` removes it,
    /// otherwise the lock is released; either way the key stays closed to
    /// `acquire` for `delay` (Consul's lock-delay).
    pub(super) fn session_ended(&mut self, key: &str, delete: bool, until: Option<Instant>, index: u64) {
        if let Some(until) = until {
            self.lock_delays.insert(key.to_owned(), until);
        }
        if delete {
            self.remove(key, index);
        } else if let Some(e) = self.entries.get_mut(key) {
            e.session = None;
            e.modify_index = index;
            self.index = index;
        }
    }

    /// The keys a session holds.
    pub(super) fn held_by(&self, session: &str) -> Vec<String> {
        self.entries
            .values()
            .filter(|e| e.session.as_deref() == Some(session))
            .map(|e| e.key.clone())
            .collect()
    }

    /// Forgets lock-delays that are over.
    pub(super) fn forget_delays(&mut self, now: Instant) {
        self.lock_delays.retain(|_, until| now < *until);
    }
}

/// A compare-and-set condition: `0` means the key must not exist, any other
/// index that the key's `ModifyIndex` must equal it.
fn cas_holds(entry: Option<&Entry>, cas: Option<u64>) -> bool {
    match (cas, entry) {
        (None, _) => true,
        (Some(0), e) => e.is_none(),
        (Some(i), Some(e)) => e.modify_index == i,
        (Some(_), None) => false,
    }
}

/// Refuses a lock operation naming no session or one that is not there, in
/// Consul's words.
fn known_session(sessions: &Sessions, session: &str) -> Result<(), CatalogError> {
    if session.is_empty() {
        return Err(CatalogError::Invalid("missing session".into()));
    }
    if sessions.get(session).is_none() {
        return Err(CatalogError::Invalid(format!("invalid session {session:?}")));
    }
    Ok(())
}

/// What a lock attempt found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Acquired {
    Yes,
    HeldByAnother,
    LockDelay,
}

/// The writes, each at `index`: the store's own index moves only when
/// something changed (see [`Catalog::on_kv`]).
impl Store {
    pub(super) fn set(&mut self, key: &str, write: Write, cas: Option<u64>, index: u64) -> bool {
        let existing = self.get(key);
        if !cas_holds(existing, cas) {
            return false;
        }
        let session = existing.and_then(|e| e.session.clone());
        if existing.is_some_and(|e| e.value == write.value && e.flags == write.flags && e.lock_index == 0) {
            return true;
        }
        self.put(key, write, session, 0, index);
        true
    }

    pub(super) fn acquire(
        &mut self,
        key: &str,
        write: Write,
        session: &str,
        sessions: &Sessions,
        now: Instant,
        index: u64,
    ) -> Result<Acquired, CatalogError> {
        // Consul looks at the lock-delay before it looks at the session.
        if self.delayed(key, now) {
            return Ok(Acquired::LockDelay);
        }
        known_session(sessions, session)?;
        let lock_index = match self.get(key) {
            Some(e) if e.session.as_deref() == Some(session) => e.lock_index,
            Some(e) if e.session.is_some() => return Ok(Acquired::HeldByAnother),
            Some(e) => e.lock_index + 1,
            None => 1,
        };
        self.put(key, write, Some(session.to_owned()), lock_index, index);
        Ok(Acquired::Yes)
    }

    pub(super) fn release(
        &mut self,
        key: &str,
        write: Write,
        session: &str,
        sessions: &Sessions,
        index: u64,
    ) -> Result<bool, CatalogError> {
        known_session(sessions, session)?;
        let Some(existing) = self.get(key).filter(|e| e.session.as_deref() == Some(session)) else {
            return Ok(false);
        };
        let lock_index = existing.lock_index;
        self.put(key, write, None, lock_index, index);
        Ok(true)
    }

    pub(super) fn delete(&mut self, key: &str, cas: Option<u64>, index: u64) -> bool {
        if let Some(cas) = cas
            && self.get(key).is_some_and(|e| e.modify_index != cas)
        {
            return false;
        }
        self.remove(key, index);
        true
    }

    pub(super) fn delete_tree(&mut self, prefix: &str, index: u64) {
        let keys: Vec<String> = self.list(prefix).map(|e| e.key.clone()).collect();
        for key in keys {
            self.remove(&key, index);
        }
    }
}

/// The KV operations, on the catalog so they share its index.
impl Catalog {
    /// Runs a KV write at the next index; the catalog's index moves only
    /// when the store changed.
    pub(super) fn on_kv<T>(&mut self, op: impl FnOnce(&mut Store, &Sessions, u64) -> T) -> T {
        let index = self.next_index();
        let before = self.kv.index;
        let result = op(&mut self.kv, &self.sessions, index);
        if self.kv.index != before {
            self.index = index;
        }
        result
    }

    /// `PUT /v1/kv/<key>[?cas=]`: whether the condition held. A key held
    /// as a lock keeps its holder; its lock index, as in Consul, does not
    /// survive a plain write (it reads 0 after). Writing exactly what is
    /// there changes nothing and moves no index.
    pub fn kv_set(&mut self, key: &str, write: Write, cas: Option<u64>) -> bool {
        self.on_kv(|kv, _, index| kv.set(key, write, cas, index))
    }

    /// `PUT /v1/kv/<key>?acquire=<session>`: takes the lock for `session`
    /// and writes the value. False when another session holds it or the key
    /// is in its lock-delay; the holder acquiring again just writes (the
    /// lock index moves only for a new holder).
    pub fn kv_acquire(&mut self, key: &str, write: Write, session: &str, now: Instant) -> Result<bool, CatalogError> {
        self.on_kv(|kv, sessions, index| kv.acquire(key, write, session, sessions, now, index))
            .map(|a| a == Acquired::Yes)
    }

    /// `PUT /v1/kv/<key>?release=<session>`: lets the lock go and writes
    /// the value; false unless `session` holds it. No lock-delay follows.
    pub fn kv_release(&mut self, key: &str, write: Write, session: &str) -> Result<bool, CatalogError> {
        self.on_kv(|kv, sessions, index| kv.release(key, write, session, sessions, index))
    }

    /// `DELETE /v1/kv/<key>[?cas=]`: whether the condition held. Deleting
    /// a key that is not there succeeds, with or without `cas`, as in
    /// Consul; a lock on the key does not stop it.
    pub fn kv_delete(&mut self, key: &str, cas: Option<u64>) -> bool {
        self.on_kv(|kv, _, index| kv.delete(key, cas, index))
    }

    /// `DELETE /v1/kv/<prefix>?recurse`: removes every key under `prefix`.
    pub fn kv_delete_tree(&mut self, prefix: &str) {
        self.on_kv(|kv, _, index| kv.delete_tree(prefix, index));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn w(value: &str) -> Write {
        Write {
            value: Bytes::copy_from_slice(value.as_bytes()),
            flags: 0,
        }
    }

    #[test]
    fn entries_carry_their_create_and_modify_index() {
        let mut c = Catalog::default();
        assert!(c.kv_set("a/b", w("1"), None));
        let created = c.kv.get("a/b").unwrap().create_index;
        assert!(c.kv_set("a/b", w("2"), None));
        let e = c.kv.get("a/b").unwrap();
        assert_eq!(e.create_index, created);
        assert!(e.modify_index > created);
        assert_eq!(c.kv.index_of_key("a/b"), e.modify_index);
        assert_eq!(c.index(), e.modify_index, "one index for the catalog and the store");
    }

    #[test]
    fn cas_zero_creates_only_and_cas_n_needs_that_index() {
        let mut c = Catalog::default();
        assert!(c.kv_set("k", w("1"), Some(0)));
        assert!(!c.kv_set("k", w("2"), Some(0)), "cas=0 on an existing key");
        let at = c.kv.get("k").unwrap().modify_index;
        assert!(!c.kv_set("k", w("2"), Some(at + 7)));
        assert!(c.kv_set("k", w("2"), Some(at)));
        assert_eq!(c.kv.get("k").unwrap().value, "2");
        assert!(!c.kv_delete("k", Some(at)), "a stale delete-cas");
        assert!(c.kv_delete("k", Some(c.kv.get("k").unwrap().modify_index)));
        assert!(c.kv.get("k").is_none());
        assert!(c.kv_delete("k", Some(at)), "a delete-cas of a key not there succeeds");
    }

    #[test]
    fn a_delete_moves_its_prefixs_index_but_not_anothers() {
        let mut c = Catalog::default();
        c.kv_set("app/x", w("1"), None);
        c.kv_set("other/y", w("1"), None);
        let app = c.kv.index_of_prefix("app/");
        let other = c.kv.index_of_prefix("other/");
        c.kv_delete("app/x", None);
        assert!(c.kv.index_of_prefix("app/") > app, "the tombstone counts");
        assert_eq!(c.kv.index_of_prefix("other/"), other);
        // A key that is not there reads at the store's index.
        assert_eq!(c.kv.index_of_key("app/x"), c.kv.index);
    }

    #[test]
    fn keys_with_a_separator_list_each_folder_once() {
        let mut c = Catalog::default();
        for k in ["web/a", "web/b/c", "web/b/d", "web/e/f", "weather"] {
            c.kv_set(k, w(""), None);
        }
        assert_eq!(c.kv.keys("web/", Some("/")), ["web/a", "web/b/", "web/e/"]);
        assert_eq!(c.kv.keys("we", Some("/")), ["weather", "web/"]);
        assert_eq!(c.kv.keys("web/", None), ["web/a", "web/b/c", "web/b/d", "web/e/f"]);
        c.kv_delete_tree("web/");
        assert_eq!(c.kv.keys("", None), ["weather"]);
    }

    #[test]
    fn dropped_tombstones_raise_the_floor_of_every_prefix() {
        let mut c = Catalog::default();
        for i in 0..=MAX_TOMBSTONES {
            let key = format!("t/{i}");
            c.kv_set(&key, w(""), None);
            c.kv_delete(&key, None);
        }
        assert_eq!(c.kv.tombstones.len(), MAX_TOMBSTONES);
        assert!(c.kv.reaped_index > 0);
        c.kv_set("u/1", w(""), None);
        assert!(c.kv.index_of_prefix("u/") >= c.kv.reaped_index);
    }
}
