//! The engine's view of the shared tier: what it asks of a store that several instances
//! share (leases with fencing tokens, fenced commits, pulls, tag lookups, change events).
//! The engine calls only this trait; `isr`'s Redis implementation (`isr::shared::RedisTier`,
//! feature `redis`) is one. Every call may fail (`io::Error`): the engine then goes on with
//! its local tiers and writes back later.

use crate::encoding::Variants;
use crate::metrics;
use crate::route::PageKey;
use crate::store::{Mark, PageMeta};
use futures::future::BoxFuture;
use std::io;
use std::sync::{Arc, Weak};
use std::time::Duration;

/// How long a call on a request's path (a lease, a generation check) may take.
pub const REQUEST_TIMEOUT: Duration = Duration::from_millis(500);
/// How long a commit or a pull (page bodies) may take.
pub const TRANSFER_TIMEOUT: Duration = Duration::from_secs(3);
/// A store that instances share: what the engine needs of it. Implementations bound every
/// call in time (at most [`REQUEST_TIMEOUT`] on a request's path, [`TRANSFER_TIMEOUT`] for
/// page bodies) and fail fast while the store is down.
pub trait SharedTier: Send + Sync + 'static {
    /// This process's name in events and page records (unique per instance).
    fn instance(&self) -> &str;

    /// How long a lease lives unless renewed (the holder renews it every third of it).
    fn lease_ttl(&self) -> Duration;

    /// Tries to take `key`'s lease; the returned [`Lease`] renews itself until dropped.
    fn acquire<'a>(self: Arc<Self>, key: &'a PageKey) -> BoxFuture<'a, io::Result<Acquired>>;

    /// Extends a lease; `false` when it is no longer ours.
    fn renew<'a>(&'a self, key: &'a PageKey, token: u64) -> BoxFuture<'a, io::Result<bool>>;

    /// Deletes a lease if it is still ours.
    fn release<'a>(&'a self, key: &'a PageKey, token: u64) -> BoxFuture<'a, io::Result<()>>;

    /// `key`'s stored generation (0: none) and whether its lease is held.
    fn watch<'a>(&'a self, key: &'a PageKey) -> BoxFuture<'a, io::Result<(u64, bool)>>;

    /// Commits a generated page as its next generation (one past the larger of the stored one
    /// and `meta.generation`, the version the page replaced): with a lease's `token` (fenced:
    /// refused when a newer token is stored), or with token 0 as a write-back of a page
    /// generated while the tier was down (refused when the tier holds a generation newer than
    /// `meta.generation`: another instance committed meanwhile). `age` is how old the page is
    /// by the committer's own clock (a write-back's is the outage's length), so the tier dates
    /// the version by its own clock, minus that. `keep_unchanged`: an unchanged etag keeps the
    /// stored generation (the build). `started_at_ms`: when the version's loader started (0:
    /// unknown); the page's mark stays on the new version when it was made after that, and is
    /// cleared otherwise. Releases the lease when it is still ours.
    fn commit<'a>(
        &'a self,
        token: u64,
        meta: &'a PageMeta,
        body: Option<&'a Variants>,
        keep_unchanged: bool,
        age: Duration,
        started_at_ms: u64,
    ) -> BoxFuture<'a, io::Result<Commit>>;

    /// The page as the tier holds it, if it does.
    fn pull<'a>(&'a self, key: &'a PageKey) -> BoxFuture<'a, io::Result<Option<SharedPage>>>;

    /// The stored generation of each of `keys` (0: none) and its invalidation mark, within
    /// `timeout`.
    fn generations<'a>(
        &'a self,
        keys: &'a [PageKey],
        timeout: Duration,
    ) -> BoxFuture<'a, io::Result<Vec<SharedVersion>>>;

    /// Up to `limit` keys of pages (committed by any instance) that carry `tag`.
    fn keys_with_tag<'a>(
        &'a self,
        tag: &'a str,
        limit: usize,
    ) -> BoxFuture<'a, io::Result<Vec<String>>>;

    /// Starts applying other instances' commits to `sink`, until the sink is dropped.
    fn follow_events(self: Arc<Self>, sink: Weak<dyn EventSink>);

    /// Publishes an invalidation's mark on each page named that the tier holds: kept with the
    /// page (an instance that missed the news finds it when it re-checks its pages:
    /// [`SharedTier::generations`]; a commit of a version whose loader started after it clears
    /// it), an `expire` never weakened by a `stale`, and announced to every instance
    /// ([`EventSink::pages_marked`]). Returns the keys marked.
    fn publish_marks<'a>(
        &'a self,
        marks: &'a [(PageKey, Mark)],
    ) -> BoxFuture<'a, io::Result<Vec<String>>>;
}

/// What the event reader tells the engine.
pub trait EventSink: Send + Sync + 'static {
    /// Another instance committed `key` as `generation`.
    fn page_changed(self: Arc<Self>, key: &str, generation: u64);
    /// Another instance marked these pages (an invalidation of mode `stale` or `expire`).
    fn pages_marked(self: Arc<Self>, marks: Vec<(String, Mark)>);
    /// Events may have been missed: every local page must be re-checked against Redis.
    fn resync(self: Arc<Self>);
    /// Redis answers again after being unreachable (write back what was generated meanwhile).
    fn reconnected(self: Arc<Self>);
}

/// What [`SharedTier::acquire`] found.
pub enum Acquired {
    /// The lease is ours: run the loader. `stored_generation` is the page's generation in
    /// Redis (0: none).
    Lead {
        /// Ours until dropped or committed; it renews itself meanwhile.
        lease: Lease,
        /// The page's generation in the tier (a counter); 0 when none is stored.
        stored_generation: u64,
    },
    /// Another instance holds the lease.
    Held {
        /// The page's generation in the tier (a counter); 0 when none is stored.
        stored_generation: u64,
    },
}

/// What the tier holds of one page, for a check against the local version: its generation
/// and its invalidation mark.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SharedVersion {
    /// The stored generation (0: none).
    pub generation: u64,
    /// The page's mark (see [`SharedTier::publish_marks`]).
    pub mark: Option<Mark>,
}

/// What a commit did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Commit {
    /// Written as `generation`.
    Written {
        /// The next generation: one past the larger of the stored one and the one the page
        /// replaced (so generations only grow, also after the tier lost its data).
        generation: u64,
        /// The invalidation mark the new version keeps (made after its loader started).
        mark: Option<Mark>,
    },
    /// Refused: a newer token or generation is stored (`stored_generation`).
    Rejected {
        /// The generation Redis keeps (0: none).
        stored_generation: u64,
    },
    /// The build found the same content stored: nothing was written.
    Unchanged {
        /// The generation Redis keeps, unchanged.
        stored_generation: u64,
    },
}

/// A page as the shared tier holds it.
#[derive(Clone, Debug)]
pub struct SharedPage {
    /// Its record, with `generation` set to the shared generation (`generated_at_ms` is the
    /// committing instance's clock: see [`age`](Self::age)).
    pub meta: PageMeta,
    /// How long ago it was committed, measured by the shared tier's own clock (so no
    /// instance's clock skew enters it); `None` when the tier does not know.
    pub age: Option<Duration>,
    /// Its bytes in each stored encoding; `None` for a not-found or a redirect.
    pub body: Option<Variants>,
    /// The instance that committed it (see [`SharedTier::instance`]).
    pub origin: Option<String>,
}

/// The right to regenerate one page across all instances, identified by its fencing token.
/// Dropping it releases the lease; a commit with it releases it too.
pub struct Lease {
    tier: Arc<dyn SharedTier>,
    key: PageKey,
    token: u64,
    renewal: tokio::task::AbortHandle,
    released: bool,
}

impl Lease {
    /// Starts renewing the lease `token` on `key` that `tier` granted, every third of its
    /// time to live, until it is dropped or committed.
    pub fn start(tier: Arc<dyn SharedTier>, key: PageKey, token: u64) -> Lease {
        let renewal = {
            let (tier, key) = (tier.clone(), key.clone());
            tokio::spawn(async move {
                let period = tier.lease_ttl() / 3;
                loop {
                    tokio::time::sleep(period).await;
                    match tier.renew(&key, token).await {
                        Ok(true) => {}
                        Ok(false) => {
                            metrics::redis_lease("lost");
                            tracing::warn!(path = %key, token, "lost the page's lease (it expired); a commit with it will be refused if another instance regenerated the page");
                            return;
                        }
                        // Redis unreachable: keep trying while the loader runs.
                        Err(error) => tracing::debug!(path = %key, %error, "could not renew the lease"),
                    }
                }
            })
            .abort_handle()
        };
        Lease {
            tier,
            key,
            token,
            renewal,
            released: false,
        }
    }

    /// The fencing token.
    pub fn token(&self) -> u64 {
        self.token
    }

    /// The commit script released the lease.
    pub fn released_by_commit(mut self) {
        self.released = true;
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        self.renewal.abort();
        if self.released {
            return;
        }
        let (tier, key, token) = (self.tier.clone(), self.key.clone(), self.token);
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            runtime.spawn(async move {
                if let Err(error) = tier.release(&key, token).await {
                    tracing::debug!(path = %key, %error, "could not release the lease; it expires by itself");
                }
            });
        }
    }
}
