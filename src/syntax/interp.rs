//! `{{ EXPR }}` holes, shared by both front ends. A front end hands over the
//! decoded text plus a map from byte offsets in that text back to offsets in
//! the source file, so holes get exact spans even after escapes were decoded
//! or indentation was stripped.
//!
//! Inside the braces: a name (`region`), a dotted pair (`build.VERSION`), or a
//! string literal (`{{ "{{" }}`), which is how a literal `{{` is written (for
//! `docker inspect -f '{{ "{{" }}.Id}}'`).

use crate::diagnostics::{Diagnostic, codes};
use crate::model::text::{is_name, unescape};
use crate::source::{FileId, Span};
use crate::syntax::ast::{Ident, Interp, Part, Ref};

/// Split `text` into literal parts and holes.
///
/// `map(i)` gives the source offset of byte `i` of `text` (it is also called
/// with `text.len()`). `whole` is the span of the entire text in the source.
pub fn split(
    text: &str,
    file: FileId,
    whole: Span,
    map: &dyn Fn(usize) -> usize,
) -> (Interp, Vec<Diagnostic>) {
    let mut parts: Vec<Part> = Vec::new();
    let mut diags = Vec::new();
    let mut lit = String::new();
    let mut rest = 0;
    let span_of = |a: usize, b: usize| Span::new(file, map(a), map(b).max(map(a)));
    while let Some(found) = text[rest..].find("{{") {
        let open = rest + found;
        lit.push_str(&text[rest..open]);
        let Some(close_rel) = text[open + 2..].find("}}") else {
            diags.push(
                Diagnostic::error(
                    codes::BAD_INTERPOLATION,
                    span_of(open, open + 2),
                    "unclosed `{{`",
                )
                .label("this `{{` has no matching `}}`")
                .help("close it with `}}`, or write a literal `{{` as `{{ \"{{\" }}`"),
            );
            lit.push_str(&text[open..]);
            rest = text.len();
            break;
        };
        let close = open + 2 + close_rel;
        let inner = &text[open + 2..close];
        let hole = span_of(open, close + 2);
        match parse_hole(inner, open + 2, file, &span_of) {
            Ok(Hole::Literal(s)) => lit.push_str(&s),
            Ok(Hole::Ref(path)) => {
                if !lit.is_empty() {
                    parts.push(Part::Lit(std::mem::take(&mut lit)));
                }
                parts.push(Part::Ref(Ref { path, span: hole }));
            }
            Err((message, help)) => {
                // `${{ github.event.number }}`, `${{ hashFiles('x') }}`: no
                // topsail reference, but GitHub Actions' form.
                let (message, help) = if text[..open].ends_with('$')
                    || GITHUB_CONTEXTS.contains(&inner.trim().split('.').next().unwrap_or(""))
                {
                    github_expression(inner.trim())
                } else {
                    (message, help)
                };
                diags.push(
                    Diagnostic::error(codes::BAD_INTERPOLATION, hole, message)
                        .label("not a reference")
                        .help(help),
                );
                lit.push_str(&text[open..close + 2]);
            }
        }
        rest = close + 2;
    }
    lit.push_str(&text[rest..]);
    if !lit.is_empty() {
        parts.push(Part::Lit(lit));
    }
    (Interp { parts, span: whole }, diags)
}

/// Split text whose bytes map one-to-one onto the source from `start`.
pub fn split_contiguous(text: &str, file: FileId, start: usize) -> (Interp, Vec<Diagnostic>) {
    let whole = Span::new(file, start, start + text.len());
    split(text, file, whole, &|i| start + i)
}

/// The contexts of a GitHub Actions `${{ }}` expression.
pub const GITHUB_CONTEXTS: &[&str] = &[
    "github", "env", "vars", "secrets", "job", "jobs", "steps", "runner", "strategy", "matrix",
    "needs", "inputs",
];

/// The message and help for `${{ EXPR }}`, a GitHub Actions expression
/// written where topsail's `{{ }}` stands: what to write instead.
pub fn github_expression(expr: &str) -> (String, String) {
    let path: Vec<&str> = expr.split('.').map(str::trim).collect();
    let first = path.first().copied().unwrap_or("");
    let last = path
        .last()
        .copied()
        .filter(|l| is_name(l))
        .unwrap_or("NAME");
    let how = match (first, path.as_slice()) {
        ("github", _) => format!(
            "use the runner's environment in the script, `$GITHUB_{}` (set when topsail runs inside GitHub Actions), or declare `param {last}` and pass `--param {last}=...`",
            last.to_ascii_uppercase().replace('-', "_")
        ),
        ("env", _) => format!(
            "read the environment in the script as `${last}`; set it with `env {last} = \"...\"`"
        ),
        ("secrets", _) => format!(
            "declare `secret {last}` at the top, add `secret {last}` to the step, and read `${last}` in the script"
        ),
        ("matrix" | "strategy", _) => format!(
            "run the step once per item with `foreach {last} in [\"a\", \"b\"]` and write `{{{{ {last} }}}}`"
        ),
        ("steps" | "needs", [_, step, ..]) => format!(
            "a step's output is `{{{{ {step}.{last} }}}}`, for a step this one needs that declares `output {last}`"
        ),
        _ => format!("declare `param {last}` and write `{{{{ {last} }}}}`"),
    };
    let context = if GITHUB_CONTEXTS.contains(&first) {
        format!("there is no `{first}` here")
    } else {
        "topsail does not evaluate it".to_string()
    };
    (
        format!("`${{{{ {expr} }}}}` is a GitHub Actions expression; {context}"),
        format!(
            "topsail's `{{{{ }}}}` names a param, a loop variable, `step.OUTPUT` or a built-in, and GitHub's contexts do not exist: {how}"
        ),
    )
}

enum Hole {
    Literal(String),
    Ref(Vec<Ident>),
}

fn parse_hole(
    inner: &str,
    base: usize,
    file: FileId,
    span_of: &dyn Fn(usize, usize) -> Span,
) -> Result<Hole, (String, String)> {
    let _ = file;
    let trimmed = inner.trim();
    let lead = inner.len() - inner.trim_start().len();
    if trimmed.is_empty() {
        return Err((
            "empty `{{ }}`".into(),
            "put a param, a loop variable or `step.OUTPUT` between the braces".into(),
        ));
    }
    if let Some(body) = trimmed.strip_prefix('"').and_then(|s| s.strip_suffix('"')) {
        return unescape(body).map(Hole::Literal).ok_or_else(|| {
            (
                "bad escape in a string inside `{{ }}`".into(),
                "use only \\\", \\\\, \\n and \\t escapes".into(),
            )
        });
    }
    let mut path = Vec::new();
    let mut offset = base + lead;
    for seg in trimmed.split('.') {
        if !is_name(seg) {
            return Err((
                format!("`{trimmed}` is not a reference"),
                "a reference is a name (`region`) or `step.OUTPUT`; to write literal braces use `{{ \"{{\" }}`".into(),
            ));
        }
        path.push(Ident {
            name: seg.to_string(),
            span: span_of(offset, offset + seg.len()),
        });
        offset += seg.len() + 1;
    }
    // Three parts name an output of a step from an aliased module:
    // `{{ common.setup.X }}`.
    if path.len() > 3 {
        return Err((
            format!("`{trimmed}` has too many parts"),
            "a reference is a name (`region`), `step.OUTPUT`, or `module.step.OUTPUT`".into(),
        ));
    }
    Ok(Hole::Ref(path))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parts(text: &str) -> (Vec<String>, usize) {
        let (interp, diags) = split_contiguous(text, FileId(0), 10);
        let shown = interp
            .parts
            .iter()
            .map(|p| match p {
                Part::Lit(s) | Part::Value(s, _) => format!("lit:{s}"),
                Part::Ref(r) => format!("ref:{}@{}..{}", r.dotted(), r.span.start, r.span.end),
            })
            .collect();
        (shown, diags.len())
    }

    #[test]
    fn splits_holes_with_exact_spans() {
        let (p, errs) = parts("echo {{ build.VERSION }} to {{region}}");
        assert_eq!(errs, 0);
        assert_eq!(
            p,
            vec![
                "lit:echo ",
                "ref:build.VERSION@15..34",
                "lit: to ",
                "ref:region@38..48"
            ]
        );
    }

    #[test]
    fn string_hole_is_a_literal_escape() {
        let (p, errs) = parts(r#"docker inspect -f '{{ "{{" }}.Id}}'"#);
        assert_eq!(errs, 0);
        assert_eq!(p, vec!["lit:docker inspect -f '{{.Id}}'"]);
    }

    #[test]
    fn reports_bad_holes() {
        assert_eq!(parts("{{ a.b.c.d }}").1, 1);
        assert_eq!(parts("{{ }}").1, 1);
        assert_eq!(parts("x {{ y").1, 1);
        assert_eq!(parts("{{ $(rm) }}").1, 1);
    }
}
