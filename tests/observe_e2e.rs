//! End-to-end: `managementPolicy: Observe` never writes to the tenant — it adopts by id,
//! mirrors the remote, reports drift without setting it back, and deleting the object leaves
//! the remote — and switching to `Full` converges with the minimum writes.

// Tests state what must hold with unwrap/expect; the crate's lints forbid them elsewhere.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::time::Duration;

use kube::{
    Api,
    api::{DeleteParams, Patch, PatchParams},
};
use qlik_automations_operator::{
    crd::{ConditionStatus, QlikAutomation},
    qlik::{self, Endpoint},
};
use serde_json::json;

use support::operator::{
    ADMIN_KEY, admin_client, automation_yaml, events_for, ready_status, setup, wait_for,
    wait_reason,
};

const WAIT: Duration = Duration::from_secs(60);

/// The `QlikAutomation` manifest `name`, observing the remote `id`.
fn observing(name: &str, id: &str) -> String {
    automation_yaml(name, "  managementPolicy: Observe").replace(
        &format!("  name: {name}\nspec:"),
        &format!(
            "  name: {name}\n  annotations:\n    automations.qlik.dev/automation-id: {id}\nspec:"
        ),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn observe_mirrors_reports_drift_never_writes_and_full_sets_it_back() {
    let (ns, emu, _op) = setup("observe", ADMIN_KEY, &[]).await;
    let api: Api<QlikAutomation> = ns.api();
    let tenant = admin_client(&emu);

    // A remote made by hand, exactly as the manifest declares it.
    let declared: QlikAutomation = serde_yaml::from_str(&automation_yaml("mirror", "")).unwrap();
    let spec = &declared.spec;
    let made = tenant
        .create_automation(&qlik::model::AutomationRequest {
            name: Some("mirror".into()),
            description: spec.description.clone(),
            schedules: Some(
                spec.schedules
                    .iter()
                    .map(|s| qlik::model::ScheduleRequest {
                        start_at: Some(s.start_at.clone()),
                        stop_at: s.stop_at.clone(),
                        interval: Some(s.interval),
                        timezone: Some(s.timezone.clone()),
                        recurrence: None,
                    })
                    .collect(),
            ),
            workspace: spec.workspace.clone(),
            ..Default::default()
        })
        .await
        .unwrap();
    emu.reset_counters();

    // Without the id annotation nothing is created.
    ns.apply_yaml::<QlikAutomation>(&automation_yaml("orphan", "  managementPolicy: Observe"))
        .await;
    let a = wait_reason(&api, "orphan", "NotFound").await;
    assert!(
        ready_status(&a).unwrap().2.contains("automation-id"),
        "{a:?}"
    );

    // Adopted by id and mirrored: Ready, with the remote's fields in status.
    ns.apply_yaml::<QlikAutomation>(&observing("mirror", &made.id))
        .await;
    let a = wait_for("the mirror Ready", WAIT, || async {
        let a = api.get("mirror").await.ok()?;
        (ready_status(&a)?.0 == ConditionStatus::True).then_some(a)
    })
    .await;
    let status = a.status.unwrap();
    assert_eq!(status.automation_id.as_deref(), Some(made.id.as_str()));
    assert_eq!(
        ready_status(&api.get("mirror").await.unwrap()).unwrap().1,
        "Observed"
    );

    // Someone edits it in the Qlik UI: reported as Drifted, naming the field, left alone.
    tenant
        .update_automation(
            &made.id,
            &qlik::model::AutomationRequest {
                description: Some("edited by hand".into()),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    tenant.disable_automation(&made.id).await.unwrap();
    let a = wait_reason(&api, "mirror", "Drifted").await;
    let status = a.status.clone().unwrap();
    assert_eq!(status.drifted_fields, ["description", "enabled"]);
    assert!(ready_status(&a).unwrap().2.contains("description, enabled"));
    let synced = status
        .conditions
        .iter()
        .find(|c| c.type_ == "Synced")
        .unwrap();
    assert_eq!(
        (synced.status, synced.reason.as_str()),
        (ConditionStatus::False, "Drifted")
    );
    // Several resyncs later the edit still stands.
    tokio::time::sleep(Duration::from_secs(8)).await;
    let remote = tenant.get_automation(&made.id).await.unwrap();
    assert_eq!(remote.description.as_deref(), Some("edited by hand"));
    let counters = emu.counters();
    // The only writes are the two made above by hand (as the admin).
    assert_eq!(
        counters.writes(),
        2,
        "Observe wrote to the tenant: {counters:?}"
    );
    assert_eq!(
        counters.endpoint(Endpoint::CreateAutomation),
        0,
        "{counters:?}"
    );
    assert!(
        events_for(&ns, "mirror")
            .await
            .iter()
            .any(|(r, m)| r == "Drifted" && m.contains("left as it is")),
    );

    // Switching to Full sets it back with the minimum writes: one update, one enable.
    emu.reset_counters();
    api.patch(
        "mirror",
        &PatchParams::default(),
        &Patch::Merge(json!({"spec": {"managementPolicy": "Full"}})),
    )
    .await
    .unwrap();
    wait_for("the drift set back", WAIT, || async {
        let r = tenant.get_automation(&made.id).await.ok()?;
        (r.description.as_deref() == Some("managed by e2e")
            && r.state.as_ref().map(|s| s.to_string()).as_deref() == Some("available"))
        .then_some(())
    })
    .await;
    let a = wait_for("Ready under Full", WAIT, || async {
        let a = api.get("mirror").await.ok()?;
        (ready_status(&a)?.1 == "Synced").then_some(a)
    })
    .await;
    assert!(a.status.unwrap().drifted_fields.is_empty());
    tokio::time::sleep(Duration::from_secs(5)).await;
    let counters = emu.counters();
    assert_eq!(
        counters.endpoint(Endpoint::UpdateAutomation),
        1,
        "{counters:?}"
    );
    assert_eq!(
        counters.endpoint(Endpoint::EnableAutomation),
        1,
        "{counters:?}"
    );
    assert_eq!(counters.writes(), 2, "{counters:?}");

    // Back to Observe, then delete the object: the remote stays (deletionPolicy Delete or not).
    api.patch(
        "mirror",
        &PatchParams::default(),
        &Patch::Merge(json!({"spec": {"managementPolicy": "Observe"}})),
    )
    .await
    .unwrap();
    wait_reason_or_ready(&api, "mirror", "Observed").await;
    api.delete("mirror", &DeleteParams::default())
        .await
        .unwrap();
    wait_for("the object gone", WAIT, || async {
        api.get_opt("mirror").await.ok()?.is_none().then_some(())
    })
    .await;
    assert!(
        tenant.get_automation(&made.id).await.is_ok(),
        "the remote must stay"
    );
    assert_eq!(emu.counters().endpoint(Endpoint::DeleteAutomation), 0);
}

/// Waits until `name`'s Ready reason is `reason` for its current generation.
async fn wait_reason_or_ready(api: &Api<QlikAutomation>, name: &str, reason: &str) {
    wait_for(&format!("{name} {reason}"), WAIT, || async {
        let a = api.get(name).await.ok()?;
        (ready_status(&a)?.1 == reason
            && a.status.as_ref()?.observed_generation == a.metadata.generation)
            .then_some(())
    })
    .await;
}
