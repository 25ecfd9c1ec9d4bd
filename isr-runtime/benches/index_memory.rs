//! Index memory per page: opens an engine over N stored pages (route `/items/:id`, route tag
//! `items`, one loader tag `item:<id>` each, like the shop's product pages) and counts the bytes
//! the page table and tag index allocate, with a counting global allocator.
//!
//! `cargo bench -p isr --bench index_memory -- 100000 1000000` prints one line per N:
//! bytes per page beyond its key (the key text itself is shared by every tier).

use isr::clock::SystemClock;
use isr::store::{Etag, MemoryStore, PageKind, PageMeta, PageStore};
use isr::{CacheProfile, Engine, Fallback, PageDef, Revalidate, Routes};
use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

struct Counting;

static ALLOCATED: AtomicUsize = AtomicUsize::new(0);

// SAFETY: every call is forwarded unchanged to the system allocator; the impl only counts bytes.
#[allow(unsafe_code)]
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCATED.fetch_add(layout.size(), Ordering::Relaxed);
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        ALLOCATED.fetch_sub(layout.size(), Ordering::Relaxed);
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

fn load(
    _: isr::LoadContext,
) -> futures::future::BoxFuture<'static, isr::Result<isr::__private::Generated>> {
    Box::pin(async { Ok(isr::__private::Generated::NotFound) })
}

static ITEMS: PageDef = PageDef {
    id: "bench::items",
    path: "/items/:id",
    cache: CacheProfile::of(Revalidate::After(60)),
    timeout_secs: None,
    fallback: Fallback::Blocking,
    tags: &["items"],
    load,
    paths: None,
    accepts: isr::__private::accept_all,
    check: isr::__private::nothing_to_check,
    content_type: None,
    hydration: isr::Hydration::Full {
        export: "isr_hydrate_bench",
    },
    query: isr::QuerySpec::NONE,
};

fn main() {
    let counts: Vec<usize> = std::env::args()
        .skip(1)
        .filter_map(|a| a.parse().ok())
        .collect();
    let counts = if counts.is_empty() {
        vec![100_000]
    } else {
        counts
    };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    for pages in counts {
        let store = MemoryStore::default();
        let mut key_bytes = 0;
        runtime.block_on(async {
            let routes = Routes::new(vec![&ITEMS]).expect("routes");
            for id in 0..pages {
                let path = format!("/items/{id}");
                let Some((_, key, _)) = routes.resolve_key(&path) else {
                    unreachable!()
                };
                key_bytes += path.len();
                let meta = PageMeta {
                    key: path,
                    route: ITEMS.path.into(),
                    generated_at_ms: 1_700_000_000_000,
                    generation: 0,
                    kind: PageKind::Page {
                        etag: Etag::of(id.to_string().as_bytes()),
                        bytes: 10_240,
                    },
                    tags: vec!["items".into(), format!("item:{id}")],
                    valid_until_ms: None,
                    mark: None,
                };
                store.put(&key, meta, None).await.expect("put");
            }
        });
        let before = ALLOCATED.load(Ordering::Relaxed);
        let engine = runtime.block_on(async {
            Engine::builder(
                Routes::new(vec![&ITEMS]).expect("routes"),
                Arc::new(store.clone()),
            )
            .clock(Arc::new(SystemClock))
            .open()
            .await
            .expect("engine")
        });
        let after = ALLOCATED.load(Ordering::Relaxed);
        assert_eq!(engine.page_count(), pages);
        let per_page = (after - before) as f64 / pages as f64;
        let beyond_key = (after - before - key_bytes) as f64 / pages as f64;
        println!(
            "index memory: {pages} pages → {:.1} MB, {per_page:.0} B/page, {beyond_key:.0} B/page beyond the key text",
            (after - before) as f64 / 1e6
        );
        drop(engine);
    }
}
