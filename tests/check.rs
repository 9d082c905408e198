//! `topsail check`: one fixture per kind of problem, its rendered diagnostic
//! kept as a snapshot; the JSON form; exit codes.

use crate::common::Test;

/// `topsail check` of a fixture with one kind of problem: it fails, names
/// the problem's code, and its rendering is kept as a snapshot. The fixture
/// is unindented (`Test::pipeline`).
macro_rules! diagnostic_snapshot {
    ($name:ident, $code:literal, $source:expr) => {
        #[test]
        fn $name() {
            let run = Test::new()
                .pipeline($source)
                .args(&["check", "pipeline.topsail"])
                .status(1)
                .stderr_contains($code)
                .run();
            insta::assert_snapshot!(stringify!($name), run.stderr);
        }
    };
}

diagnostic_snapshot!(
    syntax_error,
    "topsail::syntax",
    r#"
        build
            run make

        test: build
            image "alpine
    "#
);

diagnostic_snapshot!(
    tab_indentation,
    "topsail::tab-indent",
    "build:\n\trun make\n"
);

diagnostic_snapshot!(
    mixed_indentation,
    "topsail::bad-indent",
    r#"
        build:
            image "alpine:3.20"
          run make
    "#
);

diagnostic_snapshot!(
    duplicate_step,
    "topsail::duplicate-step",
    r"
        build:
            run make

        build:
            run make all
    "
);

diagnostic_snapshot!(
    duplicate_param,
    "topsail::duplicate-param",
    r#"
        param region = "us-east-1"
        param region = "eu-west-1"

        s:
            run echo {{ region }}
    "#
);

diagnostic_snapshot!(
    unknown_needed_step,
    "topsail::unknown-step",
    r"
        build:
            run make

        test: biuld
            run make test
    "
);

diagnostic_snapshot!(
    cycle,
    "topsail::cycle",
    r"
        a: c
            run echo a

        b: a
            run echo b

        c: b
            run echo c

        d: a
            run echo d
    "
);

diagnostic_snapshot!(
    unknown_reference,
    "topsail::unknown-reference",
    r#"
        param region = "us-east-1"

        deploy:
            run ./deploy --region {{ regoin }}
    "#
);

diagnostic_snapshot!(
    output_without_need,
    "topsail::output-not-needed",
    r#"
        build:
            output VERSION
            run echo VERSION=1 >> "$TOPSAIL_OUTPUT"

        ship:
            run echo {{ build.VERSION }}
    "#
);

diagnostic_snapshot!(
    output_not_declared,
    "topsail::unknown-output",
    r#"
        build:
            output VERSION
            run echo VERSION=1 >> "$TOPSAIL_OUTPUT"

        ship: build
            run echo {{ build.VERSOIN }}
    "#
);

diagnostic_snapshot!(
    undeclared_secret,
    "topsail::undeclared-secret",
    r"
        secret API_TOKEN

        deploy:
            secret API_TOKN
            run ./deploy

        use-it:
            secret API_TOKEN
            run ./x
    "
);

diagnostic_snapshot!(
    bad_duration,
    "topsail::bad-duration",
    r"
        build:
            timeout 20x
            run make
    "
);

diagnostic_snapshot!(
    param_default_type_mismatch,
    "topsail::type-mismatch",
    r#"
        param replicas: int = "three"

        s:
            run echo {{ replicas }}
    "#
);

diagnostic_snapshot!(
    approval_with_run,
    "topsail::approval-conflict",
    r#"
        gate:
            approval "Ship it?"
            image "alpine:3.20"
            run echo shipping
    "#
);

diagnostic_snapshot!(
    catch_handler_needed,
    "topsail::catch-handler-needed",
    r"
        deploy:
            catch rollback
            run ./deploy

        rollback:
            run ./rollback

        report: rollback
            run echo done
    "
);

diagnostic_snapshot!(
    unknown_template,
    "topsail::unknown-template",
    r#"
        template docker-build(tag):
            run docker build -t {{ tag }} .

        image:
            use docker-buld(tag = "x")
    "#
);

diagnostic_snapshot!(
    wrong_template_arguments,
    "topsail::template-arguments",
    r#"
        template docker-build(context = ".", tag):
            run docker build -t {{ tag }} {{ context }}

        image:
            use docker-build(contxt = "src")
    "#
);

diagnostic_snapshot!(
    state_name_too_long,
    "topsail::state-name",
    r"
        this-step-name-is-far-too-long-to-become-a-step-functions-state-name-because-it-goes-on:
            run echo
    "
);

diagnostic_snapshot!(
    hole_in_quoted_heredoc,
    "topsail::hole-in-quoted-heredoc",
    r#"
        param name = "world"

        greet:
            run:
                cat <<'EOF'
                hello {{ name }}
                EOF
    "#
);

diagnostic_snapshot!(
    hole_in_non_posix_shell,
    "topsail::hole-in-non-posix-shell",
    r#"
        param name = "world"

        greet:
            shell "python3"
            run print("hello {{ name }}")
    "#
);

diagnostic_snapshot!(
    foreach_output_used,
    "topsail::foreach-output",
    r#"
        each:
            foreach r in ["a", "b"]
            output X
            run echo X={{ r }} >> "$TOPSAIL_OUTPUT"

        after: each
            run echo {{ each.X }}
    "#
);

#[test]
fn unused_param_and_secret_are_warnings() {
    let run = Test::new()
        .pipeline(
            "
            param unused = 1
            secret NOBODY

            s:
                run echo hi
            ",
        )
        .args(&["check", "pipeline.topsail"])
        .stderr_contains("topsail::unused-param")
        .stderr_contains("topsail::unused-secret")
        .status(0)
        .run();
    insta::assert_snapshot!("unused_param_and_secret", run.stderr);

    // --deny-warnings fails on warnings.
    Test::new()
        .pipeline(
            "
            param unused = 1

            s:
                run echo hi
            ",
        )
        .args(&["check", "--deny-warnings"])
        .stderr(
            "
            topsail::unused-param

              ⚠ param `unused` is never used
               ╭─[pipeline.topsail:1:7]
             1 │ param unused = 1
               ·       ───┬──
               ·          ╰── declared here, used nowhere
             2 │ 
               ╰────
              help: use it as `{{ unused }}`, or remove it

            ✗ pipeline.topsail: pipeline `pipeline`, 1 step; 0 errors, 1 warning
            ",
        )
        .status(1)
        .run();
}

#[test]
fn every_problem_of_a_file_is_reported_in_order() {
    let run = Test::new()
        .pipeline(
            r#"
            param region = "us-east-1"
            param region = "eu-west-1"

            build:
                timeout 5parsecs
                run make

            test: biuld
                run make test {{ regoin }}

            ship: test
                secret TOKEN
                run echo {{ build.VERSION }}
            "#,
        )
        .args(&["check", "pipeline.topsail"])
        .stderr_contains("6 errors")
        .status(1)
        .run();
    let stderr = run.stderr;
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
}

#[test]
fn yaml_diagnostics_point_into_the_yaml() {
    let run = Test::new()
        .write(
            "topsail.yaml",
            "
            pipeline: demo
            steps:
              build:
                run: make
              test:
                needs: [biuld]
                imagee: alpine
                run: make test
            ",
        )
        .args(&["check", "topsail.yaml"])
        .stderr_contains("topsail::unknown-step")
        .stderr_contains("topsail::unknown-key")
        .status(1)
        .run();
    insta::assert_snapshot!("yaml_diagnostics", run.stderr);
}

#[test]
fn json_format_lists_code_position_and_help() {
    let run = Test::new()
        .pipeline(
            "
            build:
                run make

            test: biuld
                run make test
            ",
        )
        .args(&["check", "--format", "json"])
        .status(1)
        .run();
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
    Test::new()
        .pipeline(
            "
            s:
                run echo hi
            ",
        )
        .args(&["check"])
        .stdout("")
        .stderr("✓ pipeline.topsail: pipeline `pipeline`, 1 step; 0 errors, 0 warnings\n")
        .status(0)
        .run();

    Test::new()
        .write(
            "topsail.yaml",
            "
            steps:
              s:
                run: echo hi
            ",
        )
        .args(&["check"])
        .stderr("✓ topsail.yaml: pipeline `topsail`, 1 step; 0 errors, 0 warnings\n")
        .status(0)
        .run();

    Test::new()
        .args(&["check", "nope.topsail"])
        .stderr("error: cannot read nope.topsail: No such file or directory (os error 2)\n")
        .status(2)
        .run();

    Test::new()
        .args(&["check"])
        .stderr(
            "
            error: no pipeline file given, and there is no pipeline.topsail or topsail.yaml here
              help: pass the file, e.g. `topsail check path/to/pipeline.topsail`
            ",
        )
        .status(2)
        .run();

    Test::new()
        .args(&["check", "--frobnicate"])
        .stderr_contains("error: unexpected argument '--frobnicate' found")
        .status(2)
        .run();
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
    Test::new()
        .pipeline(
            "
            a:
                run echo a

            b: a
                run echo b
            ",
        )
        .args(&["graph"])
        .stdout(
            r#"
            digraph "pipeline" {
              rankdir=LR;
              node [shape=box, style=rounded, fontname="Helvetica"];
              "a" [label="a"];
              "b" [label="b"];
              "a" -> "b";
            }
            "#,
        )
        .status(0)
        .run();
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
    let run = Test::new()
        .pipeline(
            r#"
            import "std/notfy"
            import "./nope.topsail"

            s:
                run echo
            "#,
        )
        .args(&["check", "pipeline.topsail"])
        .stderr_contains("did you mean `std/notify`?")
        .stderr_contains("cannot read")
        .status(1)
        .run();
    let stderr = run.stderr;
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
    r#"
        param dry_run: bool = false

        deploy:
            when dry_run == "false"
            run ./deploy
    "#
);

diagnostic_snapshot!(
    string_output_compared_with_a_bool,
    "topsail::type-mismatch",
    r#"
        build:
            output CHANGED
            run echo CHANGED=true >> "$TOPSAIL_OUTPUT"

        deploy: build
            when build.CHANGED == true
            run ./deploy
    "#
);

diagnostic_snapshot!(
    step_name_with_a_dot,
    "topsail::bad-name",
    r"
        all: liblua.a

        liblua.a: lua.o
            run ar rcs liblua.a lua.o

        lua.o:
            run cc -c lua.c
    "
);

diagnostic_snapshot!(
    github_actions_expression,
    "topsail::unknown-reference",
    r#"
        build:
            run docker build -t app:${{ github.sha }} .
            run echo ${{ steps.version.outputs.number }} "${{ secrets.TOKEN }}"
    "#
);

diagnostic_snapshot!(
    misspelt_builtin,
    "topsail::unknown-reference",
    r"
        build:
            run echo {{ pipeline.nam }}
    "
);

diagnostic_snapshot!(
    makefile_recipe_body,
    "topsail::tab-indent",
    "build:\n\t./configure\n\tmake\n\tmake install\n"
);

diagnostic_snapshot!(
    invalid_image_reference,
    "topsail::bad-value",
    r#"
        s:
            image "Bad Image::"
            run echo

        t:
            image ""
            run echo
    "#
);

diagnostic_snapshot!(
    step_functions_limits,
    "topsail::asl-limit",
    r"
        build:
            timeout 99999999d
            retry 60 every 99999999d
            run make
    "
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
        // A hole in a `foreach` list item: the param it names is not unused.
        (
            "topsail::bad-value",
            "param a = \"x\"\n\nb:\n    foreach r in [\"{{ a }}\", \"y\"]\n    run echo {{ r }}\n",
        ),
        // A condition nested too deeply: the param in it is not unused.
        (
            "topsail::syntax",
            concat!(
                "param a = \"x\"\n\nb:\n    when ",
                "((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((",
                "a == \"x\"",
                "))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))",
                "\n    run echo hi\n"
            ),
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
        Test::new()
            .args(&[command])
            .stderr(&format!(
                "
                error: no pipeline file given, and there is no pipeline.topsail or topsail.yaml here
                  help: pass the file, e.g. `topsail {command} path/to/pipeline.topsail`
                "
            ))
            .status(2)
            .run();
    }
}

#[test]
fn step_functions_limits_stop_run_and_compile_too() {
    for args in [&["run"][..], &["compile", "--to", "asl"][..]] {
        Test::new()
            .pipeline(
                "
                build:
                    timeout 99999999d
                    run echo built
                ",
            )
            .args(args)
            .stdout("")
            .stderr_contains("topsail::asl-limit")
            .status(1)
            .run();
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
