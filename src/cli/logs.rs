//! `topsail logs RUN [STEP]`: print the recorded logs of a run (all steps,
//! prefixed, in the record's order; or one step). RUN may be `last` or any
//! unique prefix of a run id.

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
}

pub fn run(args: Args) -> Result<(), Error> {
    let (id, json) = match find_run(&args.dir, &args.run) {
        Ok(run) => run,
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
    Ok(())
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
