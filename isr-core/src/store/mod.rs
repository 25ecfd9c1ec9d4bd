//! Persistence of generated pages: the [`PageStore`] trait and what it stores.
//!
//! The engine keeps every page's metadata in its page table and some pages' bytes in its hot
//! cache; a store is the tier that survives a restart (and, later, the tier several instances
//! share). The interface is async and per key, so a networked store can implement it; stores
//! run their blocking work on tokio's blocking pool, never on the async workers. This crate
//! has the in-memory [`MemoryStore`]; `isr` has the file store (`isr::store::FsStore`: a
//! static export with a SQLite index).

mod commit_stamp;
mod etag;
mod memory;

pub use commit_stamp::CommitStamp;
pub use etag::{Etag, RepresentationEtags};
pub use memory::MemoryStore;

use crate::encoding::{Encoding, Variants};
use crate::route::PageKey;
use futures::future::BoxFuture;
use futures::stream::BoxStream;
use serde::{Deserialize, Serialize};
use std::io;

/// What a stored page is.
///
/// ```
/// let kind = isr::store::PageKind::NotFound;
/// assert!(!kind.is_page());
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum PageKind {
    /// An HTML page of `bytes` bytes whose SHA-256 starts with `etag`.
    Page {
        /// The identity (uncompressed) bytes' validator.
        etag: Etag,
        /// Length of the identity bytes.
        bytes: u64,
    },
    /// The loader said the page does not exist (a tombstone of a page that existed).
    NotFound,
    /// The loader redirected.
    Redirect {
        /// The target, as the loader gave it (a path or an absolute URL).
        location: String,
        /// `true`: 308, `false`: 307.
        permanent: bool,
    },
}

impl PageKind {
    /// Whether there is HTML for this page.
    ///
    /// ```
    /// let kind = isr::store::PageKind::Page { etag: isr::store::Etag::of(b"x"), bytes: 1 };
    /// assert!(kind.is_page());
    /// ```
    pub fn is_page(&self) -> bool {
        matches!(self, PageKind::Page { .. })
    }
}

/// Everything known about one generated page except its bytes (a row of the index).
///
/// The route params are not stored: the router derives them from the key.
///
/// ```
/// let meta = isr::store::PageMeta {
///     key: "/blog".into(), route: "/blog".into(), generated_at_ms: 0, generation: 0,
///     kind: isr::store::PageKind::NotFound, tags: vec!["posts".into()],
/// };
/// assert!(meta.tags.contains(&"posts".to_string()));
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PageMeta {
    /// The page's canonical (decoded) path.
    pub key: String,
    /// The route pattern it belongs to (`/blog/:slug`).
    pub route: String,
    /// When its generation finished, in milliseconds since the Unix epoch (wall clock: it is
    /// persisted and compared across restarts). A page pulled from the shared tier carries the
    /// time this instance's clock gives its commit (its age as the shared tier measured it).
    pub generated_at_ms: u64,
    /// Its version in the shared tier: a counter the tier raises by one on every commit of the
    /// page (1, 2, …), whatever any instance's clock says; 0 for a page never committed there.
    /// Which of two versions is newer is told by this, never by a time.
    #[serde(default)]
    pub generation: u64,
    /// Page, not-found or redirect.
    #[serde(flatten)]
    pub kind: PageKind,
    /// Attribute tags plus the tags its loader returned.
    pub tags: Vec<String>,
}

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
