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
}

impl SqliteJournal {
    /// Opens (creating when missing) the journal in `meta_dir`.
    ///
    /// # Errors
    /// When the file cannot be opened or created.
    pub fn open(meta_dir: &Path) -> Result<SqliteJournal, String> {
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
        self.run("write pending purges", (), move |connection| {
            let transaction = connection.transaction()?;
            {
                let mut insert = transaction.prepare_cached(
                    "INSERT OR IGNORE INTO pending (cdn, kind, key) VALUES (?1, ?2, ?3)",
                )?;
                for (kind, key) in &keys {
                    insert.execute((cdn, kind.as_str(), key))?;
                }
                transaction.execute(
                    "DELETE FROM pending WHERE cdn = ?1 AND seq <= (SELECT MAX(seq) FROM pending WHERE cdn = ?1) - ?2",
                    (cdn, MAX_PENDING as i64),
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
                let mut delete = transaction.prepare_cached(
                    "DELETE FROM pending WHERE cdn = ?1 AND kind = ?2 AND key = ?3",
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
    }
}
