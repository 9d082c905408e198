//! A step's (or template's) keys -> its directives: one directive per key,
//! or per item of a list key (`run`, `env`, `outputs`, `secrets`).

use super::scalars::NameKind;
use super::text::TextMap;
use super::{AWS_KEYS, Cx, FOREACH_KEYS, RETRY_KEYS, USE_KEYS};
use crate::source::Span;
use crate::syntax::ast::{
    Arg, Directive, DirectiveKind, Expr, Foreach, ForeachItems, Ident, Keyword, Retry, Use, Value,
    ValueKind,
};
use crate::syntax::topsail;
use crate::syntax::yaml_tree::{Kind, Node, Scalar};

impl Cx<'_> {
    /// One step key -> its directives. `false` when the key is unknown.
    pub(super) fn directive(
        &mut self,
        key: &str,
        k: &Node,
        v: &Node,
        out: &mut Vec<Directive>,
    ) -> bool {
        let kw = k.span;
        let whole = kw.to(v.span);
        let mut push = |kind: DirectiveKind, span: Span| {
            out.push(Directive {
                kind,
                span,
                keyword_span: kw,
            });
        };
        let Some(keyword) = Keyword::from_yaml_key(key) else {
            return false;
        };
        match keyword {
            Keyword::Image | Keyword::Shell | Keyword::Workdir | Keyword::Approval => {
                let help = match keyword {
                    Keyword::Image => "write the image reference, e.g. `image: rust:1.80`",
                    Keyword::Shell => "write the interpreter, e.g. `shell: bash`",
                    Keyword::Workdir => "write a path, e.g. `workdir: /src`",
                    _ => "write the message, e.g. `approval: \"Deploy?\"`",
                };
                if let Some(i) = self.interp(v, help) {
                    let kind = match keyword {
                        Keyword::Image => DirectiveKind::Image(i),
                        Keyword::Shell => DirectiveKind::Shell(i),
                        Keyword::Workdir => DirectiveKind::Workdir(i),
                        _ => DirectiveKind::Approval(i),
                    };
                    push(kind, whole);
                }
            }
            Keyword::Run => {
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
            Keyword::Env => {
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
            Keyword::Output => {
                for name in self.names(v, "output", NameKind::Name) {
                    let span = kw.to(name.span);
                    push(DirectiveKind::Output(name), span);
                }
            }
            Keyword::Secret => {
                for name in self.names(v, "secret", NameKind::Env) {
                    let span = kw.to(name.span);
                    push(DirectiveKind::Secret(name), span);
                }
            }
            Keyword::Timeout | Keyword::Heartbeat => {
                if let Some(value) = self.value(v) {
                    let kind = if keyword == Keyword::Timeout {
                        DirectiveKind::Timeout(value)
                    } else {
                        DirectiveKind::Heartbeat(value)
                    };
                    push(kind, whole);
                }
            }
            Keyword::Retry => {
                if let Some(r) = self.retry(v) {
                    push(DirectiveKind::Retry(Box::new(r)), whole);
                }
            }
            Keyword::When => {
                if let Some(e) = self.when(v) {
                    push(DirectiveKind::When(Box::new(e)), whole);
                }
            }
            Keyword::Foreach => {
                if let Some(f) = self.foreach(v) {
                    push(DirectiveKind::Foreach(Box::new(f)), whole);
                }
            }
            Keyword::Catch => {
                if let Some(name) = self.name(v, "step", NameKind::Name) {
                    push(DirectiveKind::Catch(name), whole);
                }
            }
            Keyword::Use => {
                if let Some(u) = self.use_(v) {
                    push(DirectiveKind::Use(u), whole);
                }
            }
            Keyword::Queue => {
                if let Some(i) = self.interp(v, "write the queue's name, e.g. `queue: gpu`") {
                    push(DirectiveKind::Queue(i), whole);
                }
            }
            Keyword::Aws => {
                if let Some(kind) = self.aws(v) {
                    push(kind, whole);
                }
            }
        }
        true
    }

    /// `aws: true` (the runner's own credentials), `aws: {role: ARN}`, or
    /// `aws: false` (none: no directive at all).
    fn aws(&mut self, v: &Node) -> Option<DirectiveKind> {
        const HELP: &str =
            "write `aws: true` or `aws: {role: arn:aws:iam::123456789012:role/NAME}`";
        if matches!(v.kind, Kind::Map(_)) {
            let mut role = None;
            for (_, _, fv) in self.fields(v, AWS_KEYS, "in `aws`") {
                role = self.interp(&fv, HELP);
            }
            if role.is_none() {
                self.shape(v.span, "`aws` without `role`", HELP);
                return None;
            }
            return Some(DirectiveKind::Aws(role));
        }
        match self.value(v)?.kind {
            ValueKind::Bool(true) => Some(DirectiveKind::Aws(None)),
            ValueKind::Bool(false) => None,
            _ => {
                self.expected(v, "`true` or `{role: ARN}`", HELP);
                None
            }
        }
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
