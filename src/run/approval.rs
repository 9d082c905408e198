//! Local approvals: an approval step under `topsail run` is granted by
//! `--approve STEP`/`--approve-all`, else asked at the terminal, else fails
//! (`topsail.Rejected`) saying how to approve; either way it is logged.

use std::sync::Arc;

use indexmap::IndexMap;
use tokio::sync::watch;

use crate::model::errors;
use crate::run::attempt::{Shared, StepLog};
use crate::run::runtime::{Outcome, Stream};

/// An approval gate: `--approve`/`--approve-all`, else a prompt on a TTY,
/// else a failure that says how to approve.
pub(super) async fn approve(
    sh: &Arc<Shared>,
    step: &str,
    name: &str,
    message: &str,
    mut cancel: watch::Receiver<bool>,
) -> Outcome {
    let log = StepLog {
        record: sh.record.as_ref(),
        unit: name,
    };
    log.write(Stream::System, &format!("approval: {message}"));
    let outcome = if sh.opts.approve_all || sh.opts.approve.iter().any(|a| a == step || a == name) {
        let how = if sh.opts.approve_all {
            "--approve-all"
        } else {
            "--approve"
        };
        sh.ui.system(name, &format!("approved by {how}: {message}"));
        Outcome::Succeeded(IndexMap::new())
    } else if sh.opts.interactive {
        let ui = sh.ui.clone();
        let question = format!("{name}: {message}");
        let ask = tokio::task::spawn_blocking(move || ui.prompt(&question));
        tokio::select! {
            answer = ask => match answer {
                Ok(Some(true)) => Outcome::Succeeded(IndexMap::new()),
                Ok(Some(false)) => Outcome::failed(errors::REJECTED, "rejected at the prompt"),
                _ => Outcome::failed(errors::REJECTED, "no answer at the prompt"),
            },
            _ = cancel.wait_for(|c| *c) => Outcome::Cancelled,
        }
    } else {
        Outcome::failed(
            errors::REJECTED,
            format!(
                "needs approval (\"{message}\") and there is no terminal to ask on: \
                 pass --approve {step} or --approve-all"
            ),
        )
    };
    let line = match &outcome {
        Outcome::Succeeded(_) => "approved".to_string(),
        Outcome::Failed { cause, .. } => format!("not approved: {cause}"),
        Outcome::Cancelled => "cancelled".into(),
    };
    log.write(Stream::System, &line);
    log.flush();
    outcome
}
