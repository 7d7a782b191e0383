//! The client against a running emulator, over real HTTP, in both API generations: every
//! endpoint, every error class, pagination, rate limits, retries and a run's life run once
//! per generation (`<test>::v1`, `<test>::workflows`); what only one generation has (its
//! settings, spaces, `listAll`, run debug logs, the refusals of a v1 connection, the
//! deprecation notice) has tests of its own, and so has the one store both share.
//! The OAuth2 M2M client is tested in `tests/client_oauth.rs`.

// Tests state what must hold with unwrap/expect; the crate's lints forbid them elsewhere.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::{
    sync::{
        Arc, Mutex,
        atomic::{AtomicU64, Ordering},
    },
    time::Duration,
};

use futures::TryStreamExt;
use qlik_automations_operator::{
    emulator::{ApiKey as EmulatorKey, EmulatorConfig, FaultConfig, FaultRule, RunningEmulator},
    qlik::{
        Answer, Api, ApiKey, Budget, Caller, ClientConfig, Endpoint, ErrorClass, Filter,
        ListParams, QlikClient, QlikError, RetryPolicy, Sort, Telemetry, Tier, UsageQuery,
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

/// The `Sunset` every v1 answer of the emulator carries.
const V1_SUNSET: &str = "Tue, 30 Nov 2027 00:00:00 GMT";

/// Runs a test body `async fn NAME(api: Api)` once per API generation, as the tests
/// `NAME::v1` and `NAME::workflows`.
macro_rules! in_both_generations {
    ($($name:ident),+ $(,)?) => {
        $(
            mod $name {
                #[tokio::test]
                async fn v1() {
                    super::$name(super::Api::V1).await
                }

                #[tokio::test]
                async fn workflows() {
                    super::$name(super::Api::Workflows).await
                }
            }
        )+
    };
}

in_both_generations!(
    automation_crud_and_actions,
    set_owner_needs_an_admin_and_changes_the_owner,
    error_classes_carry_qliks_detail_and_trace_id,
    bad_list_parameters_are_400s_naming_the_parameter,
    pagination_returns_450_automations_complete_and_ordered,
    a_429_is_honoured_through_retry_after,
    a_tier_the_tenant_reports_used_up_waits_for_its_reset,
    a_429_is_waited_out_and_the_call_succeeds,
    injected_503s_are_retried_for_reads_but_not_for_creates,
    a_dropped_connection_after_a_create_is_reported_as_ambiguous,
    a_connection_refused_is_a_transient_unsent_error,
    timeouts_are_typed,
    a_runs_life_through_stop_retry_and_export,
    usage_counts_what_happened_for_admins_only,
    a_foreign_pagination_link_is_refused,
);

fn keys() -> Vec<EmulatorKey> {
    vec![
        EmulatorKey::admin(ADMIN, "admin-user"),
        EmulatorKey::user(ALICE, "alice"),
        EmulatorKey::user(BOB, "bob"),
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

/// A client of `emu` as the user of `key`, speaking generation `api`, with generous limits
/// and quick retries, unless `tweak` says otherwise.
fn client_with(
    emu: &RunningEmulator,
    key: &str,
    api: Api,
    tweak: impl FnOnce(&mut ClientConfig),
) -> QlikClient {
    let mut config = support::client::fast_config(&emu.base_url(), ApiKey::new(key), api);
    tweak(&mut config);
    let client = QlikClient::new(config).unwrap();
    assert_eq!(client.api(), api);
    client
}

fn client(emu: &RunningEmulator, key: &str, api: Api) -> QlikClient {
    client_with(emu, key, api, |_| {})
}

fn request(name: &str) -> AutomationRequest {
    AutomationRequest {
        name: Some(name.into()),
        description: Some(format!("{name} description")),
        schedules: Some(vec![]),
        workspace: Some(
            json!({"blocks": [{"id": "b1", "type": "StartBlock", "runMode": "triggered"}]}),
        ),
        ..AutomationRequest::default()
    }
}

/// A settings change only an admin may make, in the generation's own field.
fn settings_change(api: Api) -> Settings {
    match api {
        Api::V1 => Settings {
            automations_enabled: Some(false),
            ..Settings::default()
        },
        Api::Workflows => Settings {
            max_concurrent_runs_per_automation: Some(5),
            ..Settings::default()
        },
    }
}

/// Every automation name `c` lists with `params`.
async fn names(c: &QlikClient, params: &ListParams) -> Result<Vec<String>, QlikError> {
    c.list_automations(params)
        .map_ok(|a| a.name.unwrap_or_default())
        .try_collect()
        .await
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

/// The class of an error that must be an `Unsupported` refusal of generation `api`.
fn unsupported(e: QlikError, api: Api) -> String {
    assert_eq!(e.class(), ErrorClass::Unsupported, "{e:?}");
    assert_eq!(e.status(), None, "nothing was sent: {e:?}");
    match e {
        QlikError::Unsupported { what, api: refused } => {
            assert_eq!(refused, api);
            what
        }
        other => panic!("{other:?}"),
    }
}

/// Counts what a client reports: every answer, and every deprecation notice in full.
#[derive(Debug, Default)]
struct Recorder {
    answers: AtomicU64,
    deprecated: Mutex<Vec<(Api, Option<String>)>>,
}

impl Telemetry for Recorder {
    fn answered(&self, _: &Caller, _: Tier, _: Endpoint, _: Answer) {
        self.answers.fetch_add(1, Ordering::SeqCst);
    }

    fn waited(&self, _: &Caller, _: Tier, _: Duration) {}

    fn budget(&self, _: &Caller, _: Tier, _: Budget) {}

    fn deprecated(&self, _: &Caller, api: Api, sunset: Option<&str>) {
        self.deprecated
            .lock()
            .unwrap()
            .push((api, sunset.map(str::to_owned)));
    }
}

// ---------------------------------------------------------------------------------------
// Shared behaviour: each body runs in both generations.
// ---------------------------------------------------------------------------------------

async fn automation_crud_and_actions(api: Api) {
    let emu = emulator(|_| {}).await;
    let alice = client(&emu, ALICE, api);

    let created = alice.create_automation(&request("nightly")).await.unwrap();
    assert_eq!(created.name.as_deref(), Some("nightly"));
    assert_eq!(created.owner_id.as_deref(), Some("alice"));
    assert_eq!(created.state, Some(AutomationState::Available));
    assert_eq!(created.run_mode, Some(RunMode::Triggered));
    assert!(created.execution_token.is_some());
    assert_eq!(created.space_id, None, "a personal automation");

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
    // Every request went to the client's generation, none to the other.
    let counters = emu.counters();
    let other = Api::ALL.into_iter().find(|a| *a != api).unwrap();
    assert_eq!(counters.api(other), 0, "{counters:?}");
    assert_eq!(counters.api(api), counters.total, "{counters:?}");
}

async fn set_owner_needs_an_admin_and_changes_the_owner(api: Api) {
    let emu = emulator(|c| c.run_duration = Duration::from_millis(100)).await;
    let alice = client(&emu, ALICE, api);
    let admin = client(&emu, ADMIN, api);
    let bob = client(&emu, BOB, api);
    let a = alice.create_automation(&request("to-move")).await.unwrap();
    let run = alice
        .create_run(&a.id, &RunRequest::api(None))
        .await
        .unwrap();
    wait_for_run(&alice, &a.id, &run.id, RunStatus::is_terminal).await;

    let refused = alice.set_owner(&a.id, "bob").await.unwrap_err();
    assert_eq!(refused.class(), ErrorClass::Forbidden, "{refused}");
    assert_eq!(refused.status(), Some(403));

    // Another user's automation does not exist for a plain key.
    assert_eq!(
        bob.get_automation(&a.id).await.unwrap_err().class(),
        ErrorClass::NotFound
    );

    admin.set_owner(&a.id, "bob").await.unwrap();
    let moved = bob.get_automation(&a.id).await.unwrap();
    assert_eq!(moved.owner_id.as_deref(), Some("bob"));
    // The run history goes with the move.
    assert_eq!(moved.last_run_status, None);
    let runs: Vec<_> = bob
        .list_runs(&a.id, &ListParams::default())
        .try_collect()
        .await
        .unwrap();
    assert!(runs.is_empty(), "{runs:?}");
    assert_eq!(
        alice.get_automation(&a.id).await.unwrap_err().class(),
        ErrorClass::NotFound
    );

    // change-owner on workflows, move on v1; never the other one.
    let (used, unused) = match api {
        Api::Workflows => (Endpoint::ChangeOwner, Endpoint::MoveAutomation),
        Api::V1 => (Endpoint::MoveAutomation, Endpoint::ChangeOwner),
    };
    let counters = emu.counters();
    assert_eq!(counters.endpoint(used), 2, "{counters:?}");
    assert_eq!(counters.endpoint_status(used, 403), 1);
    assert_eq!(counters.endpoint_status(used, 204), 1);
    assert_eq!(counters.endpoint(unused), 0, "{counters:?}");
}

async fn error_classes_carry_qliks_detail_and_trace_id(api: Api) {
    let emu = emulator(|_| {}).await;
    let stranger = client(&emu, "no-such-key", api);
    let err = stranger.get_settings().await.unwrap_err();
    assert_eq!(err.class(), ErrorClass::Unauthorized);
    assert_eq!(err.status(), Some(401));
    assert!(err.trace_id().is_some_and(|t| !t.is_empty()), "{err:?}");
    assert!(!err.to_string().contains("no-such-key"), "{err}");
    assert!(!format!("{err:?}").contains("no-such-key"));
    // An API key is not re-sent after a 401: one request.
    assert_eq!(emu.counters().endpoint(Endpoint::GetSettings), 1);

    let alice = client(&emu, ALICE, api);
    let err = alice
        .update_settings(&settings_change(api))
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

async fn bad_list_parameters_are_400s_naming_the_parameter(api: Api) {
    let emu = emulator(|_| {}).await;
    let alice = client(&emu, ALICE, api);
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

async fn pagination_returns_450_automations_complete_and_ordered(api: Api) {
    let emu = emulator(|_| {}).await;
    let alice = client(&emu, ALICE, api);
    let bob = client(&emu, BOB, api);
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
    let prefix = format!("{}/api{}", emu.base_url(), api.prefix());
    for href in [pages[0].next_href(), pages[1].prev_href()] {
        assert!(
            href.is_some_and(|h| h.starts_with(&prefix)),
            "absolute links of the generation's own collection: {href:?}"
        );
    }
    let listed: Vec<String> = pages
        .into_iter()
        .flat_map(|p| p.data)
        .map(|a| a.name.unwrap_or_default())
        .collect();
    assert_eq!(listed, expected);

    // A filtered, ascending listing in small pages.
    let filter =
        Filter::compare("name", CompareOp::Sw, "auto-1").or(Filter::eq("name", "auto-007"));
    let filtered = names(
        &alice,
        &ListParams::default()
            .filter(filter)
            .sort(Sort::asc("name"))
            .limit(7),
    )
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

    // The admin sees everyone's: by default on v1, with listAll=true on workflows.
    let admin = client(&emu, ADMIN, api);
    let everything = match api {
        Api::V1 => ListParams::default(),
        Api::Workflows => ListParams::default().list_all(),
    };
    let all: Vec<_> = admin
        .list_automations(&everything.limit(200))
        .try_collect()
        .await
        .unwrap();
    assert_eq!(all.len(), 451);
}

async fn a_429_is_honoured_through_retry_after(api: Api) {
    // The emulator allows 3 writes a minute. Another client using the same key (its own
    // limiter) spends two of them behind Alice's back, so her third meets the 429 and must
    // wait as told.
    let emu = emulator(|c| {
        c.tier2_per_minute = 3;
        c.rate_window = Duration::from_secs(60);
    })
    .await;
    let alice = client_with(&emu, ALICE, api, |c| {
        c.retry.max_retry_after = Duration::from_secs(0);
    });
    let other_tool = client_with(&emu, ALICE, api, |_| {});
    alice.create_automation(&request("a0")).await.unwrap();
    for i in 1..3 {
        other_tool
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
    let next = alice.limiter().reserve(Tier::Tier2);
    assert!(next > tokio::time::Instant::now() + Duration::from_millis(500));
    assert_eq!(emu.automations().len(), 3);
    assert!(emu.counters().rate_limited >= 1);
}

async fn a_tier_the_tenant_reports_used_up_waits_for_its_reset(api: Api) {
    // Three writes per 3 s window on the tenant; the client believes in 500 per 5 minutes,
    // but the third answer says nothing is left: the fourth waits for the reset instead of
    // meeting a 429.
    let emu = emulator(|c| {
        c.tier2_per_minute = 60;
        c.rate_window = Duration::from_secs(3);
    })
    .await;
    let alice = client(&emu, ALICE, api);
    let started = tokio::time::Instant::now();
    for i in 0..4 {
        alice
            .create_automation(&request(&format!("a{i}")))
            .await
            .unwrap();
    }
    assert!(
        started.elapsed() >= Duration::from_secs(1),
        "the fourth waited"
    );
    let counters = emu.counters();
    assert_eq!(counters.rate_limited, 0, "{counters:?}");
    assert_eq!(emu.automations().len(), 4);
}

async fn a_429_is_waited_out_and_the_call_succeeds(api: Api) {
    let emu = emulator(|_| {}).await;
    emu.set_faults(FaultConfig {
        rules: vec![FaultRule {
            endpoint: Some(Endpoint::GetSettings.name().into()),
            rate_limit_rate: 1.0,
            times: Some(1),
            ..FaultRule::default()
        }],
    });
    let alice = client(&emu, ALICE, api);
    let started = std::time::Instant::now();
    let settings = alice.get_settings().await.unwrap();
    // Each generation reads its own settings object.
    let expected = match api {
        Api::V1 => Settings {
            automations_enabled: Some(true),
            max_concurrent_runs_per_automation: None,
        },
        Api::Workflows => Settings {
            automations_enabled: None,
            max_concurrent_runs_per_automation: Some(10),
        },
    };
    assert_eq!(settings, expected);
    assert!(
        started.elapsed() >= Duration::from_millis(900),
        "waited for Retry-After: 1"
    );
    let counters = emu.counters();
    assert_eq!(counters.endpoint(Endpoint::GetSettings), 2);
    assert_eq!(counters.endpoint_status(Endpoint::GetSettings, 429), 1);
}

async fn injected_503s_are_retried_for_reads_but_not_for_creates(api: Api) {
    let emu = emulator(|_| {}).await;
    let alice = client(&emu, ALICE, api);
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
    assert_eq!(emu.counters().endpoint(Endpoint::GetAutomation), 3);

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
        emu.counters()
            .endpoint_status(Endpoint::CreateAutomation, 503),
        1
    );
    assert_eq!(
        emu.automations().len(),
        1,
        "the client did not repeat the create"
    );
}

async fn a_dropped_connection_after_a_create_is_reported_as_ambiguous(api: Api) {
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
    let alice = client(&emu, ALICE, api);
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
    let found = names(
        &alice,
        &ListParams::default().filter(Filter::eq("name", "ghost")),
    )
    .await
    .unwrap();
    assert_eq!(found, vec!["ghost".to_string()]);
    assert_eq!(emu.counters().endpoint(Endpoint::CreateAutomation), 1);
}

async fn a_connection_refused_is_a_transient_unsent_error(api: Api) {
    // Bind and drop a listener to find a port nothing listens on.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut config = ClientConfig::new(format!("http://127.0.0.1:{port}"), ApiKey::new(ALICE));
    config.api = api;
    config.retry = RetryPolicy::none();
    let c = QlikClient::new(config).unwrap();
    let err = c.get_settings().await.unwrap_err();
    assert!(
        matches!(
            err,
            QlikError::Transport {
                sent: false,
                endpoint: Endpoint::GetSettings,
                ..
            }
        ),
        "{err:?}"
    );
    assert_eq!(err.class(), ErrorClass::Transient);
    assert!(!err.is_ambiguous());
}

async fn timeouts_are_typed(api: Api) {
    let emu = emulator(|_| {}).await;
    emu.set_faults(FaultConfig {
        rules: vec![FaultRule {
            endpoint: Some(Endpoint::GetSettings.name().into()),
            latency_ms: Some((1_000, 1_000)),
            ..FaultRule::default()
        }],
    });
    let c = client_with(&emu, ALICE, api, |c| {
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

async fn a_runs_life_through_stop_retry_and_export(api: Api) {
    let emu = emulator(|c| c.run_duration = Duration::from_millis(400)).await;
    let alice = client(&emu, ALICE, api);
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

async fn usage_counts_what_happened_for_admins_only(api: Api) {
    let emu = emulator(|c| c.run_duration = Duration::from_millis(100)).await;
    let admin = client(&emu, ADMIN, api);
    let alice = client(&emu, ALICE, api);
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
}

async fn a_foreign_pagination_link_is_refused(api: Api) {
    let emu = emulator(|_| {}).await;
    let alice = client(&emu, ALICE, api);
    let err = alice
        .fetch_page::<serde_json::Value>(
            Endpoint::ListAutomations,
            &format!("http://evil.example.com/api{}", api.prefix()),
        )
        .await
        .unwrap_err();
    assert!(err.to_string().contains("instead of the tenant"), "{err}");
    assert_eq!(emu.counters().total, 0);
}

// ---------------------------------------------------------------------------------------
// Settings: each generation has its own.
// ---------------------------------------------------------------------------------------

#[tokio::test]
async fn v1_settings_switch_runs_off_for_the_whole_tenant() {
    let emu = emulator(|c| c.run_duration = Duration::from_millis(100)).await;
    let admin = client(&emu, ADMIN, Api::V1);
    let alice = client(&emu, ALICE, Api::V1);
    let alice_wf = client(&emu, ALICE, Api::Workflows);
    let a = alice.create_automation(&request("gated")).await.unwrap();

    let off = admin
        .update_settings(&settings_change(Api::V1))
        .await
        .unwrap();
    assert_eq!(
        off,
        Settings {
            automations_enabled: Some(false),
            max_concurrent_runs_per_automation: None,
        }
    );
    assert_eq!(
        alice.get_settings().await.unwrap().automations_enabled,
        Some(false)
    );
    let refused = alice
        .create_run(&a.id, &RunRequest::api(None))
        .await
        .unwrap_err();
    assert_eq!(refused.status(), Some(403), "{refused}");
    // One tenant: the switch holds for runs created through workflows too, whose settings
    // object does not show it.
    let refused = alice_wf
        .create_run(&a.id, &RunRequest::api(None))
        .await
        .unwrap_err();
    assert_eq!(refused.status(), Some(403), "{refused}");
    assert_eq!(
        alice_wf.get_settings().await.unwrap(),
        Settings {
            automations_enabled: None,
            max_concurrent_runs_per_automation: Some(10),
        }
    );

    admin
        .update_settings(&Settings {
            automations_enabled: Some(true),
            ..Settings::default()
        })
        .await
        .unwrap();
    let run = alice
        .create_run(&a.id, &RunRequest::api(None))
        .await
        .unwrap();
    assert_eq!(
        wait_for_run(&alice, &a.id, &run.id, RunStatus::is_terminal).await,
        RunStatus::Finished
    );
    assert_eq!(emu.counters().endpoint_status(Endpoint::CreateRun, 403), 2);
}

#[tokio::test]
async fn workflows_settings_bound_max_concurrent_runs() {
    let emu = emulator(|_| {}).await;
    let admin = client(&emu, ADMIN, Api::Workflows);
    let alice = client(&emu, ALICE, Api::Workflows);
    let limited = |name: &str, max: i64| AutomationRequest {
        max_concurrent_runs: Some(max),
        ..request(name)
    };

    // The default bound is 10.
    assert_eq!(
        alice
            .get_settings()
            .await
            .unwrap()
            .max_concurrent_runs_per_automation,
        Some(10)
    );
    let a = alice.create_automation(&limited("ten", 10)).await.unwrap();
    assert_eq!(a.max_concurrent_runs, Some(10));
    let err = alice
        .create_automation(&limited("eleven", 11))
        .await
        .unwrap_err();
    assert_eq!(err.class(), ErrorClass::InvalidRequest, "{err}");
    assert!(err.to_string().contains("maxConcurrentRuns"), "{err}");

    // Only an admin lowers it.
    let three = Settings {
        max_concurrent_runs_per_automation: Some(3),
        ..Settings::default()
    };
    assert_eq!(
        alice.update_settings(&three).await.unwrap_err().class(),
        ErrorClass::Forbidden
    );
    assert_eq!(admin.update_settings(&three).await.unwrap(), three);
    assert_eq!(alice.get_settings().await.unwrap(), three);

    let err = alice
        .create_automation(&limited("four", 4))
        .await
        .unwrap_err();
    assert_eq!(err.status(), Some(400), "{err}");
    let b = alice.create_automation(&limited("three", 3)).await.unwrap();
    assert_eq!(b.max_concurrent_runs, Some(3));
    // Updates are bounded the same way, and a good one is kept.
    let err = alice
        .update_automation(&b.id, &limited("three", 4))
        .await
        .unwrap_err();
    assert_eq!(err.status(), Some(400), "{err}");
    let updated = alice
        .update_automation(&b.id, &limited("two", 2))
        .await
        .unwrap();
    assert_eq!(updated.max_concurrent_runs, Some(2));
    assert_eq!(
        alice
            .get_automation(&b.id)
            .await
            .unwrap()
            .max_concurrent_runs,
        Some(2)
    );
    // Never set, it is absent.
    let c = alice.create_automation(&request("unset")).await.unwrap();
    assert_eq!(c.max_concurrent_runs, None);

    let created: Vec<_> = emu
        .automations()
        .iter()
        .map(|a| a["name"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(created, ["ten", "two", "unset"]);
}

// ---------------------------------------------------------------------------------------
// Workflows-only operations and parameters.
// ---------------------------------------------------------------------------------------

#[tokio::test]
async fn workflows_spaces_create_change_and_refuse_unknown_ones() {
    let emu = emulator(|c| c.spaces = vec!["sales".into(), "finance".into()]).await;
    let alice = client(&emu, ALICE, Api::Workflows);
    let in_space = |name: &str, space: &str| AutomationRequest {
        space_id: Some(space.into()),
        ..request(name)
    };

    let a = alice
        .create_automation(&in_space("spaced", "sales"))
        .await
        .unwrap();
    assert_eq!(a.space_id.as_deref(), Some("sales"));

    alice.change_space(&a.id, "finance").await.unwrap();
    assert_eq!(
        alice
            .get_automation(&a.id)
            .await
            .unwrap()
            .space_id
            .as_deref(),
        Some("finance")
    );
    // Lists show the space and filter on it.
    let in_finance = names(
        &alice,
        &ListParams::default().filter(Filter::eq("spaceId", "finance")),
    )
    .await
    .unwrap();
    assert_eq!(in_finance, ["spaced"]);

    // An update never moves it: the client leaves spaceId out of the body.
    let moved_by_update = alice
        .update_automation(&a.id, &in_space("spaced", "sales"))
        .await
        .unwrap();
    assert_eq!(moved_by_update.space_id.as_deref(), Some("finance"));

    // "" is the owner's personal space.
    alice.change_space(&a.id, "").await.unwrap();
    assert_eq!(alice.get_automation(&a.id).await.unwrap().space_id, None);

    // Unknown spaces are 404s, and nothing changes.
    let err = alice
        .create_automation(&in_space("lost", "nowhere"))
        .await
        .unwrap_err();
    assert_eq!(err.class(), ErrorClass::NotFound, "{err}");
    assert!(err.to_string().contains("nowhere"), "{err}");
    let err = alice.change_space(&a.id, "nowhere").await.unwrap_err();
    assert_eq!(err.class(), ErrorClass::NotFound, "{err}");
    assert_eq!(alice.get_automation(&a.id).await.unwrap().space_id, None);
    // Someone else's automation is not found either.
    let bob = client(&emu, BOB, Api::Workflows);
    assert_eq!(
        bob.change_space(&a.id, "sales").await.unwrap_err().class(),
        ErrorClass::NotFound
    );

    assert_eq!(emu.automations().len(), 1);
    let counters = emu.counters();
    assert_eq!(counters.endpoint_status(Endpoint::ChangeSpace, 204), 2);
    assert_eq!(counters.endpoint_status(Endpoint::ChangeSpace, 404), 2);
}

#[tokio::test]
async fn workflows_run_debug_url_serves_the_run_and_its_log() {
    let emu = emulator(|c| c.run_duration = Duration::from_millis(1500)).await;
    let alice = client(&emu, ALICE, Api::Workflows);
    let a = alice.create_automation(&request("debugged")).await.unwrap();
    let run = alice
        .create_run(&a.id, &RunRequest::api(None))
        .await
        .unwrap();

    // Unlike export, the debug log is there while the run still goes.
    let url = alice.get_run_debug(&a.id, &run.id).await.unwrap();
    assert!(url.starts_with(&emu.base_url()), "{url}");
    let debug = alice.download_export(&url).await.unwrap();
    assert_eq!(debug["run"]["id"], run.id.as_str(), "{debug}");
    assert!(debug["log"].is_array(), "{debug}");
    let early = debug["run"]["status"].as_str().unwrap().to_owned();
    assert!(
        ["queued", "starting", "running"].contains(&early.as_str()),
        "{debug}"
    );

    wait_for_run(&alice, &a.id, &run.id, RunStatus::is_terminal).await;
    let url = alice.get_run_debug(&a.id, &run.id).await.unwrap();
    let debug = alice.download_export(&url).await.unwrap();
    assert_eq!(debug["run"]["status"], "finished", "{debug}");
    assert!(
        debug["log"].as_array().is_some_and(|l| !l.is_empty()),
        "{debug}"
    );

    // An unknown run is a 404; a download is no API call.
    let err = alice.get_run_debug(&a.id, "no-such-run").await.unwrap_err();
    assert_eq!(err.class(), ErrorClass::NotFound, "{err}");
    let counters = emu.counters();
    assert_eq!(counters.endpoint(Endpoint::GetRunDebug), 3);
    assert_eq!(counters.endpoint_status(Endpoint::GetRunDebug, 200), 2);
}

#[tokio::test]
async fn workflows_list_all_is_for_admins_only() {
    let emu = emulator(|_| {}).await;
    let alice = client(&emu, ALICE, Api::Workflows);
    let bob = client(&emu, BOB, Api::Workflows);
    let admin = client(&emu, ADMIN, Api::Workflows);
    for name in ["a1", "a2"] {
        alice.create_automation(&request(name)).await.unwrap();
    }
    bob.create_automation(&request("b1")).await.unwrap();
    let by_name = ListParams::default().sort(Sort::asc("name"));

    // Without listAll everyone sees their own, an admin included.
    assert_eq!(names(&alice, &by_name).await.unwrap(), ["a1", "a2"]);
    assert!(names(&admin, &by_name).await.unwrap().is_empty());
    // With it an admin sees the tenant; a plain key is refused.
    assert_eq!(
        names(&admin, &by_name.clone().list_all()).await.unwrap(),
        ["a1", "a2", "b1"]
    );
    let err = names(&alice, &by_name.clone().list_all())
        .await
        .unwrap_err();
    assert_eq!(err.class(), ErrorClass::Forbidden, "{err}");
    assert_eq!(err.status(), Some(403));
    assert_eq!(
        emu.counters()
            .endpoint_status(Endpoint::ListAutomations, 403),
        1
    );
}

#[tokio::test]
async fn v1_drops_list_all_and_shows_admins_the_tenant() {
    let emu = emulator(|_| {}).await;
    let alice = client(&emu, ALICE, Api::V1);
    let bob = client(&emu, BOB, Api::V1);
    let admin = client(&emu, ADMIN, Api::V1);
    for name in ["a1", "a2"] {
        alice.create_automation(&request(name)).await.unwrap();
    }
    bob.create_automation(&request("b1")).await.unwrap();
    let by_name = ListParams::default().sort(Sort::asc("name"));

    assert_eq!(
        names(&admin, &by_name).await.unwrap(),
        ["a1", "a2", "b1"],
        "a v1 admin lists the tenant without listAll"
    );
    // listAll is not sent on v1, so a plain key is not refused: it sees its own.
    assert_eq!(
        names(&alice, &by_name.clone().list_all()).await.unwrap(),
        ["a1", "a2"]
    );
    assert_eq!(
        emu.counters()
            .endpoint_status(Endpoint::ListAutomations, 200),
        2
    );
}

#[tokio::test]
async fn workflows_requires_a_name_and_rounds_intervals_to_minutes() {
    let emu = emulator(|_| {}).await;
    let wf = client(&emu, ALICE, Api::Workflows);
    let v1 = client(&emu, ALICE, Api::V1);
    let every = |seconds: i64| AutomationRequest {
        schedules: Some(vec![ScheduleRequest {
            start_at: Some("2020-01-01 00:00:00".into()),
            stop_at: Some("2099-12-31 00:00:00".into()),
            interval: Some(seconds),
            timezone: Some("Europe/Stockholm".into()),
            recurrence: None,
        }]),
        ..request("scheduled")
    };

    let nameless = AutomationRequest {
        name: None,
        ..request("x")
    };
    let err = wf.create_automation(&nameless).await.unwrap_err();
    assert_eq!(err.class(), ErrorClass::InvalidRequest, "{err}");
    assert!(err.to_string().contains("name"), "{err}");
    let untitled = v1.create_automation(&nameless).await.unwrap();
    assert!(untitled.name.is_some_and(|n| !n.is_empty()));

    for (sent, stored) in [(90, 120), (89, 60), (3600, 3600)] {
        let a = wf.create_automation(&every(sent)).await.unwrap();
        assert_eq!(a.schedules[0].interval, Some(stored), "{sent}");
        let a = wf.update_automation(&a.id, &every(sent)).await.unwrap();
        assert_eq!(a.schedules[0].interval, Some(stored), "{sent}");
    }
    let kept = v1.create_automation(&every(90)).await.unwrap();
    assert_eq!(kept.schedules[0].interval, Some(90), "v1 keeps the seconds");
}

// ---------------------------------------------------------------------------------------
// What a v1 connection refuses, and what it is told.
// ---------------------------------------------------------------------------------------

#[tokio::test]
async fn v1_refuses_workflows_only_fields_and_operations_before_sending() {
    let emu = emulator(|c| c.spaces = vec!["sales".into()]).await;
    let admin = client(&emu, ADMIN, Api::V1);
    let a = admin.create_automation(&request("v1")).await.unwrap();
    emu.reset_counters();

    let spaced = AutomationRequest {
        space_id: Some("sales".into()),
        ..request("spaced")
    };
    let limited = AutomationRequest {
        max_concurrent_runs: Some(2),
        ..request("limited")
    };
    let max = Settings {
        max_concurrent_runs_per_automation: Some(3),
        ..Settings::default()
    };
    let refused = [
        admin.create_automation(&spaced).await.unwrap_err(),
        admin.create_automation(&limited).await.unwrap_err(),
        admin.update_automation(&a.id, &limited).await.unwrap_err(),
        admin.change_owner(&a.id, "alice").await.unwrap_err(),
        admin.change_space(&a.id, "sales").await.unwrap_err(),
        admin.get_run_debug(&a.id, "r1").await.unwrap_err(),
        admin.update_settings(&max).await.unwrap_err(),
    ];
    let what: Vec<String> = refused
        .into_iter()
        .map(|e| unsupported(e, Api::V1))
        .collect();
    assert_eq!(what[0], "spaceId");
    assert_eq!(what[1], "maxConcurrentRuns");
    assert_eq!(what[2], "maxConcurrentRuns");
    assert_eq!(what[6], "maxConcurrentRunsPerAutomation");
    for (i, operation) in [(3, "owner"), (4, "space"), (5, "debug")] {
        assert!(what[i].contains(operation), "{}", what[i]);
    }
    // And a workflows connection refuses v1's switch the same way.
    let wf = client(&emu, ADMIN, Api::Workflows);
    let switch = Settings {
        automations_enabled: Some(false),
        ..Settings::default()
    };
    assert_eq!(
        unsupported(
            wf.update_settings(&switch).await.unwrap_err(),
            Api::Workflows
        ),
        "automationsEnabled"
    );

    let counters = emu.counters();
    assert_eq!(
        counters.total, 0,
        "nothing reached the tenant: {counters:?}"
    );
    assert_eq!(emu.automations().len(), 1);
    assert_eq!(emu.automations()[0]["maxConcurrentRuns"], json!(null));
}

#[tokio::test]
async fn v1_answers_give_one_deprecation_notice_and_workflows_none() {
    let emu = emulator(|_| {}).await;
    let recorder = Arc::new(Recorder::default());
    let telemetry: Arc<dyn Telemetry> = recorder.clone();
    let v1 = client_with(&emu, ALICE, Api::V1, |c| c.telemetry = Some(telemetry));
    assert_eq!(v1.take_deprecation_notice(), None, "nothing answered yet");

    // An error answer carries the headers too.
    let err = v1.get_automation("no-such-automation").await.unwrap_err();
    assert_eq!(err.class(), ErrorClass::NotFound);
    let notice = v1
        .take_deprecation_notice()
        .expect("a notice after the first answer");
    assert_eq!(notice.api, Api::V1);
    assert_eq!(notice.sunset.as_deref(), Some(V1_SUNSET));
    // Exactly once, for the client and every clone of it.
    let clone = v1.clone();
    for _ in 0..3 {
        v1.get_settings().await.unwrap();
        clone.create_automation(&request("x")).await.unwrap();
    }
    assert_eq!(v1.take_deprecation_notice(), None);
    assert_eq!(clone.take_deprecation_notice(), None);
    // Telemetry hears of it on every answer.
    let answers = recorder.answers.load(Ordering::SeqCst);
    assert_eq!(answers, 7);
    let reported = recorder.deprecated.lock().unwrap().clone();
    assert_eq!(reported.len() as u64, answers);
    assert!(
        reported
            .iter()
            .all(|r| *r == (Api::V1, Some(V1_SUNSET.to_owned())))
    );

    // A new v1 client is told again; a workflows client never is.
    let another = client(&emu, ALICE, Api::V1);
    another.get_settings().await.unwrap();
    assert!(another.take_deprecation_notice().is_some());
    let recorder = Arc::new(Recorder::default());
    let telemetry: Arc<dyn Telemetry> = recorder.clone();
    let wf = client_with(&emu, ALICE, Api::Workflows, |c| {
        c.telemetry = Some(telemetry)
    });
    wf.get_settings().await.unwrap();
    wf.get_automation("no-such-automation").await.unwrap_err();
    wf.create_automation(&request("y")).await.unwrap();
    assert_eq!(wf.take_deprecation_notice(), None);
    assert_eq!(recorder.answers.load(Ordering::SeqCst), 3);
    assert!(recorder.deprecated.lock().unwrap().is_empty());
}

// ---------------------------------------------------------------------------------------
// Both generations over one tenant.
// ---------------------------------------------------------------------------------------

#[tokio::test]
async fn both_generations_share_one_store() {
    let emu = emulator(|c| c.run_duration = Duration::from_millis(100)).await;
    let wf = client(&emu, ALICE, Api::Workflows);
    let v1 = client(&emu, ALICE, Api::V1);

    // Made through workflows with a workflows-only field, seen and changed through v1.
    let a = wf
        .create_automation(&AutomationRequest {
            max_concurrent_runs: Some(2),
            ..request("made-in-workflows")
        })
        .await
        .unwrap();
    let seen = v1.get_automation(&a.id).await.unwrap();
    assert_eq!(seen.name.as_deref(), Some("made-in-workflows"));
    assert_eq!(seen.owner_id.as_deref(), Some("alice"));
    let renamed = v1
        .update_automation(&a.id, &request("renamed-in-v1"))
        .await
        .unwrap();
    assert_eq!(renamed.name.as_deref(), Some("renamed-in-v1"));
    // A v1 update leaves what v1 cannot see as it was.
    let back = wf.get_automation(&a.id).await.unwrap();
    assert_eq!(back.name.as_deref(), Some("renamed-in-v1"));
    assert_eq!(back.max_concurrent_runs, Some(2));
    v1.disable_automation(&a.id).await.unwrap();
    assert_eq!(
        wf.get_automation(&a.id).await.unwrap().state,
        Some(AutomationState::Disabled)
    );
    wf.enable_automation(&a.id).await.unwrap();

    // Made through v1, listed and deleted through workflows.
    let b = v1.create_automation(&request("made-in-v1")).await.unwrap();
    let by_name = ListParams::default().sort(Sort::asc("name"));
    assert_eq!(
        names(&wf, &by_name).await.unwrap(),
        ["made-in-v1", "renamed-in-v1"]
    );
    assert_eq!(
        names(&v1, &by_name).await.unwrap(),
        names(&wf, &by_name).await.unwrap()
    );

    // Runs too: one started in one generation is read in the other.
    let run = v1.create_run(&a.id, &RunRequest::api(None)).await.unwrap();
    assert_eq!(
        wait_for_run(&wf, &a.id, &run.id, RunStatus::is_terminal).await,
        RunStatus::Finished
    );

    wf.delete_automation(&b.id).await.unwrap();
    assert_eq!(
        v1.get_automation(&b.id).await.unwrap_err().class(),
        ErrorClass::NotFound
    );
    assert_eq!(emu.automations().len(), 1);

    let counters = emu.counters();
    assert_eq!(counters.api(Api::V1), 7, "{counters:?}");
    assert_eq!(
        counters.api(Api::V1) + counters.api(Api::Workflows),
        counters.total
    );
    assert!(counters.api(Api::Workflows) >= 8, "{counters:?}");
}
