//! The passing instances of another service, kept current by a registry
//! watch, for services that call each other (auth → user, user → auth).
//! The gateway has its own, richer snapshot with balancing state.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use arc_swap::ArcSwap;
use tokio::task::JoinHandle;

use crate::registry::{Instance, RegistryClient};
use crate::watch::watch_service;

#[derive(Clone)]
pub struct Discovered {
    name: Arc<str>,
    instances: Arc<ArcSwap<Vec<Instance>>>,
    next: Arc<AtomicUsize>,
}

impl Discovered {
    /// Starts watching `name`. Abort the returned task to stop.
    pub fn watch(client: RegistryClient, name: &str) -> (Self, JoinHandle<()>) {
        let me = Self {
            name: Arc::from(name),
            instances: Arc::new(ArcSwap::from_pointee(Vec::new())),
            next: Arc::new(AtomicUsize::new(0)),
        };
        let target = me.instances.clone();
        let service = name.to_owned();
        let wait = client.watch_wait();
        let task = tokio::spawn(watch_service(
            client,
            service.clone(),
            wait,
            move |instances| {
                tracing::info!(service = %service, count = instances.len(), "instances changed");
                target.store(Arc::new(instances));
            },
            |e| tracing::warn!(error = %e, "registry watch failed; keeping the last instances"),
        ));
        (me, task)
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// Base URLs of the passing instances, rotated so that successive callers
    /// start at different instances.
    pub fn base_urls(&self) -> Vec<String> {
        let list = self.instances.load();
        if list.is_empty() {
            return Vec::new();
        }
        let start = self.next.fetch_add(1, Ordering::Relaxed) % list.len();
        (0..list.len())
            .map(|i| {
                let inst = &list[(start + i) % list.len()];
                format!("http://{}:{}", inst.service.address, inst.service.port)
            })
            .collect()
    }
}
