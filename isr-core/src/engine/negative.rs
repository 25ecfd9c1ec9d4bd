//! Bounded memory of paths that are not stored pages: "the loader said not found" and "its
//! generation failed, back off", for paths that never existed.
//!
//! Nothing here is persisted and the number of entries is capped (oldest-used are forgotten
//! first), so a crawler or an attacker requesting random URLs cannot grow memory or disk. A
//! forgotten entry only costs one more loader run.

use crate::route::PageKey;

/// Entries kept at most (about 100 bytes each).
pub const NEGATIVE_CAPACITY: usize = 10_000;

/// What is remembered about a path that is not a stored page.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Remembered {
    /// The loader said not found; trusted until this monotonic time (ms). `valid_until_ms`:
    /// the wall-clock time a [`Load::NotYet`](crate::page::Load::NotYet) named (its headers
    /// let no cache keep the 404 past it).
    NotFound {
        until_ms: u64,
        generated_at_ms: u64,
        valid_until_ms: Option<u64>,
    },
    /// Its generation failed `failures` times in a row; no new attempt before `retry_at_ms`.
    /// `known`: the site itself named the path (the build's `paths`, on-demand revalidation),
    /// not only a request for it (an anonymous client can make up any number of those).
    Failing {
        failures: u32,
        retry_at_ms: u64,
        known: bool,
    },
}

pub(crate) struct NegativeMemory {
    cache: quick_cache::sync::Cache<PageKey, Remembered>,
}

impl NegativeMemory {
    pub(super) fn new(capacity: usize) -> Self {
        NegativeMemory {
            cache: quick_cache::sync::Cache::new(capacity.max(1)),
        }
    }

    /// What is remembered about `key` at monotonic time `now_ms` (expired entries are dropped).
    pub(super) fn get(&self, key: &str, now_ms: u64) -> Option<Remembered> {
        let remembered = self.cache.get(key)?;
        match remembered {
            Remembered::NotFound { until_ms, .. } if now_ms >= until_ms => {
                self.cache.remove(key);
                None
            }
            other => Some(other),
        }
    }

    pub(super) fn insert(&self, key: PageKey, remembered: Remembered) {
        self.cache.insert(key, remembered);
    }

    pub(super) fn remove(&self, key: &str) {
        self.cache.remove(key);
    }

    /// Entries held now.
    pub(super) fn len(&self) -> usize {
        self.cache.len()
    }

    /// The paths the site names whose generation is failing (never stored), with their
    /// failures and retry time, and how many other (requested only) paths are failing: at most
    /// the capacity.
    pub(super) fn failing(&self) -> (Vec<(PageKey, u32, u64)>, usize) {
        let mut known_paths = Vec::new();
        let mut requested_only = 0;
        for (key, remembered) in self.cache.iter() {
            match remembered {
                Remembered::Failing {
                    failures,
                    retry_at_ms,
                    known: true,
                } => known_paths.push((key, failures, retry_at_ms)),
                Remembered::Failing { known: false, .. } => requested_only += 1,
                Remembered::NotFound { .. } => {}
            }
        }
        (known_paths, requested_only)
    }

    /// Failures in a row remembered for `key` (0 when none), and whether the site named it.
    pub(super) fn failures(&self, key: &str) -> (u32, bool) {
        match self.cache.get(key) {
            Some(Remembered::Failing {
                failures, known, ..
            }) => (failures, known),
            _ => (0, false),
        }
    }
}
