//! The command line of `kubectl qlik`: global flags, one subcommand per operation.

use std::{path::PathBuf, time::Duration};

use clap::{Args, Parser, Subcommand};

use super::{duration, render::OutputFormat};
use crate::crd::automation::DeletionPolicy;

const ABOUT: &str =
    "Run, inspect and nudge Qlik Cloud automations managed by QlikAutomation objects";

const LONG_ABOUT: &str = "\
Run, inspect and nudge Qlik Cloud automations managed by QlikAutomation objects.

The operator makes automations declarative; this plugin covers the imperative side: start a
run and follow it, list runs, print a run's log, retry or stop a run, summarise an
automation's state, and ask the operator to reconcile now. `export` writes a tenant's
automations as manifests, and `diff` shows what applying manifests would change in a tenant.

Every command but export and diff names a QlikAutomation. The plugin reads the object (namespace from
-n/--namespace, else the kubeconfig context's namespace, else `default`), its
status.automationId, and the tenant URL and API key from its connection Secret, then calls
the tenant's Automations API directly, with the same client, rate limits and retries as the
operator. Your kubeconfig user therefore needs RBAC `get` on qlikautomations and on the
connection Secret (`patch` on qlikautomations for `reconcile`). The API key and execution
tokens are never printed.

Exit status: 0 on success, 1 on an error, 2 on a usage error, 3 when a run waited for ended
failed or stopped, 4 when --timeout elapsed. `diff` exits as `kubectl diff` does: 0 without
differences, 1 with differences, 2 on an error.";

const EXAMPLES: &str = "\
Examples:
  kubectl qlik runs nightly-reload -n analytics
  kubectl qlik run nightly-reload --inputs '{\"day\":\"2026-01-31\"}' --wait
  kubectl qlik logs nightly-reload
  kubectl qlik status nightly-reload -o yaml
  kubectl qlik reconcile nightly-reload --timeout 2m
  kubectl qlik export --connection qlik-tenant --output-dir automations/
  kubectl qlik diff -k automations/";

/// `kubectl qlik`: the imperative side of QlikAutomation objects.
#[derive(Debug, Parser)]
#[command(
    name = "kubectl-qlik",
    bin_name = "kubectl qlik",
    version,
    about = ABOUT,
    long_about = LONG_ABOUT,
    after_help = EXAMPLES
)]
pub struct Cli {
    /// Where the object lives and how to reach the cluster.
    #[command(flatten)]
    pub global: GlobalArgs,
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// Flags every subcommand accepts, before or after its own arguments.
#[derive(Debug, Clone, Args)]
#[command(next_help_heading = "Global options")]
pub struct GlobalArgs {
    /// Namespace of the QlikAutomation (default: the kubeconfig context's namespace, else
    /// `default`).
    #[arg(short = 'n', long, global = true)]
    pub namespace: Option<String>,
    /// Path to the kubeconfig file (default: $KUBECONFIG, else ~/.kube/config, else the
    /// in-cluster ServiceAccount).
    #[arg(long, global = true, value_name = "PATH")]
    pub kubeconfig: Option<PathBuf>,
    /// The kubeconfig context to use (default: its current context).
    #[arg(long, global = true, value_name = "NAME")]
    pub context: Option<String>,
    /// The connection Secret (`namespace/name`) for objects without
    /// spec.connection: the operator's own --default-connection.
    #[arg(
        long,
        global = true,
        env = "QAO_DEFAULT_CONNECTION",
        value_name = "NAMESPACE/NAME"
    )]
    pub default_connection: Option<String>,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// List an automation's runs, newest first.
    #[command(
        long_about = "List an automation's runs, newest first (sorted by start time), following \
the API's pagination until --limit runs are shown.\n\nColumns: ID, STATUS, CONTEXT (what \
started it: api, webhook, ...), STARTED (UTC), DURATION, TITLE.",
        after_help = "Examples:\n  kubectl qlik runs nightly-reload\n  kubectl qlik runs nightly-reload --status failed --limit 5\n  kubectl qlik runs nightly-reload --limit 0 -o json | jq -r '.[].id'"
    )]
    Runs(RunsArgs),
    /// Start a run of an automation, optionally waiting for it to end.
    #[command(
        long_about = "Start a run of an automation (POST .../runs with context `api`). The run's \
inputs are --inputs, else the object's spec.runInputs.\n\nWith --wait, every status change is \
printed until the run ends; the command exits 3 when it ended failed, stopped or otherwise \
unsuccessful, and 4 when --timeout elapses first (the run goes on in the tenant).",
        after_help = "Examples:\n  kubectl qlik run nightly-reload\n  kubectl qlik run nightly-reload --inputs '{\"day\":\"2026-01-31\"}' --wait --timeout 10m\n  kubectl qlik run nightly-reload --inputs @inputs.json --wait -o json"
    )]
    Run(RunArgs),
    /// Print a run's log (the newest run by default).
    #[command(
        long_about = "Print a run's log: the plugin exports the run (a short-lived download URL), \
downloads the log and prints one line per entry. Without RUN_ID the newest run is used. \
-o json prints the log exactly as Qlik exported it. --debug prints the run's debug log instead \
(workflows connections only).",
        after_help = "Examples:\n  kubectl qlik logs nightly-reload\n  kubectl qlik logs nightly-reload 0b7c5d9e-3f1a-4d2b-9a57-2f0e4c1d8b6a -o json\n  kubectl qlik logs nightly-reload 0b7c5d9e-3f1a-4d2b-9a57-2f0e4c1d8b6a --debug"
    )]
    Logs(LogsArgs),
    /// Retry a run: a new run with the same inputs.
    #[command(
        long_about = "Retry a run: Qlik creates a new run with the same inputs. The new run's id \
is printed when it can be found in the run list.",
        after_help = "Example:\n  kubectl qlik retry nightly-reload 0b7c5d9e-3f1a-4d2b-9a57-2f0e4c1d8b6a"
    )]
    Retry(RetryArgs),
    /// Stop a run that has not ended.
    #[command(
        long_about = "Stop a run that has not ended. Qlik first marks it `must stop`, then \
`stopped`; --wait waits for the run to end.",
        after_help = "Example:\n  kubectl qlik stop nightly-reload 0b7c5d9e-3f1a-4d2b-9a57-2f0e4c1d8b6a --wait"
    )]
    Stop(StopArgs),
    /// Summarise an automation: remote id, state, run mode, owner, last run, usage, conditions.
    #[command(
        long_about = "Summarise an automation: what the operator recorded in the object's status \
(remote id, state, run mode, owner, last run, usage, each condition with its reason and \
message), then what the tenant says right now (a live GET of the automation). The execution \
token is never shown.",
        after_help = "Examples:\n  kubectl qlik status nightly-reload\n  kubectl qlik status nightly-reload -o json | jq .remote.state"
    )]
    Status(StatusArgs),
    /// Ask the operator to reconcile now, and wait until it has.
    #[command(
        long_about = "Ask the operator to reconcile now, Flux's way: set the annotation \
reconcile.fluxcd.io/requestedAt to the current time, then wait until the operator records \
that value in status.lastHandledReconcileAt. Prints the Ready condition afterwards and exits 1 \
when it is not True, 4 when --timeout elapses first.",
        after_help = "Example:\n  kubectl qlik reconcile nightly-reload --timeout 2m"
    )]
    Reconcile(ReconcileArgs),
    /// Write a tenant's automations as a kustomize directory of QlikAutomation manifests.
    #[command(
        long_about = "Write a tenant's automations as a kustomize directory: one QlikAutomation \
manifest per remote automation (adopting it through the automations.qlik.dev/automation-id \
annotation), its workspace as workspaces/NAME.json in a configMapGenerator, and a \
kustomization.yaml listing them. Only reads the tenant: the list (200 per page, every page) \
and one GET per automation, with the operator's client, rate limits and retries.\n\n\
`kubectl apply -k DIR` then adopts every automation without changing it: each manifest says \
exactly what the tenant has (name, description, enabled, schedules, workspace; ownerId with \
--include-owner). Names are derived from the remote names (lowercase, other characters as \
`-`, at most 63); a name taken twice, or empty, gets a suffix of the remote id. The same \
tenant always gives the same bytes. Files of an earlier export into DIR that are no longer \
listed are removed.",
        after_help = "Examples:\n  kubectl qlik export --connection qlik-tenant --output-dir automations/\n  kubectl qlik export --connection qlik-dev --output-dir dev/ --filter 'runMode eq \"scheduled\"' --observe\n  kubectl apply -k automations/"
    )]
    Export(ExportArgs),
    /// Show what applying QlikAutomation manifests would change in the tenant.
    #[command(
        long_about = "Show what applying QlikAutomation manifests would change in the tenant, \
computed with the operator's own plan: for each QlikAutomation in -f FILE (YAML or JSON, \
several documents, `-` for stdin) or in the output of `kubectl kustomize DIR` (-k; the \
kubectl of $QAO_KUBECTL, else the one on PATH), the workspace is read from the ConfigMaps \
of the same manifests (else from the cluster), the remote is found by the \
automations.qlik.dev/automation-id annotation (else the one the live object in the cluster \
is linked to, else it would be created), and every field that would change is printed with \
its old and new value, the workspace as a unified diff.\n\n\
Only reads. Exit status as `kubectl diff`: 0 when nothing would change, 1 when something \
would, 2 on an error.",
        after_help = "Examples:\n  kubectl qlik diff -f automation.yaml\n  kubectl qlik diff -k overlays/prod\n  kubectl qlik diff -k automations/ --connection qlik-prod"
    )]
    Diff(DiffArgs),
}

/// Flags of `runs`.
#[derive(Debug, Clone, Args)]
pub struct RunsArgs {
    /// The QlikAutomation.
    pub name: String,
    /// Only runs with this status (e.g. failed, finished, running).
    #[arg(long, value_name = "STATUS")]
    pub status: Option<String>,
    /// Show at most this many runs; 0 shows all.
    #[arg(long, default_value_t = 20)]
    pub limit: usize,
    /// Runs fetched per API call (1-200), as kubectl's --chunk-size.
    #[arg(long, default_value_t = 100, value_parser = clap::value_parser!(u32).range(1..=200))]
    pub chunk_size: u32,
    /// Output format.
    #[arg(short = 'o', long, value_enum, default_value_t = OutputFormat::Table)]
    pub output: OutputFormat,
}

/// Flags of `run`.
#[derive(Debug, Clone, Args)]
pub struct RunArgs {
    /// The QlikAutomation.
    pub name: String,
    /// The run's inputs as JSON, or @FILE to read them from a file (@- for stdin).
    /// Default: the object's spec.runInputs.
    #[arg(long, value_name = "JSON|@FILE")]
    pub inputs: Option<String>,
    /// Follow the run until it ends.
    #[arg(long)]
    pub wait: bool,
    /// With --wait: how long to wait (e.g. 90s, 10m, 1h).
    #[arg(long, default_value = "30m", value_parser = duration::parse, requires = "wait")]
    pub timeout: Duration,
    /// Output format: table prints progress lines; json and yaml print the run (the final
    /// one with --wait) and send progress to stderr.
    #[arg(short = 'o', long, value_enum, default_value_t = OutputFormat::Table)]
    pub output: OutputFormat,
}

/// Flags of `logs`.
#[derive(Debug, Clone, Args)]
pub struct LogsArgs {
    /// The QlikAutomation.
    pub name: String,
    /// The run (default: the newest run).
    pub run_id: Option<String>,
    /// Output format: table prints readable lines, json/yaml the raw export.
    #[arg(short = 'o', long, value_enum, default_value_t = OutputFormat::Table)]
    pub output: OutputFormat,
    /// Print the run's debug log (`runs/{id}/debug`, workflows connections only) instead of
    /// its exported log.
    #[arg(long)]
    pub debug: bool,
}

/// Flags of `retry`.
#[derive(Debug, Clone, Args)]
pub struct RetryArgs {
    /// The QlikAutomation.
    pub name: String,
    /// The run to retry.
    pub run_id: String,
}

/// Flags of `stop`.
#[derive(Debug, Clone, Args)]
pub struct StopArgs {
    /// The QlikAutomation.
    pub name: String,
    /// The run to stop.
    pub run_id: String,
    /// Wait until the run has stopped.
    #[arg(long)]
    pub wait: bool,
    /// With --wait: how long to wait.
    #[arg(long, default_value = "2m", value_parser = duration::parse, requires = "wait")]
    pub timeout: Duration,
}

/// Flags of `status`.
#[derive(Debug, Clone, Args)]
pub struct StatusArgs {
    /// The QlikAutomation.
    pub name: String,
    /// Output format.
    #[arg(short = 'o', long, value_enum, default_value_t = OutputFormat::Table)]
    pub output: OutputFormat,
}

/// Flags of `reconcile`.
#[derive(Debug, Clone, Args)]
pub struct ReconcileArgs {
    /// The QlikAutomation.
    pub name: String,
    /// How long to wait for the operator.
    #[arg(long, default_value = "2m", value_parser = duration::parse)]
    pub timeout: Duration,
}

/// Flags of `export`.
#[derive(Debug, Clone, Args)]
pub struct ExportArgs {
    /// The Secret (in the namespace) with the connection (tenantUrl and an API key or OAuth
    /// client); also the connection every manifest names.
    #[arg(long, value_name = "SECRET")]
    pub connection: String,
    /// Where to write the kustomize directory (created when missing).
    #[arg(long, value_name = "DIR")]
    pub output_dir: PathBuf,
    /// Only automations matching this filter of the Automations API (SCIM syntax, e.g.
    /// `name eq "Nightly reload"` or `runMode eq "scheduled"`).
    #[arg(long, value_name = "SCIM")]
    pub filter: Option<String>,
    /// Only automations in this shared space (workflows connections only).
    #[arg(long, value_name = "ID")]
    pub space: Option<String>,
    /// Write `managementPolicy: Observe`: the operator mirrors the automations and never
    /// writes to the tenant.
    #[arg(long)]
    pub observe: bool,
    /// The deletionPolicy of every manifest: Orphan (deleting the object leaves the remote)
    /// or Delete.
    #[arg(long, value_enum, default_value_t = DeletionPolicyArg::Orphan, ignore_case = true)]
    pub deletion_policy: DeletionPolicyArg,
    /// Write each automation's current owner as `ownerId` (moving it back needs a tenant
    /// admin's key).
    #[arg(long)]
    pub include_owner: bool,
}

/// `--deletion-policy`, spelled as in the spec.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum DeletionPolicyArg {
    /// Deleting the object deletes the remote automation.
    #[value(name = "Delete")]
    Delete,
    /// Deleting the object leaves the remote automation.
    #[value(name = "Orphan")]
    Orphan,
}

impl From<DeletionPolicyArg> for DeletionPolicy {
    fn from(p: DeletionPolicyArg) -> DeletionPolicy {
        match p {
            DeletionPolicyArg::Delete => DeletionPolicy::Delete,
            DeletionPolicyArg::Orphan => DeletionPolicy::Orphan,
        }
    }
}

/// Flags of `diff`.
#[derive(Debug, Clone, Args)]
pub struct DiffArgs {
    /// A manifest file (several YAML documents allowed; `-` for stdin).
    #[arg(
        short = 'f',
        long = "filename",
        value_name = "FILE",
        required_unless_present = "kustomize",
        conflicts_with = "kustomize"
    )]
    pub filename: Option<PathBuf>,
    /// A kustomize directory, built with `kubectl kustomize DIR`.
    #[arg(short = 'k', long = "kustomize", value_name = "DIR")]
    pub kustomize: Option<PathBuf>,
    /// Compare with the tenant of this Secret (in each object's namespace) instead of the
    /// one the manifests name.
    #[arg(long, value_name = "SECRET")]
    pub connection: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn the_command_line_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn global_flags_go_anywhere() {
        let cli = Cli::try_parse_from([
            "kubectl-qlik",
            "runs",
            "nightly",
            "-n",
            "team-a",
            "--limit",
            "5",
            "-o",
            "json",
        ])
        .unwrap();
        assert_eq!(cli.global.namespace.as_deref(), Some("team-a"));
        match cli.command {
            Command::Runs(a) => {
                assert_eq!((a.name.as_str(), a.limit), ("nightly", 5));
                assert_eq!(a.output, OutputFormat::Json);
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn export_and_diff_parse_their_flags() {
        let cli = Cli::try_parse_from([
            "kubectl-qlik",
            "export",
            "--connection",
            "qlik",
            "--output-dir",
            "out",
            "--deletion-policy",
            "Delete",
            "--observe",
        ])
        .unwrap();
        match cli.command {
            Command::Export(a) => {
                assert_eq!(a.deletion_policy, DeletionPolicyArg::Delete);
                assert!(a.observe && !a.include_owner && a.filter.is_none());
            }
            other => panic!("{other:?}"),
        }
        let cli = Cli::try_parse_from([
            "kubectl-qlik",
            "export",
            "--connection",
            "q",
            "--output-dir",
            "o",
        ])
        .unwrap();
        match cli.command {
            Command::Export(a) => assert_eq!(a.deletion_policy, DeletionPolicyArg::Orphan),
            other => panic!("{other:?}"),
        }
        assert!(Cli::try_parse_from(["kubectl-qlik", "export", "--output-dir", "o"]).is_err());
        assert!(Cli::try_parse_from(["kubectl-qlik", "diff"]).is_err());
        assert!(Cli::try_parse_from(["kubectl-qlik", "diff", "-f", "a", "-k", "b"]).is_err());
        let cli = Cli::try_parse_from(["kubectl-qlik", "diff", "-k", "dir", "-n", "x"]).unwrap();
        match cli.command {
            Command::Diff(a) => assert_eq!(a.kustomize, Some(PathBuf::from("dir"))),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn timeout_needs_wait_and_parses_durations() {
        assert!(Cli::try_parse_from(["kubectl-qlik", "run", "x", "--timeout", "5m"]).is_err());
        let cli = Cli::try_parse_from(["kubectl-qlik", "run", "x", "--wait", "--timeout", "90s"])
            .unwrap();
        match cli.command {
            Command::Run(a) => assert_eq!(a.timeout, Duration::from_secs(90)),
            other => panic!("{other:?}"),
        }
    }
}
