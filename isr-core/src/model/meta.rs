//! What is known about one generated page besides its bytes: [`PageMeta`] and [`PageKind`].

use super::etag::Etag;
use serde::{Deserialize, Serialize};

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
///     kind: isr::store::PageKind::NotFound, tags: vec!["posts".into()], valid_until_ms: None, mark: None,
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
    /// When this version stops being valid (`Load::valid_until`, or a `Load::NotYet`'s
    /// time), in milliseconds since the Unix epoch (wall clock: persisted and shared across
    /// instances). From then on it is expired: never served before it is regenerated.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub valid_until_ms: Option<u64>,
    /// An on-demand invalidation's mark on this version (modes `stale` and `expire`), until a
    /// generation that started after it replaces the version.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mark: Option<super::Mark>,
}
