//! What the shop does before `build`, `serve` or `start` touch a page (see
//! [`isr::App::before_pages`]): make sure the database exists, is migrated and is seeded, and say
//! whether the admin API is on.

use isr::cli::PageCommand;

/// Prepares the database at [`crate::db::db_path`] (created and seeded with
/// [`crate::DEFAULT_PRODUCTS`] products when new) and logs the admin API's state.
///
/// ```no_run
/// // `shop::app` wires it: `.before_pages(move |command| startup::prepare(command, api_on))`.
/// let app = shop::app(None);
/// # let _ = app;
/// ```
pub fn prepare(command: PageCommand, admin_api_on: bool) -> Result<(), String> {
    let path = crate::db::db_path();
    let started = std::time::Instant::now();
    let prepared = crate::db::prepare(&path, crate::DEFAULT_PRODUCTS).map_err(|error| {
        format!(
            "database {} ({}): {error:#}",
            path.display(),
            crate::db::DB_ENV
        )
    })?;
    if prepared.seeded {
        tracing::info!(
            db = %path.display(),
            products = prepared.products,
            seconds = started.elapsed().as_secs_f64(),
            "created and seeded the database"
        );
    } else {
        tracing::info!(db = %path.display(), products = prepared.products, "database ready");
    }
    if command != PageCommand::Build {
        if admin_api_on {
            tracing::info!("admin API is on at /api/products");
        } else {
            tracing::info!(
                "admin API is off: set {} to enable /api/products",
                crate::api::TOKEN_ENV
            );
        }
    }
    Ok(())
}
