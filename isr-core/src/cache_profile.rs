//! [`CacheProfile`]: how long a page is kept, served stale and kept by browsers: defined once
//! (a `const`) and named on many routes with `#[page(cache = PROFILE)]`.

use crate::page::Revalidate;

/// The longest window a profile accepts, in seconds: one year (as `#[page]`).
pub const MAX_PROFILE_SECS: u64 = 365 * 24 * 3600;

/// A page's caching policy: its `revalidate` window, its `expire` ceiling, its
/// `stale_if_error` grace and how long browsers may reuse it. Every response header that lets
/// a cache keep the page derives from it, and none lets any cache keep the page past `expire`
/// (plus `stale_if_error`).
///
/// Built with `const fn`s, so a profile is defined once and named on many routes; a profile
/// that breaks a rule does not compile (the builders panic, which in a `const` is a compile
/// error naming the rule):
///
/// ```
/// use isr::{CacheProfile, Revalidate};
///
/// /// Prices: fresh for a minute, never older than ten, an hour of grace while the price
/// /// service is down; browsers always ask again.
/// pub const PRICES: CacheProfile =
///     CacheProfile::revalidate(60).expire(600).stale_if_error(3600).browser(0);
///
/// assert_eq!(PRICES.window(), Revalidate::After(60));
/// assert_eq!(PRICES.expire_secs(), Some(600));
/// assert_eq!(PRICES.stale_if_error_secs(), Some(3600));
/// assert_eq!(PRICES.browser_secs(), 0);
/// assert_eq!(CacheProfile::on_demand().window(), Revalidate::Never);
/// ```
///
/// ```compile_fail
/// // `expire` must be greater than `revalidate`: a compile error.
/// const WRONG: isr::CacheProfile = isr::CacheProfile::revalidate(60).expire(30);
/// ```
///
/// Used on a page (`cache` replaces `revalidate`, `expire`, `stale_if_error` and `browser`;
/// `isr-runtime/tests/macros/pass/expire.rs` compiles and runs this):
///
/// ```text
/// #[page(path = "/price/:id", cache = PRICES, fallback = "blocking", view = PriceView)]
/// async fn price(Path(id): Path<u32>) -> isr::Result<Load<Price>> { todo!() }
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct CacheProfile {
    window: Revalidate,
    expire_secs: Option<u64>,
    stale_if_error_secs: Option<u64>,
    browser_secs: u64,
}

impl CacheProfile {
    /// Fresh for `seconds` after each generation; a request after that gets the old page at
    /// once and starts the regeneration in the background.
    ///
    /// # Panics
    /// When `seconds` is 0 or more than a year (in a `const`: a compile error).
    ///
    /// ```
    /// assert_eq!(isr::CacheProfile::revalidate(5).window(), isr::Revalidate::After(5));
    /// ```
    pub const fn revalidate(seconds: u64) -> Self {
        if seconds == 0 || seconds > MAX_PROFILE_SECS {
            panic!("CacheProfile::revalidate takes 1 to 31536000 seconds (one year); use CacheProfile::on_demand() for on-demand revalidation only");
        }
        CacheProfile::of(Revalidate::After(seconds))
    }

    /// Never stale by time: only on-demand revalidation (or `expire`) regenerates the page.
    ///
    /// ```
    /// assert_eq!(isr::CacheProfile::on_demand().expire_secs(), None);
    /// ```
    pub const fn on_demand() -> Self {
        CacheProfile::of(Revalidate::Never)
    }

    /// The profile of a `revalidate` window alone (no ceiling, browsers revalidate every
    /// time), with no checks: what [`CacheProfile::revalidate`] builds once it has checked
    /// its argument (and what tests build pages with).
    ///
    /// ```
    /// let profile = isr::CacheProfile::of(isr::Revalidate::After(0));
    /// assert_eq!(profile.window(), isr::Revalidate::After(0));
    /// ```
    pub const fn of(window: Revalidate) -> Self {
        CacheProfile {
            window,
            expire_secs: None,
            stale_if_error_secs: None,
            browser_secs: 0,
        }
    }

    /// The ceiling on a served page's age: an older page is never served as current, a
    /// request waits for its regeneration (see the book's "Freshness").
    ///
    /// # Panics
    /// When `seconds` is not greater than the `revalidate` window, or more than a year.
    ///
    /// ```
    /// let p = isr::CacheProfile::revalidate(60).expire(600);
    /// assert_eq!(p.expire_secs(), Some(600));
    /// ```
    pub const fn expire(mut self, seconds: u64) -> Self {
        if seconds == 0 || seconds > MAX_PROFILE_SECS {
            panic!("CacheProfile::expire takes 1 to 31536000 seconds (one year)");
        }
        if let Revalidate::After(window) = self.window {
            if seconds <= window {
                panic!("CacheProfile::expire must be greater than the revalidate window: between the two a page is served at once and regenerated in the background, past expire a request waits for the new version");
            }
        }
        self.expire_secs = Some(seconds);
        self
    }

    /// How long past `expire` the old page may still be served (marked `stale-if-error`)
    /// while its regeneration fails; without it such a request gets a 503.
    ///
    /// # Panics
    /// When no `expire` was set before, or `seconds` is 0 or more than a year.
    ///
    /// ```
    /// let p = isr::CacheProfile::revalidate(60).expire(600).stale_if_error(3600);
    /// assert_eq!(p.stale_if_error_secs(), Some(3600));
    /// ```
    pub const fn stale_if_error(mut self, seconds: u64) -> Self {
        if self.expire_secs.is_none() {
            panic!("CacheProfile::stale_if_error extends expire: call .expire(seconds) first");
        }
        if seconds == 0 || seconds > MAX_PROFILE_SECS {
            panic!("CacheProfile::stale_if_error takes 1 to 31536000 seconds (one year)");
        }
        self.stale_if_error_secs = Some(seconds);
        self
    }

    /// How long a browser may reuse the page without asking (`max-age`); 0 (the default)
    /// means it asks every time (`must-revalidate`, answered `304` while the page is
    /// unchanged). Never past `expire`: the header is capped at it.
    ///
    /// # Panics
    /// When `seconds` is more than a year.
    ///
    /// ```
    /// assert_eq!(isr::CacheProfile::revalidate(60).browser(10).browser_secs(), 10);
    /// ```
    pub const fn browser(mut self, seconds: u64) -> Self {
        if seconds > MAX_PROFILE_SECS {
            panic!("CacheProfile::browser takes 0 to 31536000 seconds (one year)");
        }
        self.browser_secs = seconds;
        self
    }

    /// The same profile with another window (a not-found page's recheck window, say), the
    /// rest unchanged.
    ///
    /// ```
    /// let p = isr::CacheProfile::revalidate(60).expire(600).with_window(isr::Revalidate::After(5));
    /// assert_eq!((p.window(), p.expire_secs()), (isr::Revalidate::After(5), Some(600)));
    /// ```
    pub const fn with_window(mut self, window: Revalidate) -> Self {
        self.window = window;
        self
    }

    /// The profile of a version that stops being valid `seconds` after its generation (its
    /// loader's `valid_until`): no lifetime reaches past that. The window and `expire` are
    /// capped at it, and `stale_if_error` reaches no further than it.
    ///
    /// ```
    /// use isr::{CacheProfile, Revalidate};
    /// let p = CacheProfile::revalidate(60).valid_for(20);
    /// assert_eq!((p.window(), p.expire_secs()), (Revalidate::After(20), Some(20)));
    /// let p = CacheProfile::revalidate(60).expire(600).stale_if_error(3600).valid_for(900);
    /// assert_eq!((p.expire_secs(), p.stale_if_error_secs()), (Some(600), Some(300)));
    /// let p = CacheProfile::revalidate(60).expire(600).stale_if_error(60).valid_for(600);
    /// assert_eq!((p.expire_secs(), p.stale_if_error_secs()), (Some(600), None));
    /// // Later than anything the headers allow anyway: unchanged.
    /// let p = CacheProfile::revalidate(60).valid_for(3 * 365 * 24 * 3600);
    /// assert_eq!(p, CacheProfile::revalidate(60));
    /// ```
    pub const fn valid_for(mut self, seconds: u64) -> Self {
        match self.expire_secs {
            Some(expire) if expire <= seconds => {
                let left = seconds - expire;
                if let Some(grace) = self.stale_if_error_secs {
                    self.stale_if_error_secs = if left == 0 {
                        None
                    } else if grace > left {
                        Some(left)
                    } else {
                        Some(grace)
                    };
                }
            }
            Some(_) => {
                self.expire_secs = Some(seconds);
                self.stale_if_error_secs = None;
            }
            None => {
                // Without a ceiling, caches may keep a page for its window and a year of
                // serving stale: a later time than that shortens nothing.
                let kept = match self.window {
                    Revalidate::After(window) => window.saturating_add(MAX_PROFILE_SECS),
                    Revalidate::Never => MAX_PROFILE_SECS.saturating_mul(2),
                };
                if seconds >= kept {
                    return self;
                }
                self.expire_secs = Some(seconds);
            }
        }
        if let Revalidate::After(window) = self.window {
            if window > seconds {
                self.window = Revalidate::After(seconds);
            }
        }
        self
    }

    /// How long a generated page stays fresh.
    pub const fn window(&self) -> Revalidate {
        self.window
    }

    /// The ceiling on a served page's age, in seconds; `None`: no ceiling.
    pub const fn expire_secs(&self) -> Option<u64> {
        self.expire_secs
    }

    /// How long past `expire` the old page may be served while its regeneration fails.
    pub const fn stale_if_error_secs(&self) -> Option<u64> {
        self.stale_if_error_secs
    }

    /// How long browsers may reuse the page without asking, in seconds.
    pub const fn browser_secs(&self) -> u64 {
        self.browser_secs
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builders_enforce_their_rules_at_run_time_too() {
        for build in [
            (|| CacheProfile::revalidate(0)) as fn() -> CacheProfile,
            || CacheProfile::revalidate(MAX_PROFILE_SECS + 1),
            || CacheProfile::revalidate(60).expire(60),
            || CacheProfile::revalidate(60).stale_if_error(5),
            || CacheProfile::on_demand().expire(10).stale_if_error(0),
            || CacheProfile::on_demand().browser(MAX_PROFILE_SECS + 1),
        ] {
            assert!(std::panic::catch_unwind(build).is_err());
        }
        let on_demand = CacheProfile::on_demand().expire(10).stale_if_error(5);
        assert_eq!(on_demand.expire_secs(), Some(10));
    }
}
