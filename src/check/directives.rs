//! One step's directives -> a model step: each directive lowered (text and
//! references resolved, values checked), then the checks between directives
//! of the same step (duplicates, heartbeat against timeout, an approval gate
//! that also runs something, script holes no value can reach).

use std::cell::RefCell;
use std::collections::{HashMap, HashSet};
use std::time::Duration;

use indexmap::IndexMap;

use crate::diagnostics::{Diagnostic, codes, suggest};
use crate::model::text::is_env_name;
use crate::model::{
    self, Action, Foreach, ForeachItems, Retry, Script, Step, StepId, Text, Type, Value,
};
use crate::source::Span;
use crate::syntax::ast::{self, DirectiveKind, Part};

use super::refs::{self, Ctx};
use super::scope::{Decl, Env};
use super::values::{
    article, bad_env_name, check_image, check_name, literal, positive_duration, value_text,
};

/// The file-level `image` and `env` that apply to a step.
pub(super) struct StepDefaults<'a> {
    pub image: Option<&'a ast::Interp>,
    pub queue: Option<&'a ast::Interp>,
    pub env: &'a [&'a ast::EnvVar],
}

/// One step's directives -> a model step. `None` when something was wrong
/// (already reported).
#[allow(clippy::too_many_arguments)]
pub(super) fn lower_step(
    i: usize,
    d: &Decl,
    body: &[ast::Directive],
    defaults: &StepDefaults,
    env: &Env,
    is_handler: bool,
    secrets: &IndexMap<String, Span>,
    used_secrets: &RefCell<HashSet<String>>,
    diags: &mut Vec<Diagnostic>,
) -> Option<Step> {
    let errors_before = diags.iter().filter(|x| x.is_error()).count();
    let first_of = single_valued(d, body, diags);
    let foreach_var = body.iter().find_map(|x| match &x.kind {
        DirectiveKind::Foreach(f) => Some(f.var.name.as_str()),
        _ => None,
    });
    let ctx = Ctx {
        step: Some(i),
        foreach_var,
        is_handler,
    };
    let text =
        |interp: &ast::Interp, diags: &mut Vec<Diagnostic>| refs::text(interp, &ctx, env, diags);

    let mut image = None;
    let mut image_dir = None;
    let mut run_parts: Vec<(&ast::Directive, Text)> = Vec::new();
    let mut shell = None;
    let mut step_env: IndexMap<String, Text> = IndexMap::new();
    let mut workdir = None;
    let mut outputs: Vec<String> = Vec::new();
    let mut step_secrets: Vec<String> = Vec::new();
    let mut timeout = None;
    let mut heartbeat: Option<(Duration, Span)> = None;
    let mut retry = None;
    let mut when = None;
    let mut foreach = None;
    let mut approval: Option<(&ast::Directive, Text)> = None;
    let mut catch = None;
    let mut queue = defaults
        .queue
        .and_then(|q| super::fleet::check_queue(q, &mut Vec::new()));
    let mut aws = None;
    for x in body {
        match &x.kind {
            DirectiveKind::Image(i) => {
                check_image(i, diags);
                image = Some(text(i, diags));
                image_dir = Some(x);
            }
            DirectiveKind::Run(r) => {
                // A YAML `|` block ends in a newline, a `.topsail` block does
                // not; the script means the same, so the model drops it.
                let mut t = text(r, diags);
                if let Some(model::Piece::Lit(last)) = t.parts.last_mut() {
                    let kept = last.trim_end_matches(['\n', '\r']).len();
                    last.truncate(kept);
                    if last.is_empty() {
                        t.parts.pop();
                    }
                }
                run_parts.push((x, t));
            }
            DirectiveKind::Shell(s) => match s.as_literal() {
                Some(sh) if !sh.trim().is_empty() => shell = Some(sh),
                _ => diags.push(
                    Diagnostic::error(
                        codes::BAD_VALUE,
                        s.span,
                        "`shell` must be a plain program name",
                    )
                    .label("empty or computed")
                    .help("write the interpreter, e.g. `shell \"bash\"`"),
                ),
            },
            DirectiveKind::Env(e) => {
                if !is_env_name(&e.name.name) {
                    diags.push(bad_env_name(&e.name.name, e.name.span, "env"));
                }
                let value = env_value(&e.value, &ctx, env, diags);
                if step_env.insert(e.name.name.clone(), value).is_some() {
                    diags.push(
                        Diagnostic::error(
                            codes::DUPLICATE_DIRECTIVE,
                            e.name.span,
                            format!("env `{}` is set twice in step `{}`", e.name.name, d.name),
                        )
                        .label("set again here")
                        .help("set each variable once"),
                    );
                }
            }
            DirectiveKind::Workdir(w) => workdir = Some(text(w, diags)),
            DirectiveKind::Output(o) => {
                check_name(&o.name, o.span, "output", diags);
                if outputs.contains(&o.name) {
                    diags.push(
                        Diagnostic::warning(
                            codes::DUPLICATE_DIRECTIVE,
                            o.span,
                            format!("output `{}` is declared twice", o.name),
                        )
                        .label("declared again")
                        .help("declare each output once"),
                    );
                } else {
                    outputs.push(o.name.clone());
                }
            }
            DirectiveKind::Secret(s) => {
                if secrets.contains_key(&s.name) {
                    used_secrets.borrow_mut().insert(s.name.clone());
                    if !step_secrets.contains(&s.name) {
                        step_secrets.push(s.name.clone());
                    }
                } else {
                    let mut diag = Diagnostic::error(
                        codes::UNDECLARED_SECRET,
                        s.span,
                        format!("secret `{}` is not declared", s.name),
                    )
                    .label("unknown secret")
                    .about_unknown(s.name.clone());
                    diag = match suggest(&s.name, secrets.keys().map(String::as_str)) {
                        Some(found) => diag.help(format!("did you mean `{found}`?")),
                        None => diag.help(format!(
                            "declare it at the top of the file: `secret {}`",
                            s.name
                        )),
                    };
                    diags.push(diag);
                }
            }
            DirectiveKind::Timeout(v) => {
                timeout = positive_duration(v, "timeout", diags).map(|t| (t, v.span));
            }
            DirectiveKind::Heartbeat(v) => {
                heartbeat = positive_duration(v, "heartbeat", diags).map(|t| (t, v.span));
            }
            DirectiveKind::Retry(r) => retry = lower_retry(r, diags),
            DirectiveKind::When(e) => when = refs::cond(e, &ctx, env, diags),
            DirectiveKind::Foreach(f) => foreach = lower_foreach(f, env, diags),
            DirectiveKind::Approval(m) => approval = Some((x, text(m, diags))),
            DirectiveKind::Catch(c) => catch = Some(c),
            DirectiveKind::Use(_) => {}
            DirectiveKind::Queue(q) => queue = super::fleet::check_queue(q, diags),
            DirectiveKind::Aws(role) => aws = super::fleet::lower_aws(role.as_ref(), diags),
        }
    }
    unrequested_secrets(d, &run_parts, secrets, &step_secrets, diags);
    if approval.is_none() {
        hole_problems(&run_parts, shell.as_deref(), diags);
    }
    heartbeat_within_timeout(heartbeat, timeout, diags);
    if let Some((appr, _)) = &approval {
        approval_conflicts(d, appr, image_dir, &run_parts, &first_of, diags);
    }
    let errors_after = diags.iter().filter(|x| x.is_error()).count();
    if errors_after > errors_before {
        return None;
    }
    let mut merged_env: IndexMap<String, Text> = IndexMap::new();
    for e in defaults.env {
        let value = env_value(
            &e.value,
            &Ctx {
                step: None,
                foreach_var: None,
                is_handler: false,
            },
            env,
            diags,
        );
        merged_env.insert(e.name.name.clone(), value);
    }
    for (k, v) in step_env {
        merged_env.shift_remove(&k);
        merged_env.insert(k, v);
    }
    let action = if let Some((_, message)) = approval {
        Action::Approval { message }
    } else {
        let mut run = Text::default();
        for (k, (_, t)) in run_parts.into_iter().enumerate() {
            if k > 0 {
                run.parts.push(model::Piece::Lit("\n".into()));
            }
            run.parts.extend(t.parts);
        }
        merge_lits(&mut run);
        // A step with nothing to run (`all: build test`) only groups its
        // needs: it runs on the host and does nothing.
        let image = if run.parts.is_empty() {
            None
        } else {
            image.or_else(|| {
                defaults.image.map(|i| {
                    refs::text(
                        i,
                        &Ctx {
                            step: None,
                            foreach_var: None,
                            is_handler: false,
                        },
                        env,
                        diags,
                    )
                })
            })
        };
        Action::Script(Script { image, shell, run })
    };
    Some(Step {
        id: StepId(i),
        name: d.name.clone(),
        span: d.ast.name.span,
        needs: env.needs[i].iter().map(|&n| StepId(n)).collect(),
        need_names: env.needs[i]
            .iter()
            .map(|&n| env.steps[n].name.clone())
            .collect(),
        action,
        env: merged_env,
        workdir,
        outputs,
        secrets: step_secrets,
        timeout: timeout.map(|(t, _)| t),
        heartbeat: heartbeat.map(|(h, _)| h),
        retry,
        when,
        foreach,
        catch: catch
            .and_then(|c| env.step_index(&c.name, Some(i)))
            .map(|c| env.steps[c].name.clone()),
        is_handler,
        queue,
        aws,
    })
}

/// Single-valued directives may appear once: each repetition is an error.
/// Returns the first of each, by keyword.
fn single_valued<'b>(
    d: &Decl,
    body: &'b [ast::Directive],
    diags: &mut Vec<Diagnostic>,
) -> HashMap<&'static str, &'b ast::Directive> {
    let mut first_of: HashMap<&'static str, &ast::Directive> = HashMap::new();
    for x in body {
        let kw = x.kind.keyword();
        if matches!(kw, "run" | "env" | "output" | "secret" | "use") {
            continue;
        }
        if let Some(first) = first_of.get(kw) {
            diags.push(
                Diagnostic::error(
                    codes::DUPLICATE_DIRECTIVE,
                    x.keyword_span,
                    format!("`{kw}` is given twice in step `{}`", d.name),
                )
                .label("given again here")
                .secondary(first.keyword_span, "first given here")
                .help(format!("keep one `{kw}`")),
            );
        } else {
            first_of.insert(kw, x);
        }
    }
    first_of
}

/// Environment variables named in the script that are secrets but not requested.
fn unrequested_secrets(
    d: &Decl,
    run_parts: &[(&ast::Directive, Text)],
    secrets: &IndexMap<String, Span>,
    step_secrets: &[String],
    diags: &mut Vec<Diagnostic>,
) {
    for (_, run) in run_parts {
        for piece in &run.parts {
            let model::Piece::Lit(s) = piece else {
                continue;
            };
            for name in secrets.keys() {
                if step_secrets.contains(name) || !mentions_var(s, name) {
                    continue;
                }
                diags.push(
                    Diagnostic::warning(
                        codes::SECRET_NOT_REQUESTED,
                        run_parts[0].0.span,
                        format!("the script uses `${name}`, a secret this step did not ask for"),
                    )
                    .label("the variable will be empty here")
                    .help(format!("add `secret {name}` to step `{}`", d.name)),
                );
            }
        }
    }
}

/// Step Functions requires a heartbeat shorter than the timeout.
fn heartbeat_within_timeout(
    heartbeat: Option<(Duration, Span)>,
    timeout: Option<(Duration, Span)>,
    diags: &mut Vec<Diagnostic>,
) {
    if let (Some((hb, hb_span)), Some((t, t_span))) = (heartbeat, timeout)
        && hb >= t
    {
        diags.push(
            Diagnostic::error(
                codes::BAD_VALUE,
                hb_span,
                "the heartbeat interval must be shorter than the timeout",
            )
            .label("heartbeat")
            .secondary(t_span, "timeout")
            .help("Step Functions requires HeartbeatSeconds < TimeoutSeconds"),
        );
    }
}

/// An approval gate runs nothing: `image`, `run` or `shell` beside it is an error.
fn approval_conflicts(
    d: &Decl,
    appr: &ast::Directive,
    image_dir: Option<&ast::Directive>,
    run_parts: &[(&ast::Directive, Text)],
    first_of: &HashMap<&'static str, &ast::Directive>,
    diags: &mut Vec<Diagnostic>,
) {
    let mut conflicts: Vec<(Span, &str)> = Vec::new();
    if let Some(img) = image_dir {
        conflicts.push((img.keyword_span, "image"));
    }
    for (r, _) in run_parts {
        conflicts.push((r.keyword_span, "run"));
    }
    if let Some(sh) = first_of.get("shell") {
        conflicts.push((sh.keyword_span, "shell"));
    }
    if !conflicts.is_empty() {
        let what: Vec<&str> = conflicts.iter().map(|(_, w)| *w).collect();
        let mut diag = Diagnostic::error(
            codes::APPROVAL_CONFLICT,
            appr.keyword_span,
            format!(
                "step `{}` is an approval gate and cannot also have {}",
                d.name,
                what.iter()
                    .map(|w| format!("`{w}`"))
                    .collect::<Vec<_>>()
                    .join(" or ")
            ),
        )
        .label("a manual gate runs nothing");
        for (span, w) in &conflicts {
            diag = diag.secondary(*span, format!("`{w}` here"));
        }
        diags.push(diag.help("move the commands into a separate step that needs this gate"));
    }
}

/// Holes in the script that no reference to their value can serve
/// (LANGUAGE.md section 5): an error on each, with a fix.
fn hole_problems(
    run_parts: &[(&ast::Directive, Text)],
    shell: Option<&str>,
    diags: &mut Vec<Diagnostic>,
) {
    let mut run = Text::default();
    let mut spans = Vec::new();
    for (k, (x, t)) in run_parts.iter().enumerate() {
        if k > 0 {
            run.parts.push(model::Piece::Lit("\n".into()));
        }
        run.parts.extend(t.parts.iter().cloned());
        if let DirectiveKind::Run(i) = &x.kind {
            spans.extend(i.parts.iter().filter_map(|p| match p {
                Part::Ref(r) => Some(r.span),
                Part::Value(_, span) => Some(*span),
                Part::Lit(_) => None,
            }));
        }
    }
    merge_lits(&mut run);
    let holes = run
        .parts
        .iter()
        .filter(|p| !matches!(p, model::Piece::Lit(_)))
        .count();
    // A hole that did not resolve is reported already and missing here.
    if holes != spans.len() {
        return;
    }
    let shown: Vec<String> = run
        .parts
        .iter()
        .filter_map(|p| match p {
            model::Piece::Ref(r) => Some(format!("{{{{ {r} }}}}")),
            model::Piece::Value(_) => Some("{{ ... }}".to_string()),
            model::Piece::Lit(_) => None,
        })
        .collect();
    for (h, problem) in model::script_problems(&run, shell) {
        let span = spans[h];
        let hole = &shown[h];
        diags.push(match problem {
            model::HoleProblem::QuotedHeredoc => Diagnostic::error(
                codes::HOLE_IN_QUOTED_HEREDOC,
                span,
                "a value cannot stand in a heredoc whose delimiter is quoted",
            )
            .label("nothing expands in this heredoc, so the value cannot reach it")
            .help(format!(
                "unquote the delimiter (`<<EOF`; then a `$`, `` ` `` or `\\` meant literally in \
                 the body needs a `\\` before it), or keep it quoted and give the value to the \
                 program that reads the heredoc: `env NAME = \"{hole}\"`, and `$NAME` there \
                 (e.g. `sh <<'EOF'` ... `echo \"$NAME\"`)",
            )),
            model::HoleProblem::NotPosixShell => Diagnostic::error(
                codes::HOLE_NOT_POSIX_SHELL,
                span,
                format!(
                    "a value cannot stand in a script for `{}`, which is not a POSIX shell",
                    shell.unwrap_or_default()
                ),
            )
            .label("topsail cannot pass this value to the interpreter as data")
            .help(format!(
                "pass it through the environment: `env NAME = \"{hole}\"`, and read it in the \
                 script (`os.environ[\"NAME\"]` in Python, `process.env.NAME` in Node, \
                 `$ENV{{NAME}}` in Perl)",
            )),
        });
    }
}

fn merge_lits(t: &mut Text) {
    let mut merged: Vec<model::Piece> = Vec::with_capacity(t.parts.len());
    for p in std::mem::take(&mut t.parts) {
        match (merged.last_mut(), p) {
            (Some(model::Piece::Lit(a)), model::Piece::Lit(b)) => a.push_str(&b),
            (_, p) => merged.push(p),
        }
    }
    t.parts = merged;
}

/// Does the script text mention `$NAME` or `${NAME}`?
fn mentions_var(script: &str, name: &str) -> bool {
    script.match_indices(name).any(|(at, _)| {
        let before = &script[..at];
        let after = &script[at + name.len()..];
        let ends = !after.starts_with(|c: char| c.is_ascii_alphanumeric() || c == '_');
        (before.ends_with('$') && ends) || (before.ends_with("${") && after.starts_with('}'))
    })
}

fn env_value(v: &ast::Value, ctx: &Ctx, env: &Env, diags: &mut Vec<Diagnostic>) -> Text {
    match &v.kind {
        ast::ValueKind::Str(i) => refs::text(i, ctx, env, diags),
        other => Text::literal(value_text(other)),
    }
}

fn lower_retry(r: &ast::Retry, diags: &mut Vec<Diagnostic>) -> Option<Retry> {
    let attempts = literal(&r.attempts, Some(Type::Int), "the retry count", diags);
    let every = match &r.every {
        Some(v) => positive_duration(v, "retry every", diags),
        None => Some(Duration::from_secs(1)),
    };
    let backoff = match &r.backoff {
        Some(v) => match literal(v, Some(Type::Float), "the backoff factor", diags)? {
            Value::Float(f) if f >= 1.0 && f.is_finite() => Some(f),
            _ => {
                diags.push(
                    Diagnostic::error(
                        codes::BAD_VALUE,
                        v.span,
                        "the backoff factor must be at least 1.0",
                    )
                    .label("each wait is the previous one times this")
                    .help("use `backoff 1.0` for equal waits, `backoff 2.0` to double them (Step Functions' BackoffRate is at least 1.0)")
                    .fix("1.0")
                    .fix("2.0"),
                );
                None
            }
        },
        None => Some(2.0),
    };
    let max_attempts = match attempts? {
        Value::Int(n) if (0..=99_999_999).contains(&n) => u32::try_from(n).ok()?,
        _ => {
            diags.push(
                Diagnostic::error(
                    codes::BAD_VALUE,
                    r.attempts.span,
                    "the retry count must be between 0 and 99999999",
                )
                .label("out of range")
                .help("give how many more attempts to make after a failure, at most 99999999 (Step Functions' MaxAttempts), e.g. `retry 2`")
                .fix("2"),
            );
            return None;
        }
    };
    Some(Retry {
        max_attempts,
        interval: every?,
        backoff: backoff?,
    })
}

fn lower_foreach(f: &ast::Foreach, env: &Env, diags: &mut Vec<Diagnostic>) -> Option<Foreach> {
    check_name(&f.var.name, f.var.span, "loop variable", diags);
    let items = match &f.items {
        ast::ForeachItems::List(v) => match literal(v, Some(Type::List), "`foreach`", diags)? {
            Value::List(items) => ForeachItems::List(items),
            _ => return None,
        },
        ast::ForeachItems::Param(p) => match env.params.get(&p.name) {
            Some(param) if param.ty == Type::List => {
                env.used_params.borrow_mut().insert(p.name.clone());
                ForeachItems::Param(p.name.clone())
            }
            Some(param) => {
                diags.push(
                    Diagnostic::error(
                        codes::TYPE_MISMATCH,
                        p.span,
                        format!(
                            "`foreach` needs a list, but param `{}` is {}",
                            p.name,
                            article(param.ty)
                        ),
                    )
                    .label("not a list")
                    .secondary(param.span, "declared here")
                    .help(format!("declare it as `param {}: list`", p.name))
                    .uses([p.name.clone()]),
                );
                return None;
            }
            None => {
                let mut diag = Diagnostic::error(
                    codes::UNKNOWN_REFERENCE,
                    p.span,
                    format!("unknown param `{}`", p.name),
                )
                .label("not a param")
                .about_unknown(p.name.clone());
                diag = match suggest(&p.name, env.params.keys().map(String::as_str)) {
                    Some(s) => diag.help(format!("did you mean `{s}`?")),
                    None => diag.help(format!(
                        "declare `param {}: list = [...]`, or write the list here: `foreach {} in [\"a\", \"b\"]`",
                        p.name, f.var.name
                    )),
                };
                diags.push(diag);
                return None;
            }
        },
    };
    Some(Foreach {
        var: f.var.name.clone(),
        items,
    })
}
