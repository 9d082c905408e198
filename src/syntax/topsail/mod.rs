//! The `.topsail` front end: text -> [`ast::Module`] with a byte span on every
//! node, and every syntax problem of the file as a diagnostic.
//!
//! Layout is handled here, line by line: the file is cut into top-level items
//! (an item starts at a code line in column 0), a step or template body into
//! directive lines, and a `run:` into its indented block. Each line is then
//! parsed with one rule of the pest grammar (`grammar/topsail.pest`), chosen
//! by its first word. Working per line keeps one bad line from hiding the
//! errors of the others, lets an unknown keyword get a "did you mean", and
//! keeps the whole parse linear in the size of the file.
//!
//! Only syntax is reported here; names, types and the DAG are the checker's.
//! Which words are directives is [`ast::Keyword`]'s, shared with the YAML
//! reader and the editor.
//!
//! One job a file: `lines.rs` cuts the text into lines (indentation, blank,
//! comment or code), `layout.rs` groups them into items, bodies and `run:`
//! blocks and picks each line's grammar rule, `fast.rs` the hand-written fast
//! paths for the most common lines, `lower.rs` pest pairs to AST nodes, and
//! `errors.rs` the wording of syntax errors and the limits checked before pest
//! runs. This file is the entry point: the grammar and [`parse`] /
//! [`parse_expr`], and the name helpers other readers share.

use pest::Parser as _;

use crate::diagnostics::{Diagnostic, codes};
use crate::source::{FileId, SourceMap, Span};
use crate::syntax::ast::{self, Expr};

mod errors;
mod fast;
mod layout;
mod lines;
mod lower;
#[cfg(test)]
mod tests;

use errors::{nesting_error, operators_error, syntax_error, too_deep, too_many_operators};
use layout::FileParser;
use lines::leading_word;
use lower::Build;

#[derive(pest_derive::Parser)]
#[grammar = "../grammar/topsail.pest"]
struct Grammar;

/// Deeper nesting than this in one line is refused before pest sees it, so
/// that neither pest's recursion nor the drop of a deep `Expr` can overflow
/// the stack.
const MAX_NESTING: usize = 64;

/// More binary operators (`&&`, `||`, `==`, `!=`) than this in one `when`
/// are refused before pest sees them: a chain builds an `Expr` as deep as it
/// is long, and the checker, the evaluator and the ASL compiler all recurse
/// over it.
const MAX_OPERATORS: usize = 256;

/// Parse one `.topsail` file. The module is always returned, holding every
/// item that parsed (a step with a bad directive keeps its other directives);
/// the diagnostics are every syntax problem found, in file order.
pub fn parse(sources: &SourceMap, file: FileId) -> (Option<ast::Module>, Vec<Diagnostic>) {
    let text = sources.get(file).text.as_str();
    let mut parser = FileParser::new(text, file);
    let module = parser.module();
    let mut diags = parser.diags;
    crate::diagnostics::sort(&mut diags);
    (Some(module), diags)
}

/// Parse a `when` expression on its own. The YAML front end calls this for
/// `when:` strings; spans are `offset` plus the position in `text`.
#[allow(
    clippy::result_large_err,
    reason = "one diagnostic, on an error path; the signature the YAML front end calls"
)]
pub fn parse_expr(text: &str, file: FileId, offset: usize) -> Result<Expr, Diagnostic> {
    let mut diags = Vec::new();
    let mut comments = Vec::new();
    if let Some(at) = too_deep(text) {
        return Err(nesting_error(file, offset + at));
    }
    if let Some(at) = too_many_operators(text) {
        return Err(operators_error(file, offset + at));
    }
    let pairs = match Grammar::parse(Rule::expr_only, text) {
        Ok(pairs) => pairs,
        Err(err) => {
            return Err(syntax_error(
                &err,
                text,
                file,
                offset,
                "the end of the expression",
                "write an expression like `!dry_run && region == \"eu-west-1\"`",
            ));
        }
    };
    let mut build = Build {
        file,
        base: offset,
        diags: &mut diags,
        comments: &mut comments,
    };
    let expr = pairs
        .flatten()
        .find(|p| p.as_rule() == Rule::or_expr)
        .map(|p| build.expr(p));
    match (expr, diags.into_iter().next()) {
        (_, Some(diag)) => Err(diag),
        (Some(expr), None) => Ok(expr),
        (None, None) => Err(Diagnostic::error(
            codes::SYNTAX,
            Span::new(file, offset, offset + text.len()),
            "expected an expression",
        )
        .label("no expression here")
        .help("write an expression like `!dry_run && region == \"eu-west-1\"`")),
    }
}

/// What a step, param, output or loop variable name may hold.
pub const NAME_PATTERN: &str = "[A-Za-z_][A-Za-z0-9_-]*";

/// `text` made into a name: other characters become `_`, and a `_` goes in
/// front when it does not start with a letter or `_`.
pub fn valid_name(text: &str) -> String {
    let mut out: String = text
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' || c == '-' {
                c
            } else {
                '_'
            }
        })
        .collect();
    if !out.starts_with(|c: char| c.is_ascii_alphabetic() || c == '_') {
        out.insert(0, '_');
    }
    out
}

/// The names a line mentions: words outside strings, and the first part of
/// each `{{ }}` hole (in a string or not). Comments are left out.
pub(crate) fn mentioned_names(line: &str) -> Vec<&str> {
    let bytes = line.as_bytes();
    let mut out = Vec::new();
    let (mut i, mut in_string, mut in_hole) = (0, false, false);
    while i < bytes.len() {
        let c = bytes[i];
        if bytes[i..].starts_with(b"{{") {
            in_hole = true;
            i += 2;
            continue;
        }
        if in_hole && bytes[i..].starts_with(b"}}") {
            in_hole = false;
            i += 2;
            continue;
        }
        if !in_hole {
            match c {
                b'\\' if in_string => {
                    i += 2;
                    continue;
                }
                b'"' => in_string = !in_string,
                b'#' if !in_string => break,
                _ => {}
            }
        }
        if (c.is_ascii_alphabetic() || c == b'_') && (in_hole || !in_string) {
            // `c` is ASCII, so `i` is a char boundary.
            let word = leading_word(&line[i..]);
            let after_dot = i > 0 && bytes[i - 1] == b'.';
            if !after_dot {
                out.push(word);
            }
            i += word.len();
            continue;
        }
        i += 1;
    }
    out
}
