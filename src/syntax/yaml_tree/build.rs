//! Events -> nodes: saphyr-parser's events built into the node tree, with
//! its limits (nesting depth, alias expansion, one document) and the wording
//! of YAML syntax errors.

use std::collections::HashMap;
use std::rc::Rc;

use saphyr_parser::{Event, Parser, ScalarStyle, ScanError, Tag};

use super::{Kind, Node, Positions};
use crate::diagnostics::{Diagnostic, codes};
use crate::source::Span;

/// Deeper nesting than this is no pipeline; bounding it keeps every recursive
/// walk (and the drop of the node tree) far from the stack limit.
const MAX_DEPTH: usize = 128;

struct Frame {
    start: Span,
    anchor: usize,
    size: usize,
    last_end: usize,
    kind: FrameKind,
}

enum FrameKind {
    Seq(Vec<Rc<Node>>),
    Map(Vec<(Rc<Node>, Rc<Node>)>, Option<Rc<Node>>),
}

/// Read the events of `text` into a node tree. `Err(())` when the YAML is
/// unreadable (the diagnostic is in the returned list); `Ok(None)` for an
/// empty document.
#[allow(clippy::result_unit_err)]
pub(super) fn build(
    text: &str,
    pos: &Positions,
) -> (Result<Option<Rc<Node>>, ()>, Vec<Diagnostic>) {
    let mut diags = Vec::new();
    // The scanner reads a NUL as the end of the text ("found unexpected end
    // of stream"): say what is wrong, and where, first.
    if let Some((at, c)) = text.char_indices().find(|&(_, c)| !is_yaml_printable(c)) {
        let what = if c == '\0' {
            "a NUL character (U+0000)".to_string()
        } else {
            format!("the control character U+{:04X}", u32::from(c))
        };
        diags.push(
            Diagnostic::error(
                codes::YAML,
                Span::new(pos.file, at, at + c.len_utf8()),
                format!("{what} is not allowed in a YAML file"),
            )
            .label("here")
            .help(format!(
                "YAML text may not hold control characters, even in quotes; inside a double-quoted string write it as an escape, e.g. `\\x{:02X}`",
                u32::from(c)
            )),
        );
        return (Err(()), diags);
    }
    let mut parser = Parser::new_from_str(text);
    let mut stack: Vec<Frame> = Vec::new();
    let mut anchors: HashMap<usize, Rc<Node>> = HashMap::new();
    let mut root: Option<Rc<Node>> = None;
    let mut docs = 0usize;
    let mut events = 0usize;
    while let Some(next) = parser.next_event() {
        let (event, raw_span) = match next {
            Ok(ev) => ev,
            Err(e) => {
                diags.push(scan_error(&e, text, pos));
                return (Err(()), diags);
            }
        };
        events += 1;
        let span = pos.span(raw_span);
        let mut done: Option<(Rc<Node>, usize)> = None;
        match event {
            Event::StreamStart | Event::Nothing | Event::DocumentEnd => {}
            Event::StreamEnd => break,
            Event::DocumentStart(_) => {
                docs += 1;
                if docs == 2 {
                    diags.push(
                        Diagnostic::error(
                            codes::YAML_SHAPE,
                            span,
                            "a pipeline file holds one YAML document",
                        )
                        .label("a second document starts here")
                        .help("put each pipeline in its own file; everything after this `---` is ignored"),
                    );
                }
            }
            Event::Alias(id) => {
                let Some(node) = anchors.get(&id) else {
                    diags.push(
                        Diagnostic::error(
                            codes::YAML,
                            span,
                            "alias to an anchor that is not finished",
                        )
                        .label("this alias refers to a node that contains it")
                        .help("an alias may only refer to a node defined completely before it"),
                    );
                    return (Err(()), diags);
                };
                done = Some((Rc::clone(node), 0));
            }
            Event::Scalar(value, style, anchor, tag) => {
                let tag = tag_suffix(tag.as_deref(), span, &value, &mut diags);
                // An empty plain scalar has an empty span; saphyr reports "~" for it.
                let text = if span.is_empty() && style == ScalarStyle::Plain {
                    String::new()
                } else {
                    value.into_owned()
                };
                let node = Node {
                    span,
                    kind: Kind::Scalar { text, style, tag },
                    size: 1,
                };
                done = Some((Rc::new(node), anchor));
            }
            Event::SequenceStart(anchor, ref tag) | Event::MappingStart(anchor, ref tag) => {
                tag_suffix(tag.as_deref(), span, "", &mut diags);
                if stack.len() >= MAX_DEPTH {
                    diags.push(
                        Diagnostic::error(codes::YAML, span, "YAML nested too deeply")
                            .label(format!("more than {MAX_DEPTH} levels of lists and maps"))
                            .help(
                                "a pipeline needs only a few levels; check for a runaway structure",
                            ),
                    );
                    return (Err(()), diags);
                }
                let kind = if matches!(event, Event::SequenceStart(..)) {
                    FrameKind::Seq(Vec::new())
                } else {
                    FrameKind::Map(Vec::new(), None)
                };
                stack.push(Frame {
                    start: span,
                    anchor,
                    size: 1,
                    last_end: span.end,
                    kind,
                });
            }
            Event::SequenceEnd | Event::MappingEnd => {
                let Some(frame) = stack.pop() else {
                    continue;
                };
                // Block collections end where their last child ends (the end
                // event sits at the next token); flow ones at `]` / `}`.
                let end = if span.is_empty() {
                    frame.last_end
                } else {
                    span.end
                };
                let kind = match frame.kind {
                    FrameKind::Seq(items) => Kind::Seq(items),
                    FrameKind::Map(entries, _) => Kind::Map(entries),
                };
                let node = Node {
                    span: Span::new(pos.file, frame.start.start, end.max(frame.start.start)),
                    kind,
                    size: frame.size,
                };
                // A legitimate file expands aliases a few times over; a
                // "billion laughs" file expands exponentially.
                if node.size > 100_000 + 10 * events {
                    diags.push(
                        Diagnostic::error(codes::YAML, node.span, "aliases expand to too much")
                            .label(format!("this expands to over {} nodes", node.size))
                            .help("aliases here nest exponentially; write the content out instead"),
                    );
                    return (Err(()), diags);
                }
                done = Some((Rc::new(node), frame.anchor));
            }
        }
        let Some((node, anchor)) = done else {
            continue;
        };
        if anchor > 0 {
            anchors.insert(anchor, Rc::clone(&node));
        }
        if let Some(parent) = stack.last_mut() {
            parent.size = parent.size.saturating_add(node.size);
            parent.last_end = parent.last_end.max(node.span.end);
            match &mut parent.kind {
                FrameKind::Seq(items) => items.push(node),
                FrameKind::Map(entries, pending) => match pending.take() {
                    Some(key) => entries.push((key, node)),
                    None => *pending = Some(node),
                },
            }
        } else if docs <= 1 && root.is_none() {
            root = Some(node);
        }
    }
    (Ok(root), diags)
}

/// YAML 1.2's printable set (`c-printable`): what a YAML stream may hold.
fn is_yaml_printable(c: char) -> bool {
    matches!(c, '\t' | '\n' | '\r' | ' '..='~' | '\u{85}' | '\u{A0}'..='\u{D7FF}' | '\u{E000}'..='\u{FFFD}')
        || c >= '\u{10000}'
}

/// Core-schema tags are kept (their suffix); any other tag is reported.
fn tag_suffix(
    tag: Option<&Tag>,
    span: Span,
    value: &str,
    diags: &mut Vec<Diagnostic>,
) -> Option<String> {
    let tag = tag?;
    if tag.is_yaml_core_schema() {
        return Some(tag.suffix.clone());
    }
    let shown = tag.to_string();
    let help = if tag.handle == "!" && value.is_empty() {
        format!("`{shown}` is read as a YAML tag; quote the text, e.g. `when: \"{shown}\"`")
    } else {
        format!("remove `{shown}`, or quote the value if `!` is part of the text")
    };
    diags.push(
        Diagnostic::error(
            codes::YAML_SHAPE,
            span,
            format!("YAML tag `{shown}` is not supported"),
        )
        .label("tagged here")
        .help(help),
    );
    None
}

fn scan_error(e: &ScanError, text: &str, pos: &Positions) -> Diagnostic {
    let start = pos.byte(e.marker().index());
    let end = text[start..]
        .chars()
        .next()
        .map_or(start, |c| start + c.len_utf8());
    let info = e.info();
    let help = if info.contains("recursion limit") {
        "lists and maps nest too deeply here; a pipeline needs only a few levels"
    } else if info.contains("tab") {
        "indent YAML with spaces, not tabs"
    } else if info.contains("mapping values are not allowed") || info.contains("placement of ':'") {
        "a value that contains `: ` must be quoted, e.g. `run: \"echo a: b\"`"
    } else if info.contains("anchor") {
        "define an anchor with `&NAME` before using it as `*NAME`"
    } else if info.contains("did not find expected") || info.contains("indent") {
        "check the indentation: the keys of one map must line up in the same column"
    } else {
        "check the indentation and quoting here; quote values that start with one of `-?:,[]{}#&*!|>'\"%@`"
    };
    Diagnostic::error(
        codes::YAML,
        Span::new(pos.file, start, end),
        format!("invalid YAML: {info}"),
    )
    .label("here")
    .help(help)
}

#[cfg(test)]
mod tests {
    use super::super::read;
    use crate::diagnostics::{Diagnostic, codes};
    use crate::source::FileId;

    /// What reading `src` reports; every span lies inside the text.
    fn diags(src: &str) -> Vec<Diagnostic> {
        let d = read(src, FileId(0)).diags;
        for x in &d {
            assert!(
                x.span.start <= x.span.end && x.span.end <= src.len(),
                "{x:?}"
            );
        }
        d
    }

    #[test]
    fn syntax_errors_have_a_position_and_help() {
        for src in [
            "steps:\n  a: [b\n  c: d\n",
            "a: b\n\tc: d\n",
            "x: *nope\n",
            "a: b: c\n",
        ] {
            let d = diags(src);
            assert_eq!(d.len(), 1, "{src:?}: {d:#?}");
            assert_eq!(d[0].code, codes::YAML);
            assert!(!d[0].help.is_empty());
        }
        let d = diags("steps:\n  a: [b\n  c: d\n");
        assert_eq!(d[0].span.start, 18, "at the `:` after `c`");
    }

    #[test]
    fn hostile_documents_are_refused_not_followed() {
        let mut bomb = String::from("a: &a [x, x, x, x, x, x, x, x, x, x]\n");
        for i in 0..12 {
            let _ = std::fmt::Write::write_fmt(
                &mut bomb,
                format_args!(
                    "b{i}: &b{i} [{0}, {0}, {0}, {0}, {0}, {0}, {0}, {0}, {0}, {0}]\n",
                    if i == 0 {
                        "*a".to_owned()
                    } else {
                        format!("*b{}", i - 1)
                    }
                ),
            );
        }
        let d = diags(&bomb);
        assert_eq!(d[0].code, codes::YAML);
        let deep = "[".repeat(100_000);
        let d = diags(&deep);
        assert_eq!(d.len(), 1);
        let d = diags("steps: {}\n---\nsteps: {}\n");
        assert_eq!(d[0].code, codes::YAML_SHAPE);
        assert!(diags("").is_empty());
        assert!(diags("# only a comment\n").is_empty());
    }
}
