//! The command line's shape: the flags (with their environment variables), the subcommands,
//! and where the operator subcommands go.

use super::*;
use clap::{Parser, Subcommand};

#[derive(Parser, Debug)]
#[command(
    about = "Build and serve this app's pages with Incremental Static Regeneration",
    after_help = "Environment: RUST_LOG (log filter, default info), ISR_REVALIDATE_SECRET \
                  (enables POST /_isr/revalidate with `Authorization: Bearer <secret>`), \
                  ISR_ADMIN_TOKEN (enables the operator API /_isr/api and the status, pages and \
                  revalidate subcommands), ISR_METRICS_TOKEN (GET /_isr/metrics then needs `Authorization: Bearer <token>`), \
                  ISR_PREVIEW_SECRET (signs editors' preview links: /_isr/preview, preview-link)."
)]
pub(super) struct Cli {
    #[command(subcommand)]
    pub(super) command: Option<Invocation>,

    /// Address to listen on
    #[arg(long, env = "LEPTOS_SITE_ADDR", global = true, value_name = "ADDR")]
    pub(super) addr: Option<String>,

    /// Folder of the static export and its metadata
    #[arg(long, env = "LEPTOS_SITE_ROOT", global = true, value_name = "DIR")]
    pub(super) site_root: Option<PathBuf>,

    /// Folder of files served under their own names (favicon.ico, .well-known/…) [default: the
    /// app crate's public/ folder, when it has one]
    #[arg(long, env = "ISR_PUBLIC_DIR", global = true, value_name = "DIR")]
    pub(super) public_dir: Option<PathBuf>,

    /// Pages generated at the same time during the build [default: CPUs × 4]
    #[arg(long, env = "ISR_JOBS", global = true, value_name = "N")]
    pub(super) jobs: Option<String>,

    /// Build the pages that work even when some loaders fail
    #[arg(long, global = true)]
    pub(super) keep_going: bool,

    /// Varnish servers (with xkey) to purge changed pages at, by surrogate key (comma-separated http://host[:port])
    #[arg(long, env = "ISR_CDN_PURGE", global = true, value_name = "URLS")]
    pub(super) cdn_purge: Option<String>,

    /// Host header of CDN purges (the site's public host, e.g. www.example.com) [default: the endpoint's]
    #[arg(long, env = "ISR_PUBLIC_HOST", global = true, value_name = "HOST")]
    pub(super) public_host: Option<String>,

    /// The site's public origin, for absolute links in the sitemap and feeds (e.g. https://blog.example.com) [default: http://<addr>]
    #[arg(long, env = "ISR_PUBLIC_URL", global = true, value_name = "URL")]
    pub(super) public_url: Option<String>,

    /// Do not build the browser bundle: pages are built and served without one (no hydration),
    /// unless the site root already holds one, which is still served; without it a client
    /// bundle that fails to build fails `build` (exit status 1, with the cause)
    #[arg(long, env = "ISR_NO_CLIENT", global = true, value_parser = clap::builder::FalseyValueParser::new())]
    pub(super) no_client: bool,

    /// Fastly service to purge by surrogate key (its API token in ISR_FASTLY_TOKEN)
    #[arg(long, env = "ISR_FASTLY_SERVICE", global = true, value_name = "ID")]
    pub(super) fastly_service: Option<String>,

    /// Fastly API address [default: https://api.fastly.com]
    #[arg(long, env = "ISR_FASTLY_API", global = true, value_name = "URL")]
    pub(super) fastly_api: Option<String>,

    /// Cloudflare zone to purge by cache tag (its API token in ISR_CLOUDFLARE_TOKEN)
    #[arg(long, env = "ISR_CLOUDFLARE_ZONE", global = true, value_name = "ID")]
    pub(super) cloudflare_zone: Option<String>,

    /// Cloudflare API address [default: https://api.cloudflare.com/client/v4]
    #[arg(long, env = "ISR_CLOUDFLARE_API", global = true, value_name = "URL")]
    pub(super) cloudflare_api: Option<String>,

    /// Akamai Fast Purge API host, akab-….purge.akamaiapis.net (EdgeGrid credentials in ISR_AKAMAI_CLIENT_TOKEN, ISR_AKAMAI_CLIENT_SECRET, ISR_AKAMAI_ACCESS_TOKEN)
    #[arg(long, env = "ISR_AKAMAI_HOST", global = true, value_name = "HOST")]
    pub(super) akamai_host: Option<String>,

    /// Akamai network to purge: production or staging [default: production]
    #[arg(
        long,
        env = "ISR_AKAMAI_NETWORK",
        global = true,
        value_name = "NETWORK"
    )]
    pub(super) akamai_network: Option<String>,

    /// Akamai API address [default: https://<--akamai-host>]
    #[arg(long, env = "ISR_AKAMAI_API", global = true, value_name = "URL")]
    pub(super) akamai_api: Option<String>,

    /// CloudFront distribution to invalidate (credentials in AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_SESSION_TOKEN)
    #[arg(
        long,
        env = "ISR_CLOUDFRONT_DISTRIBUTION",
        global = true,
        value_name = "ID"
    )]
    pub(super) cloudfront_distribution: Option<String>,

    /// The CloudFront distribution invalidates by tag (its CacheTagConfig reads `cache-tag`): purge tags as `#tag` instead of every page's path
    #[arg(long, env = "ISR_CLOUDFRONT_TAGS", global = true, value_parser = clap::builder::FalseyValueParser::new())]
    pub(super) cloudfront_tags: bool,

    /// CloudFront API address [default: https://cloudfront.amazonaws.com]
    #[arg(long, env = "ISR_CLOUDFRONT_API", global = true, value_name = "URL")]
    pub(super) cloudfront_api: Option<String>,

    /// Where the CDN serves the site (e.g. https://www.example.com): on-demand revalidations with `"wait": "edge"` answer once GETs there serve the new pages
    #[arg(long, env = "ISR_CDN_URL", global = true, value_name = "URL")]
    pub(super) cdn_url: Option<String>,

    /// Also send `cache-tag` (tags and path, comma-separated) for CDNs that purge by it
    #[arg(long, env = "ISR_CACHE_TAG", global = true, value_parser = clap::builder::FalseyValueParser::new())]
    pub(super) cache_tag: bool,

    /// Redis to share pages, leases and invalidations with other instances (redis://[user:pass@]host:port[/db])
    #[arg(
        long = "redis",
        env = "ISR_REDIS_URL",
        global = true,
        value_name = "URL"
    )]
    pub(super) redis_url: Option<String>,

    /// Prefix of every Redis key, so several sites can share one Redis [default: the app's name]
    #[arg(long, env = "ISR_REDIS_PREFIX", global = true, value_name = "PREFIX")]
    pub(super) redis_prefix: Option<String>,

    /// Seconds a page lease lives unless its holder renews it (a dead holder is replaced after it) [default: 8]
    #[arg(long, env = "ISR_REDIS_LEASE_TTL", global = true, value_name = "SECS")]
    pub(super) redis_lease_ttl: Option<String>,

    /// Memory for page HTML, in MiB; pages evicted from it are re-read from disk [default: 128]
    #[arg(long, env = "ISR_HOT_CACHE_MB", global = true, value_name = "MIB")]
    pub(super) hot_cache_mb: Option<String>,

    /// Proxies whose X-Forwarded-For / X-Forwarded-Proto are believed (comma-separated CIDR blocks or addresses, e.g. 10.0.0.0/8,127.0.0.1) [default: none]
    #[arg(
        long = "trusted-proxy",
        env = "ISR_TRUSTED_PROXIES",
        global = true,
        value_name = "CIDRS"
    )]
    pub(super) trusted_proxies: Option<String>,

    /// Failed authentications one client address may make per minute on the protected routes; past it, 429 until the minute ends [default: 10]
    #[arg(long, env = "ISR_MAX_AUTH_FAILURES", global = true, value_name = "N")]
    pub(super) max_auth_failures: Option<String>,

    /// Largest request head (request line and headers) in bytes; a larger one gets 431 [default: 65536]
    #[arg(
        long,
        env = "ISR_MAX_HEADER_BYTES",
        global = true,
        value_name = "BYTES"
    )]
    pub(super) max_header_bytes: Option<String>,

    /// Seconds a client may take to send a request's headers; then its connection is closed [default: 10]
    #[arg(long, env = "ISR_HEADER_TIMEOUT", global = true, value_name = "SECS")]
    pub(super) header_timeout: Option<String>,

    /// Seconds a keep-alive connection may wait for its next request; then it is closed [default: 60]
    #[arg(long, env = "ISR_IDLE_TIMEOUT", global = true, value_name = "SECS")]
    pub(super) idle_timeout: Option<String>,

    /// Seconds a request body may pause before the request fails with 408 [default: 10]
    #[arg(long, env = "ISR_BODY_TIMEOUT", global = true, value_name = "SECS")]
    pub(super) body_timeout: Option<String>,

    /// Seconds a response may wait for a client that reads nothing; then the connection is closed [default: 30]
    #[arg(long, env = "ISR_SEND_TIMEOUT", global = true, value_name = "SECS")]
    pub(super) send_timeout: Option<String>,

    /// Open connections at most; more get 503 and are closed [default: 10000, fewer under a low open-file limit]
    #[arg(long, env = "ISR_MAX_CONNECTIONS", global = true, value_name = "N")]
    pub(super) max_connections: Option<String>,

    /// Threads that answer requests, each with its own runtime and listening socket (SO_REUSEPORT); 0 serves on the shared multi-thread runtime [default: CPUs on Linux, 0 elsewhere]
    #[arg(long, env = "ISR_SERVE_THREADS", global = true, value_name = "N")]
    pub(super) serve_threads: Option<String>,

    /// Page generations running at once while serving [default: CPUs × 4]
    #[arg(long, env = "ISR_MAX_REGENERATIONS", global = true, value_name = "N")]
    pub(super) max_regenerations: Option<String>,

    /// Secret that signs editors' preview links (HMAC-SHA256; at least 16 characters); without it previews are off [prefer the environment variable: a flag shows in the process list]
    #[arg(
        long,
        env = "ISR_PREVIEW_SECRET",
        global = true,
        hide_env_values = true,
        value_name = "SECRET",
        value_parser = |text: &str| Ok::<_, String>(Redacted(text.to_owned()))
    )]
    pub(super) preview_secret: Option<Redacted>,

    /// Seconds to let running generations finish after SIGINT/SIGTERM [default: 10]
    #[arg(
        long,
        env = "ISR_SHUTDOWN_TIMEOUT",
        global = true,
        value_name = "SECONDS"
    )]
    pub(super) shutdown_timeout: Option<String>,
}

/// A secret given on the command line: its `Debug` never shows it.
#[derive(Clone, PartialEq, Eq)]
pub(super) struct Redacted(pub(super) String);

impl std::fmt::Debug for Redacted {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Redacted(..)")
    }
}

#[derive(Subcommand, Debug, Clone, PartialEq, Eq)]
pub(super) enum Invocation {
    /// Pre-render every page into the site root, then exit
    Build,
    /// Serve an existing site root (no rebuild)
    Serve,
    /// Build, then serve (the default of a release build)
    Start,
    /// Serve while developing: every request runs its loader and renders, nothing is cached or
    /// built ahead (the default of a debug build)
    Dev,
    /// A running site at a glance: pages per route and state, failing pages (needs ISR_ADMIN_TOKEN)
    Status {
        #[command(flatten)]
        remote: RemoteArgs,
    },
    /// List a running site's pages with their state, age and last run (needs ISR_ADMIN_TOKEN)
    Pages {
        #[command(flatten)]
        remote: RemoteArgs,
        /// Only pages in this state: fresh, stale, expired, regenerating, backing_off, not_found, missing
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
    /// Revalidate pages of a running site, by path and by tag (needs ISR_ADMIN_TOKEN)
    Revalidate {
        #[command(flatten)]
        remote: RemoteArgs,
        /// Page paths, e.g. /blog/hello
        paths: Vec<String>,
        /// Also every page carrying this tag (repeatable)
        #[arg(long = "tag", value_name = "TAG")]
        tags: Vec<String>,
        /// auto: regenerate the pages requested lately, mark the others stale; regenerate:
        /// all of them now; stale: mark them (the next request regenerates); expire: the next
        /// request waits for the new version [default: auto]
        #[arg(long, value_parser = ["auto", "regenerate", "stale", "expire"])]
        mode: Option<String>,
        /// How the CDNs drop their copies: soft (marked stale, served while they refetch) or
        /// hard [default: soft]
        #[arg(long, value_parser = ["soft", "hard"])]
        purge: Option<String>,
        /// Answer once isr has the new pages (origin), or once the CDN serves them too (edge:
        /// needs the site's --cdn-url) [default: origin]
        #[arg(long, value_parser = ["origin", "edge"])]
        wait: Option<String>,
    },
    /// Print a signed preview link for a page: it opens the page with drafts shown, until it
    /// expires (needs ISR_PREVIEW_SECRET)
    PreviewLink {
        /// The page's path, e.g. /blog/draft
        path: String,
        /// How long the link (and the preview it opens) lasts: seconds (90) or with a unit
        /// (10m, 1h, 2d) [default: 1h]
        #[arg(long, value_name = "DURATION")]
        ttl: Option<String>,
        /// The site's origin as editors reach it [default: --public-url, else ISR_URL, else
        /// http://<--addr>]
        #[arg(long, value_name = "URL")]
        url: Option<String>,
    },
}

/// Where the running site is, for the operator subcommands.
#[derive(clap::Args, Debug, Clone, PartialEq, Eq)]
pub(super) struct RemoteArgs {
    /// URL of the running site [default: http://<--addr>]
    #[arg(long, env = "ISR_URL", value_name = "URL")]
    pub(super) url: Option<String>,
    /// Print the API's JSON instead of tables
    #[arg(long)]
    pub(super) json: bool,
}

impl App {
    /// Where an operator subcommand goes: `--url`, else this app's `--addr`; the token from
    /// `ISR_ADMIN_TOKEN`.
    pub(super) fn remote(
        &self,
        cli: &Cli,
        args: &RemoteArgs,
    ) -> Result<crate::remote::Remote, String> {
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
}

/// The operator subcommand `cli` names, if any.
pub(super) fn remote_command(cli: &Cli) -> Option<(&RemoteArgs, crate::remote::RemoteCommand)> {
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
            mode,
            purge,
            wait,
        } => Some((
            remote,
            RemoteCommand::Revalidate {
                paths: paths.clone(),
                tags: tags.clone(),
                mode: mode.clone(),
                purge: purge.clone(),
                wait: wait.clone(),
            },
        )),
        Invocation::Build
        | Invocation::Serve
        | Invocation::Start
        | Invocation::Dev
        | Invocation::PreviewLink { .. } => None,
    }
}
