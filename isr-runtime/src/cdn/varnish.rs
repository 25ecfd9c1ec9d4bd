//! Varnish with the xkey vmod (Debian `varnish-modules`): `PURGE /` with `xkey-softpurge: <keys>`
//! (or `xkey-purge` when hard), which `deploy/varnish/isr.vcl` takes from its `purgers` ACL
//! and hands to `xkey.softpurge` / `xkey.purge`. Objects are indexed by their
//! `surrogate-key`, which the VCL copies into `xkey`.
//!
//! Every endpoint (several Varnish servers) gets each request; it went when all answered
//! `2xx`.

use super::transport::Transport;
use super::{Adapter, Limits, PurgeBy, PurgeRequest, SendError, TagBudget};
use crate::engine::PurgeKind;
use axum::body::Bytes;
use axum::http::{header, HeaderValue, Method, Request, Uri};
use futures::future::BoxFuture;
use http_body_util::Full;

/// Where to send purges: `http://` endpoints, and the `Host` they should see.
///
/// ```
/// let target = isr::cdn::PurgeTargets::parse("http://127.0.0.1:6081, http://10.0.0.2", Some("www.example.com")).unwrap();
/// assert_eq!(target.endpoints().len(), 2);
/// assert!(isr::cdn::PurgeTargets::parse("ftp://x", None).is_err());
/// assert!(isr::cdn::PurgeTargets::parse("http://x/path", None).is_err());
/// assert!(isr::cdn::PurgeTargets::parse("http://x", Some("bad host")).is_err());
/// ```
#[derive(Clone, Debug)]
pub struct PurgeTargets {
    endpoints: Vec<Uri>,
    host: Option<HeaderValue>,
}

impl PurgeTargets {
    /// Parses a comma-separated list of `http://host[:port]` endpoints and an optional public
    /// host (`www.example.com` or `host:port`) for their `Host` header.
    ///
    /// # Errors
    /// A message naming the bad part when an endpoint is not an `http://` URL with a host, has
    /// a path or a query, when no endpoint is given, or when `public_host` is not a
    /// `host[:port]` (empty, with user info, or not a valid header value).
    pub fn parse(endpoints: &str, public_host: Option<&str>) -> Result<PurgeTargets, String> {
        let mut parsed = Vec::new();
        for endpoint in endpoints
            .split(',')
            .map(str::trim)
            .filter(|e| !e.is_empty())
        {
            let uri: Uri = endpoint
                .parse()
                .map_err(|e| format!("{endpoint:?} is not a URL ({e})"))?;
            if uri.scheme_str() != Some("http") || uri.authority().is_none() {
                return Err(format!("{endpoint:?} is not an http://host[:port] URL"));
            }
            if !matches!(uri.path(), "" | "/") || uri.query().is_some() {
                return Err(format!(
                    "{endpoint:?} has a path: give only http://host[:port] (the page path is added)"
                ));
            }
            parsed.push(uri);
        }
        if parsed.is_empty() {
            return Err("no endpoint given".into());
        }
        let host = match public_host {
            None => None,
            Some(host) => {
                let valid = !host.is_empty()
                    && host.parse::<axum::http::uri::Authority>().is_ok()
                    && !host.contains('@');
                if !valid {
                    return Err(format!("{host:?} is not a host[:port]"));
                }
                Some(HeaderValue::from_str(host).map_err(|e| e.to_string())?)
            }
        };
        Ok(PurgeTargets {
            endpoints: parsed,
            host,
        })
    }

    /// The endpoints.
    pub fn endpoints(&self) -> &[Uri] {
        &self.endpoints
    }
}

/// Keys in one request's header at most: Varnish's default `http_req_hdr_len` is 8 KiB.
const HEADER_BYTES: usize = 7_000;

/// The Varnish adapter (see the module docs).
#[derive(Debug)]
pub struct Varnish {
    targets: PurgeTargets,
    transport: Transport,
}

impl Varnish {
    /// Purges at `targets`.
    pub fn new(targets: PurgeTargets) -> Varnish {
        Varnish {
            targets,
            transport: Transport::new(),
        }
    }

    async fn send_to(&self, endpoint: &Uri, request: &PurgeRequest) -> Result<(), SendError> {
        let authority = endpoint.authority().map(|a| a.as_str()).unwrap_or_default();
        let header_name = match request.kind {
            PurgeKind::Soft => "xkey-softpurge",
            PurgeKind::Hard => "xkey-purge",
        };
        let keys = HeaderValue::from_str(&request.items.join(" "))
            .map_err(|e| SendError::Refused(format!("keys not a header value: {e}")))?;
        let mut builder = Request::builder()
            .method(Method::from_bytes(b"PURGE").expect("method"))
            .uri(format!("http://{authority}/"))
            .header(header_name, keys);
        if let Some(host) = &self.targets.host {
            builder = builder.header(header::HOST, host.clone());
        }
        let http = builder
            .body(Full::new(Bytes::new()))
            .map_err(|e| SendError::Refused(format!("{endpoint}: {e}")))?;
        let answer = self
            .transport
            .send(http)
            .await
            .map_err(|error| SendError::Retry { error, after: None })?;
        if answer.status.is_success() {
            Ok(())
        } else {
            Err(SendError::from_status(
                answer.status,
                super::transport::retry_after(&answer.headers),
                format!("PURGE at {endpoint}"),
            ))
        }
    }
}

impl Adapter for Varnish {
    fn name(&self) -> &'static str {
        "varnish"
    }

    fn limits(&self) -> Limits {
        Limits {
            by: PurgeBy::Key,
            soft: true,
            items_per_request: 1_000,
            bytes_per_request: HEADER_BYTES,
            item_overhead: 1,
            budget: TagBudget::DEFAULT,
        }
    }

    fn send<'a>(&'a self, request: &'a PurgeRequest) -> BoxFuture<'a, Result<(), SendError>> {
        Box::pin(async move {
            let sends = self
                .targets
                .endpoints
                .iter()
                .map(|endpoint| self.send_to(endpoint, request));
            let outcomes = futures::future::join_all(sends).await;
            outcomes.into_iter().find(Result::is_err).unwrap_or(Ok(()))
        })
    }
}
