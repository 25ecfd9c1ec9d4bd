//! A circuit breaker in front of Redis: after a few failures in a row, calls fail at once for
//! a short while instead of each waiting for its timeout, so a dead Redis costs requests
//! nothing. Then calls are let through again; the first success closes the breaker.

use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Failures in a row that open the breaker.
pub const TRIP_AFTER: u32 = 3;
/// How long an open breaker refuses calls before letting them try again.
pub const OPEN_FOR: Duration = Duration::from_secs(1);

/// The breaker's state (see the module docs).
///
/// ```
/// let breaker = isr::shared::Breaker::default();
/// for _ in 0..isr::shared::TRIP_AFTER { assert!(breaker.allows()); breaker.failed(); }
/// assert!(!breaker.allows() && !breaker.is_up());
/// ```
#[derive(Default)]
pub struct Breaker {
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    failures: u32,
    open_until: Option<Instant>,
}

impl Breaker {
    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Whether a call may go to Redis now.
    pub fn allows(&self) -> bool {
        self.state()
            .open_until
            .is_none_or(|until| Instant::now() >= until)
    }

    /// Whether the last calls succeeded (the `isr_redis_up` gauge).
    pub fn is_up(&self) -> bool {
        self.state().failures < TRIP_AFTER
    }

    /// Records a success; returns whether Redis was down until now.
    pub fn succeeded(&self) -> bool {
        let mut state = self.state();
        let was_down = state.failures >= TRIP_AFTER;
        state.failures = 0;
        state.open_until = None;
        was_down
    }

    /// Records a failure (a timeout, a refused connection); returns whether Redis is now down
    /// for the first time since it was last up.
    pub fn failed(&self) -> bool {
        let mut state = self.state();
        state.failures = state.failures.saturating_add(1);
        if state.failures >= TRIP_AFTER {
            state.open_until = Some(Instant::now() + OPEN_FOR);
        }
        state.failures == TRIP_AFTER
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn opens_after_failures_in_a_row_and_closes_on_a_success() {
        let breaker = Breaker::default();
        breaker.failed();
        breaker.failed();
        assert!(
            breaker.allows() && breaker.is_up(),
            "two failures: still closed"
        );
        assert!(!breaker.succeeded(), "was not down");
        for _ in 0..TRIP_AFTER - 1 {
            assert!(!breaker.failed());
        }
        assert!(breaker.failed(), "the third failure in a row trips it");
        assert!(!breaker.allows());
        assert!(!breaker.failed(), "tripping is reported once");
        assert!(
            breaker.succeeded(),
            "a success after the trip reports the recovery"
        );
        assert!(breaker.allows() && breaker.is_up());
    }
}
