//! `topsail lsp`: run the language server on stdin/stdout (started by an
//! editor, not by people; see editors/README.md).

use super::Error;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Accepted for editors that pass it; stdio is the only transport
    #[arg(long)]
    pub stdio: bool,
}

pub fn run(args: Args) -> Result<(), Error> {
    let _ = args.stdio;
    match crate::lsp::serve() {
        Ok(()) => Ok(()),
        Err(e) => Err(Error::failed(format!("topsail lsp: {e}"))),
    }
}
