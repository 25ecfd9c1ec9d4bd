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
    /// until it answers; panics when it does not (see [`Varnish::try_start`]).
    pub fn start(port: u16, backend: SocketAddr) -> Varnish {
        Self::try_start(port, backend).unwrap_or_else(|error| panic!("{error}"))
    }

    /// Like [`Varnish::start`], with the failure as an error: its message holds varnishd's
    /// output, which says `Address already in use` when another process took `port` first
    /// (the port comes from [`crate::free_port`], which releases it; a caller can try again
    /// on another one).
    pub fn try_start(port: u16, backend: SocketAddr) -> Result<Varnish, String> {
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
        // Its output, read when it fails to start.
        let output_path = work.path().join("varnishd.out");
        let output = std::fs::File::create(&output_path).expect("create varnishd's output file");
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
            .stdout(Stdio::from(
                output.try_clone().expect("share varnishd's output file"),
            ))
            .stderr(Stdio::from(output))
            .spawn()
            .expect("spawn varnishd");
        let mut varnish = Varnish {
            child,
            addr,
            _work: work,
        };
        match varnish.wait_until_answering() {
            Ok(()) => Ok(varnish),
            Err(error) => Err(format!(
                "varnishd on {addr}: {error}; its output:\n{}",
                std::fs::read_to_string(&output_path).unwrap_or_default()
            )),
        }
    }

    /// Waits until Varnish itself answers on `addr`; an error when varnishd exits first (e.g.
    /// its address is in use) or does not answer in time.
    fn wait_until_answering(&mut self) -> Result<(), String> {
        let deadline = Instant::now() + START_DEADLINE;
        loop {
            if self.answers_as_varnish() {
                return Ok(());
            }
            match self.child.try_wait() {
                Ok(Some(status)) => return Err(format!("exited ({status}) before answering")),
                Ok(None) => {}
                Err(error) => return Err(format!("cannot wait for varnishd: {error}")),
            }
            if Instant::now() >= deadline {
                return Err(format!("no answer within {START_DEADLINE:?}"));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Whether `PURGE` of a path no test requests gets an answer from Varnish (`x-varnish`
    /// header). Another process that took the port first (another test's server) answers
    /// without it, or not at all.
    fn answers_as_varnish(&self) -> bool {
        use std::io::{Read, Write};
        let Ok(mut stream) =
            std::net::TcpStream::connect_timeout(&self.addr, Duration::from_secs(1))
        else {
            return false;
        };
        let _ = stream.set_read_timeout(Some(Duration::from_secs(5)));
        let _ = stream.set_write_timeout(Some(Duration::from_secs(5)));
        let request = format!(
            "PURGE /__isr_tests_varnish_probe HTTP/1.1\r\nHost: {}\r\nConnection: close\r\n\r\n",
            self.addr
        );
        if stream.write_all(request.as_bytes()).is_err() {
            return false;
        }
        let mut head = Vec::new();
        let mut chunk = [0u8; 4096];
        while !head.windows(4).any(|w| w == b"\r\n\r\n") {
            match stream.read(&mut chunk) {
                Ok(0) | Err(_) => break,
                Ok(n) => head.extend_from_slice(&chunk[..n]),
            }
        }
        String::from_utf8_lossy(&head)
            .to_ascii_lowercase()
            .contains("\r\nx-varnish:")
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

/// Starts of a backend and Varnish tried when Varnish finds its port taken.
const VARNISH_ATTEMPTS: usize = 3;

/// A backend started by `start` (given the port Varnish will listen on, for a backend that
/// purges it) with Varnish in front. [`crate::free_port`] releases the port it finds, so another
/// process may bind it before varnishd does: then both start again on another port.
pub fn in_front_of(
    mut start: impl FnMut(u16) -> crate::BlogServer,
) -> (crate::BlogServer, Varnish) {
    assert!(
        varnish_available(),
        "varnishd is not installed: `apt-get install varnish` (scripts/test.sh does)"
    );
    let mut taken: Vec<String> = Vec::new();
    for _ in 0..VARNISH_ATTEMPTS {
        let port = crate::free_port();
        let server = start(port);
        match Varnish::try_start(port, server.addr()) {
            Ok(varnish) => return (server, varnish),
            Err(error) if error.contains("Address already in use") => taken.push(error),
            Err(error) => panic!("{error}"),
        }
    }
    panic!(
        "Varnish found its port taken {VARNISH_ATTEMPTS} times:\n{}",
        taken.join("\n")
    );
}

/// One answer through Varnish.
pub struct Edge {
    pub status: u16,
    pub body: String,
    pub headers: reqwest::header::HeaderMap,
}

impl Edge {
    /// A header's value, when it is text.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// Whether Varnish answered from its cache (`x-varnish` holds two transaction ids).
    pub fn varnish_hit(&self) -> bool {
        self.header("x-varnish")
            .is_some_and(|v| v.split_whitespace().count() == 2)
    }
}

/// `GET path` through `varnish` with `headers`.
pub async fn through(varnish: &Varnish, path: &str, headers: &[(&str, &str)]) -> Edge {
    let client = reqwest::Client::new();
    let mut request = client.get(varnish.url(path));
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let response = request.send().await.expect("GET through Varnish");
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    let body = response.text().await.unwrap_or_default();
    Edge {
        status,
        body,
        headers,
    }
}
