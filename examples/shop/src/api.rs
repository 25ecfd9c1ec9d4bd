//! The admin JSON API: change a price, create and delete products, and revalidate exactly the
//! pages that show them (in-process, before answering), so the next page request shows the
//! change.
//!
//! | request | answer |
//! |---|---|
//! | `PUT /api/products/:id/price` `{"price_cents": 1299}` | `200` product JSON |
//! | `POST /api/products` `{"name", "description", "category", "price_cents", "stock"}` | `201` product JSON |
//! | `DELETE /api/products/:id` | `204` |
//!
//! Every route needs `Authorization: Bearer $SHOP_ADMIN_TOKEN` (`401` otherwise, checked before
//! anything else); without a token configured every route is `404`. Bodies are JSON; malformed
//! JSON, wrong types, missing or unknown fields and out-of-range values are `400` (axum's `Json`
//! extractor would say `422` for wrong types, so bodies are parsed here). An id that is not a
//! positive integer or not in the database is `404`. Errors are `{"error": "..."}`, and no
//! error ever changes the database: requests are validated first, then applied in one statement.

use crate::db::{self, Db};
use crate::format;
use crate::generate::NewProduct;
use isr::axum::body::Bytes;
use isr::axum::extract::{DefaultBodyLimit, Path, Request, State};
use isr::axum::http::{header, HeaderMap, StatusCode};
use isr::axum::middleware::{self, Next};
use isr::axum::response::{IntoResponse, Response};
use isr::axum::routing::{any, delete, post, put};
use isr::axum::Extension;
use isr::axum::{Json, Router};
use isr::Revalidator;
use serde::de::DeserializeOwned;
use serde::Deserialize;
use std::sync::Arc;

/// Env var holding the admin API's bearer token (unset or empty: the API is off).
///
/// ```
/// assert_eq!(shop::api::TOKEN_ENV, "SHOP_ADMIN_TOKEN");
/// ```
pub const TOKEN_ENV: &str = "SHOP_ADMIN_TOKEN";

/// Largest accepted request body (larger: `413`).
///
/// ```
/// assert_eq!(shop::api::BODY_LIMIT, 64 * 1024);
/// ```
pub const BODY_LIMIT: usize = 64 * 1024;

/// Highest accepted price: $1,000,000.00.
///
/// ```
/// assert_eq!(shop::format::price(shop::api::MAX_PRICE_CENTS), "$1,000,000.00");
/// ```
pub const MAX_PRICE_CENTS: i64 = 100_000_000;

/// Highest accepted stock.
///
/// ```
/// assert_eq!(shop::api::MAX_STOCK, 1_000_000_000);
/// ```
pub const MAX_STOCK: i64 = 1_000_000_000;

/// The token from `SHOP_ADMIN_TOKEN`, `None` when unset or blank.
///
/// ```
/// let token = shop::api::token_from_env();
/// assert!(token.as_deref().is_none_or(|t| !t.is_empty()));
/// ```
pub fn token_from_env() -> Option<String> {
    std::env::var(TOKEN_ENV)
        .ok()
        .map(|t| t.trim().to_string())
        .filter(|t| !t.is_empty())
}

/// The admin routes: the API when `token` is set, else `404` on all of its routes.
///
/// ```
/// let app = shop::app(None); // `shop::app` merges these routes
/// let routes = shop::api::router(Some("s3cret".into()), shop::db::Db::new("shop.db"));
/// # let _ = (app, routes);
/// ```
pub fn router(token: Option<String>, db: Db) -> Router {
    let Some(token) = token else {
        return Router::new()
            .route("/api/products", any(api_off))
            .route("/api/products/{id}", any(api_off))
            .route("/api/products/{id}/price", any(api_off));
    };
    let admin = Admin {
        token: Arc::from(token),
    };
    Router::new()
        .route("/api/products", post(create_product))
        .route("/api/products/{id}", delete(delete_product))
        .route("/api/products/{id}/price", put(set_price))
        .with_state(db)
        // Runs before any extractor: a request without the token learns nothing else.
        .route_layer(middleware::from_fn_with_state(admin, require_token))
        .layer(DefaultBodyLimit::max(BODY_LIMIT))
}

#[derive(Clone)]
struct Admin {
    token: Arc<str>,
}

/// An API error: status + `{"error": message}`.
#[derive(Debug)]
struct ApiError {
    status: StatusCode,
    message: String,
}

impl ApiError {
    fn new(status: StatusCode, message: impl Into<String>) -> Self {
        ApiError {
            status,
            message: message.into(),
        }
    }

    fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, message)
    }

    fn no_product(id: &str) -> Self {
        Self::new(StatusCode::NOT_FOUND, format!("no product with id {id:?}"))
    }

    /// The database failed: logged in full, answered in short.
    fn database(error: anyhow::Error) -> Self {
        tracing::error!(error = %format!("{error:#}"), "admin API: database error");
        Self::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "the database is unavailable",
        )
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut response = (
            self.status,
            Json(serde_json::json!({ "error": self.message })),
        )
            .into_response();
        if self.status == StatusCode::UNAUTHORIZED {
            response.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                header::HeaderValue::from_static("Bearer"),
            );
        }
        response
    }
}

async fn api_off() -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        format!("the admin API is off: set {TOKEN_ENV} to enable it"),
    )
}

async fn require_token(State(admin): State<Admin>, request: Request, next: Next) -> Response {
    if bearer_matches(request.headers(), &admin.token) {
        next.run(request).await
    } else {
        ApiError::new(
            StatusCode::UNAUTHORIZED,
            "missing or wrong `Authorization: Bearer <token>`",
        )
        .into_response()
    }
}

/// Whether `headers` carry `Authorization: Bearer <token>` (compared in constant time).
fn bearer_matches(headers: &HeaderMap, token: &str) -> bool {
    use subtle::ConstantTimeEq;
    let Some(value) = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
    else {
        return false;
    };
    let Some((scheme, given)) = value.trim().split_once(' ') else {
        return false;
    };
    scheme.eq_ignore_ascii_case("bearer")
        && bool::from(given.trim().as_bytes().ct_eq(token.as_bytes()))
}

/// Parses a JSON object body: every failure (syntax, not an object, types, missing or unknown
/// fields) is a `400`. (serde would also accept an array for a struct; the API does not.)
fn parse_body<T: DeserializeOwned>(body: &Bytes) -> Result<T, ApiError> {
    let invalid = |e: serde_json::Error| ApiError::bad_request(format!("invalid JSON body: {e}"));
    let value: serde_json::Value = serde_json::from_slice(body).map_err(invalid)?;
    if !value.is_object() {
        return Err(ApiError::bad_request(
            "invalid JSON body: expected an object",
        ));
    }
    serde_json::from_value(value).map_err(invalid)
}

fn parse_id(id: &str) -> Result<i64, ApiError> {
    format::parse_positive(id).ok_or_else(|| ApiError::no_product(id))
}

/// `PUT /api/products/:id/price` body.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct PriceChange {
    price_cents: i64,
}

fn check_price(price_cents: i64) -> Result<i64, ApiError> {
    if (0..=MAX_PRICE_CENTS).contains(&price_cents) {
        Ok(price_cents)
    } else {
        Err(ApiError::bad_request(format!(
            "price_cents must be between 0 and {MAX_PRICE_CENTS}, got {price_cents}"
        )))
    }
}

// ANCHOR: set_price
async fn set_price(
    State(db): State<Db>,
    Extension(isr): Extension<Revalidator>,
    Path(id): Path<String>,
    body: Bytes,
) -> Result<Response, ApiError> {
    let id = parse_id(&id)?;
    let change: PriceChange = parse_body(&body)?;
    let price_cents = check_price(change.price_cents)?;
    let product = db
        .run(move |conn| db::update_price(conn, id, price_cents))
        .await
        .map_err(ApiError::database)?
        .ok_or_else(|| ApiError::no_product(&id.to_string()))?;
    tracing::info!(id, price_cents, "price changed");
    // The product page and the catalogue page(s) listing it carry `product:<id>`.
    revalidate_tag(&isr, &format!("product:{id}")).await;
    Ok(Json(product).into_response())
}
// ANCHOR_END: set_price

/// `POST /api/products` body.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct CreateProduct {
    name: String,
    description: String,
    category: String,
    price_cents: i64,
    stock: i64,
}

fn check_new_product(body: CreateProduct) -> Result<NewProduct, ApiError> {
    let text = |field: &str, value: String, max: usize, required: bool| {
        let value = value.trim().to_string();
        if required && value.is_empty() {
            return Err(ApiError::bad_request(format!("{field} must not be empty")));
        }
        if value.chars().count() > max {
            return Err(ApiError::bad_request(format!(
                "{field} must be at most {max} characters"
            )));
        }
        Ok(value)
    };
    let name = text("name", body.name, 200, true)?;
    let description = text("description", body.description, 5_000, false)?;
    let category = text("category", body.category, 100, true)?;
    let price_cents = check_price(body.price_cents)?;
    if !(0..=MAX_STOCK).contains(&body.stock) {
        return Err(ApiError::bad_request(format!(
            "stock must be between 0 and {MAX_STOCK}, got {}",
            body.stock
        )));
    }
    Ok(NewProduct {
        name,
        description,
        category,
        price_cents,
        stock: body.stock,
    })
}

async fn create_product(
    State(db): State<Db>,
    Extension(isr): Extension<Revalidator>,
    body: Bytes,
) -> Result<Response, ApiError> {
    let new = check_new_product(parse_body(&body)?)?;
    let (product, page) = db
        .run(move |conn| {
            let product = db::insert(conn, &new)?;
            let page = db::page_of(conn, product.id)?;
            Ok((product, page))
        })
        .await
        .map_err(ApiError::database)?;
    tracing::info!(id = product.id, "product created");
    // Its own page is generated on its first request (fallback "blocking"). Every catalogue
    // page shows the product count; the page that lists the new product may be a new one (or a
    // remembered 404), which no tag reaches.
    let results = revalidate_tag(&isr, "catalogue").await;
    let page_path = format::catalogue_path(page);
    if !results.iter().any(|r| r.path == page_path) {
        revalidate_path(&isr, &page_path).await;
    }
    let mut response = (StatusCode::CREATED, Json(&product)).into_response();
    if let Ok(location) = header::HeaderValue::from_str(&format::product_path(product.id)) {
        response.headers_mut().insert(header::LOCATION, location);
    }
    Ok(response)
}

async fn delete_product(
    State(db): State<Db>,
    Extension(isr): Extension<Revalidator>,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let id = parse_id(&id)?;
    let deleted = db
        .run(move |conn| db::delete(conn, id))
        .await
        .map_err(ApiError::database)?;
    if !deleted {
        return Err(ApiError::no_product(&id.to_string()));
    }
    tracing::info!(id, "product deleted");
    // The loader now says not found: the page answers 404 from here on.
    revalidate_path(&isr, &format::product_path(id)).await;
    revalidate_tag(&isr, "catalogue").await;
    Ok(StatusCode::NO_CONTENT.into_response())
}

// ANCHOR: revalidate_helpers
/// Revalidates the pages tagged `tag`, logging failures (the change is stored either way; a
/// page that failed to regenerate is retried by ISR later).
async fn revalidate_tag(isr: &Revalidator, tag: &str) -> Vec<isr::RevalidationResult> {
    match isr.tag(tag).await {
        Ok(results) => {
            log_failures(&results);
            results
        }
        Err(error) => {
            tracing::warn!(tag, %error, "pages not revalidated");
            Vec::new()
        }
    }
}

async fn revalidate_path(isr: &Revalidator, path: &str) {
    match isr.path(path).await {
        Ok(result) => log_failures(std::slice::from_ref(&result)),
        Err(error) => tracing::warn!(path, %error, "page not revalidated"),
    }
}
// ANCHOR_END: revalidate_helpers

fn log_failures(results: &[isr::RevalidationResult]) {
    for r in results {
        if r.outcome == isr::RevalidationOutcome::Error {
            tracing::warn!(path = %r.path, error = r.error.as_deref().unwrap_or(""), "revalidation failed; the old page is kept");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(auth: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(header::AUTHORIZATION, auth.parse().unwrap());
        h
    }

    #[test]
    fn bearer_tokens() {
        assert!(bearer_matches(&headers("Bearer s3cret"), "s3cret"));
        assert!(bearer_matches(&headers("bearer  s3cret "), "s3cret"));
        assert!(!bearer_matches(&headers("Bearer s3cre"), "s3cret"));
        assert!(!bearer_matches(&headers("Basic s3cret"), "s3cret"));
        assert!(!bearer_matches(&headers("s3cret"), "s3cret"));
        assert!(!bearer_matches(&HeaderMap::new(), "s3cret"));
    }

    #[test]
    fn price_bodies() {
        let ok: PriceChange = parse_body(&Bytes::from_static(br#"{"price_cents": 1299}"#)).unwrap();
        assert_eq!(check_price(ok.price_cents).unwrap(), 1299);
        for bad in [
            &br#"{"price_cents": "1299"}"#[..],
            br#"{"price_cents": 12.5}"#,
            br#"{"price_cents": null}"#,
            br#"{"price_cents": 99999999999999999999}"#,
            br#"{"price": 1}"#,
            br#"{"price_cents": 1, "x": 2}"#,
            br#"{"price_cents": "#,
            br#"[1299]"#,
            b"",
        ] {
            let err = parse_body::<PriceChange>(&Bytes::copy_from_slice(bad)).unwrap_err();
            assert_eq!(
                err.status,
                StatusCode::BAD_REQUEST,
                "{}",
                String::from_utf8_lossy(bad)
            );
        }
        for bad in [-1, MAX_PRICE_CENTS + 1, i64::MIN] {
            assert_eq!(
                check_price(bad).unwrap_err().status,
                StatusCode::BAD_REQUEST
            );
        }
        assert!(check_price(0).is_ok() && check_price(MAX_PRICE_CENTS).is_ok());
    }

    #[test]
    fn new_products_are_validated_and_trimmed() {
        let body = |name: &str, stock: i64| CreateProduct {
            name: name.into(),
            description: "d".into(),
            category: " Kitchen ".into(),
            price_cents: 100,
            stock,
        };
        let ok = check_new_product(body(" Mug ", 3)).unwrap();
        assert_eq!((ok.name.as_str(), ok.category.as_str()), ("Mug", "Kitchen"));
        assert!(check_new_product(body("  ", 3)).is_err());
        assert!(check_new_product(body("Mug", -1)).is_err());
        assert!(check_new_product(body(&"x".repeat(201), 1)).is_err());
    }

    #[test]
    fn ids() {
        assert_eq!(parse_id("12").unwrap(), 12);
        for bad in ["abc", "0", "-3", "012", "1.5"] {
            assert_eq!(parse_id(bad).unwrap_err().status, StatusCode::NOT_FOUND);
        }
    }
}
