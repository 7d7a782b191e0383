//! End-to-end: `/metrics` shows Qlik's rate budget and the objects by `Ready` reason, and its
//! request counts agree exactly with what the tenant (the emulator) counted.
//!
//! A few automations become Ready through a tenant that answers some creates with 429, one
//! uses a revoked key; then the scrape is compared with the emulator's own counters.

// Tests state what must hold with unwrap/expect; the crate's lints forbid them elsewhere.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::{collections::BTreeSet, time::Duration};

use qlik_automations_operator::{
    crd::QlikAutomation,
    emulator::{Counters, FaultConfig, FaultRule, RunningEmulator},
    qlik::{Endpoint, telemetry::key_digest},
};

use support::{
    control_plane::{ControlPlane, unique_name},
    exposition::{Sample, parse},
    operator::{
        ADMIN_KEY, DEBUG_LOG, OperatorProcess, TestNamespace, USER_ID, USER_KEY, automation_yaml,
        emulator, free_addr, run_args, wait_ready, wait_reason,
    },
};

/// A key the emulator does not know: its automation is `Unauthorized`.
const REVOKED_KEY: &str = "e2e-revoked-key-6c1d0e";

/// The rate limits the operator is started with (below the emulator's, so every 429 is one
/// the emulator injected).
const TIER1_PER_MINUTE: f64 = 900.0;
const TIER2_PER_MINUTE: f64 = 90.0;

/// The metric names' common prefix.
const PREFIX: &str = "qlik_automations_operator_";

/// The samples of `name` (without the prefix) whose labels include every pair of `with`.
fn select<'a>(samples: &'a [Sample], name: &str, with: &[(&str, &str)]) -> Vec<&'a Sample> {
    let full = format!("{PREFIX}{name}");
    samples
        .iter()
        .filter(|s| s.name == full)
        .filter(|s| {
            with.iter()
                .all(|(k, v)| s.labels.get(*k).map(String::as_str) == Some(*v))
        })
        .collect()
}

/// The sum of the samples `select` picks.
fn sum(samples: &[Sample], name: &str, with: &[(&str, &str)]) -> f64 {
    select(samples, name, with).iter().map(|s| s.value).sum()
}

/// The one sample `select` picks.
fn one(samples: &[Sample], name: &str, with: &[(&str, &str)]) -> f64 {
    match select(samples, name, with).as_slice() {
        [s] => s.value,
        other => panic!("expected one {name}{with:?}, found {other:?}"),
    }
}

/// Asserts that `name` has samples and that every one has exactly the labels `keys`.
fn assert_labels(samples: &[Sample], name: &str, keys: &[&str]) {
    let found = select(samples, name, &[]);
    assert!(!found.is_empty(), "no {PREFIX}{name} in the scrape");
    let expected: BTreeSet<&str> = keys.iter().copied().collect();
    for s in found {
        let got: BTreeSet<&str> = s.labels.keys().map(String::as_str).collect();
        assert_eq!(got, expected, "labels of {s:?}");
    }
}

/// Responses with `status` the emulator counted, over every endpoint.
fn emulator_status(counters: &Counters, status: &str) -> f64 {
    counters
        .by_endpoint
        .values()
        .map(|e| e.by_status.get(status).copied().unwrap_or(0))
        .sum::<u64>() as f64
}

/// The exact agreements between the scrape and the emulator's counters, and the objects by
/// reason; `Err` says what differs (the operator may still be between two requests).
fn agreement(samples: &[Sample], counters: &Counters, tenant: &str) -> Result<(), String> {
    let good = key_digest(USER_KEY);
    let revoked = key_digest(REVOKED_KEY);
    let mut differences = Vec::new();
    let mut expect = |what: &str, metrics: f64, tenant_says: f64| {
        if metrics != tenant_says {
            differences.push(format!(
                "{what}: /metrics {metrics}, expected {tenant_says}"
            ));
        }
    };
    let user_requests = counters.by_user.get(USER_ID).copied().unwrap_or(0) as f64;
    let unauthenticated = counters.total as f64 - counters.by_user.values().sum::<u64>() as f64;
    expect(
        "requests (all)",
        sum(samples, "qlik_requests_total", &[("tenant", tenant)]),
        counters.total as f64,
    );
    expect(
        "requests of the user's key",
        sum(samples, "qlik_requests_total", &[("identity", &good)]),
        user_requests,
    );
    expect(
        "requests of the revoked key",
        sum(samples, "qlik_requests_total", &[("identity", &revoked)]),
        unauthenticated,
    );
    expect(
        "401s",
        sum(samples, "qlik_requests_total", &[("code", "401")]),
        emulator_status(counters, "401"),
    );
    expect(
        "429s counted by code",
        sum(samples, "qlik_requests_total", &[("code", "429")]),
        emulator_status(counters, "429"),
    );
    expect(
        "qlik_rate_limited_total",
        sum(samples, "qlik_rate_limited_total", &[]),
        emulator_status(counters, "429"),
    );
    for identity in [&good, &revoked] {
        expect(
            &format!("waits for a slot of {identity} (one per request)"),
            sum(
                samples,
                "rate_limit_wait_seconds_count",
                &[("identity", identity)],
            ),
            sum(samples, "qlik_requests_total", &[("identity", identity)]),
        );
    }
    for tier in ["tier1", "tier2"] {
        expect(
            &format!("requests in {tier}"),
            sum(
                samples,
                "qlik_requests_total",
                &[("identity", &good), ("tier", tier)],
            ),
            counters.by_tier.get(tier).copied().unwrap_or(0) as f64,
        );
    }
    let objects = |ready: &str, reason: &str| {
        sum(
            samples,
            "objects",
            &[
                ("kind", "QlikAutomation"),
                ("ready", ready),
                ("reason", reason),
            ],
        )
    };
    expect("objects Ready=True Synced", objects("True", "Synced"), 3.0);
    expect(
        "objects Ready=False Unauthorized",
        objects("False", "Unauthorized"),
        1.0,
    );
    if differences.is_empty() {
        Ok(())
    } else {
        Err(differences.join("\n"))
    }
}

/// `GET /metrics` of the operator.
async fn scrape(op: &OperatorProcess) -> String {
    let url = format!("http://{}/metrics", op.health_addr());
    let response = reqwest::get(&url)
        .await
        .unwrap_or_else(|e| panic!("GET {url}: {e}"));
    assert!(response.status().is_success(), "GET {url}: {response:?}");
    response.text().await.unwrap()
}

/// Scrapes until the scrape agrees exactly with the emulator's counters, read before and
/// after it with nothing sent in between; panics with the differences after `timeout`.
async fn settled_scrape(
    op: &OperatorProcess,
    emu: &RunningEmulator,
    timeout: Duration,
) -> (String, Counters) {
    let tenant = emu.addr().to_string();
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        let before = emu.counters();
        let text = scrape(op).await;
        let after = emu.counters();
        let samples = parse(&text);
        let agreed = agreement(&samples, &after, &tenant);
        if before == after && agreed.is_ok() {
            return (text, after);
        }
        if tokio::time::Instant::now() > deadline {
            panic!(
                "/metrics never agreed with the emulator ({}):\n{}\n\ncounters: {after:#?}\n\nscrape:\n{text}\n\noperator log:\n{}",
                if before == after {
                    "counters steady"
                } else {
                    "requests still going"
                },
                agreed.err().unwrap_or_default(),
                op.log_tail(40)
            );
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_show_the_rate_budget_and_agree_with_what_the_tenant_counted() {
    let ns = TestNamespace::new("metrics").await;
    // The first creates are answered 429 (`Retry-After: 1`); the client waits and retries.
    let emu = emulator(|c| {
        c.faults = FaultConfig {
            rules: vec![
                FaultRule::on(Endpoint::CreateAutomation)
                    .with_rate_limit(1.0)
                    .times(2),
            ],
        };
    })
    .await;
    ns.connection_secret("qlik", &emu.base_url(), USER_KEY)
        .await;
    ns.connection_secret("qlik-revoked", &emu.base_url(), REVOKED_KEY)
        .await;
    let listen = free_addr().to_string();
    let mut op = OperatorProcess::start(
        &unique_name("metrics-operator"),
        &ControlPlane::shared().kubeconfig_path(),
        &run_args(
            &ns.name,
            &listen,
            &[
                "--tier1-per-minute",
                "900",
                "--tier2-per-minute",
                "90",
                // Budgets per minute, so the limits below are the per-minute figures.
                "--rate-window-seconds",
                "60",
                // Nothing converged is looked at again during the test, so the counts settle.
                "--resync-seconds",
                "300",
                "--view-max-age-seconds",
                "300",
            ],
        ),
        &[("RUST_LOG".to_string(), DEBUG_LOG.to_string())],
    );

    let ready = ["metrics-a", "metrics-b", "metrics-c"];
    for name in ready {
        ns.apply_yaml::<QlikAutomation>(&automation_yaml(name, ""))
            .await;
    }
    let revoked_yaml =
        automation_yaml("metrics-revoked", "").replace("name: qlik\n", "name: qlik-revoked\n");
    assert!(revoked_yaml.contains("qlik-revoked"), "{revoked_yaml}");
    ns.apply_yaml::<QlikAutomation>(&revoked_yaml).await;
    let api = ns.api::<QlikAutomation>();
    for name in ready {
        wait_ready(&api, name).await;
    }
    wait_reason(&api, "metrics-revoked", "Unauthorized").await;
    op.assert_healthy().await;

    let (text, counters) = settled_scrape(&op, &emu, Duration::from_secs(60)).await;
    let samples = parse(&text);
    let tenant = emu.addr().to_string();
    let good = key_digest(USER_KEY);
    let revoked = key_digest(REVOKED_KEY);

    // Every name, with exactly its labels.
    let tier = ["tenant", "identity", "tier"];
    assert_labels(
        &samples,
        "qlik_requests_total",
        &["tenant", "identity", "tier", "endpoint", "code"],
    );
    assert_labels(&samples, "qlik_rate_limited_total", &tier);
    assert_labels(
        &samples,
        "rate_limit_wait_seconds_bucket",
        &["tenant", "identity", "tier", "le"],
    );
    assert_labels(&samples, "rate_limit_wait_seconds_count", &tier);
    assert_labels(&samples, "rate_limit_wait_seconds_sum", &tier);
    assert_labels(&samples, "rate_budget_remaining", &tier);
    assert_labels(&samples, "rate_budget_limit", &tier);
    assert_labels(&samples, "objects", &["kind", "ready", "reason"]);
    assert_labels(
        &samples,
        "reconcile_duration_seconds_bucket",
        &["kind", "le"],
    );
    assert_labels(&samples, "reconcile_duration_seconds_count", &["kind"]);
    assert_labels(&samples, "reconciles_total", &["kind", "result"]);
    assert_labels(&samples, "remote_writes_total", &["action"]);
    assert_labels(&samples, "leader", &[]);
    assert_eq!(one(&samples, "leader", &[]), 1.0);

    // The labels' values: the tenant's host and port, the key digests, real tiers and
    // endpoints, statuses.
    for s in select(&samples, "qlik_requests_total", &[]) {
        assert_eq!(s.labels["tenant"], tenant, "{s:?}");
        assert!([&good, &revoked].contains(&&s.labels["identity"]), "{s:?}");
        let endpoint = Endpoint::from_name(&s.labels["endpoint"])
            .unwrap_or_else(|| panic!("not an endpoint: {s:?}"));
        assert_eq!(s.labels["tier"], endpoint.tier().label(), "{s:?}");
        assert!(
            s.labels["code"].parse::<u16>().is_ok()
                || ["transport", "timeout"].contains(&s.labels["code"].as_str()),
            "{s:?}"
        );
    }
    assert!(
        one(
            &samples,
            "qlik_requests_total",
            &[
                ("identity", &good),
                ("endpoint", "create_automation"),
                ("code", "201"),
            ]
        ) >= 3.0
    );
    assert!(one(&samples, "remote_writes_total", &[("action", "create")]) >= 3.0);
    assert!(
        sum(
            &samples,
            "reconcile_duration_seconds_count",
            &[("kind", "QlikAutomation")]
        ) >= 4.0
    );

    // The 429s: as many as the tenant answered, all in the writes' tier of the user's key.
    let answered_429 = emulator_status(&counters, "429");
    assert!(answered_429 >= 1.0, "no 429 was injected: {counters:#?}");
    assert_eq!(
        one(
            &samples,
            "qlik_rate_limited_total",
            &[("identity", &good), ("tier", "tier2")]
        ),
        answered_429
    );
    // The client waited out the 429's `Retry-After: 1` before sending again.
    assert!(
        one(
            &samples,
            "rate_limit_wait_seconds_sum",
            &[("identity", &good), ("tier", "tier2")]
        ) >= 0.9,
        "{text}"
    );

    // The budget: the configured limits, per tenant and key; what is left is within them,
    // and the writes took some of tier 2's.
    for identity in [&good, &revoked] {
        for (tier, limit) in [("tier1", TIER1_PER_MINUTE), ("tier2", TIER2_PER_MINUTE)] {
            let labels = [
                ("tenant", tenant.as_str()),
                ("identity", identity),
                ("tier", tier),
            ];
            assert_eq!(one(&samples, "rate_budget_limit", &labels), limit);
            let remaining = one(&samples, "rate_budget_remaining", &labels);
            assert!(
                (0.0..=limit).contains(&remaining),
                "{labels:?}: {remaining}"
            );
        }
    }
    assert!(
        one(
            &samples,
            "rate_budget_remaining",
            &[("identity", &good), ("tier", "tier2")]
        ) < TIER2_PER_MINUTE
    );
    assert!(
        one(
            &samples,
            "rate_budget_remaining",
            &[("identity", &revoked), ("tier", "tier1")]
        ) < TIER1_PER_MINUTE
    );

    // No key ever appears, only digests of them.
    for key in [USER_KEY, REVOKED_KEY, ADMIN_KEY] {
        assert!(!text.contains(key), "the key {key} is in /metrics");
    }
    assert_ne!(good, revoked);
    op.assert_healthy().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oauth_token_requests_and_deprecated_answers_are_counted() {
    use qlik_automations_operator::{emulator::OAuthClient, qlik::Api};
    let ns = TestNamespace::new("metrics-oauth").await;
    // Tokens live 2 s: renewals happen while the test runs.
    let emu = emulator(|c| {
        c.oauth_clients = vec![OAuthClient::new("metrics-bot", "metrics-bot-secret")];
        c.oauth_token_ttl = Duration::from_secs(2);
    })
    .await;
    for (name, secret) in [
        ("qlik-bot", "metrics-bot-secret"),
        ("qlik-bot-wrong", "nope"),
    ] {
        ns.secret(
            name,
            &[
                ("tenantUrl", &emu.base_url()),
                ("clientId", "metrics-bot"),
                ("clientSecret", secret),
            ],
        )
        .await;
    }
    // And a v1 connection, whose answers announce the deprecation.
    ns.connection_secret("qlik", &emu.base_url(), USER_KEY)
        .await;
    let listen = free_addr().to_string();
    let op = OperatorProcess::start(
        &unique_name("metrics-oauth-operator"),
        &ControlPlane::shared().kubeconfig_path(),
        &run_args(&ns.name, &listen, &[]),
        &[("RUST_LOG".to_string(), DEBUG_LOG.to_string())],
    );
    let api = ns.api::<QlikAutomation>();
    for (name, secret) in [
        ("by-bot", "qlik-bot"),
        ("by-wrong-bot", "qlik-bot-wrong"),
        ("by-v1", "qlik"),
    ] {
        ns.apply_yaml::<QlikAutomation>(
            &automation_yaml(name, "").replace("name: qlik\n", &format!("name: {secret}\n")),
        )
        .await;
    }
    wait_ready(&api, "by-bot").await;
    wait_ready(&api, "by-v1").await;
    wait_reason(&api, "by-wrong-bot", "Unauthorized").await;
    // Several token lifetimes of resyncs.
    tokio::time::sleep(Duration::from_secs(8)).await;

    let samples = parse(&scrape(&op).await);
    let counters = emu.counters();
    assert_labels(
        &samples,
        "oauth_token_requests_total",
        &["tenant", "identity", "outcome"],
    );
    let issued = sum(
        &samples,
        "oauth_token_requests_total",
        &[("outcome", "issued")],
    );
    let refused = sum(
        &samples,
        "oauth_token_requests_total",
        &[("outcome", "refused")],
    );
    // Scraped after the emulator's counters were read: renewals may have happened between.
    assert!(issued >= 3.0, "tokens renewed: {issued}");
    assert!(
        issued <= counters.tokens_issued as f64 + 2.0,
        "{issued} vs {counters:?}"
    );
    assert!(refused >= 1.0, "{refused}");
    assert_eq!(
        select(
            &samples,
            "oauth_token_requests_total",
            &[("outcome", "issued")]
        )
        .len(),
        1,
        "one bot, one identity, whatever its secrets"
    );
    assert_labels(
        &samples,
        "qlik_deprecated_answers_total",
        &["tenant", "api"],
    );
    let deprecated = one(&samples, "qlik_deprecated_answers_total", &[("api", "v1")]);
    assert!(
        deprecated >= 1.0 && deprecated <= counters.api(Api::V1) as f64 + 5.0,
        "{deprecated} vs {counters:?}"
    );
    assert!(
        select(
            &samples,
            "qlik_deprecated_answers_total",
            &[("api", "workflows")]
        )
        .is_empty()
    );
}
