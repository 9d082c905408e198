//! One unit's attempts: [`run_with_retries`] runs a script step's
//! [`StepSpec`] on its [`Runtime`] (the runtime enforces the step's
//! `timeout`), masks and shows its lines, writes them to the run's log, and
//! runs it again after the `retry` delay (the ASL Retrier's) while attempts
//! remain; [`Shared`] is what every unit's task shares with the scheduler.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;

use crate::run::record::Record;
use crate::run::runtime::{self, Outcome, Runtime, StepIo, StepSpec, Stream};
use crate::run::ui::Ui;
use crate::run::{RunOptions, Secrets};

/// What unit tasks share: read-only for the run's duration.
pub(super) struct Shared {
    pub(super) run_id: String,
    pub(super) pipeline_name: String,
    pub(super) opts: Arc<RunOptions>,
    pub(super) secrets: Secrets,
    pub(super) ui: Arc<Ui>,
    pub(super) record: Option<Record>,
    /// Attempt directories of host steps, reused across steps of this run.
    pub(super) dirs: runtime::AttemptPool,
    /// The AWS credentials of each `aws` step (by step name), resolved when
    /// the run starts, or why none could be had.
    pub(super) aws: std::collections::HashMap<String, Result<crate::run::aws::StepAws, String>>,
}

pub(super) async fn run_with_retries(
    sh: &Shared,
    runtime: &dyn Runtime,
    spec: &StepSpec,
    retry: Option<&crate::model::Retry>,
    mut cancel: watch::Receiver<bool>,
) -> (u32, Outcome) {
    let log = StepLog {
        record: sh.record.as_ref(),
        unit: &spec.name,
    };
    let max = retry.map_or(0, |r| r.max_attempts);
    let mut attempt = 1;
    loop {
        let what = match &spec.image {
            Some(i) => format!("in {i}"),
            None => "on the host".into(),
        };
        let msg = if attempt == 1 {
            format!("started {what}")
        } else {
            format!("attempt {attempt} of {} {what}", max + 1)
        };
        sh.ui.system(&spec.name, &msg);
        log.write(Stream::System, &msg);
        let (tx, mut rx) = runtime::line_channel();
        let io = StepIo {
            lines: tx,
            cancel: cancel.clone(),
        };
        let fut = runtime::run_attempt_pooled(runtime, spec, &sh.opts.tmp_base, Some(&sh.dirs), io);
        tokio::pin!(fut);
        let mut masker = sh.secrets.step_masker();
        let outcome = loop {
            tokio::select! {
                biased;
                Some(line) = rx.recv() => show_all(sh, &spec.name, &log, masker.push(line)),
                outcome = &mut fut => {
                    while let Ok(line) = rx.try_recv() {
                        show_all(sh, &spec.name, &log, masker.push(line));
                    }
                    show_all(sh, &spec.name, &log, masker.finish());
                    break outcome;
                }
            }
        };
        match outcome {
            Outcome::Failed { error, cause } if attempt <= max => {
                let delay = retry.map_or(Duration::ZERO, |r| r.delay(attempt));
                let msg = format!(
                    "attempt {attempt} failed: {} [{error}]; retrying in {}",
                    sh.secrets.mask(&cause),
                    fmt_secs(delay)
                );
                sh.ui.system(&spec.name, &msg);
                log.write(Stream::System, &msg);
                tokio::select! {
                    () = tokio::time::sleep(delay) => {}
                    _ = cancel.wait_for(|c| *c) => return (attempt, Outcome::Cancelled),
                }
                attempt += 1;
            }
            other => {
                if let Outcome::Succeeded(_) = &other {
                    log.write(Stream::System, "succeeded");
                }
                if let Outcome::Failed { error, cause } = &other {
                    log.write(
                        Stream::System,
                        &format!("failed: {} [{error}]", sh.secrets.mask(cause)),
                    );
                }
                log.flush();
                return (attempt, other);
            }
        }
    }
}

pub(super) fn fmt_secs(d: Duration) -> String {
    format!("{:.1}s", d.as_secs_f64())
}

/// Masked lines to the screen and the log.
fn show_all(sh: &Shared, name: &str, log: &StepLog<'_>, lines: Vec<(Stream, String)>) {
    for (stream, text) in lines {
        show(sh, name, log, stream, &text);
    }
}

/// A masked line to the screen and the log.
fn show(sh: &Shared, name: &str, log: &StepLog<'_>, stream: Stream, text: &str) {
    match stream {
        Stream::System => sh.ui.system(name, text),
        s => sh.ui.line(name, s, text),
    }
    log.write(stream, text);
}

/// One unit's lines in the run's log (already masked when they get here).
pub(super) struct StepLog<'a> {
    pub(super) record: Option<&'a Record>,
    pub(super) unit: &'a str,
}

impl StepLog<'_> {
    pub(super) fn write(&self, stream: Stream, text: &str) {
        if let Some(r) = self.record {
            let tag = match stream {
                Stream::Stdout => "",
                Stream::Stderr => "[stderr] ",
                Stream::System => "[topsail] ",
            };
            r.log_line(self.unit, &format!("{tag}{text}"));
        }
    }

    pub(super) fn flush(&self) {
        if let Some(r) = self.record {
            r.flush_log();
        }
    }
}
