//! The operator dashboard at `/_isr/`: a leptos page rendered on the server from the engine's
//! state and hydrated in the browser with the app's own client bundle (this module is
//! compiled into both). Without JavaScript (or without a bundle) its forms still work: the
//! filters are a GET form, the revalidate buttons POST forms. Hydrated, it refreshes itself
//! every second from the operator API and revalidates a page without leaving it.
//!
//! The types here mirror the API's JSON (`/_isr/api/summary`, `/_isr/api/pages`) with the
//! fields the page shows; unknown fields are ignored, so the API may grow.

use leptos::prelude::*;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// The name of the bundle export that hydrates the dashboard.
pub const HYDRATE_EXPORT: &str = "isr_hydrate_dashboard";

/// How often the hydrated dashboard refreshes, in milliseconds.
pub const REFRESH_MS: u64 = 1_000;

/// One route's line of the summary.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct RouteRow {
    /// The route pattern (`/blog/:slug`).
    pub route: String,
    /// Its stored pages (pages, tombstones, redirects).
    pub pages: u64,
    /// Pages per state name (see [`STATES`]); a state with no page may be absent.
    #[serde(default)]
    pub states: BTreeMap<String, u64>,
    /// HTML bytes of its stored pages.
    pub bytes: u64,
}

/// The summary the dashboard shows.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct SummaryView {
    /// Stored pages of every route.
    pub pages: u64,
    /// Pages whose last generations failed (stored or missing): all of them, not a sample.
    pub failing_total: u64,
    /// Paths only requests named whose generation fails (one number, see
    /// `engine::Summary::unknown_failing`).
    #[serde(default)]
    pub unknown_failing: u64,
    /// Age in seconds of the oldest stale page; `None` when no page is stale.
    pub oldest_stale_s: Option<u64>,
    /// One per route of the app, in pattern order.
    pub routes: Vec<RouteRow>,
}

/// A page's last run, as shown.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct RunView {
    /// `ok`, `not_found`, `pulled`, or a failure kind (`error`, `timeout`, `panic`,
    /// `store_error`, `busy`).
    pub outcome: String,
    /// The failure's message (at most 1,000 characters); `None` after a success.
    #[serde(default)]
    pub error: Option<String>,
    /// What started it: `build`, `stale`, `miss` or `on_demand` (for a pull, why it was
    /// pulled).
    pub trigger: String,
    /// When it ended, in ms since the Unix epoch.
    pub at_ms: u64,
    /// With the shared tier: the instance that generated the version in place.
    #[serde(default)]
    pub instance: Option<String>,
}

/// One page's line.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct PageRow {
    /// The URL path (percent-encoded where needed): the link and the revalidate target.
    pub path: String,
    /// The page's key (its decoded path), as shown.
    pub key: String,
    /// Its route pattern.
    pub route: String,
    /// One of [`STATES`].
    pub state: String,
    /// When its stored version was generated, in ms since the Unix epoch; `None` when never
    /// stored.
    #[serde(default)]
    pub generated_at_ms: Option<u64>,
    /// Seconds since that generation; `None` when never stored.
    #[serde(default)]
    pub age_s: Option<u64>,
    /// Failed generations in a row (0 when the last one succeeded).
    pub failures: u32,
    /// While backing off: the earliest time (ms since the Unix epoch) of a new attempt.
    #[serde(default)]
    pub next_regeneration_ms: Option<u64>,
    /// Its last generation, when the engine still remembers it.
    #[serde(default)]
    pub last: Option<RunView>,
    /// The tags it carries (route and loader tags).
    #[serde(default)]
    pub tags: Vec<String>,
    /// The HTML's length; `None` for a not-found, a redirect or a page never stored.
    #[serde(default)]
    pub bytes: Option<u64>,
}

/// One listing.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct ListView {
    /// This listing's pages, in key order.
    pub pages: Vec<PageRow>,
    /// The `after` cursor of the next pages; `None` on the last listing.
    pub next: Option<String>,
    /// Pages matching the filters from the cursor on (this listing's and the following ones).
    pub matched: u64,
}

/// The filters in the page's URL (`/_isr/?q=&state=&route=&tag=&after=`).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Filters {
    /// Text the page's key contains; empty: any.
    #[serde(default)]
    pub q: String,
    /// A state of [`STATES`]; empty: any.
    #[serde(default)]
    pub state: String,
    /// A route pattern; empty: any.
    #[serde(default)]
    pub route: String,
    /// A tag the page carries; empty: any.
    #[serde(default)]
    pub tag: String,
    /// Only pages after this key (the previous listing's `next`); empty: from the first.
    #[serde(default)]
    pub after: String,
}

impl Filters {
    /// The API query of these filters (`q=…&state=…`), percent-encoded, empty ones left out.
    ///
    /// ```
    /// let filters = isr::dashboard::Filters { q: "a b".into(), state: "stale".into(), ..Default::default() };
    /// assert_eq!(filters.query(), "q=a%20b&state=stale");
    /// ```
    pub fn query(&self) -> String {
        [
            ("q", &self.q),
            ("state", &self.state),
            ("route", &self.route),
            ("tag", &self.tag),
            ("after", &self.after),
        ]
        .iter()
        .filter(|(_, value)| !value.is_empty())
        .map(|(name, value)| format!("{name}={}", encode(value)))
        .collect::<Vec<_>>()
        .join("&")
    }
}

/// Everything the dashboard renders from (embedded in the page for hydration).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct DashboardData {
    /// The site at a glance: pages per route and state.
    pub summary: SummaryView,
    /// The pages matching `filters`, from its cursor on.
    pub list: ListView,
    /// The request's filters, kept in the form, the refresh query and the "next" link.
    pub filters: Filters,
    /// A message after a form action (e.g. "3 pages regenerated").
    #[serde(default)]
    pub notice: Option<String>,
}

/// The states a page can be in (the filter's options).
pub const STATES: [&str; 6] = [
    "fresh",
    "stale",
    "regenerating",
    "backing_off",
    "not_found",
    "missing",
];

/// Percent-encodes a query value (everything but RFC 3986's unreserved characters).
///
/// ```
/// assert_eq!(isr::dashboard::encode("a b/ü"), "a%20b%2F%C3%BC");
/// ```
pub fn encode(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for byte in value.bytes() {
        match byte {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                out.push(byte as char)
            }
            _ => out.push_str(&format!("%{byte:02X}")),
        }
    }
    out
}

/// A wall time (ms since the Unix epoch) as `YYYY-MM-DD HH:MM:SS` UTC.
///
/// ```
/// assert_eq!(isr::dashboard::utc(0), "1970-01-01 00:00:00");
/// assert_eq!(isr::dashboard::utc(1_796_181_352_133), "2026-12-02 03:15:52");
/// assert_eq!(isr::dashboard::utc(951_782_400_000), "2000-02-29 00:00:00");
/// ```
pub fn utc(ms: u64) -> String {
    let seconds = ms / 1000;
    let (days, rest) = (seconds / 86_400, seconds % 86_400);
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02} {:02}:{:02}:{:02}",
        rest / 3600,
        rest % 3600 / 60,
        rest % 60
    )
}

const STYLE: &str = "body{font-family:system-ui,sans-serif;margin:1.5rem;color:#1a1a1a}\
table{border-collapse:collapse;margin:1rem 0;font-size:.9rem}\
th,td{border-bottom:1px solid #ddd;padding:.3rem .6rem;text-align:left;vertical-align:top}\
th{background:#f4f4f4}.state-backing_off,.state-missing{color:#a00;font-weight:600}\
.state-stale{color:#8a5a00}.state-regenerating{color:#0054a6}.error{color:#a00;max-width:32rem}\
form.inline{display:inline}input,select,button{font:inherit;margin-right:.4rem}\
.notice{background:#eef7ee;padding:.5rem .8rem}";

/// The dashboard (see the module docs).
#[component]
pub fn Dashboard(
    /// What to render: read from the engine on the server, from the embedded props when
    /// hydrating.
    data: DashboardData,
) -> impl IntoView {
    let DashboardData {
        summary,
        list,
        filters,
        notice,
    } = data;
    let summary = RwSignal::new(summary);
    let list = RwSignal::new(list);
    let notice = RwSignal::new(notice);
    #[cfg(feature = "hydrate")]
    client::refresh_every_second(filters.query(), summary, list);
    let next_link = {
        let filters = filters.clone();
        move || {
            list.get().next.map(|after| {
                let query = Filters {
                    after,
                    ..filters.clone()
                }
                .query();
                view! { <a id="isr-next" href=format!("/_isr/?{query}")>"next pages →"</a> }
            })
        }
    };
    view! {
        <style>{STYLE}</style>
        <main id="isr-dashboard">
            <h1>"Pages"</h1>
            <form method="post" action="/_isr/logout" class="inline">
                <button type="submit">"Log out"</button>
            </form>
            {move || notice.get().map(|n| view! { <p class="notice" id="isr-notice">{n}</p> })}
            <p id="isr-summary">
                {move || {
                    let s = summary.get();
                    let oldest = s
                        .oldest_stale_s
                        .map_or("none".to_string(), |a| format!("{a} s"));
                    let unknown = if s.unknown_failing > 0 {
                        format!(" (and {} requested paths that are no page of the site)", s.unknown_failing)
                    } else {
                        String::new()
                    };
                    format!("{} pages, {} failing{unknown}, oldest stale page: {oldest}", s.pages, s.failing_total)
                }}
            </p>
            <table id="isr-routes">
                <thead>
                    <tr>
                        <th>"route"</th>
                        <th>"pages"</th>
                        {STATES.iter().map(|s| view! { <th>{s.replace('_', " ")}</th> }).collect_view()}
                        <th>"bytes"</th>
                        <th></th>
                    </tr>
                </thead>
                <tbody>
                    <For
                        each=move || summary.get().routes
                        key=|r| (r.route.clone(), r.pages, r.states.clone(), r.bytes)
                        children=move |r| {
                            let route = r.route.clone();
                            view! {
                                <tr>
                                    <td>{r.route.clone()}</td>
                                    <td>{r.pages}</td>
                                    {STATES
                                        .iter()
                                        .map(|s| view! { <td>{r.states.get(*s).copied().unwrap_or(0)}</td> })
                                        .collect_view()}
                                    <td>{r.bytes}</td>
                                    <td>
                                        <form method="post" action="/_isr/actions/revalidate" class="inline">
                                            <input type="hidden" name="route" value=route />
                                            <button type="submit">"Revalidate route"</button>
                                        </form>
                                    </td>
                                </tr>
                            }
                        }
                    />
                </tbody>
            </table>
            <form method="get" action="/_isr/" id="isr-filter">
                <input type="search" name="q" placeholder="path contains" value=filters.q.clone() />
                <select name="state">
                    <option value="" selected=filters.state.is_empty()>"any state"</option>
                    {STATES
                        .iter()
                        .map(|s| view! { <option value=*s selected=filters.state == *s>{s.replace('_', " ")}</option> })
                        .collect_view()}
                </select>
                <input type="text" name="route" placeholder="route" value=filters.route.clone() />
                <input type="text" name="tag" placeholder="tag" value=filters.tag.clone() />
                <button type="submit">"Filter"</button>
            </form>
            <form method="post" action="/_isr/actions/revalidate" id="isr-revalidate-tag">
                <input type="text" name="tag" placeholder="tag" required=true />
                <button type="submit">"Revalidate tag"</button>
            </form>
            <p id="isr-matched">{move || format!("{} matching pages", list.get().matched)}</p>
            <table id="isr-pages">
                <thead>
                    <tr>
                        <th>"path"</th>
                        <th>"state"</th>
                        <th>"generated (UTC)"</th>
                        <th>"age"</th>
                        <th>"failures"</th>
                        <th>"last run"</th>
                        <th>"last error"</th>
                        <th>"tags"</th>
                        <th></th>
                    </tr>
                </thead>
                <tbody>
                    <For
                        each=move || list.get().pages
                        key=|p| (p.key.clone(), p.state.clone(), p.generated_at_ms, p.failures, p.age_s)
                        children=move |p| page_row(p, notice)
                    />
                </tbody>
            </table>
            {next_link}
        </main>
    }
}

fn page_row(page: PageRow, notice: RwSignal<Option<String>>) -> impl IntoView {
    let last = page.last.clone().unwrap_or_default();
    let path = page.path.clone();
    let state_class = format!("state state-{}", page.state);
    let generated = page.generated_at_ms.map(utc).unwrap_or_else(|| "-".into());
    let age = page
        .age_s
        .map(|a| format!("{a} s"))
        .unwrap_or_else(|| "-".into());
    let error = last.error.clone().unwrap_or_default();
    let run = match (&last.outcome[..], &last.instance) {
        ("", _) => "-".to_string(),
        (outcome, Some(instance)) => format!("{outcome} ({}) by {instance}", last.trigger),
        (outcome, None) => format!("{outcome} ({})", last.trigger),
    };
    let on_submit = move |event: leptos::ev::SubmitEvent| {
        #[cfg(feature = "hydrate")]
        {
            event.prevent_default();
            client::revalidate(path.clone(), notice);
        }
        #[cfg(not(feature = "hydrate"))]
        let _ = (&event, &path, notice);
    };
    view! {
        <tr data-key=page.key.clone()>
            <td class="path"><a href=page.path.clone()>{page.path.clone()}</a></td>
            <td class=state_class>{page.state.replace('_', " ")}</td>
            <td class="generated" data-ms=page.generated_at_ms.unwrap_or(0)>{generated}</td>
            <td>{age}</td>
            <td>{page.failures}</td>
            <td>{run}</td>
            <td class="error">{error}</td>
            <td>{page.tags.join(" ")}</td>
            <td>
                <form method="post" action="/_isr/actions/revalidate" class="inline revalidate" on:submit=on_submit>
                    <input type="hidden" name="path" value=page.path.clone() />
                    <button type="submit">"Revalidate"</button>
                </form>
            </td>
        </tr>
    }
}

/// The browser side: refreshing from the API, and revalidating without leaving the page.
#[cfg(feature = "hydrate")]
mod client {
    use super::{ListView, SummaryView};
    use leptos::prelude::*;
    use wasm_bindgen::{JsCast, JsValue};
    use wasm_bindgen_futures::JsFuture;

    /// GETs or POSTs `url` with the session cookie and the dashboard's header (the server
    /// accepts a cookie only with it, or from the same origin); its JSON answer.
    async fn call(
        method: &str,
        url: &str,
        body: Option<String>,
    ) -> Result<serde_json::Value, String> {
        let text = |e: JsValue| format!("{e:?}");
        let init = web_sys::RequestInit::new();
        init.set_method(method);
        init.set_credentials(web_sys::RequestCredentials::SameOrigin);
        if let Some(body) = body {
            init.set_body(&JsValue::from_str(&body));
        }
        let request = web_sys::Request::new_with_str_and_init(url, &init).map_err(text)?;
        let headers = request.headers();
        headers
            .set("content-type", "application/json")
            .map_err(text)?;
        headers.set("x-isr-dashboard", "1").map_err(text)?;
        let window = web_sys::window().ok_or("no window")?;
        let response: web_sys::Response = JsFuture::from(window.fetch_with_request(&request))
            .await
            .map_err(text)?
            .dyn_into()
            .map_err(text)?;
        let body = JsFuture::from(response.text().map_err(text)?)
            .await
            .map_err(text)?
            .as_string()
            .unwrap_or_default();
        if !response.ok() {
            return Err(format!("{} {body}", response.status()));
        }
        serde_json::from_str(&body).map_err(|e| e.to_string())
    }

    pub(super) fn refresh_every_second(
        query: String,
        summary: RwSignal<SummaryView>,
        list: RwSignal<ListView>,
    ) {
        let refresh = move || {
            let query = query.clone();
            leptos::task::spawn_local(async move {
                if let Ok(value) = call("GET", "/_isr/api/summary", None).await {
                    if let Ok(new) = serde_json::from_value::<SummaryView>(value) {
                        summary.set(new);
                    }
                }
                let url = format!("/_isr/api/pages?{query}");
                if let Ok(value) = call("GET", &url, None).await {
                    if let Ok(new) = serde_json::from_value::<ListView>(value) {
                        list.set(new);
                    }
                }
            });
        };
        set_interval(refresh, std::time::Duration::from_millis(super::REFRESH_MS));
    }

    pub(super) fn revalidate(path: String, notice: RwSignal<Option<String>>) {
        leptos::task::spawn_local(async move {
            let body = serde_json::json!({ "paths": [path] }).to_string();
            let message = match call("POST", "/_isr/api/revalidate", Some(body)).await {
                Ok(answer) => {
                    let result = &answer["results"][0];
                    match result["error"].as_str() {
                        Some(error) => format!("{path}: {error}"),
                        None => format!("{path}: {}", result["outcome"].as_str().unwrap_or("?")),
                    }
                }
                Err(error) => format!("{path}: could not revalidate ({error})"),
            };
            notice.set(Some(message));
        });
    }
}

/// Hydrates the dashboard page (called by the page's script from the app's bundle).
#[cfg(feature = "hydrate")]
#[wasm_bindgen::prelude::wasm_bindgen]
pub fn isr_hydrate_dashboard() {
    crate::hydrate::hydrate_view::<DashboardData, _, _>(|props| view! { <Dashboard data=props /> });
}

#[cfg(all(test, feature = "ssr"))]
mod tests {
    use crate::engine::PageState;

    #[test]
    fn the_dashboard_lists_the_same_states_as_the_engine() {
        let names: Vec<&str> = PageState::ALL.iter().map(|s| s.as_str()).collect();
        assert_eq!(names, super::STATES);
    }
}
