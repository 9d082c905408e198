//! The differential suite of issue 19: small manifests in the first
//! topsail's format, each run with `topsail run --context ...`, checked
//! against the trace the old runner (`Topsail::Workflow`, `bin/run_topsail`,
//! `executor-handler.pl`) gives, as docs/legacy.md's table says (where the
//! table keeps a stricter meaning, the trace follows the table). Converted
//! files run the same as the manifest: equal dry-run plans, equal traces.

use crate::common::{Test, legacy_manifest};

/// A test dir holding the fixture `name` (and `extra` files).
fn dir(name: &str, extra: &[(&str, &str)]) -> Test {
    let mut t = Test::new().file(name, &legacy_manifest(name));
    for (path, text) in extra {
        t = t.file(path, text);
    }
    t
}

fn trace(t: &Test) -> String {
    std::fs::read_to_string(t.path("trace.txt")).unwrap_or_default()
}

/// Run `args` in `t`'s dir from a clean trace; the trace and the run.
fn traced(t: &Test, args: &[&str]) -> (String, crate::common::Run) {
    let _ = std::fs::remove_file(t.path("trace.txt"));
    let r = t.run_with(args);
    (trace(t), r)
}

/// `convert --to topsail` of the manifest, written beside it as `out`.
fn convert(t: &Test, name: &str, contexts: &[&str], out: &str) {
    let mut args = vec!["convert", name, "--to", "topsail"];
    for c in contexts {
        args.extend(["--context", c]);
    }
    let r = t.run_with(&args);
    assert_eq!(r.status, 0, "{}", r.show());
    std::fs::write(t.path(out), &r.stdout).expect("write the converted file");
}

/// The manifest and its conversion: the same dry-run plan and, run, the
/// same trace (`want`) and exit status.
fn same_when_converted(
    t: &Test,
    name: &str,
    contexts: &[&str],
    extra: &[&str],
    want: &str,
    status: i32,
) {
    convert(t, name, contexts, "converted.topsail");
    let mut manifest = vec!["run", name];
    for c in contexts {
        manifest.extend(["--context", c]);
    }
    manifest.extend(extra);
    let mut converted = vec!["run", "converted.topsail"];
    converted.extend(extra);
    let plan = |args: &[&str]| {
        let mut a = args.to_vec();
        a.push("--dry-run");
        let r = t.run_with(&a);
        assert_eq!(r.status, 0, "{}", r.show());
        r.stdout
            .replace(name, "FILE")
            .replace("converted.topsail", "FILE")
    };
    assert_eq!(plan(&manifest), plan(&converted));
    for args in [&manifest, &converted] {
        let (have, r) = traced(t, args);
        assert_eq!(have, want, "{args:?}\n{}", r.show());
        assert_eq!(r.status, status, "{args:?}\n{}", r.show());
    }
}

#[test]
fn values_are_passed_as_the_old_runner_passed_them() {
    let t = dir("fidelity_values.yaml", &[]);
    // Write: no `#!`, so perl; its $OUTPUT_FILE holds `k`; it outlives its
    // timeoutMillis (not enforced). Write Nothing (an unknown Type runs as a
    // task) writes no output under the same ResultPath: `k` keeps Write's
    // value; `nokey` was never written: empty. `false` is `false`, a map is
    // JSON, `$literal` is passed as written. `End: 'true,'` ends.
    let want = "Write: perl\nWrite Nothing\nRead: K=from-output-file NOKEY= FLAG=false OBJ={\"a\":1} LIT=$literal HOST=dir\n";
    let (have, r) = traced(&t, &["run", "fidelity_values.yaml", "--context", "deploy"]);
    assert_eq!(have, want, "{}", r.show());
    assert_eq!(r.status, 0, "{}", r.show());
    assert!(
        r.stdout.contains(
            "state \"Write Nothing\" wrote no outputs: `k` keeps the value state \"Write\" wrote"
        ),
        "{}",
        r.show()
    );
    assert!(
        r.stderr.contains("`timeoutMillis` is not enforced"),
        "{}",
        r.show()
    );
    same_when_converted(&t, "fidelity_values.yaml", &["deploy"], &[], want, 0);
}

#[test]
fn timeout_millis_is_a_comment_in_the_converted_file() {
    let t = dir("fidelity_values.yaml", &[]);
    convert(&t, "fidelity_values.yaml", &["deploy"], "c.topsail");
    let text = std::fs::read_to_string(t.path("c.topsail")).expect("converted");
    let at = text
        .find("# timeoutMillis: 1000 (not enforced")
        .expect("the comment");
    let step = text.find("\nwrite:").expect("the step");
    assert!(at < step, "{text}");
    assert!(!text.contains("timeout "), "{text}");
}

#[test]
fn on_error_context_is_followed_as_a_chain_with_every_contexts_variables() {
    let t = dir("fidelity_on_error.yaml", &[]);
    let want = "Deploy fails\nRoll Back region=eu-1 fails\nAbort region=eu-1\n";
    let (have, r) = traced(
        &t,
        &["run", "fidelity_on_error.yaml", "--context", "deploy"],
    );
    assert_eq!(have, want, "{}", r.show());
    same_when_converted(
        &t,
        "fidelity_on_error.yaml",
        &["deploy"],
        &[],
        want,
        r.status,
    );
}

#[test]
fn a_state_ends_when_its_background_processes_have() {
    let t = dir("fidelity_background.yaml", &[]);
    let want = "background done\nAfter\n";
    let (have, r) = traced(
        &t,
        &["run", "fidelity_background.yaml", "--context", "deploy"],
    );
    assert_eq!(have, want, "{}", r.show());
    assert_eq!(r.status, 0, "{}", r.show());
    same_when_converted(&t, "fidelity_background.yaml", &["deploy"], &[], want, 0);
}

const VALIDATE: &str = r#"#!/bin/sh
echo "validate_cloud_spec $*" >> trace.txt
while [ $# -gt 0 ]; do
    if [ "$1" = --output-file ]; then out=$2; fi
    shift
done
printf '{"cloud_spec_json": {"checked": true}, "note": "a=b"}' > "$out"
"#;

const CREATE: &str = r#"#!/bin/sh
echo "create_service $*" >> trace.txt
"#;

#[test]
fn the_executor_dialect_runs_tools_and_waits_for_approval() {
    let t = dir(
        "fidelity_tool.yaml",
        &[
            ("tools/validate_cloud_spec", VALIDATE),
            ("tools/create_service", CREATE),
        ],
    );
    let check = t.run_with(&["check", "fidelity_tool.yaml"]);
    assert_eq!(check.status, 0, "{}", check.show());
    assert!(
        !check.stderr.contains("`Parameters` is ignored"),
        "{}",
        check.show()
    );
    let args = [
        "run",
        "fidelity_tool.yaml",
        "-p",
        "tool_dir=tools",
        "-p",
        "cloud_spec_json={\"v\":1}",
        "--approve",
        "manualapproval",
    ];
    let want = "validate_cloud_spec --cloud-spec-json {\"v\":1} --context prestaging --context standby --output-file validated.out\ncreate_service --cloud-spec-json {\"checked\":true} --poll-interval 10\n";
    let (have, r) = traced(&t, &args);
    assert_eq!(have, want, "{}", r.show());
    assert_eq!(r.status, 0, "{}", r.show());
    same_when_converted(&t, "fidelity_tool.yaml", &[], &args[2..], want, 0);
}

#[test]
fn an_approval_gate_is_not_passed_without_approval() {
    let t = dir(
        "fidelity_tool.yaml",
        &[
            ("tools/validate_cloud_spec", VALIDATE),
            ("tools/create_service", CREATE),
        ],
    );
    let (_, r) = traced(
        &t,
        &[
            "run",
            "fidelity_tool.yaml",
            "-p",
            "tool_dir=tools",
            "-p",
            "cloud_spec_json=x",
        ],
    );
    assert_ne!(r.status, 0, "{}", r.show());
    assert!(r.stdout.contains("manualapproval"), "{}", r.show());
}

#[test]
fn a_context_given_for_a_pipeline_is_reported() {
    Test::new()
        .file("p.topsail", "pipeline p\n\nhello:\n    run echo hi\n")
        .args(&["check", "p.topsail", "--context", "deploy"])
        .stderr_contains("`--context deploy` is ignored: this file is not a service manifest")
        .status(0)
        .run();
}

#[test]
fn a_cloud_formation_deployment_spec_is_named_for_what_it_is() {
    Test::new()
        .file(
            "m.yaml",
            "deployment_spec:\n  contexts: [prestaging]\n  cloud_formation:\n    Resources: {}\n",
        )
        .args(&["check", "m.yaml"])
        .stderr_contains("this `deployment_spec` is a CloudFormation template, not a workflow")
        .stderr_lacks("pass `--context")
        .status(1)
        .run();
}

#[test]
fn yaml_the_old_reader_took_is_read_with_a_warning_and_spaces_survive_conversion() {
    let t = dir("fidelity_yaml.yaml", &[]);
    // The dedented `}` closes the flow map as PyYAML closed it; the heredoc
    // keeps its whitespace-only line (three spaces and the line break).
    let want = "Flow: hello\nSpaces: 4\n";
    let (have, r) = traced(&t, &["run", "fidelity_yaml.yaml", "--context", "deploy"]);
    assert_eq!(have, want, "{}", r.show());
    assert_eq!(r.status, 0, "{}", r.show());
    assert!(
        r.stderr
            .contains("this closing bracket is indented left of the key it belongs to"),
        "{}",
        r.show()
    );
    same_when_converted(&t, "fidelity_yaml.yaml", &["deploy"], &[], want, 0);
    // The converted file keeps the spaces, and so does formatting it again.
    let text = std::fs::read_to_string(t.path("converted.topsail")).expect("converted");
    assert!(text.contains("a\n           \n"), "{text}");
    let r = t.run_with(&["fmt", "--check", "converted.topsail"]);
    assert_eq!(r.status, 0, "{}", r.show());
}

#[test]
fn a_dedented_closer_is_still_an_error_in_topsails_own_yaml() {
    Test::new()
        .file(
            "p.yaml",
            "pipeline: p\nsteps:\n  a:\n    env: {X: \"1\"\n  }\n    run: echo $X\n",
        )
        .args(&["check", "p.yaml"])
        .stderr_contains("invalid YAML")
        .status(1)
        .run();
}

/// The executor dialect on the emulator: deployed as it is, its tools run
/// on a worker, and its `Manual_Approval` state waits for `topsail approve`.
#[test]
fn the_executor_dialect_runs_on_step_functions_and_waits_for_topsail_approve() {
    use crate::common::{process::wait_timeout, unique};
    use crate::support::{Worker, deploy, run, topsail};
    use std::process::Stdio;
    use std::time::{Duration, Instant};

    let t = Test::new().file("fidelity_tool.yaml", &legacy_manifest("fidelity_tool.yaml"));
    let dir = t.dir.path();
    // The tools trace to an absolute path: a worker runs them in a directory of its own.
    let trace = dir.join("trace.txt");
    let tools = dir.join("tools");
    let validate = VALIDATE.replace("trace.txt", &trace.display().to_string());
    let create = CREATE.replace("trace.txt", &trace.display().to_string());
    std::fs::create_dir_all(&tools).unwrap();
    std::fs::write(tools.join("validate_cloud_spec"), validate).unwrap();
    std::fs::write(tools.join("create_service"), create).unwrap();

    let machine = unique("executor");
    let activity = deploy(dir, "fidelity_tool.yaml", &machine);
    let _w = Worker::start(dir, &activity, "wa", &["--allow-host"]);
    let exec = unique("ex");
    let out_path = dir.join("follow.out");
    let f = std::fs::File::create(&out_path).unwrap();
    let tool_dir = format!("tool_dir={}", tools.display());
    let follow = topsail(dir)
        .args([
            "start",
            "fidelity_tool.yaml",
            "--machine",
            &machine,
            "--name",
            &exec,
        ])
        .args([
            "--param",
            &tool_dir,
            "--param",
            "cloud_spec_json={\"v\":1}",
            "--follow",
        ])
        .stdout(f.try_clone().unwrap())
        .stderr(f)
        .stdin(Stdio::null())
        .spawn()
        .unwrap();
    /// Killed when the test ends, passed or not: no `start --follow` is left behind.
    struct Reaped(std::process::Child);
    impl Drop for Reaped {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
    let mut follow = Reaped(follow);
    // The gate is listed once both tools have run.
    let t0 = Instant::now();
    loop {
        let (code, out, err) = run(dir, &["approve", "--machine", &machine, "--list"]);
        assert_eq!(code, 0, "{out}{err}");
        if out.contains(&exec) {
            break;
        }
        assert!(
            t0.elapsed() < Duration::from_mins(1),
            "the approval was never listed:\n{out}\n{}",
            std::fs::read_to_string(&out_path).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(300));
    }
    let have = std::fs::read_to_string(&trace).unwrap_or_default();
    assert_eq!(
        have,
        "validate_cloud_spec --cloud-spec-json {\"v\":1} --context prestaging --context standby --output-file validated.out\ncreate_service --cloud-spec-json {\"checked\":true} --poll-interval 10\n"
    );
    let (code, out, err) = run(dir, &["approve", &exec, "manualapproval"]);
    assert_eq!(code, 0, "{out}{err}");
    let code = wait_timeout(&mut follow.0, Duration::from_mins(2), || {
        std::fs::read_to_string(&out_path).unwrap_or_default()
    });
    let shown = std::fs::read_to_string(&out_path).unwrap_or_default();
    assert_eq!(code, Some(0), "{shown}");
    assert!(shown.contains(&format!("run {exec} succeeded")), "{shown}");
}
