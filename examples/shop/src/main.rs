//! The shop server.
//!
//! ```text
//! cargo run -p shop                          # prepare the database, build, serve at http://127.0.0.1:3000/products
//! cargo run -p shop -- build                 # pre-render only (10,000 product pages)
//! cargo run -p shop -- serve                 # serve what is on disk
//! cargo run -p shop -- seed --products 500   # replace the catalogue by 500 generated products
//! ```

fn main() -> std::process::ExitCode {
    shop::app(shop::api::token_from_env()).run()
}
