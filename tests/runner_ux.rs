//! What a new user trips on in the runner and its display (issue 12),
//! through the real binary: a step's name given as the FILE, `workdir` on
//! the host, `--watch` and what a run writes, `--no-color`, the status line
//! in a narrow terminal, and a worker that can never poll its activity.

use std::io::Read;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::common::process::{interrupt, said, spawn_into, wait_timeout};
use crate::common::records::runs;
use crate::common::{Test, assert_tmp_empty, run_json, status};
use crate::run::run_test;

#[test]
fn a_step_name_given_as_the_file_says_to_use_target() {
    let t = Test::new()
        .pipeline(
            "
            smoke:
                run echo smoke
            all: smoke
                run echo all
            ",
        )
        .args(&["run", "smoke"])
        .stdout("")
        .stderr("error: `smoke` is a step of pipeline.topsail: use `topsail run --target smoke`\n")
        .status(2);
    t.run();
    assert!(!t.path(".topsail").exists(), "nothing ran");

    // A file of that name that is not a pipeline (a shell script) is not
    // read as one: no syntax errors, only what to do.
    let t = t
        .next()
        .file("all", "#!/bin/sh\nset -e\nfor x in a b; do echo $x; done\n")
        .args(&["run", "all"])
        .stdout("")
        .stderr(
            "error: `all` is a step of pipeline.topsail (the file `all` here is not a pipeline): \
             use `topsail run --target all`\n",
        )
        .status(2);
    t.run();

    // Every command that takes a FILE says so too.
    let mut t = t;
    for cmd in ["graph", "compile", "check"] {
        t = t
            .next()
            .args(&[cmd, "smoke"])
            .stdout("")
            .stderr(&format!(
                "error: `smoke` is a step of pipeline.topsail, not a pipeline file: \
                 `topsail {cmd}` takes the pipeline file (e.g. `topsail {cmd} pipeline.topsail`)\n"
            ))
            .status(2);
        t.run();
    }

    // What is neither a file nor a step is still a file that cannot be read.
    let t = t
        .next()
        .args(&["run", "nosuch"])
        .stdout("")
        .stderr("error: cannot read nosuch: No such file or directory (os error 2)\n")
        .status(2);
    t.run();

    // A file named like a step that is a pipeline is run as the pipeline it is.
    t.next()
        .write(
            "smoke",
            "
            other:
                run echo other-ran
            ",
        )
        .args(&["run", "smoke"])
        .normalised()
        .stdout(
            "
            other | > started on the host
            other | other-ran
            other | > succeeded in [T]
            STEP   STATUS     ATTEMPTS  DURATION
            other  succeeded         1      [T]
            run [RUN] succeeded in [T]: 1 succeeded, 0 failed, 0 skipped, 0 cancelled
            record: [DIR]/.topsail/runs/[RUN]
            ",
        )
        .status(0)
        .run();
}

#[test]
fn workdir_on_the_host_is_relative_to_the_pipeline_or_absolute() {
    let elsewhere = tempfile::tempdir().unwrap();
    let abs = elsewhere.path().canonicalize().unwrap();
    let pipeline = format!(
        "rel:\n    workdir \"sub\"\n    run pwd > here\nabs:\n    workdir \"{}\"\n    run pwd > here\nnone:\n    run pwd > here\n",
        abs.display()
    );
    let t = run_test(&pipeline);
    std::fs::create_dir_all(t.path("sub")).unwrap();
    let dir = t.dir.path().canonicalize().unwrap();

    let plan = t.run_with(&["run", "--dry-run"]);
    assert_eq!(plan.status, 0, "{}", plan.show());
    assert!(
        plan.stdout
            .contains(&format!("workdir: {}", dir.join("sub").display())),
        "the dry run shows the directory the step runs in: {}",
        plan.stdout
    );
    assert!(
        plan.stdout.contains(&format!("workdir: {}", abs.display())),
        "{}",
        plan.stdout
    );

    let r = t.run_with(&["run"]);
    assert_eq!(r.status, 0, "{}", r.show());
    let read = |p: &Path| std::fs::read_to_string(p).unwrap_or_default();
    assert_eq!(
        read(&dir.join("sub/here")).trim(),
        dir.join("sub").display().to_string()
    );
    assert_eq!(read(&abs.join("here")).trim(), abs.display().to_string());
    assert_eq!(read(&dir.join("here")).trim(), dir.display().to_string());
    assert_tmp_empty(&t);

    // A missing directory is a clear failure of that step.
    let t = Test::new()
        .pipeline(
            r#"
            gone:
                workdir "no/such/dir"
                run echo ran > ran
            "#,
        )
        .tmpdir()
        .args(&["run"])
        .normalised()
        .stdout(
            "
            gone | > started on the host
            gone | ! failed: workdir `no/such/dir`: [DIR]/no/such/dir does not exist [topsail.RuntimeError]
            STEP  STATUS     ATTEMPTS  DURATION
            gone  failed            1      [T]  workdir `no/such/dir`: [DIR]/no/such/dir does not exist
            run [RUN] failed in [T]: 0 succeeded, 1 failed, 0 skipped, 0 cancelled
            record: [DIR]/.topsail/runs/[RUN]
            ",
        )
        .status(1);
    t.run();
    assert_eq!(status(&run_json(&t), "gone"), "failed");
    assert!(!t.path("ran").exists() && !t.path("no").exists());
    assert_tmp_empty(&t);
}

/// `run --watch` in `t`'s dir, output into a file, stdin closed.
fn watch(t: &Test, output: &Path) -> std::process::Child {
    spawn_into(t, &["run", "--watch"], output)
}

#[test]
fn watch_does_not_rerun_for_what_the_run_itself_writes() {
    // Both write into the pipeline's directory (nothing is gitignored): an
    // output derived from a source, and a stamp that changes every run.
    let t =
        run_test("derive:\n    run cat src.txt > out.txt\nstamp:\n    run date +%s%N > stamp\n")
            .file("src.txt", "one\n")
            .file(".gitignore", "tmp/\n");
    let logs = tempfile::tempdir().unwrap();
    let output = logs.path().join("output");
    let mut child = watch(&t, &output);
    let said = |s: &str| said(&output, s);
    let runs = || runs(&t);
    std::thread::sleep(Duration::from_secs(5));
    let text = std::fs::read_to_string(&output).unwrap_or_default();
    assert_eq!(runs(), 1, "one run in 5 s:\n{text}");
    assert_eq!(said("> succeeded in"), 2, "{text}");
    assert_eq!(said("watching"), 1, "{text}");
    assert_eq!(std::fs::read_to_string(t.path("out.txt")).unwrap(), "one\n");
    assert!(text.contains("taken as written by the run"), "{text}");

    // A change of a source afterwards still runs it again, once.
    std::fs::write(t.path("src.txt"), "two\n").unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    while said("watching") < 2 {
        assert!(
            Instant::now() < deadline,
            "no second run:\n{}",
            std::fs::read_to_string(&output).unwrap()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    std::thread::sleep(Duration::from_secs(2));
    let text = std::fs::read_to_string(&output).unwrap_or_default();
    assert_eq!(runs(), 2, "{text}");
    assert!(text.contains("src.txt changed: running again"), "{text}");
    assert_eq!(std::fs::read_to_string(t.path("out.txt")).unwrap(), "two\n");
    assert_eq!(interrupt(&mut child), Some(130), "{text}");
    assert_tmp_empty(&t);
}

#[test]
fn watch_says_why_it_cancels_a_run() {
    let t = run_test("long:\n    run:\n        touch started\n        sleep 60\n")
        .file(".gitignore", "tmp/\n");
    let logs = tempfile::tempdir().unwrap();
    let output = logs.path().join("output");
    let mut child = watch(&t, &output);
    let deadline = Instant::now() + Duration::from_secs(20);
    while !t.path("started").exists() {
        assert!(Instant::now() < deadline, "the step never started");
        std::thread::sleep(Duration::from_millis(50));
    }
    std::fs::remove_file(t.path("started")).unwrap();
    std::fs::write(
        t.path("pipeline.topsail"),
        "long:\n    run:\n        touch started\n        sleep 60\n# edited\n",
    )
    .unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    while !t.path("started").exists() {
        assert!(
            Instant::now() < deadline,
            "no second run:\n{}",
            std::fs::read_to_string(&output).unwrap()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let text = std::fs::read_to_string(&output).unwrap();
    assert!(
        text.contains("pipeline.topsail changed: cancelling this run to start again"),
        "{text}"
    );
    assert!(
        text.contains("cancelled (pipeline.topsail changed)"),
        "the summary says why: {text}"
    );
    assert!(!text.contains("interrupted"), "{text}");
    assert_eq!(interrupt(&mut child), Some(130), "{text}");
    assert_tmp_empty(&t);
}

/// Run `topsail ARGS` in `dir` on a pseudo-terminal of `cols` columns (all
/// of stdin, stdout and stderr on it, as for a person); what it printed.
fn on_a_terminal(dir: &Path, cols: u16, env: &[(&str, &str)], args: &[&str]) -> (i32, String) {
    const PTY: &str = r#"
import fcntl, os, pty, struct, sys, termios
cols = int(sys.argv[1])
pid, fd = pty.fork()
if pid == 0:
    os.execv(sys.argv[2], sys.argv[2:])
fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack("HHHH", 24, cols, 0, 0))
out = bytearray()
while True:
    try:
        chunk = os.read(fd, 65536)
    except OSError:
        break
    if not chunk:
        break
    out += chunk
_, status = os.waitpid(pid, 0)
sys.stdout.buffer.write(bytes(out))
sys.exit(os.waitstatus_to_exitcode(status))
"#;
    let mut cmd = Command::new("python3");
    cmd.current_dir(dir)
        .arg("-c")
        .arg(PTY)
        .arg(cols.to_string())
        .arg(env!("CARGO_BIN_EXE_topsail"))
        .args(args)
        .env_remove("NO_COLOR")
        .env_remove("CI")
        .env_remove("COLUMNS")
        .env("TERM", "xterm")
        .envs(env.iter().copied())
        .stdin(Stdio::null())
        .stderr(Stdio::inherit())
        .stdout(Stdio::piped());
    let mut child = cmd.spawn().expect("python3 runs");
    let mut out = Vec::new();
    child.stdout.take().unwrap().read_to_end(&mut out).unwrap();
    let status = child.wait().unwrap();
    (
        status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out).into_owned(),
    )
}

/// A small terminal: `cols` columns, autowrap, `\r`, `\n`, erase-line
/// (`ESC[K`, `ESC[2K`) and colours (`ESC[...m`, ignored). Other sequences
/// fail the test (the runner should not send them). Each row remembers
/// whether it began by wrapping.
struct Screen {
    cols: usize,
    rows: Vec<(Vec<char>, bool)>,
    row: usize,
    col: usize,
}

impl Screen {
    fn render(cols: usize, bytes: &str) -> Screen {
        let mut s = Screen {
            cols,
            rows: vec![(Vec::new(), false)],
            row: 0,
            col: 0,
        };
        let mut chars = bytes.chars().peekable();
        while let Some(c) = chars.next() {
            match c {
                '\r' => s.col = 0,
                '\n' => s.newline(false),
                '\x1b' => {
                    assert_eq!(chars.next(), Some('['), "only CSI sequences: {bytes:?}");
                    let mut params = String::new();
                    let end = loop {
                        let Some(c) = chars.next() else {
                            panic!("cut sequence in {bytes:?}")
                        };
                        if c.is_ascii_alphabetic() {
                            break c;
                        }
                        params.push(c);
                    };
                    match end {
                        'm' => {}
                        'K' => {
                            let line = &mut s.rows[s.row].0;
                            match params.as_str() {
                                "" | "0" => line.truncate(s.col),
                                "2" => line.iter_mut().for_each(|c| *c = ' '),
                                p => panic!("erase {p:?}"),
                            }
                        }
                        e => panic!("unexpected sequence ESC[{params}{e}"),
                    }
                }
                c => {
                    if s.col == s.cols {
                        s.newline(true);
                    }
                    let line = &mut s.rows[s.row].0;
                    while line.len() < s.col {
                        line.push(' ');
                    }
                    if s.col < line.len() {
                        line[s.col] = c;
                    } else {
                        line.push(c);
                    }
                    s.col += 1;
                }
            }
        }
        s
    }

    fn newline(&mut self, wrapped: bool) {
        self.row += 1;
        self.col = 0;
        if self.row == self.rows.len() {
            self.rows.push((Vec::new(), wrapped));
        }
    }

    fn lines(&self) -> Vec<String> {
        self.rows
            .iter()
            .map(|(l, _)| l.iter().collect::<String>().trim_end().to_string())
            .collect()
    }

    /// Rows the terminal wrapped, before the first row starting with `end`.
    fn wrapped_before(&self, end: &str) -> Vec<String> {
        let lines = self.lines();
        self.rows
            .iter()
            .zip(&lines)
            .take_while(|(_, l)| !l.starts_with(end))
            .filter(|((_, w), _)| *w)
            .map(|(_, l)| l.clone())
            .collect()
    }
}

/// Parallel steps with long names, running for a while (the status line
/// is redrawn many times), one failing with a long message.
const NARROW: &str = "\
secret API_TOKEN

a-step-with-a-rather-long-name-one:
    run sleep 1.5
a-step-with-a-rather-long-name-two:
    run sleep 1.5
a-step-with-a-rather-long-name-three:
    run sleep 1.5
needs-a-secret-nobody-set: a-step-with-a-rather-long-name-one
    secret API_TOKEN
    run true
";

#[test]
fn the_status_line_fits_a_narrow_terminal_and_leaves_no_ghosts() {
    let t = run_test(NARROW);
    let tmp = t.path("tmp").display().to_string();
    for color in [true, false] {
        let mut env = vec![("TMPDIR", tmp.as_str())];
        if !color {
            env.push(("NO_COLOR", "1"));
        }
        let (code, out) =
            on_a_terminal(t.dir.path(), 60, &env, &["run", "--keep-going", "-j", "4"]);
        assert_eq!(code, 1, "{out}");
        assert!(out.contains("done, "), "the status line was drawn: {out:?}");
        let screen = Screen::render(60, &out);
        let lines = screen.lines();
        let all = lines.join("\n");
        // The live part (before the summary table, which is a table).
        let wrapped = screen.wrapped_before("STEP ");
        assert!(
            wrapped.is_empty(),
            "lines wrapped by the terminal (color {color}): {wrapped:#?}\n{all}"
        );
        assert!(lines.iter().any(|l| l.starts_with("STEP ")), "{all}");
        assert!(
            !lines.iter().any(|l| l.contains("done, ")),
            "a status line is left on the screen (color {color}):\n{all}"
        );
        // The failure, wrapped at word boundaries: every word is whole.
        let failure: Vec<&String> = lines
            .iter()
            .skip_while(|l| !l.contains("failed: secret `API_TOKEN`"))
            .take_while(|l| l.starts_with("needs-a-secret-nob"))
            .collect();
        assert!(failure.len() > 1, "the failure is wrapped: {all}");
        let text: Vec<&str> = failure
            .iter()
            .filter_map(|l| {
                l.split_once('|')
                    .or_else(|| l.split_once('│'))
                    .map(|(_, b)| b)
            })
            .flat_map(str::split_whitespace)
            .collect();
        for word in [
            "secret",
            "`API_TOKEN`",
            "export",
            "API_TOKEN=...",
            "environment",
            "`topsail",
            "run`",
        ] {
            assert!(text.contains(&word), "`{word}` was split: {failure:#?}");
        }
        assert_eq!(
            out.contains('\x1b'),
            color,
            "escapes only with colour: {out:?}"
        );
    }
    assert_tmp_empty(&t);
}

#[test]
fn no_color_means_no_escape_sequence_on_every_command() {
    let t = run_test("a:\n    run sleep 0.5\nb:\n    run sleep 0.5\n");
    let tmp = t.path("tmp").display().to_string();
    for env in [
        vec![("TMPDIR", tmp.as_str()), ("NO_COLOR", "1")],
        vec![("TMPDIR", tmp.as_str())],
    ] {
        let flag: &[&str] = if env.len() == 1 { &["--no-color"] } else { &[] };
        let args: Vec<&str> = ["run"]
            .iter()
            .copied()
            .chain(flag.iter().copied())
            .collect();
        let (code, out) = on_a_terminal(t.dir.path(), 80, &env, &args);
        assert_eq!(code, 0, "{out}");
        assert!(out.contains("done, "), "the status line was drawn: {out:?}");
        assert!(!out.contains('\x1b'), "an escape sequence: {out:?}");
    }
    let bad = Test::new().file(
        "pipeline.topsail",
        "a:\n    run true\nb: nosuch\n    run true\n",
    );
    for args in [
        &["check", "--no-color"][..],
        &["--no-color", "check"],
        &["graph", "--no-color"],
        &["compile", "--no-color"],
        &["fmt", "--no-color", "--check"],
        &["run", "--no-color", "--dry-run"],
    ] {
        let (code, out) = on_a_terminal(bad.dir.path(), 80, &[], args);
        assert_ne!(code, 2, "{args:?} accepts --no-color: {out}");
        assert!(
            out.contains("nosuch") || args.contains(&"fmt"),
            "{args:?}: {out}"
        );
        assert!(
            !out.contains('\x1b'),
            "{args:?}: an escape sequence: {out:?}"
        );
    }
}

#[test]
fn a_worker_whose_activity_does_not_exist_stops_at_once() {
    let t = Test::new();
    let arn = format!(
        "arn:aws:states:us-east-1:123456789012:activity:{}",
        crate::common::unique("nosuch")
    );
    let started = Instant::now();
    let mut child = crate::support::topsail(t.dir.path())
        .args(["worker", "--allow-host", "--activity-arn", &arn])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let code = wait_timeout(
        &mut child,
        Duration::from_secs(20),
        || "the worker kept polling an activity that does not exist",
    );
    let took = started.elapsed();
    let mut out = String::new();
    let mut err = String::new();
    child
        .stdout
        .take()
        .unwrap()
        .read_to_string(&mut out)
        .unwrap();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut err)
        .unwrap();
    assert_eq!(code, Some(2), "{out}\n{err}");
    assert!(took < Duration::from_secs(10), "took {took:?}");
    assert!(
        err.contains(&format!("cannot serve activity {arn}"))
            && err.contains("ActivityDoesNotExist"),
        "{out}\n{err}"
    );
    assert!(!out.contains("retrying in"), "{out}");
}
