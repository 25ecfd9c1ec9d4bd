//! The deterministic catalogue: product `id` always gets the same name, description, category,
//! price and stock (a SplitMix64 hash of the id picks them), so a seeded database is the same
//! on every machine and no external data is needed.

/// A product before it has an id and a modification time.
///
/// ```
/// let p = shop::generate::NewProduct {
///     name: "Mug".into(), description: String::new(), category: "Kitchen".into(),
///     price_cents: 450, stock: 10,
/// };
/// assert_eq!(p.price_cents, 450);
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NewProduct {
    pub name: String,
    pub description: String,
    pub category: String,
    pub price_cents: i64,
    pub stock: i64,
}

const ADJECTIVES: [&str; 16] = [
    "Ergonomic",
    "Rustic",
    "Sleek",
    "Handcrafted",
    "Compact",
    "Sturdy",
    "Elegant",
    "Practical",
    "Vintage",
    "Lightweight",
    "Refined",
    "Rugged",
    "Minimal",
    "Deluxe",
    "Classic",
    "Modern",
];

const MATERIALS: [&str; 12] = [
    "Oak", "Steel", "Cotton", "Granite", "Bamboo", "Copper", "Wool", "Glass", "Leather", "Linen",
    "Ceramic", "Walnut",
];

/// `(category, nouns)`: every noun belongs to one category.
const CATEGORIES: [(&str, [&str; 5]); 8] = [
    (
        "Kitchen",
        ["Kettle", "Cutting Board", "Teapot", "Bowl", "Spice Rack"],
    ),
    (
        "Office",
        [
            "Desk Lamp",
            "Notebook",
            "Pen Holder",
            "Bookend",
            "Letter Tray",
        ],
    ),
    (
        "Garden",
        ["Planter", "Watering Can", "Trowel", "Bird Feeder", "Bench"],
    ),
    (
        "Living Room",
        ["Cushion", "Throw", "Side Table", "Vase", "Clock"],
    ),
    (
        "Bedroom",
        ["Pillow", "Blanket", "Nightstand", "Mirror", "Hanger Set"],
    ),
    (
        "Outdoor",
        ["Lantern", "Backpack", "Flask", "Hammock", "Camp Stool"],
    ),
    (
        "Bathroom",
        ["Towel", "Soap Dish", "Bath Mat", "Shelf", "Toothbrush Cup"],
    ),
    (
        "Accessories",
        ["Wallet", "Watch Strap", "Keyring", "Belt", "Cardholder"],
    ),
];

const QUALITIES: [&str; 8] = [
    "built to last for years",
    "easy to clean",
    "made in small batches",
    "designed for everyday use",
    "finished by hand",
    "tested for durability",
    "light enough to carry anywhere",
    "guaranteed for two years",
];

/// SplitMix64: a fast, well-mixed 64-bit hash of `x`.
///
/// ```
/// assert_eq!(shop::generate::splitmix64(1), shop::generate::splitmix64(1));
/// assert_ne!(shop::generate::splitmix64(1), shop::generate::splitmix64(2));
/// ```
pub fn splitmix64(x: u64) -> u64 {
    let mut z = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// The product with id `id` of the generated catalogue.
///
/// ```
/// let p = shop::generate::product(1);
/// assert_eq!(p, shop::generate::product(1));
/// assert!(p.price_cents >= 99 && p.price_cents % 100 == 99);
/// assert!(!p.name.is_empty() && !p.category.is_empty());
/// ```
pub fn product(id: u64) -> NewProduct {
    let mut state = splitmix64(id);
    let mut pick = |n: usize| {
        state = splitmix64(state);
        (state % n as u64) as usize
    };
    let adjective = ADJECTIVES[pick(ADJECTIVES.len())];
    let material = MATERIALS[pick(MATERIALS.len())];
    let (category, nouns) = CATEGORIES[pick(CATEGORIES.len())];
    let noun = nouns[pick(nouns.len())];
    let quality = QUALITIES[pick(QUALITIES.len())];
    let other_quality = QUALITIES[pick(QUALITIES.len())];
    // $0.99 … $499.99, always ending in .99.
    let price_cents = pick(500) as i64 * 100 + 99;
    // About one product in ten is sold out.
    let stock = if pick(10) == 0 {
        0
    } else {
        pick(250) as i64 + 1
    };
    let name = format!("{adjective} {material} {noun}");
    let description = format!(
        "A {} {} in {}, {quality}. Item #{id} of our {} range: {other_quality}.",
        adjective.to_lowercase(),
        noun.to_lowercase(),
        material.to_lowercase(),
        category.to_lowercase(),
    );
    NewProduct {
        name,
        description,
        category: category.to_string(),
        price_cents,
        stock,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn is_deterministic_and_varied() {
        let first: Vec<NewProduct> = (1..=1000).map(product).collect();
        let again: Vec<NewProduct> = (1..=1000).map(product).collect();
        assert_eq!(first, again);
        let names: std::collections::HashSet<&str> =
            first.iter().map(|p| p.name.as_str()).collect();
        assert!(names.len() > 500, "only {} distinct names", names.len());
        let sold_out = first.iter().filter(|p| p.stock == 0).count();
        assert!((50..200).contains(&sold_out), "{sold_out} sold out");
        assert!(first
            .iter()
            .all(|p| (99..=49_999).contains(&p.price_cents) && p.stock >= 0));
        let categories: std::collections::HashSet<&str> =
            first.iter().map(|p| p.category.as_str()).collect();
        assert_eq!(categories.len(), CATEGORIES.len());
    }

    #[test]
    fn known_values_do_not_drift() {
        // The generator is part of the seeded data: changing it changes every shop database.
        let p = product(1);
        assert_eq!(p, product(1));
        assert!(p.description.contains("Item #1 "), "{}", p.description);
    }
}
