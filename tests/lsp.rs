//! `topsail lsp` as an editor sees it: start the binary, speak JSON-RPC over
//! its stdin/stdout, and look at what comes back.

use std::io::{BufRead, BufReader, Read, Write};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc::{Receiver, channel};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

pub struct Server {
    child: Child,
    stdin: ChildStdin,
    messages: Receiver<Value>,
    next_id: i64,
    /// Notifications seen while waiting for something else.
    pub notes: Vec<Value>,
}

impl Server {
    pub fn start() -> Server {
        let mut child = Command::new(env!("CARGO_BIN_EXE_topsail"))
            .arg("lsp")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("topsail lsp starts");
        let stdin = child.stdin.take().expect("piped stdin");
        let stdout = child.stdout.take().expect("piped stdout");
        let (tx, rx) = channel();
        std::thread::spawn(move || {
            let mut reader = BufReader::new(stdout);
            loop {
                let mut length = None;
                loop {
                    let mut header = String::new();
                    if reader.read_line(&mut header).unwrap_or(0) == 0 {
                        return;
                    }
                    let header = header.trim();
                    if header.is_empty() {
                        break;
                    }
                    if let Some(n) = header.strip_prefix("Content-Length: ") {
                        length = n.parse::<usize>().ok();
                    }
                }
                let Some(n) = length else { return };
                let mut body = vec![0; n];
                if reader.read_exact(&mut body).is_err() {
                    return;
                }
                let Ok(v) = serde_json::from_slice::<Value>(&body) else {
                    return;
                };
                if tx.send(v).is_err() {
                    return;
                }
            }
        });
        let mut server = Server {
            child,
            stdin,
            messages: rx,
            next_id: 1,
            notes: Vec::new(),
        };
        let init = server.request(
            "initialize",
            json!({"processId": null, "rootUri": null, "capabilities": {}}),
        );
        assert!(
            init["result"]["capabilities"]["definitionProvider"].as_bool() == Some(true),
            "{init}"
        );
        server.notify("initialized", json!({}));
        server
    }

    fn send(&mut self, v: &Value) {
        let body = v.to_string();
        write!(self.stdin, "Content-Length: {}\r\n\r\n{body}", body.len())
            .expect("write to the server");
        self.stdin.flush().expect("flush");
    }

    pub fn notify(&mut self, method: &str, params: Value) {
        self.send(&json!({"jsonrpc": "2.0", "method": method, "params": params}));
    }

    /// Send a request and wait for its response (notifications meanwhile are kept).
    pub fn request(&mut self, method: &str, params: Value) -> Value {
        let id = self.next_id;
        self.next_id += 1;
        self.send(&json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params}));
        loop {
            let msg = self
                .recv(Duration::from_secs(20))
                .unwrap_or_else(|| panic!("no response to {method}"));
            if msg["id"] == json!(id) {
                return msg;
            }
            self.notes.push(msg);
        }
    }

    fn recv(&mut self, timeout: Duration) -> Option<Value> {
        self.messages.recv_timeout(timeout).ok()
    }

    /// The next `publishDiagnostics` for `uri`.
    pub fn diagnostics(&mut self, uri: &str, timeout: Duration) -> Vec<Value> {
        if let Some(i) = self.notes.iter().position(|n| {
            n["method"] == "textDocument/publishDiagnostics" && n["params"]["uri"] == uri
        }) {
            let n = self.notes.remove(i);
            return n["params"]["diagnostics"]
                .as_array()
                .cloned()
                .unwrap_or_default();
        }
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let msg = self
                .recv(left)
                .unwrap_or_else(|| panic!("no diagnostics for {uri}"));
            if msg["method"] == "textDocument/publishDiagnostics" && msg["params"]["uri"] == uri {
                return msg["params"]["diagnostics"]
                    .as_array()
                    .cloned()
                    .unwrap_or_default();
            }
            self.notes.push(msg);
        }
    }

    pub fn open(&mut self, uri: &str, text: &str) {
        self.notify(
            "textDocument/didOpen",
            json!({"textDocument": {"uri": uri, "languageId": "topsail", "version": 1, "text": text}}),
        );
    }

    pub fn change(&mut self, uri: &str, version: i64, text: &str) {
        self.notify(
            "textDocument/didChange",
            json!({"textDocument": {"uri": uri, "version": version}, "contentChanges": [{"text": text}]}),
        );
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Bytes written to the server as they are, framing and all.
    pub fn raw(&mut self, bytes: &[u8]) {
        self.stdin.write_all(bytes).expect("write to the server");
        self.stdin.flush().expect("flush");
    }

    /// Wait up to `timeout` for the server to exit on its own: its exit
    /// code (`None` when a signal ended it). Killed past the timeout.
    pub fn wait(&mut self, timeout: Duration) -> Option<i32> {
        let start = Instant::now();
        loop {
            if let Some(status) = self.child.try_wait().expect("wait") {
                return status.code();
            }
            assert!(start.elapsed() < timeout, "the server did not exit");
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// `shutdown` + `exit`, and wait for the process to end.
    pub fn stop(mut self) {
        let resp = self.request("shutdown", Value::Null);
        assert!(resp.get("error").is_none(), "{resp}");
        self.notify("exit", Value::Null);
        let status = self.child.wait().expect("the server exits");
        assert!(status.success(), "topsail lsp exited with {status}");
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        // A failed test must not leave the server running.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn at(line: u32, character: u32) -> Value {
    json!({"line": line, "character": character})
}

fn pos(uri: &str, line: u32, character: u32) -> Value {
    json!({"textDocument": {"uri": uri}, "position": at(line, character)})
}

const BROKEN: &str = "\
pipeline demo

param region = \"eu-west-1\"
param replicas: int = 3

build:
    image \"rust:1.80\"
    output VERSION
    run cargo build

test: build
    run cargo test --region {{ region }}

deploy: test bild
    run ./deploy.sh {{ build.VERSION }} {{ replicas }}
";

#[test]
fn lsp_diagnostics_navigation_hover_completion_and_fixes() {
    let dir = tempfile::Builder::new()
        .prefix("topsail-lsp-")
        .tempdir()
        .expect("temp dir");
    let path = dir.path().join("demo.topsail");
    std::fs::write(&path, BROKEN).expect("write");
    let uri = format!("file://{}", path.display());
    let mut s = Server::start();

    // Open a file with an error: the checker's code and message, on the exact range.
    s.open(&uri, BROKEN);
    let diags = s.diagnostics(&uri, Duration::from_secs(20));
    let unknown = diags
        .iter()
        .find(|d| d["code"] == "topsail::unknown-step")
        .unwrap_or_else(|| panic!("no unknown-step diagnostic in {diags:#?}"));
    assert_eq!(unknown["severity"], 1);
    assert_eq!(unknown["range"]["start"], at(13, 13), "{unknown}");
    assert_eq!(unknown["range"]["end"], at(13, 17), "{unknown}");
    assert!(
        unknown["message"]
            .as_str()
            .is_some_and(|m| m.contains("bild")),
        "{unknown}"
    );
    // Same codes as `topsail check --format json`.
    let cli = Command::new(env!("CARGO_BIN_EXE_topsail"))
        .args(["check", "--format", "json"])
        .arg(&path)
        .output()
        .expect("check runs");
    let cli: Value = serde_json::from_slice(&cli.stdout).expect("check prints JSON");
    let cli_codes: Vec<&Value> = cli["diagnostics"]
        .as_array()
        .expect("list")
        .iter()
        .map(|d| &d["code"])
        .collect();
    let lsp_codes: Vec<&Value> = diags.iter().map(|d| &d["code"]).collect();
    assert_eq!(cli_codes, lsp_codes);

    // Go to definition: a need, and an output reference `{{ build.VERSION }}`.
    let def = s.request("textDocument/definition", pos(&uri, 10, 7));
    assert_eq!(def["result"]["uri"], uri.as_str());
    assert_eq!(def["result"]["range"]["start"], at(5, 0), "{def}");
    let def = s.request("textDocument/definition", pos(&uri, 14, 31));
    assert_eq!(def["result"]["range"]["start"], at(7, 11), "{def}");
    // ... and a param used in run text.
    let def = s.request("textDocument/definition", pos(&uri, 11, 33));
    assert_eq!(def["result"]["range"]["start"], at(2, 6), "{def}");

    // Hover: a step's image, needs and outputs; a param's type and default.
    let hover = s.request("textDocument/hover", pos(&uri, 10, 8));
    let text = hover["result"]["contents"]["value"]
        .as_str()
        .expect("markdown hover")
        .to_string();
    assert!(
        text.contains("rust:1.80") && text.contains("VERSION"),
        "{text}"
    );
    let hover = s.request("textDocument/hover", pos(&uri, 14, 43));
    let text = hover["result"]["contents"]["value"]
        .as_str()
        .expect("markdown hover")
        .to_string();
    assert!(
        text.contains("replicas") && text.contains("int") && text.contains('3'),
        "{text}"
    );

    // Completion: outputs after `step.`, steps in needs, directives in a body.
    let edited = BROKEN.replace("{{ replicas }}", "{{ build. }}");
    s.change(&uri, 2, &edited);
    let _ = s.diagnostics(&uri, Duration::from_secs(20));
    let comp = s.request("textDocument/completion", pos(&uri, 14, 49));
    let got = labels(&comp);
    assert_eq!(got, ["VERSION"], "{comp}");
    let comp = s.request("textDocument/completion", pos(&uri, 13, 13));
    let got = labels(&comp);
    assert!(
        got.contains(&"build".to_string()) && got.contains(&"test".to_string()),
        "{got:?}"
    );
    let comp = s.request("textDocument/completion", pos(&uri, 7, 4));
    let got = labels(&comp);
    for d in [
        "image", "run", "retry", "when", "foreach", "catch", "use", "timeout",
    ] {
        assert!(got.contains(&d.to_string()), "{d} missing from {got:?}");
    }

    // Document symbols: the steps and params.
    let syms = s.request(
        "textDocument/documentSymbol",
        json!({"textDocument": {"uri": uri}}),
    );
    let names: Vec<&str> = syms["result"]
        .as_array()
        .expect("symbols")
        .iter()
        .filter_map(|s| s["name"].as_str())
        .collect();
    assert_eq!(names, ["region", "replicas", "build", "test", "deploy"]);

    // Fix the file: the diagnostics clear.
    let fixed = BROKEN.replace("test bild", "test");
    s.change(&uri, 3, &fixed);
    let diags = s.diagnostics(&uri, Duration::from_secs(20));
    assert!(diags.iter().all(|d| d["severity"] != 1), "{diags:#?}");

    // Formatting gives `topsail fmt`'s text.
    let messy = fixed.replace("    run cargo test", "      run    cargo test");
    s.change(&uri, 4, &messy);
    let _ = s.diagnostics(&uri, Duration::from_secs(20));
    let fmt = s.request(
        "textDocument/formatting",
        json!({"textDocument": {"uri": uri}, "options": {"tabSize": 4, "insertSpaces": true}}),
    );
    std::fs::write(&path, &messy).expect("write");
    let cli = Command::new(env!("CARGO_BIN_EXE_topsail"))
        .args(["fmt", "--stdout"])
        .arg(&path)
        .output()
        .expect("fmt runs");
    let edits = fmt["result"].as_array().expect("edits");
    assert_eq!(edits.len(), 1, "{fmt}");
    assert_eq!(
        edits[0]["newText"].as_str(),
        Some(String::from_utf8_lossy(&cli.stdout).as_ref())
    );

    s.stop();
}

fn labels(resp: &Value) -> Vec<String> {
    let items = resp["result"]
        .as_array()
        .or_else(|| resp["result"]["items"].as_array());
    items
        .expect("completion items")
        .iter()
        .filter_map(|i| i["label"].as_str().map(str::to_string))
        .collect()
}
