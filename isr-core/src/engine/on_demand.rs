//! On-demand regenerations merged per page: a CMS that retries, or several webhooks naming the
//! same tag, must not queue one loader run per call per page.
//!
//! A page has at most one run *queued* (not started) and one *running*. A request that finds
//! a queued run joins it: that run has not read the data yet, so it sees the change this
//! request announces. A request that finds only a running run (its loader may have read the
//! data before the change) queues exactly one more run after it, which every later request
//! joins until it starts. So however many calls name a page, it is regenerated at most twice
//! for them, and the last one starts after the last call arrived.

use crate::route::PageKey;
use futures::future::{BoxFuture, FutureExt, Shared};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

type Run<T> = Shared<BoxFuture<'static, T>>;

/// The queued and running on-demand runs of each page.
pub(crate) struct OnDemandRuns<T: Clone> {
    pages: Mutex<HashMap<PageKey, Runs<T>>>,
}

struct Runs<T: Clone> {
    /// Not started yet: requests join it.
    queued: Option<Run<T>>,
    /// Started: a request queues a run after it.
    running: Option<Run<T>>,
}

impl<T: Clone + Send + Sync + 'static> OnDemandRuns<T> {
    pub(crate) fn new() -> Arc<Self> {
        Arc::new(OnDemandRuns {
            pages: Mutex::new(HashMap::new()),
        })
    }

    /// The run of `key` this request gets: the queued one, or a new one made by `run` (which
    /// starts once the running one, if any, is done). Await it for the outcome; the run goes
    /// on while any caller still awaits it.
    pub(crate) fn join<F>(self: &Arc<Self>, key: &PageKey, run: F) -> Run<T>
    where
        F: FnOnce() -> BoxFuture<'static, T> + Send + 'static,
    {
        let mut pages = self.lock();
        let runs = pages.entry(key.clone()).or_insert(Runs {
            queued: None,
            running: None,
        });
        if let Some(queued) = &runs.queued {
            return queued.clone();
        }
        let before = runs.running.clone();
        let this = self.clone();
        let key = key.clone();
        let queued = async move {
            if let Some(before) = before {
                before.await;
            }
            this.started(&key);
            let outcome = run().await;
            this.finished(&key);
            outcome
        }
        .boxed()
        .shared();
        runs.queued = Some(queued.clone());
        queued
    }

    /// The queued run of `key` starts: later requests queue one more.
    fn started(&self, key: &PageKey) {
        if let Some(runs) = self.lock().get_mut(key) {
            runs.running = runs.queued.take();
        }
    }

    fn finished(&self, key: &PageKey) {
        let mut pages = self.lock();
        if let Some(runs) = pages.get_mut(key) {
            runs.running = None;
            if runs.queued.is_none() {
                pages.remove(key);
            }
        }
    }

    /// Pages with a queued or running on-demand run.
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.lock().len()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<PageKey, Runs<T>>> {
        self.pages.lock().unwrap_or_else(|e| e.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use tokio::sync::Semaphore;

    /// A run that counts itself and waits for `gate` (so a test decides when it ends).
    fn counted(
        runs: &Arc<AtomicUsize>,
        gate: &Arc<Semaphore>,
    ) -> impl FnOnce() -> BoxFuture<'static, usize> + Send + 'static {
        let (runs, gate) = (runs.clone(), gate.clone());
        move || {
            async move {
                let n = runs.fetch_add(1, Ordering::SeqCst) + 1;
                gate.acquire().await.unwrap().forget();
                n
            }
            .boxed()
        }
    }

    #[tokio::test]
    async fn requests_join_the_queued_run_and_queue_one_after_a_running_one() {
        let on_demand = OnDemandRuns::<usize>::new();
        let key = crate::route::test_key("/blog/x");
        let runs = Arc::new(AtomicUsize::new(0));
        let gate = Arc::new(Semaphore::new(0));

        // Three calls before anything started: one run.
        let first: Vec<_> = (0..3)
            .map(|_| tokio::spawn(on_demand.join(&key, counted(&runs, &gate))))
            .collect();
        while runs.load(Ordering::SeqCst) == 0 {
            tokio::task::yield_now().await;
        }
        // It runs (its loader may have read the data): fifty more calls queue one more run.
        let later: Vec<_> = (0..50)
            .map(|_| tokio::spawn(on_demand.join(&key, counted(&runs, &gate))))
            .collect();
        assert_eq!(on_demand.len(), 1);
        gate.add_permits(1);
        for call in first {
            assert_eq!(call.await.unwrap(), 1);
        }
        while runs.load(Ordering::SeqCst) < 2 {
            tokio::task::yield_now().await;
        }
        gate.add_permits(1);
        for call in later {
            assert_eq!(call.await.unwrap(), 2, "the run after the running one");
        }
        assert_eq!(runs.load(Ordering::SeqCst), 2, "53 calls, 2 runs");
        assert_eq!(on_demand.len(), 0, "nothing left behind");

        // A call after both finished gets a run of its own.
        gate.add_permits(1);
        assert_eq!(on_demand.join(&key, counted(&runs, &gate)).await, 3);
    }
}
