//! Metrics: names, labels and recording through the `metrics` facade. Nothing is recorded
//! unless the process installed a recorder (`isr`'s `metrics` feature installs the Prometheus
//! one in `App::run`).

use std::sync::OnceLock;

/// Counter of page requests by cache status (`hit`, `stale`, `miss`, `expired`,
/// `stale_if_error`, `not_found`, `unavailable`).
pub const REQUESTS_TOTAL: &str = "isr_requests_total";
/// Counter of loader runs after the build, by route, outcome and trigger.
pub const REGENERATIONS_TOTAL: &str = "isr_regenerations_total";
/// Histogram of regeneration durations in seconds, by route.
pub const REGENERATION_SECONDS: &str = "isr_regeneration_duration_seconds";
/// Counter of requests for a page past its `expire`, by route and outcome: `regenerated` (it
/// waited and got the new version), `stale_if_error` (regenerating failed; the old page,
/// within its `stale_if_error`), `unavailable` (regenerating failed; 503).
pub const EXPIRED_REQUESTS_TOTAL: &str = "isr_expired_requests_total";
/// Counter of CDN purge requests by `cdn` (`varnish`, `fastly`, `cloudflare`, `akamai`,
/// `cloudfront`), `kind` (`soft`, `hard`) and `outcome`: `ok`, `error`, `rate_limited` (the
/// CDN asked to wait: a `429`, or CloudFront's `TooManyInvalidationsInProgress`) per API
/// request; `gave_up` per request whose retries ran out; `dropped` per change
/// that found the queue full.
pub const CDN_PURGES_TOTAL: &str = "isr_cdn_purges_total";
/// Histogram of the seconds from the end of an on-demand revalidation until a GET through
/// the CDN served the new version (`"wait": "edge"`).
pub const CDN_PROPAGATION_SECONDS: &str = "isr_cdn_propagation_seconds";
/// Counter of `POST /_isr/revalidate` requests refused for a missing or wrong bearer token.
pub const REVALIDATE_AUTH_FAILURES_TOTAL: &str = "isr_revalidate_auth_failures_total";
/// Counter of failed authentications on every protected route, by `endpoint` (`revalidate`,
/// `api`, `metrics`, `login`, `dashboard`, `preview`).
pub const AUTH_FAILURES_TOTAL: &str = "isr_auth_failures_total";

/// Gauge: 1 while Redis (the shared tier, `--redis`) answers, 0 while it does not.
pub const REDIS_UP: &str = "isr_redis_up";
/// Counter of failed Redis calls (errors and timeouts), by operation.
pub const REDIS_ERRORS_TOTAL: &str = "isr_redis_errors_total";
/// Counter of page lease outcomes: `acquired`, `held` (another instance has it), `fenced`
/// (a commit refused for an old token), `lost` (expired while its loader ran).
pub const REDIS_LEASES_TOTAL: &str = "isr_redis_leases_total";
/// Counter of other instances' commits read from the event stream.
pub const REDIS_EVENTS_TOTAL: &str = "isr_redis_events_total";
/// Counter of pages copied from Redis into the local tiers, by reason (`event`, `request`,
/// `resync`, `fenced`, `superseded`).
pub const SHARED_PULLS_TOTAL: &str = "isr_shared_pulls_total";
/// Counter of pages generated while Redis was down and written back later, by outcome
/// (`written`, `superseded`: Redis had a newer generation).
pub const REDIS_WRITE_BACKS_TOTAL: &str = "isr_redis_write_backs_total";

/// Gauge of stored pages by route and state (`fresh`, `stale`, `regenerating`,
/// `backing_off`, `not_found`, `missing`), computed at each scrape.
pub const PAGES: &str = "isr_pages";
/// Gauge of pages whose generations are failing (backing off or missing).
pub const PAGES_FAILING: &str = "isr_pages_failing";
/// Gauge of paths only requests named (never stored) whose generation is failing: one number,
/// never a label per path.
pub const UNKNOWN_PATHS_FAILING: &str = "isr_unknown_paths_failing";
/// Gauge: age in seconds of the oldest stale page (0 when none is stale).
pub const OLDEST_STALE_SECONDS: &str = "isr_oldest_stale_seconds";

/// Every metric isr exports (as the exporter names them; a histogram adds `_bucket`, `_sum`
/// and `_count`, a summary `_sum` and `_count`). `deploy/grafana/isr.json` charts each of
/// them (tests/tests/grafana.rs).
///
/// ```
/// assert!(isr::metrics::ALL.contains(&isr::metrics::REQUESTS_TOTAL));
/// assert!(isr::metrics::ALL.iter().all(|name| name.starts_with("isr_")));
/// ```
pub const ALL: [&str; 18] = [
    REQUESTS_TOTAL,
    REGENERATIONS_TOTAL,
    REGENERATION_SECONDS,
    EXPIRED_REQUESTS_TOTAL,
    CDN_PURGES_TOTAL,
    CDN_PROPAGATION_SECONDS,
    REVALIDATE_AUTH_FAILURES_TOTAL,
    AUTH_FAILURES_TOTAL,
    REDIS_UP,
    REDIS_ERRORS_TOTAL,
    REDIS_LEASES_TOTAL,
    REDIS_EVENTS_TOTAL,
    SHARED_PULLS_TOTAL,
    REDIS_WRITE_BACKS_TOTAL,
    PAGES,
    PAGES_FAILING,
    UNKNOWN_PATHS_FAILING,
    OLDEST_STALE_SECONDS,
];

/// The `cache` labels of [`REQUESTS_TOTAL`].
const REQUEST_LABELS: [&str; 7] = [
    "hit",
    "stale",
    "miss",
    "expired",
    "stale_if_error",
    "not_found",
    "unavailable",
];

/// [`REQUESTS_TOTAL`] per label, registered with the recorder installed when
/// [`hold_request_counters`] ran: a page request then increments a counter it already holds
/// instead of looking its labels up again.
static REQUEST_COUNTERS: OnceLock<[metrics::Counter; 7]> = OnceLock::new();

/// Registers [`REQUESTS_TOTAL`]'s counters with the global recorder, once it is installed
/// (`isr::metrics::install` calls it): page requests then count without a label lookup.
/// Before, or without it, they count through the `metrics` macros.
pub fn hold_request_counters() {
    REQUEST_COUNTERS.get_or_init(|| {
        REQUEST_LABELS.map(|label| metrics::counter!(REQUESTS_TOTAL, "cache" => label))
    });
}

/// Counts one page request.
pub fn request(cache: &'static str) {
    let held = REQUEST_COUNTERS
        .get()
        .zip(REQUEST_LABELS.iter().position(|label| *label == cache));
    match held {
        Some((counters, i)) => counters[i].increment(1),
        None => metrics::counter!(REQUESTS_TOTAL, "cache" => cache).increment(1),
    }
}

/// Counts one request for a page past its `expire` ([`EXPIRED_REQUESTS_TOTAL`]).
pub fn expired_request(route: &'static str, outcome: &'static str) {
    metrics::counter!(EXPIRED_REQUESTS_TOTAL, "route" => route, "outcome" => outcome).increment(1);
}

/// Counts one loader run.
pub fn regeneration(
    route: &'static str,
    outcome: &'static str,
    trigger: &'static str,
    seconds: f64,
) {
    metrics::counter!(REGENERATIONS_TOTAL, "route" => route, "outcome" => outcome, "trigger" => trigger)
        .increment(1);
    metrics::histogram!(REGENERATION_SECONDS, "route" => route).record(seconds);
}

/// Makes [`REVALIDATE_AUTH_FAILURES_TOTAL`] and [`AUTH_FAILURES_TOTAL`] appear (at 0) before
/// the first failure.
pub fn register_auth_failures() {
    metrics::counter!(REVALIDATE_AUTH_FAILURES_TOTAL).increment(0);
    for endpoint in [
        "revalidate",
        "api",
        "metrics",
        "login",
        "dashboard",
        "preview",
    ] {
        metrics::counter!(AUTH_FAILURES_TOTAL, "endpoint" => endpoint).increment(0);
    }
}

/// Counts one failed authentication at `endpoint`.
pub fn auth_failure(endpoint: &'static str) {
    metrics::counter!(AUTH_FAILURES_TOTAL, "endpoint" => endpoint).increment(1);
}

/// Counts one webhook request refused for its token.
pub fn revalidate_auth_failure() {
    metrics::counter!(REVALIDATE_AUTH_FAILURES_TOTAL).increment(1);
}

/// Counts CDN purge requests of `cdn` and `kind` with `outcome`.
pub fn cdn_purges(cdn: &'static str, kind: &'static str, outcome: &'static str, count: u64) {
    metrics::counter!(CDN_PURGES_TOTAL, "cdn" => cdn, "kind" => kind, "outcome" => outcome)
        .increment(count);
}

/// Records how long a page took to be served new through the CDN.
pub fn cdn_propagation(seconds: f64) {
    metrics::histogram!(CDN_PROPAGATION_SECONDS).record(seconds);
}

/// Sets [`REDIS_UP`].
pub fn redis_up(up: bool) {
    metrics::gauge!(REDIS_UP).set(if up { 1.0 } else { 0.0 });
}

/// Counts one failed Redis call.
pub fn redis_error(op: &'static str) {
    metrics::counter!(REDIS_ERRORS_TOTAL, "op" => op).increment(1);
}

/// Counts one lease outcome.
pub fn redis_lease(outcome: &'static str) {
    metrics::counter!(REDIS_LEASES_TOTAL, "outcome" => outcome).increment(1);
}

/// Counts one event read from another instance.
pub fn redis_event_applied() {
    metrics::counter!(REDIS_EVENTS_TOTAL).increment(1);
}

/// Counts one page pulled from Redis.
pub fn shared_pull(reason: &'static str) {
    metrics::counter!(SHARED_PULLS_TOTAL, "reason" => reason).increment(1);
}

/// Counts one write-back.
pub fn redis_write_back(outcome: &'static str) {
    metrics::counter!(REDIS_WRITE_BACKS_TOTAL, "outcome" => outcome).increment(1);
}
