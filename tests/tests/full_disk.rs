//! A real full disk: the blog's site root on a small tmpfs (CI runs as root, which may mount
//! one). A regeneration that cannot be written keeps the old page (200), is counted as
//! `store_error`, backs off, and succeeds by itself once there is space again.

use isr_tests::{poll_until, BlogServer, Fixture, POLL_DEADLINE, POST_REVALIDATE};
use std::path::{Path, PathBuf};
use std::process::Command;

const POST: &str = "/blog/what-is-isr";
const POST_SLUG: &str = "what-is-isr";
const POST_OLD_TEXT: &str = "No content frozen forever.";
const SLUG_ROUTE: &str = "/blog/:slug";

/// A tmpfs mounted on a folder, unmounted when dropped (also when the test fails).
struct Tmpfs(PathBuf);

impl Tmpfs {
    fn mount(dir: &Path, size: &str) -> Tmpfs {
        let status = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir)
            .status()
            .expect("run mount");
        assert!(
            status.success(),
            "mount tmpfs on {}: {status}",
            dir.display()
        );
        Tmpfs(dir.to_path_buf())
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

fn is_root() -> bool {
    rustix::process::geteuid().is_root()
}

/// Writes zeros into `file` until the file system says it is full.
fn fill(file: &Path) {
    use std::io::Write;
    let mut out = std::fs::File::create(file).expect("create the filler");
    let chunk = vec![0u8; 64 * 1024];
    for _ in 0..10_000 {
        if out.write_all(&chunk).and_then(|_| out.flush()).is_err() {
            return;
        }
    }
    panic!("the tmpfs never filled up");
}

#[tokio::test]
async fn a_full_disk_keeps_the_old_page_and_recovers_when_space_returns() {
    if !is_root() {
        // A test that cannot do its work fails (CI runs as root); a developer who is not root
        // may skip it knowingly.
        assert!(
            std::env::var("ISR_SKIP_ROOT_TESTS").as_deref() == Ok("1"),
            "mounting a tmpfs needs root: run as root (CI does), or set ISR_SKIP_ROOT_TESTS=1 to skip"
        );
        eprintln!("skipping: ISR_SKIP_ROOT_TESTS=1 and not root");
        return;
    }
    let fx = Fixture::new();
    let _tmpfs = Tmpfs::mount(&fx.site_root(), "4m");
    let server = BlogServer::start(&fx, &[], &[("ISR_CLIENT_BUILD", "off")]);
    let old = server.get(POST).await;
    assert_eq!(old.status, 200);

    let filler = fx.site_root().join("filler.bin");
    fill(&filler);
    fx.edit_post(
        POST_SLUG,
        POST_OLD_TEXT,
        "Written after the disk filled up.",
    );
    fx.wait_until_stale(POST, POST_REVALIDATE).await;
    let stale = server.get(POST).await;
    assert_eq!(stale.status, 200);
    assert_eq!(stale.cache(), "STALE");
    assert_eq!(stale.body, old.body);

    let s = &server;
    let old_body = old.body.as_str();
    poll_until("a store_error regeneration", POLL_DEADLINE, || async move {
        let resp = s.get(POST).await;
        assert_eq!(resp.status, 200, "the old page is served: {}", resp.body);
        assert_eq!(resp.body, old_body);
        (s.metrics()
            .await
            .regenerations(SLUG_ROUTE, "store_error", "stale")
            >= 1.0)
            .then_some(())
    })
    .await;
    let logged = server.stderr_text();
    assert!(
        logged
            .lines()
            .any(|l| l.contains(POST) && l.contains("store_error")),
        "the failure is logged with the page path:\n{logged}"
    );

    std::fs::remove_file(&filler).expect("free the space");
    let fresh = poll_until(
        "recovery once there is space",
        POLL_DEADLINE,
        || async move {
            let resp = s.get(POST).await;
            assert_eq!(resp.status, 200, "{}", resp.body);
            resp.body
                .contains("Written after the disk filled up.")
                .then_some(resp)
        },
    )
    .await;
    assert_eq!(fresh.cache(), "HIT");
    let on_disk = std::fs::read_to_string(fx.page_file(POST)).expect("the static export");
    assert!(on_disk.contains("Written after the disk filled up."));
}
