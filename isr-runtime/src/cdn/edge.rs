//! "Live everywhere": after an on-demand revalidation with `"wait": "edge"`, GETs through the
//! CDN (`--cdn-url`) until it serves the new version of every regenerated page (its `ETag`
//! carries the page's etag), or the deadline passed.
//!
//! The GETs ask for `br, gzip` as browsers do: a CDN that keeps one copy per encoding is
//! asked for the copy its visitors get (a plain request could miss the cache and fetch the new
//! page from isr, reporting live what visitors do not see yet). A CDN that strips `ETag` can
//! never be seen serving the new version: every page is then `missed`.
//!
//! Bounded: at most [`CONCURRENT_PAGES`] pages polled at once per request and
//! [`CONCURRENT_CHECKS`] GETs at once in all, each page every 50 ms at first and at most every
//! second; nothing is sent after the request's deadline (at most five minutes) and no GET
//! outlives it. A page's time is counted from the end of the revalidation, so a page that
//! waited for its turn is reported with that wait (an upper bound).

use super::transport::Transport;
use axum::body::Bytes;
use axum::http::{header, Method, Request};
use futures::StreamExt;
use http_body_util::Full;
use serde::Serialize;
use std::time::Duration;
use tokio::time::Instant;

/// Pages one request polls at the same time at most.
pub const CONCURRENT_PAGES: usize = 16;

/// GETs through the CDN at the same time at most, all requests together.
pub const CONCURRENT_CHECKS: usize = 64;

/// Where the CDN serves the site, and the client that asks it.
#[derive(Debug)]
pub struct EdgeCheck {
    base: crate::site::SiteUrl,
    transport: Transport,
    checks: tokio::sync::Semaphore,
}

/// One page that the CDN served new.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Live {
    /// The page's URL path.
    pub path: String,
    /// Seconds from the end of the revalidation (the origin has the page) to the CDN serving
    /// it; an upper bound when the page waited for its turn.
    pub seconds: f64,
}

/// What the wait found.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct EdgeReport {
    /// Pages the CDN serves new, with how long each took.
    pub live: Vec<Live>,
    /// Pages it did not serve new before the deadline.
    pub missed: Vec<String>,
    /// Pages of the answer that were not regenerated (marked, not found, failed, no route):
    /// the CDN is not asked about them.
    pub not_checked: usize,
    /// The deadline, in seconds.
    pub deadline_seconds: u64,
}

impl EdgeCheck {
    /// Checks through `base` (the site's address at the CDN, e.g. `https://www.example.com`).
    pub fn new(base: crate::site::SiteUrl) -> EdgeCheck {
        EdgeCheck {
            base,
            transport: Transport::new(),
            checks: tokio::sync::Semaphore::new(CONCURRENT_CHECKS),
        }
    }

    /// Polls every `(url path, etag hex)` until the CDN serves that etag, or `deadline`.
    pub async fn wait(&self, pages: Vec<(String, String)>, deadline: Duration) -> EdgeReport {
        let started = Instant::now();
        let until = started + deadline;
        let outcomes: Vec<(String, Option<Duration>)> = futures::stream::iter(pages)
            .map(|(path, etag)| async move {
                let live = self.poll(&path, &etag, until).await;
                (path, live.then(|| started.elapsed()))
            })
            .buffer_unordered(CONCURRENT_PAGES)
            .collect()
            .await;
        let mut report = EdgeReport {
            deadline_seconds: deadline.as_secs(),
            ..EdgeReport::default()
        };
        for (path, took) in outcomes {
            match took {
                Some(took) => {
                    crate::metrics::cdn_propagation(took.as_secs_f64());
                    report.live.push(Live {
                        path,
                        seconds: (took.as_secs_f64() * 1000.0).round() / 1000.0,
                    });
                }
                None => report.missed.push(path),
            }
        }
        report.live.sort_by(|a, b| a.path.cmp(&b.path));
        report.missed.sort();
        report
    }

    /// Whether a GET of `path` through the CDN answered `etag` before `until`.
    async fn poll(&self, path: &str, etag: &str, until: Instant) -> bool {
        let mut pause = Duration::from_millis(50);
        loop {
            if Instant::now() >= until {
                return false;
            }
            let check = async {
                let _slot = self.checks.acquire().await;
                self.serves(path, etag).await
            };
            if tokio::time::timeout_at(until, check).await == Ok(true) {
                return true;
            }
            let now = Instant::now();
            if now + pause >= until {
                return false;
            }
            tokio::time::sleep(pause).await;
            pause = (pause * 2).min(Duration::from_secs(1));
        }
    }

    async fn serves(&self, path: &str, etag: &str) -> bool {
        let Ok(request) = Request::builder()
            .method(Method::GET)
            .uri(self.base.join(path))
            .header(header::ACCEPT_ENCODING, "br, gzip")
            .body(Full::new(Bytes::new()))
        else {
            return false;
        };
        match self.transport.send(request).await {
            Ok(answer) => answer
                .headers
                .get(header::ETAG)
                .and_then(|v| v.to_str().ok())
                .is_some_and(|served| served.contains(etag)),
            Err(_) => false,
        }
    }
}
