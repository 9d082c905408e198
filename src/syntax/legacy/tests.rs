//! Manifests -> model, through the real checker, and the generated shell
//! run by `sh` the way the runner runs a step.

use std::path::PathBuf;
use std::process::Command;

use super::script::{self, HandlerState, HandlerValue};
use crate::check::{Checked, LoadOptions, check_source_with};
use crate::model::{Action, Pipeline, Step};
use crate::source::Format;

fn fixture(name: &str) -> String {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/legacy")
        .join(name);
    std::fs::read_to_string(&path).expect("fixture exists")
}

fn check(name: &str, contexts: &[&str]) -> Checked {
    check_source_with(
        name,
        Some(PathBuf::from(name)),
        fixture(name),
        Format::Yaml,
        &LoadOptions {
            contexts: contexts.iter().map(|c| (*c).to_string()).collect(),
        },
    )
}

fn pipeline(name: &str, contexts: &[&str]) -> Pipeline {
    let checked = check(name, contexts);
    assert!(!checked.has_errors(), "{}", checked.render(false));
    checked.pipeline.expect("no errors")
}

fn step<'a>(p: &'a Pipeline, name: &str) -> &'a Step {
    p.steps
        .iter()
        .find(|s| s.name == name)
        .expect("step exists")
}

fn run_text(s: &Step) -> String {
    match &s.action {
        Action::Script(script) => script.run.source_text(),
        Action::Approval { .. } => panic!("not an approval"),
    }
}

#[test]
fn states_become_a_chain_with_env_from_outputs_and_params() {
    let p = pipeline("outputs.yaml", &["deploy", "prod"]);
    let names: Vec<&str> = p.steps.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(names, ["make-values", "use-values"]);
    let make = step(&p, "make-values");
    assert_eq!(make.outputs, ["greeting", "answer", "equation"]);
    // `timeoutMillis` is never enforced (docs/legacy.md, item 2).
    assert_eq!(make.timeout, None);
    assert_eq!(make.env["prefix"].source_text(), "{{ greeting_prefix }}");
    let use_ = step(&p, "use-values");
    assert_eq!(use_.need_names, ["make-values"]);
    assert_eq!(
        use_.env["greeting"].source_text(),
        "{{ make-values.greeting }}"
    );
    assert_eq!(use_.env["spec"].source_text(), "{{ cloud_spec_json }}");
    assert_eq!(use_.env["literal"].source_text(), "7");
    // Maps become compact JSON, collapsed with the contexts, merge keys applied.
    let spec = p.params["cloud_spec_json"]
        .default
        .as_ref()
        .expect("a default");
    assert_eq!(
        spec.to_text(),
        r#"{"region":"eu-west-1","tags":{"team":"sail","tier":"gold"},"merged":{"team":"override","tier":"gold"}}"#
    );
    let run = run_text(make);
    assert!(run.contains("grep -q '^greeting='"), "{run}");
    assert!(run.contains("grep -q '^equation='"), "{run}");
    // Variables no state reads are not params.
    assert!(!p.params.contains_key("banana"));
}

#[test]
fn on_error_context_catches_into_one_handler_step() {
    let p = pipeline("on_error.yaml", &["deploy"]);
    let deploy = step(&p, "deploy");
    assert_eq!(deploy.catch.as_deref(), Some("on-abort"));
    let handler = step(&p, "on-abort");
    assert!(handler.is_handler);
    assert!(handler.needs.is_empty());
    assert_eq!(handler.timeout, None);
    assert_eq!(handler.env["service"].source_text(), "{{ service }}");
    let run = run_text(handler);
    assert!(run.contains("# 1. Find"), "{run}");
    assert!(
        run.contains("out_1_what=$(legacy_output \"$TMPDIR/1\" what)"),
        "{run}"
    );
    assert!(run.contains("what=\"$out_1_what\""), "{run}");
}

#[test]
fn contexts_pick_the_workflow_and_report_mistakes() {
    let none = check("on_error.yaml", &[]);
    assert!(none.has_errors());
    assert!(
        none.diagnostics
            .iter()
            .any(|d| d.help.contains("`deploy`, `abort`"))
    );
    let typo = check("on_error.yaml", &["deplyo"]);
    assert!(
        typo.diagnostics
            .iter()
            .any(|d| d.help == "did you mean `--context deploy`?")
    );
    let abort = pipeline("on_error.yaml", &["abort"]);
    assert_eq!(abort.steps.len(), 3);
}

/// Run `text` with `sh -e` as the runner does, with `TMPDIR` and
/// `TOPSAIL_OUTPUT` set; returns (success, the output file's text).
fn sh(text: &str, env: &[(&str, &str)]) -> (bool, String) {
    let dir = tempfile::tempdir().expect("temp dir");
    let tmp = dir.path().join("tmp");
    std::fs::create_dir(&tmp).expect("tmp dir");
    let out = dir.path().join("output");
    std::fs::write(&out, "").expect("output file");
    let status = Command::new("sh")
        .arg("-e")
        .arg("-c")
        .arg(text)
        .current_dir(dir.path())
        .env("TMPDIR", &tmp)
        .env("TOPSAIL_OUTPUT", &out)
        .envs(env.iter().copied())
        .status()
        .expect("sh runs");
    (
        status.success(),
        std::fs::read_to_string(&out).unwrap_or_default(),
    )
}

#[test]
fn type_outputs_reach_topsail_output_without_trailing_newlines() {
    let script = "#!/bin/sh\nprintf 'a=1\\nb=x=y\\nc=skip\\n' > \"$TMPDIR/out\"\n: > \"$TMPDIR/out.type\"\nprintf 'a=ignored\\n' > \"$TMPDIR/no-marker\"\n";
    let (ok, out) = sh(
        &script::step_run("S", script, &keys(&["a", "b"], None)),
        &[],
    );
    assert!(ok);
    assert_eq!(out, "a=1\nb=x=y\n");
}

fn keys(keys: &[&str], prev: Option<&'static str>) -> script::StepOutputs<'static> {
    let keys: Vec<String> = keys.iter().map(|k| (*k).to_string()).collect();
    script::StepOutputs {
        keys: Box::leak(keys.into_boxed_slice()),
        prev,
    }
}

#[test]
fn a_key_never_written_is_empty_not_a_failure() {
    let script = "#!/bin/sh\necho 'a=1' > \"$TMPDIR/out\"; : > \"$TMPDIR/out.type\"\n";
    let (ok, out) = sh(
        &script::step_run("S", script, &keys(&["a", "nokey"], None)),
        &[],
    );
    assert!(ok);
    assert_eq!(out, "a=1\nnokey=\n");
}

#[test]
fn no_output_file_keeps_the_earlier_writers_value() {
    let script = "#!/bin/sh\ntrue\n";
    let prev = script::prev_env("k");
    let (ok, out) = sh(
        &script::step_run("S", script, &keys(&["k"], Some("First"))),
        &[(prev.as_str(), "first value")],
    );
    assert!(ok);
    assert_eq!(out, "k=first value\n");
}

#[test]
fn output_file_lines_win_over_type_files() {
    let script = "#!/bin/sh\necho 'k=from-type' > \"$TMPDIR/t\"; : > \"$TMPDIR/t.type\"\necho 'k=from-output-file' > \"$OUTPUT_FILE\"\n";
    let (ok, out) = sh(&script::step_run("S", script, &keys(&["k"], None)), &[]);
    assert!(ok);
    assert_eq!(out, "k=from-output-file\n");
}

#[test]
fn a_script_without_shebang_runs_with_perl() {
    let script = "print STDERR \"perl\\n\";\nopen(my $f, '>', $ENV{OUTPUT_FILE}) or die;\nprint $f \"lang=perl\\n\";\n";
    let (ok, out) = sh(&script::step_run("S", script, &keys(&["lang"], None)), &[]);
    assert!(ok);
    assert_eq!(out, "lang=perl\n");
}

#[test]
fn a_failing_script_fails_the_run_text() {
    let (ok, out) = sh(
        &script::step_run("S", "#!/bin/sh\nexit 3\n", &keys(&["a"], None)),
        &[],
    );
    assert!(!ok);
    assert_eq!(out, "");
}

#[test]
fn scripts_run_with_their_interpreter() {
    let script = "#!/usr/bin/env perl\nopen(my $f, '>', \"$ENV{TMPDIR}/o\") or die;\nprint $f \"lang=perl\\n\";\nclose $f;\nopen($f, '>', \"$ENV{TMPDIR}/o.type\") or die;\n";
    let (ok, out) = sh(&script::step_run("S", script, &keys(&["lang"], None)), &[]);
    assert!(ok);
    assert_eq!(out, "lang=perl\n");
}

#[test]
fn a_handler_passes_outputs_from_state_to_state() {
    let states = [
        HandlerState {
            name: "One".into(),
            script: Some(
                "#!/bin/sh\necho \"k=$seed-1\" > \"$TMPDIR/r\"; : > \"$TMPDIR/r.type\"\n".into(),
            ),
            env: vec![("seed".into(), HandlerValue::Env("SEED".into()))],
            outputs: vec!["k".into()],
        },
        HandlerState {
            name: "Skip".into(),
            script: None,
            env: Vec::new(),
            outputs: Vec::new(),
        },
        HandlerState {
            name: "Two".into(),
            script: Some("#!/bin/sh\necho \"$got $lit\" > \"$TOPSAIL_OUTPUT\"\n".into()),
            env: vec![
                ("got".into(), HandlerValue::Output(0, "k".into())),
                ("lit".into(), HandlerValue::Literal("it's".into())),
            ],
            outputs: Vec::new(),
        },
    ];
    let (ok, out) = sh(
        &script::handler_run(&["abort".into()], &states),
        &[("SEED", "s")],
    );
    assert!(ok);
    assert_eq!(out, "s-1 it's\n");
}

/// `convert --to topsail` of a manifest means the same pipeline: the printed
/// `.topsail` checks clean into an equal model.
#[test]
fn converted_topsail_gives_the_same_model() {
    for (name, contexts) in [
        ("outputs.yaml", &["deploy", "prod"][..]),
        ("failing.yaml", &[][..]),
        ("timeout.yaml", &[][..]),
        ("on_error.yaml", &["deploy"][..]),
    ] {
        let contexts: Vec<String> = contexts.iter().map(|c| (*c).to_string()).collect();
        let mut sources = crate::source::SourceMap::new();
        let file = sources.add(name, Some(PathBuf::from(name)), fixture(name), Format::Yaml);
        let (module, _) = crate::syntax::parse_with(&sources, file, &contexts);
        let text = crate::syntax::print::print(&module.expect("a module"));
        let converted =
            crate::check::check_source("converted.topsail", None, text.clone(), Format::Topsail);
        assert!(
            converted.diagnostics.is_empty(),
            "{name}:\n{text}\n{}",
            converted.render(false)
        );
        let original = pipeline(
            name,
            &contexts.iter().map(String::as_str).collect::<Vec<_>>(),
        );
        let again = converted.pipeline.expect("no errors");
        assert_eq!(
            serde_json::to_value(&original.steps).expect("serializes"),
            serde_json::to_value(&again.steps).expect("serializes"),
            "{name}"
        );
        assert_eq!(
            serde_json::to_value(&original.params).expect("serializes"),
            serde_json::to_value(&again.params).expect("serializes"),
            "{name}"
        );
    }
}

#[test]
fn timeout_millis_is_not_the_step_timeout() {
    let p = pipeline("timeout.yaml", &[]);
    assert_eq!(step(&p, "slow").timeout, None);
    assert_eq!(
        step(&p, "slow").env["TOPSAIL_WAIT_PROCESS_GROUP"].source_text(),
        "1"
    );
}
