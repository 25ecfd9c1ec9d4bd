//! An in-memory [`PageStore`] for tests and throwaway servers.

use super::{PageMeta, PageStore, StoreFuture};
use crate::encoding::Variants;
use crate::model::PageKey;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

/// Keeps pages in a map; nothing survives the process.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> std::io::Result<()> {
/// # let isr::Resolved::Page { key, .. } = isr::__private::example_routes(&["/hello"]).resolve("/hello") else { unreachable!() };
/// use isr::store::{MemoryStore, PageStore, PageMeta, PageKind, Etag};
/// let store = MemoryStore::default();
/// let meta = PageMeta { key: key.to_string(), route: key.to_string(), generated_at_ms: 1, generation: 0,
///     kind: PageKind::Page { etag: Etag::of(b"hi"), bytes: 2 }, tags: vec![], valid_until_ms: None,
///     mark: None };
/// let body = isr::encoding::Variants::identity_only("hi".into());
/// store.put(&key, meta, Some(body.clone())).await?;
/// assert_eq!(store.body(&key).await?, Some(body));
/// # Ok(()) }
/// ```
#[derive(Default, Clone)]
pub struct MemoryStore {
    pages: Arc<Mutex<HashMap<String, StoredPage>>>,
}

type StoredPage = (PageMeta, Option<Variants>);

impl PageStore for MemoryStore {
    fn load(&self) -> StoreFuture<Vec<PageMeta>> {
        let metas = self.lock().values().map(|(m, _)| m.clone()).collect();
        Box::pin(async move { Ok(metas) })
    }

    fn meta(&self, key: &PageKey) -> StoreFuture<Option<PageMeta>> {
        let meta = self.lock().get(key.as_str()).map(|(m, _)| m.clone());
        Box::pin(async move { Ok(meta) })
    }

    fn body(&self, key: &PageKey) -> StoreFuture<Option<Variants>> {
        let body = self.lock().get(key.as_str()).and_then(|(_, b)| b.clone());
        Box::pin(async move { Ok(body) })
    }

    fn put(&self, key: &PageKey, meta: PageMeta, body: Option<Variants>) -> StoreFuture<()> {
        self.lock().insert(key.to_string(), (meta, body));
        Box::pin(async { Ok(()) })
    }

    fn remove(&self, key: &PageKey) -> StoreFuture<()> {
        self.lock().remove(key.as_str());
        Box::pin(async { Ok(()) })
    }

    fn set_marks(&self, marks: Vec<(PageKey, Option<super::Mark>)>) -> StoreFuture<()> {
        let mut pages = self.lock();
        for (key, mark) in marks {
            if let Some((meta, _)) = pages.get_mut(key.as_str()) {
                meta.mark = mark;
            }
        }
        Box::pin(async { Ok(()) })
    }

    fn keys_with_tag(&self, tag: &str) -> StoreFuture<Vec<String>> {
        let mut keys: Vec<String> = self
            .lock()
            .iter()
            .filter(|(_, (meta, _))| meta.tags.iter().any(|t| t == tag))
            .map(|(key, _)| key.clone())
            .collect();
        keys.sort();
        Box::pin(async move { Ok(keys) })
    }
}

impl MemoryStore {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, StoredPage>> {
        self.pages
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}
