//! Fastly: purge by surrogate key, 256 keys a request
//! (<https://www.fastly.com/documentation/reference/api/purging/>):
//! `POST {api}/service/{service_id}/purge` with `Fastly-Key: <token>`,
//! `Surrogate-Key: k1 k2 …` and, for a soft purge, `Fastly-Soft-Purge: 1`. The answer is
//! `200` with a JSON map of key to purge id. Over the API's rate limit Fastly answers `429`
//! with `Fastly-RateLimit-Reset` (epoch seconds), which the queue waits for.
//!
//! Keys are limited to 1,024 bytes and a page's `Surrogate-Key` header to 16,384 bytes.

use super::api::{post, secret_header, ApiBase, Secret};
use super::transport::Transport;
use super::{Adapter, Limits, PurgeBy, PurgeRequest, SendError, TagBudget};
use crate::engine::PurgeKind;
use axum::http::{HeaderName, HeaderValue};
use futures::future::BoxFuture;

/// The Fastly API's address.
pub const API: &str = "https://api.fastly.com";

/// The Fastly adapter.
#[derive(Debug)]
pub struct Fastly {
    api: ApiBase,
    service: String,
    token: Secret,
    transport: Transport,
}

impl Fastly {
    /// Purges service `service` through `api` with `token`.
    pub fn new(api: ApiBase, service: String, token: Secret) -> Fastly {
        Fastly {
            api,
            service,
            token,
            transport: Transport::new(),
        }
    }
}

impl Adapter for Fastly {
    fn name(&self) -> &'static str {
        "fastly"
    }

    fn limits(&self) -> Limits {
        Limits {
            by: PurgeBy::Key,
            soft: true,
            items_per_request: 256,
            // The `Surrogate-Key` request header, within what servers commonly accept.
            bytes_per_request: 16_000,
            item_overhead: 1,
            budget: TagBudget {
                tags_per_object: usize::MAX,
                header_bytes: 16_384,
                tag_bytes: 1_024,
            },
        }
    }

    fn send<'a>(&'a self, request: &'a PurgeRequest) -> BoxFuture<'a, Result<(), SendError>> {
        Box::pin(async move {
            let url = self.api.join(&format!("/service/{}/purge", self.service));
            let keys = HeaderValue::from_str(&request.items.join(" "))
                .map_err(|e| SendError::Refused(format!("keys not a header value: {e}")))?;
            let mut headers = vec![
                (
                    HeaderName::from_static("fastly-key"),
                    secret_header(self.token.expose())?,
                ),
                (HeaderName::from_static("surrogate-key"), keys),
            ];
            if request.kind == PurgeKind::Soft {
                headers.push((
                    HeaderName::from_static("fastly-soft-purge"),
                    HeaderValue::from_static("1"),
                ));
            }
            post(
                &self.transport,
                &url,
                headers,
                "application/json",
                Vec::new(),
                "Fastly purge",
            )
            .await
            .map(drop)
        })
    }
}
