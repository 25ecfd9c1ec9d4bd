//! The regeneration scheduler: a global cap on concurrent generations, and a per-route cap on
//! generations of paths that are not stored pages (so a flood of random URLs on one route can
//! never take every slot).
//!
//! Priorities without a queue of our own: requests that wait for a page (misses, on-demand)
//! queue on the semaphore (fair, first come first served); stale regenerations only take a slot
//! that is free right now, and otherwise leave the page stale for a later request to try again.
//! So a full scheduler never blocks a request that has a page to serve and loses nothing.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// Default global cap: CPUs × 4 (loaders mostly wait on I/O).
///
/// ```
/// assert!(isr::engine::default_max_regenerations() >= 4);
/// ```
pub fn default_max_regenerations() -> usize {
    crate::cpus() * 4
}

/// The slots a running generation holds; released when dropped.
pub(crate) struct Slot {
    _global: Option<OwnedSemaphorePermit>,
    _route: Option<OwnedSemaphorePermit>,
}

impl Slot {
    /// A generation that takes no slot (the build has its own `--jobs` bound).
    pub(super) fn unlimited() -> Self {
        Slot {
            _global: None,
            _route: None,
        }
    }
}

pub(crate) struct Scheduler {
    global: Arc<Semaphore>,
    unknown_per_route: HashMap<&'static str, Arc<Semaphore>>,
    /// How long a waiting request may queue for a slot.
    max_wait: Duration,
}

impl Scheduler {
    /// `max` concurrent generations; at most half of them (at least one) for paths of one
    /// route that are not stored pages.
    pub(super) fn new(
        max: usize,
        routes: impl Iterator<Item = &'static str>,
        max_wait: Duration,
    ) -> Self {
        let max = max.max(1);
        let per_route = (max / 2).max(1);
        Scheduler {
            global: Arc::new(Semaphore::new(max)),
            unknown_per_route: routes
                .map(|route| (route, Arc::new(Semaphore::new(per_route))))
                .collect(),
            max_wait,
        }
    }

    /// A slot for a stale regeneration if one is free now.
    pub(super) fn try_slot(&self) -> Option<Slot> {
        let global = self.global.clone().try_acquire_owned().ok()?;
        Some(Slot {
            _global: Some(global),
            _route: None,
        })
    }

    /// Waits (at most `max_wait`) for a slot; `unknown_route`: the route of a path that is not
    /// a stored page, which also takes one of that route's slots. `None`: no slot in time.
    pub(super) async fn slot(&self, unknown_route: Option<&'static str>) -> Option<Slot> {
        let wait = async {
            let route = match unknown_route.and_then(|r| self.unknown_per_route.get(r)) {
                Some(semaphore) => Some(semaphore.clone().acquire_owned().await.ok()?),
                None => None,
            };
            let global = self.global.clone().acquire_owned().await.ok()?;
            Some(Slot {
                _global: Some(global),
                _route: route,
            })
        };
        tokio::time::timeout(self.max_wait, wait)
            .await
            .ok()
            .flatten()
    }
}
