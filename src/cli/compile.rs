//! `topsail compile [FILE] --to asl|asl-yaml|dot|mermaid [--out PATH]
//! [--activity-arn ARN] [--approval-queue-url URL] [--durations-from RUN]`:
//! the Step Functions definition (or the DAG as a picture). Same bytes for
//! the same input (and the same recorded run).

use std::path::PathBuf;

use clap::ValueEnum;

use crate::asl;

use super::Error;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The pipeline (default: pipeline.topsail, then topsail.yaml)
    pub file: Option<PathBuf>,
    /// What to produce
    #[arg(long, value_enum, default_value_t = Target::Asl)]
    pub to: Target,
    /// Write here instead of standard output
    #[arg(long, value_name = "PATH")]
    pub out: Option<PathBuf>,
    /// The activity the steps' tasks run on (default: a placeholder `topsail deploy` fills in)
    #[arg(long, value_name = "ARN", default_value = asl::ACTIVITY_ARN_PLACEHOLDER)]
    pub activity_arn: String,
    /// The SQS queue approvals are posted to (default: a placeholder `topsail deploy` fills in)
    #[arg(long, value_name = "URL", default_value = asl::APPROVAL_QUEUE_PLACEHOLDER)]
    pub approval_queue_url: String,
    #[command(flatten)]
    pub durations: super::DurationArgs,
    #[command(flatten)]
    pub context: super::ContextArgs,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Target {
    /// Amazon States Language, JSON
    Asl,
    /// Amazon States Language, YAML
    AslYaml,
    /// The DAG as Graphviz dot
    Dot,
    /// The DAG as a Mermaid flowchart
    Mermaid,
    /// Least-privilege IAM policies: the state machine's role, workers, starters
    Iam,
    /// A CloudFormation template: state machine, activities, queues, log group, bucket, roles
    Cloudformation,
}

pub fn run(args: Args) -> Result<(), Error> {
    let (checked, pipeline) =
        super::load_pipeline_with(args.file.as_deref(), &args.context.load_options())?;
    let text = match args.to {
        Target::Dot => crate::graph::dot(&pipeline),
        Target::Mermaid => crate::graph::mermaid(&pipeline),
        Target::Iam => {
            let scope = crate::iam::Scope::new(&crate::sfn::resource_name(&pipeline.name));
            let mut text = serde_json::to_string_pretty(&crate::iam::policies(&pipeline, &scope))
                .map_err(Error::usage)?;
            text.push('\n');
            text
        }
        Target::Cloudformation => {
            let durations = args.durations.durations(args.file.as_deref(), &pipeline)?;
            match crate::sfn::cloudformation::template(&pipeline, durations) {
                Ok((t, compiled)) => {
                    render(&checked, &compiled.diagnostics);
                    let mut text = serde_json::to_string_pretty(&t).map_err(Error::usage)?;
                    text.push('\n');
                    text
                }
                Err(diags) => {
                    render(&checked, &diags);
                    return Err(Error::failed(
                        "the pipeline cannot be compiled for Step Functions",
                    ));
                }
            }
        }
        Target::Asl | Target::AslYaml => {
            let durations = args.durations.durations(args.file.as_deref(), &pipeline)?;
            let options = asl::Options {
                activity_arn: args.activity_arn,
                queue_arns: std::collections::BTreeMap::new(),
                approval_queue_url: args.approval_queue_url,
                durations,
            };
            match asl::compile(&pipeline, &options) {
                Ok(compiled) => {
                    render(&checked, &compiled.diagnostics);
                    if args.to == Target::Asl {
                        compiled.to_json()
                    } else {
                        compiled.to_yaml()
                    }
                }
                Err(diags) => {
                    render(&checked, &diags);
                    let errors = diags.iter().filter(|d| d.is_error()).count();
                    return Err(Error::failed(format!(
                        "the pipeline cannot be compiled to Step Functions ({errors} error{})",
                        super::plural(errors)
                    )));
                }
            }
        }
    };
    let Some(path) = args.out else {
        out!("{text}");
        return Ok(());
    };
    match std::fs::write(&path, text) {
        Ok(()) => Ok(()),
        Err(e) => Err(Error::usage(format!(
            "cannot write {}: {e}",
            path.display()
        ))),
    }
}

fn render(checked: &crate::check::Checked, diags: &[crate::diagnostics::Diagnostic]) {
    let color = super::stderr_color();
    for d in diags {
        errln!("{}", d.render(&checked.sources, color, 100));
    }
}
