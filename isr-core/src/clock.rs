//! Time sources of the engine, replaceable in tests.
//!
//! Two clocks, for two different questions: generation times are wall-clock milliseconds since
//! the Unix epoch (they are persisted and compared across restarts); backoff and retry
//! deadlines are monotonic milliseconds (a wall-clock step must neither stall retries for
//! hours nor release every backed-off page at once).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

/// Wall clock and monotonic clock.
///
/// ```
/// use isr::clock::{Clock, SystemClock};
/// assert!(SystemClock.now_ms() > 1_600_000_000_000);
/// let a = SystemClock.monotonic_ms();
/// assert!(SystemClock.monotonic_ms() >= a);
/// ```
pub trait Clock: Send + Sync + 'static {
    /// Now, in milliseconds since the Unix epoch (may jump).
    fn now_ms(&self) -> u64;

    /// Milliseconds since an arbitrary origin in this process; never goes back.
    fn monotonic_ms(&self) -> u64;
}

/// The real clocks.
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

    fn monotonic_ms(&self) -> u64 {
        static ORIGIN: OnceLock<Instant> = OnceLock::new();
        ORIGIN.get_or_init(Instant::now).elapsed().as_millis() as u64
    }
}

/// Clocks that move only when told to (for tests of staleness, backoff and clock steps).
///
/// ```
/// use isr::clock::{Clock, ManualClock};
/// let clock = ManualClock::new(1_000);
/// clock.advance_ms(500);
/// assert_eq!((clock.now_ms(), clock.monotonic_ms()), (1_500, 500));
/// clock.step_wall_ms(-10_000);
/// assert_eq!((clock.now_ms(), clock.monotonic_ms()), (0, 500));
/// ```
#[derive(Debug, Default)]
pub struct ManualClock {
    wall: AtomicU64,
    monotonic: AtomicU64,
}

impl ManualClock {
    /// A wall clock reading `start_ms` and a monotonic clock reading 0.
    ///
    /// ```
    /// use isr::clock::Clock;
    /// assert_eq!(isr::clock::ManualClock::new(7).now_ms(), 7);
    /// ```
    pub fn new(start_ms: u64) -> Self {
        ManualClock {
            wall: AtomicU64::new(start_ms),
            monotonic: AtomicU64::new(0),
        }
    }

    /// Time passes: both clocks move forward.
    ///
    /// ```
    /// use isr::clock::Clock;
    /// let c = isr::clock::ManualClock::new(0);
    /// c.advance_ms(1);
    /// assert_eq!(c.now_ms(), 1);
    /// ```
    pub fn advance_ms(&self, ms: u64) {
        self.wall.fetch_add(ms, Ordering::SeqCst);
        self.monotonic.fetch_add(ms, Ordering::SeqCst);
    }

    /// The wall clock is set (NTP step, operator): only it moves, by `delta_ms` (saturating at 0).
    ///
    /// ```
    /// use isr::clock::Clock;
    /// let c = isr::clock::ManualClock::new(100);
    /// c.step_wall_ms(3_600_000);
    /// assert_eq!((c.now_ms(), c.monotonic_ms()), (3_600_100, 0));
    /// ```
    pub fn step_wall_ms(&self, delta_ms: i64) {
        let _ = self
            .wall
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |wall| {
                Some(wall.saturating_add_signed(delta_ms))
            });
    }
}

impl Clock for ManualClock {
    fn now_ms(&self) -> u64 {
        self.wall.load(Ordering::SeqCst)
    }

    fn monotonic_ms(&self) -> u64 {
        self.monotonic.load(Ordering::SeqCst)
    }
}
