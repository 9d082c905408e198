//! Pest pairs to AST: the pairs of one parsed line turned into AST nodes with
//! file spans.

use pest::iterators::Pair;

use super::Rule;
use crate::diagnostics::{Diagnostic, codes};
use crate::model::text;
use crate::source::{FileId, Span};
use crate::syntax::ast::{self, Comment, DirectiveKind, Expr, ExprKind, Ident};
use crate::syntax::interp;

/// Turns the pairs of one parsed line into AST nodes. Pest positions are
/// relative to the line; `base` makes them file offsets.
pub(super) struct Build<'d> {
    pub(super) file: FileId,
    pub(super) base: usize,
    pub(super) diags: &'d mut Vec<Diagnostic>,
    pub(super) comments: &'d mut Vec<Comment>,
}

impl Build<'_> {
    fn span(&self, pair: &Pair<'_, Rule>) -> Span {
        let s = pair.as_span();
        Span::new(self.file, self.base + s.start(), self.base + s.end())
    }

    /// The meaningful children of a line: comments are recorded, punctuation
    /// and EOI dropped. Also returns where the line's code ends.
    pub(super) fn parts<'i>(&mut self, line: Pair<'i, Rule>) -> (Vec<Pair<'i, Rule>>, usize) {
        let mut out = Vec::new();
        let mut end = self.base + line.as_span().start();
        for pair in line.into_inner() {
            match pair.as_rule() {
                Rule::EOI => {}
                Rule::comment => {
                    let span = self.span(&pair);
                    self.comments.push(Comment {
                        text: pair.as_str()[1..].trim_end().to_string(),
                        span,
                        own_line: false,
                        blank_after: false,
                    });
                }
                Rule::kw_pipeline
                | Rule::kw_param
                | Rule::kw_secret
                | Rule::kw_image
                | Rule::kw_env
                | Rule::kw_import
                | Rule::kw_template
                | Rule::kw_run
                | Rule::kw_shell
                | Rule::kw_workdir
                | Rule::kw_output
                | Rule::kw_timeout
                | Rule::kw_heartbeat
                | Rule::kw_retry
                | Rule::kw_when
                | Rule::kw_foreach
                | Rule::kw_approval
                | Rule::kw_catch
                | Rule::kw_use
                | Rule::kw_queue
                | Rule::kw_aws
                | Rule::colon
                | Rule::equals
                | Rule::comma
                | Rule::lparen
                | Rule::rparen
                | Rule::lbracket
                | Rule::rbracket => end = end.max(self.span(&pair).end),
                _ => {
                    end = end.max(self.span(&pair).end);
                    out.push(pair);
                }
            }
        }
        (out, end)
    }

    pub(super) fn ident(&self, pair: Pair<'_, Rule>) -> Ident {
        Ident {
            name: pair.as_str().to_string(),
            span: self.span(&pair),
        }
    }

    /// An env or secret name: stricter than other names (no `-`).
    fn env_ident(&mut self, pair: Pair<'_, Rule>, what: &str) -> Ident {
        let ident = self.ident(pair);
        self.check_env_name(ident, what)
    }

    pub(super) fn check_env_name(&mut self, ident: Ident, what: &str) -> Ident {
        if !text::is_env_name(&ident.name) {
            self.diags.push(
                Diagnostic::error(
                    codes::BAD_NAME,
                    ident.span,
                    format!("`{}` is not a valid {what} name", ident.name),
                )
                .label("not usable as an environment variable")
                .help(format!(
                    "{what} names use letters, digits and `_` only, like `{}`",
                    ident.name.replace('-', "_")
                )),
            );
        }
        ident
    }

    pub(super) fn declaration(&mut self, pair: Pair<'_, Rule>) -> ast::Item {
        let rule = pair.as_rule();
        let start = self.base + pair.as_span().start();
        let (parts, end) = self.parts(pair);
        let mut parts = parts.into_iter();
        let mut next = || parts.next().expect("the grammar rule has this part");
        match rule {
            Rule::pipeline_line => ast::Item::Pipeline(self.ident(next())),
            Rule::param_line => {
                let mut param = self.param(next());
                param.span.start = start;
                ast::Item::Param(param)
            }
            Rule::secret_line => ast::Item::Secret(self.env_ident(next(), "secret")),
            Rule::image_line => ast::Item::Image(self.string(next())),
            Rule::queue_line => ast::Item::Queue(self.string(next())),
            Rule::env_line => {
                let name = self.env_ident(next(), "environment variable");
                let value = self.value(next());
                ast::Item::Env(ast::EnvVar {
                    name,
                    value,
                    span: Span::new(self.file, start, end),
                })
            }
            _ => {
                debug_assert_eq!(rule, Rule::import_line);
                let path = next();
                let path_span = self.span(&path);
                let (path, _) = self.decode(&path);
                let alias = parts.nth(1).map(|p| self.ident(p));
                ast::Item::Import(ast::Import {
                    path,
                    path_span,
                    alias,
                    span: Span::new(self.file, start, end),
                })
            }
        }
    }

    pub(super) fn directive(&mut self, pair: Pair<'_, Rule>) -> (DirectiveKind, usize) {
        let rule = pair.as_rule();
        let (parts, end) = self.parts(pair);
        let mut parts = parts.into_iter();
        let mut next = || parts.next().expect("the grammar rule has this part");
        let kind = match rule {
            Rule::image_line => DirectiveKind::Image(self.string(next())),
            Rule::shell_line => DirectiveKind::Shell(self.string(next())),
            Rule::workdir_line => DirectiveKind::Workdir(self.string(next())),
            Rule::approval_line => DirectiveKind::Approval(self.string(next())),
            Rule::queue_line => DirectiveKind::Queue(self.string(next())),
            // `aws` alone, or `aws role "ARN"` (the `role` keyword is a part).
            Rule::aws_line => DirectiveKind::Aws(parts.nth(1).map(|p| self.string(p))),
            Rule::env_line => {
                let name = self.env_ident(next(), "environment variable");
                let value = self.value(next());
                let span = name.span.to(value.span);
                DirectiveKind::Env(Box::new(ast::EnvVar { name, value, span }))
            }
            Rule::output_line => DirectiveKind::Output(self.ident(next())),
            Rule::secret_line => DirectiveKind::Secret(self.env_ident(next(), "secret")),
            Rule::catch_line => DirectiveKind::Catch(self.ident(next())),
            Rule::timeout_line => DirectiveKind::Timeout(self.value(next())),
            Rule::heartbeat_line => DirectiveKind::Heartbeat(self.value(next())),
            Rule::retry_line => {
                let attempts = self.value(next());
                let (mut every, mut backoff) = (None, None);
                while let Some(kw) = parts.next() {
                    let value = parts.next().map(|p| self.value(p));
                    if kw.as_rule() == Rule::kw_every {
                        every = value;
                    } else {
                        backoff = value;
                    }
                }
                DirectiveKind::Retry(Box::new(ast::Retry {
                    attempts,
                    every,
                    backoff,
                }))
            }
            Rule::when_line => DirectiveKind::When(Box::new(self.expr(next()))),
            Rule::foreach_line => {
                let var = self.ident(next());
                let _in = next();
                let items = next();
                let items = if items.as_rule() == Rule::list {
                    ast::ForeachItems::List(self.value(items))
                } else {
                    ast::ForeachItems::Param(self.ident(items))
                };
                DirectiveKind::Foreach(Box::new(ast::Foreach { var, items }))
            }
            _ => {
                debug_assert_eq!(rule, Rule::use_line);
                let template_ref = next();
                let start = self.span(&template_ref).start;
                let template = template_ref
                    .into_inner()
                    .map(|p| self.ident(p))
                    .collect::<Vec<_>>();
                let args = parts
                    .map(|arg| {
                        let mut inner = arg.into_inner().filter(|p| p.as_rule() != Rule::equals);
                        let name = self.ident(inner.next().expect("an argument has a name"));
                        let value = self.value(inner.next().expect("an argument has a value"));
                        ast::Arg { name, value }
                    })
                    .collect();
                DirectiveKind::Use(ast::Use {
                    template,
                    args,
                    span: Span::new(self.file, start, end),
                })
            }
        };
        (kind, end)
    }

    /// `NAME[: TYPE] [= DEFAULT]`
    pub(super) fn param(&mut self, pair: Pair<'_, Rule>) -> ast::Param {
        let span = self.span(&pair);
        let mut param = ast::Param {
            name: Ident {
                name: String::new(),
                span,
            },
            ty: None,
            default: None,
            span,
        };
        for part in pair.into_inner() {
            match part.as_rule() {
                Rule::param_name => param.name = self.ident(part),
                Rule::type_name => param.ty = Some(self.ident(part)),
                Rule::value => param.default = Some(self.value(part)),
                _ => {}
            }
        }
        param
    }

    /// The decoded text of a string literal and, for each of its bytes (and
    /// one past the end), the file offset it came from.
    fn decode(&mut self, pair: &Pair<'_, Rule>) -> (String, Vec<usize>) {
        let body = pair
            .clone()
            .into_inner()
            .find(|p| p.as_rule() == Rule::string_body);
        let (raw, start) = body.map_or(("", self.span(pair).start + 1), |b| {
            (b.as_str(), self.base + b.as_span().start())
        });
        let mut text = String::with_capacity(raw.len());
        let mut map = Vec::with_capacity(raw.len() + 1);
        let mut chars = raw.char_indices();
        while let Some((i, c)) = chars.next() {
            if c != '\\' {
                text.push(c);
                map.extend((0..c.len_utf8()).map(|n| start + i + n));
                continue;
            }
            let Some((_, e)) = chars.next() else { break };
            let decoded = match e {
                '"' => '"',
                '\\' => '\\',
                'n' => '\n',
                't' => '\t',
                other => {
                    let end = start + i + 1 + other.len_utf8();
                    self.diags.push(
                        Diagnostic::error(
                            codes::SYNTAX,
                            Span::new(self.file, start + i, end),
                            format!("unknown escape `\\{other}` in a string"),
                        )
                        .label("not an escape")
                        .help("the escapes are \\\", \\\\, \\n and \\t; write a backslash as \\\\"),
                    );
                    other
                }
            };
            text.push(decoded);
            map.extend((0..decoded.len_utf8()).map(|_| start + i));
        }
        map.push(start + raw.len());
        (text, map)
    }

    fn string(&mut self, pair: Pair<'_, Rule>) -> ast::Interp {
        let whole = self.span(&pair);
        let (text, map) = self.decode(&pair);
        let last = map.len() - 1;
        let (interp, diags) = interp::split(&text, self.file, whole, &|i| map[i.min(last)]);
        self.diags.extend(diags);
        interp
    }

    fn value(&mut self, pair: Pair<'_, Rule>) -> ast::Value {
        let pair = if matches!(pair.as_rule(), Rule::value | Rule::literal) {
            pair.into_inner()
                .next()
                .expect("a value is one of its alternatives")
        } else {
            pair
        };
        let span = self.span(&pair);
        let text = pair.as_str();
        let kind = match pair.as_rule() {
            Rule::string => ast::ValueKind::Str(self.string(pair)),
            Rule::int => ast::ValueKind::Int(text.parse().unwrap_or_else(|_| {
                self.diags.push(
                    Diagnostic::error(codes::BAD_VALUE, span, "integer out of range")
                        .label("does not fit in 64 bits")
                        .help("integers range from -9223372036854775808 to 9223372036854775807"),
                );
                0
            })),
            Rule::float => ast::ValueKind::Float(text.parse().unwrap_or(0.0)),
            Rule::bool => ast::ValueKind::Bool(text == "true"),
            Rule::duration => ast::ValueKind::Duration(text.to_string()),
            _ => {
                debug_assert_eq!(pair.as_rule(), Rule::list);
                let items = pair
                    .into_inner()
                    .filter(|p| p.as_rule() == Rule::value)
                    .map(|p| self.value(p))
                    .collect();
                ast::ValueKind::List(items)
            }
        };
        ast::Value { kind, span }
    }

    pub(super) fn expr(&mut self, pair: Pair<'_, Rule>) -> Expr {
        let span = self.span(&pair);
        match pair.as_rule() {
            Rule::or_expr | Rule::and_expr | Rule::cmp_expr => {
                let mut inner = pair.into_inner();
                let first = inner.next().expect("an operator chain has a first operand");
                let mut acc = self.expr(first);
                while let Some(op) = inner.next() {
                    let Some(rhs) = inner.next() else { break };
                    let rhs = self.expr(rhs);
                    let span = acc.span.to(rhs.span);
                    let (l, r) = (Box::new(acc), Box::new(rhs));
                    let kind = match op.as_rule() {
                        Rule::or_op => ExprKind::Or(l, r),
                        Rule::and_op => ExprKind::And(l, r),
                        Rule::eq_op => ExprKind::Eq(l, r),
                        _ => ExprKind::Ne(l, r),
                    };
                    acc = Expr { kind, span };
                }
                acc
            }
            Rule::unary => {
                let mut nots = Vec::new();
                let mut operand = None;
                for part in pair.into_inner() {
                    if part.as_rule() == Rule::not_op {
                        nots.push(self.span(&part).start);
                    } else {
                        operand = Some(self.expr(part));
                    }
                }
                let mut acc = operand.expect("a unary expression has an operand");
                for start in nots.into_iter().rev() {
                    let span = Span::new(self.file, start, acc.span.end);
                    acc = Expr {
                        kind: ExprKind::Not(Box::new(acc)),
                        span,
                    };
                }
                acc
            }
            Rule::paren => {
                let inner = pair
                    .into_inner()
                    .find(|p| p.as_rule() == Rule::or_expr)
                    .expect("parentheses hold an expression");
                Expr {
                    kind: ExprKind::Paren(Box::new(self.expr(inner))),
                    span,
                }
            }
            Rule::literal => Expr {
                kind: ExprKind::Lit(self.value(pair)),
                span,
            },
            _ => {
                debug_assert_eq!(pair.as_rule(), Rule::reference);
                let path: Vec<Ident> = pair.into_inner().map(|p| self.ident(p)).collect();
                if path.len() > 2 {
                    self.diags.push(
                        Diagnostic::error(
                            codes::SYNTAX,
                            span,
                            format!("`{}` has too many parts", pair_text(&path)),
                        )
                        .label("expected `name` or `step.OUTPUT`")
                        .help("a reference is a name (`region`) or `step.OUTPUT`"),
                    );
                }
                Expr {
                    kind: ExprKind::Ref(ast::Ref { path, span }),
                    span,
                }
            }
        }
    }
}

fn pair_text(path: &[Ident]) -> String {
    path.iter()
        .map(|i| i.name.as_str())
        .collect::<Vec<_>>()
        .join(".")
}
