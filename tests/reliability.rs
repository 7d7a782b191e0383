//! Reliability: "nothing lost, nothing duplicated, nobody let in".
//!
//! Each test drives the operator binary against a real kube-apiserver and the emulator (or a
//! hostile HTTP server) and asserts an end state, not just that something ran:
//!
//! * `fault_storm_*` — 200 objects created, updated and deleted while the tenant answers 30 %
//!   503s, 5 % dropped connections (half of them after the work was done), 10 % 429s and
//!   random latency; afterwards the tenant equals the declared state exactly.
//! * `sigkill_*` — the operator is SIGKILLed at random moments during creates, updates and
//!   deletes of 100 objects; same end-state guarantee.
//! * `an_ambiguous_create_*` — a create whose answer is lost is found again even when the
//!   object is renamed before the operator looks for it.
//! * `apiserver_outage_*` — kube-apiserver stopped and started under a running operator.
//! * `admission_*` / `specs_the_tenant_refuses_*` — bad input refused at admission naming the
//!   field, or by Qlik with its detail in the condition and no retry storm.
//! * `malformed_answers_*` — a seeded fuzz of response bodies, statuses and headers against
//!   the real client over HTTP: never a panic or a hang, always a value or a `QlikError`.
//! * `secrets_*`, `a_secret_ref_*`, `tls_*` — keys and execution tokens never leak, Secrets
//!   never cross namespaces, TLS is verified unless explicitly (and loudly) turned off.
//!
//! Every test prints the figures `RELIABILITY.md` quotes (run with `-- --nocapture`).

#[path = "support/control_plane.rs"]
mod control_plane;
#[path = "support/operator.rs"]
mod operator;

use std::{
    collections::{BTreeMap, BTreeSet, VecDeque},
    net::SocketAddr,
    path::Path,
    process::{Child, Command, Stdio},
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use base64::Engine;
use futures::StreamExt;
use k8s_openapi::{
    ByteString,
    api::core::v1::{ConfigMap, Event, Secret},
};
use kube::{
    Api, Client, ResourceExt,
    api::{
        ApiResource, DeleteParams, DynamicObject, ListParams, ObjectMeta, Patch, PatchParams,
        PostParams,
    },
};
use qlik_automations_operator::{
    crd::{ConditionStatus, QlikAutomation, QlikAutomationSettings},
    emulator::{DROPPED, EmulatorConfig, FaultConfig, FaultRule, RunningEmulator},
    qlik::{self, Endpoint, ErrorClass, QlikError, RetryPolicy},
};
use rand::{Rng, SeedableRng, rngs::StdRng, seq::IndexedRandom};
use serde_json::{Value, json};

use control_plane::{ControlPlane, unique_name};
use operator::{
    ADMIN_KEY, TestNamespace, USER_KEY, emulator, install_crds, ready_status, wait_for, wait_ready,
    wait_reason,
};

// ---------------------------------------------------------------------------------------------
// Shared helpers
// ---------------------------------------------------------------------------------------------

/// Qlik's limits (1000 reads, 100 writes a minute) scaled up by the same factor on the
/// emulator and the operator, so a run takes minutes, not hours, and both sides still agree.
const RATE_SCALE: u32 = 20;
const TIER1_PER_MINUTE: u32 = 1000 * RATE_SCALE;
const TIER2_PER_MINUTE: u32 = 100 * RATE_SCALE;

const WAIT: Duration = Duration::from_secs(90);

fn scaled(c: &mut EmulatorConfig) {
    c.tier1_per_minute = TIER1_PER_MINUTE;
    c.tier2_per_minute = TIER2_PER_MINUTE;
}

/// A free local address (bound and released; the operator binds it right after).
fn free_addr() -> SocketAddr {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap()
}

/// The operator binary (the shared test support's process) with a fixed health address,
/// any kubeconfig and any `RUST_LOG`, that a test can SIGKILL and start again.
struct OperatorProcess {
    process: operator::OperatorProcess,
    health: SocketAddr,
}

impl OperatorProcess {
    /// Starts the operator watching `namespaces`, with short resync and view intervals and
    /// the scaled rate limits.
    fn start(
        kubeconfig: &Path,
        namespaces: &[&str],
        rust_log: &str,
        extra: &[&str],
    ) -> OperatorProcess {
        let health = free_addr();
        let mut args: Vec<String> = [
            "run",
            "--namespaces",
            &namespaces.join(","),
            "--listen",
            &health.to_string(),
            "--tier1-per-minute",
            &TIER1_PER_MINUTE.to_string(),
            "--tier2-per-minute",
            &TIER2_PER_MINUTE.to_string(),
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        let has = |flag: &str| extra.contains(&flag);
        if !has("--resync-seconds") {
            args.extend(["--resync-seconds".into(), "3".into()]);
        }
        if !has("--view-max-age-seconds") {
            args.extend(["--view-max-age-seconds".into(), "1".into()]);
        }
        args.extend(extra.iter().map(|s| s.to_string()));
        let process = operator::OperatorProcess::start(
            &format!("reliability-{}", unique_name(namespaces[0])),
            kubeconfig,
            &args,
            &[("RUST_LOG".to_string(), rust_log.to_string())],
        );
        OperatorProcess { process, health }
    }

    /// The usual log filter of these tests.
    const DEBUG: &'static str = "info,qlik_automations_operator=debug,kube=warn";

    /// SIGKILL: no graceful shutdown, like a crash or an OOM kill.
    fn kill(&mut self) {
        self.process.kill();
    }

    fn restart(&mut self) {
        self.process.restart();
    }

    fn pid(&self) -> Option<u32> {
        self.process.pid()
    }

    /// Processes started so far (1 + restarts).
    fn starts(&self) -> u32 {
        self.process.starts()
    }

    /// Whether the process is still running (it never exited since it was started).
    fn alive(&mut self) -> bool {
        self.process.is_running()
    }

    async fn healthz(&self) -> bool {
        let url = format!("http://{}/healthz", self.health);
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(3))
            .build()
            .unwrap();
        match client.get(url).send().await {
            Ok(r) => r.status().is_success() && r.text().await.unwrap_or_default() == "ok",
            Err(_) => false,
        }
    }

    /// The HTTP status of `/readyz`, or `None` when nothing answers.
    async fn readyz(&self) -> Option<u16> {
        let url = format!("http://{}/readyz", self.health);
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(3))
            .build()
            .unwrap();
        client
            .get(url)
            .send()
            .await
            .ok()
            .map(|r| r.status().as_u16())
    }

    fn log(&self) -> String {
        self.process.log()
    }

    fn log_tail(&self, lines: usize) -> String {
        let log = self.log();
        let all: Vec<&str> = log.lines().collect();
        all[all.len().saturating_sub(lines)..].join("\n")
    }

    /// Process alive, `/healthz` answering `ok`, no panic in the log.
    async fn assert_healthy(&mut self) {
        assert!(
            self.alive(),
            "the operator process exited:\n{}",
            self.log_tail(40)
        );
        let mut healthy = false;
        for _ in 0..20 {
            if self.healthz().await {
                healthy = true;
                break;
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
        assert!(
            healthy,
            "/healthz on {} did not answer ok:\n{}",
            self.health,
            self.log_tail(40)
        );
        let log = self.log();
        assert!(
            !log.contains("panicked"),
            "the operator log shows a panic:\n{}",
            log.lines()
                .filter(|l| l.contains("panicked"))
                .take(5)
                .collect::<Vec<_>>()
                .join("\n")
        );
    }
}

/// A connection Secret in `namespace`, through any client (the private control plane too).
async fn connection_secret(client: &Client, namespace: &str, name: &str, url: &str, key: &str) {
    let secret = Secret {
        metadata: ObjectMeta {
            name: Some(name.into()),
            ..ObjectMeta::default()
        },
        data: Some(
            [
                ("tenantUrl".to_string(), ByteString(url.as_bytes().to_vec())),
                ("apiKey".to_string(), ByteString(key.as_bytes().to_vec())),
            ]
            .into(),
        ),
        ..Secret::default()
    };
    Api::<Secret>::namespaced(client.clone(), namespace)
        .create(&PostParams::default(), &secret)
        .await
        .unwrap();
}

async fn events_in(client: &Client, namespace: &str) -> Vec<Event> {
    Api::<Event>::namespaced(client.clone(), namespace)
        .list(&ListParams::default())
        .await
        .map(|l| l.items)
        .unwrap_or_default()
}

// ---------------------------------------------------------------------------------------------
// The declared state and the end-state comparison
// ---------------------------------------------------------------------------------------------

/// One schedule as declared.
#[derive(Debug, Clone, PartialEq)]
struct Sched {
    start: String,
    stop: Option<String>,
    interval: i64,
    tz: String,
}

/// What one `QlikAutomation` declares about its remote.
#[derive(Debug, Clone, PartialEq)]
struct Want {
    remote_name: String,
    description: String,
    enabled: bool,
    schedules: Vec<Sched>,
    run_mode: &'static str,
}

fn random_schedules(rng: &mut StdRng) -> Vec<Sched> {
    let n = rng.random_range(0..=2);
    (0..n)
        .map(|_| {
            // Future schedules: nothing runs, nothing to catch up on.
            let month = rng.random_range(1..=12);
            let day = rng.random_range(1..=28);
            let hour = rng.random_range(0..=23);
            Sched {
                start: format!("2031-{month:02}-{day:02} {hour:02}:00:00"),
                stop: rng
                    .random_bool(0.5)
                    .then(|| format!("2032-{month:02}-{day:02} {hour:02}:30:00")),
                interval: *[60, 90, 300, 3600, 86400].choose(rng).unwrap(),
                tz: ["UTC", "Europe/Stockholm", "America/New_York", "Asia/Tokyo"]
                    .choose(rng)
                    .unwrap()
                    .to_string(),
            }
        })
        .collect()
}

fn random_want(rng: &mut StdRng, remote_name: String) -> Want {
    Want {
        remote_name,
        description: format!("declared {}", rng.random_range(0..1_000_000)),
        enabled: rng.random_bool(0.8),
        schedules: random_schedules(rng),
        run_mode: ["manual", "triggered", "webhook"].choose(rng).unwrap(),
    }
}

fn schedules_json(s: &[Sched]) -> Value {
    Value::Array(
        s.iter()
            .map(|s| {
                let mut v = json!({"startAt": s.start, "interval": s.interval, "timezone": s.tz});
                if let Some(stop) = &s.stop {
                    v["stopAt"] = json!(stop);
                }
                v
            })
            .collect(),
    )
}

fn workspace_json(run_mode: &str) -> Value {
    json!({"blocks": [{"id": "start", "type": "StartBlock", "runMode": run_mode}]})
}

/// The owned part of a spec: what updates replace.
fn owned_spec(w: &Want) -> Value {
    json!({
        "name": w.remote_name,
        "description": w.description,
        "enabled": w.enabled,
        "schedules": schedules_json(&w.schedules),
        "workspace": workspace_json(w.run_mode),
    })
}

fn manifest(name: &str, w: &Want) -> QlikAutomation {
    let mut spec = owned_spec(w);
    spec["connection"] = json!({"secretRef": {"name": "qlik"}});
    serde_json::from_value(json!({
        "apiVersion": "automations.qlik.dev/v1alpha1",
        "kind": "QlikAutomation",
        "metadata": {"name": name},
        "spec": spec,
    }))
    .unwrap()
}

async fn create_object(api: &Api<QlikAutomation>, name: &str, w: &Want) {
    api.create(&PostParams::default(), &manifest(name, w))
        .await
        .unwrap_or_else(|e| panic!("create {name}: {e}"));
}

async fn update_object(api: &Api<QlikAutomation>, name: &str, w: &Want) {
    api.patch(
        name,
        &PatchParams::default(),
        &Patch::Merge(json!({"spec": owned_spec(w)})),
    )
    .await
    .unwrap_or_else(|e| panic!("update {name}: {e}"));
}

async fn delete_object(api: &Api<QlikAutomation>, name: &str) {
    api.delete(name, &DeleteParams::default())
        .await
        .unwrap_or_else(|e| panic!("delete {name}: {e}"));
}

/// Everything that differs between the declared state and what Kubernetes and the tenant
/// hold; empty when they match exactly. `declared` are the objects that should exist,
/// `gone` the ones that were deleted.
async fn end_state_diff(
    api: &Api<QlikAutomation>,
    declared: &BTreeMap<String, Want>,
    gone: &BTreeSet<String>,
    emu: &RunningEmulator,
) -> Vec<String> {
    let mut diff = Vec::new();
    let objects = match api.list(&ListParams::default()).await {
        Ok(l) => l.items,
        Err(e) => return vec![format!("cannot list objects: {e}")],
    };
    let by_name: BTreeMap<String, QlikAutomation> =
        objects.into_iter().map(|o| (o.name_any(), o)).collect();
    for name in gone {
        if by_name.contains_key(name) {
            diff.push(format!(
                "{name}: deleted, but the object is still there (finalizer)"
            ));
        }
    }
    for name in by_name.keys() {
        if !declared.contains_key(name) && !gone.contains(name) {
            diff.push(format!("{name}: an object nobody declared"));
        }
    }
    let tenant = emu.automations();
    let by_id: BTreeMap<&str, &Value> = tenant
        .iter()
        .map(|a| (a["id"].as_str().unwrap_or_default(), a))
        .collect();
    let mut linked: BTreeMap<String, String> = BTreeMap::new();
    for (name, want) in declared {
        let Some(obj) = by_name.get(name) else {
            diff.push(format!("{name}: the object is missing"));
            continue;
        };
        let status = obj.status.clone().unwrap_or_default();
        match ready_status(obj) {
            Some((ConditionStatus::True, _, _))
                if status.observed_generation == obj.metadata.generation => {}
            other => diff.push(format!(
                "{name}: not Ready at generation {:?} (observed {:?}): {other:?}",
                obj.metadata.generation, status.observed_generation
            )),
        }
        let Some(id) = status.automation_id.clone() else {
            diff.push(format!("{name}: no status.automationId"));
            continue;
        };
        if obj
            .annotations()
            .get("automations.qlik.dev/automation-id")
            .map(String::as_str)
            != Some(id.as_str())
        {
            diff.push(format!("{name}: the id annotation does not say {id}"));
        }
        if let Some(other) = linked.insert(id.clone(), name.clone()) {
            diff.push(format!("{name} and {other} both claim remote {id}"));
        }
        let Some(remote) = by_id.get(id.as_str()) else {
            diff.push(format!("{name}: remote {id} does not exist (lost)"));
            continue;
        };
        if remote["name"] != want.remote_name.as_str() {
            diff.push(format!(
                "{name}: remote name {} != {}",
                remote["name"], want.remote_name
            ));
        }
        if remote["description"] != want.description.as_str() {
            diff.push(format!(
                "{name}: remote description {} != {}",
                remote["description"], want.description
            ));
        }
        let state = if want.enabled {
            "available"
        } else {
            "disabled"
        };
        if remote["state"] != state {
            diff.push(format!(
                "{name}: remote state {} != {state}",
                remote["state"]
            ));
        }
        let schedules: Vec<Sched> = remote["schedules"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|s| Sched {
                start: s["startAt"].as_str().unwrap_or_default().to_owned(),
                stop: s["stopAt"].as_str().map(str::to_owned),
                interval: s["interval"].as_i64().unwrap_or_default(),
                tz: s["timezone"].as_str().unwrap_or_default().to_owned(),
            })
            .collect();
        if schedules != want.schedules {
            diff.push(format!(
                "{name}: remote schedules {schedules:?} != {:?}",
                want.schedules
            ));
        }
        if remote["workspace"] != workspace_json(want.run_mode) {
            diff.push(format!("{name}: remote workspace {}", remote["workspace"]));
        }
    }
    for a in &tenant {
        let id = a["id"].as_str().unwrap_or_default();
        if !linked.contains_key(id) {
            diff.push(format!("orphan remote {id} named {}", a["name"]));
        }
    }
    if tenant.len() != declared.len() {
        diff.push(format!(
            "the tenant holds {} automations, {} are declared",
            tenant.len(),
            declared.len()
        ));
    }
    let mut names: Vec<&str> = tenant
        .iter()
        .map(|a| a["name"].as_str().unwrap_or_default())
        .collect();
    names.sort();
    let mut want_names: Vec<&str> = declared.values().map(|w| w.remote_name.as_str()).collect();
    want_names.sort();
    if names != want_names {
        let dups: BTreeSet<&str> = names
            .windows(2)
            .filter(|w| w[0] == w[1])
            .map(|w| w[0])
            .collect();
        diff.push(format!(
            "remote names differ from the declared ones (duplicated: {dups:?})"
        ));
    }
    diff
}

/// Waits until [`end_state_diff`] is empty; panics with the remaining diff after `timeout`.
async fn wait_converged(
    api: &Api<QlikAutomation>,
    declared: &BTreeMap<String, Want>,
    gone: &BTreeSet<String>,
    emu: &RunningEmulator,
    timeout: Duration,
    op: &OperatorProcess,
) -> Duration {
    let started = Instant::now();
    loop {
        let diff = end_state_diff(api, declared, gone, emu).await;
        if diff.is_empty() {
            return started.elapsed();
        }
        if std::env::var_os("QAO_RELIABILITY_VERBOSE").is_some() {
            eprintln!(
                "[{:?}] {} differences, e.g. {:?}",
                started.elapsed(),
                diff.len(),
                diff.iter().take(3).collect::<Vec<_>>()
            );
        }
        if started.elapsed() > timeout {
            panic!(
                "not converged after {timeout:?}: {} differences:\n{}\n--- operator log tail ---\n{}",
                diff.len(),
                diff.iter().take(40).cloned().collect::<Vec<_>>().join("\n"),
                op.log_tail(60)
            );
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

/// Sums the requests answered with `status` (or [`DROPPED`]) over every endpoint.
fn answered(counters: &qlik_automations_operator::emulator::Counters, status: &str) -> u64 {
    counters
        .by_endpoint
        .values()
        .map(|e| e.by_status.get(status).copied().unwrap_or(0))
        .sum()
}

// ---------------------------------------------------------------------------------------------
// 1. Fault storm
// ---------------------------------------------------------------------------------------------

/// The storm: 30 % 503s, 5 % dropped connections (half of them after the request was
/// processed), 10 % 429s and 0–150 ms of latency on every API endpoint. The emulator consults
/// rules in order and the first fault that fires wins, so the per-rule rates below give those
/// overall rates.
fn storm() -> FaultConfig {
    FaultConfig::with_rules(vec![
        FaultRule::all()
            .with_latency_ms(0, 150)
            .with_rate_limit(0.10)
            .with_error(0.30 / 0.90, 503)
            .with_drop(0.025 / 0.60, false),
        FaultRule::all().with_drop(0.025 / 0.575, true),
    ])
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fault_storm_converges_to_exactly_the_declared_state() {
    const SEED: u64 = 0x5702_0001;
    const OBJECTS: usize = 200;
    const EPHEMERAL: usize = 20;
    const STORM: Duration = Duration::from_secs(40);
    let mut rng = StdRng::seed_from_u64(SEED);
    let ns = TestNamespace::new("storm").await;
    let emu = emulator(scaled).await;
    emu.set_faults(storm());
    ns.connection_secret("qlik", &emu.base_url(), USER_KEY)
        .await;
    let mut op = OperatorProcess::start(
        &ControlPlane::shared().kubeconfig_path(),
        &[&ns.name],
        OperatorProcess::DEBUG,
        &[
            "--resync-seconds",
            "20",
            "--view-max-age-seconds",
            "2",
            "--concurrency",
            "16",
        ],
    );
    let api: Api<QlikAutomation> = ns.api();
    let t0 = tokio::time::Instant::now();

    // Creates: 200 objects, ten at a time.
    let mut declared: BTreeMap<String, Want> = (0..OBJECTS)
        .map(|i| {
            (
                format!("storm-{i:03}"),
                random_want(&mut rng, format!("Storm {i:03}")),
            )
        })
        .collect();
    let creates: Vec<(String, Want)> = declared.clone().into_iter().collect();
    futures::stream::iter(creates)
        .for_each_concurrent(10, |(name, w)| {
            let api = api.clone();
            async move { create_object(&api, &name, &w).await }
        })
        .await;

    // Updates while creates are still failing: description, schedules, enabled, name and
    // workspace, each on its own subset.
    tokio::time::sleep_until(t0 + Duration::from_secs(8)).await;
    let mut updates = 0;
    for i in 0..OBJECTS {
        let name = format!("storm-{i:03}");
        let w = declared.get_mut(&name).unwrap();
        let before = w.clone();
        if i % 3 == 0 {
            w.description = format!("updated in the storm {i}");
            w.schedules = random_schedules(&mut rng);
        }
        if i % 5 == 0 {
            w.enabled = !w.enabled;
        }
        if i % 7 == 0 {
            w.remote_name = format!("Storm {i:03} renamed");
        }
        if i % 11 == 0 {
            w.run_mode = if w.run_mode == "webhook" {
                "manual"
            } else {
                "webhook"
            };
        }
        if *w != before {
            update_object(&api, &name, w).await;
            updates += 1;
        }
    }

    // Deletes: a quarter of them, plus objects created and deleted within the storm.
    tokio::time::sleep_until(t0 + Duration::from_secs(16)).await;
    let mut gone = BTreeSet::new();
    for i in (0..OBJECTS).filter(|i| i % 4 == 1) {
        let name = format!("storm-{i:03}");
        delete_object(&api, &name).await;
        declared.remove(&name);
        gone.insert(name);
    }
    for j in 0..EPHEMERAL {
        let name = format!("storm-ephemeral-{j:02}");
        create_object(
            &api,
            &name,
            &random_want(&mut rng, format!("Ephemeral {j:02}")),
        )
        .await;
        gone.insert(name);
    }
    tokio::time::sleep(Duration::from_millis(rng.random_range(500..2500))).await;
    for j in 0..EPHEMERAL {
        delete_object(&api, &format!("storm-ephemeral-{j:02}")).await;
    }

    // A second round of updates on objects that may still be converging.
    tokio::time::sleep_until(t0 + Duration::from_secs(26)).await;
    for i in (0..OBJECTS).filter(|i| i % 6 == 2) {
        let name = format!("storm-{i:03}");
        if let Some(w) = declared.get_mut(&name) {
            w.description = format!("second update {i}");
            update_object(&api, &name, w).await;
            updates += 1;
        }
    }

    tokio::time::sleep_until(t0 + STORM).await;
    let during = emu.counters();
    emu.set_faults(FaultConfig::none());
    let storm_ended = Instant::now();

    let converged =
        wait_converged(&api, &declared, &gone, &emu, Duration::from_secs(200), &op).await;
    op.assert_healthy().await;
    let after = emu.counters();
    println!(
        "RELIABILITY fault_storm: seed={SEED:#x} objects={OBJECTS} ephemeral={EPHEMERAL} updates={updates} \
         deletes={} storm={STORM:?} | during the storm: requests={} faults_injected={} (503={} 429={} dropped={}) \
         creates_sent={} | total requests={} creates_answered_201={} | converged {:.1?} after the storm \
         ({:.1?} since start) | end state: {} objects = {} remotes, diff empty",
        gone.len(),
        during.total,
        during.faults_injected,
        answered(&during, "503"),
        answered(&during, "429"),
        answered(&during, DROPPED),
        during.endpoint(Endpoint::CreateAutomation),
        after.total,
        after.endpoint_status(Endpoint::CreateAutomation, 201),
        converged,
        storm_ended.elapsed() + STORM,
        declared.len(),
        emu.automations().len(),
    );
    assert!(during.faults_injected > 0);
}

// ---------------------------------------------------------------------------------------------
// 2. Crash safety
// ---------------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_at_random_moments_loses_and_duplicates_nothing() {
    const SEED: u64 = 0xC4A5_0002;
    const OBJECTS: usize = 100;
    const MIN_KILLS: u32 = 15;
    let mut rng = StdRng::seed_from_u64(SEED);
    let ns = TestNamespace::new("crash").await;
    let emu = emulator(scaled).await;
    // Slow writes widen the windows between "sent" and "recorded" that a kill must not break.
    emu.set_faults(FaultConfig::with_rules(vec![
        FaultRule::on(Endpoint::CreateAutomation).with_latency_ms(200, 1500),
        FaultRule::on(Endpoint::UpdateAutomation).with_latency_ms(200, 1500),
        FaultRule::on(Endpoint::DeleteAutomation).with_latency_ms(200, 1500),
        FaultRule::on(Endpoint::EnableAutomation).with_latency_ms(200, 800),
        FaultRule::on(Endpoint::DisableAutomation).with_latency_ms(200, 800),
        FaultRule::all().with_latency_ms(10, 100),
    ]));
    ns.connection_secret("qlik", &emu.base_url(), USER_KEY)
        .await;
    let mut op = OperatorProcess::start(
        &ControlPlane::shared().kubeconfig_path(),
        &[&ns.name],
        OperatorProcess::DEBUG,
        &["--resync-seconds", "20", "--view-max-age-seconds", "2"],
    );
    let api: Api<QlikAutomation> = ns.api();

    // The plan, decided up front from the seed.
    let mut declared: BTreeMap<String, Want> = (0..OBJECTS)
        .map(|i| {
            (
                format!("crash-{i:03}"),
                random_want(&mut rng, format!("Crash {i:03}")),
            )
        })
        .collect();
    let creates: Vec<(String, Want)> = declared.clone().into_iter().collect();
    let mut first_updates = Vec::new();
    for i in (0..OBJECTS).filter(|i| i % 2 == 0) {
        let name = format!("crash-{i:03}");
        let w = declared.get_mut(&name).unwrap();
        w.description = format!("updated between kills {i}");
        w.schedules = random_schedules(&mut rng);
        if i % 4 == 0 {
            w.enabled = !w.enabled;
        }
        if i % 10 == 0 {
            w.remote_name = format!("Crash {i:03} renamed");
        }
        first_updates.push((name, w.clone()));
    }
    let mut gone = BTreeSet::new();
    let deletes: Vec<String> = (0..OBJECTS)
        .filter(|i| matches!(i % 10, 1 | 3 | 7))
        .map(|i| format!("crash-{i:03}"))
        .collect();
    for name in &deletes {
        declared.remove(name);
        gone.insert(name.clone());
    }
    let mut late_updates = Vec::new();
    for i in (0..OBJECTS).filter(|i| i % 5 == 4) {
        let name = format!("crash-{i:03}");
        if let Some(w) = declared.get_mut(&name) {
            w.description = format!("late update {i}");
            w.enabled = !w.enabled;
            late_updates.push((name, w.clone()));
        }
    }
    let writer = {
        let api = api.clone();
        tokio::spawn(async move {
            for (name, w) in &creates {
                create_object(&api, name, w).await;
                tokio::time::sleep(Duration::from_millis(40)).await;
            }
            tokio::time::sleep(Duration::from_secs(2)).await;
            for (name, w) in &first_updates {
                update_object(&api, name, w).await;
                tokio::time::sleep(Duration::from_millis(60)).await;
            }
            tokio::time::sleep(Duration::from_secs(2)).await;
            for name in &deletes {
                delete_object(&api, name).await;
                tokio::time::sleep(Duration::from_millis(80)).await;
            }
            tokio::time::sleep(Duration::from_secs(1)).await;
            for (name, w) in &late_updates {
                update_object(&api, name, w).await;
                tokio::time::sleep(Duration::from_millis(60)).await;
            }
        })
    };

    // Kill at random moments until the writer is done, and note what was in flight each time.
    let mut kills = 0;
    let (mut during_create, mut during_update, mut during_delete) = (0, 0, 0);
    while !writer.is_finished() || kills < MIN_KILLS {
        tokio::time::sleep(Duration::from_millis(rng.random_range(300..1800))).await;
        op.kill();
        kills += 1;
        if let Ok(list) = api.list(&ListParams::default()).await {
            let items = &list.items;
            if items.iter().any(|a| {
                a.annotations()
                    .contains_key("automations.qlik.dev/create-pending")
            }) {
                during_create += 1;
            }
            if items.iter().any(|a| {
                a.metadata.deletion_timestamp.is_none()
                    && a.status
                        .as_ref()
                        .and_then(|s| s.automation_id.as_ref())
                        .is_some()
                    && a.status.as_ref().and_then(|s| s.observed_generation)
                        != a.metadata.generation
            }) {
                during_update += 1;
            }
            if items
                .iter()
                .any(|a| a.metadata.deletion_timestamp.is_some())
            {
                during_delete += 1;
            }
        }
        tokio::time::sleep(Duration::from_millis(rng.random_range(0..400))).await;
        op.restart();
    }
    writer.await.unwrap();
    let last_kill = Instant::now();

    let converged =
        wait_converged(&api, &declared, &gone, &emu, Duration::from_secs(150), &op).await;
    op.assert_healthy().await;
    let recovered = events_in(&ns.client, &ns.name)
        .await
        .iter()
        .filter(|e| e.reason.as_deref() == Some("Recovered"))
        .count();
    let counters = emu.counters();
    println!(
        "RELIABILITY sigkill: seed={SEED:#x} objects={OBJECTS} kills={kills} (process starts={}; kills with a create \
         in flight={during_create}, an update pending={during_update}, a delete pending={during_delete}) \
         updates={} deletes={} | creates_answered_201={} interrupted_creates_recovered={recovered} \
         deletes_sent={} | converged {:.1?} after the last kill ({:.1?}) | end state: {} objects = {} remotes, diff empty",
        op.starts(),
        OBJECTS / 2 + OBJECTS / 5,
        gone.len(),
        counters.endpoint_status(Endpoint::CreateAutomation, 201),
        counters.endpoint(Endpoint::DeleteAutomation),
        converged,
        last_kill.elapsed(),
        declared.len(),
        emu.automations().len(),
    );
    assert!(kills >= 10);
    assert!(
        during_create > 0 && during_update > 0 && during_delete > 0,
        "kills must land during creates ({during_create}), updates ({during_update}) and deletes ({during_delete})"
    );
}

/// A create whose answer is lost leaves an intent; the operator must find what it made even
/// when the object was renamed before it got to look.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_ambiguous_create_is_found_again_even_after_a_rename() {
    let ns = TestNamespace::new("renamed").await;
    let emu = emulator(scaled).await;
    emu.set_faults(FaultConfig::with_rules(vec![
        FaultRule::on(Endpoint::CreateAutomation)
            .with_drop(1.0, true)
            .times(1),
    ]));
    ns.connection_secret("qlik", &emu.base_url(), USER_KEY)
        .await;
    let op = OperatorProcess::start(
        &ControlPlane::shared().kubeconfig_path(),
        &[&ns.name],
        OperatorProcess::DEBUG,
        &[],
    );
    let api: Api<QlikAutomation> = ns.api();
    let mut w = Want {
        remote_name: "Before".into(),
        description: "renamed while its create was in doubt".into(),
        enabled: true,
        schedules: vec![],
        run_mode: "manual",
    };
    create_object(&api, "renamed", &w).await;
    // The create was processed and its answer lost.
    wait_for("the dropped create", WAIT, || async {
        (emu.automations().len() == 1).then_some(())
    })
    .await;
    // Keep the operator from looking (lists fail) while the object is renamed.
    emu.set_faults(FaultConfig::with_rules(vec![
        FaultRule::on(Endpoint::ListAutomations).with_error(1.0, 503),
    ]));
    w.remote_name = "After".into();
    update_object(&api, "renamed", &w).await;
    tokio::time::sleep(Duration::from_secs(4)).await;
    emu.set_faults(FaultConfig::none());
    let declared: BTreeMap<String, Want> = [("renamed".to_string(), w)].into();
    wait_converged(&api, &declared, &BTreeSet::new(), &emu, WAIT, &op).await;
    println!(
        "RELIABILITY ambiguous_create_renamed: creates_sent={} remotes={} diff empty",
        emu.counters().endpoint(Endpoint::CreateAutomation),
        emu.automations().len()
    );
}

// ---------------------------------------------------------------------------------------------
// 3. Control-plane disruption
// ---------------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn apiserver_outage_is_survived_without_a_restart() {
    const SEED: u64 = 0x0CA6_0003;
    const OUTAGE: Duration = Duration::from_secs(15);
    qlik_automations_operator::install_crypto_provider();
    let mut rng = StdRng::seed_from_u64(SEED);
    let cp = tokio::task::block_in_place(ControlPlane::start)
        .unwrap_or_else(|e| panic!("a private control plane: {e}"));
    let client = cp.kube_client().await;
    install_crds(&client).await;
    let namespace = unique_name("outage");
    cp.create_namespace(&namespace).await.unwrap();
    let emu = emulator(scaled).await;
    connection_secret(&client, &namespace, "qlik", &emu.base_url(), USER_KEY).await;
    let mut op = OperatorProcess::start(
        &cp.kubeconfig_path(),
        &[&namespace],
        OperatorProcess::DEBUG,
        &[],
    );
    let api: Api<QlikAutomation> = Api::namespaced(client.clone(), &namespace);
    let mut declared: BTreeMap<String, Want> = BTreeMap::new();
    for i in 0..6 {
        let name = format!("outage-{i}");
        let w = random_want(&mut rng, format!("Outage {i}"));
        create_object(&api, &name, &w).await;
        declared.insert(name, w);
    }
    wait_converged(&api, &declared, &BTreeSet::new(), &emu, WAIT, &op).await;
    let pid = op.pid();

    let down = Instant::now();
    tokio::task::block_in_place(|| cp.stop_apiserver()).unwrap();
    // While Kubernetes is away the tenant drifts, and the operator must stay up.
    let admin = qlik::QlikClient::new(qlik::ClientConfig::new(
        emu.base_url(),
        qlik::ApiKey::new(ADMIN_KEY),
    ))
    .unwrap();
    let drifted = emu.automations()[0]["id"].as_str().unwrap().to_owned();
    admin
        .update_automation(
            &drifted,
            &qlik::model::AutomationRequest {
                description: Some("edited while the apiserver was down".into()),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    tokio::time::sleep(OUTAGE / 2).await;
    assert!(
        op.alive(),
        "the operator exited during the outage:\n{}",
        op.log_tail(30)
    );
    assert!(op.healthz().await, "/healthz failed during the outage");
    tokio::time::sleep(OUTAGE / 2).await;
    tokio::task::block_in_place(|| cp.start_apiserver()).unwrap();
    let outage = down.elapsed();
    let up = Instant::now();

    // Changes made after the restart are applied by the same process.
    let client = cp.kube_client().await;
    let api: Api<QlikAutomation> = Api::namespaced(client.clone(), &namespace);
    for i in 6..9 {
        let name = format!("outage-{i}");
        let w = random_want(&mut rng, format!("Outage {i}"));
        create_object(&api, &name, &w).await;
        declared.insert(name, w);
    }
    for i in [1, 2] {
        let name = format!("outage-{i}");
        let w = declared.get_mut(&name).unwrap();
        w.description = format!("changed after the outage {i}");
        w.enabled = !w.enabled;
        update_object(&api, &name, w).await;
    }
    delete_object(&api, "outage-3").await;
    declared.remove("outage-3");
    let gone: BTreeSet<String> = ["outage-3".to_string()].into();
    let converged =
        wait_converged(&api, &declared, &gone, &emu, Duration::from_secs(150), &op).await;
    assert_eq!(op.pid(), pid, "the operator was never restarted");
    assert_eq!(op.starts(), 1);
    op.assert_healthy().await;
    println!(
        "RELIABILITY apiserver_outage: apiserver down {outage:.1?} (drift made meanwhile) | \
         after it came back: 3 creates, 2 updates, 1 delete and the drift converged in {converged:.1?} \
         ({:.1?} since restart) by the same process (pid {pid:?}, starts=1) | diff empty",
        up.elapsed()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_operator_started_while_the_apiserver_is_down_waits_for_it() {
    qlik_automations_operator::install_crypto_provider();
    let cp = tokio::task::block_in_place(ControlPlane::start)
        .unwrap_or_else(|e| panic!("a private control plane: {e}"));
    let client = cp.kube_client().await;
    install_crds(&client).await;
    let namespace = unique_name("late-apiserver");
    cp.create_namespace(&namespace).await.unwrap();
    let emu = emulator(scaled).await;
    connection_secret(&client, &namespace, "qlik", &emu.base_url(), USER_KEY).await;
    let api: Api<QlikAutomation> = Api::namespaced(client.clone(), &namespace);
    let mut declared: BTreeMap<String, Want> = BTreeMap::new();
    let mut rng = StdRng::seed_from_u64(0x1A7E_0011);
    let w = random_want(&mut rng, "Waited for".into());
    create_object(&api, "waited-for", &w).await;
    declared.insert("waited-for".into(), w);

    tokio::task::block_in_place(|| cp.stop_apiserver()).unwrap();
    let mut op = OperatorProcess::start(
        &cp.kubeconfig_path(),
        &[&namespace],
        OperatorProcess::DEBUG,
        &[],
    );
    // It stays up, live but not ready, for as long as the apiserver is away.
    tokio::time::sleep(Duration::from_secs(6)).await;
    assert!(
        op.alive(),
        "the operator exited while the apiserver was down:\n{}",
        op.log_tail(30)
    );
    assert!(op.healthz().await, "/healthz must answer while waiting");
    assert_eq!(
        op.readyz().await,
        Some(503),
        "/readyz must not be ready yet"
    );
    assert!(emu.automations().is_empty());

    tokio::task::block_in_place(|| cp.start_apiserver()).unwrap();
    let api: Api<QlikAutomation> = Api::namespaced(cp.kube_client().await, &namespace);
    let converged = wait_converged(&api, &declared, &BTreeSet::new(), &emu, WAIT, &op).await;
    assert_eq!(op.readyz().await, Some(200));
    assert_eq!(op.starts(), 1, "never restarted");
    op.assert_healthy().await;
    assert!(
        op.log().contains("the apiserver cannot be reached yet"),
        "the wait is logged"
    );
    println!(
        "RELIABILITY late_apiserver: operator started with the apiserver down, converged {converged:.1?} after it came up, same process"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_short_tenant_outage_costs_seconds_for_every_object_not_minutes() {
    // At the operator's default cadence (resync and view age 300 s) nothing would be retried
    // for minutes if a failure were cached for the view's age or backed off to 300 s.
    const OUTAGE: Duration = Duration::from_secs(12);
    let mut rng = StdRng::seed_from_u64(0x0D7A_0018);
    let ns = TestNamespace::new("tenant-outage").await;
    // The tenant's list answers 503 to the first 12 calls (the client's own retries spend
    // 4 per refresh), as in the incident that cost ten minutes.
    let emu = emulator(|c| {
        scaled(c);
        c.faults = FaultConfig::with_rules(vec![FaultRule {
            endpoint: Some(Endpoint::ListAutomations.name().into()),
            error_rate: 1.0,
            times: Some(12),
            ..FaultRule::default()
        }]);
    })
    .await;
    connection_secret(&ns.client, &ns.name, "qlik", &emu.base_url(), USER_KEY).await;
    let op = OperatorProcess::start(
        &ControlPlane::shared().kubeconfig_path(),
        &[&ns.name],
        OperatorProcess::DEBUG,
        &["--resync-seconds", "300", "--view-max-age-seconds", "300"],
    );
    let api: Api<QlikAutomation> = ns.api();
    let mut declared: BTreeMap<String, Want> = BTreeMap::new();
    for i in 0..6 {
        let name = format!("burst-{i}");
        let w = random_want(&mut rng, format!("Burst {i}"));
        create_object(&api, &name, &w).await;
        declared.insert(name, w);
    }
    let after_list_burst = wait_converged(
        &api,
        &declared,
        &BTreeSet::new(),
        &emu,
        Duration::from_secs(60),
        &op,
    )
    .await;
    assert_eq!(
        emu.counters()
            .endpoint_status(Endpoint::ListAutomations, 503),
        12,
        "the whole burst of list failures was met"
    );

    // Then every endpoint fails for a while, with work declared meanwhile.
    emu.set_faults(FaultConfig::with_rules(vec![
        FaultRule::all().with_error(1.0, 503),
    ]));
    for i in 6..9 {
        let name = format!("burst-{i}");
        let w = random_want(&mut rng, format!("Burst {i}"));
        create_object(&api, &name, &w).await;
        declared.insert(name, w);
    }
    for i in [1, 2] {
        let name = format!("burst-{i}");
        let w = declared.get_mut(&name).unwrap();
        w.description = format!("changed during the outage {i}");
        update_object(&api, &name, w).await;
    }
    tokio::time::sleep(OUTAGE).await;
    emu.set_faults(FaultConfig::default());
    let after_outage = wait_converged(
        &api,
        &declared,
        &BTreeSet::new(),
        &emu,
        Duration::from_secs(60),
        &op,
    )
    .await;
    println!(
        "RELIABILITY tenant_outage: 12 failed list calls at start: 6 objects Ready in {after_list_burst:.1?} | \
         {OUTAGE:?} of 503 on every endpoint with 3 creates and 2 updates declared: converged \
         {after_outage:.1?} after it ended (target: 30 s plus the rate-limit floor; resync and view age 300 s)"
    );
}

// ---------------------------------------------------------------------------------------------
// 4. Bad input: refused at admission, or by the tenant without a retry storm
// ---------------------------------------------------------------------------------------------

/// A valid schedule with some fields replaced (`null` removes one).
fn schedule_with(changes: Value) -> Value {
    let mut s = json!({
        "startAt": "2031-01-01 00:00:00",
        "stopAt": "2032-01-01 00:00:00",
        "interval": 3600,
        "timezone": "Europe/Stockholm"
    });
    for (k, v) in changes.as_object().unwrap() {
        if v.is_null() {
            s.as_object_mut().unwrap().remove(k);
        } else {
            s[k] = v.clone();
        }
    }
    s
}

/// A valid QlikAutomation spec with top-level fields replaced (`null` removes one).
fn automation_spec_with(changes: Value) -> Value {
    let mut spec = json!({
        "connection": {"secretRef": {"name": "qlik"}},
        "description": "valid apart from one field",
        "schedules": [schedule_with(json!({}))],
        "workspace": workspace_json("manual"),
    });
    for (k, v) in changes.as_object().unwrap() {
        if v.is_null() {
            spec.as_object_mut().unwrap().remove(k);
        } else {
            spec[k] = v.clone();
        }
    }
    spec
}

fn dynamic_api<K: kube::Resource<DynamicType = ()>>(
    client: &Client,
    namespace: &str,
) -> Api<DynamicObject> {
    Api::namespaced_with(client.clone(), namespace, &ApiResource::erase::<K>(&()))
}

fn dynamic(kind: &str, name: &str, spec: Value) -> DynamicObject {
    serde_json::from_value(json!({
        "apiVersion": "automations.qlik.dev/v1alpha1",
        "kind": kind,
        "metadata": {"name": name},
        "spec": spec,
    }))
    .unwrap()
}

/// What the apiserver said, including every cause's field.
fn refusal(err: &kube::Error) -> (u16, String) {
    match err {
        kube::Error::Api(status) => {
            let mut text = status.message.clone();
            if let Some(details) = &status.details {
                for cause in &details.causes {
                    text.push_str(&format!(" [{}: {}]", cause.field, cause.message));
                }
            }
            (status.code, text)
        }
        other => (0, other.to_string()),
    }
}

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
            "ConfigMap key with a slash",
            automation_spec_with(
                json!({"workspace": null, "workspaceFrom": {"configMapKeyRef": {"name": "ws", "key": "ws/json"}}}),
            ),
            "spec.workspaceFrom.configMapKeyRef.key".into(),
        ),
    ];
    let settings_cases: Vec<(&str, Value, String)> = vec![
        (
            "settings without automationsEnabled",
            json!({"connection": {"secretRef": {"name": "qlik"}}}),
            "spec.automationsEnabled".into(),
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
    let op = OperatorProcess::start(
        &ControlPlane::shared().kubeconfig_path(),
        &[&ns.name],
        OperatorProcess::DEBUG,
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
    let events = events_in(&ns.client, &ns.name).await;
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

// ---------------------------------------------------------------------------------------------
// 5. Malformed responses: a seeded fuzz of the client over HTTP
// ---------------------------------------------------------------------------------------------

/// The reference's example response bodies (`qlik-automations-api.txt`), plus its error
/// envelope.
const REFERENCE_BODIES: &[&str] = &[
    // GET /v1/automations
    r#"{"data":[{"id":"e0e720d0-4947-11ec-a1d2-9559fa35801d","name":"string","state":"available","ownerId":"sWYAHxZxhtcmBT7Ptc5xJ5I6N7HxwnEy","runMode":"triggered","createdAt":"2021-12-23T12:28:21.000000Z","lastRunAt":"2021-12-23T12:28:21.000000Z","updatedAt":"2021-12-23T12:28:21.000000Z","description":"string","lastRunStatus":"finished"}],"links":{"next":{"href":"string"},"prev":{"href":"string"}}}"#,
    // POST /v1/automations, GET and PUT /v1/automations/{id}
    r#"{"id":"e0e720d0-4947-11ec-a1d2-9559fa35801d","name":"string","state":"available","lastRun":{"id":"d452d100-9b0b-11ec-b199-8323e1031c3e","error":{},"title":"string","inputs":{},"status":"failed","context":"test_run","metrics":{"blocks":[{"type":"endpointBlock","rxBytes":18329921,"txBytes":18329921,"apiCalls":40,"snippetId":"string","endpointId":"string","connectorId":"string"}],"network":{"rxBytes":0,"txBytes":0},"totalApiCalls":0},"stopTime":"2021-12-23T12:28:21.000000Z","createdAt":"2021-12-23T12:28:21.000000Z","isTestRun":true,"startTime":"2021-12-23T12:28:21.000000Z","updatedAt":"2021-12-23T12:28:21.000000Z","isArchived":true,"expectedInputs":{},"scheduledStartTime":"2021-12-23T12:28:21.000000Z"},"ownerId":"sWYAHxZxhtcmBT7Ptc5xJ5I6N7HxwnEy","runMode":"triggered","createdAt":"2021-12-23T12:28:21.000000Z","lastRunAt":"2021-12-23T12:28:21.000000Z","schedules":[{"id":"d452d100-9b0b-11ec-b199-8323e1031c3e","stopAt":"2022-12-01 00:00:00","startAt":"2021-12-01 00:00:00","interval":30,"timezone":"Europe/Stockholm","lastStartedAt":"2022-01-01T12:28:21.000000Z"}],"updatedAt":"2021-12-23T12:28:21.000000Z","workspace":{},"snippetIds":["e0e720d0-4947-11ec-a1d2-9559fa35801d"],"description":"string","endpointIds":["9d94bef0-b28c-11eb-8dba-01593c457362","53a6fb70-b28f-11eb-b601-b545a40867e0"],"connectorIds":["0d87808f-27c0-11ea-921c-022e6b5ea1e2","0d86ee8a-27c0-11ea-921c-022e6b5ea1e2"],"lastRunStatus":"finished","executionToken":"aZXuEogT9X3le0k0WXMBnzuYKq4xRlkDnurjs8NVhEAAW1BYx8C1PpIl3ielgRb1"}"#,
    // POST /v1/automations/{id}/actions/copy
    r#"{"id":"00000000-0000-0000-0000-000000000000"}"#,
    // GET /v1/automations/{id}/runs
    r#"{"data":[{"id":"d452d100-9b0b-11ec-b199-8323e1031c3e","error":{},"title":"string","status":"failed","context":"test_run","stopTime":"2021-12-23T12:28:21.000000Z","createdAt":"2021-12-23T12:28:21.000000Z","isTestRun":true,"startTime":"2021-12-23T12:28:21.000000Z","updatedAt":"2021-12-23T12:28:21.000000Z","isArchived":true,"scheduledStartTime":"2021-12-23T12:28:21.000000Z"}],"links":{"next":{"href":"string"},"prev":{"href":"string"}}}"#,
    // POST /v1/automations/{id}/runs, GET .../runs/{runId}
    r#"{"id":"d452d100-9b0b-11ec-b199-8323e1031c3e","error":{},"title":"string","inputs":{},"status":"failed","context":"test_run","metrics":{"blocks":[{"type":"endpointBlock","rxBytes":18329921,"txBytes":18329921,"apiCalls":40,"snippetId":"string","endpointId":"string","connectorId":"string"}],"network":{"rxBytes":0,"txBytes":0},"totalApiCalls":0},"stopTime":"2021-12-23T12:28:21.000000Z","createdAt":"2021-12-23T12:28:21.000000Z","isTestRun":true,"startTime":"2021-12-23T12:28:21.000000Z","updatedAt":"2021-12-23T12:28:21.000000Z","isArchived":true,"expectedInputs":{},"scheduledStartTime":"2021-12-23T12:28:21.000000Z"}"#,
    // POST .../runs/{runId}/actions/export
    r#"{"url":"https://<bucket>.s3.<region>.amazonaws.com/<run>.json"}"#,
    // GET and PUT /v1/automations/settings
    r#"{"automationsEnabled":true}"#,
    // GET /v1/automations/usage
    r#"{"data":[{"date":"2021-12-15","name":"bandwidthIn","value":310179713,"automation":{"guid":"00000000-0000-0000-0000-000000000000","name":"My Automation.","ownerId":"KP1zJiPDn0gsla236GmETadFcxBW-J8F"}}]}"#,
    // The error envelope.
    r#"{"errors":[{"code":"HTTP-429","title":"API rate limit reached.","detail":"You need to wait 13 seconds until limit is lifted."}],"traceId":"0af6a2d64ae7b5e4e1b1c5b29d4b8e21"}"#,
];

const KEYS: &[&str] = &[
    "id",
    "data",
    "links",
    "next",
    "prev",
    "href",
    "errors",
    "code",
    "title",
    "detail",
    "traceId",
    "status",
    "schedules",
    "startAt",
    "interval",
    "lastRun",
    "metrics",
    "blocks",
    "automationsEnabled",
    "url",
    "value",
    "name",
    "automation",
    "guid",
    "state",
    "runMode",
];

fn random_string(rng: &mut StdRng) -> String {
    match rng.random_range(0..8) {
        0 => String::new(),
        1 => "x".repeat(rng.random_range(1000..20000)),
        2 => "\u{0}\u{7}\u{1b}[31m\r\n\t\"\\".into(),
        3 => "日本語 🚀 \u{202e}rtl".into(),
        4 => [
            "http://127.0.0.1:1/x",
            "/api/v1/automations?cursor=z",
            "../../settings",
            "//evil.example/x",
            "string",
            "https://evil.example/api/v1/automations",
        ]
        .choose(rng)
        .unwrap()
        .to_string(),
        5 => [
            "available",
            "disabled",
            "finished",
            "exceeded limit",
            "api",
            "",
            "null",
        ]
        .choose(rng)
        .unwrap()
        .to_string(),
        _ => (0..rng.random_range(1..40))
            .map(|_| char::from(rng.random_range(32u8..127)))
            .collect(),
    }
}

fn random_value(rng: &mut StdRng, depth: u32) -> Value {
    match rng.random_range(0..12) {
        0 => Value::Null,
        1 => json!(rng.random_bool(0.5)),
        2 => json!(rng.random::<i64>()),
        3 => json!(u64::MAX),
        4 => json!(rng.random::<f64>() * 1e300 - 5e299),
        5 => json!(-1),
        6 | 7 => json!(random_string(rng)),
        8 if depth < 4 => Value::Array(
            (0..rng.random_range(0..4))
                .map(|_| random_value(rng, depth + 1))
                .collect(),
        ),
        9 | 10 if depth < 4 => Value::Object(
            (0..rng.random_range(0..5))
                .map(|_| {
                    (
                        KEYS.choose(rng).unwrap().to_string(),
                        random_value(rng, depth + 1),
                    )
                })
                .collect(),
        ),
        _ => json!(random_string(rng)),
    }
}

/// Replaces, removes or adds something at a random place of `v`.
fn mutate_value(rng: &mut StdRng, v: &mut Value, depth: u32) {
    let descend = rng.random_bool(0.7);
    match v {
        Value::Object(map) if !map.is_empty() && descend => {
            let key = map
                .keys()
                .nth(rng.random_range(0..map.len()))
                .unwrap()
                .clone();
            mutate_value(rng, map.get_mut(&key).unwrap(), depth + 1);
        }
        Value::Array(items) if !items.is_empty() && descend => {
            let i = rng.random_range(0..items.len());
            mutate_value(rng, &mut items[i], depth + 1);
        }
        Value::Object(map) => match rng.random_range(0..3) {
            0 if !map.is_empty() => {
                let key = map
                    .keys()
                    .nth(rng.random_range(0..map.len()))
                    .unwrap()
                    .clone();
                map.remove(&key);
            }
            1 => {
                map.insert(
                    KEYS.choose(rng).unwrap().to_string(),
                    random_value(rng, depth),
                );
            }
            _ => *v = random_value(rng, depth),
        },
        _ => *v = random_value(rng, depth),
    }
}

/// A body for one answer: random bytes, a structurally mutated reference body, or a
/// byte-mutated one.
fn random_body(rng: &mut StdRng) -> Vec<u8> {
    let reference = *REFERENCE_BODIES.choose(rng).unwrap();
    match rng.random_range(0..10) {
        0 => (0..rng.random_range(0..512))
            .map(|_| rng.random())
            .collect(),
        1 => Vec::new(),
        2 => "[".repeat(rng.random_range(100..5000)).into_bytes(),
        3 => reference.as_bytes().to_vec(),
        4..=6 => {
            let mut v: Value = serde_json::from_str(reference).unwrap();
            for _ in 0..rng.random_range(1..5) {
                mutate_value(rng, &mut v, 0);
            }
            serde_json::to_vec(&v).unwrap()
        }
        _ => {
            let mut bytes = reference.as_bytes().to_vec();
            for _ in 0..rng.random_range(1..6) {
                if bytes.is_empty() {
                    break;
                }
                let i = rng.random_range(0..bytes.len());
                match rng.random_range(0..4) {
                    0 => bytes[i] = rng.random(),
                    1 => bytes.truncate(i),
                    2 => bytes.insert(i, *b"{}[]\",:\\0\xff".choose(rng).unwrap()),
                    _ => {
                        let end = (i + rng.random_range(1..20)).min(bytes.len());
                        bytes.drain(i..end);
                    }
                }
            }
            bytes
        }
    }
}

/// One canned answer.
#[derive(Debug, Clone)]
struct Canned {
    status: u16,
    headers: Vec<(&'static str, String)>,
    body: Vec<u8>,
}

/// A server answering from a script: queued answers first, then `repeat` (or a 404).
#[derive(Clone, Default)]
struct Script {
    queue: Arc<Mutex<VecDeque<Canned>>>,
    repeat: Arc<Mutex<Option<Canned>>>,
    requests: Arc<Mutex<u64>>,
}

async fn scripted_server(script: Script) -> SocketAddr {
    use axum::{body::Body, http::Response};
    let app = axum::Router::new().fallback(move || {
        let script = script.clone();
        async move {
            *script.requests.lock().unwrap() += 1;
            let next = script.queue.lock().unwrap().pop_front();
            let canned = next
                .or_else(|| script.repeat.lock().unwrap().clone())
                .unwrap_or(Canned {
                    status: 404,
                    headers: vec![],
                    body: br#"{"errors":[{"code":"HTTP-404","title":"Not found"}]}"#.to_vec(),
                });
            let mut response = Response::builder().status(canned.status);
            for (k, v) in &canned.headers {
                response = response.header(*k, v.as_str());
            }
            response.body(Body::from(canned.body)).unwrap()
        }
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    addr
}

/// A server that writes raw bytes (broken HTTP) and hangs up.
async fn raw_server(answers: Arc<Mutex<VecDeque<Vec<u8>>>>) -> SocketAddr {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut socket, _)) = listener.accept().await {
            let answer = answers.lock().unwrap().pop_front().unwrap_or_default();
            tokio::spawn(async move {
                let mut buf = [0u8; 4096];
                let _ =
                    tokio::time::timeout(Duration::from_millis(200), socket.read(&mut buf)).await;
                let _ = socket.write_all(&answer).await;
                let _ = socket.shutdown().await;
            });
        }
    });
    addr
}

fn fuzz_client(addr: SocketAddr) -> qlik::QlikClient {
    let mut config = qlik::ClientConfig::new(format!("http://{addr}"), qlik::ApiKey::new(USER_KEY));
    config.retry = RetryPolicy::none();
    config.request_timeout = Duration::from_secs(5);
    qlik::QlikClient::new(config).unwrap()
}

/// Calls API method number `method` and reduces the answer to "a value" or the error.
async fn call_method(
    client: qlik::QlikClient,
    method: u32,
    addr: SocketAddr,
) -> Result<&'static str, QlikError> {
    use futures::TryStreamExt;
    use qlik::model::{AutomationRequest, RunRequest, Settings};
    let params = qlik::ListParams::default().limit(200);
    Ok(match method {
        0 => client.get_automation("a1").await.map(|_| "automation")?,
        1 => client
            .list_automations(&params)
            .try_collect::<Vec<_>>()
            .await
            .map(|_| "automations")?,
        2 => client
            .create_automation(&AutomationRequest {
                name: Some("n".into()),
                ..Default::default()
            })
            .await
            .map(|_| "created")?,
        3 => client
            .update_automation("a1", &AutomationRequest::default())
            .await
            .map(|_| "updated")?,
        4 => client.delete_automation("a1").await.map(|_| "deleted")?,
        5 => client
            .copy_automation("a1", "copy")
            .await
            .map(|_| "copied")?,
        6 => client.enable_automation("a1").await.map(|_| "enabled")?,
        7 => client
            .create_run("a1", &RunRequest::api(None))
            .await
            .map(|_| "run")?,
        8 => client.get_run("a1", "r1").await.map(|_| "run")?,
        9 => client.export_run("a1", "r1").await.map(|_| "export")?,
        10 => client.get_settings().await.map(|_| "settings")?,
        11 => client
            .update_settings(&Settings {
                automations_enabled: true,
            })
            .await
            .map(|_| "settings")?,
        12 => client
            .get_usage(&qlik::UsageQuery {
                filter: qlik::Filter::eq("name", "runs"),
                breakdown_by: Some("automation".into()),
            })
            .await
            .map(|_| "usage")?,
        13 => client
            .list_runs("a1", &params)
            .try_collect::<Vec<_>>()
            .await
            .map(|_| "runs")?,
        _ => client
            .download_export(&format!("http://{addr}/exports/x.json"))
            .await
            .map(|_| "log")?,
    })
}

const METHODS: u32 = 15;
const STATUSES: &[u16] = &[
    200, 200, 200, 201, 204, 302, 400, 401, 403, 404, 409, 413, 429, 500, 502, 503, 504,
];
const RETRY_AFTERS: &[&str] = &[
    "1",
    "0",
    "13",
    "-1",
    "abc",
    "",
    " 5 ",
    "3.5",
    "Wed, 21 Oct 2015 07:28:00 GMT",
    "86400000",
    "18446744073709551615",
    "99999999999999999999999",
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_answers_give_a_value_or_a_typed_error_never_a_panic_or_a_hang() {
    const SEED: u64 = 0xF022_0005;
    const CASES: u32 = 3000;
    const RAW_CASES: u32 = 300;
    qlik_automations_operator::install_crypto_provider();
    let mut rng = StdRng::seed_from_u64(SEED);
    let script = Script::default();
    let addr = scripted_server(script.clone()).await;
    let mut outcomes: BTreeMap<String, u32> = BTreeMap::new();
    let mut failures = Vec::new();
    let started = Instant::now();
    let mut client = fuzz_client(addr);
    let mut blocked = false;

    for case in 0..CASES {
        let answers: Vec<Canned> = (0..rng.random_range(1..=3))
            .map(|_| {
                let status = *STATUSES.choose(&mut rng).unwrap();
                let mut headers = Vec::new();
                if status == 429 || rng.random_bool(0.1) {
                    headers.push((
                        "retry-after",
                        RETRY_AFTERS.choose(&mut rng).unwrap().to_string(),
                    ));
                }
                if rng.random_bool(0.5) {
                    headers.push((
                        "content-type",
                        ["application/json", "text/html", "application/octet-stream"]
                            .choose(&mut rng)
                            .unwrap()
                            .to_string(),
                    ));
                }
                Canned {
                    status,
                    headers,
                    body: random_body(&mut rng),
                }
            })
            .collect();
        *script.queue.lock().unwrap() = answers.iter().cloned().collect();
        let method = rng.random_range(0..METHODS);
        // A 429 blocks the client's tier for as long as it says: take a fresh client after one.
        if blocked {
            client = fuzz_client(addr);
        }
        blocked = answers.iter().any(|a| a.status == 429);
        let client = client.clone();
        let call = tokio::spawn(call_method(client, method, addr));
        let result = match tokio::time::timeout(Duration::from_secs(10), call).await {
            Err(_) => {
                failures.push(format!("case {case}: method {method} hung on {answers:?}"));
                continue;
            }
            Ok(Err(join)) => {
                failures.push(format!(
                    "case {case}: method {method} panicked ({join}) on {:?}",
                    answers[0]
                ));
                continue;
            }
            Ok(Ok(result)) => result,
        };
        let first = answers[0].status;
        match &result {
            Ok(kind) => *outcomes.entry(format!("value:{kind}")).or_default() += 1,
            Err(e) => {
                *outcomes
                    .entry(format!("error:{}", e.class().reason()))
                    .or_default() += 1;
                // The first answer's failure is what the caller sees, classified by its status.
                if !(200..400).contains(&first) {
                    let class = match first {
                        401 => ErrorClass::Unauthorized,
                        403 => ErrorClass::Forbidden,
                        404 => ErrorClass::NotFound,
                        429 => ErrorClass::RateLimited,
                        500..=599 => ErrorClass::Transient,
                        _ => ErrorClass::InvalidRequest,
                    };
                    if e.status() != Some(first) || e.class() != class {
                        failures.push(format!(
                            "case {case}: {first} became {:?} {:?}: {e}",
                            e.status(),
                            e.class()
                        ));
                    }
                }
                let text = e.to_string();
                if text.contains(USER_KEY) {
                    failures.push(format!("case {case}: the key in {text}"));
                }
            }
        }
        let follows_links = matches!(method, 1 | 13);
        if !follows_links && (200..300).contains(&first) {
            // Only decode failures are possible when every answer was a success.
            if let Err(e) = &result
                && !matches!(e, QlikError::Decode { .. })
            {
                failures.push(format!("case {case}: a 2xx gave {e:?}"));
            }
        }
    }
    script.queue.lock().unwrap().clear();

    // Broken HTTP: garbage, truncated bodies, lying Content-Length, a close mid-headers.
    let raw_answers = Arc::new(Mutex::new(VecDeque::new()));
    let raw_addr = raw_server(raw_answers.clone()).await;
    for case in 0..RAW_CASES {
        let body = random_body(&mut rng);
        let status = *STATUSES.choose(&mut rng).unwrap();
        let answer: Vec<u8> = match rng.random_range(0..5) {
            0 => body,
            1 => [
                format!(
                    "HTTP/1.1 {status} X\r\nContent-Length: {}\r\n\r\n",
                    body.len() + 50
                )
                .into_bytes(),
                body,
            ]
            .concat(),
            2 => format!("HTTP/1.1 {status} X\r\nContent-Le").into_bytes(),
            3 => [
                format!("HTTP/1.1 {status} X\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n")
                    .into_bytes(),
                body,
            ]
            .concat(),
            _ => [b"HTTP/9.9 ".to_vec(), body].concat(),
        };
        raw_answers.lock().unwrap().push_back(answer);
        let method = rng.random_range(0..METHODS);
        let call = tokio::spawn(call_method(fuzz_client(raw_addr), method, raw_addr));
        match tokio::time::timeout(Duration::from_secs(10), call).await {
            Err(_) => failures.push(format!("raw case {case}: method {method} hung")),
            Ok(Err(join)) => failures.push(format!("raw case {case}: panicked ({join})")),
            Ok(Ok(Ok(kind))) => *outcomes.entry(format!("raw value:{kind}")).or_default() += 1,
            Ok(Ok(Err(e))) => {
                *outcomes
                    .entry(format!("raw error:{}", e.class().reason()))
                    .or_default() += 1
            }
        }
        raw_answers.lock().unwrap().clear();
    }

    // A tenant whose next page is always the same page must not keep the client forever.
    *script.repeat.lock().unwrap() = Some(Canned {
        status: 200,
        headers: vec![],
        body: json!({"data": [{"id": "a"}], "links": {"next": {"href": format!("http://{addr}/api/v1/automations?cursor=same")}}})
            .to_string()
            .into_bytes(),
    });
    let looped = tokio::time::timeout(
        Duration::from_secs(20),
        tokio::spawn(call_method(fuzz_client(addr), 1, addr)),
    )
    .await;
    match looped {
        Err(_) => failures.push("a pagination loop kept list_automations forever".into()),
        Ok(Err(join)) => failures.push(format!("a pagination loop panicked: {join}")),
        Ok(Ok(Ok(_))) => failures.push("a pagination loop gave a value".into()),
        Ok(Ok(Err(e))) => {
            *outcomes
                .entry(format!("pagination loop:{}", e.class().reason()))
                .or_default() += 1
        }
    }
    *script.repeat.lock().unwrap() = None;

    assert!(
        failures.is_empty(),
        "{} of {} cases failed:\n{}",
        failures.len(),
        CASES + RAW_CASES + 1,
        failures
            .iter()
            .take(20)
            .cloned()
            .collect::<Vec<_>>()
            .join("\n")
    );
    println!(
        "RELIABILITY fuzz: seed={SEED:#x} {CASES} scripted + {RAW_CASES} raw-HTTP cases + 1 pagination loop in {:.1?} \
         ({} requests): 0 panics, 0 hangs; outcomes {outcomes:?}",
        started.elapsed(),
        *script.requests.lock().unwrap()
    );
}

// ---------------------------------------------------------------------------------------------
// 6. Secrets
// ---------------------------------------------------------------------------------------------

/// A key no tenant accepts; it must not show up anywhere either.
const WRONG_KEY: &str = "wrong-key-7c1e0d9a-must-never-be-printed";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn secrets_never_appear_in_logs_events_status_or_errors_at_trace_level() {
    let ns = TestNamespace::new("secrets").await;
    let emu = emulator(scaled).await;
    ns.connection_secret("qlik", &emu.base_url(), USER_KEY)
        .await;
    ns.connection_secret("qlik-admin", &emu.base_url(), ADMIN_KEY)
        .await;
    ns.connection_secret("qlik-wrong", &emu.base_url(), WRONG_KEY)
        .await;
    // Some failures, so that retry and error paths log at trace level too.
    emu.set_faults(FaultConfig::with_rules(vec![
        FaultRule::all().with_error(0.15, 503),
        FaultRule::all().with_drop(0.05, true),
    ]));
    let mut op = OperatorProcess::start(
        &ControlPlane::shared().kubeconfig_path(),
        &[&ns.name],
        "trace",
        &[],
    );
    let api: Api<QlikAutomation> = ns.api();
    let automations = dynamic_api::<QlikAutomation>(&ns.client, &ns.name);
    let make =
        |name: &str, changes: Value| dynamic("QlikAutomation", name, automation_spec_with(changes));
    for (name, changes) in [
        (
            "triggered",
            json!({"workspace": workspace_json("triggered"), "schedules": []}),
        ),
        (
            "webhook",
            json!({"workspace": workspace_json("webhook"), "schedules": []}),
        ),
        ("scheduled", json!({})),
        (
            "admin-owned",
            json!({"connection": {"secretRef": {"name": "qlik-admin"}}}),
        ),
        (
            "refused",
            json!({"schedules": [schedule_with(json!({"timezone": "Mars/Olympus_Mons"}))]}),
        ),
        (
            "wrong-key",
            json!({"connection": {"secretRef": {"name": "qlik-wrong"}}}),
        ),
    ] {
        automations
            .create(&PostParams::default(), &make(name, changes))
            .await
            .unwrap();
    }
    ns.apply_yaml::<QlikAutomationSettings>(
        "apiVersion: automations.qlik.dev/v1alpha1\nkind: QlikAutomationSettings\nmetadata:\n  name: tenant\nspec:\n  connection:\n    secretRef:\n      name: qlik-admin\n  automationsEnabled: true\n",
    )
    .await;
    api.patch(
        "triggered",
        &PatchParams::default(),
        &Patch::Merge(json!({"metadata": {"annotations": {"automations.qlik.dev/run-requested-at": "first"}}})),
    )
    .await
    .unwrap();
    wait_for("the requested run handled", WAIT, || async {
        let a = api.get("triggered").await.ok()?;
        (a.status?.last_handled_run_request.as_deref() == Some("first")).then_some(())
    })
    .await;
    wait_reason(&api, "refused", "InvalidSpec").await;
    wait_reason(&api, "wrong-key", "Unauthorized").await;
    for name in ["webhook", "scheduled", "admin-owned"] {
        wait_ready(&api, name).await;
    }
    emu.set_faults(FaultConfig::none());
    // An out-of-band edit, set back: a full read-diff-write cycle of a token-bearing detail.
    let id = wait_ready(&api, "triggered")
        .await
        .status
        .unwrap()
        .automation_id
        .unwrap();
    qlik::QlikClient::new(qlik::ClientConfig::new(
        emu.base_url(),
        qlik::ApiKey::new(ADMIN_KEY),
    ))
    .unwrap()
    .update_automation(
        &id,
        &qlik::model::AutomationRequest {
            description: Some("edited by hand".into()),
            ..Default::default()
        },
    )
    .await
    .unwrap();
    wait_for("the edit set back", WAIT, || async {
        let all = emu.automations();
        let remote = all.iter().find(|a| a["id"] == id.as_str())?;
        (remote["description"] == "valid apart from one field").then_some(())
    })
    .await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    op.assert_healthy().await;

    // Everything a secret could leak into.
    let b64 = base64::engine::general_purpose::STANDARD;
    let mut secrets: Vec<(String, String)> = Vec::new();
    for (what, key) in [
        ("user key", USER_KEY),
        ("admin key", ADMIN_KEY),
        ("wrong key", WRONG_KEY),
    ] {
        secrets.push((what.into(), key.into()));
        secrets.push((format!("{what} (base64)"), b64.encode(key)));
    }
    let tokens: Vec<String> = emu
        .automations()
        .iter()
        .filter_map(|a| a["executionToken"].as_str().map(str::to_owned))
        .collect();
    assert!(
        tokens.len() >= 4,
        "execution tokens to look for: {tokens:?}"
    );
    for t in &tokens {
        secrets.push(("execution token".into(), t.clone()));
    }
    let log = op.log();
    let events: Vec<String> = events_in(&ns.client, &ns.name)
        .await
        .iter()
        .map(|e| serde_json::to_string(e).unwrap())
        .collect();
    let objects: Vec<String> = api
        .list(&ListParams::default())
        .await
        .unwrap()
        .items
        .iter()
        .map(|o| serde_json::to_string(o).unwrap())
        .chain(
            ns.api::<QlikAutomationSettings>()
                .list(&ListParams::default())
                .await
                .unwrap()
                .items
                .iter()
                .map(|o| serde_json::to_string(o).unwrap()),
        )
        .collect();
    let messages: Vec<String> = api
        .list(&ListParams::default())
        .await
        .unwrap()
        .items
        .iter()
        .flat_map(|o| o.status.clone().unwrap_or_default().conditions)
        .map(|c| c.message)
        .collect();
    let mut leaks = Vec::new();
    for (what, secret) in &secrets {
        let mut places = Vec::new();
        if log.contains(secret.as_str()) {
            places.push("operator log".to_string());
        }
        places.extend(
            events
                .iter()
                .filter(|e| e.contains(secret.as_str()))
                .map(|e| format!("Event {e}")),
        );
        places.extend(
            objects
                .iter()
                .filter(|o| o.contains(secret.as_str()))
                .map(|_| "an object (status/annotations)".to_string()),
        );
        if !places.is_empty() {
            leaks.push(format!("{what} found in {places:?}"));
        }
    }
    let trace_lines = log.lines().filter(|l| l.contains("TRACE")).count();
    assert!(
        trace_lines > 100,
        "RUST_LOG=trace produced only {trace_lines} TRACE lines"
    );
    assert!(
        messages
            .iter()
            .any(|m| m.contains("Unauthorized") || m.contains("unauthorized")),
        "the wrong key's failure is reported: {messages:?}"
    );
    assert!(leaks.is_empty(), "secrets leaked:\n{}", leaks.join("\n"));
    println!(
        "RELIABILITY secrets: scanned {} log lines ({} TRACE, {} bytes), {} Events, {} objects (status, annotations, \
         condition messages) for {} API keys (+base64) and {} execution tokens: 0 found",
        log.lines().count(),
        trace_lines,
        log.len(),
        events.len(),
        objects.len(),
        3,
        tokens.len()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_secret_ref_never_leaves_the_namespace() {
    let ns = TestNamespace::new("xns-home").await;
    let other = TestNamespace::new("xns-other").await;
    let emu = emulator(scaled).await;
    // The Secret exists, but only in the other namespace.
    other
        .connection_secret("elsewhere", &emu.base_url(), USER_KEY)
        .await;
    // The operator watches both namespaces and could read either Secret.
    let op = OperatorProcess::start(
        &ControlPlane::shared().kubeconfig_path(),
        &[&ns.name, &other.name],
        OperatorProcess::DEBUG,
        &[],
    );
    let automations = dynamic_api::<QlikAutomation>(&ns.client, &ns.name);
    automations
        .create(
            &PostParams::default(),
            &dynamic(
                "QlikAutomation",
                "borrower",
                automation_spec_with(json!({"connection": {"secretRef": {"name": "elsewhere"}}})),
            ),
        )
        .await
        .unwrap();
    ns.apply_yaml::<QlikAutomationSettings>(
        "apiVersion: automations.qlik.dev/v1alpha1\nkind: QlikAutomationSettings\nmetadata:\n  name: borrower\nspec:\n  connection:\n    secretRef:\n      name: elsewhere\n  automationsEnabled: false\n",
    )
    .await;
    // Naming the other namespace is refused outright.
    let err = automations
        .create(
            &PostParams::default(),
            &dynamic(
                "QlikAutomation",
                "explicit",
                automation_spec_with(json!({"connection": {"secretRef": {"name": "elsewhere", "namespace": other.name}}})),
            ),
        )
        .await
        .unwrap_err();
    let (code, text) = refusal(&err);
    assert!(
        code == 422 && text.contains("spec.connection.secretRef.namespace"),
        "{text}"
    );

    let api: Api<QlikAutomation> = ns.api();
    let a = wait_reason(&api, "borrower", "ConnectionError").await;
    let (_, _, message) = ready_status(&a).unwrap();
    assert!(
        message.contains(&format!("{}/elsewhere", ns.name)) && message.contains("does not exist"),
        "{message}"
    );
    let settings: Api<QlikAutomationSettings> = ns.api();
    let s = wait_for("settings ConnectionError", WAIT, || async {
        let s = settings.get("borrower").await.ok()?;
        let c = s
            .status?
            .conditions
            .into_iter()
            .find(|c| c.type_ == "Ready")?;
        (c.reason == "ConnectionError").then_some(c.message)
    })
    .await;
    assert!(s.contains(&format!("{}/elsewhere", ns.name)), "{s}");
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(emu.counters().total, 0, "the tenant was never called");
    assert!(emu.automations().is_empty());

    // The same name in its own namespace is what it uses.
    ns.connection_secret("elsewhere", &emu.base_url(), USER_KEY)
        .await;
    wait_ready(&api, "borrower").await;
    assert_eq!(emu.automations().len(), 1);
    drop(op);
    println!(
        "RELIABILITY secret_namespace: secretRef.namespace refused at admission; secretRef.name resolved only in the \
         object's namespace (ConnectionError while the Secret existed only elsewhere, 0 tenant requests; Ready once it existed at home)"
    );
}

// ---------------------------------------------------------------------------------------------
// 6b. TLS
// ---------------------------------------------------------------------------------------------

/// `openssl s_server` with a fresh self-signed certificate for 127.0.0.1.
struct SelfSignedServer {
    child: Child,
    port: u16,
    _dir: tempfile::TempDir,
}

impl SelfSignedServer {
    async fn start() -> SelfSignedServer {
        let dir = tempfile::tempdir().unwrap();
        let (cert, key) = (dir.path().join("cert.pem"), dir.path().join("key.pem"));
        let out = Command::new("openssl")
            .args([
                "req",
                "-x509",
                "-newkey",
                "rsa:2048",
                "-nodes",
                "-days",
                "2",
                "-subj",
                "/CN=127.0.0.1",
            ])
            .args(["-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost"])
            .arg("-keyout")
            .arg(&key)
            .arg("-out")
            .arg(&cert)
            .output()
            .expect("the openssl command is needed to make a self-signed certificate");
        assert!(
            out.status.success(),
            "openssl req: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let port = free_addr().port();
        let child = Command::new("openssl")
            .args(["s_server", "-quiet", "-www", "-accept"])
            .arg(format!("127.0.0.1:{port}"))
            .arg("-cert")
            .arg(&cert)
            .arg("-key")
            .arg(&key)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        wait_for(
            "openssl s_server listening",
            Duration::from_secs(15),
            || async {
                tokio::net::TcpStream::connect(("127.0.0.1", port))
                    .await
                    .ok()
                    .map(drop)
            },
        )
        .await;
        SelfSignedServer {
            child,
            port,
            _dir: dir,
        }
    }

    fn url(&self) -> String {
        format!("https://127.0.0.1:{}", self.port)
    }
}

impl Drop for SelfSignedServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A `MakeWriter` collecting log output in memory.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_is_verified_unless_explicitly_and_loudly_turned_off() {
    qlik_automations_operator::install_crypto_provider();
    let server = SelfSignedServer::start().await;
    const WARNING: &str = "TLS certificate verification is OFF";

    // The client: refused with a certificate error by default.
    let mut config = qlik::ClientConfig::new(server.url(), qlik::ApiKey::new(USER_KEY));
    config.retry = RetryPolicy::none();
    let strict = qlik::QlikClient::new(config.clone()).unwrap();
    let err = strict.get_settings().await.unwrap_err();
    let refused = err.to_string();
    assert!(refused.to_lowercase().contains("certificate"), "{refused}");
    // Accepted (an HTML page is not JSON, so some other error) only with the option, which warns.
    config.insecure_skip_tls_verify = true;
    let captured = Captured::default();
    let writer = captured.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_writer(move || writer.clone())
        .with_ansi(false)
        .finish();
    let insecure =
        tracing::subscriber::with_default(subscriber, || qlik::QlikClient::new(config)).unwrap();
    let warned = String::from_utf8(captured.0.lock().unwrap().clone()).unwrap();
    assert!(
        warned.contains("WARN") && warned.contains(WARNING),
        "{warned}"
    );
    let accepted = match insecure.get_settings().await {
        Ok(s) => format!("{s:?}"),
        Err(e) => {
            assert!(!e.to_string().to_lowercase().contains("certificate"), "{e}");
            e.to_string()
        }
    };

    // The operator: the same, end to end.
    let strict_ns = TestNamespace::new("tls-strict").await;
    let loose_ns = TestNamespace::new("tls-insecure").await;
    for ns in [&strict_ns, &loose_ns] {
        ns.connection_secret("qlik", &server.url(), USER_KEY).await;
    }
    let kubeconfig = ControlPlane::shared().kubeconfig_path();
    let mut strict_op =
        OperatorProcess::start(&kubeconfig, &[&strict_ns.name], OperatorProcess::DEBUG, &[]);
    let mut loose_op = OperatorProcess::start(
        &kubeconfig,
        &[&loose_ns.name],
        OperatorProcess::DEBUG,
        &["--insecure-skip-tls-verify"],
    );
    for ns in [&strict_ns, &loose_ns] {
        ns.api::<QlikAutomation>()
            .create(
                &PostParams::default(),
                &manifest(
                    "tls",
                    &Want {
                        remote_name: "tls".into(),
                        description: String::new(),
                        enabled: true,
                        schedules: vec![],
                        run_mode: "manual",
                    },
                ),
            )
            .await
            .unwrap();
    }
    let message_of = |ns: &TestNamespace| {
        let api: Api<QlikAutomation> = ns.api();
        async move {
            wait_for("a failure condition", WAIT, || async {
                let a = api.get("tls").await.ok()?;
                let (status, reason, message) = ready_status(&a)?;
                (status == ConditionStatus::False).then_some(format!("{reason}: {message}"))
            })
            .await
        }
    };
    let strict_message = message_of(&strict_ns).await;
    assert!(
        strict_message.to_lowercase().contains("certificate"),
        "{strict_message}"
    );
    let loose_message = message_of(&loose_ns).await;
    assert!(
        !loose_message.to_lowercase().contains("certificate"),
        "{loose_message}"
    );
    assert!(
        loose_op.log().contains(WARNING),
        "the operator did not warn:\n{}",
        loose_op.log_tail(30)
    );
    assert!(!strict_op.log().contains(WARNING));
    strict_op.assert_healthy().await;
    loose_op.assert_healthy().await;
    println!(
        "RELIABILITY tls: self-signed tenant refused by default ({refused:?}; operator: {strict_message:?}); \
         with the option the handshake passes ({accepted:?}; operator: {loose_message:?}) and '{WARNING}' is logged at WARN"
    );
}
