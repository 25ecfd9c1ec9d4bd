//! The shop's pages: props, loaders (server only) and views (server and browser).
//!
//! Loaders read SQLite through the [`crate::db::Db`] pool (app state, `State<Db>`): a database
//! that cannot be opened or read
//! is an error (ISR keeps the old page), an id that is not there is `Load::NotFound`. Every page
//! is tagged with `product:<id>` for each product it shows, so changing one product revalidates
//! exactly the pages that show it.

use crate::cart::{AddToCart, CartBadge, CartProvider};
#[cfg(feature = "ssr")]
use crate::db::Db;
use crate::format;
use isr::prelude::*;
use leptos::prelude::*;
use leptos_meta::{Meta, Stylesheet, Title};
use leptos_router::components::A;

/// A product, as stored (and as the admin API returns it); the props of `/products/:id`.
///
/// ```
/// let p = shop::pages::Product {
///     id: 7, name: "Teapot".into(), description: "Round.".into(), category: "Kitchen".into(),
///     price_cents: 1299, stock: 3, updated_at: "2026-01-01T00:07:00Z".into(),
/// };
/// assert_eq!(serde_json::to_value(&p).unwrap()["price_cents"], 1299);
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Product {
    pub id: i64,
    pub name: String,
    pub description: String,
    pub category: String,
    pub price_cents: i64,
    pub stock: i64,
    /// `2026-01-31T12:00:00Z` (UTC).
    pub updated_at: String,
}

/// One line of a catalogue page.
///
/// ```
/// let line = shop::pages::ProductSummary {
///     id: 7, name: "Teapot".into(), category: "Kitchen".into(), price_cents: 1299, stock: 0,
/// };
/// assert_eq!(shop::format::stock(line.stock), "out of stock");
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProductSummary {
    pub id: i64,
    pub name: String,
    pub category: String,
    pub price_cents: i64,
    pub stock: i64,
}

/// Props of `/products` and `/products/page/:n`.
///
/// ```
/// let props = shop::pages::CatalogueProps { page: 1, pages: 1, total: 0, products: vec![] };
/// assert!(props.products.is_empty());
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CatalogueProps {
    /// This page's number (1-based).
    pub page: i64,
    /// How many pages the catalogue has.
    pub pages: i64,
    /// How many products the catalogue has.
    pub total: i64,
    pub products: Vec<ProductSummary>,
}

/// The params of `/products/page/:n`: a page number (anything else is a 404 before any query).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CataloguePage {
    pub n: std::num::NonZeroU32,
}

// ANCHOR: product_id
/// The params of `/products/:id`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProductId {
    pub id: std::num::NonZeroU32,
}
// ANCHOR_END: product_id

#[page(
    path = "/products",
    revalidate = 60,
    view = catalogue_page_view,
    tags = ["products", "catalogue"]
)]
async fn catalogue_first(State(db): State<Db>) -> isr::Result<Load<CatalogueProps>> {
    load_catalogue_page(&db, 1).await
}

#[page(
    path = "/products/page/:n",
    revalidate = 60,
    view = catalogue_page_view,
    paths = all_catalogue_pages,
    fallback = "blocking",
    tags = ["products", "catalogue"]
)]
async fn catalogue_page(
    Path(CataloguePage { n }): Path<CataloguePage>,
    State(db): State<Db>,
) -> isr::Result<Load<CatalogueProps>> {
    load_catalogue_page(&db, n.get().into()).await
}

// ANCHOR: catalogue_loader
/// Page `n` of the catalogue: `NotFound` past the last page (page 1 always exists).
#[cfg(feature = "ssr")]
async fn load_catalogue_page(db: &Db, n: i64) -> isr::Result<Load<CatalogueProps>> {
    let (total, products) = db
        .run(move |conn| {
            let total = crate::db::count(conn)?;
            let products = crate::db::catalogue_page(conn, n)?;
            Ok((total, products))
        })
        .await?;
    if products.is_empty() && n > 1 {
        return Ok(Load::NotFound);
    }
    let tags: Vec<String> = products
        .iter()
        .map(|p| format!("product:{}", p.id))
        .collect();
    let props = CatalogueProps {
        page: n,
        pages: crate::db::page_count(total),
        total,
        products,
    };
    Ok(tags
        .into_iter()
        .fold(Load::props(props), |load, tag| load.tag(tag)))
}
// ANCHOR_END: catalogue_loader

#[paths]
async fn all_catalogue_pages(State(db): State<Db>) -> isr::Result<Vec<CataloguePage>> {
    let total = db.run(|conn| crate::db::count(conn)).await?;
    Ok((1..=crate::db::page_count(total))
        .filter_map(|n| u32::try_from(n).ok().and_then(std::num::NonZeroU32::new))
        .map(|n| CataloguePage { n })
        .collect())
}

// ANCHOR: product_profile
/// How product pages (prices, stock) are kept: fresh for 5 minutes, regenerated in the
/// background after that, never served older than an hour (a request then waits for the new
/// price), and while the database is down the last price is shown for up to a day more.
/// Browsers ask every time (a `304` while nothing changed). Server-side, like the loaders
/// that name it (`isr::CacheProfile` is part of isr's `ssr` API).
#[cfg(feature = "ssr")]
pub const PRODUCT_PAGES: isr::CacheProfile = isr::CacheProfile::revalidate(300)
    .expire(3600)
    .stale_if_error(86_400)
    .browser(0);

#[page(
    path = "/products/:id",
    cache = PRODUCT_PAGES,
    view = product_page,
    paths = all_product_ids,
    fallback = "blocking",
    tags = ["products"]
)]
async fn product(
    Path(ProductId { id }): Path<ProductId>,
    State(db): State<Db>,
) -> isr::Result<Load<Product>> {
    let id = i64::from(id.get());
    match db.run(move |conn| crate::db::product(conn, id)).await? {
        Some(product) => Ok(Load::props(product).tag(format!("product:{id}"))),
        None => Ok(Load::NotFound),
    }
}
// ANCHOR_END: product_profile

// ANCHOR: product_paths
#[paths]
async fn all_product_ids(State(db): State<Db>) -> isr::Result<Vec<ProductId>> {
    let ids = db.run(|conn| crate::db::all_ids(conn)).await?;
    Ok(ids
        .into_iter()
        .filter_map(|id| u32::try_from(id).ok().and_then(std::num::NonZeroU32::new))
        .map(|id| ProductId { id })
        .collect())
}
// ANCHOR_END: product_paths

// ANCHOR: shop_layout
/// The frame of every page of the shop: header with the cart badge, main, footer. isr renders
/// each page inside it and hydrates it inside it, so the views are only their content.
#[isr::layout]
fn shop_layout(children: Children) -> impl IntoView {
    view! {
        <Stylesheet href=isr::asset!("style.css") />
        <CartProvider>
            <header class="site">
                <nav class="site">
                    <A href="/products" exact=true>
                        "ISR shop"
                    </A>
                </nav>
                <CartBadge />
            </header>
            <main>{children()}</main>
        </CartProvider>
        <footer class="site">"Statically generated, regenerated incrementally."</footer>
    }
}
// ANCHOR_END: shop_layout

/// `/products` and `/products/page/:n`: 50 products with prev/next links (rendered in the
/// unit test below; a doc test would link a second build of leptos under `cargo test --workspace`).
pub fn catalogue_page_view(props: CatalogueProps) -> impl IntoView {
    let CatalogueProps {
        page,
        pages,
        total,
        products,
    } = props;
    let title = if page == 1 {
        "Products — ISR shop".to_string()
    } else {
        format!("Products, page {page} — ISR shop")
    };
    let description =
        format!("The ISR shop's catalogue, page {page} of {pages}: {total} products.");
    view! {
        <Title text=title />
        <Meta name="description" content=description />
        <h1>"Products"</h1>
        <p class="summary">{format!("Page {page} of {pages} · {total} products")}</p>
        <ul class="products">
            {products
                .into_iter()
                .map(|p| {
                    let class = (p.stock == 0).then_some("out");
                    view! {
                        <li data-id=p.id.to_string() class=class>
                            <span class="name">
                                <A href=format::product_path(p.id)>{p.name}</A>
                            </span>
                            <span class="category">{p.category}</span>
                            <span class="price">{format::price(p.price_cents)}</span>
                            <span class="stock">{format::stock(p.stock)}</span>
                        </li>
                    }
                })
                .collect_view()}
        </ul>
        <nav class="pager">
            {(page > 1)
                .then(|| {
                    view! {
                        <A href=format::catalogue_path(page - 1) exact=true attr:rel="prev" attr:class="prev">
                            "← Previous"
                        </A>
                    }
                })}
            {(page < pages)
                .then(|| {
                    view! {
                        <A href=format::catalogue_path(page + 1) exact=true attr:rel="next" attr:class="next">
                            "Next →"
                        </A>
                    }
                })}
        </nav>
    }
}

// ANCHOR: product_page
/// `/products/:id`: one product with its "Add to cart" button.
pub fn product_page(props: Product) -> impl IntoView {
    let in_stock = props.stock > 0;
    let description = format!(
        "{} in {}: {}, {}.",
        props.name,
        props.category,
        format::price(props.price_cents),
        format::stock(props.stock)
    );
    view! {
        <Title text=format!("{} — ISR shop", props.name) />
        <Meta name="description" content=description />
        <article class="product" data-id=props.id.to_string()>
            <h1>{props.name}</h1>
            <p class="price">{format::price(props.price_cents)}</p>
            <p class="stock">{format::stock(props.stock)}</p>
            <p class="category">"Category: " {props.category}</p>
            // Blocks go in <div>s, never in a <p>: the browser would move them out of the
            // paragraph, and hydration would then find another DOM than the server rendered.
            <div class="actions">
                <AddToCart id=props.id enabled=in_stock />
            </div>
            <div class="description">
                <p>{props.description}</p>
            </div>
        </article>
        <p>
            <A href="/products" exact=true>"← All products"</A>
        </p>
    }
}
// ANCHOR_END: product_page

#[cfg(all(test, feature = "ssr"))]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_catalogue_page_shows_its_position_and_pager() {
        let props = CatalogueProps {
            page: 2,
            pages: 3,
            total: 120,
            products: vec![],
        };
        let route = isr::render::PageRoute::at("/products/page/2").param("n", "2");
        let html = isr::render::render_page(props, &route, catalogue_page_view)
            .await
            .unwrap()
            .body;
        assert!(html.contains("Page 2 of 3 · 120 products"), "{html}");
        assert!(
            html.contains(r#"<a href="/products" rel="prev" class="prev">"#)
                && html.contains(r#"<a href="/products/page/3" rel="next" class="next">"#),
            "{html}"
        );
        // `exact`: the home link is current on `/products` only.
        assert!(
            html.contains(r#"<nav class="site"><a href="/products">"#),
            "{html}"
        );
    }
}
