//! Amazon CloudFront: `CreateInvalidation`
//! (<https://docs.aws.amazon.com/cloudfront/latest/APIReference/API_CreateInvalidation.html>):
//! `POST {api}/2020-05-31/distribution/{id}/invalidation` with an XML
//! `InvalidationBatch` of paths (every page a change reaches), or with `--cloudfront-tags` of
//! tags as `#tag` and paths (a distribution with a `CacheTagConfig` whose header is
//! `cache-tag`, which pages then carry; see the CloudFront guide's "invalidation by tags"),
//! signed with AWS Signature Version 4 (the `aws-sigv4`
//! crate of the AWS SDK for Rust; region `us-east-1`, service `cloudfront`). The answer is
//! `201` with the invalidation's XML. CloudFront has no soft purge: every invalidation is
//! hard. At most 3,000 paths and tags may be in progress per distribution, so a request holds
//! at most 1,000; CloudFront keeps 50 tags of at most 256 characters per object.

use super::api::{post, ApiBase, Secret};
use super::transport::Transport;
use super::{Adapter, EdgeKey, Limits, PurgeBy, PurgeRequest, SendError, TagBudget};
use axum::http::{HeaderName, HeaderValue};
use futures::future::BoxFuture;

/// The CloudFront API's address.
pub const API: &str = "https://cloudfront.amazonaws.com";

/// AWS credentials (an access key pair, and a session token for temporary credentials).
#[derive(Clone, Debug)]
pub struct AwsCredentials {
    /// `AWS_ACCESS_KEY_ID`.
    pub access_key_id: String,
    /// `AWS_SECRET_ACCESS_KEY`.
    pub secret_access_key: Secret,
    /// `AWS_SESSION_TOKEN`, for temporary credentials.
    pub session_token: Option<Secret>,
}

/// The CloudFront adapter.
#[derive(Debug)]
pub struct CloudFront {
    api: ApiBase,
    distribution: String,
    credentials: AwsCredentials,
    /// Whether the distribution invalidates by tag (`#tag` items).
    tags: bool,
    transport: Transport,
}

impl CloudFront {
    /// Invalidates in `distribution` through `api`: by path, and by tag too when `tags` (the
    /// distribution has a `CacheTagConfig` on `cache-tag`).
    pub fn new(
        api: ApiBase,
        distribution: String,
        credentials: AwsCredentials,
        tags: bool,
    ) -> CloudFront {
        CloudFront {
            api,
            distribution,
            credentials,
            tags,
            transport: Transport::new(),
        }
    }
}

/// The `InvalidationBatch` document of `items`, with `reference` as its `CallerReference`.
///
/// ```
/// let xml = isr::cdn::cloudfront::invalidation_batch(&["/a".into(), "#posts".into()], "r1");
/// assert_eq!(xml, "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<InvalidationBatch xmlns=\"http://cloudfront.amazonaws.com/doc/2020-05-31/\"><CallerReference>r1</CallerReference><Paths><Quantity>2</Quantity><Items><Path>/a</Path><Path>#posts</Path></Items></Paths></InvalidationBatch>");
/// ```
pub fn invalidation_batch(items: &[String], reference: &str) -> String {
    let mut xml = String::from(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<InvalidationBatch xmlns=\"http://cloudfront.amazonaws.com/doc/2020-05-31/\">",
    );
    xml.push_str(&format!(
        "<CallerReference>{}</CallerReference><Paths><Quantity>{}</Quantity><Items>",
        xml_escape(reference),
        items.len()
    ));
    for item in items {
        xml.push_str(&format!("<Path>{}</Path>", xml_escape(item)));
    }
    xml.push_str("</Items></Paths></InvalidationBatch>");
    xml
}

/// How long to wait when CloudFront has too many invalidations in progress (they take
/// minutes) or throttles.
pub const BUSY_WAIT: std::time::Duration = std::time::Duration::from_secs(60);

/// CloudFront answers `400 TooManyInvalidationsInProgress` (and `Throttling`) when it is busy,
/// not when the request is wrong: those are retried after [`BUSY_WAIT`].
fn busy_is_retried(error: SendError) -> SendError {
    match error {
        SendError::Refused(message)
            if message.contains("<Code>TooManyInvalidationsInProgress</Code>")
                || message.contains("<Code>Throttling</Code>") =>
        {
            SendError::Retry {
                error: message,
                after: Some(BUSY_WAIT),
            }
        }
        other => other,
    }
}

fn xml_escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

impl CloudFront {
    /// The SigV4 headers (`authorization`, `x-amz-date`, `x-amz-security-token`) of a POST
    /// of `body` to `url`.
    fn signed_headers(
        &self,
        url: &str,
        body: &[u8],
    ) -> Result<Vec<(HeaderName, HeaderValue)>, SendError> {
        use aws_sigv4::http_request::{sign, SignableBody, SignableRequest, SigningSettings};
        let refused = |e: &dyn std::fmt::Display| SendError::Refused(format!("signing: {e}"));
        let credentials = aws_credential_types::Credentials::new(
            self.credentials.access_key_id.clone(),
            self.credentials.secret_access_key.expose().to_owned(),
            self.credentials
                .session_token
                .as_ref()
                .map(|t| t.expose().to_owned()),
            None,
            "isr",
        );
        let identity = credentials.into();
        let params = aws_sigv4::sign::v4::SigningParams::builder()
            .identity(&identity)
            .region("us-east-1")
            .name("cloudfront")
            .time(std::time::SystemTime::now())
            .settings(SigningSettings::default())
            .build()
            .map_err(|e| refused(&e))?
            .into();
        let content_type = [("content-type", "application/xml")];
        let signable = SignableRequest::new(
            "POST",
            url,
            content_type.into_iter(),
            SignableBody::Bytes(body),
        )
        .map_err(|e| refused(&e))?;
        let (instructions, _) = sign(signable, &params)
            .map_err(|e| refused(&e))?
            .into_parts();
        let mut headers = Vec::new();
        for (name, value) in instructions.headers() {
            let name = HeaderName::from_bytes(name.as_bytes()).map_err(|e| refused(&e))?;
            let mut value = HeaderValue::from_str(value).map_err(|e| refused(&e))?;
            value.set_sensitive(true);
            headers.push((name, value));
        }
        Ok(headers)
    }
}

impl Adapter for CloudFront {
    fn name(&self) -> &'static str {
        "cloudfront"
    }

    fn limits(&self) -> Limits {
        Limits {
            by: if self.tags {
                PurgeBy::Key
            } else {
                PurgeBy::Path
            },
            soft: false,
            items_per_request: 1_000,
            bytes_per_request: usize::MAX,
            item_overhead: 13,
            budget: TagBudget {
                tags_per_object: 50,
                header_bytes: usize::MAX,
                tag_bytes: 256,
            },
        }
    }

    fn item(&self, key: &EdgeKey) -> String {
        match key {
            EdgeKey::Tag(tag) => format!("#{tag}"),
            EdgeKey::Path { url, .. } => url.clone(),
        }
    }

    fn send<'a>(&'a self, request: &'a PurgeRequest) -> BoxFuture<'a, Result<(), SendError>> {
        Box::pin(async move {
            let url = self.api.join(&format!(
                "/2020-05-31/distribution/{}/invalidation",
                self.distribution
            ));
            let reference = format!("isr-{}", crate::random::hex::<12>());
            let body = invalidation_batch(&request.items, &reference).into_bytes();
            let headers = self.signed_headers(&url, &body)?;
            let sent = post(
                &self.transport,
                &url,
                headers,
                "application/xml",
                body,
                "CloudFront invalidation",
            )
            .await;
            sent.map(drop).map_err(busy_is_retried)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_busy_cloudfront_is_waited_for_and_a_wrong_request_is_not_retried() {
        let answer = |code: &str| {
            SendError::Refused(format!(
                "CloudFront invalidation: 400 Bad Request (<ErrorResponse><Error><Type>Sender</Type><Code>{code}</Code></Error></ErrorResponse>)"
            ))
        };
        for busy in ["TooManyInvalidationsInProgress", "Throttling"] {
            assert!(
                matches!(busy_is_retried(answer(busy)), SendError::Retry { after: Some(wait), .. } if wait == BUSY_WAIT),
                "{busy}"
            );
        }
        assert!(matches!(
            busy_is_retried(answer("InvalidArgument")),
            SendError::Refused(_)
        ));
    }
}
