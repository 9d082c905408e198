//! How the YAML form says a shape is wrong: what was expected, what was
//! found, and the closest valid key.

use super::Cx;
use crate::diagnostics::{Diagnostic, codes, suggest};
use crate::source::Span;
use crate::syntax::yaml_tree::Node;

impl Cx<'_> {
    pub(super) fn shape(
        &mut self,
        span: Span,
        message: impl Into<String>,
        help: impl Into<String>,
    ) {
        self.diags.push(
            Diagnostic::error(codes::YAML_SHAPE, span, message)
                .label("here")
                .help(help),
        );
    }

    pub(super) fn expected(&mut self, node: &Node, expected: &str, help: &str) {
        let message = format!("expected {expected}, found {}", node.what());
        self.shape(node.span, message, help);
    }

    pub(super) fn unknown_key(&mut self, key: &Node, name: &str, allowed: &[&str], place: &str) {
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
}
