//! The fast paths: the most common line shapes recognised by hand before
//! pest sees them.

use super::lower::Build;
use crate::source::{FileId, Span};
use crate::syntax::ast::{self, DirectiveKind, Ident};
use crate::syntax::interp;

// ------------------------------------------------------------------ fast paths
//
// Pest spends about a microsecond per line here, most of it in per-combinator
// bookkeeping, which is too slow for files of 100,000 steps. The most common
// line shapes (a step header, `output NAME`, `image "plain"`, `run:`) are
// therefore recognised by hand first. A fast path only accepts a line it
// understands completely and builds exactly what the grammar would (a test
// checks this); anything else, including every error, goes to pest.

/// Length of the name (`[A-Za-z_][A-Za-z0-9_-]*`) at the start of `b`.
pub(super) fn name_len(b: &[u8]) -> usize {
    match b.first() {
        Some(c) if c.is_ascii_alphabetic() || *c == b'_' => {
            1 + b[1..]
                .iter()
                .take_while(|c| c.is_ascii_alphanumeric() || **c == b'_' || **c == b'-')
                .count()
        }
        _ => 0,
    }
}

pub(super) fn skip_spaces(b: &[u8], mut i: usize) -> usize {
    while b.get(i) == Some(&b' ') {
        i += 1;
    }
    i
}

/// `NAME: NEED NEED ...` with single spaces or more, nothing else.
pub(super) fn quick_header(
    file: FileId,
    base: usize,
    content: &str,
) -> Option<(Ident, Vec<Ident>, usize)> {
    let b = content.as_bytes();
    let n = name_len(b);
    if n == 0 || b.get(n) != Some(&b':') {
        return None;
    }
    let ident = |from: usize, to: usize| Ident {
        name: content[from..to].to_string(),
        span: Span::new(file, base + from, base + to),
    };
    let name = ident(0, n);
    let mut end = n + 1;
    let mut needs = Vec::new();
    let mut i = skip_spaces(b, end);
    while i < b.len() {
        if i == end {
            return None;
        }
        let m = name_len(&b[i..]);
        if m == 0 {
            return None;
        }
        needs.push(ident(i, i + m));
        end = i + m;
        i = skip_spaces(b, end);
    }
    Some((name, needs, base + end))
}

impl Build<'_> {
    /// `output NAME`, `secret NAME`, `catch NAME`, or `image`, `shell`,
    /// `workdir`, `approval` with a string free of escapes.
    pub(super) fn quick_directive(
        &mut self,
        word: &str,
        content: &str,
    ) -> Option<(DirectiveKind, usize)> {
        let b = content.as_bytes();
        let from = skip_spaces(b, word.len());
        if from == word.len() {
            return None;
        }
        let (kind, end) = match word {
            "output" | "secret" | "catch" => {
                let n = name_len(&b[from..]);
                if n == 0 {
                    return None;
                }
                let ident = Ident {
                    name: content[from..from + n].to_string(),
                    span: Span::new(self.file, self.base + from, self.base + from + n),
                };
                let kind = match word {
                    "output" => DirectiveKind::Output(ident),
                    "secret" => DirectiveKind::Secret(self.check_env_name(ident, "secret")),
                    _ => DirectiveKind::Catch(ident),
                };
                (kind, from + n)
            }
            "image" | "shell" | "workdir" | "approval" => {
                if b.get(from) != Some(&b'"') {
                    return None;
                }
                let len = b[from + 1..].iter().position(|c| *c == b'"')?;
                let body = &content[from + 1..from + 1 + len];
                if body.contains('\\') {
                    return None;
                }
                let end = from + len + 2;
                let whole = Span::new(self.file, self.base + from, self.base + end);
                let start = self.base + from + 1;
                let (interp, diags) = interp::split(body, self.file, whole, &|i| start + i);
                self.diags.extend(diags);
                let kind = match word {
                    "image" => DirectiveKind::Image(interp),
                    "shell" => DirectiveKind::Shell(interp),
                    "workdir" => DirectiveKind::Workdir(interp),
                    _ => DirectiveKind::Approval(interp),
                };
                (kind, end)
            }
            "timeout" | "heartbeat" => {
                // `90s`: digits then a unit (any letters; the checker judges them).
                let digits = b[from..].iter().take_while(|c| c.is_ascii_digit()).count();
                let letters = b[from + digits..]
                    .iter()
                    .take_while(|c| c.is_ascii_alphabetic())
                    .count();
                if digits == 0 || letters == 0 {
                    return None;
                }
                let end = from + digits + letters;
                let value = ast::Value {
                    kind: ast::ValueKind::Duration(content[from..end].to_string()),
                    span: Span::new(self.file, self.base + from, self.base + end),
                };
                let kind = if word == "timeout" {
                    DirectiveKind::Timeout(value)
                } else {
                    DirectiveKind::Heartbeat(value)
                };
                (kind, end)
            }
            "env" => {
                // `NAME = "text"` with no escapes in the text.
                let n = name_len(&b[from..]);
                if n == 0 {
                    return None;
                }
                let eq = skip_spaces(b, from + n);
                if b.get(eq) != Some(&b'=') {
                    return None;
                }
                let q = skip_spaces(b, eq + 1);
                if q == eq + 1 || b.get(q) != Some(&b'"') {
                    return None;
                }
                let len = b[q + 1..].iter().position(|c| *c == b'"')?;
                let body = &content[q + 1..q + 1 + len];
                if body.contains('\\') {
                    return None;
                }
                let end = q + len + 2;
                let ident = Ident {
                    name: content[from..from + n].to_string(),
                    span: Span::new(self.file, self.base + from, self.base + from + n),
                };
                let name = self.check_env_name(ident, "environment variable");
                let whole = Span::new(self.file, self.base + q, self.base + end);
                let start = self.base + q + 1;
                let (interp, diags) = interp::split(body, self.file, whole, &|i| start + i);
                self.diags.extend(diags);
                let value = ast::Value {
                    kind: ast::ValueKind::Str(interp),
                    span: whole,
                };
                let span = name.span.to(value.span);
                (
                    DirectiveKind::Env(Box::new(ast::EnvVar { name, value, span })),
                    end,
                )
            }
            _ => return None,
        };
        if skip_spaces(b, end) != b.len() {
            return None;
        }
        Some((kind, self.base + end))
    }
}
