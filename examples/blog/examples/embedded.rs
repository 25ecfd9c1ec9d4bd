//! The blog inside an app's own axum server: isr's router merged with the app's own routes and
//! `tower` layers, served by `axum::serve`.
//!
//! ```text
//! cargo run -p blog --example embedded     # http://127.0.0.1:3000/blog, plus /healthz
//! ```
//!
//! Configured from the environment like the `blog` binary (`LEPTOS_SITE_ADDR`,
//! `LEPTOS_SITE_ROOT`, `ISR_*`); stops gracefully on SIGINT/SIGTERM.

use isr::axum::http::{HeaderName, HeaderValue};
use isr::axum::routing::get;
use isr::axum::Router;
use std::process::ExitCode;
use tower_http::set_header::SetResponseHeaderLayer;

#[tokio::main]
async fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    // ANCHOR: embed_router
    // Builds every page (or serves a built site at once and rebuilds it in the background).
    let isr = match blog::app().embed().await {
        Ok(isr) => isr,
        Err(message) => {
            eprintln!("error: {message}");
            return ExitCode::from(2);
        }
    };
    let app = Router::new()
        .route("/healthz", get(|| async { "ok" }))
        .merge(isr.router())
        // The app's own layers wrap isr's responses too.
        .layer(SetResponseHeaderLayer::overriding(
            HeaderName::from_static("x-served-by"),
            HeaderValue::from_static("embedded-blog"),
        ));
    let app = isr::server::with_access_log(app);
    // ANCHOR_END: embed_router
    let addr = std::env::var("LEPTOS_SITE_ADDR").unwrap_or_else(|_| "127.0.0.1:3000".into());
    let listener = match tokio::net::TcpListener::bind(&addr).await {
        Ok(listener) => listener,
        Err(error) => {
            eprintln!("error: cannot listen on {addr} (LEPTOS_SITE_ADDR): {error}");
            return ExitCode::from(2);
        }
    };
    let local = listener.local_addr().expect("a bound address");
    tracing::info!("serving the embedded blog at http://{local}");
    // ANCHOR: embed_shutdown
    let served = isr::axum::serve(listener, app)
        .with_graceful_shutdown(async {
            let mut term =
                tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
                    .expect("a SIGTERM handler");
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = term.recv() => {}
            }
        })
        .await;
    isr.shutdown().await;
    // ANCHOR_END: embed_shutdown
    match served {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: server failed: {error}");
            ExitCode::FAILURE
        }
    }
}
