//! `GET /_isr/metrics` (feature `metrics`): the Prometheus text of the recorder the app
//! installed, behind the metrics (else admin) token.

use super::auth::{self, bearer_matches, Caller, Endpoint};
use super::AppState;
use crate::engine::Engine;
use axum::extract::State;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use metrics_exporter_prometheus::PrometheusHandle;
use std::sync::Arc;
use std::time::Duration;

pub(super) async fn metrics_endpoint(
    State(state): State<AppState>,
    Caller(client): Caller,
    headers: HeaderMap,
) -> Response {
    if let Some(token) = state.auth.metrics_token.as_deref() {
        if let Some(refusal) = state.auth.refuse_if_blocked(&client) {
            return refusal;
        }
        if !bearer_matches(&headers, token) {
            state
                .auth
                .failed(Endpoint::Metrics, &client, auth::presents_token(&headers));
            return (
                StatusCode::UNAUTHORIZED,
                [(header::WWW_AUTHENTICATE, "Bearer")],
                "missing or wrong bearer token (ISR_METRICS_TOKEN, else ISR_ADMIN_TOKEN)\n",
            )
                .into_response();
        }
    }
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        match &state.metrics {
            Some(metrics) => metrics.text(&state.engine).await,
            None => return StatusCode::NOT_FOUND.into_response(),
        },
    )
        .into_response()
}

/// The text of `/_isr/metrics`. Counters and histograms are read at each scrape; the
/// page-state gauges are a pass over every page, so they are computed at most once per
/// [`MetricsText::GAUGE_PERIOD`] (scrapes within it, or while they are being computed, reuse
/// them), on the blocking pool, never on the threads that serve pages.
pub(super) struct MetricsText {
    handle: PrometheusHandle,
    gauges_at: tokio::sync::Mutex<Option<tokio::time::Instant>>,
}

impl MetricsText {
    const GAUGE_PERIOD: Duration = Duration::from_secs(1);

    pub(super) fn new(handle: PrometheusHandle) -> Self {
        MetricsText {
            handle,
            gauges_at: tokio::sync::Mutex::new(None),
        }
    }

    async fn text(&self, engine: &Arc<Engine>) -> String {
        {
            let mut gauges_at = self.gauges_at.lock().await;
            if gauges_at.is_none_or(|at| at.elapsed() >= Self::GAUGE_PERIOD) {
                let engine = engine.clone();
                let _ =
                    tokio::task::spawn_blocking(move || engine.summary().publish_gauges()).await;
                *gauges_at = Some(tokio::time::Instant::now());
            }
        }
        let handle = self.handle.clone();
        tokio::task::spawn_blocking(move || handle.render())
            .await
            .unwrap_or_default()
    }
}
