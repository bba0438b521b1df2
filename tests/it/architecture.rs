//! docs/ARCHITECTURE.md stays true: its code map names every file under src/, imports
//! between the stages point the way it says, no files import each other in a cycle, and
//! no source file outgrows a sitting.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).to_owned()
}

/// Every .rs file under src/, relative to the repository (`src/store/mod.rs`).
fn source_files() -> Vec<String> {
    let mut files = Vec::new();
    let mut dirs = vec![root().join("src")];
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(&dir).expect("src/ lists") {
            let path = entry.expect("entry").path();
            if path.is_dir() {
                dirs.push(path);
            } else if path.extension().is_some_and(|e| e == "rs") {
                let relative = path.strip_prefix(root()).expect("under the root");
                files.push(relative.to_string_lossy().replace('\\', "/"));
            }
        }
    }
    files.sort();
    files
}

/// The module path of a file (`src/store/mod.rs` is `store`, `src/lib.rs` is ``).
fn module_of(file: &str) -> String {
    let path = file.trim_start_matches("src/").trim_end_matches(".rs");
    let path = path.trim_end_matches("/mod");
    if path == "lib" || file.starts_with("src/bin/") {
        return String::new();
    }
    path.trim_end_matches('/').replace('/', "::")
}

/// The stage a module belongs to: its first segment, or `top` for the wiring at the root.
fn stage_of(module: &str) -> &str {
    match module.split("::").next().unwrap_or("") {
        "" | "embed" | "config" | "cli" | "error" | "logging" | "persist" => "top",
        first => first,
    }
}

/// What each stage may import besides itself (docs/ARCHITECTURE.md, "Import directions").
fn allowed(stage: &str) -> &'static [&'static str] {
    match stage {
        "dns" | "hash" => &[],
        "metrics" => &["dns"],
        "model" => &["dns", "hash"],
        "source" => &["model", "dns", "hash", "metrics"],
        "store" => &["dns", "hash"],
        "controller" => &["model", "store", "dns", "hash", "metrics"],
        "serve" => &["store", "dns", "hash", "metrics"],
        "top" => &[
            "dns",
            "hash",
            "metrics",
            "model",
            "source",
            "store",
            "controller",
            "serve",
        ],
        _ => &[],
    }
}

/// The module paths a file refers to: `crate::a::b::c` paths (braces expanded) and, in a
/// module with children, `use child::...` lines.
fn references(text: &str, module: &str, children: &BTreeSet<String>) -> BTreeSet<String> {
    let mut found = BTreeSet::new();
    let mut rest = text;
    while let Some(at) = rest.find("crate::") {
        rest = &rest[at + "crate::".len()..];
        expand("", rest, &mut found);
    }
    for line in text.lines().map(str::trim) {
        let Some(path) = line.strip_prefix("use ") else {
            continue;
        };
        let first = path.split("::").next().unwrap_or("");
        if children.contains(first) {
            let prefix = if module.is_empty() {
                String::new()
            } else {
                format!("{module}::")
            };
            expand(&prefix, path, &mut found);
        }
    }
    found
}

/// Adds the paths that `text` (starting right after `prefix`) spells out: `a::b::C` or
/// `a::{b, c::D}`.
fn expand(prefix: &str, text: &str, found: &mut BTreeSet<String>) {
    let ident_end = text
        .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == ':'))
        .unwrap_or(text.len());
    let path = &text[..ident_end];
    let rest = &text[ident_end..];
    let full = format!("{prefix}{}", path.trim_end_matches("::"));
    if path.ends_with("::") && rest.starts_with('{') {
        let mut depth = 0;
        let mut start = 1;
        for (i, c) in rest.char_indices() {
            match c {
                '{' => depth += 1,
                '}' | ',' if depth == 1 => {
                    let item = rest[start..i].trim();
                    if !item.is_empty() && item != "self" {
                        expand(&format!("{full}::"), item, found);
                    }
                    start = i + 1;
                    if c == '}' {
                        break;
                    }
                }
                '}' => depth -= 1,
                _ => {}
            }
        }
    }
    found.insert(full);
}

/// The file a path refers to: the longest prefix of it that is a module of `modules`.
fn file_of<'a>(path: &str, modules: &'a BTreeMap<String, String>) -> Option<&'a String> {
    let segments: Vec<&str> = path.split("::").collect();
    (0..=segments.len())
        .rev()
        .find_map(|n| modules.get(&segments[..n].join("::")))
}

/// Every file's imports, as (importing file, imported file), both relative paths.
fn import_edges() -> Vec<(String, String)> {
    let files = source_files();
    let modules: BTreeMap<String, String> = files
        .iter()
        .filter(|f| !f.starts_with("src/bin/"))
        .map(|f| (module_of(f), f.clone()))
        .collect();
    let mut edges = Vec::new();
    for file in &files {
        let module = module_of(file);
        let children: BTreeSet<String> = modules
            .keys()
            .filter_map(|m| {
                let rest = if module.is_empty() {
                    Some(m.as_str())
                } else {
                    m.strip_prefix(&format!("{module}::"))
                };
                rest.filter(|r| !r.is_empty() && !r.contains("::"))
                    .map(str::to_owned)
            })
            .collect();
        let text = std::fs::read_to_string(root().join(file)).expect("source reads");
        for path in references(&text, &module, &children) {
            if let Some(target) = file_of(&path, &modules)
                && target != file
            {
                edges.push((file.clone(), target.clone()));
            }
        }
    }
    edges.sort();
    edges.dedup();
    edges
}

/// Whether `file` is inside the module that `ancestor` (a `mod.rs` or `lib.rs`) defines.
fn is_ancestor(ancestor: &str, file: &str) -> bool {
    let module = module_of(ancestor);
    (ancestor.ends_with("mod.rs") || ancestor.ends_with("lib.rs"))
        && (module.is_empty() || module_of(file).starts_with(&format!("{module}::")))
}

#[test]
fn the_code_map_names_every_source_file() {
    let map = std::fs::read_to_string(root().join("docs/ARCHITECTURE.md")).expect("ARCHITECTURE");
    let missing: Vec<String> = source_files()
        .into_iter()
        .filter(|f| !map.contains(&format!("`{f}`")))
        .collect();
    assert!(
        missing.is_empty(),
        "docs/ARCHITECTURE.md's code map lacks: {missing:?}"
    );
}

#[test]
fn imports_point_down_the_pipeline() {
    let mut wrong = Vec::new();
    for (from, to) in import_edges() {
        let (a, b) = (module_of(&from), module_of(&to));
        let (from_stage, to_stage) = (stage_of(&a), stage_of(&b));
        if from_stage != to_stage && !allowed(from_stage).contains(&to_stage) {
            wrong.push(format!("{from} ({from_stage}) imports {to} ({to_stage})"));
        }
    }
    assert!(
        wrong.is_empty(),
        "imports against the stage directions:\n{}",
        wrong.join("\n")
    );
}

#[test]
fn no_files_import_each_other_in_a_cycle() {
    // A file using its own module's parent (a seam of the controller extending
    // `Controller`) is inside that module, not a second party: those edges do not count.
    let mut graph: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for (from, to) in import_edges() {
        if !is_ancestor(&to, &from) {
            graph.entry(from).or_default().insert(to);
        }
    }
    // Depth-first search for a back edge.
    fn visit(
        node: &str,
        graph: &BTreeMap<String, BTreeSet<String>>,
        state: &mut BTreeMap<String, u8>,
        path: &mut Vec<String>,
    ) -> Option<Vec<String>> {
        match state.get(node) {
            Some(1) => {
                let at = path.iter().position(|p| p == node).unwrap_or(0);
                let mut cycle = path[at..].to_vec();
                cycle.push(node.to_owned());
                return Some(cycle);
            }
            Some(_) => return None,
            None => {}
        }
        state.insert(node.to_owned(), 1);
        path.push(node.to_owned());
        for next in graph.get(node).into_iter().flatten() {
            if let Some(cycle) = visit(next, graph, state, path) {
                return Some(cycle);
            }
        }
        path.pop();
        state.insert(node.to_owned(), 2);
        None
    }
    let mut state = BTreeMap::new();
    for node in graph.keys() {
        let cycle = visit(node, &graph, &mut state, &mut Vec::new());
        assert!(
            cycle.is_none(),
            "import cycle: {}",
            cycle.unwrap_or_default().join(" -> ")
        );
    }
}

#[test]
fn no_source_file_outgrows_a_sitting() {
    let long: Vec<String> = source_files()
        .into_iter()
        .filter_map(|f| {
            let lines = std::fs::read_to_string(root().join(&f))
                .ok()?
                .lines()
                .count();
            (lines > 700).then(|| format!("{f}: {lines} lines"))
        })
        .collect();
    assert!(long.is_empty(), "split these along their seams: {long:?}");
}

#[test]
fn the_import_reader_finds_what_it_should() {
    let children: BTreeSet<String> = ["join".to_owned()].into();
    let found = references(
        "use crate::store::{self, Route, answers::{Rrset, SRV}};\nuse join::ServiceEntry;\nlet x = crate::dns::wire::rtype::A;",
        "controller",
        &children,
    );
    for expected in [
        "store",
        "store::Route",
        "store::answers",
        "store::answers::Rrset",
        "dns::wire::rtype::A",
        "controller::join::ServiceEntry",
    ] {
        assert!(found.contains(expected), "{expected} not in {found:?}");
    }
}
