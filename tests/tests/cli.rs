//! The blog binary's command line: `build` output, flags and env, configuration errors, build
//! failures, and graceful shutdown on signals.

use isr_tests::{BlogServer, Fixture};
use std::path::Path;

const TITLE: &str = "What is Incremental Static Regeneration?";

fn assert_built(root: &Path) {
    let list = std::fs::read_to_string(root.join("blog/index.html"))
        .unwrap_or_else(|e| panic!("{}/blog/index.html: {e}", root.display()));
    assert!(list.contains(TITLE), "{list}");
    let post = std::fs::read_to_string(root.join("blog/what-is-isr/index.html"))
        .unwrap_or_else(|e| panic!("{}/blog/what-is-isr/index.html: {e}", root.display()));
    assert!(post.contains(&format!("<h1>{TITLE}</h1>")), "{post}");
    let meta_dir = format!("{}.isr", root.display());
    assert!(
        Path::new(&meta_dir).join("index.sqlite").is_file(),
        "no page index beside the export"
    );
    assert!(!root.join(".isr").exists(), "metadata inside the export");
    assert!(
        !root.join("blog/upcoming/index.html").exists(),
        "a draft was exported"
    );
}

#[test]
fn build_writes_the_static_export_and_prints_a_summary() {
    let fx = Fixture::new();
    let root = fx.path().join("out");
    let out = fx.run(&["build", "--site-root", root.to_str().unwrap()], &[]);
    assert_eq!(out.code(), Some(0), "{}", out.stderr);
    assert_built(&root);
    for slug in [
        "choosing-a-strategy",
        "failure-modes",
        "hydration",
        "on-demand",
        "revalidate-explained",
    ] {
        assert!(
            root.join(format!("blog/{slug}/index.html")).is_file(),
            "{slug}"
        );
    }

    let lines: Vec<&str> = out.stdout.lines().collect();
    let header = lines
        .iter()
        .position(|l| {
            let words: Vec<&str> = l.split_whitespace().collect();
            words == ["Route", "Pages", "Revalidate", "Size", "Time"]
        })
        .unwrap_or_else(|| panic!("no summary header in:\n{}", out.stdout));
    let row = |route: &str| {
        lines[header + 1..]
            .iter()
            .find(|l| l.split_whitespace().next() == Some(route))
            .unwrap_or_else(|| panic!("no {route} row in:\n{}", out.stdout))
            .split_whitespace()
            .collect::<Vec<_>>()
    };
    assert_eq!(row("/blog")[1], "1", "{}", out.stdout);
    assert_eq!(row("/blog/:slug")[1], "6", "{}", out.stdout);
    assert_eq!(&row("/blog/:slug")[2..4], ["5", "s"], "{}", out.stdout);
    assert_eq!(row("/blog/feed.xml")[1], "1", "{}", out.stdout);
    assert!(
        lines.iter().any(|l| l.starts_with("Built 8 pages in ")),
        "{}",
        out.stdout
    );
}

#[test]
fn flags_work_before_the_subcommand() {
    let fx = Fixture::new();
    let root = fx.path().join("before");
    let out = fx.run(&["--site-root", root.to_str().unwrap(), "build"], &[]);
    assert_eq!(out.code(), Some(0), "{}", out.stderr);
    assert_built(&root);
}

#[test]
fn site_root_comes_from_env_and_the_flag_beats_it() {
    let fx = Fixture::new();
    let from_env = fx.path().join("from-env");
    let from_flag = fx.path().join("from-flag");
    let out = fx.run(
        &["build"],
        &[("LEPTOS_SITE_ROOT", from_env.to_str().unwrap())],
    );
    assert_eq!(out.code(), Some(0), "{}", out.stderr);
    assert_built(&from_env);

    let other_env = fx.path().join("other-env");
    let out = fx.run(
        &["build", "--site-root", from_flag.to_str().unwrap()],
        &[("LEPTOS_SITE_ROOT", other_env.to_str().unwrap())],
    );
    assert_eq!(out.code(), Some(0), "{}", out.stderr);
    assert_built(&from_flag);
    assert!(!other_env.exists(), "the env site root was used");
}

#[test]
fn serve_without_a_built_site_is_a_configuration_error() {
    let fx = Fixture::new();
    let empty = fx.path().join("empty");
    std::fs::create_dir(&empty).unwrap();
    let out = fx.run(
        &[
            "serve",
            "--site-root",
            empty.to_str().unwrap(),
            "--addr",
            "127.0.0.1:0",
        ],
        &[],
    );
    assert_eq!(out.code(), Some(2), "{}", out.stderr);
    assert!(out.stderr.contains("--site-root"), "{}", out.stderr);
    assert!(!out.stderr.contains("serving "), "{}", out.stderr);
    assert!(
        std::fs::read_dir(&empty).unwrap().next().is_none(),
        "serve wrote into the site root"
    );
}

/// Arguments, extra env, and what stderr must name.
type Case<'a> = (&'a [&'a str], &'a [(&'a str, &'a str)], &'a str);

#[test]
fn bad_values_are_configuration_errors_naming_the_flag() {
    let fx = Fixture::new();
    let root = fx.path().join("unused");
    let root = root.to_str().unwrap();
    let cases: [Case; 10] = [
        (&["--addr", "nope", "--site-root", root], &[], "--addr"),
        (
            &[
                "--site-root",
                root,
                "--public-url",
                "https://example.com/blog",
            ],
            &[],
            "--public-url",
        ),
        (
            &["--site-root", root],
            &[("ISR_PUBLIC_URL", "example.com")],
            "ISR_PUBLIC_URL",
        ),
        (
            &[
                "serve",
                "--site-root",
                root,
                "--cdn-purge",
                "ftp://127.0.0.1",
            ],
            &[],
            "--cdn-purge",
        ),
        (
            &["--site-root", root],
            &[("ISR_CDN_PURGE", "http://127.0.0.1:1/purge")],
            "ISR_CDN_PURGE",
        ),
        (
            &["--site-root", root, "--cdn-purge", "http://127.0.0.1:1"],
            &[("ISR_PUBLIC_HOST", "not a host")],
            "ISR_PUBLIC_HOST",
        ),
        (
            &["--site-root", root, "--public-host", "www.example.com"],
            &[],
            "--public-host",
        ),
        (
            &["start", "--site-root", root, "--addr", "nope"],
            &[],
            "--addr",
        ),
        (
            &["--site-root", root],
            &[("LEPTOS_SITE_ADDR", "nope")],
            "LEPTOS_SITE_ADDR",
        ),
        (
            &["build", "--site-root", root, "--jobs", "0"],
            &[],
            "--jobs",
        ),
    ];
    for (args, envs, needle) in cases {
        let out = fx.run(args, envs);
        assert_eq!(out.code(), Some(2), "{args:?} {envs:?}: {}", out.stderr);
        assert!(
            out.stderr.contains(needle),
            "{args:?} {envs:?}: {needle} not in {}",
            out.stderr
        );
        assert_eq!(
            out.stderr.lines().filter(|l| !l.trim().is_empty()).count(),
            1,
            "a one-line message: {}",
            out.stderr
        );
    }
    assert!(
        !Path::new(root).exists(),
        "a failed configuration built anyway"
    );
}

#[tokio::test]
async fn a_second_server_on_a_used_address_is_refused() {
    let fx = Fixture::new();
    // Serving threads listen with SO_REUSEPORT; another isr on the same address must still be
    // "address in use", never a second member of the group sharing the traffic.
    let server = BlogServer::start(&fx, &[], &[]);
    let addr = server.addr().to_string();
    let root = fx.site_root();
    let out = fx.run(
        &[
            "serve",
            "--site-root",
            root.to_str().unwrap(),
            "--addr",
            &addr,
        ],
        &[],
    );
    assert_eq!(out.code(), Some(2), "{}", out.stderr);
    assert!(
        out.stderr.contains("cannot listen") && out.stderr.contains("--addr"),
        "{}",
        out.stderr
    );
    assert_eq!(
        server.get("/blog").await.status,
        200,
        "the first one serves on"
    );
}

#[tokio::test]
async fn addr_flag_beats_the_env() {
    let fx = Fixture::new();
    // The harness passes --addr 127.0.0.1:0.
    let server = BlogServer::start(&fx, &[], &[("LEPTOS_SITE_ADDR", "nope")]);
    assert_eq!(server.get("/blog").await.status, 200);
}

#[test]
fn broken_post_fails_the_build_unless_keep_going() {
    let fx = Fixture::new();
    fx.write_post(
        "broken",
        "---\ntitle: [unclosed\ndate: 2026-11-30\n---\nBroken.\n",
    );
    let root = fx.path().join("site-broken");
    let out = fx.run(&["build", "--site-root", root.to_str().unwrap()], &[]);
    assert_ne!(out.code(), Some(0), "{}", out.stdout);
    assert!(out.code().is_some(), "killed by a signal");
    assert!(
        out.stderr.contains("/blog/broken"),
        "the page path is in stderr:\n{}",
        out.stderr
    );

    let out = fx.run(
        &[
            "build",
            "--keep-going",
            "--site-root",
            root.to_str().unwrap(),
        ],
        &[],
    );
    assert_eq!(out.code(), Some(0), "{}", out.stderr);
    assert_built(&root);
    assert!(!root.join("blog/broken/index.html").exists());
    let all = format!("{}\n{}", out.stdout, out.stderr);
    assert!(
        all.contains("/blog/broken"),
        "the failure is reported:\n{all}"
    );
    let list = std::fs::read_to_string(root.join("blog/index.html")).unwrap();
    assert!(!list.contains("data-slug=\"broken\""), "{list}");
}

#[tokio::test]
async fn signals_shut_the_server_down_gracefully() {
    for signal in ["TERM", "INT"] {
        let fx = Fixture::new();
        let mut server = BlogServer::start(&fx, &[], &[]);
        assert_eq!(server.get("/blog").await.status, 200);
        let status = server.stop_with(signal);
        assert_eq!(
            status.code(),
            Some(0),
            "SIG{signal}: {status}\n{}",
            server.stderr_text()
        );
    }
}

#[tokio::test]
async fn start_over_a_built_site_answers_at_once_and_rebuilds_in_the_background() {
    use isr_tests::{bench_binary, run_to_completion, serving_on_a_free_port};
    use std::process::{Command, Stdio};
    use std::time::{Duration, Instant};
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("site");
    let bench = |slow_ms: &str| {
        let mut command = Command::new(bench_binary());
        command
            .env("BENCH_PAGES", "20")
            .env("BENCH_SLOW_MS", slow_ms)
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        command
    };
    let mut first = bench("10");
    first.args(["build", "--site-root"]).arg(&root);
    let built = run_to_completion(first, Duration::from_secs(60));
    assert_eq!(built.code(), Some(0), "{}", built.stderr);
    let modified = |path: &str| {
        std::fs::metadata(root.join(path))
            .unwrap()
            .modified()
            .unwrap()
    };
    let before = modified("slow/index.html");

    // Restart with `start`: the slow pages now take 4 s to load, so the rebuild takes that long.
    let mut restart = bench("4000");
    serving_on_a_free_port(&mut restart, &["start"], &[], &root);
    let started = Instant::now();
    let server = BlogServer::spawn(restart);
    let page = server.get("/page").await;
    let answered = started.elapsed();
    assert_eq!(page.status, 200);
    // "At once" is an ordering, checked below once the rebuild has finished: the answer's
    // access-log line comes before "background rebuild finished" (the rebuild takes ≥ 4 s).
    assert_eq!(
        server.get("/slow").await.status,
        200,
        "old pages serve meanwhile"
    );
    let deadline = Instant::now() + Duration::from_secs(30);
    while !server.stderr_text().contains("background rebuild finished") {
        assert!(
            Instant::now() < deadline,
            "no rebuild: {}",
            server.stderr_text()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let took = started.elapsed();
    assert!(
        took >= Duration::from_secs(4),
        "the rebuild ran the 4 s loaders: {took:?}"
    );
    // One writer thread prints the log lines in the order they were emitted.
    let log = server.stderr_text();
    let first_answer = log
        .lines()
        .position(|l| {
            l.contains("isr::access") && l.contains("path=/page}") && l.contains("status=200")
        })
        .unwrap_or_else(|| panic!("no access-log line for GET /page:\n{log}"));
    let rebuilt = log
        .lines()
        .position(|l| l.contains("background rebuild finished"))
        .expect("the rebuild's line");
    assert!(
        first_answer < rebuilt,
        "the first page was answered only after the rebuild finished:\n{log}"
    );
    assert!(
        server.stdout_text().contains("Built "),
        "{}",
        server.stdout_text()
    );
    assert!(
        modified("slow/index.html") > before,
        "the rebuild wrote the page again"
    );
    eprintln!("first 200 after {answered:?}; background rebuild done after {took:?}");
}

#[tokio::test]
async fn every_request_gets_one_access_log_line() {
    let fx = Fixture::new();
    let server = BlogServer::start(&fx, &[], &[]);
    assert_eq!(server.get("/blog").await.status, 200);
    assert_eq!(server.get("/nope").await.status, 404);
    let lines = |path: &str| {
        server
            .stderr_text()
            .lines()
            .filter(|l| l.contains("isr::access") && l.contains(&format!("path={path}}}")))
            .map(str::to_string)
            .collect::<Vec<_>>()
    };
    let deadline = std::time::Instant::now() + isr_tests::POLL_DEADLINE;
    while lines("/nope").is_empty() {
        assert!(
            std::time::Instant::now() < deadline,
            "{}",
            server.stderr_text()
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    let blog = lines("/blog");
    assert_eq!(blog.len(), 1, "one line per request: {blog:?}");
    assert!(
        blog[0].contains("method=GET")
            && blog[0].contains("status=200")
            && blog[0].contains("cache=HIT")
            && blog[0].contains("ms="),
        "{}",
        blog[0]
    );
    let nope = lines("/nope");
    assert!(
        nope[0].contains("status=404") && nope[0].contains("cache=-"),
        "{}",
        nope[0]
    );
}

#[test]
fn a_build_removes_the_client_bundles_no_stored_page_loads_any_more() {
    let fx = Fixture::new();
    let root = fx.path().join("out");
    let pkg = root.join("pkg");
    std::fs::create_dir_all(&pkg).unwrap();
    let files = |name: &str| {
        [".js", ".js.gz", "_bg.wasm", "_bg.wasm.gz"]
            .map(|suffix| pkg.join(format!("{name}{suffix}")))
    };
    for name in ["blog-old", "blog-recent", "blog-current"] {
        for file in files(name) {
            std::fs::write(file, "x").unwrap();
        }
    }
    let bundle = |name: &str| serde_json::json!({"js": format!("/pkg/{name}.js"), "wasm": format!("/pkg/{name}_bg.wasm"), "immutable": true});
    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64;
    // Replaced two days ago (every page built now is newer), and a minute ago (within the grace in
    // which a process of the previous build may still write pages that load it).
    let manifest = serde_json::json!({
        "bundle": bundle("blog-current"),
        "source_hash": "current",
        "retired": [
            {"bundle": bundle("blog-old"), "retired_at_ms": now_ms - 2 * 86_400_000},
            {"bundle": bundle("blog-recent"), "retired_at_ms": now_ms - 60_000},
        ],
    });
    let meta = fx.path().join("out.isr");
    std::fs::create_dir_all(&meta).unwrap();
    std::fs::write(meta.join("client.json"), manifest.to_string()).unwrap();

    let out = fx.run(
        &[
            "build",
            "--site-root",
            root.to_str().unwrap(),
            "--no-client",
        ],
        &[],
    );
    assert_eq!(out.code(), Some(0), "{}", out.stderr);
    assert!(
        files("blog-old").iter().all(|f| !f.exists()),
        "{}",
        out.stderr
    );
    assert!(files("blog-recent").iter().all(|f| f.exists()));
    assert!(files("blog-current").iter().all(|f| f.exists()));
    let manifest: serde_json::Value =
        serde_json::from_slice(&std::fs::read(meta.join("client.json")).unwrap()).unwrap();
    assert_eq!(
        manifest["retired"].as_array().unwrap().len(),
        1,
        "{manifest}"
    );
}

#[test]
fn the_default_site_root_is_in_the_target_folder_or_beside_the_binary_whatever_the_working_folder()
{
    let fx = Fixture::new();
    let elsewhere = tempfile::tempdir().unwrap();
    let run = |binary: &Path| {
        let mut command = std::process::Command::new(binary);
        command
            .arg("build")
            .current_dir(elsewhere.path())
            .env_remove("LEPTOS_SITE_ROOT")
            .env("BLOG_CONTENT_DIR", fx.content_dir())
            .env("ISR_CLIENT_BUILD", "off")
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped());
        let out = isr_tests::run_to_completion(command, isr_tests::EXIT_DEADLINE);
        assert_eq!(out.code(), Some(0), "{}", out.stderr);
    };
    // A binary in a cargo target folder (marked by the CACHEDIR.TAG cargo writes).
    let target = fx.path().join("custom-target");
    std::fs::create_dir_all(target.join("release")).unwrap();
    std::fs::write(
        target.join("CACHEDIR.TAG"),
        "Signature: 8a477f597d28d172789f06886806bc55\n",
    )
    .unwrap();
    let in_target = target.join("release/blog");
    std::fs::copy(isr_tests::blog_binary(), &in_target).unwrap();
    run(&in_target);
    assert_built(&target.join("site/blog"));
    // A binary deployed on its own.
    let deployed = fx.path().join("opt");
    std::fs::create_dir_all(&deployed).unwrap();
    std::fs::copy(isr_tests::blog_binary(), deployed.join("blog")).unwrap();
    run(&deployed.join("blog"));
    assert_built(&deployed.join("blog-site"));
    assert_eq!(
        std::fs::read_dir(elsewhere.path()).unwrap().count(),
        0,
        "nothing in the working folder"
    );
}
