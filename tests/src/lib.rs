//! Harness for black-box tests of the `blog` example: it builds the binary once per test
//! process, copies the blog's posts into a fresh temporary folder, spawns the server on a free
//! loopback port, and talks real HTTP to it.
//!
//! Not run as a documentation test: it starts the blog binary (the integration tests do).
//!
//! ```no_run
//! # async fn demo() {
//! use isr_tests::{BlogServer, Fixture};
//! let fx = Fixture::new();
//! let server = BlogServer::start(&fx, &[], &[]);
//! let page = server.get("/blog/what-is-isr").await;
//! assert_eq!(page.status, 200);
//! # }
//! ```
//!
//! Every wait is a poll with a deadline; every spawned process is killed when its handle drops.

use std::collections::BTreeMap;
use std::future::Future;
use std::io::{BufRead, BufReader, Read};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant, SystemTime};

use tokio::io::{AsyncReadExt, AsyncWriteExt};

pub mod browser;
pub mod redis;
pub mod shop;
pub mod varnish;

/// The bearer token the harness gives the server (`ISR_REVALIDATE_SECRET`) unless told not to.
pub const SECRET: &str = "test-secret-0123456789";

/// `revalidate` of `/blog/:slug`.
pub const POST_REVALIDATE: Duration = Duration::from_secs(5);

/// How long a server may take to build and print its "serving" line.
pub const START_DEADLINE: Duration = Duration::from_secs(20);

/// How long a process may take to exit after a signal, or a one-shot command to finish.
pub const EXIT_DEADLINE: Duration = Duration::from_secs(20);

/// The usual deadline of a poll for something the server does in the background.
pub const POLL_DEADLINE: Duration = Duration::from_secs(15);

/// Pause between two polls.
pub const POLL_INTERVAL: Duration = Duration::from_millis(150);

/// Timeout of one HTTP request.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(20);

/// Env vars of the binary that the harness controls: removed from the inherited environment so
/// that the developer's shell cannot change what a test sees.
const CONTROLLED_ENV: &[&str] = &[
    "LEPTOS_SITE_ADDR",
    "LEPTOS_SITE_ROOT",
    "ISR_REVALIDATE_SECRET",
    "ISR_JOBS",
    "BLOG_CONTENT_DIR",
    "BLOG_LIKES_FILE",
    "RUST_LOG",
    "ISR_CLIENT_BUILD",
    "LEPTOS_OUTPUT_NAME",
    "LEPTOS_WATCH",
    "ISR_METRICS_TOKEN",
    "ISR_ADMIN_TOKEN",
    "ISR_PREVIEW_SECRET",
    "ISR_URL",
    "ISR_REDIS_URL",
    "ISR_REDIS_PREFIX",
    "ISR_HEADER_TIMEOUT",
    "ISR_IDLE_TIMEOUT",
    "ISR_BODY_TIMEOUT",
    "ISR_MAX_CONNECTIONS",
    "ISR_MAX_HEADER_BYTES",
    "ISR_TRUSTED_PROXIES",
    "ISR_MAX_AUTH_FAILURES",
    "ISR_PUBLIC_URL",
];

/// The workspace root (the parent of this crate).
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("the tests crate lives inside the workspace")
        .to_path_buf()
}

/// The `blog` executable, built once per test process with
/// `$CARGO build -p blog --message-format=json` (its path is read from cargo's JSON output, not
/// guessed).
pub fn blog_binary() -> &'static Path {
    static BINARY: OnceLock<PathBuf> = OnceLock::new();
    BINARY.get_or_init(|| cargo_build_binary("blog"))
}

/// The `isr-bench` executable (`bench/app`), built once per test process.
pub fn bench_binary() -> &'static Path {
    static BINARY: OnceLock<PathBuf> = OnceLock::new();
    BINARY.get_or_init(|| cargo_build_binary("isr-bench"))
}

/// Builds the binary of workspace package `package` (the binary has the package's name) with
/// `$CARGO build -p <package> --message-format=json` and returns its path as cargo reports it.
/// Callers cache it (see [`blog_binary`]).
///
/// ```no_run
/// let shop = isr_tests::cargo_build_binary("shop");
/// assert!(shop.ends_with("shop"));
/// ```
pub fn cargo_build_binary(package: &str) -> PathBuf {
    cargo_build_executable(&["-p", package], package)
}

/// `$CARGO build -p <package> --example <example>` and the example's path (see
/// [`cargo_build_binary`]).
///
/// ```no_run
/// let embedded = isr_tests::cargo_build_example("blog", "embedded");
/// assert!(embedded.ends_with("embedded"));
/// ```
pub fn cargo_build_example(package: &str, example: &str) -> PathBuf {
    cargo_build_executable(&["-p", package, "--example", example], example)
}

fn cargo_build_executable(args: &[&str], target: &str) -> PathBuf {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let output = Command::new(&cargo)
        .arg("build")
        .args(args)
        .arg("--message-format=json")
        .current_dir(workspace_root())
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("cannot run {cargo:?} build {args:?}: {e}"));
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "`cargo build {args:?}` failed ({}):\n{}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    let executable = stdout
        .lines()
        .filter_map(|line| serde_json::from_str::<serde_json::Value>(line).ok())
        .filter(|msg| msg["reason"] == "compiler-artifact" && msg["target"]["name"] == target)
        .filter_map(|msg| msg["executable"].as_str().map(PathBuf::from))
        .next_back()
        .unwrap_or_else(|| {
            panic!("`cargo build {args:?}` reported no `{target}` executable:\n{stdout}")
        });
    assert!(executable.is_file(), "{} is missing", executable.display());
    executable
}

/// The blog's own posts folder (`examples/blog/content`).
pub fn shipped_content() -> PathBuf {
    workspace_root().join("examples/blog/content")
}

/// A post file: YAML front matter, then the Markdown `body`.
///
/// ```
/// let text = isr_tests::post_markdown("Hi", "2026-01-02", "Body.");
/// assert!(text.starts_with("---\ntitle: \"Hi\"\ndate: 2026-01-02\n---\n"));
/// ```
pub fn post_markdown(title: &str, date: &str, body: &str) -> String {
    format!(
        "---\ntitle: {}\ndate: {date}\n---\n{body}\n",
        serde_json::Value::from(title)
    )
}

/// Decompresses a body sent with `content-encoding: encoding` (`br` or `gzip`); panics when it
/// does not decompress.
///
/// ```
/// use std::io::Write;
/// let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
/// gz.write_all(b"<p>hi</p>").unwrap();
/// assert_eq!(isr_tests::decompressed("gzip", &gz.finish().unwrap()), "<p>hi</p>");
/// ```
pub fn decompressed(encoding: &str, body: &[u8]) -> String {
    let mut text = String::new();
    match encoding {
        "br" => brotli::Decompressor::new(body, 4096).read_to_string(&mut text),
        "gzip" => flate2::read::GzDecoder::new(body).read_to_string(&mut text),
        other => panic!("unexpected encoding {other}"),
    }
    .unwrap_or_else(|e| panic!("{encoding} body does not decompress: {e}"));
    text
}

/// GETs `url` accepting only `encoding` (`br`, `gzip`), asserts that the answer is in it, and
/// returns the body decompressed with the size it had on the wire.
///
/// Not run as a documentation test: it needs a server (the HTTP tests have them).
///
/// ```no_run
/// # async fn demo() {
/// let (text, wire) = isr_tests::get_encoded(&reqwest::Client::new(), "http://127.0.0.1:3000/blog", "br").await;
/// assert!(wire < text.len());
/// # }
/// ```
pub async fn get_encoded(client: &reqwest::Client, url: &str, encoding: &str) -> (String, usize) {
    let response = client
        .get(url)
        .header("accept-encoding", encoding)
        .send()
        .await
        .unwrap_or_else(|e| panic!("GET {url}: {e}"));
    assert_eq!(
        response
            .headers()
            .get("content-encoding")
            .and_then(|v| v.to_str().ok()),
        Some(encoding),
        "{url} in {encoding}"
    );
    let bytes = response.bytes().await.expect("read the body");
    (decompressed(encoding, &bytes), bytes.len())
}

/// Whether `program arg` runs and exits 0 (is the program installed?).
///
/// ```
/// assert!(!isr_tests::program_runs("no-such-program-here", "--version"));
/// ```
pub fn program_runs(program: &str, arg: &str) -> bool {
    Command::new(program)
        .arg(arg)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// A free loopback port (bound, then released for the process that will listen on it).
///
/// Racy: the port is free when this returns, not necessarily when the process binds it (any
/// process may take it meanwhile). Our own apps never need it: they listen on
/// `127.0.0.1:0` and print the address they got (see [`BlogServer::spawn`]). It is only for
/// third-party servers given a fixed port (Redis, Varnish, nginx, chromedriver), whose helpers
/// check that their own process answers and start it again on another port when it exits
/// because the port was taken.
///
/// ```
/// assert_ne!(isr_tests::free_port(), 0);
/// ```
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

/// One test's private world: a copy of the blog's posts and an empty site root, both inside
/// one temporary folder removed on drop.
pub struct Fixture {
    dir: tempfile::TempDir,
}

impl Default for Fixture {
    fn default() -> Self {
        Self::new()
    }
}

impl Fixture {
    /// Copies `examples/blog/content/*.md` into `<tmp>/content` and creates `<tmp>/site`.
    pub fn new() -> Fixture {
        let dir = tempfile::Builder::new()
            .prefix("isr-tests-")
            .tempdir()
            .expect("create a temporary folder");
        let content = dir.path().join("content");
        std::fs::create_dir(&content).expect("create the content folder");
        let mut copied = 0;
        for entry in std::fs::read_dir(shipped_content()).expect("read examples/blog/content") {
            let path = entry.expect("list examples/blog/content").path();
            if path.extension().is_some_and(|e| e == "md") {
                std::fs::copy(&path, content.join(path.file_name().unwrap())).expect("copy a post");
                copied += 1;
            }
        }
        assert!(copied >= 7, "expected the shipped posts, found {copied}");
        std::fs::create_dir(dir.path().join("site")).expect("create the site root");
        Fixture { dir }
    }

    /// The temporary folder holding everything else.
    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// The posts folder given to the server as `BLOG_CONTENT_DIR`.
    pub fn content_dir(&self) -> PathBuf {
        self.dir.path().join("content")
    }

    /// Where [`Fixture::hide_content`] moves the posts folder.
    fn hidden_content_dir(&self) -> PathBuf {
        self.dir.path().join("content.away")
    }

    /// The site root given to the server as `--site-root`.
    pub fn site_root(&self) -> PathBuf {
        self.dir.path().join("site")
    }

    /// The static export of the page at `path` (`/blog/x` → `<site>/blog/x/index.html`).
    pub fn page_file(&self, path: &str) -> PathBuf {
        let mut file = self.site_root();
        for segment in path.split('/').filter(|s| !s.is_empty()) {
            file.push(segment);
        }
        file.join("index.html")
    }

    /// The file of the post `slug`.
    pub fn post_file(&self, slug: &str) -> PathBuf {
        self.content_dir().join(format!("{slug}.md"))
    }

    /// The text of the post `slug`.
    pub fn read_post(&self, slug: &str) -> String {
        std::fs::read_to_string(self.post_file(slug))
            .unwrap_or_else(|e| panic!("read post {slug}: {e}"))
    }

    /// Writes the post `slug` atomically (temporary file + rename), so the server never reads
    /// half a file.
    pub fn write_post(&self, slug: &str, text: &str) {
        let tmp = self.content_dir().join(format!(".{slug}.tmp"));
        std::fs::write(&tmp, text).unwrap_or_else(|e| panic!("write {}: {e}", tmp.display()));
        std::fs::rename(&tmp, self.post_file(slug))
            .unwrap_or_else(|e| panic!("rename into post {slug}: {e}"));
    }

    /// Replaces `from` (which must be there) by `to` in the post `slug`.
    pub fn edit_post(&self, slug: &str, from: &str, to: &str) {
        let text = self.read_post(slug);
        assert!(text.contains(from), "post {slug} does not contain {from:?}");
        self.write_post(slug, &text.replace(from, to));
    }

    /// Deletes the post `slug`.
    pub fn remove_post(&self, slug: &str) {
        std::fs::remove_file(self.post_file(slug))
            .unwrap_or_else(|e| panic!("remove post {slug}: {e}"));
    }

    /// Renames the posts folder away: the data source is "down".
    pub fn hide_content(&self) {
        std::fs::rename(self.content_dir(), self.hidden_content_dir())
            .expect("rename the content folder away");
    }

    /// Undoes [`Fixture::hide_content`].
    pub fn restore_content(&self) {
        std::fs::rename(self.hidden_content_dir(), self.content_dir())
            .expect("restore the content folder");
    }

    /// Waits until the stored page at `path` is at least `revalidate` old, i.e. stale.
    ///
    /// The page's generation time is at most the modification time of its static export
    /// (the server stamps the page, then writes the file), so once `now ≥ mtime + revalidate`
    /// (plus a small margin for clock granularity) the server must consider it stale. Polls
    /// every 100 ms; panics if that takes longer than `revalidate + 15 s` (e.g. the file keeps
    /// changing or is missing).
    pub async fn wait_until_stale(&self, path: &str, revalidate: Duration) {
        const MARGIN: Duration = Duration::from_millis(250);
        let file = self.page_file(path);
        let deadline = Instant::now() + revalidate + POLL_DEADLINE;
        loop {
            let modified = std::fs::metadata(&file)
                .and_then(|m| m.modified())
                .unwrap_or_else(|e| panic!("page file {}: {e}", file.display()));
            let age = SystemTime::now()
                .duration_since(modified)
                .unwrap_or(Duration::ZERO);
            if age >= revalidate + MARGIN {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "{path} did not become stale in time (age {age:?})"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Runs the binary once (`build`, a bad flag, …) with `BLOG_CONTENT_DIR` set to this
    /// fixture's posts, and waits (deadline) for it to exit. No `--site-root` is added.
    pub fn run(&self, args: &[&str], envs: &[(&str, &str)]) -> RunOutput {
        self.run_with_deadline(args, envs, EXIT_DEADLINE)
    }

    /// Like [`Fixture::run`] with another deadline (a build that compiles the client bundle
    /// takes minutes when cold).
    pub fn run_with_deadline(
        &self,
        args: &[&str],
        envs: &[(&str, &str)],
        deadline: Duration,
    ) -> RunOutput {
        let mut command = blog_command(&self.content_dir(), envs);
        command.args(args);
        run_to_completion(command, deadline)
    }
}

/// What a one-shot run of the binary did.
#[derive(Debug)]
pub struct RunOutput {
    /// How it exited.
    pub status: ExitStatus,
    /// Its standard output.
    pub stdout: String,
    /// Its standard error (ANSI colours removed).
    pub stderr: String,
}

impl RunOutput {
    /// The exit code (`None` when killed by a signal).
    pub fn code(&self) -> Option<i32> {
        self.status.code()
    }
}

/// The blog's command as the other helpers make it (its environment), run through
/// `bash -c <script> <blog> <args>`: a script ending in `exec "$0" "$@"` becomes the blog, which
/// keeps the shell's pid (what socket activation's `LISTEN_PID=$$` needs). Add the blog's
/// arguments to the returned command. (bash, not `sh`: Debian's dash redirects descriptors 0 to
/// 9 only.)
///
/// ```
/// let command = isr_tests::blog_through_shell(r#"exec "$0" "$@""#, std::path::Path::new("/c"));
/// assert_eq!(command.get_program(), "bash");
/// assert!(command.get_envs().any(|(key, value)| key == "BLOG_CONTENT_DIR" && value == Some("/c".as_ref())));
/// ```
pub fn blog_through_shell(script: &str, content: &Path) -> Command {
    let blog = blog_command(content, &[]);
    let mut command = Command::new("bash");
    command.arg("-c").arg(script).arg(blog.get_program());
    for (key, value) in blog.get_envs() {
        match value {
            Some(value) => command.env(key, value),
            None => command.env_remove(key),
        };
    }
    command
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    command
}

fn blog_command(content: &Path, envs: &[(&str, &str)]) -> Command {
    let mut command = Command::new(blog_binary());
    for var in CONTROLLED_ENV {
        command.env_remove(var);
    }
    command
        .env("BLOG_CONTENT_DIR", content)
        // Runs that give no `--site-root` stay in the fixture's folder, never in the
        // workspace's `target/site/blog` (the default for a binary in cargo's target folder).
        .env("LEPTOS_SITE_ROOT", content.with_file_name("site"))
        // The like button's counts stay in the fixture too.
        .env("BLOG_LIKES_FILE", content.with_file_name("likes.json"))
        .env("RUST_LOG", "info")
        // The HTTP tests need no client bundle; the browser tests turn its build back on.
        .env("ISR_CLIENT_BUILD", "off")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    for (key, value) in envs {
        command.env(key, value);
    }
    command
}

/// Runs `command` (stdout and stderr piped) to completion, at most `limit` (then it is killed
/// and the test fails), and collects its output.
///
/// ```no_run
/// use std::process::{Command, Stdio};
/// let mut command = Command::new(isr_tests::blog_binary());
/// command.arg("--help").stdout(Stdio::piped()).stderr(Stdio::piped());
/// let out = isr_tests::run_to_completion(command, std::time::Duration::from_secs(20));
/// assert_eq!(out.code(), Some(0));
/// ```
pub fn run_to_completion(mut command: Command, limit: Duration) -> RunOutput {
    let mut child = command
        .spawn()
        .unwrap_or_else(|e| panic!("spawn {command:?}: {e}"));
    let stdout = collect_lines(child.stdout.take().expect("piped stdout"));
    let stderr = collect_lines(child.stderr.take().expect("piped stderr"));
    let deadline = Instant::now() + limit;
    let status = loop {
        match child.try_wait().expect("wait for the child") {
            Some(status) => break status,
            None if Instant::now() >= deadline => {
                let _ = child.kill();
                let _ = child.wait();
                panic!(
                    "{command:?} did not finish within {limit:?}; stderr:\n{}",
                    stderr.lock().unwrap().join("\n")
                );
            }
            None => std::thread::sleep(Duration::from_millis(50)),
        }
    };
    // The pipes close when the process exits; give the reader threads a moment to drain them.
    let drained = Instant::now() + Duration::from_secs(5);
    while Arc::strong_count(&stdout) + Arc::strong_count(&stderr) > 2 && Instant::now() < drained {
        std::thread::sleep(Duration::from_millis(10));
    }
    let text = |lines: &Arc<Mutex<Vec<String>>>| lines.lock().unwrap().join("\n");
    RunOutput {
        status,
        stdout: text(&stdout),
        stderr: text(&stderr),
    }
}

/// Reads `pipe` line by line in a background thread (ANSI colours removed). The thread drops
/// its handle on the returned buffer when the pipe closes.
fn collect_lines(pipe: impl Read + Send + 'static) -> Arc<Mutex<Vec<String>>> {
    let lines = Arc::new(Mutex::new(Vec::new()));
    let sink = lines.clone();
    std::thread::spawn(move || {
        for line in BufReader::new(pipe).split(b'\n') {
            let Ok(line) = line else { break };
            let line = strip_ansi(&String::from_utf8_lossy(&line));
            sink.lock()
                .unwrap()
                .push(line.trim_end_matches('\r').to_string());
        }
    });
    lines
}

/// Removes ANSI escape sequences (`ESC [ … letter`).
///
/// ```
/// assert_eq!(isr_tests::strip_ansi("\u{1b}[32m INFO\u{1b}[0m x"), " INFO x");
/// ```
pub fn strip_ansi(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            if chars.clone().next() == Some('[') {
                chars.next();
                for c in chars.by_ref() {
                    if c.is_ascii_alphabetic() {
                        break;
                    }
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// Adds `envs`, then `args --site-root <site_root> --addr 127.0.0.1:0` to an app command.
///
/// ```
/// let mut command = std::process::Command::new("blog");
/// isr_tests::serving_on_a_free_port(&mut command, &["serve"], &[("A", "1")], std::path::Path::new("/s"));
/// let args: Vec<_> = command.get_args().collect();
/// assert_eq!(args, ["serve", "--site-root", "/s", "--addr", "127.0.0.1:0"]);
/// ```
pub fn serving_on_a_free_port(
    command: &mut Command,
    args: &[&str],
    envs: &[(&str, &str)],
    site_root: &Path,
) {
    for (key, value) in envs {
        command.env(key, value);
    }
    // A debug build given no subcommand develops (`dev`): the tests serve the site (`start`)
    // unless they name a subcommand.
    if !args
        .iter()
        .any(|arg| ["build", "serve", "start", "dev"].contains(arg))
    {
        command.arg("start");
    }
    command
        .args(args)
        .arg("--site-root")
        .arg(site_root)
        .args(["--addr", "127.0.0.1:0"]);
}

/// A running `blog` server on a free loopback port; killed on drop.
pub struct BlogServer {
    child: Child,
    addr: SocketAddr,
    stdout: Arc<Mutex<Vec<String>>>,
    stderr: Arc<Mutex<Vec<String>>>,
    client: reqwest::Client,
    exited: Option<ExitStatus>,
    /// What `/_isr/metrics` needs (`ISR_METRICS_TOKEN`, else `ISR_ADMIN_TOKEN`), as spawned.
    metrics_token: Option<String>,
}

impl BlogServer {
    /// Spawns `blog <args> --site-root <fixture site> --addr 127.0.0.1:0` with
    /// `BLOG_CONTENT_DIR=<fixture posts>`, `ISR_REVALIDATE_SECRET=test-secret-0123456789`, `RUST_LOG=info`
    /// and then `envs`, and waits (deadline) for its "serving N pages from DIR at URL" line.
    /// With no subcommand in `args` the binary builds, then serves.
    pub fn start(fixture: &Fixture, args: &[&str], envs: &[(&str, &str)]) -> BlogServer {
        Self::start_with_secret(fixture, args, envs, Some(SECRET))
    }

    /// Like [`BlogServer::start`], with the given revalidation secret (`None`: the variable
    /// is not set, so on-demand revalidation is off).
    pub fn start_with_secret(
        fixture: &Fixture,
        args: &[&str],
        envs: &[(&str, &str)],
        secret: Option<&str>,
    ) -> BlogServer {
        let mut command = blog_command(&fixture.content_dir(), &[]);
        if let Some(secret) = secret {
            command.env("ISR_REVALIDATE_SECRET", secret);
        }
        serving_on_a_free_port(&mut command, args, envs, &fixture.site_root());
        Self::spawn(command)
    }

    /// Spawns `command` (any app binary, fully configured: args, env, `--addr 127.0.0.1:0`,
    /// piped stdout and stderr) and waits (deadline) for its "serving N pages from DIR at URL"
    /// line.
    ///
    /// ```no_run
    /// use std::process::{Command, Stdio};
    /// let mut command = Command::new(isr_tests::shop::shop_binary());
    /// command.args(["--addr", "127.0.0.1:0"]).stdout(Stdio::piped()).stderr(Stdio::piped());
    /// let server = isr_tests::BlogServer::spawn(command);
    /// println!("{}", server.base_url());
    /// ```
    pub fn spawn(command: Command) -> BlogServer {
        Self::spawn_with_deadline(command, START_DEADLINE)
    }

    /// Like [`BlogServer::spawn`], waiting at most `deadline` for the "serving" line.
    pub fn spawn_with_deadline(mut command: Command, deadline: Duration) -> BlogServer {
        let env_of = |name: &str| {
            command
                .get_envs()
                .find(|(key, _)| *key == name)
                .and_then(|(_, value)| value)
                .map(|value| value.to_string_lossy().into_owned())
        };
        let metrics_token = env_of("ISR_METRICS_TOKEN").or_else(|| env_of("ISR_ADMIN_TOKEN"));
        let mut child = command
            .spawn()
            .unwrap_or_else(|e| panic!("spawn {command:?}: {e}"));
        let stdout = collect_lines(child.stdout.take().expect("piped stdout"));
        let stderr = collect_lines(child.stderr.take().expect("piped stderr"));
        let client = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .timeout(REQUEST_TIMEOUT)
            .build()
            .expect("build the HTTP client");
        let mut server = BlogServer {
            child,
            addr: SocketAddr::from(([127, 0, 0, 1], 0)),
            stdout,
            stderr,
            client,
            exited: None,
            metrics_token,
        };
        // From here on a panic drops `server`, which kills the child.
        let limit = deadline;
        let deadline = Instant::now() + limit;
        loop {
            let found = server
                .stderr
                .lock()
                .unwrap()
                .iter()
                .find_map(|line| serving_addr(line));
            if let Some(addr) = found {
                server.addr = addr;
                return server;
            }
            if let Some(status) = server.child.try_wait().expect("wait for the server") {
                server.exited = Some(status);
                std::thread::sleep(Duration::from_millis(100));
                panic!(
                    "the server exited ({status}) before serving; stderr:\n{}",
                    server.stderr_text()
                );
            }
            assert!(
                Instant::now() < deadline,
                "no `serving … at http://…` line within {limit:?}; stderr:\n{}",
                server.stderr_text()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// The address it listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://127.0.0.1:PORT`.
    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The absolute URL of `path`.
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base_url())
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Everything it printed to stderr so far.
    pub fn stderr_text(&self) -> String {
        self.stderr.lock().unwrap().join("\n")
    }

    /// Everything it printed to stdout so far (the build summary of `start`).
    pub fn stdout_text(&self) -> String {
        self.stdout.lock().unwrap().join("\n")
    }

    /// The HTTP client (redirects disabled).
    pub fn client(&self) -> &reqwest::Client {
        &self.client
    }

    /// A call of the server function at `path` (`/api/post_likes`) with a form-encoded `body`,
    /// as a script or curl makes it (no `Origin`).
    pub async fn call_server_fn(&self, path: &str, body: &str) -> Resp {
        self.send(
            self.request(reqwest::Method::POST, path)
                .header("content-type", "application/x-www-form-urlencoded")
                .body(body.to_owned()),
        )
        .await
    }

    /// A request builder for `method` on `path`.
    pub fn request(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        self.client.request(method, self.url(path))
    }

    /// Sends `request` and reads the whole response.
    pub async fn send(&self, request: reqwest::RequestBuilder) -> Resp {
        let response = request.send().await.unwrap_or_else(|e| {
            panic!(
                "request failed: {e}; server stderr:\n{}",
                self.stderr_text()
            )
        });
        Resp::read(response).await
    }

    /// `GET path`.
    pub async fn get(&self, path: &str) -> Resp {
        self.send(self.request(reqwest::Method::GET, path)).await
    }

    /// `HEAD path`.
    pub async fn head(&self, path: &str) -> Resp {
        self.send(self.request(reqwest::Method::HEAD, path)).await
    }

    /// `POST /_isr/revalidate` with `Authorization: Bearer <SECRET>` and `body` as JSON text
    /// (no content-type header).
    pub async fn revalidate(&self, body: &serde_json::Value) -> Resp {
        self.send(
            self.request(reqwest::Method::POST, "/_isr/revalidate")
                .header("authorization", format!("Bearer {SECRET}"))
                .body(body.to_string()),
        )
        .await
    }

    /// `GET /_isr/metrics` (with the token it needs, if any), parsed.
    pub async fn metrics(&self) -> Metrics {
        let mut request = self.request(reqwest::Method::GET, "/_isr/metrics");
        if let Some(token) = &self.metrics_token {
            request = request.header("authorization", format!("Bearer {token}"));
        }
        let response = self.send(request).await;
        assert_eq!(response.status, 200, "metrics: {}", response.body);
        Metrics::parse(&response.body)
    }

    /// Sends `METHOD target HTTP/1.1` as raw bytes (nothing normalises `target`, so `..` and
    /// odd escapes reach the server as written) and reads the whole response.
    pub async fn raw(&self, method: &str, target: &str) -> RawResponse {
        self.raw_with_body(method, target, &[], b"").await
    }

    /// Sends a raw HTTP/1.1 request with extra `headers` and `body` (with its
    /// `content-length`), writing and reading at the same time, and reads the response.
    ///
    /// A server may answer before it has read the body (401, 413) and close the connection;
    /// the client then sees its writes fail or a reset after the response. Unlike an HTTP
    /// client library, this keeps whatever response bytes arrived before that.
    pub async fn raw_with_body(
        &self,
        method: &str,
        target: &str,
        headers: &[(&str, &str)],
        body: &[u8],
    ) -> RawResponse {
        let mut request = format!(
            "{method} {target} HTTP/1.1\r\nHost: {}\r\nConnection: close\r\n",
            self.addr
        );
        for (name, value) in headers {
            request.push_str(&format!("{name}: {value}\r\n"));
        }
        if !body.is_empty() {
            request.push_str(&format!("content-length: {}\r\n", body.len()));
        }
        request.push_str("\r\n");
        let mut bytes = request.into_bytes();
        bytes.extend_from_slice(body);
        self.raw_bytes(&bytes)
            .await
            .unwrap_or_else(|e| panic!("raw {method} {target}: {e}"))
    }

    /// Sends `bytes` as they are (a whole request, `Host` and all) and reads the response;
    /// `Err` when no HTTP response came back.
    pub async fn raw_bytes(&self, bytes: &[u8]) -> Result<RawResponse, String> {
        let bytes = bytes.to_vec();
        let exchange = async {
            let stream = tokio::net::TcpStream::connect(self.addr).await?;
            let (mut reader, mut writer) = stream.into_split();
            let write = async move {
                // Write errors are expected when the server answers early; ignore them.
                let _ = writer.write_all(&bytes).await;
                let _ = writer.flush().await;
                writer
            };
            let read = async move {
                let mut received = Vec::new();
                let mut chunk = [0u8; 16 * 1024];
                loop {
                    match reader.read(&mut chunk).await {
                        Ok(0) => break,
                        Ok(n) => received.extend_from_slice(&chunk[..n]),
                        // A reset after the response: keep what arrived.
                        Err(_) if !received.is_empty() => break,
                        Err(e) => return Err(e),
                    }
                }
                Ok(received)
            };
            let (_writer, received) = tokio::join!(write, read);
            received
        };
        let received = tokio::time::timeout(REQUEST_TIMEOUT, exchange)
            .await
            .map_err(|_| "no answer in time".to_string())?
            .map_err(|e| e.to_string())?;
        RawResponse::parse(&received).ok_or_else(|| {
            format!(
                "not an HTTP response: {:?}",
                String::from_utf8_lossy(&received)
            )
        })
    }

    /// Sends `signal` (`TERM`, `INT`, …) with the `kill` command.
    pub fn signal(&self, signal: &str) {
        let status = Command::new("kill")
            .args(["-s", signal, &self.pid().to_string()])
            .status()
            .expect("run kill");
        assert!(status.success(), "kill -s {signal} failed: {status}");
    }

    /// Sends `signal` and waits (deadline) for the server to exit.
    pub fn stop_with(&mut self, signal: &str) -> ExitStatus {
        self.signal(signal);
        self.wait_exit(EXIT_DEADLINE)
    }

    /// Waits for the server to exit, at most `deadline`.
    pub fn wait_exit(&mut self, deadline: Duration) -> ExitStatus {
        if let Some(status) = self.exited {
            return status;
        }
        let until = Instant::now() + deadline;
        loop {
            if let Some(status) = self.child.try_wait().expect("wait for the server") {
                self.exited = Some(status);
                return status;
            }
            assert!(
                Instant::now() < until,
                "the server did not exit within {deadline:?}; stderr:\n{}",
                self.stderr_text()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for BlogServer {
    fn drop(&mut self) {
        if self.exited.is_none() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// The address in a `serving N pages from DIR at http://ADDR` log line.
fn serving_addr(line: &str) -> Option<SocketAddr> {
    if !line.contains("serving ") {
        return None;
    }
    let rest = &line[line.rfind(" at http://")? + " at http://".len()..];
    let addr = rest.split(|c: char| c.is_whitespace() || c == '/').next()?;
    addr.parse().ok()
}

/// A whole HTTP response.
#[derive(Debug)]
pub struct Resp {
    /// The status code.
    pub status: u16,
    /// The headers.
    pub headers: reqwest::header::HeaderMap,
    /// The body as text.
    pub body: String,
}

impl Resp {
    async fn read(response: reqwest::Response) -> Resp {
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        let body = response.text().await.expect("read the response body");
        Resp {
            status,
            headers,
            body,
        }
    }

    /// The value of header `name` (`None` when absent or not text).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// The `x-isr-cache` header, `""` when absent.
    pub fn cache(&self) -> &str {
        self.header("x-isr-cache").unwrap_or("")
    }

    /// The body as JSON (panics when it is not).
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body)
            .unwrap_or_else(|e| panic!("body is not JSON ({e}): {}", self.body))
    }
}

/// A response read from a raw socket.
#[derive(Debug)]
pub struct RawResponse {
    /// The status code.
    pub status: u16,
    /// The status line and headers.
    pub head: String,
    /// The body bytes as (lossy) text, still chunk-encoded if it was.
    pub body: String,
}

impl RawResponse {
    /// Parses `HTTP/1.1 200 OK\r\n…\r\n\r\nbody`.
    ///
    /// ```
    /// let r = isr_tests::RawResponse::parse(b"HTTP/1.1 404 Not Found\r\nx: y\r\n\r\nnope").unwrap();
    /// assert_eq!((r.status, r.body.as_str()), (404, "nope"));
    /// ```
    pub fn parse(bytes: &[u8]) -> Option<RawResponse> {
        let text = String::from_utf8_lossy(bytes);
        let (head, body) = text.split_once("\r\n\r\n")?;
        let status = head.split_whitespace().nth(1)?.parse().ok()?;
        Some(RawResponse {
            status,
            head: head.to_string(),
            body: body.to_string(),
        })
    }
}

/// Polls `probe` every [`POLL_INTERVAL`] until it returns `Some`, at most `deadline`; panics
/// with `what` (and the last value seen, through `probe`'s own messages) on timeout.
pub async fn poll_until<T, F, Fut>(what: &str, deadline: Duration, mut probe: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let until = Instant::now() + deadline;
    loop {
        if let Some(value) = probe().await {
            return value;
        }
        assert!(
            Instant::now() < until,
            "timed out after {deadline:?} waiting for {what}"
        );
        tokio::time::sleep(POLL_INTERVAL).await;
    }
}

/// One sample of the Prometheus text format.
#[derive(Clone, Debug, PartialEq)]
pub struct Sample {
    /// The metric name.
    pub name: String,
    /// Its labels.
    pub labels: BTreeMap<String, String>,
    /// Its value.
    pub value: f64,
}

/// A parsed `/_isr/metrics` answer.
#[derive(Clone, Debug, Default)]
pub struct Metrics {
    /// Every sample, in order.
    pub samples: Vec<Sample>,
}

impl Metrics {
    /// Parses the Prometheus text exposition format (comments and malformed lines skipped).
    ///
    /// ```
    /// let m = isr_tests::Metrics::parse("# TYPE c counter\nc{b=\"2\",a=\"1\"} 3\nc{a=\"1\"} 4\n");
    /// assert_eq!(m.counter("c", &[("a", "1"), ("b", "2")]), 3.0);
    /// assert_eq!(m.counter("c", &[("a", "1")]), 4.0);
    /// assert_eq!(m.counter("c", &[("a", "2")]), 0.0);
    /// assert_eq!(m.sum("c", &[("a", "1")]), 7.0);
    /// ```
    pub fn parse(text: &str) -> Metrics {
        Metrics {
            samples: text.lines().filter_map(parse_sample).collect(),
        }
    }

    /// The value of the sample named `name` whose labels are exactly `labels` (in any order);
    /// 0 when there is none.
    pub fn counter(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        let wanted: BTreeMap<String, String> = labels
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        self.samples
            .iter()
            .find(|s| s.name == name && s.labels == wanted)
            .map_or(0.0, |s| s.value)
    }

    /// The sum of the samples named `name` whose labels include `labels`.
    pub fn sum(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        self.samples
            .iter()
            .filter(|s| {
                s.name == name
                    && labels
                        .iter()
                        .all(|(k, v)| s.labels.get(*k).map(String::as_str) == Some(*v))
            })
            .map(|s| s.value)
            .sum()
    }

    /// `isr_requests_total{cache=…}`.
    pub fn requests(&self, cache: &str) -> f64 {
        self.counter("isr_requests_total", &[("cache", cache)])
    }

    /// `isr_regenerations_total{route=…, outcome=…, trigger=…}`.
    pub fn regenerations(&self, route: &str, outcome: &str, trigger: &str) -> f64 {
        self.counter(
            "isr_regenerations_total",
            &[("route", route), ("outcome", outcome), ("trigger", trigger)],
        )
    }
}

fn parse_sample(line: &str) -> Option<Sample> {
    let line = line.trim();
    if line.is_empty() || line.starts_with('#') {
        return None;
    }
    let name_end = line
        .find(|c: char| c == '{' || c.is_whitespace())
        .unwrap_or(line.len());
    let name = &line[..name_end];
    let mut rest = &line[name_end..];
    let mut labels = BTreeMap::new();
    if let Some(after_brace) = rest.strip_prefix('{') {
        let mut chars = after_brace.char_indices().peekable();
        loop {
            while chars
                .next_if(|(_, c)| *c == ',' || c.is_whitespace())
                .is_some()
            {}
            let (start, first) = chars.next()?;
            if first == '}' {
                rest = &after_brace[start + 1..];
                break;
            }
            let mut key = String::from(first);
            loop {
                let (_, c) = chars.next()?;
                if c == '=' {
                    break;
                }
                key.push(c);
            }
            if chars.next()?.1 != '"' {
                return None;
            }
            let mut value = String::new();
            loop {
                match chars.next()?.1 {
                    '"' => break,
                    '\\' => match chars.next()?.1 {
                        'n' => value.push('\n'),
                        other => value.push(other),
                    },
                    c => value.push(c),
                }
            }
            labels.insert(key.trim().to_string(), value);
        }
    }
    let value = rest.split_whitespace().next()?.parse().ok()?;
    Some(Sample {
        name: name.to_string(),
        labels,
        value,
    })
}

/// How many files (not folders) are under `dir`, at any depth.
///
/// ```
/// let dir = tempfile::tempdir().unwrap();
/// std::fs::create_dir(dir.path().join("a")).unwrap();
/// std::fs::write(dir.path().join("a/b.txt"), "x").unwrap();
/// assert_eq!(isr_tests::files_under(dir.path()), 1);
/// ```
pub fn files_under(dir: &std::path::Path) -> usize {
    let mut count = 0;
    let mut folders = vec![dir.to_path_buf()];
    while let Some(folder) = folders.pop() {
        for entry in std::fs::read_dir(folder).unwrap() {
            let entry = entry.unwrap();
            if entry.file_type().unwrap().is_dir() {
                folders.push(entry.path());
            } else {
                count += 1;
            }
        }
    }
    count
}

/// `VmRSS` of a process, in bytes (Linux).
pub fn rss(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .expect("VmRSS")
        * 1024
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_labels_in_any_order_with_escapes() {
        let m = Metrics::parse(
            "# HELP x y\n\
             isr_requests_total{cache=\"hit\"} 12\n\
             isr_regenerations_total{trigger=\"stale\",route=\"/blog/:slug\",outcome=\"ok\"} 1\n\
             weird{a=\"q\\\"uote, }\",b=\"\\\\\"} 2.5 1700000000\n\
             plain 7\n\
             broken{a=\"x} 1\n",
        );
        assert_eq!(m.requests("hit"), 12.0);
        assert_eq!(m.requests("miss"), 0.0);
        assert_eq!(m.regenerations("/blog/:slug", "ok", "stale"), 1.0);
        assert_eq!(m.regenerations("/blog/:slug", "error", "stale"), 0.0);
        assert_eq!(m.counter("weird", &[("b", "\\"), ("a", "q\"uote, }")]), 2.5);
        assert_eq!(m.counter("plain", &[]), 7.0);
        assert_eq!(m.sum("isr_regenerations_total", &[]), 1.0);
        assert_eq!(m.samples.len(), 4);
    }

    #[test]
    fn finds_the_serving_address() {
        let line = "2026-11-25T15:47:08Z  INFO isr::cli: serving 7 pages from /tmp/x at http://127.0.0.1:4321";
        assert_eq!(serving_addr(line), Some("127.0.0.1:4321".parse().unwrap()));
        assert_eq!(serving_addr("building site_root=/tmp/x"), None);
    }
}
