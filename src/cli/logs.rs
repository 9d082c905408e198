//! `topsail logs RUN [STEP] [--follow]`: print the recorded logs of a run
//! (all steps, prefixed, in the record's order; or one step). RUN may be
//! `last` or any unique prefix of a run id. A cloud execution (its ARN, a
//! name with no local record, or `--cloud`/`--follow`) is read from
//! CloudWatch Logs ([`crate::sfn::logs`]); `--follow` prints its lines as
//! they come until it ends. A failed step of a record whose pipeline file
//! is there is shown at its source.

use std::path::PathBuf;

use crate::run::record::{RUNS_DIR, find_run, read_logs};

use super::Error;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// A run id, a unique prefix of one, or `last`
    pub run: String,
    /// Only this step (or foreach instance, e.g. `deploy[eu-west-1]`)
    pub step: Option<String>,
    /// The pipeline's directory (default: the current one)
    #[arg(long, short = 'C', default_value = ".")]
    pub dir: PathBuf,
    /// Read the cloud execution's lines from CloudWatch Logs, not the local record
    #[arg(long)]
    pub cloud: bool,
    /// Keep printing a cloud execution's lines as they come, until it ends
    #[arg(long)]
    pub follow: bool,
    #[command(flatten)]
    pub target: super::cloud::Target,
    #[command(flatten)]
    pub aws: crate::sfn::AwsArgs,
}

pub fn run(args: Args) -> Result<(), Error> {
    let is_arn = crate::sfn::logs::split_execution_arn(&args.run).is_some();
    if args.cloud || args.follow || is_arn {
        return cloud(&args);
    }
    let (id, json) = match find_run(&args.dir, &args.run) {
        Ok(run) => run,
        // Not here: a cloud execution of the pipeline here, perhaps.
        Err(_) if args.run != "last" && args.target.resolve().0.is_some() => return cloud(&args),
        Err(e) => return Err(Error::usage(e)),
    };
    let run_dir = args.dir.join(RUNS_DIR).join(&id);
    let units: Vec<String> = json
        .as_ref()
        .and_then(|j| j.get("steps"))
        .and_then(|s| s.as_array())
        .map(|a| {
            a.iter()
                .filter_map(|u| u.get("name")?.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default();
    if let Some(step) = &args.step {
        let wanted: Vec<&String> = units
            .iter()
            .filter(|u| {
                *u == step
                    || u.strip_prefix(step.as_str())
                        .is_some_and(|r| r.starts_with('['))
            })
            .collect();
        if wanted.is_empty() {
            let hint = crate::diagnostics::suggest(step, units.iter().map(String::as_str))
                .map(|s| format!(" (did you mean `{s}`?)"))
                .unwrap_or_default();
            return Err(Error::usage(format!("run {id} has no step `{step}`{hint}")));
        }
        let prefix = wanted.len() > 1;
        let wanted: Vec<String> = wanted.into_iter().cloned().collect();
        print_logs(&run_dir, &wanted, prefix);
    } else {
        print_logs(&run_dir, &units, true);
    }
    if let Some(j) = &json {
        failed_at(&args.dir, j, args.step.as_deref());
    }
    Ok(())
}

/// The record's failed units at their source, when its pipeline file is
/// there and still loads.
fn failed_at(dir: &std::path::Path, run: &serde_json::Value, only: Option<&str>) {
    let Some(file) = run.get("file").and_then(|f| f.as_str()) else {
        return;
    };
    let path = std::path::Path::new(file);
    let path = if path.is_absolute() || path.exists() {
        path.to_path_buf()
    } else {
        dir.join(path)
    };
    let failed: Vec<&serde_json::Value> = run
        .get("steps")
        .and_then(|s| s.as_array())
        .into_iter()
        .flatten()
        .filter(|u| u.get("status").and_then(|s| s.as_str()) == Some("failed"))
        .filter(|u| {
            only.is_none_or(|o| {
                u.get("step").and_then(|s| s.as_str()) == Some(o)
                    || u.get("name").and_then(|s| s.as_str()) == Some(o)
            })
        })
        .collect();
    if failed.is_empty() {
        return;
    }
    let Some(l) = super::cloud::load(Some(&path), &super::ContextArgs::default()) else {
        return;
    };
    let text = |u: &serde_json::Value, k: &str| {
        u.get(k).and_then(|v| v.as_str()).unwrap_or("").to_string()
    };
    for u in failed {
        if let Some(s) = crate::run::failed_at::render(
            &l.pipeline,
            &l.sources,
            &text(run, "run_id"),
            &text(u, "name"),
            &text(u, "error"),
            &text(u, "cause"),
            crate::run::ui::want_color(),
        ) {
            outln!("{s}");
        }
    }
}

/// A cloud execution's lines from CloudWatch Logs.
fn cloud(args: &Args) -> Result<(), Error> {
    let (machine, _) = args.target.resolve();
    let rt = match crate::sfn::runtime() {
        Ok(rt) => rt,
        Err(e) => return Err(Error::usage(e)),
    };
    let step = args.step.clone();
    let result: Result<(), String> = rt.block_on(async {
        let c = crate::sfn::Clients::new(&args.aws).await?;
        let arn = crate::sfn::stop::resolve(&c, &args.run, machine.as_deref()).await?;
        let (sm, name) = crate::sfn::logs::split_execution_arn(&arn).unwrap_or(("", &args.run));
        let mut reader = crate::sfn::logs::Reader::new(
            c.logs.clone(),
            crate::sfn::logs::group_name(sm),
            name.to_string(),
        );
        let wanted = |unit: &str| {
            step.as_deref().is_none_or(|s| {
                unit == s || unit.strip_prefix(s).is_some_and(|r| r.starts_with('['))
            })
        };
        loop {
            let running = args.follow
                && c.sfn
                    .describe_execution()
                    .execution_arn(&arn)
                    .send()
                    .await
                    .map_err(crate::sfn::err)?
                    .status()
                    == &aws_sdk_sfn::types::ExecutionStatus::Running;
            let lines = reader.poll().await?;
            {
                use std::io::Write;
                let mut out = std::io::stdout().lock();
                for l in lines.iter().filter(|l| wanted(&l.unit)) {
                    let text = crate::sfn::logs::record_text(l.stream, &l.text);
                    let _ = if step.is_some() {
                        writeln!(out, "{text}")
                    } else {
                        writeln!(out, "{} | {text}", l.unit)
                    };
                }
                let _ = out.flush();
            }
            if !running {
                return Ok(());
            }
            tokio::time::sleep(std::time::Duration::from_millis(500)).await;
        }
    });
    result.map_err(Error::failed)
}

fn print_logs(run_dir: &std::path::Path, units: &[String], prefix: bool) {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    for (unit, lines) in units.iter().zip(read_logs(run_dir, units)) {
        for line in lines {
            let _ = if prefix {
                writeln!(out, "{unit} | {line}")
            } else {
                writeln!(out, "{line}")
            };
        }
    }
}
