//! The shop's contract, against the real binary over loopback: pages from SQLite, the admin API
//! (price changes, creation, deletion, auth and validation), failure of the database during a
//! regeneration, and `shop seed`. Each test has its own database, site root and server; the
//! database is checked directly with SQLite.

use isr_tests::shop::{ShopFixture, ShopServer, ADMIN_TOKEN, TEST_PRODUCTS};
use isr_tests::Resp;
use rusqlite::{Connection, OpenFlags, OptionalExtension};
use serde_json::json;

/// The product pages' profile (`PRODUCT_PAGES`): revalidate 5 min, expire 1 h, a day of
/// stale-if-error; browsers ask every time.
const PRODUCT_CACHE_CONTROL: &str = "max-age=0, must-revalidate, s-maxage=300";
const PRODUCT_CDN_CACHE_CONTROL: &str =
    "max-age=300, stale-while-revalidate=3300, stale-if-error=89700";
const CATALOGUE_CACHE_CONTROL: &str = "max-age=0, must-revalidate, s-maxage=60";

/// A product row as stored.
#[derive(Debug, Clone, PartialEq)]
struct Row {
    id: i64,
    name: String,
    description: String,
    category: String,
    price_cents: i64,
    stock: i64,
    updated_at: String,
}

/// Opens the fixture's database read-only (never creating it).
fn open(fx: &ShopFixture) -> Connection {
    Connection::open_with_flags(fx.db_path(), OpenFlags::SQLITE_OPEN_READ_ONLY)
        .unwrap_or_else(|e| panic!("open {}: {e}", fx.db_path().display()))
}

fn row(fx: &ShopFixture, id: i64) -> Option<Row> {
    open(fx)
        .query_row(
            "SELECT id, name, description, category, price_cents, stock, updated_at
             FROM products WHERE id = ?1",
            [id],
            |r| {
                Ok(Row {
                    id: r.get(0)?,
                    name: r.get(1)?,
                    description: r.get(2)?,
                    category: r.get(3)?,
                    price_cents: r.get(4)?,
                    stock: r.get(5)?,
                    updated_at: r.get(6)?,
                })
            },
        )
        .optional()
        .expect("query a product")
}

fn count(fx: &ShopFixture) -> i64 {
    open(fx)
        .query_row("SELECT COUNT(*) FROM products", [], |r| r.get(0))
        .expect("count products")
}

/// `$12.99`-style price (the server's formatting, for the prices used here).
fn dollars(cents: i64) -> String {
    assert!(cents < 100_000, "test prices stay under $1,000");
    format!("${}.{:02}", cents / 100, cents % 100)
}

/// The ids a catalogue page lists, in order.
fn listed_ids(body: &str) -> Vec<i64> {
    body.split("<li data-id=\"")
        .skip(1)
        .map(|rest| rest.split('"').next().unwrap().parse().unwrap())
        .collect()
}

/// The price text of product `id` on a catalogue page.
fn listed_price(body: &str, id: i64) -> Option<String> {
    let start = body.find(&format!("<li data-id=\"{id}\""))?;
    let item = &body[start..start + body[start..].find("</li>")?];
    let price = item.split("class=\"price\">").nth(1)?;
    Some(price.split('<').next()?.to_string())
}

/// The price text of a product page.
fn page_price(body: &str) -> String {
    body.split("<p class=\"price\">")
        .nth(1)
        .and_then(|rest| rest.split('<').next())
        .unwrap_or_else(|| panic!("no price in: {body}"))
        .to_string()
}

/// The `href` of the link with `rel="<rel>"`, if any.
fn link(body: &str, rel: &str) -> Option<String> {
    let marker = format!("rel=\"{rel}\"");
    let at = body.find(&marker)?;
    let tag_start = body[..at].rfind("<a ")?;
    let tag = &body[tag_start..tag_start + body[tag_start..].find('>')?];
    let href = tag.split("href=\"").nth(1)?;
    Some(href.split('"').next()?.to_string())
}

/// No block element inside a `<p>`: the browser would re-parent it and hydration would fail.
fn assert_no_block_in_paragraph(body: &str) {
    let mut rest = body;
    while let Some(start) = rest.find("<p") {
        let after = &rest[start + 2..];
        if !(after.starts_with('>') || after.starts_with(' ')) {
            rest = after;
            continue;
        }
        let end = after
            .find("</p>")
            .unwrap_or_else(|| panic!("unclosed <p> in {body}"));
        let inside = &after[..end];
        for block in [
            "<div", "<ul", "<ol", "<nav", "<p>", "<p ", "<section", "<article", "<h1", "<h2",
            "<table", "<header", "<footer", "<main",
        ] {
            assert!(
                !inside.contains(block),
                "{block} inside a <p>: <p{inside}</p>"
            );
        }
        rest = &after[end..];
    }
}

fn assert_error_json(resp: &Resp, status: u16) {
    assert_eq!(resp.status, status, "{}", resp.body);
    assert_eq!(resp.header("content-type"), Some("application/json"));
    let error = resp.json()["error"].clone();
    assert!(
        error.as_str().is_some_and(|e| !e.is_empty()),
        "no error message: {}",
        resp.body
    );
}

#[tokio::test]
async fn product_and_catalogue_pages_show_the_database() {
    let fx = ShopFixture::seeded(TEST_PRODUCTS);
    let server = ShopServer::start(&fx, &[], &[]);

    // The build summary lists the three routes.
    let summary = server.stdout_text();
    for (route, pages) in [
        ("/products", "1"),
        ("/products/page/:n", "4"),
        ("/products/:id", "200"),
    ] {
        let row = summary
            .lines()
            .find(|l| l.split_whitespace().next() == Some(route))
            .unwrap_or_else(|| panic!("no {route} row in:\n{summary}"));
        assert_eq!(row.split_whitespace().nth(1), Some(pages), "{row}");
    }

    let stored = row(&fx, 7).unwrap();
    let page = server.get("/products/7").await;
    assert_eq!(page.status, 200);
    assert_eq!(page.cache(), "HIT");
    assert_eq!(page.header("cache-control"), Some(PRODUCT_CACHE_CONTROL));
    assert_eq!(
        page.header("cdn-cache-control"),
        Some(PRODUCT_CDN_CACHE_CONTROL)
    );
    assert!(page.body.contains(&format!("<h1>{}</h1>", stored.name)));
    assert!(page
        .body
        .contains(&format!("<title>{} — ISR shop</title>", stored.name)));
    assert_eq!(page_price(&page.body), dollars(stored.price_cents));
    assert!(page.body.contains(&stored.description));
    assert!(page.body.contains(&stored.category));
    assert!(page
        .body
        .contains(&format!("<p class=\"stock\">{} in stock</p>", stored.stock)));
    // The cart is the browser's: the static page always says 0.
    assert!(page.body.contains("<span class=\"cart-count\">0</span>"));
    assert!(page.body.contains("class=\"add-to-cart\""));
    assert_no_block_in_paragraph(&page.body);

    // A sold-out product.
    let sold_out: i64 = open(&fx)
        .query_row(
            "SELECT id FROM products WHERE stock = 0 ORDER BY id LIMIT 1",
            [],
            |r| r.get(0),
        )
        .expect("the generator sells out about one product in ten");
    let page = server.get(&format!("/products/{sold_out}")).await;
    assert!(page.body.contains("<p class=\"stock\">out of stock</p>"));

    // The catalogue: 50 per page by id, prev/next links.
    let first = server.get("/products").await;
    assert_eq!(first.status, 200);
    assert_eq!(first.header("cache-control"), Some(CATALOGUE_CACHE_CONTROL));
    assert_eq!(listed_ids(&first.body), (1..=50).collect::<Vec<_>>());
    assert!(first.body.contains("Page 1 of 4 · 200 products"));
    assert_eq!(
        link(&first.body, "next").as_deref(),
        Some("/products/page/2")
    );
    assert_eq!(link(&first.body, "prev"), None);
    assert_eq!(
        listed_price(&first.body, 7).as_deref(),
        Some(dollars(stored.price_cents).as_str())
    );
    assert_no_block_in_paragraph(&first.body);
    let page_one = server.get("/products/page/1").await;
    assert_eq!(page_one.status, 200);
    assert_eq!(listed_ids(&page_one.body), listed_ids(&first.body));
    let second = server.get("/products/page/2").await;
    assert_eq!(listed_ids(&second.body), (51..=100).collect::<Vec<_>>());
    assert_eq!(link(&second.body, "prev").as_deref(), Some("/products"));
    assert_eq!(
        link(&second.body, "next").as_deref(),
        Some("/products/page/3")
    );
    let last = server.get("/products/page/4").await;
    assert_eq!(listed_ids(&last.body), (151..=200).collect::<Vec<_>>());
    assert_eq!(
        link(&last.body, "prev").as_deref(),
        Some("/products/page/3")
    );
    assert_eq!(link(&last.body, "next"), None);

    for missing in [
        "/products/0",
        "/products/201",
        "/products/abc",
        "/products/07",
        "/products/1.5",
        "/products/page/0",
        "/products/page/5",
        "/products/page/two",
        "/products/page/01",
        "/products/page",
    ] {
        assert_eq!(server.get(missing).await.status, 404, "{missing}");
    }
}

#[tokio::test]
async fn a_price_change_shows_on_the_next_request_of_every_page_listing_it() {
    let fx = ShopFixture::seeded(TEST_PRODUCTS);
    let server = ShopServer::start(&fx, &[], &[]);
    let before = row(&fx, 7).unwrap();
    let new_price = if before.price_cents == 1299 {
        2599
    } else {
        1299
    };
    assert_ne!(
        page_price(&server.get("/products/7").await.body),
        dollars(new_price)
    );
    let untouched_etag = server
        .get("/products/page/2")
        .await
        .header("etag")
        .unwrap()
        .to_string();

    let answer = server
        .admin(
            "PUT",
            "/api/products/7/price",
            &json!({ "price_cents": new_price }).to_string(),
        )
        .await;
    assert_eq!(answer.status, 200, "{}", answer.body);
    let product = answer.json();
    assert_eq!(product["id"], 7);
    assert_eq!(product["price_cents"], new_price);
    assert_eq!(product["name"], before.name.as_str());
    let after = row(&fx, 7).unwrap();
    assert_eq!(after.price_cents, new_price);
    assert_ne!(after.updated_at, before.updated_at, "updated_at moves");
    assert_eq!(product["updated_at"], after.updated_at.as_str());

    // The very next requests: no waiting, no polling.
    let page = server.get("/products/7").await;
    assert_eq!(page.status, 200);
    assert_eq!(page_price(&page.body), dollars(new_price));
    for catalogue in ["/products", "/products/page/1"] {
        let list = server.get(catalogue).await;
        assert_eq!(list.status, 200);
        assert_eq!(
            listed_price(&list.body, 7).as_deref(),
            Some(dollars(new_price).as_str()),
            "{catalogue}"
        );
    }
    // Only the pages showing product 7 were regenerated.
    assert_eq!(
        server.get("/products/page/2").await.header("etag"),
        Some(untouched_etag.as_str())
    );

    // A product further down the catalogue: its own catalogue page follows.
    let answer = server
        .admin("PUT", "/api/products/160/price", r#"{"price_cents": 4242}"#)
        .await;
    assert_eq!(answer.status, 200, "{}", answer.body);
    let list = server.get("/products/page/4").await;
    assert_eq!(listed_price(&list.body, 160).as_deref(), Some("$42.42"));
    assert_eq!(
        page_price(&server.get("/products/160").await.body),
        "$42.42"
    );
}

#[tokio::test]
async fn a_created_product_is_rendered_on_its_first_request_then_cached() {
    let fx = ShopFixture::seeded(TEST_PRODUCTS);
    let server = ShopServer::start(&fx, &[], &[]);
    let body = json!({
        "name": "Tea Mug",
        "description": "A large mug for tea.",
        "category": "Kitchen",
        "price_cents": 1450,
        "stock": 0,
    });
    let created = server
        .admin("POST", "/api/products", &body.to_string())
        .await;
    assert_eq!(created.status, 201, "{}", created.body);
    let product = created.json();
    let id = product["id"].as_i64().expect("an id");
    assert_eq!(id, 201, "ids continue after the seeded ones");
    assert_eq!(product["name"], "Tea Mug");
    assert_eq!(created.header("location"), Some("/products/201"));
    let stored = row(&fx, id).expect("the row is stored");
    assert_eq!(
        (stored.price_cents, stored.stock, stored.category.as_str()),
        (1450, 0, "Kitchen")
    );

    let first = server.get("/products/201").await;
    assert_eq!(first.status, 200, "{}", first.body);
    assert_eq!(first.cache(), "MISS");
    assert!(first.body.contains("<h1>Tea Mug</h1>"));
    assert_eq!(page_price(&first.body), "$14.50");
    assert!(first.body.contains("out of stock"));
    let second = server.get("/products/201").await;
    assert_eq!(second.cache(), "HIT");
    assert_eq!(second.body, first.body);

    // It opens a fifth catalogue page; every catalogue page counts it.
    let fifth = server.get("/products/page/5").await;
    assert_eq!(fifth.status, 200);
    assert_eq!(listed_ids(&fifth.body), [201]);
    let first_page = server.get("/products").await;
    assert!(
        first_page.body.contains("Page 1 of 5 · 201 products"),
        "{}",
        first_page.body
    );

    // Invalid products are refused and change nothing.
    for bad in [
        json!({"name": "", "description": "", "category": "Kitchen", "price_cents": 1, "stock": 1}),
        json!({"name": "X", "description": "", "category": "Kitchen", "price_cents": -1, "stock": 1}),
        json!({"name": "X", "description": "", "category": "Kitchen", "price_cents": 1, "stock": -1}),
        json!({"name": "X", "description": "", "category": "Kitchen", "price_cents": "1", "stock": 1}),
        json!({"name": "X", "category": "Kitchen", "price_cents": 1, "stock": 1}),
    ] {
        let answer = server
            .admin("POST", "/api/products", &bad.to_string())
            .await;
        assert_error_json(&answer, 400);
    }
    assert_error_json(
        &server.admin("POST", "/api/products", "{\"name\":").await,
        400,
    );
    assert_eq!(count(&fx), 201);
}

#[tokio::test]
async fn a_deleted_product_is_404_right_away() {
    let fx = ShopFixture::seeded(TEST_PRODUCTS);
    let server = ShopServer::start(&fx, &[], &[]);
    assert_eq!(server.get("/products/5").await.status, 200);

    let answer = server.admin("DELETE", "/api/products/5", "").await;
    assert_eq!(answer.status, 204, "{}", answer.body);
    assert!(row(&fx, 5).is_none());
    assert_eq!(count(&fx), 199);

    let page = server.get("/products/5").await;
    assert_eq!(page.status, 404);
    // The catalogue moves up by one.
    let first = server.get("/products").await;
    let ids = listed_ids(&first.body);
    assert!(!ids.contains(&5));
    assert_eq!(ids.len(), 50);
    assert_eq!(ids.last(), Some(&51));
    assert_eq!(
        listed_ids(&server.get("/products/page/4").await.body)[0],
        152
    );

    // Gone is gone.
    assert_error_json(&server.admin("DELETE", "/api/products/5", "").await, 404);
    assert_error_json(
        &server
            .admin("PUT", "/api/products/5/price", r#"{"price_cents": 1}"#)
            .await,
        404,
    );
    assert_eq!(server.get("/products/5").await.status, 404);
}

#[tokio::test]
async fn admin_errors_leave_the_database_unchanged() {
    let fx = ShopFixture::seeded(TEST_PRODUCTS);
    let server = ShopServer::start(&fx, &[], &[]);
    let before = row(&fx, 7).unwrap();
    let page_before = server.get("/products/7").await.body;
    let ok_body = r#"{"price_cents": 1}"#;

    // Wrong or missing token: 401, whatever the body.
    for auth in [
        None,
        Some("Bearer wrong-token".to_string()),
        Some(format!("Basic {ADMIN_TOKEN}")),
        Some(ADMIN_TOKEN.to_string()),
        Some(format!("Bearer {ADMIN_TOKEN}x")),
    ] {
        for (method, path, body) in [
            ("PUT", "/api/products/7/price", ok_body),
            ("PUT", "/api/products/7/price", "{not json"),
            ("DELETE", "/api/products/7", ""),
            ("POST", "/api/products", "{}"),
        ] {
            let answer = server
                .admin_with_auth(method, path, body, auth.as_deref())
                .await;
            assert_error_json(&answer, 401);
            assert_eq!(answer.header("www-authenticate"), Some("Bearer"));
            assert_eq!(
                row(&fx, 7).as_ref(),
                Some(&before),
                "{method} {path} {auth:?}"
            );
        }
    }

    // Bad bodies: 400.
    for body in [
        r#"{"price_cents": -1}"#,
        r#"{"price_cents": -99999}"#,
        r#"{"price_cents": 100000001}"#,
        r#"{"price_cents": 99999999999999999999999}"#,
        r#"{"price_cents": "1299"}"#,
        r#"{"price_cents": 12.99}"#,
        r#"{"price_cents": null}"#,
        r#"{"price_cents": true}"#,
        r#"{"price": 1299}"#,
        r#"{"price_cents": 1299, "stock": 3}"#,
        r#"{}"#,
        r#"[1299]"#,
        r#"1299"#,
        r#"{"price_cents": 1299"#,
        "not json at all",
        "",
    ] {
        let answer = server.admin("PUT", "/api/products/7/price", body).await;
        assert_error_json(&answer, 400);
        assert_eq!(row(&fx, 7).as_ref(), Some(&before), "{body}");
    }

    // Unknown and non-integer ids: 404.
    for path in [
        "/api/products/99999/price",
        "/api/products/0/price",
        "/api/products/abc/price",
        "/api/products/7.0/price",
        "/api/products/-7/price",
    ] {
        let answer = server.admin("PUT", path, ok_body).await;
        assert_error_json(&answer, 404);
    }
    assert_error_json(
        &server.admin("DELETE", "/api/products/99999", "").await,
        404,
    );
    assert_error_json(&server.admin("DELETE", "/api/products/x", "").await, 404);

    assert_eq!(row(&fx, 7).as_ref(), Some(&before));
    assert_eq!(count(&fx), 200);
    assert_eq!(server.get("/products/7").await.body, page_before);
}

#[tokio::test]
async fn without_a_token_the_admin_api_is_404() {
    let fx = ShopFixture::seeded(TEST_PRODUCTS);
    let server = ShopServer::start_with_token(&fx, &[], &[], None);
    assert!(
        server.stderr_text().contains("admin API is off"),
        "{}",
        server.stderr_text()
    );
    let before = row(&fx, 7).unwrap();
    for (method, path, body) in [
        ("PUT", "/api/products/7/price", r#"{"price_cents": 1}"#),
        ("DELETE", "/api/products/7", ""),
        ("POST", "/api/products", r#"{"name":"x"}"#),
        ("GET", "/api/products/7/price", ""),
    ] {
        let answer = server.admin(method, path, body).await;
        assert_eq!(answer.status, 404, "{method} {path}: {}", answer.body);
    }
    assert_eq!(row(&fx, 7), Some(before));
    assert_eq!(count(&fx), 200);
    assert_eq!(server.get("/products/7").await.status, 200);
}

#[tokio::test]
async fn an_unreadable_database_keeps_the_old_pages() {
    let fx = ShopFixture::seeded(TEST_PRODUCTS);
    let server = ShopServer::start(&fx, &[], &[]);
    let product = server.get("/products/1").await;
    let list = server.get("/products").await;
    assert_eq!((product.status, list.status), (200, 200));

    let ways: [fn(&ShopFixture); 2] = [ShopFixture::hide_db, ShopFixture::replace_db_with_garbage];
    for break_it in ways {
        break_it(&fx);
        let answer = server
            .revalidate(&json!({ "mode": "regenerate", "paths": ["/products/1", "/products"] }))
            .await;
        assert_eq!(answer.status, 200, "{}", answer.body);
        let results = answer.json()["results"].clone();
        for (i, path) in ["/products/1", "/products"].into_iter().enumerate() {
            assert_eq!(results[i]["path"], path);
            assert_eq!(results[i]["outcome"], "error", "{results}");
            assert!(
                results[i]["error"]
                    .as_str()
                    .is_some_and(|e| e.contains("shop database")),
                "{results}"
            );
        }
        let again = server.get("/products/1").await;
        assert_eq!(again.status, 200);
        assert_eq!(again.body, product.body);
        assert_eq!(again.header("etag"), product.header("etag"));
        let list_again = server.get("/products").await;
        assert_eq!(list_again.status, 200);
        assert_eq!(list_again.body, list.body);
        // The admin API says the database is down, and changes nothing.
        let answer = server
            .admin("PUT", "/api/products/1/price", r#"{"price_cents": 1}"#)
            .await;
        assert_error_json(&answer, 503);
        fx.restore_db();
    }
    assert!(
        server.stderr_text().contains("page generation failed"),
        "the failure is logged:\n{}",
        server.stderr_text()
    );
    assert!(server
        .stderr_text()
        .contains("cannot open the shop database"));

    // Back up: the next revalidation works again.
    let answer = server
        .admin("PUT", "/api/products/1/price", r#"{"price_cents": 777}"#)
        .await;
    assert_eq!(answer.status, 200, "{}", answer.body);
    assert_eq!(page_price(&server.get("/products/1").await.body), "$7.77");
}

#[test]
fn seed_replaces_the_catalogue_and_a_new_database_gets_10000_products() {
    let fx = ShopFixture::new();
    let out = fx.seed(30);
    assert!(out.stdout.contains("seeded 30 products"), "{}", out.stdout);
    assert_eq!(count(&fx), 30);
    let first = row(&fx, 1).unwrap();
    assert_eq!(first.id, 1);
    assert_eq!(first.updated_at, "2026-01-01T00:01:00Z");

    // Deterministic: another database seeded the same way has the same rows.
    let other = ShopFixture::new();
    let other_db = other.db_path();
    let out = fx.run(
        &[
            "seed",
            "--products",
            "30",
            "--db",
            other_db.to_str().unwrap(),
        ],
        &[],
    );
    assert_eq!(out.code(), Some(0), "{}", out.stderr);
    assert_eq!(row(&other, 1).unwrap(), first);
    assert_eq!(row(&other, 30).unwrap(), row(&fx, 30).unwrap());
    assert_eq!(count(&other), 30);

    // Reseeding drops everything.
    fx.seed(5);
    assert_eq!(count(&fx), 5);
    assert!(row(&fx, 6).is_none());
    fx.seed(0);
    assert_eq!(count(&fx), 0);

    let bad = fx.run(&["seed", "--products", "many"], &[]);
    assert_eq!(bad.code(), Some(2), "{}", bad.stderr);

    // A missing database is created and seeded with 10,000 products on start (here `serve`,
    // which then stops: nothing was built).
    let fresh = ShopFixture::new();
    let out = fresh.run(
        &["serve", "--site-root", fresh.site_root().to_str().unwrap()],
        &[],
    );
    assert_eq!(out.code(), Some(2), "{}", out.stderr);
    assert!(
        out.stderr.contains("created and seeded the database"),
        "{}",
        out.stderr
    );
    assert_eq!(count(&fresh), 10_000);
    let mode: String = open(&fresh)
        .query_row("PRAGMA journal_mode", [], |r| r.get(0))
        .unwrap();
    assert_eq!(mode, "wal");
    // A database that has products is left alone.
    fresh.seed(3);
    let out = fresh.run(
        &["serve", "--site-root", fresh.site_root().to_str().unwrap()],
        &[],
    );
    assert_eq!(out.code(), Some(2));
    assert_eq!(count(&fresh), 3);

    // A database that is not SQLite stops the start with a clear error.
    std::fs::write(
        fresh.db_path(),
        b"definitely not a database file, just text",
    )
    .unwrap();
    for suffix in ["-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{}{suffix}", fresh.db_path().display()));
    }
    let out = fresh.run(
        &["serve", "--site-root", fresh.site_root().to_str().unwrap()],
        &[],
    );
    assert_eq!(out.code(), Some(1), "{}", out.stderr);
    assert!(out.stderr.contains("SHOP_DB"), "{}", out.stderr);
}
