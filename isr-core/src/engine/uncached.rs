//! A page rendered for one request and kept nowhere: dev mode renders every request this way,
//! and so does an editor's preview. Nothing here touches the page table, the hot cache, the
//! store, the shared tier, the negative memory or the scheduler: such a render is not a
//! generation (no freshness, backoff or traffic of the public page changes) and its output
//! reaches only the request that asked for it.

use super::generation::panic_message;
use super::{DocumentWriter, Engine};
use crate::model::Generated;
use crate::page::{PageDef, Params};
use crate::route::PageKey;
use bytes::Bytes;
use futures::FutureExt;
use std::panic::AssertUnwindSafe;

/// What a page's loader and view gave for one request.
///
/// ```
/// let failed = isr::engine::Uncached::Failed("timed out after 30 s".into());
/// assert!(matches!(failed, isr::engine::Uncached::Failed(ref m) if m.contains("30 s")));
/// ```
#[derive(Clone, Debug, PartialEq)]
pub enum Uncached {
    /// The page's HTML document.
    Document(String),
    /// A file route's body, as the loader returned it (the route's content type).
    Body(Bytes),
    /// No such page (`Load::NotFound`, `Load::NotYet`, or params that name no page).
    NotFound,
    /// `Load::Redirect`.
    Redirect {
        /// The target, as the loader gave it.
        location: String,
        /// `true`: 308, `false`: 307.
        permanent: bool,
    },
    /// The loader failed (error, panic or timeout): the message, for the log and the page.
    Failed(String),
}

/// Whom an uncached render is for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Audience {
    /// The developer (dev mode): the loader sees `Preview(false)`, as in production.
    Developer,
    /// An editor with a valid preview cookie: the loader sees `Preview(true)`.
    Editor,
}

impl Engine {
    /// Runs the loader of `def` for the page `key` (with its `params`, as the router resolved
    /// them) and writes its document with `documents` (the engine's own writer when `None`),
    /// under the page's time limit and with its panics caught. Nothing is stored, cached,
    /// counted as traffic or scheduled: the result is for this request only.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// # let engine = isr::__private::example_engine(isr::__private::example_routes(&["/blog/:slug"])).await;
    /// use isr::engine::{Audience, Uncached};
    /// let (pages, non_pages) = (engine.page_count(), engine.remembered_non_pages());
    /// let isr::Resolved::Page { def, key, params } = engine.routes().resolve("/blog/hello") else { panic!() };
    /// let rendered = engine.render_uncached(def, &key, params, Audience::Editor, None).await;
    /// assert!(matches!(rendered, Uncached::Document(ref html) if html.contains("<p>page</p>")), "{rendered:?}");
    /// assert_eq!((engine.page_count(), engine.remembered_non_pages()), (pages, non_pages), "kept nowhere");
    /// # }
    /// ```
    pub async fn render_uncached(
        &self,
        def: &'static PageDef,
        key: &PageKey,
        params: Params,
        audience: Audience,
        documents: Option<&dyn DocumentWriter>,
    ) -> Uncached {
        let url_path = crate::model::key::url_path(key.path());
        let mut context = self
            .load_context(params)
            .with_query(key.query_params())
            .at(url_path.clone());
        if audience == Audience::Editor {
            context = context.for_preview();
        }
        let run = AssertUnwindSafe((def.load)(context)).catch_unwind();
        match tokio::time::timeout(def.timeout(), run).await {
            Ok(Ok(Ok(generated))) => match generated {
                Generated::Page(body) => {
                    let documents = documents.unwrap_or(&*self.documents);
                    Uncached::Document(documents.write(&body, &url_path, def.hydration))
                }
                Generated::Body { bytes, .. } => Uncached::Body(bytes),
                Generated::NotFound | Generated::NotYet { .. } => Uncached::NotFound,
                Generated::Redirect {
                    location,
                    permanent,
                } => Uncached::Redirect {
                    location,
                    permanent,
                },
            },
            Ok(Ok(Err(error))) => Uncached::Failed(format!("{error:#}")),
            Ok(Err(panic)) => Uncached::Failed(format!("panicked: {}", panic_message(&*panic))),
            Err(_) => Uncached::Failed(format!("timed out after {} s", def.timeout().as_secs())),
        }
    }
}
