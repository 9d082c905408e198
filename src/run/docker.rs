//! The docker runtime: each attempt in its own container through the Docker
//! Engine API (bollard; no `docker` CLI process per step). The pipeline's
//! directory is bind-mounted at `/workspace`, the attempt's directory at the
//! same path as on the host (so `TMPDIR` and `$TOPSAIL_OUTPUT` mean the same
//! inside and out, and a step may start sibling containers). Containers carry
//! `topsail.run` / `topsail.step` labels and are removed whatever happens.
//! A topsail process killed outright (SIGKILL, OOM) cannot remove its own:
//! each container also names its owner process (`topsail.owner`), and the
//! next topsail on the same machine that talks to the engine removes the
//! containers whose owner is gone.

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
/// `BOOT_ID:PID:START`: the topsail process that made the container (Linux).
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
}

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
        if let Some(owner) = process_identity(std::process::id()) {
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
                    format!("{}:/workspace", spec.pipeline_dir.display()),
                    format!("{root}:{root}"),
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
                eprintln!(
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

/// `BOOT_ID:PID:START` of a live process on this machine (`START` is when
/// it started, in clock ticks since boot, so a reused pid does not match),
/// or `None` where /proc does not tell (not Linux, or no such process).
fn process_identity(pid: u32) -> Option<String> {
    let boot = std::fs::read_to_string("/proc/sys/kernel/random/boot_id").ok()?;
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Field 22 (starttime); the command name before it is in parentheses and
    // may hold spaces, so count from the last `)` (field 2 ends there).
    let start = stat.rsplit_once(')')?.1.split_whitespace().nth(19)?;
    Some(format!("{}:{pid}:{start}", boot.trim()))
}

/// Whether the owner label `owner` names a process that is gone: one from
/// this boot of this machine whose pid is free or now another process.
/// Containers of other machines (a shared engine) or other boots are left.
fn owner_is_gone(owner: &str) -> bool {
    let mut parts = owner.splitn(3, ':');
    let (Some(boot), Some(pid), Some(_)) = (parts.next(), parts.next(), parts.next()) else {
        return false;
    };
    let Ok(this_boot) = std::fs::read_to_string("/proc/sys/kernel/random/boot_id") else {
        return false;
    };
    if boot != this_boot.trim() {
        return false;
    }
    match pid.parse::<u32>() {
        Ok(pid) => process_identity(pid).as_deref() != Some(owner),
        Err(_) => false,
    }
}

/// Remove the containers of topsail processes that were killed before they
/// could (see the module comment). Best effort: a failure only warns.
async fn remove_orphans(docker: &Docker) {
    let list = bollard::query_parameters::ListContainersOptionsBuilder::default()
        .all(true)
        .filters(&HashMap::from([("label", vec![LABEL_OWNER])]))
        .build();
    let Ok(containers) = docker.list_containers(Some(list)).await else {
        return;
    };
    for c in containers {
        let (Some(id), Some(labels)) = (c.id, c.labels) else {
            continue;
        };
        let Some(owner) = labels.get(LABEL_OWNER).filter(|o| owner_is_gone(o)) else {
            continue;
        };
        let remove = RemoveContainerOptionsBuilder::default()
            .force(true)
            .v(true)
            .build();
        let pid = owner.split(':').nth(1).unwrap_or("?");
        let step = labels.get(LABEL_STEP).map_or("?", String::as_str);
        match docker.remove_container(&id, Some(remove)).await {
            Ok(()) => eprintln!(
                "topsail: removed container {} (step `{step}`) left by topsail process {pid}, which was killed",
                &id[..id.len().min(12)]
            ),
            // Another topsail got there first (404 gone, 409 being removed).
            Err(DockerError::DockerResponseServerError {
                status_code: 404 | 409,
                ..
            }) => {}
            Err(e) => eprintln!(
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
        let me = process_identity(std::process::id()).expect("Linux has /proc");
        assert!(!owner_is_gone(&me));
        // Same boot and pid, another start time: the pid was reused.
        let (prefix, _) = me.rsplit_once(':').unwrap();
        assert!(owner_is_gone(&format!("{prefix}:1")));
        // Another boot, or another machine sharing the engine: not ours to judge.
        let other = me.replacen(&me[..8], "00000000", 1);
        assert!(!owner_is_gone(&other));
        assert!(!owner_is_gone("garbage"));
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
