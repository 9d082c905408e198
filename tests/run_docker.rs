//! `topsail run` on the real Docker engine, with the image that
//! scripts/setup/images.sh builds offline. These tests fail (never skip)
//! when the engine or the image is missing.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::common::process::{output_of, spawn, wait_timeout};
use crate::common::{IMAGE, assert_tmp_empty, require_docker, run_json, status, unique, unit};
use crate::run::run_test;

/// Containers (running or not) carrying the pipeline's label.
fn containers_of(pipeline: &str) -> Vec<String> {
    let out = Command::new("docker")
        .args([
            "ps",
            "-aq",
            "--filter",
            &format!("label=topsail.pipeline={pipeline}"),
        ])
        .output()
        .expect("docker ps runs");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::to_string)
        .collect()
}

#[test]
fn docker_steps_share_workspace_outputs_and_tmpdir() {
    require_docker();
    let name = unique("dock-basic");
    let t = run_test(&format!(
        r#"
pipeline {name}
image "{IMAGE}"
env GREETING = "hi"

make:
    output V
    run:
        [ "$(pwd)" = /workspace ]
        echo "$GREETING from $TOPSAIL_STEP" > made.txt
        echo data > "$TMPDIR/scratch" && cat "$TMPDIR/scratch"
        echo "V=v-42" >> "$TOPSAIL_OUTPUT"
use: make
    when make.V == "v-42"
    run:
        cat made.txt
        echo "{{{{ make.V }}}}" > used.txt
        echo to-stderr >&2
"#
    ))
    .args(&["run"])
    .status(0);
    let r = t.run();
    assert_eq!(
        std::fs::read_to_string(t.path("made.txt")).unwrap(),
        "hi from make\n"
    );
    assert_eq!(
        std::fs::read_to_string(t.path("used.txt")).unwrap(),
        "v-42\n"
    );
    assert!(
        r.stdout.contains("use ") && r.stdout.contains("to-stderr"),
        "{}",
        r.show()
    );
    assert!(containers_of(&name).is_empty(), "containers left behind");
    assert_tmp_empty(&t);
}

#[test]
fn docker_timeout_failure_and_retries() {
    require_docker();
    let name = unique("dock-fail");
    let t = run_test(&format!(
        r#"
pipeline {name}
image "{IMAGE}"

slow:
    timeout 1s
    run sleep 30
flaky:
    retry 2 every 1s
    run:
        n=$(cat n 2>/dev/null || echo 0); n=$((n + 1)); echo $n > n
        [ $n -ge 2 ]
killed:
    run sh -c 'kill -9 $$'
after: slow
    run touch after.ran
"#
    ))
    .args(&["run", "--keep-going", "--jobs", "3"]);
    let started = Instant::now();
    let r = t.run();
    assert_eq!(r.status, 1, "{}", r.show());
    assert!(started.elapsed() < Duration::from_secs(25));
    let j = run_json(&t);
    assert_eq!(unit(&j, "slow")["error"], "States.Timeout");
    assert_eq!(unit(&j, "flaky")["attempts"], 2);
    assert_eq!(status(&j, "flaky"), "succeeded");
    // Exit 137 without the engine's OOMKilled flag is a plain SIGKILL.
    assert!(
        r.stdout.contains("killed (exit code 137, SIGKILL)"),
        "{}",
        r.show()
    );
    assert!(!r.stdout.contains("out-of-memory"), "{}", r.show());
    assert_eq!(status(&j, "after"), "cancelled");
    assert!(containers_of(&name).is_empty(), "containers left behind");
}

#[test]
fn docker_secrets_are_masked() {
    require_docker();
    let name = unique("dock-secret");
    let value = "c0ntainer-s3cret";
    let t = run_test(&format!(
        "pipeline {name}\nimage \"{IMAGE}\"\nsecret TOK\na:\n    secret TOK\n    run echo \"tok=$TOK\"\n"
    ))
    .env("TOK", value)
    .args(&["run"])
    .normalised()
    .stdout(&format!(
        "
        a | > started in {IMAGE}
        a | tok=***
        a | > succeeded in [T]
        STEP  STATUS     ATTEMPTS  DURATION
        a     succeeded         1      [T]
        run [RUN] succeeded in [T]: 1 succeeded, 0 failed, 0 skipped, 0 cancelled
        record: [DIR]/.topsail/runs/[RUN]
        "
    ))
    .stdout_lacks(value)
    .stderr_lacks(value)
    .status(0);
    t.run();
}

#[test]
fn docker_missing_image_is_a_clear_error() {
    require_docker();
    // What the engine says of the registry depends on the network: only
    // topsail's part of the message is fixed.
    run_test("a:\n    image \"topsail-test/does-not-exist:1\"\n    run true\n")
        .args(&["run"])
        .stdout_contains(
            "a | ! failed: image `topsail-test/does-not-exist:1` is not present locally and could not be pulled (",
        )
        .status(1)
        .run();
}

#[test]
fn docker_sigterm_removes_running_containers() {
    require_docker();
    let name = unique("dock-term");
    let t = run_test(&format!(
        "pipeline {name}\nimage \"{IMAGE}\"\na:\n    run sleep 60\nb:\n    run sleep 60\n"
    ));
    let mut child = spawn(&t, &["run", "--jobs", "2"]);
    let deadline = Instant::now() + Duration::from_secs(30);
    while containers_of(&name).len() < 2 {
        assert!(Instant::now() < deadline, "the containers never started");
        std::thread::sleep(Duration::from_millis(100));
    }
    std::thread::sleep(Duration::from_millis(300));
    crate::common::process::signal(child.id(), "TERM");
    let started = Instant::now();
    let code = wait_timeout(&mut child, Duration::from_secs(30), || {
        format!("SIGTERM did not stop the run\n{}", output_of(&t))
    });
    assert_eq!(code, Some(130), "{}", output_of(&t));
    assert!(started.elapsed() < Duration::from_secs(15));
    assert!(
        containers_of(&name).is_empty(),
        "containers left behind after SIGTERM"
    );
    assert_eq!(run_json(&t)["status"], "interrupted");
    assert_tmp_empty(&t);
}

/// A `topsail run` in the background, stopped with SIGTERM (so it removes
/// its containers) when dropped, also when an assertion fails first.
struct Background(std::process::Child);

impl Background {
    /// Start `topsail run` in `t`'s directory and wait for its container.
    fn start(t: &crate::common::Test, pipeline: &str) -> Background {
        let child = crate::common::command(t.dir.path())
            .args(["run"])
            .env("TMPDIR", t.path("tmp"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let deadline = Instant::now() + Duration::from_secs(30);
        while containers_of(pipeline).is_empty() {
            assert!(Instant::now() < deadline, "the container never started");
            std::thread::sleep(Duration::from_millis(100));
        }
        Background(child)
    }
}

impl Drop for Background {
    fn drop(&mut self) {
        // Only a child still running and not reaped: the pid of one the test
        // already waited for may belong to another process by now.
        if matches!(self.0.try_wait(), Ok(None)) {
            let _ = Command::new("kill")
                .args(["-TERM", &self.0.id().to_string()])
                .status();
            let _ = self.0.wait();
        }
    }
}

/// A SIGKILLed topsail cannot remove its containers; the next topsail that
/// uses the engine on this machine removes them (and only those).
#[test]
fn docker_containers_of_a_killed_topsail_are_removed_by_the_next_one() {
    require_docker();
    let sleeper = |name: &str| {
        run_test(&format!(
            "pipeline {name}\nimage \"{IMAGE}\"\na:\n    run sleep 120\n"
        ))
    };
    // A live run: its container must survive the clean-up.
    let live_name = unique("dock-live");
    let live_dir = sleeper(&live_name);
    let _live = Background::start(&live_dir, &live_name);

    let name = unique("dock-kill");
    let victim_dir = sleeper(&name);
    let mut victim = Background::start(&victim_dir, &name);
    victim.0.kill().unwrap(); // SIGKILL: no chance to clean up
    victim.0.wait().unwrap();
    assert_eq!(
        containers_of(&name).len(),
        1,
        "the killed run's container should still be there"
    );

    let next = run_test(&format!(
        "pipeline {}\nimage \"{IMAGE}\"\na:\n    run true\n",
        unique("dock-next")
    ))
    .args(&["run"]);
    let r = next.run();
    assert_eq!(r.status, 0, "{}", r.show());
    // Docker tests run side by side: another test's topsail may remove the
    // orphan first, so the message is checked only when this one did.
    if !r.stderr.is_empty() {
        assert!(
            r.stderr.contains("(step `a`) left by topsail process")
                && r.stderr.contains("which was killed"),
            "{}",
            r.show()
        );
    }
    assert!(containers_of(&name).is_empty(), "the orphan is still there");
    assert_eq!(
        containers_of(&live_name).len(),
        1,
        "a live run's container was removed"
    );
}

/// The review's reproducer: a second topsail in another pid namespace (a CI
/// job in a container on a shared engine) took the first one's live
/// container for an orphan, since its owner's pid is not in its /proc. An
/// owner it cannot see is not presumed dead.
#[test]
fn docker_containers_of_a_topsail_in_another_pid_namespace_are_left_alone() {
    require_docker();
    let live_name = unique("dock-ns-live");
    let live_dir = run_test(&format!(
        "pipeline {live_name}\nimage \"{IMAGE}\"\na:\n    run sleep 120\n"
    ));
    let _live = Background::start(&live_dir, &live_name);
    let ours = std::fs::read_link("/proc/self/ns/pid").unwrap();
    let ours = ours.to_str().unwrap();
    let id = containers_of(&live_name).pop().unwrap();

    let next = run_test(&format!(
        "pipeline {}\na:\n    image \"{IMAGE}\"\n    run true\nb:\n    run echo \"ns=$(readlink /proc/self/ns/pid)\"\n",
        unique("dock-ns-next")
    ));
    let out = Command::new("unshare")
        .args([
            "--pid",
            "--fork",
            "--mount-proc",
            env!("CARGO_BIN_EXE_topsail"),
            "run",
        ])
        .current_dir(next.dir.path())
        .env("TMPDIR", next.path("tmp"))
        .env("NO_COLOR", "1")
        .output()
        .expect("unshare runs (the tests run as root)");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    // It really ran in another pid namespace, and removed nothing.
    assert!(stdout.contains("ns=pid:["), "{stdout}");
    assert!(!stdout.contains(&format!("ns={ours}")), "{stdout}");
    assert!(!stderr.contains("removed container"), "{stderr}");
    assert_eq!(
        containers_of(&live_name),
        vec![id.clone()],
        "the live run's container was removed by a topsail in another pid namespace"
    );
    // The owner label names the pid namespace it was made in.
    let label = Command::new("docker")
        .args([
            "inspect",
            "--format",
            "{{ index .Config.Labels \"topsail.owner\" }}",
            &id,
        ])
        .output()
        .unwrap();
    let label = String::from_utf8_lossy(&label.stdout);
    let ns_id = ours.trim_start_matches("pid:[").trim_end_matches(']');
    assert_eq!(label.split(':').nth(1), Some(ns_id), "owner label {label}");
    assert_tmp_empty(&next);
}

/// A container the kernel's OOM killer ends says so; the engine's
/// `State.OOMKilled` tells it apart from a plain exit 137 (see
/// `docker_timeout_failure_and_retries`). The language has no memory limit
/// yet, so this drives the runtime through the library.
#[test]
fn docker_oom_kill_is_reported_as_such() {
    use topsail::model::errors;
    use topsail::run::docker::DockerRuntime;
    use topsail::run::runtime::{self, Outcome, StepIo, StepSpec};

    require_docker();
    let name = unique("dock-oom");
    let dir = tempfile::tempdir().unwrap();
    let spec = StepSpec {
        run_id: name.clone(),
        pipeline: name.clone(),
        name: "hog".into(),
        step: "hog".into(),
        image: Some(IMAGE.into()),
        // `tail` keeps the whole endless line in memory.
        script: "tail /dev/zero\n".into(),
        shell: None,
        env: Vec::new(),
        secret_names: Vec::new(),
        env_remove: Vec::new(),
        workdir: None,
        timeout: Some(Duration::from_mins(1)),
        outputs: Vec::new(),
        pipeline_dir: dir.path().to_path_buf(),
        wait_group: false,
    };
    let rt = tokio::runtime::Runtime::new().unwrap();
    let outcome = rt.block_on(async {
        let docker = DockerRuntime::with_memory_limit(16 * 1024 * 1024);
        let (tx, _rx) = runtime::line_channel();
        let (_cancel_tx, cancel) = tokio::sync::watch::channel(false);
        let io = StepIo { lines: tx, cancel };
        let outcome = runtime::run_attempt(&docker, &spec, dir.path(), io).await;
        runtime::finish_cleanup().await;
        outcome
    });
    match outcome {
        Outcome::Failed { error, cause } => {
            assert_eq!(error, errors::SCRIPT_FAILED);
            assert!(cause.contains("out-of-memory killer"), "{cause}");
        }
        other => panic!("expected an OOM failure, got {other:?}"),
    }
    assert!(containers_of(&name).is_empty(), "containers left behind");
    let left: Vec<_> = std::fs::read_dir(dir.path()).unwrap().collect();
    assert!(left.is_empty(), "attempt dirs left behind: {left:?}");
}

/// A reference the checker could only judge by its literal text (it has a
/// hole) is checked again once rendered, before Docker is asked: the step
/// fails with what is wrong, not with `cannot inspect image` and an HTTP code
/// (the Docker engine is not even needed for that).
#[test]
fn a_rendered_image_reference_that_docker_cannot_parse_fails_the_step_clearly() {
    let run = crate::common::Test::new()
        .file(
            "pipeline.topsail",
            "param img = \"topsail-test/busybox:latest\"\n\ns:\n    image \"{{ img }}\"\n    run echo hi\n",
        )
        .args(&["run", "--param", "img=Bad Image::"])
        .run();
    let out = format!("{}{}", run.stdout, run.stderr);
    assert_eq!(run.status, 1, "{out}");
    assert!(
        out.contains(
            "`Bad Image::` is not a valid image reference: the repository name must be lowercase"
        ),
        "{out}"
    );
    assert!(!out.contains("cannot inspect image"), "{out}");
}
