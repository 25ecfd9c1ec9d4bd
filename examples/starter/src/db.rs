//! The starter's data: notes in a SQLite file (rusqlite, SQLite compiled in).
//!
//! [`Db`] is app state: loaders take it as `State<Db>`. It holds only the file's path and opens
//! a connection per call on tokio's blocking pool: loaders run when a page is generated (at the
//! build, then once per `revalidate` window at most), not per request, so a connection pool
//! buys little here (the shop example uses one, `r2d2`, for its admin API's writes).
//!
//! Reads open the file **without** creating it: a missing or unreadable database is an error,
//! so a regeneration fails and ISR keeps serving the old page, never an empty list.

// ANCHOR: db
use isr::Context;
use rusqlite::{Connection, OpenFlags, OptionalExtension};
use std::path::PathBuf;

/// A note, as stored.
pub struct NoteRow {
    pub id: u32,
    pub title: String,
    pub body: String,
}

/// The database: app state, cloned into every loader that takes `State<Db>`.
#[derive(Clone)]
pub struct Db {
    path: PathBuf,
}

impl Db {
    /// Opens the database at `path`, creating it (and its folder) with two notes when it does not
    /// exist yet.
    ///
    /// # Errors
    /// The file cannot be created, opened or migrated (the message names the path).
    pub fn open(path: impl Into<PathBuf>) -> isr::Result<Db> {
        let path = path.into();
        if let Some(folder) = path
            .parent()
            .filter(|folder| !folder.as_os_str().is_empty())
        {
            std::fs::create_dir_all(folder)
                .with_context(|| format!("creating {}", folder.display()))?;
        }
        let conn =
            Connection::open(&path).with_context(|| format!("opening {}", path.display()))?;
        conn.execute_batch(
            "CREATE TABLE IF NOT EXISTS notes (
                 id    INTEGER PRIMARY KEY,
                 title TEXT NOT NULL,
                 body  TEXT NOT NULL
             );
             INSERT INTO notes (id, title, body)
                 SELECT 1, 'Hello, isr', 'This page was rendered from a SQLite row.'
                 WHERE NOT EXISTS (SELECT 1 FROM notes);
             INSERT INTO notes (id, title, body)
                 SELECT 2, 'Edit me', 'Change this row and revalidate: the page follows.'
                 WHERE (SELECT COUNT(*) FROM notes) = 1;",
        )
        .with_context(|| format!("creating the notes table in {}", path.display()))?;
        Ok(Db { path })
    }

    /// Every note's id and title, by id.
    ///
    /// # Errors
    /// The database cannot be read.
    pub async fn titles(&self) -> isr::Result<Vec<(u32, String)>> {
        self.read(|conn| {
            let mut statement = conn.prepare("SELECT id, title FROM notes ORDER BY id")?;
            let rows = statement.query_map([], |row| Ok((row.get(0)?, row.get(1)?)))?;
            rows.collect()
        })
        .await
    }

    /// One note, or `None` when there is no such id.
    ///
    /// # Errors
    /// The database cannot be read.
    pub async fn note(&self, id: u32) -> isr::Result<Option<NoteRow>> {
        self.read(move |conn| {
            conn.query_row(
                "SELECT id, title, body FROM notes WHERE id = ?1",
                [id],
                |row| {
                    Ok(NoteRow {
                        id: row.get(0)?,
                        title: row.get(1)?,
                        body: row.get(2)?,
                    })
                },
            )
            .optional()
        })
        .await
    }

    // ANCHOR: read
    /// Runs `query` on a fresh read-only connection, on the blocking pool.
    async fn read<T: Send + 'static>(
        &self,
        query: impl FnOnce(&Connection) -> rusqlite::Result<T> + Send + 'static,
    ) -> isr::Result<T> {
        let path = self.path.clone();
        tokio::task::spawn_blocking(move || {
            let conn = Connection::open_with_flags(&path, OpenFlags::SQLITE_OPEN_READ_ONLY)
                .with_context(|| format!("opening {}", path.display()))?;
            query(&conn).with_context(|| format!("reading {}", path.display()))
        })
        .await
        .context("the database task")?
    }
    // ANCHOR_END: read
}

/// `STARTER_DB`, else `target/starter.db` (relative to the working directory: the crate's own
/// folder under `cargo run`).
pub fn path_from_env() -> PathBuf {
    std::env::var_os("STARTER_DB")
        .filter(|path| !path.is_empty())
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("target/starter.db"))
}
// ANCHOR_END: db
