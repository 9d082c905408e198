//! The docker runtime: each attempt in its own container through the Docker
//! Engine API (bollard; no `docker` CLI process per step). The pipeline's
//! directory is bind-mounted at `/workspace`, the attempt's directory at the
//! same path as on the host (so `TMPDIR` and `$TOPSAIL_OUTPUT` mean the same
//! inside and out, and a step may start sibling containers). Containers carry
//! `topsail.run` / `topsail.step` labels and are removed whatever happens.
//! A topsail process killed outright (SIGKILL, OOM) cannot remove its own:
//! each container also names its owner process (`topsail.owner`: boot, pid
//! namespace, pid, start time), and the next topsail that talks to the
//! engine removes the containers whose owner is provably gone: same boot,
//! same pid namespace, and that pid free or another process now. An owner
//! it cannot see (another machine or pid namespace on a shared engine) is
//! never presumed dead.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bollard::Docker;
use bollard::container::LogOutput;
use bollard::errors::Error as DockerError;
use bollard::models::{ContainerCreateBody, HostConfig};
use bollard::query_parameters::{
    AttachContainerOptionsBuilder, CreateImageOptionsBuilder, KillContainerOptionsBuilder,
    LogsOptionsBuilder, RemoveContainerOptionsBuilder,
};
use futures_util::StreamExt;
use tokio::sync::OnceCell;

use crate::run::runtime::{
    AttemptDir, BoxFuture, Exit, LineSplitter, Runtime, StepIo, StepSpec, Stream,
};

pub const LABEL_RUN: &str = "topsail.run";
pub const LABEL_STEP: &str = "topsail.step";
pub const LABEL_PIPELINE: &str = "topsail.pipeline";
/// `BOOT_ID:PID_NS:PID:START`: the topsail process that made the container
/// (Linux): the boot, its pid namespace, its pid and start time there.
pub const LABEL_OWNER: &str = "topsail.owner";

/// Connects on first use, so a pipeline with only host steps never needs Docker.
#[derive(Default)]
pub struct DockerRuntime {
    client: OnceCell<Result<Docker, String>>,
    /// One pull at a time per image, so parallel steps do not pull twice.
    pulls: Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
    /// Images known to be present: not inspected again for every step. A
    /// create that says the image is gone clears the entry and checks again.
    present: Mutex<HashSet<String>>,
    /// A memory limit for every container, in bytes (swap included).
    memory_limit: Option<i64>,
    /// For a worker in a container: the host's path of one of its own
    /// paths, for the engine's bind mounts (`crate::sfn::fleet::paths`).
    host_path: Option<HostPath>,
}

/// Maps a path of this process to the same directory's path on the host.
pub type HostPath = Arc<dyn Fn(&std::path::Path) -> std::path::PathBuf + Send + Sync>;

impl Runtime for DockerRuntime {
    fn run_step<'a>(
        &'a self,
        spec: &'a StepSpec,
        dir: &'a AttemptDir,
        io: StepIo,
    ) -> BoxFuture<'a, Exit> {
        Box::pin(self.run(spec, dir, io))
    }
}

fn docker_host() -> String {
    std::env::var("DOCKER_HOST").unwrap_or_else(|_| "unix:///var/run/docker.sock".into())
}

fn no_docker(e: impl std::fmt::Display) -> String {
    format!(
        "no Docker engine reachable at {} ({e}). Start Docker (for example \
         `sudo systemctl start docker`) or set DOCKER_HOST to a running engine; \
         steps without an `image` run on the host and do not need Docker",
        docker_host()
    )
}

/// Connect honouring `DOCKER_HOST`, speaking the engine's API version.
pub async fn connect() -> Result<Docker, String> {
    let docker = Docker::connect_with_defaults().map_err(no_docker)?;
    match tokio::time::timeout(Duration::from_secs(10), docker.negotiate_version()).await {
        Ok(Ok(d)) => Ok(d),
        Ok(Err(e)) => Err(no_docker(e)),
        Err(_) => Err(no_docker("no answer within 10s")),
    }
}

impl DockerRuntime {
    /// Bind mounts name host paths through `map` (a worker in a container).
    pub fn with_host_paths(map: HostPath) -> DockerRuntime {
        DockerRuntime {
            host_path: Some(map),
            ..DockerRuntime::default()
        }
    }

    fn host(&self, p: &std::path::Path) -> String {
        match &self.host_path {
            Some(map) => map(p).display().to_string(),
            None => p.display().to_string(),
        }
    }

    /// Containers limited to `bytes` of memory (swap included): for a
    /// worker that must bound its steps, and for testing out-of-memory kills.
    pub fn with_memory_limit(bytes: i64) -> DockerRuntime {
        DockerRuntime {
            memory_limit: Some(bytes),
            ..DockerRuntime::default()
        }
    }

    async fn client(&self) -> Result<&Docker, String> {
        self.client
            .get_or_init(|| async {
                let docker = connect().await?;
                remove_orphans(&docker).await;
                Ok(docker)
            })
            .await
            .as_ref()
            .map_err(Clone::clone)
    }

    async fn run(&self, spec: &StepSpec, dir: &AttemptDir, io: StepIo) -> Exit {
        let Some(image) = spec.image.as_deref() else {
            return Exit::Error("internal: the docker runtime got a step without an image".into());
        };
        // A rendered `{{ }}` can make a reference Docker cannot parse; say so
        // before Docker is asked (it would answer with an HTTP status).
        if let Err(why) = crate::model::image_ref::validate(image) {
            return Exit::Error(format!("`{image}` is not a valid image reference: {why}"));
        }
        let docker = match self.client().await {
            Ok(d) => d,
            Err(e) => return Exit::Error(e),
        };
        if let Err(e) = self.ensure_image(docker, image, &io).await {
            return Exit::Error(e);
        }
        if *io.cancel.borrow() {
            return Exit::Cancelled;
        }
        let words = match dir.script_command(spec) {
            Ok(w) => w,
            Err(e) => return Exit::Error(format!("cannot write the step's script: {e}")),
        };
        // The interpreter is the entrypoint (whatever the image has), the
        // script file the command.
        let (entrypoint, cmd) = words.split_at(words.len() - 1);
        let mut env: Vec<String> = spec.env.iter().map(|(k, v)| format!("{k}={v}")).collect();
        env.extend(
            dir.builtin_env(spec)
                .into_iter()
                .map(|(k, v)| format!("{k}={v}")),
        );
        let mut labels = HashMap::from([
            (LABEL_RUN.to_string(), spec.run_id.clone()),
            (LABEL_STEP.to_string(), spec.name.clone()),
            (LABEL_PIPELINE.to_string(), spec.pipeline.clone()),
        ]);
        if let Some(owner) = own_label() {
            labels.insert(LABEL_OWNER.to_string(), owner);
        }
        let root = dir.root.display().to_string();
        let body = ContainerCreateBody {
            image: Some(image.to_string()),
            entrypoint: Some(entrypoint.to_vec()),
            cmd: Some(cmd.to_vec()),
            env: Some(env),
            working_dir: Some(spec.workdir.clone().unwrap_or_else(|| "/workspace".into())),
            labels: Some(labels),
            tty: Some(false),
            host_config: Some(HostConfig {
                binds: Some(vec![
                    format!("{}:/workspace", self.host(&spec.pipeline_dir)),
                    format!("{}:{root}", self.host(&dir.root)),
                ]),
                memory: self.memory_limit,
                memory_swap: self.memory_limit,
                ..Default::default()
            }),
            ..Default::default()
        };
        let create = || {
            docker.create_container(
                None::<bollard::query_parameters::CreateContainerOptions>,
                body.clone(),
            )
        };
        let created = match create().await {
            // Removed since we last looked (another shell, `docker rmi`): check again.
            Err(DockerError::DockerResponseServerError {
                status_code: 404, ..
            }) => {
                self.forget_image(image);
                if let Err(e) = self.ensure_image(docker, image, &io).await {
                    return Exit::Error(e);
                }
                create().await
            }
            other => other,
        };
        let id = match created {
            Ok(r) => r.id,
            Err(e) => {
                return Exit::Error(format!(
                    "cannot create a container from `{image}`: {}",
                    short(&e)
                ));
            }
        };
        let mut exit = run_container(docker, &id, spec, io.clone()).await;
        if exit == Exit::Code(137) && oom_killed(docker, &id).await {
            exit = Exit::OomKilled;
        }
        // Removing takes the engine a while (the container's layer goes);
        // the step's result does not wait for it, the end of the run does.
        let docker = docker.clone();
        crate::run::runtime::cleanup_later(async move {
            let remove = RemoveContainerOptionsBuilder::default()
                .force(true)
                .v(true)
                .build();
            if let Err(e) = docker.remove_container(&id, Some(remove)).await {
                errln!(
                    "topsail: warning: could not remove container {id}: {}",
                    short(&e)
                );
            }
        });
        exit
    }

    fn forget_image(&self, image: &str) {
        self.present
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .remove(image);
    }

    fn known_present(&self, image: &str) -> bool {
        self.present
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .contains(image)
    }

    async fn ensure_image(&self, docker: &Docker, image: &str, io: &StepIo) -> Result<(), String> {
        if self.known_present(image) {
            return Ok(());
        }
        let lock = {
            let mut pulls = self
                .pulls
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            pulls.entry(image.to_string()).or_default().clone()
        };
        let _guard = lock.lock().await;
        if self.known_present(image) {
            return Ok(());
        }
        let mark_present = || {
            self.present
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .insert(image.to_string());
        };
        match docker.inspect_image(image).await {
            Ok(_) => {
                mark_present();
                return Ok(());
            }
            Err(DockerError::DockerResponseServerError {
                status_code: 404, ..
            }) => {}
            Err(e) => return Err(format!("cannot inspect image `{image}`: {}", short(&e))),
        }
        io.system(format!("pulling {image} (not present locally)"))
            .await;
        let (name, tag) = split_tag(image);
        let options = CreateImageOptionsBuilder::default()
            .from_image(name)
            .tag(tag)
            .build();
        let mut stream = docker.create_image(Some(options), None, None);
        let mut last = String::new();
        while let Some(item) = stream.next().await {
            match item {
                Ok(info) => {
                    if let Some(detail) = info.error_detail.and_then(|d| d.message) {
                        return Err(pull_failed(image, &detail));
                    }
                    // Progress bars change many times a second; report status changes only.
                    let status = format!(
                        "{}{}",
                        info.id.map(|i| format!("{i}: ")).unwrap_or_default(),
                        info.status.unwrap_or_default()
                    );
                    if status != last && !status.is_empty() {
                        io.system(format!("pull: {status}")).await;
                        last = status;
                    }
                }
                Err(e) => return Err(pull_failed(image, &short(&e))),
            }
        }
        mark_present();
        Ok(())
    }
}

fn pull_failed(image: &str, why: &str) -> String {
    format!(
        "image `{image}` is not present locally and could not be pulled ({why}); \
         check the name, build or load it locally (`docker build`, `docker load`), \
         or log in to its registry"
    )
}

/// `name:tag` -> (`name`, `tag`); no tag means `latest` (an empty tag would
/// pull every tag). Digests stay whole.
fn split_tag(image: &str) -> (&str, &str) {
    if image.contains('@') {
        return (image, "");
    }
    let slash = image.rfind('/').map_or(0, |i| i + 1);
    match image[slash..].rfind(':') {
        Some(i) => (&image[..slash + i], &image[slash + i + 1..]),
        None => (image, "latest"),
    }
}

/// A one-line message from a bollard error (the engine's own message when it sent one).
fn short(e: &DockerError) -> String {
    match e {
        DockerError::DockerResponseServerError {
            status_code,
            message,
        } => {
            format!("{} (HTTP {status_code})", message.trim())
        }
        other => other.to_string(),
    }
}

/// Whether the engine says the kernel's OOM killer ended the container
/// (exit code 137 alone may as well be a plain SIGKILL).
async fn oom_killed(docker: &Docker, id: &str) -> bool {
    docker
        .inspect_container(
            id,
            None::<bollard::query_parameters::InspectContainerOptions>,
        )
        .await
        .ok()
        .and_then(|c| c.state)
        .and_then(|s| s.oom_killed)
        .unwrap_or(false)
}

async fn run_container(docker: &Docker, id: &str, spec: &StepSpec, mut io: StepIo) -> Exit {
    // Attached before the start, output is streamed from the first byte
    // whatever the container's log driver; should attaching fail, the
    // logs endpoint (which needs a driver that can be read back) still works.
    let attach = AttachContainerOptionsBuilder::default()
        .stream(true)
        .stdout(true)
        .stderr(true)
        .build();
    let attached = docker.attach_container(id, Some(attach)).await.ok();
    if let Err(e) = docker
        .start_container(id, None::<bollard::query_parameters::StartContainerOptions>)
        .await
    {
        return Exit::Error(format!("the container could not start: {}", short(&e)));
    }
    let logs = {
        let io = io.clone();
        if let Some(a) = attached {
            tokio::spawn(async move {
                // Keep our (unused) stdin half open until the output ends.
                let _input = a.input;
                pump_frames(a.output, io).await;
            })
        } else {
            let options = LogsOptionsBuilder::default()
                .follow(true)
                .stdout(true)
                .stderr(true)
                .build();
            tokio::spawn(pump_frames(docker.logs(id, Some(options)), io))
        }
    };
    let timeout = async {
        match spec.timeout {
            Some(t) => tokio::time::sleep(t).await,
            None => std::future::pending().await,
        }
    };
    let mut wait =
        docker.wait_container(id, None::<bollard::query_parameters::WaitContainerOptions>);
    let exit = tokio::select! {
        next = wait.next() => match next {
            Some(Ok(r)) => Exit::Code(r.status_code),
            Some(Err(DockerError::DockerContainerWaitError { code, .. })) => Exit::Code(code),
            Some(Err(e)) => Exit::Error(format!("waiting for the container: {}", short(&e))),
            None => Exit::Error("the engine ended the wait without an exit code".into()),
        },
        () = timeout => Exit::TimedOut,
        _ = io.cancel.wait_for(|c| *c) => Exit::Cancelled,
    };
    if !matches!(exit, Exit::Code(_)) {
        let kill = KillContainerOptionsBuilder::default()
            .signal("SIGKILL")
            .build();
        let _ = docker.kill_container(id, Some(kill)).await;
    }
    // The log stream ends when the container stops; bound the wait anyway.
    let _ = tokio::time::timeout(Duration::from_secs(5), logs).await;
    exit
}

async fn pump_frames(
    mut stream: impl futures_util::Stream<Item = Result<LogOutput, DockerError>> + Unpin,
    io: StepIo,
) {
    // Frames are whatever the process wrote at once: reassemble bounded lines per stream.
    let mut split = [
        LineSplitter::new(Stream::Stdout),
        LineSplitter::new(Stream::Stderr),
    ];
    while let Some(Ok(chunk)) = stream.next().await {
        let (idx, bytes) = match &chunk {
            LogOutput::StdErr { message } => (1, message.as_ref()),
            LogOutput::StdOut { message } | LogOutput::Console { message } => (0, message.as_ref()),
            LogOutput::StdIn { .. } => continue,
        };
        for line in split[idx].push(bytes) {
            io.send(line).await;
        }
    }
    for s in &mut split {
        if let Some(line) = s.finish() {
            io.send(line).await;
        }
    }
}

/// Where this process sees pids: the machine's boot and its own pid
/// namespace. `None` when /proc does not tell, or when it is the /proc of
/// another pid namespace (`unshare --pid` without a new /proc): then no pid
/// read there means anything to us.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Here {
    boot: String,
    pid_ns: String,
}

fn here() -> Option<Here> {
    let boot = std::fs::read_to_string("/proc/sys/kernel/random/boot_id").ok()?;
    // `pid:[4026531836]`: the namespace's inode, unique on this boot.
    let ns = std::fs::read_link("/proc/self/ns/pid").ok()?;
    let ns = ns.to_str()?.strip_prefix("pid:[")?.strip_suffix(']')?;
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    let pid_here: u32 = stat.split_whitespace().next()?.parse().ok()?;
    (pid_here == std::process::id()).then(|| Here {
        boot: boot.trim().to_string(),
        pid_ns: ns.to_string(),
    })
}

/// When process `pid` started, in clock ticks since boot (field 22 of
/// /proc/PID/stat), so that a reused pid does not pass for its old owner.
fn start_time(pid: u32) -> Option<String> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name before it is in parentheses and may hold spaces, so
    // count from the last `)` (field 2 ends there).
    Some(
        stat.rsplit_once(')')?
            .1
            .split_whitespace()
            .nth(19)?
            .to_string(),
    )
}

/// The owner label of this process: `BOOT_ID:PID_NS:PID:START`, or `None`
/// where it cannot be told (a container without the label is never
/// removed by another topsail).
fn own_label() -> Option<String> {
    let h = here()?;
    let pid = std::process::id();
    let start = start_time(pid)?;
    Some(format!("{}:{}:{pid}:{start}", h.boot, h.pid_ns))
}

/// What this process can see of a pid.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Seen {
    /// Running (or a zombie), started at this time.
    Started(String),
    /// No such process in our namespace.
    Absent,
    /// It exists but its start time cannot be read (/proc mounted with
    /// `hidepid`, say).
    Unknown,
}

fn seen(pid: u32) -> Seen {
    if let Some(start) = start_time(pid) {
        return Seen::Started(start);
    }
    let Ok(raw) = i32::try_from(pid) else {
        return Seen::Unknown;
    };
    match nix::sys::signal::kill(nix::unistd::Pid::from_raw(raw), None) {
        Err(nix::errno::Errno::ESRCH) => Seen::Absent,
        _ => Seen::Unknown,
    }
}

/// Whether the owner label `owner` names a process that is provably gone:
/// one of this boot and of *our* pid namespace whose pid is free or now
/// another process. An owner that cannot be seen is never presumed dead:
/// other machines sharing the engine, other boots, other pid namespaces (a
/// CI job in a container on a shared socket), labels of an older topsail
/// that did not record the namespace, and anything unreadable are left.
fn owner_is_gone(owner: &str, here: &Here, seen: impl Fn(u32) -> Seen) -> bool {
    let parts: Vec<&str> = owner.split(':').collect();
    let [boot, ns, pid, start] = parts[..] else {
        return false;
    };
    if boot != here.boot || ns != here.pid_ns || start.is_empty() {
        return false;
    }
    let Ok(pid) = pid.parse::<u32>() else {
        return false;
    };
    match seen(pid) {
        Seen::Absent => true,
        Seen::Started(s) => s != start,
        Seen::Unknown => false,
    }
}

/// Remove the containers of topsail processes that were killed before they
/// could (see the module comment). Best effort: a failure only warns.
async fn remove_orphans(docker: &Docker) {
    let list = bollard::query_parameters::ListContainersOptionsBuilder::default()
        .all(true)
        .filters(&HashMap::from([("label", vec![LABEL_OWNER])]))
        .build();
    // Where we cannot tell who is alive, nobody is presumed dead.
    let Some(here) = here() else {
        return;
    };
    let Ok(containers) = docker.list_containers(Some(list)).await else {
        return;
    };
    for c in containers {
        let (Some(id), Some(labels)) = (c.id, c.labels) else {
            continue;
        };
        let Some(owner) = labels
            .get(LABEL_OWNER)
            .filter(|o| owner_is_gone(o, &here, seen))
        else {
            continue;
        };
        let remove = RemoveContainerOptionsBuilder::default()
            .force(true)
            .v(true)
            .build();
        let pid = owner.split(':').nth(2).unwrap_or("?");
        let step = labels.get(LABEL_STEP).map_or("?", String::as_str);
        match docker.remove_container(&id, Some(remove)).await {
            Ok(()) => errln!(
                "topsail: removed container {} (step `{step}`) left by topsail process {pid}, which was killed",
                &id[..id.len().min(12)]
            ),
            // Another topsail got there first (404 gone, 409 being removed).
            Err(DockerError::DockerResponseServerError {
                status_code: 404 | 409,
                ..
            }) => {}
            Err(e) => errln!(
                "topsail: warning: could not remove container {id} left by a killed topsail: {}",
                short(&e)
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_owner_label_tells_live_from_gone_processes() {
        let here = here().expect("Linux has /proc for our pid namespace");
        let me = own_label().expect("Linux has /proc");
        assert!(!owner_is_gone(&me, &here, seen));
        let [boot, ns, pid, start] = me.split(':').collect::<Vec<_>>()[..] else {
            panic!("{me}");
        };
        let label = |b: &str, n: &str, p: &str, s: &str| format!("{b}:{n}:{p}:{s}");
        let at = |s: &'static str| move |_: u32| Seen::Started(s.to_string());
        // Same boot and namespace, another start time: the pid was reused.
        assert!(owner_is_gone(&label(boot, ns, pid, "1"), &here, seen));
        assert!(owner_is_gone(&label(boot, ns, "7", "10"), &here, at("11")));
        assert!(!owner_is_gone(&label(boot, ns, "7", "10"), &here, at("10")));
        // Same boot and namespace, no such pid: gone.
        assert!(owner_is_gone(&label(boot, ns, "7", "10"), &here, |_| {
            Seen::Absent
        }));
        // There but unreadable (hidepid): alive as far as we know.
        assert!(!owner_is_gone(&label(boot, ns, "7", "10"), &here, |_| {
            Seen::Unknown
        }));
        // Another pid namespace (a CI job's container), another boot or
        // machine: not ours to judge, whatever our /proc says of that pid.
        let gone = |_: u32| Seen::Absent;
        assert!(!owner_is_gone(
            &label(boot, "4026530000", "7", "10"),
            &here,
            gone
        ));
        assert!(!owner_is_gone(
            &label("other-boot", ns, "7", "10"),
            &here,
            gone
        ));
        // An older topsail's `BOOT:PID:START` says nothing of its namespace.
        assert!(!owner_is_gone(&format!("{boot}:7:10"), &here, gone));
        assert!(!owner_is_gone("garbage", &here, gone));
        assert!(!owner_is_gone(&label(boot, ns, "x", "10"), &here, gone));
        assert!(!owner_is_gone(&label(boot, ns, "7", ""), &here, gone));
        // A pid that exists is seen as started, one that does not as absent.
        assert_eq!(seen(std::process::id()), Seen::Started(start.to_string()));
        assert_eq!(seen(u32::MAX / 2), Seen::Absent);
    }

    use super::split_tag;

    #[test]
    fn tags_split_after_the_last_slash() {
        assert_eq!(split_tag("alpine:3.20"), ("alpine", "3.20"));
        assert_eq!(split_tag("alpine"), ("alpine", "latest"));
        assert_eq!(
            split_tag("localhost:5000/a/b"),
            ("localhost:5000/a/b", "latest")
        );
        assert_eq!(
            split_tag("localhost:5000/a/b:1"),
            ("localhost:5000/a/b", "1")
        );
        assert_eq!(split_tag("a@sha256:00"), ("a@sha256:00", ""));
    }
}
