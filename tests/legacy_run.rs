//! Old service manifests run locally with `topsail run --context`: values
//! written through the `.type` contract reach later states' env vars, a
//! failing script fails its step, `timeoutMillis` is not enforced, and
//! `OnErrorContext` runs the other context's states.

use crate::common::{Test, legacy_manifest};

/// `topsail run NAME --context deploy` in a dir holding the fixture `name`.
fn run(name: &str) -> Test {
    Test::new()
        .file(name, &legacy_manifest(name))
        .args(&["run", name, "--context", "deploy"])
}

#[test]
fn type_file_outputs_reach_later_states_env() {
    let t = run("outputs.yaml").status(0);
    t.run();
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
    run("failing.yaml")
        .normalised()
        .stdout(
            "
            fail  | > started on the host
            fail  | about to fail
            fail  | ! failed: exit code 3 [topsail.ScriptFailed]
            STEP   STATUS     ATTEMPTS  DURATION
            fail   failed            1      [T]  exit code 3
            after  cancelled         0         -  not run because `fail` failed
            run [RUN] failed in [T]: 0 succeeded, 1 failed, 0 skipped, 1 cancelled
            record: [DIR]/.topsail/runs/[RUN]
            ",
        )
        .stderr_contains("context `deploy` selects nothing in this manifest")
        // The failed state at its source, as `topsail check` shows it.
        .stderr_contains("topsail::step-failed")
        .stderr_contains("step `fail` failed: exit code 3 [topsail.ScriptFailed]")
        .status(1)
        .run();
}

/// The old runner never read `timeoutMillis` (docs/legacy.md, item 2): a
/// state that runs past it still finishes.
#[test]
fn timeout_millis_is_not_enforced() {
    let t = run("timeout.yaml")
        .stderr_contains("`timeoutMillis` is not enforced")
        .status(0);
    t.run();
    assert!(t.path("slow-finished").exists(), "the state was cut short");
}

#[test]
fn on_error_context_runs_the_other_workflow() {
    // The run still ends failed.
    let t = run("on_error.yaml").status(1);
    t.run();
    let rolled = std::fs::read_to_string(t.path("rolled-back")).expect("the abort workflow ran");
    assert_eq!(rolled.trim(), "rolled back to web-old");
}
