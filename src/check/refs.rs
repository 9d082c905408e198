//! Resolving what `{{ }}` holes and `when` operands name: a param, the loop
//! variable, another step's output (which must be needed and declared), or a
//! built-in. Every unresolved name becomes a diagnostic with a suggestion.

use crate::diagnostics::{Diagnostic, codes, suggest};
use crate::model::{self, Cond, Operand, Piece, Ref, Text, Type};
use crate::syntax::ast::{self, Expr, ExprKind, Part};

use super::lower::{Env, StepInfo};

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
    for part in &interp.parts {
        match part {
            Part::Lit(s) => parts.push(Piece::Lit(s.clone())),
            Part::Value(v, _) => parts.push(Piece::Value(v.clone())),
            Part::Ref(r) => {
                if let Some((r, _)) = resolve(r, ctx, env, diags) {
                    parts.push(Piece::Ref(r));
                }
            }
        }
    }
    Text { parts }
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
    .label("not a param or loop variable");
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
        d = match suggest(a, names) {
            Some(s) => d.help(format!("did you mean `{s}`?")),
            None if matches!(a, "pipeline" | "run" | "step" | "failed") => d.help(
                "the built-ins are `pipeline.name`, `run.id`, `step.name`, and `failed.step` / `failed.error` in catch handlers",
            ),
            None => d.help("a dotted reference is `step.OUTPUT` for a step this one needs"),
        };
        diags.push(d);
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
                let hint = match (x.ty(), y.ty()) {
                    (Type::String, Type::Bool) | (Type::Bool, Type::String) => {
                        "outputs are strings: compare with \"true\" / \"false\" in quotes".to_string()
                    }
                    (Type::String, Type::Int) | (Type::Int, Type::String) => {
                        "outputs are strings: write the number in quotes, or compare an int param with a number".to_string()
                    }
                    (tx, ty) => format!("make both sides the same type (the left is {tx}, the right is {ty})"),
                };
                diags.push(
                    Diagnostic::error(
                        codes::TYPE_MISMATCH,
                        expr.span,
                        format!("`{op}` compares a {} with a {}", x.ty(), y.ty()),
                    )
                    .label("these never compare equal")
                    .secondary(a.span, format!("{}", x.ty()))
                    .secondary(b.span, format!("{}", y.ty()))
                    .help(hint),
                );
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
