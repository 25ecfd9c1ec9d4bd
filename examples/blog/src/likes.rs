//! Likes per post, kept in one JSON file (`BLOG_LIKES_FILE`; default `blog-likes.json` beside
//! the server binary) and changed only through the `like_post` server function.
//!
//! Only published posts can be liked (the server function checks), so the file holds at most
//! one count per post. Each like rewrites the file through a temporary file and a rename: a
//! crash leaves the old counts or the new ones, never half a file.

use anyhow::Context as _;
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use tokio::sync::Mutex;

/// Where the counts are kept.
pub const LIKES_FILE_ENV: &str = "BLOG_LIKES_FILE";

/// The likes of every post.
///
/// Shown as text (compiled as a doc test in the workspace it would meet a second build of
/// tokio); the same steps run as `likes::tests::counts_are_kept_in_the_file`:
///
/// ```text
/// let likes = blog::likes::Likes::open(dir.path().join("likes.json"))?;
/// assert_eq!(likes.add("hello").await?, 1);
/// let reopened = blog::likes::Likes::open(dir.path().join("likes.json"))?;
/// assert_eq!(reopened.get("hello").await, 1);
/// ```
#[derive(Clone, Debug)]
pub struct Likes {
    file: PathBuf,
    counts: Arc<Mutex<BTreeMap<String, u64>>>,
}

impl Likes {
    /// The counts in `BLOG_LIKES_FILE`, else in `blog-likes.json` beside the binary.
    ///
    /// # Errors
    /// When the file exists but cannot be read or is not a JSON map of counts.
    pub fn from_env() -> anyhow::Result<Likes> {
        let file = match std::env::var_os(LIKES_FILE_ENV) {
            Some(file) => PathBuf::from(file),
            None => std::env::current_exe()
                .context("cannot find the server binary")?
                .with_file_name("blog-likes.json"),
        };
        Likes::open(file)
    }

    /// The counts in `file` (none yet when it does not exist).
    ///
    /// # Errors
    /// When the file exists but cannot be read or is not a JSON map of counts.
    pub fn open(file: PathBuf) -> anyhow::Result<Likes> {
        let counts = match std::fs::read(&file) {
            Ok(bytes) => serde_json::from_slice(&bytes)
                .with_context(|| format!("{} is not a JSON map of like counts", file.display()))?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => BTreeMap::new(),
            Err(e) => return Err(e).with_context(|| format!("cannot read {}", file.display())),
        };
        Ok(Likes {
            file,
            counts: Arc::new(Mutex::new(counts)),
        })
    }

    /// The likes of `slug`.
    pub async fn get(&self, slug: &str) -> u64 {
        self.counts.lock().await.get(slug).copied().unwrap_or(0)
    }

    /// One more like for `slug` (the caller checked that it is a published post); the new
    /// count, once it is on disk.
    ///
    /// # Errors
    /// When the file cannot be written (the count is then not changed).
    pub async fn add(&self, slug: &str) -> anyhow::Result<u64> {
        // A task of its own: a caller that goes away (the client disconnected) cannot stop it
        // between the write and the count in memory.
        let (likes, slug) = (self.clone(), slug.to_owned());
        tokio::spawn(async move { likes.add_now(&slug).await }).await?
    }

    async fn add_now(&self, slug: &str) -> anyhow::Result<u64> {
        let mut counts = self.counts.lock().await;
        let count = counts.get(slug).copied().unwrap_or(0).saturating_add(1);
        let mut next = counts.clone();
        next.insert(slug.to_owned(), count);
        let file = self.file.clone();
        let json = serde_json::to_vec_pretty(&next)?;
        tokio::task::spawn_blocking(move || {
            let tmp = file.with_extension("json.tmp");
            std::fs::write(&tmp, json)?;
            std::fs::rename(&tmp, &file)
        })
        .await?
        .with_context(|| format!("cannot write {}", self.file.display()))?;
        *counts = next;
        Ok(count)
    }
}

#[cfg(test)]
mod tests {
    use super::Likes;

    #[tokio::test]
    async fn counts_are_kept_in_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let likes = Likes::open(dir.path().join("likes.json")).unwrap();
        assert_eq!(likes.get("hello").await, 0);
        assert_eq!(likes.add("hello").await.unwrap(), 1);
        assert_eq!(likes.add("hello").await.unwrap(), 2);
        let reopened = Likes::open(dir.path().join("likes.json")).unwrap();
        assert_eq!(reopened.get("hello").await, 2);
        // No temporary file is left beside it.
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
    }

    #[tokio::test]
    async fn a_file_that_is_not_counts_is_an_error_naming_it() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("likes.json"), "not json").unwrap();
        let error = Likes::open(dir.path().join("likes.json")).unwrap_err();
        assert!(format!("{error:#}").contains("likes.json"), "{error:#}");
    }
}
