//! `topsail stop EXECUTION [--reason TEXT]`: stop a cloud execution (its
//! ARN, or its name with the pipeline here or `--machine`). The worker
//! running its step kills it within seconds ([`crate::sfn::stop`]).

use super::Error;
use crate::sfn::{AwsArgs, Clients};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The execution: its ARN, or its name (the run id `start` printed)
    pub execution: String,
    /// Why, kept in the execution's history
    #[arg(long, value_name = "TEXT")]
    pub reason: Option<String>,
    #[command(flatten)]
    pub target: super::cloud::Target,
    #[command(flatten)]
    pub aws: AwsArgs,
}

pub fn run(args: Args) -> Result<(), Error> {
    let (machine, _) = args.target.resolve();
    let rt = match crate::sfn::runtime() {
        Ok(rt) => rt,
        Err(e) => return Err(Error::usage(e)),
    };
    let result: Result<(String, bool), String> = rt.block_on(async {
        let c = Clients::new(&args.aws).await?;
        let arn = crate::sfn::stop::resolve(&c, &args.execution, machine.as_deref()).await?;
        let was_running = crate::sfn::stop::stop(&c, &arn, args.reason.as_deref()).await?;
        Ok((arn, was_running))
    });
    match result {
        Ok((arn, true)) => {
            outln!("execution stopped: {arn}");
            Ok(())
        }
        Ok((arn, false)) => {
            outln!("execution had already ended: {arn}");
            Ok(())
        }
        Err(e) => Err(Error::failed(e)),
    }
}
