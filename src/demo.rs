//! `qlik-automations-operator demo`: the whole product on one machine, in one command.
//!
//! It starts the local control plane (`tests/control-plane/up.sh`: a real kube-apiserver and
//! etcd, built from source on first use), an in-process emulator of the Automations API with
//! a fresh random admin key, installs the CRDs, runs the operator in-process, applies
//! `examples/` (its Secret pointed at the emulator), waits until every object is Ready and
//! prints `kubectl get qlik -A -o wide`. Then it keeps running until Ctrl-C, or exits at once
//! with `--exit-after-ready`; either way the control plane is torn down, and a detached
//! watchdog tears it down too if this process is killed.

use std::{
    path::{Path, PathBuf},
    process::Stdio,
};

use anyhow::{Context as _, bail};
use clap::Parser;
use tokio::{io::AsyncWriteExt, process::Command};

use crate::{
    controller::{self, RunArgs},
    crd,
    emulator::{ApiKey, EmulatorConfig, RunningEmulator},
};

/// Flags of `qlik-automations-operator demo`.
#[derive(Debug, Clone, clap::Args)]
pub struct DemoArgs {
    /// Exit, tearing everything down, right after printing the table (instead of running
    /// until Ctrl-C).
    #[arg(long)]
    pub exit_after_ready: bool,
    /// State directory of the local control plane. It must not exist or be empty: it is
    /// deleted on exit. Default: a new directory under the system temp dir.
    #[arg(long)]
    pub dir: Option<PathBuf>,
    /// The repository checkout with `tests/control-plane/` and `examples/`. Default: the one
    /// this binary was built from, else the current directory or one of its parents.
    #[arg(long)]
    pub repo: Option<PathBuf>,
    /// Namespace of the example objects.
    #[arg(long, default_value = "default")]
    pub namespace: String,
    /// How long to wait for every object to become Ready, in seconds.
    #[arg(long, default_value_t = 120)]
    pub ready_timeout_seconds: u64,
}

/// The user id the demo's admin key belongs to.
pub const DEMO_USER: &str = "demo-admin";

/// Runs the demo; returns once it is over and the control plane is gone.
pub async fn run(args: DemoArgs) -> anyhow::Result<()> {
    let repo = find_repo(args.repo.as_deref())?;
    let dir = state_dir(args.dir.as_deref())?;
    let kubeconfig = dir.join("kubeconfig");
    // The in-process operator builds its client with `kube::Client::try_default`, which reads
    // KUBECONFIG. SAFETY: set before this command starts anything that reads the environment
    // (no emulator, client or operator exists yet; the runtime's workers are idle).
    unsafe { std::env::set_var("KUBECONFIG", &kubeconfig) };
    let cluster = LocalCluster {
        scripts: repo.join("tests").join("control-plane"),
        dir,
    };
    cluster.spawn_watchdog()?;
    // The operator gets a runtime of its own, so that stopping it stops every task it spawned.
    let operator = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name("operator")
        .enable_all()
        .build()
        .context("cannot start the operator's runtime")?;

    let outcome = tokio::select! {
        outcome = demo(&args, &repo, &cluster, operator.handle()) => outcome,
        () = shutdown_signal() => {
            say("Interrupted");
            Ok(())
        }
    };
    say("Stopping the operator and the emulator, tearing down the control plane");
    operator.shutdown_background();
    let down = cluster.down();
    match (outcome, down) {
        (Err(e), _) => Err(e),
        (Ok(()), Err(e)) => Err(e),
        (Ok(()), Ok(())) => {
            say("Done: nothing is left running");
            Ok(())
        }
    }
}

/// Every step of the demo, until Ctrl-C (or until the table is printed with
/// `--exit-after-ready`).
async fn demo(
    args: &DemoArgs,
    repo: &Path,
    cluster: &LocalCluster,
    operator: &tokio::runtime::Handle,
) -> anyhow::Result<()> {
    say(&format!(
        "Starting a local Kubernetes control plane (kube-apiserver + etcd) in {}",
        cluster.dir.display()
    ));
    println!(
        "    (the first run builds kube-apiserver, etcd, kubectl and helm from source: several minutes)"
    );
    cluster.up().await?;
    let kubectl = cluster.kubectl_path()?;
    let kubectl = |args: &[&str]| {
        let mut cmd = Command::new(&kubectl);
        cmd.env("KUBECONFIG", cluster.dir.join("kubeconfig"))
            .args(args)
            .stdin(Stdio::null());
        cmd
    };

    say("Starting the Qlik Automations API emulator (a local tenant)");
    let key = format!("demo-{:032x}", rand::random::<u128>());
    let emulator = RunningEmulator::start(EmulatorConfig {
        keys: vec![ApiKey::admin(key.clone(), DEMO_USER)],
        ..EmulatorConfig::default()
    })
    .await
    .context("cannot start the emulator")?;
    println!(
        "    {} (an admin key generated for this run, user {DEMO_USER})",
        emulator.base_url()
    );

    say("Installing the CRDs (qlik-automations-operator crds | kubectl apply --server-side -f -)");
    let mut apply = kubectl(&["apply", "--server-side", "-f", "-"]);
    run_with_input(&mut apply, &crd::crds_yaml()?).await?;
    run_checked(&mut kubectl(&[
        "wait",
        "--for=condition=Established",
        "crd/qlikautomations.automations.qlik.dev",
        "crd/qlikautomationsettings.automations.qlik.dev",
        "--timeout=60s",
    ]))
    .await?;

    say("Starting the operator (in this process)");
    let run_args = OperatorFlags::try_parse_from(["run", "--listen", "127.0.0.1:0"])
        .context("operator flags")?
        .run;
    let running = operator.spawn(controller::run(run_args));

    let ns = args.namespace.as_str();
    say(&format!(
        "Creating the connection Secret: examples/secret.yaml with the emulator's URL and key, in namespace {ns}"
    ));
    let secret = example_secret(repo, &emulator.base_url(), &key)?;
    run_with_input(&mut kubectl(&["apply", "-n", ns, "-f", "-"]), &secret).await?;
    say(
        "Applying examples/automation.yaml, examples/settings.yaml and examples/workspace-from-configmap",
    );
    let examples = repo.join("examples");
    let path = |p: &str| examples.join(p).display().to_string();
    run_checked(&mut kubectl(&[
        "apply",
        "-n",
        ns,
        "-f",
        &path("automation.yaml"),
        "-f",
        &path("settings.yaml"),
    ]))
    .await?;
    run_checked(&mut kubectl(&[
        "apply",
        "-n",
        ns,
        "-k",
        &path("workspace-from-configmap"),
    ]))
    .await?;

    say("Waiting until every object is Ready (kubectl wait --for=condition=Ready qlik --all)");
    let timeout = format!("--timeout={}s", args.ready_timeout_seconds);
    let waited = run_checked(&mut kubectl(&[
        "wait",
        "-n",
        ns,
        "--for=condition=Ready",
        "qlik",
        "--all",
        &timeout,
    ]))
    .await;
    if let Err(e) = waited {
        if running.is_finished() {
            match running.await {
                Ok(Err(op)) => bail!("the operator stopped: {op:#}"),
                _ => bail!("the operator stopped"),
            }
        }
        return Err(e);
    }

    say("kubectl get qlik -A -o wide");
    run_checked(&mut kubectl(&["get", "qlik", "-A", "-o", "wide"])).await?;

    if args.exit_after_ready {
        return Ok(());
    }
    say("Everything is Ready. In another shell, try:");
    println!(
        "      export KUBECONFIG={}",
        cluster.dir.join("kubeconfig").display()
    );
    let kubectl_path = cluster.kubectl_path()?;
    let k = kubectl_path.display();
    println!(
        "      {k} annotate -n {ns} qlikautomation nightly-reload automations.qlik.dev/run-requested-at=first"
    );
    println!("      {k} get qlik -A -o wide");
    println!(
        "      curl {}/_emulator/automations     # what the tenant holds",
        emulator.base_url()
    );
    say("Press Ctrl-C to stop: the operator, the emulator and the control plane go away.");
    // The operator ends by itself only on an error (or on the same Ctrl-C that ends us).
    match running.await {
        Ok(Ok(())) => Ok(()),
        Ok(Err(e)) => Err(e.context("the operator stopped")),
        Err(e) => bail!("the operator task failed: {e}"),
    }
}

/// The operator's `run` flags, parsed as the command line would (so defaults and `QAO_*`
/// environment variables apply).
#[derive(Debug, Parser)]
struct OperatorFlags {
    #[command(flatten)]
    run: RunArgs,
}

/// A progress line.
fn say(message: &str) {
    println!("==> {message}");
}

/// Resolves on Ctrl-C (SIGINT) or SIGTERM.
async fn shutdown_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => {}
                    _ = term.recv() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

/// The checkout with the control-plane scripts and the examples.
fn find_repo(explicit: Option<&Path>) -> anyhow::Result<PathBuf> {
    let is_repo = |p: &Path| {
        p.join("tests/control-plane/up.sh").is_file()
            && p.join("examples/automation.yaml").is_file()
    };
    if let Some(p) = explicit {
        if is_repo(p) {
            return Ok(p.to_path_buf());
        }
        bail!(
            "{} has no tests/control-plane/up.sh and examples/",
            p.display()
        );
    }
    let built_from = Path::new(env!("CARGO_MANIFEST_DIR"));
    if is_repo(built_from) {
        return Ok(built_from.to_path_buf());
    }
    let cwd = std::env::current_dir().context("cannot read the current directory")?;
    cwd.ancestors()
        .find(|p| is_repo(p))
        .map(Path::to_path_buf)
        .context("cannot find the qlik-automations-operator checkout (tests/control-plane/ and examples/): run the demo from inside it, or pass --repo")
}

/// A new, empty state directory (`explicit` when given).
fn state_dir(explicit: Option<&Path>) -> anyhow::Result<PathBuf> {
    let dir = match explicit {
        Some(p) => {
            if p.exists() {
                let empty = std::fs::read_dir(p)
                    .with_context(|| format!("cannot read {}", p.display()))?
                    .next()
                    .is_none();
                if !empty {
                    bail!(
                        "{} is not empty; the demo deletes its directory on exit, so give it a new one",
                        p.display()
                    );
                }
            }
            p.to_path_buf()
        }
        None => {
            let nanos = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.subsec_nanos())
                .unwrap_or(0);
            std::env::temp_dir().join(format!("qao-demo-{}-{nanos:x}", std::process::id()))
        }
    };
    std::fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
    // Absolute, because the scripts and the watchdog match processes by it.
    dir.canonicalize()
        .with_context(|| format!("cannot resolve {}", dir.display()))
}

/// `examples/secret.yaml` with the emulator's URL and key in place of the placeholders.
fn example_secret(repo: &Path, tenant_url: &str, api_key: &str) -> anyhow::Result<String> {
    let path = repo.join("examples").join("secret.yaml");
    let text = std::fs::read_to_string(&path)
        .with_context(|| format!("cannot read {}", path.display()))?;
    let mut secret: serde_json::Value =
        serde_yaml::from_str(&text).with_context(|| format!("{} is not YAML", path.display()))?;
    let data = secret
        .get_mut("stringData")
        .and_then(|d| d.as_object_mut())
        .with_context(|| format!("{} has no stringData", path.display()))?;
    data.insert("tenantUrl".into(), tenant_url.into());
    data.insert("apiKey".into(), api_key.into());
    Ok(secret.to_string())
}

/// Runs `cmd` with its output shown; fails when it fails.
async fn run_checked(cmd: &mut Command) -> anyhow::Result<()> {
    let status = cmd
        .stdout(Stdio::inherit())
        .stderr(Stdio::inherit())
        .status()
        .await
        .with_context(|| format!("cannot run {cmd:?}"))?;
    if !status.success() {
        bail!("{:?} failed ({status})", cmd.as_std().get_program());
    }
    Ok(())
}

/// Runs `cmd` with `input` on its stdin and its output shown; fails when it fails.
async fn run_with_input(cmd: &mut Command, input: &str) -> anyhow::Result<()> {
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::inherit())
        .stderr(Stdio::inherit())
        .spawn()
        .with_context(|| format!("cannot run {cmd:?}"))?;
    if let Some(mut stdin) = child.stdin.take() {
        stdin.write_all(input.as_bytes()).await?;
    }
    let status = child.wait().await?;
    if !status.success() {
        bail!("{:?} failed ({status})", cmd.as_std().get_program());
    }
    Ok(())
}

/// The control plane `up.sh` starts in `dir`.
struct LocalCluster {
    scripts: PathBuf,
    dir: PathBuf,
}

impl LocalCluster {
    /// Starts etcd and kube-apiserver (building them first when needed), streaming progress.
    async fn up(&self) -> anyhow::Result<()> {
        let up = self.scripts.join("up.sh");
        let status = Command::new(&up)
            .arg(&self.dir)
            .stdin(Stdio::null())
            .stdout(Stdio::inherit())
            .stderr(Stdio::inherit())
            .status()
            .await
            .with_context(|| format!("cannot run {}", up.display()))?;
        if !status.success() {
            bail!("{} {} failed ({status})", up.display(), self.dir.display());
        }
        Ok(())
    }

    /// The kubectl `up.sh` built, from the state dir's env file.
    fn kubectl_path(&self) -> anyhow::Result<PathBuf> {
        let env = self.dir.join("env");
        let text = std::fs::read_to_string(&env)
            .with_context(|| format!("cannot read {}", env.display()))?;
        text.lines()
            .filter_map(|l| l.strip_prefix("export QAO_KUBECTL="))
            .map(|v| PathBuf::from(v.trim_matches('\'')))
            .next()
            .with_context(|| format!("{} names no kubectl", env.display()))
    }

    /// A detached `watchdog.sh` that runs `down.sh` once this process is gone, however it
    /// ends.
    fn spawn_watchdog(&self) -> anyhow::Result<()> {
        let status = std::process::Command::new("setsid")
            .arg("-f")
            .arg(self.scripts.join("watchdog.sh"))
            .arg(std::process::id().to_string())
            .arg(&self.dir)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .context("cannot start the control plane's watchdog (setsid)")?;
        if !status.success() {
            bail!("the control plane's watchdog did not start ({status})");
        }
        Ok(())
    }

    /// Stops exactly the processes `up.sh` recorded and removes the state dir.
    fn down(&self) -> anyhow::Result<()> {
        let down = self.scripts.join("down.sh");
        let status = std::process::Command::new(&down)
            .arg(&self.dir)
            .stdin(Stdio::null())
            .status()
            .with_context(|| format!("cannot run {}", down.display()))?;
        if !status.success() {
            bail!(
                "{} {} failed ({status})",
                down.display(),
                self.dir.display()
            );
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_example_secret_points_at_the_emulator() {
        let repo = Path::new(env!("CARGO_MANIFEST_DIR"));
        let secret: serde_json::Value =
            serde_json::from_str(&example_secret(repo, "http://127.0.0.1:1", "k").unwrap())
                .unwrap();
        assert_eq!(secret["metadata"]["name"], "qlik-tenant");
        assert_eq!(secret["stringData"]["tenantUrl"], "http://127.0.0.1:1");
        assert_eq!(secret["stringData"]["apiKey"], "k");
    }

    #[test]
    fn a_state_dir_with_content_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("precious"), "x").unwrap();
        assert!(state_dir(Some(dir.path())).is_err());
        let fresh = dir.path().join("new");
        assert_eq!(
            state_dir(Some(&fresh)).unwrap(),
            fresh.canonicalize().unwrap()
        );
    }

    #[test]
    fn the_operator_flags_parse() {
        let flags = OperatorFlags::try_parse_from(["run", "--listen", "127.0.0.1:0"]).unwrap();
        assert_eq!(flags.run.listen.port(), 0);
    }
}
