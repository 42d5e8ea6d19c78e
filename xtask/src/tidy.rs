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

/// The module a file under `dir` is: `a/b.rs` and `a/b/mod.rs` are both `a::b`.
fn module_of(rel: &Path) -> Vec<String> {
    let mut parts: Vec<String> = rel.iter().map(|p| p.to_string_lossy().into_owned()).collect();
    if let Some(last) = parts.pop() {
        let stem = last.trim_end_matches(".rs");
        if stem != "mod" {
            parts.push(stem.to_string());
        }
    }
    parts
}

/// Every path that starts with `super::`, `self::` or `crate::<root>::` (or a child module's
/// name), expanded over `{...}` groups: the segments after the start, resolved to absolute
/// module paths below the checked root.
fn referenced_paths(text: &str, here: &[String], children: &[String], root: &str) -> Vec<Vec<String>> {
    let chars: Vec<char> = text.chars().collect();
    let ident = |c: char| c.is_alphanumeric() || c == '_';
    let mut out = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let boundary = i == 0 || !(ident(chars[i - 1]) || chars[i - 1] == ':');
        if !boundary || !ident(chars[i]) {
            i += 1;
            continue;
        }
        let start = i;
        while i < chars.len() && ident(chars[i]) {
            i += 1;
        }
        let word: String = chars[start..i].iter().collect();
        if !(i + 1 < chars.len() && chars[i] == ':' && chars[i + 1] == ':') {
            continue;
        }
        // The module the path is relative to: this one (`self`), popped once per `super`.
        let mut base: Vec<String> = here.to_vec();
        let mut j = i;
        match word.as_str() {
            "crate" => {
                let rest: String = chars[j..chars.len().min(j + 2 + root.len() + 2)].iter().collect();
                if rest != format!("::{root}::") {
                    continue;
                }
                base = Vec::new();
                j += 2 + root.len();
            }
            "super" => {
                base.pop();
                while chars[j..].starts_with(&[':', ':', 's', 'u', 'p', 'e', 'r']) {
                    base.pop();
                    j += 7;
                }
            }
            "self" => {}
            child if children.iter().any(|c| c == child) => {
                j = start;
                // A child module's name used directly (`use http::X;` in `mod.rs`).
                let mut tail = Vec::new();
                parse_tree(&chars, &mut j, &mut Vec::new(), &mut tail);
                out.extend(tail.into_iter().map(|t| [base.clone(), t].concat()));
                i = j.max(i);
                continue;
            }
            _ => continue,
        }
        // `j` points at `::` before the rest of the path.
        j += 2;
        let mut tail = Vec::new();
        parse_tree(&chars, &mut j, &mut Vec::new(), &mut tail);
        out.extend(tail.into_iter().map(|t| [base.clone(), t].concat()));
        i = j.max(i);
    }
    out
}

/// Parses `a::b::{c, d::e}` from `chars[*j..]` into `[a,b,c]`, `[a,b,d,e]`.
fn parse_tree(chars: &[char], j: &mut usize, prefix: &mut Vec<String>, out: &mut Vec<Vec<String>>) {
    let ident = |c: char| c.is_alphanumeric() || c == '_';
    let skip_ws = |j: &mut usize| {
        while *j < chars.len() && chars[*j].is_whitespace() {
            *j += 1;
        }
    };
    let depth = prefix.len();
    loop {
        skip_ws(j);
        if *j < chars.len() && chars[*j] == '{' {
            *j += 1;
            loop {
                parse_tree(chars, j, prefix, out);
                skip_ws(j);
                match chars.get(*j) {
                    Some(',') => *j += 1,
                    Some('}') => {
                        *j += 1;
                        break;
                    }
                    _ => break,
                }
                skip_ws(j);
                if chars.get(*j) == Some(&'}') {
                    *j += 1;
                    break;
                }
            }
            prefix.truncate(depth);
            return;
        }
        let start = *j;
        while *j < chars.len() && ident(chars[*j]) {
            *j += 1;
        }
        if start == *j {
            // `*` or nothing: the path so far.
            if *j < chars.len() && chars[*j] == '*' {
                *j += 1;
            }
            out.push(prefix.clone());
            prefix.truncate(depth);
            return;
        }
        prefix.push(chars[start..*j].iter().collect());
        if chars[*j..].starts_with(&[':', ':']) {
            *j += 2;
            continue;
        }
        out.push(prefix.clone());
        prefix.truncate(depth);
        // `as name` is not a path segment.
        return;
    }
}

/// The `use`/path edges between the modules (files) under `dir`, as `(from, to)` module paths.
fn module_edges(dir: &Path, root: &str) -> Vec<(String, String)> {
    let mut files = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).expect("read_dir").flatten() {
            let path = entry.path();
            if path.is_dir() {
                stack.push(path);
            } else if path.extension().is_some_and(|e| e == "rs") {
                files.push(path);
            }
        }
    }
    let modules: Vec<(PathBuf, Vec<String>, bool)> = files
        .iter()
        .map(|f| {
            let rel = f.strip_prefix(dir).expect("under dir");
            let is_dir_module = rel.file_name().is_some_and(|n| n == "mod.rs") || rel == Path::new("mod.rs");
            (f.clone(), module_of(rel), is_dir_module)
        })
        .collect();
    let known: Vec<Vec<String>> = modules.iter().map(|(_, m, _)| m.clone()).collect();
    let mut edges = Vec::new();
    for (file, here, is_dir_module) in &modules {
        let text = std::fs::read_to_string(file).expect("read");
        // Test modules may reach anything: only the code the module ships counts.
        let text = text.split("#[cfg(test)]").next().unwrap_or_default();
        let children: Vec<String> = if *is_dir_module {
            known
                .iter()
                .filter(|m| m.len() == here.len() + 1 && m.starts_with(here))
                .map(|m| m[here.len()].clone())
                .collect()
        } else {
            Vec::new()
        };
        for path in referenced_paths(text, here, &children, root) {
            // The deepest known module the path names.
            let target = (0..=path.len()).rev().map(|n| &path[..n]).find(|p| known.iter().any(|k| k == p));
            let Some(target) = target else { continue };
            if target == here.as_slice() {
                continue;
            }
            edges.push((here.join("::"), target.join("::")));
        }
    }
    edges.sort();
    edges.dedup();
    edges
}

/// A cycle in `edges`, if there is one, as the modules along it.
fn find_cycle(edges: &[(String, String)]) -> Option<Vec<String>> {
    fn visit<'a>(
        node: &'a str,
        edges: &'a [(String, String)],
        state: &mut std::collections::HashMap<&'a str, u8>,
        path: &mut Vec<&'a str>,
    ) -> Option<Vec<String>> {
        match state.get(node) {
            Some(1) => {
                let from = path.iter().position(|n| *n == node).unwrap_or(0);
                let mut cycle: Vec<String> = path[from..].iter().map(|s| s.to_string()).collect();
                cycle.push(node.to_string());
                return Some(cycle);
            }
            Some(_) => return None,
            None => {}
        }
        state.insert(node, 1);
        path.push(node);
        for (_, to) in edges.iter().filter(|(from, _)| from == node) {
            if let Some(cycle) = visit(to, edges, state, path) {
                return Some(cycle);
            }
        }
        path.pop();
        state.insert(node, 2);
        None
    }
    let mut state = std::collections::HashMap::new();
    for (from, _) in edges {
        if let Some(cycle) = visit(from, edges, &mut state, &mut Vec::new()) {
            return Some(cycle);
        }
    }
    None
}

#[test]
fn the_plugin_host_has_no_import_cycles() {
    let dir = workspace_root().join("host/src/connectors");
    let edges = module_edges(&dir, "connectors");
    assert!(edges.len() > 20, "too few edges found, the scanner is broken: {edges:?}");
    for expected in [("state", "capabilities::http"), ("capabilities::http", "capabilities::budget")] {
        let (from, to) = (expected.0.to_string(), expected.1.to_string());
        assert!(edges.contains(&(from, to)), "missing edge {expected:?} in {edges:#?}");
    }
    if let Some(cycle) = find_cycle(&edges) {
        let rendered = cycle.iter().map(|m| if m.is_empty() { "connectors".to_string() } else { m.clone() });
        panic!(
            "host/src/connectors has an import cycle: {}\n(edges: `use super::...`, `crate::connectors::...` and child-module paths outside #[cfg(test)])",
            rendered.collect::<Vec<_>>().join(" -> ")
        );
    }
}

#[test]
fn the_cycle_finder_reads_grouped_and_relative_paths() {
    let chars: Vec<char> = "a::{b, c::{d, e}, f::G as H}".chars().collect();
    let mut out = Vec::new();
    parse_tree(&chars, &mut 0, &mut Vec::new(), &mut out);
    let got: Vec<String> = out.iter().map(|p| p.join("::")).collect();
    assert_eq!(got, ["a::b", "a::c::d", "a::c::e", "a::f::G"]);

    let here = vec!["caps".to_string(), "http".to_string()];
    let text = "use super::budget::X; use crate::connectors::{state::S, types}; super::super::engine::E";
    let got: Vec<String> = referenced_paths(text, &here, &[], "connectors").iter().map(|p| p.join("::")).collect();
    assert_eq!(got, ["caps::budget::X", "state::S", "types", "engine::E"]);
    let got: Vec<String> =
        referenced_paths("use http::Ctx;", &["caps".to_string()], &["http".to_string()], "connectors")
            .iter()
            .map(|p| p.join("::"))
            .collect();
    assert_eq!(got, ["caps::http::Ctx"]);

    let edges: Vec<(String, String)> =
        [("a", "b"), ("b", "c"), ("c", "a")].iter().map(|(x, y)| (x.to_string(), y.to_string())).collect();
    assert_eq!(find_cycle(&edges).unwrap(), ["a", "b", "c", "a"]);
    assert_eq!(find_cycle(&edges[..2]), None);
}
