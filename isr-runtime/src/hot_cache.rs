//! Accounting of the page HTML held in memory, bounded by a byte budget.
//!
//! The engine keeps every page's metadata in memory but only some pages' HTML. This module
//! decides which: HTML becomes resident when a page is generated or read from disk, and the
//! pages that became resident longest ago lose their HTML (it is read from disk again on their
//! next request) once the total passes the budget. First-in first-out is cheap and keeps memory
//! bounded; hot pages simply come back on their next request.

use std::collections::{HashSet, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

/// Default budget: 128 MiB of HTML.
pub const DEFAULT_BUDGET_BYTES: u64 = 128 * 1024 * 1024;

/// Resident HTML bytes and the order pages became resident in.
///
/// ```
/// let hot = isr::hot_cache::HotCache::new(100);
/// hot.admit("/a", 60, 0);
/// hot.admit("/b", 60, 0);
/// assert_eq!(hot.victims(), vec!["/a".to_string()]);
/// ```
#[derive(Debug)]
pub struct HotCache {
    budget: AtomicU64,
    resident: AtomicU64,
    order: Mutex<VecDeque<String>>,
}

impl HotCache {
    /// A cache allowed `budget` bytes of HTML.
    ///
    /// ```
    /// assert_eq!(isr::hot_cache::HotCache::new(5).budget(), 5);
    /// ```
    pub fn new(budget: u64) -> Self {
        HotCache {
            budget: AtomicU64::new(budget),
            resident: AtomicU64::new(0),
            order: Mutex::new(VecDeque::new()),
        }
    }

    /// The budget in bytes.
    ///
    /// ```
    /// assert!(isr::hot_cache::HotCache::new(1).budget() == 1);
    /// ```
    pub fn budget(&self) -> u64 {
        self.budget.load(Ordering::Relaxed)
    }

    /// Changes the budget (takes effect at the next admission).
    ///
    /// ```
    /// let hot = isr::hot_cache::HotCache::new(1);
    /// hot.set_budget(2);
    /// assert_eq!(hot.budget(), 2);
    /// ```
    pub fn set_budget(&self, budget: u64) {
        self.budget.store(budget, Ordering::Relaxed);
    }

    /// Bytes of HTML resident now.
    ///
    /// ```
    /// let hot = isr::hot_cache::HotCache::new(10);
    /// hot.admit("/a", 4, 0);
    /// assert_eq!(hot.resident(), 4);
    /// ```
    pub fn resident(&self) -> u64 {
        self.resident.load(Ordering::Relaxed)
    }

    /// `key`'s HTML became resident (`added` bytes), replacing `replaced` resident bytes.
    ///
    /// ```
    /// let hot = isr::hot_cache::HotCache::new(10);
    /// hot.admit("/a", 4, 0);
    /// hot.admit("/a", 6, 4);
    /// assert_eq!(hot.resident(), 6);
    /// ```
    pub fn admit(&self, key: &str, added: u64, replaced: u64) {
        self.resident.fetch_add(added, Ordering::Relaxed);
        self.resident
            .fetch_sub(replaced.min(self.resident()), Ordering::Relaxed);
        let mut order = self.lock();
        order.push_back(key.to_string());
        // A page regenerated often appears many times; keep the queue proportional to pages.
        // Checked at powers of two only, so the cost stays amortised O(1) per admission.
        if order.len() > 1024 && order.len().is_power_of_two() && order.len() > 4 * distinct(&order)
        {
            let mut seen = HashSet::new();
            let compacted: VecDeque<String> = order
                .iter()
                .rev()
                .filter(|k| seen.insert(k.as_str()))
                .cloned()
                .collect::<Vec<_>>()
                .into_iter()
                .rev()
                .collect();
            *order = compacted;
        }
    }

    /// `bytes` of resident HTML were dropped (evicted or forgotten).
    ///
    /// ```
    /// let hot = isr::hot_cache::HotCache::new(10);
    /// hot.admit("/a", 4, 0);
    /// hot.released(4);
    /// assert_eq!(hot.resident(), 0);
    /// ```
    pub fn released(&self, bytes: u64) {
        self.resident
            .fetch_sub(bytes.min(self.resident()), Ordering::Relaxed);
    }

    /// Keys to evict, oldest first, so that the resident bytes fit the budget again (the
    /// caller drops their HTML and calls [`HotCache::released`]). A key may already have no
    /// resident HTML; the caller skips it.
    ///
    /// ```
    /// let hot = isr::hot_cache::HotCache::new(10);
    /// hot.admit("/a", 8, 0);
    /// assert!(hot.victims().is_empty());
    /// ```
    pub fn victims(&self) -> Vec<String> {
        let over = self.resident().saturating_sub(self.budget());
        if over == 0 {
            return Vec::new();
        }
        // Take a batch: callers re-check; an estimate of one page per 4 KiB over is plenty.
        let mut order = self.lock();
        let count = ((over / 4096) as usize + 1).min(order.len());
        order.drain(..count).collect()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, VecDeque<String>> {
        self.order.lock().unwrap_or_else(|p| p.into_inner())
    }
}

fn distinct(order: &VecDeque<String>) -> usize {
    order.iter().collect::<HashSet<_>>().len()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn queue_of_a_hot_key_is_compacted() {
        let hot = HotCache::new(u64::MAX);
        for _ in 0..10_000 {
            hot.admit("/same", 1, 1);
        }
        assert!(hot.lock().len() <= 2048, "{}", hot.lock().len());
    }
}
