//! End-to-end: what the tenant just said outranks the operator's cache (the tenant view), and
//! usage in status says what is true. The operator runs at its default resync and view age
//! (300 s) unless a test says otherwise, so nothing here converges by waiting for a refresh:
//! every recovery is driven by the tenant's own answers.

// Tests state what must hold with unwrap/expect; the crate's lints forbid them elsewhere.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::{
    sync::{Arc, Mutex},
    time::Duration,
};

use kube::{
    Api,
    api::{Patch, PatchParams},
};
use qlik_automations_operator::{
    crd::{ConditionStatus, QlikAutomation, UsageMissingReason},
    emulator::{FaultConfig, FaultRule, RunningEmulator},
    qlik::{self, Endpoint},
};
use serde_json::{Value, json};

use support::operator::{
    ADMIN_KEY, Operator, TestNamespace, USER_KEY, admin_client, automation_yaml, emulator,
    events_for, ready_status, remotes_named, setup, wait_for, wait_ready, wait_reason,
};

/// "Within seconds": generous for a loaded 2-core machine, far below the 300 s view age
/// the operator would otherwise wait for.
const SECONDS: Duration = Duration::from_secs(45);

/// The operator's defaults for how often it looks at the tenant on its own.
const DEFAULT_CADENCE: [&str; 4] = ["--resync-seconds", "300", "--view-max-age-seconds", "300"];

/// A tenant admin's namespace, emulator and operator, the emulator applying `fault` to the
/// first usage request only.
async fn with_usage_fault(
    prefix: &str,
    fault: FaultRule,
) -> (TestNamespace, RunningEmulator, Operator) {
    let ns = TestNamespace::new(prefix).await;
    let emu = emulator(|c| {
        c.faults = FaultConfig {
            rules: vec![FaultRule {
                endpoint: Some(Endpoint::GetUsage.name().into()),
                times: Some(1),
                ..fault
            }],
        };
    })
    .await;
    ns.connection_secret("qlik", &emu.base_url(), ADMIN_KEY)
        .await;
    let op = Operator::start(&ns.name, &[]);
    (ns, emu, op)
}

/// One look at an object's status: automationId, lastHandledReconcileAt, Ready and reason.
type Observed = (Option<String>, Option<String>, ConditionStatus, String);

/// Creates `name`, waits for Ready and returns its remote id.
async fn ready_remote(ns: &TestNamespace, name: &str, extra_spec: &str) -> String {
    ns.apply_yaml::<QlikAutomation>(&automation_yaml(name, extra_spec))
        .await;
    wait_ready(&ns.api(), name)
        .await
        .status
        .unwrap()
        .automation_id
        .unwrap()
}

/// Waits until `name` is Ready on a remote other than `old`, and returns the new id.
async fn recreated(api: &Api<QlikAutomation>, name: &str, old: &str) -> String {
    wait_for(&format!("{name} recreated"), SECONDS, || async {
        let a = api.get(name).await.ok()?;
        let id = a.status.as_ref()?.automation_id.clone()?;
        (id != old
            && ready_status(&a)?.0 == ConditionStatus::True
            && a.status.as_ref()?.observed_generation == a.metadata.generation)
            .then_some(id)
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_out_of_band_delete_and_a_forced_reconcile_recreate_at_once_never_claiming_ready() {
    let (ns, emu, _op) = setup("fresh-forced", USER_KEY, &DEFAULT_CADENCE).await;
    let api: Api<QlikAutomation> = ns.api();
    let old = ready_remote(&ns, "deleted", "").await;

    // Someone deletes it in the Qlik UI, then asks for a reconcile the documented way.
    admin_client(&emu).delete_automation(&old).await.unwrap();
    let token = "forced-after-delete";
    api.patch(
        "deleted",
        &PatchParams::default(),
        &Patch::Merge(
            json!({"metadata": {"annotations": {"reconcile.fluxcd.io/requestedAt": token}}}),
        ),
    )
    .await
    .unwrap();

    // Watch every status while waiting: once the request is handled, the old id is never
    // Ready, and the remote is never reported NotFound (the operator had seen it).
    let seen: Arc<Mutex<Vec<Observed>>> = Arc::default();
    let poller = {
        let api = api.clone();
        let seen = seen.clone();
        tokio::spawn(async move {
            loop {
                if let Ok(a) = api.get("deleted").await
                    && let (Some(s), Some(ready)) = (a.status.clone(), ready_status(&a))
                {
                    seen.lock().unwrap().push((
                        s.automation_id,
                        s.last_handled_reconcile_at,
                        ready.0,
                        ready.1,
                    ));
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        })
    };
    let new = recreated(&api, "deleted", &old).await;
    poller.abort();

    let seen = seen.lock().unwrap().clone();
    for (id, handled, ready, reason) in &seen {
        assert!(
            !(handled.as_deref() == Some(token)
                && id.as_deref() == Some(old.as_str())
                && *ready == ConditionStatus::True),
            "Ready=True for the deleted remote after the forced reconcile: {seen:?}"
        );
        assert_ne!(reason, "NotFound", "{seen:?}");
    }
    let a = api.get("deleted").await.unwrap();
    assert_eq!(
        a.status.unwrap().last_handled_reconcile_at.as_deref(),
        Some(token)
    );
    let remotes = remotes_named(&emu, "deleted");
    assert_eq!(remotes.len(), 1, "exactly one remote: {remotes:?}");
    assert_eq!(remotes[0]["id"], new.as_str());
    let events = events_for(&ns, "deleted").await;
    assert!(
        events
            .iter()
            .any(|(r, m)| r == "RemoteDeleted" && m.contains(&old)),
        "{events:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_change_to_a_remote_deleted_out_of_band_lands_on_the_recreated_one() {
    let (ns, emu, _op) = setup("fresh-change", USER_KEY, &DEFAULT_CADENCE).await;
    let api: Api<QlikAutomation> = ns.api();
    let spec_changed = ready_remote(&ns, "spec-changed", "").await;
    let disabled = ready_remote(&ns, "disabled", "").await;
    let run_requested = ready_remote(&ns, "run-requested", "").await;
    let tenant = admin_client(&emu);
    for id in [&spec_changed, &disabled, &run_requested] {
        tenant.delete_automation(id).await.unwrap();
    }

    // The view still lists all three (it is not refreshed for 300 s): each change meets
    // the tenant's 404 on its own call (GET, enable/disable, run) and recreates.
    let merge = |patch: Value| Patch::Merge(patch);
    api.patch(
        "spec-changed",
        &PatchParams::default(),
        &merge(json!({"spec": {"description": "changed after the delete"}})),
    )
    .await
    .unwrap();
    api.patch(
        "disabled",
        &PatchParams::default(),
        &merge(json!({"spec": {"enabled": false}})),
    )
    .await
    .unwrap();
    api.patch(
        "run-requested",
        &PatchParams::default(),
        &merge(json!({"metadata": {"annotations": {"automations.qlik.dev/run-requested-at": "after-delete"}}})),
    )
    .await
    .unwrap();

    let new = recreated(&api, "spec-changed", &spec_changed).await;
    let remote = remotes_named(&emu, "spec-changed");
    assert_eq!(remote.len(), 1, "{remote:?}");
    assert_eq!(remote[0]["id"], new.as_str());
    assert_eq!(remote[0]["description"], "changed after the delete");

    let new = recreated(&api, "disabled", &disabled).await;
    let remote = remotes_named(&emu, "disabled");
    assert_eq!(remote.len(), 1, "{remote:?}");
    assert_eq!(remote[0]["id"], new.as_str());
    assert_eq!(remote[0]["state"], "disabled");

    let new = recreated(&api, "run-requested", &run_requested).await;
    let remote = remotes_named(&emu, "run-requested");
    assert_eq!(remote.len(), 1, "{remote:?}");
    let a = wait_for("the run request handled", SECONDS, || async {
        let a = api.get("run-requested").await.ok()?;
        (a.status.as_ref()?.last_handled_run_request.as_deref() == Some("after-delete"))
            .then_some(a)
    })
    .await;
    let runs = tenant
        .list_runs_page(&new, &qlik::ListParams::default().limit(200))
        .await
        .unwrap();
    assert_eq!(
        runs.data.len(),
        1,
        "one run on the new remote: {:?}",
        runs.data
    );
    assert_eq!(
        a.status.unwrap().last_run.unwrap().id.as_deref(),
        Some(runs.data[0].id.as_str())
    );
    // The run request met the old remote's 404, then started exactly one run on the new.
    let counters = emu.counters();
    assert_eq!(
        counters.endpoint_status(Endpoint::CreateRun, 404),
        1,
        "{counters:?}"
    );
    assert_eq!(
        counters.endpoint_status(Endpoint::CreateRun, 201),
        1,
        "{counters:?}"
    );
    for name in ["spec-changed", "disabled", "run-requested"] {
        let events = events_for(&ns, name).await;
        assert!(
            events.iter().any(|(r, _)| r == "RemoteDeleted"),
            "{name}: {events:?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_adoption_annotation_naming_no_automation_is_not_found_and_creates_nothing() {
    let (ns, emu, _op) = setup("fresh-adopt", USER_KEY, &DEFAULT_CADENCE).await;
    let missing = "00000000-0000-4000-8000-00000000dead";
    let yaml = automation_yaml("ghost", "").replace(
        "  name: ghost\nspec:",
        &format!("  name: ghost\n  annotations:\n    automations.qlik.dev/automation-id: {missing}\nspec:"),
    );
    ns.apply_yaml::<QlikAutomation>(&yaml).await;
    let a = wait_reason(&ns.api(), "ghost", "NotFound").await;
    let (_, _, message) = ready_status(&a).unwrap();
    assert!(message.contains(missing), "{message}");
    // A few more reconciles pass: still nothing created.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let counters = emu.counters();
    assert_eq!(
        counters.endpoint(Endpoint::CreateAutomation),
        0,
        "{counters:?}"
    );
    assert_eq!(counters.writes(), 0, "{counters:?}");
    assert!(emu.automations().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn usage_in_status_says_when_it_was_fetched_or_why_not() {
    // A tenant admin's key: usage appears, with the time it was fetched.
    let (ns, _emu, _op) = setup("usage-admin", ADMIN_KEY, &[]).await;
    let api: Api<QlikAutomation> = ns.api();
    ready_remote(&ns, "counted", "").await;
    let status = wait_for("usage with its fetch time", SECONDS, || async {
        let s = api.get("counted").await.ok()?.status?;
        (s.usage.as_ref()?.fetched_at.is_some() && s.usage_missing.is_none()).then_some(s)
    })
    .await;
    let usage = status.usage.unwrap();
    assert!(usage.window.starts_with("since "), "{usage:?}");
    assert!(
        chrono::DateTime::parse_from_rfc3339(usage.fetched_at.as_deref().unwrap()).is_ok(),
        "{usage:?}"
    );

    // A plain user's key: the tenant refuses, and status says so (not "not fetched").
    let (ns, emu, _op) = setup("usage-user", USER_KEY, &[]).await;
    let api: Api<QlikAutomation> = ns.api();
    ready_remote(&ns, "refused", "").await;
    let missing = wait_for("usage refused", SECONDS, || async {
        let s = api.get("refused").await.ok()?.status?;
        s.usage_missing
            .filter(|m| m.reason == UsageMissingReason::Forbidden)
    })
    .await;
    assert!(missing.message.contains("admin"), "{missing:?}");
    assert!(emu.counters().endpoint_status(Endpoint::GetUsage, 403) >= 1);

    // A tenant whose usage endpoint fails: Unavailable, then figures once it answers.
    let (ns, emu, _op) = with_usage_fault(
        "usage-503",
        FaultRule {
            error_rate: 1.0,
            ..FaultRule::default()
        },
    )
    .await;
    let api: Api<QlikAutomation> = ns.api();
    ready_remote(&ns, "flaky", "").await;
    wait_for("usage after the failure", SECONDS, || async {
        let s = api.get("flaky").await.ok()?.status?;
        (s.usage?.fetched_at.is_some() && s.usage_missing.is_none()).then_some(())
    })
    .await;
    let counters = emu.counters();
    assert_eq!(
        counters.endpoint_status(Endpoint::GetUsage, 503),
        1,
        "{counters:?}"
    );
    assert!(
        counters.endpoint_status(Endpoint::GetUsage, 200) >= 1,
        "{counters:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_usage_request_does_not_hold_up_another_objects_change() {
    // Usage answers after 20 s; nothing else waits for it.
    let (ns, emu, _op) = with_usage_fault(
        "usage-slow",
        FaultRule {
            latency_ms: Some((20_000, 20_000)),
            ..FaultRule::default()
        },
    )
    .await;
    let api: Api<QlikAutomation> = ns.api();
    ns.apply_yaml::<QlikAutomation>(&automation_yaml("first", ""))
        .await;
    ns.apply_yaml::<QlikAutomation>(&automation_yaml("second", ""))
        .await;

    // The delayed usage request has reached the tenant (its fault rule fired) ...
    let faults_url = format!("{}/_emulator/faults", emu.base_url());
    wait_for("the slow usage request sent", SECONDS, || async {
        let faults: Value = reqwest::get(&faults_url).await.ok()?.json().await.ok()?;
        (faults["rules"][0]["times"] == 0).then_some(())
    })
    .await;
    let id = wait_ready(&api, "second")
        .await
        .status
        .unwrap()
        .automation_id
        .unwrap();
    api.patch(
        "second",
        &PatchParams::default(),
        &Patch::Merge(json!({"spec": {"description": "changed while usage is slow"}})),
    )
    .await
    .unwrap();
    // ... and the other object's change reaches the tenant before it is answered.
    wait_for("the change in the tenant", SECONDS, || async {
        let all = emu.automations();
        let r = all.iter().find(|a| a["id"] == id.as_str())?;
        (r["description"] == "changed while usage is slow").then_some(())
    })
    .await;
    let counters = emu.counters();
    assert_eq!(
        counters.endpoint(Endpoint::GetUsage),
        0,
        "the usage request was answered before the change landed: {counters:?}"
    );
    assert_eq!(
        counters.endpoint(Endpoint::UpdateAutomation),
        1,
        "{counters:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn edits_and_deletes_made_outside_are_noticed_within_the_read_budget_not_the_resync() {
    // The default cadence (300 s), with the default read budget: a tenth of Tier 1.
    let mut flags = DEFAULT_CADENCE.to_vec();
    flags.extend(["--read-budget-share", "0.1"]);
    let (ns, emu, _op) = setup("drift-watch", ADMIN_KEY, &flags).await;
    let api: Api<QlikAutomation> = ns.api();
    for name in ["watched-a", "watched-b"] {
        ns.apply_yaml::<QlikAutomation>(&automation_yaml(name, ""))
            .await;
    }
    let a = wait_ready(&api, "watched-a").await;
    wait_ready(&api, "watched-b").await;
    let id = a.status.unwrap().automation_id.unwrap();
    let tenant = admin_client(&emu);

    // Quiet: the background refreshes list once a second at most (one page; the budget
    // would allow one every 0.6 s), and write nothing.
    emu.reset_counters();
    tokio::time::sleep(Duration::from_secs(10)).await;
    let quiet = emu.counters();
    let lists = quiet.endpoint(Endpoint::ListAutomations);
    assert!(
        (3..=12).contains(&lists),
        "{lists} lists in 10 s: {quiet:?}"
    );
    assert_eq!(quiet.writes(), 0, "{quiet:?}");

    // Edited in the Qlik UI: set back long before the 300 s resync.
    tenant
        .update_automation(
            &id,
            &qlik::model::AutomationRequest {
                description: Some("edited by hand".into()),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    wait_for("the edit set back", SECONDS, || async {
        let r = tenant.get_automation(&id).await.ok()?;
        (r.description.as_deref() == Some("managed by e2e")).then_some(())
    })
    .await;
    assert!(
        events_for(&ns, "watched-a")
            .await
            .iter()
            .any(|(reason, _)| reason == "Drifted"),
        "the drift is reported"
    );

    // Deleted in the Qlik UI: recreated, once, long before the resync.
    tenant.delete_automation(&id).await.unwrap();
    let recreated = wait_for("the remote recreated", SECONDS, || async {
        let a = api.get("watched-a").await.ok()?;
        let now = a.status.as_ref()?.automation_id.clone()?;
        (now != id && ready_status(&a)?.0 == ConditionStatus::True).then_some(now)
    })
    .await;
    assert_eq!(remotes_named(&emu, "watched-a").len(), 1);
    assert!(tenant.get_automation(&recreated).await.is_ok());
}
