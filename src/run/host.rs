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
//!
//! When the step's shell exits, its process group is killed too: a step
//! leaves no background job behind. A process that left the group
//! (`setsid cmd &`) escapes that; such a process still carries the attempt's
//! `TOPSAIL_OUTPUT` in its environment, and is found by it and killed
//! ([`kill_escapees`]). Its copies of the step's pipes are not waited for:
//! once the shell is gone, a pipe is read only while data keeps coming
//! ([`PIPE_IDLE`]).

use std::path::{Path, PathBuf};
use std::process::Stdio;

use std::time::Duration;

use nix::sys::signal::{Signal, kill, killpg};
use nix::unistd::Pid;
use tokio::io::{AsyncRead, AsyncReadExt};
use tokio::process::Command;
use tokio::sync::watch;

use crate::run::direct;
use crate::run::runtime::{
    AttemptDir, BoxFuture, Exit, LineSplitter, Runtime, StepIo, StepSpec, Stream,
};

/// After the step's shell exited (and its group was killed), how long a
/// pipe may stay silent before it is no longer read: whatever still holds
/// it left the step's process group.
pub const PIPE_IDLE: Duration = Duration::from_millis(100);

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
    // Without a shell when that means the same (see `direct`); if the
    // program cannot be started, the shell runs the script and says why.
    let direct = spec
        .shell
        .is_none()
        .then(|| direct::words(&spec.script, &spec.env))
        .flatten();
    let mut spawned = None;
    if let Some((program, args)) = direct.as_ref().and_then(|w| w.split_first()) {
        let path = resolve(program, spec);
        if direct::program_allowed(program, path.as_deref()) {
            let path = path.unwrap_or_else(|| PathBuf::from(program));
            let mut cmd = command(&path, args, spec, dir, &cwd, clean_env);
            if let Some(pwd) = shell_pwd(spec, &cwd, clean_env) {
                cmd.env("PWD", pwd);
            }
            spawned = cmd.spawn().ok();
        }
    }
    let mut child = if let Some(c) = spawned {
        c
    } else {
        let words = match dir.command(spec) {
            Ok(w) => w,
            Err(e) => return Exit::Error(format!("cannot write the step's script: {e}")),
        };
        let Some((program, args)) = words.split_first() else {
            return Exit::Error("the step's `shell` is empty".into());
        };
        let path = resolve(program, spec).unwrap_or_else(|| PathBuf::from(program));
        match command(&path, args, spec, dir, &cwd, clean_env).spawn() {
            Ok(c) => c,
            Err(e) => return Exit::Error(format!("cannot start `{program}`: {e}")),
        }
    };
    let pgid = child.id().map(|id| Pid::from_raw(id as i32));
    let (exited_tx, exited) = watch::channel(false);
    let out = child
        .stdout
        .take()
        .map(|r| tokio::spawn(pump(r, Stream::Stdout, io.clone(), exited.clone())));
    let err = child
        .stderr
        .take()
        .map(|r| tokio::spawn(pump(r, Stream::Stderr, io.clone(), exited.clone())));

    let timeout = async {
        match spec.timeout {
            Some(t) => tokio::time::sleep(t).await,
            None => std::future::pending().await,
        }
    };
    let exit = tokio::select! {
        status = async {
            let status = child.wait().await;
            if spec.wait_group && status.is_ok() && let Some(pgid) = pgid {
                group_exited(pgid).await;
            }
            status
        } => match status {
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
    let _ = exited_tx.send(true);
    let mut held_open = false;
    for task in [out, err].into_iter().flatten() {
        held_open |= task.await.unwrap_or(false);
    }
    // Also when no pipe was held: `setsid cmd >/dev/null 2>&1 &` holds none.
    if let Some(first) = pgid {
        let marker = format!("TOPSAIL_OUTPUT={}", dir.output.display());
        let first = first.as_raw().unsigned_abs();
        let killed =
            tokio::task::spawn_blocking(move || kill_escapees(marker.as_bytes(), first)).await;
        if let Ok(n @ 1..) = killed {
            io.system(format!(
                "killed {n} process{} the step left running outside its process group{}",
                if n == 1 { "" } else { "es" },
                if held_open {
                    " (holding its output open)"
                } else {
                    ""
                }
            ))
            .await;
        }
    }
    exit
}

/// Resolves when no process is left in the group `pgid` (a manifest's state
/// ends when everything it started has: [`StepSpec::wait_group`]). Polled:
/// the group's members are not our children, so there is nothing to wait on.
async fn group_exited(pgid: Pid) {
    let mut pause = Duration::from_millis(10);
    while killpg(pgid, None).is_ok() {
        tokio::time::sleep(pause).await;
        pause = (pause * 2).min(Duration::from_millis(250));
    }
}

/// `program ARGS` set up as a step's process: in `cwd`, in a process group
/// of its own, with the step's environment (see the module doc).
fn command(
    program: &Path,
    args: &[String],
    spec: &StepSpec,
    dir: &AttemptDir,
    cwd: &Path,
    clean_env: bool,
) -> Command {
    let mut cmd = Command::new(program);
    cmd.args(args)
        .current_dir(cwd)
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
    cmd
}

/// The `PWD` that `sh` would export to the command it runs (dash always
/// exports one): the inherited `PWD` when it names the working directory
/// (a path through a symlink stays), else the physical path.
fn shell_pwd(spec: &StepSpec, cwd: &Path, clean_env: bool) -> Option<PathBuf> {
    use std::os::unix::fs::MetadataExt;
    let inherited = match spec.env.iter().rev().find(|(k, _)| k == "PWD") {
        Some((_, v)) => Some(PathBuf::from(v)),
        None if clean_env => None,
        None => std::env::var_os("PWD").map(PathBuf::from),
    };
    let here = std::fs::metadata(cwd).ok()?;
    if let Some(p) = inherited.filter(|p| p.is_absolute())
        && std::fs::metadata(&p).is_ok_and(|m| m.dev() == here.dev() && m.ino() == here.ino())
    {
        return Some(p);
    }
    std::fs::canonicalize(cwd).ok()
}

/// Where a host step runs: its `workdir` relative to the pipeline's
/// directory (an absolute one as it is), else the pipeline's directory.
pub fn workdir(pipeline_dir: &Path, workdir: Option<&str>) -> PathBuf {
    match workdir {
        Some(w) if !w.is_empty() => pipeline_dir.join(w),
        _ => pipeline_dir.to_path_buf(),
    }
}

/// Kill this user's processes whose environment holds `marker`
/// (`TOPSAIL_OUTPUT=<this attempt's file>`): what a finished step left
/// running outside its process group. Only processes created since the
/// step's first one (pid `first`, up to the last pid the kernel handed out,
/// `/proc/loadavg`) are looked at: a no-op step does not pay for reading
/// every process's environment, nor, when few were created, for listing
/// /proc. The number killed.
fn kill_escapees(marker: &[u8], first: u32) -> usize {
    use std::os::unix::fs::MetadataExt;
    let Ok(me) = std::fs::metadata("/proc/self").map(|m| m.uid()) else {
        return 0;
    };
    // Pids are handed out in increasing order and wrap around: `first..=last`,
    // or both ends of the range after a wrap; every pid when /proc does not say.
    let last: Option<u32> = std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|l| l.split_whitespace().nth(4).and_then(|p| p.parse().ok()));
    let pids: Vec<u32> = match last {
        // Few pids handed out since: look at those, not at a listing of
        // every process (the common case, a step that started one or two).
        Some(last) if last >= first && last - first < PROBE_MAX => (first..=last).collect(),
        _ => {
            let recent = |pid: u32| match last {
                Some(last) if last >= first => (first..=last).contains(&pid),
                Some(last) => pid >= first || pid <= last,
                None => true,
            };
            let Ok(entries) = std::fs::read_dir("/proc") else {
                return 0;
            };
            entries
                .flatten()
                .filter_map(|e| e.file_name().to_str().and_then(|n| n.parse::<u32>().ok()))
                .filter(|pid| recent(*pid))
                .collect()
        }
    };
    let mut killed = 0;
    for pid in pids {
        let dir = PathBuf::from(format!("/proc/{pid}"));
        if pid == std::process::id() || std::fs::metadata(&dir).map(|m| m.uid()).ok() != Some(me) {
            continue;
        }
        let Ok(pid) = i32::try_from(pid) else {
            continue;
        };
        let Ok(env) = std::fs::read(dir.join("environ")) else {
            continue;
        };
        if env.split(|b| *b == 0).any(|var| var == marker)
            && kill(Pid::from_raw(pid), Signal::SIGKILL).is_ok()
        {
            killed += 1;
        }
    }
    killed
}

/// Up to this many pids handed out since a step's first process, the
/// escapee scan looks at each instead of listing /proc.
const PROBE_MAX: u32 = 256;

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

/// Forward a pipe in bounded lines ([`LineSplitter`]) until it ends, or,
/// once `exited` is true, until it is silent for [`PIPE_IDLE`]. Whether the
/// pipe was still open then (held by a process outside the step's group).
pub(crate) async fn pump(
    mut reader: impl AsyncRead + Unpin,
    stream: Stream,
    io: StepIo,
    mut exited: watch::Receiver<bool>,
) -> bool {
    let mut split = LineSplitter::new(stream);
    let mut buf = vec![0u8; 16 * 1024];
    let mut after_exit = false;
    let held_open = loop {
        after_exit = after_exit || *exited.borrow();
        let read = if after_exit {
            match tokio::time::timeout(PIPE_IDLE, reader.read(&mut buf)).await {
                Ok(r) => r,
                Err(_) => break true,
            }
        } else {
            // `read` is cancel-safe: nothing is lost when the exit wins.
            tokio::select! {
                r = reader.read(&mut buf) => r,
                changed = exited.changed() => {
                    after_exit = changed.is_err() || *exited.borrow();
                    continue;
                }
            }
        };
        match read {
            Ok(0) | Err(_) => break false,
            Ok(n) => {
                for line in split.push(&buf[..n]) {
                    io.send(line).await;
                }
            }
        }
    };
    if let Some(line) = split.finish() {
        io.send(line).await;
    }
    held_open
}
