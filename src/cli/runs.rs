//! `topsail runs`: the recent runs recorded under `.topsail/runs/`, newest
//! first. A run whose topsail is gone without finishing it is marked `lost`
//! first ([`crate::run::record::sweep_lost`]).

use super::Error;
use std::path::PathBuf;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The pipeline's directory (default: the current one)
    #[arg(long, short = 'C', default_value = ".")]
    pub dir: PathBuf,
    /// How many runs to show
    #[arg(long, short = 'n', default_value_t = 20)]
    pub limit: usize,
}

pub fn run(args: Args) -> Result<(), Error> {
    // Runs whose topsail died say so (`lost`) instead of `running` for ever.
    crate::run::record::sweep_lost(&args.dir);
    let runs = match crate::run::record::list_runs(&args.dir) {
        Ok(r) => r,
        Err(e) => return Err(Error::usage(format!("cannot read the run records: {e}"))),
    };
    if runs.is_empty() {
        outln!(
            "no runs recorded in {}",
            args.dir.join(crate::run::record::RUNS_DIR).display()
        );
        return Ok(());
    }
    outln!(
        "{:<22}  {:<20}  {:<11}  {:>9}  STEPS",
        "RUN",
        "PIPELINE",
        "STATUS",
        "DURATION"
    );
    for (id, json) in runs.into_iter().take(args.limit) {
        let Some(j) = json else {
            outln!("{id:<22}  {:<20}  {:<11}", "?", "(no run.json)");
            continue;
        };
        let s = |k: &str| j.get(k).and_then(|v| v.as_str()).unwrap_or("?").to_string();
        let steps = j.get("steps").and_then(|v| v.as_array());
        let count = |st: &str| {
            steps.map_or(0, |a| {
                a.iter()
                    .filter(|u| u.get("status").and_then(|v| v.as_str()) == Some(st))
                    .count()
            })
        };
        let ms = j
            .get("duration_ms")
            .and_then(serde_json::Value::as_u64)
            .unwrap_or(0);
        outln!(
            "{id:<22}  {:<20}  {:<11}  {:>8.1}s  {} ok, {} failed, {} skipped, {} cancelled",
            s("pipeline"),
            s("status"),
            ms as f64 / 1000.0,
            count("succeeded"),
            count("failed"),
            count("skipped"),
            count("cancelled"),
        );
    }
    Ok(())
}
