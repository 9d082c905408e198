//! What `stop`, `logs` and `runs --cloud` share (issue 15): which state
//! machine a command is about (`--machine`, else the pipeline file's name),
//! and the pipeline itself, to show a failed step at its source.

use std::path::{Path, PathBuf};

use crate::model::Pipeline;
use crate::source::SourceMap;

/// Which deployed pipeline: `--machine`, else the pipeline file's.
#[derive(Clone, Debug, Default, clap::Args)]
pub struct Target {
    /// The pipeline file (its name finds the state machine; default: the one here)
    #[arg(long = "file", short = 'f', value_name = "FILE")]
    pub file: Option<PathBuf>,
    /// The state machine's name if it was deployed with `deploy --name`
    #[arg(long, value_name = "NAME")]
    pub machine: Option<String>,
    #[command(flatten)]
    pub context: super::ContextArgs,
}

/// A pipeline read without printing its warnings.
pub struct Loaded {
    pub pipeline: Pipeline,
    pub sources: SourceMap,
    pub file: PathBuf,
}

/// The pipeline at `file` (or found here), if it loads without errors.
pub fn load(file: Option<&Path>, context: &super::ContextArgs) -> Option<Loaded> {
    let path = super::find_file(file).ok()?;
    let mut checked = crate::check::load_with(&path, &context.load_options()).ok()?;
    let pipeline = checked.pipeline.take()?;
    Some(Loaded {
        pipeline,
        sources: checked.sources,
        file: path,
    })
}

impl Target {
    /// The state machine's name and the pipeline, when either is known.
    pub fn resolve(&self) -> (Option<String>, Option<Loaded>) {
        let loaded = load(self.file.as_deref(), &self.context);
        let machine = self
            .machine
            .clone()
            .or_else(|| loaded.as_ref().map(|l| l.pipeline.name.clone()))
            .map(|m| crate::sfn::resource_name(&m));
        (machine, loaded)
    }
}
