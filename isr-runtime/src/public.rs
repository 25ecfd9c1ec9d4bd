//! The `public/` folder: files served under their own names (`public/favicon.ico` at
//! `/favicon.ico`, `public/.well-known/security.txt` at `/.well-known/security.txt`), with a
//! short `cache-control` ([`CACHE_CONTROL`]) since their URLs never change.
//!
//! The folder is read once at start (its list of files; their bytes at each request, so an edit
//! shows at once and a file added shows after a restart): a request is looked up in that list
//! (no disk access for other paths). The app's own routes and isr's win over a public file, and
//! a public file over a page matched by a dynamic route; a file at a static page's path is an
//! error at start; `/robots.txt` and `/sitemap.xml` in `public/` replace isr's own. Hidden
//! files (`.gitkeep`, `.DS_Store`) are not served, except under `/.well-known/`. `.br`/`.gz`
//! files beside a file are served as its precompressed variants.
//!
//! Stylesheets, scripts and images that pages name in their markup belong in `assets/`
//! ([`crate::assets`]): their URLs change with their bytes, so they may be cached forever.

use axum::extract::Request;
use axum::http::{header, HeaderValue};
use axum::response::Response;
use std::io;
use std::path::{Path, PathBuf};

/// The `cache-control` of every public file: browsers and CDNs keep it an hour.
pub const CACHE_CONTROL: &str = "public, max-age=3600";

/// Most files a `public/` folder may hold (each is a route).
pub const MAX_FILES: usize = 10_000;

/// URL paths that are isr's own: a public file cannot take one.
const RESERVED: [&str; 3] = ["/_isr/", "/pkg/", "/assets/"];

/// The files of a `public/` folder, each with the URL path it is served at.
///
/// ```
/// let dir = tempfile::tempdir().unwrap();
/// std::fs::write(dir.path().join("favicon.ico"), b"icon").unwrap();
/// std::fs::create_dir(dir.path().join(".well-known")).unwrap();
/// std::fs::write(dir.path().join(".well-known/security.txt"), b"Contact: x").unwrap();
/// std::fs::write(dir.path().join(".gitkeep"), b"").unwrap();
/// let files = isr::public::PublicFiles::scan(dir.path()).unwrap();
/// assert_eq!(files.paths().collect::<Vec<_>>(), ["/.well-known/security.txt", "/favicon.ico"]);
/// ```
#[derive(Clone, Debug, Default)]
pub struct PublicFiles {
    /// `(URL path, file)`, sorted by URL path.
    files: Vec<(String, PathBuf)>,
}

impl PublicFiles {
    /// Lists the files under `dir`. Precompressed variants (`x.css.br`, `x.css.gz` beside
    /// `x.css`) are not listed: they are served as encodings of their file.
    ///
    /// # Errors
    /// When `dir` or a folder in it cannot be read, when it holds more than [`MAX_FILES`] files,
    /// or when a file's name cannot be a URL path (the message names the file).
    pub fn scan(dir: &Path) -> io::Result<PublicFiles> {
        let mut files = Vec::new();
        walk(dir, dir, &mut files)?;
        let listed: std::collections::HashSet<PathBuf> =
            files.iter().map(|(_, path)| path.clone()).collect();
        files.retain(|(_, path)| !is_variant_of_listed(path, &listed));
        files.sort();
        Ok(PublicFiles { files })
    }

    /// The URL paths served, sorted.
    pub fn paths(&self) -> impl Iterator<Item = &str> {
        self.files.iter().map(|(path, _)| path.as_str())
    }

    /// Whether a file is served at `url_path`.
    pub fn serves(&self, url_path: &str) -> bool {
        self.files
            .binary_search_by(|(path, _)| path.as_str().cmp(url_path))
            .is_ok()
    }

    /// The file served at `url_path`, if any (a binary search: no disk access).
    fn file(&self, url_path: &str) -> Option<&Path> {
        if self.files.is_empty() {
            return None;
        }
        self.files
            .binary_search_by(|(path, _)| path.as_str().cmp(url_path))
            .ok()
            .map(|at| self.files[at].1.as_path())
    }

    /// The answer to `request` when its path is a public file's (that file, or its `.br`/`.gz`
    /// variant as the request accepts, with [`CACHE_CONTROL`]); `Err(request)` otherwise.
    /// Called by the pages' handler first: the app's own routes and isr's take precedence
    /// over public files, which take precedence over pages.
    pub(crate) async fn serve(&self, request: Request) -> Result<Response, Request> {
        let Some(file) = self.file(request.uri().path()) else {
            return Err(request);
        };
        let service = tower_http::set_header::SetResponseHeader::overriding(
            tower_http::services::ServeFile::new(file)
                .precompressed_br()
                .precompressed_gzip(),
            header::CACHE_CONTROL,
            HeaderValue::from_static(CACHE_CONTROL),
        );
        let response = match tower::ServiceExt::oneshot(service, request).await {
            Ok(response) => response.map(axum::body::Body::new),
            Err(never) => match never {},
        };
        Ok(response)
    }
}

fn walk(root: &Path, dir: &Path, files: &mut Vec<(String, PathBuf)>) -> io::Result<()> {
    let entries = std::fs::read_dir(dir)
        .map_err(|e| io::Error::new(e.kind(), format!("cannot read {}: {e}", dir.display())))?;
    for entry in entries {
        let entry = entry?;
        let path = entry.path();
        let name = entry.file_name();
        let name = name.to_string_lossy();
        let hidden = name.starts_with('.');
        let well_known = dir == root && name == ".well-known";
        if hidden && !well_known && !path.starts_with(root.join(".well-known")) {
            continue;
        }
        if entry.file_type()?.is_dir() {
            walk(root, &path, files)?;
            continue;
        }
        let url_path = url_path_of(root, &path)?;
        if files.len() >= MAX_FILES {
            return Err(io::Error::other(format!(
                "{} holds more than {MAX_FILES} files: serve large file sets from a CDN or nginx",
                root.display()
            )));
        }
        files.push((url_path, path));
    }
    Ok(())
}

/// `/a/b.txt` for `<root>/a/b.txt`, if every segment is a plain URL segment.
fn url_path_of(root: &Path, file: &Path) -> io::Result<String> {
    let relative = file.strip_prefix(root).map_err(io::Error::other)?;
    let mut url_path = String::new();
    for segment in relative.components() {
        let segment = segment.as_os_str().to_str().unwrap_or("");
        let plain = !segment.is_empty()
            && segment
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_' | '~'));
        if !plain {
            return Err(io::Error::other(format!(
                "{}: a public file's name uses only ASCII letters, digits, `.`, `-`, `_` and `~` (it is its URL)",
                file.display()
            )));
        }
        url_path.push('/');
        url_path.push_str(segment);
    }
    if let Some(reserved) = RESERVED.iter().find(|r| url_path.starts_with(*r)) {
        return Err(io::Error::other(format!(
            "{}: `{reserved}` is isr's own; move the file elsewhere",
            file.display()
        )));
    }
    Ok(url_path)
}

/// Whether `path` is `x.br` or `x.gz` for a listed `x`.
fn is_variant_of_listed(path: &Path, listed: &std::collections::HashSet<PathBuf>) -> bool {
    let name = path.to_string_lossy();
    [".br", ".gz"].iter().any(|suffix| {
        name.strip_suffix(suffix)
            .is_some_and(|original| listed.contains(Path::new(original)))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_that_cannot_be_urls_and_isr_paths_are_refused_by_name() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("my file.txt"), "").unwrap();
        let error = PublicFiles::scan(dir.path()).unwrap_err().to_string();
        assert!(error.contains("my file.txt"), "{error}");
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("pkg")).unwrap();
        std::fs::write(dir.path().join("pkg/app.js"), "").unwrap();
        let error = PublicFiles::scan(dir.path()).unwrap_err().to_string();
        assert!(error.contains("`/pkg/` is isr's own"), "{error}");
    }

    #[test]
    fn variants_are_not_files_of_their_own() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("data.json"), "{}").unwrap();
        std::fs::write(dir.path().join("data.json.gz"), "").unwrap();
        std::fs::write(dir.path().join("archive.gz"), "").unwrap();
        let files = PublicFiles::scan(dir.path()).unwrap();
        assert_eq!(
            files.paths().collect::<Vec<_>>(),
            ["/archive.gz", "/data.json"]
        );
        assert!(files.serves("/data.json") && !files.serves("/data.json.gz"));
    }
}
