//! `topsail worker`: the activity worker. It long-polls GetActivityTask,
//! builds each task's [`StepSpec`] with the local runner's builder
//! ([`spec::build`], under the worker's own [`Policy`]), runs it through the
//! runner's [`Runtime`]s with [`run_attempt`] (so a step means the same as
//! under `topsail run`),
//! heartbeats while it runs, and answers SendTaskSuccess with a
//! [`TaskOutput`] or SendTaskFailure with an error name the state machine's
//! Retry/Catch matches ([`crate::model::errors`], the local runner's names).
//!
//! Safety: a task names its own script and image, so whoever can start
//! executions chooses what runs here. Host steps run only with
//! `--allow-host`, images only when they match an `--allow-image` glob, and
//! a task gets only the secrets the operator named with `--secret` (none by
//! default; asking for another is `topsail.SecretNotAllowed`). Every name
//! from the task input that reaches a path, an environment variable or a
//! container label is checked first ([`check_identifiers`]): a bad one is
//! `topsail.BadTaskInput`. A host step does not inherit the worker's
//! environment (its AWS credentials, say): it gets
//! [`crate::run::host::BASE_ENV`] and what the task itself carries.
//!
//! Shutdown (SIGTERM, Ctrl-C): stop polling, give running tasks `--grace` to
//! finish, then stop them and report `topsail.WorkerShutdown` (retried on
//! another worker by the compiled Retry); exit 0. The poll outstanding at
//! the signal is finished first (up to a minute), and a task it is handed
//! goes back at once as `topsail.WorkerShutdown`
//! ([`crate::sfn::stop::finish_poll`]): no task is left with a worker that
//! is gone. A worker that dies without answering (SIGKILL) stops
//! heartbeating; Step Functions then fails the task with
//! `States.HeartbeatTimeout`, which the same Retry sends elsewhere.

use std::collections::VecDeque;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use indexmap::IndexMap;
use tokio::sync::{Semaphore, watch};
use tokio::task::JoinSet;

use crate::asl::MAX_PAYLOAD_BYTES;
use crate::asl::task::{TASK_INPUT_VERSION, TaskInput, TaskOutput};
use crate::model::errors;
use crate::model::limits::DEFAULT_HEARTBEAT_SECONDS;
use crate::model::{Text, format_duration, script_problems};
use crate::run::runtime::{Outcome, StepIo, StepSpec, Stream};
use crate::run::spec::{self, Place, Policy, StepError, StepView};
use crate::run::{Runtimes, Secrets, runtime};
use crate::sfn::{Clients, err, fleet};

#[derive(Clone, Debug)]
pub struct WorkerOptions {
    /// The activities served (several pipelines or queues), one poller each.
    pub activities: Vec<String>,
    pub name: String,
    pub concurrency: usize,
    pub allow_host: bool,
    pub allow_images: Vec<String>,
    /// The secrets tasks may ask for (`--secret NAME`): names only; the
    /// values are read from the worker's environment when a task asks.
    pub secrets: Vec<String>,
    pub grace: Duration,
    /// Host steps' working directory; mounted at /workspace in containers.
    pub dir: PathBuf,
    pub tmp_base: PathBuf,
    /// Whether step lines go to CloudWatch Logs (`--no-logs`: not).
    pub logs: bool,
    /// `--log-group`: the group for every task; else each task's lines go
    /// to its pipeline's group, named after the activity it came from
    /// ([`crate::sfn::logs::group_for_activity`]).
    pub log_group: Option<String>,
    /// Queues, credentials, `--pass-env`, `--once`, `--idle-timeout`.
    pub fleet: crate::sfn::fleet::FleetOptions,
}

/// Lines of output (stdout and stderr, in order) kept for a failure's cause.
const OUTPUT_TAIL: usize = 20;
/// How long a finished step's lines may take to reach CloudWatch Logs
/// before the task is answered.
const LOG_FLUSH: Duration = Duration::from_secs(5);
/// Step Functions limits: `error` 256 characters, `cause` 32768.
const MAX_ERROR: usize = 256;
const MAX_CAUSE: usize = 32_768;

/// Why a worker stopped serving before it was told to.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    /// GetActivityTask failed in a way no retry mends (`why` says how and
    /// what to do): no such activity, a malformed ARN, access denied.
    #[error("cannot serve activity {activity}: GetActivityTask failed: {why}")]
    CannotPoll { activity: String, why: String },
}

/// Serve tasks until `shutdown` becomes true, then drain. Errors only for
/// what makes serving impossible (GetActivityTask fails in a way no retry
/// mends: no such activity, access denied), after draining the running
/// tasks; a failing task is reported, not returned.
///
/// Each activity has its own poller; all share one concurrency limit (a
/// poller holds a slot while it polls, so a task is never taken without
/// room for it). `--once` and `--idle-timeout` end serving like a shutdown.
pub async fn serve(
    c: Clients,
    opts: Arc<WorkerOptions>,
    runtimes: Runtimes,
    mut shutdown: watch::Receiver<bool>,
) -> Result<(), ServeError> {
    log(
        &opts.name,
        "",
        &format!(
            "polling {} (concurrency {}, host steps {}, images: {}, secrets: {})",
            opts.activities.join(" "),
            opts.concurrency,
            if opts.allow_host {
                "allowed"
            } else {
                "refused"
            },
            if opts.allow_images.is_empty() {
                "none".to_string()
            } else {
                opts.allow_images.join(" ")
            },
            if opts.secrets.is_empty() {
                "none".to_string()
            } else {
                // Names only; an allowed secret the worker lacks is said now.
                opts.secrets
                    .iter()
                    .map(|n| {
                        if std::env::var_os(n).is_some() {
                            n.clone()
                        } else {
                            format!("{n} (not set)")
                        }
                    })
                    .collect::<Vec<_>>()
                    .join(" ")
            }
        ),
    );
    // `--once`: one slot, so that no second task is taken meanwhile.
    let slots = if opts.fleet.once {
        1
    } else {
        opts.concurrency.max(1)
    };
    let slots = Arc::new(Semaphore::new(slots));
    let (kill_tx, kill_rx) = watch::channel(false);
    let (stop_tx, stop_rx) = watch::channel(false);
    let (got_tx, mut got_rx) = tokio::sync::mpsc::channel::<Polled>(opts.activities.len().max(1));
    let mut pollers: JoinSet<Option<ServeError>> = JoinSet::new();
    for arn in &opts.activities {
        pollers.spawn(poll_activity(
            c.clone(),
            opts.clone(),
            arn.clone(),
            slots.clone(),
            stop_rx.clone(),
            got_tx.clone(),
        ));
    }
    drop(got_tx);
    let mut tasks: JoinSet<()> = JoinSet::new();
    let spawn = |tasks: &mut JoinSet<()>, p: Polled| {
        let task = Task {
            c: c.clone(),
            opts: opts.clone(),
            runtimes: runtimes.clone(),
            activity: p.activity,
            token: p.token,
            polled: p.at,
            answer: std::sync::Mutex::new(("unanswered", String::new())),
        };
        let kill = kill_rx.clone();
        let (input, permit) = (p.input, p.permit);
        fleet::metrics::task_taken();
        tasks.spawn(async move {
            task.handle(&input, kill).await;
            let (outcome, error) = task.answer.lock().map(|a| a.clone()).unwrap_or_default();
            fleet::metrics::finished(outcome, &error, task.polled.elapsed());
            drop(permit);
        });
    };
    let mut fatal = None;
    let mut busy_until = Instant::now();
    loop {
        let idle_at = opts
            .fleet
            .idle_timeout
            .filter(|_| tasks.is_empty())
            .map(|d| tokio::time::Instant::from_std(busy_until + d));
        tokio::select! {
            got = got_rx.recv() => {
                let Some(p) = got else { break };
                spawn(&mut tasks, p);
                busy_until = Instant::now();
                if opts.fleet.once {
                    log(&opts.name, "", "--once: took a task; no more polling");
                    break;
                }
            }
            Some(r) = tasks.join_next(), if !tasks.is_empty() => {
                joined(&opts.name, r);
                busy_until = Instant::now();
            }
            Some(r) = pollers.join_next(), if !pollers.is_empty() => {
                if let Ok(Some(e)) = r {
                    fatal = Some(e);
                    break;
                }
            }
            () = async {
                match idle_at {
                    Some(at) => tokio::time::sleep_until(at).await,
                    None => std::future::pending().await,
                }
            } => {
                log(
                    &opts.name,
                    "",
                    &format!(
                        "idle for {}: stopping (--idle-timeout)",
                        opts.fleet.idle_timeout.map(format_duration).unwrap_or_default()
                    ),
                );
                break;
            }
            () = until(&mut shutdown) => break,
        }
    }
    let _ = stop_tx.send(true);
    // The pollers finish their outstanding polls (up to a minute, handing
    // back what they get) while the running tasks drain within the grace.
    let pollers_done = async {
        let mut first = None;
        while let Some(r) = pollers.join_next().await {
            if let Ok(Some(e)) = r {
                first.get_or_insert(e);
            }
        }
        first
    };
    let drain = async {
        // A task a poller took just before the stop is ours: run it too.
        while let Ok(p) = got_rx.try_recv() {
            spawn(&mut tasks, p);
        }
        while let Some(r) = tasks.try_join_next() {
            joined(&opts.name, r);
        }
        let running = tasks.len();
        if running > 0 && opts.fleet.once && !*shutdown.borrow() {
            // `--once` is not a shutdown: the task runs to its end.
            while let Some(r) = tasks.join_next().await {
                joined(&opts.name, r);
            }
        } else if running > 0 {
            log(
                &opts.name,
                "",
                &format!(
                    "stopping: no new tasks; waiting up to {} for {running} running task{}",
                    format_duration(opts.grace),
                    if running == 1 { "" } else { "s" }
                ),
            );
            let drained = tokio::time::timeout(opts.grace, async {
                while let Some(r) = tasks.join_next().await {
                    joined(&opts.name, r);
                }
            })
            .await;
            if drained.is_err() {
                log(
                    &opts.name,
                    "",
                    "grace period over: stopping the tasks still running",
                );
                let _ = kill_tx.send(true);
                while let Some(r) = tasks.join_next().await {
                    joined(&opts.name, r);
                }
            }
        }
    };
    let (poll_error, ()) = tokio::join!(pollers_done, drain);
    if let Some(e) = poll_error {
        fatal.get_or_insert(e);
    }
    runtime::finish_cleanup().await;
    log(&opts.name, "", "stopped");
    fatal.map_or(Ok(()), Err)
}

/// A task a poller took, with the slot it holds.
struct Polled {
    /// The activity it came from (a worker may serve several).
    activity: String,
    token: String,
    input: String,
    permit: tokio::sync::OwnedSemaphorePermit,
    at: Instant,
}

/// Poll one activity until `stop`: take a slot, long-poll, hand the task
/// (with its slot) to [`serve`]. Ends with the error that makes polling
/// this activity impossible, if that is why it ended.
async fn poll_activity(
    c: Clients,
    opts: Arc<WorkerOptions>,
    arn: String,
    slots: Arc<Semaphore>,
    mut stop: watch::Receiver<bool>,
    got: tokio::sync::mpsc::Sender<Polled>,
) -> Option<ServeError> {
    let mut backoff = Duration::from_millis(500);
    loop {
        let permit = tokio::select! {
            p = slots.clone().acquire_owned() => p.ok()?,
            () = until(&mut stop) => return None,
        };
        let poll = c
            .sfn
            .get_activity_task()
            .activity_arn(&arn)
            .worker_name(&opts.name)
            .send();
        let mut poll = Box::pin(poll);
        let asked = Instant::now();
        let answer = tokio::select! {
            a = &mut poll => {
                fleet::metrics::polled(asked.elapsed());
                a
            }
            () = until(&mut stop) => {
                // A poll cannot be taken back: Step Functions may hand it a
                // task after we stop listening, which would then wait for its
                // heartbeat to time out. Finish it, and hand back what it gets.
                crate::sfn::stop::finish_poll(&c, &opts.name, poll).await;
                return None;
            }
        };
        let polled = Instant::now();
        match answer {
            Err(e) if let Some(why) = cannot_pass(&e) => {
                log(
                    &opts.name,
                    "",
                    &format!(
                        "GetActivityTask on {arn} failed: {why}; no retry can mend that: stopping"
                    ),
                );
                return Some(ServeError::CannotPoll { activity: arn, why });
            }
            Err(e) => {
                drop(permit);
                log(
                    &opts.name,
                    "",
                    &format!(
                        "GetActivityTask failed: {}; retrying in {}",
                        err(e),
                        format_duration(backoff)
                    ),
                );
                tokio::select! {
                    () = tokio::time::sleep(backoff) => {}
                    () = until(&mut stop) => return None,
                }
                backoff = (backoff * 2).min(Duration::from_secs(30));
            }
            Ok(out) => {
                backoff = Duration::from_millis(500);
                let (Some(token), Some(input)) = (out.task_token(), out.input()) else {
                    continue; // the 60 s long poll ended without a task
                };
                if token.is_empty() {
                    continue;
                }
                let p = Polled {
                    activity: arn.clone(),
                    token: token.to_string(),
                    input: input.to_string(),
                    permit,
                    at: polled,
                };
                if got.send(p).await.is_err() {
                    return None;
                }
            }
        }
    }
}

/// GetActivityTask errors that no retry mends, said plainly (the error's
/// code and message, and what to do): the activity does not exist or its
/// ARN is malformed, or these credentials may not poll it. `None` for what
/// may pass (throttling, network and server errors): those are retried.
fn cannot_pass(
    e: &aws_sdk_sfn::error::SdkError<
        aws_sdk_sfn::operation::get_activity_task::GetActivityTaskError,
    >,
) -> Option<String> {
    use aws_sdk_sfn::error::ProvideErrorMetadata;
    let service = e.as_service_error()?;
    let help = if service.is_activity_does_not_exist() || service.is_invalid_arn() {
        "check --activity-arn: `topsail deploy` prints the pipeline's activity ARN"
    } else if matches!(
        service.code(),
        Some(
            "AccessDeniedException"
                | "AccessDenied"
                | "UnrecognizedClientException"
                | "InvalidClientTokenId"
                | "NotAuthorized"
        )
    ) {
        "these credentials may not poll this activity (states:GetActivityTask)"
    } else {
        return None;
    };
    let code = service.code().unwrap_or("error");
    Some(match service.message() {
        Some(m) if !m.is_empty() => format!("{code}: {m} ({help})"),
        _ => format!("{code} ({help})"),
    })
}

/// A finished task: one that panicked is logged (its task token is then
/// answered by no one: Step Functions times it out by its heartbeat).
fn joined(worker: &str, r: Result<(), tokio::task::JoinError>) {
    let Err(e) = r else { return };
    let why = if e.is_panic() {
        let payload = e.into_panic();
        payload
            .downcast_ref::<&str>()
            .map(|s| (*s).to_string())
            .or_else(|| payload.downcast_ref::<String>().cloned())
            .map_or_else(|| "panicked".into(), |m| format!("panicked: {m}"))
    } else {
        e.to_string()
    };
    log(
        worker,
        "",
        &format!(
            "internal error: a task ended abnormally ({why}); Step Functions fails it when its heartbeat times out"
        ),
    );
}

/// The attempt's start as a sortable UTC tag (`20261202T070000.123Z`).
fn chrono_tag() -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    let secs = now.as_secs() as i64;
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    let (y, m, d) = crate::run::civil_from_days(days);
    format!(
        "{y:04}{m:02}{d:02}T{:02}{:02}{:02}.{:03}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60,
        now.subsec_millis()
    )
}

/// Resolves once the flag is true; never, if its sender is gone.
async fn until(flag: &mut watch::Receiver<bool>) {
    if flag.wait_for(|v| *v).await.is_err() {
        std::future::pending::<()>().await;
    }
}

/// `text` with control characters written as escapes (`\n`, `\u{1b}`), for a
/// log line that must stay one line and must not drive the terminal.
pub(crate) fn printable(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        if c.is_control() {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
    }
    out
}

/// One line of the worker's log: its own events and its steps' lines. They
/// go through `tracing` (target `topsail::worker`, fields `worker`, `unit`)
/// to the subscriber `topsail worker` installs ([`install_log`]), as text or
/// as JSON; without one (a library caller), straight to stdout as text.
pub(crate) fn log(worker: &str, unit: &str, text: &str) {
    if tracing::dispatcher::has_been_set() {
        tracing::info!(target: "topsail::worker", worker, unit, "{text}");
    } else {
        outln!("{}", plain_line(worker, unit, text));
    }
}

fn plain_line(worker: &str, unit: &str, text: &str) -> String {
    if unit.is_empty() {
        format!("[{worker}] {text}")
    } else {
        format!("[{worker}] {unit} | {text}")
    }
}

/// The worker's log format (`--log-format`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    /// `[worker] unit | text`, one line each
    Text,
    /// One JSON object a line (`timestamp`, `level`, `fields.message`,
    /// `fields.worker`, `fields.unit`), for log shippers
    Json,
}

/// Install the worker's log subscriber on stdout: only topsail's own
/// events (the SDK's are left out: they would dump requests), at info.
pub fn install_log(format: LogFormat) {
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::new("topsail=info");
    let _ = match format {
        LogFormat::Text => tracing_subscriber::fmt()
            .with_env_filter(filter)
            .with_writer(std::io::stdout)
            .with_ansi(false)
            .event_format(PlainFormat)
            .try_init(),
        LogFormat::Json => tracing_subscriber::fmt()
            .with_env_filter(filter)
            .with_writer(std::io::stdout)
            .with_ansi(false)
            .json()
            .with_current_span(false)
            .with_span_list(false)
            .with_target(false)
            .try_init(),
    };
}

/// The text format: exactly the worker's historical `[worker] unit | text`.
struct PlainFormat;

impl<S, N> tracing_subscriber::fmt::FormatEvent<S, N> for PlainFormat
where
    S: tracing::Subscriber + for<'a> tracing_subscriber::registry::LookupSpan<'a>,
    N: for<'a> tracing_subscriber::fmt::FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        _ctx: &tracing_subscriber::fmt::FmtContext<'_, S, N>,
        mut writer: tracing_subscriber::fmt::format::Writer<'_>,
        event: &tracing::Event<'_>,
    ) -> std::fmt::Result {
        let mut f = LineFields::default();
        event.record(&mut f);
        writeln!(writer, "{}", plain_line(&f.worker, &f.unit, &f.message))
    }
}

#[derive(Default)]
struct LineFields {
    worker: String,
    unit: String,
    message: String,
}

impl tracing::field::Visit for LineFields {
    fn record_str(&mut self, field: &tracing::field::Field, value: &str) {
        match field.name() {
            "worker" => self.worker = value.to_string(),
            "unit" => self.unit = value.to_string(),
            "message" => self.message = value.to_string(),
            _ => {}
        }
    }

    fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn std::fmt::Debug) {
        if field.name() == "message" {
            self.message = format!("{value:?}");
        }
    }
}

struct Task {
    c: Clients,
    opts: Arc<WorkerOptions>,
    runtimes: Runtimes,
    activity: String,
    token: String,
    polled: Instant,
    /// How the task was answered, for the metrics: the outcome and the
    /// error name.
    answer: std::sync::Mutex<(&'static str, String)>,
}

impl Task {
    async fn handle(&self, input: &str, mut kill: watch::Receiver<bool>) {
        // The version first: an input this worker cannot read says why.
        let mut ti = match TaskInput::read(input) {
            Ok(t) => t,
            Err(msg) => {
                log(&self.opts.name, "?", &msg);
                self.fail("?", errors::BAD_INPUT, &msg).await;
                return;
            }
        };
        // Names next: they reach paths, the environment and container labels.
        if let Err(msg) = check_identifiers(&ti) {
            self.refuse("?", errors::BAD_INPUT, &msg).await;
            return;
        }
        let unit = match &ti.values.item {
            Some(i) => format!("{} {}[{i}]", ti.run_id, ti.step),
            None => format!("{} {}", ti.run_id, ti.step),
        };
        // The label goes to the worker's log on every line: an item may hold
        // control characters (a terminal's escapes) or a secret's value.
        let unit = printable(&unit);
        // `aws` steps: credentials as secrets, if the operator allows them.
        let aws = match fleet::creds::task_aws(&self.opts.fleet, &self.opts.name, &ti).await {
            Ok(a) => a,
            Err(cause) => {
                self.refuse(&unit, fleet::creds::AWS_CREDENTIALS, &cause)
                    .await;
                return;
            }
        };
        let secrets = match task_secrets(&ti, &self.opts, aws.secrets.clone()) {
            Ok(s) => s,
            Err(cause) => {
                self.refuse(&unit, errors::SECRET_NOT_ALLOWED, &cause).await;
                return;
            }
        };
        let unit = secrets.mask(&unit);
        ti.secrets
            .extend(aws.secrets.iter().map(|(name, _)| name.clone()));
        let spec = match build_spec(&ti, &self.opts, &secrets) {
            Ok(mut s) => {
                fleet::add_env(&mut s.env, aws.plain);
                let passed = fleet::pass_env(&self.opts.fleet, &s.env);
                fleet::add_env(&mut s.env, passed);
                s
            }
            Err(StepError { error, cause }) => {
                self.refuse(&unit, error, &cause).await;
                return;
            }
        };
        let where_ = spec
            .image
            .as_ref()
            .map_or_else(|| "on the host".to_string(), |i| format!("in {i}"));
        log(&self.opts.name, &unit, &format!("started {where_}"));
        let runtime = self.runtimes.for_spec(&spec);
        // A third of HeartbeatSeconds: two heartbeats may be late or lost
        // before Step Functions gives up on this worker. Absent: the default
        // (or none, or an old input), see `TaskInput::heartbeat_seconds`.
        let hb = ti.heartbeat_seconds.unwrap_or(DEFAULT_HEARTBEAT_SECONDS);
        // At least every few seconds: a stopped execution's step is killed
        // within that, not at a third of HeartbeatSeconds.
        let every = Duration::from_secs_f64(hb as f64 / 3.0)
            .clamp(Duration::from_millis(250), crate::sfn::stop::CHECK_EVERY);
        let group = self.opts.logs.then(|| {
            self.opts
                .log_group
                .clone()
                .unwrap_or_else(|| crate::sfn::logs::group_for_activity(&self.activity))
        });
        let mut ship = match (&group, &ti.values.item) {
            (None, _) => crate::sfn::logs::ship::Shipper::off(),
            (Some(group), item) => {
                let unit = match item {
                    Some(i) => secrets.mask(&format!("{}[{i}]", ti.step)),
                    None => ti.step.clone(),
                };
                let attempt = format!("{}-{}", chrono_tag(), self.opts.name);
                crate::sfn::logs::ship::Shipper::start(
                    self.c.logs.clone(),
                    group.clone(),
                    crate::sfn::logs::stream_name(&ti.run_id, &unit, &attempt),
                )
            }
        };
        ship.push(
            Stream::System,
            &format!("started {where_} on worker {}", self.opts.name),
        );
        let (cancel_tx, cancel_rx) = watch::channel(false);
        let (tx, mut rx) = runtime::line_channel();
        let io = StepIo {
            lines: tx,
            cancel: cancel_rx,
        };
        let fut = runtime::run_attempt(runtime.as_ref(), &spec, &self.opts.tmp_base, io);
        tokio::pin!(fut);
        let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
        let mut tail: VecDeque<String> = VecDeque::new();
        // As under `topsail run`: multi-line secrets masked as a unit.
        let mut masker = secrets.step_masker();
        let mut lost: Option<(String, Instant)> = None;
        let mut stopped = false;
        let started = Instant::now();
        let outcome = loop {
            tokio::select! {
                biased;
                outcome = &mut fut => break outcome,
                Some(line) = rx.recv() => self.show_all(&unit, masker.push(line), &mut tail, &mut ship),
                _ = tick.tick(), if lost.is_none() => {
                    if let Err(e) = self.c.sfn.send_task_heartbeat().task_token(&self.token).send().await {
                        let gone = e.as_service_error().is_some_and(|s| {
                            s.is_task_timed_out() || s.is_task_does_not_exist() || s.is_invalid_token()
                        });
                        if gone {
                            // Said once the step is killed and cleaned up.
                            lost = Some((crate::sfn::stop::gone_line(&e), Instant::now()));
                            let _ = cancel_tx.send(true);
                        } else {
                            log(&self.opts.name, &unit, &format!("warning: heartbeat failed: {}", err(e)));
                        }
                    }
                }
                () = until(&mut kill), if !stopped => {
                    stopped = true;
                    let _ = cancel_tx.send(true);
                }
            }
        };
        while let Ok(line) = rx.try_recv() {
            self.show_all(&unit, masker.push(line), &mut tail, &mut ship);
        }
        self.show_all(&unit, masker.finish(), &mut tail, &mut ship);
        let ran = started.elapsed();
        if let Some((why, at)) = &lost {
            let msg = format!(
                "{why}: killed the step and cleaned up in {:.1}s",
                at.elapsed().as_secs_f64()
            );
            log(&self.opts.name, &unit, &msg);
            ship.push(Stream::System, &msg);
            self.finish_logs(&unit, ship).await;
            self.answered("stopped", "");
            return;
        }
        match &outcome {
            Outcome::Succeeded(_) => ship.push(
                Stream::System,
                &format!("succeeded in {:.1}s", ran.as_secs_f64()),
            ),
            Outcome::Failed { error, cause } => ship.push(
                Stream::System,
                &format!(
                    "failed: {} [{error}]",
                    secrets.mask(cause.lines().next().unwrap_or(""))
                ),
            ),
            Outcome::Cancelled => ship.push(Stream::System, "stopped: the worker is shutting down"),
        }
        self.finish_logs(&unit, ship).await;
        match outcome {
            Outcome::Succeeded(values) => {
                let out = TaskOutput {
                    version: TASK_INPUT_VERSION,
                    outputs: ti
                        .outputs
                        .iter()
                        .map(|o| {
                            (
                                o.key.clone(),
                                values.get(&o.name).cloned().unwrap_or_default(),
                            )
                        })
                        .collect::<IndexMap<_, _>>(),
                };
                let json = serde_json::to_string(&out).expect("a TaskOutput always serializes");
                if json.len() > MAX_PAYLOAD_BYTES {
                    let msg = format!(
                        "the outputs are {} bytes; a Step Functions payload holds at most {MAX_PAYLOAD_BYTES} (256 KiB): write large data to storage and output its location",
                        json.len()
                    );
                    log(
                        &self.opts.name,
                        &unit,
                        &format!("failed: {msg} [{}]", errors::OUTPUT_TOO_LARGE),
                    );
                    self.fail(&unit, errors::OUTPUT_TOO_LARGE, &msg).await;
                    return;
                }
                match self
                    .c
                    .sfn
                    .send_task_success()
                    .task_token(&self.token)
                    .output(json)
                    .send()
                    .await
                {
                    Ok(_) => {
                        self.answered("succeeded", "");
                        log(
                            &self.opts.name,
                            &unit,
                            &format!(
                                "succeeded in {:.1}s (handled in {} ms, run {} ms)",
                                ran.as_secs_f64(),
                                self.polled.elapsed().as_millis(),
                                ran.as_millis()
                            ),
                        );
                    }
                    Err(e) => log(
                        &self.opts.name,
                        &unit,
                        &format!("SendTaskSuccess failed: {}", err(e)),
                    ),
                }
            }
            Outcome::Failed { error, cause } => {
                let mut cause = secrets.mask(&cause);
                if !tail.is_empty() {
                    cause.push_str("\nlast lines of output:\n");
                    cause.push_str(&tail.iter().cloned().collect::<Vec<_>>().join("\n"));
                }
                log(
                    &self.opts.name,
                    &unit,
                    &format!("failed: {} [{error}]", cause.lines().next().unwrap_or("")),
                );
                self.fail(&unit, &error, &cause).await;
            }
            Outcome::Cancelled => {
                let msg = format!(
                    "worker {} was stopped and the step did not finish within its grace period ({})",
                    self.opts.name,
                    format_duration(self.opts.grace)
                );
                log(
                    &self.opts.name,
                    &unit,
                    &format!("stopped: {msg} [{}]", errors::WORKER_SHUTDOWN),
                );
                self.fail(&unit, errors::WORKER_SHUTDOWN, &msg).await;
            }
        }
    }

    fn show_all(
        &self,
        unit: &str,
        lines: Vec<(Stream, String)>,
        tail: &mut VecDeque<String>,
        ship: &mut crate::sfn::logs::ship::Shipper,
    ) {
        for (stream, text) in lines {
            ship.push(stream, &text);
            self.show(unit, stream, text, tail);
        }
    }

    /// A masked line to the worker's log; stdout and stderr also to the
    /// failure's tail, in the order printed.
    fn show(&self, unit: &str, stream: Stream, text: String, tail: &mut VecDeque<String>) {
        match stream {
            Stream::Stdout => {
                log(&self.opts.name, unit, &text);
                tail.push_back(text);
            }
            Stream::Stderr => {
                log(&self.opts.name, unit, &format!("[stderr] {text}"));
                tail.push_back(format!("[stderr] {text}"));
            }
            Stream::System => log(&self.opts.name, unit, &format!("> {text}")),
        }
        if tail.len() > OUTPUT_TAIL {
            tail.pop_front();
        }
    }

    /// Wait (a bounded while) for the step's lines to reach CloudWatch Logs,
    /// so that `topsail logs` has them all once the task is answered.
    async fn finish_logs(&self, unit: &str, ship: crate::sfn::logs::ship::Shipper) {
        let done = ship.finish(LOG_FLUSH).await;
        if done.lost > 0 || (done.sent == 0 && done.error.is_some()) {
            log(
                &self.opts.name,
                unit,
                &format!(
                    "warning: {} line{} of this step not in CloudWatch Logs ({})",
                    done.lost,
                    if done.lost == 1 { "" } else { "s" },
                    done.error.as_deref().unwrap_or("unknown error")
                ),
            );
        }
    }

    fn answered(&self, outcome: &'static str, error: &str) {
        if let Ok(mut a) = self.answer.lock() {
            *a = (outcome, error.to_string());
        }
    }

    /// Refuse the task before anything ran: say why in the log, fail it.
    async fn refuse(&self, unit: &str, error: &str, cause: &str) {
        log(
            &self.opts.name,
            unit,
            &format!("refused: {cause} [{error}]"),
        );
        self.fail(unit, error, cause).await;
    }

    async fn fail(&self, unit: &str, error: &str, cause: &str) {
        let cause: String = if cause.len() > MAX_CAUSE {
            let mut s: String = cause.chars().take(MAX_CAUSE - 20).collect();
            s.push_str("\n[truncated]");
            s
        } else {
            cause.to_string()
        };
        let error: String = error.chars().take(MAX_ERROR).collect();
        self.answered("failed", &error);
        if let Err(e) = self
            .c
            .sfn
            .send_task_failure()
            .task_token(&self.token)
            .error(error)
            .cause(cause)
            .send()
            .await
        {
            log(
                &self.opts.name,
                unit,
                &format!("SendTaskFailure failed: {}", err(e)),
            );
        }
    }
}

/// The values of the secrets the task asks for, each one the operator
/// allowed (`--secret`), from the worker's environment; or why not, naming
/// the secret, never a value. A secret allowed but not set is left out:
/// [`build_spec`] reports it as `topsail.SecretMissing`.
fn task_secrets(
    ti: &TaskInput,
    opts: &WorkerOptions,
    aws: Vec<(String, String)>,
) -> Result<Secrets, String> {
    if let Some(name) = ti.secrets.iter().find(|n| !opts.secrets.contains(n)) {
        return Err(format!(
            "the task asks for secret `{name}`, which worker {} does not serve ({}); \
             the worker's operator allows it with `--secret {name}` (or by adding it to \
             TOPSAIL_WORKER_SECRETS)",
            opts.name,
            if opts.secrets.is_empty() {
                "it serves no secret".to_string()
            } else {
                format!("it serves: {}", opts.secrets.join(", "))
            }
        ));
    }
    Ok(Secrets::new(
        ti.secrets
            .iter()
            .filter_map(|n| std::env::var(n).ok().map(|v| (n.clone(), v)))
            .chain(aws),
    ))
}

/// Whether `s` is a name of the language: `[A-Za-z_][A-Za-z0-9_-]*`
/// (`dashes`), or an env or secret name, `[A-Za-z_][A-Za-z0-9_]*`.
fn is_name(s: &str, dashes: bool) -> bool {
    let mut chars = s.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || (dashes && c == '-'))
}

/// Longest name accepted from a task input (Step Functions' execution names
/// have at most 80 characters; step names are much shorter in practice).
const MAX_NAME: usize = 256;

/// Check every name from a task input that reaches a path (the attempt
/// directory), an environment variable or a container label, before any of
/// it is used: a crafted input must not steer the worker outside its temp
/// dir or set odd variables. The state machine only writes names that pass.
pub fn check_identifiers(ti: &TaskInput) -> Result<(), String> {
    let bad = |what: &str, value: &str, rule: &str| {
        let shown: String = value
            .chars()
            .take(80)
            .flat_map(char::escape_debug)
            .collect();
        Err(format!("the task input's {what} \"{shown}\" is not {rule}"))
    };
    const NAME: &str = "a name (`[A-Za-z_][A-Za-z0-9_-]*`)";
    const VAR: &str = "an environment variable name (`[A-Za-z_][A-Za-z0-9_]*`)";
    if ti.pipeline.len() > MAX_NAME || !is_name(&ti.pipeline, true) {
        return bad("pipeline", &ti.pipeline, NAME);
    }
    // An imported step is `module.step`.
    if ti.step.len() > MAX_NAME || !ti.step.split('.').all(|p| is_name(p, true)) {
        return bad("step", &ti.step, "a step name (`NAME` or `MODULE.NAME`)");
    }
    if !is_run_id(&ti.run_id) {
        return bad(
            "run_id",
            &ti.run_id,
            "an execution name (1 to 80 characters, no whitespace, control characters,              `/`, `\\` or other characters Step Functions refuses, not starting with `.`)",
        );
    }
    if let Some(v) = &ti.loop_var
        && !is_name(v, true)
    {
        return bad("loop_var", v, NAME);
    }
    for o in &ti.outputs {
        if !is_name(&o.name, true) {
            return bad("output name", &o.name, NAME);
        }
        if !is_name(&o.key, false) {
            return bad(
                "output key",
                &o.key,
                "an output key (`[A-Za-z_][A-Za-z0-9_]*`)",
            );
        }
    }
    for n in &ti.secrets {
        if !is_name(n, false) {
            return bad("secret name", n, VAR);
        }
    }
    for k in ti.env.keys() {
        if !is_name(k, false) {
            return bad("env name", k, VAR);
        }
    }
    if let Some(i) = &ti.values.item
        && i.contains('\0')
    {
        return bad("foreach item", i, "a text without NUL bytes");
    }
    Ok(())
}

/// An execution name as Step Functions accepts one (`$$.Execution.Name`),
/// less a leading `.` (no `.` or `..`, no hidden names).
fn is_run_id(s: &str) -> bool {
    let refused =
        |c: char| c.is_whitespace() || c.is_control() || "<>{}[]?*\"#%\\^|~`$&,;:/".contains(c);
    (1..=80).contains(&s.chars().count()) && !s.starts_with('.') && !s.chars().any(refused)
}

/// The task as a [`StepSpec`], every `{{ }}` rendered from the task's own
/// values by the runner's builder ([`spec::build`]) under this worker's
/// policy; or the error name and cause to report without running anything.
fn build_spec(
    ti: &TaskInput,
    opts: &WorkerOptions,
    secrets: &Secrets,
) -> Result<StepSpec, StepError> {
    let text = |what: &str, s: &str| {
        ti.text(s)
            .map_err(|e| StepError::new(errors::BAD_INPUT, format!("{what}: {e}")))
    };
    let image = ti.image.as_deref().map(|s| text("image", s)).transpose()?;
    let run = text("run", &ti.script)?;
    let env = ti
        .env
        .iter()
        .map(|(k, v)| Ok((k.as_str(), text(k, v)?)))
        .collect::<Result<Vec<_>, StepError>>()?;
    let workdir = ti
        .workdir
        .as_deref()
        .map(|s| text("workdir", s))
        .transpose()?;
    let name = match &ti.values.item {
        Some(i) => format!("{}[{i}]", ti.step),
        None => ti.step.clone(),
    };
    let view = StepView {
        run_id: &ti.run_id,
        pipeline: &ti.pipeline,
        step: &ti.step,
        name: &name,
        image: image.as_ref(),
        script: &run,
        shell: ti.shell.as_deref(),
        env: env.iter().map(|(k, t)| (*k, t)).collect(),
        workdir: workdir.as_ref(),
        secrets: &ti.secrets,
        timeout: ti.timeout_seconds.map(Duration::from_secs),
        outputs: ti.outputs.iter().map(|o| o.name.clone()).collect(),
    };
    let place = Place {
        secrets,
        secrets_from: &format!("worker {}", opts.name),
        env_remove: Vec::new(),
        pipeline_dir: opts.dir.clone(),
    };
    spec::build(&view, ti, place, opts)
}

/// What a worker's operator allows ([`WorkerOptions`]), and what the checker
/// would have refused: a crafted task input has not been checked.
impl Policy for WorkerOptions {
    fn admit(&self, view: &StepView<'_>, image: Option<&str>) -> Result<(), StepError> {
        match image {
            None if !self.allow_host => Err(StepError::new(
                errors::IMAGE_NOT_ALLOWED,
                format!(
                    "`{}` is a host step (no image) and worker {} runs host steps only with --allow-host",
                    view.step, self.name
                ),
            )),
            Some(img) if !self.allow_images.iter().any(|p| glob_match(p, img)) => {
                Err(StepError::new(
                    errors::IMAGE_NOT_ALLOWED,
                    format!(
                        "image `{img}` is not allowed on worker {} ({}); the operator allows images with --allow-image PATTERN",
                        self.name,
                        if self.allow_images.is_empty() {
                            "it allows no image".to_string()
                        } else {
                            format!("allowed: {}", self.allow_images.join(", "))
                        }
                    ),
                ))
            }
            _ => Ok(()),
        }
    }

    fn script(&self, script: &Text, shell: Option<&str>) -> Result<(), StepError> {
        match script_problems(script, shell).first() {
            Some((hole, problem)) => Err(StepError::new(
                errors::BAD_INPUT,
                format!(
                    "run: hole {} of the script: {}",
                    hole + 1,
                    problem.message()
                ),
            )),
            None => Ok(()),
        }
    }

    fn workdir(&self, w: &str) -> Result<(), StepError> {
        if !w.starts_with('/') || w.contains('\0') {
            return Err(StepError::new(
                errors::BAD_INPUT,
                format!("workdir `{}` is not an absolute path", w.escape_debug()),
            ));
        }
        Ok(())
    }
}

/// Shell-style glob: `*` any run of characters (`/` and `:` included, so
/// `registry.example.com/*` covers every image there), `?` one character.
pub fn glob_match(pattern: &str, text: &str) -> bool {
    let p: Vec<char> = pattern.chars().collect();
    let t: Vec<char> = text.chars().collect();
    let (mut pi, mut ti) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while ti < t.len() {
        if pi < p.len() && (p[pi] == '?' || p[pi] == t[ti]) {
            pi += 1;
            ti += 1;
        } else if pi < p.len() && p[pi] == '*' {
            star = Some((pi, ti));
            pi += 1;
        } else if let Some((sp, st)) = star {
            pi = sp + 1;
            ti = st + 1;
            star = Some((sp, st + 1));
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|&c| c == '*')
}

#[cfg(test)]
mod tests {
    use super::*;

    fn poll_error(
        code: &str,
    ) -> aws_sdk_sfn::error::SdkError<aws_sdk_sfn::operation::get_activity_task::GetActivityTaskError>
    {
        use aws_sdk_sfn::operation::get_activity_task::GetActivityTaskError;
        let meta = aws_sdk_sfn::error::ErrorMetadata::builder()
            .code(code)
            .message("the message")
            .build();
        let raw = aws_sdk_sfn::config::http::HttpResponse::new(
            400.try_into().expect("400 is a status code"),
            "".into(),
        );
        aws_sdk_sfn::error::SdkError::service_error(GetActivityTaskError::generic(meta), raw)
    }

    #[test]
    fn poll_errors_that_cannot_pass_stop_the_worker_others_are_retried() {
        for code in ["AccessDeniedException", "UnrecognizedClientException"] {
            let why = cannot_pass(&poll_error(code)).expect(code);
            assert!(why.starts_with(&format!("{code}: the message (")), "{why}");
            assert!(why.contains("may not poll"), "{why}");
        }
        for code in [
            "ThrottlingException",
            "ServiceUnavailable",
            "ActivityWorkerLimitExceeded",
        ] {
            assert_eq!(cannot_pass(&poll_error(code)), None, "{code}");
        }
        let timeout = aws_sdk_sfn::error::SdkError::<
            aws_sdk_sfn::operation::get_activity_task::GetActivityTaskError,
            aws_sdk_sfn::config::http::HttpResponse,
        >::timeout_error("slow");
        assert_eq!(cannot_pass(&timeout), None);
    }

    #[test]
    fn globs() {
        assert!(glob_match("*", "alpine:3"));
        assert!(glob_match("topsail-test/*", "topsail-test/busybox:latest"));
        assert!(!glob_match("topsail-test/*", "evil/busybox"));
        assert!(glob_match("alpine:3.?", "alpine:3.9"));
        assert!(!glob_match("alpine", "alpine:3"));
        assert!(glob_match("a*b*c", "aXbYc"));
    }

    fn input(image: Option<&str>) -> TaskInput {
        serde_json::from_value(serde_json::json!({
            "version": 1, "pipeline": "p", "run_id": "r1", "step": "s",
            "image": image, "shell": null, "script": "echo {{ n }}",
            "env": {"A": "{{ b.V }}"}, "workdir": null, "outputs": [], "secrets": [],
            "timeout_seconds": 5, "heartbeat_seconds": 4, "loop_var": null,
            "values": {"params": {"n": 3}, "steps": {"b": {"V": "x y"}}}
        }))
        .unwrap()
    }

    fn opts(host: bool, images: &[&str]) -> WorkerOptions {
        WorkerOptions {
            activities: vec!["a".into()],
            name: "w".into(),
            concurrency: 1,
            allow_host: host,
            allow_images: images.iter().map(|s| (*s).to_string()).collect(),
            secrets: Vec::new(),
            grace: Duration::from_secs(1),
            dir: PathBuf::from("."),
            tmp_base: std::env::temp_dir(),
            logs: false,
            log_group: None,
            fleet: crate::sfn::fleet::FleetOptions::default(),
        }
    }

    #[test]
    fn specs_are_rendered_and_checked() {
        let s = Secrets::default();
        let spec = build_spec(&input(None), &opts(true, &[]), &s).unwrap();
        assert_eq!(spec.script, "echo \"${TOPSAIL_V1_n}\"");
        assert_eq!(
            spec.env,
            vec![
                ("A".to_string(), "x y".to_string()),
                ("TOPSAIL_V1_n".to_string(), "3".to_string())
            ]
        );
        assert_eq!(spec.timeout, Some(Duration::from_secs(5)));
        let e = build_spec(&input(None), &opts(false, &["*"]), &s).unwrap_err();
        assert_eq!(e.error, errors::IMAGE_NOT_ALLOWED);
        let e = build_spec(&input(Some("evil:1")), &opts(true, &["good:*"]), &s).unwrap_err();
        assert_eq!(e.error, errors::IMAGE_NOT_ALLOWED);
        assert!(build_spec(&input(Some("good:1")), &opts(false, &["good:*"]), &s).is_ok());
    }

    #[test]
    fn log_labels_are_one_printable_line() {
        assert_eq!(printable("a\u{1b}[2Jb\nc"), "a\\u{1b}[2Jb\\nc");
        assert_eq!(printable("eu-west-1 ü"), "eu-west-1 ü");
    }

    #[test]
    fn only_the_secrets_the_operator_named_are_read() {
        let mut ti = input(None);
        ti.secrets = vec!["PATH".into()];
        let e = task_secrets(&ti, &opts(true, &[]), Vec::new()).unwrap_err();
        assert!(
            e.contains("secret `PATH`") && e.contains("--secret PATH"),
            "{e}"
        );
        assert!(e.contains("it serves no secret"), "{e}");
        let mut o = opts(true, &[]);
        o.secrets = vec!["PATH".into()];
        let s = task_secrets(&ti, &o, Vec::new()).unwrap();
        assert_eq!(s.get("PATH"), std::env::var("PATH").ok().as_deref());
    }

    #[test]
    fn names_in_the_task_input_are_checked() {
        let ok = input(None);
        assert!(check_identifiers(&ok).is_ok());
        let mut imported = input(None);
        imported.step = "common.build-it".into();
        imported.run_id = "exec.1_(2)@x+y=z".into();
        assert!(check_identifiers(&imported).is_ok());
        type Edit = fn(&mut TaskInput);
        let edits: [(&str, Edit); 9] = [
            ("run_id", |t| t.run_id = "a/../../b".into()),
            ("run_id", |t| t.run_id = "..".into()),
            ("run_id", |t| t.run_id = "x".repeat(81)),
            ("pipeline", |t| t.pipeline = "p q".into()),
            ("step", |t| t.step = "a..b".into()),
            ("env name", |t| {
                t.env.insert("A-B".into(), "x".into());
            }),
            ("secret name", |t| t.secrets = vec!["A B".into()]),
            ("loop_var", |t| t.loop_var = Some(String::new())),
            ("foreach item", |t| t.values.item = Some("a\0b".into())),
        ];
        for (what, edit) in edits {
            let mut t = input(None);
            edit(&mut t);
            let e = check_identifiers(&t).unwrap_err();
            assert!(e.contains(&format!("task input's {what} ")), "{what}: {e}");
        }
    }

    /// A crafted task input skips the checker: the worker refuses what it
    /// would have refused, and values still arrive only through the env.
    #[test]
    fn crafted_scripts_are_refused_or_kept_data() {
        let s = Secrets::default();
        let task = |shell: Option<&str>, script: &str, n: serde_json::Value| -> TaskInput {
            serde_json::from_value(serde_json::json!({
                "version": 2, "pipeline": "p", "run_id": "r1", "step": "s",
                "shell": shell, "script": script,
                "values": {"params": {"n": n}}
            }))
            .unwrap()
        };
        let o = opts(true, &[]);
        for (shell, script) in [
            (None, "cat <<'EOF'\n{{ n }}\nEOF"),
            (Some("python3"), "print({{ n }})"),
        ] {
            let e = build_spec(&task(shell, script, "x".into()), &o, &s).unwrap_err();
            assert_eq!(e.error, errors::BAD_INPUT, "{e:?}");
            assert!(e.cause.contains("cannot stand"), "{e:?}");
        }
        let e = build_spec(&task(None, "echo {{ n }}", "a\u{0}b".into()), &o, &s).unwrap_err();
        assert_eq!(e.error, crate::model::errors::RUNTIME);
        assert!(e.cause.contains("NUL"), "{e:?}");
        let e = build_spec(
            &task(None, "echo $(( {{ n }} ))", "a[$(id)]".into()),
            &o,
            &s,
        )
        .unwrap_err();
        assert!(e.cause.contains("must be an integer"), "{e:?}");
        let evil = "$(touch X); `id` ' \"";
        let spec = build_spec(
            &task(None, "echo \"{{ n }}\" {{ value \"a; b\" }}", evil.into()),
            &o,
            &s,
        )
        .unwrap();
        assert!(
            !spec.script.contains("touch") && !spec.script.contains("a; b"),
            "{}",
            spec.script
        );
        assert!(
            spec.env
                .contains(&("TOPSAIL_V1_n".to_string(), evil.to_string()))
        );
        assert!(
            spec.env
                .contains(&("TOPSAIL_V2_arg".to_string(), "a; b".to_string()))
        );
    }
}
