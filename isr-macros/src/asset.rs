//! `isr::asset!("style.css")`: parse the file name, validate it (a plain relative path to a file
//! of the crate's `assets/` folder), expand to its content-hashed URL plus the registration
//! that embeds the file in the server.

use proc_macro2::TokenStream;
use quote::quote;
use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};
use syn::LitStr;

/// The folder of the app crate that `asset!` names files in.
pub(crate) const ASSETS_DIR: &str = "assets";

/// Hex digits of the content hash in an asset's URL (48 bits: a collision would need two
/// versions of one file name among millions).
const HASH_HEX_DIGITS: usize = 12;

/// A validated asset: the file and the URL it is served at.
pub(crate) struct AssetSpec {
    file: PathBuf,
    name: String,
    url: String,
}

/// What is wrong with `name` as an asset name, if anything.
fn name_problem(name: &str) -> Option<&'static str> {
    if name.is_empty() {
        Some("name a file of the `assets/` folder, e.g. `isr::asset!(\"style.css\")`")
    } else if name.starts_with('/') {
        Some("an asset name is relative to the crate's `assets/` folder: drop the leading `/`")
    } else if name
        .split('/')
        .any(|segment| segment.is_empty() || segment == "." || segment == "..")
    {
        Some("an asset name is a plain path inside `assets/`: no empty, `.` or `..` segment")
    } else if !name
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_' | '/'))
    {
        Some("an asset name uses only ASCII letters, digits, `.`, `-`, `_` and `/` (it becomes a URL)")
    } else {
        None
    }
}

/// `dir/stem-<hash>.ext` (or `dir/name-<hash>` without an extension).
fn hashed_url(name: &str, bytes: &[u8]) -> String {
    let digest = Sha256::digest(bytes);
    let hash: String = digest
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect::<String>()
        .chars()
        .take(HASH_HEX_DIGITS)
        .collect();
    let (dir, file) = match name.rsplit_once('/') {
        Some((dir, file)) => (format!("{dir}/"), file),
        None => (String::new(), name),
    };
    match file.split_once('.') {
        Some((stem, ext)) if !stem.is_empty() => format!("/assets/{dir}{stem}-{hash}.{ext}"),
        _ => format!("/assets/{dir}{file}-{hash}"),
    }
}

impl AssetSpec {
    /// Reads the file named by `lit` in the `assets/` folder of the crate being compiled.
    ///
    /// # Errors
    /// At the literal: a name that is not a plain relative path, or no such file.
    pub(crate) fn new(lit: &LitStr) -> syn::Result<Self> {
        let name = lit.value();
        if let Some(problem) = name_problem(&name) {
            return Err(syn::Error::new(lit.span(), problem));
        }
        let manifest_dir = std::env::var_os("CARGO_MANIFEST_DIR").ok_or_else(|| {
            syn::Error::new(
                lit.span(),
                "CARGO_MANIFEST_DIR is not set: build with cargo",
            )
        })?;
        let file = Path::new(&manifest_dir).join(ASSETS_DIR).join(&name);
        let bytes = std::fs::read(&file).map_err(|e| {
            syn::Error::new(
                lit.span(),
                format!(
                    "cannot read `{ASSETS_DIR}/{name}` of this crate: {e} (isr::asset! names a file of the crate's `{ASSETS_DIR}/` folder)"
                ),
            )
        })?;
        Ok(AssetSpec {
            url: hashed_url(&name, &bytes),
            file,
            name,
        })
    }

    /// The URL, as a `&'static str` expression, plus (in the app's `ssr` build) the file's
    /// bytes registered for the server. `include_bytes!` makes cargo rebuild the crate when the
    /// file changes, so the URL's hash always matches what is served.
    pub(crate) fn expand(&self) -> TokenStream {
        let url = &self.url;
        let name = &self.name;
        let file = self.file.to_string_lossy();
        quote! {
            {
                #[cfg(feature = "ssr")]
                const _: () = {
                    ::isr::__private::inventory::submit! {
                        ::isr::__private::AssetDef {
                            url: #url,
                            name: #name,
                            bytes: ::core::include_bytes!(#file),
                        }
                    }
                };
                #url
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::{hashed_url, name_problem};

    #[test]
    fn names_are_plain_relative_paths() {
        for good in [
            "style.css",
            "img/logo.svg",
            "fonts/Inter-Bold.woff2",
            "a_b.min.js",
        ] {
            assert_eq!(name_problem(good), None, "{good}");
        }
        for bad in [
            "",
            "/style.css",
            "../secret",
            "a//b",
            "./a",
            "a b.css",
            "é.css",
            "a?.css",
        ] {
            assert!(name_problem(bad).is_some(), "{bad}");
        }
    }

    #[test]
    fn the_hash_goes_before_the_extensions_and_changes_with_the_bytes() {
        let url = hashed_url("img/logo.svg", b"<svg/>");
        assert!(
            url.starts_with("/assets/img/logo-") && url.ends_with(".svg"),
            "{url}"
        );
        assert_eq!(url.len(), "/assets/img/logo-.svg".len() + 12);
        assert_ne!(url, hashed_url("img/logo.svg", b"<svg />"));
        assert!(hashed_url("app.min.js", b"x").ends_with(".min.js"));
        assert!(hashed_url("LICENSE", b"x").starts_with("/assets/LICENSE-"));
    }
}
