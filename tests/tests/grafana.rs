//! `deploy/grafana/isr.json`, the ready Grafana dashboard: it parses, every query names only
//! metrics isr exports (with the suffixes their type adds), every exported metric is charted,
//! and a live blog's `/_isr/metrics` has the series of the panels that its traffic feeds.

use isr_tests::{BlogServer, Fixture};
use std::collections::BTreeSet;

fn dashboard() -> serde_json::Value {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/grafana/isr.json");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// Every query of every panel.
fn queries(dashboard: &serde_json::Value) -> Vec<String> {
    dashboard["panels"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|panel| panel["targets"].as_array().cloned().unwrap_or_default())
        .map(|target| target["expr"].as_str().unwrap().to_owned())
        .collect()
}

/// The `isr_…` names a query uses.
fn names_in(query: &str) -> Vec<String> {
    let mut names = Vec::new();
    let mut rest = query;
    while let Some(at) = rest.find("isr_") {
        let name: String = rest[at..]
            .chars()
            .take_while(|c| c.is_ascii_lowercase() || *c == '_' || c.is_ascii_digit())
            .collect();
        rest = &rest[at + name.len()..];
        names.push(name);
    }
    names
}

/// The exported metric a series name belongs to.
fn metric_of(series: &str) -> &str {
    for suffix in ["_bucket", "_count", "_sum"] {
        if let Some(base) = series.strip_suffix(suffix) {
            if isr_core::metrics::ALL.contains(&base) {
                return base;
            }
        }
    }
    series
}

#[test]
fn every_query_names_exported_metrics_and_every_metric_is_charted() {
    let dashboard = dashboard();
    assert_eq!(dashboard["uid"], "isr-overview");
    let queries = queries(&dashboard);
    assert!(queries.len() >= isr_core::metrics::ALL.len(), "{queries:?}");
    let mut charted = BTreeSet::new();
    for query in &queries {
        assert_eq!(
            query.matches('(').count(),
            query.matches(')').count(),
            "unbalanced: {query}"
        );
        let names = names_in(query);
        assert!(!names.is_empty(), "no isr metric in {query}");
        for name in names {
            let metric = metric_of(&name);
            assert!(
                isr_core::metrics::ALL.contains(&metric),
                "{query} names {name}, which isr does not export"
            );
            charted.insert(metric.to_owned());
        }
    }
    let missing: Vec<&str> = isr_core::metrics::ALL
        .iter()
        .filter(|m| !charted.contains(**m))
        .copied()
        .collect();
    assert!(missing.is_empty(), "not charted: {missing:?}");
}

#[tokio::test]
async fn a_live_blogs_metrics_have_the_series_its_traffic_feeds() {
    let fx = Fixture::new();
    let server = BlogServer::start(&fx, &[], &[]);
    for path in ["/blog", "/blog/what-is-isr", "/blog/no-such-post"] {
        server.get(path).await;
    }
    let metrics = server.metrics().await;
    let names: BTreeSet<&str> = metrics.samples.iter().map(|s| s.name.as_str()).collect();
    // The series the traffic and page panels read.
    for series in [
        "isr_requests_total",
        "isr_pages",
        "isr_pages_failing",
        "isr_unknown_paths_failing",
        "isr_oldest_stale_seconds",
    ] {
        assert!(names.contains(series), "{series} missing from {names:?}");
    }
    // Every `isr_` series the exporter writes is one the dashboard can name.
    for series in names.iter().filter(|n| n.starts_with("isr_")) {
        assert!(
            isr_core::metrics::ALL.contains(&metric_of(series)),
            "{series} is exported but not in isr::metrics::ALL"
        );
    }
}
