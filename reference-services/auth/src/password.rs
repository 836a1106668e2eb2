//! Password hashing with Argon2id (m = 19 MiB, t = 2, p = 1: OWASP's first
//! recommendation). Hashing runs on the blocking pool: it is meant to be slow.
//!
//! Every hash costs 19 MiB and a core for its duration, so hashes go through
//! a [`HashGate`]: as many at once as there are cores, a short queue behind
//! them, and [`Busy`] (503) beyond it. Without the gate a flood of logins
//! fills the blocking pool's 512 threads and the memory they need.

use std::sync::Arc;
#[cfg(test)]
use std::sync::atomic::AtomicU64;
use std::sync::atomic::{AtomicUsize, Ordering};

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::{Algorithm, Argon2, Params, Version};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

fn argon2() -> Argon2<'static> {
    let params = Params::new(19 * 1024, 2, 1, None).expect("constant Argon2 parameters are valid");
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
}

/// A PHC string for `password`.
pub fn hash(password: &str) -> String {
    let mut salt = [0u8; 16];
    getrandom::fill(&mut salt).expect("the operating system's random source failed");
    let salt = SaltString::encode_b64(&salt).expect("16 bytes is a valid salt");
    argon2()
        .hash_password(password.as_bytes(), &salt)
        .expect("hashing with valid parameters cannot fail")
        .to_string()
}

/// True when `password` matches `phc`. A corrupt stored hash never matches.
pub fn verify(password: &str, phc: &str) -> bool {
    match PasswordHash::new(phc) {
        Ok(parsed) => argon2().verify_password(password.as_bytes(), &parsed).is_ok(),
        Err(_) => false,
    }
}

/// The gate is full: too many hashes running and waiting.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Busy;

/// Bounds the hashes in progress: `concurrency` run, `queue` wait in
/// arrival order, and the rest are refused at once.
pub struct HashGate {
    running: Arc<Semaphore>,
    waiting: AtomicUsize,
    max_waiting: usize,
    /// Hashes started, for tests: a refused login must not add one.
    #[cfg(test)]
    started: AtomicU64,
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
            waiting: AtomicUsize::new(0),
            max_waiting: queue,
            #[cfg(test)]
            started: AtomicU64::new(0),
        }
    }

    /// How many hashes have been started through this gate.
    #[cfg(test)]
    pub fn started(&self) -> u64 {
        self.started.load(Ordering::Relaxed)
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

    /// Runs `work` on the blocking pool once admitted. The slot travels with
    /// the work, so a caller that gives up does not free it while the hash
    /// is still being computed.
    async fn run<T: Send + 'static>(&self, work: impl FnOnce() -> T + Send + 'static) -> Result<T, Busy> {
        let permit = self.admit().await?;
        #[cfg(test)]
        self.started.fetch_add(1, Ordering::Relaxed);
        tokio::task::spawn_blocking(move || {
            let out = work();
            drop(permit);
            out
        })
        .await
        .map_err(|_| Busy)
    }

    /// [`hash`] within the gate.
    pub async fn hash(&self, password: String) -> Result<String, Busy> {
        self.run(move || hash(&password)).await
    }

    /// [`verify`] within the gate.
    pub async fn verify(&self, password: String, phc: String) -> Result<bool, Busy> {
        self.run(move || verify(&password, &phc)).await
    }
}

#[cfg(test)]
mod tests {
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
        // Wait until both are in the queue (no sleeps: yield until they are).
        while gate.waiting.load(Ordering::Acquire) < 2 {
            tokio::task::yield_now().await;
        }
        assert_eq!(
            gate.verify("pw".into(), "x".into()).await,
            Err(Busy),
            "the queue is full"
        );
        assert_eq!(gate.started(), 0, "a refused call hashes nothing");
        drop(held);
        for q in queued {
            assert_eq!(q.await.unwrap(), Ok(false), "queued calls run once a slot frees");
        }
        assert_eq!(gate.started(), 2);
        assert_eq!(gate.waiting.load(Ordering::Acquire), 0, "the queue empties");
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
        while gate.waiting.load(Ordering::Acquire) < 1 {
            tokio::task::yield_now().await;
        }
        assert_eq!(gate.verify("pw".into(), "x".into()).await, Err(Busy));
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
