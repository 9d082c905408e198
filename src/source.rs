//! The ground floor: source files and places in them. File ids, byte spans,
//! the [`SourceMap`] of one check, the one line index every reader of
//! positions uses (diagnostics, the YAML reader, the language server), the
//! [`Format`] a file is read as, and reading files from disk ([`read`]).
//!
//! Boundaries: this module names nothing else in the crate, so every other
//! module may use it.

pub mod read;

use std::path::{Path, PathBuf};
use std::sync::Arc;

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

/// The start of every line of one text: byte offsets to lines and columns.
/// Built once per text in one pass; a lookup is a binary search.
#[derive(Clone, Debug)]
pub struct LineIndex {
    starts: Vec<usize>,
}

impl LineIndex {
    pub fn new(text: &str) -> Self {
        let starts = std::iter::once(0)
            .chain(text.match_indices('\n').map(|(i, _)| i + 1))
            .collect();
        Self { starts }
    }

    /// 0-based line of a byte offset (offsets past the end are on the last line).
    pub fn line_of(&self, offset: usize) -> usize {
        self.starts.partition_point(|&s| s <= offset) - 1
    }

    /// Byte offset where 0-based line `line` starts; `None` past the last line.
    pub fn line_start(&self, line: usize) -> Option<usize> {
        self.starts.get(line).copied()
    }

    /// Byte range of 0-based line `line` of `text` without its `\n` (or
    /// `\r\n` when `strip_cr`); `None` past the last line.
    pub fn line(&self, text: &str, line: usize, strip_cr: bool) -> Option<(usize, usize)> {
        let start = self.line_start(line)?;
        let mut end = self.starts.get(line + 1).map_or(text.len(), |&n| n - 1);
        if strip_cr && end > start && text.as_bytes().get(end - 1) == Some(&b'\r') {
            end -= 1;
        }
        Some((start, end))
    }

    /// 0-based line and the text of that line before `offset` (clamped to
    /// the text and back to a char boundary): what columns are counted over.
    pub fn before<'t>(&self, text: &'t str, offset: usize) -> (usize, &'t str) {
        let mut offset = offset.min(text.len());
        while !text.is_char_boundary(offset) {
            offset -= 1;
        }
        let line = self.line_of(offset);
        (line, &text[self.starts[line]..offset])
    }

    /// 1-based line and column (in characters) of a byte offset.
    pub fn line_col(&self, text: &str, offset: usize) -> (usize, usize) {
        let (line, before) = self.before(text, offset);
        (line + 1, before.chars().count() + 1)
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
    lines: LineIndex,
}

impl SourceFile {
    pub fn lines(&self) -> &LineIndex {
        &self.lines
    }
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
        let lines = LineIndex::new(&text);
        let id = FileId(u32::try_from(self.files.len()).expect("fewer than 4 billion files"));
        self.files.push(Arc::new(SourceFile {
            name: name.into(),
            path,
            text,
            format,
            lines,
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
        file.lines.line_col(&file.text, offset)
    }

    /// The text a span covers.
    pub fn slice(&self, span: Span) -> &str {
        let text = &self.get(span.file).text;
        text.get(span.start.min(text.len())..span.end.min(text.len()))
            .unwrap_or("")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_and_char_columns() {
        let text = "ab\r\n  é🙂x\nlast";
        let idx = LineIndex::new(text);
        let x = text.find('x').unwrap();
        assert_eq!(idx.line_col(text, x), (2, 5));
        assert_eq!(idx.line_col(text, 0), (1, 1));
        assert_eq!(idx.line_col(text, text.len() + 9), (3, 5));
        // Inside the `é`: counted from the char it is in.
        assert_eq!(idx.line_col(text, x - 5), (2, 3));
        assert_eq!(idx.line(text, 0, true), Some((0, 2)));
        assert_eq!(idx.line(text, 0, false), Some((0, 3)));
        assert_eq!(idx.line(text, 3, true), None);
        assert_eq!(idx.line_of(text.len()), 2);
    }
}
