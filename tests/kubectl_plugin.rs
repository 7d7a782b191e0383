//! End-to-end tests of `kubectl qlik` (the `kubectl-qlik` binary) on a real kube-apiserver
//! with the emulator as the tenant. Every test runs the binary as a subprocess, as kubectl
//! would, and asserts both what it prints and what changed in the tenant.

// Tests state what must hold with unwrap/expect; the crate's lints forbid them elsewhere.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::{
    path::{Path, PathBuf},
    time::Duration,
};

use k8s_openapi::api::{
    authentication::v1::{TokenRequest, TokenRequestSpec},
    core::v1::ServiceAccount,
    rbac::v1::{PolicyRule, Role, RoleBinding, RoleRef, Subject},
};
use kube::{
    Api, ResourceExt,
    api::{ObjectMeta, Patch, PatchParams, PostParams},
};
use qlik_automations_operator::{
    crd::QlikAutomation,
    emulator::RunningEmulator,
    qlik::{
        ApiKey, ClientConfig, Endpoint, ListParams, QlikClient, Tier,
        model::{AutomationRequest, Run, RunRequest},
    },
};
use serde_json::{Value, json};

use support::control_plane::ControlPlane;
use support::operator::{
    Operator, TestNamespace, USER_ID, USER_KEY, emulator, wait_for, wait_ready,
};
use support::plugin::{qlik, qlik_with};

const WAIT: Duration = Duration::from_secs(60);
/// Exit statuses the plugin documents.
const EXIT_ERROR: i32 = 1;
const EXIT_RUN_UNSUCCESSFUL: i32 = 3;
const EXIT_TIMEOUT: i32 = 4;

/// A client of the emulator as the plain user (the key the connection Secrets hold).
fn tenant(emu: &RunningEmulator) -> QlikClient {
    QlikClient::new(ClientConfig::new(emu.base_url(), ApiKey::new(USER_KEY))).unwrap()
}

/// A remote automation and a QlikAutomation linked to it the way the operator links them
/// (`status.automationId`), without running the operator: these tests are about the plugin.
async fn linked(
    ns: &TestNamespace,
    client: &QlikClient,
    name: &str,
    secret: Option<&str>,
    extra_spec: &str,
) -> String {
    let remote = client
        .create_automation(&AutomationRequest {
            name: Some(format!("{name} remote")),
            workspace: Some(json!({"blocks": [
                {"id": "start", "type": "StartBlock", "runMode": "manual"},
                {"id": "call", "type": "endpointBlock", "endpointId": "e1"}
            ]})),
            ..AutomationRequest::default()
        })
        .await
        .unwrap();
    unlinked(ns, name, secret, extra_spec).await;
    ns.api::<QlikAutomation>()
        .patch_status(
            name,
            &PatchParams::default(),
            &Patch::Merge(json!({"status": {"automationId": remote.id}})),
        )
        .await
        .unwrap();
    remote.id
}

/// A QlikAutomation no operator has seen yet.
async fn unlinked(ns: &TestNamespace, name: &str, secret: Option<&str>, extra_spec: &str) {
    let connection = secret
        .map(|s| format!("  connection:\n    secretRef:\n      name: {s}\n"))
        .unwrap_or_default();
    ns.apply_yaml::<QlikAutomation>(&format!(
        "apiVersion: automations.qlik.dev/v1alpha1\nkind: QlikAutomation\nmetadata:\n  name: {name}\n\
         spec:\n  description: created by the plugin tests\n{connection}{extra_spec}"
    ))
    .await;
}

async fn wait_ended(client: &QlikClient, automation: &str, run: &str) -> Run {
    wait_for(&format!("run {run} to end"), WAIT, || async {
        let r = client.get_run(automation, run).await.ok()?;
        r.status
            .as_ref()
            .is_some_and(|s| s.is_terminal())
            .then_some(r)
    })
    .await
}

async fn start_run(client: &QlikClient, automation: &str, inputs: Value) -> Run {
    client
        .create_run(automation, &RunRequest::api(Some(inputs)))
        .await
        .unwrap()
}

/// Every run of the automation, as the tenant lists them.
async fn tenant_runs(client: &QlikClient, automation: &str) -> Vec<Run> {
    client
        .list_runs_page(automation, &ListParams::default().limit(200))
        .await
        .unwrap()
        .data
}

/// The data lines of a table (the header dropped).
fn rows(table: &str) -> Vec<&str> {
    table.lines().skip(1).collect()
}

fn first_column(table: &str) -> Vec<String> {
    rows(table)
        .iter()
        .filter_map(|l| l.split_whitespace().next().map(str::to_owned))
        .collect()
}

fn ids(runs: &Value) -> Vec<String> {
    runs.as_array()
        .unwrap()
        .iter()
        .map(|r| r["id"].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn runs_lists_newest_first_with_status_filter_limit_and_pagination() {
    let ns = TestNamespace::new("plugin-runs").await;
    let emu = emulator(|c| c.run_duration = Duration::from_millis(200)).await;
    ns.connection_secret("qlik", &emu.base_url(), USER_KEY)
        .await;
    let client = tenant(&emu);
    let id = linked(&ns, &client, "lister", Some("qlik"), "").await;

    let mut created = Vec::new();
    for outcome in ["finished", "failed", "finished"] {
        let run = start_run(&client, &id, json!({"_emulatorOutcome": outcome})).await;
        wait_ended(&client, &id, &run.id).await;
        created.push(run.id);
    }
    let newest_first: Vec<String> = created.iter().rev().cloned().collect();

    let out = qlik(&["runs", "lister", "-n", &ns.name]).await.ok();
    let header = out.stdout.lines().next().unwrap();
    for column in ["ID", "STATUS", "CONTEXT", "STARTED", "DURATION", "TITLE"] {
        assert!(header.contains(column), "{}", out.stdout);
    }
    assert_eq!(first_column(&out.stdout), newest_first, "{}", out.stdout);
    let lines = rows(&out.stdout);
    assert!(lines[1].contains("failed"), "{}", out.stdout);
    assert!(
        lines
            .iter()
            .all(|l| l.contains(" api ") && l.contains("lister remote")),
        "{}",
        out.stdout
    );

    let out = qlik(&["runs", "lister", "-n", &ns.name, "--status", "failed"])
        .await
        .ok();
    assert_eq!(first_column(&out.stdout), vec![created[1].clone()]);

    let out = qlik(&["runs", "lister", "-n", &ns.name, "--limit", "2"])
        .await
        .ok();
    assert_eq!(first_column(&out.stdout), newest_first[..2].to_vec());
    assert!(
        out.stderr.contains("Showing the newest 2 runs"),
        "{}",
        out.stderr
    );

    let out = qlik(&["runs", "lister", "-n", &ns.name, "-o", "json"])
        .await
        .ok();
    let json: Value = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!(ids(&json), newest_first);
    assert_eq!(json[1]["status"], "failed");
    assert!(
        json[0].get("spaceId").is_none(),
        "null fields are left out: {json}"
    );
    let out = qlik(&["runs", "lister", "-n", &ns.name, "-o", "yaml"])
        .await
        .ok();
    let yaml: Value = serde_yaml::from_str(&out.stdout).unwrap();
    assert_eq!(ids(&yaml), newest_first);

    // Pagination: 7 runs in pages of 2; --limit 5 reads 3 pages and stops.
    for _ in 0..4 {
        let run = start_run(&client, &id, json!({})).await;
        wait_ended(&client, &id, &run.id).await;
    }
    let mut all: Vec<Run> = tenant_runs(&client, &id).await;
    all.sort_by(|a, b| b.start_time.cmp(&a.start_time));
    let all: Vec<String> = all.into_iter().map(|r| r.id).collect();
    assert_eq!(all.len(), 7);
    emu.reset_counters();
    let out = qlik(&[
        "runs",
        "lister",
        "-n",
        &ns.name,
        "--limit",
        "5",
        "--chunk-size",
        "2",
        "-o",
        "json",
    ])
    .await
    .ok();
    assert_eq!(
        ids(&serde_json::from_str(&out.stdout).unwrap()),
        all[..5].to_vec()
    );
    assert_eq!(emu.counters().endpoint(Endpoint::ListRuns), 3);
    emu.reset_counters();
    let out = qlik(&[
        "runs",
        "lister",
        "-n",
        &ns.name,
        "--limit",
        "0",
        "--chunk-size",
        "3",
    ])
    .await
    .ok();
    assert_eq!(first_column(&out.stdout), all);
    assert_eq!(emu.counters().endpoint(Endpoint::ListRuns), 3);
    assert!(out.stderr.is_empty(), "{}", out.stderr);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn run_creates_a_run_and_wait_follows_it_to_the_end() {
    let ns = TestNamespace::new("plugin-run").await;
    let emu = emulator(|c| c.run_duration = Duration::from_millis(1500)).await;
    ns.connection_secret("qlik", &emu.base_url(), USER_KEY)
        .await;
    let client = tenant(&emu);
    let id = linked(
        &ns,
        &client,
        "runner",
        Some("qlik"),
        "  runInputs:\n    answer: 42\n",
    )
    .await;

    // Without --inputs: the object's spec.runInputs; without --wait: back at once.
    let out = qlik(&["run", "runner", "-n", &ns.name]).await.ok();
    let first = out
        .stdout
        .strip_prefix("run ")
        .and_then(|s| s.split_whitespace().next())
        .unwrap_or_else(|| panic!("no run id in {:?}", out.stdout))
        .to_owned();
    assert!(
        out.stdout
            .contains(&format!("created for qlikautomation {}/runner", ns.name)),
        "{}",
        out.stdout
    );
    let run = client.get_run(&id, &first).await.unwrap();
    assert_eq!(run.inputs, Some(json!({"answer": 42})));
    assert_eq!(run.context.unwrap().as_str(), "api");
    assert!(
        !run.status.unwrap().is_terminal(),
        "returned without waiting"
    );

    // --wait prints each status change and the end.
    let out = qlik(&[
        "run",
        "runner",
        "-n",
        &ns.name,
        "--inputs",
        r#"{"day": "2026-01-31"}"#,
        "--wait",
    ])
    .await
    .ok();
    let lines: Vec<&str> = out.stdout.lines().collect();
    let second = lines[0].split_whitespace().nth(1).unwrap().to_owned();
    assert!(lines.len() >= 3, "{}", out.stdout);
    assert!(
        lines
            .last()
            .unwrap()
            .starts_with(&format!("run {second}: finished (duration ")),
        "{}",
        out.stdout
    );
    assert!(
        out.stdout.contains(&format!("run {second}: running")),
        "{}",
        out.stdout
    );
    let run = client.get_run(&id, &second).await.unwrap();
    assert_eq!(run.inputs, Some(json!({"day": "2026-01-31"})));
    assert_eq!(run.status.unwrap().as_str(), "finished");

    // A run that fails: exit 3; -o json prints the final run, progress goes to stderr.
    let dir = tempfile::tempdir().unwrap();
    let inputs = dir.path().join("inputs.json");
    std::fs::write(&inputs, r#"{"_emulatorOutcome": "failed"}"#).unwrap();
    let out = qlik(&[
        "run",
        "runner",
        "-n",
        &ns.name,
        "--inputs",
        &format!("@{}", inputs.display()),
        "--wait",
        "-o",
        "json",
    ])
    .await
    .expect_code(EXIT_RUN_UNSUCCESSFUL);
    let printed: Value = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!(printed["status"], "failed");
    let third = printed["id"].as_str().unwrap().to_owned();
    assert!(
        out.stderr.contains(&format!("run {third}: failed"))
            && out
                .stderr
                .contains(&format!("error: run {third} ended with status \"failed\"")),
        "{}",
        out.stderr
    );
    assert_eq!(
        client
            .get_run(&id, &third)
            .await
            .unwrap()
            .status
            .unwrap()
            .as_str(),
        "failed"
    );

    // --timeout shorter than the run: exit 4, and the run goes on.
    let out = qlik(&[
        "run",
        "runner",
        "-n",
        &ns.name,
        "--wait",
        "--timeout",
        "300ms",
    ])
    .await
    .expect_code(EXIT_TIMEOUT);
    assert!(out.stderr.contains("timed out after"), "{}", out.stderr);

    // Bad inputs are refused before anything is sent.
    let out = qlik(&["run", "runner", "-n", &ns.name, "--inputs", "{nope"])
        .await
        .expect_code(EXIT_ERROR);
    assert!(out.stderr.contains("not valid JSON"), "{}", out.stderr);

    assert_eq!(tenant_runs(&client, &id).await.len(), 4);
    assert_eq!(emu.counters().endpoint(Endpoint::CreateRun), 4);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logs_print_the_exported_log_of_a_run() {
    let ns = TestNamespace::new("plugin-logs").await;
    let emu = emulator(|c| c.run_duration = Duration::from_millis(300)).await;
    ns.connection_secret("qlik", &emu.base_url(), USER_KEY)
        .await;
    let client = tenant(&emu);
    let id = linked(&ns, &client, "logger", Some("qlik"), "").await;
    let ok = start_run(&client, &id, json!({})).await;
    wait_ended(&client, &id, &ok.id).await;

    emu.reset_counters();
    let out = qlik(&["logs", "logger", &ok.id, "-n", &ns.name]).await.ok();
    let lines: Vec<&str> = out.stdout.lines().collect();
    assert!(
        lines[0].contains("INFO") && lines[0].contains(&format!("Run {} queued", ok.id)),
        "{}",
        out.stdout
    );
    assert!(
        out.stdout.contains("Run started") && out.stdout.contains("[call]"),
        "{}",
        out.stdout
    );
    assert!(
        lines.last().unwrap().ends_with("Run finished"),
        "{}",
        out.stdout
    );
    assert_eq!(emu.counters().endpoint(Endpoint::ExportRun), 1);

    // Without a run id: the newest run, named on stderr.
    let failed = start_run(&client, &id, json!({"_emulatorOutcome": "failed"})).await;
    wait_ended(&client, &id, &failed.id).await;
    let out = qlik(&["logs", "logger", "-n", &ns.name]).await.ok();
    assert!(
        out.stderr
            .contains(&format!("Showing the newest run: {} (failed)", failed.id)),
        "{}",
        out.stderr
    );
    assert!(
        out.stdout.contains("ERROR") && out.stdout.lines().last().unwrap().ends_with("Run failed"),
        "{}",
        out.stdout
    );

    // -o json is the export as Qlik serves it.
    let exported = client
        .download_export(&client.export_run(&id, &ok.id).await.unwrap())
        .await
        .unwrap();
    let out = qlik(&["logs", "logger", &ok.id, "-n", &ns.name, "-o", "json"])
        .await
        .ok();
    assert_eq!(
        serde_json::from_str::<Value>(&out.stdout).unwrap(),
        exported
    );
    let out = qlik(&["logs", "logger", &ok.id, "-n", &ns.name, "-o", "yaml"])
        .await
        .ok();
    assert_eq!(
        serde_yaml::from_str::<Value>(&out.stdout).unwrap(),
        exported
    );

    // An unknown run: Qlik's 404, with its traceId.
    let out = qlik(&["logs", "logger", "no-such-run", "-n", &ns.name])
        .await
        .expect_code(EXIT_ERROR);
    assert!(
        out.stderr.contains("export run no-such-run")
            && out.stderr.contains("not found")
            && out.stderr.contains("traceId"),
        "{}",
        out.stderr
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logs_debug_reads_the_debug_log_through_an_oauth_workflows_connection() {
    use qlik_automations_operator::{
        emulator::OAuthClient as EmulatorOAuthClient,
        qlik::{Api, Credential, OAuthClient, Redacted},
    };
    let ns = TestNamespace::new("plugin-debug").await;
    let emu = emulator(|c| {
        c.run_duration = Duration::from_millis(300);
        c.oauth_clients = vec![EmulatorOAuthClient::new("plugin-bot", "plugin-bot-secret")];
    })
    .await;
    ns.secret(
        "qlik-bot",
        &[
            ("tenantUrl", &emu.base_url()),
            ("clientId", "plugin-bot"),
            ("clientSecret", "plugin-bot-secret"),
        ],
    )
    .await;
    let bot = QlikClient::new(ClientConfig::new(
        emu.base_url(),
        Credential::OAuth(OAuthClient {
            client_id: "plugin-bot".into(),
            client_secret: Redacted::new("plugin-bot-secret"),
            scope: String::new(),
        }),
    ))
    .unwrap();
    let id = linked(&ns, &bot, "debugged", Some("qlik-bot"), "").await;
    let run = start_run(&bot, &id, json!({})).await;
    wait_ended(&bot, &id, &run.id).await;

    emu.reset_counters();
    let out = qlik(&["logs", "debugged", &run.id, "--debug", "-n", &ns.name])
        .await
        .ok();
    assert!(
        out.stdout.contains(&format!("Run {} queued", run.id))
            && out.stdout.lines().last().unwrap().ends_with("Run finished"),
        "{}",
        out.stdout
    );
    let counters = emu.counters();
    assert_eq!(counters.endpoint(Endpoint::GetRunDebug), 1, "{counters:?}");
    assert_eq!(counters.endpoint(Endpoint::ExportRun), 0, "{counters:?}");
    assert_eq!(counters.api(Api::V1), 0, "{counters:?}");
    assert_eq!(counters.tokens_issued, 1, "{counters:?}");
    assert!(!out.stdout.contains("plugin-bot-secret") && !out.stderr.contains("plugin-bot-secret"));

    // On a v1 connection there is no debug log: said plainly, nothing sent.
    ns.connection_secret("qlik-v1", &emu.base_url(), USER_KEY)
        .await;
    let v1_id = linked(&ns, &tenant(&emu), "old-style", Some("qlik-v1"), "").await;
    emu.reset_counters();
    let out = qlik(&["logs", "old-style", "some-run", "--debug", "-n", &ns.name])
        .await
        .expect_code(EXIT_ERROR);
    assert!(
        out.stderr.contains("not supported by the v1 API")
            && out.stderr.contains("api to workflows"),
        "{}",
        out.stderr
    );
    assert_eq!(emu.counters().total, 0, "nothing sent for {v1_id}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stop_stops_a_run_and_retry_adds_one_with_the_same_inputs() {
    let ns = TestNamespace::new("plugin-actions").await;
    let emu = emulator(|c| c.run_duration = Duration::from_secs(20)).await;
    ns.connection_secret("qlik", &emu.base_url(), USER_KEY)
        .await;
    let client = tenant(&emu);
    let id = linked(&ns, &client, "acts", Some("qlik"), "").await;
    let run = start_run(&client, &id, json!({"batch": 7})).await;

    let out = qlik(&["stop", "acts", &run.id, "-n", &ns.name, "--wait"])
        .await
        .ok();
    assert!(
        out.stdout
            .starts_with(&format!("stop requested for run {}\n", run.id)),
        "{}",
        out.stdout
    );
    assert!(
        out.stdout
            .lines()
            .last()
            .unwrap()
            .starts_with(&format!("run {}: stopped", run.id)),
        "{}",
        out.stdout
    );
    let stopped = client.get_run(&id, &run.id).await.unwrap();
    assert_eq!(stopped.status.unwrap().as_str(), "stopped");

    // Stopping it again: the tenant refuses, and says why.
    let out = qlik(&["stop", "acts", &run.id, "-n", &ns.name])
        .await
        .expect_code(EXIT_ERROR);
    assert!(
        out.stderr
            .contains("has already ended and cannot be stopped")
            && out.stderr.contains("traceId"),
        "{}",
        out.stderr
    );

    let out = qlik(&["retry", "acts", &run.id, "-n", &ns.name]).await.ok();
    let runs = tenant_runs(&client, &id).await;
    assert_eq!(runs.len(), 2);
    let new = runs.iter().find(|r| r.id != run.id).unwrap();
    assert_eq!(
        out.stdout.trim(),
        format!("run {} retried: new run {} (queued)", run.id, new.id).as_str(),
        "{}",
        out.stdout
    );
    let new = client.get_run(&id, &new.id).await.unwrap();
    assert_eq!(new.inputs, Some(json!({"batch": 7})));

    // The retried run is still going: `logs` shows the newest run that has a log to export.
    let out = qlik(&["logs", "acts", "-n", &ns.name]).await.ok();
    assert!(
        out.stderr.starts_with(&format!(
            "Showing the newest completed run: {} (stopped); run {} is still ",
            run.id, new.id
        )),
        "{}",
        out.stderr
    );
    assert!(
        out.stdout.trim_end().ends_with("Run stopped on request"),
        "{}",
        out.stdout
    );
    let counters = emu.counters();
    assert_eq!(counters.endpoint(Endpoint::RetryRun), 1);
    assert_eq!(counters.endpoint(Endpoint::StopRun), 2);
}

const MANAGED: &str = r#"
apiVersion: automations.qlik.dev/v1alpha1
kind: QlikAutomation
metadata:
  name: managed
spec:
  connection:
    secretRef:
      name: qlik
  name: Managed by the operator
  workspace:
    blocks:
      - {id: start, type: StartBlock, runMode: triggered}
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_summarises_the_object_and_the_live_remote_without_the_token() {
    let ns = TestNamespace::new("plugin-status").await;
    let emu = emulator(|_| {}).await;
    ns.connection_secret("qlik", &emu.base_url(), USER_KEY)
        .await;
    let _op = Operator::start(&ns.name, &[]);
    let api: Api<QlikAutomation> = ns.api();
    ns.apply_yaml::<QlikAutomation>(MANAGED).await;
    let obj = wait_ready(&api, "managed").await;
    let id = obj.status.unwrap().automation_id.unwrap();
    let remote = emu
        .automations()
        .into_iter()
        .find(|a| a["id"] == id)
        .unwrap();
    let token = remote["executionToken"].as_str().unwrap().to_owned();
    assert!(!token.is_empty());

    emu.reset_counters();
    let out = qlik(&["status", "managed", "-n", &ns.name]).await.ok();
    out.assert_hides(&[&token]);
    for expected in [
        format!("Automation ID:  {id}"),
        "State:          available".into(),
        "Run mode:       triggered".into(),
        format!("Owner:          {USER_ID}"),
        "Conditions:".into(),
        "Tenant (live):".into(),
        "  Name:         Managed by the operator".into(),
    ] {
        assert!(
            out.stdout.contains(&expected),
            "no {expected:?} in\n{}",
            out.stdout
        );
    }
    for condition in ["Ready", "Synced"] {
        assert!(
            out.stdout
                .lines()
                .any(|l| l.trim_start().starts_with(condition) && l.contains("True")),
            "{}",
            out.stdout
        );
    }
    // The live part is a GET of the automation.
    assert!(emu.counters().endpoint(Endpoint::GetAutomation) >= 1);

    let out = qlik(&["status", "managed", "-n", &ns.name, "-o", "json"])
        .await
        .ok();
    out.assert_hides(&[&token]);
    let report: Value = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!(report["status"]["automationId"], id.as_str());
    assert_eq!(report["remote"]["id"], id.as_str());
    assert_eq!(report["remote"]["name"], "Managed by the operator");
    assert!(report["remote"].get("executionToken").is_none(), "{report}");
    let types: Vec<&str> = report["status"]["conditions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["type"].as_str().unwrap())
        .collect();
    assert!(
        types.contains(&"Ready") && types.contains(&"Synced"),
        "{report}"
    );

    let out = qlik(&["status", "managed", "-n", &ns.name, "-o", "yaml"])
        .await
        .ok();
    out.assert_hides(&[&token]);
    let report: Value = serde_yaml::from_str(&out.stdout).unwrap();
    assert_eq!(report["remote"]["ownerId"], USER_ID);
}

/// The Tier 1 requests the user of [`USER_KEY`] has made so far, at most: the emulator counts
/// requests per tier and per user, not per both, so the smaller of the two.
fn user_tier1_requests(emu: &RunningEmulator) -> u32 {
    let counters = emu.counters();
    let by_user = counters.by_user.get(USER_ID).copied().unwrap_or(0);
    u32::try_from(counters.tier(Tier::Tier1).min(by_user)).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_shows_the_rate_budget_the_tenant_reported_on_its_own_read() {
    // A limit of its own, so the figure printed can only come from the tenant's headers.
    const TIER1_LIMIT: u32 = 640;
    let ns = TestNamespace::new("plugin-budget").await;
    // The strict one-minute window, so the reset is at most a minute away.
    let emu = emulator(|c| {
        c.tier1_per_minute = TIER1_LIMIT;
        c.rate_window = Duration::from_secs(60);
    })
    .await;
    ns.connection_secret("qlik", &emu.base_url(), USER_KEY)
        .await;
    let _op = Operator::start(&ns.name, &[]);
    let api: Api<QlikAutomation> = ns.api();
    ns.apply_yaml::<QlikAutomation>(MANAGED).await;
    wait_ready(&api, "managed").await;

    let out = qlik(&["status", "managed", "-n", &ns.name]).await.ok();
    // Read after the plugin's answer: the operator may have sent more since, never fewer.
    let sent = user_tier1_requests(&emu);
    let line = out
        .stdout
        .lines()
        .find_map(|l| l.strip_prefix("Budget:"))
        .unwrap_or_else(|| panic!("no Budget line in\n{}", out.stdout))
        .trim();
    // `tier1 U/L used in this window (resets T), as the tenant reported; tier2 ...`
    let parsed = line
        .strip_prefix("tier1 ")
        .and_then(|rest| rest.split_once(" used in this window (resets "))
        .and_then(|(figures, rest)| {
            let (used, limit) = figures.split_once('/')?;
            let (reset, tier2) = rest.split_once("), as the tenant reported; ")?;
            Some((
                used.parse::<u32>().ok()?,
                limit.parse::<u32>().ok()?,
                reset,
                tier2,
            ))
        });
    let Some((used, limit, reset, tier2)) = parsed else {
        panic!("unexpected Budget line {line:?}");
    };
    assert_eq!(limit, TIER1_LIMIT, "{line}");
    // The plugin's own GET is counted in the window; nothing but this user's requests is.
    assert!(
        (1..=sent).contains(&used),
        "used {used}, sent {sent}: {line}"
    );
    let reset = chrono::DateTime::parse_from_rfc3339(reset)
        .unwrap_or_else(|e| panic!("reset {reset:?}: {e}"));
    let from_now = reset.to_utc() - chrono::Utc::now();
    assert!(
        from_now <= chrono::TimeDelta::seconds(61) && from_now >= -chrono::TimeDelta::seconds(60),
        "a reset {from_now} away in a 60 s window: {line}"
    );
    assert_eq!(tier2, "tier2 not reported (the plugin made no write)");

    let out = qlik(&["status", "managed", "-n", &ns.name, "-o", "json"])
        .await
        .ok();
    let sent = user_tier1_requests(&emu);
    let report: Value = serde_json::from_str(&out.stdout).unwrap();
    let tier1 = &report["budget"]["tier1"];
    assert_eq!(tier1["limit"], TIER1_LIMIT, "{report}");
    let (used, remaining) = (
        tier1["used"].as_u64().unwrap(),
        tier1["remaining"].as_u64().unwrap(),
    );
    assert_eq!(used, u64::from(TIER1_LIMIT) - remaining, "{report}");
    assert!(
        (1..=u64::from(sent)).contains(&used),
        "sent {sent}: {report}"
    );
    assert!(
        tier1["resetAt"].as_str().is_some_and(|t| t.ends_with('Z')),
        "{report}"
    );
    assert!(report["budget"].get("tier2").is_none(), "{report}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reconcile_waits_until_the_operator_has_handled_the_request() {
    let ns = TestNamespace::new("plugin-reconcile").await;
    let emu = emulator(|_| {}).await;
    ns.connection_secret("qlik", &emu.base_url(), USER_KEY)
        .await;
    let _op = Operator::start(&ns.name, &[]);
    let api: Api<QlikAutomation> = ns.api();
    ns.apply_yaml::<QlikAutomation>(MANAGED).await;
    wait_ready(&api, "managed").await;

    emu.reset_counters();
    let out = qlik(&["reconcile", "managed", "-n", &ns.name, "--timeout", "60s"])
        .await
        .ok();
    let token = out
        .stdout
        .lines()
        .next()
        .and_then(|l| l.split("reconcile.fluxcd.io/requestedAt=").nth(1))
        .and_then(|t| t.strip_suffix(')'))
        .unwrap_or_else(|| panic!("no token in {:?}", out.stdout))
        .to_owned();
    assert!(
        chrono::DateTime::parse_from_rfc3339(&token).is_ok(),
        "not RFC 3339: {token}"
    );
    assert!(
        out.stdout.contains("reconciled: Ready=True (Synced)"),
        "{}",
        out.stdout
    );
    let obj = api.get("managed").await.unwrap();
    assert_eq!(obj.annotations()["reconcile.fluxcd.io/requestedAt"], token);
    assert_eq!(
        obj.status.unwrap().last_handled_reconcile_at.as_deref(),
        Some(token.as_str())
    );
    // A forced reconcile reads the remote in full.
    assert!(emu.counters().endpoint(Endpoint::GetAutomation) >= 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn errors_are_clear_on_stderr_and_exit_non_zero() {
    let ns = TestNamespace::new("plugin-errors").await;
    let emu = emulator(|_| {}).await;
    ns.connection_secret("qlik", &emu.base_url(), USER_KEY)
        .await;
    ns.connection_secret("wrong", &emu.base_url(), "not-a-valid-key-0000")
        .await;
    let client = tenant(&emu);
    linked(&ns, &client, "good", Some("qlik"), "").await;

    // No such object.
    let out = qlik(&["runs", "nope", "-n", &ns.name])
        .await
        .expect_code(EXIT_ERROR);
    assert!(
        out.stderr.contains(&format!(
            "qlikautomation \"nope\" not found in namespace \"{}\"",
            ns.name
        )),
        "{}",
        out.stderr
    );
    assert!(out.stdout.is_empty());

    // Not created remotely yet: every tenant command says so; status still shows the object.
    unlinked(&ns, "fresh", Some("qlik"), "").await;
    for args in [
        vec!["runs", "fresh"],
        vec!["run", "fresh"],
        vec!["logs", "fresh"],
        vec!["retry", "fresh", "r1"],
        vec!["stop", "fresh", "r1"],
    ] {
        let mut args = args;
        args.extend(["-n", &ns.name]);
        let out = qlik(&args).await.expect_code(EXIT_ERROR);
        assert!(
            out.stderr
                .contains("is not created in the tenant yet (no status.automationId)"),
            "{args:?}: {}",
            out.stderr
        );
    }
    let out = qlik(&["status", "fresh", "-n", &ns.name])
        .await
        .expect_code(EXIT_ERROR);
    assert!(
        out.stdout.contains("Name:           fresh"),
        "{}",
        out.stdout
    );
    assert!(
        out.stderr.contains("no status.automationId"),
        "{}",
        out.stderr
    );

    // The tenant refuses the key: Qlik's answer, its traceId, and which Secret to fix.
    linked(&ns, &client, "badkey", Some("wrong"), "").await;
    let out = qlik(&["runs", "badkey", "-n", &ns.name])
        .await
        .expect_code(EXIT_ERROR);
    out.assert_hides(&["not-a-valid-key-0000"]);
    assert!(
        out.stderr.contains("unauthorized")
            && out.stderr.contains("traceId")
            && out.stderr.contains(&format!("Secret {}/wrong", ns.name)),
        "{}",
        out.stderr
    );

    // No spec.connection: the operator's default connection must be named.
    linked(&ns, &client, "defaulted", None, "").await;
    let out = qlik(&["runs", "defaulted", "-n", &ns.name])
        .await
        .expect_code(EXIT_ERROR);
    assert!(
        out.stderr.contains("spec.connection is not set")
            && out.stderr.contains("--default-connection"),
        "{}",
        out.stderr
    );
    let default = format!("{}/qlik", ns.name);
    let out = qlik(&[
        "runs",
        "defaulted",
        "-n",
        &ns.name,
        "--default-connection",
        &default,
    ])
    .await
    .ok();
    assert!(
        out.stderr.starts_with("No runs for qlikautomation"),
        "{}",
        out.stderr
    );
    let out = qlik_with(
        &ControlPlane::shared().kubeconfig_path(),
        &["run", "defaulted", "-n", &ns.name],
        &[("QAO_DEFAULT_CONNECTION", &default)],
    )
    .await
    .ok();
    assert!(out.stdout.starts_with("run "), "{}", out.stdout);

    // No operator here: reconcile gives up after --timeout with exit 4.
    let out = qlik(&["reconcile", "good", "-n", &ns.name, "--timeout", "1s"])
        .await
        .expect_code(EXIT_TIMEOUT);
    assert!(
        out.stderr
            .contains("timed out after 1s waiting for the operator"),
        "{}",
        out.stderr
    );
}

/// A kubeconfig for `token`: its current context `viewer` is in `namespace`, a second
/// context `elsewhere` in `default`.
fn token_kubeconfig(dir: &Path, token: &str, namespace: &str) -> PathBuf {
    let cp = ControlPlane::shared();
    let path = dir.join("kubeconfig");
    let yaml = format!(
        "apiVersion: v1\nkind: Config\n\
         clusters:\n- name: local\n  cluster:\n    server: {server}\n    certificate-authority: {ca}\n\
         users:\n- name: viewer\n  user:\n    token: {token}\n\
         contexts:\n- name: viewer\n  context:\n    cluster: local\n    user: viewer\n    namespace: {namespace}\n\
         - name: elsewhere\n  context:\n    cluster: local\n    user: viewer\n    namespace: default\n\
         current-context: viewer\n",
        server = cp.server_url(),
        ca = cp.ca_cert_path().display(),
        token = serde_json::to_string(token).unwrap(),
    );
    std::fs::write(&path, yaml).unwrap();
    path
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_user_without_rbac_on_secrets_is_told_which_permission_is_missing() {
    let ns = TestNamespace::new("plugin-rbac").await;
    let emu = emulator(|_| {}).await;
    ns.connection_secret("qlik", &emu.base_url(), USER_KEY)
        .await;
    let client = tenant(&emu);
    let id = linked(&ns, &client, "guarded", Some("qlik"), "").await;

    // A ServiceAccount that may read and annotate QlikAutomations, but not read Secrets.
    let meta = |name: &str| ObjectMeta {
        name: Some(name.into()),
        ..ObjectMeta::default()
    };
    ns.api::<ServiceAccount>()
        .create(
            &PostParams::default(),
            &ServiceAccount {
                metadata: meta("viewer"),
                ..ServiceAccount::default()
            },
        )
        .await
        .unwrap();
    ns.api::<Role>()
        .create(
            &PostParams::default(),
            &Role {
                metadata: meta("qlik-viewer"),
                rules: Some(vec![PolicyRule {
                    api_groups: Some(vec!["automations.qlik.dev".into()]),
                    resources: Some(vec!["qlikautomations".into()]),
                    verbs: vec!["get".into(), "patch".into()],
                    ..PolicyRule::default()
                }]),
            },
        )
        .await
        .unwrap();
    ns.api::<RoleBinding>()
        .create(
            &PostParams::default(),
            &RoleBinding {
                metadata: meta("qlik-viewer"),
                role_ref: RoleRef {
                    api_group: "rbac.authorization.k8s.io".into(),
                    kind: "Role".into(),
                    name: "qlik-viewer".into(),
                },
                subjects: Some(vec![Subject {
                    kind: "ServiceAccount".into(),
                    name: "viewer".into(),
                    namespace: Some(ns.name.clone()),
                    ..Subject::default()
                }]),
            },
        )
        .await
        .unwrap();
    let issued = ns
        .api::<ServiceAccount>()
        .create_token_request(
            "viewer",
            &PostParams::default(),
            &TokenRequest {
                spec: TokenRequestSpec {
                    expiration_seconds: Some(600),
                    ..TokenRequestSpec::default()
                },
                ..TokenRequest::default()
            },
        )
        .await
        .unwrap();
    let token = issued.status.unwrap().token;
    let dir = tempfile::tempdir().unwrap();
    // No -n below: the namespace comes from the kubeconfig context.
    let kubeconfig = token_kubeconfig(dir.path(), &token, &ns.name);

    let denied = format!(
        "cannot get secrets in namespace \"{}\": needs RBAC get on secrets",
        ns.name
    );
    let out = qlik_with(&kubeconfig, &["runs", "guarded"], &[])
        .await
        .expect_code(EXIT_ERROR);
    assert!(out.stderr.contains(&denied), "{}", out.stderr);
    out.assert_hides(&[&token]);

    // status still shows what the object says, then reports the missing permission.
    let out = qlik_with(&kubeconfig, &["status", "guarded"], &[])
        .await
        .expect_code(EXIT_ERROR);
    assert!(
        out.stdout.contains(&format!("Automation ID:  {id}")),
        "{}",
        out.stdout
    );
    assert!(out.stderr.contains(&denied), "{}", out.stderr);

    // Elsewhere it may not even read QlikAutomations: -n, and --context picking a context in
    // another namespace, both lead there.
    let no_get =
        "cannot get qlikautomations in namespace \"default\": needs RBAC get on qlikautomations";
    let out = qlik_with(&kubeconfig, &["runs", "guarded", "-n", "default"], &[])
        .await
        .expect_code(EXIT_ERROR);
    assert!(out.stderr.contains(no_get), "{}", out.stderr);
    let out = qlik_with(
        &kubeconfig,
        &["runs", "guarded", "--context", "elsewhere"],
        &[],
    )
    .await
    .expect_code(EXIT_ERROR);
    assert!(out.stderr.contains(no_get), "{}", out.stderr);

    // --kubeconfig wins over $KUBECONFIG (the admin's, which could read the Secret).
    let admin = ControlPlane::shared().kubeconfig_path();
    let path = kubeconfig.display().to_string();
    let out = qlik_with(&admin, &["runs", "guarded", "--kubeconfig", &path], &[])
        .await
        .expect_code(EXIT_ERROR);
    assert!(out.stderr.contains(&denied), "{}", out.stderr);
    // Nothing reached the tenant.
    assert_eq!(emu.counters().tier(Tier::Tier1), 0);
}
