//! Legacy service manifests (issue 7): manifests in the shape of the first
//! topsail's (tests/fixtures/legacy: anchors and per-environment values,
//! several contexts, `Next` per context, `OnError`, `OnErrorContext`,
//! `ResultPath` and `.type` outputs, Perl, Python, bash and sh scripts,
//! `timeoutMillis`) check with the contexts they use, convert, draw, and show
//! what the old contract means now. The real manifests, when they sit beside
//! the clone (../shared/legacy), get the same checks from an ignored test
//! that scripts/test runs when they are there.

use crate::common::{Test, legacy_fixture, legacy_manifest, repo};

/// `topsail ARGS...` in a temp dir holding the fixture `name`.
fn with_fixture(name: &str, args: &[&str]) -> Test {
    Test::new().file(name, &legacy_manifest(name)).args(args)
}

/// `topsail check FILE --context C...` exits 0 with no errors, for each
/// set of contexts.
fn checks_clean_with(file: &str, context_sets: &[&[&str]]) {
    for contexts in context_sets {
        let mut t = Test::new().args(&["check", file]);
        for c in *contexts {
            t = t.args(&["--context", c]);
        }
        t.stderr_contains(" 0 errors").status(0).run();
    }
}

/// The graph of `context` follows `Next` and leads to the `OnErrorContext`
/// handler: `names` are all drawn.
fn graph_shows(file: &str, context: &str, names: &[&str]) {
    let mut t = Test::new()
        .args(&["graph", file, "--context", context, "--format", "mermaid"])
        .status(0);
    for name in names {
        t = t.stdout_contains(name);
    }
    t.run();
}

/// Without `--context`, the error lists the contexts to choose from.
fn no_context_lists(file: &str, contexts: &[&str]) {
    let list = contexts
        .iter()
        .map(|c| format!("`{c}`"))
        .collect::<Vec<_>>()
        .join(", ");
    Test::new()
        .args(&["check", file])
        .stderr_contains(&format!("pass `--context NAME` with one of {list}"))
        .status(1)
        .run();
}

/// A `Next` (chosen by `contexts`) that names no state is an error.
fn broken_next_is_an_error(file: &str, contexts: &[&str]) {
    let mut t = Test::new().args(&["check", file]);
    for c in contexts {
        t = t.args(&["--context", c]);
    }
    t.stderr_contains("there is no state").status(1).run();
}

/// Converted to `.topsail`, each context checks clean with no warnings; a
/// context with `OnErrorContext` gets its handler as `catch`.
fn converts_clean(file: &str, contexts: &[(&str, bool)]) {
    for &(context, has_catch) in contexts {
        let t = Test::new()
            .args(&[
                "convert",
                file,
                "--context",
                context,
                "--to",
                "topsail",
                "--out",
                "converted.topsail",
            ])
            .status(0);
        t.run();
        let text = std::fs::read_to_string(t.path("converted.topsail")).expect("written");
        assert_eq!(
            text.contains("catch on-abort"),
            has_catch,
            "{file} {context}: catch on-abort in\n{text}"
        );
        t.next()
            .args(&["check", "converted.topsail", "--deny-warnings"])
            .status(0)
            .run();
    }
}

fn fixture_arg(name: &str) -> String {
    legacy_fixture(name).display().to_string()
}

#[test]
fn manifests_check_with_their_contexts() {
    checks_clean_with(
        &fixture_arg("service.yaml"),
        &[
            &["release"],
            &["teardown"],
            &["revert", "standard"],
            &["abort"],
        ],
    );
    checks_clean_with(&fixture_arg("local.yaml"), &[&["deploy"], &["abort"]]);
}

#[test]
fn manifest_graph_follows_next_and_on_error_context() {
    graph_shows(
        &fixture_arg("service.yaml"),
        "release",
        &["check-spec", "register-task", "python-report", "on-abort"],
    );
    graph_shows(
        &fixture_arg("local.yaml"),
        "deploy",
        &[
            "check-spec",
            "make-definition",
            "python-summary",
            "on-abort",
        ],
    );
}

#[test]
fn a_manifest_without_a_context_says_which_to_pass() {
    no_context_lists(
        &fixture_arg("service.yaml"),
        &["release", "teardown", "revert", "abort"],
    );
}

#[test]
fn a_broken_next_for_a_context_is_an_error_with_a_span() {
    // `Next` of `Check Spec` under `revert` names `Remove Rules"Remove
    // Service"` for the `from_rules` context: a typo the old runner would
    // only have hit at run time.
    broken_next_is_an_error(&fixture_arg("service.yaml"), &["revert", "from_rules"]);
}

#[test]
fn manifests_convert_to_topsail_that_checks_clean() {
    converts_clean(
        &fixture_arg("service.yaml"),
        &[("release", true), ("teardown", false)],
    );
    converts_clean(&fixture_arg("local.yaml"), &[("deploy", true)]);
}

#[test]
fn manifest_warnings_point_into_the_yaml() {
    // What the old runner ignored (the stray state, `outputVars`, `RoleArn`,
    // a script without `#!`) is a warning with a span, not silence.
    let run = with_fixture(
        "service.yaml",
        &["check", "service.yaml", "--context", "release"],
    )
    .status(0)
    .run();
    insta::assert_snapshot!("legacy_service_release_warnings", run.stderr);
}

/// The real manifests of the first topsail, when they sit beside the clone
/// (`../shared/legacy`, as on the project's CI machines): the same checks.
/// A clone has nothing there, so this is ignored by default and scripts/test
/// runs it (`--ignored`) when the directory exists.
#[test]
#[ignore = "needs ../shared/legacy beside the clone; scripts/test runs it when that exists"]
fn real_manifests_beside_the_clone() {
    let dir = repo().join("../shared/legacy");
    assert!(
        dir.is_dir(),
        "{} is missing: run this test only where the real manifests are",
        dir.display()
    );
    let service = dir.join("service_manifest.yaml").display().to_string();
    let local = dir
        .join("local_service_manifest.yaml")
        .display()
        .to_string();
    checks_clean_with(
        &service,
        &[
            &["deploy"],
            &["delete"],
            &["rollback", "standard"],
            &["abort"],
        ],
    );
    checks_clean_with(&local, &[&["deploy"], &["abort"]]);
    graph_shows(
        &service,
        "deploy",
        &[
            "validate-cloud-spec",
            "create-ecs-task-definition",
            "on-abort",
        ],
    );
    no_context_lists(&service, &["deploy", "delete", "rollback", "abort"]);
    broken_next_is_an_error(&service, &["rollback", "update_elb_listener_start"]);
    converts_clean(&service, &[("deploy", true), ("delete", false)]);
    converts_clean(&local, &[("deploy", true)]);
}

#[test]
fn fixtures_check_clean() {
    for (name, contexts) in [
        ("outputs.yaml", &["deploy", "prod"][..]),
        ("failing.yaml", &[][..]),
        ("on_error.yaml", &["deploy"][..]),
    ] {
        let mut args = vec!["check", name, "--deny-warnings"];
        for c in contexts {
            args.extend(["--context", c]);
        }
        with_fixture(name, &args).status(0).run();
    }
}

#[test]
fn ignored_keys_are_warnings_with_spans() {
    let run = with_fixture("ignored.yaml", &["check", "ignored.yaml"])
        .status(0)
        .run();
    insta::assert_snapshot!("legacy_ignored_keys", run.stderr);
}
