//! The `callscreen` command: parse the command line, set up logging, run one command and
//! turn its result into an exit status.

mod cli;

use std::process::ExitCode;

use clap::Parser;

// The daemon allocates on its request threads and frees on its audit and log threads;
// glibc's allocator serialises that on an arena lock, jemalloc does not (about a third more
// requests per second in `bench/http.sh`).
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

// jemalloc's start-up options (its `malloc_conf`, under this build's symbol prefix). By
// default it keeps freed pages for ten seconds; compiling a large rule set frees its parsed
// TOML as it goes, and keeping those pages would add a fifth to peak memory at 100,000
// rules. Returning them at once cost no measurable throughput in `bench/http.sh`.
#[unsafe(export_name = "_rjem_malloc_conf")]
static ALLOCATOR_OPTIONS: &u8 = &b"dirty_decay_ms:0,muzzy_decay_ms:0\0"[0];

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
