//! `topsail worker [FILE...] [--queue NAME...] [--activity-arn ARN...]`:
//! serve activities (see [`crate::sfn::worker`]): those of the pipelines'
//! queues, found by name (so nobody copies ARNs), or given by ARN; one
//! process serves several with one `--concurrency`. SIGTERM or Ctrl-C drains it: no new tasks, the
//! running ones get `--grace`, then exit 0. An activity it can never poll
//! (it does not exist, access denied) ends it with exit code 2. Tasks get
//! only the secrets named with `--secret` (or `TOPSAIL_WORKER_SECRETS=A,B`).

use super::Error;
use std::path::PathBuf;
use std::sync::Arc;

use tokio::sync::watch;

use crate::run::Runtimes;
use crate::sfn::worker::{WorkerOptions, serve};
use crate::sfn::{AwsArgs, Clients};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Pipelines whose activities to serve (deployed with `topsail deploy`)
    pub files: Vec<PathBuf>,
    /// Serve this queue of the pipelines (repeatable; default: their own activity)
    #[arg(long = "queue", value_name = "NAME")]
    pub queues: Vec<String>,
    /// The state machine's name, when deployed with `deploy --name` (one FILE only)
    #[arg(long, value_name = "NAME")]
    pub state_machine: Option<String>,
    /// Also serve this activity (printed by `topsail deploy`; repeatable)
    #[arg(
        long = "activity-arn",
        value_name = "ARN",
        env = "TOPSAIL_ACTIVITY_ARN",
        value_delimiter = ','
    )]
    pub activity_arns: Vec<String>,
    /// Serve one task, then exit (an ephemeral worker per task)
    #[arg(long)]
    pub once: bool,
    /// Exit after this long without a task (e.g. 10m)
    #[arg(long, value_name = "DURATION")]
    pub idle_timeout: Option<String>,
    /// Hand this variable of the worker's environment to every step (repeatable)
    #[arg(long = "pass-env", value_name = "NAME")]
    pub pass_env: Vec<String>,
    /// Give `aws` steps (no role) this worker's own AWS credentials
    #[arg(long)]
    pub allow_aws: bool,
    /// In a container: this worker's directory LOCAL is HOST on the Docker host (repeatable; default: asked of the engine)
    #[arg(long = "host-path", value_name = "LOCAL=HOST")]
    pub host_paths: Vec<String>,
    /// Assume roles matching this glob for `aws role` steps (repeatable; '*': any)
    #[arg(long = "allow-role", value_name = "GLOB")]
    pub allow_roles: Vec<String>,
    /// Run at most N tasks at once
    #[arg(long, value_name = "N", default_value_t = 1)]
    pub concurrency: usize,
    /// This worker's name in the execution history and the logs (default: HOST-PID)
    #[arg(long, value_name = "NAME")]
    pub name: Option<String>,
    /// Run steps without an image on this machine's shell
    #[arg(long)]
    pub allow_host: bool,
    /// Run images matching this glob, e.g. 'registry.example.com/team/*' (repeatable; '*': any)
    #[arg(long = "allow-image", value_name = "PATTERN")]
    pub allow_images: Vec<String>,
    /// Hand this secret from the worker's environment to tasks that ask for it (repeatable; default: none)
    #[arg(
        long = "secret",
        value_name = "NAME",
        env = "TOPSAIL_WORKER_SECRETS",
        value_delimiter = ','
    )]
    pub secrets: Vec<String>,
    /// On SIGTERM, how long running tasks may take to finish
    #[arg(long, value_name = "DURATION", default_value = "30s")]
    pub grace: String,
    /// Working directory of host steps, mounted at /workspace for images (default: here)
    #[arg(long, value_name = "DIR")]
    pub dir: Option<PathBuf>,
    /// Ship step lines to this CloudWatch Logs group (default: the one `deploy` made, /topsail/<state machine>)
    #[arg(long, value_name = "GROUP", env = "TOPSAIL_LOG_GROUP")]
    pub log_group: Option<String>,
    /// Do not ship step lines to CloudWatch Logs (they are still on this worker's output)
    #[arg(long, conflicts_with = "log_group")]
    pub no_logs: bool,
    /// Serve Prometheus metrics (`/metrics`) and a health answer (`/healthz`) on this loopback address, e.g. 127.0.0.1:9464
    #[arg(long, value_name = "ADDR")]
    pub metrics: Option<std::net::SocketAddr>,
    /// The worker's own log on stdout: `text` lines or `json` objects (for log shippers)
    #[arg(long, value_enum, default_value = "text")]
    pub log_format: crate::sfn::worker::LogFormat,
    #[command(flatten)]
    pub aws: AwsArgs,
}

pub fn run(args: Args) -> Result<(), Error> {
    if args.concurrency == 0 {
        return Err(Error::usage("--concurrency must be at least 1"));
    }
    let grace = match crate::model::parse_duration(&args.grace) {
        Ok(g) => g,
        Err(e) => return Err(Error::usage(format!("--grace {}: {e}", args.grace))),
    };
    let dir = match args
        .dir
        .clone()
        .unwrap_or_else(|| PathBuf::from("."))
        .canonicalize()
    {
        Ok(d) => d,
        Err(e) => return Err(Error::usage(format!("--dir: {e}"))),
    };
    let secrets = env_names(&args.secrets, "--secret", "a secret name")?;
    let pass_env = env_names(&args.pass_env, "--pass-env", "a variable name")?;
    let idle_timeout = match args
        .idle_timeout
        .as_deref()
        .map(crate::model::parse_duration)
    {
        None => None,
        Some(Ok(d)) => Some(d),
        Some(Err(e)) => {
            return Err(Error::usage(format!(
                "--idle-timeout {}: {e}",
                args.idle_timeout.as_deref().unwrap_or_default()
            )));
        }
    };
    if args.state_machine.is_some() && args.files.len() != 1 {
        return Err(Error::usage("--state-machine needs exactly one FILE"));
    }
    if args.files.is_empty() && args.activity_arns.is_empty() {
        return Err(Error::usage(
            "nothing to serve: name pipelines (`topsail worker FILE [--queue NAME]`) or --activity-arn ARN",
        ));
    }
    if !args.queues.is_empty() && args.files.is_empty() {
        return Err(Error::usage(
            "--queue needs the pipeline FILE whose queue it is",
        ));
    }
    let mut pipelines = Vec::new();
    for f in &args.files {
        let (_, p) = super::load_pipeline(Some(f.as_path()))?;
        let sm = crate::sfn::resource_name(args.state_machine.as_deref().unwrap_or(&p.name));
        pipelines.push((sm, p));
    }
    let name = args.name.clone().unwrap_or_else(|| {
        let host = std::fs::read_to_string("/etc/hostname")
            .ok()
            .map(|h| h.trim().to_string())
            .filter(|h| !h.is_empty())
            .or_else(|| std::env::var("HOSTNAME").ok())
            .unwrap_or_else(|| "worker".into());
        format!("{host}-{}", std::process::id())
    });
    let mut opts = WorkerOptions {
        activities: Vec::new(),
        name,
        concurrency: args.concurrency,
        allow_host: args.allow_host,
        allow_images: args.allow_images.clone(),
        secrets,
        grace,
        dir,
        tmp_base: std::env::temp_dir(),
        logs: !args.no_logs,
        log_group: args.log_group.clone(),
        fleet: crate::sfn::fleet::FleetOptions {
            pass_env,
            once: args.once,
            idle_timeout,
            creds: None,
            allow_own_aws: args.allow_aws,
            allow_roles: args.allow_roles.clone(),
        },
    };
    let rt = match crate::sfn::runtime() {
        Ok(rt) => rt,
        Err(e) => return Err(Error::usage(e)),
    };
    crate::sfn::worker::install_log(args.log_format);
    let result = rt.block_on(async {
        if let Some(addr) = args.metrics {
            let bound = crate::sfn::fleet::metrics::serve(addr)
                .await
                .map_err(|e| e.to_string())?;
            crate::sfn::worker::log(
                &opts.name,
                "",
                &format!("metrics on http://{bound}/metrics (health: /healthz)"),
            );
        }
        let c = Clients::new(&args.aws).await?;
        let mut activities =
            crate::sfn::fleet::activities_for(&c, &pipelines, &args.queues).await?;
        for a in &args.activity_arns {
            if !activities.contains(a) {
                activities.push(a.clone());
            }
        }
        opts.activities = activities;
        let mut runtimes = Runtimes::worker();
        if let Some(map) = host_paths(&args, &opts).await? {
            runtimes.container = Arc::new(crate::run::docker::DockerRuntime::with_host_paths(
                Arc::new(move |p: &std::path::Path| {
                    map.to_host(p).unwrap_or_else(|| p.to_path_buf())
                }),
            ));
        }
        if opts.fleet.allow_own_aws || !opts.fleet.allow_roles.is_empty() {
            opts.fleet.creds = Some(
                crate::sfn::fleet::creds::Source::new(
                    args.aws.endpoint_url.as_deref(),
                    args.aws.region.as_deref(),
                )
                .await,
            );
        }
        let opts = Arc::new(opts);
        let (tx, rx) = watch::channel(false);
        tokio::spawn(async move {
            wait_for_signal().await;
            let _ = tx.send(true);
        });
        serve(c, opts, runtimes, rx)
            .await
            .map_err(|e| e.to_string())
    });
    rt.shutdown_timeout(std::time::Duration::from_millis(100));
    match result {
        Ok(()) => Ok(()),
        Err(e) => Err(Error::Usage(e)),
    }
}

/// The host paths of this worker's directories, when the engine it talks to
/// is not in its own filesystem: from `--host-path`, or, in a container, from
/// the engine. `Err` (the worker refuses to start) when a directory an image
/// step needs (TMPDIR, --dir) is on no mounted host directory.
async fn host_paths(
    args: &Args,
    opts: &WorkerOptions,
) -> Result<Option<crate::sfn::fleet::paths::PathMap>, String> {
    use crate::sfn::fleet::paths::{self, PathMap};
    if opts.allow_images.is_empty() {
        return Ok(None); // no container steps: no path goes to the engine
    }
    let map = if !args.host_paths.is_empty() {
        let pairs = args
            .host_paths
            .iter()
            .map(|s| PathMap::parse_pair(s))
            .collect::<Result<Vec<_>, _>>()?;
        PathMap::new(pairs)
    } else if paths::in_container() {
        match paths::discover().await? {
            Some(map) => map,
            None => return Ok(None),
        }
    } else {
        return Ok(None);
    };
    let tmp = opts
        .tmp_base
        .canonicalize()
        .unwrap_or_else(|_| opts.tmp_base.clone());
    map.check_reachable(&[("TMPDIR", &tmp), ("--dir", &opts.dir)])?;
    Ok(Some(map))
}

/// `--secret` / `--pass-env` names, checked and deduplicated.
fn env_names(raw: &[String], flag: &str, what: &str) -> Result<Vec<String>, Error> {
    let mut names: Vec<String> = Vec::new();
    for s in raw.iter().map(|s| s.trim()).filter(|s| !s.is_empty()) {
        let mut chars = s.chars();
        let ok = chars
            .next()
            .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
            && chars.all(|c| c.is_ascii_alphanumeric() || c == '_');
        if !ok {
            return Err(Error::usage(format!(
                "{flag} {s}: {what} is `[A-Za-z_][A-Za-z0-9_]*`"
            )));
        }
        if !names.iter().any(|x| x == s) {
            names.push(s.to_string());
        }
    }
    Ok(names)
}

async fn wait_for_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    match signal(SignalKind::terminate()) {
        Ok(mut term) => {
            tokio::select! {
                _ = term.recv() => {}
                _ = tokio::signal::ctrl_c() => {}
            }
        }
        Err(_) => {
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}
