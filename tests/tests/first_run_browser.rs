//! The first `cargo run -p blog` on a machine with only rustup: no `wasm-bindgen` CLI on PATH.
//! The build installs the CLI of the version the app's Cargo.lock resolved itself (into
//! `target/isr-tools/wasm-bindgen-<version>`, once, with one log line),
//! builds the client bundle, and the served post hydrates in chromium. A restart of the same
//! build (`start` over the built site) keeps that bundle without running cargo or rustup.

use isr_tests::browser::{browsers_available, wait_for_hydration, Driver, CLIENT_BUILD_DEADLINE};
use isr_tests::{BlogServer, Fixture};
use std::path::{Path, PathBuf};

/// `PATH` without any folder that holds a `wasm-bindgen`, plus a folder of links to the Rust
/// tools that lived beside it (rustup's `~/.cargo/bin` holds both).
fn path_without_wasm_bindgen(links: &Path) -> String {
    let path = std::env::var("PATH").unwrap_or_default();
    let mut kept = vec![links.to_string_lossy().into_owned()];
    for dir in std::env::split_paths(&path) {
        if dir.join("wasm-bindgen").exists() {
            for tool in ["cargo", "rustc", "rustup", "rustdoc", "cargo-clippy"] {
                let target = dir.join(tool);
                if target.exists() && !links.join(tool).exists() {
                    std::os::unix::fs::symlink(&target, links.join(tool)).expect("link a tool");
                }
            }
        } else {
            kept.push(dir.to_string_lossy().into_owned());
        }
    }
    kept.join(":")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_blog_hydrates_after_a_plain_first_run_without_the_wasm_bindgen_cli() {
    if !browsers_available() {
        return;
    }
    let fx = Fixture::new();
    let links = tempfile::tempdir().expect("a folder for tool links");
    let path = path_without_wasm_bindgen(links.path());
    // isr's own copy of the CLI of the version the workspace's Cargo.lock resolved.
    let lock = std::fs::read_to_string(isr_tests::workspace_root().join("Cargo.lock")).unwrap();
    let version = lock
        .split("[[package]]")
        .find(|entry| entry.contains("name = \"wasm-bindgen\"\n"))
        .and_then(|entry| entry.split("version = \"").nth(1))
        .and_then(|rest| rest.split('"').next())
        .expect("wasm-bindgen in Cargo.lock");
    let own_copy: PathBuf = isr_tests::workspace_root().join(format!(
        "target/isr-tools/wasm-bindgen-{version}/bin/wasm-bindgen"
    ));
    let installed_before = own_copy.exists();
    let root = fx.site_root();
    let build = fx.run_with_deadline(
        &["build", "--site-root", root.to_str().unwrap()],
        &[("ISR_CLIENT_BUILD", "auto"), ("PATH", &path)],
        CLIENT_BUILD_DEADLINE,
    );
    assert_eq!(build.code(), Some(0), "build failed:\n{}", build.stderr);
    assert!(
        build.stderr.contains("client bundle ready"),
        "the first run must produce the client bundle:\n{}",
        build.stderr
    );
    let installing = build
        .stderr
        .lines()
        .filter(|l| l.contains("installing wasm-bindgen-cli"))
        .count();
    // Installed exactly once, by the first run that needed it; later runs use that copy.
    assert_eq!(
        installing,
        usize::from(!installed_before),
        "{}",
        build.stderr
    );
    assert!(own_copy.exists());

    let server = BlogServer::start(&fx, &["serve"], &[]);
    let driver = Driver::start();
    let profile = tempfile::tempdir().expect("browser profile dir");
    let browser = driver.browser(profile.path()).await;
    browser
        .goto(&server.url("/blog/what-is-isr"))
        .await
        .expect("open the post");
    assert!(wait_for_hydration(&browser).await >= 1);
    drop(server);

    // A restart of the same build over the built site (`start`, as a service manager restarts
    // it) serves the bundle that build made: no cargo or rustup runs, and none is on PATH.
    let restarted = BlogServer::start(
        &fx,
        &["start"],
        &[("ISR_CLIENT_BUILD", "auto"), ("PATH", "/nonexistent")],
    );
    let log = restarted.stderr_text();
    assert!(log.contains("client bundle kept"), "{log}");
    // The "serving" line it was started on comes after the client step: no build ran before.
    assert!(!log.contains("building the client bundle"), "{log}");
    browser
        .goto(&restarted.url("/blog/what-is-isr"))
        .await
        .expect("open the post again");
    assert!(wait_for_hydration(&browser).await >= 1);
    browser.close().await.expect("close the browser");
}

/// A client bundle that cannot be built fails `build` with the cause (exit status 1), instead
/// of a warning and pages that never hydrate; `--no-client` builds the pages without it.
#[test]
fn a_client_bundle_that_fails_fails_the_build_unless_no_client() {
    let fx = Fixture::new();
    let root = fx.site_root();
    // No cargo and no rustup on PATH: the wasm build cannot even start.
    let env = [("ISR_CLIENT_BUILD", "auto"), ("PATH", "/nonexistent")];
    let failed = fx.run_with_deadline(
        &["build", "--site-root", root.to_str().unwrap()],
        &env,
        CLIENT_BUILD_DEADLINE,
    );
    assert_eq!(failed.code(), Some(1), "{}", failed.stderr);
    assert!(
        failed.stderr.contains("the client bundle failed to build")
            && failed.stderr.contains("--no-client"),
        "{}",
        failed.stderr
    );
    let built = fx.run_with_deadline(
        &[
            "build",
            "--no-client",
            "--site-root",
            root.to_str().unwrap(),
        ],
        &env,
        CLIENT_BUILD_DEADLINE,
    );
    assert_eq!(built.code(), Some(0), "{}", built.stderr);
    assert!(root.join("blog/what-is-isr/index.html").is_file());
}
