//! Template expansion: a step's `use TEMPLATE(...)` replaced by the
//! template's body, its arguments checked against the template's parameters
//! and substituted into the body's text, values and conditions.

use std::borrow::Cow;
use std::collections::HashMap;

use crate::diagnostics::{Diagnostic, codes, suggest};
use crate::model::Type;
use crate::source::Span;
use crate::syntax::ast::{self, DirectiveKind, Part};

use super::Unit;
use super::scope::{Decl, Templates};
use super::values::{literal, value_text};

/// The step's directives with `use TEMPLATE(...)` replaced by the template's
/// body (arguments substituted). The step's own single-valued directives win
/// over the template's; its `run` replaces the template's.
pub(super) fn expand<'a>(
    d: &Decl<'a>,
    units: &[Unit],
    templates: &Templates,
    diags: &mut Vec<Diagnostic>,
) -> Cow<'a, [ast::Directive]> {
    let body = &d.ast.body;
    let uses: Vec<(&ast::Directive, &ast::Use)> = body
        .iter()
        .filter_map(|x| match &x.kind {
            DirectiveKind::Use(u) => Some((x, u)),
            _ => None,
        })
        .collect();
    let Some(&(first_dir, use_)) = uses.first() else {
        return Cow::Borrowed(body.as_slice());
    };
    for (dup, _) in uses.iter().skip(1) {
        diags.push(
            Diagnostic::error(
                codes::DUPLICATE_DIRECTIVE,
                dup.keyword_span,
                format!("step `{}` uses more than one template", d.name),
            )
            .label("second `use`")
            .secondary(first_dir.keyword_span, "first `use`")
            .help("a step fills its body from one template; split it into two steps"),
        );
    }
    let path: Vec<&str> = use_.template.iter().map(|i| i.name.as_str()).collect();
    let own_alias = units[d.unit].alias.clone();
    let key = match path.as_slice() {
        [name] => {
            let local = (own_alias.clone(), (*name).to_string());
            if templates.contains_key(&local) {
                local
            } else {
                (None, (*name).to_string())
            }
        }
        [module, name] => (Some((*module).to_string()), (*name).to_string()),
        _ => (None, path.join(".")),
    };
    let name_span = use_.template.first().map_or(use_.span, |f| {
        f.span.to(use_.template.last().map_or(f.span, |l| l.span))
    });
    let Some(template) = templates.get(&key) else {
        let written = path.join(".");
        let known: Vec<String> = templates
            .keys()
            .map(|(m, n)| match m {
                Some(m) => format!("{m}.{n}"),
                None => n.clone(),
            })
            .collect();
        let mut diag = Diagnostic::error(
            codes::UNKNOWN_TEMPLATE,
            name_span,
            format!("unknown template `{written}`"),
        )
        .label("no template has this name")
        .about_unknown(written.clone());
        diag = match suggest(&written, known.iter().map(String::as_str)) {
            Some(s) => diag.help(format!("did you mean `{s}`?")),
            None => diag.help(
                "declare it with `template NAME(...):`, or import the module that has it (e.g. `import \"std/notify\"`)",
            ),
        };
        diags.push(diag);
        return body
            .iter()
            .filter(|x| !matches!(x.kind, DirectiveKind::Use(_)))
            .cloned()
            .collect();
    };
    let t = template.ast;
    // Arguments against the template's parameters.
    let mut args: HashMap<String, ast::Value> = HashMap::new();
    for arg in &use_.args {
        let Some(p) = t.params.iter().find(|p| p.name.name == arg.name.name) else {
            let mut diag = Diagnostic::error(
                codes::TEMPLATE_ARGS,
                arg.name.span,
                format!(
                    "template `{}` has no parameter `{}`",
                    t.name.name, arg.name.name
                ),
            )
            .label("unknown argument")
            .secondary(t.name.span, "template declared here");
            diag = match suggest(
                &arg.name.name,
                t.params.iter().map(|p| p.name.name.as_str()),
            ) {
                Some(s) => diag.help(format!("did you mean `{s}`?")),
                None => diag.help(format!(
                    "its parameters are: {}",
                    t.params
                        .iter()
                        .map(|p| p.name.name.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                )),
            };
            diags.push(diag);
            continue;
        };
        if args.contains_key(&arg.name.name) {
            diags.push(
                Diagnostic::error(
                    codes::TEMPLATE_ARGS,
                    arg.name.span,
                    format!("argument `{}` is given twice", arg.name.name),
                )
                .label("given again")
                .help("give each argument once"),
            );
            continue;
        }
        // Type-check literal arguments; strings may hold `{{ }}` (checked where used).
        let ty = p.ty.as_ref().and_then(|t| Type::parse(&t.name));
        let is_text = matches!(arg.value.kind, ast::ValueKind::Str(_));
        if !(is_text && matches!(ty, None | Some(Type::String))) {
            let _ = literal(&arg.value, ty, "a template argument", diags);
        }
        args.insert(arg.name.name.clone(), arg.value.clone());
    }
    for p in &t.params {
        if !args.contains_key(&p.name.name) {
            if let Some(v) = &p.default {
                args.insert(p.name.name.clone(), v.clone());
            } else {
                // Stand in an empty value so the body does not also
                // report `{{ name }}` as unknown: one problem, one error.
                args.insert(
                    p.name.name.clone(),
                    ast::Value {
                        kind: ast::ValueKind::Str(ast::Interp::literal("", use_.span)),
                        span: use_.span,
                    },
                );
                diags.push(
                    Diagnostic::error(
                        codes::TEMPLATE_ARGS,
                        use_.span,
                        format!(
                            "template `{}` needs the argument `{}`",
                            t.name.name, p.name.name
                        ),
                    )
                    .label(format!("`{}` is missing", p.name.name))
                    .secondary(p.name.span, "required parameter declared here")
                    .help(format!("add `{} = ...` to the arguments", p.name.name)),
                );
            }
        }
    }
    // The template's body with parameters substituted, then the step's own
    // directives, which override single-valued ones.
    let own: Vec<&ast::Directive> = body
        .iter()
        .filter(|x| !matches!(x.kind, DirectiveKind::Use(_)))
        .collect();
    let own_has = |kw: &str| own.iter().any(|x| x.kind.keyword() == kw);
    let mut out: Vec<ast::Directive> = Vec::new();
    for x in &t.body {
        let kw = x.kind.keyword();
        let multi = matches!(kw, "env" | "output" | "secret");
        if !multi && own_has(kw) {
            continue;
        }
        if let DirectiveKind::Env(e) = &x.kind
            && own
                .iter()
                .any(|o| matches!(&o.kind, DirectiveKind::Env(oe) if oe.name.name == e.name.name))
        {
            continue;
        }
        out.push(substitute(x, &args));
    }
    out.extend(own.into_iter().cloned());
    Cow::Owned(out)
}

fn substitute(x: &ast::Directive, args: &HashMap<String, ast::Value>) -> ast::Directive {
    let sub = |i: &ast::Interp| subst_interp(i, args, false);
    let kind = match &x.kind {
        DirectiveKind::Image(i) => DirectiveKind::Image(sub(i)),
        // In a script an argument is a value like any other: data, not code.
        DirectiveKind::Run(i) => DirectiveKind::Run(subst_interp(i, args, true)),
        DirectiveKind::Shell(i) => DirectiveKind::Shell(sub(i)),
        DirectiveKind::Workdir(i) => DirectiveKind::Workdir(sub(i)),
        DirectiveKind::Approval(i) => DirectiveKind::Approval(sub(i)),
        DirectiveKind::Queue(i) => DirectiveKind::Queue(sub(i)),
        DirectiveKind::Aws(Some(i)) => DirectiveKind::Aws(Some(sub(i))),
        DirectiveKind::Env(e) => DirectiveKind::Env(Box::new(ast::EnvVar {
            value: subst_value(&e.value, args),
            ..(**e).clone()
        })),
        DirectiveKind::Timeout(v) => DirectiveKind::Timeout(subst_value(v, args)),
        DirectiveKind::Heartbeat(v) => DirectiveKind::Heartbeat(subst_value(v, args)),
        DirectiveKind::When(e) => DirectiveKind::When(Box::new(subst_expr(e, args))),
        other => other.clone(),
    };
    ast::Directive {
        kind,
        span: x.span,
        keyword_span: x.keyword_span,
    }
}

/// The template's text with its parameters' holes filled from the
/// arguments. `data` (a `run`): an argument's literal text becomes
/// [`Part::Value`], a value the script gets as data, at the hole's span; the
/// holes inside an argument (`"app:{{ build.VERSION }}"`) stay holes.
fn subst_interp(i: &ast::Interp, args: &HashMap<String, ast::Value>, data: bool) -> ast::Interp {
    let mut parts = Vec::with_capacity(i.parts.len());
    let lit = |s: String, span: Span| {
        if data {
            Part::Value(s, span)
        } else {
            Part::Lit(s)
        }
    };
    for p in &i.parts {
        match p {
            Part::Ref(r) if r.path.len() == 1 && args.contains_key(&r.path[0].name) => {
                match &args[&r.path[0].name].kind {
                    ast::ValueKind::Str(s) if s.parts.is_empty() => {
                        parts.push(lit(String::new(), r.span));
                    }
                    ast::ValueKind::Str(s) => parts.extend(s.parts.iter().map(|q| match q {
                        Part::Lit(t) => lit(t.clone(), r.span),
                        other => other.clone(),
                    })),
                    other => parts.push(lit(value_text(other), r.span)),
                }
            }
            other => parts.push(other.clone()),
        }
    }
    // Merge neighbouring literals so the result looks like parsed text.
    let mut merged: Vec<Part> = Vec::with_capacity(parts.len());
    for p in parts {
        match (merged.last_mut(), p) {
            (Some(Part::Lit(a)), Part::Lit(b)) => a.push_str(&b),
            (_, p) => merged.push(p),
        }
    }
    ast::Interp {
        parts: merged,
        span: i.span,
    }
}

fn subst_value(v: &ast::Value, args: &HashMap<String, ast::Value>) -> ast::Value {
    match &v.kind {
        ast::ValueKind::Str(i) => {
            // A whole-string hole naming a non-string argument takes its value as is
            // (so `timeout {{ limit }}`-style uses keep their type).
            if let [Part::Ref(r)] = i.parts.as_slice()
                && r.path.len() == 1
                && let Some(arg) = args.get(&r.path[0].name)
            {
                return arg.clone();
            }
            ast::Value {
                kind: ast::ValueKind::Str(subst_interp(i, args, false)),
                span: v.span,
            }
        }
        _ => v.clone(),
    }
}

fn subst_expr(e: &ast::Expr, args: &HashMap<String, ast::Value>) -> ast::Expr {
    use ast::ExprKind as K;
    let b = |x: &ast::Expr| Box::new(subst_expr(x, args));
    let kind = match &e.kind {
        K::Or(x, y) => K::Or(b(x), b(y)),
        K::And(x, y) => K::And(b(x), b(y)),
        K::Eq(x, y) => K::Eq(b(x), b(y)),
        K::Ne(x, y) => K::Ne(b(x), b(y)),
        K::Not(x) => K::Not(b(x)),
        K::Paren(x) => K::Paren(b(x)),
        K::Ref(r) if r.path.len() == 1 && args.contains_key(&r.path[0].name) => {
            K::Lit(args[&r.path[0].name].clone())
        }
        other => other.clone(),
    };
    ast::Expr { kind, span: e.span }
}
