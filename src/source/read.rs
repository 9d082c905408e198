//! Reading a source file from disk: the one way every pipeline, import and
//! record file is read. Only regular files are read, at most
//! [`MAX_SOURCE_BYTES`] of them, and the text must be UTF-8 (an error says
//! where it is not). A FIFO, a device or a directory is refused before it is
//! opened, and the file is opened with `O_NONBLOCK` and checked again through
//! the opened descriptor, so a path swapped for a FIFO between the two checks
//! cannot block, and a symlink to `/dev/zero` cannot fill memory.

use std::fmt;
use std::io::Read;
use std::os::unix::fs::{FileTypeExt, OpenOptionsExt};
use std::path::Path;

/// The largest file read: 16 MiB. A pipeline of 100,000 steps is about 15 MB
/// of YAML; anything bigger is a mistake (or an attack), not a pipeline.
pub const MAX_SOURCE_BYTES: u64 = 16 * 1024 * 1024;

/// Why a file could not be read.
#[derive(Debug)]
pub enum ReadError {
    /// Opening, inspecting or reading failed.
    Io(std::io::Error),
    /// Not a regular file: what it is instead ("a FIFO", "a directory", ...).
    NotRegular(&'static str),
    /// Larger than [`MAX_SOURCE_BYTES`]; the size seen (at least).
    TooBig(u64),
    /// Not UTF-8 at this place (1-based line and column, 0-based byte offset).
    NotUtf8 {
        line: usize,
        column: usize,
        byte: usize,
    },
}

impl ReadError {
    /// True when the file does not exist (callers may offer other readings).
    pub fn is_not_found(&self) -> bool {
        matches!(self, ReadError::Io(e) if e.kind() == std::io::ErrorKind::NotFound)
    }
}

impl fmt::Display for ReadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ReadError::Io(e) => write!(f, "{e}"),
            ReadError::NotRegular(what) => {
                write!(f, "it is {what}, not a regular file")
            }
            ReadError::TooBig(size) => write!(
                f,
                "it is {} bytes; a pipeline file may have at most {MAX_SOURCE_BYTES} bytes (16 MiB)",
                group(*size)
            ),
            ReadError::NotUtf8 { line, column, byte } => write!(
                f,
                "it is not UTF-8 text: invalid byte at line {line}, column {column} (byte offset {byte})"
            ),
        }
    }
}

impl std::error::Error for ReadError {}

/// `5242880` -> `5,242,880`.
pub fn group(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

fn kind_of(t: std::fs::FileType) -> Option<&'static str> {
    if t.is_file() {
        None
    } else if t.is_dir() {
        Some("a directory")
    } else if t.is_fifo() {
        Some("a FIFO (named pipe)")
    } else if t.is_socket() {
        Some("a socket")
    } else if t.is_char_device() {
        Some("a character device")
    } else if t.is_block_device() {
        Some("a block device")
    } else {
        Some("not a regular file")
    }
}

/// Read the regular file at `path` (symlinks followed) as UTF-8 text.
pub fn read_source(path: &Path) -> Result<String, ReadError> {
    let bytes = read_bytes(path)?;
    String::from_utf8(bytes).map_err(|e| {
        let bytes = e.as_bytes();
        let at = e.utf8_error().valid_up_to();
        let before = &bytes[..at];
        let line_start = before
            .iter()
            .rposition(|&b| b == b'\n')
            .map_or(0, |i| i + 1);
        let line = before.split(|&b| b == b'\n').count();
        // The prefix is valid UTF-8 (that is what `valid_up_to` promises).
        let column =
            std::str::from_utf8(&before[line_start..]).map_or(0, |s| s.chars().count()) + 1;
        ReadError::NotUtf8 {
            line,
            column,
            byte: at,
        }
    })
}

/// Read the regular file at `path` as bytes, with the checks of
/// [`read_source`] but no UTF-8 requirement.
pub fn read_bytes(path: &Path) -> Result<Vec<u8>, ReadError> {
    let meta = std::fs::metadata(path).map_err(ReadError::Io)?;
    if let Some(what) = kind_of(meta.file_type()) {
        return Err(ReadError::NotRegular(what));
    }
    if meta.len() > MAX_SOURCE_BYTES {
        return Err(ReadError::TooBig(meta.len()));
    }
    // O_NONBLOCK: had the path become a FIFO since the check above, opening
    // it would otherwise wait for a writer. It changes nothing for a regular file.
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(nix::fcntl::OFlag::O_NONBLOCK.bits())
        .open(path)
        .map_err(ReadError::Io)?;
    let meta = file.metadata().map_err(ReadError::Io)?;
    if let Some(what) = kind_of(meta.file_type()) {
        return Err(ReadError::NotRegular(what));
    }
    if meta.len() > MAX_SOURCE_BYTES {
        return Err(ReadError::TooBig(meta.len()));
    }
    // The file may still grow while it is read: never read past the limit.
    let mut bytes = Vec::with_capacity(usize::try_from(meta.len()).unwrap_or(0));
    file.take(MAX_SOURCE_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(ReadError::Io)?;
    if bytes.len() as u64 > MAX_SOURCE_BYTES {
        return Err(ReadError::TooBig(bytes.len() as u64));
    }
    Ok(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn invalid_utf8_says_where() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("bad.topsail");
        std::fs::write(&path, b"a:\n    run \xc3\xa9x\xff\n").expect("write");
        let e = read_source(&path).expect_err("not UTF-8");
        assert!(
            matches!(
                e,
                ReadError::NotUtf8 {
                    line: 2,
                    column: 11,
                    byte: 14
                }
            ),
            "{e:?}"
        );
    }

    #[test]
    fn directories_and_devices_are_refused() {
        let dir = tempfile::tempdir().expect("temp dir");
        assert!(matches!(
            read_source(dir.path()),
            Err(ReadError::NotRegular("a directory"))
        ));
        assert!(matches!(
            read_source(Path::new("/dev/zero")),
            Err(ReadError::NotRegular("a character device"))
        ));
    }

    #[test]
    fn numbers_are_grouped() {
        assert_eq!(group(5_242_880), "5,242,880");
        assert_eq!(group(999), "999");
        assert_eq!(group(1000), "1,000");
    }
}
