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
