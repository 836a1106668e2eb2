//! KV transactions (`/v1/txn`), as Consul's `state/txn.go` runs them:
//! every operation runs, in order, on a copy of the store at one index;
//! if any fails, each failure is reported by its position and nothing is
//! kept; otherwise the copy becomes the store.

use tokio::time::Instant;

use super::Catalog;
use super::kv::{Acquired, Entry, Write};

/// Consul's `maxTxnOps` (since 1.14).
pub const MAX_OPS: usize = 128;

/// One KV operation of a transaction, by Consul's verb.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Op {
    Set { key: String, write: Write },
    Cas { key: String, write: Write, index: u64 },
    Lock { key: String, write: Write, session: String },
    Unlock { key: String, write: Write, session: String },
    Get { key: String },
    GetTree { prefix: String },
    CheckIndex { key: String, index: u64 },
    CheckSession { key: String, session: String },
    CheckNotExists { key: String },
    Delete { key: String },
    DeleteTree { prefix: String },
    DeleteCas { key: String, index: u64 },
}

/// An entry a transaction answers with: reads carry the value, writes only
/// the entry's indexes (Consul answers them with `Value: null`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outcome {
    pub entry: Entry,
    pub with_value: bool,
}

/// A failed operation: its position and Consul's words.
pub type Failure = (usize, String);

impl Catalog {
    /// Runs `ops` all or nothing; their results in order, or every failure.
    pub fn kv_txn(&mut self, ops: &[Op], now: Instant) -> Result<Vec<Outcome>, Vec<Failure>> {
        let index = self.next_index();
        let mut scratch = self.kv.clone();
        let mut outcomes = Vec::new();
        let mut failures = Vec::new();
        for (at, op) in ops.iter().enumerate() {
            let read = |store: &super::kv::Store, key: &str, with_value: bool| {
                store.get(key).map(|e| Outcome {
                    entry: e.clone(),
                    with_value,
                })
            };
            let result: Result<Vec<Outcome>, String> = match op {
                Op::Set { key, write } => {
                    scratch.set(key, write.clone(), None, index);
                    Ok(read(&scratch, key, false).into_iter().collect())
                }
                Op::Cas { key, write, index: cas } => {
                    if scratch.set(key, write.clone(), Some(*cas), index) {
                        Ok(read(&scratch, key, false).into_iter().collect())
                    } else {
                        Err(format!("failed to set key {key:?}, index is stale"))
                    }
                }
                Op::Lock { key, write, session } => {
                    match scratch.acquire(key, write.clone(), session, &self.sessions, now, index) {
                        Ok(Acquired::Yes) => Ok(read(&scratch, key, false).into_iter().collect()),
                        Ok(Acquired::HeldByAnother) => Err(format!("failed to lock key {key:?}, lock is already held")),
                        Ok(Acquired::LockDelay) => Err(format!("failed to lock key {key:?} due to lock delay")),
                        Err(e) => Err(e.to_string()),
                    }
                }
                Op::Unlock { key, write, session } => {
                    match scratch.release(key, write.clone(), session, &self.sessions, index) {
                        Ok(true) => Ok(read(&scratch, key, false).into_iter().collect()),
                        Ok(false) => Err(format!(
                            "failed to unlock key {key:?}, lock isn't held, or is held by another session"
                        )),
                        Err(e) => Err(e.to_string()),
                    }
                }
                Op::Get { key } => read(&scratch, key, true)
                    .map(|o| vec![o])
                    .ok_or_else(|| format!("key {key:?} doesn't exist")),
                Op::GetTree { prefix } => Ok(scratch
                    .list(prefix)
                    .map(|e| Outcome {
                        entry: e.clone(),
                        with_value: true,
                    })
                    .collect()),
                Op::CheckIndex { key, index: want } => match scratch.get(key) {
                    None => Err(format!("failed to check index, key {key:?} doesn't exist")),
                    Some(e) if e.modify_index != *want => Err(format!(
                        "failed index check for key {key:?}, current modify index {} != {want}",
                        e.modify_index
                    )),
                    Some(_) => Ok(read(&scratch, key, false).into_iter().collect()),
                },
                Op::CheckSession { key, session } => match scratch.get(key) {
                    None => Err(format!("failed to check session, key {key:?} doesn't exist")),
                    Some(e) if e.session.as_deref() != Some(session.as_str()) => Err(format!(
                        "failed session check for key {key:?}, current session {:?} != {session:?}",
                        e.session.as_deref().unwrap_or_default()
                    )),
                    Some(_) => Ok(read(&scratch, key, false).into_iter().collect()),
                },
                Op::CheckNotExists { key } => match scratch.get(key) {
                    Some(_) => Err(format!("key {key:?} exists")),
                    None => Ok(Vec::new()),
                },
                Op::Delete { key } => {
                    scratch.delete(key, None, index);
                    Ok(Vec::new())
                }
                Op::DeleteTree { prefix } => {
                    scratch.delete_tree(prefix, index);
                    Ok(Vec::new())
                }
                Op::DeleteCas { key, index: cas } => {
                    if scratch.delete(key, Some(*cas), index) {
                        Ok(Vec::new())
                    } else {
                        Err(format!("failed to delete key {key:?}, index is stale"))
                    }
                }
            };
            match result {
                Ok(mut found) => outcomes.append(&mut found),
                Err(what) => failures.push((at, what)),
            }
        }
        if !failures.is_empty() {
            return Err(failures);
        }
        if scratch.index() != self.kv.index() {
            self.index = index;
        }
        self.kv = scratch;
        Ok(outcomes)
    }
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;

    use super::*;

    fn set(key: &str, value: &str) -> Op {
        Op::Set {
            key: key.into(),
            write: Write {
                value: Bytes::copy_from_slice(value.as_bytes()),
                flags: 0,
            },
        }
    }

    #[test]
    fn all_or_nothing_with_every_failure_named_by_position() {
        let mut c = Catalog::default();
        let before = c.index();
        let failed = c
            .kv_txn(
                &[
                    set("a", "1"),
                    Op::Get { key: "missing".into() },
                    set("b", "2"),
                    Op::CheckNotExists { key: "a".into() },
                ],
                Instant::now(),
            )
            .unwrap_err();
        assert_eq!(
            failed,
            [
                (1, "key \"missing\" doesn't exist".to_owned()),
                (3, "key \"a\" exists".to_owned())
            ]
        );
        assert!(c.kv.get("a").is_none(), "nothing of a failed transaction is kept");
        assert_eq!(c.index(), before);
    }

    #[test]
    fn writes_share_one_index_and_reads_see_earlier_writes() {
        let mut c = Catalog::default();
        let done = c
            .kv_txn(
                &[set("a", "1"), set("b", "2"), Op::Get { key: "a".into() }],
                Instant::now(),
            )
            .unwrap();
        assert_eq!(done.len(), 3);
        assert!(!done[0].with_value && done[2].with_value);
        assert_eq!(done[2].entry.value, "1");
        let index = c.index();
        assert_eq!(c.kv.get("a").unwrap().modify_index, index);
        assert_eq!(c.kv.get("b").unwrap().modify_index, index);
        let read_only = c
            .kv_txn(&[Op::GetTree { prefix: String::new() }], Instant::now())
            .unwrap();
        assert_eq!(read_only.len(), 2);
        assert_eq!(c.index(), index, "a read-only transaction moves no index");
    }
}
