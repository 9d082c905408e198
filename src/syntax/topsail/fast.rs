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
fn name_len(b: &[u8]) -> usize {
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

fn skip_spaces(b: &[u8], mut i: usize) -> usize {
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

#[cfg(test)]
mod tests {
    use pest::Parser as _;

    use super::super::layout::FileParser;
    use super::super::lines::leading_word;
    use super::super::{Grammar, Rule};
    use super::{Build, quick_header};
    use crate::source::FileId;

    /// The fast paths must build exactly what the grammar builds.
    fn both_ways(line: &str) -> Option<(String, String)> {
        let base = 7;
        let file = FileId(0);
        let word = leading_word(line);
        if let Some(quick) = quick_header(file, base, line) {
            let mut p = FileParser::new(line, file);
            let slow = p.parse_line(Rule::step_line, base, line, "").map(|pair| {
                let mut b = p.build(base);
                let (parts, end) = b.parts(pair);
                let mut parts = parts.into_iter();
                let name = b.ident(parts.next().expect("a name"));
                (name, parts.map(|x| b.ident(x)).collect::<Vec<_>>(), end)
            });
            return Some((format!("{:?}", Some(quick)), format!("{slow:?}")));
        }
        let rule = match word {
            "output" => Rule::output_line,
            "secret" => Rule::secret_line,
            "catch" => Rule::catch_line,
            "image" => Rule::image_line,
            "shell" => Rule::shell_line,
            "workdir" => Rule::workdir_line,
            "approval" => Rule::approval_line,
            _ => return None,
        };
        let (mut d1, mut d2, mut c1, mut c2) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
        let mut quick_b = Build {
            file,
            base,
            diags: &mut d1,
            comments: &mut c1,
        };
        let quick = quick_b.quick_directive(word, line)?;
        let pair = Grammar::parse(rule, line).ok()?.next()?;
        let mut slow_b = Build {
            file,
            base,
            diags: &mut d2,
            comments: &mut c2,
        };
        let slow = slow_b.directive(pair);
        Some((
            format!("{quick:?} {d1:?} {c1:?}"),
            format!("{slow:?} {d2:?} {c2:?}"),
        ))
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(2000))]

        #[test]
        fn fast_paths_agree_with_the_grammar(
            words in proptest::collection::vec(
                proptest::prop_oneof![
                    proptest::strategy::Just("output".to_string()),
                    proptest::strategy::Just("secret".to_string()),
                    proptest::strategy::Just("image".to_string()),
                    proptest::strategy::Just("catch".to_string()),
                    proptest::strategy::Just("approval".to_string()),
                    proptest::strategy::Just("timeout".to_string()),
                    proptest::strategy::Just("heartbeat".to_string()),
                    proptest::strategy::Just("env".to_string()),
                    proptest::strategy::Just("=".to_string()),
                    "[0-9]{1,3}[a-z]{0,3}",
                    "[a-zA-Z_][a-zA-Z0-9_-]{0,6}",
                    "\"[a-z {}\\\\.\"é]{0,8}\"",
                    "[ :#.\\-]{1,2}",
                ],
                1..6,
            )
        ) {
            let line = words.join(" ");
            let line = line.trim_start();
            if let Some((quick, slow)) = both_ways(line) {
                proptest::prop_assert_eq!(quick, slow, "line {:?}", line);
            }
        }
    }
}
