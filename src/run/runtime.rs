//! The contract between "decide what runs" (the scheduler, or the Step
//! Functions activity worker) and "run it somewhere" (host or docker).
//!
//! A [`StepSpec`] is self-contained: every `{{ }}` is already rendered, the
//! env already holds the requested secret values. A [`Runtime`] runs one
//! attempt of it and reports the exit; [`run_attempt`] wraps that with the
//! parts both callers share: the attempt's private directory (`TMPDIR` and
//! the `$TOPSAIL_OUTPUT` file), reading and checking the outputs, and
//! removing the directory again whatever happened.

use std::future::Future;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::time::Duration;

use indexmap::IndexMap;
use tokio::sync::{mpsc, watch};

use crate::run::outputs;

/// Error names a failed step reports. They are what `{{ failed.error }}`
/// holds and what the activity worker sends to Step Functions, so that ASL
/// Retry/Catch rules can match them.
pub mod errors {
    pub const SCRIPT_FAILED: &str = "topsail.ScriptFailed";
    /// The ASL name, so a `Retry`/`Catch` on `States.Timeout` means the same.
    pub const TIMEOUT: &str = "States.Timeout";
    pub const OUTPUT_MISSING: &str = "topsail.OutputMissing";
    pub const SECRET_MISSING: &str = "topsail.SecretMissing";
    pub const REJECTED: &str = "topsail.Rejected";
    /// Docker unreachable, image missing, container could not start, bad value.
    pub const RUNTIME: &str = "topsail.RuntimeError";
}

/// One step (or one `foreach` instance) ready to run.
#[derive(Clone, Debug)]
pub struct StepSpec {
    pub run_id: String,
    pub pipeline: String,
    /// Display name: the step's name, or `step[item]` for a foreach instance.
    pub name: String,
    /// The step's name in the pipeline (labels, `TOPSAIL_STEP`).
    pub step: String,
    /// `None`: run on the host.
    pub image: Option<String>,
    /// The script with every value substituted (shell-quoted).
    pub script: String,
    /// The interpreter; `None` means `sh -e`.
    pub shell: Option<String>,
    /// Pipeline env, step env and the requested secrets, in that order.
    pub env: Vec<(String, String)>,
    /// Names of the secrets in `env`: their values are masked in logs.
    pub secret_names: Vec<String>,
    /// Variables the host runtime must not pass on from the runner's own
    /// environment: declared secrets this step did not ask for.
    pub env_remove: Vec<String>,
    /// Working directory inside the container (`None`: `/workspace`).
    pub workdir: Option<String>,
    pub timeout: Option<Duration>,
    pub outputs: Vec<String>,
    /// The pipeline's directory: the host cwd, `/workspace` in a container.
    pub pipeline_dir: PathBuf,
}

impl StepSpec {
    /// The interpreter and its arguments; the script file path comes last.
    pub fn shell_words(&self) -> Vec<String> {
        match &self.shell {
            None => vec!["sh".into(), "-e".into()],
            Some(s) => s.split_whitespace().map(str::to_string).collect(),
        }
    }
}

/// Where a runtime puts what one attempt needs on disk. The directory is the
/// same path on the host and inside a container.
#[derive(Clone, Debug)]
pub struct AttemptDir {
    pub root: PathBuf,
    /// The step's `TMPDIR`.
    pub tmp: PathBuf,
    pub script: PathBuf,
    /// `$TOPSAIL_OUTPUT`.
    pub output: PathBuf,
}

impl AttemptDir {
    pub fn create(base: &Path, spec: &StepSpec) -> std::io::Result<AttemptDir> {
        let safe: String = spec
            .name
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || c == '-' {
                    c
                } else {
                    '_'
                }
            })
            .take(40)
            .collect();
        let root = unique_dir(base, &format!("topsail-{}-{safe}", spec.run_id))?;
        let tmp = root.join("tmp");
        std::fs::create_dir(&tmp)?;
        let script = root.join("script");
        std::fs::write(&script, &spec.script)?;
        let output = root.join("output");
        std::fs::write(&output, "")?;
        // A container may run as another user: let it write its TMPDIR and outputs.
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&root, std::fs::Permissions::from_mode(0o755))?;
            std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(0o1777))?;
            std::fs::set_permissions(&output, std::fs::Permissions::from_mode(0o666))?;
        }
        Ok(AttemptDir {
            root,
            tmp,
            script,
            output,
        })
    }

    /// The env every step sees besides its own (LANGUAGE.md section 5).
    pub fn builtin_env(&self, spec: &StepSpec) -> Vec<(String, String)> {
        vec![
            ("TOPSAIL_PIPELINE".into(), spec.pipeline.clone()),
            ("TOPSAIL_RUN_ID".into(), spec.run_id.clone()),
            ("TOPSAIL_STEP".into(), spec.step.clone()),
            ("TOPSAIL_OUTPUT".into(), self.output.display().to_string()),
            ("TMPDIR".into(), self.tmp.display().to_string()),
        ]
    }
}

fn unique_dir(base: &Path, prefix: &str) -> std::io::Result<PathBuf> {
    use std::sync::atomic::{AtomicU64, Ordering};
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    loop {
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        let path = base.join(format!("{prefix}-{}-{n}", std::process::id()));
        match std::fs::create_dir(&path) {
            Ok(()) => return Ok(path),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
            Err(e) => return Err(e),
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stream {
    Stdout,
    Stderr,
    /// Messages from topsail itself about the step (pulls, retries, kills).
    System,
}

#[derive(Clone, Debug)]
pub struct Line {
    pub stream: Stream,
    pub text: String,
}

/// What a running attempt may talk to.
#[derive(Clone)]
pub struct StepIo {
    /// Output lines as they come (unmasked: the receiver masks secrets).
    pub lines: mpsc::UnboundedSender<Line>,
    /// Becomes `true` when the run is cancelled: stop, clean up, return.
    pub cancel: watch::Receiver<bool>,
}

impl StepIo {
    pub fn system(&self, text: impl Into<String>) {
        let _ = self.lines.send(Line {
            stream: Stream::System,
            text: text.into(),
        });
    }
}

/// How one attempt of a runtime ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Exit {
    Code(i64),
    TimedOut,
    Cancelled,
    /// The runtime could not run the script at all.
    Error(String),
}

/// How one attempt ended, outputs checked.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    Succeeded(IndexMap<String, String>),
    Failed { error: String, cause: String },
    Cancelled,
}

impl Outcome {
    pub fn failed(error: &str, cause: impl Into<String>) -> Outcome {
        Outcome::Failed {
            error: error.to_string(),
            cause: cause.into(),
        }
    }
}

pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// Runs one attempt of a step somewhere. Implementations must kill what they
/// started on timeout or cancel and leave nothing behind (processes,
/// containers) before returning.
pub trait Runtime: Send + Sync {
    fn run_step<'a>(
        &'a self,
        spec: &'a StepSpec,
        dir: &'a AttemptDir,
        io: StepIo,
    ) -> BoxFuture<'a, Exit>;
}

/// One attempt with everything around it: the attempt directory (created
/// under `tmp_base`, removed afterwards), the runtime, the outputs.
pub async fn run_attempt(
    runtime: &dyn Runtime,
    spec: &StepSpec,
    tmp_base: &Path,
    io: StepIo,
) -> Outcome {
    let dir = match AttemptDir::create(tmp_base, spec) {
        Ok(d) => d,
        Err(e) => {
            return Outcome::failed(
                errors::RUNTIME,
                format!(
                    "cannot create the step's temp dir under {}: {e}",
                    tmp_base.display()
                ),
            );
        }
    };
    let exit = runtime.run_step(spec, &dir, io.clone()).await;
    let outcome = match exit {
        Exit::Code(0) => read_outputs(spec, &dir, &io),
        Exit::Code(137) => Outcome::failed(
            errors::SCRIPT_FAILED,
            "killed (exit code 137): probably out of memory",
        ),
        Exit::Code(code) => Outcome::failed(errors::SCRIPT_FAILED, format!("exit code {code}")),
        Exit::TimedOut => Outcome::failed(
            errors::TIMEOUT,
            format!(
                "timed out after {}",
                spec.timeout
                    .map_or_else(|| "?".into(), crate::model::format_duration)
            ),
        ),
        Exit::Cancelled => Outcome::Cancelled,
        Exit::Error(msg) => Outcome::failed(errors::RUNTIME, msg),
    };
    if let Err(e) = std::fs::remove_dir_all(&dir.root) {
        // A container running as root may leave files we cannot remove.
        io.system(format!(
            "warning: could not remove {}: {e}",
            dir.root.display()
        ));
    }
    outcome
}

fn read_outputs(spec: &StepSpec, dir: &AttemptDir, io: &StepIo) -> Outcome {
    let text = match std::fs::read_to_string(&dir.output) {
        Ok(t) => t,
        Err(e) => {
            return Outcome::failed(errors::RUNTIME, format!("cannot read $TOPSAIL_OUTPUT: {e}"));
        }
    };
    let (mut set, problems) = outputs::parse(&text);
    for p in problems {
        io.system(format!("warning: $TOPSAIL_OUTPUT: {p}"));
    }
    let missing: Vec<&str> = spec
        .outputs
        .iter()
        .filter(|o| !set.contains_key(*o))
        .map(String::as_str)
        .collect();
    if !missing.is_empty() {
        return Outcome::failed(
            errors::OUTPUT_MISSING,
            format!(
                "declared output{} {} not set (append `NAME=value` to \"$TOPSAIL_OUTPUT\")",
                if missing.len() == 1 { "" } else { "s" },
                missing
                    .iter()
                    .map(|m| format!("`{m}`"))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        );
    }
    let undeclared: Vec<String> = set
        .keys()
        .filter(|k| !spec.outputs.contains(k))
        .cloned()
        .collect();
    for k in undeclared {
        io.system(format!(
            "warning: output `{k}` is set but not declared with `output {k}`"
        ));
        set.shift_remove(&k);
    }
    Outcome::Succeeded(set)
}
