//! isr inside an app's own axum server ([`crate::App::embed`]): the router to merge with the
//! app's routes and layers, and the shutdown to call once the server stopped.

use crate::engine::Engine;
use std::sync::Arc;
use std::time::Duration;

/// An opened, built (or rebuilding) site ready to be served by the app's own server.
///
/// Not run as a test: an app needs pages, and `#[page]` registers them only in a crate built
/// with its own `ssr` feature, which a documentation test is not (`tests/tests/embedded.rs`
/// runs `examples/blog/examples/embedded.rs`, which does this).
///
/// ```no_run
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), String> {
/// use isr::axum::{routing::get, Router};
/// use tower::ServiceExt;
/// let site = tempfile::tempdir().unwrap();
/// let isr = isr::App::new("blog").site_root(site.path().join("blog")).embed().await?;
/// let app = Router::new().route("/healthz", get(|| async { "ok" })).merge(isr.router());
/// let get = |uri: &str| {
///     let request = isr::axum::http::Request::get(uri).header("host", "127.0.0.1:3000");
///     request.body(isr::axum::body::Body::empty()).unwrap()
/// };
/// assert_eq!(app.clone().oneshot(get("/healthz")).await.unwrap().status(), 200);
/// assert_eq!(app.oneshot(get("/robots.txt")).await.unwrap().status(), 200, "isr's routes");
/// isr.shutdown().await;
/// # Ok(()) }
/// ```
pub struct Embedded {
    router: axum::Router,
    engine: Arc<Engine>,
    rebuild: Option<tokio::task::JoinHandle<()>>,
    shutdown_timeout: Duration,
}

impl Embedded {
    pub(crate) fn new(
        router: axum::Router,
        engine: Arc<Engine>,
        rebuild: Option<tokio::task::JoinHandle<()>>,
        shutdown_timeout: Duration,
    ) -> Self {
        Embedded {
            router,
            engine,
            rebuild,
            shutdown_timeout,
        }
    }

    /// What isr answers: every page (as the fallback), `/pkg` (the client bundle),
    /// `/_isr/*` (revalidation, metrics, operator API, dashboard), `/sitemap.xml`,
    /// `/robots.txt`, and the app's [`crate::App::routes`]. No access log: add
    /// [`crate::server::with_access_log`] (or the app's own `TraceLayer`) around the app.
    pub fn router(&self) -> axum::Router {
        self.router.clone()
    }

    /// The engine.
    pub fn engine(&self) -> &Arc<Engine> {
        &self.engine
    }

    /// In-process revalidation of this app's pages (the app's own handlers also get it as
    /// `Extension<isr::Revalidator>`).
    pub fn revalidator(&self) -> crate::Revalidator {
        crate::Revalidator::of(&self.engine)
    }

    /// After the server stopped: stops the background rebuild and waits (up to
    /// `--shutdown-timeout`) for running generations, whose writes are atomic.
    pub async fn shutdown(self) {
        if let Some(rebuild) = self.rebuild {
            rebuild.abort();
        }
        let running = self.engine.running_generations();
        if !self.engine.shutdown(self.shutdown_timeout).await {
            tracing::warn!(
                running,
                "generations still running at the shutdown deadline; their pages keep the previous version"
            );
        }
    }
}
