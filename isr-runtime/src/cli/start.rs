//! Opening a site: the start-up checks of every page, the engine over the site root (and the
//! shared tier), the client bundle, the build (now, or in the background over a built site),
//! and the router of everything the site answers.

use super::*;

impl App {
    pub(super) async fn execute(mut self, config: Config) -> ExitCode {
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
    pub(super) async fn open(&mut self, config: &Config) -> Result<Opened, Stop> {
        self.state.insert(config.site_url.clone());
        // Registered now for the start-up checks of `State<Revalidator>`; bound to the engine
        // once it is open.
        self.state.insert(crate::revalidate::Revalidator::unbound());
        let defs: Vec<&'static crate::PageDef> = crate::page::pages().collect();
        check_pages(&defs, &self.state)
            .and(crate::layout::check())
            .map_err(|lines| Stop {
                code: EXIT_BAD_CONFIG,
                lines,
            })?;
        if let Some(warning) = super::site_root::production_warning(&config.site_root) {
            tracing::warn!("{warning}");
        }
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
        let public = public_files(config.public_dir.as_deref(), &routes)?;
        let written = crate::assets::write_all(&config.site_root.join(crate::assets::SITE_DIR))
            .map_err(|error| Stop::failure(error.to_string()))?;
        if written.written > 0 {
            tracing::info!(
                written = written.written,
                kept = written.kept,
                "assets written to the site root"
            );
        }
        if config.command == Command::Dev {
            return self.open_dev(config, routes, public).await;
        }
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
        // `start` over a site built before serves it at once and rebuilds it in the background
        // (no downtime on restart); `build`, and `start` on a new site, build first. So does
        // every restart under `cargo leptos watch`: the page its live reload shows after an edit
        // must be rendered by the new code. Building first, a client bundle that fails to build
        // fails the start, as it fails `build`.
        let under_watch = std::env::var_os("LEPTOS_WATCH").is_some();
        let rebuild_in_background = config.command == Command::Start && was_built && !under_watch;
        let builds_first = config.command != Command::Serve && !rebuild_in_background;
        let client = self.client_bundle(config, was_built, builds_first).await?;
        let shell = DocumentShell {
            client,
            extra_head: crate::render::live_reload_script(),
            app: self.shell.clone(),
        };
        let store_meta_dir = store.meta_dir().to_path_buf();
        let store_meta_dir = store_meta_dir.as_path();
        let mut engine = Engine::builder(routes, Arc::new(store))
            .options(config.engine)
            .documents(Arc::new(shell.clone()))
            .state(std::mem::take(&mut self.state));
        if let Some(tier) = shared {
            engine = engine.shared(tier);
        }
        if !config.cdns.is_empty() {
            let names: Vec<&str> = config.cdns.iter().map(|cdn| cdn.name()).collect();
            tracing::info!(cdns = ?names, "CDN purging on: changed pages are purged at these CDNs");
            let journal = crate::cdn::SqliteJournal::open(store_meta_dir)
                .map_err(|error| tracing::warn!(%error, "CDN purge journal unavailable: purges not yet sent are lost on a restart"))
                .ok()
                .map(|journal| Arc::new(journal) as Arc<dyn crate::cdn::PurgeJournal>);
            engine =
                engine.page_changes(crate::cdn::CdnPurger::start(config.cdns.clone(), journal));
        }
        let engine = engine.open().await.map_err(|error| {
            Stop::failure(format!(
                "cannot read the site at {}: {error}",
                config.site_root.display()
            ))
        })?;
        if builds_first {
            tracing::info!(site_root = %config.site_root.display(), jobs = config.build.jobs, "building");
            let report = build::build(&engine, config.build)
                .await
                .map_err(|error| Stop::failure(error.to_string()))?;
            println!("{report}");
            remove_unused_bundles(&engine, &config.site_root);
        }
        Ok(Opened {
            engine,
            shell,
            background_build: rebuild_in_background.then_some(config.build),
            public,
        })
    }

    /// Dev mode: an engine over memory (its pages are never stored or served: every request
    /// renders, see [`crate::server::dev`]), no build, no shared tier or CDN; the client bundle
    /// is built in the background once the server listens ([`App::app_router`]), except under
    /// cargo-leptos, which builds it.
    async fn open_dev(
        &mut self,
        config: &Config,
        routes: Routes,
        public: crate::public::PublicFiles,
    ) -> Result<Opened, Stop> {
        tracing::warn!("dev mode: every request runs its loader and renders (nothing cached or stored); run `{} start` or a release build to serve the site with ISR", self.name);
        if config.shared.is_some() || !config.cdns.is_empty() {
            tracing::info!("dev mode: --redis and --cdn-purge are not used");
        }
        let client = std::env::var_os("LEPTOS_OUTPUT_NAME")
            .and_then(|_| client::find_bundle(&config.site_root));
        let shell = DocumentShell {
            client,
            extra_head: crate::render::live_reload_script(),
            app: self.shell.clone(),
        };
        let engine = Engine::builder(routes, Arc::new(crate::store::MemoryStore::default()))
            .options(config.engine)
            .documents(Arc::new(shell.clone()))
            .state(std::mem::take(&mut self.state))
            .open()
            .await
            .map_err(|error| Stop::failure(format!("cannot open the dev engine: {error}")))?;
        Ok(Opened {
            engine,
            shell,
            background_build: None,
            public,
        })
    }

    /// The client crate whose bundle isr may build here: the app has one with its sources on
    /// this machine, the build is not turned off (`--no-client`, `ISR_CLIENT_BUILD=off`) and
    /// cargo-leptos (`LEPTOS_OUTPUT_NAME`) does not build it.
    fn buildable_client(&self, config: &Config) -> Option<ClientCrate> {
        let allowed = !config.no_client
            && !client::switched_off("ISR_CLIENT_BUILD")
            && std::env::var_os("LEPTOS_OUTPUT_NAME").is_none();
        self.client
            .filter(|krate| allowed && std::path::Path::new(krate.manifest_dir).is_dir())
    }

    /// Builds the client bundle for dev mode in the background and hands it to `dev` when
    /// ready: the port is open meanwhile, and pages rendered from then on hydrate.
    fn build_client_in_background(&self, config: &Config, dev: Arc<crate::server::dev::DevPages>) {
        let Some(krate) = self.buildable_client(config) else {
            return;
        };
        let (name, root) = (self.name.clone(), config.site_root.clone());
        tokio::task::spawn_blocking(move || {
            let started = std::time::Instant::now();
            match client::ensure_bundle(&krate, &name, &root) {
                Ok(bundle) => {
                    tracing::info!(js = %bundle.js, seconds = started.elapsed().as_secs_f64(), "client bundle ready: pages rendered from now on hydrate");
                    dev.set_client(bundle);
                }
                Err(reason) => tracing::error!(
                    "the client bundle failed to build, pages will not hydrate: {reason}"
                ),
            }
        });
    }

    /// The bundle pages load: built (when this app has a client crate and may build it), else
    /// whatever the site root already has. Missing toolchains are reported once, with the fix.
    /// `serve`, and `start` over a site this build of the app made the bundle for, run neither
    /// cargo nor rustup.
    ///
    /// A bundle that fails to build stops the start with the cause (exit status 1) when the
    /// pages are built first (`builds_first`: `build`, and `start` on a new site), unless the
    /// app opted out (`--no-client`, `ISR_CLIENT_BUILD=off`); otherwise it is a warning.
    pub(super) async fn client_bundle(
        &self,
        config: &Config,
        site_was_built: bool,
        builds_first: bool,
    ) -> Result<Option<ClientBundle>, Stop> {
        if let (Command::Start, true, Some(krate)) = (config.command, site_was_built, self.client) {
            if let Some(bundle) = client::bundle_of_this_build(&config.site_root, &krate) {
                tracing::info!(js = %bundle.js, "client bundle kept: this build of the app made it (no cargo or rustup run)");
                return Ok(Some(bundle));
            }
        }
        let buildable = self
            .buildable_client(config)
            .filter(|_| config.command != Command::Serve);
        if let Some(krate) = buildable {
            let (name, root) = (self.name.clone(), config.site_root.clone());
            let started = std::time::Instant::now();
            let built =
                tokio::task::spawn_blocking(move || client::ensure_bundle(&krate, &name, &root))
                    .await
                    .unwrap_or_else(|e| Err(format!("client build task failed: {e}")));
            match built {
                Ok(bundle) => {
                    tracing::info!(js = %bundle.js, seconds = started.elapsed().as_secs_f64(), "client bundle ready: pages will hydrate");
                    return Ok(Some(bundle));
                }
                Err(reason) if builds_first => {
                    return Err(Stop::failure(format!(
                        "the client bundle failed to build, so the pages would not hydrate: {reason}\n\
                         (fix the cause, or build without hydration: `{} build --no-client` / ISR_NO_CLIENT=1)",
                        self.name
                    )))
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
        Ok(found)
    }

    /// Everything the site answers: pages, `/pkg`, `/_isr/*`, the sitemap, and the app's own
    /// routes; CDN purging and in-process revalidation switched on for `engine`.
    pub(super) async fn app_router(
        &mut self,
        engine: &Arc<Engine>,
        config: &Config,
        shell: &DocumentShell,
        public: crate::public::PublicFiles,
    ) -> Result<axum::Router, Stop> {
        if config.revalidate_secret.is_none() {
            tracing::info!("on-demand revalidation is off: set ISR_REVALIDATE_SECRET to enable POST /_isr/revalidate");
        }
        if config.admin_token.is_none() {
            tracing::info!("the operator API is off: set ISR_ADMIN_TOKEN to enable /_isr/api");
        }
        if config.preview.is_none() {
            tracing::info!("previews are off: set ISR_PREVIEW_SECRET to enable signed preview links (/_isr/preview)");
        }
        crate::revalidate::set_running(engine.clone());
        let status_pages = self.status_pages(shell).await.map_err(Stop::failure)?;
        let dev = (config.command == Command::Dev).then(|| {
            let dev = Arc::new(crate::server::dev::DevPages::new(
                engine.clone(),
                shell.clone(),
                status_pages.clone(),
            ));
            self.build_client_in_background(config, dev.clone());
            dev
        });
        let options = crate::server::ServerOptions {
            revalidate_secret: config.revalidate_secret.clone(),
            assets: Some(config.site_root.join("pkg")),
            immutable_assets: shell.client.as_ref().is_some_and(|c| c.immutable),
            static_assets: Some(config.site_root.join(crate::assets::SITE_DIR)),
            public,
            dev,
            metrics_token: config.metrics_token.clone(),
            tag_headers: config.tag_headers,
            admin_token: config.admin_token.clone(),
            sitemap: self.sitemap,
            public_url: config.public_url.clone(),
            cdn_url: config.cdn_url.clone(),
            status_pages,
            shell: shell.clone(),
            #[cfg(feature = "metrics")]
            metrics: self.metrics.clone(),
            trusted_proxies: config.trusted_proxies.clone(),
            max_auth_failures: config.max_auth_failures,
            preview: config.preview.clone(),
        };
        // The app's own handlers revalidate through `Extension<isr::Revalidator>`.
        let app_routes = std::mem::take(&mut self.routes)
            .layer(axum::Extension(crate::revalidate::Revalidator::of(engine)));
        Ok(crate::server::unchecked_router(engine.clone(), options)
            .merge(app_routes)
            .layer(crate::server::origin::HostCheckLayer))
    }

    /// Renders the app's 404 and 503 pages with the document shell, once for the whole app and
    /// once per layout prefix.
    pub(super) async fn status_pages(
        &mut self,
        shell: &DocumentShell,
    ) -> Result<crate::server::StatusPages, String> {
        Ok(crate::server::StatusPages {
            not_found: render_status(self.not_found_page.take(), shell, "404").await?,
            unavailable: render_status(self.unavailable_page.take(), shell, "503").await?,
        })
    }
}

/// Every rendering of one status page (`None` when the app has none).
async fn render_status(
    view: Option<super::StatusView>,
    shell: &DocumentShell,
    status: &str,
) -> Result<Option<crate::server::StatusDocument>, String> {
    let Some(view) = view else {
        return Ok(None);
    };
    let failed = |e: crate::Error| format!("cannot render the app's {status} page: {e:#}");
    let mut document =
        crate::server::StatusDocument::new(view(shell.clone(), "/").await.map_err(failed)?.into());
    for prefix in crate::layout::prefixes() {
        if prefix != "/" {
            let html = view(shell.clone(), prefix).await.map_err(failed)?;
            document = document.under(prefix, html.into());
        }
    }
    Ok(Some(document))
}

/// The files of the `public/` folder, if any; a file at a page's path stops the start (exit
/// status 2), naming both.
fn public_files(
    dir: Option<&std::path::Path>,
    routes: &Routes,
) -> Result<crate::public::PublicFiles, Stop> {
    let Some(dir) = dir else {
        return Ok(Default::default());
    };
    let files = crate::public::PublicFiles::scan(dir).map_err(|error| {
        Stop::config(format!(
            "public folder (--public-dir / ISR_PUBLIC_DIR): {error}"
        ))
    })?;
    let clashes: Vec<String> = files
        .paths()
        .filter_map(|path| {
            routes.def(path).map(|def| {
                format!(
                    "{}{path} and the page `{}` both answer {path}: remove one",
                    dir.display(),
                    def.id
                )
            })
        })
        .collect();
    if !clashes.is_empty() {
        return Err(Stop {
            code: EXIT_BAD_CONFIG,
            lines: clashes,
        });
    }
    tracing::info!(dir = %dir.display(), files = files.paths().count(), "public files served under their own names");
    Ok(files)
}

/// An opened site: the engine, the client bundle pages load, and the build to run in the
/// background when `start` found a site built before.
pub(super) struct Opened {
    pub(super) engine: Arc<Engine>,
    /// What every document gets besides its body (the client bundle, the app's shell).
    pub(super) shell: DocumentShell,
    pub(super) background_build: Option<BuildOptions>,
    /// The app's `public/` files.
    pub(super) public: crate::public::PublicFiles,
}

/// Why the app stops before serving: the lines to print and the exit code.
pub(super) struct Stop {
    pub(super) code: u8,
    pub(super) lines: Vec<String>,
}

impl Stop {
    pub(super) fn config(line: String) -> Self {
        Stop {
            code: EXIT_BAD_CONFIG,
            lines: vec![line],
        }
    }

    pub(super) fn failure(line: String) -> Self {
        Stop {
            code: 1,
            lines: vec![line],
        }
    }

    /// Prints the lines and gives the exit code.
    pub(super) fn report(self) -> ExitCode {
        for line in &self.lines {
            eprintln!("error: {line}");
        }
        ExitCode::from(self.code)
    }
}

/// Rebuilds every page in the background while the existing site is served (`start` over a
/// built site); pages swap in as they are regenerated.
pub(super) fn spawn_rebuild(
    engine: Arc<Engine>,
    options: BuildOptions,
    site_root: std::path::PathBuf,
) -> tokio::task::JoinHandle<()> {
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
                remove_unused_bundles(&engine, &site_root);
            }
            Err(error) => tracing::error!(
                %error,
                "background rebuild failed: pages regenerated so far are in place, the others keep their previous version"
            ),
        }
    })
}

/// After a build: removes the client bundles that no stored page loads any more
/// ([`client::remove_retired_bundles`]); a failure is a warning (the files only take room).
fn remove_unused_bundles(engine: &Engine, site_root: &std::path::Path) {
    // With the shared tier, pages can come from instances still on an older build: their
    // generation time says nothing about the bundle they load.
    if !engine.is_loaded() || engine.has_shared_tier() {
        return;
    }
    let oldest = engine.html_pages().0.iter().map(|(_, at)| *at).min();
    match client::remove_retired_bundles(site_root, oldest) {
        Ok(removed) if !removed.is_empty() => {
            tracing::info!(
                ?removed,
                "old client bundles removed: no stored page loads them"
            )
        }
        Ok(_) => {}
        Err(error) => tracing::warn!(%error, "could not remove old client bundles"),
    }
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
            query: def.query.names,
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
