//! The metadata index of a site root: one SQLite file (`<root>.isr/index.sqlite`, WAL mode).
//!
//! Why SQLite: one crash-safe file instead of one JSON file per page (which cost an inode, a
//! rename and an fsync per page and made a cold start read 100,000 files); transactions make a
//! page's row and its tag rows change together; the `page_tags` table answers "keys by tag"
//! with an index lookup; rusqlite (`bundled`) is already in the workspace for the shop, so it
//! adds no build time. An append-only log would need its own compaction and crash recovery.
//!
//! Blocking: every method here blocks on SQLite; [`super::FsStore`] calls them from tokio's
//! blocking pool.

use super::{Etag, Mark, MarkMode, PageKind, PageMeta};
use rusqlite::{params, Connection, OpenFlags, OptionalExtension};
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

/// Schema version kept in SQLite's `user_version` (3: the shared `generation` column; 4: the
/// `valid_until_ms` and `mark_*` columns). An index of an older version is migrated when opened.
const SCHEMA_VERSION: i64 = 4;

/// Rows buffered while durability is deferred (the build) before one transaction writes them.
const DEFERRED_BATCH: usize = 1024;

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS pages (
    key TEXT PRIMARY KEY NOT NULL,
    route TEXT NOT NULL,
    generated_at_ms INTEGER NOT NULL,
    generation INTEGER NOT NULL DEFAULT 0, -- the shared tier's version of the page (0: none)
    kind INTEGER NOT NULL,         -- 0 page, 1 not found, 2 redirect
    etag BLOB,                     -- 16 bytes (pages)
    bytes INTEGER,                 -- body length (pages)
    location TEXT,                 -- redirects
    permanent INTEGER,             -- redirects
    tags TEXT NOT NULL,            -- JSON array of strings
    valid_until_ms INTEGER,        -- when the loader said this version stops being valid
    mark_mode INTEGER,             -- an invalidation's mark: 0 stale, 1 expire
    mark_at_ms INTEGER,            --   when it was made
    mark_cause TEXT                --   what named the page (`tag posts`, `path /blog`)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS page_tags (
    tag TEXT NOT NULL,
    key TEXT NOT NULL,
    PRIMARY KEY (tag, key)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS page_tags_by_key ON page_tags (key);
";

enum Op {
    Put(PageMeta),
    Remove(String),
    /// Sets (or clears) the mark of each key's row.
    Mark(Vec<(String, Option<Mark>)>),
}

/// The open index: one writer connection, one reader connection (WAL lets them run together);
/// a full load opens a connection of its own, so point reads go on while it runs.
pub(super) struct Index {
    path: PathBuf,
    writer: Mutex<Writer>,
    reader: Mutex<Connection>,
}

struct Writer {
    connection: Connection,
    /// Rows not yet written (only while durability is deferred).
    pending: Vec<Op>,
    deferred: bool,
}

fn sql_error(error: rusqlite::Error) -> io::Error {
    io::Error::other(format!("page index: {error}"))
}

impl Index {
    /// Opens (creating when missing) the index at `path`.
    pub(super) fn open(path: &Path) -> io::Result<Index> {
        let writer = Connection::open(path).map_err(sql_error)?;
        writer
            .execute_batch(
                "PRAGMA journal_mode = WAL; PRAGMA synchronous = FULL; PRAGMA busy_timeout = 5000;",
            )
            .map_err(sql_error)?;
        let version: i64 = writer
            .query_row("PRAGMA user_version", [], |row| row.get(0))
            .map_err(sql_error)?;
        match version {
            0 => writer
                .execute_batch(&format!("{SCHEMA} PRAGMA user_version = {SCHEMA_VERSION};"))
                .map_err(sql_error)?,
            SCHEMA_VERSION => {}
            2 | 3 => migrate(&writer)?,
            other => {
                return Err(io::Error::other(format!(
                    "page index {} has schema version {other}, this isr reads {SCHEMA_VERSION}: rebuild the site",
                    path.display()
                )))
            }
        }
        let reader = Connection::open(path).map_err(sql_error)?;
        reader
            .execute_batch("PRAGMA busy_timeout = 5000;")
            .map_err(sql_error)?;
        Ok(Index {
            path: path.to_path_buf(),
            writer: Mutex::new(Writer {
                connection: writer,
                pending: Vec::new(),
                deferred: false,
            }),
            reader: Mutex::new(reader),
        })
    }

    /// Every row.
    pub(super) fn load(&self) -> io::Result<Vec<PageMeta>> {
        let mut metas = Vec::new();
        self.load_batches(usize::MAX, |batch| {
            metas.extend(batch);
            true
        })?;
        Ok(metas)
    }

    /// Every row, handed to `send` in batches of at most `batch` rows as they are read; stops
    /// early when `send` returns false.
    pub(super) fn load_batches(
        &self,
        batch: usize,
        mut send: impl FnMut(Vec<PageMeta>) -> bool,
    ) -> io::Result<()> {
        self.flush()?;
        // A connection of its own: the one shared reader stays free for point reads (requests
        // served while the page table fills). WAL gives this one a consistent snapshot.
        let reader = Connection::open_with_flags(
            &self.path,
            OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )
        .map_err(sql_error)?;
        let mut statement = reader
            .prepare(
                "SELECT key, route, generated_at_ms, kind, etag, bytes, location, permanent, tags, generation, valid_until_ms, mark_mode, mark_at_ms, mark_cause FROM pages",
            )
            .map_err(sql_error)?;
        let rows = statement.query_map([], row_to_meta).map_err(sql_error)?;
        let mut metas = Vec::with_capacity(batch.min(8192));
        for row in rows {
            match row {
                Ok(Ok(meta)) => metas.push(meta),
                Ok(Err(error)) => tracing::warn!(%error, "ignoring an unreadable page index row"),
                Err(error) => return Err(sql_error(error)),
            }
            if metas.len() >= batch && !send(std::mem::take(&mut metas)) {
                return Ok(());
            }
        }
        if !metas.is_empty() {
            send(metas);
        }
        Ok(())
    }

    /// One row.
    pub(super) fn get(&self, key: &str) -> io::Result<Option<PageMeta>> {
        self.flush()?;
        let reader = self.reader.lock().unwrap_or_else(|p| p.into_inner());
        let row = reader
            .query_row(
                "SELECT key, route, generated_at_ms, kind, etag, bytes, location, permanent, tags, generation, valid_until_ms, mark_mode, mark_at_ms, mark_cause FROM pages WHERE key = ?1",
                [key],
                row_to_meta,
            )
            .optional()
            .map_err(sql_error)?;
        row.transpose().map_err(io::Error::other)
    }

    /// Keys carrying `tag` (index lookup).
    pub(super) fn keys_with_tag(&self, tag: &str) -> io::Result<Vec<String>> {
        self.flush()?;
        let reader = self.reader.lock().unwrap_or_else(|p| p.into_inner());
        let mut statement = reader
            .prepare("SELECT key FROM page_tags WHERE tag = ?1 ORDER BY key")
            .map_err(sql_error)?;
        let keys = statement
            .query_map([tag], |row| row.get::<_, String>(0))
            .map_err(sql_error)?
            .collect::<Result<Vec<_>, _>>()
            .map_err(sql_error)?;
        Ok(keys)
    }

    /// Writes (or, while deferred, buffers) the row of `meta`.
    pub(super) fn put(&self, meta: PageMeta) -> io::Result<()> {
        self.apply(Op::Put(meta))
    }

    /// Writes the row of `meta` now, durably, even while durability is deferred (the rows
    /// buffered before it are written first, so the order of writes holds).
    pub(super) fn put_durable(&self, meta: PageMeta) -> io::Result<()> {
        self.apply_durably(Op::Put(meta))
    }

    /// Sets (with `None`: clears) the mark of each key's row, durably and in one transaction,
    /// even while durability is deferred (after the rows buffered before it).
    pub(super) fn set_marks(&self, marks: Vec<(String, Option<Mark>)>) -> io::Result<()> {
        self.apply_durably(Op::Mark(marks))
    }

    /// Writes `op` (after every buffered one) now and durably, deferred durability or not.
    fn apply_durably(&self, op: Op) -> io::Result<()> {
        let mut writer = self.lock_writer();
        writer.pending.push(op);
        if !writer.deferred {
            return writer.write_pending();
        }
        // `synchronous` is a connection setting: FULL for this one commit (which also makes the
        // WAL frames of the deferred commits before it durable), then OFF again.
        writer
            .connection
            .execute_batch("PRAGMA synchronous = FULL;")
            .map_err(sql_error)?;
        let written = writer.write_pending();
        let restored = writer
            .connection
            .execute_batch("PRAGMA synchronous = OFF;")
            .map_err(sql_error);
        written.and(restored)
    }

    /// Deletes the row of `key` (and its tags).
    pub(super) fn remove(&self, key: &str) -> io::Result<()> {
        self.apply(Op::Remove(key.to_string()))
    }

    fn apply(&self, op: Op) -> io::Result<()> {
        let mut writer = self.lock_writer();
        writer.pending.push(op);
        if !writer.deferred || writer.pending.len() >= DEFERRED_BATCH {
            writer.write_pending()?;
        }
        Ok(())
    }

    /// Defers (or stops deferring) durability: while deferred, rows are written in batches
    /// with `synchronous = OFF`; [`Index::sync`] writes the rest and makes everything durable.
    pub(super) fn set_deferred(&self, deferred: bool) -> io::Result<()> {
        let mut writer = self.lock_writer();
        if writer.deferred == deferred {
            return Ok(());
        }
        writer.write_pending()?;
        let mode = if deferred { "OFF" } else { "FULL" };
        writer
            .connection
            .execute_batch(&format!("PRAGMA synchronous = {mode};"))
            .map_err(sql_error)?;
        writer.deferred = deferred;
        Ok(())
    }

    /// Writes buffered rows and checkpoints the WAL into the database file.
    pub(super) fn sync(&self) -> io::Result<()> {
        let mut writer = self.lock_writer();
        writer.write_pending()?;
        writer
            .connection
            .execute_batch("PRAGMA wal_checkpoint(TRUNCATE);")
            .map_err(sql_error)
    }

    fn flush(&self) -> io::Result<()> {
        self.lock_writer().write_pending()
    }

    fn lock_writer(&self) -> std::sync::MutexGuard<'_, Writer> {
        self.writer.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl Writer {
    /// Writes every pending row in one transaction.
    fn write_pending(&mut self) -> io::Result<()> {
        if self.pending.is_empty() {
            return Ok(());
        }
        let transaction = self.connection.transaction().map_err(sql_error)?;
        for op in &self.pending {
            match op {
                Op::Put(meta) => write_row(&transaction, meta)?,
                Op::Remove(key) => {
                    cached(&transaction, "DELETE FROM pages WHERE key = ?1")?
                        .execute([key])
                        .map_err(sql_error)?;
                    cached(&transaction, DELETE_TAGS)?
                        .execute([key])
                        .map_err(sql_error)?;
                }
                Op::Mark(marks) => {
                    let mut update = cached(
                        &transaction,
                        "UPDATE pages SET mark_mode = ?1, mark_at_ms = ?2, mark_cause = ?3 WHERE key = ?4",
                    )?;
                    for (key, mark) in marks {
                        let (mode, at_ms, cause) = mark_columns(mark.as_ref());
                        update
                            .execute(params![mode, at_ms, cause, key])
                            .map_err(sql_error)?;
                    }
                }
            }
        }
        transaction.commit().map_err(sql_error)?;
        self.pending.clear();
        Ok(())
    }
}

const DELETE_TAGS: &str = "DELETE FROM page_tags WHERE key = ?1";

/// An older index to this version, step by step. Version 2 → 3: the `generation` column; a
/// version 2 row's `generated_at_ms` was its shared generation (the commit made them one
/// number), so it becomes its generation: an upgraded instance does not see every page as
/// behind Redis. Version 3 → 4: the `valid_until_ms` and `mark_*` columns (empty: no row had
/// one). In one
/// immediate transaction that reads the version again, so two processes opening the index at
/// once migrate it once.
fn migrate(connection: &Connection) -> io::Result<()> {
    connection
        .execute_batch("BEGIN IMMEDIATE;")
        .map_err(sql_error)?;
    let migrated = (|| {
        let version: i64 = connection
            .query_row("PRAGMA user_version", [], |row| row.get(0))
            .map_err(sql_error)?;
        if version == 2 {
            connection
                .execute_batch(
                    "ALTER TABLE pages ADD COLUMN generation INTEGER NOT NULL DEFAULT 0;
                     UPDATE pages SET generation = generated_at_ms;",
                )
                .map_err(sql_error)?;
        }
        if version == 2 || version == 3 {
            connection
                .execute_batch(&format!(
                    "ALTER TABLE pages ADD COLUMN valid_until_ms INTEGER;
                     ALTER TABLE pages ADD COLUMN mark_mode INTEGER;
                     ALTER TABLE pages ADD COLUMN mark_at_ms INTEGER;
                     ALTER TABLE pages ADD COLUMN mark_cause TEXT;
                     PRAGMA user_version = {SCHEMA_VERSION};"
                ))
                .map_err(sql_error)?;
        }
        Ok(())
    })();
    let end = if migrated.is_ok() {
        "COMMIT;"
    } else {
        "ROLLBACK;"
    };
    connection.execute_batch(end).map_err(sql_error)?;
    migrated
}

/// A statement parsed once per connection (every row of a build reuses it).
fn cached<'c>(connection: &'c Connection, sql: &str) -> io::Result<rusqlite::CachedStatement<'c>> {
    connection.prepare_cached(sql).map_err(sql_error)
}

fn write_row(connection: &Connection, meta: &PageMeta) -> io::Result<()> {
    let (kind, etag, bytes, location, permanent) = match &meta.kind {
        PageKind::Page { etag, bytes } => (
            0,
            Some(etag.as_bytes().to_vec()),
            Some(*bytes as i64),
            None,
            None,
        ),
        PageKind::NotFound => (1, None, None, None, None),
        PageKind::Redirect {
            location,
            permanent,
        } => (2, None, None, Some(location.as_str()), Some(*permanent)),
    };
    let tags = serde_json::to_string(&meta.tags).map_err(io::Error::other)?;
    let (mark_mode, mark_at_ms, mark_cause) = mark_columns(meta.mark.as_ref());
    cached(
        connection,
        "INSERT OR REPLACE INTO pages (key, route, generated_at_ms, kind, etag, bytes, location, permanent, tags, generation, valid_until_ms, mark_mode, mark_at_ms, mark_cause)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14)",
    )?
        .execute(
            params![
                meta.key,
                meta.route,
                meta.generated_at_ms as i64,
                kind,
                etag,
                bytes,
                location,
                permanent,
                tags,
                meta.generation as i64,
                meta.valid_until_ms.map(|at| at.min(i64::MAX as u64) as i64),
                mark_mode,
                mark_at_ms,
                mark_cause
            ],
        )
        .map_err(sql_error)?;
    cached(connection, DELETE_TAGS)?
        .execute([&meta.key])
        .map_err(sql_error)?;
    let mut insert = cached(
        connection,
        "INSERT OR IGNORE INTO page_tags (tag, key) VALUES (?1, ?2)",
    )?;
    for tag in &meta.tags {
        insert.execute([tag, &meta.key]).map_err(sql_error)?;
    }
    Ok(())
}

/// The `mark_mode`, `mark_at_ms` and `mark_cause` columns of `mark` (all NULL without one).
fn mark_columns(mark: Option<&Mark>) -> (Option<i64>, Option<i64>, Option<&str>) {
    match mark {
        Some(mark) => (
            Some(match mark.mode {
                MarkMode::Stale => 0,
                MarkMode::Expire => 1,
            }),
            Some(mark.at_ms.min(i64::MAX as u64) as i64),
            Some(mark.cause.as_str()),
        ),
        None => (None, None, None),
    }
}

/// A row → metadata; the inner `Err` is a row whose values do not make sense (skipped).
fn row_to_meta(row: &rusqlite::Row<'_>) -> rusqlite::Result<Result<PageMeta, String>> {
    let key: String = row.get(0)?;
    let route: String = row.get(1)?;
    let generated_at_ms: i64 = row.get(2)?;
    let kind: i64 = row.get(3)?;
    let etag: Option<Vec<u8>> = row.get(4)?;
    let bytes: Option<i64> = row.get(5)?;
    let location: Option<String> = row.get(6)?;
    let permanent: Option<bool> = row.get(7)?;
    let tags: String = row.get(8)?;
    let generation: i64 = row.get(9)?;
    let valid_until_ms: Option<i64> = row.get(10)?;
    let mark_mode: Option<i64> = row.get(11)?;
    let mark_at_ms: Option<i64> = row.get(12)?;
    let mark_cause: Option<String> = row.get(13)?;
    let mark = match (mark_mode, mark_at_ms) {
        (Some(mode), Some(at_ms)) => Some(Mark {
            mode: if mode == 1 {
                MarkMode::Expire
            } else {
                MarkMode::Stale
            },
            at_ms: at_ms.max(0) as u64,
            cause: mark_cause.unwrap_or_default(),
        }),
        _ => None,
    };
    let kind = match (kind, etag, bytes, location) {
        (0, Some(etag), Some(bytes), _) if bytes >= 0 => match <[u8; 16]>::try_from(etag) {
            Ok(etag) => PageKind::Page {
                etag: Etag::from_bytes(etag),
                bytes: bytes as u64,
            },
            Err(_) => return Ok(Err(format!("{key}: etag is not 16 bytes"))),
        },
        (1, ..) => PageKind::NotFound,
        (2, _, _, Some(location)) => PageKind::Redirect {
            location,
            permanent: permanent.unwrap_or(false),
        },
        (kind, ..) => return Ok(Err(format!("{key}: bad row of kind {kind}"))),
    };
    let tags: Vec<String> = match serde_json::from_str(&tags) {
        Ok(tags) => tags,
        Err(error) => return Ok(Err(format!("{key}: tags: {error}"))),
    };
    Ok(Ok(PageMeta {
        key,
        route,
        generated_at_ms: generated_at_ms.max(0) as u64,
        generation: generation.max(0) as u64,
        kind,
        tags,
        valid_until_ms: valid_until_ms.map(|at| at.max(0) as u64),
        mark,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An index written by the previous version (schema 2, no `generation` column) opens,
    /// and each row's generation is the number its `generated_at_ms` held (then one number).
    #[test]
    fn a_version_2_index_gets_the_generation_column_from_its_rows() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("index.sqlite");
        let old = Connection::open(&path).unwrap();
        old.execute_batch(
            "CREATE TABLE pages (key TEXT PRIMARY KEY NOT NULL, route TEXT NOT NULL,
                 generated_at_ms INTEGER NOT NULL, kind INTEGER NOT NULL, etag BLOB, bytes INTEGER,
                 location TEXT, permanent INTEGER, tags TEXT NOT NULL) WITHOUT ROWID;
             CREATE TABLE page_tags (tag TEXT NOT NULL, key TEXT NOT NULL,
                 PRIMARY KEY (tag, key)) WITHOUT ROWID;
             INSERT INTO pages VALUES ('/gone', '/:slug', 1700000000123, 1, NULL, NULL, NULL, NULL, '[]');
             PRAGMA user_version = 2;",
        )
        .unwrap();
        drop(old);
        let index = Index::open(&path).unwrap();
        let rows = index.load().unwrap();
        assert_eq!(rows.len(), 1);
        assert_eq!(rows[0].generation, 1_700_000_000_123);
        assert_eq!(rows[0].generated_at_ms, 1_700_000_000_123);
        assert_eq!(rows[0].valid_until_ms, None);
        drop(index);
        // Opened again: already the current version, nothing migrated twice.
        assert_eq!(
            Index::open(&path).unwrap().load().unwrap()[0].generation,
            1_700_000_000_123
        );
    }

    /// An index of version 3 gets the `valid_until_ms` column (empty), and a row written with
    /// one reads back with it.
    #[test]
    fn a_version_3_index_gets_the_valid_until_column() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("index.sqlite");
        let old = Connection::open(&path).unwrap();
        old.execute_batch(
            "CREATE TABLE pages (key TEXT PRIMARY KEY NOT NULL, route TEXT NOT NULL,
                 generated_at_ms INTEGER NOT NULL, generation INTEGER NOT NULL DEFAULT 0,
                 kind INTEGER NOT NULL, etag BLOB, bytes INTEGER, location TEXT,
                 permanent INTEGER, tags TEXT NOT NULL) WITHOUT ROWID;
             CREATE TABLE page_tags (tag TEXT NOT NULL, key TEXT NOT NULL,
                 PRIMARY KEY (tag, key)) WITHOUT ROWID;
             INSERT INTO pages VALUES ('/gone', '/:slug', 1700000000123, 7, 1, NULL, NULL, NULL, NULL, '[]');
             PRAGMA user_version = 3;",
        )
        .unwrap();
        drop(old);
        let index = Index::open(&path).unwrap();
        let rows = index.load().unwrap();
        assert_eq!((rows[0].generation, rows[0].valid_until_ms), (7, None));
        let mut later = rows[0].clone();
        later.key = "/later".into();
        later.valid_until_ms = Some(1_800_000_000_000);
        index.put_durable(later).unwrap();
        drop(index);
        let index = Index::open(&path).unwrap();
        let rows = index.load().unwrap();
        let later = rows.iter().find(|row| row.key == "/later").unwrap();
        assert_eq!(later.valid_until_ms, Some(1_800_000_000_000));
        // A mark set on a row reads back; cleared, it is gone; a key with no row is skipped.
        let mark = Mark::new(MarkMode::Expire, 1_700_000_000_999, "tag posts");
        index
            .set_marks(vec![
                ("/later".into(), Some(mark.clone())),
                ("/none".into(), Some(mark.clone())),
            ])
            .unwrap();
        drop(index);
        let index = Index::open(&path).unwrap();
        assert_eq!(index.get("/later").unwrap().unwrap().mark, Some(mark));
        assert_eq!(index.get("/gone").unwrap().unwrap().mark, None);
        assert!(index.get("/none").unwrap().is_none());
        index.set_marks(vec![("/later".into(), None)]).unwrap();
        assert_eq!(index.get("/later").unwrap().unwrap().mark, None);
    }
}
