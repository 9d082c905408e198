//! What states are called and what they refer to steps by: the
//! JSONPath-safe keys of steps and outputs under `$.steps`, the state names
//! and the Step Functions limits on names (length, control characters, a
//! param's name in a path).

use std::collections::{HashMap, HashSet};

use super::emit::Emitter;
use super::json::Str;
use crate::diagnostics::{Diagnostic, codes};
use crate::model::limits::MAX_STATE_NAME;
use crate::model::{Pipeline, StepId};
use crate::source::Span;

/// Who a state belongs to, for diagnostics on its name.
#[derive(Clone, Copy)]
pub(super) enum Owner {
    Step(StepId),
    Param(usize),
    None,
}

/// What states refer to steps and outputs by.
pub(super) struct Names<'a> {
    /// Each step's key under `$.steps` (by `StepId`).
    pub(super) keys: Vec<String>,
    /// Each step's outputs' keys (by `StepId`, then output).
    pub(super) out_keys: Vec<Vec<String>>,
    pub(super) by_name: HashMap<&'a str, StepId>,
}

impl<'a> Names<'a> {
    pub(super) fn new(p: &'a Pipeline) -> Self {
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
    pub(super) fn resolve(
        &self,
        p: &Pipeline,
        step: &str,
        output: &str,
    ) -> Result<(StepId, usize), String> {
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

    pub(super) fn output_path(
        &self,
        p: &Pipeline,
        step: &str,
        output: &str,
    ) -> Result<String, String> {
        let (id, i) = self.resolve(p, step, output)?;
        Ok(format!(
            "$.steps.{}.{}",
            self.keys[id.0], self.out_keys[id.0][i]
        ))
    }
}

/// A JSONPath-safe key: `-` and `.` become `_`; a clash gets `_2`, `_3`...
pub(super) fn safe_keys<'a>(names: impl Iterator<Item = &'a str>) -> Vec<String> {
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

impl<'a> Emitter<'a> {
    pub(super) fn check_params(&mut self) {
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

    pub(super) fn check_names(&mut self) {
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
    pub(super) fn name(&mut self, name: impl Into<Str<'a>>, owner: Owner) -> Str<'a> {
        let name = name.into();
        // Bytes bound chars: a name of at most MAX_STATE_NAME bytes is short enough.
        if name.len() > MAX_STATE_NAME || name.chars().any(char::is_control) {
            self.names.push((name.to_string(), owner));
        }
        name
    }
}
