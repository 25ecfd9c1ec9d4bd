//! The page table: what the engine knows about every stored page, and the inverted tag index.
//!
//! One owner for both, under one lock, so the tag index never disagrees with the pages.
//!
//! Memory per page (measured by `benches/index_memory.rs`): the key text (shared with every
//! tier), one dense entry in an [`IndexMap`] (route index, kind, 16-byte etag, length,
//! generation time, version, the ids of the loader's own tags inline) and, for each tag only
//! this page carries (`post:<slug>`, `product:<id>`), one tag-index entry holding the key
//! inline. Rarely needed fields live in side maps that only hold the pages that need them:
//! failure state (pages backing off) and redirect targets. Route tags (`tags = [..]` in
//! `#[page]`) are not indexed per page: a lookup of a route tag walks that route's entries,
//! which is proportional to its answer anyway.
//!
//! Only pages that exist in the store are here (pages, redirects and tombstones of pages that
//! existed); paths that never existed live in the bounded negative memory instead.
//!
//! [`IndexMap`] (entries in one vector, an index table of `usize`) over `HashMap`: a `HashMap`
//! slot holds the whole entry, and at 1,000,000 pages hashbrown runs at ~48 % load, so empty
//! slots would cost as much as the entries; here empty slots cost 8 bytes.

use crate::page::PageDef;
use crate::route::PageKey;
use crate::store::{Etag, Mark, PageKind, PageMeta};
use indexmap::IndexMap;
use std::collections::{HashMap, HashSet};
use std::sync::{Arc, RwLock};

#[derive(Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
enum Kind {
    Page,
    NotFound,
    Redirect,
}

/// A change stamp of the table: the last version committed and the number of entries (it
/// differs after any commit or removal).
pub(super) type Stamp = (u64, usize);

/// Ids (positions in the tag index) of the tags a page's loader added; one tag stays inline.
#[derive(Clone)]
enum TagIds {
    None,
    One(u32),
    Many(Box<[u32]>),
}

impl TagIds {
    fn from_vec(ids: Vec<u32>) -> Self {
        match ids.as_slice() {
            [] => TagIds::None,
            [one] => TagIds::One(*one),
            _ => TagIds::Many(ids.into_boxed_slice()),
        }
    }

    fn to_vec(&self) -> Vec<u32> {
        match self {
            TagIds::None => Vec::new(),
            TagIds::One(one) => vec![*one],
            TagIds::Many(ids) => ids.to_vec(),
        }
    }

    /// The tag at position `from` moved to `to`.
    fn moved(&mut self, from: u32, to: u32) {
        match self {
            TagIds::None => {}
            TagIds::One(one) => {
                if *one == from {
                    *one = to;
                }
            }
            TagIds::Many(ids) => ids
                .iter_mut()
                .filter(|id| **id == from)
                .for_each(|id| *id = to),
        }
    }
}

/// One stored page.
struct Entry {
    /// Pages only (zero otherwise).
    etag: Etag,
    generated_at_ms: u64,
    /// The version in the shared tier (see [`PageMeta::generation`]).
    generation: u64,
    /// Bumped on every commit.
    version: u64,
    loader_tags: TagIds,
    /// Body length (pages only; bodies over 4 GiB are not supported).
    bytes: u32,
    /// Position of the route in the table's route list.
    route: u16,
    kind: Kind,
}

/// Consecutive failures of a stored page and when it may be tried again.
#[derive(Clone, Copy)]
struct Backoff {
    failures: u32,
    /// Monotonic ms.
    retry_at_ms: u64,
}

/// The keys carrying one tag: one key inline (the common case), or a set. The set is boxed on
/// purpose: it keeps this enum (one per tag in the index) at 24 bytes instead of 56.
#[allow(clippy::box_collection)]
enum TagKeys {
    One(PageKey),
    Many(Box<HashSet<PageKey>>),
}

impl TagKeys {
    fn insert(&mut self, key: &PageKey) {
        match self {
            TagKeys::One(one) if one == key => {}
            TagKeys::One(one) => {
                *self = TagKeys::Many(Box::new(HashSet::from([one.clone(), key.clone()])));
            }
            TagKeys::Many(keys) => {
                keys.insert(key.clone());
            }
        }
    }

    /// Removes `key`; returns whether no key is left.
    fn remove(&mut self, key: &str) -> bool {
        match self {
            TagKeys::One(one) => one.as_str() == key,
            TagKeys::Many(keys) => {
                keys.remove(key);
                keys.is_empty()
            }
        }
    }

    fn keys(&self) -> Vec<PageKey> {
        match self {
            TagKeys::One(one) => vec![one.clone()],
            TagKeys::Many(keys) => keys.iter().cloned().collect(),
        }
    }
}

/// A copy of what a request needs to know about a page.
#[derive(Clone, Debug)]
pub(crate) struct Snapshot {
    pub def: &'static PageDef,
    pub kind: PageKind,
    pub generated_at_ms: u64,
    /// Its version in the shared tier (see [`PageMeta::generation`]).
    pub generation: u64,
    pub retry_at_ms: u64,
    /// Failed generations in a row (0 when the last one succeeded).
    pub failures: u32,
    pub version: u64,
    /// See [`PageMeta::valid_until_ms`].
    pub valid_until_ms: Option<u64>,
    /// See [`PageMeta::mark`].
    pub mark: Option<Arc<Mark>>,
}

impl Snapshot {
    /// The metadata this snapshot describes (for responses and the store).
    pub(super) fn meta(&self, key: &PageKey, tags: Vec<String>) -> PageMeta {
        PageMeta {
            key: key.to_string(),
            route: self.def.path.to_string(),
            generated_at_ms: self.generated_at_ms,
            generation: self.generation,
            kind: self.kind.clone(),
            tags,
            valid_until_ms: self.valid_until_ms,
            mark: self.mark.as_deref().cloned(),
        }
    }
}

struct Inner {
    defs: Vec<&'static PageDef>,
    entries: IndexMap<PageKey, Entry>,
    /// Loader tags → keys.
    tags: IndexMap<Box<str>, TagKeys>,
    failing: HashMap<PageKey, Backoff>,
    redirects: HashMap<PageKey, (Box<str>, bool)>,
    /// `PageMeta::valid_until_ms` of the few pages that have one (beside the entries, which
    /// stay small for the many that do not).
    valid_until: HashMap<PageKey, u64>,
    /// Invalidation marks of the pages that have one (see [`Mark`]).
    marks: HashMap<PageKey, Arc<Mark>>,
    /// Marks of pages not loaded yet while the table fills at start-up (see `PageTable::mark`):
    /// applied as their rows arrive (`only_older`: only to a row generated before the mark).
    pending_marks: HashMap<PageKey, (Mark, bool)>,
    /// The variants (`/blog?page=2`) of each page path that has some (routes with `query`).
    variants: HashMap<Box<str>, HashSet<PageKey>>,
    /// New variants of each page path being committed now ([`PageTable::reserve_variant`]).
    variant_reservations: HashMap<Box<str>, usize>,
    next_version: u64,
}

/// The page table (see the module docs).
pub(crate) struct PageTable {
    inner: RwLock<Inner>,
}

impl PageTable {
    /// An empty table for pages of `defs`.
    pub(super) fn new(defs: &[&'static PageDef]) -> Self {
        PageTable {
            inner: RwLock::new(Inner {
                defs: defs.to_vec(),
                entries: IndexMap::new(),
                tags: IndexMap::new(),
                failing: HashMap::new(),
                redirects: HashMap::new(),
                valid_until: HashMap::new(),
                marks: HashMap::new(),
                pending_marks: HashMap::new(),
                variants: HashMap::new(),
                variant_reservations: HashMap::new(),
                next_version: 0,
            }),
        }
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, Inner> {
        self.inner.read().unwrap_or_else(|p| p.into_inner())
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, Inner> {
        self.inner.write().unwrap_or_else(|p| p.into_inner())
    }

    pub(super) fn len(&self) -> usize {
        self.read().entries.len()
    }

    pub(super) fn contains(&self, key: &str) -> bool {
        self.read().entries.contains_key(key)
    }

    /// Releases spare capacity (after loading the index at start-up).
    pub(super) fn shrink_to_fit(&self) {
        let mut inner = self.write();
        inner.entries.shrink_to_fit();
        inner.tags.shrink_to_fit();
        inner.redirects.shrink_to_fit();
        inner.valid_until.shrink_to_fit();
        inner.marks.shrink_to_fit();
    }

    pub(super) fn snapshot(&self, key: &str) -> Option<Snapshot> {
        let inner = self.read();
        let entry = inner.entries.get(key)?;
        let kind = match entry.kind {
            Kind::Page => PageKind::Page {
                etag: entry.etag,
                bytes: u64::from(entry.bytes),
            },
            Kind::NotFound => PageKind::NotFound,
            Kind::Redirect => {
                let (location, permanent) = inner
                    .redirects
                    .get(key)
                    .map_or(("/", false), |(l, p)| (&**l, *p));
                PageKind::Redirect {
                    location: location.to_string(),
                    permanent,
                }
            }
        };
        let backoff = inner.failing.get(key);
        Some(Snapshot {
            def: inner.defs[usize::from(entry.route)],
            kind,
            generated_at_ms: entry.generated_at_ms,
            generation: entry.generation,
            retry_at_ms: backoff.map_or(0, |b| b.retry_at_ms),
            failures: backoff.map_or(0, |b| b.failures),
            version: entry.version,
            valid_until_ms: inner.valid_until.get(key).copied(),
            mark: inner.marks.get(key).cloned(),
        })
    }

    /// Keys after `after` (in key order) whose route and key pass `wanted`, sorted; one pass
    /// under the read lock, cloning only the matching keys.
    pub(super) fn keys_where(
        &self,
        after: Option<&str>,
        wanted: impl Fn(&str, &'static PageDef) -> bool,
    ) -> Vec<PageKey> {
        let inner = self.read();
        let mut keys: Vec<PageKey> = inner
            .entries
            .iter()
            .filter(|(key, _)| after.is_none_or(|after| key.as_str() > after))
            .filter(|(key, entry)| wanted(key.as_str(), inner.defs[usize::from(entry.route)]))
            .map(|(key, _)| key.clone())
            .collect();
        drop(inner);
        keys.sort_unstable();
        keys
    }

    /// Every HTML page (not file routes, not-found or redirects; a variant only when its route
    /// says `sitemap_variants`) with its generation time,
    /// sorted by key; and the table's change stamp (it differs after any commit or removal).
    pub(super) fn html_pages(&self) -> (Vec<(PageKey, u64)>, Stamp) {
        let inner = self.read();
        let stamp = (inner.next_version, inner.entries.len());
        let mut pages: Vec<(PageKey, u64)> = inner
            .entries
            .iter()
            .filter(|(key, entry)| {
                let def = inner.defs[usize::from(entry.route)];
                entry.kind == Kind::Page
                    && def.content_type.is_none()
                    && (key.query().is_none() || def.query.in_sitemap)
            })
            .map(|(key, entry)| (key.clone(), entry.generated_at_ms))
            .collect();
        drop(inner);
        pages.sort_unstable_by(|a, b| a.0.cmp(&b.0));
        (pages, stamp)
    }

    /// The table's change stamp (see [`PageTable::html_pages`]).
    pub(super) fn stamp(&self) -> Stamp {
        let inner = self.read();
        (inner.next_version, inner.entries.len())
    }

    /// Consecutive failures of `key`'s generations.
    #[cfg(test)]
    pub(super) fn failures(&self, key: &str) -> Option<u32> {
        let inner = self.read();
        inner.entries.get(key)?;
        Some(inner.failing.get(key).map_or(0, |b| b.failures))
    }

    /// The shared generation the table holds for `key` ([`PageMeta::generation`]); 0 when it
    /// holds none.
    pub(super) fn generation(&self, key: &str) -> u64 {
        self.read().entries.get(key).map_or(0, |e| e.generation)
    }

    /// Records that the shared tier took `key`'s entry as `generation` (a write-back).
    pub(super) fn set_generation(&self, key: &str, generation: u64) {
        if let Some(entry) = self.write().entries.get_mut(key) {
            entry.generation = generation;
        }
    }

    /// The version the next commit gets: every entry committed before now has a lower one.
    pub(super) fn next_version(&self) -> u64 {
        self.read().next_version + 1
    }

    /// The version the table holds for `key` now.
    pub(super) fn version(&self, key: &str) -> Option<u64> {
        self.read().entries.get(key).map(|e| e.version)
    }

    /// Every tag of `key` (route's, then loader's).
    pub(super) fn tags(&self, key: &str) -> Vec<String> {
        let inner = self.read();
        inner
            .entries
            .get(key)
            .map_or_else(Vec::new, |entry| inner.tags_of(entry))
    }

    /// [`tags`](Self::tags) of `key` and whether the table still holds `version` of it (one
    /// lookup, for a page copy about to be kept resident).
    pub(super) fn tags_at(&self, key: &str, version: u64) -> (Vec<String>, bool) {
        let inner = self.read();
        match inner.entries.get(key) {
            Some(entry) => (inner.tags_of(entry), entry.version == version),
            None => (Vec::new(), false),
        }
    }

    /// Records a committed generation (or a page loaded at start-up, or pulled from the shared
    /// tier): replaces the entry, clears its failures, moves its tags in the index. A mark
    /// made after the version was generated stays (see [`PageTable::commit_generation`]).
    /// Returns the new version.
    pub(super) fn commit(&self, key: &PageKey, def: &'static PageDef, meta: &PageMeta) -> u64 {
        self.write().commit(key, def, meta, meta.generated_at_ms)
    }

    /// [`PageTable::commit`] of a generation whose loader started at `started_at_ms`: the
    /// page's mark stays when it was made after that (the loader may have read the data the
    /// invalidation said had changed). Returns the new version and whether a mark stayed.
    pub(super) fn commit_generation(
        &self,
        key: &PageKey,
        def: &'static PageDef,
        meta: &PageMeta,
        started_at_ms: u64,
    ) -> (u64, Option<Arc<Mark>>) {
        let mut inner = self.write();
        let version = inner.commit(key, def, meta, started_at_ms);
        (version, inner.marks.get(key.as_str()).cloned())
    }

    /// Marks the stored pages named (an invalidation's `stale` or `expire`); a page already
    /// marked `expire` keeps that mode (a later `stale` does not weaken it). A marked page's
    /// backoff ends (the invalidation is a reason to try again; its failure count stays).
    /// `only_older`: only versions generated before their mark was made (another instance's
    /// mark, which a version regenerated here since must not take). `pending`: the table still
    /// fills, so a page it lacks is marked when its row arrives. Returns each page marked now
    /// with the mark it holds.
    pub(super) fn mark(
        &self,
        marks: &[(PageKey, Mark)],
        only_older: bool,
        pending: bool,
    ) -> Vec<(PageKey, Arc<Mark>)> {
        let mut inner = self.write();
        let mut marked = Vec::with_capacity(marks.len());
        for (key, mark) in marks {
            match inner.mark_one(key, mark, only_older) {
                Some(held) => marked.push((key.clone(), held)),
                None if pending && !inner.entries.contains_key(key.as_str()) => {
                    inner
                        .pending_marks
                        .insert(key.clone(), (mark.clone(), only_older));
                }
                None => {}
            }
        }
        marked
    }

    /// Forgets the marks of pages never loaded (the table is complete).
    pub(super) fn drop_pending_marks(&self) {
        let mut inner = self.write();
        inner.pending_marks = HashMap::new();
    }

    /// The page's mark, if any.
    pub(super) fn mark_of(&self, key: &str) -> Option<Arc<Mark>> {
        self.read().marks.get(key).cloned()
    }

    /// The page's mark when it was made after `started_at_ms`: the mark a version whose loader
    /// started then keeps (see [`PageTable::commit_generation`]).
    pub(super) fn mark_made_after(&self, key: &str, started_at_ms: u64) -> Option<Mark> {
        self.read()
            .marks
            .get(key)
            .filter(|mark| made_after(mark, started_at_ms))
            .map(|mark| Mark::clone(mark))
    }

    /// Adds pages read from the store at start-up, under one lock, skipping every key the
    /// table already holds: an entry committed (or looked up) while the index was still being
    /// read is at least as new as the row read. Returns how many were added.
    pub(super) fn fill(&self, rows: &[(PageKey, &'static PageDef, PageMeta)]) -> usize {
        let mut inner = self.write();
        let mut added = 0;
        for (key, def, meta) in rows {
            if !inner.entries.contains_key(key.as_str()) {
                inner.commit(key, def, meta, meta.generated_at_ms);
                if let Some((mark, only_older)) = inner.pending_marks.remove(key.as_str()) {
                    inner.mark_one(key, &mark, only_older);
                }
                added += 1;
            }
        }
        added
    }

    /// Counts a failed generation of a stored page and sets its retry deadline
    /// (`retry_at(failures)` gives it); `None` when the page is not in the table.
    pub(super) fn record_failure(
        &self,
        key: &str,
        retry_at: impl FnOnce(u32) -> u64,
    ) -> Option<u32> {
        let mut inner = self.write();
        let inner = &mut *inner;
        let (stored, _) = inner.entries.get_key_value(key)?;
        let backoff = inner.failing.entry(stored.clone()).or_insert(Backoff {
            failures: 0,
            retry_at_ms: 0,
        });
        backoff.failures = backoff.failures.saturating_add(1);
        backoff.retry_at_ms = retry_at(backoff.failures);
        Some(backoff.failures)
    }

    /// Forgets `key`; returns whether it was there.
    pub(super) fn remove(&self, key: &str) -> bool {
        let mut inner = self.write();
        let inner = &mut *inner;
        let Some((stored, entry)) = inner.entries.swap_remove_entry(key) else {
            return false;
        };
        inner.untag_all(&stored, entry.loader_tags.to_vec());
        inner.failing.remove(key);
        inner.redirects.remove(key);
        inner.valid_until.remove(key);
        inner.marks.remove(key);
        if stored.query().is_some() {
            if let Some(variants) = inner.variants.get_mut(stored.path()) {
                variants.remove(key);
                if variants.is_empty() {
                    inner.variants.remove(stored.path());
                }
            }
        }
        true
    }

    /// The stored variants of the page at `path` (`/blog?page=2` of `/blog`), sorted.
    pub(super) fn variants_of(&self, path: &str) -> Vec<PageKey> {
        let mut keys: Vec<PageKey> = self
            .read()
            .variants
            .get(path)
            .map(|keys| keys.iter().cloned().collect())
            .unwrap_or_default();
        keys.sort_unstable();
        keys
    }

    /// Takes one of the `max` places of the page at `path` for a new variant about to be
    /// committed: `false` when the variants held and those being committed fill them. Checked
    /// and taken under one lock, so concurrent new variants never exceed `max`; give it back
    /// with [`PageTable::release_variant`] once the commit is done (or failed).
    pub(super) fn reserve_variant(&self, path: &str, max: usize) -> bool {
        let mut inner = self.write();
        let held = inner.variants.get(path).map_or(0, HashSet::len);
        let pending = inner.variant_reservations.get(path).copied().unwrap_or(0);
        if held + pending >= max {
            return false;
        }
        *inner.variant_reservations.entry(path.into()).or_insert(0) += 1;
        true
    }

    /// Gives back a place taken with [`PageTable::reserve_variant`].
    pub(super) fn release_variant(&self, path: &str) {
        let mut inner = self.write();
        if let Some(pending) = inner.variant_reservations.get_mut(path) {
            *pending = pending.saturating_sub(1);
            if *pending == 0 {
                inner.variant_reservations.remove(path);
            }
        }
    }

    /// How many variants of the page at `path` the table holds.
    pub(super) fn variant_count(&self, path: &str) -> usize {
        self.read().variants.get(path).map_or(0, HashSet::len)
    }

    /// Keys of the pages that carry `tag` now, sorted (index lookups; a route tag walks the
    /// entries once).
    pub(super) fn keys_with_tag(&self, tag: &str) -> Vec<PageKey> {
        let inner = self.read();
        let routes: Vec<u16> = (0..inner.defs.len())
            .filter(|&i| inner.defs[i].tags.contains(&tag))
            .map(|i| i as u16)
            .collect();
        let mut keys: Vec<PageKey> = Vec::new();
        if !routes.is_empty() {
            keys.extend(
                inner
                    .entries
                    .iter()
                    .filter(|(_, e)| routes.contains(&e.route))
                    .map(|(k, _)| k.clone()),
            );
        }
        if let Some(tagged) = inner.tags.get(tag) {
            keys.extend(tagged.keys());
        }
        keys.sort();
        keys.dedup();
        keys
    }

    /// Every key.
    pub(super) fn keys(&self) -> Vec<PageKey> {
        self.read().entries.keys().cloned().collect()
    }
}

impl Inner {
    /// Every tag of `entry`: its route's, then its loader's.
    fn tags_of(&self, entry: &Entry) -> Vec<String> {
        let def = self.defs[usize::from(entry.route)];
        let loader_tags = entry.loader_tags.to_vec();
        let mut tags = Vec::with_capacity(def.tags.len() + loader_tags.len());
        tags.extend(def.tags.iter().map(|t| t.to_string()));
        for id in loader_tags {
            if let Some((tag, _)) = self.tags.get_index(id as usize) {
                tags.push(tag.to_string());
            }
        }
        tags
    }

    /// Marks `key` if it is stored (see [`PageTable::mark`]); the mark it now holds.
    fn mark_one(&mut self, key: &PageKey, mark: &Mark, only_older: bool) -> Option<Arc<Mark>> {
        let (stored, entry) = self.entries.get_key_value(key.as_str())?;
        if only_older && entry.generated_at_ms >= mark.at_ms {
            return None;
        }
        let merged = match self.marks.get(key.as_str()) {
            Some(old) if old.mode > mark.mode => Mark {
                at_ms: old.at_ms.max(mark.at_ms),
                ..Mark::clone(old)
            },
            _ => mark.clone(),
        };
        let merged = Arc::new(merged);
        let stored = stored.clone();
        self.marks.insert(stored, merged.clone());
        if let Some(backoff) = self.failing.get_mut(key.as_str()) {
            backoff.retry_at_ms = 0;
        }
        Some(merged)
    }

    /// See [`PageTable::commit`].
    fn commit(
        &mut self,
        key: &PageKey,
        def: &'static PageDef,
        meta: &PageMeta,
        started_at_ms: u64,
    ) -> u64 {
        let route = self.route_of(def);
        if let Some(old) = self.entries.get_mut(key.as_str()) {
            let old_tags = std::mem::replace(&mut old.loader_tags, TagIds::None).to_vec();
            self.untag_all(key, old_tags);
        }
        let mut ids: Vec<u32> = Vec::new();
        for tag in &meta.tags {
            if def.tags.contains(&tag.as_str()) {
                continue;
            }
            let id = match self.tags.get_full_mut(tag.as_str()) {
                Some((id, _, keys)) => {
                    keys.insert(key);
                    id
                }
                None => {
                    self.tags
                        .insert_full(tag.as_str().into(), TagKeys::One(key.clone()))
                        .0
                }
            } as u32;
            if !ids.contains(&id) {
                ids.push(id);
            }
        }
        self.next_version += 1;
        let version = self.next_version;
        let (kind, etag, bytes) = match &meta.kind {
            PageKind::Page { etag, bytes } => {
                (Kind::Page, *etag, u32::try_from(*bytes).unwrap_or(u32::MAX))
            }
            PageKind::NotFound => (Kind::NotFound, Etag::from_bytes([0; 16]), 0),
            PageKind::Redirect { .. } => (Kind::Redirect, Etag::from_bytes([0; 16]), 0),
        };
        match &meta.kind {
            PageKind::Redirect {
                location,
                permanent,
            } => {
                self.redirects
                    .insert(key.clone(), (location.as_str().into(), *permanent));
            }
            _ => {
                self.redirects.remove(key.as_str());
            }
        }
        // A mark made after this version's generation started stays on it; else the
        // version's own (a row loaded with its mark) replaces it.
        let kept = self
            .marks
            .get(key.as_str())
            .is_some_and(|mark| made_after(mark, started_at_ms));
        if !kept {
            match &meta.mark {
                Some(mark) => {
                    self.marks.insert(key.clone(), Arc::new(mark.clone()));
                }
                None => {
                    self.marks.remove(key.as_str());
                }
            }
        }
        match meta.valid_until_ms {
            Some(at) => {
                self.valid_until.insert(key.clone(), at);
            }
            None => {
                self.valid_until.remove(key.as_str());
            }
        }
        self.failing.remove(key.as_str());
        if key.query().is_some() {
            self.variants
                .entry(key.path().into())
                .or_default()
                .insert(key.clone());
        }
        self.entries.insert(
            key.clone(),
            Entry {
                etag,
                generated_at_ms: meta.generated_at_ms,
                generation: meta.generation,
                version,
                loader_tags: TagIds::from_vec(ids),
                bytes,
                route,
                kind,
            },
        );
        version
    }

    fn route_of(&self, def: &'static PageDef) -> u16 {
        self.defs
            .iter()
            .position(|d| std::ptr::eq(*d, def) || d.path == def.path)
            .map_or(0, |i| i as u16)
    }

    /// Removes `key` from the tags at positions `ids`. A tag left without keys is dropped;
    /// the last tag then moves into its position, and every id that named it is updated
    /// (in the entries that carry it and in the ids still to remove).
    fn untag_all(&mut self, key: &PageKey, mut ids: Vec<u32>) {
        while let Some(id) = ids.pop() {
            let Some((_, keys)) = self.tags.get_index_mut(id as usize) else {
                continue;
            };
            if !keys.remove(key.as_str()) {
                continue;
            }
            let last = (self.tags.len() - 1) as u32;
            self.tags.swap_remove_index(id as usize);
            if id == last {
                continue;
            }
            ids.iter_mut().filter(|i| **i == last).for_each(|i| *i = id);
            let carriers = self
                .tags
                .get_index(id as usize)
                .map(|(_, keys)| keys.keys())
                .unwrap_or_default();
            for carrier in carriers {
                if let Some(entry) = self.entries.get_mut(carrier.as_str()) {
                    entry.loader_tags.moved(last, id);
                }
            }
        }
    }
}

/// Whether `mark` was made after a loader that started at `started_at_ms`, so the version that
/// loader makes keeps it. Strictly after: the data changed before the invalidation arrived, so a
/// loader that started in the mark's own millisecond read the new data.
fn made_after(mark: &Mark, started_at_ms: u64) -> bool {
    mark.at_ms > started_at_ms
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::page::{CacheProfile, Fallback, Generated, Revalidate};
    use futures::future::BoxFuture;

    fn load(_: crate::context::LoadContext) -> BoxFuture<'static, crate::Result<Generated>> {
        Box::pin(async { Ok(Generated::NotFound) })
    }

    static POSTS: PageDef = PageDef {
        id: "table::posts",
        path: "/p/:slug",
        cache: CacheProfile::of(Revalidate::After(1)),
        timeout_secs: None,
        fallback: Fallback::Blocking,
        tags: &["posts"],
        load,
        paths: None,
        accepts: crate::page::accept_all,
        check: crate::page::nothing_to_check,
        content_type: None,
        hydration: crate::model::Hydration::Full {
            export: "isr_hydrate_test",
        },
        query: crate::page::QuerySpec::NONE,
    };

    fn meta(key: &str, tags: &[&str]) -> PageMeta {
        PageMeta {
            key: key.into(),
            route: POSTS.path.into(),
            generated_at_ms: 1,
            generation: 0,
            kind: PageKind::NotFound,
            tags: tags.iter().map(|t| t.to_string()).collect(),
            valid_until_ms: None,
            mark: None,
        }
    }

    fn keys(table: &PageTable, tag: &str) -> Vec<String> {
        table
            .keys_with_tag(tag)
            .iter()
            .map(|k| k.to_string())
            .collect()
    }

    /// Pages come and go and change tags in every order; the tag index always answers exactly
    /// what a scan of the pages would (checked against a plain model after every step).
    #[test]
    fn the_tag_index_matches_a_model_through_random_changes() {
        let table = PageTable::new(&[&POSTS]);
        let mut model: HashMap<String, Vec<String>> = HashMap::new();
        let mut rng = fastrand::Rng::with_seed(7);
        for _ in 0..3_000 {
            let key = format!("/p/k{}", rng.usize(..40));
            if rng.u8(..4) == 0 {
                table.remove(&key);
                model.remove(&key);
            } else {
                let mut tags: Vec<String> = (0..rng.usize(..4))
                    .map(|_| format!("t{}", rng.usize(..12)))
                    .collect();
                if rng.bool() {
                    tags.push(format!("own:{key}"));
                }
                let tag_refs: Vec<&str> = tags.iter().map(String::as_str).collect();
                table.commit(
                    &crate::route::test_key(&key),
                    &POSTS,
                    &meta(&key, &tag_refs),
                );
                model.insert(key.clone(), tags);
            }
            for tag in (0..12).map(|t| format!("t{t}")).chain(["own:/p/k3".into()]) {
                let mut expected: Vec<String> = model
                    .iter()
                    .filter(|(_, tags)| tags.contains(&tag))
                    .map(|(k, _)| k.clone())
                    .collect();
                expected.sort();
                assert_eq!(keys(&table, &tag), expected, "tag {tag}");
            }
            let mut all: Vec<String> = model.keys().cloned().collect();
            all.sort();
            assert_eq!(keys(&table, "posts"), all, "route tag");
        }
        for (key, tags) in &model {
            let mut got = table.tags(key);
            let mut want: Vec<String> = std::iter::once("posts".to_string())
                .chain(tags.iter().cloned())
                .collect();
            got.sort();
            want.sort();
            want.dedup();
            assert_eq!(got, want, "{key}");
        }
    }

    /// `tags_at` answers the page's current tags and whether the version asked about is still
    /// the table's: a copy read for an older commit is not kept resident.
    #[test]
    fn tags_at_says_whether_a_version_is_still_current() {
        let table = PageTable::new(&[&POSTS]);
        let key = crate::route::test_key("/p/a");
        let first = table.commit(&key, &POSTS, &meta("/p/a", &["a", "b"]));
        assert_eq!(table.tags_at("/p/a", first), (table.tags("/p/a"), true));
        assert!(table
            .tags("/p/a")
            .ends_with(&["a".to_string(), "b".to_string()]));
        let second = table.commit(&key, &POSTS, &meta("/p/a", &["c"]));
        let (tags, current) = table.tags_at("/p/a", first);
        assert!(!current, "an older commit is not current");
        assert_eq!(tags, table.tags("/p/a"));
        assert!(tags.ends_with(&["c".to_string()]) && !tags.contains(&"a".to_string()));
        assert!(table.tags_at("/p/a", second).1);
        assert_eq!(table.tags_at("/p/none", second), (Vec::new(), false));
    }

    #[test]
    fn failures_and_redirects_live_beside_the_entry_and_go_with_a_commit() {
        let table = PageTable::new(&[&POSTS]);
        let key = crate::route::test_key("/p/a");
        let mut m = meta("/p/a", &[]);
        m.kind = PageKind::Redirect {
            location: "/elsewhere".into(),
            permanent: true,
        };
        table.commit(&key, &POSTS, &m);
        assert_eq!(table.snapshot("/p/a").unwrap().kind, m.kind);
        assert_eq!(
            table.record_failure("/p/a", |n| u64::from(n) * 100),
            Some(1)
        );
        assert_eq!(
            table.record_failure("/p/a", |n| u64::from(n) * 100),
            Some(2)
        );
        assert_eq!(table.snapshot("/p/a").unwrap().retry_at_ms, 200);
        assert_eq!(table.record_failure("/p/nope", |_| 1), None);
        table.commit(&key, &POSTS, &meta("/p/a", &[]));
        let snapshot = table.snapshot("/p/a").unwrap();
        assert_eq!(
            (snapshot.kind, snapshot.retry_at_ms),
            (PageKind::NotFound, 0)
        );
        assert_eq!(table.failures("/p/a"), Some(0));
    }
}
