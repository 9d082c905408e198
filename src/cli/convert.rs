//! `topsail convert FILE --to yaml|topsail`: the same pipeline in the other
//! form. The file must check clean (warnings allowed), so what comes out is a
//! valid pipeline meaning the same thing.

use std::path::PathBuf;

use clap::ValueEnum;

use crate::source::{Format, SourceMap};
use crate::syntax;

use super::Error;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The pipeline to convert
    pub file: PathBuf,
    /// The form to write
    #[arg(long, value_enum)]
    pub to: Target,
    /// Write here instead of standard output
    #[arg(long, short)]
    pub out: Option<PathBuf>,
    #[command(flatten)]
    pub context: super::ContextArgs,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Target {
    Yaml,
    Topsail,
}

pub fn run(args: Args) -> Result<(), Error> {
    // Check first (imports included), so nothing invalid is converted.
    super::load_pipeline_with(Some(&args.file), &args.context.load_options())?;
    let text = match crate::source::read::read_source(&args.file) {
        Ok(t) => t,
        Err(e) => {
            return Err(Error::usage(format!(
                "cannot read {}: {e}",
                args.file.display()
            )));
        }
    };
    let mut sources = SourceMap::new();
    let format = Format::of_path(&args.file);
    let file = sources.add(
        args.file.display().to_string(),
        Some(args.file.clone()),
        text,
        format,
    );
    let (Some(module), _) = syntax::parse_with(&sources, file, &args.context.contexts) else {
        return Err(Error::Exit(1));
    };
    let out = match args.to {
        Target::Yaml => syntax::print_yaml::emit(&module),
        Target::Topsail => syntax::print::print(&module),
    };
    if let Some(path) = &args.out {
        match std::fs::write(path, out) {
            Ok(()) => Ok(()),
            Err(e) => Err(Error::usage(format!(
                "cannot write {}: {e}",
                path.display()
            ))),
        }
    } else {
        out!("{out}");
        Ok(())
    }
}
