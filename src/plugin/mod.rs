//! `kubectl qlik`: the imperative side of QlikAutomation objects, as a kubectl plugin.
//!
//! The operator keeps automations declarative; people still need to start a run now, read
//! why the last one failed, or make the operator look again. The plugin resolves a
//! QlikAutomation to its remote id and its connection Secret (through
//! [`connection::resolve`](crate::connection::resolve), like the
//! operator) and calls the tenant with the project's own [`QlikClient`](crate::qlik::QlikClient),
//! so rate limits, retries and error classes are the same.
//!
//! Two commands work on manifests instead: `export` writes a tenant as a kustomize
//! directory ([`exported`]), and `diff` shows what applying manifests would change
//! ([`manifests`]), with the reconciler's own [`plan`](crate::controller::plan::plan).
//!
//! The binary (`src/bin/kubectl-qlik.rs`) only parses [`Cli`] and calls [`run`]; everything
//! else lives here so tests can drive it.

pub mod cli;
pub mod commands;
pub mod duration;
pub mod error;
pub mod exported;
pub mod exposition;
pub mod follow;
pub mod linediff;
pub mod manifests;
pub mod operator_metrics;
pub mod render;
pub mod target;

use std::io::Write;

pub use cli::{Cli, Command};
pub use error::PluginError;
pub use target::Cluster;

/// Where a command writes: results to `out` (stdout), progress and notes to `err` (stderr),
/// so `-o json` output stays parseable.
pub struct Io<'a> {
    /// Results.
    pub out: &'a mut dyn Write,
    /// Progress, notes and warnings.
    pub err: &'a mut dyn Write,
}

/// Runs one parsed command line.
pub async fn run(cli: Cli, io: &mut Io<'_>) -> Result<(), PluginError> {
    let cluster = match &cli.command {
        // `diff` reads its manifests before connecting, and maps every failure to exit 2.
        Command::Diff(args) => return commands::diff::execute(&cli.global, args, io).await,
        _ => Cluster::connect(&cli.global).await?,
    };
    match cli.command {
        Command::Runs(args) => commands::runs::execute(&cluster, &args, io).await,
        Command::Run(args) => commands::run::execute(&cluster, &args, io).await,
        Command::Logs(args) => commands::logs::execute(&cluster, &args, io).await,
        Command::Retry(args) => commands::actions::retry(&cluster, &args, io).await,
        Command::Stop(args) => commands::actions::stop(&cluster, &args, io).await,
        Command::Status(args) => commands::status::execute(&cluster, &args, io).await,
        Command::Reconcile(args) => commands::reconcile::execute(&cluster, &args, io).await,
        Command::Export(args) => commands::export::execute(&cluster, &args, io).await,
        Command::Diff(_) => Ok(()), // handled above
    }
}
