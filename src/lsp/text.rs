//! Byte offsets (what spans hold) to LSP positions and back. LSP counts
//! columns in UTF-16 code units by default, so a line with `é` or an emoji
//! before a diagnostic must not shift it.

use lsp_types::{Position, Range};

/// The crate's one [`source::LineIndex`](crate::source::LineIndex), with
/// columns counted in UTF-16 units as LSP wants them.
pub struct LineIndex {
    lines: crate::source::LineIndex,
}

impl LineIndex {
    pub fn new(text: &str) -> Self {
        Self {
            lines: crate::source::LineIndex::new(text),
        }
    }

    /// The position of a byte offset (clamped to the text, and to a char boundary).
    pub fn position(&self, text: &str, offset: usize) -> Position {
        let (line, before) = self.lines.before(text, offset);
        let col: usize = before.chars().map(char::len_utf16).sum();
        Position::new(line as u32, col as u32)
    }

    pub fn range(&self, text: &str, start: usize, end: usize) -> Range {
        Range::new(self.position(text, start), self.position(text, end))
    }

    /// The byte offset of a position; past the end of a line means its end.
    pub fn offset(&self, text: &str, pos: Position) -> usize {
        let Some((start, end)) = self.lines.line(text, pos.line as usize, false) else {
            return text.len();
        };
        let mut units = 0;
        for (i, c) in text[start..end].char_indices() {
            if units >= pos.character as usize {
                return start + i;
            }
            units += c.len_utf16();
        }
        end
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn utf16_columns_round_trip() {
        let text = "a: b\n  é🙂x\nlast";
        let idx = LineIndex::new(text);
        let x = text.find('x').unwrap();
        // `é` is 1 UTF-16 unit, the emoji 2.
        assert_eq!(idx.position(text, x), Position::new(1, 5));
        assert_eq!(idx.offset(text, Position::new(1, 5)), x);
        assert_eq!(idx.offset(text, Position::new(0, 99)), 4);
        assert_eq!(idx.offset(text, Position::new(9, 0)), text.len());
        assert_eq!(idx.position(text, text.len()), Position::new(2, 4));
    }
}
