//! Harness for black-box tests of the `shop` example: the binary is built once per test
//! process; each test gets a temporary folder with its own database (`SHOP_DB`) and site root,
//! seeded with a small catalogue, and a server on a free loopback port.
//!
//! Not run as a documentation test: it starts the shop binary (`tests/tests/shop.rs` does).
//!
//! ```no_run
//! # async fn demo() {
//! use isr_tests::shop::{ShopFixture, ShopServer};
//! let fx = ShopFixture::seeded(200);
//! let server = ShopServer::start(&fx, &[], &[]);
//! let page = server.get("/products/7").await;
//! assert_eq!(page.status, 200);
//! let changed = server.admin("PUT", "/api/products/7/price", r#"{"price_cents": 1299}"#).await;
//! assert_eq!(changed.status, 200);
//! # }
//! ```

use crate::{run_to_completion, BlogServer, Resp, RunOutput, EXIT_DEADLINE, SECRET};
use std::ops::Deref;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::time::Duration;

/// The admin token the harness gives the server (`SHOP_ADMIN_TOKEN`) unless told not to.
pub const ADMIN_TOKEN: &str = "test-admin-token";

/// Products in a test catalogue: 4 catalogue pages of 50, built in about a second.
pub const TEST_PRODUCTS: u64 = 200;

/// How long a `shop` server may take to prepare the database, build and print "serving".
pub const SHOP_START_DEADLINE: Duration = Duration::from_secs(60);

/// Env vars of the binary that the harness controls: removed from the inherited environment.
const CONTROLLED_ENV: &[&str] = &[
    "LEPTOS_SITE_ADDR",
    "LEPTOS_SITE_ROOT",
    "ISR_REVALIDATE_SECRET",
    "ISR_JOBS",
    "RUST_LOG",
    "ISR_CLIENT_BUILD",
    "LEPTOS_OUTPUT_NAME",
    "LEPTOS_WATCH",
    "SHOP_DB",
    "SHOP_ADMIN_TOKEN",
];

/// The `shop` executable, built once per test process with
/// `$CARGO build -p shop --message-format=json`.
///
/// ```no_run
/// assert!(isr_tests::shop::shop_binary().is_file());
/// ```
pub fn shop_binary() -> &'static Path {
    static BINARY: OnceLock<PathBuf> = OnceLock::new();
    BINARY.get_or_init(|| crate::cargo_build_binary("shop"))
}

/// One test's private world: a database file and a site root inside one temporary folder
/// removed on drop.
///
/// ```no_run
/// let fx = isr_tests::shop::ShopFixture::seeded(50);
/// assert!(fx.db_path().is_file());
/// fx.hide_db();
/// fx.restore_db();
/// ```
pub struct ShopFixture {
    dir: tempfile::TempDir,
}

impl Default for ShopFixture {
    fn default() -> Self {
        Self::new()
    }
}

impl ShopFixture {
    /// An empty temporary folder: no database yet (the binary creates and seeds one with
    /// 10,000 products on start), an empty site root.
    pub fn new() -> ShopFixture {
        let dir = tempfile::Builder::new()
            .prefix("isr-shop-tests-")
            .tempdir()
            .expect("create a temporary folder");
        std::fs::create_dir(dir.path().join("site")).expect("create the site root");
        ShopFixture { dir }
    }

    /// A folder whose database holds `products` generated products (`shop seed --products N`).
    pub fn seeded(products: u64) -> ShopFixture {
        let fx = ShopFixture::new();
        fx.seed(products);
        fx
    }

    /// The temporary folder.
    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// The database file given to the binary as `SHOP_DB`.
    pub fn db_path(&self) -> PathBuf {
        self.dir.path().join("shop.db")
    }

    /// The site root given to the server as `--site-root`.
    pub fn site_root(&self) -> PathBuf {
        self.dir.path().join("site")
    }

    /// The `shop` command with a clean environment: `SHOP_DB=<fixture db>`, `RUST_LOG=info`,
    /// `ISR_CLIENT_BUILD=off` (no wasm build), then `envs`; stdout and stderr piped.
    pub fn command(&self, envs: &[(&str, &str)]) -> Command {
        let mut command = Command::new(shop_binary());
        for var in CONTROLLED_ENV {
            command.env_remove(var);
        }
        command
            .env("SHOP_DB", self.db_path())
            // Runs without `--site-root` stay in the fixture's folder.
            .env("LEPTOS_SITE_ROOT", self.site_root())
            .env("RUST_LOG", "info")
            .env("ISR_CLIENT_BUILD", "off")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        for (key, value) in envs {
            command.env(key, value);
        }
        command
    }

    /// Runs the binary once with `args` (no `--site-root` added) and waits (deadline) for it.
    pub fn run(&self, args: &[&str], envs: &[(&str, &str)]) -> RunOutput {
        self.run_with_deadline(args, envs, EXIT_DEADLINE)
    }

    /// Like [`ShopFixture::run`] with another deadline.
    pub fn run_with_deadline(
        &self,
        args: &[&str],
        envs: &[(&str, &str)],
        deadline: Duration,
    ) -> RunOutput {
        let mut command = self.command(envs);
        command.args(args);
        run_to_completion(command, deadline)
    }

    /// `shop seed --products <n>` on this fixture's database; panics unless it succeeds.
    pub fn seed(&self, products: u64) -> RunOutput {
        let out = self.run(&["seed", "--products", &products.to_string()], &[]);
        assert_eq!(
            out.code(),
            Some(0),
            "seed failed:\n{}\n{}",
            out.stdout,
            out.stderr
        );
        out
    }

    /// Where [`ShopFixture::hide_db`] moves the database.
    fn hidden_db_path(&self) -> PathBuf {
        self.dir.path().join("shop.db.away")
    }

    /// Renames the database file away: the data source is "down" (a missing file is an error
    /// for the server, never a new empty database).
    pub fn hide_db(&self) {
        std::fs::rename(self.db_path(), self.hidden_db_path()).expect("rename the database away");
    }

    /// Puts a file of non-SQLite bytes where the database was (hiding the real one first).
    pub fn replace_db_with_garbage(&self) {
        self.hide_db();
        std::fs::write(self.db_path(), vec![0x5a_u8; 16 * 1024]).expect("write a garbage file");
    }

    /// Undoes [`ShopFixture::hide_db`] or [`ShopFixture::replace_db_with_garbage`].
    pub fn restore_db(&self) {
        let _ = std::fs::remove_file(self.db_path());
        std::fs::rename(self.hidden_db_path(), self.db_path()).expect("restore the database");
    }
}

/// A running `shop` server; derefs to [`BlogServer`] for the HTTP helpers (`get`, `send`,
/// `revalidate`, `stderr_text`, …). Killed on drop.
///
/// Not run as a documentation test: it starts the shop binary (`tests/tests/shop.rs` does).
///
/// ```no_run
/// # async fn demo() {
/// use isr_tests::shop::{ShopFixture, ShopServer};
/// let fx = ShopFixture::seeded(200);
/// let server = ShopServer::start_with_token(&fx, &["start"], &[], None);
/// assert_eq!(server.admin("DELETE", "/api/products/1", "").await.status, 404);
/// # }
/// ```
pub struct ShopServer {
    server: BlogServer,
}

impl Deref for ShopServer {
    type Target = BlogServer;

    fn deref(&self) -> &BlogServer {
        &self.server
    }
}

impl ShopServer {
    /// Spawns `shop <args> --site-root <fixture site> --addr 127.0.0.1:0` with the fixture's
    /// database, `SHOP_ADMIN_TOKEN=test-admin-token`, `ISR_REVALIDATE_SECRET=test-secret-0123456789`, then
    /// `envs`, and waits for it to serve. With no subcommand the binary builds, then serves.
    pub fn start(fixture: &ShopFixture, args: &[&str], envs: &[(&str, &str)]) -> ShopServer {
        Self::start_with_token(fixture, args, envs, Some(ADMIN_TOKEN))
    }

    /// Like [`ShopServer::start`] with the given admin token (`None`: `SHOP_ADMIN_TOKEN` unset,
    /// the admin API is off).
    pub fn start_with_token(
        fixture: &ShopFixture,
        args: &[&str],
        envs: &[(&str, &str)],
        token: Option<&str>,
    ) -> ShopServer {
        let mut command = fixture.command(&[("ISR_REVALIDATE_SECRET", SECRET)]);
        if let Some(token) = token {
            command.env("SHOP_ADMIN_TOKEN", token);
        }
        crate::serving_on_a_free_port(&mut command, args, envs, &fixture.site_root());
        ShopServer {
            server: BlogServer::spawn_with_deadline(command, SHOP_START_DEADLINE),
        }
    }

    /// `METHOD path` with `Authorization: Bearer test-admin-token` and `body` (raw text, sent
    /// as `application/json` when not empty).
    pub async fn admin(&self, method: &str, path: &str, body: &str) -> Resp {
        self.admin_with_auth(method, path, body, Some(&format!("Bearer {ADMIN_TOKEN}")))
            .await
    }

    /// `METHOD path` with the given `Authorization` header (`None`: no header) and `body`.
    pub async fn admin_with_auth(
        &self,
        method: &str,
        path: &str,
        body: &str,
        authorization: Option<&str>,
    ) -> Resp {
        let method = reqwest::Method::from_bytes(method.as_bytes()).expect("an HTTP method");
        let mut request = self.request(method, path);
        if let Some(value) = authorization {
            request = request.header("authorization", value);
        }
        if !body.is_empty() {
            request = request
                .header("content-type", "application/json")
                .body(body.to_string());
        }
        self.send(request).await
    }
}
