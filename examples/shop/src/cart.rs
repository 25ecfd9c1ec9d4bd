//! The cart: per-user state that lives in the browser's localStorage, never in a static page.
//!
//! The server renders the badge as `0`. Once the page is hydrated, an `Effect` (effects never
//! run on the server) reads the stored cart and sets the badge; "Add to cart" updates storage
//! and the badge. The stored value is a JSON map from product id to quantity under
//! [`STORAGE_KEY`], so the count survives reloads and is shared by all pages of the shop.

use leptos::prelude::*;
use std::collections::BTreeMap;

/// The localStorage key of the cart.
///
/// ```
/// assert_eq!(shop::cart::STORAGE_KEY, "isr-shop-cart");
/// ```
pub const STORAGE_KEY: &str = "isr-shop-cart";

/// The cart's quantities by product id (as stored: JSON object keys are strings).
///
/// ```
/// let items: shop::cart::CartItems = [("7".to_string(), 2)].into();
/// assert_eq!(serde_json::to_string(&items).unwrap(), r#"{"7":2}"#);
/// ```
pub type CartItems = BTreeMap<String, u32>;

/// Parses the stored cart; anything unreadable is an empty cart.
///
/// ```
/// let items = shop::cart::parse_items(r#"{"7":2,"9":1}"#);
/// assert_eq!(shop::cart::total(&items), 3);
/// assert!(shop::cart::parse_items("not json").is_empty());
/// ```
pub fn parse_items(json: &str) -> CartItems {
    serde_json::from_str(json).unwrap_or_default()
}

/// Number of items in the cart.
///
/// ```
/// let mut items = shop::cart::CartItems::new();
/// items.insert("1".into(), 2);
/// assert_eq!(shop::cart::total(&items), 2);
/// ```
pub fn total(items: &CartItems) -> u32 {
    items.values().fold(0u32, |sum, n| sum.saturating_add(*n))
}

/// Adds one of product `id` to `items`.
///
/// ```
/// let mut items = shop::cart::CartItems::new();
/// shop::cart::add_item(&mut items, 7);
/// shop::cart::add_item(&mut items, 7);
/// assert_eq!(items["7"], 2);
/// ```
pub fn add_item(items: &mut CartItems, id: i64) {
    let quantity = items.entry(id.to_string()).or_default();
    *quantity = quantity.saturating_add(1);
}

/// The cart's item count, shared by the badge and the buttons of one page.
#[derive(Clone, Copy, Debug)]
struct Cart {
    count: RwSignal<u32>,
}

/// Provides the cart to `children` and, in the browser, loads it from localStorage after
/// hydration.
///
/// How a page uses it (shown as text: leptos components are rendered by the shop's browser
/// tests, `tests/tests/shop_browser.rs`):
///
/// ```text
/// view! { <CartProvider><CartBadge /></CartProvider> }
/// ```
#[component]
pub fn CartProvider(children: Children) -> impl IntoView {
    let count = RwSignal::new(0u32);
    provide_context(Cart { count });
    // Effects run only in the browser, after hydration: the static page always says 0.
    #[cfg(feature = "hydrate")]
    Effect::new(move |_| count.set(total(&browser::load())));
    children()
}

/// The header's cart badge (`.cart-count`).
///
/// How a page uses it (shown as text: leptos components are rendered by the shop's browser
/// tests, `tests/tests/shop_browser.rs`):
///
/// ```text
/// view! { <CartProvider><CartBadge /></CartProvider> }
/// ```
#[component]
pub fn CartBadge() -> impl IntoView {
    let cart = expect_context::<Cart>();
    view! {
        <span class="cart">
            "Cart " <span class="cart-count">{move || cart.count.get()}</span>
        </span>
    }
}

/// The "Add to cart" button (`.add-to-cart`) of product `id`; disabled when `enabled` is false.
///
/// How a page uses it (shown as text: leptos components are rendered by the shop's browser
/// tests, `tests/tests/shop_browser.rs`):
///
/// ```text
/// view! { <CartProvider><AddToCart id=7 enabled=true /></CartProvider> }
/// ```
#[component]
pub fn AddToCart(id: i64, enabled: bool) -> impl IntoView {
    let cart = expect_context::<Cart>();
    view! {
        <button
            class="add-to-cart"
            disabled=!enabled
            on:click=move |_| cart.count.set(add_to_stored_cart(id))
        >
            {if enabled { "Add to cart" } else { "Sold out" }}
        </button>
    }
}

/// Adds product `id` to the stored cart and returns the new item count.
fn add_to_stored_cart(id: i64) -> u32 {
    #[cfg(feature = "hydrate")]
    {
        let mut items = browser::load();
        add_item(&mut items, id);
        browser::save(&items);
        total(&items)
    }
    // Never called on the server (no clicks there).
    #[cfg(not(feature = "hydrate"))]
    {
        let _ = id;
        0
    }
}

#[cfg(feature = "hydrate")]
mod browser {
    use super::{parse_items, CartItems, STORAGE_KEY};

    fn storage() -> Option<web_sys::Storage> {
        web_sys::window()?.local_storage().ok()?
    }

    /// The stored cart (empty when storage is unavailable, e.g. disabled by the user).
    pub fn load() -> CartItems {
        storage()
            .and_then(|s| s.get_item(STORAGE_KEY).ok().flatten())
            .map(|json| parse_items(&json))
            .unwrap_or_default()
    }

    /// Stores the cart (best effort: a full or disabled storage keeps the old value).
    pub fn save(items: &CartItems) {
        if let (Some(storage), Ok(json)) = (storage(), serde_json::to_string(items)) {
            if let Err(error) = storage.set_item(STORAGE_KEY, &json) {
                leptos::logging::warn!("cart not saved: {error:?}");
            }
        }
    }
}
