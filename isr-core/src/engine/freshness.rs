//! Freshness: pure functions of a page's metadata, its route's window and the wall clock.

use crate::page::{PageDef, Revalidate};
use crate::store::PageKind;
use std::time::Duration;

/// How long a remembered "not found" is trusted before it is checked again, at most.
pub const NOT_FOUND_RECHECK: Duration = Duration::from_secs(60);

/// How long a stored outcome stays fresh: the page's `revalidate`, except that a remembered
/// not-found is checked again after at most [`NOT_FOUND_RECHECK`].
///
/// ```
/// use isr::{Revalidate, store::PageKind, engine::effective_revalidate};
/// assert_eq!(effective_revalidate(&PageKind::NotFound, Revalidate::After(300)), Revalidate::After(60));
/// assert_eq!(effective_revalidate(&PageKind::NotFound, Revalidate::After(5)), Revalidate::After(5));
/// assert_eq!(effective_revalidate(&PageKind::NotFound, Revalidate::Never), Revalidate::After(60));
/// ```
pub fn effective_revalidate(kind: &PageKind, revalidate: Revalidate) -> Revalidate {
    let recheck = NOT_FOUND_RECHECK.as_secs();
    match (kind, revalidate) {
        (PageKind::NotFound, Revalidate::After(s)) => Revalidate::After(s.min(recheck)),
        (PageKind::NotFound, Revalidate::Never) => Revalidate::After(recheck),
        (_, revalidate) => revalidate,
    }
}

/// Whether a page generated at `generated_at_ms` is fresh at `now_ms` (wall clock). An unknown
/// generation time (0) is always stale; age ≥ window is stale.
///
/// ```
/// use isr::{Revalidate, store::PageKind, engine::is_fresh};
/// let page = PageKind::Page { etag: isr::store::Etag::of(b""), bytes: 0 };
/// assert!(is_fresh(&page, 1_000, Revalidate::After(5), 5_999));
/// assert!(!is_fresh(&page, 1_000, Revalidate::After(5), 6_000));
/// assert!(!is_fresh(&page, 0, Revalidate::Never, 1));
/// assert!(is_fresh(&page, 1, Revalidate::Never, u64::MAX));
/// ```
pub fn is_fresh(
    kind: &PageKind,
    generated_at_ms: u64,
    revalidate: Revalidate,
    now_ms: u64,
) -> bool {
    if generated_at_ms == 0 {
        return false;
    }
    match effective_revalidate(kind, revalidate) {
        Revalidate::Never => true,
        Revalidate::After(s) => now_ms.saturating_sub(generated_at_ms) < s.saturating_mul(1000),
    }
}

/// Whether a stored outcome generated at `generated_at_ms` is expired at `now_ms` (wall
/// clock): past its page's `expire` (never without one, never for a remembered not-found,
/// which is checked again within a minute anyway; an unknown generation time, 0, is expired),
/// or past the time its loader said it stops being valid (`valid_until_ms`, for any outcome).
///
/// ```
/// use isr::{store::PageKind, engine::is_expired};
/// let page = PageKind::Page { etag: isr::store::Etag::of(b""), bytes: 0 };
/// let mut def = isr::__private::example_def("/price");
/// assert!(!is_expired(&page, 1_000, None, &def, u64::MAX), "no expire");
/// assert!(is_expired(&page, 1_000, Some(5_000), &def, 5_000), "valid until 5 s");
/// def.cache = isr::CacheProfile::revalidate(5).expire(10);
/// assert!(!is_expired(&page, 1_000, None, &def, 10_999));
/// assert!(is_expired(&page, 1_000, None, &def, 11_000));
/// assert!(!is_expired(&PageKind::NotFound, 1_000, None, &def, 11_000));
/// assert!(is_expired(&PageKind::NotFound, 1_000, Some(2_000), &def, 2_000), "not yet, until 2 s");
/// ```
pub fn is_expired(
    kind: &PageKind,
    generated_at_ms: u64,
    valid_until_ms: Option<u64>,
    def: &PageDef,
    now_ms: u64,
) -> bool {
    if valid_until_reached(valid_until_ms, now_ms) {
        return true;
    }
    let Some(expire) = def.cache.expire_secs() else {
        return false;
    };
    if matches!(kind, PageKind::NotFound) {
        return false;
    }
    generated_at_ms == 0 || now_ms.saturating_sub(generated_at_ms) >= expire.saturating_mul(1000)
}

/// Whether the time a loader said its outcome stops being valid has come (wall clock).
///
/// ```
/// use isr::engine::valid_until_reached;
/// assert!(!valid_until_reached(None, u64::MAX));
/// assert!(!valid_until_reached(Some(2_000), 1_999));
/// assert!(valid_until_reached(Some(2_000), 2_000));
/// ```
pub fn valid_until_reached(valid_until_ms: Option<u64>, now_ms: u64) -> bool {
    valid_until_ms.is_some_and(|at| now_ms >= at)
}

/// The shortest a loader's `valid_until` makes a version last: a time at or before the end of
/// its generation counts as this long after it, so that a loader that keeps answering with a
/// past time makes one generation per second at most, never a loop.
pub const MIN_VALIDITY: std::time::Duration = std::time::Duration::from_secs(1);
