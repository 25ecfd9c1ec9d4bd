//! Where the site lives when no `--site-root` is given: under cargo's target directory for a
//! binary cargo built and runs from there, beside the binary otherwise; never relative to the
//! working directory (a `cargo run` from another folder finds the same site).

use std::path::{Path, PathBuf};

/// The file cargo writes at the top of every target directory (it marks it as a cache).
const CARGO_TARGET_MARKER: &str = "CACHEDIR.TAG";

/// The default site root of `app` for the executable at `exe`: `<target dir>/site/<app>` when
/// `exe` lies in a cargo target directory (`target/debug/blog`, `$CARGO_TARGET_DIR/release/blog`,
/// `target/<triple>/release/blog`), else `<exe's folder>/<app>-site`.
pub(super) fn default_site_root(app: &str, exe: &Path) -> PathBuf {
    let folder = exe.parent().unwrap_or(Path::new("."));
    match cargo_target_dir(exe) {
        Some(target) => target.join("site").join(app),
        None => folder.join(format!("{app}-site")),
    }
}

/// The cargo target directory `path` lies in, if any: the nearest of its ancestors (at most
/// three levels up: `<target>/<triple>/<profile>/<binary>`) that holds cargo's marker.
pub(super) fn cargo_target_dir(path: &Path) -> Option<PathBuf> {
    path.ancestors()
        .skip(1)
        .take(3)
        .find(|dir| dir.join(CARGO_TARGET_MARKER).is_file())
        .map(Path::to_path_buf)
}

/// Whether this executable lies in a cargo target folder (`cargo run`, `cargo test`).
pub(super) fn runs_from_cargo_target() -> bool {
    std::env::current_exe().is_ok_and(|exe| cargo_target_dir(&exe).is_some())
}

/// What to warn about a release build serving `site_root`: inside a cargo target directory,
/// `cargo clean` deletes the site with its tombstones.
pub(super) fn production_warning(site_root: &Path) -> Option<String> {
    inside_target_warning(site_root, !cfg!(debug_assertions))
}

fn inside_target_warning(site_root: &Path, release: bool) -> Option<String> {
    if !release {
        return None;
    }
    let absolute = std::path::absolute(site_root).ok()?;
    let target = absolute
        .ancestors()
        .skip(1)
        .find(|dir| dir.join(CARGO_TARGET_MARKER).is_file())?;
    Some(format!(
        "the site root {} is inside cargo's target directory {}: `cargo clean` deletes it (and the record of removed pages); give a production site its own folder with --site-root / LEPTOS_SITE_ROOT",
        absolute.display(),
        target.display()
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn under_the_target_directory_or_beside_the_binary() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("custom-target");
        for profile in ["debug", "x86_64-unknown-linux-gnu/release"] {
            std::fs::create_dir_all(target.join(profile)).unwrap();
        }
        std::fs::write(
            target.join(CARGO_TARGET_MARKER),
            "Signature: 8a477f597d28d172789f06886806bc55",
        )
        .unwrap();
        assert_eq!(
            default_site_root("blog", &target.join("debug/blog")),
            target.join("site/blog")
        );
        assert_eq!(
            default_site_root(
                "blog",
                &target.join("x86_64-unknown-linux-gnu/release/blog")
            ),
            target.join("site/blog")
        );
        let deployed = dir.path().join("opt/blog/bin");
        std::fs::create_dir_all(&deployed).unwrap();
        assert_eq!(
            default_site_root("blog", &deployed.join("blog")),
            deployed.join("blog-site")
        );
        // A release build warns about a site `cargo clean` would delete; a debug build does not.
        let warning = inside_target_warning(&target.join("site/blog"), true).unwrap();
        assert!(
            warning.contains("cargo clean") && warning.contains("--site-root"),
            "{warning}"
        );
        assert!(inside_target_warning(&target.join("site/blog"), false).is_none());
        assert!(inside_target_warning(&deployed.join("blog-site"), true).is_none());
    }
}
