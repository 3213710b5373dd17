//! The documentation's links resolve: every relative link in `README.md` and
//! `docs/**/*.md` names a file that exists, every `#anchor` names a heading of
//! its target (GitHub's slugs), and every external link is a well-formed
//! `http(s)://` URL (not fetched). Links inside code blocks and code spans are
//! not links, so the markdown is parsed rather than searched.
//!
//! Code spans that name a repository path (`src/state/table.rs`,
//! `tests/web/`, `pipelines/demo.yaml`) must name one that exists, so that the
//! docs follow files when they move.

use std::collections::{HashMap, HashSet};
use std::path::{Component, Path, PathBuf};

use pulldown_cmark::{Event, Options, Parser, Tag, TagEnd};

/// The README is the newcomer's first screen: the rest belongs in `docs/`.
const README_MAX_BYTES: u64 = 25_000;

fn options() -> Options {
    Options::ENABLE_TABLES
        | Options::ENABLE_STRIKETHROUGH
        | Options::ENABLE_TASKLISTS
        | Options::ENABLE_FOOTNOTES
}

/// GitHub's anchor for a heading's text: lowercase, every character that is
/// not a letter, a digit, a space, `-` or `_` dropped, each space a `-`.
fn slug(text: &str) -> String {
    text.trim()
        .chars()
        .flat_map(char::to_lowercase)
        .filter_map(|c| match c {
            ' ' => Some('-'),
            '-' | '_' => Some(c),
            c if c.is_alphanumeric() => Some(c),
            _ => None,
        })
        .collect()
}

/// The anchors of a markdown text's headings, numbered as GitHub numbers
/// repeats: `a`, `a-1`, `a-2`.
fn anchors(markdown: &str) -> HashSet<String> {
    let mut found = HashSet::new();
    let mut seen: HashMap<String, usize> = HashMap::new();
    let mut heading: Option<String> = None;
    for event in Parser::new_ext(markdown, options()) {
        match event {
            Event::Start(Tag::Heading { .. }) => heading = Some(String::new()),
            Event::Text(t) | Event::Code(t) => {
                if let Some(h) = heading.as_mut() {
                    h.push_str(&t);
                }
            }
            Event::End(TagEnd::Heading(_)) => {
                if let Some(h) = heading.take() {
                    let base = slug(&h);
                    let n = seen.entry(base.clone()).or_insert(0);
                    found.insert(if *n == 0 {
                        base.clone()
                    } else {
                        format!("{base}-{n}")
                    });
                    *n += 1;
                }
            }
            _ => {}
        }
    }
    found
}

/// Every link and image of a markdown text: (line, destination).
fn links(markdown: &str) -> Vec<(usize, String)> {
    let line_of = |offset: usize| markdown[..offset].matches('\n').count() + 1;
    Parser::new_ext(markdown, options())
        .into_offset_iter()
        .filter_map(|(event, range)| match event {
            Event::Start(Tag::Link { dest_url, .. })
            | Event::Start(Tag::Image { dest_url, .. }) => {
                Some((line_of(range.start), dest_url.to_string()))
            }
            _ => None,
        })
        .collect()
}

/// The top-level folders whose paths the docs' code spans name.
const REPOSITORY_FOLDERS: [&str; 7] = [
    "src/",
    "tests/",
    "benches/",
    "pipelines/",
    "scripts/",
    "schemas/",
    "examples/",
];

/// Every inline code span of a markdown text that looks like a repository
/// path: (line, path). A span counts when it starts with one of
/// [`REPOSITORY_FOLDERS`] (after an optional `./`) and has no whitespace, no
/// `<` (a placeholder) and no `*` (a glob); a trailing `:<line>` or
/// `::<item>` (`tests/apps.rs::a_test`) is dropped.
fn repository_paths(markdown: &str) -> Vec<(usize, String)> {
    let line_of = |offset: usize| markdown[..offset].matches('\n').count() + 1;
    Parser::new_ext(markdown, options())
        .into_offset_iter()
        .filter_map(|(event, range)| match event {
            Event::Code(span) => {
                let path = span.strip_prefix("./").unwrap_or(&span);
                let looks_like_a_path = REPOSITORY_FOLDERS.iter().any(|f| path.starts_with(f))
                    && !path.contains(|c: char| c.is_whitespace() || c == '<' || c == '*');
                if !looks_like_a_path {
                    return None;
                }
                let path = path.split("::").next().unwrap_or(path);
                let path = match path.rsplit_once(':') {
                    Some((file, line))
                        if !line.is_empty() && line.chars().all(|c| c.is_ascii_digit()) =>
                    {
                        file
                    }
                    _ => path,
                };
                Some((line_of(range.start), path.to_string()))
            }
            _ => None,
        })
        .collect()
}

/// Every code span of the markdown files `files` (relative to `root`) that
/// names a repository path which does not exist, as `file:line: path: reason`.
fn check_paths(root: &Path, files: &[PathBuf]) -> Vec<String> {
    let mut problems = Vec::new();
    for file in files {
        let text = match std::fs::read_to_string(root.join(file)) {
            Ok(text) => text,
            Err(e) => {
                problems.push(format!("{}: cannot read: {e}", file.display()));
                continue;
            }
        };
        for (line, path) in repository_paths(&text) {
            let at = format!("{}:{line}: `{path}`", file.display());
            match normalize(Path::new(&path)) {
                None => problems.push(format!("{at}: points outside the repository")),
                Some(target) if !root.join(&target).exists() => problems.push(format!(
                    "{at}: no such file or directory (a code span naming a repository path must name one that exists)"
                )),
                Some(_) => {}
            }
        }
    }
    problems
}

/// Why an external URL is not well-formed, if it is not.
fn external_problem(url: &str) -> Option<String> {
    let rest = url
        .strip_prefix("https://")
        .or_else(|| url.strip_prefix("http://"))?;
    if url.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Some("contains whitespace".into());
    }
    let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
    let (host, port) = match authority.rsplit_once(':') {
        Some((h, p)) => (h, Some(p)),
        None => (authority, None),
    };
    let host_ok = !host.is_empty()
        && !host.starts_with(['.', '-'])
        && !host.ends_with('-')
        && !host.contains("..")
        && host
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '.' || c == '-');
    if !host_ok {
        return Some(format!("bad host {host:?}"));
    }
    match port {
        Some(p) if p.is_empty() || !p.chars().all(|c| c.is_ascii_digit()) || p.len() > 5 => {
            Some(format!("bad port {p:?}"))
        }
        _ => None,
    }
}

/// `a/b/../c` → `a/c`, without touching the file system; `None` when the
/// path climbs above its start.
fn normalize(path: &Path) -> Option<PathBuf> {
    let mut out = PathBuf::new();
    for part in path.components() {
        match part {
            Component::CurDir => {}
            Component::ParentDir => {
                if !out.pop() {
                    return None;
                }
            }
            Component::Normal(p) => out.push(p),
            Component::RootDir | Component::Prefix(_) => return None,
        }
    }
    Some(out)
}

/// `%20` and friends, as a browser reads a link's path.
fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = bytes
            .get(i + 1..i + 3)
            .and_then(|h| std::str::from_utf8(h).ok())
            .and_then(|h| u8::from_str_radix(h, 16).ok());
        match (bytes[i], hex) {
            (b'%', Some(b)) => {
                out.push(b);
                i += 3;
            }
            (b, _) => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Every broken link of the markdown files `files` (relative to `root`), as
/// `file:line: link: reason`.
fn check(root: &Path, files: &[PathBuf]) -> Vec<String> {
    let mut problems = Vec::new();
    let mut anchor_cache: HashMap<PathBuf, Result<HashSet<String>, String>> = HashMap::new();
    let mut anchors_of = |file: &Path| {
        anchor_cache
            .entry(file.to_path_buf())
            .or_insert_with(|| {
                std::fs::read_to_string(root.join(file))
                    .map(|text| anchors(&text))
                    .map_err(|e| format!("cannot read {}: {e}", file.display()))
            })
            .clone()
    };
    for file in files {
        let text = match std::fs::read_to_string(root.join(file)) {
            Ok(text) => text,
            Err(e) => {
                problems.push(format!("{}: cannot read: {e}", file.display()));
                continue;
            }
        };
        for (line, dest) in links(&text) {
            let at = format!("{}:{line}: {dest}", file.display());
            if dest.starts_with("http://") || dest.starts_with("https://") {
                if let Some(why) = external_problem(&dest) {
                    problems.push(format!("{at}: malformed URL: {why}"));
                }
                continue;
            }
            if let Some(address) = dest.strip_prefix("mailto:") {
                if !address.contains('@') {
                    problems.push(format!("{at}: malformed mailto: link"));
                }
                continue;
            }
            if dest.is_empty() || dest.contains("://") || dest.starts_with('/') {
                problems.push(format!(
                    "{at}: not a relative link nor an http(s) URL (links are relative to the file)"
                ));
                continue;
            }
            let (path, anchor) = match dest.split_once('#') {
                Some((p, a)) => (p, Some(a)),
                None => (dest.as_str(), None),
            };
            let path = percent_decode(path.split('?').next().unwrap_or(""));
            let target = if path.is_empty() {
                Some(file.clone())
            } else {
                normalize(&file.parent().unwrap_or(Path::new("")).join(&path))
            };
            let Some(target) = target else {
                problems.push(format!("{at}: points outside the repository"));
                continue;
            };
            if !root.join(&target).exists() {
                problems.push(format!("{at}: no such file {}", target.display()));
                continue;
            }
            let Some(anchor) = anchor else { continue };
            if target.extension().is_none_or(|e| e != "md") {
                problems.push(format!("{at}: an anchor into a file that is not markdown"));
                continue;
            }
            match anchors_of(&target) {
                Ok(found) if found.contains(&percent_decode(anchor)) => {}
                Ok(_) => problems.push(format!(
                    "{at}: no heading with the anchor #{anchor} in {}",
                    target.display()
                )),
                Err(e) => problems.push(format!("{at}: {e}")),
            }
        }
    }
    problems
}

/// `README.md` and every `.md` under `docs/`, relative to `root`, sorted.
fn doc_files(root: &Path) -> Vec<PathBuf> {
    fn walk(root: &Path, dir: &Path, out: &mut Vec<PathBuf>) {
        let entries = std::fs::read_dir(root.join(dir))
            .unwrap_or_else(|e| panic!("cannot list {}: {e}", root.join(dir).display()));
        for entry in entries {
            let entry = entry.unwrap_or_else(|e| panic!("cannot list {}: {e}", dir.display()));
            let path = dir.join(entry.file_name());
            if root.join(&path).is_dir() {
                walk(root, &path, out);
            } else if path.extension().is_some_and(|e| e == "md") {
                out.push(path);
            }
        }
    }
    let mut files = vec![PathBuf::from("README.md")];
    walk(root, Path::new("docs"), &mut files);
    files.sort();
    files
}

fn repository() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

#[test]
fn every_link_and_anchor_in_the_docs_resolves() {
    let root = repository();
    let files = doc_files(&root);
    assert!(files.len() > 1, "no markdown files under docs/: {files:?}");
    let problems = check(&root, &files);
    assert!(
        problems.is_empty(),
        "{} broken link(s):\n{}",
        problems.len(),
        problems.join("\n")
    );
}

#[test]
fn every_repository_path_in_the_docs_exists() {
    let root = repository();
    let files = doc_files(&root);
    let problems = check_paths(&root, &files);
    assert!(
        problems.is_empty(),
        "{} stale path(s):\n{}",
        problems.len(),
        problems.join("\n")
    );
}

#[test]
fn the_readme_fits_a_few_screens() {
    let path = repository().join("README.md");
    let size = std::fs::metadata(&path)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()))
        .len();
    assert!(
        size < README_MAX_BYTES,
        "README.md is {size} bytes, the limit is {README_MAX_BYTES}: move sections into docs/ and link them"
    );
}

#[test]
fn slugs_follow_github() {
    assert_eq!(
        slug("Opt-out: STOP, START, HELP"),
        "opt-out-stop-start-help"
    );
    assert_eq!(
        slug("Tables: contacts, opt-outs, poll answers, log, status"),
        "tables-contacts-opt-outs-poll-answers-log-status"
    );
    assert_eq!(slug("Web pages and HTTP API"), "web-pages-and-http-api");
    assert_eq!(slug("snake_case and `code`"), "snake_case-and-code");
    assert_eq!(slug("Où ça?"), "où-ça");
    let found = anchors("# A\n\n## A\n\n## `kafka.mode`\n\n```\n# not a heading\n```\n\n# A\n");
    let expected: HashSet<String> = ["a", "a-1", "a-2", "kafkamode"]
        .into_iter()
        .map(String::from)
        .collect();
    assert_eq!(found, expected);
}

#[test]
fn broken_links_are_reported_with_file_and_line() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let root = dir.path();
    std::fs::create_dir_all(root.join("docs/sub")).expect("create docs/sub");
    let readme = "# Title\n\n## Part two\n\n\
        [ok](docs/sub/page.md) [ok](#part-two) [ok](docs/sub/page.md#details-1)\n\
        [gone](docs/missing.md)\n\
        [no anchor](#part-three)\n\
        ```\n[in code](nowhere.md)\n```\n\
        `[in a span](nowhere.md)` [web](https://example.org/a?b#c)\n\
        [bad web](<https://exa mple.org/>) [absolute](/etc/passwd) [bad host](http://ex_ample.org:80/)\n";
    let page = "# Page\n\n## Details\n\n## Details\n\n\
        [up](../../README.md#title) [too far](../../../x.md)\n\
        [wrong anchor](../../README.md#part-2) [source](../../README.md)\n";
    std::fs::write(root.join("README.md"), readme).expect("write README.md");
    std::fs::write(root.join("docs/sub/page.md"), page).expect("write page.md");
    let problems = check(root, &doc_files(root));
    assert_eq!(
        problems,
        [
            "README.md:6: docs/missing.md: no such file docs/missing.md",
            "README.md:7: #part-three: no heading with the anchor #part-three in README.md",
            "README.md:12: https://exa mple.org/: malformed URL: contains whitespace",
            "README.md:12: /etc/passwd: not a relative link nor an http(s) URL (links are relative to the file)",
            "README.md:12: http://ex_ample.org:80/: malformed URL: bad host \"ex_ample.org\"",
            "docs/sub/page.md:7: ../../../x.md: points outside the repository",
            "docs/sub/page.md:8: ../../README.md#part-2: no heading with the anchor #part-2 in README.md",
        ]
    );
}

#[test]
fn stale_repository_paths_are_reported_with_file_and_line() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let root = dir.path();
    for folder in ["docs", "src/state", "tests/web"] {
        std::fs::create_dir_all(root.join(folder)).expect("create a folder");
    }
    std::fs::write(root.join("src/state/table.rs"), "").expect("write table.rs");
    let readme = "# Title\n\n\
        `src/state/table.rs` `src/state/` `tests/web/` `./src/state/table.rs:12`\n\
        `src/table.rs` and `tests/web.rs` `src/state/table.rs::Table` `tests/gone.rs::a_test`\n\
        `src/backends/twilio*` `sms.send.<backend>` `src/<layer>/` `cargo test --test docs`\n\
        ```\nsrc/in_a_block.rs\n```\n\
        [a link is not a span](https://example.org/src/x.rs) `srcs/not/a/folder`\n";
    let page = "# Page\n\n`pipelines/gone.yaml:3`\n\n`src/../../etc/passwd`\n";
    std::fs::write(root.join("README.md"), readme).expect("write README.md");
    std::fs::write(root.join("docs/page.md"), page).expect("write page.md");
    let problems = check_paths(root, &doc_files(root));
    let missing = "no such file or directory (a code span naming a repository path must name one that exists)";
    assert_eq!(
        problems,
        [
            format!("README.md:4: `src/table.rs`: {missing}"),
            format!("README.md:4: `tests/web.rs`: {missing}"),
            format!("README.md:4: `tests/gone.rs`: {missing}"),
            format!("docs/page.md:3: `pipelines/gone.yaml`: {missing}"),
            "docs/page.md:5: `src/../../etc/passwd`: points outside the repository".to_string(),
        ]
    );
}
