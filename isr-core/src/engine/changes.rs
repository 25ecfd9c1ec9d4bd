//! Telling the outside (a CDN in front) that a page's content changed.

use crate::route::PageKey;
use futures::future::BoxFuture;

/// Told when a page's content changed, once the new version is in place: a generation gave
/// other bytes (or a not-found, or a redirect) than the page had, or an on-demand revalidation
/// regenerated it. `isr::cdn::CdnPurger` is the implementation `App` installs for
/// `--cdn-purge`.
///
/// ```
/// use futures::future::BoxFuture;
/// struct Log;
/// impl isr::engine::PageChanges for Log {
///     fn changed(&self, key: &isr::PageKey) -> BoxFuture<'static, bool> {
///         println!("{key} changed");
///         Box::pin(async { true })
///     }
/// }
/// let log: std::sync::Arc<dyn isr::engine::PageChanges> = std::sync::Arc::new(Log);
/// # let _ = log;
/// ```
pub trait PageChanges: Send + Sync + 'static {
    /// `key` changed. The future says whether the first delivery of the news succeeded; it
    /// may be dropped: delivery (and its retries) goes on without it.
    fn changed(&self, key: &PageKey) -> BoxFuture<'static, bool>;
}
