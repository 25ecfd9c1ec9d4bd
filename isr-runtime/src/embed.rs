//! isr inside an app's own axum server ([`crate::App::embed`]): the router to merge with the
//! app's routes and layers, and the shutdown to call once the server stopped.

use crate::engine::Engine;
use std::sync::Arc;
use std::time::Duration;

/// An opened, built (or rebuilding) site ready to be served by the app's own server.
///
/// ```no_run
/// # async fn demo() -> Result<(), String> {
/// let isr = isr::App::new("blog").embed().await?;
/// let app = isr::axum::Router::new().merge(isr.router());
/// # let _ = app;
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
