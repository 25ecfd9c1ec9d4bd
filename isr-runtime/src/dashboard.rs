//! The operator dashboard at `/_isr/`: a leptos view rendered on the server from the engine's
//! state, kept live in the browser by one small inline script ([`LIVE_SCRIPT`]), not by the
//! app's client bundle: none of its code is in the app's wasm. Without JavaScript its forms
//! still work: the filters are a GET form, the revalidate buttons POST forms. With it, the page
//! refreshes itself every second and revalidates a page without leaving it.
//!
//! The types here mirror the API's JSON (`/_isr/api/summary`, `/_isr/api/pages`) with the
//! fields the page shows; unknown fields are ignored, so the API may grow.

use leptos::prelude::*;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// How often the dashboard refreshes in the browser, in milliseconds (the interval of
/// [`LIVE_SCRIPT`]).
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
    /// Its window in seconds; `None`: on demand only.
    #[serde(default)]
    pub revalidate_s: Option<u64>,
    /// Its `expire`, in seconds.
    #[serde(default)]
    pub expire_s: Option<u64>,
    /// Its `stale_if_error`, in seconds.
    #[serde(default)]
    pub stale_if_error_s: Option<u64>,
    /// How long browsers may reuse its pages, in seconds.
    #[serde(default)]
    pub browser_s: u64,
}

impl RouteRow {
    /// The route's caching policy in a few words.
    ///
    /// ```
    /// let row = isr::dashboard::RouteRow { revalidate_s: Some(60), expire_s: Some(600), stale_if_error_s: Some(3600), ..Default::default() };
    /// assert_eq!(row.policy(), "revalidate 60 s, expire 600 s, stale-if-error 3600 s");
    /// let row = isr::dashboard::RouteRow { browser_s: 10, ..Default::default() };
    /// assert_eq!(row.policy(), "on demand, browsers 10 s");
    /// ```
    pub fn policy(&self) -> String {
        let mut parts = vec![match self.revalidate_s {
            Some(seconds) => format!("revalidate {seconds} s"),
            None => "on demand".to_string(),
        }];
        if let Some(seconds) = self.expire_s {
            parts.push(format!("expire {seconds} s"));
        }
        if let Some(seconds) = self.stale_if_error_s {
            parts.push(format!("stale-if-error {seconds} s"));
        }
        if self.browser_s > 0 {
            parts.push(format!("browsers {} s", self.browser_s));
        }
        parts.join(", ")
    }
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
    /// When the stored version expires (its `expire` or its loader's `valid_until`, the
    /// sooner), in ms since the Unix epoch; `None`: never by time.
    #[serde(default)]
    pub expires_at_ms: Option<u64>,
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

/// Everything the dashboard renders from.
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
pub const STATES: [&str; 7] = [
    "fresh",
    "stale",
    "expired",
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
.state-stale,.state-expired{color:#8a5a00}.state-regenerating{color:#0054a6}.error{color:#a00;max-width:32rem}\
form.inline{display:inline}input,select,button{font:inherit;margin-right:.4rem}\
.notice{background:#eef7ee;padding:.5rem .8rem}";

/// The dashboard (see the module docs): static HTML, rendered on the server for each request.
/// [`LIVE_SCRIPT`] keeps it current in the browser.
#[component]
pub fn Dashboard(
    /// What to render, read from the engine.
    data: DashboardData,
) -> impl IntoView {
    let DashboardData {
        summary,
        list,
        filters,
        notice,
    } = data;
    let oldest = summary
        .oldest_stale_s
        .map_or("none".to_string(), |a| format!("{a} s"));
    let unknown = if summary.unknown_failing > 0 {
        format!(
            " (and {} requested paths that are no page of the site)",
            summary.unknown_failing
        )
    } else {
        String::new()
    };
    let next_link = list.next.clone().map(|after| {
        let query = Filters {
            after,
            ..filters.clone()
        }
        .query();
        view! { <a id="isr-next" href=format!("/_isr/?{query}")>"next pages →"</a> }
    });
    view! {
        <style>{STYLE}</style>
        <main id="isr-dashboard">
            <h1>"Pages"</h1>
            <form method="post" action="/_isr/logout" class="inline">
                <button type="submit">"Log out"</button>
            </form>
            <p id="isr-notice" class="notice" hidden=notice.is_none()>{notice.clone()}</p>
            <p id="isr-summary">
                {format!(
                    "{} pages, {} failing{unknown}, oldest stale page: {oldest}",
                    summary.pages,
                    summary.failing_total,
                )}
            </p>
            <table id="isr-routes">
                <thead>
                    <tr>
                        <th>"route"</th>
                        <th>"pages"</th>
                        {STATES.iter().map(|s| view! { <th>{s.replace('_', " ")}</th> }).collect_view()}
                        <th>"bytes"</th>
                        <th>"policy"</th>
                        <th></th>
                    </tr>
                </thead>
                <tbody>
                    {summary.routes.into_iter().map(route_row).collect_view()}
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
                {mode_select(crate::revalidate::InvalidationMode::Auto)}
                <button type="submit">"Revalidate tag"</button>
            </form>
            <p id="isr-matched">{format!("{} matching pages", list.matched)}</p>
            <table id="isr-pages">
                <thead>
                    <tr>
                        <th>"path"</th>
                        <th>"state"</th>
                        <th>"generated (UTC)"</th>
                        <th>"age"</th>
                        <th>"expires (UTC)"</th>
                        <th>"failures"</th>
                        <th>"last run"</th>
                        <th>"last error"</th>
                        <th>"tags"</th>
                        <th></th>
                    </tr>
                </thead>
                <tbody>
                    {list.pages.into_iter().map(page_row).collect_view()}
                </tbody>
            </table>
            <p id="isr-more">{next_link}</p>
        </main>
    }
}

fn route_row(r: RouteRow) -> impl IntoView {
    let route = r.route.clone();
    let policy = r.policy();
    view! {
        <tr>
            <td>{r.route}</td>
            <td>{r.pages}</td>
            {STATES
                .iter()
                .map(|s| view! { <td>{r.states.get(*s).copied().unwrap_or(0)}</td> })
                .collect_view()}
            <td>{r.bytes}</td>
            <td>{policy}</td>
            <td>
                <form method="post" action="/_isr/actions/revalidate" class="inline">
                    <input type="hidden" name="route" value=route />
                    {mode_select(crate::revalidate::InvalidationMode::Auto)}
                    <button type="submit">"Revalidate route"</button>
                </form>
            </td>
        </tr>
    }
}

/// The options of a revalidate form: the invalidation mode (`selected` chosen: regenerate
/// now, mark stale, mark expired, or auto: regenerate what was requested lately, mark the rest
/// stale), soft or hard CDN purges, and whether the notice waits for the CDN to serve the new
/// pages (`--cdn-url`).
fn mode_select(selected: crate::revalidate::InvalidationMode) -> impl IntoView {
    view! {
        <select name="mode" title="invalidation mode">
            {crate::revalidate::InvalidationMode::ALL
                .iter()
                .map(|mode| view! { <option value=mode.as_str() selected=*mode == selected>{mode.as_str()}</option> })
                .collect_view()}
        </select>
        <select name="purge" title="CDN purge: soft (served while refetched) or hard">
            <option value="soft" selected=true>"soft purge"</option>
            <option value="hard">"hard purge"</option>
        </select>
        <select name="wait" title="answer when isr has the pages, or when the CDN serves them">
            <option value="origin" selected=true>"wait: origin"</option>
            <option value="edge">"wait: edge"</option>
        </select>
    }
}

fn page_row(page: PageRow) -> impl IntoView {
    let last = page.last.clone().unwrap_or_default();
    let state_class = format!("state state-{}", page.state);
    let generated = page.generated_at_ms.map(utc).unwrap_or_else(|| "-".into());
    let age = page
        .age_s
        .map(|a| format!("{a} s"))
        .unwrap_or_else(|| "-".into());
    let expires = page.expires_at_ms.map(utc).unwrap_or_else(|| "-".into());
    let error = last.error.clone().unwrap_or_default();
    let run = match (&last.outcome[..], &last.instance) {
        ("", _) => "-".to_string(),
        (outcome, Some(instance)) => format!("{outcome} ({}) by {instance}", last.trigger),
        (outcome, None) => format!("{outcome} ({})", last.trigger),
    };
    view! {
        <tr data-key=page.key.clone()>
            <td class="path"><a href=page.path.clone()>{page.path.clone()}</a></td>
            <td class=state_class>{page.state.replace('_', " ")}</td>
            <td class="generated" data-ms=page.generated_at_ms.unwrap_or(0)>{generated}</td>
            <td>{age}</td>
            <td>{expires}</td>
            <td>{page.failures}</td>
            <td>{run}</td>
            <td class="error">{error}</td>
            <td>{page.tags.join(" ")}</td>
            <td>
                <form method="post" action="/_isr/actions/revalidate" class="inline revalidate">
                    <input type="hidden" name="path" value=page.path />
                    {mode_select(crate::revalidate::InvalidationMode::Regenerate)}
                    <button type="submit">"Revalidate"</button>
                </form>
            </td>
        </tr>
    }
}

/// The dashboard's only script (inline, allowed by its hash; no client bundle needed, so the
/// dashboard of an app without one is live too). Every [`REFRESH_MS`] it fetches the same
/// URL and brings the summary, the tables, the match count and the next link up to date in
/// place: a node that did not change is kept (a button being clicked, a field being typed in
/// stay), a changed one is replaced. A page's "Revalidate" posts to `/_isr/api/revalidate`
/// in the mode its form names (`regenerate` unless changed)
/// (with the session cookie and the `x-isr-dashboard` header the API asks of a browser) and
/// shows the outcome in the notice without leaving the page. Without JavaScript the forms
/// post and the page reloads.
pub const LIVE_SCRIPT: &str = "const parts = ['isr-summary', 'isr-routes', 'isr-matched', 'isr-pages', 'isr-more']; \
const same = (a, b) => a.nodeType === 1 && a.nodeName === b.nodeName && a.childNodes.length === b.childNodes.length; \
const morph = (a, b) => { if (a.isEqualNode(b)) return; if (!same(a, b)) { a.replaceWith(b); return; } \
for (const { name, value } of b.attributes) if (a.getAttribute(name) !== value) a.setAttribute(name, value); \
for (const { name } of [...a.attributes]) if (!b.hasAttribute(name)) a.removeAttribute(name); \
const news = [...b.childNodes]; [...a.childNodes].forEach((child, i) => morph(child, news[i])); }; \
const refresh = async () => { try { \
const answer = await fetch(location.pathname + location.search, { credentials: 'same-origin', headers: { 'x-isr-dashboard': '1' } }); \
if (!answer.ok) return; \
const fresh = new DOMParser().parseFromString(await answer.text(), 'text/html'); \
for (const id of parts) { const now = fresh.getElementById(id), old = document.getElementById(id); if (now && old) morph(old, now); } \
} catch (_) {} }; \
const notice = (text) => { const p = document.getElementById('isr-notice'); p.textContent = text; p.hidden = false; }; \
document.addEventListener('submit', async (event) => { \
const form = event.target; if (!form.matches('form.revalidate')) return; event.preventDefault(); \
const path = form.elements.path.value; const mode = form.elements.mode.value; \
try { \
const answer = await fetch('/_isr/api/revalidate', { method: 'POST', credentials: 'same-origin', \
headers: { 'content-type': 'application/json', 'x-isr-dashboard': '1' }, body: JSON.stringify({ paths: [path], mode }) }); \
const body = await answer.text(); \
if (!answer.ok) { notice(`${path}: could not revalidate (${answer.status} ${body})`); return; } \
const result = JSON.parse(body).results[0]; \
notice(`${path}: ${result.error ?? result.outcome}`); \
} catch (error) { notice(`${path}: could not revalidate (${error})`); } \
refresh(); }); \
setInterval(refresh, 1000);";

#[cfg(all(test, feature = "ssr"))]
mod tests {
    use crate::engine::PageState;

    #[test]
    fn the_live_script_refreshes_at_the_documented_interval() {
        assert!(
            super::LIVE_SCRIPT.ends_with(&format!("setInterval(refresh, {});", super::REFRESH_MS))
        );
    }

    #[test]
    fn the_dashboard_lists_the_same_states_as_the_engine() {
        let names: Vec<&str> = PageState::ALL.iter().map(|s| s.as_str()).collect();
        assert_eq!(names, super::STATES);
    }
}
