//! A product catalogue in SQLite served with Incremental Static Regeneration.
//!
//! The database (`SHOP_DB`, default `target/site/shop.db`) is created and seeded with 10,000
//! generated products on first start. `/products` and `/products/page/:n` list them 50 to a page
//! (revalidate 60 s), `/products/:id` shows one (revalidate 300 s; every product pre-rendered,
//! later ones rendered on first request). An admin JSON API (`SHOP_ADMIN_TOKEN`) changes prices,
//! creates and deletes products and revalidates exactly the pages that show them. The cart lives
//! in the browser (localStorage) and is never part of a static page.
//!
//! The same crate is the server (`ssr`: database, loaders, API and the `shop` binary) and the
//! browser bundle (`hydrate`: the views and the cart).

#[cfg(feature = "ssr")]
pub mod api;
pub mod cart;
#[cfg(feature = "ssr")]
pub mod db;
pub mod format;
#[cfg(feature = "ssr")]
pub mod generate;
pub mod pages;
#[cfg(feature = "ssr")]
pub mod startup;

/// Products per catalogue page.
///
/// ```
/// assert_eq!(shop::PAGE_SIZE, 50);
/// ```
pub const PAGE_SIZE: u64 = 50;

/// Products in a freshly created database.
///
/// ```
/// assert_eq!(shop::DEFAULT_PRODUCTS, 10_000);
/// ```
pub const DEFAULT_PRODUCTS: u64 = 10_000;

/// The shop app: its pages (registered by `#[page]`), site root, client bundle, the admin API
/// (when `admin_token` is set) and the `seed` subcommand.
///
/// ```no_run
/// let app = shop::app(shop::api::token_from_env());
/// let _ = app.run();
/// ```
#[cfg(feature = "ssr")]
pub fn app(admin_token: Option<String>) -> isr::App {
    let admin_api_on = admin_token.is_some();
    // The pool opens no connection before its first use, which comes after `prepare` created
    // and migrated the database.
    let db = db::Db::new(db::db_path());
    isr::App::new("shop")
        .client(isr::client_crate!())
        // Scripts only from /pkg and isr's own hydration call: data never runs as script.
        // The icon is `public/favicon.svg`, served under its own name.
        .shell(
            isr::Shell::new()
                .head(r#"<link rel="icon" href="/favicon.svg" type="image/svg+xml">"#)
                .content_security_policy(isr::ContentSecurityPolicy::strict()),
        )
        .state(db.clone())
        .routes(api::router(admin_token, db))
        .command(db::seed_command(), db::run_seed_command)
        .before_pages(move |command| startup::prepare(command, admin_api_on))
}
