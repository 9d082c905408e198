//! The same-meaning test: every pipeline that can run offline (the hello
//! example, and test pipelines on the local image topsail-test/busybox) runs
//! locally with `topsail run` and on the emulator with two workers; each
//! unit's status, attempts and outputs must match between the local run
//! record and the one `start --follow` builds from the execution history.

use std::path::Path;
use std::time::Duration;

use serde_json::Value;

use crate::common::records::record;
use crate::common::{Test, command, legacy_manifest, repo, unique};
use crate::support::{ROLE, Worker, run};

const BUSYBOX_OK: &str = r#"pipeline bb
image "topsail-test/busybox:latest"
param who = "world"

make:
    output GREETING
    run echo "GREETING=hello {{ who }}" >> "$TOPSAIL_OUTPUT"

each: make
    foreach x in ["a", "b"]
    run echo "{{ x }} {{ make.GREETING }}"

skipme: make
    when who == "nobody"
    output X
    run echo "X=1" >> "$TOPSAIL_OUTPUT"

flaky: make
    retry 1 every 1s
    run:
        m="/workspace/.flaky-{{ run.id }}"
        if [ ! -e "$m" ]; then touch "$m"; exit 1; fi
        rm -f "$m"

last: each skipme flaky
    output ALL
    run echo "ALL={{ make.GREETING }}/{{ skipme.X }}" >> "$TOPSAIL_OUTPUT"
"#;

const BUSYBOX_CATCH: &str = r#"pipeline bbcatch
image "topsail-test/busybox:latest"

first:
    output N
    run echo "N=1" >> "$TOPSAIL_OUTPUT"

fails: first
    catch handler
    retry 1 every 1s
    run:
        echo oops >&2
        exit 2

after: fails
    run echo never

handler:
    output E
    run echo "E={{ failed.step }} {{ failed.error }}" >> "$TOPSAIL_OUTPUT"
"#;

/// What must mean the same: per unit, status, attempts and outputs (times
/// of day in outputs, like hello's STAMP, masked).
fn meaning(r: &Value) -> Vec<(String, String, u64, String)> {
    let digits = |s: &str| {
        let mut out = String::new();
        let mut run = String::new();
        for c in s.chars().chain(std::iter::once('\0')) {
            if c.is_ascii_digit() {
                run.push(c);
            } else {
                out.push_str(if run.len() >= 12 { "<TIME>" } else { &run });
                run.clear();
                if c != '\0' {
                    out.push(c);
                }
            }
        }
        out
    };
    r["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| {
            (
                u["name"].as_str().unwrap().to_string(),
                u["status"].as_str().unwrap().to_string(),
                u["attempts"].as_u64().unwrap(),
                digits(&u["outputs"].to_string()),
            )
        })
        .collect()
}

fn local(dir: &Path, file: &str, extra: &[&str]) -> Value {
    let out = command(dir)
        .args(["run", file, "-j", "4"])
        .args(extra)
        .output()
        .unwrap();
    let runs = dir.join(".topsail/runs");
    let id = std::fs::read_dir(&runs)
        .unwrap()
        .filter_map(Result::ok)
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .max()
        .unwrap_or_else(|| panic!("no local record:\n{}", String::from_utf8_lossy(&out.stdout)));
    record(dir, &id)
}

fn same_meaning(file: &str, text: &str) {
    same_meaning_with(file, text, &[]);
}

/// `extra`: flags for every command that loads the file (`--context`).
fn same_meaning_with(file: &str, text: &str, extra: &[&str]) {
    let t = Test::new().file(file, text);
    let dir = t.dir.path();
    let here = local(dir, file, extra);
    let machine = unique("same");
    let mut deploy_args = vec!["deploy", file, "--name", &machine, "--role-arn", ROLE];
    deploy_args.extend_from_slice(extra);
    let (code, out, err) = run(dir, &deploy_args);
    assert_eq!(code, 0, "deploy failed:\n{out}\n{err}");
    let activity = out
        .lines()
        .find_map(|l| {
            l.strip_prefix("activity ")
                .and_then(|r| r.split(": ").nth(1))
        })
        .expect("deploy prints the activity ARN")
        .to_string();
    let flags = ["--allow-host", "--allow-image", "topsail-test/*"];
    let a = Worker::start(dir, &activity, "wa", &flags);
    let b = Worker::start(dir, &activity, "wb", &flags);
    let exec = unique("ex");
    let mut start_args = vec![
        "start",
        file,
        "--machine",
        &machine,
        "--name",
        &exec,
        "--follow",
    ];
    start_args.extend_from_slice(extra);
    let (_, out, err) = run(dir, &start_args);
    let there = record(dir, &exec);
    assert_eq!(
        meaning(&here),
        meaning(&there),
        "{file}: local and Step Functions differ\n{out}{err}\nworker a:\n{}\nworker b:\n{}",
        a.log(),
        b.log()
    );
    assert_eq!(here["status"], there["status"]);
    drop((a, b));
    std::thread::sleep(Duration::from_millis(10));
}

#[test]
fn hello_means_the_same_locally_and_on_step_functions() {
    let hello = std::fs::read_to_string(repo().join("examples/hello.topsail")).unwrap();
    same_meaning("hello.topsail", &hello);
}

#[test]
fn busybox_pipelines_mean_the_same_locally_and_on_step_functions() {
    crate::common::require_docker();
    same_meaning("bb.topsail", BUSYBOX_OK);
    same_meaning("bbcatch.topsail", BUSYBOX_CATCH);
}

#[test]
fn old_manifests_mean_the_same_locally_and_on_step_functions() {
    // `.type` outputs flowing into the next state's env, and a failing state.
    for name in ["outputs.yaml", "failing.yaml"] {
        same_meaning_with(name, &legacy_manifest(name), &["--context", "deploy"]);
    }
}
