//! Test support for end-to-end tests of the operator: the CRDs installed on a real control
//! plane, the operator binary running as a separate process (so a test can SIGKILL it, and
//! ask its `/healthz` and `/readyz`), an in-process emulator with known keys, and connection
//! Secrets.
//!
//! Part of the `support` module (`tests/support/mod.rs`): `support::operator`.

use std::{
    fs::File,
    future::Future,
    net::SocketAddr,
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    sync::OnceLock,
    time::Duration,
};

use k8s_openapi::{
    ByteString,
    api::core::v1::{Event, Secret},
    apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition,
};
use kube::{
    Api, Client,
    api::{ObjectMeta, Patch, PatchParams, PostParams},
};
use qlik_automations_operator::{
    crd::{ConditionStatus, QlikAutomation},
    emulator::{ApiKey, EmulatorConfig, RunningEmulator},
};

use super::control_plane::{ControlPlane, unique_name};

/// The emulator's admin key in these tests.
pub const ADMIN_KEY: &str = "e2e-admin-key-5f3a9c";
/// A plain user's key.
pub const USER_KEY: &str = "e2e-user-key-81b2d4";
/// The plain user's id.
pub const USER_ID: &str = "e2e-user";
/// The admin's id.
pub const ADMIN_ID: &str = "e2e-admin";
/// The operator's log filter in these tests.
pub const DEBUG_LOG: &str = "info,qlik_automations_operator=debug,kube=warn";

/// Installs both CRDs on the shared control plane once per test binary.
pub async fn ensure_crds(client: &Client) {
    static DONE: OnceLock<()> = OnceLock::new();
    if DONE.get().is_some() {
        return;
    }
    install_crds(client).await;
    let _ = DONE.set(());
}

/// Installs (or updates) both CRDs through `client` and waits until they are established.
pub async fn install_crds(client: &Client) {
    let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
    for crd in qlik_automations_operator::crd::crds() {
        let name = crd.metadata.name.clone().unwrap();
        crds.patch(
            &name,
            &PatchParams::apply("e2e-tests").force(),
            &Patch::Apply(&crd),
        )
        .await
        .unwrap_or_else(|e| panic!("the apiserver refused CRD {name}: {e}"));
        wait_for("CRD established", Duration::from_secs(30), || {
            let crds = crds.clone();
            let name = name.clone();
            async move {
                let c = crds.get(&name).await.ok()?;
                c.status?
                    .conditions?
                    .iter()
                    .any(|c| c.type_ == "Established" && c.status == "True")
                    .then_some(())
            }
        })
        .await;
    }
}

/// How long the waits below give the operator.
pub const WAIT_OPERATOR: Duration = Duration::from_secs(120);

/// The `Ready` condition's status, reason and message.
pub fn ready_status(a: &QlikAutomation) -> Option<(ConditionStatus, String, String)> {
    let c = a
        .status
        .as_ref()?
        .conditions
        .iter()
        .find(|c| c.type_ == "Ready")?;
    Some((c.status, c.reason.clone(), c.message.clone()))
}

/// Waits until `name` is `Ready=True` for its current generation.
pub async fn wait_ready(api: &Api<QlikAutomation>, name: &str) -> QlikAutomation {
    wait_for(&format!("{name} Ready=True"), WAIT_OPERATOR, || async {
        let a = api.get(name).await.ok()?;
        let ready = ready_status(&a)?;
        (ready.0 == ConditionStatus::True
            && a.status.as_ref()?.observed_generation == a.metadata.generation)
            .then_some(a)
    })
    .await
}

/// Waits until `name` is `Ready=False` with `reason` for its current generation.
pub async fn wait_reason(api: &Api<QlikAutomation>, name: &str, reason: &str) -> QlikAutomation {
    wait_for(
        &format!("{name} Ready reason {reason}"),
        WAIT_OPERATOR,
        || async {
            let a = api.get(name).await.ok()?;
            let (status, r, _) = ready_status(&a)?;
            (status == ConditionStatus::False
                && r == reason
                && a.status.as_ref()?.observed_generation == a.metadata.generation)
                .then_some(a)
        },
    )
    .await
}

/// Polls `check` until it returns `Some`, or panics after `timeout` naming `what`.
pub async fn wait_for<T, F, Fut>(what: &str, timeout: Duration, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        if let Some(v) = check().await {
            return v;
        }
        if tokio::time::Instant::now() > deadline {
            panic!("timed out after {timeout:?} waiting for {what}");
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// An emulator with an admin and a plain user and fast runs.
pub async fn emulator(tweak: impl FnOnce(&mut EmulatorConfig)) -> RunningEmulator {
    let mut config = EmulatorConfig {
        listen: "127.0.0.1:0".parse().unwrap(),
        keys: vec![
            ApiKey {
                key: ADMIN_KEY.into(),
                user_id: ADMIN_ID.into(),
                admin: true,
            },
            ApiKey {
                key: USER_KEY.into(),
                user_id: USER_ID.into(),
                admin: false,
            },
        ],
        run_duration: Duration::from_millis(1500),
        ..EmulatorConfig::default()
    };
    tweak(&mut config);
    RunningEmulator::start(config).await.unwrap()
}

/// A `QlikAutomation` manifest named `name` using the Secret `qlik`, with a description, a
/// schedule and a workspace, plus `extra_spec` (indented two spaces) under `spec`.
pub fn automation_yaml(name: &str, extra_spec: &str) -> String {
    format!(
        r#"
apiVersion: automations.qlik.dev/v1alpha1
kind: QlikAutomation
metadata:
  name: {name}
spec:
  connection:
    secretRef:
      name: qlik
  description: "managed by e2e"
  schedules:
    - startAt: "2020-01-01 00:00:00"
      stopAt: "2099-12-31 00:00:00"
      interval: 3600
      timezone: Europe/Stockholm
  workspace:
    blocks:
      - id: start
        type: StartBlock
        runMode: manual
{extra_spec}
"#
    )
}

/// The remote automations called `name`, in every owner's space.
pub fn remotes_named(emu: &RunningEmulator, name: &str) -> Vec<serde_json::Value> {
    emu.automations()
        .into_iter()
        .filter(|a| a["name"] == name)
        .collect()
}

/// A namespace with a connection Secret `qlik` for `key`, an emulator, and a running
/// operator started with `flags` (see [`Operator::start`]).
pub async fn setup(
    prefix: &str,
    key: &str,
    flags: &[&str],
) -> (TestNamespace, RunningEmulator, Operator) {
    let ns = TestNamespace::new(prefix).await;
    let emu = emulator(|_| {}).await;
    ns.connection_secret("qlik", &emu.base_url(), key).await;
    let op = Operator::start(&ns.name, flags);
    (ns, emu, op)
}

/// The (reason, message) of every Event about the object `name`.
pub async fn events_for(ns: &TestNamespace, name: &str) -> Vec<(String, String)> {
    ns.events()
        .await
        .into_iter()
        .filter(|e| e.involved_object.name.as_deref() == Some(name))
        .map(|e| (e.reason.unwrap_or_default(), e.message.unwrap_or_default()))
        .collect()
}

/// A client of the emulator's tenant admin, acting as someone in the Qlik UI would.
pub fn admin_client(emu: &RunningEmulator) -> qlik_automations_operator::qlik::QlikClient {
    use qlik_automations_operator::qlik;
    qlik::QlikClient::new(qlik::ClientConfig::new(
        emu.base_url(),
        qlik::ApiKey::new(ADMIN_KEY),
    ))
    .unwrap()
}

/// A test's own namespace on the shared control plane, with the CRDs installed.
pub struct TestNamespace {
    /// The namespace's name.
    pub name: String,
    /// An admin client.
    pub client: Client,
}

impl TestNamespace {
    /// Creates a fresh namespace (namespaces never finish deleting on this control plane, so
    /// every test gets a new one).
    pub async fn new(prefix: &str) -> TestNamespace {
        qlik_automations_operator::install_crypto_provider();
        let cp = ControlPlane::shared();
        let client = cp.kube_client().await;
        ensure_crds(&client).await;
        let name = unique_name(prefix);
        cp.create_namespace(&name).await.unwrap();
        TestNamespace { name, client }
    }

    /// The typed API of `K` in this namespace.
    pub fn api<K>(&self) -> Api<K>
    where
        K: kube::Resource<Scope = kube::core::NamespaceResourceScope, DynamicType = ()>,
    {
        Api::namespaced(self.client.clone(), &self.name)
    }

    /// Creates the v1 connection Secret `name` pointing at `tenant_url` with `api_key`.
    pub async fn connection_secret(&self, name: &str, tenant_url: &str, api_key: &str) {
        connection_secret(&self.client, &self.name, name, tenant_url, api_key).await;
    }

    /// Creates the Secret `name` holding `pairs` (e.g. an OAuth workflows connection).
    pub async fn secret(&self, name: &str, pairs: &[(&str, &str)]) {
        secret_with(&self.client, &self.name, name, pairs).await;
    }

    /// Every Event in this namespace.
    pub async fn events(&self) -> Vec<Event> {
        self.api::<Event>()
            .list(&Default::default())
            .await
            .unwrap()
            .items
    }

    /// Creates an object from YAML (the namespace is filled in).
    pub async fn apply_yaml<K>(&self, yaml: &str) -> K
    where
        K: kube::Resource<Scope = kube::core::NamespaceResourceScope, DynamicType = ()>
            + Clone
            + serde::de::DeserializeOwned
            + serde::Serialize
            + std::fmt::Debug,
    {
        let obj: K = serde_yaml::from_str(yaml).unwrap();
        self.api::<K>()
            .create(&PostParams::default(), &obj)
            .await
            .unwrap_or_else(|e| panic!("create refused: {e}"))
    }
}

/// Creates the connection Secret `name` in `namespace` through `client` (any control plane,
/// a private one too), pointing at `tenant_url` with `api_key`, on the v1 API: the scenarios
/// written for v1 keep proving that a v1 connection does everything it did.
pub async fn connection_secret(
    client: &Client,
    namespace: &str,
    name: &str,
    tenant_url: &str,
    api_key: &str,
) {
    secret_with(
        client,
        namespace,
        name,
        &[
            ("tenantUrl", tenant_url),
            ("apiKey", api_key),
            ("api", "v1"),
        ],
    )
    .await;
}

/// Creates the Secret `name` in `namespace` holding `pairs` (any connection format).
pub async fn secret_with(client: &Client, namespace: &str, name: &str, pairs: &[(&str, &str)]) {
    let secret = Secret {
        metadata: ObjectMeta {
            name: Some(name.into()),
            ..ObjectMeta::default()
        },
        data: Some(
            pairs
                .iter()
                .map(|(k, v)| (k.to_string(), ByteString(v.as_bytes().to_vec())))
                .collect(),
        ),
        ..Secret::default()
    };
    Api::<Secret>::namespaced(client.clone(), namespace)
        .create(&PostParams::default(), &secret)
        .await
        .unwrap();
}

/// A free local address (bound and released; the process given it binds it right after).
pub fn free_addr() -> SocketAddr {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap()
}

/// The arguments of `run` as these tests start it: watching `namespaces` (comma-separated),
/// serving `/metrics`, `/healthz` and `/readyz` on `listen`, with a 3 s resync, a 1 s view
/// age and no background refreshes (so request counts are the reconciles' own) unless
/// `extra` sets `--resync-seconds`, `--view-max-age-seconds` or `--read-budget-share`, then
/// `extra`.
pub fn run_args(namespaces: &str, listen: &str, extra: &[&str]) -> Vec<String> {
    let mut args: Vec<String> = ["run", "--namespaces", namespaces, "--listen", listen]
        .iter()
        .map(|s| s.to_string())
        .collect();
    for (flag, default) in [
        ("--resync-seconds", "3"),
        ("--view-max-age-seconds", "1"),
        ("--read-budget-share", "0"),
    ] {
        if !extra.contains(&flag) {
            args.extend([flag.to_string(), default.to_string()]);
        }
    }
    args.extend(extra.iter().map(|s| s.to_string()));
    args
}

/// The operator binary as a child process with a kubeconfig, arguments and environment of
/// the test's choosing — for example authenticated as a ServiceAccount, with the flags a Helm
/// chart renders, or with a fixed health address (`--listen` with a [`free_addr`]), which
/// [`OperatorProcess::healthz`], [`OperatorProcess::readyz`] and
/// [`OperatorProcess::assert_healthy`] ask. A test can SIGKILL it and start it again; it is
/// killed when dropped. [`Operator`] is the common case on the shared control plane.
pub struct OperatorProcess {
    child: Option<Child>,
    log: PathBuf,
    kubeconfig: PathBuf,
    args: Vec<String>,
    env: Vec<(String, String)>,
    starts: u32,
}

impl OperatorProcess {
    /// Starts `qlik-automations-operator` with exactly `args` (the subcommand first, e.g.
    /// `run`), `KUBECONFIG=kubeconfig`, and `env` on top of this process's environment. Its
    /// output goes to `<temp>/qao-e2e-logs/<log_name>.log`, replacing an older log.
    pub fn start(
        log_name: &str,
        kubeconfig: &Path,
        args: &[String],
        env: &[(String, String)],
    ) -> OperatorProcess {
        let dir = std::env::temp_dir().join("qao-e2e-logs");
        std::fs::create_dir_all(&dir).unwrap();
        let log = dir.join(format!("{log_name}.log"));
        File::create(&log).unwrap();
        let mut process = OperatorProcess {
            child: None,
            log,
            kubeconfig: kubeconfig.to_owned(),
            args: args.to_vec(),
            env: env.to_vec(),
            starts: 0,
        };
        process.restart();
        process
    }

    /// Starts the process again (after [`OperatorProcess::kill`], or killing it first),
    /// appending to the same log.
    pub fn restart(&mut self) {
        self.kill();
        let out = File::options()
            .create(true)
            .append(true)
            .open(&self.log)
            .unwrap();
        let err = out.try_clone().unwrap();
        let child = Command::new(env!("CARGO_BIN_EXE_qlik-automations-operator"))
            .args(&self.args)
            .env("KUBECONFIG", &self.kubeconfig)
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .spawn()
            .unwrap();
        self.child = Some(child);
        self.starts += 1;
    }

    /// How many processes were started so far (1 + restarts).
    pub fn starts(&self) -> u32 {
        self.starts
    }

    /// The running process's id.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// Whether the process is still running (it exits by itself on a fatal start-up error).
    pub fn is_running(&mut self) -> bool {
        self.child
            .as_mut()
            .is_some_and(|c| matches!(c.try_wait(), Ok(None)))
    }

    /// Everything the process logged so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// The last `lines` lines of the log.
    pub fn log_tail(&self, lines: usize) -> String {
        let log = self.log();
        let all: Vec<&str> = log.lines().collect();
        all[all.len().saturating_sub(lines)..].join("\n")
    }

    /// The `--listen` address it was started with; panics unless that names a fixed port.
    pub fn health_addr(&self) -> SocketAddr {
        self.args
            .iter()
            .position(|a| a == "--listen")
            .and_then(|i| self.args.get(i + 1)?.parse::<SocketAddr>().ok())
            .filter(|addr| addr.port() != 0)
            .expect("started without a fixed --listen address (see free_addr)")
    }

    /// Whether `/healthz` answers `ok`.
    pub async fn healthz(&self) -> bool {
        let url = format!("http://{}/healthz", self.health_addr());
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(3))
            .build()
            .unwrap();
        match client.get(url).send().await {
            Ok(r) => r.status().is_success() && r.text().await.unwrap_or_default() == "ok",
            Err(_) => false,
        }
    }

    /// The HTTP status of `/readyz`, or `None` when nothing answers.
    pub async fn readyz(&self) -> Option<u16> {
        let url = format!("http://{}/readyz", self.health_addr());
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(3))
            .build()
            .unwrap();
        client
            .get(url)
            .send()
            .await
            .ok()
            .map(|r| r.status().as_u16())
    }

    /// Process alive, `/healthz` answering `ok` (within 5 s), no panic in the log.
    pub async fn assert_healthy(&mut self) {
        assert!(
            self.is_running(),
            "the operator process exited:\n{}",
            self.log_tail(40)
        );
        let mut healthy = false;
        for _ in 0..20 {
            if self.healthz().await {
                healthy = true;
                break;
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
        assert!(
            healthy,
            "/healthz on {} did not answer ok:\n{}",
            self.health_addr(),
            self.log_tail(40)
        );
        let log = self.log();
        assert!(
            !log.contains("panicked"),
            "the operator log shows a panic:\n{}",
            log.lines()
                .filter(|l| l.contains("panicked"))
                .take(5)
                .collect::<Vec<_>>()
                .join("\n")
        );
    }

    /// SIGKILLs the process: no graceful shutdown, like a crash or an OOM kill.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// The operator on the shared control plane, watching one namespace, with short resync and
/// view intervals so tests see drift quickly.
pub struct Operator(OperatorProcess);

impl Operator {
    /// Starts the operator restricted to `namespace`, plus `extra` flags; a
    /// `--resync-seconds` or `--view-max-age-seconds` in `extra` replaces the test default.
    pub fn start(namespace: &str, extra: &[&str]) -> Operator {
        Operator(OperatorProcess::start(
            &unique_name(namespace),
            &ControlPlane::shared().kubeconfig_path(),
            &run_args(namespace, "127.0.0.1:0", extra),
            &[("RUST_LOG".to_string(), DEBUG_LOG.to_string())],
        ))
    }

    /// Starts the process again, appending to the same log.
    pub fn restart(&mut self) {
        self.0.restart();
    }

    /// SIGKILLs the process.
    pub fn kill(&mut self) {
        self.0.kill();
    }

    /// Everything the operator logged so far.
    pub fn log(&self) -> String {
        self.0.log()
    }
}

impl Drop for OperatorProcess {
    fn drop(&mut self) {
        self.kill();
    }
}
