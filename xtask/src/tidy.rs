//! Tidy tests over the repository itself (run by `cargo test`, so by `cargo xtask test`): every
//! Rust file says what it is for in a `//!` first line, and every path the code map in
//! docs/ARCHITECTURE.md names exists.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::workspace_root;

/// The files git tracks under the workspace root.
fn tracked_files(root: &Path) -> Vec<PathBuf> {
    let output = Command::new("git").current_dir(root).args(["ls-files", "-z"]).output().expect("git ls-files");
    assert!(output.status.success(), "git ls-files failed");
    String::from_utf8_lossy(&output.stdout).split('\0').filter(|p| !p.is_empty()).map(PathBuf::from).collect()
}

#[test]
fn every_rust_file_starts_with_a_line_saying_what_it_is_for() {
    let root = workspace_root();
    let missing: Vec<String> = tracked_files(&root)
        .into_iter()
        .filter(|p| p.extension().is_some_and(|e| e == "rs"))
        .filter(|p| {
            let text = std::fs::read_to_string(root.join(p)).unwrap_or_default();
            !text.starts_with("//!")
        })
        .map(|p| p.display().to_string())
        .collect();
    assert!(
        missing.is_empty(),
        "these files do not start with a `//!` line saying what they are for:\n{}",
        missing.join("\n")
    );
}

/// The paths the code map names, resolved: `(line number, path)`. A line is `<indent><paths>  <what>`;
/// two spaces of indent are one level below the last folder (`name/`) of the level above; several
/// paths on a line are separated by commas, the later ones beside the first; `(...)` is prose.
fn code_map_paths(doc: &str) -> Vec<(usize, String)> {
    let mut in_map = false;
    let mut fence = false;
    let mut stack: Vec<String> = Vec::new();
    let mut paths = Vec::new();
    for (i, line) in doc.lines().enumerate() {
        if line.starts_with("## ") {
            in_map = line == "## Code map";
            continue;
        }
        if !in_map {
            continue;
        }
        if line.starts_with("```") {
            fence = !fence;
            continue;
        }
        let indent = line.len() - line.trim_start().len();
        // Continuation lines of a description start in the description column.
        if !fence || line.trim().is_empty() || indent >= 20 {
            continue;
        }
        let rest = line.trim_start();
        let part = rest.split("  ").next().unwrap_or(rest);
        let mut cleaned = String::new();
        let mut depth = 0;
        for ch in part.chars() {
            match ch {
                '(' => depth += 1,
                ')' => depth -= 1,
                c if depth == 0 => cleaned.push(c),
                _ => {}
            }
        }
        let level = indent / 2;
        stack.truncate(level);
        let parent = stack.last().cloned().unwrap_or_default();
        let mut first_dir: Option<String> = None;
        for (n, item) in cleaned.split(',').map(str::trim).filter(|s| !s.is_empty()).enumerate() {
            let full = if n == 0 {
                format!("{parent}{item}")
            } else {
                // Beside the first path: in the folder that holds it.
                let first = &paths.last().map(|(_, p): &(usize, String)| p.clone()).unwrap_or_default();
                let base = Path::new(first.trim_end_matches('/')).parent().map(|p| p.display().to_string());
                match base {
                    Some(b) if !b.is_empty() => format!("{b}/{item}"),
                    _ => format!("{parent}{item}"),
                }
            };
            if n == 0 && full.ends_with('/') {
                first_dir = Some(full.clone());
            }
            paths.push((i + 1, full));
        }
        if let Some(dir) = first_dir {
            stack.push(dir);
        }
    }
    paths
}

#[test]
fn every_path_in_the_code_map_exists() {
    let root = workspace_root();
    let doc = std::fs::read_to_string(root.join("docs/ARCHITECTURE.md")).expect("docs/ARCHITECTURE.md");
    let paths = code_map_paths(&doc);
    assert!(paths.len() > 40, "the code map parsed to too few paths: {paths:?}");
    let missing: Vec<String> = paths
        .iter()
        .filter(|(_, path)| match path.strip_suffix('*') {
            // `hostile-*`: at least one entry with that prefix.
            Some(prefix) => {
                let prefix = Path::new(prefix);
                let dir = root.join(prefix.parent().unwrap_or(Path::new("")));
                let start = prefix.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
                !std::fs::read_dir(dir)
                    .map(|entries| entries.flatten().any(|e| e.file_name().to_string_lossy().starts_with(&start)))
                    .unwrap_or(false)
            }
            None => !root.join(path).exists(),
        })
        .map(|(line, path)| format!("docs/ARCHITECTURE.md:{line}: {path}"))
        .collect();
    assert!(missing.is_empty(), "the code map names paths that do not exist:\n{}", missing.join("\n"));
}

#[test]
fn the_code_map_parser_follows_indentation_and_commas() {
    let doc = "## Code map\n\n```\nhost/          x\n  src/a.rs     y\n  src/b/       z\n    c.rs, d.rs  w\n                           more prose\ntests/        t\n  src/x.rs, y.rs (prose, more)  u\n```\n## Next\n";
    let paths: Vec<String> = code_map_paths(doc).into_iter().map(|(_, p)| p).collect();
    assert_eq!(
        paths,
        [
            "host/",
            "host/src/a.rs",
            "host/src/b/",
            "host/src/b/c.rs",
            "host/src/b/d.rs",
            "tests/",
            "tests/src/x.rs",
            "tests/src/y.rs"
        ]
    );
}

/// The top-level modules of `host/src` and, for each, the others its files name as
/// `crate::<module>` (in `use` lines or paths).
fn host_module_edges(root: &Path) -> std::collections::BTreeMap<String, std::collections::BTreeSet<String>> {
    let src = root.join("host/src");
    let module_of = |p: &Path| -> Option<String> {
        let rel = p.strip_prefix(&src).ok()?;
        let first = rel.components().next()?.as_os_str().to_string_lossy().to_string();
        Some(first.trim_end_matches(".rs").to_string())
    };
    let files: Vec<PathBuf> = tracked_files(root)
        .into_iter()
        .map(|p| root.join(p))
        .filter(|p| p.starts_with(&src) && p.extension().is_some_and(|e| e == "rs"))
        .collect();
    let modules: std::collections::BTreeSet<String> =
        files.iter().filter_map(|p| module_of(p)).filter(|m| m != "lib" && m != "main").collect();
    let mut edges: std::collections::BTreeMap<String, std::collections::BTreeSet<String>> = Default::default();
    for file in &files {
        let Some(from) = module_of(file).filter(|m| modules.contains(m)) else { continue };
        let text = std::fs::read_to_string(file).unwrap_or_default();
        // Unit tests may use any layer (the broker's key code to sign a token for `jose`, say).
        let text = text.split("#[cfg(test)]\nmod tests").next().unwrap_or_default();
        for (i, _) in text.match_indices("crate::") {
            let name: String = text[i + 7..].chars().take_while(|c| c.is_alphanumeric() || *c == '_').collect();
            if name != from && modules.contains(&name) {
                edges.entry(from.clone()).or_default().insert(name);
            }
        }
        // `use crate::{a, b::c}` groups.
        for (i, _) in text.match_indices("crate::{") {
            let group: String = text[i + 8..].chars().take_while(|c| *c != '}').collect();
            for item in group.split(',') {
                let name: String = item.trim().chars().take_while(|c| c.is_alphanumeric() || *c == '_').collect();
                if name != from && modules.contains(&name) {
                    edges.entry(from.clone()).or_default().insert(name);
                }
            }
        }
    }
    edges
}

#[test]
fn host_modules_import_each_other_without_cycles() {
    let edges = host_module_edges(&workspace_root());
    // Depth-first search; a module met again on the current path closes a cycle.
    fn visit(
        node: &str,
        edges: &std::collections::BTreeMap<String, std::collections::BTreeSet<String>>,
        path: &mut Vec<String>,
        done: &mut std::collections::BTreeSet<String>,
        cycles: &mut Vec<String>,
    ) {
        if let Some(start) = path.iter().position(|n| n == node) {
            let mut cycle = path[start..].to_vec();
            cycle.push(node.to_string());
            cycles.push(cycle.join(" -> "));
            return;
        }
        if !done.insert(node.to_string()) {
            return;
        }
        path.push(node.to_string());
        for next in edges.get(node).into_iter().flatten() {
            visit(next, edges, path, done, cycles);
        }
        path.pop();
    }
    let mut cycles = Vec::new();
    let mut done = std::collections::BTreeSet::new();
    for node in edges.keys() {
        visit(node, &edges, &mut Vec::new(), &mut done, &mut cycles);
    }
    assert!(
        cycles.is_empty(),
        "host/src modules import each other in a cycle (a lower layer must not name a higher one):\n{}",
        cycles.join("\n")
    );
}
