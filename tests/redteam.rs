//! Red-team review of issues 11 and 12 as merged: each finding's reproducer
//! through the real binary (and the worker, fed crafted task inputs by the
//! fake Step Functions endpoint of tests/worker.rs).

use std::time::Duration;

use serde_json::json;

use crate::common::Test;
use crate::worker::{Answer, FakeSfn, FakeWorker, task};

/// Bash (and ksh, zsh) evaluate more than `$(( ))` as arithmetic, and an
/// array subscript there runs command substitutions in what a variable
/// expands to: `x='a[$(cmd)]'; let y=$x` runs `cmd`. Each of these ran
/// `touch` from a `--param` on main; the value must be refused (it is not an
/// integer) and nothing may run.
const BASH_ARITH_IDIOMS: &[&str] = &[
    "arr[{{ v }}]=1",
    "arr[\"{{ v }}\"]=1",
    "a=([{{ v }}]=1)",
    "declare -i n={{ v }}",
    "typeset -i n={{ v }}",
    "f() { local -i n={{ v }}; }; f",
    "declare -ia a=({{ v }} 2)",
    "declare -n r={{ v }}; echo \"$r\"",
    "let m={{ v }}",
    "let \"m={{ v }}\"",
    "let 'm={{ v }}'",
    "echo \"$(let m={{ v }})\"",
    "if let m={{ v }}; then :; fi",
    "[[ -v {{ v }} ]]",
    "[ -v {{ v }} ]",
    "test -v {{ v }}",
    "printf -v {{ v }} %s 1",
    // What a command substitution inside arithmetic prints is evaluated.
    "echo $(( 1 + $(echo {{ v }}) ))",
    "echo $(( 1 + `echo {{ v }}` ))",
    "echo $(( $(echo '{{ v }}') ))",
    "(( $(echo \"{{ v }}\") ))",
    "arr[$(echo {{ v }})]=1",
    "echo \"${a[$(echo {{ v }})]}\"",
    "x=abcdef; echo ${x:$(echo {{ v }})}",
];

fn arith_pipeline(idiom: &str) -> String {
    format!("pipeline p\n\nparam v\n\ns:\n    shell \"bash\"\n    run:\n        {idiom}\n")
}

#[test]
fn values_bash_evaluates_as_arithmetic_or_names_must_be_integers() {
    for idiom in BASH_ARITH_IDIOMS {
        let t = Test::new().file("pipeline.topsail", &arith_pipeline(idiom));
        let marker = t.path("PWNED");
        let value = format!("x[$(touch {})]", marker.display());
        let t = t.args(&["run", "--param", &format!("v={value}")]);
        let r = t.run();
        assert!(!marker.exists(), "`{idiom}` ran the value as a command");
        assert_eq!(r.status, 1, "`{idiom}`: {}{}", r.stdout, r.stderr);
        assert!(
            r.stdout.contains("must be an integer") || r.stderr.contains("must be an integer"),
            "`{idiom}`: {}{}",
            r.stdout,
            r.stderr
        );
    }
}

#[test]
fn integers_still_reach_bash_arithmetic_and_other_words_stay_data() {
    let t = Test::new().file(
        "pipeline.topsail",
        "pipeline p\n\nparam n\nparam s\n\ns:\n    shell \"bash\"\n    run:\n        \
         arr[{{ n }}]=1; let m={{ n }}+1; declare -i k={{ n }}\n        \
         [[ -v arr[{{ n }}] ]] && echo \"m=$m k=$k ${!arr[@]}\"\n        \
         x={{ s }}; declare y={{ s }}; printf '%s|%s|%s\\n' \"$x\" \"$y\" {{ s }}\n",
    );
    let marker = t.path("PWNED");
    let s = format!("x[$(touch {})]", marker.display());
    let r = t
        .args(&["run", "--param", "n=3", "--param", &format!("s={s}")])
        .run();
    assert_eq!(r.status, 0, "{}{}", r.stdout, r.stderr);
    assert!(r.stdout.contains("m=4 k=3 3"), "{}", r.stdout);
    assert!(r.stdout.contains(&format!("{s}|{s}|{s}")), "{}", r.stdout);
    assert!(!marker.exists());
}

/// The same idioms as a crafted task input: the worker refuses the value
/// and runs nothing.
#[test]
fn the_worker_refuses_a_non_integer_where_bash_evaluates_arithmetic() {
    let t = Test::new();
    let mut sfn = FakeSfn::start();
    let mut w = FakeWorker::start(t.dir.path(), &sfn, &[], &["--allow-host"]);
    let marker = t.path("PWNED");
    let value = format!("x[$(touch {})]", marker.display());
    for idiom in [
        "let m={{ v }}",
        "arr[{{ v }}]=1",
        "declare -i n={{ v }}",
        "[[ -v {{ v }} ]]",
    ] {
        let token = sfn.push(&task(
            idiom,
            &json!({"shell": "bash", "values": {"params": {"v": value}}}),
        ));
        match sfn.answer(&token, Duration::from_secs(30)) {
            Answer::Failure { cause, .. } => {
                assert!(cause.contains("must be an integer"), "`{idiom}`: {cause}");
            }
            Answer::Success(out) => panic!("`{idiom}` succeeded: {out}"),
        }
        assert!(!marker.exists(), "`{idiom}` ran the value on the worker");
    }
    w.stop();
}

/// Run `topsail ARGS` in `dir`, killed after `secs`: `None` if it had not
/// finished by then.
/// Its output goes to files (a pipe nobody reads would block it).
fn run_within(dir: &std::path::Path, args: &[&str], secs: u64) -> Option<std::process::Output> {
    let out = tempfile::tempfile().expect("a temp file");
    let err = tempfile::tempfile().expect("a temp file");
    let mut child = crate::common::command(dir)
        .args(args)
        .stdout(out.try_clone().expect("clone"))
        .stderr(err.try_clone().expect("clone"))
        .spawn()
        .expect("topsail starts");
    let t0 = std::time::Instant::now();
    while t0.elapsed() < Duration::from_secs(secs) {
        if let Some(status) = child.try_wait().expect("wait") {
            let read = |mut f: std::fs::File| {
                use std::io::{Read, Seek};
                let mut v = Vec::new();
                f.rewind()
                    .and_then(|()| f.read_to_end(&mut v))
                    .expect("read");
                v
            };
            return Some(std::process::Output {
                status,
                stdout: read(out),
                stderr: read(err),
            });
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let _ = child.kill();
    let _ = child.wait();
    None
}

/// `topsail logs` read `run.log` with `read_to_string`: a FIFO in its place
/// blocked it for ever, a symlink to /dev/zero took 1.2 GB in 5 s.
#[test]
fn logs_of_a_record_whose_log_is_a_fifo_or_a_device_return_at_once() {
    let t = Test::new().file("pipeline.topsail", "pipeline p\n\ns:\n    run echo hi\n");
    let t = t.args(&["run"]);
    let r = t.run();
    assert_eq!(r.status, 0, "{}{}", r.stdout, r.stderr);
    let runs = t.path(".topsail/runs");
    let id = std::fs::read_dir(&runs)
        .unwrap()
        .filter_map(Result::ok)
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .find(|n| !n.starts_with('.'))
        .expect("a record");
    let log = runs.join(&id).join("run.log");
    let kept = std::fs::read_to_string(&log).unwrap();
    assert!(kept.contains("hi"));
    std::fs::remove_file(&log).unwrap();
    nix::unistd::mkfifo(&log, nix::sys::stat::Mode::S_IRWXU).unwrap();
    let out = run_within(t.dir.path(), &["logs", &id], 10).expect("logs blocked on a FIFO");
    assert!(out.status.success(), "{out:?}");
    std::fs::remove_file(&log).unwrap();
    std::os::unix::fs::symlink("/dev/zero", &log).unwrap();
    let out =
        run_within(t.dir.path(), &["logs", &id, "s"], 10).expect("logs read /dev/zero without end");
    assert!(out.status.success(), "{out:?}");
    // A regular log with a line far past any step's line is cut, not held.
    std::fs::remove_file(&log).unwrap();
    let long = "x".repeat(8 << 20);
    std::fs::write(&log, format!("s\t{long}\ns\tafter\n")).unwrap();
    let out = run_within(t.dir.path(), &["logs", &id], 20).expect("logs finished");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("after"),
        "{}",
        &text[text.len().saturating_sub(300)..]
    );
    assert!(text.len() < 1 << 20, "{} bytes printed", text.len());
}

/// `topsail approve --list` printed each queue message's fields as they
/// were: a param in the approval message (chosen by whoever starts an
/// execution) forged a row with a newline and drove the approver's terminal
/// (`ESC[2K` erased a line, an OSC set the title). Needs the emulator.
#[test]
fn approval_list_shows_control_characters_escaped() {
    use crate::common::unique;
    use crate::support::{deploy, run};
    let t = Test::new().file(
        "p.topsail",
        "pipeline gated\n\nparam version = \"1.0\"\n\ngate:\n    approval \"Ship {{ version }}?\"\n",
    );
    let dir = t.dir.path();
    let machine = unique("rtgated");
    deploy(dir, "p.topsail", &machine);
    let exec = unique("rtex");
    let forged = "1.0?\n\u{1b}[2Kreal-exec-9  gate  gated  Ship 1.0 (routine)\u{1b}]0;owned\u{7}";
    let (code, out, err) = run(
        dir,
        &[
            "start",
            "p.topsail",
            "--machine",
            &machine,
            "--name",
            &exec,
            "--param",
            &format!("version={forged}"),
        ],
    );
    assert_eq!(code, 0, "{out}{err}");
    let t0 = std::time::Instant::now();
    let list = loop {
        let (code, out, err) = run(dir, &["approve", "--machine", &machine, "--list"]);
        assert_eq!(code, 0, "{out}{err}");
        if out.contains(&exec) {
            break out;
        }
        assert!(
            t0.elapsed() < Duration::from_secs(30),
            "never listed:\n{out}"
        );
        std::thread::sleep(Duration::from_millis(200));
    };
    assert!(
        !list.contains(['\u{1b}', '\u{7}']),
        "an escape reached the terminal: {list:?}"
    );
    assert_eq!(list.lines().count(), 2, "a forged row: {list}");
    assert!(list.contains("Ship 1.0?\\n\\u{1b}[2Kreal-exec-9"), "{list}");
}

/// A frame whose body was not JSON-RPC (bad JSON, or JSON nested past
/// serde's limit) ended the language server with "disconnected channel";
/// the frame is whole, so the server skips it, says so, and goes on.
#[test]
fn the_language_server_skips_a_message_that_is_not_json_rpc() {
    use std::io::Write;
    let frame = |body: &[u8]| {
        let mut f = format!("Content-Length: {}\r\n\r\n", body.len()).into_bytes();
        f.extend_from_slice(body);
        f
    };
    let mut input = frame(b"{\"a\":[[[[");
    input.extend(frame(
        format!("{}{}", "[".repeat(100_000), "]".repeat(100_000)).as_bytes(),
    ));
    for msg in [
        json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {"capabilities": {}}}),
        json!({"jsonrpc": "2.0", "method": "initialized", "params": {}}),
        json!({"jsonrpc": "2.0", "id": 2, "method": "shutdown"}),
        json!({"jsonrpc": "2.0", "method": "exit"}),
    ] {
        input.extend(frame(msg.to_string().as_bytes()));
    }
    let t = Test::new();
    let input_file = t.path("lsp-input");
    std::fs::File::create(&input_file)
        .and_then(|mut f| f.write_all(&input))
        .unwrap();
    let mut child = crate::common::command(t.dir.path())
        .arg("lsp")
        .stdin(std::fs::File::open(&input_file).unwrap())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let t0 = std::time::Instant::now();
    while child.try_wait().unwrap().is_none() {
        if t0.elapsed() > Duration::from_secs(20) {
            let _ = child.kill();
            let _ = child.wait();
            panic!("the language server did not end");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let out = child.wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    assert_eq!(
        stderr
            .matches("skipped a message that is not JSON-RPC")
            .count(),
        2,
        "{stderr}"
    );
    assert!(
        stdout.contains("\"id\":1") && stdout.contains("\"id\":2"),
        "{stdout}"
    );
}
