//! Cloud runs you can see into and stop (issue 15), end to end on the
//! emulator (scripts/services start; moto serves Step Functions and
//! CloudWatch Logs from one process): step lines live in `start --follow`
//! and in `topsail logs`, masked; a failed step at its source; `topsail
//! stop` kills host and container steps within 10 s; no task lost when a
//! worker is stopped (SIGTERM) or killed (SIGKILL).

use std::path::Path;
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use crate::common::process::Lines;
use crate::common::records::record;
use crate::common::{Test, unique, unit};
use crate::support::{Follow, Worker, deploy, run, topsail};

const IMAGE: &str = "topsail-test/busybox:latest";

/// A worker with a secret in its environment (the support Worker has none).
struct SecretWorker {
    child: Child,
    log: Lines,
}

impl SecretWorker {
    fn start(dir: &Path, activity: &str, name: &str, secret: (&str, &str)) -> SecretWorker {
        let tmp = dir.join("worker-tmp");
        std::fs::create_dir_all(&tmp).unwrap();
        let mut child = topsail(dir)
            .env("TMPDIR", &tmp)
            .env(secret.0, secret.1)
            .args([
                "worker",
                "--activity-arn",
                activity,
                "--name",
                name,
                "--allow-host",
                "--secret",
                secret.0,
            ])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let log = Lines::collect(&mut child);
        SecretWorker { child, log }
    }
}

impl Drop for SecretWorker {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn step_lines_are_live_in_follow_and_in_logs_and_never_a_secret() {
    let out_mark = unique("OUT-MARK");
    let err_mark = unique("ERR-MARK");
    let secret = unique("hunter2-value");
    let pipeline = format!(
        "pipeline logsdemo\n\nsecret TOKEN\n\ntalk:\n    secret TOKEN\n    run:\n        echo \"{out_mark}\"\n        sleep 0.3\n        echo \"{err_mark}\" >&2\n        echo \"token=$TOKEN\"\n        sleep 8\n        echo finished\n"
    );
    let t = Test::new().file("p.topsail", &pipeline);
    let dir = t.dir.path();
    let machine = unique("logsdemo");
    let activity = deploy(dir, "p.topsail", &machine);
    let w = SecretWorker::start(dir, &activity, "wl", ("TOKEN", &secret));
    let exec = unique("ex");
    let follow = Follow::start(dir, "p.topsail", &machine, &exec, &[]);
    // Both markers on screen while the step still sleeps.
    follow.wait_for(&out_mark, Duration::from_mins(1));
    follow.wait_for(&err_mark, Duration::from_secs(10));
    let live = follow.text();
    assert!(!live.contains("finished"), "the step had ended:\n{live}");
    assert!(
        !w.log.text().contains("talk | succeeded"),
        "the step had ended:\n{}",
        w.log.text()
    );
    assert!(
        live.contains("talk"),
        "lines are prefixed with their step:\n{live}"
    );
    let (code, out) = follow.finish(Duration::from_mins(2));
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("token=***"), "{out}");
    assert!(!out.contains(&secret), "{out}");
    // The record `start --follow` wrote keeps the lines.
    let (code, local, err) = run(dir, &["logs", &exec]);
    assert_eq!(code, 0, "{local}{err}");
    assert!(
        local.contains(&out_mark) && local.contains(&err_mark),
        "{local}"
    );
    assert!(local.contains("talk | finished"), "{local}");
    // And from CloudWatch Logs, by name (the pipeline file is here).
    let (code, cloud, err) = run(dir, &["logs", &exec, "--cloud", "--machine", &machine]);
    assert_eq!(code, 0, "{cloud}{err}");
    let lines: Vec<&str> = cloud.lines().collect();
    let at = |m: &str| lines.iter().position(|l| l.contains(m));
    let (o, e, f) = (at(&out_mark), at(&err_mark), at("finished"));
    assert!(o.is_some() && e.is_some() && f.is_some(), "{cloud}");
    // (Apart in time: two pipes printed within the same instant have no order.)
    assert!(o < e && e < f, "in the order printed:\n{cloud}");
    assert!(
        cloud.contains(&format!("talk | [stderr] {err_mark}")),
        "{cloud}"
    );
    assert!(cloud.contains("talk | token=***"), "{cloud}");
    assert!(!cloud.contains(&secret), "{cloud}");
    assert!(!w.log.text().contains(&secret), "{}", w.log.text());
    // One step: its lines alone, unprefixed.
    let (code, one, _) = run(
        dir,
        &["logs", &exec, "talk", "--cloud", "--machine", &machine],
    );
    assert_eq!(code, 0);
    assert!(one.lines().any(|l| l == out_mark), "{one}");
}

#[test]
fn a_failed_step_is_shown_at_its_source_with_its_last_lines() {
    let t = Test::new().file(
        "p.topsail",
        "pipeline failsrc\n\nsetup:\n    run echo ready\n\ntests: setup\n    run:\n        echo \"test_3 ... ok\"\n        echo \"test_4 ... FAILED\"\n        exit 3\n",
    );
    let dir = t.dir.path();
    let machine = unique("failsrc");
    let activity = deploy(dir, "p.topsail", &machine);
    let _w = Worker::start(dir, &activity, "wf", &["--allow-host"]);
    let exec = unique("ex");
    let (code, out) =
        Follow::start(dir, "p.topsail", &machine, &exec, &[]).finish(Duration::from_mins(2));
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("topsail::step-failed"), "{out}");
    assert!(out.contains("p.topsail:6:1"), "the step's line:\n{out}");
    assert!(out.contains("tests:"), "the source snippet:\n{out}");
    // Stdout lines are in the cause, not only stderr.
    let r = record(dir, &exec);
    let cause = unit(&r, "tests")["cause"].as_str().unwrap().to_string();
    assert!(cause.contains("test_4 ... FAILED"), "{cause}");
    assert!(cause.contains("exit code 3"), "{cause}");
    // `topsail logs` of the record shows it at the source too.
    let (code, logs, _) = run(dir, &["logs", &exec]);
    assert_eq!(code, 0);
    assert!(logs.contains("tests | test_4 ... FAILED"), "{logs}");
    assert!(logs.contains("topsail::step-failed"), "{logs}");
    // `runs --cloud` names the failed step.
    let (code, runs, err) = run(dir, &["runs", "--cloud", "--machine", &machine]);
    assert_eq!(code, 0, "{runs}{err}");
    let row = runs.lines().find(|l| l.contains(&exec)).expect(&runs);
    assert!(row.contains("failed") && row.ends_with("tests"), "{row}");
}

#[test]
fn a_local_run_shows_its_failed_step_at_its_source() {
    let t = Test::new().file(
        "p.topsail",
        "pipeline localsrc\n\nok:\n    run echo fine\n\nboom: ok\n    run:\n        echo \"about to fail\"\n        exit 4\n",
    );
    let r = t.run_with(&["run", "p.topsail"]);
    assert_eq!(r.status, 1, "{}", r.show());
    // On stderr, as `topsail check` shows a diagnostic: the code, the
    // step's line in the file, and where its whole output is.
    assert!(r.stderr.contains("topsail::step-failed"), "{}", r.show());
    assert!(r.stderr.contains("p.topsail:6:1"), "{}", r.show());
    assert!(r.stderr.contains("step `boom` failed"), "{}", r.show());
    assert!(r.stderr.contains("topsail logs "), "{}", r.show());
    assert!(!r.stdout.contains("topsail::step-failed"), "{}", r.show());
    // A run that succeeds shows no snippet.
    let ok = Test::new()
        .file("p.topsail", "pipeline fine\n\nok:\n    run echo fine\n")
        .run_with(&["run", "p.topsail"]);
    assert_eq!(ok.status, 0, "{}", ok.show());
    assert!(!ok.stderr.contains("step-failed"), "{}", ok.show());
}

/// Stop a running step's execution; the worker kills it and cleans up
/// within 10 s, and the marker its script writes after the sleep never
/// appears.
fn stop_kills(t: &Test, machine: &str, worker_args: &[&str], marker: &Path) {
    let dir = t.dir.path();
    let activity = deploy(dir, "p.topsail", machine);
    let w = Worker::start(dir, &activity, "ws", worker_args);
    let exec = unique("ex");
    let follow = Follow::start(dir, "p.topsail", machine, &exec, &[]);
    follow.wait_for("STEP-IS-SLEEPING", Duration::from_mins(1));
    let t0 = Instant::now();
    let (code, out, err) = run(
        dir,
        &[
            "stop",
            &exec,
            "--machine",
            machine,
            "--reason",
            "changed my mind",
        ],
    );
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("execution stopped"), "{out}");
    w.wait_for("killed the step and cleaned up", Duration::from_secs(10));
    let took = t0.elapsed();
    assert!(took < Duration::from_secs(10), "{took:?}");
    let log = w.log();
    let line = log
        .lines()
        .find(|l| l.contains("killed the step"))
        .unwrap()
        .to_string();
    assert!(
        line.contains("stopped: the execution was stopped"),
        "{line}"
    );
    assert!(
        !log.contains("DispatchFailure") && !log.contains("ErrorMetadata"),
        "{log}"
    );
    let (code, out) = follow.finish(Duration::from_secs(30));
    assert_eq!(code, 1, "{out}");
    // Nothing more from the worker for that task, and no marker after the sleep.
    std::thread::sleep(Duration::from_secs(13));
    assert!(!marker.exists(), "the step ran on after the stop");
    let after = w.log();
    let tail = &after[after.find("killed the step").unwrap()..];
    assert!(
        !tail.contains("SendTask") && !tail.contains("failed:"),
        "{tail}"
    );
}

#[test]
fn stop_kills_a_running_host_step_within_ten_seconds() {
    let t = Test::new().file(
        "p.topsail",
        "pipeline stophost\n\nwork:\n    run:\n        echo STEP-IS-SLEEPING\n        sleep 20\n        touch marker-host\n",
    );
    let marker = t.dir.path().join("marker-host");
    stop_kills(&t, &unique("stophost"), &["--allow-host"], &marker);
}

#[test]
fn stop_kills_a_running_container_step_within_ten_seconds() {
    let t = Test::new().file(
        "p.topsail",
        &format!(
            "pipeline stopctr\n\nwork:\n    image \"{IMAGE}\"\n    run:\n        echo STEP-IS-SLEEPING\n        sleep 20\n        touch /workspace/marker-ctr\n"
        ),
    );
    let marker = t.dir.path().join("marker-ctr");
    let dir = t.dir.path().to_string_lossy().into_owned();
    stop_kills(
        &t,
        &unique("stopctr"),
        &["--allow-image", "topsail-test/*", "--dir", &dir],
        &marker,
    );
}

const QUICK: &str =
    "pipeline quick\n\nhello:\n    heartbeat 5s\n    run echo \"hello from {{ run.id }}\"\n";

#[test]
fn a_worker_stopped_with_sigterm_loses_none_of_the_next_ten_executions() {
    let t = Test::new().file("p.topsail", QUICK);
    let dir = t.dir.path();
    let machine = unique("restart");
    let activity = deploy(dir, "p.topsail", &machine);
    let mut a = Worker::start(dir, &activity, "wa", &["--allow-host"]);
    a.wait_for("polling", Duration::from_secs(20));
    std::thread::sleep(Duration::from_millis(500));
    a.signal("TERM");
    let _b = Worker::start(dir, &activity, "wb", &["--allow-host"]);
    let t0 = Instant::now();
    for i in 0..10 {
        let exec = unique(&format!("ex{i}"));
        let (code, out) =
            Follow::start(dir, "p.topsail", &machine, &exec, &[]).finish(Duration::from_mins(2));
        assert_eq!(
            code,
            0,
            "execution {i} of 10:\n{out}\nworker a:\n{}",
            a.log()
        );
        assert!(out.contains(&format!("hello from {exec}")), "{out}");
        // No task waited for the stopped worker's heartbeat to run out.
        assert!(
            !out.contains("HeartbeatTimeout") && !out.contains("States.Timeout"),
            "execution {i}:\n{out}"
        );
    }
    // The stopped worker finished its poll, handed back anything it got,
    // and exited cleanly.
    assert_eq!(a.wait(Duration::from_secs(90)), 0, "{}", a.log());
    assert!(
        a.log().contains("finishing the outstanding poll"),
        "{}",
        a.log()
    );
    assert!(t0.elapsed() < Duration::from_mins(4));
}

#[test]
fn a_task_of_a_sigkilled_worker_is_retried_and_succeeds() {
    let t = Test::new().file(
        "p.topsail",
        "pipeline killed\n\nwork:\n    heartbeat 3s\n    output WHO\n    run:\n        echo \"attempt on $(hostname)\"\n        sleep 4\n        echo \"WHO={{ run.id }}\" >> \"$TOPSAIL_OUTPUT\"\n",
    );
    let dir = t.dir.path();
    let machine = unique("sigkill");
    let activity = deploy(dir, "p.topsail", &machine);
    let mut a = Worker::start(dir, &activity, "wa", &["--allow-host"]);
    let exec = unique("ex");
    let follow = Follow::start(dir, "p.topsail", &machine, &exec, &[]);
    // Killed once its first line is out (shipped within LINGER, 200 ms).
    a.wait_for("work | attempt on", Duration::from_secs(30));
    std::thread::sleep(Duration::from_millis(1500));
    a.signal("KILL");
    a.wait(Duration::from_secs(5));
    let b = Worker::start(dir, &activity, "wb", &["--allow-host"]);
    let (code, out) = follow.finish(Duration::from_mins(2));
    assert_eq!(code, 0, "{out}\nworker b:\n{}", b.log());
    assert!(
        out.contains("started on worker wa") && out.contains("started on worker wb"),
        "{out}"
    );
    let r = record(dir, &exec);
    assert_eq!(unit(&r, "work")["outputs"]["WHO"], exec.as_str());
    assert_eq!(unit(&r, "work")["attempts"], 1);
    // Both attempts' lines are in the logs, each in its own stream.
    let (code, logs, err) = run(dir, &["logs", &exec, "--cloud", "--machine", &machine]);
    assert_eq!(code, 0, "{logs}{err}");
    assert!(logs.matches("work | attempt on").count() >= 2, "{logs}");
}
