//! Legacy service manifests (issue 7): the two real ones in ../shared/legacy
//! check with the contexts they use, and manifests of the same shape under
//! tests/fixtures/legacy show what the old contract means now.

use std::path::PathBuf;

use crate::common::{Test, repo};

/// The real manifests sit beside the clone (CI has `shared/` there too).
/// A missing file fails the test: it must not pass by skipping.
fn shared(name: &str) -> String {
    let path = repo().join("../shared/legacy").join(name);
    assert!(
        path.is_file(),
        "{} is missing: the real manifests must be beside the repository",
        path.display()
    );
    path.display().to_string()
}

fn fixture(name: &str) -> String {
    std::fs::read_to_string(fixture_path(name)).expect("fixture exists")
}

fn fixture_path(name: &str) -> PathBuf {
    repo().join("tests/fixtures/legacy").join(name)
}

/// `topsail ARGS...` in a temp dir holding the fixture `name`.
fn with_fixture(name: &str, args: &[&str]) -> (Test, crate::common::Run) {
    let t = Test::new().file(name, &fixture(name)).args(args);
    let run = t.run();
    (t, run)
}

#[test]
fn real_manifests_check_with_their_contexts() {
    for (file, contexts) in [
        ("service_manifest.yaml", &["deploy"][..]),
        ("service_manifest.yaml", &["delete"][..]),
        ("service_manifest.yaml", &["rollback", "standard"][..]),
        ("service_manifest.yaml", &["abort"][..]),
        ("local_service_manifest.yaml", &["deploy"][..]),
        ("local_service_manifest.yaml", &["abort"][..]),
    ] {
        let path = shared(file);
        let mut args = vec!["check", path.as_str()];
        for c in contexts {
            args.extend(["--context", c]);
        }
        let run = Test::new().args(&args).run();
        assert_eq!(run.status, 0, "{file} {contexts:?}:\n{}", run.stderr);
        assert!(run.stderr.contains(" 0 errors"), "{}", run.stderr);
    }
}

#[test]
fn real_manifest_graph_follows_next_and_on_error_context() {
    let path = shared("service_manifest.yaml");
    let run = Test::new()
        .args(&["graph", &path, "--context", "deploy", "--format", "mermaid"])
        .run();
    assert_eq!(run.status, 0, "{}", run.stderr);
    for name in [
        "validate-cloud-spec",
        "create-ecs-task-definition",
        "on-abort",
    ] {
        assert!(run.stdout.contains(name), "{name} in\n{}", run.stdout);
    }
}

#[test]
fn a_manifest_without_a_context_says_which_to_pass() {
    let path = shared("service_manifest.yaml");
    let run = Test::new().args(&["check", &path]).run();
    assert_eq!(run.status, 1);
    assert!(
        run.stderr
            .contains("pass `--context NAME` with one of `deploy`, `delete`, `rollback`, `abort`"),
        "{}",
        run.stderr
    );
}

#[test]
fn the_broken_rollback_next_is_an_error_with_a_span() {
    // `Next` under `update_elb_listener_start` in the real manifest names
    // `Delete ELB Listener Rules"Delete ECS Service"`: a typo the old runner
    // would only have hit at run time.
    let path = shared("service_manifest.yaml");
    let run = Test::new()
        .args(&[
            "check",
            &path,
            "--context",
            "rollback",
            "--context",
            "update_elb_listener_start",
        ])
        .run();
    assert_eq!(run.status, 1);
    assert!(run.stderr.contains("there is no state"), "{}", run.stderr);
}

#[test]
fn fixtures_check_clean() {
    for (name, contexts) in [
        ("outputs.yaml", &["deploy", "prod"][..]),
        ("failing.yaml", &[][..]),
        ("timeout.yaml", &[][..]),
        ("on_error.yaml", &["deploy"][..]),
    ] {
        let mut args = vec!["check", name, "--deny-warnings"];
        for c in contexts {
            args.extend(["--context", c]);
        }
        let (_t, run) = with_fixture(name, &args);
        assert_eq!(run.status, 0, "{name}:\n{}", run.stderr);
    }
}

#[test]
fn ignored_keys_are_warnings_with_spans() {
    let (_t, run) = with_fixture("ignored.yaml", &["check", "ignored.yaml"]);
    assert_eq!(run.status, 0, "{}", run.stderr);
    insta::assert_snapshot!("legacy_ignored_keys", run.stderr);
}

#[test]
fn real_manifests_convert_to_topsail_that_checks_clean() {
    for (file, context) in [
        ("service_manifest.yaml", "deploy"),
        ("service_manifest.yaml", "delete"),
        ("local_service_manifest.yaml", "deploy"),
    ] {
        let path = shared(file);
        let t = Test::new().args(&[
            "convert",
            &path,
            "--context",
            context,
            "--to",
            "topsail",
            "--out",
            "converted.topsail",
        ]);
        let run = t.run();
        assert_eq!(run.status, 0, "{file} {context}:\n{}", run.stderr);
        let text = std::fs::read_to_string(t.path("converted.topsail")).expect("written");
        if context == "deploy" {
            assert!(text.contains("catch on-abort"), "{file}: no catch");
        }
        let check = Test::new()
            .file("converted.topsail", &text)
            .args(&["check", "converted.topsail", "--deny-warnings"])
            .run();
        assert_eq!(check.status, 0, "{file} {context}:\n{}", check.stderr);
    }
}
