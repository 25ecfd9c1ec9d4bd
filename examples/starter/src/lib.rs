//! The smallest complete isr app, which the book's "Getting started" builds step by step: a
//! static page (`/`), a dynamic route pre-rendered from a SQLite table (`/notes/:id`), the
//! database as app state, a client bundle that hydrates the pages, and a test
//! (`tests/pages.rs`).
//!
//! The same crate is the server (feature `ssr`: loaders, the database, the `starter` binary)
//! and the browser bundle (feature `hydrate`: the views and the counter, compiled to wasm).

// ANCHOR: lib
#[cfg(feature = "ssr")]
pub mod db;
pub mod pages;

/// The app with its client bundle: what `main` runs. The database is `STARTER_DB` (default
/// `target/starter.db`), created and filled with two notes when missing; it is opened after the
/// command line is parsed, so `--help` never touches it.
#[cfg(feature = "ssr")]
pub fn app() -> isr::App {
    isr::App::new("starter")
        .client(isr::client_crate!())
        .state_with(|_command| db::Db::open(db::path_from_env()).map_err(|e| e.to_string()))
}

/// The app over a given database, without a client bundle: what the tests serve.
#[cfg(feature = "ssr")]
pub fn app_with(db: db::Db) -> isr::App {
    isr::App::new("starter").state(db)
}
// ANCHOR_END: lib
