//! Content-Security-Policy: a page's scripts are isr's and the app's, never its data's.
//!
//! isr escapes every text it writes, so a title or a product name is never markup; a policy is
//! the second line: even markup that got in some other way (a view that sets `inner_html` from
//! data, say) cannot run script. [`ContentSecurityPolicy::strict`] allows scripts from the
//! site's own origin (the client bundle under `/pkg`) and, by their SHA-256 hashes, exactly the
//! inline scripts isr and the app write into every document (the hydration call, the app's
//! [`Shell::head`](crate::Shell::head) scripts, cargo-leptos's live reload): no
//! `'unsafe-inline'` for scripts. The hashes are computed when the document is rendered, so a
//! stored page always carries the policy of its own scripts.
//!
//! Pages carry it as `<meta http-equiv="content-security-policy">` (so the static export keeps
//! it on any file server); isr's own `/_isr/` pages send it as a header, with
//! `frame-ancestors 'none'` (which a `<meta>` policy cannot carry).

use base64::Engine as _;
use sha2::{Digest, Sha256};

/// A Content-Security-Policy: directives in order, each with its sources.
///
/// ```
/// let policy = isr::ContentSecurityPolicy::strict().directive("img-src", "'self' https://images.example.com");
/// let text = policy.render(&["'sha256-abc='".to_string()]);
/// assert!(text.starts_with("default-src 'self'; script-src 'self' 'wasm-unsafe-eval' 'sha256-abc='"), "{text}");
/// assert!(text.contains("img-src 'self' https://images.example.com"), "{text}");
/// assert!(!text.contains("unsafe-inline'; script") && !text.contains("script-src 'unsafe-inline'"));
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ContentSecurityPolicy {
    directives: Vec<(String, String)>,
}

impl ContentSecurityPolicy {
    /// Scripts only from the site itself and by hash; everything else from the site itself
    /// (styles also inline: leptos_meta's `<Style>` and `style:` attributes write them; images
    /// also as `data:` URLs); no plugins, no `<base>`, forms only to the site.
    ///
    /// `'wasm-unsafe-eval'` lets the client bundle compile its WebAssembly; it allows no
    /// JavaScript `eval`.
    pub fn strict() -> Self {
        let directives = [
            ("default-src", "'self'"),
            ("script-src", "'self' 'wasm-unsafe-eval'"),
            ("style-src", "'self' 'unsafe-inline'"),
            ("img-src", "'self' data:"),
            ("object-src", "'none'"),
            ("base-uri", "'none'"),
            ("form-action", "'self'"),
        ];
        ContentSecurityPolicy {
            directives: directives
                .into_iter()
                .map(|(name, sources)| (name.to_owned(), sources.to_owned()))
                .collect(),
        }
    }

    /// Sets one directive's sources (replacing what it had), e.g. `("img-src", "'self'
    /// https://cdn.example.com")`. The hashes of isr's inline scripts are always added to
    /// `script-src`.
    ///
    /// ```
    /// let policy = isr::ContentSecurityPolicy::strict().directive("connect-src", "'self' https://api.example.com");
    /// assert!(policy.render(&[]).ends_with("connect-src 'self' https://api.example.com"));
    /// ```
    pub fn directive(mut self, name: &str, sources: &str) -> Self {
        let name = name.trim().to_ascii_lowercase();
        let sources = sources.trim().to_owned();
        match self.directives.iter_mut().find(|(n, _)| *n == name) {
            Some(directive) => directive.1 = sources,
            None => self.directives.push((name, sources)),
        }
        self
    }

    /// The policy's text with `script_hashes` (`'sha256-…'` sources) added to `script-src`.
    pub fn render(&self, script_hashes: &[String]) -> String {
        let mut text = String::new();
        for (name, sources) in &self.directives {
            if !text.is_empty() {
                text.push_str("; ");
            }
            text.push_str(name);
            if !sources.is_empty() {
                text.push(' ');
                text.push_str(sources);
            }
            if name == "script-src" {
                for hash in script_hashes {
                    text.push(' ');
                    text.push_str(hash);
                }
            }
        }
        text
    }
}

/// The CSP source of an inline script with this content: `'sha256-<base64>'`.
///
/// ```
/// // The hash browsers print for `<script>alert(1)</script>` when a policy blocks it.
/// assert_eq!(isr::csp::script_hash("alert(1)"), "'sha256-bhHHL3z2vDgxUt0W3dWQOrprscmda2Y5pLsLg4GF+pI='");
/// ```
pub fn script_hash(content: &str) -> String {
    let digest = Sha256::digest(content.as_bytes());
    format!(
        "'sha256-{}'",
        base64::engine::general_purpose::STANDARD.encode(digest)
    )
}

/// The hashes of the inline scripts (no `src`) in `html`, a fragment the app or isr wrote
/// (never one that holds page data: every script in it is allowed to run).
///
/// ```
/// let hashes = isr::csp::inline_script_hashes(r#"<script>a()</script><script src="/x.js"></script><SCRIPT type="module">b()</SCRIPT>"#);
/// assert_eq!(hashes, vec![isr::csp::script_hash("a()"), isr::csp::script_hash("b()")]);
/// ```
pub fn inline_script_hashes(html: &str) -> Vec<String> {
    let lower = html.to_ascii_lowercase();
    let mut hashes = Vec::new();
    let mut from = 0;
    while let Some(start) = lower[from..].find("<script").map(|i| from + i) {
        let Some(open_end) = lower[start..].find('>').map(|i| start + i + 1) else {
            break;
        };
        let Some(close) = lower[open_end..].find("</script").map(|i| open_end + i) else {
            break;
        };
        if !lower[start..open_end].contains(" src=") {
            hashes.push(script_hash(&html[open_end..close]));
        }
        from = close;
    }
    hashes
}
