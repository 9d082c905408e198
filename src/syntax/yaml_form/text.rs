//! Strings with `{{ }}` holes: a scalar's decoded text mapped back onto the
//! source, so each hole gets the exact span of its bytes where the scalar's
//! style allows it (plain, quoted without escapes, `|` blocks).

use saphyr_parser::ScalarStyle;

use super::Cx;
use crate::syntax::ast::{Interp, Part};
use crate::syntax::interp;
use crate::syntax::yaml_tree::{Kind, Node, Scalar};

/// How the decoded text of a scalar maps back onto the source.
pub(super) enum TextMap {
    /// Byte `i` of the text is byte `start + i` of the source.
    Contiguous(usize),
    /// A `|` block: `(offset in text, offset in source)` at each line start.
    Lines(Vec<(usize, usize)>),
    /// Escapes or folding: every hole gets the scalar's whole span.
    Whole,
}

impl Cx<'_> {
    pub(super) fn text_map(&self, node: &Node) -> TextMap {
        let Kind::Scalar { text, style, .. } = &node.kind else {
            return TextMap::Whole;
        };
        let src = &self.text[node.span.start..node.span.end];
        match style {
            ScalarStyle::Plain if src == text => TextMap::Contiguous(node.span.start),
            ScalarStyle::SingleQuoted | ScalarStyle::DoubleQuoted
                if src.len() >= 2 && &src[1..src.len() - 1] == text =>
            {
                TextMap::Contiguous(node.span.start + 1)
            }
            ScalarStyle::Literal => self.literal_lines(node.span.start, text),
            _ => TextMap::Whole,
        }
    }

    /// Map each line of a `|` block back to its source line: the block's
    /// first non-empty line starts at the node's span, and every content line
    /// must be its source line minus the same indentation (checked, so any
    /// surprise falls back to the whole span instead of a wrong one).
    fn literal_lines(&self, start: usize, text: &str) -> TextMap {
        let lines: Vec<&str> = text.split('\n').collect();
        let Some(first) = lines.iter().position(|l| !l.is_empty()) else {
            return TextMap::Whole;
        };
        let Some(base) = self.pos.line_of(start).checked_sub(first) else {
            return TextMap::Whole;
        };
        let mut indent = None;
        let mut map = Vec::with_capacity(lines.len());
        let mut offset = 0;
        for (k, line) in lines.iter().enumerate() {
            let Some((ls, le)) = self.pos.line(self.text, base + k) else {
                return TextMap::Whole;
            };
            if line.is_empty() {
                map.push((offset, le.min(ls + indent.unwrap_or(0))));
            } else {
                let src = &self.text[ls..le];
                let Some(prefix) = src.strip_suffix(line) else {
                    return TextMap::Whole;
                };
                if !prefix.bytes().all(|b| b == b' ') || indent.is_some_and(|i| i != prefix.len()) {
                    return TextMap::Whole;
                }
                indent = Some(prefix.len());
                map.push((offset, ls + prefix.len()));
            }
            offset += line.len() + 1;
        }
        TextMap::Lines(map)
    }

    /// A string-like scalar split into `{{ }}` holes with exact spans where
    /// the source allows it.
    pub(super) fn interp(&mut self, node: &Node, help: &str) -> Option<Interp> {
        let ok = matches!(
            node.scalar(),
            Some(
                Scalar::Str
                    | Scalar::Duration
                    | Scalar::Int(_)
                    | Scalar::BigInt
                    | Scalar::Float(_)
                    | Scalar::Bool(_)
            )
        );
        if !ok {
            self.expected(node, "a string", help);
            return None;
        }
        let text = node.text().unwrap_or_default();
        Some(self.split(text, node))
    }

    pub(super) fn split(&mut self, text: &str, node: &Node) -> Interp {
        let file = self.pos.file;
        let whole = node.span;
        match self.text_map(node) {
            TextMap::Contiguous(start) => {
                let (it, mut d) = interp::split(text, file, whole, &|i| start + i);
                self.diags.append(&mut d);
                it
            }
            TextMap::Lines(lines) => {
                let map = |i: usize| {
                    let k = lines.partition_point(|&(t, _)| t <= i).saturating_sub(1);
                    lines.get(k).map_or(whole.start, |&(t, s)| s + (i - t))
                };
                let (it, mut d) = interp::split(text, file, whole, &map);
                self.diags.append(&mut d);
                it
            }
            TextMap::Whole => {
                let (mut it, d) = interp::split(text, file, whole, &|_| whole.start);
                for part in &mut it.parts {
                    if let Part::Ref(r) = part {
                        r.span = whole;
                        for seg in &mut r.path {
                            seg.span = whole;
                        }
                    }
                }
                self.diags.extend(d.into_iter().map(|mut d| {
                    d.span = whole;
                    d
                }));
                it
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::tests::{diags, parse_ok, step};
    use crate::diagnostics::codes;
    use crate::syntax::ast::{DirectiveKind, Interp, Item, Part, ValueKind};

    fn hole_spans(src: &str) -> Vec<String> {
        let m = parse_ok(src);
        let mut out = Vec::new();
        let mut visit = |i: &Interp| {
            for p in &i.parts {
                if let Part::Ref(r) = p {
                    out.push(src[r.span.start..r.span.end].to_owned());
                    for seg in &r.path {
                        out.push(src[seg.span.start..seg.span.end].to_owned());
                    }
                }
            }
        };
        for item in &m.items {
            if let Item::Step(s) = item {
                for d in &s.body {
                    match &d.kind {
                        DirectiveKind::Run(i)
                        | DirectiveKind::Image(i)
                        | DirectiveKind::Approval(i) => visit(i),
                        DirectiveKind::Env(e) => {
                            if let ValueKind::Str(i) = &e.value.kind {
                                visit(i);
                            }
                        }
                        _ => {}
                    }
                }
            }
        }
        out
    }

    #[test]
    fn hole_spans_are_exact_in_plain_and_quoted_scalars() {
        assert_eq!(
            hole_spans(
                "steps:\n  s:\n    run: echo {{ a.B }} é {{c}}\n    approval: \"ok {{ d }}?\"\n    image: 'x:{{ e }}'\n"
            ),
            [
                "{{ a.B }}",
                "a",
                "B",
                "{{c}}",
                "c",
                "{{ d }}",
                "d",
                "{{ e }}",
                "e"
            ]
        );
    }

    #[test]
    fn hole_spans_in_a_block_literal_point_at_the_exact_bytes() {
        let src = "steps:\n  s:\n    run: |\n\n      echo ü {{ build.VERSION }}\n        indented {{ x }}\n\n      last {{y}}\n    image: a\n";
        assert_eq!(
            hole_spans(src),
            [
                "{{ build.VERSION }}",
                "build",
                "VERSION",
                "{{ x }}",
                "x",
                "{{y}}",
                "y"
            ]
        );
        let m = parse_ok(src);
        let DirectiveKind::Run(i) = &step(&m, "s").body[0].kind else {
            panic!()
        };
        assert_eq!(
            i.source_text(),
            "\necho ü {{ build.VERSION }}\n  indented {{ x }}\n\nlast {{ y }}\n"
        );
        // With an explicit indentation indicator too.
        let src = "steps:\n  s:\n    run: |2\n       lead {{ z }}\n";
        assert_eq!(hole_spans(src), ["{{ z }}", "z"]);
    }

    #[test]
    fn escaped_or_folded_scalars_fall_back_to_the_whole_span() {
        let src = "steps:\n  s:\n    run: \"a\\t{{ x }}\"\n    image: >\n      b {{ y }}\n";
        let m = parse_ok(src);
        let s = step(&m, "s");
        for d in &s.body {
            let (DirectiveKind::Run(i) | DirectiveKind::Image(i)) = &d.kind else {
                panic!()
            };
            let Part::Ref(r) = &i.parts[1] else { panic!() };
            assert_eq!(r.span, i.span);
        }
    }

    #[test]
    fn bad_holes_are_reported_with_their_span() {
        let src = "steps:\n  s:\n    run: echo {{ a b }}\n";
        let d = diags(src);
        assert_eq!(d.len(), 1);
        assert_eq!(d[0].code, codes::BAD_INTERPOLATION);
        assert_eq!(&src[d[0].span.start..d[0].span.end], "{{ a b }}");
    }
}
