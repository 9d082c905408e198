//! `topsail worker` fed crafted task inputs: a small fake Step Functions
//! endpoint on loopback (awsJson1.0: GetActivityTask hands out the inputs a
//! test queued, SendTaskSuccess/Failure are recorded, heartbeats accepted)
//! stands in for whoever can start executions. What a task may get from
//! the worker is decided by its operator's flags, whatever the input says.

use std::collections::VecDeque;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::common::Test;
use crate::common::process::{Lines, signal, wait_timeout};

const IMAGE: &str = "topsail-test/busybox:latest";
const ACTIVITY: &str = "arn:aws:states:us-east-1:123456789012:activity:fake";

/// What the worker answered for one task.
#[derive(Clone, Debug)]
pub enum Answer {
    Success(Value),
    Failure { error: String, cause: String },
}

#[derive(Default)]
struct State {
    queue: VecDeque<(String, String)>,
    answers: Vec<(String, Answer)>,
    /// Every request body, to look for leaked values.
    bodies: String,
}

pub struct FakeSfn {
    pub url: String,
    state: Arc<Mutex<State>>,
    stop: Arc<AtomicBool>,
    next: usize,
}

impl FakeSfn {
    pub fn start() -> FakeSfn {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind loopback");
        listener.set_nonblocking(true).unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let state = Arc::new(Mutex::new(State::default()));
        let stop = Arc::new(AtomicBool::new(false));
        {
            let (state, stop) = (state.clone(), stop.clone());
            std::thread::spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    match listener.accept() {
                        Ok((conn, _)) => {
                            let (state, stop) = (state.clone(), stop.clone());
                            std::thread::spawn(move || serve(conn, &state, &stop));
                        }
                        Err(_) => std::thread::sleep(Duration::from_millis(10)),
                    }
                }
            });
        }
        FakeSfn {
            url,
            state,
            stop,
            next: 0,
        }
    }

    /// Queue a task; its token.
    pub fn push(&mut self, input: &Value) -> String {
        self.next += 1;
        let token = format!("token-{}", self.next);
        self.state
            .lock()
            .unwrap()
            .queue
            .push_back((token.clone(), input.to_string()));
        token
    }

    pub fn answer(&self, token: &str, timeout: Duration) -> Answer {
        let t0 = Instant::now();
        loop {
            if let Some((_, a)) = self
                .state
                .lock()
                .unwrap()
                .answers
                .iter()
                .find(|(t, _)| t == token)
            {
                return a.clone();
            }
            assert!(
                t0.elapsed() < timeout,
                "no answer for {token} in {timeout:?}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn bodies(&self) -> String {
        self.state.lock().unwrap().bodies.clone()
    }
}

impl Drop for FakeSfn {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

fn serve(conn: TcpStream, state: &Mutex<State>, stop: &AtomicBool) {
    conn.set_read_timeout(Some(Duration::from_millis(200))).ok();
    let mut out = conn.try_clone().expect("clone the connection");
    let mut r = BufReader::new(conn);
    loop {
        // Headers, waiting for them while the worker keeps the connection.
        let mut target = String::new();
        let mut len = 0usize;
        let mut first = true;
        loop {
            let mut line = String::new();
            match r.read_line(&mut line) {
                Ok(0) => return,
                Ok(_) => {}
                Err(_) if stop.load(Ordering::Relaxed) => return,
                Err(_) if first && line.is_empty() => continue,
                Err(_) => return,
            }
            first = false;
            let l = line.trim_end();
            if l.is_empty() {
                break;
            }
            if let Some((k, v)) = l.split_once(':') {
                match k.trim().to_ascii_lowercase().as_str() {
                    "x-amz-target" => target = v.trim().to_string(),
                    "content-length" => len = v.trim().parse().unwrap_or(0),
                    _ => {}
                }
            }
        }
        let mut body = vec![0; len];
        if r.read_exact(&mut body).is_err() {
            return;
        }
        let body: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
        let reply = match target.rsplit('.').next().unwrap_or("") {
            "GetActivityTask" => {
                let task = state.lock().unwrap().queue.pop_front();
                if let Some((token, input)) = task {
                    json!({"taskToken": token, "input": input})
                } else {
                    // A short long-poll: the worker asks again.
                    std::thread::sleep(Duration::from_millis(100));
                    json!({})
                }
            }
            op @ ("SendTaskSuccess" | "SendTaskFailure") => {
                let token = body["taskToken"].as_str().unwrap_or("").to_string();
                let answer = if op == "SendTaskSuccess" {
                    Answer::Success(
                        serde_json::from_str(body["output"].as_str().unwrap_or("null"))
                            .unwrap_or(Value::Null),
                    )
                } else {
                    Answer::Failure {
                        error: body["error"].as_str().unwrap_or("").to_string(),
                        cause: body["cause"].as_str().unwrap_or("").to_string(),
                    }
                };
                let mut s = state.lock().unwrap();
                s.bodies.push_str(&body.to_string());
                s.answers.push((token, answer));
                json!({})
            }
            _ => json!({}),
        };
        let text = reply.to_string();
        let head = format!(
            "HTTP/1.1 200 OK\r\nContent-Type: application/x-amz-json-1.0\r\n\
             x-amzn-RequestId: fake\r\nContent-Length: {}\r\n\r\n",
            text.len()
        );
        if out.write_all(head.as_bytes()).is_err() || out.write_all(text.as_bytes()).is_err() {
            return;
        }
    }
}

/// A `topsail worker` talking to a [`FakeSfn`], with exactly the given
/// environment on top of a minimal one. Stopped with SIGTERM (so it cleans
/// up) when dropped.
pub struct FakeWorker {
    child: Child,
    log: Lines,
    pub tmp: PathBuf,
}

impl FakeWorker {
    pub fn start(dir: &Path, sfn: &FakeSfn, env: &[(&str, &str)], args: &[&str]) -> FakeWorker {
        let tmp = dir.join("worker-tmp");
        std::fs::create_dir_all(&tmp).unwrap();
        let mut cmd = crate::common::command(dir);
        cmd.env_remove("AWS_PROFILE")
            .env_remove("AWS_SESSION_TOKEN")
            .env_remove("TOPSAIL_WORKER_SECRETS")
            .env("AWS_ENDPOINT_URL", &sfn.url)
            .env("AWS_ACCESS_KEY_ID", "AKIAFAKEFAKEFAKE")
            .env("AWS_SECRET_ACCESS_KEY", "aws-secret-of-the-worker")
            .env("AWS_REGION", "us-east-1")
            .env("AWS_EC2_METADATA_DISABLED", "true")
            .env("TMPDIR", &tmp)
            .envs(env.iter().copied())
            .args(["worker", "--activity-arn", ACTIVITY, "--name", "fake"])
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = cmd.spawn().expect("the worker starts");
        let log = Lines::collect(&mut child);
        FakeWorker { child, log, tmp }
    }

    pub fn log(&self) -> String {
        self.log.text()
    }

    /// SIGTERM and wait: the worker drains and removes what it made.
    pub fn stop(&mut self) -> i32 {
        signal(self.child.id(), "TERM");
        let log = &self.log;
        let code = wait_timeout(&mut self.child, Duration::from_secs(30), || {
            format!("the worker did not stop; log:\n{}", log.text())
        });
        // The log threads read to the end.
        std::thread::sleep(Duration::from_millis(50));
        code.unwrap_or(-1)
    }
}

impl Drop for FakeWorker {
    /// Never panics (a test may be failing already): SIGTERM, a few seconds
    /// to clean up, then SIGKILL.
    fn drop(&mut self) {
        if !matches!(self.child.try_wait(), Ok(None)) {
            return;
        }
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let t0 = Instant::now();
        while matches!(self.child.try_wait(), Ok(None)) {
            if t0.elapsed() > Duration::from_secs(10) {
                let _ = self.child.kill();
                let _ = self.child.wait();
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

/// A version 2 task input: `extra` fields replace the defaults.
pub fn task(script: &str, extra: &Value) -> Value {
    let mut t = json!({
        "version": 2, "pipeline": "p", "run_id": "exec-1", "step": "s", "script": script,
    });
    for (k, v) in extra.as_object().expect("an object") {
        t[k] = v.clone();
    }
    t
}

const WAIT: Duration = Duration::from_secs(30);

fn failure(a: &Answer) -> (&str, &str) {
    match a {
        Answer::Failure { error, cause } => (error, cause),
        Answer::Success(out) => panic!("expected a failure, got {out}"),
    }
}

fn success(a: &Answer) -> &Value {
    match a {
        Answer::Success(out) => out,
        Answer::Failure { error, cause } => panic!("expected a success, got {error}: {cause}"),
    }
}

/// The review's reproducer: a task asked for the worker's AWS key and a
/// variable only the worker has, and got both out base64-encoded. Only a
/// secret named with `--secret` reaches a task; the rest are refused by
/// name, and no value appears anywhere.
#[test]
fn worker_hands_a_task_only_the_secrets_its_operator_allows() {
    let t = Test::new();
    let mut sfn = FakeSfn::start();
    let env = [
        ("WORKER_ONLY_SECRET", "only-the-worker-knows-this"),
        ("ALLOWED_TOKEN", "allowed-token-value"),
    ];
    let mut w = FakeWorker::start(
        t.dir.path(),
        &sfn,
        &env,
        &["--allow-host", "--secret", "ALLOWED_TOKEN"],
    );
    let steal = "printf 'V=%s\\n' \"$(printenv AWS_SECRET_ACCESS_KEY WORKER_ONLY_SECRET | base64 | tr -d '\\n')\" >> \"$TOPSAIL_OUTPUT\"";
    let outputs = json!([{"name": "V"}]);
    let mut refused = Vec::new();
    for asked in [
        json!(["AWS_SECRET_ACCESS_KEY"]),
        json!(["WORKER_ONLY_SECRET"]),
        json!(["ALLOWED_TOKEN", "WORKER_ONLY_SECRET"]),
    ] {
        let token = sfn.push(&task(steal, &json!({"secrets": asked, "outputs": outputs})));
        refused.push((asked, token));
    }
    let ok = sfn.push(&task(
        "test \"$ALLOWED_TOKEN\" = allowed-token-value && echo V=got-it >> \"$TOPSAIL_OUTPUT\"",
        &json!({"secrets": ["ALLOWED_TOKEN"], "outputs": outputs}),
    ));
    for (asked, token) in &refused {
        let answer = sfn.answer(token, WAIT);
        let (error, cause) = failure(&answer);
        assert_eq!(error, "topsail.SecretNotAllowed", "{cause}");
        let name = asked.as_array().unwrap().last().unwrap().as_str().unwrap();
        assert!(
            cause.contains(&format!("secret `{name}`"))
                && cause.contains(&format!("--secret {name}"))
                && cause.contains("it serves: ALLOWED_TOKEN"),
            "{cause}"
        );
    }
    assert_eq!(success(&sfn.answer(&ok, WAIT))["outputs"]["V"], "got-it");
    assert_eq!(w.stop(), 0);
    let log = w.log();
    assert!(log.contains("secrets: ALLOWED_TOKEN)"), "{log}");
    let everything = format!("{}{log}", sfn.bodies());
    for (_, value) in env {
        assert!(
            !everything.contains(value),
            "a secret's value leaked:\n{everything}"
        );
    }
    assert!(
        !everything.contains("aws-secret-of-the-worker"),
        "{everything}"
    );
}

/// Nothing by default; `TOPSAIL_WORKER_SECRETS` is the flag's equivalent.
#[test]
fn worker_serves_no_secret_unless_told() {
    let t = Test::new();
    let mut sfn = FakeSfn::start();
    let env = [("A_TOKEN", "a-token-value"), ("B_TOKEN", "b-token-value")];
    let mut none = FakeWorker::start(t.dir.path(), &sfn, &env, &["--allow-host"]);
    let asks = |sfn: &mut FakeSfn, name: &str| {
        sfn.push(&task(
            &format!("echo V=\"${name}\" >> \"$TOPSAIL_OUTPUT\""),
            &json!({"secrets": [name], "outputs": [{"name": "V"}]}),
        ))
    };
    let token = asks(&mut sfn, "A_TOKEN");
    let answer = sfn.answer(&token, WAIT);
    let (error, cause) = failure(&answer);
    assert_eq!(error, "topsail.SecretNotAllowed");
    assert!(cause.contains("it serves no secret"), "{cause}");
    none.stop();
    assert!(none.log().contains("secrets: none)"), "{}", none.log());

    let env_list = [
        ("TOPSAIL_WORKER_SECRETS", "A_TOKEN,C_UNSET"),
        env[0],
        env[1],
    ];
    let mut listed = FakeWorker::start(t.dir.path(), &sfn, &env_list, &["--allow-host"]);
    let a = asks(&mut sfn, "A_TOKEN");
    let b = asks(&mut sfn, "B_TOKEN");
    let c = asks(&mut sfn, "C_UNSET");
    // Allowed, but a secret's value cannot travel in an output.
    let answer = sfn.answer(&a, WAIT);
    assert_eq!(failure(&answer).0, "topsail.SecretInOutput");
    let answer = sfn.answer(&b, WAIT);
    assert_eq!(failure(&answer).0, "topsail.SecretNotAllowed");
    // Allowed but not in the worker's environment.
    let answer = sfn.answer(&c, WAIT);
    assert_eq!(failure(&answer).0, "topsail.SecretMissing");
    listed.stop();
    let log = listed.log();
    assert!(log.contains("secrets: A_TOKEN C_UNSET (not set))"), "{log}");
    assert!(!sfn.bodies().contains("token-value"), "{}", sfn.bodies());
    assert!(!log.contains("token-value"), "{log}");
}

/// A secret name the language could not declare is a usage error.
#[test]
fn worker_secret_names_are_checked() {
    let r = Test::new()
        .args(&["worker", "--activity-arn", ACTIVITY, "--secret", "A-B"])
        .run();
    assert_eq!(r.status, 2, "{}", r.stderr);
    assert!(
        r.stderr
            .contains("--secret A-B: a secret name is `[A-Za-z_][A-Za-z0-9_]*`"),
        "{}",
        r.stderr
    );
}

/// A host step on a worker starts from a minimal environment, not the
/// worker's (which holds its AWS credentials and the secrets it serves).
#[test]
fn a_host_step_on_a_worker_does_not_inherit_the_workers_environment() {
    let t = Test::new();
    let mut sfn = FakeSfn::start();
    let env = [("WORKER_ONLY_SECRET", "only-the-worker-knows-this")];
    let mut w = FakeWorker::start(
        t.dir.path(),
        &sfn,
        &env,
        &["--allow-host", "--secret", "WORKER_ONLY_SECRET"],
    );
    let token = sfn.push(&task(
        "echo \"NAMES=$(env | cut -d= -f1 | sort | tr '\\n' ' ')\" >> \"$TOPSAIL_OUTPUT\"\n\
         echo \"HAS_PATH=$PATH\" >> \"$TOPSAIL_OUTPUT\"",
        &json!({"env": {"MINE": "x"}, "outputs": [{"name": "NAMES"}, {"name": "HAS_PATH"}]}),
    ));
    let answer = sfn.answer(&token, WAIT);
    let out = &success(&answer)["outputs"];
    w.stop();
    let names: Vec<&str> = out["NAMES"].as_str().unwrap().split_whitespace().collect();
    for absent in [
        "AWS_SECRET_ACCESS_KEY",
        "AWS_ACCESS_KEY_ID",
        "AWS_ENDPOINT_URL",
        "WORKER_ONLY_SECRET",
        "NO_COLOR",
    ] {
        assert!(
            !names.contains(&absent),
            "{absent} reached the step: {names:?}"
        );
    }
    for present in ["PATH", "MINE", "TOPSAIL_OUTPUT", "TOPSAIL_RUN_ID", "TMPDIR"] {
        assert!(names.contains(&present), "{present} missing: {names:?}");
    }
    assert_eq!(out["HAS_PATH"], std::env::var("PATH").unwrap());
}

/// Names from the task input reach the attempt directory's path, the
/// environment and container labels: a crafted one is refused before
/// anything is made, and nothing appears outside the worker's temp dir.
#[test]
fn task_input_names_that_could_reach_a_path_are_refused() {
    let t = Test::new();
    let mut sfn = FakeSfn::start();
    let mut w = FakeWorker::start(t.dir.path(), &sfn, &[], &["--allow-host"]);
    let before = entries(t.dir.path());
    let script = "touch \"$TOPSAIL_OUTPUT.ran\"; echo ran > /dev/null";
    let cases = [
        json!({"run_id": "hold-s-1/../../outside/escaped"}),
        json!({"run_id": ".."}),
        json!({"run_id": "a\nb"}),
        json!({"run_id": ""}),
        json!({"pipeline": "../p"}),
        json!({"step": "s/../../x"}),
        json!({"step": ".."}),
        json!({"outputs": [{"name": "../o"}]}),
        json!({"outputs": [{"name": "o", "key": "a.b"}]}),
        json!({"env": {"A=B": "x"}}),
        json!({"env": {"LD_PRELOAD\u{0}": "x"}}),
        json!({"secrets": ["X;Y"]}),
        json!({"loop_var": "a/b"}),
        json!({"values": {"item": "a\u{0}b"}}),
    ];
    let tokens: Vec<(Value, String)> = cases
        .iter()
        .map(|c| (c.clone(), sfn.push(&task(script, c))))
        .collect();
    for (case, token) in &tokens {
        let answer = sfn.answer(token, WAIT);
        let (error, cause) = failure(&answer);
        assert_eq!(error, "topsail.BadTaskInput", "{case}: {cause}");
        assert!(cause.contains("the task input's"), "{case}: {cause}");
    }
    // A foreach item is a value: anything goes, and the directory stays put.
    let odd = sfn.push(&task(
        "if [ \"$(dirname \"$(dirname \"$(dirname \"$TOPSAIL_OUTPUT\")\")\")\" = \"$WT\" ]; then echo OK=inside >> \"$TOPSAIL_OUTPUT\"; fi",
        &json!({
            "run_id": "exec.1..2", "values": {"item": "../../../outside/escaped"},
            "env": {"WT": w.tmp.display().to_string()}, "outputs": [{"name": "OK"}],
        }),
    ));
    assert_eq!(success(&sfn.answer(&odd, WAIT))["outputs"]["OK"], "inside");
    assert_eq!(w.stop(), 0);
    assert_eq!(entries(t.dir.path()), before, "{}", w.log());
    assert!(entries(&w.tmp).is_empty(), "left in the worker's tmp");
    assert!(!t.path("outside").exists());
}

fn entries(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

/// A pipeline step (local) or task (worker) that writes `V=real`, says
/// where its output file is, then waits until the test has tried to
/// rewrite it as `nobody`.
const VICTIM: &str = "echo V=real >> \"$TOPSAIL_OUTPUT\"\n\
    echo \"$TOPSAIL_OUTPUT\" > \"$SIGNAL/where.tmp\" && mv \"$SIGNAL/where.tmp\" \"$SIGNAL/where\"\n\
    i=0; while [ ! -e \"$SIGNAL/tried\" ] && [ $i -lt 300 ]; do sleep 0.1; i=$((i+1)); done\n";

/// As `nobody`, try to append to the output file `where` names, to make a
/// file in the attempt's TMPDIR next to it, and to read it: what succeeded.
fn attack_as_nobody(signal: &Path) -> Vec<String> {
    let deadline = Instant::now() + WAIT;
    let where_ = signal.join("where");
    while !where_.exists() {
        assert!(
            Instant::now() < deadline,
            "the step never said where its output is"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let output = std::fs::read_to_string(&where_).unwrap().trim().to_string();
    let tmp = Path::new(&output).with_file_name("tmp");
    let mut allowed = Vec::new();
    for (what, script) in [
        (
            "write the output",
            format!("echo V=evil-from-nobody >> '{output}'"),
        ),
        ("read the output", format!("cat '{output}'")),
        ("write in TMPDIR", format!("touch '{}/evil'", tmp.display())),
    ] {
        let out = Command::new("setpriv")
            .args([
                "--reuid=65534",
                "--regid=65534",
                "--clear-groups",
                "sh",
                "-c",
                &script,
            ])
            .output()
            .expect("setpriv runs (the tests run as root)");
        if out.status.success() {
            allowed.push(format!("nobody could {what} ({script})"));
        }
    }
    // The step goes on either way, so that it ends before the verdict.
    std::fs::write(signal.join("tried"), "").unwrap();
    allowed
}

/// A world-traversable temp base, as /tmp is (a test's own temp dir is
/// 0700, which would hide the problem).
fn shared_tmp(t: &Test) -> PathBuf {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(t.dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let tmp = t.path("tmp");
    std::fs::create_dir_all(&tmp).unwrap();
    std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(0o1777)).unwrap();
    let signal = t.path("signal");
    std::fs::create_dir_all(&signal).unwrap();
    std::fs::set_permissions(&signal, std::fs::Permissions::from_mode(0o777)).unwrap();
    tmp
}

/// The review's reproducer: `nobody` rewrote a step's output while it ran
/// and `V=evil-from-nobody` reached the next step. Attempt directories are
/// now reachable only by topsail's user (and, inside, the container's).
#[test]
fn other_users_cannot_touch_a_running_steps_attempt_dir() {
    crate::common::require_docker();
    for image in [Some(IMAGE), None] {
        let t = Test::new();
        let tmp = shared_tmp(&t);
        let signal = t.path("signal");
        let image_line = image
            .map(|i| format!("    image \"{i}\"\n"))
            .unwrap_or_default();
        let body: String = VICTIM.lines().flat_map(|l| ["        ", l, "\n"]).collect();
        let pipeline = format!(
            "a:\n{image_line}    env SIGNAL = \"{}\"\n    output V\n    run:\n{body}\nb: a\n    run echo \"got={{{{ a.V }}}}\"\n",
            if image.is_some() {
                "/workspace/signal".to_string()
            } else {
                signal.display().to_string()
            },
        );
        let t = t.file("pipeline.topsail", &pipeline);
        let child = crate::common::command(t.dir.path())
            .arg("run")
            .env("TMPDIR", &tmp)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let allowed = attack_as_nobody(&signal);
        let out = child.wait_with_output().unwrap();
        assert!(allowed.is_empty(), "{image:?}: {allowed:?}");
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "{image:?}: {stdout}{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(stdout.contains("got=real"), "{image:?}: {stdout}");
        assert!(!stdout.contains("evil"), "{image:?}: {stdout}");
        assert!(
            entries(&tmp).is_empty(),
            "{image:?}: left in tmp: {:?}",
            entries(&tmp)
        );
    }
}

/// The same on a worker: the task's output is its own.
#[test]
fn other_users_cannot_touch_a_running_tasks_attempt_dir() {
    crate::common::require_docker();
    for image in [Some(IMAGE), None] {
        let t = Test::new();
        let tmp = shared_tmp(&t);
        let signal = t.path("signal");
        let mut sfn = FakeSfn::start();
        let mut w = FakeWorker::start(
            t.dir.path(),
            &sfn,
            &[("TMPDIR", tmp.to_str().unwrap())],
            &["--allow-host", "--allow-image", "topsail-test/*"],
        );
        let signal_in = if image.is_some() {
            "/workspace/signal".to_string()
        } else {
            signal.display().to_string()
        };
        let token = sfn.push(&task(
            VICTIM,
            &json!({"image": image, "env": {"SIGNAL": signal_in}, "outputs": [{"name": "V"}]}),
        ));
        let allowed = attack_as_nobody(&signal);
        let answer = sfn.answer(&token, WAIT);
        w.stop();
        assert!(allowed.is_empty(), "{image:?}: {allowed:?}");
        assert_eq!(
            success(&answer)["outputs"]["V"],
            "real",
            "{image:?}: {}",
            w.log()
        );
        assert!(
            entries(&tmp).is_empty(),
            "{image:?}: left in tmp: {:?}",
            entries(&tmp)
        );
    }
}
