//! `topsail run --dry-run`: the plan, runs nothing. Steps in the order the
//! scheduler may start them, with images and commands rendered: params and
//! loop items substituted, outputs of earlier steps as `<step.NAME>`
//! placeholders (they are known only at run time), secrets as `***`.

use std::collections::HashMap;
use std::fmt::Write as _;

use indexmap::IndexMap;

use crate::model::{
    Action, Cond, ForeachItems, Operand, Pipeline, Ref, Scope, Value, format_duration,
    render_script, render_text,
};
use crate::run::{RunOptions, RunScope};

/// A scope whose outputs and run-time built-ins are placeholders.
struct PlanScope<'a>(RunScope<'a>);

impl Scope for PlanScope<'_> {
    fn lookup(&self, r: &Ref) -> Option<Value> {
        match r {
            Ref::Output { .. } | Ref::FailedStep | Ref::FailedError | Ref::RunId => {
                Some(Value::Str(format!("<{r}>")))
            }
            _ => self.0.lookup(r),
        }
    }
}

pub fn render(pipeline: &Pipeline, opts: &RunOptions) -> String {
    let mut out = String::new();
    let selected: Vec<bool> = if opts.targets.is_empty() {
        vec![true; pipeline.steps.len()]
    } else {
        let mut sel = vec![false; pipeline.steps.len()];
        for t in &opts.targets {
            if let Some(s) = pipeline.step_by_name(t) {
                sel[s.id.0] = true;
                for a in pipeline.ancestors(s.id) {
                    sel[a.0] = true;
                }
            }
        }
        let handlers: Vec<usize> = pipeline
            .steps
            .iter()
            .filter(|s| sel[s.id.0])
            .filter_map(|s| s.catch.as_ref().and_then(|h| pipeline.step_by_name(h)))
            .map(|h| h.id.0)
            .collect();
        for h in handlers {
            sel[h] = true;
        }
        sel
    };
    let _ = writeln!(
        out,
        "plan for pipeline `{}` (dry run: nothing is run; --jobs {})",
        pipeline.name, opts.jobs
    );
    if !opts.params.is_empty() {
        let params: Vec<String> = opts
            .params
            .iter()
            .map(|(k, v)| format!("{k}={}", v.to_text()))
            .collect();
        let _ = writeln!(out, "params: {}", params.join(", "));
    }
    let mut order = pipeline.topo_order();
    // Handlers run only after a failure: list them last.
    order.sort_by_key(|id| pipeline.step(*id).is_handler);
    let empty: HashMap<String, IndexMap<String, String>> = HashMap::new();
    let mut n = 0;
    for id in order {
        if !selected[id.0] {
            continue;
        }
        n += 1;
        let step = pipeline.step(id);
        let items: Vec<Option<Value>> = match &step.foreach {
            None => vec![None],
            Some(f) => match &f.items {
                ForeachItems::List(items) => items.iter().cloned().map(Some).collect(),
                ForeachItems::Param(p) => match opts.params.get(p) {
                    Some(Value::List(items)) => items.iter().cloned().map(Some).collect(),
                    Some(v) => vec![Some(v.clone())],
                    None => vec![],
                },
            },
        };
        let needs: Vec<&str> = step
            .needs
            .iter()
            .map(|n| pipeline.step(*n).name.as_str())
            .collect();
        let _ = write!(out, "\n{n}. {}", step.name);
        if step.is_handler {
            out.push_str("  (catch handler: runs only if a step it handles fails)");
        }
        out.push('\n');
        if !needs.is_empty() {
            let _ = writeln!(out, "   needs: {}", needs.join(", "));
        }
        if let Some(c) = &step.when {
            let _ = writeln!(out, "   when: {}", cond_text(c));
        }
        if let Some(f) = &step.foreach {
            let list: Vec<String> = items.iter().flatten().map(Value::to_text).collect();
            let _ = writeln!(
                out,
                "   foreach {} in [{}] (concurrently)",
                f.var,
                list.join(", ")
            );
        }
        if let Some(t) = step.timeout {
            let _ = writeln!(out, "   timeout: {}", format_duration(t));
        }
        if let Some(r) = &step.retry {
            let _ = writeln!(
                out,
                "   retry: {} more attempt(s), every {} backoff {}",
                r.max_attempts,
                format_duration(r.interval),
                crate::model::format_float(r.backoff)
            );
        }
        if let Some(c) = &step.catch {
            let _ = writeln!(out, "   catch: {c}");
        }
        if !step.outputs.is_empty() {
            let _ = writeln!(out, "   outputs: {}", step.outputs.join(", "));
        }
        for item in &items {
            let scope = PlanScope(RunScope {
                pipeline: &pipeline.name,
                run_id: "",
                step: &step.name,
                params: &opts.params,
                outputs: &empty,
                item: step
                    .foreach
                    .as_ref()
                    .zip(item.as_ref())
                    .map(|(f, v)| (f.var.as_str(), v)),
                failed: None,
            });
            let indent = if let Some(v) = item {
                let _ = writeln!(out, "   [{}]", v.to_text());
                "     "
            } else {
                "   "
            };
            let show = |r: Result<String, crate::model::EvalError>| match r {
                Ok(s) => s,
                Err(e) => format!("<error: {e}>"),
            };
            match &step.action {
                Action::Approval { message } => {
                    let _ = writeln!(
                        out,
                        "{indent}approval: \"{}\"",
                        show(render_text(message, &scope))
                    );
                    let how = if opts.approve_all || opts.approve.contains(&step.name) {
                        "approved by flag"
                    } else {
                        "asks on a terminal, else needs --approve"
                    };
                    let _ = writeln!(out, "{indent}({how})");
                }
                Action::Script(script) => {
                    match &script.image {
                        Some(i) => {
                            let _ =
                                writeln!(out, "{indent}image: {}", show(render_text(i, &scope)));
                        }
                        None => {
                            let _ = writeln!(out, "{indent}on the host");
                        }
                    }
                    if let Some(s) = &script.shell {
                        let _ = writeln!(out, "{indent}shell: {s}");
                    }
                    if let Some(w) = &step.workdir {
                        // On the host: the directory the step will run in.
                        let w = match render_text(w, &scope) {
                            Ok(w) if script.image.is_none() => {
                                crate::run::host::workdir(&opts.pipeline_dir, Some(&w))
                                    .display()
                                    .to_string()
                            }
                            r => show(r),
                        };
                        let _ = writeln!(out, "{indent}workdir: {w}");
                    }
                    let mut env: Vec<String> = step
                        .env
                        .iter()
                        .map(|(k, t)| format!("{k}={}", show(render_text(t, &scope))))
                        .collect();
                    env.extend(step.secrets.iter().map(|s| format!("{s}=*** (secret)")));
                    if !env.is_empty() {
                        let _ = writeln!(out, "{indent}env: {}", env.join(", "));
                    }
                    let rendered = render_script(&script.run, &scope, script.shell.as_deref());
                    let vars = rendered.as_ref().map(|r| r.env.clone()).unwrap_or_default();
                    let run = show(rendered.map(|r| r.script));
                    let _ = writeln!(out, "{indent}run:");
                    for line in run.lines() {
                        let _ = writeln!(out, "{indent}  {line}");
                    }
                    // The values the script's references carry (never part of its text).
                    for (k, v) in vars {
                        let _ = writeln!(out, "{indent}  with {k}={}", quote_shown(&v));
                    }
                }
            }
        }
    }
    out
}

/// A value as the plan shows it: as is when it reads plainly, else as a
/// double-quoted string with escapes (one line, its ends visible).
fn quote_shown(v: &str) -> String {
    if !v.is_empty()
        && v.chars()
            .all(|c| c.is_ascii_alphanumeric() || "@%+=:,./-_".contains(c))
    {
        v.to_string()
    } else {
        format!("\"{}\"", crate::model::text::escape(v))
    }
}

fn operand_text(o: &Operand) -> String {
    match o {
        Operand::Lit(Value::Str(s)) => format!("{s:?}"),
        Operand::Lit(v) => v.to_text(),
        Operand::Ref(r, _) => r.to_string(),
    }
}

/// The condition as the language writes it, fully parenthesised.
pub fn cond_text(c: &Cond) -> String {
    match c {
        Cond::Or(a, b) => format!("({} || {})", cond_text(a), cond_text(b)),
        Cond::And(a, b) => format!("({} && {})", cond_text(a), cond_text(b)),
        Cond::Not(a) => format!("!{}", cond_text(a)),
        Cond::Eq(a, b) => format!("{} == {}", operand_text(a), operand_text(b)),
        Cond::Ne(a, b) => format!("{} != {}", operand_text(a), operand_text(b)),
        Cond::Truthy(a) => operand_text(a),
    }
}
