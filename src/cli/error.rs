//! What a subcommand ends with when it does not succeed, and the exit code
//! that goes with it (as casey/just's `Error` knows its code). Subcommands
//! return `Result<(), Error>`; [`super::main`] prints the error and maps it
//! to the process's exit code, in one place.
//!
//! The codes: 0 success; 1 the command ran and the answer is no (errors in
//! the pipeline, a failed run or execution, a file not formatted); 2 it
//! could not do its job (usage, I/O, AWS unreachable); a run's own code
//! (130 after Ctrl-C) as the run chose it.

use std::process::ExitCode;

#[derive(Debug)]
pub enum Error {
    /// A usage or I/O problem: `error: MESSAGE` on stderr, exit 2.
    Usage(String),
    /// The command ran and failed: `error: MESSAGE` on stderr, exit 1.
    Failed(String),
    /// Already said (diagnostics, a run's summary, a JSON document, a
    /// `--check` verdict): only the exit code, never 0.
    Exit(u8),
}

impl Error {
    pub fn usage(message: impl std::fmt::Display) -> Error {
        Error::Usage(message.to_string())
    }

    pub fn failed(message: impl std::fmt::Display) -> Error {
        Error::Failed(message.to_string())
    }

    /// A command's own exit code as a result: 0 is success.
    pub fn code(code: u8) -> Result<(), Error> {
        if code == 0 {
            Ok(())
        } else {
            Err(Error::Exit(code))
        }
    }

    pub fn exit_code(&self) -> u8 {
        match self {
            Error::Usage(_) => 2,
            Error::Failed(_) => 1,
            Error::Exit(code) => *code,
        }
    }

    /// The message a user sees, if it was not said already.
    pub fn message(&self) -> Option<&str> {
        match self {
            Error::Usage(m) | Error::Failed(m) => Some(m),
            Error::Exit(_) => None,
        }
    }
}

/// Print a subcommand's error (if any) and give the process's exit code.
pub fn report(result: Result<(), Error>) -> ExitCode {
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            if let Some(m) = e.message() {
                errln!("error: {m}");
            }
            ExitCode::from(e.exit_code())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_error_knows_its_exit_code() {
        assert_eq!(Error::usage("x").exit_code(), 2);
        assert_eq!(Error::failed("x").exit_code(), 1);
        assert_eq!(Error::Exit(130).exit_code(), 130);
        assert_eq!(Error::Exit(1).message(), None);
        assert_eq!(Error::usage("bad").message(), Some("bad"));
        assert!(Error::code(0).is_ok());
        assert_eq!(Error::code(1).map_err(|e| e.exit_code()), Err(1));
    }
}
