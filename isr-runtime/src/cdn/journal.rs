//! The purges not yet sent, written down so that a restart sends them: a CDN API that is down
//! (or a process killed) loses no invalidation.
//!
//! A key is written (per CDN, kind and key) before its first attempt and removed once it went
//! or was given up; at start every CDN's queue sends what was left. At least once: a key whose
//! request went just before a crash is purged again after it.
//!
//! [`SqliteJournal`] keeps them in `purges.sqlite` in the site's metadata folder
//! (`<site-root>.isr/`), next to the page index.

use crate::engine::PurgeKind;
use futures::future::BoxFuture;
use rusqlite::Connection;
use std::path::Path;
use std::sync::{Arc, Mutex};

/// One key a CDN still has to purge, and how.
pub type PendingKey = (PurgeKind, String);

/// Where the purge queues write down what they have not purged yet.
pub trait PurgeJournal: Send + Sync + 'static {
    /// `cdn` will purge `keys` (written before their first attempt).
    fn add(&self, cdn: &'static str, keys: Vec<PendingKey>) -> BoxFuture<'static, ()>;
    /// `cdn` purged (or gave up) `keys`.
    fn remove(&self, cdn: &'static str, keys: Vec<PendingKey>) -> BoxFuture<'static, ()>;
    /// What `cdn` had left at the last stop.
    fn pending(&self, cdn: &'static str) -> BoxFuture<'static, Vec<PendingKey>>;
}

/// Pending keys at most kept per CDN (beyond, the oldest are forgotten: a CDN down for long
/// gets the newest changes after a restart, and its TTLs do the rest).
pub const MAX_PENDING: usize = 100_000;

/// The journal in a SQLite file (see the module docs). Errors are logged, never fatal: the
/// queue works on without it.
pub struct SqliteJournal {
    connection: Arc<Mutex<Connection>>,
    /// Pending keys kept per CDN at most.
    limit: usize,
}

impl SqliteJournal {
    /// Opens (creating when missing) the journal in `meta_dir`.
    ///
    /// # Errors
    /// When the file cannot be opened or created.
    pub fn open(meta_dir: &Path) -> Result<SqliteJournal, String> {
        Self::open_keeping(meta_dir, MAX_PENDING)
    }

    /// Like [`SqliteJournal::open`], keeping at most `limit` keys per CDN.
    ///
    /// # Errors
    /// When the file cannot be opened or created.
    pub fn open_keeping(meta_dir: &Path, limit: usize) -> Result<SqliteJournal, String> {
        std::fs::create_dir_all(meta_dir).map_err(|e| format!("{}: {e}", meta_dir.display()))?;
        let path = meta_dir.join("purges.sqlite");
        let connection = Connection::open(&path).map_err(|e| format!("{}: {e}", path.display()))?;
        connection
            .execute_batch(
                "PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL; PRAGMA busy_timeout = 5000;
                 CREATE TABLE IF NOT EXISTS pending (
                     seq INTEGER PRIMARY KEY AUTOINCREMENT,
                     cdn TEXT NOT NULL, kind TEXT NOT NULL, key TEXT NOT NULL,
                     UNIQUE (cdn, kind, key));",
            )
            .map_err(|e| format!("{}: {e}", path.display()))?;
        Ok(SqliteJournal {
            connection: Arc::new(Mutex::new(connection)),
            limit,
        })
    }

    fn run<T: Send + 'static>(
        &self,
        what: &'static str,
        default: T,
        work: impl FnOnce(&mut Connection) -> rusqlite::Result<T> + Send + 'static,
    ) -> BoxFuture<'static, T> {
        let connection = self.connection.clone();
        Box::pin(async move {
            let done = tokio::task::spawn_blocking(move || {
                let mut connection = connection.lock().unwrap_or_else(|e| e.into_inner());
                work(&mut connection)
            })
            .await;
            match done {
                Ok(Ok(value)) => value,
                Ok(Err(error)) => {
                    tracing::warn!(%error, "CDN purge journal: could not {what}");
                    default
                }
                Err(error) => {
                    tracing::warn!(%error, "CDN purge journal: could not {what}");
                    default
                }
            }
        })
    }
}

fn kind_of(text: &str) -> PurgeKind {
    if text == "hard" {
        PurgeKind::Hard
    } else {
        PurgeKind::Soft
    }
}

impl PurgeJournal for SqliteJournal {
    fn add(&self, cdn: &'static str, keys: Vec<PendingKey>) -> BoxFuture<'static, ()> {
        if keys.is_empty() {
            return Box::pin(async {});
        }
        let limit = self.limit as i64;
        self.run("write pending purges", (), move |connection| {
            let transaction = connection.transaction()?;
            {
                let mut insert = transaction.prepare_cached(
                    // A key queued again is the newest: it moves to the end (trimming keeps it).
                    "INSERT OR REPLACE INTO pending (cdn, kind, key) VALUES (?1, ?2, ?3)",
                )?;
                for (kind, key) in &keys {
                    insert.execute((cdn, kind.as_str(), key))?;
                }
                // The newest `limit` rows of this CDN stay.
                transaction.execute(
                    "DELETE FROM pending WHERE cdn = ?1 AND seq NOT IN
                         (SELECT seq FROM pending WHERE cdn = ?1 ORDER BY seq DESC LIMIT ?2)",
                    (cdn, limit),
                )?;
            }
            transaction.commit()
        })
    }

    fn remove(&self, cdn: &'static str, keys: Vec<PendingKey>) -> BoxFuture<'static, ()> {
        if keys.is_empty() {
            return Box::pin(async {});
        }
        self.run("remove sent purges", (), move |connection| {
            let transaction = connection.transaction()?;
            {
                // A hard purge covers the soft one of the same key (the queue merges them).
                let mut delete = transaction.prepare_cached(
                    "DELETE FROM pending WHERE cdn = ?1 AND key = ?3 AND (kind = ?2 OR ?2 = 'hard')",
                )?;
                for (kind, key) in &keys {
                    delete.execute((cdn, kind.as_str(), key))?;
                }
            }
            transaction.commit()
        })
    }

    fn pending(&self, cdn: &'static str) -> BoxFuture<'static, Vec<PendingKey>> {
        self.run("read pending purges", Vec::new(), move |connection| {
            let mut select =
                connection.prepare("SELECT kind, key FROM pending WHERE cdn = ?1 ORDER BY seq")?;
            let rows = select.query_map([cdn], |row| {
                Ok((kind_of(&row.get::<_, String>(0)?), row.get::<_, String>(1)?))
            })?;
            rows.collect()
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn what_is_left_survives_a_reopen_per_cdn() {
        let dir = tempfile::tempdir().unwrap();
        let journal = SqliteJournal::open(dir.path()).unwrap();
        let key = |kind, key: &str| (kind, key.to_string());
        journal
            .add(
                "fastly",
                vec![key(PurgeKind::Soft, "posts"), key(PurgeKind::Hard, "/a")],
            )
            .await;
        journal
            .add("fastly", vec![key(PurgeKind::Soft, "posts")])
            .await;
        journal
            .add("akamai", vec![key(PurgeKind::Soft, "posts")])
            .await;
        journal
            .remove("fastly", vec![key(PurgeKind::Hard, "/a")])
            .await;
        drop(journal);
        let journal = SqliteJournal::open(dir.path()).unwrap();
        assert_eq!(
            journal.pending("fastly").await,
            [key(PurgeKind::Soft, "posts")]
        );
        assert_eq!(
            journal.pending("akamai").await,
            [key(PurgeKind::Soft, "posts")]
        );
        assert!(journal.pending("cloudflare").await.is_empty());
        // A hard purge that went also clears the soft one it covered.
        journal
            .remove("akamai", vec![key(PurgeKind::Hard, "posts")])
            .await;
        assert!(journal.pending("akamai").await.is_empty());
    }

    #[tokio::test]
    async fn the_newest_keys_of_each_cdn_are_kept_within_the_limit() {
        let dir = tempfile::tempdir().unwrap();
        let journal = SqliteJournal::open_keeping(dir.path(), 3).unwrap();
        let soft = |key: &str| (PurgeKind::Soft, key.to_string());
        journal.add("fastly", vec![soft("a"), soft("b")]).await;
        // Another CDN's many rows do not push fastly's out.
        for i in 0..10 {
            journal.add("akamai", vec![soft(&format!("k{i}"))]).await;
        }
        journal.add("fastly", vec![soft("c"), soft("d")]).await;
        assert_eq!(
            journal.pending("fastly").await,
            [soft("b"), soft("c"), soft("d")]
        );
        assert_eq!(journal.pending("akamai").await.len(), 3);
    }
}
