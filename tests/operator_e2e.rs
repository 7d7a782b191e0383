//! End-to-end: the operator binary against a real kube-apiserver and the emulator. Every test
//! asserts both what Kubernetes shows and what the tenant (the emulator) holds.

// Tests state what must hold with unwrap/expect; the crate's lints forbid them elsewhere.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::time::Duration;

use kube::{
    Api, ResourceExt,
    api::{DeleteParams, ListParams, Patch, PatchParams},
};
use qlik_automations_operator::{
    crd::{ConditionStatus, QlikAutomation, QlikAutomationSettings},
    qlik::{self, Endpoint, Tier},
};
use serde_json::{Value, json};

use support::control_plane::ControlPlane;
use support::operator::{
    ADMIN_KEY, Operator, TestNamespace, USER_ID, USER_KEY, admin_client, automation_yaml, emulator,
    events_for, ready_status, remotes_named, setup, wait_for, wait_ready, wait_reason,
};

const WAIT: Duration = Duration::from_secs(60);

fn remote<'a>(emu: &'a [Value], id: &str) -> Option<&'a Value> {
    emu.iter().find(|a| a["id"] == id)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_manifest_becomes_a_remote_automation_and_reports_ready() {
    let (ns, emu, _op) = setup("create", USER_KEY, &[]).await;
    let api: Api<QlikAutomation> = ns.api();
    ns.apply_yaml::<QlikAutomation>(&automation_yaml("nightly", "  name: Nightly load"))
        .await;

    // `kubectl wait` is how users and pipelines wait; it must return.
    let cp = ControlPlane::shared();
    let out = cp
        .kubectl()
        .args([
            "wait",
            "-n",
            &ns.name,
            "--for=condition=Ready",
            "qlikautomation/nightly",
            "--timeout=60s",
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "kubectl wait: {}",
        String::from_utf8_lossy(&out.stderr)
    );

    let a = wait_ready(&api, "nightly").await;
    let status = a.status.clone().unwrap();
    let id = status.automation_id.clone().expect("status.automationId");
    assert_eq!(a.annotations()["automations.qlik.dev/automation-id"], id);
    assert_eq!(status.state.as_deref(), Some("available"));
    assert_eq!(status.run_mode.as_deref(), Some("scheduled"));
    assert_eq!(status.owner_id.as_deref(), Some(USER_ID));
    assert!(
        a.finalizers()
            .contains(&"automations.qlik.dev/cleanup".to_string())
    );

    let all = emu.automations();
    assert_eq!(all.len(), 1);
    let r = remote(&all, &id).unwrap();
    assert_eq!(r["name"], "Nightly load");
    assert_eq!(r["description"], "managed by e2e");
    assert_eq!(r["schedules"][0]["interval"], 3600);
    assert_eq!(r["schedules"][0]["timezone"], "Europe/Stockholm");
    assert_eq!(r["workspace"]["blocks"][0]["type"], "StartBlock");

    // `kubectl get -o wide` shows the columns filled in from the tenant.
    let out = cp
        .kubectl()
        .args(["get", "qlikautomations", "-n", &ns.name, "-o", "wide"])
        .output()
        .unwrap();
    let table = String::from_utf8_lossy(&out.stdout);
    assert!(
        table.contains("AUTOMATION ID") && table.contains(&id),
        "{table}"
    );
    assert!(
        table.contains("scheduled") && table.contains("True"),
        "{table}"
    );
    assert!(
        events_for(&ns, "nightly")
            .await
            .iter()
            .any(|(r, _)| r == "Created")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_spec_change_is_one_update_and_then_quiet() {
    let (ns, emu, _op) = setup("update", USER_KEY, &[]).await;
    let api: Api<QlikAutomation> = ns.api();
    ns.apply_yaml::<QlikAutomation>(&automation_yaml("report", ""))
        .await;
    let a = wait_ready(&api, "report").await;
    let id = a.status.unwrap().automation_id.unwrap();
    // Let the operator settle, then count from a clean slate.
    tokio::time::sleep(Duration::from_secs(3)).await;
    emu.reset_counters();

    api.patch(
        "report",
        &PatchParams::default(),
        &Patch::Merge(json!({"spec": {"description": "changed", "schedules": [{"startAt": "2020-01-01 00:00:00", "interval": 7200, "timezone": "UTC"}]}})),
    )
    .await
    .unwrap();
    wait_for("the change in the tenant", WAIT, || async {
        let all = emu.automations();
        let r = remote(&all, &id)?;
        (r["description"] == "changed" && r["schedules"][0]["interval"] == 7200).then_some(())
    })
    .await;
    wait_ready(&api, "report").await;
    // Several resyncs pass (resync is 3 s in tests): no further writes.
    tokio::time::sleep(Duration::from_secs(10)).await;
    let counters = emu.counters();
    assert_eq!(
        counters.endpoint(Endpoint::UpdateAutomation),
        1,
        "{counters:?}"
    );
    assert_eq!(counters.writes(), 1, "{counters:?}");
    assert_eq!(counters.rate_limited, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn enabled_false_disables_and_true_enables() {
    let (ns, emu, _op) = setup("enable", USER_KEY, &[]).await;
    let api: Api<QlikAutomation> = ns.api();
    ns.apply_yaml::<QlikAutomation>(&automation_yaml("toggle", "  enabled: false"))
        .await;
    let a = wait_ready(&api, "toggle").await;
    let id = a.status.clone().unwrap().automation_id.unwrap();
    assert_eq!(a.status.unwrap().state.as_deref(), Some("disabled"));
    assert_eq!(
        remote(&emu.automations(), &id).unwrap()["state"],
        "disabled"
    );

    api.patch(
        "toggle",
        &PatchParams::default(),
        &Patch::Merge(json!({"spec": {"enabled": true}})),
    )
    .await
    .unwrap();
    wait_for("enabled in the tenant", WAIT, || async {
        (remote(&emu.automations(), &id)?["state"] == "available").then_some(())
    })
    .await;
    let a = wait_ready(&api, "toggle").await;
    assert_eq!(a.status.unwrap().state.as_deref(), Some("available"));
    assert!(emu.counters().endpoint(Endpoint::EnableAutomation) >= 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deletion_policy_delete_removes_and_orphan_keeps() {
    let (ns, emu, _op) = setup("delete", USER_KEY, &[]).await;
    let api: Api<QlikAutomation> = ns.api();
    ns.apply_yaml::<QlikAutomation>(&automation_yaml("gone", ""))
        .await;
    ns.apply_yaml::<QlikAutomation>(&automation_yaml("kept", "  deletionPolicy: Orphan"))
        .await;
    let gone = wait_ready(&api, "gone")
        .await
        .status
        .unwrap()
        .automation_id
        .unwrap();
    let kept = wait_ready(&api, "kept")
        .await
        .status
        .unwrap()
        .automation_id
        .unwrap();

    for name in ["gone", "kept"] {
        api.delete(name, &DeleteParams::default()).await.unwrap();
    }
    for name in ["gone", "kept"] {
        wait_for(&format!("{name} to disappear"), WAIT, || async {
            api.get_opt(name).await.ok()?.is_none().then_some(())
        })
        .await;
    }
    let all = emu.automations();
    assert!(remote(&all, &gone).is_none(), "Delete removed the remote");
    assert!(remote(&all, &kept).is_some(), "Orphan kept the remote");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn adopting_by_annotation_creates_nothing() {
    let (ns, emu, _op) = setup("adopt", USER_KEY, &[]).await;
    let client = qlik::QlikClient::new(qlik::ClientConfig::new(
        emu.base_url(),
        qlik::ApiKey::new(USER_KEY),
    ))
    .unwrap();
    let existing = client
        .create_automation(&qlik::model::AutomationRequest {
            name: Some("legacy".into()),
            description: Some("made by hand".into()),
            ..Default::default()
        })
        .await
        .unwrap();
    emu.reset_counters();
    let yaml = automation_yaml("legacy", "  name: legacy").replace(
        "  name: legacy\nspec:",
        &format!(
            "  name: legacy\n  annotations:\n    automations.qlik.dev/automation-id: {}\nspec:",
            existing.id
        ),
    );
    ns.apply_yaml::<QlikAutomation>(&yaml).await;
    let a = wait_ready(&ns.api(), "legacy").await;
    assert_eq!(
        a.status.unwrap().automation_id.as_deref(),
        Some(existing.id.as_str())
    );
    assert_eq!(emu.counters().endpoint(Endpoint::CreateAutomation), 0);
    let all = emu.automations();
    assert_eq!(all.len(), 1);
    assert_eq!(
        all[0]["description"], "managed by e2e",
        "the spec now rules the adopted remote"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn out_of_band_edits_are_set_back_and_deletes_recreated() {
    let (ns, emu, _op) = setup("drift", USER_KEY, &[]).await;
    let api: Api<QlikAutomation> = ns.api();
    ns.apply_yaml::<QlikAutomation>(&automation_yaml("drifty", ""))
        .await;
    let id = wait_ready(&api, "drifty")
        .await
        .status
        .unwrap()
        .automation_id
        .unwrap();
    let admin = qlik::QlikClient::new(qlik::ClientConfig::new(
        emu.base_url(),
        qlik::ApiKey::new(ADMIN_KEY),
    ))
    .unwrap();

    // Someone edits the description in the Qlik UI.
    admin
        .update_automation(
            &id,
            &qlik::model::AutomationRequest {
                description: Some("edited by hand".into()),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    wait_for("the edit to be set back", WAIT, || async {
        (remote(&emu.automations(), &id)?["description"] == "managed by e2e").then_some(())
    })
    .await;

    // Someone deletes it.
    admin.delete_automation(&id).await.unwrap();
    let recreated = wait_for("a new remote", WAIT, || async {
        let a = api.get("drifty").await.ok()?;
        let new_id = a.status.as_ref()?.automation_id.clone()?;
        (new_id != id && ready_status(&a)?.0 == ConditionStatus::True).then_some(new_id)
    })
    .await;
    assert_eq!(remotes_named(&emu, "drifty").len(), 1);
    assert!(remote(&emu.automations(), &recreated).is_some());
    let events = events_for(&ns, "drifty").await;
    assert!(
        events
            .iter()
            .any(|(r, m)| r == "RemoteDeleted" && m.contains(&id)),
        "{events:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn run_requests_start_exactly_one_run_per_token() {
    let (ns, emu, _op) = setup("runs", USER_KEY, &[]).await;
    let api: Api<QlikAutomation> = ns.api();
    ns.apply_yaml::<QlikAutomation>(&automation_yaml("runner", "  runInputs:\n    answer: 42"))
        .await;
    let id = wait_ready(&api, "runner")
        .await
        .status
        .unwrap()
        .automation_id
        .unwrap();

    for token in ["first", "second"] {
        api.patch(
            "runner",
            &PatchParams::default(),
            &Patch::Merge(json!({"metadata": {"annotations": {"automations.qlik.dev/run-requested-at": token}}})),
        )
        .await
        .unwrap();
        let a = wait_for("the run to finish", WAIT, || async {
            let a = api.get("runner").await.ok()?;
            let s = a.status.clone()?;
            (s.last_handled_run_request.as_deref() == Some(token)
                && s.last_run.as_ref()?.status.as_deref() == Some("finished"))
            .then_some(a)
        })
        .await;
        let s = a.status.unwrap();
        assert_eq!(s.last_run_status.as_deref(), Some("finished"));
        assert!(s.last_run_at.is_some());
    }
    // Reconciles keep happening; still exactly two runs.
    tokio::time::sleep(Duration::from_secs(5)).await;
    let client = qlik::QlikClient::new(qlik::ClientConfig::new(
        emu.base_url(),
        qlik::ApiKey::new(USER_KEY),
    ))
    .unwrap();
    let runs = client
        .list_runs_page(&id, &qlik::ListParams::default().limit(200))
        .await
        .unwrap();
    // The automation's hourly schedule may also start a run when the test spans the hour:
    // the operator's are the API runs.
    let requested: Vec<_> = runs
        .data
        .iter()
        .filter(|r| r.context == Some(qlik::model::RunContext::Api))
        .collect();
    assert_eq!(requested.len(), 2, "{:?}", runs.data);
    let run = client.get_run(&id, &requested[0].id).await.unwrap();
    assert_eq!(run.inputs, Some(json!({"answer": 42})));
    assert_eq!(emu.counters().endpoint(Endpoint::CreateRun), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_credentials_are_unauthorized_without_hammering() {
    let (ns, emu, _op) = setup("unauth", "not-a-valid-key", &[]).await;
    let api: Api<QlikAutomation> = ns.api();
    for i in 0..5 {
        ns.apply_yaml::<QlikAutomation>(&automation_yaml(&format!("denied-{i}"), ""))
            .await;
    }
    let a = wait_reason(&api, "denied-0", "Unauthorized").await;
    let (status, _, _) = ready_status(&a).unwrap();
    assert_eq!(status, ConditionStatus::False);
    let message = &a.status.unwrap().conditions[0].message;
    assert!(!message.contains("not-a-valid-key"), "{message}");
    tokio::time::sleep(Duration::from_secs(60)).await;
    let total = emu.counters().total;
    // One list per view refresh at most, shared by all five objects, and backed off.
    assert!(total <= 12, "{total} requests in a minute");
    assert!(emu.automations().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn settings_toggle_the_tenant_and_a_second_object_conflicts() {
    let (ns, emu, _op) = setup("settings", ADMIN_KEY, &[]).await;
    let api: Api<QlikAutomationSettings> = ns.api();
    let yaml = |name: &str, enabled: bool| {
        format!(
            "apiVersion: automations.qlik.dev/v1alpha1\nkind: QlikAutomationSettings\nmetadata:\n  name: {name}\nspec:\n  connection:\n    secretRef:\n      name: qlik\n  automationsEnabled: {enabled}\n"
        )
    };
    ns.apply_yaml::<QlikAutomationSettings>(&yaml("tenant", false))
        .await;
    // automationsEnabled is the v1 generation's setting, as the connection here.
    let mut config = qlik::ClientConfig::new(emu.base_url(), qlik::ApiKey::new(ADMIN_KEY));
    config.api = qlik::Api::V1;
    let admin = qlik::QlikClient::new(config).unwrap();
    wait_for("automations disabled in the tenant", WAIT, || async {
        (admin.get_settings().await.ok()?.automations_enabled == Some(false)).then_some(())
    })
    .await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    ns.apply_yaml::<QlikAutomationSettings>(&yaml("second", true))
        .await;
    let second = wait_for("the second to conflict", WAIT, || async {
        let s = api.get("second").await.ok()?;
        let c = s
            .status
            .as_ref()?
            .conditions
            .iter()
            .find(|c| c.type_ == "Ready")?
            .clone();
        (c.reason == "Conflict").then_some(c)
    })
    .await;
    assert_eq!(second.status, ConditionStatus::False);
    tokio::time::sleep(Duration::from_secs(4)).await;
    assert_eq!(
        admin.get_settings().await.unwrap().automations_enabled,
        Some(false),
        "the conflicting object wrote nothing"
    );

    api.patch(
        "tenant",
        &PatchParams::default(),
        &Patch::Merge(json!({"spec": {"automationsEnabled": true}})),
    )
    .await
    .unwrap();
    wait_for("automations enabled again", WAIT, || async {
        (admin.get_settings().await.ok()?.automations_enabled == Some(true)).then_some(())
    })
    .await;
    let first = api.get("tenant").await.unwrap();
    assert_eq!(first.status.unwrap().automations_enabled, Some(true));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killing_the_operator_mid_create_leaves_exactly_fifty() {
    let ns = TestNamespace::new("crash").await;
    // Slow creates widen the window in which a kill lands between POST and annotation.
    let emu = emulator(|_| {}).await;
    emu.set_faults(qlik_automations_operator::emulator::FaultConfig {
        rules: vec![
            qlik_automations_operator::emulator::FaultRule::on(Endpoint::CreateAutomation)
                .with_latency_ms(50, 400),
        ],
    });
    ns.connection_secret("qlik", &emu.base_url(), USER_KEY)
        .await;
    let mut op = Operator::start(&ns.name, &[]);
    let api: Api<QlikAutomation> = ns.api();
    for i in 0..50 {
        ns.apply_yaml::<QlikAutomation>(&automation_yaml(&format!("bulk-{i:02}"), ""))
            .await;
    }
    for _ in 0..4 {
        tokio::time::sleep(Duration::from_millis(1500)).await;
        op.kill();
        op.restart();
    }
    wait_for("all 50 Ready", Duration::from_secs(180), || async {
        let list = api.list(&ListParams::default()).await.ok()?;
        (list.items.len() == 50
            && list
                .items
                .iter()
                .all(|a| ready_status(a).is_some_and(|r| r.0 == ConditionStatus::True)))
        .then_some(())
    })
    .await;
    let all = emu.automations();
    assert_eq!(all.len(), 50, "exactly 50 remotes, no duplicates");
    let mut names: Vec<String> = all
        .iter()
        .map(|a| a["name"].as_str().unwrap().to_owned())
        .collect();
    names.sort();
    names.dedup();
    assert_eq!(names.len(), 50);
    let _ = Tier::Tier2;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_manifests_are_refused_naming_the_field() {
    let ns = TestNamespace::new("invalid").await;
    let api: Api<QlikAutomation> = ns.api();
    let cases = [
        (
            "  schedules:\n    - startAt: \"2026-13-01 00:00:00\"\n      interval: 60\n      timezone: UTC",
            "spec.schedules[0].startAt",
        ),
        (
            "  schedules:\n    - startAt: \"2026-01-01 00:00:00\"\n      interval: 0\n      timezone: UTC",
            "spec.schedules[0].interval",
        ),
        (
            "  schedules:\n    - startAt: \"2026-01-01 00:00:00\"\n      interval: 60",
            "timezone",
        ),
        ("  deletionPolicy: Keep", "spec.deletionPolicy"),
        (
            "  workspaceFrom:\n    configMapKeyRef:\n      name: ws\n      key: ws.json",
            "workspaceFrom",
        ),
        (
            "  connection:\n    secretRef:\n      name: qlik\n      namespace: other",
            "namespace",
        ),
    ];
    for (i, (extra, field)) in cases.iter().enumerate() {
        let yaml = format!(
            "apiVersion: automations.qlik.dev/v1alpha1\nkind: QlikAutomation\nmetadata:\n  name: bad-{i}\nspec:\n  workspace: {{}}\n{extra}\n"
        );
        let obj: QlikAutomation = match serde_yaml::from_str(&yaml) {
            Ok(o) => o,
            Err(_) => {
                // Not even our own types accept it; send it raw.
                let value: Value = serde_yaml::from_str(&yaml).unwrap();
                let dynamic: kube::api::DynamicObject = serde_json::from_value(value).unwrap();
                let ar = kube::api::ApiResource::erase::<QlikAutomation>(&());
                let raw: Api<kube::api::DynamicObject> =
                    Api::namespaced_with(ns.client.clone(), &ns.name, &ar);
                let err = raw.create(&Default::default(), &dynamic).await.unwrap_err();
                assert!(err.to_string().contains(field), "case {i}: {err}");
                continue;
            }
        };
        let err = api.create(&Default::default(), &obj).await.unwrap_err();
        assert!(err.to_string().contains(field), "case {i}: {err}");
    }
    // copyFrom cannot change after creation.
    let yaml = "apiVersion: automations.qlik.dev/v1alpha1\nkind: QlikAutomation\nmetadata:\n  name: copied\nspec:\n  copyFrom: source-id\n  suspend: true\n";
    ns.apply_yaml::<QlikAutomation>(yaml).await;
    let err = api
        .patch(
            "copied",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"copyFrom": "other-id"}})),
        )
        .await
        .unwrap_err();
    assert!(err.to_string().contains("copyFrom"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_examples_become_ready() {
    let ns = TestNamespace::new("examples").await;
    let emu = emulator(|_| {}).await;
    // The examples speak the default generation (workflows), as examples/secret.yaml does.
    ns.secret(
        "qlik-tenant",
        &[("tenantUrl", &emu.base_url()), ("apiKey", ADMIN_KEY)],
    )
    .await;
    let _op = Operator::start(&ns.name, &[]);
    let cp = ControlPlane::shared();
    let examples = concat!(env!("CARGO_MANIFEST_DIR"), "/examples");
    for args in [
        vec!["apply", "-f", "automation.yaml"],
        vec!["apply", "-f", "settings.yaml"],
        vec!["apply", "-k", "workspace-from-configmap"],
    ] {
        let out = cp
            .kubectl()
            .current_dir(examples)
            .args(&args)
            .args(["-n", &ns.name])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "kubectl {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let api: Api<QlikAutomation> = ns.api();
    let nightly = wait_ready(&api, "nightly-reload").await;
    let webhook = wait_ready(&api, "webhook-sync").await;
    assert_eq!(
        webhook.status.as_ref().unwrap().run_mode.as_deref(),
        Some("webhook")
    );
    let settings: Api<QlikAutomationSettings> = ns.api();
    wait_for("settings Ready", WAIT, || async {
        let s = settings.get("tenant-settings").await.ok()?;
        (s.status?
            .conditions
            .iter()
            .any(|c| c.type_ == "Ready" && c.status == ConditionStatus::True))
        .then_some(())
    })
    .await;
    let all = emu.automations();
    assert_eq!(all.len(), 2);
    let id = nightly.status.unwrap().automation_id.unwrap();
    assert_eq!(remote(&all, &id).unwrap()["name"], "Nightly reload");
    let hook = remote(
        &all,
        webhook
            .status
            .as_ref()
            .unwrap()
            .automation_id
            .as_deref()
            .unwrap(),
    )
    .unwrap();
    assert_eq!(
        hook["connectorIds"][0],
        "0d87808f-27c0-11ea-921c-022e6b5ea1e2"
    );

    // A change to the ConfigMap is applied to the remote workspace.
    let maps: Api<k8s_openapi::api::core::v1::ConfigMap> = ns.api();
    let ws = json!({"blocks": [{"id": "start", "type": "StartBlock", "runMode": "triggered"}]});
    maps.patch(
        "webhook-sync-workspace",
        &PatchParams::default(),
        &Patch::Merge(json!({"data": {"workspace.json": ws.to_string()}})),
    )
    .await
    .unwrap();
    let hook_id = webhook.status.unwrap().automation_id.unwrap();
    wait_for("the ConfigMap change in the tenant", WAIT, || async {
        (remote(&emu.automations(), &hook_id)?["runMode"] == "triggered").then_some(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn copy_from_creates_a_copy_and_converges_the_rest() {
    let (ns, emu, _op) = setup("copy", USER_KEY, &[]).await;
    let user = qlik::QlikClient::new(qlik::ClientConfig::new(
        emu.base_url(),
        qlik::ApiKey::new(USER_KEY),
    ))
    .unwrap();
    let source = user
        .create_automation(&qlik::model::AutomationRequest {
            name: Some("template".into()),
            workspace: Some(
                json!({"blocks": [{"id": "s", "type": "StartBlock", "runMode": "webhook"}]}),
            ),
            ..Default::default()
        })
        .await
        .unwrap();
    let yaml = format!(
        "apiVersion: automations.qlik.dev/v1alpha1\nkind: QlikAutomation\nmetadata:\n  name: copied\nspec:\n  connection:\n    secretRef:\n      name: qlik\n  copyFrom: {}\n  description: from a template\n",
        source.id
    );
    ns.apply_yaml::<QlikAutomation>(&yaml).await;
    let a = wait_ready(&ns.api(), "copied").await;
    let id = a.status.unwrap().automation_id.unwrap();
    assert_ne!(id, source.id);
    let counters = emu.counters();
    assert_eq!(counters.endpoint(Endpoint::CopyAutomation), 1);
    assert_eq!(
        counters.endpoint(Endpoint::CreateAutomation),
        1,
        "only the test's own create"
    );
    let all = emu.automations();
    let copy = remote(&all, &id).unwrap();
    assert_eq!(copy["name"], "copied");
    assert_eq!(copy["description"], "from a template");
    assert_eq!(
        copy["workspace"]["blocks"][0]["runMode"], "webhook",
        "the workspace came from the source"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn owner_moves_with_an_admin_key_and_is_refused_with_a_plain_one() {
    // With the admin key the move happens and the operator still sees the automation.
    let (ns, emu, _op) = setup("move", ADMIN_KEY, &[]).await;
    ns.apply_yaml::<QlikAutomation>(&automation_yaml("moved", &format!("  ownerId: {USER_ID}")))
        .await;
    let a = wait_ready(&ns.api(), "moved").await;
    let status = a.status.unwrap();
    assert_eq!(status.owner_id.as_deref(), Some(USER_ID));
    assert_eq!(
        remote(&emu.automations(), status.automation_id.as_deref().unwrap()).unwrap()["ownerId"],
        USER_ID
    );

    // With a plain key the tenant refuses the move: Forbidden, and the remote stays put.
    let (ns2, emu2, _op2) = setup("nomove", USER_KEY, &[]).await;
    ns2.apply_yaml::<QlikAutomation>(&automation_yaml("stays", "  ownerId: someone-else"))
        .await;
    let a = wait_reason(&ns2.api(), "stays", "Forbidden").await;
    let message = a.status.unwrap().conditions[0].message.clone();
    assert!(message.contains("spec.ownerId"), "{message}");
    let all = emu2.automations();
    assert_eq!(all.len(), 1, "no second remote");
    assert_eq!(all[0]["ownerId"], USER_ID);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn suspend_stops_all_writes() {
    let (ns, emu, _op) = setup("suspend", USER_KEY, &[]).await;
    let api: Api<QlikAutomation> = ns.api();
    ns.apply_yaml::<QlikAutomation>(&automation_yaml("paused", ""))
        .await;
    let id = wait_ready(&api, "paused")
        .await
        .status
        .unwrap()
        .automation_id
        .unwrap();
    api.patch(
        "paused",
        &PatchParams::default(),
        &Patch::Merge(json!({"spec": {"suspend": true, "description": "not yet"}})),
    )
    .await
    .unwrap();
    let a = wait_reason(&api, "paused", "Suspended").await;
    assert_eq!(ready_status(&a).unwrap().0, ConditionStatus::False);
    emu.reset_counters();
    // An out-of-band edit is not set back while suspended, and nothing is written.
    admin_client(&emu)
        .update_automation(
            &id,
            &qlik::model::AutomationRequest {
                description: Some("by hand".into()),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_secs(8)).await;
    assert_eq!(emu.counters().writes(), 1, "only the test's own edit");
    assert_eq!(
        remote(&emu.automations(), &id).unwrap()["description"],
        "by hand"
    );
    // Resuming applies the spec.
    api.patch(
        "paused",
        &PatchParams::default(),
        &Patch::Merge(json!({"spec": {"suspend": false}})),
    )
    .await
    .unwrap();
    wait_for("the spec applied after resume", WAIT, || async {
        (remote(&emu.automations(), &id)?["description"] == "not yet").then_some(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flux_reconcile_request_is_handled_and_recorded() {
    let (ns, emu, _op) = setup("flux", ADMIN_KEY, &[]).await;
    let api: Api<QlikAutomation> = ns.api();
    ns.apply_yaml::<QlikAutomation>(&automation_yaml("fluxed", ""))
        .await;
    wait_ready(&api, "fluxed").await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let gets_before = emu.counters().endpoint(Endpoint::GetAutomation);
    api.patch(
        "fluxed",
        &PatchParams::default(),
        &Patch::Merge(json!({"metadata": {"annotations": {"reconcile.fluxcd.io/requestedAt": "2026-11-29T12:00:00Z"}}})),
    )
    .await
    .unwrap();
    let a = wait_for("the request handled", WAIT, || async {
        let a = api.get("fluxed").await.ok()?;
        (a.status.as_ref()?.last_handled_reconcile_at.as_deref() == Some("2026-11-29T12:00:00Z"))
            .then_some(a)
    })
    .await;
    assert_eq!(ready_status(&a).unwrap().0, ConditionStatus::True);
    assert!(
        emu.counters().endpoint(Endpoint::GetAutomation) > gets_before,
        "a full reconcile fetched the remote"
    );

    // Usage (readable with an admin key) appears in status once a run happened.
    api.patch(
        "fluxed",
        &PatchParams::default(),
        &Patch::Merge(
            json!({"metadata": {"annotations": {"automations.qlik.dev/run-requested-at": "one"}}}),
        ),
    )
    .await
    .unwrap();
    let usage = wait_for("usage in status", WAIT, || async {
        let usage = api.get("fluxed").await.ok()?.status?.usage?;
        (usage.runs == 1).then_some(usage)
    })
    .await;
    assert!(usage.window.starts_with("since "), "{usage:?}");
    assert!(usage.bandwidth_in > 0, "{usage:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_default_connection_serves_objects_without_one() {
    let ns = TestNamespace::new("defconn").await;
    let emu = emulator(|_| {}).await;
    ns.connection_secret("shared-tenant", &emu.base_url(), USER_KEY)
        .await;
    let _op = Operator::start(
        &ns.name,
        &[
            "--default-connection",
            &format!("{}/shared-tenant", ns.name),
        ],
    );
    let yaml = automation_yaml("defaulted", "")
        .replace("  connection:\n    secretRef:\n      name: qlik\n", "");
    ns.apply_yaml::<QlikAutomation>(&yaml).await;
    let a = wait_ready(&ns.api(), "defaulted").await;
    assert_eq!(a.status.unwrap().owner_id.as_deref(), Some(USER_ID));
    assert_eq!(remotes_named(&emu, "defaulted").len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn leader_election_keeps_one_writer_and_fails_over() {
    let ns = TestNamespace::new("leader").await;
    let emu = emulator(|_| {}).await;
    ns.connection_secret("qlik", &emu.base_url(), USER_KEY)
        .await;
    let args = [
        "--leader-election",
        "--lease-namespace",
        &ns.name,
        "--lease-name",
        "qao-test",
    ];
    let mut first = Operator::start(&ns.name, &args);
    let leases: Api<k8s_openapi::api::coordination::v1::Lease> = ns.api();
    let holder = wait_for("a leader", WAIT, || async {
        leases.get("qao-test").await.ok()?.spec?.holder_identity
    })
    .await;
    let _second = Operator::start(&ns.name, &args);
    let api: Api<QlikAutomation> = ns.api();
    ns.apply_yaml::<QlikAutomation>(&automation_yaml("led", ""))
        .await;
    wait_ready(&api, "led").await;
    assert_eq!(emu.counters().endpoint(Endpoint::CreateAutomation), 1);

    // The leader dies without releasing the Lease; the standby takes over once it expires.
    first.kill();
    ns.apply_yaml::<QlikAutomation>(&automation_yaml("after-failover", ""))
        .await;
    wait_ready(&api, "after-failover").await;
    let new_holder = leases
        .get("qao-test")
        .await
        .unwrap()
        .spec
        .unwrap()
        .holder_identity
        .unwrap();
    assert_ne!(new_holder, holder);
    assert_eq!(
        emu.automations().len(),
        2,
        "one remote per object, no duplicates"
    );
}

/// An operator with `--leader-election` on Lease `lease` in `namespace`, as its own child
/// process so that a leader test can send it SIGTERM and read its exit status. `POD_NAME` is
/// `name`, so its Lease identity starts with `name-`. Killed when dropped.
struct Candidate {
    child: std::process::Child,
    log: std::path::PathBuf,
}

impl Candidate {
    fn start(namespace: &str, lease: &str, name: &str) -> Candidate {
        let dir = std::env::temp_dir().join("qao-e2e-logs");
        std::fs::create_dir_all(&dir).unwrap();
        let log = dir.join(format!(
            "{}.log",
            support::control_plane::unique_name(&format!("{namespace}-{name}"))
        ));
        let out = std::fs::File::create(&log).unwrap();
        let child = std::process::Command::new(env!("CARGO_BIN_EXE_qlik-automations-operator"))
            .args(["run", "--namespaces", namespace, "--listen", "127.0.0.1:0"])
            .args(["--resync-seconds", "3", "--view-max-age-seconds", "1"])
            .args(["--leader-election", "--lease-namespace", namespace])
            .args(["--lease-name", lease])
            .env("KUBECONFIG", ControlPlane::shared().kubeconfig_path())
            .env("RUST_LOG", "info,qlik_automations_operator=debug,kube=warn")
            .env("POD_NAME", name)
            .stdin(std::process::Stdio::null())
            .stdout(out.try_clone().unwrap())
            .stderr(out)
            .spawn()
            .unwrap();
        Candidate { child, log }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Sends SIGTERM, as the kubelet does when it stops a Pod.
    fn terminate(&self) {
        let sent = std::process::Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(sent.success(), "kill -TERM failed");
    }

    /// Waits until the process exits by itself and returns its status.
    async fn exited(&mut self, timeout: Duration) -> std::process::ExitStatus {
        let child = &mut self.child;
        wait_for("the operator to exit", timeout, || {
            let status = child.try_wait().unwrap();
            async move { status }
        })
        .await
    }
}

impl Drop for Candidate {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The holder of Lease `name` once it starts with `prefix-`.
async fn wait_for_holder(
    leases: &Api<k8s_openapi::api::coordination::v1::Lease>,
    name: &str,
    prefix: &str,
) -> String {
    wait_for(&format!("{prefix} to hold the Lease"), WAIT, || async {
        leases
            .get_opt(name)
            .await
            .ok()??
            .spec?
            .holder_identity
            .filter(|h| h.starts_with(&format!("{prefix}-")))
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn leader_releases_the_lease_on_sigterm_and_the_standby_takes_over_at_once() {
    use futures::{StreamExt, TryStreamExt};
    use k8s_openapi::{
        api::coordination::v1::{Lease, LeaseSpec},
        apimachinery::pkg::apis::meta::v1::MicroTime,
        jiff::SignedDuration,
    };
    use kube::api::{WatchEvent, WatchParams};
    const LEASE: &str = "qao-release";

    let ns = TestNamespace::new("leader-release").await;
    let emu = emulator(|_| {}).await;
    ns.connection_secret("qlik", &emu.base_url(), USER_KEY)
        .await;
    let leases: Api<Lease> = ns.api();
    let mut first = Candidate::start(&ns.name, LEASE, "first");
    let holder = wait_for_holder(&leases, LEASE, "first").await;
    let second = Candidate::start(&ns.name, LEASE, "second");
    wait_for("the standby to wait for the Lease", WAIT, || async {
        second
            .log()
            .contains("waiting to become leader")
            .then_some(())
    })
    .await;
    let api: Api<QlikAutomation> = ns.api();
    ns.apply_yaml::<QlikAutomation>(&automation_yaml("before-release", ""))
        .await;
    wait_ready(&api, "before-release").await;

    // The Lease as last read before SIGTERM: without a release, nobody could take it before
    // its renewTime + leaseDurationSeconds (a later renew only moves that further out).
    let before = leases.get(LEASE).await.unwrap();
    let held = before.spec.clone().unwrap();
    assert_eq!(held.holder_identity.as_deref(), Some(holder.as_str()));
    let MicroTime(renewed) = held.renew_time.unwrap();
    let expires = renewed + SignedDuration::from_secs(held.lease_duration_seconds.unwrap().into());

    // Every version of the Lease after `before`, in order, until the standby holds it.
    let mut events = leases
        .watch(
            &WatchParams::default()
                .fields(&format!("metadata.name={LEASE}"))
                .timeout(60),
            &before.resource_version().unwrap(),
        )
        .await
        .unwrap()
        .boxed();
    first.terminate();
    let mut versions: Vec<LeaseSpec> = Vec::new();
    tokio::time::timeout(WAIT, async {
        while let Some(event) = events.try_next().await.unwrap() {
            if let WatchEvent::Modified(lease) = event {
                let spec = lease.spec.unwrap_or_default();
                let second_holds = spec
                    .holder_identity
                    .as_deref()
                    .is_some_and(|h| h.starts_with("second-"));
                versions.push(spec);
                if second_holds {
                    return;
                }
            }
        }
        panic!("the watch ended before the standby took over: {versions:#?}");
    })
    .await
    .unwrap_or_else(|_| panic!("the standby did not take over: {versions:#?}"));

    // The leader cleared the holder (client-go's release), and the standby took the Lease
    // from that released version, not from an expired one.
    let [.., released, taken] = versions.as_slice() else {
        panic!("no release before the takeover: {versions:#?}");
    };
    assert_eq!(
        released.holder_identity.as_deref().unwrap_or_default(),
        "",
        "the leader cleared holderIdentity: {versions:#?}"
    );
    assert_eq!(released.lease_duration_seconds, Some(1));
    let MicroTime(acquired) = taken.acquire_time.clone().unwrap();
    assert!(
        acquired < expires,
        "the standby took over at {acquired}, before the released Lease would have expired at {expires}"
    );
    assert_eq!(
        taken.lease_transitions,
        Some(held.lease_transitions.unwrap_or(0) + 1)
    );
    let new_holder = taken.holder_identity.clone().unwrap();
    wait_for("the standby to log that it leads", WAIT, || async {
        let log = second.log();
        (log.contains("became leader") && log.contains(&new_holder)).then_some(())
    })
    .await;

    // The old leader stopped cleanly: released, then exit status 0.
    let status = first.exited(Duration::from_secs(30)).await;
    let log = first.log();
    assert!(status.success(), "{status}: {log}");
    assert!(log.contains("released the leader Lease"), "{log}");
    assert!(log.contains("operator stopped"), "{log}");

    // A standby that is still waiting for the Lease stops at once on SIGTERM, too.
    let mut third = Candidate::start(&ns.name, LEASE, "third");
    wait_for("the third to wait for the Lease", WAIT, || async {
        third
            .log()
            .contains("waiting to become leader")
            .then_some(())
    })
    .await;
    third.terminate();
    let status = third.exited(Duration::from_secs(10)).await;
    let log = third.log();
    assert!(status.success(), "{status}: {log}");
    assert!(
        log.contains("stopped while waiting to become leader"),
        "{log}"
    );

    // The new leader reconciles.
    ns.apply_yaml::<QlikAutomation>(&automation_yaml("after-release", ""))
        .await;
    wait_ready(&api, "after-release").await;
    assert_eq!(
        emu.automations().len(),
        2,
        "one remote per object, no duplicates"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_leader_that_loses_the_lease_stops_and_exits_non_zero() {
    use k8s_openapi::{
        api::coordination::v1::Lease, apimachinery::pkg::apis::meta::v1::MicroTime, jiff::Timestamp,
    };
    use kube::api::PostParams;
    const LEASE: &str = "qao-loss";

    let ns = TestNamespace::new("leader-loss").await;
    let emu = emulator(|_| {}).await;
    ns.connection_secret("qlik", &emu.base_url(), USER_KEY)
        .await;
    let leases: Api<Lease> = ns.api();
    let mut leader = Candidate::start(&ns.name, LEASE, "leader");
    wait_for_holder(&leases, LEASE, "leader").await;
    let api: Api<QlikAutomation> = ns.api();
    ns.apply_yaml::<QlikAutomation>(&automation_yaml("before-loss", ""))
        .await;
    wait_ready(&api, "before-loss").await;

    // Someone else writes itself into the live Lease (retrying if a renew comes in between).
    let taken = loop {
        let mut lease = leases.get(LEASE).await.unwrap();
        let spec = lease.spec.as_mut().unwrap();
        let now = MicroTime(Timestamp::now());
        spec.holder_identity = Some("intruder".into());
        spec.acquire_time = Some(now.clone());
        spec.renew_time = Some(now);
        spec.lease_duration_seconds = Some(300);
        match leases.replace(LEASE, &PostParams::default(), &lease).await {
            Ok(lease) => break lease,
            Err(kube::Error::Api(e)) if e.code == 409 => continue,
            Err(e) => panic!("overwriting the Lease: {e}"),
        }
    };

    // The old leader notices at its next renew, stops its controllers and exits non-zero.
    let status = leader.exited(Duration::from_secs(30)).await;
    let log = leader.log();
    assert!(!status.success(), "{status}: {log}");
    assert!(log.contains("lost the leader Lease to intruder"), "{log}");
    assert!(
        log.contains("operator stopped: lost the leader Lease to intruder"),
        "it stops through the graceful path: {log}"
    );
    assert!(log.contains("stopped reconciling"), "{log}");
    // It neither took the Lease back nor released the intruder's.
    let after = leases.get(LEASE).await.unwrap();
    assert_eq!(after.resource_version(), taken.resource_version());
    assert_eq!(
        after.spec.unwrap().holder_identity.as_deref(),
        Some("intruder")
    );
    assert_eq!(
        remotes_named(&emu, "before-loss").len(),
        1,
        "the tenant is as the leader left it"
    );
}
