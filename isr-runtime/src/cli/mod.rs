//! The command line every app shares: `build`, `serve`, `start` (default), flags with env
//! fallback, and [`App`], the entry point an app's `main` calls.

//!
//! The concerns live in their own files: `args` (flags and subcommands), `config` (resolving
//! them), `start` (opening the site and its router), `serve` (listening and shutdown); this
//! file has [`App`], its builder and its two entry points.

mod args;
mod cdn;
mod config;
mod preview_link;
mod serve;
mod site_root;
mod socket_activation;
mod start;

use args::*;
use config::*;
use serve::*;
use start::*;

pub use start::check_pages;

use crate::build::{self, BuildOptions};
use crate::client::{self, ClientBundle, ClientCrate};
use crate::engine::{Engine, EngineOptions};
use crate::render::DocumentShell;
use crate::route::Routes;
use crate::server::ConnectionLimits;
use crate::store::FsStore;
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

/// What the engine is asked to do (the page subcommands).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Command {
    Build,
    Serve,
    Start,
    Dev,
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
    /// Set with [`App::site_root`]; `None`: [`site_root::default_site_root`].
    default_site_root: Option<PathBuf>,
    /// Set with [`App::public_dir`].
    public_dir: Option<PathBuf>,
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
    /// The listening socket a service manager passed (socket activation), taken by `run`
    /// before it starts any thread; `serve` listens on it instead of binding `--addr`.
    passed_socket: Option<std::net::TcpListener>,
}

/// Renders an app's status page with the document shell, inside the layouts of a prefix (it
/// is rendered once per layout prefix).
type StatusView = Box<
    dyn Fn(
            DocumentShell,
            &'static str,
        ) -> futures::future::BoxFuture<'static, crate::Result<String>>
        + Send,
>;

/// `url_path` is where the status page's view believes it is (`use_location`): it is rendered
/// once per layout prefix and served for every path that gets this status.
fn status_view<F, V>(view: F, title: &'static str, url_path: &'static str) -> StatusView
where
    F: Fn() -> V + Clone + Send + Sync + 'static,
    V: leptos::prelude::IntoView + 'static,
{
    Box::new(move |shell, layout_prefix| {
        let view = view.clone();
        Box::pin(async move {
            crate::render::status_page(view, title, url_path, layout_prefix, &shell).await
        })
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
    /// `start` (also when a release build is given no subcommand)
    Start,
    /// `dev` (also when a debug build is given no subcommand)
    Dev,
}

/// A subcommand an app adds to the shared CLI (e.g. `shop seed`).
struct AppCommand {
    command: clap::Command,
    run: Box<dyn FnOnce(&clap::ArgMatches) -> ExitCode>,
}

impl App {
    /// An app named `name` (used in messages and in the default site root: `site/<name>` in
    /// cargo's target directory when the binary runs from there, e.g. `target/site/<name>`
    /// under `cargo run`, whatever the working directory; else `<name>-site` beside the binary).
    ///
    /// ```
    /// let app = isr::App::new("shop");
    /// # let _ = app;
    /// ```
    pub fn new(name: impl Into<String>) -> Self {
        let name = name.into();
        App {
            default_site_root: None,
            public_dir: None,
            passed_socket: None,
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

    /// The app's own `404` page (any path that is no page, and pages that are gone), inside the
    /// app's layouts ([`layout`](mod@crate::layout)): rendered at start once for the whole app and once per
    /// layout prefix, at the path `/404` (what its `use_location` reports); a request gets the
    /// rendering in the layouts that cover its path. The status stays `404`.
    ///
    /// ```
    /// use leptos::prelude::*;
    /// let app = isr::App::new("blog").not_found_page(|| view! { <h1>"No such page"</h1> });
    /// # let _ = app;
    /// ```
    pub fn not_found_page<F, V>(mut self, view: F) -> Self
    where
        F: Fn() -> V + Clone + Send + Sync + 'static,
        V: leptos::prelude::IntoView + 'static,
    {
        self.not_found_page = Some(status_view(view, "Not found", "/404"));
        self
    }

    /// The app's own `503` page (a page that was never generated and cannot be right now),
    /// inside the app's layouts as [`App::not_found_page`] is; rendered at start, at the path
    /// `/503`. The status and `Retry-After` stay.
    ///
    /// ```
    /// use leptos::prelude::*;
    /// let app = isr::App::new("blog").unavailable_page(|| view! { <h1>"Back soon"</h1> });
    /// # let _ = app;
    /// ```
    pub fn unavailable_page<F, V>(mut self, view: F) -> Self
    where
        F: Fn() -> V + Clone + Send + Sync + 'static,
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

    /// The site root when neither `--site-root` nor `LEPTOS_SITE_ROOT` is given (a relative path
    /// is relative to the working directory; see [`App::new`] for isr's default).
    ///
    /// ```
    /// let app = isr::App::new("blog").site_root("/var/lib/blog/site");
    /// # let _ = app;
    /// ```
    pub fn site_root(mut self, path: impl Into<PathBuf>) -> Self {
        self.default_site_root = Some(path.into());
        self
    }

    /// The folder of files served under their own names ([`crate::public`]) when neither
    /// `--public-dir` nor `ISR_PUBLIC_DIR` is given. Without it, the `public/` folder of the
    /// [client crate](App::client) is served when there is one.
    ///
    /// ```
    /// let app = isr::App::new("blog").public_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/public"));
    /// # let _ = app;
    /// ```
    pub fn public_dir(mut self, path: impl Into<PathBuf>) -> Self {
        self.public_dir = Some(path.into());
        self
    }

    /// The `public/` folder served by default: [`App::public_dir`], else the client crate's,
    /// when it exists.
    fn default_public_dir(&self) -> Option<PathBuf> {
        self.public_dir.clone().or_else(|| {
            self.client
                .map(|krate| std::path::Path::new(krate.manifest_dir).join("public"))
                .filter(|dir| dir.is_dir())
        })
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
        if let Some(Invocation::PreviewLink { path, ttl, url }) = &cli.command {
            let now = crate::preview::unix_now();
            return match preview_link::preview_link(&cli, path, ttl.as_deref(), url.as_deref(), now)
            {
                Ok(link) => {
                    println!("{link}");
                    ExitCode::SUCCESS
                }
                Err(message) => {
                    eprintln!("error: {message}");
                    ExitCode::from(EXIT_BAD_CONFIG)
                }
            };
        }
        if let Some((remote, command)) = remote_command(&cli) {
            return match self.remote(&cli, remote) {
                Ok(remote) => block_on(crate::remote::run(remote, command)),
                Err(message) => {
                    eprintln!("error: {message}");
                    ExitCode::from(EXIT_BAD_CONFIG)
                }
            };
        }
        // Before `init_tracing` starts the log thread: taking the socket unsets its variables.
        match socket_activation::take_passed_socket() {
            Ok(socket) => self.passed_socket = socket,
            Err(message) => {
                eprintln!("error: {message}");
                return ExitCode::from(EXIT_BAD_CONFIG);
            }
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
        // `start` explicitly: an embedded isr serves its site, whatever the build profile.
        let cli = Cli::try_parse_from([self.name.as_str(), "start"]).map_err(|e| e.to_string())?;
        let config = self.config(cli)?;
        self.prepare(config.command)?;
        let opened = self
            .open(&config)
            .await
            .map_err(|stop| stop.lines.join("; "))?;
        let router = self
            .app_router(&opened.engine, &config, &opened.shell, opened.public)
            .await
            .map_err(|stop| stop.lines.join("; "))?;
        opened.engine.mark_serving();
        let rebuild = opened
            .background_build
            .map(|options| spawn_rebuild(opened.engine.clone(), options, config.site_root.clone()));
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
            Command::Dev => PageCommand::Dev,
        };
        if let Some(prepare) = self.before_pages.take() {
            prepare(command)?;
        }
        for make in std::mem::take(&mut self.deferred_state) {
            make(command, &mut self.state)?;
        }
        Ok(())
    }
}
