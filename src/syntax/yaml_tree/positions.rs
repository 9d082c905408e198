//! Positions: saphyr markers count characters; spans are bytes.

use crate::source::{FileId, LineIndex, Span};

/// Turns character indices into byte offsets, and finds lines (through the
/// one [`LineIndex`]). Built once per file; only non-ASCII characters are
/// recorded, so an ASCII file costs nothing and a lookup is a binary search.
pub(crate) struct Positions {
    pub(crate) file: FileId,
    len: usize,
    /// `(char index, byte offset just after that char)` for each multi-byte char.
    wide: Vec<(usize, usize)>,
    lines: LineIndex,
}

impl Positions {
    pub(super) fn new(text: &str, file: FileId) -> Self {
        let wide = text
            .char_indices()
            .enumerate()
            .filter(|(_, (_, c))| c.len_utf8() > 1)
            .map(|(ci, (bi, c))| (ci, bi + c.len_utf8()))
            .collect();
        Self {
            file,
            len: text.len(),
            wide,
            lines: LineIndex::new(text),
        }
    }

    pub(super) fn byte(&self, char_index: usize) -> usize {
        let k = self.wide.partition_point(|&(ci, _)| ci < char_index);
        let b = if k == 0 {
            char_index
        } else {
            let (ci, after) = self.wide[k - 1];
            after + (char_index - ci - 1)
        };
        b.min(self.len)
    }

    pub(super) fn span(&self, s: saphyr_parser::Span) -> Span {
        let start = self.byte(s.start.index());
        let end = self.byte(s.end.index()).max(start);
        Span::new(self.file, start, end)
    }

    /// 0-based line of a byte offset.
    pub(crate) fn line_of(&self, offset: usize) -> usize {
        self.lines.line_of(offset)
    }

    /// Byte range of line `line` without its line break.
    pub(crate) fn line(&self, text: &str, line: usize) -> Option<(usize, usize)> {
        self.lines.line(text, line, true)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn char_markers_become_byte_offsets() {
        let pos = Positions::new("aé€😀b", FileId(0));
        let bytes: Vec<usize> = (0..=5).map(|c| pos.byte(c)).collect();
        assert_eq!(bytes, [0, 1, 3, 6, 10, 11]);
    }
}
