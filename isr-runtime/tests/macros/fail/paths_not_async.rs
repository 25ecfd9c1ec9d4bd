// `#[paths]` goes on an async fn.
use isr::prelude::*;

#[paths]
fn all() -> isr::Result<Vec<Params>> {
    Ok(Vec::new())
}

fn main() {}
