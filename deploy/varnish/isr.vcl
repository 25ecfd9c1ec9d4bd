vcl 4.1;

# Varnish 7 in front of isr.
#
# - Keeps a page as long as isr's `cdn-cache-control` (RFC 9213, the directives for CDNs)
#   says: `max-age` minus `age`, then serves it stale for `stale-while-revalidate` while it
#   fetches the new one in the background — the same ISR rule, one tier further out. Both count
#   from the page's generation, so a page with an `expire` is never served past it: an answer
#   that arrives already stale keeps only what is left of its stale window. Past that, the
#   request goes to isr (which serves the old page within the page's `stale_if_error`, marked,
#   while its regeneration fails, and 503 after); when isr cannot be reached or answers 5xx,
#   this cache serves its own copy within the page's `stale-if-error` (RFC 5861, counted from
#   the end of `max-age`), never later.
# - isr compresses pages itself (gzip and brotli): this file keeps one object per page and
#   encoding (`br`, `gzip`, none) and passes the choice to isr, whatever `http_gzip_support` is.
# - isr purges what changed the moment it changes, by surrogate key (the xkey vmod of Debian's
#   `varnish-modules`): every object is indexed by the keys of its `surrogate-key` (the page's
#   tags and its path), and `PURGE /` from an address in `purgers` with `xkey-softpurge: <keys>`
#   marks every object carrying one of them stale (served while the refetch runs, like any
#   stale object: see vcl_hit), with `xkey-purge: <keys>` removes them (a page gone, an
#   `expire` invalidation). One request purges a tag of any number of pages. `PURGE <path>`
#   still removes every encoding of one page. Point `--cdn-purge http://<varnish>` at this
#   server and set `--public-host` to the Host your users use.
# - A loader's 404 is kept only for isr's recheck window (no grace); 5xx are never cached.
#
# Replace the backend address with isr's (`--addr`).

import std;
import xkey;

backend isr {
    .host = "127.0.0.1";
    .port = "3000";
}

acl purgers {
    "127.0.0.1";
    "::1";
}

sub vcl_recv {
    # These say how this cache handles a request on its restarts: a client never sets them
    # (forcing a fetch for every request, or a stale copy).
    if (req.restarts == 0) {
        unset req.http.X-ISR-Refresh;
        unset req.http.X-ISR-Stale-If-Error;
    }
    # A request whose copy is past its stale-while-revalidate (see vcl_hit) fetches isr's
    # answer now (no grace: a miss that replaces the copy when it succeeds, and that requests
    # for the same page wait on together); after that fetch failed, it takes the copy within
    # stale-if-error.
    if (req.http.X-ISR-Refresh && !req.http.X-ISR-Stale-If-Error) {
        set req.grace = 0s;
    } elsif (req.http.X-ISR-Stale-If-Error) {
        # The limit of the refresh pass no longer holds: the object's own grace does.
        set req.grace = 3650d;
    }
    if (req.method == "PURGE") {
        if (client.ip !~ purgers) {
            return (synth(403, "Forbidden"));
        }
        if (req.http.xkey-softpurge) {
            set req.http.X-ISR-Purged = xkey.softpurge(req.http.xkey-softpurge);
            return (synth(200, "Soft-purged " + req.http.X-ISR-Purged));
        }
        if (req.http.xkey-purge) {
            set req.http.X-ISR-Purged = xkey.purge(req.http.xkey-purge);
            return (synth(200, "Purged " + req.http.X-ISR-Purged));
        }
        # A variant's URL, sorted as requests' are below (isr sorts by name only).
        set req.url = std.querysort(req.url);
        return (purge);
    }
    if (req.method != "GET" && req.method != "HEAD") {
        return (pass);
    }
    # isr's own endpoints (webhook, metrics, preview links) are never cached.
    if (req.url ~ "^/_isr(/|$)") {
        return (pass);
    }
    # An editor's preview (the cookie a signed preview link sets; its shape checked here, its
    # signature by isr): isr renders the page for this request only (`private, no-store`); it
    # goes there with its cookie and is never stored here, and no stored copy answers it. A
    # forged cookie of the right shape gets the public page from isr, also uncached. The
    # bundle and assets are the same for everyone: they stay cached.
    if (req.url !~ "^/(pkg|assets)/"
            && req.http.Cookie ~ "(^|;)\s*isr_preview=[0-9]{1,20}\.[0-9a-f]{64}\s*(;|$)") {
        return (pass);
    }
    # Pages ignore query strings: one object per page, at the URL isr purges. Except on the
    # routes with `query = [...]` (the blog's `/blog`, with `page` and `tag`: list your app's
    # routes and parameters in the two patterns below): there the listed parameters are kept,
    # every other one (utm_*, fbclid, …) is dropped and the query sorted (isr redirects other
    # spellings of the listed values to the canonical one), so each variant is one object, at
    # the URL isr purges. Only the query is rewritten, never the path.
    if (req.url ~ "^/blog(\?|$)") {
        set req.http.X-ISR-Query = regsub(req.url, "^[^?]*\??", "&");
        set req.http.X-ISR-Query = regsuball(req.http.X-ISR-Query, "&(?!(page|tag)=)[^&]*", "");
        set req.url = regsub(req.url, "\?.*$", "") + regsub(req.http.X-ISR-Query, "^&", "?");
        unset req.http.X-ISR-Query;
        set req.url = std.querysort(req.url);
    } elsif (req.url !~ "^/pkg/") {
        set req.url = regsub(req.url, "\?.*$", "");
    }
    # Pages are the same for every user.
    unset req.http.Cookie;
    # The encoding isr will answer with (it prefers br, then gzip).
    if (req.http.Accept-Encoding ~ "(?i)\bbr\b") {
        set req.http.X-ISR-Encoding = "br";
    } elsif (req.http.Accept-Encoding ~ "(?i)\bgzip\b") {
        set req.http.X-ISR-Encoding = "gzip";
    } else {
        set req.http.X-ISR-Encoding = "identity";
    }
    return (hash);
}

sub vcl_backend_fetch {
    # This cache's own bookkeeping is not isr's business.
    unset bereq.http.X-ISR-Refresh;
    unset bereq.http.X-ISR-Stale-If-Error;
    # Varnish rewrites Accept-Encoding to gzip on a miss when http_gzip_support is on: ask isr
    # for the encoding this object is for.
    if (bereq.http.X-ISR-Encoding == "identity") {
        unset bereq.http.Accept-Encoding;
    } else {
        set bereq.http.Accept-Encoding = bereq.http.X-ISR-Encoding;
    }
    # X-ISR-Encoding stays: Varnish stores each variant under the value the fetch had.
}

sub vcl_backend_response {
    # The object's keys for xkey: isr's `surrogate-key` (space-separated).
    if (beresp.http.surrogate-key) {
        set beresp.http.xkey = beresp.http.surrogate-key;
    }
    if (beresp.status >= 500) {
        set beresp.uncacheable = true;
        set beresp.ttl = 0s;
        return (deliver);
    }
    if (beresp.http.CDN-Cache-Control ~ "(^|[ ,])max-age=[0-9]+") {
        # Objects vary by the encoding chosen above (Accept-Encoding itself is rewritten by
        # Varnish); vcl_deliver shows clients isr's own `vary`.
        if (beresp.http.Vary ~ "(?i)accept-encoding") {
            set beresp.http.Vary = "X-ISR-Encoding";
        }
        # The time left: max-age minus the page's age (`cache-control` says the same to caches
        # that read only it, with `must-revalidate` for browsers, which this cache is not).
        set beresp.ttl = std.duration(
                regsub(beresp.http.CDN-Cache-Control, "^(.*[ ,])?max-age=([0-9]+).*$", "\2s"),
                0s)
            - std.duration(regsub(beresp.http.Age, "^([0-9]+).*$", "\1s"), 0s);
        # Two windows after max-age, both counted from its end: stale-while-revalidate (served
        # at once, refetched in the background) and stale-if-error (served only when isr
        # cannot answer). The object lives for the longer; vcl_hit tells them apart.
        set beresp.http.X-ISR-SWR = "0s";
        if (beresp.http.CDN-Cache-Control ~ "stale-while-revalidate=[0-9]+") {
            set beresp.http.X-ISR-SWR = regsub(beresp.http.CDN-Cache-Control,
                "^.*stale-while-revalidate=([0-9]+).*$", "\1s");
        }
        set beresp.grace = std.duration(beresp.http.X-ISR-SWR, 0s);
        if (beresp.http.CDN-Cache-Control ~ "stale-if-error=[0-9]+") {
            set beresp.grace = std.duration(
                regsub(beresp.http.CDN-Cache-Control, "^.*stale-if-error=([0-9]+).*$", "\1s"),
                0s);
            if (beresp.grace < std.duration(beresp.http.X-ISR-SWR, 0s)) {
                set beresp.grace = std.duration(beresp.http.X-ISR-SWR, 0s);
            }
        }
        # A page answered stale by isr arrives already stale (its age is past max-age): keep
        # it for what is left of its windows only (never past the page's `expire` and
        # `stale_if_error`), and fetch again on the next request.
        if (beresp.ttl < 0s) {
            set beresp.grace = beresp.grace + beresp.ttl;
            set beresp.http.X-ISR-SWR =
                "" + (std.duration(beresp.http.X-ISR-SWR, 0s) + beresp.ttl) + "s";
            set beresp.ttl = 0s;
        }
        if (beresp.grace < 0s) {
            set beresp.grace = 0s;
        }
        set beresp.keep = 0s;
        return (deliver);
    }
}

sub vcl_hit {
    # Fresh, or an object this file did not give windows to (assets, or one cached before
    # this file was loaded): Varnish's own rules.
    if (obj.ttl >= 0s || !obj.http.X-ISR-SWR) {
        return (deliver);
    }
    # Within stale-while-revalidate: the copy at once, isr's answer fetched in the background.
    if (obj.ttl + std.duration(obj.http.X-ISR-SWR, 0s) > 0s) {
        return (deliver);
    }
    # Within stale-if-error, after isr failed this request: the copy.
    if (req.http.X-ISR-Stale-If-Error) {
        return (deliver);
    }
    # Past stale-while-revalidate: isr's answer now (it decides what may still be served).
    set req.http.X-ISR-Refresh = "1";
    return (restart);
}

sub vcl_deliver {
    # isr could not answer a request whose copy is past stale-while-revalidate: try the copy
    # within stale-if-error (one more lookup; a copy past it is gone, and the 5xx stands).
    if (resp.status >= 500 && req.http.X-ISR-Refresh && !req.http.X-ISR-Stale-If-Error) {
        set req.http.X-ISR-Stale-If-Error = "1";
        return (restart);
    }
    unset resp.http.X-ISR-SWR;
    unset resp.http.xkey;
    if (resp.http.Vary ~ "X-ISR-Encoding") {
        set resp.http.Vary = "accept-encoding";
    }
}
