//! Serving: the listeners (one socket per serving thread, or one shared; or the socket a
//! service manager passed, see `socket_activation`), the connection
//! limits, graceful shutdown, the runtime `run` owns, and its log output.

use super::*;

impl App {
    pub(super) async fn serve(mut self, opened: Opened, config: Config) -> ExitCode {
        let Opened {
            engine,
            shell,
            background_build,
            public,
        } = opened;
        let passed = self.passed_socket.take();
        let from_manager = passed.is_some();
        let listening = match (passed, config.serve_threads) {
            (None, 0) => tokio::net::TcpListener::bind(config.addr)
                .await
                .map(Listening::Shared),
            (None, threads) => {
                crate::server::threads::Listeners::bind(config.addr, threads).map(Listening::Own)
            }
            (Some(socket), 0) => socket
                .set_nonblocking(true)
                .and_then(|()| tokio::net::TcpListener::from_std(socket))
                .map(Listening::Shared),
            (Some(socket), threads) => {
                crate::server::threads::Listeners::from_socket(socket, threads).map(Listening::Own)
            }
        };
        let listening = match listening {
            Ok(listening) => listening,
            Err(error) if from_manager => {
                eprintln!("error: cannot listen on the socket the service manager passed (LISTEN_FDS): {error}");
                return ExitCode::from(EXIT_BAD_CONFIG);
            }
            Err(error) => {
                eprintln!(
                    "error: cannot listen on {} (--addr / LEPTOS_SITE_ADDR): {error}",
                    config.addr
                );
                return ExitCode::from(EXIT_BAD_CONFIG);
            }
        };
        if from_manager {
            tracing::info!(
                "listening on the socket the service manager passed (LISTEN_FDS); --addr is not used"
            );
        }
        let addr = listening.local_addr().unwrap_or(config.addr);
        let app = match self.app_router(&engine, &config, &shell, public).await {
            Ok(router) => crate::server::with_access_log(router),
            Err(stop) => return stop.report(),
        };
        if config.command == Command::Dev {
            tracing::info!("serving in dev mode (every request renders) at http://{addr}");
        } else if engine.is_loaded() {
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
        let rebuild = background_build
            .map(|options| spawn_rebuild(engine.clone(), options, config.site_root.clone()));
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

/// Runs `work` to completion on a new multi-thread runtime; exit 1 when none can start.
pub(super) fn block_on(work: impl std::future::Future<Output = ExitCode>) -> ExitCode {
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

/// Where `serve` accepts connections.
pub(super) enum Listening {
    /// One listener on the main (multi-thread) runtime: `--serve-threads 0`.
    Shared(tokio::net::TcpListener),
    /// A listener and a current-thread runtime per serving thread.
    Own(crate::server::threads::Listeners),
}

impl Listening {
    pub(super) fn local_addr(&self) -> std::io::Result<SocketAddr> {
        match self {
            Listening::Shared(listener) => listener.local_addr(),
            Listening::Own(listeners) => Ok(listeners.local_addr()),
        }
    }
}

/// Logs to stderr through a writer thread (tracing-appender): a request formats its access-log
/// line and queues it instead of writing to stderr itself (the synchronous write cost ~30 % of
/// the cached-page req/s). Nothing is dropped: a full queue makes the logger wait. The returned
/// guard flushes the queue when dropped, at the end of `run`.
pub(super) fn init_tracing() -> Option<tracing_appender::non_blocking::WorkerGuard> {
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
