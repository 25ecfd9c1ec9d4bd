//! [`Error`]: what loaders, `paths` functions and isr's own fallible calls return.
//!
//! It says what went wrong in one line, outermost step first, each step once:
//! `reading post hello: content/hello.md: No such file or directory (os error 2)`. A loader's
//! `?` converts the usual errors (I/O, JSON, number and UTF-8 parsing, `anyhow::Error`, boxed
//! errors); any other error type gets there with [`Context::context`] (which also says what was
//! being done) or [`Error::other`]. It implements [`std::error::Error`], so it goes wherever
//! errors go (`Box<dyn Error>`, `anyhow`).
//!
//! ```
//! use isr_core::error::{Context, Error};
//! fn read(path: &str) -> isr_core::Result<String> {
//!     std::fs::read_to_string(path).with_context(|| format!("reading {path}"))
//! }
//! let error = read("/nonexistent/post.md").unwrap_err();
//! assert_eq!(error.to_string(), "reading /nonexistent/post.md: No such file or directory (os error 2)");
//! assert!(error.root_cause().downcast_ref::<std::io::Error>().is_some());
//! let plain: Error = "n is not a number".parse::<u8>().unwrap_err().into();
//! assert_eq!(plain.to_string(), "invalid digit found in string");
//! ```

use std::fmt::Display;

/// The error of a loader, a `paths` function or an isr call: a message, an error of another
/// library, or either with what was being done around it ([`Context`]).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A message of the app's or isr's own ([`Error::msg`]).
    #[error("{0}")]
    Message(String),
    /// What was being done when `cause` happened. Displayed as `context: cause`; its `source()`
    /// is not `cause` (the text already holds it), see [`Error::chain`].
    #[error("{context}: {cause}")]
    Context {
        /// What was being done (`reading post hello`).
        context: String,
        /// Why it failed.
        cause: Box<Error>,
    },
    /// An error of another library, shown with the causes it names (`source()`), each once:
    /// `error sending request: connection refused`.
    #[error("{}", with_sources(&**.0))]
    Other(Box<dyn std::error::Error + Send + Sync + 'static>),
    /// An `anyhow::Error`, shown with its whole chain (`outer: inner`).
    #[error("{0:#}")]
    Anyhow(anyhow::Error),
}

/// `error`'s text followed by each of its sources' whose text it does not already hold.
fn with_sources(error: &(dyn std::error::Error + 'static)) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let said = cause.to_string();
        if !said.is_empty() && !text.contains(&said) {
            text.push_str(": ");
            text.push_str(&said);
        }
        source = cause.source();
    }
    text
}

impl Error {
    /// An error with this message.
    ///
    /// ```
    /// assert_eq!(isr_core::Error::msg("the CMS is down").to_string(), "the CMS is down");
    /// ```
    pub fn msg(message: impl Display) -> Error {
        Error::Message(message.to_string())
    }

    /// An error of another library (for a type `?` does not convert).
    ///
    /// ```
    /// #[derive(Debug)]
    /// struct DbError;
    /// impl std::fmt::Display for DbError {
    ///     fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result { f.write_str("pool timed out") }
    /// }
    /// impl std::error::Error for DbError {}
    /// let error = isr_core::Error::other(DbError);
    /// assert_eq!(error.to_string(), "pool timed out");
    /// assert!(error.root_cause().downcast_ref::<DbError>().is_some());
    /// ```
    pub fn other(error: impl std::error::Error + Send + Sync + 'static) -> Error {
        let boxed: Box<dyn std::error::Error + Send + Sync + 'static> = Box::new(error);
        match boxed.downcast::<Error>() {
            Ok(ours) => *ours,
            Err(theirs) => Error::Other(theirs),
        }
    }

    /// This error, with what was being done when it happened.
    ///
    /// ```
    /// let error = isr_core::Error::msg("timed out").context("loading /blog");
    /// assert_eq!(error.to_string(), "loading /blog: timed out");
    /// ```
    pub fn context(self, context: impl Display) -> Error {
        Error::Context {
            context: context.to_string(),
            cause: Box::new(self),
        }
    }

    /// The steps from the outermost context to the cause, one error each.
    ///
    /// ```
    /// let error = isr_core::Error::msg("disk full").context("writing /blog").context("regenerating");
    /// let steps: Vec<String> = error.chain().map(|e| match e {
    ///     isr_core::Error::Context { context, .. } => context.clone(),
    ///     other => other.to_string(),
    /// }).collect();
    /// assert_eq!(steps, ["regenerating", "writing /blog", "disk full"]);
    /// ```
    pub fn chain(&self) -> impl Iterator<Item = &Error> {
        std::iter::successors(Some(self), |error| match error {
            Error::Context { cause, .. } => Some(&**cause),
            _ => None,
        })
    }

    /// The innermost error, for [`downcast_ref`](https://doc.rust-lang.org/std/error/trait.Error.html#method.downcast_ref):
    /// the library's error an [`Error::Other`] holds (or the root of an `anyhow::Error`), else
    /// the innermost step itself.
    pub fn root_cause(&self) -> &(dyn std::error::Error + 'static) {
        let innermost = self.chain().last().unwrap_or(self);
        match innermost {
            Error::Other(error) => {
                let mut root: &(dyn std::error::Error + 'static) = &**error;
                while let Some(next) = root.source() {
                    root = next;
                }
                root
            }
            Error::Anyhow(error) => error.root_cause(),
            other => other,
        }
    }
}

/// Adds what was being done to an error (`anyhow`'s `Context`, for isr's [`Error`]).
///
/// ```
/// use isr_core::error::Context;
/// let missing: Option<u8> = None;
/// assert_eq!(missing.context("no such post").unwrap_err().to_string(), "no such post");
/// let parsed: isr_core::Result<u8> = "x".parse::<u8>().context("reading the page number");
/// assert_eq!(parsed.unwrap_err().to_string(), "reading the page number: invalid digit found in string");
/// ```
pub trait Context<T> {
    /// The error, with `context` around it.
    ///
    /// # Errors
    /// When `self` is an error (or `None`).
    fn context(self, context: impl Display) -> Result<T, Error>;

    /// Like [`Context::context`], the context made only on error.
    ///
    /// # Errors
    /// When `self` is an error (or `None`).
    fn with_context<C: Display>(self, context: impl FnOnce() -> C) -> Result<T, Error>;
}

impl<T, E: std::error::Error + Send + Sync + 'static> Context<T> for Result<T, E> {
    fn context(self, context: impl Display) -> Result<T, Error> {
        self.map_err(|error| Error::other(error).context(context))
    }

    fn with_context<C: Display>(self, context: impl FnOnce() -> C) -> Result<T, Error> {
        self.map_err(|error| Error::other(error).context(context()))
    }
}

impl<T> Context<T> for Option<T> {
    fn context(self, context: impl Display) -> Result<T, Error> {
        self.ok_or_else(|| Error::msg(context))
    }

    fn with_context<C: Display>(self, context: impl FnOnce() -> C) -> Result<T, Error> {
        self.ok_or_else(|| Error::msg(context()))
    }
}

impl From<anyhow::Error> for Error {
    fn from(error: anyhow::Error) -> Error {
        Error::Anyhow(error)
    }
}

impl From<Box<dyn std::error::Error + Send + Sync + 'static>> for Error {
    fn from(error: Box<dyn std::error::Error + Send + Sync + 'static>) -> Error {
        match error.downcast::<Error>() {
            Ok(ours) => *ours,
            Err(theirs) => Error::Other(theirs),
        }
    }
}

/// `?` on the errors loaders meet most: each becomes [`Error::Other`].
macro_rules! from_library_errors {
    ($($error:ty),* $(,)?) => {$(
        impl From<$error> for Error {
            fn from(error: $error) -> Error {
                Error::Other(Box::new(error))
            }
        }
    )*};
}

from_library_errors!(
    std::io::Error,
    serde_json::Error,
    std::fmt::Error,
    std::num::ParseIntError,
    std::num::ParseFloatError,
    std::str::Utf8Error,
    std::string::FromUtf8Error,
    std::str::ParseBoolError,
    tokio::task::JoinError,
    tokio::time::error::Elapsed,
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn contexts_nest_without_repeating_and_anyhow_keeps_its_chain() {
        let io = std::io::Error::new(std::io::ErrorKind::NotFound, "content/x.md: not found");
        let error = Error::from(io)
            .context("reading post x")
            .context("loader of /blog/:slug");
        assert_eq!(
            error.to_string(),
            "loader of /blog/:slug: reading post x: content/x.md: not found"
        );
        assert_eq!(format!("{error:#}"), error.to_string());
        let anyhow = anyhow::anyhow!("inner").context("outer");
        assert_eq!(Error::from(anyhow).to_string(), "outer: inner");
        // Another library's error keeps the causes it names, each once.
        #[derive(Debug)]
        struct Outer(std::io::Error);
        impl std::fmt::Display for Outer {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("error sending request")
            }
        }
        impl std::error::Error for Outer {
            fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
                Some(&self.0)
            }
        }
        let refused =
            std::io::Error::new(std::io::ErrorKind::ConnectionRefused, "connection refused");
        let error = Error::other(Outer(refused));
        assert_eq!(
            error.to_string(),
            "error sending request: connection refused"
        );
        assert!(error
            .root_cause()
            .downcast_ref::<std::io::Error>()
            .is_some());
        // Ours, boxed and back: not wrapped twice.
        let boxed: Box<dyn std::error::Error + Send + Sync> =
            Box::new(Error::msg("x").context("y"));
        assert!(matches!(Error::from(boxed), Error::Context { .. }));
    }
}
