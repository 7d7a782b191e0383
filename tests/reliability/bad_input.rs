//! Bad input: refused at admission naming the field, or by the tenant with its detail in the
//! condition and without a retry storm.

use std::{collections::BTreeMap, process::Stdio, time::Duration};

use k8s_openapi::api::core::v1::ConfigMap;
use kube::{
    Api,
    api::{Patch, PatchParams, PostParams},
};
use qlik_automations_operator::{
    crd::{QlikAutomation, QlikAutomationSettings},
    qlik::Endpoint,
};
use serde_json::{Value, json};

use crate::{
    scaled,
    specs::{automation_spec_with, dynamic, dynamic_api, refusal, schedule_with},
    start_operator,
    support::{
        control_plane::ControlPlane,
        operator::{
            DEBUG_LOG, TestNamespace, USER_KEY, emulator, ready_status, wait_ready, wait_reason,
        },
    },
};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admission_refuses_invalid_manifests_naming_the_field() {
    let ns = TestNamespace::new("admission").await;
    let automations = dynamic_api::<QlikAutomation>(&ns.client, &ns.name);
    let settings = dynamic_api::<QlikAutomationSettings>(&ns.client, &ns.name);
    let s0 = "spec.schedules[0]";
    let long = |n: usize| "x".repeat(n);
    // (what is wrong, the spec, the field path the refusal must name)
    let cases: Vec<(&str, Value, String)> = vec![
        (
            "month 13",
            automation_spec_with(
                json!({"schedules": [schedule_with(json!({"startAt": "2031-13-01 00:00:00"}))]}),
            ),
            format!("{s0}.startAt"),
        ),
        (
            "ISO time instead of YYYY-MM-DD HH:MM:SS",
            automation_spec_with(
                json!({"schedules": [schedule_with(json!({"startAt": "2031-01-01T00:00:00Z"}))]}),
            ),
            format!("{s0}.startAt"),
        ),
        (
            "hour 24",
            automation_spec_with(
                json!({"schedules": [schedule_with(json!({"startAt": "2031-01-01 24:00:00"}))]}),
            ),
            format!("{s0}.startAt"),
        ),
        (
            "startAt a number",
            automation_spec_with(
                json!({"schedules": [schedule_with(json!({"startAt": 20310101}))]}),
            ),
            format!("{s0}.startAt"),
        ),
        (
            "startAt missing",
            automation_spec_with(json!({"schedules": [schedule_with(json!({"startAt": null}))]})),
            format!("{s0}.startAt"),
        ),
        (
            "single-digit stopAt",
            automation_spec_with(
                json!({"schedules": [schedule_with(json!({"stopAt": "2032-1-1 00:00:00"}))]}),
            ),
            format!("{s0}.stopAt"),
        ),
        (
            "stopAt before startAt",
            automation_spec_with(
                json!({"schedules": [schedule_with(json!({"stopAt": "2030-01-01 00:00:00"}))]}),
            ),
            format!("{s0}.stopAt"),
        ),
        (
            "interval 0",
            automation_spec_with(json!({"schedules": [schedule_with(json!({"interval": 0}))]})),
            format!("{s0}.interval"),
        ),
        (
            "negative interval",
            automation_spec_with(json!({"schedules": [schedule_with(json!({"interval": -3600}))]})),
            format!("{s0}.interval"),
        ),
        (
            "interval a string",
            automation_spec_with(
                json!({"schedules": [schedule_with(json!({"interval": "3600"}))]}),
            ),
            format!("{s0}.interval"),
        ),
        (
            "interval a fraction",
            automation_spec_with(json!({"schedules": [schedule_with(json!({"interval": 1.5}))]})),
            format!("{s0}.interval"),
        ),
        (
            "timezone missing",
            automation_spec_with(json!({"schedules": [schedule_with(json!({"timezone": null}))]})),
            format!("{s0}.timezone"),
        ),
        (
            "timezone with a space",
            automation_spec_with(
                json!({"schedules": [schedule_with(json!({"timezone": "Europe Stockholm"}))]}),
            ),
            format!("{s0}.timezone"),
        ),
        (
            "empty timezone",
            automation_spec_with(json!({"schedules": [schedule_with(json!({"timezone": ""}))]})),
            format!("{s0}.timezone"),
        ),
        (
            "timezone of 65 characters",
            automation_spec_with(
                json!({"schedules": [schedule_with(json!({"timezone": format!("Europe/{}", long(58))}))]}),
            ),
            format!("{s0}.timezone"),
        ),
        (
            "21 schedules",
            automation_spec_with(json!({"schedules": vec![schedule_with(json!({})); 21]})),
            "spec.schedules".into(),
        ),
        (
            "schedules an object",
            automation_spec_with(json!({"schedules": schedule_with(json!({}))})),
            "spec.schedules".into(),
        ),
        (
            "enabled a string",
            automation_spec_with(json!({"enabled": "yes"})),
            "spec.enabled".into(),
        ),
        (
            "suspend a number",
            automation_spec_with(json!({"suspend": 1})),
            "spec.suspend".into(),
        ),
        (
            "unknown deletionPolicy",
            automation_spec_with(json!({"deletionPolicy": "Keep"})),
            "spec.deletionPolicy".into(),
        ),
        (
            "deletionPolicy in the wrong case",
            automation_spec_with(json!({"deletionPolicy": "delete"})),
            "spec.deletionPolicy".into(),
        ),
        (
            "both workspace sources",
            automation_spec_with(
                json!({"workspaceFrom": {"configMapKeyRef": {"name": "ws", "key": "ws.json"}}}),
            ),
            "spec.workspaceFrom".into(),
        ),
        (
            "workspace an array",
            automation_spec_with(json!({"workspace": [1, 2]})),
            "spec.workspace".into(),
        ),
        (
            "workspace a string",
            automation_spec_with(json!({"workspace": "{\"blocks\": []}"})),
            "spec.workspace".into(),
        ),
        (
            "workspaceFrom without configMapKeyRef",
            automation_spec_with(json!({"workspace": null, "workspaceFrom": {}})),
            "spec.workspaceFrom.configMapKeyRef".into(),
        ),
        (
            "workspaceFrom with an empty key",
            automation_spec_with(
                json!({"workspace": null, "workspaceFrom": {"configMapKeyRef": {"name": "ws", "key": ""}}}),
            ),
            "spec.workspaceFrom.configMapKeyRef.key".into(),
        ),
        (
            "a Secret in another namespace",
            automation_spec_with(
                json!({"connection": {"secretRef": {"name": "qlik", "namespace": "kube-system"}}}),
            ),
            "spec.connection.secretRef.namespace".into(),
        ),
        (
            "secretRef without a name",
            automation_spec_with(json!({"connection": {"secretRef": {}}})),
            "spec.connection.secretRef.name".into(),
        ),
        (
            "secretRef name not a DNS name",
            automation_spec_with(json!({"connection": {"secretRef": {"name": "Qlik_Tenant"}}})),
            "spec.connection.secretRef.name".into(),
        ),
        (
            "empty name",
            automation_spec_with(json!({"name": ""})),
            "spec.name".into(),
        ),
        (
            "name of 256 characters",
            automation_spec_with(json!({"name": long(256)})),
            "spec.name".into(),
        ),
        (
            "name a number",
            automation_spec_with(json!({"name": 42})),
            "spec.name".into(),
        ),
        (
            "description of 4097 characters",
            automation_spec_with(json!({"description": long(4097)})),
            "spec.description".into(),
        ),
        (
            "empty ownerId",
            automation_spec_with(json!({"ownerId": ""})),
            "spec.ownerId".into(),
        ),
        (
            "empty copyFrom",
            automation_spec_with(json!({"copyFrom": ""})),
            "spec.copyFrom".into(),
        ),
        (
            "blank name",
            automation_spec_with(json!({"name": "   "})),
            "spec.name".into(),
        ),
        (
            "blank ownerId",
            automation_spec_with(json!({"ownerId": " \t "})),
            "spec.ownerId".into(),
        ),
        (
            "blank copyFrom",
            automation_spec_with(json!({"copyFrom": "  "})),
            "spec.copyFrom".into(),
        ),
        (
            "ConfigMap name not a DNS name",
            automation_spec_with(
                json!({"workspace": null, "workspaceFrom": {"configMapKeyRef": {"name": "Work_Space", "key": "ws.json"}}}),
            ),
            "spec.workspaceFrom.configMapKeyRef.name".into(),
        ),
        (
            "maxConcurrentRuns 0",
            automation_spec_with(json!({"maxConcurrentRuns": 0})),
            "spec.maxConcurrentRuns".into(),
        ),
        (
            "spaceId a number",
            automation_spec_with(json!({"spaceId": 7})),
            "spec.spaceId".into(),
        ),
        (
            "ConfigMap key with a slash",
            automation_spec_with(
                json!({"workspace": null, "workspaceFrom": {"configMapKeyRef": {"name": "ws", "key": "ws/json"}}}),
            ),
            "spec.workspaceFrom.configMapKeyRef.key".into(),
        ),
    ];
    let settings_cases: Vec<(&str, Value, String)> = vec![
        (
            "settings maxConcurrentRunsPerAutomation 0",
            json!({"maxConcurrentRunsPerAutomation": 0}),
            "spec.maxConcurrentRunsPerAutomation".into(),
        ),
        (
            "settings automationsEnabled a string",
            json!({"automationsEnabled": "true"}),
            "spec.automationsEnabled".into(),
        ),
        (
            "settings Secret in another namespace",
            json!({"automationsEnabled": true, "connection": {"secretRef": {"name": "qlik", "namespace": "default"}}}),
            "spec.connection.secretRef.namespace".into(),
        ),
    ];
    let mut refused = 0;
    let mut failures = Vec::new();
    for (i, (what, spec, field)) in cases.iter().enumerate() {
        let result = automations
            .create(
                &PostParams::default(),
                &dynamic("QlikAutomation", &format!("bad-{i}"), spec.clone()),
            )
            .await;
        match result {
            Ok(_) => failures.push(format!("{what}: accepted")),
            Err(e) => {
                let (code, text) = refusal(&e);
                if code != 422 || !text.contains(field.as_str()) {
                    failures.push(format!("{what}: {code} without {field}: {text}"));
                } else {
                    refused += 1;
                }
            }
        }
    }
    for (i, (what, spec, field)) in settings_cases.iter().enumerate() {
        match settings
            .create(
                &PostParams::default(),
                &dynamic("QlikAutomationSettings", &format!("bad-{i}"), spec.clone()),
            )
            .await
        {
            Ok(_) => failures.push(format!("{what}: accepted")),
            Err(e) => {
                let (code, text) = refusal(&e);
                if code != 422 || !text.contains(field.as_str()) {
                    failures.push(format!("{what}: {code} without {field}: {text}"));
                } else {
                    refused += 1;
                }
            }
        }
    }

    // Edits of immutable fields: copyFrom only applies at creation.
    let copied = automation_spec_with(json!({"copyFrom": "source-id", "suspend": true}));
    automations
        .create(
            &PostParams::default(),
            &dynamic("QlikAutomation", "copied", copied),
        )
        .await
        .unwrap();
    let plain = automation_spec_with(json!({"suspend": true}));
    automations
        .create(
            &PostParams::default(),
            &dynamic("QlikAutomation", "plain", plain),
        )
        .await
        .unwrap();
    for (what, name, patch) in [
        (
            "copyFrom changed",
            "copied",
            json!({"spec": {"copyFrom": "other-id"}}),
        ),
        (
            "copyFrom removed",
            "copied",
            json!({"spec": {"copyFrom": null}}),
        ),
        (
            "copyFrom added",
            "plain",
            json!({"spec": {"copyFrom": "source-id"}}),
        ),
    ] {
        match automations
            .patch(name, &PatchParams::default(), &Patch::Merge(patch))
            .await
        {
            Ok(_) => failures.push(format!("{what}: accepted")),
            Err(e) => {
                let (code, text) = refusal(&e);
                if code != 422 || !text.contains("spec.copyFrom") {
                    failures.push(format!("{what}: {code} without spec.copyFrom: {text}"));
                } else {
                    refused += 1;
                }
            }
        }
    }

    // kubectl (strict field validation by default) refuses a misspelt field by its path.
    let out = {
        let mut child = ControlPlane::shared()
            .kubectl()
            .args(["create", "-n", &ns.name, "-f", "-"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        use std::io::Write;
        child
            .stdin
            .take()
            .unwrap()
            .write_all(
                b"apiVersion: automations.qlik.dev/v1alpha1\nkind: QlikAutomation\nmetadata:\n  name: typo\nspec:\n  schedule:\n    - startAt: \"2031-01-01 00:00:00\"\n",
            )
            .unwrap();
        child.wait_with_output().unwrap()
    };
    let stderr = String::from_utf8_lossy(&out.stderr);
    if out.status.success() || !stderr.contains("spec.schedule") {
        failures.push(format!("misspelt field via kubectl: {stderr}"));
    } else {
        refused += 1;
    }

    assert!(
        failures.is_empty(),
        "{} cases not refused as expected:\n{}",
        failures.len(),
        failures.join("\n")
    );
    assert!(refused >= 25);
    println!(
        "RELIABILITY admission: {refused} invalid manifests refused with the field path named, 0 accepted"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn specs_the_tenant_refuses_are_invalid_spec_without_a_retry_storm() {
    const OBSERVE: Duration = Duration::from_secs(30);
    let ns = TestNamespace::new("refused").await;
    let s = |changes: Value| json!({"schedules": [schedule_with(changes)]});
    let block = |id: &str, mode: &str| json!({"id": id, "type": "StartBlock", "runMode": mode});
    // (name, spec changes, Qlik's detail the condition must carry). Every spec passes admission.
    let cases: Vec<(&str, Value, &str)> = vec![
        (
            "feb-30",
            s(json!({"startAt": "2031-02-30 00:00:00"})),
            "schedules[0].startAt must be a date-time",
        ),
        (
            "feb-29-not-leap",
            s(json!({"stopAt": "2033-02-29 12:00:00"})),
            "schedules[0].stopAt must be a date-time",
        ),
        (
            "april-31",
            s(json!({"startAt": "2031-04-31 08:00:00"})),
            "schedules[0].startAt must be a date-time",
        ),
        (
            "mars-tz",
            s(json!({"timezone": "Mars/Olympus_Mons"})),
            "schedules[0].timezone must be an IANA time zone",
        ),
        (
            "utc-plus-5",
            s(json!({"timezone": "UTC+5"})),
            "schedules[0].timezone must be an IANA time zone",
        ),
        (
            "second-schedule",
            json!({"schedules": [schedule_with(json!({})), schedule_with(json!({"startAt": "2031-06-31 00:00:00"}))]}),
            "schedules[1].startAt must be a date-time",
        ),
        (
            "blocks-object",
            json!({"workspace": {"blocks": {"id": "start"}}}),
            "workspace.blocks must be an array",
        ),
        (
            "blocks-string",
            json!({"workspace": {"blocks": "StartBlock"}}),
            "workspace.blocks must be an array",
        ),
        (
            "two-starts",
            json!({"workspace": {"blocks": [block("a", "manual"), block("b", "webhook")]}}),
            "exactly one start block",
        ),
        (
            "block-number",
            json!({"workspace": {"blocks": [1]}}),
            "workspace.blocks[0] must be an object",
        ),
        (
            "run-mode",
            json!({"workspace": {"blocks": [block("a", "hourly")]}}),
            "workspace.blocks[0].runMode must be one of",
        ),
        (
            "configmap",
            json!({"workspace": null, "workspaceFrom": {"configMapKeyRef": {"name": "bad-workspace", "key": "workspace.json"}}}),
            "workspace.blocks must be an array",
        ),
    ];
    // Each object talks to its own emulator, so its requests are counted exactly.
    let mut emulators = BTreeMap::new();
    for (name, _, _) in &cases {
        let emu = emulator(scaled).await;
        ns.connection_secret(&format!("qlik-{name}"), &emu.base_url(), USER_KEY)
            .await;
        emulators.insert(name.to_string(), emu);
    }
    let update_emu = emulator(scaled).await;
    ns.connection_secret("qlik-update", &update_emu.base_url(), USER_KEY)
        .await;
    Api::<ConfigMap>::namespaced(ns.client.clone(), &ns.name)
        .create(
            &PostParams::default(),
            &serde_json::from_value(json!({
                "metadata": {"name": "bad-workspace"},
                "data": {"workspace.json": "{\"blocks\": 5}"}
            }))
            .unwrap(),
        )
        .await
        .unwrap();
    let op = start_operator(
        &ControlPlane::shared().kubeconfig_path(),
        &[&ns.name],
        DEBUG_LOG,
        &["--resync-seconds", "3"],
    );
    let api: Api<QlikAutomation> = ns.api();
    let automations = dynamic_api::<QlikAutomation>(&ns.client, &ns.name);
    for (name, changes, _) in &cases {
        let mut changes = changes.clone();
        changes["connection"] = json!({"secretRef": {"name": format!("qlik-{name}")}});
        automations
            .create(
                &PostParams::default(),
                &dynamic("QlikAutomation", name, automation_spec_with(changes)),
            )
            .await
            .unwrap_or_else(|e| panic!("{name} must pass admission: {e}"));
    }
    // And a valid object later updated to an invalid spec.
    let mut changes = json!({"connection": {"secretRef": {"name": "qlik-update"}}});
    automations
        .create(
            &PostParams::default(),
            &dynamic(
                "QlikAutomation",
                "updated",
                automation_spec_with(changes.clone()),
            ),
        )
        .await
        .unwrap();
    wait_ready(&api, "updated").await;
    changes["schedules"] = json!([schedule_with(json!({"startAt": "2031-09-31 00:00:00"}))]);
    api.patch(
        "updated",
        &PatchParams::default(),
        &Patch::Merge(json!({"spec": {"schedules": changes["schedules"]}})),
    )
    .await
    .unwrap();

    let mut failures = Vec::new();
    let mut example = String::new();
    for (name, _, detail) in &cases {
        let a = wait_reason(&api, name, "InvalidSpec").await;
        let (_, _, message) = ready_status(&a).unwrap();
        if example.is_empty() {
            example = message.clone();
        }
        if !message.contains(detail) || !message.contains("traceId") {
            failures.push(format!(
                "{name}: {message:?} lacks {detail:?} or the traceId"
            ));
        }
    }
    let a = wait_reason(&api, "updated", "InvalidSpec").await;
    let (_, _, message) = ready_status(&a).unwrap();
    if !message.contains("schedules[0].startAt must be a date-time") || !message.contains("traceId")
    {
        failures.push(format!("updated: {message:?}"));
    }
    let events = ns.events().await;
    for (name, _, _) in &cases {
        if !events.iter().any(|e| {
            e.involved_object.name.as_deref() == Some(*name)
                && e.reason.as_deref() == Some("InvalidSpec")
        }) {
            failures.push(format!("{name}: no InvalidSpec Event"));
        }
    }

    // Resyncs come every 3 s: none of them may send the refused spec again.
    tokio::time::sleep(OBSERVE).await;
    let mut sent = Vec::new();
    for (name, emu) in &emulators {
        let c = emu.counters();
        let writes =
            c.endpoint(Endpoint::CreateAutomation) + c.endpoint(Endpoint::UpdateAutomation);
        if !(1..=2).contains(&writes) {
            failures.push(format!("{name}: {writes} creates/updates in {OBSERVE:?}"));
        }
        if !emu.automations().is_empty() {
            failures.push(format!("{name}: something was created"));
        }
        sent.push((writes, name.clone()));
    }
    let updates = update_emu
        .counters()
        .endpoint_status(Endpoint::UpdateAutomation, 400);
    if !(1..=2).contains(&updates) {
        failures.push(format!("updated: {updates} refused updates in {OBSERVE:?}"));
    }
    assert!(
        failures.is_empty(),
        "{}\n--- log ---\n{}",
        failures.join("\n"),
        op.log_tail(30)
    );
    println!(
        "RELIABILITY tenant_refusals: {} specs valid for the schema but refused by Qlik + 1 refused update -> \
         Ready=False/InvalidSpec with Qlik's detail and traceId; creates+updates per object over {OBSERVE:?} \
         with a 3 s resync: max {} (refused updates: {updates}); e.g. {example:?}",
        cases.len(),
        sent.iter().max().unwrap().0
    );
    let twice: Vec<&String> = sent
        .iter()
        .filter(|(n, _)| *n == 2)
        .map(|(_, name)| name)
        .collect();
    if !twice.is_empty() {
        // A second attempt comes from the operator's initial list of the Secret (or ConfigMap)
        // watch arriving after the object's first reconcile: a real change signal, not a loop.
        println!("RELIABILITY tenant_refusals: sent twice: {twice:?}");
    }
}
