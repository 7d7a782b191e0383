//! The client against a running emulator, over real HTTP: every endpoint, every error class,
//! pagination, rate limits, retries and a run's life.

// Tests state what must hold with unwrap/expect; the crate's lints forbid them elsewhere.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use futures::TryStreamExt;
use qlik_automations_operator::{
    emulator::{ApiKey as EmulatorKey, EmulatorConfig, FaultConfig, FaultRule, RunningEmulator},
    qlik::{
        ApiKey, ClientConfig, Endpoint, ErrorClass, Filter, ListParams, QlikClient, QlikError,
        RateLimits, RetryPolicy, Sort, UsageQuery,
        filter::CompareOp,
        model::{
            AutomationRequest, AutomationState, RunMode, RunRequest, RunStatus, ScheduleRequest,
            Settings, UsageMetric,
        },
    },
};
use serde_json::json;

const ADMIN: &str = "admin-key-0123";
const ALICE: &str = "alice-key-4567";
const BOB: &str = "bob-key-89ab";

fn keys() -> Vec<EmulatorKey> {
    vec![
        EmulatorKey {
            key: ADMIN.into(),
            user_id: "admin-user".into(),
            admin: true,
        },
        EmulatorKey {
            key: ALICE.into(),
            user_id: "alice".into(),
            admin: false,
        },
        EmulatorKey {
            key: BOB.into(),
            user_id: "bob".into(),
            admin: false,
        },
    ]
}

/// An emulator with generous limits and fast runs, unless the test says otherwise.
async fn emulator(tweak: impl FnOnce(&mut EmulatorConfig)) -> RunningEmulator {
    let mut config = EmulatorConfig {
        listen: "127.0.0.1:0".parse().unwrap(),
        keys: keys(),
        tier1_per_minute: 100_000,
        tier2_per_minute: 100_000,
        run_duration: Duration::from_millis(300),
        ..EmulatorConfig::default()
    };
    tweak(&mut config);
    RunningEmulator::start(config).await.unwrap()
}

fn client_with(
    emu: &RunningEmulator,
    key: &str,
    tweak: impl FnOnce(&mut ClientConfig),
) -> QlikClient {
    let mut config = ClientConfig::new(emu.base_url(), ApiKey::new(key));
    config.rate_limits = RateLimits {
        tier1_per_minute: 100_000,
        tier2_per_minute: 100_000,
        window: Duration::from_secs(60),
    };
    config.retry = RetryPolicy {
        base_delay: Duration::from_millis(10),
        max_delay: Duration::from_millis(50),
        ..RetryPolicy::default()
    };
    tweak(&mut config);
    QlikClient::new(config).unwrap()
}

fn client(emu: &RunningEmulator, key: &str) -> QlikClient {
    client_with(emu, key, |_| {})
}

fn request(name: &str) -> AutomationRequest {
    AutomationRequest {
        name: Some(name.into()),
        description: Some(format!("{name} description")),
        state: None,
        schedules: Some(vec![]),
        workspace: Some(
            json!({"blocks": [{"id": "b1", "type": "StartBlock", "runMode": "triggered"}]}),
        ),
    }
}

async fn wait_for_run(
    c: &QlikClient,
    id: &str,
    run_id: &str,
    done: impl Fn(&RunStatus) -> bool,
) -> RunStatus {
    for _ in 0..100 {
        let run = c.get_run(id, run_id).await.unwrap();
        let status = run.status.unwrap();
        if done(&status) {
            return status;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("run {run_id} never reached the expected status");
}

#[tokio::test]
async fn automation_crud_and_actions() {
    let emu = emulator(|_| {}).await;
    let alice = client(&emu, ALICE);

    let created = alice.create_automation(&request("nightly")).await.unwrap();
    assert_eq!(created.name.as_deref(), Some("nightly"));
    assert_eq!(created.owner_id.as_deref(), Some("alice"));
    assert_eq!(created.state, Some(AutomationState::Available));
    assert_eq!(created.run_mode, Some(RunMode::Triggered));
    assert!(created.execution_token.is_some());

    let fetched = alice.get_automation(&created.id).await.unwrap();
    assert_eq!(fetched.id, created.id);
    assert_eq!(fetched.description.as_deref(), Some("nightly description"));

    let mut change = request("nightly-renamed");
    change.schedules = Some(vec![ScheduleRequest {
        start_at: Some("2020-01-01 00:00:00".into()),
        stop_at: Some("2099-12-31 00:00:00".into()),
        interval: Some(3600),
        timezone: Some("Europe/Stockholm".into()),
        recurrence: None,
    }]);
    let updated = alice.update_automation(&created.id, &change).await.unwrap();
    assert_eq!(updated.name.as_deref(), Some("nightly-renamed"));
    assert_eq!(
        updated.run_mode,
        Some(RunMode::Scheduled),
        "an active schedule wins"
    );
    assert_eq!(updated.schedules.len(), 1);
    assert_eq!(updated.schedules[0].interval, Some(3600));

    alice.disable_automation(&created.id).await.unwrap();
    assert_eq!(
        alice.get_automation(&created.id).await.unwrap().state,
        Some(AutomationState::Disabled)
    );
    alice.enable_automation(&created.id).await.unwrap();
    assert_eq!(
        alice.get_automation(&created.id).await.unwrap().state,
        Some(AutomationState::Available)
    );

    let copy_id = alice
        .copy_automation(&created.id, "nightly-copy")
        .await
        .unwrap();
    let copy = alice.get_automation(&copy_id).await.unwrap();
    assert_eq!(copy.name.as_deref(), Some("nightly-copy"));
    assert_eq!(copy.workspace, updated.workspace);

    alice.delete_automation(&copy_id).await.unwrap();
    let gone = alice.get_automation(&copy_id).await.unwrap_err();
    assert_eq!(gone.class(), ErrorClass::NotFound, "{gone}");
    // Deleting twice is a 404 the caller can treat as done.
    assert_eq!(
        alice.delete_automation(&copy_id).await.unwrap_err().class(),
        ErrorClass::NotFound
    );

    let snapshot = emu.automations();
    assert_eq!(snapshot.len(), 1);
    assert_eq!(snapshot[0]["name"], "nightly-renamed");
}

#[tokio::test]
async fn move_needs_an_admin_and_changes_the_owner() {
    let emu = emulator(|_| {}).await;
    let alice = client(&emu, ALICE);
    let admin = client(&emu, ADMIN);
    let bob = client(&emu, BOB);
    let a = alice.create_automation(&request("to-move")).await.unwrap();

    let refused = alice.move_automation(&a.id, "bob").await.unwrap_err();
    assert_eq!(refused.class(), ErrorClass::Forbidden, "{refused}");
    assert_eq!(refused.status(), Some(403));

    // Another user's automation does not exist for a plain key.
    assert_eq!(
        bob.get_automation(&a.id).await.unwrap_err().class(),
        ErrorClass::NotFound
    );

    admin.move_automation(&a.id, "bob").await.unwrap();
    assert_eq!(
        bob.get_automation(&a.id).await.unwrap().owner_id.as_deref(),
        Some("bob")
    );
    assert_eq!(
        alice.get_automation(&a.id).await.unwrap_err().class(),
        ErrorClass::NotFound
    );
}

#[tokio::test]
async fn error_classes_carry_qliks_detail_and_trace_id() {
    let emu = emulator(|_| {}).await;
    let stranger = client(&emu, "no-such-key");
    let err = stranger.get_settings().await.unwrap_err();
    assert_eq!(err.class(), ErrorClass::Unauthorized);
    assert_eq!(err.status(), Some(401));
    assert!(err.trace_id().is_some_and(|t| !t.is_empty()), "{err:?}");
    assert!(!err.to_string().contains("no-such-key"), "{err}");
    assert!(!format!("{err:?}").contains("no-such-key"));

    let alice = client(&emu, ALICE);
    let err = alice
        .update_settings(&Settings {
            automations_enabled: false,
        })
        .await
        .unwrap_err();
    assert_eq!(err.class(), ErrorClass::Forbidden, "{err}");

    let err = alice
        .get_automation("00000000-0000-0000-0000-000000000000")
        .await
        .unwrap_err();
    assert_eq!(err.class(), ErrorClass::NotFound);

    let mut bad = request("bad-interval");
    bad.schedules = Some(vec![ScheduleRequest {
        start_at: Some("2026-01-01 00:00:00".into()),
        stop_at: Some("2027-01-01 00:00:00".into()),
        interval: Some(0),
        timezone: Some("Europe/Stockholm".into()),
        recurrence: None,
    }]);
    let err = alice.create_automation(&bad).await.unwrap_err();
    assert_eq!(err.class(), ErrorClass::InvalidRequest);
    assert_eq!(err.status(), Some(400));
    assert!(
        err.to_string().contains("interval"),
        "detail names the field: {err}"
    );
    assert!(err.trace_id().is_some());
    assert!(emu.automations().is_empty(), "nothing was created");
}

#[tokio::test]
async fn bad_list_parameters_are_400s_naming_the_parameter() {
    let emu = emulator(|_| {}).await;
    let alice = client(&emu, ALICE);
    let cases = [
        (ListParams::default().limit(0), "limit"),
        (ListParams::default().limit(201), "limit"),
        (
            ListParams::default().sort(Sort::desc("description")),
            "sort",
        ),
        (
            ListParams::default().filter(Filter::eq("description", "x")),
            "description",
        ),
    ];
    for (params, named) in cases {
        let err = alice.list_automations_page(&params).await.unwrap_err();
        assert_eq!(err.class(), ErrorClass::InvalidRequest, "{params:?}: {err}");
        assert!(err.to_string().contains(named), "{params:?}: {err}");
    }
    let a = alice.create_automation(&request("x")).await.unwrap();
    let err = alice
        .list_runs_page(&a.id, &ListParams::default().sort(Sort::asc("name")))
        .await
        .unwrap_err();
    assert_eq!(err.status(), Some(400), "{err}");
}

#[tokio::test]
async fn pagination_returns_450_automations_complete_and_ordered() {
    let emu = emulator(|_| {}).await;
    let alice = client(&emu, ALICE);
    let bob = client(&emu, BOB);
    let mut expected = Vec::new();
    for i in 0..450 {
        let name = format!("auto-{:03}", (i * 7919) % 450);
        alice.create_automation(&request(&name)).await.unwrap();
        expected.push(name);
    }
    // Bob's automations must not leak into Alice's list.
    bob.create_automation(&request("auto-bob")).await.unwrap();
    expected.sort();
    expected.reverse();

    let pages: Vec<_> = alice
        .automation_pages(&ListParams::default().sort(Sort::desc("name")).limit(200))
        .try_collect()
        .await
        .unwrap();
    assert_eq!(pages.len(), 3, "450 items at 200 a page");
    assert!(pages[0].prev_href().is_none());
    assert!(pages[2].next_href().is_none());
    assert!(
        pages[1]
            .prev_href()
            .is_some_and(|h| h.starts_with("http://"))
    );
    let names: Vec<String> = pages
        .into_iter()
        .flat_map(|p| p.data)
        .map(|a| a.name.unwrap_or_default())
        .collect();
    assert_eq!(names, expected);

    // A filtered, ascending listing in small pages.
    let filter =
        Filter::compare("name", CompareOp::Sw, "auto-1").or(Filter::eq("name", "auto-007"));
    let filtered: Vec<String> = alice
        .list_automations(
            &ListParams::default()
                .filter(filter)
                .sort(Sort::asc("name"))
                .limit(7),
        )
        .map_ok(|a| a.name.unwrap_or_default())
        .try_collect()
        .await
        .unwrap();
    let mut want: Vec<String> = expected
        .iter()
        .filter(|n| n.starts_with("auto-1") || *n == "auto-007")
        .cloned()
        .collect();
    want.sort();
    assert_eq!(filtered, want);
    assert_eq!(filtered.len(), 101);

    // The admin sees everyone's.
    let admin = client(&emu, ADMIN);
    let all: Vec<_> = admin
        .list_automations(&ListParams::default().limit(200))
        .try_collect()
        .await
        .unwrap();
    assert_eq!(all.len(), 451);
}

#[tokio::test]
async fn a_429_is_honoured_through_retry_after() {
    // The emulator allows 3 writes a minute; the client believes in far more, so it hits
    // the limit and must wait as told.
    let emu = emulator(|c| c.tier2_per_minute = 3).await;
    let alice = client_with(&emu, ALICE, |c| {
        c.retry.max_retry_after = Duration::from_secs(0);
    });
    for i in 0..3 {
        alice
            .create_automation(&request(&format!("a{i}")))
            .await
            .unwrap();
    }
    let err = alice.create_automation(&request("a3")).await.unwrap_err();
    assert_eq!(err.class(), ErrorClass::RateLimited, "{err}");
    let wait = err.retry_after().expect("Retry-After is read");
    assert!(
        wait >= Duration::from_secs(1) && wait <= Duration::from_secs(61),
        "{wait:?}"
    );
    // Reads are another tier and still work.
    alice
        .list_automations_page(&ListParams::default())
        .await
        .unwrap();
    // The client's limiter now holds the tier until the service's retry time.
    let next = alice
        .limiter()
        .reserve(qlik_automations_operator::qlik::Tier::Tier2);
    assert!(next > tokio::time::Instant::now() + Duration::from_millis(500));
    assert_eq!(emu.automations().len(), 3);
    assert!(emu.counters().rate_limited >= 1);
}

#[tokio::test]
async fn a_429_is_waited_out_and_the_call_succeeds() {
    let emu = emulator(|_| {}).await;
    emu.set_faults(FaultConfig {
        rules: vec![FaultRule {
            endpoint: Some(Endpoint::GetSettings.name().into()),
            rate_limit_rate: 1.0,
            times: Some(1),
            ..FaultRule::default()
        }],
    });
    let alice = client(&emu, ALICE);
    let started = std::time::Instant::now();
    let settings = alice.get_settings().await.unwrap();
    assert!(settings.automations_enabled);
    assert!(
        started.elapsed() >= Duration::from_millis(900),
        "waited for Retry-After: 1"
    );
    let counters = emu.counters();
    assert_eq!(counters.by_endpoint["get_settings"].total, 2);
}

#[tokio::test]
async fn injected_503s_are_retried_for_reads_but_not_for_creates() {
    let emu = emulator(|_| {}).await;
    let alice = client(&emu, ALICE);
    let a = alice.create_automation(&request("flaky")).await.unwrap();
    emu.set_faults(FaultConfig {
        rules: vec![FaultRule {
            endpoint: None,
            error_rate: 1.0,
            status: 503,
            times: Some(2),
            ..FaultRule::default()
        }],
    });
    let got = alice.get_automation(&a.id).await.unwrap();
    assert_eq!(got.id, a.id);
    assert_eq!(emu.counters().by_endpoint["get_automation"].total, 3);

    emu.set_faults(FaultConfig {
        rules: vec![FaultRule {
            endpoint: Some(Endpoint::CreateAutomation.name().into()),
            error_rate: 1.0,
            status: 503,
            times: Some(1),
            ..FaultRule::default()
        }],
    });
    let err = alice.create_automation(&request("once")).await.unwrap_err();
    assert_eq!(err.class(), ErrorClass::Transient);
    assert!(err.is_ambiguous());
    assert_eq!(
        emu.counters().by_endpoint["create_automation"].by_status["503"],
        1
    );
    assert_eq!(
        emu.automations().len(),
        1,
        "the client did not repeat the create"
    );
}

#[tokio::test]
async fn a_dropped_connection_after_a_create_is_reported_as_ambiguous() {
    let emu = emulator(|_| {}).await;
    emu.set_faults(FaultConfig {
        rules: vec![FaultRule {
            endpoint: Some(Endpoint::CreateAutomation.name().into()),
            drop_rate: 1.0,
            drop_after_processing: true,
            times: Some(1),
            ..FaultRule::default()
        }],
    });
    let alice = client(&emu, ALICE);
    let err = alice
        .create_automation(&request("ghost"))
        .await
        .unwrap_err();
    assert!(
        matches!(err, QlikError::Transport { sent: true, .. }),
        "{err:?}"
    );
    assert!(err.is_ambiguous());
    // It was created once, and the client did not create it again.
    let names: Vec<String> = alice
        .list_automations(&ListParams::default().filter(Filter::eq("name", "ghost")))
        .map_ok(|a| a.name.unwrap_or_default())
        .try_collect()
        .await
        .unwrap();
    assert_eq!(names, vec!["ghost".to_string()]);
}

#[tokio::test]
async fn a_connection_refused_is_a_transient_unsent_error() {
    // Bind and drop a listener to find a port nothing listens on.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut config = ClientConfig::new(format!("http://127.0.0.1:{port}"), ApiKey::new(ALICE));
    config.retry = RetryPolicy::none();
    let c = QlikClient::new(config).unwrap();
    let err = c.get_settings().await.unwrap_err();
    assert!(
        matches!(err, QlikError::Transport { sent: false, .. }),
        "{err:?}"
    );
    assert_eq!(err.class(), ErrorClass::Transient);
    assert!(!err.is_ambiguous());
}

#[tokio::test]
async fn timeouts_are_typed() {
    let emu = emulator(|_| {}).await;
    emu.set_faults(FaultConfig {
        rules: vec![FaultRule {
            endpoint: Some(Endpoint::GetSettings.name().into()),
            latency_ms: Some((1_000, 1_000)),
            ..FaultRule::default()
        }],
    });
    let c = client_with(&emu, ALICE, |c| {
        c.request_timeout = Duration::from_millis(200);
        c.retry = RetryPolicy::none();
    });
    let err = c.get_settings().await.unwrap_err();
    assert!(
        matches!(
            err,
            QlikError::Timeout {
                endpoint: Endpoint::GetSettings
            }
        ),
        "{err:?}"
    );
}

#[tokio::test]
async fn a_runs_life_through_stop_retry_and_export() {
    let emu = emulator(|c| c.run_duration = Duration::from_millis(400)).await;
    let alice = client(&emu, ALICE);
    let a = alice.create_automation(&request("runner")).await.unwrap();

    let run = alice
        .create_run(&a.id, &RunRequest::api(Some(json!({"answer": 42}))))
        .await
        .unwrap();
    assert!(
        matches!(
            run.status,
            Some(RunStatus::Queued | RunStatus::Starting | RunStatus::Running)
        ),
        "{:?}",
        run.status
    );
    let status = wait_for_run(&alice, &a.id, &run.id, RunStatus::is_terminal).await;
    assert_eq!(status, RunStatus::Finished);
    let after = alice.get_automation(&a.id).await.unwrap();
    assert_eq!(after.last_run_status, Some(RunStatus::Finished));
    assert!(after.last_run_at.is_some());

    // Export the finished run and download its log without the API key.
    let url = alice.export_run(&a.id, &run.id).await.unwrap();
    assert!(url.starts_with("http://127.0.0.1:"), "{url}");
    let log = alice.download_export(&url).await.unwrap();
    assert!(
        log.as_array().is_some_and(|entries| !entries.is_empty()),
        "{log}"
    );

    // Retry makes a new run with the same inputs.
    alice.retry_run(&a.id, &run.id).await.unwrap();
    let runs: Vec<_> = alice
        .list_runs(&a.id, &ListParams::default().sort(Sort::desc("startTime")))
        .try_collect()
        .await
        .unwrap();
    assert_eq!(runs.len(), 2);
    let retried = runs.iter().find(|r| r.id != run.id).unwrap();
    let retried = alice.get_run(&a.id, &retried.id).await.unwrap();
    assert_eq!(retried.inputs, Some(json!({"answer": 42})));

    // Stop the retried run while it runs.
    alice.stop_run(&a.id, &retried.id).await.unwrap();
    let status = wait_for_run(&alice, &a.id, &retried.id, RunStatus::is_terminal).await;
    assert_eq!(status, RunStatus::Stopped);
    // Stopping an ended run is refused.
    assert_eq!(
        alice
            .stop_run(&a.id, &retried.id)
            .await
            .unwrap_err()
            .class(),
        ErrorClass::InvalidRequest
    );

    // Runs can be filtered on status and paged.
    let stopped: Vec<_> = alice
        .list_runs(
            &a.id,
            &ListParams::default()
                .filter(Filter::eq("status", "stopped"))
                .limit(1),
        )
        .try_collect()
        .await
        .unwrap();
    assert_eq!(stopped.len(), 1);
    assert_eq!(stopped[0].id, retried.id);
}

#[tokio::test]
async fn settings_gate_runs_and_usage_counts_what_happened() {
    let emu = emulator(|c| c.run_duration = Duration::from_millis(100)).await;
    let admin = client(&emu, ADMIN);
    let alice = client(&emu, ALICE);
    let a = alice.create_automation(&request("counted")).await.unwrap();

    for _ in 0..2 {
        let run = alice
            .create_run(&a.id, &RunRequest::api(None))
            .await
            .unwrap();
        wait_for_run(&alice, &a.id, &run.id, RunStatus::is_terminal).await;
    }

    let today = chrono::Utc::now().format("%Y-%m-%d").to_string();
    let usage = admin
        .get_usage(&UsageQuery {
            filter: Filter::compare("date", CompareOp::Ge, today.as_str())
                .and(Filter::eq("name", "runs")),
            breakdown_by: Some("automation".into()),
        })
        .await
        .unwrap();
    assert_eq!(usage.len(), 1, "{usage:?}");
    assert_eq!(usage[0].name, UsageMetric::Runs);
    assert_eq!(usage[0].value, 2);
    assert_eq!(
        usage[0].automation.as_ref().unwrap().guid.as_deref(),
        Some(a.id.as_str())
    );
    let err = alice
        .get_usage(&UsageQuery {
            filter: Filter::eq("name", "runs"),
            breakdown_by: None,
        })
        .await
        .unwrap_err();
    assert_eq!(err.class(), ErrorClass::Forbidden);

    let off = admin
        .update_settings(&Settings {
            automations_enabled: false,
        })
        .await
        .unwrap();
    assert!(!off.automations_enabled);
    assert!(!alice.get_settings().await.unwrap().automations_enabled);
    let refused = alice
        .create_run(&a.id, &RunRequest::api(None))
        .await
        .unwrap_err();
    assert_eq!(refused.status(), Some(403), "{refused}");
}

#[tokio::test]
async fn a_foreign_pagination_link_is_refused() {
    let emu = emulator(|_| {}).await;
    let alice = client(&emu, ALICE);
    let err = alice
        .fetch_page::<serde_json::Value>(
            Endpoint::ListAutomations,
            "http://evil.example.com/api/v1/automations",
        )
        .await
        .unwrap_err();
    assert!(err.to_string().contains("instead of the tenant"), "{err}");
    assert_eq!(emu.counters().total, 0);
}
