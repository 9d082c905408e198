//! A collapsed workflow -> AST. States become steps chained by `Next`; their
//! `variables` become `env` whose values are params (the workflow's
//! `variables`) or outputs of the step whose `ResultPath` a `$workflow.RP.KEY`
//! lookup names; `OnErrorContext` becomes `catch` into one handler step that
//! runs the other contexts' workflow state by state.

use std::collections::{HashMap, HashSet};

use indexmap::IndexMap;

use super::executor::{self, ArgValue, Word};
use super::script::{self, HandlerState, HandlerValue, StepOutputs, WAIT_GROUP_ENV};
use super::tree::{self, Kind, Node};
use crate::diagnostics::{Diagnostic, codes, suggest};
use crate::model::text::{is_env_name, is_name};
use crate::source::Span;
use crate::syntax::ast::{
    self, Directive, DirectiveKind, EnvVar, Ident, Interp, Item, Part, Ref, Value, ValueKind,
};

pub(super) struct Input<'a> {
    /// `deployment_spec` as written (not collapsed): handlers collapse it
    /// again with their own contexts.
    pub ds: &'a Node,
    pub ds_key: Span,
    pub contexts: &'a [String],
    /// The file's stem, for the pipeline's name.
    pub name: &'a str,
    pub whole: Span,
}

const WORKFLOW_KEYS: &[&str] = &["variables", "StartAt", "States", "image"];
const STATE_KEYS: &[&str] = &[
    "Type",
    "scriptString",
    "variables",
    "ResultPath",
    "Next",
    "End",
    "timeoutMillis",
    "OnErrorContext",
    "image",
    "Parameters",
];

/// Keys the old runner read nowhere, with why that matters and what to do.
fn ignored(key: &str) -> Option<(&'static str, &'static str)> {
    Some(match key {
        "OnError" => (
            "the old runner never read it: a failure did not go to this state",
            "use `OnErrorContext: [CONTEXT]` to run another context's workflow on failure",
        ),
        "outputVars" => (
            "the old runner never read it: outputs come from the `.type` files a script writes",
            "remove it; later states read outputs as `$workflow.RESULTPATH.KEY`",
        ),
        "RoleArn" => (
            "the old runner never read it",
            "Step Functions roles are set when deploying (`topsail deploy`)",
        ),
        "Resource" | "Comment" | "Retry" | "Catch" | "InputPath" | "OutputPath" | "Result"
        | "TimeoutSeconds" | "HeartbeatSeconds" => (
            "the old runner never read it",
            "remove it, or write the pipeline in `.topsail` to use the new directives",
        ),
        _ => return None,
    })
}

#[derive(Clone)]
struct Field<T> {
    value: T,
    key: Span,
    span: Span,
}

enum VarValue {
    /// `$workflow.a.b` or `${workflow.a.b}`: the path after `workflow`.
    Lookup(Vec<String>),
    Literal(String),
}

struct Var {
    name: Ident,
    value: VarValue,
    value_span: Span,
    span: Span,
}

/// What a state is, by its `Type` (which the old runner barely read).
#[derive(Clone, Copy, PartialEq, Eq)]
enum StateKind {
    /// `Task`, `Pass` and any other type: the state runs its script.
    Task,
    /// `Type: PASS` with `End`: the old runner ended the workflow there,
    /// without running the state.
    EndHere,
    /// `Type: Manual_Approval` (the executor dialect): an approval gate.
    Approval,
}

struct State {
    name: String,
    key: Span,
    span: Span,
    kind: StateKind,
    /// The executor dialect: `Parameters` naming a `step_name`.
    tool: Option<super::executor::Tool>,
    script: Option<Field<String>>,
    vars: Vec<Var>,
    vars_key: Option<Span>,
    result_path: Option<Field<String>>,
    next: Option<Field<String>>,
    end: bool,
    /// `timeoutMillis` as written: kept as a comment, never enforced.
    timeout: Option<Field<String>>,
    on_error: Option<Field<Vec<String>>>,
    image: Option<Field<String>>,
}

struct Workflow {
    variables: Vec<(Ident, Node)>,
    states: Vec<State>,
    image: Option<Field<String>>,
}

/// Every lookup of a chain, resolved (see [`Lowerer::bind`]).
struct Bound {
    /// Per state, per env var.
    vars: Vec<Vec<Binding>>,
    /// Per state, per tool argument (literal ones are unused).
    args: Vec<Vec<Binding>>,
    /// Per state, the keys it declares as outputs.
    outputs: Vec<Vec<String>>,
    /// Per state, the earlier state with the same `ResultPath`.
    prev: Vec<Option<usize>>,
}

/// How a state's env var gets its value.
enum Binding {
    Param(String),
    /// An output of the state at this position of the chain.
    Output(usize, String),
    Literal(String),
}

struct Lowerer<'a> {
    input: &'a Input<'a>,
    diags: Vec<Diagnostic>,
    params: IndexMap<String, (String, ast::Param)>,
    steps: Vec<ast::Step>,
    handler_steps: Vec<ast::Step>,
    step_names: HashSet<String>,
    handlers: HashMap<Vec<String>, String>,
    /// Context lists whose handler is being built (a handler workflow that
    /// fails into itself would loop).
    building: Vec<Vec<String>>,
    /// The variables of the workflows that ran before the one being read
    /// (the old runner kept every workflow's variables in its payload).
    outer_vars: Vec<(Ident, Node)>,
    /// `timeoutMillis` kept as comments for `convert`.
    comments: Vec<ast::Comment>,
}

pub(super) fn lower(input: &Input<'_>) -> (Option<ast::Module>, Vec<Diagnostic>) {
    let mut l = Lowerer {
        input,
        diags: Vec::new(),
        params: IndexMap::new(),
        steps: Vec::new(),
        handler_steps: Vec::new(),
        step_names: HashSet::new(),
        handlers: HashMap::new(),
        building: Vec::new(),
        outer_vars: Vec::new(),
        comments: Vec::new(),
    };
    l.check_contexts();
    let mut items = vec![Item::Pipeline(Ident {
        name: slug(input.name),
        span: input.ds_key,
    })];
    if let Some(wf_node) = l.select(input.contexts, input.ds_key)
        && let Some(wf) = l.read_workflow(&wf_node)
    {
        if let Some(image) = &wf.image {
            items.push(Item::Image(Interp::literal(&image.value, image.span)));
        }
        l.lower_main(&wf);
    }
    items.extend(l.params.values().map(|(_, p)| Item::Param(p.clone())));
    items.extend(l.steps.drain(..).map(Item::Step));
    // Handlers after the steps they serve, as a person would write them.
    items.extend(l.handler_steps.drain(..).map(Item::Step));
    let mut diags = l.diags;
    let comments = l.comments;
    // A node can be read more than once (a handler collapses the same
    // states again): report each problem once.
    let mut seen = HashSet::new();
    diags.retain(|d| seen.insert((d.code, d.span, d.message.clone())));
    (
        Some(ast::Module {
            items,
            comments,
            span: input.whole,
        }),
        diags,
    )
}

impl Lowerer<'_> {
    /// A context that is no key anywhere in `deployment_spec` selects nothing:
    /// most likely a typo.
    fn check_contexts(&mut self) {
        let mut keys = Vec::new();
        collect_keys(self.input.ds, &mut keys);
        for c in self.input.contexts {
            if !keys.contains(c) {
                let mut d = Diagnostic::warning(
                    codes::LEGACY,
                    self.input.ds_key,
                    format!("context `{c}` selects nothing in this manifest"),
                )
                .label("no map under this key has a key by that name");
                if let Some(s) = suggest(c, keys.iter().map(String::as_str)) {
                    d = d.help(format!("did you mean `--context {s}`?"));
                } else {
                    d = d.help("contexts are keys of maps anywhere under `deployment_spec`");
                }
                self.diags.push(d);
            }
        }
    }

    /// `deployment_spec` collapsed with `contexts`, when that is a workflow.
    fn select(&mut self, contexts: &[String], at: Span) -> Option<Node> {
        let collapsed = tree::collapse(self.input.ds, contexts);
        let Some(entries) = collapsed.as_map() else {
            self.diags.push(
                Diagnostic::error(
                    codes::LEGACY,
                    collapsed.span,
                    format!("`deployment_spec` is {}", collapsed.type_name()),
                )
                .label("expected a workflow, or a map from context name to workflow")
                .help("a workflow has `StartAt` and `States`"),
            );
            return None;
        };
        if collapsed.get("States").is_some() || collapsed.get("StartAt").is_some() {
            return Some(collapsed);
        }
        if let Some((key, _)) = collapsed.get("cloud_formation") {
            // workflow-manager.pl made a CloudFormation stack of it: no
            // context selects a workflow, so `--context` is no help.
            self.diags.push(
                Diagnostic::error(
                    codes::LEGACY,
                    key.span,
                    "this `deployment_spec` is a CloudFormation template, not a workflow",
                )
                .label("the old `workflow-manager.pl` deployed this as a stack")
                .help("deploy the template with CloudFormation (e.g. `aws cloudformation deploy`); topsail runs manifests whose `deployment_spec` has `StartAt` and `States`"),
            );
            return None;
        }
        let names: Vec<String> = entries.iter().filter_map(|(k, _)| k.key_text()).collect();
        let list = names
            .iter()
            .map(|n| format!("`{n}`"))
            .collect::<Vec<_>>()
            .join(", ");
        let message = if contexts.is_empty() {
            "this manifest holds one workflow per context, and no context is given".to_string()
        } else {
            format!("no workflow for the contexts [{}]", contexts.join(", "))
        };
        let help = if at == self.input.ds_key {
            format!("pass `--context NAME` with one of {list}")
        } else {
            format!("name one of {list}")
        };
        self.diags.push(
            Diagnostic::error(codes::LEGACY, at, message)
                .label("no workflow selected")
                .help(help),
        );
        None
    }

    fn unknown_key(&mut self, key: &Node, known: &[&str], what: &str) {
        let name = key.key_text().unwrap_or_default();
        if let Some((why, help)) = ignored(&name) {
            self.diags.push(
                Diagnostic::warning(codes::LEGACY, key.span, format!("`{name}` is ignored"))
                    .label(why)
                    .help(help),
            );
            return;
        }
        let mut d = Diagnostic::warning(
            codes::LEGACY,
            key.span,
            format!("unknown key `{name}` in {what} is ignored"),
        )
        .label("the old runner never read it");
        d = match suggest(&name, known.iter().copied()) {
            Some(s) => d.help(format!("did you mean `{s}`?")),
            None => d.help(format!("the keys of {what} are {}", known.join(", "))),
        };
        self.diags.push(d);
    }

    fn expect_str(&mut self, key: &Node, value: &Node) -> Option<Field<String>> {
        let text = match &value.kind {
            Kind::Str(s) => Some(s.clone()),
            Kind::Int(_) | Kind::Float(_) => value.scalar_text(),
            _ => None,
        };
        let Some(text) = text else {
            self.diags.push(
                Diagnostic::error(
                    codes::LEGACY,
                    value.span,
                    format!(
                        "`{}` must be a string, not {}",
                        key.key_text().unwrap_or_default(),
                        value.type_name()
                    ),
                )
                .label("expected a string")
                .help("a map here usually means a context that is not active: check `--context`"),
            );
            return None;
        };
        Some(Field {
            value: text,
            key: key.span,
            span: value.span,
        })
    }

    fn read_workflow(&mut self, node: &Node) -> Option<Workflow> {
        let mut wf = Workflow {
            variables: Vec::new(),
            states: Vec::new(),
            image: None,
        };
        let mut start = None;
        let mut states_node = None;
        for (k, v) in node.as_map().unwrap_or_default() {
            match k.key_text().unwrap_or_default().as_str() {
                "variables" => match v.as_map() {
                    Some(entries) => {
                        for (vk, vv) in entries {
                            let name = vk.key_text().unwrap_or_default();
                            if !is_name(&name) {
                                self.diags.push(
                                    Diagnostic::error(
                                        codes::BAD_NAME,
                                        vk.span,
                                        format!("workflow variable `{name}` cannot be a param name"),
                                    )
                                    .label("not a name")
                                    .help("names are letters, digits, `_` and `-`, starting with a letter or `_`"),
                                );
                                continue;
                            }
                            wf.variables.push((
                                Ident {
                                    name,
                                    span: vk.span,
                                },
                                vv.clone(),
                            ));
                        }
                    }
                    None => self.shape(v, "`variables` of a workflow", "a map from name to value"),
                },
                "StartAt" => start = self.expect_str(k, v),
                "States" => states_node = Some((k.span, v)),
                "image" => wf.image = self.expect_str(k, v),
                _ => self.unknown_key(k, WORKFLOW_KEYS, "a workflow"),
            }
        }
        let Some((states_key, states)) = states_node else {
            self.diags.push(
                Diagnostic::error(codes::LEGACY, node.span, "this workflow has no `States`")
                    .label("workflow without states")
                    .help("add `States:` with one entry per state"),
            );
            return None;
        };
        let Some(entries) = states.as_map() else {
            self.shape(states, "`States`", "a map from state name to state");
            return None;
        };
        for (k, v) in entries {
            if let Some(s) = self.read_state(k, v) {
                wf.states.push(s);
            }
        }
        let Some(start) = start else {
            self.diags.push(
                Diagnostic::error(codes::LEGACY, states_key, "this workflow has no `StartAt`")
                    .label("where does it start?")
                    .help("add `StartAt: \"STATE NAME\"`"),
            );
            return None;
        };
        // Put the start state first: chain() walks from index 0.
        let Some(i) = wf.states.iter().position(|s| s.name == start.value) else {
            self.unknown_state(&start.value, start.span, &wf);
            return None;
        };
        let first = wf.states.remove(i);
        wf.states.insert(0, first);
        Some(wf)
    }

    fn shape(&mut self, node: &Node, what: &str, expected: &str) {
        self.diags.push(
            Diagnostic::error(
                codes::LEGACY,
                node.span,
                format!("{what} must be {expected}, not {}", node.type_name()),
            )
            .label(format!("expected {expected}"))
            .help("see the manifests' format in the `topsail legacy` docs (issue 7)"),
        );
    }

    fn unknown_state(&mut self, name: &str, span: Span, wf: &Workflow) {
        let mut d = Diagnostic::error(
            codes::UNKNOWN_STEP,
            span,
            format!("there is no state `{name}`"),
        )
        .label("unknown state");
        d = match suggest(name, wf.states.iter().map(|s| s.name.as_str())) {
            Some(s) => d.help(format!("did you mean `{s}`?")),
            None => d.help(format!(
                "the states are {}",
                wf.states
                    .iter()
                    .map(|s| format!("`{}`", s.name))
                    .collect::<Vec<_>>()
                    .join(", ")
            )),
        };
        self.diags.push(d);
    }

    fn read_state(&mut self, key: &Node, node: &Node) -> Option<State> {
        let name = key.key_text().unwrap_or_default();
        let Some(entries) = node.as_map() else {
            self.shape(node, &format!("state `{name}`"), "a map");
            return None;
        };
        let mut s = State {
            name,
            key: key.span,
            span: key.span.to(node.span),
            kind: StateKind::Task,
            tool: None,
            script: None,
            vars: Vec::new(),
            vars_key: None,
            result_path: None,
            next: None,
            end: false,
            timeout: None,
            on_error: None,
            image: None,
        };
        for (k, v) in entries {
            match k.key_text().unwrap_or_default().as_str() {
                "Type" => {
                    if let Some(t) = self.expect_str(k, v) {
                        s.kind = self.state_kind(&t);
                    }
                }
                "Parameters" => s.tool = executor::read(&mut self.diags, k, v),
                "scriptString" => s.script = self.expect_str(k, v),
                "variables" => {
                    s.vars_key = Some(k.span);
                    self.read_vars(v, &mut s.vars);
                }
                "ResultPath" => {
                    s.result_path = self.expect_str(k, v);
                    if let Some(rp) = &s.result_path
                        && (rp.value.is_empty()
                            || rp.value.contains('.')
                            || rp.value.starts_with('$'))
                    {
                        self.diags.push(
                            Diagnostic::warning(
                                codes::LEGACY,
                                rp.span,
                                format!("`ResultPath` `{}` is not a plain key", rp.value),
                            )
                            .label("no lookup can read it: `$workflow.A.B` splits at `.`, as in the old runner")
                            .help("write a plain key such as `ResultPath: build`, read as `$workflow.build.KEY`"),
                        );
                        s.result_path = None;
                    }
                }
                "Next" => s.next = self.expect_str(k, v),
                "End" => s.end = self.read_end(v),
                "timeoutMillis" => {
                    // Never enforced: the old runner did not read it, and
                    // manifests set 30000 on states that run far longer.
                    self.diags.push(
                        Diagnostic::warning(
                            codes::LEGACY,
                            k.span.to(v.span),
                            "`timeoutMillis` is not enforced",
                        )
                        .label("the old runner never read it, and neither does topsail for a manifest")
                        .help("`convert` keeps it as a comment; write `timeout` in the converted file to enforce one"),
                    );
                    s.timeout = Some(Field {
                        value: v.scalar_text().unwrap_or_default(),
                        key: k.span,
                        span: v.span,
                    });
                }
                "OnErrorContext" => {
                    let list = match &v.kind {
                        Kind::Str(c) => Some(vec![c.clone()]),
                        Kind::Seq(items) => items
                            .iter()
                            .map(|i| i.as_str().map(str::to_string))
                            .collect(),
                        _ => None,
                    };
                    match list {
                        Some(value) if !value.is_empty() => {
                            s.on_error = Some(Field {
                                value,
                                key: k.span,
                                span: v.span,
                            });
                        }
                        _ => self.shape(v, "`OnErrorContext`", "a list of context names"),
                    }
                }
                "image" => s.image = self.expect_str(k, v),
                _ => self.unknown_key(k, STATE_KEYS, "a state"),
            }
        }
        if s.kind == StateKind::EndHere && !s.end {
            s.kind = StateKind::Task;
        }
        if s.next.is_some() && s.end {
            self.diags.push(
                Diagnostic::warning(
                    codes::LEGACY,
                    s.key,
                    format!("state `{}` has both `Next` and `End`", s.name),
                )
                .label("the old runner followed `Next`")
                .help("remove `End: true`, or `Next`"),
            );
            s.end = false;
        }
        Some(s)
    }

    /// A state's `Type`: the old runner only told `PASS` (with `End`) apart.
    fn state_kind(&mut self, t: &Field<String>) -> StateKind {
        match t.value.as_str() {
            "Task" | "Pass" => StateKind::Task,
            "Manual_Approval" => StateKind::Approval,
            "PASS" => {
                self.diags.push(
                    Diagnostic::warning(codes::LEGACY, t.span, "`Type: PASS` ends the workflow here when the state has `End`")
                        .label("with `End`, the old runner stopped before running this state; without, it ran it as a task")
                        .help("write `Type: Pass` for a state that runs, or remove the state"),
                );
                StateKind::EndHere
            }
            other => {
                self.diags.push(
                    Diagnostic::warning(
                        codes::LEGACY,
                        t.span,
                        format!("state type `{other}` runs as a task"),
                    )
                    .label("the old runner never checked `Type`")
                    .help("write `Type: Task`, `Type: Pass` or `Type: Manual_Approval`"),
                );
                StateKind::Task
            }
        }
    }

    /// `End`: the old runner ended on any value that is not null.
    fn read_end(&mut self, v: &Node) -> bool {
        match v.kind {
            Kind::Bool(true) => true,
            // Not an end (`defined` is false): without `Next` that is the one
            // "neither `Next` nor `End`" error, not a second diagnostic here.
            Kind::Null => false,
            _ => {
                let text = v.scalar_text().unwrap_or_else(|| v.type_name().to_string());
                self.diags.push(
                    Diagnostic::warning(
                        codes::LEGACY,
                        v.span,
                        format!("`End: {text}` ends the workflow"),
                    )
                    .label("the old runner ended on any `End` value")
                    .help("write `End: true`"),
                );
                true
            }
        }
    }

    fn read_vars(&mut self, node: &Node, out: &mut Vec<Var>) {
        let Kind::Seq(items) = &node.kind else {
            self.shape(node, "`variables` of a state", "a list of `{name, value}`");
            return;
        };
        for item in items {
            let Some(entries) = item.as_map() else {
                self.shape(
                    item,
                    "a state variable",
                    "a map `{name: NAME, value: VALUE}`",
                );
                continue;
            };
            let mut name = None;
            let mut value = None;
            for (k, v) in entries {
                match k.key_text().unwrap_or_default().as_str() {
                    "name" => name = self.expect_str(k, v),
                    "value" => value = Some(v),
                    _ => self.unknown_key(k, &["name", "value"], "a state variable"),
                }
            }
            let Some(name) = name else {
                self.diags.push(
                    Diagnostic::error(codes::LEGACY, item.span, "a state variable without `name`")
                        .label("no name")
                        .help("write `{name: NAME, value: VALUE}`; NAME becomes an env var"),
                );
                continue;
            };
            if !is_env_name(&name.value) {
                self.diags.push(
                    Diagnostic::error(
                        codes::BAD_NAME,
                        name.span,
                        format!("`{}` cannot be an env var name", name.value),
                    )
                    .label("not an env var name")
                    .help("env var names are letters, digits and `_`, not starting with a digit"),
                );
                continue;
            }
            let (value, value_span) = match value {
                None => (VarValue::Literal(String::new()), item.span),
                Some(v) => {
                    let text = v.scalar_text().unwrap_or_else(|| v.to_json().to_string());
                    let lookup = text
                        .strip_prefix("${workflow.")
                        .and_then(|r| r.strip_suffix('}'))
                        .or_else(|| text.strip_prefix("$workflow."));
                    match lookup {
                        Some(path) if matches!(v.kind, Kind::Str(_)) => {
                            self.old_lookup_reading(path, v.span);
                            (
                                VarValue::Lookup(path.split('.').map(str::to_string).collect()),
                                v.span,
                            )
                        }
                        _ => {
                            if matches!(v.kind, Kind::Str(_)) && text.starts_with('$') {
                                self.diags.push(
                                    Diagnostic::warning(
                                        codes::LEGACY,
                                        v.span,
                                        format!("`{text}` is passed as it is written"),
                                    )
                                    .label("the old runner read a value starting with `$` as a lookup, and passed this one empty")
                                    .help("lookups are `$workflow.NAME` or `$workflow.RESULTPATH.KEY`"),
                                );
                            }
                            (VarValue::Literal(text), v.span)
                        }
                    }
                }
            };
            out.push(Var {
                name: Ident {
                    name: name.value,
                    span: name.span,
                },
                value,
                value_span,
                span: item.span,
            });
        }
    }

    /// The old runner matched lookups with `[a-zA-Z._]+`: a name with a digit
    /// or `-` was cut there, and read another key (or nothing).
    fn old_lookup_reading(&mut self, path: &str, span: Span) {
        let cut = path
            .find(|c: char| !(c.is_ascii_alphabetic() || c == '.' || c == '_'))
            .map(|i| &path[..i]);
        if let Some(cut) = cut {
            self.diags.push(
                Diagnostic::warning(
                    codes::LEGACY,
                    span,
                    format!("`$workflow.{path}` is read whole"),
                )
                .label(format!(
                    "the old runner read only `$workflow.{cut}` (letters, `.` and `_`)"
                ))
                .help("nothing to change: topsail reads the name as written"),
            );
        }
    }

    /// The states that run, in order: from `StartAt` along `Next`. Reports
    /// unknown names, loops, dead ends and states that never run.
    fn chain(&mut self, wf: &Workflow) -> Vec<usize> {
        let mut order: Vec<usize> = Vec::new();
        let errors_before = self.diags.iter().filter(|d| d.is_error()).count();
        let mut at = 0;
        loop {
            order.push(at);
            let s = &wf.states[at];
            let Some(next) = &s.next else {
                if !s.end {
                    self.diags.push(
                        Diagnostic::error(
                            codes::LEGACY,
                            s.key,
                            format!("state `{}` has neither `Next` nor `End`", s.name),
                        )
                        .label("the old runner ran this state again and again")
                        .help("add `End: true`, or `Next: \"STATE\"`"),
                    );
                }
                break;
            };
            let Some(n) = wf.states.iter().position(|x| x.name == next.value) else {
                self.unknown_state(&next.value, next.span, wf);
                break;
            };
            if order.contains(&n) {
                self.diags.push(
                    Diagnostic::error(
                        codes::CYCLE,
                        next.span,
                        format!("`Next` goes back to `{}`, which already ran", next.value),
                    )
                    .label("a loop")
                    .secondary(wf.states[n].key, "this state")
                    .help("a manifest's states run once each, in a chain"),
                );
                break;
            }
            at = n;
        }
        // After a broken chain, "never runs" would only repeat that error.
        let broken = self.diags.iter().filter(|d| d.is_error()).count() > errors_before;
        for (i, s) in wf.states.iter().enumerate() {
            if !broken && !order.contains(&i) {
                self.diags.push(
                    Diagnostic::warning(
                        codes::LEGACY,
                        s.key,
                        format!("state `{}` never runs", s.name),
                    )
                    .label("no `Next` from `StartAt` leads here")
                    .help("it is left out; chain it with `Next` to run it"),
                );
            }
        }
        order
    }

    /// Resolve every lookup of the chain's states: each state's env vars
    /// and tool arguments, the output keys each state must declare, and the
    /// state before each one that wrote under the same `ResultPath`.
    fn bind(&mut self, wf: &Workflow, order: &[usize], prefix: &str) -> Bound {
        let mut produced: HashMap<&str, usize> = HashMap::new();
        let mut bound = Bound {
            vars: Vec::new(),
            args: Vec::new(),
            outputs: vec![Vec::new(); order.len()],
            prev: vec![None; order.len()],
        };
        for (pos, &i) in order.iter().enumerate() {
            let s = &wf.states[i];
            let mut b = Vec::new();
            for var in &s.vars {
                b.push(match &var.value {
                    VarValue::Literal(t) => Binding::Literal(t.clone()),
                    VarValue::Lookup(path) => {
                        self.lookup(wf, path, var, &produced, &mut bound.outputs, prefix)
                    }
                });
            }
            bound.vars.push(b);
            let mut args = Vec::new();
            for arg in s.tool.iter().flat_map(|t| &t.args) {
                args.push(match &arg.value {
                    ArgValue::Literal(_) => Binding::Literal(String::new()),
                    ArgValue::Lookup(path) => {
                        self.tool_lookup(wf, path, arg.span, &produced, &mut bound.outputs, prefix)
                    }
                });
            }
            bound.args.push(args);
            if let Some(rp) = &s.result_path {
                bound.prev[pos] = produced.insert(rp.value.as_str(), pos);
            }
        }
        // A state that writes nothing keeps the values of the state before
        // it with the same `ResultPath`: that one declares the keys too.
        for pos in (0..order.len()).rev() {
            if let Some(prev) = bound.prev[pos] {
                for key in bound.outputs[pos].clone() {
                    if !bound.outputs[prev].contains(&key) {
                        bound.outputs[prev].push(key);
                    }
                }
            }
        }
        bound
    }

    /// The workflow variable `name`: the running workflow's, else one of a
    /// workflow that ran before it (the old runner kept them all).
    fn variable<'w>(&'w self, wf: &'w Workflow, name: &str) -> Option<&'w (Ident, Node)> {
        wf.variables
            .iter()
            .find(|(n, _)| n.name == name)
            .or_else(|| self.outer_vars.iter().rev().find(|(n, _)| n.name == name))
    }

    fn lookup(
        &mut self,
        wf: &Workflow,
        path: &[String],
        var: &Var,
        produced: &HashMap<&str, usize>,
        outputs: &mut [Vec<String>],
        prefix: &str,
    ) -> Binding {
        let span = var.value_span;
        let head = path[0].as_str();
        if let Some((ident, value)) = self.variable(wf, head).cloned() {
            if path.len() > 1 {
                self.diags.push(
                    Diagnostic::error(
                        codes::LEGACY,
                        span,
                        format!("`{head}` is a workflow variable, with nothing inside to look up"),
                    )
                    .label("cannot look inside")
                    .secondary(
                        ident.span,
                        "a variable: maps and lists become one JSON string",
                    )
                    .help(format!(
                        "pass the whole `$workflow.{head}` and read it as JSON in the script"
                    )),
                );
                return Binding::Literal(String::new());
            }
            return Binding::Param(self.param(&ident, &value, prefix));
        }
        if let Some(&pos) = produced.get(head) {
            if path.len() != 2 {
                self.diags.push(
                    Diagnostic::error(
                        codes::LEGACY,
                        span,
                        format!("`$workflow.{}` is not one output", path.join(".")),
                    )
                    .label("expected `$workflow.RESULTPATH.KEY`")
                    .help(format!(
                        "the outputs stored under `{head}` are flat KEY=VALUE pairs: name one key"
                    )),
                );
                return Binding::Literal(String::new());
            }
            return self.output(pos, &path[1], span, outputs);
        }
        let mut d = Diagnostic::warning(
            codes::LEGACY,
            span,
            format!(
                "`$workflow.{}` is not in the state when this runs",
                path.join(".")
            ),
        )
        .label(format!(
            "env `{}` will be empty, as with the old runner",
            var.name.name
        ));
        let names = wf
            .variables
            .iter()
            .chain(&self.outer_vars)
            .map(|(n, _)| n.name.as_str())
            .chain(produced.keys().copied());
        d = match suggest(head, names) {
            Some(s) => d.help(format!("did you mean `$workflow.{s}`?")),
            None => d.help("the state holds the workflow's `variables` and the `ResultPath` of states that ran before"),
        };
        self.diags.push(d);
        Binding::Literal(String::new())
    }

    /// Output `key` of the state at `pos`, declared there.
    fn output(
        &mut self,
        pos: usize,
        key: &str,
        span: Span,
        outputs: &mut [Vec<String>],
    ) -> Binding {
        if !is_name(key) {
            self.diags.push(
                Diagnostic::error(
                    codes::BAD_NAME,
                    span,
                    format!("output key `{key}` is not a name"),
                )
                .label("cannot be declared as an output")
                .help("output keys are letters, digits, `_` and `-`"),
            );
            return Binding::Literal(String::new());
        }
        if !outputs[pos].iter().any(|k| k == key) {
            outputs[pos].push(key.to_string());
        }
        Binding::Output(pos, key.to_string())
    }

    /// A `.$` parameter of the executor dialect: `$.RESULTPATH.KEY` (an
    /// earlier state's result) or `$.NAME` (a workflow variable, else the
    /// execution's input: a param without a default).
    fn tool_lookup(
        &mut self,
        wf: &Workflow,
        path: &[String],
        span: Span,
        produced: &HashMap<&str, usize>,
        outputs: &mut [Vec<String>],
        prefix: &str,
    ) -> Binding {
        let head = path[0].as_str();
        if let Some(&pos) = produced.get(head)
            && path.len() == 2
        {
            return self.output(pos, &path[1], span, outputs);
        }
        if path.len() == 1 {
            if let Some((ident, value)) = self.variable(wf, head).cloned() {
                return Binding::Param(self.param(&ident, &value, prefix));
            }
            if is_name(head) {
                return Binding::Param(self.input_param(head, span));
            }
        }
        let known: Vec<&str> = produced.keys().copied().collect();
        let mut d = Diagnostic::error(
            codes::LEGACY,
            span,
            format!("`$.{}` is not in the state when this runs", path.join(".")),
        )
        .label("the old handler stopped here: value was not found");
        d = match suggest(head, known.iter().copied()) {
            Some(s) => d.help(format!("did you mean `$.{s}`?")),
            None => d.help("`$.NAME` reads the execution's input, `$.RESULTPATH.KEY` the result of a state that ran before"),
        };
        self.diags.push(d);
        Binding::Literal(String::new())
    }

    /// A param without a default: a value of the execution's input.
    fn input_param(&mut self, name: &str, span: Span) -> String {
        if !self.params.contains_key(name) {
            let param = ast::Param {
                name: Ident {
                    name: name.to_string(),
                    span,
                },
                ty: None,
                default: None,
                span,
            };
            self.params.insert(name.to_string(), (String::new(), param));
        }
        name.to_string()
    }

    /// The param for a workflow variable (declared once; a handler whose
    /// variable has another value gets a param of its own).
    fn param(&mut self, ident: &Ident, value: &Node, prefix: &str) -> String {
        let text = value
            .scalar_text()
            .unwrap_or_else(|| value.to_json().to_string());
        let mut name = ident.name.clone();
        if let Some((existing, _)) = self.params.get(&name)
            && *existing != text
        {
            name = format!("{prefix}{}", ident.name);
        }
        if !self.params.contains_key(&name) {
            let default = Value {
                kind: ValueKind::Str(Interp::literal(text.clone(), value.span)),
                span: value.span,
            };
            let param = ast::Param {
                name: Ident {
                    name: name.clone(),
                    span: ident.span,
                },
                ty: None,
                default: Some(default),
                span: ident.span.to(value.span),
            };
            self.params.insert(name.clone(), (text, param));
        }
        name
    }

    fn step_name(&mut self, base: &str) -> String {
        let base = slug(base);
        let mut name = base.clone();
        let mut n = 2;
        while !self.step_names.insert(name.clone()) {
            name = format!("{base}-{n}");
            n += 1;
        }
        name
    }

    fn lower_main(&mut self, wf: &Workflow) {
        let order = self.chain(wf);
        let bound = self.bind(wf, &order, "");
        let names: Vec<String> = order
            .iter()
            .map(|&i| self.step_name(&wf.states[i].name))
            .collect();
        // A workflow run on error still sees this one's variables.
        self.outer_vars.extend(wf.variables.iter().cloned());
        for (pos, &i) in order.iter().enumerate() {
            let s = &wf.states[i];
            let mut body = Vec::new();
            if let Some(image) = &s.image {
                body.push(directive(
                    DirectiveKind::Image(Interp::literal(&image.value, image.span)),
                    image.key,
                    image.span,
                ));
            }
            if let Some(t) = &s.timeout {
                self.comments.push(ast::Comment {
                    text: format!(
                        " timeoutMillis: {} (not enforced: the old runner never read it)",
                        t.value
                    ),
                    span: Span::new(s.key.file, s.key.start.saturating_sub(1), s.key.start),
                    own_line: true,
                    blank_after: false,
                });
            }
            for (var, binding) in s.vars.iter().zip(&bound.vars[pos]) {
                let parts = parts(binding, &names, var.value_span);
                body.push(env(
                    &var.name,
                    parts,
                    s.vars_key.unwrap_or(var.span),
                    var.span,
                ));
            }
            let runs = s.kind == StateKind::Task && (s.script.is_some() || s.tool.is_some());
            if let Some(prev) = bound.prev[pos]
                && runs
            {
                for key in &bound.outputs[pos] {
                    let at = s.result_path.as_ref().map_or(s.key, |r| r.span);
                    let parts = vec![Part::Ref(reference(&[&names[prev], key], at))];
                    let name = Ident {
                        name: script::prev_env(key),
                        span: at,
                    };
                    body.push(env(&name, parts, at, at));
                }
            }
            let mut tool_words = Vec::new();
            if let Some(tool) = &s.tool
                && s.kind == StateKind::Task
            {
                tool_words = self.tool_env(tool, &bound.args[pos], &names, &mut body);
            }
            if runs {
                let at = s.script.as_ref().map_or(s.key, |x| x.key);
                let name = Ident {
                    name: WAIT_GROUP_ENV.to_string(),
                    span: at,
                };
                body.push(env(&name, vec![Part::Lit("1".into())], at, at));
            }
            let rp_span = s.result_path.as_ref().map_or(s.key, |r| r.span);
            for key in &bound.outputs[pos] {
                body.push(directive(
                    DirectiveKind::Output(Ident {
                        name: key.clone(),
                        span: rp_span,
                    }),
                    rp_span,
                    rp_span,
                ));
            }
            if let Some(on_error) = &s.on_error
                && let Some(handler) = self.handler(on_error)
            {
                body.push(directive(
                    DirectiveKind::Catch(Ident {
                        name: handler,
                        span: on_error.key,
                    }),
                    on_error.key,
                    on_error.span,
                ));
            }
            self.action(
                s,
                &bound.outputs[pos],
                bound.prev[pos].map(|p| wf.states[order[p]].name.as_str()),
                &tool_words,
                &mut body,
            );
            let needs = if pos == 0 {
                Vec::new()
            } else {
                let prev = &wf.states[order[pos - 1]];
                vec![Ident {
                    name: names[pos - 1].clone(),
                    span: prev.next.as_ref().map_or(prev.key, |n| n.span),
                }]
            };
            self.steps.push(ast::Step {
                name: Ident {
                    name: names[pos].clone(),
                    span: s.key,
                },
                needs,
                body,
                span: s.span,
            });
        }
    }

    /// The env vars of a tool state (the tool directory and each looked-up
    /// argument) and the words of its command line.
    fn tool_env(
        &mut self,
        tool: &executor::Tool,
        bindings: &[Binding],
        names: &[String],
        body: &mut Vec<Directive>,
    ) -> Vec<Word> {
        if !self.params.contains_key(executor::TOOL_DIR_PARAM) {
            let at = tool.name_span;
            let param = ast::Param {
                name: Ident {
                    name: executor::TOOL_DIR_PARAM.to_string(),
                    span: at,
                },
                ty: None,
                default: Some(Value {
                    kind: ValueKind::Str(Interp::literal(executor::TOOL_DIR_DEFAULT, at)),
                    span: at,
                }),
                span: at,
            };
            self.params.insert(
                executor::TOOL_DIR_PARAM.to_string(),
                (executor::TOOL_DIR_DEFAULT.to_string(), param),
            );
        }
        let dir = Ident {
            name: executor::TOOL_DIR_ENV.to_string(),
            span: tool.name_span,
        };
        body.push(env(
            &dir,
            vec![Part::Ref(reference(
                &[executor::TOOL_DIR_PARAM],
                tool.name_span,
            ))],
            tool.name_span,
            tool.name_span,
        ));
        let mut words = Vec::new();
        for (n, (arg, binding)) in tool.args.iter().zip(bindings).enumerate() {
            match &arg.value {
                ArgValue::Literal(values) => {
                    for v in values {
                        words.push(Word::Literal(arg.flag.clone()));
                        words.push(Word::Literal(v.clone()));
                    }
                }
                ArgValue::Lookup(_) => {
                    let name = Ident {
                        name: format!("LEGACY_ARG_{}", n + 1),
                        span: arg.span,
                    };
                    let parts = parts(binding, names, arg.span);
                    body.push(env(&name, parts, arg.span, arg.span));
                    words.push(Word::Literal(arg.flag.clone()));
                    words.push(Word::Env(name.name));
                }
            }
        }
        words
    }

    /// What the step does: the script, the tool, the approval gate, or
    /// nothing (a pass state, `PASS` with `End`).
    fn action(
        &mut self,
        s: &State,
        outputs: &[String],
        prev: Option<&str>,
        tool_words: &[Word],
        body: &mut Vec<Directive>,
    ) {
        match s.kind {
            StateKind::Approval => {
                if let Some(script) = &s.script {
                    self.diags.push(
                        Diagnostic::warning(
                            codes::LEGACY,
                            script.key,
                            "the script of an approval state does not run",
                        )
                        .label("`Type: Manual_Approval` waits for a person")
                        .help("move the script to a state of its own"),
                    );
                }
                body.push(directive(
                    DirectiveKind::Approval(Interp::literal(
                        format!("Approve state \"{}\"?", s.name),
                        s.key,
                    )),
                    s.key,
                    s.key,
                ));
            }
            StateKind::EndHere => {}
            StateKind::Task => match (&s.tool, &s.script) {
                (Some(tool), script) => {
                    if let Some(script) = script {
                        self.diags.push(
                            Diagnostic::warning(
                                codes::LEGACY,
                                script.key,
                                "`scriptString` is not run: `Parameters` name a `step_name`",
                            )
                            .label("the executor dialect runs the tool")
                            .help("keep one of the two"),
                        );
                    }
                    let text = executor::run_text(&s.name, tool, tool_words, outputs);
                    body.push(directive(
                        DirectiveKind::Run(Interp::literal(
                            text.trim_end_matches('\n'),
                            tool.name_span,
                        )),
                        tool.name_span,
                        tool.name_span,
                    ));
                }
                (None, Some(script)) => {
                    let text = script::step_run(
                        &s.name,
                        &script.value,
                        &StepOutputs {
                            keys: outputs,
                            prev,
                        },
                    );
                    body.push(directive(
                        DirectiveKind::Run(Interp::literal(
                            text.trim_end_matches('\n'),
                            script.span,
                        )),
                        script.key,
                        script.span,
                    ));
                }
                (None, None) => self.no_script(s),
            },
        }
    }

    fn no_script(&mut self, s: &State) {
        // A Pass state does nothing by design; a task without a script is
        // most likely a mistake.
        if s.vars_key.is_some() || s.result_path.is_some() {
            self.diags.push(
                Diagnostic::warning(
                    codes::LEGACY,
                    s.key,
                    format!("state `{}` has no `scriptString`", s.name),
                )
                .label("it does nothing")
                .help("add `scriptString: |` with the script to run"),
            );
        }
    }

    /// The catch handler that runs the workflow `contexts` select, built once
    /// per list of contexts.
    fn handler(&mut self, on_error: &Field<Vec<String>>) -> Option<String> {
        let contexts = &on_error.value;
        if let Some(name) = self.handlers.get(contexts) {
            return Some(name.clone());
        }
        if contexts.as_slice() == self.input.contexts || self.building.contains(contexts) {
            self.diags.push(
                Diagnostic::warning(
                    codes::LEGACY,
                    on_error.span,
                    "`OnErrorContext` selects the workflow that is already running",
                )
                .label("not followed: it would run this workflow again, forever")
                .help("name the contexts of a clean-up workflow, e.g. `[\"abort\"]`"),
            );
            return None;
        }
        let wf_node = self.select(contexts, on_error.span)?;
        self.building.push(contexts.clone());
        let wf = self.read_workflow(&wf_node);
        self.building.pop();
        let wf = wf?;
        let order = self.chain(&wf);
        let prefix = format!("{}_", slug(&contexts.join("_")).replace('-', "_"));
        let Bound {
            vars: bindings,
            outputs,
            ..
        } = self.bind(&wf, &order, &prefix);
        let mut states = Vec::new();
        let mut param_envs: Vec<(String, String)> = Vec::new();
        let mut nested: Option<&Field<Vec<String>>> = None;
        for (pos, &i) in order.iter().enumerate() {
            let s = &wf.states[i];
            if let Some(on) = &s.on_error {
                match nested {
                    None => nested = Some(on),
                    Some(first) if first.value != on.value => self.diags.push(
                        Diagnostic::warning(
                            codes::LEGACY,
                            on.span,
                            "a workflow run on error goes on to one workflow on its next failure",
                        )
                        .label("topsail follows the first `OnErrorContext` of this workflow for a failure of any of its states")
                        .secondary(first.span, "this one")
                        .help("give the states of a clean-up workflow the same `OnErrorContext`"),
                    ),
                    Some(_) => {}
                }
            }
            if s.tool.is_some() || s.kind == StateKind::Approval {
                self.diags.push(
                    Diagnostic::error(
                        codes::LEGACY,
                        s.key,
                        format!(
                            "state `{}` of a workflow run on error must be a script",
                            s.name
                        ),
                    )
                    .label("a tool or approval state runs only in the main workflow")
                    .help("run the clean-up as `scriptString` states"),
                );
            }
            if let Some(image) = &s.image {
                self.diags.push(
                    Diagnostic::warning(
                        codes::LEGACY,
                        image.span,
                        "`image` of a state run on error is not used",
                    )
                    .label("the clean-up workflow runs as one step")
                    .help("set `image` on that workflow instead"),
                );
            }
            if s.script.is_none() {
                self.no_script(s);
            }
            let env = s
                .vars
                .iter()
                .zip(&bindings[pos])
                .map(|(v, b)| {
                    let value = match b {
                        Binding::Literal(t) => HandlerValue::Literal(t.clone()),
                        Binding::Param(p) => {
                            let env = param_env(p);
                            if !param_envs.iter().any(|(e, _)| *e == env) {
                                param_envs.push((env.clone(), p.clone()));
                            }
                            HandlerValue::Env(env)
                        }
                        Binding::Output(from, key) => HandlerValue::Output(*from, key.clone()),
                    };
                    (v.name.name.clone(), value)
                })
                .collect();
            states.push(HandlerState {
                name: s.name.clone(),
                script: s.script.as_ref().map(|x| x.value.clone()),
                env,
                outputs: outputs[pos].clone(),
            });
        }
        let name = self.step_name(&format!("on-{}", contexts.join("-")));
        self.handlers.insert(contexts.clone(), name.clone());
        let at = on_error.span;
        let mut body = Vec::new();
        if let Some(image) = &wf.image {
            body.push(directive(
                DirectiveKind::Image(Interp::literal(&image.value, image.span)),
                image.key,
                image.span,
            ));
        }
        // The next workflow of the chain, as the old runner went on from a
        // failing workflow run on error.
        let outer = self.outer_vars.len();
        self.outer_vars.extend(wf.variables.iter().cloned());
        if let Some(next) = nested {
            self.building.push(contexts.clone());
            let next_handler = self.handler(next);
            self.building.pop();
            if let Some(h) = next_handler {
                body.push(directive(
                    DirectiveKind::Catch(Ident {
                        name: h,
                        span: next.key,
                    }),
                    next.key,
                    next.span,
                ));
            }
        }
        self.outer_vars.truncate(outer);
        if states.iter().any(|s| s.script.is_some()) {
            let name = Ident {
                name: WAIT_GROUP_ENV.to_string(),
                span: at,
            };
            body.push(env(&name, vec![Part::Lit("1".into())], at, at));
        }
        for (env, param) in &param_envs {
            body.push(directive(
                DirectiveKind::Env(Box::new(EnvVar {
                    name: Ident {
                        name: env.clone(),
                        span: at,
                    },
                    value: Value {
                        kind: ValueKind::Str(Interp {
                            parts: vec![Part::Ref(reference(&[param], at))],
                            span: at,
                        }),
                        span: at,
                    },
                    span: at,
                })),
                at,
                at,
            ));
        }
        if states.iter().any(|s| s.script.is_some()) {
            let text = script::handler_run(contexts, &states);
            body.push(directive(
                DirectiveKind::Run(Interp::literal(text.trim_end_matches('\n'), at)),
                on_error.key,
                at,
            ));
        }
        self.handler_steps.push(ast::Step {
            name: Ident {
                name: name.clone(),
                span: at,
            },
            needs: Vec::new(),
            body,
            span: on_error.key.to(at),
        });
        Some(name)
    }
}

/// The env var that carries a param into a handler's run text.
fn param_env(param: &str) -> String {
    if is_env_name(param) {
        param.to_string()
    } else {
        format!("param_{}", param.replace('-', "_"))
    }
}

/// The text of an env var bound by `binding`.
fn parts(binding: &Binding, names: &[String], span: Span) -> Vec<Part> {
    match binding {
        Binding::Literal(t) if t.is_empty() => Vec::new(),
        Binding::Literal(t) => vec![Part::Lit(t.clone())],
        Binding::Param(p) => vec![Part::Ref(reference(&[p], span))],
        Binding::Output(from, key) => vec![Part::Ref(reference(&[&names[*from], key], span))],
    }
}

fn env(name: &Ident, parts: Vec<Part>, keyword_span: Span, span: Span) -> Directive {
    let value = Value {
        kind: ValueKind::Str(Interp { parts, span }),
        span,
    };
    directive(
        DirectiveKind::Env(Box::new(EnvVar {
            name: name.clone(),
            value,
            span,
        })),
        keyword_span,
        span,
    )
}

fn directive(kind: DirectiveKind, keyword_span: Span, value: Span) -> Directive {
    Directive {
        kind,
        span: keyword_span.to(value),
        keyword_span,
    }
}

fn reference(path: &[&str], span: Span) -> Ref {
    Ref {
        path: path
            .iter()
            .map(|p| Ident {
                name: (*p).to_string(),
                span,
            })
            .collect(),
        span,
    }
}

/// A state name as a step name: `Validate Cloud Spec` -> `validate-cloud-spec`.
pub(super) fn slug(name: &str) -> String {
    let mut out = String::new();
    for c in name.chars() {
        if c.is_ascii_alphanumeric() || c == '_' {
            out.push(c.to_ascii_lowercase());
        } else if !out.is_empty() && !out.ends_with('-') {
            out.push('-');
        }
    }
    while out.ends_with('-') {
        out.pop();
    }
    if out.is_empty() {
        return "state".into();
    }
    if out.starts_with(|c: char| c.is_ascii_digit()) {
        out.insert_str(0, "s-");
    }
    out
}

fn collect_keys(node: &Node, out: &mut Vec<String>) {
    match &node.kind {
        Kind::Map(entries) => {
            for (k, v) in entries {
                if let Some(t) = k.key_text()
                    && !out.contains(&t)
                {
                    out.push(t);
                }
                collect_keys(v, out);
            }
        }
        Kind::Seq(items) => items.iter().for_each(|i| collect_keys(i, out)),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slugs() {
        assert_eq!(slug("Validate Cloud Spec"), "validate-cloud-spec");
        assert_eq!(
            slug("Scale ECS Service Tasks to 0"),
            "scale-ecs-service-tasks-to-0"
        );
        assert_eq!(slug("2nd"), "s-2nd");
        assert_eq!(slug("  "), "state");
        assert_eq!(slug("update_elb"), "update_elb");
    }
}
