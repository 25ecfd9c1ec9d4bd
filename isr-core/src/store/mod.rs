//! Persistence of generated pages: the [`PageStore`] trait and what it stores.
//!
//! The engine keeps every page's metadata in its page table and some pages' bytes in its hot
//! cache; a store is the tier that survives a restart (and, later, the tier several instances
//! share). The interface is async and per key, so a networked store can implement it; stores
//! run their blocking work on tokio's blocking pool, never on the async workers. This crate
//! has the in-memory [`MemoryStore`]; `isr` has the file store (`isr::store::FsStore`: a
//! static export with a SQLite index).

mod commit_stamp;
mod memory;

pub use crate::model::{Etag, Mark, MarkMode, PageKind, PageMeta, RepresentationEtags};
pub use commit_stamp::CommitStamp;
pub use memory::MemoryStore;

use crate::encoding::{Encoding, Variants};
use crate::model::PageKey;
use futures::future::BoxFuture;
use futures::stream::BoxStream;
use std::io;

/// A page's bytes as read back by [`PageStore::committed_body`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoredBody {
    /// The bytes of every stored encoding.
    pub variants: Variants,
    /// Whether every file read is the one the named commit wrote.
    pub committed: bool,
    /// Whether only some encodings were read (the HTML and the one asked for: see
    /// [`PageStore::committed_body`]); the others may be stored all the same.
    pub partial: bool,
}

/// A future returned by a store.
pub type StoreFuture<T> = BoxFuture<'static, io::Result<T>>;

/// A persistent, per-key home for generated pages.
///
/// Contract every implementation keeps:
/// - [`put`](PageStore::put) is atomic per page: a reader (or a crash) sees the old page or the
///   new one, never a mix; the body is written before the metadata that describes it.
/// - [`body`](PageStore::body) returns the stored bytes as they are; the engine checks them
///   against the metadata (length and hash, and the compressed variants against the HTML)
///   before serving them.
/// - Errors are reported, never hidden: a transient read error is an `Err`, not `Ok(None)`.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> std::io::Result<()> {
/// use isr::store::{PageStore, MemoryStore};
/// let store = MemoryStore::default();
/// assert!(store.load().await?.is_empty());
/// # Ok(()) }
/// ```
pub trait PageStore: Send + Sync + 'static {
    /// Metadata of every stored page.
    fn load(&self) -> StoreFuture<Vec<PageMeta>>;

    /// Metadata of every stored page in batches, as they are read: start-up fills the page
    /// table while the store is still reading. The default yields [`PageStore::load`] as one
    /// batch.
    fn load_batches(&self) -> BoxStream<'static, io::Result<Vec<PageMeta>>> {
        Box::pin(futures::stream::once(self.load()))
    }

    /// Keys of static file routes (`/blog/feed.xml`): stored under their own file name rather
    /// than as a folder with `index.html`, so that a static file server serves the export as it
    /// is. Called once, before any page is read or written; later calls are ignored.
    fn set_file_keys(&self, _keys: &[String]) {}

    /// The metadata of one page.
    fn meta(&self, key: &PageKey) -> StoreFuture<Option<PageMeta>>;

    /// The bytes of a page in every encoding stored, if its HTML is stored.
    fn body(&self, key: &PageKey) -> StoreFuture<Option<Variants>>;

    /// The bytes of a page as [`PageStore::body`], and whether the store vouches that every
    /// file it read is the one it wrote in the commit `stamp` names (unchanged since, see
    /// [`CommitStamp`]): then the engine serves them without checking their content. With
    /// `only`, the store may read just the HTML and that encoding (a request that wants it;
    /// [`StoredBody::partial`] says it did), but reads every encoding when that one is not
    /// stored. The default vouches for nothing and reads everything.
    fn committed_body(
        &self,
        key: &PageKey,
        stamp: CommitStamp,
        only: Option<Encoding>,
    ) -> StoreFuture<Option<StoredBody>> {
        let _ = (stamp, only);
        let body = self.body(key);
        Box::pin(async move {
            Ok(body.await?.map(|variants| StoredBody {
                variants,
                committed: false,
                partial: false,
            }))
        })
    }

    /// Stores a page atomically and durably: its body in every encoding given (or the body's
    /// removal when `body` is `None`), then its metadata. Durable even while a build defers
    /// its own writes' durability ([`PageStore::defer_sync`]): a page regenerated for a request
    /// during a background rebuild is on disk when this returns.
    fn put(&self, key: &PageKey, meta: PageMeta, body: Option<Variants>) -> StoreFuture<()>;

    /// Like [`PageStore::put`], for a build's page: while [`PageStore::defer_sync`] is on, its
    /// durability may wait for [`PageStore::sync`] (still atomic).
    fn put_deferred(
        &self,
        key: &PageKey,
        meta: PageMeta,
        body: Option<Variants>,
    ) -> StoreFuture<()> {
        self.put(key, meta, body)
    }

    /// Forgets a page entirely (body and metadata).
    fn remove(&self, key: &PageKey) -> StoreFuture<()>;

    /// Sets (with `None`: clears) the invalidation mark ([`PageMeta::mark`]) of each stored
    /// page named, durably and at once for all of them (one transaction); keys not stored are
    /// skipped. An invalidation of mode `stale` or `expire` calls it, so that a restart never
    /// brings an invalidated version back as fresh.
    fn set_marks(&self, marks: Vec<(PageKey, Option<Mark>)>) -> StoreFuture<()>;

    /// Keys of the stored pages that carry `tag` (an indexed lookup, not a scan).
    fn keys_with_tag(&self, tag: &str) -> StoreFuture<Vec<String>>;

    /// Makes everything written so far durable (after a build).
    fn sync(&self) -> StoreFuture<()> {
        Box::pin(async { Ok(()) })
    }

    /// While on, [`PageStore::put_deferred`] writes may skip their per-write durability (still
    /// atomic); the caller makes them durable at once with [`PageStore::sync`]. The build uses
    /// this; [`PageStore::put`] stays durable.
    fn defer_sync(&self, _deferred: bool) {}

    /// Start-up housekeeping: removes what a crash left behind (temporary files). Returns how
    /// many files it removed. The engine runs it in the background after opening.
    fn sweep(&self) -> StoreFuture<usize> {
        Box::pin(async { Ok(0) })
    }
}
