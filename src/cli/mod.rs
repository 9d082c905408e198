//! The command line: one file per subcommand, each a clap `Args` struct and a
//! `run(args) -> Result<(), Error>`; [`main`] prints the [`Error`] and maps it
//! to the exit code in one place ([`error`]). Exit codes: 0 success, 1 the
//! pipeline (or a step) failed or has errors, 2 usage or I/O errors, 130
//! interrupted.

pub mod approve;
pub mod check;
pub mod cloud;
pub mod compile;
pub mod convert;
pub mod deploy;
pub mod error;
pub mod fmt;
pub mod graph;
pub mod logs;
pub mod lsp;
pub mod run;
pub mod runs;
pub mod start;
pub mod stop;
pub mod worker;

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Parser, Subcommand};

pub use error::Error;

use crate::check::{Checked, LoadOptions};
use crate::model::Pipeline;

#[derive(Debug, Parser)]
#[command(
    name = "topsail",
    version,
    about = "Check, run and compile topsail pipelines",
    long_about = "topsail turns a Makefile-like pipeline language into a typed DAG of steps, checks it \
like a compiler, and runs it locally (Docker or the host) or compiles it to AWS Step Functions."
)]
pub struct Cli {
    /// No colours or other escape sequences (also: NO_COLOR, or output not a terminal)
    #[arg(long, global = true)]
    pub no_color: bool,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Check a pipeline and report every problem
    Check(check::Args),
    /// Print the DAG as Graphviz dot or Mermaid
    Graph(graph::Args),
    /// Format a .topsail file in the canonical layout
    Fmt(fmt::Args),
    /// Convert between the .topsail and YAML forms
    Convert(convert::Args),
    /// Run the language server over stdio (for editors)
    Lsp(lsp::Args),
    /// Run a pipeline locally (Docker for steps with an image, else the host)
    Run(run::Args),
    /// List recent runs recorded in .topsail/runs
    Runs(runs::Args),
    /// Print the logs of a recorded run
    Logs(logs::Args),
    /// Compile to Amazon States Language (or draw the DAG)
    Compile(compile::Args),
    /// Create or update the pipeline's state machine on AWS Step Functions
    Deploy(deploy::Args),
    /// Start an execution on Step Functions (and follow it)
    Start(start::Args),
    /// Serve a pipeline's Step Functions activity: run its steps here
    Worker(Box<worker::Args>),
    /// List, approve or reject approval steps waiting on Step Functions
    Approve(approve::Args),
    /// Stop an execution on Step Functions (its running steps are killed)
    Stop(stop::Args),
}

impl Command {
    /// The subcommand as typed (for messages that suggest a command line).
    fn name(&self) -> &'static str {
        match self {
            Command::Check(_) => "check",
            Command::Graph(_) => "graph",
            Command::Fmt(_) => "fmt",
            Command::Convert(_) => "convert",
            Command::Lsp(_) => "lsp",
            Command::Run(_) => "run",
            Command::Runs(_) => "runs",
            Command::Logs(_) => "logs",
            Command::Compile(_) => "compile",
            Command::Deploy(_) => "deploy",
            Command::Start(_) => "start",
            Command::Worker(_) => "worker",
            Command::Approve(_) => "approve",
            Command::Stop(_) => "stop",
        }
    }
}

/// The subcommand being run, set once by [`main`].
static COMMAND: std::sync::OnceLock<&'static str> = std::sync::OnceLock::new();

pub fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            let _ = e.print();
            return if e.use_stderr() {
                ExitCode::from(2)
            } else {
                ExitCode::SUCCESS
            };
        }
    };
    if cli.no_color {
        crate::run::ui::forbid_color();
    }
    let _ = COMMAND.set(cli.command.name());
    error::report(match cli.command {
        Command::Check(args) => check::run(args),
        Command::Graph(args) => graph::run(args),
        Command::Fmt(args) => fmt::run(args),
        Command::Convert(args) => convert::run(args),
        Command::Lsp(args) => lsp::run(args),
        Command::Run(args) => run::run(args),
        Command::Runs(args) => runs::run(args),
        Command::Logs(args) => logs::run(args),
        Command::Compile(args) => compile::run(args),
        Command::Deploy(args) => deploy::run(args),
        Command::Start(args) => start::run(args),
        Command::Worker(args) => worker::run(*args),
        Command::Approve(args) => approve::run(args),
        Command::Stop(args) => stop::run(args),
    })
}

/// Colour on stderr: only on a terminal, and never with `NO_COLOR` or `--no-color`.
pub fn stderr_color() -> bool {
    std::io::stderr().is_terminal() && crate::run::ui::color_allowed()
}

/// The default pipeline files, in the order they are looked for.
const DEFAULT_FILES: [&str; 3] = ["pipeline.topsail", "topsail.yaml", "topsail.yml"];

/// The pipeline file: the one given, else `pipeline.topsail`, then
/// `topsail.yaml` / `topsail.yml` in the current directory. A given
/// argument that is no pipeline file but names a step of the default
/// pipeline is refused with a hint (`topsail run smoke`).
pub fn resolve_file(file: Option<&Path>) -> Result<PathBuf, Error> {
    find_file(file).map_err(Error::Usage)
}

/// [`resolve_file`] as a message (for `check --format json`, which says it
/// as JSON).
pub fn find_file(file: Option<&Path>) -> Result<PathBuf, String> {
    if let Some(f) = file {
        if let Some(hint) = step_instead_of_file(f) {
            return Err(hint);
        }
        return Ok(f.to_path_buf());
    }
    if let Some(found) = default_file() {
        return Ok(found);
    }
    let command = COMMAND.get().copied().unwrap_or("check");
    Err(format!(
        "no pipeline file given, and there is no pipeline.topsail or topsail.yaml here\n  \
         help: pass the file, e.g. `topsail {command} path/to/pipeline.topsail`"
    ))
}

fn default_file() -> Option<PathBuf> {
    DEFAULT_FILES
        .iter()
        .map(PathBuf::from)
        .find(|p| p.is_file())
}

/// The message for an argument taken as a pipeline file that is a step's
/// name instead: it is not a pipeline file (it does not exist, or it has no
/// `.topsail`/`.yaml`/`.yml` extension and does not check as a pipeline),
/// and the default pipeline here has a step of that name.
fn step_instead_of_file(arg: &Path) -> Option<String> {
    if matches!(
        arg.extension().and_then(|e| e.to_str()),
        Some("topsail" | "yaml" | "yml")
    ) {
        return None;
    }
    let name = arg.to_str()?;
    let default = default_file()?;
    let options = LoadOptions::default();
    let pipeline = crate::check::load_with(&default, &options).ok()?.pipeline?;
    pipeline.step_by_name(name)?;
    let exists = arg.exists();
    if arg.is_file() && crate::check::load_with(arg, &options).is_ok_and(|c| c.pipeline.is_some()) {
        return None;
    }
    let default = default.display();
    let not_file = if exists {
        format!(" (the file `{name}` here is not a pipeline)")
    } else {
        String::new()
    };
    let command = COMMAND.get().copied().unwrap_or("run");
    Some(if command == "run" {
        format!("`{name}` is a step of {default}{not_file}: use `topsail run --target {name}`")
    } else {
        format!(
            "`{name}` is a step of {default}{not_file}, not a pipeline file: \
             `topsail {command}` takes the pipeline file (e.g. `topsail {command} {default}`)"
        )
    })
}

/// Load and check a pipeline for a command that then uses it: diagnostics
/// (warnings too) go to stderr; errors end the command with exit code 1,
/// an unreadable file with 2.
pub fn load_pipeline(file: Option<&Path>) -> Result<(Checked, Pipeline), Error> {
    load_pipeline_with(file, &LoadOptions::default())
}

/// [`load_pipeline`] with load options (`--context`).
pub fn load_pipeline_with(
    file: Option<&Path>,
    options: &LoadOptions,
) -> Result<(Checked, Pipeline), Error> {
    let path = resolve_file(file)?;
    let mut checked = crate::check::load_with(&path, options).map_err(Error::usage)?;
    if !checked.diagnostics.is_empty() {
        errln!("{}", checked.render(stderr_color()));
    }
    if let Some(p) = checked.pipeline.take() {
        Ok((checked, p))
    } else {
        let errors = checked.diagnostics.iter().filter(|d| d.is_error()).count();
        Err(Error::failed(format!(
            "{} has {errors} error{}; fix {} first (see `topsail check`)",
            path.display(),
            plural(errors),
            if errors == 1 { "it" } else { "them" }
        )))
    }
}

/// `--durations-from RUN`, shared by `compile` and `deploy`: weigh steps by
/// how long they took in a recorded local run, so that where the DAG is not
/// series-parallel the waiting is added where it costs least.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct DurationArgs {
    /// Weigh steps by their durations in a recorded run (`last`, a run id or unique prefix, or a run.json path) when choosing where a non-series-parallel DAG waits
    #[arg(long, value_name = "RUN")]
    pub durations_from: Option<String>,
}

impl DurationArgs {
    /// Each step's measured duration in seconds (indexed by `StepId`;
    /// `None`: not measured), or nothing without the flag. Runs are looked
    /// up beside the pipeline file, as `topsail run` records them.
    pub fn durations(
        &self,
        file: Option<&Path>,
        pipeline: &Pipeline,
    ) -> Result<Vec<Option<f64>>, Error> {
        let Some(spec) = &self.durations_from else {
            return Ok(Vec::new());
        };
        let path = Path::new(spec);
        let (what, json) = if path.is_file() || path.join("run.json").is_file() {
            let file = if path.is_file() {
                path.to_path_buf()
            } else {
                path.join("run.json")
            };
            let text = crate::source::read::read_source(&file)
                .map_err(|e| Error::usage(format!("cannot read {}: {e}", file.display())))?;
            let json = serde_json::from_str(&text).map_err(|e| {
                Error::usage(format!("{} is not a run record: {e}", file.display()))
            })?;
            (file.display().to_string(), json)
        } else {
            let pipeline_file = resolve_file(file)?;
            let dir = pipeline_file
                .parent()
                .filter(|d| !d.as_os_str().is_empty())
                .unwrap_or(Path::new("."));
            let (id, json) = crate::run::record::find_run(dir, spec).map_err(Error::usage)?;
            let json = json.ok_or_else(|| {
                Error::usage(format!(
                    "run {id} has no readable run.json (was it interrupted?)"
                ))
            })?;
            (format!("run {id}"), json)
        };
        let measured = crate::run::record::step_durations(&json);
        let durations: Vec<Option<f64>> = pipeline
            .steps
            .iter()
            .map(|s| measured.get(&s.name).copied())
            .collect();
        let known = durations.iter().flatten().count();
        if known == 0 {
            return Err(Error::usage(format!(
                "{what} has no succeeded step of pipeline `{}`\n  \
                 help: run it first (`topsail run`), or leave out --durations-from",
                pipeline.name
            )));
        }
        errln!(
            "note: step durations from {what}: {known} of {} steps measured{}",
            pipeline.steps.len(),
            if known < pipeline.steps.len() {
                " (the others count as typical)"
            } else {
                ""
            }
        );
        Ok(durations)
    }
}

/// `--context NAME` (repeatable), shared by every command that reads a file:
/// the contexts a legacy service manifest is read with.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct ContextArgs {
    /// For a legacy service manifest: a context to activate (repeatable; order matters)
    #[arg(long = "context", value_name = "NAME")]
    pub contexts: Vec<String>,
}

impl ContextArgs {
    pub fn load_options(&self) -> LoadOptions {
        LoadOptions {
            contexts: self.contexts.clone(),
        }
    }
}

pub fn plural(n: usize) -> &'static str {
    if n == 1 { "" } else { "s" }
}
