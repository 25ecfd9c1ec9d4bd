//! Failed authentications per client address: after [`MAX_FAILURES`] in one
//! [`FAILURE_WINDOW`], an address gets `429` on every protected route until the window ends,
//! whatever it sends (so a token cannot be guessed faster than that).
//!
//! IPv6 clients are counted per /64 (one host usually holds a whole /64). The addresses
//! remembered are capped ([`MAX_CLIENTS`], the least recently seen forgotten first), so a
//! flood of addresses costs bounded memory; a forgotten address only starts a new window.

use std::net::IpAddr;
use std::time::{Duration, Instant};

/// Failed authentications one address may make per window.
pub const MAX_FAILURES: u32 = 10;

/// The window failures are counted in.
pub const FAILURE_WINDOW: Duration = Duration::from_secs(60);

/// Addresses remembered at most.
pub const MAX_CLIENTS: usize = 10_000;

/// Failures per client address.
///
/// ```
/// let limit = isr::server::auth_limit::AuthFailures::new();
/// let client = "203.0.113.9".parse().unwrap();
/// assert_eq!(limit.blocked(client), None);
/// for _ in 0..isr::server::auth_limit::MAX_FAILURES {
///     limit.failed(client);
/// }
/// assert!(limit.blocked(client).is_some(), "blocked until the window ends");
/// assert_eq!(limit.blocked("203.0.113.10".parse().unwrap()), None, "others are not");
/// ```
pub struct AuthFailures {
    clients: quick_cache::sync::Cache<IpAddr, Window>,
    max_failures: u32,
    window: Duration,
}

#[derive(Clone, Copy, Debug)]
struct Window {
    started: Instant,
    failures: u32,
}

impl Default for AuthFailures {
    fn default() -> Self {
        Self::new()
    }
}

impl AuthFailures {
    /// [`MAX_FAILURES`] per [`FAILURE_WINDOW`].
    pub fn new() -> Self {
        Self::with_limits(MAX_FAILURES, FAILURE_WINDOW)
    }

    /// `max_failures` per `window`.
    pub fn with_limits(max_failures: u32, window: Duration) -> Self {
        AuthFailures {
            clients: quick_cache::sync::Cache::new(MAX_CLIENTS),
            max_failures: max_failures.max(1),
            window,
        }
    }

    /// How long `client` must wait before it may try again, when it is blocked now.
    pub fn blocked(&self, client: IpAddr) -> Option<Duration> {
        self.blocked_at(client, Instant::now())
    }

    fn blocked_at(&self, client: IpAddr, now: Instant) -> Option<Duration> {
        let window = self.clients.get(&bucket(client))?;
        let ends = window.started + self.window;
        (window.failures >= self.max_failures && now < ends).then(|| ends - now)
    }

    /// Counts one failed authentication of `client`; returns whether it is blocked now.
    pub fn failed(&self, client: IpAddr) -> bool {
        self.failed_at(client, Instant::now())
    }

    fn failed_at(&self, client: IpAddr, now: Instant) -> bool {
        let key = bucket(client);
        let window = match self.clients.get(&key) {
            Some(window) if now < window.started + self.window => Window {
                failures: window.failures.saturating_add(1),
                ..window
            },
            _ => Window {
                started: now,
                failures: 1,
            },
        };
        self.clients.insert(key, window);
        window.failures >= self.max_failures
    }
}

/// The address failures are counted under: IPv4 as it is, IPv6 by its /64.
fn bucket(ip: IpAddr) -> IpAddr {
    match ip.to_canonical() {
        IpAddr::V6(v6) => {
            let bits = u128::from(v6) & !((1u128 << 64) - 1);
            IpAddr::V6(bits.into())
        }
        v4 => v4,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_window_blocks_then_ends() {
        let limit = AuthFailures::with_limits(3, Duration::from_secs(60));
        let client: IpAddr = "198.51.100.1".parse().unwrap();
        let start = Instant::now();
        assert!(!limit.failed_at(client, start));
        assert!(!limit.failed_at(client, start + Duration::from_secs(1)));
        assert!(limit.failed_at(client, start + Duration::from_secs(2)));
        assert_eq!(
            limit.blocked_at(client, start + Duration::from_secs(10)),
            Some(Duration::from_secs(50))
        );
        assert_eq!(
            limit.blocked_at(client, start + Duration::from_secs(60)),
            None
        );
        assert!(
            !limit.failed_at(client, start + Duration::from_secs(61)),
            "a new window"
        );
    }

    #[test]
    fn ipv6_clients_count_per_64() {
        let limit = AuthFailures::with_limits(2, Duration::from_secs(60));
        let start = Instant::now();
        limit.failed_at("2001:db8::1".parse().unwrap(), start);
        assert!(limit.failed_at("2001:db8::ffff".parse().unwrap(), start));
        assert!(limit
            .blocked_at("2001:db8::2".parse().unwrap(), start)
            .is_some());
        assert!(limit
            .blocked_at("2001:db8:0:1::1".parse().unwrap(), start)
            .is_none());
    }
}
