//! `expire`, `stale_if_error`, `browser` and `cache = PROFILE` reach the page's registration.

use isr::prelude::*;
use leptos::prelude::*;

#[derive(Clone, Serialize, Deserialize)]
pub struct Props {
    price: u32,
}

fn show(props: Props) -> impl IntoView {
    view! { <p>{props.price}</p> }
}

/// A profile named on two routes.
const PRICES: isr::CacheProfile = isr::CacheProfile::revalidate(30)
    .expire(300)
    .stale_if_error(60)
    .browser(5);

#[page(path = "/price", revalidate = 60, expire = 600, stale_if_error = 3600, browser = 10, view = show)]
async fn price() -> isr::Result<Load<Props>> {
    Ok(Load::props(Props { price: 3 }))
}

#[page(path = "/status", revalidate = false, expire = 30, view = show)]
async fn status() -> isr::Result<Load<Props>> {
    Ok(Load::props(Props { price: 0 }))
}

#[page(path = "/a", cache = PRICES, view = show)]
async fn a() -> isr::Result<Load<Props>> {
    Ok(Load::props(Props { price: 1 }))
}

#[page(path = "/b", cache = isr::CacheProfile::on_demand().expire(90), view = show)]
async fn b() -> isr::Result<Load<Props>> {
    Ok(Load::props(Props { price: 2 }))
}

/// Named like the macro's own items might be: still the app's constant.
const PROFILE: isr::CacheProfile = isr::CacheProfile::revalidate(10).expire(20);

#[page(path = "/c", cache = PROFILE.browser(5), view = show)]
async fn c() -> isr::Result<Load<Props>> {
    Ok(Load::props(Props { price: 4 }))
}

fn main() {
    let def = |path: &str| isr::pages().find(|d| d.path == path).unwrap();
    assert_eq!(
        def("/price").cache,
        isr::CacheProfile::revalidate(60)
            .expire(600)
            .stale_if_error(3600)
            .browser(10)
    );
    assert_eq!(def("/status").cache, isr::CacheProfile::on_demand().expire(30));
    assert_eq!(def("/status").cache.browser_secs(), 0);
    assert_eq!(def("/a").cache, PRICES);
    assert_eq!(def("/b").cache.window(), isr::Revalidate::Never);
    assert_eq!(def("/b").cache.expire_secs(), Some(90));
    assert_eq!(def("/c").cache, PROFILE.browser(5));
}
