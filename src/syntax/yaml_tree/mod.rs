//! The bounded YAML tree: YAML text -> a small node tree with a byte span on
//! every node, the one reading of YAML for every reader of pipeline files
//! (the YAML form, [`crate::syntax::yaml_form`], and the legacy manifest
//! reader, [`crate::syntax::legacy`]). It knows nothing of pipelines.
//!
//! We read saphyr-parser *events* and build our own small node tree rather
//! than use saphyr's `MarkedYamlOwned` loader, because the loader (1) stores
//! mappings in a hash map, silently dropping duplicate keys (a duplicate step
//! must reach the checker as two steps), (2) deep-clones anchored nodes for
//! every alias (a "billion laughs" file would exhaust memory) and (3) forgets
//! the raw text and style of scalars that we need for our own scalar rules.
//! Here aliases share an `Rc`, nesting depth and alias expansion are bounded,
//! and collection spans end at their last child instead of at the next token.
//!
//! `build.rs` turns events into nodes within those limits, `positions.rs` turns
//! saphyr's character markers into byte spans, and `scalar.rs` says what a
//! scalar means (the YAML 1.2 core schema plus durations).

mod build;
mod positions;
mod scalar;

use std::rc::Rc;

use saphyr_parser::ScalarStyle;

use crate::diagnostics::Diagnostic;
use crate::source::{FileId, Span};

pub(crate) use positions::Positions;
pub(crate) use scalar::{Plain, Scalar, classify_plain};

/// A YAML text read into the bounded node tree: the one reading of YAML that
/// both the YAML form ([`crate::syntax::yaml_form`]) and the legacy manifest
/// reader ([`crate::syntax::legacy`]) work on, so no reader can expand
/// aliases or nest without bound.
pub(crate) struct Tree {
    pub pos: Positions,
    /// `Err(())` when the YAML is unreadable; `Ok(None)` for no document.
    pub root: Result<Option<Rc<Node>>, ()>,
    /// What reading found (syntax errors, tags, a second document, ...).
    pub diags: Vec<Diagnostic>,
}

/// Read `text` (file `file`) into its bounded tree.
pub(crate) fn read(text: &str, file: FileId) -> Tree {
    let pos = Positions::new(text, file);
    let (root, diags) = build::build(text, &pos);
    Tree { pos, root, diags }
}

/// How many dedented flow closers [`read_lenient`] moves before it gives up.
const MAX_REPAIRS: usize = 64;

/// Read `text` as PyYAML and libyaml read it where they are more lenient
/// than YAML 1.2, for the first topsail's manifests only: a line holding
/// only the closers of a flow collection (`}`, `]`, `,`) indented at or left
/// of the key it belongs to is an error for saphyr, and those readers take
/// it. When the strict reading fails on such a line, the closers move to the
/// end of the line before (the text keeps its length, so every other span
/// stays where it was) and the text is read again. `None` when no such line
/// is at fault or the repaired text still fails; else the tree and the
/// spans of the moved closers, where the reader warns.
pub(crate) fn read_lenient(text: &str, file: FileId) -> Option<(Tree, Vec<Span>)> {
    let mut repaired = text.to_string();
    let mut moved = Vec::new();
    for _ in 0..MAX_REPAIRS {
        let tree = read(&repaired, file);
        if let Ok(root) = &tree.root {
            // A closer that landed in a scalar (a block scalar's text) changed
            // what the file says: refuse.
            let in_scalar = root.as_ref().is_some_and(|r| {
                moved
                    .iter()
                    .any(|&(_, at): &(Span, usize)| in_a_scalar(r, at))
            });
            if moved.is_empty() || in_scalar {
                return None;
            }
            return Some((tree, moved.into_iter().map(|(s, _)| s).collect()));
        }
        let at = tree
            .diags
            .iter()
            .find(|d| d.code == crate::diagnostics::codes::YAML)?
            .span
            .start;
        let (from, to, new_at) = move_closers(&mut repaired, at)?;
        moved.push((Span::new(file, from, to), new_at));
    }
    None
}

/// Move the closers-only line at or after the line of byte `at` (the first
/// non-blank one) to the end of the non-blank line before it; the byte range
/// of the closers in the original text, or `None` when those lines are not
/// of that shape, and where they are now.
fn move_closers(text: &mut String, at: usize) -> Option<(usize, usize, usize)> {
    let at = at.min(text.len());
    let line_start = text[..at].rfind('\n').map_or(0, |p| p + 1);
    // The closers line: this one, or the next non-blank one.
    let mut start = line_start;
    loop {
        let end = text[start..].find('\n').map_or(text.len(), |p| start + p);
        let line = &text[start..end];
        if !line.trim().is_empty() {
            break;
        }
        if end == text.len() {
            return None;
        }
        start = end + 1;
    }
    let end = text[start..].find('\n').map_or(text.len(), |p| start + p);
    let line = &text[start..end];
    let body = line.trim_end_matches([' ', '\r']);
    let indent = body.len() - body.trim_start_matches(' ').len();
    let closers = &body[indent..];
    if closers.is_empty()
        || !closers.starts_with(['}', ']'])
        || !closers.chars().all(|c| matches!(c, '}' | ']' | ',' | ' '))
    {
        return None;
    }
    // The non-blank line before it must end in code, not in a comment or a
    // block scalar's text where the closers would change meaning.
    let before = text[..start].trim_end_matches(['\n', ' ', '\r']);
    if before.is_empty() {
        return None;
    }
    let prev_start = before.rfind('\n').map_or(0, |p| p + 1);
    if before[prev_start..].contains('#') {
        return None;
    }
    // "PREV\n   }," -> "PREV},\n   ": the same bytes, the closers first.
    let from = before.len();
    let closers_at = start + indent;
    let closers_end = closers_at + closers.len();
    let gap = text[from..closers_at].to_string();
    let moved = format!("{closers}{gap}");
    text.replace_range(from..closers_end, &moved);
    Some((closers_at, closers_end, from))
}

/// Whether byte `at` lies inside the text of a scalar under `node`.
fn in_a_scalar(node: &Node, at: usize) -> bool {
    match &node.kind {
        Kind::Scalar { .. } => node.span.start <= at && at < node.span.end,
        Kind::Seq(items) => items.iter().any(|n| in_a_scalar(n, at)),
        Kind::Map(entries) => entries
            .iter()
            .any(|(k, v)| in_a_scalar(k, at) || in_a_scalar(v, at)),
    }
}

#[derive(Debug)]
pub(crate) struct Node {
    pub span: Span,
    pub kind: Kind,
    /// Nodes this one stands for once aliases are expanded (saturating).
    /// Bounded when reading, so a reader that expands aliases (the legacy
    /// reader copies them) makes at most this many nodes.
    pub size: usize,
}

#[derive(Debug)]
pub(crate) enum Kind {
    Scalar {
        text: String,
        style: ScalarStyle,
        /// The suffix of a core-schema tag (`!!str` -> `str`).
        tag: Option<String>,
    },
    Seq(Vec<Rc<Node>>),
    Map(Vec<(Rc<Node>, Rc<Node>)>),
}

impl Node {
    pub(crate) fn is_null(&self) -> bool {
        matches!(&self.kind, Kind::Scalar { .. }) && matches!(self.scalar(), Some(Scalar::Null))
    }

    /// What a scalar means under the YAML 1.2 core schema plus our duration rule.
    pub fn scalar(&self) -> Option<Scalar> {
        let Kind::Scalar { text, style, tag } = &self.kind else {
            return None;
        };
        Some(match tag.as_deref() {
            Some("str") => Scalar::Str,
            Some("null") => Scalar::Null,
            Some(t @ ("int" | "float" | "bool")) => match (t, classify_plain(text)) {
                ("int", p @ (Plain::Int(_) | Plain::BigInt))
                | ("float", p @ Plain::Float(_))
                | ("bool", p @ Plain::Bool(_)) => p.into(),
                ("float", Plain::Int(i)) => Scalar::Float(i as f64),
                _ => Scalar::BadTagged,
            },
            Some(_) => Scalar::BadTagged,
            None if *style == ScalarStyle::Plain => classify_plain(text).into(),
            None => Scalar::Str,
        })
    }

    pub fn text(&self) -> Option<&str> {
        match &self.kind {
            Kind::Scalar { text, .. } => Some(text),
            _ => None,
        }
    }

    /// The node in words, for a message saying what was found instead.
    pub(crate) fn what(&self) -> &'static str {
        match &self.kind {
            Kind::Seq(_) => "a list",
            Kind::Map(_) => "a map",
            Kind::Scalar { .. } => match self.scalar() {
                Some(Scalar::Null) => "nothing (null)",
                Some(Scalar::Bool(_)) => "a boolean",
                Some(Scalar::Int(_) | Scalar::BigInt) => "an integer",
                Some(Scalar::Float(_)) => "a number",
                Some(Scalar::Duration) => "a duration",
                _ => "a string",
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::{Kind, read, read_lenient};
    use crate::source::FileId;

    #[test]
    fn a_dedented_flow_closer_is_read_leniently_and_only_then() {
        let src = "a:\n  b: {c: 1\n  }\n  d: [x,\n    y\n]\ne: 2\n";
        assert!(read(src, FileId(0)).root.is_err());
        let (tree, moved) = read_lenient(src, FileId(0)).expect("lenient reading");
        let root = tree.root.expect("read").expect("a document");
        let Kind::Map(top) = &root.kind else {
            panic!("{root:?}")
        };
        assert_eq!(top.len(), 2, "{top:?}");
        // Each moved closer is named where it was written.
        assert!(!moved.is_empty());
        for span in &moved {
            assert!(
                src[span.start..span.end].starts_with(['}', ']']),
                "{span:?}"
            );
        }
        // Text that reads strictly needs no leniency.
        assert!(read_lenient("a: {b: 1}\n", FileId(0)).is_none());
        // A closer that would land in a block scalar's text is refused.
        assert!(read_lenient("a: |\n  x {\n}\n", FileId(0)).is_none());
    }
}
