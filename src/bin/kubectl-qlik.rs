//! `kubectl-qlik`: the kubectl plugin (`kubectl qlik ...` once this binary is on PATH).
//!
//! Only start-up lives here; the commands are in `qlik_automations_operator::plugin`.

use std::process::ExitCode;

use clap::Parser;
use qlik_automations_operator::plugin::{self, Cli, Io};
use tracing_subscriber::EnvFilter;

#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    // Quiet by default: stdout is for results and stderr for the one error line; RUST_LOG
    // shows the client's retries and the like when debugging.
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("warn"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();
    let mut stdout = std::io::stdout();
    let mut stderr = std::io::stderr();
    let mut io = Io {
        out: &mut stdout,
        err: &mut stderr,
    };
    match plugin::run(cli, &mut io).await {
        Ok(()) => ExitCode::SUCCESS,
        // `kubectl qlik runs x | head`: the reader has what it wanted.
        Err(plugin::PluginError::Output(e)) if e.kind() == std::io::ErrorKind::BrokenPipe => {
            ExitCode::SUCCESS
        }
        // Differences found by `diff` are its answer, not an error (exit 1, as `kubectl diff`).
        Err(e @ plugin::PluginError::Differences(_)) => {
            eprintln!("{e}");
            e.exit_code()
        }
        Err(e) => {
            eprintln!("error: {e}");
            e.exit_code()
        }
    }
}
