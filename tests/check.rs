//! `topsail check`: one fixture per kind of problem, its rendered diagnostic
//! kept as a snapshot; the JSON form; exit codes.

use crate::common::Test;

/// Check `source` as `pipeline.topsail` (or `file`), return (exit code, stderr).
fn check_named(file: &str, source: &str) -> (i32, String) {
    let run = Test::new().file(file, source).args(&["check", file]).run();
    (run.status, run.stderr)
}

fn check(source: &str) -> (i32, String) {
    check_named("pipeline.topsail", source)
}

macro_rules! diagnostic_snapshot {
    ($name:ident, $code:literal, $source:expr) => {
        #[test]
        fn $name() {
            let (status, stderr) = check($source);
            assert_eq!(status, 1, "expected errors:\n{stderr}");
            assert!(stderr.contains($code), "expected {} in:\n{stderr}", $code);
            insta::assert_snapshot!(stringify!($name), stderr);
        }
    };
}

diagnostic_snapshot!(
    syntax_error,
    "topsail::syntax",
    "build\n    run make\n\ntest: build\n    image \"alpine\n"
);

diagnostic_snapshot!(
    tab_indentation,
    "topsail::tab-indent",
    "build:\n\trun make\n"
);

diagnostic_snapshot!(
    mixed_indentation,
    "topsail::bad-indent",
    "build:\n    image \"alpine:3.20\"\n  run make\n"
);

diagnostic_snapshot!(
    duplicate_step,
    "topsail::duplicate-step",
    "build:\n    run make\n\nbuild:\n    run make all\n"
);

diagnostic_snapshot!(
    duplicate_param,
    "topsail::duplicate-param",
    "param region = \"us-east-1\"\nparam region = \"eu-west-1\"\n\ns:\n    run echo {{ region }}\n"
);

diagnostic_snapshot!(
    unknown_needed_step,
    "topsail::unknown-step",
    "build:\n    run make\n\ntest: biuld\n    run make test\n"
);

diagnostic_snapshot!(
    cycle,
    "topsail::cycle",
    "a: c\n    run echo a\n\nb: a\n    run echo b\n\nc: b\n    run echo c\n\nd: a\n    run echo d\n"
);

diagnostic_snapshot!(
    unknown_reference,
    "topsail::unknown-reference",
    "param region = \"us-east-1\"\n\ndeploy:\n    run ./deploy --region {{ regoin }}\n"
);

diagnostic_snapshot!(
    output_without_need,
    "topsail::output-not-needed",
    "build:\n    output VERSION\n    run echo VERSION=1 >> \"$TOPSAIL_OUTPUT\"\n\nship:\n    run echo {{ build.VERSION }}\n"
);

diagnostic_snapshot!(
    output_not_declared,
    "topsail::unknown-output",
    "build:\n    output VERSION\n    run echo VERSION=1 >> \"$TOPSAIL_OUTPUT\"\n\nship: build\n    run echo {{ build.VERSOIN }}\n"
);

diagnostic_snapshot!(
    undeclared_secret,
    "topsail::undeclared-secret",
    "secret API_TOKEN\n\ndeploy:\n    secret API_TOKN\n    run ./deploy\n\nuse-it:\n    secret API_TOKEN\n    run ./x\n"
);

diagnostic_snapshot!(
    bad_duration,
    "topsail::bad-duration",
    "build:\n    timeout 20x\n    run make\n"
);

diagnostic_snapshot!(
    param_default_type_mismatch,
    "topsail::type-mismatch",
    "param replicas: int = \"three\"\n\ns:\n    run echo {{ replicas }}\n"
);

diagnostic_snapshot!(
    approval_with_run,
    "topsail::approval-conflict",
    "gate:\n    approval \"Ship it?\"\n    image \"alpine:3.20\"\n    run echo shipping\n"
);

diagnostic_snapshot!(
    catch_handler_needed,
    "topsail::catch-handler-needed",
    "deploy:\n    catch rollback\n    run ./deploy\n\nrollback:\n    run ./rollback\n\nreport: rollback\n    run echo done\n"
);

diagnostic_snapshot!(
    unknown_template,
    "topsail::unknown-template",
    "template docker-build(tag):\n    run docker build -t {{ tag }} .\n\nimage:\n    use docker-buld(tag = \"x\")\n"
);

diagnostic_snapshot!(
    wrong_template_arguments,
    "topsail::template-arguments",
    "template docker-build(context = \".\", tag):\n    run docker build -t {{ tag }} {{ context }}\n\nimage:\n    use docker-build(contxt = \"src\")\n"
);

diagnostic_snapshot!(
    state_name_too_long,
    "topsail::state-name",
    "this-step-name-is-far-too-long-to-become-a-step-functions-state-name-because-it-goes-on:\n    run echo\n"
);

diagnostic_snapshot!(
    hole_in_quoted_heredoc,
    "topsail::hole-in-quoted-heredoc",
    "param name = \"world\"\n\ngreet:\n    run:\n        cat <<'EOF'\n        hello {{ name }}\n        EOF\n"
);

diagnostic_snapshot!(
    hole_in_non_posix_shell,
    "topsail::hole-in-non-posix-shell",
    "param name = \"world\"\n\ngreet:\n    shell \"python3\"\n    run print(\"hello {{ name }}\")\n"
);

diagnostic_snapshot!(
    foreach_output_used,
    "topsail::foreach-output",
    "each:\n    foreach r in [\"a\", \"b\"]\n    output X\n    run echo X={{ r }} >> \"$TOPSAIL_OUTPUT\"\n\nafter: each\n    run echo {{ each.X }}\n"
);

#[test]
fn unused_param_and_secret_are_warnings() {
    let (status, stderr) = check("param unused = 1\nsecret NOBODY\n\ns:\n    run echo hi\n");
    assert_eq!(status, 0, "warnings alone pass:\n{stderr}");
    assert!(stderr.contains("topsail::unused-param"));
    assert!(stderr.contains("topsail::unused-secret"));
    insta::assert_snapshot!("unused_param_and_secret", stderr);
    let run = Test::new()
        .file(
            "pipeline.topsail",
            "param unused = 1\n\ns:\n    run echo hi\n",
        )
        .args(&["check", "--deny-warnings"])
        .run();
    assert_eq!(run.status, 1, "--deny-warnings fails on warnings");
}

#[test]
fn every_problem_of_a_file_is_reported_in_order() {
    let (status, stderr) = check(concat!(
        "param region = \"us-east-1\"\n",
        "param region = \"eu-west-1\"\n",
        "\n",
        "build:\n",
        "    timeout 5parsecs\n",
        "    run make\n",
        "\n",
        "test: biuld\n",
        "    run make test {{ regoin }}\n",
        "\n",
        "ship: test\n",
        "    secret TOKEN\n",
        "    run echo {{ build.VERSION }}\n",
    ));
    assert_eq!(status, 1);
    let codes: Vec<&str> = stderr
        .lines()
        .filter_map(|l| {
            l.trim_start()
                .strip_prefix("× ")
                .or(l.trim_start().strip_prefix("topsail::"))
        })
        .collect();
    let order = [
        "topsail::duplicate-param",
        "topsail::bad-duration",
        "topsail::unknown-step",
        "topsail::unknown-reference",
        "topsail::undeclared-secret",
        "topsail::unknown-output",
    ];
    let mut last = 0;
    for code in order {
        let at = stderr
            .find(code)
            .unwrap_or_else(|| panic!("{code} missing in:\n{stderr}\n{codes:?}"));
        assert!(at >= last, "{code} out of order in:\n{stderr}");
        last = at;
    }
    assert!(stderr.contains("6 errors"), "{stderr}");
}

#[test]
fn yaml_diagnostics_point_into_the_yaml() {
    let (status, stderr) = check_named(
        "topsail.yaml",
        "pipeline: demo\nsteps:\n  build:\n    run: make\n  test:\n    needs: [biuld]\n    imagee: alpine\n    run: make test\n",
    );
    assert_eq!(status, 1);
    assert!(stderr.contains("topsail::unknown-step"), "{stderr}");
    assert!(stderr.contains("topsail::unknown-key"), "{stderr}");
    insta::assert_snapshot!("yaml_diagnostics", stderr);
}

#[test]
fn json_format_lists_code_position_and_help() {
    let run = Test::new()
        .file(
            "pipeline.topsail",
            "build:\n    run make\n\ntest: biuld\n    run make test\n",
        )
        .args(&["check", "--format", "json"])
        .run();
    assert_eq!(run.status, 1);
    let doc: serde_json::Value = serde_json::from_str(&run.stdout).expect("valid JSON");
    let d = &doc["diagnostics"][0];
    assert_eq!(d["code"], "topsail::unknown-step");
    assert_eq!(d["severity"], "error");
    assert_eq!(d["file"], "pipeline.topsail");
    assert_eq!(d["line"], 4);
    assert_eq!(d["column"], 7);
    assert_eq!(d["span"]["start"], 27);
    assert_eq!(d["span"]["end"], 32);
    assert_eq!(d["help"], "did you mean `build`?");
    insta::assert_snapshot!("json_format", run.stdout);
}

#[test]
fn exit_codes() {
    let clean = Test::new()
        .file("pipeline.topsail", "s:\n    run echo hi\n")
        .args(&["check"])
        .run();
    assert_eq!(clean.status, 0, "{}", clean.stderr);
    assert!(clean.stderr.contains("0 errors"), "{}", clean.stderr);

    let yaml_default = Test::new()
        .file("topsail.yaml", "steps:\n  s:\n    run: echo hi\n")
        .args(&["check"])
        .run();
    assert_eq!(yaml_default.status, 0, "{}", yaml_default.stderr);

    let missing = Test::new().args(&["check", "nope.topsail"]).run();
    assert_eq!(missing.status, 2);
    assert!(
        missing.stderr.contains("cannot read nope.topsail"),
        "{}",
        missing.stderr
    );

    let nothing_here = Test::new().args(&["check"]).run();
    assert_eq!(nothing_here.status, 2);

    let bad_flag = Test::new().args(&["check", "--frobnicate"]).run();
    assert_eq!(bad_flag.status, 2);
}

#[test]
fn graph_prints_one_node_per_step() {
    let run = Test::new()
        .file(
            "pipeline.topsail",
            "a:\n    run echo a\n\nb: a\n    run echo b\n\nc: a\n    run echo c\n\ngate: b c\n    approval \"go?\"\n",
        )
        .args(&["graph", "--format", "mermaid"])
        .run();
    assert_eq!(run.status, 0, "{}", run.stderr);
    insta::assert_snapshot!("graph_mermaid", run.stdout);
    let dot = Test::new()
        .file(
            "pipeline.topsail",
            "a:\n    run echo a\n\nb: a\n    run echo b\n",
        )
        .args(&["graph"])
        .run();
    assert_eq!(dot.status, 0);
    assert!(dot.stdout.contains("\"a\" -> \"b\";"), "{}", dot.stdout);
}

#[test]
fn imports_bring_in_templates_and_steps() {
    let run = Test::new()
        .file(
            "lib/common.topsail",
            "template greet(who):\n    run echo \"hi {{ who }}\"\n\nsetup:\n    output X\n    run echo X=1 >> \"$TOPSAIL_OUTPUT\"\n",
        )
        .file(
            "pipeline.topsail",
            "import \"./lib/common.topsail\" as common\nimport \"std/notify\"\n\na: common.setup\n    use common.greet(who = \"{{ common.setup.X }}\")\n\nb: a\n    use log(message = \"done\")\n",
        )
        .args(&["check", "--deny-warnings"])
        .run();
    assert_eq!(run.status, 0, "{}", run.stderr);
    assert!(run.stderr.contains("3 steps"), "{}", run.stderr);
}

#[test]
fn a_missing_import_is_reported_on_its_path() {
    let (status, stderr) =
        check("import \"std/notfy\"\nimport \"./nope.topsail\"\n\ns:\n    run echo\n");
    assert_eq!(status, 1);
    assert!(stderr.contains("did you mean `std/notify`?"), "{stderr}");
    assert!(stderr.contains("cannot read"), "{stderr}");
    insta::assert_snapshot!("missing_imports", stderr);
}
