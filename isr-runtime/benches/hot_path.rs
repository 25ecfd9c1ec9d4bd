//! Micro-benchmarks of the request hot path: route match, cache lookup (a whole HIT through
//! the engine), response header pieces, and rendering a typical page. Run with
//! `cargo bench -p isr --features ssr --bench hot_path` (or `bench/run`, which reports them).

use criterion::{criterion_group, criterion_main, Criterion};
use futures::future::BoxFuture;
use isr::__private::Generated;
use isr::clock::SystemClock;
use isr::store::MemoryStore;
use isr::{CacheProfile, Engine, Fallback, PageDef, Revalidate, Routes, Served};
use leptos::prelude::*;
use std::hint::black_box;
use std::sync::Arc;

fn load(_: isr::LoadContext) -> BoxFuture<'static, isr::Result<Generated>> {
    Box::pin(async {
        Ok(Generated::Page(isr::RenderedBody {
            body: "<p>benchmark page</p>".repeat(500),
            props_json: "{}".into(),
            ..Default::default()
        }))
    })
}

fn def(path: &'static str) -> &'static PageDef {
    Box::leak(Box::new(PageDef {
        id: path,
        path,
        cache: CacheProfile::of(Revalidate::After(3600)),
        timeout_secs: None,
        fallback: Fallback::Blocking,
        tags: &["bench"],
        load,
        paths: None,
        accepts: isr::__private::accept_all,
        check: isr::__private::nothing_to_check,
        content_type: None,
        hydration: isr::Hydration::Full {
            export: "isr_hydrate_bench",
        },
        query: isr::QuerySpec::NONE,
    }))
}

fn routes() -> Routes {
    Routes::new(vec![
        def("/"),
        def("/blog"),
        def("/blog/:slug"),
        def("/products"),
        def("/products/page/:n"),
        def("/products/:id"),
    ])
    .expect("routes")
}

fn route_match(c: &mut Criterion) {
    let routes = routes();
    c.bench_function("route match /products/4242", |b| {
        b.iter(|| black_box(routes.resolve(black_box("/products/4242"))))
    });
    c.bench_function("route match (percent-encoded) /blog/h%C3%A9llo", |b| {
        b.iter(|| black_box(routes.resolve(black_box("/blog/h%C3%A9llo"))))
    });
}

fn cache_lookup(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("runtime");
    let engine = runtime.block_on(async {
        let engine = Engine::builder(routes(), Arc::new(MemoryStore::default()))
            .clock(Arc::new(SystemClock))
            .open()
            .await
            .expect("engine");
        for id in 0..1000 {
            engine.request(&format!("/products/{id}")).await;
        }
        engine
    });
    c.bench_function("cache lookup: engine HIT of a 10 KB page", |b| {
        b.to_async(&runtime).iter(|| async {
            match engine.request(black_box("/products/500")).await {
                Served::Stored { page, .. } => black_box(page),
                other => panic!("expected a cached page, got {other:?}"),
            }
        })
    });
}

fn headers(c: &mut Criterion) {
    let page = "<p>benchmark page</p>".repeat(500);
    c.bench_function("cache-control header value", |b| {
        b.iter(|| {
            black_box(isr::server::cache_control(black_box(
                CacheProfile::revalidate(60),
            )))
        })
    });
    c.bench_function("strong etag of a 10 KB page (at generation)", |b| {
        b.iter(|| black_box(isr::engine::etag_of(black_box(page.as_bytes()))))
    });
}

#[derive(Clone, serde::Serialize)]
struct PostProps {
    title: String,
    paragraphs: Vec<String>,
}

fn render(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let props = PostProps {
        title: "A typical post".into(),
        paragraphs: vec!["Incremental static regeneration keeps static speed. ".repeat(4); 25],
    };
    c.bench_function("render a typical 10 KB view + document", |b| {
        b.to_async(&runtime).iter(|| {
            let props = props.clone();
            async move {
                let body = isr::render::render_view(props, |p: PostProps| {
                    view! {
                        <article>
                            <h1>{p.title}</h1>
                            {p.paragraphs.into_iter().map(|t| view! { <p>{t}</p> }).collect_view()}
                        </article>
                    }
                })
                .await
                .expect("render");
                black_box(isr::render::document(
                    &body,
                    "/blog/post",
                    isr::Hydration::Full {
                        export: "isr_hydrate_x",
                    },
                    &Default::default(),
                ))
            }
        })
    });
}

/// The typical post of `render`, as a document (what generation compresses).
fn typical_document() -> bytes::Bytes {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let paragraphs: Vec<String> = (0..25)
        .map(|i| format!("Paragraph {i}: incremental static regeneration keeps static speed while pages change; a loader runs once per window, never per request. "))
        .collect();
    let body = runtime
        .block_on(isr::render::render_view(paragraphs, |p: Vec<String>| {
            view! { <article>{p.into_iter().map(|t| view! { <p>{t}</p> }).collect_view()}</article> }
        }))
        .expect("render");
    isr::render::document(
        &body,
        "/blog/post",
        isr::Hydration::Full {
            export: "isr_hydrate_x",
        },
        &Default::default(),
    )
    .into()
}

fn compression(c: &mut Criterion) {
    use isr::encoding::{Encoding, Variants};
    let html = typical_document();
    let variants = Variants::compress(html.clone());
    // Parsed by bench/run.
    println!(
        "compressed sizes: identity {} B, gzip {} B, br {} B",
        html.len(),
        variants.get(Encoding::Gzip).map_or(0, |b| b.len()),
        variants.get(Encoding::Brotli).map_or(0, |b| b.len()),
    );
    c.bench_function(
        "compress a typical page: gzip 9 + brotli 5 (at generation)",
        |b| b.iter(|| black_box(Variants::compress(black_box(html.clone())))),
    );
    c.bench_function(
        "verify stored variants of a typical page (first read)",
        |b| b.iter(|| black_box(variants.clone().verified().is_ok())),
    );
}

criterion_group!(
    benches,
    route_match,
    cache_lookup,
    headers,
    render,
    compression
);
criterion_main!(benches);
