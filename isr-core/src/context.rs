//! What loaders and `paths` functions receive: the route's params and the app's state, as typed
//! arguments in the style of axum's extractors.
//!
//! A loader declares what it needs in its signature and `#[page]` extracts each argument before
//! the loader runs:
//!
//! Compiled, not run: a page is registered only in an app built with its `ssr` feature.
//!
//! ```no_run
//! # use isr::prelude::*;
//! # use leptos::prelude::*;
//! # #[derive(Clone, Serialize, Deserialize)]
//! # pub struct Product { name: String }
//! # #[derive(Clone, Serialize, Deserialize)]
//! # pub struct ProductParams { id: u32 }
//! # #[derive(Clone)]
//! # pub struct Db;
//! # impl Db {
//! #     async fn product(&self, _id: u32) -> isr::Result<Load<Product>> { Ok(Load::NotFound) }
//! #     async fn ids(&self) -> isr::Result<Vec<ProductParams>> { Ok(vec![]) }
//! # }
//! # fn product_page(product: Product) -> impl IntoView { view! { <h1>{product.name}</h1> } }
//! # #[paths]
//! # async fn all_products(State(db): State<Db>) -> isr::Result<Vec<ProductParams>> { db.ids().await }
//! #[page(path = "/products/:id", revalidate = 60, view = product_page, paths = all_products)]
//! async fn product(Path(p): Path<ProductParams>, State(db): State<Db>) -> isr::Result<Load<Product>> {
//!     db.product(p.id).await
//! }
//! # fn main() {}
//! ```
//!
//! - [`Params`]: the raw route params, as strings.
//! - [`Path<T>`]: the params deserialized into `T` (`#[derive(Deserialize)]`, numbers parsed). A
//!   path whose params do not parse is a 404 before any loader runs or is scheduled.
//! - [`State<T>`]: a clone of the value registered with `isr::App::state`; several types can
//!   be registered, one value per type.
//! - [`Query<T>`]: the route's listed query parameters (`query = ["page", "tag"]`)
//!   deserialized into `T`; a value that does not parse is a 404 before any loader runs.
//! - [`Preview`]: whether the page is rendered for an editor's preview (drafts may be shown);
//!   such a rendering is never stored or cached anywhere.
//!
//! Every argument is also checked once when the app starts ([`FromContext::check`]): a missing
//! state type, or a `Path<T>` field that is not a parameter of the route, stops the app with a
//! message naming the page, before any page is built.

use crate::model::{Generated, Params};
use futures::future::BoxFuture;
use serde::de::DeserializeOwned;
use serde::Serialize;
use std::any::{Any, TypeId};
use std::collections::HashMap;
use std::fmt;
use std::future::Future;
use std::sync::Arc;

/// Values an app registers for its loaders, one per type (`isr::App::state`).
///
/// ```
/// let mut state = isr::AppState::default();
/// state.insert(String::from("postgres://db"));
/// state.insert(7u32);
/// assert_eq!(state.get::<String>().unwrap(), "postgres://db");
/// assert_eq!(state.get::<u32>(), Some(&7));
/// assert!(state.get::<u64>().is_none());
/// ```
#[derive(Default)]
pub struct AppState {
    values: HashMap<TypeId, Box<dyn Any + Send + Sync>>,
}

impl AppState {
    /// Registers `value`, replacing an earlier value of the same type.
    pub fn insert<T: Clone + Send + Sync + 'static>(&mut self, value: T) {
        self.values.insert(TypeId::of::<T>(), Box::new(value));
    }

    /// The registered value of type `T`.
    pub fn get<T: 'static>(&self) -> Option<&T> {
        self.values
            .get(&TypeId::of::<T>())
            .and_then(|value| value.downcast_ref())
    }
}

impl fmt::Debug for AppState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AppState")
            .field("values", &self.values.len())
            .finish()
    }
}

/// What one generation of a page runs with: its params and the app's state.
///
/// ```
/// let cx = isr::LoadContext::new(isr::Params::new().with("id", "7"), Default::default());
/// assert_eq!(cx.params().get("id").unwrap(), "7");
/// ```
#[derive(Clone, Debug)]
pub struct LoadContext {
    params: Params,
    state: Arc<AppState>,
    url_path: String,
    query: Params,
    preview: bool,
}

impl LoadContext {
    /// A context for a page with these params (at `/` until [`LoadContext::at`]).
    pub fn new(params: Params, state: Arc<AppState>) -> Self {
        LoadContext {
            params,
            state,
            url_path: String::from("/"),
            query: Params::new(),
            preview: false,
        }
    }

    /// The same context for a variant with these query parameters (canonical, see
    /// [`crate::model::query`]).
    ///
    /// ```
    /// let cx = isr::LoadContext::new(isr::Params::new(), Default::default())
    ///     .with_query(isr::Params::new().with("page", "2"));
    /// assert_eq!(cx.query().get("page").unwrap(), "2");
    /// ```
    pub fn with_query(mut self, query: Params) -> Self {
        self.query = query;
        self
    }

    /// The variant's query parameters (empty for the page itself).
    pub fn query(&self) -> &Params {
        &self.query
    }

    /// The same context for an editor's preview: [`Preview`] is `true` in it. Only a render
    /// that is never stored gets one (a request with a valid preview cookie).
    ///
    /// ```
    /// let cx = isr::LoadContext::new(isr::Params::new(), Default::default());
    /// assert!(!cx.is_preview());
    /// assert!(cx.for_preview().is_preview());
    /// ```
    pub fn for_preview(mut self) -> Self {
        self.preview = true;
        self
    }

    /// Whether this render is an editor's preview ([`LoadContext::for_preview`]).
    pub fn is_preview(&self) -> bool {
        self.preview
    }

    /// The same context for the page at this URL path (what its view's `use_location` reports).
    ///
    /// ```
    /// let cx = isr::LoadContext::new(isr::Params::new(), Default::default()).at("/blog/hello");
    /// assert_eq!(cx.url_path(), "/blog/hello");
    /// ```
    pub fn at(mut self, url_path: impl Into<String>) -> Self {
        self.url_path = url_path.into();
        self
    }

    /// The URL path of the page being generated (`/` for `paths` functions).
    pub fn url_path(&self) -> &str {
        &self.url_path
    }

    /// The route's params (empty for a static route and for `paths` functions).
    pub fn params(&self) -> &Params {
        &self.params
    }

    /// The app's registered state.
    pub fn state(&self) -> &AppState {
        &self.state
    }
}

/// Why an argument could not be extracted.
#[derive(Debug)]
pub enum Rejection {
    /// The path names no page (typed params that do not parse): 404, the loader does not run.
    NotFound,
    /// The generation fails (the old page is kept).
    Failed(crate::Error),
}

impl Rejection {
    /// What the generation yields instead of running the loader.
    #[doc(hidden)]
    pub fn into_generated(self) -> crate::Result<Generated> {
        match self {
            Rejection::NotFound => Ok(Generated::NotFound),
            Rejection::Failed(error) => Err(error),
        }
    }
}

/// What the start-up check of an argument sees.
///
/// ```
/// let state = isr::AppState::default();
/// let check = isr::context::Check { route: "/blog/:slug", params: &["slug"], query: &[], state: &state, in_paths: false };
/// assert!(<isr::Params as isr::FromContext>::check(&check).is_ok());
/// ```
#[derive(Debug)]
pub struct Check<'a> {
    /// The route pattern.
    pub route: &'a str,
    /// Its `:param` names.
    pub params: &'a [&'a str],
    /// Its listed query parameters (`query = [...]`).
    pub query: &'a [&'a str],
    /// The app's registered state.
    pub state: &'a AppState,
    /// Whether the argument belongs to the route's `paths` function (which gets no params).
    pub in_paths: bool,
}

/// A type a loader or `paths` function can take as an argument.
#[diagnostic::on_unimplemented(
    message = "`{Self}` cannot be an argument of a page loader or `paths` function",
    label = "not an isr extractor",
    note = "arguments are `Params` (raw route params), `Path<T>` (route params deserialized into `T`), `Query<T>` (the route's listed query parameters deserialized into `T`), `State<T>` (a value registered with `App::state`) or `Preview` (whether an editor previews the page)"
)]
pub trait FromContext: Sized + Send + 'static {
    /// Takes the argument from the context of one generation.
    ///
    /// # Errors
    /// [`Rejection::NotFound`] when the params name no page (typed params that do not parse);
    /// [`Rejection::Failed`] when the argument cannot be produced (e.g. unregistered state).
    fn from_context(cx: &LoadContext) -> Result<Self, Rejection>;

    /// Whether a request with these params can be a page at all (checked before a generation
    /// is scheduled; `false` answers 404).
    fn accepts(_params: &Params) -> bool {
        true
    }

    /// The canonical values of a variant's listed query parameters as this argument reads
    /// them (see [`Query`]); `None` when they name no page (404, no loader runs). The default
    /// keeps them as they are.
    fn canonical_query(query: Params) -> Option<Params> {
        Some(query)
    }

    /// Checked once at start-up: an `Err` names what the app must fix.
    ///
    /// # Errors
    /// A message for the developer when the argument can never be extracted on this route (an
    /// unregistered `State<T>`, a `Path<T>` field with no route segment, params in `paths`).
    /// The default accepts every route.
    fn check(_check: &Check<'_>) -> Result<(), String> {
        Ok(())
    }
}

impl FromContext for Params {
    fn from_context(cx: &LoadContext) -> Result<Self, Rejection> {
        Ok(cx.params.clone())
    }

    fn check(check: &Check<'_>) -> Result<(), String> {
        no_params_in_paths::<Self>(check)
    }
}

/// A value registered with `isr::App::state`, cloned for each generation.
///
/// ```
/// use isr::{FromContext, State};
/// let mut state = isr::AppState::default();
/// state.insert(42u8);
/// let cx = isr::LoadContext::new(isr::Params::new(), std::sync::Arc::new(state));
/// let State(n) = State::<u8>::from_context(&cx).unwrap();
/// assert_eq!(n, 42);
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct State<T>(pub T);

impl<T: Clone + Send + Sync + 'static> FromContext for State<T> {
    fn from_context(cx: &LoadContext) -> Result<Self, Rejection> {
        cx.state
            .get::<T>()
            .cloned()
            .map(State)
            .ok_or_else(|| Rejection::Failed(crate::Error::msg(missing_state::<T>())))
    }

    fn check(check: &Check<'_>) -> Result<(), String> {
        match check.state.get::<T>() {
            Some(_) => Ok(()),
            None => Err(missing_state::<T>()),
        }
    }
}

/// Whether the page is rendered for an editor's preview: a request that carries the cookie a
/// signed preview link set (see `isr::preview`). A loader may then return what the public must
/// not see yet (drafts, scheduled posts, unpublished changes): a preview render is never
/// written to the memory cache, the disk, the shared tier or a CDN, and its answer is
/// `cache-control: private, no-store`. Every stored generation (build, regeneration,
/// revalidation) gets `Preview(false)`, and so do `paths` functions.
///
/// ```
/// use isr::{FromContext, Preview};
/// let cx = isr::LoadContext::new(isr::Params::new(), Default::default());
/// assert_eq!(Preview::from_context(&cx).unwrap(), Preview(false));
/// assert_eq!(Preview::from_context(&cx.for_preview()).unwrap(), Preview(true));
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Preview(pub bool);

impl FromContext for Preview {
    fn from_context(cx: &LoadContext) -> Result<Self, Rejection> {
        Ok(Preview(cx.preview))
    }
}

/// The route's listed query parameters (`#[page(query = ["page", "tag"])]`) deserialized into
/// `T`, as axum's `Query` does, from the variant's canonical query (parameters not listed never
/// get here). Its reading is also the variant's identity: the values `T` writes back are the
/// key (`?page=02` is the page `?page=2`), and those equal to `T`'s own defaults (what it
/// deserializes from no parameters) are left out, so `/blog?page=1` is `/blog` when `page`
/// defaults to 1. A query that does not deserialize is a 404 before any loader runs.
///
/// ```
/// use isr::{FromContext, Query};
/// #[derive(serde::Deserialize, serde::Serialize)]
/// struct List { #[serde(default = "first")] page: u32, tag: Option<String> }
/// fn first() -> u32 { 1 }
/// let canonical = |page: &str| Query::<List>::canonical_query(isr::Params::new().with("page", page));
/// assert_eq!(canonical("02"), Some(isr::Params::new().with("page", "2")));
/// assert_eq!(canonical("1"), Some(isr::Params::new()), "the default: the page itself");
/// assert_eq!(canonical("two"), None);
/// let cx = isr::LoadContext::new(isr::Params::new(), Default::default())
///     .with_query(isr::Params::new().with("tag", "rust"));
/// let Query(list) = Query::<List>::from_context(&cx).unwrap();
/// assert_eq!((list.page, list.tag.as_deref()), (1, Some("rust")));
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Query<T>(pub T);

impl<T: DeserializeOwned + Serialize + Send + 'static> FromContext for Query<T> {
    fn from_context(cx: &LoadContext) -> Result<Self, Rejection> {
        decode_params(&cx.query)
            .map(Query)
            .map_err(|_| Rejection::NotFound)
    }

    fn canonical_query(query: Params) -> Option<Params> {
        let value: T = decode_params(&query).ok()?;
        let written = encode_params(&value).ok()?;
        let defaults = decode_params::<T>(&Params::new())
            .ok()
            .and_then(|value| encode_params(&value).ok())
            .unwrap_or_default();
        Some(
            written
                .iter()
                .filter(|(name, value)| defaults.get(name).ok() != Some(*value))
                .collect(),
        )
    }

    fn check(check: &Check<'_>) -> Result<(), String> {
        let type_name = std::any::type_name::<T>();
        if check.in_paths {
            return Err(format!(
                "the `paths` function of `{}` takes `Query<{type_name}>`: `paths` lists pages, it receives no query (take `State<T>` only)",
                check.route
            ));
        }
        if check.query.is_empty() {
            return Err(format!(
                "`Query<{type_name}>` reads the query string, but route `{}` lists no parameters: add `query = [\"name\", ..]` to its `#[page]`",
                check.route
            ));
        }
        let Some(fields) = introspect::struct_fields::<T>() else {
            return Ok(());
        };
        match fields.iter().find(|f| !check.query.contains(f)) {
            None => Ok(()),
            Some(field) => Err(format!(
                "`Query<{type_name}>` has a field `{field}`, but route `{}` does not list it in `query = [...]` (it lists: {})",
                check.route,
                check.query.join(", ")
            )),
        }
    }
}

fn missing_state<T>() -> String {
    let name = std::any::type_name::<T>();
    format!(
        "`State<{name}>` is not registered: add `.state(value)` with a `{name}` to the `isr::App`"
    )
}

/// The route's params deserialized into `T`, as axum's `Path` does: numbers and other
/// `FromStr`-like fields are parsed from the segment text.
///
/// A path whose params do not deserialize names no page: it is a 404 and no loader runs. So is
/// one whose params do not read back the same (`/items/042` or `/items/+42` for `id: u32`): one
/// page never has two paths, and no client can fill the site with copies of a page.
///
/// ```
/// use isr::{FromContext, Path};
/// #[derive(serde::Deserialize, serde::Serialize)]
/// struct Item { id: u32 }
/// let cx = |id: &str| isr::LoadContext::new(isr::Params::new().with("id", id), Default::default());
/// let Path(item) = Path::<Item>::from_context(&cx("42")).unwrap();
/// assert_eq!(item.id, 42);
/// assert!(matches!(Path::<Item>::from_context(&cx("forty-two")), Err(isr::Rejection::NotFound)));
/// assert!(!Path::<Item>::accepts(&isr::Params::new().with("id", "x")));
/// assert!(!Path::<Item>::accepts(&isr::Params::new().with("id", "042")));
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Path<T>(pub T);

impl<T: DeserializeOwned + Serialize + Send + 'static> FromContext for Path<T> {
    fn from_context(cx: &LoadContext) -> Result<Self, Rejection> {
        decode_canonical(&cx.params)
            .map(Path)
            .ok_or(Rejection::NotFound)
    }

    fn accepts(params: &Params) -> bool {
        decode_canonical::<T>(params).is_some()
    }

    fn check(check: &Check<'_>) -> Result<(), String> {
        no_params_in_paths::<Self>(check)?;
        let Some(fields) = introspect::struct_fields::<T>() else {
            return Ok(());
        };
        match fields.iter().find(|f| !check.params.contains(f)) {
            None => Ok(()),
            Some(field) => Err(format!(
                "`Path<{}>` has a field `{field}`, but route `{}` has no `:{field}` segment{}",
                std::any::type_name::<T>(),
                check.route,
                match check.params {
                    [] => " (it has no params)".to_string(),
                    names => format!(
                        " (its params: {})",
                        names
                            .iter()
                            .map(|n| format!(":{n}"))
                            .collect::<Vec<_>>()
                            .join(", ")
                    ),
                }
            )),
        }
    }
}

/// `T` from `params`, if they deserialize and every field `T` serializes reads back as given.
fn decode_canonical<T: DeserializeOwned + Serialize>(params: &Params) -> Option<T> {
    let value: T = decode_params(params).ok()?;
    let again = encode_params(&value).ok()?;
    let canonical = again
        .iter()
        .all(|(name, text)| params.get(name).is_ok_and(|given| given == text));
    canonical.then_some(value)
}

fn no_params_in_paths<T>(check: &Check<'_>) -> Result<(), String> {
    if check.in_paths {
        return Err(format!(
            "the `paths` function of `{}` takes `{}`: `paths` lists the params of every page, it receives none (take `State<T>` only)",
            check.route,
            std::any::type_name::<T>()
        ));
    }
    Ok(())
}

/// Deserializes route params into `T` (numbers, booleans and enums parsed from the text).
///
/// ```
/// #[derive(serde::Deserialize, Debug, PartialEq)]
/// struct P { year: u16, slug: String }
/// let params = isr::Params::new().with("year", "2026").with("slug", "a b");
/// assert_eq!(isr::context::decode_params::<P>(&params).unwrap(), P { year: 2026, slug: "a b".into() });
/// ```
///
/// # Errors
/// When the params do not deserialize into `T`: a field with no param of its name, or a param
/// whose text does not parse as the field's type.
pub fn decode_params<T: DeserializeOwned>(params: &Params) -> crate::Result<T> {
    let encoded = serde_urlencoded::to_string(params.iter().collect::<Vec<_>>())
        .map_err(crate::Error::other)?;
    serde_urlencoded::from_str(&encoded).map_err(crate::Error::other)
}

/// Turns one item a `paths` function listed (a [`Params`], or any struct that serializes to
/// string, number or boolean fields) into route params.
///
/// ```
/// #[derive(serde::Serialize)]
/// struct P { id: u32, slug: &'static str }
/// let params = isr::context::encode_params(&P { id: 7, slug: "seven" }).unwrap();
/// assert_eq!(params, isr::Params::new().with("id", "7").with("slug", "seven"));
/// let raw = isr::Params::new().with("slug", "x");
/// assert_eq!(isr::context::encode_params(&raw).unwrap(), raw);
/// assert!(isr::context::encode_params(&vec![1, 2]).is_err());
/// ```
///
/// # Errors
/// When `value` is not a struct or map of string, number or boolean fields (a sequence, a
/// nested struct or a bare scalar); the message names the type `paths` listed.
pub fn encode_params<T: Serialize>(value: &T) -> crate::Result<Params> {
    // Struct fields keep their order; nested values are refused by the serializer.
    let encoded = serde_urlencoded::to_string(value).map_err(|e| {
        crate::Error::msg(format!(
            "`paths` listed a `{}` that is not a struct of string, number or boolean fields: {e}",
            std::any::type_name::<T>()
        ))
    })?;
    let pairs: Vec<(String, String)> =
        serde_urlencoded::from_str(&encoded).map_err(crate::Error::other)?;
    Ok(pairs.into_iter().collect())
}

/// A `paths` function: any `async fn` whose arguments are [`FromContext`] types and that returns
/// `isr::Result<Vec<T>>` with `T` a [`Params`] or a struct of the route's params.
#[diagnostic::on_unimplemented(
    message = "`{Self}` cannot be a `paths` function",
    label = "expected an `async fn(State<T>, ..) -> isr::Result<Vec<P>>`",
    note = "`P` is `Params` or a struct that serializes to the route's params; arguments are `State<T>` extractors"
)]
pub trait PathsHandler<Args, T>: Copy + Send + Sync + 'static {
    /// Runs the function with its arguments taken from `cx`.
    fn call(self, cx: LoadContext) -> BoxFuture<'static, crate::Result<Vec<Params>>>;

    /// Start-up checks of its arguments.
    fn check(check: &Check<'_>) -> Vec<String>;
}

macro_rules! impl_paths_handler {
    ($($arg:ident),*) => {
        #[allow(non_snake_case, unused_variables)]
        impl<F, Fut, T, $($arg,)*> PathsHandler<($($arg,)*), T> for F
        where
            F: Fn($($arg),*) -> Fut + Copy + Send + Sync + 'static,
            Fut: Future<Output = crate::Result<Vec<T>>> + Send + 'static,
            T: Serialize,
            $($arg: FromContext,)*
        {
            fn call(self, cx: LoadContext) -> BoxFuture<'static, crate::Result<Vec<Params>>> {
                Box::pin(async move {
                    $(
                        let $arg = match $arg::from_context(&cx) {
                            Ok(value) => value,
                            Err(Rejection::Failed(error)) => return Err(error),
                            Err(Rejection::NotFound) => return Err(crate::Error::msg("an argument of `paths` names no page")),
                        };
                    )*
                    let listed = self($($arg),*).await?;
                    listed.iter().map(encode_params).collect()
                })
            }

            fn check(check: &Check<'_>) -> Vec<String> {
                let errors: Vec<Option<String>> = vec![$($arg::check(check).err(),)*];
                errors.into_iter().flatten().collect()
            }
        }
    };
}

impl_paths_handler!();
impl_paths_handler!(A1);
impl_paths_handler!(A1, A2);
impl_paths_handler!(A1, A2, A3);
impl_paths_handler!(A1, A2, A3, A4);
impl_paths_handler!(A1, A2, A3, A4, A5);
impl_paths_handler!(A1, A2, A3, A4, A5, A6);

/// Calls a `paths` function (used by the code `#[page]` generates).
#[doc(hidden)]
pub fn call_paths<F: PathsHandler<A, T>, A, T>(
    paths: F,
    cx: LoadContext,
) -> BoxFuture<'static, crate::Result<Vec<Params>>> {
    paths.call(cx)
}

/// Start-up checks of a `paths` function's arguments (used by the code `#[page]` generates).
#[doc(hidden)]
pub fn check_paths<F: PathsHandler<A, T>, A, T>(_paths: F, check: &Check<'_>) -> Vec<String> {
    F::check(&Check {
        in_paths: true,
        ..*check
    })
}

/// Field names of a `Deserialize` struct, learnt by letting it ask a deserializer for them
/// (serde passes them to `deserialize_struct`); `None` for anything else (maps, tuples…).
mod introspect {
    use serde::de::{self, Deserialize, Visitor};
    use std::cell::Cell;

    pub(super) fn struct_fields<'de, T: Deserialize<'de>>() -> Option<&'static [&'static str]> {
        let fields = Cell::new(None);
        let _ = T::deserialize(FieldNames { fields: &fields });
        fields.get()
    }

    struct FieldNames<'a> {
        fields: &'a Cell<Option<&'static [&'static str]>>,
    }

    impl<'de> de::Deserializer<'de> for FieldNames<'_> {
        type Error = de::value::Error;

        fn deserialize_any<V: Visitor<'de>>(self, _: V) -> Result<V::Value, Self::Error> {
            Err(de::Error::custom("field names only"))
        }

        fn deserialize_struct<V: Visitor<'de>>(
            self,
            _name: &'static str,
            fields: &'static [&'static str],
            _visitor: V,
        ) -> Result<V::Value, Self::Error> {
            self.fields.set(Some(fields));
            Err(de::Error::custom("field names only"))
        }

        serde::forward_to_deserialize_any! {
            bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string bytes byte_buf
            option unit unit_struct newtype_struct seq tuple tuple_struct map enum identifier
            ignored_any
        }
    }

    #[cfg(test)]
    mod tests {
        #[derive(serde::Deserialize)]
        #[allow(dead_code)]
        struct Two {
            year: u16,
            #[serde(rename = "post")]
            slug: String,
        }

        #[test]
        fn struct_fields_are_the_serialized_names() {
            assert_eq!(super::struct_fields::<Two>(), Some(&["year", "post"][..]));
            assert_eq!(
                super::struct_fields::<std::collections::HashMap<String, String>>(),
                None
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(serde::Deserialize, serde::Serialize)]
    #[allow(dead_code)]
    struct ById {
        id: u32,
    }

    fn check<'a>(route: &'a str, params: &'a [&'a str], state: &'a AppState) -> Check<'a> {
        Check {
            route,
            params,
            query: &[],
            state,
            in_paths: false,
        }
    }

    #[test]
    fn a_path_field_that_is_not_a_route_param_is_reported_at_start() {
        let state = AppState::default();
        assert!(Path::<ById>::check(&check("/items/:id", &["id"], &state)).is_ok());
        let error = Path::<ById>::check(&check("/items/:slug", &["slug"], &state)).unwrap_err();
        assert!(error.contains("field `id`"), "{error}");
        assert!(error.contains("its params: :slug"), "{error}");
    }

    #[test]
    fn missing_state_is_reported_at_start_and_fails_the_generation() {
        let mut state = AppState::default();
        let error = State::<String>::check(&check("/", &[], &state)).unwrap_err();
        assert!(error.contains("State<alloc::string::String>"), "{error}");
        let cx = LoadContext::new(Params::new(), Arc::new(AppState::default()));
        assert!(matches!(
            State::<String>::from_context(&cx),
            Err(Rejection::Failed(_))
        ));
        state.insert(String::from("db"));
        assert!(State::<String>::check(&check("/", &[], &state)).is_ok());
    }

    #[test]
    fn params_extractors_are_refused_in_paths_functions() {
        let state = AppState::default();
        let in_paths = Check {
            in_paths: true,
            ..check("/items/:id", &["id"], &state)
        };
        assert!(Params::check(&in_paths).is_err());
        assert!(Path::<ById>::check(&in_paths).is_err());
    }

    #[tokio::test]
    async fn a_paths_handler_extracts_state_and_encodes_typed_items() {
        #[derive(serde::Serialize)]
        struct Item {
            id: u32,
        }
        async fn list(State(n): State<u32>) -> crate::Result<Vec<Item>> {
            Ok((1..=n).map(|id| Item { id }).collect())
        }
        let mut state = AppState::default();
        state.insert(2u32);
        let cx = LoadContext::new(Params::new(), Arc::new(state));
        let listed = call_paths(list, cx).await.unwrap();
        assert_eq!(
            listed,
            vec![Params::new().with("id", "1"), Params::new().with("id", "2")]
        );
        let empty = AppState::default();
        let errors = check_paths(list, &check("/items/:id", &["id"], &empty));
        assert_eq!(errors.len(), 1, "{errors:?}");
    }
}
