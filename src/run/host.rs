//! The host runtime: the step's script as a child process of topsail, in the
//! pipeline's directory (or its `workdir`, relative to that directory), in a process group of its own so that a timeout or
//! a cancel kills everything the script started, not just the shell.
//!
//! Under `topsail run` a host step inherits the runner's environment (less
//! the declared secrets it did not ask for), as make does. On a worker
//! ([`HostRuntime::clean_env`]) it does not: the worker's environment holds
//! the operator's credentials (AWS keys, the secrets it serves), and a task
//! is whatever someone who can start executions wrote. There a step gets
//! only [`BASE_ENV`] from the worker, then its own env, the secrets it was
//! given and the built-in `TOPSAIL_*` variables, as a container would.

use std::path::{Path, PathBuf};
use std::process::Stdio;

use nix::sys::signal::{Signal, killpg};
use nix::unistd::Pid;
use tokio::io::{AsyncBufReadExt, AsyncRead, BufReader};
use tokio::process::Command;

use crate::run::runtime::{AttemptDir, BoxFuture, Exit, Line, Runtime, StepIo, StepSpec, Stream};

/// What a host step on a worker gets from the worker's own environment
/// (each when set): enough for a shell and its tools to find their way.
pub const BASE_ENV: &[&str] = &[
    "PATH", "HOME", "USER", "LOGNAME", "SHELL", "LANG", "LC_ALL", "LC_CTYPE", "TZ",
];

/// `PATH` when the worker itself has none.
const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

#[derive(Debug, Default)]
pub struct HostRuntime {
    /// Start steps from [`BASE_ENV`] instead of the whole environment.
    clean_env: bool,
}

impl HostRuntime {
    /// The runtime for a worker's host steps (see the module doc).
    pub fn clean_env() -> HostRuntime {
        HostRuntime { clean_env: true }
    }
}

impl Runtime for HostRuntime {
    fn run_step<'a>(
        &'a self,
        spec: &'a StepSpec,
        dir: &'a AttemptDir,
        io: StepIo,
    ) -> BoxFuture<'a, Exit> {
        Box::pin(run(spec, dir, io, self.clean_env))
    }
}

async fn run(spec: &StepSpec, dir: &AttemptDir, mut io: StepIo, clean_env: bool) -> Exit {
    let words = match dir.command(spec) {
        Ok(w) => w,
        Err(e) => return Exit::Error(format!("cannot write the step's script: {e}")),
    };
    let Some((program, args)) = words.split_first() else {
        return Exit::Error("the step's `shell` is empty".into());
    };
    let cwd = workdir(&spec.pipeline_dir, spec.workdir.as_deref());
    if !cwd.is_dir() {
        return Exit::Error(format!(
            "workdir `{}`: {} {}",
            spec.workdir.as_deref().unwrap_or_default(),
            cwd.display(),
            if cwd.exists() {
                "is not a directory"
            } else {
                "does not exist"
            }
        ));
    }
    let mut cmd = match resolve(program, spec) {
        Some(path) => Command::new(path),
        None => Command::new(program),
    };
    cmd.args(args)
        .current_dir(&cwd)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .kill_on_drop(true);
    if clean_env {
        cmd.env_clear();
        for name in BASE_ENV {
            if let Some(v) = std::env::var_os(name) {
                cmd.env(name, v);
            }
        }
        if std::env::var_os("PATH").is_none() {
            cmd.env("PATH", DEFAULT_PATH);
        }
    }
    for name in &spec.env_remove {
        cmd.env_remove(name);
    }
    cmd.envs(spec.env.iter().map(|(k, v)| (k, v)));
    cmd.envs(dir.builtin_env(spec));
    let mut child = match cmd.spawn() {
        Ok(c) => c,
        Err(e) => return Exit::Error(format!("cannot start `{program}`: {e}")),
    };
    let pgid = child.id().map(|id| Pid::from_raw(id as i32));
    let out = child
        .stdout
        .take()
        .map(|r| tokio::spawn(pump(r, Stream::Stdout, io.clone())));
    let err = child
        .stderr
        .take()
        .map(|r| tokio::spawn(pump(r, Stream::Stderr, io.clone())));

    let timeout = async {
        match spec.timeout {
            Some(t) => tokio::time::sleep(t).await,
            None => std::future::pending().await,
        }
    };
    let exit = tokio::select! {
        status = child.wait() => match status {
            Ok(s) => Exit::Code(exit_code(s)),
            Err(e) => Exit::Error(format!("waiting for the step's process: {e}")),
        },
        () = timeout => Exit::TimedOut,
        _ = io.cancel.wait_for(|c| *c) => Exit::Cancelled,
    };
    // Also after a normal exit: background jobs the script left would
    // otherwise outlive the step (and hold its output pipes open).
    if let Some(pgid) = pgid {
        let _ = killpg(pgid, Signal::SIGKILL);
    }
    if !matches!(exit, Exit::Code(_)) {
        let _ = child.wait().await;
    }
    for task in [out, err].into_iter().flatten() {
        // A process that left the group (setsid) may keep a pipe open: do not hang on it.
        let _ = tokio::time::timeout(std::time::Duration::from_secs(2), task).await;
    }
    exit
}

/// Where a host step runs: its `workdir` relative to the pipeline's
/// directory (an absolute one as it is), else the pipeline's directory.
pub fn workdir(pipeline_dir: &Path, workdir: Option<&str>) -> PathBuf {
    match workdir {
        Some(w) if !w.is_empty() => pipeline_dir.join(w),
        _ => pipeline_dir.to_path_buf(),
    }
}

/// `program` looked up in the runner's `PATH` once per run instead of once
/// per step (a no-op step spent more on failed `execve`s along `PATH` than
/// on running). Not when the step sets its own `PATH`: then the child's
/// `PATH` decides, as usual. `None`: let the spawn search as it would.
fn resolve(program: &str, spec: &StepSpec) -> Option<PathBuf> {
    use std::collections::HashMap;
    use std::sync::Mutex;
    static CACHE: Mutex<Option<HashMap<String, Option<PathBuf>>>> = Mutex::new(None);
    if program.contains('/') || spec.env.iter().any(|(k, _)| k == "PATH") {
        return None;
    }
    let mut cache = CACHE
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    cache
        .get_or_insert_with(HashMap::new)
        .entry(program.to_string())
        .or_insert_with(|| search_path(program))
        .clone()
}

fn search_path(program: &str) -> Option<PathBuf> {
    use std::os::unix::fs::PermissionsExt;
    let path = std::env::var_os("PATH")?;
    let dirs: Vec<PathBuf> = std::env::split_paths(&path).collect();
    // A relative entry depends on each step's working directory: no caching.
    if dirs.iter().any(|d| !d.is_absolute()) {
        return None;
    }
    dirs.into_iter().map(|d| d.join(program)).find(|p| {
        std::fs::metadata(p).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
    })
}

fn exit_code(status: std::process::ExitStatus) -> i64 {
    use std::os::unix::process::ExitStatusExt;
    match (status.code(), status.signal()) {
        (Some(c), _) => i64::from(c),
        (None, Some(sig)) => 128 + i64::from(sig),
        (None, None) => -1,
    }
}

/// Forward a pipe line by line (lossy UTF-8: a step may print anything).
pub(crate) async fn pump(reader: impl AsyncRead + Unpin, stream: Stream, io: StepIo) {
    let mut reader = BufReader::new(reader);
    let mut buf = Vec::new();
    loop {
        buf.clear();
        match reader.read_until(b'\n', &mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(_) => {
                while buf.last().is_some_and(|b| *b == b'\n' || *b == b'\r') {
                    buf.pop();
                }
                let _ = io.lines.send(Line {
                    stream,
                    text: String::from_utf8_lossy(&buf).into_owned(),
                });
            }
        }
    }
}
