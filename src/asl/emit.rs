//! The emitter: the [`Emitter`] that assembles the definition as a
//! `json::J` tree (the params states, each step with its `when`, `foreach`
//! and `catch`), and the small state shapes (Choice, Fail, Next/End, Catch)
//! the other parts build with.

use super::json::{J, Obj, Str};
use super::layout::Fragment;
use super::names::{Names, Owner};
use super::sp::Tree;
use super::{MAX_PAYLOAD_BYTES, OUTPUT_BUDGET_BYTES, Options, cond};
use crate::diagnostics::{Diagnostic, codes};
use crate::model::{ForeachItems, Pipeline, Ref, Step, StepId, Type, Value, errors};

pub(super) type States<'a> = Vec<(Str<'a>, J<'a>)>;

pub(super) struct Emitter<'a> {
    pub(super) p: &'a Pipeline,
    pub(super) o: &'a Options,
    pub(super) n: &'a Names<'a>,
    pub(super) parallels: usize,
    /// State names that may be too long or hold control characters, for
    /// `check_names` (most names are fine and are not kept).
    pub(super) names: Vec<(String, Owner)>,
    pub(super) diags: Vec<Diagnostic>,
}

impl<'a> Emitter<'a> {
    pub(super) fn new(p: &'a Pipeline, o: &'a Options, n: &'a Names<'a>) -> Self {
        Self {
            p,
            o,
            n,
            parallels: 0,
            names: Vec::new(),
            diags: Vec::new(),
        }
    }

    pub(super) fn check_payload(&mut self) {
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

    pub(super) fn definition(&mut self, tree: Option<&Tree>) -> J<'a> {
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

    /// A step with its `when`, `foreach` and `catch`.
    pub(super) fn step_fragment(&mut self, id: StepId, next: Option<Str<'a>>) -> Fragment<'a> {
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
}

pub(super) fn when_uses_loop(step: &Step) -> bool {
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
pub(super) fn stores_outputs(step: &Step) -> bool {
    !step.outputs.is_empty() && step.foreach.is_none()
}

pub(super) fn choice_state<'a>(rule: cond::Rule, then: Str<'a>, otherwise: Str<'a>) -> Obj<'a> {
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

pub(super) fn retarget<'a>(choice: &mut Obj<'a>, from: &str, to: Str<'a>) {
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

pub(super) fn fail_state<'a>(error: &'static str, cause: String) -> Obj<'a> {
    obj([
        ("Type", "Fail".into()),
        ("Error", error.into()),
        ("Cause", cause.into()),
    ])
}

pub(super) fn link<'a>(s: &mut Obj<'a>, next: Option<Str<'a>>) {
    match next {
        Some(n) => s.push("Next", n),
        None => s.push("End", true),
    }
}

/// The Catch of the state running a step with a catch handler.
pub(super) fn catch_rule(handler: Str<'_>) -> J<'_> {
    J::Arr(vec![J::Obj(obj([
        ("ErrorEquals", J::Arr(vec!["States.ALL".into()])),
        ("ResultPath", "$.failed".into()),
        ("Next", handler.into()),
    ]))])
}

pub(super) fn states_obj(states: States<'_>) -> J<'_> {
    J::Obj(states.into_iter().collect())
}

pub(super) fn obj<'a, const N: usize>(items: [(&'static str, J<'a>); N]) -> Obj<'a> {
    items.into_iter().collect()
}
