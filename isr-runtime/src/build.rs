//! The build: enumerate every page, generate them with bounded concurrency, write the site root,
//! and summarise.

use crate::engine::{Engine, Outcome};
use crate::page::{PageDef, Params, Revalidate};
use crate::route::PageKey;
use crate::store::PageKind;
use futures::{FutureExt, StreamExt};
use std::collections::HashSet;
use std::fmt;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// How the build runs.
///
/// ```
/// let options = isr::BuildOptions { jobs: 8, keep_going: false, progress: false, tag_budget: None };
/// assert_eq!(options.jobs, 8);
/// ```
#[derive(Clone, Copy, Debug)]
pub struct BuildOptions {
    /// Pages generated at the same time.
    pub jobs: usize,
    /// Report loader errors and go on instead of failing the build.
    pub keep_going: bool,
    /// Show a progress bar (it hides itself when stderr is not a terminal).
    pub progress: bool,
    /// The tag budget of the CDNs in front, if any: the build warns once per route whose
    /// pages' tags overflow it ([`crate::cdn::warn_tag_overflow`]).
    pub tag_budget: Option<crate::cdn::TagBudget>,
}

impl Default for BuildOptions {
    fn default() -> Self {
        BuildOptions {
            jobs: default_jobs(),
            keep_going: false,
            progress: true,
            tag_budget: None,
        }
    }
}

/// Number of CPUs × 4: loaders mostly wait on I/O.
///
/// ```
/// assert!(isr::build::default_jobs() >= 4);
/// ```
pub fn default_jobs() -> usize {
    crate::cpus() * 4
}

/// A page that could not be built.
///
/// ```
/// let f = isr::build::BuildFailure { path: "/blog/x".into(), message: "boom".into() };
/// assert_eq!(f.to_string(), "/blog/x: boom");
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BuildFailure {
    /// The page path (or route pattern when its `paths` failed).
    pub path: String,
    /// What went wrong.
    pub message: String,
}

impl fmt::Display for BuildFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.path, self.message)
    }
}

/// Per-route figures of a build.
#[derive(Clone, Debug)]
pub struct RouteSummary {
    /// The route pattern.
    pub route: &'static str,
    /// Its revalidate setting.
    pub revalidate: Revalidate,
    /// HTML pages written.
    pub pages: usize,
    /// Pages whose loader said not-found or redirected.
    pub other: usize,
    /// Bytes of HTML written.
    pub bytes: u64,
    /// Time spent generating its pages (summed over concurrent generations).
    pub time: Duration,
}

/// What a build did.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// # let engine = isr::__private::example_engine(isr::__private::example_routes(&["/blog"])).await;
/// let options = isr::BuildOptions { progress: false, ..Default::default() };
/// let report = isr::build::build(&engine, options).await.unwrap();
/// assert_eq!((report.routes[0].route, report.routes[0].pages), ("/blog", 1));
/// assert!(report.to_string().contains("/blog"), "{report}");
/// # }
/// ```
#[derive(Clone, Debug)]
pub struct BuildReport {
    /// Figures per route, in registration order.
    pub routes: Vec<RouteSummary>,
    /// Pages that failed (only with `keep_going`).
    pub failures: Vec<BuildFailure>,
    /// Stored pages from earlier builds that no longer exist, removed.
    pub pruned: usize,
    /// Wall time of the build.
    pub elapsed: Duration,
}

impl BuildReport {
    /// Total HTML pages written.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// let engine = isr::__private::example_engine(isr::__private::example_routes(&["/", "/about"])).await;
    /// let options = isr::BuildOptions { progress: false, ..Default::default() };
    /// let report = isr::build::build(&engine, options).await.unwrap();
    /// assert_eq!(report.pages(), 2);
    /// # }
    /// ```
    pub fn pages(&self) -> usize {
        self.routes.iter().map(|r| r.pages).sum()
    }
}

impl fmt::Display for BuildReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let width = self
            .routes
            .iter()
            .map(|r| r.route.len())
            .max()
            .unwrap_or(5)
            .max(5);
        writeln!(
            f,
            "{:<width$}  {:>7}  {:>10}  {:>10}  {:>9}",
            "Route", "Pages", "Revalidate", "Size", "Time"
        )?;
        for r in &self.routes {
            let revalidate = match r.revalidate {
                Revalidate::After(s) => format!("{s} s"),
                Revalidate::Never => "on demand".into(),
            };
            writeln!(
                f,
                "{:<width$}  {:>7}  {:>10}  {:>10}  {:>9}",
                r.route,
                r.pages,
                revalidate,
                human_bytes(r.bytes),
                format!("{} ms", r.time.as_millis())
            )?;
        }
        let secs = self.elapsed.as_secs_f64();
        write!(
            f,
            "Built {} pages in {:.2} s ({:.0} pages/s)",
            self.pages(),
            secs,
            self.pages() as f64 / secs.max(1e-9)
        )?;
        if self.pruned > 0 {
            write!(f, "; removed {} pages that no longer exist", self.pruned)?;
        }
        if !self.failures.is_empty() {
            write!(f, "; {} failed (--keep-going):", self.failures.len())?;
            for failure in &self.failures {
                write!(f, "\n  {failure}")?;
            }
        }
        Ok(())
    }
}

/// The build failed; nothing was pruned.
///
/// ```
/// let e = isr::BuildError { failures: vec![isr::build::BuildFailure { path: "/a".into(), message: "x".into() }] };
/// assert!(e.to_string().contains("/a: x"));
/// ```
#[derive(Clone, Debug)]
pub struct BuildError {
    /// The failures that stopped it.
    pub failures: Vec<BuildFailure>,
}

impl fmt::Display for BuildError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "build failed")?;
        for failure in &self.failures {
            write!(f, "\n  {failure}")?;
        }
        write!(f, "\n(use --keep-going to build the other pages anyway)")
    }
}

impl std::error::Error for BuildError {}

struct Target {
    def: &'static PageDef,
    key: PageKey,
    params: Params,
}

/// Pre-renders every page: static routes, and each page `paths` lists for dynamic routes.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), isr::BuildError> {
/// # let engine = isr::__private::example_engine(isr::__private::example_routes(&["/", "/about"])).await;
/// let report = isr::build::build(&engine, isr::BuildOptions { progress: false, ..Default::default() }).await?;
/// assert_eq!(engine.page_count(), 2);
/// assert!(report.failures.is_empty() && report.pruned == 0);
/// # Ok(()) }
/// ```
///
/// # Errors
/// A [`BuildError`] listing the failures when, without `keep_going`, a `paths` function fails
/// (error, panic, timeout, params that make no valid path) or a page's generation fails: the
/// build stops at the first failed page and nothing is pruned. Also, with or without
/// `keep_going`, when the pages that no longer exist cannot be removed from the store.
pub async fn build(engine: &Arc<Engine>, options: BuildOptions) -> Result<BuildReport, BuildError> {
    let started = Instant::now();
    let (targets, mut failures) = enumerate(engine).await;
    if !failures.is_empty() && !options.keep_going {
        return Err(BuildError { failures });
    }
    let mut routes: Vec<RouteSummary> = engine
        .routes()
        .defs()
        .iter()
        .map(|def| RouteSummary {
            route: def.path,
            revalidate: def.window(),
            pages: 0,
            other: 0,
            bytes: 0,
            time: Duration::ZERO,
        })
        .collect();
    let progress = Progress::new(options.progress, targets.len());
    let mut built: HashSet<PageKey> = HashSet::with_capacity(targets.len());
    // One file-system sync at the end (in `retain`) instead of an fsync per page.
    let deferred = DeferredDurability::begin(engine);
    let mut generations = futures::stream::iter(targets)
        .map(|target| async move {
            let started = Instant::now();
            let outcome = engine
                .generate(target.def, target.key.clone(), target.params)
                .await;
            (target.def, target.key, outcome, started.elapsed())
        })
        .buffer_unordered(options.jobs.max(1));
    while let Some((def, key, outcome, time)) = generations.next().await {
        progress.inc();
        let summary = routes.iter_mut().find(|r| r.route == def.path);
        match outcome {
            Outcome::Generated(page) => {
                if let Some(summary) = summary {
                    summary.time += time;
                    match page.meta.kind {
                        PageKind::Page { bytes, .. } => {
                            summary.pages += 1;
                            summary.bytes += bytes;
                        }
                        _ => summary.other += 1,
                    }
                }
                built.insert(key);
            }
            Outcome::Failed { kind, message } => {
                failures.push(BuildFailure {
                    path: key.to_string(),
                    message: format!("{}: {message}", kind.as_str()),
                });
                // keep whatever an earlier build stored for it
                built.insert(key);
                if !options.keep_going {
                    break;
                }
            }
        }
    }
    drop(generations);
    progress.finish();
    deferred.end();
    if !failures.is_empty() && !options.keep_going {
        let _ = engine.store().sync().await;
        return Err(BuildError { failures });
    }
    let pruned = engine.retain(&built).await.map_err(|e| BuildError {
        failures: vec![BuildFailure {
            path: "(site root)".into(),
            message: format!("could not remove old pages: {e}"),
        }],
    })?;
    if let Some(budget) = options.tag_budget {
        crate::cdn::warn_tag_overflow(engine, budget);
    }
    Ok(BuildReport {
        routes,
        failures,
        pruned,
        elapsed: started.elapsed(),
    })
}

/// The build's writes defer their durability to one sync at its end. Dropped before
/// [`DeferredDurability::end`] (a background rebuild aborted at shutdown), it still ends the
/// deferral and runs the sync, as tracked background work that the engine's shutdown waits
/// for: nothing the build wrote is left buffered or unsynced.
struct DeferredDurability<'a> {
    engine: &'a Arc<Engine>,
    ended: bool,
}

impl<'a> DeferredDurability<'a> {
    fn begin(engine: &'a Arc<Engine>) -> Self {
        engine.store().defer_sync(true);
        DeferredDurability {
            engine,
            ended: false,
        }
    }

    /// Ends the deferral (buffered rows are written); the caller syncs.
    fn end(mut self) {
        self.engine.store().defer_sync(false);
        self.ended = true;
    }
}

impl Drop for DeferredDurability<'_> {
    fn drop(&mut self) {
        if self.ended {
            return;
        }
        let store = self.engine.store().clone();
        store.defer_sync(false);
        self.engine.spawn_tracked(async move {
            if let Err(error) = store.sync().await {
                tracing::warn!(%error, "could not sync what the interrupted build wrote");
            }
        });
    }
}

/// Lists the pages to build; failures of `paths` functions are reported per route.
async fn enumerate(engine: &Engine) -> (Vec<Target>, Vec<BuildFailure>) {
    let routes = engine.routes();
    let mut targets = Vec::new();
    let mut failures = Vec::new();
    let mut seen = HashSet::new();
    for &def in routes.defs() {
        let params_list = if !def.is_dynamic() {
            vec![Params::new()]
        } else if let Some(paths) = def.paths {
            let listed = paths(engine.load_context(Params::new()));
            let listed =
                tokio::time::timeout(def.timeout(), AssertUnwindSafe(listed).catch_unwind()).await;
            match listed {
                Ok(Ok(Ok(list))) => list,
                Ok(Ok(Err(error))) => {
                    failures.push(BuildFailure {
                        path: def.path.into(),
                        message: format!("paths failed: {error:#}"),
                    });
                    continue;
                }
                Ok(Err(_)) => {
                    failures.push(BuildFailure {
                        path: def.path.into(),
                        message: "paths panicked".into(),
                    });
                    continue;
                }
                Err(_) => {
                    failures.push(BuildFailure {
                        path: def.path.into(),
                        message: format!("paths timed out after {} s", def.timeout().as_secs()),
                    });
                    continue;
                }
            }
        } else {
            Vec::new() // fallback-only route: pages appear on first request
        };
        for params in params_list {
            match routes.key_for(def, &params) {
                Ok(key) if seen.insert(key.clone()) => targets.push(Target { def, key, params }),
                Ok(_) => {}
                Err(error) => failures.push(BuildFailure {
                    path: def.path.into(),
                    message: error.to_string(),
                }),
            }
        }
    }
    (targets, failures)
}

fn human_bytes(bytes: u64) -> String {
    match bytes {
        b if b >= 1 << 30 => format!("{:.1} GiB", b as f64 / (1u64 << 30) as f64),
        b if b >= 1 << 20 => format!("{:.1} MiB", b as f64 / (1u64 << 20) as f64),
        b if b >= 1 << 10 => format!("{:.1} KiB", b as f64 / 1024.0),
        b => format!("{b} B"),
    }
}

/// The build's progress bar on stderr (feature `cli`; it hides itself when stderr is not a
/// terminal). Without the feature, builds report only their summary.
struct Progress {
    #[cfg(feature = "cli")]
    bar: indicatif::ProgressBar,
}

impl Progress {
    fn new(show: bool, pages: usize) -> Self {
        #[cfg(feature = "cli")]
        {
            use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
            let bar = if show {
                ProgressBar::with_draw_target(Some(pages as u64), ProgressDrawTarget::stderr())
            } else {
                ProgressBar::hidden()
            };
            bar.set_style(
                ProgressStyle::with_template(
                    "{spinner} building {bar:30} {pos}/{len} pages {per_sec} eta {eta} {msg}",
                )
                .unwrap_or_else(|_| ProgressStyle::default_bar()),
            );
            Progress { bar }
        }
        #[cfg(not(feature = "cli"))]
        {
            let _ = (show, pages);
            Progress {}
        }
    }

    fn inc(&self) {
        #[cfg(feature = "cli")]
        self.bar.inc(1);
    }

    fn finish(&self) {
        #[cfg(feature = "cli")]
        self.bar.finish_and_clear();
    }
}
