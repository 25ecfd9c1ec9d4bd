//! A restart on a socket the service manager holds (systemd socket activation, `LISTEN_FDS`)
//! refuses no connection: the test plays systemd. It binds the socket, passes it to the blog as
//! descriptor 3, keeps sending requests (each on a new connection), stops the blog with
//! SIGTERM, sends five more requests while no blog runs, and starts a new blog on the same
//! socket (on the shared runtime, `--serve-threads 0`, where the first used a thread per core).
//! Every request is answered `200`, the five too: they waited in the socket's queue. A socket
//! that is not listening (what `Accept=yes` passes) stops the blog with exit status 2.
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
    let blog_on = |fd: i32, extra: &[&str]| {
        let mut command =
            isr_tests::blog_through_shell(AS_SYSTEMD_STARTS_IT, &fixture.content_dir());
        command
            .env("ISR_TEST_PASSED_FD", fd.to_string())
            .arg("start")
            .arg("--site-root")
            .arg(fixture.site_root())
            // Not used: a blog that bound it would serve another port than the socket's.
            .args(["--addr", "127.0.0.1:0"])
            .args(extra);
        command
    };
    let start = |extra: &[&str]| {
        let command = blog_on(socket.as_raw_fd(), extra);
        tokio::task::block_in_place(|| BlogServer::spawn(command))
    };

    // A connection is no listening socket: refused at start, naming the variable.
    let connection = std::net::TcpStream::connect(addr).unwrap();
    rustix::io::fcntl_setfd(&connection, rustix::io::FdFlags::empty()).unwrap();
    let refused = isr_tests::run_to_completion(
        blog_on(connection.as_raw_fd(), &[]),
        Duration::from_secs(60),
    );
    assert_eq!(refused.code(), Some(2), "{}", refused.stderr);
    assert!(
        refused
            .stderr
            .contains("LISTEN_FDS: the socket passed is not listening"),
        "{}",
        refused.stderr
    );
    drop(connection);

    let mut first = start(&[]);
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

    // A new connection per request: none is an idle keep-alive connection, which the old
    // process closes as it stops (as any server does; a client retries such a request).
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(0)
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap();
    let sent: Arc<Mutex<Vec<Sent>>> = Arc::default();
    let stop = Arc::new(AtomicBool::new(false));
    let load = {
        let (sent, stop, client) = (sent.clone(), stop.clone(), client.clone());
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
    // No blog runs now. The load's next request waits in the socket's queue, and so do five
    // more, sent now, each on a connection of its own.
    let in_the_gap: Vec<_> = (0..5)
        .map(|_| {
            let (client, url) = (client.clone(), format!("http://{addr}/blog"));
            tokio::spawn(async move {
                match client.get(&url).send().await {
                    Ok(response) => Ok(response.status().as_u16()),
                    Err(error) => Err(format!("{error:?}")),
                }
            })
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let second = start(&["--serve-threads", "0"]);
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

    for request in in_the_gap {
        assert_eq!(request.await.unwrap(), Ok(200), "sent while no blog ran");
    }
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
}
