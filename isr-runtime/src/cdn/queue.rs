//! One CDN's purge queue: what is waiting, batched into as few requests as the CDN allows,
//! sent one request at a time, retried with backoff, paused while the CDN asks to slow down.
//!
//! What is bounded:
//! - At most [`QUEUE_CAPACITY`] changes wait to be batched (beyond that a change is dropped,
//!   logged and counted `outcome="dropped"`); a change never delays the request that caused it.
//! - Each batch takes what arrived while the previous one was out, deduplicated (a key purged
//!   hard and soft in one batch is purged hard once), cut into requests within the CDN's
//!   limits ([`Limits`]).
//! - A request that failed is retried after 1, 2, 4, 8 and 16 s (or after the CDN's
//!   `retry-after` on `429`, when longer; every request to that CDN waits as long), then given
//!   up (logged, counted `outcome="gave_up"`). A request the CDN refused as malformed (`4xx`
//!   but `429`) is not retried. A new change for a key that waits for a retry is sent with
//!   the next batch, with a count of its own.
//! - Whoever announced a change learns how the *first* attempt of its keys went; retries do
//!   not hold it up.

use super::{Adapter, Limits, PurgeRequest, SendError};
use crate::engine::PurgeKind;
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;

/// The journal a queue writes its pending keys to, if any (see [`super::journal`]).
#[derive(Clone, Default)]
pub(crate) struct Journal(pub Option<Arc<dyn super::journal::PurgeJournal>>);

impl Journal {
    async fn add(&self, cdn: &'static str, keys: Vec<(PurgeKind, String)>) {
        if let Some(journal) = &self.0 {
            journal.add(cdn, keys).await;
        }
    }

    async fn remove(&self, cdn: &'static str, keys: Vec<(PurgeKind, String)>) {
        if let Some(journal) = &self.0 {
            journal.remove(cdn, keys).await;
        }
    }

    async fn pending(&self, cdn: &'static str) -> Vec<(PurgeKind, String)> {
        match &self.0 {
            Some(journal) => journal.pending(cdn).await,
            None => Vec::new(),
        }
    }
}

/// Changes waiting to be batched at most, per CDN.
pub const QUEUE_CAPACITY: usize = 10_000;

/// Keys (or paths) taken into one batch at most; the rest waits for the next.
pub const BATCH_ITEMS: usize = 100_000;

/// Waits before the retries of a request that failed.
pub const RETRY_DELAYS: [Duration; 5] = [
    Duration::from_secs(1),
    Duration::from_secs(2),
    Duration::from_secs(4),
    Duration::from_secs(8),
    Duration::from_secs(16),
];

/// Who waits for the first attempt of a change's keys, at every CDN: told once the last of
/// them was tried, whether all went.
pub(crate) struct Waiter {
    remaining: AtomicUsize,
    all_went: AtomicBool,
    tell: Mutex<Option<oneshot::Sender<bool>>>,
}

impl Waiter {
    /// A waiter for `items` first attempts, and the answer it will give.
    pub(crate) fn new(items: usize) -> (Arc<Waiter>, oneshot::Receiver<bool>) {
        let (tell, told) = oneshot::channel();
        let waiter = Arc::new(Waiter {
            remaining: AtomicUsize::new(items),
            all_went: AtomicBool::new(true),
            tell: Mutex::new(Some(tell)),
        });
        if items == 0 {
            waiter.finish();
        }
        (waiter, told)
    }

    /// `count` of the items were tried once.
    fn tried(&self, count: usize, went: bool) {
        if !went {
            self.all_went.store(false, Ordering::Release);
        }
        if self.remaining.fetch_sub(count, Ordering::AcqRel) == count {
            self.finish();
        }
    }

    fn finish(&self) {
        let tell = self.tell.lock().unwrap_or_else(|e| e.into_inner()).take();
        if let Some(tell) = tell {
            let _ = tell.send(self.all_went.load(Ordering::Acquire));
        }
    }
}

/// One change's share for one CDN.
pub(crate) struct Job {
    pub items: Vec<String>,
    pub kind: PurgeKind,
    pub waiter: Arc<Waiter>,
}

/// A key to purge, its attempt count and who waits for its first attempt.
struct Item {
    attempt: usize,
    waiting: Vec<Arc<Waiter>>,
}

/// Keys waiting, by kind then key (sorted: requests are deterministic).
type Pending = BTreeMap<(PurgeKind, String), Item>;

/// The handle of one CDN's queue.
pub(crate) struct Queue {
    pub name: &'static str,
    pub limits: Limits,
    pub adapter: Arc<dyn Adapter>,
    jobs: mpsc::Sender<Job>,
}

impl Queue {
    /// Starts `adapter`'s queue task on the current runtime; it first sends what `journal`
    /// says was left at the last stop.
    pub(crate) fn start(adapter: Arc<dyn Adapter>, journal: Journal) -> Queue {
        let (jobs, received) = mpsc::channel(QUEUE_CAPACITY);
        let queue = Queue {
            name: adapter.name(),
            limits: adapter.limits(),
            adapter: adapter.clone(),
            jobs,
        };
        tokio::spawn(run(received, adapter, journal));
        queue
    }

    /// Queues `job`; `false` (counted, logged) when the queue is full.
    pub(crate) fn push(&self, job: Job) -> bool {
        let count = job.items.len();
        let kind = job.kind;
        match self.jobs.try_send(job) {
            Ok(()) => true,
            Err(error) => {
                let job = match error {
                    mpsc::error::TrySendError::Full(job)
                    | mpsc::error::TrySendError::Closed(job) => job,
                };
                job.waiter.tried(count, false);
                crate::metrics::cdn_purges(self.name, kind.as_str(), "dropped", 1);
                tracing::warn!(
                    cdn = self.name,
                    keys = count,
                    "CDN purge queue full; this change is not purged"
                );
                false
            }
        }
    }
}

/// The queue task: batches of what waits, until every sender is gone and nothing is left.
async fn run(mut jobs: mpsc::Receiver<Job>, adapter: Arc<dyn Adapter>, journal: Journal) {
    let name = adapter.name();
    let limits = adapter.limits();
    let mut retries: BTreeMap<(Instant, u64), Pending> = BTreeMap::new();
    let mut sequence = 0u64;
    let mut open = true;
    // Set by a `429`: nothing is sent before it.
    let mut paused_until: Option<Instant> = None;
    let left = journal.pending(name).await;
    if !left.is_empty() {
        tracing::info!(
            cdn = name,
            keys = left.len(),
            "sending the CDN purges left at the last stop"
        );
        let mut replay = Pending::new();
        for key in left {
            let item = Item {
                attempt: 0,
                waiting: Vec::new(),
            };
            merge(&mut replay, key, item);
        }
        retries.insert((Instant::now(), 0), replay);
    }
    loop {
        let mut pending = Pending::new();
        let next_retry = retries.keys().next().map(|(at, _)| *at);
        tokio::select! {
            job = jobs.recv(), if open => match job {
                Some(job) => add(&mut pending, job, &limits),
                None => open = false,
            },
            () = sleep_until(next_retry), if next_retry.is_some() => {}
            else => return,
        }
        while pending.len() < BATCH_ITEMS {
            match jobs.try_recv() {
                Ok(job) => add(&mut pending, job, &limits),
                Err(_) => break,
            }
        }
        // New keys are written down before their first attempt: a restart sends them.
        journal.add(name, pending.keys().cloned().collect()).await;
        let now = Instant::now();
        while let Some(entry) = retries.first_entry() {
            if entry.key().0 > now {
                break;
            }
            for (key, item) in entry.remove() {
                merge(&mut pending, key, item);
            }
        }
        for (request, items) in split(pending, &limits) {
            if let Some(until) = paused_until.filter(|until| *until > Instant::now()) {
                // The CDN asked to slow down: these wait, not counted as an attempt; whoever
                // waits for their first attempt is told now that it did not go yet.
                let mut deferred = Pending::new();
                for (key, mut item) in items {
                    tell(&mut item, false);
                    deferred.insert((request.kind, key), item);
                }
                sequence += 1;
                retries.insert((until, sequence), deferred);
                continue;
            }
            let outcome = adapter.send(&request).await;
            let went = outcome.is_ok();
            let label = match &outcome {
                Ok(()) => "ok",
                Err(SendError::Retry { after: Some(_), .. }) => "rate_limited",
                Err(_) => "error",
            };
            crate::metrics::cdn_purges(name, request.kind.as_str(), label, 1);
            let mut items: Pending = items
                .into_iter()
                .map(|(key, mut item)| {
                    tell(&mut item, went);
                    ((request.kind, key), item)
                })
                .collect();
            let (error, after) = match outcome {
                Ok(()) => {
                    journal.remove(name, items.into_keys().collect()).await;
                    continue;
                }
                Err(SendError::Retry { error, after }) => (error, Some(after)),
                Err(SendError::Refused(error)) => (error, None),
            };
            if let Some(Some(wait)) = after {
                paused_until = Some(Instant::now() + wait);
            }
            // Each key gets its own five retries; past them (or when the CDN refused the
            // request itself), it is given up.
            let given_up: Pending = match after {
                Some(_) => {
                    let spent: Vec<(PurgeKind, String)> = items
                        .iter()
                        .filter(|(_, item)| item.attempt >= RETRY_DELAYS.len())
                        .map(|(key, _)| key.clone())
                        .collect();
                    spent
                        .into_iter()
                        .filter_map(|key| items.remove_entry(&key))
                        .collect()
                }
                None => std::mem::take(&mut items),
            };
            if !given_up.is_empty() {
                crate::metrics::cdn_purges(name, request.kind.as_str(), "gave_up", 1);
                let first: Vec<&str> = given_up.keys().take(3).map(|(_, k)| k.as_str()).collect();
                tracing::error!(cdn = name, kind = request.kind.as_str(), keys = given_up.len(), first = ?first, %error, "CDN purge failed; giving up (the CDN keeps these pages until its own TTL)");
                journal.remove(name, given_up.into_keys().collect()).await;
            }
            if items.is_empty() {
                continue;
            }
            let attempt = items.values().map(|i| i.attempt).min().unwrap_or(0);
            let backoff = RETRY_DELAYS[attempt.min(RETRY_DELAYS.len() - 1)];
            let delay = match after {
                Some(Some(wait)) => wait.max(backoff),
                _ => backoff,
            };
            tracing::warn!(cdn = name, kind = request.kind.as_str(), keys = items.len(), %error, retry_in = ?delay, "CDN purge failed; retrying");
            for item in items.values_mut() {
                item.attempt += 1;
            }
            sequence += 1;
            retries.insert((Instant::now() + delay, sequence), items);
        }
    }
}

/// Tells whoever waits for `item`'s first attempt how it went (once: the waiters are taken).
fn tell(item: &mut Item, went: bool) {
    for waiter in item.waiting.drain(..) {
        waiter.tried(1, went);
    }
}

/// Adds `job`'s keys (soft ones as hard where the CDN cannot purge softly).
fn add(pending: &mut Pending, job: Job, limits: &Limits) {
    let kind = if limits.soft {
        job.kind
    } else {
        PurgeKind::Hard
    };
    for key in job.items {
        let item = Item {
            attempt: 0,
            waiting: vec![job.waiter.clone()],
        };
        merge(pending, (kind, key), item);
    }
}

/// One entry per key: a hard purge of a key covers its soft one; everyone waiting is told.
fn merge(pending: &mut Pending, (kind, key): (PurgeKind, String), mut item: Item) {
    let (kind, soft_twin) = match kind {
        PurgeKind::Soft if pending.contains_key(&(PurgeKind::Hard, key.clone())) => {
            (PurgeKind::Hard, None)
        }
        PurgeKind::Hard => (
            PurgeKind::Hard,
            pending.remove(&(PurgeKind::Soft, key.clone())),
        ),
        PurgeKind::Soft => (PurgeKind::Soft, None),
    };
    if let Some(twin) = soft_twin {
        item.attempt = item.attempt.min(twin.attempt);
        item.waiting.extend(twin.waiting);
    }
    match pending.get_mut(&(kind, key.clone())) {
        Some(seen) => {
            seen.attempt = seen.attempt.min(item.attempt);
            seen.waiting.extend(item.waiting);
        }
        None => {
            pending.insert((kind, key), item);
        }
    }
}

/// The requests for `pending`, within the CDN's limits on keys and bytes per request.
fn split(pending: Pending, limits: &Limits) -> Vec<(PurgeRequest, Vec<(String, Item)>)> {
    let mut requests: Vec<(PurgeRequest, Vec<(String, Item)>)> = Vec::new();
    let mut bytes = 0;
    for ((kind, key), item) in pending {
        let fits = requests.last().is_some_and(|(request, _)| {
            request.kind == kind
                && request.items.len() < limits.items_per_request
                && bytes + key.len() + limits.item_overhead <= limits.bytes_per_request
        });
        if !fits {
            requests.push((
                PurgeRequest {
                    kind,
                    items: Vec::new(),
                },
                Vec::new(),
            ));
            bytes = 0;
        }
        let (request, items) = requests.last_mut().expect("just pushed");
        bytes += key.len() + limits.item_overhead;
        request.items.push(key.clone());
        items.push((key, item));
    }
    requests
}

async fn sleep_until(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits(items: usize, bytes: usize) -> Limits {
        Limits {
            by: super::super::PurgeBy::Key,
            soft: true,
            items_per_request: items,
            bytes_per_request: bytes,
            item_overhead: 1,
            budget: crate::cdn::TagBudget::DEFAULT,
        }
    }

    #[test]
    fn batches_are_deduplicated_and_split_within_the_limits() {
        let (waiter, _told) = Waiter::new(7);
        let mut pending = Pending::new();
        let job = |items: &[&str], kind| Job {
            items: items.iter().map(|s| s.to_string()).collect(),
            kind,
            waiter: waiter.clone(),
        };
        let limits = limits(2, 1000);
        add(
            &mut pending,
            job(&["a", "b", "c"], PurgeKind::Soft),
            &limits,
        );
        add(&mut pending, job(&["b"], PurgeKind::Hard), &limits);
        add(
            &mut pending,
            job(&["c", "d", "b"], PurgeKind::Soft),
            &limits,
        );
        let requests = split(pending, &limits);
        let shapes: Vec<(PurgeKind, Vec<String>)> = requests
            .iter()
            .map(|(r, _)| (r.kind, r.items.clone()))
            .collect();
        assert_eq!(
            shapes,
            [
                (PurgeKind::Soft, vec!["a".to_string(), "c".to_string()]),
                (PurgeKind::Soft, vec!["d".to_string()]),
                (PurgeKind::Hard, vec!["b".to_string()]),
            ]
        );
        // `b` was asked three times (twice soft, once hard): one hard purge, all told.
        let b = &requests[2].1[0].1;
        assert_eq!(b.waiting.len(), 3);
        // Bytes: "aaaa" and "bbbb" need 10 with their separators.
        let mut pending = Pending::new();
        let limits = limits_bytes(9);
        add(
            &mut pending,
            job(&["aaaa", "bbbb"], PurgeKind::Soft),
            &limits,
        );
        assert_eq!(split(pending, &limits).len(), 2);
    }

    fn limits_bytes(bytes: usize) -> Limits {
        limits(100, bytes)
    }

    #[tokio::test]
    async fn a_waiter_answers_once_every_item_was_tried() {
        let (waiter, told) = Waiter::new(3);
        waiter.tried(1, true);
        waiter.tried(1, false);
        waiter.tried(1, true);
        assert!(!told.await.unwrap());
        let (_, told) = Waiter::new(0);
        assert!(told.await.unwrap());
    }

    /// A CDN whose answers the test scripts (a test double for the queue's own logic: the
    /// adapters themselves are tested against stand-ins over HTTP, tests/tests/cdn_apis.rs).
    #[derive(Debug, Default)]
    struct Scripted {
        answers: Mutex<std::collections::VecDeque<Result<(), SendError>>>,
        sent: Mutex<Vec<(Instant, PurgeRequest)>>,
    }

    impl Scripted {
        fn answering(answers: Vec<Result<(), SendError>>) -> Arc<Scripted> {
            Arc::new(Scripted {
                answers: Mutex::new(answers.into()),
                sent: Mutex::default(),
            })
        }

        fn sent(&self) -> Vec<(Instant, PurgeRequest)> {
            self.sent.lock().unwrap().clone()
        }
    }

    impl Adapter for Scripted {
        fn name(&self) -> &'static str {
            "scripted"
        }
        fn limits(&self) -> Limits {
            limits(1, 1000)
        }
        fn send<'a>(
            &'a self,
            request: &'a PurgeRequest,
        ) -> futures::future::BoxFuture<'a, Result<(), SendError>> {
            self.sent
                .lock()
                .unwrap()
                .push((Instant::now(), request.clone()));
            let answer = self.answers.lock().unwrap().pop_front().unwrap_or(Ok(()));
            Box::pin(async move { answer })
        }
    }

    fn job(key: &str) -> (Job, oneshot::Receiver<bool>) {
        let (waiter, told) = Waiter::new(1);
        let job = Job {
            items: vec![key.to_string()],
            kind: PurgeKind::Soft,
            waiter,
        };
        (job, told)
    }

    fn busy(seconds: u64) -> Result<(), SendError> {
        Err(SendError::Retry {
            error: "429".into(),
            after: Some(Duration::from_secs(seconds)),
        })
    }

    #[tokio::test(start_paused = true)]
    async fn a_rate_limit_pauses_every_request_and_tells_the_waiting_at_once() {
        let cdn = Scripted::answering(vec![busy(10)]);
        let (jobs, received) = mpsc::channel(16);
        let task = tokio::spawn(run(received, cdn.clone(), Journal::default()));
        let start = Instant::now();
        let (a, told_a) = job("a");
        jobs.send(a).await.unwrap();
        assert!(!told_a.await.unwrap(), "the 429 is told as not gone");
        // Sent during the pause: not sent before it ends, and told so at once.
        let (b, told_b) = job("b");
        jobs.send(b).await.unwrap();
        assert!(!told_b.await.unwrap());
        assert!(start.elapsed() < Duration::from_secs(1));
        drop(jobs);
        // The queue ends once everything went (no panic with every branch disabled).
        task.await.unwrap();
        let sent = cdn.sent();
        let keys: Vec<&str> = sent.iter().map(|(_, r)| r.items[0].as_str()).collect();
        assert_eq!(keys.len(), 3, "{keys:?}");
        assert_eq!(keys[0], "a");
        for (at, request) in &sent[1..] {
            assert!(
                *at - start >= Duration::from_secs(10),
                "{request:?} sent during the pause"
            );
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_key_is_tried_six_times_then_given_up_and_a_refused_one_once() {
        let failing = || {
            Err(SendError::Retry {
                error: "503".into(),
                after: None,
            })
        };
        let cdn = Scripted::answering((0..10).map(|_| failing()).collect());
        let (jobs, received) = mpsc::channel(16);
        let task = tokio::spawn(run(received, cdn.clone(), Journal::default()));
        let (a, told) = job("a");
        jobs.send(a).await.unwrap();
        assert!(!told.await.unwrap());
        drop(jobs);
        task.await.unwrap();
        let sent = cdn.sent();
        assert_eq!(sent.len(), 1 + RETRY_DELAYS.len());
        let gaps: Vec<Duration> = sent.windows(2).map(|w| w[1].0 - w[0].0).collect();
        assert_eq!(gaps, RETRY_DELAYS);

        let cdn = Scripted::answering(vec![Err(SendError::Refused("400".into()))]);
        let (jobs, received) = mpsc::channel(16);
        let task = tokio::spawn(run(received, cdn.clone(), Journal::default()));
        let (a, _told) = job("a");
        jobs.send(a).await.unwrap();
        drop(jobs);
        task.await.unwrap();
        assert_eq!(cdn.sent().len(), 1);
    }

    #[tokio::test]
    async fn what_was_not_purged_is_sent_after_a_restart() {
        let dir = tempfile::tempdir().unwrap();
        let journal = || {
            let journal = super::super::SqliteJournal::open(dir.path()).unwrap();
            Journal(Some(Arc::new(journal)))
        };
        // The CDN is down: the key waits for a retry when the process dies.
        let down = Scripted::answering(vec![busy(3600)]);
        let (jobs, received) = mpsc::channel(16);
        let task = tokio::spawn(run(received, down.clone(), journal()));
        let (a, told) = job("posts");
        jobs.send(a).await.unwrap();
        assert!(!told.await.unwrap());
        task.abort();
        let _ = task.await;
        // The next start sends it first, with nobody waiting.
        let up = Scripted::answering(vec![]);
        let (jobs, received) = mpsc::channel(16);
        let task = tokio::spawn(run(received, up.clone(), journal()));
        drop(jobs);
        task.await.unwrap();
        let sent = up.sent();
        assert_eq!(sent.len(), 1);
        assert_eq!(sent[0].1.items, ["posts"]);
        // Sent: nothing left for the start after.
        let (jobs, received) = mpsc::channel::<Job>(16);
        drop(jobs);
        let again = Scripted::answering(vec![]);
        run(received, again.clone(), journal()).await;
        assert!(again.sent().is_empty());
    }
}
