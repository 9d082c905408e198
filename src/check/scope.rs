//! What the lowering phases share: the steps as declared, the templates, and
//! the [`Env`] that references are resolved against (names of params and
//! steps, and the DAG's needs once it is built). Nothing here reports.

use std::cell::RefCell;
use std::collections::{HashMap, HashSet};

use indexmap::IndexMap;

use crate::model::Param;
use crate::source::Span;
use crate::syntax::ast;

/// What references are resolved against.
pub(super) struct Env {
    pub params: IndexMap<String, Param>,
    pub used_params: RefCell<HashSet<String>>,
    pub steps: Vec<StepInfo>,
    pub by_name: HashMap<String, usize>,
    /// Direct needs, resolved (filled once the DAG is built).
    pub needs: Vec<Vec<usize>>,
}

pub(super) struct StepInfo {
    pub name: String,
    pub span: Span,
    pub outputs: Vec<String>,
    pub foreach: bool,
    /// `as` alias of the module the step came from.
    pub alias: Option<String>,
}

impl Env {
    /// Find a step by name; inside an aliased module, its own steps first.
    pub fn step_index(&self, name: &str, from: Option<usize>) -> Option<usize> {
        if let Some(alias) = from.and_then(|f| self.steps[f].alias.as_deref())
            && let Some(&i) = self.by_name.get(&format!("{alias}.{name}"))
        {
            return Some(i);
        }
        self.by_name.get(name).copied()
    }

    /// Is `a` among the steps `b` needs, directly or through others?
    pub fn is_ancestor(&self, a: usize, b: usize) -> bool {
        // Direct needs answer almost every real reference at once; only then walk.
        if self.needs[b].contains(&a) {
            return true;
        }
        let mut seen = HashSet::new();
        let mut stack = self.needs[b].clone();
        while let Some(s) = stack.pop() {
            if s == a {
                return true;
            }
            if seen.insert(s) {
                stack.extend(self.needs[s].iter().copied());
            }
        }
        false
    }
}

/// A step as declared, with the file-level defaults that apply to it.
pub(super) struct Decl<'a> {
    pub ast: &'a ast::Step,
    pub unit: usize,
    pub name: String,
}

/// Templates by the alias of the module that declares them and their name.
pub(super) type Templates<'a> = HashMap<(Option<String>, String), Template<'a>>;

pub(super) struct Template<'a> {
    pub ast: &'a ast::Template,
}
