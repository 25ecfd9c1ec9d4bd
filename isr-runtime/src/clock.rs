//! Time source of the engine, replaceable in tests.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

/// Wall-clock milliseconds since the Unix epoch (generation times are persisted, so they must
/// survive a restart: a monotonic clock would not).
///
/// ```
/// use isr::clock::{Clock, SystemClock};
/// assert!(SystemClock.now_ms() > 1_600_000_000_000);
/// ```
pub trait Clock: Send + Sync + 'static {
    /// Now, in milliseconds since the Unix epoch.
    fn now_ms(&self) -> u64;
}

/// The real clock.
///
/// ```
/// use isr::clock::Clock;
/// let a = isr::clock::SystemClock.now_ms();
/// assert!(isr::clock::SystemClock.now_ms() >= a);
/// ```
#[derive(Clone, Copy, Debug, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now_ms(&self) -> u64 {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_millis() as u64)
            .unwrap_or(0)
    }
}

/// A clock that moves only when told to (for tests of staleness and backoff).
///
/// ```
/// use isr::clock::{Clock, ManualClock};
/// let clock = ManualClock::new(1_000);
/// clock.advance_ms(500);
/// assert_eq!(clock.now_ms(), 1_500);
/// ```
#[derive(Debug, Default)]
pub struct ManualClock(AtomicU64);

impl ManualClock {
    /// A clock reading `start_ms`.
    ///
    /// ```
    /// use isr::clock::Clock;
    /// assert_eq!(isr::clock::ManualClock::new(7).now_ms(), 7);
    /// ```
    pub fn new(start_ms: u64) -> Self {
        ManualClock(AtomicU64::new(start_ms))
    }

    /// Moves the clock forward.
    ///
    /// ```
    /// use isr::clock::Clock;
    /// let c = isr::clock::ManualClock::new(0);
    /// c.advance_ms(1);
    /// assert_eq!(c.now_ms(), 1);
    /// ```
    pub fn advance_ms(&self, ms: u64) {
        self.0.fetch_add(ms, Ordering::SeqCst);
    }
}

impl Clock for ManualClock {
    fn now_ms(&self) -> u64 {
        self.0.load(Ordering::SeqCst)
    }
}
