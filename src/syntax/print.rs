//! AST -> canonical `.topsail` text, for `topsail fmt` and
//! `topsail convert --to topsail`.
//!
//! The canonical form: declarations in the order written, a blank line
//! between groups of declarations (pipeline / params and secrets / image and
//! env / imports) and before every step and template, 4-space bodies, `run`
//! on one line when the script is one line, else a `run:` block. Comments
//! come back where they stood: an own-line comment before the item or
//! directive that followed it, an end-of-line comment after its line. The
//! printer only reads the AST (spans are used to place comments), so it works
//! as well for a module that came from YAML, which has no comments.
//! `parse(print(m))` equals `m` apart from spans; [`without_spans`] makes
//! that comparable.

use crate::syntax::Span;
use crate::syntax::ast::{
    Comment, Directive, DirectiveKind, Expr, ExprKind, ForeachItems, Interp, Item, Module, Param,
    Part, Value, ValueKind,
};
use crate::syntax::interp::escape;

const INDENT: &str = "    ";

pub fn print(module: &Module) -> String {
    let comments = Placement::new(module);
    let mut out = String::new();
    let mut anchor = 0;
    let mut prev: Option<&Item> = None;
    for item in &module.items {
        if let Some(prev) = prev
            && (group(prev) != group(item) || group(item) == Group::Block)
        {
            out.push('\n');
        }
        prev = Some(item);
        comments.before(anchor, "", &mut out);
        let header = header(item);
        out.push_str(&header);
        comments.trailing(anchor, &mut out);
        out.push('\n');
        anchor += 1;
        let body = match item {
            Item::Step(s) => s.body.as_slice(),
            Item::Template(t) => t.body.as_slice(),
            _ => &[],
        };
        for directive in body {
            comments.before(anchor, INDENT, &mut out);
            directive_text(directive, comments.has_trailing(anchor), &mut |line, first| {
                out.push_str(line);
                if first {
                    comments.trailing(anchor, &mut out);
                }
                out.push('\n');
            });
            anchor += 1;
        }
    }
    if !comments.tail.is_empty() && !module.items.is_empty() {
        out.push('\n');
    }
    for c in &comments.tail {
        out.push('#');
        out.push_str(&c.text);
        out.push('\n');
    }
    out
}

#[derive(PartialEq, Eq)]
enum Group {
    Pipeline,
    Params,
    Defaults,
    Imports,
    Block,
}

fn group(item: &Item) -> Group {
    match item {
        Item::Pipeline(_) => Group::Pipeline,
        Item::Param(_) | Item::Secret(_) => Group::Params,
        Item::Image(_) | Item::Env(_) => Group::Defaults,
        Item::Import(_) => Group::Imports,
        Item::Template(_) | Item::Step(_) => Group::Block,
    }
}

/// Which comments go before or after which line. Anchors are numbered in
/// print order: each item's header, then each of its directives.
struct Placement<'m> {
    before: Vec<Vec<&'m Comment>>,
    after: Vec<Vec<&'m Comment>>,
    tail: Vec<&'m Comment>,
}

impl<'m> Placement<'m> {
    fn new(module: &'m Module) -> Self {
        let mut starts = Vec::new();
        for item in &module.items {
            starts.push(item.span().start);
            let body = match item {
                Item::Step(s) => s.body.as_slice(),
                Item::Template(t) => t.body.as_slice(),
                _ => &[],
            };
            starts.extend(body.iter().map(|d| d.span.start));
        }
        let mut sorted: Vec<(usize, usize)> = starts.iter().copied().zip(0..).collect();
        sorted.sort_unstable();
        let mut placement = Placement {
            before: vec![Vec::new(); starts.len()],
            after: vec![Vec::new(); starts.len()],
            tail: Vec::new(),
        };
        for c in &module.comments {
            let at = c.span.start;
            let next = sorted.partition_point(|&(s, _)| s <= at);
            if c.own_line || next == 0 {
                match sorted.get(next) {
                    Some(&(_, anchor)) => placement.before[anchor].push(c),
                    None => placement.tail.push(c),
                }
            } else {
                placement.after[sorted[next - 1].1].push(c);
            }
        }
        placement
    }

    fn before(&self, anchor: usize, indent: &str, out: &mut String) {
        for c in self.before.get(anchor).into_iter().flatten() {
            out.push_str(indent);
            out.push('#');
            out.push_str(&c.text);
            out.push('\n');
        }
    }

    fn has_trailing(&self, anchor: usize) -> bool {
        self.after.get(anchor).is_some_and(|v| !v.is_empty())
    }

    fn trailing(&self, anchor: usize, out: &mut String) {
        for c in self.after.get(anchor).into_iter().flatten() {
            out.push_str("  #");
            out.push_str(&c.text);
        }
    }
}

fn header(item: &Item) -> String {
    match item {
        Item::Pipeline(name) => format!("pipeline {}", name.name),
        Item::Param(p) => format!("param {}", param(p)),
        Item::Secret(name) => format!("secret {}", name.name),
        Item::Image(s) => format!("image {}", string(s)),
        Item::Env(e) => format!("env {} = {}", e.name.name, value(&e.value)),
        Item::Import(i) => {
            let mut s = format!("import \"{}\"", escape(&i.path));
            if let Some(alias) = &i.alias {
                s.push_str(" as ");
                s.push_str(&alias.name);
            }
            s
        }
        Item::Template(t) => {
            if t.params.is_empty() {
                format!("template {}:", t.name.name)
            } else {
                let params: Vec<String> = t.params.iter().map(param).collect();
                format!("template {}({}):", t.name.name, params.join(", "))
            }
        }
        Item::Step(s) => {
            let mut h = format!("{}:", s.name.name);
            for need in &s.needs {
                h.push(' ');
                h.push_str(&need.name);
            }
            h
        }
    }
}

fn param(p: &Param) -> String {
    let mut s = p.name.name.clone();
    if let Some(ty) = &p.ty {
        s.push_str(": ");
        s.push_str(&ty.name);
    }
    if let Some(default) = &p.default {
        s.push_str(" = ");
        s.push_str(&value(default));
    }
    s
}

/// Emit a directive's lines (without line breaks) to `line`; the flag says
/// whether it is the directive's first line (where an end-of-line comment
/// goes). A script prints on one line only when that reads back the same and
/// no comment has to follow it.
fn directive_text(d: &Directive, has_comment: bool, line: &mut dyn FnMut(&str, bool)) {
    let text = match &d.kind {
        DirectiveKind::Run(script) => {
            let script = text(script);
            let one_line = !script.is_empty()
                && !script.contains('\n')
                && !script.starts_with([' ', '\t', ':'])
                && !script.ends_with([' ', '\t', '\r']);
            if one_line && !has_comment {
                line(&format!("{INDENT}run {script}"), true);
            } else {
                line(&format!("{INDENT}run:"), true);
                for l in script.split('\n') {
                    if l.is_empty() {
                        line("", false);
                    } else {
                        line(&format!("{INDENT}{INDENT}{l}"), false);
                    }
                }
            }
            return;
        }
        DirectiveKind::Image(s) => format!("image {}", string(s)),
        DirectiveKind::Shell(s) => format!("shell {}", string(s)),
        DirectiveKind::Workdir(s) => format!("workdir {}", string(s)),
        DirectiveKind::Approval(s) => format!("approval {}", string(s)),
        DirectiveKind::Env(e) => format!("env {} = {}", e.name.name, value(&e.value)),
        DirectiveKind::Output(n) => format!("output {}", n.name),
        DirectiveKind::Secret(n) => format!("secret {}", n.name),
        DirectiveKind::Catch(n) => format!("catch {}", n.name),
        DirectiveKind::Timeout(v) => format!("timeout {}", value(v)),
        DirectiveKind::Heartbeat(v) => format!("heartbeat {}", value(v)),
        DirectiveKind::Retry(r) => {
            let mut s = format!("retry {}", value(&r.attempts));
            if let Some(every) = &r.every {
                s.push_str(" every ");
                s.push_str(&value(every));
            }
            if let Some(backoff) = &r.backoff {
                s.push_str(" backoff ");
                s.push_str(&value(backoff));
            }
            s
        }
        DirectiveKind::When(e) => format!("when {}", expr(e, 0)),
        DirectiveKind::Foreach(f) => {
            let items = match &f.items {
                ForeachItems::List(v) => value(v),
                ForeachItems::Param(p) => p.name.clone(),
            };
            format!("foreach {} in {items}", f.var.name)
        }
        DirectiveKind::Use(u) => {
            let name: Vec<&str> = u.template.iter().map(|i| i.name.as_str()).collect();
            let mut s = format!("use {}", name.join("."));
            if !u.args.is_empty() {
                let args: Vec<String> = u
                    .args
                    .iter()
                    .map(|a| format!("{} = {}", a.name.name, value(&a.value)))
                    .collect();
                s.push('(');
                s.push_str(&args.join(", "));
                s.push(')');
            }
            s
        }
    };
    line(&format!("{INDENT}{text}"), true);
}

/// An interpolated text as written: holes as `{{ a.b }}`, and any `{` that
/// would otherwise read back as the start of a hole written as a hole
/// holding a string (`{{ "{{" }}`, `{{ "{" }}`).
fn text(interp: &Interp) -> String {
    let mut out = String::new();
    for (n, part) in interp.parts.iter().enumerate() {
        match part {
            Part::Lit(s) => {
                let next_opens = matches!(interp.parts.get(n + 1), Some(Part::Ref(_)))
                    || matches!(interp.parts.get(n + 1), Some(Part::Lit(l)) if l.starts_with('{'));
                let mut rest = s.as_str();
                while !rest.is_empty() {
                    if let Some(after) = rest.strip_prefix("{{") {
                        out.push_str("{{ \"{{\" }}");
                        rest = after;
                    } else if rest == "{" && next_opens {
                        out.push_str("{{ \"{\" }}");
                        rest = "";
                    } else {
                        let c = rest.chars().next().expect("rest is not empty");
                        out.push(c);
                        rest = &rest[c.len_utf8()..];
                    }
                }
            }
            Part::Ref(r) => {
                out.push_str("{{ ");
                out.push_str(&r.dotted());
                out.push_str(" }}");
            }
        }
    }
    out
}

fn string(interp: &Interp) -> String {
    format!("\"{}\"", escape(&text(interp)))
}

fn value(v: &Value) -> String {
    match &v.kind {
        ValueKind::Str(s) => string(s),
        ValueKind::Int(i) => i.to_string(),
        ValueKind::Float(f) => {
            // Display never uses an exponent; the grammar wants a `.`.
            let mut s = f.to_string();
            if f.is_finite() && !s.contains('.') {
                s.push_str(".0");
            }
            s
        }
        ValueKind::Bool(b) => b.to_string(),
        ValueKind::Duration(d) => d.clone(),
        ValueKind::List(items) => {
            let items: Vec<String> = items.iter().map(value).collect();
            format!("[{}]", items.join(", "))
        }
    }
}

fn precedence(e: &Expr) -> u8 {
    match e.kind {
        ExprKind::Or(..) => 1,
        ExprKind::And(..) => 2,
        ExprKind::Eq(..) | ExprKind::Ne(..) => 3,
        ExprKind::Not(_) => 4,
        ExprKind::Paren(_) | ExprKind::Lit(_) | ExprKind::Ref(_) => 5,
    }
}

/// Print `e`, adding parentheses when it binds looser than `min` (only an
/// AST not made by the parser needs them: the parser keeps `Paren`).
fn expr(e: &Expr, min: u8) -> String {
    let s = match &e.kind {
        ExprKind::Or(l, r) => format!("{} || {}", expr(l, 1), expr(r, 2)),
        ExprKind::And(l, r) => format!("{} && {}", expr(l, 2), expr(r, 3)),
        ExprKind::Eq(l, r) => format!("{} == {}", expr(l, 3), expr(r, 4)),
        ExprKind::Ne(l, r) => format!("{} != {}", expr(l, 3), expr(r, 4)),
        ExprKind::Not(x) => format!("!{}", expr(x, 4)),
        ExprKind::Paren(x) => format!("({})", expr(x, 0)),
        ExprKind::Lit(v) => value(v),
        ExprKind::Ref(r) => r.dotted(),
    };
    if precedence(e) < min {
        format!("({s})")
    } else {
        s
    }
}

// ------------------------------------------------------------------ span-free comparison

/// A copy of `m` with every span zeroed, so that two modules can be compared
/// for what they say (`parse(print(m))` against `m`, YAML against `.topsail`).
pub fn without_spans(m: &Module) -> Module {
    let mut m = m.clone();
    zero_module(&mut m);
    m
}

fn zero(span: &mut Span) {
    *span = Span::default();
}

fn zero_module(m: &mut Module) {
    zero(&mut m.span);
    for c in &mut m.comments {
        zero(&mut c.span);
    }
    for item in &mut m.items {
        match item {
            Item::Pipeline(i) | Item::Secret(i) => zero(&mut i.span),
            Item::Param(p) => zero_param(p),
            Item::Image(s) => zero_interp(s),
            Item::Env(e) => zero_env(e),
            Item::Import(i) => {
                zero(&mut i.span);
                zero(&mut i.path_span);
                if let Some(a) = &mut i.alias {
                    zero(&mut a.span);
                }
            }
            Item::Template(t) => {
                zero(&mut t.span);
                zero(&mut t.name.span);
                t.params.iter_mut().for_each(zero_param);
                t.body.iter_mut().for_each(zero_directive);
            }
            Item::Step(s) => {
                zero(&mut s.span);
                zero(&mut s.name.span);
                for n in &mut s.needs {
                    zero(&mut n.span);
                }
                s.body.iter_mut().for_each(zero_directive);
            }
        }
    }
}

fn zero_param(p: &mut Param) {
    zero(&mut p.span);
    zero(&mut p.name.span);
    if let Some(t) = &mut p.ty {
        zero(&mut t.span);
    }
    if let Some(v) = &mut p.default {
        zero_value(v);
    }
}

fn zero_env(e: &mut crate::syntax::ast::EnvVar) {
    zero(&mut e.span);
    zero(&mut e.name.span);
    zero_value(&mut e.value);
}

fn zero_interp(i: &mut Interp) {
    zero(&mut i.span);
    for part in &mut i.parts {
        if let Part::Ref(r) = part {
            zero_ref(r);
        }
    }
}

fn zero_ref(r: &mut crate::syntax::ast::Ref) {
    zero(&mut r.span);
    for i in &mut r.path {
        zero(&mut i.span);
    }
}

fn zero_value(v: &mut Value) {
    zero(&mut v.span);
    match &mut v.kind {
        ValueKind::Str(s) => zero_interp(s),
        ValueKind::List(items) => items.iter_mut().for_each(zero_value),
        ValueKind::Int(_) | ValueKind::Float(_) | ValueKind::Bool(_) | ValueKind::Duration(_) => {}
    }
}

fn zero_expr(e: &mut Expr) {
    zero(&mut e.span);
    match &mut e.kind {
        ExprKind::Or(l, r) | ExprKind::And(l, r) | ExprKind::Eq(l, r) | ExprKind::Ne(l, r) => {
            zero_expr(l);
            zero_expr(r);
        }
        ExprKind::Not(x) | ExprKind::Paren(x) => zero_expr(x),
        ExprKind::Lit(v) => zero_value(v),
        ExprKind::Ref(r) => zero_ref(r),
    }
}

fn zero_directive(d: &mut Directive) {
    zero(&mut d.span);
    zero(&mut d.keyword_span);
    match &mut d.kind {
        DirectiveKind::Image(s)
        | DirectiveKind::Run(s)
        | DirectiveKind::Shell(s)
        | DirectiveKind::Workdir(s)
        | DirectiveKind::Approval(s) => zero_interp(s),
        DirectiveKind::Env(e) => zero_env(e),
        DirectiveKind::Output(i) | DirectiveKind::Secret(i) | DirectiveKind::Catch(i) => {
            zero(&mut i.span);
        }
        DirectiveKind::Timeout(v) | DirectiveKind::Heartbeat(v) => zero_value(v),
        DirectiveKind::Retry(r) => {
            zero_value(&mut r.attempts);
            if let Some(v) = &mut r.every {
                zero_value(v);
            }
            if let Some(v) = &mut r.backoff {
                zero_value(v);
            }
        }
        DirectiveKind::When(e) => zero_expr(e),
        DirectiveKind::Foreach(f) => {
            zero(&mut f.var.span);
            match &mut f.items {
                ForeachItems::List(v) => zero_value(v),
                ForeachItems::Param(p) => zero(&mut p.span),
            }
        }
        DirectiveKind::Use(u) => {
            zero(&mut u.span);
            for t in &mut u.template {
                zero(&mut t.span);
            }
            for a in &mut u.args {
                zero(&mut a.name.span);
                zero_value(&mut a.value);
            }
        }
    }
}
