//! Layouts: the frame around page views, declared once with [`layout`](macro@crate::layout) for
//! the whole app or for the pages under a path prefix.
//!
//! A layout applies to every HTML page whose URL path is its prefix or lies under it (`/blog`
//! covers `/blog` and `/blog/hello`, not `/blogroll`), and to the app's 404 and 503 pages at
//! such paths. Layouts nest from the shortest prefix (outside) to the longest (inside), the app
//! layout (`/`) outermost. The server renders a page inside them and the browser hydrates a
//! fully hydrated page inside the same ones (both read the same registrations), so a view is
//! only its content. An islands page (`hydrate = "islands"`) has its layouts on the server only.
//! File routes (`/blog/feed.xml`) and isr's own pages get no layout.
//!
//! Layouts are registered at compile time in the app's `ssr` and `hydrate` builds (not in an
//! islands-only bundle, isr's `islands` feature); two layouts for one prefix stop the app at
//! start ([`check`]).

use leptos::prelude::{AnyView, Children, IntoAny, IntoView};
use std::sync::OnceLock;

/// One registered layout: what `#[layout]` submits. Not constructed by hand.
#[doc(hidden)]
pub struct LayoutDef {
    /// The path prefix it applies under (`/` for the whole app), validated by the macro.
    pub prefix: &'static str,
    /// The layout function's path, for messages.
    pub name: &'static str,
    /// The layout, its view type erased.
    pub render: fn(Children) -> AnyView,
}

inventory::collect!(LayoutDef);

/// Erases a layout's view type: used by the code `#[layout]` generates.
#[doc(hidden)]
pub fn erase<V: IntoView + 'static>(view: V) -> AnyView {
    view.into_any()
}

/// The app's layouts, outermost first (by prefix length).
fn registered() -> &'static [&'static LayoutDef] {
    static LAYOUTS: OnceLock<Vec<&'static LayoutDef>> = OnceLock::new();
    LAYOUTS.get_or_init(|| {
        let mut layouts: Vec<_> = inventory::iter::<LayoutDef>().collect();
        layouts.sort_by_key(|layout| (layout.prefix.len(), layout.prefix));
        layouts
    })
}

/// Whether `prefix` covers `url_path`: equal, or followed by a `/` in it.
fn covers(prefix: &str, url_path: &str) -> bool {
    prefix == "/"
        || url_path
            .strip_prefix(prefix)
            .is_some_and(|rest| rest.is_empty() || rest.starts_with('/'))
}

/// The prefixes of every registered layout, shortest first: the app's status pages are rendered
/// once for each (see [`longest_prefix`]).
///
/// ```
/// // This crate registers no layout.
/// assert!(isr::layout::prefixes().is_empty());
/// ```
pub fn prefixes() -> Vec<&'static str> {
    registered().iter().map(|layout| layout.prefix).collect()
}

/// The longest of `prefixes` that covers `url_path`, if any: which rendering of a status page a
/// request at `url_path` gets.
///
/// ```
/// let prefixes = ["/", "/blog", "/blog/archive"];
/// assert_eq!(isr::layout::longest_prefix(prefixes, "/blog/archive/2020"), Some("/blog/archive"));
/// assert_eq!(isr::layout::longest_prefix(prefixes, "/blogroll"), Some("/"));
/// assert_eq!(isr::layout::longest_prefix(["/shop"], "/blog"), None);
/// ```
pub fn longest_prefix<'a>(
    prefixes: impl IntoIterator<Item = &'a str>,
    url_path: &str,
) -> Option<&'a str> {
    prefixes
        .into_iter()
        .filter(|prefix| covers(prefix, url_path))
        .max_by_key(|prefix| prefix.len())
}

/// `content()` inside every layout that covers `url_path`, outermost first.
pub(crate) fn wrap<F, V>(url_path: &str, content: F) -> AnyView
where
    F: FnOnce() -> V + Send + 'static,
    V: IntoView + 'static,
{
    let chain: Vec<&'static LayoutDef> = registered()
        .iter()
        .copied()
        .filter(|layout| covers(layout.prefix, url_path))
        .collect();
    nest(&chain, Box::new(move || content().into_any()))
}

fn nest(chain: &[&'static LayoutDef], content: Children) -> AnyView {
    match chain.split_first() {
        None => content(),
        Some((outer, rest)) => {
            let rest = rest.to_vec();
            (outer.render)(Box::new(move || nest(&rest, content)))
        }
    }
}

/// Every problem with the registered layouts: two for one prefix (which would apply is not
/// defined). Run at start; an app with problems does not start.
///
/// ```
/// assert!(isr::layout::check().is_ok());
/// ```
///
/// # Errors
/// One line per prefix registered twice, naming both layouts.
pub fn check() -> Result<(), Vec<String>> {
    let problems: Vec<String> = registered()
        .windows(2)
        .filter(|pair| pair[0].prefix == pair[1].prefix)
        .map(|pair| {
            format!(
                "two layouts for `{}`: `{}` and `{}` (keep one)",
                pair[0].prefix, pair[0].name, pair[1].name
            )
        })
        .collect();
    if problems.is_empty() {
        Ok(())
    } else {
        Err(problems)
    }
}

#[cfg(test)]
mod tests {
    use super::covers;

    #[test]
    fn a_prefix_covers_itself_and_what_lies_under_it() {
        assert!(covers("/", "/anything"));
        assert!(covers("/blog", "/blog"));
        assert!(covers("/blog", "/blog/hello"));
        assert!(!covers("/blog", "/blogroll"));
        assert!(!covers("/blog/x", "/blog"));
    }
}
