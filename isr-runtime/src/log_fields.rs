//! Log fields written so that one event is always one line, and a field's text can neither
//! forge a line nor drive a terminal.
//!
//! Request paths and loader error texts come from clients and data sources: a path with
//! `%0d%0a` (CR LF) decodes into a key that would start a forged log line, an ESC sequence would
//! recolour or clear an operator's terminal, a bidi override (U+202E) would reorder what the
//! operator reads. [`EscapedFields`] formats every field of every event and span (isr's and the
//! app's) with [`escape`] applied to its value.

use std::fmt::{self, Write as _};
use tracing::field::{Field, Visit};
use tracing_subscriber::field::RecordFields;
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::FormatFields;

/// Whether `c` is written escaped: C0 controls (line breaks and tabs included), DEL, C1
/// controls, the bidi embedding/override/isolate marks and the Unicode line and paragraph
/// separators.
fn needs_escape(c: char) -> bool {
    c.is_control()
        || matches!(
            c,
            '\u{061C}' | '\u{200E}' | '\u{200F}' | '\u{202A}'..='\u{202E}' | '\u{2028}' | '\u{2029}'
                | '\u{2066}'..='\u{2069}'
        )
}

/// `text` with every character `needs_escape` names written as `\u{…}` (`\n`, `\r` and
/// `\t` as such), and `\` doubled, so the escaped form reads back unambiguously.
///
/// ```
/// use isr::log_fields::escape;
/// assert_eq!(escape("/blog/x\r\nINFO forged"), "/blog/x\\r\\nINFO forged");
/// assert_eq!(escape("\u{1b}[2J"), "\\u{1b}[2J");
/// assert_eq!(escape("abc\u{202e}txt.exe"), "abc\\u{202e}txt.exe");
/// assert_eq!(escape("C1 \u{85} and a\\b"), "C1 \\u{85} and a\\\\b");
/// assert_eq!(escape("/blog/été"), "/blog/été");
/// ```
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let _ = Escaping(&mut out).write_str(text);
    out
}

/// A `fmt::Write` that escapes what goes through it (see [`escape`]) on its way to the inner
/// writer: a field is escaped while it is formatted, with no copy of it.
struct Escaping<W>(W);

impl<W: fmt::Write> fmt::Write for Escaping<W> {
    fn write_str(&mut self, text: &str) -> fmt::Result {
        let mut rest = text;
        while let Some((at, c)) = rest
            .char_indices()
            .find(|&(_, c)| c == '\\' || needs_escape(c))
        {
            self.0.write_str(&rest[..at])?;
            match c {
                '\\' => self.0.write_str("\\\\")?,
                '\n' => self.0.write_str("\\n")?,
                '\r' => self.0.write_str("\\r")?,
                '\t' => self.0.write_str("\\t")?,
                c => write!(self.0, "\\u{{{:x}}}", c as u32)?,
            }
            rest = &rest[at + c.len_utf8()..];
        }
        self.0.write_str(rest)
    }
}

/// Formats fields as tracing-subscriber's default does (`message` first and bare, the others
/// as `name=value`), every value [`escape`]d.
///
/// ```
/// let subscriber = tracing_subscriber::fmt().fmt_fields(isr::log_fields::EscapedFields).finish();
/// # let _ = subscriber;
/// ```
#[derive(Clone, Copy, Debug, Default)]
pub struct EscapedFields;

impl<'writer> FormatFields<'writer> for EscapedFields {
    fn format_fields<R: RecordFields>(&self, writer: Writer<'writer>, fields: R) -> fmt::Result {
        let mut visitor = EscapingVisitor {
            writer,
            first: true,
            result: Ok(()),
        };
        fields.record(&mut visitor);
        visitor.result
    }
}

struct EscapingVisitor<'writer> {
    writer: Writer<'writer>,
    first: bool,
    result: fmt::Result,
}

impl EscapingVisitor<'_> {
    /// Writes one field (`value` formatted through [`Escaping`]); a string field other than
    /// the message is quoted, as by default.
    fn field(&mut self, field: &Field, value: fmt::Arguments<'_>, quoted: bool) {
        if self.result.is_err() {
            return;
        }
        let separator = if self.first { "" } else { " " };
        self.first = false;
        self.result = (|| {
            self.writer.write_str(separator)?;
            if field.name() != "message" {
                self.writer.write_str(field.name())?;
                self.writer.write_str(if quoted { "=\"" } else { "=" })?;
            }
            Escaping(&mut self.writer).write_fmt(value)?;
            if quoted && field.name() != "message" {
                self.writer.write_str("\"")?;
            }
            Ok(())
        })();
    }
}

impl Visit for EscapingVisitor<'_> {
    fn record_str(&mut self, field: &Field, value: &str) {
        self.field(field, format_args!("{value}"), true);
    }

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        self.field(field, format_args!("{value:?}"), false);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Arc, Mutex};

    #[derive(Clone, Default)]
    struct Captured(Arc<Mutex<Vec<u8>>>);

    impl std::io::Write for Captured {
        fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(bytes);
            Ok(bytes.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn an_event_with_hostile_fields_is_one_escaped_line() {
        let captured = Captured::default();
        let writer = captured.clone();
        let subscriber = tracing_subscriber::fmt()
            .fmt_fields(EscapedFields)
            .with_ansi(false)
            .with_writer(move || writer.clone())
            .finish();
        tracing::subscriber::with_default(subscriber, || {
            let span = tracing::info_span!("request", path = %"/blog/\u{1b}[31mred\u{202e}");
            let _entered = span.enter();
            let error = "db down\r\n2026-12-06T00:00:00Z  INFO isr: forged";
            tracing::warn!(path = %"/x\n", error = %error, count = 3, tag = "a\"b\nc", "loader failed\u{85}");
        });
        let text = String::from_utf8(captured.0.lock().unwrap().clone()).unwrap();
        assert_eq!(text.matches('\n').count(), 1, "one line: {text:?}");
        assert!(!text.contains('\u{1b}') && !text.contains('\u{202e}') && !text.contains('\r'));
        assert!(
            text.contains("path=/blog/\\u{1b}[31mred\\u{202e}"),
            "{text}"
        );
        assert!(text.contains("loader failed\\u{85}"), "{text}");
        assert!(
            text.contains("error=db down\\r\\n2026-12-06T00:00:00Z  INFO isr: forged"),
            "{text}"
        );
        assert!(text.contains("count=3"), "{text}");
        assert!(text.contains("tag=\"a\"b\\nc\""), "{text}");
    }
}
