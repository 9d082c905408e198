//! Resolving what `{{ }}` holes and `when` operands name: a param, the loop
//! variable, another step's output (which must be needed and declared), or a
//! built-in. Every unresolved name becomes a diagnostic with a suggestion.

use crate::diagnostics::{Diagnostic, codes, suggest};
use crate::model::{self, Cond, Operand, Piece, Ref, Text, Type};
use crate::syntax::ast::{self, Expr, ExprKind, Part};

use super::scope::{Env, StepInfo};

/// Where a reference appears, which decides what it may name.
pub(crate) struct Ctx<'a> {
    /// The step being checked; `None` for pipeline-level `env`/`image`.
    pub step: Option<usize>,
    pub foreach_var: Option<&'a str>,
    pub is_handler: bool,
}

pub(crate) fn text(
    interp: &ast::Interp,
    ctx: &Ctx,
    env: &Env,
    diags: &mut Vec<Diagnostic>,
) -> Text {
    let mut parts = Vec::with_capacity(interp.parts.len());
    for (k, part) in interp.parts.iter().enumerate() {
        match part {
            Part::Lit(s) => parts.push(Piece::Lit(s.clone())),
            Part::Value(v, _) => parts.push(Piece::Value(v.clone())),
            Part::Ref(r) => {
                let dollar =
                    k > 0 && matches!(&interp.parts[k - 1], Part::Lit(s) if s.ends_with('$'));
                if let Some(d) = github_form(r, dollar, ctx, env) {
                    diags.push(d);
                    continue;
                }
                if let Some((r, _)) = resolve(r, ctx, env, diags) {
                    parts.push(Piece::Ref(r));
                }
            }
        }
    }
    Text { parts }
}

/// The built-in references, as written.
const BUILTINS: &[&str] = &[
    "pipeline.name",
    "run.id",
    "step.name",
    "failed.step",
    "failed.error",
];

/// `${{ github.sha }}` and its kin: a GitHub Actions expression, written where
/// topsail's `{{ }}` stands. Recognised by its `$` or its GitHub context,
/// unless the name is one of this pipeline's.
fn github_form(r: &ast::Ref, dollar: bool, ctx: &Ctx, env: &Env) -> Option<Diagnostic> {
    let first = r.path.first()?.name.as_str();
    let ours = ctx.foreach_var == Some(first)
        || env.params.contains_key(first)
        || env.step_index(first, ctx.step).is_some()
        || (r.path.len() == 2 && BUILTINS.contains(&r.dotted().as_str()));
    if ours || !(dollar || crate::syntax::interp::GITHUB_CONTEXTS.contains(&first)) {
        return None;
    }
    let (message, help) = crate::syntax::interp::github_expression(&r.dotted());
    Some(
        Diagnostic::error(codes::UNKNOWN_REFERENCE, r.span, message)
            .label("GitHub Actions syntax")
            .help(help)
            .about_unknown(first),
    )
}

/// Resolve one reference, giving its type too.
pub(crate) fn resolve(
    r: &ast::Ref,
    ctx: &Ctx,
    env: &Env,
    diags: &mut Vec<Diagnostic>,
) -> Option<(Ref, Type)> {
    match r.path.as_slice() {
        [one] => resolve_name(one, r, ctx, env, diags),
        [first, second] => resolve_dotted(first, second, r, ctx, env, diags),
        // `module.step.OUTPUT`: a step of an aliased import.
        [module, step, output] => {
            let joined = ast::Ident {
                name: format!("{}.{}", module.name, step.name),
                span: module.span.to(step.span),
            };
            resolve_dotted(&joined, output, r, ctx, env, diags)
        }
        _ => {
            diags.push(
                Diagnostic::error(
                    codes::UNKNOWN_REFERENCE,
                    r.span,
                    format!("`{}` is not a reference", r.dotted()),
                )
                .label("too many parts")
                .help("a reference is a name (`region`) or `step.OUTPUT`"),
            );
            None
        }
    }
}

fn resolve_name(
    one: &ast::Ident,
    r: &ast::Ref,
    ctx: &Ctx,
    env: &Env,
    diags: &mut Vec<Diagnostic>,
) -> Option<(Ref, Type)> {
    let name = one.name.as_str();
    if ctx.foreach_var == Some(name) {
        return Some((Ref::Loop(name.to_string()), Type::String));
    }
    if let Some(param) = env.params.get(name) {
        env.used_params.borrow_mut().insert(name.to_string());
        return Some((Ref::Param(name.to_string()), param.ty));
    }
    let mut candidates: Vec<&str> = env.params.keys().map(String::as_str).collect();
    candidates.extend(ctx.foreach_var);
    let mut d = Diagnostic::error(
        codes::UNKNOWN_REFERENCE,
        r.span,
        format!("unknown name `{name}`"),
    )
    .label("not a param or loop variable")
    .about_unknown(name);
    d = if let Some(s) = suggest(name, candidates.iter().copied()) {
        d.help(format!("did you mean `{s}`?"))
    } else if env.step_index(name, ctx.step).is_some() {
        d.help(format!(
            "`{name}` is a step; use one of its outputs as `{{{{ {name}.OUTPUT }}}}`"
        ))
    } else {
        d.help(format!(
            "declare it with `param {name}` at the top of the file, or use a built-in such as `{{{{ run.id }}}}`"
        ))
    };
    diags.push(d);
    None
}

fn resolve_dotted(
    first: &ast::Ident,
    second: &ast::Ident,
    r: &ast::Ref,
    ctx: &Ctx,
    env: &Env,
    diags: &mut Vec<Diagnostic>,
) -> Option<(Ref, Type)> {
    let (a, b) = (first.name.as_str(), second.name.as_str());
    let builtin = match (a, b) {
        ("pipeline", "name") => Some(Ref::PipelineName),
        ("run", "id") => Some(Ref::RunId),
        ("step", "name") => Some(Ref::StepName),
        ("failed", "step") => Some(Ref::FailedStep),
        ("failed", "error") => Some(Ref::FailedError),
        _ => None,
    };
    let is_step = env.step_index(a, ctx.step).is_some();
    if let Some(builtin) = builtin.filter(|_| !is_step) {
        if matches!(builtin, Ref::FailedStep | Ref::FailedError) && !ctx.is_handler {
            diags.push(
                Diagnostic::error(
                    codes::UNKNOWN_REFERENCE,
                    r.span,
                    format!("`{a}.{b}` exists only in a catch handler"),
                )
                .label("this step is not a catch handler")
                .help("name this step in another step's `catch` to use it as that step's handler"),
            );
            return None;
        }
        return Some((builtin, Type::String));
    }
    let Some(target) = env.step_index(a, ctx.step) else {
        let mut d = Diagnostic::error(
            codes::UNKNOWN_REFERENCE,
            first.span,
            format!("unknown step `{a}`"),
        )
        .label("no step has this name");
        let names = env.steps.iter().map(|s| s.name.as_str());
        let dotted = format!("{a}.{b}");
        d = match suggest(a, names) {
            Some(s) => d.help(format!("did you mean `{s}`?")),
            None => match suggest(&dotted, BUILTINS.iter().copied()) {
                // `pipeline.nam`, `run.ID`: a misspelt built-in, not a step.
                Some(s) => {
                    // The path alone (not the braces around it), for the fix.
                    Diagnostic::error(
                        codes::UNKNOWN_REFERENCE,
                        first.span.to(second.span),
                        format!("unknown built-in `{dotted}`"),
                    )
                    .label("not a built-in")
                    .help(format!("did you mean `{s}`?"))
                    .fix(s)
                }
                _ if matches!(a, "pipeline" | "run" | "step" | "failed") => Diagnostic::error(
                    codes::UNKNOWN_REFERENCE,
                    r.span,
                    format!("unknown built-in `{dotted}`"),
                )
                .label("not a built-in")
                .help(
                    "the built-ins are `pipeline.name`, `run.id`, `step.name`, and `failed.step` / `failed.error` in catch handlers",
                ),
                _ => d.help("a dotted reference is `step.OUTPUT` for a step this one needs"),
            },
        };
        diags.push(d.about_unknown(a));
        return None;
    };
    let info: &StepInfo = &env.steps[target];
    let output = || Ref::Output {
        step: info.name.clone(),
        output: b.to_string(),
    };
    if !info.outputs.iter().any(|o| o == b) {
        let mut d = Diagnostic::error(
            codes::UNKNOWN_OUTPUT,
            second.span,
            format!("step `{a}` declares no output `{b}`"),
        )
        .label("not declared")
        .secondary(info.span, format!("`{a}` is declared here"));
        d = match suggest(b, info.outputs.iter().map(String::as_str)) {
            Some(s) => d.help(format!("did you mean `{a}.{s}`?")),
            None => d.help(format!(
                "add `output {b}` to step `{a}` and have it append `{b}=...` to \"$TOPSAIL_OUTPUT\""
            )),
        };
        diags.push(d);
        return None;
    }
    if info.foreach {
        diags.push(
            Diagnostic::error(
                codes::FOREACH_OUTPUT,
                r.span,
                format!("step `{a}` runs once per item (`foreach`), so its outputs cannot be used"),
            )
            .label("output of a foreach step")
            .secondary(info.span, format!("`{a}` is declared here"))
            .help(format!(
                "split the value out into a step without `foreach` that `{a}` and this step need"
            )),
        );
        return None;
    }
    match ctx.step {
        None => {
            diags.push(
                Diagnostic::error(
                    codes::OUTPUT_NOT_NEEDED,
                    r.span,
                    format!("`{a}.{b}` is a step output and cannot be used at the pipeline level"),
                )
                .label("no step runs before the pipeline's defaults are set")
                .help("move this `env` or `image` into the steps that need it"),
            );
            None
        }
        Some(me) if me == target => {
            diags.push(
                Diagnostic::error(
                    codes::OUTPUT_NOT_NEEDED,
                    r.span,
                    format!("step `{a}` cannot use its own output `{b}`"),
                )
                .label("set by this very step")
                .help(
                    "use the shell variable you wrote it from, or move the use into a later step",
                ),
            );
            None
        }
        Some(me) => {
            if env.is_ancestor(target, me) {
                Some((output(), Type::String))
            } else {
                let me_name = &env.steps[me].name;
                diags.push(
                    Diagnostic::error(
                        codes::OUTPUT_NOT_NEEDED,
                        r.span,
                        format!("step `{me_name}` uses an output of `{a}` but does not need it"),
                    )
                    .label(format!("`{a}` may not have run yet"))
                    .secondary(env.steps[me].span, "this step's needs do not include it")
                    .help(format!(
                        "add `{a}` to the needs of `{me_name}`: `{me_name}: ... {a}`"
                    )),
                );
                None
            }
        }
    }
}

/// Lower a `when` expression to a typed condition.
pub(crate) fn cond(expr: &Expr, ctx: &Ctx, env: &Env, diags: &mut Vec<Diagnostic>) -> Option<Cond> {
    Some(match &expr.kind {
        ExprKind::Paren(e) => return cond(e, ctx, env, diags),
        ExprKind::Or(a, b) => {
            let (a, b) = (cond(a, ctx, env, diags), cond(b, ctx, env, diags));
            Cond::Or(Box::new(a?), Box::new(b?))
        }
        ExprKind::And(a, b) => {
            let (a, b) = (cond(a, ctx, env, diags), cond(b, ctx, env, diags));
            Cond::And(Box::new(a?), Box::new(b?))
        }
        ExprKind::Not(a) => Cond::Not(Box::new(cond(a, ctx, env, diags)?)),
        ExprKind::Eq(a, b) | ExprKind::Ne(a, b) => {
            let (x, y) = (operand(a, ctx, env, diags), operand(b, ctx, env, diags));
            let (x, y) = (x?, y?);
            if x.ty() != y.ty() {
                let op = if matches!(expr.kind, ExprKind::Eq(..)) {
                    "=="
                } else {
                    "!="
                };
                let (hint, fix) = compare_help(op, (a, &x), (b, &y));
                let mut d = Diagnostic::error(
                    codes::TYPE_MISMATCH,
                    expr.span,
                    format!("`{op}` compares a {} with a {}", x.ty(), y.ty()),
                )
                .label("these never compare equal")
                .secondary(a.span, format!("{}", x.ty()))
                .secondary(b.span, format!("{}", y.ty()))
                .help(hint);
                if let Some(fix) = fix {
                    d = d.fix(fix);
                }
                diags.push(d);
                return None;
            }
            if matches!(expr.kind, ExprKind::Eq(..)) {
                Cond::Eq(x, y)
            } else {
                Cond::Ne(x, y)
            }
        }
        ExprKind::Lit(_) | ExprKind::Ref(_) => {
            let op = operand(expr, ctx, env, diags)?;
            if !matches!(op.ty(), Type::Bool | Type::String) {
                diags.push(
                    Diagnostic::error(
                        codes::TYPE_MISMATCH,
                        expr.span,
                        format!("a {} is not a condition", op.ty()),
                    )
                    .label("neither true nor false")
                    .help("compare it with `==` or `!=`, e.g. `replicas != 0`"),
                );
                return None;
            }
            Cond::Truthy(op)
        }
    })
}

/// How an operand is written, for a suggested rewrite.
fn written(e: &Expr, op: &Operand) -> String {
    match (&e.kind, op) {
        (ExprKind::Paren(inner), _) => written(inner, op),
        (ExprKind::Ref(r), _) => r.dotted(),
        (_, Operand::Lit(v)) => literal_text(v),
        (_, Operand::Ref(..)) => String::new(),
    }
}

fn literal_text(v: &model::Value) -> String {
    match v {
        model::Value::Str(s) => format!("{s:?}"),
        model::Value::Int(i) => i.to_string(),
        model::Value::Bool(b) => b.to_string(),
        model::Value::Float(f) => model::format_float(*f),
        other => format!("{other:?}"),
    }
}

/// What a reference of type string is, in words.
fn string_kind(r: &Ref) -> &'static str {
    match r {
        Ref::Output { .. } => "an output, and outputs are strings",
        Ref::Loop(_) => "a loop variable, and its items are strings",
        Ref::Param(_) => "a string param",
        _ => "a built-in, and built-ins are strings",
    }
}

/// The help (and, when there is one, the rewrite of the whole comparison)
/// for `==` / `!=` between two types: it fits the case that was written.
fn compare_help(
    op: &str,
    (a, x): (&Expr, &Operand),
    (b, y): (&Expr, &Operand),
) -> (String, Option<String>) {
    let (ta, tb) = (written(a, x), written(b, y));
    // The reference and the literal, whichever side each is on.
    let (r, name, lit, ref_left) = match (x, y) {
        (Operand::Ref(r, t), Operand::Lit(v)) => ((r, *t), ta.clone(), v, true),
        (Operand::Lit(v), Operand::Ref(r, t)) => ((r, *t), tb.clone(), v, false),
        _ => {
            return (
                format!(
                    "make both sides the same type (the left is {}, the right is {})",
                    x.ty(),
                    y.ty()
                ),
                None,
            );
        }
    };
    let with_lit = |lit: String| {
        if ref_left {
            format!("{name} {op} {lit}")
        } else {
            format!("{lit} {op} {name}")
        }
    };
    match (r.1, lit) {
        (Type::Bool, model::Value::Str(s)) if s == "true" || s == "false" => {
            let truthy = (s == "true") == (op == "==");
            let fix = if truthy {
                name.clone()
            } else {
                format!("!{name}")
            };
            (
                format!("`{name}` is a bool, not a string: write `when {fix}`"),
                Some(fix),
            )
        }
        (Type::Bool, _) => (
            format!(
                "`{name}` is a bool: write `when {name}` or `when !{name}`, or compare it with `true` / `false` without quotes"
            ),
            None,
        ),
        (Type::String, model::Value::Bool(_) | model::Value::Int(_) | model::Value::Float(_)) => {
            let quoted = format!("\"{}\"", literal_text(lit));
            let fix = with_lit(quoted.clone());
            (
                format!(
                    "`{name}` is {}: put the value in quotes, `{fix}`",
                    string_kind(r.0)
                ),
                Some(fix),
            )
        }
        (Type::Int, model::Value::Str(s)) if s.parse::<i64>().is_ok() => {
            let fix = with_lit(s.clone());
            (
                format!("`{name}` is an int: write the number without quotes, `{fix}`"),
                Some(fix),
            )
        }
        (Type::Int, _) => (
            format!(
                "`{name}` is an int: compare it with a number, without quotes (`{name} {op} 3`)"
            ),
            None,
        ),
        (Type::String, _) => (
            format!(
                "`{name}` is {}: compare it with a string in quotes (`{name} {op} \"x\"`)",
                string_kind(r.0)
            ),
            None,
        ),
        (t, _) => (
            format!("`{name}` is a {t}: compare it with a value of that type"),
            None,
        ),
    }
}

fn operand(expr: &Expr, ctx: &Ctx, env: &Env, diags: &mut Vec<Diagnostic>) -> Option<Operand> {
    match &expr.kind {
        ExprKind::Paren(e) => operand(e, ctx, env, diags),
        ExprKind::Ref(r) => resolve(r, ctx, env, diags).map(|(r, t)| Operand::Ref(r, t)),
        ExprKind::Lit(v) => {
            let value = match &v.kind {
                ast::ValueKind::Str(i) => {
                    if let Some(s) = i.as_literal() {
                        model::Value::Str(s)
                    } else {
                        diags.push(
                            Diagnostic::error(
                                codes::BAD_VALUE,
                                v.span,
                                "a string in `when` cannot contain `{{ }}`",
                            )
                            .label("write the name without braces")
                            .help("in `when`, names stand alone: `when build.CHANGED == \"true\"`"),
                        );
                        return None;
                    }
                }
                ast::ValueKind::Int(i) => model::Value::Int(*i),
                ast::ValueKind::Float(f) => model::Value::Float(*f),
                ast::ValueKind::Bool(b) => model::Value::Bool(*b),
                ast::ValueKind::Duration(_) | ast::ValueKind::List(_) => {
                    diags.push(
                        Diagnostic::error(
                            codes::TYPE_MISMATCH,
                            v.span,
                            "this value cannot be compared in `when`",
                        )
                        .label("not a string, number or bool")
                        .help("compare strings, ints or bools"),
                    );
                    return None;
                }
            };
            Some(Operand::Lit(value))
        }
        _ => {
            diags.push(
                Diagnostic::error(
                    codes::TYPE_MISMATCH,
                    expr.span,
                    "a condition cannot be compared",
                )
                .label("this is true or false already")
                .help("use `&&`, `||` and `!` to combine conditions; `==` compares values"),
            );
            None
        }
    }
}
