//! The dashboard's routes: `GET /_isr/` (the page, or its login form), `POST /_isr/login`,
//! `POST /_isr/logout` and `POST /_isr/actions/revalidate` (the page's forms).
//!
//! Login takes `ISR_ADMIN_TOKEN` once and sets a session cookie (`HttpOnly; SameSite=Strict;
//! Path=/_isr`) holding a hash of the token, never the token. Requests authorised by that
//! cookie must also come from the page itself when they change something: a form POST with
//! a same-origin `Origin`, or a fetch with the `x-isr-dashboard` header (which a cross-site
//! page cannot send without a CORS preflight that isr never answers). Without
//! `ISR_ADMIN_TOKEN` every route here answers `404`.

use super::{bearer_matches, plain_status, AppState};
use crate::dashboard::{encode, Dashboard, DashboardData, Filters, HYDRATE_EXPORT};
use crate::engine::{PageQuery, PageState};
use crate::revalidate::{RevalidateRequest, Revalidation, MAX_AWAITED_PAGES};
use axum::extract::{Query, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::{Form, Router};
use leptos::prelude::*;
use serde::Deserialize;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

/// The session cookie's name.
pub const SESSION_COOKIE: &str = "isr_session";
/// How long a session lasts (seconds).
const SESSION_SECONDS: u64 = 12 * 60 * 60;
/// Pages per dashboard page.
const PAGES_SHOWN: usize = 50;

pub(super) fn routes() -> Router<AppState> {
    Router::new()
        .route("/_isr", get(|| async { Redirect::permanent("/_isr/") }))
        .route("/_isr/", get(page))
        .route("/_isr/login", post(login))
        .route("/_isr/logout", post(logout))
        .route("/_isr/actions/revalidate", post(action_revalidate))
}

/// The session cookie's value for `token`: a hash, so the cookie never carries the token.
///
/// ```
/// let a = isr::server::dashboard::session_value("s3cret");
/// assert_eq!(a.len(), 64);
/// assert_ne!(a, isr::server::dashboard::session_value("other"));
/// ```
pub fn session_value(token: &str) -> String {
    let digest = Sha256::digest(format!("isr-dashboard-session\0{token}").as_bytes());
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

/// Whether the request carries the session cookie of `token`.
fn has_session(headers: &HeaderMap, token: &str) -> bool {
    let expected = session_value(token);
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .any(|(name, value)| {
            name == SESSION_COOKIE && bool::from(value.as_bytes().ct_eq(expected.as_bytes()))
        })
}

/// Whether a state-changing request comes from the dashboard itself (see the module docs).
pub(super) fn from_the_dashboard(headers: &HeaderMap) -> bool {
    if headers.contains_key("x-isr-dashboard") {
        return true;
    }
    let host = headers.get(header::HOST).and_then(|h| h.to_str().ok());
    let origin = headers.get(header::ORIGIN).and_then(|o| o.to_str().ok());
    match (host, origin) {
        (Some(host), Some(origin)) => origin
            .strip_prefix("http://")
            .or_else(|| origin.strip_prefix("https://"))
            .is_some_and(|o| o == host),
        _ => false,
    }
}

/// Whether the request may read the operator API: a bearer token, or a session cookie.
pub(super) fn may_read(token: &str, headers: &HeaderMap) -> bool {
    bearer_matches(headers, token) || has_session(headers, token)
}

/// Whether the request may change something: a bearer token, or a session cookie from the
/// dashboard itself.
pub(super) fn may_change(token: &str, headers: &HeaderMap) -> bool {
    bearer_matches(headers, token) || (has_session(headers, token) && from_the_dashboard(headers))
}

fn off() -> Response {
    plain_status(
        StatusCode::NOT_FOUND,
        "Not found",
        "The dashboard is off: set ISR_ADMIN_TOKEN to enable it.",
    )
}

fn html(status: StatusCode, html: String) -> Response {
    let mut response = (status, html).into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

fn login_page(status: StatusCode, message: &str) -> Response {
    let message = if message.is_empty() {
        String::new()
    } else {
        format!(
            "<p role=\"alert\">{}</p>",
            crate::render::escape_text(message)
        )
    };
    html(
        status,
        format!(
            "<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\"><meta name=\"viewport\" content=\"width=device-width, initial-scale=1\"><link rel=\"icon\" href=\"data:,\"><title>isr: log in</title><style>body{{font-family:system-ui,sans-serif;max-width:28rem;margin:4rem auto;padding:0 1rem}}input,button{{font:inherit}}</style></head><body><h1>Log in</h1>{message}<form method=\"post\" action=\"/_isr/login\"><label>Admin token (<code>ISR_ADMIN_TOKEN</code>) <input type=\"password\" name=\"token\" id=\"token\" autocomplete=\"current-password\" required></label> <button type=\"submit\">Log in</button></form></body></html>"
        ),
    )
}

/// The notice of the last form action (`/_isr/?notice=…`), beside the filters.
#[derive(Debug, Default, Deserialize)]
struct Notice {
    #[serde(default)]
    notice: String,
}

async fn page(
    State(state): State<AppState>,
    headers: HeaderMap,
    filters: Result<Query<Filters>, axum::extract::rejection::QueryRejection>,
    notice: Result<Query<Notice>, axum::extract::rejection::QueryRejection>,
) -> Response {
    let Some(token) = state.admin_token.clone() else {
        return off();
    };
    if !may_read(&token, &headers) {
        return login_page(StatusCode::OK, "");
    }
    let filters = filters.map(|Query(f)| f).unwrap_or_default();
    let notice = notice.map(|Query(n)| n.notice).unwrap_or_default();
    let non_empty = |v: &String| (!v.is_empty()).then(|| v.clone());
    let query = PageQuery {
        route: non_empty(&filters.route),
        state: PageState::parse(&filters.state),
        tag: non_empty(&filters.tag),
        text: non_empty(&filters.q),
        after: non_empty(&filters.after),
        limit: PAGES_SHOWN,
    };
    let engine = state.engine.clone();
    let views = tokio::task::spawn_blocking(move || {
        let summary = serde_json::to_value(engine.summary())?;
        let list = serde_json::to_value(engine.list_pages(&query))?;
        Ok::<_, serde_json::Error>((
            serde_json::from_value(summary)?,
            serde_json::from_value(list)?,
        ))
    })
    .await;
    let (summary, list) = match views {
        Ok(Ok(views)) => views,
        Ok(Err(error)) => {
            return plain_status(
                StatusCode::INTERNAL_SERVER_ERROR,
                "Error",
                &error.to_string(),
            )
        }
        Err(error) => {
            return plain_status(
                StatusCode::INTERNAL_SERVER_ERROR,
                "Error",
                &error.to_string(),
            )
        }
    };
    let data = DashboardData {
        summary,
        list,
        filters,
        notice: non_empty(&notice),
    };
    let body =
        match crate::render::render_view(data, |data| view! { <Dashboard data=data /> }).await {
            Ok(body) => body,
            Err(error) => {
                return plain_status(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "Error",
                    &format!("{error:#}"),
                )
            }
        };
    let shell = state.engine.shell();
    let document = crate::render::document(&body, "isr dashboard", HYDRATE_EXPORT, &shell);
    html(StatusCode::OK, document)
}

#[derive(Debug, Deserialize)]
struct LoginForm {
    token: String,
}

async fn login(
    State(state): State<AppState>,
    headers: HeaderMap,
    form: Result<Form<LoginForm>, axum::extract::rejection::FormRejection>,
) -> Response {
    let Some(token) = state.admin_token.clone() else {
        return off();
    };
    if headers.contains_key(header::ORIGIN) && !from_the_dashboard(&headers) {
        return login_page(StatusCode::FORBIDDEN, "Log in from this site's own page.");
    }
    let given = form.map(|Form(f)| f.token).unwrap_or_default();
    if !bool::from(given.trim().as_bytes().ct_eq(token.as_bytes())) {
        static LOG: super::listener::LogLimiter =
            super::listener::LogLimiter::new(std::time::Duration::from_secs(10));
        if let Some(suppressed) = LOG.allow() {
            tracing::warn!(
                suppressed,
                "POST /_isr/login with a wrong token (answered 401)"
            );
        }
        return login_page(StatusCode::UNAUTHORIZED, "Wrong token.");
    }
    let cookie = format!(
        "{SESSION_COOKIE}={}; HttpOnly; SameSite=Strict; Path=/_isr; Max-Age={SESSION_SECONDS}",
        session_value(&token)
    );
    let mut response = Redirect::to("/_isr/").into_response();
    if let Ok(value) = HeaderValue::from_str(&cookie) {
        response.headers_mut().insert(header::SET_COOKIE, value);
    }
    response
}

async fn logout(State(state): State<AppState>) -> Response {
    if state.admin_token.is_none() {
        return off();
    }
    let mut response = Redirect::to("/_isr/").into_response();
    response.headers_mut().insert(
        header::SET_COOKIE,
        HeaderValue::from_static("isr_session=; HttpOnly; SameSite=Strict; Path=/_isr; Max-Age=0"),
    );
    response
}

/// A revalidate button: one of `path`, `tag` or `route`.
#[derive(Debug, Default, Deserialize)]
struct ActionForm {
    #[serde(default)]
    path: String,
    #[serde(default)]
    tag: String,
    #[serde(default)]
    route: String,
}

async fn action_revalidate(
    State(state): State<AppState>,
    headers: HeaderMap,
    form: Result<Form<ActionForm>, axum::extract::rejection::FormRejection>,
) -> Response {
    let Some(token) = state.admin_token.clone() else {
        return off();
    };
    if !may_change(&token, &headers) {
        return login_page(
            StatusCode::FORBIDDEN,
            "Log in again from this site's own page.",
        );
    }
    let form = form.map(|Form(f)| f).unwrap_or_default();
    let mut request = RevalidateRequest::default();
    if !form.path.is_empty() {
        request.paths.push(form.path.clone());
    }
    if !form.tag.is_empty() {
        request.tags.push(form.tag.clone());
    }
    if !form.route.is_empty() {
        // Every page of the route, one listing page at a time.
        let mut query = PageQuery {
            route: Some(form.route.clone()),
            limit: crate::engine::MAX_LIST_LIMIT,
            ..PageQuery::default()
        };
        loop {
            let list = state.engine.list_pages(&query);
            request.paths.extend(list.pages.into_iter().map(|p| p.path));
            match list.next {
                Some(next) => query.after = Some(next),
                None => break,
            }
        }
    }
    let what = [&form.path, &form.tag, &form.route]
        .into_iter()
        .find(|v| !v.is_empty())
        .cloned()
        .unwrap_or_default();
    let notice = match crate::revalidate::start(&state.engine, &request, MAX_AWAITED_PAGES).await {
        Revalidation::Done(results) => {
            let failed = results
                .iter()
                .filter(|r| r.outcome == crate::RevalidationOutcome::Error)
                .count();
            format!(
                "{what}: {} pages revalidated, {failed} failed (the old version stays)",
                results.len()
            )
        }
        Revalidation::Accepted { accepted } => {
            format!("{what}: {accepted} pages are being revalidated in the background")
        }
    };
    let location = format!("/_isr/?notice={}", encode(&notice));
    Redirect::to(&location).into_response()
}
