//! The default [`PageStore`]: a plain static export on disk plus metadata under `.isr/`.
//!
//! ```text
//! <root>/blog/index.html          the page, servable by any static file server
//! <root>/blog/hello/index.html
//! <root>/.isr/pages/<hash>.json   metadata per page (key, route, params, time, etag, tags)
//! ```
//! Every file is written to a temporary file in its final directory, fsynced, then renamed over
//! the old one, so a reader (or a crash) sees a whole old file or a whole new one.

use super::{PageKind, PageMeta, PageStore};
use sha2::{Digest, Sha256};
use std::fs::{self, File};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};

/// The folder under the site root that holds metadata; never served.
pub const META_DIR: &str = ".isr";

/// Pages stored under a site root directory.
///
/// ```no_run
/// use isr::store::{FsStore, PageStore};
/// let store = FsStore::new("target/site/blog");
/// let pages = store.load_index().unwrap();
/// # let _ = pages;
/// ```
pub struct FsStore {
    root: PathBuf,
    deferred_sync: AtomicBool,
}

impl FsStore {
    /// A store rooted at `root` (created on first write).
    ///
    /// ```
    /// let store = isr::store::FsStore::new("/tmp/site");
    /// assert_eq!(store.root(), std::path::Path::new("/tmp/site"));
    /// ```
    pub fn new(root: impl Into<PathBuf>) -> Self {
        FsStore {
            root: root.into(),
            deferred_sync: AtomicBool::new(false),
        }
    }

    /// The site root.
    ///
    /// ```
    /// assert!(isr::store::FsStore::new("x").root().ends_with("x"));
    /// ```
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Whether `root` holds a site written by a build (its metadata folder exists).
    ///
    /// ```
    /// assert!(!isr::store::FsStore::new("/nonexistent/site").is_built_site());
    /// ```
    pub fn is_built_site(&self) -> bool {
        self.meta_dir().is_dir()
    }

    /// Path of the HTML file of the page at `key`.
    ///
    /// ```
    /// let store = isr::store::FsStore::new("/srv");
    /// assert_eq!(store.html_path("/blog/hi"), std::path::Path::new("/srv/blog/hi/index.html"));
    /// assert_eq!(store.html_path("/"), std::path::Path::new("/srv/index.html"));
    /// ```
    pub fn html_path(&self, key: &str) -> PathBuf {
        let mut path = self.root.clone();
        // Keys come from `route`, whose segments cannot be `..`, start with `.` or hold `/`.
        for segment in key.split('/').filter(|s| !s.is_empty()) {
            path.push(segment);
        }
        path.push(crate::route::PAGE_FILE);
        path
    }

    /// Reads the metadata files in `paths`, skipping (and logging) what cannot be trusted.
    fn read_metas(&self, paths: &[PathBuf]) -> Vec<PageMeta> {
        let mut pages = Vec::with_capacity(paths.len());
        for path in paths {
            if path.extension().is_none_or(|ext| ext != "json") {
                continue; // a temporary file left by a crash
            }
            let meta: PageMeta = match fs::read(path)
                .map_err(|e| e.to_string())
                .and_then(|bytes| serde_json::from_slice(&bytes).map_err(|e| e.to_string()))
            {
                Ok(meta) => meta,
                Err(error) => {
                    tracing::warn!(file = %path.display(), %error, "ignoring unreadable page metadata");
                    continue;
                }
            };
            if *path != self.meta_path(&meta.key) {
                tracing::warn!(file = %path.display(), key = %meta.key, "ignoring misplaced page metadata");
                continue;
            }
            if meta.kind.is_page() && !self.html_path(&meta.key).is_file() {
                tracing::warn!(key = %meta.key, "metadata without its HTML file: page dropped");
                continue;
            }
            pages.push(meta);
        }
        pages
    }

    fn meta_dir(&self) -> PathBuf {
        self.root.join(META_DIR).join("pages")
    }

    /// `.isr/pages/<2 hex>/<30 hex>.json`: 256 folders keep each folder small, so creating and
    /// renaming files stays cheap (and uncontended) with 100,000 pages.
    fn meta_path(&self, key: &str) -> PathBuf {
        let digest = Sha256::digest(key.as_bytes());
        let name: String = digest[..16].iter().map(|b| format!("{b:02x}")).collect();
        self.meta_dir()
            .join(&name[..2])
            .join(format!("{}.json", &name[2..]))
    }
}

impl PageStore for FsStore {
    fn load_index(&self) -> io::Result<Vec<PageMeta>> {
        let dir = self.meta_dir();
        let entries = match fs::read_dir(&dir) {
            Ok(entries) => entries,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(e),
        };
        let mut files = Vec::new();
        for entry in entries {
            let shard = entry?.path();
            if shard.is_dir() {
                for file in fs::read_dir(&shard)? {
                    files.push(file?.path());
                }
            }
        }
        // Reading and parsing 100,000 small files dominates a cold start: spread it over the
        // cores (each file is independent).
        let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
        let chunk = files.len().div_ceil(threads).max(1);
        let pages = std::thread::scope(|scope| {
            let workers: Vec<_> = files
                .chunks(chunk)
                .map(|paths| scope.spawn(move || self.read_metas(paths)))
                .collect();
            workers
                .into_iter()
                .flat_map(|w| w.join().unwrap_or_default())
                .collect()
        });
        Ok(pages)
    }

    fn read_html(&self, key: &str) -> io::Result<Option<Vec<u8>>> {
        match fs::read(self.html_path(key)) {
            Ok(bytes) => Ok(Some(bytes)),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e),
        }
    }

    fn write(&self, meta: &PageMeta, html: Option<&[u8]>) -> io::Result<()> {
        let fsync = !self.deferred_sync.load(Ordering::Relaxed);
        match (html, &meta.kind) {
            (Some(html), PageKind::Page { .. }) => {
                write_atomic(&self.html_path(&meta.key), html, fsync)?
            }
            _ => remove_if_exists(&self.html_path(&meta.key))?,
        }
        let json = serde_json::to_vec(meta).map_err(io::Error::other)?;
        write_atomic(&self.meta_path(&meta.key), &json, fsync)
    }

    fn remove(&self, key: &str) -> io::Result<()> {
        remove_if_exists(&self.meta_path(key))?;
        let html = self.html_path(key);
        remove_if_exists(&html)?;
        // Tidy empty page folders up to (not including) the root; a folder that still holds
        // child pages stays.
        let mut dir = html.parent();
        while let Some(d) = dir {
            if d == self.root || fs::remove_dir(d).is_err() {
                break;
            }
            dir = d.parent();
        }
        Ok(())
    }

    fn sync(&self) -> io::Result<()> {
        // One syncfs flushes every file and directory entry the build wrote.
        let root = File::open(&self.root)?;
        rustix::fs::syncfs(&root).map_err(io::Error::from)
    }

    fn defer_sync(&self, deferred: bool) {
        self.deferred_sync.store(deferred, Ordering::Relaxed);
    }
}

fn remove_if_exists(path: &Path) -> io::Result<()> {
    match fs::remove_file(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e),
    }
}

/// Writes `bytes` to `path` via a temporary file in the same directory (fsynced unless the
/// caller syncs later) and a rename.
fn write_atomic(path: &Path, bytes: &[u8], fsync: bool) -> io::Result<()> {
    let dir = path
        .parent()
        .ok_or_else(|| io::Error::other("page path has no parent directory"))?;
    fs::create_dir_all(dir)?;
    let file_name = path.file_name().and_then(|n| n.to_str()).unwrap_or("page");
    let tmp = dir.join(format!(".{file_name}.{:016x}.tmp", fastrand::u64(..)));
    let result = (|| {
        let mut file = File::create(&tmp)?;
        file.write_all(bytes)?;
        if fsync {
            file.sync_all()?;
        }
        fs::rename(&tmp, path)
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::page::Params;

    fn meta(key: &str, kind: PageKind) -> PageMeta {
        PageMeta {
            key: key.into(),
            route: "/blog/:slug".into(),
            params: Params::new(),
            generated_at_ms: 42,
            kind,
            tags: vec!["posts".into()],
        }
    }

    fn page_kind() -> PageKind {
        PageKind::Page {
            etag: "\"e\"".into(),
            bytes: 5,
        }
    }

    #[test]
    fn round_trip_through_disk() {
        let dir = tempfile::tempdir().unwrap();
        let store = FsStore::new(dir.path());
        assert!(!store.is_built_site());
        store
            .write(&meta("/blog/a", page_kind()), Some(b"<p>a</p>"))
            .unwrap();
        store
            .write(&meta("/blog/gone", PageKind::NotFound), None)
            .unwrap();
        assert!(store.is_built_site());
        assert_eq!(
            fs::read(dir.path().join("blog/a/index.html")).unwrap(),
            b"<p>a</p>"
        );

        let reopened = FsStore::new(dir.path());
        let mut index = reopened.load_index().unwrap();
        index.sort_by(|a, b| a.key.cmp(&b.key));
        assert_eq!(
            index,
            vec![
                meta("/blog/a", page_kind()),
                meta("/blog/gone", PageKind::NotFound)
            ]
        );
        assert_eq!(reopened.read_html("/blog/a").unwrap().unwrap(), b"<p>a</p>");
        // no temporary files are left behind
        let leftovers: Vec<_> = walk(dir.path())
            .into_iter()
            .filter(|p| p.to_string_lossy().ends_with(".tmp"))
            .collect();
        assert!(leftovers.is_empty(), "{leftovers:?}");
    }

    #[test]
    fn not_found_removes_the_html_and_remove_forgets_the_page() {
        let dir = tempfile::tempdir().unwrap();
        let store = FsStore::new(dir.path());
        store
            .write(&meta("/blog/a", page_kind()), Some(b"x"))
            .unwrap();
        store
            .write(&meta("/blog/a", PageKind::NotFound), None)
            .unwrap();
        assert!(!dir.path().join("blog/a/index.html").exists());
        assert_eq!(store.load_index().unwrap()[0].kind, PageKind::NotFound);
        store.remove("/blog/a").unwrap();
        assert!(store.load_index().unwrap().is_empty());
        assert!(!dir.path().join("blog/a").exists());
    }

    #[test]
    fn metadata_without_html_or_corrupt_is_ignored() {
        let dir = tempfile::tempdir().unwrap();
        let store = FsStore::new(dir.path());
        store
            .write(&meta("/blog/a", page_kind()), Some(b"x"))
            .unwrap();
        store
            .write(&meta("/blog/b", page_kind()), Some(b"y"))
            .unwrap();
        fs::remove_file(dir.path().join("blog/a/index.html")).unwrap();
        fs::create_dir_all(store.meta_dir().join("00")).unwrap();
        fs::write(store.meta_dir().join("00/garbage.json"), b"{not json").unwrap();
        let index = store.load_index().unwrap();
        assert_eq!(index.len(), 1);
        assert_eq!(index[0].key, "/blog/b");
    }

    fn walk(dir: &Path) -> Vec<PathBuf> {
        let mut out = Vec::new();
        for entry in fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                out.extend(walk(&path));
            } else {
                out.push(path);
            }
        }
        out
    }
}
