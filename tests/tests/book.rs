//! The book (`book/`) and the README cannot rot:
//! - every Rust example is an mdBook `{{#include}}` of a file CI compiles and tests (the
//!   starter, the examples, `book/snippets`), never inline code; every include names a file
//!   and an anchor that exist;
//! - every chapter is in `SUMMARY.md` and every file it names exists;
//! - every link between chapters (and from the README) reaches a file, and its `#fragment` a
//!   heading of that file;
//! - the README stays a front door (at most 200 lines).
//!
//! `scripts/test.sh` also runs `mdbook build book` (mdBook fails on a missing chapter or
//! include file; this test is what catches a missing anchor, which mdBook renders as nothing).

use std::collections::HashSet;
use std::path::{Path, PathBuf};

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

fn book_src() -> PathBuf {
    repo().join("book/src")
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// The chapters `SUMMARY.md` names, in its order.
fn summary_chapters() -> Vec<String> {
    let summary = read(&book_src().join("SUMMARY.md"));
    summary
        .lines()
        .filter_map(|line| {
            let start = line.find("](")? + 2;
            let end = start + line[start..].find(')')?;
            Some(line[start..end].to_string())
        })
        .collect()
}

fn chapter_files() -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(book_src())
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .filter(|path| {
            path.extension().is_some_and(|ext| ext == "md") && !path.ends_with("SUMMARY.md")
        })
        .collect();
    files.sort();
    files
}

/// A fenced block: its info string, its lines and the line its fence opened on (1-based).
struct Fence {
    info: String,
    lines: Vec<String>,
    line: usize,
}

fn fences(text: &str) -> Vec<Fence> {
    let mut out = Vec::new();
    let mut open: Option<Fence> = None;
    for (n, line) in text.lines().enumerate() {
        let trimmed = line.trim_start();
        match open.take() {
            None if trimmed.starts_with("```") => {
                open = Some(Fence {
                    info: trimmed[3..].trim().to_string(),
                    lines: Vec::new(),
                    line: n + 1,
                });
            }
            None => {}
            Some(fence) if trimmed.starts_with("```") => out.push(fence),
            Some(mut fence) => {
                fence.lines.push(line.to_string());
                open = Some(fence);
            }
        }
    }
    assert!(open.is_none(), "an unclosed code fence");
    out
}

/// The `{{#include path[:anchor]}}` (or `rustdoc_include`) of a line, if it is one.
fn include_of(line: &str) -> Option<(String, Option<String>)> {
    let line = line.trim();
    let inner = line
        .strip_prefix("{{#include ")
        .or_else(|| line.strip_prefix("{{#rustdoc_include "))?;
    let inner = inner.strip_suffix("}}")?.trim();
    Some(match inner.split_once(':') {
        Some((path, anchor)) => (path.to_string(), Some(anchor.to_string())),
        None => (inner.to_string(), None),
    })
}

/// mdBook's heading id: lowercase alphanumerics, `-` and `_` kept, whitespace as `-`, the rest
/// dropped (from the heading's text, without inline markup).
fn heading_id(heading: &str) -> String {
    let mut text = String::new();
    let mut rest = heading;
    // `[text](url)` → `text`.
    while let Some(open) = rest.find('[') {
        text.push_str(&rest[..open]);
        let after = &rest[open + 1..];
        match (after.find("]("), after.find(')')) {
            (Some(close), Some(end)) if close < end => {
                text.push_str(&after[..close]);
                rest = &after[end + 1..];
            }
            _ => {
                text.push('[');
                rest = after;
            }
        }
    }
    text.push_str(rest);
    text.chars()
        .filter_map(|ch| {
            if ch.is_alphanumeric() || ch == '_' || ch == '-' {
                Some(ch.to_lowercase().next().unwrap())
            } else if ch.is_whitespace() {
                Some('-')
            } else {
                None
            }
        })
        .collect()
}

/// The ids of a Markdown file's headings (outside code fences), with mdBook's `-1`, `-2`
/// suffixes for repeated ones.
fn heading_ids(text: &str) -> HashSet<String> {
    let mut ids = HashSet::new();
    let mut in_fence = false;
    for line in text.lines() {
        if line.trim_start().starts_with("```") {
            in_fence = !in_fence;
            continue;
        }
        if in_fence || !line.starts_with('#') {
            continue;
        }
        let heading = line.trim_start_matches('#');
        if !heading.starts_with(' ') {
            continue;
        }
        let id = heading_id(heading.trim());
        let mut unique = id.clone();
        let mut n = 1;
        while !ids.insert(unique.clone()) {
            unique = format!("{id}-{n}");
            n += 1;
        }
    }
    ids
}

/// Relative links of a Markdown text outside code fences and code spans: `(target, line)`.
fn links(text: &str) -> Vec<(String, usize)> {
    let mut out = Vec::new();
    let mut in_fence = false;
    for (n, line) in text.lines().enumerate() {
        if line.trim_start().starts_with("```") {
            in_fence = !in_fence;
            continue;
        }
        if in_fence {
            continue;
        }
        // Drop code spans, whose brackets are not links.
        let mut plain = String::new();
        for (i, part) in line.split('`').enumerate() {
            if i % 2 == 0 {
                plain.push_str(part);
            }
        }
        let mut rest = plain.as_str();
        while let Some(at) = rest.find("](") {
            let after = &rest[at + 2..];
            let Some(end) = after.find(')') else { break };
            let target = after[..end].trim();
            if !target.contains("://") && !target.starts_with("mailto:") {
                out.push((target.to_string(), n + 1));
            }
            rest = &after[end..];
        }
    }
    out
}

/// Checks that a relative link from `from` (a Markdown file) reaches a file and a heading.
fn check_link(from: &Path, target: &str, line: usize, problems: &mut Vec<String>) {
    let (file, fragment) = match target.split_once('#') {
        Some((file, fragment)) => (file, Some(fragment)),
        None => (target, None),
    };
    let path = if file.is_empty() {
        from.to_path_buf()
    } else {
        from.parent().unwrap().join(file)
    };
    if !path.exists() {
        problems.push(format!(
            "{}:{line}: link to {target}: no such file",
            from.display()
        ));
        return;
    }
    if let Some(fragment) = fragment {
        if path.extension().is_some_and(|ext| ext == "md")
            && !heading_ids(&read(&path)).contains(fragment)
        {
            problems.push(format!(
                "{}:{line}: link to {target}: no such heading",
                from.display()
            ));
        }
    }
}

#[test]
fn every_chapter_is_in_the_summary_and_every_summary_entry_exists() {
    let named: Vec<String> = summary_chapters();
    assert!(named.len() >= 10, "{named:?}");
    for chapter in &named {
        assert!(
            book_src().join(chapter).is_file(),
            "SUMMARY.md names {chapter}, which does not exist"
        );
    }
    for file in chapter_files() {
        let name = file.file_name().unwrap().to_str().unwrap().to_string();
        assert!(
            named.contains(&name),
            "{name} is not in SUMMARY.md: readers would never reach it"
        );
    }
}

/// The lines between `ANCHOR: name` and `ANCHOR_END: name` of `source` (what mdBook shows),
/// if both are there, in that order.
fn anchored<'a>(source: &'a str, name: &str) -> Option<Vec<&'a str>> {
    let (begin, end) = (format!("ANCHOR: {name}"), format!("ANCHOR_END: {name}"));
    let mut lines = source.lines();
    lines
        .by_ref()
        .find(|line| line.trim_end().ends_with(&begin))?;
    let mut region = Vec::new();
    for line in lines {
        if line.trim_end().ends_with(&end) {
            return Some(region);
        }
        region.push(line);
    }
    None
}

/// What is wrong with an `{{#include path[:anchor]}}` of `chapter`, if anything.
fn include_problem(chapter: &Path, path: &str, anchor: Option<&str>) -> Option<String> {
    let Ok(source) = std::fs::read_to_string(chapter.parent().unwrap().join(path)) else {
        return Some(format!("includes {path}: no such file"));
    };
    let anchor = anchor?;
    if anchor
        .split(':')
        .all(|part| part.is_empty() || part.parse::<u32>().is_ok())
    {
        return Some(format!(
            "includes {path}:{anchor}: line numbers rot, name an anchor"
        ));
    }
    anchored(&source, anchor)
        .is_none()
        .then(|| format!("includes {path}:{anchor}: no such anchor (ANCHOR: and ANCHOR_END:)"))
}

#[test]
fn rust_examples_are_includes_of_compiled_files_with_existing_anchors() {
    let mut problems = Vec::new();
    let mut includes = 0;
    for file in chapter_files() {
        for fence in fences(&read(&file)) {
            let is_rust = fence
                .info
                .split(',')
                .next()
                .is_some_and(|lang| lang.trim() == "rust");
            let at = |problem: String| format!("{}:{}: {problem}", file.display(), fence.line);
            for line in &fence.lines {
                match include_of(line) {
                    Some((path, anchor)) => {
                        includes += 1;
                        problems.extend(include_problem(&file, &path, anchor.as_deref()).map(at));
                    }
                    None if is_rust && !line.trim().is_empty() => {
                        problems.push(at(format!(
                            "inline Rust ({}): include it from compiled code instead",
                            line.trim()
                        )));
                        break;
                    }
                    None => {}
                }
            }
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
    assert!(
        includes >= 10,
        "the book shows too little code: {includes} includes"
    );
}

#[test]
fn links_between_chapters_reach_their_files_and_headings() {
    let mut problems = Vec::new();
    let mut checked = 0;
    for file in chapter_files() {
        for (target, line) in links(&read(&file)) {
            checked += 1;
            check_link(&file, &target, line, &mut problems);
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
    assert!(checked >= 20, "only {checked} links between chapters");
}

#[test]
fn the_readme_is_a_front_door_whose_links_resolve() {
    let readme = repo().join("README.md");
    let text = read(&readme);
    let lines = text.lines().count();
    assert!(
        lines <= 200,
        "README.md has {lines} lines: move the detail into the book"
    );
    let mut problems = Vec::new();
    let targets = links(&text);
    for (target, line) in &targets {
        check_link(&readme, target, *line, &mut problems);
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
    assert!(
        targets
            .iter()
            .filter(|(target, _)| target.starts_with("book/src/"))
            .count()
            >= 8,
        "the README links into the book"
    );
}

#[test]
fn heading_ids_follow_mdbook() {
    assert_eq!(heading_id("What to alert on"), "what-to-alert-on");
    assert_eq!(heading_id("`#[page]` reference"), "page-reference");
    assert_eq!(
        heading_id("Behind [nginx](x.md) & Varnish"),
        "behind-nginx--varnish"
    );
    let ids = heading_ids("# A\n```\n# not a heading\n```\n## A\n");
    assert!(
        ids.contains("a") && ids.contains("a-1") && !ids.contains("not-a-heading"),
        "{ids:?}"
    );
}

#[test]
fn the_readme_page_is_the_compiled_snippet() {
    let readme = read(&repo().join("README.md"));
    let block = fences(&readme)
        .into_iter()
        .find(|fence| fence.info == "rust")
        .expect("the README shows a page in Rust");
    let snippet = read(&repo().join("book/snippets/src/readme.rs"));
    let compiled = anchored(&snippet, "page").expect("the snippet's `page` anchor");
    assert_eq!(
        block.lines.iter().map(String::as_str).collect::<Vec<_>>(),
        compiled,
        "README.md's page differs from book/snippets/src/readme.rs (the compiled one)"
    );
    assert!(compiled.len() <= 25, "a page in 20 lines");
}

#[test]
fn anchored_regions_are_the_lines_between_their_markers() {
    let source = "a\n// ANCHOR: x\nb\n// ANCHOR: y\nc\n// ANCHOR_END: y\n// ANCHOR_END: x\n// ANCHOR_END: z\n// ANCHOR: z\n";
    assert_eq!(anchored(source, "y"), Some(vec!["c"]));
    assert_eq!(anchored(source, "x").map(|r| r.len()), Some(4));
    assert_eq!(anchored(source, "z"), None, "an end before its beginning");
    assert_eq!(anchored(source, "w"), None);
}
