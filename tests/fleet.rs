//! Worker fleets (issue 16): `queue` and `aws` in both forms, queues routed
//! to their own activities and workers on the Step Functions emulator, one
//! worker serving two pipelines, `--once` / `--idle-timeout`, and AWS
//! credentials for steps (STS from the emulator) that never show.

use std::path::Path;
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::common::process::{Lines, wait_timeout};
use crate::common::records::record;
use crate::common::{Test, unique, unit};
use crate::support::{Follow, ROLE, run, topsail};

const IMAGE: &str = "topsail-test/busybox:latest";
const PUBLISHER: &str = "arn:aws:iam::123456789012:role/publisher";

/// `topsail worker ARGS...` in `dir`, killed when dropped.
struct FleetWorker {
    child: Child,
    log: Lines,
}

impl FleetWorker {
    fn start(dir: &Path, args: &[&str]) -> FleetWorker {
        let tmp = dir.join("worker-tmp");
        std::fs::create_dir_all(&tmp).unwrap();
        let mut child = topsail(dir)
            .env("TMPDIR", &tmp)
            .arg("worker")
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("the worker starts");
        let log = Lines::collect(&mut child);
        FleetWorker { child, log }
    }

    fn log(&self) -> String {
        self.log.text()
    }

    fn wait(&mut self, timeout: Duration) -> i32 {
        let log = &self.log;
        wait_timeout(&mut self.child, timeout, || {
            format!("worker did not exit; log:\n{}", log.text())
        })
        .unwrap_or(-1)
    }

    fn wait_for(&self, text: &str, timeout: Duration) {
        let t0 = Instant::now();
        while !self.log().contains(text) {
            assert!(
                t0.elapsed() < timeout,
                "worker did not log `{text}`; log:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for FleetWorker {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn deploy_out(dir: &Path, file: &str, machine: &str) -> String {
    let (code, out, err) = run(
        dir,
        &["deploy", file, "--name", machine, "--role-arn", ROLE],
    );
    assert_eq!(code, 0, "deploy failed:\n{out}\n{err}");
    out
}

/// `start --follow`: exit code and output.
fn follow(dir: &Path, file: &str, machine: &str, exec: &str) -> (i32, String) {
    Follow::start(dir, file, machine, exec, &[]).finish(Duration::from_mins(3))
}

fn compile(dir: &Path, file: &str) -> Value {
    let (code, out, err) = run(dir, &["compile", file]);
    assert_eq!(code, 0, "{out}{err}");
    serde_json::from_str(&out).unwrap()
}

/// Every Task state of a definition, by its step (`Parameters.step`).
fn tasks(def: &Value, out: &mut Vec<(String, Value)>) {
    match def {
        Value::Object(m) => {
            if m.get("Type") == Some(&Value::from("Task"))
                && let Some(step) = m["Parameters"]["step"].as_str()
            {
                out.push((step.to_string(), def.clone()));
            }
            for v in m.values() {
                tasks(v, out);
            }
        }
        Value::Array(a) => a.iter().for_each(|v| tasks(v, out)),
        _ => {}
    }
}

const QUEUED: &str = "pipeline fleetq

queue \"main\"

build:
    output WHO
    run echo \"WHO=built\" >> \"$TOPSAIL_OUTPUT\"

train: build
    queue \"gpu\"
    aws role \"arn:aws:iam::123456789012:role/publisher\"
    run echo \"training on {{ build.WHO }}\"
";

#[test]
fn queue_and_aws_read_the_same_in_both_forms_and_route_tasks() {
    let t = Test::new().file("p.topsail", QUEUED);
    let dir = t.dir.path();
    let def = compile(dir, "p.topsail");
    let mut found = Vec::new();
    tasks(&def, &mut found);
    let res = |s: &str| {
        found
            .iter()
            .find(|(n, _)| n == s)
            .map(|(_, t)| t["Resource"].as_str().unwrap().to_string())
            .unwrap()
    };
    assert!(
        res("build").ends_with(":activity:topsail--main"),
        "{}",
        res("build")
    );
    assert!(
        res("train").ends_with(":activity:topsail--gpu"),
        "{}",
        res("train")
    );
    let train = &found.iter().find(|(n, _)| n == "train").unwrap().1;
    assert_eq!(train["Parameters"]["aws"]["role"], PUBLISHER);
    assert!(found.iter().find(|(n, _)| n == "build").unwrap().1["Parameters"]["aws"].is_null());

    // fmt keeps it; convert gives the YAML keys, which read back the same.
    let (code, out, err) = run(dir, &["fmt", "--check", "p.topsail"]);
    assert_eq!(code, 0, "{out}{err}");
    let (code, yaml, err) = run(dir, &["convert", "p.topsail", "--to", "yaml"]);
    assert_eq!(code, 0, "{yaml}{err}");
    assert!(yaml.contains("queue: main"), "{yaml}");
    assert!(yaml.contains("queue: gpu"), "{yaml}");
    assert!(
        yaml.contains("aws: {role: ") && yaml.contains(PUBLISHER),
        "{yaml}"
    );
    std::fs::write(dir.join("p.yaml"), &yaml).unwrap();
    assert_eq!(compile(dir, "p.yaml"), def);
}

#[test]
fn bad_queues_and_roles_are_diagnosed() {
    Test::new()
        .pipeline(
            "pipeline p\n\na:\n    queue \"no spaces\"\n    aws role \"arn:aws:iam::123:user/x\"\n    run true\n",
        )
        .args(&["check"])
        .status(1)
        .stderr_contains("`no spaces` is not a valid queue name")
        .stderr_contains("topsail::bad-name")
        .stderr_contains("is not an IAM role ARN")
        .run();
    Test::new()
        .pipeline("pipeline p\n\nb:\n    aws role\n    run true\n")
        .args(&["check"])
        .status(1)
        .stderr_contains("aws role \"ARN\"")
        .run();
    Test::new()
        .file(
            "p.yaml",
            "pipeline: p\nsteps:\n  a:\n    aws: yes please\n    run: 'true'\n",
        )
        .args(&["check", "p.yaml"])
        .status(1)
        .stderr_contains("`true` or `{role: ARN}`")
        .run();
}

#[test]
fn two_queues_are_served_by_their_own_workers() {
    let t = Test::new().file(
        "p.topsail",
        &QUEUED.replace(
            "    aws role \"arn:aws:iam::123456789012:role/publisher\"\n",
            "",
        ),
    );
    let dir = t.dir.path();
    let machine = unique("fleetq");
    let out = deploy_out(dir, "p.topsail", &machine);
    assert!(out.contains("queue gpu activity created"), "{out}");
    assert!(out.contains("queue main activity created"), "{out}");
    let main = FleetWorker::start(
        dir,
        &[
            "p.topsail",
            "--state-machine",
            &machine,
            "--queue",
            "main",
            "--name",
            "w-main",
            "--allow-host",
        ],
    );
    let gpu = FleetWorker::start(
        dir,
        &[
            "p.topsail",
            "--state-machine",
            &machine,
            "--queue",
            "gpu",
            "--name",
            "w-gpu",
            "--allow-host",
        ],
    );
    let exec = unique("ex");
    let (code, out) = follow(dir, "p.topsail", &machine, &exec);
    assert_eq!(code, 0, "{out}\nmain:\n{}\ngpu:\n{}", main.log(), gpu.log());
    let r = record(dir, &exec);
    assert_eq!(unit(&r, "train")["status"], "succeeded", "{r:#}");
    assert!(out.contains("started on worker w-main"), "{out}");
    assert!(out.contains("started on worker w-gpu"), "{out}");
    assert!(main.log().contains("build | started"), "{}", main.log());
    assert!(!main.log().contains("train"), "{}", main.log());
    assert!(gpu.log().contains("train | started"), "{}", gpu.log());
    assert!(!gpu.log().contains("build |"), "{}", gpu.log());

    // A queue no step names is refused before any polling.
    let (code, _, err) = run(
        dir,
        &[
            "worker",
            "p.topsail",
            "--state-machine",
            &machine,
            "--queue",
            "arm",
        ],
    );
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains("no step of the pipeline names queue `arm`"),
        "{err}"
    );
    assert!(err.contains("queues: gpu, main"), "{err}");
}

#[test]
fn one_worker_serves_two_pipelines_then_idles_out() {
    let a = "pipeline fa\n\nsay:\n    output X\n    run echo \"X=a\" >> \"$TOPSAIL_OUTPUT\"\n";
    let b = "pipeline fb\n\nsay:\n    output X\n    run echo \"X=b\" >> \"$TOPSAIL_OUTPUT\"\n";
    let t = Test::new().file("a.topsail", a).file("b.topsail", b);
    let dir = t.dir.path();
    let (ma, mb) = (unique("fa"), unique("fb"));
    deploy_out(dir, "a.topsail", &ma);
    deploy_out(dir, "b.topsail", &mb);
    let arn_of = |m: &str| format!("arn:aws:states:us-east-1:123456789012:activity:topsail-{m}");
    let mut w = FleetWorker::start(
        dir,
        &[
            "--activity-arn",
            &arn_of(&ma),
            "--activity-arn",
            &arn_of(&mb),
            "--concurrency",
            "2",
            "--name",
            "w-both",
            "--allow-host",
            "--idle-timeout",
            "10s",
        ],
    );
    w.wait_for("polling", Duration::from_secs(20));
    let (ea, eb) = (unique("ea"), unique("eb"));
    let (ca, oa) = follow(dir, "a.topsail", &ma, &ea);
    let (cb, ob) = follow(dir, "b.topsail", &mb, &eb);
    assert_eq!((ca, cb), (0, 0), "{oa}\n{ob}\n{}", w.log());
    assert_eq!(unit(&record(dir, &ea), "say")["outputs"]["X"], "a");
    assert_eq!(unit(&record(dir, &eb), "say")["outputs"]["X"], "b");
    let t0 = Instant::now();
    // A stopping worker finishes its outstanding polls first (up to 60 s each, at once).
    assert_eq!(w.wait(Duration::from_secs(90)), 0, "{}", w.log());
    // Idle for 10 s, then at most one outstanding poll (60 s) to finish.
    assert!(t0.elapsed() < Duration::from_secs(80), "{:?}", t0.elapsed());
    assert!(w.log().contains("idle for 10s: stopping"), "{}", w.log());
}

/// `GET path` on the worker's metrics endpoint: the status line and body.
fn scrape(addr: &str, path: &str) -> (String, String) {
    use std::io::{Read, Write};
    let mut conn = std::net::TcpStream::connect(addr).expect("the metrics endpoint answers");
    write!(conn, "GET {path} HTTP/1.1\r\nHost: {addr}\r\n\r\n").unwrap();
    let mut answer = String::new();
    conn.read_to_string(&mut answer).unwrap();
    let (head, body) = answer.split_once("\r\n\r\n").expect("an HTTP answer");
    (
        head.lines().next().unwrap_or("").to_string(),
        body.to_string(),
    )
}

#[test]
fn metrics_count_the_tasks_run_and_the_log_is_json_lines() {
    let p = "pipeline fmetrics\n\nfine:\n    run echo fine\n\nbad: fine\n    run exit 3\n";
    let t = Test::new().file("p.topsail", p);
    let dir = t.dir.path();
    let machine = unique("fmetrics");
    deploy_out(dir, "p.topsail", &machine);
    let w = FleetWorker::start(
        dir,
        &[
            "p.topsail",
            "--state-machine",
            &machine,
            "--name",
            "w-metrics",
            "--allow-host",
            "--metrics",
            "127.0.0.1:0",
            "--log-format",
            "json",
        ],
    );
    w.wait_for("polling", Duration::from_secs(20));
    let log = w.log();
    let addr = log
        .split("metrics on http://")
        .nth(1)
        .and_then(|r| r.split('/').next())
        .expect("the endpoint's address is logged")
        .to_string();
    assert_eq!(
        scrape(&addr, "/healthz"),
        ("HTTP/1.1 200 OK".to_string(), "ok\n".to_string())
    );
    let (code, out) = follow(dir, "p.topsail", &machine, &unique("em"));
    assert_ne!(code, 0, "{out}\n{}", w.log());
    // The failed task is answered before the execution fails.
    let (status, text) = scrape(&addr, "/metrics");
    assert_eq!(status, "HTTP/1.1 200 OK");
    for want in [
        "topsail_worker_tasks_finished_total{outcome=\"succeeded\",error=\"\"} 1",
        "topsail_worker_tasks_finished_total{outcome=\"failed\",error=\"topsail.ScriptFailed\"} 1",
        "topsail_worker_tasks_in_flight 0",
        "topsail_worker_task_seconds_count 2",
    ] {
        assert!(text.contains(want), "`{want}` missing:\n{text}");
    }
    let polls: u64 = text
        .lines()
        .find_map(|l| l.strip_prefix("topsail_worker_poll_seconds_count "))
        .and_then(|n| n.trim().parse().ok())
        .expect("a poll count");
    assert!(polls >= 2, "{text}");
    assert_eq!(scrape(&addr, "/nope").0, "HTTP/1.1 404 Not Found");
    // `--log-format json`: every line of the worker's output is one JSON
    // object, its own events and its steps' lines alike.
    let log = w.log();
    drop(w);
    let mut lines = 0;
    let mut step_line = false;
    for line in log.lines().filter(|l| !l.is_empty()) {
        let v: Value = serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}"));
        assert_eq!(v["fields"]["worker"], "w-metrics", "{line}");
        assert!(v["fields"]["message"].is_string(), "{line}");
        assert_eq!(v["level"], "INFO", "{line}");
        step_line |= v["fields"]["unit"]
            .as_str()
            .is_some_and(|u| u.ends_with(" fine"))
            && v["fields"]["message"] == "fine";
        lines += 1;
    }
    assert!(step_line, "the step's line is in the log: {log}");
    assert!(lines >= 2, "{log}");
}

#[test]
fn metrics_listen_on_loopback_only() {
    let t = Test::new();
    let (code, _, err) = run(
        t.dir.path(),
        &[
            "worker",
            "--activity-arn",
            "arn:aws:states:us-east-1:123456789012:activity:x",
            "--metrics",
            "0.0.0.0:9464",
        ],
    );
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("not a loopback address"), "{err}");
}

#[test]
fn once_serves_one_task_then_exits() {
    let p = "pipeline fonce\n\none:\n    run echo first\n\ntwo: one\n    run echo second\n";
    let t = Test::new().file("p.topsail", p);
    let dir = t.dir.path();
    let machine = unique("fonce");
    deploy_out(dir, "p.topsail", &machine);
    let exec = unique("ex");
    let follow = Follow::start(dir, "p.topsail", &machine, &exec, &[]);
    let mut first = FleetWorker::start(
        dir,
        &[
            "p.topsail",
            "--state-machine",
            &machine,
            "--once",
            "--name",
            "w-1",
            "--allow-host",
        ],
    );
    assert_eq!(first.wait(Duration::from_mins(2)), 0, "{}", first.log());
    // The log is read by a thread of its own: let it catch up.
    first.wait_for("one | succeeded", Duration::from_secs(10));
    assert!(!first.log().contains("two |"), "{}", first.log());
    let mut second = FleetWorker::start(
        dir,
        &[
            "p.topsail",
            "--state-machine",
            &machine,
            "--once",
            "--name",
            "w-2",
            "--allow-host",
        ],
    );
    assert_eq!(second.wait(Duration::from_mins(2)), 0, "{}", second.log());
    second.wait_for("two | succeeded", Duration::from_secs(10));
    let (code, out) = follow.finish(Duration::from_mins(2));
    assert_eq!(code, 0, "{out}");
}

const CREDS: &str = "pipeline fcreds

role_host:
    aws role \"arn:aws:iam::123456789012:role/publisher\"
    timeout 20m
    output KEY
    output TOKEN
    output REGION
    run:
        echo \"KEY=$(echo \"$AWS_ACCESS_KEY_ID\" | cut -c1-4)\" >> \"$TOPSAIL_OUTPUT\"
        echo \"TOKEN=${AWS_SESSION_TOKEN:+set}\" >> \"$TOPSAIL_OUTPUT\"
        echo \"REGION=$AWS_REGION\" >> \"$TOPSAIL_OUTPUT\"
        echo \"leak: $AWS_SECRET_ACCESS_KEY\"

role_box:
    image \"topsail-test/busybox:latest\"
    aws role \"arn:aws:iam::123456789012:role/publisher\"
    output KEY
    run:
        echo \"KEY=$(echo \"$AWS_ACCESS_KEY_ID\" | cut -c1-4)\" >> \"$TOPSAIL_OUTPUT\"
        test -n \"$AWS_SESSION_TOKEN\"
        echo \"leak: $AWS_SECRET_ACCESS_KEY\"

plain:
    output SEES
    run echo \"SEES=${AWS_SECRET_ACCESS_KEY:-nothing}\" >> \"$TOPSAIL_OUTPUT\"
";

#[test]
fn aws_role_steps_get_their_roles_credentials_and_nothing_shows() {
    crate::common::require_docker();
    let t = Test::new().file("p.topsail", CREDS);
    let dir = t.dir.path();
    let machine = unique("fcreds");
    deploy_out(dir, "p.topsail", &machine);
    // The worker's own key is a secret nobody else may see.
    let mut cmd_args = vec![
        "p.topsail",
        "--state-machine",
        &machine,
        "--name",
        "w-creds",
        "--allow-host",
        "--allow-image",
        IMAGE,
        "--allow-role",
        "arn:aws:iam::123456789012:role/*",
        "--concurrency",
        "3",
    ];
    let w = {
        let tmp = dir.join("worker-tmp");
        std::fs::create_dir_all(&tmp).unwrap();
        let mut child = topsail(dir)
            .env("TMPDIR", &tmp)
            .env("AWS_SECRET_ACCESS_KEY", "worker-secret-value")
            .arg("worker")
            .args(cmd_args.drain(..))
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let log = Lines::collect(&mut child);
        FleetWorker { child, log }
    };
    let exec = unique("ex");
    let (code, out) = follow(dir, "p.topsail", &machine, &exec);
    assert_eq!(code, 0, "{out}\n{}", w.log());
    let r = record(dir, &exec);
    assert_eq!(unit(&r, "role_host")["outputs"]["KEY"], "ASIA", "{r:#}");
    assert_eq!(unit(&r, "role_host")["outputs"]["TOKEN"], "set");
    assert_eq!(unit(&r, "role_host")["outputs"]["REGION"], "us-east-1");
    assert_eq!(unit(&r, "role_box")["outputs"]["KEY"], "ASIA", "{r:#}");
    assert_eq!(unit(&r, "plain")["outputs"]["SEES"], "nothing");
    let log = w.log();
    assert!(log.contains("leak: ***"), "{log}");
    assert!(!log.contains("worker-secret-value"), "{log}");
    let everything = format!(
        "{log}{out}{}{}",
        serde_json::to_string(&r).unwrap(),
        serde_json::to_string(&compile(dir, "p.topsail")).unwrap()
    );
    for line in log.lines().filter(|l| l.contains("leak:")) {
        assert!(line.ends_with("leak: ***"), "{line}");
    }
    assert!(!everything.contains("worker-secret-value"));
}

/// `topsail run` gives `aws` steps credentials as a worker does: a role's
/// from STS (the emulator's), or the runner's own chain, masked everywhere.
#[test]
fn a_local_run_gives_aws_steps_their_credentials_masked() {
    crate::common::require_docker();
    let p = format!(
        "{CREDS}\nown:\n    aws\n    output LEN\n    run echo \"LEN=${{#AWS_ACCESS_KEY_ID}}\" >> \"$TOPSAIL_OUTPUT\"\n\nkeep: role_host\n    run printf %s \"$AWS_SECRET_ACCESS_KEY\" > role-secret.txt\n    aws role \"arn:aws:iam::123456789012:role/publisher\"\n"
    );
    let t = Test::new().file("p.topsail", &p);
    let dir = t.dir.path();
    let (code, out, err) = run(dir, &["run", "p.topsail"]);
    assert_eq!(code, 0, "{out}\n{err}");
    let r = crate::common::records::run_json(&t);
    assert_eq!(unit(&r, "role_host")["outputs"]["KEY"], "ASIA", "{r:#}");
    assert_eq!(unit(&r, "role_host")["outputs"]["TOKEN"], "set");
    assert_eq!(unit(&r, "role_host")["outputs"]["REGION"], "us-east-1");
    assert_eq!(unit(&r, "role_box")["outputs"]["KEY"], "ASIA", "{r:#}");
    // No role: the runner's own credentials (the test's static `testing`).
    assert_eq!(unit(&r, "own")["outputs"]["LEN"], "7", "{r:#}");
    let secret = std::fs::read_to_string(dir.join("role-secret.txt")).unwrap();
    assert!(secret.len() >= 16 && secret != "testing", "{secret}");
    for line in out.lines().filter(|l| l.contains("leak:")) {
        assert!(line.ends_with("leak: ***"), "{line}");
    }
    let everything = format!("{out}{err}{}", serde_json::to_string(&r).unwrap());
    assert!(!everything.contains(&secret), "the role's secret key shows");
}

#[test]
fn roles_and_own_credentials_need_the_operators_leave() {
    let own = format!(
        "pipeline {}\n\nown:\n    aws\n    run true\n",
        unique("fown")
    );
    let role = format!(
        "pipeline {}\n\nrole:\n    aws role \"arn:aws:iam::123456789012:role/admin\"\n    run true\n",
        unique("frole")
    );
    let t = Test::new()
        .file("own.topsail", &own)
        .file("role.topsail", &role);
    let dir = t.dir.path();
    let machine = |text: &str| text.lines().next().unwrap()["pipeline ".len()..].to_string();
    let (m_own, m_role) = (machine(&own), machine(&role));
    deploy_out(dir, "own.topsail", &m_own);
    deploy_out(dir, "role.topsail", &m_role);
    // Two FILEs: one worker serves both pipelines' activities.
    let w = FleetWorker::start(
        dir,
        &[
            "own.topsail",
            "role.topsail",
            "--name",
            "w-deny",
            "--allow-host",
            "--allow-role",
            "arn:aws:iam::123456789012:role/ci-*",
            "--concurrency",
            "2",
        ],
    );
    for (file, m, step) in [
        ("own.topsail", &m_own, "own"),
        ("role.topsail", &m_role, "role"),
    ] {
        let exec = unique("ex");
        let (code, out) = follow(dir, file, m, &exec);
        assert_eq!(code, 1, "{out}\n{}", w.log());
        let r = record(dir, &exec);
        assert_eq!(unit(&r, step)["error"], "topsail.AwsCredentials", "{r:#}");
    }
    let log = w.log();
    assert!(log.contains("only with --allow-aws"), "{log}");
    assert!(
        log.contains("--allow-role 'arn:aws:iam::123456789012:role/admin'"),
        "{log}"
    );
}

#[test]
fn compile_to_iam_prints_least_privilege_policies() {
    let t = Test::new().file("p.topsail", QUEUED);
    let (code, out, err) = run(t.dir.path(), &["compile", "p.topsail", "--to", "iam"]);
    assert_eq!(code, 0, "{out}{err}");
    let v: Value = serde_json::from_str(&out).unwrap();
    let worker = &v["worker"]["Statement"];
    assert_eq!(
        worker[0]["Resource"],
        serde_json::json!([
            "arn:aws:states:REGION:ACCOUNT:activity:topsail-fleetq",
            "arn:aws:states:REGION:ACCOUNT:activity:topsail-fleetq--gpu",
            "arn:aws:states:REGION:ACCOUNT:activity:topsail-fleetq--main"
        ])
    );
    assert_eq!(worker[3]["Action"], serde_json::json!(["sts:AssumeRole"]));
    assert_eq!(worker[3]["Resource"], serde_json::json!([PUBLISHER]));
    assert_eq!(
        v["starter"]["Statement"][0]["Resource"],
        serde_json::json!(["arn:aws:states:REGION:ACCOUNT:stateMachine:fleetq"])
    );
}

/// `compile --to cloudformation` for every example: cfn-lint passes it, and
/// its state machine definition, placeholders put back, is `compile --to asl`.
#[test]
fn every_examples_cloudformation_template_lints_and_matches_its_asl() {
    let lint = crate::common::repo().join(".venv/bin/cfn-lint");
    assert!(
        lint.exists(),
        "cfn-lint missing: run scripts/setup/python.sh"
    );
    let t = Test::new();
    let dir = t.dir.path();
    let mut templates = Vec::new();
    for example in crate::common::examples() {
        let file = example.to_str().unwrap();
        let (code, out, err) = run(dir, &["compile", file, "--to", "cloudformation"]);
        assert_eq!(code, 0, "{file}: {err}");
        let template: Value = serde_json::from_str(&out).unwrap();
        let sm = &template["Resources"]["StateMachine"]["Properties"];
        let mut def = serde_json::to_string(&sm["Definition"]).unwrap();
        let subs = sm["DefinitionSubstitutions"].as_object().unwrap();
        assert!(subs.contains_key("TopsailActivity"), "{file}");
        let activity = "arn:aws:states:REGION:ACCOUNT:activity:topsail";
        def = def.replace("${TopsailActivity}", activity).replace(
            "${TopsailApprovalQueue}",
            "https://sqs.REGION.amazonaws.com/ACCOUNT/topsail-approvals",
        );
        let queues: Vec<String> = template["Outputs"]
            .as_object()
            .unwrap()
            .iter()
            .filter(|(k, _)| k.starts_with("QueueActivity"))
            .map(|(_, v)| v["Description"].as_str().unwrap()["queue ".len()..].to_string())
            .collect();
        for (i, q) in queues.iter().enumerate() {
            def = def.replace(
                &format!("${{TopsailQueueActivity{i}}}"),
                &format!("{activity}--{q}"),
            );
        }
        let (code, asl, err) = run(dir, &["compile", file, "--to", "asl"]);
        assert_eq!(code, 0, "{file}: {err}");
        let asl: Value = serde_json::from_str(&asl).unwrap();
        let def: Value = serde_json::from_str(&def).unwrap();
        assert_eq!(def, asl, "{file}");
        let name = example
            .file_name()
            .unwrap()
            .to_string_lossy()
            .replace('.', "-");
        let path = dir.join(format!("{name}.template.json"));
        std::fs::write(&path, &out).unwrap();
        templates.push(path);
    }
    assert!(templates.len() >= 5, "{templates:?}");
    let out = std::process::Command::new(&lint)
        .args(&templates)
        .output()
        .expect("cfn-lint runs");
    assert!(
        out.status.success(),
        "cfn-lint:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

const BOXED: &str = "pipeline fbox

on_host:
    output WHERE
    run:
        echo scratch > \"$TMPDIR/h.txt\"
        echo \"from host\" > host.txt
        echo \"WHERE=$(pwd)\" >> \"$TOPSAIL_OUTPUT\"

in_box: on_host
    image \"topsail-test/busybox:latest\"
    output SEEN
    output TMP
    run:
        echo scratch > \"$TMPDIR/b.txt\"
        echo \"TMP=$(cat \"$TMPDIR/b.txt\")\" >> \"$TOPSAIL_OUTPUT\"
        echo \"from box\" > box.txt
        echo \"SEEN=$(cat host.txt)\" >> \"$TOPSAIL_OUTPUT\"
";

/// `docker run --init` of the worker image with the socket and one host
/// directory mounted; removed when dropped.
struct BoxedWorker {
    name: String,
    child: Child,
    log: Lines,
}

impl BoxedWorker {
    fn start(host_dir: Option<&Path>, args: &[&str]) -> BoxedWorker {
        let name = unique("topsail-fleet-worker");
        let mut cmd = std::process::Command::new("docker");
        cmd.args([
            "run",
            "--rm",
            "--init",
            "--name",
            &name,
            "--network",
            "host",
        ])
        .args(["-v", "/var/run/docker.sock:/var/run/docker.sock"]);
        if let Some(d) = host_dir {
            cmd.args(["-v", &format!("{}:/data", d.display())]);
            cmd.args(["-e", "TMPDIR=/data"]);
        }
        cmd.args([
            "-e",
            &format!("AWS_ENDPOINT_URL={}", crate::support::endpoint()),
            "-e",
            "AWS_ACCESS_KEY_ID=testing",
            "-e",
            "AWS_SECRET_ACCESS_KEY=testing",
            "-e",
            "AWS_REGION=us-east-1",
            WORKER_IMAGE,
            "worker",
        ])
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
        let mut child = cmd.spawn().expect("docker run starts");
        let log = Lines::collect(&mut child);
        BoxedWorker { name, child, log }
    }
}

impl Drop for BoxedWorker {
    fn drop(&mut self) {
        let _ = std::process::Command::new("docker")
            .args(["rm", "-f", &self.name])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

const WORKER_IMAGE: &str = "topsail-test/worker:latest";

fn worker_image() {
    crate::common::require_docker();
    let out = std::process::Command::new("bash")
        .arg(crate::common::repo().join("scripts/setup/worker-image.sh"))
        .arg(env!("CARGO_BIN_EXE_topsail"))
        .output()
        .expect("worker-image.sh runs");
    assert!(
        out.status.success(),
        "worker-image.sh failed:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn the_worker_image_maps_its_paths_to_the_hosts() {
    worker_image();
    assert!(
        !Path::new("/data").exists(),
        "this test needs /data free on the host"
    );
    let t = Test::new().file("p.topsail", BOXED);
    let dir = t.dir.path();
    let machine = unique("fbox");
    let deployed = deploy_out(dir, "p.topsail", &machine);
    let arn = deployed
        .lines()
        .find_map(|l| {
            l.strip_prefix("activity ")
                .and_then(|r| r.split(": ").nth(1))
        })
        .unwrap()
        .to_string();
    let host = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(host.path().join("ws")).unwrap();
    std::fs::write(host.path().join("p.topsail"), BOXED).unwrap();
    let w = BoxedWorker::start(
        Some(host.path()),
        &[
            "/data/p.topsail",
            "--state-machine",
            &machine,
            "--name",
            "w-box",
            "--dir",
            "/data/ws",
            "--allow-host",
            "--allow-image",
            IMAGE,
        ],
    );
    let exec = unique("ex");
    let (code, out) = follow(dir, "p.topsail", &machine, &exec);
    assert_eq!(code, 0, "{out}\nworker:\n{}", w.log.text());
    let r = record(dir, &exec);
    assert_eq!(unit(&r, "on_host")["outputs"]["WHERE"], "/data/ws");
    assert_eq!(unit(&r, "in_box")["outputs"]["SEEN"], "from host", "{r:#}");
    assert_eq!(unit(&r, "in_box")["outputs"]["TMP"], "scratch");
    assert_eq!(
        std::fs::read_to_string(host.path().join("ws/box.txt")).unwrap(),
        "from box\n"
    );
    // The engine was handed host paths only: it made nothing at the
    // worker's own paths on the host.
    assert!(!Path::new("/data").exists());
    drop(w);

    // Without the directory mounted, the worker refuses to start.
    let mut w = BoxedWorker::start(None, &["--activity-arn", &arn, "--allow-image", IMAGE]);
    let code = wait_timeout(&mut w.child, Duration::from_mins(1), || "refusal");
    let log = w.log.text();
    assert_eq!(code, Some(2), "{log}");
    assert!(
        log.contains("TMPDIR /work and --dir /work are not on a directory mounted from the host"),
        "{log}"
    );
    assert!(!Path::new("/data").exists());
}
