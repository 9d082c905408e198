//! Checked pipeline -> Amazon States Language (JSONPath), with the meaning of
//! LANGUAGE.md section 7.
//!
//! Shape of the state machine:
//! - The execution input is `{"params": {...}}`. `Check params` fails the
//!   execution (`topsail.MissingParam`, `topsail.BadParam`) when a required
//!   param is missing or a param has the wrong JSON type; defaults are then
//!   merged in, and the state becomes `{"params": {...}, "steps": {}}`.
//! - Each step is a Task on the activity (input: [`task::TaskInput`], fields
//!   at their default left out); its declared outputs land in
//!   `$.steps.KEY` (KEY: the step name made JSONPath-safe, see
//!   [`Compiled::step_keys`]). `when` is a Choice whose other branch is a
//!   Pass writing empty outputs; `foreach` is an inline Map; an approval is
//!   an SQS `sendMessage.waitForTaskToken` task; `retry` is a Retrier on
//!   `States.ALL` (every failure the worker reports, and `States.Timeout`, as
//!   locally); `catch` runs a copy of the handler and then a Fail state.
//! - Every script Task has HeartbeatSeconds (the step's `heartbeat`, else
//!   [`DEFAULT_HEARTBEAT_SECONDS`](crate::model::limits::DEFAULT_HEARTBEAT_SECONDS) kept below its timeout) and, first among
//!   its Retriers, one on `States.HeartbeatTimeout` and
//!   `topsail.WorkerShutdown` ([`WORKER_LOST_ATTEMPTS`]): a task whose worker
//!   died or was stopped runs again on another worker, apart from the step's
//!   own `retry`, so no task is lost with its worker.
//! - The DAG becomes nested Parallel states following the series-parallel
//!   decomposition in [`sp`]. A branch ends with the whole state, whose
//!   `steps` holds every earlier output and the branch's own; so after a
//!   Parallel the `steps` of the branches that add outputs are merged with
//!   `States.JsonMerge`, which is shallow and enough (one key per step, and
//!   the keys branches share hold the same values). See
//!   `Emitter::merge_states` (in `layout.rs`) for the shape, which costs a
//!   few bytes per branch, not per step.
//!
//! Known differences from a local run, both from Step Functions itself: a
//! failing step stops the other branches of its Parallel at once (locally,
//! running steps finish first); and a `list` param in an approval message is
//! formatted by `States.Format` as a JSON array, not space-separated.
//!
//! The back end reads only the model; limits of Step Functions are reported
//! as diagnostics on the steps' spans. The definition is built as a
//! `json::J` tree in a fixed order and printed from it, so output is
//! byte-stable.
//!
//! Layout: this module holds [`compile`], its [`Options`] and the limits of
//! the whole definition; `layout.rs` the series-parallel shape and the
//! nesting of Parallel states; `names.rs` the keys under `$.steps`, the
//! state names and their limits; `emit.rs` the emitter that assembles the
//! definition; `task_state.rs` the Task states, beside [`task`] (the task
//! input the worker reads); [`sp`] the decomposition, `cond` the Choice
//! rules, `json` the tree it is printed from, [`yaml_out`] the YAML printer.

mod cond;
mod emit;
mod json;
mod layout;
mod names;
mod task_state;

pub mod analyse;
pub mod sp;
pub mod synth;
pub mod task;
pub mod yaml_out;

use serde_json::Value as Json;

use crate::diagnostics::{Diagnostic, codes};
use crate::model::{Pipeline, StepId};
use crate::source::Span;
use emit::Emitter;
use layout::{Shape, shape, weights};
use names::Names;

/// Replaced by `topsail deploy` with the real activity ARN.
pub const ACTIVITY_ARN_PLACEHOLDER: &str = "arn:aws:states:REGION:ACCOUNT:activity:topsail";
/// Replaced by `topsail deploy` with the approval queue's URL.
pub const APPROVAL_QUEUE_PLACEHOLDER: &str =
    "https://sqs.REGION.amazonaws.com/ACCOUNT/topsail-approvals";
/// The `kind` field of an approval message on the queue.
pub const APPROVAL_KIND: &str = "topsail.approval";

/// Step Functions: a definition has at most 1 MiB.
pub const MAX_DEFINITION_BYTES: usize = 1024 * 1024;
/// topsail's own limit on nested Parallel/Map levels: each level is five
/// JSON nesting levels, and deeper definitions approach JSON parsers'
/// recursion limits and are unreadable in the console.
pub const MAX_NESTING: usize = 40;
/// Step Functions: the state passed between states has at most 256 KiB.
pub const MAX_PAYLOAD_BYTES: usize = 256 * 1024;
/// The room counted for one declared output when estimating the payload.
pub const OUTPUT_BUDGET_BYTES: usize = 4 * 1024;
/// Attempts given to a task whose worker was lost (`States.HeartbeatTimeout`)
/// or stopped (`topsail.WorkerShutdown`), besides the step's own `retry`.
pub const WORKER_LOST_ATTEMPTS: u32 = 10;

#[derive(Clone, Debug)]
pub struct Options {
    /// The activity of steps without a `queue`.
    pub activity_arn: String,
    /// The activity of each queue (`deploy` fills it with what it created);
    /// a queue missing here gets [`queue_activity_arn`] of `activity_arn`.
    pub queue_arns: std::collections::BTreeMap<String, String>,
    pub approval_queue_url: String,
    /// Expected duration of each step in seconds (indexed by `StepId`;
    /// `None` or missing: unknown), e.g. measured in an earlier run
    /// (`--durations-from`). Used only to choose where to add waiting in a
    /// DAG that is not series-parallel; empty: every step counts the same.
    pub durations: Vec<Option<f64>>,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            activity_arn: ACTIVITY_ARN_PLACEHOLDER.into(),
            queue_arns: std::collections::BTreeMap::new(),
            approval_queue_url: APPROVAL_QUEUE_PLACEHOLDER.into(),
            durations: Vec::new(),
        }
    }
}

impl Options {
    /// The activity serving a step of `queue` (`None`: the pipeline's own).
    pub fn activity_for(&self, queue: Option<&str>) -> std::borrow::Cow<'_, str> {
        match queue {
            None => self.activity_arn.as_str().into(),
            Some(q) => match self.queue_arns.get(q) {
                Some(arn) => arn.as_str().into(),
                None => queue_activity_arn(&self.activity_arn, q).into(),
            },
        }
    }
}

/// A queue's activity: the pipeline's activity name, `--`, the queue
/// (`topsail-release--gpu`), as `deploy` names it.
pub fn queue_activity_arn(activity_arn: &str, queue: &str) -> String {
    format!("{activity_arn}--{queue}")
}

#[derive(Clone, Debug)]
pub struct Compiled {
    pub definition: Json,
    /// Warnings and notes (added waits, payload size).
    pub diagnostics: Vec<Diagnostic>,
    /// Step name -> its key under `$.steps`.
    pub step_keys: Vec<(String, String)>,
    /// `definition` as pretty JSON, printed while compiling (from the same
    /// tree, so it is the text of `definition` as [`compile`] returned it).
    pretty: String,
}

impl Compiled {
    /// Pretty JSON with a final newline.
    pub fn to_json(&self) -> String {
        self.pretty.clone()
    }

    /// Compact JSON: what `topsail deploy` sends, and the text whose size
    /// Step Functions limits to [`MAX_DEFINITION_BYTES`] (indentation would
    /// count too).
    pub fn to_compact_json(&self) -> String {
        serde_json::to_string(&self.definition).expect("a serde_json::Value always serializes")
    }

    pub fn to_yaml(&self) -> String {
        yaml_out::to_yaml(&self.definition)
    }
}

/// Compile a checked pipeline. Errors are limits of Step Functions the
/// pipeline exceeds, each on the span of the step (or param) concerned.
pub fn compile(pipeline: &Pipeline, options: &Options) -> Result<Compiled, Vec<Diagnostic>> {
    compile_here(pipeline, options)
}

fn compile_here(p: &Pipeline, o: &Options) -> Result<Compiled, Vec<Diagnostic>> {
    let names = Names::new(p);
    let mut e = Emitter::new(p, o, &names);
    e.check_params();
    e.check_payload();
    // The DAG of the steps that run on their own (handlers run only in catch paths).
    let members: Vec<StepId> = p
        .steps
        .iter()
        .filter(|s| !s.is_handler)
        .map(|s| s.id)
        .collect();
    // StepId -> index in `members`.
    let mut local = vec![None; p.steps.len()];
    for (i, s) in members.iter().enumerate() {
        local[s.0] = Some(i);
    }
    let succs: Vec<Vec<usize>> = members
        .iter()
        .map(|&id| p.dependants(id).filter_map(|d| local[d.0]).collect())
        .collect();
    let (weights, spreads) = weights(o, &members);
    let Shape {
        tree,
        depth,
        deepest,
        waits,
    } = shape(&succs, &weights, &spreads, &members);
    for w in waits {
        e.note_wait(
            members[w.waiter],
            w.on.iter().map(|&i| members[i]).collect(),
            w.more,
        );
    }
    let depth = depth + usize::from(p.steps.iter().any(|s| s.foreach.is_some()));
    if let Some(deepest) = deepest.filter(|_| depth > MAX_NESTING) {
        e.diags.push(
            Diagnostic::error(
                codes::ASL_LIMIT,
                p.step(deepest).span,
                format!(
                    "the state machine would nest {depth} Parallel/Map levels (topsail's limit is {MAX_NESTING})"
                ),
            )
            .label("this step is at the deepest level")
            .help("fewer independent chains crossing each other make shallower machines"),
        );
    }
    if e.diags.iter().any(Diagnostic::is_error) {
        return Err(e.diags);
    }
    let definition = e.definition(tree.as_ref());
    e.check_names();
    if definition.compact_len(MAX_DEFINITION_BYTES) > MAX_DEFINITION_BYTES {
        let span = p.steps.last().map_or_else(Span::default, |s| s.span);
        e.diags.push(
            Diagnostic::error(
                codes::ASL_LIMIT,
                span,
                format!(
                    "the state machine definition is more than {MAX_DEFINITION_BYTES} bytes; Step Functions accepts at most {MAX_DEFINITION_BYTES}"
                ),
            )
            .label("the pipeline ends here")
            .help("split the pipeline into smaller ones, or move long scripts into files"),
        );
    }
    if e.diags.iter().any(Diagnostic::is_error) {
        return Err(e.diags);
    }
    crate::diagnostics::sort(&mut e.diags);
    let step_keys = p
        .steps
        .iter()
        .map(|s| (s.name.clone(), names.keys[s.id.0].clone()))
        .collect();
    let mut pretty = definition.pretty();
    pretty.push('\n');
    Ok(Compiled {
        definition: definition.to_value(),
        diagnostics: e.diags,
        step_keys,
        pretty,
    })
}
