//! The contract between "decide what runs" (the scheduler, or the Step
//! Functions activity worker) and "run it somewhere" (host or docker).
//!
//! A [`StepSpec`] is self-contained: every `{{ }}` is already rendered, the
//! env already holds the requested secret values. A [`Runtime`] runs one
//! attempt of it and reports the exit; [`run_attempt`] wraps that with the
//! parts both callers share: the attempt's private directory (`TMPDIR` and
//! the `$TOPSAIL_OUTPUT` file), reading and checking the outputs, and
//! removing the directory again whatever happened.

use std::future::Future;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::time::Duration;

use indexmap::IndexMap;
use tokio::sync::{mpsc, watch};

use crate::model::errors;
use crate::run::outputs;

/// One step (or one `foreach` instance) ready to run.
#[derive(Clone, Debug)]
pub struct StepSpec {
    pub run_id: String,
    pub pipeline: String,
    /// Display name: the step's name, or `step[item]` for a foreach instance.
    pub name: String,
    /// The step's name in the pipeline (labels, `TOPSAIL_STEP`).
    pub step: String,
    /// `None`: run on the host.
    pub image: Option<String>,
    /// The script: its holes are references to variables in `env`, which
    /// carry the values (never part of this text).
    pub script: String,
    /// The interpreter; `None` means `sh -e`.
    pub shell: Option<String>,
    /// Pipeline env, step env and the requested secrets, in that order.
    pub env: Vec<(String, String)>,
    /// Names of the secrets in `env`: their values are masked in logs.
    pub secret_names: Vec<String>,
    /// Variables the host runtime must not pass on from the runner's own
    /// environment: declared secrets this step did not ask for.
    pub env_remove: Vec<String>,
    /// Working directory inside the container (`None`: `/workspace`).
    pub workdir: Option<String>,
    pub timeout: Option<Duration>,
    pub outputs: Vec<String>,
    /// The pipeline's directory: the host cwd, `/workspace` in a container.
    pub pipeline_dir: PathBuf,
    /// End when the whole process group has exited, not the script alone
    /// (host steps; [`crate::run::spec::WAIT_GROUP_ENV`]).
    pub wait_group: bool,
}

impl StepSpec {
    /// The interpreter and its arguments; the script file path comes last.
    pub fn shell_words(&self) -> Vec<String> {
        match &self.shell {
            None => vec!["sh".into(), "-e".into()],
            Some(s) => s.split_whitespace().map(str::to_string).collect(),
        }
    }
}

/// Where a runtime puts what one attempt needs on disk. The directory is the
/// same path on the host and inside a container.
#[derive(Clone, Debug)]
pub struct AttemptDir {
    pub root: PathBuf,
    /// The step's `TMPDIR`.
    pub tmp: PathBuf,
    pub script: PathBuf,
    /// `$TOPSAIL_OUTPUT`.
    pub output: PathBuf,
}

/// Scripts up to this size go to the shell as `-c SCRIPT`: no file to write,
/// open and remove per attempt. Linux limits one argument to 128 KiB.
const INLINE_SCRIPT_MAX: usize = 64 * 1024;

impl AttemptDir {
    /// The attempt directory with everything in it: `tmp/`, the `script`
    /// file and an empty `output` file.
    pub fn create(base: &Path, spec: &StepSpec) -> std::io::Result<AttemptDir> {
        let dir = AttemptDir::create_lean(base, spec)?;
        dir.write_script(spec)?;
        Ok(dir)
    }

    /// The attempt directory without the script file: [`AttemptDir::command`]
    /// writes it only when the script cannot be passed inline. Permissions
    /// are opened up only for container steps (a container may run as
    /// another user); a host step runs as the runner's own user.
    pub fn create_lean(base: &Path, spec: &StepSpec) -> std::io::Result<AttemptDir> {
        AttemptDir::create_named(base, spec, true)
    }

    /// `named`: the step's name is part of the directory's (not for pooled
    /// directories, which serve many steps).
    ///
    /// The directory is made inside this process's private directory under
    /// `base` ([`private_base`], mode 0700), so no other user of the machine
    /// can reach it. Inside, an image step's directory is opened up for the
    /// container's user, whoever that is (the image decides): the container
    /// sees only the bind-mounted attempt directory, under parents the
    /// engine made, never the private one.
    fn create_named(base: &Path, spec: &StepSpec, named: bool) -> std::io::Result<AttemptDir> {
        let mut prefix = format!("topsail-{}", path_safe(&spec.run_id, 40));
        if named {
            let name = path_safe(&spec.name, 40);
            if !name.is_empty() {
                prefix.push('-');
                prefix.push_str(&name);
            }
        }
        let mut private = private_base(base)?;
        let root = match unique_dir(&private, &prefix) {
            // Another run in this process removed the private directory
            // when it ended (`finish_cleanup`): make a new one.
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                forget_private_base(base, &private);
                private = private_base(base)?;
                unique_dir(&private, &prefix)?
            }
            other => other?,
        };
        let dir = AttemptDir {
            tmp: root.join("tmp"),
            script: root.join("script"),
            output: root.join("output"),
            root,
        };
        let made = (|| {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::Permissions::from_mode;
            std::fs::create_dir(&dir.tmp)?;
            std::fs::File::create(&dir.output)?;
            if spec.image.is_some() {
                std::fs::set_permissions(&dir.root, mode(0o755))?;
                std::fs::set_permissions(&dir.tmp, mode(0o1777))?;
                std::fs::set_permissions(&dir.output, mode(0o666))?;
            } else {
                std::fs::set_permissions(&dir.root, mode(0o700))?;
                std::fs::set_permissions(&dir.tmp, mode(0o700))?;
                std::fs::set_permissions(&dir.output, mode(0o600))?;
            }
            Ok(())
        })();
        if let Err(e) = made {
            let _ = std::fs::remove_dir_all(&dir.root);
            return Err(e);
        }
        Ok(dir)
    }

    fn write_script(&self, spec: &StepSpec) -> std::io::Result<()> {
        std::fs::write(&self.script, &spec.script)?;
        #[cfg(unix)]
        if spec.image.is_some() {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&self.script, std::fs::Permissions::from_mode(0o644))?;
        }
        Ok(())
    }

    /// The command line that runs the step's script. With the default
    /// interpreter the script goes inline, `sh -e -c SCRIPT NAME` (so `$0`
    /// and the shell's error messages name the step); another `shell`, a
    /// very long script or one with a NUL byte is written to the `script`
    /// file, whose path comes last: `SHELL... PATH`.
    pub fn command(&self, spec: &StepSpec) -> std::io::Result<Vec<String>> {
        if spec.shell.is_none()
            && spec.script.len() <= INLINE_SCRIPT_MAX
            && !spec.script.contains('\0')
        {
            let mut words = spec.shell_words();
            words.push("-c".into());
            words.push(spec.script.clone());
            words.push(spec.name.clone());
            return Ok(words);
        }
        self.script_command(spec)
    }

    /// The command line with the script always in the `script` file:
    /// `SHELL... PATH`. The docker runtime uses it so that the shell stays
    /// the container's first process (`sh -c` may `exec` the last command,
    /// and PID 1 ignores signals it has no handler for).
    pub fn script_command(&self, spec: &StepSpec) -> std::io::Result<Vec<String>> {
        self.write_script(spec)?;
        let mut words = spec.shell_words();
        words.push(self.script.display().to_string());
        Ok(words)
    }

    /// The env every step sees besides its own (LANGUAGE.md section 5).
    pub fn builtin_env(&self, spec: &StepSpec) -> Vec<(String, String)> {
        vec![
            ("TOPSAIL_PIPELINE".into(), spec.pipeline.clone()),
            ("TOPSAIL_RUN_ID".into(), spec.run_id.clone()),
            ("TOPSAIL_STEP".into(), spec.step.clone()),
            ("TOPSAIL_OUTPUT".into(), self.output.display().to_string()),
            ("TMPDIR".into(), self.tmp.display().to_string()),
        ]
    }
}

/// `s` as part of a file name: ASCII letters, digits and `-` kept, anything
/// else (`/`, `.`, spaces, non-ASCII) as `_`, at most `max` characters. The
/// run id and step name come from a task input on a worker: whatever they
/// hold, the directory stays where it is made.
fn path_safe(s: &str, max: usize) -> String {
    s.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' {
                c
            } else {
                '_'
            }
        })
        .take(max)
        .collect()
}

/// This process's private directories, by the base they are in.
static PRIVATE: std::sync::Mutex<Vec<(PathBuf, PathBuf)>> = std::sync::Mutex::new(Vec::new());

fn private_dirs() -> std::sync::MutexGuard<'static, Vec<(PathBuf, PathBuf)>> {
    PRIVATE
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// This process's private directory in `base` (`topsail-PID-N`, mode
/// 0700), made on first use and removed by [`finish_cleanup`]. A fresh name
/// made with `mkdir` (which never follows a symlink or reuses a directory
/// someone else made) is ours alone; `base` (the shared /tmp) may be
/// writable by everyone.
fn private_base(base: &Path) -> std::io::Result<PathBuf> {
    use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
    let mut dirs = private_dirs();
    if let Some((_, p)) = dirs.iter().find(|(b, _)| b == base) {
        return Ok(p.clone());
    }
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default()
        .subsec_nanos();
    let mut n = u64::from(nanos);
    let path = loop {
        let path = base.join(format!("topsail-{}-{n:x}", std::process::id()));
        match std::fs::DirBuilder::new().mode(0o700).create(&path) {
            Ok(()) => break path,
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => n += 1,
            Err(e) => return Err(e),
        }
    };
    // The umask may have taken bits away; no other bits were ever there.
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o700))?;
    dirs.push((base.to_path_buf(), path.clone()));
    Ok(path)
}

fn forget_private_base(base: &Path, private: &Path) {
    private_dirs().retain(|(b, p)| !(b == base && p == private));
}

fn unique_dir(base: &Path, prefix: &str) -> std::io::Result<PathBuf> {
    use std::sync::atomic::{AtomicU64, Ordering};
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    loop {
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        let path = base.join(format!("{prefix}-{}-{n}", std::process::id()));
        match std::fs::create_dir(&path) {
            Ok(()) => return Ok(path),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
            Err(e) => return Err(e),
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stream {
    Stdout,
    Stderr,
    /// Messages from topsail itself about the step (pulls, retries, kills).
    System,
}

#[derive(Clone, Debug)]
pub struct Line {
    pub stream: Stream,
    pub text: String,
}

/// The longest line a step's output gives: a longer one is cut there, ends
/// with [`CUT_MARKER`], and the rest of it up to the next line break is
/// dropped (its size is reported once the break comes). A step printing
/// without line breaks (`tr '\0' x < /dev/zero`) thus costs topsail at most
/// this much per stream, in memory, on screen and in `run.log`.
pub const MAX_LINE_BYTES: usize = 64 * 1024;

/// What ends a line cut at [`MAX_LINE_BYTES`]. The masking
/// ([`crate::run::Secrets::mask`]) also masks a secret cut in two by it.
pub const CUT_MARKER: &str = " [topsail: line cut at 64 KiB]";

/// How many lines may wait between a runtime and whoever shows and records
/// them: when the reader falls behind, the runtime stops reading the step's
/// pipes (and the step blocks on a full pipe) instead of queueing without end.
pub const LINE_QUEUE: usize = 256;

/// The channel of a [`StepIo`]: bounded, see [`LINE_QUEUE`].
pub fn line_channel() -> (mpsc::Sender<Line>, mpsc::Receiver<Line>) {
    mpsc::channel(LINE_QUEUE)
}

/// Bytes of one stream in, bounded lines out (lossy UTF-8: a step may print
/// anything). Shared by the host and docker runtimes.
#[derive(Debug)]
pub struct LineSplitter {
    stream: Stream,
    buf: Vec<u8>,
    /// Bytes dropped from the current line after it was cut; `None`: not cut.
    dropped: Option<u64>,
    /// Bytes of the cut line that were shown.
    shown: u64,
}

impl LineSplitter {
    pub fn new(stream: Stream) -> LineSplitter {
        LineSplitter {
            stream,
            buf: Vec::new(),
            dropped: None,
            shown: 0,
        }
    }

    /// Feed `bytes`; the complete (or cut) lines they finish, in order.
    pub fn push(&mut self, mut bytes: &[u8]) -> Vec<Line> {
        let mut out = Vec::new();
        while !bytes.is_empty() {
            let nl = bytes.iter().position(|b| *b == b'\n');
            let (chunk, rest, ends) = match nl {
                Some(i) => (&bytes[..i], &bytes[i + 1..], true),
                None => (bytes, &bytes[bytes.len()..], false),
            };
            bytes = rest;
            if let Some(dropped) = &mut self.dropped {
                *dropped += chunk.len() as u64;
            } else {
                let room = MAX_LINE_BYTES - self.buf.len();
                if chunk.len() <= room {
                    self.buf.extend_from_slice(chunk);
                } else {
                    self.buf.extend_from_slice(&chunk[..room]);
                    let (line, trimmed) = self.cut();
                    out.push(line);
                    self.dropped = Some((chunk.len() - room + trimmed) as u64);
                }
            }
            if ends {
                out.push(self.end_line());
            }
        }
        out
    }

    /// What is left when the stream ends.
    pub fn finish(&mut self) -> Option<Line> {
        if self.buf.is_empty() && self.dropped.is_none() {
            return None;
        }
        Some(self.end_line())
    }

    /// The cut line, and how many bytes of a split character it left out.
    fn cut(&mut self) -> (Line, usize) {
        // Cut at a character boundary: a split UTF-8 sequence is not garbage.
        let mut end = self.buf.len();
        if let Err(e) = std::str::from_utf8(&self.buf)
            && e.error_len().is_none()
        {
            end = e.valid_up_to();
        }
        let mut text = String::from_utf8_lossy(&self.buf[..end]).into_owned();
        text.push_str(CUT_MARKER);
        let trimmed = self.buf.len() - end;
        self.shown = end as u64;
        self.buf.clear();
        (
            Line {
                stream: self.stream,
                text,
            },
            trimmed,
        )
    }

    fn end_line(&mut self) -> Line {
        if let Some(dropped) = self.dropped.take() {
            return Line {
                stream: Stream::System,
                text: format!(
                    "a line of {} bytes was cut to {}: {dropped} bytes not shown",
                    dropped + self.shown,
                    self.shown
                ),
            };
        }
        if self.buf.last() == Some(&b'\r') {
            self.buf.pop();
        }
        let text = String::from_utf8_lossy(&self.buf).into_owned();
        self.buf.clear();
        Line {
            stream: self.stream,
            text,
        }
    }
}

/// What a running attempt may talk to.
#[derive(Clone)]
pub struct StepIo {
    /// Output lines as they come (unmasked: the receiver masks secrets).
    /// Bounded ([`line_channel`]): sending waits while the receiver is behind.
    pub lines: mpsc::Sender<Line>,
    /// Becomes `true` when the run is cancelled: stop, clean up, return.
    pub cancel: watch::Receiver<bool>,
}

impl StepIo {
    pub async fn system(&self, text: impl Into<String>) {
        self.send(Line {
            stream: Stream::System,
            text: text.into(),
        })
        .await;
    }

    /// Send a line, waiting for room (a receiver that is gone drops it).
    pub async fn send(&self, line: Line) {
        let _ = self.lines.send(line).await;
    }
}

/// How one attempt of a runtime ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Exit {
    Code(i64),
    /// Exit code 137, and the engine says the out-of-memory killer did it.
    OomKilled,
    TimedOut,
    Cancelled,
    /// The runtime could not run the script at all.
    Error(String),
}

/// How one attempt ended, outputs checked.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    Succeeded(IndexMap<String, String>),
    Failed { error: String, cause: String },
    Cancelled,
}

impl Outcome {
    pub fn failed(error: &str, cause: impl Into<String>) -> Outcome {
        Outcome::Failed {
            error: error.to_string(),
            cause: cause.into(),
        }
    }
}

pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// Runs one attempt of a step somewhere. Implementations must kill what they
/// started on timeout or cancel and leave nothing behind (processes,
/// containers) before returning.
pub trait Runtime: Send + Sync {
    fn run_step<'a>(
        &'a self,
        spec: &'a StepSpec,
        dir: &'a AttemptDir,
        io: StepIo,
    ) -> BoxFuture<'a, Exit>;
}

/// One attempt with everything around it: the attempt directory (created
/// under `tmp_base`, removed afterwards), the runtime, the outputs.
pub async fn run_attempt(
    runtime: &dyn Runtime,
    spec: &StepSpec,
    tmp_base: &Path,
    io: StepIo,
) -> Outcome {
    run_attempt_pooled(runtime, spec, tmp_base, None, io).await
}

/// Removes an attempt directory on drop, unless [`RemoveUnlessDone::done`].
struct RemoveUnlessDone<'a>(Option<&'a AttemptDir>);

impl RemoveUnlessDone<'_> {
    fn done(mut self) -> Self {
        self.0 = None;
        self
    }
}

impl Drop for RemoveUnlessDone<'_> {
    fn drop(&mut self) {
        if let Some(dir) = self.0 {
            let _ = std::fs::remove_dir_all(&dir.root);
        }
    }
}

/// [`run_attempt`], taking the attempt directory of a host step from `pool`
/// when it has one and giving it back if the step left it as it found it.
/// The owner of the pool calls [`AttemptPool::clear`] when done.
pub async fn run_attempt_pooled(
    runtime: &dyn Runtime,
    spec: &StepSpec,
    tmp_base: &Path,
    pool: Option<&AttemptPool>,
    io: StepIo,
) -> Outcome {
    // Container steps open up permissions and may leave root-owned files:
    // their directories are never shared.
    let pool = pool.filter(|_| spec.image.is_none());
    let dir = match pool.and_then(|p| p.take(tmp_base)) {
        Some(d) => Ok(d),
        None => AttemptDir::create_named(tmp_base, spec, pool.is_none()),
    };
    let dir = match dir {
        Ok(d) => d,
        Err(e) => {
            return Outcome::failed(
                errors::RUNTIME,
                format!(
                    "cannot create the step's temp dir under {}: {e}",
                    tmp_base.display()
                ),
            );
        }
    };
    // Until the step is over: a runtime that panics (or an attempt dropped
    // half-way) must not leave the directory behind.
    let guard = RemoveUnlessDone(Some(&dir));
    let exit = runtime.run_step(spec, &dir, io.clone()).await;
    drop(guard.done());
    let outcome = match exit {
        Exit::Code(0) => {
            let (outcome, warnings) = read_outputs(spec, &dir);
            for w in warnings {
                io.system(w).await;
            }
            outcome
        }
        Exit::Code(137) => {
            Outcome::failed(errors::SCRIPT_FAILED, "killed (exit code 137, SIGKILL)")
        }
        Exit::OomKilled => Outcome::failed(
            errors::SCRIPT_FAILED,
            "killed by the out-of-memory killer (exit code 137): give it more memory or make it use less",
        ),
        Exit::Code(code) => Outcome::failed(errors::SCRIPT_FAILED, format!("exit code {code}")),
        Exit::TimedOut => Outcome::failed(
            errors::TIMEOUT,
            format!(
                "timed out after {}",
                spec.timeout
                    .map_or_else(|| "?".into(), crate::model::format_duration)
            ),
        ),
        Exit::Cancelled => Outcome::Cancelled,
        Exit::Error(msg) => Outcome::failed(errors::RUNTIME, msg),
    };
    match pool {
        Some(p) => p.give_back(tmp_base, dir),
        None => remove_later(dir),
    }
    outcome
}

/// Attempt directories of finished host steps, emptied, for the next host
/// step: creating and removing two directories and a file per step cost a
/// no-op step more than running it on ext4 (inode allocation, and block
/// discards on removal). A directory goes back only when the step left
/// exactly what it was given: an empty `TMPDIR`, the output file (emptied
/// again here), nothing else. Each step still has a directory of its own
/// while it runs; only one step at a time holds a directory.
#[derive(Debug, Default)]
pub struct AttemptPool {
    free: std::sync::Mutex<Vec<(PathBuf, AttemptDir)>>,
}

impl AttemptPool {
    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<(PathBuf, AttemptDir)>> {
        self.free
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn take(&self, base: &Path) -> Option<AttemptDir> {
        let mut free = self.lock();
        let i = free.iter().position(|(b, _)| b == base)?;
        Some(free.swap_remove(i).1)
    }

    fn give_back(&self, base: &Path, dir: AttemptDir) {
        if recycle(&dir) {
            self.lock().push((base.to_path_buf(), dir));
        } else {
            remove_later(dir);
        }
    }

    /// Remove every pooled directory (in the background: [`finish_cleanup`]
    /// waits for it).
    pub fn clear(&self) {
        for (_, dir) in std::mem::take(&mut *self.lock()) {
            remove_later(dir);
        }
    }
}

/// Whether `dir` is as [`AttemptDir::create_lean`] made it for a host step,
/// once the output file is emptied and a script file removed.
fn recycle(dir: &AttemptDir) -> bool {
    use std::os::unix::fs::PermissionsExt;
    let owner_rw = |m: &std::fs::Metadata, bits: u32| m.permissions().mode() & bits == bits;
    let Ok(entries) = std::fs::read_dir(&dir.root) else {
        return false;
    };
    for entry in entries {
        let Ok(entry) = entry else { return false };
        let path = entry.path();
        if path == dir.tmp || path == dir.output {
            continue;
        }
        if path != dir.script || std::fs::remove_file(&path).is_err() {
            return false;
        }
    }
    let tmp_ok = std::fs::symlink_metadata(&dir.tmp)
        .is_ok_and(|m| m.is_dir() && owner_rw(&m, 0o700))
        && std::fs::read_dir(&dir.tmp).is_ok_and(|mut e| e.next().is_none());
    let Ok(out) = std::fs::symlink_metadata(&dir.output) else {
        return false;
    };
    if !tmp_ok || !out.is_file() || !owner_rw(&out, 0o600) {
        return false;
    }
    out.len() == 0
        || std::fs::OpenOptions::new()
            .write(true)
            .truncate(true)
            .open(&dir.output)
            .is_ok()
}

/// Removals still going on; [`finish_cleanup`] waits for them.
static CLEANUPS: std::sync::Mutex<Vec<tokio::task::JoinHandle<()>>> =
    std::sync::Mutex::new(Vec::new());

/// Run `cleanup` (removing a container, say) off the step's critical path;
/// [`finish_cleanup`] waits for it, so it still happens before a run ends.
pub fn cleanup_later(cleanup: impl Future<Output = ()> + Send + 'static) {
    let handle = tokio::spawn(cleanup);
    CLEANUPS
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .push(handle);
}

/// Remove an attempt directory off the step's critical path: on file systems
/// mounted with `discard`, freeing blocks waits for the device, which cost
/// a no-op step more than running it.
fn remove_later(dir: AttemptDir) {
    let handle = tokio::task::spawn_blocking(move || {
        if let Err(e) = remove_attempt(&dir) {
            // A container running as root may leave files we cannot remove.
            errln!(
                "topsail: warning: could not remove {}: {e}",
                dir.root.display()
            );
        }
    });
    CLEANUPS
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .push(handle);
}

/// The directory's known layout first (a few unlinks, no directory
/// listing); whatever the step left in it, with a full recursive removal.
fn remove_attempt(dir: &AttemptDir) -> std::io::Result<()> {
    let _ = std::fs::remove_file(&dir.output);
    let _ = std::fs::remove_file(&dir.script);
    if std::fs::remove_dir(&dir.tmp).is_ok() && std::fs::remove_dir(&dir.root).is_ok() {
        return Ok(());
    }
    match std::fs::remove_dir_all(&dir.root) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        other => other,
    }
}

/// Wait until every attempt directory removed so far is gone, then remove
/// the private directories they were in (those still holding an attempt of
/// a run going on stay). A run calls this before it ends, so no temp dir
/// outlives it.
pub async fn finish_cleanup() {
    loop {
        let pending = std::mem::take(
            &mut *CLEANUPS
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner),
        );
        if pending.is_empty() {
            break;
        }
        for h in pending {
            let _ = h.await;
        }
    }
    private_dirs().retain(|(_, p)| std::fs::remove_dir(p).is_err() && p.exists());
}

/// The outputs the step wrote, checked; and the warnings to show about
/// the file. The file is read with a bound ([`outputs::read_bounded`]): a
/// step cannot make topsail hold more than [`outputs::MAX_BYTES`] of it.
fn read_outputs(spec: &StepSpec, dir: &AttemptDir) -> (Outcome, Vec<String>) {
    let text = match outputs::read_bounded(&dir.output) {
        Ok(t) => t,
        Err(outputs::ReadError::TooLarge(msg)) => {
            return (Outcome::failed(errors::OUTPUT_TOO_LARGE, msg), Vec::new());
        }
        Err(outputs::ReadError::Other(msg)) => {
            return (Outcome::failed(errors::RUNTIME, msg), Vec::new());
        }
    };
    let (set, problems) = outputs::parse(&text);
    let mut warnings: Vec<String> = Vec::new();
    for p in problems.iter().take(outputs::MAX_WARNINGS) {
        warnings.push(format!("warning: $TOPSAIL_OUTPUT: {p}"));
    }
    if problems.len() > outputs::MAX_WARNINGS {
        warnings.push(format!(
            "warning: $TOPSAIL_OUTPUT: {} more problems not shown",
            problems.len() - outputs::MAX_WARNINGS
        ));
    }
    let outcome = check_outputs(spec, set, &mut warnings);
    (outcome, warnings)
}

fn check_outputs(
    spec: &StepSpec,
    mut set: IndexMap<String, String>,
    warnings: &mut Vec<String>,
) -> Outcome {
    let missing: Vec<&str> = spec
        .outputs
        .iter()
        .filter(|o| !set.contains_key(*o))
        .map(String::as_str)
        .collect();
    if !missing.is_empty() {
        return Outcome::failed(
            errors::OUTPUT_MISSING,
            format!(
                "declared output{} {} not set (append `NAME=value` to \"$TOPSAIL_OUTPUT\")",
                if missing.len() == 1 { "" } else { "s" },
                missing
                    .iter()
                    .map(|m| format!("`{m}`"))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        );
    }
    let undeclared: Vec<String> = set
        .keys()
        .filter(|k| !spec.outputs.contains(k))
        .cloned()
        .collect();
    for k in undeclared {
        if warnings.len() < 2 * outputs::MAX_WARNINGS {
            warnings.push(format!(
                "warning: output `{k}` is set but not declared with `output {k}`"
            ));
        }
        set.shift_remove(&k);
    }
    // What a worker sends is these values JSON-encoded (escapes make them
    // longer): the same bound here, so a step that fits on one fits on the other.
    let encoded = serde_json::to_string(&set).map_or(usize::MAX, |j| j.len());
    if encoded > outputs::MAX_BYTES {
        return Outcome::failed(
            errors::OUTPUT_TOO_LARGE,
            format!(
                "the outputs are {encoded} bytes JSON-encoded; outputs may hold at most {} \
                 (256 KiB, what a Step Functions payload holds), here as on a worker: write \
                 large data to a file or storage and output its location",
                outputs::MAX_BYTES
            ),
        );
    }
    // Outputs are kept (run.json; on Step Functions the execution history,
    // where masking would also change what later steps get), so a secret
    // must not travel in one. GitHub Actions drops such outputs; failing
    // says so instead of losing data quietly, and fails alike in both places.
    let secrets: Vec<(&str, &str)> = spec
        .env
        .iter()
        .filter(|(k, v)| spec.secret_names.contains(k) && !v.trim().is_empty())
        .map(|(k, v)| (k.as_str(), v.trim()))
        .collect();
    for (output, value) in &set {
        if let Some((secret, _)) = secrets.iter().find(|(_, v)| value.contains(v)) {
            return Outcome::failed(
                errors::SECRET_IN_OUTPUT,
                format!(
                    "output `{output}` holds the value of secret `{secret}`; outputs are \
                     stored (run record, Step Functions history), so a secret cannot pass \
                     through one: give the steps that need it `secret {secret}` instead"
                ),
            );
        }
    }
    Outcome::Succeeded(set)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(script: &str, shell: Option<&str>, image: Option<&str>) -> StepSpec {
        StepSpec {
            run_id: "r".into(),
            pipeline: "p".into(),
            name: "build".into(),
            step: "build".into(),
            image: image.map(str::to_string),
            script: script.into(),
            shell: shell.map(str::to_string),
            env: Vec::new(),
            secret_names: Vec::new(),
            env_remove: Vec::new(),
            workdir: None,
            timeout: None,
            outputs: Vec::new(),
            pipeline_dir: PathBuf::from("."),
            wait_group: false,
        }
    }

    #[test]
    fn default_shell_scripts_go_inline_others_to_a_file() {
        let base = tempfile::tempdir().unwrap();
        let s = spec("echo hi\n", None, None);
        let dir = AttemptDir::create_lean(base.path(), &s).unwrap();
        assert_eq!(
            dir.command(&s).unwrap(),
            ["sh", "-e", "-c", "echo hi\n", "build"]
        );
        assert!(!dir.script.exists());
        let bash = spec("echo hi\n", Some("bash -eo pipefail"), None);
        let words = dir.command(&bash).unwrap();
        assert_eq!(words[..2], ["bash", "-eo"]);
        assert_eq!(words.last().unwrap(), &dir.script.display().to_string());
        assert_eq!(std::fs::read_to_string(&dir.script).unwrap(), "echo hi\n");
        let long = spec(&"x".repeat(INLINE_SCRIPT_MAX + 1), None, None);
        assert_eq!(dir.command(&long).unwrap().len(), 3);
    }

    /// A run id or step name from a task input cannot steer the directory
    /// out of the private base, which only our user can enter.
    #[test]
    fn attempt_dirs_stay_in_a_private_base_whatever_the_names() {
        use std::os::unix::fs::PermissionsExt;
        let base = tempfile::tempdir().unwrap();
        let mut s = spec("true", None, Some("img"));
        s.run_id = "hold-s-1/../../outside/escaped".into();
        s.name = "s[../../x y]".into();
        let dir = AttemptDir::create_lean(base.path(), &s).unwrap();
        let private = dir.root.parent().unwrap();
        assert_eq!(private.parent().unwrap(), base.path());
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o7777;
        assert_eq!(mode(private), 0o700);
        let name = dir.root.file_name().unwrap().to_str().unwrap();
        assert!(
            name.starts_with("topsail-hold-s-1_______outside_escaped-s_______x_y_-"),
            "{name}"
        );
        let host = AttemptDir::create_lean(base.path(), &spec("true", None, None)).unwrap();
        assert_eq!(
            host.root.parent().unwrap(),
            private,
            "one private base per process"
        );
        assert_eq!(mode(&host.root), 0o700);
        assert_eq!(mode(&host.output), 0o600);
    }

    #[test]
    fn lines_are_split_and_a_long_one_is_cut_once() {
        let mut s = LineSplitter::new(Stream::Stdout);
        let texts = |lines: Vec<Line>| lines.into_iter().map(|l| l.text).collect::<Vec<_>>();
        assert_eq!(texts(s.push(b"a\r\nb")), ["a"]);
        assert_eq!(texts(s.push(b"c\n")), ["bc"]);
        // A line over the limit, in pieces, with a character across the cut.
        let mut long = vec![b'x'; MAX_LINE_BYTES - 1];
        long.extend_from_slice("é".as_bytes());
        let cut = s.push(&long);
        assert_eq!(cut.len(), 1);
        assert_eq!(
            cut[0].text,
            format!("{}{CUT_MARKER}", "x".repeat(MAX_LINE_BYTES - 1))
        );
        assert!(s.push(&vec![b'y'; 3 * MAX_LINE_BYTES]).is_empty());
        let end = s.push(b"y\nnext\n");
        assert_eq!(end.len(), 2);
        assert_eq!(end[0].stream, Stream::System);
        let total = MAX_LINE_BYTES + 1 + 3 * MAX_LINE_BYTES + 1;
        let shown = MAX_LINE_BYTES - 1;
        assert!(
            end[0]
                .text
                .starts_with(&format!("a line of {total} bytes was cut to {shown}:")),
            "{}",
            end[0].text
        );
        assert_eq!(end[1].text, "next");
        assert!(s.finish().is_none());
        assert_eq!(texts(s.push(b"tail")), Vec::<String>::new());
        assert_eq!(s.finish().map(|l| l.text).as_deref(), Some("tail"));
    }

    #[test]
    fn pooled_dirs_come_back_only_as_they_were_given() {
        let base = tempfile::tempdir().unwrap();
        let pool = AttemptPool::default();
        let s = spec("true", None, None);
        let fresh = || AttemptDir::create_named(base.path(), &s, false).unwrap();

        let a = fresh();
        std::fs::write(&a.output, "X=1\n").unwrap();
        std::fs::write(&a.script, "leftover").unwrap();
        let root = a.root.clone();
        pool.give_back(base.path(), a);
        let again = pool.take(base.path()).expect("an emptied dir is reused");
        assert_eq!(again.root, root);
        assert_eq!(std::fs::read_to_string(&again.output).unwrap(), "");
        assert!(!again.script.exists());
        assert!(pool.take(base.path()).is_none());
        assert!(pool.take(Path::new("/elsewhere")).is_none());

        std::fs::write(again.tmp.join("f"), "").unwrap();
        assert!(!recycle(&again), "a TMPDIR with files is not reused");
        let b = fresh();
        std::fs::write(b.root.join("extra"), "").unwrap();
        assert!(!recycle(&b), "an unknown file is not reused");
    }
}
