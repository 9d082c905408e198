//! `topsail run` on the host runtime: the meaning of a run (LANGUAGE.md
//! section 7) observed through the real binary, files the steps write, the
//! exit code and the run record.

use std::path::Path;
use std::time::{Duration, Instant};

use crate::common::process::{
    eventually, gone, group_alive, interrupt, output_of, said, signal, spawn, spawn_into,
    wait_for_file, wait_timeout,
};
use crate::common::records::runs;
use crate::common::{Test, assert_tmp_empty, run_json, status, unit};

/// A test dir whose `tmp/` is the runner's TMPDIR, so we can see that
/// attempt directories are removed.
pub fn run_test(pipeline: &str) -> Test {
    Test::new().file("pipeline.topsail", pipeline).tmpdir()
}

fn nanos(path: &Path) -> u128 {
    std::fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .trim()
        .parse()
        .unwrap()
}

const TWO_SLEEPERS: &str = r"
a:
    run:
        date +%s%N > a.start
        sleep 1
        date +%s%N > a.end
b:
    run:
        date +%s%N > b.start
        sleep 1
        date +%s%N > b.end
";

#[test]
fn run_independent_steps_overlap() {
    let t = run_test(TWO_SLEEPERS)
        .args(&["run", "--jobs", "2"])
        .status(0);
    t.run();
    let [a0, a1, b0, b1] = ["a.start", "a.end", "b.start", "b.end"].map(|f| nanos(&t.path(f)));
    assert!(
        a0 < b1 && b0 < a1,
        "a and b did not overlap: a {a0}..{a1}, b {b0}..{b1}"
    );
    assert_tmp_empty(&t);
}

#[test]
fn run_jobs_1_serialises() {
    let t = run_test(TWO_SLEEPERS)
        .args(&["run", "--jobs", "1"])
        .status(0);
    t.run();
    let [a0, a1, b0, b1] = ["a.start", "a.end", "b.start", "b.end"].map(|f| nanos(&t.path(f)));
    assert!(a1 <= b0 || b1 <= a0, "a and b overlapped with --jobs 1");
}

#[test]
fn run_outputs_flow_into_steps_and_when_and_skips_pass_through() {
    let t = run_test(
        r#"
produce:
    output COLOR
    output NOTE
    run:
        echo "COLOR=blue" >> "$TOPSAIL_OUTPUT"
        printf 'NOTE<<EOF\nline one\nline two\nEOF\n' >> "$TOPSAIL_OUTPUT"
blue: produce
    when produce.COLOR == "blue"
    run echo "{{ produce.COLOR }}|{{ produce.NOTE }}" > blue.txt
red: produce
    when produce.COLOR == "red"
    output SHADE
    run echo "SHADE=dark" >> "$TOPSAIL_OUTPUT"
after-red: red
    run echo "shade=[{{ red.SHADE }}]" > after-red.txt
"#,
    )
    .args(&["run"])
    .status(0);
    t.run();
    assert_eq!(
        std::fs::read_to_string(t.path("blue.txt")).unwrap(),
        "blue|line one\nline two\n"
    );
    // A skipped step counts as done for its dependants; its outputs are empty.
    assert_eq!(
        std::fs::read_to_string(t.path("after-red.txt")).unwrap(),
        "shade=[]\n"
    );
    let j = run_json(&t);
    assert_eq!(status(&j, "red"), "skipped");
    assert_eq!(status(&j, "after-red"), "succeeded");
    assert_eq!(unit(&j, "produce")["outputs"]["COLOR"], "blue");
}

#[test]
fn run_missing_declared_output_fails_the_step() {
    let t = Test::new()
        .pipeline(
            "
            a:
                output V
                run true
            ",
        )
        .tmpdir()
        .args(&["run"])
        .normalised()
        .stdout(
            r#"
            a | > started on the host
            a | ! failed: declared output `V` not set (append `NAME=value` to "$TOPSAIL_OUTPUT") [topsail.OutputMissing]
            STEP  STATUS     ATTEMPTS  DURATION
            a     failed            1      [T]  declared output `V` not set (append `NAME=value` to "$TOPSAIL_OUTPUT")
            run [RUN] failed in [T]: 0 succeeded, 1 failed, 0 skipped, 0 cancelled
            record: [DIR]/.topsail/runs/[RUN]
            "#,
        )
        .stderr_contains("step `a` failed: declared output `V` not set")
        .stderr_contains("[topsail.OutputMissing]")
        .status(1);
    t.run();
    assert_eq!(unit(&run_json(&t), "a")["error"], "topsail.OutputMissing");
}

#[test]
fn run_retries_count_attempts() {
    let t = Test::new()
        .pipeline(
            "
            flaky:
                retry 3 every 1s backoff 1.5
                run:
                    n=$(cat count 2>/dev/null || echo 0)
                    n=$((n + 1))
                    echo $n > count
                    [ $n -ge 3 ]
            ",
        )
        .tmpdir()
        .args(&["run"])
        .stdout_contains("retrying in 1.5s")
        .status(0);
    let started = Instant::now();
    t.run();
    let j = run_json(&t);
    assert_eq!(unit(&j, "flaky")["attempts"], 3);
    // Waits of 1s then 1.5s (interval * backoff^(n-1)), as an ASL Retrier.
    assert!(started.elapsed() >= Duration::from_millis(2500));
}

#[test]
fn run_timeout_kills_the_whole_process_group() {
    let t = run_test(
        r"
slow:
    timeout 1s
    run:
        sleep 60 &
        echo $! > child.pid
        wait
",
    )
    .args(&["run"]);
    let started = Instant::now();
    let r = t.run();
    assert_eq!(r.status, 1, "{}", r.show());
    assert!(started.elapsed() < Duration::from_secs(20));
    let j = run_json(&t);
    assert_eq!(unit(&j, "slow")["error"], "States.Timeout");
    let pid = std::fs::read_to_string(t.path("child.pid")).unwrap();
    assert!(gone(pid.trim()), "the background sleep survived");
    assert_tmp_empty(&t);
}

const FAIL_AND_OTHERS: &str = r"
bad:
    run exit 3
after-bad: bad
    run touch after-bad.ran
slow-other:
    run:
        sleep 1
        touch slow-other.ran
later: slow-other
    run touch later.ran
";

#[test]
fn run_failure_stops_dependants_and_exits_1() {
    let t = run_test(FAIL_AND_OTHERS)
        .args(&["run", "--jobs", "2"])
        .status(1);
    let r = t.run();
    assert!(!t.path("after-bad.ran").exists());
    // Running steps finish; nothing new starts after the failure.
    assert!(t.path("slow-other.ran").exists());
    assert!(!t.path("later.ran").exists());
    let j = run_json(&t);
    assert_eq!(status(&j, "bad"), "failed");
    assert_eq!(status(&j, "after-bad"), "cancelled");
    assert_eq!(
        unit(&j, "after-bad")["reason"],
        "not run because `bad` failed"
    );
    assert_eq!(status(&j, "later"), "cancelled");
    assert_eq!(j["status"], "failed");
    assert!(r.stdout.contains("exit code 3"), "{}", r.show());
}

#[test]
fn run_keep_going_runs_everything_not_depending_on_the_failure() {
    let t = run_test(FAIL_AND_OTHERS)
        .args(&["run", "--jobs", "2", "--keep-going"])
        .status(1);
    t.run();
    assert!(!t.path("after-bad.ran").exists());
    assert!(t.path("later.ran").exists());
    assert_eq!(status(&run_json(&t), "later"), "succeeded");
}

#[test]
fn run_catch_handler_sees_the_failure() {
    let t = Test::new()
        .pipeline(
            r#"
            deploy:
                catch rollback
                run exit 4
            rollback:
                run echo "{{ failed.step }} {{ failed.error }}" > rollback.txt
            "#,
        )
        .tmpdir()
        .args(&["run"])
        .normalised()
        .stdout(
            "
            deploy   | > started on the host
            deploy   | ! failed: exit code 4 [topsail.ScriptFailed]
            rollback | > started on the host
            rollback | > succeeded in [T]
            STEP      STATUS     ATTEMPTS  DURATION
            deploy    failed            1      [T]  exit code 4
            rollback  succeeded         1      [T]
            run [RUN] failed in [T]: 1 succeeded, 1 failed, 0 skipped, 0 cancelled
            record: [DIR]/.topsail/runs/[RUN]
            ",
        )
        .status(1);
    t.run();
    assert_eq!(
        std::fs::read_to_string(t.path("rollback.txt")).unwrap(),
        "deploy topsail.ScriptFailed\n"
    );
    assert_eq!(status(&run_json(&t), "rollback"), "succeeded");
}

#[test]
fn run_catch_handler_does_not_run_without_failure() {
    let t = Test::new()
        .pipeline(
            "
            ok:
                catch h
                run true
            h:
                run touch h.ran
            ",
        )
        .tmpdir()
        .args(&["run"])
        .normalised()
        .stdout(
            "
            ok | > started on the host
            ok | > succeeded in [T]
            STEP  STATUS     ATTEMPTS  DURATION
            ok    succeeded         1      [T]
            h     skipped           0         -  catch handler: nothing it handles failed
            run [RUN] succeeded in [T]: 1 succeeded, 0 failed, 1 skipped, 0 cancelled
            record: [DIR]/.topsail/runs/[RUN]
            ",
        )
        .status(0);
    t.run();
    assert!(!t.path("h.ran").exists());
}

const GATED: &str = r#"
build:
    run true
gate: build
    approval "Ship it?"
ship: gate
    run touch shipped
"#;

#[test]
fn run_approval_without_answer_fails_clearly() {
    let t = run_test(GATED)
        .args(&["run"])
        .normalised()
        .stdout(
            r#"
            build | > started on the host
            build | > succeeded in [T]
            gate  | ! failed: needs approval ("Ship it?") and there is no terminal to ask on: pass --approve gate or --approve-all [topsail.Rejected]
            STEP   STATUS     ATTEMPTS  DURATION
            build  succeeded         1      [T]
            gate   failed            1      [T]  needs approval ("Ship it?") and there is no terminal to ask on: pass --approve gate or --approve-all
            ship   cancelled         0         -  not run because `gate` failed
            run [RUN] failed in [T]: 1 succeeded, 1 failed, 0 skipped, 1 cancelled
            record: [DIR]/.topsail/runs/[RUN]
            "#,
        )
        .status(1);
    t.run();
    assert!(!t.path("shipped").exists());
}

#[test]
fn run_approval_flags_approve() {
    for flags in [&["--approve", "gate"][..], &["--approve-all"][..]] {
        let mut args = vec!["run"];
        args.extend_from_slice(flags);
        let t = run_test(GATED).args(&args);
        let r = t.run();
        assert_eq!(r.status, 0, "{}", r.show());
        assert!(t.path("shipped").exists());
    }
    run_test(GATED)
        .args(&["run", "--approve", "build"])
        .stdout("")
        .stderr("error: --approve: step `build` is not an approval step\n")
        .status(2)
        .run();
}

const SECRETIVE: &str = r#"
secret API_TOKEN
param who = "x"

leak:
    secret API_TOKEN
    output ECHOED
    run:
        echo "token is $API_TOKEN"
        echo "to stderr $API_TOKEN" >&2
        echo "ECHOED=$API_TOKEN" >> "$TOPSAIL_OUTPUT"
        exit 1
nosee:
    run echo "nosee sees [${API_TOKEN:-}]" > nosee.txt
"#;

#[test]
fn run_secrets_never_appear_in_logs_records_or_plan() {
    let value = "pa55-w0rd-Zq9";
    let t = run_test(SECRETIVE)
        .env("API_TOKEN", value)
        .args(&["run", "--keep-going"])
        .stdout_contains("token is ***")
        .stdout_lacks(value)
        .stderr_lacks(value)
        .status(1);
    t.run();
    // A step sees only the secrets it asked for.
    assert_eq!(
        std::fs::read_to_string(t.path("nosee.txt")).unwrap(),
        "nosee sees []\n"
    );
    for entry in walk(&t.path(".topsail")) {
        let text = std::fs::read_to_string(&entry).unwrap();
        assert!(!text.contains(value), "secret in {}", entry.display());
    }
    run_test(SECRETIVE)
        .env("API_TOKEN", value)
        .args(&["run", "--dry-run", "--param", &format!("who={value}")])
        .stdout_contains("API_TOKEN=***")
        .stdout_lacks(value)
        .status(0)
        .run();
}

#[test]
fn run_an_output_holding_a_secret_fails_the_step_and_stores_nothing() {
    let value = "s3cr3t-Xy7-value";
    let t = run_test(
        "pipeline p\nsecret API_TOKEN\n\n\
         pass:\n    secret API_TOKEN\n    output TOKEN\n    run:\n        \
         echo \"TOKEN=Bearer $API_TOKEN\" >> \"$TOPSAIL_OUTPUT\"\n\n\
         after: pass\n    run echo \"got {{ pass.TOKEN }}\"\n",
    )
    .env("API_TOKEN", value)
    .args(&["run"])
    .stdout_contains("output `TOKEN` holds the value of secret `API_TOKEN`")
    .stdout_contains("topsail.SecretInOutput")
    .stdout_lacks(value)
    .stderr_lacks(value)
    .stdout_lacks("got ")
    .status(1);
    t.run();
    for entry in walk(&t.path(".topsail")) {
        let text = std::fs::read_to_string(&entry).unwrap();
        assert!(!text.contains(value), "secret in {}", entry.display());
    }
}

#[test]
fn run_missing_secret_value_fails_the_step() {
    // The harness passes its own environment on: this test needs the secret unset there.
    assert!(
        std::env::var_os("API_TOKEN").is_none(),
        "API_TOKEN is set in the test environment"
    );
    run_test(SECRETIVE)
        .args(&["run", "--target", "leak"])
        .stdout_contains("secret `API_TOKEN` is not set")
        .status(1)
        .run();
}

fn walk(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            out.extend(walk(&p));
        } else {
            out.push(p);
        }
    }
    out
}

#[test]
fn run_params_are_type_checked() {
    let p = "
        param n: int = 1
        param name: string
        a:
            run echo {{ n }} {{ name }} > out.txt
    ";
    for (args, error) in [
        (
            &["--param", "n=x", "--param", "name=a"][..],
            "error: --param n: `x` is not an int (`n` is a int)\n",
        ),
        (
            &[][..],
            "error: missing required param `name` (string): pass --param NAME=VALUE\n",
        ),
        (
            &["--param", "nme=a"][..],
            "error: unknown param `nme` (did you mean `name`?); declared: n, name\n",
        ),
    ] {
        Test::new()
            .pipeline(p)
            .tmpdir()
            .args(&["run"])
            .args(args)
            .stdout("")
            .stderr(error)
            .status(2)
            .run();
    }
    let t = Test::new()
        .pipeline(p)
        .tmpdir()
        .args(&["run", "--param", "n=7", "--param", "name=a b;c"])
        .status(0);
    t.run();
    assert_eq!(
        std::fs::read_to_string(t.path("out.txt")).unwrap(),
        "7 a b;c\n"
    );
}

#[test]
fn run_target_runs_only_what_it_needs() {
    let t = Test::new()
        .pipeline(
            "
            a:
                run touch a
            b: a
                run touch b
            c:
                run touch c
            ",
        )
        .tmpdir()
        .args(&["run", "--target", "b"])
        .normalised()
        .stdout(
            "
            a | > started on the host
            a | > succeeded in [T]
            b | > started on the host
            b | > succeeded in [T]
            STEP  STATUS     ATTEMPTS  DURATION
            a     succeeded         1      [T]
            b     succeeded         1      [T]
            run [RUN] succeeded in [T]: 2 succeeded, 0 failed, 0 skipped, 0 cancelled
            record: [DIR]/.topsail/runs/[RUN]
            ",
        )
        .status(0);
    t.run();
    assert!(t.path("a").exists() && t.path("b").exists() && !t.path("c").exists());
}

#[test]
fn run_foreach_instances_run_and_fail_the_step() {
    let t = run_test(
        "fan:\n    foreach x in [\"1\", \"2\", \"3\"]\n    run:\n        touch fan-{{ x }}\n        [ {{ x }} != 2 ]\nafter: fan\n    run touch after\n",
    )
    .args(&["run", "--jobs", "3"])
    .status(1);
    t.run();
    assert!(t.path("fan-1").exists() && t.path("fan-3").exists());
    let j = run_json(&t);
    assert_eq!(status(&j, "fan[2]"), "failed");
    assert_eq!(status(&j, "after"), "cancelled");
}

/// A step that records its shell's pid (its process group) and sleeps, and
/// one after it that must never run.
pub const SLEEPER: &str = "
    long:
        run:
            echo $$ > long.pid
            sleep 60
    next: long
        run touch next.ran
";

/// `topsail run` of `SLEEPER` stopped with `sig` while its step runs: exit
/// 130, the step's process group gone, nothing after it started, the run
/// recorded as interrupted and its attempt dirs removed.
pub fn a_signal_stops_the_steps_and_cleans_up(sig: &str) {
    let t = Test::new().pipeline(SLEEPER).tmpdir();
    let mut child = spawn(&t, &["run"]);
    wait_for_file(&t.path("long.pid"));
    let pgid = std::fs::read_to_string(t.path("long.pid")).unwrap();
    let pgid = pgid.trim();
    assert!(group_alive(pgid), "the step runs in its own process group");
    signal(child.id(), sig);
    let code = wait_timeout(&mut child, Duration::from_secs(20), || {
        format!("SIG{sig} did not stop the run\n{}", output_of(&t))
    });
    assert_eq!(code, Some(130), "{}", output_of(&t));
    assert!(gone(pgid), "the step's shell survived");
    assert!(!group_alive(pgid), "the step's process group survived");
    assert!(!t.path("next.ran").exists());
    let j = run_json(&t);
    assert_eq!(j["status"], "interrupted");
    assert_eq!(status(&j, "long"), "cancelled");
    assert_tmp_empty(&t);
}

#[test]
fn run_sigterm_stops_processes_and_cleans_up() {
    a_signal_stops_the_steps_and_cleans_up("TERM");
}

#[test]
fn runs_and_logs_read_the_record() {
    let t = Test::new()
        .pipeline(
            "
            hello:
                run echo hello-from-step
            ",
        )
        .tmpdir()
        .args(&["run"])
        .normalised()
        .stdout(
            "
            hello | > started on the host
            hello | hello-from-step
            hello | > succeeded in [T]
            STEP   STATUS     ATTEMPTS  DURATION
            hello  succeeded         1      [T]
            run [RUN] succeeded in [T]: 1 succeeded, 0 failed, 0 skipped, 0 cancelled
            record: [DIR]/.topsail/runs/[RUN]
            ",
        )
        .status(0);
    t.run();
    let t = t
        .next()
        .args(&["runs"])
        .normalised()
        .stdout(
            "
            RUN                     PIPELINE              STATUS        DURATION  STEPS
            [RUN]    pipeline              succeeded         [T]  1 ok, 0 failed, 0 skipped, 0 cancelled
            ",
        )
        .status(0);
    t.run();
    let t = t
        .next()
        .args(&["logs", "last", "hello"])
        .stdout(
            "
            [topsail] started on the host
            hello-from-step
            [topsail] succeeded
            ",
        )
        .status(0);
    t.run();
}

#[test]
fn run_watch_reruns_on_change_cancels_a_long_step_and_ends_on_sigint() {
    // Steps write under out/, the runner's TMPDIR is tmp/: both ignored, so
    // the runs themselves do not retrigger the watch.
    let t = run_test("quick:\n    run echo v1 >> out/log\n").file(".gitignore", "out/\ntmp/\n");
    std::fs::create_dir_all(t.path("out")).unwrap();
    let logs = tempfile::tempdir().unwrap();
    let output = logs.path().join("output");
    let mut child = spawn_into(&t, &["run", "--watch"], &output);
    let log = || std::fs::read_to_string(t.path("out/log")).unwrap_or_default();
    let said = |s: &str| said(&output, s);
    let runs = || runs(&t);

    // The first run, then the watcher waits.
    eventually("the first run", &output, || {
        log() == "v1\n" && said("watching") == 1
    });
    assert_eq!(runs(), 1);

    // A change starts a second run: a long step.
    std::fs::write(
        t.path("pipeline.topsail"),
        "long:\n    run:\n        echo $$ > out/long.pid\n        echo v2 >> out/log\n        sleep 60\n",
    )
    .unwrap();
    eventually("the second run's long step", &output, || {
        log().ends_with("v2\n") && t.path("out/long.pid").exists()
    });
    assert_eq!(runs(), 2);
    let pid = std::fs::read_to_string(t.path("out/long.pid")).unwrap();

    // A change while it runs cancels it cleanly, then a third run starts.
    std::fs::write(
        t.path("pipeline.topsail"),
        "long3:\n    run:\n        echo $$ > out/long3.pid\n        echo v3 >> out/log\n        sleep 60\n",
    )
    .unwrap();
    eventually("the third run", &output, || {
        log().ends_with("v3\n") && t.path("out/long3.pid").exists()
    });
    assert!(said("pipeline.topsail changed: cancelling this run") >= 1);
    assert!(
        gone(pid.trim()),
        "the long step's process survived the rerun"
    );
    assert_eq!(runs(), 3);
    let mut ids: Vec<_> = std::fs::read_dir(t.path(".topsail/runs"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    ids.sort();
    let second: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(ids[1].join("run.json")).unwrap()).unwrap();
    assert_eq!(second["status"], "interrupted");
    assert_eq!(status(&second, "long"), "cancelled");

    // Ctrl-C during the third run ends the watch: exit 130, nothing left behind.
    let pid3 = std::fs::read_to_string(t.path("out/long3.pid")).unwrap();
    let code = interrupt(&mut child);
    assert_eq!(
        code,
        Some(130),
        "{}",
        std::fs::read_to_string(&output).unwrap()
    );
    assert!(gone(pid3.trim()), "the third run's step survived Ctrl-C");
    assert_tmp_empty(&t);
    let third: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(ids[2].join("run.json")).unwrap()).unwrap();
    assert_eq!(third["status"], "interrupted");
}
