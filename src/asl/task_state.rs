//! Task states: the Task running one attempt of a step (a script step's
//! Task on the activity, with its [`super::task::TaskInput`] parameters,
//! heartbeat and Retriers; an approval's SQS task with its message), written
//! directly from the step when printed.

use super::Options;
use super::emit::{Emitter, catch_rule, link, obj, stores_outputs};
use super::json::{J, Obj, Out, Str};
use super::names::Names;
use super::task::{TASK_INPUT_VERSION, encode_text_parts};
use super::{APPROVAL_KIND, WORKER_LOST_ATTEMPTS};
use crate::diagnostics::{Diagnostic, codes};
use crate::model::limits::{DEFAULT_HEARTBEAT_SECONDS, ceil_seconds, heartbeat_seconds};
use crate::model::{Action, Pipeline, Ref, Step, StepId, Text, errors, format_duration};

/// What a script step's texts refer to, resolved once (its Task input is
/// written from it at each printing).
pub(super) struct Uses {
    pub(super) params: bool,
    /// Each output used, once, in the order of first use.
    pub(super) outputs: Vec<(StepId, usize)>,
}

impl<'a> Emitter<'a> {
    /// The Task running one attempt of `step`, going to `catch` on failure
    /// and then to `next` (none: the end of its branch). A script step's
    /// Task, most of the definition, is written directly from the step when
    /// printed ([`script_task`]); what can be wrong is reported here.
    pub(super) fn task_state(
        &mut self,
        step: &'a Step,
        in_map: bool,
        failed: Option<StepId>,
        store: bool,
        catch: Option<Str<'a>>,
        next: Option<Str<'a>>,
    ) -> J<'a> {
        let failed: Option<&'a str> = failed.map(|f| self.p.step(f).name.as_str());
        if let Some(h) = step.heartbeat {
            let hb = ceil_seconds(h);
            if step.timeout.is_some_and(|t| hb >= ceil_seconds(t)) {
                self.diags.push(
                    Diagnostic::error(
                        codes::ASL_LIMIT,
                        step.span,
                        format!(
                            "the heartbeat of `{}` ({}) is not shorter than its timeout",
                            step.name,
                            format_duration(h)
                        ),
                    )
                    .label("Step Functions needs HeartbeatSeconds < TimeoutSeconds")
                    .help("shorten the heartbeat or lengthen the timeout"),
                );
            }
        }
        if let Some(r) = &step.retry
            && (r.backoff < 1.0 || r.backoff.is_nan())
        {
            self.diags.push(
                Diagnostic::error(
                    codes::ASL_LIMIT,
                    step.span,
                    format!("the retry backoff of `{}` is below 1.0", step.name),
                )
                .label("Step Functions needs BackoffRate >= 1.0")
                .help("use a backoff of 1.0 (constant interval) or more"),
            );
        }
        let Action::Approval { message } = &step.action else {
            let task = ScriptTask {
                p: self.p,
                o: self.o,
                n: self.n,
                step,
                uses: self.uses(step),
                in_map,
                failed,
                store,
                catch,
                next,
            };
            return J::lazy(move |out| script_task(out, &task));
        };
        let mut body = Obj::new();
        body.push("version", TASK_INPUT_VERSION);
        body.push("kind", APPROVAL_KIND);
        body.push("pipeline", self.p.name.as_str());
        body.push("execution.$", "$$.Execution.Id");
        body.push("run_id.$", "$$.Execution.Name");
        body.push("step", step.name.as_str());
        match message.as_literal() {
            Some(lit) => body.push("message", lit),
            None => match self.format_message(step, message, in_map, failed) {
                Ok(expr) => body.push("message.$", expr),
                Err(msg) => self.diags.push(
                    Diagnostic::error(
                        codes::ASL_LIMIT,
                        step.span,
                        format!("approval message of `{}`: {msg}", step.name),
                    )
                    .label("this message cannot be built in Step Functions"),
                ),
            },
        }
        body.push("token.$", "$$.Task.Token");
        let mut s = obj([
            ("Type", "Task".into()),
            (
                "Resource",
                "arn:aws:states:::sqs:sendMessage.waitForTaskToken".into(),
            ),
            (
                "Parameters",
                obj([
                    ("QueueUrl", self.o.approval_queue_url.as_str().into()),
                    ("MessageBody", body.into()),
                ])
                .into(),
            ),
            ("ResultPath", J::Null),
        ]);
        if let Some(t) = step.timeout {
            s.push("TimeoutSeconds", ceil_seconds(t));
        }
        if let Some(h) = step.heartbeat {
            s.push("HeartbeatSeconds", ceil_seconds(h));
        }
        if step.retry.is_some() {
            s.push("Retry", J::lazy(move |out| retriers(out, step, false)));
        }
        if let Some(c) = catch {
            s.push("Catch", catch_rule(c));
        }
        link(&mut s, next);
        s.into()
    }

    /// What a script step's texts use; a reference to an output that does
    /// not exist is reported here.
    fn uses(&mut self, step: &Step) -> Uses {
        let mut uses = Uses {
            params: false,
            outputs: Vec::new(),
        };
        for r in step_texts(step).flat_map(Text::refs) {
            match r {
                Ref::Param(_) => uses.params = true,
                Ref::Output { step: s, output } => match self.n.resolve(self.p, s, output) {
                    Ok(o) if !uses.outputs.contains(&o) => uses.outputs.push(o),
                    Ok(_) => {}
                    Err(msg) => {
                        self.diags
                            .push(Diagnostic::error(codes::ASL_LIMIT, step.span, msg));
                    }
                },
                _ => {}
            }
        }
        uses
    }

    /// The approval message that is not a literal: a `States.Format(...)` expression.
    fn format_message(
        &self,
        step: &Step,
        text: &Text,
        in_map: bool,
        failed: Option<&str>,
    ) -> Result<String, String> {
        let mut template = String::new();
        let mut args = Vec::new();
        let esc = |s: &str| {
            let mut o = String::new();
            for c in s.chars() {
                if matches!(c, '\'' | '{' | '}' | '\\') {
                    o.push('\\');
                }
                o.push(c);
            }
            o
        };
        for p in &text.parts {
            match p {
                crate::model::Piece::Lit(s) | crate::model::Piece::Value(s) => {
                    template.push_str(&esc(s));
                }
                crate::model::Piece::Ref(r) => {
                    let path = match r {
                        Ref::Param(n) => format!("$.params.{n}"),
                        Ref::Loop(_) if in_map => "$.item".into(),
                        Ref::Loop(_) => return Err("the loop variable is unknown here".into()),
                        Ref::Output { step: s, output } => self.n.output_path(self.p, s, output)?,
                        Ref::RunId => "$$.Execution.Name".into(),
                        Ref::FailedError if failed.is_some() => "$.failed.Error".into(),
                        Ref::PipelineName => {
                            template.push_str(&esc(&self.p.name));
                            continue;
                        }
                        Ref::StepName => {
                            template.push_str(&esc(&step.name));
                            continue;
                        }
                        Ref::FailedStep | Ref::FailedError => {
                            let f = failed.ok_or("`failed` is only known in a catch handler")?;
                            template.push_str(&esc(f));
                            continue;
                        }
                    };
                    template.push_str("{}");
                    args.push(path);
                }
            }
        }
        let mut expr = format!("States.Format('{template}'");
        for a in args {
            expr.push_str(", ");
            expr.push_str(&a);
        }
        expr.push(')');
        Ok(expr)
    }
}

/// The texts of a script step the worker renders: its script, image, env
/// values and workdir.
fn step_texts(step: &Step) -> impl Iterator<Item = &Text> {
    let script = match &step.action {
        Action::Script(s) => Some(s),
        Action::Approval { .. } => None,
    };
    script
        .map(|s| &s.run)
        .into_iter()
        .chain(script.and_then(|s| s.image.as_ref()))
        .chain(step.env.values())
        .chain(step.workdir.iter())
}

/// A script step's Task state, as [`Emitter::task_state`] saw it.
struct ScriptTask<'a> {
    p: &'a Pipeline,
    o: &'a Options,
    n: &'a Names<'a>,
    step: &'a Step,
    uses: Uses,
    in_map: bool,
    failed: Option<&'a str>,
    /// Its outputs go to `$.steps` (not in a Map, not a handler's copy).
    store: bool,
    catch: Option<Str<'a>>,
    next: Option<Str<'a>>,
}

/// Write a script step's Task state (keys in the order of every state:
/// Type, Resource, Parameters, results, limits, Retry, Catch, Next/End).
fn script_task(out: &mut dyn Out, t: &ScriptTask) {
    let step = t.step;
    out.begin_obj();
    out.field("Type", "Task");
    out.field("Resource", &t.o.activity_for(step.queue.as_deref()));
    out.key(&["Parameters"]);
    task_input(out, t.p, t.n, step, &t.uses, t.in_map, t.failed);
    if t.store && stores_outputs(step) {
        out.key(&["ResultSelector"]);
        out.begin_obj();
        for k in &t.n.out_keys[step.id.0] {
            out.key(&[k, ".$"]);
            out.string(&["$.outputs.", k]);
        }
        out.end_obj();
        out.key(&["ResultPath"]);
        out.string(&["$.steps.", &t.n.keys[step.id.0]]);
    } else {
        out.key(&["ResultPath"]);
        out.scalar(&J::Null);
    }
    if let Some(s) = step.timeout {
        out.key(&["TimeoutSeconds"]);
        out.int(ceil_seconds(s));
    }
    if let Some(hb) = heartbeat_seconds(step) {
        out.key(&["HeartbeatSeconds"]);
        out.int(hb);
    }
    out.key(&["Retry"]);
    retriers(out, step, true);
    if let Some(c) = &t.catch {
        out.key(&["Catch"]);
        catch_rule(c.clone()).emit(out);
    }
    if let Some(n) = &t.next {
        out.field("Next", n);
    } else {
        out.key(&["End"]);
        out.scalar(&J::Bool(true));
    }
    out.end_obj();
}

/// The input of a script step's Task ([`task::TaskInput`]), without the
/// fields at their default; `values` holds what the step's texts use.
fn task_input<'s>(
    out: &mut dyn Out,
    p: &Pipeline,
    n: &Names,
    step: &'s Step,
    uses: &Uses,
    in_map: bool,
    failed: Option<&str>,
) {
    let mut parts: Vec<&'s str> = Vec::new();
    let mut text = |out: &mut dyn Out, key: &str, t: &'s Text| {
        parts.clear();
        encode_text_parts(t, &mut parts);
        out.key(&[key]);
        out.string(&parts);
    };
    out.begin_obj();
    out.key(&["version"]);
    out.int(TASK_INPUT_VERSION.into());
    out.field("pipeline", &p.name);
    out.field("run_id.$", "$$.Execution.Name");
    out.field("step", &step.name);
    if let Action::Script(script) = &step.action {
        if let Some(image) = &script.image {
            text(out, "image", image);
        }
        if let Some(shell) = &script.shell {
            out.field("shell", shell);
        }
        text(out, "script", &script.run);
    }
    if !step.env.is_empty() {
        out.key(&["env"]);
        out.begin_obj();
        for (k, v) in &step.env {
            text(out, k, v);
        }
        out.end_obj();
    }
    if let Some(w) = &step.workdir {
        text(out, "workdir", w);
    }
    if !step.outputs.is_empty() {
        out.key(&["outputs"]);
        out.begin_arr();
        for (name, key) in step.outputs.iter().zip(&n.out_keys[step.id.0]) {
            out.begin_obj();
            out.field("name", name);
            if key != name {
                out.field("key", key);
            }
            out.end_obj();
        }
        out.end_arr();
    }
    if !step.secrets.is_empty() {
        out.key(&["secrets"]);
        out.begin_arr();
        for s in &step.secrets {
            out.str(s);
        }
        out.end_arr();
    }
    if let Some(aws) = &step.aws {
        out.key(&["aws"]);
        out.begin_obj();
        if let Some(role) = &aws.role {
            out.field("role", role);
        }
        out.end_obj();
    }
    if let Some(t) = step.timeout {
        out.key(&["timeout_seconds"]);
        out.int(ceil_seconds(t));
    }
    if let Some(hb) = heartbeat_seconds(step).filter(|hb| *hb != DEFAULT_HEARTBEAT_SECONDS) {
        out.key(&["heartbeat_seconds"]);
        out.int(hb);
    }
    if let Some(f) = &step.foreach {
        out.field("loop_var", &f.var);
    }
    if uses.params || !uses.outputs.is_empty() || in_map || failed.is_some() {
        out.key(&["values"]);
        out.begin_obj();
        if uses.params {
            out.field("params.$", "$.params");
        }
        if !uses.outputs.is_empty() {
            // By step, in the order of use. A step whose outputs' keys are
            // their names is passed whole (`{"build.$": "$.steps.build"}`,
            // shorter); else each output used is picked by path
            // (`{"build": {"image-id.$": "$.steps.build.image_id"}}`).
            out.key(&["steps"]);
            out.begin_obj();
            let used = &uses.outputs;
            for (i, (id, _)) in used.iter().enumerate() {
                if used[..i].iter().any(|u| u.0 == *id) {
                    continue;
                }
                let (name, key) = (&p.step(*id).name, &n.keys[id.0]);
                let (outputs, out_keys) = (&p.step(*id).outputs, &n.out_keys[id.0]);
                if outputs == out_keys {
                    out.key(&[name, ".$"]);
                    out.string(&["$.steps.", key]);
                    continue;
                }
                out.key(&[name]);
                out.begin_obj();
                for (_, o) in used[i..].iter().filter(|u| u.0 == *id) {
                    out.key(&[&outputs[*o], ".$"]);
                    out.string(&["$.steps.", key, ".", &out_keys[*o]]);
                }
                out.end_obj();
            }
            out.end_obj();
        }
        if in_map {
            out.field("item.$", "$.item");
        }
        if let Some(f) = failed {
            out.key(&["failed"]);
            out.begin_obj();
            out.field("step", f);
            out.field("error.$", "$.failed.Error");
            out.end_obj();
        }
        out.end_obj();
    }
    out.end_obj();
}

/// The Retry of a Task: for a script, first the retrier of a task whose
/// worker died (heartbeat timed out) or was stopped, which is not the
/// step's failure: run it again on another worker, before and apart from
/// the step's own `retry` (IntervalSeconds at its default, 1).
fn retriers(out: &mut dyn Out, step: &Step, script: bool) {
    out.begin_arr();
    if script {
        out.begin_obj();
        out.key(&["ErrorEquals"]);
        out.begin_arr();
        out.str(errors::HEARTBEAT_TIMEOUT);
        out.str(errors::WORKER_SHUTDOWN);
        out.end_arr();
        out.key(&["MaxAttempts"]);
        out.int(WORKER_LOST_ATTEMPTS.into());
        out.key(&["BackoffRate"]);
        out.scalar(&J::Float(1.5));
        out.end_obj();
    }
    if let Some(r) = &step.retry {
        out.begin_obj();
        out.key(&["ErrorEquals"]);
        out.begin_arr();
        out.str("States.ALL");
        out.end_arr();
        out.key(&["MaxAttempts"]);
        out.int(r.max_attempts.into());
        out.key(&["IntervalSeconds"]);
        out.int(ceil_seconds(r.interval));
        out.key(&["BackoffRate"]);
        out.scalar(&J::Float(r.backoff));
        out.end_obj();
    }
    out.end_arr();
}
