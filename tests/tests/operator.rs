//! The operator API (`/_isr/api/…`, `ISR_ADMIN_TOKEN`) over HTTP against the blog.

use isr_tests::{poll_until, BlogServer, Fixture, POLL_DEADLINE};
use reqwest::Method;
use serde_json::{json, Value};

const TOKEN: &str = "operator-token-0123456789";
const POST: &str = "/blog/what-is-isr";
const SLUG_ROUTE: &str = "/blog/:slug";

fn with_api(fx: &Fixture) -> BlogServer {
    BlogServer::start(fx, &[], &[("ISR_ADMIN_TOKEN", TOKEN)])
}

async fn api(server: &BlogServer, method: Method, path: &str, token: Option<&str>) -> (u16, Value) {
    let mut request = server.request(method, path);
    if let Some(token) = token {
        request = request.header("authorization", format!("Bearer {token}"));
    }
    let resp = server.send(request).await;
    let body = serde_json::from_str(&resp.body)
        .unwrap_or_else(|e| panic!("{path}: not JSON ({e}): {}", resp.body));
    (resp.status, body)
}

async fn get(server: &BlogServer, path: &str) -> Value {
    let (status, body) = api(server, Method::GET, path, Some(TOKEN)).await;
    assert_eq!(status, 200, "{path}: {body}");
    body
}

fn keys(list: &Value) -> Vec<String> {
    list["pages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["key"].as_str().unwrap().to_string())
        .collect()
}

#[tokio::test]
async fn without_a_token_the_api_is_off_and_with_one_it_needs_it() {
    let fx = Fixture::new();
    let off = BlogServer::start(&fx, &[], &[]);
    let (status, body) = api(&off, Method::GET, "/_isr/api/pages", Some(TOKEN)).await;
    assert_eq!(status, 404, "{body}");
    assert!(body["error"].as_str().unwrap().contains("ISR_ADMIN_TOKEN"));
    assert!(off.stderr_text().contains("the operator API is off"));
    drop(off);

    let server = with_api(&fx);
    for path in [
        "/_isr/api/pages",
        "/_isr/api/summary",
        &format!("/_isr/api/pages{POST}"),
    ] {
        assert_eq!(api(&server, Method::GET, path, None).await.0, 401, "{path}");
        assert_eq!(
            api(&server, Method::GET, path, Some("wrong")).await.0,
            401,
            "{path}"
        );
        assert_eq!(
            api(&server, Method::GET, path, Some(TOKEN)).await.0,
            200,
            "{path}"
        );
    }
    let (status, _) = api(&server, Method::POST, "/_isr/api/revalidate", Some("wrong")).await;
    assert_eq!(status, 401);
    let (status, _) = api(&server, Method::GET, "/_isr/api/nope", Some(TOKEN)).await;
    assert_eq!(status, 404);
    let (status, body) = api(
        &server,
        Method::GET,
        "/_isr/api/pages?state=odd",
        Some(TOKEN),
    )
    .await;
    assert_eq!(status, 400, "{body}");
    let (status, _) = api(&server, Method::GET, "/_isr/api/pages?limit=x", Some(TOKEN)).await;
    assert_eq!(status, 400);
}

#[tokio::test]
async fn listing_filters_and_paginates_in_a_stable_order_while_pages_regenerate() {
    let fx = Fixture::new();
    let server = with_api(&fx);
    let all = get(&server, "/_isr/api/pages?limit=500").await;
    let every = keys(&all);
    assert!(every.contains(&"/blog".to_string()) && every.contains(&POST.to_string()));
    let mut sorted = every.clone();
    sorted.sort();
    assert_eq!(every, sorted, "key order");
    assert_eq!(all["matched"], every.len());
    assert!(all["next"].is_null());

    let posts = keys(
        &get(
            &server,
            &format!("/_isr/api/pages?route={SLUG_ROUTE}&limit=500"),
        )
        .await,
    );
    assert_eq!(
        posts.len(),
        every.len() - 2,
        "every page but the list and the feed"
    );
    assert!(posts.iter().all(|k| k.starts_with("/blog/")));
    let tagged = keys(&get(&server, "/_isr/api/pages?tag=posts&limit=500").await);
    assert_eq!(tagged, every, "the list and every post carry `posts`");
    assert_eq!(
        keys(&get(&server, "/_isr/api/pages?q=what-is").await),
        [POST]
    );
    let fresh = get(&server, "/_isr/api/pages?state=fresh&limit=500").await;
    assert!(fresh["pages"]
        .as_array()
        .unwrap()
        .iter()
        .all(|p| p["state"] == "fresh"));

    // One page at a time while every post is being regenerated: each key once, in order.
    let regenerating = {
        let server = &server;
        async move {
            for _ in 0..5 {
                let resp = server
                    .revalidate(&json!({ "mode": "regenerate", "tags": ["posts"] }))
                    .await;
                assert_eq!(resp.status, 200, "{}", resp.body);
            }
        }
    };
    let paginating = async {
        let mut seen = Vec::new();
        let mut after = String::new();
        loop {
            let list = get(&server, &format!("/_isr/api/pages?limit=1&after={after}")).await;
            seen.extend(keys(&list));
            match list["next"].as_str() {
                Some(next) => after = next.to_string(),
                None => return seen,
            }
        }
    };
    let ((), seen) = tokio::join!(regenerating, paginating);
    assert_eq!(seen, every);
}

#[tokio::test]
async fn a_failing_loader_shows_its_error_and_next_attempt() {
    let fx = Fixture::new();
    let server = with_api(&fx);
    let before = get(&server, &format!("/_isr/api/pages{POST}")).await;
    assert_eq!(before["state"], "fresh", "{before}");
    assert_eq!(before["kind"], "page");
    assert_eq!(before["failures"], 0);
    assert_eq!(before["tags"], json!(["posts", "post:what-is-isr"]));
    let encodings = &before["encodings"];
    assert_eq!(encodings["identity"], before["bytes"]);
    assert!(encodings["gzip"].as_u64().unwrap() < encodings["identity"].as_u64().unwrap());
    assert!(encodings["br"].as_u64().unwrap() > 0);

    fx.hide_content();
    let (status, answer) = api(&server, Method::POST, "/_isr/api/revalidate", Some(TOKEN)).await;
    assert_eq!(status, 400, "an empty body is not JSON: {answer}");
    let resp = server
        .send(
            server
                .request(Method::POST, "/_isr/api/revalidate")
                .header("authorization", format!("Bearer {TOKEN}"))
                .body(json!({ "paths": [POST], "mode": "regenerate" }).to_string()),
        )
        .await;
    assert_eq!(resp.status, 200, "{}", resp.body);
    assert!(resp.body.contains(r#""outcome":"error""#), "{}", resp.body);

    let page = get(&server, &format!("/_isr/api/pages{POST}")).await;
    assert_eq!(page["state"], "backing_off", "{page}");
    assert_eq!(page["failures"], 1);
    assert_eq!(page["last"]["outcome"], "error");
    assert_eq!(page["last"]["trigger"], "on_demand");
    assert!(
        !page["last"]["error"].as_str().unwrap().is_empty(),
        "{page}"
    );
    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64;
    assert!(
        page["next_regeneration_ms"].as_u64().unwrap() > now_ms - 1_000,
        "{page}"
    );
    assert_eq!(
        page["generated_at_ms"], before["generated_at_ms"],
        "the old version stays"
    );

    let summary = get(&server, "/_isr/api/summary").await;
    assert_eq!(summary["failing_total"], 1, "{summary}");
    assert_eq!(summary["failing"][0]["key"], POST);
    let posts = summary["routes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["route"] == SLUG_ROUTE)
        .unwrap();
    assert_eq!(posts["states"]["backing_off"], 1, "{posts}");
    // Its caching policy: the blog's posts revalidate after 5 s, no ceiling.
    assert_eq!(posts["revalidate_s"], 5, "{posts}");
    assert_eq!(posts["browser_s"], 0, "{posts}");
    assert!(posts.get("expire_s").is_none(), "{posts}");
    let failing = keys(&get(&server, "/_isr/api/pages?state=backing_off").await);
    assert_eq!(failing, [POST]);

    let s = &server;
    let metrics = poll_until("the page-state gauges", POLL_DEADLINE, || async move {
        let m = s.metrics().await;
        (m.counter("isr_pages_failing", &[]) == 1.0).then_some(m)
    })
    .await;
    assert_eq!(
        metrics.counter(
            "isr_pages",
            &[("route", SLUG_ROUTE), ("state", "backing_off")]
        ),
        1.0
    );
    assert_eq!(
        metrics.counter("isr_pages", &[("route", "/blog"), ("state", "fresh")]),
        1.0
    );
}

#[tokio::test]
async fn the_cli_shows_status_and_pages_and_revalidates_a_running_site() {
    let fx = Fixture::new();
    let server = with_api(&fx);
    let url = server.base_url();
    let token = [("ISR_ADMIN_TOKEN", TOKEN)];

    let status = fx.run(&["status", "--url", &url], &token);
    assert_eq!(status.code(), Some(0), "{}", status.stderr);
    assert!(
        status.stdout.contains(" pages, 0 failing"),
        "{}",
        status.stdout
    );
    let posts_row = status
        .stdout
        .lines()
        .find(|l| l.starts_with("/blog/:slug "))
        .unwrap_or_else(|| panic!("{}", status.stdout));
    assert!(
        posts_row
            .split_whitespace()
            .nth(1)
            .is_some_and(|n| n.parse::<u32>().unwrap() >= 6),
        "{posts_row}"
    );

    let pages = fx.run(
        &["pages", "--url", &url, "--route", SLUG_ROUTE, "--json"],
        &token,
    );
    assert_eq!(pages.code(), Some(0), "{}", pages.stderr);
    let list: Value = serde_json::from_str(&pages.stdout).unwrap();
    assert!(keys(&list).contains(&POST.to_string()));
    assert!(keys(&list).iter().all(|k| k.starts_with("/blog/")));

    let done = fx.run(
        &[
            "revalidate",
            "--url",
            &url,
            POST,
            "--tag",
            "posts",
            "--mode",
            "regenerate",
        ],
        &token,
    );
    assert_eq!(done.code(), Some(0), "{}", done.stderr);
    assert!(
        done.stdout
            .lines()
            .any(|l| l.starts_with(POST) && l.contains("regenerated")),
        "{}",
        done.stdout
    );

    // The purge and wait options reach the API: a hard purge is taken; waiting for the edge
    // needs the site's --cdn-url, and the error says so.
    let hard = fx.run(
        &["revalidate", "--url", &url, POST, "--purge", "hard"],
        &token,
    );
    assert_eq!(hard.code(), Some(0), "{}", hard.stderr);
    let edge = fx.run(
        &["revalidate", "--url", &url, POST, "--wait", "edge"],
        &token,
    );
    assert_ne!(edge.code(), Some(0), "{}", edge.stdout);
    assert!(edge.stderr.contains("--cdn-url"), "{}", edge.stderr);

    fx.hide_content();
    let failed = fx.run(
        &["revalidate", "--url", &url, POST, "--mode", "regenerate"],
        &token,
    );
    assert_eq!(
        failed.code(),
        Some(1),
        "a failed page: exit 1\n{}",
        failed.stdout
    );
    // The page, the step and the cause on one line, no prefix twice.
    assert!(
        failed.stdout.lines().any(|l| l.starts_with(POST)
            && l.contains("error")
            && l.contains("loader: the content folder (BLOG_CONTENT_DIR) is missing")),
        "{}",
        failed.stdout
    );
    assert!(!failed.stdout.contains("error: error"), "{}", failed.stdout);
    assert!(!failed.stderr.contains("error: error"), "{}", failed.stderr);
    let failing = fx.run(&["pages", "--url", &url, "--state", "backing_off"], &token);
    assert!(
        failing
            .stdout
            .lines()
            .nth(1)
            .is_some_and(|l| l.starts_with(POST)),
        "{}",
        failing.stdout
    );
    let status = fx.run(&["status", "--url", &url], &token);
    assert!(
        status.stdout.contains("1 failing") && status.stdout.contains("failing pages"),
        "{}",
        status.stdout
    );

    let no_token = fx.run(&["status", "--url", &url], &[]);
    assert_eq!(no_token.code(), Some(2));
    assert!(
        no_token.stderr.contains("ISR_ADMIN_TOKEN"),
        "{}",
        no_token.stderr
    );
    let wrong = fx.run(&["status", "--url", &url], &[("ISR_ADMIN_TOKEN", "wrong")]);
    assert_eq!(wrong.code(), Some(2));
    assert!(wrong.stderr.contains("401"), "{}", wrong.stderr);
    let bad_url = fx.run(&["status", "--url", "ftp://x"], &token);
    assert_eq!(bad_url.code(), Some(2));
    assert!(
        bad_url.stderr.contains("--url / ISR_URL"),
        "{}",
        bad_url.stderr
    );
}

#[tokio::test]
async fn the_dashboard_logs_in_with_a_cookie_and_refuses_cross_site_changes() {
    let fx = Fixture::new();
    let off = BlogServer::start(&fx, &[], &[]);
    assert_eq!(off.get("/_isr/").await.status, 404);
    drop(off);
    let server = with_api(&fx);
    let login_form = server.get("/_isr/").await;
    assert_eq!(login_form.status, 200);
    assert!(
        login_form.body.contains("action=\"/_isr/login\""),
        "{}",
        login_form.body
    );
    assert_eq!(login_form.header("cache-control"), Some("no-store"));

    let login = |token: &str, origin: Option<&str>| {
        let mut request = server
            .request(Method::POST, "/_isr/login")
            .header("content-type", "application/x-www-form-urlencoded")
            .body(format!("token={token}"));
        if let Some(origin) = origin {
            request = request.header("origin", origin);
        }
        server.send(request)
    };
    assert_eq!(login("wrong", None).await.status, 401);
    assert_eq!(login(TOKEN, Some("http://evil.example")).await.status, 403);
    let own = server.base_url();
    let ok = login(TOKEN, Some(&own)).await;
    assert_eq!(ok.status, 303);
    let cookie_header = ok.header("set-cookie").unwrap().to_string();
    for part in ["HttpOnly", "SameSite=Strict", "Path=/_isr"] {
        assert!(cookie_header.contains(part), "{cookie_header}");
    }
    assert!(
        !cookie_header.contains(TOKEN),
        "the cookie never holds the token"
    );
    let cookie = cookie_header.split(';').next().unwrap().to_string();

    // The page itself, rendered on the server with the pages table.
    let page = server
        .send(
            server
                .request(Method::GET, "/_isr/?q=what-is")
                .header("cookie", &cookie),
        )
        .await;
    assert_eq!(page.status, 200);
    assert!(
        page.body.contains(&format!("data-key=\"{POST}\"")),
        "{}",
        page.body
    );
    assert!(page.body.contains("id=\"isr-routes\""));
    // Reading the API with the cookie works; changing needs the dashboard's own origin.
    let read = server
        .send(
            server
                .request(Method::GET, "/_isr/api/summary")
                .header("cookie", &cookie),
        )
        .await;
    assert_eq!(read.status, 200);
    let revalidate = |extra: Option<(&'static str, String)>| {
        let mut request = server
            .request(Method::POST, "/_isr/api/revalidate")
            .header("cookie", &cookie)
            .body(json!({ "paths": [POST] }).to_string());
        if let Some((name, value)) = extra {
            request = request.header(name, value);
        }
        server.send(request)
    };
    assert_eq!(revalidate(None).await.status, 401, "cookie alone");
    assert_eq!(
        revalidate(Some(("origin", "http://evil.example".into())))
            .await
            .status,
        401
    );
    assert_eq!(
        revalidate(Some(("x-isr-dashboard", "1".into())))
            .await
            .status,
        200
    );
    assert_eq!(revalidate(Some(("origin", own.clone()))).await.status, 200);

    // The page's forms work without JavaScript.
    let action = |origin: Option<&str>| {
        let mut request = server
            .request(Method::POST, "/_isr/actions/revalidate")
            .header("cookie", &cookie)
            .header("content-type", "application/x-www-form-urlencoded")
            .body(format!("path={POST}"));
        if let Some(origin) = origin {
            request = request.header("origin", origin);
        }
        server.send(request)
    };
    assert_eq!(action(None).await.status, 403);
    let done = action(Some(&own)).await;
    assert_eq!(done.status, 303);
    assert_eq!(
        done.header("location"),
        Some("/_isr/"),
        "no message travels in the link"
    );
    let by_tag = server
        .send(
            server
                .request(Method::POST, "/_isr/actions/revalidate")
                .header("cookie", &cookie)
                .header("origin", &own)
                .header("content-type", "application/x-www-form-urlencoded")
                .body("tag=posts&mode=regenerate"),
        )
        .await;
    assert_eq!(by_tag.header("location"), Some("/_isr/"));
    // The notice (kept in the session) shows once, beside the filters of the next page.
    let dashboard = |path: &'static str| {
        server.send(server.request(Method::GET, path).header("cookie", &cookie))
    };
    // The live script's refresh (`x-isr-dashboard`) leaves the notice for the page load.
    let refreshed = server
        .send(
            server
                .request(Method::GET, "/_isr/?q=what-is")
                .header("cookie", &cookie)
                .header("x-isr-dashboard", "1"),
        )
        .await;
    assert_eq!(refreshed.status, 200);
    assert!(
        !refreshed.body.contains("posts (regenerate)"),
        "{}",
        refreshed.body
    );
    let noticed = dashboard("/_isr/?q=what-is").await;
    assert!(
        noticed
            .body
            .contains("class=\"notice\">posts (regenerate): 9 pages: 8 regenerated, 1 not found"),
        "{}",
        noticed.body
    );
    assert!(noticed.body.contains(&format!("data-key=\"{POST}\"")));
    assert!(
        !noticed.body.contains("data-key=\"/blog\""),
        "filtered by q"
    );
    let again = dashboard("/_isr/?q=what-is").await;
    assert!(
        again.body.contains("<p id=\"isr-notice\" hidden") && !again.body.contains("revalidated"),
        "shown once: {}",
        again.body
    );
    // The form's purge and wait selectors reach the revalidation: waiting for the edge needs
    // the site's --cdn-url, and the notice says so.
    let edge = server
        .send(
            server
                .request(Method::POST, "/_isr/actions/revalidate")
                .header("cookie", &cookie)
                .header("origin", &own)
                .header("content-type", "application/x-www-form-urlencoded")
                .body(format!("path={POST}&mode=regenerate&purge=hard&wait=edge")),
        )
        .await;
    assert_eq!(edge.status, 303);
    let noticed = dashboard("/_isr/").await;
    assert!(
        noticed
            .body
            .contains("1 pages: 1 regenerated; the edge was not asked: the site has no --cdn-url"),
        "{}",
        noticed.body
    );
    assert!(noticed.body.contains("name=\"wait\""), "the form offers it");
    // A link cannot make the dashboard say anything.
    let forged =
        dashboard("/_isr/?notice=Your%20session%20expired%2C%20log%20in%20at%20evil.example").await;
    assert_eq!(forged.status, 200);
    assert!(!forged.body.contains("evil.example"), "{}", forged.body);

    // Logging out needs the dashboard's own origin too, and ends the session on the server.
    let logout = |origin: Option<&str>| {
        let mut request = server
            .request(Method::POST, "/_isr/logout")
            .header("cookie", &cookie);
        if let Some(origin) = origin {
            request = request.header("origin", origin);
        }
        server.send(request)
    };
    assert_eq!(logout(Some("http://evil.example")).await.status, 403);
    assert_eq!(
        dashboard("/_isr/api/summary").await.status,
        200,
        "still logged in"
    );
    let out = logout(Some(&own)).await;
    assert_eq!(out.status, 303);
    assert!(out.header("set-cookie").unwrap().contains("Max-Age=0"));
    assert_eq!(
        dashboard("/_isr/api/summary").await.status,
        401,
        "the old cookie is dead, not only cleared"
    );
}
