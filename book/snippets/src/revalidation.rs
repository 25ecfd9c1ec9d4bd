//! Snippets of the chapter "Revalidation on demand" (`book/src/revalidation.md`): the app's own
//! `isr::Revalidator` with a mode, in an axum handler (modelled on `examples/shop/src/api.rs`).

use isr::axum::extract::Path;
use isr::axum::http::StatusCode;
use isr::axum::Extension;
use isr::revalidate::InvalidationMode;
use isr::{RevalidateRequest, RevalidationOutcome, Revalidator};

// ANCHOR: expire_after_save
/// `POST /admin/posts/{slug}/saved`, called once an editor's change is stored: the post's next
/// request waits for its new version (read-your-own-writes), and the lists that show it are
/// marked stale (no loader runs now; each regenerates on its next request).
pub async fn post_saved(
    Extension(isr): Extension<Revalidator>,
    Path(slug): Path<String>,
) -> StatusCode {
    let post = RevalidateRequest {
        paths: vec![format!("/blog/{slug}")],
        mode: InvalidationMode::Expire,
        ..Default::default()
    };
    let lists = RevalidateRequest {
        tags: vec!["posts".to_string()],
        mode: InvalidationMode::Stale,
        ..Default::default()
    };
    for request in [post, lists] {
        match isr.request(&request).await {
            Ok(results)
                if results
                    .iter()
                    .all(|r| r.outcome != RevalidationOutcome::Error) => {}
            // A mark that could not be persisted, or the app is shutting down.
            Ok(_) | Err(_) => return StatusCode::SERVICE_UNAVAILABLE,
        }
    }
    StatusCode::NO_CONTENT
}
// ANCHOR_END: expire_after_save
