//! The DAG of a pipeline's steps: each step's `needs` resolved to the steps
//! they name (unknown and repeated needs reported), the graph built, and
//! every cycle reported with the edges that close it.

use std::collections::HashSet;

use petgraph::graph::DiGraph;

use crate::diagnostics::{Diagnostic, codes, suggest};
use crate::model::StepId;

use super::scope::{Decl, Env};

/// Each step's needs resolved against `env`, as the graph (an edge from a
/// need to the step that needs it) and as each step's direct needs.
pub(super) fn resolve_needs(
    decls: &[Decl],
    env: &Env,
    diags: &mut Vec<Diagnostic>,
) -> (DiGraph<StepId, ()>, Vec<Vec<usize>>) {
    let mut graph: DiGraph<StepId, ()> = DiGraph::with_capacity(decls.len(), decls.len() * 2);
    for i in 0..decls.len() {
        graph.add_node(StepId(i));
    }
    let mut needs: Vec<Vec<usize>> = Vec::with_capacity(decls.len());
    for (i, d) in decls.iter().enumerate() {
        let mut mine: Vec<usize> = Vec::with_capacity(d.ast.needs.len());
        for need in &d.ast.needs {
            if let Some(j) = env.step_index(&need.name, Some(i)) {
                if mine.contains(&j) {
                    diags.push(
                        Diagnostic::warning(
                            codes::DUPLICATE_DIRECTIVE,
                            need.span,
                            format!(
                                "`{}` is listed twice in the needs of `{}`",
                                need.name, d.name
                            ),
                        )
                        .label("listed again")
                        .help("remove the repetition"),
                    );
                } else {
                    mine.push(j);
                    graph.add_edge(StepId(j).node(), StepId(i).node(), ());
                }
            } else {
                let mut diag = Diagnostic::error(
                    codes::UNKNOWN_STEP,
                    need.span,
                    format!(
                        "step `{}` needs `{}`, which does not exist",
                        d.name, need.name
                    ),
                )
                .label("no step has this name")
                .about_unknown(need.name.clone());
                diag = match suggest(&need.name, env.steps.iter().map(|s| s.name.as_str())) {
                    Some(s) => diag.help(format!("did you mean `{s}`?")),
                    None => diag.help(format!(
                        "declare a step `{}:` or remove it from the needs",
                        need.name
                    )),
                };
                diags.push(diag);
            }
        }
        needs.push(mine);
    }
    (graph, needs)
}

/// Report every cycle (one diagnostic per strongly connected component),
/// naming each step and labelling each edge. Returns true when there is none.
pub(super) fn report_cycles(
    graph: &DiGraph<StepId, ()>,
    decls: &[Decl],
    needs: &[Vec<usize>],
    diags: &mut Vec<Diagnostic>,
) -> bool {
    let mut acyclic = true;
    for scc in petgraph::algo::tarjan_scc(graph) {
        let members: HashSet<usize> = scc.iter().map(|n| n.index()).collect();
        let start = *members.iter().min().expect("an SCC is never empty");
        if members.len() == 1 && !needs[start].contains(&start) {
            continue;
        }
        acyclic = false;
        // Walk needs inside the component from `start` until we return to it.
        let path = cycle_path(start, &members, needs);
        let names: Vec<&str> = path.iter().map(|&i| decls[i].name.as_str()).collect();
        let mut shown = names.clone();
        shown.push(names[0]);
        let mut d = Diagnostic::error(
            codes::CYCLE,
            decls[start].ast.name.span,
            format!("steps form a cycle: {}", shown.join(" -> ")),
        )
        .label(format!("`{}` is part of the cycle", names[0]))
        .help("a step cannot wait for itself: remove one of these needs");
        for (k, &i) in path.iter().enumerate() {
            let next = path[(k + 1) % path.len()];
            if let Some(ident) = decls[i]
                .ast
                .needs
                .iter()
                .find(|n| n.name == decls[next].ast.name.name || n.name == decls[next].name)
            {
                d = d.secondary(
                    ident.span,
                    format!("`{}` needs `{}`", decls[i].name, decls[next].name),
                );
            }
        }
        diags.push(d);
    }
    acyclic
}

fn cycle_path(start: usize, members: &HashSet<usize>, needs: &[Vec<usize>]) -> Vec<usize> {
    // Depth-first search for a path start -> ... -> start along needs.
    let mut stack = vec![(start, 0usize)];
    let mut on_path = vec![start];
    let mut visited = HashSet::from([start]);
    while let Some((node, idx)) = stack.pop() {
        let nexts: Vec<usize> = needs[node]
            .iter()
            .copied()
            .filter(|n| members.contains(n))
            .collect();
        if idx < nexts.len() {
            stack.push((node, idx + 1));
            let n = nexts[idx];
            if n == start {
                return on_path;
            }
            if visited.insert(n) {
                stack.push((n, 0));
                on_path.push(n);
            }
        } else {
            on_path.pop();
        }
    }
    vec![start]
}
