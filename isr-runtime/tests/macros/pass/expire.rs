//! `expire` and `stale_if_error` reach the page's registration and its policy.

use isr::prelude::*;
use leptos::prelude::*;

#[derive(Clone, Serialize, Deserialize)]
pub struct Props {
    price: u32,
}

fn show(props: Props) -> impl IntoView {
    view! { <p>{props.price}</p> }
}

#[page(path = "/price", revalidate = 60, expire = 600, stale_if_error = 3600, view = show)]
async fn price() -> isr::Result<Load<Props>> {
    Ok(Load::props(Props { price: 3 }))
}

#[page(path = "/status", revalidate = false, expire = 30, view = show)]
async fn status() -> isr::Result<Load<Props>> {
    Ok(Load::props(Props { price: 0 }))
}

fn main() {
    let def = |path: &str| isr::pages().find(|d| d.path == path).unwrap();
    assert_eq!(
        def("/price").policy(),
        isr::CachePolicy {
            revalidate: isr::Revalidate::After(60),
            expire_secs: Some(600),
            stale_if_error_secs: Some(3600),
        }
    );
    assert_eq!(def("/status").policy().expire_secs, Some(30));
    assert_eq!(def("/status").policy().stale_if_error_secs, None);
}
