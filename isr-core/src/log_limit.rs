//! Log lines that a flood cannot multiply: at most one per period, with a count of the events
//! left unlogged (a refused connection, a failed authentication, a variant past its page's
//! `max_variants`).
//!
//! ```
//! use std::time::Duration;
//! static LIMIT: isr_core::log_limit::LogLimiter =
//!     isr_core::log_limit::LogLimiter::new(Duration::from_secs(10));
//! assert_eq!(LIMIT.allow(), Some(0), "the first event is logged");
//! assert_eq!(LIMIT.allow(), None, "the next, within the period, is counted");
//! ```

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;
use std::time::Duration;

/// At most one log line per period, with the number of events left unlogged since the last
/// one (lock-free: an atomic timestamp).
pub struct LogLimiter {
    period_ms: u64,
    next_ms: AtomicU64,
    suppressed: AtomicU64,
}

impl LogLimiter {
    /// A limiter allowing one line per `period`; the first event is always logged.
    pub const fn new(period: Duration) -> LogLimiter {
        LogLimiter {
            period_ms: period.as_millis() as u64,
            next_ms: AtomicU64::new(0),
            suppressed: AtomicU64::new(0),
        }
    }

    /// `Some(suppressed)` when this event may be logged (`suppressed`: events not logged since
    /// the last logged one), `None` when it is counted and not logged.
    pub fn allow(&self) -> Option<u64> {
        static START: OnceLock<std::time::Instant> = OnceLock::new();
        let now = START.get_or_init(std::time::Instant::now).elapsed();
        self.allow_at(now.as_millis() as u64)
    }

    /// [`LogLimiter::allow`] at `now` milliseconds after a fixed start.
    fn allow_at(&self, now: u64) -> Option<u64> {
        let next = self.next_ms.load(Ordering::Relaxed);
        if now >= next
            && self
                .next_ms
                .compare_exchange(
                    next,
                    now.saturating_add(self.period_ms),
                    Ordering::Relaxed,
                    Ordering::Relaxed,
                )
                .is_ok()
        {
            Some(self.suppressed.swap(0, Ordering::Relaxed))
        } else {
            self.suppressed.fetch_add(1, Ordering::Relaxed);
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_log_limiter_logs_once_per_period_and_counts_the_rest() {
        let limiter = LogLimiter::new(Duration::from_secs(10));
        assert_eq!(limiter.allow_at(0), Some(0));
        assert_eq!(limiter.allow_at(5_000), None);
        assert_eq!(limiter.allow_at(9_999), None);
        assert_eq!(limiter.allow_at(10_000), Some(2));
        assert_eq!(limiter.allow_at(10_001), None);
        assert_eq!(limiter.allow_at(60_000), Some(1));
    }
}
