//! The `qlik-automations-operator` command line.

use clap::{Parser, Subcommand};
use qlik_automations_operator::{
    controller::{self, RunArgs},
    crd, demo,
    emulator::cli::{EmulatorArgs, run as run_emulator},
    telemetry::{self, LogFormat},
};

/// A Kubernetes operator that makes Qlik Cloud automations declarative.
#[derive(Debug, Parser)]
#[command(name = "qlik-automations-operator", version, about, long_about = None)]
struct Cli {
    /// Log format: text or json.
    #[arg(long, env = "QAO_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text, global = true)]
    log_format: LogFormat,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the operator: reconcile QlikAutomation and QlikAutomationSettings objects.
    Run(RunArgs),
    /// Print the YAML of both CustomResourceDefinitions.
    Crds,
    /// Serve a local emulator of the Qlik Automations API (for tests, demos and trying the
    /// operator without a tenant).
    Emulator(EmulatorArgs),
    /// Try everything on this machine: a local control plane, the emulator, the operator and
    /// the examples, until Ctrl-C.
    Demo(demo::DemoArgs),
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    telemetry::init(cli.log_format);
    qlik_automations_operator::install_crypto_provider();
    match cli.command {
        Command::Run(args) => controller::run(args).await,
        Command::Crds => {
            print!("{}", crd::crds_yaml()?);
            Ok(())
        }
        Command::Emulator(args) => run_emulator(args).await,
        Command::Demo(args) => demo::run(args).await,
    }
}
