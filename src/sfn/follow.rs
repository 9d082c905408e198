//! `topsail start --follow`: follow an execution until it ends, printing
//! each step's progress from its history ([`history`](super::history)) in
//! the look of a local run, and write the same run record
//! (`.topsail/runs/<EXEC>/` next to the pipeline file) when the pipeline is
//! known. The steps' own lines come live from CloudWatch Logs
//! ([`crate::sfn::logs::Reader`]), prefixed and coloured like a local run's,
//! and go into the record's `run.log`; a failed step is shown at its source
//! when the pipeline file is known ([`crate::run::failed_at`]). The CLI only
//! wires it up and maps the outcome to an exit code.

use std::path::Path;
use std::time::Duration;

use indexmap::IndexMap;

use crate::model::{Pipeline, Value};
use crate::run::record::Record;
use crate::run::report::RunStatus;
use crate::run::ui::{Ui, want_color};
use crate::sfn::Clients;
use crate::sfn::history::{Note, Tracker, fetch};
use crate::sfn::logs::{LogLine, Reader, group_name, split_execution_arn};
use crate::source::SourceMap;

/// Follow execution `arn` to its end; its final status. Errors only when the
/// history cannot be read (more than ten times in a row).
pub async fn follow(
    c: &Clients,
    arn: &str,
    pipeline: Option<(&Pipeline, &SourceMap)>,
    file: &Path,
    params: &IndexMap<String, Value>,
) -> Result<RunStatus, String> {
    let names: Vec<String> = pipeline
        .map(|(p, _)| p.steps.iter().map(|s| s.name.clone()).collect())
        .unwrap_or_default();
    let ui = Ui::new(want_color(), false, names);
    let mut tracker = Tracker::new(arn);
    let (machine, exec_name) = split_execution_arn(arn).unwrap_or(("", arn));
    let mut reader = Reader::new(c.logs.clone(), group_name(machine), exec_name.to_string());
    // Written as lines come, so that an interrupted follow keeps them.
    let record = pipeline.and_then(|_| {
        let dir = file
            .parent()
            .filter(|d| !d.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        Record::create(dir, exec_name).ok()
    });
    let mut failures = 0;
    let mut log_warned = false;
    let show = |lines: Vec<LogLine>| {
        for l in lines {
            show_line(&ui, record.as_ref(), &l);
        }
    };
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
        match reader.poll().await {
            Ok(lines) => show(lines),
            Err(e) if !log_warned => {
                log_warned = true;
                ui.error(&format!("warning: cannot read the step logs: {e}"));
            }
            Err(_) => {}
        }
        if tracker.end.is_some() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    // Workers send a step's last lines before they answer its task; a last
    // read gets those of the step that ended the execution.
    if let Ok(lines) = reader.poll().await {
        show(lines);
    }
    let (status, why, _) = tracker.end.clone().expect("the loop ends only at the end");
    if let Some((p, sources)) = pipeline {
        let report = tracker.report(p, file.to_path_buf(), params);
        let failed = crate::run::failed_at::render_report(p, sources, &report, {
            use std::io::IsTerminal;
            std::io::stderr().is_terminal() && crate::run::ui::color_allowed()
        });
        if !failed.is_empty() {
            errln!("{failed}");
        }
        if let Some(r) = &record {
            r.flush_log();
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

/// One step line on screen (topsail's own notes are in the history's lines
/// already, but a gap in the log is said) and in the record.
fn show_line(ui: &Ui, record: Option<&Record>, l: &LogLine) {
    use crate::run::runtime::Stream;
    match l.stream {
        Stream::System => {
            if l.text.contains(" not shipped here") || l.text.contains(" lost here") {
                ui.failure(&l.unit, &l.text);
            }
        }
        s => ui.line(&l.unit, s, &l.text),
    }
    if let Some(r) = record {
        r.log_line(&l.unit, &crate::sfn::logs::record_text(l.stream, &l.text));
    }
}
