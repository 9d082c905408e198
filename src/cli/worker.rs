//! `topsail worker --activity-arn ARN`: serve a pipeline's activity (see
//! [`crate::sfn::worker`]). SIGTERM or Ctrl-C drains it: no new tasks, the
//! running ones get `--grace`, then exit 0. An activity it can never poll
//! (it does not exist, access denied) ends it with exit code 2.

use std::path::PathBuf;
use std::process::ExitCode;
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
    /// On SIGTERM, how long running tasks may take to finish
    #[arg(long, value_name = "DURATION", default_value = "30s")]
    pub grace: String,
    /// Working directory of host steps, mounted at /workspace for images (default: here)
    #[arg(long, value_name = "DIR")]
    pub dir: Option<PathBuf>,
    #[command(flatten)]
    pub aws: AwsArgs,
}

pub fn run(args: Args) -> ExitCode {
    if args.concurrency == 0 {
        return super::fail_usage("--concurrency must be at least 1");
    }
    let grace = match crate::model::parse_duration(&args.grace) {
        Ok(g) => g,
        Err(e) => return super::fail_usage(format!("--grace {}: {e}", args.grace)),
    };
    let dir = match args
        .dir
        .clone()
        .unwrap_or_else(|| PathBuf::from("."))
        .canonicalize()
    {
        Ok(d) => d,
        Err(e) => return super::fail_usage(format!("--dir: {e}")),
    };
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
        grace,
        dir,
        tmp_base: std::env::temp_dir(),
    });
    let rt = match crate::sfn::runtime() {
        Ok(rt) => rt,
        Err(e) => return super::fail_usage(e),
    };
    let result = rt.block_on(async {
        let c = Clients::new(&args.aws).await?;
        let (tx, rx) = watch::channel(false);
        tokio::spawn(async move {
            wait_for_signal().await;
            let _ = tx.send(true);
        });
        serve(c, opts, Runtimes::real(), rx).await
    });
    rt.shutdown_timeout(std::time::Duration::from_millis(100));
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => super::fail_usage(e),
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
