//! A node as a name (with name syntax checked), a list of names, or a value.

use super::Cx;
use super::text::TextMap;
use crate::diagnostics::{Diagnostic, codes};
use crate::model::text;
use crate::source::Span;
use crate::syntax::ast::{Ident, Value, ValueKind};
use crate::syntax::yaml_tree::{Kind, Node, Scalar};

#[derive(Clone, Copy)]
pub(super) enum NameKind {
    /// `[A-Za-z_][A-Za-z0-9_-]*`: steps, params, outputs, templates, ...
    Name,
    /// `[A-Za-z_][A-Za-z0-9_]*`: secrets and env vars.
    Env,
}

impl Cx<'_> {
    /// A name: a string scalar with name syntax (reported, but still returned,
    /// when the syntax is wrong so later stages see the item).
    pub(super) fn name(&mut self, node: &Node, what: &str, kind: NameKind) -> Option<Ident> {
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

    pub(super) fn check_name(&mut self, text: &str, span: Span, what: &str, kind: NameKind) {
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
    pub(super) fn names(&mut self, node: &Node, what: &str, kind: NameKind) -> Vec<Ident> {
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

    pub(super) fn value(&mut self, node: &Node) -> Option<Value> {
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
}
