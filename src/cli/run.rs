//! `topsail run [FILE]`: check the pipeline, resolve the command line into
//! [`RunOptions`], then run it (or print the plan with `--dry-run`, or keep
//! rerunning it with `--watch`). Ctrl-C, SIGTERM and SIGHUP (the terminal
//! closed) cancel the run cleanly and give exit code 130.
//!
//! The run record goes under the pipeline's directory, which must then be
//! a project's: the pipeline is a regular file (not `/dev/null`, a FIFO or
//! a device, whose directory is nobody's project).

use super::Error;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use tokio::sync::watch;

use crate::model::{Action, Pipeline};
use crate::run::{self, RunOptions, Runtimes, Secrets, ui};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The pipeline (default: pipeline.topsail, then topsail.yaml)
    pub file: Option<PathBuf>,
    /// At most N steps at once (default: the number of CPUs)
    #[arg(long, short = 'j', value_name = "N")]
    pub jobs: Option<usize>,
    /// Set a param (type-checked against its declaration)
    #[arg(long = "param", short = 'p', value_name = "NAME=VALUE")]
    pub params: Vec<String>,
    /// Run only this step and what it needs (repeatable)
    #[arg(long = "target", short = 't', value_name = "STEP")]
    pub targets: Vec<String>,
    /// After a failure, still run every step that does not depend on it
    #[arg(long)]
    pub keep_going: bool,
    /// Approve this approval step without asking (repeatable)
    #[arg(long = "approve", value_name = "STEP")]
    pub approve: Vec<String>,
    /// Approve every approval step without asking
    #[arg(long)]
    pub approve_all: bool,
    /// Print the plan (order, images, commands) and run nothing
    #[arg(long)]
    pub dry_run: bool,
    /// Rerun when the pipeline or a file under its directory changes
    #[arg(long)]
    pub watch: bool,
    #[command(flatten)]
    pub context: super::ContextArgs,
}

pub fn run(args: Args) -> Result<(), Error> {
    let file = super::resolve_file(args.file.as_deref())?;
    let (checked, pipeline) = super::load_pipeline_with(Some(&file), &args.context.load_options())?;
    let sources = source_paths(&checked);
    let opts = match options(&pipeline, &file, &args) {
        Ok(o) => o,
        Err(msg) => return Err(Error::usage(msg)),
    };
    if args.dry_run {
        let plan = run::plan::render(&pipeline, &opts);
        out!("{}", Secrets::from_env(&pipeline).mask(&plan));
        return Ok(());
    }
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => return Err(Error::usage(format!("cannot start the async runtime: {e}"))),
    };
    let code = rt.block_on(main_async(pipeline, opts, file, sources, &args));
    // Blocking prompt threads must not keep the process alive.
    rt.shutdown_timeout(std::time::Duration::from_millis(100));
    Error::code(code)
}

/// Turn the command line into options; errors are usage errors (exit 2).
pub fn options(pipeline: &Pipeline, file: &Path, args: &Args) -> Result<RunOptions, String> {
    let params = run::resolve_params(pipeline, &args.params)?;
    let names = || pipeline.steps.iter().map(|s| s.name.as_str());
    let unknown = |n: &str, what: &str| {
        let hint = crate::diagnostics::suggest(n, names())
            .map(|s| format!(" (did you mean `{s}`?)"))
            .unwrap_or_default();
        format!("{what}: there is no step `{n}`{hint}")
    };
    for t in &args.targets {
        if pipeline.step_by_name(t).is_none() {
            return Err(unknown(t, "--target"));
        }
    }
    for a in &args.approve {
        match pipeline.step_by_name(a) {
            None => return Err(unknown(a, "--approve")),
            Some(s) if !matches!(s.action, Action::Approval { .. }) => {
                return Err(format!("--approve: step `{a}` is not an approval step"));
            }
            Some(_) => {}
        }
    }
    if args.jobs == Some(0) {
        return Err("--jobs must be at least 1".into());
    }
    // The record goes next to the pipeline: only a project's file has a
    // project directory (`run /dev/null` must not write into /dev).
    if !std::fs::metadata(file).is_ok_and(|m| m.is_file()) {
        return Err(format!(
            "{} is not a regular file: a pipeline is a file of a project, whose directory \
             keeps the run records (.topsail/runs)",
            file.display()
        ));
    }
    let dir = file
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let dir = dir
        .canonicalize()
        .map_err(|e| format!("cannot resolve {}: {e}", dir.display()))?;
    Ok(RunOptions {
        pipeline_dir: dir,
        pipeline_file: file.to_path_buf(),
        jobs: args
            .jobs
            .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, usize::from)),
        params,
        targets: args.targets.clone(),
        keep_going: args.keep_going,
        approve: args.approve.clone(),
        approve_all: args.approve_all,
        color: ui::want_color(),
        interactive: ui::is_interactive(),
        tmp_base: std::env::temp_dir(),
    })
}

/// The files a pipeline was read from (the file and its imports): a change
/// to one of them during a `--watch` run restarts it.
fn source_paths(checked: &crate::check::Checked) -> Vec<PathBuf> {
    checked
        .sources
        .files()
        .filter_map(|(_, f)| f.path.clone())
        .collect()
}

/// `a`, `a and b`, `a, b and 2 more`: changed paths for a message.
fn describe(paths: &[PathBuf], dir: &Path) -> String {
    let names: Vec<String> = paths
        .iter()
        .map(|p| p.strip_prefix(dir).unwrap_or(p).display().to_string())
        .collect();
    match names.as_slice() {
        [] => "files".into(),
        [a] => a.clone(),
        [a, b] => format!("{a} and {b}"),
        [a, b, rest @ ..] => format!("{a}, {b} and {} more", rest.len()),
    }
}

fn make_ui(pipeline: &Pipeline, opts: &RunOptions) -> Arc<ui::Ui> {
    let names = pipeline.steps.iter().map(|s| {
        if s.foreach.is_some() {
            format!("{}[xxxxxxxx]", s.name)
        } else {
            s.name.clone()
        }
    });
    Arc::new(ui::Ui::new(opts.color, opts.interactive, names))
}

/// Ctrl-C, SIGTERM or SIGHUP flips the returned flag to `true`. SIGHUP
/// (the terminal closed) gets the same clean stop: left alone it would kill
/// topsail and orphan the steps, which run in process groups of their own.
fn signals() -> watch::Receiver<bool> {
    use tokio::signal::unix::{SignalKind, signal};
    let (tx, rx) = watch::channel(false);
    // Installed before the run starts, so no signal finds the default action.
    let term = signal(SignalKind::terminate());
    let hup = signal(SignalKind::hangup());
    tokio::spawn(async move {
        let wait = |s: std::io::Result<tokio::signal::unix::Signal>| async move {
            match s {
                Ok(mut s) => {
                    s.recv().await;
                }
                Err(_) => std::future::pending().await,
            }
        };
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            () = wait(term) => {}
            () = wait(hup) => {}
        }
        let _ = tx.send(true);
    });
    rx
}

async fn main_async(
    mut pipeline: Pipeline,
    mut opts: RunOptions,
    file: PathBuf,
    sources: Vec<PathBuf>,
    args: &Args,
) -> u8 {
    let sig = signals();
    let runtimes = Runtimes::real();
    for id in run::record::sweep_lost(&opts.pipeline_dir) {
        errln!(
            "topsail: run {id} was lost (its topsail ended without finishing it); marked `lost`"
        );
    }
    let mut session = if args.watch {
        match run::watch::Session::new(&opts.pipeline_dir, &sources) {
            Ok(s) => Some(s),
            Err(e) => {
                errln!("error: {e}");
                return 2;
            }
        }
    } else {
        None
    };
    loop {
        let ui = make_ui(&pipeline, &opts);
        let (cancel_tx, cancel_rx) = watch::channel(false);
        let run_id = run::new_run_id();
        let fut = run::execute(
            Arc::new(pipeline.clone()),
            Arc::new(opts.clone()),
            runtimes.clone(),
            run_id,
            ui.clone(),
            cancel_rx,
        );
        tokio::pin!(fut);
        let mut changed = false;
        let report = loop {
            let mut sig_wait = sig.clone();
            tokio::select! {
                report = &mut fut => break report,
                _ = sig_wait.wait_for(|s| *s), if !*cancel_tx.borrow() => {
                    let _ = cancel_tx.send(true);
                }
                Some(paths) = source_changed(&mut session), if !*cancel_tx.borrow() => {
                    let what = describe(&paths, &opts.pipeline_dir);
                    ui.set_stop_reason(&format!("{what} changed"));
                    ui.error(&format!("{what} changed: cancelling this run to start again"));
                    changed = true;
                    let _ = cancel_tx.send(true);
                }
            }
        };
        let record_dir = opts
            .pipeline_dir
            .join(run::record::RUNS_DIR)
            .join(&report.run_id);
        failed_at(&file, args, &report);
        ui.summary(&report, Some(&record_dir));
        if *sig.borrow() {
            return 130;
        }
        let Some(s) = session.as_mut() else {
            return report.status.exit_code();
        };
        let written = s.run_ended().await;
        if !changed {
            if !written.is_empty() {
                errln!(
                    "note: {} changed during the run: taken as written by the run, not a reason to run again (change {} again to rerun)",
                    describe(&written, &opts.pipeline_dir),
                    if written.len() == 1 { "it" } else { "one" }
                );
            }
            errln!(
                "watching {} for changes (Ctrl-C to stop)",
                opts.pipeline_dir.display()
            );
            let mut sig_wait = sig.clone();
            tokio::select! {
                _ = sig_wait.wait_for(|s| *s) => return 130,
                c = s.next_change() => match c {
                    None => return report.status.exit_code(),
                    Some(paths) => errln!(
                        "{} changed: running again",
                        describe(&paths, &opts.pipeline_dir)
                    ),
                },
            }
        }
        // Let the burst settle, then start from the file as it is now.
        s.settle().await;
        loop {
            if let Some((p, o, sources)) = reload(&file, args) {
                pipeline = p;
                opts = o;
                s.set_sources(&sources);
                break;
            }
            errln!("the pipeline has errors: fix them and save to run again");
            let mut sig_wait = sig.clone();
            tokio::select! {
                _ = sig_wait.wait_for(|s| *s) => return 130,
                c = s.next_change() => if c.is_none() { return 1 },
            }
        }
    }
}

/// Each failed step at its source ([`run::failed_at`]) on stderr, as
/// `topsail check` shows a diagnostic; the file is read again as it is now,
/// and only when something failed.
fn failed_at(file: &Path, args: &Args, report: &run::report::RunReport) {
    if !report
        .steps
        .iter()
        .any(|u| u.status == run::report::Status::Failed)
    {
        return;
    }
    let Ok(mut checked) = crate::check::load_with(file, &args.context.load_options()) else {
        return;
    };
    let Some(p) = checked.pipeline.take() else {
        return;
    };
    let text =
        run::failed_at::render_report(&p, &checked.sources, report, crate::cli::stderr_color());
    if !text.is_empty() {
        errln!("{text}");
    }
}

/// During a `--watch` run: a change to the pipeline's sources; never without `--watch`.
async fn source_changed(session: &mut Option<run::watch::Session>) -> Option<Vec<PathBuf>> {
    match session {
        Some(s) => s.source_changed().await,
        None => std::future::pending().await,
    }
}

fn reload(file: &Path, args: &Args) -> Option<(Pipeline, RunOptions, Vec<PathBuf>)> {
    let (checked, pipeline) =
        super::load_pipeline_with(Some(file), &args.context.load_options()).ok()?;
    match options(&pipeline, file, args) {
        Ok(o) => Some((pipeline, o, source_paths(&checked))),
        Err(e) => {
            errln!("error: {e}");
            None
        }
    }
}
