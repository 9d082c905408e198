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

// ------------------------------------------------------------ issue 12

/// `topsail check --format json` of `source`: the parsed document.
fn check_json(source: &str) -> serde_json::Value {
    let run = Test::new()
        .file("pipeline.topsail", source)
        .args(&["check", "--format", "json"])
        .run();
    serde_json::from_str(&run.stdout).unwrap_or_else(|e| panic!("{e}: {}", run.stdout))
}

fn errors_of(doc: &serde_json::Value) -> Vec<&serde_json::Value> {
    doc["diagnostics"]
        .as_array()
        .map(|a| a.iter().filter(|d| d["severity"] == "error").collect())
        .unwrap_or_default()
}

/// Every value a help suggests, put in place of the span it is for, is
/// accepted: the fix of one rule must not break another (`500ms` was
/// suggested for a timeout, which must be whole seconds). Each case must
/// offer at least one fix, so the test cannot pass by finding none.
#[test]
fn every_suggested_fix_is_accepted() {
    let cases: &[(&str, &str)] = &[
        (
            "topsail::bad-duration",
            "build:\n    timeout 20x\n    run make\n",
        ),
        (
            "topsail::bad-duration",
            "build:\n    timeout 5parsecs\n    run make\n",
        ),
        (
            "topsail::bad-duration",
            "build:\n    timeout 1500ms\n    run make\n",
        ),
        (
            "topsail::bad-duration",
            "build:\n    heartbeat 0s\n    run make\n",
        ),
        (
            "topsail::bad-duration",
            "build:\n    retry 2 every 99999999999999999999s\n    run make\n",
        ),
        (
            "topsail::bad-duration",
            "param wait: duration = \"3weeks\"\n\ns:\n    run sleep {{ wait }}\n",
        ),
        (
            "topsail::asl-limit",
            "build:\n    timeout 99999999d\n    run make\n",
        ),
        (
            "topsail::asl-limit",
            "build:\n    heartbeat 100000000s\n    run make\n",
        ),
        (
            "topsail::asl-limit",
            "build:\n    retry 60 every 99999999d\n    run make\n",
        ),
        (
            "topsail::bad-value",
            "build:\n    retry 100000000\n    run make\n",
        ),
        (
            "topsail::bad-value",
            "build:\n    retry 2 every 1s backoff 0.5\n    run make\n",
        ),
        (
            "topsail::type-mismatch",
            "build:\n    timeout 20\n    run make\n",
        ),
        (
            "topsail::type-mismatch",
            "param replicas: int = \"three\"\n\ns:\n    run echo {{ replicas }}\n",
        ),
        (
            "topsail::type-mismatch",
            "param region: string = 3\n\ns:\n    run echo {{ region }}\n",
        ),
        (
            "topsail::type-mismatch",
            "param dry_run: bool = false\n\ndeploy:\n    when dry_run == \"false\"\n    run ./deploy\n",
        ),
        (
            "topsail::type-mismatch",
            "param dry_run: bool = false\n\ndeploy:\n    when dry_run != \"false\"\n    run ./deploy\n",
        ),
        (
            "topsail::type-mismatch",
            "param dry_run: bool = false\n\ndeploy:\n    when \"true\" == dry_run\n    run ./deploy\n",
        ),
        (
            "topsail::type-mismatch",
            "build:\n    output CHANGED\n    run echo CHANGED=true >> \"$TOPSAIL_OUTPUT\"\n\ndeploy: build\n    when build.CHANGED == true\n    run ./deploy\n",
        ),
        (
            "topsail::type-mismatch",
            "param replicas: int = 3\n\ns:\n    when replicas != \"0\"\n    run echo\n",
        ),
        (
            "topsail::bad-name",
            "liblua.a: src\n    run make\n\nsrc:\n    run echo\n",
        ),
        ("topsail::bad-name", ".PHONY:\n    run make\n"),
        (
            "topsail::unknown-reference",
            "s:\n    run echo {{ pipeline.nam }}\n",
        ),
        (
            "topsail::unknown-reference",
            "s:\n    run echo {{ run.di }}\n",
        ),
        ("topsail::tab-indent", "build:\n\tmake\n\tmake install\n"),
        (
            "topsail::bad-value",
            "s:\n    image \"Bad Image::\"\n    run echo\n",
        ),
        ("topsail::bad-value", "s:\n    image \"\"\n    run echo\n"),
        (
            "topsail::bad-value",
            "image \"Alpine:3.20\"\n\ns:\n    run echo\n",
        ),
    ];
    for (code, source) in cases {
        let doc = check_json(source);
        let errors = errors_of(&doc);
        let with_fixes: Vec<_> = errors
            .iter()
            .filter(|d| d["code"] == *code && d["fixes"].as_array().is_some_and(|f| !f.is_empty()))
            .collect();
        assert!(
            !with_fixes.is_empty(),
            "no {code} with a fix for {source:?}:\n{doc:#}"
        );
        for d in with_fixes {
            let start = d["span"]["start"].as_u64().expect("a span") as usize;
            let end = d["span"]["end"].as_u64().expect("a span") as usize;
            for fix in d["fixes"].as_array().expect("fixes") {
                let fix = fix.as_str().expect("a fix is text");
                let help = d["help"].as_str().expect("a help");
                let fixed = format!("{}{fix}{}", &source[..start], &source[end..]);
                let again = check_json(&fixed);
                assert!(
                    errors_of(&again).is_empty(),
                    "the fix {fix:?} suggested for {source:?} ({help}) gives\n{fixed}\nwhich is refused:\n{again:#}"
                );
            }
        }
    }
}

diagnostic_snapshot!(
    bool_param_compared_with_a_string,
    "topsail::type-mismatch",
    "param dry_run: bool = false\n\ndeploy:\n    when dry_run == \"false\"\n    run ./deploy\n"
);

diagnostic_snapshot!(
    string_output_compared_with_a_bool,
    "topsail::type-mismatch",
    "build:\n    output CHANGED\n    run echo CHANGED=true >> \"$TOPSAIL_OUTPUT\"\n\ndeploy: build\n    when build.CHANGED == true\n    run ./deploy\n"
);

diagnostic_snapshot!(
    step_name_with_a_dot,
    "topsail::bad-name",
    "all: liblua.a\n\nliblua.a: lua.o\n    run ar rcs liblua.a lua.o\n\nlua.o:\n    run cc -c lua.c\n"
);

diagnostic_snapshot!(
    github_actions_expression,
    "topsail::unknown-reference",
    "build:\n    run docker build -t app:${{ github.sha }} .\n    run echo ${{ steps.version.outputs.number }} \"${{ secrets.TOKEN }}\"\n"
);

diagnostic_snapshot!(
    misspelt_builtin,
    "topsail::unknown-reference",
    "build:\n    run echo {{ pipeline.nam }}\n"
);

diagnostic_snapshot!(
    makefile_recipe_body,
    "topsail::tab-indent",
    "build:\n\t./configure\n\tmake\n\tmake install\n"
);

diagnostic_snapshot!(
    invalid_image_reference,
    "topsail::bad-value",
    "s:\n    image \"Bad Image::\"\n    run echo\n\nt:\n    image \"\"\n    run echo\n"
);

diagnostic_snapshot!(
    step_functions_limits,
    "topsail::asl-limit",
    "build:\n    timeout 99999999d\n    retry 60 every 99999999d\n    run make\n"
);

/// One mistake, one diagnostic: what only follows from an error (a name it
/// would have declared is unknown, a name it uses is unused) is not shown.
#[test]
fn one_mistake_one_diagnostic() {
    for (code, source) in [
        // A param default with a hole: not `b` unknown, nor `a` unused.
        (
            "topsail::bad-value",
            "param a = \"x\"\nparam b = \"{{ a }}\"\n\ns:\n    run echo {{ b }}\n",
        ),
        // `foreach` over a string param: the param is not "never used".
        (
            "topsail::type-mismatch",
            "param region = \"us-east-1\"\n\ns:\n    foreach r in region\n    run echo {{ r }}\n",
        ),
        // A header missing its `:`: the step it declares is not unknown,
        // the param its body uses is not unused.
        (
            "topsail::syntax",
            "param flags = \"-O2\"\n\nbuild\n    run make {{ flags }}\n\ntest: build\n    run make test\n",
        ),
        // An invalid step name: the steps that need it do not report it.
        (
            "topsail::bad-name",
            "all: liblua.a\n\nliblua.a:\n    run make\n",
        ),
        // An unknown type: the param is not also an unknown name.
        (
            "topsail::unknown-type",
            "param n: integer = 3\n\ns:\n    run echo {{ n }}\n",
        ),
        // A broken `param` line: its name is not unknown where it is used.
        (
            "topsail::syntax",
            "param region = us-east-1\n\ns:\n    run echo {{ region }}\n",
        ),
        // Lines skipped for their indentation do not leave their names unused.
        (
            "topsail::bad-indent",
            "param flags = \"-O2\"\n\nbuild:\n    run make\n        {{ flags }}\n",
        ),
        // A Makefile recipe: one error for the block, not two per line.
        (
            "topsail::tab-indent",
            "param prefix = \"/usr\"\n\nbuild:\n\tmake\n\tmake install PREFIX={{ prefix }}\n",
        ),
    ] {
        let doc = check_json(source);
        let all = doc["diagnostics"].as_array().expect("diagnostics");
        assert_eq!(all.len(), 1, "{source:?}:\n{doc:#}");
        assert_eq!(all[0]["code"], code, "{source:?}:\n{doc:#}");
    }
}

/// A name that is unknown for its own sake is still reported next to an
/// unrelated error: the marking is by name, not by "there was an error".
#[test]
fn unrelated_problems_are_still_reported() {
    let doc = check_json(
        "param region = us-east-1\nparam unused = \"x\"\n\ns: nothere\n    run echo {{ region }}\n",
    );
    let codes: Vec<&str> = doc["diagnostics"]
        .as_array()
        .expect("diagnostics")
        .iter()
        .filter_map(|d| d["code"].as_str())
        .collect();
    assert_eq!(
        codes,
        [
            "topsail::syntax",
            "topsail::unused-param",
            "topsail::unknown-step"
        ],
        "{doc:#}"
    );
}

#[test]
fn no_pipeline_file_names_the_command_that_was_run() {
    for command in ["check", "run", "graph", "compile"] {
        let run = Test::new().args(&[command]).run();
        assert_eq!(run.status, 2, "{command}: {}", run.stderr);
        let wanted = format!("`topsail {command} path/to/pipeline.topsail`");
        assert!(run.stderr.contains(&wanted), "{wanted} in {}", run.stderr);
    }
}

#[test]
fn step_functions_limits_stop_run_and_compile_too() {
    let source = "build:\n    timeout 99999999d\n    run echo built\n";
    for args in [&["run"][..], &["compile", "--to", "asl"][..]] {
        let run = Test::new()
            .file("pipeline.topsail", source)
            .args(args)
            .run();
        assert_eq!(run.status, 1, "{args:?}: {}{}", run.stdout, run.stderr);
        assert!(run.stderr.contains("topsail::asl-limit"), "{}", run.stderr);
        assert!(!run.stdout.contains("TimeoutSeconds"), "{}", run.stdout);
    }
}

#[test]
fn image_holes_are_checked_for_their_literal_parts() {
    // What the holes may hold is not known, but the literal text is.
    let doc = check_json("param tag = \"1\"\n\ns:\n    image \"My App:{{ tag }}\"\n    run echo\n");
    assert_eq!(errors_of(&doc).len(), 1, "{doc:#}");
    for ok in [
        "\"{{ image }}\"",
        "\"alpine:{{ tag }}\"",
        "\"{{ registry }}/app:{{ tag }}\"",
        "\"localhost:{{ port }}/app\"",
        "\"app@{{ digest }}\"",
        "\"app@sha256:{{ digest }}\"",
    ] {
        let doc = check_json(&format!(
            "param image = \"alpine\"\nparam tag = \"1\"\nparam registry = \"r.io\"\nparam port = \"5000\"\nparam digest = \"x\"\n\ns:\n    image {ok}\n    run echo {{{{ image }}}}{{{{ tag }}}}{{{{ registry }}}}{{{{ port }}}}{{{{ digest }}}}\n"
        ));
        assert!(errors_of(&doc).is_empty(), "{ok}: {doc:#}");
    }
}
