//! Where a request came from and where it was sent, as far as isr can trust it.
//!
//! Behind a reverse proxy (TLS termination, a CDN) the peer is the proxy: the client's address
//! and whether it used https come from `X-Forwarded-For` / `X-Forwarded-Proto`, which any client
//! can also send. isr honours them only from the proxies named with `--trusted-proxy`
//! ([`TrustedProxies`], empty by default); from anyone else they are ignored.
//!
//! The authority a request was sent to is the absolute-form request target's when there is one
//! (RFC 9112 §3.2.2), else its one `Host` header: [`check_host`] refuses a request with two
//! `Host` headers, an HTTP/1.1 request without one, and a `Host` with userinfo
//! (`a.com@evil.com`) or that is no authority at all; [`HostCheckLayer`] answers those `400`.

use axum::http::uri::Authority;
use axum::http::{header, HeaderMap, Request, Response, StatusCode, Uri, Version};
use std::net::{IpAddr, SocketAddr};
use std::str::FromStr;
use std::sync::Arc;
use std::task::{Context, Poll};

/// The proxies whose `X-Forwarded-*` headers are believed: CIDR blocks (`10.0.0.0/8`,
/// `127.0.0.1/32`, `::1/128`) or single addresses.
///
/// ```
/// let trusted = isr::server::origin::TrustedProxies::parse("10.0.0.0/8, 127.0.0.1").unwrap();
/// assert!(trusted.contains("10.1.2.3".parse().unwrap()));
/// assert!(trusted.contains("127.0.0.1".parse().unwrap()));
/// assert!(!trusted.contains("127.0.0.2".parse().unwrap()));
/// assert!(isr::server::origin::TrustedProxies::parse("10.0.0.0/33").is_err());
/// assert!(isr::server::origin::TrustedProxies::default().is_empty());
/// ```
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TrustedProxies(Arc<[ipnet::IpNet]>);

impl TrustedProxies {
    /// Comma-separated CIDR blocks or addresses; an empty text trusts nobody.
    ///
    /// # Errors
    /// A message naming the first item that is neither an IP address nor a CIDR block (a
    /// prefix longer than the address, a host name).
    pub fn parse(text: &str) -> Result<Self, String> {
        let mut nets = Vec::new();
        for item in text.split(',').map(str::trim).filter(|i| !i.is_empty()) {
            let net = match ipnet::IpNet::from_str(item) {
                Ok(net) => net,
                Err(_) => match IpAddr::from_str(item) {
                    Ok(ip) => ipnet::IpNet::from(ip),
                    Err(_) => {
                        return Err(format!(
                            "{item:?} is not an address or CIDR block (e.g. 10.0.0.0/8, 127.0.0.1)"
                        ))
                    }
                },
            };
            nets.push(net);
        }
        Ok(TrustedProxies(nets.into()))
    }

    /// Whether no proxy is trusted.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Whether `ip` is one of the trusted proxies (an IPv4-mapped IPv6 address counts as IPv4).
    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = ip.to_canonical();
        self.0.iter().any(|net| net.contains(&ip))
    }
}

/// A request's client and origin: its address, whether it used https, and the authority it
/// was sent to.
///
/// ```
/// use isr::axum::http::{HeaderMap, HeaderValue, Uri};
/// use isr::server::origin::{ClientOrigin, TrustedProxies};
/// let mut headers = HeaderMap::new();
/// headers.insert("host", HeaderValue::from_static("blog.example.com"));
/// headers.insert("x-forwarded-proto", HeaderValue::from_static("https"));
/// headers.insert("x-forwarded-for", HeaderValue::from_static("203.0.113.9, 10.0.0.7"));
/// let uri = Uri::from_static("/blog");
/// let proxy = Some("10.0.0.5:41000".parse().unwrap());
///
/// let untrusted = ClientOrigin::of(&headers, &uri, proxy, &TrustedProxies::default());
/// assert_eq!(untrusted.ip, Some("10.0.0.5".parse().unwrap()));
/// assert!(!untrusted.https, "X-Forwarded-Proto from anyone is ignored");
///
/// let trusted = TrustedProxies::parse("10.0.0.0/8").unwrap();
/// let behind = ClientOrigin::of(&headers, &uri, proxy, &trusted);
/// assert_eq!(behind.ip, Some("203.0.113.9".parse().unwrap()), "the nearest untrusted hop");
/// assert!(behind.https);
/// assert_eq!(behind.host.as_ref().map(|h| h.as_str()), Some("blog.example.com"));
/// assert_eq!(behind.origin().as_deref(), Some("https://blog.example.com"));
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClientOrigin {
    /// The client's address: the peer's, or, when the peer is a trusted proxy, the nearest
    /// address in `X-Forwarded-For` that is not a trusted proxy.
    pub ip: Option<IpAddr>,
    /// Whether the client used https (a trusted proxy's `X-Forwarded-Proto`; isr itself
    /// speaks plain HTTP).
    pub https: bool,
    /// The authority the request was sent to, when it is a valid one without userinfo.
    pub host: Option<Authority>,
}

impl ClientOrigin {
    /// Reads a request's origin: `peer` is the connection's address (`None` when unknown).
    pub fn of(
        headers: &HeaderMap,
        uri: &Uri,
        peer: Option<SocketAddr>,
        trusted: &TrustedProxies,
    ) -> Self {
        let peer_ip = peer.map(|p| p.ip().to_canonical());
        let via_proxy = peer_ip.is_some_and(|ip| trusted.contains(ip));
        let (ip, https) = if via_proxy {
            (
                forwarded_client(headers, trusted).or(peer_ip),
                forwarded_https(headers),
            )
        } else {
            (peer_ip, false)
        };
        ClientOrigin {
            ip,
            https,
            host: request_authority(headers, uri).ok().flatten(),
        }
    }

    /// [`ClientOrigin::of`] a request's parts: the peer is the connection's address the
    /// server put in `extensions` (axum's `ConnectInfo`).
    pub fn of_request(
        headers: &HeaderMap,
        uri: &Uri,
        extensions: &axum::http::Extensions,
        trusted: &TrustedProxies,
    ) -> Self {
        let peer = extensions
            .get::<axum::extract::ConnectInfo<SocketAddr>>()
            .map(|info| info.0);
        Self::of(headers, uri, peer, trusted)
    }

    /// `scheme://host` of the request, when its host is known.
    pub fn origin(&self) -> Option<String> {
        let scheme = if self.https { "https" } else { "http" };
        self.host
            .as_ref()
            .map(|host| format!("{scheme}://{}", host.as_str().to_ascii_lowercase()))
    }
}

/// The nearest address of `X-Forwarded-For` (read from the right: each proxy appends the
/// address it got the request from) that is not a trusted proxy.
fn forwarded_client(headers: &HeaderMap, trusted: &TrustedProxies) -> Option<IpAddr> {
    let hops: Vec<IpAddr> = headers
        .get_all("x-forwarded-for")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|hop| IpAddr::from_str(hop.trim()).map(|ip| ip.to_canonical()))
        .collect::<Result<_, _>>()
        .ok()?;
    hops.iter()
        .rev()
        .find(|ip| !trusted.contains(**ip))
        .or(hops.first())
        .copied()
}

/// Whether the nearest proxy says the client used https (the last `X-Forwarded-Proto` value).
fn forwarded_https(headers: &HeaderMap) -> bool {
    headers
        .get_all("x-forwarded-proto")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .next_back()
        .is_some_and(|proto| proto.trim().eq_ignore_ascii_case("https"))
}

/// Why [`check_host`] refused a request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HostError {
    /// More than one `Host` header.
    Several,
    /// An HTTP/1.1 request without `Host` (and without an absolute-form target).
    Missing,
    /// A `Host` (or absolute-form authority) that is not `host[:port]`, or has userinfo.
    Invalid,
}

impl HostError {
    fn message(self) -> &'static str {
        match self {
            HostError::Several => "more than one Host header\n",
            HostError::Missing => "an HTTP/1.1 request needs a Host header\n",
            HostError::Invalid => "the Host header must be host[:port], without userinfo\n",
        }
    }
}

/// The authority a request was sent to: the absolute-form target's, else its one `Host`
/// header's; `Ok(None)` when it has neither (HTTP/1.0 may).
fn request_authority(headers: &HeaderMap, uri: &Uri) -> Result<Option<Authority>, HostError> {
    let mut hosts = headers.get_all(header::HOST).iter();
    let host = hosts.next();
    if hosts.next().is_some() {
        return Err(HostError::Several);
    }
    let authority = match uri.authority() {
        Some(authority) => Some(authority.clone()),
        None => match host {
            Some(value) => {
                Some(Authority::try_from(value.as_bytes()).map_err(|_| HostError::Invalid)?)
            }
            None => None,
        },
    };
    match authority {
        Some(authority) if authority.as_str().contains('@') || authority.host().is_empty() => {
            Err(HostError::Invalid)
        }
        other => Ok(other),
    }
}

/// Checks a request's `Host` (see the module docs).
///
/// ```
/// use isr::axum::http::{Request, Version};
/// use isr::server::origin::{check_host, HostError};
/// let ok = Request::get("/").header("host", "blog.example.com:8080").body(()).unwrap();
/// assert_eq!(check_host(&ok), Ok(()));
/// let userinfo = Request::get("/").header("host", "a.com@evil.com").body(()).unwrap();
/// assert_eq!(check_host(&userinfo), Err(HostError::Invalid));
/// let two = Request::get("/").header("host", "a.com").header("host", "b.com").body(()).unwrap();
/// assert_eq!(check_host(&two), Err(HostError::Several));
/// let none = Request::get("/").version(Version::HTTP_11).body(()).unwrap();
/// assert_eq!(check_host(&none), Err(HostError::Missing));
/// let old = Request::get("/").version(Version::HTTP_10).body(()).unwrap();
/// assert_eq!(check_host(&old), Ok(()));
/// let absolute = Request::get("http://a.com/x").header("host", "b.com").body(()).unwrap();
/// assert_eq!(check_host(&absolute), Ok(()));
/// ```
///
/// # Errors
/// [`HostError::Several`] for more than one `Host` header, [`HostError::Missing`] for an
/// HTTP/1.1 request with neither `Host` nor an absolute-form target, [`HostError::Invalid`]
/// for an authority that is not `host[:port]` or has userinfo.
pub fn check_host<B>(request: &Request<B>) -> Result<(), HostError> {
    match request_authority(request.headers(), request.uri())? {
        None if request.version() == Version::HTTP_11 => Err(HostError::Missing),
        _ => Ok(()),
    }
}

/// Answers `400` to a request that [`check_host`] refuses, before any handler runs.
///
/// ```
/// use isr::axum::{routing::get, Router};
/// let app: Router = Router::new().route("/", get(|| async { "hi" })).layer(isr::server::origin::HostCheckLayer);
/// # let _ = app;
/// ```
#[derive(Clone, Copy, Debug, Default)]
pub struct HostCheckLayer;

impl<S> tower::Layer<S> for HostCheckLayer {
    type Service = HostCheck<S>;

    fn layer(&self, inner: S) -> HostCheck<S> {
        HostCheck { inner }
    }
}

/// The service of [`HostCheckLayer`].
#[derive(Clone, Debug)]
pub struct HostCheck<S> {
    inner: S,
}

impl<S, B> tower::Service<Request<B>> for HostCheck<S>
where
    S: tower::Service<Request<B>, Response = Response<axum::body::Body>>,
{
    type Response = Response<axum::body::Body>;
    type Error = S::Error;
    type Future =
        futures::future::Either<std::future::Ready<Result<Self::Response, Self::Error>>, S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request<B>) -> Self::Future {
        match check_host(&request) {
            Ok(()) => futures::future::Either::Right(self.inner.call(request)),
            Err(error) => {
                let mut response = Response::new(axum::body::Body::from(error.message()));
                *response.status_mut() = StatusCode::BAD_REQUEST;
                let headers = response.headers_mut();
                headers.insert(
                    header::CONTENT_TYPE,
                    header::HeaderValue::from_static("text/plain; charset=utf-8"),
                );
                headers.insert(
                    header::CACHE_CONTROL,
                    header::HeaderValue::from_static("no-store"),
                );
                headers.insert(
                    header::CONNECTION,
                    header::HeaderValue::from_static("close"),
                );
                futures::future::Either::Left(std::future::ready(Ok(response)))
            }
        }
    }
}
