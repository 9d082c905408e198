//! The run record: `.topsail/runs/<run-id>/` under the pipeline's directory,
//! with `run.json` (steps, statuses, attempts, timings, outputs) and one log
//! per step in `logs/`. Everything written here has already been masked: no
//! secret value reaches the disk. `topsail runs` and `topsail logs` read it.

use std::fs::File;
use std::io::BufWriter;
use std::path::{Path, PathBuf};

use crate::run::scheduler::RunReport;

pub const RUNS_DIR: &str = ".topsail/runs";

pub struct Record {
    pub dir: PathBuf,
}

impl Record {
    pub fn create(pipeline_dir: &Path, run_id: &str) -> std::io::Result<Record> {
        let dir = pipeline_dir.join(RUNS_DIR).join(run_id);
        std::fs::create_dir_all(dir.join("logs"))?;
        Ok(Record { dir })
    }

    pub fn open_log(&self, unit: &str) -> std::io::Result<BufWriter<File>> {
        let path = self.dir.join("logs").join(log_file_name(unit));
        let f = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)?;
        Ok(BufWriter::new(f))
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

/// `deploy[eu-west-1]` -> `deploy[eu-west-1].log`; anything odd becomes `_`.
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
            let json = std::fs::read_to_string(root.join(&id).join("run.json"))
                .ok()
                .and_then(|t| serde_json::from_str(&t).ok());
            (id, json)
        })
        .collect())
}
