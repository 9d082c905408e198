//! Printing for commands. stdout or stderr may be a pipe whose reader has
//! gone (`topsail runs | head -3`); `println!` panics then (exit 101, and a
//! `run` would lose its real status). These macros write to the locked
//! handle and treat a closed pipe as the end of that output: the command goes
//! on (a `run` finishes its steps) and exits with its real status. Any other
//! write error on stdout is reported once on stderr.

use std::fmt;
use std::io::{self, Write};
use std::sync::atomic::{AtomicBool, Ordering};

static STDOUT_ERROR_SHOWN: AtomicBool = AtomicBool::new(false);

/// Write to stdout; a closed pipe is quiet, other errors are said once.
pub fn stdout(args: fmt::Arguments<'_>, newline: bool) {
    let mut out = io::stdout().lock();
    let result = out
        .write_fmt(args)
        .and_then(|()| {
            if newline {
                out.write_all(b"\n")
            } else {
                Ok(())
            }
        })
        .and_then(|()| out.flush());
    if let Err(e) = result
        && e.kind() != io::ErrorKind::BrokenPipe
        && !STDOUT_ERROR_SHOWN.swap(true, Ordering::Relaxed)
    {
        stderr(format_args!("error: cannot write to stdout: {e}"), true);
    }
}

/// Write to stderr; there is nowhere left to report an error on it.
pub fn stderr(args: fmt::Arguments<'_>, newline: bool) {
    let mut err = io::stderr().lock();
    let _ = err.write_fmt(args).and_then(|()| {
        if newline {
            err.write_all(b"\n")
        } else {
            Ok(())
        }
    });
}

/// `print!` that never panics.
macro_rules! out {
    ($($arg:tt)*) => { $crate::out::stdout(format_args!($($arg)*), false) };
}

/// `println!` that never panics.
macro_rules! outln {
    () => { $crate::out::stdout(format_args!(""), true) };
    ($($arg:tt)*) => { $crate::out::stdout(format_args!($($arg)*), true) };
}

/// `eprintln!` that never panics.
macro_rules! errln {
    () => { $crate::out::stderr(format_args!(""), true) };
    ($($arg:tt)*) => { $crate::out::stderr(format_args!($($arg)*), true) };
}
