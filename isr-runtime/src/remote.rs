//! The `status`, `pages` and `revalidate` subcommands: a client of a running site's operator
//! API ([`crate::server::admin`]) over plain HTTP, with the token from `ISR_ADMIN_TOKEN`.
//! Prints aligned tables, or the API's JSON with `--json`.
//!
//! The tables are formatted here (a few lines) rather than with a table crate: the columns are
//! plain text and the widths are all that is needed.

use crate::dashboard::encode;
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::{connect::HttpConnector, Client};
use hyper_util::rt::TokioExecutor;
use serde_json::Value;
use std::process::ExitCode;
use std::time::Duration;

/// How long one API call may take (a revalidation waits for its pages).
const CALL_TIMEOUT: Duration = Duration::from_secs(120);

/// Which call to make.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum RemoteCommand {
    Status,
    Pages {
        state: Option<String>,
        route: Option<String>,
        tag: Option<String>,
        search: Option<String>,
        limit: Option<usize>,
    },
    Revalidate {
        paths: Vec<String>,
        tags: Vec<String>,
        /// `auto`, `regenerate`, `stale` or `expire`; `None`: the API's default (`auto`).
        mode: Option<String>,
        /// `soft` or `hard`; `None`: the API's default (`soft`).
        purge: Option<String>,
        /// `origin` or `edge`; `None`: the API's default (`origin`).
        wait: Option<String>,
    },
}

/// Where the site is and how to print.
pub(crate) struct Remote {
    /// `http://host:port`, without a trailing slash.
    pub base: String,
    pub token: String,
    pub json: bool,
}

/// Why a call failed, and the exit code it gives.
struct Failure {
    message: String,
    code: u8,
}

/// Runs `command` against `remote`; prints its answer or one error line.
pub(crate) async fn run(remote: Remote, command: RemoteCommand) -> ExitCode {
    match execute(&remote, &command).await {
        Ok(text) => {
            print!("{text}");
            ExitCode::SUCCESS
        }
        Err(failure) => {
            eprintln!("error: {}", failure.message);
            ExitCode::from(failure.code)
        }
    }
}

async fn execute(remote: &Remote, command: &RemoteCommand) -> Result<String, Failure> {
    match command {
        RemoteCommand::Status => {
            let summary = call(remote, "GET", "/_isr/api/summary", None).await?;
            Ok(if remote.json {
                json_text(&summary)
            } else {
                status_text(&summary)
            })
        }
        RemoteCommand::Pages {
            state,
            route,
            tag,
            search,
            limit,
        } => {
            let mut query = vec![format!("limit={}", limit.unwrap_or(50))];
            for (name, value) in [
                ("state", state),
                ("route", route),
                ("tag", tag),
                ("q", search),
            ] {
                if let Some(value) = value {
                    query.push(format!("{name}={}", encode(value)));
                }
            }
            let list = call(
                remote,
                "GET",
                &format!("/_isr/api/pages?{}", query.join("&")),
                None,
            )
            .await?;
            Ok(if remote.json {
                json_text(&list)
            } else {
                pages_text(&list)
            })
        }
        RemoteCommand::Revalidate {
            paths,
            tags,
            mode,
            purge,
            wait,
        } => {
            let mut body = serde_json::json!({ "paths": paths, "tags": tags });
            for (field, value) in [("mode", mode), ("purge", purge), ("wait", wait)] {
                if let Some(value) = value {
                    body[field] = value.as_str().into();
                }
            }
            let answer = call(remote, "POST", "/_isr/api/revalidate", Some(body)).await?;
            let failed = answer["results"]
                .as_array()
                .is_some_and(|r| r.iter().any(|r| r["outcome"] == "error"));
            let text = if remote.json {
                json_text(&answer)
            } else {
                revalidate_text(&answer)
            };
            if failed {
                print!("{text}");
                return Err(Failure {
                    message: "some pages could not be regenerated (their old version stays)".into(),
                    code: 1,
                });
            }
            Ok(text)
        }
    }
}

/// One API call; its JSON answer when the status is 2xx.
async fn call(
    remote: &Remote,
    method: &str,
    path: &str,
    body: Option<Value>,
) -> Result<Value, Failure> {
    let url = format!("{}{path}", remote.base);
    let mut connector = HttpConnector::new();
    connector.set_connect_timeout(Some(Duration::from_secs(5)));
    let client: Client<_, Full<Bytes>> = Client::builder(TokioExecutor::new()).build(connector);
    let request = axum::http::Request::builder()
        .method(method)
        .uri(&url)
        .header("authorization", format!("Bearer {}", remote.token))
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from(
            body.map(|b| b.to_string()).unwrap_or_default(),
        )))
        .map_err(|e| Failure {
            message: format!("invalid URL {url}: {e}"),
            code: 2,
        })?;
    let unreachable = |e: String| Failure {
        message: format!("cannot reach {}: {e}", remote.base),
        code: 1,
    };
    let response = tokio::time::timeout(CALL_TIMEOUT, client.request(request))
        .await
        .map_err(|_| unreachable(format!("no answer in {} s", CALL_TIMEOUT.as_secs())))?
        .map_err(|e| unreachable(e.to_string()))?;
    let status = response.status();
    let bytes = response
        .into_body()
        .collect()
        .await
        .map_err(|e| unreachable(e.to_string()))?
        .to_bytes();
    let value: Value = serde_json::from_slice(&bytes)
        .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into_owned()));
    let reason = value["error"].as_str().unwrap_or_default().to_string();
    match status.as_u16() {
        200..=299 => Ok(value),
        401 => Err(Failure {
            message: format!("{} refused the token in ISR_ADMIN_TOKEN (401)", remote.base),
            code: 2,
        }),
        404 if reason.contains("ISR_ADMIN_TOKEN") => Err(Failure {
            message: format!(
                "the operator API of {} is off: start it with ISR_ADMIN_TOKEN set",
                remote.base
            ),
            code: 2,
        }),
        code => Err(Failure {
            message: format!("{method} {path} answered {code}: {reason}"),
            code: if (400..500).contains(&code) { 2 } else { 1 },
        }),
    }
}

fn json_text(value: &Value) -> String {
    format!(
        "{}\n",
        serde_json::to_string_pretty(value).unwrap_or_default()
    )
}

/// Left-aligned columns, two spaces apart.
///
/// ```text
/// path         state  age
/// /blog        fresh  3 s
/// ```
fn table(header: &[&str], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
    for row in rows {
        for (i, cell) in row.iter().enumerate() {
            widths[i] = widths[i].max(cell.chars().count());
        }
    }
    let line = |cells: Vec<&str>| {
        let mut text = String::new();
        for (i, cell) in cells.iter().enumerate() {
            if i + 1 == cells.len() {
                text.push_str(cell);
            } else {
                let pad = widths[i] - cell.chars().count() + 2;
                text.push_str(cell);
                text.extend(std::iter::repeat_n(' ', pad));
            }
        }
        text.trim_end().to_string() + "\n"
    };
    let mut text = line(header.to_vec());
    for row in rows {
        text.push_str(&line(row.iter().map(String::as_str).collect()));
    }
    text
}

fn number(value: &Value) -> String {
    value.as_u64().map_or_else(|| "-".into(), |n| n.to_string())
}

fn seconds(value: &Value) -> String {
    value
        .as_u64()
        .map_or_else(|| "-".into(), |n| format!("{n} s"))
}

/// "in 12 s" for a wall time (ms) in the future.
fn from_now(value: &Value) -> String {
    let Some(at) = value.as_u64() else {
        return "-".into();
    };
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64);
    format!("in {} s", at.saturating_sub(now).div_ceil(1000))
}

fn last_error(page: &Value) -> String {
    let error = page["last"]["error"].as_str().unwrap_or("-");
    let first_line = error.lines().next().unwrap_or("-");
    match first_line.char_indices().nth(80) {
        Some((cut, _)) => format!("{}…", &first_line[..cut]),
        None => first_line.to_string(),
    }
}

fn status_text(summary: &Value) -> String {
    let states = crate::dashboard::STATES;
    let unknown = match summary["unknown_failing"].as_u64() {
        Some(n) if n > 0 => format!(" (and {n} requested paths that are no page of the site)"),
        _ => String::new(),
    };
    let mut text = format!(
        "{} pages{}, {} failing{unknown}, oldest stale page: {}\n\n",
        number(&summary["pages"]),
        if summary["loaded"] == false {
            " (index still loading)"
        } else {
            ""
        },
        number(&summary["failing_total"]),
        seconds(&summary["oldest_stale_s"]),
    );
    let mut header = vec!["route", "pages"];
    header.extend(states);
    header.push("bytes");
    let rows: Vec<Vec<String>> = summary["routes"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|route| {
            let mut row = vec![
                route["route"].as_str().unwrap_or("?").to_string(),
                number(&route["pages"]),
            ];
            row.extend(
                states
                    .iter()
                    .map(|s| route["states"][*s].as_u64().unwrap_or(0).to_string()),
            );
            row.push(number(&route["bytes"]));
            row
        })
        .collect();
    text.push_str(&table(&header, &rows));
    let failing = summary["failing"].as_array().cloned().unwrap_or_default();
    if !failing.is_empty() {
        text.push_str("\nfailing pages\n");
        let rows: Vec<Vec<String>> = failing
            .iter()
            .map(|page| {
                vec![
                    page["path"].as_str().unwrap_or("?").to_string(),
                    page["state"].as_str().unwrap_or("?").to_string(),
                    number(&page["failures"]),
                    from_now(&page["next_regeneration_ms"]),
                    last_error(page),
                ]
            })
            .collect();
        text.push_str(&table(
            &["path", "state", "failures", "next attempt", "last error"],
            &rows,
        ));
    }
    text
}

fn pages_text(list: &Value) -> String {
    let pages = list["pages"].as_array().cloned().unwrap_or_default();
    let rows: Vec<Vec<String>> = pages
        .iter()
        .map(|page| {
            vec![
                page["path"].as_str().unwrap_or("?").to_string(),
                page["state"].as_str().unwrap_or("?").to_string(),
                seconds(&page["age_s"]),
                number(&page["failures"]),
                page["last"]["outcome"].as_str().unwrap_or("-").to_string(),
                last_error(page),
            ]
        })
        .collect();
    let mut text = table(
        &["path", "state", "age", "failures", "last run", "last error"],
        &rows,
    );
    let matched = list["matched"].as_u64().unwrap_or(0);
    if matched > pages.len() as u64 {
        text.push_str(&format!(
            "… {} of {matched} pages shown (--limit, up to 500)\n",
            pages.len()
        ));
    }
    text
}

fn revalidate_text(answer: &Value) -> String {
    if let Some(accepted) = answer["accepted"].as_u64() {
        return format!("{accepted} pages accepted: they are regenerated in the background\n");
    }
    let rows: Vec<Vec<String>> = answer["results"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|r| {
            vec![
                r["path"].as_str().unwrap_or("?").to_string(),
                r["outcome"].as_str().unwrap_or("?").to_string(),
                r["error"].as_str().unwrap_or("").to_string(),
            ]
        })
        .collect();
    let mut text = table(&["path", "outcome", "error"], &rows);
    if let Some(counts) = answer["counts"].as_object().filter(|c| !c.is_empty()) {
        let counts: Vec<String> = counts
            .iter()
            .map(|(outcome, n)| format!("{n} {}", outcome.replace('_', " ")))
            .collect();
        text.push_str(&counts.join(", "));
        text.push('\n');
    }
    if let Some(edge) = answer.get("edge") {
        let live = edge["live"].as_array().map_or(0, Vec::len);
        let slowest = edge["live"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|l| l["seconds"].as_f64())
            .fold(0.0, f64::max);
        text.push_str(&format!("edge: {live} live (slowest {slowest:.3} s)"));
        let missed: Vec<&str> = edge["missed"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
            .collect();
        if !missed.is_empty() {
            text.push_str(&format!(
                ", not served new within {} s: {}",
                edge["deadline_seconds"],
                missed.join(" ")
            ));
        }
        text.push('\n');
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn tables_align_their_columns() {
        let text = table(
            &["path", "state"],
            &[
                vec!["/blog".into(), "fresh".into()],
                vec!["/".into(), "stale".into()],
            ],
        );
        assert_eq!(text, "path   state\n/blog  fresh\n/      stale\n");
    }

    #[test]
    fn status_lists_routes_and_failing_pages() {
        let summary = json!({
            "pages": 7, "loaded": true, "failing_total": 1, "oldest_stale_s": 12,
            "routes": [{"route": "/blog/:slug", "pages": 6, "states": {"fresh": 5, "backing_off": 1}, "bytes": 26000}],
            "failing": [{"path": "/blog/x", "state": "backing_off", "failures": 2, "last": {"error": "no such file\nmore"}}],
        });
        let text = status_text(&summary);
        assert!(
            text.starts_with("7 pages, 1 failing, oldest stale page: 12 s\n"),
            "{text}"
        );
        assert!(text.contains("/blog/:slug  6      5      0"), "{text}");
        assert!(
            text.contains("/blog/x  backing_off  2         -             no such file\n"),
            "{text}"
        );
    }
}
