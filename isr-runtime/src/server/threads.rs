//! Serving on every core: one thread per core, each with its own current-thread tokio runtime
//! and its own listening socket of the same address (`SO_REUSEPORT`: the kernel spreads new
//! connections over the sockets). Only Linux spreads them: elsewhere [`Listeners::bind`] makes
//! one socket, served by one thread (the CLI serves on the shared multi-thread runtime there by
//! default, `--serve-threads 0`).
//!
//! A connection then lives on one thread from accept to close: no work stealing, no wake-ups
//! across threads, no cross-core traffic for the scheduler (what nginx's workers do). What does
//! not answer a request — regenerations, on-demand revalidations, the shared tier's pulls — is
//! spawned by the engine on the main runtime, so a render never holds up a serving loop and
//! shutdown waits for it there.
//!
//! The connection cap ([`ConnectionLimits::max_connections`]) is the server's, shared by every
//! thread; so is shutdown: every thread stops accepting, lets its connections finish (as
//! [`listener::serve_until`](super::listener::serve_until) does) and then ends.

use super::listener::{accept_until, connection_slots};
use super::ConnectionLimits;
use axum::Router;
use hyper_util::service::TowerToHyperService;
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use tokio::sync::{watch, Semaphore};

/// Listening sockets of one address, one per serving thread.
#[derive(Debug)]
pub struct Listeners {
    sockets: Vec<std::net::TcpListener>,
    addr: SocketAddr,
}

impl Listeners {
    /// Binds `threads` sockets (at least 1) to `addr` with `SO_REUSEPORT`; port 0 picks one
    /// free port for all of them.
    ///
    /// ```
    /// let listeners = isr::server::threads::Listeners::bind("127.0.0.1:0".parse().unwrap(), 2)?;
    /// assert_eq!(listeners.len(), 2);
    /// assert_ne!(listeners.local_addr().port(), 0);
    /// // A second server on the same address is refused, as with a plain listener.
    /// let again = isr::server::threads::Listeners::bind(listeners.local_addr(), 2);
    /// assert_eq!(again.unwrap_err().kind(), std::io::ErrorKind::AddrInUse);
    /// # Ok::<(), std::io::Error>(())
    /// ```
    ///
    /// # Errors
    /// The OS error when the address cannot be bound (`AddrInUse` when another process, or
    /// another `SO_REUSEPORT` group, listens on it; `AddrNotAvailable`, permission denied) or a
    /// socket of the group cannot be made.
    pub fn bind(addr: SocketAddr, threads: usize) -> io::Result<Listeners> {
        // A port another process listens on (even another isr with SO_REUSEPORT, which the
        // group would join and silently share the traffic with) is "address in use": a plain
        // socket bound first finds out, and picks the port when 0 was asked for.
        let plain = std::net::TcpListener::bind(addr)?;
        let addr = plain.local_addr()?;
        #[cfg(target_os = "linux")]
        let sockets = {
            drop(plain); // it holds the port without SO_REUSEPORT: the group binds it next
            (0..threads.max(1))
                .map(|_| reuse_port_socket(addr))
                .collect::<io::Result<Vec<_>>>()?
        };
        // Elsewhere the kernel does not spread connections over a group: one socket.
        #[cfg(not(target_os = "linux"))]
        let sockets = {
            let _ = threads;
            plain.set_nonblocking(true)?;
            vec![plain]
        };
        Ok(Listeners { sockets, addr })
    }

    /// Serves one listening socket made elsewhere (a service manager's, under socket
    /// activation) on `threads` threads (at least 1): each accepts on its own duplicate of the
    /// descriptor, and the kernel hands each connection to one of them. The socket stays open
    /// as long as anyone holds it: stopping the server closes only these duplicates.
    ///
    /// ```
    /// let socket = std::net::TcpListener::bind("127.0.0.1:0")?;
    /// let addr = socket.local_addr()?;
    /// let listeners = isr::server::threads::Listeners::from_socket(socket, 3)?;
    /// assert_eq!((listeners.len(), listeners.local_addr()), (3, addr));
    /// # Ok::<(), std::io::Error>(())
    /// ```
    ///
    /// # Errors
    /// The socket cannot be made non-blocking, its address read, or its descriptor duplicated.
    pub fn from_socket(socket: std::net::TcpListener, threads: usize) -> io::Result<Listeners> {
        socket.set_nonblocking(true)?;
        let addr = socket.local_addr()?;
        let mut sockets = (1..threads.max(1))
            .map(|_| socket.try_clone())
            .collect::<io::Result<Vec<_>>>()?;
        sockets.push(socket);
        Ok(Listeners { sockets, addr })
    }

    /// The address every socket listens on.
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// How many sockets (serving threads) there are.
    pub fn len(&self) -> usize {
        self.sockets.len()
    }

    /// Never: [`Listeners::bind`] makes at least one.
    pub fn is_empty(&self) -> bool {
        self.sockets.is_empty()
    }
}

/// A non-blocking listening socket of `addr` in a `SO_REUSEPORT` group (rustix: the standard
/// library cannot set the option before binding, and tokio's sockets need a runtime to listen).
#[cfg(target_os = "linux")]
fn reuse_port_socket(addr: SocketAddr) -> io::Result<std::net::TcpListener> {
    use rustix::net::{sockopt, AddressFamily, SocketFlags, SocketType};
    let family = match addr {
        SocketAddr::V4(_) => AddressFamily::INET,
        SocketAddr::V6(_) => AddressFamily::INET6,
    };
    let socket = rustix::net::socket_with(
        family,
        SocketType::STREAM,
        SocketFlags::CLOEXEC | SocketFlags::NONBLOCK,
        None,
    )?;
    sockopt::set_socket_reuseaddr(&socket, true)?;
    sockopt::set_socket_reuseport(&socket, true)?;
    rustix::net::bind(&socket, &addr)?;
    rustix::net::listen(&socket, 1024)?;
    Ok(std::net::TcpListener::from(socket))
}

/// Serves `app` on every socket of `listeners`, each on a thread of its own with a
/// current-thread runtime, until `shutdown` completes; returns once every thread has let its
/// connections finish and ended. Must be called on a tokio runtime (it waits there).
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> std::io::Result<()> {
/// use std::io::{Read, Write};
/// let app = axum::Router::new().route("/", axum::routing::get(|| async { "hi" }));
/// let listeners = isr::server::threads::Listeners::bind("127.0.0.1:0".parse().unwrap(), 2)?;
/// let addr = listeners.local_addr();
/// let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
/// let limits = isr::server::ConnectionLimits::default();
/// let server = tokio::spawn(isr::server::threads::serve_on_threads(listeners, app, limits, async {
///     let _ = stopped.await;
/// }));
/// let answers = tokio::task::spawn_blocking(move || {
///     (0..4).map(|_| {
///         let mut stream = std::net::TcpStream::connect(addr)?;
///         stream.write_all(b"GET / HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n")?;
///         let mut answer = String::new();
///         stream.read_to_string(&mut answer)?;
///         Ok::<_, std::io::Error>(answer)
///     }).collect::<Result<Vec<_>, _>>()
/// }).await.unwrap()?;
/// assert!(answers.iter().all(|a| a.starts_with("HTTP/1.1 200 OK\r\n") && a.ends_with("hi")));
/// stop.send(()).unwrap();
/// server.await.unwrap()?;
/// assert!(std::net::TcpStream::connect(addr).is_err(), "no longer listening");
/// # Ok(())
/// # }
/// ```
///
/// # Errors
/// When a serving thread cannot be spawned (the threads already started are stopped first),
/// or, once all have ended, the first error of a thread: its runtime or listener could not be
/// set up, or it panicked.
pub async fn serve_on_threads(
    listeners: Listeners,
    app: Router,
    limits: ConnectionLimits,
    shutdown: impl Future<Output = ()>,
) -> io::Result<()> {
    let slots = Arc::new(Semaphore::new(connection_slots(&limits)));
    let app = TowerToHyperService::new(app);
    let (stop, stopped) = watch::channel(false);
    let mut threads = Vec::with_capacity(listeners.len());
    for (i, socket) in listeners.sockets.into_iter().enumerate() {
        let (done, finished) = tokio::sync::oneshot::channel::<io::Result<()>>();
        let (app, slots, mut stopped) = (app.clone(), slots.clone(), stopped.clone());
        let spawned = std::thread::Builder::new()
            .name(format!("isr-serve-{i}"))
            .spawn(move || {
                let served = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .and_then(|runtime| {
                        runtime.block_on(async move {
                            let listener = tokio::net::TcpListener::from_std(socket)?;
                            let shutdown = async move {
                                let _ = stopped.wait_for(|stop| *stop).await;
                            };
                            accept_until(listener, app, limits, slots, shutdown).await
                        })
                    });
                let _ = done.send(served);
            });
        match spawned {
            Ok(_) => threads.push(finished),
            Err(error) => {
                let _ = stop.send(true);
                return Err(error);
            }
        }
    }
    shutdown.await;
    let _ = stop.send(true);
    let mut result = Ok(());
    for finished in threads {
        let served = finished
            .await
            .unwrap_or_else(|_| Err(io::Error::other("a serving thread panicked")));
        if result.is_ok() {
            result = served;
        }
    }
    result
}
