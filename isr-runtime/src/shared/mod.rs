//! The shared tier: pages, leases, tag sets and change events in Redis, so several instances
//! behind a load balancer act as one site.
//!
//! What each instance keeps doing locally: its page table, hot cache and disk store are warm
//! tiers; a fresh HIT makes no Redis call. What Redis adds:
//! - **Shared pages.** Every commit writes the page (metadata and every encoding) to
//!   `<prefix>:page:<key>`; an instance that lacks a page, or learns of a newer one, pulls it.
//!   Each page has a *generation*: a counter (one past the larger of the stored generation and
//!   the one the page replaced), so a newer generation always wins whatever the instances'
//!   clocks say, also after Redis lost its data; and an `at`, Redis's own time of the commit
//!   minus the page's age, from which a pulling instance reads the page's age (its `Age` and
//!   freshness stay right when instance clocks differ).
//! - **Leases with fencing.** Before running a loader, an instance takes the page's lease
//!   (`SET NX PX`, renewed while the loader runs). The lease's value is a fencing token from a
//!   counter; a commit whose token is not newer than the stored page's is rejected, so an
//!   instance that was paused past its lease can never overwrite newer content. Instances that
//!   find the lease held wait for the commit (or take over when the lease expires).
//! - **Events.** Every commit appends `{key, generation, origin}` to a Redis Stream; every
//!   instance reads it and pulls pages it holds an older generation of. A Stream (not pub/sub)
//!   because entries have ids: a reader that reconnects continues where it stopped, and lost
//!   entries (trimmed, or a Redis restart with lost data, seen as a new epoch) are detected
//!   and repaired by re-checking every local page before it is served as HIT again.
//! - **Tags.** `<prefix>:tag:<tag>` sets, updated by the commit script (old tags out, new in);
//!   tag revalidation reads them in chunks (`SSCAN`), never scanning all pages.
//!
//! Redis down or slow: every call has a short timeout and a [`Breaker`]; pages are served from
//! the local tiers, regenerations go on with local single-flight and are written back when
//! Redis answers again (taken only if no other instance committed the page meanwhile; else
//! that instance's version is pulled).

mod breaker;
mod events;
mod keys;
mod scripts;

pub use crate::engine::tier::{
    Acquired, Commit, EventSink, Lease, SharedPage, SharedTier, SharedVersion, REQUEST_TIMEOUT,
    TRANSFER_TIMEOUT,
};
pub use breaker::{Breaker, OPEN_FOR, TRIP_AFTER};
pub use events::StreamId;
pub use keys::RedisKeys;

use crate::encoding::Variants;
use crate::metrics;
use crate::route::PageKey;
use crate::store::{Mark, PageKind, PageMeta};
use bytes::Bytes;
use futures::future::BoxFuture;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use std::io;
use std::sync::Arc;
use std::time::Duration;

/// Default lease time to live; the holder renews it every third of it.
pub const DEFAULT_LEASE_TTL: Duration = Duration::from_secs(8);
/// Entries the event stream keeps (approximately; older ones are trimmed).
pub const EVENTS_KEPT: u64 = 100_000;

/// Pages whose marks one Redis round trip publishes.
const MARKS_PER_CALL: usize = 256;

/// How to reach the shared tier.
///
/// ```
/// let options = isr::shared::SharedOptions::new("redis://127.0.0.1:6379/0", "blog");
/// assert_eq!(options.lease_ttl, isr::shared::DEFAULT_LEASE_TTL);
/// ```
#[derive(Clone, Debug)]
pub struct SharedOptions {
    /// `redis://[user:password@]host:port[/db]`.
    pub url: String,
    /// Prefix of every key (sites sharing a Redis use different prefixes).
    pub prefix: String,
    /// Lease time to live.
    pub lease_ttl: Duration,
}

impl SharedOptions {
    /// Options with the default lease TTL.
    pub fn new(url: &str, prefix: &str) -> Self {
        SharedOptions {
            url: url.to_string(),
            prefix: prefix.to_string(),
            lease_ttl: DEFAULT_LEASE_TTL,
        }
    }
}

/// The connection to the shared tier (see the module docs).
pub struct RedisTier {
    keys: RedisKeys,
    client: redis::Client,
    connection: ConnectionManager,
    breaker: Breaker,
    lease_ttl: Duration,
    instance: String,
}

impl RedisTier {
    /// A tier for `options`. Connects lazily: an instance starts (and serves from its local
    /// tiers) while Redis is down. Errors only for a URL that cannot work.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() {
    /// let bad = isr::shared::RedisTier::connect(isr::shared::SharedOptions::new("http://x", "p"));
    /// assert!(bad.is_err());
    /// # }
    /// ```
    ///
    /// # Errors
    /// The redis client's message when `options.url` is not a Redis URL it can use (another
    /// scheme, a malformed address, a scheme whose feature is not compiled in) or the lazy
    /// connection manager cannot be set up. An unreachable server is not an error here.
    pub fn connect(options: SharedOptions) -> Result<Arc<RedisTier>, String> {
        let client = redis::Client::open(options.url.as_str()).map_err(|e| e.to_string())?;
        let connection = ConnectionManager::new_lazy_with_config(client.clone(), manager_config())
            .map_err(|e| e.to_string())?;
        metrics::redis_up(false);
        Ok(Arc::new(RedisTier {
            keys: RedisKeys::new(&options.prefix),
            client,
            connection,
            breaker: Breaker::default(),
            lease_ttl: options.lease_ttl,
            instance: instance_name(),
        }))
    }

    /// The key names.
    pub fn keys(&self) -> &RedisKeys {
        &self.keys
    }

    /// Whether the last Redis calls succeeded.
    pub fn is_up(&self) -> bool {
        self.breaker.is_up()
    }

    /// Runs one Redis call under `timeout` and the breaker, recording its outcome.
    async fn call<T>(
        &self,
        op: &'static str,
        timeout: Duration,
        work: impl std::future::Future<Output = redis::RedisResult<T>>,
    ) -> io::Result<T> {
        if !self.breaker.allows() {
            return Err(io::Error::new(
                io::ErrorKind::NotConnected,
                "Redis is down (circuit open)",
            ));
        }
        let result = match tokio::time::timeout(timeout, work).await {
            Ok(Ok(value)) => Ok(value),
            Ok(Err(error)) => Err(io::Error::other(error.to_string())),
            Err(_) => Err(io::Error::new(
                io::ErrorKind::TimedOut,
                format!("Redis {op} took over {} ms", timeout.as_millis()),
            )),
        };
        match &result {
            Ok(_) => self.record_success(),
            Err(error) => self.record_failure(op, error),
        }
        result
    }

    fn record_success(&self) {
        if self.breaker.succeeded() {
            tracing::info!("Redis answers again: the shared tier is back");
        }
        metrics::redis_up(true);
    }

    fn record_failure(&self, op: &'static str, error: &io::Error) {
        metrics::redis_error(op);
        if self.breaker.failed() {
            tracing::warn!(%error, "Redis is not answering: serving from local tiers, regenerating with local single-flight");
            metrics::redis_up(false);
        } else {
            tracing::debug!(op, %error, "Redis call failed");
        }
    }

    /// Whether someone holds `key`'s lease now.
    ///
    /// # Errors
    /// `NotConnected` while the circuit breaker holds Redis down, `TimedOut` after
    /// [`REQUEST_TIMEOUT`], or the Redis error of the call.
    pub async fn lease_held(&self, key: &PageKey) -> io::Result<bool> {
        let mut connection = self.connection.clone();
        let exists: u8 = self
            .call("lease_held", REQUEST_TIMEOUT, async {
                redis::cmd("EXISTS")
                    .arg(self.keys.lease(key.as_str()))
                    .query_async(&mut connection)
                    .await
            })
            .await?;
        Ok(exists == 1)
    }

    pub(crate) fn client(&self) -> &redis::Client {
        &self.client
    }
}

impl SharedTier for RedisTier {
    fn acquire<'a>(self: Arc<Self>, key: &'a PageKey) -> BoxFuture<'a, io::Result<Acquired>> {
        Box::pin(async move {
            let mut connection = self.connection.clone();
            let ttl_ms = self.lease_ttl.as_millis() as u64;
            let (taken, token, generation): (u8, u64, u64) = self
                .call("acquire", REQUEST_TIMEOUT, async {
                    scripts::scripts()
                        .acquire
                        .key(self.keys.lease(key.as_str()))
                        .key(self.keys.fence())
                        .key(self.keys.page(key.as_str()))
                        .arg(ttl_ms)
                        .invoke_async(&mut connection)
                        .await
                })
                .await?;
            if taken == 1 {
                metrics::redis_lease("acquired");
                Ok(Acquired::Lead {
                    lease: Lease::start(self.clone(), key.clone(), token),
                    stored_generation: generation,
                })
            } else {
                metrics::redis_lease("held");
                Ok(Acquired::Held {
                    stored_generation: generation,
                })
            }
        })
    }

    fn renew<'a>(&'a self, key: &'a PageKey, token: u64) -> BoxFuture<'a, io::Result<bool>> {
        Box::pin(async move {
            let mut connection = self.connection.clone();
            let renewed: u8 = self
                .call("renew", REQUEST_TIMEOUT, async {
                    scripts::scripts()
                        .renew
                        .key(self.keys.lease(key.as_str()))
                        .arg(token)
                        .arg(self.lease_ttl.as_millis() as u64)
                        .invoke_async(&mut connection)
                        .await
                })
                .await?;
            Ok(renewed == 1)
        })
    }

    fn release<'a>(&'a self, key: &'a PageKey, token: u64) -> BoxFuture<'a, io::Result<()>> {
        Box::pin(async move {
            let mut connection = self.connection.clone();
            let _: u8 = self
                .call("release", REQUEST_TIMEOUT, async {
                    scripts::scripts()
                        .release
                        .key(self.keys.lease(key.as_str()))
                        .arg(token)
                        .invoke_async(&mut connection)
                        .await
                })
                .await?;
            Ok(())
        })
    }

    fn watch<'a>(&'a self, key: &'a PageKey) -> BoxFuture<'a, io::Result<(u64, bool)>> {
        Box::pin(async move {
            let mut connection = self.connection.clone();
            let (generation, held): (Option<u64>, u8) = self
                .call("watch", REQUEST_TIMEOUT, async {
                    redis::pipe()
                        .cmd("HGET")
                        .arg(self.keys.page(key.as_str()))
                        .arg("gen")
                        .cmd("EXISTS")
                        .arg(self.keys.lease(key.as_str()))
                        .query_async(&mut connection)
                        .await
                })
                .await?;
            Ok((generation.unwrap_or(0), held == 1))
        })
    }

    fn commit<'a>(
        &'a self,
        token: u64,
        meta: &'a PageMeta,
        body: Option<&'a Variants>,
        keep_unchanged: bool,
        age: Duration,
        started_at_ms: u64,
    ) -> BoxFuture<'a, io::Result<Commit>> {
        Box::pin(async move {
            let etag = match &meta.kind {
                PageKind::Page { etag, .. } => etag.to_string(),
                _ => String::new(),
            };
            let meta_json = serde_json::to_string(meta).map_err(io::Error::other)?;
            let empty = Bytes::new();
            let (identity, gzip, brotli) = match body {
                Some(body) => (
                    &body.identity,
                    body.gzip.as_ref().unwrap_or(&empty),
                    body.brotli.as_ref().unwrap_or(&empty),
                ),
                None => (&empty, &empty, &empty),
            };
            let mut connection = self.connection.clone();
            let (written, generation, mark): (u8, u64, String) = self
                .call("commit", TRANSFER_TIMEOUT, async {
                    let script = &scripts::scripts().commit;
                    let mut invocation = script.key(self.keys.page(&meta.key));
                    invocation
                        .key(self.keys.lease(&meta.key))
                        .key(self.keys.events())
                        .arg(token)
                        .arg(meta.generation)
                        .arg(&etag)
                        .arg(&meta_json)
                        .arg(self.keys.tag_prefix())
                        .arg(&self.instance)
                        .arg(if keep_unchanged { "1" } else { "0" })
                        .arg(&meta.key)
                        .arg(if body.is_some() { "1" } else { "0" })
                        .arg(identity.as_ref())
                        .arg(gzip.as_ref())
                        .arg(brotli.as_ref())
                        .arg(EVENTS_KEPT)
                        .arg(age.as_millis() as u64)
                        .arg(started_at_ms);
                    for tag in &meta.tags {
                        invocation.arg(tag);
                    }
                    invocation.invoke_async(&mut connection).await
                })
                .await?;
            Ok(match written {
                // A mark that does not parse (another version's) is left out.
                1 => Commit::Written {
                    generation,
                    mark: serde_json::from_str(&mark).ok(),
                },
                2 => Commit::Unchanged {
                    stored_generation: generation,
                },
                _ => {
                    if token > 0 {
                        metrics::redis_lease("fenced");
                    }
                    Commit::Rejected {
                        stored_generation: generation,
                    }
                }
            })
        })
    }

    fn pull<'a>(&'a self, key: &'a PageKey) -> BoxFuture<'a, io::Result<Option<SharedPage>>> {
        Box::pin(async move {
            let mut connection = self.connection.clone();
            // The page and Redis's clock in one round trip: its age is measured by Redis alone.
            let (fields, (seconds, micros)): (Vec<Option<Vec<u8>>>, (u64, u64)) = self
                .call("pull", TRANSFER_TIMEOUT, async {
                    redis::pipe()
                        .cmd("HMGET")
                        .arg(self.keys.page(key.as_str()))
                        .arg(&[
                            "gen", "meta", "identity", "gzip", "br", "origin", "at", "mark",
                        ])
                        .cmd("TIME")
                        .query_async(&mut connection)
                        .await
                })
                .await?;
            let mut fields = fields.into_iter();
            let mut next = || fields.next().flatten();
            let (Some(generation), Some(meta)) = (next(), next()) else {
                return Ok(None);
            };
            let generation = parse_generation(&generation)?;
            let mut meta: PageMeta = serde_json::from_slice(&meta)
                .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))?;
            meta.generation = generation;
            let (identity, gzip, brotli, origin, at) = (next(), next(), next(), next(), next());
            // The page's invalidation mark, as Redis holds it (one that does not parse is
            // another version's: left out).
            meta.mark = next().and_then(|mark| serde_json::from_slice(&mark).ok());
            let now_ms = seconds * 1000 + micros / 1000;
            let age = match at {
                Some(at) => Some(Duration::from_millis(
                    now_ms.saturating_sub(parse_generation(&at)?),
                )),
                None => None,
            };
            let body = identity.map(|identity| Variants {
                identity: Bytes::from(identity),
                gzip: gzip.filter(|b| !b.is_empty()).map(Bytes::from),
                brotli: brotli.filter(|b| !b.is_empty()).map(Bytes::from),
            });
            let origin = origin.map(|o| String::from_utf8_lossy(&o).into_owned());
            if meta.kind.is_page() && body.is_none() {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    "a shared page without its HTML",
                ));
            }
            Ok(Some(SharedPage {
                meta,
                age,
                body,
                origin,
            }))
        })
    }

    fn generations<'a>(
        &'a self,
        keys: &'a [PageKey],
        timeout: Duration,
    ) -> BoxFuture<'a, io::Result<Vec<SharedVersion>>> {
        Box::pin(async move {
            if keys.is_empty() {
                return Ok(Vec::new());
            }
            let mut connection = self.connection.clone();
            let mut pipe = redis::pipe();
            for key in keys {
                pipe.cmd("HMGET")
                    .arg(self.keys.page(key.as_str()))
                    .arg("gen")
                    .arg("mark");
            }
            let found: Vec<(Option<u64>, Option<String>)> = self
                .call("generations", timeout, async {
                    pipe.query_async(&mut connection).await
                })
                .await?;
            Ok(found
                .into_iter()
                .map(|(generation, mark)| SharedVersion {
                    generation: generation.unwrap_or(0),
                    mark: mark.and_then(|mark| serde_json::from_str(&mark).ok()),
                })
                .collect())
        })
    }

    fn keys_with_tag<'a>(
        &'a self,
        tag: &'a str,
        limit: usize,
    ) -> BoxFuture<'a, io::Result<Vec<String>>> {
        Box::pin(async move {
            let set = self.keys.tag(tag);
            let mut keys = Vec::new();
            let mut cursor: u64 = 0;
            loop {
                let mut connection = self.connection.clone();
                let (next, chunk): (u64, Vec<String>) = self
                    .call("keys_with_tag", TRANSFER_TIMEOUT, async {
                        redis::cmd("SSCAN")
                            .arg(&set)
                            .arg(cursor)
                            .arg("COUNT")
                            .arg(512)
                            .query_async(&mut connection)
                            .await
                    })
                    .await?;
                keys.extend(chunk);
                if next == 0 || keys.len() >= limit {
                    break;
                }
                cursor = next;
            }
            keys.sort();
            keys.dedup();
            keys.truncate(limit);
            Ok(keys)
        })
    }

    fn follow_events(self: Arc<Self>, sink: std::sync::Weak<dyn EventSink>) {
        events::spawn_reader(self, sink);
    }

    fn publish_marks<'a>(
        &'a self,
        marks: &'a [(PageKey, Mark)],
    ) -> BoxFuture<'a, io::Result<Vec<String>>> {
        Box::pin(async move {
            let page_prefix = self.keys.page("");
            let mut marked = Vec::new();
            for chunk in marks.chunks(MARKS_PER_CALL) {
                let pairs = chunk
                    .iter()
                    .map(|(key, mark)| Ok((key.as_str(), serde_json::to_string(mark)?)))
                    .collect::<Result<Vec<_>, serde_json::Error>>()
                    .map_err(io::Error::other)?;
                let mut connection = self.connection.clone();
                let keys: Vec<String> = self
                    .call("publish_marks", TRANSFER_TIMEOUT, async {
                        let script = &scripts::scripts().publish_marks;
                        let mut invocation = script.key(self.keys.events());
                        invocation
                            .arg(&self.instance)
                            .arg(EVENTS_KEPT)
                            .arg(&page_prefix);
                        for (key, json) in &pairs {
                            invocation.arg(*key).arg(json);
                        }
                        invocation.invoke_async(&mut connection).await
                    })
                    .await?;
                marked.extend(keys);
            }
            Ok(marked)
        })
    }

    fn instance(&self) -> &str {
        &self.instance
    }

    fn lease_ttl(&self) -> Duration {
        self.lease_ttl
    }
}

/// This process's name in events and page records: `<host>:<pid>:<random>` (readable for an
/// operator, unique even for two containers with the same host name and pid).
fn instance_name() -> String {
    #[cfg(unix)]
    let host = rustix::system::uname()
        .nodename()
        .to_string_lossy()
        .into_owned();
    #[cfg(not(unix))]
    let host = std::env::var("COMPUTERNAME").unwrap_or_else(|_| "host".into());
    format!("{host}:{}:{:04x}", std::process::id(), fastrand::u16(..))
}

fn manager_config() -> ConnectionManagerConfig {
    ConnectionManagerConfig::new()
        .set_connection_timeout(Some(Duration::from_millis(300)))
        .set_response_timeout(Some(TRANSFER_TIMEOUT))
        .set_number_of_retries(1)
        .set_max_delay(Duration::from_millis(200))
}

fn parse_generation(text: &[u8]) -> io::Result<u64> {
    std::str::from_utf8(text)
        .ok()
        .and_then(|t| t.parse().ok())
        .ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::InvalidData,
                "a generation that is not a number",
            )
        })
}

#[cfg(test)]
mod tests;
