//! Akamai Fast Purge v3: invalidate (soft) or delete (hard) by cache tag
//! (<https://techdocs.akamai.com/purge-cache/reference/invalidate-tag>):
//! `POST https://{host}/ccu/v3/{invalidate|delete}/tag/{network}` with
//! `{"objects":["tag",…]}`, signed with EdgeGrid (`Authorization: EG1-HMAC-SHA256 …`). The
//! answer is `201` with `{"httpStatus":201,"purgeId":…,"estimatedSeconds":5,…}`. Over the
//! rate limit Akamai answers `429` (the queue waits five seconds, as the docs say, or
//! `x-ratelimit-seconds-to-refresh-limit`). A request body holds at most 50,000 bytes.
//!
//! Pages carry `edge-cache-tag`: at most 128 tags of at most 128 characters an object.
//!
//! EdgeGrid is written here (about thirty lines over `hmac`, `sha2` and `base64`): Akamai
//! publishes no Rust signer, and the algorithm is small and fixed
//! (<https://techdocs.akamai.com/developer/docs/authenticate-with-edgegrid>); the unit test
//! checks it against the official test vector of Akamai's Python signer.

use super::api::{post, secret_header, ApiBase, Secret};
use super::transport::Transport;
use super::{Adapter, Limits, PurgeBy, PurgeRequest, SendError, TagBudget};
use crate::engine::PurgeKind;
use axum::http::header;
use base64::Engine as _;
use futures::future::BoxFuture;
use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};

/// An EdgeGrid API client's credentials (from `~/.edgerc`: `client_token`, `client_secret`,
/// `access_token`).
#[derive(Clone, Debug)]
pub struct EdgeGridCredentials {
    /// `client_token`.
    pub client_token: Secret,
    /// `client_secret`.
    pub client_secret: Secret,
    /// `access_token`.
    pub access_token: Secret,
}

/// Bytes of a body the signature hashes at most (the signers' `max_body`).
const MAX_SIGNED_BODY: usize = 131_072;

/// The `Authorization` header of an EdgeGrid v1 request: `timestamp` as
/// `20140321T19:34:21+0000`, `host` as sent, `path_and_query` raw, no signed headers.
pub fn edgegrid_authorization(
    credentials: &EdgeGridCredentials,
    method: &str,
    host: &str,
    path_and_query: &str,
    body: &[u8],
    timestamp: &str,
    nonce: &str,
) -> String {
    let base64 = base64::engine::general_purpose::STANDARD;
    let auth = format!(
        "EG1-HMAC-SHA256 client_token={};access_token={};timestamp={timestamp};nonce={nonce};",
        credentials.client_token.expose(),
        credentials.access_token.expose()
    );
    let content_hash = if method == "POST" && !body.is_empty() {
        base64.encode(Sha256::digest(&body[..body.len().min(MAX_SIGNED_BODY)]))
    } else {
        String::new()
    };
    let data = format!("{method}\thttps\t{host}\t{path_and_query}\t\t{content_hash}\t{auth}");
    let signing_key = base64.encode(hmac(
        credentials.client_secret.expose().as_bytes(),
        timestamp,
    ));
    let signature = base64.encode(hmac(signing_key.as_bytes(), &data));
    format!("{auth}signature={signature}")
}

fn hmac(key: &[u8], message: &str) -> Vec<u8> {
    let mut mac = Hmac::<Sha256>::new_from_slice(key).expect("HMAC takes any key length");
    mac.update(message.as_bytes());
    mac.finalize().into_bytes().to_vec()
}

/// The Akamai adapter.
#[derive(Debug)]
pub struct Akamai {
    api: ApiBase,
    network: String,
    credentials: EdgeGridCredentials,
    transport: Transport,
}

impl Akamai {
    /// Purges on `network` (`production` or `staging`) through `api`
    /// (`https://akab-….purge.akamaiapis.net`).
    pub fn new(api: ApiBase, network: String, credentials: EdgeGridCredentials) -> Akamai {
        Akamai {
            api,
            network,
            credentials,
            transport: Transport::new(),
        }
    }
}

impl Adapter for Akamai {
    fn name(&self) -> &'static str {
        "akamai"
    }

    fn limits(&self) -> Limits {
        Limits {
            by: PurgeBy::Key,
            soft: true,
            items_per_request: 5_000,
            // 50,000 bytes a body: `{"objects":[]}` and `"key",` per key within it.
            bytes_per_request: 49_000,
            item_overhead: 3,
            budget: TagBudget {
                tags_per_object: 128,
                header_bytes: usize::MAX,
                tag_bytes: 128,
            },
        }
    }

    fn send<'a>(&'a self, request: &'a PurgeRequest) -> BoxFuture<'a, Result<(), SendError>> {
        Box::pin(async move {
            let action = match request.kind {
                PurgeKind::Soft => "invalidate",
                PurgeKind::Hard => "delete",
            };
            let url = self
                .api
                .join(&format!("/ccu/v3/{action}/tag/{}", self.network));
            // The path signed is the one sent (an API address may have a path of its own).
            let path = url
                .parse::<axum::http::Uri>()
                .map(|uri| uri.path().to_owned())
                .map_err(|e| SendError::Refused(format!("{url}: {e}")))?;
            let body = serde_json::to_vec(&serde_json::json!({ "objects": request.items }))
                .map_err(|e| SendError::Refused(e.to_string()))?;
            let now_ms = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap_or_default()
                .as_millis() as u64;
            let timestamp = edgegrid_timestamp(now_ms);
            let nonce = crate::random::hex::<16>();
            let authorization = edgegrid_authorization(
                &self.credentials,
                "POST",
                &self.api.authority(),
                &path,
                &body,
                &timestamp,
                &nonce,
            );
            post(
                &self.transport,
                &url,
                vec![(header::AUTHORIZATION, secret_header(&authorization)?)],
                "application/json",
                body,
                "Akamai purge",
            )
            .await
            .map(drop)
        })
    }
}

/// `ms` since the epoch as EdgeGrid's timestamp (`20140321T19:34:21+0000`).
fn edgegrid_timestamp(ms: u64) -> String {
    let utc = crate::dashboard::utc(ms); // 2014-03-21 19:34:21
    format!("{}+0000", utc.replacen(' ', "T", 1).replacen('-', "", 2))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Akamai's own test vector ("POST inside limit", akamai/AkamaiOPEN-edgegrid-python,
    /// `akamai/edgegrid/test/testdata.json`).
    #[test]
    fn signs_as_akamais_test_vector_expects() {
        let credentials = EdgeGridCredentials {
            client_token: Secret::new("akab-client-token-xxx-xxxxxxxxxxxxxxxx"),
            client_secret: Secret::new("xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx="),
            access_token: Secret::new("akab-access-token-xxx-xxxxxxxxxxxxxxxx"),
        };
        let authorization = edgegrid_authorization(
            &credentials,
            "POST",
            "akaa-baseurl-xxxxxxxxxxx-xxxxxxxxxxxxx.luna.akamaiapis.net",
            "/testapi/v1/t3",
            b"datadatadatadatadatadatadatadata",
            "20140321T19:34:21+0000",
            "nonce-xx-xxxx-xxxx-xxxx-xxxxxxxxxxxx",
        );
        assert_eq!(
            authorization,
            "EG1-HMAC-SHA256 client_token=akab-client-token-xxx-xxxxxxxxxxxxxxxx;access_token=akab-access-token-xxx-xxxxxxxxxxxxxxxx;timestamp=20140321T19:34:21+0000;nonce=nonce-xx-xxxx-xxxx-xxxx-xxxxxxxxxxxx;signature=hXm4iCxtpN22m4cbZb4lVLW5rhX8Ca82vCFqXzSTPe4="
        );
        // "simple GET": no content hash.
        let get = edgegrid_authorization(
            &credentials,
            "GET",
            "akaa-baseurl-xxxxxxxxxxx-xxxxxxxxxxxxx.luna.akamaiapis.net",
            "/",
            b"",
            "20140321T19:34:21+0000",
            "nonce-xx-xxxx-xxxx-xxxx-xxxxxxxxxxxx",
        );
        assert!(
            get.ends_with("signature=tL+y4hxyHxgWVD30X3pWnGKHcPzmrIF+LThiAOhMxYU="),
            "{get}"
        );
    }

    #[test]
    fn timestamps_are_utc_in_edgegrids_format() {
        // 2014-03-21 19:34:21 UTC.
        assert_eq!(
            edgegrid_timestamp(1_395_430_461_000),
            "20140321T19:34:21+0000"
        );
    }
}
