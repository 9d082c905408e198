//! Cutting a `.topsail` file into lines: where each starts and ends, its
//! leading whitespace (tabs noted for the layout's report) and whether it is
//! blank, a comment or code.

#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) enum Kind {
    Blank,
    Comment,
    Code,
}

/// One source line. `end` excludes the line break (and a `\r` before it).
#[derive(Clone, Copy)]
pub(super) struct Line {
    pub(super) start: usize,
    pub(super) end: usize,
    /// Bytes of leading spaces and tabs.
    pub(super) ws: usize,
    /// Leading spaces before the first other character (tab included).
    pub(super) spaces: usize,
    /// Columns of the leading whitespace, a tab counting as 4, so that layout
    /// can still be followed after a tab was reported.
    pub(super) width: usize,
    /// Absolute offset of the first tab in the leading whitespace.
    pub(super) tab: Option<usize>,
    pub(super) kind: Kind,
}

pub(super) fn scan_lines(text: &str) -> Vec<Line> {
    let bytes = text.as_bytes();
    let mut lines = Vec::with_capacity(text.len() / 24 + 1);
    let mut start = if text.starts_with('\u{feff}') { 3 } else { 0 };
    loop {
        let (content_end, next) = match text[start..].find('\n') {
            Some(p) => (start + p, Some(start + p + 1)),
            None => (text.len(), None),
        };
        let end = if content_end > start && bytes[content_end - 1] == b'\r' {
            content_end - 1
        } else {
            content_end
        };
        let mut ws = 0;
        let mut width = 0;
        let mut tab = None;
        let mut spaces = None;
        while start + ws < end {
            match bytes[start + ws] {
                b' ' => width += 1,
                b'\t' => {
                    tab.get_or_insert(start + ws);
                    spaces.get_or_insert(ws);
                    width = (width / 4 + 1) * 4;
                }
                _ => break,
            }
            ws += 1;
        }
        let kind = if start + ws == end {
            Kind::Blank
        } else if bytes[start + ws] == b'#' {
            Kind::Comment
        } else {
            Kind::Code
        };
        lines.push(Line {
            start,
            end,
            ws,
            spaces: spaces.unwrap_or(ws),
            width,
            tab,
            kind,
        });
        match next {
            Some(n) => start = n,
            None => break,
        }
    }
    lines
}

/// The leading `[A-Za-z0-9_-]*` of a line: its keyword or step name.
pub(super) fn leading_word(s: &str) -> &str {
    let n = s
        .bytes()
        .take_while(|b| b.is_ascii_alphanumeric() || *b == b'_' || *b == b'-')
        .count();
    &s[..n]
}
