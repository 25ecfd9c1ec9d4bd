//! A held page lease: renewed in the background while the loader runs, released (compare and
//! delete) when dropped, unless the commit released it already.

use super::SharedTier;
use crate::metrics;
use crate::route::PageKey;
use std::sync::Arc;

/// The right to regenerate one page across all instances, identified by its fencing token.
/// Dropping it releases the lease; a commit with it releases it too.
pub struct Lease {
    tier: Arc<SharedTier>,
    key: PageKey,
    token: u64,
    renewal: tokio::task::AbortHandle,
    released: bool,
}

impl Lease {
    pub(super) fn start(tier: Arc<SharedTier>, key: PageKey, token: u64) -> Lease {
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
    pub(crate) fn released_by_commit(mut self) {
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
