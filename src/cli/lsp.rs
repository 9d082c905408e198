//! `topsail lsp`: run the language server on stdin/stdout (started by an
//! editor, not by people; see editors/README.md).

use std::process::ExitCode;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Accepted for editors that pass it; stdio is the only transport
    #[arg(long)]
    pub stdio: bool,
}

pub fn run(args: Args) -> ExitCode {
    let _ = args.stdio;
    match crate::lsp::serve() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            errln!("error: topsail lsp: {e}");
            ExitCode::from(1)
        }
    }
}
