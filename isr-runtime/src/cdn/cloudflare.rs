//! Cloudflare: purge by cache tag, 100 tags a request
//! (<https://developers.cloudflare.com/cache/how-to/purge-cache/purge-by-tags/>):
//! `POST {api}/zones/{zone}/purge_cache` (hard) or `POST {api}/zones/{zone}/invalidate_cache`
//! (soft: marked stale, revalidated with the origin on the next request; changelog
//! 2026-09-28) with `Authorization: Bearer <token>` and `{"tags":["a","b"]}`. The answer is
//! `200` with `{"success":true,…}`. Over the plan's rate limit Cloudflare answers `429` with
//! `retry-after`, which the queue waits for.
//!
//! A page's `cache-tag` header may hold 16 KiB; a tag in a purge 1,024 characters.

use super::api::{post, secret_header, ApiBase, Secret};
use super::transport::Transport;
use super::{Adapter, Limits, PurgeBy, PurgeRequest, SendError, TagBudget};
use crate::engine::PurgeKind;
use axum::http::header;
use futures::future::BoxFuture;

/// The Cloudflare API's address.
pub const API: &str = "https://api.cloudflare.com/client/v4";

/// The Cloudflare adapter.
#[derive(Debug)]
pub struct Cloudflare {
    api: ApiBase,
    zone: String,
    token: Secret,
    transport: Transport,
}

impl Cloudflare {
    /// Purges zone `zone` through `api` with the API token `token`.
    pub fn new(api: ApiBase, zone: String, token: Secret) -> Cloudflare {
        Cloudflare {
            api,
            zone,
            token,
            transport: Transport::new(),
        }
    }
}

impl Adapter for Cloudflare {
    fn name(&self) -> &'static str {
        "cloudflare"
    }

    fn limits(&self) -> Limits {
        Limits {
            by: PurgeBy::Key,
            soft: true,
            items_per_request: 100,
            bytes_per_request: usize::MAX,
            item_overhead: 3,
            budget: TagBudget {
                tags_per_object: usize::MAX,
                header_bytes: 16_384,
                tag_bytes: 1_024,
            },
        }
    }

    fn send<'a>(&'a self, request: &'a PurgeRequest) -> BoxFuture<'a, Result<(), SendError>> {
        Box::pin(async move {
            let action = match request.kind {
                PurgeKind::Soft => "invalidate_cache",
                PurgeKind::Hard => "purge_cache",
            };
            let url = self.api.join(&format!("/zones/{}/{action}", self.zone));
            let bearer = secret_header(&format!("Bearer {}", self.token.expose()))?;
            let body = serde_json::to_vec(&serde_json::json!({ "tags": request.items }))
                .map_err(|e| SendError::Refused(e.to_string()))?;
            let answer = post(
                &self.transport,
                &url,
                vec![(header::AUTHORIZATION, bearer)],
                "application/json",
                body,
                "Cloudflare purge",
            )
            .await?;
            // A 200 whose envelope says it failed is a failure too.
            let envelope: serde_json::Value =
                serde_json::from_slice(&answer.body).unwrap_or_default();
            match envelope.get("success").and_then(serde_json::Value::as_bool) {
                Some(true) => Ok(()),
                _ => Err(SendError::Retry {
                    error: format!(
                        "Cloudflare purge: {}",
                        String::from_utf8_lossy(&answer.body[..answer.body.len().min(300)])
                    ),
                    after: None,
                }),
            }
        })
    }
}
