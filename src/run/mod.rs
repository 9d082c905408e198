//! The local runner (`topsail run`): executes a checked [`Pipeline`] with the
//! meaning of LANGUAGE.md section 7, each step on the host or in a container.
//!
//! Layout: [`scheduler`] walks the DAG and decides what starts, is skipped or
//! is not run; [`runtime`] is the contract for running one step (shared with
//! the Step Functions activity worker), implemented by [`host`] and
//! [`docker`]; [`outputs`] reads `$TOPSAIL_OUTPUT`; [`record`] writes
//! `.topsail/runs/<id>/`; [`ui`] prints; [`plan`] is `--dry-run`; [`watch`]
//! is `--watch`. This module holds the options and what they share: params,
//! secrets and their masking, the evaluation scope.

pub mod docker;
pub mod host;
pub mod outputs;
pub mod plan;
pub mod record;
pub mod runtime;
pub mod scheduler;
pub mod ui;
pub mod watch;

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;

use indexmap::IndexMap;

use crate::model::{Pipeline, Ref, Scope, Value};
use crate::run::runtime::Runtime;

pub use scheduler::{RunReport, RunStatus, execute};

/// What `topsail run` was asked to do, resolved and validated.
#[derive(Clone, Debug)]
pub struct RunOptions {
    /// The directory holding the pipeline file: the steps' working directory.
    pub pipeline_dir: PathBuf,
    pub pipeline_file: PathBuf,
    pub jobs: usize,
    pub params: IndexMap<String, Value>,
    /// Only these steps and what they need; empty: every step.
    pub targets: Vec<String>,
    pub keep_going: bool,
    pub approve: Vec<String>,
    pub approve_all: bool,
    /// Colours in the log prefixes and the summary.
    pub color: bool,
    /// Live progress line and approval prompts.
    pub interactive: bool,
    /// Where attempt directories (TMPDIR, outputs) are made.
    pub tmp_base: PathBuf,
}

/// The two runtimes a run may use: the host, and containers for steps with an image.
#[derive(Clone)]
pub struct Runtimes {
    pub host: Arc<dyn Runtime>,
    pub container: Arc<dyn Runtime>,
}

impl Runtimes {
    pub fn real() -> Runtimes {
        Runtimes {
            host: Arc::new(host::HostRuntime::default()),
            container: Arc::new(docker::DockerRuntime::default()),
        }
    }

    /// For the activity worker: host steps do not inherit its environment
    /// (see [`host`]).
    pub fn worker() -> Runtimes {
        Runtimes {
            host: Arc::new(host::HostRuntime::clean_env()),
            container: Arc::new(docker::DockerRuntime::default()),
        }
    }
}

/// Type-check `--param NAME=VALUE` against the declared params and fill in
/// defaults. Unknown and missing params are errors (the CLI exits 2).
pub fn resolve_params(
    pipeline: &Pipeline,
    raw: &[String],
) -> Result<IndexMap<String, Value>, String> {
    let mut given: HashMap<&str, Value> = HashMap::new();
    for item in raw {
        let Some((name, text)) = item.split_once('=') else {
            return Err(format!("`--param {item}`: expected NAME=VALUE"));
        };
        let Some(param) = pipeline.params.get(name) else {
            let hint =
                crate::diagnostics::suggest(name, pipeline.params.keys().map(String::as_str))
                    .map(|s| format!(" (did you mean `{s}`?)"))
                    .unwrap_or_default();
            let known = if pipeline.params.is_empty() {
                "the pipeline declares no params".to_string()
            } else {
                format!(
                    "declared: {}",
                    pipeline
                        .params
                        .keys()
                        .cloned()
                        .collect::<Vec<_>>()
                        .join(", ")
                )
            };
            return Err(format!("unknown param `{name}`{hint}; {known}"));
        };
        let value = Value::parse_as(param.ty, text)
            .map_err(|e| format!("--param {name}: {e} (`{name}` is a {})", param.ty))?;
        given.insert(name, value);
    }
    let mut out = IndexMap::new();
    let mut missing = Vec::new();
    for (name, param) in &pipeline.params {
        match given
            .remove(name.as_str())
            .or_else(|| param.default.clone())
        {
            Some(v) => {
                out.insert(name.clone(), v);
            }
            None => missing.push(format!("`{name}` ({})", param.ty)),
        }
    }
    if !missing.is_empty() {
        return Err(format!(
            "missing required param{} {}: pass --param NAME=VALUE",
            if missing.len() == 1 { "" } else { "s" },
            missing.join(", ")
        ));
    }
    Ok(out)
}

/// Sortable to the millisecond and unique enough for one machine:
/// `20260507-142301-3f2a`.
pub fn new_run_id() -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    let secs = now.as_secs();
    let (y, m, d) = civil_from_days((secs / 86_400) as i64);
    let rem = secs % 86_400;
    // The millisecond in the high 10 bits, so runs of the same second still
    // sort by time (`topsail runs`, `--watch`); 6 bits apart processes.
    let salt = (now.subsec_millis() << 6) | ((now.subsec_nanos() ^ std::process::id()) & 0x3f);
    format!(
        "{y:04}{m:02}{d:02}-{:02}{:02}{:02}-{salt:04x}",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// Days since 1970-01-01 to a (year, month, day) in the proleptic Gregorian calendar.
pub(crate) fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (yoe + era * 400 + i64::from(m <= 2), m, d)
}

/// The values of the declared secrets, read from the runner's environment,
/// and the masking of those values in anything printed or written.
#[derive(Clone, Debug, Default)]
pub struct Secrets {
    values: HashMap<String, String>,
    /// Longest first, so a value containing another is masked whole.
    needles: Vec<String>,
}

impl Secrets {
    pub fn from_env(pipeline: &Pipeline) -> Secrets {
        Secrets::new(
            pipeline
                .secrets
                .keys()
                .filter_map(|n| std::env::var(n).ok().map(|v| (n.clone(), v))),
        )
    }

    pub fn new(values: impl IntoIterator<Item = (String, String)>) -> Secrets {
        let values: HashMap<String, String> = values.into_iter().collect();
        let mut needles: Vec<String> = Vec::new();
        for v in values.values() {
            needles.push(v.clone());
            // Output is masked line by line: mask each line of a multi-line value too.
            needles.extend(
                v.lines()
                    .map(str::trim)
                    .filter(|l| l.len() >= 3)
                    .map(str::to_string),
            );
        }
        needles.retain(|n| !n.trim().is_empty());
        needles.sort_by_key(|n| std::cmp::Reverse(n.len()));
        needles.dedup();
        Secrets { values, needles }
    }

    pub fn get(&self, name: &str) -> Option<&str> {
        self.values.get(name).map(String::as_str)
    }

    /// `text` with every occurrence of a secret value replaced by `***`.
    pub fn mask(&self, text: &str) -> String {
        let mut out = text.to_string();
        for n in &self.needles {
            if out.contains(n.as_str()) {
                out = out.replace(n.as_str(), "***");
            }
        }
        out
    }
}

/// Where `{{ }}` values come from while a run is going on.
pub struct RunScope<'a> {
    pub pipeline: &'a str,
    pub run_id: &'a str,
    pub step: &'a str,
    pub params: &'a IndexMap<String, Value>,
    /// Outputs of finished steps (skipped steps: empty strings).
    pub outputs: &'a HashMap<String, IndexMap<String, String>>,
    pub item: Option<(&'a str, &'a Value)>,
    /// `(failed.step, failed.error)` for a catch handler.
    pub failed: Option<&'a (String, String)>,
}

impl Scope for RunScope<'_> {
    fn lookup(&self, r: &Ref) -> Option<Value> {
        match r {
            Ref::Param(n) => self.params.get(n).cloned(),
            Ref::Loop(n) => self
                .item
                .filter(|(var, _)| var == n)
                .map(|(_, v)| v.clone()),
            Ref::Output { step, output } => self
                .outputs
                .get(step)
                .map(|o| Value::Str(o.get(output).cloned().unwrap_or_default())),
            Ref::PipelineName => Some(Value::Str(self.pipeline.to_string())),
            Ref::RunId => Some(Value::Str(self.run_id.to_string())),
            Ref::StepName => Some(Value::Str(self.step.to_string())),
            Ref::FailedStep => self.failed.map(|f| Value::Str(f.0.clone())),
            Ref::FailedError => self.failed.map(|f| Value::Str(f.1.clone())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn masking_covers_values_and_their_lines() {
        let s = Secrets::new([
            ("A".to_string(), "hunter2".to_string()),
            ("B".to_string(), "line-one\nline-two".to_string()),
        ]);
        assert_eq!(s.mask("pw=hunter2!"), "pw=***!");
        assert_eq!(s.mask("x line-two y"), "x *** y");
        assert_eq!(s.mask("nothing"), "nothing");
    }

    #[test]
    fn run_ids_sort_by_time() {
        assert_eq!(civil_from_days(0), (1970, 1, 1));
        assert_eq!(civil_from_days(19_723), (2024, 1, 1));
        let id = new_run_id();
        assert_eq!(id.len(), 20, "{id}");
        std::thread::sleep(std::time::Duration::from_millis(3));
        let later = new_run_id();
        assert!(later > id, "{later} should sort after {id}");
    }
}
