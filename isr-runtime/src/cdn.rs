//! Purging the CDN in front of isr when a page changes: `PURGE <path>` to every configured
//! endpoint (the Varnish convention; `deploy/varnish/isr.vcl` accepts it).
//!
//! What is bounded and when things happen:
//! - A change is queued (at most [`QUEUE_CAPACITY`] pages waiting; beyond that a change is
//!   dropped, logged and counted `outcome="dropped"`) and never delays the request that caused it.
//! - One background task sends the queue in batches (what arrived while the previous batch
//!   was out, at most [`BATCH`] pages), [`IN_FLIGHT`] pages at a time, each to every endpoint,
//!   each request bounded by [`REQUEST_TIMEOUT`]. A `2xx` or `404` (nothing was cached) counts
//!   as purged.
//! - A page not purged at every endpoint is retried after 1, 2, 4, 8 and 16 s, then given up
//!   (logged with the page path, counted `outcome="gave_up"`).
//! - Whoever announced the change (an on-demand revalidation) learns how the *first* attempt
//!   went; retries do not hold it up.

use crate::engine::PageChanges;
use crate::route::PageKey;
use axum::body::Bytes;
use axum::http::{header, HeaderValue, Method, Request, Uri};
use futures::future::BoxFuture;
use futures::StreamExt;
use http_body_util::Empty;
use hyper_util::client::legacy::{connect::HttpConnector, Client};
use hyper_util::rt::TokioExecutor;
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;

/// Pages waiting to be purged at most.
pub const QUEUE_CAPACITY: usize = 10_000;

/// Pages sent in one batch at most.
pub const BATCH: usize = 256;

/// Pages being purged at the same time.
pub const IN_FLIGHT: usize = 16;

/// Longest wait for one endpoint's answer.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);

/// Waits before the retries of a page whose purge failed.
pub const RETRY_DELAYS: [Duration; 5] = [
    Duration::from_secs(1),
    Duration::from_secs(2),
    Duration::from_secs(4),
    Duration::from_secs(8),
    Duration::from_secs(16),
];

/// Where to send purges: `http://` endpoints, and the `Host` they should see.
///
/// ```
/// let target = isr::cdn::PurgeTargets::parse("http://127.0.0.1:6081, http://10.0.0.2", Some("www.example.com")).unwrap();
/// assert_eq!(target.endpoints().len(), 2);
/// assert!(isr::cdn::PurgeTargets::parse("ftp://x", None).is_err());
/// assert!(isr::cdn::PurgeTargets::parse("http://x/path", None).is_err());
/// assert!(isr::cdn::PurgeTargets::parse("http://x", Some("bad host")).is_err());
/// ```
#[derive(Clone, Debug)]
pub struct PurgeTargets {
    endpoints: Vec<Uri>,
    host: Option<HeaderValue>,
}

impl PurgeTargets {
    /// Parses a comma-separated list of `http://host[:port]` endpoints and an optional public
    /// host (`www.example.com` or `host:port`) for their `Host` header.
    ///
    /// # Errors
    /// A message naming the bad part when an endpoint is not an `http://` URL with a host, has
    /// a path or a query, when no endpoint is given, or when `public_host` is not a
    /// `host[:port]` (empty, with user info, or not a valid header value).
    pub fn parse(endpoints: &str, public_host: Option<&str>) -> Result<PurgeTargets, String> {
        let mut parsed = Vec::new();
        for endpoint in endpoints
            .split(',')
            .map(str::trim)
            .filter(|e| !e.is_empty())
        {
            let uri: Uri = endpoint
                .parse()
                .map_err(|e| format!("{endpoint:?} is not a URL ({e})"))?;
            if uri.scheme_str() != Some("http") || uri.authority().is_none() {
                return Err(format!("{endpoint:?} is not an http://host[:port] URL"));
            }
            if !matches!(uri.path(), "" | "/") || uri.query().is_some() {
                return Err(format!(
                    "{endpoint:?} has a path: give only http://host[:port] (the page path is added)"
                ));
            }
            parsed.push(uri);
        }
        if parsed.is_empty() {
            return Err("no endpoint given".into());
        }
        let host = match public_host {
            None => None,
            Some(host) => {
                let valid = !host.is_empty()
                    && host.parse::<axum::http::uri::Authority>().is_ok()
                    && !host.contains('@');
                if !valid {
                    return Err(format!("{host:?} is not a host[:port]"));
                }
                Some(HeaderValue::from_str(host).map_err(|e| e.to_string())?)
            }
        };
        Ok(PurgeTargets {
            endpoints: parsed,
            host,
        })
    }

    /// The endpoints.
    pub fn endpoints(&self) -> &[Uri] {
        &self.endpoints
    }
}

/// One page to purge and who waits for its first attempt.
struct Job {
    path: String,
    waiting: Vec<oneshot::Sender<bool>>,
    attempt: usize,
}

/// Purges changed pages at the CDN (see the module docs). Install it with
/// [`EngineBuilder::page_changes`](crate::EngineBuilder::page_changes); `App` does for `--cdn-purge`.
pub struct CdnPurger {
    queue: mpsc::Sender<Job>,
}

impl CdnPurger {
    /// Starts the purge task (on the current tokio runtime) for `targets`.
    pub fn start(targets: PurgeTargets) -> Arc<CdnPurger> {
        let (queue, jobs) = mpsc::channel(QUEUE_CAPACITY);
        let mut connector = HttpConnector::new();
        connector.set_connect_timeout(Some(REQUEST_TIMEOUT));
        let client = Client::builder(TokioExecutor::new()).build(connector);
        tokio::spawn(run(jobs, Sender { client, targets }));
        Arc::new(CdnPurger { queue })
    }
}

impl PageChanges for CdnPurger {
    fn changed(&self, key: &PageKey) -> BoxFuture<'static, bool> {
        let (done, first) = oneshot::channel();
        let job = Job {
            path: key.to_url_path(),
            waiting: vec![done],
            attempt: 0,
        };
        if let Err(error) = self.queue.try_send(job) {
            crate::metrics::cdn_purges("dropped", 1);
            tracing::warn!(path = %key, %error, "CDN purge queue full; this change is not purged");
            return Box::pin(async { false });
        }
        Box::pin(async move { first.await.unwrap_or(false) })
    }
}

struct Sender {
    client: Client<HttpConnector, Empty<Bytes>>,
    targets: PurgeTargets,
}

impl Sender {
    /// Purges `path` at every endpoint; whether all of them confirmed.
    async fn purge(&self, path: &str) -> Result<(), String> {
        let sends = self.targets.endpoints.iter().map(|endpoint| async move {
            let outcome = self.purge_at(endpoint, path).await;
            crate::metrics::cdn_purges(if outcome.is_ok() { "ok" } else { "error" }, 1);
            outcome
        });
        let outcomes = futures::future::join_all(sends).await;
        outcomes.into_iter().find(Result::is_err).unwrap_or(Ok(()))
    }

    async fn purge_at(&self, endpoint: &Uri, path: &str) -> Result<(), String> {
        let authority = endpoint.authority().map(|a| a.as_str()).unwrap_or_default();
        let uri: Uri = format!("http://{authority}{path}")
            .parse()
            .map_err(|e| format!("{endpoint}{path}: {e}"))?;
        let mut request = Request::builder()
            .method(Method::from_bytes(b"PURGE").expect("method"))
            .uri(uri);
        if let Some(host) = &self.targets.host {
            request = request.header(header::HOST, host.clone());
        }
        let request = request
            .body(Empty::new())
            .map_err(|e| format!("{endpoint}{path}: {e}"))?;
        match tokio::time::timeout(REQUEST_TIMEOUT, self.client.request(request)).await {
            Err(_) => Err(format!("{endpoint}: no answer within {REQUEST_TIMEOUT:?}")),
            Ok(Err(error)) => Err(format!("{endpoint}: {error}")),
            Ok(Ok(response)) => {
                let status = response.status();
                if status.is_success() || status.as_u16() == 404 {
                    Ok(())
                } else {
                    Err(format!("{endpoint} answered {status}"))
                }
            }
        }
    }
}

/// The purge task: batches from the queue and due retries, until the purger is dropped and
/// nothing is left to retry.
async fn run(mut jobs: mpsc::Receiver<Job>, sender: Sender) {
    let mut retries: BTreeMap<(Instant, u64), Job> = BTreeMap::new();
    let mut sequence = 0u64;
    let mut open = true;
    loop {
        let mut batch: Vec<Job> = Vec::new();
        let next_retry = retries.keys().next().map(|(at, _)| *at);
        tokio::select! {
            job = jobs.recv(), if open => match job {
                Some(job) => batch.push(job),
                None => open = false,
            },
            () = sleep_until(next_retry), if next_retry.is_some() => {}
        }
        if !open && retries.is_empty() && batch.is_empty() {
            return;
        }
        while batch.len() < BATCH {
            match jobs.try_recv() {
                Ok(job) => batch.push(job),
                Err(_) => break,
            }
        }
        let now = Instant::now();
        while batch.len() < 2 * BATCH {
            match retries.first_entry() {
                Some(entry) if entry.key().0 <= now => batch.push(entry.remove()),
                _ => break,
            }
        }
        let sent = futures::stream::iter(deduplicated(batch))
            .map(|job| async {
                let outcome = sender.purge(&job.path).await;
                (job, outcome)
            })
            .buffer_unordered(IN_FLIGHT)
            .collect::<Vec<_>>()
            .await;
        let mut failed = 0;
        let mut first_error = None;
        for (mut job, outcome) in sent {
            for waiting in job.waiting.drain(..) {
                let _ = waiting.send(outcome.is_ok());
            }
            let Err(error) = outcome else { continue };
            match RETRY_DELAYS.get(job.attempt) {
                Some(delay) => {
                    failed += 1;
                    first_error.get_or_insert(error);
                    job.attempt += 1;
                    sequence += 1;
                    retries.insert((Instant::now() + *delay, sequence), job);
                }
                None => {
                    crate::metrics::cdn_purges("gave_up", 1);
                    tracing::error!(path = %job.path, %error, attempts = job.attempt + 1, "CDN purge failed; giving up (the CDN keeps the old page until its own TTL)");
                }
            }
        }
        if let Some(error) = first_error {
            tracing::warn!(pages = failed, %error, "CDN purge failed; retrying");
        }
    }
}

/// One job per path (the earliest attempt count wins; everyone waiting is told).
fn deduplicated(batch: Vec<Job>) -> Vec<Job> {
    let mut by_path: HashMap<String, Job> = HashMap::with_capacity(batch.len());
    for job in batch {
        match by_path.get_mut(&job.path) {
            Some(seen) => {
                seen.attempt = seen.attempt.min(job.attempt);
                seen.waiting.extend(job.waiting);
            }
            None => {
                by_path.insert(job.path.clone(), job);
            }
        }
    }
    by_path.into_values().collect()
}

async fn sleep_until(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}
