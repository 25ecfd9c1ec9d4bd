//! The dashboard's routes: `GET /_isr/` (the page, or its login form), `POST /_isr/login`,
//! `POST /_isr/logout` and `POST /_isr/actions/revalidate` (the page's forms).
//!
//! Login takes `ISR_ADMIN_TOKEN` once and opens a server-side session ([`super::session`]):
//! the cookie (`HttpOnly; SameSite=Strict; Path=/_isr`, `Secure` when the site is served over
//! https) holds a random id, never the token. Requests authorised by that cookie must also come
//! from the page itself when they change something (logout included): see
//! [`super::auth`]. Failed logins count against the client address like every other failed
//! authentication. The outcome of a form is kept in the session and shown once: no message
//! travels in a link. Without `ISR_ADMIN_TOKEN` every route here answers `404`.

use super::auth::{bearer_matches, Caller, Endpoint};
use super::{plain_status, AppState};
use crate::dashboard::{Dashboard, DashboardData, Filters, LIVE_SCRIPT};
use crate::engine::{PageQuery, PageState};
use crate::revalidate::{RevalidateRequest, Revalidation, MAX_AWAITED_PAGES};
use crate::Hydration;
use axum::extract::{Query, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::{Form, Router};
use leptos::prelude::*;
use serde::Deserialize;
use subtle::ConstantTimeEq;

/// The session cookie's name.
pub const SESSION_COOKIE: &str = "isr_session";
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

/// The `Set-Cookie` value of a session: `id` for `max_age` seconds (`0` ends it).
///
/// ```
/// let cookie = isr::server::dashboard::session_cookie("abc", 60, true);
/// assert_eq!(cookie, "isr_session=abc; HttpOnly; SameSite=Strict; Path=/_isr; Max-Age=60; Secure");
/// let ended = isr::server::dashboard::session_cookie("", 0, false);
/// assert_eq!(ended, "isr_session=; HttpOnly; SameSite=Strict; Path=/_isr; Max-Age=0");
/// ```
pub fn session_cookie(id: &str, max_age: u64, secure: bool) -> String {
    let secure = if secure { "; Secure" } else { "" };
    format!(
        "{SESSION_COOKIE}={id}; HttpOnly; SameSite=Strict; Path=/_isr; Max-Age={max_age}{secure}"
    )
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

async fn page(
    State(state): State<AppState>,
    headers: HeaderMap,
    filters: Result<Query<Filters>, axum::extract::rejection::QueryRejection>,
) -> Response {
    let Some(token) = state.auth.admin_token.clone() else {
        return off();
    };
    let session = state.auth.session(&headers);
    if session.is_none() && !bearer_matches(&headers, &token) {
        return login_page(StatusCode::OK, "");
    }
    let filters = filters.map(|Query(f)| f).unwrap_or_default();
    // The live script's refresh (it sends `x-isr-dashboard`) leaves a form's notice for the
    // page load the form's redirect makes: it never shows the notice.
    let refresh = headers.contains_key("x-isr-dashboard");
    let notice = session
        .filter(|_| !refresh)
        .and_then(|id| state.auth.sessions.take_notice(&id))
        .unwrap_or_default();
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
    // Rendered without props: nothing hydrates it (see `crate::dashboard`).
    let body = match crate::render::render_view((), |()| view! { <Dashboard data=data /> }).await {
        Ok(body) => body,
        Err(error) => {
            return plain_status(
                StatusCode::INTERNAL_SERVER_ERROR,
                "Error",
                &format!("{error:#}"),
            )
        }
    };
    let shell = crate::render::DocumentShell {
        client: None,
        extra_head: format!("<script type=\"module\">{LIVE_SCRIPT}</script>"),
        ..(*state.shell).clone()
    };
    let document =
        crate::render::document_with_scripts(&body, "isr dashboard", Hydration::Islands, &shell);
    let mut response = html(StatusCode::OK, document.html);
    if let Ok(policy) = HeaderValue::from_str(&super::operator_policy(&document.script_hashes)) {
        response
            .headers_mut()
            .insert(header::CONTENT_SECURITY_POLICY, policy);
    }
    response
}

#[derive(Debug, Deserialize)]
struct LoginForm {
    token: String,
}

async fn login(
    State(state): State<AppState>,
    Caller(client): Caller,
    headers: HeaderMap,
    form: Result<Form<LoginForm>, axum::extract::rejection::FormRejection>,
) -> Response {
    let auth = &state.auth;
    let Some(token) = auth.admin_token.clone() else {
        return off();
    };
    if headers.contains_key(header::ORIGIN) && !auth.comes_from_the_dashboard(&headers, &client) {
        return login_page(StatusCode::FORBIDDEN, "Log in from this site's own page.");
    }
    if let Some(refusal) = blocked_page(auth, &client) {
        return refusal;
    }
    let given = form.map(|Form(f)| f.token).unwrap_or_default();
    if !bool::from(given.trim().as_bytes().ct_eq(token.as_bytes())) {
        auth.failed(Endpoint::Login, &client, true);
        return login_page(StatusCode::UNAUTHORIZED, "Wrong token.");
    }
    let id = auth.sessions.open();
    let cookie = session_cookie(
        &id,
        auth.sessions.lifetime().as_secs(),
        auth.secure_cookies(&client),
    );
    let mut response = Redirect::to("/_isr/").into_response();
    if let Ok(value) = HeaderValue::from_str(&cookie) {
        response.headers_mut().insert(header::SET_COOKIE, value);
    }
    response
}

/// The login page with `429` when `client`'s address has failed too often.
fn blocked_page(
    auth: &super::auth::Auth,
    client: &super::origin::ClientOrigin,
) -> Option<Response> {
    auth.blocked(client).map(|_| {
        login_page(
            StatusCode::TOO_MANY_REQUESTS,
            "Too many failed attempts from this address. Try again in a minute.",
        )
    })
}

/// Ends the session (only from the dashboard itself: a cross-site form cannot log an operator
/// out) and clears its cookie.
async fn logout(
    State(state): State<AppState>,
    Caller(client): Caller,
    headers: HeaderMap,
) -> Response {
    let auth = &state.auth;
    if auth.admin_token.is_none() {
        return off();
    }
    if !auth.comes_from_the_dashboard(&headers, &client) {
        auth.failed(Endpoint::Dashboard, &client, false);
        return login_page(StatusCode::FORBIDDEN, "Log out from this site's own page.");
    }
    if let Some(id) = auth.session(&headers) {
        auth.sessions.close(&id);
    }
    let mut response = Redirect::to("/_isr/").into_response();
    if let Ok(value) = HeaderValue::from_str(&session_cookie("", 0, auth.secure_cookies(&client))) {
        response.headers_mut().insert(header::SET_COOKIE, value);
    }
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
    /// The invalidation mode (`auto` when absent).
    #[serde(default)]
    mode: crate::revalidate::InvalidationMode,
    /// Soft or hard purges at the CDNs (`soft` when absent).
    #[serde(default)]
    purge: crate::engine::PurgeKind,
    /// Whether the notice waits for the CDN (`origin` when absent).
    #[serde(default)]
    wait: crate::revalidate::Wait,
}

async fn action_revalidate(
    State(state): State<AppState>,
    Caller(client): Caller,
    headers: HeaderMap,
    form: Result<Form<ActionForm>, axum::extract::rejection::FormRejection>,
) -> Response {
    let auth = &state.auth;
    if auth.admin_token.is_none() {
        return off();
    }
    if let Some(refusal) = blocked_page(auth, &client) {
        return refusal;
    }
    let session = auth.session(&headers);
    let Some(session) = session.filter(|_| auth.comes_from_the_dashboard(&headers, &client)) else {
        auth.failed(Endpoint::Dashboard, &client, false);
        return login_page(
            StatusCode::FORBIDDEN,
            "Log in again from this site's own page.",
        );
    };
    let form = form.map(|Form(f)| f).unwrap_or_default();
    let mut request = RevalidateRequest {
        mode: form.mode,
        purge: form.purge,
        wait: form.wait,
        ..RevalidateRequest::default()
    };
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
            let counts: Vec<String> = crate::revalidate::counts(&results)
                .into_iter()
                .map(|(outcome, n)| {
                    let outcome = serde_json::to_value(outcome).unwrap_or_default();
                    format!("{n} {}", outcome.as_str().unwrap_or("").replace('_', " "))
                })
                .collect();
            let notice = format!(
                "{what} ({}): {} pages: {}",
                form.mode.as_str(),
                results.len(),
                counts.join(", ")
            );
            match (form.wait, &state.edge) {
                (crate::revalidate::Wait::Origin, _) => notice,
                (crate::revalidate::Wait::Edge, None) => {
                    format!("{notice}; the edge was not asked: the site has no --cdn-url")
                }
                (crate::revalidate::Wait::Edge, Some(edge)) => {
                    let deadline = request.edge_deadline();
                    let report = super::edge_report(&state.engine, edge, &results, deadline).await;
                    let mut notice = format!("{notice}; live at the edge: {}", report.live.len());
                    if let Some(slowest) = report.live.iter().map(|l| l.seconds).reduce(f64::max) {
                        notice.push_str(&format!(" (slowest {slowest:.3} s)"));
                    }
                    if !report.missed.is_empty() {
                        let first: Vec<&str> =
                            report.missed.iter().take(10).map(String::as_str).collect();
                        notice.push_str(&format!(
                            "; {} not served new within {} s: {}{}",
                            report.missed.len(),
                            report.deadline_seconds,
                            first.join(" "),
                            if report.missed.len() > first.len() {
                                " …"
                            } else {
                                ""
                            }
                        ));
                    }
                    notice
                }
            }
        }
        Revalidation::Accepted { accepted } => {
            let edge = match form.wait {
                crate::revalidate::Wait::Edge => " (the edge is not waited for)",
                crate::revalidate::Wait::Origin => "",
            };
            format!("{what}: {accepted} pages are being revalidated in the background{edge}")
        }
    };
    auth.sessions.set_notice(&session, notice);
    Redirect::to("/_isr/").into_response()
}
