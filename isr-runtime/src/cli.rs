//! The command line every app shares: `build`, `serve`, `start` (default), flags with env
//! fallback, and [`App`], the entry point an app's `main` calls.

use crate::build::{self, BuildOptions};
use crate::client::{self, ClientBundle, ClientCrate};
use crate::engine::{Engine, EngineOptions};
use crate::render::DocumentShell;
use crate::route::Routes;
use crate::server::ConnectionLimits;
use crate::store::FsStore;
use clap::{Parser, Subcommand};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

/// Default listen address (cargo-leptos's default too).
pub const DEFAULT_ADDR: &str = "127.0.0.1:3000";

/// How long running generations may take to finish after SIGINT/SIGTERM, by default.
pub const DEFAULT_SHUTDOWN_TIMEOUT: Duration = Duration::from_secs(10);

/// Exit code for bad configuration (as for a usage error).
pub const EXIT_BAD_CONFIG: u8 = 2;

#[derive(Parser, Debug)]
#[command(
    about = "Build and serve this app's pages with Incremental Static Regeneration",
    after_help = "Environment: RUST_LOG (log filter, default info), ISR_REVALIDATE_SECRET \
                  (enables POST /_isr/revalidate with `Authorization: Bearer <secret>`), \
                  ISR_ADMIN_TOKEN (enables the operator API /_isr/api and the status, pages and \
                  revalidate subcommands), ISR_METRICS_TOKEN (GET /_isr/metrics then needs `Authorization: Bearer <token>`)."
)]
struct Cli {
    #[command(subcommand)]
    command: Option<Invocation>,

    /// Address to listen on
    #[arg(long, env = "LEPTOS_SITE_ADDR", global = true, value_name = "ADDR")]
    addr: Option<String>,

    /// Folder of the static export and its metadata
    #[arg(long, env = "LEPTOS_SITE_ROOT", global = true, value_name = "DIR")]
    site_root: Option<PathBuf>,

    /// Pages generated at the same time during the build [default: CPUs × 4]
    #[arg(long, env = "ISR_JOBS", global = true, value_name = "N")]
    jobs: Option<String>,

    /// Build the pages that work even when some loaders fail
    #[arg(long, global = true)]
    keep_going: bool,

    /// CDN endpoints to send `PURGE <path>` to when a page changes (comma-separated http://host[:port])
    #[arg(long, env = "ISR_CDN_PURGE", global = true, value_name = "URLS")]
    cdn_purge: Option<String>,

    /// Host header of CDN purges (the site's public host, e.g. www.example.com) [default: the endpoint's]
    #[arg(long, env = "ISR_PUBLIC_HOST", global = true, value_name = "HOST")]
    public_host: Option<String>,

    /// The site's public origin, for absolute links in the sitemap and feeds (e.g. https://blog.example.com) [default: http://<addr>]
    #[arg(long, env = "ISR_PUBLIC_URL", global = true, value_name = "URL")]
    public_url: Option<String>,

    /// Also send `cache-tag` (tags and path, comma-separated) for CDNs that purge by it
    #[arg(long, env = "ISR_CACHE_TAG", global = true, value_parser = clap::builder::FalseyValueParser::new())]
    cache_tag: bool,

    /// Redis to share pages, leases and invalidations with other instances (redis://[user:pass@]host:port[/db])
    #[arg(
        long = "redis",
        env = "ISR_REDIS_URL",
        global = true,
        value_name = "URL"
    )]
    redis_url: Option<String>,

    /// Prefix of every Redis key, so several sites can share one Redis [default: the app's name]
    #[arg(long, env = "ISR_REDIS_PREFIX", global = true, value_name = "PREFIX")]
    redis_prefix: Option<String>,

    /// Seconds a page lease lives unless its holder renews it (a dead holder is replaced after it) [default: 8]
    #[arg(long, env = "ISR_REDIS_LEASE_TTL", global = true, value_name = "SECS")]
    redis_lease_ttl: Option<String>,

    /// Memory for page HTML, in MiB; pages evicted from it are re-read from disk [default: 128]
    #[arg(long, env = "ISR_HOT_CACHE_MB", global = true, value_name = "MIB")]
    hot_cache_mb: Option<String>,

    /// Proxies whose X-Forwarded-For / X-Forwarded-Proto are believed (comma-separated CIDR blocks or addresses, e.g. 10.0.0.0/8,127.0.0.1) [default: none]
    #[arg(
        long = "trusted-proxy",
        env = "ISR_TRUSTED_PROXIES",
        global = true,
        value_name = "CIDRS"
    )]
    trusted_proxies: Option<String>,

    /// Failed authentications one client address may make per minute on the protected routes; past it, 429 until the minute ends [default: 10]
    #[arg(long, env = "ISR_MAX_AUTH_FAILURES", global = true, value_name = "N")]
    max_auth_failures: Option<String>,

    /// Largest request head (request line and headers) in bytes; a larger one gets 431 [default: 65536]
    #[arg(
        long,
        env = "ISR_MAX_HEADER_BYTES",
        global = true,
        value_name = "BYTES"
    )]
    max_header_bytes: Option<String>,

    /// Seconds a client may take to send a request's headers; then its connection is closed [default: 10]
    #[arg(long, env = "ISR_HEADER_TIMEOUT", global = true, value_name = "SECS")]
    header_timeout: Option<String>,

    /// Seconds a keep-alive connection may wait for its next request; then it is closed [default: 60]
    #[arg(long, env = "ISR_IDLE_TIMEOUT", global = true, value_name = "SECS")]
    idle_timeout: Option<String>,

    /// Seconds a request body may pause before the request fails with 408 [default: 10]
    #[arg(long, env = "ISR_BODY_TIMEOUT", global = true, value_name = "SECS")]
    body_timeout: Option<String>,

    /// Seconds a response may wait for a client that reads nothing; then the connection is closed [default: 30]
    #[arg(long, env = "ISR_SEND_TIMEOUT", global = true, value_name = "SECS")]
    send_timeout: Option<String>,

    /// Open connections at most; more get 503 and are closed [default: 10000, fewer under a low open-file limit]
    #[arg(long, env = "ISR_MAX_CONNECTIONS", global = true, value_name = "N")]
    max_connections: Option<String>,

    /// Threads that answer requests, each with its own runtime and listening socket (SO_REUSEPORT); 0 serves on the shared multi-thread runtime [default: CPUs on Linux, 0 elsewhere]
    #[arg(long, env = "ISR_SERVE_THREADS", global = true, value_name = "N")]
    serve_threads: Option<String>,

    /// Page generations running at once while serving [default: CPUs × 4]
    #[arg(long, env = "ISR_MAX_REGENERATIONS", global = true, value_name = "N")]
    max_regenerations: Option<String>,

    /// Seconds to let running generations finish after SIGINT/SIGTERM [default: 10]
    #[arg(
        long,
        env = "ISR_SHUTDOWN_TIMEOUT",
        global = true,
        value_name = "SECONDS"
    )]
    shutdown_timeout: Option<String>,
}

#[derive(Subcommand, Debug, Clone, PartialEq, Eq)]
enum Invocation {
    /// Pre-render every page into the site root, then exit
    Build,
    /// Serve an existing site root (no rebuild)
    Serve,
    /// Build, then serve (the default)
    Start,
    /// A running site at a glance: pages per route and state, failing pages (needs ISR_ADMIN_TOKEN)
    Status {
        #[command(flatten)]
        remote: RemoteArgs,
    },
    /// List a running site's pages with their state, age and last run (needs ISR_ADMIN_TOKEN)
    Pages {
        #[command(flatten)]
        remote: RemoteArgs,
        /// Only pages in this state: fresh, stale, regenerating, backing_off, not_found, missing
        #[arg(long)]
        state: Option<String>,
        /// Only pages of this route pattern (e.g. /blog/:slug)
        #[arg(long)]
        route: Option<String>,
        /// Only pages carrying this tag
        #[arg(long)]
        tag: Option<String>,
        /// Only pages whose path contains this text
        #[arg(long)]
        search: Option<String>,
        /// How many pages to show (1–500) [default: 50]
        #[arg(long)]
        limit: Option<usize>,
    },
    /// Regenerate pages of a running site now, by path and by tag (needs ISR_ADMIN_TOKEN)
    Revalidate {
        #[command(flatten)]
        remote: RemoteArgs,
        /// Page paths, e.g. /blog/hello
        paths: Vec<String>,
        /// Also every page carrying this tag (repeatable)
        #[arg(long = "tag", value_name = "TAG")]
        tags: Vec<String>,
    },
}

/// Where the running site is, for the operator subcommands.
#[derive(clap::Args, Debug, Clone, PartialEq, Eq)]
struct RemoteArgs {
    /// URL of the running site [default: http://<--addr>]
    #[arg(long, env = "ISR_URL", value_name = "URL")]
    url: Option<String>,
    /// Print the API's JSON instead of tables
    #[arg(long)]
    json: bool,
}

/// What the engine is asked to do (the page subcommands).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Command {
    Build,
    Serve,
    Start,
}

/// Settings resolved from flags, env and the app's defaults.
#[derive(Debug, Clone)]
struct Config {
    command: Command,
    addr: SocketAddr,
    /// What loaders get as `State<SiteUrl>`: `--public-url`, else `http://<addr>`.
    site_url: crate::site::SiteUrl,
    /// `--public-url` as given.
    public_url: Option<crate::site::SiteUrl>,
    site_root: PathBuf,
    build: BuildOptions,
    revalidate_secret: Option<String>,
    admin_token: Option<String>,
    metrics_token: Option<String>,
    trusted_proxies: crate::server::origin::TrustedProxies,
    max_auth_failures: u32,
    cdn_purge: Option<crate::cdn::PurgeTargets>,
    cache_tag: bool,
    connection_limits: ConnectionLimits,
    /// Serving threads with a runtime each (`server::threads`); 0: the main runtime serves.
    serve_threads: usize,
    engine: EngineOptions,
    shutdown_timeout: Duration,
    shared: Option<SharedConfig>,
}

/// An ISR app: what its `main` runs.
///
/// ```no_run
/// fn main() -> std::process::ExitCode {
///     isr::App::new("blog").site_root("target/site/blog").run()
/// }
/// ```
pub struct App {
    name: String,
    default_site_root: PathBuf,
    routes: axum::Router,
    client: Option<ClientCrate>,
    commands: Vec<AppCommand>,
    before_pages: Option<BeforePages>,
    state: crate::context::AppState,
    deferred_state: Vec<DeferredState>,
    sitemap: bool,
    shell: crate::render::Shell,
    not_found_page: Option<StatusView>,
    unavailable_page: Option<StatusView>,
    /// Serves `/_isr/metrics` from it (set by `run`, or by an embedder through
    /// [`App::metrics`]).
    #[cfg(feature = "metrics")]
    metrics: Option<metrics_exporter_prometheus::PrometheusHandle>,
}

/// Renders an app's status page with the document shell.
type StatusView = Box<
    dyn FnOnce(DocumentShell) -> futures::future::BoxFuture<'static, crate::Result<String>> + Send,
>;

/// `url_path` is where the status page's view believes it is (`use_location`): it is rendered
/// once and served for every path that gets this status.
fn status_view<F, V>(view: F, title: &'static str, url_path: &'static str) -> StatusView
where
    F: FnOnce() -> V + Send + 'static,
    V: leptos::prelude::IntoView + 'static,
{
    Box::new(move |shell| {
        Box::pin(async move { crate::render::status_page(view, title, url_path, &shell).await })
    })
}

type BeforePages = Box<dyn FnOnce(PageCommand) -> Result<(), String>>;
type DeferredState =
    Box<dyn FnOnce(PageCommand, &mut crate::context::AppState) -> Result<(), String>>;

/// The shared subcommands that build or serve pages, as told to [`App::before_pages`].
///
/// ```
/// assert_ne!(isr::cli::PageCommand::Build, isr::cli::PageCommand::Serve);
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PageCommand {
    /// `build`
    Build,
    /// `serve`
    Serve,
    /// `start` (also when no subcommand is given)
    Start,
}

/// A subcommand an app adds to the shared CLI (e.g. `shop seed`).
struct AppCommand {
    command: clap::Command,
    run: Box<dyn FnOnce(&clap::ArgMatches) -> ExitCode>,
}

impl App {
    /// An app named `name` (used in messages; the default site root is `target/site/<name>`).
    ///
    /// ```
    /// let app = isr::App::new("shop");
    /// # let _ = app;
    /// ```
    pub fn new(name: impl Into<String>) -> Self {
        let name = name.into();
        App {
            default_site_root: PathBuf::from("target/site").join(&name),
            name,
            routes: axum::Router::new(),
            client: None,
            commands: Vec::new(),
            before_pages: None,
            state: Default::default(),
            deferred_state: Vec::new(),
            sitemap: true,
            shell: crate::render::Shell::new(),
            not_found_page: None,
            unavailable_page: None,
            #[cfg(feature = "metrics")]
            metrics: None,
        }
    }

    /// What every document gets: `lang`, `<head>` elements, `<body>` attributes (see
    /// [`crate::Shell`]). Pages, and the app's 404 and 503 pages, all use it.
    ///
    /// ```
    /// let app = isr::App::new("blog").shell(isr::Shell::new().lang("en-GB"));
    /// # let _ = app;
    /// ```
    pub fn shell(mut self, shell: crate::render::Shell) -> Self {
        self.shell = shell;
        self
    }

    /// The app's own `404` page (any path that is no page, and pages that are gone), e.g. with
    /// the app's layout; rendered once at start, at the path `/404` (what its `use_location`
    /// reports). The status stays `404`.
    ///
    /// ```
    /// use leptos::prelude::*;
    /// let app = isr::App::new("blog").not_found_page(|| view! { <h1>"No such page"</h1> });
    /// # let _ = app;
    /// ```
    pub fn not_found_page<F, V>(mut self, view: F) -> Self
    where
        F: FnOnce() -> V + Send + 'static,
        V: leptos::prelude::IntoView + 'static,
    {
        self.not_found_page = Some(status_view(view, "Not found", "/404"));
        self
    }

    /// The app's own `503` page (a page that was never generated and cannot be right now);
    /// rendered once at start, at the path `/503`. The status and `Retry-After` stay.
    ///
    /// ```
    /// use leptos::prelude::*;
    /// let app = isr::App::new("blog").unavailable_page(|| view! { <h1>"Back soon"</h1> });
    /// # let _ = app;
    /// ```
    pub fn unavailable_page<F, V>(mut self, view: F) -> Self
    where
        F: FnOnce() -> V + Send + 'static,
        V: leptos::prelude::IntoView + 'static,
    {
        self.unavailable_page = Some(status_view(view, "Service unavailable", "/503"));
        self
    }

    /// Do not serve `/sitemap.xml` and `/robots.txt` (served by default, listing every HTML
    /// page; a page of the app's own at either path always wins).
    ///
    /// ```
    /// let app = isr::App::new("intranet").without_sitemap();
    /// # let _ = app;
    /// ```
    pub fn without_sitemap(mut self) -> Self {
        self.sitemap = false;
        self
    }

    /// Registers a value loaders and `paths` functions take as `State<T>` (a database pool, an
    /// HTTP client, the app's configuration): one value per type, cloned for each generation
    /// (so share the expensive part behind an `Arc`, as pools do). A loader that takes a type
    /// that was never registered stops the app at start with a message naming it.
    ///
    /// ```
    /// #[derive(Clone)]
    /// struct Config { site_name: String }
    /// let app = isr::App::new("blog").state(Config { site_name: "The blog".into() });
    /// # let _ = app;
    /// ```
    pub fn state<T: Clone + Send + Sync + 'static>(mut self, value: T) -> Self {
        self.state.insert(value);
        self
    }

    /// Like [`App::state`], with the value made once the command line is parsed, after
    /// [`App::before_pages`] (so a database is migrated before its pool opens). Not run for
    /// `--help`, operator or app subcommands. An `Err` is printed and the app exits with 1.
    ///
    /// ```
    /// let app = isr::App::new("shop").state_with(|_command| Ok(std::sync::Arc::new(42u32)));
    /// # let _ = app;
    /// ```
    pub fn state_with<T: Clone + Send + Sync + 'static>(
        mut self,
        make: impl FnOnce(PageCommand) -> Result<T, String> + 'static,
    ) -> Self {
        self.deferred_state.push(Box::new(move |command, state| {
            state.insert(make(command)?);
            Ok(())
        }));
        self
    }

    /// Runs `prepare` after the command line is parsed and logging is set up, before
    /// `build`, `serve` or `start` touch any page (not for `--help` or an app subcommand):
    /// the place to open or migrate a database. An `Err` is printed and the app exits with 1.
    ///
    /// ```
    /// let app = isr::App::new("shop").before_pages(|command| {
    ///     println!("about to {command:?}");
    ///     Ok(())
    /// });
    /// # let _ = app;
    /// ```
    pub fn before_pages(
        mut self,
        prepare: impl FnOnce(PageCommand) -> Result<(), String> + 'static,
    ) -> Self {
        self.before_pages = Some(Box::new(prepare));
        self
    }

    /// Adds an app-specific subcommand; `run` gets its matches (global flags included) and
    /// returns the exit code. Logging is set up before it runs.
    ///
    /// ```
    /// use std::process::ExitCode;
    /// let app = isr::App::new("shop").command(
    ///     clap::Command::new("seed").about("Fill the database"),
    ///     |_matches| ExitCode::SUCCESS,
    /// );
    /// # let _ = app;
    /// ```
    pub fn command(
        mut self,
        command: clap::Command,
        run: impl FnOnce(&clap::ArgMatches) -> ExitCode + 'static,
    ) -> Self {
        self.commands.push(AppCommand {
            command,
            run: Box::new(run),
        });
        self
    }

    /// The crate whose `hydrate` library is the app's client bundle (usually the app itself:
    /// `isr::client_crate!()`). `build` and `start` then build the bundle when it is missing or
    /// out of date, unless `ISR_CLIENT_BUILD=off`; pages load it and hydrate.
    ///
    /// ```
    /// let app = isr::App::new("blog").client(isr::client_crate!());
    /// # let _ = app;
    /// ```
    pub fn client(mut self, krate: ClientCrate) -> Self {
        self.client = Some(krate);
        self
    }

    /// The site root when neither `--site-root` nor `LEPTOS_SITE_ROOT` is given.
    ///
    /// ```
    /// let app = isr::App::new("blog").site_root("target/site/blog");
    /// # let _ = app;
    /// ```
    pub fn site_root(mut self, path: impl Into<PathBuf>) -> Self {
        self.default_site_root = path.into();
        self
    }

    /// Extra axum routes of the app (an admin API, say), served beside the pages.
    ///
    /// ```
    /// use axum::routing::get;
    /// let app = isr::App::new("shop").routes(axum::Router::new().route("/api/health", get(|| async { "ok" })));
    /// # let _ = app;
    /// ```
    pub fn routes(mut self, routes: axum::Router) -> Self {
        self.routes = self.routes.merge(routes);
        self
    }

    /// Serves `GET /_isr/metrics` from `handle` (feature `metrics`): for an app that embeds
    /// isr and installed the recorder itself. `run` installs one by itself
    /// ([`crate::metrics::install`]); `embed` does not, so the embedding app decides what its
    /// process records.
    ///
    /// Not run as a test: an app needs pages, which `#[page]` registers only in a crate built
    /// with its own `ssr` feature (see [`Embedded`](crate::embed::Embedded)).
    ///
    /// ```no_run
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), String> {
    /// use tower::ServiceExt;
    /// let site = tempfile::tempdir().unwrap();
    /// let isr = isr::App::new("blog")
    ///     .site_root(site.path().join("blog"))
    ///     .metrics(isr::metrics::install())
    ///     .embed()
    ///     .await?;
    /// let request = isr::axum::http::Request::get("/_isr/metrics").header("host", "127.0.0.1:3000");
    /// let answer = isr.router().oneshot(request.body(isr::axum::body::Body::empty()).unwrap()).await.unwrap();
    /// assert_eq!(answer.status(), 200, "no token set: the metrics are open");
    /// isr.shutdown().await;
    /// # Ok(()) }
    /// ```
    #[cfg(feature = "metrics")]
    pub fn metrics(mut self, handle: metrics_exporter_prometheus::PrometheusHandle) -> Self {
        self.metrics = Some(handle);
        self
    }

    /// Parses the command line, then builds and/or serves. Returns the process exit code:
    /// 0 on success (also after SIGINT/SIGTERM), 1 on a failed build or server error,
    /// 2 on bad configuration.
    ///
    /// # Panics
    /// When called inside a tokio runtime (it starts its own and blocks on it), and in debug
    /// builds when clap's checks refuse the command line definition (an [`App::command`] named
    /// like a built-in subcommand). Its one `expect`, on the subcommand matched for an
    /// [`App::command`], cannot fail: that command was found by the matched subcommand's name.
    pub fn run(mut self) -> ExitCode {
        use clap::{CommandFactory, FromArgMatches};
        let command = self.commands.iter().fold(Cli::command(), |cli, extra| {
            cli.subcommand(extra.command.clone())
        });
        let parsed = command.try_get_matches().and_then(|matches| {
            let extra = matches.subcommand_name().and_then(|name| {
                self.commands
                    .iter()
                    .position(|c| c.command.get_name() == name)
            });
            match extra {
                Some(index) => Ok(Err((index, matches))),
                None => Cli::from_arg_matches(&matches).map(Ok),
            }
        });
        let cli = match parsed {
            Ok(Ok(cli)) => cli,
            Ok(Err((index, matches))) => {
                let _log = init_tracing();
                let extra = self.commands.swap_remove(index);
                let (_, sub_matches) = matches.subcommand().expect("matched a subcommand");
                return (extra.run)(sub_matches);
            }
            Err(error) => {
                let _ = error.print();
                return if error.use_stderr() {
                    ExitCode::from(EXIT_BAD_CONFIG)
                } else {
                    ExitCode::SUCCESS
                };
            }
        };
        if let Some((remote, command)) = remote_command(&cli) {
            return match self.remote(&cli, remote) {
                Ok(remote) => block_on(crate::remote::run(remote, command)),
                Err(message) => {
                    eprintln!("error: {message}");
                    ExitCode::from(EXIT_BAD_CONFIG)
                }
            };
        }
        let _log = init_tracing();
        let config = match self.config(cli) {
            Ok(config) => config,
            Err(message) => {
                eprintln!("error: {message}");
                return ExitCode::from(EXIT_BAD_CONFIG);
            }
        };
        if let Err(message) = self.prepare(config.command) {
            eprintln!("error: {message}");
            return ExitCode::FAILURE;
        }
        // The app's process: `run` owns it, so it records metrics globally.
        #[cfg(feature = "metrics")]
        if self.metrics.is_none() && config.command != Command::Build {
            self.metrics = Some(crate::metrics::install());
        }
        block_on(self.execute(config))
    }

    /// isr inside the app's own axum server: configured from the environment like the CLI
    /// (`LEPTOS_SITE_ROOT`, `LEPTOS_SITE_ADDR`, `ISR_*`; no command line is parsed), it builds
    /// every page — or, over a site built before, serves it at once and rebuilds it in the
    /// background, as `start` does — and returns the router to merge with the app's own routes
    /// and layers. Call it inside the app's tokio runtime, after setting up logging; call
    /// [`Embedded::shutdown`](crate::embed::Embedded::shutdown) after the server stops.
    ///
    /// Not run as a test: it serves until the process is stopped (the example of
    /// [`Embedded`](crate::embed::Embedded) runs).
    ///
    /// ```no_run
    /// # async fn demo() -> Result<(), String> {
    /// use isr::axum::{routing::get, Router};
    /// let isr = isr::App::new("blog").embed().await?;
    /// let app = Router::new().route("/healthz", get(|| async { "ok" })).merge(isr.router());
    /// let listener = tokio::net::TcpListener::bind("127.0.0.1:3000").await.map_err(|e| e.to_string())?;
    /// isr::axum::serve(listener, app).await.map_err(|e| e.to_string())?;
    /// isr.shutdown().await;
    /// # Ok(()) }
    /// ```
    ///
    /// # Errors
    /// A message (the start-up problems joined by `; `) when the environment's configuration
    /// is invalid, a [`App::before_pages`] or [`App::state_with`] hook fails, a page's
    /// arguments cannot be extracted (see [`check_pages`]), two routes conflict, the Redis
    /// tier cannot be set up, the site root cannot be read, the first build fails, or the
    /// app's 404 or 503 page does not render.
    pub async fn embed(mut self) -> Result<crate::embed::Embedded, String> {
        use clap::Parser;
        // The embedding app owns its process: its allocator is its own to tune (it may call
        // `isr::malloc_arenas::limit()` before it starts its runtime).
        let cli = Cli::try_parse_from([self.name.clone()]).map_err(|e| e.to_string())?;
        let config = self.config(cli)?;
        self.prepare(config.command)?;
        let opened = self
            .open(&config)
            .await
            .map_err(|stop| stop.lines.join("; "))?;
        let router = self
            .app_router(&opened.engine, &config, &opened.shell)
            .await
            .map_err(|stop| stop.lines.join("; "))?;
        opened.engine.mark_serving();
        let rebuild = opened
            .background_build
            .map(|options| spawn_rebuild(opened.engine.clone(), options));
        Ok(crate::embed::Embedded::new(
            router,
            opened.engine,
            rebuild,
            config.shutdown_timeout,
        ))
    }

    /// [`App::before_pages`], then the values of [`App::state_with`].
    fn prepare(&mut self, command: Command) -> Result<(), String> {
        let command = match command {
            Command::Build => PageCommand::Build,
            Command::Serve => PageCommand::Serve,
            Command::Start => PageCommand::Start,
        };
        if let Some(prepare) = self.before_pages.take() {
            prepare(command)?;
        }
        for make in std::mem::take(&mut self.deferred_state) {
            make(command, &mut self.state)?;
        }
        Ok(())
    }

    /// Where an operator subcommand goes: `--url`, else this app's `--addr`; the token from
    /// `ISR_ADMIN_TOKEN`.
    fn remote(&self, cli: &Cli, args: &RemoteArgs) -> Result<crate::remote::Remote, String> {
        let base = match &args.url {
            Some(url) => url.trim().trim_end_matches('/').to_string(),
            None => {
                let addr = cli.addr.clone().unwrap_or_else(|| DEFAULT_ADDR.to_string());
                format!("http://{}", addr.trim())
            }
        };
        let valid = base
            .strip_prefix("http://")
            .is_some_and(|rest| !rest.is_empty() && base.parse::<axum::http::Uri>().is_ok());
        if !valid {
            return Err(format!(
                "invalid --url / ISR_URL {base:?}: expected http://host:port (the instance itself; https is not supported here)"
            ));
        }
        let token = std::env::var("ISR_ADMIN_TOKEN")
            .ok()
            .map(|t| t.trim().to_string())
            .filter(|t| !t.is_empty())
            .ok_or("ISR_ADMIN_TOKEN is not set: the operator subcommands send it to the site")?;
        Ok(crate::remote::Remote {
            base,
            token,
            json: args.json,
        })
    }

    fn config(&self, cli: Cli) -> Result<Config, String> {
        let addr_text = cli.addr.unwrap_or_else(|| DEFAULT_ADDR.to_string());
        let addr: SocketAddr = addr_text.trim().parse().map_err(|_| {
            format!("invalid address {addr_text:?} for --addr / LEPTOS_SITE_ADDR: expected IP:PORT, e.g. {DEFAULT_ADDR}")
        })?;
        let jobs = whole_number(
            cli.jobs,
            "--jobs / ISR_JOBS",
            1..=u64::MAX,
            "a whole number ≥ 1",
        )?
        .map_or_else(build::default_jobs, |n| n as usize);
        let max_regenerations = whole_number(
            cli.max_regenerations,
            "--max-regenerations / ISR_MAX_REGENERATIONS",
            1..=u64::MAX,
            "a whole number ≥ 1",
        )?
        .map_or_else(crate::engine::default_max_regenerations, |n| n as usize);
        let serve_threads = whole_number(
            cli.serve_threads,
            "--serve-threads / ISR_SERVE_THREADS",
            0..=MAX_SERVE_THREADS,
            &format!("a whole number from 0 to {MAX_SERVE_THREADS}"),
        )?
        .map_or_else(default_serve_threads, |n| n as usize);
        let shutdown_timeout = whole_number(
            cli.shutdown_timeout,
            "--shutdown-timeout / ISR_SHUTDOWN_TIMEOUT",
            0..=u64::MAX,
            "whole seconds ≥ 0",
        )?
        .map_or(DEFAULT_SHUTDOWN_TIMEOUT, Duration::from_secs);
        let hot_cache_bytes = whole_number(
            cli.hot_cache_mb,
            "--hot-cache-mb / ISR_HOT_CACHE_MB",
            1..=u64::MAX,
            "a whole number of MiB ≥ 1",
        )?
        .map_or(crate::hot_cache::DEFAULT_BUDGET_BYTES, |mib| {
            mib.saturating_mul(1024 * 1024)
        });
        let site_root = cli
            .site_root
            .unwrap_or_else(|| self.default_site_root.clone());
        if site_root.as_os_str().is_empty() {
            return Err("--site-root / LEPTOS_SITE_ROOT is empty".into());
        }
        let revalidate_secret = secret_from_env("ISR_REVALIDATE_SECRET")?;
        let admin_token = secret_from_env("ISR_ADMIN_TOKEN")?;
        let metrics_token = secret_from_env("ISR_METRICS_TOKEN")?;
        let trusted_proxies = crate::server::origin::TrustedProxies::parse(
            cli.trusted_proxies.as_deref().unwrap_or_default(),
        )
        .map_err(|e| format!("invalid --trusted-proxy / ISR_TRUSTED_PROXIES: {e}"))?;
        let max_auth_failures = whole_number(
            cli.max_auth_failures,
            "--max-auth-failures / ISR_MAX_AUTH_FAILURES",
            1..=1_000_000,
            "a whole number from 1 to 1000000",
        )?
        .map_or(crate::server::auth_limit::MAX_FAILURES, |n| n as u32);
        let cdn_purge =
            match (&cli.cdn_purge, &cli.public_host) {
                (Some(endpoints), host) => Some(
                    crate::cdn::PurgeTargets::parse(endpoints, host.as_deref()).map_err(|e| {
                        format!("--cdn-purge / ISR_CDN_PURGE, --public-host / ISR_PUBLIC_HOST: {e}")
                    })?,
                ),
                (None, Some(_)) => return Err(
                    "--public-host / ISR_PUBLIC_HOST is set without --cdn-purge / ISR_CDN_PURGE"
                        .into(),
                ),
                (None, None) => None,
            };
        let public_url = cli
            .public_url
            .as_deref()
            .map(|url| {
                crate::site::SiteUrl::parse(url)
                    .map_err(|e| format!("invalid --public-url / ISR_PUBLIC_URL: {e}"))
            })
            .transpose()?;
        let site_url = match &public_url {
            Some(url) => url.clone(),
            None => crate::site::SiteUrl::parse(&format!("http://{addr}"))
                .map_err(|e| format!("--addr / LEPTOS_SITE_ADDR: {e}"))?,
        };
        let defaults = ConnectionLimits::default();
        let connection_limits = ConnectionLimits {
            header_timeout: seconds(cli.header_timeout, "--header-timeout / ISR_HEADER_TIMEOUT")?
                .unwrap_or(defaults.header_timeout),
            idle_timeout: seconds(cli.idle_timeout, "--idle-timeout / ISR_IDLE_TIMEOUT")?
                .unwrap_or(defaults.idle_timeout),
            body_timeout: seconds(cli.body_timeout, "--body-timeout / ISR_BODY_TIMEOUT")?
                .unwrap_or(defaults.body_timeout),
            send_timeout: seconds(cli.send_timeout, "--send-timeout / ISR_SEND_TIMEOUT")?
                .unwrap_or(defaults.send_timeout),
            max_header_bytes: whole_number(
                cli.max_header_bytes,
                "--max-header-bytes / ISR_MAX_HEADER_BYTES",
                crate::server::listener::MIN_HEADER_BYTES as u64..=MAX_HEADER_BYTES_LIMIT as u64,
                &format!(
                    "a whole number of bytes from {} to {MAX_HEADER_BYTES_LIMIT}",
                    crate::server::listener::MIN_HEADER_BYTES
                ),
            )?
            .map_or(defaults.max_header_bytes, |n| n as usize),
            max_connections: whole_number(
                cli.max_connections,
                "--max-connections / ISR_MAX_CONNECTIONS",
                1..=MAX_CONNECTIONS_LIMIT as u64,
                &format!("a whole number from 1 to {MAX_CONNECTIONS_LIMIT}"),
            )?
            .map_or(defaults.max_connections, |n| n as usize),
        };
        let shared = self.shared_options(cli.redis_url, cli.redis_prefix, cli.redis_lease_ttl)?;
        let command = match cli.command {
            Some(Invocation::Build) => Command::Build,
            Some(Invocation::Serve) => Command::Serve,
            _ => Command::Start,
        };
        Ok(Config {
            command,
            addr,
            site_url,
            public_url,
            site_root,
            build: BuildOptions {
                jobs,
                keep_going: cli.keep_going,
                progress: true,
            },
            revalidate_secret,
            admin_token,
            metrics_token,
            trusted_proxies,
            max_auth_failures,
            cdn_purge,
            cache_tag: cli.cache_tag,
            connection_limits,
            serve_threads,
            engine: EngineOptions {
                max_regenerations,
                hot_cache_bytes,
                // `serve` answers while the page table fills; `build` and `start` need it whole.
                serve_while_loading: command == Command::Serve,
                ..EngineOptions::default()
            },
            shutdown_timeout,
            shared,
        })
    }

    /// The shared tier's settings, when `--redis` is given.
    #[cfg(feature = "redis")]
    fn shared_options(
        &self,
        url: Option<String>,
        prefix: Option<String>,
        lease_ttl: Option<String>,
    ) -> Result<Option<SharedConfig>, String> {
        let lease_ttl = whole_number(
            lease_ttl,
            "--redis-lease-ttl / ISR_REDIS_LEASE_TTL",
            1..=600,
            "a whole number of seconds from 1 to 600",
        )?
        .map_or(crate::shared::DEFAULT_LEASE_TTL, Duration::from_secs);
        let Some(url) = url.map(|u| u.trim().to_string()).filter(|u| !u.is_empty()) else {
            if prefix.is_some() {
                return Err(
                    "--redis-prefix / ISR_REDIS_PREFIX is set without --redis / ISR_REDIS_URL"
                        .into(),
                );
            }
            return Ok(None);
        };
        if !(url.starts_with("redis://") || url.starts_with("unix://")) {
            return Err(format!(
                "invalid --redis / ISR_REDIS_URL {url:?}: expected redis://host:port[/db]"
            ));
        }
        redis::Client::open(url.as_str())
            .map_err(|e| format!("invalid --redis / ISR_REDIS_URL {url:?}: {e}"))?;
        let prefix = prefix.unwrap_or_else(|| self.name.clone());
        if prefix.is_empty() || prefix.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(format!(
                "invalid --redis-prefix / ISR_REDIS_PREFIX {prefix:?}: expected a non-empty name without spaces"
            ));
        }
        Ok(Some(crate::shared::SharedOptions {
            url,
            prefix,
            lease_ttl,
        }))
    }

    /// Without the `redis` feature there is no shared tier: `--redis` is refused with the
    /// feature to enable.
    #[cfg(not(feature = "redis"))]
    fn shared_options(
        &self,
        url: Option<String>,
        prefix: Option<String>,
        lease_ttl: Option<String>,
    ) -> Result<Option<SharedConfig>, String> {
        let given = [
            ("--redis / ISR_REDIS_URL", url),
            ("--redis-prefix / ISR_REDIS_PREFIX", prefix),
            ("--redis-lease-ttl / ISR_REDIS_LEASE_TTL", lease_ttl),
        ];
        match given.into_iter().find(|(_, value)| value.as_deref().is_some_and(|v| !v.trim().is_empty())) {
            Some((flag, _)) => Err(format!(
                "{flag} is set, but {} was built without Redis support: enable the `redis` feature of the isr crate",
                self.name
            )),
            None => Ok(None),
        }
    }

    async fn execute(mut self, config: Config) -> ExitCode {
        let opened = match self.open(&config).await {
            Ok(opened) => opened,
            Err(stop) => return stop.report(),
        };
        if config.command == Command::Build {
            return ExitCode::SUCCESS;
        }
        self.serve(opened, config).await
    }

    /// Checks the pages, opens the engine over the site root (and the shared tier), builds the
    /// client bundle, and builds the pages unless it serves (or rebuilds in the background).
    async fn open(&mut self, config: &Config) -> Result<Opened, Stop> {
        self.state.insert(config.site_url.clone());
        // Registered now for the start-up checks of `State<Revalidator>`; bound to the engine
        // once it is open.
        self.state.insert(crate::revalidate::Revalidator::unbound());
        let defs: Vec<&'static crate::PageDef> = crate::page::pages().collect();
        check_pages(&defs, &self.state).map_err(|lines| Stop {
            code: EXIT_BAD_CONFIG,
            lines,
        })?;
        let store = FsStore::new(&config.site_root);
        // With Redis, an instance may start empty: pages come from the shared tier.
        let was_built = store.is_built_site();
        if config.command == Command::Serve && config.shared.is_none() && !was_built {
            return Err(Stop::config(format!(
                "no built site at {} (--site-root / LEPTOS_SITE_ROOT): run `{} build` first",
                config.site_root.display(),
                self.name
            )));
        }
        let routes = Routes::new(defs).map_err(|e| Stop::failure(e.to_string()))?;
        #[cfg(not(feature = "redis"))]
        let shared: Option<Arc<dyn crate::engine::SharedTier>> =
            config.shared.map(|never| match never {});
        #[cfg(feature = "redis")]
        let shared = match config.shared.clone() {
            Some(options) => {
                let tier = crate::shared::RedisTier::connect(options.clone())
                    .map_err(|error| Stop::config(format!("--redis / ISR_REDIS_URL: {error}")))?;
                tracing::info!(prefix = %options.prefix, lease_ttl_s = options.lease_ttl.as_secs(), "shared tier on: pages, leases and changes are shared through Redis");
                Some(tier as Arc<dyn crate::engine::SharedTier>)
            }
            None => None,
        };
        let client = self.client_bundle(config, was_built).await;
        let shell = DocumentShell {
            client,
            extra_head: crate::render::live_reload_script(),
            app: self.shell.clone(),
        };
        let mut engine = Engine::builder(routes, Arc::new(store))
            .options(config.engine)
            .documents(Arc::new(shell.clone()))
            .state(std::mem::take(&mut self.state));
        if let Some(tier) = shared {
            engine = engine.shared(tier);
        }
        if let Some(targets) = config.cdn_purge.clone() {
            tracing::info!(endpoints = ?targets.endpoints(), "CDN purging on: changed pages are purged at these endpoints");
            engine = engine.page_changes(crate::cdn::CdnPurger::start(targets));
        }
        let engine = engine.open().await.map_err(|error| {
            Stop::failure(format!(
                "cannot read the site at {}: {error}",
                config.site_root.display()
            ))
        })?;
        // `start` over a site built before serves it at once and rebuilds it in the background
        // (no downtime on restart); `build`, and `start` on a new site, build first. So does
        // every restart under `cargo leptos watch`: the page its live reload shows after an edit
        // must be rendered by the new code.
        let under_watch = std::env::var_os("LEPTOS_WATCH").is_some();
        let rebuild_in_background = config.command == Command::Start && was_built && !under_watch;
        if config.command != Command::Serve && !rebuild_in_background {
            tracing::info!(site_root = %config.site_root.display(), jobs = config.build.jobs, "building");
            let report = build::build(&engine, config.build)
                .await
                .map_err(|error| Stop::failure(error.to_string()))?;
            println!("{report}");
        }
        Ok(Opened {
            engine,
            shell,
            background_build: rebuild_in_background.then_some(config.build),
        })
    }

    /// The bundle pages load: built (when this app has a client crate and may build it), else
    /// whatever the site root already has. Missing toolchains are reported once, with the fix.
    /// `serve`, and `start` over a site this build of the app made the bundle for, run neither
    /// cargo nor rustup.
    async fn client_bundle(&self, config: &Config, site_was_built: bool) -> Option<ClientBundle> {
        if config.command == Command::Start && site_was_built {
            if let Some(bundle) = client::bundle_of_this_build(&config.site_root) {
                tracing::info!(js = %bundle.js, "client bundle kept: this build of the app made it (no cargo or rustup run)");
                return Some(bundle);
            }
        }
        let build_allowed = !matches!(
            std::env::var("ISR_CLIENT_BUILD").as_deref(),
            Ok("off") | Ok("0") | Ok("false")
        );
        let buildable = config.command != Command::Serve
            && build_allowed
            && std::env::var_os("LEPTOS_OUTPUT_NAME").is_none()
            && self
                .client
                .is_some_and(|k| std::path::Path::new(k.manifest_dir).is_dir());
        if buildable {
            let krate = self.client.expect("checked above");
            let (name, root) = (self.name.clone(), config.site_root.clone());
            let started = std::time::Instant::now();
            let built =
                tokio::task::spawn_blocking(move || client::ensure_bundle(&krate, &name, &root))
                    .await
                    .unwrap_or_else(|e| Err(format!("client build task failed: {e}")));
            match built {
                Ok(bundle) => {
                    tracing::info!(js = %bundle.js, seconds = started.elapsed().as_secs_f64(), "client bundle ready: pages will hydrate");
                    return Some(bundle);
                }
                Err(reason) => tracing::warn!(
                    "client bundle not built, pages will not hydrate (their content is complete without JS): {reason}"
                ),
            }
        }
        let found = client::find_bundle(&config.site_root);
        if found.is_none() && self.client.is_some() {
            tracing::info!("no client bundle in the site root: pages are served without hydration");
        }
        found
    }

    /// Everything the site answers: pages, `/pkg`, `/_isr/*`, the sitemap, and the app's own
    /// routes; CDN purging and in-process revalidation switched on for `engine`.
    async fn app_router(
        &mut self,
        engine: &Arc<Engine>,
        config: &Config,
        shell: &DocumentShell,
    ) -> Result<axum::Router, Stop> {
        if config.revalidate_secret.is_none() {
            tracing::info!("on-demand revalidation is off: set ISR_REVALIDATE_SECRET to enable POST /_isr/revalidate");
        }
        if config.admin_token.is_none() {
            tracing::info!("the operator API is off: set ISR_ADMIN_TOKEN to enable /_isr/api");
        }
        crate::revalidate::set_running(engine.clone());
        let status_pages = self.status_pages(shell).await.map_err(Stop::failure)?;
        let options = crate::server::ServerOptions {
            revalidate_secret: config.revalidate_secret.clone(),
            assets: Some(config.site_root.join("pkg")),
            immutable_assets: shell.client.as_ref().is_some_and(|c| c.immutable),
            metrics_token: config.metrics_token.clone(),
            cache_tag: config.cache_tag,
            admin_token: config.admin_token.clone(),
            sitemap: self.sitemap,
            public_url: config.public_url.clone(),
            status_pages,
            shell: shell.clone(),
            #[cfg(feature = "metrics")]
            metrics: self.metrics.clone(),
            trusted_proxies: config.trusted_proxies.clone(),
            max_auth_failures: config.max_auth_failures,
        };
        // The app's own handlers revalidate through `Extension<isr::Revalidator>`.
        let app_routes = std::mem::take(&mut self.routes)
            .layer(axum::Extension(crate::revalidate::Revalidator::of(engine)));
        Ok(crate::server::unchecked_router(engine.clone(), options)
            .merge(app_routes)
            .layer(crate::server::origin::HostCheckLayer))
    }

    /// Renders the app's 404 and 503 pages with the document shell.
    async fn status_pages(
        &mut self,
        shell: &DocumentShell,
    ) -> Result<crate::server::StatusPages, String> {
        let mut pages = crate::server::StatusPages::default();
        if let Some(view) = self.not_found_page.take() {
            let html = view(shell.clone())
                .await
                .map_err(|e| format!("cannot render the app's 404 page: {e:#}"))?;
            pages.not_found = Some(html.into());
        }
        if let Some(view) = self.unavailable_page.take() {
            let html = view(shell.clone())
                .await
                .map_err(|e| format!("cannot render the app's 503 page: {e:#}"))?;
            pages.unavailable = Some(html.into());
        }
        Ok(pages)
    }

    async fn serve(mut self, opened: Opened, config: Config) -> ExitCode {
        let Opened {
            engine,
            shell,
            background_build,
        } = opened;
        let listening = match config.serve_threads {
            0 => tokio::net::TcpListener::bind(config.addr)
                .await
                .map(Listening::Shared),
            threads => {
                crate::server::threads::Listeners::bind(config.addr, threads).map(Listening::Own)
            }
        };
        let listening = match listening {
            Ok(listening) => listening,
            Err(error) => {
                eprintln!(
                    "error: cannot listen on {} (--addr / LEPTOS_SITE_ADDR): {error}",
                    config.addr
                );
                return ExitCode::from(EXIT_BAD_CONFIG);
            }
        };
        let addr = listening.local_addr().unwrap_or(config.addr);
        let app = match self.app_router(&engine, &config, &shell).await {
            Ok(router) => crate::server::with_access_log(router),
            Err(stop) => return stop.report(),
        };
        if engine.is_loaded() {
            tracing::info!(
                "serving {} pages from {} at http://{addr}",
                engine.page_count(),
                config.site_root.display()
            );
        } else {
            tracing::info!(
                "serving pages from {} at http://{addr} (the page index is still loading; pages not loaded yet are looked up one by one)",
                config.site_root.display()
            );
        }
        let limits = config.connection_limits;
        tracing::info!(
            header_timeout_s = limits.header_timeout.as_secs(),
            idle_timeout_s = limits.idle_timeout.as_secs(),
            body_timeout_s = limits.body_timeout.as_secs(),
            send_timeout_s = limits.send_timeout.as_secs(),
            max_header_bytes = limits.max_header_bytes,
            max_connections = limits.max_connections,
            serve_threads = config.serve_threads,
            "connection limits"
        );
        engine.mark_serving();
        let rebuild = background_build.map(|options| spawn_rebuild(engine.clone(), options));
        let served = match listening {
            Listening::Shared(listener) => crate::server::serve(listener, app, limits).await,
            Listening::Own(listeners) => {
                crate::server::threads::serve_on_threads(
                    listeners,
                    app,
                    limits,
                    crate::server::shutdown_signal(),
                )
                .await
            }
        };
        // No new pages of the rebuild from here on; generations already running finish below.
        if let Some(rebuild) = rebuild {
            rebuild.abort();
        }
        // The listener is closed and requests are answered: let running generations finish
        // (their writes are atomic, so one cut off leaves the old page).
        let running = engine.running_generations();
        if !engine.shutdown(config.shutdown_timeout).await {
            tracing::warn!(
                running,
                timeout_s = config.shutdown_timeout.as_secs(),
                "generations still running at the shutdown deadline; their pages keep the previous version"
            );
        }
        match served {
            Ok(()) => ExitCode::SUCCESS,
            Err(error) => {
                eprintln!("error: server failed: {error}");
                ExitCode::FAILURE
            }
        }
    }
}

/// How to reach the shared tier (`--redis`).
#[cfg(feature = "redis")]
type SharedConfig = crate::shared::SharedOptions;
/// Never made: a build without the `redis` feature refuses `--redis`.
#[cfg(not(feature = "redis"))]
type SharedConfig = std::convert::Infallible;

/// Runs `work` to completion on a new multi-thread runtime; exit 1 when none can start.
fn block_on(work: impl std::future::Future<Output = ExitCode>) -> ExitCode {
    crate::malloc_arenas::limit();
    match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime.block_on(work),
        Err(error) => {
            eprintln!("error: cannot start the async runtime: {error}");
            ExitCode::FAILURE
        }
    }
}

/// The operator subcommand `cli` names, if any.
fn remote_command(cli: &Cli) -> Option<(&RemoteArgs, crate::remote::RemoteCommand)> {
    use crate::remote::RemoteCommand;
    match cli.command.as_ref()? {
        Invocation::Status { remote } => Some((remote, RemoteCommand::Status)),
        Invocation::Pages {
            remote,
            state,
            route,
            tag,
            search,
            limit,
        } => Some((
            remote,
            RemoteCommand::Pages {
                state: state.clone(),
                route: route.clone(),
                tag: tag.clone(),
                search: search.clone(),
                limit: *limit,
            },
        )),
        Invocation::Revalidate {
            remote,
            paths,
            tags,
        } => Some((
            remote,
            RemoteCommand::Revalidate {
                paths: paths.clone(),
                tags: tags.clone(),
            },
        )),
        Invocation::Build | Invocation::Serve | Invocation::Start => None,
    }
}

/// Largest accepted `--max-header-bytes` (16 MiB).
const MAX_HEADER_BYTES_LIMIT: usize = 16 << 20;

/// A token or secret from `variable`: `None` when unset or blank, an error when it is shorter
/// than [`crate::server::auth::MIN_SECRET_LEN`].
fn secret_from_env(variable: &str) -> Result<Option<String>, String> {
    let Some(secret) = std::env::var(variable)
        .ok()
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
    else {
        return Ok(None);
    };
    crate::server::auth::check_secret(variable, &secret)?;
    Ok(Some(secret))
}

/// Largest accepted value of the connection timeout flags, in seconds (a day).
const MAX_TIMEOUT_SECS: u64 = 86_400;

/// Where `serve` accepts connections.
enum Listening {
    /// One listener on the main (multi-thread) runtime: `--serve-threads 0`.
    Shared(tokio::net::TcpListener),
    /// A listener and a current-thread runtime per serving thread.
    Own(crate::server::threads::Listeners),
}

impl Listening {
    fn local_addr(&self) -> std::io::Result<SocketAddr> {
        match self {
            Listening::Shared(listener) => listener.local_addr(),
            Listening::Own(listeners) => Ok(listeners.local_addr()),
        }
    }
}

/// Largest accepted `--serve-threads`.
const MAX_SERVE_THREADS: u64 = 1024;

/// One serving thread per CPU.
fn default_serve_threads() -> usize {
    // Only Linux spreads connections over SO_REUSEPORT sockets (see `server::threads`):
    // elsewhere the shared multi-thread runtime serves on every core.
    if cfg!(target_os = "linux") {
        crate::cpus()
    } else {
        0
    }
}

/// Largest accepted `--max-connections`.
const MAX_CONNECTIONS_LIMIT: usize = 1_000_000;

/// A connection timeout flag's value: whole seconds from 1 to [`MAX_TIMEOUT_SECS`]; `names` is
/// `--flag / ENV` for the error message.
fn seconds(text: Option<String>, names: &str) -> Result<Option<Duration>, String> {
    let expected = format!("a whole number of seconds from 1 to {MAX_TIMEOUT_SECS}");
    Ok(whole_number(text, names, 1..=MAX_TIMEOUT_SECS, &expected)?.map(Duration::from_secs))
}

/// A whole-number flag value in `range` (`None` when the flag and env are unset); the error is
/// one line naming the flag and env (`names`) and saying what was `expected`.
fn whole_number(
    text: Option<String>,
    names: &str,
    range: std::ops::RangeInclusive<u64>,
    expected: &str,
) -> Result<Option<u64>, String> {
    let Some(text) = text else { return Ok(None) };
    match text.trim().parse::<u64>() {
        Ok(n) if range.contains(&n) => Ok(Some(n)),
        _ => Err(format!(
            "invalid value {text:?} for {names}: expected {expected}"
        )),
    }
}

/// Logs to stderr through a writer thread (tracing-appender): a request formats its access-log
/// line and queues it instead of writing to stderr itself (the synchronous write cost ~30 % of
/// the cached-page req/s). Nothing is dropped: a full queue makes the logger wait. The returned
/// guard flushes the queue when dropped, at the end of `run`.
fn init_tracing() -> Option<tracing_appender::non_blocking::WorkerGuard> {
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let (writer, guard) = tracing_appender::non_blocking::NonBlockingBuilder::default()
        .lossy(false)
        .thread_name("isr-log")
        .finish(std::io::stderr());
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .fmt_fields(crate::log_fields::EscapedFields)
        .with_writer(writer)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .try_init()
        .ok()
        .map(|()| guard)
}

/// An opened site: the engine, the client bundle pages load, and the build to run in the
/// background when `start` found a site built before.
struct Opened {
    engine: Arc<Engine>,
    /// What every document gets besides its body (the client bundle, the app's shell).
    shell: DocumentShell,
    background_build: Option<BuildOptions>,
}

/// Why the app stops before serving: the lines to print and the exit code.
struct Stop {
    code: u8,
    lines: Vec<String>,
}

impl Stop {
    fn config(line: String) -> Self {
        Stop {
            code: EXIT_BAD_CONFIG,
            lines: vec![line],
        }
    }

    fn failure(line: String) -> Self {
        Stop {
            code: 1,
            lines: vec![line],
        }
    }

    /// Prints the lines and gives the exit code.
    fn report(self) -> ExitCode {
        for line in &self.lines {
            eprintln!("error: {line}");
        }
        ExitCode::from(self.code)
    }
}

/// Rebuilds every page in the background while the existing site is served (`start` over a
/// built site); pages swap in as they are regenerated.
fn spawn_rebuild(engine: Arc<Engine>, options: BuildOptions) -> tokio::task::JoinHandle<()> {
    tracing::info!(jobs = options.jobs, "serving the existing site; rebuilding it in the background (pages swap in as they are regenerated)");
    tokio::spawn(async move {
        let started = std::time::Instant::now();
        let options = BuildOptions {
            progress: false,
            ..options
        };
        match build::build(&engine, options).await {
            Ok(report) => {
                println!("{report}");
                tracing::info!(
                    seconds = started.elapsed().as_secs_f64(),
                    "background rebuild finished"
                );
            }
            Err(error) => tracing::error!(
                %error,
                "background rebuild failed: pages regenerated so far are in place, the others keep their previous version"
            ),
        }
    })
}

/// What must hold before any page is built: at least one page (an app built without its `ssr`
/// feature registers none), and every loader's and `paths` function's arguments can be
/// extracted (state registered, typed params matching the route). Every problem is returned.
///
/// ```
/// let problems = isr::cli::check_pages(&[], &Default::default()).unwrap_err();
/// assert!(problems[0].contains("`ssr` feature"));
/// ```
///
/// # Errors
/// One message per problem, each naming its page: no page registered at all, or an argument
/// that [`FromContext::check`](crate::FromContext::check) refuses (unregistered state, a
/// `Path<T>` field with no route segment, params taken by a `paths` function).
pub fn check_pages(
    defs: &[&'static crate::PageDef],
    state: &crate::context::AppState,
) -> Result<(), Vec<String>> {
    if defs.is_empty() {
        return Err(vec![
            "no pages are registered: `#[page]` registers pages only when the app is compiled with its `ssr` feature (`[features] default = [\"ssr\"]`, or `cargo run --features ssr`), and only from modules the binary links".into(),
        ]);
    }
    let mut problems = Vec::new();
    for def in defs {
        let params = def.param_names();
        let check = crate::context::Check {
            route: def.path,
            params: &params,
            state,
            in_paths: false,
        };
        problems.extend(
            (def.check)(&check)
                .into_iter()
                .map(|problem| format!("page `{}`: {problem}", def.path)),
        );
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(problems)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Result<Config, String> {
        let cli = Cli::try_parse_from(std::iter::once("app").chain(args.iter().copied()))
            .map_err(|e| e.to_string())?;
        App::new("demo").config(cli)
    }

    #[test]
    fn flags_work_before_and_after_the_subcommand() {
        let before = parse(&["--addr", "127.0.0.1:4000", "serve"]).unwrap();
        let after = parse(&["serve", "--addr", "127.0.0.1:4000"]).unwrap();
        assert_eq!(before.addr, after.addr);
        assert_eq!(after.command, Command::Serve);
        assert_eq!(parse(&[]).unwrap().command, Command::Start);
        assert_eq!(
            parse(&[]).unwrap().site_root,
            PathBuf::from("target/site/demo")
        );
    }

    #[test]
    fn bad_values_name_the_flag_and_env() {
        let err = parse(&["--addr", "nope"]).unwrap_err();
        assert!(
            err.contains("--addr") && err.contains("LEPTOS_SITE_ADDR"),
            "{err}"
        );
        let err = parse(&["build", "--jobs", "0"]).unwrap_err();
        assert!(err.contains("--jobs"), "{err}");
        for (flag, env) in [
            ("--header-timeout", "ISR_HEADER_TIMEOUT"),
            ("--idle-timeout", "ISR_IDLE_TIMEOUT"),
            ("--body-timeout", "ISR_BODY_TIMEOUT"),
            ("--max-connections", "ISR_MAX_CONNECTIONS"),
            ("--max-regenerations", "ISR_MAX_REGENERATIONS"),
        ] {
            for bad in ["0", "-1", "1.5", "nope"] {
                let err = parse(&["serve", &format!("{flag}={bad}")]).unwrap_err();
                assert!(err.contains(flag) && err.contains(env), "{err}");
            }
        }
        for bad in ["-1", "1.5", "nope"] {
            let err = parse(&["serve", &format!("--shutdown-timeout={bad}")]).unwrap_err();
            assert!(err.contains("ISR_SHUTDOWN_TIMEOUT"), "{err}");
        }
        for bad in ["-1", "1.5", "nope", "1025"] {
            let err = parse(&["serve", &format!("--serve-threads={bad}")]).unwrap_err();
            assert!(err.contains("ISR_SERVE_THREADS"), "{err}");
        }
        let config = parse(&["--shutdown-timeout", "0", "--max-regenerations", "3"]).unwrap();
        assert_eq!(config.shutdown_timeout, Duration::ZERO);
        assert_eq!(config.engine.max_regenerations, 3);
        assert_eq!(config.serve_threads, default_serve_threads());
        assert_eq!(parse(&["--serve-threads", "0"]).unwrap().serve_threads, 0);
    }

    #[test]
    #[cfg(not(feature = "redis"))]
    fn without_the_redis_feature_the_redis_flags_name_the_feature() {
        let err = parse(&["serve", "--redis=redis://127.0.0.1:6379/0"]).unwrap_err();
        assert!(
            err.contains("--redis / ISR_REDIS_URL") && err.contains("`redis` feature"),
            "{err}"
        );
        assert!(parse(&["serve"]).unwrap().shared.is_none());
    }

    #[test]
    #[cfg(feature = "redis")]
    fn redis_flags_are_checked_and_default_to_the_app_name() {
        for bad in ["http://127.0.0.1:6379", "redis://", "nope"] {
            let err = parse(&["serve", &format!("--redis={bad}")]).unwrap_err();
            assert!(
                err.contains("--redis") && err.contains("ISR_REDIS_URL"),
                "{err}"
            );
        }
        let err = parse(&["--redis-prefix", "blog"]).unwrap_err();
        assert!(err.contains("without --redis"), "{err}");
        let err = parse(&["--redis=redis://127.0.0.1:1/0", "--redis-prefix=a b"]).unwrap_err();
        assert!(err.contains("ISR_REDIS_PREFIX"), "{err}");
        for bad in ["0", "601", "x"] {
            let err = parse(&[
                "--redis=redis://127.0.0.1:1/0",
                &format!("--redis-lease-ttl={bad}"),
            ])
            .unwrap_err();
            assert!(err.contains("ISR_REDIS_LEASE_TTL"), "{err}");
        }
        assert!(
            parse(&["serve"]).unwrap().shared.is_none(),
            "off by default"
        );
        let shared = parse(&[
            "--redis",
            "redis://127.0.0.1:6379/2",
            "--redis-lease-ttl",
            "3",
        ])
        .unwrap()
        .shared
        .unwrap();
        assert_eq!(shared.prefix, "demo", "the app's name");
        assert_eq!(shared.lease_ttl, Duration::from_secs(3));
    }

    #[test]
    fn connection_limits_come_from_the_flags() {
        let config = parse(&[
            "--header-timeout",
            "3",
            "serve",
            "--idle-timeout",
            "4",
            "--body-timeout",
            "5",
            "--send-timeout",
            "7",
            "--max-connections",
            "6",
        ])
        .unwrap();
        let limits = config.connection_limits;
        assert_eq!(limits.header_timeout, Duration::from_secs(3));
        assert_eq!(limits.idle_timeout, Duration::from_secs(4));
        assert_eq!(limits.body_timeout, Duration::from_secs(5));
        assert_eq!(limits.send_timeout, Duration::from_secs(7));
        assert_eq!(limits.max_connections, 6);
        assert_eq!(
            parse(&[]).unwrap().connection_limits,
            ConnectionLimits::default()
        );
    }
}
