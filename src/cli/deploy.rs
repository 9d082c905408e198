//! `topsail deploy [FILE] [--name NAME] [--role-arn ARN]`: create what the
//! pipeline needs on Step Functions, or update it; a second run with nothing
//! changed reports "unchanged". Prints the ARNs a worker and `start` need.

use std::path::PathBuf;
use std::process::ExitCode;

use crate::sfn::{AwsArgs, Clients, deploy};

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
    #[command(flatten)]
    pub aws: AwsArgs,
    #[command(flatten)]
    pub durations: super::DurationArgs,
    #[command(flatten)]
    pub context: super::ContextArgs,
}

pub fn run(args: Args) -> ExitCode {
    let (_, pipeline) =
        match super::load_pipeline_with(args.file.as_deref(), &args.context.load_options()) {
            Ok(x) => x,
            Err(code) => return code,
        };
    let durations = match args.durations.durations(args.file.as_deref(), &pipeline) {
        Ok(d) => d,
        Err(code) => return code,
    };
    let name = crate::sfn::resource_name(args.name.as_deref().unwrap_or(&pipeline.name));
    let rt = match crate::sfn::runtime() {
        Ok(rt) => rt,
        Err(e) => return super::fail_usage(e),
    };
    let result = rt.block_on(async {
        let c = Clients::new(&args.aws).await?;
        deploy::deploy(&c, &pipeline, &name, args.role_arn.as_deref(), durations).await
    });
    match result {
        Ok(d) => {
            outln!(
                "state machine {}: {}",
                d.state_machine.as_str(),
                d.state_machine_arn
            );
            outln!("activity {}: {}", d.activity.as_str(), d.activity_arn);
            if let Some((url, change)) = &d.queue_url {
                outln!("approval queue {}: {url}", change.as_str());
            }
            outln!(
                "run workers with: topsail worker --activity-arn {}",
                d.activity_arn
            );
            ExitCode::SUCCESS
        }
        Err(e) => {
            errln!("error: {e}");
            ExitCode::from(1)
        }
    }
}
