//! The ASL back end: golden files for every example (and for a hand-built
//! pipeline using every feature), validation of each with `statelint`, the
//! CLI, and property tests of the order the state machine implies.
//!
//! `UPDATE_GOLDEN=1 cargo test --test integration asl` rewrites the golden
//! files; review the diff before committing.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::time::Duration;

use indexmap::IndexMap;
use proptest::prelude::*;
use topsail::asl::{self, analyse, synth};
use topsail::model::{
    Action, Cond, Foreach, ForeachItems, Operand, Param, Piece, Pipeline, Ref, Retry, Text, Type,
    Value,
};

use crate::common::{Test, command, repo};

fn golden_dir() -> PathBuf {
    repo().join("tests/golden/asl")
}

/// Compare with (or, with UPDATE_GOLDEN=1, write) a golden file.
fn golden(name: &str, actual: &str) {
    let path = golden_dir().join(name);
    if std::env::var_os("UPDATE_GOLDEN").is_some() {
        std::fs::create_dir_all(golden_dir()).unwrap();
        std::fs::write(&path, actual).unwrap();
        return;
    }
    let expected = std::fs::read_to_string(&path).unwrap_or_else(|_| {
        panic!(
            "no golden file {}; run with UPDATE_GOLDEN=1",
            path.display()
        )
    });
    similar_asserts(&expected, actual, &path);
}

fn similar_asserts(expected: &str, actual: &str, path: &Path) {
    assert!(
        expected == actual,
        "{} differs (- golden, + compiled; UPDATE_GOLDEN=1 to accept, then review `git diff`):\n{}",
        path.display(),
        crate::common::diff(expected, actual)
    );
}

/// `statelint` from the venv made by scripts/setup/python.sh. Missing: a
/// failure on CI, a skip (with a note) elsewhere.
fn statelint() -> Option<PathBuf> {
    let bin = repo().join(".venv/bin/statelint");
    if bin.is_file() {
        return Some(bin);
    }
    assert!(
        std::env::var_os("CI").is_none(),
        "statelint is missing: run scripts/setup/python.sh"
    );
    eprintln!("note: statelint not installed (scripts/setup/python.sh); skipping validation");
    None
}

fn lint(json: &str, what: &str) {
    let Some(bin) = statelint() else { return };
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("machine.json");
    std::fs::write(&file, json).unwrap();
    let out = std::process::Command::new(bin).arg(&file).output().unwrap();
    assert!(
        out.status.success(),
        "statelint rejects {what}:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn every_example_compiles_to_its_golden_asl_and_passes_statelint() {
    let mut seen = 0;
    for path in crate::common::examples() {
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        let run = Test::new()
            .args(&["compile", path.to_str().unwrap(), "--to", "asl"])
            .run();
        assert_eq!(run.status, 0, "{name}: {}", run.stderr);
        golden(&format!("{name}.json"), &run.stdout);
        lint(&run.stdout, &name);
        let again = Test::new()
            .args(&["compile", path.to_str().unwrap(), "--to", "asl"])
            .run();
        assert_eq!(
            again.stdout, run.stdout,
            "{name}: output is not deterministic"
        );
        seen += 1;
    }
    eprintln!("{seen} examples compiled");
}

// ---------------------------------------------------------------------------
// A hand-built pipeline with every feature (until then, and besides, the examples).

fn text(parts: &[&str]) -> Text {
    // "{x}" pieces are references: {p:NAME} param, {o:STEP.OUT}, {l:VAR}, {failed.step}...
    Text {
        parts: parts
            .iter()
            .map(
                |p| match p.strip_prefix('{').and_then(|p| p.strip_suffix('}')) {
                    Some(r) => Piece::Ref(match r.split_once(':') {
                        Some(("p", n)) => Ref::Param(n.into()),
                        Some(("l", n)) => Ref::Loop(n.into()),
                        Some(("o", so)) => {
                            let (s, o) = so.split_once('.').unwrap();
                            Ref::Output {
                                step: s.into(),
                                output: o.into(),
                            }
                        }
                        _ => match r {
                            "failed.step" => Ref::FailedStep,
                            "failed.error" => Ref::FailedError,
                            "run.id" => Ref::RunId,
                            _ => Ref::PipelineName,
                        },
                    }),
                    None => Piece::Lit((*p).into()),
                },
            )
            .collect(),
    }
}

pub(crate) fn feature_pipeline() -> Pipeline {
    let mut p = synth::dag_pipeline(6, &[(0, 1), (0, 2), (1, 3), (2, 3), (3, 4)]);
    p.name = "release".into();
    let names = [
        "build",
        "unit-test",
        "lint",
        "approve",
        "deploy",
        "rollback",
    ];
    for (s, n) in p.steps.iter_mut().zip(names) {
        s.name = n.into();
        s.outputs.clear();
        s.action = Action::Script(topsail::model::Script {
            image: Some(Text::literal("alpine:3.20")),
            shell: None,
            run: text(&["echo ", "{p:version}", " '{{ not a hole }}'"]),
        });
    }
    for (i, s) in p.steps.iter_mut().enumerate() {
        s.need_names = s.needs.iter().map(|n| names[n.0].to_string()).collect();
        s.id = topsail::model::StepId(i);
    }
    let b = &mut p.steps[0];
    b.outputs = vec!["VERSION".into(), "GIT-SHA".into()];
    b.timeout = Some(Duration::from_mins(20));
    b.retry = Some(Retry {
        max_attempts: 2,
        interval: Duration::from_secs(10),
        backoff: 2.0,
    });
    let lint = &mut p.steps[2];
    lint.when = Some(Cond::Not(Box::new(Cond::Truthy(Operand::Ref(
        Ref::Param("fast".into()),
        Type::Bool,
    )))));
    lint.outputs = vec!["WARNINGS".into()];
    let ap = &mut p.steps[3];
    ap.action = Action::Approval {
        message: text(&[
            "Release ",
            "{o:build.VERSION}",
            " ('",
            "{p:region}",
            "') {ok}?",
        ]),
    };
    ap.timeout = Some(Duration::from_hours(24));
    let d = &mut p.steps[4];
    d.foreach = Some(Foreach {
        var: "r".into(),
        items: ForeachItems::List(vec![
            Value::Str("us-east-1".into()),
            Value::Str("eu-west-1".into()),
        ]),
    });
    d.when = Some(Cond::And(
        Box::new(Cond::Eq(
            Operand::Ref(
                Ref::Output {
                    step: "lint".into(),
                    output: "WARNINGS".into(),
                },
                Type::String,
            ),
            Operand::Lit(Value::Str("0".into())),
        )),
        Box::new(Cond::Ne(
            Operand::Ref(Ref::Param("replicas".into()), Type::Int),
            Operand::Lit(Value::Int(0)),
        )),
    ));
    d.env.insert("REGION".into(), text(&["{l:r}"]));
    d.env.insert(
        "V".into(),
        text(&["{o:build.VERSION}", "-", "{o:build.GIT-SHA}"]),
    );
    d.secrets = vec!["TOKEN".into()];
    d.heartbeat = Some(Duration::from_mins(1));
    d.timeout = Some(Duration::from_mins(30));
    d.catch = Some("rollback".into());
    let r = &mut p.steps[5];
    r.is_handler = true;
    r.action = Action::Script(topsail::model::Script {
        image: None,
        shell: Some("bash".into()),
        run: text(&["echo ", "{failed.step}", " ", "{failed.error}"]),
    });
    let param = |name: &str, ty, default| Param {
        name: name.into(),
        ty,
        default,
        span: topsail::source::Span::default(),
    };
    p.params = IndexMap::from([
        ("version".into(), param("version", Type::String, None)),
        (
            "region".into(),
            param("region", Type::String, Some(Value::Str("us-east-1".into()))),
        ),
        (
            "fast".into(),
            param("fast", Type::Bool, Some(Value::Bool(false))),
        ),
        (
            "replicas".into(),
            param("replicas", Type::Int, Some(Value::Int(3))),
        ),
    ]);
    p
}

#[test]
fn a_pipeline_with_every_feature_compiles_to_its_golden_asl() {
    let p = feature_pipeline();
    let c = asl::compile(&p, &asl::Options::default()).expect("compiles");
    let json = c.to_json();
    assert_eq!(
        json,
        serde_json::to_string_pretty(&c.definition).unwrap() + "\n"
    );
    golden("features.json", &json);
    golden("features.yaml", &c.to_yaml());
    lint(&json, "features.json");
    // The YAML form passes statelint too.
    if let Some(bin) = statelint() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("m.yaml");
        std::fs::write(&file, c.to_yaml()).unwrap();
        let out = std::process::Command::new(bin)
            .arg("--yaml")
            .arg(&file)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stdout)
        );
    }
    let hb = analyse::happens_before(&c.definition).unwrap();
    let set = |s: &[&str]| s.iter().map(|x| (*x).to_string()).collect::<BTreeSet<_>>();
    // lint has a `when`: its skip path joins, so "finished" is "ran on every path".
    assert_eq!(hb["approve"], set(&["build", "unit-test"]));
    assert_eq!(hb["deploy"], set(&["approve", "build", "unit-test"]));
}

// ---------------------------------------------------------------------------
// Order: the happens-before relation read back from the ASL.

fn check_order(n: usize, edges: &[(usize, usize)], sp: bool) -> Result<(), TestCaseError> {
    let p = synth::dag_pipeline(n, edges);
    let c = asl::compile(&p, &asl::Options::default())
        .map_err(|d| TestCaseError::fail(format!("{d:?}")))?;
    let hb: BTreeMap<String, BTreeSet<String>> =
        analyse::happens_before(&c.definition).map_err(TestCaseError::fail)?;
    let reach = synth::ancestors(n, edges);
    let waits: BTreeSet<String> = c
        .diagnostics
        .iter()
        .filter(|d| d.code == topsail::diagnostics::codes::ASL_WAIT)
        .map(|d| d.message.split('`').nth(1).unwrap_or_default().to_string())
        .collect();
    for (b, reach_b) in reach.iter().enumerate().take(n) {
        let name = format!("step-{b}");
        let before = hb
            .get(&name)
            .ok_or_else(|| TestCaseError::fail(format!("{name} never runs")))?;
        for (a, &needed) in reach_b.iter().enumerate().take(n) {
            let a_name = format!("step-{a}");
            if needed {
                prop_assert!(before.contains(&a_name), "edge {a_name} -> {name} lost");
            } else if before.contains(&a_name) {
                prop_assert!(
                    !sp,
                    "series-parallel DAG: {name} waits for {a_name} it does not need"
                );
            }
        }
        let added = before.iter().any(|a| {
            let i: usize = a.trim_start_matches("step-").parse().unwrap();
            !reach[b][i]
        });
        if added {
            // Some step on the path must be named in a note (the note names the
            // minimal waiters; later steps inherit the wait through them).
            prop_assert!(!waits.is_empty(), "{name} waits more but no note says so");
        }
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, .. ProptestConfig::default() })]

    #[test]
    fn random_dags_keep_every_edge(seed in any::<u64>(), n in 1usize..=200) {
        let mut rng = synth::Rng::new(seed);
        let edges = synth::random_dag(&mut rng, n);
        check_order(n, &edges, false)?;
    }

    #[test]
    fn series_parallel_dags_get_exactly_their_order(seed in any::<u64>(), n in 1usize..=200) {
        let mut rng = synth::Rng::new(seed);
        let edges = synth::random_sp(&mut rng, n);
        check_order(n, &edges, true)?;
    }
}

#[test]
fn the_n_shape_reports_the_added_wait() {
    // a->c, b->c, b->d: not series-parallel.
    let c = asl::compile(
        &synth::dag_pipeline(4, &[(0, 2), (1, 2), (1, 3)]),
        &asl::Options::default(),
    )
    .unwrap();
    let notes: Vec<_> = c.diagnostics.iter().map(|d| d.message.clone()).collect();
    assert_eq!(notes.len(), 1, "{notes:?}");
    lint(&c.to_json(), "N shape");
}

#[test]
fn compile_writes_json_yaml_and_graphs() {
    let t = Test::new()
        .file(
            "pipeline.yaml",
            "pipeline: p\nsteps:\n  a:\n    run: echo a\n  b:\n    needs: [a]\n    run: echo b\n",
        )
        .args(&[
            "compile",
            "pipeline.yaml",
            "--to",
            "asl",
            "--out",
            "m.json",
            "--activity-arn",
            "arn:aws:states:us-east-1:123456789012:activity:x",
        ]);
    let run = t.run();
    assert_eq!(run.status, 0, "{}", run.stderr);
    let m = std::fs::read_to_string(t.path("m.json")).unwrap();
    assert!(m.contains("arn:aws:states:us-east-1:123456789012:activity:x"));
}

/// The waits `topsail compile` notes, as (waiter, waited for) from its stderr.
fn noted_waits(stderr: &str) -> Vec<String> {
    stderr
        .lines()
        .filter_map(|l| l.split("on Step Functions ").nth(1))
        .map(|rest| rest.replace(", which it does not need", ""))
        .collect()
}

#[test]
fn durations_from_a_recorded_run_move_the_added_wait() {
    // a->c, b->c, b->d: not series-parallel, so one wait must be added.
    // With nothing known, `d` waits for `a` (two levels of two steps). Once a
    // run has shown that `a` and `d` are slow and `b` and `c` quick, the cheap
    // wait is a quick one (`a` for `b`, or `c` for `d`), and `d` runs beside `a`.
    let t = Test::new().file(
        "pipeline.topsail",
        "pipeline n\n\na:\n    run sleep 1\n\nb:\n    run true\n\n\
         c: a b\n    run true\n\nd: b\n    run sleep 1\n",
    );
    let compile = |extra: &[&str]| {
        let out = command(t.dir.path())
            .args(["compile", "--to", "asl"])
            .args(extra)
            .output()
            .expect("topsail runs");
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        assert_eq!(out.status.code(), Some(0), "{stderr}");
        (String::from_utf8_lossy(&out.stdout).into_owned(), stderr)
    };
    let (blind, stderr) = compile(&[]);
    assert_eq!(noted_waits(&stderr), ["`d` also waits for `a`"], "{stderr}");

    // No run recorded yet: a clear usage error.
    let out = command(t.dir.path())
        .args(["compile", "--durations-from", "last"])
        .output()
        .expect("topsail runs");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("no recorded run matches `last`"),
        "{stderr}"
    );

    let out = command(t.dir.path())
        .args(["run", "--jobs", "4"])
        .output()
        .expect("topsail runs");
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let (measured, stderr) = compile(&["--durations-from", "last"]);
    assert!(stderr.contains("step durations from run "), "{stderr}");
    assert!(stderr.contains("4 of 4 steps measured"), "{stderr}");
    let waits = noted_waits(&stderr);
    assert!(
        waits == ["`a` also waits for `b`"] || waits == ["`c` also waits for `d`"],
        "{stderr}"
    );
    assert_ne!(blind, measured);
    lint(&measured, "N shape with measured durations");
    // The same record gives the same bytes.
    assert_eq!(compile(&["--durations-from", "last"]).0, measured);
}

#[test]
fn wide_parallels_merge_within_the_intrinsics_limit() {
    // 0 -> 1..=25 -> 26: one Parallel of 25 branches that all add outputs.
    let n = 27;
    let mut edges: Vec<(usize, usize)> = (1..n - 1).map(|i| (0, i)).collect();
    edges.extend((1..n - 1).map(|i| (i, n - 1)));
    let c = asl::compile(&synth::dag_pipeline(n, &edges), &asl::Options::default()).unwrap();
    let json = c.to_json();
    lint(&json, "a Parallel of 25 branches");
    // The text printed while compiling is the text of the definition.
    assert_eq!(
        json,
        serde_json::to_string_pretty(&c.definition).unwrap() + "\n"
    );
    let states = c.definition["States"].as_object().unwrap();
    let merges: Vec<&str> = states
        .keys()
        .filter(|k| k.starts_with("Merge "))
        .map(String::as_str)
        .collect();
    // 11 branches, then 10 and 4 more merged into `$.steps`.
    assert_eq!(merges, ["Merge 1", "Merge 1 (2)", "Merge 1 (3)"]);
    let mut merged = BTreeSet::new();
    for m in &merges {
        let expr = states[*m]["Parameters"]["steps.$"].as_str().unwrap();
        assert!(expr.matches("States.").count() <= 10, "{expr}");
        merged.extend(
            expr.split("$.new.b")
                .skip(1)
                .map(|s| s.split('.').next().unwrap().to_string()),
        );
    }
    assert_eq!(merged.len(), 25, "{merged:?}");
    // Every merge state but the last keeps the branches' outputs.
    assert!(states["Merge 1 (2)"]["Parameters"]["new.$"].is_string());
    assert!(states["Merge 1 (3)"]["Parameters"].get("new.$").is_none());
}
