//! Checked pipeline -> Amazon States Language (JSONPath), with the meaning of
//! LANGUAGE.md section 7.
//!
//! Shape of the state machine:
//! - The execution input is `{"params": {...}}`. `Check params` fails the
//!   execution (`topsail.MissingParam`, `topsail.BadParam`) when a required
//!   param is missing or a param has the wrong JSON type; defaults are then
//!   merged in, and the state becomes `{"params": {...}, "steps": {}}`.
//! - Each step is a Task on the activity (input: [`task::TaskInput`]); its
//!   declared outputs land in `$.steps.KEY` (KEY: the step name made
//!   JSONPath-safe, see [`Compiled::step_keys`]). `when` is a Choice whose
//!   other branch is a Pass writing empty outputs; `foreach` is an inline Map;
//!   an approval is an SQS `sendMessage.waitForTaskToken` task; `retry` is a
//!   Retrier on `States.ALL` (every failure the worker reports, and
//!   `States.Timeout`, as locally); `catch` runs a copy of the handler and
//!   then a Fail state.
//! - Every script Task has HeartbeatSeconds (the step's `heartbeat`, else
//!   [`DEFAULT_HEARTBEAT_SECONDS`] kept below its timeout) and, first among
//!   its Retriers, one on `States.HeartbeatTimeout` and
//!   `topsail.WorkerShutdown` ([`WORKER_LOST_ATTEMPTS`]): a task whose worker
//!   died or was stopped runs again on another worker, apart from the step's
//!   own `retry`, so no task is lost with its worker.
//! - The DAG becomes nested Parallel states following the series-parallel
//!   decomposition in [`sp`]; after a Parallel the outputs each branch added
//!   are picked by explicit path and merged with `States.JsonMerge` (shallow,
//!   which is enough: one key per step).
//!
//! Known differences from a local run, both from Step Functions itself: a
//! failing step stops the other branches of its Parallel at once (locally,
//! running steps finish first); and a `list` param in an approval message is
//! formatted by `States.Format` as a JSON array, not space-separated.
//!
//! The back end reads only the model; limits of Step Functions are reported
//! as diagnostics on the steps' spans. JSON objects are built in a fixed
//! insertion order (serde_json's `preserve_order`), so output is byte-stable.

mod cond;

pub mod analyse;
pub mod sp;
pub mod synth;
pub mod task;
pub mod yaml;

use std::collections::{HashMap, HashSet};

use serde_json::{Map, Value as Json, json};

use crate::diagnostics::{Diagnostic, codes};
use crate::model::{
    Action, ForeachItems, Pipeline, Ref, Step, StepId, Text, Type, Value, format_duration,
};
use crate::syntax::Span;
use sp::Tree;
use task::{TASK_INPUT_VERSION, encode_text, errors};

/// Replaced by `topsail deploy` with the real activity ARN.
pub const ACTIVITY_ARN_PLACEHOLDER: &str = "arn:aws:states:REGION:ACCOUNT:activity:topsail";
/// Replaced by `topsail deploy` with the approval queue's URL.
pub const APPROVAL_QUEUE_PLACEHOLDER: &str =
    "https://sqs.REGION.amazonaws.com/ACCOUNT/topsail-approvals";
/// The `kind` field of an approval message on the queue.
pub const APPROVAL_KIND: &str = "topsail.approval";

/// Step Functions: a state name has at most 80 characters.
pub const MAX_STATE_NAME: usize = 80;
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
}

impl Compiled {
    /// Pretty JSON with a final newline.
    pub fn to_json(&self) -> String {
        let mut s = serde_json::to_string_pretty(&self.definition)
            .expect("a serde_json::Value always serializes");
        s.push('\n');
        s
    }

    pub fn to_yaml(&self) -> String {
        yaml::to_yaml(&self.definition)
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
    let mut e = Emitter::new(p, o);
    e.check_params();
    e.check_payload();
    // The DAG of the steps that run on their own (handlers run only in catch paths).
    let members: Vec<StepId> = p
        .steps
        .iter()
        .filter(|s| !s.is_handler)
        .map(|s| s.id)
        .collect();
    let local: HashMap<StepId, usize> = members.iter().enumerate().map(|(i, s)| (*s, i)).collect();
    let succs: Vec<Vec<usize>> = members
        .iter()
        .map(|&id| {
            p.dependants(id)
                .filter_map(|d| local.get(&d).copied())
                .collect()
        })
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
    if let Some(size) = oversize(&definition) {
        let span = p.steps.last().map_or_else(Span::default, |s| s.span);
        e.diags.push(
            Diagnostic::error(
                codes::ASL_LIMIT,
                span,
                format!(
                    "the state machine definition is more than {size} bytes; Step Functions accepts at most {MAX_DEFINITION_BYTES}"
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
        .map(|s| (s.name.clone(), e.keys[s.id.0].clone()))
        .collect();
    Ok(Compiled {
        definition,
        diagnostics: e.diags,
        step_keys,
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

/// `Some(bytes)` when the compact JSON text is over [`MAX_DEFINITION_BYTES`]:
/// counted without building the text, and only up to the first byte too many
/// (a 10,000-step definition is ten times the limit).
fn oversize(v: &Json) -> Option<usize> {
    struct Count(usize);
    impl std::io::Write for Count {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0 += buf.len();
            if self.0 > MAX_DEFINITION_BYTES {
                return Err(std::io::Error::other("over the limit"));
            }
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let mut c = Count(0);
    serde_json::to_writer(&mut c, v)
        .is_err()
        .then_some(MAX_DEFINITION_BYTES)
}

fn leaves(t: &Tree, out: &mut Vec<StepId>) {
    match t {
        Tree::Leaf(i) => out.push(StepId(*i)),
        Tree::Series(c) | Tree::Parallel(c) => c.iter().for_each(|c| leaves(c, out)),
    }
}

/// A JSONPath-safe key: `-` and `.` become `_`; a clash gets `_2`, `_3`...
fn safe_keys<'a>(names: impl Iterator<Item = &'a str>) -> Vec<String> {
    let mut used = HashSet::new();
    names
        .map(|n| {
            let base: String = n
                .chars()
                .map(|c| {
                    if c.is_ascii_alphanumeric() || c == '_' {
                        c
                    } else {
                        '_'
                    }
                })
                .collect();
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

/// HeartbeatSeconds of a script step that sets no `heartbeat`: a worker that
/// dies (SIGKILL, lost machine) leaves its task to time out after this long,
/// and the task is then retried on another worker. Nothing is lost, at the
/// price of up to this delay; a step can set `heartbeat` to shorten it.
pub const DEFAULT_HEARTBEAT_SECONDS: u64 = 60;
/// Attempts given to a task whose worker was lost (`States.HeartbeatTimeout`)
/// or stopped (`topsail.WorkerShutdown`), besides the step's own `retry`.
pub const WORKER_LOST_ATTEMPTS: u32 = 10;

/// [`DEFAULT_HEARTBEAT_SECONDS`], kept below the step's timeout (Step
/// Functions needs HeartbeatSeconds < TimeoutSeconds); none for a timeout of
/// 1 s, whose expiry then stands for the lost worker.
fn default_heartbeat(step: &Step) -> Option<u64> {
    match step.timeout.map(ceil_seconds) {
        None => Some(DEFAULT_HEARTBEAT_SECONDS),
        Some(t) if t > 1 => Some(DEFAULT_HEARTBEAT_SECONDS.min(t - 1)),
        Some(_) => None,
    }
}

fn ceil_seconds(d: std::time::Duration) -> u64 {
    d.as_millis().div_ceil(1000).max(1) as u64
}

type States = Vec<(String, Map<String, Json>)>;

/// Who a state belongs to, for diagnostics on its name.
#[derive(Clone, Copy)]
enum Owner {
    Step(StepId),
    Param(usize),
    None,
}

struct Emitter<'a> {
    p: &'a Pipeline,
    o: &'a Options,
    keys: Vec<String>,
    out_keys: Vec<Vec<String>>,
    by_name: HashMap<&'a str, StepId>,
    parallels: usize,
    names: Vec<(String, Owner)>,
    diags: Vec<Diagnostic>,
}

impl<'a> Emitter<'a> {
    fn new(p: &'a Pipeline, o: &'a Options) -> Self {
        Self {
            p,
            o,
            keys: safe_keys(p.steps.iter().map(|s| s.name.as_str())),
            out_keys: p
                .steps
                .iter()
                .map(|s| safe_keys(s.outputs.iter().map(String::as_str)))
                .collect(),
            by_name: p.steps.iter().map(|s| (s.name.as_str(), s.id)).collect(),
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
        let names: Vec<String> = on
            .iter()
            .map(|s| format!("`{}`", self.p.step(*s).name))
            .collect();
        let mut list = names.join(", ");
        if more > 0 {
            list = format!("{list} and {more} more");
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

    fn name(&mut self, name: String, owner: Owner) -> String {
        self.names.push((name.clone(), owner));
        name
    }

    fn definition(&mut self, tree: Option<&Tree>) -> Json {
        let mut states: States = Vec::new();
        let start = match tree {
            Some(t) => {
                let (entry, s) = self.fragment(t, None);
                states.extend(s);
                Some(entry)
            }
            None => None,
        };
        let mut all = self.params_states(start.as_deref());
        all.extend(states);
        let mut m = Map::new();
        m.insert(
            "Comment".into(),
            json!(format!("topsail pipeline {}", self.p.name)),
        );
        m.insert("StartAt".into(), json!(all[0].0));
        m.insert("States".into(), states_obj(all));
        Json::Object(m)
    }

    fn params_states(&mut self, start: Option<&str>) -> States {
        let mut out: States = Vec::new();
        let check = self.name("Check params".into(), Owner::None);
        let no_params = self.name("No params".into(), Owner::None);
        let fill = self.name("Fill defaults".into(), Owner::None);
        let init = self.name("Init state".into(), Owner::None);
        let mut choices =
            vec![json!({"Variable": "$.params", "IsPresent": false, "Next": no_params})];
        let mut fails: States = Vec::new();
        let mut defaults = Map::new();
        for (i, prm) in self.p.params.values().enumerate() {
            let path = format!("$.params.{}", prm.name);
            if let Some(d) = &prm.default {
                defaults.insert(prm.name.clone(), d.to_json());
            } else {
                let fail = self.name(format!("Missing param {}", prm.name), Owner::Param(i));
                choices.push(json!({"Variable": path, "IsPresent": false, "Next": fail}));
                fails.push((fail, fail_state(
                    errors::MISSING_PARAM,
                    &format!(
                        "the execution input has no params.{} (a required {} param); start it with {{\"params\": {{\"{}\": ...}}}}",
                        prm.name, prm.ty, prm.name
                    ),
                )));
            }
            let is = match prm.ty {
                Type::String | Type::Duration => "IsString",
                Type::Int | Type::Float => "IsNumeric",
                Type::Bool => "IsBoolean",
                Type::List => continue,
            };
            let fail = self.name(format!("Bad param {}", prm.name), Owner::Param(i));
            choices.push(json!({
                "And": [
                    {"Variable": path, "IsPresent": true},
                    {"Variable": path, is: false},
                ],
                "Next": fail,
            }));
            fails.push((
                fail,
                fail_state(
                    errors::BAD_PARAM,
                    &format!(
                        "params.{} in the execution input is not {} {}",
                        prm.name,
                        if prm.ty == Type::Int { "an" } else { "a" },
                        prm.ty
                    ),
                ),
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
                ("Type", json!("Choice")),
                ("Choices", Json::Array(choices)),
                ("Default", json!(after_check)),
            ]),
        ));
        out.push((
            no_params,
            obj([
                ("Type", json!("Pass")),
                ("Result", json!({})),
                ("ResultPath", json!("$.params")),
                ("Next", json!(check)),
            ]),
        ));
        out.extend(fails);
        let params = if defaults.is_empty() {
            json!("$.params")
        } else {
            out.push((
                fill,
                obj([
                    ("Type", json!("Pass")),
                    ("Result", Json::Object(defaults)),
                    ("ResultPath", json!("$.defaults")),
                    ("Next", json!(init)),
                ]),
            ));
            json!("States.JsonMerge($.defaults, $.params, false)")
        };
        let mut s = obj([
            ("Type", json!("Pass")),
            ("Parameters", json!({"params.$": params, "steps": {}})),
        ]);
        link(&mut s, start);
        out.push((init, s));
        out
    }

    /// The states of a tree node, entered at the returned name, going to
    /// `next` (or ending the branch) when done.
    fn fragment(&mut self, t: &Tree, next: Option<&str>) -> (String, States) {
        match t {
            Tree::Leaf(i) => self.step_fragment(StepId(*i), next),
            Tree::Series(children) => {
                // Built back to front (each part needs the name of the next),
                // then laid out front to back.
                let mut parts: Vec<States> = Vec::with_capacity(children.len());
                let mut next = next.map(str::to_string);
                for c in children.iter().rev() {
                    let (entry, s) = self.fragment(c, next.as_deref());
                    parts.push(s);
                    next = Some(entry);
                }
                let all = parts.into_iter().rev().flatten().collect();
                (next.expect("a Series has children"), all)
            }
            Tree::Parallel(children) => {
                self.parallels += 1;
                let n = self.parallels;
                let par = self.name(format!("Parallel {n}"), Owner::None);
                let merge = self.name(format!("Merge {n}"), Owner::None);
                let mut branches = Vec::new();
                let mut picks = Map::new();
                for (i, c) in children.iter().enumerate() {
                    let (entry, s) = self.fragment(c, None);
                    // Built in place: `json!` would deep-copy the branch's states.
                    let mut b = Map::new();
                    b.insert("StartAt".into(), Json::String(entry));
                    b.insert("States".into(), states_obj(s));
                    branches.push(Json::Object(b));
                    let mut ls = Vec::new();
                    leaves(c, &mut ls);
                    for id in ls {
                        let step = self.p.step(id);
                        if !step.outputs.is_empty() && step.foreach.is_none() {
                            let key = &self.keys[id.0];
                            picks.insert(format!("{key}.$"), json!(format!("$[{i}].steps.{key}")));
                        }
                    }
                }
                let mut s = obj([
                    ("Type", json!("Parallel")),
                    ("Branches", Json::Array(branches)),
                ]);
                let mut out: States = Vec::new();
                if picks.is_empty() {
                    // No branch adds outputs: keep the input as it was.
                    s.insert("ResultPath".into(), Json::Null);
                    link(&mut s, next);
                    out.push((par.clone(), s));
                } else {
                    s.insert("ResultSelector".into(), Json::Object(picks));
                    s.insert("ResultPath".into(), json!("$.new"));
                    s.insert("Next".into(), json!(merge));
                    out.push((par.clone(), s));
                    let mut m = obj([
                        ("Type", json!("Pass")),
                        (
                            "Parameters",
                            json!({
                                "params.$": "$.params",
                                "steps.$": "States.JsonMerge($.steps, $.new, false)",
                            }),
                        ),
                    ]);
                    link(&mut m, next);
                    out.push((merge, m));
                }
                (par, out)
            }
        }
    }

    /// A step with its `when`, `foreach` and `catch`.
    fn step_fragment(&mut self, id: StepId, next: Option<&str>) -> (String, States) {
        let step = self.p.step(id);
        let mut out: States = Vec::new();
        let catch = match &step.catch {
            Some(h) => match self.by_name.get(h.as_str()).copied() {
                Some(hid) => {
                    let failed = self.name(format!("{} (failed)", step.name), Owner::Step(id));
                    let base = format!("{h} (catching {})", step.name);
                    let (entry, hs) = self.unit(hid, &base, Some(&failed), Some(id), false);
                    out.extend(hs);
                    out.push((
                        failed,
                        fail_state(
                            errors::STEP_FAILED,
                            &format!("step {} failed; its catch handler {h} ran", step.name),
                        ),
                    ));
                    Some(entry)
                }
                None => None,
            },
            None => None,
        };
        let (entry, mut main) = self.unit(id, &step.name.clone(), next, None, true);
        if let Some(handler) = catch {
            // The Catch goes on the state that runs the step (Task or Map).
            if let Some((_, s)) = main.iter_mut().find(|(n, _)| *n == step.name) {
                insert_before_next(
                    s,
                    "Catch",
                    json!([{"ErrorEquals": ["States.ALL"], "ResultPath": "$.failed", "Next": handler}]),
                );
            }
        }
        main.extend(out);
        (entry, main)
    }

    /// `when` Choice + Task or Map (+ skip Pass), named after `base`.
    fn unit(
        &mut self,
        id: StepId,
        base: &str,
        next: Option<&str>,
        failed: Option<StepId>,
        store: bool,
    ) -> (String, States) {
        let step = self.p.step(id);
        let owner = Owner::Step(id);
        let run_name = self.name(base.to_string(), owner);
        let loop_when = step.foreach.is_some() && when_uses_loop(step);
        let mut out: States = Vec::new();
        let mut entry = run_name.clone();
        if let Some(w) = step.when.as_ref().filter(|_| !loop_when) {
            match self.when_rule(step, w, false) {
                Some(cond::Rule::Const(true)) | None => {}
                Some(rule) => {
                    let choice = self.name(format!("{base} (when)"), owner);
                    let skip = self.name(format!("{base} (skipped)"), owner);
                    out.push((choice.clone(), choice_state(rule, &run_name, &skip)));
                    let mut s = self.skip_state(id, store);
                    link(&mut s, next);
                    out.push((skip.clone(), s));
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
                            ("Type", json!("Pass")),
                            (
                                "Result",
                                Json::Array(items.iter().map(Value::to_json).collect()),
                            ),
                            ("ResultPath", json!("$.foreach")),
                            ("Next", json!(run_name)),
                        ]),
                    ));
                    if entry == run_name {
                        entry = items_state;
                    } else if let Some((_, c)) =
                        out.iter_mut().find(|(n, _)| n.ends_with(" (when)"))
                    {
                        retarget(c, &run_name, &items_state);
                    }
                    "$.foreach".to_string()
                }
            };
            let item_name = self.name(format!("{base} (item)"), owner);
            let mut inner: States = Vec::new();
            let mut inner_entry = item_name.clone();
            if let Some(w) = step.when.as_ref().filter(|_| loop_when) {
                match self.when_rule(step, w, true) {
                    Some(cond::Rule::Const(true)) | None => {}
                    Some(rule) => {
                        let choice = self.name(format!("{base} (item when)"), owner);
                        let skip = self.name(format!("{base} (item skipped)"), owner);
                        inner.push((choice.clone(), choice_state(rule, &item_name, &skip)));
                        inner.push((skip, obj([("Type", json!("Succeed"))])));
                        inner_entry = choice;
                    }
                }
            }
            let mut task = self.task_state(step, true, failed, false);
            link(&mut task, None);
            inner.push((item_name, task));
            let mut m = obj([
                ("Type", json!("Map")),
                ("ItemsPath", json!(items_path)),
                (
                    "ItemSelector",
                    json!({
                        "item.$": "$$.Map.Item.Value",
                        "params.$": "$.params",
                        "steps.$": "$.steps",
                    }),
                ),
                (
                    "ItemProcessor",
                    Json::Object(obj([
                        ("ProcessorConfig", json!({"Mode": "INLINE"})),
                        ("StartAt", Json::String(inner_entry)),
                        ("States", states_obj(inner)),
                    ])),
                ),
                ("MaxConcurrency", json!(0)),
                ("ResultPath", Json::Null),
            ]);
            link(&mut m, next);
            m
        } else {
            let mut t = self.task_state(step, false, failed, store);
            link(&mut t, next);
            t
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
        let keys = &self.keys;
        let out_keys = &self.out_keys;
        let by_name = &self.by_name;
        let pname = self.p.name.clone();
        let sname = step.name.clone();
        let path_of = |r: &Ref| -> Result<Option<String>, String> {
            Ok(match r {
                Ref::Param(n) => Some(format!("$.params.{n}")),
                Ref::Loop(_) if in_map => Some("$.item".into()),
                Ref::Loop(_) => return Err("the loop variable is only known per item".into()),
                Ref::Output { step, output } => {
                    Some(output_path(by_name, keys, out_keys, self.p, step, output)?)
                }
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

    fn skip_state(&self, id: StepId, store: bool) -> Map<String, Json> {
        let step = self.p.step(id);
        let mut s = obj([("Type", json!("Pass"))]);
        if store && !step.outputs.is_empty() && step.foreach.is_none() {
            let empty: Map<String, Json> = self.out_keys[id.0]
                .iter()
                .map(|k| (k.clone(), json!("")))
                .collect();
            s.insert("Result".into(), Json::Object(empty));
            s.insert(
                "ResultPath".into(),
                json!(format!("$.steps.{}", self.keys[id.0])),
            );
        } else {
            s.insert("ResultPath".into(), Json::Null);
        }
        s
    }

    /// The Task running one attempt of `step` (no Next yet).
    fn task_state(
        &mut self,
        step: &Step,
        in_map: bool,
        failed: Option<StepId>,
        store: bool,
    ) -> Map<String, Json> {
        let mut texts: Vec<&Text> = Vec::new();
        let mut s = Map::new();
        s.insert("Type".into(), json!("Task"));
        match &step.action {
            Action::Script(script) => {
                texts.push(&script.run);
                texts.extend(script.image.iter());
                texts.extend(step.env.values());
                texts.extend(step.workdir.iter());
                s.insert("Resource".into(), json!(self.o.activity_arn));
                let mut prm = Map::new();
                prm.insert("version".into(), json!(TASK_INPUT_VERSION));
                prm.insert("pipeline".into(), json!(self.p.name));
                prm.insert("run_id.$".into(), json!("$$.Execution.Name"));
                prm.insert("step".into(), json!(step.name));
                prm.insert(
                    "image".into(),
                    script
                        .image
                        .as_ref()
                        .map(encode_text)
                        .map_or(Json::Null, Json::String),
                );
                prm.insert(
                    "shell".into(),
                    script.shell.clone().map_or(Json::Null, Json::String),
                );
                prm.insert("script".into(), json!(encode_text(&script.run)));
                prm.insert(
                    "env".into(),
                    Json::Object(
                        step.env
                            .iter()
                            .map(|(k, v)| (k.clone(), json!(encode_text(v))))
                            .collect(),
                    ),
                );
                prm.insert(
                    "workdir".into(),
                    step.workdir
                        .as_ref()
                        .map(encode_text)
                        .map_or(Json::Null, Json::String),
                );
                prm.insert(
                    "outputs".into(),
                    Json::Array(
                        step.outputs
                            .iter()
                            .zip(&self.out_keys[step.id.0])
                            .map(|(n, k)| json!({"name": n, "key": k}))
                            .collect(),
                    ),
                );
                prm.insert("secrets".into(), json!(step.secrets));
                prm.insert(
                    "timeout_seconds".into(),
                    step.timeout.map_or(Json::Null, |t| json!(ceil_seconds(t))),
                );
                if let Some(hb) = step
                    .heartbeat
                    .map(ceil_seconds)
                    .or_else(|| default_heartbeat(step))
                {
                    prm.insert("heartbeat_seconds".into(), json!(hb));
                }
                prm.insert(
                    "loop_var".into(),
                    step.foreach.as_ref().map_or(Json::Null, |f| json!(f.var)),
                );
                let mut values = Map::new();
                values.insert("params.$".into(), json!("$.params"));
                values.insert(
                    "steps".into(),
                    Json::Object(self.needed_outputs(step, &texts)),
                );
                if in_map {
                    values.insert("item.$".into(), json!("$.item"));
                }
                if let Some(f) = failed {
                    values.insert(
                        "failed".into(),
                        json!({"step": self.p.step(f).name, "error.$": "$.failed.Error"}),
                    );
                }
                prm.insert("values".into(), Json::Object(values));
                s.insert("Parameters".into(), Json::Object(prm));
            }
            Action::Approval { message } => {
                s.insert(
                    "Resource".into(),
                    json!("arn:aws:states:::sqs:sendMessage.waitForTaskToken"),
                );
                let mut body = Map::new();
                body.insert("version".into(), json!(TASK_INPUT_VERSION));
                body.insert("kind".into(), json!(APPROVAL_KIND));
                body.insert("pipeline".into(), json!(self.p.name));
                body.insert("execution.$".into(), json!("$$.Execution.Id"));
                body.insert("run_id.$".into(), json!("$$.Execution.Name"));
                body.insert("step".into(), json!(step.name));
                match self.format_message(step, message, in_map, failed) {
                    Ok(Json::String(lit)) if message.refs().next().is_none() => {
                        body.insert("message".into(), json!(lit));
                    }
                    Ok(expr) => {
                        body.insert("message.$".into(), expr);
                    }
                    Err(msg) => self.diags.push(
                        Diagnostic::error(
                            codes::ASL_LIMIT,
                            step.span,
                            format!("approval message of `{}`: {msg}", step.name),
                        )
                        .label("this message cannot be built in Step Functions"),
                    ),
                }
                body.insert("token.$".into(), json!("$$.Task.Token"));
                s.insert(
                    "Parameters".into(),
                    Json::Object(obj([
                        ("QueueUrl", json!(self.o.approval_queue_url)),
                        ("MessageBody", Json::Object(body)),
                    ])),
                );
            }
        }
        if store
            && !step.outputs.is_empty()
            && step.foreach.is_none()
            && matches!(step.action, Action::Script(_))
        {
            let sel: Map<String, Json> = self.out_keys[step.id.0]
                .iter()
                .map(|k| (format!("{k}.$"), json!(format!("$.outputs.{k}"))))
                .collect();
            s.insert("ResultSelector".into(), Json::Object(sel));
            s.insert(
                "ResultPath".into(),
                json!(format!("$.steps.{}", self.keys[step.id.0])),
            );
        } else {
            s.insert("ResultPath".into(), Json::Null);
        }
        if let Some(t) = step.timeout {
            s.insert("TimeoutSeconds".into(), json!(ceil_seconds(t)));
        }
        let script = matches!(step.action, Action::Script(_));
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
            s.insert("HeartbeatSeconds".into(), json!(hb));
        } else if let Some(hb) = default_heartbeat(step).filter(|_| script) {
            s.insert("HeartbeatSeconds".into(), json!(hb));
        }
        if script {
            // A task whose worker died (heartbeat timed out) or was stopped
            // is not the step's failure: run it again on another worker,
            // before and apart from the step's own `retry`.
            s.insert(
                "Retry".into(),
                json!([{
                    "ErrorEquals": [errors::HEARTBEAT_TIMEOUT, errors::WORKER_SHUTDOWN],
                    "MaxAttempts": WORKER_LOST_ATTEMPTS,
                    "IntervalSeconds": 1,
                    "BackoffRate": 1.5,
                }]),
            );
        }
        if let Some(r) = &step.retry {
            if r.backoff < 1.0 || r.backoff.is_nan() {
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
            let rule = json!({
                    "ErrorEquals": ["States.ALL"],
                    "MaxAttempts": r.max_attempts,
                    "IntervalSeconds": ceil_seconds(r.interval),
                    "BackoffRate": r.backoff,
            });
            match s.get_mut("Retry") {
                Some(Json::Array(rules)) => rules.push(rule),
                _ => {
                    s.insert("Retry".into(), json!([rule]));
                }
            }
        }
        s
    }

    /// `{"build": {"VERSION.$": "$.steps.build.VERSION"}}` for every output the texts use.
    fn needed_outputs(&mut self, step: &Step, texts: &[&Text]) -> Map<String, Json> {
        let mut m: Map<String, Json> = Map::new();
        for t in texts {
            for r in t.refs() {
                if let Ref::Output { step: s, output } = r {
                    match output_path(&self.by_name, &self.keys, &self.out_keys, self.p, s, output)
                    {
                        Ok(path) => {
                            let entry = m.entry(s.clone()).or_insert_with(|| json!({}));
                            if let Json::Object(o) = entry {
                                o.insert(format!("{output}.$"), json!(path));
                            }
                        }
                        Err(msg) => {
                            self.diags
                                .push(Diagnostic::error(codes::ASL_LIMIT, step.span, msg));
                        }
                    }
                }
            }
        }
        m
    }

    /// The approval message: a literal, or a `States.Format(...)` expression.
    fn format_message(
        &self,
        step: &Step,
        text: &Text,
        in_map: bool,
        failed: Option<StepId>,
    ) -> Result<Json, String> {
        if let Some(lit) = text.as_literal() {
            return Ok(json!(lit));
        }
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
                crate::model::Piece::Lit(s) => template.push_str(&esc(s)),
                crate::model::Piece::Ref(r) => {
                    let path = match r {
                        Ref::Param(n) => format!("$.params.{n}"),
                        Ref::Loop(_) if in_map => "$.item".into(),
                        Ref::Loop(_) => return Err("the loop variable is unknown here".into()),
                        Ref::Output { step: s, output } => output_path(
                            &self.by_name,
                            &self.keys,
                            &self.out_keys,
                            self.p,
                            s,
                            output,
                        )?,
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
                            let f = failed
                                .map(|f| self.p.step(f).name.clone())
                                .ok_or("`failed` is only known in a catch handler")?;
                            template.push_str(&esc(&f));
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
        Ok(json!(expr))
    }
}

fn output_path(
    by_name: &HashMap<&str, StepId>,
    keys: &[String],
    out_keys: &[Vec<String>],
    p: &Pipeline,
    step: &str,
    output: &str,
) -> Result<String, String> {
    let id = by_name
        .get(step)
        .ok_or_else(|| format!("unknown step `{step}`"))?;
    let i = p
        .step(*id)
        .outputs
        .iter()
        .position(|o| o == output)
        .ok_or_else(|| format!("`{step}` declares no output `{output}`"))?;
    Ok(format!("$.steps.{}.{}", keys[id.0], out_keys[id.0][i]))
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

fn choice_state(rule: cond::Rule, then: &str, otherwise: &str) -> Map<String, Json> {
    let mut choice = match rule {
        cond::Rule::Json(j) => j,
        // Always false: a rule that never matches keeps the state valid.
        cond::Rule::Const(_) => {
            let mut m = Map::new();
            m.insert("Variable".into(), json!("$.params"));
            m.insert("IsPresent".into(), json!(false));
            m
        }
    };
    choice.insert("Next".into(), json!(then));
    obj([
        ("Type", json!("Choice")),
        ("Choices", Json::Array(vec![Json::Object(choice)])),
        ("Default", json!(otherwise)),
    ])
}

fn retarget(choice: &mut Map<String, Json>, from: &str, to: &str) {
    if let Some(Json::Array(cs)) = choice.get_mut("Choices") {
        for c in cs {
            if c.get("Next").and_then(Json::as_str) == Some(from) {
                c["Next"] = json!(to);
            }
        }
    }
}

fn fail_state(error: &str, cause: &str) -> Map<String, Json> {
    obj([
        ("Type", json!("Fail")),
        ("Error", json!(error)),
        ("Cause", json!(cause)),
    ])
}

fn link(s: &mut Map<String, Json>, next: Option<&str>) {
    match next {
        Some(n) => s.insert("Next".into(), json!(n)),
        None => s.insert("End".into(), json!(true)),
    };
}

/// Insert `key` before `Next`/`End` so every state reads in the same order.
fn insert_before_next(s: &mut Map<String, Json>, key: &str, value: Json) {
    let tail: Vec<(String, Json)> = ["Next", "End"]
        .iter()
        .filter_map(|k| s.shift_remove(*k).map(|v| ((*k).to_string(), v)))
        .collect();
    s.insert(key.into(), value);
    s.extend(tail);
}

fn states_obj(states: States) -> Json {
    Json::Object(
        states
            .into_iter()
            .map(|(n, s)| (n, Json::Object(s)))
            .collect(),
    )
}

fn obj<const N: usize>(items: [(&str, Json); N]) -> Map<String, Json> {
    items.into_iter().map(|(k, v)| (k.to_string(), v)).collect()
}
