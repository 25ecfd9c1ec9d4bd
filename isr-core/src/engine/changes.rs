//! Telling the outside (the CDNs in front) what changed, so that they drop their copies.

use crate::route::PageKey;
use futures::future::BoxFuture;
use serde::{Deserialize, Serialize};

/// How a CDN drops the copies a change reaches.
///
/// ```
/// use isr::engine::PurgeKind;
/// assert_eq!(PurgeKind::default(), PurgeKind::Soft);
/// let kind: PurgeKind = serde_json::from_str("\"hard\"").unwrap();
/// assert_eq!(kind, PurgeKind::Hard);
/// assert_eq!(kind.as_str(), "hard");
/// ```
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord, Deserialize, Serialize,
)]
#[serde(rename_all = "snake_case")]
pub enum PurgeKind {
    /// Marked stale: the CDN keeps serving its copy while it fetches the new one (Varnish
    /// xkey `softpurge`, Fastly soft purge, Akamai invalidate, Cloudflare's stale purge), so
    /// the origin never gets every request at once. Where a CDN cannot, a hard purge.
    #[default]
    Soft,
    /// Removed: the next request waits for the origin. Used for pages that no longer exist,
    /// `expire` invalidations (the new version must be the next one served) and when asked.
    Hard,
}

impl PurgeKind {
    /// `soft` or `hard` (the metric label and the JSON value).
    pub fn as_str(self) -> &'static str {
        match self {
            PurgeKind::Soft => "soft",
            PurgeKind::Hard => "hard",
        }
    }

    /// How a page that now is `kind` is purged: hard when it no longer exists (its copies
    /// must not be served while the CDN refetches), soft otherwise.
    pub(crate) fn for_kind(kind: &crate::model::PageKind) -> PurgeKind {
        match kind {
            crate::model::PageKind::NotFound => PurgeKind::Hard,
            _ => PurgeKind::Soft,
        }
    }
}

/// One page a change reaches, with the tags its answers carried (route and loader tags),
/// when known: a CDN whose tag budget dropped a tag from a page's headers purges that page by
/// its path instead.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ChangedPage {
    /// The page.
    pub key: PageKey,
    /// Its tags; `None` when unknown (the page is then purged by its path as well).
    pub tags: Option<Vec<String>>,
}

/// What changed, once the new versions are in place (a regeneration gave other bytes, a
/// not-found or a redirect; an on-demand revalidation regenerated or marked pages; a page
/// was removed).
///
/// ```
/// use isr::engine::{Change, PurgeKind};
/// // An on-demand revalidation of the tag `posts`: one tag purge where the CDN has tags.
/// let change = Change { pages: Vec::new(), tags: vec!["posts".into()], purge: PurgeKind::Soft };
/// assert!(change.pages.is_empty() && change.purge == PurgeKind::Soft);
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Change {
    /// Every page that changed.
    pub pages: Vec<ChangedPage>,
    /// Tags an on-demand revalidation named as a whole: a CDN that purges by tag purges each
    /// tag once instead of each of its pages (which are in `pages`, for CDNs without tags).
    pub tags: Vec<String>,
    /// Soft or hard.
    pub purge: PurgeKind,
}

impl Change {
    /// One page, purged by its path.
    pub fn page(key: PageKey, purge: PurgeKind) -> Change {
        Change {
            pages: vec![ChangedPage { key, tags: None }],
            tags: Vec::new(),
            purge,
        }
    }
}

/// Told what changed, once the new version is in place. `isr::cdn::CdnPurger` is the
/// implementation `App` installs for `--cdn-purge`, `--fastly-service`, …
///
/// ```
/// use futures::future::BoxFuture;
/// struct Log;
/// impl isr::engine::PageChanges for Log {
///     fn changed(&self, change: isr::engine::Change) -> BoxFuture<'static, bool> {
///         for page in &change.pages {
///             println!("{} changed", page.key);
///         }
///         Box::pin(async { true })
///     }
/// }
/// let log: std::sync::Arc<dyn isr::engine::PageChanges> = std::sync::Arc::new(Log);
/// # let _ = log;
/// ```
pub trait PageChanges: Send + Sync + 'static {
    /// `change` happened. The future says whether the first delivery of the news succeeded
    /// everywhere; it may be dropped: delivery (and its retries) goes on without it.
    fn changed(&self, change: Change) -> BoxFuture<'static, bool>;
}
