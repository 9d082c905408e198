//! Hostile input through the real binary: files that are not files, imports
//! that reach out of the project, documents built to exhaust memory or the
//! stack, and output pipes closed under the command. Each must be refused
//! (or survived) quickly, with a diagnostic, never a hang, a blow-up or a
//! panic. Every child runs under a deadline, so a regression fails instead
//! of hanging the suite.

use std::fmt::Write as _;
use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::common::process::{Outcome, run_limited, wait_timeout};
use crate::common::{Test, command};
use crate::lsp::Server;

/// User + system CPU seconds of a live process (`/proc/PID/stat`, in ticks
/// of 1/100 s).
fn cpu_seconds(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).expect("the process is alive");
    let after = &stat[stat.rfind(')').expect("a stat line") + 2..];
    let fields: Vec<&str> = after.split_whitespace().collect();
    // Fields 14 and 15 of the line; the 12th and 13th after `) `.
    let ticks = |i: usize| fields[i].parse::<f64>().expect("ticks");
    (ticks(11) + ticks(12)) / 100.0
}

/// `args` run in `t`'s directory, to the end.
fn run_args(t: &Test, args: &[&str]) -> crate::common::Run {
    let r = run_limited(topsail(t.dir.path(), args), Duration::from_mins(1));
    crate::common::Run {
        status: r.status.unwrap_or(-1),
        stdout: r.stdout,
        stderr: r.stderr,
    }
}

/// CPU seconds (user + system) and peak RSS in KiB of `topsail ARGS`, as
/// GNU time reports them after the child exits (wall time on a shared,
/// loaded machine says little), with the run itself.
fn cpu_and_rss(dir: &Path, args: &[&str]) -> (f64, u64, Outcome) {
    let mut cmd = Command::new("/usr/bin/time");
    cmd.current_dir(dir)
        .env("NO_COLOR", "1")
        .env("COLUMNS", "100")
        .args(["-f", "TOPSAIL-TIME %U %S %M", env!("CARGO_BIN_EXE_topsail")])
        .args(args);
    let r = run_limited(cmd, Duration::from_secs(30));
    let line = r
        .stderr
        .lines()
        .rev()
        .find_map(|l| l.strip_prefix("TOPSAIL-TIME "))
        .unwrap_or_else(|| panic!("no GNU time report: {}", r.stderr));
    let f: Vec<&str> = line.split_whitespace().collect();
    let num = |i: usize| {
        f.get(i)
            .and_then(|v| v.parse::<f64>().ok())
            .expect("a number")
    };
    (num(0) + num(1), num(2) as u64, r)
}

fn topsail(dir: &Path, args: &[&str]) -> Command {
    let mut cmd = command(dir);
    cmd.args(args);
    cmd
}

/// Classic billion laughs: 9 levels of 9 aliases each, 415 bytes or so.
fn alias_bomb() -> String {
    let mut s = String::from(
        "a: &a [\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\"]\n",
    );
    let mut prev = "a".to_string();
    for c in ["b", "c", "d", "e", "f", "g", "h", "i"] {
        let refs = vec![format!("*{prev}"); 9].join(",");
        let _ = writeln!(s, "{c}: &{c} [{refs}]");
        prev = c.to_string();
    }
    s
}

fn mkfifo(path: &Path) {
    let ok = Command::new("mkfifo")
        .arg(path)
        .status()
        .expect("mkfifo runs")
        .success();
    assert!(ok, "mkfifo {}", path.display());
}

const STEP: &str = "a:\n    run echo hi\n";

// ------------------------------------------------------------------ imports

#[test]
fn imports_stay_inside_the_project_and_never_quote_other_files() {
    let t = Test::new()
        .file(
            "home/.aws/credentials",
            "[default]\naws_secret_access_key = TOPSECRETVALUE\n",
        )
        .file(
            "home/outside.topsail",
            "shared:\n    run echo TOPSECRETVALUE\n",
        )
        .file("home/proj/.git/HEAD", "ref: refs/heads/main\n")
        .file("home/proj/common.topsail", "setup:\n    run echo setup\n")
        .file(
            "home/proj/keys.topsail",
            "aws_secret_access_key = TOPSECRETVALUE\n",
        )
        .file("home/proj/notes.txt", "TOPSECRETVALUE\n")
        .file(
            "home/proj/ci/pipeline.topsail",
            "import \"../common.topsail\" as common\n\nb: common.setup\n    run echo b\n",
        )
        .file(
            "home/proj/ci/escape.topsail",
            "import \"../../.aws/credentials\" as c\n\
             import \"../../../../../../../../etc/passwd\" as p\n\
             import \"../../outside.topsail\" as o\n\
             import \"../link.topsail\" as l\n\
             import \"../notes.txt\" as n\n\
             import \"../keys.topsail\" as k\n\n\
             b:\n    run echo b\n",
        );
    std::os::unix::fs::symlink(
        t.path("home/outside.topsail"),
        t.path("home/proj/link.topsail"),
    )
    .expect("symlink");
    // Inside the repository (`.git` at home/proj): `../` is fine.
    let ok = t.path("home/proj/ci/pipeline.topsail");
    let r = run_limited(
        topsail(t.dir.path(), &["check", &ok.display().to_string()]),
        Duration::from_secs(20),
    );
    assert_eq!(r.status, Some(0), "{}", r.stderr);

    let bad = t.path("home/proj/ci/escape.topsail");
    let r = run_limited(
        topsail(t.dir.path(), &["check", &bad.display().to_string()]),
        Duration::from_secs(20),
    );
    assert_eq!(r.status, Some(1), "{}", r.stderr);
    assert!(!r.stderr.contains("TOPSECRETVALUE"), "{}", r.stderr);
    assert!(!r.stderr.contains("root:"), "{}", r.stderr);
    assert_eq!(
        r.stderr.matches("is outside the project").count(),
        4,
        "credentials, passwd, a file beside the repository, a symlink out of it:\n{}",
        r.stderr
    );
    assert!(
        r.stderr.contains("`../notes.txt` is not a pipeline module"),
        "{}",
        r.stderr
    );
    assert!(
        r.stderr
            .contains("keys.topsail` is not a pipeline module: it does not"),
        "{}",
        r.stderr
    );

    // Outside a repository the project is the root pipeline's directory.
    let t = Test::new()
        .file("secret.topsail", "x:\n    run echo x\n")
        .file(
            "p/pipeline.topsail",
            "import \"../secret.topsail\"\n\na:\n    run echo a\n",
        );
    let r = run_args(&t, &["check", "p/pipeline.topsail"]);
    assert_eq!(r.status, 1, "{}", r.stderr);
    assert!(r.stderr.contains("is outside the project"), "{}", r.stderr);
}

#[test]
fn an_import_cycle_is_reported_on_the_import_that_closes_it() {
    Test::new()
        .pipeline(
            r#"
            import "./a.topsail" as a

            main:
                run echo main
            "#,
        )
        .write(
            "a.topsail",
            r#"
            import "./b.topsail" as b

            x:
                run echo x
            "#,
        )
        .write(
            "b.topsail",
            r#"
            import "./a.topsail" as a

            y:
                run echo y
            "#,
        )
        .args(&["check", "pipeline.topsail"])
        .stdout("")
        .stderr(
            r#"
            topsail::import

              × import cycle: ./a.topsail -> ./b.topsail -> ./a.topsail
               ╭─[./b.topsail:1:8]
             1 │ import "./a.topsail" as a
               ·        ──────┬──────
               ·              ╰── this import closes the cycle
             2 │ 
               ╰────
              help: a module cannot import a file that imports it; move what both need into a third module

            ✗ pipeline.topsail; 1 error, 0 warnings
            "#,
        )
        .status(1)
        .run();
    // A diamond (two modules importing a third) is no cycle.
    Test::new()
        .pipeline(
            r#"
            import "./a.topsail" as a
            import "./b.topsail" as b

            main:
                run echo main
            "#,
        )
        .write(
            "a.topsail",
            r#"
            import "./c.topsail" as c

            x:
                run echo x
            "#,
        )
        .write(
            "b.topsail",
            r#"
            import "./c.topsail" as c

            y:
                run echo y
            "#,
        )
        .write(
            "c.topsail",
            "
            z:
                run echo z
            ",
        )
        .args(&["check", "pipeline.topsail"])
        .status(0)
        .run();
}

// ------------------------------------------------------------ what is read

#[test]
fn a_fifo_as_file_or_import_is_refused_at_once() {
    let t = Test::new().file(
        "pipeline.topsail",
        "import \"./pipe.topsail\"\n\na:\n    run echo a\n",
    );
    mkfifo(&t.path("pipe.topsail"));
    mkfifo(&t.path("pipe.yaml"));
    for args in [
        &["check", "pipe.topsail"][..],
        &["check", "pipe.yaml"],
        &["check", "pipeline.topsail"],
        &["fmt", "--check", "pipe.topsail"],
        &["graph", "pipe.topsail"],
    ] {
        let r = run_limited(topsail(t.dir.path(), args), Duration::from_secs(10));
        assert!(
            r.took < Duration::from_secs(3),
            "{args:?} took {:?}",
            r.took
        );
        assert_ne!(r.status, Some(0), "{args:?}");
        assert!(r.stderr.contains("a FIFO"), "{args:?}: {}", r.stderr);
    }
}

#[test]
fn a_symlink_to_a_device_or_a_huge_file_is_refused() {
    let t = Test::new().file(
        "pipeline.topsail",
        "import \"./zero.topsail\"\n\na:\n    run echo a\n",
    );
    std::os::unix::fs::symlink("/dev/zero", t.path("zero.topsail")).expect("symlink");
    // As FILE it is a device; as an import it leads out of the project.
    for (args, says) in [
        (&["check", "zero.topsail"][..], "a character device"),
        (&["check", "pipeline.topsail"], "is outside the project"),
    ] {
        let r = run_limited(topsail(t.dir.path(), args), Duration::from_secs(10));
        assert_ne!(r.status, Some(0), "{args:?}");
        assert!(r.stderr.contains(says), "{args:?}: {}", r.stderr);
        assert!(
            r.max_rss_kib.is_none_or(|k| k < 100 * 1024),
            "{args:?}: {:?} KiB",
            r.max_rss_kib
        );
    }
    // 17 MiB of comments: over the 16 MiB limit.
    let big = t.path("big.topsail");
    let mut f = std::fs::File::create(&big).expect("create");
    let line = format!("# {}\n", "x".repeat(1021));
    for _ in 0..17 * 1024 {
        f.write_all(line.as_bytes()).expect("write");
    }
    drop(f);
    let r = run_limited(
        topsail(t.dir.path(), &["check", "big.topsail"]),
        Duration::from_secs(10),
    );
    assert_eq!(r.status, Some(2), "{}", r.stderr);
    assert!(r.stderr.contains("at most 16777216 bytes"), "{}", r.stderr);
}

#[test]
fn invalid_utf8_says_where_and_json_output_reports_read_errors() {
    let t = Test::new();
    std::fs::write(t.path("bad.topsail"), b"a:\n    run echo \xff\n").expect("write");
    let r = run_args(&t, &["check", "bad.topsail"]);
    assert_eq!(r.status, 2, "{}", r.stderr);
    assert_eq!(
        r.stderr,
        "error: cannot read bad.topsail: it is not UTF-8 text: invalid byte at line 2, column 14 \
         (byte offset 16)\n"
    );
    assert_eq!(r.stdout, "");
    let r = run_args(&t, &["check", "--format", "json", "bad.topsail"]);
    assert_eq!(r.status, 2, "{}", r.stderr);
    let doc: Value = serde_json::from_str(&r.stdout).expect("JSON on stdout");
    assert_eq!(doc["ok"], json!(false));
    assert_eq!(doc["diagnostics"][0]["code"], json!("topsail::read"));
    assert_eq!(doc["diagnostics"][0]["line"], json!(2));
    assert_eq!(doc["diagnostics"][0]["column"], json!(14));
    let r = run_args(&t, &["check", "--format", "json", "missing.topsail"]);
    let doc: Value = serde_json::from_str(&r.stdout).expect("JSON on stdout");
    assert_eq!(doc["diagnostics"][0]["code"], json!("topsail::read"));
    assert!(
        doc["diagnostics"][0]["message"]
            .as_str()
            .is_some_and(|m| m.contains("No such file")),
        "{doc}"
    );
    // No file given and none here: still one JSON document, not text.
    let empty = Test::new();
    let r = run_args(&empty, &["check", "--format", "json"]);
    assert_eq!(r.status, 2, "{}", r.stderr);
    let doc: Value = serde_json::from_str(&r.stdout).expect("JSON on stdout");
    assert_eq!(doc["errors"], json!(1), "{doc}");
    assert_eq!(doc["diagnostics"][0]["code"], json!("topsail::read"));
    assert!(
        doc["diagnostics"][0]["message"]
            .as_str()
            .is_some_and(|m| m.contains("no pipeline file given")),
        "{doc}"
    );
    assert!(
        doc["diagnostics"][0]["help"]
            .as_str()
            .is_some_and(|m| m.contains("topsail check path/to/pipeline.topsail")),
        "{doc}"
    );
}

// ------------------------------------------------------------ YAML shapes

#[test]
fn the_alias_bomb_is_refused_fast_and_small_by_check() {
    let bomb = alias_bomb();
    let manifest = format!("deployment_spec:\n  x: 1\n{bomb}");
    let t = Test::new()
        .file("bomb.yaml", &bomb)
        .file("manifest.yaml", &manifest)
        .file("nest.yaml", &"[".repeat(100_000))
        .file("nest-map.yaml", &"{a: ".repeat(100_000))
        .file(
            "nest-block.yaml",
            &(0..2000)
                .map(|i| " ".repeat(i) + "k:\n")
                .collect::<String>(),
        );
    assert!(bomb.len() < 450, "{} bytes", bomb.len());
    for file in [
        "bomb.yaml",
        "manifest.yaml",
        "nest.yaml",
        "nest-map.yaml",
        "nest-block.yaml",
    ] {
        let (cpu, rss, r) = cpu_and_rss(t.dir.path(), &["check", file]);
        assert_eq!(r.status, Some(1), "{file}: {}", r.stderr);
        assert!(
            r.stderr.contains("aliases expand to too much")
                || r.stderr.contains("nested too deeply")
                || r.stderr.contains("nest too deeply"),
            "{file}: {}",
            r.stderr
        );
        assert!(cpu < 1.0, "{file}: {cpu} s of CPU");
        assert!(rss < 100 * 1024, "{file}: {rss} KiB");
        eprintln!(
            "{file}: {cpu:.2} s CPU, {rss} KiB max RSS, {:?} wall",
            r.took
        );
    }
}

#[test]
fn duplicate_keys_merge_keys_and_nul_characters_in_yaml_are_reported() {
    Test::new()
        .write(
            "topsail.yaml",
            "
            x-a: &a {image: alpine}
            x-b: &b {timeout: 5m}
            steps:
              a:
                needs: []
                run: echo one
                needs: [b]
                run: echo two
              b:
                <<: *a
                <<: *b
                run: echo b
            ",
        )
        .args(&["check", "topsail.yaml"])
        .stderr_contains("`needs` is given twice in step `a`")
        .stderr_contains("`run` is given twice in step `a`")
        .stderr_contains("a second `<<` merge key")
        .status(1)
        .run();

    // The NUL is written as it is: the one fixture not unindented.
    Test::new()
        .file("topsail.yaml", "steps:\n  a:\n    run: \"echo \0 here\"\n")
        .args(&["check", "topsail.yaml"])
        .stderr_contains("a NUL character (U+0000) is not allowed")
        .stderr_contains("topsail.yaml:3:16")
        .stderr_lacks("end of stream")
        .status(1)
        .run();
}

#[test]
fn a_huge_name_is_described_not_echoed() {
    let name = "n".repeat(5 * 1024 * 1024);
    for (file, text) in [
        (
            "topsail.yaml",
            format!(
                "pipeline: \"{name}.x\"\nsteps:\n  a:\n    needs: [\"{name}\"]\n    run: echo\n"
            ),
        ),
        ("pipeline.topsail", format!("{name}.x:\n    run echo\n")),
    ] {
        let t = Test::new().file(file, &text);
        let r = run_limited(
            topsail(t.dir.path(), &["check", file]),
            Duration::from_secs(30),
        );
        assert_eq!(r.status, Some(1), "{file}");
        assert!(
            r.stderr.len() < 20_000,
            "{file}: {} bytes of diagnostics",
            r.stderr.len()
        );
        assert!(!r.stderr.contains(&"n".repeat(200)), "{file}");
        let r = run_limited(
            topsail(t.dir.path(), &["check", "--format", "json", file]),
            Duration::from_secs(30),
        );
        assert!(
            r.stdout.len() < 20_000,
            "{file}: {} bytes of JSON",
            r.stdout.len()
        );
    }
    let t = Test::new().file(
        "topsail.yaml",
        &format!("pipeline: \"{name}.x\"\nsteps:\n  a:\n    run: echo\n"),
    );
    let r = run_args(&t, &["check", "topsail.yaml"]);
    assert!(
        r.stderr.contains("a name of 5,242,882 characters"),
        "{}",
        r.stderr
    );
}

// ------------------------------------------------------------ conditions

#[test]
fn a_long_or_deep_condition_is_refused_without_overflowing_the_stack() {
    let terms = vec!["a"; 5000].join(" && ");
    let parens = format!("{}a{}", "(".repeat(10_000), ")".repeat(10_000));
    let t = Test::new()
        .file(
            "and.topsail",
            &format!("param a: bool = true\n\ns:\n    when {terms}\n    run echo s\n"),
        )
        .file(
            "paren.topsail",
            &format!("param a: bool = true\n\ns:\n    when {parens}\n    run echo s\n"),
        )
        .file(
            "and.yaml",
            &format!("params: {{a: true}}\nsteps:\n  s:\n    when: \"{terms}\"\n    run: echo s\n"),
        )
        .file(
            "paren.yaml",
            &format!(
                "params: {{a: true}}\nsteps:\n  s:\n    when: \"{parens}\"\n    run: echo s\n"
            ),
        )
        .file(
            "ok.topsail",
            &format!(
                "param a: bool = true\n\ns:\n    when {}\n    run echo s\n",
                vec!["a"; 200].join(" && ")
            ),
        );
    for file in ["and.topsail", "paren.topsail", "and.yaml", "paren.yaml"] {
        let r = run_limited(
            topsail(t.dir.path(), &["check", file]),
            Duration::from_secs(20),
        );
        assert_eq!(r.status, Some(1), "{file}: {}", r.stderr);
        assert!(
            r.stderr.contains("condition too long") || r.stderr.contains("nested too deeply"),
            "{file}: {}",
            r.stderr
        );
    }
    let r = run_limited(
        topsail(t.dir.path(), &["compile", "ok.topsail"]),
        Duration::from_secs(20),
    );
    assert_eq!(r.status, Some(0), "{}", r.stderr);
}

// ------------------------------------------------------------ the language server

#[test]
fn the_language_server_survives_bombs_non_ascii_completion_and_huge_frames() {
    let mut server = Server::start();
    let pid = server.pid();
    let start = Instant::now();
    let cpu_before = cpu_seconds(pid);
    server.open("file:///tmp/topsail-hostile/bomb.yaml", &alias_bomb());
    let diags = server.diagnostics(
        "file:///tmp/topsail-hostile/bomb.yaml",
        Duration::from_secs(10),
    );
    // CPU time, not wall time: the machine running the tests may be busy.
    let cpu = cpu_seconds(pid) - cpu_before;
    assert!(cpu < 1.0, "{cpu} s of CPU for the bomb");
    assert!(
        start.elapsed() < Duration::from_secs(10),
        "{:?}",
        start.elapsed()
    );
    assert!(
        diags.iter().any(|d| d["message"]
            .as_str()
            .is_some_and(|m| m.contains("aliases expand"))),
        "{diags:?}"
    );
    let rss = crate::common::process::peak_kib(pid).expect("the server's peak memory");
    assert!(rss < 100 * 1024, "{rss} KiB");
    eprintln!(
        "lsp, alias bomb: {cpu:.2} s CPU, {rss} KiB peak RSS, {:?} wall",
        start.elapsed()
    );

    let terms = vec!["a"; 5000].join(" && ");
    let uri = "file:///tmp/topsail-hostile/p.topsail";
    server.open(
        uri,
        &format!("param a: bool = true\n\ns:\n    when {terms}\n    run echo é{{{{ \n"),
    );
    let diags = server.diagnostics(uri, Duration::from_secs(10));
    assert!(!diags.is_empty());
    // Completion just after a two-byte character, and inside an emoji.
    for character in [14, 15] {
        let resp = server.request(
            "textDocument/completion",
            json!({"textDocument": {"uri": uri}, "position": {"line": 4, "character": character}}),
        );
        assert!(resp.get("error").is_none(), "{resp}");
    }
    server.open(
        "file:///tmp/topsail-hostile/e.topsail",
        "s:\n    run echo 🙂é\n",
    );
    for character in [14, 15, 16, 17] {
        let resp = server.request(
            "textDocument/completion",
            json!({"textDocument": {"uri": "file:///tmp/topsail-hostile/e.topsail"}, "position": {"line": 1, "character": character}}),
        );
        assert!(resp.get("error").is_none(), "{resp}");
    }
    // Still alive and answering after all that.
    let resp = server.request(
        "textDocument/documentSymbol",
        json!({"textDocument": {"uri": uri}}),
    );
    assert!(resp.get("error").is_none(), "{resp}");
    server.stop();

    // A frame announcing 2^60 bytes: refused with an error, no abort.
    let mut server = Server::start();
    server.raw(b"Content-Length: 1152921504606846976\r\n\r\n{}");
    let status = server.wait(Duration::from_secs(10));
    assert_eq!(status, Some(1), "a clean error exit, not a signal");
}

// ------------------------------------------------------------ closed pipes

/// A pipe whose reading end is already closed.
fn closed_pipe() -> std::io::PipeWriter {
    let (reader, writer) = std::io::pipe().expect("pipe");
    drop(reader);
    writer
}

#[test]
fn commands_on_a_closed_pipe_exit_quietly_with_their_real_status() {
    let t = Test::new().file("pipeline.topsail", STEP).file(
        "fail.topsail",
        "a:\n    run echo hi\n\nb: a\n    run exit 3\n",
    );
    // Some runs to list.
    for _ in 0..3 {
        assert_eq!(run_args(&t, &["run", "pipeline.topsail"]).status, 0);
    }
    let cases: [(&[&str], i32); 5] = [
        (&["runs"], 0),
        (&["check", "--format", "json", "pipeline.topsail"], 0),
        (&["graph", "pipeline.topsail"], 0),
        (&["run", "pipeline.topsail"], 0),
        (&["run", "fail.topsail"], 1),
    ];
    for (args, expected) in cases {
        for closed_stderr in [false, true] {
            let mut cmd = topsail(t.dir.path(), args);
            cmd.stdout(closed_pipe()).stdin(Stdio::null());
            if closed_stderr {
                cmd.stderr(closed_pipe());
            } else {
                cmd.stderr(Stdio::piped());
            }
            let mut child = cmd.spawn().expect("starts");
            let code = wait_timeout(&mut child, Duration::from_secs(30), || {
                format!("{args:?} hangs")
            });
            let mut stderr = String::new();
            if let Some(mut e) = child.stderr.take() {
                let _ = std::io::Read::read_to_string(&mut e, &mut stderr);
            }
            assert!(!stderr.contains("panicked"), "{args:?}: {stderr}");
            assert_eq!(
                code,
                Some(expected),
                "{args:?} (closed stderr: {closed_stderr}): {stderr}"
            );
        }
    }
}
