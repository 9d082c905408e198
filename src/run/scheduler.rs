//! The scheduler: walks the DAG of a checked pipeline and decides, for every
//! step (every `foreach` instance: a "unit"), whether it runs, is skipped or
//! is not run, with the meaning of LANGUAGE.md section 7 — the same meaning
//! the ASL back end gives it:
//!
//! - a step starts when each of its needs succeeded or was skipped;
//! - `when` false: skipped, and its outputs are empty strings;
//! - a failure (after `retry`, whose delays are the ASL Retrier's) starts the
//!   step's `catch` handler, marks every step that needs it, directly or not,
//!   *cancelled* ("not run because `X` failed"), and stops starting new steps
//!   unless `--keep-going`; the run ends failed once running units finish;
//! - a `foreach` step succeeds when all its instances do; after one fails, its
//!   instances not yet started are not started;
//! - catch handlers (`is_handler`) run only as handlers, once per run (for
//!   the first failure that names them).
//!
//! At most `jobs` units run at once; among ready units the one with the
//! longest remaining path in the DAG goes first. Ctrl-C/SIGTERM (the
//! `cancel` channel) stops starting units and tells running ones to kill
//! what they run; they clean up before the run ends.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use indexmap::IndexMap;
use tokio::sync::watch;
use tokio::task::JoinSet;

use crate::model::errors;
use crate::model::{Action, ForeachItems, Pipeline, StepId, Value, render_text};
use crate::run::approval::approve;
use crate::run::attempt::{Shared, fmt_secs, run_with_retries};
use crate::run::record::Record;
use crate::run::report::{RunReport, RunStatus, Status, UnitReport};
use crate::run::runtime::{self, Outcome, StepSpec};
use crate::run::spec::{self, Checked, Place, StepError, StepView};
use crate::run::ui::Ui;
use crate::run::{RunOptions, RunScope, Runtimes, Secrets};

struct Unit {
    step: StepId,
    name: String,
    item: Option<Value>,
    status: Status,
    reason: Option<String>,
    attempts: u32,
    started: Option<SystemTime>,
    duration: Duration,
    outputs: IndexMap<String, String>,
    error: Option<(String, String)>,
    /// For a handler: `(failed.step, failed.error)`.
    failed: Option<(String, String)>,
}

struct UnitResult {
    attempts: u32,
    outcome: Outcome,
    started: SystemTime,
    duration: Duration,
}

/// Run the pipeline. Never panics on user input; every problem ends up as a
/// failed step with a message, in the summary and the record.
pub async fn execute(
    pipeline: Arc<Pipeline>,
    opts: Arc<RunOptions>,
    runtimes: Runtimes,
    run_id: String,
    ui: Arc<Ui>,
    cancel: watch::Receiver<bool>,
) -> RunReport {
    let record = match Record::create_owned(&opts.pipeline_dir, &run_id, &opts.tmp_base) {
        Ok(r) => Some(r),
        Err(e) => {
            ui.error(&format!(
                "cannot write the run record: {e} (running without one)"
            ));
            None
        }
    };
    let aws = step_credentials(&pipeline, &run_id).await;
    // The credentials are masked like the pipeline's secrets (under names
    // no secret can have).
    let secrets = Secrets::with_extra(
        &pipeline,
        aws.iter()
            .filter_map(|(step, a)| a.as_ref().ok().map(|a| (step, a)))
            .flat_map(|(step, a)| {
                a.secrets
                    .iter()
                    .map(move |(name, value)| (format!("aws {step} {name}"), value.clone()))
            }),
    );
    for name in secrets.short_lines() {
        ui.error(&format!(
            "warning: secret `{name}` has lines shorter than {} characters: they are masked \
             where the whole value is printed, not where such a line is printed on its own",
            crate::run::MIN_MASKED_LINE
        ));
    }
    let shared = Arc::new(Shared {
        run_id: run_id.clone(),
        pipeline_name: pipeline.name.clone(),
        secrets,
        opts: opts.clone(),
        ui,
        record,
        dirs: runtime::AttemptPool::default(),
        aws,
    });
    let mut s = Scheduler::new(pipeline, shared, runtimes, cancel);
    s.run().await
}

/// The credentials of every `aws` step, as a worker gives them
/// ([`crate::sfn::fleet::creds`]): the runner's own (aws-config's standard
/// chain: env, profile, SSO, instance or task role) or a role's, assumed
/// through STS for the step's timeout. Nothing is loaded for a pipeline
/// without `aws` steps.
async fn step_credentials(
    pipeline: &Pipeline,
    run_id: &str,
) -> HashMap<String, Result<crate::run::aws::StepAws, String>> {
    let mut out = HashMap::new();
    let steps: Vec<_> = pipeline.steps.iter().filter(|s| s.aws.is_some()).collect();
    if steps.is_empty() {
        return out;
    }
    let source = crate::run::aws::Source::new(None, None).await;
    for step in steps {
        let Some(aws) = &step.aws else { continue };
        let got = source
            .for_step(aws, &pipeline.name, &step.name, run_id, step.timeout)
            .await;
        out.insert(step.name.clone(), got);
    }
    out
}

struct Scheduler {
    p: Arc<Pipeline>,
    sh: Arc<Shared>,
    runtimes: Runtimes,
    cancel: watch::Receiver<bool>,
    units: Vec<Unit>,
    step_units: Vec<Vec<usize>>,
    selected: Vec<bool>,
    remaining: Vec<usize>,
    step_done: Vec<bool>,
    priority: Vec<usize>,
    heap: BinaryHeap<(usize, Reverse<usize>)>,
    outputs: HashMap<String, IndexMap<String, String>>,
    running: usize,
    /// Set at the first failure without `--keep-going`: the step to blame.
    stop_after: Option<String>,
    interrupted: bool,
    any_failed: bool,
    started_at: SystemTime,
    /// When the progress line was last drawn, and whether it is out of date:
    /// redrawn at most every [`PROGRESS_EVERY`], not once per event (a
    /// thousand short steps would otherwise redraw the terminal a thousand times).
    progress_drawn: Option<Instant>,
    progress_stale: bool,
    /// The unit each running task runs: a task that panics is known only
    /// by its id, and its unit must still fail (not be left to `finalize`,
    /// which would call it cancelled and let the run succeed).
    task_units: HashMap<tokio::task::Id, usize>,
}

const PROGRESS_EVERY: Duration = Duration::from_millis(100);

impl Scheduler {
    fn new(
        p: Arc<Pipeline>,
        sh: Arc<Shared>,
        runtimes: Runtimes,
        cancel: watch::Receiver<bool>,
    ) -> Scheduler {
        let n = p.steps.len();
        let mut selected = vec![sh.opts.targets.is_empty(); n];
        for t in &sh.opts.targets {
            if let Some(step) = p.step_by_name(t) {
                selected[step.id.0] = true;
                for a in p.ancestors(step.id) {
                    selected[a.0] = true;
                }
            }
        }
        // Handlers of selected steps are part of the selection.
        for i in 0..n {
            if selected[i]
                && let Some(h) = p.steps[i].catch.as_ref().and_then(|h| p.step_by_name(h))
            {
                selected[h.id.0] = true;
            }
        }
        let mut units = Vec::new();
        let mut step_units = vec![Vec::new(); n];
        for step in &p.steps {
            if !selected[step.id.0] {
                continue;
            }
            let items: Vec<Option<Value>> = match &step.foreach {
                None => vec![None],
                Some(f) => match &f.items {
                    ForeachItems::List(items) => items.iter().cloned().map(Some).collect(),
                    ForeachItems::Param(name) => match sh.opts.params.get(name) {
                        Some(Value::List(items)) => items.iter().cloned().map(Some).collect(),
                        Some(other) => vec![Some(other.clone())],
                        None => Vec::new(),
                    },
                },
            };
            for item in items {
                let name = match &item {
                    None => step.name.clone(),
                    Some(v) => unit_name(&sh.secrets, &step.name, v, &units),
                };
                step_units[step.id.0].push(units.len());
                units.push(Unit {
                    step: step.id,
                    name,
                    item,
                    status: Status::Pending,
                    reason: None,
                    attempts: 0,
                    started: None,
                    duration: Duration::ZERO,
                    outputs: IndexMap::new(),
                    error: None,
                    failed: None,
                });
            }
        }
        let priority = longest_paths(&p);
        let remaining = p.steps.iter().map(|s| s.needs.len()).collect();
        Scheduler {
            p,
            sh,
            runtimes,
            cancel,
            units,
            step_units,
            selected,
            remaining,
            step_done: vec![false; n],
            priority,
            heap: BinaryHeap::new(),
            outputs: HashMap::new(),
            running: 0,
            stop_after: None,
            interrupted: false,
            any_failed: false,
            started_at: SystemTime::now(),
            progress_drawn: None,
            progress_stale: false,
            task_units: HashMap::new(),
        }
    }

    fn stopping(&self) -> bool {
        self.interrupted || self.stop_after.is_some()
    }

    async fn run(&mut self) -> RunReport {
        if let Some(rec) = &self.sh.record {
            rec.write(&self.report(RunStatus::Running));
        }
        let roots: Vec<usize> = (0..self.p.steps.len())
            .filter(|&i| self.selected[i] && !self.p.steps[i].is_handler && self.remaining[i] == 0)
            .collect();
        for i in roots {
            self.make_ready(i);
        }
        let mut tasks: JoinSet<(usize, UnitResult)> = JoinSet::new();
        let mut tick = tokio::time::interval(PROGRESS_EVERY);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            // A cancelled step may be reported before the cancel itself is
            // seen below: look at the flag before starting anything.
            if !self.interrupted && *self.cancel.borrow() {
                self.interrupt();
            }
            self.start_ready(&mut tasks);
            self.progress_stale = true;
            self.show_progress(false);
            if self.running == 0 {
                break;
            }
            let mut cancel = self.cancel.clone();
            tokio::select! {
                Some(joined) = tasks.join_next_with_id() => {
                    self.running -= 1;
                    match joined {
                        Ok((id, (u, result))) => {
                            self.task_units.remove(&id);
                            self.finish_unit(u, result);
                        }
                        Err(e) => self.task_failed(e),
                    }
                }
                _ = cancel.wait_for(|c| *c), if !self.interrupted => self.interrupt(),
                _ = tick.tick(), if self.progress_stale && self.sh.opts.interactive => {
                    self.show_progress(true);
                }
            }
        }
        self.sh.ui.clear_progress();
        self.sh.dirs.clear();
        runtime::finish_cleanup().await;
        self.finalize();
        let status = if self.interrupted {
            RunStatus::Interrupted
        } else if self.any_failed {
            RunStatus::Failed
        } else {
            RunStatus::Succeeded
        };
        let report = self.report(status);
        if let Some(rec) = &self.sh.record {
            rec.flush_log();
            rec.write(&report);
        }
        report
    }

    /// A unit's task ended without a result (it panicked): the unit failed.
    fn task_failed(&mut self, e: tokio::task::JoinError) {
        let id = e.id();
        let why = if e.is_panic() {
            let payload = e.into_panic();
            let text = payload
                .downcast_ref::<&str>()
                .map(|s| (*s).to_string())
                .or_else(|| payload.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "no message".into());
            format!("internal error: topsail's task for this step panicked ({text})")
        } else {
            format!("internal error: topsail's task for this step ended abnormally ({e})")
        };
        let Some(u) = self.task_units.remove(&id) else {
            // Every task is registered when spawned; fail the run regardless.
            self.any_failed = true;
            self.sh.ui.error(&why);
            return;
        };
        let started = self.units[u].started.unwrap_or_else(SystemTime::now);
        self.finish_unit(
            u,
            UnitResult {
                attempts: self.units[u].attempts.max(1),
                outcome: Outcome::failed(errors::RUNTIME, why),
                started,
                duration: started.elapsed().unwrap_or_default(),
            },
        );
    }

    fn interrupt(&mut self) {
        self.interrupted = true;
        let what = match self.sh.ui.stop_reason() {
            Some(why) => format!("cancelled ({why})"),
            None => "interrupted".into(),
        };
        self.sh
            .ui
            .error(&format!("{what}: stopping running steps and cleaning up"));
    }

    fn make_ready(&mut self, step: usize) {
        if self.step_done[step] {
            return;
        }
        if self.step_units[step].is_empty() {
            // An empty foreach: nothing to do, and that is a success.
            self.step_finished(step);
            return;
        }
        for &u in &self.step_units[step] {
            self.heap.push((self.priority[step], Reverse(u)));
        }
    }

    fn start_ready(&mut self, tasks: &mut JoinSet<(usize, UnitResult)>) {
        while self.running < self.sh.opts.jobs.max(1) {
            let Some((_, Reverse(u))) = self.heap.pop() else {
                break;
            };
            if self.units[u].status != Status::Pending {
                continue;
            }
            let step = self.units[u].step;
            let is_handler = self.p.step(step).is_handler;
            if self.interrupted || (self.stop_after.is_some() && !is_handler) {
                self.cancel_unit(u, self.stop_reason());
                continue;
            }
            if let Some(failed) = self.sibling_failed(u) {
                self.cancel_unit(u, format!("not run because `{failed}` failed"));
                continue;
            }
            self.start_unit(u, tasks);
        }
    }

    fn sibling_failed(&self, u: usize) -> Option<String> {
        let step = self.units[u].step;
        self.step_units[step.0]
            .iter()
            .find(|&&o| o != u && self.units[o].status == Status::Failed)
            .map(|&o| self.units[o].name.clone())
    }

    fn stop_reason(&self) -> String {
        match &self.stop_after {
            _ if self.interrupted => match self.sh.ui.stop_reason() {
                Some(why) => format!("not run: the run was cancelled ({why})"),
                None => "not run: the run was interrupted".into(),
            },
            Some(s) => format!("not run: the run stopped after `{s}` failed"),
            None => "not run".into(),
        }
    }

    fn scope<'a>(&'a self, u: &'a Unit) -> RunScope<'a> {
        let step = self.p.step(u.step);
        RunScope {
            pipeline: &self.p.name,
            run_id: &self.sh.run_id,
            step: &step.name,
            params: &self.sh.opts.params,
            outputs: &self.outputs,
            item: step
                .foreach
                .as_ref()
                .zip(u.item.as_ref())
                .map(|(f, v)| (f.var.as_str(), v)),
            failed: u.failed.as_ref(),
        }
    }

    fn start_unit(&mut self, u: usize, tasks: &mut JoinSet<(usize, UnitResult)>) {
        let unit = &self.units[u];
        let step = self.p.step(unit.step);
        if let Some(cond) = &step.when {
            match cond.eval(&self.scope(unit)) {
                Ok(true) => {}
                Ok(false) => {
                    let name = unit.name.clone();
                    self.sh.ui.system(&name, "skipped (`when` is false)");
                    let unit = &mut self.units[u];
                    unit.status = Status::Skipped;
                    unit.reason = Some("`when` is false".into());
                    self.unit_finished(u);
                    return;
                }
                Err(e) => {
                    self.fail_now(u, errors::RUNTIME, format!("cannot decide `when`: {e}"));
                    return;
                }
            }
        }
        let name = unit.name.clone();
        let sh = self.sh.clone();
        let cancel = self.cancel.clone();
        let task = match &step.action {
            Action::Approval { message } => {
                let message = match render_text(message, &self.scope(unit)) {
                    Ok(m) => sh.secrets.mask(&m),
                    Err(e) => {
                        self.fail_now(u, errors::RUNTIME, e.to_string());
                        return;
                    }
                };
                let step_name = step.name.clone();
                tasks.spawn(async move {
                    let started = SystemTime::now();
                    let t0 = Instant::now();
                    let outcome = approve(&sh, &step_name, &name, &message, cancel).await;
                    (
                        u,
                        UnitResult {
                            attempts: 1,
                            outcome,
                            started,
                            duration: t0.elapsed(),
                        },
                    )
                })
            }
            Action::Script(_) => {
                let spec = match self.build_spec(u) {
                    Ok(spec) => spec,
                    Err(e) => {
                        self.fail_now(u, e.error, e.cause);
                        return;
                    }
                };
                let runtime = self.runtimes.for_spec(&spec);
                let retry = step.retry.clone();
                tasks.spawn(async move {
                    let started = SystemTime::now();
                    let t0 = Instant::now();
                    let (attempts, outcome) =
                        run_with_retries(&sh, runtime.as_ref(), &spec, retry.as_ref(), cancel)
                            .await;
                    (
                        u,
                        UnitResult {
                            attempts,
                            outcome,
                            started,
                            duration: t0.elapsed(),
                        },
                    )
                })
            }
        };
        self.task_units.insert(task.id(), u);
        self.units[u].status = Status::Running;
        self.units[u].started = Some(SystemTime::now());
        self.running += 1;
    }

    fn build_spec(&self, u: usize) -> Result<StepSpec, StepError> {
        let unit = &self.units[u];
        let step = self.p.step(unit.step);
        let Action::Script(script) = &step.action else {
            unreachable!("build_spec is called for script steps only");
        };
        let view = StepView {
            run_id: &self.sh.run_id,
            pipeline: &self.p.name,
            step: &step.name,
            name: &unit.name,
            image: script.image.as_ref(),
            script: &script.run,
            shell: script.shell.as_deref(),
            env: step.env.iter().map(|(k, t)| (k.as_str(), t)).collect(),
            workdir: step.workdir.as_ref(),
            secrets: &step.secrets,
            timeout: step.timeout,
            outputs: step.outputs.clone(),
        };
        let place = Place {
            secrets: &self.sh.secrets,
            secrets_from: "`topsail run`",
            env_remove: self
                .p
                .secrets
                .keys()
                .filter(|s| !step.secrets.contains(s))
                .cloned()
                .collect(),
            pipeline_dir: self.sh.opts.pipeline_dir.clone(),
        };
        let mut spec = spec::build(&view, &self.scope(unit), place, &Checked)?;
        // `aws`: the step's credentials, as secrets (masked, never recorded).
        if step.aws.is_some() {
            match self.sh.aws.get(&step.name) {
                Some(Ok(a)) => {
                    for (name, value) in &a.secrets {
                        spec.env.retain(|(k, _)| k != name);
                        spec.env.push((name.clone(), value.clone()));
                        spec.secret_names.push(name.clone());
                    }
                    crate::run::aws::add_env(&mut spec.env, a.plain.clone());
                    // A host step inherits the runner's environment: no
                    // session token of other keys may stay beside these.
                    if !a.secrets.iter().any(|(k, _)| k == "AWS_SESSION_TOKEN") {
                        spec.env_remove.push("AWS_SESSION_TOKEN".to_string());
                    }
                }
                Some(Err(cause)) => {
                    return Err(StepError::new(
                        crate::run::aws::AWS_CREDENTIALS,
                        cause.clone(),
                    ));
                }
                None => {}
            }
        }
        Ok(spec)
    }

    /// A unit that fails before anything ran (bad value, missing secret).
    fn fail_now(&mut self, u: usize, error: &str, cause: String) {
        let now = SystemTime::now();
        self.finish_unit(
            u,
            UnitResult {
                attempts: 0,
                outcome: Outcome::failed(error, cause),
                started: now,
                duration: Duration::ZERO,
            },
        );
    }

    fn finish_unit(&mut self, u: usize, r: UnitResult) {
        let unit = &mut self.units[u];
        unit.attempts = r.attempts;
        unit.started = Some(r.started);
        unit.duration = r.duration;
        let name = unit.name.clone();
        match r.outcome {
            Outcome::Succeeded(outputs) => {
                unit.status = Status::Succeeded;
                unit.outputs = outputs;
                self.sh
                    .ui
                    .system(&name, &format!("succeeded in {}", fmt_secs(r.duration)));
            }
            Outcome::Cancelled => {
                unit.status = Status::Cancelled;
                unit.reason = Some(match self.sh.ui.stop_reason() {
                    Some(why) => format!("stopped: the run was cancelled ({why})"),
                    None => "stopped: the run was interrupted".into(),
                });
                self.sh.ui.system(&name, "cancelled");
            }
            Outcome::Failed { error, cause } => {
                let cause = self.sh.secrets.mask(&cause);
                self.sh
                    .ui
                    .failure(&name, &format!("failed: {cause} [{error}]"));
                unit.status = Status::Failed;
                unit.error = Some((error.clone(), cause));
                self.any_failed = true;
                let step = self.p.step(unit.step);
                if let Some(h) = step.catch.as_ref().and_then(|h| self.p.step_by_name(h)) {
                    self.trigger_handler(h.id, &name, &error);
                }
                if !self.sh.opts.keep_going && self.stop_after.is_none() {
                    self.stop_after = Some(name);
                }
            }
        }
        self.unit_finished(u);
    }

    fn trigger_handler(&mut self, handler: StepId, failed_step: &str, error: &str) {
        if self.interrupted {
            return;
        }
        for &hu in &self.step_units[handler.0] {
            if self.units[hu].status == Status::Pending && self.units[hu].failed.is_none() {
                self.units[hu].failed = Some((failed_step.to_string(), error.to_string()));
                self.heap.push((usize::MAX, Reverse(hu)));
            }
        }
    }

    fn cancel_unit(&mut self, u: usize, reason: String) {
        let unit = &mut self.units[u];
        if unit.status == Status::Pending {
            unit.status = Status::Cancelled;
            unit.reason = Some(reason);
        }
        self.unit_finished(u);
    }

    fn unit_finished(&mut self, u: usize) {
        let step = self.units[u].step.0;
        if !self.step_done[step]
            && self.step_units[step]
                .iter()
                .all(|&o| self.units[o].status.is_done())
        {
            self.step_finished(step);
        }
    }

    fn step_status(&self, step: usize) -> Status {
        let units = &self.step_units[step];
        let has = |st: Status| units.iter().any(|&u| self.units[u].status == st);
        if has(Status::Failed) {
            Status::Failed
        } else if has(Status::Cancelled) {
            Status::Cancelled
        } else if !units.is_empty()
            && units
                .iter()
                .all(|&u| self.units[u].status == Status::Skipped)
        {
            Status::Skipped
        } else {
            Status::Succeeded
        }
    }

    fn step_finished(&mut self, step: usize) {
        self.step_done[step] = true;
        let status = self.step_status(step);
        let s = &self.p.steps[step];
        let name = s.name.clone();
        match status {
            Status::Succeeded | Status::Skipped => {
                let mut outs: IndexMap<String, String> = s
                    .outputs
                    .iter()
                    .map(|o| (o.clone(), String::new()))
                    .collect();
                if s.foreach.is_none() && status == Status::Succeeded {
                    for &u in &self.step_units[step] {
                        outs.extend(self.units[u].outputs.clone());
                    }
                }
                self.outputs.insert(name, outs);
                let deps: Vec<StepId> = self.p.dependants(StepId(step)).collect();
                for d in deps {
                    self.remaining[d.0] -= 1;
                    if self.remaining[d.0] == 0 && self.selected[d.0] && !self.p.step(d).is_handler
                    {
                        self.make_ready(d.0);
                    }
                }
            }
            _ => {
                let verb = if status == Status::Failed {
                    "failed"
                } else {
                    "was not run"
                };
                let reason = format!("not run because `{name}` {verb}");
                let deps: Vec<StepId> = self.p.dependants(StepId(step)).collect();
                for d in deps {
                    if !self.selected[d.0] || self.step_done[d.0] {
                        continue;
                    }
                    let pending: Vec<usize> = self.step_units[d.0].clone();
                    for u in pending {
                        if self.units[u].status == Status::Pending {
                            self.units[u].status = Status::Cancelled;
                            self.units[u].reason = Some(reason.clone());
                        }
                    }
                    if !self.step_done[d.0] {
                        if self.step_units[d.0].is_empty() {
                            // An empty foreach downstream of a failure is not run either.
                            self.step_done[d.0] = true;
                        } else {
                            self.unit_finished(self.step_units[d.0][0]);
                        }
                    }
                }
            }
        }
    }

    /// Whatever never started: cancelled with the reason, or, for handlers
    /// nobody needed, skipped.
    fn finalize(&mut self) {
        let reason = if self.stopping() {
            self.stop_reason()
        } else {
            "not run: a step it needs did not succeed".into()
        };
        for u in 0..self.units.len() {
            if self.units[u].status.is_done() {
                continue;
            }
            let is_handler = self.p.step(self.units[u].step).is_handler;
            let unit = &mut self.units[u];
            if is_handler && unit.failed.is_none() {
                unit.status = Status::Skipped;
                unit.reason = Some("catch handler: nothing it handles failed".into());
            } else {
                unit.status = Status::Cancelled;
                unit.reason = Some(reason.clone());
            }
        }
    }

    fn show_progress(&mut self, force: bool) {
        if !self.sh.opts.interactive
            || !force
                && self
                    .progress_drawn
                    .is_some_and(|t| t.elapsed() < PROGRESS_EVERY)
        {
            return;
        }
        self.progress_drawn = Some(Instant::now());
        self.progress_stale = false;
        let running: Vec<&str> = self
            .units
            .iter()
            .filter(|u| u.status == Status::Running)
            .map(|u| u.name.as_str())
            .collect();
        let done = self.units.iter().filter(|u| u.status.is_done()).count();
        self.sh.ui.progress(&running, done, self.units.len());
    }

    fn report(&self, status: RunStatus) -> RunReport {
        let ms = |t: SystemTime| {
            t.duration_since(SystemTime::UNIX_EPOCH)
                .map_or(0, |d| d.as_millis() as u64)
        };
        RunReport {
            run_id: self.sh.run_id.clone(),
            pipeline: self.sh.pipeline_name.clone(),
            file: self.sh.opts.pipeline_file.clone(),
            status,
            started_ms: ms(self.started_at),
            duration_ms: self
                .started_at
                .elapsed()
                .map_or(0, |d| d.as_millis() as u64),
            params: self
                .sh
                .opts
                .params
                .iter()
                .map(|(k, v)| (k.clone(), self.sh.secrets.mask_value(v)))
                .collect(),
            owner: self.sh.record.as_ref().and_then(|r| r.owner.clone()),
            steps: self
                .units
                .iter()
                .map(|u| UnitReport {
                    name: u.name.clone(),
                    step: self.p.step(u.step).name.clone(),
                    item: u
                        .item
                        .as_ref()
                        .map(|v| self.sh.secrets.mask_value(v).to_json()),
                    status: u.status,
                    reason: u.reason.clone(),
                    attempts: u.attempts,
                    started_ms: u.started.map(ms),
                    duration_ms: u.duration.as_millis() as u64,
                    outputs: u
                        .outputs
                        .iter()
                        .map(|(k, v)| (k.clone(), self.sh.secrets.mask(v)))
                        .collect(),
                    error: u.error.as_ref().map(|e| e.0.clone()),
                    cause: u.error.as_ref().map(|e| e.1.clone()),
                })
                .collect(),
        }
    }
}

/// `step[item]`, with a secret's value in the item masked: the name is
/// printed, logged, stored and part of the attempt directory's name. Items
/// that mask alike are told apart by a number (`step[***]`, `step[***]#2`).
fn unit_name(secrets: &Secrets, step: &str, item: &Value, units: &[Unit]) -> String {
    let text = item.to_text();
    let masked = secrets.mask(&text);
    let name = format!("{step}[{masked}]");
    if masked == text {
        return name;
    }
    let taken = |n: &str| units.iter().any(|u| u.name == n);
    let mut candidate = name.clone();
    let mut k = 1;
    while taken(&candidate) {
        k += 1;
        candidate = format!("{name}#{k}");
    }
    candidate
}

/// Steps on the longest chain to the end first: a step's priority is the
/// number of steps on the longest path starting at it.
fn longest_paths(p: &Pipeline) -> Vec<usize> {
    let mut lp = vec![1; p.steps.len()];
    for id in p.topo_order().into_iter().rev() {
        let best = p.dependants(id).map(|d| lp[d.0]).max().unwrap_or(0);
        lp[id.0] = 1 + best;
    }
    lp
}

/// The scheduler on its own: a fake [`Runtime`] that records what it was
/// asked to run and when, on tokio's paused clock (every sleep is virtual,
/// so delays are exact and the tests take no wall time).
#[cfg(test)]
mod tests {
    use std::sync::Mutex;
    use std::sync::atomic::{AtomicUsize, Ordering};

    use tokio::time::Instant as VInstant;

    use super::*;
    use crate::run::runtime::{AttemptDir, BoxFuture, Exit, Runtime, StepIo};

    /// What a fake attempt does: run for a while, write `$TOPSAIL_OUTPUT`, exit.
    struct Act {
        takes: Duration,
        output: String,
        exit: Exit,
    }

    fn ok(secs: u64) -> Act {
        Act {
            takes: Duration::from_secs(secs),
            output: String::new(),
            exit: Exit::Code(0),
        }
    }

    fn fail() -> Act {
        Act {
            exit: Exit::Code(1),
            ..ok(0)
        }
    }

    #[derive(Clone, Debug)]
    struct Event {
        name: String,
        attempt: u32,
        start: VInstant,
        end: VInstant,
        env: Vec<(String, String)>,
        exit: Exit,
    }

    type Behave = dyn Fn(&str, u32) -> Act + Send + Sync;

    struct Fake {
        behave: Box<Behave>,
        events: Mutex<Vec<Event>>,
        attempts: Mutex<HashMap<String, u32>>,
        running: AtomicUsize,
        max_running: AtomicUsize,
    }

    impl Fake {
        fn new(behave: impl Fn(&str, u32) -> Act + Send + Sync + 'static) -> Arc<Fake> {
            Arc::new(Fake {
                behave: Box::new(behave),
                events: Mutex::new(Vec::new()),
                attempts: Mutex::new(HashMap::new()),
                running: AtomicUsize::new(0),
                max_running: AtomicUsize::new(0),
            })
        }

        fn events(&self) -> Vec<Event> {
            self.events.lock().unwrap().clone()
        }

        fn started(&self) -> Vec<String> {
            let mut e = self.events();
            e.sort_by_key(|e| e.start);
            e.into_iter().map(|e| e.name).collect()
        }

        fn event(&self, name: &str) -> Event {
            self.events()
                .into_iter()
                .find(|e| e.name == name)
                .unwrap_or_else(|| panic!("{name} never ran"))
        }

        fn ran(&self, name: &str) -> bool {
            self.events().iter().any(|e| e.name == name)
        }
    }

    impl Runtime for Fake {
        fn run_step<'a>(
            &'a self,
            spec: &'a StepSpec,
            dir: &'a AttemptDir,
            mut io: StepIo,
        ) -> BoxFuture<'a, Exit> {
            Box::pin(async move {
                let attempt = {
                    let mut a = self.attempts.lock().unwrap();
                    let n = a.entry(spec.name.clone()).or_insert(0);
                    *n += 1;
                    *n
                };
                let act = (self.behave)(&spec.name, attempt);
                let now = self.running.fetch_add(1, Ordering::SeqCst) + 1;
                self.max_running.fetch_max(now, Ordering::SeqCst);
                let start = VInstant::now();
                std::fs::write(&dir.output, &act.output).unwrap();
                let exit = tokio::select! {
                    () = tokio::time::sleep(act.takes) => act.exit,
                    _ = io.cancel.wait_for(|c| *c) => Exit::Cancelled,
                };
                self.running.fetch_sub(1, Ordering::SeqCst);
                self.events.lock().unwrap().push(Event {
                    name: spec.name.clone(),
                    attempt,
                    start,
                    end: VInstant::now(),
                    env: spec.env.clone(),
                    exit: exit.clone(),
                });
                exit
            })
        }
    }

    struct Opts {
        jobs: usize,
        keep_going: bool,
        targets: Vec<String>,
    }

    const DEFAULT: Opts = Opts {
        jobs: 4,
        keep_going: false,
        targets: Vec::new(),
    };

    async fn run_with(
        src: &str,
        fake: &Arc<Fake>,
        o: Opts,
        cancel: watch::Receiver<bool>,
    ) -> RunReport {
        let checked = crate::check::check_source(
            "p.topsail",
            None,
            src.to_string(),
            crate::source::Format::Topsail,
        );
        let pipeline = checked
            .pipeline
            .unwrap_or_else(|| panic!("{:#?}", checked.diagnostics));
        let dir = tempfile::tempdir().unwrap();
        let tmp = dir.path().join("tmp");
        std::fs::create_dir(&tmp).unwrap();
        let params = crate::run::resolve_params(&pipeline, &[]).unwrap();
        let opts = RunOptions {
            pipeline_dir: dir.path().to_path_buf(),
            pipeline_file: dir.path().join("p.topsail"),
            jobs: o.jobs,
            params,
            targets: o.targets,
            keep_going: o.keep_going,
            approve: Vec::new(),
            approve_all: false,
            color: false,
            interactive: false,
            tmp_base: tmp.clone(),
        };
        let runtimes = Runtimes {
            host: fake.clone(),
            container: fake.clone(),
        };
        let report = execute(
            Arc::new(pipeline),
            Arc::new(opts),
            runtimes,
            "run-1".into(),
            Arc::new(Ui::silent()),
            cancel,
        )
        .await;
        let left: Vec<_> = std::fs::read_dir(&tmp).unwrap().collect();
        assert!(left.is_empty(), "attempt dirs left: {left:?}");
        report
    }

    async fn run(src: &str, fake: &Arc<Fake>, o: Opts) -> RunReport {
        let (_tx, rx) = watch::channel(false);
        run_with(src, fake, o, rx).await
    }

    fn unit<'a>(r: &'a RunReport, name: &str) -> &'a UnitReport {
        r.steps
            .iter()
            .find(|u| u.name == name)
            .unwrap_or_else(|| panic!("no unit {name}"))
    }

    fn env<'a>(e: &'a Event, name: &str) -> &'a str {
        e.env
            .iter()
            .find(|(k, _)| k == name)
            .map_or_else(|| panic!("no env {name} in {e:?}"), |(_, v)| v.as_str())
    }

    #[tokio::test(start_paused = true)]
    async fn steps_start_after_their_needs_and_outputs_flow() {
        let fake = Fake::new(|name, _| match name {
            "a" => Act {
                output: "X=hello\n".into(),
                ..ok(2)
            },
            _ => ok(1),
        });
        let src = r#"
a:
    output X
    run true
b: a
    env V = "[{{ a.X }}]"
    run true
c: b
    run true
d: a
    run true
e: c d
    run true
"#;
        let r = run(src, &fake, DEFAULT).await;
        assert_eq!(r.status, RunStatus::Succeeded);
        for (step, need) in [("b", "a"), ("c", "b"), ("d", "a"), ("e", "c"), ("e", "d")] {
            assert!(
                fake.event(step).start >= fake.event(need).end,
                "{step} started before {need} ended"
            );
        }
        assert_eq!(env(&fake.event("b"), "V"), "[hello]");
        // b and d both wait only for a: they run together.
        assert_eq!(fake.event("b").start, fake.event("d").start);
    }

    #[tokio::test(start_paused = true)]
    async fn a_step_whose_task_panics_fails_the_run() {
        let fake = Fake::new(|name, _| match name {
            "boom" => panic!("the runtime fell over"),
            _ => ok(1),
        });
        let src = "
fine:
    run true
boom:
    run true
after: boom
    run true
";
        let keep = Opts {
            keep_going: true,
            ..DEFAULT
        };
        let r = run(src, &fake, keep).await;
        assert_eq!(r.status, RunStatus::Failed);
        assert_eq!(r.status.exit_code(), 1);
        let boom = unit(&r, "boom");
        assert_eq!(boom.status, Status::Failed);
        let cause = boom.cause.as_deref().unwrap_or_default();
        assert!(
            cause.contains("panicked") && cause.contains("the runtime fell over"),
            "{cause}"
        );
        assert_eq!(unit(&r, "fine").status, Status::Succeeded);
        assert_eq!(unit(&r, "after").status, Status::Cancelled);
        assert!(!fake.ran("after"));
    }

    #[tokio::test(start_paused = true)]
    async fn jobs_bounds_how_many_run_at_once() {
        let fake = Fake::new(|_, _| ok(1));
        let mut src = String::new();
        for i in 0..10 {
            std::fmt::Write::write_fmt(&mut src, format_args!("s{i}:\n    run true\n")).unwrap();
        }
        let t0 = VInstant::now();
        let r = run(&src, &fake, Opts { jobs: 3, ..DEFAULT }).await;
        assert_eq!(r.status, RunStatus::Succeeded);
        assert_eq!(fake.max_running.load(Ordering::SeqCst), 3);
        assert_eq!(fake.events().len(), 10);
        // Four rounds of one second: 3 + 3 + 3 + 1.
        assert_eq!(t0.elapsed().as_secs(), 4);
    }

    #[tokio::test(start_paused = true)]
    async fn the_longest_remaining_path_goes_first() {
        let fake = Fake::new(|_, _| ok(1));
        // `short` comes first in the file (and in unit order), yet the chain
        // behind `long1` is longer: it gets the one slot while its remaining
        // path is longer (3, then 2 against 1); on a tie, file order decides.
        let src = "
short:
    run true
long1:
    run true
long2: long1
    run true
long3: long2
    run true
";
        let r = run(src, &fake, Opts { jobs: 1, ..DEFAULT }).await;
        assert_eq!(r.status, RunStatus::Succeeded);
        assert_eq!(fake.started(), ["long1", "long2", "short", "long3"]);
        assert_eq!(fake.max_running.load(Ordering::SeqCst), 1);
    }

    #[tokio::test(start_paused = true)]
    async fn a_skipped_need_counts_as_done_with_empty_outputs() {
        let fake = Fake::new(|_, _| Act {
            output: "X=never\n".into(),
            ..ok(1)
        });
        let src = r#"
param go: bool = false
a:
    output X
    when go
    run true
b: a
    env V = "[{{ a.X }}]"
    run true
"#;
        let r = run(src, &fake, DEFAULT).await;
        assert_eq!(r.status, RunStatus::Succeeded);
        assert_eq!(unit(&r, "a").status, Status::Skipped);
        assert_eq!(unit(&r, "a").attempts, 0);
        assert!(!fake.ran("a"));
        assert_eq!(unit(&r, "b").status, Status::Succeeded);
        assert_eq!(env(&fake.event("b"), "V"), "[]");
    }

    const FAILING: &str = "
a:
    run false
b: a
    run true
c:
    run true
";

    #[tokio::test(start_paused = true)]
    async fn a_failure_cancels_dependants_and_stops_the_run() {
        let fake = Fake::new(|name, _| if name == "a" { fail() } else { ok(1) });
        let r = run(FAILING, &fake, Opts { jobs: 1, ..DEFAULT }).await;
        assert_eq!(r.status, RunStatus::Failed);
        assert_eq!(r.status.exit_code(), 1);
        let a = unit(&r, "a");
        assert_eq!(a.status, Status::Failed);
        assert_eq!(a.error.as_deref(), Some(errors::SCRIPT_FAILED));
        assert_eq!(a.cause.as_deref(), Some("exit code 1"));
        let b = unit(&r, "b");
        assert_eq!(b.status, Status::Cancelled);
        assert_eq!(b.reason.as_deref(), Some("not run because `a` failed"));
        // `a` had the slot first (longer path); without --keep-going `c` never starts.
        let c = unit(&r, "c");
        assert_eq!(c.status, Status::Cancelled);
        assert_eq!(
            c.reason.as_deref(),
            Some("not run: the run stopped after `a` failed")
        );
        assert_eq!(fake.started(), ["a"]);
    }

    #[tokio::test(start_paused = true)]
    async fn keep_going_runs_what_does_not_depend_on_the_failure() {
        let fake = Fake::new(|name, _| if name == "a" { fail() } else { ok(1) });
        let r = run(
            FAILING,
            &fake,
            Opts {
                jobs: 1,
                keep_going: true,
                ..DEFAULT
            },
        )
        .await;
        assert_eq!(r.status, RunStatus::Failed);
        assert_eq!(unit(&r, "b").status, Status::Cancelled);
        assert_eq!(unit(&r, "c").status, Status::Succeeded);
        assert_eq!(fake.started(), ["a", "c"]);
    }

    #[tokio::test(start_paused = true)]
    async fn a_catch_handler_runs_once_with_the_first_failure() {
        let fake = Fake::new(|name, _| if name == "h" { ok(1) } else { fail() });
        let src = r#"
a:
    catch h
    run false
b:
    catch h
    run false
h:
    env S = "{{ failed.step }}"
    env E = "{{ failed.error }}"
    run true
"#;
        let r = run(
            src,
            &fake,
            Opts {
                jobs: 1,
                keep_going: true,
                ..DEFAULT
            },
        )
        .await;
        assert_eq!(r.status, RunStatus::Failed);
        assert_eq!(unit(&r, "a").status, Status::Failed);
        assert_eq!(unit(&r, "b").status, Status::Failed);
        assert_eq!(unit(&r, "h").status, Status::Succeeded);
        let h: Vec<Event> = fake
            .events()
            .into_iter()
            .filter(|e| e.name == "h")
            .collect();
        assert_eq!(h.len(), 1, "the handler ran {} times", h.len());
        assert_eq!(env(&h[0], "S"), "a");
        assert_eq!(env(&h[0], "E"), errors::SCRIPT_FAILED);
        // The handler goes before anything else waiting for the slot.
        assert_eq!(fake.started(), ["a", "h", "b"]);
    }

    #[tokio::test(start_paused = true)]
    async fn an_unused_handler_is_skipped() {
        let fake = Fake::new(|_, _| ok(1));
        let src = "
a:
    catch h
    run true
h:
    run true
";
        let r = run(src, &fake, DEFAULT).await;
        assert_eq!(r.status, RunStatus::Succeeded);
        assert_eq!(unit(&r, "h").status, Status::Skipped);
        assert!(!fake.ran("h"));
    }

    #[tokio::test(start_paused = true)]
    async fn retry_delays_are_interval_times_backoff_to_the_n_minus_1() {
        let fake = Fake::new(|_, attempt| if attempt < 4 { fail() } else { ok(0) });
        let src = "
flaky:
    retry 3 every 1s backoff 2.0
    run false
";
        let r = run(src, &fake, DEFAULT).await;
        assert_eq!(r.status, RunStatus::Succeeded);
        assert_eq!(unit(&r, "flaky").attempts, 4);
        let mut e = fake.events();
        e.sort_by_key(|e| e.attempt);
        let gaps: Vec<u128> = e
            .windows(2)
            .map(|w| (w[1].start - w[0].end).as_millis())
            .collect();
        assert_eq!(gaps, [1000, 2000, 4000]);
    }

    #[tokio::test(start_paused = true)]
    async fn retries_run_out_then_the_step_fails() {
        let fake = Fake::new(|_, _| fail());
        let src = "
flaky:
    retry 2 every 2s backoff 1.5
    run false
";
        let r = run(src, &fake, DEFAULT).await;
        assert_eq!(r.status, RunStatus::Failed);
        assert_eq!(unit(&r, "flaky").attempts, 3);
        let mut e = fake.events();
        e.sort_by_key(|e| e.attempt);
        let gaps: Vec<u128> = e
            .windows(2)
            .map(|w| (w[1].start - w[0].end).as_millis())
            .collect();
        assert_eq!(gaps, [2000, 3000]);
    }

    #[tokio::test(start_paused = true)]
    async fn cancelling_stops_running_steps_and_starts_nothing_more() {
        let fake = Fake::new(|_, _| ok(3600));
        let src = "
a:
    run sleep 3600
b:
    run sleep 3600
c:
    run sleep 3600
d: a
    run true
";
        let (tx, rx) = watch::channel(false);
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_secs(10)).await;
            let _ = tx.send(true);
        });
        let t0 = VInstant::now();
        let r = run_with(src, &fake, Opts { jobs: 2, ..DEFAULT }, rx).await;
        assert_eq!(r.status, RunStatus::Interrupted);
        assert_eq!(r.status.exit_code(), 130);
        assert_eq!(t0.elapsed().as_secs(), 10, "the run ends when cancelled");
        // `a` (longest path) and `b` had the two slots; both were told to stop.
        let mut started = fake.started();
        started.sort();
        assert_eq!(started, ["a", "b"]);
        for e in fake.events() {
            assert_eq!(e.exit, Exit::Cancelled, "{e:?}");
        }
        for name in ["a", "b", "c", "d"] {
            assert_eq!(unit(&r, name).status, Status::Cancelled, "{name}");
        }
        assert_eq!(
            unit(&r, "c").reason.as_deref(),
            Some("not run: the run was interrupted")
        );
    }

    #[tokio::test(start_paused = true)]
    async fn foreach_instances_run_together_and_one_failure_fails_the_step() {
        let fake = Fake::new(|name, _| {
            let act = if name == "f[b]" { fail() } else { ok(0) };
            Act {
                takes: Duration::from_secs(1),
                ..act
            }
        });
        let src = r#"
f:
    foreach x in ["a", "b", "c"]
    env X = "{{ x }}"
    run true
after: f
    run true
"#;
        let r = run(src, &fake, DEFAULT).await;
        assert_eq!(r.status, RunStatus::Failed);
        assert_eq!(fake.max_running.load(Ordering::SeqCst), 3);
        assert_eq!(env(&fake.event("f[c]"), "X"), "c");
        assert_eq!(unit(&r, "f[a]").status, Status::Succeeded);
        assert_eq!(unit(&r, "f[b]").status, Status::Failed);
        assert_eq!(unit(&r, "after").status, Status::Cancelled);
    }

    #[tokio::test(start_paused = true)]
    async fn targets_run_only_what_they_need() {
        let fake = Fake::new(|_, _| ok(1));
        let src = "
a:
    run true
b: a
    run true
c:
    run true
";
        let r = run(
            src,
            &fake,
            Opts {
                targets: vec!["b".into()],
                ..DEFAULT
            },
        )
        .await;
        assert_eq!(r.status, RunStatus::Succeeded);
        assert_eq!(fake.started(), ["a", "b"]);
        assert!(r.steps.iter().all(|u| u.name != "c"));
    }
}
