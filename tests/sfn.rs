//! End to end on the Step Functions emulator (scripts/services start): the
//! real binary deploys, starts, serves and approves; the run records
//! `start --follow` writes from the execution history are checked.
//! Host steps (`--allow-host`) keep these fast; Docker is the subject of
//! sfn_same.rs.

use std::fmt::Write as _;
use std::time::{Duration, Instant};

use crate::common::records::record;
use crate::common::{Test, repo, unique, unit};
use crate::support::{Follow, Worker, deploy, run};

fn host_worker(t: &Test, activity: &str, name: &str, extra: &[&str]) -> Worker {
    let mut args = vec!["--allow-host"];
    args.extend_from_slice(extra);
    Worker::start(t.dir.path(), activity, name, &args)
}

#[test]
fn hello_deploys_idempotently_and_runs_on_two_workers() {
    let hello = std::fs::read_to_string(repo().join("examples/hello.topsail")).unwrap();
    let t = Test::new().file("hello.topsail", &hello);
    let dir = t.dir.path();
    let machine = unique("hello");
    let activity = deploy(dir, "hello.topsail", &machine);
    let (code, out, err) = run(dir, &["deploy", "hello.topsail", "--name", &machine]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("state machine unchanged"), "{out}");
    assert!(out.contains("activity unchanged"), "{out}");
    let _a = host_worker(&t, &activity, "wa", &[]);
    let _b = host_worker(&t, &activity, "wb", &[]);
    let exec = unique("ex");
    let (code, out) = Follow::start(dir, "hello.topsail", &machine, &exec, &["greeting=Ahoy"])
        .finish(Duration::from_mins(2));
    assert_eq!(code, 0, "{out}");
    assert!(out.contains(&format!("run {exec} succeeded")), "{out}");
    let r = record(dir, &exec);
    assert_eq!(r["status"], "succeeded");
    let greet = unit(&r, "greet");
    let msg = greet["outputs"]["MESSAGE"].as_str().unwrap();
    assert!(msg.starts_with("Ahoy from hello ("), "{msg}");
    assert_eq!(unit(&r, "flaky")["attempts"], 2);
    assert_eq!(unit(&r, "shout")["status"], "skipped");
    assert_eq!(unit(&r, "count[two]")["status"], "succeeded");
    assert_eq!(unit(&r, "done")["status"], "succeeded");
}

#[test]
fn a_failing_step_retries_then_its_catch_handler_runs() {
    let t = Test::new().file(
        "p.topsail",
        "pipeline failing\n\nbad:\n    retry 2 every 1s backoff 1.0\n    catch cleanup\n    run:\n        echo trying\n        echo \"disk on fire\" >&2\n        exit 3\n\ncleanup:\n    output SEEN\n    run echo \"SEEN={{ failed.step }}:{{ failed.error }}\" >> \"$TOPSAIL_OUTPUT\"\n",
    );
    let dir = t.dir.path();
    let machine = unique("failing");
    let activity = deploy(dir, "p.topsail", &machine);
    let _a = host_worker(&t, &activity, "wa", &[]);
    let _b = host_worker(&t, &activity, "wb", &[]);
    let exec = unique("ex");
    let (code, out) =
        Follow::start(dir, "p.topsail", &machine, &exec, &[]).finish(Duration::from_mins(2));
    assert_eq!(code, 1, "{out}");
    let r = record(dir, &exec);
    assert_eq!(r["status"], "failed");
    let bad = unit(&r, "bad");
    assert_eq!(bad["status"], "failed");
    assert_eq!(bad["attempts"], 3, "{r:#}");
    assert_eq!(bad["error"], "topsail.ScriptFailed");
    let cause = bad["cause"].as_str().unwrap();
    assert!(
        cause.contains("exit code 3") && cause.contains("disk on fire"),
        "{cause}"
    );
    let cleanup = unit(&r, "cleanup");
    assert_eq!(cleanup["status"], "succeeded");
    assert_eq!(cleanup["outputs"]["SEEN"], "bad:topsail.ScriptFailed");
}

const SLOW: &str = "pipeline slow\n\nwork:\n    heartbeat 2s\n    output WHO\n    run:\n        sleep 3\n        echo \"WHO={{ run.id }}\" >> \"$TOPSAIL_OUTPUT\"\n";

#[test]
fn a_task_of_a_killed_worker_is_finished_by_another() {
    let t = Test::new().file("p.topsail", SLOW);
    let dir = t.dir.path();
    let machine = unique("killed");
    let activity = deploy(dir, "p.topsail", &machine);
    let mut a = host_worker(&t, &activity, "wa", &[]);
    let exec = unique("ex");
    let follow = Follow::start(dir, "p.topsail", &machine, &exec, &[]);
    a.wait_for("work | started", Duration::from_secs(20));
    a.signal("KILL");
    a.wait(Duration::from_secs(5));
    let b = host_worker(&t, &activity, "wb", &[]);
    let (code, out) = follow.finish(Duration::from_mins(2));
    assert_eq!(code, 0, "{out}\nworker b:\n{}", b.log());
    assert!(b.log().contains("work | succeeded"), "{}", b.log());
    assert!(
        out.contains("started on worker wa") && out.contains("started on worker wb"),
        "{out}"
    );
    let r = record(dir, &exec);
    let work = unit(&r, "work");
    assert_eq!(work["status"], "succeeded");
    assert_eq!(work["outputs"]["WHO"], exec.as_str());
    // The lost attempt is not the step's own failure.
    assert_eq!(work["attempts"], 1);
}

#[test]
fn sigterm_lets_running_tasks_finish_within_the_grace() {
    let t = Test::new().file("p.topsail", SLOW);
    let dir = t.dir.path();
    let machine = unique("drain");
    let activity = deploy(dir, "p.topsail", &machine);
    let mut a = host_worker(&t, &activity, "wa", &["--grace", "20s"]);
    let exec = unique("ex");
    let follow = Follow::start(dir, "p.topsail", &machine, &exec, &[]);
    a.wait_for("work | started", Duration::from_secs(20));
    a.signal("TERM");
    // A stopping worker finishes its outstanding poll first (up to 60 s).
    assert_eq!(a.wait(Duration::from_secs(90)), 0, "{}", a.log());
    let log = a.log();
    assert!(log.contains("stopping: no new tasks"), "{log}");
    assert!(log.contains("work | succeeded"), "{log}");
    let (code, out) = follow.finish(Duration::from_mins(2));
    assert_eq!(code, 0, "{out}");
}

/// The stopped worker's cut-short poll may still be handed the retried task
/// by the server (AWS does not know the client left either); the short
/// heartbeat brings it back to the other worker then.
#[test]
fn sigterm_past_the_grace_fails_the_task_and_another_worker_runs_it() {
    let t = Test::new().file(
        "p.topsail",
        "pipeline drain2\n\nwork:\n    heartbeat 2s\n    run:\n        m=\"marker-{{ run.id }}\"\n        if [ ! -e \"$m\" ]; then touch \"$m\"; sleep 30; fi\n        rm -f \"$m\"\n        echo second worker\n",
    );
    let dir = t.dir.path();
    let machine = unique("drain2");
    let activity = deploy(dir, "p.topsail", &machine);
    let mut a = host_worker(&t, &activity, "wa", &["--grace", "1s"]);
    let exec = unique("ex");
    let follow = Follow::start(dir, "p.topsail", &machine, &exec, &[]);
    a.wait_for("work | started", Duration::from_secs(20));
    a.signal("TERM");
    assert_eq!(a.wait(Duration::from_secs(90)), 0, "{}", a.log());
    assert!(a.log().contains("topsail.WorkerShutdown"), "{}", a.log());
    let b = host_worker(&t, &activity, "wb", &[]);
    let (code, out) = follow.finish(Duration::from_mins(2));
    assert_eq!(code, 0, "{out}\n{}", b.log());
    assert!(b.log().contains("second worker"), "{}", b.log());
    assert_eq!(unit(&record(dir, &exec), "work")["attempts"], 1);
}

#[test]
fn approvals_are_listed_approved_and_rejected() {
    let t = Test::new().file(
        "p.topsail",
        "pipeline gated\n\nparam version = \"1.0\"\n\ngate:\n    approval \"Ship {{ version }}?\"\n\nship: gate\n    run echo shipped {{ version }}\n",
    );
    let dir = t.dir.path();
    let machine = unique("gated");
    let activity = deploy(dir, "p.topsail", &machine);
    let _a = host_worker(&t, &activity, "wa", &[]);
    let (e1, e2) = (unique("yes"), unique("no"));
    let f1 = Follow::start(dir, "p.topsail", &machine, &e1, &["version=1.1"]);
    let f2 = Follow::start(dir, "p.topsail", &machine, &e2, &["version=2.0"]);
    let t0 = Instant::now();
    let list = loop {
        let (code, out, err) = run(dir, &["approve", "--machine", &machine, "--list"]);
        assert_eq!(code, 0, "{out}{err}");
        if out.contains(&e1) && out.contains(&e2) {
            break out;
        }
        assert!(
            t0.elapsed() < Duration::from_secs(30),
            "approvals never listed:\n{out}"
        );
        std::thread::sleep(Duration::from_millis(200));
    };
    assert!(
        list.contains("Ship 1.1?") && list.contains("Ship 2.0?"),
        "{list}"
    );
    // Listing does not consume the messages.
    let (_, again, _) = run(dir, &["approve", "--machine", &machine, "--list"]);
    assert!(again.contains(&e1) && again.contains(&e2), "{again}");
    let (code, out, err) = run(dir, &["approve", &e1, "gate"]);
    assert_eq!(code, 0, "{out}{err}");
    let (code, out, err) = run(
        dir,
        &["approve", &e2, "gate", "--reject", "--reason", "not today"],
    );
    assert_eq!(code, 0, "{out}{err}");
    let (c1, o1) = f1.finish(Duration::from_mins(2));
    let (c2, o2) = f2.finish(Duration::from_mins(2));
    assert_eq!(c1, 0, "{o1}");
    assert_eq!(c2, 1, "{o2}");
    let r2 = record(dir, &e2);
    let gate = unit(&r2, "gate");
    assert_eq!(gate["error"], "topsail.Rejected");
    assert!(
        gate["cause"].as_str().unwrap().contains("not today"),
        "{r2:#}"
    );
    assert_eq!(unit(&r2, "ship")["status"], "cancelled");
    assert_eq!(unit(&record(dir, &e1), "ship")["status"], "succeeded");
    let (_, left, _) = run(dir, &["approve", "--machine", &machine, "--list"]);
    assert!(left.contains("no approvals pending"), "{left}");
}

#[test]
fn allow_image_refuses_a_task() {
    let t = Test::new().file(
        "p.topsail",
        "pipeline imgs\n\nevil:\n    image \"evil/miner:latest\"\n    run echo mining\n",
    );
    let dir = t.dir.path();
    let machine = unique("imgs");
    let activity = deploy(dir, "p.topsail", &machine);
    let w = Worker::start(dir, &activity, "wa", &["--allow-image", "topsail-test/*"]);
    let exec = unique("ex");
    let (code, out) =
        Follow::start(dir, "p.topsail", &machine, &exec, &[]).finish(Duration::from_mins(2));
    assert_eq!(code, 1, "{out}");
    let r = record(dir, &exec);
    let evil = unit(&r, "evil");
    assert_eq!(evil["error"], "topsail.ImageNotAllowed", "{r:#}");
    assert!(
        evil["cause"]
            .as_str()
            .unwrap()
            .contains("evil/miner:latest"),
        "{r:#}"
    );
    assert!(!w.log().contains("mining"), "{}", w.log());
}

/// A Parallel of 14 branches that all add outputs (more than one merge
/// state: Step Functions allows 10 intrinsic functions in a field), one of
/// them with a Parallel of its own, then a step that reads every output.
#[test]
fn outputs_of_many_parallel_branches_all_reach_the_join() {
    let mut src = String::from(
        "pipeline wide\n\nstart:\n    output V\n    run echo \"V=s\" >> \"$TOPSAIL_OUTPUT\"\n",
    );
    let mut all = Vec::new();
    for i in 1..=12 {
        write!(
            src,
            "\np{i}: start\n    output V\n    run echo \"V={{{{ start.V }}}}{i}\" >> \"$TOPSAIL_OUTPUT\"\n"
        )
        .unwrap();
        all.push(format!("p{i}.V"));
    }
    // An output whose key is not its name (picked by path, not whole).
    src.push_str("\np13: start\n    output V-X\n    run echo \"V-X=x\" >> \"$TOPSAIL_OUTPUT\"\n");
    all.push("p13.V-X".into());
    // The 14th branch: q, then q1 and q2 side by side, then q3.
    for (name, needs, value) in [
        ("q", "start", "q"),
        ("q1", "q", "{{ q.V }}1"),
        ("q2", "q", "{{ q.V }}2"),
        ("q3", "q1 q2", "{{ q1.V }}{{ q2.V }}"),
    ] {
        write!(
            src,
            "\n{name}: {needs}\n    output V\n    run echo \"V={value}\" >> \"$TOPSAIL_OUTPUT\"\n"
        )
        .unwrap();
    }
    all.push("q3.V".into());
    let needs: Vec<&str> = all.iter().filter_map(|r| r.split('.').next()).collect();
    let refs: Vec<String> = all.iter().map(|r| format!("{{{{ {r} }}}}")).collect();
    write!(
        src,
        "\njoin: {}\n    output ALL\n    run echo \"ALL={}\" >> \"$TOPSAIL_OUTPUT\"\n",
        needs.join(" "),
        refs.join(",")
    )
    .unwrap();
    let t = Test::new().file("p.topsail", &src);
    let dir = t.dir.path();
    let (code, asl, err) = run(dir, &["compile", "p.topsail", "--to", "asl"]);
    assert_eq!(code, 0, "{err}");
    assert!(asl.contains("\"Merge 1 (2)\""), "{asl}");
    let machine = unique("wide");
    let activity = deploy(dir, "p.topsail", &machine);
    let _a = host_worker(&t, &activity, "wa", &[]);
    let _b = host_worker(&t, &activity, "wb", &[]);
    let exec = unique("ex");
    let (code, out) =
        Follow::start(dir, "p.topsail", &machine, &exec, &[]).finish(Duration::from_mins(3));
    assert_eq!(code, 0, "{out}");
    let r = record(dir, &exec);
    let want: Vec<String> = (1..=12)
        .map(|i| format!("s{i}"))
        .chain(["x".to_string(), "q1q2".to_string()])
        .collect();
    assert_eq!(unit(&r, "join")["outputs"]["ALL"], want.join(","), "{r:#}");
}

/// The injection table of tests/inject.rs on a worker (host steps, sh and
/// bash): every value reaches every idiom byte for byte from the
/// execution's input, and none of them runs.
#[test]
fn values_arrive_as_data_in_every_idiom_on_the_worker() {
    let marker = Test::new();
    let x = marker.path("X").display().to_string();
    let table = crate::inject::table(&x, None, true);
    let t = Test::new().file("p.topsail", &table.pipeline);
    let dir = t.dir.path();
    let machine = unique("inject");
    let activity = deploy(dir, "p.topsail", &machine);
    let w = host_worker(&t, &activity, "wa", &[]);
    let exec = unique("ex");
    let params: Vec<&str> = table.params.iter().map(String::as_str).collect();
    let (code, out) =
        Follow::start(dir, "p.topsail", &machine, &exec, &params).finish(Duration::from_mins(4));
    assert!(!marker.path("X").exists(), "a value ran on the worker");
    assert_eq!(code, 0, "{out}\n{}", w.log());
    let r = record(dir, &exec);
    crate::inject::check_outputs(&table, |step, output| {
        unit(&r, step)["outputs"][output]
            .as_str()
            .map(str::to_string)
    });
}
