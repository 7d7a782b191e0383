//! End-to-end on the real control plane: an operator given only an OAuth2 M2M client id and
//! secret manages automations in shared spaces through `/api/workflows/automations` without a
//! single v1 call, renewing short-lived tokens without a 401 ever surfacing; a wrong secret is
//! `Unauthorized` without a storm of token requests; a field the connection's generation does
//! not have is `UnsupportedByApi` with nothing written; a v1 connection is warned once that
//! Qlik deprecates it.

// Tests state what must hold with unwrap/expect; the crate's lints forbid them elsewhere.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::Secret;
use kube::{
    Api,
    api::{Patch, PatchParams},
};
use qlik_automations_operator::{
    crd::{ConditionStatus, QlikAutomation, QlikAutomationSettings},
    emulator::{Counters, OAuthClient as EmulatorOAuthClient, RunningEmulator},
    qlik::{Api as QlikApi, Endpoint},
};
use serde_json::json;

use support::operator::{
    ADMIN_ID, ADMIN_KEY, Operator, TestNamespace, admin_client, automation_yaml, emulator,
    events_for, ready_status, wait_for, wait_ready, wait_reason,
};

const WAIT: Duration = Duration::from_secs(60);
const BOT: &str = "operator-bot";
const BOT_SECRET: &str = "bot-secret-3c9e1f7a";

/// An emulator with an M2M client (tokens living `ttl`) and two shared spaces.
async fn tenant(ttl: Duration) -> RunningEmulator {
    emulator(|c| {
        c.oauth_clients = vec![EmulatorOAuthClient::new(BOT, BOT_SECRET)];
        c.oauth_token_ttl = ttl;
        c.spaces = vec!["team-a".into(), "team-b".into()];
    })
    .await
}

/// The connection Secret `name` of the bot, with `secret` as its client secret (workflows,
/// the default generation).
async fn oauth_secret(ns: &TestNamespace, emu: &RunningEmulator, name: &str, secret: &str) {
    ns.secret(
        name,
        &[
            ("tenantUrl", &emu.base_url()),
            ("clientId", BOT),
            ("clientSecret", secret),
        ],
    )
    .await;
}

async fn patch_spec(api: &Api<QlikAutomation>, name: &str, spec: serde_json::Value) {
    api.patch(
        name,
        &PatchParams::default(),
        &Patch::Merge(json!({ "spec": spec })),
    )
    .await
    .unwrap();
}

/// The remote as the tenant admin sees it now.
async fn remote(
    emu: &RunningEmulator,
    id: &str,
) -> qlik_automations_operator::qlik::model::Automation {
    admin_client(emu).get_automation(id).await.unwrap()
}

/// Waits until the remote `id` satisfies `check`.
async fn wait_remote(
    emu: &RunningEmulator,
    id: &str,
    what: &str,
    check: impl Fn(&qlik_automations_operator::qlik::model::Automation) -> bool,
) {
    wait_for(what, WAIT, || async {
        let r = admin_client(emu).get_automation(id).await.ok()?;
        check(&r).then_some(())
    })
    .await;
}

/// Every answer of the given status, over all endpoints.
fn answered(counters: &Counters, status: &str) -> u64 {
    counters
        .by_endpoint
        .values()
        .filter_map(|e| e.by_status.get(status))
        .sum()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_oauth_bot_manages_automations_in_shared_spaces_through_workflows_only() {
    let ns = TestNamespace::new("workflows").await;
    // Tokens live 3 s: the work below spans dozens of lifetimes.
    let emu = tenant(Duration::from_secs(3)).await;
    oauth_secret(&ns, &emu, "qlik", BOT_SECRET).await;
    let _op = Operator::start(&ns.name, &[]);
    let started = Instant::now();
    let api: Api<QlikAutomation> = ns.api();

    // Created in a shared space, with a concurrency limit, owned by the bot.
    ns.apply_yaml::<QlikAutomation>(&automation_yaml(
        "shared",
        "  spaceId: team-a\n  maxConcurrentRuns: 2",
    ))
    .await;
    let a = wait_ready(&api, "shared").await;
    let status = a.status.unwrap();
    let id = status.automation_id.clone().unwrap();
    assert_eq!(status.space_id.as_deref(), Some("team-a"));
    assert_eq!(status.max_concurrent_runs, Some(2));
    assert_eq!(status.owner_id.as_deref(), Some("bot-operator-bot"));
    let r = remote(&emu, &id).await;
    assert_eq!(
        (r.space_id.as_deref(), r.max_concurrent_runs),
        (Some("team-a"), Some(2))
    );

    // Another space, then the owner's personal space: change-space each time.
    patch_spec(&api, "shared", json!({"spaceId": "team-b"})).await;
    wait_remote(&emu, &id, "the move to team-b", |r| {
        r.space_id.as_deref() == Some("team-b")
    })
    .await;
    patch_spec(&api, "shared", json!({"spaceId": ""})).await;
    wait_remote(&emu, &id, "the move to the personal space", |r| {
        r.space_id.as_deref().unwrap_or_default().is_empty()
    })
    .await;
    let a = wait_for("status without a space", WAIT, || async {
        let a = api.get("shared").await.ok()?;
        let s = a.status.as_ref()?;
        (s.space_id.is_none() && s.observed_generation == a.metadata.generation).then_some(a)
    })
    .await;
    assert_eq!(ready_status(&a).unwrap().0, ConditionStatus::True);
    assert_eq!(emu.counters().endpoint(Endpoint::ChangeSpace), 2);

    // The tenant's settings bound maxConcurrentRuns; the operator sets them too.
    ns.apply_yaml::<QlikAutomationSettings>(
        "apiVersion: automations.qlik.dev/v1alpha1\nkind: QlikAutomationSettings\nmetadata:\n  name: tenant\nspec:\n  connection:\n    secretRef:\n      name: qlik\n  maxConcurrentRunsPerAutomation: 4\n",
    )
    .await;
    let settings: Api<QlikAutomationSettings> = ns.api();
    wait_for("the settings applied", WAIT, || async {
        let s = settings.get("tenant").await.ok()?.status?;
        (s.max_concurrent_runs_per_automation == Some(4)
            && s.conditions
                .iter()
                .any(|c| c.type_ == "Ready" && c.status == ConditionStatus::True))
        .then_some(())
    })
    .await;
    let tenant_settings = admin_client(&emu).get_settings().await.unwrap();
    assert_eq!(tenant_settings.max_concurrent_runs_per_automation, Some(4));

    patch_spec(&api, "shared", json!({"maxConcurrentRuns": 3})).await;
    wait_remote(&emu, &id, "maxConcurrentRuns 3", |r| {
        r.max_concurrent_runs == Some(3)
    })
    .await;
    // Above the tenant's limit: Qlik refuses, and says so in the condition.
    patch_spec(&api, "shared", json!({"maxConcurrentRuns": 6})).await;
    let a = wait_reason(&api, "shared", "InvalidSpec").await;
    let message = ready_status(&a).unwrap().2;
    assert!(message.contains("maxConcurrentRuns"), "{message}");
    assert_eq!(remote(&emu, &id).await.max_concurrent_runs, Some(3));

    // A new owner: change-owner, never v1's move.
    patch_spec(
        &api,
        "shared",
        json!({"maxConcurrentRuns": 2, "ownerId": ADMIN_ID}),
    )
    .await;
    wait_remote(&emu, &id, "the new owner", |r| {
        r.owner_id.as_deref() == Some(ADMIN_ID) && r.max_concurrent_runs == Some(2)
    })
    .await;
    wait_ready(&api, "shared").await;
    let counters = emu.counters();
    assert_eq!(counters.endpoint(Endpoint::ChangeOwner), 1, "{counters:?}");
    assert_eq!(
        counters.endpoint(Endpoint::MoveAutomation),
        0,
        "{counters:?}"
    );

    // Keep the operator busy for minutes: edits land across fifty token lifetimes.
    let mut edits = 0;
    while started.elapsed() < Duration::from_secs(150) || edits < 3 {
        edits += 1;
        let text = format!("edit {edits}");
        patch_spec(&api, "shared", json!({"description": text})).await;
        wait_remote(&emu, &id, &text, |r| {
            r.description.as_deref() == Some(text.as_str())
        })
        .await;
        tokio::time::sleep(Duration::from_secs(5)).await;
    }

    let counters = emu.counters();
    assert_eq!(
        counters.api(QlikApi::V1),
        0,
        "not a single v1 call: {counters:?}"
    );
    assert!(counters.api(QlikApi::Workflows) > 0);
    assert_eq!(answered(&counters, "401"), 0, "no 401 ever: {counters:?}");
    // Tokens were renewed shortly before they expired (at 2.7 s of their 3 s), again and
    // again, not once per request.
    let lifetimes = started.elapsed().as_secs() / 3;
    let renewals_at_most = started.elapsed().as_millis() as u64 / 2700 + 2;
    assert!(
        counters.tokens_issued >= lifetimes / 4 && counters.tokens_issued <= renewals_at_most,
        "{} tokens over {lifetimes} lifetimes: {counters:?}",
        counters.tokens_issued
    );
    assert_eq!(counters.token_requests, counters.tokens_issued);
    for (reason, message) in events_for(&ns, "shared").await {
        assert_ne!(reason, "Unauthorized", "{message}");
        assert!(!message.contains(BOT_SECRET), "{message}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_client_secret_is_unauthorized_without_a_storm_of_token_requests() {
    let ns = TestNamespace::new("wrong-secret").await;
    let emu = tenant(Duration::from_secs(21600)).await;
    let wrong = "not-the-secret-6d1e2f";
    oauth_secret(&ns, &emu, "qlik", wrong).await;
    let op = Operator::start(&ns.name, &[]);
    let api: Api<QlikAutomation> = ns.api();
    for i in 0..5 {
        ns.apply_yaml::<QlikAutomation>(&automation_yaml(&format!("locked-{i}"), ""))
            .await;
    }
    let started = Instant::now();
    for i in 0..5 {
        let a = wait_reason(&api, &format!("locked-{i}"), "Unauthorized").await;
        let conditions = &a.status.as_ref().unwrap().conditions;
        let stalled = conditions.iter().find(|c| c.type_ == "Stalled").unwrap();
        assert_eq!(stalled.status, ConditionStatus::True);
        let message = ready_status(&a).unwrap().2;
        assert!(message.contains(BOT), "{message}");
        assert!(!message.contains(wrong), "{message}");
    }
    // Five objects, resyncs every 3 s, a view that wants a fresh list every second: still
    // only a handful of token requests, spaced by the backoff (1 s doubling).
    tokio::time::sleep(Duration::from_secs(30).saturating_sub(started.elapsed())).await;
    let counters = emu.counters();
    assert_eq!(counters.tokens_issued, 0);
    assert!(
        (1..=7).contains(&counters.token_requests),
        "a storm of token requests: {counters:?}"
    );
    assert_eq!(
        counters.total, 0,
        "no API call without a token: {counters:?}"
    );
    assert!(!op.log().contains(wrong), "the secret reached the log");
    for (_, message) in events_for(&ns, "locked-0").await {
        assert!(!message.contains(wrong), "{message}");
    }

    // Fixing the Secret is enough: the objects recover without a restart.
    let secrets: Api<Secret> = ns.api();
    secrets
        .patch(
            "qlik",
            &PatchParams::default(),
            &Patch::Merge(json!({"stringData": {"clientSecret": BOT_SECRET}})),
        )
        .await
        .unwrap();
    for i in 0..5 {
        wait_ready(&api, &format!("locked-{i}")).await;
    }
    assert_eq!(emu.counters().tokens_issued, 1, "one token shared by all");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_field_the_generation_lacks_is_unsupported_and_v1_is_warned_once() {
    let ns = TestNamespace::new("generations").await;
    let emu = tenant(Duration::from_secs(21600)).await;
    // `qlik` is a v1 connection; `qlik-workflows` the same admin key on workflows.
    ns.connection_secret("qlik", &emu.base_url(), ADMIN_KEY)
        .await;
    ns.secret(
        "qlik-workflows",
        &[("tenantUrl", &emu.base_url()), ("apiKey", ADMIN_KEY)],
    )
    .await;
    let _op = Operator::start(&ns.name, &[]);
    let api: Api<QlikAutomation> = ns.api();

    // spaceId on v1: refused before anything is written.
    ns.apply_yaml::<QlikAutomation>(&automation_yaml("spaced", "  spaceId: team-a"))
        .await;
    let a = wait_reason(&api, "spaced", "UnsupportedByApi").await;
    let message = ready_status(&a).unwrap().2;
    assert!(
        message.contains("spec.spaceId") && message.contains("v1"),
        "{message}"
    );
    let stalled = a
        .status
        .as_ref()
        .unwrap()
        .conditions
        .iter()
        .find(|c| c.type_ == "Stalled")
        .cloned()
        .unwrap();
    assert_eq!(stalled.status, ConditionStatus::True);

    // A v1 automation works, and the namespace hears once that v1 is deprecated.
    ns.apply_yaml::<QlikAutomation>(&automation_yaml("plain", ""))
        .await;
    ns.apply_yaml::<QlikAutomation>(&automation_yaml("plain-2", ""))
        .await;
    wait_ready(&api, "plain").await;
    wait_ready(&api, "plain-2").await;
    tokio::time::sleep(Duration::from_secs(5)).await;
    let warnings: Vec<_> = ns
        .events()
        .await
        .into_iter()
        .filter(|e| e.reason.as_deref() == Some("DeprecatedApi"))
        .collect();
    assert_eq!(warnings.len(), 1, "{warnings:?}");
    let note = warnings[0].message.clone().unwrap_or_default();
    assert!(note.contains("2027-11-30") && note.contains("v1"), "{note}");
    assert_eq!(warnings[0].type_.as_deref(), Some("Warning"));
    let counters = emu.counters();
    assert_eq!(
        remotes_created(&emu, "spaced"),
        0,
        "nothing written for the refused spec: {counters:?}"
    );

    // automationsEnabled on workflows: refused the same way, naming the field.
    ns.apply_yaml::<QlikAutomationSettings>(
        "apiVersion: automations.qlik.dev/v1alpha1\nkind: QlikAutomationSettings\nmetadata:\n  name: tenant\nspec:\n  connection:\n    secretRef:\n      name: qlik-workflows\n  automationsEnabled: false\n",
    )
    .await;
    let settings: Api<QlikAutomationSettings> = ns.api();
    let status = wait_for("settings UnsupportedByApi", WAIT, || async {
        let s = settings.get("tenant").await.ok()?.status?;
        s.conditions
            .iter()
            .any(|c| c.type_ == "Ready" && c.reason == "UnsupportedByApi")
            .then_some(s)
    })
    .await;
    let ready = status
        .conditions
        .iter()
        .find(|c| c.type_ == "Ready")
        .unwrap();
    assert!(
        ready.message.contains("spec.automationsEnabled") && ready.message.contains("workflows"),
        "{}",
        ready.message
    );
    assert_eq!(emu.counters().endpoint(Endpoint::UpdateSettings), 0);
}

/// How many remotes called `name` exist.
fn remotes_created(emu: &RunningEmulator, name: &str) -> usize {
    support::operator::remotes_named(emu, name).len()
}
