//! The `callscreen` command: parse the command line, set up logging, run one command and
//! turn its result into an exit status.

mod cli;

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let args = cli::Cli::parse();
    match cli::dispatch(args) {
        Ok(code) => code,
        Err(error) => {
            eprintln!("callscreen: {error:#}");
            ExitCode::from(1)
        }
    }
}
