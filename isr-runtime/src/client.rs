//! The client bundle: building the app's `hydrate` library to wasm when it is missing or out of
//! date, and finding the bundle the pages load.
//!
//! `cargo run -p blog` builds `<site-root>/pkg/<app>-<hash>.js` + `_bg.wasm` (content-hashed:
//! a regenerated page never points at a stale bundle) by invoking cargo for
//! `wasm32-unknown-unknown` and the `wasm-bindgen` CLI. Under `cargo leptos` (which sets
//! `LEPTOS_OUTPUT_NAME`) cargo-leptos builds the bundle and this module only finds it. Without a
//! wasm toolchain the pages are served without hydration, and the build says how to fix it.

use crate::assets::with_suffix;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::io::BufRead;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// The `wasm-bindgen` version an app's `Cargo.lock` resolved: the CLI that processes its
/// bundle must be exactly that version (as cargo-leptos does, the CLI follows the app's lock;
/// isr pins nothing). Read from the lock's `[[package]]` entries (a fixed format, read here
/// without a TOML parser for four lines of it).
///
/// # Errors
/// When the lock names no `wasm-bindgen`, or several versions of it (the bundle's one is then
/// ambiguous).
///
/// ```
/// let lock = "[[package]]\nname = \"wasm-bindgen\"\nversion = \"0.2.130\"\nsource = \"registry\"\n\n[[package]]\nname = \"wasm-bindgen-futures\"\nversion = \"0.4.1\"\n";
/// assert_eq!(isr::client::locked_wasm_bindgen_version(lock).unwrap(), "0.2.130");
/// assert!(isr::client::locked_wasm_bindgen_version("").unwrap_err().contains("no wasm-bindgen"));
/// ```
pub fn locked_wasm_bindgen_version(lock: &str) -> Result<String, String> {
    let mut versions: Vec<&str> = lock
        .split("[[package]]")
        .filter(|entry| entry.lines().any(|l| l.trim() == "name = \"wasm-bindgen\""))
        .filter_map(|entry| {
            entry
                .lines()
                .find_map(|l| l.trim().strip_prefix("version = \""))
                .and_then(|v| v.strip_suffix('"'))
        })
        .collect();
    versions.sort_unstable();
    versions.dedup();
    match versions.as_slice() {
        [one] => Ok((*one).to_string()),
        [] => Err("the app's Cargo.lock has no wasm-bindgen (does its `hydrate` feature enable `isr/hydrate`?)".into()),
        several => Err(format!(
            "the app's Cargo.lock has several wasm-bindgen versions ({}): keep one (`cargo update -p wasm-bindgen`)",
            several.join(", ")
        )),
    }
}

/// The wasm target.
pub const WASM_TARGET: &str = "wasm32-unknown-unknown";

/// Cargo profile of the client build (see the workspace Cargo.toml).
pub const CLIENT_PROFILE: &str = "wasm-release";

/// [`CLIENT_PROFILE`] as the client build defines it on cargo's command line (`--config`), as
/// cargo-leptos recommends for a browser bundle: small (`opt-level = "z"`, LTO, one codegen
/// unit) and `panic = "abort"`.
const CLIENT_PROFILE_SETTINGS: [&str; 5] = [
    "profile.wasm-release.inherits=\"release\"",
    "profile.wasm-release.opt-level=\"z\"",
    "profile.wasm-release.lto=true",
    "profile.wasm-release.codegen-units=1",
    "profile.wasm-release.panic=\"abort\"",
];

/// Whether the environment variable `name` turns its step off (`off`, `0` or `false`).
pub(crate) fn switched_off(name: &str) -> bool {
    matches!(
        std::env::var(name).as_deref(),
        Ok("off") | Ok("0") | Ok("false")
    )
}

/// The crate whose `hydrate` library is the client bundle; see [`client_crate!`](crate::client_crate).
///
/// ```
/// let krate = isr::client::ClientCrate { package: "blog", manifest_dir: "/src/examples/blog" };
/// assert_eq!(krate.package, "blog");
/// ```
#[derive(Clone, Copy, Debug)]
pub struct ClientCrate {
    /// Cargo package name.
    pub package: &'static str,
    /// Its folder (where its sources are, at compile time).
    pub manifest_dir: &'static str,
}

/// Names the calling crate as the app's client crate.
///
/// ```
/// let krate = isr::client_crate!();
/// assert_eq!(krate.package, "isr");
/// ```
#[macro_export]
macro_rules! client_crate {
    () => {
        $crate::client::ClientCrate {
            package: ::core::env!("CARGO_PKG_NAME"),
            manifest_dir: ::core::env!("CARGO_MANIFEST_DIR"),
        }
    };
}

/// The bundle pages load: URL paths of its JS module and wasm file.
///
/// ```
/// let bundle = isr::client::ClientBundle { js: "/pkg/blog-1a.js".into(), wasm: "/pkg/blog-1a_bg.wasm".into(), immutable: true };
/// assert!(bundle.js.starts_with("/pkg/"));
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClientBundle {
    /// URL of the JS module (e.g. `/pkg/blog-1a2b3c.js`).
    pub js: String,
    /// URL of the wasm file.
    pub wasm: String,
    /// Whether the file names are content-hashed (and may be cached forever).
    #[serde(default)]
    pub immutable: bool,
}

#[derive(Serialize, Deserialize)]
struct Manifest {
    bundle: ClientBundle,
    /// Hash of the wasm that cargo produced, before wasm-bindgen.
    source_hash: String,
    /// [`server_build_id`] of the server that built or last confirmed the bundle.
    #[serde(default)]
    server: Option<String>,
    /// Bundles this one replaced whose files are still in the site root: stored pages generated
    /// before a bundle was replaced still load it ([`remove_retired_bundles`]).
    #[serde(default)]
    retired: Vec<RetiredBundle>,
}

/// A bundle replaced by a newer one, and when.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
struct RetiredBundle {
    bundle: ClientBundle,
    /// Wall-clock ms since the epoch when the newer bundle was written: pages generated after it
    /// (plus [`RETIRED_BUNDLE_GRACE`]) load the newer one.
    retired_at_ms: u64,
}

/// How long after a bundle was replaced pages may still be generated with it (by a process of
/// the previous build still finishing its work during a restart or a slow rolling deploy) and
/// still be served by a cache in front that has not refreshed them.
pub const RETIRED_BUNDLE_GRACE: std::time::Duration = std::time::Duration::from_secs(24 * 60 * 60);

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// Removes the files of replaced bundles that no stored page loads any more: every HTML page
/// stored was generated at least [`RETIRED_BUNDLE_GRACE`] after the bundle was replaced
/// (`oldest_page_ms`: the generation time of the oldest stored HTML page, `None` when there is
/// none). A page that is never regenerated keeps its bundle. Returns the URLs of the removed
/// bundles' scripts. Run after a build, when every page that can be was regenerated.
///
/// ```
/// let dir = tempfile::tempdir().unwrap();
/// assert!(isr::client::remove_retired_bundles(dir.path(), None).unwrap().is_empty());
/// ```
///
/// # Errors
/// When a file of a bundle to remove, or the manifest, cannot be removed or written.
pub fn remove_retired_bundles(
    site_root: &Path,
    oldest_page_ms: Option<u64>,
) -> Result<Vec<String>, String> {
    let Some(mut manifest) = read_manifest(site_root) else {
        return Ok(Vec::new());
    };
    let oldest = oldest_page_ms.unwrap_or_else(now_ms);
    let grace = RETIRED_BUNDLE_GRACE.as_millis() as u64;
    let (unused, kept): (Vec<_>, Vec<_>) = std::mem::take(&mut manifest.retired)
        .into_iter()
        .partition(|retired| {
            retired.retired_at_ms.saturating_add(grace) <= oldest
                && retired.bundle != manifest.bundle
        });
    manifest.retired = kept;
    if unused.is_empty() {
        return Ok(Vec::new());
    }
    let mut removed = Vec::new();
    for retired in unused {
        for url in [&retired.bundle.js, &retired.bundle.wasm] {
            let file = site_root.join(url.trim_start_matches('/'));
            for path in [
                file.clone(),
                with_suffix(&file, ".gz"),
                with_suffix(&file, ".br"),
            ] {
                match std::fs::remove_file(&path) {
                    Ok(()) => {}
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                    Err(e) => return Err(format!("cannot remove {}: {e}", path.display())),
                }
            }
        }
        removed.push(retired.bundle.js);
    }
    write_manifest(site_root, &manifest)?;
    Ok(removed)
}

/// This server executable's build, as its length and modification time: a restart of the same
/// build finds the bundle that build made without running cargo ([`bundle_of_this_build`]); a
/// new build of the app (an edit under `cargo run`) builds the bundle again. `None` when the
/// executable cannot be read.
///
/// ```
/// let id = isr::client::server_build_id().unwrap();
/// assert_eq!(Some(id), isr::client::server_build_id(), "the same process, the same build");
/// ```
pub fn server_build_id() -> Option<String> {
    let meta = std::fs::metadata(std::env::current_exe().ok()?).ok()?;
    let modified = meta
        .modified()
        .ok()?
        .duration_since(std::time::UNIX_EPOCH)
        .ok()?;
    Some(format!("{}-{}", meta.len(), modified.as_nanos()))
}

/// The bundle in `site_root` if this very build of the server made (or confirmed) it, with all
/// its files, and no source of the client crate `krate` changed since (its `src/`, its
/// `Cargo.toml`, the `Cargo.lock` above it: an edit that only the browser build compiles does
/// not relink the server): what `start` over a built site serves without running cargo or
/// rustup.
///
/// ```
/// let krate = isr::client::ClientCrate { package: "blog", manifest_dir: "/nonexistent" };
/// assert!(isr::client::bundle_of_this_build(std::path::Path::new("/nonexistent"), &krate).is_none());
/// ```
pub fn bundle_of_this_build(site_root: &Path, krate: &ClientCrate) -> Option<ClientBundle> {
    let manifest = read_manifest(site_root)?;
    if manifest.server.is_none() || manifest.server != server_build_id() {
        return None;
    }
    // Only now the walk over the sources (the cheap checks first).
    let written = std::fs::metadata(manifest_path(site_root))
        .ok()?
        .modified()
        .ok()?;
    let sources_unchanged =
        newest_source(Path::new(krate.manifest_dir)).is_none_or(|newest| newest <= written);
    sources_unchanged.then(|| complete(site_root, &manifest))?
}

/// The newest modification time among the client crate's inputs: every file under `src/`,
/// its `Cargo.toml`, and the first `Cargo.lock` in it or above it. `None` when none exists
/// (the sources are not on this machine).
fn newest_source(manifest_dir: &Path) -> Option<std::time::SystemTime> {
    let modified = |path: &Path| std::fs::metadata(path).ok()?.modified().ok();
    let mut newest = modified(&manifest_dir.join("Cargo.toml"));
    if let Some(lock) = manifest_dir
        .ancestors()
        .map(|dir| dir.join("Cargo.lock"))
        .find(|lock| lock.is_file())
    {
        newest = newest.max(modified(&lock));
    }
    let mut folders = vec![manifest_dir.join("src")];
    while let Some(folder) = folders.pop() {
        let Ok(entries) = std::fs::read_dir(&folder) else {
            continue;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            if path.is_dir() {
                folders.push(path);
            } else {
                newest = newest.max(modified(&path));
            }
        }
    }
    newest
}

/// Writes the bundle's manifest (beside the site root, never inside it).
fn write_manifest(site_root: &Path, manifest: &Manifest) -> Result<(), String> {
    let path = manifest_path(site_root);
    std::fs::create_dir_all(path.parent().unwrap_or(site_root)).map_err(|e| e.to_string())?;
    std::fs::write(
        &path,
        serde_json::to_vec_pretty(manifest).map_err(|e| e.to_string())?,
    )
    .map_err(|e| format!("cannot write {}: {e}", path.display()))
}

fn manifest_path(site_root: &Path) -> PathBuf {
    crate::store::meta_dir_of(site_root).join("client.json")
}

/// Finds the bundle in `site_root`: ours (`<site_root>.isr/client.json`), or cargo-leptos's
/// (`pkg/$LEPTOS_OUTPUT_NAME.js`). `None` when there is none: pages are then not hydrated.
///
/// ```
/// assert!(isr::client::find_bundle(std::path::Path::new("/nonexistent")).is_none());
/// ```
pub fn find_bundle(site_root: &Path) -> Option<ClientBundle> {
    if let Ok(name) = std::env::var("LEPTOS_OUTPUT_NAME") {
        let pkg_dir = std::env::var("LEPTOS_SITE_PKG_DIR").unwrap_or_else(|_| "pkg".into());
        let js = format!("{pkg_dir}/{name}.js");
        let wasm = [
            format!("{pkg_dir}/{name}.wasm"),
            format!("{pkg_dir}/{name}_bg.wasm"),
        ]
        .into_iter()
        .find(|w| site_root.join(w).is_file())?;
        return site_root.join(&js).is_file().then(|| ClientBundle {
            js: format!("/{js}"),
            wasm: format!("/{wasm}"),
            immutable: false,
        });
    }
    our_bundle(site_root)
}

/// How the wasm target can be built here.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Toolchain {
    /// The current rustc has the wasm32 std (`rustup target add wasm32-unknown-unknown`).
    Rustup,
    /// Debian's rustc-web builds std from rust-web-src (offline machines; see scripts/setup-wasm.sh).
    DebianBuildStd,
}

/// How the wasm32 target can be built here: the current rustc's (added through rustup when it
/// is missing, with one log line), else Debian's build-std toolchain; else what to run.
fn detect_toolchain() -> Result<Toolchain, String> {
    if rustc_has_wasm_target() {
        return Ok(Toolchain::Rustup);
    }
    if Command::new("rustup").arg("--version").output().is_ok() {
        tracing::info!("adding the {WASM_TARGET} target through rustup (once): `rustup target add {WASM_TARGET}`");
        let added = Command::new("rustup")
            .args(["target", "add", WASM_TARGET])
            .stdout(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        if added && rustc_has_wasm_target() {
            return Ok(Toolchain::Rustup);
        }
    }
    if Path::new("/usr/bin/rustc").is_file()
        && Path::new("/usr/lib/rustlib/src/rust/library").is_dir()
    {
        return Ok(Toolchain::DebianBuildStd);
    }
    Err(format!(
        "no {WASM_TARGET} target and rustup could not add it: run `rustup target add {WASM_TARGET}` (offline Debian machines: `bash scripts/setup-wasm.sh`)"
    ))
}

fn rustc_has_wasm_target() -> bool {
    let rustc = std::env::var("RUSTC").unwrap_or_else(|_| "rustc".into());
    Command::new(&rustc)
        .args(["--print", "target-libdir", "--target", WASM_TARGET])
        .output()
        .ok()
        .filter(|out| out.status.success())
        .map(|out| PathBuf::from(String::from_utf8_lossy(&out.stdout).trim()))
        .is_some_and(|dir| dir.is_dir())
}

/// The version a `wasm-bindgen` program reports, if it runs.
fn wasm_bindgen_version(program: &Path) -> Option<String> {
    let out = Command::new(program).arg("--version").output().ok()?;
    String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .nth(1)
        .map(str::to_string)
}

/// Where isr keeps tools it installed for the client build: `<target-dir>/isr-tools`.
///
/// ```
/// let root = isr::client::tools_root(std::path::Path::new("/src/app/target"));
/// assert_eq!(root, std::path::Path::new("/src/app/target/isr-tools"));
/// ```
pub fn tools_root(target_dir: &Path) -> PathBuf {
    target_dir.join("isr-tools")
}

/// The `wasm-bindgen` CLI of exactly `version` (the app's, [`locked_wasm_bindgen_version`]):
/// the one on `PATH`, else isr's own copy under [`tools_root`] (one folder per version), else
/// installed there with `cargo install` (once, with one log line; `ISR_INSTALL_TOOLS=off`
/// forbids it and says what to run instead).
fn wasm_bindgen_cli(target_dir: &Path, version: &str) -> Result<PathBuf, String> {
    let on_path = PathBuf::from("wasm-bindgen");
    let found = wasm_bindgen_version(&on_path);
    if found.as_deref() == Some(version) {
        return Ok(on_path);
    }
    let root = tools_root(target_dir).join(format!("wasm-bindgen-{version}"));
    let own = root.join("bin").join("wasm-bindgen");
    if wasm_bindgen_version(&own).as_deref() == Some(version) {
        return Ok(own);
    }
    let fix = format!("`cargo install wasm-bindgen-cli --version {version}`");
    if switched_off("ISR_INSTALL_TOOLS") {
        return Err(match found {
            Some(other) => {
                format!("wasm-bindgen CLI is {other}, the bundle needs {version}: {fix}")
            }
            None => format!("wasm-bindgen CLI not found: {fix}"),
        });
    }
    tracing::info!(
        root = %root.display(),
        "installing wasm-bindgen-cli {version} for the client bundle (once; a few minutes; {fix} puts one on PATH instead)"
    );
    let started = std::time::Instant::now();
    let status = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
        // Not `--locked`: its lockfile can name versions a registry mirror no longer offers.
        .args(["install", "wasm-bindgen-cli", "--quiet", "--version"])
        .arg(format!("={version}"))
        .arg("--root")
        .arg(&root)
        .env_remove("RUSTFLAGS")
        .env_remove("CARGO_TARGET_DIR")
        .env_remove("CARGO_BUILD_TARGET")
        .stdout(Stdio::null())
        .status()
        .map_err(|e| format!("cannot run cargo install: {e}; {fix}"))?;
    if !status.success() || wasm_bindgen_version(&own).as_deref() != Some(version) {
        return Err(format!(
            "installing wasm-bindgen-cli failed ({status}): {fix}"
        ));
    }
    tracing::info!(
        seconds = started.elapsed().as_secs_f64(),
        "wasm-bindgen-cli installed"
    );
    Ok(own)
}

/// The target folder and the root of the workspace `manifest_dir` belongs to (`cargo metadata`).
fn workspace_dirs(manifest_dir: &Path) -> Result<(PathBuf, PathBuf), String> {
    let out = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
        .args(["metadata", "--no-deps", "--format-version", "1"])
        .current_dir(manifest_dir)
        .stderr(Stdio::inherit())
        .output()
        .map_err(|e| format!("cannot run cargo metadata: {e}"))?;
    let metadata: serde_json::Value = serde_json::from_slice(&out.stdout)
        .map_err(|e| format!("cargo metadata printed no JSON: {e}"))?;
    let dir = |field: &str| {
        metadata[field]
            .as_str()
            .map(PathBuf::from)
            .ok_or_else(|| format!("cargo metadata names no {field}"))
    };
    Ok((dir("target_directory")?, dir("workspace_root")?))
}

/// Builds the client bundle of `krate` into `<site_root>/pkg/` when missing or out of date and
/// returns it. Blocking (runs cargo); call it off the async runtime.
///
/// Returns `Ok(None)`-like results as `Err(reason)` when the bundle cannot be built here: the
/// caller logs the reason once and serves pages without hydration (or with an older bundle).
///
/// # Errors
/// The reason, with the fix where there is one: no wasm32 toolchain (and rustup cannot add
/// it), cargo cannot run or the client build fails or yields no `.wasm`, the app's
/// `Cargo.lock` names no single `wasm-bindgen` version, the matching `wasm-bindgen` CLI is
/// missing and cannot be installed, or a file of the bundle cannot be read or written.
pub fn ensure_bundle(
    krate: &ClientCrate,
    app_name: &str,
    site_root: &Path,
) -> Result<ClientBundle, String> {
    let toolchain = detect_toolchain()?;
    let workspace_dir = Path::new(krate.manifest_dir);
    let mut cargo = match toolchain {
        Toolchain::Rustup => {
            let mut c = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
            c.args(["build", "--target", WASM_TARGET]);
            c
        }
        Toolchain::DebianBuildStd => {
            let mut c = Command::new("/usr/bin/cargo");
            c.env("RUSTC", "/usr/bin/rustc")
                .env("RUSTDOC", "/usr/bin/rustdoc")
                .env("RUSTC_BOOTSTRAP", "1")
                .env_remove("RUSTUP_TOOLCHAIN")
                .args([
                    "build",
                    "--target",
                    WASM_TARGET,
                    "-Zbuild-std=std,panic_abort",
                ]);
            c
        }
    };
    cargo
        .current_dir(workspace_dir)
        .args([
            "-p",
            krate.package,
            "--lib",
            "--no-default-features",
            "--features",
            "hydrate",
        ])
        .args([
            "--profile",
            CLIENT_PROFILE,
            "--message-format=json-render-diagnostics",
        ])
        // The profile, defined here: the app's workspace needs no `[profile.wasm-release]` of
        // its own (one it has is used with these settings on top).
        .args(
            CLIENT_PROFILE_SETTINGS
                .iter()
                .flat_map(|setting| ["--config", setting]),
        )
        // A variable set for the server build must not leak into the wasm one.
        .env_remove("RUSTFLAGS")
        .env_remove("CARGO_ENCODED_RUSTFLAGS")
        .env_remove("CARGO_BUILD_TARGET")
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit());
    tracing::info!(package = krate.package, toolchain = ?toolchain, "building the client bundle (cargo, {WASM_TARGET})");
    let mut child = cargo
        .spawn()
        .map_err(|e| format!("cannot run cargo: {e}"))?;
    let mut wasm_file = None;
    if let Some(stdout) = child.stdout.take() {
        for line in std::io::BufReader::new(stdout)
            .lines()
            .map_while(Result::ok)
        {
            let Ok(message) = serde_json::from_str::<serde_json::Value>(&line) else {
                continue;
            };
            if message["reason"] == "compiler-artifact"
                && message["target"]["name"] == krate.package.replace('-', "_")
            {
                if let Some(files) = message["filenames"].as_array() {
                    wasm_file = files
                        .iter()
                        .filter_map(|f| f.as_str())
                        .find(|f| f.ends_with(".wasm"))
                        .map(PathBuf::from)
                        .or(wasm_file);
                }
            }
        }
    }
    let status = child
        .wait()
        .map_err(|e| format!("cargo did not finish: {e}"))?;
    if !status.success() {
        return Err(format!(
            "the client build failed ({status}); see cargo's output above"
        ));
    }
    let wasm_file =
        wasm_file.ok_or("cargo reported no .wasm artifact (is the lib crate-type cdylib?)")?;
    let wasm = std::fs::read(&wasm_file)
        .map_err(|e| format!("cannot read {}: {e}", wasm_file.display()))?;
    let source_hash: String = Sha256::digest(&wasm)[..8]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    if let Some(mut manifest) = read_manifest(site_root) {
        if manifest.source_hash == source_hash {
            if let Some(bundle) = complete(site_root, &manifest) {
                // The same wasm: this build of the server confirms the bundle.
                let server = server_build_id();
                if manifest.server != server {
                    manifest.server = server;
                    // A site root that cannot be written still has a good bundle: serve it
                    // (the next `start` only checks it with cargo again).
                    if let Err(error) = write_manifest(site_root, &manifest) {
                        tracing::warn!(%error, "could not record that this build confirmed the client bundle");
                    }
                }
                return Ok(bundle);
            }
        }
    }
    let (target_dir, workspace_root) = workspace_dirs(workspace_dir)?;
    let lock_path = workspace_root.join("Cargo.lock");
    let lock = std::fs::read_to_string(&lock_path)
        .map_err(|e| format!("cannot read {}: {e}", lock_path.display()))?;
    let version = locked_wasm_bindgen_version(&lock)?;
    let wasm_bindgen = wasm_bindgen_cli(&target_dir, &version)?;
    let out_name = format!("{app_name}-{source_hash}");
    let pkg_dir = site_root.join("pkg");
    std::fs::create_dir_all(&pkg_dir)
        .map_err(|e| format!("cannot create {}: {e}", pkg_dir.display()))?;
    let status = Command::new(&wasm_bindgen)
        .args([
            "--target",
            "web",
            "--no-typescript",
            "--out-name",
            &out_name,
            "--out-dir",
        ])
        .arg(&pkg_dir)
        .arg(&wasm_file)
        .status()
        .map_err(|e| format!("cannot run wasm-bindgen: {e}"))?;
    if !status.success() {
        return Err(format!("wasm-bindgen failed ({status})"));
    }
    if let Some(wasm_opt) = wasm_opt_program(&target_dir) {
        optimize_wasm(&wasm_opt, &pkg_dir.join(format!("{out_name}_bg.wasm")));
    }
    for file in [format!("{out_name}.js"), format!("{out_name}_bg.wasm")] {
        write_compressed(&pkg_dir.join(file))?;
    }
    let bundle = ClientBundle {
        js: format!("/pkg/{out_name}.js"),
        wasm: format!("/pkg/{out_name}_bg.wasm"),
        immutable: true,
    };
    let manifest = Manifest {
        retired: retire(read_manifest(site_root), &bundle),
        bundle,
        source_hash,
        server: server_build_id(),
    };
    write_manifest(site_root, &manifest)?;
    Ok(manifest.bundle)
}

/// The retired bundles of `previous` plus its own bundle, now replaced by `new` (one bundle once).
fn retire(previous: Option<Manifest>, new: &ClientBundle) -> Vec<RetiredBundle> {
    let Some(previous) = previous else {
        return Vec::new();
    };
    let mut retired = previous.retired;
    retired.push(RetiredBundle {
        bundle: previous.bundle,
        retired_at_ms: now_ms(),
    });
    retired.retain(|r| &r.bundle != new);
    let mut seen = Vec::new();
    retired.retain(|r| {
        let first = !seen.contains(&r.bundle.js);
        seen.push(r.bundle.js.clone());
        first
    });
    retired
}

/// The wasm features rustc enables by default for `wasm32-unknown-unknown`, which `wasm-opt`
/// must be told about (it does not read them from a module wasm-bindgen wrote).
const WASM_OPT_FEATURES: [&str; 6] = [
    "--enable-bulk-memory",
    "--enable-nontrapping-float-to-int",
    "--enable-sign-ext",
    "--enable-mutable-globals",
    "--enable-reference-types",
    "--enable-multivalue",
];

/// The binaryen release isr installs (through npm) when no good `wasm-opt` is on `PATH`.
pub const BINARYEN_VERSION: &str = "132.0.0";

/// How long after a failed install of binaryen isr tries again.
const NPM_RETRY_AFTER: std::time::Duration = std::time::Duration::from_secs(24 * 60 * 60);

/// The oldest `wasm-opt` on `PATH` that isr uses: the oldest seen to keep wasm-bindgen's
/// externref table working. Debian 12's binaryen 108 turns it into a function table (the bundle
/// then fails to start: `WebAssembly.Table.set(): Argument 1 is invalid`); versions between were
/// not tried, so they get isr's own copy.
const MIN_WASM_OPT_VERSION: u32 = 132;

/// The major version a `wasm-opt` program reports (`wasm-opt version 132 (version_132)`).
fn wasm_opt_version(program: &Path) -> Option<u32> {
    let out = Command::new(program).arg("--version").output().ok()?;
    String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .nth(2)?
        .parse()
        .ok()
}

/// A `wasm-opt` good for wasm-bindgen's output: the one on `PATH` when it is recent enough,
/// else isr's own copy of binaryen [`BINARYEN_VERSION`] in `<target>/isr-tools/` (installed with
/// npm the first time, one log line). `None`, with one log line saying how to get one, when
/// neither works or `ISR_WASM_OPT=off`: the bundle is then served unoptimized.
fn wasm_opt_program(target_dir: &Path) -> Option<PathBuf> {
    if switched_off("ISR_WASM_OPT") {
        return None;
    }
    let on_path = PathBuf::from("wasm-opt");
    let found = wasm_opt_version(&on_path);
    if found.is_some_and(|v| v >= MIN_WASM_OPT_VERSION) {
        return Some(on_path);
    }
    let root = tools_root(target_dir).join(format!("binaryen-{BINARYEN_VERSION}"));
    let own = root.join("node_modules").join(".bin").join("wasm-opt");
    if wasm_opt_version(&own).is_some() {
        return Some(own);
    }
    let fix = format!("`npm install -g binaryen@{BINARYEN_VERSION}`");
    let why = match found {
        Some(old) => format!("wasm-opt {old} on PATH is too old (it breaks wasm-bindgen's output; {MIN_WASM_OPT_VERSION} or later works)"),
        None => "no wasm-opt on PATH".to_owned(),
    };
    if switched_off("ISR_INSTALL_TOOLS") {
        tracing::info!("{why}: the client bundle is not size-optimized; {fix} puts one on PATH");
        return None;
    }
    // A failed install is not tried again for a day: an offline machine does not wait on npm's
    // network timeouts at every client build.
    let failed_marker = root.with_extension("failed");
    let failed_recently = std::fs::metadata(&failed_marker)
        .and_then(|m| m.modified())
        .is_ok_and(|at| at.elapsed().is_ok_and(|age| age < NPM_RETRY_AFTER));
    if failed_recently {
        tracing::info!("{why}, and installing binaryen failed less than a day ago: the client bundle is not size-optimized; {fix} puts one on PATH");
        return None;
    }
    tracing::info!(root = %root.display(), "{why}: installing binaryen {BINARYEN_VERSION} with npm for the client bundle (once; {fix} puts one on PATH instead)");
    // Into a folder of this process's own, then renamed into place: builds running at the same
    // time (parallel tests, two apps of one workspace) each install, the first rename wins and
    // the others use its copy.
    let staging = root.with_extension(format!("{:016x}.tmp", crate::random::u64()));
    let installed = std::fs::create_dir_all(&staging).is_ok()
        && Command::new("npm")
            .args(["install", "--silent", "--no-audit", "--no-fund", "--prefix"])
            .arg(&staging)
            .arg(format!("binaryen@{BINARYEN_VERSION}"))
            .stdout(Stdio::null())
            .status()
            .is_ok_and(|status| status.success());
    if installed {
        let _ = std::fs::rename(&staging, &root);
    }
    let _ = std::fs::remove_dir_all(&staging);
    if wasm_opt_version(&own).is_some() {
        Some(own)
    } else {
        let _ = std::fs::write(&failed_marker, b"");
        tracing::info!("binaryen could not be installed (is npm there?): the client bundle is not size-optimized; {fix} puts a wasm-opt on PATH");
        None
    }
}

/// Shrinks the bundle's wasm in place with `wasm-opt -Oz`, as cargo-leptos does for release
/// builds: about 60 % fewer bytes, a third less compressed. A `wasm-opt` that fails leaves the
/// wasm as wasm-bindgen wrote it, with a warning.
fn optimize_wasm(wasm_opt: &Path, wasm: &Path) {
    let optimized = with_suffix(wasm, ".opt");
    let started = std::time::Instant::now();
    let ran = Command::new(wasm_opt)
        .arg("-Oz")
        .args(WASM_OPT_FEATURES)
        .arg(wasm)
        .arg("-o")
        .arg(&optimized)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .output();
    match ran {
        Err(e) => tracing::warn!("cannot run wasm-opt, the bundle stays unoptimized: {e}"),
        Ok(out) if !out.status.success() => tracing::warn!(
            "wasm-opt failed ({}), the bundle stays unoptimized: {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        ),
        Ok(_) => {
            let sizes = (file_len(wasm), file_len(&optimized));
            match std::fs::rename(&optimized, wasm) {
                Ok(()) => tracing::info!(
                    before = sizes.0,
                    after = sizes.1,
                    seconds = started.elapsed().as_secs_f64(),
                    "client wasm optimized (wasm-opt -Oz)"
                ),
                Err(e) => tracing::warn!("cannot replace the wasm with its optimized copy: {e}"),
            }
        }
    }
    let _ = std::fs::remove_file(&optimized);
}

fn file_len(path: &Path) -> u64 {
    std::fs::metadata(path).map_or(0, |m| m.len())
}

/// Writes `<path>.br` and `<path>.gz` beside `path`, served instead of it to browsers that
/// accept them (brotli at its best quality: the wasm shrinks to about a fifth).
fn write_compressed(path: &Path) -> Result<(), String> {
    let bytes = std::fs::read(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    let gzip = crate::assets::gzip(&bytes).map_err(|e| e.to_string())?;
    for (suffix, compressed) in [(".gz", gzip), (".br", crate::assets::brotli(&bytes))] {
        let file = with_suffix(path, suffix);
        std::fs::write(&file, compressed)
            .map_err(|e| format!("cannot write {}: {e}", file.display()))?;
    }
    Ok(())
}

/// The bundle `ensure_bundle` wrote, if its files are all there.
fn our_bundle(site_root: &Path) -> Option<ClientBundle> {
    complete(site_root, &read_manifest(site_root)?)
}

/// The manifest `ensure_bundle` wrote beside `site_root`, if any.
fn read_manifest(site_root: &Path) -> Option<Manifest> {
    serde_json::from_slice(&std::fs::read(manifest_path(site_root)).ok()?).ok()
}

/// `manifest`'s bundle, if its files are all in `site_root`.
fn complete(site_root: &Path, manifest: &Manifest) -> Option<ClientBundle> {
    let exists = |url: &str| site_root.join(url.trim_start_matches('/')).is_file();
    (exists(&manifest.bundle.js) && exists(&manifest.bundle.wasm)).then(|| manifest.bundle.clone())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cli_version_is_read_from_the_lock() {
        let lock =
            std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../Cargo.lock")).unwrap();
        let version = locked_wasm_bindgen_version(&lock).unwrap();
        assert!(version.starts_with("0.2."), "{version}");
        let two = format!("{lock}\n[[package]]\nname = \"wasm-bindgen\"\nversion = \"0.2.1\"\n");
        let error = locked_wasm_bindgen_version(&two).unwrap_err();
        assert!(
            error.contains(&version) && error.contains("0.2.1"),
            "{error}"
        );
    }

    #[test]
    fn finds_our_manifest_only_when_the_files_exist() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("site");
        let manifest = Manifest {
            bundle: ClientBundle {
                js: "/pkg/a-1.js".into(),
                wasm: "/pkg/a-1_bg.wasm".into(),
                immutable: true,
            },
            source_hash: "1".into(),
            server: Some("another build".into()),
            retired: Vec::new(),
        };
        std::fs::create_dir_all(dir.path().join("site.isr")).unwrap();
        std::fs::write(manifest_path(&root), serde_json::to_vec(&manifest).unwrap()).unwrap();
        assert!(our_bundle(&root).is_none());
        std::fs::create_dir_all(root.join("pkg")).unwrap();
        std::fs::write(root.join("pkg/a-1.js"), "").unwrap();
        std::fs::write(root.join("pkg/a-1_bg.wasm"), "").unwrap();
        assert_eq!(our_bundle(&root), Some(manifest.bundle.clone()));
        // Another build of the server made it: `start` builds (or confirms) it again.
        let sources = dir.path().join("client");
        std::fs::create_dir_all(sources.join("src")).unwrap();
        std::fs::write(sources.join("src/lib.rs"), "").unwrap();
        let krate = ClientCrate {
            package: "client",
            manifest_dir: Box::leak(sources.to_string_lossy().into_owned().into_boxed_str()),
        };
        assert!(bundle_of_this_build(&root, &krate).is_none());
        let ours = Manifest {
            server: server_build_id(),
            ..manifest
        };
        write_manifest(&root, &ours).unwrap();
        assert_eq!(
            bundle_of_this_build(&root, &krate),
            Some(ours.bundle.clone())
        );
        // A source of the browser build changed after the bundle was made: built again.
        let later = std::time::SystemTime::now() + std::time::Duration::from_secs(5);
        std::fs::File::options()
            .write(true)
            .open(sources.join("src/lib.rs"))
            .unwrap()
            .set_modified(later)
            .unwrap();
        assert!(bundle_of_this_build(&root, &krate).is_none());
    }

    fn bundle(name: &str) -> ClientBundle {
        ClientBundle {
            js: format!("/pkg/{name}.js"),
            wasm: format!("/pkg/{name}_bg.wasm"),
            immutable: true,
        }
    }

    #[test]
    fn a_replaced_bundle_goes_once_every_stored_page_is_newer_than_its_replacement() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("site");
        std::fs::create_dir_all(root.join("pkg")).unwrap();
        for name in ["a-1", "a-2", "a-3"] {
            for file in [
                format!("{name}.js"),
                format!("{name}.js.gz"),
                format!("{name}_bg.wasm"),
                format!("{name}_bg.wasm.gz"),
            ] {
                std::fs::write(root.join("pkg").join(file), "x").unwrap();
            }
        }
        let first = Manifest {
            bundle: bundle("a-1"),
            source_hash: "1".into(),
            server: None,
            retired: Vec::new(),
        };
        let second = Manifest {
            retired: retire(Some(first), &bundle("a-2")),
            bundle: bundle("a-2"),
            source_hash: "2".into(),
            server: None,
        };
        let third = Manifest {
            retired: retire(Some(second), &bundle("a-3")),
            bundle: bundle("a-3"),
            source_hash: "3".into(),
            server: None,
        };
        assert_eq!(
            third
                .retired
                .iter()
                .map(|r| r.bundle.js.as_str())
                .collect::<Vec<_>>(),
            ["/pkg/a-1.js", "/pkg/a-2.js"]
        );
        let replaced_at = third.retired[1].retired_at_ms;
        write_manifest(&root, &third).unwrap();
        let grace = RETIRED_BUNDLE_GRACE.as_millis() as u64;
        // A page generated before (or within the grace of) the replacements still loads them.
        assert!(remove_retired_bundles(&root, Some(replaced_at))
            .unwrap()
            .is_empty());
        assert!(remove_retired_bundles(&root, Some(replaced_at + grace - 1))
            .unwrap()
            .is_empty());
        assert!(root.join("pkg/a-1.js").is_file());
        // Every page newer: both go, with their variants; the current bundle stays.
        let removed = remove_retired_bundles(&root, Some(replaced_at + grace)).unwrap();
        assert_eq!(removed, ["/pkg/a-1.js", "/pkg/a-2.js"]);
        let left: Vec<String> = std::fs::read_dir(root.join("pkg"))
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        assert_eq!(left.len(), 4, "{left:?}");
        assert!(left.iter().all(|name| name.starts_with("a-3")), "{left:?}");
        assert!(read_manifest(&root).unwrap().retired.is_empty());
        assert_eq!(our_bundle(&root), Some(bundle("a-3")));
    }

    #[test]
    fn the_same_bundle_built_again_is_not_retired() {
        let first = Manifest {
            bundle: bundle("a-1"),
            source_hash: "1".into(),
            server: None,
            retired: Vec::new(),
        };
        assert!(retire(Some(first), &bundle("a-1")).is_empty());
    }
}
