//! Source text in, AST out. Two front ends produce the same [`ast::Module`]:
//! `.topsail` through the pest grammar in `grammar/topsail.pest`
//! ([`topsail`]), and the YAML form through a bounded node tree built from
//! saphyr-parser events ([`yaml`]), which the legacy manifest reader
//! ([`crate::legacy`]) reads too. Files are read from disk by [`read`] only. Spans are made here once and carried by every AST node.
//! The reverse direction (AST -> `.topsail` text, AST -> YAML text) lives in
//! [`print`] and [`emit_yaml`] and is used by `topsail fmt` and `topsail convert`.

pub mod ast;
pub mod emit_yaml;
pub mod interp;
pub mod print;
pub mod read;
pub mod topsail;
pub mod yaml;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::diagnostics::Diagnostic;

/// Index of a file in a [`SourceMap`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct FileId(pub u32);

/// A byte range `[start, end)` in one source file.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct Span {
    pub file: FileId,
    pub start: usize,
    pub end: usize,
}

impl Span {
    pub fn new(file: FileId, start: usize, end: usize) -> Self {
        Self { file, start, end }
    }

    /// The smallest span covering both (same file assumed; `self`'s file wins).
    #[must_use]
    pub fn to(self, other: Span) -> Span {
        Span {
            file: self.file,
            start: self.start.min(other.start),
            end: self.end.max(other.end),
        }
    }

    pub fn len(self) -> usize {
        self.end.saturating_sub(self.start)
    }

    pub fn is_empty(self) -> bool {
        self.len() == 0
    }
}

/// Which front end reads a file.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    Topsail,
    Yaml,
}

impl Format {
    /// `.yaml` / `.yml` are YAML; everything else is read as `.topsail`.
    pub fn of_path(path: &Path) -> Format {
        match path.extension().and_then(|e| e.to_str()) {
            Some("yaml" | "yml") => Format::Yaml,
            _ => Format::Topsail,
        }
    }
}

#[derive(Debug)]
pub struct SourceFile {
    /// The name shown in diagnostics: the path as the user gave it, or `std/NAME`.
    pub name: String,
    /// Where it was read from; `None` for embedded stdlib modules and strings.
    pub path: Option<PathBuf>,
    pub text: String,
    pub format: Format,
    line_starts: Vec<usize>,
}

/// Every source file of one check: the root file and all it imports.
#[derive(Debug, Default)]
pub struct SourceMap {
    files: Vec<Arc<SourceFile>>,
}

impl SourceMap {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn add(
        &mut self,
        name: impl Into<String>,
        path: Option<PathBuf>,
        text: String,
        format: Format,
    ) -> FileId {
        let line_starts = std::iter::once(0)
            .chain(text.match_indices('\n').map(|(i, _)| i + 1))
            .collect();
        let id = FileId(u32::try_from(self.files.len()).expect("fewer than 4 billion files"));
        self.files.push(Arc::new(SourceFile {
            name: name.into(),
            path,
            text,
            format,
            line_starts,
        }));
        id
    }

    pub fn get(&self, id: FileId) -> &SourceFile {
        &self.files[id.0 as usize]
    }

    pub fn files(&self) -> impl Iterator<Item = (FileId, &SourceFile)> {
        self.files
            .iter()
            .enumerate()
            .map(|(i, f)| (FileId(i as u32), f.as_ref()))
    }

    /// 1-based line and column (in characters) of a byte offset.
    pub fn line_col(&self, id: FileId, offset: usize) -> (usize, usize) {
        let file = self.get(id);
        let offset = offset.min(file.text.len());
        let line = match file.line_starts.binary_search(&offset) {
            Ok(i) => i,
            Err(i) => i - 1,
        };
        let start = file.line_starts[line];
        let col = file
            .text
            .get(start..offset)
            .map_or(offset - start, |s| s.chars().count());
        (line + 1, col + 1)
    }

    /// The text a span covers.
    pub fn slice(&self, span: Span) -> &str {
        let text = &self.get(span.file).text;
        text.get(span.start.min(text.len())..span.end.min(text.len()))
            .unwrap_or("")
    }
}

/// Parse one file with the front end its format asks for. Returns the module
/// (possibly partial) and every syntax diagnostic found.
pub fn parse(sources: &SourceMap, file: FileId) -> (Option<ast::Module>, Vec<Diagnostic>) {
    parse_with(sources, file, &[])
}

/// [`parse`], with the `--context` names a legacy service manifest (a YAML
/// file with a top-level `deployment_spec`, see [`crate::legacy`]) is read with.
pub fn parse_with(
    sources: &SourceMap,
    file: FileId,
    contexts: &[String],
) -> (Option<ast::Module>, Vec<Diagnostic>) {
    match sources.get(file).format {
        Format::Topsail => topsail::parse(sources, file),
        Format::Yaml => {
            // One bounded reading of the YAML, whichever reader then takes it.
            let text = &sources.get(file).text;
            let tree = yaml::read(text, file);
            if let Ok(Some(root)) = &tree.root
                && let Some((module, mut diags)) =
                    crate::legacy::parse(sources, file, root, contexts)
            {
                let mut all = tree.diags;
                all.append(&mut diags);
                return (module, all);
            }
            yaml::parse_tree(text, tree)
        }
    }
}
