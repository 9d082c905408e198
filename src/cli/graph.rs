//! `topsail graph [FILE] --format dot|mermaid`: the DAG, one node per step.

use std::path::PathBuf;

use super::Error;
use clap::ValueEnum;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The pipeline (default: pipeline.topsail, then topsail.yaml)
    pub file: Option<PathBuf>,
    #[arg(long, value_enum, default_value_t = Format::Dot)]
    pub format: Format,
    #[command(flatten)]
    pub context: super::ContextArgs,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Format {
    /// Graphviz (`topsail graph | dot -Tsvg > dag.svg`)
    Dot,
    /// Mermaid flowchart (renders in GitHub and GitLab markdown)
    Mermaid,
}

pub fn run(args: Args) -> Result<(), Error> {
    let (_, pipeline) =
        super::load_pipeline_with(args.file.as_deref(), &args.context.load_options())?;
    let text = match args.format {
        Format::Dot => crate::graph::dot(&pipeline),
        Format::Mermaid => crate::graph::mermaid(&pipeline),
    };
    out!("{text}");
    Ok(())
}
