//! Test support: a real local Kubernetes control plane (etcd + kube-apiserver
//! built from upstream sources by `tests/control-plane/build.sh`), the way
//! envtest gives Go operators one.
//!
//! Part of the `support` module (`tests/support/mod.rs`): `support::control_plane`.
//!
//! * [`ControlPlane::shared`] starts one control plane per test binary, the first
//!   time a test asks for it; it is torn down when the test process exits (a
//!   detached `watchdog.sh` notices the process is gone and runs `down.sh`, so
//!   this also happens after a panic, an abort or a kill).
//! * [`ControlPlane::start`] starts a private one whose `Drop` runs `down.sh`;
//!   use it for tests that stop and restart the apiserver.
//!
//! There is no kube-controller-manager, scheduler or node: namespace deletion
//! never finalizes (use [`unique_name`] for namespaces), ServiceAccount tokens
//! come only from the TokenRequest API, no `default` ServiceAccount appears in
//! new namespaces by itself ([`ControlPlane::create_namespace`] creates one),
//! and Deployments never get Pods.
//!
//! The first use builds the binaries (many minutes on 2 cores; progress is
//! printed to stderr); later runs start a control plane in a few seconds.
//! State dirs go under the system temp dir, or `$QAO_CP_STATE_ROOT` if set;
//! binaries are cached as `tests/control-plane/build.sh` describes
//! (`$QAO_CONTROL_PLANE_CACHE`).

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicUsize, Ordering};

use k8s_openapi::api::core::v1::{Namespace, ServiceAccount};
use kube::api::{Api, ObjectMeta, PostParams};

/// Directory holding build.sh, up.sh, down.sh, ... and versions.env.
pub fn scripts_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests")
        .join("control-plane")
}

/// Directory holding the one-node cluster's build.sh, up.sh and down.sh.
pub fn node_scripts_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests")
        .join("node")
}

/// Reads `KEY=value` lines of `tests/control-plane/versions.env`.
pub fn pinned_versions() -> HashMap<String, String> {
    let path = scripts_dir().join("versions.env");
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    parse_env_lines(&text)
}

/// The Kubernetes release pinned in versions.env, e.g. `v1.35.8`.
pub fn pinned_k8s_version() -> String {
    pinned_versions()
        .remove("K8S_VERSION")
        .expect("versions.env has no K8S_VERSION")
}

/// A name unique within this test run (`prefix-<pid>-<n>`), valid as a
/// Kubernetes namespace/object name when `prefix` is. Handy because namespaces
/// are never really deleted on this control plane.
pub fn unique_name(prefix: &str) -> String {
    static COUNTER: AtomicUsize = AtomicUsize::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    format!("{prefix}-{}-{n}", std::process::id())
}

/// Parses `KEY=value` and `export KEY='value'` lines; ignores comments.
fn parse_env_lines(text: &str) -> HashMap<String, String> {
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .filter_map(|l| {
            let l = l.strip_prefix("export ").unwrap_or(l);
            let (k, v) = l.split_once('=')?;
            let v = v.trim();
            let v = v
                .strip_prefix('\'')
                .and_then(|v| v.strip_suffix('\''))
                .or_else(|| v.strip_prefix('"').and_then(|v| v.strip_suffix('"')))
                .unwrap_or(v);
            Some((k.trim().to_string(), v.to_string()))
        })
        .collect()
}

fn output_text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// A running etcd + kube-apiserver, described by the state dir `up.sh` filled.
#[derive(Debug)]
pub struct ControlPlane {
    dir: PathBuf,
    bin_dir: PathBuf,
    server: String,
    /// Private control planes are stopped on drop; the shared one by its watchdog.
    owned: bool,
    /// Where build.sh, up.sh and down.sh come from: tests/control-plane, or tests/node for
    /// a control plane with a node ([`ControlPlane::start_node`]).
    scripts: PathBuf,
}

impl ControlPlane {
    /// The control plane shared by all tests of this test binary, started on
    /// first use. Panics (in every test that asks) if it cannot be started.
    pub fn shared() -> &'static ControlPlane {
        static SHARED: OnceLock<Result<ControlPlane, String>> = OnceLock::new();
        match SHARED.get_or_init(|| ControlPlane::launch(false, scripts_dir())) {
            Ok(cp) => cp,
            Err(e) => panic!("the shared control plane could not be started:\n{e}"),
        }
    }

    /// Starts a private control plane; dropping it stops it and removes its
    /// state dir.
    pub fn start() -> Result<ControlPlane, String> {
        ControlPlane::launch(true, scripts_dir())
    }

    /// Starts a private control plane with one Node (containerd, kubelet, kube-proxy,
    /// kube-controller-manager, kube-scheduler: `tests/node/up.sh`), so Deployments get Pods
    /// that run. Dropping it runs `tests/node/down.sh`, which also undoes what the node
    /// changed on the machine. One per machine.
    pub fn start_node() -> Result<ControlPlane, String> {
        ControlPlane::launch(true, node_scripts_dir())
    }

    fn launch(owned: bool, scripts: PathBuf) -> Result<ControlPlane, String> {
        // Build first with stderr passed through, so a cold build (many
        // minutes) shows its progress; an up-to-date build prints one line.
        let build = scripts.join("build.sh");
        let out = Command::new(&build)
            .stdin(Stdio::null())
            .stderr(Stdio::inherit())
            .output()
            .map_err(|e| format!("cannot run {}: {e}", build.display()))?;
        if !out.status.success() {
            return Err(format!("{} failed ({})", build.display(), out.status));
        }

        let dir = new_state_dir()?;
        let up = scripts.join("up.sh");
        let out = Command::new(&up)
            .arg(&dir)
            .stdin(Stdio::null())
            .output()
            .map_err(|e| format!("cannot run {}: {e}", up.display()))?;
        if !out.status.success() {
            let _ = Command::new(scripts.join("down.sh")).arg(&dir).output();
            return Err(format!(
                "{} {} failed ({}):\n{}",
                up.display(),
                dir.display(),
                out.status,
                output_text(&out)
            ));
        }
        let env = read_env_file(&dir)?;
        let get = |k: &str| {
            env.get(k)
                .cloned()
                .ok_or_else(|| format!("{}/env has no {k}", dir.display()))
        };
        let cp = ControlPlane {
            bin_dir: PathBuf::from(get("QAO_CP_BIN")?),
            server: get("QAO_CP_SERVER")?,
            dir,
            owned,
            scripts,
        };
        cp.spawn_watchdog()?;
        Ok(cp)
    }

    /// Runs `watchdog.sh <our pid> DIR DOWN` in its own session: it runs this
    /// control plane's down.sh once this process is gone, however it ended.
    fn spawn_watchdog(&self) -> Result<(), String> {
        let watchdog = scripts_dir().join("watchdog.sh");
        let status = Command::new("setsid")
            .arg("-f")
            .arg(&watchdog)
            .arg(std::process::id().to_string())
            .arg(&self.dir)
            .arg(self.scripts.join("down.sh"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .map_err(|e| format!("cannot start {}: {e}", watchdog.display()))?;
        if status.success() {
            Ok(())
        } else {
            Err(format!("{} failed to start: {status}", watchdog.display()))
        }
    }

    /// State dir (kubeconfig, env, pids, logs, pki/).
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Admin (system:masters) kubeconfig.
    pub fn kubeconfig_path(&self) -> PathBuf {
        self.dir.join("kubeconfig")
    }

    /// CA certificate that signed the apiserver's serving certificate.
    pub fn ca_cert_path(&self) -> PathBuf {
        self.dir.join("pki").join("ca.crt")
    }

    /// Directory holding etcd, kube-apiserver, kubectl and helm.
    pub fn bin_dir(&self) -> &Path {
        &self.bin_dir
    }

    /// kubectl built from the pinned Kubernetes release.
    pub fn kubectl_path(&self) -> PathBuf {
        self.bin_dir.join("kubectl")
    }

    /// helm built at the version pinned in versions.env.
    pub fn helm_path(&self) -> PathBuf {
        self.bin_dir.join("helm")
    }

    /// `https://127.0.0.1:<port>` (may change after `start_apiserver`).
    pub fn server_url(&self) -> String {
        read_env_file(&self.dir)
            .ok()
            .and_then(|mut env| env.remove("QAO_CP_SERVER"))
            .unwrap_or_else(|| self.server.clone())
    }

    /// `kubectl --kubeconfig <admin kubeconfig>`, ready for more args.
    pub fn kubectl(&self) -> Command {
        let mut cmd = Command::new(self.kubectl_path());
        cmd.arg("--kubeconfig").arg(self.kubeconfig_path());
        cmd.env("KUBECONFIG", self.kubeconfig_path());
        cmd
    }

    /// `helm` with `KUBECONFIG` set to the admin kubeconfig.
    pub fn helm(&self) -> Command {
        let mut cmd = Command::new(self.helm_path());
        cmd.env("KUBECONFIG", self.kubeconfig_path());
        cmd
    }

    /// A new admin client. Create one per test: a `kube::Client` is tied to the
    /// tokio runtime it was created on, and each `#[tokio::test]` has its own.
    pub async fn kube_client(&self) -> kube::Client {
        self.try_kube_client()
            .await
            .unwrap_or_else(|e| panic!("admin client for {}: {e}", self.dir.display()))
    }

    pub async fn try_kube_client(&self) -> Result<kube::Client, String> {
        install_crypto_provider();
        let kubeconfig = kube::config::Kubeconfig::read_from(self.kubeconfig_path())
            .map_err(|e| format!("reading {}: {e}", self.kubeconfig_path().display()))?;
        client_from_kubeconfig(kubeconfig).await
    }

    /// A client authenticating with a bearer token only (e.g. a ServiceAccount
    /// token from the TokenRequest API), trusting the control plane's CA.
    pub async fn client_with_token(&self, token: &str) -> Result<kube::Client, String> {
        install_crypto_provider();
        let yaml = format!(
            "apiVersion: v1\nkind: Config\n\
             clusters:\n- name: qao-local\n  cluster:\n    server: {server}\n    certificate-authority: {ca}\n\
             users:\n- name: token-user\n  user:\n    token: {token}\n\
             contexts:\n- name: token\n  context:\n    cluster: qao-local\n    user: token-user\n\
             current-context: token\n",
            server = self.server_url(),
            ca = self.ca_cert_path().display(),
            token = serde_json::to_string(token).map_err(|e| e.to_string())?,
        );
        let kubeconfig = kube::config::Kubeconfig::from_yaml(&yaml)
            .map_err(|e| format!("token kubeconfig: {e}"))?;
        client_from_kubeconfig(kubeconfig).await
    }

    /// Creates namespace `name` (fine if it exists) and, as kube-controller-
    /// manager would, its `default` ServiceAccount.
    pub async fn create_namespace(&self, name: &str) -> Result<(), kube::Error> {
        let client = self
            .try_kube_client()
            .await
            .map_err(|e| kube::Error::Service(e.into()))?;
        let namespaces: Api<Namespace> = Api::all(client.clone());
        let ns = Namespace {
            metadata: ObjectMeta {
                name: Some(name.to_string()),
                ..Default::default()
            },
            ..Default::default()
        };
        ignore_conflict(namespaces.create(&PostParams::default(), &ns).await)?;
        let accounts: Api<ServiceAccount> = Api::namespaced(client, name);
        let sa = ServiceAccount {
            metadata: ObjectMeta {
                name: Some("default".to_string()),
                ..Default::default()
            },
            ..Default::default()
        };
        ignore_conflict(accounts.create(&PostParams::default(), &sa).await)?;
        Ok(())
    }

    /// Stops only kube-apiserver (etcd and all data stay). Not allowed on the
    /// shared control plane.
    pub fn stop_apiserver(&self) -> Result<(), String> {
        if !self.owned {
            return Err("refusing to stop the shared control plane's apiserver".into());
        }
        run_script(&scripts_dir().join("stop-apiserver.sh"), &self.dir)
    }

    /// Starts kube-apiserver again after [`stop_apiserver`](Self::stop_apiserver)
    /// and waits until it is ready. It gets the same port if that is still
    /// free; the kubeconfig is rewritten either way (create new clients).
    pub fn start_apiserver(&self) -> Result<(), String> {
        if !self.owned {
            return Err("refusing to restart the shared control plane's apiserver".into());
        }
        run_script(&scripts_dir().join("up.sh"), &self.dir)
    }

    /// Stops everything and removes the state dir (what `Drop` does for
    /// private control planes).
    pub fn stop(&self) -> Result<(), String> {
        run_script(&self.scripts.join("down.sh"), &self.dir)
    }

    /// The last `lines` lines of a component's log ("etcd" or "kube-apiserver").
    pub fn log_tail(&self, component: &str, lines: usize) -> String {
        let text =
            std::fs::read_to_string(self.dir.join(format!("{component}.log"))).unwrap_or_default();
        let all: Vec<&str> = text.lines().collect();
        all[all.len().saturating_sub(lines)..].join("\n")
    }
}

impl Drop for ControlPlane {
    fn drop(&mut self) {
        if self.owned
            && let Err(e) = self.stop()
        {
            eprintln!("control plane teardown failed: {e}");
        }
    }
}

fn ignore_conflict<T>(r: Result<T, kube::Error>) -> Result<(), kube::Error> {
    match r {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(s)) if s.code == 409 => Ok(()),
        Err(e) => Err(e),
    }
}

fn install_crypto_provider() {
    // kube uses rustls; make sure exactly one process-wide provider is chosen.
    let _ = rustls::crypto::ring::default_provider().install_default();
}

async fn client_from_kubeconfig(
    kubeconfig: kube::config::Kubeconfig,
) -> Result<kube::Client, String> {
    let config = kube::Config::from_custom_kubeconfig(kubeconfig, &Default::default())
        .await
        .map_err(|e| format!("kubeconfig: {e}"))?;
    kube::Client::try_from(config).map_err(|e| format!("client: {e}"))
}

fn run_script(path: &Path, dir: &Path) -> Result<(), String> {
    let out = Command::new(path)
        .arg(dir)
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("cannot run {}: {e}", path.display()))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "{} {} failed ({}):\n{}",
            path.display(),
            dir.display(),
            out.status,
            output_text(&out)
        ))
    }
}

fn read_env_file(dir: &Path) -> Result<HashMap<String, String>, String> {
    let path = dir.join("env");
    let text = std::fs::read_to_string(&path)
        .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    Ok(parse_env_lines(&text))
}

/// A fresh, empty state dir under the system temp dir (down.sh removes it).
fn new_state_dir() -> Result<PathBuf, String> {
    static COUNTER: AtomicUsize = AtomicUsize::new(0);
    let base = std::env::var_os("QAO_CP_STATE_ROOT")
        .map(PathBuf::from)
        .unwrap_or_else(std::env::temp_dir);
    std::fs::create_dir_all(&base).map_err(|e| format!("{}: {e}", base.display()))?;
    loop {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or(0);
        let dir = base.join(format!(
            "qao-cp-{}-{}-{nanos:x}",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::Relaxed)
        ));
        match std::fs::create_dir(&dir) {
            Ok(()) => return Ok(dir),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(format!("{}: {e}", dir.display())),
        }
    }
}
