//! The layout of the state machine: the DAG's series-parallel shape (with
//! the weights that choose where to add waits, and the nesting it makes),
//! and the states of that shape: a series is a chain, a parallel a Parallel
//! state whose branches' `steps` are merged after it.

use super::emit::{Emitter, States, link, obj, states_obj};
use super::json::{J, Str, decimal};
use super::names::Owner;
use super::sp::{self, Tree};
use super::{MAX_NESTING, Options};
use crate::diagnostics::{Diagnostic, codes};
use crate::model::StepId;

/// Relative spread of a step's duration when nothing is known of it: from
/// a fiftieth to twice the estimate.
const UNKNOWN_SPREAD: f64 = 0.98;
/// Relative spread of a duration measured in an earlier run: the next run
/// may take a fifth more or less. (Taking measured durations as exact did
/// worse on the benchmark: 1.020 against 1.014 mean ratio, since a cut that
/// only wins by a hair on one set of durations is not worth its waits.)
const MEASURED_SPREAD: f64 = 0.2;

/// The states of a tree node, entered at `entry`.
pub(super) struct Fragment<'a> {
    pub(super) entry: Str<'a>,
    pub(super) states: States<'a>,
    /// Some step in it writes outputs into `$.steps`.
    pub(super) stores: bool,
}

/// The states merging a Parallel's outputs, and the ResultSelector they need.
pub(super) struct Merges<'a> {
    pub(super) picks: J<'a>,
    pub(super) states: States<'a>,
}

/// Step Functions: at most this many intrinsic functions in one field.
const MAX_INTRINSICS: usize = 10;

/// The series-parallel shape of the DAG, with what the nesting check needs.
pub(super) struct Shape {
    /// `None` when deeper than [`MAX_NESTING`] (refused anyway).
    pub(super) tree: Option<Tree>,
    pub(super) depth: usize,
    pub(super) deepest: Option<StepId>,
    pub(super) waits: Vec<sp::AddedWait>,
}

/// Decompose, on a thread with a deep stack when the DAG is large: the
/// decomposition recurses once per nesting level and per forced cut, which
/// for a 10,000-step pipeline can be deeper than a default stack. Only this
/// runs there; the definition is built on the caller's thread, whose
/// allocator arena is already warm (a fresh thread's arena costs page faults
/// for every byte of a large definition).
pub(super) fn shape(
    succs: &[Vec<usize>],
    weights: &[f64],
    spreads: &[f64],
    members: &[StepId],
) -> Shape {
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

/// Each member's weight and spread for the decomposition: a measured
/// duration as it is; an unknown one as the median of the measured ones (or
/// 1 when none is), and very uncertain.
pub(super) fn weights(o: &Options, members: &[StepId]) -> (Vec<f64>, Vec<f64>) {
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

impl<'a> Emitter<'a> {
    pub(super) fn note_wait(&mut self, waiter: StepId, on: Vec<StepId>, more: usize) {
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

    /// The states of a tree node, going to `next` (or ending the branch)
    /// when done.
    pub(super) fn fragment(&mut self, t: &Tree, next: Option<Str<'a>>) -> Fragment<'a> {
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
}
