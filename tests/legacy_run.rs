//! Old service manifests run locally with `topsail run --context`: values
//! written through the `.type` contract reach later states' env vars, a
//! failing script fails its step, `timeoutMillis` is honoured, and
//! `OnErrorContext` runs the other context's states.

use crate::common::{Test, repo};

fn fixture(name: &str) -> String {
    std::fs::read_to_string(repo().join("tests/fixtures/legacy").join(name))
        .expect("legacy fixture exists")
}

fn run(name: &str) -> (Test, crate::common::Run) {
    let t = Test::new()
        .file(name, &fixture(name))
        .args(&["run", name, "--context", "deploy"]);
    let r = t.run();
    (t, r)
}

#[test]
fn type_file_outputs_reach_later_states_env() {
    let (t, r) = run("outputs.yaml");
    assert_eq!(r.status, 0, "{}{}", r.stdout, r.stderr);
    let result =
        std::fs::read_to_string(t.path("result.txt")).expect("the second state wrote result.txt");
    // greeting came through `.type` from the first state (trailing newline
    // stripped), equation keeps its `=`, the cloud spec arrives as JSON.
    let fields: Vec<&str> = result.trim_end().split('|').collect();
    assert_eq!(fields[0], "hello world");
    assert_eq!(fields[1], "42");
    assert_eq!(fields[2], "a=b");
    let spec: serde_json::Value = serde_json::from_str(fields[3]).expect("JSON cloud spec");
    assert_eq!(spec["merged"]["team"], "override");
    assert_eq!(spec["tags"]["team"], "sail");
    assert_eq!(fields[4], "7");
}

#[test]
fn a_failing_script_fails_the_run() {
    let (_, r) = run("failing.yaml");
    assert_eq!(r.status, 1, "{}{}", r.stdout, r.stderr);
    assert!(r.stdout.contains("exit code 3"), "{}", r.stdout);
    assert!(
        r.stdout.contains("not run because `fail` failed"),
        "{}",
        r.stdout
    );
}

#[test]
fn timeout_millis_is_honoured() {
    let start = std::time::Instant::now();
    let (_, r) = run("timeout.yaml");
    assert_eq!(r.status, 1, "{}{}", r.stdout, r.stderr);
    assert!(r.stdout.contains("States.Timeout"), "{}", r.stdout);
    assert!(
        start.elapsed() < std::time::Duration::from_secs(20),
        "the sleep was not cut short"
    );
}

#[test]
fn on_error_context_runs_the_other_workflow() {
    let (t, r) = run("on_error.yaml");
    assert_eq!(
        r.status, 1,
        "the run still ends failed:\n{}{}",
        r.stdout, r.stderr
    );
    let rolled = std::fs::read_to_string(t.path("rolled-back")).expect("the abort workflow ran");
    assert_eq!(rolled.trim(), "rolled back to web-old");
}
