//! The stdio framing of the language server, read by us rather than by
//! lsp-server's own stdio transport, whose reader trusts the client: it
//! allocates whatever `Content-Length` says (a huge one aborts the process)
//! and reads a header line of any length. Here a header line, the number of
//! headers and the body are bounded; a frame past a bound ends the server
//! with an error instead. Messages then go through lsp-server's in-memory
//! [`Connection`], so the rest of the server is unchanged.

use std::io::{self, BufRead, Read, Write};
use std::thread;

use lsp_server::{Connection, Message};

/// The largest message body accepted: 64 MiB, room for a document at the
/// file size limit ([`crate::source::read::MAX_SOURCE_BYTES`]) even when
/// JSON escaping makes it several times longer.
pub const MAX_BODY_BYTES: usize = 64 * 1024 * 1024;
/// The longest header line (`Content-Length: N` is about 30 bytes).
const MAX_HEADER_LINE: usize = 1024;
/// The most header lines in one frame (LSP defines two).
const MAX_HEADERS: usize = 16;

/// The threads moving messages between stdio and the connection.
pub struct IoThreads {
    reader: thread::JoinHandle<io::Result<()>>,
    writer: thread::JoinHandle<io::Result<()>>,
}

impl IoThreads {
    /// Wait for both; the reader's error (a refused frame) comes first.
    pub fn join(self) -> io::Result<()> {
        let reader = self
            .reader
            .join()
            .unwrap_or_else(|_| Err(io::Error::other("the reader thread panicked")));
        let writer = self
            .writer
            .join()
            .unwrap_or_else(|_| Err(io::Error::other("the writer thread panicked")));
        reader.and(writer)
    }
}

/// A connection served on stdin and stdout.
pub fn stdio() -> io::Result<(Connection, IoThreads)> {
    let (server, client) = Connection::memory();
    let Connection {
        sender: to_server,
        receiver: from_server,
    } = client;
    let reader = thread::Builder::new()
        .name("lsp-reader".into())
        .spawn(move || {
            let stdin = io::stdin();
            let mut input = stdin.lock();
            loop {
                let msg = match read_message(&mut input) {
                    Ok(Some(msg)) => msg,
                    Ok(None) => break,
                    // The frame was whole, only its body is not a message:
                    // the next frame starts right after it, so one bad
                    // message from a client does not end the server.
                    Err(e) if is_bad_body(&e) => {
                        errln!("topsail lsp: skipped {e}");
                        continue;
                    }
                    Err(e) => return Err(e),
                };
                let is_exit = matches!(&msg, Message::Notification(n) if n.method == "exit");
                if to_server.send(msg).is_err() || is_exit {
                    break;
                }
            }
            Ok(())
        })?;
    let writer = thread::Builder::new()
        .name("lsp-writer".into())
        .spawn(move || {
            let stdout = io::stdout();
            let mut out = stdout.lock();
            for msg in from_server {
                msg.write(&mut out)?;
            }
            out.flush()
        })?;
    Ok((server, IoThreads { reader, writer }))
}

/// A whole frame whose body is not a JSON-RPC message.
#[derive(Debug)]
struct BadBody(String);

impl std::fmt::Display for BadBody {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for BadBody {}

fn is_bad_body(e: &io::Error) -> bool {
    matches!(e.get_ref(), Some(inner) if inner.is::<BadBody>())
}

fn invalid(message: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, message)
}

/// One header line without its `\r\n`; `None` at the end of the input.
fn read_header_line(input: &mut impl BufRead) -> io::Result<Option<String>> {
    let mut line = Vec::new();
    let n = input
        .by_ref()
        .take(MAX_HEADER_LINE as u64 + 2)
        .read_until(b'\n', &mut line)?;
    if n == 0 {
        return Ok(None);
    }
    let Some(line) = line.strip_suffix(b"\r\n") else {
        return Err(invalid(if n > MAX_HEADER_LINE {
            format!("a message header longer than {MAX_HEADER_LINE} bytes")
        } else {
            "a message header not ended by CRLF".to_string()
        }));
    };
    String::from_utf8(line.to_vec())
        .map(Some)
        .map_err(|_| invalid("a message header that is not UTF-8".into()))
}

/// Read one framed message; `None` at the end of the input.
pub fn read_message(input: &mut impl BufRead) -> io::Result<Option<Message>> {
    let mut length: Option<usize> = None;
    let mut headers = 0;
    loop {
        let Some(line) = read_header_line(input)? else {
            return Ok(None);
        };
        if line.is_empty() {
            break;
        }
        headers += 1;
        if headers > MAX_HEADERS {
            return Err(invalid(format!("more than {MAX_HEADERS} message headers")));
        }
        let Some((name, value)) = line.split_once(':') else {
            return Err(invalid(format!("a malformed message header: {line:?}")));
        };
        if name.trim().eq_ignore_ascii_case("Content-Length") {
            let value = value.trim();
            let n: u128 = value.parse().map_err(|_| {
                invalid(format!("a Content-Length that is not a number: {value:?}"))
            })?;
            let n = usize::try_from(n)
                .ok()
                .filter(|&n| n <= MAX_BODY_BYTES)
                .ok_or_else(|| {
                    invalid(format!(
                        "a message of {n} bytes; the limit is {MAX_BODY_BYTES} bytes (64 MiB)"
                    ))
                })?;
            length = Some(n);
        }
    }
    let length = length.ok_or_else(|| invalid("a message without Content-Length".into()))?;
    let mut body = Vec::new();
    input.by_ref().take(length as u64).read_to_end(&mut body)?;
    if body.len() < length {
        return Err(io::Error::new(
            io::ErrorKind::UnexpectedEof,
            "the input ended inside a message",
        ));
    }
    serde_json::from_slice(&body).map(Some).map_err(|e| {
        io::Error::new(
            io::ErrorKind::InvalidData,
            BadBody(format!("a message that is not JSON-RPC: {e}")),
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(bytes: &[u8]) -> io::Result<Option<Message>> {
        read_message(&mut io::Cursor::new(bytes))
    }

    #[test]
    fn frames_are_read_and_bounded() {
        let body = r#"{"jsonrpc":"2.0","method":"exit"}"#;
        let frame = format!("Content-Length: {}\r\n\r\n{body}", body.len());
        assert!(matches!(
            read(frame.as_bytes()),
            Ok(Some(Message::Notification(_)))
        ));
        assert!(read(b"").expect("empty input").is_none());
        let huge = read(b"Content-Length: 99999999999999999999\r\n\r\n").expect_err("too big");
        assert!(huge.to_string().contains("limit"), "{huge}");
        let long = format!("X-{}: 1\r\n", "a".repeat(5000));
        assert!(read(long.as_bytes()).is_err());
        assert!(read(b"Content-Length: 10\r\n\r\n{}").is_err());
    }
}
