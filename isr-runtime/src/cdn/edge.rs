//! "Live everywhere": after an on-demand revalidation with `"wait": "edge"`, GETs through the
//! CDN (`--cdn-url`) until it serves the new version of every regenerated page (its `ETag`
//! carries the page's etag), or the deadline passed.
//!
//! Bounded: at most [`CONCURRENT_PAGES`] pages polled at once, each every 50 ms at first and
//! at most every second, each GET within [`super::REQUEST_TIMEOUT`]; the whole wait within the
//! request's deadline (at most five minutes).

use super::transport::Transport;
use axum::body::Bytes;
use axum::http::{header, Method, Request};
use futures::StreamExt;
use http_body_util::Full;
use serde::Serialize;
use std::time::Duration;
use tokio::time::Instant;

/// Pages polled at the same time at most.
pub const CONCURRENT_PAGES: usize = 16;

/// Where the CDN serves the site, and the client that asks it.
#[derive(Debug)]
pub struct EdgeCheck {
    base: crate::site::SiteUrl,
    transport: Transport,
}

/// One page that the CDN served new.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Live {
    /// The page's URL path.
    pub path: String,
    /// Seconds from the origin having it to the CDN serving it.
    pub seconds: f64,
}

/// What the wait found.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct EdgeReport {
    /// Pages the CDN serves new, with how long each took.
    pub live: Vec<Live>,
    /// Pages it did not serve new before the deadline.
    pub missed: Vec<String>,
    /// The deadline, in seconds.
    pub deadline_seconds: u64,
}

impl EdgeCheck {
    /// Checks through `base` (the site's address at the CDN, e.g. `https://www.example.com`).
    pub fn new(base: crate::site::SiteUrl) -> EdgeCheck {
        EdgeCheck {
            base,
            transport: Transport::new(),
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
            if self.serves(path, etag).await {
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
            .header(header::ACCEPT_ENCODING, "identity")
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
