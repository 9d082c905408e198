//! `topsail fmt [FILE] [--check]`: rewrite a `.topsail` file in the canonical
//! layout (4-space bodies, one blank line between steps, comments kept).
//! The file is replaced atomically: the text goes to a temporary file in the
//! same directory, which is renamed over the original only once it is
//! complete, so a full disk or a crash leaves the original as it was.

use std::io::Write;
use std::path::{Path, PathBuf};

use crate::diagnostics;
use crate::source::{Format, SourceMap};
use crate::syntax;

use super::Error;

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

pub fn run(args: Args) -> Result<(), Error> {
    let path = super::resolve_file(args.file.as_deref())?;
    if Format::of_path(&path) != Format::Topsail {
        return Err(Error::usage(format!(
            "{} is YAML; `topsail fmt` formats .topsail files (try `topsail convert {} --to topsail`)",
            path.display(),
            path.display()
        )));
    }
    let text = match crate::source::read::read_source(&path) {
        Ok(t) => t,
        Err(e) => return Err(Error::usage(format!("cannot read {}: {e}", path.display()))),
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
                errln!("{}", d.render(&sources, color, 100));
            }
            return Err(Error::failed(format!(
                "{} has syntax errors; nothing was formatted",
                path.display()
            )));
        }
    };
    let formatted = syntax::print::print(&module);
    if args.stdout {
        out!("{formatted}");
        return Ok(());
    }
    if formatted == text {
        return Ok(());
    }
    if args.check {
        errln!(
            "{} is not formatted (run `topsail fmt {}`)",
            path.display(),
            path.display()
        );
        return Err(Error::Exit(1));
    }
    match write_atomically(&path, formatted.as_bytes()) {
        Ok(()) => {
            errln!("formatted {}", path.display());
            Ok(())
        }
        Err(e) => Err(Error::usage(format!(
            "cannot write {}: {e}",
            path.display()
        ))),
    }
}

/// Replace `path` with `bytes` atomically, keeping its permissions.
fn write_atomically(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    replace_with(path, |file| {
        file.write_all(bytes)?;
        file.flush()
    })
}

/// Replace `path` with what `write` puts into a temporary file beside it:
/// the file is flushed to disk, given `path`'s permissions, then renamed over
/// `path`. On any error the original is untouched and the temporary file
/// removed.
fn replace_with(
    path: &Path,
    write: impl FnOnce(&mut std::fs::File) -> std::io::Result<()>,
) -> std::io::Result<()> {
    let dir = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let permissions = std::fs::metadata(path)?.permissions();
    let name = path
        .file_name()
        .map_or_else(|| "pipeline".into(), |n| n.to_string_lossy().into_owned());
    let tmp = dir.join(format!(".{name}.fmt-{}.tmp", std::process::id()));
    let result = (|| {
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&tmp)?;
        write(&mut file)?;
        file.sync_all()?;
        std::fs::set_permissions(&tmp, permissions)?;
        std::fs::rename(&tmp, path)
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn entries(dir: &Path) -> usize {
        std::fs::read_dir(dir).expect("list").count()
    }

    #[test]
    fn a_write_that_fails_midway_keeps_the_original() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("p.topsail");
        std::fs::write(&path, "original text\n").expect("write");
        // The disk fills after a few bytes of the new text.
        let e = replace_with(&path, |file| {
            file.write_all(b"new te")?;
            Err(std::io::Error::other("No space left on device"))
        })
        .expect_err("the write fails");
        assert!(e.to_string().contains("No space"), "{e}");
        assert_eq!(
            std::fs::read_to_string(&path).expect("read"),
            "original text\n"
        );
        assert_eq!(entries(dir.path()), 1, "no temporary file left behind");
    }

    #[test]
    fn the_file_is_replaced_whole_with_its_permissions() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("p.topsail");
        std::fs::write(&path, "old").expect("write");
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o640)).expect("chmod");
        write_atomically(&path, b"new text").expect("written");
        assert_eq!(std::fs::read_to_string(&path).expect("read"), "new text");
        let mode = std::fs::metadata(&path).expect("meta").permissions().mode() & 0o777;
        assert_eq!(mode, 0o640);
        assert_eq!(entries(dir.path()), 1, "no temporary file left behind");
    }
}
