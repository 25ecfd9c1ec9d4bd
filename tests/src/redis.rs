//! A real Redis (Debian's `redis-server`) on a free loopback port with its own temporary
//! folder and no persistence; stopped (its whole process group) on drop. It can be stopped and
//! started again on the same port (empty, as a Redis restarted without persistence).

use std::net::SocketAddr;
use std::os::unix::process::CommandExt;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// How long `redis-server` may take to answer.
const START_DEADLINE: Duration = Duration::from_secs(20);

/// Starts of `redis-server` tried, each on a new port: `crate::free_port` releases the port
/// it found, and another process may bind it before `redis-server` does.
const START_ATTEMPTS: usize = 5;

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

/// Why `redis-server` did not come up.
enum StartError {
    /// It exited saying its address was in use: another process took the port first.
    PortTaken(String),
    /// Anything else.
    Failed(String),
}

impl Redis {
    /// Starts `redis-server` on a free loopback port and waits until it answers; when another
    /// process took the port first, tries again on another one (at most `START_ATTEMPTS`).
    pub fn start() -> Redis {
        let mut redis = Redis {
            child: None,
            addr: SocketAddr::from(([127, 0, 0, 1], 0)),
            work: tempfile::tempdir().expect("a working folder"),
        };
        let mut taken: Vec<String> = Vec::new();
        for _ in 0..START_ATTEMPTS {
            redis.addr = SocketAddr::from(([127, 0, 0, 1], crate::free_port()));
            match redis.try_start() {
                Ok(()) => return redis,
                Err(StartError::PortTaken(message)) => taken.push(message),
                Err(StartError::Failed(message)) => panic!("{message}"),
            }
        }
        panic!(
            "redis-server found its port taken {START_ATTEMPTS} times:\n{}",
            taken.join("\n")
        );
    }

    /// `redis://127.0.0.1:PORT/0`.
    pub fn url(&self) -> String {
        format!("redis://{}/0", self.addr)
    }

    /// Starts the server again (empty) on the same port after [`Redis::stop`] (the clients
    /// hold its URL, so it cannot move: panics if the port was taken meanwhile).
    pub fn start_again(&mut self) {
        if let Err(StartError::PortTaken(message) | StartError::Failed(message)) = self.try_start()
        {
            panic!("{message}");
        }
    }

    /// Spawns `redis-server` on `self.addr` and waits until it answers as itself: `INFO`
    /// reports its own process id (a process that holds the port already answers otherwise,
    /// or not at all, while ours exits).
    fn try_start(&mut self) -> Result<(), StartError> {
        assert!(self.child.is_none(), "already running");
        let log = self.work.path().join("redis.log");
        let _ = std::fs::remove_file(&log);
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
            .arg("--logfile")
            .arg(&log)
            .process_group(0)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn redis-server");
        let pid = child.id();
        self.child = Some(child);
        let deadline = Instant::now() + START_DEADLINE;
        loop {
            if self.server_pid().ok() == Some(pid) {
                return Ok(());
            }
            let exited = self
                .child
                .as_mut()
                .and_then(|child| child.try_wait().expect("wait for redis-server"));
            if let Some(status) = exited {
                self.child = None;
                let output = std::fs::read_to_string(&log).unwrap_or_default();
                let message = format!(
                    "redis-server on {} exited ({status}) before answering; its log:\n{output}",
                    self.addr
                );
                return Err(if output.contains("Address already in use") {
                    StartError::PortTaken(message)
                } else {
                    StartError::Failed(message)
                });
            }
            if Instant::now() >= deadline {
                self.stop();
                return Err(StartError::Failed(format!(
                    "redis-server did not answer on {} within {START_DEADLINE:?}; its log:\n{}",
                    self.addr,
                    std::fs::read_to_string(&log).unwrap_or_default()
                )));
            }
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

    /// Sends one inline command whose answer is an array of bulk strings (`KEYS *`,
    /// `HGETALL key`, `SMEMBERS key`) and returns them; an error for any other answer.
    pub fn strings(&self, command: &str) -> std::io::Result<Vec<Vec<u8>>> {
        use std::io::{BufRead, BufReader, Read, Write};
        let mut stream = std::net::TcpStream::connect_timeout(&self.addr, Duration::from_secs(1))?;
        stream.set_read_timeout(Some(Duration::from_secs(2)))?;
        stream.write_all(format!("{command}\r\n").as_bytes())?;
        let mut reader = BufReader::new(stream);
        fn read_line(reader: &mut impl BufRead) -> std::io::Result<String> {
            let mut line = String::new();
            reader.read_line(&mut line)?;
            Ok(line.trim_end().to_string())
        }
        let head = read_line(&mut reader)?;
        let count: usize = head
            .strip_prefix('*')
            .and_then(|n| n.parse().ok())
            .ok_or_else(|| std::io::Error::other(format!("{command}: answered {head:?}")))?;
        let mut items = Vec::with_capacity(count);
        for _ in 0..count {
            let line = read_line(&mut reader)?;
            let length: usize = line
                .strip_prefix('$')
                .and_then(|n| n.parse().ok())
                .ok_or_else(|| std::io::Error::other(format!("{command}: item {line:?}")))?;
            let mut bulk = vec![0; length + 2];
            reader.read_exact(&mut bulk)?;
            bulk.truncate(length);
            items.push(bulk);
        }
        Ok(items)
    }

    /// Every string Redis holds, as `(key, field, value)`: each field of each hash, each member
    /// of each set, each string value (streams and other types are left out). A page's `gzip`
    /// and `br` fields are decompressed.
    pub fn contents(&self) -> Vec<(String, String, Vec<u8>)> {
        let mut found = Vec::new();
        for key in self.strings("KEYS *").expect("KEYS *") {
            let key = String::from_utf8_lossy(&key).into_owned();
            match self.command(&format!("TYPE {key}")).expect("TYPE").as_str() {
                "+hash" => {
                    let pairs = self.strings(&format!("HGETALL {key}")).expect("HGETALL");
                    for pair in pairs.chunks(2) {
                        let field = String::from_utf8_lossy(&pair[0]).into_owned();
                        let value = match field.as_str() {
                            "gzip" | "br" => {
                                let encoding = if field == "br" { "br" } else { "gzip" };
                                crate::decompressed(encoding, &pair[1]).into_bytes()
                            }
                            _ => pair[1].clone(),
                        };
                        found.push((key.clone(), field, value));
                    }
                }
                "+set" => {
                    for member in self.strings(&format!("SMEMBERS {key}")).expect("SMEMBERS") {
                        found.push((key.clone(), String::new(), member));
                    }
                }
                "+string" => {
                    let value = self.command(&format!("GET {key}")).expect("GET");
                    found.push((key.clone(), String::new(), value.into_bytes()));
                }
                _ => {}
            }
        }
        found
    }

    /// The `process_id` that the server on `addr` reports in `INFO server`.
    fn server_pid(&self) -> std::io::Result<u32> {
        let info = self.command("INFO server")?;
        info.lines()
            .find_map(|line| line.strip_prefix("process_id:"))
            .and_then(|pid| pid.trim().parse().ok())
            .ok_or_else(|| std::io::Error::other(format!("INFO server answered {info:?}")))
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
