//! An in-memory [`PageStore`] for tests and throwaway servers.

use super::{PageMeta, PageStore};
use std::collections::HashMap;
use std::io;
use std::sync::Mutex;

/// Keeps pages in a map; nothing survives the process.
///
/// ```
/// use isr::store::{MemoryStore, PageStore, PageMeta, PageKind};
/// let store = MemoryStore::default();
/// let meta = PageMeta { key: "/a".into(), route: "/a".into(), params: isr::Params::new(),
///     generated_at_ms: 1, kind: PageKind::Page { etag: "\"e\"".into(), bytes: 2 }, tags: vec![] };
/// store.write(&meta, Some(b"hi")).unwrap();
/// assert_eq!(store.read_html("/a").unwrap().as_deref(), Some(&b"hi"[..]));
/// ```
#[derive(Default)]
pub struct MemoryStore {
    pages: Mutex<HashMap<String, StoredPage>>,
}

type StoredPage = (PageMeta, Option<Vec<u8>>);

impl PageStore for MemoryStore {
    fn load_index(&self) -> io::Result<Vec<PageMeta>> {
        Ok(self.lock().values().map(|(m, _)| m.clone()).collect())
    }

    fn read_html(&self, key: &str) -> io::Result<Option<Vec<u8>>> {
        Ok(self.lock().get(key).and_then(|(_, html)| html.clone()))
    }

    fn write(&self, meta: &PageMeta, html: Option<&[u8]>) -> io::Result<()> {
        self.lock()
            .insert(meta.key.clone(), (meta.clone(), html.map(|h| h.to_vec())));
        Ok(())
    }

    fn remove(&self, key: &str) -> io::Result<()> {
        self.lock().remove(key);
        Ok(())
    }
}

impl MemoryStore {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, StoredPage>> {
        self.pages
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}
