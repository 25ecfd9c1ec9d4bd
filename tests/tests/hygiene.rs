//! Connection hygiene of the blog binary over raw loopback sockets: header, idle and body
//! timeouts, `Expect: 100-continue`, the connection cap, bearer tokens (webhook and metrics)
//! and the flags that set all of it. Each test has its own server on a free port.

use isr_tests::{poll_until, BlogServer, Fixture, RawResponse, POLL_DEADLINE, SECRET};
use reqwest::Method;
use std::net::SocketAddr;
use std::path::Path;
use std::time::{Duration, Instant};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// How long a server may take to close a connection whose 1 s (or 3 s) bound ran out.
const CLOSE_DEADLINE: Duration = Duration::from_secs(8);

/// How long one raw exchange may take.
const EXCHANGE_DEADLINE: Duration = Duration::from_secs(20);

/// Lower bound of a 1 s server timeout measured from the client (timer rounding aside).
const ONE_SECOND_LESS_SLACK: Duration = Duration::from_millis(900);

const FAILURES_METRIC: &str = "isr_revalidate_auth_failures_total";

fn lossy(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

async fn connect(addr: SocketAddr) -> TcpStream {
    TcpStream::connect(addr)
        .await
        .unwrap_or_else(|e| panic!("connect to {addr}: {e}"))
}

fn keep_alive_get(path: &str) -> String {
    format!("GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
}

/// Reads until the server closes the connection (EOF or reset), at most [`CLOSE_DEADLINE`];
/// returns what arrived and how long it took.
async fn wait_closed(stream: &mut (impl AsyncRead + Unpin)) -> (Vec<u8>, Duration) {
    let started = Instant::now();
    let mut received = Vec::new();
    let mut chunk = [0u8; 16 * 1024];
    loop {
        let read =
            tokio::time::timeout_at((started + CLOSE_DEADLINE).into(), stream.read(&mut chunk))
                .await
                .unwrap_or_else(|_| {
                    panic!(
                        "the server kept the connection open for {CLOSE_DEADLINE:?}; received {:?}",
                        lossy(&received)
                    )
                });
        match read {
            Ok(0) | Err(_) => return (received, started.elapsed()),
            Ok(n) => received.extend_from_slice(&chunk[..n]),
        }
    }
}

/// The `content-length` of a response head (0 when absent).
fn content_length(head: &str) -> usize {
    head.lines()
        .filter_map(|line| line.split_once(':'))
        .find(|(name, _)| name.trim().eq_ignore_ascii_case("content-length"))
        .and_then(|(_, value)| value.trim().parse().ok())
        .unwrap_or(0)
}

/// Reads exactly one response (head + `content-length` body) and leaves the connection open.
async fn read_one_response(stream: &mut TcpStream) -> RawResponse {
    let mut received = Vec::new();
    let mut chunk = [0u8; 16 * 1024];
    loop {
        if let Some(end) = received.windows(4).position(|w| w == b"\r\n\r\n") {
            let whole = end + 4 + content_length(&lossy(&received[..end]));
            if received.len() >= whole {
                assert_eq!(received.len(), whole, "more than one response");
                return RawResponse::parse(&received).expect("an HTTP response");
            }
        }
        let n = tokio::time::timeout(EXCHANGE_DEADLINE, stream.read(&mut chunk))
            .await
            .expect("an answer in time")
            .expect("read the answer");
        assert!(
            n > 0,
            "closed before a whole response: {:?}",
            lossy(&received)
        );
        received.extend_from_slice(&chunk[..n]);
    }
}

/// `GET path` on a new connection; `None` when the connection fails (e.g. is refused).
async fn fresh_get_status(addr: SocketAddr, path: &str) -> Option<u16> {
    let exchange = async {
        let mut stream = TcpStream::connect(addr).await.ok()?;
        let request =
            format!("GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n");
        stream.write_all(request.as_bytes()).await.ok()?;
        let mut received = Vec::new();
        stream.read_to_end(&mut received).await.ok()?;
        RawResponse::parse(&received).map(|r| r.status)
    };
    tokio::time::timeout(EXCHANGE_DEADLINE, exchange)
        .await
        .ok()
        .flatten()
}

/// Stderr lines containing `needle`.
fn log_lines(server: &BlogServer, needle: &str) -> usize {
    server
        .stderr_text()
        .lines()
        .filter(|l| l.contains(needle))
        .count()
}

#[tokio::test]
async fn a_request_head_sent_byte_by_byte_is_cut_at_the_header_timeout() {
    let fx = Fixture::new();
    let server = BlogServer::start(&fx, &["--header-timeout", "1"], &[]);
    let (mut reader, mut writer) = connect(server.addr()).await.into_split();
    // Slowloris: one byte every 100 ms, never ending the head (bounded: 20 s at most).
    let trickle = tokio::spawn(async move {
        let start = b"GET /blog HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ";
        for byte in start.iter().chain(std::iter::repeat(&b'a')).take(200) {
            if writer.write_all(&[*byte]).await.is_err() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    });
    let others = async {
        for _ in 0..4 {
            assert_eq!(server.get("/blog").await.status, 200);
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    };
    let ((received, elapsed), ()) = tokio::join!(wait_closed(&mut reader), others);
    trickle.abort();
    assert!(
        received.is_empty(),
        "no answer to half a head: {:?}",
        lossy(&received)
    );
    assert!(
        elapsed >= ONE_SECOND_LESS_SLACK,
        "closed after {elapsed:?}, before the header timeout"
    );
    // The server still serves new connections.
    assert_eq!(fresh_get_status(server.addr(), "/blog").await, Some(200));
}

#[tokio::test]
async fn idle_keep_alive_connections_get_the_idle_timeout_not_the_header_timeout() {
    let fx = Fixture::new();
    let server = BlogServer::start(&fx, &["--header-timeout", "1", "--idle-timeout", "3"], &[]);
    let mut stream = connect(server.addr()).await;
    stream
        .write_all(keep_alive_get("/blog").as_bytes())
        .await
        .unwrap();
    assert_eq!(read_one_response(&mut stream).await.status, 200);
    // Idle for longer than the header timeout (but within the idle timeout): the header
    // timeout must not run between requests, so the next request is still answered. Instead
    // of sleeping past it, wait until the header timeout cuts a second connection whose head
    // began after this one went idle: by then it would have cut this one too.
    let mut control = connect(server.addr()).await;
    control
        .write_all(b"GET /blog HTTP/1.1\r\nHost: 127.0.0.1\r\n")
        .await
        .unwrap();
    let (received, cut_after) = wait_closed(&mut control).await;
    assert!(
        received.is_empty(),
        "no answer to half a head: {:?}",
        lossy(&received)
    );
    assert!(
        cut_after >= ONE_SECOND_LESS_SLACK,
        "the control connection was cut after {cut_after:?}, before the header timeout"
    );
    stream
        .write_all(keep_alive_get("/blog").as_bytes())
        .await
        .expect("the connection is still open");
    assert_eq!(read_one_response(&mut stream).await.status, 200);
    // Then the idle timeout closes it, without an answer.
    let (received, elapsed) = wait_closed(&mut stream).await;
    assert!(received.is_empty(), "{:?}", lossy(&received));
    assert!(
        elapsed >= Duration::from_millis(2700),
        "closed after {elapsed:?}, before the idle timeout"
    );
}

#[tokio::test]
async fn a_webhook_body_shorter_than_declared_is_answered_408_at_the_body_timeout() {
    let fx = Fixture::new();
    let server = BlogServer::start(&fx, &["--body-timeout", "1"], &[]);
    let mut stream = connect(server.addr()).await;
    let head = format!(
        "POST /_isr/revalidate HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {SECRET}\r\n\
         Content-Type: application/json\r\nContent-Length: 1000\r\n\r\n"
    );
    stream.write_all(head.as_bytes()).await.unwrap();
    stream.write_all(b"{\"paths\":[").await.unwrap(); // 10 of the 1000 bytes
    let (received, elapsed) = wait_closed(&mut stream).await;
    let response = RawResponse::parse(&received)
        .unwrap_or_else(|| panic!("not a response: {:?}", lossy(&received)));
    assert_eq!(response.status, 408, "{}", response.head);
    assert!(response.body.contains("body-timeout"), "{}", response.body);
    assert!(
        elapsed >= ONE_SECOND_LESS_SLACK,
        "answered after {elapsed:?}, before the body timeout"
    );
}

#[tokio::test]
async fn expect_100_continue_over_the_limit_gets_413_without_sending_the_body() {
    let fx = Fixture::new();
    let server = BlogServer::start(&fx, &[], &[]);
    let mut stream = connect(server.addr()).await;
    let head = format!(
        "POST /_isr/revalidate HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {SECRET}\r\n\
         Content-Length: 100000\r\nExpect: 100-continue\r\n\r\n"
    );
    stream.write_all(head.as_bytes()).await.unwrap();
    let response = read_one_response(&mut stream).await;
    assert_eq!(response.status, 413, "{}", response.head);

    // Within the limit, the server asks for the body and answers after it.
    let mut stream = connect(server.addr()).await;
    let body = b"{\"paths\": []}";
    let head = format!(
        "POST /_isr/revalidate HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {SECRET}\r\n\
         Content-Length: {}\r\nExpect: 100-continue\r\n\r\n",
        body.len()
    );
    stream.write_all(head.as_bytes()).await.unwrap();
    let interim = read_one_response(&mut stream).await;
    assert_eq!(interim.status, 100, "{}", interim.head);
    stream.write_all(body).await.unwrap();
    let response = read_one_response(&mut stream).await;
    assert!(
        (200..300).contains(&response.status),
        "{}\n{}",
        response.head,
        response.body
    );
}

/// Fire-and-forget webhooks: a CMS that sends the whole request and closes its side at once
/// (`shutdown(SHUT_WR)`) still gets its revalidation carried out (hyper's HTTP/1 half-close:
/// without it the EOF cancelled the request, with no access-log line and no regeneration).
#[tokio::test]
async fn a_webhook_whose_client_closed_its_side_is_still_carried_out() {
    let fx = Fixture::new();
    let server = BlogServer::start(&fx, &[], &[]);
    fx.edit_post(
        "what-is-isr",
        "## When to use it",
        "## When to reach for it",
    );
    let body = r#"{"paths": ["/blog/what-is-isr"], "mode": "regenerate"}"#;
    let request = format!(
        "POST /_isr/revalidate HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {SECRET}\r\ncontent-length: {}\r\n\r\n{body}",
        body.len()
    );
    let mut stream = connect(server.addr()).await;
    stream.write_all(request.as_bytes()).await.unwrap();
    stream.shutdown().await.unwrap(); // our side is closed: nothing more will be sent
    let (answer, _) = wait_closed(&mut stream).await;
    let answer = RawResponse::parse(&answer).expect("an answer on the half-closed connection");
    assert_eq!(answer.status, 200, "{}", answer.head);
    assert!(answer.body.contains("regenerated"), "{}", answer.body);
    let page = server.get("/blog/what-is-isr").await;
    assert!(page.body.contains("When to reach for it"));
    // The access log is written by its own thread: the line comes shortly after the answer.
    poll_until("the webhook's access-log line", POLL_DEADLINE, || async {
        (log_lines(&server, "path=/_isr/revalidate") >= 1).then_some(())
    })
    .await;
}

/// `--serve-threads 0`: one listener on the shared multi-thread runtime, the default on macOS
/// and Windows (only Linux spreads connections over `SO_REUSEPORT` sockets). Served and shut
/// down here like the per-core threads are.
#[tokio::test]
async fn the_shared_runtime_serves_as_it_does_on_other_platforms() {
    let fx = Fixture::new();
    let mut server = BlogServer::start(&fx, &["--serve-threads", "0"], &[]);
    assert!(
        server.stderr_text().contains("serve_threads=0"),
        "{}",
        server.stderr_text()
    );
    let answers = futures::future::join_all((0..20).map(|_| server.get("/blog/what-is-isr"))).await;
    assert!(answers.iter().all(|a| a.status == 200));
    let revalidated = server
        .revalidate(&serde_json::json!({ "mode": "regenerate","paths": ["/blog"]}))
        .await;
    assert_eq!(revalidated.status, 200, "{}", revalidated.body);
    let status = server.stop_with("TERM");
    assert!(status.success(), "{status}");
}

#[tokio::test]
async fn connections_over_the_cap_get_503_and_are_closed_at_once() {
    let fx = Fixture::new();
    // The header timeout is far above how long `wait_closed` waits (CLOSE_DEADLINE), so a
    // connection closed within it was closed by the refusal, not by a timeout.
    let server = BlogServer::start(
        &fx,
        &["--max-connections", "4", "--header-timeout", "60"],
        &[],
    );
    let mut held = Vec::new();
    for _ in 0..4 {
        let mut stream = connect(server.addr()).await;
        stream
            .write_all(keep_alive_get("/blog").as_bytes())
            .await
            .unwrap();
        assert_eq!(read_one_response(&mut stream).await.status, 200);
        held.push(stream); // open and idle
    }
    let mut fifth = connect(server.addr()).await;
    // Closed at once: `wait_closed` panics past CLOSE_DEADLINE, long before the header timeout.
    let (received, _) = wait_closed(&mut fifth).await;
    let refused = RawResponse::parse(&received)
        .unwrap_or_else(|| panic!("not a response: {:?}", lossy(&received)));
    assert_eq!(refused.status, 503, "{}", refused.head);
    assert!(
        refused.head.to_ascii_lowercase().contains("retry-after: 1"),
        "{}",
        refused.head
    );
    poll_until("the refusal to be logged", POLL_DEADLINE, || async {
        (log_lines(&server, "connection limit reached") == 1).then_some(())
    })
    .await;
    // The held connections still work.
    held[0]
        .write_all(keep_alive_get("/blog").as_bytes())
        .await
        .unwrap();
    assert_eq!(read_one_response(&mut held[0]).await.status, 200);

    drop(held);
    poll_until("a new connection to be served", POLL_DEADLINE, || async {
        (fresh_get_status(server.addr(), "/blog").await == Some(200)).then_some(())
    })
    .await;
}

#[tokio::test]
async fn the_bearer_scheme_is_case_insensitive_and_failures_are_counted_and_logged() {
    let fx = Fixture::new();
    let server = BlogServer::start(&fx, &[], &[]);
    let before = server.metrics().await;
    assert_eq!(before.counter(FAILURES_METRIC, &[]), 0.0, "registered at 0");
    let webhook = |authorization: Option<String>| {
        let request = server
            .request(Method::POST, "/_isr/revalidate")
            .body(r#"{"paths": ["/blog/what-is-isr"]}"#);
        match authorization {
            Some(value) => request.header("authorization", value),
            None => request,
        }
    };
    for scheme in ["bearer", "BEARER", "Bearer", "bEaReR"] {
        let response = server
            .send(webhook(Some(format!("{scheme} {SECRET}"))))
            .await;
        assert!(
            (200..300).contains(&response.status),
            "{scheme}: {} {}",
            response.status,
            response.body
        );
    }
    let wrong = [
        Some("Bearer wrong".to_string()),
        Some(format!("bearer {SECRET}-not")),
        Some(format!("Basic {SECRET}")),
        Some(format!("Bearer{SECRET}")),
        None,
    ];
    for authorization in &wrong {
        let response = server.send(webhook(authorization.clone())).await;
        assert_eq!(response.status, 401, "{authorization:?}: {}", response.body);
        assert_eq!(response.header("www-authenticate"), Some("Bearer"));
    }
    let after = server.metrics().await;
    assert_eq!(after.counter(FAILURES_METRIC, &[]), wrong.len() as f64);
    // Logged, but not once per failure (at most one line per 10 s).
    let needle = "authentication failed";
    poll_until("the failure to be logged", POLL_DEADLINE, || async {
        (log_lines(&server, needle) >= 1).then_some(())
    })
    .await;
    assert!(
        log_lines(&server, needle) < wrong.len(),
        "{}",
        server.stderr_text()
    );
}

#[tokio::test]
async fn metrics_need_the_token_when_one_is_set() {
    let fx = Fixture::new();
    let server = BlogServer::start(&fx, &[], &[("ISR_METRICS_TOKEN", "m3trics-0123456789ab")]);
    assert_eq!(server.get("/blog").await.status, 200);
    let metrics = |authorization: Option<&str>| {
        let request = server.request(Method::GET, "/_isr/metrics");
        match authorization {
            Some(value) => request.header("authorization", value),
            None => request,
        }
    };
    // The webhook secret is not the metrics token.
    let webhook_secret = format!("Bearer {SECRET}");
    for authorization in [None, Some("Bearer nope"), Some(webhook_secret.as_str())] {
        let response = server.send(metrics(authorization)).await;
        assert_eq!(response.status, 401, "{authorization:?}: {}", response.body);
        assert_eq!(response.header("www-authenticate"), Some("Bearer"));
        assert!(!response.body.contains("isr_requests_total"));
    }
    for authorization in ["Bearer m3trics-0123456789ab", "bearer m3trics-0123456789ab"] {
        let response = server.send(metrics(Some(authorization))).await;
        assert_eq!(response.status, 200, "{authorization}: {}", response.body);
        assert!(
            response.body.contains("isr_requests_total"),
            "{}",
            response.body
        );
    }
}

#[tokio::test]
async fn shutdown_closes_idle_connections_and_does_not_wait_for_a_slow_head_forever() {
    let fx = Fixture::new();
    let mut server = BlogServer::start(&fx, &["--header-timeout", "2"], &[]);
    let mut idle = connect(server.addr()).await;
    idle.write_all(keep_alive_get("/blog").as_bytes())
        .await
        .unwrap();
    assert_eq!(read_one_response(&mut idle).await.status, 200);
    let mut slow = connect(server.addr()).await;
    slow.write_all(b"GET /blog HTTP/1.1\r\nHost: 127.0.0.1\r\n")
        .await
        .unwrap();

    let started = Instant::now();
    server.signal("TERM");
    let (received, _) = wait_closed(&mut idle).await;
    assert!(received.is_empty(), "{:?}", lossy(&received));
    let status = server.wait_exit(CLOSE_DEADLINE);
    assert_eq!(status.code(), Some(0), "{}", server.stderr_text());
    assert!(
        started.elapsed() < CLOSE_DEADLINE,
        "exited after {:?}",
        started.elapsed()
    );
    let (received, _) = wait_closed(&mut slow).await;
    assert!(received.is_empty(), "{:?}", lossy(&received));
}

/// Arguments, extra env, and the flag and env var the message must name.
type Case<'a> = (&'a [&'a str], &'a [(&'a str, &'a str)], [&'a str; 2]);

#[test]
fn bad_connection_limits_are_configuration_errors_naming_flag_and_env() {
    let fx = Fixture::new();
    let root = fx.path().join("unused");
    let root = root.to_str().unwrap();
    let header = ["--header-timeout", "ISR_HEADER_TIMEOUT"];
    let idle = ["--idle-timeout", "ISR_IDLE_TIMEOUT"];
    let body = ["--body-timeout", "ISR_BODY_TIMEOUT"];
    let max = ["--max-connections", "ISR_MAX_CONNECTIONS"];
    let send = ["--send-timeout", "ISR_SEND_TIMEOUT"];
    let cases: [Case; 10] = [
        (
            &["serve", "--site-root", root, "--header-timeout", "0"],
            &[],
            header,
        ),
        (
            &["--header-timeout", "1.5", "--site-root", root],
            &[],
            header,
        ),
        (
            &["serve", "--site-root", root, "--idle-timeout", "soon"],
            &[],
            idle,
        ),
        (
            &["serve", "--site-root", root],
            &[("ISR_IDLE_TIMEOUT", "0")],
            idle,
        ),
        (
            &["serve", "--site-root", root],
            &[("ISR_BODY_TIMEOUT", "-1")],
            body,
        ),
        (
            &["serve", "--site-root", root, "--max-connections", "0"],
            &[],
            max,
        ),
        (
            &["serve", "--site-root", root],
            &[("ISR_MAX_CONNECTIONS", "many")],
            max,
        ),
        (
            &["serve", "--site-root", root, "--send-timeout", "0"],
            &[],
            send,
        ),
        (
            &["serve", "--site-root", root],
            &[("ISR_SEND_TIMEOUT", "2 minutes")],
            send,
        ),
        // The flag beats the env: its bad value is an error even with a good env value.
        (
            &["serve", "--site-root", root, "--body-timeout", "x"],
            &[("ISR_BODY_TIMEOUT", "5")],
            body,
        ),
    ];
    for (args, envs, names) in cases {
        let out = fx.run(args, envs);
        assert_eq!(out.code(), Some(2), "{args:?} {envs:?}: {}", out.stderr);
        for name in names {
            assert!(
                out.stderr.contains(name),
                "{args:?} {envs:?}: {name} not in {}",
                out.stderr
            );
        }
        assert_eq!(
            out.stderr.lines().filter(|l| !l.trim().is_empty()).count(),
            1,
            "a one-line message: {}",
            out.stderr
        );
    }
    assert!(
        !Path::new(root).exists(),
        "a failed configuration built anyway"
    );
}
