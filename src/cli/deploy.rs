//! `topsail deploy [FILE] [--name NAME] [--role-arn ARN]`: create what the
//! pipeline needs on Step Functions, or update it; a second run with nothing
//! changed reports "unchanged". Prints the ARNs a worker and `start` need.

use std::path::PathBuf;

use crate::sfn::{AwsArgs, Clients, deploy};

use super::Error;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The pipeline (default: pipeline.topsail, then topsail.yaml)
    pub file: Option<PathBuf>,
    /// The state machine's name (default: the pipeline's name)
    #[arg(long, value_name = "NAME")]
    pub name: Option<String>,
    /// The IAM role the state machine runs as (needed to create it)
    #[arg(long, value_name = "ARN", env = "TOPSAIL_ROLE_ARN")]
    pub role_arn: Option<String>,
    /// Keep step logs this many days (CloudWatch's periods: 1, 3, 5, 7, 14, 30, 60, 90, ...; 0: for ever)
    #[arg(long, value_name = "DAYS", default_value_t = crate::sfn::logs::DEFAULT_RETENTION_DAYS)]
    pub log_retention_days: i32,
    #[command(flatten)]
    pub aws: AwsArgs,
    #[command(flatten)]
    pub durations: super::DurationArgs,
    #[command(flatten)]
    pub context: super::ContextArgs,
}

pub fn run(args: Args) -> Result<(), Error> {
    let (_, pipeline) =
        super::load_pipeline_with(args.file.as_deref(), &args.context.load_options())?;
    let durations = args.durations.durations(args.file.as_deref(), &pipeline)?;
    let name = crate::sfn::resource_name(args.name.as_deref().unwrap_or(&pipeline.name));
    let retention = match args.log_retention_days {
        0 => None,
        d if crate::sfn::logs::RETENTION_DAYS.contains(&d) => Some(d),
        d => {
            return Err(Error::usage(format!(
                "--log-retention-days {d}: CloudWatch Logs keeps logs for one of {} days (or 0: for ever)",
                crate::sfn::logs::RETENTION_DAYS
                    .map(|d| d.to_string())
                    .join(", ")
            )));
        }
    };
    let group = crate::sfn::logs::group_name(&name);
    let rt = match crate::sfn::runtime() {
        Ok(rt) => rt,
        Err(e) => return Err(Error::usage(e)),
    };
    let result = rt.block_on(async {
        let c = Clients::new(&args.aws).await?;
        let d = deploy::deploy(&c, &pipeline, &name, args.role_arn.as_deref(), durations)
            .await
            .map_err(|e| e.to_string())?;
        let logs = crate::sfn::logs::ensure_group(&c.logs, &group, retention)
            .await
            .map_err(|e| format!("cannot create log group {group} for the step logs: {e}"))?;
        Ok::<_, String>((d, logs))
    });
    match result {
        Ok((d, logs)) => {
            outln!(
                "state machine {}: {}",
                d.state_machine.as_str(),
                d.state_machine_arn
            );
            outln!("activity {}: {}", d.activity.as_str(), d.activity_arn);
            for (queue, arn, change) in &d.queue_activities {
                outln!("queue {queue} activity {}: {arn}", change.as_str());
            }
            if let Some((url, change)) = &d.queue_url {
                outln!("approval queue {}: {url}", change.as_str());
            }
            outln!(
                "log group {}: {group} (step logs kept {})",
                logs.as_str(),
                retention.map_or("for ever".to_string(), |d| format!("{d} days"))
            );
            outln!(
                "run workers with: topsail worker --activity-arn {}",
                d.activity_arn
            );
            if !d.queue_activities.is_empty() {
                outln!(
                    "and for each queue: topsail worker {} --queue NAME",
                    args.file
                        .as_deref()
                        .map_or_else(|| "FILE".into(), |f| f.display().to_string())
                );
            }
            Ok(())
        }
        Err(e) => Err(Error::failed(e)),
    }
}
