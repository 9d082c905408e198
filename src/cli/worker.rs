//! `topsail worker --activity-arn ARN`: serve a pipeline's activity (see
//! [`crate::sfn::worker`]). SIGTERM or Ctrl-C drains it: no new tasks, the
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
    /// The activity to serve (printed by `topsail deploy`)
    #[arg(long, value_name = "ARN", env = "TOPSAIL_ACTIVITY_ARN")]
    pub activity_arn: String,
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
    let mut secrets: Vec<String> = Vec::new();
    for s in args
        .secrets
        .iter()
        .map(|s| s.trim())
        .filter(|s| !s.is_empty())
    {
        let mut chars = s.chars();
        let ok = chars
            .next()
            .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
            && chars.all(|c| c.is_ascii_alphanumeric() || c == '_');
        if !ok {
            return Err(Error::usage(format!(
                "--secret {s}: a secret name is `[A-Za-z_][A-Za-z0-9_]*`"
            )));
        }
        if !secrets.iter().any(|x| x == s) {
            secrets.push(s.to_string());
        }
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
    let opts = Arc::new(WorkerOptions {
        activity_arn: args.activity_arn.clone(),
        name,
        concurrency: args.concurrency,
        allow_host: args.allow_host,
        allow_images: args.allow_images.clone(),
        secrets,
        grace,
        dir,
        tmp_base: std::env::temp_dir(),
        log_group: (!args.no_logs).then(|| {
            args.log_group
                .clone()
                .unwrap_or_else(|| crate::sfn::logs::group_for_activity(&args.activity_arn))
        }),
    });
    let rt = match crate::sfn::runtime() {
        Ok(rt) => rt,
        Err(e) => return Err(Error::usage(e)),
    };
    let result = rt.block_on(async {
        let c = Clients::new(&args.aws).await?;
        let (tx, rx) = watch::channel(false);
        tokio::spawn(async move {
            wait_for_signal().await;
            let _ = tx.send(true);
        });
        serve(c, opts, Runtimes::worker(), rx)
            .await
            .map_err(|e| e.to_string())
    });
    rt.shutdown_timeout(std::time::Duration::from_millis(100));
    match result {
        Ok(()) => Ok(()),
        Err(e) => Err(Error::Usage(e)),
    }
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
