//! The findings of the black-box security probe, each reproduced over loopback HTTP against
//! the blog: operator sessions, failed authentications, request heads, metrics, on-demand
//! storms, log injection, `Host` and `X-Forwarded-*`, the failing view, and the headers of
//! isr's own pages. (A page title that runs as script is `xss_browser.rs`, in chromium.)

use isr_tests::{poll_until, rss, BlogServer, Fixture, Metrics, POLL_DEADLINE};
use reqwest::Method;
use serde_json::json;
use std::net::{IpAddr, Ipv4Addr};
use std::time::{Duration, Instant};
use tokio::io::AsyncWriteExt;

const TOKEN: &str = "operator-token-0123456789";

fn with_admin(fx: &Fixture, args: &[&str]) -> BlogServer {
    BlogServer::start(fx, args, &[("ISR_ADMIN_TOKEN", TOKEN)])
}

/// A client whose requests come from another loopback address (another "client address" to
/// the server's per-address limits).
fn client_from(ip: Ipv4Addr) -> reqwest::Client {
    reqwest::Client::builder()
        .local_address(IpAddr::V4(ip))
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(20))
        .build()
        .unwrap()
}

/// Logs in through the form (from the dashboard's own origin, `origin`) and returns the
/// `Set-Cookie` header.
async fn login(server: &BlogServer, origin: &str, extra: &[(&str, &str)]) -> String {
    let mut request = server
        .request(Method::POST, "/_isr/login")
        .header("content-type", "application/x-www-form-urlencoded")
        .header("origin", origin)
        .body(format!("token={TOKEN}"));
    for (name, value) in extra {
        request = request.header(*name, *value);
    }
    let answer = server.send(request).await;
    assert_eq!(answer.status, 303, "{}", answer.body);
    answer.header("set-cookie").unwrap().to_string()
}

fn cookie_pair(set_cookie: &str) -> String {
    set_cookie.split(';').next().unwrap().to_string()
}

async fn summary_with(server: &BlogServer, cookie: &str) -> u16 {
    server
        .send(
            server
                .request(Method::GET, "/_isr/api/summary")
                .header("cookie", cookie),
        )
        .await
        .status
}

/// Finding 2: the session cookie was `sha256("isr-dashboard-session\0" + token)`: the same on
/// every login and instance, valid after logout and after restarts, without `Secure`.
#[tokio::test]
async fn operator_sessions_are_random_server_side_and_end_when_they_should() {
    let fx = Fixture::new();
    let server = with_admin(&fx, &[]);
    let own = server.base_url();
    let first = login(&server, &own, &[]).await;
    let second = login(&server, &own, &[]).await;
    let (a, b) = (cookie_pair(&first), cookie_pair(&second));
    assert_ne!(a, b, "every login gets its own random session id");
    assert!(
        !first.contains(TOKEN) && !first.contains("Secure"),
        "{first}"
    );
    assert!(first.contains("Max-Age=43200"), "{first}");
    assert_eq!(summary_with(&server, &a).await, 200);
    assert_eq!(summary_with(&server, &b).await, 200);

    let logout = server
        .send(
            server
                .request(Method::POST, "/_isr/logout")
                .header("cookie", &a)
                .header("origin", &own),
        )
        .await;
    assert_eq!(logout.status, 303);
    assert_eq!(summary_with(&server, &a).await, 401, "revoked on logout");
    assert_eq!(
        summary_with(&server, &b).await,
        200,
        "other sessions live on"
    );

    // A restart (which a token change needs) ends every session.
    drop(server);
    let server = with_admin(&fx, &["serve"]);
    assert_eq!(summary_with(&server, &b).await, 401, "gone after restart");

    // Served over https (a trusted proxy says so, or the public URL is https): `Secure`.
    let via_proxy = login(
        &server,
        &server.base_url(),
        &[("x-forwarded-proto", "https")],
    )
    .await;
    assert!(
        !via_proxy.contains("Secure"),
        "X-Forwarded-Proto from an untrusted client is ignored: {via_proxy}"
    );
    drop(server);
    let server = with_admin(&fx, &["serve", "--trusted-proxy", "127.0.0.1"]);
    let https_origin = format!("https://{}", server.addr());
    let via_proxy = login(&server, &https_origin, &[("x-forwarded-proto", "https")]).await;
    assert!(via_proxy.ends_with("; Secure"), "{via_proxy}");
    drop(server);
    let server = with_admin(&fx, &["serve", "--public-url", "https://blog.example.com"]);
    let public = login(&server, "https://blog.example.com", &[]).await;
    assert!(public.ends_with("; Secure"), "{public}");
}

/// Finding 2: no rate limit (3,000–7,000 guesses/s on one connection), failures on the API
/// neither logged nor counted, 1-character secrets accepted.
#[tokio::test]
async fn failed_authentications_are_limited_per_address_logged_and_counted() {
    let fx = Fixture::new();
    let server = with_admin(&fx, &[]);
    let attacker = client_from(Ipv4Addr::new(127, 0, 0, 2));
    let guess = |client: &reqwest::Client, token: &str| {
        client
            .get(server.url("/_isr/api/summary"))
            .bearer_auth(token)
            .send()
    };
    let started = Instant::now();
    let mut statuses = Vec::new();
    for i in 0..12 {
        let status = guess(&attacker, &format!("guess-{i}-abcdefghijkl"))
            .await
            .unwrap()
            .status()
            .as_u16();
        statuses.push(status);
    }
    assert_eq!(&statuses[..10], &[401; 10], "{statuses:?}");
    assert_eq!(&statuses[10..], &[429, 429], "{statuses:?}");
    let blocked = guess(&attacker, TOKEN).await.unwrap();
    assert_eq!(
        blocked.status(),
        429,
        "even the right token, until the window ends"
    );
    let retry_after: u64 = blocked.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=60).contains(&retry_after), "{retry_after}");
    assert!(started.elapsed() < Duration::from_secs(60));

    // Another address is not blocked; the webhook and the login form count too.
    let other = client_from(Ipv4Addr::new(127, 0, 0, 3));
    assert_eq!(guess(&other, TOKEN).await.unwrap().status(), 200);
    let webhook = other
        .post(server.url("/_isr/revalidate"))
        .bearer_auth("not-the-secret-at-all")
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(webhook.status(), 401);
    let form = other
        .post(server.url("/_isr/login"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body("token=wrong-wrong-wrong-wrong")
        .send()
        .await
        .unwrap();
    assert_eq!(form.status(), 401);

    let metrics = other
        .get(server.url("/_isr/metrics"))
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let metrics = Metrics::parse(&metrics);
    let failures =
        |endpoint: &str| metrics.counter("isr_auth_failures_total", &[("endpoint", endpoint)]);
    assert_eq!(failures("api"), 10.0, "429s are refusals, not guesses");
    assert_eq!(failures("revalidate"), 1.0);
    assert_eq!(failures("login"), 1.0);
    // A dashboard tab polling with a session that has ended presents no token: refused, not
    // charged, so its operator can still log in.
    let tab = client_from(Ipv4Addr::new(127, 0, 0, 4));
    for _ in 0..30 {
        let poll = tab
            .get(server.url("/_isr/api/summary"))
            .header("cookie", "isr_session=ended")
            .send()
            .await
            .unwrap();
        assert_eq!(poll.status(), 401);
    }
    let relogin = tab
        .post(server.url("/_isr/login"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(format!("token={TOKEN}"))
        .send()
        .await
        .unwrap();
    assert_eq!(relogin.status(), 303);

    let log = server.stderr_text();
    assert!(
        log.contains("authentication failed") && log.contains("client=127.0.0.2"),
        "{log}"
    );
    assert!(
        !log.contains("guess-0-abcdefghijkl"),
        "the token is never logged"
    );
}

/// Finding 2: a 1-character token or secret was accepted.
#[test]
fn short_tokens_and_secrets_are_refused_at_start() {
    let fx = Fixture::new();
    for variable in [
        "ISR_ADMIN_TOKEN",
        "ISR_REVALIDATE_SECRET",
        "ISR_METRICS_TOKEN",
    ] {
        let run = fx.run(&["serve"], &[(variable, "x")]);
        assert_eq!(run.code(), Some(2), "{variable}: {}", run.stderr);
        let line = run
            .stderr
            .lines()
            .find(|l| l.contains("error:"))
            .unwrap_or("");
        assert!(
            line.contains(variable) && line.contains("at least 16"),
            "{variable}: {}",
            run.stderr
        );
    }
}

/// Finding 3: 2,000 connections each sending 400 KB of an unfinished head took RSS from
/// 24 MB to 827 MB, and 523 MB stayed after the header timeout closed them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn request_heads_are_capped_and_their_memory_is_given_back() {
    let fx = Fixture::new();
    let server = BlogServer::start(&fx, &["--header-timeout", "2"], &[]);
    let addr = server.addr();

    // One head over the cap: 431, not buffered further.
    let big = format!(
        "GET /blog HTTP/1.1\r\nHost: 127.0.0.1\r\nx-big: {}\r\n\r\n",
        "a".repeat(100 * 1024)
    );
    let answer = server.raw_bytes(big.as_bytes()).await.unwrap();
    assert_eq!(answer.status, 431, "{}", answer.head);

    let before = rss(server.pid());
    const CONNECTIONS: usize = 2_000;
    const HEAD_BYTES: usize = 400 * 1024;
    let chunk = vec![b'a'; 16 * 1024];
    let mut attackers = Vec::new();
    for _ in 0..CONNECTIONS {
        let chunk = chunk.clone();
        attackers.push(tokio::spawn(async move {
            let Ok(mut stream) = tokio::net::TcpStream::connect(addr).await else {
                return;
            };
            let _ = stream
                .write_all(b"GET /blog HTTP/1.1\r\nHost: 127.0.0.1\r\nx-fill: ")
                .await;
            let mut sent = 0;
            while sent < HEAD_BYTES {
                if stream.write_all(&chunk).await.is_err() {
                    return; // cut off by the server
                }
                sent += chunk.len();
            }
            // The head never ends: hold it until the server closes the connection.
            let mut sink = [0u8; 1024];
            let _ = tokio::time::timeout(
                Duration::from_secs(20),
                tokio::io::AsyncReadExt::read(&mut stream, &mut sink),
            )
            .await;
        }));
    }
    let mut peak = before;
    for attacker in attackers {
        peak = peak.max(rss(server.pid()));
        attacker.await.unwrap();
    }
    let limit = before + 64 * 1024 * 1024;
    let after = poll_until("RSS to come back", POLL_DEADLINE, || async {
        let now = rss(server.pid());
        (now <= limit).then_some(now)
    })
    .await;
    eprintln!(
        "RSS before {} MB, peak seen {} MB, after {} MB",
        before >> 20,
        peak >> 20,
        after >> 20
    );
    // The server still serves.
    assert_eq!(server.get("/blog").await.status, 200);
}

/// Finding 4: `/_isr/metrics` was open by default.
#[tokio::test]
async fn metrics_need_the_admin_token_when_there_is_one() {
    let fx = Fixture::new();
    let open = BlogServer::start(&fx, &[], &[]);
    let answer = open.get("/_isr/metrics").await;
    assert_eq!(answer.status, 200, "no token configured: open, as before");
    assert_eq!(answer.header("cache-control"), Some("no-store"));
    assert!(
        answer.body.contains("isr_unknown_paths_failing"),
        "{}",
        answer.body
    );
    drop(open);
    let server = with_admin(&fx, &["serve"]);
    let refused = server.get("/_isr/metrics").await;
    assert_eq!(refused.status, 401);
    let allowed = server
        .send(
            server
                .request(Method::GET, "/_isr/metrics")
                .bearer_auth(TOKEN),
        )
        .await;
    assert_eq!(allowed.status, 200);
    assert_eq!(allowed.header("cache-control"), Some("no-store"));
}

/// Finding 4: the sitemap was written for every request (1.9 MB at 20,000 pages).
#[tokio::test]
async fn the_sitemap_and_robots_are_served_like_pages() {
    let fx = Fixture::new();
    let server = BlogServer::start(&fx, &["--public-url", "https://blog.example.com"], &[]);
    let br = server
        .request(Method::GET, "/sitemap.xml")
        .header("accept-encoding", "br")
        .send()
        .await
        .unwrap();
    assert_eq!(br.status(), 200);
    assert_eq!(br.headers()["content-encoding"], "br");
    let etag = br.headers()["etag"].to_str().unwrap().to_string();
    let xml = isr_tests::decompressed("br", &br.bytes().await.unwrap());
    assert!(
        xml.contains("<loc>https://blog.example.com/blog/what-is-isr</loc>"),
        "{xml}"
    );
    let again = server
        .send(
            server
                .request(Method::GET, "/sitemap.xml")
                .header("accept-encoding", "br")
                .header("if-none-match", &etag),
        )
        .await;
    assert_eq!(again.status, 304);
    assert_eq!(again.header("vary"), Some("accept-encoding"));
    let robots = server.get("/robots.txt").await;
    assert_eq!(
        robots.body,
        "User-agent: *\nAllow: /\n\nSitemap: https://blog.example.com/sitemap.xml\n"
    );
    // A new post changes the sitemap (and its etag).
    fx.write_post(
        "fresh",
        &isr_tests::post_markdown("Fresh", "2026-12-06", "New."),
    );
    assert_eq!(server.get("/blog/fresh").await.status, 200);
    let changed = server
        .send(
            server
                .request(Method::GET, "/sitemap.xml")
                .header("if-none-match", &etag),
        )
        .await;
    assert_eq!(changed.status, 200);
    assert!(changed.body.contains("/blog/fresh"));
}

/// Finding 5: 56 calls of `{"tags":["posts"]}` queued about 1.1 million loader runs over
/// 20,000 pages. Here: the bench app's `/cold/:id` pages (tag `cold`, a 40 ms loader), 150 of
/// them, and 56 webhook calls at once naming the tag.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_webhook_calls_are_merged_per_page() {
    const PAGES: usize = 150;
    let root = tempfile::tempdir().unwrap();
    let mut command = std::process::Command::new(isr_tests::bench_binary());
    command
        .env("ISR_REVALIDATE_SECRET", isr_tests::SECRET)
        .env("BENCH_PAGES", "5")
        .env("BENCH_COLD_MS", "40")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    isr_tests::serving_on_a_free_port(&mut command, &[], &[], root.path());
    let server = BlogServer::spawn_with_deadline(command, Duration::from_secs(60));
    let warm: Vec<_> = (0..PAGES).map(|i| format!("/cold/{i}")).collect();
    for chunk in warm.chunks(16) {
        for answer in futures::future::join_all(chunk.iter().map(|p| server.get(p))).await {
            assert_eq!(answer.status, 200);
        }
    }
    let before = server
        .metrics()
        .await
        .sum("isr_regenerations_total", &[("trigger", "on_demand")]);
    let body = json!({"tags": ["cold"], "mode": "regenerate"});
    let calls: Vec<_> = (0..56).map(|_| server.revalidate(&body)).collect();
    for answer in futures::future::join_all(calls).await {
        assert_eq!(answer.status, 200, "{}", answer.body);
        assert_eq!(answer.json()["results"].as_array().unwrap().len(), PAGES);
    }
    let runs = server
        .metrics()
        .await
        .sum("isr_regenerations_total", &[("trigger", "on_demand")])
        - before;
    eprintln!("56 calls over {PAGES} pages: {runs} loader runs");
    assert!(
        runs <= (2 * PAGES) as f64,
        "56 calls over {PAGES} pages ran {runs} loaders (unmerged: {})",
        56 * PAGES
    );
}

/// Finding 6: request paths and loader errors went into the log as they came: bytes >= 0x80
/// of a request target (U+202E reorders what the operator reads, C1 controls) in the access
/// log, and the decoded key of a page whose generation failed. (Keys with C0 controls are
/// refused before any loader runs; every field of every event is escaped, see
/// `isr::log_fields`, whose unit test forges lines with CR LF and ESC in an error text.)
#[tokio::test]
async fn client_text_is_escaped_in_the_log() {
    let fx = Fixture::new();
    let server = BlogServer::start(&fx, &[], &[]);
    fx.hide_content(); // the data source is down: generations fail and log the page's key
    let encoded = server.raw("GET", "/blog/evil%E2%80%AEtxt.exe").await;
    assert_eq!(encoded.status, 503, "{}", encoded.head);
    let raw = b"GET /blog/a\xe2\x80\xaeb\xc2\x85c HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n";
    let answer = server.raw_bytes(raw).await.unwrap();
    assert!(answer.status >= 400, "{}", answer.head);
    let log = poll_until("the log lines of both requests", POLL_DEADLINE, || async {
        let log = server.stderr_text();
        (log.contains("evil\\u{202e}txt.exe") && log.contains("a\\u{202e}b\\u{85}c")).then_some(log)
    })
    .await;
    for raw_char in ['\u{1b}', '\u{202e}', '\u{85}', '\r'] {
        assert!(!log.contains(raw_char), "{raw_char:?} in {log:?}");
    }
    let failed = log
        .lines()
        .find(|line| line.contains("WARN") && line.contains("evil\\u{202e}txt.exe"))
        .unwrap_or_else(|| panic!("the failed generation is logged with its path: {log}"));
    assert!(
        failed.contains("path=/blog/evil\\u{202e}txt.exe"),
        "{failed}"
    );
}

/// Finding 7: `Host: a.com@evil.com` landed in robots.txt; two `Host` headers and HTTP/1.1
/// without one were accepted; `X-Forwarded-Proto` from anyone flipped the links' scheme of a
/// shared-cacheable answer without `Vary`.
#[tokio::test]
async fn hosts_are_checked_and_forwarded_headers_only_trusted_from_proxies() {
    let fx = Fixture::new();
    let server = BlogServer::start(&fx, &[], &[]);
    let send = |head: &'static str| server.raw_bytes(head.as_bytes());
    for (head, why) in [
        (
            "GET /robots.txt HTTP/1.1\r\nHost: a.com@evil.com\r\nConnection: close\r\n\r\n",
            "userinfo",
        ),
        (
            "GET /robots.txt HTTP/1.1\r\nHost: a.com\r\nHost: evil.com\r\nConnection: close\r\n\r\n",
            "two Host headers",
        ),
        (
            "GET /robots.txt HTTP/1.1\r\nConnection: close\r\n\r\n",
            "no Host in HTTP/1.1",
        ),
    ] {
        let answer = send(head).await.unwrap();
        assert_eq!(answer.status, 400, "{why}: {}", answer.head);
        assert!(!answer.body.contains("evil.com"), "{why}");
    }
    let old = send("GET /robots.txt HTTP/1.0\r\n\r\n").await.unwrap();
    assert_eq!(old.status, 200, "HTTP/1.0 may omit Host");
    let absolute = send(
        "GET http://blog.example.com/robots.txt HTTP/1.1\r\nHost: other.example\r\nConnection: close\r\n\r\n",
    )
    .await
    .unwrap();
    assert!(
        absolute
            .body
            .contains("Sitemap: http://blog.example.com/sitemap.xml"),
        "the absolute-form authority wins: {}",
        absolute.body
    );

    let robots = |proto: &'static str| {
        server.send(
            server
                .request(Method::GET, "/robots.txt")
                .header("x-forwarded-proto", proto),
        )
    };
    let untrusted = robots("https").await;
    assert!(
        untrusted.body.contains("Sitemap: http://"),
        "{}",
        untrusted.body
    );
    assert_eq!(
        untrusted.header("vary"),
        Some("accept-encoding, host, x-forwarded-proto"),
        "derived from the request: says so to shared caches"
    );
    drop(server);
    let behind = BlogServer::start(&fx, &["serve", "--trusted-proxy", "127.0.0.0/8"], &[]);
    let trusted = behind
        .send(
            behind
                .request(Method::GET, "/robots.txt")
                .header("x-forwarded-proto", "https"),
        )
        .await;
    assert!(
        trusted.body.contains("Sitemap: https://"),
        "{}",
        trusted.body
    );
    drop(behind);
    let bad = fx.run(&["serve", "--trusted-proxy", "10.0.0.0/33"], &[]);
    assert_eq!(bad.code(), Some(2), "{}", bad.stderr);
    assert!(
        bad.stderr.contains("--trusted-proxy / ISR_TRUSTED_PROXIES"),
        "{}",
        bad.stderr
    );
}

/// Finding 8: 12,000 random slugs while the data source was down made 10,000 `missing`
/// entries in the summary, the dashboard and `isr_pages{state="missing"}`.
#[tokio::test]
async fn random_paths_during_an_outage_are_one_number_in_the_failing_view() {
    let fx = Fixture::new();
    let server = with_admin(&fx, &[]);
    fx.hide_content();
    for i in 0..200 {
        let answer = server.get(&format!("/blog/random-{i}")).await;
        assert_eq!(answer.status, 503, "{}", answer.body);
    }
    let summary = server
        .send(
            server
                .request(Method::GET, "/_isr/api/summary")
                .bearer_auth(TOKEN),
        )
        .await
        .json();
    assert_eq!(summary["unknown_failing"], 200, "{summary}");
    assert_eq!(summary["failing_total"], 0, "{summary}");
    assert_eq!(summary["failing"].as_array().unwrap().len(), 0);
    let metrics = server.metrics().await;
    assert_eq!(metrics.sum("isr_pages", &[("state", "missing")]), 0.0);
    assert_eq!(metrics.counter("isr_unknown_paths_failing", &[]), 200.0);
}

/// Finding 9: no anti-framing header, no `Cache-Control` on the API and metrics, any text in
/// `?notice=`; and finding 1's policy on pages.
#[tokio::test]
async fn isr_pages_are_never_framed_cached_or_made_to_say_anything() {
    let fx = Fixture::new();
    let server = with_admin(&fx, &[]);
    for path in [
        "/_isr/",
        "/_isr/api/summary",
        "/_isr/metrics",
        "/_isr/api/nope",
    ] {
        let answer = server.get(path).await;
        assert_eq!(answer.header("cache-control"), Some("no-store"), "{path}");
        assert_eq!(answer.header("x-frame-options"), Some("DENY"), "{path}");
        assert_eq!(
            answer.header("referrer-policy"),
            Some("same-origin"),
            "{path}"
        );
        let policy = answer.header("content-security-policy").unwrap_or("");
        assert!(
            policy.contains("frame-ancestors 'none'") && policy.contains("script-src 'self'"),
            "{path}: {policy}"
        );
    }
    let forged = server
        .get("/_isr/?notice=%3Cb%3Elog%20in%20at%20evil.example")
        .await;
    assert!(!forged.body.contains("evil.example"), "{}", forged.body);
    // Pages carry the blog's policy: scripts from the site and isr's own, by hash.
    let page = server.get("/blog/what-is-isr").await;
    assert!(
        page.body.contains(
            "<meta http-equiv=\"content-security-policy\" content=\"default-src 'self'; script-src 'self' 'wasm-unsafe-eval'"
        ),
        "{}",
        page.body
    );
}
