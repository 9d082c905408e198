//! Synthetic pipelines for the property tests and the makespan benchmark:
//! a pipeline from a list of DAG edges, random DAGs, random series-parallel
//! DAGs, and a small deterministic PRNG (so a seed names a DAG).

use indexmap::IndexMap;
use petgraph::graph::DiGraph;

use crate::model::{Action, Piece, Pipeline, Ref, Script, Step, StepId, Text};
use crate::source::Span;

/// xorshift64*: tiny, deterministic, good enough for test shapes.
#[derive(Clone, Debug)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }

    pub fn next_u64(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// Uniform in `0..n` (`n > 0`).
    pub fn below(&mut self, n: usize) -> usize {
        (self.next_u64() % n as u64) as usize
    }

    /// Uniform in `[0, 1)`.
    pub fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// Step `i` is named `step-i`, declares output `OUT`, and its script reads
/// the `OUT` of every step it needs directly (so data paths get exercised).
pub fn dag_pipeline(n: usize, edges: &[(usize, usize)]) -> Pipeline {
    let mut needs = vec![Vec::new(); n];
    for &(a, b) in edges {
        if !needs[b].contains(&a) {
            needs[b].push(a);
        }
    }
    let name = |i: usize| format!("step-{i}");
    let mut graph = DiGraph::new();
    for i in 0..n {
        graph.add_node(StepId(i));
    }
    for (b, ns) in needs.iter().enumerate() {
        for &a in ns {
            graph.add_edge(StepId(a).node(), StepId(b).node(), ());
        }
    }
    let steps = (0..n)
        .map(|i| {
            let mut parts = vec![Piece::Lit("echo OUT=x".into())];
            for &a in &needs[i] {
                parts.push(Piece::Lit(" ".into()));
                parts.push(Piece::Ref(Ref::Output {
                    step: name(a),
                    output: "OUT".into(),
                }));
            }
            parts.push(Piece::Lit(" >> \"$TOPSAIL_OUTPUT\"".into()));
            Step {
                id: StepId(i),
                name: name(i),
                span: Span::default(),
                needs: needs[i].iter().map(|&a| StepId(a)).collect(),
                need_names: needs[i].iter().map(|&a| name(a)).collect(),
                action: Action::Script(Script {
                    image: None,
                    shell: None,
                    run: Text { parts },
                }),
                env: IndexMap::new(),
                workdir: None,
                outputs: vec!["OUT".into()],
                secrets: Vec::new(),
                timeout: None,
                heartbeat: None,
                retry: None,
                when: None,
                foreach: None,
                catch: None,
                is_handler: false,
                queue: None,
                aws: None,
            }
        })
        .collect();
    Pipeline {
        name: "synthetic".into(),
        params: IndexMap::new(),
        secrets: IndexMap::new(),
        steps,
        graph,
    }
}

/// A random DAG on `n` nodes (edges go from lower to higher index): each
/// node needs 1 to 3 earlier nodes, mostly recent ones, or (1 in 8) none.
pub fn random_dag(rng: &mut Rng, n: usize) -> Vec<(usize, usize)> {
    let mut edges = Vec::new();
    for b in 1..n {
        if rng.below(8) == 0 {
            continue;
        }
        let k = 1 + rng.below(3);
        let window = b.min(12);
        for _ in 0..k {
            let a = b - 1 - rng.below(window);
            if !edges.contains(&(a, b)) {
                edges.push((a, b));
            }
        }
    }
    edges
}

/// A random series-parallel DAG on `n` nodes (numbered in a random order),
/// built by random series and parallel compositions.
pub fn random_sp(rng: &mut Rng, n: usize) -> Vec<(usize, usize)> {
    let mut edges = Vec::new();
    let mut next = 0;
    let series = rng.below(2) == 0;
    sp_part(rng, n, series, &mut next, &mut edges);
    // Shuffle the numbering so node order says nothing about the shape.
    let mut perm: Vec<usize> = (0..n).collect();
    for i in (1..n).rev() {
        perm.swap(i, rng.below(i + 1));
    }
    edges.into_iter().map(|(a, b)| (perm[a], perm[b])).collect()
}

/// Returns (sources, sinks) of the part.
fn sp_part(
    rng: &mut Rng,
    n: usize,
    series: bool,
    next: &mut usize,
    edges: &mut Vec<(usize, usize)>,
) -> (Vec<usize>, Vec<usize>) {
    if n == 1 {
        let v = *next;
        *next += 1;
        return (vec![v], vec![v]);
    }
    let k = (2 + rng.below(3)).min(n);
    let mut sizes = vec![1; k];
    for _ in k..n {
        sizes[rng.below(k)] += 1;
    }
    let parts: Vec<_> = sizes
        .into_iter()
        .map(|s| sp_part(rng, s, !series, next, edges))
        .collect();
    if series {
        for w in parts.windows(2) {
            for &a in &w[0].1 {
                for &b in &w[1].0 {
                    edges.push((a, b));
                }
            }
        }
        (parts[0].0.clone(), parts[parts.len() - 1].1.clone())
    } else {
        let sources = parts.iter().flat_map(|p| p.0.clone()).collect();
        let sinks = parts.iter().flat_map(|p| p.1.clone()).collect();
        (sources, sinks)
    }
}

/// Kahn's topological order of a DAG given as edges over `0..n`, and each
/// node's predecessors.
pub fn topo_order(n: usize, edges: &[(usize, usize)]) -> (Vec<usize>, Vec<Vec<usize>>) {
    let mut preds = vec![Vec::new(); n];
    let mut succs = vec![Vec::new(); n];
    let mut indeg = vec![0; n];
    for &(a, b) in edges {
        preds[b].push(a);
        succs[a].push(b);
        indeg[b] += 1;
    }
    let mut order: Vec<usize> = (0..n).filter(|&v| indeg[v] == 0).collect();
    let mut i = 0;
    while i < order.len() {
        let v = order[i];
        i += 1;
        for &w in &succs[v] {
            indeg[w] -= 1;
            if indeg[w] == 0 {
                order.push(w);
            }
        }
    }
    (order, preds)
}

/// Every pair (a, b) with a path a -> b, as `reach[b]` = set of a.
pub fn ancestors(n: usize, edges: &[(usize, usize)]) -> Vec<Vec<bool>> {
    let (order, preds) = topo_order(n, edges);
    let mut reach = vec![vec![false; n]; n];
    for &v in &order {
        for &a in &preds[v] {
            reach[v][a] = true;
            let from_a = reach[a].clone();
            for (x, r) in from_a.into_iter().enumerate() {
                if r {
                    reach[v][x] = true;
                }
            }
        }
    }
    reach
}
