//! `topsail check [FILE]`: report every problem of a pipeline.

use std::path::PathBuf;

use clap::ValueEnum;

use crate::diagnostics::Severity;
use crate::source::read::ReadError;

use super::Error;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The pipeline (default: pipeline.topsail, then topsail.yaml)
    pub file: Option<PathBuf>,
    /// How to print the diagnostics
    #[arg(long, value_enum, default_value_t = Format::Human)]
    pub format: Format,
    /// Fail (exit 1) on warnings too
    #[arg(long)]
    pub deny_warnings: bool,
    #[command(flatten)]
    pub context: super::ContextArgs,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Format {
    /// Rendered with source snippets, for people
    Human,
    /// One JSON document, for editors and CI
    Json,
}

pub fn run(args: Args) -> Result<(), Error> {
    let path = match super::find_file(args.file.as_deref()) {
        Ok(p) => p,
        Err(message) if args.format == Format::Json => {
            outln!(
                "{}",
                serde_json::to_string_pretty(&usage_error_json(&message))
                    .expect("JSON values always serialize")
            );
            return Err(Error::Exit(2));
        }
        Err(message) => return Err(Error::usage(message)),
    };
    let checked = match crate::check::load_with(&path, &args.context.load_options()) {
        Ok(c) => c,
        Err(e) if args.format == Format::Json => {
            outln!(
                "{}",
                serde_json::to_string_pretty(&read_error_json(&e))
                    .expect("JSON values always serialize")
            );
            return Err(Error::Exit(2));
        }
        Err(e) => return Err(Error::usage(e)),
    };
    let count = |s: Severity| {
        checked
            .diagnostics
            .iter()
            .filter(|d| d.severity == s)
            .count()
    };
    let (errors, warnings) = (count(Severity::Error), count(Severity::Warning));
    let failed = errors > 0 || (args.deny_warnings && warnings > 0);
    match args.format {
        Format::Json => {
            let doc = serde_json::json!({
                "file": path.display().to_string(),
                "ok": !failed,
                "errors": errors,
                "warnings": warnings,
                "steps": checked.pipeline.as_ref().map(|p| p.steps.len()),
                "diagnostics": checked
                    .diagnostics
                    .iter()
                    .map(|d| d.to_json(&checked.sources))
                    .collect::<Vec<_>>(),
            });
            outln!(
                "{}",
                serde_json::to_string_pretty(&doc).expect("JSON values always serialize")
            );
        }
        Format::Human => {
            if !checked.diagnostics.is_empty() {
                errln!("{}", checked.render(super::stderr_color()));
            }
            let summary = match &checked.pipeline {
                Some(p) => format!(
                    "{}: pipeline `{}`, {} step{}",
                    path.display(),
                    p.name,
                    p.steps.len(),
                    super::plural(p.steps.len())
                ),
                None => format!("{}", path.display()),
            };
            errln!(
                "{} {summary}; {errors} error{}, {warnings} warning{}",
                if failed { "✗" } else { "✓" },
                super::plural(errors),
                super::plural(warnings)
            );
        }
    }
    // The process ends here: freeing a large AST and model piece by piece
    // would take longer than checking them did.
    std::mem::forget(checked);
    if failed { Err(Error::Exit(1)) } else { Ok(()) }
}

/// The document `check --format json` prints when there is no file to read
/// (none given and none here, or a step's name given as the file).
fn usage_error_json(message: &str) -> serde_json::Value {
    let (message, help) = match message.split_once("\n  help: ") {
        Some((m, h)) => (m, h),
        None => (message, ""),
    };
    error_doc(None, message, None, None, "no pipeline file", help)
}

/// The document `check --format json` prints when the file cannot be read:
/// the same shape as for a checked file, with one `topsail::read` diagnostic
/// (with its line and column when the text is not UTF-8).
fn read_error_json(e: &crate::check::LoadError) -> serde_json::Value {
    let (line_col, offset) = match e.source {
        ReadError::NotUtf8 { line, column, byte } => (Some((line, column)), Some(byte)),
        _ => (None, None),
    };
    error_doc(
        Some(&e.path.display().to_string()),
        &e.to_string(),
        line_col,
        offset,
        "cannot read this file",
        "pass a regular UTF-8 text file of at most 16 MiB",
    )
}

/// A `check --format json` document of one `topsail::read` error, for when
/// there is no checked file to report on.
fn error_doc(
    file: Option<&str>,
    message: &str,
    line_col: Option<(usize, usize)>,
    offset: Option<usize>,
    label: &str,
    help: &str,
) -> serde_json::Value {
    serde_json::json!({
        "file": file,
        "ok": false,
        "errors": 1,
        "warnings": 0,
        "steps": null,
        "diagnostics": [{
            "code": crate::diagnostics::codes::READ,
            "severity": "error",
            "message": message,
            "file": file,
            "line": line_col.map(|(l, _)| l),
            "column": line_col.map(|(_, c)| c),
            "span": offset.map(|o| serde_json::json!({ "start": o, "end": o + 1 })),
            "label": label,
            "help": help,
            "related": [],
        }],
    })
}
