//! `GET /sitemap.xml`, `/sitemap/<n>.xml` (parts of a large sitemap) and `/robots.txt`, unless
//! the app serves its own at those paths (a page, or a file of its `public/` folder).
//!
//! They are served like pages: each document is made once (off the async workers) and kept
//! with its gzip and brotli encodings and an etag, until a page is committed or removed; a
//! request gets the encoding it prefers, or `304` for the etag it holds. Their links use
//! `--public-url`; without it they use the origin the request was sent to (its `Host`, and
//! https from a trusted proxy), and then the answer says so (`Vary`), so that a shared cache
//! never gives one origin's links to another. Only the [`KEPT_DOCUMENTS`] last made documents
//! are kept: `Host` values a client makes up cannot grow memory.

use crate::encoding::{Encoding, Variants};
use crate::engine::Engine;
use crate::site::SiteUrl;
use crate::sitemap::Sitemap;
use crate::store::{Etag, RepresentationEtags};
use axum::body::Body;
use axum::extract::{Path, Request, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use std::sync::{Arc, Mutex};

use super::origin::{ClientOrigin, TrustedProxies};

/// How long clients and CDNs may keep the sitemap and robots.txt.
const CACHE_CONTROL: &str = "public, max-age=60";

/// Documents kept made (per document and origin).
pub const KEPT_DOCUMENTS: usize = 8;

#[derive(Clone)]
struct Sitemaps {
    engine: Arc<Engine>,
    public_url: Option<SiteUrl>,
    trusted: TrustedProxies,
    made: Arc<Mutex<Vec<Made>>>,
    /// The pages listed, with the page table's stamp they were read at (read again only after
    /// a page was committed or removed).
    pages: Arc<Mutex<Option<KeptSitemap>>>,
}

/// The sitemap made at a page-table stamp.
type KeptSitemap = ((u64, usize), Arc<Sitemap>);

/// Which document.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Which {
    Root,
    Part(usize),
    Robots,
}

/// A document made for one origin, valid while the page table's stamp is `stamp`.
struct Made {
    which: Which,
    origin: String,
    stamp: (u64, usize),
    document: Arc<Document>,
}

/// One document in every encoding, with its etags.
struct Document {
    variants: Variants,
    etags: RepresentationEtags,
    content_type: &'static str,
}

/// The routes, for the paths the app has no page of its own at.
pub fn routes<S: Clone + Send + Sync + 'static>(
    engine: Arc<Engine>,
    public_url: Option<SiteUrl>,
    trusted: TrustedProxies,
    public: &crate::public::PublicFiles,
) -> Router<S> {
    let own = |path: &str| engine.routes().def(path).is_some() || public.serves(path);
    let own_sitemap = own("/sitemap.xml");
    let own_robots = own("/robots.txt");
    let state = Sitemaps {
        engine,
        public_url,
        trusted,
        made: Arc::new(Mutex::new(Vec::new())),
        pages: Arc::new(Mutex::new(None)),
    };
    let mut router = Router::new();
    if !own_sitemap {
        router = router
            .route("/sitemap.xml", get(sitemap_root))
            .route("/sitemap/{part}", get(sitemap_part));
    }
    if !own_robots {
        router = router.route("/robots.txt", get(robots));
    }
    router.with_state(state)
}

impl Sitemaps {
    /// `--public-url`, else the origin the request was sent to.
    fn site(&self, request: &Request) -> SiteUrl {
        if let Some(url) = &self.public_url {
            return url.clone();
        }
        ClientOrigin::of_request(
            request.headers(),
            request.uri(),
            request.extensions(),
            &self.trusted,
        )
        .origin()
        .and_then(|origin| SiteUrl::parse(&origin).ok())
        .unwrap_or_else(|| SiteUrl::parse("http://localhost").expect("a valid origin"))
    }

    /// The document `which` for `site`: kept, or made now (`None`: no such part).
    async fn document(&self, which: Which, site: SiteUrl) -> Option<Arc<Document>> {
        let stamp = self.engine.table_stamp();
        let kept = self.lock().iter().find_map(|made| {
            (made.which == which
                && made.origin == site.as_str()
                && (which == Which::Robots || made.stamp == stamp))
                .then(|| made.document.clone())
        });
        if let Some(document) = kept {
            return Some(document);
        }
        let maps = self.clone();
        let origin = site.as_str().to_owned();
        // Sorting, writing and compressing up to 50,000 lines is CPU work: off the workers.
        let document = tokio::task::spawn_blocking(move || {
            let (text, content_type) = match which {
                Which::Root => (maps.sitemap().root(&site), XML),
                Which::Part(n) => (maps.sitemap().part(n, &site)?, XML),
                Which::Robots => (crate::sitemap::robots(&site), TEXT),
            };
            let identity = bytes::Bytes::from(text);
            Some(Arc::new(Document {
                etags: RepresentationEtags::of(Etag::of(&identity)),
                variants: Variants::compress(identity),
                content_type,
            }))
        })
        .await
        .ok()??;
        let mut made = self.lock();
        made.retain(|m| !(m.which == which && m.origin == origin));
        if made.len() >= KEPT_DOCUMENTS {
            made.remove(0);
        }
        made.push(Made {
            which,
            origin,
            stamp,
            document: document.clone(),
        });
        Some(document)
    }

    /// The pages the engine holds now: kept while the page table's stamp is unchanged.
    fn sitemap(&self) -> Arc<Sitemap> {
        let mut kept = self.pages.lock().unwrap_or_else(|e| e.into_inner());
        let stamp = self.engine.table_stamp();
        if let Some((made_at, sitemap)) = &*kept {
            if *made_at == stamp {
                return sitemap.clone();
            }
        }
        let (pages, stamp) = self.engine.html_pages();
        let sitemap = Arc::new(Sitemap::new(pages));
        *kept = Some((stamp, sitemap.clone()));
        sitemap
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<Made>> {
        self.made.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The answer for `which`, or `404`.
    async fn serve(&self, which: Which, request: Request) -> Response {
        let site = self.site(&request);
        match self.document(which, site).await {
            Some(document) => respond(&document, request.headers(), self.public_url.is_none()),
            None => StatusCode::NOT_FOUND.into_response(),
        }
    }
}

const XML: &str = "application/xml; charset=utf-8";
const TEXT: &str = "text/plain; charset=utf-8";

async fn sitemap_root(State(maps): State<Sitemaps>, request: Request) -> Response {
    maps.serve(Which::Root, request).await
}

async fn sitemap_part(
    State(maps): State<Sitemaps>,
    Path(part): Path<String>,
    request: Request,
) -> Response {
    match part
        .strip_suffix(".xml")
        .and_then(|n| n.parse::<usize>().ok())
    {
        Some(n) => maps.serve(Which::Part(n), request).await,
        None => StatusCode::NOT_FOUND.into_response(),
    }
}

async fn robots(State(maps): State<Sitemaps>, request: Request) -> Response {
    maps.serve(Which::Robots, request).await
}

/// The document in the encoding `request_headers` prefer, or `304` for its etag.
fn respond(document: &Document, request_headers: &HeaderMap, varies_by_origin: bool) -> Response {
    let encoding =
        super::preferred_encoding(request_headers, |e| document.variants.get(e).is_some());
    let etag = document.etags.get(encoding);
    let mut response = if super::if_none_match(request_headers, etag) {
        StatusCode::NOT_MODIFIED.into_response()
    } else {
        let bytes = document.variants.get(encoding).cloned().unwrap_or_default();
        let mut response = Response::new(Body::from(bytes));
        response.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static(document.content_type),
        );
        response
    };
    let headers = response.headers_mut();
    if let Some(etag) = document.etags.shared(encoding) {
        if let Ok(value) = HeaderValue::from_maybe_shared(etag) {
            headers.insert(header::ETAG, value);
        }
    }
    if encoding != Encoding::Identity {
        headers.insert(
            header::CONTENT_ENCODING,
            HeaderValue::from_static(encoding.token()),
        );
    }
    headers.insert(
        header::VARY,
        HeaderValue::from_static(if varies_by_origin {
            "accept-encoding, host, x-forwarded-proto"
        } else {
            "accept-encoding"
        }),
    );
    headers.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static(CACHE_CONTROL),
    );
    response
}
