//! atelier-cli is the top layer: the `atelier` command line. It parses arguments, wires the
//! catalogue and vision crates together, prints human text or `--json`, shows progress bars,
//! and turns every error into one line and an exit code (2 bad input, 1 internal failure).
//!
//! Each subcommand lives in its own module under `commands/`; none holds domain logic that a
//! library crate could own.

mod args;
mod commands;
mod error;
mod output;
mod progress;

use std::process::ExitCode;

use clap::Parser;

pub use args::Cli;
pub use error::CliError;

/// Runs the command line and returns the process exit code.
pub fn main() -> ExitCode {
    atelier_models::keep_freed_memory();
    let cli = Cli::parse();
    init_logging();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::from(1);
        }
    };
    match runtime.block_on(commands::run(&cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("error: {err}");
            ExitCode::from(err.exit_code())
        }
    }
}

/// Logs go to stderr so that `--json` output on stdout stays machine-readable.
/// `ATELIER_LOG=debug` (tracing-subscriber env-filter syntax) shows more.
fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_env("ATELIER_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(false)
        .try_init();
}
