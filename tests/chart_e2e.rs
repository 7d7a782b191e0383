//! The Helm chart on a real control plane: `helm lint`, what it renders, a server-side dry run
//! of that, and installs whose ServiceAccount the operator runs as — outside the cluster (there
//! are no nodes), with a token from the TokenRequest API — so that the chart's RBAC is exactly
//! what the operator gets.
//!
//! The cluster-wide install runs on a private control plane with an audit log, which proves
//! the RBAC minimal: every permission the chart grants is used during the test, and nothing
//! the operator asks for is refused.

// Tests state what must hold with unwrap/expect; the crate's lints forbid them elsewhere.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::{
    collections::{BTreeSet, HashMap},
    path::{Path, PathBuf},
    process::{Command, Stdio},
    time::Duration,
};

use k8s_openapi::{
    api::{
        apps::v1::Deployment,
        authentication::v1::{TokenRequest, TokenRequestSpec},
        coordination::v1::Lease,
        core::v1::{ConfigMap, Secret, ServiceAccount},
        events::v1::Event as K8sEvent,
        rbac::v1::{ClusterRole, Role},
    },
    apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition,
};
use kube::{
    Api, Client, ResourceExt,
    api::{ListParams, PostParams},
};
use qlik_automations_operator::{
    crd::{ConditionStatus, QlikAutomation, QlikAutomationSettings},
    emulator::{FaultConfig, FaultRule, RunningEmulator},
    qlik::Endpoint,
};
use serde_json::{Value, json};

use support::chart::{CHART, helm_template, of_kind, output, render, single, succeed, yaml_docs};
use support::control_plane::{ControlPlane, scripts_dir, unique_name};
use support::operator::{ADMIN_KEY, OperatorProcess, ensure_crds, wait_for};

const EXAMPLES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/examples");
const WAIT: Duration = Duration::from_secs(90);

// ------------------------------------------------------------------------------------------
// Helpers

/// (apiGroup, resource, verb) triples.
type Permissions = BTreeSet<(String, String, String)>;

/// What a list of RBAC rules grants, expanded to triples.
fn granted(rules: &Value) -> Permissions {
    let strings = |v: &Value| -> Vec<String> {
        v.as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|s| s.as_str().map(String::from))
                    .collect()
            })
            .unwrap_or_default()
    };
    let mut out = Permissions::new();
    for rule in rules.as_array().into_iter().flatten() {
        for group in strings(&rule["apiGroups"]) {
            for resource in strings(&rule["resources"]) {
                for verb in strings(&rule["verbs"]) {
                    out.insert((group.clone(), resource.clone(), verb));
                }
            }
        }
    }
    out
}

fn permission(group: &str, resource: &str, verb: &str) -> (String, String, String) {
    (group.into(), resource.into(), verb.into())
}

/// What the operator needs in every namespace it watches (the chart's `qao.rules`).
fn operator_rules() -> Permissions {
    let mut p = Permissions::new();
    for verb in ["list", "watch", "patch"] {
        p.insert(permission("automations.qlik.dev", "qlikautomations", verb));
    }
    for verb in ["list", "watch"] {
        p.insert(permission(
            "automations.qlik.dev",
            "qlikautomationsettings",
            verb,
        ));
    }
    p.insert(permission(
        "automations.qlik.dev",
        "qlikautomations/status",
        "patch",
    ));
    p.insert(permission(
        "automations.qlik.dev",
        "qlikautomationsettings/status",
        "patch",
    ));
    for resource in ["secrets", "configmaps"] {
        for verb in ["get", "list", "watch"] {
            p.insert(permission("", resource, verb));
        }
    }
    for verb in ["create", "patch"] {
        p.insert(permission("events.k8s.io", "events", verb));
    }
    p
}

/// Numbers compared by value: Helm re-serialises `1.0` as `1`.
fn normalized(v: &Value) -> Value {
    match v {
        Value::Number(n) => json!(n.as_f64()),
        Value::Array(a) => Value::Array(a.iter().map(normalized).collect()),
        Value::Object(o) => {
            Value::Object(o.iter().map(|(k, v)| (k.clone(), normalized(v))).collect())
        }
        other => other.clone(),
    }
}

/// A token of ServiceAccount `namespace/name` from the TokenRequest API (there is no token
/// controller on this control plane, and none is needed).
async fn service_account_token(client: &Client, namespace: &str, name: &str) -> String {
    let accounts: Api<ServiceAccount> = Api::namespaced(client.clone(), namespace);
    let request = TokenRequest {
        spec: TokenRequestSpec {
            audiences: vec![],
            expiration_seconds: Some(3600),
            bound_object_ref: None,
        },
        ..TokenRequest::default()
    };
    accounts
        .create_token_request(name, &PostParams::default(), &request)
        .await
        .unwrap_or_else(|e| panic!("TokenRequest for {namespace}/{name}: {e}"))
        .status
        .expect("TokenRequest status")
        .token
}

/// Writes a kubeconfig that authenticates with `token` only, trusting the cluster's CA.
fn token_kubeconfig(path: &Path, server: &str, ca: &Path, token: &str) {
    let yaml = format!(
        "apiVersion: v1\nkind: Config\n\
         clusters:\n- name: cluster\n  cluster:\n    server: {server}\n    certificate-authority: {ca}\n\
         users:\n- name: service-account\n  user:\n    token: {token}\n\
         contexts:\n- name: service-account\n  context:\n    cluster: cluster\n    user: service-account\n\
         current-context: service-account\n",
        ca = ca.display(),
        token = serde_json::to_string(token).unwrap(),
    );
    std::fs::write(path, yaml).unwrap();
}

/// The command line and environment of the chart's Deployment, as the operator would get them
/// in its Pod: the downward-API variables filled in, `--listen` moved to a free local port.
async fn chart_command(
    client: &Client,
    namespace: &str,
    name: &str,
    pod_name: &str,
) -> (String, Vec<String>, Vec<(String, String)>) {
    let deploy = Api::<Deployment>::namespaced(client.clone(), namespace)
        .get(name)
        .await
        .unwrap();
    let pod = deploy.spec.unwrap().template.spec.unwrap();
    let account = pod.service_account_name.clone().unwrap();
    let container = &pod.containers[0];
    let args = container
        .args
        .clone()
        .unwrap()
        .into_iter()
        .map(|a| {
            if a.starts_with("--listen=") {
                "--listen=127.0.0.1:0".to_string()
            } else {
                a
            }
        })
        .collect();
    let env = container
        .env
        .clone()
        .unwrap_or_default()
        .into_iter()
        .map(|e| {
            let value = match e.value {
                Some(v) => v,
                None => {
                    let field = e
                        .value_from
                        .and_then(|f| f.field_ref)
                        .map(|f| f.field_path)
                        .unwrap_or_default();
                    match field.as_str() {
                        "metadata.name" => pod_name.to_string(),
                        "metadata.namespace" => namespace.to_string(),
                        other => panic!("unexpected env source {other:?} for {}", e.name),
                    }
                }
            };
            (e.name, value)
        })
        .collect();
    (account, args, env)
}

/// The example Secret with the emulator's URL and a key in place of the placeholders.
fn example_secret(tenant_url: &str, api_key: &str) -> String {
    let text = std::fs::read_to_string(format!("{EXAMPLES}/secret.yaml")).unwrap();
    let mut secret: Value = serde_yaml::from_str(&text).unwrap();
    secret["stringData"]["tenantUrl"] = json!(tenant_url);
    secret["stringData"]["apiKey"] = json!(api_key);
    secret.to_string()
}

fn ready(conditions: &[qlik_automations_operator::crd::Condition]) -> bool {
    conditions
        .iter()
        .any(|c| c.type_ == "Ready" && c.status == ConditionStatus::True)
}

fn remote_names(emu: &RunningEmulator) -> BTreeSet<String> {
    emu.automations()
        .iter()
        .filter_map(|a| a["name"].as_str().map(String::from))
        .collect()
}

// ------------------------------------------------------------------------------------------
// A private control plane whose kube-apiserver writes an audit log of every request made by
// a ServiceAccount.

struct AuditedControlPlane {
    dir: PathBuf,
    env: HashMap<String, String>,
}

impl AuditedControlPlane {
    fn start() -> AuditedControlPlane {
        let root = std::env::var_os("QAO_CP_STATE_ROOT")
            .map(PathBuf::from)
            .unwrap_or_else(std::env::temp_dir);
        let dir = root.join(unique_name("qao-chart-audit"));
        std::fs::create_dir_all(&dir).unwrap();
        let policy = dir.join("audit-policy.yaml");
        std::fs::write(
            &policy,
            "apiVersion: audit.k8s.io/v1\nkind: Policy\nomitStages: [RequestReceived]\nrules:\n\
             - level: Metadata\n  userGroups: [\"system:serviceaccounts\"]\n- level: None\n",
        )
        .unwrap();
        let extra = format!(
            "--audit-policy-file={} --audit-log-path={} --audit-log-format=json --audit-log-mode=blocking",
            policy.display(),
            dir.join("audit.log").display()
        );
        let mut cp = AuditedControlPlane {
            dir: dir.clone(),
            env: HashMap::new(),
        };
        // A detached watchdog tears it down however this process ends.
        let watchdog = Command::new("setsid")
            .arg("-f")
            .arg(scripts_dir().join("watchdog.sh"))
            .arg(std::process::id().to_string())
            .arg(&dir)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .unwrap();
        assert!(watchdog.success());
        let up = Command::new(scripts_dir().join("up.sh"))
            .arg(&dir)
            .env("QAO_CP_APISERVER_EXTRA_ARGS", extra)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .status()
            .unwrap();
        assert!(up.success(), "up.sh {} failed", dir.display());
        let text = std::fs::read_to_string(dir.join("env")).unwrap();
        cp.env = text
            .lines()
            .filter_map(|l| l.strip_prefix("export "))
            .filter_map(|l| l.split_once('='))
            .map(|(k, v)| (k.to_string(), v.trim_matches('\'').to_string()))
            .collect();
        cp
    }

    fn kubeconfig(&self) -> PathBuf {
        self.dir.join("kubeconfig")
    }

    fn server(&self) -> String {
        self.env["QAO_CP_SERVER"].clone()
    }

    fn ca(&self) -> PathBuf {
        self.dir.join("pki").join("ca.crt")
    }

    fn kubectl(&self) -> Command {
        let mut cmd = Command::new(&self.env["QAO_KUBECTL"]);
        cmd.env("KUBECONFIG", self.kubeconfig());
        cmd
    }

    fn helm(&self) -> Command {
        let mut cmd = Command::new(&self.env["QAO_HELM"]);
        cmd.env("KUBECONFIG", self.kubeconfig());
        cmd
    }

    async fn client(&self) -> Client {
        qlik_automations_operator::install_crypto_provider();
        let kubeconfig = kube::config::Kubeconfig::read_from(self.kubeconfig()).unwrap();
        let config = kube::Config::from_custom_kubeconfig(kubeconfig, &Default::default())
            .await
            .unwrap();
        Client::try_from(config).unwrap()
    }

    /// The audit events of requests made by `username`.
    fn audit_events(&self, username: &str) -> Vec<Value> {
        std::fs::read_to_string(self.dir.join("audit.log"))
            .unwrap_or_default()
            .lines()
            .filter_map(|l| serde_json::from_str::<Value>(l).ok())
            .filter(|e| e["user"]["username"] == username)
            .collect()
    }
}

impl Drop for AuditedControlPlane {
    fn drop(&mut self) {
        let _ = Command::new(scripts_dir().join("down.sh"))
            .arg(&self.dir)
            .stdin(Stdio::null())
            .status();
    }
}

/// A copy of the chart whose CRD lacks the `Owner` printer column: an older chart version.
fn older_chart(into: &Path) -> PathBuf {
    fn copy(from: &Path, to: &Path) {
        std::fs::create_dir_all(to).unwrap();
        for entry in std::fs::read_dir(from).unwrap() {
            let entry = entry.unwrap();
            let target = to.join(entry.file_name());
            if entry.file_type().unwrap().is_dir() {
                copy(&entry.path(), &target);
            } else {
                std::fs::copy(entry.path(), &target).unwrap();
            }
        }
    }
    let chart = into.join("qlik-automations-operator");
    copy(Path::new(CHART), &chart);
    let crds = chart.join("files").join("crds.yaml");
    let text = std::fs::read_to_string(&crds).unwrap();
    let owner_column = "    - description: The remote owner's user id\n      jsonPath: .status.ownerId\n      name: Owner\n      priority: 1\n      type: string\n";
    assert!(text.contains(owner_column), "the CRD has an Owner column");
    std::fs::write(&crds, text.replace(owner_column, "")).unwrap();
    chart
}

fn printer_columns(crd: &CustomResourceDefinition) -> Vec<String> {
    crd.spec.versions[0]
        .additional_printer_columns
        .iter()
        .flatten()
        .map(|c| c.name.clone())
        .collect()
}

// ------------------------------------------------------------------------------------------
// Tests that need no cluster

#[test]
fn the_chart_carries_exactly_the_generated_crds() {
    let generated = qlik_automations_operator::crd::crds_yaml().unwrap();
    let path = format!("{CHART}/files/crds.yaml");
    if std::env::var_os("QAO_UPDATE_CRDS").is_some() {
        std::fs::write(&path, &generated).unwrap();
    }
    let copy = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        copy == generated,
        "{path} is out of date: run `cargo run -- crds > {path}` (or QAO_UPDATE_CRDS=1 cargo test --test chart_e2e)"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn helm_lint_passes_and_the_schema_refuses_bad_values() {
    let helm = ControlPlane::shared().helm_path();
    for sets in [
        vec![],
        vec![
            "watchNamespaces={team-a,team-b}",
            "defaultConnection=ops/qlik",
            "replicaCount=2",
            "metrics.serviceMonitor.enabled=true",
            "podDisruptionBudget.enabled=true",
        ],
    ] {
        let mut cmd = Command::new(&helm);
        cmd.args(["lint", CHART, "--strict"]);
        for set in &sets {
            cmd.args(["--set", set]);
        }
        let out = succeed(cmd, None).await;
        assert!(
            out.contains("1 chart(s) linted, 0 chart(s) failed"),
            "{out}"
        );
    }
    for (bad, complaint) in [
        ("logFormat=xml", "logFormat"),
        ("defaultConnection=no-slash", "defaultConnection"),
        ("concurrency=0", "concurrency"),
        ("replicaCont=2", "replicaCont"),
        ("readBudgetShare=1.5", "readBudgetShare"),
        ("rateLimits.windowSeconds=0", "windowSeconds"),
    ] {
        let out = output(helm_template("bad", "ops", &[bad]), None).await;
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{bad} was accepted");
        assert!(stderr.contains(complaint), "{bad}: {stderr}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_default_render_is_locked_down_cluster_wide_and_carries_the_crds() {
    let docs = render("render", "ops", &[]).await;
    let deploy = single(&docs, "Deployment");
    assert_eq!(deploy["metadata"]["namespace"], "ops");
    assert_eq!(deploy["spec"]["replicas"], 1);
    assert_eq!(deploy["spec"]["strategy"]["type"], "Recreate");
    let pod = &deploy["spec"]["template"]["spec"];
    assert_eq!(
        pod["serviceAccountName"],
        "render-qlik-automations-operator"
    );
    assert_eq!(pod["securityContext"]["runAsNonRoot"], true);
    assert_eq!(pod["securityContext"]["runAsUser"], 65532);
    assert_eq!(
        pod["securityContext"]["seccompProfile"]["type"],
        "RuntimeDefault"
    );
    let c = &pod["containers"][0];
    assert_eq!(c["securityContext"]["readOnlyRootFilesystem"], true);
    assert_eq!(c["securityContext"]["allowPrivilegeEscalation"], false);
    assert_eq!(c["securityContext"]["capabilities"]["drop"], json!(["ALL"]));
    for kind in ["requests", "limits"] {
        assert!(c["resources"][kind]["cpu"].is_string(), "{kind}");
        assert!(c["resources"][kind]["memory"].is_string(), "{kind}");
    }
    assert_eq!(c["ports"][0]["name"], "metrics");
    assert_eq!(c["ports"][0]["containerPort"], 8080);
    assert_eq!(c["livenessProbe"]["httpGet"]["path"], "/healthz");
    assert_eq!(c["livenessProbe"]["httpGet"]["port"], "metrics");
    assert_eq!(c["readinessProbe"]["httpGet"]["path"], "/readyz");
    let env: HashMap<&str, &Value> = c["env"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| (e["name"].as_str().unwrap(), e))
        .collect();
    assert_eq!(
        env["POD_NAME"]["valueFrom"]["fieldRef"]["fieldPath"],
        "metadata.name"
    );
    assert_eq!(
        env["POD_NAMESPACE"]["valueFrom"]["fieldRef"]["fieldPath"],
        "metadata.namespace"
    );
    let args: Vec<&str> = c["args"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a.as_str().unwrap())
        .collect();
    assert_eq!(args[0], "run");
    for expected in [
        "--listen=0.0.0.0:8080",
        "--log-format=json",
        "--concurrency=8",
        "--resync-seconds=300",
        "--tier1-per-minute=1000",
        "--tier2-per-minute=100",
        "--rate-window-seconds=300",
        "--read-budget-share=0.1",
    ] {
        assert!(args.contains(&expected), "{expected} in {args:?}");
    }
    assert!(
        !args
            .iter()
            .any(|a| a.starts_with("--namespaces") || a.starts_with("--leader-election")),
        "{args:?}"
    );

    // All namespaces: one ClusterRole with exactly the operator's rules, bound to the SA.
    let role = single(&docs, "ClusterRole");
    assert_eq!(role["metadata"]["name"], "render-qlik-automations-operator");
    assert_eq!(granted(&role["rules"]), operator_rules());
    let binding = single(&docs, "ClusterRoleBinding");
    assert_eq!(binding["roleRef"]["name"], role["metadata"]["name"]);
    assert_eq!(
        binding["subjects"],
        json!([{"kind": "ServiceAccount", "name": "render-qlik-automations-operator", "namespace": "ops"}])
    );
    assert!(of_kind(&docs, "Role").is_empty());
    assert!(of_kind(&docs, "ServiceMonitor").is_empty());
    assert!(of_kind(&docs, "PodDisruptionBudget").is_empty());
    assert_eq!(single(&docs, "Service")["spec"]["ports"][0]["port"], 8080);
    single(&docs, "ServiceAccount");

    // The CRDs are templates (so `helm upgrade` upgrades them), kept on uninstall, and are
    // exactly what the Rust types generate.
    let crds = of_kind(&docs, "CustomResourceDefinition");
    assert_eq!(crds.len(), 2);
    for generated in qlik_automations_operator::crd::crds() {
        let name = generated.metadata.name.clone().unwrap();
        let rendered = crds
            .iter()
            .find(|c| c["metadata"]["name"] == name.as_str())
            .unwrap_or_else(|| panic!("{name} is not rendered"));
        assert_eq!(
            rendered["metadata"]["annotations"]["helm.sh/resource-policy"],
            "keep"
        );
        assert_eq!(
            normalized(&rendered["spec"]),
            normalized(&serde_json::to_value(&generated.spec).unwrap()),
            "{name}"
        );
    }
    let without = render("render", "ops", &["crds.install=false"]).await;
    assert!(of_kind(&without, "CustomResourceDefinition").is_empty());
    let unkept = render("render", "ops", &["crds.keep=false"]).await;
    assert!(
        of_kind(&unkept, "CustomResourceDefinition")
            .iter()
            .all(|c| c["metadata"]["annotations"]["helm.sh/resource-policy"].is_null())
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_values_map_to_the_operators_flags_and_namespaced_roles() {
    let docs = render(
        "render",
        "ops",
        &[
            "watchNamespaces={team-a,team-b}",
            "labelSelector=team=data",
            "defaultConnection=shared/qlik",
            "concurrency=3",
            "resyncSeconds=60",
            "viewMaxAgeSeconds=10",
            "requestTimeoutSeconds=20",
            "insecureSkipTlsVerify=true",
            "rateLimits.tier1PerMinute=500",
            "rateLimits.tier2PerMinute=50",
            "rateLimits.windowSeconds=60",
            "readBudgetShare=0.25",
            "logFormat=text",
            "metrics.port=9090",
            "replicaCount=2",
            "metrics.serviceMonitor.enabled=true",
            "podDisruptionBudget.enabled=true",
            "crds.install=false",
        ],
    )
    .await;
    let deploy = single(&docs, "Deployment");
    assert_eq!(deploy["spec"]["replicas"], 2);
    assert_eq!(deploy["spec"]["strategy"]["type"], "RollingUpdate");
    let c = &deploy["spec"]["template"]["spec"]["containers"][0];
    let args: Vec<&str> = c["args"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a.as_str().unwrap())
        .collect();
    let expected = [
        "--listen=0.0.0.0:9090",
        "--log-format=text",
        "--namespaces=team-a,team-b",
        "--label-selector=team=data",
        "--default-connection=shared/qlik",
        "--concurrency=3",
        "--resync-seconds=60",
        "--view-max-age-seconds=10",
        "--request-timeout-seconds=20",
        "--tier1-per-minute=500",
        "--tier2-per-minute=50",
        "--rate-window-seconds=60",
        "--read-budget-share=0.25",
        "--insecure-skip-tls-verify",
        // More than one replica turns leader election on by itself.
        "--leader-election",
        "--lease-namespace=ops",
        "--lease-name=render-qlik-automations-operator",
    ];
    for e in expected {
        assert!(args.contains(&e), "{e} in {args:?}");
    }
    assert_eq!(c["ports"][0]["containerPort"], 9090);

    // Every flag the chart sets is one the binary has.
    let help = succeed(
        {
            let mut cmd = Command::new(env!("CARGO_BIN_EXE_qlik-automations-operator"));
            cmd.args(["run", "--help"]);
            cmd
        },
        None,
    )
    .await;
    for arg in &args[1..] {
        let flag = arg.split('=').next().unwrap();
        assert!(
            help.contains(flag),
            "the chart sets {flag}, unknown to `run`"
        );
    }

    // Namespaced: no cluster-wide grant at all; a Role with the operator's rules in each
    // watched namespace, reading exactly the default connection's Secret where it lives, and
    // the Lease in the release namespace.
    assert!(of_kind(&docs, "ClusterRole").is_empty());
    assert!(of_kind(&docs, "ClusterRoleBinding").is_empty());
    let roles = of_kind(&docs, "Role");
    let role_in = |ns: &str, name: &str| -> &Value {
        roles
            .iter()
            .find(|r| r["metadata"]["namespace"] == ns && r["metadata"]["name"] == name)
            .unwrap_or_else(|| panic!("no Role {ns}/{name}"))
    };
    for ns in ["team-a", "team-b"] {
        let role = role_in(ns, "render-qlik-automations-operator");
        assert_eq!(granted(&role["rules"]), operator_rules());
    }
    let connection = role_in(
        "shared",
        "render-qlik-automations-operator-default-connection",
    );
    assert_eq!(
        connection["rules"],
        json!([{"apiGroups": [""], "resources": ["secrets"], "resourceNames": ["qlik"], "verbs": ["get"]}])
    );
    let lease = role_in("ops", "render-qlik-automations-operator-leader-election");
    assert_eq!(
        lease["rules"],
        json!([
            {"apiGroups": ["coordination.k8s.io"], "resources": ["leases"], "verbs": ["create"]},
            {"apiGroups": ["coordination.k8s.io"], "resources": ["leases"],
             "resourceNames": ["render-qlik-automations-operator"], "verbs": ["get", "update"]}
        ])
    );
    assert_eq!(roles.len(), 4);
    let bindings = of_kind(&docs, "RoleBinding");
    assert_eq!(bindings.len(), 4);
    for b in bindings {
        assert_eq!(b["subjects"][0]["name"], "render-qlik-automations-operator");
        assert_eq!(b["subjects"][0]["namespace"], "ops");
        assert!(
            roles
                .iter()
                .any(|r| r["metadata"]["name"] == b["roleRef"]["name"]
                    && r["metadata"]["namespace"] == b["metadata"]["namespace"])
        );
    }
    // The operator answers /readyz while it waits for the Lease too, so a standby replica
    // counts as ready and rolling updates finish.
    assert_eq!(c["readinessProbe"]["httpGet"]["path"], "/readyz");

    let monitor = single(&docs, "ServiceMonitor");
    assert_eq!(monitor["spec"]["endpoints"][0]["port"], "metrics");
    assert_eq!(monitor["spec"]["endpoints"][0]["path"], "/metrics");
    let service = single(&docs, "Service");
    for (k, v) in monitor["spec"]["selector"]["matchLabels"]
        .as_object()
        .unwrap()
    {
        assert_eq!(
            &service["metadata"]["labels"][k], v,
            "ServiceMonitor selects the Service"
        );
    }
    let pdb = single(&docs, "PodDisruptionBudget");
    assert_eq!(pdb["spec"]["maxUnavailable"], 1);
    assert_eq!(
        pdb["spec"]["selector"]["matchLabels"],
        deploy["spec"]["selector"]["matchLabels"]
    );
    assert!(of_kind(&docs, "CustomResourceDefinition").is_empty());
}

// ------------------------------------------------------------------------------------------
// Tests on the shared control plane

const SERVICE_MONITOR_CRD: &str = r#"
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata:
  name: servicemonitors.monitoring.coreos.com
spec:
  group: monitoring.coreos.com
  names: {kind: ServiceMonitor, listKind: ServiceMonitorList, plural: servicemonitors, singular: servicemonitor}
  scope: Namespaced
  versions:
    - name: v1
      served: true
      storage: true
      schema:
        openAPIV3Schema: {type: object, x-kubernetes-preserve-unknown-fields: true}
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_rendered_chart_passes_a_server_side_dry_run() {
    let cp = ControlPlane::shared();
    let client = cp.kube_client().await;
    // The CRDs exist already, as on a cluster being upgraded.
    ensure_crds(&client).await;
    // The Prometheus Operator's CRD, reduced to what the dry run needs.
    let mut apply = cp.kubectl();
    apply.args(["apply", "--server-side", "-f", "-"]);
    succeed(apply, Some(SERVICE_MONITOR_CRD.into())).await;
    let mut established = cp.kubectl();
    established.args([
        "wait",
        "--for=condition=Established",
        "crd/servicemonitors.monitoring.coreos.com",
        "--timeout=60s",
    ]);
    succeed(established, None).await;

    let release = unique_name("dry");
    let ops = unique_name("dry-ops");
    let team_a = unique_name("dry-a");
    let team_b = unique_name("dry-b");
    let shared = unique_name("dry-shared");
    for ns in [&ops, &team_a, &team_b, &shared] {
        cp.create_namespace(ns).await.unwrap();
    }
    let watch = format!("watchNamespaces={{{team_a},{team_b}}}");
    let connection = format!("defaultConnection={shared}/qlik");
    for sets in [
        vec![],
        vec![
            watch.as_str(),
            connection.as_str(),
            "replicaCount=3",
            "metrics.serviceMonitor.enabled=true",
            "podDisruptionBudget.enabled=true",
            "podDisruptionBudget.minAvailable=1",
        ],
    ] {
        let mut template = Command::new(cp.helm_path());
        template.args(["template", &release, CHART, "--namespace", &ops]);
        for set in &sets {
            template.args(["--set", set]);
        }
        let manifests = succeed(template, None).await;
        let count = yaml_docs(&manifests).len();
        let mut dry_run = cp.kubectl();
        dry_run.args(["apply", "--dry-run=server", "-f", "-"]);
        let out = succeed(dry_run, Some(manifests)).await;
        let accepted = out
            .lines()
            .filter(|l| l.contains("(server dry run)"))
            .count();
        assert_eq!(accepted, count, "{sets:?}:\n{out}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_namespaced_install_cannot_touch_other_namespaces() {
    let cp = ControlPlane::shared();
    let admin = cp.kube_client().await;
    ensure_crds(&admin).await;
    let release = unique_name("nsd");
    let ops = unique_name("nsd-ops");
    let team_a = unique_name("nsd-a");
    let team_b = unique_name("nsd-b");
    for ns in [&ops, &team_a, &team_b] {
        cp.create_namespace(ns).await.unwrap();
    }
    let mut install = cp.helm();
    install.args([
        "install",
        &release,
        CHART,
        "--namespace",
        &ops,
        "--set",
        &format!("watchNamespaces={{{team_a}}}"),
        // The CRDs belong to this test binary, not to one release.
        "--set",
        "crds.install=false",
        "--set",
        "logLevel=info\\,qlik_automations_operator=debug",
    ]);
    succeed(install, None).await;

    let name = format!("{release}-qlik-automations-operator");
    let (account, args, env) = chart_command(&admin, &ops, &name, "nsd-operator-0").await;
    assert!(args.contains(&format!("--namespaces={team_a}")), "{args:?}");
    let token = service_account_token(&admin, &ops, &account).await;
    let scratch = tempfile::tempdir().unwrap();
    let kubeconfig = scratch.path().join("operator.kubeconfig");
    token_kubeconfig(&kubeconfig, &cp.server_url(), &cp.ca_cert_path(), &token);

    // What RBAC answers for the ServiceAccount.
    let user = format!("system:serviceaccount:{ops}:{account}");
    let can_i = |args: &[&str]| {
        let mut cmd = cp.kubectl();
        cmd.args(["auth", "can-i", "--as", &user]).args(args);
        cmd
    };
    for (question, ns, allowed) in [
        (
            vec!["list", "qlikautomations.automations.qlik.dev"],
            &team_a,
            true,
        ),
        (
            vec![
                "patch",
                "qlikautomations.automations.qlik.dev",
                "--subresource=status",
            ],
            &team_a,
            true,
        ),
        (vec!["get", "secrets"], &team_a, true),
        (vec!["create", "events.events.k8s.io"], &team_a, true),
        (
            vec!["list", "qlikautomations.automations.qlik.dev"],
            &team_b,
            false,
        ),
        (
            vec!["patch", "qlikautomations.automations.qlik.dev"],
            &team_b,
            false,
        ),
        (vec!["get", "secrets"], &team_b, false),
        (vec!["list", "configmaps"], &team_b, false),
        (vec!["create", "events.events.k8s.io"], &team_b, false),
        (vec!["get", "secrets"], &ops, false),
        // The operator never deletes objects, and leader election is off.
        (
            vec!["delete", "qlikautomations.automations.qlik.dev"],
            &team_a,
            false,
        ),
        (vec!["create", "leases.coordination.k8s.io"], &ops, false),
    ] {
        let mut cmd = can_i(&question);
        cmd.args(["-n", ns]);
        let out = output(cmd, None).await;
        assert_eq!(
            out.status.success(),
            allowed,
            "can {user} {question:?} in {ns}? {}",
            String::from_utf8_lossy(&out.stdout)
        );
    }
    let out = output(can_i(&["list", "secrets", "--all-namespaces"]), None).await;
    assert!(!out.status.success(), "cluster-wide Secrets");

    // The same through the token itself.
    let sa = cp.client_with_token(&token).await.unwrap();
    let forbidden =
        |r: Result<_, kube::Error>| matches!(r, Err(kube::Error::Api(s)) if s.code == 403);
    Api::<QlikAutomation>::namespaced(sa.clone(), &team_a)
        .list(&ListParams::default())
        .await
        .expect("QlikAutomations in the watched namespace");
    assert!(forbidden(
        Api::<QlikAutomation>::namespaced(sa.clone(), &team_b)
            .list(&ListParams::default())
            .await
            .map(|_| ())
    ));
    assert!(forbidden(
        Api::<QlikAutomation>::all(sa.clone())
            .list(&ListParams::default())
            .await
            .map(|_| ())
    ));
    assert!(forbidden(
        Api::<Secret>::namespaced(sa.clone(), &team_b)
            .list(&ListParams::default())
            .await
            .map(|_| ())
    ));
    assert!(forbidden(
        Api::<ConfigMap>::namespaced(sa.clone(), &team_b)
            .list(&ListParams::default())
            .await
            .map(|_| ())
    ));

    // The operator, as that ServiceAccount with the chart's flags, reconciles team-a and
    // leaves team-b alone.
    let emu = support::operator::emulator(|_| {}).await;
    let mut op = OperatorProcess::start(&release, &kubeconfig, &args, &env);
    for ns in [&team_a, &team_b] {
        let mut secret = cp.kubectl();
        secret.args(["apply", "-n", ns, "-f", "-"]);
        succeed(secret, Some(example_secret(&emu.base_url(), ADMIN_KEY))).await;
        let mut apply = cp.kubectl();
        apply.args([
            "apply",
            "-n",
            ns,
            "-f",
            &format!("{EXAMPLES}/automation.yaml"),
        ]);
        succeed(apply, None).await;
        // The Secret is forbidden to the operator in team-b; the admin wrote it.
    }
    let in_a: Api<QlikAutomation> = Api::namespaced(admin.clone(), &team_a);
    let a = wait_for("nightly-reload Ready in team-a", WAIT, || async {
        let a = in_a.get("nightly-reload").await.ok()?;
        ready(&a.status.as_ref()?.conditions).then_some(a)
    })
    .await;
    assert!(op.is_running(), "{}", op.log());
    let id = a.status.unwrap().automation_id.unwrap();
    assert_eq!(
        remote_names(&emu),
        BTreeSet::from(["Nightly reload".into()])
    );
    let in_b: Api<QlikAutomation> = Api::namespaced(admin.clone(), &team_b);
    let b = in_b.get("nightly-reload").await.unwrap();
    assert!(b.status.is_none(), "team-b is not watched: {:?}", b.status);
    assert!(b.finalizers().is_empty());

    let mut delete = cp.kubectl();
    delete.args([
        "delete",
        "-n",
        &team_a,
        "qlikautomation/nightly-reload",
        "--timeout=60s",
    ]);
    succeed(delete, None).await;
    assert!(
        emu.automations().iter().all(|r| r["id"] != id.as_str()),
        "the remote is deleted"
    );
    let log = op.log();
    assert!(!log.to_lowercase().contains("forbidden"), "{log}");
    op.kill();
    // team-b's object still carries no finalizer, so removing it needs no operator.
    let mut delete = cp.kubectl();
    delete.args(["delete", "-n", &team_b, "qlikautomation/nightly-reload"]);
    succeed(delete, None).await;
    let mut uninstall = cp.helm();
    uninstall.args(["uninstall", &release, "--namespace", &ops]);
    succeed(uninstall, None).await;
}

// ------------------------------------------------------------------------------------------
// The cluster-wide install, on a private control plane with an audit log

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_installed_chart_runs_the_examples_as_its_service_account_with_minimal_rbac() {
    let cp = AuditedControlPlane::start();
    let admin = cp.client().await;
    let release = unique_name("qao");
    let ops = "qao-system";
    let team = "team-a";
    let mut create = cp.kubectl();
    create.args(["create", "namespace", ops]);
    succeed(create, None).await;
    let mut create = cp.kubectl();
    create.args(["create", "namespace", team]);
    succeed(create, None).await;

    let sets = [
        "--set",
        "replicaCount=2",
        "--set",
        "logLevel=info\\,qlik_automations_operator=debug",
    ];
    // Install an older chart whose CRD lacks a printer column ...
    let scratch = cp.dir.join("older");
    let older = older_chart(&scratch);
    let mut install = cp.helm();
    install
        .args(["install", &release])
        .arg(&older)
        .args(["--namespace", ops])
        .args(sets);
    succeed(install, None).await;
    let crds: Api<CustomResourceDefinition> = Api::all(admin.clone());
    let crd = crds
        .get("qlikautomations.automations.qlik.dev")
        .await
        .unwrap();
    assert!(!printer_columns(&crd).contains(&"Owner".to_string()));

    // ... then `helm upgrade` to this chart upgrades the CRD.
    let mut upgrade = cp.helm();
    upgrade
        .args(["upgrade", &release, CHART, "--namespace", ops])
        .args(sets);
    succeed(upgrade, None).await;
    let crd = crds
        .get("qlikautomations.automations.qlik.dev")
        .await
        .unwrap();
    assert!(printer_columns(&crd).contains(&"Owner".to_string()));
    assert_eq!(
        crd.annotations()
            .get("helm.sh/resource-policy")
            .map(String::as_str),
        Some("keep")
    );
    wait_for("the CRDs are established", WAIT, || async {
        let list = crds.list(&ListParams::default()).await.ok()?;
        let established = list
            .items
            .iter()
            .filter(|c| {
                c.status
                    .as_ref()
                    .and_then(|s| s.conditions.as_ref())
                    .is_some_and(|cs| {
                        cs.iter()
                            .any(|c| c.type_ == "Established" && c.status == "True")
                    })
            })
            .count();
        (established == 2).then_some(())
    })
    .await;

    // The operator runs outside the cluster, authenticated as the chart's ServiceAccount,
    // with the chart's flags and the environment the Pod would get.
    let name = format!("{release}-qlik-automations-operator");
    let pod_name = format!("{name}-5d8f7-abcde");
    let (account, args, env) = chart_command(&admin, ops, &name, &pod_name).await;
    assert!(args.contains(&"--leader-election".to_string()), "{args:?}");
    let token = service_account_token(&admin, ops, &account).await;
    let kubeconfig = cp.dir.join("operator.kubeconfig");
    token_kubeconfig(&kubeconfig, &cp.server(), &cp.ca(), &token);
    let emu = support::operator::emulator(|_| {}).await;
    let mut op = OperatorProcess::start(&release, &kubeconfig, &args, &env);

    // The examples, as a newcomer applies them.
    let mut secret = cp.kubectl();
    secret.args(["apply", "-n", team, "-f", "-"]);
    succeed(secret, Some(example_secret(&emu.base_url(), ADMIN_KEY))).await;
    let mut apply = cp.kubectl();
    apply.args([
        "apply",
        "-n",
        team,
        "-f",
        &format!("{EXAMPLES}/automation.yaml"),
        "-f",
        &format!("{EXAMPLES}/settings.yaml"),
    ]);
    succeed(apply, None).await;
    let mut kustomize = cp.kubectl();
    kustomize.args([
        "apply",
        "-n",
        team,
        "-k",
        &format!("{EXAMPLES}/workspace-from-configmap"),
    ]);
    succeed(kustomize, None).await;
    let mut wait = cp.kubectl();
    wait.args([
        "wait",
        "-n",
        team,
        "--for=condition=Ready",
        "qlik",
        "--all",
        "--timeout=120s",
    ]);
    let waited = output(wait, None).await;
    assert!(
        waited.status.success(),
        "kubectl wait: {}\noperator log:\n{}",
        String::from_utf8_lossy(&waited.stderr),
        op.log()
    );

    let automations: Api<QlikAutomation> = Api::namespaced(admin.clone(), team);
    for a in automations.list(&ListParams::default()).await.unwrap() {
        let status = a.status.clone().unwrap();
        assert!(ready(&status.conditions), "{}", a.name_any());
        assert_eq!(status.state.as_deref(), Some("available"));
        assert!(status.automation_id.is_some());
    }
    let settings: Api<QlikAutomationSettings> = Api::namespaced(admin.clone(), team);
    let s = settings.get("tenant-settings").await.unwrap();
    assert!(ready(&s.status.as_ref().unwrap().conditions));
    // The example speaks workflows, the default generation: its setting, not v1's.
    let observed = s.status.unwrap();
    assert_eq!(observed.max_concurrent_runs_per_automation, Some(5));
    assert_eq!(observed.automations_enabled, None);
    assert_eq!(
        remote_names(&emu),
        BTreeSet::from(["Nightly reload".into(), "Webhook sync".into()])
    );
    let webhook = emu
        .automations()
        .into_iter()
        .find(|a| a["name"] == "Webhook sync")
        .unwrap();
    assert_eq!(webhook["workspace"]["blocks"][0]["runMode"], "webhook");
    let mut get = cp.kubectl();
    get.args(["get", "qlik", "-n", team, "-o", "wide"]);
    let table = succeed(get, None).await;
    for row in ["nightly-reload", "webhook-sync", "tenant-settings"] {
        let line = table
            .lines()
            .find(|l| l.contains(row))
            .unwrap_or_else(|| panic!("{row} in\n{table}"));
        assert!(line.contains("True"), "{line}");
    }

    // The Lease is held by this "Pod" and renewed.
    let leases: Api<Lease> = Api::namespaced(admin.clone(), ops);
    wait_for("the Lease is renewed", WAIT, || async {
        let spec = leases.get(&name).await.ok()?.spec?;
        let holder = spec.holder_identity?;
        (holder.starts_with(&pod_name) && spec.renew_time? != spec.acquire_time?).then_some(())
    })
    .await;

    // Deleting removes the remotes. A failing delete is retried, and the repeated Warning
    // becomes one Event with a series (a patch of events.k8s.io).
    emu.set_faults(FaultConfig {
        rules: vec![FaultRule::on(Endpoint::DeleteAutomation).with_error(1.0, 503)],
    });
    let mut delete = cp.kubectl();
    delete.args([
        "delete",
        "-n",
        team,
        "--wait=false",
        "-f",
        &format!("{EXAMPLES}/automation.yaml"),
    ]);
    succeed(delete, None).await;
    let events: Api<K8sEvent> = Api::namespaced(admin.clone(), team);
    wait_for("a repeated Warning Event", WAIT, || async {
        let list = events.list(&ListParams::default()).await.ok()?;
        list.items
            .into_iter()
            .find(|e| {
                e.regarding.as_ref().and_then(|r| r.name.as_deref()) == Some("nightly-reload")
                    && e.type_.as_deref() == Some("Warning")
                    && e.series.as_ref().is_some_and(|s| s.count >= 2)
            })
            .map(|_| ())
    })
    .await;
    assert!(remote_names(&emu).contains("Nightly reload"));
    emu.set_faults(FaultConfig::default());
    let mut delete = cp.kubectl();
    delete.args([
        "delete",
        "-n",
        team,
        "--timeout=60s",
        "-f",
        &format!("{EXAMPLES}/settings.yaml"),
    ]);
    succeed(delete, None).await;
    let mut delete = cp.kubectl();
    delete.args([
        "delete",
        "-n",
        team,
        "--timeout=60s",
        "-k",
        &format!("{EXAMPLES}/workspace-from-configmap"),
    ]);
    succeed(delete, None).await;
    wait_for("every remote deleted", WAIT, || async {
        emu.automations().is_empty().then_some(())
    })
    .await;
    wait_for("every QlikAutomation gone", WAIT, || async {
        automations
            .list(&ListParams::default())
            .await
            .ok()?
            .items
            .is_empty()
            .then_some(())
    })
    .await;
    assert!(op.is_running(), "{}", op.log());
    op.kill();

    // The audit log: every permission the chart grants was used, nothing was refused.
    let user = format!("system:serviceaccount:{ops}:{account}");
    let audit = cp.audit_events(&user);
    let refused: Vec<&Value> = audit
        .iter()
        .filter(|e| e["responseStatus"]["code"] == 403)
        .collect();
    assert!(refused.is_empty(), "refused requests: {refused:#?}");
    let used: Permissions = audit
        .iter()
        .filter(|e| e["objectRef"]["resource"].is_string())
        .map(|e| {
            let r = &e["objectRef"];
            let resource = match r["subresource"].as_str() {
                Some(sub) => format!("{}/{sub}", r["resource"].as_str().unwrap()),
                None => r["resource"].as_str().unwrap().to_string(),
            };
            (
                r["apiGroup"].as_str().unwrap_or_default().to_string(),
                resource,
                e["verb"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    let cluster_role = Api::<ClusterRole>::all(admin.clone())
        .get(&name)
        .await
        .unwrap();
    let lease_role = Api::<Role>::namespaced(admin.clone(), ops)
        .get(&format!("{name}-leader-election"))
        .await
        .unwrap();
    let mut grants = granted(&serde_json::to_value(&cluster_role.rules).unwrap());
    grants.extend(granted(&serde_json::to_value(&lease_role.rules).unwrap()));
    let unused: Vec<_> = grants.difference(&used).collect();
    let ungranted: Vec<_> = used.difference(&grants).collect();
    assert!(
        unused.is_empty() && ungranted.is_empty(),
        "granted but never used: {unused:?}\nused but not granted: {ungranted:?}"
    );

    // `helm uninstall` removes the operator's RBAC and keeps the CRDs (and so every object).
    let mut uninstall = cp.helm();
    uninstall.args(["uninstall", &release, "--namespace", ops]);
    succeed(uninstall, None).await;
    assert!(
        Api::<ClusterRole>::all(admin.clone())
            .get_opt(&name)
            .await
            .unwrap()
            .is_none()
    );
    for crd in [
        "qlikautomations.automations.qlik.dev",
        "qlikautomationsettings.automations.qlik.dev",
    ] {
        assert!(crds.get_opt(crd).await.unwrap().is_some(), "{crd} kept");
    }
    // Reinstalling the same release adopts the kept CRDs.
    let mut reinstall = cp.helm();
    reinstall
        .args(["install", &release, CHART, "--namespace", ops])
        .args(sets);
    succeed(reinstall, None).await;
}
