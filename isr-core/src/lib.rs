//! # isr-core — the engine of isr, without HTTP
//!
//! The page model ([`page`], [`route`], [`context`]), the engine ([`engine`]: freshness,
//! single-flight generation, background regeneration, scheduling, backoff, timeouts, on-demand
//! revalidation), the hot cache, and the [`store::PageStore`] trait with an in-memory store.
//! Nothing here knows about HTTP, leptos, Redis or SQLite: the `isr` crate adds rendering, the
//! server, the file store and the command line, and reaches the shared tier through
//! [`engine::SharedTier`]. Apps depend on `isr`, which re-exports everything here.
//!
//! Modules, data flowing one way: [`route`] → [`engine`] → ([`store`], page loaders).
//!
//! The two values an app writes most, in this crate's terms: a route's freshness policy
//! ([`CacheProfile`], checked when compiled) and what a loader returns ([`Load`]):
//!
//! ```
//! use isr_core::{CacheProfile, Load, Revalidate};
//! use std::time::{Duration, SystemTime};
//!
//! // Fresh for 5 minutes; never served older than an hour; while regenerations fail, the old
//! // page may be served for a day past that.
//! const PRODUCT_PAGES: CacheProfile =
//!     CacheProfile::revalidate(300).expire(3600).stale_if_error(86_400);
//! assert_eq!(PRODUCT_PAGES.window(), Revalidate::After(300));
//! assert_eq!(PRODUCT_PAGES.expire_secs(), Some(3600));
//!
//! // A loader's answer: the props, tagged so that revalidating `product:7` reaches this page,
//! // valid until a sale ends; or a 404 until an embargo lifts.
//! let sale_ends = SystemTime::now() + Duration::from_secs(3600);
//! let page: Load<&str> = Load::props("Teapot").tag("product:7").valid_until(sale_ends);
//! let Load::Props { tags, valid_until, .. } = page else { unreachable!() };
//! assert_eq!((tags, valid_until), (vec!["product:7".to_string()], Some(sale_ends)));
//! assert_eq!(Load::<&str>::not_yet(sale_ends), Load::NotYet { until: sale_ends });
//! ```
//!
//! The engine itself ([`Engine`]) is driven by the `isr` crate's server and build; its own
//! examples open one over an in-memory store.

#![warn(missing_docs, unreachable_pub)]
#![warn(clippy::missing_errors_doc, clippy::missing_panics_doc)]

pub mod backoff;
pub mod cache_profile;
pub mod clock;
pub mod context;
pub mod engine;
pub mod error;
pub mod hot_cache;
pub mod log_limit;
pub mod metrics;
pub mod model;
pub mod page;
pub mod route;
pub mod store;
#[cfg(any(test, feature = "test-util"))]
#[doc(hidden)]
pub mod testing;

/// On-demand revalidation (part of the [`engine`]).
pub use engine::revalidate;
/// A page's bytes in every encoding (in the [`model`]).
pub use model::encoding;

pub use {
    context::{AppState, FromContext, LoadContext, Path, Preview, Query, Rejection, State},
    engine::{
        CacheStatus, CachedPage, Engine, EngineBuilder, EngineOptions, FailureKind, Outcome,
        Served, Trigger,
    },
    model::{Generated, Hydration, RenderedBody},
    page::{
        pages, CacheProfile, Fallback, Load, PageDef, Params, QuerySpec, Revalidate,
        DEFAULT_MAX_VARIANTS, DEFAULT_TIMEOUT_SECS, HTML_CONTENT_TYPE,
    },
    revalidate::{
        revalidate_path, revalidate_tag, NotRunning, RevalidateRequest, RevalidationOutcome,
        RevalidationResult, Revalidator,
    },
    route::{PageKey, Resolved, RouteError, Routes},
};

/// How many CPUs this process may use (at least 1): what the defaults of serving threads,
/// build jobs, regenerations and hot-cache shards derive from.
///
/// ```
/// assert!(isr_core::cpus() >= 1);
/// ```
pub fn cpus() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

pub use error::{Context, Error};

/// `Result` with [`Error`].
///
/// ```
/// fn f() -> isr_core::Result<u8> { Ok(1) }
/// assert_eq!(f().unwrap(), 1);
/// ```
pub type Result<T, E = Error> = std::result::Result<T, E>;
