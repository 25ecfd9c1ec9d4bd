//! [`Params`]: the values of a route's `:param` segments.

use serde::{Deserialize, Serialize};
use std::fmt;

/// The values of a route's `:param` segments, in route order. Serializes as a map
/// (`{"slug": "hello-world"}`).
///
/// ```
/// let params = isr::Params::new().with("slug", "hello-world");
/// assert_eq!(params.get("slug").unwrap(), "hello-world");
/// assert!(params.get("id").is_err());
/// assert_eq!(serde_json::to_string(&params).unwrap(), r#"{"slug":"hello-world"}"#);
/// ```
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct Params(Vec<(String, String)>);

impl Serialize for Params {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_map(self.iter())
    }
}

impl<'de> Deserialize<'de> for Params {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct ParamsVisitor;
        impl<'de> serde::de::Visitor<'de> for ParamsVisitor {
            type Value = Params;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a map of route params")
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                mut map: A,
            ) -> Result<Params, A::Error> {
                let mut params = Params::new();
                while let Some((name, value)) = map.next_entry::<String, String>()? {
                    params.insert(name, value);
                }
                Ok(params)
            }
        }
        deserializer.deserialize_map(ParamsVisitor)
    }
}

impl Params {
    /// No params (a static page).
    ///
    /// ```
    /// assert!(isr::Params::new().is_empty());
    /// ```
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds (or replaces) one param.
    ///
    /// ```
    /// let p = isr::Params::new().with("id", "42");
    /// assert_eq!(p.get("id").unwrap(), "42");
    /// ```
    pub fn with(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.insert(name, value);
        self
    }

    /// Sets one param in place.
    ///
    /// ```
    /// let mut p = isr::Params::new();
    /// p.insert("slug", "a");
    /// p.insert("slug", "b");
    /// assert_eq!(p.get("slug").unwrap(), "b");
    /// ```
    pub fn insert(&mut self, name: impl Into<String>, value: impl Into<String>) {
        let (name, value) = (name.into(), value.into());
        match self.0.iter_mut().find(|(n, _)| *n == name) {
            Some(slot) => slot.1 = value,
            None => self.0.push((name, value)),
        }
    }

    /// The value of `name`, or an error naming the missing param.
    ///
    /// ```
    /// let p = isr::Params::new().with("slug", "x");
    /// assert_eq!(p.get("slug").unwrap(), "x");
    /// ```
    ///
    /// # Errors
    /// When there is no param `name` (the route has no `:name` segment).
    pub fn get(&self, name: &str) -> crate::Result<&str> {
        self.0
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
            .ok_or_else(|| crate::Error::msg(format!("route param `{name}` is missing")))
    }

    /// Whether there are no params.
    ///
    /// ```
    /// assert!(!isr::Params::new().with("a", "b").is_empty());
    /// ```
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// `(name, value)` pairs in route order.
    ///
    /// ```
    /// let p = isr::Params::new().with("a", "1").with("b", "2");
    /// assert_eq!(p.iter().map(|(n, _)| n).collect::<Vec<_>>(), ["a", "b"]);
    /// ```
    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.0.iter().map(|(n, v)| (n.as_str(), v.as_str()))
    }
}

impl<N: Into<String>, V: Into<String>> FromIterator<(N, V)> for Params {
    fn from_iter<I: IntoIterator<Item = (N, V)>>(iter: I) -> Self {
        let mut params = Params::new();
        for (n, v) in iter {
            params.insert(n, v);
        }
        params
    }
}
