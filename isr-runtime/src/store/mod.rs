//! Persistence of generated pages: the [`PageStore`] trait and what it stores.
//!
//! The engine keeps hot pages in memory; a store is the tier that survives a restart.

mod fs;
mod memory;

pub use fs::{FsStore, META_DIR};
pub use memory::MemoryStore;

use crate::page::Params;
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
    /// An HTML page; `etag` is the strong validator of its bytes.
    Page { etag: String, bytes: u64 },
    /// The loader said the page does not exist.
    NotFound,
    /// The loader redirected.
    Redirect { location: String, permanent: bool },
}

impl PageKind {
    /// Whether there is HTML for this page.
    ///
    /// ```
    /// let kind = isr::store::PageKind::Page { etag: "\"x\"".into(), bytes: 1 };
    /// assert!(kind.is_page());
    /// ```
    pub fn is_page(&self) -> bool {
        matches!(self, PageKind::Page { .. })
    }
}

/// Everything known about one generated page except its HTML.
///
/// ```
/// let meta = isr::store::PageMeta {
///     key: "/blog".into(), route: "/blog".into(), params: isr::Params::new(),
///     generated_at_ms: 0, kind: isr::store::PageKind::NotFound, tags: vec!["posts".into()],
/// };
/// assert!(meta.tags.contains(&"posts".to_string()));
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PageMeta {
    /// The page's canonical path.
    pub key: String,
    /// The route pattern it belongs to (`/blog/:slug`).
    pub route: String,
    /// The route params it was generated with.
    pub params: Params,
    /// When its generation finished, in milliseconds since the Unix epoch.
    pub generated_at_ms: u64,
    /// Page, not-found or redirect.
    #[serde(flatten)]
    pub kind: PageKind,
    /// Attribute tags plus the tags its loader returned.
    pub tags: Vec<String>,
}

/// A persistent home for generated pages. Methods block: call them off the async runtime.
///
/// ```
/// use isr::store::{PageStore, MemoryStore};
/// let store = MemoryStore::default();
/// assert!(store.load_index().unwrap().is_empty());
/// ```
pub trait PageStore: Send + Sync + 'static {
    /// Metadata of every stored page (called once at start-up). Entries whose HTML is missing
    /// are dropped here.
    fn load_index(&self) -> io::Result<Vec<PageMeta>>;

    /// The HTML of a page, if any is stored.
    fn read_html(&self, key: &str) -> io::Result<Option<Vec<u8>>>;

    /// Stores a page atomically: HTML first (or its removal when `html` is `None`), then its
    /// metadata. A reader sees the old page or the new one, never a mix of the two.
    fn write(&self, meta: &PageMeta, html: Option<&[u8]>) -> io::Result<()>;

    /// Forgets a page entirely (HTML and metadata).
    fn remove(&self, key: &str) -> io::Result<()>;

    /// Makes everything written so far durable (used after a build).
    fn sync(&self) -> io::Result<()> {
        Ok(())
    }

    /// While on, writes skip their per-file fsync (still atomic: temp file + rename); the
    /// caller makes them durable at once with [`PageStore::sync`]. The build uses this: one
    /// file-system sync instead of one fsync per page.
    fn defer_sync(&self, _deferred: bool) {}
}
