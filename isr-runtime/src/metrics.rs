//! Metrics: names, labels and recording (from `isr-core`), and the Prometheus recorder
//! behind `/_isr/metrics` (feature `metrics`).

pub use isr_core::metrics::*;

#[cfg(feature = "metrics")]
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};

/// Installs the Prometheus recorder as the process's global `metrics` recorder (once per
/// process) and returns its handle (feature `metrics`). `App::run` calls it; an app that
/// embeds isr (`App::embed`) calls it from its own `main` when it wants `/_isr/metrics`, and
/// hands the handle to [`App::metrics`](crate::App::metrics): the library installs nothing
/// global by itself.
///
/// ```
/// let handle = isr::metrics::install();
/// metrics::counter!(isr::metrics::REQUESTS_TOTAL, "cache" => "hit").increment(1);
/// assert!(handle.render().contains("isr_requests_total{cache=\"hit\"} 1"));
/// ```
#[cfg(feature = "metrics")]
pub fn install() -> PrometheusHandle {
    use std::sync::OnceLock;
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE
        .get_or_init(|| {
            // The edge propagation time is a histogram (buckets from 50 ms to 5 minutes, the
            // longest wait); the other timings stay summaries.
            // Only an empty bucket list is refused: on that, a summary as for the others.
            let builder = PrometheusBuilder::new()
                .set_buckets_for_metric(
                    metrics_exporter_prometheus::Matcher::Full(CDN_PROPAGATION_SECONDS.into()),
                    &[0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0],
                )
                .unwrap_or_else(|_| PrometheusBuilder::new());
            let recorder = builder.build_recorder();
            let handle = recorder.handle();
            // Another recorder may already be installed by the app; ours then stays empty.
            if metrics::set_global_recorder(recorder).is_err() {
                tracing::warn!(
                    "a metrics recorder was already installed; /_isr/metrics will be empty"
                );
            }
            isr_core::metrics::hold_request_counters();
            handle
        })
        .clone()
}
