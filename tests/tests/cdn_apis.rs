//! The purge adapters of Fastly, Cloudflare, Akamai and CloudFront, all four configured at
//! once on the blog, against a local stand-in of each vendor's API (the vendors cannot be
//! reached from here). The stand-in checks each request as the vendor documents it (method,
//! path, headers, body, and the EdgeGrid and SigV4 signatures, recomputed here without isr's
//! code) and answers as the vendor does: first a rate limit (`429` with the vendor's wait
//! header) or a `5xx`, then success. Each adapter has its own queue: each retries on its own.

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use hmac::{Hmac, Mac};
use isr_tests::{poll_until, BlogServer, Fixture};
use serde_json::json;
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

const FASTLY_TOKEN: &str = "fastly-token-for-tests";
const CLOUDFLARE_TOKEN: &str = "cloudflare-token-for-tests";
const AKAMAI_CLIENT_TOKEN: &str = "akab-client-token-test";
const AKAMAI_CLIENT_SECRET: &str = "akamai-client-secret-for-tests=";
const AKAMAI_ACCESS_TOKEN: &str = "akab-access-token-test";
const AWS_KEY_ID: &str = "AKIDISRTESTS";
const AWS_SECRET: &str = "aws-secret-for-tests";

/// One request a stand-in got: which vendor, whether it was as documented (else why not).
#[derive(Clone, Debug)]
struct Seen {
    vendor: &'static str,
    path: String,
    verdict: Result<(), String>,
    /// The keys (tags, paths) it named.
    keys: Vec<String>,
    /// Fastly: whether it asked for a soft purge (`Fastly-Soft-Purge: 1`).
    soft: bool,
}

#[derive(Clone, Default)]
struct StandIn {
    seen: Arc<Mutex<Vec<Seen>>>,
    authority: Arc<Mutex<String>>,
    /// While set, every vendor answers `503` (its API is down).
    down: Arc<std::sync::atomic::AtomicBool>,
}

impl StandIn {
    fn requests(&self, vendor: &str) -> Vec<Seen> {
        let seen = self.seen.lock().unwrap();
        seen.iter()
            .filter(|s| s.vendor == vendor)
            .cloned()
            .collect()
    }
}

fn header<'a>(headers: &'a HeaderMap, name: &str) -> &'a str {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
}

fn hmac_sha256(key: &[u8], message: &[u8]) -> Vec<u8> {
    let mut mac = Hmac::<Sha256>::new_from_slice(key).unwrap();
    mac.update(message);
    mac.finalize().into_bytes().to_vec()
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Checks one request as its vendor documents it; returns the vendor, the keys it names and
/// the verdict.
fn check(
    method: &Method,
    uri: &Uri,
    headers: &HeaderMap,
    body: &[u8],
    authority: &str,
) -> (&'static str, Vec<String>, Result<(), String>) {
    let path = uri.path();
    let json: serde_json::Value = serde_json::from_slice(body).unwrap_or_default();
    let strings = |value: &serde_json::Value| -> Vec<String> {
        value
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|v| v.as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default()
    };
    let expect = |ok: bool, why: &str| if ok { Ok(()) } else { Err(why.to_string()) };
    if method != Method::POST {
        return ("unknown", vec![], Err(format!("{method} {path}")));
    }
    // https://www.fastly.com/documentation/reference/api/purging/ (batch purge by key)
    if let Some(rest) = path.strip_prefix("/service/") {
        let keys: Vec<String> = header(headers, "surrogate-key")
            .split(' ')
            .filter(|k| !k.is_empty())
            .map(str::to_owned)
            .collect();
        let verdict = expect(rest == "svc-1/purge", "path")
            .and(expect(
                header(headers, "fastly-key") == FASTLY_TOKEN,
                "fastly-key",
            ))
            .and(expect(
                !keys.is_empty() && keys.len() <= 256,
                "surrogate-key",
            ));
        return ("fastly", keys, verdict);
    }
    // https://developers.cloudflare.com/api/resources/cache/methods/purge/ (and invalidate)
    if let Some(action) = path.strip_prefix("/client/v4/zones/zone-1/") {
        let tags = strings(&json["tags"]);
        let verdict = expect(
            action == "purge_cache" || action == "invalidate_cache",
            "action",
        )
        .and(expect(
            header(headers, "authorization") == format!("Bearer {CLOUDFLARE_TOKEN}"),
            "authorization",
        ))
        .and(expect(
            header(headers, "content-type") == "application/json",
            "content-type",
        ))
        .and(expect(!tags.is_empty() && tags.len() <= 100, "tags"))
        .and(expect(
            json.as_object().is_some_and(|o| o.len() == 1),
            "only tags",
        ));
        return ("cloudflare", tags, verdict);
    }
    // https://techdocs.akamai.com/purge-cache/reference/invalidate-tag (and delete-tag),
    // signed as https://techdocs.akamai.com/developer/docs/authenticate-with-edgegrid says.
    if path.starts_with("/ccu/v3/") {
        let objects = strings(&json["objects"]);
        // Akamai's cache tags: at most 128 characters of A-Za-z0-9 and !#$%'+./^_`|~-.
        let valid_tag = |tag: &String| {
            tag.len() <= 128
                && tag
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"!#$%'+./^_`|~-".contains(&b))
        };
        let verdict = expect(
            path == "/ccu/v3/invalidate/tag/production" || path == "/ccu/v3/delete/tag/production",
            "path",
        )
        .and(expect(!objects.is_empty(), "objects"))
        .and(expect(objects.iter().all(valid_tag), "tag characters"))
        .and(expect(body.len() <= 50_000, "body size"))
        .and(edgegrid_valid(
            header(headers, "authorization"),
            authority,
            path,
            body,
        ));
        return ("akamai", objects, verdict);
    }
    // https://docs.aws.amazon.com/cloudfront/latest/APIReference/API_CreateInvalidation.html
    if path == "/2020-05-31/distribution/DIST1/invalidation" {
        let xml = String::from_utf8_lossy(body).into_owned();
        let items: Vec<String> = xml
            .split("<Path>")
            .skip(1)
            .filter_map(|p| p.split("</Path>").next())
            .map(str::to_owned)
            .collect();
        let verdict = expect(
            xml.contains(
                "<InvalidationBatch xmlns=\"http://cloudfront.amazonaws.com/doc/2020-05-31/\">",
            ),
            "namespace",
        )
        .and(expect(
            xml.contains(&format!("<Quantity>{}</Quantity>", items.len())),
            "quantity",
        ))
        .and(expect(
            xml.contains("<CallerReference>isr-"),
            "caller reference",
        ))
        .and(expect(
            header(headers, "content-type") == "application/xml",
            "content-type",
        ))
        .and(sigv4_valid(headers, authority, path, body));
        return ("cloudfront", items, verdict);
    }
    ("unknown", vec![], Err(format!("{method} {path}")))
}

/// The EdgeGrid signature, recomputed from the documented algorithm.
fn edgegrid_valid(authorization: &str, host: &str, path: &str, body: &[u8]) -> Result<(), String> {
    let b64 = base64::engine::general_purpose::STANDARD;
    let Some((prefix, signature)) = authorization.rsplit_once("signature=") else {
        return Err(format!("no signature in {authorization:?}"));
    };
    let fields: HashMap<&str, &str> = prefix
        .trim_start_matches("EG1-HMAC-SHA256 ")
        .split(';')
        .filter_map(|f| f.split_once('='))
        .collect();
    if fields.get("client_token") != Some(&AKAMAI_CLIENT_TOKEN)
        || fields.get("access_token") != Some(&AKAMAI_ACCESS_TOKEN)
        || !authorization.starts_with("EG1-HMAC-SHA256 ")
    {
        return Err(format!("tokens in {prefix:?}"));
    }
    let timestamp = fields.get("timestamp").copied().unwrap_or("");
    let content_hash = b64.encode(Sha256::digest(body));
    let data = format!("POST\thttps\t{host}\t{path}\t\t{content_hash}\t{prefix}");
    let key = b64.encode(hmac_sha256(
        AKAMAI_CLIENT_SECRET.as_bytes(),
        timestamp.as_bytes(),
    ));
    let expected = b64.encode(hmac_sha256(key.as_bytes(), data.as_bytes()));
    if expected == signature {
        Ok(())
    } else {
        Err(format!("EdgeGrid signature {signature} is not {expected}"))
    }
}

/// The SigV4 signature, recomputed from AWS's documented algorithm
/// (https://docs.aws.amazon.com/IAM/latest/UserGuide/create-signed-request.html).
fn sigv4_valid(headers: &HeaderMap, host: &str, path: &str, body: &[u8]) -> Result<(), String> {
    let authorization = header(headers, "authorization");
    let amz_date = header(headers, "x-amz-date");
    let date = amz_date.get(..8).unwrap_or("");
    let scope = format!("{date}/us-east-1/cloudfront/aws4_request");
    let Some(rest) = authorization.strip_prefix(&format!(
        "AWS4-HMAC-SHA256 Credential={AWS_KEY_ID}/{scope}, SignedHeaders="
    )) else {
        return Err(format!("authorization {authorization:?}"));
    };
    let Some((signed, signature)) = rest.split_once(", Signature=") else {
        return Err(format!("authorization {authorization:?}"));
    };
    let names: Vec<&str> = signed.split(';').collect();
    if !names.contains(&"host") || !names.contains(&"x-amz-date") {
        return Err(format!("signed headers {signed}"));
    }
    let canonical_headers: String = names
        .iter()
        .map(|name| {
            let value = if *name == "host" {
                host
            } else {
                header(headers, name)
            };
            format!("{name}:{}\n", value.trim())
        })
        .collect();
    let canonical = format!(
        "POST\n{path}\n\n{canonical_headers}\n{signed}\n{}",
        hex(&Sha256::digest(body))
    );
    let to_sign = format!(
        "AWS4-HMAC-SHA256\n{amz_date}\n{scope}\n{}",
        hex(&Sha256::digest(canonical.as_bytes()))
    );
    let mut key = hmac_sha256(format!("AWS4{AWS_SECRET}").as_bytes(), date.as_bytes());
    for part in ["us-east-1", "cloudfront", "aws4_request"] {
        key = hmac_sha256(&key, part.as_bytes());
    }
    let expected = hex(&hmac_sha256(&key, to_sign.as_bytes()));
    if expected == signature {
        Ok(())
    } else {
        Err(format!("SigV4 signature {signature} is not {expected}"))
    }
}

/// The vendor's answer: the first request of each is refused as the vendor does when busy,
/// every later one succeeds (or is refused as malformed when it was not as documented).
async fn answer(
    State(stand_in): State<StandIn>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let authority = stand_in.authority.lock().unwrap().clone();
    let (vendor, keys, verdict) = check(&method, &uri, &headers, &body, &authority);
    let first = stand_in.requests(vendor).is_empty();
    stand_in.seen.lock().unwrap().push(Seen {
        vendor,
        path: uri.path().to_owned(),
        verdict: verdict.clone(),
        keys: keys.clone(),
        soft: header(&headers, "fastly-soft-purge") == "1",
    });
    if let Err(why) = verdict {
        return (StatusCode::BAD_REQUEST, why).into_response();
    }
    if stand_in.down.load(std::sync::atomic::Ordering::SeqCst) {
        return (StatusCode::SERVICE_UNAVAILABLE, "down for maintenance").into_response();
    }
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    match (vendor, first) {
        ("fastly", true) => (
            StatusCode::TOO_MANY_REQUESTS,
            [("fastly-ratelimit-remaining", "0".to_string()), ("fastly-ratelimit-reset", (now + 1).to_string())],
            r#"{"msg":"Rate limit exceeded"}"#,
        )
            .into_response(),
        ("fastly", false) => {
            let map: serde_json::Map<String, serde_json::Value> =
                keys.iter().map(|k| (k.clone(), json!("108-1391560174-974124"))).collect();
            axum::Json(map).into_response()
        }
        ("cloudflare", true) => (
            StatusCode::TOO_MANY_REQUESTS,
            [("retry-after", "1")],
            r#"{"success":false,"errors":[{"code":971,"message":"Please wait and consider throttling your request speed"}],"messages":[],"result":null}"#,
        )
            .into_response(),
        ("cloudflare", false) => axum::Json(json!({
            "success": true, "errors": [], "messages": [],
            "result": { "id": "023e105f4ecef8ad9ca31a8372d0c353" }
        }))
        .into_response(),
        ("akamai", true) => (
            StatusCode::TOO_MANY_REQUESTS,
            [("x-ratelimit-seconds-to-refresh-limit", "1")],
            r#"{"supportId":"17PY1","title":"TAG Rate Limit exceeded","httpStatus":429,"detail":"","rateLimit":5000}"#,
        )
            .into_response(),
        ("akamai", false) => (
            StatusCode::CREATED,
            axum::Json(json!({
                "httpStatus": 201, "estimatedSeconds": 5, "purgeId": "edcp-NZbXzFpHBjcJeryhw6PVgG",
                "supportId": "edcp-NZbXzFpHBjcJeryhw6PVgG", "detail": "Request accepted"
            })),
        )
            .into_response(),
        ("cloudfront", true) => (
            StatusCode::SERVICE_UNAVAILABLE,
            "<ErrorResponse xmlns=\"http://cloudfront.amazonaws.com/doc/2020-05-31/\"><Error><Type>Receiver</Type><Code>ServiceUnavailable</Code><Message>busy</Message></Error><RequestId>r</RequestId></ErrorResponse>",
        )
            .into_response(),
        _ => (
            StatusCode::CREATED,
            [("location", "https://cloudfront.amazonaws.com/2020-05-31/distribution/DIST1/invalidation/I2J0I21PCUYOIK")],
            "<Invalidation xmlns=\"http://cloudfront.amazonaws.com/doc/2020-05-31/\"><Id>I2J0I21PCUYOIK</Id><Status>InProgress</Status></Invalidation>",
        )
            .into_response(),
    }
}

async fn start_stand_in() -> (StandIn, String, tokio::task::JoinHandle<()>) {
    let stand_in = StandIn::default();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let authority = listener.local_addr().unwrap().to_string();
    *stand_in.authority.lock().unwrap() = authority.clone();
    let app = axum::Router::new()
        .fallback(answer)
        .with_state(stand_in.clone());
    let task = tokio::spawn(async move {
        axum::serve(listener, app).await.unwrap();
    });
    (stand_in, format!("http://{authority}"), task)
}

#[tokio::test]
async fn every_vendor_gets_its_documented_request_and_each_queue_retries_on_its_own() {
    let (stand_in, base, server_task) = start_stand_in().await;
    let fx = Fixture::new();
    let cloudflare_api = format!("{base}/client/v4");
    let server = BlogServer::start(
        &fx,
        &[
            "--fastly-service",
            "svc-1",
            "--fastly-api",
            &base,
            "--cloudflare-zone",
            "zone-1",
            "--cloudflare-api",
            &cloudflare_api,
            "--akamai-host",
            "akab-test.purge.akamaiapis.net",
            "--akamai-api",
            &base,
            "--cloudfront-distribution",
            "DIST1",
            "--cloudfront-api",
            &base,
            "--cloudfront-tags",
        ],
        &[
            ("ISR_FASTLY_TOKEN", FASTLY_TOKEN),
            ("ISR_CLOUDFLARE_TOKEN", CLOUDFLARE_TOKEN),
            ("ISR_AKAMAI_CLIENT_TOKEN", AKAMAI_CLIENT_TOKEN),
            ("ISR_AKAMAI_CLIENT_SECRET", AKAMAI_CLIENT_SECRET),
            ("ISR_AKAMAI_ACCESS_TOKEN", AKAMAI_ACCESS_TOKEN),
            ("AWS_ACCESS_KEY_ID", AWS_KEY_ID),
            ("AWS_SECRET_ACCESS_KEY", AWS_SECRET),
        ],
    );
    // Pages carry the tag headers of the CDNs configured.
    let page = server.get("/blog/what-is-isr").await;
    let tags = page.header("cache-tag").unwrap_or_default();
    assert!(tags.starts_with("posts,"), "{tags:?}");
    assert_eq!(page.header("edge-cache-tag"), page.header("cache-tag"));

    let answer = server
        .revalidate(&json!({ "tags": ["posts"], "mode": "stale" }))
        .await;
    assert_eq!(answer.status, 200, "{}", answer.body);
    // Each vendor: refused once (rate limit, or 503 for CloudFront), then one request that
    // went, each within about its wait.
    poll_until("every vendor purged", Duration::from_secs(30), || async {
        let metrics = server.metrics().await;
        let done = ["fastly", "cloudflare", "akamai", "cloudfront"]
            .iter()
            .all(|cdn| {
                metrics.sum("isr_cdn_purges_total", &[("cdn", cdn), ("outcome", "ok")]) == 1.0
            });
        done.then_some(())
    })
    .await;
    let metrics = server.metrics().await;
    for (cdn, kind, refused) in [
        ("fastly", "soft", "rate_limited"),
        ("cloudflare", "soft", "rate_limited"),
        ("akamai", "soft", "rate_limited"),
        ("cloudfront", "hard", "error"),
    ] {
        let count = |outcome| {
            metrics.sum(
                "isr_cdn_purges_total",
                &[("cdn", cdn), ("kind", kind), ("outcome", outcome)],
            )
        };
        assert_eq!((count(refused), count("ok")), (1.0, 1.0), "{cdn}");
        let requests = stand_in.requests(cdn);
        assert_eq!(requests.len(), 2, "{cdn}: {requests:?}");
        for request in &requests {
            assert_eq!(request.verdict, Ok(()), "{cdn}: {request:?}");
        }
        let expected_keys = if cdn == "cloudfront" {
            "#posts"
        } else {
            "posts"
        };
        assert_eq!(
            requests[1].keys,
            [expected_keys],
            "{cdn}: one key for the whole tag"
        );
    }
    assert!(stand_in.requests("cloudflare")[1]
        .path
        .ends_with("/invalidate_cache"));
    assert!(stand_in.requests("akamai")[1]
        .path
        .starts_with("/ccu/v3/invalidate/"));
    assert!(stand_in.requests("unknown").is_empty());
    assert!(stand_in.requests("fastly")[1].soft, "Fastly-Soft-Purge: 1");
    // No secret in the logs.
    let log = server.stderr_text();
    for secret in [
        FASTLY_TOKEN,
        CLOUDFLARE_TOKEN,
        AKAMAI_CLIENT_TOKEN,
        AKAMAI_CLIENT_SECRET,
        AKAMAI_ACCESS_TOKEN,
        AWS_SECRET,
    ] {
        assert!(!log.contains(secret), "{secret} logged");
    }

    // A hard purge of one page, by its path: Cloudflare's purge_cache, Akamai's delete.
    let answer = server
        .revalidate(
            &json!({ "paths": ["/blog/what-is-isr"], "mode": "regenerate", "purge": "hard" }),
        )
        .await;
    assert_eq!(answer.status, 200, "{}", answer.body);
    assert!(answer.body.contains("\"purged\":true"), "{}", answer.body);
    let cloudflare = stand_in.requests("cloudflare");
    assert!(
        cloudflare[2].path.ends_with("/purge_cache"),
        "{cloudflare:?}"
    );
    assert_eq!(cloudflare[2].keys, ["/blog/what-is-isr"]);
    assert!(stand_in.requests("akamai")[2]
        .path
        .starts_with("/ccu/v3/delete/"));
    assert!(
        !stand_in.requests("fastly")[2].soft,
        "no Fastly-Soft-Purge on a hard purge"
    );
    assert_eq!(
        stand_in.requests("cloudfront")[2].keys,
        ["/blog/what-is-isr"]
    );
    drop(server);
    server_task.abort();
}

#[tokio::test]
async fn purges_the_cdn_api_did_not_take_are_sent_after_a_restart() {
    let (stand_in, base, server_task) = start_stand_in().await;
    stand_in
        .down
        .store(true, std::sync::atomic::Ordering::SeqCst);
    let fx = Fixture::new();
    let args = ["--fastly-service", "svc-1", "--fastly-api", &base];
    let envs = [("ISR_FASTLY_TOKEN", FASTLY_TOKEN)];
    let mut server = BlogServer::start(&fx, &args, &envs);
    let answer = server
        .revalidate(&json!({ "tags": ["posts"], "mode": "stale" }))
        .await;
    assert_eq!(answer.status, 200, "{}", answer.body);
    // The API is down: the first attempt failed.
    poll_until("a failed Fastly purge", Duration::from_secs(20), || async {
        let failed = server.metrics().await.sum(
            "isr_cdn_purges_total",
            &[("cdn", "fastly"), ("outcome", "error")],
        );
        (failed >= 1.0).then_some(())
    })
    .await;
    // Killed with the purge pending; the API comes back.
    server.stop_with("KILL");
    drop(server);
    let tried = stand_in.requests("fastly").len();
    stand_in
        .down
        .store(false, std::sync::atomic::Ordering::SeqCst);
    let server = BlogServer::start(&fx, &args, &envs);
    poll_until(
        "the pending purge sent after the restart",
        Duration::from_secs(20),
        || async {
            let sent = stand_in.requests("fastly");
            sent[tried..]
                .iter()
                .any(|r| r.keys == ["posts"] && r.verdict.is_ok())
                .then_some(())
        },
    )
    .await;
    assert!(server
        .stderr_text()
        .contains("sending the CDN purges left at the last stop"));
    drop(server);
    server_task.abort();
}

#[tokio::test]
async fn cloudfront_without_tags_invalidates_every_page_of_a_tag_by_its_path() {
    let (stand_in, base, server_task) = start_stand_in().await;
    let fx = Fixture::new();
    let server = BlogServer::start(
        &fx,
        &[
            "--cloudfront-distribution",
            "DIST1",
            "--cloudfront-api",
            &base,
        ],
        &[
            ("AWS_ACCESS_KEY_ID", AWS_KEY_ID),
            ("AWS_SECRET_ACCESS_KEY", AWS_SECRET),
        ],
    );
    // Without tag invalidation the pages carry no `cache-tag` for it.
    assert_eq!(
        server.get("/blog/what-is-isr").await.header("cache-tag"),
        None
    );
    let answer = server
        .revalidate(&json!({ "tags": ["posts"], "mode": "stale" }))
        .await;
    assert_eq!(answer.status, 200, "{}", answer.body);
    let body: serde_json::Value = serde_json::from_str(&answer.body).unwrap();
    let mut marked: Vec<String> = body["results"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["outcome"] == "marked_stale")
        .map(|r| r["path"].as_str().unwrap().to_owned())
        .collect();
    marked.sort();
    assert!(
        marked.contains(&"/blog/what-is-isr".to_string()),
        "{marked:?}"
    );
    // The stand-in answers 503 first; the retry carries every path, no tag.
    poll_until(
        "CloudFront invalidated",
        Duration::from_secs(20),
        || async { (stand_in.requests("cloudfront").len() == 2).then_some(()) },
    )
    .await;
    let sent = &stand_in.requests("cloudfront")[1];
    assert_eq!(sent.verdict, Ok(()));
    let mut paths = sent.keys.clone();
    paths.sort();
    assert_eq!(paths, marked, "one invalidation of every page of the tag");
    drop(server);
    server_task.abort();
}
