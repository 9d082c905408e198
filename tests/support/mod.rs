//! Test support for the Step Functions tests: the emulator's endpoint
//! (started by `scripts/services start`, see tests/support/sfn_emulator.py),
//! the `topsail` binary wired to it, and workers that die with their test.

#![allow(dead_code)]

use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use crate::common::process::{Lines, wait_timeout};
use crate::common::repo;

/// The emulator's URL; fails the test with what to do when it is not running.
pub fn endpoint() -> String {
    let file = repo().join("target/services/sfn.endpoint");
    let url = std::fs::read_to_string(&file).unwrap_or_default();
    let url = url.trim().to_string();
    let hostport = url.trim_start_matches("http://");
    let up = !url.is_empty()
        && hostport.parse().ok().is_some_and(|a| {
            std::net::TcpStream::connect_timeout(&a, Duration::from_secs(2)).is_ok()
        });
    assert!(
        up,
        "the Step Functions emulator is not running ({} missing or not answering): \
         run `scripts/services start` (scripts/test does it), then the tests",
        file.display()
    );
    url
}

/// `topsail` in `dir`, talking to the emulator with static test credentials.
pub fn topsail(dir: &Path) -> Command {
    let mut cmd = crate::common::command(dir);
    cmd.env("AWS_ENDPOINT_URL", endpoint())
        .env("AWS_ACCESS_KEY_ID", "testing")
        .env("AWS_SECRET_ACCESS_KEY", "testing")
        .env("AWS_REGION", "us-east-1")
        .env_remove("AWS_PROFILE")
        .env_remove("AWS_SESSION_TOKEN")
        .env("AWS_EC2_METADATA_DISABLED", "true");
    cmd
}

pub fn run(dir: &Path, args: &[&str]) -> (i32, String, String) {
    let out: Output = topsail(dir).args(args).output().expect("topsail runs");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

pub const ROLE: &str = "arn:aws:iam::123456789012:role/topsail-test";

/// Deploy `file` as state machine `name`; the activity ARN.
pub fn deploy(dir: &Path, file: &str, name: &str) -> String {
    let (code, out, err) = run(dir, &["deploy", file, "--name", name, "--role-arn", ROLE]);
    assert_eq!(code, 0, "deploy failed:\n{out}\n{err}");
    out.lines()
        .find_map(|l| {
            l.strip_prefix("activity ")
                .and_then(|r| r.split(": ").nth(1))
        })
        .expect("deploy prints the activity ARN")
        .to_string()
}

/// A `topsail worker` child: its output is collected, and it is killed
/// (SIGKILL) when dropped, so no test leaves a worker behind.
pub struct Worker {
    pub child: Child,
    pub name: String,
    log: Lines,
}

impl Worker {
    pub fn start(dir: &Path, activity: &str, name: &str, extra: &[&str]) -> Worker {
        // Attempt dirs of a SIGKILLed worker stay behind: keep them in the test's dir.
        let tmp = dir.join("worker-tmp");
        std::fs::create_dir_all(&tmp).expect("worker tmp dir");
        let mut child = topsail(dir)
            .env("TMPDIR", &tmp)
            .args([
                "worker",
                "--activity-arn",
                activity,
                "--name",
                name,
                "--concurrency",
                "4",
            ])
            .args(extra)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("the worker starts");
        let log = Lines::collect(&mut child);
        Worker {
            child,
            name: name.to_string(),
            log,
        }
    }

    pub fn log(&self) -> String {
        self.log.text()
    }

    /// Wait until the log has a line containing `text`.
    pub fn wait_for(&self, text: &str, timeout: Duration) {
        let t0 = Instant::now();
        while !self.log().contains(text) {
            assert!(
                t0.elapsed() < timeout,
                "worker {} did not log `{text}` within {timeout:?}; log:\n{}",
                self.name,
                self.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    pub fn signal(&self, sig: &str) {
        crate::common::process::signal(self.child.id(), sig);
    }

    /// Wait for the worker to exit; its exit code.
    pub fn wait(&mut self, timeout: Duration) -> i32 {
        let (name, log) = (&self.name, &self.log);
        wait_timeout(&mut self.child, timeout, || {
            format!("worker {name} did not exit; log:\n{}", log.text())
        })
        .unwrap_or(-1)
    }
}

impl Drop for Worker {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `topsail start FILE --machine M --name EXEC --follow [--param P]...` in
/// `dir`, in the background, its output in `EXEC.out`; killed when dropped.
pub struct Follow {
    child: Child,
    out: std::path::PathBuf,
}

impl Follow {
    pub fn start(dir: &Path, file: &str, machine: &str, exec: &str, params: &[&str]) -> Follow {
        let out = dir.join(format!("{exec}.out"));
        let f = std::fs::File::create(&out).unwrap();
        let mut cmd = topsail(dir);
        cmd.args([
            "start",
            file,
            "--machine",
            machine,
            "--name",
            exec,
            "--follow",
        ]);
        for p in params {
            cmd.args(["--param", p]);
        }
        let child = cmd
            .stdout(f.try_clone().unwrap())
            .stderr(f)
            .stdin(Stdio::null())
            .spawn()
            .unwrap();
        Follow { child, out }
    }

    /// What it printed so far (stdout and stderr).
    pub fn text(&self) -> String {
        std::fs::read_to_string(&self.out).unwrap_or_default()
    }

    /// Wait until it has printed `text`; fail the test after `timeout`.
    pub fn wait_for(&self, text: &str, timeout: Duration) {
        let t0 = Instant::now();
        while !self.text().contains(text) {
            assert!(
                t0.elapsed() < timeout,
                "start --follow did not print `{text}` within {timeout:?}:\n{}",
                self.text()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Its exit code (-1: it did not end within `timeout`) and output.
    pub fn finish(mut self, timeout: Duration) -> (i32, String) {
        let out = self.out.clone();
        let code = wait_timeout(&mut self.child, timeout, || {
            format!(
                "start --follow did not end:\n{}",
                std::fs::read_to_string(&out).unwrap_or_default()
            )
        });
        (code.unwrap_or(-1), self.text())
    }
}

impl Drop for Follow {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
