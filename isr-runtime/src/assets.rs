//! Static assets: the files of the app crate's `assets/` folder that its code names with
//! [`asset!`](crate::asset), served at content-hashed URLs (`/assets/style-1a2b3c4d5e6f.css`)
//! that may be cached forever.
//!
//! `asset!` checks the file when the crate compiles (a missing file is a compile error at the
//! name), puts the hash of its bytes in the URL and embeds the bytes in the server binary, so a
//! deployed binary carries its assets and a URL can never name other bytes than the ones served.
//! At start, `build`, `serve` and `start` write them into `<site root>/assets/` (the static
//! export), each with brotli and gzip variants when its type compresses; the server serves that
//! folder at `/assets/` with `cache-control: public, max-age=31536000, immutable`. Files of
//! earlier builds stay there, so a page still cached somewhere keeps its stylesheet.
//!
//! Only files named by `asset!` are served: a stylesheet's `url(..)` references are not
//! rewritten, so fonts and images that CSS names belong in `public/` (served under their own
//! names, see [`crate::public`]).

use crate::encoding::compressible;
use std::io::{self, Write};
use std::path::{Path, PathBuf};

/// Where assets are served, and their folder in the site root.
pub const URL_PREFIX: &str = "/assets";

/// The assets' folder in the site root.
pub const SITE_DIR: &str = "assets";

/// The `cache-control` of every asset: its URL changes with its bytes.
pub const CACHE_CONTROL: &str = "public, max-age=31536000, immutable";

/// One file named by `asset!`: what the macro submits. Not constructed by hand.
#[doc(hidden)]
#[derive(Debug)]
pub struct AssetDef {
    /// Its URL (`/assets/style-<hash>.css`).
    pub url: &'static str,
    /// Its name in the `assets/` folder (`style.css`).
    pub name: &'static str,
    /// Its bytes, as compiled in.
    pub bytes: &'static [u8],
}

inventory::collect!(AssetDef);

/// Every asset the app's code names, once each, by URL.
///
/// ```
/// // This crate names none.
/// assert!(isr::assets::registered().is_empty());
/// ```
pub fn registered() -> Vec<&'static AssetDef> {
    let mut assets: Vec<&'static AssetDef> = inventory::iter::<AssetDef>().collect();
    assets.sort_by_key(|asset| asset.url);
    assets.dedup_by_key(|asset| asset.url);
    assets
}

/// Whether an asset's type is worth compressing, from its extension (images, fonts in woff/woff2
/// and other already compressed types are not).
fn compressible_type(url: &str) -> bool {
    let extension = url.rsplit('.').next().unwrap_or("").to_ascii_lowercase();
    let content_type = match extension.as_str() {
        "css" => "text/css",
        "js" | "mjs" => "application/javascript",
        "json" | "map" => "application/json",
        "svg" => "image/svg+xml",
        "txt" => "text/plain",
        "html" | "htm" => "text/html",
        "xml" => "application/xml",
        "webmanifest" => "application/manifest+json",
        "wasm" | "ttf" | "otf" | "ico" => return true,
        _ => return false,
    };
    compressible(content_type)
}

/// What [`write_all`] did.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Written {
    /// Files written (an asset and its variants count once).
    pub written: usize,
    /// Assets found already in place (written by an earlier start of this build).
    pub kept: usize,
}

/// Writes every registered asset into `dir` (`<site root>/assets`), with `.br` and `.gz`
/// variants for types that compress (each kept only when smaller). An asset already there is
/// left alone: its name holds its hash. Files are written under a temporary name and renamed, so
/// a server reading the folder never sees half of one.
///
/// ```
/// let dir = tempfile::tempdir().unwrap();
/// let written = isr::assets::write_all(&dir.path().join("assets")).unwrap();
/// assert_eq!(written, isr::assets::Written::default());
/// ```
///
/// # Errors
/// When a folder or a file cannot be created or written (the message names it).
pub fn write_all(dir: &Path) -> io::Result<Written> {
    write_assets(dir, &registered())
}

fn write_assets(dir: &Path, assets: &[&AssetDef]) -> io::Result<Written> {
    let mut report = Written::default();
    for asset in assets {
        let relative = asset
            .url
            .strip_prefix(URL_PREFIX)
            .and_then(|rest| rest.strip_prefix('/'))
            .ok_or_else(|| {
                io::Error::other(format!("asset URL {} is not under /assets/", asset.url))
            })?;
        let path = dir.join(relative);
        if std::fs::metadata(&path).is_ok_and(|m| m.len() == asset.bytes.len() as u64) {
            report.kept += 1;
            continue;
        }
        let parent = path.parent().unwrap_or(dir);
        std::fs::create_dir_all(parent)
            .map_err(|e| named(e, "cannot create the assets folder", parent))?;
        if compressible_type(asset.url) {
            for (suffix, bytes) in [(".br", brotli(asset.bytes)), (".gz", gzip(asset.bytes)?)] {
                let variant = with_suffix(&path, suffix);
                if bytes.len() < asset.bytes.len() {
                    replace(&variant, &bytes)?;
                }
            }
        }
        // The asset last: its presence says its variants are in place.
        replace(&path, asset.bytes)?;
        report.written += 1;
    }
    Ok(report)
}

/// `path` with `suffix` appended to its file name (`style.css` → `style.css.br`).
pub(crate) fn with_suffix(path: &Path, suffix: &str) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(suffix);
    PathBuf::from(name)
}

fn named(error: io::Error, what: &str, path: &Path) -> io::Error {
    io::Error::new(error.kind(), format!("{what} {}: {error}", path.display()))
}

/// Writes `bytes` at `path` through a temporary file in the same folder and a rename. The
/// temporary name starts with a dot (the nginx recipe serves no such name) and holds no
/// extension a browser would take for the asset's.
fn replace(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("asset");
    let tmp = path.with_file_name(format!(".{name}.{:016x}.tmp", crate::random::u64()));
    let written = std::fs::File::create(&tmp)
        .and_then(|mut file| file.write_all(bytes))
        .and_then(|()| std::fs::rename(&tmp, path));
    if written.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    written.map_err(|e| named(e, "cannot write the asset", path))
}

/// brotli at its best quality: assets and client bundles are compressed once per build, not
/// per page.
pub(crate) fn brotli(bytes: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    let params = brotli::enc::BrotliEncoderParams {
        quality: 11,
        ..Default::default()
    };
    // Writing into a Vec cannot fail.
    let _ = brotli::BrotliCompress(&mut &bytes[..], &mut out, &params);
    out
}

/// gzip at its best level (once per build, as [`brotli`]).
pub(crate) fn gzip(bytes: &[u8]) -> io::Result<Vec<u8>> {
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    encoder.write_all(bytes)?;
    encoder.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    static STYLE: AssetDef = AssetDef {
        url: "/assets/css/style-0123456789ab.css",
        name: "css/style.css",
        bytes: b"body { color: #222; } body { color: #222; } body { color: #222; } body { color: #222; }",
    };
    static LOGO: AssetDef = AssetDef {
        url: "/assets/logo-0123456789ab.png",
        name: "logo.png",
        bytes: b"\x89PNG not really",
    };

    #[test]
    fn assets_are_written_with_their_variants_once() {
        let dir = tempfile::tempdir().unwrap();
        let assets = dir.path().join("assets");
        let report = write_assets(&assets, &[&STYLE, &LOGO]).unwrap();
        assert_eq!(
            report,
            Written {
                written: 2,
                kept: 0
            }
        );
        let css = assets.join("css/style-0123456789ab.css");
        assert_eq!(std::fs::read(&css).unwrap(), STYLE.bytes);
        let br = std::fs::read(with_suffix(&css, ".br")).unwrap();
        let mut plain = Vec::new();
        brotli::BrotliDecompress(&mut &br[..], &mut plain).unwrap();
        assert_eq!(plain, STYLE.bytes);
        let gz = std::fs::read(with_suffix(&css, ".gz")).unwrap();
        let mut plain = String::new();
        io::Read::read_to_string(&mut flate2::read::GzDecoder::new(&gz[..]), &mut plain).unwrap();
        assert_eq!(plain.as_bytes(), STYLE.bytes);
        // An image is not compressed.
        let png = assets.join("logo-0123456789ab.png");
        assert!(png.is_file() && !with_suffix(&png, ".gz").exists());
        // No temporary file is left, and a second start writes nothing.
        let names: Vec<_> = std::fs::read_dir(assets.join("css"))
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names.len(), 3, "{names:?}");
        assert_eq!(
            write_assets(&assets, &[&STYLE, &LOGO]).unwrap(),
            Written {
                written: 0,
                kept: 2
            }
        );
    }

    #[test]
    fn an_unwritable_folder_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("not-a-folder");
        std::fs::write(&file, "").unwrap();
        let error = write_assets(&file, &[&STYLE]).unwrap_err();
        assert!(error.to_string().contains("not-a-folder"), "{error}");
    }
}
