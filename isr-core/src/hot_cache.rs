//! The page bytes held in memory, bounded by a byte budget.
//!
//! The engine keeps every page's metadata in its page table but only some pages' bytes. This is
//! a weighted [`quick_cache`] cache (S3-FIFO eviction: a page read once is dropped before pages
//! read again and again), weighted by the bytes each resident page holds. quick_cache over
//! moka: lookups are synchronous and lock-sharded with no background maintenance threads, its
//! weighted capacity is exactly the byte budget we need, and its dependency tree is small. The
//! cache's own accounting is the only count (no separate counter that could drift): an evicted
//! page is read from the store again on its next request.

use crate::model::CachedPage;
use crate::model::PageKey;
use std::sync::Arc;

/// Default budget: 128 MiB of page bytes.
pub const DEFAULT_BUDGET_BYTES: u64 = 128 * 1024 * 1024;

/// What a resident page costs besides its bytes (its metadata and the cache's bookkeeping).
const PAGE_OVERHEAD_BYTES: u64 = 256;

/// Resident pages, weighted by their bytes.
///
/// ```
/// let hot = isr::hot_cache::HotCache::new(1 << 20);
/// assert_eq!(hot.resident(), 0);
/// assert_eq!(hot.budget(), 1 << 20);
/// ```
pub struct HotCache {
    cache: quick_cache::sync::Cache<PageKey, Arc<CachedPage>, PageWeighter>,
}

#[derive(Clone, Copy)]
struct PageWeighter;

impl quick_cache::Weighter<PageKey, Arc<CachedPage>> for PageWeighter {
    fn weight(&self, key: &PageKey, page: &Arc<CachedPage>) -> u64 {
        weight_of(key, page)
    }
}

fn weight_of(key: &PageKey, page: &CachedPage) -> u64 {
    let body = page.body_bytes();
    body + key.as_str().len() as u64 + PAGE_OVERHEAD_BYTES
}

impl HotCache {
    /// A cache allowed `budget` bytes.
    ///
    /// ```
    /// assert_eq!(isr::hot_cache::HotCache::new(5000).budget(), 5000);
    /// ```
    ///
    /// # Panics
    /// If quick_cache refuses the options, which it does only when the weight capacity or the
    /// item estimate is unset; both are always set here, so it does not panic.
    pub fn new(budget: u64) -> Self {
        // quick_cache splits the budget over shards; the item estimate only sizes the tables.
        let estimated_items = (budget / 8192).clamp(16, 1 << 20) as usize;
        let options = quick_cache::OptionsBuilder::new()
            .estimated_items_capacity(estimated_items)
            .weight_capacity(budget)
            .shards(shards_for(budget))
            .build()
            .expect("valid cache options");
        HotCache {
            cache: quick_cache::sync::Cache::with_options(
                options,
                PageWeighter,
                Default::default(),
                Default::default(),
            ),
        }
    }

    /// The budget in bytes.
    ///
    /// ```
    /// assert_eq!(isr::hot_cache::HotCache::new(1 << 16).budget(), 1 << 16);
    /// ```
    pub fn budget(&self) -> u64 {
        self.cache.capacity()
    }

    /// Changes the budget; pages are evicted at once when the cache is over it.
    ///
    /// ```
    /// let hot = isr::hot_cache::HotCache::new(1 << 16);
    /// hot.set_budget(1 << 17);
    /// assert_eq!(hot.budget(), 1 << 17);
    /// ```
    pub fn set_budget(&self, budget: u64) {
        self.cache.set_capacity(budget);
    }

    /// Bytes held now (page bytes plus a fixed overhead per page); never above the budget.
    ///
    /// ```
    /// assert_eq!(isr::hot_cache::HotCache::new(1 << 16).resident(), 0);
    /// ```
    pub fn resident(&self) -> u64 {
        self.cache.weight()
    }

    /// The resident page at `key`, if any.
    pub(crate) fn get(&self, key: &str) -> Option<Arc<CachedPage>> {
        self.cache.get(key)
    }

    /// The resident page at `key`, if any, without counting it as read (for eviction).
    pub(crate) fn peek(&self, key: &str) -> Option<Arc<CachedPage>> {
        self.cache.peek(key)
    }

    /// Makes `page` the resident version of `key` (a page larger than the cache's shard is
    /// simply not kept).
    pub(crate) fn insert(&self, key: PageKey, page: Arc<CachedPage>) {
        self.cache.insert(key, page);
    }

    /// Drops `key`'s resident version.
    pub(crate) fn remove(&self, key: &str) {
        self.cache.remove(key);
    }
}

/// Few shards for small budgets (each shard holds budget / shards, and a page must fit in one),
/// more for large ones (less lock contention).
fn shards_for(budget: u64) -> usize {
    let cores = crate::cpus();
    let by_budget = (budget / (4 * 1024 * 1024)).max(1) as usize;
    (cores * 4).min(by_budget).next_power_of_two().max(1)
}
