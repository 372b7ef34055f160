//! The layers of ARCHITECTURE.md, checked on the source: every `crate::` path of a module's
//! non-test code names a module of its own layer or a lower one, and the modules import each
//! other without a cycle. The same holds between the parts of `http`.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// The crate's top-level modules by layer, lowest first (ARCHITECTURE.md).
const LAYERS: &[&[&str]] = &[
    &["domain", "prices", "telemetry"],
    &["forecast", "risk"],
    &["chart", "backtest", "store"],
    &["registry"],
    &["contract", "settings"],
    &["http"],
    &["cli"],
];

/// The parts of `http` by layer, lowest first.
const HTTP_LAYERS: &[&[&str]] = &[
    &["error"],
    &["body", "state"],
    &["middleware"],
    &["routes"],
    &["server"],
];

fn rust_files(dir: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            files.extend(rust_files(&path));
        } else if path.extension().is_some_and(|e| e == "rs") {
            files.push(path);
        }
    }
    files
}

/// The source without its test modules (`#[cfg(test)]` to the end of the item that follows)
/// and without comments.
fn production_code(source: &str) -> String {
    let mut out = String::new();
    let mut rest = source;
    while let Some(i) = rest.find("#[cfg(test)]") {
        out.push_str(&rest[..i]);
        let after = &rest[i..];
        // Skip the attribute's item: a `mod name { ... }` block, or one line.
        let open = after.find('{');
        let semi = after.find(';');
        match (open, semi) {
            (Some(o), s) if s.is_none_or(|s| o < s) => {
                let mut depth = 0;
                let mut end = after.len();
                for (k, c) in after[o..].char_indices() {
                    match c {
                        '{' => depth += 1,
                        '}' => {
                            depth -= 1;
                            if depth == 0 {
                                end = o + k + 1;
                                break;
                            }
                        }
                        _ => {}
                    }
                }
                rest = &after[end..];
            }
            (_, Some(s)) => rest = &after[s + 1..],
            _ => rest = "",
        }
    }
    out.push_str(rest);
    out.lines()
        .map(|l| l.split("//").next().unwrap_or(""))
        .collect::<Vec<_>>()
        .join("\n")
}

/// Which top-level module (or `http` part) a `crate::` path starting at `text` names; `use
/// crate::{a, b::c}` names each of `a` and `b`.
fn named_modules(text: &str, prefix: &str) -> Vec<String> {
    let mut names = Vec::new();
    for piece in text.split(prefix).skip(1) {
        if let Some(group) = piece.strip_prefix('{') {
            let inner = &group[..group.find('}').unwrap_or(group.len())];
            for item in inner.split(',') {
                let name: String = item
                    .trim()
                    .chars()
                    .take_while(|c| c.is_alphanumeric() || *c == '_')
                    .collect();
                names.push(name);
            }
        } else {
            names.push(
                piece
                    .chars()
                    .take_while(|c| c.is_alphanumeric() || *c == '_')
                    .collect(),
            );
        }
    }
    names.retain(|n| !n.is_empty());
    names
}

/// The module of `file` under `root`: its first path component (`registry/mod.rs`: registry).
fn module_of(root: &Path, file: &Path) -> String {
    let rel = file.strip_prefix(root).unwrap();
    let first = rel
        .components()
        .next()
        .unwrap()
        .as_os_str()
        .to_string_lossy();
    first.trim_end_matches(".rs").to_owned()
}

/// `(from, to)` for every import of another module among `modules`.
fn imports(
    root: &Path,
    prefixes: &[&str],
    modules: &BTreeSet<String>,
) -> BTreeSet<(String, String)> {
    let mut edges = BTreeSet::new();
    for file in rust_files(root) {
        let from = module_of(root, &file);
        if !modules.contains(&from) {
            continue;
        }
        let code = production_code(&std::fs::read_to_string(&file).unwrap());
        for prefix in prefixes {
            for to in named_modules(&code, prefix) {
                if modules.contains(&to) && to != from {
                    edges.insert((from.clone(), to));
                }
            }
        }
    }
    edges
}

fn layer_of(layers: &[&[&str]]) -> BTreeMap<String, usize> {
    layers
        .iter()
        .enumerate()
        .flat_map(|(i, names)| names.iter().map(move |n| ((*n).to_owned(), i)))
        .collect()
}

/// A cycle of `edges`, if there is one.
fn cycle(edges: &BTreeSet<(String, String)>) -> Option<Vec<String>> {
    fn visit(
        node: &str,
        edges: &BTreeSet<(String, String)>,
        path: &mut Vec<String>,
        done: &mut BTreeSet<String>,
    ) -> Option<Vec<String>> {
        if let Some(i) = path.iter().position(|p| p == node) {
            let mut c = path[i..].to_vec();
            c.push(node.to_owned());
            return Some(c);
        }
        if done.contains(node) {
            return None;
        }
        path.push(node.to_owned());
        for (_, to) in edges.iter().filter(|(f, _)| f == node) {
            if let Some(c) = visit(to, edges, path, done) {
                return Some(c);
            }
        }
        path.pop();
        done.insert(node.to_owned());
        None
    }
    let mut done = BTreeSet::new();
    for (from, _) in edges {
        if let Some(c) = visit(from, edges, &mut Vec::new(), &mut done) {
            return Some(c);
        }
    }
    None
}

fn check(root: &Path, prefixes: &[&str], layers: &[&[&str]]) -> BTreeSet<(String, String)> {
    let layer = layer_of(layers);
    let modules: BTreeSet<String> = layer.keys().cloned().collect();
    let edges = imports(root, prefixes, &modules);
    let upward: Vec<String> = edges
        .iter()
        .filter(|(from, to)| layer[from] < layer[to])
        .map(|(from, to)| format!("{from} -> {to}"))
        .collect();
    assert!(
        upward.is_empty(),
        "imports from a lower layer to a higher one: {upward:?}"
    );
    assert_eq!(cycle(&edges), None, "an import cycle");
    edges
}

fn src() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src")
}

#[test]
fn every_module_is_in_a_layer() {
    let layer = layer_of(LAYERS);
    for file in std::fs::read_dir(src()).unwrap() {
        let path = file.unwrap().path();
        let name = module_of(&src(), &path);
        if name == "lib" || name == "main" || path.extension().is_some_and(|e| e != "rs") {
            continue;
        }
        assert!(layer.contains_key(&name), "{name} is in no layer");
    }
}

#[test]
fn modules_import_only_their_own_layer_or_lower_ones_and_never_in_a_cycle() {
    let edges = check(&src(), &["crate::"], LAYERS);
    // The reading works: it sees imports of several kinds.
    for (from, to) in [
        ("http", "registry"),
        ("registry", "store"),
        ("backtest", "chart"),
        ("cli", "http"),
    ] {
        assert!(
            edges.contains(&(from.to_owned(), to.to_owned())),
            "{from} -> {to} not seen in {edges:?}"
        );
    }
}

#[test]
fn the_parts_of_http_import_only_downwards() {
    let edges = check(
        &src().join("http"),
        &["crate::http::", "super::"],
        HTTP_LAYERS,
    );
    assert!(edges.contains(&("routes".to_owned(), "body".to_owned())));
}

#[test]
fn the_reader_finds_grouped_imports_and_skips_tests() {
    let code = production_code(
        "use crate::{a, b::c};\n// crate::d\nfn f() { crate::e::g(); }\n#[cfg(test)]\nmod tests { use crate::h; }\n",
    );
    assert_eq!(named_modules(&code, "crate::"), ["a", "b", "e"]);
    let edges: BTreeSet<(String, String)> = [("a", "b"), ("b", "c"), ("c", "a")]
        .iter()
        .map(|(f, t)| ((*f).to_owned(), (*t).to_owned()))
        .collect();
    assert!(cycle(&edges).is_some());
}
