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

use crate::model::text::escape;
use crate::source::Span;
use crate::syntax::ast::{
    Comment, Directive, DirectiveKind, Expr, ExprKind, ForeachItems, Interp, Item, Module, Param,
    Part, Value, ValueKind,
};

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
            directive_text(
                directive,
                comments.has_trailing(anchor),
                &mut |line, first| {
                    out.push_str(line);
                    if first {
                        comments.trailing(anchor, &mut out);
                    }
                    out.push('\n');
                },
            );
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
        Item::Image(_) | Item::Queue(_) | Item::Env(_) => Group::Defaults,
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
            if c.blank_after {
                out.push('\n');
            }
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
        Item::Queue(s) => format!("queue {}", string(s)),
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
        DirectiveKind::Queue(s) => format!("queue {}", string(s)),
        DirectiveKind::Aws(None) => "aws".to_string(),
        DirectiveKind::Aws(Some(role)) => format!("aws role {}", string(role)),
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
            Part::Lit(s) | Part::Value(s, _) => {
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
        // Blank lines are layout, like spans.
        c.blank_after = false;
    }
    for item in &mut m.items {
        match item {
            Item::Pipeline(i) | Item::Secret(i) => zero(&mut i.span),
            Item::Param(p) => zero_param(p),
            Item::Image(s) | Item::Queue(s) => zero_interp(s),
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
        | DirectiveKind::Approval(s)
        | DirectiveKind::Queue(s)
        | DirectiveKind::Aws(Some(s)) => zero_interp(s),
        DirectiveKind::Aws(None) => {}
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::diagnostics::Diagnostic;
    use crate::source::{Format, SourceMap};
    use crate::syntax::ast::{self, Ident, Ref};
    use crate::syntax::topsail;

    const RELEASE: &str = include_str!("../../tests/fixtures/parse/release.topsail");

    fn parse(text: &str) -> (Module, Vec<Diagnostic>) {
        let mut sources = SourceMap::new();
        let file = sources.add("t.topsail", None, text.to_string(), Format::Topsail);
        let (m, d) = topsail::parse(&sources, file);
        (m.expect("always a module"), d)
    }

    /// Print, parse the result, and check both promises: the same AST
    /// (spans aside) and the same text when printed again.
    fn round_trip(m: &Module) -> String {
        let printed = print(m);
        let (again, diags) = parse(&printed);
        assert!(
            diags.is_empty(),
            "printed text does not parse:\n{printed}\n{diags:#?}"
        );
        assert_eq!(
            without_spans(&again),
            without_spans(m),
            "AST changed; printed:\n{printed}"
        );
        assert_eq!(print(&again), printed, "not idempotent");
        printed
    }

    fn fmt(text: &str) -> String {
        let (m, d) = parse(text);
        assert!(d.is_empty(), "{d:#?}");
        round_trip(&m)
    }

    #[test]
    fn prints_the_language_example() {
        insta::assert_snapshot!(fmt(RELEASE));
    }

    #[test]
    fn canonical_layout() {
        let text = "pipeline   p\nparam a:int=3\nparam b=[ \"x\",\"y\" , ]\nimage \"i\"\nimport \"std/notify\" as n\nb:a   c\n  run   make   \n  retry 2   backoff 2.0\nc:\n        when !a==b&&(c||d)\n        use n.webhook( url = \"u\" )\ntemplate t ( x , y = 1 ) :\n  run:\n      one\n\n        two\n";
        assert_eq!(
            fmt(text),
            "pipeline p\n\nparam a: int = 3\nparam b = [\"x\", \"y\"]\n\nimage \"i\"\n\nimport \"std/notify\" as n\n\n\
             b: a c\n    run make\n    retry 2 backoff 2.0\n\n\
             c:\n    when !a == b && (c || d)\n    use n.webhook(url = \"u\")\n\n\
             template t(x, y = 1):\n    run:\n        one\n\n          two\n"
        );
    }

    #[test]
    fn comments_stay_where_they_were() {
        let text = "# top\npipeline p  # name\n\n# about build\nbuild:   # header\n    # before image\n    image \"x\"  # trailing\n# col0 inside body\n    run:  # on run\n        echo # script, not a comment\n    # dangling at the end of the body\n\n# the end\n";
        assert_eq!(
            fmt(text),
            "# top\npipeline p  # name\n\n# about build\nbuild:  # header\n    # before image\n    image \"x\"  # trailing\n    # col0 inside body\n    run:  # on run\n        echo # script, not a comment\n\n# dangling at the end of the body\n# the end\n"
        );
    }

    #[test]
    fn scripts_and_strings_read_back_the_same() {
        for text in [
            "s:\n    run echo {{ \"{{\" }}.Id}}\n",
            "s:\n    run echo {{ \"{\" }}{{ x }}\n",
            "s:\n    run:\n        :\n",
            "s:\n    run:\n\n        after a blank first line\n",
            "s:\n    image \"a\\\"b\\\\c\\nd\\te {{ \\\"{{\\\" }} {{ x.y }}\"\n",
            "s:\n    env A = \"{{ \\\"{\\\" }}{{ x }}\"\n",
            "param f = 1.5\nparam g = -0.25\nparam h = 100000000000000000000000.0\n",
        ] {
            fmt(text);
        }
    }

    fn ident(name: &str) -> Ident {
        Ident {
            name: name.into(),
            span: Span::default(),
        }
    }

    fn e(kind: ExprKind) -> Expr {
        Expr {
            kind,
            span: Span::default(),
        }
    }

    fn r(name: &str) -> Expr {
        e(ExprKind::Ref(Ref {
            path: vec![ident(name)],
            span: Span::default(),
        }))
    }

    #[test]
    fn prints_a_module_built_without_source() {
        // What the YAML front end produces: no comments, spans from
        // elsewhere, scripts that may need the block form.
        let b = |x| Box::new(x);
        let when = e(ExprKind::And(
            b(e(ExprKind::Or(b(r("a")), b(r("b"))))),
            b(e(ExprKind::Not(b(e(ExprKind::Eq(b(r("c")), b(r("d")))))))),
        ));
        let directive = |kind| ast::Directive {
            kind,
            span: Span::default(),
            keyword_span: Span::default(),
        };
        let m = Module {
            items: vec![Item::Step(ast::Step {
                name: ident("s"),
                needs: vec![],
                body: vec![
                    directive(DirectiveKind::When(Box::new(when))),
                    directive(DirectiveKind::Run(Interp::literal(
                        "  indented\nline",
                        Span::default(),
                    ))),
                    directive(DirectiveKind::Timeout(Value {
                        kind: ValueKind::Float(2.0),
                        span: Span::default(),
                    })),
                ],
                span: Span::default(),
            })],
            comments: vec![],
            span: Span::default(),
        };
        let printed = print(&m);
        assert_eq!(
            printed,
            "s:\n    when (a || b) && !(c == d)\n    run:\n          indented\n        line\n    timeout 2.0\n"
        );
    }

    #[test]
    fn empty_module() {
        assert_eq!(print(&parse("").0), "");
        assert_eq!(fmt("# just this\n"), "# just this\n");
    }

    fn directive_line() -> impl proptest::strategy::Strategy<Value = String> {
        use proptest::prelude::*;
        let name = "[a-z_][a-z0-9_-]{0,5}";
        let text = "([a-z {}.:#\\\\\"é]|\\{\\{ [a-z]{1,3}(\\.[A-Z]{1,3})? \\}\\}|\\{\\{ \"\\{\\{\" \\}\\}){0,5}";
        let value = prop_oneof![
            "-?[0-9]{1,4}",
            "[0-9]{1,2}\\.[0-9]{1,2}",
            "[0-9]{1,3}(s|m|h|ms|xyz)",
            "true|false",
            "\\[\\]",
            "\\[\"[a-z]{0,3}\", \\[1, -2\\]\\]",
            "\"([a-z {}]|\\\\n|\\\\\"|\\{\\{ x \\}\\})*\"",
        ];
        prop_oneof![
            (text).prop_map(|t| format!("run x{t}")),
            "run:\n {8,10}[a-z]{1,4}( [a-z#{}\"]{0,6})?(\n\n {8,12}[a-z]{1,4}){0,2}"
                .prop_map(|s| s),
            (name).prop_map(|n| format!("output {n}")),
            "(image|shell|workdir|approval) \"([a-z {}:/]|\\\\n|\\\\\\\\|\\{\\{ [a-z]{1,3} \\}\\})*\"",
            (value.clone()).prop_map(|v| format!("timeout {v}")),
            (
                value.clone(),
                proptest::option::of(value.clone()),
                proptest::option::of(value.clone())
            )
                .prop_map(|(a, e, b)| {
                    let every = e.map(|e| format!(" every {e}")).unwrap_or_default();
                    let backoff = b.map(|b| format!("  backoff {b}")).unwrap_or_default();
                    format!("retry {a}{every}{backoff}")
                }),
            "when !?\\(?[a-z]{1,3}(\\.[A-Z]{1,2})? (==|!=|&&|\\|\\|) !?(\"[a-z]*\"|[a-z]{1,3}|true|3)\\)?( && !x)?",
            "foreach [a-z]{1,3} in (\\[\"a\", \"b\"\\]|[a-z]{1,5})",
            "use [a-z]{1,4}(\\.[a-z]{1,4})?(\\(\\)|\\(a = 1\\)|\\(a = \"x\", b = \\[true\\],\\))?",
            "catch [a-z]{1,4}|secret [A-Z_]{1,4}|env [A-Z_]{1,3} = [0-9]{1,2}",
            "# [a-z ]{0,8}",
        ]
    }

    fn pipeline_text() -> impl proptest::strategy::Strategy<Value = String> {
        use proptest::prelude::*;
        let decl = prop_oneof![
            "pipeline [a-z]{1,5}",
            "param [a-z]{1,4}(: (int|string))?( = (3|\"x\"|\\[\\]|2\\.5|10s))?",
            "secret [A-Z]{1,4}|image \"[a-z:]{1,6}\"|env [A-Z]{1,3} = \"[a-z]{0,3}\"",
            "import \"std/[a-z]{1,4}\"( as [a-z]{1,3})?",
            "# [a-z ]{0,6}",
            "",
        ];
        let step = (
            "([a-z][a-z0-9-]{0,4}:( [a-z]{1,3}){0,2}|template [a-z]{1,3}(\\(a, b = 1\\))?:)( +# c)?",
            2usize..7,
            proptest::collection::vec(directive_line(), 0..6),
        )
            .prop_map(|(header, indent, body)| {
                let pad = " ".repeat(indent);
                let mut s = header;
                for line in body {
                    // Keep a block's own lines deeper than the directive.
                    let line = line.replace("\n        ", &format!("\n{pad}    "));
                    s.push('\n');
                    s.push_str(&pad);
                    s.push_str(&line);
                }
                s
            });
        (
            proptest::collection::vec(decl, 0..5),
            proptest::collection::vec(step, 0..4),
        )
            .prop_map(|(decls, steps)| {
                let mut all = decls;
                all.extend(steps);
                all.join("\n")
            })
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(400))]

        /// Any file that parses cleanly, however odd its spacing, prints to
        /// text that parses to the same AST and prints the same again.
        #[test]
        fn clean_parses_round_trip(text in pipeline_text()) {
            let (m, d) = parse(&text);
            if d.is_empty() {
                round_trip(&m);
            }
        }
    }
}
