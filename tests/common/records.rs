//! The run records (`.topsail/runs/ID/run.json`) a test reads after a run,
//! local or followed from Step Functions, and the attempt dirs it must not
//! leave behind.

use std::path::Path;

use serde_json::Value;

use super::Test;

/// The record of the latest run in `t`'s dir.
#[track_caller]
pub fn run_json(t: &Test) -> Value {
    let runs = t.path(".topsail/runs");
    let mut ids: Vec<_> = std::fs::read_dir(&runs)
        .unwrap_or_else(|e| panic!("no run records in {}: {e}", runs.display()))
        .map(|e| e.expect("readable dir entry").path())
        .collect();
    ids.sort();
    let last = ids.last().expect("at least one run record");
    read(&last.join("run.json"))
}

/// How many runs `t`'s dir has records of.
pub fn runs(t: &Test) -> usize {
    std::fs::read_dir(t.path(".topsail/runs")).map_or(0, Iterator::count)
}

/// The record `start --follow` (or `run`) wrote for `run_id` under `dir`.
#[track_caller]
pub fn record(dir: &Path, run_id: &str) -> Value {
    read(&dir.join(".topsail/runs").join(run_id).join("run.json"))
}

#[track_caller]
fn read(path: &Path) -> Value {
    let text = std::fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("no run record {}: {e}", path.display()));
    serde_json::from_str(&text).expect("run.json is JSON")
}

/// The unit named `name` in a run record.
#[track_caller]
pub fn unit<'a>(record: &'a Value, name: &str) -> &'a Value {
    record["steps"]
        .as_array()
        .and_then(|s| s.iter().find(|u| u["name"] == name))
        .unwrap_or_else(|| panic!("no unit `{name}` in {record:#}"))
}

/// The status of unit `name` in a run record.
#[track_caller]
pub fn status<'a>(record: &'a Value, name: &str) -> &'a str {
    unit(record, name)["status"]
        .as_str()
        .unwrap_or_else(|| panic!("unit `{name}` has no status in {record:#}"))
}

/// `t`'s `tmp/` (its runner's TMPDIR, see `Test::tmpdir`) is empty.
#[track_caller]
pub fn assert_tmp_empty(t: &Test) {
    let left: Vec<_> = std::fs::read_dir(t.path("tmp"))
        .expect("the test has a tmp/")
        .collect();
    assert!(left.is_empty(), "attempt dirs left behind: {left:?}");
}
