const MISSING: &str = isr::asset!("missing.css");
const ABSOLUTE: &str = isr::asset!("/style.css");
const OUTSIDE: &str = isr::asset!("../Cargo.toml");
const NOT_A_NAME: &str = isr::asset!(style);

fn main() {}
