//! The checker: AST -> checked [`Pipeline`]. It loads the root file and every
//! module it imports, then resolves names, expands templates, checks types and
//! builds the DAG, reporting every problem of every file as a diagnostic
//! (sorted by position), not just the first. Nothing downstream ever sees an
//! unchecked pipeline: a `Pipeline` exists only when there were no errors.
//!
//! This file loads the files; `lower` turns their declarations into the
//! model, phase by phase, with the help of `templates` (expansion of `use`),
//! `dag` (needs and cycles), `directives` (one step's directives), `refs`
//! (`{{ }}` references and `when` conditions) and `values` (literals, names,
//! durations and Step Functions' limits); `scope` holds what they share.

mod dag;
mod directives;
mod fleet;
mod lower;
mod refs;
mod scope;
mod templates;
mod values;

use std::path::{Path, PathBuf};

use crate::diagnostics::{self, Diagnostic, codes};
use crate::model::Pipeline;
use crate::source::read::{ReadError, read_source};
use crate::source::{FileId, Format, SourceMap, Span};
use crate::stdlib;
use crate::syntax::{self, ast};

/// The result of checking a root file and its imports.
pub struct Checked {
    /// `None` when there were errors.
    pub pipeline: Option<Pipeline>,
    pub sources: SourceMap,
    /// All diagnostics, errors and warnings, sorted by file and position.
    pub diagnostics: Vec<Diagnostic>,
    /// The parsed files. Kept so that a short-lived command can skip freeing
    /// them (`std::mem::forget`): for a large file, freeing the AST node by
    /// node costs about as much as checking it.
    #[allow(dead_code)]
    ast: Vec<Unit>,
}

impl Checked {
    pub fn has_errors(&self) -> bool {
        diagnostics::has_errors(&self.diagnostics)
    }

    /// Render every diagnostic for a person, in order.
    pub fn render(&self, color: bool) -> String {
        let width = terminal_width();
        self.diagnostics
            .iter()
            .map(|d| d.render(&self.sources, color, width))
            .collect::<Vec<_>>()
            .join("\n")
    }
}

fn terminal_width() -> usize {
    std::env::var("COLUMNS")
        .ok()
        .and_then(|c| c.parse().ok())
        .unwrap_or(100)
}

/// The root file could not be read at all (not a diagnostic: exit code 2).
#[derive(Debug, thiserror::Error)]
#[error("cannot read {}: {source}", path.display())]
pub struct LoadError {
    pub path: PathBuf,
    #[source]
    pub source: ReadError,
}

/// How to read the root file, beyond its text.
#[derive(Clone, Debug, Default)]
pub struct LoadOptions {
    /// `--context` names, in order, for a legacy service manifest.
    pub contexts: Vec<String>,
}

/// Read, parse and check the file at `path` and everything it imports.
pub fn load(path: &Path) -> Result<Checked, LoadError> {
    load_with(path, &LoadOptions::default())
}

/// [`load`] with options.
pub fn load_with(path: &Path, options: &LoadOptions) -> Result<Checked, LoadError> {
    let text = read_source(path).map_err(|source| LoadError {
        path: path.to_path_buf(),
        source,
    })?;
    Ok(check_source_with(
        &path.display().to_string(),
        Some(path.to_path_buf()),
        text,
        Format::of_path(path),
        options,
    ))
}

/// A parsed file and how it was imported.
pub(crate) struct Unit {
    pub module: ast::Module,
    /// `as MOD` of the import that brought it in; `None` for the root and
    /// for imports without an alias.
    pub alias: Option<String>,
    /// True for the root file.
    pub is_root: bool,
}

/// Check text that did not come from a file the checker should read itself
/// (tests, the language server). Relative imports resolve against `path`.
pub fn check_source(name: &str, path: Option<PathBuf>, text: String, format: Format) -> Checked {
    check_source_with(name, path, text, format, &LoadOptions::default())
}

/// [`check_source`] with options.
pub fn check_source_with(
    name: &str,
    path: Option<PathBuf>,
    text: String,
    format: Format,
    options: &LoadOptions,
) -> Checked {
    let mut sources = SourceMap::new();
    let root = sources.add(name, path.clone(), text, format);
    let mut diags = Vec::new();
    let units = load_units(&mut sources, root, &options.contexts, &mut diags);
    involve_lines(&sources, &mut diags);
    let default_name = path
        .as_deref()
        .and_then(Path::file_stem)
        .and_then(|s| s.to_str())
        .map_or_else(|| "pipeline".to_string(), str::to_string);
    let pipeline = lower::lower(&units, &default_name, &mut diags);
    diagnostics::drop_consequences(&mut diags);
    diagnostics::sort(&mut diags);
    let pipeline = if diagnostics::has_errors(&diags) {
        None
    } else {
        pipeline
    };
    Checked {
        pipeline,
        sources,
        diagnostics: diags,
        ast: units,
    }
}

/// A syntax error that does not say what its broken construct declared and
/// used (the YAML and legacy front ends do not yet) is taken to
/// involve the names on its line, as both: what follows from it is then
/// recognised by [`diagnostics::drop_consequences`].
fn involve_lines(sources: &SourceMap, diags: &mut [Diagnostic]) {
    // The `.topsail` parser marks most of its errors itself; one it does
    // not (a condition nested too deeply, say) is read by its line too.
    let unmarked = |d: &Diagnostic| {
        d.is_error()
            && d.involves.is_empty()
            && (sources.get(d.span.file).format != Format::Topsail || d.code == codes::SYNTAX)
    };
    for d in diags.iter_mut().filter(|d| unmarked(d)) {
        let text = &sources.get(d.span.file).text;
        let at = d.span.start.min(text.len());
        if !text.is_char_boundary(at) {
            continue;
        }
        let start = text[..at].rfind('\n').map_or(0, |i| i + 1);
        let end = text[at..].find('\n').map_or(text.len(), |i| at + i);
        for name in syntax::topsail::mentioned_names(&text[start..end]) {
            d.involves
                .push(diagnostics::Involved::Declares(name.to_string()));
            d.involves
                .push(diagnostics::Involved::Uses(name.to_string()));
        }
    }
}

/// Where imports may reach: the git repository holding the root file (the
/// nearest ancestor directory with a `.git`), or the root file's own
/// directory when it is in none. Canonical, so symlinks cannot escape it.
fn project_root(root: Option<&Path>) -> PathBuf {
    let dir = root
        .and_then(Path::parent)
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let dir = std::fs::canonicalize(dir).unwrap_or_else(|_| dir.to_path_buf());
    dir.ancestors()
        .find(|d| d.join(".git").exists())
        .unwrap_or(&dir)
        .to_path_buf()
}

/// One file to parse: which import brought it in (none for the root).
struct Queued {
    file: FileId,
    alias: Option<String>,
    /// Key of the file (canonical path, or `std/NAME`).
    key: String,
    /// The import's path span and the index of the importing file in the queue.
    import: Option<(Span, usize)>,
}

/// The import chain that leads from `key` back to `key` through the file at
/// `index`, when `key` is that file or one of the files importing it.
fn cycle(sources: &SourceMap, queue: &[Queued], index: usize, key: &str) -> Option<String> {
    let mut chain = vec![index];
    let mut at = index;
    while queue[at].key != key {
        at = queue[at].import?.1;
        chain.push(at);
    }
    let mut names: Vec<&str> = chain
        .iter()
        .rev()
        .map(|&i| sources.get(queue[i].file).name.as_str())
        .collect();
    names.push(sources.get(queue[at].file).name.as_str());
    Some(names.join(" -> "))
}

/// Parse the root and, breadth first, every module it imports (each once).
fn load_units(
    sources: &mut SourceMap,
    root: FileId,
    contexts: &[String],
    diags: &mut Vec<Diagnostic>,
) -> Vec<Unit> {
    let mut units = Vec::new();
    let project = project_root(sources.get(root).path.as_deref());
    let root_key = sources.get(root).path.as_deref().map_or_else(
        || "<root>".to_string(),
        |p| {
            std::fs::canonicalize(p)
                .unwrap_or_else(|_| p.to_path_buf())
                .display()
                .to_string()
        },
    );
    let mut queue = vec![Queued {
        file: root,
        alias: None,
        key: root_key,
        import: None,
    }];
    let mut next = 0;
    while next < queue.len() {
        let index = next;
        next += 1;
        let file = queue[index].file;
        let is_root = queue[index].import.is_none();
        let (module, parse_diags) =
            syntax::parse_with(sources, file, if is_root { contexts } else { &[] });
        let module = match queue[index].import {
            // An imported file that is no pipeline at all: its text is never
            // quoted (it may be anything: a key file, a password list); the
            // import says so.
            Some((span, _))
                if diagnostics::has_errors(&parse_diags)
                    && module.as_ref().is_none_or(|m| m.items.is_empty()) =>
            {
                let errors = parse_diags.iter().filter(|d| d.is_error()).count();
                diags.push(
                    Diagnostic::error(
                        codes::IMPORT,
                        span,
                        format!(
                            "`{}` is not a pipeline module: it does not parse ({errors} error{})",
                            sources.get(file).name,
                            if errors == 1 { "" } else { "s" }
                        ),
                    )
                    .label("imported here")
                    .help("import a `.topsail` or YAML pipeline file; `topsail check` on that file shows what is wrong"),
                );
                continue;
            }
            _ => {
                diags.extend(parse_diags);
                module
            }
        };
        let Some(module) = module else { continue };
        for item in &module.items {
            let ast::Item::Import(import) = item else {
                continue;
            };
            let located = match locate(sources, file, &project, import) {
                Ok(l) => l,
                Err(d) => {
                    diags.push(d);
                    continue;
                }
            };
            if queue.iter().any(|q| q.key == located.key) {
                // A diamond is fine (the file is loaded once); a cycle is not.
                if let Some(chain) = cycle(sources, &queue, index, &located.key) {
                    diags.push(
                        Diagnostic::error(
                            codes::IMPORT,
                            import.path_span,
                            format!("import cycle: {chain}"),
                        )
                        .label("this import closes the cycle")
                        .help("a module cannot import a file that imports it; move what both need into a third module"),
                    );
                }
                continue;
            }
            let text = match located.text {
                Some(text) => text,
                None => match located.canonical.as_deref().map(read_source) {
                    Some(Ok(text)) => text,
                    Some(Err(e)) => {
                        diags.push(
                            Diagnostic::error(
                                codes::IMPORT,
                                import.path_span,
                                format!("cannot read `{}`: {e}", located.name),
                            )
                            .label("imported here")
                            .help("the path is relative to the file that imports it"),
                        );
                        continue;
                    }
                    None => continue,
                },
            };
            let format = located
                .path
                .as_deref()
                .map_or(Format::Topsail, Format::of_path);
            let id = sources.add(located.name, located.path, text, format);
            queue.push(Queued {
                file: id,
                alias: import.alias.as_ref().map(|a| a.name.clone()),
                key: located.key,
                import: Some((import.path_span, index)),
            });
        }
        units.push(Unit {
            module,
            alias: queue[index].alias.clone(),
            is_root,
        });
    }
    units
}

/// `path` without the `.` components a join leaves inside it
/// (`././b.topsail` -> `./b.topsail`), for the names diagnostics show.
fn tidy(path: &Path) -> PathBuf {
    use std::path::Component;
    let mut out: PathBuf = path
        .components()
        .filter(|c| *c != Component::CurDir)
        .collect();
    if path.starts_with(".") && !out.starts_with("..") && out.is_relative() {
        out = Path::new(".").join(out);
    }
    out
}

/// Where an import points, before anything is read.
struct Located {
    /// The canonical path, or `std/NAME`.
    key: String,
    /// The name shown in diagnostics.
    name: String,
    /// The path of a file import as written (relative to the importer):
    /// its own imports resolve from there, and it is what diagnostics show.
    path: Option<PathBuf>,
    /// Where it really is (symlinks resolved, inside the project): what is read.
    canonical: Option<PathBuf>,
    /// The text of a standard module.
    text: Option<String>,
}

fn locate(
    sources: &SourceMap,
    from: FileId,
    project: &Path,
    import: &ast::Import,
) -> Result<Located, Diagnostic> {
    let span = import.path_span;
    if let Some(name) = import.path.strip_prefix("std/") {
        let name = name.strip_suffix(".topsail").unwrap_or(name);
        return if let Some(text) = stdlib::get(name) {
            Ok(Located {
                key: format!("std/{name}"),
                name: format!("std/{name}.topsail"),
                path: None,
                canonical: None,
                text: Some(text.to_string()),
            })
        } else {
            let mut d = Diagnostic::error(
                codes::IMPORT,
                span,
                format!("there is no standard module `std/{name}`"),
            )
            .label("unknown module");
            let all: Vec<&str> = stdlib::names().collect();
            d = match diagnostics::suggest(name, all.iter().copied()) {
                Some(s) => d.help(format!("did you mean `std/{s}`?")),
                None => d.help(format!(
                    "the standard modules are: {}",
                    all.iter()
                        .map(|n| format!("std/{n}"))
                        .collect::<Vec<_>>()
                        .join(", ")
                )),
            };
            Err(d)
        };
    }
    if !(import.path.starts_with("./") || import.path.starts_with("../")) {
        return Err(Diagnostic::error(
            codes::IMPORT,
            span,
            format!(
                "`{}` is neither a standard module nor a relative path",
                import.path
            ),
        )
        .label("cannot tell where to find this")
        .help("write `std/NAME` for a standard module, or start a file path with `./` or `../`"));
    }
    let base = sources
        .get(from)
        .path
        .as_deref()
        .and_then(Path::parent)
        .map_or_else(|| PathBuf::from("."), Path::to_path_buf);
    let path = tidy(&base.join(&import.path));
    let shown = path.display().to_string();
    let canonical = std::fs::canonicalize(&path).map_err(|e| {
        Diagnostic::error(codes::IMPORT, span, format!("cannot read `{shown}`: {e}"))
            .label("imported here")
            .help("the path is relative to the file that imports it")
    })?;
    if !canonical.starts_with(project) {
        return Err(Diagnostic::error(
            codes::IMPORT,
            span,
            format!("`{}` is outside the project", import.path),
        )
        .label("imports stay inside the project")
        .help(format!(
            "an import may only name a file under {} (the pipeline's git repository, or its directory outside one); copy the module into it",
            project.display()
        )));
    }
    if !matches!(
        canonical.extension().and_then(|e| e.to_str()),
        Some("topsail" | "yaml" | "yml")
    ) {
        return Err(Diagnostic::error(
            codes::IMPORT,
            span,
            format!("`{}` is not a pipeline module", import.path),
        )
        .label("not a `.topsail` or YAML file")
        .help("a module is a `.topsail`, `.yaml` or `.yml` file"));
    }
    Ok(Located {
        key: canonical.display().to_string(),
        name: shown,
        path: Some(path),
        canonical: Some(canonical),
        text: None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const EXAMPLES: &[&str] = &[
        include_str!("../../examples/hello.topsail"),
        include_str!("../../examples/fanout-deploy.topsail"),
        include_str!("../../examples/data-job.topsail"),
        include_str!("../../examples/container-image.topsail"),
    ];
    const YAML_EXAMPLE: &str = include_str!("../../examples/data-job.yaml");

    /// The checker's promise for any input: no panic; either a pipeline or
    /// at least one error; every diagnostic's span inside its file.
    fn holds(text: String, format: Format) -> Result<(), TestCaseError> {
        let checked = check_source("fuzz", None, text, format);
        prop_assert!(checked.pipeline.is_some() || checked.has_errors());
        prop_assert!(checked.pipeline.is_none() || !checked.has_errors());
        for d in &checked.diagnostics {
            let len = checked.sources.get(d.span.file).text.len();
            prop_assert!(
                d.span.start <= d.span.end && d.span.end <= len,
                "{d:?} outside 0..{len}"
            );
            prop_assert!(!d.help.is_empty(), "no help line: {d:?}");
            for (s, _) in &d.secondary {
                let len = checked.sources.get(s.file).text.len();
                prop_assert!(
                    s.start <= s.end && s.end <= len,
                    "secondary {s:?} outside 0..{len}"
                );
            }
        }
        Ok(())
    }

    #[derive(Debug, Clone)]
    enum Edit {
        Delete(usize, usize),
        Insert(usize, String),
        DupLine(usize),
        DropLine(usize),
        SwapLines(usize, usize),
    }

    fn edit() -> impl Strategy<Value = Edit> {
        let snippet = prop_oneof![
            Just(":".to_string()),
            Just("{{ ".to_string()),
            Just(" }}".to_string()),
            Just("\t".to_string()),
            Just("\"".to_string()),
            Just("\n".to_string()),
            Just("    ".to_string()),
            Just("needs-me".to_string()),
            Just("catch prepare".to_string()),
            Just("when !".to_string()),
            "[ -~]{0,12}".prop_map(|s| s),
        ];
        prop_oneof![
            (any::<usize>(), 0usize..20).prop_map(|(a, n)| Edit::Delete(a, n)),
            (any::<usize>(), snippet).prop_map(|(a, s)| Edit::Insert(a, s)),
            any::<usize>().prop_map(Edit::DupLine),
            any::<usize>().prop_map(Edit::DropLine),
            (any::<usize>(), any::<usize>()).prop_map(|(a, b)| Edit::SwapLines(a, b)),
        ]
    }

    fn apply(text: &str, edits: &[Edit]) -> String {
        let mut s = text.to_string();
        for e in edits {
            let at = |i: usize, s: &str| {
                let mut i = i % (s.len() + 1);
                while !s.is_char_boundary(i) {
                    i -= 1;
                }
                i
            };
            match e {
                Edit::Delete(a, n) => {
                    let start = at(*a, &s);
                    let end = at(start + n, &s).max(start);
                    s.replace_range(start..end, "");
                }
                Edit::Insert(a, t) => {
                    let i = at(*a, &s);
                    s.insert_str(i, t);
                }
                Edit::DupLine(i) | Edit::DropLine(i) => {
                    let mut lines: Vec<&str> = s.lines().collect();
                    if lines.is_empty() {
                        continue;
                    }
                    let k = i % lines.len();
                    if matches!(e, Edit::DupLine(_)) {
                        lines.insert(k, lines[k]);
                    } else {
                        lines.remove(k);
                    }
                    s = lines.join("\n");
                }
                Edit::SwapLines(a, b) => {
                    let mut lines: Vec<&str> = s.lines().collect();
                    if lines.is_empty() {
                        continue;
                    }
                    let (x, y) = (a % lines.len(), b % lines.len());
                    lines.swap(x, y);
                    s = lines.join("\n");
                }
            }
        }
        s
    }

    /// YAML built to expand or nest: `levels` anchors, each a list or map of
    /// `width` aliases to earlier anchors (a billion-laughs shape when every
    /// alias points one level down), a `depth`-deep flow nesting, merge keys
    /// of the last anchor into a step, and sometimes the legacy manifest key
    /// (the legacy reader copies aliases out).
    fn yaml_shape() -> impl Strategy<Value = String> {
        (
            1usize..12,
            1usize..12,
            0usize..300,
            any::<bool>(),
            any::<bool>(),
            proptest::collection::vec(0usize..8, 12),
        )
            .prop_map(|(levels, width, depth, as_map, legacy, back)| {
                use std::fmt::Write as _;
                let mut s = String::new();
                if legacy {
                    s.push_str("deployment_spec:\n  x: 1\n");
                }
                s.push_str("x-l0: &l0 {image: alpine, n: 1}\n");
                for k in 1..levels {
                    let refs: Vec<String> = (0..width)
                        .map(|i| format!("*l{}", (k - 1).saturating_sub(back[i] % k)))
                        .collect();
                    let body = if as_map {
                        let pairs: Vec<String> = refs
                            .iter()
                            .enumerate()
                            .map(|(i, r)| format!("k{i}: {r}"))
                            .collect();
                        format!("{{{}}}", pairs.join(", "))
                    } else {
                        format!("[{}]", refs.join(", "))
                    };
                    let _ = writeln!(s, "x-l{k}: &l{k} {body}");
                }
                let _ = writeln!(s, "x-deep: {}x{}", "[".repeat(depth), "]".repeat(depth));
                let _ = write!(
                    s,
                    "steps:\n  a:\n    <<: *l{}\n    run: echo a\n  b:\n    env: *l{}\n    run: echo b\n",
                    levels - 1,
                    levels / 2
                );
                s
            })
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 96, ..ProptestConfig::default() })]

        /// Alias and nesting shapes are read in bounded time (and so bounded
        /// memory: nothing is built faster than it is counted) and either
        /// accepted or refused with a diagnostic, never a panic.
        #[test]
        fn yaml_alias_and_nesting_shapes_are_bounded(text in yaml_shape()) {
            let start = std::time::Instant::now();
            holds(text.clone(), Format::Yaml)?;
            let took = start.elapsed();
            prop_assert!(took < std::time::Duration::from_secs(5), "{took:?} for {text}");
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 400, ..ProptestConfig::default() })]

        #[test]
        fn arbitrary_text_never_panics(text in "\\PC{0,300}") {
            holds(text.clone(), Format::Topsail)?;
            holds(text, Format::Yaml)?;
        }

        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
            let text = String::from_utf8_lossy(&bytes).into_owned();
            holds(text.clone(), Format::Topsail)?;
            holds(text, Format::Yaml)?;
        }

        #[test]
        fn mutated_examples_never_panic(which in 0..EXAMPLES.len(), edits in proptest::collection::vec(edit(), 1..6)) {
            holds(apply(EXAMPLES[which], &edits), Format::Topsail)?;
        }

        #[test]
        fn mutated_yaml_never_panics(edits in proptest::collection::vec(edit(), 1..6)) {
            holds(apply(YAML_EXAMPLE, &edits), Format::Yaml)?;
        }
    }
}
