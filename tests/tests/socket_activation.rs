//! A restart on a socket the service manager holds (systemd socket activation, `LISTEN_FDS`)
//! refuses no connection: the test plays systemd. It binds the socket, passes it to the blog as
//! descriptor 3, keeps sending requests (each on a new connection), stops the blog with
//! SIGTERM, waits, and starts a new blog on the same socket. Every request is answered `200`,
//! also the ones sent while no process was running: they waited in the socket's queue.
//!
//! One test in its own binary: the socket is inheritable here, so no other test's children
//! should see it.

use isr_tests::{poll_until, BlogServer, Fixture};
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// What systemd does between fork and exec: the socket at descriptor 3, `LISTEN_FDS=1`,
/// `LISTEN_PID` = the pid the blog will have.
const AS_SYSTEMD_STARTS_IT: &str =
    r#"exec 3<&"$ISR_TEST_PASSED_FD" && LISTEN_FDS=1 LISTEN_PID=$$ exec "$0" "$@""#;

/// One request's outcome: when it was sent, and its status or error.
type Sent = (Instant, Result<u16, String>);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restart_on_a_passed_socket_refuses_no_connection() {
    let fixture = Fixture::new();
    let socket = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = socket.local_addr().unwrap();
    rustix::io::fcntl_setfd(&socket, rustix::io::FdFlags::empty())
        .expect("make the socket inheritable");
    let start = || {
        let mut command =
            isr_tests::blog_through_shell(AS_SYSTEMD_STARTS_IT, &fixture.content_dir());
        command
            .env("ISR_TEST_PASSED_FD", socket.as_raw_fd().to_string())
            .arg("start")
            .arg("--site-root")
            .arg(fixture.site_root())
            // Not used: a blog that bound it would serve another port than the socket's.
            .args(["--addr", "127.0.0.1:0"]);
        tokio::task::block_in_place(|| BlogServer::spawn(command))
    };

    let mut first = start();
    assert_eq!(
        first.addr(),
        addr,
        "serves the passed socket; stderr:\n{}",
        first.stderr_text()
    );
    assert!(
        first
            .stderr_text()
            .contains("listening on the socket the service manager passed (LISTEN_FDS)"),
        "{}",
        first.stderr_text()
    );

    let sent: Arc<Mutex<Vec<Sent>>> = Arc::default();
    let stop = Arc::new(AtomicBool::new(false));
    let load = {
        let (sent, stop) = (sent.clone(), stop.clone());
        // A new connection per request: none is an idle keep-alive connection the old
        // process closes as it stops.
        let client = reqwest::Client::builder()
            .pool_max_idle_per_host(0)
            .timeout(Duration::from_secs(30))
            .build()
            .unwrap();
        let url = format!("http://{addr}/blog");
        tokio::spawn(async move {
            // Bounded: stopped by the test, or after 20,000 requests.
            for _ in 0..20_000 {
                if stop.load(Ordering::SeqCst) {
                    break;
                }
                let at = Instant::now();
                let outcome = match client.get(&url).send().await {
                    Ok(response) => Ok(response.status().as_u16()),
                    Err(error) => Err(format!("{error:?}")),
                };
                sent.lock().unwrap().push((at, outcome));
            }
        })
    };
    let answered_since = |since: Instant| {
        sent.lock()
            .unwrap()
            .iter()
            .filter(|(at, o)| *at >= since && o.is_ok())
            .count()
    };
    let began = Instant::now();
    poll_until(
        "requests answered by the first blog",
        Duration::from_secs(30),
        || async { (answered_since(began) >= 20).then_some(()) },
    )
    .await;

    let status = tokio::task::block_in_place(|| first.stop_with("TERM"));
    assert!(
        status.success(),
        "{status}; stderr:\n{}",
        first.stderr_text()
    );
    // No process accepts now; the requests sent meanwhile wait in the socket's queue.
    let stopped = Instant::now();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let second = start();
    let restarted = Instant::now();
    assert_eq!(second.addr(), addr);
    poll_until(
        "requests answered by the second blog",
        Duration::from_secs(30),
        || async { (answered_since(restarted) >= 20).then_some(()) },
    )
    .await;
    stop.store(true, Ordering::SeqCst);
    load.await.unwrap();

    let sent = sent.lock().unwrap();
    let failed: Vec<&Sent> = sent
        .iter()
        .filter(|(_, outcome)| *outcome != Ok(200))
        .collect();
    assert!(
        failed.is_empty(),
        "{} of {} requests failed: {:?}",
        failed.len(),
        sent.len(),
        &failed[..failed.len().min(5)]
    );
    let in_the_gap = sent
        .iter()
        .filter(|(at, _)| *at > stopped && *at < restarted)
        .count();
    assert!(
        in_the_gap >= 1,
        "a request was sent while no blog ran, and answered"
    );
}
