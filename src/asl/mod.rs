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
//!   [`DEFAULT_HEARTBEAT_SECONDS`] kept below its timeout) and, first among
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
//!   `Emitter::merge_states` for the shape, which costs a few bytes per
//!   branch, not per step.
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

mod cond;
mod json;

pub mod analyse;
pub mod sp;
pub mod synth;
pub mod task;
pub mod yaml_out;

use std::collections::{HashMap, HashSet};

use serde_json::Value as Json;

use crate::diagnostics::{Diagnostic, codes};
use crate::model::errors;
use crate::model::limits::{
    DEFAULT_HEARTBEAT_SECONDS, MAX_STATE_NAME, ceil_seconds, heartbeat_seconds,
};
use crate::model::{
    Action, ForeachItems, Pipeline, Ref, Step, StepId, Text, Type, Value, format_duration,
};
use crate::source::Span;
use json::{J, Obj, Out, Str, decimal};
use sp::Tree;
use task::{TASK_INPUT_VERSION, encode_text_parts};

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
/// Relative spread of a step's duration when nothing is known of it: from
/// a fiftieth to twice the estimate.
const UNKNOWN_SPREAD: f64 = 0.98;
/// Relative spread of a duration measured in an earlier run: the next run
/// may take a fifth more or less. (Taking measured durations as exact did
/// worse on the benchmark: 1.020 against 1.014 mean ratio, since a cut that
/// only wins by a hair on one set of durations is not worth its waits.)
const MEASURED_SPREAD: f64 = 0.2;

#[derive(Clone, Debug)]
pub struct Options {
    pub activity_arn: String,
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
            approval_queue_url: APPROVAL_QUEUE_PLACEHOLDER.into(),
            durations: Vec::new(),
        }
    }
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

/// The series-parallel shape of the DAG, with what the nesting check needs.
struct Shape {
    /// `None` when deeper than [`MAX_NESTING`] (refused anyway).
    tree: Option<Tree>,
    depth: usize,
    deepest: Option<StepId>,
    waits: Vec<sp::AddedWait>,
}

/// Decompose, on a thread with a deep stack when the DAG is large: the
/// decomposition recurses once per nesting level and per forced cut, which
/// for a 10,000-step pipeline can be deeper than a default stack. Only this
/// runs there; the definition is built on the caller's thread, whose
/// allocator arena is already warm (a fresh thread's arena costs page faults
/// for every byte of a large definition).
fn shape(succs: &[Vec<usize>], weights: &[f64], spreads: &[f64], members: &[StepId]) -> Shape {
    let run = || {
        let (tree, waits) = sp::decompose(succs, weights, spreads);
        let tree = tree.map(|t| map_tree(t, members));
        let (depth, deepest) = tree.as_ref().map_or((0, None), |t| {
            let (d, leaf) = depth_and_deepest(t);
            (d, Some(leaf))
        });
        // A deep tree is dropped here too, where its recursive drop fits.
        let tree = tree.filter(|_| depth <= MAX_NESTING);
        Shape {
            tree,
            depth,
            deepest,
            waits,
        }
    };
    if succs.len() < 2_000 {
        return run();
    }
    std::thread::scope(|s| {
        std::thread::Builder::new()
            .name("asl-decompose".into())
            .stack_size(256 * 1024 * 1024)
            .spawn_scoped(s, run)
            .map_or_else(
                |_| run(),
                |h| h.join().unwrap_or_else(|e| std::panic::resume_unwind(e)),
            )
    })
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

/// Each member's weight and spread for the decomposition: a measured
/// duration as it is; an unknown one as the median of the measured ones (or
/// 1 when none is), and very uncertain.
fn weights(o: &Options, members: &[StepId]) -> (Vec<f64>, Vec<f64>) {
    let known: Vec<Option<f64>> = members
        .iter()
        .map(|id| {
            o.durations
                .get(id.0)
                .copied()
                .flatten()
                .filter(|d| d.is_finite() && *d >= 0.0)
                // A step measured at 0 s still takes some time.
                .map(|d| d.max(0.001))
        })
        .collect();
    let mut measured: Vec<f64> = known.iter().flatten().copied().collect();
    measured.sort_by(f64::total_cmp);
    let typical = measured.get(measured.len() / 2).copied().unwrap_or(1.0);
    known
        .iter()
        .map(|d| match d {
            Some(d) => (*d, MEASURED_SPREAD),
            None => (typical, UNKNOWN_SPREAD),
        })
        .unzip()
}

fn map_tree(t: Tree, members: &[StepId]) -> Tree {
    match t {
        Tree::Leaf(i) => Tree::Leaf(members[i].0),
        Tree::Series(c) => Tree::Series(c.into_iter().map(|t| map_tree(t, members)).collect()),
        Tree::Parallel(c) => Tree::Parallel(c.into_iter().map(|t| map_tree(t, members)).collect()),
    }
}

/// Parallel nesting depth and a leaf at that depth, in one pass.
fn depth_and_deepest(t: &Tree) -> (usize, StepId) {
    match t {
        Tree::Leaf(i) => (0, StepId(*i)),
        Tree::Series(c) | Tree::Parallel(c) => {
            let (d, leaf) = c
                .iter()
                .map(depth_and_deepest)
                .max_by_key(|x| x.0)
                .unwrap_or((0, StepId(0)));
            (d + usize::from(matches!(t, Tree::Parallel(_))), leaf)
        }
    }
}

/// A JSONPath-safe key: `-` and `.` become `_`; a clash gets `_2`, `_3`...
fn safe_keys<'a>(names: impl Iterator<Item = &'a str>) -> Vec<String> {
    let bases: Vec<String> = names
        .map(|n| {
            n.chars()
                .map(|c| {
                    if c.is_ascii_alphanumeric() || c == '_' {
                        c
                    } else {
                        '_'
                    }
                })
                .collect()
        })
        .collect();
    // Almost always no two clash, and the bases are the keys.
    let distinct = if bases.len() <= 16 {
        (1..bases.len()).all(|i| !bases[..i].contains(&bases[i]))
    } else {
        let mut seen = HashSet::with_capacity(bases.len());
        bases.iter().all(|b| seen.insert(b.as_str()))
    };
    if distinct {
        return bases;
    }
    let mut used = HashSet::new();
    bases
        .into_iter()
        .map(|base| {
            let mut key = base.clone();
            let mut i = 2;
            while !used.insert(key.clone()) {
                key = format!("{base}_{i}");
                i += 1;
            }
            key
        })
        .collect()
}

/// Attempts given to a task whose worker was lost (`States.HeartbeatTimeout`)
/// or stopped (`topsail.WorkerShutdown`), besides the step's own `retry`.
pub const WORKER_LOST_ATTEMPTS: u32 = 10;

type States<'a> = Vec<(Str<'a>, J<'a>)>;

/// The states of a tree node, entered at `entry`.
struct Fragment<'a> {
    entry: Str<'a>,
    states: States<'a>,
    /// Some step in it writes outputs into `$.steps`.
    stores: bool,
}

/// The states merging a Parallel's outputs, and the ResultSelector they need.
struct Merges<'a> {
    picks: J<'a>,
    states: States<'a>,
}

/// Step Functions: at most this many intrinsic functions in one field.
const MAX_INTRINSICS: usize = 10;

/// Who a state belongs to, for diagnostics on its name.
#[derive(Clone, Copy)]
enum Owner {
    Step(StepId),
    Param(usize),
    None,
}

/// What states refer to steps and outputs by.
struct Names<'a> {
    /// Each step's key under `$.steps` (by `StepId`).
    keys: Vec<String>,
    /// Each step's outputs' keys (by `StepId`, then output).
    out_keys: Vec<Vec<String>>,
    by_name: HashMap<&'a str, StepId>,
}

impl<'a> Names<'a> {
    fn new(p: &'a Pipeline) -> Self {
        Self {
            keys: safe_keys(p.steps.iter().map(|s| s.name.as_str())),
            out_keys: p
                .steps
                .iter()
                .map(|s| safe_keys(s.outputs.iter().map(String::as_str)))
                .collect(),
            by_name: p.steps.iter().map(|s| (s.name.as_str(), s.id)).collect(),
        }
    }

    /// The step and the index of the output a `step.output` reference names.
    fn resolve(&self, p: &Pipeline, step: &str, output: &str) -> Result<(StepId, usize), String> {
        let id = *self
            .by_name
            .get(step)
            .ok_or_else(|| format!("unknown step `{step}`"))?;
        let i = p
            .step(id)
            .outputs
            .iter()
            .position(|o| o == output)
            .ok_or_else(|| format!("`{step}` declares no output `{output}`"))?;
        Ok((id, i))
    }

    fn output_path(&self, p: &Pipeline, step: &str, output: &str) -> Result<String, String> {
        let (id, i) = self.resolve(p, step, output)?;
        Ok(format!(
            "$.steps.{}.{}",
            self.keys[id.0], self.out_keys[id.0][i]
        ))
    }
}

/// What a script step's texts refer to, resolved once (its Task input is
/// written from it at each printing).
struct Uses {
    params: bool,
    /// Each output used, once, in the order of first use.
    outputs: Vec<(StepId, usize)>,
}

struct Emitter<'a> {
    p: &'a Pipeline,
    o: &'a Options,
    n: &'a Names<'a>,
    parallels: usize,
    /// State names that may be too long or hold control characters, for
    /// `check_names` (most names are fine and are not kept).
    names: Vec<(String, Owner)>,
    diags: Vec<Diagnostic>,
}

impl<'a> Emitter<'a> {
    fn new(p: &'a Pipeline, o: &'a Options, n: &'a Names<'a>) -> Self {
        Self {
            p,
            o,
            n,
            parallels: 0,
            names: Vec::new(),
            diags: Vec::new(),
        }
    }

    fn check_params(&mut self) {
        for prm in self.p.params.values() {
            if !prm
                .name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_')
            {
                self.diags.push(
                    Diagnostic::error(
                        codes::ASL_LIMIT,
                        prm.span,
                        format!(
                            "param `{}` cannot be addressed by a Step Functions path",
                            prm.name
                        ),
                    )
                    .label("`-` is not allowed in a JSONPath name")
                    .help(format!(
                        "rename it `{}` to compile it to ASL",
                        prm.name.replace(|c: char| !c.is_ascii_alphanumeric(), "_")
                    )),
                );
            }
        }
    }

    fn check_payload(&mut self) {
        let threshold = MAX_PAYLOAD_BYTES * 3 / 4;
        let mut total = 0;
        for s in &self.p.steps {
            if s.is_handler || s.foreach.is_some() {
                continue;
            }
            let before = total;
            total += s.outputs.len() * OUTPUT_BUDGET_BYTES;
            if before <= threshold && total > threshold {
                let count = total / OUTPUT_BUDGET_BYTES;
                self.diags.push(
                    Diagnostic::warning(
                        codes::ASL_PAYLOAD,
                        s.span,
                        format!(
                            "{count} declared outputs up to here could approach the 256 KiB Step Functions state limit"
                        ),
                    )
                    .label(format!(
                        "outputs so far: {count} x {} KiB",
                        OUTPUT_BUDGET_BYTES / 1024
                    ))
                    .help("every output travels in the state of the execution; keep outputs small (ids, versions), and pass large data through storage"),
                );
            }
        }
    }

    fn note_wait(&mut self, waiter: StepId, on: Vec<StepId>, more: usize) {
        // Built in one string: a DAG far from series-parallel gets thousands.
        let mut list = String::new();
        for (i, s) in on.iter().enumerate() {
            if i > 0 {
                list.push_str(", ");
            }
            list.push('`');
            list.push_str(&self.p.step(*s).name);
            list.push('`');
        }
        if more > 0 {
            list.push_str(" and ");
            list.push_str(decimal(more as u64, &mut [0u8; 20]));
            list.push_str(" more");
        }
        let step = self.p.step(waiter);
        let mut d = Diagnostic::note(
            codes::ASL_WAIT,
            step.span,
            format!(
                "on Step Functions `{}` also waits for {list}, which it does not need",
                step.name
            ),
        )
        .label(format!("waits for {list}"))
        .help("nested Parallel states express only series-parallel orders; this DAG is not one, and this is the wait that costs least");
        for s in on {
            d = d.secondary(self.p.step(s).span, "waited for");
        }
        self.diags.push(d);
    }

    fn check_names(&mut self) {
        for (name, owner) in std::mem::take(&mut self.names) {
            let len = name.chars().count();
            let bad = name.chars().any(char::is_control);
            if len <= MAX_STATE_NAME && !bad {
                continue;
            }
            let (span, what) = match owner {
                Owner::Step(id) => (self.p.step(id).span, "step"),
                Owner::Param(i) => (
                    self.p
                        .params
                        .get_index(i)
                        .map_or_else(Span::default, |(_, p)| p.span),
                    "param",
                ),
                Owner::None => (Span::default(), "pipeline"),
            };
            let message = if bad {
                format!("state name `{name}` has a control character")
            } else {
                format!(
                    "state name `{name}` is {len} characters; Step Functions allows {MAX_STATE_NAME}"
                )
            };
            self.diags.push(
                Diagnostic::error(codes::STATE_NAME, span, message)
                    .label(format!("this {what}'s name is used in the state name"))
                    .help("use a shorter name"),
            );
        }
    }

    /// A state name; kept for `check_names` when it may break a limit.
    fn name(&mut self, name: impl Into<Str<'a>>, owner: Owner) -> Str<'a> {
        let name = name.into();
        // Bytes bound chars: a name of at most MAX_STATE_NAME bytes is short enough.
        if name.len() > MAX_STATE_NAME || name.chars().any(char::is_control) {
            self.names.push((name.to_string(), owner));
        }
        name
    }

    fn definition(&mut self, tree: Option<&Tree>) -> J<'a> {
        let mut states: States<'a> = Vec::new();
        let start = match tree {
            Some(t) => {
                let f = self.fragment(t, None);
                states = f.states;
                Some(f.entry)
            }
            None => None,
        };
        let mut all = self.params_states(start);
        let start_at = all[0].0.clone();
        all.extend(states);
        let mut m = Obj::new();
        m.push("Comment", format!("topsail pipeline {}", self.p.name));
        m.push("StartAt", start_at);
        m.push("States", states_obj(all));
        J::Obj(m)
    }

    fn params_states(&mut self, start: Option<Str<'a>>) -> States<'a> {
        let mut out: States<'a> = Vec::new();
        let check = self.name("Check params", Owner::None);
        let no_params = self.name("No params", Owner::None);
        let fill = self.name("Fill defaults", Owner::None);
        let init = self.name("Init state", Owner::None);
        let mut choices = vec![J::Obj(obj([
            ("Variable", "$.params".into()),
            ("IsPresent", false.into()),
            ("Next", no_params.clone().into()),
        ]))];
        let mut fails: States<'a> = Vec::new();
        let mut defaults = Obj::new();
        for (i, prm) in self.p.params.values().enumerate() {
            let path = format!("$.params.{}", prm.name);
            if let Some(d) = &prm.default {
                defaults.push(prm.name.as_str(), J::from(&d.to_json()));
            } else {
                let fail = self.name(format!("Missing param {}", prm.name), Owner::Param(i));
                choices.push(J::Obj(obj([
                    ("Variable", path.clone().into()),
                    ("IsPresent", false.into()),
                    ("Next", fail.clone().into()),
                ])));
                fails.push((fail, fail_state(
                    errors::MISSING_PARAM,
                    format!(
                        "the execution input has no params.{} (a required {} param); start it with {{\"params\": {{\"{}\": ...}}}}",
                        prm.name, prm.ty, prm.name
                    ),
                ).into()));
            }
            let is = match prm.ty {
                Type::String | Type::Duration => "IsString",
                Type::Int | Type::Float => "IsNumeric",
                Type::Bool => "IsBoolean",
                Type::List => continue,
            };
            let fail = self.name(format!("Bad param {}", prm.name), Owner::Param(i));
            choices.push(J::Obj(obj([
                (
                    "And",
                    J::Arr(vec![
                        J::Obj(obj([
                            ("Variable", path.clone().into()),
                            ("IsPresent", true.into()),
                        ])),
                        J::Obj(obj([("Variable", path.into()), (is, false.into())])),
                    ]),
                ),
                ("Next", fail.clone().into()),
            ])));
            fails.push((
                fail,
                fail_state(
                    errors::BAD_PARAM,
                    format!(
                        "params.{} in the execution input is not {} {}",
                        prm.name,
                        if prm.ty == Type::Int { "an" } else { "a" },
                        prm.ty
                    ),
                )
                .into(),
            ));
        }
        let after_check = if defaults.is_empty() {
            init.clone()
        } else {
            fill.clone()
        };
        out.push((
            check.clone(),
            obj([
                ("Type", "Choice".into()),
                ("Choices", J::Arr(choices)),
                ("Default", after_check.into()),
            ])
            .into(),
        ));
        out.push((
            no_params,
            obj([
                ("Type", "Pass".into()),
                ("Result", Obj::new().into()),
                ("ResultPath", "$.params".into()),
                ("Next", check.into()),
            ])
            .into(),
        ));
        out.extend(fails);
        let params = if defaults.is_empty() {
            "$.params"
        } else {
            out.push((
                fill,
                obj([
                    ("Type", "Pass".into()),
                    ("Result", defaults.into()),
                    ("ResultPath", "$.defaults".into()),
                    ("Next", init.clone().into()),
                ])
                .into(),
            ));
            "States.JsonMerge($.defaults, $.params, false)"
        };
        let mut s = obj([
            ("Type", "Pass".into()),
            (
                "Parameters",
                obj([("params.$", params.into()), ("steps", Obj::new().into())]).into(),
            ),
        ]);
        link(&mut s, start);
        out.push((init, s.into()));
        out
    }

    /// The states of a tree node, going to `next` (or ending the branch)
    /// when done.
    fn fragment(&mut self, t: &Tree, next: Option<Str<'a>>) -> Fragment<'a> {
        match t {
            Tree::Leaf(i) => self.step_fragment(StepId(*i), next),
            Tree::Series(children) => {
                // Built back to front (each part needs the name of the next),
                // then laid out front to back.
                let mut parts: Vec<States<'a>> = Vec::with_capacity(children.len());
                let mut next = next;
                let mut stores = false;
                for c in children.iter().rev() {
                    let f = self.fragment(c, next);
                    parts.push(f.states);
                    stores |= f.stores;
                    next = Some(f.entry);
                }
                Fragment {
                    entry: next.expect("a Series has children"),
                    states: parts.into_iter().rev().flatten().collect(),
                    stores,
                }
            }
            Tree::Parallel(children) => {
                self.parallels += 1;
                let n = self.parallels;
                let par = self.name(format!("Parallel {n}"), Owner::None);
                let mut branches = Vec::with_capacity(children.len());
                // The branches that add outputs, by index.
                let mut adding = Vec::new();
                for (i, c) in children.iter().enumerate() {
                    let f = self.fragment(c, None);
                    branches.push(J::Obj(obj([
                        ("StartAt", f.entry.into()),
                        ("States", states_obj(f.states)),
                    ])));
                    if f.stores {
                        adding.push(i);
                    }
                }
                let mut s = obj([("Type", "Parallel".into()), ("Branches", branches.into())]);
                let mut out: States<'a> = Vec::new();
                let stores = !adding.is_empty();
                match adding[..] {
                    [] => {
                        // No branch adds outputs: keep the input as it was.
                        s.push("ResultPath", J::Null);
                        link(&mut s, next);
                        out.push((par.clone(), s.into()));
                    }
                    [i] => {
                        // One does: its output (the state with its outputs
                        // added) is all the Parallel needs to pass on.
                        s.push("OutputPath", format!("$[{i}]"));
                        link(&mut s, next);
                        out.push((par.clone(), s.into()));
                    }
                    _ => {
                        let merges = self.merge_states(n, adding, next);
                        s.push("ResultSelector", merges.picks);
                        s.push("ResultPath", "$.new");
                        s.push("Next", merges.states[0].0.clone());
                        out.push((par.clone(), s.into()));
                        out.extend(merges.states);
                    }
                }
                Fragment {
                    entry: par,
                    states: out,
                    stores,
                }
            }
        }
    }

    /// After Parallel `n`, the `steps` of the branches in `adding` (by
    /// index), merged: the Parallel's ResultSelector picks each such
    /// branch's output as `bI` (I its index) into `$.new`, and Pass states
    /// set `steps` to
    /// `States.JsonMerge(States.JsonMerge($.new.b0.steps, $.new.b1.steps, false), $.new.b2.steps, false)`.
    /// Each branch is picked whole (`$[0]`, not `$[0].steps`, which the
    /// emulator reads as a list) and by name (intrinsics take no array
    /// index in the emulator; AWS takes both). Step Functions allows
    /// [`MAX_INTRINSICS`] intrinsic functions in a field, so the first Pass
    /// merges up to that many plus one branches and each further one
    /// (`Merge n (2)`...) up to that many more into `$.steps`; all but the
    /// last keep `$.new`.
    fn merge_states(&mut self, n: usize, adding: Vec<usize>, next: Option<Str<'a>>) -> Merges<'a> {
        let first = adding.len().min(MAX_INTRINSICS + 1);
        let mut groups = vec![&adding[..first]];
        groups.extend(adding[first..].chunks(MAX_INTRINSICS));
        let names: Vec<Str<'a>> = (1..=groups.len())
            .map(|g| {
                let name = if g == 1 {
                    format!("Merge {n}")
                } else {
                    format!("Merge {n} ({g})")
                };
                self.name(name, Owner::None)
            })
            .collect();
        let mut states: States<'a> = Vec::with_capacity(groups.len());
        let last = groups.len() - 1;
        for (g, group) in groups.iter().enumerate() {
            let mut args: Vec<String> = Vec::with_capacity(group.len() + 1);
            if g > 0 {
                args.push("$.steps".into());
            }
            args.extend(group.iter().map(|i| format!("$.new.b{i}.steps")));
            let mut expr = "States.JsonMerge(".repeat(args.len() - 1);
            expr.push_str(&args[0]);
            for a in &args[1..] {
                expr.push_str(", ");
                expr.push_str(a);
                expr.push_str(", false)");
            }
            let mut prm = obj([("params.$", "$.params".into()), ("steps.$", expr.into())]);
            if g < last {
                prm.push("new.$", "$.new");
            }
            let mut m = obj([("Type", "Pass".into()), ("Parameters", prm.into())]);
            link(
                &mut m,
                if g == last {
                    next.clone()
                } else {
                    Some(names[g + 1].clone())
                },
            );
            states.push((names[g].clone(), m.into()));
        }
        let picks = J::lazy(move |out| {
            out.begin_obj();
            let mut buf = [0u8; 20];
            for &i in &adding {
                let i = decimal(i as u64, &mut buf);
                out.key(&["b", i, ".$"]);
                out.string(&["$[", i, "]"]);
            }
            out.end_obj();
        });
        Merges { picks, states }
    }

    /// A step with its `when`, `foreach` and `catch`.
    fn step_fragment(&mut self, id: StepId, next: Option<Str<'a>>) -> Fragment<'a> {
        let step = self.p.step(id);
        let mut out: States<'a> = Vec::new();
        let catch = match &step.catch {
            Some(h) => match self.n.by_name.get(h.as_str()).copied() {
                Some(hid) => {
                    let failed = self.name(format!("{} (failed)", step.name), Owner::Step(id));
                    let base = format!("{h} (catching {})", step.name);
                    let (entry, hs) = self.unit(
                        hid,
                        base.into(),
                        Some(failed.clone()),
                        Some(id),
                        false,
                        None,
                    );
                    out.extend(hs);
                    out.push((
                        failed,
                        fail_state(
                            errors::STEP_FAILED,
                            format!("step {} failed; its catch handler {h} ran", step.name),
                        )
                        .into(),
                    ));
                    Some(entry)
                }
                None => None,
            },
            None => None,
        };
        let (entry, mut main) = self.unit(id, step.name.as_str().into(), next, None, true, catch);
        main.extend(out);
        Fragment {
            entry,
            states: main,
            stores: stores_outputs(step),
        }
    }

    /// `when` Choice + Task or Map (+ skip Pass), named after `base`; the
    /// Task or Map goes to `catch` on failure.
    fn unit(
        &mut self,
        id: StepId,
        base: Str<'a>,
        next: Option<Str<'a>>,
        failed: Option<StepId>,
        store: bool,
        catch: Option<Str<'a>>,
    ) -> (Str<'a>, States<'a>) {
        let step = self.p.step(id);
        let owner = Owner::Step(id);
        let run_name = self.name(base.clone(), owner);
        let loop_when = step.foreach.is_some() && when_uses_loop(step);
        let mut out: States<'a> = Vec::new();
        let mut entry = run_name.clone();
        if let Some(w) = step.when.as_ref().filter(|_| !loop_when) {
            match self.when_rule(step, w, false) {
                Some(cond::Rule::Const(true)) | None => {}
                Some(rule) => {
                    let choice = self.name(format!("{base} (when)"), owner);
                    let skip = self.name(format!("{base} (skipped)"), owner);
                    out.push((
                        choice.clone(),
                        choice_state(rule, run_name.clone(), skip.clone()).into(),
                    ));
                    let mut s = self.skip_state(id, store);
                    link(&mut s, next.clone());
                    out.push((skip, s.into()));
                    entry = choice;
                }
            }
        }
        let run = if let Some(fe) = &step.foreach {
            let items_path = match &fe.items {
                ForeachItems::Param(p) => format!("$.params.{p}"),
                ForeachItems::List(items) => {
                    let items_state = self.name(format!("{base} (items)"), owner);
                    out.push((
                        items_state.clone(),
                        obj([
                            ("Type", "Pass".into()),
                            (
                                "Result",
                                J::Arr(items.iter().map(|v| J::from(&v.to_json())).collect()),
                            ),
                            ("ResultPath", "$.foreach".into()),
                            ("Next", run_name.clone().into()),
                        ])
                        .into(),
                    ));
                    if entry == run_name {
                        entry = items_state;
                    } else if let Some((_, J::Obj(c))) =
                        out.iter_mut().find(|(n, _)| n.ends_with(" (when)"))
                    {
                        retarget(c, &run_name, items_state);
                    }
                    "$.foreach".to_string()
                }
            };
            let item_name = self.name(format!("{base} (item)"), owner);
            let mut inner: States<'a> = Vec::new();
            let mut inner_entry = item_name.clone();
            if let Some(w) = step.when.as_ref().filter(|_| loop_when) {
                match self.when_rule(step, w, true) {
                    Some(cond::Rule::Const(true)) | None => {}
                    Some(rule) => {
                        let choice = self.name(format!("{base} (item when)"), owner);
                        let skip = self.name(format!("{base} (item skipped)"), owner);
                        inner.push((
                            choice.clone(),
                            choice_state(rule, item_name.clone(), skip.clone()).into(),
                        ));
                        inner.push((skip, obj([("Type", "Succeed".into())]).into()));
                        inner_entry = choice;
                    }
                }
            }
            let task = self.task_state(step, true, failed, false, None, None);
            inner.push((item_name, task));
            let mut m = obj([
                ("Type", "Map".into()),
                ("ItemsPath", items_path.into()),
                (
                    "ItemSelector",
                    obj([
                        ("item.$", "$$.Map.Item.Value".into()),
                        ("params.$", "$.params".into()),
                        ("steps.$", "$.steps".into()),
                    ])
                    .into(),
                ),
                (
                    "ItemProcessor",
                    obj([
                        ("ProcessorConfig", obj([("Mode", "INLINE".into())]).into()),
                        ("StartAt", inner_entry.into()),
                        ("States", states_obj(inner)),
                    ])
                    .into(),
                ),
                ("MaxConcurrency", 0u64.into()),
                ("ResultPath", J::Null),
            ]);
            if let Some(c) = catch {
                m.push("Catch", catch_rule(c));
            }
            link(&mut m, next);
            m.into()
        } else {
            self.task_state(step, false, failed, store, catch, next)
        };
        // Keep the run state right after its Choice for readability.
        let at = out
            .iter()
            .position(|(n, _)| n.ends_with(" (skipped)"))
            .unwrap_or(out.len());
        out.insert(at, (run_name, run));
        (entry, out)
    }

    fn when_rule(
        &mut self,
        step: &Step,
        w: &crate::model::Cond,
        in_map: bool,
    ) -> Option<cond::Rule> {
        let n = self.n;
        let pname = self.p.name.clone();
        let sname = step.name.clone();
        let path_of = |r: &Ref| -> Result<Option<String>, String> {
            Ok(match r {
                Ref::Param(n) => Some(format!("$.params.{n}")),
                Ref::Loop(_) if in_map => Some("$.item".into()),
                Ref::Loop(_) => return Err("the loop variable is only known per item".into()),
                Ref::Output { step, output } => Some(n.output_path(self.p, step, output)?),
                Ref::FailedError => Some("$.failed.Error".into()),
                Ref::RunId => {
                    return Err("`run.id` cannot be tested in a Step Functions Choice".into());
                }
                Ref::PipelineName | Ref::StepName | Ref::FailedStep => None,
            })
        };
        let const_of = |r: &Ref| -> Option<Value> {
            match r {
                Ref::PipelineName => Some(Value::Str(pname.clone())),
                Ref::StepName => Some(Value::Str(sname.clone())),
                _ => None,
            }
        };
        match cond::rule(
            w,
            &cond::Resolver {
                path_of: &path_of,
                const_of: &const_of,
            },
        ) {
            Ok(r) => Some(r),
            Err(msg) => {
                self.diags.push(
                    Diagnostic::error(
                        codes::ASL_LIMIT,
                        step.span,
                        format!("`when` of `{}`: {msg}", step.name),
                    )
                    .label("this condition cannot be compiled to a Choice state")
                    .help("compare params or outputs with `==` / `!=`, or test a bool"),
                );
                None
            }
        }
    }

    fn skip_state(&self, id: StepId, store: bool) -> Obj<'a> {
        let step = self.p.step(id);
        let mut s = obj([("Type", "Pass".into())]);
        if store && stores_outputs(step) {
            let empty: Obj<'a> = self.n.out_keys[id.0]
                .iter()
                .map(|k| (k.clone(), J::from("")))
                .collect();
            s.push("Result", empty);
            s.push("ResultPath", format!("$.steps.{}", self.n.keys[id.0]));
        } else {
            s.push("ResultPath", J::Null);
        }
        s
    }

    /// The Task running one attempt of `step`, going to `catch` on failure
    /// and then to `next` (none: the end of its branch). A script step's
    /// Task, most of the definition, is written directly from the step when
    /// printed ([`script_task`]); what can be wrong is reported here.
    fn task_state(
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
    out.field("Resource", &t.o.activity_arn);
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

fn when_uses_loop(step: &Step) -> bool {
    fn uses(c: &crate::model::Cond) -> bool {
        use crate::model::{Cond, Operand};
        let op = |o: &Operand| matches!(o, Operand::Ref(Ref::Loop(_), _));
        match c {
            Cond::Or(a, b) | Cond::And(a, b) => uses(a) || uses(b),
            Cond::Not(a) => uses(a),
            Cond::Eq(a, b) | Cond::Ne(a, b) => op(a) || op(b),
            Cond::Truthy(a) => op(a),
        }
    }
    step.when.as_ref().is_some_and(uses)
}

/// The step writes its outputs into `$.steps` (a `foreach` step's outputs
/// are not kept).
fn stores_outputs(step: &Step) -> bool {
    !step.outputs.is_empty() && step.foreach.is_none()
}

fn choice_state<'a>(rule: cond::Rule, then: Str<'a>, otherwise: Str<'a>) -> Obj<'a> {
    let mut choice = match rule {
        cond::Rule::Json(j) => Obj::from(&j),
        // Always false: a rule that never matches keeps the state valid.
        cond::Rule::Const(_) => obj([("Variable", "$.params".into()), ("IsPresent", false.into())]),
    };
    choice.insert("Next", then);
    obj([
        ("Type", "Choice".into()),
        ("Choices", J::Arr(vec![choice.into()])),
        ("Default", otherwise.into()),
    ])
}

fn retarget<'a>(choice: &mut Obj<'a>, from: &str, to: Str<'a>) {
    if let Some(J::Arr(cs)) = choice.get_mut("Choices") {
        for c in cs {
            if let J::Obj(c) = c
                && matches!(c.get_mut("Next"), Some(J::Str(n)) if n == from)
            {
                c.insert("Next", to.clone());
            }
        }
    }
}

fn fail_state<'a>(error: &'static str, cause: String) -> Obj<'a> {
    obj([
        ("Type", "Fail".into()),
        ("Error", error.into()),
        ("Cause", cause.into()),
    ])
}

fn link<'a>(s: &mut Obj<'a>, next: Option<Str<'a>>) {
    match next {
        Some(n) => s.push("Next", n),
        None => s.push("End", true),
    }
}

/// The Catch of the state running a step with a catch handler.
fn catch_rule(handler: Str<'_>) -> J<'_> {
    J::Arr(vec![J::Obj(obj([
        ("ErrorEquals", J::Arr(vec!["States.ALL".into()])),
        ("ResultPath", "$.failed".into()),
        ("Next", handler.into()),
    ]))])
}

fn states_obj(states: States<'_>) -> J<'_> {
    J::Obj(states.into_iter().collect())
}

fn obj<'a, const N: usize>(items: [(&'static str, J<'a>); N]) -> Obj<'a> {
    items.into_iter().collect()
}
