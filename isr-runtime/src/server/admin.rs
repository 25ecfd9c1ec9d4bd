//! The operator API: what every page's state is, and revalidation, for the dashboard, the
//! `status` / `pages` / `revalidate` subcommands and scripts.
//!
//! | route | answer |
//! |---|---|
//! | `GET /_isr/api/summary` | pages per route and state, failing pages, oldest stale age ([`Summary`](crate::engine::Summary)) |
//! | `GET /_isr/api/pages?route=&state=&tag=&q=&after=&limit=` | a page of [`PageStatus`](crate::engine::PageStatus)es in key order; `next` is the `after` of the following page; `limit` 1–500 (default 50) |
//! | `GET /_isr/api/pages/<path>` | one page, with its bytes per encoding (the root page: `/_isr/api/pages/`) |
//! | `POST /_isr/api/revalidate` | the webhook's body and answer (`{"paths": [..], "tags": [..]}`) |
//!
//! Every route needs `Authorization: Bearer <ISR_ADMIN_TOKEN>` or the dashboard's session
//! cookie (`401` without either; with the cookie, `POST` also needs to come from the
//! dashboard itself, see [`super::auth`]); failures are counted per client address, which gets
//! `429` past the limit. Without `ISR_ADMIN_TOKEN` they all answer `404`.

use super::auth::{bearer_matches, Caller, Endpoint};
use super::origin::ClientOrigin;
use super::{json_error, unauthorized, AppState};
use crate::engine::{PageQuery, PageState};
use crate::route::Resolved;
use axum::extract::{Query, Request, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;

/// Pages a listing returns when `limit` is not given.
pub const DEFAULT_LIST_LIMIT: usize = 50;

pub(super) fn routes() -> Router<AppState> {
    Router::new()
        .route("/_isr/api/summary", get(summary))
        .route("/_isr/api/pages", get(list))
        .route("/_isr/api/pages/", get(details))
        .route("/_isr/api/pages/{*path}", get(details))
        .route("/_isr/api/revalidate", post(revalidate))
        .route("/_isr/api/{*rest}", get(no_such_call).post(no_such_call))
}

/// The refusal when the API is off (404) or the caller is not authorised (401); `None`: go
/// on. Reading takes the bearer token or the dashboard's session cookie; changing takes the
/// token, or the cookie from the dashboard itself (see [`super::dashboard`]).
fn refusal(
    state: &AppState,
    client: &ClientOrigin,
    headers: &HeaderMap,
    changes: bool,
) -> Option<Response> {
    let auth = &state.auth;
    let Some(token) = auth.admin_token.as_deref() else {
        return Some(json_error(
            StatusCode::NOT_FOUND,
            "the operator API is off: set ISR_ADMIN_TOKEN to enable it",
        ));
    };
    if let Some(refusal) = auth.refuse_if_blocked(client) {
        return Some(refusal);
    }
    let session = || auth.session(headers).is_some();
    let allowed = bearer_matches(headers, token)
        || if changes {
            session() && auth.comes_from_the_dashboard(headers, client)
        } else {
            session()
        };
    if allowed {
        return None;
    }
    auth.failed(Endpoint::Api, client, super::auth::presents_token(headers));
    Some(unauthorized())
}

async fn summary(
    State(state): State<AppState>,
    Caller(client): Caller,
    headers: HeaderMap,
) -> Response {
    if let Some(refusal) = refusal(&state, &client, &headers, false) {
        return refusal;
    }
    let engine = state.engine.clone();
    // A pass over every page: off the async workers.
    match tokio::task::spawn_blocking(move || engine.summary()).await {
        Ok(summary) => Json(summary).into_response(),
        Err(error) => json_error(StatusCode::INTERNAL_SERVER_ERROR, error.to_string()),
    }
}

/// The query of `GET /_isr/api/pages`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct ListParams {
    route: Option<String>,
    state: Option<String>,
    tag: Option<String>,
    q: Option<String>,
    after: Option<String>,
    limit: Option<usize>,
}

async fn list(
    State(state): State<AppState>,
    Caller(client): Caller,
    headers: HeaderMap,
    params: Result<Query<ListParams>, axum::extract::rejection::QueryRejection>,
) -> Response {
    if let Some(refusal) = refusal(&state, &client, &headers, false) {
        return refusal;
    }
    let Query(params) = match params {
        Ok(params) => params,
        Err(rejection) => return json_error(StatusCode::BAD_REQUEST, rejection.body_text()),
    };
    let page_state = match params.state.as_deref().filter(|s| !s.is_empty()) {
        None => None,
        Some(name) => match PageState::parse(name) {
            Some(page_state) => Some(page_state),
            None => {
                let known: Vec<&str> = PageState::ALL.iter().map(|s| s.as_str()).collect();
                return json_error(
                    StatusCode::BAD_REQUEST,
                    format!(
                        "unknown state {name:?}: expected one of {}",
                        known.join(", ")
                    ),
                );
            }
        },
    };
    let non_empty = |value: Option<String>| value.filter(|v| !v.is_empty());
    let query = PageQuery {
        route: non_empty(params.route),
        state: page_state,
        tag: non_empty(params.tag),
        text: non_empty(params.q),
        after: non_empty(params.after),
        limit: params.limit.unwrap_or(DEFAULT_LIST_LIMIT),
    };
    let engine = state.engine.clone();
    match tokio::task::spawn_blocking(move || engine.list_pages(&query)).await {
        Ok(list) => Json(list).into_response(),
        Err(error) => json_error(StatusCode::INTERNAL_SERVER_ERROR, error.to_string()),
    }
}

async fn details(
    State(state): State<AppState>,
    Caller(client): Caller,
    request: Request,
) -> Response {
    if let Some(refusal) = refusal(&state, &client, request.headers(), false) {
        return refusal;
    }
    let tail = request
        .uri()
        .path()
        .strip_prefix("/_isr/api/pages")
        .unwrap_or("/");
    // A variant's details: its query as the page's URL has it (`/_isr/api/pages/blog?page=2`).
    let key = match state
        .engine
        .routes()
        .resolve_request(tail, request.uri().query())
    {
        Resolved::Page { key, .. } => key,
        _ => {
            return json_error(
                StatusCode::NOT_FOUND,
                format!("no page route matches {tail}"),
            )
        }
    };
    match state.engine.page_details(&key).await {
        Some(status) => Json(status).into_response(),
        None => json_error(
            StatusCode::NOT_FOUND,
            format!("{key} is not stored and not failing"),
        ),
    }
}

async fn revalidate(
    State(state): State<AppState>,
    Caller(client): Caller,
    request: Request,
) -> Response {
    if let Some(refusal) = refusal(&state, &client, request.headers(), true) {
        return refusal;
    }
    super::revalidate_request(&state, request).await
}

async fn no_such_call(
    State(state): State<AppState>,
    Caller(client): Caller,
    headers: HeaderMap,
) -> Response {
    if let Some(refusal) = refusal(&state, &client, &headers, false) {
        return refusal;
    }
    json_error(StatusCode::NOT_FOUND, "no such operator API call")
}
