//! DAG -> series-parallel tree, the shape nested Parallel states can express.
//!
//! A piece of the DAG splits in parallel into its weakly connected
//! components, or in series at a cut `A;B` where every node of `A` reaches
//! every node of `B`. Such an exact cut is a prefix of the nodes sorted by
//! earliest start (all of `A` starts before `A`'s critical path ends, all of
//! `B` after), and the cut is exact iff every maximal node of `A` has an edge
//! to every minimal node of `B` (a longer path would pass through a node that
//! is then not maximal or not minimal). One linear scan finds all exact cuts,
//! so a series-parallel DAG decomposes with no added waiting.
//!
//! A connected piece with no exact cut is not series-parallel. Then some
//! waiting must be added: among the prefixes of two topological orders
//! (earliest start, latest start) pick the cut minimising the estimated
//! makespan `CP(A) + CP(B)`, then the number of added edges, and record the
//! added waits so the compiler can report them.

/// A series-parallel tree over node indices. Series and Parallel have at
/// least two children and never a child of their own kind.
#[derive(Clone, Debug, PartialEq)]
pub enum Tree {
    Leaf(usize),
    Series(Vec<Tree>),
    Parallel(Vec<Tree>),
}

impl Tree {
    /// How many Parallel levels are nested (a leaf is 0).
    pub fn depth(&self) -> usize {
        match self {
            Tree::Leaf(_) => 0,
            Tree::Series(c) => c.iter().map(Tree::depth).max().unwrap_or(0),
            Tree::Parallel(c) => 1 + c.iter().map(Tree::depth).max().unwrap_or(0),
        }
    }
}

/// Waiting the tree adds: `waiter` now also waits for `on` (the first few,
/// in node order) and `more` further nodes; none of them did it need.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AddedWait {
    pub waiter: usize,
    pub on: Vec<usize>,
    pub more: usize,
}

const SHOWN_WAITS: usize = 5;

/// Decompose the DAG given by `succs` (node `i` -> the nodes that need it),
/// using `weights` as estimated durations (positive).
pub fn decompose(succs: &[Vec<usize>], weights: &[f64]) -> (Option<Tree>, Vec<AddedWait>) {
    let n = succs.len();
    let mut preds = vec![Vec::new(); n];
    for (u, vs) in succs.iter().enumerate() {
        for &v in vs {
            preds[v].push(u);
        }
    }
    let topo = topo_order(succs, &preds);
    let mut cx = Cx {
        succs,
        preds: &preds,
        weights,
        mark: vec![0; n],
        stamp: 0,
        pos: vec![0; n],
        est: vec![0.0; n],
        tail: vec![0.0; n],
        waits: Vec::new(),
        scratch: 0,
        seen: vec![0; n],
        max_mark: vec![0; n],
        min_mark: vec![0; n],
        waiting: vec![0; n],
    };
    for (i, &v) in topo.iter().enumerate() {
        cx.pos[v] = i;
    }
    let tree = (n > 0).then(|| cx.piece(topo));
    let mut waits = cx.waits;
    waits.sort_by_key(|w| w.waiter);
    (tree, waits)
}

fn topo_order(succs: &[Vec<usize>], preds: &[Vec<usize>]) -> Vec<usize> {
    let mut indegree: Vec<usize> = preds.iter().map(Vec::len).collect();
    let mut ready: std::collections::BTreeSet<usize> =
        (0..succs.len()).filter(|&v| indegree[v] == 0).collect();
    let mut order = Vec::with_capacity(succs.len());
    while let Some(u) = ready.pop_first() {
        order.push(u);
        for &v in &succs[u] {
            indegree[v] -= 1;
            if indegree[v] == 0 {
                ready.insert(v);
            }
        }
    }
    order
}

struct Cx<'a> {
    succs: &'a [Vec<usize>],
    preds: &'a [Vec<usize>],
    weights: &'a [f64],
    /// `mark[v] == stamp`: v is in the piece being looked at.
    mark: Vec<u64>,
    stamp: u64,
    /// Position in the global topological order.
    pos: Vec<usize>,
    est: Vec<f64>,
    tail: Vec<f64>,
    waits: Vec<AddedWait>,
    /// Stamps for the scratch marks below (never reused, so never cleared).
    scratch: u64,
    seen: Vec<u64>,
    max_mark: Vec<u64>,
    min_mark: Vec<u64>,
    waiting: Vec<usize>,
}

impl Cx<'_> {
    fn enter(&mut self, nodes: &[usize]) {
        self.stamp += 1;
        for &v in nodes {
            self.mark[v] = self.stamp;
        }
    }

    fn inside(&self, v: usize) -> bool {
        self.mark[v] == self.stamp
    }

    /// `nodes` is in topological order; so is every piece made from it.
    fn piece(&mut self, nodes: Vec<usize>) -> Tree {
        if nodes.len() == 1 {
            return Tree::Leaf(nodes[0]);
        }
        let comps = self.components(&nodes);
        if comps.len() > 1 {
            return Tree::Parallel(flatten(comps.into_iter().map(|c| self.piece(c)), |t| {
                matches!(t, Tree::Parallel(_))
            }));
        }
        self.enter(&nodes);
        for &v in &nodes {
            let e = self.preds[v]
                .iter()
                .filter(|&&u| self.inside(u))
                .map(|&u| self.est[u] + self.weights[u])
                .fold(0.0, f64::max);
            self.est[v] = e;
        }
        for &v in nodes.iter().rev() {
            let t = self.succs[v]
                .iter()
                .filter(|&&u| self.inside(u))
                .map(|&u| self.tail[u])
                .fold(0.0, f64::max);
            self.tail[v] = t + self.weights[v];
        }
        let mut by_est = nodes.clone();
        by_est.sort_by(|&a, &b| {
            self.est[a]
                .total_cmp(&self.est[b])
                .then(self.pos[a].cmp(&self.pos[b]))
        });
        let scan = self.scan(&by_est);
        let exact: Vec<usize> = scan
            .iter()
            .enumerate()
            .filter(|(_, c)| c.added == 0)
            .map(|(k, _)| k + 1)
            .collect();
        if !exact.is_empty() {
            let mut pieces = Vec::new();
            let mut start = 0;
            for k in exact.into_iter().chain([by_est.len()]) {
                pieces.push(by_est[start..k].to_vec());
                start = k;
            }
            return Tree::Series(flatten(
                pieces.into_iter().map(|p| self.piece(sorted(p, &self.pos))),
                |t| matches!(t, Tree::Series(_)),
            ));
        }
        // Not series-parallel here: add the least harmful waiting.
        let critical = nodes.iter().map(|&v| self.tail[v]).fold(0.0, f64::max);
        let mut by_lst = nodes.clone();
        by_lst.sort_by(|&a, &b| {
            (critical - self.tail[a])
                .total_cmp(&(critical - self.tail[b]))
                .then(self.pos[a].cmp(&self.pos[b]))
        });
        let scan_lst = self.scan(&by_lst);
        let best = [(&by_est, &scan), (&by_lst, &scan_lst)]
            .into_iter()
            .flat_map(|(order, cuts)| cuts.iter().enumerate().map(move |(k, c)| (order, k + 1, c)))
            .min_by(|x, y| {
                x.2.cost
                    .total_cmp(&y.2.cost)
                    .then(x.2.added.cmp(&y.2.added))
            })
            .map(|(order, k, _)| (order.clone(), k));
        let Some((order, k)) = best else {
            unreachable!("a connected piece of two or more nodes has a cut")
        };
        let (a, b) = order.split_at(k);
        self.record_waits(a, b);
        let (a, b) = (sorted(a.to_vec(), &self.pos), sorted(b.to_vec(), &self.pos));
        let (ta, tb) = (self.piece(a), self.piece(b));
        Tree::Series(flatten([ta, tb].into_iter(), |t| {
            matches!(t, Tree::Series(_))
        }))
    }

    /// Weakly connected components, each in topological order.
    fn components(&mut self, nodes: &[usize]) -> Vec<Vec<usize>> {
        self.enter(nodes);
        self.scratch += 1;
        let visited = self.scratch;
        let mut comps: Vec<Vec<usize>> = Vec::new();
        for &start in nodes {
            if self.seen[start] == visited {
                continue;
            }
            let mut members = vec![start];
            self.seen[start] = visited;
            let mut i = 0;
            while i < members.len() {
                let v = members[i];
                i += 1;
                for &u in self.succs[v].iter().chain(&self.preds[v]) {
                    if self.inside(u) && self.seen[u] != visited {
                        self.seen[u] = visited;
                        members.push(u);
                    }
                }
            }
            comps.push(sorted(members, &self.pos));
        }
        comps
    }

    /// For each proper prefix `A` of `order` (a topological order of the
    /// marked piece): its estimated makespan and the number of edges a
    /// series cut there adds between maximal `A` and minimal `B` nodes.
    fn scan(&mut self, order: &[usize]) -> Vec<Cut> {
        let n = order.len();
        // Per-node marks for this scan: in max A, in min B (stamped, no clearing).
        self.scratch += 1;
        let (max_a, min_b) = (self.scratch, self.scratch + 1);
        self.scratch += 1;
        let (mut max_len, mut min_len) = (0usize, 0usize);
        // Minimal nodes of B: those whose preds (in the piece) are all in A.
        for &v in order {
            let c = self.preds[v].iter().filter(|&&u| self.inside(u)).count();
            self.waiting[v] = c;
            if c == 0 {
                self.min_mark[v] = min_b;
                min_len += 1;
            }
        }
        // Edges from a maximal A node to a minimal B node.
        let mut edges: usize = 0;
        let mut suffix_tail = vec![0.0_f64; n + 1];
        for i in (0..n).rev() {
            suffix_tail[i] = suffix_tail[i + 1].max(self.tail[order[i]]);
        }
        let mut prefix_end: f64 = 0.0;
        let mut cuts = Vec::with_capacity(n.saturating_sub(1));
        for (i, &v) in order.iter().enumerate().take(n - 1) {
            // v leaves min B ...
            self.min_mark[v] = 0;
            min_len -= 1;
            edges -= self.preds[v]
                .iter()
                .filter(|&&u| self.max_mark[u] == max_a)
                .count();
            // ... its preds stop being maximal in A ...
            for &u in &self.preds[v] {
                if self.max_mark[u] == max_a {
                    self.max_mark[u] = 0;
                    max_len -= 1;
                    edges -= self.succs[u]
                        .iter()
                        .filter(|&&w| self.min_mark[w] == min_b)
                        .count();
                }
            }
            // ... it becomes maximal in A ...
            self.max_mark[v] = max_a;
            max_len += 1;
            edges += self.succs[v]
                .iter()
                .filter(|&&w| self.min_mark[w] == min_b)
                .count();
            // ... and successors with every pred in A become minimal in B.
            for &w in &self.succs[v] {
                if self.inside(w) {
                    self.waiting[w] -= 1;
                    if self.waiting[w] == 0 {
                        self.min_mark[w] = min_b;
                        min_len += 1;
                        edges += self.preds[w]
                            .iter()
                            .filter(|&&u| self.max_mark[u] == max_a)
                            .count();
                    }
                }
            }
            prefix_end = prefix_end.max(self.est[v] + self.weights[v]);
            cuts.push(Cut {
                cost: prefix_end + suffix_tail[i + 1],
                added: max_len * min_len - edges,
            });
        }
        cuts
    }

    fn record_waits(&mut self, a: &[usize], b: &[usize]) {
        let a_set: std::collections::HashSet<usize> = a.iter().copied().collect();
        let b_set: std::collections::HashSet<usize> = b.iter().copied().collect();
        let mut max_a: Vec<usize> = a
            .iter()
            .copied()
            .filter(|&u| !self.succs[u].iter().any(|w| a_set.contains(w)))
            .collect();
        max_a.sort_unstable();
        for &w in b {
            if self.preds[w].iter().any(|u| b_set.contains(u)) {
                continue;
            }
            let missing: Vec<usize> = max_a
                .iter()
                .copied()
                .filter(|u| !self.succs[*u].contains(&w))
                .collect();
            if !missing.is_empty() {
                self.waits.push(AddedWait {
                    waiter: w,
                    more: missing.len().saturating_sub(SHOWN_WAITS),
                    on: missing.into_iter().take(SHOWN_WAITS).collect(),
                });
            }
        }
    }
}

#[derive(Clone, Copy, Debug)]
struct Cut {
    cost: f64,
    added: usize,
}

fn sorted(mut v: Vec<usize>, pos: &[usize]) -> Vec<usize> {
    v.sort_by_key(|&x| pos[x]);
    v
}

fn flatten(children: impl Iterator<Item = Tree>, same: impl Fn(&Tree) -> bool) -> Vec<Tree> {
    let mut out = Vec::new();
    for c in children {
        if same(&c) {
            match c {
                Tree::Series(inner) | Tree::Parallel(inner) => out.extend(inner),
                Tree::Leaf(_) => unreachable!("only Series or Parallel match"),
            }
        } else {
            out.push(c);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dag(n: usize, edges: &[(usize, usize)]) -> Vec<Vec<usize>> {
        let mut s = vec![Vec::new(); n];
        for &(a, b) in edges {
            s[a].push(b);
        }
        s
    }

    #[test]
    fn diamond_is_exact() {
        let s = dag(4, &[(0, 1), (0, 2), (1, 3), (2, 3)]);
        let (t, waits) = decompose(&s, &[1.0; 4]);
        assert_eq!(
            t,
            Some(Tree::Series(vec![
                Tree::Leaf(0),
                Tree::Parallel(vec![Tree::Leaf(1), Tree::Leaf(2)]),
                Tree::Leaf(3)
            ]))
        );
        assert!(waits.is_empty());
    }

    #[test]
    fn n_shape_adds_one_wait() {
        // a->c, b->c, b->d: one of c/d must wait for something it did not need.
        let s = dag(4, &[(0, 2), (1, 2), (1, 3)]);
        let (t, waits) = decompose(&s, &[1.0; 4]);
        assert!(t.is_some());
        assert_eq!(waits.len(), 1, "{waits:?}");
    }

    #[test]
    fn long_chain_is_one_series() {
        let n = 10_000;
        let s = dag(n, &(0..n - 1).map(|i| (i, i + 1)).collect::<Vec<_>>());
        let (t, waits) = decompose(&s, &vec![1.0; n]);
        assert!(matches!(t, Some(Tree::Series(c)) if c.len() == n));
        assert!(waits.is_empty());
    }
}
