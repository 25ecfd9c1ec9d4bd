use leptos::prelude::*;

#[isr::layout(prefix = "blog/")]
fn no_slash(children: Children) -> impl IntoView {
    children()
}

#[isr::layout(prefix = "/blog/:slug")]
fn with_param(children: Children) -> impl IntoView {
    children()
}

#[isr::layout(path = "/shop")]
fn unknown_key(children: Children) -> impl IntoView {
    children()
}

#[isr::layout]
async fn not_sync(children: Children) -> impl IntoView {
    children()
}

#[isr::layout]
fn two_arguments(children: Children, title: String) -> impl IntoView {
    view! { <h1>{title}</h1> {children()} }
}

#[isr::layout(prefix = "/shop")]
fn not_children(title: String) -> impl IntoView {
    view! { <h1>{title}</h1> }
}

fn main() {}
