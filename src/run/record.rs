//! The run record: `.topsail/runs/<run-id>/` under the pipeline's directory,
//! with `run.json` (steps, statuses, attempts, timings, outputs) and the
//! log of every step in one file, `run.log`: one line per logged line,
//! `UNIT<TAB>LINE`. (One file per step cost more than a no-op step itself
//! where creating files is slow, as on ext4 right after many deletions.)
//! Records written before kept `logs/<unit>.log`; [`read_logs`] reads both.
//! Everything written here has already been masked: no secret value
//! reaches the disk. `topsail runs` and `topsail logs` read it.

use std::collections::HashMap;
use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use crate::run::scheduler::RunReport;

pub const RUNS_DIR: &str = ".topsail/runs";

pub const LOG_FILE: &str = "run.log";

pub struct Record {
    pub dir: PathBuf,
    /// `run.log`, shared by every step; `None` once writing it failed.
    log: Mutex<Option<BufWriter<File>>>,
}

impl Record {
    pub fn create(pipeline_dir: &Path, run_id: &str) -> std::io::Result<Record> {
        let dir = pipeline_dir.join(RUNS_DIR).join(run_id);
        std::fs::create_dir_all(&dir)?;
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(dir.join(LOG_FILE))?;
        Ok(Record {
            dir,
            log: Mutex::new(Some(BufWriter::new(log))),
        })
    }

    fn with_log(&self, f: impl FnOnce(&mut BufWriter<File>) -> std::io::Result<()>) {
        let mut log = self
            .log
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(w) = log.as_mut()
            && let Err(e) = f(w)
        {
            eprintln!(
                "topsail: cannot write {}: {e} (the run goes on without logs)",
                self.dir.join(LOG_FILE).display()
            );
            *log = None;
        }
    }

    /// Append one line of `unit`'s log (buffered: see [`Record::flush_log`]).
    pub fn log_line(&self, unit: &str, line: &str) {
        self.with_log(|w| writeln!(w, "{}\t{line}", log_key(unit)));
    }

    /// Write out what is buffered; each step does when it ends.
    pub fn flush_log(&self) {
        self.with_log(BufWriter::flush);
    }

    /// Write `run.json` atomically (a reader never sees half a file).
    pub fn write(&self, report: &RunReport) {
        let tmp = self.dir.join("run.json.tmp");
        let text = match serde_json::to_string_pretty(report) {
            Ok(t) => t,
            Err(e) => {
                eprintln!("topsail: cannot serialize the run record: {e}");
                return;
            }
        };
        if let Err(e) = std::fs::write(&tmp, text + "\n")
            .and_then(|()| std::fs::rename(&tmp, self.dir.join("run.json")))
        {
            eprintln!(
                "topsail: cannot write {}: {e}",
                self.dir.join("run.json").display()
            );
        }
    }
}

/// A unit's name as the first field of a `run.log` line (a foreach item
/// may hold a tab or a line break).
fn log_key(unit: &str) -> String {
    unit.replace(['\t', '\n', '\r'], " ")
}

/// The logged lines of each of `units` in the record at `run_dir`, in the
/// order they were written (empty for a unit that logged nothing).
pub fn read_logs(run_dir: &Path, units: &[String]) -> Vec<Vec<String>> {
    let mut by_key: HashMap<String, Vec<String>> = HashMap::new();
    if let Ok(text) = std::fs::read_to_string(run_dir.join(LOG_FILE)) {
        for line in text.lines() {
            if let Some((key, rest)) = line.split_once('\t') {
                by_key
                    .entry(key.to_string())
                    .or_default()
                    .push(rest.to_string());
            }
        }
    }
    units
        .iter()
        .map(|u| match by_key.remove(&log_key(u)) {
            Some(lines) => lines,
            // A record from before `run.log`: one file per unit.
            None => std::fs::read_to_string(run_dir.join("logs").join(log_file_name(u)))
                .map(|t| t.lines().map(str::to_string).collect())
                .unwrap_or_default(),
        })
        .collect()
}

/// `deploy[eu-west-1]` -> `deploy[eu-west-1].log`; anything odd becomes `_`
/// (the per-unit log files of records from before `run.log`).
pub fn log_file_name(unit: &str) -> String {
    let safe: String = unit
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "-_.[]".contains(c) {
                c
            } else {
                '_'
            }
        })
        .collect();
    format!("{safe}.log")
}

/// Run ids under `dir`'s record folder, newest first.
pub fn list_runs(dir: &Path) -> std::io::Result<Vec<(String, Option<serde_json::Value>)>> {
    let root = dir.join(RUNS_DIR);
    let mut ids: Vec<String> = match std::fs::read_dir(&root) {
        Ok(rd) => rd
            .filter_map(Result::ok)
            .filter(|e| e.path().is_dir())
            .filter_map(|e| e.file_name().into_string().ok())
            .collect(),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
        Err(e) => return Err(e),
    };
    ids.sort();
    ids.reverse();
    Ok(ids
        .into_iter()
        .map(|id| {
            let json = crate::syntax::read::read_source(&root.join(&id).join("run.json"))
                .ok()
                .and_then(|t| serde_json::from_str(&t).ok());
            (id, json)
        })
        .collect())
}

/// The recorded run `spec` names under `dir`: `last`, a run id, or a
/// unique prefix of one; with its `run.json` when it could be read.
pub fn find_run(dir: &Path, spec: &str) -> Result<(String, Option<serde_json::Value>), String> {
    let runs = list_runs(dir).map_err(|e| format!("cannot read the run records: {e}"))?;
    let mut matching: Vec<_> = if spec == "last" {
        runs.into_iter().take(1).collect()
    } else {
        runs.into_iter()
            .filter(|(id, _)| id.starts_with(spec))
            .collect()
    };
    match matching.len() {
        1 => Ok(matching.remove(0)),
        0 => Err(format!(
            "no recorded run matches `{spec}` in {} (see `topsail runs`)",
            dir.join(RUNS_DIR).display()
        )),
        _ => {
            let ids: Vec<&str> = matching.iter().map(|(i, _)| i.as_str()).collect();
            Err(format!("`{spec}` matches several runs: {}", ids.join(", ")))
        }
    }
}

/// How long each step took in a recorded run (`run.json`), in seconds, by
/// step name: steps that succeeded; for a `foreach` step its slowest
/// instance (the instances run side by side).
pub fn step_durations(run: &serde_json::Value) -> HashMap<String, f64> {
    let mut out: HashMap<String, f64> = HashMap::new();
    let units = run.get("steps").and_then(|s| s.as_array());
    for u in units.into_iter().flatten() {
        let (Some(step), Some(status), Some(ms)) = (
            u.get("step").and_then(|s| s.as_str()),
            u.get("status").and_then(|s| s.as_str()),
            u.get("duration_ms").and_then(serde_json::Value::as_u64),
        ) else {
            continue;
        };
        if status == "succeeded" {
            let d = out.entry(step.to_string()).or_insert(0.0);
            *d = d.max(ms as f64 / 1000.0);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_come_from_succeeded_steps_and_the_slowest_instance() {
        let run = serde_json::json!({"steps": [
            {"name": "a", "step": "a", "status": "succeeded", "duration_ms": 1500},
            {"name": "f[x]", "step": "f", "status": "succeeded", "duration_ms": 200},
            {"name": "f[y]", "step": "f", "status": "succeeded", "duration_ms": 900},
            {"name": "b", "step": "b", "status": "failed", "duration_ms": 10},
            {"name": "c", "step": "c", "status": "skipped", "duration_ms": 0},
            {"name": "odd"}
        ]});
        let d = step_durations(&run);
        assert_eq!(d.len(), 2, "{d:?}");
        assert!(
            (d["a"] - 1.5).abs() < 1e-9 && (d["f"] - 0.9).abs() < 1e-9,
            "{d:?}"
        );
    }

    #[test]
    fn runs_are_found_by_last_id_or_unique_prefix() {
        let dir = tempfile::tempdir().unwrap();
        for id in ["20261125-100000-aaaa", "20261125-110000-bbbb"] {
            let d = dir.path().join(RUNS_DIR).join(id);
            std::fs::create_dir_all(&d).unwrap();
            std::fs::write(d.join("run.json"), format!(r#"{{"run_id": "{id}"}}"#)).unwrap();
        }
        assert_eq!(
            find_run(dir.path(), "last").unwrap().0,
            "20261125-110000-bbbb"
        );
        let (id, json) = find_run(dir.path(), "20261125-10").unwrap();
        assert_eq!(id, "20261125-100000-aaaa");
        assert_eq!(json.unwrap()["run_id"], "20261125-100000-aaaa");
        let many = find_run(dir.path(), "2026").unwrap_err();
        assert!(many.contains("matches several runs"), "{many}");
        let none = find_run(dir.path(), "1999").unwrap_err();
        assert!(none.starts_with("no recorded run matches `1999`"), "{none}");
    }

    #[test]
    fn run_log_lines_come_back_per_unit_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let rec = Record::create(dir.path(), "r1").unwrap();
        rec.log_line("a", "[topsail] started on the host");
        rec.log_line("f[x\ty]", "tab in the item");
        rec.log_line("a", "hello\tworld");
        rec.flush_log();
        let units = ["a", "f[x\ty]", "silent"].map(str::to_string);
        let logs = read_logs(&rec.dir, &units);
        assert_eq!(logs[0], ["[topsail] started on the host", "hello\tworld"]);
        assert_eq!(logs[1], ["tab in the item"]);
        assert!(logs[2].is_empty());
    }

    #[test]
    fn records_from_before_run_log_are_still_read() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("logs")).unwrap();
        std::fs::write(dir.path().join("logs/deploy[eu].log"), "one\ntwo\n").unwrap();
        let logs = read_logs(dir.path(), &["deploy[eu]".to_string()]);
        assert_eq!(logs[0], ["one", "two"]);
    }
}
