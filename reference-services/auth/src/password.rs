//! Password hashing with Argon2id (m = 19 MiB, t = 2, p = 1: OWASP's first
//! recommendation). Hashing runs on the blocking pool: it is meant to be slow.
//!
//! Every hash costs 19 MiB and a core for its duration, so hashes go through
//! a [`HashGate`]: as many at once as there are cores, a short queue behind
//! them, and [`Busy`] (503) beyond it. Without the gate a flood of logins
//! fills the blocking pool's 512 threads and the memory they need.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use argon2::password_hash::{Output, ParamsString, PasswordHash, SaltString};
use argon2::{Algorithm, Argon2, Block, Params, Version};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// Argon2 memory cost in KiB: 19 MiB.
const M_COST: u32 = 19 * 1024;

fn params() -> Params {
    Params::new(M_COST, 2, 1, None).expect("constant Argon2 parameters are valid")
}

/// A stored hash asking for more than this many times our memory cost is
/// not ours: it never matches, rather than allocating what it asks for.
const MAX_COST_FACTOR: usize = 8;

/// Argon2's working memory for one hash (19 MiB), kept and reused.
///
/// Allocated and freed per hash, this memory is left to the allocator, and
/// glibc keeps freed blocks of this size in its per-thread arenas (its mmap
/// threshold adapts upwards after the first free): two hashing slots held
/// 370 MiB after a few login floods instead of 40. Reusing one buffer per
/// slot makes the bound exact: slots × 19 MiB.
#[derive(Default)]
pub struct Memory(Vec<Block>);

impl Memory {
    fn blocks(&mut self, count: usize) -> &mut [Block] {
        if self.0.len() < count {
            self.0.resize(count, Block::default());
        }
        &mut self.0[..count]
    }
}

/// A PHC string for `password`, computed in `memory`.
pub fn hash_in(password: &str, memory: &mut Memory) -> String {
    let mut salt = [0u8; 16];
    getrandom::fill(&mut salt).expect("the operating system's random source failed");
    let salt_string = SaltString::encode_b64(&salt).expect("16 bytes is a valid salt");
    let params = params();
    let argon2 = Argon2::new(Algorithm::Argon2id, Version::V0x13, params.clone());
    let mut out = [0u8; Params::DEFAULT_OUTPUT_LEN];
    argon2
        .hash_password_into_with_memory(
            password.as_bytes(),
            &salt,
            &mut out,
            memory.blocks(params.block_count()),
        )
        .expect("hashing with valid parameters cannot fail");
    PasswordHash {
        algorithm: Algorithm::Argon2id.ident(),
        version: Some(Version::V0x13.into()),
        params: ParamsString::try_from(&params).expect("our parameters encode"),
        salt: Some(salt_string.as_salt()),
        hash: Some(Output::new(&out).expect("32 bytes is a valid output")),
    }
    .to_string()
}

/// True when `password` matches `phc`, computed in `memory`. A corrupt or
/// foreign stored hash never matches.
pub fn verify_in(password: &str, phc: &str, memory: &mut Memory) -> bool {
    let Ok(parsed) = PasswordHash::new(phc) else {
        return false;
    };
    let (Some(salt), Some(expected)) = (parsed.salt, parsed.hash) else {
        return false;
    };
    let Ok(algorithm) = Algorithm::try_from(parsed.algorithm) else {
        return false;
    };
    let version = match parsed.version.map(Version::try_from) {
        None => Version::default(),
        Some(Ok(v)) => v,
        Some(Err(_)) => return false,
    };
    let Ok(params) = Params::try_from(&parsed) else {
        return false;
    };
    if params.block_count() > MAX_COST_FACTOR * params_block_count() {
        return false;
    }
    let mut salt_buf = [0u8; 64];
    let Ok(salt) = salt.decode_b64(&mut salt_buf) else {
        return false;
    };
    let mut out = vec![0u8; expected.len()];
    let blocks = params.block_count();
    let computed = Argon2::new(algorithm, version, params).hash_password_into_with_memory(
        password.as_bytes(),
        salt,
        &mut out,
        memory.blocks(blocks),
    );
    // Output compares in constant time.
    computed.is_ok() && Output::new(&out).is_ok_and(|out| out == expected)
}

fn params_block_count() -> usize {
    params().block_count()
}

/// A PHC string for `password` (m = 19 MiB, t = 2, p = 1), in fresh memory.
pub fn hash(password: &str) -> String {
    hash_in(password, &mut Memory::default())
}

/// True when `password` matches `phc`, in fresh memory.
#[cfg(test)]
pub fn verify(password: &str, phc: &str) -> bool {
    verify_in(password, phc, &mut Memory::default())
}

/// The gate is full: too many hashes running and waiting.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Busy;

/// Bounds the hashes in progress: `concurrency` run, `queue` wait in
/// arrival order, and the rest are refused at once.
pub struct HashGate {
    running: Arc<Semaphore>,
    /// One working memory per slot, handed to whichever hash holds the slot.
    memories: Arc<std::sync::Mutex<Vec<Memory>>>,
    waiting: AtomicUsize,
    max_waiting: usize,
}

/// Leaves the queue when dropped, also when the waiting request is cancelled.
struct InQueue<'a>(&'a AtomicUsize);

impl Drop for InQueue<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

impl HashGate {
    pub fn new(concurrency: usize, queue: usize) -> Self {
        Self {
            running: Arc::new(Semaphore::new(concurrency.max(1))),
            memories: Arc::new(std::sync::Mutex::new(Vec::new())),
            waiting: AtomicUsize::new(0),
            max_waiting: queue,
        }
    }

    /// Takes every slot, as hashes in progress would, until the permit drops.
    #[cfg(test)]
    pub fn occupy_all(&self) -> OwnedSemaphorePermit {
        let n = self.running.available_permits() as u32;
        self.running.clone().try_acquire_many_owned(n).expect("free slots")
    }

    /// A slot to hash in: at once if one is free, after the hashes ahead in
    /// the queue if the queue has room, else [`Busy`].
    async fn admit(&self) -> Result<OwnedSemaphorePermit, Busy> {
        if let Ok(permit) = self.running.clone().try_acquire_owned() {
            return Ok(permit);
        }
        self.waiting
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < self.max_waiting).then_some(n + 1)
            })
            .map_err(|_| Busy)?;
        let _in_queue = InQueue(&self.waiting);
        self.running.clone().acquire_owned().await.map_err(|_| Busy)
    }

    /// Runs `work` on the blocking pool once admitted, in the slot's memory.
    /// The slot and its memory travel with the work, so a caller that gives
    /// up frees neither while the hash is still being computed.
    async fn run<T: Send + 'static>(&self, work: impl FnOnce(&mut Memory) -> T + Send + 'static) -> Result<T, Busy> {
        let permit = self.admit().await?;
        let memories = self.memories.clone();
        tokio::task::spawn_blocking(move || {
            let take = || memories.lock().unwrap_or_else(|e| e.into_inner()).pop();
            let mut memory = take().unwrap_or_default();
            let out = work(&mut memory);
            memories.lock().unwrap_or_else(|e| e.into_inner()).push(memory);
            drop(permit);
            out
        })
        .await
        .map_err(|_| Busy)
    }

    /// Working memories kept for reuse (at most one per slot): none until a
    /// hash has run through the gate.
    #[cfg(test)]
    pub fn kept(&self) -> usize {
        self.memories.lock().unwrap().len()
    }

    /// [`hash`] within the gate.
    pub async fn hash(&self, password: String) -> Result<String, Busy> {
        self.run(move |memory| hash_in(&password, memory)).await
    }

    /// [`verify`] within the gate.
    pub async fn verify(&self, password: String, phc: String) -> Result<bool, Busy> {
        self.run(move |memory| verify_in(&password, &phc, memory)).await
    }
}

#[cfg(test)]
mod tests {
    use futures_util::FutureExt;

    use super::*;

    #[test]
    fn hashes_verify_and_differ() {
        let a = super::hash("correct horse");
        let b = super::hash("correct horse");
        assert_ne!(a, b, "salted");
        assert!(a.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"));
        assert!(super::verify("correct horse", &a));
        assert!(!super::verify("wrong horse", &a));
        assert!(!super::verify("correct horse", "not a hash"));
    }

    #[test]
    fn hashes_are_the_standard_phc_argon2id_both_ways() {
        use argon2::password_hash::{PasswordHasher, PasswordVerifier};
        let lib = Argon2::new(Algorithm::Argon2id, Version::V0x13, params());
        // Ours verifies with the library …
        let ours = super::hash("correct horse");
        let parsed = PasswordHash::new(&ours).unwrap();
        assert!(lib.verify_password(b"correct horse", &parsed).is_ok());
        assert!(lib.verify_password(b"wrong horse", &parsed).is_err());
        // … and the library's (as stored before) with ours, other parameters too.
        let salt = SaltString::encode_b64(b"sixteen byte slt").unwrap();
        let theirs = lib.hash_password(b"correct horse", &salt).unwrap().to_string();
        let mut memory = Memory::default();
        assert!(verify_in("correct horse", &theirs, &mut memory));
        assert!(!verify_in("wrong horse", &theirs, &mut memory));
        let small = Argon2::new(
            Algorithm::Argon2id,
            Version::V0x13,
            Params::new(1024, 1, 1, None).unwrap(),
        );
        let other = small.hash_password(b"pw-other", &salt).unwrap().to_string();
        assert!(verify_in("pw-other", &other, &mut memory), "in the same, larger memory");
    }

    #[test]
    fn a_stored_hash_asking_for_too_much_memory_never_matches() {
        let salt = SaltString::encode_b64(b"sixteen byte slt").unwrap();
        let greedy = format!(
            "$argon2id$v=19$m={},t=1,p=1${}$AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
            M_COST as usize * (MAX_COST_FACTOR + 1),
            salt.as_str()
        );
        assert!(PasswordHash::new(&greedy).is_ok(), "well formed");
        let mut memory = Memory::default();
        assert!(!verify_in("pw", &greedy, &mut memory));
        assert!(memory.0.is_empty(), "nothing allocated for it");
    }

    /// Yields until `n` calls wait in the gate's queue (no sleeps), for at
    /// most 10 s: a call that never queues fails the test instead of hanging it.
    async fn queued_up_to(gate: &HashGate, n: usize) {
        let queued = async {
            while gate.waiting.load(Ordering::Acquire) < n {
                tokio::task::yield_now().await;
            }
        };
        tokio::time::timeout(std::time::Duration::from_secs(10), queued)
            .await
            .unwrap_or_else(|_| panic!("{n} calls never waited in the queue"));
    }

    #[tokio::test]
    async fn the_gate_queues_a_few_and_refuses_the_rest() {
        let gate = Arc::new(HashGate::new(1, 2));
        // Occupy the only slot, as a hash in progress would.
        let held = gate.running.clone().try_acquire_owned().unwrap();
        let mut queued = Vec::new();
        for _ in 0..2 {
            let gate = gate.clone();
            queued.push(tokio::spawn(async move {
                gate.verify("pw".into(), "not a hash".into()).await
            }));
        }
        queued_up_to(&gate, 2).await;
        assert_eq!(
            gate.verify("pw".into(), "x".into()).now_or_never(),
            Some(Err(Busy)),
            "the queue is full: refused at once, not queued"
        );
        assert_eq!(gate.kept(), 0, "a refused call hashes nothing");
        drop(held);
        for q in queued {
            assert_eq!(q.await.unwrap(), Ok(false), "queued calls run once a slot frees");
        }
        assert_eq!(gate.waiting.load(Ordering::Acquire), 0, "the queue empties");
        assert_eq!(gate.kept(), 1, "one working memory per slot, reused");
        assert_eq!(
            gate.verify("pw".into(), "x".into()).await,
            Ok(false),
            "and admits again"
        );
    }

    #[tokio::test]
    async fn a_cancelled_waiter_leaves_the_queue() {
        let gate = Arc::new(HashGate::new(1, 1));
        let held = gate.running.clone().try_acquire_owned().unwrap();
        let waiter = {
            let gate = gate.clone();
            tokio::spawn(async move { gate.verify("pw".into(), "x".into()).await })
        };
        queued_up_to(&gate, 1).await;
        assert_eq!(
            gate.verify("pw".into(), "x".into()).now_or_never(),
            Some(Err(Busy)),
            "refused at once, not queued"
        );
        waiter.abort();
        assert!(waiter.await.unwrap_err().is_cancelled());
        assert_eq!(
            gate.waiting.load(Ordering::Acquire),
            0,
            "the cancelled waiter's place is free"
        );
        drop(held);
        assert_eq!(gate.verify("pw".into(), "x".into()).await, Ok(false));
    }
}
