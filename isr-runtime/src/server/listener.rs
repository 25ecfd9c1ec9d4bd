//! The accept loop: HTTP/1 connections bounded in time and in number.
//!
//! `axum::serve` runs hyper without a timer: a client that sends half a request head, or a body
//! shorter than it declared, holds its connection (and a file descriptor) forever, and nothing
//! bounds how many connections are open. [`serve_until`] accepts connections itself and holds
//! each one to the [`ConnectionLimits`]:
//!
//! | phase of a connection | bound | past it |
//! |---|---|---|
//! | accepted, request head not complete | [`header_timeout`](ConnectionLimits::header_timeout) from the accept | closed, no answer |
//! | request head larger than [`max_header_bytes`](ConnectionLimits::max_header_bytes) | | `431`, closed (the buffer is freed with the connection) |
//! | response sent, no byte of a next request | [`idle_timeout`](ConnectionLimits::idle_timeout) from the end of the response | closed (FIN) |
//! | first byte of a next request arrived, head not complete | `header_timeout` from that byte | closed, no answer |
//! | a handler reads the request body | [`body_timeout`](ConnectionLimits::body_timeout) between two chunks | the read fails (the webhook answers `408`) |
//! | a handler runs | not bounded here (loaders have their own timeout) | |
//! | the client closes its side after sending the request (a fire-and-forget webhook) | | the request is still carried out and answered (HTTP/1 half-close) |
//! | the response is written and the client does not read it | [`send_timeout`](ConnectionLimits::send_timeout) without any byte taken by the socket | closed |
//! | more than [`max_connections`](ConnectionLimits::max_connections) open | | a new connection gets `503` and is closed at once |
//!
//! hyper 1.x has `header_read_timeout`, but it runs from the moment hyper starts waiting for a
//! head: on a keep-alive connection that is the end of the previous response, so it bounds the
//! idle gap and the next head *together*. That is why the phases above are tracked here (a
//! socket wrapper sees the first byte of a request, a service wrapper sees when a request starts
//! and when its response body is finished), and hyper runs without a timer of its own: no timer
//! is armed per request, the watchdog wakes at the phases' deadlines (see `Activity::expired`).

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::{pin, Pin};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::ConnectInfo;
use axum::Router;
use hyper::body::{Body as HttpBody, Frame, Incoming, SizeHint};
use hyper::server::conn::http1;
use hyper::service::Service;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use hyper_util::service::TowerToHyperService;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{watch, Semaphore};

pub(crate) use isr_core::log_limit::LogLimiter;
use tokio::time::Instant;
use tower_http::timeout::TimeoutBody;

/// [`ConnectionLimits::max_connections`] when the open-file limit allows it.
pub const DEFAULT_MAX_CONNECTIONS: usize = 10_000;

/// File descriptors kept free for everything but connections (site files, the listener, logs)
/// when [`default_max_connections`] derives the cap from the open-file limit.
pub const RESERVED_FILE_DESCRIPTORS: u64 = 64;

/// [`ConnectionLimits::max_header_bytes`] by default: request heads hold at most this much
/// memory per connection while they arrive.
pub const DEFAULT_MAX_HEADER_BYTES: usize = 64 * 1024;

/// The smallest [`ConnectionLimits::max_header_bytes`] (hyper's smallest read buffer).
pub const MIN_HEADER_BYTES: usize = 8 * 1024;

/// How long the accept loop waits after an accept error that is not about one connection
/// (`EMFILE`, `ENFILE`, `ENOBUFS`, …) before it tries again.
pub const ACCEPT_BACKOFF: Duration = Duration::from_millis(100);

/// What one connection may cost the server: how long it may take to send a request head, stay
/// idle, or pause while sending a body, and how many connections may be open at once.
///
/// ```
/// use std::time::Duration;
/// let limits = isr::server::ConnectionLimits::default();
/// assert_eq!(limits.header_timeout, Duration::from_secs(10));
/// assert_eq!(limits.idle_timeout, Duration::from_secs(60));
/// assert_eq!(limits.body_timeout, Duration::from_secs(10));
/// assert_eq!(limits.send_timeout, Duration::from_secs(30));
/// assert_eq!(limits.max_header_bytes, 64 * 1024);
/// assert!((1..=isr::server::listener::DEFAULT_MAX_CONNECTIONS).contains(&limits.max_connections));
///
/// let strict = isr::server::ConnectionLimits { header_timeout: Duration::from_secs(2), ..limits };
/// assert_eq!(strict.idle_timeout, Duration::from_secs(60));
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ConnectionLimits {
    /// Longest time from the accept (or from the first byte of a later request on a keep-alive
    /// connection) to the end of the request head. Sending the head slowly, byte by byte, does
    /// not extend it. Past it the connection is closed without an answer.
    pub header_timeout: Duration,
    /// Longest time a keep-alive connection stays open after a response with no byte of a next
    /// request. Past it the connection is closed. A request in flight is never cut by it.
    pub idle_timeout: Duration,
    /// Longest pause while a handler reads a request body: the wait for each next chunk is
    /// bounded, not the whole body. Past it the read fails (`POST /_isr/revalidate` answers
    /// `408`) and the connection is closed after the answer. Bodies nobody reads are not
    /// waited for.
    pub body_timeout: Duration,
    /// Longest time a response write may make no progress (the client stopped reading and
    /// the socket's buffers are full). Past it the connection is closed. A slow client that
    /// keeps reading is never cut.
    pub send_timeout: Duration,
    /// Largest request head (request line and headers), in bytes: what one connection's read
    /// buffer may grow to while its head arrives. A larger head gets `431 Request Header
    /// Fields Too Large` and the connection is closed. At least [`MIN_HEADER_BYTES`].
    pub max_header_bytes: usize,
    /// Open connections at most. Above it a new connection is accepted, answered `503` with
    /// `retry-after: 1` and closed at once (never left waiting in the kernel's backlog); this is
    /// logged at most once per 10 s.
    pub max_connections: usize,
}

impl Default for ConnectionLimits {
    fn default() -> Self {
        ConnectionLimits {
            header_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(60),
            body_timeout: Duration::from_secs(10),
            send_timeout: Duration::from_secs(30),
            max_header_bytes: DEFAULT_MAX_HEADER_BYTES,
            max_connections: default_max_connections(),
        }
    }
}

/// [`DEFAULT_MAX_CONNECTIONS`], or fewer when the process's open-file limit (soft
/// `RLIMIT_NOFILE`) minus [`RESERVED_FILE_DESCRIPTORS`] is lower, so that the cap is reached
/// before `EMFILE`. At least 1.
///
/// ```
/// let cap = isr::server::listener::default_max_connections();
/// assert!((1..=isr::server::listener::DEFAULT_MAX_CONNECTIONS).contains(&cap));
/// ```
pub fn default_max_connections() -> usize {
    #[cfg(unix)]
    let soft = rustix::process::getrlimit(rustix::process::Resource::Nofile).current;
    // No per-process descriptor limit to stay under (Windows).
    #[cfg(not(unix))]
    let soft: Option<u64> = None;
    match soft {
        Some(limit) => limit
            .saturating_sub(RESERVED_FILE_DESCRIPTORS)
            .clamp(1, DEFAULT_MAX_CONNECTIONS as u64) as usize,
        None => DEFAULT_MAX_CONNECTIONS,
    }
}

/// Serves `app` on `listener` within `limits` until `shutdown` completes, then stops
/// accepting (the listening socket is closed), lets every open connection finish the request
/// it is in (idle ones are closed at once; one awaiting a request head gets up to
/// [`STOP_HEAD_GRACE`] to send its first byte, and one with part of a head received the rest of
/// its header timeout; such a request is answered with `connection: close`), and returns when
/// all are closed. Whatever the caller does after this returns
/// runs with no request left in flight.
///
/// Errors of single connections are logged at `debug` and never end the loop; accept errors
/// such as `EMFILE` are logged (at most once per 10 s) and retried after [`ACCEPT_BACKOFF`].
/// The peer address is in each request's extensions as axum's
/// [`ConnectInfo<SocketAddr>`](axum::extract::ConnectInfo).
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> std::io::Result<()> {
/// use std::io::{Read, Write};
/// let app = axum::Router::new().route("/", axum::routing::get(|| async { "hi" }));
/// let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
/// let addr = listener.local_addr()?;
/// let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
/// let limits = isr::server::ConnectionLimits::default();
/// let server = tokio::spawn(isr::server::listener::serve_until(listener, app, limits, async {
///     let _ = stopped.await;
/// }));
///
/// let answer = tokio::task::spawn_blocking(move || {
///     let mut stream = std::net::TcpStream::connect(addr)?;
///     stream.write_all(b"GET / HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n")?;
///     let mut answer = String::new();
///     stream.read_to_string(&mut answer)?;
///     Ok::<_, std::io::Error>(answer)
/// })
/// .await
/// .unwrap()?;
/// assert!(answer.starts_with("HTTP/1.1 200 OK\r\n"), "{answer}");
/// assert!(answer.ends_with("\r\n\r\nhi"), "{answer}");
///
/// stop.send(()).unwrap();
/// server.await.unwrap()?; // returns once every connection is closed
/// assert!(std::net::TcpStream::connect(addr).is_err(), "no longer listening");
/// # Ok(())
/// # }
/// ```
///
/// # Errors
/// None today: every accept and connection error is logged and handled in the loop. The
/// `io::Result` leaves room for a listener error that must end serving.
pub async fn serve_until(
    listener: TcpListener,
    app: Router,
    limits: ConnectionLimits,
    shutdown: impl Future<Output = ()>,
) -> io::Result<()> {
    let slots = Arc::new(Semaphore::new(connection_slots(&limits)));
    accept_until(
        listener,
        TowerToHyperService::new(app),
        limits,
        slots,
        shutdown,
    )
    .await
}

/// [`ConnectionLimits::max_connections`] as semaphore permits (`acquire` takes a u32).
pub(crate) fn connection_slots(limits: &ConnectionLimits) -> usize {
    limits.max_connections.min(u32::MAX as usize)
}

/// The accept loop of one listener: connections take a slot of `slots` (shared by every
/// listener of the server: the cap is the server's) and run on the current runtime; returns
/// once `shutdown` completed and every connection it accepted is closed.
pub(crate) async fn accept_until(
    listener: TcpListener,
    app: TowerToHyperService<Router>,
    limits: ConnectionLimits,
    slots: Arc<Semaphore>,
    shutdown: impl Future<Output = ()>,
) -> io::Result<()> {
    static ACCEPT_ERRORS: LogLimiter = LogLimiter::new(Duration::from_secs(10));
    let max = connection_slots(&limits);
    // Dropped at shutdown: every connection's receiver then sees the channel closed.
    let (stop, stopped) = watch::channel(());
    let connections = tokio_util::task::TaskTracker::new();
    let mut shutdown = pin!(shutdown);
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            () = &mut shutdown => break,
        };
        let (stream, peer) = match accepted {
            Ok(accepted) => accepted,
            Err(error) if is_connection_error(&error) => continue,
            Err(error) => {
                if let Some(suppressed) = ACCEPT_ERRORS.allow() {
                    tracing::error!(%error, suppressed, "cannot accept connections; retrying");
                }
                tokio::select! {
                    () = tokio::time::sleep(ACCEPT_BACKOFF) => continue,
                    () = &mut shutdown => break,
                }
            }
        };
        match slots.clone().try_acquire_owned() {
            Ok(slot) => {
                send_without_delay(&stream, peer);
                let connection =
                    serve_connection(stream, peer, app.clone(), limits, stopped.clone());
                connections.spawn(async move {
                    connection.await;
                    drop(slot);
                });
            }
            Err(_) => refuse(stream, max),
        }
    }
    drop(listener);
    drop(stop);
    connections.close();
    let open = connections.len();
    if open > 0 {
        tracing::info!(open, "waiting for open connections to finish");
    }
    connections.wait().await;
    Ok(())
}

/// Turns Nagle's algorithm off for an accepted connection (`TCP_NODELAY`, as nginx's
/// `tcp_nodelay on`): hyper writes each response when it is complete, and a write smaller than a
/// segment must not wait for the acknowledgement of the one before it (a large body that goes
/// out in several writes ends with such a write).
fn send_without_delay(stream: &TcpStream, peer: SocketAddr) {
    if let Err(error) = stream.set_nodelay(true) {
        tracing::debug!(%peer, %error, "could not turn Nagle's algorithm off");
    }
}

/// Errors about one connection that went away before it was accepted: accept the next one.
fn is_connection_error(error: &io::Error) -> bool {
    matches!(
        error.kind(),
        io::ErrorKind::ConnectionRefused
            | io::ErrorKind::ConnectionAborted
            | io::ErrorKind::ConnectionReset
            | io::ErrorKind::Interrupted
    )
}

/// What a connection over the cap gets before it is closed.
const BUSY_RESPONSE: &[u8] = b"HTTP/1.1 503 Service Unavailable\r\ncontent-length: 0\r\n\
    retry-after: 1\r\ncache-control: no-store\r\nconnection: close\r\n\r\n";

/// Answers `503` without waiting (a fresh socket's send buffer is empty, so one non-blocking
/// write takes the whole answer) and closes the connection.
fn refuse(stream: TcpStream, max: usize) {
    static REFUSED: LogLimiter = LogLimiter::new(Duration::from_secs(10));
    if let Some(suppressed) = REFUSED.allow() {
        tracing::warn!(
            max_connections = max,
            suppressed,
            "connection limit reached: new connections get 503 and are closed (--max-connections / ISR_MAX_CONNECTIONS)"
        );
    }
    let _ = stream.try_write(BUSY_RESPONSE);
}

/// How long a connection that awaits its request head when the server stops may take to
/// deliver one (at most the header timeout): enough for a request already sent, short enough
/// that a client that only opened a connection (a browser's preconnect) does not hold up the
/// stop.
pub const STOP_HEAD_GRACE: Duration = Duration::from_secs(1);

/// Completes at `deadline`, never without one.
async fn sleep_until_some(deadline: Option<tokio::time::Instant>) {
    match deadline {
        Some(deadline) => tokio::time::sleep_until(deadline).await,
        None => std::future::pending().await,
    }
}

/// Serves one connection until it closes, the watchdog closes it, or shutdown drains it.
async fn serve_connection(
    stream: TcpStream,
    peer: SocketAddr,
    app: TowerToHyperService<Router>,
    limits: ConnectionLimits,
    mut stopped: watch::Receiver<()>,
) {
    let activity = Arc::new(Activity::new());
    let io = TokioIo::new(Watched {
        stream,
        activity: activity.clone(),
        send_timeout: limits.send_timeout,
        send_stalled: None,
    });
    let service = ConnectionService {
        app,
        activity: activity.clone(),
        body_timeout: limits.body_timeout,
        peer,
    };
    let mut builder = http1::Builder::new();
    // No hyper timer: the watchdog below bounds every phase, and hyper's header timer would
    // arm a timer for every request head.
    // The head's size is checked when it is parsed (and while it is incomplete), so a head
    // over the limit is refused even when it arrives in one read; the read buffer stays at
    // hyper's default growth (at most about twice the limit while a head is incomplete).
    // Half-close: a client that sent its whole request and closed its side (a fire-and-forget
    // webhook) still gets it carried out and answered; by default hyper cancels the request
    // at that EOF.
    builder
        .keep_alive(true)
        .half_close(true)
        .header_read_timeout(None)
        .max_header_size(limits.max_header_bytes.max(MIN_HEADER_BYTES));
    let mut connection = pin!(builder.serve_connection(io, service).with_upgrades());
    let mut draining = false;
    let mut idle_closed = false;
    // While the server stops: until when a connection that awaits a request head may still
    // deliver one before hyper is told to shut it down.
    let mut head_grace: Option<tokio::time::Instant> = None;
    loop {
        tokio::select! {
            result = connection.as_mut() => {
                if let Err(error) = result {
                    tracing::debug!(%peer, %error, "connection ended with an error");
                }
                return;
            }
            _ = stopped.changed(), if !draining => {
                draining = true;
                if activity.awaiting_head() {
                    // Its request may be on the way, or already in the socket unread (a
                    // connection accepted just before the stop): hyper would close it unread,
                    // and a restart on a socket the service manager holds would fail that
                    // request. Answer it with `connection: close`; a client that sends
                    // nothing is shut down after the grace.
                    activity.closing.store(true, Ordering::Release);
                    head_grace = Some(tokio::time::Instant::now() + limits.header_timeout.min(STOP_HEAD_GRACE));
                } else {
                    connection.as_mut().graceful_shutdown();
                }
            }
            () = sleep_until_some(head_grace) => {
                head_grace = None;
                connection.as_mut().graceful_shutdown();
            }
            expired = activity.expired(&limits, !idle_closed) => match expired {
                Expired::Idle => {
                    // No byte of a next request: hyper closes the connection at once.
                    idle_closed = true;
                    connection.as_mut().graceful_shutdown();
                }
                Expired::Head => {
                    tracing::debug!(%peer, "closing a connection whose request head took longer than the header timeout");
                    return;
                }
            },
        }
    }
}

/// The axum app as hyper's service for one connection: bounds request bodies, adds the peer
/// address, and tells [`Activity`] when an exchange starts and ends.
struct ConnectionService {
    app: TowerToHyperService<Router>,
    activity: Arc<Activity>,
    body_timeout: Duration,
    peer: SocketAddr,
}

impl Service<Request<Incoming>> for ConnectionService {
    type Response = Response<ExchangeBody>;
    type Error = std::convert::Infallible;
    type Future = futures::future::BoxFuture<'static, Result<Self::Response, Self::Error>>;

    fn call(&self, request: Request<Incoming>) -> Self::Future {
        let exchange = Exchange::begin(&self.activity);
        let mut request = request.map(|body| Body::new(TimeoutBody::new(self.body_timeout, body)));
        request.extensions_mut().insert(ConnectInfo(self.peer));
        let response = self.app.call(request);
        let activity = self.activity.clone();
        Box::pin(async move {
            let mut response = response.await?;
            // (Not on a protocol switch, which the connection goes on with.)
            if activity.closing.load(Ordering::Acquire)
                && response.status() != axum::http::StatusCode::SWITCHING_PROTOCOLS
            {
                response.headers_mut().insert(
                    axum::http::header::CONNECTION,
                    axum::http::HeaderValue::from_static("close"),
                );
            }
            Ok(response.map(|body| ExchangeBody {
                body,
                _exchange: exchange,
            }))
        })
    }
}

/// A response body that ends its exchange when hyper drops it (written, or connection gone).
struct ExchangeBody {
    body: Body,
    _exchange: Exchange,
}

impl HttpBody for ExchangeBody {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, axum::Error>>> {
        Pin::new(&mut self.body).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}

/// One request from its parsed head to the end of its response body.
struct Exchange(Arc<Activity>);

impl Exchange {
    fn begin(activity: &Arc<Activity>) -> Exchange {
        activity.begin_exchange();
        Exchange(activity.clone())
    }
}

impl Drop for Exchange {
    fn drop(&mut self) {
        self.0.end_exchange();
    }
}

/// The socket, telling [`Activity`] when bytes arrive, and failing a write that makes no
/// progress for `send_timeout` (hyper then closes the connection).
struct Watched {
    stream: TcpStream,
    activity: Arc<Activity>,
    send_timeout: Duration,
    /// Armed when a write finds the socket full; dropped when a write goes through.
    send_stalled: Option<Pin<Box<tokio::time::Sleep>>>,
}

impl Watched {
    /// Passes a write's result on, timing how long the socket has stayed full.
    fn bounded<T>(
        &mut self,
        cx: &mut Context<'_>,
        written: Poll<io::Result<T>>,
    ) -> Poll<io::Result<T>> {
        if written.is_ready() {
            self.send_stalled = None;
            return written;
        }
        let timeout = self.send_timeout;
        let stalled = self
            .send_stalled
            .get_or_insert_with(|| Box::pin(tokio::time::sleep(timeout)));
        match stalled.as_mut().poll(cx) {
            Poll::Ready(()) => Poll::Ready(Err(io::Error::new(
                io::ErrorKind::TimedOut,
                "the client read nothing for the send timeout",
            ))),
            Poll::Pending => Poll::Pending,
        }
    }
}

impl AsyncRead for Watched {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let this = &mut *self;
        let polled = Pin::new(&mut this.stream).poll_read(cx, buf);
        if buf.filled().len() > before {
            this.activity.bytes_arrived();
        }
        polled
    }
}

impl AsyncWrite for Watched {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let written = Pin::new(&mut self.stream).poll_write(cx, buf);
        self.bounded(cx, written)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let written = Pin::new(&mut self.stream).poll_write_vectored(cx, bufs);
        self.bounded(cx, written)
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_shutdown(cx)
    }
}

/// Where a connection is between requests, and since when.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Phase {
    /// A request head is being received; it began at `since` (the accept, or its first byte).
    Head { since: Instant },
    /// A response was finished at `since` and no byte of a next request has arrived.
    Idle { since: Instant },
    /// Requests whose head was parsed and whose response body is not finished yet.
    Busy { exchanges: usize },
}

/// Which bound a connection went past.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Expired {
    Head,
    Idle,
}

/// The phase of one connection, shared by its socket, its service and its watchdog.
struct Activity {
    /// Set while the connection is [`Phase::Idle`], so that a socket read takes the lock only
    /// for the first byte after an idle gap.
    idle: AtomicBool,
    phase: Mutex<Phase>,
    /// Set when the server stops while a request head is awaited: the next response closes
    /// the connection (`connection: close`).
    closing: AtomicBool,
}

impl Activity {
    fn new() -> Activity {
        Activity {
            idle: AtomicBool::new(false),
            phase: Mutex::new(Phase::Head {
                since: Instant::now(),
            }),
            closing: AtomicBool::new(false),
        }
    }

    /// Whether a request head is awaited or being received (a fresh connection, or bytes of
    /// a next request after an idle gap).
    fn awaiting_head(&self) -> bool {
        matches!(
            *self.phase.lock().unwrap_or_else(|e| e.into_inner()),
            Phase::Head { .. }
        )
    }

    fn bytes_arrived(&self) {
        if self.idle.load(Ordering::Acquire) && self.idle.swap(false, Ordering::AcqRel) {
            self.update(|phase| {
                if let Phase::Idle { .. } = phase {
                    *phase = Phase::Head {
                        since: Instant::now(),
                    };
                }
            });
        }
    }

    fn begin_exchange(&self) {
        self.update(|phase| {
            self.idle.store(false, Ordering::Release);
            *phase = match *phase {
                Phase::Busy { exchanges } => Phase::Busy {
                    exchanges: exchanges + 1,
                },
                Phase::Head { .. } | Phase::Idle { .. } => Phase::Busy { exchanges: 1 },
            };
        });
    }

    fn end_exchange(&self) {
        self.update(|phase| match *phase {
            Phase::Busy { exchanges } if exchanges > 1 => {
                *phase = Phase::Busy {
                    exchanges: exchanges - 1,
                };
            }
            _ => {
                *phase = Phase::Idle {
                    since: Instant::now(),
                };
                self.idle.store(true, Ordering::Release);
            }
        });
    }

    fn update(&self, change: impl FnOnce(&mut Phase)) {
        change(&mut self.phase.lock().unwrap_or_else(|e| e.into_inner()));
    }

    /// When the current phase runs out, if it does (`watch_idle`: whether idleness counts).
    fn deadline(&self, limits: &ConnectionLimits, watch_idle: bool) -> Option<(Instant, Expired)> {
        match *self.phase.lock().unwrap_or_else(|e| e.into_inner()) {
            Phase::Busy { .. } => None,
            Phase::Head { since } => since
                .checked_add(limits.header_timeout)
                .map(|at| (at, Expired::Head)),
            Phase::Idle { since } if watch_idle => since
                .checked_add(limits.idle_timeout)
                .map(|at| (at, Expired::Idle)),
            Phase::Idle { .. } => None,
        }
    }

    /// Completes when the connection goes past its header timeout, or past its idle timeout
    /// when `watch_idle`.
    ///
    /// Phase changes do not wake the watchdog (every request makes two): it wakes at the
    /// deadline of the phase it last saw, and at least every `header_timeout` (the bound of
    /// any phase that can begin while it sleeps), then reads the phase again. A request head
    /// that starts while it sleeps has its deadline no earlier than that wake-up, so it is cut
    /// on time; an idle deadline is reached by waking every `header_timeout` until it.
    async fn expired(&self, limits: &ConnectionLimits, watch_idle: bool) -> Expired {
        loop {
            let now = Instant::now();
            // (At least a millisecond apart: a zero header timeout must not spin.)
            let recheck = now.checked_add(limits.header_timeout.max(Duration::from_millis(1)));
            let wake = match self.deadline(limits, watch_idle) {
                Some((at, what)) if at <= now => return what,
                Some((at, _)) => Some(recheck.map_or(at, |recheck| recheck.min(at))),
                None => recheck,
            };
            match wake {
                Some(wake) => tokio::time::sleep_until(wake).await,
                None => std::future::pending().await,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIMITS: ConnectionLimits = ConnectionLimits {
        header_timeout: Duration::from_secs(10),
        idle_timeout: Duration::from_secs(60),
        body_timeout: Duration::from_secs(10),
        send_timeout: Duration::from_secs(30),
        max_header_bytes: DEFAULT_MAX_HEADER_BYTES,
        max_connections: 1,
    };

    /// Whether `phase` is still running after an hour (time is paused: nothing really waits).
    async fn still_running_after_an_hour(activity: &Activity, watch_idle: bool) -> bool {
        let hour = Duration::from_secs(3600);
        tokio::time::timeout(hour, activity.expired(&LIMITS, watch_idle))
            .await
            .is_err()
    }

    async fn expires_after(activity: &Activity, watch_idle: bool) -> (Expired, Duration) {
        let started = Instant::now();
        let expired = activity.expired(&LIMITS, watch_idle).await;
        (expired, started.elapsed())
    }

    fn about(elapsed: Duration, expected: Duration) -> bool {
        elapsed >= expected && elapsed < expected + Duration::from_secs(1)
    }

    #[tokio::test(start_paused = true)]
    async fn phases_run_out_after_their_own_timeout() {
        let activity = Activity::new();
        let (expired, elapsed) = expires_after(&activity, true).await;
        assert_eq!(
            expired,
            Expired::Head,
            "a new connection waits for its head"
        );
        assert!(about(elapsed, LIMITS.header_timeout), "{elapsed:?}");

        activity.begin_exchange();
        assert!(still_running_after_an_hour(&activity, true).await, "busy");
        activity.end_exchange();
        let (expired, elapsed) = expires_after(&activity, true).await;
        assert_eq!(expired, Expired::Idle);
        assert!(about(elapsed, LIMITS.idle_timeout), "{elapsed:?}");
        assert!(
            still_running_after_an_hour(&activity, false).await,
            "idleness is not watched"
        );

        activity.bytes_arrived();
        let (expired, elapsed) = expires_after(&activity, true).await;
        assert_eq!(expired, Expired::Head, "a next request's head has begun");
        assert!(about(elapsed, LIMITS.header_timeout), "{elapsed:?}");
    }

    #[tokio::test(start_paused = true)]
    async fn a_change_while_waiting_moves_the_deadline() {
        let activity = Arc::new(Activity::new());
        activity.begin_exchange();
        activity.end_exchange();
        let started = Instant::now();
        let waiter = tokio::spawn({
            let activity = activity.clone();
            async move { activity.expired(&LIMITS, true).await }
        });
        tokio::time::sleep(Duration::from_secs(30)).await;
        activity.bytes_arrived(); // idle → head, 30 s after the response
        assert_eq!(waiter.await.unwrap(), Expired::Head);
        let expected = Duration::from_secs(30) + LIMITS.header_timeout;
        assert!(
            about(started.elapsed(), expected),
            "{:?}",
            started.elapsed()
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_head_that_begins_between_two_wakeups_is_cut_on_time() {
        let activity = Arc::new(Activity::new());
        activity.begin_exchange();
        let started = Instant::now();
        let waiter = tokio::spawn({
            let activity = activity.clone();
            async move { activity.expired(&LIMITS, true).await }
        });
        // Busy, then idle, then a next head: none of these wakes the watchdog.
        tokio::time::sleep(Duration::from_millis(3_500)).await;
        activity.end_exchange();
        tokio::time::sleep(Duration::from_millis(3_000)).await;
        activity.bytes_arrived(); // a head begins 6.5 s in: due at 16.5 s
        assert_eq!(waiter.await.unwrap(), Expired::Head);
        let expected = Duration::from_millis(6_500) + LIMITS.header_timeout;
        let elapsed = started.elapsed();
        assert!(
            elapsed >= expected && elapsed < expected + Duration::from_millis(50),
            "{elapsed:?}"
        );
    }

    /// Status of `GET path` on a new connection (`None`: no answer within 5 s).
    async fn fresh_status(addr: SocketAddr, path: &str) -> Option<u16> {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let exchange = async {
            let mut stream = TcpStream::connect(addr).await.ok()?;
            let request =
                format!("GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n");
            stream.write_all(request.as_bytes()).await.ok()?;
            let mut head = [0u8; 12];
            stream.read_exact(&mut head).await.ok()?;
            std::str::from_utf8(&head[9..12]).ok()?.parse().ok()
        };
        tokio::time::timeout(Duration::from_secs(5), exchange)
            .await
            .ok()
            .flatten()
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_client_that_reads_nothing_is_cut_at_the_send_timeout() {
        use tokio::io::AsyncWriteExt;
        const BIG: usize = 64 << 20; // far more than the loopback socket buffers hold
        let app = Router::new()
            .route("/big", axum::routing::get(|| async { vec![b'x'; BIG] }))
            .route("/small", axum::routing::get(|| async { "ok" }));
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let limits = ConnectionLimits {
            send_timeout: Duration::from_secs(1),
            max_connections: 1,
            ..LIMITS
        };
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let server = tokio::spawn(serve_until(listener, app, limits, async {
            let _ = stopped.await;
        }));

        let mut reader_of_nothing = TcpStream::connect(addr).await.unwrap();
        reader_of_nothing
            .write_all(b"GET /big HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
            .await
            .unwrap();
        let started = Instant::now();
        let deadline = started + Duration::from_secs(10);
        // It holds the only connection slot while its response is stuck…
        let mut refused = false;
        while !refused && Instant::now() < deadline {
            refused = fresh_status(addr, "/small").await == Some(503);
        }
        assert!(refused, "the stuck response held its connection");
        // …until the send timeout closes it.
        let mut served = false;
        while !served && Instant::now() < deadline {
            served = fresh_status(addr, "/small").await == Some(200);
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert!(served, "the stuck connection was closed");
        assert!(
            started.elapsed() >= Duration::from_millis(900),
            "{:?}",
            started.elapsed()
        );
        let _ = stop.send(());
        server.await.unwrap().unwrap();
        drop(reader_of_nothing);
    }

    /// A connection accepted before the stop whose request comes after it (its bytes were on
    /// the way, or unread in the socket) is answered, with `connection: close`, instead of
    /// being closed unread: what a restart on a socket the service manager holds needs. One
    /// that sends nothing is closed after the grace, and the server stops.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_request_arriving_just_after_the_stop_on_an_accepted_connection_is_answered() {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let app = Router::new().route("/", axum::routing::get(|| async { "hi" }));
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let limits = ConnectionLimits {
            max_connections: 3,
            ..LIMITS
        };
        let server = tokio::spawn(serve_until(listener, app, limits, async {
            let _ = stopped.await;
        }));
        async fn exchange(stream: &mut TcpStream, request: &[u8]) -> String {
            stream.write_all(request).await.unwrap();
            let mut answer = String::new();
            let _ = stream.read_to_string(&mut answer).await;
            answer
        }
        let mut late = TcpStream::connect(addr).await.unwrap();
        let mut silent = TcpStream::connect(addr).await.unwrap();
        // Accepted in order: once a third connection is answered, both are accepted.
        let mut barrier = TcpStream::connect(addr).await.unwrap();
        let answer = exchange(
            &mut barrier,
            b"GET / HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n",
        )
        .await;
        assert!(answer.starts_with("HTTP/1.1 200 OK\r\n"), "{answer}");

        stop.send(()).unwrap();
        // Time for the connection tasks to see the stop before the request comes (were the
        // request first, it would be answered as any request in flight at a stop is).
        tokio::time::sleep(Duration::from_millis(50)).await;
        let answer = exchange(&mut late, b"GET / HTTP/1.1\r\nhost: x\r\n\r\n").await;
        assert!(
            answer.starts_with("HTTP/1.1 200 OK\r\n"),
            "answered: {answer:?}"
        );
        let head = answer.to_ascii_lowercase();
        assert!(
            head.contains("\r\nconnection: close\r\n") && answer.ends_with("\r\n\r\nhi"),
            "{answer}"
        );

        // The silent one holds the stop up for the grace at most.
        tokio::time::timeout(STOP_HEAD_GRACE * 10, server)
            .await
            .expect("the server stops once the grace is over")
            .unwrap()
            .unwrap();
        let mut rest = Vec::new();
        assert_eq!(
            silent.read_to_end(&mut rest).await.unwrap_or(0),
            0,
            "closed without an answer"
        );
    }

    #[tokio::test]
    async fn accepted_connections_send_without_delay() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (_client, accepted) = tokio::join!(TcpStream::connect(addr), listener.accept());
        let (stream, peer) = accepted.unwrap();
        assert!(
            !stream.nodelay().unwrap(),
            "a fresh socket delays small writes"
        );
        send_without_delay(&stream, peer);
        assert!(stream.nodelay().unwrap());
    }

    #[test]
    fn serve_until_can_be_spawned() {
        fn spawnable<F: Future + Send + 'static>(_: F) {}
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let _guard = runtime.enter();
        let listener = TcpListener::from_std(listener).unwrap();
        spawnable(serve_until(listener, Router::new(), LIMITS, async {}));
    }
}
