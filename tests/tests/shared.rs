//! Several instances on one Redis (`--redis`): a real `redis-server` on a free loopback port,
//! three `isr-bench` processes with their own site roots, requests spread over them.

use futures::StreamExt;
use isr_tests::redis::{redis_available, Redis};
use isr_tests::{bench_binary, serving_on_a_free_port, BlogServer, Resp, SECRET};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// Lease TTL of the test instances (seconds): short, so a dead holder is replaced quickly.
const LEASE_TTL_S: u64 = 2;
/// How long a change may take to reach every instance before a test fails.
const PROPAGATION_DEADLINE: Duration = Duration::from_secs(10);

/// One instance named `name` on its own site root: `start` (build, then serve) with the shared
/// tier on `redis`; `envs` tune the bench app (loader delays).
fn instance(redis: &Redis, root: &Path, name: &str, envs: &[(&str, &str)]) -> BlogServer {
    instance_running(redis, root, name, "start", envs)
}

/// Like [`instance`], with `subcommand` (`start` or `serve`).
fn instance_running(
    redis: &Redis,
    root: &Path,
    name: &str,
    subcommand: &str,
    envs: &[(&str, &str)],
) -> BlogServer {
    let mut command = Command::new(bench_binary());
    command
        .env("RUST_LOG", "info,isr=debug")
        .env("ISR_REVALIDATE_SECRET", SECRET)
        .env("ISR_ADMIN_TOKEN", SECRET)
        .env("BENCH_PAGES", "20")
        .env("BENCH_PAGE_BYTES", "2048")
        .env("BENCH_SLOW_MS", "200")
        .env("BENCH_COLD_MS", "300")
        .env("BENCH_INSTANCE", name)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    serving_on_a_free_port(&mut command, &[subcommand], envs, &root.join(name));
    command
        .args(["--redis", &redis.url()])
        .args(["--redis-lease-ttl", &LEASE_TTL_S.to_string()]);
    BlogServer::spawn_with_deadline(command, Duration::from_secs(120))
}

/// Redis and three instances `a`, `b`, `c` started one after the other (each builds).
struct Cluster {
    instances: Vec<BlogServer>,
    redis: Redis,
    roots: tempfile::TempDir,
}

impl Cluster {
    fn start(envs: &[(&str, &[(&str, &str)])]) -> Cluster {
        assert!(
            redis_available(),
            "redis-server is not installed: `apt-get install redis-server` (scripts/test.sh does)"
        );
        let redis = Redis::start();
        let roots = tempfile::tempdir().unwrap();
        let instances = ["a", "b", "c"]
            .iter()
            .map(|name| {
                let own = envs
                    .iter()
                    .find(|(n, _)| n == name)
                    .map_or(&[][..], |(_, e)| *e);
                instance(&redis, roots.path(), name, own)
            })
            .collect();
        Cluster {
            instances,
            redis,
            roots,
        }
    }

    fn get(&self, name: &str) -> &BlogServer {
        let index = ["a", "b", "c"].iter().position(|n| *n == name).unwrap();
        &self.instances[index]
    }

    /// `GET path` on every instance in turn, `count` requests, `at_once` in flight.
    async fn spread(&self, path: &str, count: usize, at_once: usize) -> Vec<Resp> {
        futures::stream::iter(0..count)
            .map(|i| self.instances[i % self.instances.len()].get(path))
            .buffer_unordered(at_once)
            .collect()
            .await
    }

    /// Loader runs of `route` after the build, summed over the instances.
    async fn loader_runs(&self, route: &str) -> f64 {
        let mut total = 0.0;
        for server in &self.instances {
            total += server
                .metrics()
                .await
                .sum("isr_regenerations_total", &[("route", route)]);
        }
        total
    }

    /// Polls every instance until `path` shows `text` on all of them; how long it took.
    async fn everywhere(&self, path: &str, text: &str) -> Duration {
        let started = Instant::now();
        let deadline = started + PROPAGATION_DEADLINE;
        for server in &self.instances {
            loop {
                let resp = server.get(path).await;
                if resp.status == 200 && resp.body.contains(text) {
                    break;
                }
                assert!(
                    Instant::now() < deadline,
                    "{path} on {} never showed {text:?}; last: {} {}",
                    server.base_url(),
                    resp.status,
                    title_of(&resp.body)
                );
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
        started.elapsed()
    }
}

fn title_of(body: &str) -> &str {
    body.split("<h1>")
        .nth(1)
        .and_then(|rest| rest.split("</h1>").next())
        .unwrap_or("(no h1)")
}

/// Waits until `/slow3` is past its 3 s window everywhere: until every instance holds the
/// version Redis holds (the last build's), then until that version is 3 s old (by Redis's
/// clock, which stamped its commit).
async fn until_slow3_is_stale(cluster: &Cluster) {
    let at = cluster.redis.command("HGET bench:page:/slow3 at").unwrap();
    let committed_at: u64 = at.parse().unwrap_or_else(|_| panic!("{at}"));
    let by = title_of(&cluster.get("c").get("/slow3").await.body).to_string();
    cluster.everywhere("/slow3", &by).await;
    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64;
    let stale_at = committed_at + 3_300;
    tokio::time::sleep(Duration::from_millis(stale_at.saturating_sub(now_ms))).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn one_loader_for_a_stale_page_and_for_a_new_page_across_three_instances() {
    let cluster = Cluster::start(&[]);
    // The later builds found the same content in Redis: its generation was not bumped.
    let built = cluster.redis.command("HGET bench:page:/page gen").unwrap();
    assert!(built.parse::<u64>().is_ok(), "{built}");
    let a_built_it = cluster.get("a").get("/page").await;
    let c_serves = cluster.get("c").get("/page").await;
    assert_eq!(a_built_it.header("etag"), c_serves.header("etag"));
    assert_eq!(
        cluster.redis.command("HGET bench:page:/page gen").unwrap(),
        built
    );

    // 500 concurrent requests for a stale page, spread over the instances.
    until_slow3_is_stale(&cluster).await;
    let before = cluster.loader_runs("/slow3").await;
    let burst = Instant::now();
    let answers = cluster.spread("/slow3", 500, 500).await;
    let burst = burst.elapsed();
    eprintln!("500 concurrent stale requests answered in {burst:?}");
    assert!(answers.iter().all(|r| r.status == 200));
    // A new version is fresh for 3 s: a longer burst would rightly regenerate it again.
    assert!(
        burst < Duration::from_secs(3),
        "the burst fits in one window: {burst:?}"
    );
    let deadline = Instant::now() + PROPAGATION_DEADLINE;
    while cluster.loader_runs("/slow3").await < before + 1.0 {
        assert!(Instant::now() < deadline, "no regeneration of /slow3");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let regenerated = cluster.redis.command("HGET bench:page:/slow3 gen").unwrap();
    for server in &cluster.instances {
        // Every instance ends up with the one new version (pulled, not regenerated).
        let deadline = Instant::now() + PROPAGATION_DEADLINE;
        loop {
            let resp = server.get("/slow3").await;
            if resp.header("x-isr-cache") == Some("HIT") {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "{} never fresh again",
                server.base_url()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    assert_eq!(
        cluster.loader_runs("/slow3").await - before,
        1.0,
        "exactly one loader run for 500 stale requests on three instances"
    );
    assert_eq!(
        cluster.redis.command("HGET bench:page:/slow3 gen").unwrap(),
        regenerated
    );

    // 300 concurrent first requests for a page no instance has (fallback blocking).
    let answers = cluster.spread("/cold/new", 300, 300).await;
    assert!(answers.iter().all(|r| r.status == 200), "all 200");
    let first = title_of(&answers[0].body).to_string();
    assert!(first.starts_with("Cold new from "), "{first}");
    assert!(
        answers.iter().all(|r| title_of(&r.body) == first),
        "every instance answers with the same body"
    );
    assert_eq!(cluster.loader_runs("/cold/:id").await, 1.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn on_demand_on_one_instance_reaches_the_others() {
    let cluster = Cluster::start(&[]);
    let first = cluster.get("a").get("/cold/od").await;
    assert!(first.body.contains("Cold od from a"), "{}", first.body);
    cluster.everywhere("/cold/od", "Cold od from a").await;
    let answer = cluster
        .get("b")
        .revalidate(&serde_json::json!({ "mode": "regenerate", "paths": ["/cold/od"] }))
        .await;
    assert_eq!(answer.status, 200, "{}", answer.body);
    let results: serde_json::Value = serde_json::from_str(&answer.body).unwrap();
    assert_eq!(results["results"][0]["outcome"], "regenerated", "{results}");
    assert_eq!(
        results["results"][0]["shared"], true,
        "reached Redis: {results}"
    );
    let took = cluster.everywhere("/cold/od", "Cold od from b").await;
    eprintln!("on-demand on b reached a and c in {took:?}");
    // The operator API of a and c says whose version they serve, and its shared generation.
    let generation = cluster
        .redis
        .command("HGET bench:page:/cold/od gen")
        .unwrap();
    let b_pid = cluster.get("b").pid();
    for name in ["a", "c"] {
        let server = cluster.get(name);
        let resp = server
            .send(
                server
                    .request(reqwest::Method::GET, "/_isr/api/pages/cold/od")
                    .header("authorization", format!("Bearer {SECRET}")),
            )
            .await;
        let page: serde_json::Value = serde_json::from_str(&resp.body).unwrap();
        assert_eq!(page["last"]["outcome"], "pulled", "{page}");
        let by = page["last"]["instance"].as_str().unwrap_or_default();
        assert!(by.contains(&format!(":{b_pid}:")), "pulled from b: {page}");
        assert_eq!(
            page["generation"].to_string(),
            generation,
            "the shared generation"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_paused_lease_holder_is_fenced_and_a_killed_one_is_replaced() {
    let slow_a: &[(&str, &str)] = &[("BENCH_SLOW_MS", "2500"), ("BENCH_COLD_MS", "20000")];
    let cluster = Cluster::start(&[("a", slow_a)]);
    // A paused holder: `a` starts regenerating /slow3 (2.5 s loader), is stopped past its
    // lease, `b` regenerates meanwhile; `a` resumes and its commit is refused.
    until_slow3_is_stale(&cluster).await;
    assert_eq!(
        cluster.get("a").get("/slow3").await.header("x-isr-cache"),
        Some("STALE")
    );
    wait_for_redis(&cluster.redis, "EXISTS bench:lease:/slow3", ":1").await;
    cluster.get("a").signal("STOP");
    wait_for_redis(&cluster.redis, "EXISTS bench:lease:/slow3", ":0").await;
    assert_eq!(
        cluster.get("b").get("/slow3").await.header("x-isr-cache"),
        Some("STALE")
    );
    let deadline = Instant::now() + PROPAGATION_DEADLINE;
    while !cluster
        .get("b")
        .get("/slow3")
        .await
        .body
        .contains("Slow page from b")
    {
        assert!(Instant::now() < deadline, "b never regenerated /slow3");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    cluster.get("a").signal("CONT");
    let deadline = Instant::now() + PROPAGATION_DEADLINE;
    while cluster
        .get("a")
        .metrics()
        .await
        .counter("isr_redis_leases_total", &[("outcome", "fenced")])
        < 1.0
    {
        assert!(Instant::now() < deadline, "a's late commit was not fenced");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    cluster.everywhere("/slow3", "Slow page from b").await;

    // A killed holder: `a` takes the lease of a new page (20 s loader) and is killed; the
    // requests waiting on `b` and `c` are answered by one of them after the lease expires.
    let a_url = cluster.get("a").url("/cold/orphan");
    let doomed = tokio::spawn(async move { reqwest::get(a_url).await.map(|r| r.status()) });
    wait_for_redis(&cluster.redis, "EXISTS bench:lease:/cold/orphan", ":1").await;
    let waiting = {
        let (b, c) = (cluster.get("b"), cluster.get("c"));
        futures::future::join_all(
            (0..10)
                .map(|i| if i % 2 == 0 { b } else { c })
                .map(|s| s.get("/cold/orphan")),
        )
    };
    let killed_at = Instant::now();
    let (answers, ()) = tokio::join!(waiting, async {
        tokio::time::sleep(Duration::from_millis(200)).await;
        cluster.get("a").signal("KILL");
    });
    let took = killed_at.elapsed();
    assert!(doomed.await.unwrap().is_err(), "a died mid-request");
    assert!(
        answers.iter().all(|r| r.status == 200),
        "{:?}",
        answers.iter().map(|r| r.status).collect::<Vec<_>>()
    );
    let body = title_of(&answers[0].body).to_string();
    assert!(
        body == "Cold orphan from b" || body == "Cold orphan from c",
        "{body}"
    );
    assert!(answers.iter().all(|r| title_of(&r.body) == body));
    let runs = cluster
        .get("b")
        .metrics()
        .await
        .sum("isr_regenerations_total", &[("route", "/cold/:id")])
        + cluster
            .get("c")
            .metrics()
            .await
            .sum("isr_regenerations_total", &[("route", "/cold/:id")]);
    assert_eq!(runs, 1.0, "one instance took over");
    eprintln!("the killed holder was replaced and its waiters answered {took:?} after the kill");
    assert!(
        took < Duration::from_secs(LEASE_TTL_S + 1) + Duration::from_millis(300 + 1_500),
        "took over within the lease TTL + 1 s (+ the 300 ms loader and slack): {took:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn redis_down_serves_every_page_and_coherence_resumes_after_an_empty_restart() {
    let mut cluster = Cluster::start(&[]);
    until_slow3_is_stale(&cluster).await;
    cluster.redis.stop();
    let paths = ["/page", "/items/3", "/slow3", "/cold/x"];
    let started = Instant::now();
    let mut answered = 0;
    while started.elapsed() < Duration::from_secs(3) {
        for path in paths {
            let answers = cluster.spread(path, 6, 6).await;
            for resp in &answers {
                assert_eq!(
                    resp.status, 200,
                    "{path} while Redis is down: {}",
                    resp.body
                );
            }
            answered += answers.len();
        }
    }
    eprintln!("{answered} requests answered 200 while Redis was down");

    cluster.redis.start_again();
    // Fan-out resumes: the readers reconnect to the empty Redis (a new epoch).
    let deadline = Instant::now() + PROPAGATION_DEADLINE;
    loop {
        let answer = cluster
            .get("b")
            .revalidate(&serde_json::json!({ "mode": "regenerate", "paths": ["/cold/after"] }))
            .await;
        let results: serde_json::Value = serde_json::from_str(&answer.body).unwrap();
        if results["results"][0]["shared"] == true {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "b never reached Redis again: {results}\n{}",
            cluster.get("b").stderr_text()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    cluster.everywhere("/cold/after", "Cold after from b").await;
    // What was generated while Redis was down was written back.
    wait_for_redis(&cluster.redis, "EXISTS bench:page:/cold/x", ":1").await;
    // Single-flight holds again.
    let before = cluster.loader_runs("/cold/:id").await;
    let answers = cluster.spread("/cold/again", 60, 60).await;
    assert!(answers.iter().all(|r| r.status == 200));
    assert_eq!(cluster.loader_runs("/cold/:id").await - before, 1.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn tag_revalidation_on_any_instance_covers_pages_another_generated() {
    let cluster = Cluster::start(&[]);
    for id in ["t1", "t2"] {
        let first = cluster.get("a").get(&format!("/cold/{id}")).await;
        assert!(first.body.contains(&format!("Cold {id} from a")));
    }
    // `d` starts after those commits: its own tiers know nothing of them.
    let d = instance(&cluster.redis, cluster.roots.path(), "d", &[]);
    let answer = d
        .revalidate(&serde_json::json!({ "mode": "regenerate", "tags": ["cold"] }))
        .await;
    assert_eq!(answer.status, 200, "{}", answer.body);
    let results: serde_json::Value = serde_json::from_str(&answer.body).unwrap();
    let mut paths: Vec<&str> = results["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            assert_eq!(r["outcome"], "regenerated", "{r}");
            r["path"].as_str().unwrap()
        })
        .collect();
    paths.sort();
    assert_eq!(
        paths,
        ["/cold/t1", "/cold/t2"],
        "Redis's tag set named them"
    );
    cluster.everywhere("/cold/t1", "Cold t1 from d").await;
    cluster.everywhere("/cold/t2", "Cold t2 from d").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_instance_started_later_on_an_empty_root_serves_the_published_pages() {
    let cluster = Cluster::start(&[]);
    let late = instance_running(&cluster.redis, cluster.roots.path(), "late", "serve", &[]);
    for path in ["/page", "/items/3"] {
        let built = cluster.get("a").get(path).await;
        let served = late.get(path).await;
        assert_eq!(served.status, 200, "{path}");
        assert_eq!(
            served.header("etag"),
            built.header("etag"),
            "{path}: the published page"
        );
    }
    let metrics = late.metrics().await;
    assert_eq!(
        metrics.sum("isr_regenerations_total", &[]),
        0.0,
        "no loader ran"
    );
    assert_eq!(metrics.sum("isr_shared_pulls_total", &[]), 2.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn missed_events_are_detected_and_local_pages_rechecked() {
    let cluster = Cluster::start(&[]);
    cluster.get("a").get("/cold/gap").await;
    cluster.everywhere("/cold/gap", "Cold gap from a").await;
    let b = cluster.get("b");
    let before = b.metrics().await;
    b.signal("STOP");
    // b's waiting XREAD (1 s) ends while it is stopped: it is sent nothing of what follows.
    tokio::time::sleep(Duration::from_millis(1_500)).await;
    let answer = cluster
        .get("c")
        .revalidate(&serde_json::json!({ "mode": "regenerate", "paths": ["/cold/gap"] }))
        .await;
    assert!(answer.body.contains(r#""shared":true"#), "{}", answer.body);
    let trimmed = cluster
        .redis
        .command("XTRIM bench:events MAXLEN 0")
        .unwrap();
    assert_ne!(trimmed, ":0", "the event was in the stream");
    b.signal("CONT");
    let resumed = Instant::now();
    let deadline = resumed + PROPAGATION_DEADLINE;
    while !b.get("/cold/gap").await.body.contains("Cold gap from c") {
        assert!(
            Instant::now() < deadline,
            "b never caught up after the gap:\n{}",
            b.stderr_text()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    eprintln!("b caught up {:?} after it resumed", resumed.elapsed());
    let after = b.metrics().await;
    let delta =
        |name: &str, labels: &[(&str, &str)]| after.sum(name, labels) - before.sum(name, labels);
    assert_eq!(
        delta("isr_redis_events_total", &[]),
        0.0,
        "b never read the event"
    );
    assert!(
        delta("isr_shared_pulls_total", &[("reason", "resync")])
            + delta("isr_shared_pulls_total", &[("reason", "request")])
            >= 1.0,
        "the re-check pulled it"
    );
    assert_eq!(
        delta("isr_regenerations_total", &[]),
        0.0,
        "pulled, not regenerated"
    );
}

/// Polls Redis until `command` answers `expected`.
async fn wait_for_redis(redis: &Redis, command: &str, expected: &str) {
    let deadline = Instant::now() + PROPAGATION_DEADLINE;
    loop {
        let answer = redis.command(command).unwrap();
        if answer == expected {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{command} never answered {expected} (last {answer})"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// A deploy whose build no longer lists a page (`BENCH_PAGES` 20 → 10: `/items/15` is gone):
/// before, the page stayed in Redis, the other instance kept serving it, and an instance started
/// afterwards on an empty site root pulled it back (200) without running its loader. Now the
/// build commits a tombstone: every instance answers 404, and none runs the page's loader.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_page_a_build_no_longer_lists_is_gone_on_every_instance_and_from_redis() {
    assert!(redis_available(), "redis-server is not installed");
    let redis = Redis::start();
    let roots = tempfile::tempdir().unwrap();
    let a = instance(&redis, roots.path(), "a", &[]);
    let b = instance(&redis, roots.path(), "b", &[]);
    assert_eq!(b.get("/items/15").await.status, 200);

    // The deploy: `a` restarts with the new listing; `start` rebuilds it in the background.
    drop(a);
    let fewer = [("BENCH_PAGES", "10")];
    let _a = instance(&redis, roots.path(), "a", &fewer);
    let deadline = Instant::now() + PROPAGATION_DEADLINE;
    loop {
        let answer = b.get("/items/15").await;
        if answer.status == 404 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the other instance still serves the removed page: {}",
            answer.status
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(b.get("/items/5").await.status, 200, "listed pages stay");

    // A new instance on an empty site root: 404, and no loader ran for it.
    let c = instance(&redis, roots.path(), "c", &fewer);
    assert_eq!(c.get("/items/15").await.status, 404);
    assert_eq!(c.get("/items/15").await.status, 404);
    let runs = c
        .metrics()
        .await
        .sum("isr_regenerations_total", &[("route", "/items/:id")]);
    assert_eq!(runs, 0.0, "the tombstone answered, not the loader");
    let b_runs = b
        .metrics()
        .await
        .sum("isr_regenerations_total", &[("route", "/items/:id")]);
    assert_eq!(b_runs, 0.0, "nor did the old instance run it");
}

/// Polls `server` until `path` answers with `cache-status` naming `detail` (deadline).
async fn until_detail(server: &BlogServer, path: &str, detail: &str) -> Resp {
    let deadline = Instant::now() + PROPAGATION_DEADLINE;
    loop {
        let resp = server.get(path).await;
        if resp
            .header("cache-status")
            .is_some_and(|status| status.contains(detail))
        {
            return resp;
        }
        assert!(
            Instant::now() < deadline,
            "{path} on {} never said {detail:?}; last: {} {:?}",
            server.base_url(),
            resp.cache(),
            resp.header("cache-status")
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_mark_made_on_one_instance_holds_on_the_others_and_on_one_that_was_down() {
    let mut cluster = Cluster::start(&[]);
    // Marked stale on a: b's next request of it gets the old version at once, marked (the
    // news travels through Redis), and starts its regeneration.
    let answer = cluster
        .get("a")
        .revalidate(&serde_json::json!({ "paths": ["/items/1"], "mode": "stale" }))
        .await;
    assert_eq!(answer.status, 200, "{}", answer.body);
    assert!(answer.body.contains("marked_stale"), "{}", answer.body);
    let stale = until_detail(
        cluster.get("b"),
        "/items/1",
        "invalidated (stale): path /items/1",
    )
    .await;
    assert_eq!(stale.cache(), "STALE");

    // c is down while a marks another page: when it comes back (serving what it stored), it
    // finds the mark in Redis.
    let c = cluster.instances.pop().expect("c");
    drop(c);
    let answer = cluster
        .get("a")
        .revalidate(&serde_json::json!({ "paths": ["/items/2"], "mode": "expire" }))
        .await;
    assert!(answer.body.contains("marked_expired"), "{}", answer.body);
    let c = instance_running(&cluster.redis, cluster.roots.path(), "c", "serve", &[]);
    let waited = until_detail(&c, "/items/2", "invalidated (expire): path /items/2").await;
    assert_eq!(waited.cache(), "EXPIRED");
    // Regenerated once, the mark is gone (also from Redis: both marked pages were
    // regenerated, /items/1 by b).
    let again = c.get("/items/2").await;
    assert_eq!(again.cache(), "HIT", "{:?}", again.headers);
    for page in ["/items/1", "/items/2"] {
        wait_for_redis(
            &cluster.redis,
            &format!("HEXISTS bench:page:{page} mark"),
            ":0",
        )
        .await;
    }
}

/// CDN purge requests of every instance (`isr_cdn_purges_total`, Varnish, any outcome), summed.
async fn purges_sent(cluster: &Cluster) -> f64 {
    let mut total = 0.0;
    for server in &cluster.instances {
        // Every request, whatever its outcome: a second purge that failed counts too.
        total += server
            .metrics()
            .await
            .sum("isr_cdn_purges_total", &[("cdn", "varnish")]);
    }
    total
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_page_regenerated_once_in_the_cluster_is_purged_once() {
    // Every instance purges one real Varnish (in front of `a`).
    let port = isr_tests::free_port();
    let purge = format!("http://127.0.0.1:{port}");
    let envs: &[(&str, &str)] = &[("ISR_CDN_PURGE", &purge)];
    let cluster = Cluster::start(&[("a", envs), ("b", envs), ("c", envs)]);
    let _varnish = isr_tests::varnish::Varnish::start(port, cluster.get("a").addr());
    let before = purges_sent(&cluster).await;
    until_slow3_is_stale(&cluster).await;
    let runs = cluster.loader_runs("/slow3").await;
    let answers = cluster.spread("/slow3", 60, 30).await;
    assert!(answers.iter().all(|r| r.status == 200));
    for server in &cluster.instances {
        let deadline = Instant::now() + PROPAGATION_DEADLINE;
        while server.get("/slow3").await.header("x-isr-cache") != Some("HIT") {
            assert!(
                Instant::now() < deadline,
                "{} never fresh again",
                server.base_url()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    assert_eq!(cluster.loader_runs("/slow3").await - runs, 1.0);
    // A barrier per instance: its queue sends in order, so once a purge asked now went, any
    // purge the new /slow3 made it queue went before.
    for server in &cluster.instances {
        let answer = server
            .revalidate(&serde_json::json!({ "paths": ["/page"], "mode": "regenerate" }))
            .await;
        assert!(answer.body.contains("\"purged\":true"), "{}", answer.body);
    }
    assert_eq!(
        purges_sent(&cluster).await - before,
        1.0 + 3.0,
        "one purge for the one new /slow3 (by the instance that made it), one per barrier"
    );
}
