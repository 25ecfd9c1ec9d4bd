//! The page table: what the engine knows about every stored page, and the inverted tag index.
//!
//! One owner for both, under one lock, so the tag index never disagrees with the pages. Memory
//! per page: the key (shared with the tag index and the caches), a compact entry (route, kind
//! with a 16-byte etag, generation time, failure state, the loader's own tags) and one shared
//! key per tag in the tag index. Route tags (`tags = [..]` in `#[page]`) are not copied into
//! each entry: they are the route's.
//!
//! Only pages that exist in the store are here (pages, redirects and tombstones of pages that
//! existed); paths that never existed live in the bounded negative memory instead.

use crate::page::PageDef;
use crate::route::PageKey;
use crate::store::{PageKind, PageMeta};
use std::collections::{HashMap, HashSet};
use std::sync::{Arc, RwLock};

/// One stored page.
struct Entry {
    def: &'static PageDef,
    kind: PageKind,
    generated_at_ms: u64,
    /// Tags the loader added (besides the route's), shared with the tag index.
    loader_tags: Box<[Arc<str>]>,
    /// Consecutive failed generations.
    failures: u32,
    /// No new attempt (other than on-demand) before this monotonic time (ms); 0: none.
    retry_at_ms: u64,
    /// Bumped on every commit.
    version: u64,
}

/// A copy of what a request needs to know about a page.
#[derive(Clone, Debug)]
pub(crate) struct Snapshot {
    pub def: &'static PageDef,
    pub kind: PageKind,
    pub generated_at_ms: u64,
    pub retry_at_ms: u64,
    pub version: u64,
}

impl Snapshot {
    /// The metadata this snapshot describes (for responses and the store).
    pub fn meta(&self, key: &PageKey, tags: Vec<String>) -> PageMeta {
        PageMeta {
            key: key.to_string(),
            route: self.def.path.to_string(),
            generated_at_ms: self.generated_at_ms,
            kind: self.kind.clone(),
            tags,
        }
    }
}

/// The keys carrying one tag. Most tags name one page (`post:<slug>`, `product:<id>`): those
/// hold the key inline instead of a one-element set (a set costs ~80 bytes more).
enum TagKeys {
    /// No key yet (only while a commit is indexing).
    Empty,
    One(PageKey),
    Many(HashSet<PageKey>),
}

impl TagKeys {
    fn insert(&mut self, key: &PageKey) {
        match self {
            TagKeys::Empty => *self = TagKeys::One(key.clone()),
            TagKeys::One(one) if one == key => {}
            TagKeys::One(one) => {
                *self = TagKeys::Many(HashSet::from([one.clone(), key.clone()]));
            }
            TagKeys::Many(keys) => {
                keys.insert(key.clone());
            }
        }
    }

    /// Removes `key`; returns whether no key is left.
    fn remove(&mut self, key: &str) -> bool {
        match self {
            TagKeys::Empty => true,
            TagKeys::One(one) => one.as_str() == key,
            TagKeys::Many(keys) => {
                keys.remove(key);
                keys.is_empty()
            }
        }
    }

    fn keys(&self) -> Vec<PageKey> {
        match self {
            TagKeys::Empty => Vec::new(),
            TagKeys::One(one) => vec![one.clone()],
            TagKeys::Many(keys) => keys.iter().cloned().collect(),
        }
    }
}

#[derive(Default)]
struct Inner {
    entries: HashMap<PageKey, Entry>,
    tags: HashMap<Arc<str>, TagKeys>,
    next_version: u64,
}

/// The page table (see the module docs).
#[derive(Default)]
pub(crate) struct PageTable {
    inner: RwLock<Inner>,
}

impl PageTable {
    fn read(&self) -> std::sync::RwLockReadGuard<'_, Inner> {
        self.inner.read().unwrap_or_else(|p| p.into_inner())
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, Inner> {
        self.inner.write().unwrap_or_else(|p| p.into_inner())
    }

    pub fn len(&self) -> usize {
        self.read().entries.len()
    }

    pub fn contains(&self, key: &str) -> bool {
        self.read().entries.contains_key(key)
    }

    pub fn snapshot(&self, key: &str) -> Option<Snapshot> {
        let inner = self.read();
        let entry = inner.entries.get(key)?;
        Some(Snapshot {
            def: entry.def,
            kind: entry.kind.clone(),
            generated_at_ms: entry.generated_at_ms,
            retry_at_ms: entry.retry_at_ms,
            version: entry.version,
        })
    }

    /// Consecutive failures of `key`'s generations.
    #[cfg(test)]
    pub fn failures(&self, key: &str) -> Option<u32> {
        self.read().entries.get(key).map(|e| e.failures)
    }

    /// The version the table holds for `key` now.
    pub fn version(&self, key: &str) -> Option<u64> {
        self.read().entries.get(key).map(|e| e.version)
    }

    /// Every tag of `key` (route's, then loader's).
    pub fn tags(&self, key: &str) -> Vec<String> {
        let inner = self.read();
        match inner.entries.get(key) {
            Some(entry) => all_tags(entry).map(str::to_string).collect(),
            None => Vec::new(),
        }
    }

    /// Records a committed generation (or a page loaded at start-up): replaces the entry,
    /// resets its failures, moves its tags in the index. Returns the new version.
    pub fn commit(&self, key: &PageKey, def: &'static PageDef, meta: &PageMeta) -> u64 {
        let mut inner = self.write();
        let inner = &mut *inner;
        if let Some(old) = inner.entries.remove(key) {
            unindex(&mut inner.tags, key, &old);
        }
        inner.next_version += 1;
        let version = inner.next_version;
        let mut loader_tags: Vec<Arc<str>> = Vec::new();
        for tag in &meta.tags {
            if def.tags.contains(&tag.as_str()) || loader_tags.iter().any(|t| **t == **tag) {
                continue;
            }
            loader_tags.push(interned(&mut inner.tags, tag));
        }
        let entry = Entry {
            def,
            kind: meta.kind.clone(),
            generated_at_ms: meta.generated_at_ms,
            loader_tags: loader_tags.into_boxed_slice(),
            failures: 0,
            retry_at_ms: 0,
            version,
        };
        for tag in all_tags(&entry) {
            let tag = interned(&mut inner.tags, tag);
            inner.tags.entry(tag).or_insert(TagKeys::Empty).insert(key);
        }
        inner.entries.insert(key.clone(), entry);
        version
    }

    /// Counts a failed generation of a stored page and sets its retry deadline
    /// (`retry_at(failures)` gives it); `None` when the page is not in the table.
    pub fn record_failure(&self, key: &str, retry_at: impl FnOnce(u32) -> u64) -> Option<u32> {
        let mut inner = self.write();
        let entry = inner.entries.get_mut(key)?;
        entry.failures = entry.failures.saturating_add(1);
        entry.retry_at_ms = retry_at(entry.failures);
        Some(entry.failures)
    }

    /// Forgets `key`; returns whether it was there.
    pub fn remove(&self, key: &str) -> bool {
        let mut inner = self.write();
        let inner = &mut *inner;
        match inner.entries.remove_entry(key) {
            Some((key, old)) => {
                unindex(&mut inner.tags, &key, &old);
                true
            }
            None => false,
        }
    }

    /// Keys of the pages that carry `tag` now, sorted (an index lookup).
    pub fn keys_with_tag(&self, tag: &str) -> Vec<PageKey> {
        let mut keys: Vec<PageKey> = self
            .read()
            .tags
            .get(tag)
            .map(TagKeys::keys)
            .unwrap_or_default();
        keys.sort();
        keys
    }

    /// Every key.
    pub fn keys(&self) -> Vec<PageKey> {
        self.read().entries.keys().cloned().collect()
    }
}

fn all_tags(entry: &Entry) -> impl Iterator<Item = &str> {
    entry
        .def
        .tags
        .iter()
        .copied()
        .chain(entry.loader_tags.iter().map(|t| &**t))
}

/// The shared copy of `tag`'s text (one allocation per distinct tag).
fn interned(tags: &mut HashMap<Arc<str>, TagKeys>, tag: &str) -> Arc<str> {
    match tags.get_key_value(tag) {
        Some((shared, _)) => shared.clone(),
        None => {
            let shared: Arc<str> = Arc::from(tag);
            tags.insert(shared.clone(), TagKeys::Empty);
            shared
        }
    }
}

fn unindex(tags: &mut HashMap<Arc<str>, TagKeys>, key: &PageKey, old: &Entry) {
    for tag in all_tags(old) {
        if let Some(keys) = tags.get_mut(tag) {
            if keys.remove(key.as_str()) {
                tags.remove(tag);
            }
        }
    }
}
