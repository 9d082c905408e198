//! `topsail run` against steps that misbehave (issue 11 "hostile input",
//! issue 12): output without line breaks, huge output files, a terminal
//! that closes, a runner that is killed, processes that leave their step's
//! group, secrets that come back as params and items. Through the real
//! binary, as a user would meet them.

use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

use crate::common::process::{gone, output_of, signal, spawn, wait_for_file, wait_sampling};
use crate::common::{Test, assert_tmp_empty, command, run_json, status, unit};
use crate::run::{SLEEPER, run_test};

#[test]
fn run_output_without_line_breaks_is_cut_and_memory_stays_bounded() {
    // 50 MB on stdout with no line break, then a normal line.
    let t = run_test(
        "flood:\n    run:\n        head -c 50000000 /dev/zero | tr '\\0' x\n        echo\n        echo after-the-flood\n",
    );
    let child = spawn(&t, &["run"]);
    let (code, peak) = wait_sampling(child, Duration::from_mins(2));
    assert_eq!(code, 0, "{}", output_of(&t));
    assert!(
        peak < 100 * 1024,
        "topsail peaked at {peak} KiB for a 50 MB line"
    );
    let out = std::fs::read_to_string(t.path("topsail.out")).unwrap();
    assert!(
        out.contains("[topsail: line cut at 64 KiB]"),
        "no cut marker"
    );
    assert!(
        out.contains("a line of 50000000 bytes was cut to 65536"),
        "{}",
        out.lines()
            .filter(|l| l.len() < 300)
            .collect::<Vec<_>>()
            .join("\n")
    );
    assert!(out.contains("after-the-flood"));
    assert!(out.len() < 200_000, "stdout is {} bytes", out.len());
    let runs = t.path(".topsail/runs");
    let id = std::fs::read_dir(&runs).unwrap().next().unwrap().unwrap();
    let log = std::fs::metadata(id.path().join("run.log")).unwrap().len();
    assert!(log < 200_000, "run.log is {log} bytes");
    assert_tmp_empty(&t);
}

#[test]
fn run_an_output_file_over_the_limit_fails_quickly_with_the_limit() {
    // A sparse 200 MB file, and a real 300 KB one.
    for script in [
        "truncate -s 200M \"$TOPSAIL_OUTPUT\"",
        "printf 'BIG=%s\\n' \"$(head -c 300000 /dev/zero | tr '\\0' a)\" >> \"$TOPSAIL_OUTPUT\"",
    ] {
        let t = run_test(&format!(
            "big:\n    output BIG\n    run {script}\nafter: big\n    run touch after.ran\n"
        ));
        let t0 = Instant::now();
        let (code, peak) = wait_sampling(spawn(&t, &["run"]), Duration::from_mins(1));
        let took = t0.elapsed();
        let out = output_of(&t);
        assert_eq!(code, 1, "{out}");
        assert!(took < Duration::from_secs(5), "took {took:?}");
        assert!(peak < 100 * 1024, "topsail peaked at {peak} KiB");
        assert!(out.contains("topsail.OutputTooLarge"), "{out}");
        assert!(out.contains("at most 262144"), "{out}");
        assert!(!t.path("after.ran").exists());
        let j = run_json(&t);
        assert_eq!(status(&j, "big"), "failed");
        assert_eq!(unit(&j, "big")["error"], "topsail.OutputTooLarge");
        assert!(j.to_string().len() < 20_000, "run.json is large");
        assert_tmp_empty(&t);
    }
}

#[test]
fn run_sighup_stops_the_steps_like_sigterm() {
    crate::run::a_signal_stops_the_steps_and_cleans_up("HUP");
}

#[test]
fn run_killed_runner_is_lost_for_the_next_topsail_and_its_dirs_go() {
    let t = Test::new().pipeline(SLEEPER).tmpdir();
    let mut child = spawn(&t, &["run"]);
    wait_for_file(&t.path("long.pid"));
    let pgid = std::fs::read_to_string(t.path("long.pid")).unwrap();
    let pgid = pgid.trim().to_string();
    signal(child.id(), "KILL");
    let _ = child.wait();
    // What a SIGKILL leaves: the record says running, the attempt dir stays.
    assert_eq!(run_json(&t)["status"], "running");
    let left = std::fs::read_dir(t.path("tmp")).unwrap().count();
    assert!(left > 0, "expected the killed run's attempt dir");
    // The step itself is not topsail's to stop any more: end its group here.
    // Not with `kill -KILL -PGID`: procps-ng 4.0.2's kill reads that as
    // `kill(-1)` and ended every process on the machine (three times today).
    let pgid: i32 = pgid.parse().expect("long.pid holds the step's pid");
    assert!(pgid > 1, "a real process group, not {pgid}");
    let _ = nix::sys::signal::killpg(
        nix::unistd::Pid::from_raw(pgid),
        nix::sys::signal::Signal::SIGKILL,
    );
    let runs = command(t.dir.path())
        .arg("runs")
        .env("TMPDIR", t.path("tmp"))
        .output()
        .unwrap();
    let listed = String::from_utf8_lossy(&runs.stdout);
    assert!(runs.status.success(), "{listed}");
    let line = listed.lines().nth(1).unwrap_or_default();
    assert!(line.contains(" lost "), "{listed}");
    let j = run_json(&t);
    assert_eq!(j["status"], "lost");
    assert_eq!(status(&j, "long"), "cancelled");
    assert!(
        unit(&j, "long")["reason"]
            .as_str()
            .unwrap()
            .starts_with("lost: topsail (pid"),
        "{j:#}"
    );
    assert_tmp_empty(&t);
    // A live run is left alone by the next topsail.
    let t2 = Test::new().pipeline(SLEEPER).tmpdir();
    let live = spawn(&t2, &["run"]);
    wait_for_file(&t2.path("long.pid"));
    let runs = command(t2.dir.path()).arg("runs").output().unwrap();
    let listed = String::from_utf8_lossy(&runs.stdout).into_owned();
    signal(live.id(), "TERM");
    let (code, _) = wait_sampling(live, Duration::from_secs(20));
    assert_eq!(code, 130);
    assert!(
        listed
            .lines()
            .nth(1)
            .unwrap_or_default()
            .contains(" running "),
        "{listed}"
    );
    assert_eq!(run_json(&t2)["status"], "interrupted");
}

#[test]
fn run_a_setsid_child_neither_delays_the_run_nor_outlives_it() {
    for (what, line) in [
        ("holding the pipes", "setsid sleep 30 &"),
        (
            "redirected",
            "setsid sleep 30 > /dev/null 2>&1 < /dev/null &",
        ),
    ] {
        let t = run_test(&format!(
            "daemon:\n    run:\n        {line}\n        echo $! > escapee.pid\n        echo started\n        sleep 0.2\n"
        ));
        let t0 = Instant::now();
        let (code, _) = wait_sampling(spawn(&t, &["run"]), Duration::from_mins(1));
        let took = t0.elapsed();
        assert_eq!(code, 0, "{what}: {}", output_of(&t));
        assert!(
            took < Duration::from_secs(3),
            "{what}: the run took {took:?}"
        );
        let pid = std::fs::read_to_string(t.path("escapee.pid")).unwrap();
        assert!(
            gone(pid.trim()),
            "{what}: the setsid child outlived the run"
        );
        assert!(output_of(&t).contains("started"), "{what}");
        assert_tmp_empty(&t);
    }
}

#[test]
fn run_a_pipeline_that_is_not_a_regular_file_gets_no_record() {
    let before = Path::new("/dev/.topsail").exists();
    let r = Test::new().args(&["run", "/dev/null"]).run();
    assert_ne!(r.status, 0, "{}", r.show());
    assert!(r.stderr.contains("/dev/null"), "{}", r.show());
    if !before {
        assert!(
            !Path::new("/dev/.topsail").exists(),
            "a record was made in /dev"
        );
    }
}

#[test]
fn run_a_secret_given_as_param_and_item_is_masked_everywhere() {
    let value = "tok-Vq81-zz";
    let multi = "BEGIN-KEY-LINE\nq7\nEND-KEY-LINE";
    let pipeline = "pipeline p\nsecret API_TOKEN\nsecret PEM\nparam who: string\nparam items: list\n\n\
        greet:\n    run echo \"hello {{ who }}\"\n\n\
        fan:\n    foreach x in items\n    run echo \"item {{ x }}\"\n\n\
        key:\n    secret PEM\n    run:\n        printf '%s\\n' \"$PEM\"\n        echo done\n";
    let t = run_test(pipeline)
        .env("API_TOKEN", value)
        .env("PEM", multi)
        .args(&[
            "run",
            "--param",
            &format!("who={value}"),
            "--param",
            &format!("items=plain,{value},{value}-2"),
        ]);
    let r = t.run();
    assert_eq!(r.status, 0, "{}", r.show());
    for (what, text) in [("stdout", &r.stdout), ("stderr", &r.stderr)] {
        assert!(!text.contains(value), "{what}: {}", r.show());
        assert!(!text.contains("q7"), "{what}: {}", r.show());
    }
    assert!(r.stdout.contains("hello ***"), "{}", r.show());
    assert!(r.stdout.contains("fan[plain]"), "{}", r.show());
    assert!(r.stdout.contains("fan[***]"), "{}", r.show());
    assert!(r.stdout.contains("fan[***-2]"), "{}", r.show());
    assert!(
        r.stderr.contains("secret `PEM` has lines shorter"),
        "{}",
        r.show()
    );
    let runs = t.path(".topsail/runs");
    let id = std::fs::read_dir(&runs).unwrap().next().unwrap().unwrap();
    for file in ["run.json", "run.log"] {
        let text = std::fs::read_to_string(id.path().join(file)).unwrap();
        assert!(!text.contains(value), "secret in {file}:\n{text}");
        assert!(
            !text.contains("q7"),
            "a line of the secret in {file}:\n{text}"
        );
    }
    let j = run_json(&t);
    assert_eq!(j["params"]["who"], "***");
    assert_eq!(unit(&j, "fan[***]")["item"], "***");
    let plan = run_test(pipeline)
        .env("API_TOKEN", value)
        .env("PEM", multi)
        .args(&[
            "run",
            "--dry-run",
            "--param",
            &format!("who={value}"),
            "--param",
            &format!("items={value}"),
        ])
        .run();
    assert_eq!(plan.status, 0, "{}", plan.show());
    assert!(!plan.stdout.contains(value), "{}", plan.stdout);
}

/// The same step fails alike on the activity worker (Step Functions
/// emulator: `TOPSAIL_SFN_PORT=... scripts/services start`), with the same
/// error name and limit, and without the worker reading the file whole.
#[test]
fn worker_an_output_file_over_the_limit_fails_like_the_local_run() {
    use crate::common::records::record;
    use crate::common::unique;
    use crate::support::{Worker, deploy, topsail};

    let t = Test::new().file(
        "p.topsail",
        "pipeline big\n\nbig:\n    output BIG\n    run truncate -s 200M \"$TOPSAIL_OUTPUT\"\n",
    );
    let dir = t.dir.path();
    let machine = unique("bigout");
    let activity = deploy(dir, "p.topsail", &machine);
    let w = Worker::start(dir, &activity, "wbig", &["--allow-host"]);
    let exec = unique("ex");
    let t0 = Instant::now();
    let out = topsail(dir)
        .args([
            "start",
            "p.topsail",
            "--machine",
            &machine,
            "--name",
            &exec,
            "--follow",
        ])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let took = t0.elapsed();
    let text = format!(
        "{}{}\nworker:\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
        w.log()
    );
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(took < Duration::from_mins(1), "took {took:?}");
    let r = record(dir, &exec);
    let big = crate::common::unit(&r, "big");
    assert_eq!(big["status"], "failed", "{r:#}");
    assert_eq!(big["error"], "topsail.OutputTooLarge", "{r:#}");
    assert!(
        big["cause"]
            .as_str()
            .unwrap_or_default()
            .contains("at most 262144"),
        "{r:#}"
    );
    assert!(w.log().contains("topsail.OutputTooLarge"), "{text}");
    // The worker is still up: its peak memory says it did not read the file.
    let peak =
        crate::common::process::peak_kib(w.child.id()).expect("the worker's /proc/PID/status");
    assert!(peak < 100 * 1024, "the worker peaked at {peak} KiB");
}
