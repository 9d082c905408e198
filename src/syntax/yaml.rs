//! The YAML front end: YAML text -> the same [`ast::Module`] the `.topsail`
//! parser builds (LANGUAGE.md section 8), with a byte span on every node.
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
//! Top-level keys starting with `x-` are ignored (the docker-compose
//! convention), so shared defaults can be written once with an anchor
//! (`x-rust: &rust {image: rust:1.80}`) and merged into steps (`<<: *rust`).
//!
//! This module only checks *shape* (which keys, maps, lists and scalars go
//! where) and name syntax; meaning (types, references, the DAG) is the
//! checker's job. Every problem becomes a diagnostic; no input panics.

use std::collections::{HashMap, HashSet};
use std::rc::Rc;

use saphyr_parser::{Event, Parser, ScalarStyle, ScanError, Tag};

use crate::diagnostics::{Diagnostic, codes, suggest};
use crate::model::text;
use crate::source::{FileId, LineIndex, SourceMap, Span};
use crate::syntax::ast::{
    Arg, Directive, DirectiveKind, EnvVar, Expr, Foreach, ForeachItems, Ident, Import, Interp,
    Item, Module, Param, Part, Retry, Step, Template, Use, Value, ValueKind,
};
use crate::syntax::{interp, topsail};

/// Deeper nesting than this is no pipeline; bounding it keeps every recursive
/// walk (and the drop of the node tree) far from the stack limit.
const MAX_DEPTH: usize = 128;

const TOP_KEYS: &[&str] = &[
    "pipeline",
    "params",
    "secrets",
    "image",
    "env",
    "imports",
    "templates",
    "steps",
];
/// The keys of a step or template body: one per directive, after the key that
/// only that kind of body has (`needs` for a step, `params` for a template).
macro_rules! body_keys {
    ($first:literal) => {
        &[
            $first,
            "image",
            "run",
            "shell",
            "env",
            "workdir",
            "outputs",
            "secrets",
            "timeout",
            "heartbeat",
            "retry",
            "when",
            "foreach",
            "approval",
            "catch",
            "use",
        ]
    };
}
const STEP_KEYS: &[&str] = body_keys!("needs");
const TEMPLATE_KEYS: &[&str] = body_keys!("params");
const PARAM_KEYS: &[&str] = &["type", "default"];
const RETRY_KEYS: &[&str] = &["attempts", "every", "backoff"];
const FOREACH_KEYS: &[&str] = &["var", "in"];
const USE_KEYS: &[&str] = &["template", "with"];
const IMPORT_KEYS: &[&str] = &["path", "as"];

/// Parse the YAML file `file` of `sources`.
pub fn parse(sources: &SourceMap, file: FileId) -> (Option<Module>, Vec<Diagnostic>) {
    parse_str(&sources.get(file).text, file)
}

/// Parse YAML text that is file `file`. `None` only when the YAML itself is
/// unreadable (a syntax error); shape errors still give a partial module.
pub fn parse_str(text: &str, file: FileId) -> (Option<Module>, Vec<Diagnostic>) {
    parse_tree(text, read(text, file))
}

/// A YAML text read into the bounded node tree: the one reading of YAML that
/// both this front end and the legacy manifest reader ([`crate::syntax::legacy`])
/// work on, so no reader can expand aliases or nest without bound.
pub(crate) struct Tree {
    pos: Positions,
    /// `Err(())` when the YAML is unreadable; `Ok(None)` for no document.
    pub root: Result<Option<Rc<Node>>, ()>,
    /// What reading found (syntax errors, tags, a second document, ...).
    pub diags: Vec<Diagnostic>,
}

/// Read `text` (file `file`) into its bounded tree.
pub(crate) fn read(text: &str, file: FileId) -> Tree {
    let pos = Positions::new(text, file);
    let (root, diags) = build(text, &pos);
    Tree { pos, root, diags }
}

/// The pipeline a [`Tree`] of `text` holds.
pub(crate) fn parse_tree(text: &str, tree: Tree) -> (Option<Module>, Vec<Diagnostic>) {
    let Tree {
        pos,
        root,
        mut diags,
    } = tree;
    let Ok(root) = root else {
        return (None, diags);
    };
    let mut cx = Cx {
        text,
        pos: &pos,
        diags: Vec::new(),
        reported: HashSet::new(),
    };
    let module = cx.module(root.as_ref());
    diags.append(&mut cx.diags);
    (Some(module), diags)
}

// ---------------------------------------------------------------------------
// Positions: saphyr markers count characters; spans are bytes.

/// Turns character indices into byte offsets, and finds lines (through the
/// one [`LineIndex`]). Built once per file; only non-ASCII characters are
/// recorded, so an ASCII file costs nothing and a lookup is a binary search.
struct Positions {
    file: FileId,
    len: usize,
    /// `(char index, byte offset just after that char)` for each multi-byte char.
    wide: Vec<(usize, usize)>,
    lines: LineIndex,
}

impl Positions {
    fn new(text: &str, file: FileId) -> Self {
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

    fn byte(&self, char_index: usize) -> usize {
        let k = self.wide.partition_point(|&(ci, _)| ci < char_index);
        let b = if k == 0 {
            char_index
        } else {
            let (ci, after) = self.wide[k - 1];
            after + (char_index - ci - 1)
        };
        b.min(self.len)
    }

    fn span(&self, s: saphyr_parser::Span) -> Span {
        let start = self.byte(s.start.index());
        let end = self.byte(s.end.index()).max(start);
        Span::new(self.file, start, end)
    }

    /// 0-based line of a byte offset.
    fn line_of(&self, offset: usize) -> usize {
        self.lines.line_of(offset)
    }

    /// Byte range of line `line` without its line break.
    fn line(&self, text: &str, line: usize) -> Option<(usize, usize)> {
        self.lines.line(text, line, true)
    }
}

// ---------------------------------------------------------------------------
// The node tree.

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
    fn is_null(&self) -> bool {
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

    fn what(&self) -> &'static str {
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

#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum Scalar {
    Null,
    Bool(bool),
    Int(i64),
    BigInt,
    Float(f64),
    Duration,
    Str,
    BadTagged,
}

/// How a plain (unquoted) scalar reads: the YAML 1.2 core schema, plus
/// `^[0-9]+[A-Za-z]+$` as a duration. The emitter quotes every string for
/// which this is not [`Plain::Str`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum Plain {
    Null,
    Bool(bool),
    Int(i64),
    /// An integer that does not fit in i64.
    BigInt,
    Float(f64),
    Duration,
    Str,
}

impl From<Plain> for Scalar {
    fn from(p: Plain) -> Self {
        match p {
            Plain::Null => Scalar::Null,
            Plain::Bool(b) => Scalar::Bool(b),
            Plain::Int(i) => Scalar::Int(i),
            Plain::BigInt => Scalar::BigInt,
            Plain::Float(f) => Scalar::Float(f),
            Plain::Duration => Scalar::Duration,
            Plain::Str => Scalar::Str,
        }
    }
}

pub(crate) fn classify_plain(s: &str) -> Plain {
    match s {
        "" | "~" | "null" | "Null" | "NULL" => return Plain::Null,
        "true" | "True" | "TRUE" => return Plain::Bool(true),
        "false" | "False" | "FALSE" => return Plain::Bool(false),
        ".inf" | ".Inf" | ".INF" | "+.inf" | "+.Inf" | "+.INF" => {
            return Plain::Float(f64::INFINITY);
        }
        "-.inf" | "-.Inf" | "-.INF" => return Plain::Float(f64::NEG_INFINITY),
        ".nan" | ".NaN" | ".NAN" => return Plain::Float(f64::NAN),
        _ => {}
    }
    let digits = |t: &str, radix: u32| !t.is_empty() && t.chars().all(|c| c.is_digit(radix));
    if let Some(hex) = s.strip_prefix("0x")
        && digits(hex, 16)
    {
        return i64::from_str_radix(hex, 16).map_or(Plain::BigInt, Plain::Int);
    }
    if let Some(oct) = s.strip_prefix("0o")
        && digits(oct, 8)
    {
        return i64::from_str_radix(oct, 8).map_or(Plain::BigInt, Plain::Int);
    }
    let unsigned = s.strip_prefix(['-', '+']).unwrap_or(s);
    if digits(unsigned, 10) {
        return s.parse::<i64>().map_or(Plain::BigInt, Plain::Int);
    }
    if is_core_float(unsigned)
        && let Ok(f) = s.parse::<f64>()
    {
        return Plain::Float(f);
    }
    let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    if split > 0 && split < s.len() && s[split..].chars().all(|c| c.is_ascii_alphabetic()) {
        return Plain::Duration;
    }
    Plain::Str
}

/// `(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)?` (sign already stripped).
fn is_core_float(s: &str) -> bool {
    let b = s.as_bytes();
    let mut i = 0;
    let int_digits = b.iter().take_while(|c| c.is_ascii_digit()).count();
    i += int_digits;
    let mut frac_digits = 0;
    if b.get(i) == Some(&b'.') {
        i += 1;
        frac_digits = b[i..].iter().take_while(|c| c.is_ascii_digit()).count();
        i += frac_digits;
    }
    if int_digits == 0 && frac_digits == 0 {
        return false;
    }
    if matches!(b.get(i), Some(b'e' | b'E')) {
        i += 1;
        if matches!(b.get(i), Some(b'-' | b'+')) {
            i += 1;
        }
        let exp = b[i..].iter().take_while(|c| c.is_ascii_digit()).count();
        if exp == 0 {
            return false;
        }
        i += exp;
    }
    i == b.len()
}

// ---------------------------------------------------------------------------
// Events -> nodes.

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
fn build(text: &str, pos: &Positions) -> (Result<Option<Rc<Node>>, ()>, Vec<Diagnostic>) {
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

// ---------------------------------------------------------------------------
// Nodes -> AST.

struct Cx<'a> {
    text: &'a str,
    pos: &'a Positions,
    diags: Vec<Diagnostic>,
    /// Repeated merge keys already reported (a map reached through several
    /// aliases is read several times, and reported once).
    reported: HashSet<usize>,
}

/// How the decoded text of a scalar maps back onto the source.
enum TextMap {
    /// Byte `i` of the text is byte `start + i` of the source.
    Contiguous(usize),
    /// A `|` block: `(offset in text, offset in source)` at each line start.
    Lines(Vec<(usize, usize)>),
    /// Escapes or folding: every hole gets the scalar's whole span.
    Whole,
}

#[derive(Clone, Copy)]
enum NameKind {
    /// `[A-Za-z_][A-Za-z0-9_-]*`: steps, params, outputs, templates, ...
    Name,
    /// `[A-Za-z_][A-Za-z0-9_]*`: secrets and env vars.
    Env,
}

impl Cx<'_> {
    fn shape(&mut self, span: Span, message: impl Into<String>, help: impl Into<String>) {
        self.diags.push(
            Diagnostic::error(codes::YAML_SHAPE, span, message)
                .label("here")
                .help(help),
        );
    }

    fn expected(&mut self, node: &Node, expected: &str, help: &str) {
        let message = format!("expected {expected}, found {}", node.what());
        self.shape(node.span, message, help);
    }

    fn unknown_key(&mut self, key: &Node, name: &str, allowed: &[&str], place: &str) {
        let help = match suggest(name, allowed.iter().copied()) {
            Some(s) => format!("did you mean `{s}`?"),
            None => format!("the keys allowed {place} are: {}", allowed.join(", ")),
        };
        self.diags.push(
            Diagnostic::error(
                codes::UNKNOWN_KEY,
                key.span,
                format!("unknown key `{name}` {place}"),
            )
            .label("not a known key")
            .help(help),
        );
    }

    /// The entries of a map with `<<` merge keys resolved: merged entries take
    /// the merge key's place, and keys written in the map itself win.
    fn entries(&mut self, map: &Node) -> Vec<(Rc<Node>, Rc<Node>)> {
        let Kind::Map(entries) = &map.kind else {
            return Vec::new();
        };
        let is_merge = |k: &Node| matches!(&k.kind, Kind::Scalar { text, style: ScalarStyle::Plain, tag: None } if text == "<<");
        if !entries.iter().any(|(k, _)| is_merge(k)) {
            return entries.clone();
        }
        let mut seen: HashSet<String> = entries
            .iter()
            .filter(|(k, _)| !is_merge(k))
            .filter_map(|(k, _)| k.text().map(str::to_owned))
            .collect();
        let mut out = Vec::new();
        let mut first_merge: Option<Span> = None;
        for (k, v) in entries {
            if !is_merge(k) {
                out.push((Rc::clone(k), Rc::clone(v)));
                continue;
            }
            if let Some(first) = first_merge {
                if self.reported.insert(k.span.start) {
                    self.diags.push(
                        Diagnostic::error(
                            codes::YAML_SHAPE,
                            k.span,
                            "a second `<<` merge key in one map",
                        )
                        .label("repeated merge key")
                        .secondary(first, "the first `<<` is here")
                        .help("YAML allows each key once in a map: merge several maps with one key, `<<: [*a, *b]`"),
                    );
                }
            } else {
                first_merge = Some(k.span);
            }
            let sources: Vec<Rc<Node>> = match &v.kind {
                Kind::Map(_) => vec![Rc::clone(v)],
                Kind::Seq(items) if items.iter().all(|i| matches!(i.kind, Kind::Map(_))) => {
                    items.clone()
                }
                _ => {
                    self.expected(
                        v,
                        "a map or a list of maps to merge",
                        "`<<: *anchor` merges the map defined with `&anchor`",
                    );
                    continue;
                }
            };
            for source in sources {
                for (mk, mv) in self.entries(&source) {
                    let fresh = match mk.text() {
                        Some(t) => seen.insert(t.to_owned()),
                        None => true,
                    };
                    if fresh {
                        out.push((mk, mv));
                    }
                }
            }
        }
        out
    }

    /// Whether `key` (the key node `k`) is new among `seen`; a repeated key
    /// is reported, pointing at both: YAML allows a key once per map, and
    /// reading both (or only one) would silently change the pipeline.
    fn first_time(
        &mut self,
        seen: &mut Vec<(String, Span)>,
        key: &str,
        k: &Node,
        place: &str,
    ) -> bool {
        if let Some((_, first)) = seen.iter().find(|(s, _)| s == key) {
            self.diags.push(
                Diagnostic::error(
                    codes::YAML_SHAPE,
                    k.span,
                    format!("`{key}` is given twice {place}"),
                )
                .label("repeated key")
                .secondary(*first, "first given here")
                .help(format!(
                    "a key may appear once in a map: merge the two into one `{key}`"
                )),
            );
            return false;
        }
        seen.push((key.to_owned(), k.span));
        true
    }

    /// A map's entries, or none (with a diagnostic) when `node` is not a map.
    /// A null value is an empty map.
    fn map_entries(
        &mut self,
        node: &Node,
        expected: &str,
        help: &str,
    ) -> Vec<(Rc<Node>, Rc<Node>)> {
        match &node.kind {
            Kind::Map(_) => self.entries(node),
            _ if node.is_null() => Vec::new(),
            _ => {
                self.expected(node, expected, help);
                Vec::new()
            }
        }
    }

    /// The text of a key, which must be a string scalar.
    fn key_text(&mut self, key: &Node) -> Option<String> {
        if let Some(Scalar::Str) = key.scalar() {
            key.text().map(str::to_owned)
        } else {
            self.expected(
                key,
                "a key name",
                "keys are plain words like `image` or `steps`",
            );
            None
        }
    }

    /// Fields of a small fixed-shape map (`retry`, `foreach`, ...): unknown
    /// and repeated keys are reported here.
    fn fields(
        &mut self,
        map: &Node,
        allowed: &[&str],
        place: &str,
    ) -> Vec<(String, Rc<Node>, Rc<Node>)> {
        let mut out: Vec<(String, Rc<Node>, Rc<Node>)> = Vec::new();
        for (k, v) in self.entries(map) {
            let Some(name) = self.key_text(&k) else {
                continue;
            };
            if !allowed.contains(&name.as_str()) {
                self.unknown_key(&k, &name, allowed, place);
            } else if out.iter().any(|(n, _, _)| *n == name) {
                self.shape(
                    k.span,
                    format!("`{name}` is given twice"),
                    "keep one of them",
                );
            } else {
                out.push((name, k, v));
            }
        }
        out
    }

    fn text_map(&self, node: &Node) -> TextMap {
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
    fn interp(&mut self, node: &Node, help: &str) -> Option<Interp> {
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

    fn split(&mut self, text: &str, node: &Node) -> Interp {
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

    /// A name: a string scalar with name syntax (reported, but still returned,
    /// when the syntax is wrong so later stages see the item).
    fn name(&mut self, node: &Node, what: &str, kind: NameKind) -> Option<Ident> {
        let text = if let Some(Scalar::Str | Scalar::Duration) = node.scalar() {
            node.text().unwrap_or_default()
        } else {
            self.expected(
                node,
                &format!("a {what} name"),
                "names are words like `build` or `REGION`",
            );
            return None;
        };
        self.check_name(text, node.span, what, kind);
        Some(Ident {
            name: text.to_owned(),
            span: match self.text_map(node) {
                TextMap::Contiguous(s) => Span::new(self.pos.file, s, s + text.len()),
                _ => node.span,
            },
        })
    }

    fn check_name(&mut self, text: &str, span: Span, what: &str, kind: NameKind) {
        let (ok, rule) = match kind {
            NameKind::Name => (
                text::is_name(text),
                "start with a letter or `_`, then letters, digits, `_` or `-`",
            ),
            NameKind::Env => (
                text::is_env_name(text),
                "start with a letter or `_`, then letters, digits or `_`",
            ),
        };
        if !ok {
            self.diags.push(
                Diagnostic::error(
                    codes::BAD_NAME,
                    span,
                    format!("`{text}` is not a valid {what} name"),
                )
                .label("invalid name")
                .help(format!("{what} names {rule}")),
            );
        }
    }

    /// A list of names; a single scalar counts as a one-item list.
    fn names(&mut self, node: &Node, what: &str, kind: NameKind) -> Vec<Ident> {
        match &node.kind {
            Kind::Seq(items) => items
                .iter()
                .filter_map(|i| self.name(i, what, kind))
                .collect(),
            Kind::Scalar { .. } if node.is_null() => Vec::new(),
            Kind::Scalar { .. } => self.name(node, what, kind).into_iter().collect(),
            Kind::Map(_) => {
                self.expected(
                    node,
                    &format!("a list of {what} names"),
                    "write a list like `[a, b]`",
                );
                Vec::new()
            }
        }
    }

    fn value(&mut self, node: &Node) -> Option<Value> {
        let kind = match &node.kind {
            Kind::Seq(items) => {
                ValueKind::List(items.iter().filter_map(|i| self.value(i)).collect())
            }
            Kind::Map(_) => {
                self.expected(
                    node,
                    "a value (string, number, boolean, duration or list)",
                    "a map is not allowed here",
                );
                return None;
            }
            Kind::Scalar { text, .. } => match node.scalar() {
                Some(Scalar::Bool(b)) => ValueKind::Bool(b),
                Some(Scalar::Int(i)) => ValueKind::Int(i),
                Some(Scalar::Float(f)) => ValueKind::Float(f),
                Some(Scalar::Duration) => ValueKind::Duration(text.clone()),
                Some(Scalar::Str) => ValueKind::Str(self.split(text, node)),
                Some(Scalar::BigInt) => {
                    self.shape(
                        node.span,
                        "integer out of range",
                        "integers must fit in 64 bits; quote it to make it a string",
                    );
                    return None;
                }
                Some(Scalar::BadTagged) => {
                    self.shape(
                        node.span,
                        "the value does not match its tag",
                        "remove the tag or fix the value",
                    );
                    return None;
                }
                Some(Scalar::Null) | None => {
                    self.expected(node, "a value", "write `\"\"` for an empty string");
                    return None;
                }
            },
        };
        Some(Value {
            kind,
            span: node.span,
        })
    }

    // -- top level ---------------------------------------------------------

    fn module(&mut self, root: Option<&Rc<Node>>) -> Module {
        let span = Span::new(self.pos.file, 0, self.text.len());
        let mut items = Vec::new();
        if let Some(root) = root {
            let entries = self.map_entries(
                root,
                "a map of top-level keys",
                "a pipeline file is a map with keys like `pipeline`, `params` and `steps`",
            );
            let mut seen = Vec::new();
            for (k, v) in entries {
                if let Some(key) = self.key_text(&k)
                    && self.first_time(&mut seen, &key, &k, "at the top level")
                {
                    self.top_item(&key, &k, &v, &mut items);
                }
            }
        }
        Module {
            items,
            comments: Vec::new(),
            span,
        }
    }

    fn top_item(&mut self, key: &str, k: &Node, v: &Node, items: &mut Vec<Item>) {
        match key {
            "pipeline" => {
                if let Some(name) = self.name(v, "pipeline", NameKind::Name) {
                    items.push(Item::Pipeline(name));
                }
            }
            "params" => {
                for (pk, pv) in self.map_entries(
                    v,
                    "a map of params",
                    "write `params:` then one `NAME: DEFAULT` or `NAME: {type: TYPE}` per line",
                ) {
                    if let Some(p) = self.param(&pk, &pv) {
                        items.push(Item::Param(p));
                    }
                }
            }
            "secrets" => {
                for name in self.names(v, "secret", NameKind::Env) {
                    items.push(Item::Secret(name));
                }
            }
            "image" => {
                if let Some(i) =
                    self.interp(v, "write the image reference, e.g. `image: alpine:3.20`")
                {
                    items.push(Item::Image(i));
                }
            }
            "env" => {
                for (ek, ev) in self.map_entries(
                    v,
                    "a map of environment variables",
                    "write `env: {NAME: VALUE}`",
                ) {
                    if let Some(e) = self.env_var(&ek, &ev) {
                        items.push(Item::Env(e));
                    }
                }
            }
            "imports" => match &v.kind {
                Kind::Seq(list) => {
                    for entry in list {
                        if let Some(i) = self.import(entry) {
                            items.push(Item::Import(i));
                        }
                    }
                }
                _ if v.is_null() => {}
                _ => self.expected(
                    v,
                    "a list of imports",
                    "write `imports: [std/notify]` or a list of `{path: ..., as: NAME}`",
                ),
            },
            "templates" => {
                for (tk, tv) in self.map_entries(
                    v,
                    "a map of templates",
                    "write `templates:` then `NAME:` and the template's keys",
                ) {
                    if let Some(t) = self.template(&tk, &tv) {
                        items.push(Item::Template(t));
                    }
                }
            }
            "steps" => {
                for (sk, sv) in self.map_entries(
                    v,
                    "a map of steps",
                    "write `steps:` then `NAME:` and the step's keys, one step per entry",
                ) {
                    if let Some(s) = self.step(&sk, &sv) {
                        items.push(Item::Step(s));
                    }
                }
            }
            extension if extension.starts_with("x-") => {}
            other => self.unknown_key(k, other, TOP_KEYS, "at the top level"),
        }
    }

    fn param(&mut self, k: &Node, v: &Node) -> Option<Param> {
        let name = self.name(k, "param", NameKind::Name)?;
        let span = k.span.to(v.span);
        let (ty, default) = match &v.kind {
            Kind::Map(_) => {
                let mut ty = None;
                let mut default = None;
                for (field, _, fv) in self.fields(v, PARAM_KEYS, "in a param") {
                    if field == "type" {
                        ty = self.name(&fv, "type", NameKind::Name);
                    } else {
                        default = self.value(&fv);
                    }
                }
                (ty, default)
            }
            _ if v.is_null() => (None, None),
            _ => (None, Some(self.value(v)?)),
        };
        Some(Param {
            name,
            ty,
            default,
            span,
        })
    }

    fn env_var(&mut self, k: &Node, v: &Node) -> Option<EnvVar> {
        let name = self.name(k, "environment variable", NameKind::Env)?;
        let value = self.value(v)?;
        Some(EnvVar {
            name,
            value,
            span: k.span.to(v.span),
        })
    }

    fn import(&mut self, entry: &Rc<Node>) -> Option<Import> {
        let (path_node, alias) = match &entry.kind {
            Kind::Map(_) => {
                let mut path = None;
                let mut alias = None;
                for (field, _, fv) in self.fields(entry, IMPORT_KEYS, "in an import") {
                    if field == "path" {
                        path = Some(fv);
                    } else {
                        alias = self.name(&fv, "module alias", NameKind::Name);
                    }
                }
                let Some(path) = path else {
                    self.shape(
                        entry.span,
                        "import without `path`",
                        "write `{path: ./lib.topsail, as: lib}`",
                    );
                    return None;
                };
                (path, alias)
            }
            _ => (Rc::clone(entry), None),
        };
        if path_node.scalar() != Some(Scalar::Str) {
            self.expected(
                &path_node,
                "a module path",
                "write `std/NAME` or a relative path like `./lib.topsail`",
            );
            return None;
        }
        Some(Import {
            path: path_node.text().unwrap_or_default().to_owned(),
            path_span: path_node.span,
            alias,
            span: entry.span,
        })
    }

    fn template(&mut self, k: &Node, v: &Node) -> Option<Template> {
        let name = self.name(k, "template", NameKind::Name)?;
        let mut params = Vec::new();
        let mut body = Vec::new();
        let mut seen = Vec::new();
        let place = format!("in template `{}`", name.name);
        for (dk, dv) in self.map_entries(
            v,
            "a map of template keys",
            "a template has `params` and the same keys as a step",
        ) {
            let Some(key) = self.key_text(&dk) else {
                continue;
            };
            if !self.first_time(&mut seen, &key, &dk, &place) {
                continue;
            }
            if key == "params" {
                for (pk, pv) in self.map_entries(
                    &dv,
                    "a map of params",
                    "write `params: {NAME: DEFAULT, OTHER: {type: string}}`",
                ) {
                    params.extend(self.param(&pk, &pv));
                }
            } else if !self.directive(&key, &dk, &dv, &mut body) {
                self.unknown_key(&dk, &key, TEMPLATE_KEYS, "in a template");
            }
        }
        Some(Template {
            name,
            params,
            body,
            span: k.span.to(v.span),
        })
    }

    fn step(&mut self, k: &Node, v: &Node) -> Option<Step> {
        let name = self.name(k, "step", NameKind::Name)?;
        let mut needs = Vec::new();
        let mut body = Vec::new();
        let mut seen = Vec::new();
        let place = format!("in step `{}`", name.name);
        for (dk, dv) in self.map_entries(
            v,
            "a map of step keys",
            "a step is a map with keys like `needs`, `image` and `run`",
        ) {
            let Some(key) = self.key_text(&dk) else {
                continue;
            };
            if !self.first_time(&mut seen, &key, &dk, &place) {
                continue;
            }
            if key == "needs" {
                needs.extend(self.names(&dv, "step", NameKind::Name));
            } else if !self.directive(&key, &dk, &dv, &mut body) {
                self.unknown_key(&dk, &key, STEP_KEYS, "in a step");
            }
        }
        Some(Step {
            name,
            needs,
            body,
            span: k.span.to(v.span),
        })
    }

    /// One step key -> its directives. `false` when the key is unknown.
    fn directive(&mut self, key: &str, k: &Node, v: &Node, out: &mut Vec<Directive>) -> bool {
        let kw = k.span;
        let whole = kw.to(v.span);
        let mut push = |kind: DirectiveKind, span: Span| {
            out.push(Directive {
                kind,
                span,
                keyword_span: kw,
            });
        };
        match key {
            "image" | "shell" | "workdir" | "approval" => {
                let help = match key {
                    "image" => "write the image reference, e.g. `image: rust:1.80`",
                    "shell" => "write the interpreter, e.g. `shell: bash`",
                    "workdir" => "write a path, e.g. `workdir: /src`",
                    _ => "write the message, e.g. `approval: \"Deploy?\"`",
                };
                if let Some(i) = self.interp(v, help) {
                    let kind = match key {
                        "image" => DirectiveKind::Image(i),
                        "shell" => DirectiveKind::Shell(i),
                        "workdir" => DirectiveKind::Workdir(i),
                        _ => DirectiveKind::Approval(i),
                    };
                    push(kind, whole);
                }
            }
            "run" => {
                let help = "write the script as a string, a `|` block, or a list of strings";
                if let Kind::Seq(lines) = &v.kind {
                    for line in lines {
                        if let Some(i) = self.interp(line, help) {
                            push(DirectiveKind::Run(i), kw.to(line.span));
                        }
                    }
                } else if let Some(i) = self.interp(v, help) {
                    push(DirectiveKind::Run(i), whole);
                }
            }
            "env" => {
                for (ek, ev) in self.map_entries(
                    v,
                    "a map of environment variables",
                    "write `env: {NAME: VALUE}`",
                ) {
                    if let Some(e) = self.env_var(&ek, &ev) {
                        let span = kw.to(e.span);
                        push(DirectiveKind::Env(Box::new(e)), span);
                    }
                }
            }
            "outputs" => {
                for name in self.names(v, "output", NameKind::Name) {
                    let span = kw.to(name.span);
                    push(DirectiveKind::Output(name), span);
                }
            }
            "secrets" => {
                for name in self.names(v, "secret", NameKind::Env) {
                    let span = kw.to(name.span);
                    push(DirectiveKind::Secret(name), span);
                }
            }
            "timeout" | "heartbeat" => {
                if let Some(value) = self.value(v) {
                    let kind = if key == "timeout" {
                        DirectiveKind::Timeout(value)
                    } else {
                        DirectiveKind::Heartbeat(value)
                    };
                    push(kind, whole);
                }
            }
            "retry" => {
                if let Some(r) = self.retry(v) {
                    push(DirectiveKind::Retry(Box::new(r)), whole);
                }
            }
            "when" => {
                if let Some(e) = self.when(v) {
                    push(DirectiveKind::When(Box::new(e)), whole);
                }
            }
            "foreach" => {
                if let Some(f) = self.foreach(v) {
                    push(DirectiveKind::Foreach(Box::new(f)), whole);
                }
            }
            "catch" => {
                if let Some(name) = self.name(v, "step", NameKind::Name) {
                    push(DirectiveKind::Catch(name), whole);
                }
            }
            "use" => {
                if let Some(u) = self.use_(v) {
                    push(DirectiveKind::Use(u), whole);
                }
            }
            _ => return false,
        }
        true
    }

    fn retry(&mut self, v: &Node) -> Option<Retry> {
        if !matches!(v.kind, Kind::Map(_)) {
            return Some(Retry {
                attempts: self.value(v)?,
                every: None,
                backoff: None,
            });
        }
        let mut retry = Retry {
            attempts: Value {
                kind: ValueKind::Int(0),
                span: v.span,
            },
            every: None,
            backoff: None,
        };
        let mut attempts = false;
        for (field, _, fv) in self.fields(v, RETRY_KEYS, "in `retry`") {
            let value = self.value(&fv);
            match field.as_str() {
                "attempts" => {
                    attempts = true;
                    retry.attempts = value?;
                }
                "every" => retry.every = value,
                _ => retry.backoff = value,
            }
        }
        if !attempts {
            self.shape(
                v.span,
                "`retry` without `attempts`",
                "write `retry: {attempts: 2, every: 10s, backoff: 2.0}` or just `retry: 2`",
            );
            return None;
        }
        Some(retry)
    }

    fn when(&mut self, v: &Node) -> Option<Expr> {
        if !matches!(v.kind, Kind::Scalar { .. }) || v.is_null() {
            self.expected(
                v,
                "an expression",
                "write the condition as a string, e.g. `when: \"!dry_run\"`",
            );
            return None;
        }
        let text = v.text().unwrap_or_default();
        let offset = match self.text_map(v) {
            TextMap::Contiguous(s) => s,
            _ => v.span.start,
        };
        match topsail::parse_expr(text, self.pos.file, offset) {
            Ok(e) => Some(e),
            Err(mut d) => {
                if !matches!(self.text_map(v), TextMap::Contiguous(_)) {
                    d.span = v.span;
                }
                self.diags.push(d);
                None
            }
        }
    }

    fn foreach(&mut self, v: &Node) -> Option<Foreach> {
        if !matches!(v.kind, Kind::Map(_)) {
            self.expected(
                v,
                "a map `{var: NAME, in: LIST}`",
                "write `foreach: {var: r, in: [a, b]}` or `in: a_list_param`",
            );
            return None;
        }
        let mut var = None;
        let mut items = None;
        for (field, _, fv) in self.fields(v, FOREACH_KEYS, "in `foreach`") {
            if field == "var" {
                var = self.name(&fv, "loop variable", NameKind::Name);
            } else if matches!(fv.kind, Kind::Seq(_)) {
                items = self.value(&fv).map(ForeachItems::List);
            } else if fv.scalar() == Some(Scalar::Str) {
                items = self
                    .name(&fv, "param", NameKind::Name)
                    .map(ForeachItems::Param);
            } else {
                self.expected(
                    &fv,
                    "a list or the name of a list param",
                    "write `in: [a, b]` or `in: regions`",
                );
            }
        }
        match (var, items) {
            (Some(var), Some(items)) => Some(Foreach { var, items }),
            (None, _) if !self.has_field(v, "var") => {
                self.shape(
                    v.span,
                    "`foreach` without `var`",
                    "write `foreach: {var: r, in: [a, b]}`",
                );
                None
            }
            (_, None) if !self.has_field(v, "in") => {
                self.shape(
                    v.span,
                    "`foreach` without `in`",
                    "write `foreach: {var: r, in: [a, b]}`",
                );
                None
            }
            _ => None,
        }
    }

    fn has_field(&mut self, map: &Node, name: &str) -> bool {
        self.entries(map)
            .iter()
            .any(|(k, _)| k.text() == Some(name))
    }

    fn use_(&mut self, v: &Node) -> Option<Use> {
        if !matches!(v.kind, Kind::Map(_)) {
            self.expected(
                v,
                "a map `{template: NAME, with: {ARG: VALUE}}`",
                "write `use: {template: docker-build, with: {tag: v1}}`",
            );
            return None;
        }
        let mut template = None;
        let mut args = Vec::new();
        for (field, _, fv) in self.fields(v, USE_KEYS, "in `use`") {
            if field == "template" {
                template = self.template_ref(&fv);
            } else {
                for (ak, av) in self.map_entries(
                    &fv,
                    "a map of template arguments",
                    "write `with: {ARG: VALUE}`",
                ) {
                    let name = self.name(&ak, "argument", NameKind::Name);
                    let value = self.value(&av);
                    if let (Some(name), Some(value)) = (name, value) {
                        args.push(Arg { name, value });
                    }
                }
            }
        }
        let Some(template) = template else {
            if !self.has_field(v, "template") {
                self.shape(
                    v.span,
                    "`use` without `template`",
                    "write `use: {template: NAME, with: {...}}`",
                );
            }
            return None;
        };
        Some(Use {
            template,
            args,
            span: v.span,
        })
    }

    /// `NAME` or `MOD.NAME`, each part with its own span when possible.
    fn template_ref(&mut self, node: &Node) -> Option<Vec<Ident>> {
        if node.scalar() != Some(Scalar::Str) {
            self.expected(
                node,
                "a template name",
                "write `template: NAME` or `template: MOD.NAME`",
            );
            return None;
        }
        let text = node.text().unwrap_or_default();
        let start = match self.text_map(node) {
            TextMap::Contiguous(s) => Some(s),
            _ => None,
        };
        let mut out = Vec::new();
        let mut offset = 0;
        for seg in text.split('.') {
            let span = start.map_or(node.span, |s| {
                Span::new(self.pos.file, s + offset, s + offset + seg.len())
            });
            self.check_name(seg, span, "template", NameKind::Name);
            out.push(Ident {
                name: seg.to_owned(),
                span,
            });
            offset += seg.len() + 1;
        }
        if out.len() > 2 {
            self.shape(
                node.span,
                "a template reference has at most two parts",
                "write `NAME` or `MOD.NAME`",
            );
            return None;
        }
        Some(out)
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::syntax::ast::ExprKind;

    const FULL: &str = include_str!("../../tests/fixtures/yaml/full.yaml");

    /// The `Debug` form of a module with every span blanked out, so two
    /// modules can be compared "modulo spans".
    pub(crate) fn strip(m: &Module) -> String {
        let text = format!("{m:#?}");
        let mut out = String::with_capacity(text.len());
        let mut rest = text.as_str();
        while let Some(i) = rest.find("Span {") {
            out.push_str(&rest[..i]);
            out.push('S');
            let after = &rest[i..];
            let close = after.find('}').map_or(after.len(), |c| c + 1);
            rest = &after[close..];
        }
        out.push_str(rest);
        out
    }

    pub(crate) fn parse_ok(src: &str) -> Module {
        let (m, d) = parse_str(src, FileId(0));
        assert!(
            d.is_empty(),
            "unexpected diagnostics: {d:#?}\n--- in:\n{src}"
        );
        m.expect("a module when there are no diagnostics")
    }

    fn diags(src: &str) -> Vec<Diagnostic> {
        let (_, d) = parse_str(src, FileId(0));
        for x in &d {
            assert!(
                x.span.start <= x.span.end && x.span.end <= src.len(),
                "{x:?}"
            );
        }
        d
    }

    fn step<'m>(m: &'m Module, name: &str) -> &'m Step {
        m.items
            .iter()
            .find_map(|i| match i {
                Item::Step(s) if s.name.name == name => Some(s),
                _ => None,
            })
            .expect("step exists")
    }

    fn kinds(s: &Step) -> Vec<&'static str> {
        s.body.iter().map(|d| d.kind.keyword()).collect()
    }

    #[test]
    fn full_example_maps_every_key() {
        let m = parse_ok(FULL);
        let shown: Vec<String> = m
            .items
            .iter()
            .map(|i| match i {
                Item::Pipeline(n) => format!("pipeline {}", n.name),
                Item::Param(p) => format!("param {}", p.name.name),
                Item::Secret(n) => format!("secret {}", n.name),
                Item::Image(_) => "image".into(),
                Item::Env(e) => format!("env {}", e.name.name),
                Item::Import(i) => {
                    format!("import {} {:?}", i.path, i.alias.as_ref().map(|a| &a.name))
                }
                Item::Template(t) => format!("template {} {}", t.name.name, t.params.len()),
                Item::Step(s) => format!("step {}", s.name.name),
            })
            .collect();
        assert_eq!(
            shown,
            [
                "pipeline release",
                "param region",
                "param version",
                "param replicas",
                "param regions",
                "param dry_run",
                "secret REGISTRY_TOKEN",
                "image",
                "env LOG_LEVEL",
                "import std/notify None",
                "import ./lib.topsail Some(\"lib\")",
                "template docker-build 2",
                "step build",
                "step unit-test",
                "step approve",
                "step deploy",
                "step fanout",
                "step publish",
                "step notify",
                "step rollback",
            ]
        );
        let build = step(&m, "build");
        assert_eq!(
            kinds(build),
            [
                "image", "run", "shell", "workdir", "output", "timeout", "retry"
            ]
        );
        let deploy = step(&m, "deploy");
        assert_eq!(
            deploy
                .needs
                .iter()
                .map(|n| n.name.as_str())
                .collect::<Vec<_>>(),
            ["approve", "build"]
        );
        assert_eq!(
            kinds(deploy),
            [
                "image",
                "when",
                "foreach",
                "env",
                "env",
                "secret",
                "heartbeat",
                "retry",
                "catch",
                "run"
            ]
        );
        assert_eq!(kinds(step(&m, "unit-test")), ["run", "run"]);
        // keyword_span is the key; the span runs from the key to the value's end.
        let d = &deploy.body[0];
        assert_eq!(&FULL[d.keyword_span.start..d.keyword_span.end], "image");
        assert_eq!(&FULL[d.span.start..d.span.end], "image: amazon/aws-cli:2");
    }

    #[test]
    fn params_take_three_shapes() {
        let m = parse_ok(
            "params:\n  a: x\n  b: {type: string}\n  c: {type: int, default: 3}\n  d: [1, 2]\n  e:\n",
        );
        let ps: Vec<&Param> = m
            .items
            .iter()
            .filter_map(|i| match i {
                Item::Param(p) => Some(p),
                _ => None,
            })
            .collect();
        assert!(ps[0].ty.is_none());
        assert!(
            matches!(&ps[0].default, Some(Value { kind: ValueKind::Str(i), .. }) if i.as_literal().as_deref() == Some("x"))
        );
        assert_eq!(ps[1].ty.as_ref().map(|t| t.name.as_str()), Some("string"));
        assert!(ps[1].default.is_none());
        assert!(matches!(
            ps[2].default,
            Some(Value {
                kind: ValueKind::Int(3),
                ..
            })
        ));
        assert!(
            matches!(&ps[3].default, Some(Value { kind: ValueKind::List(l), .. }) if l.len() == 2)
        );
        assert!(ps[4].ty.is_none() && ps[4].default.is_none());
    }

    fn env_value(src: &str) -> ValueKind {
        let m = parse_ok(&format!("env: {{V: {src}}}"));
        match &m.items[0] {
            Item::Env(e) => e.value.kind.clone(),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn scalars_follow_the_core_schema_plus_durations() {
        assert_eq!(env_value("3"), ValueKind::Int(3));
        assert_eq!(env_value("-12"), ValueKind::Int(-12));
        assert_eq!(env_value("0x1F"), ValueKind::Int(31));
        assert_eq!(env_value("0o17"), ValueKind::Int(15));
        assert_eq!(env_value("2.5"), ValueKind::Float(2.5));
        assert_eq!(env_value("1e3"), ValueKind::Float(1000.0));
        assert_eq!(env_value("true"), ValueKind::Bool(true));
        assert_eq!(env_value("False"), ValueKind::Bool(false));
        assert_eq!(env_value("90s"), ValueKind::Duration("90s".into()));
        assert_eq!(env_value("24h"), ValueKind::Duration("24h".into()));
        for quoted in [
            "\"3\"", "'true'", "\"90s\"", "yes", "on", "1.2.3", "!!str 3",
        ] {
            assert!(matches!(env_value(quoted), ValueKind::Str(_)), "{quoted}");
        }
        assert_eq!(env_value("!!int \"7\""), ValueKind::Int(7));
    }

    #[test]
    fn null_and_oversized_values_are_shape_errors() {
        let d = diags("env: {A: ~, B: 99999999999999999999}");
        assert_eq!(d.len(), 2, "{d:#?}");
        assert!(d.iter().all(|x| x.code == codes::YAML_SHAPE));
    }

    #[test]
    fn list_keys_expand_into_one_directive_each() {
        let src = "steps:\n  s:\n    outputs: [A, B]\n    secrets: [T, U]\n    env: {X: 1, Y: two}\n    run: [a, b, c]\n";
        let m = parse_ok(src);
        let s = step(&m, "s");
        assert_eq!(
            kinds(s),
            [
                "output", "output", "secret", "secret", "env", "env", "run", "run", "run"
            ]
        );
        for d in &s.body {
            assert_eq!(
                &src[d.keyword_span.start..d.keyword_span.end].len(),
                &d.keyword_span.len()
            );
        }
        // A single scalar is a one-item list for needs/outputs/secrets.
        let m = parse_ok("steps:\n  a: {}\n  b:\n    needs: a\n    outputs: V\n");
        assert_eq!(step(&m, "b").needs.len(), 1);
        assert_eq!(kinds(step(&m, "b")), ["output"]);
    }

    #[test]
    fn retry_foreach_use_catch_and_when() {
        let m = parse_ok(FULL);
        let build = step(&m, "build");
        let DirectiveKind::Retry(r) = &build.body[6].kind else {
            panic!()
        };
        assert_eq!(r.attempts.kind, ValueKind::Int(2));
        assert_eq!(
            r.every.as_ref().map(|v| v.kind.clone()),
            Some(ValueKind::Duration("10s".into()))
        );
        assert_eq!(
            r.backoff.as_ref().map(|v| v.kind.clone()),
            Some(ValueKind::Float(2.0))
        );
        let deploy = step(&m, "deploy");
        let DirectiveKind::Retry(r) = &deploy.body[7].kind else {
            panic!()
        };
        assert!(r.every.is_none() && r.backoff.is_none());
        let DirectiveKind::When(e) = &deploy.body[1].kind else {
            panic!()
        };
        assert!(
            matches!(&e.kind, ExprKind::Not(inner) if matches!(&inner.kind, ExprKind::Ref(r) if r.dotted() == "dry_run"))
        );
        // The expression's spans point into the quoted scalar.
        assert_eq!(&FULL[e.span.start..e.span.end], "!dry_run");
        let DirectiveKind::Foreach(f) = &deploy.body[2].kind else {
            panic!()
        };
        assert!(
            matches!(&f.items, ForeachItems::List(v) if matches!(&v.kind, ValueKind::List(l) if l.len() == 2))
        );
        let DirectiveKind::Foreach(f) = &step(&m, "fanout").body[0].kind else {
            panic!()
        };
        assert!(matches!(&f.items, ForeachItems::Param(p) if p.name == "regions"));
        let DirectiveKind::Catch(c) = &deploy.body[8].kind else {
            panic!()
        };
        assert_eq!(c.name, "rollback");
        let DirectiveKind::Use(u) = &step(&m, "notify").body[0].kind else {
            panic!()
        };
        let names: Vec<&str> = u.template.iter().map(|i| i.name.as_str()).collect();
        assert_eq!(names, ["lib", "ping"]);
        assert_eq!(
            &FULL[u.template[1].span.start..u.template[1].span.end],
            "ping"
        );
        assert_eq!(u.args.len(), 2);
        assert_eq!(u.args[1].value.kind, ValueKind::Bool(true));
    }

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
    fn unknown_keys_suggest_the_closest_valid_key() {
        let d = diags(
            "stesp: {}\nsteps:\n  a:\n    imgae: x\n    retry: {attempts: 1, evry: 2s}\n    bogus: 1\n",
        );
        let shown: Vec<(&str, &str)> = d.iter().map(|x| (x.code, x.help.as_str())).collect();
        assert_eq!(
            shown,
            [
                (codes::UNKNOWN_KEY, "did you mean `steps`?"),
                (codes::UNKNOWN_KEY, "did you mean `image`?"),
                (codes::UNKNOWN_KEY, "did you mean `every`?"),
                (
                    codes::UNKNOWN_KEY,
                    "the keys allowed in a step are: needs, image, run, shell, env, workdir, outputs, secrets, timeout, heartbeat, retry, when, foreach, approval, catch, use"
                ),
            ]
        );
        // The label sits on the key itself.
        assert_eq!(d[1].span, Span::new(FileId(0), 26, 31));
        // `needs` is a step key, not a template key.
        let d = diags("templates:\n  t:\n    needs: [a]\n");
        assert_eq!(d[0].code, codes::UNKNOWN_KEY);
    }

    #[test]
    fn wrong_shapes_say_what_was_expected_and_all_are_reported() {
        let cases = [
            ("steps: [a, b]\n", "expected a map of steps, found a list"),
            (
                "steps:\n  1: {run: x}\n",
                "expected a step name, found an integer",
            ),
            (
                "steps:\n  a:\n    image: {x: y}\n",
                "expected a string, found a map",
            ),
            (
                "steps:\n  a: [x]\n",
                "expected a map of step keys, found a list",
            ),
            ("- a\n", "expected a map of top-level keys, found a list"),
            (
                "params:\n  p: {type: [int]}\n",
                "expected a type name, found a list",
            ),
            (
                "steps:\n  a:\n    retry: {every: 1s}\n",
                "`retry` without `attempts`",
            ),
            (
                "steps:\n  a:\n    foreach: {var: r}\n",
                "`foreach` without `in`",
            ),
            (
                "steps:\n  a:\n    use: {with: {}}\n",
                "`use` without `template`",
            ),
            ("imports: [{as: x}]\n", "import without `path`"),
            (
                "steps:\n  a:\n    when:\n",
                "expected an expression, found nothing (null)",
            ),
        ];
        for (src, message) in cases {
            let d = diags(src);
            assert!(
                d.iter()
                    .any(|x| x.code == codes::YAML_SHAPE && x.message == message),
                "{src:?}: {d:#?}"
            );
        }
        let d = diags("steps:\n  a:\n    image: [x]\n    run: {y: z}\n    imgae: q\n");
        assert_eq!(d.len(), 3);
    }

    #[test]
    fn bad_names_are_reported() {
        let d = diags("secrets: [bad-name]\nsteps:\n  \"a b\": {}\n");
        assert_eq!(d.iter().filter(|x| x.code == codes::BAD_NAME).count(), 2);
    }

    #[test]
    fn a_yaml_tag_in_when_asks_for_quotes() {
        let d = diags("steps:\n  a:\n    when: !dry_run\n    run: x\n");
        assert!(
            d.iter()
                .any(|x| x.code == codes::YAML_SHAPE && x.help.contains("when: \"!dry_run\"")),
            "{d:#?}"
        );
    }

    #[test]
    fn anchors_aliases_and_merge_keys_resolve() {
        let src = "x-rust: &rust\n  image: rust:1.80\n  timeout: 20m\nsteps:\n  build:\n    <<: *rust\n    run: cargo build\n  test:\n    <<: [*rust]\n    timeout: 5m\n    run: &t cargo test\n  again:\n    run: *t\n";
        let m = parse_ok(src);
        assert_eq!(kinds(step(&m, "build")), ["image", "timeout", "run"]);
        // A key written in the map wins over the merged one.
        let test = step(&m, "test");
        assert_eq!(kinds(test), ["image", "timeout", "run"]);
        assert!(
            matches!(&test.body[1].kind, DirectiveKind::Timeout(v) if v.kind == ValueKind::Duration("5m".into()))
        );
        assert_eq!(kinds(step(&m, "again")), ["run"]);
    }

    #[test]
    fn duplicate_steps_reach_the_checker() {
        let m = parse_ok("steps:\n  a: {run: x}\n  a: {run: y}\n");
        assert_eq!(m.items.len(), 2);
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

    #[test]
    fn char_markers_become_byte_offsets() {
        let pos = Positions::new("aé€😀b", FileId(0));
        let bytes: Vec<usize> = (0..=5).map(|c| pos.byte(c)).collect();
        assert_eq!(bytes, [0, 1, 3, 6, 10, 11]);
    }

    /// `cargo test --release --lib yaml::tests::big -- --ignored --nocapture`
    #[test]
    #[ignore = "timing; run in release mode"]
    fn big_file_parses_in_linear_time() {
        let mut src = String::from("pipeline: big\nparams:\n  region: us-east-1\nsteps:\n");
        for i in 0..100_000_u32 {
            let _ = std::fmt::Write::write_fmt(
                &mut src,
                format_args!(
                    "  s{i}:\n    needs: [s{}]\n    image: rust:1.80\n    timeout: 20m\n    env: {{REGION: \"{{{{ region }}}}\"}}\n    run: |\n      echo step {i} in {{{{ region }}}}\n      cargo build\n",
                    i.saturating_sub(1)
                ),
            );
        }
        let t = std::time::Instant::now();
        let pos = Positions::new(&src, FileId(0));
        let _ = build(&src, &pos);
        eprintln!("events -> nodes alone: {:?}", t.elapsed());
        let t = std::time::Instant::now();
        let (m, d) = parse_str(&src, FileId(0));
        let took = t.elapsed();
        assert!(d.is_empty());
        assert_eq!(m.map(|m| m.items.len()), Some(100_002));
        eprintln!("100,000 steps, {} bytes: {took:?}", src.len());
    }
}
