//! Per-worker copies of counters, so the request path never writes a cache
//! line another core is writing too. Readers (the /metrics scrape) sum them.

use std::cell::Cell;

thread_local! {
    static WORKER: Cell<usize> = const { Cell::new(0) };
}

/// Marks the current thread as worker `n`; threads never marked count as 0.
pub fn set_worker(n: usize) {
    WORKER.with(|w| w.set(n));
}

/// One value per worker, each on its own cache lines.
pub struct Sharded<T> {
    shards: Box<[Padded<T>]>,
}

#[repr(align(128))]
struct Padded<T>(T);

impl<T: Default> Sharded<T> {
    pub fn new(workers: usize) -> Self {
        Self {
            shards: (0..workers.max(1)).map(|_| Padded(T::default())).collect(),
        }
    }
}

impl<T> Sharded<T> {
    /// This worker's copy.
    pub fn local(&self) -> &T {
        &self.shards[WORKER.with(Cell::get) % self.shards.len()].0
    }

    /// Every copy, for summing.
    pub fn all(&self) -> impl Iterator<Item = &T> {
        self.shards.iter().map(|p| &p.0)
    }
}

impl<T> std::fmt::Debug for Sharded<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sharded")
            .field("shards", &self.shards.len())
            .finish_non_exhaustive()
    }
}

impl<T: Default> Default for Sharded<T> {
    fn default() -> Self {
        Self::new(std::thread::available_parallelism().map_or(1, |n| n.get()))
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicU64, Ordering};

    use super::*;

    #[test]
    fn each_worker_writes_its_own_copy_and_the_sum_is_whole() {
        let counters: Sharded<AtomicU64> = Sharded::new(2);
        std::thread::scope(|s| {
            for n in 0..2 {
                let counters = &counters;
                s.spawn(move || {
                    set_worker(n);
                    for _ in 0..1000 {
                        counters.local().fetch_add(1, Ordering::Relaxed);
                    }
                });
            }
        });
        let per: Vec<u64> = counters.all().map(|c| c.load(Ordering::Relaxed)).collect();
        assert_eq!(per, vec![1000, 1000]);
    }
}
