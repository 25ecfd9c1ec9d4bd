//! A real Redis (Debian's `redis-server`) on a free loopback port with its own temporary
//! folder and no persistence; stopped (its whole process group) on drop. It can be stopped and
//! started again on the same port (empty, as a Redis restarted without persistence).

use std::net::SocketAddr;
use std::os::unix::process::CommandExt;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// How long `redis-server` may take to answer `PING`.
const START_DEADLINE: Duration = Duration::from_secs(20);

/// Whether `redis-server` is installed (`.ci/run` installs Debian's `redis-server`).
pub fn redis_available() -> bool {
    crate::program_runs("redis-server", "--version")
}

/// A running (or stopped) Redis.
pub struct Redis {
    child: Option<Child>,
    addr: SocketAddr,
    work: tempfile::TempDir,
}

impl Redis {
    /// Starts `redis-server` on a free loopback port and waits until it answers.
    pub fn start() -> Redis {
        let mut redis = Redis {
            child: None,
            addr: SocketAddr::from(([127, 0, 0, 1], crate::free_port())),
            work: tempfile::tempdir().expect("a working folder"),
        };
        redis.start_again();
        redis
    }

    /// `redis://127.0.0.1:PORT/0`.
    pub fn url(&self) -> String {
        format!("redis://{}/0", self.addr)
    }

    /// Starts the server again (empty) on the same port after [`Redis::stop`].
    pub fn start_again(&mut self) {
        assert!(self.child.is_none(), "already running");
        let child = Command::new("redis-server")
            .args([
                "--bind",
                "127.0.0.1",
                "--port",
                &self.addr.port().to_string(),
            ])
            .args(["--save", "", "--appendonly", "no", "--daemonize", "no"])
            .arg("--dir")
            .arg(self.work.path())
            .process_group(0)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn redis-server");
        self.child = Some(child);
        let deadline = Instant::now() + START_DEADLINE;
        while self.ping().is_err() {
            assert!(
                Instant::now() < deadline,
                "redis-server did not answer on {} within {START_DEADLINE:?}",
                self.addr
            );
            std::thread::sleep(Duration::from_millis(25));
        }
    }

    /// Kills the server (its data is gone: no persistence).
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            kill_group(&child);
            let _ = child.wait();
        }
    }

    /// Sends one inline command (arguments without spaces) and returns its answer: a status,
    /// error or integer line as sent (`+OK`, `:1`), a bulk string's text, or `(nil)`.
    pub fn command(&self, command: &str) -> std::io::Result<String> {
        use std::io::{BufRead, BufReader, Read, Write};
        let mut stream = std::net::TcpStream::connect_timeout(&self.addr, Duration::from_secs(1))?;
        stream.set_read_timeout(Some(Duration::from_secs(2)))?;
        stream.write_all(format!("{command}\r\n").as_bytes())?;
        let mut reader = BufReader::new(stream);
        let mut line = String::new();
        reader.read_line(&mut line)?;
        let line = line.trim_end().to_string();
        let Some(length) = line.strip_prefix('$') else {
            return Ok(line);
        };
        let Ok(length) = length.parse::<usize>() else {
            return Ok("(nil)".into());
        };
        let mut bulk = vec![0; length + 2];
        reader.read_exact(&mut bulk)?;
        bulk.truncate(length);
        Ok(String::from_utf8_lossy(&bulk).into_owned())
    }

    fn ping(&self) -> std::io::Result<()> {
        match self.command("PING")?.as_str() {
            "+PONG" => Ok(()),
            other => Err(std::io::Error::other(format!("PING answered {other:?}"))),
        }
    }
}

fn kill_group(child: &Child) {
    if let Some(group) = rustix::process::Pid::from_raw(child.id() as i32) {
        let _ = rustix::process::kill_process_group(group, rustix::process::Signal::KILL);
    }
}

impl Drop for Redis {
    fn drop(&mut self) {
        self.stop();
    }
}
