//! Exponential backoff with jitter between failed regenerations of one page.

use std::time::Duration;

/// Delay before the first retry (before jitter).
pub const FIRST_DELAY: Duration = Duration::from_secs(1);
/// The longest delay between two attempts.
pub const MAX_DELAY: Duration = Duration::from_secs(300);

/// Delay after the `failures`-th consecutive failure (1-based): 1 s, 2 s, 4 s … capped at 5 min,
/// then scaled by `jitter` in `[0, 1)` into `[delay / 2, delay)` so that many pages failing at
/// once do not retry in lockstep.
///
/// ```
/// use std::time::Duration;
/// use isr::backoff::delay_after;
/// assert_eq!(delay_after(1, 0.0), Duration::from_millis(500));
/// assert!(delay_after(3, 0.99) < Duration::from_secs(4));
/// assert!(delay_after(40, 0.0) >= Duration::from_secs(150));
/// ```
pub fn delay_after(failures: u32, jitter: f64) -> Duration {
    let exponent = failures.saturating_sub(1).min(20);
    let base = FIRST_DELAY.saturating_mul(1u32 << exponent).min(MAX_DELAY);
    base.mul_f64(0.5 + 0.5 * jitter.clamp(0.0, 0.999_999))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn doubles_up_to_the_cap_within_jitter_bounds() {
        for failures in 1..=12 {
            let low = delay_after(failures, 0.0);
            let high = delay_after(failures, 0.999_999);
            assert!(
                low <= high && high <= MAX_DELAY,
                "{failures}: {low:?}..{high:?}"
            );
            if failures > 1 {
                assert!(low >= delay_after(failures - 1, 0.0));
            }
        }
        assert_eq!(delay_after(2, 0.0), Duration::from_secs(1));
        assert!(delay_after(1, 0.999) <= Duration::from_secs(2));
        assert_eq!(delay_after(9, 0.0), Duration::from_secs(128));
        assert_eq!(delay_after(10, 0.0), MAX_DELAY / 2);
        assert_eq!(delay_after(u32::MAX, 0.0), MAX_DELAY / 2);
    }
}
