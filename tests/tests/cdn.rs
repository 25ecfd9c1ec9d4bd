//! The blog behind a real Varnish 7 (Debian's `varnishd`, the shipped `deploy/varnish/isr.vcl`):
//! an edit reaches CDN users within one window, on-demand revalidation purges the edge at once
//! (and retries when the purge endpoint is down), compressed variants and 404s through the
//! edge, and 503s never cached. Each test has its own blog server and its own Varnish.

use isr_tests::varnish::{self, through, varnish_available, Varnish};
use isr_tests::{
    free_port, poll_until, post_markdown, BlogServer, Fixture, POLL_DEADLINE, POST_REVALIDATE,
};
use serde_json::json;
use std::time::{Duration, Instant};

const POST: &str = "/blog/what-is-isr";
const POST_SLUG: &str = "what-is-isr";
const POST_OLD_TEXT: &str = "No content frozen forever.";

/// How much later than isr's own window an edit may reach CDN users.
const PROPAGATION_SLACK: Duration = Duration::from_millis(1500);

/// Varnish is a real part of these tests: `scripts/test.sh` installs it.
fn require_varnish() {
    assert!(
        varnish_available(),
        "varnishd is not installed: `apt-get install varnish` (scripts/test.sh does)"
    );
}

/// The blog (built and serving) with Varnish in front; `purge`: whether the blog purges it
/// (Varnish's port is chosen first: the blog is told where to purge).
fn blog_behind_varnish(fx: &Fixture, purge: bool) -> (BlogServer, Varnish) {
    varnish::in_front_of(|port| {
        let endpoint = format!("http://127.0.0.1:{port}");
        let args: Vec<&str> = if purge {
            vec!["--cdn-purge", &endpoint]
        } else {
            vec![]
        };
        BlogServer::start(fx, &args, &[])
    })
}

#[tokio::test]
async fn an_edit_reaches_cdn_users_within_one_window_not_two() {
    require_varnish();
    let fx = Fixture::new();
    let (server, varnish) = blog_behind_varnish(&fx, false);
    // Let the page age at the origin, then let the edge fetch it late in its window: without
    // `age` the edge would keep it for a whole window more. `age` is rounded up.
    let deadline = Instant::now() + POLL_DEADLINE;
    let generated = loop {
        let page = server.get(POST).await;
        let age: u64 = page.header("age").expect("age").parse().unwrap();
        if age >= 4 {
            // Seen the moment it turns 4 (polled every 20 ms), the page is 3 s old; a slow
            // poll that sees a later value only makes the estimate later (more lenient).
            break Instant::now() - Duration::from_secs(age - 1);
        }
        assert!(Instant::now() < deadline, "the page did not age");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let cached = through(&varnish, POST, &[]).await;
    assert!(cached.body.contains(POST_OLD_TEXT));
    fx.edit_post(POST_SLUG, POST_OLD_TEXT, "Edited at the origin 5b1e.");

    // Continuous polling through the edge.
    let deadline = generated + POST_REVALIDATE + PROPAGATION_SLACK;
    let mut seen_new = None;
    while Instant::now() < deadline + Duration::from_secs(5) {
        let edge = through(&varnish, POST, &[]).await;
        assert_eq!(edge.status, 200);
        if edge.body.contains("Edited at the origin 5b1e.") {
            seen_new = Some(Instant::now());
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let seen = seen_new.expect("the edit reached the edge");
    eprintln!(
        "edit visible at the edge {:?} after the page's generation (window {POST_REVALIDATE:?})",
        seen - generated
    );
    assert!(
        seen <= deadline,
        "the edit reached the edge {:?} after the page's window ended (allowed {PROPAGATION_SLACK:?})",
        seen - (generated + POST_REVALIDATE)
    );
    // Once seen, the old text never comes back (30 requests over ~1.5 s).
    for _ in 0..30 {
        let edge = through(&varnish, POST, &[]).await;
        assert!(
            edge.body.contains("Edited at the origin 5b1e."),
            "old text served again"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn on_demand_revalidation_purges_the_edge_before_it_answers() {
    require_varnish();
    let fx = Fixture::new();
    let (server, varnish) = blog_behind_varnish(&fx, true);
    for encoding in ["br", "gzip", "identity"] {
        let cached = through(&varnish, POST, &[("accept-encoding", encoding)]).await;
        assert!(cached.body.contains(POST_OLD_TEXT) || encoding != "identity");
    }
    assert!(
        through(&varnish, POST, &[]).await.varnish_hit(),
        "cached at the edge"
    );

    fx.edit_post(POST_SLUG, POST_OLD_TEXT, "Revalidated on demand 9c2d.");
    // A hard purge (a soft one, the default, lets the edge serve its copy once more while it
    // refetches: tests/tests/cdn_tags.rs).
    let answer = server
        .revalidate(&json!({ "mode": "regenerate", "paths": [POST], "purge": "hard" }))
        .await;
    assert_eq!(answer.status, 200, "{}", answer.body);
    let results: serde_json::Value = serde_json::from_str(&answer.body).unwrap();
    assert_eq!(
        results["results"],
        json!([{ "path": POST, "outcome": "regenerated", "purged": true }])
    );
    // The very next request through the edge has the new text, in every encoding.
    let edge = through(&varnish, POST, &[]).await;
    assert!(
        edge.body.contains("Revalidated on demand 9c2d."),
        "{}",
        edge.body
    );
    let client = reqwest::Client::new();
    for encoding in ["br", "gzip"] {
        let (text, _) = isr_tests::get_encoded(&client, &varnish.url(POST), encoding).await;
        assert_eq!(text, edge.body, "{encoding} purged too");
    }
    let metrics = server.metrics().await;
    assert!(
        metrics.sum(
            "isr_cdn_purges_total",
            &[("cdn", "varnish"), ("kind", "hard"), ("outcome", "ok")]
        ) >= 1.0
    );
}

#[tokio::test]
async fn a_purge_endpoint_that_is_down_never_blocks_the_webhook_and_is_retried() {
    require_varnish();
    let fx = Fixture::new();
    let port = free_port();
    let endpoint = format!("http://127.0.0.1:{port}");
    let server = BlogServer::start(&fx, &["--cdn-purge", &endpoint], &[]);
    fx.edit_post(
        POST_SLUG,
        POST_OLD_TEXT,
        "Edited while the edge is down 3a7f.",
    );
    let started = Instant::now();
    let answer = server
        .revalidate(&json!({ "mode": "regenerate", "paths": [POST] }))
        .await;
    assert_eq!(answer.status, 200, "{}", answer.body);
    assert!(started.elapsed() < Duration::from_secs(10));
    let results: serde_json::Value = serde_json::from_str(&answer.body).unwrap();
    assert_eq!(results["results"][0]["outcome"], "regenerated");
    assert_eq!(results["results"][0]["purged"], false);
    // The origin serves the new page regardless.
    assert!(server.get(POST).await.body.contains("3a7f"));
    // Retried in the background, logged and counted.
    poll_until("a retried purge to be counted", POLL_DEADLINE, || async {
        let errors = server.metrics().await.sum(
            "isr_cdn_purges_total",
            &[("cdn", "varnish"), ("outcome", "error")],
        );
        (errors >= 2.0).then_some(())
    })
    .await;
    assert!(server.stderr_text().contains("CDN purge failed"));
    // The edge comes up: a later retry gets through.
    let _varnish = Varnish::start(port, server.addr());
    poll_until(
        "a retry to purge the page",
        Duration::from_secs(40),
        || async {
            let ok = server.metrics().await.sum(
                "isr_cdn_purges_total",
                &[("cdn", "varnish"), ("outcome", "ok")],
            );
            (ok >= 1.0).then_some(())
        },
    )
    .await;
}

#[tokio::test]
async fn compressed_variants_through_the_edge() {
    require_varnish();
    let fx = Fixture::new();
    let (_server, varnish) = blog_behind_varnish(&fx, false);
    let identity = through(&varnish, POST, &[]).await;
    assert_eq!(identity.header("content-encoding"), None);
    assert_eq!(identity.header("vary"), Some("accept-encoding"));
    let client = reqwest::Client::new();
    let mut etags = vec![identity.header("etag").unwrap().to_string()];
    for (accept, encoding) in [("gzip, deflate, br", "br"), ("gzip", "gzip")] {
        for round in 0..2 {
            let response = client
                .get(varnish.url(POST))
                .header("accept-encoding", accept)
                .send()
                .await
                .unwrap();
            let headers = response.headers().clone();
            assert_eq!(headers["content-encoding"].to_str().unwrap(), encoding);
            assert_eq!(headers["vary"].to_str().unwrap(), "accept-encoding");
            let bytes = response.bytes().await.unwrap();
            assert_eq!(
                isr_tests::decompressed(encoding, &bytes),
                identity.body,
                "{encoding} round {round}"
            );
            let etag = headers["etag"].to_str().unwrap().to_string();
            let not_modified = client
                .get(varnish.url(POST))
                .header("accept-encoding", accept)
                .header("if-none-match", &etag)
                .send()
                .await
                .unwrap();
            assert_eq!(not_modified.status(), 304, "{encoding}");
            etags.push(etag);
        }
    }
    etags.sort();
    etags.dedup();
    assert_eq!(etags.len(), 3, "{etags:?}");
}

#[tokio::test]
async fn a_post_created_after_the_edge_cached_its_404_appears_within_its_window() {
    require_varnish();
    let fx = Fixture::new();
    let (server, varnish) = blog_behind_varnish(&fx, true);
    let missing = through(&varnish, "/blog/late-post", &[]).await;
    assert_eq!(missing.status, 404);
    let cached_at = Instant::now();
    assert!(
        through(&varnish, "/blog/late-post", &[])
            .await
            .varnish_hit(),
        "the 404 is cached"
    );
    fx.write_post(
        "late-post",
        &post_markdown("Late post", "2026-01-01", "Written late."),
    );
    let page = poll_until("the new post through the edge", POLL_DEADLINE, || async {
        let edge = through(&varnish, "/blog/late-post", &[]).await;
        (edge.status == 200).then_some(edge)
    })
    .await;
    assert!(page.body.contains("Written late."));
    let elapsed = cached_at.elapsed();
    assert!(
        elapsed <= POST_REVALIDATE + PROPAGATION_SLACK,
        "the post appeared {elapsed:?} after its 404 was cached"
    );

    // With on-demand revalidation of its path: at once.
    assert_eq!(through(&varnish, "/blog/later-post", &[]).await.status, 404);
    fx.write_post(
        "later-post",
        &post_markdown("Later post", "2026-01-02", "Written later."),
    );
    let answer = server
        .revalidate(&json!({ "mode": "regenerate", "paths": ["/blog/later-post"] }))
        .await;
    assert!(answer.body.contains("\"purged\":true"), "{}", answer.body);
    let edge = through(&varnish, "/blog/later-post", &[]).await;
    assert_eq!(edge.status, 200);
    assert!(edge.body.contains("Written later."));
}

#[tokio::test]
async fn a_503_is_never_cached_at_the_edge() {
    require_varnish();
    let fx = Fixture::new();
    let (_server, varnish) = blog_behind_varnish(&fx, false);
    fx.write_post(
        "flaky",
        &post_markdown("Flaky", "2026-01-03", "Here at last."),
    );
    fx.hide_content();
    for _ in 0..3 {
        let edge = through(&varnish, "/blog/flaky", &[]).await;
        assert_eq!(edge.status, 503, "{}", edge.body);
        assert!(!edge.varnish_hit(), "a 503 answered from the edge's cache");
    }
    fx.restore_content();
    let edge = poll_until(
        "the post once its data source is back",
        POLL_DEADLINE,
        || async {
            let edge = through(&varnish, "/blog/flaky", &[]).await;
            assert!(matches!(edge.status, 200 | 503), "{}", edge.status);
            (edge.status == 200).then_some(edge)
        },
    )
    .await;
    assert!(edge.body.contains("Here at last."));
}

#[tokio::test]
async fn nginx_serves_the_export_and_never_its_metadata() {
    let nginx = std::process::Command::new("nginx").arg("-v").output();
    assert!(
        nginx.is_ok(),
        "nginx is not installed: `apt-get install nginx` (scripts/test.sh does)"
    );
    let fx = Fixture::new();
    let site_root = fx.site_root();
    let out = fx.run(&["build", "--site-root", site_root.to_str().unwrap()], &[]);
    assert_eq!(out.code(), Some(0), "{}", out.stderr);
    let work = tempfile::tempdir().unwrap();
    let shipped =
        std::fs::read_to_string(isr_tests::workspace_root().join("deploy/nginx/isr.conf"))
            .expect("deploy/nginx/isr.conf");
    let error_log = work.path().join("error.log");
    struct Stop(std::process::Child);
    impl Drop for Stop {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
    let client = reqwest::Client::new();
    // `free_port` releases the port it found: another process may bind it before nginx does.
    // Then nginx exits ("Address already in use") and starts again on another port.
    const NGINX_ATTEMPTS: usize = 3;
    let mut taken: Vec<String> = Vec::new();
    let (_nginx, base, page) = 'attempts: loop {
        assert!(
            taken.len() < NGINX_ATTEMPTS,
            "nginx found its port taken {NGINX_ATTEMPTS} times:\n{}",
            taken.join("\n")
        );
        let port = free_port();
        let server_block = shipped
            .replace(
                "listen 127.0.0.1:8080;",
                &format!("listen 127.0.0.1:{port};"),
            )
            .replace(
                "root /srv/site;",
                &format!("root {};", fx.site_root().display()),
            );
        assert!(server_block.contains(&port.to_string()));
        let w = work.path().display();
        let conf = format!(
            "daemon off; master_process off; worker_processes 1; pid {w}/nginx.pid; error_log {w}/error.log;\n\
             events {{}}\n\
             http {{ access_log off; default_type text/html;\n\
               client_body_temp_path {w}/body; proxy_temp_path {w}/proxy; fastcgi_temp_path {w}/fastcgi;\n\
               uwsgi_temp_path {w}/uwsgi; scgi_temp_path {w}/scgi;\n\
               {server_block}\n}}\n"
        );
        std::fs::write(work.path().join("nginx.conf"), conf).unwrap();
        let _ = std::fs::remove_file(&error_log);
        let child = std::process::Command::new("nginx")
            .arg("-c")
            .arg(work.path().join("nginx.conf"))
            .arg("-e")
            .arg(&error_log)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("start nginx");
        let mut nginx = Stop(child);
        let base = format!("http://127.0.0.1:{port}");
        let deadline = Instant::now() + POLL_DEADLINE;
        loop {
            if let Ok(response) = client.get(format!("{base}{POST}")).send().await {
                // Only nginx's own answer counts: a process that took the port first (another
                // test's server) answers too, even with the same page.
                let from_nginx = response
                    .headers()
                    .get("server")
                    .and_then(|v| v.to_str().ok())
                    .is_some_and(|v| v.starts_with("nginx"));
                let status = response.status();
                let text = response.text().await.unwrap_or_default();
                if from_nginx && status == 200 {
                    break 'attempts (nginx, base, text);
                }
                assert!(
                    !from_nginx || Instant::now() < deadline,
                    "nginx answered {status}: {text}"
                );
            }
            if let Some(status) = nginx.0.try_wait().expect("wait for nginx") {
                let log = std::fs::read_to_string(&error_log).unwrap_or_default();
                if log.contains("Address already in use") {
                    taken.push(log);
                    continue 'attempts;
                }
                panic!("nginx exited ({status}); error log:\n{log}");
            }
            assert!(
                Instant::now() < deadline,
                "nginx did not serve the export; error log:\n{}",
                std::fs::read_to_string(&error_log).unwrap_or_default()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    };
    assert!(page.contains(POST_OLD_TEXT));
    let gzipped = client
        .get(format!("{base}{POST}"))
        .header("accept-encoding", "gzip")
        .send()
        .await
        .unwrap();
    assert_eq!(gzipped.headers()["content-encoding"], "gzip");
    // The recipe's page headers are the ones isr sends for a one-minute window.
    assert_eq!(
        gzipped.headers()["cache-control"],
        "max-age=0, must-revalidate, s-maxage=60"
    );
    assert_eq!(
        gzipped.headers()["cdn-cache-control"],
        "max-age=60, stale-while-revalidate=31536000"
    );
    assert_eq!(
        isr_tests::decompressed("gzip", &gzipped.bytes().await.unwrap()),
        page
    );
    // The page's stylesheet (isr::asset!) is in the export, cached forever.
    let stylesheet = page
        .split(r#"rel="stylesheet" href=""#)
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .expect("the page links its stylesheet");
    let css = client
        .get(format!("{base}{stylesheet}"))
        .send()
        .await
        .unwrap();
    assert_eq!(css.status(), 200, "{stylesheet}");
    assert_eq!(
        css.headers()["cache-control"],
        "public, max-age=31536000, immutable"
    );
    assert!(css.text().await.unwrap().contains("font-family"));
    for hidden in ["/.isr/index.sqlite", "/.isr/", "/blog/.x.tmp"] {
        let response = client.get(format!("{base}{hidden}")).send().await.unwrap();
        assert_eq!(response.status(), 404, "{hidden} must not be served");
    }
}
