//! The chart installed for real: the image built by `tests/image/build.sh` loaded into the
//! containerd of a one-node cluster (`tests/node/up.sh`: kubelet, kube-proxy,
//! kube-controller-manager and kube-scheduler from the pinned Kubernetes), `helm install`ed
//! with the chart's defaults plus only what this machine needs (the image is loaded, not
//! pulled), and watched: the operator's own Pod becomes Ready through its readiness probe,
//! runs as 65532 on a read-only root filesystem, reaches the apiserver through the
//! `kubernetes` Service and the emulator through the node's address, reconciles an
//! automation, names itself in Events, answers `/metrics` through its Service, rolls on
//! `helm upgrade` with exactly one leader handing the Lease over, and leaves the CRDs, the
//! objects and the remote automations on `helm uninstall`.
//!
//! One test: the node is machine-wide (its iptables chains), so only one runs at a time.

// Tests state what must hold with unwrap/expect; the crate's lints forbid them elsewhere.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::{
    path::{Path, PathBuf},
    process::Command,
    time::Duration,
};

use k8s_openapi::{
    api::{
        apps::v1::Deployment,
        coordination::v1::Lease,
        core::v1::{Namespace, Pod},
        events::v1::Event,
    },
    apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition,
};
use kube::{
    Api, Client, ResourceExt,
    api::{ListParams, ObjectMeta, PostParams},
};
use qlik_automations_operator::{crd::QlikAutomation, emulator::RunningEmulator};
use support::{
    chart::succeed,
    control_plane::ControlPlane,
    exposition,
    operator::{ADMIN_KEY, automation_yaml, emulator, remotes_named, secret_with, wait_for},
};

const CHART: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/charts/qlik-automations-operator"
);
const RELEASE: &str = "qao";
const OPS: &str = "qao-system";
const APPS: &str = "team-a";
/// Long enough for a cold Pod start on a busy 2-core machine.
const POD_WAIT: Duration = Duration::from_secs(240);

/// Runs `tests/image/build.sh` (it rebuilds only what changed) and returns the OCI archive.
fn image_archive() -> PathBuf {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/image/build.sh");
    let out = Command::new(&script)
        .stderr(std::process::Stdio::inherit())
        .output()
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", script.display()));
    assert!(out.status.success(), "{} failed", script.display());
    let stdout = String::from_utf8_lossy(&out.stdout);
    let path = PathBuf::from(
        stdout
            .lines()
            .last()
            .expect("build.sh printed nothing")
            .trim(),
    );
    assert!(
        path.is_file(),
        "build.sh named {} which is no file",
        path.display()
    );
    path
}

/// The image reference the chart's defaults resolve to: `image.repository` and the chart's
/// appVersion, as the kubelet asks containerd for it (Docker Hub's normalised name).
fn chart_image() -> String {
    let values: serde_yaml::Value =
        serde_yaml::from_str(&std::fs::read_to_string(format!("{CHART}/values.yaml")).unwrap())
            .unwrap();
    let chart: serde_yaml::Value =
        serde_yaml::from_str(&std::fs::read_to_string(format!("{CHART}/Chart.yaml")).unwrap())
            .unwrap();
    let repository = values["image"]["repository"].as_str().unwrap();
    let tag = chart["appVersion"].as_str().unwrap();
    format!("docker.io/library/{repository}:{tag}")
}

/// The node's `ctr` (its own containerd socket, the `k8s.io` namespace) with `args`.
fn ctr(cp: &ControlPlane, args: &[&str]) -> String {
    let env = node_env(cp);
    let mut words = env["QAO_NODE_CTR"].split_whitespace();
    let mut cmd = Command::new(words.next().unwrap());
    cmd.args(words).args(args);
    let out = cmd.output().unwrap();
    assert!(
        out.status.success(),
        "ctr {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn node_env(cp: &ControlPlane) -> std::collections::HashMap<String, String> {
    std::fs::read_to_string(cp.dir().join("node.env"))
        .unwrap()
        .lines()
        .filter_map(|l| {
            let (k, v) = l.strip_prefix("export ")?.split_once('=')?;
            Some((k.to_owned(), v.trim_matches('\'').to_owned()))
        })
        .collect()
}

/// Loads the archive into the node's containerd under the name the chart asks for.
fn load_image(cp: &ControlPlane, archive: &Path, wanted: &str) {
    ctr(cp, &["images", "import", &archive.display().to_string()]);
    let names = ctr(cp, &["images", "ls", "-q"]);
    if names.lines().any(|n| n == wanted) {
        return;
    }
    let short = wanted.trim_start_matches("docker.io/library/");
    let imported = names
        .lines()
        .find(|n| n.ends_with(short))
        .unwrap_or_else(|| panic!("the archive held no {short}; containerd has:\n{names}"));
    ctr(cp, &["images", "tag", imported, wanted]);
}

/// The Pods of the release, by creation.
async fn operator_pods(client: &Client) -> Vec<Pod> {
    let pods: Api<Pod> = Api::namespaced(client.clone(), OPS);
    let mut list = pods
        .list(&ListParams::default().labels(&format!("app.kubernetes.io/instance={RELEASE}")))
        .await
        .unwrap()
        .items;
    list.retain(|p| p.metadata.deletion_timestamp.is_none());
    list.sort_by_key(|p| p.metadata.creation_timestamp.clone().map(|t| t.0));
    list
}

fn pod_ready(pod: &Pod) -> bool {
    pod.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|cs| cs.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
}

/// Waits until exactly `n` Pods of the release exist, all Ready, none of them in `not`.
async fn ready_pods(client: &Client, n: usize, not: &[String]) -> Vec<Pod> {
    wait_for(&format!("{n} Ready operator Pods"), POD_WAIT, || async {
        let pods = operator_pods(client).await;
        (pods.len() == n
            && pods.iter().all(pod_ready)
            && pods.iter().all(|p| !not.contains(&p.name_any())))
        .then_some(pods)
    })
    .await
}

/// The container's main process as the node runs it: its pid on this machine.
fn container_pid(cp: &ControlPlane, pod: &Pod) -> u32 {
    let id = pod
        .status
        .as_ref()
        .unwrap()
        .container_statuses
        .as_ref()
        .unwrap()[0]
        .container_id
        .clone()
        .unwrap();
    let id = id.trim_start_matches("containerd://");
    let tasks = ctr(cp, &["tasks", "ls"]);
    let line = tasks
        .lines()
        .find(|l| l.starts_with(id))
        .unwrap_or_else(|| panic!("no task {id} in\n{tasks}"));
    line.split_whitespace().nth(1).unwrap().parse().unwrap()
}

/// `GET path` through the apiserver (its Service and Pod proxies), as text.
async fn raw(cp: &ControlPlane, path: &str) -> String {
    let mut cmd = cp.kubectl();
    cmd.args(["get", "--raw", path]);
    succeed(cmd, None).await
}

async fn lease_holder(client: &Client) -> Option<String> {
    let leases: Api<Lease> = Api::namespaced(client.clone(), OPS);
    let lease = leases
        .get_opt("qao-qlik-automations-operator")
        .await
        .unwrap()?;
    lease.spec?.holder_identity.filter(|h| !h.is_empty())
}

/// The Pod whose name the Lease holder starts with (the identity is `<pod>-<random>`).
fn holder_pod<'a>(holder: &str, pods: &'a [Pod]) -> Option<&'a Pod> {
    pods.iter()
        .find(|p| holder.starts_with(&format!("{}-", p.name_any())))
}

/// `helm upgrade` of the release with its values and `set` on top, waiting for the roll.
async fn helm_upgrade(cp: &ControlPlane, set: &str) {
    let mut upgrade = cp.helm();
    upgrade.args([
        "upgrade",
        RELEASE,
        CHART,
        "--namespace",
        OPS,
        "--reuse-values",
        "--set",
        set,
        "--wait",
        "--timeout",
        "4m",
    ]);
    succeed(upgrade, None).await;
}

/// The `leader` gauge of each Pod, scraped through the apiserver's Pod proxy.
async fn leader_gauges(cp: &ControlPlane, pods: &[Pod]) -> Vec<f64> {
    let mut gauges = Vec::new();
    for pod in pods {
        let text = raw(
            cp,
            &format!(
                "/api/v1/namespaces/{OPS}/pods/{}:8080/proxy/metrics",
                pod.name_any()
            ),
        )
        .await;
        gauges.push(sum_of(&text, "qlik_automations_operator_leader"));
    }
    gauges
}

/// The sum of the samples named `name` in a text exposition.
fn sum_of(text: &str, name: &str) -> f64 {
    exposition::parse(text)
        .iter()
        .filter(|s| s.name == name)
        .map(|s| s.value)
        .sum()
}

async fn apply_automation(client: &Client, name: &str) {
    let obj: QlikAutomation = serde_yaml::from_str(&automation_yaml(name, "")).unwrap();
    Api::<QlikAutomation>::namespaced(client.clone(), APPS)
        .create(&PostParams::default(), &obj)
        .await
        .unwrap();
}

async fn wait_automation_ready(client: &Client, name: &str) -> QlikAutomation {
    let api: Api<QlikAutomation> = Api::namespaced(client.clone(), APPS);
    wait_for(&format!("{name} Ready"), POD_WAIT, || async {
        let obj = api.get(name).await.ok()?;
        support::operator::ready_status(&obj)
            .is_some_and(|(s, _, _)| s == qlik_automations_operator::crd::ConditionStatus::True)
            .then_some(obj)
    })
    .await
}

/// The reporting instances of the Events about automation `name`.
async fn event_instances(client: &Client, name: &str) -> Vec<String> {
    Api::<Event>::namespaced(client.clone(), APPS)
        .list(&ListParams::default())
        .await
        .unwrap()
        .items
        .into_iter()
        .filter(|e| e.regarding.as_ref().and_then(|r| r.name.as_deref()) == Some(name))
        .filter_map(|e| e.reporting_instance)
        .collect()
}

fn remote_count(emu: &RunningEmulator, names: &[&str]) -> usize {
    names.iter().map(|n| remotes_named(emu, n).len()).sum()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_chart_runs_the_operator_pod_on_a_real_node() {
    qlik_automations_operator::install_crypto_provider();
    let archive = image_archive();
    let cp = ControlPlane::start_node().unwrap_or_else(|e| panic!("the node did not start:\n{e}"));
    let client = cp.kube_client().await;
    let node_ip = node_env(&cp)["QAO_NODE_IP"].clone();
    let image = chart_image();
    load_image(&cp, &archive, &image);

    // The emulator listens on the node's address: Pods reach it as they would reach a tenant.
    let emu = emulator(|c| c.listen = format!("{node_ip}:0").parse().unwrap()).await;
    let tenant_url = format!("http://{node_ip}:{}", emu.addr().port());
    for ns in [OPS, APPS] {
        Api::<Namespace>::all(client.clone())
            .create(
                &PostParams::default(),
                &Namespace {
                    metadata: ObjectMeta {
                        name: Some(ns.into()),
                        ..Default::default()
                    },
                    ..Default::default()
                },
            )
            .await
            .unwrap();
    }
    secret_with(
        &client,
        APPS,
        "qlik",
        &[("tenantUrl", &tenant_url), ("apiKey", ADMIN_KEY)],
    )
    .await;

    // The chart's defaults; the image is in the node already and is never pulled.
    let mut install = cp.helm();
    install.args([
        "install",
        RELEASE,
        CHART,
        "--namespace",
        OPS,
        "--set",
        "image.pullPolicy=Never",
        "--wait",
        "--timeout",
        "4m",
    ]);
    succeed(install, None).await;

    // Ready through its readiness probe, as 65532 on a read-only root filesystem.
    let pods = ready_pods(&client, 1, &[]).await;
    let first = &pods[0];
    let spec = first.spec.as_ref().unwrap();
    let container = &spec.containers[0];
    assert_eq!(
        container.image.as_deref(),
        Some(image.trim_start_matches("docker.io/library/"))
    );
    let probe = container
        .readiness_probe
        .as_ref()
        .expect("the chart sets a readiness probe");
    assert_eq!(
        probe.http_get.as_ref().unwrap().path.as_deref(),
        Some("/readyz")
    );
    let pid = container_pid(&cp, first);
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let uids = status.lines().find(|l| l.starts_with("Uid:")).unwrap();
    assert_eq!(
        uids.split_whitespace().skip(1).collect::<Vec<_>>(),
        ["65532"; 4],
        "the operator's process must run as 65532: {uids}"
    );
    let mountinfo = std::fs::read_to_string(format!("/proc/{pid}/mountinfo")).unwrap();
    let root = mountinfo
        .lines()
        .find(|l| l.split_whitespace().nth(4) == Some("/"))
        .unwrap();
    let options = root.split_whitespace().nth(5).unwrap();
    assert!(
        options.split(',').any(|o| o == "ro"),
        "the root filesystem must be read-only: {root}"
    );

    // An automation applied now becomes Ready against the emulator, reconciled by that Pod.
    apply_automation(&client, "nightly").await;
    let nightly = wait_automation_ready(&client, "nightly").await;
    let id = nightly.status.unwrap().automation_id.unwrap();
    assert!(
        remotes_named(&emu, "nightly")
            .iter()
            .any(|r| r["id"] == id.as_str()),
        "the remote behind the status exists"
    );
    let instances = event_instances(&client, "nightly").await;
    assert!(
        !instances.is_empty() && instances.iter().all(|i| i == &first.name_any()),
        "Events name the Pod {}: {instances:?}",
        first.name_any()
    );

    // /metrics through the Service's port, by the apiserver's Service proxy.
    let metrics = raw(
        &cp,
        &format!("/api/v1/namespaces/{OPS}/services/qao-qlik-automations-operator-metrics:metrics/proxy/metrics"),
    )
    .await;
    assert!(
        sum_of(&metrics, "qlik_automations_operator_remote_writes_total") >= 1.0,
        "the Service's /metrics counts the create:\n{metrics}"
    );

    // `kubectl qlik status` reads the operator's own count of the budget from its Pod.
    let mut status = tokio::process::Command::new(env!("CARGO_BIN_EXE_kubectl-qlik"));
    status
        .args(["status", "nightly", "--namespace", APPS])
        .env("KUBECONFIG", cp.kubeconfig_path())
        .env_remove("QAO_DEFAULT_CONNECTION");
    let out = support::plugin::run(&mut status, "kubectl-qlik status")
        .await
        .ok();
    let line = out
        .stdout
        .lines()
        .find(|l| l.starts_with("Operator use:"))
        .unwrap_or_else(|| panic!("no operator use line:\n{}", out.stdout));
    let tier2 = line
        .split("; ")
        .find(|t| {
            t.trim_start_matches("Operator use:")
                .trim()
                .starts_with("tier2 ")
        })
        .unwrap_or_else(|| panic!("no tier2 in {line}"));
    let used: u32 = tier2
        .split_whitespace()
        .nth(1)
        .and_then(|f| f.split('/').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no used/limit in {tier2}"));
    assert!(
        used >= 1,
        "the create counts in the operator's window: {line}"
    );
    assert!(
        line.contains("0 429s in the last hour")
            && line.ends_with(&format!("(metrics of {OPS}/{})", first.name_any())),
        "{line}"
    );

    // helm upgrade to two replicas: leader election turns on, the Pods roll, one leads.
    helm_upgrade(&cp, "replicaCount=2").await;
    let old = vec![first.name_any()];
    let pair = ready_pods(&client, 2, &old).await;
    let holder = wait_for("a Lease holder among the new Pods", POD_WAIT, || async {
        let holder = lease_holder(&client).await?;
        holder_pod(&holder, &pair).map(|_| holder)
    })
    .await;
    let leaders = leader_gauges(&cp, &pair).await;
    assert_eq!(
        leaders.iter().filter(|g| **g == 1.0).count(),
        1,
        "exactly one of two replicas leads: {leaders:?}"
    );

    // A changed value rolls the Pods again; the Lease goes from an old Pod to a new one.
    helm_upgrade(&cp, "logLevel=debug").await;
    let old: Vec<String> = pair.iter().map(|p| p.name_any()).collect();
    let rolled = ready_pods(&client, 2, &old).await;
    let new_holder = wait_for("the Lease handed to a new Pod", POD_WAIT, || async {
        let holder = lease_holder(&client).await?;
        holder_pod(&holder, &rolled).map(|_| holder)
    })
    .await;
    assert_ne!(new_holder, holder, "the Lease changed hands");
    let leaders = leader_gauges(&cp, &rolled).await;
    assert_eq!(
        leaders.iter().filter(|g| **g == 1.0).count(),
        1,
        "exactly one leader after the roll: {leaders:?}"
    );
    let leader = holder_pod(&new_holder, &rolled).unwrap().name_any();
    apply_automation(&client, "hourly").await;
    wait_automation_ready(&client, "hourly").await;
    let instances = event_instances(&client, "hourly").await;
    assert!(
        !instances.is_empty() && instances.iter().all(|i| i == &leader),
        "the new leader {leader} reconciles: {instances:?}"
    );

    // helm uninstall: the operator goes; the CRDs, the objects and the remotes stay.
    let before = remote_count(&emu, &["nightly", "hourly"]);
    assert_eq!(before, 2);
    let mut uninstall = cp.helm();
    uninstall.args([
        "uninstall",
        RELEASE,
        "--namespace",
        OPS,
        "--wait",
        "--timeout",
        "4m",
    ]);
    succeed(uninstall, None).await;
    wait_for("the operator's Pods gone", POD_WAIT, || async {
        operator_pods(&client).await.is_empty().then_some(())
    })
    .await;
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), OPS);
    assert!(
        deployments
            .list(&ListParams::default())
            .await
            .unwrap()
            .items
            .is_empty()
    );
    let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
    for crd in [
        "qlikautomations.automations.qlik.dev",
        "qlikautomationsettings.automations.qlik.dev",
    ] {
        assert!(crds.get_opt(crd).await.unwrap().is_some(), "{crd} kept");
    }
    let kept = Api::<QlikAutomation>::namespaced(client.clone(), APPS)
        .list(&ListParams::default())
        .await
        .unwrap();
    assert_eq!(kept.items.len(), 2, "the objects stay");
    assert_eq!(
        remote_count(&emu, &["nightly", "hourly"]),
        before,
        "the remotes stay"
    );

    drop(cp);
}
