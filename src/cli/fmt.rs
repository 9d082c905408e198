//! `topsail fmt [FILE] [--check]`: rewrite a `.topsail` file in the canonical
//! layout (4-space bodies, one blank line between steps, comments kept).

use std::path::PathBuf;
use std::process::ExitCode;

use crate::diagnostics;
use crate::syntax::{self, Format, SourceMap};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The file (default: pipeline.topsail)
    pub file: Option<PathBuf>,
    /// Change nothing; exit 1 if the file is not formatted
    #[arg(long)]
    pub check: bool,
    /// Print the formatted text instead of rewriting the file
    #[arg(long, conflicts_with = "check")]
    pub stdout: bool,
}

pub fn run(args: Args) -> ExitCode {
    let path = match super::resolve_file(args.file.as_deref()) {
        Ok(p) => p,
        Err(code) => return code,
    };
    if Format::of_path(&path) != Format::Topsail {
        return super::fail_usage(format!(
            "{} is YAML; `topsail fmt` formats .topsail files (try `topsail convert {} --to topsail`)",
            path.display(),
            path.display()
        ));
    }
    let text = match std::fs::read_to_string(&path) {
        Ok(t) => t,
        Err(e) => return super::fail_usage(format!("cannot read {}: {e}", path.display())),
    };
    let mut sources = SourceMap::new();
    let file = sources.add(
        path.display().to_string(),
        Some(path.clone()),
        text.clone(),
        Format::Topsail,
    );
    let (module, diags) = syntax::parse(&sources, file);
    let module = match module {
        Some(m) if !diagnostics::has_errors(&diags) => m,
        _ => {
            let color = super::stderr_color();
            for d in &diags {
                eprintln!("{}", d.render(&sources, color, 100));
            }
            eprintln!(
                "error: {} has syntax errors; nothing was formatted",
                path.display()
            );
            return ExitCode::from(1);
        }
    };
    let formatted = syntax::print::print(&module);
    if args.stdout {
        print!("{formatted}");
        return ExitCode::SUCCESS;
    }
    if formatted == text {
        return ExitCode::SUCCESS;
    }
    if args.check {
        eprintln!(
            "{} is not formatted (run `topsail fmt {}`)",
            path.display(),
            path.display()
        );
        return ExitCode::from(1);
    }
    match std::fs::write(&path, formatted) {
        Ok(()) => {
            eprintln!("formatted {}", path.display());
            ExitCode::SUCCESS
        }
        Err(e) => super::fail_usage(format!("cannot write {}: {e}", path.display())),
    }
}
