//! The codebase's layout, checked: no source file over 600 lines, no import
//! cycle between any two files of `src/`, and the top-level modules in the
//! order `lib.rs` lists them (each imports only from modules listed before
//! it, so every arrow points down the data flow).
//!
//! Imports are read from the text: every `use` and every path that starts
//! with `crate::`, `super::`, `self::` or a child module's name, in code
//! (comments and string literals are skipped) including unit tests. A path
//! names the file of the longest module prefix it has, so `crate::bus::Record`
//! is an import of `src/bus/mod.rs` and `crate::bus::kafka::KafkaBus` one of
//! `src/bus/kafka.rs`.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use regex::Regex;

const MAX_LINES: usize = 600;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries {
        let path = entry.unwrap().path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

#[test]
fn no_source_file_is_over_600_lines() {
    let mut files = Vec::new();
    for dir in ["src", "tests", "benches", "examples"] {
        rust_files(&root().join(dir), &mut files);
    }
    let mut long: Vec<String> = files
        .iter()
        .filter_map(|f| {
            let lines = std::fs::read_to_string(f).unwrap().lines().count();
            (lines > MAX_LINES).then(|| {
                format!(
                    "{} ({lines} lines)",
                    f.strip_prefix(root()).unwrap().display()
                )
            })
        })
        .collect();
    long.sort();
    assert!(
        long.is_empty(),
        "split these files by concern (at most {MAX_LINES} lines each):\n  {}",
        long.join("\n  ")
    );
}

/// A module path: `["bus", "kafka"]`; the crate root is empty.
type Module = Vec<String>;

/// Every file of `src/` by the module it defines (`main.rs` as `<main>`).
fn modules() -> BTreeMap<Module, PathBuf> {
    let src = root().join("src");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    files
        .into_iter()
        .map(|f| {
            let rel = f.strip_prefix(&src).unwrap().with_extension("");
            let mut module: Module = rel
                .components()
                .map(|c| c.as_os_str().to_string_lossy().into_owned())
                .collect();
            match module.last().map(String::as_str) {
                Some("mod" | "lib") => {
                    module.pop();
                }
                Some("main") if module.len() == 1 => module = vec!["<main>".into()],
                _ => {}
            }
            (module, f)
        })
        .collect()
}

/// `text` with comments, string and character literals blanked out, so
/// that `"crate::x"` in a message or a doc comment is not an import.
fn code_only(text: &str) -> String {
    let b = text.as_bytes();
    let mut out = String::with_capacity(text.len());
    let mut i = 0;
    while i < b.len() {
        let rest = &text[i..];
        let prev_ident = i > 0 && (b[i - 1].is_ascii_alphanumeric() || b[i - 1] == b'_');
        if rest.starts_with("//") {
            i += rest.find('\n').unwrap_or(rest.len());
        } else if rest.starts_with("/*") {
            i += rest.find("*/").map_or(rest.len(), |e| e + 2);
        } else if !prev_ident && (rest.starts_with("r#") || rest.starts_with("r\"")) {
            let hashes = rest[1..].bytes().take_while(|&c| c == b'#').count();
            if rest.as_bytes().get(1 + hashes) == Some(&b'"') {
                let close = format!("\"{}", "#".repeat(hashes));
                let body = &rest[2 + hashes..];
                i += 2 + hashes + body.find(&close).map_or(body.len(), |e| e + close.len());
                out.push_str("\"\"");
            } else {
                out.push('r');
                i += 1;
            }
        } else if b[i] == b'"' {
            i += 1;
            while i < b.len() && b[i] != b'"' {
                i += if b[i] == b'\\' { 2 } else { 1 };
            }
            i += 1;
            out.push_str("\"\"");
        } else if b[i] == b'\'' {
            // A character literal ('a', '\n', '"'), or a lifetime ('a).
            let close = rest
                .char_indices()
                .skip(1)
                .take(10)
                .find(|&(n, c)| c == '\'' && !(n == 1 && rest[1..].starts_with('\'')))
                .map(|(n, _)| n);
            match close {
                Some(n) if rest[1..].starts_with('\\') || rest[1..n].chars().count() == 1 => {
                    i += n + 1;
                    out.push_str("' '");
                }
                _ => {
                    out.push('\'');
                    i += 1;
                }
            }
        } else {
            let c = rest.chars().next().unwrap();
            out.push(c);
            i += c.len_utf8();
        }
    }
    out
}

/// The paths of a `use` tree: `a::{b, c::{d, e as f}}` → `a::b`, `a::c::d`, `a::c::e`.
fn use_paths(prefix: &str, tree: &str, out: &mut Vec<String>) {
    let mut depth = 0;
    let mut start = 0;
    let mut items = Vec::new();
    for (i, c) in tree.char_indices() {
        match c {
            '{' => depth += 1,
            '}' => depth -= 1,
            ',' if depth == 0 => {
                items.push(&tree[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    items.push(&tree[start..]);
    for item in items.into_iter().map(str::trim).filter(|i| !i.is_empty()) {
        if let Some(open) = item.find('{') {
            let head = item[..open].trim_end_matches(':').trim();
            let inner = &item[open + 1..item.rfind('}').unwrap_or(item.len())];
            let joined = [prefix, head]
                .iter()
                .filter(|s| !s.is_empty())
                .copied()
                .collect::<Vec<_>>()
                .join("::");
            use_paths(&joined, inner, out);
        } else {
            let item = item.split(" as ").next().unwrap().trim();
            let joined = if prefix.is_empty() {
                item.to_owned()
            } else {
                format!("{prefix}::{item}")
            };
            out.push(joined.split_whitespace().collect());
        }
    }
}

/// The file a path used in `module` names, if it is one of this crate's.
fn resolve(modules: &BTreeMap<Module, PathBuf>, module: &Module, path: &str) -> Option<Module> {
    let segments: Vec<&str> = path.split("::").filter(|s| !s.is_empty()).collect();
    let (mut full, rest): (Module, &[&str]) = match segments.first()? {
        &"crate" => (Vec::new(), &segments[1..]),
        &"super" | &"self" => (module.clone(), &segments[..]),
        first => {
            let mut child = module.clone();
            child.push((*first).to_owned());
            if !modules.contains_key(&child) {
                return None;
            }
            (module.clone(), &segments[..])
        }
    };
    let mut rest = rest;
    while let Some((&s, tail)) = rest.split_first() {
        match s {
            "super" => {
                full.pop();
            }
            "self" => {}
            _ => break,
        }
        rest = tail;
    }
    full.extend(rest.iter().map(|s| (*s).to_owned()));
    (0..=full.len())
        .rev()
        .map(|n| full[..n].to_vec())
        .find(|m| modules.contains_key(m))
}

/// Each file's imports of the crate's other files.
fn imports() -> BTreeMap<Module, BTreeSet<Module>> {
    let modules = modules();
    let use_stmt = Regex::new(r"\buse\s+([^;]+);").unwrap();
    let inline = Regex::new(r"(?:^|[^\w:])([a-z_][a-z0-9_]*(?:::\w+)+)").unwrap();
    let mut graph = BTreeMap::new();
    for (module, file) in &modules {
        let code = code_only(&std::fs::read_to_string(file).unwrap());
        // Unit tests (`mod tests { use super::*; }`) import their own file.
        let tests_at = code.find("mod tests {").unwrap_or(usize::MAX);
        let mut paths: Vec<(usize, String)> = Vec::new();
        let mut uses = Vec::new();
        for m in use_stmt.captures_iter(&code) {
            let mut found = Vec::new();
            use_paths("", &m[1], &mut found);
            let whole = m.get(0).unwrap();
            uses.push(whole.range());
            paths.extend(found.into_iter().map(|p| (whole.start(), p)));
        }
        for m in inline.captures_iter(&code) {
            let at = m.get(1).unwrap().start();
            if !uses.iter().any(|u| u.contains(&at)) {
                paths.push((at, m[1].to_owned()));
            }
        }
        let mut deps = BTreeSet::new();
        for (at, path) in paths {
            let path = if at > tests_at && path.starts_with("super") {
                path.replacen("super", "self", 1)
            } else {
                path
            };
            if let Some(to) = resolve(&modules, module, &path) {
                if &to != module {
                    deps.insert(to);
                }
            }
        }
        graph.insert(module.clone(), deps);
    }
    graph
}

fn name(m: &Module) -> String {
    if m.is_empty() {
        "lib".into()
    } else {
        m.join("::")
    }
}

/// A cycle of `graph`, if it has one.
fn find_cycle(graph: &BTreeMap<Module, BTreeSet<Module>>) -> Option<Vec<Module>> {
    #[derive(Clone, Copy, PartialEq)]
    enum Mark {
        Open,
        Done,
    }
    fn visit(
        graph: &BTreeMap<Module, BTreeSet<Module>>,
        at: &Module,
        marks: &mut BTreeMap<Module, Mark>,
        stack: &mut Vec<Module>,
    ) -> Option<Vec<Module>> {
        match marks.get(at) {
            Some(Mark::Done) => return None,
            Some(Mark::Open) => {
                let from = stack.iter().position(|m| m == at).unwrap();
                let mut cycle = stack[from..].to_vec();
                cycle.push(at.clone());
                return Some(cycle);
            }
            None => {}
        }
        marks.insert(at.clone(), Mark::Open);
        stack.push(at.clone());
        for next in graph.get(at).into_iter().flatten() {
            if let Some(cycle) = visit(graph, next, marks, stack) {
                return Some(cycle);
            }
        }
        stack.pop();
        marks.insert(at.clone(), Mark::Done);
        None
    }
    let mut marks = BTreeMap::new();
    graph
        .keys()
        .find_map(|m| visit(graph, m, &mut marks, &mut Vec::new()))
}

#[test]
fn no_two_source_files_import_each_other() {
    // Every cycle, one after the other: each found is reported and broken
    // (its last import dropped) before looking again.
    let mut graph = imports();
    let mut cycles = Vec::new();
    while let Some(cycle) = find_cycle(&graph) {
        cycles.push(cycle.iter().map(name).collect::<Vec<_>>().join(" → "));
        let (from, to) = (&cycle[cycle.len() - 2], &cycle[cycle.len() - 1]);
        graph.get_mut(from).unwrap().remove(to);
    }
    assert!(
        cycles.is_empty(),
        "import cycles (move what both ends need into a module below both):\n  {}",
        cycles.join("\n  ")
    );
}

/// The top-level modules in the order `lib.rs` declares them.
fn lib_order() -> Vec<String> {
    let lib = std::fs::read_to_string(root().join("src/lib.rs")).unwrap();
    Regex::new(r"(?m)^pub mod (\w+);")
        .unwrap()
        .captures_iter(&lib)
        .map(|c| c[1].to_owned())
        .collect()
}

#[test]
fn top_level_modules_import_only_modules_listed_before_them_in_lib_rs() {
    let order = lib_order();
    let graph = imports();
    let position = |m: &Module| {
        m.first()
            .and_then(|top| order.iter().position(|o| o == top))
    };
    let mut wrong = Vec::new();
    for (from, deps) in &graph {
        let Some(at) = position(from) else { continue };
        for to in deps {
            if let Some(target) = position(to) {
                if target > at {
                    wrong.push(format!(
                        "{} imports {} (listed after {} in lib.rs)",
                        name(from),
                        name(to),
                        order[at]
                    ));
                }
            }
        }
    }
    assert!(
        wrong.is_empty(),
        "imports against the data flow:\n  {}",
        wrong.join("\n  ")
    );
    let mut declared = order.clone();
    declared.sort();
    let mut present: Vec<String> = modules()
        .keys()
        .filter(|m| m.len() == 1 && m[0] != "<main>")
        .map(|m| m[0].clone())
        .collect();
    present.sort();
    present.dedup();
    assert_eq!(declared, present, "lib.rs must list every top-level module");
}

#[test]
fn the_checks_see_what_they_look_for() {
    // Comments and strings are not code.
    assert_eq!(
        code_only("a // crate::x\nb \"crate::y\" c /* crate::z */ d 'x' e<'a>"),
        "a \nb \"\" c  d ' ' e<'a>"
    );
    assert_eq!(code_only("r#\"crate::w\"# error\"\""), "\"\" error\"\"");
    let mut paths = Vec::new();
    use_paths("", "crate::{a::{b, c as d}, e}", &mut paths);
    assert_eq!(paths, ["crate::a::b", "crate::a::c", "crate::e"]);
    // A cycle is found, a chain is not.
    let m = |s: &str| vec![s.to_owned()];
    let mut g = BTreeMap::new();
    g.insert(m("a"), BTreeSet::from([m("b")]));
    g.insert(m("b"), BTreeSet::from([m("c")]));
    g.insert(m("c"), BTreeSet::new());
    assert!(find_cycle(&g).is_none());
    g.insert(m("c"), BTreeSet::from([m("a")]));
    assert_eq!(find_cycle(&g).unwrap().len(), 4);
}
