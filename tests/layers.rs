//! The arrows between modules point down (issue 13): nothing in `src/model`,
//! `src/asl`, `src/run`, `src/sfn` or `src/graph.rs` names `crate::syntax`,
//! `crate::check`, `crate::cli` or `crate::lsp`; the model names no back end,
//! `asl` neither `run` nor `sfn`, `run` no `sfn`; `src/diagnostics.rs` names
//! only `crate::source`; `src/source*` names nothing else in the crate.
//!
//! The sources are read as Rust tokens (comments and string literals do not
//! count), every path that starts at `crate`, `self` or `super` is resolved
//! to a path from the crate root (so `super::super::syntax` is caught), and
//! `use` trees are expanded (`use crate::{model, syntax::Span}` names
//! `crate::syntax::Span`). Items under `#[cfg(test)]` are not read: a unit
//! test may build its input with the checker, which is not an arrow of the
//! library. Paths through a name some other `use` brought in are not
//! followed; the `use` itself is what is caught.

use std::path::{Path, PathBuf};

/// A layer: the files it holds, and the crate's top-level modules they may
/// not name (`Only` lists the ones they may).
struct Rule {
    files: &'static [&'static str],
    names: Names,
}

enum Names {
    Not(&'static [&'static str]),
    Only(&'static [&'static str]),
}

const RULES: &[Rule] = &[
    // The model is the IR every back end reads: it reads none of them.
    Rule {
        files: &["src/model"],
        names: Names::Not(&[
            "syntax", "check", "cli", "lsp", "asl", "run", "sfn", "graph",
        ]),
    },
    Rule {
        files: &["src/asl"],
        names: Names::Not(&["syntax", "check", "cli", "lsp", "run", "sfn"]),
    },
    // The worker (sfn) reuses the runner's Runtime; the runner knows no sfn.
    Rule {
        files: &["src/run"],
        names: Names::Not(&["syntax", "check", "cli", "lsp", "sfn"]),
    },
    Rule {
        files: &["src/sfn", "src/graph.rs"],
        names: Names::Not(&["syntax", "check", "cli", "lsp"]),
    },
    Rule {
        files: &["src/diagnostics.rs"],
        names: Names::Only(&["diagnostics", "source"]),
    },
    Rule {
        files: &["src/source.rs", "src/source"],
        names: Names::Only(&["source"]),
    },
];

#[test]
fn layers_point_down() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut offences = Vec::new();
    let mut read = 0;
    for rule in RULES {
        for entry in rule.files {
            for file in rust_files(&root.join(entry)) {
                let text = std::fs::read_to_string(&file)
                    .unwrap_or_else(|e| panic!("{}: {e}", file.display()));
                let rel = file.strip_prefix(root).unwrap_or(&file);
                read += 1;
                for (line, path) in crate_paths(&module_of(rel), &text) {
                    let first = path.first().map_or("", String::as_str);
                    // `crate::*` names every module.
                    let bad = first == "*"
                        || match rule.names {
                            Names::Not(not) => not.contains(&first),
                            Names::Only(only) => !only.contains(&first),
                        };
                    if bad {
                        offences.push(format!(
                            "{}:{line}: names `crate::{}`",
                            rel.display(),
                            path.join("::")
                        ));
                    }
                }
            }
        }
    }
    // The files are there: a rule over no file would pass for nothing.
    assert!(read > 30, "only {read} files read");
    assert!(
        offences.is_empty(),
        "arrows pointing up:\n{}",
        offences.join("\n")
    );
}

/// Inside `syntax`, the bounded YAML tree is the floor both YAML readers
/// (the YAML form and the legacy manifests) stand on: it names only itself,
/// `source` and `diagnostics`, never the AST or a reader.
#[test]
fn the_bounded_yaml_tree_knows_no_reader() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let files = rust_files(&root.join("src/syntax/yaml_tree"));
    assert!(files.len() >= 2, "only {} files read", files.len());
    let mut offences = Vec::new();
    for file in files {
        let text =
            std::fs::read_to_string(&file).unwrap_or_else(|e| panic!("{}: {e}", file.display()));
        let rel = file.strip_prefix(root).unwrap_or(&file);
        for (line, path) in crate_paths(&module_of(rel), &text) {
            let ok = match path.first().map(String::as_str) {
                Some("source" | "diagnostics") => true,
                Some("syntax") => path.get(1).is_some_and(|m| m == "yaml_tree"),
                _ => false,
            };
            if !ok {
                offences.push(format!(
                    "{}:{line}: names `crate::{}`",
                    rel.display(),
                    path.join("::")
                ));
            }
        }
    }
    assert!(
        offences.is_empty(),
        "the YAML tree reaches up:\n{}",
        offences.join("\n")
    );
}

/// `src/run/scheduler.rs` -> `[run, scheduler]`; `src/run/mod.rs` -> `[run]`.
fn module_of(rel: &Path) -> Vec<String> {
    let mut parts: Vec<String> = rel
        .components()
        .skip(1)
        .map(|c| c.as_os_str().to_string_lossy().into_owned())
        .collect();
    if let Some(last) = parts.pop() {
        let stem = last.trim_end_matches(".rs");
        if stem != "mod" && stem != "lib" {
            parts.push(stem.to_string());
        }
    }
    parts
}

fn rust_files(path: &Path) -> Vec<PathBuf> {
    if path.is_file() {
        return vec![path.to_path_buf()];
    }
    let mut out = Vec::new();
    let Ok(dir) = std::fs::read_dir(path) else {
        return out;
    };
    for entry in dir.flatten() {
        let p = entry.path();
        if p.is_dir() {
            out.extend(rust_files(&p));
        } else if p.extension().is_some_and(|e| e == "rs") {
            out.push(p);
        }
    }
    out.sort();
    out
}

// ---------------------------------------------------------------------------
// Tokens.

#[derive(Clone, Debug, PartialEq)]
enum Tok {
    Ident(String),
    /// `::`
    Sep,
    Punct(char),
}

/// Rust tokens with their line, without comments, literals and whitespace.
fn tokens(text: &str) -> Vec<(Tok, usize)> {
    let c: Vec<char> = text.chars().collect();
    let mut out = Vec::new();
    let (mut i, mut line) = (0, 1);
    let at = |i: usize| c.get(i).copied().unwrap_or('\0');
    while i < c.len() {
        let ch = c[i];
        if ch == '\n' {
            line += 1;
            i += 1;
        } else if ch.is_whitespace() {
            i += 1;
        } else if ch == '/' && at(i + 1) == '/' {
            while i < c.len() && c[i] != '\n' {
                i += 1;
            }
        } else if ch == '/' && at(i + 1) == '*' {
            let mut depth = 0;
            while i < c.len() {
                if c[i] == '/' && at(i + 1) == '*' {
                    depth += 1;
                    i += 2;
                } else if c[i] == '*' && at(i + 1) == '/' {
                    depth -= 1;
                    i += 2;
                    if depth == 0 {
                        break;
                    }
                } else {
                    line += usize::from(c[i] == '\n');
                    i += 1;
                }
            }
        } else if (ch == 'r' || (ch == 'b' && at(i + 1) == 'r'))
            && matches!(at(i + 1 + usize::from(ch == 'b')), '"' | '#')
        {
            // Raw string: r"..", r#".."#, br#".."#.
            let mut j = i + 1 + usize::from(ch == 'b');
            let mut hashes = 0;
            while at(j) == '#' {
                hashes += 1;
                j += 1;
            }
            if at(j) != '"' {
                // `r#ident`, a raw identifier.
                let start = j;
                while at(j).is_alphanumeric() || at(j) == '_' {
                    j += 1;
                }
                out.push((Tok::Ident(c[start..j].iter().collect()), line));
                i = j;
                continue;
            }
            j += 1;
            loop {
                if j >= c.len() {
                    break;
                }
                if c[j] == '"' && (1..=hashes).all(|k| at(j + k) == '#') {
                    j += 1 + hashes;
                    break;
                }
                line += usize::from(c[j] == '\n');
                j += 1;
            }
            i = j;
        } else if ch == '"' || (ch == 'b' && at(i + 1) == '"') {
            let mut j = i + 1 + usize::from(ch == 'b');
            while j < c.len() && c[j] != '"' {
                if c[j] == '\\' {
                    j += 1;
                }
                line += usize::from(at(j) == '\n');
                j += 1;
            }
            i = j + 1;
        } else if ch == '\'' {
            // A char literal ('x', '\n', '\u{..}') or a lifetime ('a).
            if at(i + 1) == '\\' {
                let mut j = i + 2;
                while j < c.len() && c[j] != '\'' {
                    j += 1;
                }
                i = j + 1;
            } else if at(i + 2) == '\'' {
                i += 3;
            } else {
                i += 1;
            }
        } else if ch.is_alphabetic() || ch == '_' {
            let start = i;
            while i < c.len() && (c[i].is_alphanumeric() || c[i] == '_') {
                i += 1;
            }
            out.push((Tok::Ident(c[start..i].iter().collect()), line));
        } else if ch == ':' && at(i + 1) == ':' {
            out.push((Tok::Sep, line));
            i += 2;
        } else {
            out.push((Tok::Punct(ch), line));
            i += 1;
        }
    }
    out
}

fn is(t: Option<&(Tok, usize)>, want: &Tok) -> bool {
    t.is_some_and(|(t, _)| t == want)
}

fn ident(t: Option<&(Tok, usize)>) -> Option<&str> {
    match t {
        Some((Tok::Ident(s), _)) => Some(s),
        _ => None,
    }
}

/// Drop every item under `#[cfg(test)]`: the attribute, any further
/// attributes, and the item up to its `;` or its closing `}`.
fn without_test_items(toks: Vec<(Tok, usize)>) -> Vec<(Tok, usize)> {
    let cfg_test = [
        Tok::Punct('#'),
        Tok::Punct('['),
        Tok::Ident("cfg".into()),
        Tok::Punct('('),
        Tok::Ident("test".into()),
        Tok::Punct(')'),
        Tok::Punct(']'),
    ];
    let mut out = Vec::new();
    let mut i = 0;
    while i < toks.len() {
        let here = toks[i..].iter().map(|(t, _)| t).take(cfg_test.len());
        if !here.eq(cfg_test.iter()) {
            out.push(toks[i].clone());
            i += 1;
            continue;
        }
        i += cfg_test.len();
        let mut depth = 0usize;
        while i < toks.len() {
            match &toks[i].0 {
                Tok::Punct('{' | '(' | '[') => depth += 1,
                Tok::Punct(')' | ']') => depth = depth.saturating_sub(1),
                Tok::Punct('}') => {
                    depth = depth.saturating_sub(1);
                    if depth == 0 {
                        i += 1;
                        break;
                    }
                }
                Tok::Punct(';') if depth == 0 => {
                    i += 1;
                    break;
                }
                _ => {}
            }
            i += 1;
        }
    }
    out
}

// ---------------------------------------------------------------------------
// Paths.

/// Every path in `text` (a file of module `module`) that starts at `crate`,
/// `self` or `super`, as segments from the crate root, with its line.
fn crate_paths(module: &[String], text: &str) -> Vec<(usize, Vec<String>)> {
    let toks = without_test_items(tokens(text));
    let mut out = Vec::new();
    // Inline `mod name { .. }` blocks: (name, brace depth inside it).
    let mut inline: Vec<(String, usize)> = Vec::new();
    let mut depth = 0usize;
    let mut i = 0;
    while i < toks.len() {
        match &toks[i].0 {
            Tok::Punct('{') => depth += 1,
            Tok::Punct('}') => {
                if inline.last().is_some_and(|(_, d)| *d == depth) {
                    inline.pop();
                }
                depth = depth.saturating_sub(1);
            }
            Tok::Ident(kw) if kw == "mod" => {
                if let Some(name) = ident(toks.get(i + 1))
                    && is(toks.get(i + 2), &Tok::Punct('{'))
                {
                    inline.push((name.to_string(), depth + 1));
                }
            }
            Tok::Ident(kw) if kw == "use" => {
                let line = toks[i].1;
                let mut j = i + 1;
                let mut paths = Vec::new();
                use_tree(&toks, &mut j, Vec::new(), &mut paths);
                for p in paths {
                    if let Some(abs) = resolve(&here(module, &inline), &p) {
                        out.push((line, abs));
                    }
                }
                i = j;
                continue;
            }
            Tok::Ident(first)
                if matches!(first.as_str(), "crate" | "super" | "self")
                    && is(toks.get(i + 1), &Tok::Sep)
                    && !is(toks.get(i.wrapping_sub(1)), &Tok::Sep) =>
            {
                let line = toks[i].1;
                let mut p = vec![first.clone()];
                let mut j = i + 1;
                while is(toks.get(j), &Tok::Sep)
                    && let Some(seg) = ident(toks.get(j + 1))
                {
                    p.push(seg.to_string());
                    j += 2;
                }
                if let Some(abs) = resolve(&here(module, &inline), &p) {
                    out.push((line, abs));
                }
                i = j;
                continue;
            }
            _ => {}
        }
        i += 1;
    }
    out
}

/// The module a token is in: the file's, and the inline modules around it.
fn here(module: &[String], inline: &[(String, usize)]) -> Vec<String> {
    let mut m = module.to_vec();
    m.extend(inline.iter().map(|(n, _)| n.clone()));
    m
}

/// Read one use tree at `*j`, pushing every full path it names (a glob
/// ends in `*`); `*j` ends after the tree.
fn use_tree(toks: &[(Tok, usize)], j: &mut usize, prefix: Vec<String>, out: &mut Vec<Vec<String>>) {
    let mut path = prefix;
    if is(toks.get(*j), &Tok::Sep) {
        *j += 1;
    }
    loop {
        match toks.get(*j).map(|(t, _)| t) {
            Some(Tok::Ident(s)) => {
                path.push(s.clone());
                *j += 1;
                if is(toks.get(*j), &Tok::Sep) {
                    *j += 1;
                    continue;
                }
                if ident(toks.get(*j)) == Some("as") {
                    *j += 2;
                }
                out.push(path);
                break;
            }
            Some(Tok::Punct('*')) => {
                *j += 1;
                path.push("*".into());
                out.push(path);
                break;
            }
            Some(Tok::Punct('{')) => {
                *j += 1;
                while !is(toks.get(*j), &Tok::Punct('}')) && *j < toks.len() {
                    use_tree(toks, j, path.clone(), out);
                    if is(toks.get(*j), &Tok::Punct(',')) {
                        *j += 1;
                    }
                }
                *j += 1;
                break;
            }
            _ => break,
        }
    }
    if is(toks.get(*j), &Tok::Punct(';')) {
        *j += 1;
    }
}

/// A path from the crate root, or `None` when it does not start at `crate`,
/// `self` or `super` (an extern crate or a name brought in by another `use`).
/// A trailing `self` (`use crate::syntax::{self}`) names its parent.
fn resolve(module: &[String], path: &[String]) -> Option<Vec<String>> {
    let mut abs: Vec<String> = match path.first().map(String::as_str) {
        Some("crate") => Vec::new(),
        Some("self" | "super") => module.to_vec(),
        _ => return None,
    };
    let mut rest = path
        .iter()
        .skip(usize::from(path.first().is_some_and(|s| s == "crate")));
    let mut leading = true;
    for seg in &mut rest {
        match seg.as_str() {
            "super" if leading => {
                abs.pop();
            }
            "self" if leading => {}
            "self" => {}
            _ => {
                leading = false;
                abs.push(seg.clone());
            }
        }
    }
    Some(abs)
}

#[test]
fn the_layer_check_sees_each_spelling() {
    let run = |module: &[&str], text: &str| -> Vec<String> {
        let module: Vec<String> = module.iter().map(ToString::to_string).collect();
        crate_paths(&module, text)
            .into_iter()
            .map(|(line, p)| format!("{line}:{}", p.join("::")))
            .collect()
    };
    let m = ["run", "scheduler"];
    assert_eq!(run(&m, "use crate::syntax::Span;"), ["1:syntax::Span"]);
    assert_eq!(
        run(&m, "use crate::{model::Step, syntax::{self, ast}};"),
        ["1:model::Step", "1:syntax", "1:syntax::ast"]
    );
    assert_eq!(run(&m, "use super::super::syntax as s;"), ["1:syntax"]);
    assert_eq!(
        run(&m, "use super::report::RunReport;"),
        ["1:run::report::RunReport"]
    );
    assert_eq!(run(&m, "use crate::*;"), ["1:*"]);
    assert_eq!(
        run(
            &m,
            "fn f() {\n    let x = crate::syntax::interp::escape(v);\n}"
        ),
        ["2:syntax::interp::escape"]
    );
    assert_eq!(
        run(&["run"], "fn f() { super::check::go() }"),
        ["1:check::go"]
    );
    // Inside an inline module, `super` is the file's module.
    assert_eq!(
        run(&m, "mod inner {\n    use super::super::lsp;\n}"),
        ["2:run::lsp"]
    );
    // Comments, strings and test items are not paths.
    assert!(
        run(
            &m,
            "// crate::syntax\n/* crate::syntax */ let s = \"crate::syntax::x\";"
        )
        .is_empty()
    );
    assert!(run(&m, "let s = r#\"use crate::syntax;\"#; let c = '\"';").is_empty());
    assert!(run(&m, "#[cfg(test)]\nmod tests {\n    use crate::check;\n}").is_empty());
    assert_eq!(
        run(&m, "#[cfg(test)]\nuse crate::check;\nuse crate::lsp;"),
        ["3:lsp"]
    );
    // Extern crates and names in scope are not crate paths.
    assert!(run(&m, "use std::path::Path; use serde::Serialize;").is_empty());
}
