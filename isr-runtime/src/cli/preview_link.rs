//! `<app> preview-link PATH [--ttl 1h] [--url ORIGIN]`: prints a signed preview link (see
//! [`crate::preview`]); nothing is sent to the site.

use super::args::Cli;
use super::DEFAULT_ADDR;

/// The link to print, made at `now` (Unix seconds).
///
/// # Errors
/// One line naming what to fix: no `ISR_PREVIEW_SECRET`, a path that is not on the site, a bad
/// `--ttl` or origin.
pub(super) fn preview_link(
    cli: &Cli,
    path: &str,
    ttl: Option<&str>,
    url: Option<&str>,
    now: u64,
) -> Result<String, String> {
    let secret = cli.preview_secret.as_ref().map(|s| s.0.as_str());
    let key = super::config::preview_key(secret)?.ok_or(
        "ISR_PREVIEW_SECRET is not set: preview links are signed with it (the site needs the same secret)",
    )?;
    if !crate::preview::is_local_path(path) {
        return Err(format!(
            "{path:?} is not a path on the site: expected one like /blog/draft"
        ));
    }
    let ttl = crate::preview::parse_ttl(ttl.unwrap_or("1h"))?;
    // The origin editors reach: a link is opened in a browser, so the public origin before
    // the instance's own address (`ISR_URL`, which the operator subcommands use).
    let instance_url = std::env::var("ISR_URL")
        .ok()
        .filter(|u| !u.trim().is_empty());
    let origin = if let Some(url) = url {
        crate::site::SiteUrl::parse(url).map_err(|e| format!("invalid --url: {e}"))?
    } else if let Some(public) = cli.public_url.as_deref() {
        crate::site::SiteUrl::parse(public)
            .map_err(|e| format!("invalid --public-url / ISR_PUBLIC_URL: {e}"))?
    } else if let Some(instance) = instance_url {
        crate::site::SiteUrl::parse(&instance).map_err(|e| format!("invalid ISR_URL: {e}"))?
    } else {
        let addr = cli.addr.as_deref().unwrap_or(DEFAULT_ADDR).trim();
        let unspecified = addr
            .parse::<std::net::SocketAddr>()
            .is_ok_and(|a| a.ip().is_unspecified());
        if unspecified {
            return Err(format!(
                "--addr {addr} is no address a browser can open: give the site's origin with --url or --public-url"
            ));
        }
        crate::site::SiteUrl::parse(&format!("http://{addr}"))
            .map_err(|e| format!("invalid --addr / LEPTOS_SITE_ADDR: {e}"))?
    };
    let expires = now.saturating_add(ttl.as_secs());
    Ok(format!(
        "{}?{}",
        origin.join(crate::preview::LINK_PATH),
        key.link_query(path, expires)
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    fn cli(args: &[&str]) -> Cli {
        Cli::try_parse_from(args).unwrap()
    }

    #[test]
    fn the_link_is_signed_for_the_path_and_its_end() {
        let cli = cli(&[
            "blog",
            "--preview-secret",
            "0123456789abcdef",
            "--public-url",
            "https://blog.example.com",
        ]);
        let link = preview_link(&cli, "/blog/draft", Some("10m"), None, 1_000).unwrap();
        let key = crate::preview::PreviewKey::new("0123456789abcdef").unwrap();
        let sig = key.link_signature("/blog/draft", 1_600);
        assert_eq!(
            link,
            format!(
                "https://blog.example.com/_isr/preview?path=%2Fblog%2Fdraft&expires=1600&sig={sig}"
            )
        );
        let elsewhere = preview_link(&cli, "/x", None, Some("http://127.0.0.1:4000"), 0).unwrap();
        assert!(
            elsewhere.starts_with("http://127.0.0.1:4000/_isr/preview?path=%2Fx&expires=3600&"),
            "{elsewhere}"
        );
    }

    #[test]
    fn what_to_fix_is_named() {
        let without = cli(&["blog"]);
        let error = preview_link(&without, "/x", None, None, 0).unwrap_err();
        assert!(error.contains("ISR_PREVIEW_SECRET is not set"), "{error}");
        let with = cli(&["blog", "--preview-secret", "0123456789abcdef"]);
        assert!(preview_link(&with, "//evil.example", None, None, 0)
            .unwrap_err()
            .contains("not a path on the site"));
        assert!(preview_link(&with, "/x", Some("1w"), None, 0)
            .unwrap_err()
            .contains("--ttl"));
        assert!(preview_link(&with, "/x", None, Some("ftp://x"), 0)
            .unwrap_err()
            .contains("invalid --url"));
        let anywhere = cli(&[
            "blog",
            "--preview-secret",
            "0123456789abcdef",
            "--addr",
            "0.0.0.0:3000",
        ]);
        assert!(preview_link(&anywhere, "/x", None, None, 0)
            .unwrap_err()
            .contains("--public-url"));
        let short = cli(&["blog", "--preview-secret", "short"]);
        assert!(preview_link(&short, "/x", None, None, 0)
            .unwrap_err()
            .contains("ISR_PREVIEW_SECRET is too short"));
    }
}
