//! The default [`PageStore`]: a plain static export on disk plus one metadata index.
//!
//! ```text
//! <root>/blog/index.html          the page, servable by any static file server
//! <root>/blog/index.html.gz       its gzip and brotli variants (nginx `gzip_static` /
//! <root>/blog/index.html.br       `brotli_static` serve them as they are)
//! <root>/blog/hello/index.html    (and .gz, .br)
//! <root>.isr/index.sqlite         metadata of every page (key, route, time, etag, length, tags),
//!                                 beside the export, never inside it
//! ```
//! Each file of a body is written to a temporary file in its final folder and fsynced; the
//! compressed variants are renamed over the old ones first, the HTML last, then the folder is
//! fsynced, so a reader (or a crash) sees whole old or whole new files; only then is the index
//! row written. A crash in between leaves files the row does not describe: the HTML fails the
//! row's length or hash, a variant fails to decompress to the HTML, and the engine regenerates
//! the page instead of serving it. Temporary files a crash left behind are removed by
//! [`PageStore::sweep`].
//!
//! On Linux two fast paths are used: serving-thread reads of files the kernel holds
//! (`openat2`/`preadv2`, see `cached_read`) and one `syncfs` per file system at the end of a
//! build instead of an fsync per file. Elsewhere (macOS, Windows), and on Linux with
//! [`FsStore::portable`], every read goes to the blocking pool and a build's files are fsynced
//! as they are written (its index rows are still batched). Folders are fsynced after renames on
//! unix; Windows has no folder handle to sync (NTFS journals the rename itself).

#[cfg(target_os = "linux")]
use super::cached_read::read_file_cached;
use super::index::Index;
use super::{CommitStamp, Mark, PageKind, PageMeta, PageStore, StoreFuture, StoredBody};
use crate::encoding::{Encoding, Variants};
use crate::route::PageKey;
use bytes::Bytes;
use futures::stream::BoxStream;
use std::fs::{self, File};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

/// The folder inside the site root where sites written before the metadata moved out of the
/// export kept it; adopted (renamed to [`meta_dir_of`]) on first use.
pub const LEGACY_META_DIR: &str = ".isr";

/// What [`meta_dir_of`] appends to the site root's name.
pub const META_DIR_SUFFIX: &str = ".isr";

/// File name of the index inside the metadata folder.
const INDEX_FILE: &str = "index.sqlite";

/// The metadata folder of the site root `site_root`: beside it, never inside it, so that no
/// file server pointed at the export can serve the index (`target/site/blog` →
/// `target/site/blog.isr`).
///
/// ```
/// use std::path::Path;
/// assert_eq!(isr::store::meta_dir_of(Path::new("/srv/site")), Path::new("/srv/site.isr"));
/// assert_eq!(isr::store::meta_dir_of(Path::new("target/site/blog/")), Path::new("target/site/blog.isr"));
/// ```
pub fn meta_dir_of(site_root: &Path) -> PathBuf {
    // `.`, `..` or `/` name no folder of their own: use the folder they stand for.
    let named = match site_root.file_name() {
        Some(_) => site_root.to_path_buf(),
        None => fs::canonicalize(site_root).unwrap_or_else(|_| site_root.to_path_buf()),
    };
    let mut name = named
        .file_name()
        .map(|n| n.to_os_string())
        .unwrap_or_else(|| "site".into());
    name.push(META_DIR_SUFFIX);
    named.with_file_name(name)
}

/// Temporary files are stray when older than the store by at least this much.
const SWEEP_MARGIN: std::time::Duration = std::time::Duration::from_secs(2);

/// Rows per batch of [`PageStore::load_batches`].
const LOAD_BATCH: usize = 8192;

/// Suffix of temporary files (`.index.html.<random>.tmp`).
const TEMP_SUFFIX: &str = ".tmp";

/// Pages stored under a site root directory.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> std::io::Result<()> {
/// use isr::store::{FsStore, PageStore};
/// use std::sync::Arc;
/// let site = tempfile::tempdir()?;
/// let store = FsStore::new(site.path().join("blog"));
/// assert!(store.load().await?.is_empty());
/// # let routes = isr::__private::example_routes(&["/blog/:slug"]);
/// let engine = isr::Engine::builder(routes, Arc::new(store.clone())).open().await?;
/// engine.request("/blog/hello").await;
/// // A static export: the page is a file, its row is in the index beside the site root.
/// assert!(site.path().join("blog/blog/hello/index.html").is_file());
/// assert_eq!(store.load().await?[0].key, "/blog/hello");
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct FsStore {
    inner: Arc<Inner>,
}

struct Inner {
    root: PathBuf,
    /// The metadata folder ([`meta_dir_of`] the root).
    meta: PathBuf,
    /// Opened on first use (the root may not exist before the first write).
    index: Mutex<Option<Arc<Index>>>,
    deferred_sync: AtomicBool,
    /// Whether the Linux fast paths are used (see the module docs).
    fast_paths: bool,
    /// Temporary files older than this were left by an earlier process.
    opened_at: SystemTime,
    /// Keys stored under their own file name (static file routes, `/blog/feed.xml`).
    files: std::sync::OnceLock<std::collections::HashSet<String>>,
}

impl FsStore {
    /// A store rooted at `root` (created on first write), its metadata in
    /// [`meta_dir_of`] `root`.
    ///
    /// ```
    /// let store = isr::store::FsStore::new("/tmp/site");
    /// assert_eq!(store.root(), std::path::Path::new("/tmp/site"));
    /// assert_eq!(store.meta_dir(), std::path::Path::new("/tmp/site.isr"));
    /// ```
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Self::with_fast_paths(root.into(), cfg!(target_os = "linux"))
    }

    /// A store at `root` without the Linux fast paths: what [`FsStore::new`] makes on macOS
    /// and Windows (every read on the blocking pool, a build's files fsynced as they are
    /// written). On Linux, for testing those fallbacks.
    ///
    /// ```
    /// let store = isr::store::FsStore::portable("/tmp/site");
    /// assert!(!store.uses_fast_paths());
    /// assert_eq!(store.root(), std::path::Path::new("/tmp/site"));
    /// ```
    pub fn portable(root: impl Into<PathBuf>) -> Self {
        Self::with_fast_paths(root.into(), false)
    }

    fn with_fast_paths(root: PathBuf, fast_paths: bool) -> Self {
        FsStore {
            inner: Arc::new(Inner {
                meta: meta_dir_of(&root),
                root,
                index: Mutex::new(None),
                deferred_sync: AtomicBool::new(false),
                fast_paths,
                opened_at: SystemTime::now(),
                files: std::sync::OnceLock::new(),
            }),
        }
    }

    /// Whether the Linux fast paths are used (Linux, unless [`FsStore::portable`]).
    pub fn uses_fast_paths(&self) -> bool {
        self.inner.fast_paths
    }

    /// The site root.
    ///
    /// ```
    /// assert!(isr::store::FsStore::new("x").root().ends_with("x"));
    /// ```
    pub fn root(&self) -> &Path {
        &self.inner.root
    }

    /// The metadata folder (the page index, the client bundle's manifest).
    pub fn meta_dir(&self) -> &Path {
        &self.inner.meta
    }

    /// Whether `root` holds a site written by a build (its index exists, here or in the
    /// legacy place inside the root).
    ///
    /// ```
    /// assert!(!isr::store::FsStore::new("/nonexistent/site").is_built_site());
    /// ```
    pub fn is_built_site(&self) -> bool {
        self.inner.index_path().is_file() || self.inner.legacy_index_path().is_file()
    }

    /// Path of the HTML file of the page at `key`.
    ///
    /// ```
    /// let store = isr::store::FsStore::new("/srv");
    /// assert_eq!(store.html_path("/blog/hi"), std::path::Path::new("/srv/blog/hi/index.html"));
    /// assert_eq!(store.html_path("/"), std::path::Path::new("/srv/index.html"));
    /// use isr::store::PageStore;
    /// store.set_file_keys(&["/blog/feed.xml".to_string()]);
    /// assert_eq!(store.html_path("/blog/feed.xml"), std::path::Path::new("/srv/blog/feed.xml"));
    /// // A variant: in its page's folder, under the name of its query.
    /// assert_eq!(store.html_path("/blog?page=2&tag=a%20b"), std::path::Path::new("/srv/blog/%3Fpage=2&tag=a%2520b/index.html"));
    /// ```
    pub fn html_path(&self, key: &str) -> PathBuf {
        self.inner.html_path(key)
    }

    /// Runs blocking store work on tokio's blocking pool.
    fn blocking<T: Send + 'static>(
        &self,
        work: impl FnOnce(&Inner) -> io::Result<T> + Send + 'static,
    ) -> StoreFuture<T> {
        let inner = self.inner.clone();
        Box::pin(async move {
            tokio::task::spawn_blocking(move || work(&inner))
                .await
                .map_err(io::Error::other)?
        })
    }
}

impl Inner {
    fn index_path(&self) -> PathBuf {
        self.meta.join(INDEX_FILE)
    }

    fn legacy_index_path(&self) -> PathBuf {
        self.root.join(LEGACY_META_DIR).join(INDEX_FILE)
    }

    /// Moves a metadata folder left inside the root by an earlier isr to its place beside the
    /// root (once; nothing to do when there is none or the new place is taken).
    fn adopt_legacy_meta_dir(&self) -> io::Result<()> {
        let legacy = self.root.join(LEGACY_META_DIR);
        if !self.legacy_index_path().is_file() || self.meta.exists() {
            return Ok(());
        }
        fs::rename(&legacy, &self.meta)?;
        if let Some(parent) = self.meta.parent() {
            sync_dir(parent)?;
        }
        sync_dir(&self.root)?;
        tracing::info!(from = %legacy.display(), to = %self.meta.display(), "moved the page index out of the static export");
        Ok(())
    }

    /// The index, opened (and the metadata folder created) on first use. `create`: whether a
    /// missing index may be created (reads of a site that was never written find nothing).
    fn index(&self, create: bool) -> io::Result<Option<Arc<Index>>> {
        let mut slot = self.index.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(index) = slot.as_ref() {
            return Ok(Some(index.clone()));
        }
        self.adopt_legacy_meta_dir()?;
        if !create && !self.index_path().is_file() {
            return Ok(None);
        }
        fs::create_dir_all(&self.meta)?;
        let index = Arc::new(Index::open(&self.index_path())?);
        index.set_deferred(self.deferred_sync.load(Ordering::Relaxed))?;
        *slot = Some(index.clone());
        Ok(Some(index))
    }

    fn writable_index(&self) -> io::Result<Arc<Index>> {
        self.index(true)?
            .ok_or_else(|| io::Error::other("page index could not be created"))
    }

    fn html_path(&self, key: &str) -> PathBuf {
        // Sized once: pushing segments onto a copy of the root would grow it a few times.
        let extra = key.len() + crate::route::PAGE_FILE.len() + 1;
        let mut path = PathBuf::with_capacity(self.root.as_os_str().len() + extra);
        path.push(&self.root);
        // Keys are `PageKey`s: their segments cannot be `..`, start with `.` or hold `/` or
        // `?`. A variant (`/blog?page=2`) lives in a folder of its page's folder named after
        // its query, `%3Fpage=2` (the name of `?page=2`): no page's folder has that name.
        let (page, query) = match key.split_once('?') {
            Some((page, query)) => (page, Some(query)),
            None => (key, None),
        };
        for segment in page.split('/').filter(|s| !s.is_empty()) {
            path.push(file_name_of(segment).as_ref());
        }
        if let Some(query) = query {
            path.push(file_name_of(&format!("?{query}")).as_ref());
            path.push(crate::route::PAGE_FILE);
        } else if !self.files.get().is_some_and(|files| files.contains(key)) {
            path.push(crate::route::PAGE_FILE);
        }
        path
    }

    /// Whether a write of `durability` is made durable now.
    fn durable_now(&self, durability: Durability) -> bool {
        durability == Durability::Now || !self.deferred_sync.load(Ordering::Relaxed)
    }

    /// Whether a write of `durability` fsyncs its files now: also a deferred one without the
    /// fast paths (no `syncfs` to make them durable at the end).
    fn sync_files_now(&self, durability: Durability) -> bool {
        self.durable_now(durability) || !self.fast_paths
    }

    /// Removes temporary files older than this store (left by a crash), except under `.isr`.
    fn sweep(&self) -> io::Result<usize> {
        let mut removed = 0;
        let mut folders = vec![self.root.clone()];
        while let Some(folder) = folders.pop() {
            let entries = match fs::read_dir(&folder) {
                Ok(entries) => entries,
                Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
                Err(e) => return Err(e),
            };
            for entry in entries {
                let entry = entry?;
                let name = entry.file_name();
                let name = name.to_string_lossy();
                let file_type = entry.file_type()?;
                if file_type.is_dir() {
                    if folder != self.root || name != LEGACY_META_DIR {
                        folders.push(entry.path());
                    }
                } else if name.starts_with('.') && name.ends_with(TEMP_SUFFIX) {
                    // File times are coarse (a clock tick behind): leave a margin so that a file
                    // this process is writing right now is never taken for a stray one.
                    let before = self.opened_at - SWEEP_MARGIN;
                    let old = entry.metadata()?.modified().is_ok_and(|m| m < before);
                    if old && fs::remove_file(entry.path()).is_ok() {
                        removed += 1;
                    }
                }
            }
        }
        Ok(removed)
    }
}

/// The file (or folder) name of a key segment, valid on every platform isr builds for. A
/// segment is its own name, so the export stays servable by any file server, unless Windows
/// would refuse it: then `%`, the characters Windows forbids in names (`< > : " | ? *` and
/// `\`), a trailing `.` or space, and the first letter of a name Windows reserves (`con`,
/// `prn`, `aux`, `nul`, `com1`–`com9`, `lpt1`–`lpt9`, with or without an extension, in any
/// case) are percent-encoded. Every `%` in an encoded name starts an escape, so two segments
/// never share a name.
///
/// ```
/// use isr::store::file_name_of;
/// assert_eq!(file_name_of("hello-world"), "hello-world");
/// assert_eq!(file_name_of("a:b"), "a%3Ab");
/// assert_eq!(file_name_of("what?"), "what%3F");
/// assert_eq!(file_name_of("50%"), "50%25");
/// assert_eq!(file_name_of("con"), "%63on");
/// assert_eq!(file_name_of("Com1.txt"), "%43om1.txt");
/// assert_eq!(file_name_of("console"), "console");
/// assert_eq!(file_name_of("end."), "end%2E");
/// assert_eq!(file_name_of("été"), "été");
/// ```
pub fn file_name_of(segment: &str) -> std::borrow::Cow<'_, str> {
    const FORBIDDEN: &[char] = &['%', '<', '>', ':', '"', '|', '?', '*', '\\'];
    let reserved = is_reserved_name(segment);
    let trailing = segment.ends_with(['.', ' ']);
    if !reserved && !trailing && !segment.contains(FORBIDDEN) {
        return std::borrow::Cow::Borrowed(segment);
    }
    let last = segment.char_indices().next_back().map_or(0, |(i, _)| i);
    let mut name = String::with_capacity(segment.len() + 8);
    for (i, c) in segment.char_indices() {
        let escape = FORBIDDEN.contains(&c) || (reserved && i == 0) || (trailing && i == last);
        if escape {
            let mut utf8 = [0u8; 4];
            for byte in c.encode_utf8(&mut utf8).bytes() {
                name.push_str(&format!("%{byte:02X}"));
            }
        } else {
            name.push(c);
        }
    }
    std::borrow::Cow::Owned(name)
}

/// Whether Windows reserves `segment` as a device name (its part before the first dot, with
/// trailing spaces, in any case).
fn is_reserved_name(segment: &str) -> bool {
    let stem = segment
        .split('.')
        .next()
        .unwrap_or("")
        .trim_end_matches(' ');
    let upper = stem.to_ascii_uppercase();
    match upper.as_str() {
        "CON" | "PRN" | "AUX" | "NUL" => true,
        _ => {
            let (Some(prefix), Some(digit)) = (upper.get(..3), upper.get(3..)) else {
                return false;
            };
            matches!(prefix, "COM" | "LPT")
                && matches!(
                    digit,
                    "1" | "2" | "3" | "4" | "5" | "6" | "7" | "8" | "9" | "¹" | "²" | "³"
                )
        }
    }
}

/// One `syncfs` per file system holding one of `folders`: every file and directory entry a
/// build wrote is flushed (a second one when the metadata folder is on another file system,
/// e.g. the root is a mount).
#[cfg(target_os = "linux")]
fn syncfs_of(folders: &[&Path]) -> io::Result<()> {
    use std::os::unix::fs::MetadataExt;
    let mut synced = Vec::with_capacity(folders.len());
    for folder in folders {
        let file = match File::open(folder) {
            Ok(file) => file,
            Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
            Err(e) => return Err(e),
        };
        let device = file.metadata()?.dev();
        if !synced.contains(&device) {
            rustix::fs::syncfs(&file).map_err(io::Error::from)?;
            synced.push(device);
        }
    }
    Ok(())
}

/// Never called: only Linux stores use their fast paths.
#[cfg(not(target_os = "linux"))]
fn syncfs_of(_folders: &[&Path]) -> io::Result<()> {
    Ok(())
}

/// Reads without waiting exist only on Linux: elsewhere every read "would block" and goes to
/// the blocking pool (never called: only Linux stores use their fast paths).
#[cfg(not(target_os = "linux"))]
fn read_file_cached(
    _path: &Path,
    _stamp: Option<CommitStamp>,
) -> io::Result<Option<(Bytes, bool)>> {
    Err(io::ErrorKind::WouldBlock.into())
}

/// Makes a rename or a file creation in `dir` durable: fsync of the folder on unix. Windows
/// opens no folder as a file (NTFS journals the rename itself).
fn sync_dir(dir: &Path) -> io::Result<()> {
    #[cfg(unix)]
    File::open(dir)?.sync_all()?;
    #[cfg(not(unix))]
    let _ = dir;
    Ok(())
}

/// Whether a write may leave its durability to a later [`PageStore::sync`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Durability {
    /// On disk when the write returns (every write but a build's).
    Now,
    /// Deferred while the store defers durability (a build's writes).
    Deferrable,
}

impl FsStore {
    /// Files, then the index row; `durability` says whether both are synced now.
    fn write(
        &self,
        key: &PageKey,
        meta: PageMeta,
        body: Option<Variants>,
        durability: Durability,
    ) -> StoreFuture<()> {
        let key = key.clone();
        self.blocking(move |inner| {
            let html = inner.html_path(key.as_str());
            let durable = inner.durable_now(durability);
            match (body, &meta.kind) {
                (Some(body), PageKind::Page { etag, .. }) => {
                    let stamp = CommitStamp::new(meta.generated_at_ms, *etag);
                    let fsync = inner.sync_files_now(durability);
                    write_page_files(&inner.root, &html, &body, stamp, fsync)?
                }
                _ => remove_page_files(&html)?,
            }
            let index = inner.writable_index()?;
            if durable {
                index.put_durable(meta)
            } else {
                index.put(meta)
            }
        })
    }
}

impl PageStore for FsStore {
    fn load(&self) -> StoreFuture<Vec<PageMeta>> {
        self.blocking(|inner| match inner.index(false)? {
            Some(index) => index.load(),
            None => Ok(Vec::new()),
        })
    }

    fn load_batches(&self) -> BoxStream<'static, io::Result<Vec<PageMeta>>> {
        let (sender, receiver) = tokio::sync::mpsc::channel::<io::Result<Vec<PageMeta>>>(4);
        let inner = self.inner.clone();
        tokio::task::spawn_blocking(move || {
            let index = match inner.index(false) {
                Ok(Some(index)) => index,
                Ok(None) => return,
                Err(error) => {
                    let _ = sender.blocking_send(Err(error));
                    return;
                }
            };
            let sent =
                index.load_batches(LOAD_BATCH, |batch| sender.blocking_send(Ok(batch)).is_ok());
            if let Err(error) = sent {
                let _ = sender.blocking_send(Err(error));
            }
        });
        Box::pin(futures::stream::unfold(
            receiver,
            |mut receiver| async move { receiver.recv().await.map(|batch| (batch, receiver)) },
        ))
    }

    fn meta(&self, key: &PageKey) -> StoreFuture<Option<PageMeta>> {
        let key = key.clone();
        self.blocking(move |inner| match inner.index(false)? {
            Some(index) => index.get(key.as_str()),
            None => Ok(None),
        })
    }

    fn set_file_keys(&self, keys: &[String]) {
        let _ = self.inner.files.set(keys.iter().cloned().collect());
    }

    fn body(&self, key: &PageKey) -> StoreFuture<Option<Variants>> {
        let key = key.clone();
        self.blocking(move |inner| {
            let html = inner.html_path(key.as_str());
            Ok(read_page_files(&html, None, None, read_file)?.map(|stored| stored.variants))
        })
    }

    /// Read on the calling thread when the kernel holds the files' paths and bytes (no wait for
    /// the disk: `cached_read`), else on the blocking pool.
    fn committed_body(
        &self,
        key: &PageKey,
        stamp: CommitStamp,
        only: Option<Encoding>,
    ) -> StoreFuture<Option<StoredBody>> {
        let html = self.inner.html_path(key.as_str());
        if !self.inner.fast_paths {
            return self.blocking(move |_| read_page_files(&html, Some(stamp), only, read_file));
        }
        match read_page_files(&html, Some(stamp), only, read_file_cached) {
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                self.blocking(move |_| read_page_files(&html, Some(stamp), only, read_file))
            }
            read => Box::pin(std::future::ready(read)),
        }
    }

    fn put(&self, key: &PageKey, meta: PageMeta, body: Option<Variants>) -> StoreFuture<()> {
        self.write(key, meta, body, Durability::Now)
    }

    fn put_deferred(
        &self,
        key: &PageKey,
        meta: PageMeta,
        body: Option<Variants>,
    ) -> StoreFuture<()> {
        self.write(key, meta, body, Durability::Deferrable)
    }

    fn remove(&self, key: &PageKey) -> StoreFuture<()> {
        let key = key.clone();
        self.blocking(move |inner| {
            if let Some(index) = inner.index(false)? {
                index.remove(key.as_str())?;
            }
            let html = inner.html_path(key.as_str());
            remove_page_files(&html)?;
            // Tidy empty page folders up to (not including) the root; a folder that still holds
            // child pages stays.
            let mut dir = html.parent();
            while let Some(d) = dir {
                if d == inner.root || fs::remove_dir(d).is_err() {
                    break;
                }
                dir = d.parent();
            }
            Ok(())
        })
    }

    fn set_marks(&self, marks: Vec<(PageKey, Option<Mark>)>) -> StoreFuture<()> {
        let marks: Vec<(String, Option<Mark>)> = marks
            .into_iter()
            .map(|(key, mark)| (key.to_string(), mark))
            .collect();
        self.blocking(move |inner| match inner.index(false)? {
            Some(index) => index.set_marks(marks),
            None => Ok(()),
        })
    }

    fn keys_with_tag(&self, tag: &str) -> StoreFuture<Vec<String>> {
        let tag = tag.to_string();
        self.blocking(move |inner| match inner.index(false)? {
            Some(index) => index.keys_with_tag(&tag),
            None => Ok(Vec::new()),
        })
    }

    fn sync(&self) -> StoreFuture<()> {
        self.blocking(|inner| {
            if let Some(index) = inner.index(false)? {
                index.sync()?;
            }
            if inner.fast_paths {
                syncfs_of(&[&inner.root, &inner.meta])?;
            }
            // Without the fast paths every file was fsynced when written.
            Ok(())
        })
    }

    fn defer_sync(&self, deferred: bool) {
        self.inner.deferred_sync.store(deferred, Ordering::Relaxed);
        let opened = self
            .inner
            .index
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        if let Some(index) = opened {
            if let Err(error) = index.set_deferred(deferred) {
                tracing::warn!(%error, "could not change the page index's durability mode");
            }
        }
    }

    fn sweep(&self) -> StoreFuture<usize> {
        self.blocking(|inner| inner.sweep())
    }
}

fn remove_if_exists(path: &Path) -> io::Result<()> {
    match fs::remove_file(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e),
    }
}

/// Where the static export keeps `encoding`'s variant of the page whose HTML is at `html`.
fn variant_path(html: &Path, encoding: Encoding) -> PathBuf {
    let mut name = html.as_os_str().to_owned();
    name.push(encoding.file_suffix());
    PathBuf::from(name)
}

/// The files of the page whose HTML is at `html` (`None` if the HTML does not exist), and
/// whether every one of them has the modification time the commit `stamp` gives its files
/// (never, without a stamp). With `only`, the HTML and that encoding's variant, or every file
/// when that variant does not exist (so that a page read for an encoding it lacks is read once
/// in full, not again on every request).
fn read_page_files(
    html: &Path,
    stamp: Option<CommitStamp>,
    only: Option<Encoding>,
    read_file: impl Fn(&Path, Option<CommitStamp>) -> io::Result<Option<(Bytes, bool)>>,
) -> io::Result<Option<StoredBody>> {
    let Some((identity, mut committed)) = read_file(html, stamp)? else {
        return Ok(None);
    };
    let mut variant = |encoding| -> io::Result<Option<Bytes>> {
        Ok(
            read_file(&variant_path(html, encoding), stamp)?.map(|(bytes, stamped)| {
                committed &= stamped;
                bytes
            }),
        )
    };
    let mut variants = Variants {
        identity,
        gzip: None,
        brotli: None,
    };
    let partial = match only {
        Some(Encoding::Identity) => true,
        Some(Encoding::Gzip) => {
            variants.gzip = variant(Encoding::Gzip)?;
            variants.gzip.is_some()
        }
        Some(Encoding::Brotli) => {
            variants.brotli = variant(Encoding::Brotli)?;
            variants.brotli.is_some()
        }
        None => false,
    };
    if !partial {
        if variants.gzip.is_none() {
            variants.gzip = variant(Encoding::Gzip)?;
        }
        if variants.brotli.is_none() {
            variants.brotli = variant(Encoding::Brotli)?;
        }
    }
    Ok(Some(StoredBody {
        variants,
        committed,
        partial,
    }))
}

/// The bytes of the file at `path` (if it exists) and whether its modification time is the one
/// the commit `stamp` gives its files (read from the open file, so both describe one file).
fn read_file(path: &Path, stamp: Option<CommitStamp>) -> io::Result<Option<(Bytes, bool)>> {
    let mut file = match File::open(path) {
        Ok(file) => file,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e),
    };
    let metadata = file.metadata()?;
    let stamped = stamp.is_some_and(|stamp| metadata.modified().is_ok_and(|t| stamp.wrote(t)));
    let mut bytes = Vec::with_capacity(metadata.len() as usize);
    io::Read::read_to_end(&mut file, &mut bytes)?;
    Ok(Some((Bytes::from(bytes), stamped)))
}

/// Removes a page's HTML and its variants.
fn remove_page_files(html: &Path) -> io::Result<()> {
    remove_if_exists(html)?;
    remove_if_exists(&variant_path(html, Encoding::Gzip))?;
    remove_if_exists(&variant_path(html, Encoding::Brotli))
}

/// Writes a page's files at `html` (and beside it, its variants) via temporary files in the same
/// directory and renames, the HTML last; a variant not given is removed. With `fsync`, each
/// file and then the directory (and every directory created for it) are fsynced, so the new
/// names survive a power loss.
fn write_page_files(
    root: &Path,
    html: &Path,
    body: &Variants,
    stamp: CommitStamp,
    fsync: bool,
) -> io::Result<()> {
    let dir = html
        .parent()
        .ok_or_else(|| io::Error::other("page path has no parent directory"))?;
    let created = create_dirs(root, dir)?;
    // Variants first, so that new HTML never sits beside old variants without a row saying so.
    let mut files: Vec<(PathBuf, &Bytes)> = Vec::with_capacity(3);
    for encoding in [Encoding::Gzip, Encoding::Brotli] {
        let path = variant_path(html, encoding);
        match body.get(encoding) {
            Some(bytes) => files.push((path, bytes)),
            None => remove_if_exists(&path)?,
        }
    }
    files.push((html.to_path_buf(), &body.identity));
    let mut temporaries: Vec<(PathBuf, &Path)> = Vec::with_capacity(files.len());
    let result = (|| {
        for (path, bytes) in &files {
            let file_name = path.file_name().and_then(|n| n.to_str()).unwrap_or("page");
            let tmp = dir.join(format!(
                ".{file_name}.{:016x}{TEMP_SUFFIX}",
                fastrand::u64(..)
            ));
            temporaries.push((tmp.clone(), path));
            let mut file = File::create(&tmp)?;
            file.write_all(bytes)?;
            // A file system that cannot keep the time only loses the fast path: the file is
            // then checked by its content when read.
            let _ = file.set_modified(stamp.file_time());
            if fsync {
                file.sync_all()?;
            }
        }
        for (tmp, path) in &temporaries {
            fs::rename(tmp, path)?;
        }
        if fsync {
            sync_dir(dir)?;
            for created in &created {
                if let Some(parent) = created.parent() {
                    sync_dir(parent)?;
                }
            }
        }
        Ok(())
    })();
    if result.is_err() {
        for (tmp, _) in &temporaries {
            let _ = fs::remove_file(tmp);
        }
    }
    result
}

/// Creates `dir` and its missing ancestors below `root`; returns the folders it created.
fn create_dirs(root: &Path, dir: &Path) -> io::Result<Vec<PathBuf>> {
    if dir.is_dir() {
        return Ok(Vec::new());
    }
    let mut missing = Vec::new();
    let mut current = Some(dir);
    while let Some(d) = current {
        if d.is_dir() || d == root.parent().unwrap_or(root) {
            break;
        }
        missing.push(d.to_path_buf());
        current = d.parent();
    }
    fs::create_dir_all(dir)?;
    Ok(missing)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::Etag;

    fn key(path: &str) -> PageKey {
        crate::route::test_key(path)
    }

    fn meta(key: &str, kind: PageKind) -> PageMeta {
        PageMeta {
            key: key.into(),
            route: "/blog/:slug".into(),
            generated_at_ms: 42,
            generation: 7,
            kind,
            tags: vec!["posts".into(), format!("post:{key}")],
            valid_until_ms: None,
            mark: None,
        }
    }

    fn page_kind(body: &[u8]) -> PageKind {
        PageKind::Page {
            etag: Etag::of(body),
            bytes: body.len() as u64,
        }
    }

    /// A store at `root`, with the Linux fast paths or as on other platforms.
    fn store_at(root: PathBuf, portable: bool) -> FsStore {
        if portable {
            FsStore::portable(root)
        } else {
            FsStore::new(root)
        }
    }

    #[tokio::test]
    async fn round_trip_through_disk() {
        round_trip_through_disk_with(false).await;
    }

    /// The fallbacks of macOS and Windows (reads on the blocking pool), run here.
    #[tokio::test]
    async fn round_trip_through_disk_without_the_linux_fast_paths() {
        round_trip_through_disk_with(true).await;
    }

    async fn round_trip_through_disk_with(portable: bool) {
        let dir = tempfile::tempdir().unwrap();
        let store = store_at(dir.path().join("site"), portable);
        assert!(!store.is_built_site());
        assert!(store.load().await.unwrap().is_empty());
        store
            .put(
                &key("/blog/a"),
                meta("/blog/a", page_kind(b"<p>a</p>")),
                Some(Variants::compress(Bytes::from_static(b"<p>a</p>"))),
            )
            .await
            .unwrap();
        store
            .put(
                &key("/blog/gone"),
                meta("/blog/gone", PageKind::NotFound),
                None,
            )
            .await
            .unwrap();
        assert!(store.is_built_site());
        assert_eq!(
            fs::read(dir.path().join("site/blog/a/index.html")).unwrap(),
            b"<p>a</p>"
        );
        // The static export has the variants beside the HTML, under the names nginx looks for.
        let mut gunzipped = String::new();
        let gz = fs::read(dir.path().join("site/blog/a/index.html.gz")).unwrap();
        std::io::Read::read_to_string(&mut flate2::read::GzDecoder::new(&gz[..]), &mut gunzipped)
            .unwrap();
        assert_eq!(gunzipped, "<p>a</p>");
        assert!(dir.path().join("site/blog/a/index.html.br").is_file());

        let reopened = store_at(dir.path().join("site"), portable);
        let mut index = reopened.load().await.unwrap();
        index.sort_by(|a, b| a.key.cmp(&b.key));
        assert_eq!(
            index,
            vec![
                meta("/blog/a", page_kind(b"<p>a</p>")),
                meta("/blog/gone", PageKind::NotFound)
            ]
        );
        assert_eq!(
            reopened.meta(&key("/blog/a")).await.unwrap(),
            Some(meta("/blog/a", page_kind(b"<p>a</p>")))
        );
        // Read back with the row's commit stamp, the files are the committed ones; with another
        // stamp, or once a file is rewritten (same bytes, a new time), they are not.
        let row = meta("/blog/a", page_kind(b"<p>a</p>"));
        let PageKind::Page { etag, .. } = row.kind else {
            unreachable!()
        };
        let stamp = CommitStamp::new(row.generated_at_ms, etag);
        let read = |stamp| reopened.committed_body(&key("/blog/a"), stamp, None);
        let stored = read(stamp).await.unwrap().unwrap();
        assert!(stored.committed && !stored.partial);
        assert_eq!(&stored.variants.identity[..], b"<p>a</p>");
        assert!(stored.variants.brotli.is_some() && stored.variants.gzip.is_some());
        // Asked for one encoding: the HTML and that variant only.
        let only = |encoding| reopened.committed_body(&key("/blog/a"), stamp, Some(encoding));
        let html_only = only(Encoding::Identity).await.unwrap().unwrap();
        assert!(html_only.committed && html_only.partial);
        assert_eq!(&html_only.variants.identity[..], b"<p>a</p>");
        assert!(html_only.variants.gzip.is_none() && html_only.variants.brotli.is_none());
        let br_only = only(Encoding::Brotli).await.unwrap().unwrap();
        assert!(br_only.partial && br_only.variants.brotli == stored.variants.brotli);
        assert!(br_only.variants.gzip.is_none());
        let other = CommitStamp::new(row.generated_at_ms + 1, etag);
        assert!(!read(other).await.unwrap().unwrap().committed);
        let br = dir.path().join("site/blog/a/index.html.br");
        fs::write(&br, fs::read(&br).unwrap()).unwrap();
        let stored = read(stamp).await.unwrap().unwrap();
        assert!(
            !stored.committed,
            "a rewritten variant is not the committed file"
        );
        assert_eq!(stored.variants.clone().verified(), Ok(stored.variants));

        let body = reopened.body(&key("/blog/a")).await.unwrap().unwrap();
        assert_eq!(&body.identity[..], b"<p>a</p>");
        assert_eq!(
            body.verified(),
            Ok(Variants::compress(Bytes::from_static(b"<p>a</p>")))
        );
        assert_eq!(
            reopened.keys_with_tag("posts").await.unwrap(),
            ["/blog/a", "/blog/gone"]
        );
        assert_eq!(
            reopened.keys_with_tag("post:/blog/a").await.unwrap(),
            ["/blog/a"]
        );
        // no temporary files are left behind
        let leftovers: Vec<_> = walk(dir.path())
            .into_iter()
            .filter(|p| p.to_string_lossy().ends_with(".tmp"))
            .collect();
        assert!(leftovers.is_empty(), "{leftovers:?}");
    }

    /// Keys Windows would refuse as file names round-trip through the store under escaped
    /// names, and no two keys share a file.
    #[tokio::test]
    async fn keys_windows_refuses_as_file_names_are_stored_under_escaped_names() {
        let dir = tempfile::tempdir().unwrap();
        let store = FsStore::new(dir.path().join("site"));
        let keys = [
            "/blog/con",
            "/blog/CON.txt",
            "/blog/a:b",
            "/blog/a%3Ab",
            "/blog?page=2&tag=a%3Fb",
            "/blog/end.",
            "/blog/end%2E",
            "/blog/x<y>z",
            "/blog/pipe|star*",
            "/blog/quote\"",
            "/blog/lpt9",
            "/blog/com¹",
            "/blog/éé",
            "/blog/trailing ",
        ];
        for k in keys {
            let html = format!("<p>{k}</p>");
            store
                .put(
                    &key(k),
                    meta(k, page_kind(html.as_bytes())),
                    Some(Variants::identity_only(Bytes::from(html))),
                )
                .await
                .unwrap();
        }
        for k in keys {
            let body = store.body(&key(k)).await.unwrap().unwrap();
            assert_eq!(body.identity, format!("<p>{k}</p>").as_bytes(), "{k}");
        }
        let windows_forbids = |name: &str| {
            name.contains(['<', '>', ':', '"', '|', '?', '*', '\\'])
                || name.ends_with(['.', ' '])
                || is_reserved_name(name)
        };
        let names: Vec<String> = walk(&dir.path().join("site"))
            .iter()
            .flat_map(|p| {
                p.strip_prefix(dir.path().join("site"))
                    .unwrap()
                    .iter()
                    .map(|c| c.to_string_lossy().into_owned())
                    .collect::<Vec<_>>()
            })
            .collect();
        assert!(names.iter().all(|n| !windows_forbids(n)), "{names:?}");
        let folders: std::collections::HashSet<String> = keys
            .iter()
            .map(|k| file_name_of(k.trim_start_matches("/blog/")).into_owned())
            .collect();
        assert_eq!(folders.len(), keys.len(), "one name per key");
    }

    #[tokio::test]
    async fn retagging_replaces_the_tag_rows() {
        let dir = tempfile::tempdir().unwrap();
        let store = FsStore::new(dir.path().join("site"));
        let mut m = meta("/blog/a", PageKind::NotFound);
        store.put(&key("/blog/a"), m.clone(), None).await.unwrap();
        m.tags = vec!["other".into()];
        store.put(&key("/blog/a"), m, None).await.unwrap();
        assert!(store.keys_with_tag("posts").await.unwrap().is_empty());
        assert_eq!(store.keys_with_tag("other").await.unwrap(), ["/blog/a"]);
    }

    #[tokio::test]
    async fn asked_for_an_encoding_it_lacks_a_page_is_read_in_full() {
        let dir = tempfile::tempdir().unwrap();
        let store = FsStore::new(dir.path().join("site"));
        let mut body = Variants::compress(Bytes::from_static(b"<p>no br</p>"));
        body.brotli = None;
        let row = meta("/blog/a", page_kind(b"<p>no br</p>"));
        store
            .put(&key("/blog/a"), row.clone(), Some(body.clone()))
            .await
            .unwrap();
        let PageKind::Page { etag, .. } = row.kind else {
            unreachable!()
        };
        let stamp = CommitStamp::new(row.generated_at_ms, etag);
        let stored = store
            .committed_body(&key("/blog/a"), stamp, Some(Encoding::Brotli))
            .await
            .unwrap()
            .unwrap();
        assert!(stored.committed && !stored.partial);
        assert_eq!(
            stored.variants, body,
            "the HTML and the gzip variant, no brotli"
        );
    }

    #[tokio::test]
    async fn not_found_removes_the_html_and_remove_forgets_the_page() {
        let dir = tempfile::tempdir().unwrap();
        let store = FsStore::new(dir.path().join("site"));
        store
            .put(
                &key("/blog/a"),
                meta("/blog/a", page_kind(b"x")),
                Some(Variants::compress(Bytes::from_static(b"x"))),
            )
            .await
            .unwrap();
        store
            .put(&key("/blog/a"), meta("/blog/a", PageKind::NotFound), None)
            .await
            .unwrap();
        assert!(!dir.path().join("site/blog/a/index.html").exists());
        assert!(!dir.path().join("site/blog/a/index.html.gz").exists());
        assert!(!dir.path().join("site/blog/a/index.html.br").exists());
        assert_eq!(store.load().await.unwrap()[0].kind, PageKind::NotFound);
        store.remove(&key("/blog/a")).await.unwrap();
        assert!(store.load().await.unwrap().is_empty());
        assert!(store.keys_with_tag("posts").await.unwrap().is_empty());
        assert!(!dir.path().join("site/blog/a").exists());
    }

    #[tokio::test]
    async fn deferred_writes_are_batched_and_made_durable_by_sync() {
        for portable in [false, true] {
            deferred_writes_are_made_durable_by_sync(portable).await;
        }
    }

    async fn deferred_writes_are_made_durable_by_sync(portable: bool) {
        let dir = tempfile::tempdir().unwrap();
        let store = store_at(dir.path().join("site"), portable);
        store.defer_sync(true);
        for i in 0..2_500 {
            let k = format!("/blog/p{i}");
            store
                .put_deferred(&key(&k), meta(&k, PageKind::NotFound), None)
                .await
                .unwrap();
        }
        store.defer_sync(false);
        store.sync().await.unwrap();
        assert_eq!(
            FsStore::new(dir.path().join("site"))
                .load()
                .await
                .unwrap()
                .len(),
            2_500
        );
    }

    /// A build defers its writes' durability (rows buffered, `synchronous = OFF`); a page
    /// regenerated for a request meanwhile (a background rebuild) must still be on disk when
    /// its write returns: before, it sat in the build's buffer with the build's rows.
    #[tokio::test]
    async fn a_durable_write_lands_at_once_while_a_build_defers() {
        let dir = tempfile::tempdir().unwrap();
        let site = dir.path().join("site");
        let store = FsStore::new(&site);
        store
            .put(
                &key("/blog/first"),
                meta("/blog/first", PageKind::NotFound),
                None,
            )
            .await
            .unwrap(); // the index exists
        store.defer_sync(true);
        for i in 0..10 {
            let k = format!("/blog/built{i}");
            store
                .put_deferred(&key(&k), meta(&k, PageKind::NotFound), None)
                .await
                .unwrap();
        }
        let rows = |sql: &str| -> i64 {
            let index = rusqlite::Connection::open(meta_dir_of(&site).join(INDEX_FILE)).unwrap();
            index.query_row(sql, [], |row| row.get(0)).unwrap()
        };
        assert_eq!(
            rows("SELECT count(*) FROM pages WHERE key LIKE '/blog/built%'"),
            0,
            "the build's rows wait for its sync"
        );
        store
            .put(
                &key("/blog/live"),
                meta("/blog/live", PageKind::NotFound),
                None,
            )
            .await
            .unwrap();
        assert_eq!(
            rows("SELECT count(*) FROM pages WHERE key = '/blog/live'"),
            1,
            "a request's page is written at once"
        );
        assert_eq!(
            rows("SELECT count(*) FROM pages WHERE key LIKE '/blog/built%'"),
            10,
            "written in order: the build's earlier rows with it"
        );
        store.defer_sync(false);
    }

    #[tokio::test]
    async fn sweep_removes_only_temporary_files_left_by_an_earlier_process() {
        let dir = tempfile::tempdir().unwrap();
        fs::create_dir_all(dir.path().join("site/blog/a")).unwrap();
        let stray = dir
            .path()
            .join("site/blog/a/.index.html.0123456789abcdef.tmp");
        fs::write(&stray, b"half a page").unwrap();
        fs::write(dir.path().join("site/blog/a/index.html"), b"page").unwrap();
        let old = SystemTime::now() - std::time::Duration::from_secs(60);
        File::options()
            .write(true)
            .open(&stray)
            .unwrap()
            .set_modified(old)
            .unwrap();
        let store = FsStore::new(dir.path().join("site"));
        let fresh = dir
            .path()
            .join("site/blog/.index.html.fedcba9876543210.tmp");
        fs::write(&fresh, b"being written now").unwrap();
        assert_eq!(store.sweep().await.unwrap(), 1);
        assert!(!stray.exists());
        assert!(
            fresh.exists(),
            "a temp file of this process may be renamed any moment"
        );
        assert!(dir.path().join("site/blog/a/index.html").exists());
    }

    #[tokio::test]
    async fn metadata_lives_beside_the_export_and_a_legacy_folder_is_adopted() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("site");
        let store = FsStore::new(&root);
        let body = Variants::compress(Bytes::from_static(b"<p>a</p>"));
        let stored = meta("/blog/a", page_kind(b"<p>a</p>"));
        store
            .put(&key("/blog/a"), stored.clone(), Some(body))
            .await
            .unwrap();
        // A file server pointed at the root finds pages and nothing else.
        let mut inside: Vec<String> = walk(&root)
            .iter()
            .map(|p| p.strip_prefix(&root).unwrap().display().to_string())
            .collect();
        inside.sort();
        assert_eq!(
            inside,
            [
                "blog/a/index.html",
                "blog/a/index.html.br",
                "blog/a/index.html.gz"
            ]
        );
        assert!(dir.path().join("site.isr/index.sqlite").is_file());
        drop(store);

        // A site written when the index lived inside the root: moved out on first use.
        fs::rename(dir.path().join("site.isr"), root.join(LEGACY_META_DIR)).unwrap();
        let reopened = FsStore::new(&root);
        assert!(reopened.is_built_site());
        assert_eq!(reopened.load().await.unwrap(), vec![stored]);
        assert!(!root.join(LEGACY_META_DIR).exists());
        assert!(dir.path().join("site.isr/index.sqlite").is_file());
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
