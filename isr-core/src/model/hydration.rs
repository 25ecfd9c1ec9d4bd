//! How a page comes alive in the browser: a choice made per page in `#[page]`, read by the
//! document writer (which scripts and data the page carries) and by the renderer.

/// How a page's HTML comes alive in the browser, set with `#[page(hydrate = ...)]`.
///
/// ```
/// use isr::Hydration;
/// assert!(Hydration::Full { export: "isr_hydrate__sblog" }.embeds_props());
/// assert!(!Hydration::Islands.embeds_props());
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Hydration {
    /// The whole view hydrates (the default): the page embeds its props and route params, and
    /// its module script calls `export`, the page's own function in the app's client bundle.
    Full {
        /// The `#[wasm_bindgen]` export of the page's hydration function.
        export: &'static str,
    },
    /// Only the view's leptos `#[island]`s hydrate (`hydrate = "islands"`): the page embeds no
    /// props, the bundle holds no code of its view, and a page without an island loads no
    /// script at all. Each island hydrates from the props leptos serialized into its
    /// `<leptos-island>` element.
    Islands,
}

impl Hydration {
    /// Whether the page carries its props and route params for the browser (a fully
    /// hydrated page does; an islands page does not).
    pub fn embeds_props(self) -> bool {
        matches!(self, Hydration::Full { .. })
    }
}
