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
//!
//! When durations are unknown (every step weighs the same), that estimate
//! ties between many cuts and the tie-break is blind to how long the forced
//! waits may last. So the makespan is averaged over a few fixed samples of
//! durations spread around the weights: the cut that is cheap whatever the
//! steps take wins.
//!
//! `CP(A) + CP(B)` is only a lower bound: the cuts still to come inside `A`
//! and `B` add their own waiting. So in small pieces (where most waits are
//! decided) the few cheapest cuts are each finished greedily and the one
//! whose whole tree is fastest on the samples is kept, then decomposed again
//! with the same search inside. A budget on that search keeps very large
//! pipelines fast to compile; past it, cuts are greedy.
//!
//! On the benchmark's random DAGs (scripts/bench/asl.sh) the mean ratio of
//! makespan to critical path went from 1.216 (one cut estimate) to 1.135
//! (sampled estimate), and with the search from 1.135 to about 1.09 when
//! durations are unknown, and from 1.048 to about 1.02 when they are known.

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

/// Duration samples per node when durations are uncertain.
const SAMPLES: usize = 16;

/// Pieces of at most this many steps get the lookahead search, trying this
/// many of the cheapest cuts...
const SEARCH_MAX_PIECE: usize = 64;
const SEARCH_CUTS: usize = 8;

/// ... while the steps looked at by the trial decompositions stay under
/// this (about 20 ms of work): benchmark-sized DAGs (500 steps) never reach
/// it, and a 10,000-step pipeline still compiles in well under 200 ms.
const SEARCH_BUDGET: usize = 80_000;

/// Pieces bigger than this look for cuts in one order only (earliest
/// start), estimated on fewer duration samples: in a large pipeline the
/// decomposition spends most of its time on them, while most waiting is
/// decided in the many small pieces under them.
const BIG_PIECE: usize = 1_000;
const BIG_PIECE_SAMPLES: usize = 4;

/// Decompose the DAG given by `succs` (node `i` -> the nodes that need it),
/// using `weights` as estimated durations (positive). `spreads[i]` in
/// `[0, 1)` says how uncertain node `i`'s weight is: 0 takes it as exact;
/// otherwise the step may take anything in `weight * [1 - spread, 1 + spread]`,
/// and forced cuts minimise the makespan averaged over a few fixed duration
/// samples drawn so (the same samples every time, so the output stays
/// deterministic).
pub fn decompose(
    succs: &[Vec<usize>],
    weights: &[f64],
    spreads: &[f64],
) -> (Option<Tree>, Vec<AddedWait>) {
    decompose_with(succs, weights, spreads, SEARCH_BUDGET)
}

/// [`decompose`] with a given search budget (0: greedy cuts only).
fn decompose_with(
    succs: &[Vec<usize>],
    weights: &[f64],
    spreads: &[f64],
    budget: usize,
) -> (Option<Tree>, Vec<AddedWait>) {
    let n = succs.len();
    let mut preds = vec![Vec::new(); n];
    for (u, vs) in succs.iter().enumerate() {
        for &v in vs {
            preds[v].push(u);
        }
    }
    let topo = topo_order(succs, &preds);
    let spread = |v: usize| spreads.get(v).copied().unwrap_or(0.0).clamp(0.0, 0.99);
    let lanes = if (0..n).any(|v| spread(v) > 0.0) {
        SAMPLES
    } else {
        1
    };
    let mut dur = vec![0.0; n * lanes];
    for (v, &w) in weights.iter().enumerate().take(n) {
        for j in 0..lanes {
            dur[v * lanes + j] = if lanes == 1 {
                w
            } else {
                w * (1.0 + spread(v) * (2.0 * sample_unit(v, j) - 1.0))
            };
        }
    }
    let mut cx = Cx {
        succs,
        preds: &preds,
        weights,
        lanes,
        used: lanes,
        dur,
        sest: vec![0.0; n * lanes],
        stail: vec![0.0; n * lanes],
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
        trial: false,
        budget,
    };
    for (i, &v) in topo.iter().enumerate() {
        cx.pos[v] = i;
    }
    let tree = (n > 0).then(|| cx.piece(topo));
    let mut waits = cx.waits;
    waits.sort_by_key(|w| w.waiter);
    (tree, waits)
}

/// A fixed pseudo-random number in `[0, 1)` for sample `j` of node `v`
/// (splitmix64), independent of the order pieces are looked at.
fn sample_unit(v: usize, j: usize) -> f64 {
    let mut z = ((v as u64) << 16 ^ j as u64).wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^= z >> 31;
    (z >> 11) as f64 / (1u64 << 53) as f64
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
    /// Duration samples per node (`dur[v * lanes + j]`), with earliest
    /// start and tail (longest path from the start of `v` to the piece's
    /// end) per sample, in the piece being cut.
    lanes: usize,
    /// The samples the piece being cut is estimated on (the first `used`).
    used: usize,
    dur: Vec<f64>,
    sest: Vec<f64>,
    stail: Vec<f64>,
    /// `mark[v] == stamp`: v is in the piece being looked at.
    mark: Vec<u64>,
    stamp: u64,
    /// Position in the global topological order.
    pos: Vec<usize>,
    /// Earliest start and tail with the estimated weights.
    est: Vec<f64>,
    tail: Vec<f64>,
    waits: Vec<AddedWait>,
    /// Stamps for the scratch marks below (never reused, so never cleared).
    scratch: u64,
    seen: Vec<u64>,
    max_mark: Vec<u64>,
    min_mark: Vec<u64>,
    waiting: Vec<usize>,
    /// In a trial decomposition of the search (which itself is greedy).
    trial: bool,
    /// Steps the trial decompositions may still look at.
    budget: usize,
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
        if self.trial {
            self.budget = self.budget.saturating_sub(nodes.len());
        }
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
        let added_est = self.scan(&by_est);
        if added_est.contains(&0) {
            let mut pieces = Vec::new();
            let mut start = 0;
            for k in added_est
                .iter()
                .enumerate()
                .filter(|(_, a)| **a == 0)
                .map(|(k, _)| k + 1)
                .chain([by_est.len()])
            {
                pieces.push(by_est[start..k].to_vec());
                start = k;
            }
            return Tree::Series(flatten(
                pieces.into_iter().map(|p| self.piece(sorted(p, &self.pos))),
                |t| matches!(t, Tree::Series(_)),
            ));
        }
        // Not series-parallel here: add the least harmful waiting.
        let big = nodes.len() > BIG_PIECE;
        let by_lst = if big {
            // Its cuts cost little next to the many small pieces below it:
            // one order is enough.
            Vec::new()
        } else {
            let critical = nodes.iter().map(|&v| self.tail[v]).fold(0.0, f64::max);
            let mut by_lst = nodes.clone();
            by_lst.sort_by(|&a, &b| {
                (critical - self.tail[a])
                    .total_cmp(&(critical - self.tail[b]))
                    .then(self.pos[a].cmp(&self.pos[b]))
            });
            by_lst
        };
        let added_lst = if big { Vec::new() } else { self.scan(&by_lst) };
        self.used = if big {
            self.lanes.min(BIG_PIECE_SAMPLES)
        } else {
            self.lanes
        };
        self.fill_samples(&nodes);
        let cost_est = self.costs(&by_est);
        let cost_lst = if big { Vec::new() } else { self.costs(&by_lst) };
        // Cheapest on average over the samples, then fewest added edges.
        let orders = [by_est, by_lst];
        let mut cuts: Vec<Cut> = [(0, added_est, cost_est), (1, added_lst, cost_lst)]
            .into_iter()
            .flat_map(|(order, added, cost)| {
                added
                    .into_iter()
                    .zip(cost)
                    .enumerate()
                    .map(move |(k, (added, cost))| Cut {
                        order,
                        len: k + 1,
                        cost,
                        added,
                    })
            })
            .collect();
        let cheaper = |x: &Cut, y: &Cut| x.cost.total_cmp(&y.cost).then(x.added.cmp(&y.added));
        let search =
            !self.trial && nodes.len() <= SEARCH_MAX_PIECE && self.budget > 0 && cuts.len() > 1;
        if !search {
            let Some(best) = cuts.iter().min_by(|x, y| cheaper(x, y)) else {
                unreachable!("a connected piece of two or more nodes has a cut")
            };
            return self.split(&orders[best.order], best.len);
        }
        cuts.sort_by(cheaper);
        // Finish the cheapest few distinct cuts greedily; keep the fastest.
        self.trial = true;
        let mut tried: Vec<Vec<usize>> = Vec::new();
        let mut best: Option<(f64, usize)> = None;
        for (i, cut) in cuts.iter().enumerate() {
            if tried.len() == SEARCH_CUTS || self.budget == 0 {
                break;
            }
            let mut set = orders[cut.order][..cut.len].to_vec();
            set.sort_unstable();
            if tried.contains(&set) {
                continue;
            }
            tried.push(set);
            let before = self.waits.len();
            let tree = self.split(&orders[cut.order], cut.len);
            self.waits.truncate(before);
            let score = self.mean_makespan(&tree);
            if best.is_none_or(|(s, _)| score < s) {
                best = Some((score, i));
            }
        }
        self.trial = false;
        let cut = &cuts[best.map_or(0, |(_, i)| i)];
        self.split(&orders[cut.order], cut.len)
    }

    /// Cut the marked piece after the first `len` nodes of `order` and
    /// decompose both sides.
    fn split(&mut self, order: &[usize], len: usize) -> Tree {
        let (a, b) = order.split_at(len);
        self.record_waits(a, b);
        let (a, b) = (sorted(a.to_vec(), &self.pos), sorted(b.to_vec(), &self.pos));
        let (ta, tb) = (self.piece(a), self.piece(b));
        Tree::Series(flatten([ta, tb].into_iter(), |t| {
            matches!(t, Tree::Series(_))
        }))
    }

    /// The makespan of `tree` averaged over the duration samples.
    fn mean_makespan(&self, tree: &Tree) -> f64 {
        let mut out = vec![0.0; self.lanes];
        self.makespans(tree, &mut out);
        out.iter().sum::<f64>() / self.lanes as f64
    }

    /// The makespan of `tree` in each duration sample.
    fn makespans(&self, tree: &Tree, out: &mut [f64]) {
        let l = self.lanes;
        match tree {
            Tree::Leaf(v) => out.copy_from_slice(&self.dur[v * l..(v + 1) * l]),
            Tree::Series(children) | Tree::Parallel(children) => {
                let series = matches!(tree, Tree::Series(_));
                let mut part = vec![0.0; l];
                out.fill(0.0);
                for c in children {
                    self.makespans(c, &mut part);
                    for (o, p) in out.iter_mut().zip(&part) {
                        *o = if series { *o + p } else { o.max(*p) };
                    }
                }
            }
        }
    }

    /// Earliest start and tail per duration sample, in the marked piece
    /// (`nodes` in topological order).
    fn fill_samples(&mut self, nodes: &[usize]) {
        let (l, used) = (self.lanes, self.used);
        for &v in nodes {
            for j in 0..used {
                self.sest[v * l + j] = 0.0;
            }
            for &u in &self.preds[v] {
                if self.inside(u) {
                    for j in 0..used {
                        let e = self.sest[u * l + j] + self.dur[u * l + j];
                        if e > self.sest[v * l + j] {
                            self.sest[v * l + j] = e;
                        }
                    }
                }
            }
        }
        for &v in nodes.iter().rev() {
            for j in 0..used {
                self.stail[v * l + j] = 0.0;
            }
            for &u in &self.succs[v] {
                if self.inside(u) {
                    for j in 0..used {
                        let t = self.stail[u * l + j];
                        if t > self.stail[v * l + j] {
                            self.stail[v * l + j] = t;
                        }
                    }
                }
            }
            for j in 0..used {
                self.stail[v * l + j] += self.dur[v * l + j];
            }
        }
    }

    /// For each proper prefix `A` of `order`: the makespan of `A` then `B`
    /// (critical path of `A` plus that of `B`, each as found in the whole
    /// piece), averaged over the duration samples.
    fn costs(&self, order: &[usize]) -> Vec<f64> {
        let (l, used, n) = (self.lanes, self.used, order.len());
        let mut suffix = vec![0.0_f64; (n + 1) * l];
        for i in (0..n).rev() {
            let v = order[i];
            for j in 0..used {
                suffix[i * l + j] = suffix[(i + 1) * l + j].max(self.stail[v * l + j]);
            }
        }
        let mut prefix = vec![0.0_f64; l];
        let mut out = Vec::with_capacity(n.saturating_sub(1));
        for (i, &v) in order.iter().enumerate().take(n - 1) {
            let mut sum = 0.0;
            for j in 0..used {
                prefix[j] = prefix[j].max(self.sest[v * l + j] + self.dur[v * l + j]);
                sum += prefix[j] + suffix[(i + 1) * l + j];
            }
            out.push(sum / used as f64);
        }
        out
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
    /// marked piece): the number of edges a series cut there adds between
    /// maximal `A` and minimal `B` nodes.
    fn scan(&mut self, order: &[usize]) -> Vec<usize> {
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
        let mut cuts = Vec::with_capacity(n.saturating_sub(1));
        for &v in order.iter().take(n - 1) {
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
            cuts.push(max_len * min_len - edges);
        }
        cuts
    }

    /// Note, for each minimal node of `b`, the maximal nodes of `a` it now
    /// waits for without an edge (the first few in node order, and a count).
    fn record_waits(&mut self, a: &[usize], b: &[usize]) {
        self.scratch += 1;
        let (in_a, in_b, pred) = (self.scratch, self.scratch + 1, self.scratch + 2);
        self.scratch += 2;
        for &u in a {
            self.seen[u] = in_a;
        }
        for &w in b {
            self.seen[w] = in_b;
        }
        let mut max_a: Vec<usize> = a
            .iter()
            .copied()
            .filter(|&u| !self.succs[u].iter().any(|&w| self.seen[w] == in_a))
            .collect();
        max_a.sort_unstable();
        for &w in b {
            if self.preds[w].iter().any(|&u| self.seen[u] == in_b) {
                continue;
            }
            // Every pred of `w` is in `a`; the maximal ones among them need no wait.
            let mut linked = 0;
            for &u in &self.preds[w] {
                if self.max_mark[u] != pred && max_a.binary_search(&u).is_ok() {
                    linked += 1;
                }
                self.max_mark[u] = pred;
            }
            let count = max_a.len() - linked;
            let on: Vec<usize> = max_a
                .iter()
                .copied()
                .filter(|&u| self.max_mark[u] != pred)
                .take(SHOWN_WAITS.min(count))
                .collect();
            for &u in &self.preds[w] {
                self.max_mark[u] = 0;
            }
            if count == 0 {
                continue;
            }
            self.waits.push(AddedWait {
                waiter: w,
                more: count - on.len(),
                on,
            });
        }
    }
}

/// A series cut of a piece: the first `len` nodes of one of its orders.
struct Cut {
    order: usize,
    len: usize,
    /// Estimated makespan `CP(A) + CP(B)`, averaged over the samples.
    cost: f64,
    /// Edges the cut adds.
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
        let (t, waits) = decompose(&s, &[1.0; 4], &[0.0; 4]);
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
        let (t, waits) = decompose(&s, &[1.0; 4], &[0.0; 4]);
        assert!(t.is_some());
        assert_eq!(waits.len(), 1, "{waits:?}");
    }

    fn makespan(t: &Tree, d: &[f64]) -> f64 {
        match t {
            Tree::Leaf(i) => d[*i],
            Tree::Series(c) => c.iter().map(|c| makespan(c, d)).sum(),
            Tree::Parallel(c) => c.iter().map(|c| makespan(c, d)).fold(0.0, f64::max),
        }
    }

    #[test]
    fn known_durations_put_the_wait_on_quick_steps() {
        // a->c, b->c, b->d with a and d slow: only a quick step may wait.
        let s = dag(4, &[(0, 2), (1, 2), (1, 3)]);
        let d = [1.0, 0.01, 0.01, 1.0];
        let (t, waits) = decompose(&s, &d, &[0.0; 4]);
        assert!((makespan(&t.unwrap(), &d) - 1.02).abs() < 1e-9);
        assert_eq!(waits.len(), 1);
        // Unknown, the two levels (a b) (c d) are the safe bet.
        let (t, waits) = decompose(&s, &[1.0; 4], &[0.98; 4]);
        assert!((makespan(&t.unwrap(), &[1.0; 4]) - 2.0).abs() < 1e-9);
        assert_eq!(waits[0].waiter, 3);
    }

    #[test]
    fn the_search_is_not_worse_than_greedy_cuts_on_average() {
        // Random band DAGs (each node needs 1-3 of the 8 before it), known
        // durations: the tree with the search against greedy cuts only.
        let mut seed = 7u64;
        let mut next = move |m: usize| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            (seed % m as u64) as usize
        };
        let (mut with, mut without) = (0.0, 0.0);
        for _ in 0..30 {
            let n = 40;
            let mut edges = Vec::new();
            for b in 1..n {
                for _ in 0..=next(3) {
                    let a = b - 1 - next(b.min(8));
                    edges.push((a, b));
                }
            }
            edges.sort_unstable();
            edges.dedup();
            let s = dag(n, &edges);
            let d: Vec<f64> = (0..n).map(|_| 1.0 + next(100) as f64).collect();
            let (t, _) = decompose(&s, &d, &vec![0.0; n]);
            with += makespan(&t.unwrap(), &d);
            let (t, _) = decompose_with(&s, &d, &vec![0.0; n], 0);
            without += makespan(&t.unwrap(), &d);
        }
        assert!(with < without * 0.99, "search {with} vs greedy {without}");
    }

    #[test]
    fn long_chain_is_one_series() {
        let n = 10_000;
        let s = dag(n, &(0..n - 1).map(|i| (i, i + 1)).collect::<Vec<_>>());
        let (t, waits) = decompose(&s, &vec![1.0; n], &vec![0.98; n]);
        assert!(matches!(t, Some(Tree::Series(c)) if c.len() == n));
        assert!(waits.is_empty());
    }
}
