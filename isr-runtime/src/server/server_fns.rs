//! leptos server functions (`#[server]`) on isr's router: each registered function answers at
//! its path (`/api/like_post…`), called by the views once they are hydrated (or by a plain
//! `<form>`).
//!
//! Their answers are never cached (`cache-control: no-store`; they are not pages and never
//! touch the page cache). A call from a page of another site is refused with `403` (the
//! browser's `Sec-Fetch-Site`, or an `Origin` that is not this site's: what Next.js checks for
//! its server actions), and a body over [`MAX_BODY_BYTES`] with `413` (one sent in chunks,
//! without a length, is read up to the limit and then fails as the function's error). Inside a server
//! function, [`server_state`] reads what the app registered with `App::state` (as loaders'
//! `State<T>`), and leptos's `use_context::<http::request::Parts>()` the request.
//!
//! ```text
//! #[server]
//! pub async fn like_post(slug: String) -> Result<u64, ServerFnError> {
//!     let likes: Likes = isr::server_state()?;
//!     likes.add(&slug).await.map_err(ServerFnError::new)
//! }
//! ```

use super::auth::{cross_site, Caller};
use super::AppState;
use axum::extract::{Request, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Router;
use leptos::prelude::{provide_context, use_context, ServerFnError};
use std::sync::Arc;

/// Largest request body a server function accepts.
pub const MAX_BODY_BYTES: usize = 1024 * 1024;

/// The app's state, as server functions see it.
#[derive(Clone)]
struct ServerState(Arc<crate::AppState>);

/// The value of type `T` the app registered (`App::state`), inside a server function.
///
/// ```
/// use leptos::prelude::ServerFnError;
/// // Outside a server function call there is none.
/// let missing: Result<u32, ServerFnError> = isr::server_state();
/// assert!(missing.unwrap_err().to_string().contains("u32"));
/// ```
///
/// # Errors
/// When it is called outside a server function that isr's router runs, or the app registered
/// no `T`.
pub fn server_state<T: Clone + Send + Sync + 'static>() -> Result<T, ServerFnError> {
    let state = use_context::<ServerState>().ok_or_else(|| {
        ServerFnError::new(format!(
            "no app state here: `isr::server_state::<{}>()` works inside a server function that isr serves",
            std::any::type_name::<T>()
        ))
    })?;
    state.0.get::<T>().cloned().ok_or_else(|| {
        ServerFnError::new(format!(
            "`{}` is not registered: add it with `App::state(..)`",
            std::any::type_name::<T>()
        ))
    })
}

/// Sets the HTTP status of the answer of the server function being run (leptos answers a
/// function's error with 500: a missing item is better a 404). Outside one it does nothing.
///
/// ```
/// // Outside a server function call: nothing to set, and no panic.
/// isr::set_server_fn_status(axum::http::StatusCode::NOT_FOUND);
/// ```
pub fn set_server_fn_status(status: StatusCode) {
    if let Some(response) = use_context::<leptos_axum::ResponseOptions>() {
        response.set_status(status);
    }
}

/// One route per registered server function.
pub(super) fn routes() -> Router<AppState> {
    let mut router = Router::new();
    for (path, method) in leptos::server_fn::axum::server_fn_paths() {
        let Ok(filter) = axum::routing::MethodFilter::try_from(method) else {
            continue;
        };
        router = router.route(path, axum::routing::on(filter, server_fn_endpoint));
    }
    router.layer(tower_http::limit::RequestBodyLimitLayer::new(
        MAX_BODY_BYTES,
    ))
}

async fn server_fn_endpoint(
    State(state): State<AppState>,
    Caller(client): Caller,
    request: Request,
) -> Response {
    if cross_site(
        request.headers(),
        &client,
        state.auth.public_origin.as_deref(),
    ) {
        return (
            StatusCode::FORBIDDEN,
            "server functions answer calls from this site's own pages only",
        )
            .into_response();
    }
    let app_state = ServerState(state.engine.state().clone());
    let mut response = leptos_axum::handle_server_fns_with_context(
        move || provide_context(app_state.clone()),
        request,
    )
    .await
    .into_response();
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}
