//! Reading the file a step wrote through `$TOPSAIL_OUTPUT` (LANGUAGE.md
//! section 5): `NAME=value` lines and `NAME<<DELIM` blocks for multi-line
//! values. Shared by the local runner and, later, the activity worker.

use std::path::Path;

use indexmap::IndexMap;

/// The most a step's outputs may hold: the `$TOPSAIL_OUTPUT` file, and the
/// outputs read from it JSON-encoded. 256 KiB is what one Step Functions
/// payload holds, so the local runner and the activity worker (which both
/// read outputs through [`crate::run::runtime::run_attempt`]) fail the same
/// step alike, with `topsail.OutputTooLarge`. The worker also checks the
/// payload it sends (keys and framing added) against
/// [`crate::asl::MAX_PAYLOAD_BYTES`].
pub const MAX_BYTES: usize = 256 * 1024;
const _: () = assert!(MAX_BYTES <= crate::asl::MAX_PAYLOAD_BYTES);

/// Problems in one output file shown, at most (the rest are counted).
pub const MAX_WARNINGS: usize = 10;

#[derive(Debug)]
pub enum ReadError {
    /// Over [`MAX_BYTES`]: the message says so with the limit.
    TooLarge(String),
    Other(String),
}

/// The text of the output file at `path`, never more than [`MAX_BYTES`] of
/// it read: a larger file is refused from its size, before reading, and a
/// file that grows while read is cut off one byte past the limit. Only a
/// regular file is read (opened without following a symlink and without
/// blocking, so a FIFO the step put there cannot hang the runner).
pub fn read_bounded(path: &Path) -> Result<String, ReadError> {
    use std::io::Read;
    use std::os::unix::fs::OpenOptionsExt;
    let other = |e: std::io::Error| {
        ReadError::Other(format!(
            "cannot read $TOPSAIL_OUTPUT: {e} (write outputs into the file topsail made; do not replace it)"
        ))
    };
    let too_large = |size: String| {
        ReadError::TooLarge(format!(
            "$TOPSAIL_OUTPUT holds {size} bytes; outputs may hold at most {MAX_BYTES} (256 KiB, \
             what a Step Functions payload holds), here as on a worker: write large data to a \
             file or storage and output its location"
        ))
    };
    let flags = nix::fcntl::OFlag::O_NONBLOCK | nix::fcntl::OFlag::O_NOFOLLOW;
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(flags.bits())
        .open(path)
        .map_err(other)?;
    let meta = file.metadata().map_err(other)?;
    if !meta.is_file() {
        return Err(ReadError::Other(
            "$TOPSAIL_OUTPUT is not a regular file any more: write outputs into the file \
             topsail made; do not replace it"
                .into(),
        ));
    }
    if meta.len() > MAX_BYTES as u64 {
        return Err(too_large(meta.len().to_string()));
    }
    let mut buf = Vec::with_capacity(usize::try_from(meta.len()).unwrap_or(0));
    file.take(MAX_BYTES as u64 + 1)
        .read_to_end(&mut buf)
        .map_err(other)?;
    if buf.len() > MAX_BYTES {
        return Err(too_large(format!("more than {MAX_BYTES}")));
    }
    String::from_utf8(buf).map_err(|e| {
        ReadError::Other(format!(
            "$TOPSAIL_OUTPUT is not UTF-8 text (invalid byte at offset {})",
            e.utf8_error().valid_up_to()
        ))
    })
}

/// The outputs set in `text`, in the order first set (a later line wins).
/// Lines that are neither form are returned as problems, not errors: the
/// step decides what it writes, the runner only warns.
pub fn parse(text: &str) -> (IndexMap<String, String>, Vec<String>) {
    let mut out = IndexMap::new();
    let mut problems = Vec::new();
    let mut lines = text.lines();
    while let Some(line) = lines.next() {
        if line.trim().is_empty() {
            continue;
        }
        if let Some((name, delim)) = heredoc(line) {
            let mut value: Vec<&str> = Vec::new();
            let mut closed = false;
            for l in lines.by_ref() {
                if l == delim {
                    closed = true;
                    break;
                }
                value.push(l);
            }
            if !closed {
                problems.push(format!(
                    "`{name}<<{delim}` is not closed by a `{delim}` line"
                ));
            }
            out.insert(name.to_string(), value.join("\n"));
        } else if let Some((name, value)) = line.split_once('=') {
            if crate::model::text::is_name(name) {
                out.insert(name.to_string(), value.to_string());
            } else {
                problems.push(format!("`{name}` is not an output name"));
            }
        } else {
            problems.push(format!(
                "ignored line `{line}` (expected NAME=value or NAME<<DELIM)"
            ));
        }
    }
    (out, problems)
}

fn heredoc(line: &str) -> Option<(&str, &str)> {
    let (name, delim) = line.split_once("<<")?;
    if crate::model::text::is_name(name) && !delim.is_empty() && !name.contains('=') {
        Some((name, delim))
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn simple_and_multiline() {
        let (o, p) = parse("A=1\nB<<EOF\nx\ny=z\nEOF\nC=a=b\nA=2\n");
        assert!(p.is_empty(), "{p:?}");
        assert_eq!(o["A"], "2");
        assert_eq!(o["B"], "x\ny=z");
        assert_eq!(o["C"], "a=b");
        assert_eq!(o.keys().collect::<Vec<_>>(), ["A", "B", "C"]);
    }

    #[test]
    fn the_output_file_is_read_with_a_bound() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("output");
        std::fs::write(&path, "A=1\n").unwrap();
        assert_eq!(read_bounded(&path).unwrap(), "A=1\n");
        std::fs::write(&path, vec![b'x'; MAX_BYTES]).unwrap();
        assert_eq!(read_bounded(&path).unwrap().len(), MAX_BYTES);
        std::fs::write(&path, vec![b'x'; MAX_BYTES + 1]).unwrap();
        match read_bounded(&path) {
            Err(ReadError::TooLarge(m)) => assert!(m.contains("262144"), "{m}"),
            other => panic!("{other:?}"),
        }
        let link = dir.path().join("link");
        std::os::unix::fs::symlink("/dev/zero", &link).unwrap();
        assert!(matches!(read_bounded(&link), Err(ReadError::Other(_))));
        assert!(matches!(read_bounded(dir.path()), Err(ReadError::Other(_))));
    }

    #[test]
    fn empty_value_and_problems() {
        let (o, p) = parse("A=\nnonsense\nB<<END\nx\n");
        assert_eq!(o["A"], "");
        assert_eq!(o["B"], "x");
        assert_eq!(p.len(), 2);
    }
}
