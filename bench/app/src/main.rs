//! The benchmark app (see `bench/run`). Tunable with env vars:
//!
//! | env | default | meaning |
//! |---|---|---|
//! | `BENCH_PAGES` | 1000 | pages of `/items/:id` pre-rendered at build (other ids are not found) |
//! | `BENCH_PAGE_BYTES` | 10240 | approximate HTML size of every page |
//! | `BENCH_SLOW_MS` | 2000 | loader delay of `/slow` (revalidate 1 s) and `/slow3` (3 s) |
//! | `BENCH_COLD_MS` | 500 | loader delay of `/cold/:id` (never pre-rendered) |
//! | `BENCH_INSTANCE` | (none) | a name `/slow` and `/cold/:id` show (" from <name>"): which instance rendered them |
//! | `BENCH_DOWN_FILE` | (none) | while this file exists, `/expiring` and `/expiring-strict` fail ("data source down") |
//!
//! Routes: `/page` (static, revalidate 1 h: the HIT path), `/items/:id` (dynamic, pre-rendered),
//! `/slow` (stale every second, slow loader), `/slow3` (the same, stale every 3 s),
//! `/cold/:id` (fallback blocking, tag `cold`), `/expiring` (revalidate 1 s, expire 2 s,
//! stale-if-error 2 s) and `/expiring-strict` (the same without stale-if-error), which show how
//! many times their loader ran.

use isr::prelude::*;
use leptos::prelude::*;
use std::time::Duration;

#[derive(Clone, Serialize, Deserialize)]
pub struct BenchProps {
    title: String,
    paragraphs: Vec<String>,
}

fn env_number(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// " from <BENCH_INSTANCE>", or nothing.
fn rendered_by() -> String {
    std::env::var("BENCH_INSTANCE")
        .map(|name| format!(" from {name}"))
        .unwrap_or_default()
}

/// Props whose rendered page is about `BENCH_PAGE_BYTES` long (the props JSON is embedded too,
/// so the text is half of it).
fn props(title: String) -> BenchProps {
    let target = env_number("BENCH_PAGE_BYTES", 10_240) as usize / 2;
    let sentence = "Incremental static regeneration keeps static speed and fresh content. ";
    let paragraph: String = sentence.repeat(4);
    let count = (target / paragraph.len()).max(1);
    BenchProps {
        title,
        paragraphs: vec![paragraph; count],
    }
}

#[page(path = "/page", revalidate = 3600, view = bench_view)]
async fn static_page() -> isr::Result<Load<BenchProps>> {
    Ok(Load::props(props("Static page".into())))
}

// ANCHOR: params
#[page(path = "/items/:id", revalidate = 3600, view = bench_view, paths = all_items, fallback = "blocking")]
async fn item(params: Params) -> isr::Result<Load<BenchProps>> {
    let id = params.get("id")?;
    // Only the listed ids exist: anything else (a flood of random slugs) is not found.
    match id.parse::<u64>() {
        Ok(n) if n < env_number("BENCH_PAGES", 1000) && n.to_string() == id => {
            Ok(Load::props(props(format!("Item {id}"))))
        }
        _ => Ok(Load::NotFound),
    }
}

async fn all_items() -> isr::Result<Vec<Params>> {
    Ok((0..env_number("BENCH_PAGES", 1000))
        .map(|i| Params::new().with("id", i.to_string()))
        .collect())
}
// ANCHOR_END: params

#[page(path = "/slow", revalidate = 1, view = bench_view, timeout = 60)]
async fn slow() -> isr::Result<Load<BenchProps>> {
    tokio::time::sleep(Duration::from_millis(env_number("BENCH_SLOW_MS", 2000))).await;
    Ok(Load::props(props(format!("Slow page{}", rendered_by()))))
}

/// Like `/slow` with a longer window, so a burst of requests fits in one (the shared-tier
/// tests).
#[page(path = "/slow3", revalidate = 3, view = bench_view, timeout = 60)]
async fn slow3() -> isr::Result<Load<BenchProps>> {
    tokio::time::sleep(Duration::from_millis(env_number("BENCH_SLOW_MS", 2000))).await;
    Ok(Load::props(props(format!("Slow page{}", rendered_by()))))
}

#[page(path = "/cold/:id", revalidate = 3600, view = bench_view, fallback = "blocking", timeout = 60, tags = ["cold"])]
async fn cold(params: Params) -> isr::Result<Load<BenchProps>> {
    tokio::time::sleep(Duration::from_millis(env_number("BENCH_COLD_MS", 500))).await;
    Ok(Load::props(props(format!(
        "Cold {}{}",
        params.get("id")?,
        rendered_by()
    ))))
}

/// Loader runs of the expiring pages, shown in their titles: which version a response is.
static EXPIRING_RUNS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

/// The expiring pages' data: an error while `BENCH_DOWN_FILE` exists.
fn expiring_props(name: &str) -> isr::Result<Load<BenchProps>> {
    if std::env::var_os("BENCH_DOWN_FILE").is_some_and(|file| std::path::Path::new(&file).exists())
    {
        return Err(isr::Error::msg("data source down"));
    }
    let run = EXPIRING_RUNS.fetch_add(1, std::sync::atomic::Ordering::SeqCst) + 1;
    Ok(Load::props(props(format!("{name}, run {run}"))))
}

// ANCHOR: expiring
#[page(path = "/expiring", revalidate = 1, expire = 2, stale_if_error = 2, view = bench_view)]
async fn expiring() -> isr::Result<Load<BenchProps>> {
    expiring_props("Expiring")
}

#[page(path = "/expiring-strict", revalidate = 1, expire = 2, view = bench_view)]
async fn expiring_strict() -> isr::Result<Load<BenchProps>> {
    expiring_props("Strict")
}
// ANCHOR_END: expiring

fn bench_view(props: BenchProps) -> impl IntoView {
    view! {
        <h1>{props.title}</h1>
        {props.paragraphs.into_iter().map(|p| view! { <p>{p}</p> }).collect_view()}
    }
}

fn main() -> std::process::ExitCode {
    isr::App::new("bench").run()
}
