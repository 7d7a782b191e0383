//! End-to-end: what GitOps tools conclude from the objects this operator writes, computed by
//! the real thing — kstatus (sigs.k8s.io/cli-utils, what Flux's health checks use) and
//! Argo CD's health scripts run by gopher-lua (the interpreter Argo CD embeds), through the
//! Go helpers in `tests/health/`. Every reason the operator sets on a live object must map
//! to the kstatus result the README's GitOps table says.

// Tests state what must hold with unwrap/expect; the crate's lints forbid them elsewhere.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::{
    collections::BTreeMap,
    io::Write,
    path::PathBuf,
    process::{Command, Stdio},
    sync::OnceLock,
    time::Duration,
};

use qlik_automations_operator::{
    crd::{QlikAutomation, QlikAutomationSettings},
    emulator::{FaultConfig, FaultRule},
};

use support::{
    control_plane::ControlPlane,
    operator::{
        ADMIN_KEY, Operator, TestNamespace, USER_KEY, admin_client, automation_yaml, emulator,
        wait_for,
    },
};

const WAIT: Duration = Duration::from_secs(90);

/// The directory holding the `kstatus` and `argo-health` helpers, built once.
fn health_bin() -> &'static PathBuf {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| {
        let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/health/build.sh");
        let out = Command::new("bash").arg(script).output().unwrap();
        assert!(
            out.status.success(),
            "tests/health/build.sh failed:\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let stdout = String::from_utf8_lossy(&out.stdout);
        PathBuf::from(stdout.lines().last().unwrap().trim())
    })
}

/// Runs a helper with `input` on stdin and returns its stdout.
fn run_helper(args: &[&str], input: &[u8]) -> String {
    let (bin, rest) = args.split_first().unwrap();
    let mut child = Command::new(health_bin().join(bin))
        .args(rest)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(input).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{args:?} failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// `kubectl get KIND -n NS -o json`.
fn kubectl_json(ns: &str, kind: &str) -> Vec<u8> {
    let out = ControlPlane::shared()
        .kubectl()
        .args(["get", kind, "-n", ns, "-o", "json"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

/// kstatus's result for every object of `kind` in `ns`, by name.
fn kstatus(ns: &str, kind: &str) -> BTreeMap<String, String> {
    run_helper(&["kstatus"], &kubectl_json(ns, kind))
        .lines()
        .filter_map(|l| {
            let mut parts = l.splitn(3, ' ');
            let name = parts.next()?.rsplit('/').next()?.to_owned();
            Some((name, parts.next()?.to_owned()))
        })
        .collect()
}

/// Argo CD's health of one object, from the health script in `examples/argocd/`.
fn argo_health(kind: &str, object: &serde_json::Value) -> String {
    let script = format!(
        "{}/examples/argocd/resource_customizations/automations.qlik.dev/{kind}/health.lua",
        env!("CARGO_MANIFEST_DIR")
    );
    let out = run_helper(
        &["argo-health", "run", &script],
        &serde_json::to_vec(object).unwrap(),
    );
    out.split('\t').next().unwrap_or_default().trim().to_owned()
}

/// The README's GitOps table: the kstatus result for each reason it lists.
fn readme_kstatus_by_reason() -> BTreeMap<String, String> {
    let readme =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md")).unwrap();
    let table = readme
        .split("## GitOps")
        .nth(1)
        .expect("README has a GitOps section");
    let mut out = BTreeMap::new();
    for row in table.lines().take_while(|l| !l.starts_with("### ")) {
        let cells: Vec<&str> = row.split('|').map(str::trim).collect();
        if cells.len() < 7 || !cells[5].starts_with('`') || !cells[1].starts_with('`') {
            continue;
        }
        let Some(kstatus) = cells[5].split('`').nth(1) else {
            continue;
        };
        let kstatus = kstatus.to_owned();
        // The reasons are the code spans before the row's first colon.
        let reasons = cells[1].split(':').next().unwrap_or_default();
        for reason in reasons.split('`').skip(1).step_by(2) {
            out.insert(reason.to_owned(), kstatus.clone());
        }
    }
    out
}

/// The object's Ready reason, or `RunInProgress` while `Reconciling` says so.
fn reason_of(object: &serde_json::Value) -> Option<String> {
    let conditions = object["status"]["conditions"].as_array()?;
    let find = |t: &str| conditions.iter().find(|c| c["type"] == t);
    if find("Reconciling").is_some_and(|c| c["status"] == "True" && c["reason"] == "RunInProgress")
    {
        return Some("RunInProgress".into());
    }
    find("Ready")?["reason"].as_str().map(str::to_owned)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_reason_maps_to_the_documented_kstatus_and_argo_cd_health() {
    let expected_kstatus = readme_kstatus_by_reason();
    for reason in [
        "Synced",
        "RunInProgress",
        "Suspended",
        "TransientError",
        "InvalidSpec",
        "Unauthorized",
        "NotFound",
        "Conflict",
        "ConnectionError",
        "Drifted",
        "Observed",
        "UnsupportedByApi",
    ] {
        assert!(
            expected_kstatus.contains_key(reason),
            "the README's GitOps table does not list {reason}: {expected_kstatus:?}"
        );
    }
    let argo_by_kstatus = |reason: &str, kstatus: &str| match (reason, kstatus) {
        ("Suspended", _) => "Suspended",
        ("RunInProgress", _) => "Healthy",
        (_, "Current") => "Healthy",
        (_, "InProgress") => "Progressing",
        _ => "Degraded",
    };

    let ns = TestNamespace::new("gitops").await;
    let emu = emulator(|c| c.run_duration = Duration::from_secs(600)).await;
    let down = emulator(|c| {
        c.faults = FaultConfig::with_rules(vec![FaultRule::all().with_error(1.0, 503)]);
    })
    .await;
    ns.connection_secret("qlik", &emu.base_url(), ADMIN_KEY)
        .await;
    ns.connection_secret("wrong-key", &emu.base_url(), "not-a-key")
        .await;
    ns.connection_secret("down", &down.base_url(), USER_KEY)
        .await;
    let _op = Operator::start(&ns.name, &[]);
    let existing = admin_client(&emu)
        .create_automation(&qlik_automations_operator::qlik::model::AutomationRequest {
            name: Some("made by hand".into()),
            ..Default::default()
        })
        .await
        .unwrap();

    let watched = admin_client(&emu)
        .create_automation(&qlik_automations_operator::qlik::model::AutomationRequest {
            name: Some("watched by hand".into()),
            ..Default::default()
        })
        .await
        .unwrap();
    let with_secret = |name: &str, secret: &str, extra: &str| {
        automation_yaml(name, extra)
            .replace("      name: qlik\n", &format!("      name: {secret}\n"))
    };
    let annotated = |name: &str, id: &str| {
        automation_yaml(name, "").replace(
            &format!("  name: {name}\nspec:"),
            &format!("  name: {name}\n  annotations:\n    automations.qlik.dev/automation-id: {id}\nspec:"),
        )
    };
    let manifests = [
        automation_yaml("synced", ""),
        automation_yaml("suspended", "  suspend: true"),
        annotated("running", &existing.id).replace(
            "  name: running\n  annotations:\n",
            "  name: running\n  annotations:\n    automations.qlik.dev/run-requested-at: \"1\"\n",
        ),
        with_secret("transient", "down", ""),
        // Admission cannot know February has no 30th; the tenant refuses it.
        automation_yaml("invalid", "").replace("2020-01-01 00:00:00", "2031-02-30 00:00:00"),
        with_secret("unauthorized", "wrong-key", ""),
        annotated("not-found", "00000000-0000-4000-8000-00000000beef"),
        // Claims the remote `running` claimed first ("running" < "sharing" breaks a tie).
        annotated("sharing", &existing.id),
        with_secret("no-connection", "no-such-secret", ""),
        // Observed, and differing from the spec (description, workspace, ...).
        annotated("drifted", &watched.id)
            .replace("spec:\n", "spec:\n  managementPolicy: Observe\n"),
        // `qlik` is a v1 connection, which has no spaces.
        automation_yaml("unsupported", "  spaceId: team-a"),
    ];
    for m in &manifests {
        ns.apply_yaml::<QlikAutomation>(m).await;
    }
    ns.apply_yaml::<QlikAutomationSettings>(
        "apiVersion: automations.qlik.dev/v1alpha1\nkind: QlikAutomationSettings\nmetadata:\n  name: tenant\nspec:\n  connection:\n    secretRef:\n      name: qlik\n  automationsEnabled: true\n",
    )
    .await;

    // Wait until every object reports the reason it is there for.
    let wanted: BTreeMap<&str, &str> = [
        ("synced", "Synced"),
        ("suspended", "Suspended"),
        ("running", "RunInProgress"),
        ("transient", "TransientError"),
        ("invalid", "InvalidSpec"),
        ("unauthorized", "Unauthorized"),
        ("not-found", "NotFound"),
        ("sharing", "Conflict"),
        ("no-connection", "ConnectionError"),
        ("drifted", "Drifted"),
        ("unsupported", "UnsupportedByApi"),
    ]
    .into();
    let objects = wait_for("every object at its reason", WAIT, || async {
        let list: serde_json::Value =
            serde_json::from_slice(&kubectl_json(&ns.name, "qlikautomations")).ok()?;
        let items = list["items"].as_array()?.clone();
        let reached = items.iter().all(|o| {
            let name = o["metadata"]["name"].as_str().unwrap_or_default();
            let current = o["status"]["observedGeneration"] == o["metadata"]["generation"];
            current && reason_of(o).as_deref() == wanted.get(name).copied()
        });
        (reached && items.len() == wanted.len()).then_some(items)
    })
    .await;

    let computed = kstatus(&ns.name, "qlikautomations");
    for object in &objects {
        let name = object["metadata"]["name"].as_str().unwrap();
        let reason = reason_of(object).unwrap();
        let want = &expected_kstatus[&reason];
        assert_eq!(
            computed.get(name),
            Some(want),
            "{name} ({reason}): kstatus says {:?}, the README says {want}",
            computed.get(name)
        );
        let argo = argo_health("QlikAutomation", object);
        assert_eq!(argo, argo_by_kstatus(&reason, want), "{name} ({reason})");
    }

    let settings: serde_json::Value =
        serde_json::from_slice(&kubectl_json(&ns.name, "qlikautomationsettings")).unwrap();
    let settings = &settings["items"][0];
    wait_for("the settings Ready", WAIT, || async {
        let s = kstatus(&ns.name, "qlikautomationsettings");
        (s.get("tenant").map(String::as_str) == Some("Current")).then_some(())
    })
    .await;
    let settings_now: serde_json::Value =
        serde_json::from_slice(&kubectl_json(&ns.name, "qlikautomationsettings")).unwrap();
    assert_eq!(
        argo_health("QlikAutomationSettings", &settings_now["items"][0]),
        "Healthy",
        "{settings}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_readme_installs_the_argo_cd_health_checks_from_the_files() {
    let cp = ControlPlane::shared();
    let root = env!("CARGO_MANIFEST_DIR");
    let readme = std::fs::read_to_string(format!("{root}/README.md")).unwrap();
    let section = readme.split("### Argo CD").nth(1).unwrap();
    let block = section
        .split("```sh\n")
        .nth(1)
        .and_then(|b| b.split("\n```").next())
        .filter(|b| b.contains("argocd-cm"))
        .expect("the Argo CD section shows the argocd-cm command");
    // An Argo CD installation's ConfigMap, with a setting of its own that must survive.
    let kubectl = |args: &[&str]| {
        let out = cp.kubectl().args(args).output().unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        out.stdout
    };
    kubectl(&["create", "namespace", "argocd"]);
    kubectl(&[
        "-n",
        "argocd",
        "create",
        "configmap",
        "argocd-cm",
        "--from-literal=url=https://argo.example",
    ]);
    let path = format!(
        "{}:{}",
        cp.kubectl_path().parent().unwrap().display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let out = Command::new("bash")
        .args(["-euo", "pipefail", "-c", block])
        .current_dir(root)
        .env("PATH", path)
        .env("KUBECONFIG", cp.kubeconfig_path())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{block}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let cm: serde_json::Value = serde_json::from_slice(&kubectl(&[
        "-n",
        "argocd",
        "get",
        "configmap",
        "argocd-cm",
        "-o",
        "json",
    ]))
    .unwrap();
    assert_eq!(cm["data"]["url"], "https://argo.example");
    for kind in ["QlikAutomation", "QlikAutomationSettings"] {
        let file = std::fs::read_to_string(format!(
            "{root}/examples/argocd/resource_customizations/automations.qlik.dev/{kind}/health.lua"
        ))
        .unwrap();
        assert_eq!(
            cm["data"][format!("resource.customizations.health.automations.qlik.dev_{kind}")],
            file.as_str(),
            "{kind}"
        );
    }
}
