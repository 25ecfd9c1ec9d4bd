//! The last generation of recently generated pages: outcome, error, trigger, when and how
//! long (what an operator asks first about a page). Bounded: the [`RUNS_KEPT`] most recently
//! recorded pages (quick_cache), so a site of a million pages keeps the recent ones only;
//! failure counts and retry times of every failing page stay in the page table regardless.

use super::Trigger;
use crate::route::PageKey;
use serde::Serialize;

/// Pages whose last run is remembered, at most.
pub const RUNS_KEPT: usize = 10_000;

/// Longest error message kept (characters).
const ERROR_KEPT: usize = 1_000;

/// The last generation of one page.
///
/// ```
/// let run = isr::engine::LastRun::new("error", Some("db down".into()), 1_000, isr::Trigger::Stale, 0.5);
/// assert_eq!(run.outcome, "error");
/// ```
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct LastRun {
    /// `ok`, `not_found`, `pulled` (another instance's version), or a failure kind (`error`,
    /// `timeout`, `panic`, `store_error`, `busy`).
    pub outcome: &'static str,
    /// The failure's message (shortened to 1,000 characters).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// When it ended (ms since the Unix epoch).
    pub at_ms: u64,
    /// What started it.
    pub trigger: &'static str,
    /// How long it took.
    pub seconds: f64,
}

impl LastRun {
    /// A run record (the error shortened to 1,000 characters).
    pub fn new(
        outcome: &'static str,
        error: Option<String>,
        at_ms: u64,
        trigger: Trigger,
        seconds: f64,
    ) -> Self {
        let error = error.map(|e| match e.char_indices().nth(ERROR_KEPT) {
            Some((cut, _)) => format!("{}…", &e[..cut]),
            None => e,
        });
        LastRun {
            outcome,
            error,
            at_ms,
            trigger: trigger.as_str(),
            seconds,
        }
    }
}

/// The bounded record of last runs.
pub(super) struct RunLog {
    runs: quick_cache::sync::Cache<PageKey, LastRun>,
}

impl RunLog {
    pub fn new() -> Self {
        RunLog {
            runs: quick_cache::sync::Cache::new(RUNS_KEPT),
        }
    }

    pub fn record(&self, key: &PageKey, run: LastRun) {
        self.runs.insert(key.clone(), run);
    }

    pub fn last(&self, key: &str) -> Option<LastRun> {
        self.runs.get(key)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_errors_are_shortened_and_the_log_is_bounded() {
        let run = LastRun::new("error", Some("é".repeat(5_000)), 1, Trigger::Miss, 0.1);
        assert_eq!(run.error.unwrap().chars().count(), ERROR_KEPT + 1);
        let log = RunLog::new();
        for i in 0..RUNS_KEPT * 2 {
            let key = crate::route::test_key(&format!("/p/{i}"));
            log.record(
                &key,
                LastRun::new("ok", None, i as u64, Trigger::Stale, 0.0),
            );
        }
        let kept = (0..RUNS_KEPT * 2)
            .filter(|i| log.last(&format!("/p/{i}")).is_some())
            .count();
        assert!(kept <= RUNS_KEPT + RUNS_KEPT / 10, "{kept}");
        assert!(
            log.last(&format!("/p/{}", RUNS_KEPT * 2 - 1)).is_some(),
            "the newest is kept"
        );
    }
}
