//! A small harness in the spirit of just's `Test`: write files into a temp
//! dir, run the real `topsail` binary there, and say what a user should see.
//!
//! A test reads like a session: the files (written unindented, so fixtures
//! sit in the test at its indentation), the command, then what it prints
//! and its exit status. `run()` checks every expectation given and prints a
//! line diff of what differs; with none given it only runs and returns the
//! output for the test to look at.
//!
//! ```ignore
//! Test::new()
//!     .pipeline("
//!         a:
//!             run echo hi
//!     ")
//!     .args(&["run"])
//!     .stdout("...")
//!     .status(0)
//!     .run();
//! ```

#![allow(dead_code)]

pub mod process;
pub mod records;

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

pub use records::{assert_tmp_empty, run_json, status, unit};

/// How long any one command may run before the harness kills it and fails
/// the test: far above the slowest command of the suite, so a hang is a
/// failure with its output, never a stuck test binary.
const DEADLINE: Duration = Duration::from_mins(5);

#[must_use = "a Test checks nothing until `.run()`"]
pub struct Test {
    pub dir: tempfile::TempDir,
    args: Vec<String>,
    env: Vec<(String, String)>,
    current_dir: Option<PathBuf>,
    expect: Expect,
}

/// What `run()` checks. Whole texts are compared after `unindent`, with
/// the actual output normalised first when `.normalised()` was asked for;
/// parts are looked for in the output as printed.
#[derive(Default)]
struct Expect {
    status: Option<i32>,
    stdout: Option<String>,
    stderr: Option<String>,
    stdout_contains: Vec<String>,
    stderr_contains: Vec<String>,
    stdout_lacks: Vec<String>,
    stderr_lacks: Vec<String>,
    normalise: bool,
}

pub struct Run {
    pub status: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    /// Everything the command said, to explain a failed assertion.
    pub fn show(&self) -> String {
        format!(
            "exit {}\n--- stdout\n{}\n--- stderr\n{}",
            self.status, self.stdout, self.stderr
        )
    }
}

impl Default for Test {
    fn default() -> Self {
        Self::new()
    }
}

impl Test {
    pub fn new() -> Self {
        Self {
            dir: tempfile::Builder::new()
                .prefix("topsail-test-")
                .tempdir()
                .expect("a temp dir can be made"),
            args: Vec::new(),
            env: Vec::new(),
            current_dir: None,
            expect: Expect::default(),
        }
    }

    /// `name` with exactly `text` (no unindenting: for fixtures whose
    /// layout is the point, such as bad indentation).
    pub fn file(self, name: &str, text: &str) -> Self {
        let path = self.dir.path().join(name);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).expect("create fixture dir");
        }
        std::fs::write(path, text).expect("write fixture");
        self
    }

    /// `name` with `text` unindented (see `unindent`).
    pub fn write(self, name: &str, text: &str) -> Self {
        let text = unindent(text);
        self.file(name, &text)
    }

    /// `pipeline.topsail` with `text` unindented.
    pub fn pipeline(self, text: &str) -> Self {
        self.write("pipeline.topsail", text)
    }

    /// A `tmp/` in the test dir as the runner's TMPDIR, so a test can see
    /// that attempt directories are removed (`assert_tmp_empty`).
    pub fn tmpdir(self) -> Self {
        std::fs::create_dir_all(self.path("tmp")).expect("create tmp/");
        let tmp = self.path("tmp").display().to_string();
        self.env("TMPDIR", &tmp)
    }

    pub fn args(mut self, args: &[&str]) -> Self {
        self.args.extend(args.iter().map(|s| (*s).to_string()));
        self
    }

    pub fn arg(mut self, arg: impl AsRef<std::ffi::OsStr>) -> Self {
        self.args.push(arg.as_ref().to_string_lossy().into_owned());
        self
    }

    pub fn env(mut self, k: &str, v: &str) -> Self {
        self.env.push((k.into(), v.into()));
        self
    }

    /// Run in `dir` instead of the test's temp dir (the examples run in
    /// the repository, so their relative imports resolve).
    pub fn current_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.current_dir = Some(dir.into());
        self
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// The exit status the command must end with.
    pub fn status(mut self, status: i32) -> Self {
        self.expect.status = Some(status);
        self
    }

    /// The whole of stdout (unindented).
    pub fn stdout(mut self, text: &str) -> Self {
        self.expect.stdout = Some(unindent(text));
        self
    }

    /// The whole of stderr (unindented).
    pub fn stderr(mut self, text: &str) -> Self {
        self.expect.stderr = Some(unindent(text));
        self
    }

    /// A part of stdout, for output that is not all deterministic.
    pub fn stdout_contains(mut self, text: &str) -> Self {
        self.expect.stdout_contains.push(text.to_string());
        self
    }

    /// A part of stderr, for output that is not all deterministic.
    pub fn stderr_contains(mut self, text: &str) -> Self {
        self.expect.stderr_contains.push(text.to_string());
        self
    }

    pub fn stdout_lacks(mut self, text: &str) -> Self {
        self.expect.stdout_lacks.push(text.to_string());
        self
    }

    pub fn stderr_lacks(mut self, text: &str) -> Self {
        self.expect.stderr_lacks.push(text.to_string());
        self
    }

    /// Compare output after `normalise`: the test dir, run ids and
    /// durations are written `[DIR]`, `[RUN]` and `[T]` in the expectations.
    pub fn normalised(mut self) -> Self {
        self.expect.normalise = true;
        self
    }

    /// The next command of the same session: the same dir, files and
    /// environment, with no args and no expectations yet.
    pub fn next(mut self) -> Self {
        self.args.clear();
        self.expect = Expect::default();
        self
    }

    /// Run the binary with the args given, check every expectation (all of
    /// them, then fail once with a diff of each), and return the output.
    #[track_caller]
    pub fn run(&self) -> Run {
        let r = self.run_with(&self.args);
        self.check(&r);
        r
    }

    /// Run other `args` in the same dir and environment, checking nothing:
    /// the later commands of a session (`runs`, `logs`) that a test looks at
    /// itself.
    #[track_caller]
    pub fn run_with<S: AsRef<str>>(&self, args: &[S]) -> Run {
        let dir = self.current_dir.as_deref().unwrap_or(self.dir.path());
        let mut cmd = command(dir);
        cmd.args(args.iter().map(AsRef::as_ref))
            .envs(self.env.iter().map(|(k, v)| (k, v)));
        let o = process::run_limited(cmd, DEADLINE);
        Run {
            status: o.status.unwrap_or(-1),
            stdout: o.stdout,
            stderr: o.stderr,
        }
    }

    #[track_caller]
    fn check(&self, r: &Run) {
        let e = &self.expect;
        let (stdout, stderr) = if e.normalise {
            (
                normalise(&r.stdout, self.dir.path()),
                normalise(&r.stderr, self.dir.path()),
            )
        } else {
            (r.stdout.clone(), r.stderr.clone())
        };
        let mut bad = String::new();
        if let Some(want) = e.status
            && want != r.status
        {
            let _ = writeln!(bad, "exit status: expected {want}, got {}", r.status);
        }
        for (name, want, have) in [
            ("stdout", &e.stdout, &stdout),
            ("stderr", &e.stderr, &stderr),
        ] {
            if let Some(want) = want
                && want != have
            {
                let _ = writeln!(
                    bad,
                    "{name} differs (- expected, + actual):\n{}",
                    diff(want, have)
                );
            }
        }
        // Parts are looked for in the output as printed: they are for what
        // the normaliser would hide (a duration that must be 1.5s).
        for (name, parts, have, present) in [
            ("stdout", &e.stdout_contains, &r.stdout, true),
            ("stderr", &e.stderr_contains, &r.stderr, true),
            ("stdout", &e.stdout_lacks, &r.stdout, false),
            ("stderr", &e.stderr_lacks, &r.stderr, false),
        ] {
            for part in parts {
                if have.contains(part.as_str()) != present {
                    let how = if present { "lacks" } else { "has" };
                    let _ = writeln!(bad, "{name} {how} {part:?}");
                }
            }
        }
        assert!(
            bad.is_empty(),
            "`topsail {}`:\n{bad}\n{}",
            self.args.join(" "),
            r.show()
        );
    }
}

/// The binary with a stable environment: no colour, a fixed width.
pub fn command(dir: &Path) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_topsail"));
    cmd.current_dir(dir)
        .env("NO_COLOR", "1")
        .env("COLUMNS", "100")
        .env_remove("CLICOLOR_FORCE");
    cmd
}

/// The repository root (for examples/).
pub fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// A legacy service manifest of tests/fixtures/legacy (issue 7).
pub fn legacy_fixture(name: &str) -> PathBuf {
    repo().join("tests/fixtures/legacy").join(name)
}

/// The text of `legacy_fixture(name)`.
pub fn legacy_manifest(name: &str) -> String {
    let path = legacy_fixture(name);
    std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("legacy fixture {}: {e}", path.display()))
}

/// The pipelines in examples/ (`.topsail` and `.yaml`), sorted. Anything
/// else there — such as the `.topsail/` run records that running an example
/// leaves — is not an example.
pub fn examples() -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(repo().join("examples"))
        .expect("examples/ exists")
        .map(|e| e.expect("readable dir entry").path())
        .filter(|p| p.is_file())
        .filter(|p| {
            matches!(
                p.extension().and_then(|e| e.to_str()),
                Some("topsail" | "yaml")
            )
        })
        .collect();
    files.sort();
    assert!(files.len() >= 6, "expected the examples, found {files:?}");
    files
}

/// A name no other test (or earlier run against the same engine or
/// emulator) uses.
pub fn unique(prefix: &str) -> String {
    let n = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("the clock is past 1970")
        .subsec_nanos();
    format!("{prefix}-{}-{n:x}", std::process::id())
}

/// The image scripts/setup/images.sh builds offline for the Docker tests.
pub const IMAGE: &str = "topsail-test/busybox:latest";

/// Fails (never skips) the test when the engine or the image is missing.
pub fn require_docker() {
    let ok = Command::new("docker")
        .args(["image", "inspect", IMAGE])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    assert!(
        ok,
        "the Docker engine is not reachable or the image {IMAGE} is missing: run scripts/setup/images.sh"
    );
}

/// Text as written in a test, without the indentation it has there: a
/// first line break right after the opening quote goes, the common leading
/// whitespace of the non-blank lines goes, and a last line of only
/// whitespace (the closing quote's indentation) becomes empty. Blank lines
/// stay blank; text at column 0 is unchanged.
pub fn unindent(text: &str) -> String {
    let text = text.strip_prefix('\n').unwrap_or(text);
    let indent = text
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| l.len() - l.trim_start_matches([' ', '\t']).len())
        .min()
        .unwrap_or(0);
    let mut out = String::with_capacity(text.len());
    let mut lines = text.split_inclusive('\n').peekable();
    while let Some(line) = lines.next() {
        let last = lines.peek().is_none();
        if line.trim().is_empty() {
            // Blank lines (and the closing quote's indentation) keep only
            // their line break.
            if line.ends_with('\n') {
                out.push('\n');
            } else if !last {
                out.push_str(line);
            }
        } else {
            out.push_str(&line[indent..]);
        }
    }
    out
}

/// `text` with what differs between two runs of the same session written as
/// placeholders: the test dir (as given and as resolved) `[DIR]`, run ids
/// (`20261202-041505-1b8c`) `[RUN]`, durations (`0.0s`, `12.25s`) `[T]`.
pub fn normalise(text: &str, dir: &Path) -> String {
    let mut text = text.to_string();
    let mut dirs = vec![dir.display().to_string()];
    if let Ok(real) = dir.canonicalize() {
        dirs.push(real.display().to_string());
    }
    // The longer first, so a resolved path that extends the given one is
    // replaced whole.
    dirs.sort_by_key(|d| std::cmp::Reverse(d.len()));
    for d in dirs {
        text = text.replace(&d, "[DIR]");
    }
    let b = text.as_bytes();
    let mut out = String::with_capacity(text.len());
    let mut i = 0;
    let boundary = |j: usize| j == 0 || !b[j - 1].is_ascii_alphanumeric();
    while i < b.len() {
        if boundary(i)
            && let Some(n) = run_id_at(&b[i..])
        {
            out.push_str("[RUN]");
            i += n;
        } else if boundary(i)
            && let Some(n) = duration_at(&b[i..])
        {
            out.push_str("[T]");
            i += n;
        } else {
            let c = text[i..].chars().next().expect("i is a char boundary");
            out.push(c);
            i += c.len_utf8();
        }
    }
    out
}

fn digits(b: &[u8]) -> usize {
    b.iter().take_while(|c| c.is_ascii_digit()).count()
}

/// `YYYYMMDD-HHMMSS-xxxx` at the start of `b`: its length.
fn run_id_at(b: &[u8]) -> Option<usize> {
    let hex = |c: &u8| c.is_ascii_digit() || (b'a'..=b'f').contains(c);
    let ok = b.len() >= 20
        && digits(&b[..8]) == 8
        && b[8] == b'-'
        && digits(&b[9..15]) == 6
        && b[15] == b'-'
        && b[16..20].iter().all(hex)
        && b.get(20).is_none_or(|c| !c.is_ascii_alphanumeric());
    ok.then_some(20)
}

/// `N.Ns` at the start of `b` (not followed by a letter): its length.
fn duration_at(b: &[u8]) -> Option<usize> {
    let whole = digits(b);
    if whole == 0 || b.get(whole) != Some(&b'.') {
        return None;
    }
    let frac = digits(&b[whole + 1..]);
    let end = whole + 1 + frac;
    let ok = frac > 0
        && b.get(end) == Some(&b's')
        && b.get(end + 1).is_none_or(|c| !c.is_ascii_alphanumeric());
    ok.then_some(end + 1)
}

/// A line diff of `want` and `have` (longest common subsequence): ` ` for
/// a line both have, `-` for one only expected, `+` for one only printed,
/// with up to `CONTEXT` common lines around each change and `@@ line N`
/// (of the expected text) where a part starts. Lines show their escapes, so
/// a missing space or line break is visible.
pub fn diff(want: &str, have: &str) -> String {
    const CONTEXT: usize = 3;
    let a: Vec<&str> = want.split_inclusive('\n').collect();
    let b: Vec<&str> = have.split_inclusive('\n').collect();
    // Past this a table would be large; show both whole instead.
    if a.len() * b.len() > 4_000_000 {
        return format!("expected:\n{want}\nactual:\n{have}\n");
    }
    // lcs[i][j]: the common subsequence of a[i..] and b[j..].
    let mut lcs = vec![vec![0usize; b.len() + 1]; a.len() + 1];
    for i in (0..a.len()).rev() {
        for j in (0..b.len()).rev() {
            lcs[i][j] = if a[i] == b[j] {
                lcs[i + 1][j + 1] + 1
            } else {
                lcs[i + 1][j].max(lcs[i][j + 1])
            };
        }
    }
    // (sign, line, its number in `want`)
    let mut ops: Vec<(char, &str, usize)> = Vec::new();
    let (mut i, mut j) = (0, 0);
    while i < a.len() || j < b.len() {
        if i < a.len() && j < b.len() && a[i] == b[j] {
            ops.push((' ', a[i], i + 1));
            i += 1;
            j += 1;
        } else if j < b.len() && (i == a.len() || lcs[i][j + 1] >= lcs[i + 1][j]) {
            ops.push(('+', b[j], i + 1));
            j += 1;
        } else {
            ops.push(('-', a[i], i + 1));
            i += 1;
        }
    }
    let changed: Vec<usize> = (0..ops.len()).filter(|&k| ops[k].0 != ' ').collect();
    let near = |k: usize| changed.iter().any(|&c| c.abs_diff(k) <= CONTEXT);
    let mut out = String::new();
    let mut shown_last = false;
    for (k, (sign, line, n)) in ops.iter().enumerate() {
        if near(k) {
            if !shown_last && k > 0 {
                let _ = writeln!(out, "@@ line {n}");
            }
            let _ = writeln!(out, "{sign} {line:?}");
            shown_last = true;
        } else {
            shown_last = false;
        }
    }
    out
}

#[test]
fn unindent_strips_the_common_indentation_of_a_literal() {
    assert_eq!(
        unindent(
            "
            a:
                run echo hi

            b: a
            "
        ),
        "a:\n    run echo hi\n\nb: a\n"
    );
    assert_eq!(unindent("a:\n    run x\n"), "a:\n    run x\n");
    assert_eq!(unindent("  x\n    y"), "x\n  y");
    assert_eq!(unindent(""), "");
}

#[test]
fn normalise_names_dirs_run_ids_and_durations() {
    let dir = Path::new("/tmp/topsail-test-abc");
    assert_eq!(
        normalise(
            "run 20261202-041505-1b8c failed in 12.25s\nrecord: /tmp/topsail-test-abc/.topsail\nv1.2 v1.2s 3.0sx\n",
            dir
        ),
        "run [RUN] failed in [T]\nrecord: [DIR]/.topsail\nv1.2 v1.2s 3.0sx\n"
    );
}

#[test]
fn diff_marks_missing_and_extra_lines() {
    assert_eq!(
        diff("a\nb\nc\n", "a\nc\nd\n"),
        "  \"a\\n\"\n- \"b\\n\"\n  \"c\\n\"\n+ \"d\\n\"\n"
    );
    assert_eq!(diff("same\n", "same\n"), "");
    // Far from the change, common lines are left out.
    let want = (1..=20).fold(String::new(), |mut s, n| {
        let _ = writeln!(s, "{n}");
        s
    });
    let have = want.replace("15\n", "fifteen\n");
    assert_eq!(
        diff(&want, &have),
        "@@ line 12\n  \"12\\n\"\n  \"13\\n\"\n  \"14\\n\"\n+ \"fifteen\\n\"\n- \"15\\n\"\n  \"16\\n\"\n  \"17\\n\"\n  \"18\\n\"\n"
    );
}
