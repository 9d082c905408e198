//! Makespan benchmark of the ASL back end (scripts/bench/asl.sh).
//!
//! For 1,000 random DAGs (10-500 steps, durations uniform in [1, 100)) and
//! 1,000 random series-parallel DAGs: the makespan of the compiled state
//! machine with unlimited workers (read back from the ASL JSON by
//! `asl::analyse::makespan`), divided by the DAG's critical path; the same
//! for a naive level-by-level compilation (a Parallel per level, in series).
//! Compiled twice: as `topsail compile` does without a profile (durations
//! unknown, every step weighs the same) and as `topsail compile
//! --durations-from RUN` does (the durations given as measured ones).
//! Then the compile time of 10,000-step pipelines.

use std::time::Instant;

use topsail::asl::{self, analyse, sp, synth};

struct Stats {
    sum: f64,
    worst: f64,
    count: usize,
    perfect: usize,
}

impl Stats {
    fn new() -> Self {
        Stats {
            sum: 0.0,
            worst: 0.0,
            count: 0,
            perfect: 0,
        }
    }
    fn add(&mut self, r: f64) {
        self.sum += r;
        self.worst = self.worst.max(r);
        self.count += 1;
        if r < 1.0 + 1e-9 {
            self.perfect += 1;
        }
    }
    fn show(&self, what: &str) {
        println!(
            "  {what:<34} mean {:.4}  worst {:.4}  exactly 1.0: {}/{}",
            self.sum / self.count as f64,
            self.worst,
            self.perfect,
            self.count
        );
    }
}

fn critical_path(n: usize, edges: &[(usize, usize)], d: &[f64]) -> (f64, f64) {
    // (critical path, naive level-by-level makespan)
    let (order, preds) = synth::topo_order(n, edges);
    let mut finish = vec![0.0f64; n];
    let mut level = vec![0usize; n];
    for &v in &order {
        let start = preds[v].iter().map(|&u| finish[u]).fold(0.0, f64::max);
        finish[v] = start + d[v];
        level[v] = preds[v].iter().map(|&u| level[u] + 1).max().unwrap_or(0);
    }
    let levels = level.iter().max().map_or(0, |m| m + 1);
    let mut widest = vec![0.0f64; levels];
    for v in 0..n {
        widest[level[v]] = widest[level[v]].max(d[v]);
    }
    (
        finish.iter().copied().fold(0.0, f64::max),
        widest.iter().sum(),
    )
}

fn run_family(title: &str, sp: bool, seed: u64) {
    let mut rng = synth::Rng::new(seed);
    let (mut unit, mut weighted, mut naive) = (Stats::new(), Stats::new(), Stats::new());
    let mut steps = 0;
    let t0 = Instant::now();
    for _ in 0..1000 {
        let n = 10 + rng.below(491);
        steps += n;
        let edges = if sp {
            synth::random_sp(&mut rng, n)
        } else {
            synth::random_dag(&mut rng, n)
        };
        let d: Vec<f64> = (0..n).map(|_| 1.0 + 99.0 * rng.unit()).collect();
        let p = synth::dag_pipeline(n, &edges);
        let (cp, lv) = critical_path(n, &edges, &d);
        let dur = |name: &str| -> f64 {
            name.strip_prefix("step-")
                .and_then(|i| i.parse::<usize>().ok())
                .map_or(0.0, |i| d[i])
        };
        let measured: Vec<Option<f64>> = d.iter().copied().map(Some).collect();
        for (stats, durations) in [(&mut unit, Vec::new()), (&mut weighted, measured)] {
            let options = asl::Options {
                durations,
                ..asl::Options::default()
            };
            let c = asl::compile(&p, &options).expect("a random DAG compiles");
            let m =
                analyse::makespan(&c.definition, &dur).expect("the machine has a successful path");
            assert!(m + 1e-6 >= cp, "makespan {m} below the critical path {cp}");
            stats.add(m / cp);
        }
        naive.add(lv / cp);
    }
    println!(
        "{title} (1,000 DAGs, {steps} steps, {:.1} s):",
        t0.elapsed().as_secs_f64()
    );
    unit.show("compiled (topsail compile)");
    weighted.show("compiled, --durations-from a run");
    naive.show("naive level-by-level");
}

fn time_compile(title: &str, n: usize, edges: &[(usize, usize)]) {
    let p = synth::dag_pipeline(n, edges);
    let mut succs = vec![Vec::new(); n];
    for &(a, b) in edges {
        succs[a].push(b);
    }
    let (mut best, mut best_sp) = (f64::MAX, f64::MAX);
    let mut outcome = String::new();
    for _ in 0..5 {
        let t = Instant::now();
        let _ = std::hint::black_box(sp::decompose(&succs, &vec![1.0; n], &vec![0.98; n]));
        best_sp = best_sp.min(t.elapsed().as_secs_f64() * 1000.0);
        // The whole compile, to the JSON text `topsail compile` prints.
        let t = Instant::now();
        let r = asl::compile(&p, &asl::Options::default()).map(|c| c.to_json());
        best = best.min(t.elapsed().as_secs_f64() * 1000.0);
        outcome = match r {
            Ok(text) => format!("ok, {} bytes", text.len()),
            Err(d) => format!(
                "refused: {}",
                d.iter()
                    .find(|d| d.is_error())
                    .map(|d| d.message.clone())
                    .unwrap_or_default()
            ),
        };
    }
    println!(
        "  {title:<34} {best:.1} ms, decomposition {best_sp:.1} ms  ({} edges; {outcome})",
        edges.len()
    );
}

fn tree_makespan(t: &sp::Tree, d: &[f64]) -> f64 {
    match t {
        sp::Tree::Leaf(i) => d[*i],
        sp::Tree::Series(c) => c.iter().map(|c| tree_makespan(c, d)).sum(),
        sp::Tree::Parallel(c) => c.iter().map(|c| tree_makespan(c, d)).fold(0.0, f64::max),
    }
}

/// The decomposition alone on the random DAGs of `run_family` (same seed,
/// same DAGs and durations), its makespan read off the tree: quick to run
/// while tuning `sp` (`ASL_BENCH=sp`, `ASL_SPREAD` to override the spread).
fn quick_sp() {
    let spread: f64 = std::env::var("ASL_SPREAD")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0.98);
    let mut rng = synth::Rng::new(1);
    let (mut unit, mut weighted) = (Stats::new(), Stats::new());
    let t0 = Instant::now();
    for _ in 0..1000 {
        let n = 10 + rng.below(491);
        let edges = synth::random_dag(&mut rng, n);
        let d: Vec<f64> = (0..n).map(|_| 1.0 + 99.0 * rng.unit()).collect();
        let (cp, _) = critical_path(n, &edges, &d);
        let mut succs = vec![Vec::new(); n];
        for &(a, b) in &edges {
            succs[a].push(b);
        }
        let (t, _) = sp::decompose(&succs, &vec![1.0; n], &vec![spread; n]);
        unit.add(tree_makespan(&t.expect("nodes"), &d) / cp);
        let (t, _) = sp::decompose(&succs, &d, &vec![0.2; n]);
        weighted.add(tree_makespan(&t.expect("nodes"), &d) / cp);
    }
    println!(
        "random DAGs, decomposition only ({:.1} s):",
        t0.elapsed().as_secs_f64()
    );
    unit.show(&format!("unit weights, spread {spread}"));
    weighted.show("durations measured (spread 0.2)");
}

fn main() {
    if std::env::var("ASL_BENCH").as_deref() == Ok("sp") {
        quick_sp();
        return;
    }
    // ASL_BENCH=compile: only the compile times.
    if std::env::var("ASL_BENCH").as_deref() != Ok("compile") {
        run_family("random DAGs", false, 1);
        run_family("random series-parallel DAGs", true, 2);
    }
    println!("compile time, 10,000 steps (best of 5):");
    // ASL_COMPILE=chain|random|sp: only that one (for profiling).
    let only = std::env::var("ASL_COMPILE").unwrap_or_default();
    let n = 10_000;
    let chain: Vec<(usize, usize)> = (0..n - 1).map(|i| (i, i + 1)).collect();
    let mut rng = synth::Rng::new(3);
    let random = synth::random_dag(&mut rng, n);
    let series_parallel = synth::random_sp(&mut rng, n);
    for (key, title, edges) in [
        ("chain", "chain", &chain),
        ("random", "random DAG", &random),
        ("sp", "random series-parallel DAG", &series_parallel),
    ] {
        if only.is_empty() || only == key {
            time_compile(title, n, edges);
        }
    }
}
