//! `topsail approve [--state-machine-arn ARN | --machine NAME] [--list]
//! [EXECUTION STEP] [--reject --reason TEXT]`: the approval steps waiting on
//! Step Functions (see [`crate::sfn::approve`]).

use crate::sfn::worker::printable;
use crate::sfn::{AwsArgs, Clients, approve};

use super::Error;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The execution (its ARN or name, i.e. the run id)
    #[arg(requires = "step")]
    pub execution: Option<String>,
    /// The approval step
    pub step: Option<String>,
    /// List pending approvals (the default without EXECUTION STEP)
    #[arg(long, conflicts_with = "execution")]
    pub list: bool,
    /// Reject instead of approving (the step fails with topsail.Rejected)
    #[arg(long, requires = "reason")]
    pub reject: bool,
    /// Why it was rejected (recorded as the failure's cause)
    #[arg(long, value_name = "TEXT")]
    pub reason: Option<String>,
    /// Only this state machine's approvals
    #[arg(long, value_name = "ARN", conflicts_with = "machine")]
    pub state_machine_arn: Option<String>,
    /// Only the approvals of the state machine with this name
    #[arg(long, value_name = "NAME")]
    pub machine: Option<String>,
    #[command(flatten)]
    pub aws: AwsArgs,
}

pub fn run(args: Args) -> Result<(), Error> {
    let rt = match crate::sfn::runtime() {
        Ok(rt) => rt,
        Err(e) => return Err(Error::usage(e)),
    };
    let machine = args.machine.clone().or_else(|| {
        args.state_machine_arn
            .as_deref()
            .and_then(|a| a.rsplit(':').next())
            .map(str::to_string)
    });
    let by = std::env::var("USER").unwrap_or_else(|_| "someone".into());
    let result = rt.block_on(async {
        let c = Clients::new(&args.aws).await?;
        let queues = approve::queues(&c, machine.as_deref()).await?;
        if let (Some(exec), Some(step)) = (&args.execution, &args.step) {
            let reject = if args.reject {
                args.reason.as_deref()
            } else {
                None
            };
            let p = approve::answer(&c, &queues, exec, step, reject, &by).await?;
            outln!(
                "{} `{}` of execution {}",
                if reject.is_some() {
                    "rejected"
                } else {
                    "approved"
                },
                printable(&p.step),
                printable(&p.run_id)
            );
            return Ok::<u8, String>(0);
        }
        {
            let list = approve::pending(&c, &queues).await?;
            if list.is_empty() {
                outln!("no approvals pending");
                return Ok::<u8, String>(0);
            }
            // Every field comes from a queue message, the message from an
            // execution's input: whoever can start an execution must not
            // forge a row (a newline) or drive the approver's terminal (an
            // escape), so control characters are shown escaped.
            let rows: Vec<[String; 4]> = list
                .iter()
                .map(|p| [&p.run_id, &p.step, &p.pipeline, &p.message].map(|f| printable(f)))
                .collect();
            let width = |i: usize, min: usize| {
                rows.iter()
                    .map(|r| r[i].chars().count())
                    .max()
                    .unwrap_or(min)
                    .max(min)
            };
            let (w, s) = (width(0, 9), width(1, 4));
            outln!("{:<w$}  {:<s$}  PIPELINE  MESSAGE", "EXECUTION", "STEP");
            for [run_id, step, pipeline, message] in &rows {
                outln!("{run_id:<w$}  {step:<s$}  {pipeline}  {message}");
            }
            Ok(0)
        }
    });
    result.map_err(Error::Failed).and_then(Error::code)
}
