//! The starter's pages over HTTP, in-process: the app embedded over a temporary database and
//! site root, requests sent to its router (no port, no browser). Copy this to test your own.
#![cfg(feature = "ssr")]

// ANCHOR: test
use http_body_util::BodyExt;
use isr::axum::{body::Body, http::Request, Router};
use tower::ServiceExt;

/// `GET uri`: the status, the `x-isr-cache` header and the body.
async fn get(router: &Router, uri: &str) -> (u16, String, String) {
    // A `Host` header, as every HTTP/1.1 client sends: isr answers 400 to a request without.
    let request = Request::get(uri)
        .header("host", "127.0.0.1")
        .body(Body::empty())
        .unwrap();
    let response = router.clone().oneshot(request).await.unwrap();
    let status = response.status().as_u16();
    let cache = response
        .headers()
        .get("x-isr-cache")
        .map(|v| v.to_str().unwrap().to_string());
    let body = response.into_body().collect().await.unwrap().to_bytes();
    (
        status,
        cache.unwrap_or_default(),
        String::from_utf8(body.to_vec()).unwrap(),
    )
}

#[tokio::test]
async fn pages_are_built_from_the_database_and_follow_its_changes() {
    let dir = tempfile::tempdir().unwrap();
    let db_file = dir.path().join("notes.db");
    let db = starter::db::Db::open(&db_file).unwrap();
    // Builds every page (the home page and both notes), then serves them.
    let site = starter::app_with(db)
        .site_root(dir.path().join("site"))
        .embed()
        .await
        .unwrap();
    let router = site.router();

    let (status, cache, home) = get(&router, "/").await;
    assert_eq!(
        (status, cache.as_str()),
        (200, "HIT"),
        "pre-rendered by the build"
    );
    assert!(home.contains(r#"<a href="/notes/2">Edit me</a>"#), "{home}");

    let (status, _, note) = get(&router, "/notes/1").await;
    assert_eq!(status, 200);
    assert!(
        note.contains("<h1>Hello, isr</h1>") && note.contains("rendered from a SQLite row"),
        "{note}"
    );
    assert_eq!(
        get(&router, "/notes/abc").await.0,
        404,
        "not a u32: no loader runs"
    );

    // The data changes; revalidating the note's tag (what a CMS webhook does) regenerates it.
    let conn = rusqlite::Connection::open(&db_file).unwrap();
    conn.execute("UPDATE notes SET body = 'Edited.' WHERE id = 1", [])
        .unwrap();
    let results = site.revalidator().tag("note-1").await.unwrap();
    assert_eq!(results.len(), 1, "{results:?}");
    let (_, _, note) = get(&router, "/notes/1").await;
    assert!(note.contains("<p>Edited.</p>"), "{note}");

    // A note added after the build is rendered on its first request (`fallback = "blocking"`).
    conn.execute(
        "INSERT INTO notes (id, title, body) VALUES (3, 'New', 'Added later.')",
        [],
    )
    .unwrap();
    let (status, cache, note) = get(&router, "/notes/3").await;
    assert_eq!((status, cache.as_str()), (200, "MISS"), "{note}");
    assert_eq!(
        get(&router, "/notes/3").await.1,
        "HIT",
        "stored by that first request"
    );
    assert_eq!(get(&router, "/notes/4").await.0, 404, "no such note");

    site.shutdown().await;
}
// ANCHOR_END: test
