//! `topsail start --follow`: follow an execution until it ends, printing
//! each step's progress from its history ([`history`](super::history)) in
//! the look of a local run, and write the same run record
//! (`.topsail/runs/<EXEC>/` next to the pipeline file) when the pipeline is
//! known. The CLI only wires it up and maps the outcome to an exit code.

use std::path::Path;
use std::time::Duration;

use indexmap::IndexMap;

use crate::model::{Pipeline, Value};
use crate::run::record::Record;
use crate::run::report::RunStatus;
use crate::run::ui::{Ui, want_color};
use crate::sfn::Clients;
use crate::sfn::history::{Note, Tracker, fetch};

/// Follow execution `arn` to its end; its final status. Errors only when the
/// history cannot be read (more than ten times in a row).
pub async fn follow(
    c: &Clients,
    arn: &str,
    pipeline: Option<&Pipeline>,
    file: &Path,
    params: &IndexMap<String, Value>,
) -> Result<RunStatus, String> {
    let names: Vec<String> = pipeline
        .map(|p| p.steps.iter().map(|s| s.name.clone()).collect())
        .unwrap_or_default();
    let ui = Ui::new(want_color(), false, names);
    let mut tracker = Tracker::new(arn);
    let mut failures = 0;
    loop {
        match fetch(&c.sfn, arn).await {
            Ok(events) => {
                failures = 0;
                for note in tracker.feed(&events) {
                    match note {
                        Note::System(u, t) => ui.system(&u, &t),
                        Note::Failure(u, t) => ui.failure(&u, &t),
                    }
                }
            }
            Err(e) => {
                failures += 1;
                if failures > 10 {
                    return Err(format!("cannot read the execution history: {e}"));
                }
            }
        }
        if tracker.end.is_some() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let (status, why, _) = tracker.end.clone().expect("the loop ends only at the end");
    if let Some(p) = pipeline {
        let report = tracker.report(p, file.to_path_buf(), params);
        let dir = file
            .parent()
            .filter(|d| !d.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        let record = Record::create(dir, &report.run_id).ok();
        if let Some(r) = &record {
            r.write(&report);
        }
        ui.summary(&report, record.as_ref().map(|r| r.dir.as_path()));
    } else {
        outln!(
            "execution {}",
            if status == RunStatus::Succeeded {
                "succeeded"
            } else {
                "failed"
            }
        );
    }
    if let Some((error, cause)) = why {
        outln!("execution error: {error}: {cause}");
    }
    Ok(status)
}
