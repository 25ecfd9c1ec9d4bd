//! [`EngineBuilder`]: everything an engine works with, given before it opens, so that no
//! generation ever runs with a default that was meant to be replaced.

use super::tier::SharedTier;
use super::{BodyOnly, DocumentWriter, Engine, EngineOptions, PageChanges};
use crate::clock::{Clock, SystemClock};
use crate::context::AppState;
use crate::route::Routes;
use crate::store::PageStore;
use std::sync::Arc;

/// How to open an [`Engine`] ([`Engine::builder`]). Defaults: the system clock,
/// [`EngineOptions::default`], documents written by [`BodyOnly`], no state, nobody told of
/// changes, no shared tier.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> std::io::Result<()> {
/// # let routes = isr::__private::example_routes(&["/blog"]);
/// use std::sync::Arc;
/// let mut state = isr::AppState::default();
/// state.insert(String::from("config"));
/// let engine = isr::Engine::builder(routes, Arc::new(isr::store::MemoryStore::default()))
///     .documents(Arc::new(isr::render::DocumentShell::default()))
///     .state(state)
///     .open()
///     .await?;
/// let isr::Served::Stored { page, .. } = engine.request("/blog").await else { panic!() };
/// assert!(String::from_utf8_lossy(page.html().unwrap()).starts_with("<!DOCTYPE html>"));
/// // Every engine hands its loaders a revalidator bound to itself.
/// assert!(engine.load_context(Default::default()).state().get::<isr::Revalidator>().is_some());
/// # Ok(()) }
/// ```
#[must_use = "an engine builder does nothing until `open` is awaited"]
pub struct EngineBuilder {
    pub(super) routes: Routes,
    pub(super) store: Arc<dyn PageStore>,
    pub(super) clock: Arc<dyn Clock>,
    pub(super) options: EngineOptions,
    pub(super) documents: Arc<dyn DocumentWriter>,
    pub(super) state: AppState,
    pub(super) changes: Option<Arc<dyn PageChanges>>,
    pub(super) shared: Option<Arc<dyn SharedTier>>,
}

impl EngineBuilder {
    pub(super) fn new(routes: Routes, store: Arc<dyn PageStore>) -> Self {
        EngineBuilder {
            routes,
            store,
            clock: Arc::new(SystemClock),
            options: EngineOptions::default(),
            documents: Arc::new(BodyOnly),
            state: AppState::default(),
            changes: None,
            shared: None,
        }
    }

    /// The clock freshness is measured by (tests use a manual one).
    pub fn clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }

    /// Limits: regenerations at once, hot-cache bytes, the not-found memory, loading.
    pub fn options(mut self, options: EngineOptions) -> Self {
        self.options = options;
        self
    }

    /// What writes the document around each rendered page
    /// (`isr::render::DocumentShell`: doctype, head, hydration scripts).
    pub fn documents(mut self, documents: Arc<dyn DocumentWriter>) -> Self {
        self.documents = documents;
        self
    }

    /// The values loaders and `paths` functions extract with `State<T>`. The engine adds its
    /// own [`Revalidator`](crate::Revalidator).
    pub fn state(mut self, state: AppState) -> Self {
        self.state = state;
        self
    }

    /// Who is told when a page's content changed (a CDN purger).
    pub fn page_changes(mut self, changes: Arc<dyn PageChanges>) -> Self {
        self.changes = Some(changes);
        self
    }

    /// The shared tier: generations coordinate through it and other instances' commits are
    /// applied from the moment the engine opens.
    pub fn shared(mut self, tier: Arc<dyn SharedTier>) -> Self {
        self.shared = Some(tier);
        self
    }

    /// Opens the engine over what the store holds (nothing is generated). Stored pages whose
    /// route no longer exists are ignored; stray temporary files are swept in the background.
    /// Must run inside a tokio runtime: background work runs on it.
    ///
    /// # Errors
    /// The store's error when it cannot be read.
    pub async fn open(self) -> std::io::Result<Arc<Engine>> {
        Engine::open(self).await
    }
}
