//! Start-up: filling the page table from the store, in the foreground or while serving.
//!
//! While the table is incomplete ([`LoadState::is_complete`] is false), the engine treats "not
//! in the table" as "ask the store": a request looks its one key up ([`PageStore::meta`]) and
//! a tag revalidation asks the store's tag index, so a restart serves stored pages at once
//! instead of after reading every row. Rows read at start-up never replace an entry the table
//! already holds (see `PageTable::fill`). A load that fails half-way leaves the table
//! incomplete for good: the engine goes on asking the store, and says so in the log.

use super::table::PageTable;
use super::Engine;
use crate::page::PageDef;
use crate::route::{PageKey, Routes};
use crate::store::PageMeta;
use futures::stream::BoxStream;
use futures::StreamExt;
use std::io;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::{Arc, Weak};
use std::time::Instant;

/// Rows added to the table under one lock while requests are served.
const FILL_CHUNK: usize = 1024;

const LOADING: u8 = 0;
const COMPLETE: u8 = 1;
const INCOMPLETE: u8 = 2;

/// Whether the page table holds every stored page yet.
pub(super) struct LoadState(AtomicU8);

impl LoadState {
    pub(super) fn loading() -> Self {
        LoadState(AtomicU8::new(LOADING))
    }

    pub(super) fn complete() -> Self {
        LoadState(AtomicU8::new(COMPLETE))
    }

    /// Whether every stored page is in the table (a key missing from it is not stored).
    pub(super) fn is_complete(&self) -> bool {
        self.0.load(Ordering::Acquire) == COMPLETE
    }

    fn finish(&self, complete: bool) {
        let state = if complete { COMPLETE } else { INCOMPLETE };
        self.0.store(state, Ordering::Release);
    }
}

/// Stored rows routed to their page definitions; rows of routes that no longer exist are
/// counted in `ignored`.
struct RowRouter<'a> {
    routes: &'a Routes,
    ignored: usize,
}

impl RowRouter<'_> {
    fn route(&mut self, batch: Vec<PageMeta>) -> Vec<(PageKey, &'static PageDef, PageMeta)> {
        let mut routed = Vec::with_capacity(batch.len());
        for meta in batch {
            match routed_row(self.routes, meta) {
                Some(row) => routed.push(row),
                None => self.ignored += 1,
            }
        }
        routed
    }
}

/// The page definition and key of a stored row, if its route still exists.
pub(super) fn routed_row(
    routes: &Routes,
    meta: PageMeta,
) -> Option<(PageKey, &'static PageDef, PageMeta)> {
    match routes.page_of_key(&meta.key) {
        Some((def, key)) if def.path == meta.route => Some((key, def, meta)),
        _ => {
            tracing::debug!(key = %meta.key, route = %meta.route, "stored page has no route any more; ignored");
            None
        }
    }
}

fn log_loaded(table: &PageTable, ignored: usize, started: Instant) {
    if ignored > 0 {
        tracing::info!(
            ignored,
            "stored pages whose route no longer exists were ignored"
        );
    }
    tracing::info!(
        pages = table.len(),
        ms = started.elapsed().as_millis() as u64,
        "page index loaded"
    );
}

/// Reads every batch into `table` before returning (the build, tests, embedders that want a
/// complete table at once).
pub(super) async fn load_all(
    table: &PageTable,
    routes: &Routes,
    mut batches: BoxStream<'static, io::Result<Vec<PageMeta>>>,
) -> io::Result<()> {
    let started = Instant::now();
    let mut router = RowRouter { routes, ignored: 0 };
    while let Some(batch) = batches.next().await {
        table.fill(&router.route(batch?));
    }
    table.shrink_to_fit();
    log_loaded(table, router.ignored, started);
    Ok(())
}

/// Fills the table of `engine` from the rest of `batches` in the background, `FILL_CHUNK`
/// rows per lock, yielding between chunks so requests keep their workers. Stops (leaving the
/// table incomplete) on a read error, and quietly when the engine is dropped.
pub(super) fn fill_in_background(
    engine: &Arc<Engine>,
    mut batches: BoxStream<'static, io::Result<Vec<PageMeta>>>,
    started: Instant,
) {
    let engine: Weak<Engine> = Arc::downgrade(engine);
    tokio::spawn(async move {
        let mut ignored = 0;
        while let Some(batch) = batches.next().await {
            let Some(engine) = engine.upgrade() else {
                return;
            };
            let batch = match batch {
                Ok(batch) => batch,
                Err(error) => {
                    tracing::error!(%error, pages = engine.table.len(), "could not read the whole page index; pages not yet loaded are looked up one by one");
                    engine.loading.finish(false);
                    return;
                }
            };
            let mut router = RowRouter {
                routes: &engine.routes,
                ignored: 0,
            };
            let rows = router.route(batch);
            ignored += router.ignored;
            for chunk in rows.chunks(FILL_CHUNK) {
                engine.table.fill(chunk);
                tokio::task::yield_now().await;
            }
        }
        if let Some(engine) = engine.upgrade() {
            engine.table.shrink_to_fit();
            engine.loading.finish(true);
            engine.table.drop_pending_marks();
            log_loaded(&engine.table, ignored, started);
            // Pages committed or marked elsewhere while this instance was away.
            engine.recheck_shared();
        }
    });
}
