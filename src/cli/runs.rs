//! `topsail runs`: the recent runs recorded under `.topsail/runs/`, newest
//! first. A run whose topsail is gone without finishing it is marked `lost`
//! first ([`crate::run::record::sweep_lost`]). With `--cloud`: the deployed
//! pipeline's recent executions on Step Functions ([`crate::sfn::runs`]).

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
    /// The deployed pipeline's executions on Step Functions instead
    #[arg(long)]
    pub cloud: bool,
    /// With --cloud: the pipeline file (default: the one here)
    #[arg(value_name = "FILE", requires = "cloud")]
    pub pipeline: Option<PathBuf>,
    /// With --cloud: the state machine's name if it was deployed with `deploy --name`
    #[arg(long, value_name = "NAME", requires = "cloud")]
    pub machine: Option<String>,
    #[command(flatten)]
    pub aws: crate::sfn::AwsArgs,
}

pub fn run(args: Args) -> Result<(), Error> {
    if args.cloud {
        return cloud(&args);
    }
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

fn cloud(args: &Args) -> Result<(), Error> {
    let target = super::cloud::Target {
        file: args.pipeline.clone(),
        machine: args.machine.clone(),
        context: super::ContextArgs::default(),
    };
    let Some(machine) = target.resolve().0 else {
        return Err(Error::usage(
            "which pipeline? give its file, run this next to it, or pass --machine NAME",
        ));
    };
    let rt = match crate::sfn::runtime() {
        Ok(rt) => rt,
        Err(e) => return Err(Error::usage(e)),
    };
    let runs = rt.block_on(async {
        let c = crate::sfn::Clients::new(&args.aws).await?;
        crate::sfn::runs::list(&c, &machine, args.limit).await
    });
    let runs = runs.map_err(Error::failed)?;
    if runs.is_empty() {
        outln!("no executions of state machine {machine}");
        return Ok(());
    }
    outln!(
        "{:<28}  {:<10}  {:<20}  {:>9}  FAILED STEP",
        "EXECUTION",
        "STATUS",
        "STARTED (UTC)",
        "DURATION"
    );
    for r in runs {
        outln!(
            "{:<28}  {:<10}  {:<20}  {:>8.1}s  {}",
            r.name,
            r.status,
            utc(r.start_ms),
            r.duration_ms as f64 / 1000.0,
            if r.failed.is_empty() {
                "-".to_string()
            } else {
                r.failed.join(", ")
            }
        );
    }
    Ok(())
}

/// `2026-12-02 07:00:00` for a time in ms since the epoch.
fn utc(ms: i64) -> String {
    let secs = ms.div_euclid(1000);
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    let (y, m, d) = crate::run::civil_from_days(days);
    format!(
        "{y:04}-{m:02}-{d:02} {:02}:{:02}:{:02}",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}
