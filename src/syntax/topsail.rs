//! The `.topsail` front end: pest grammar -> AST.
//!
//! STUB on the `yaml` branch: only `parse_expr`, a small hand-written
//! expression parser so the YAML front end compiles and its tests run. The
//! real grammar-based parser (another branch) replaces this file at merge.
use crate::diagnostics::{Diagnostic, codes};
use crate::syntax::ast::{Expr, ExprKind, Ident, Ref, Value, ValueKind};
use crate::syntax::{FileId, SourceMap, Span, ast, interp};

pub fn parse(sources: &SourceMap, file: FileId) -> (Option<ast::Module>, Vec<Diagnostic>) {
    let _ = (sources, file);
    todo!("issue 2: .topsail parser")
}

/// Parse a `when` expression; `offset` is where `text` starts in `file`.
pub fn parse_expr(text: &str, file: FileId, offset: usize) -> Result<Expr, Diagnostic> {
    let mut p = ExprParser {
        text,
        file,
        offset,
        at: 0,
    };
    let e = p.or()?;
    p.ws();
    if p.at < text.len() {
        return Err(p.error("unexpected text in expression"));
    }
    Ok(e)
}

struct ExprParser<'a> {
    text: &'a str,
    file: FileId,
    offset: usize,
    at: usize,
}

impl ExprParser<'_> {
    fn span(&self, a: usize, b: usize) -> Span {
        Span::new(self.file, self.offset + a, self.offset + b)
    }

    fn error(&self, msg: &str) -> Diagnostic {
        Diagnostic::error(codes::SYNTAX, self.span(self.at, self.text.len()), msg)
            .label("here")
            .help("use `==`, `!=`, `&&`, `||`, `!`, parentheses, literals and names")
    }

    fn ws(&mut self) {
        while self.text[self.at..].starts_with([' ', '\t']) {
            self.at += 1;
        }
    }

    fn eat(&mut self, tok: &str) -> bool {
        self.ws();
        if self.text[self.at..].starts_with(tok) {
            self.at += tok.len();
            true
        } else {
            false
        }
    }

    fn bin(
        &mut self,
        tok: &str,
        next: fn(&mut Self) -> Result<Expr, Diagnostic>,
        mk: fn(Box<Expr>, Box<Expr>) -> ExprKind,
    ) -> Result<Expr, Diagnostic> {
        let mut lhs = next(self)?;
        while self.eat(tok) {
            let rhs = next(self)?;
            let span = lhs.span.to(rhs.span);
            lhs = Expr {
                kind: mk(Box::new(lhs), Box::new(rhs)),
                span,
            };
        }
        Ok(lhs)
    }

    fn or(&mut self) -> Result<Expr, Diagnostic> {
        self.bin("||", Self::and, ExprKind::Or)
    }

    fn and(&mut self) -> Result<Expr, Diagnostic> {
        self.bin("&&", Self::cmp, ExprKind::And)
    }

    fn cmp(&mut self) -> Result<Expr, Diagnostic> {
        let lhs = self.unary()?;
        let mk: fn(Box<Expr>, Box<Expr>) -> ExprKind = if self.eat("==") {
            ExprKind::Eq
        } else if self.eat("!=") {
            ExprKind::Ne
        } else {
            return Ok(lhs);
        };
        let rhs = self.unary()?;
        let span = lhs.span.to(rhs.span);
        Ok(Expr {
            kind: mk(Box::new(lhs), Box::new(rhs)),
            span,
        })
    }

    fn unary(&mut self) -> Result<Expr, Diagnostic> {
        self.ws();
        let start = self.at;
        if self.eat("!") {
            let inner = self.unary()?;
            let span = self.span(start, inner.span.end - self.offset);
            return Ok(Expr {
                kind: ExprKind::Not(Box::new(inner)),
                span,
            });
        }
        if self.eat("(") {
            let inner = self.or()?;
            if !self.eat(")") {
                return Err(self.error("expected `)`"));
            }
            return Ok(Expr {
                kind: ExprKind::Paren(Box::new(inner)),
                span: self.span(start, self.at),
            });
        }
        let rest = &self.text[self.at..];
        if let Some(body) = rest.strip_prefix('"') {
            let mut end = None;
            let mut escaped = false;
            for (i, c) in body.char_indices() {
                match c {
                    '\\' if !escaped => escaped = true,
                    '"' if !escaped => {
                        end = Some(i);
                        break;
                    }
                    _ => escaped = false,
                }
            }
            let Some(end) = end else {
                return Err(self.error("unclosed string"));
            };
            let Some(s) = interp::unescape(&body[..end]) else {
                return Err(self.error("bad escape"));
            };
            self.at += end + 2;
            let span = self.span(start, self.at);
            return Ok(lit(ValueKind::Str(ast::Interp::literal(s, span)), span));
        }
        let len = rest
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == '-' || c == '.'))
            .unwrap_or(rest.len());
        let word = &rest[..len];
        if word.is_empty() {
            return Err(self.error("expected a name or a literal"));
        }
        self.at += len;
        let span = self.span(start, self.at);
        if let Ok(i) = word.parse::<i64>() {
            return Ok(lit(ValueKind::Int(i), span));
        }
        if word == "true" || word == "false" {
            return Ok(lit(ValueKind::Bool(word == "true"), span));
        }
        let mut path = Vec::new();
        let mut at = start;
        for seg in word.split('.') {
            if !interp::is_name(seg) {
                return Err(self.error("not a name"));
            }
            path.push(Ident {
                name: seg.to_owned(),
                span: self.span(at, at + seg.len()),
            });
            at += seg.len() + 1;
        }
        Ok(Expr {
            kind: ExprKind::Ref(Ref { path, span }),
            span,
        })
    }
}

fn lit(kind: ValueKind, span: Span) -> Expr {
    Expr {
        kind: ExprKind::Lit(Value { kind, span }),
        span,
    }
}
