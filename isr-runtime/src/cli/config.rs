//! Settings resolved from the flags, their environment variables and the app's defaults: one
//! line naming the flag and the variable for every bad value (exit code 2).

use super::*;

/// Settings resolved from flags, env and the app's defaults.
#[derive(Debug, Clone)]
pub(super) struct Config {
    pub(super) command: Command,
    /// `--no-client`: no client bundle is built, and none failing stops a build.
    pub(super) no_client: bool,
    pub(super) addr: SocketAddr,
    /// What loaders get as `State<SiteUrl>`: `--public-url`, else `http://<addr>`.
    pub(super) site_url: crate::site::SiteUrl,
    /// `--public-url` as given.
    pub(super) public_url: Option<crate::site::SiteUrl>,
    /// `--cdn-url`: where `"wait": "edge"` asks the CDN.
    pub(super) cdn_url: Option<crate::site::SiteUrl>,
    pub(super) site_root: PathBuf,
    /// The `public/` folder to serve, if any ([`crate::public`]).
    pub(super) public_dir: Option<PathBuf>,
    pub(super) build: BuildOptions,
    pub(super) revalidate_secret: Option<String>,
    pub(super) admin_token: Option<String>,
    pub(super) metrics_token: Option<String>,
    /// `--preview-secret` / `ISR_PREVIEW_SECRET`: editors' previews on.
    pub(super) preview: Option<crate::preview::PreviewKey>,
    pub(super) trusted_proxies: crate::server::origin::TrustedProxies,
    pub(super) max_auth_failures: u32,
    /// The CDNs to purge (`--cdn-purge`, `--fastly-service`, …).
    pub(super) cdns: Vec<std::sync::Arc<dyn crate::cdn::Adapter>>,
    /// The purge-key headers pages carry for the CDNs configured (and `--cache-tag`).
    pub(super) tag_headers: crate::cdn::TagHeaders,
    pub(super) connection_limits: ConnectionLimits,
    /// Serving threads with a runtime each (`server::threads`); 0: the main runtime serves.
    pub(super) serve_threads: usize,
    pub(super) engine: EngineOptions,
    pub(super) shutdown_timeout: Duration,
    pub(super) shared: Option<SharedConfig>,
}

impl App {
    pub(super) fn config(&self, cli: Cli) -> Result<Config, String> {
        let cdns = super::cdn::adapters(&cli)?;
        let tag_headers = crate::cdn::tag_headers(
            cdns.iter().map(|cdn| (cdn.name(), cdn.limits())),
            cli.cache_tag,
        );
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
            .or_else(|| self.default_site_root.clone())
            .unwrap_or_else(|| {
                let exe = std::env::current_exe().unwrap_or_else(|_| PathBuf::from(&self.name));
                super::site_root::default_site_root(&self.name, &exe)
            });
        if site_root.as_os_str().is_empty() {
            return Err("--site-root / LEPTOS_SITE_ROOT is empty".into());
        }
        let public_dir = match cli.public_dir {
            Some(dir) if !dir.is_dir() => {
                return Err(format!(
                    "--public-dir / ISR_PUBLIC_DIR: no folder at {}",
                    dir.display()
                ))
            }
            Some(dir) => Some(dir),
            None => self.default_public_dir(),
        };
        let revalidate_secret = secret_from_env("ISR_REVALIDATE_SECRET")?;
        let admin_token = secret_from_env("ISR_ADMIN_TOKEN")?;
        let metrics_token = secret_from_env("ISR_METRICS_TOKEN")?;
        let preview = preview_key(cli.preview_secret.as_ref().map(|s| s.0.as_str()))?;
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
        let cdn_url = cli
            .cdn_url
            .as_deref()
            .map(|url| {
                let parsed = crate::site::SiteUrl::parse(url)
                    .map_err(|e| format!("invalid --cdn-url / ISR_CDN_URL: {e}"))?;
                if cfg!(not(feature = "cdn-apis")) && parsed.as_str().starts_with("https:") {
                    return Err(
                        "--cdn-url / ISR_CDN_URL: an https:// address needs isr's `cdn-apis` feature (its HTTPS client)"
                            .to_string(),
                    );
                }
                Ok(parsed)
            })
            .transpose()?;
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
            Some(Invocation::Dev) => Command::Dev,
            // `cargo run` of a debug build develops; a release build, or a debug binary run
            // from elsewhere (copied into an image), serves the site.
            None if cfg!(debug_assertions) && super::site_root::runs_from_cargo_target() => {
                Command::Dev
            }
            _ => Command::Start,
        };
        Ok(Config {
            command,
            no_client: cli.no_client,
            addr,
            site_url,
            public_url,
            cdn_url,
            site_root,
            public_dir,
            build: BuildOptions {
                jobs,
                keep_going: cli.keep_going,
                progress: true,
                // The CDNs' budget: the build warns about routes whose tags overflow it.
                tag_budget: (!cdns.is_empty()).then_some(tag_headers.budget),
            },
            revalidate_secret,
            admin_token,
            metrics_token,
            preview,
            trusted_proxies,
            max_auth_failures,
            cdns,
            tag_headers,
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
    pub(super) fn shared_options(
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
    pub(super) fn shared_options(
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
}

/// How to reach the shared tier (`--redis`).
#[cfg(feature = "redis")]
pub(super) type SharedConfig = crate::shared::SharedOptions;
/// Never made: a build without the `redis` feature refuses `--redis`.
#[cfg(not(feature = "redis"))]
pub(super) type SharedConfig = std::convert::Infallible;

/// Largest accepted `--max-header-bytes` (16 MiB).
pub(super) const MAX_HEADER_BYTES_LIMIT: usize = 16 << 20;

/// A token or secret from `variable`: `None` when unset or blank, an error when it is shorter
/// than [`crate::server::auth::MIN_SECRET_LEN`].
pub(super) fn secret_from_env(variable: &str) -> Result<Option<String>, String> {
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

/// The preview key of `--preview-secret` / `ISR_PREVIEW_SECRET` (trimmed; empty is unset).
pub(super) fn preview_key(
    secret: Option<&str>,
) -> Result<Option<crate::preview::PreviewKey>, String> {
    match secret.map(str::trim).filter(|s| !s.is_empty()) {
        Some(secret) => crate::preview::PreviewKey::new(secret).map(Some),
        None => Ok(None),
    }
}

/// Largest accepted value of the connection timeout flags, in seconds (a day).
pub(super) const MAX_TIMEOUT_SECS: u64 = 86_400;

/// Largest accepted `--serve-threads`.
pub(super) const MAX_SERVE_THREADS: u64 = 1024;

/// One serving thread per CPU.
pub(super) fn default_serve_threads() -> usize {
    // Only Linux spreads connections over SO_REUSEPORT sockets (see `server::threads`):
    // elsewhere the shared multi-thread runtime serves on every core.
    if cfg!(target_os = "linux") {
        crate::cpus()
    } else {
        0
    }
}

/// Largest accepted `--max-connections`.
pub(super) const MAX_CONNECTIONS_LIMIT: usize = 1_000_000;

/// A connection timeout flag's value: whole seconds from 1 to [`MAX_TIMEOUT_SECS`]; `names` is
/// `--flag / ENV` for the error message.
pub(super) fn seconds(text: Option<String>, names: &str) -> Result<Option<Duration>, String> {
    let expected = format!("a whole number of seconds from 1 to {MAX_TIMEOUT_SECS}");
    Ok(whole_number(text, names, 1..=MAX_TIMEOUT_SECS, &expected)?.map(Duration::from_secs))
}

/// A whole-number flag value in `range` (`None` when the flag and env are unset); the error is
/// one line naming the flag and env (`names`) and saying what was `expected`.
pub(super) fn whole_number(
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

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

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
        // This test is a debug build: without a subcommand, it develops.
        assert_eq!(parse(&[]).unwrap().command, Command::Dev);
        assert_eq!(parse(&["start"]).unwrap().command, Command::Start);
        // Under cargo's target folder, wherever that is.
        assert!(parse(&[]).unwrap().site_root.ends_with("site/demo"));
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
