//! The shop's SQLite database: schema (a `rusqlite_migration` migration), seeding, queries, and
//! the `seed` subcommand.
//!
//! Two ways in:
//! - [`prepare`] (start-up, `seed`): creates the file when missing, switches it to WAL, migrates
//!   the schema and seeds a database that never had products. Runs before the async runtime.
//! - [`Db`] (loaders, admin API): a connection pool (r2d2) over the **existing** file, opened
//!   read-write without `CREATE`, used inside `tokio::task::spawn_blocking`. It is app state:
//!   loaders take it as `State<Db>`. A missing, unreadable, locked or non-SQLite file is an
//!   error — never a fresh empty database — so a loader fails and ISR keeps the old page.
//!
//! The pool follows the file at its path: before each use it checks that the path still names
//! the file its connections were opened on, and opens new ones when the file was replaced (a
//! pooled connection would otherwise keep reading a file renamed away).

use crate::generate;
use crate::pages::{Product, ProductSummary};
use anyhow::{bail, Context};
use rusqlite::{params, Connection, OpenFlags, OptionalExtension};
use rusqlite_migration::{Migrations, M};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

/// Env var naming the database file.
///
/// ```
/// assert_eq!(shop::db::DB_ENV, "SHOP_DB");
/// ```
pub const DB_ENV: &str = "SHOP_DB";

/// The database file when `SHOP_DB` is unset or empty (relative to the working directory, like
/// the default site root).
///
/// ```
/// assert!(shop::db::DEFAULT_DB.ends_with("shop.db"));
/// ```
pub const DEFAULT_DB: &str = "target/site/shop.db";

/// How long a statement waits for another connection's write lock before failing.
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// The schema, one migration per version (`PRAGMA user_version` holds the applied count).
const MIGRATIONS: &[M<'static>] = &[M::up(
    "CREATE TABLE products (
        id          INTEGER PRIMARY KEY AUTOINCREMENT,
        name        TEXT    NOT NULL,
        description TEXT    NOT NULL,
        category    TEXT    NOT NULL,
        price_cents INTEGER NOT NULL CHECK (price_cents BETWEEN 0 AND 100000000),
        stock       INTEGER NOT NULL CHECK (stock >= 0),
        updated_at  TEXT    NOT NULL
    );
    CREATE INDEX products_category ON products (category, id);",
)];

/// The migrations as `rusqlite_migration` runs them.
///
/// ```
/// assert!(shop::db::migrations().validate().is_ok());
/// ```
pub fn migrations() -> Migrations<'static> {
    Migrations::from_slice(MIGRATIONS)
}

/// `SQL` for "now" in the format of `updated_at` (`2026-01-31T12:00:00Z`).
const NOW: &str = "strftime('%Y-%m-%dT%H:%M:%SZ', 'now')";

/// Columns of [`Product`], in the order [`product_from_row`] reads them.
const PRODUCT_COLUMNS: &str = "id, name, description, category, price_cents, stock, updated_at";

/// The database file: `SHOP_DB`, else [`DEFAULT_DB`].
///
/// ```
/// let path = shop::db::db_path();
/// assert!(!path.as_os_str().is_empty());
/// ```
pub fn db_path() -> PathBuf {
    std::env::var_os(DB_ENV)
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(DEFAULT_DB))
}

/// What [`prepare`] found or did.
///
/// ```
/// let p = shop::db::Prepared { products: 10_000, seeded: true };
/// assert!(p.seeded);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Prepared {
    /// Products in the database now.
    pub products: i64,
    /// Whether this call seeded it (it never had products).
    pub seeded: bool,
}

/// Creates the database at `path` when missing (with its folder), switches it to WAL, applies
/// pending migrations and, when it never had a product, seeds `seed` generated products.
/// Blocking: call it before the async runtime starts (or in `spawn_blocking`).
///
/// ```
/// let dir = tempfile::tempdir().unwrap();
/// let path = dir.path().join("shop.db");
/// let first = shop::db::prepare(&path, 20).unwrap();
/// assert_eq!((first.products, first.seeded), (20, true));
/// let again = shop::db::prepare(&path, 20).unwrap();
/// assert_eq!((again.products, again.seeded), (20, false));
/// ```
pub fn prepare(path: &Path, seed: u64) -> anyhow::Result<Prepared> {
    let mut conn = open_or_create(path)?;
    let never_had_products: bool = conn
        .query_row(
            "SELECT NOT EXISTS (SELECT 1 FROM products)
                AND NOT EXISTS (SELECT 1 FROM sqlite_sequence WHERE name = 'products')",
            [],
            |row| row.get(0),
        )
        .context("cannot read the products table")?;
    if never_had_products {
        reseed(&mut conn, seed)?;
    }
    Ok(Prepared {
        products: count(&conn)?,
        seeded: never_had_products,
    })
}

/// Opens (creating when missing) and migrates the database at `path`, in WAL mode.
///
/// ```
/// let dir = tempfile::tempdir().unwrap();
/// let conn = shop::db::open_or_create(&dir.path().join("new/shop.db")).unwrap();
/// assert_eq!(shop::db::count(&conn).unwrap(), 0);
/// ```
pub fn open_or_create(path: &Path) -> anyhow::Result<Connection> {
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent)
            .with_context(|| format!("cannot create the folder {}", parent.display()))?;
    }
    let mut conn = Connection::open(path)
        .with_context(|| format!("cannot open the shop database {}", path.display()))?;
    conn.busy_timeout(BUSY_TIMEOUT)?;
    let mode: String = conn
        .pragma_update_and_check(None, "journal_mode", "WAL", |row| row.get(0))
        .with_context(|| format!("{} is not a usable SQLite database", path.display()))?;
    if !mode.eq_ignore_ascii_case("wal") {
        bail!("{}: cannot switch to WAL mode (got {mode})", path.display());
    }
    conn.pragma_update(None, "synchronous", "NORMAL")?;
    migrations()
        .to_latest(&mut conn)
        .with_context(|| format!("cannot migrate the shop database {}", path.display()))?;
    Ok(conn)
}

/// Opens the existing database at `path` read-write, without creating it, and checks that its
/// schema is the current one. A missing file, a file that is not SQLite or an old schema is an
/// error.
///
/// ```
/// let dir = tempfile::tempdir().unwrap();
/// assert!(shop::db::open_existing(&dir.path().join("missing.db")).is_err());
/// ```
pub fn open_existing(path: &Path) -> anyhow::Result<Connection> {
    let flags = OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    let conn = Connection::open_with_flags(path, flags)
        .with_context(|| format!("cannot open the shop database {}", path.display()))?;
    conn.busy_timeout(BUSY_TIMEOUT)?;
    check_schema(&conn, path)?;
    Ok(conn)
}

/// Checks that the database has the current schema.
fn check_schema(conn: &Connection, path: &Path) -> anyhow::Result<()> {
    let version: i64 = conn
        .pragma_query_value(None, "user_version", |row| row.get(0))
        .with_context(|| format!("cannot read the shop database {}", path.display()))?;
    if version != MIGRATIONS.len() as i64 {
        bail!(
            "the shop database {} has schema version {version}, expected {}: start `shop` (build, serve or start) to migrate it",
            path.display(),
            MIGRATIONS.len()
        );
    }
    Ok(())
}

/// Connections at most in the pool (SQLite in WAL mode: many readers, one writer at a time).
pub const POOL_SIZE: u32 = 8;

/// The shop's database: a pool of connections to the existing file at one path. Cloning shares
/// the pool.
///
/// Not run as a documentation test: it opens the shop's database file (the shop's tests run it).
///
/// ```no_run
/// # async fn demo() -> anyhow::Result<()> {
/// let db = shop::db::Db::new(shop::db::db_path());
/// let products = db.run(|conn| shop::db::count(conn)).await?;
/// # let _ = products; Ok(()) }
/// ```
#[derive(Clone)]
pub struct Db {
    path: std::sync::Arc<PathBuf>,
    /// The file the pooled connections were opened on, and the pool.
    pool: std::sync::Arc<std::sync::Mutex<Option<(FileId, Pool)>>>,
}

type Pool = r2d2::Pool<r2d2_sqlite::SqliteConnectionManager>;

/// Which file a path names: device and inode on unix; elsewhere (Windows) its creation time,
/// which a file renamed over it (a new seed) does not share.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
struct FileId(u64, u64);

impl FileId {
    #[cfg(unix)]
    fn of(metadata: &std::fs::Metadata) -> FileId {
        use std::os::unix::fs::MetadataExt;
        FileId(metadata.dev(), metadata.ino())
    }

    #[cfg(not(unix))]
    fn of(metadata: &std::fs::Metadata) -> FileId {
        let created = metadata
            .created()
            .ok()
            .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
            .unwrap_or_default();
        FileId(created.as_secs(), u64::from(created.subsec_nanos()))
    }
}

impl Db {
    /// A pool for the database at `path`; nothing is opened until the first [`Db::run`].
    pub fn new(path: impl Into<PathBuf>) -> Self {
        Db {
            path: std::sync::Arc::new(path.into()),
            pool: Default::default(),
        }
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Runs `f` on a pooled connection on tokio's blocking pool, so that no SQLite call ever
    /// blocks the async runtime. Errors name the database file.
    pub async fn run<T, F>(&self, f: F) -> anyhow::Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&mut Connection) -> anyhow::Result<T> + Send + 'static,
    {
        let db = self.clone();
        tokio::task::spawn_blocking(move || {
            let pool = db.current_pool()?;
            let mut conn = pool
                .get()
                .with_context(|| format!("cannot open the shop database {}", db.path.display()))?;
            f(&mut conn)
        })
        .await
        .context("database task failed")?
    }

    /// The pool of the file the path names now (a new pool when the file was replaced).
    fn current_pool(&self) -> anyhow::Result<Pool> {
        let metadata = std::fs::metadata(&*self.path)
            .with_context(|| format!("cannot open the shop database {}", self.path.display()))?;
        let id = FileId::of(&metadata);
        let mut current = self.pool.lock().unwrap_or_else(|p| p.into_inner());
        if let Some((opened_on, pool)) = &*current {
            if *opened_on == id {
                return Ok(pool.clone());
            }
        }
        let path = self.path.clone();
        let manager = r2d2_sqlite::SqliteConnectionManager::file(&*self.path)
            .with_flags(OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX)
            .with_init(move |conn| {
                conn.busy_timeout(BUSY_TIMEOUT)?;
                check_schema(conn, &path)
                    .map_err(|e| rusqlite::Error::ToSqlConversionFailure(e.into()))
            });
        let pool = r2d2::Pool::builder()
            .max_size(POOL_SIZE)
            .min_idle(Some(0))
            // A file that cannot be opened fails a use after this (r2d2 retries until then).
            .connection_timeout(Duration::from_secs(2))
            .build_unchecked(manager);
        *current = Some((id, pool.clone()));
        Ok(pool)
    }
}

/// Replaces every product by `n` generated ones with ids `1..=n`, in one transaction (ids of
/// new products then continue at `n + 1`).
///
/// ```
/// let dir = tempfile::tempdir().unwrap();
/// let mut conn = shop::db::open_or_create(&dir.path().join("shop.db")).unwrap();
/// shop::db::reseed(&mut conn, 3).unwrap();
/// assert_eq!(shop::db::count(&conn).unwrap(), 3);
/// ```
pub fn reseed(conn: &mut Connection, n: u64) -> anyhow::Result<()> {
    let tx = conn.transaction()?;
    tx.execute("DELETE FROM products", [])?;
    {
        // Seeded rows get fixed times (2026-01-01 + one minute per id): the same data everywhere.
        let mut insert = tx.prepare(
            "INSERT INTO products (id, name, description, category, price_cents, stock, updated_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, strftime('%Y-%m-%dT%H:%M:%SZ', ?7, 'unixepoch'))",
        )?;
        for id in 1..=n {
            let p = generate::product(id);
            insert.execute(params![
                id as i64,
                p.name,
                p.description,
                p.category,
                p.price_cents,
                p.stock,
                1_767_225_600 + id as i64 * 60
            ])?;
        }
    }
    // AUTOINCREMENT remembers the highest id ever used; restart it after the seeded ones.
    tx.execute("DELETE FROM sqlite_sequence WHERE name = 'products'", [])?;
    tx.execute(
        "INSERT INTO sqlite_sequence (name, seq) VALUES ('products', ?1)",
        [n as i64],
    )?;
    tx.commit().context("cannot commit the seeded products")?;
    Ok(())
}

fn product_from_row(row: &rusqlite::Row<'_>) -> rusqlite::Result<Product> {
    Ok(Product {
        id: row.get(0)?,
        name: row.get(1)?,
        description: row.get(2)?,
        category: row.get(3)?,
        price_cents: row.get(4)?,
        stock: row.get(5)?,
        updated_at: row.get(6)?,
    })
}

/// Number of products.
///
/// ```
/// # let dir = tempfile::tempdir().unwrap();
/// # let conn = shop::db::open_or_create(&dir.path().join("shop.db")).unwrap();
/// assert_eq!(shop::db::count(&conn).unwrap(), 0);
/// ```
pub fn count(conn: &Connection) -> anyhow::Result<i64> {
    Ok(conn.query_row("SELECT COUNT(*) FROM products", [], |row| row.get(0))?)
}

/// The product `id`, `None` when there is none.
///
/// ```
/// # let dir = tempfile::tempdir().unwrap();
/// # let mut conn = shop::db::open_or_create(&dir.path().join("shop.db")).unwrap();
/// shop::db::reseed(&mut conn, 2).unwrap();
/// assert_eq!(shop::db::product(&conn, 2).unwrap().unwrap().id, 2);
/// assert!(shop::db::product(&conn, 3).unwrap().is_none());
/// ```
pub fn product(conn: &Connection, id: i64) -> anyhow::Result<Option<Product>> {
    Ok(conn
        .query_row(
            &format!("SELECT {PRODUCT_COLUMNS} FROM products WHERE id = ?1"),
            [id],
            product_from_row,
        )
        .optional()?)
}

/// Every product id, ascending.
///
/// ```
/// # let dir = tempfile::tempdir().unwrap();
/// # let mut conn = shop::db::open_or_create(&dir.path().join("shop.db")).unwrap();
/// shop::db::reseed(&mut conn, 3).unwrap();
/// assert_eq!(shop::db::all_ids(&conn).unwrap(), [1, 2, 3]);
/// ```
pub fn all_ids(conn: &Connection) -> anyhow::Result<Vec<i64>> {
    let mut stmt = conn.prepare("SELECT id FROM products ORDER BY id")?;
    let ids = stmt
        .query_map([], |row| row.get(0))?
        .collect::<rusqlite::Result<Vec<i64>>>()?;
    Ok(ids)
}

/// Catalogue page `n` (1-based, [`PAGE_SIZE`](crate::PAGE_SIZE) products ordered by id).
///
/// ```
/// # let dir = tempfile::tempdir().unwrap();
/// # let mut conn = shop::db::open_or_create(&dir.path().join("shop.db")).unwrap();
/// shop::db::reseed(&mut conn, 60).unwrap();
/// let second = shop::db::catalogue_page(&conn, 2).unwrap();
/// assert_eq!(second.iter().map(|p| p.id).collect::<Vec<_>>(), (51..=60).collect::<Vec<_>>());
/// ```
pub fn catalogue_page(conn: &Connection, n: i64) -> anyhow::Result<Vec<ProductSummary>> {
    let size = crate::PAGE_SIZE as i64;
    let offset = n.saturating_sub(1).saturating_mul(size);
    let mut stmt = conn.prepare(
        "SELECT id, name, category, price_cents, stock FROM products ORDER BY id LIMIT ?1 OFFSET ?2",
    )?;
    let products = stmt
        .query_map([size, offset], |row| {
            Ok(ProductSummary {
                id: row.get(0)?,
                name: row.get(1)?,
                category: row.get(2)?,
                price_cents: row.get(3)?,
                stock: row.get(4)?,
            })
        })?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    Ok(products)
}

/// Number of catalogue pages for `products` products (at least 1: an empty catalogue still
/// has its first page).
///
/// ```
/// assert_eq!(shop::db::page_count(0), 1);
/// assert_eq!(shop::db::page_count(50), 1);
/// assert_eq!(shop::db::page_count(51), 2);
/// ```
pub fn page_count(products: i64) -> i64 {
    let size = crate::PAGE_SIZE as i64;
    ((products.max(0) + size - 1) / size).max(1)
}

/// The catalogue page that lists product `id` (its rank among the ids, divided by the page size).
///
/// ```
/// # let dir = tempfile::tempdir().unwrap();
/// # let mut conn = shop::db::open_or_create(&dir.path().join("shop.db")).unwrap();
/// shop::db::reseed(&mut conn, 120).unwrap();
/// assert_eq!(shop::db::page_of(&conn, 50).unwrap(), 1);
/// assert_eq!(shop::db::page_of(&conn, 101).unwrap(), 3);
/// ```
pub fn page_of(conn: &Connection, id: i64) -> anyhow::Result<i64> {
    let rank: i64 = conn.query_row(
        "SELECT COUNT(*) FROM products WHERE id <= ?1",
        [id],
        |row| row.get(0),
    )?;
    Ok(page_count(rank))
}

/// Sets the price of product `id` (and its `updated_at`) in one statement; `None` when there
/// is no such product (nothing changed).
///
/// ```
/// # let dir = tempfile::tempdir().unwrap();
/// # let mut conn = shop::db::open_or_create(&dir.path().join("shop.db")).unwrap();
/// shop::db::reseed(&mut conn, 1).unwrap();
/// assert_eq!(shop::db::update_price(&conn, 1, 1299).unwrap().unwrap().price_cents, 1299);
/// assert!(shop::db::update_price(&conn, 2, 1299).unwrap().is_none());
/// ```
pub fn update_price(
    conn: &Connection,
    id: i64,
    price_cents: i64,
) -> anyhow::Result<Option<Product>> {
    Ok(conn
        .query_row(
            &format!(
                "UPDATE products SET price_cents = ?2, updated_at = {NOW} WHERE id = ?1
                 RETURNING {PRODUCT_COLUMNS}"
            ),
            params![id, price_cents],
            product_from_row,
        )
        .optional()?)
}

/// Inserts a product (the next id) in one statement.
///
/// ```
/// # let dir = tempfile::tempdir().unwrap();
/// # let mut conn = shop::db::open_or_create(&dir.path().join("shop.db")).unwrap();
/// shop::db::reseed(&mut conn, 5).unwrap();
/// let created = shop::db::insert(&conn, &shop::generate::product(99)).unwrap();
/// assert_eq!(created.id, 6);
/// ```
pub fn insert(conn: &Connection, p: &generate::NewProduct) -> anyhow::Result<Product> {
    Ok(conn.query_row(
        &format!(
            "INSERT INTO products (name, description, category, price_cents, stock, updated_at)
             VALUES (?1, ?2, ?3, ?4, ?5, {NOW}) RETURNING {PRODUCT_COLUMNS}"
        ),
        params![p.name, p.description, p.category, p.price_cents, p.stock],
        product_from_row,
    )?)
}

/// Deletes product `id`; `false` when there was none.
///
/// ```
/// # let dir = tempfile::tempdir().unwrap();
/// # let mut conn = shop::db::open_or_create(&dir.path().join("shop.db")).unwrap();
/// shop::db::reseed(&mut conn, 1).unwrap();
/// assert!(shop::db::delete(&conn, 1).unwrap());
/// assert!(!shop::db::delete(&conn, 1).unwrap());
/// ```
pub fn delete(conn: &Connection, id: i64) -> anyhow::Result<bool> {
    Ok(conn.execute("DELETE FROM products WHERE id = ?1", [id])? == 1)
}

/// The `seed` subcommand: `shop seed [--products N] [--db PATH]`.
///
/// ```
/// let cmd = shop::db::seed_command();
/// assert_eq!(cmd.get_name(), "seed");
/// ```
pub fn seed_command() -> isr::clap::Command {
    use isr::clap::{value_parser, Arg, Command};
    Command::new("seed")
        .about("Replace every product with N generated ones (ids 1..=N), creating the database if needed")
        .arg(
            Arg::new("products")
                .long("products")
                .value_name("N")
                .help("How many products")
                .value_parser(value_parser!(u64).range(0..=10_000_000))
                .default_value("10000"),
        )
        .arg(
            Arg::new("db")
                .long("db")
                .value_name("PATH")
                .env(DB_ENV)
                .help("The database file [default: target/site/shop.db]")
                .value_parser(value_parser!(PathBuf)),
        )
}

/// Runs `shop seed` with its parsed arguments.
///
/// ```no_run
/// let matches = shop::db::seed_command().get_matches_from(["seed", "--products", "10"]);
/// assert_eq!(shop::db::run_seed_command(&matches), std::process::ExitCode::SUCCESS);
/// ```
pub fn run_seed_command(matches: &isr::clap::ArgMatches) -> ExitCode {
    let n = matches
        .get_one::<u64>("products")
        .copied()
        .unwrap_or(10_000);
    let path = matches
        .get_one::<PathBuf>("db")
        .filter(|p| !p.as_os_str().is_empty())
        .cloned()
        .unwrap_or_else(|| PathBuf::from(DEFAULT_DB));
    let started = std::time::Instant::now();
    let result = open_or_create(&path).and_then(|mut conn| {
        reseed(&mut conn, n)?;
        count(&conn)
    });
    match result {
        Ok(count) => {
            println!(
                "seeded {count} products into {} in {:.2} s",
                path.display(),
                started.elapsed().as_secs_f64()
            );
            ExitCode::SUCCESS
        }
        Err(error) => {
            eprintln!("error: cannot seed {}: {error:#}", path.display());
            ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn migrations_are_valid() {
        migrations().validate().unwrap();
    }

    #[test]
    fn seeding_is_deterministic_and_reseeding_replaces_everything() {
        let dir = tempfile::tempdir().unwrap();
        let (a, b) = (dir.path().join("a.db"), dir.path().join("b.db"));
        prepare(&a, 30).unwrap();
        prepare(&b, 30).unwrap();
        let rows = |path: &Path| {
            let conn = open_existing(path).unwrap();
            (1..=30)
                .map(|id| product(&conn, id).unwrap().unwrap())
                .collect::<Vec<_>>()
        };
        assert_eq!(rows(&a), rows(&b));
        assert_eq!(rows(&a)[0].updated_at, "2026-01-01T00:01:00Z");

        let mut conn = open_existing(&a).unwrap();
        insert(&conn, &generate::product(1000)).unwrap();
        reseed(&mut conn, 5).unwrap();
        assert_eq!(all_ids(&conn).unwrap(), [1, 2, 3, 4, 5]);
        assert_eq!(insert(&conn, &generate::product(1)).unwrap().id, 6);
    }

    #[test]
    fn a_database_that_had_products_is_not_seeded_again() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("shop.db");
        prepare(&path, 3).unwrap();
        let conn = open_existing(&path).unwrap();
        for id in 1..=3 {
            assert!(delete(&conn, id).unwrap());
        }
        let again = prepare(&path, 3).unwrap();
        assert_eq!((again.products, again.seeded), (0, false));
        // `seed --products 0` too leaves a database that is not seeded on start.
        let mut conn = open_existing(&path).unwrap();
        reseed(&mut conn, 0).unwrap();
        assert!(!prepare(&path, 3).unwrap().seeded);
    }

    #[test]
    fn the_database_is_in_wal_mode() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("shop.db");
        prepare(&path, 1).unwrap();
        let conn = open_existing(&path).unwrap();
        let mode: String = conn
            .pragma_query_value(None, "journal_mode", |row| row.get(0))
            .unwrap();
        assert_eq!(mode, "wal");
    }

    #[test]
    fn broken_files_are_errors_not_empty_databases() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("missing.db");
        assert!(open_existing(&missing).is_err());
        assert!(!missing.exists(), "opening must not create the file");

        let garbage = dir.path().join("garbage.db");
        std::fs::write(&garbage, vec![0x5a; 8192]).unwrap();
        assert!(open_existing(&garbage).is_err());
        assert!(open_or_create(&garbage).is_err());

        // A SQLite file without the schema (never migrated) is an error too.
        let empty = dir.path().join("empty.db");
        Connection::open(&empty)
            .unwrap()
            .execute_batch("CREATE TABLE t (x)")
            .unwrap();
        let err = open_existing(&empty).unwrap_err().to_string();
        assert!(err.contains("schema version 0"), "{err}");
    }

    #[test]
    fn price_updates_and_validation_by_the_schema() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("shop.db");
        prepare(&path, 2).unwrap();
        let conn = open_existing(&path).unwrap();
        let before = product(&conn, 1).unwrap().unwrap();
        let after = update_price(&conn, 1, 4321).unwrap().unwrap();
        assert_eq!(after.price_cents, 4321);
        assert_eq!(after.name, before.name);
        assert_ne!(after.updated_at, before.updated_at);
        // The CHECK constraint is a last line of defence behind the API's validation.
        assert!(update_price(&conn, 1, -1).is_err());
        assert_eq!(product(&conn, 1).unwrap().unwrap().price_cents, 4321);
    }

    #[test]
    fn pages_of_the_catalogue() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("shop.db");
        prepare(&path, 101).unwrap();
        let conn = open_existing(&path).unwrap();
        assert_eq!(page_count(count(&conn).unwrap()), 3);
        assert_eq!(catalogue_page(&conn, 1).unwrap().len(), 50);
        assert_eq!(catalogue_page(&conn, 3).unwrap().len(), 1);
        assert!(catalogue_page(&conn, 4).unwrap().is_empty());
        delete(&conn, 1).unwrap();
        assert_eq!(page_of(&conn, 51).unwrap(), 1);
        assert_eq!(catalogue_page(&conn, 2).unwrap()[0].id, 52);
    }
}
