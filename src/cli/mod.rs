//! The command line: one file per subcommand, each a clap `Args` struct and a
//! `run(args) -> ExitCode`. Exit codes: 0 success, 1 the pipeline (or a step)
//! failed or has errors, 2 usage or I/O errors, 130 interrupted.

use std::process::ExitCode;

use clap::{Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(name = "topsail", version, about = "Check, run and compile topsail pipelines", long_about = None)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {}

pub fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            let _ = e.print();
            return if e.use_stderr() {
                ExitCode::from(2)
            } else {
                ExitCode::SUCCESS
            };
        }
    };
    match cli.command {}
}
