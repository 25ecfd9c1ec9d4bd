//! A real Varnish (Debian's `varnishd`) in front of a server, with the shipped
//! `deploy/varnish/isr.vcl`, on a free loopback port, in its own working folder; stopped (its
//! whole process group) on drop.

use std::net::SocketAddr;
use std::os::unix::process::CommandExt;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// How long `varnishd` may take to start answering.
const START_DEADLINE: Duration = Duration::from_secs(30);

/// Whether `varnishd` is installed (`.ci/run` installs Debian's `varnish`).
pub fn varnish_available() -> bool {
    crate::program_runs("varnishd", "-V")
}

/// A running Varnish.
pub struct Varnish {
    child: Child,
    addr: SocketAddr,
    _work: tempfile::TempDir,
}

impl Varnish {
    /// Starts Varnish on `127.0.0.1:port` with the shipped VCL pointed at `backend`, and waits
    /// until it answers.
    pub fn start(port: u16, backend: SocketAddr) -> Varnish {
        let work = tempfile::tempdir().expect("a working folder");
        let shipped = crate::workspace_root().join("deploy/varnish/isr.vcl");
        let vcl = std::fs::read_to_string(&shipped).expect("deploy/varnish/isr.vcl");
        let vcl = vcl
            .replace(
                ".host = \"127.0.0.1\";",
                &format!(".host = \"{}\";", backend.ip()),
            )
            .replace(
                ".port = \"3000\";",
                &format!(".port = \"{}\";", backend.port()),
            );
        assert!(
            vcl.contains(&backend.port().to_string()),
            "backend not set in the VCL"
        );
        let vcl_path = work.path().join("isr.vcl");
        std::fs::write(&vcl_path, vcl).unwrap();
        // varnishd creates its own instance folder (and hands it to its unprivileged user).
        let instance = work.path().join("instance");
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        let child = Command::new("varnishd")
            .arg("-F")
            .args(["-a", &addr.to_string()])
            .arg("-f")
            .arg(&vcl_path)
            .arg("-n")
            .arg(&instance)
            .args(["-s", "malloc,32m", "-T", "none"])
            .process_group(0)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn varnishd");
        let varnish = Varnish {
            child,
            addr,
            _work: work,
        };
        varnish.wait_until_listening();
        varnish
    }

    fn wait_until_listening(&self) {
        let deadline = Instant::now() + START_DEADLINE;
        while std::net::TcpStream::connect(self.addr).is_err() {
            assert!(
                Instant::now() < deadline,
                "varnishd did not listen on {} within {START_DEADLINE:?}",
                self.addr
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// `http://127.0.0.1:PORT`.
    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The absolute URL of `path` through Varnish.
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base_url())
    }
}

impl Drop for Varnish {
    fn drop(&mut self) {
        let group = rustix::process::Pid::from_raw(self.child.id() as i32);
        if let Some(group) = group {
            let _ = rustix::process::kill_process_group(group, rustix::process::Signal::KILL);
        }
        let _ = self.child.wait();
    }
}
