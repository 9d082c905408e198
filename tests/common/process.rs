//! Processes a test starts and watches: a command run to its end under a
//! deadline (with its peak memory), a `topsail` left running in the
//! background, signals to it, and polling for what it should do next. Every
//! wait has a deadline, and a test only ever signals a process it started
//! (or one its own step reported).

use std::io::{BufRead, BufReader, Read};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use super::{Test, command};

/// What a child did: its status, output, wall time and peak memory.
pub struct Outcome {
    pub status: Option<i32>,
    pub stdout: String,
    pub stderr: String,
    pub took: Duration,
    /// Peak resident set size in KiB (`VmHWM`), when it could be read.
    pub max_rss_kib: Option<u64>,
}

/// `VmHWM` (peak resident memory) of a live `pid` in KiB.
pub fn peak_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
}

/// Run `cmd` (stdin closed) to its end, killed and the test failed past
/// `deadline`, polling its peak memory.
#[track_caller]
pub fn run_limited(mut cmd: Command, deadline: Duration) -> Outcome {
    let start = Instant::now();
    let mut child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .stdin(Stdio::null())
        .spawn()
        .expect("the command starts");
    let pid = child.id();
    let mut out = child.stdout.take().expect("piped");
    let mut err = child.stderr.take().expect("piped");
    let readers = (
        std::thread::spawn(move || {
            let mut s = Vec::new();
            let _ = std::io::Read::read_to_end(&mut out, &mut s);
            s
        }),
        std::thread::spawn(move || {
            let mut s = Vec::new();
            let _ = std::io::Read::read_to_end(&mut err, &mut s);
            s
        }),
    );
    let mut peak = None;
    let status = loop {
        if let Some(kib) = peak_kib(pid) {
            peak = Some(peak.map_or(kib, |p: u64| p.max(kib)));
        }
        if let Some(status) = child.try_wait().expect("wait") {
            break status.code();
        }
        if start.elapsed() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("{cmd:?} did not finish within {deadline:?} (killed)");
        }
        std::thread::sleep(Duration::from_millis(2));
    };
    let took = start.elapsed();
    let stdout = String::from_utf8_lossy(&readers.0.join().expect("reader")).into_owned();
    let stderr = String::from_utf8_lossy(&readers.1.join().expect("reader")).into_owned();
    Outcome {
        status,
        stdout,
        stderr,
        took,
        max_rss_kib: peak,
    }
}

/// `topsail ARGS` started in `t`'s dir (TMPDIR its `tmp/`), stdin closed,
/// stdout and stderr into `topsail.out` and `topsail.err` there (see
/// `output_of`): for runs a test signals or watches while they run.
pub fn spawn(t: &Test, args: &[&str]) -> Child {
    let out = std::fs::File::create(t.path("topsail.out")).expect("create topsail.out");
    let err = std::fs::File::create(t.path("topsail.err")).expect("create topsail.err");
    command(t.dir.path())
        .args(args)
        .env("TMPDIR", t.path("tmp"))
        .stdin(Stdio::null())
        .stdout(out)
        .stderr(err)
        .spawn()
        .expect("topsail starts")
}

/// `topsail ARGS` started in `t`'s dir (TMPDIR its `tmp/`), stdin closed,
/// stdout and stderr both into `output`, as a terminal would interleave
/// them. For `--watch`, `output` belongs outside the watched dir.
pub fn spawn_into(t: &Test, args: &[&str], output: &Path) -> Child {
    let out = std::fs::File::create(output).expect("create the output file");
    command(t.dir.path())
        .args(args)
        .env("TMPDIR", t.path("tmp"))
        .stdin(Stdio::null())
        .stdout(out.try_clone().expect("a second handle to the output file"))
        .stderr(out)
        .spawn()
        .expect("topsail starts")
}

/// How many times a `spawn_into`ed topsail has said `text` in `output`
/// so far.
pub fn said(output: &Path, text: &str) -> usize {
    std::fs::read_to_string(output)
        .unwrap_or_default()
        .matches(text)
        .count()
}

/// What a `spawn`ed topsail has printed so far.
pub fn output_of(t: &Test) -> String {
    format!(
        "--- stdout\n{}\n--- stderr\n{}",
        std::fs::read_to_string(t.path("topsail.out")).unwrap_or_default(),
        std::fs::read_to_string(t.path("topsail.err")).unwrap_or_default()
    )
}

/// `kill -SIG PID`, which must succeed.
#[track_caller]
pub fn signal(pid: u32, sig: &str) {
    let ok = Command::new("kill")
        .args([&format!("-{sig}"), &pid.to_string()])
        .status()
        .is_ok_and(|s| s.success());
    assert!(ok, "kill -{sig} {pid}");
}

/// Wait for `child` to exit: its exit code (None if a signal ended it).
/// Past `timeout` it is killed and the test fails with `what()`, asked
/// then (so it can show what the child printed until that moment).
#[track_caller]
pub fn wait_timeout<S: std::fmt::Display>(
    child: &mut Child,
    timeout: Duration,
    what: impl FnOnce() -> S,
) -> Option<i32> {
    let t0 = Instant::now();
    loop {
        if let Some(s) = child.try_wait().expect("try_wait") {
            return s.code();
        }
        if t0.elapsed() > timeout {
            let _ = child.kill();
            let _ = child.wait();
            panic!("{} (not ended within {timeout:?}, killed)", what());
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The lines a long-running child (a worker) prints on stdout and stderr,
/// gathered as they come by one thread per stream.
#[derive(Clone, Default)]
pub struct Lines(Arc<Mutex<String>>);

impl Lines {
    /// Take `child`'s piped stdout and stderr and gather their lines.
    pub fn collect(child: &mut Child) -> Lines {
        let lines = Lines::default();
        let streams: [Option<Box<dyn Read + Send>>; 2] = [
            child
                .stdout
                .take()
                .map(|s| Box::new(s) as Box<dyn Read + Send>),
            child
                .stderr
                .take()
                .map(|s| Box::new(s) as Box<dyn Read + Send>),
        ];
        for stream in streams.into_iter().flatten() {
            let lines = lines.clone();
            std::thread::spawn(move || {
                for line in BufReader::new(stream).lines().map_while(Result::ok) {
                    let mut text = lines.0.lock().unwrap_or_else(PoisonError::into_inner);
                    text.push_str(&line);
                    text.push('\n');
                }
            });
        }
        lines
    }

    /// Everything gathered so far.
    pub fn text(&self) -> String {
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }
}

/// Wait for `child`, sampling its peak memory: (exit code, peak KiB).
#[track_caller]
pub fn wait_sampling(mut child: Child, timeout: Duration) -> (i32, u64) {
    let t0 = Instant::now();
    let mut peak = 0;
    loop {
        if let Some(p) = peak_kib(child.id()) {
            peak = peak.max(p);
        }
        if let Some(s) = child.try_wait().expect("try_wait") {
            return (s.code().unwrap_or(-1), peak);
        }
        if t0.elapsed() > timeout {
            let _ = child.kill();
            let _ = child.wait();
            panic!("topsail did not finish within {timeout:?}");
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// SIGINT to `child` (Ctrl-C), then its exit code; fails after 10 s.
#[track_caller]
pub fn interrupt(child: &mut Child) -> Option<i32> {
    signal(child.id(), "INT");
    wait_timeout(
        child,
        Duration::from_secs(10),
        || "--watch did not end on SIGINT",
    )
}

/// Poll until `ok` holds; fail with `what` and `output`'s text after 30 s.
#[track_caller]
pub fn eventually(what: &str, output: &Path, ok: impl Fn() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while !ok() {
        assert!(
            Instant::now() < deadline,
            "timed out waiting for {what}\n--- output\n{}",
            std::fs::read_to_string(output).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Wait (30 s at most) for a step to write `path`, then a moment more for
/// it to reach what it does next.
#[track_caller]
pub fn wait_for_file(path: &Path) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while !path.exists() {
        assert!(
            Instant::now() < deadline,
            "{} never appeared",
            path.display()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    std::thread::sleep(Duration::from_millis(100));
}

/// The process is gone (or a zombie nobody reaped yet: it runs nothing),
/// waiting up to 3 s for it to go.
pub fn gone(pid: &str) -> bool {
    let deadline = Instant::now() + Duration::from_secs(3);
    loop {
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
        let state = stat.rsplit(") ").next().and_then(|r| r.chars().next());
        if stat.is_empty() || state == Some('Z') {
            return true;
        }
        if Instant::now() > deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Whether a live process (not a zombie nobody reaped yet) is in process
/// group `pgid`, waiting up to 3 s for it to go.
pub fn group_alive(pgid: &str) -> bool {
    let deadline = Instant::now() + Duration::from_secs(3);
    loop {
        let alive = std::fs::read_dir("/proc")
            .expect("/proc is readable")
            .flatten()
            .any(|e| {
                let stat = std::fs::read_to_string(e.path().join("stat")).unwrap_or_default();
                let mut f = stat.rsplit(") ").next().unwrap_or_default().split(' ');
                let state = f.next();
                let pgrp = f.nth(1);
                pgrp == Some(pgid) && state.is_some_and(|s| s != "Z" && s != "X")
            });
        if !alive || Instant::now() > deadline {
            return alive;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}
