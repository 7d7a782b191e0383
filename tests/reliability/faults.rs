//! The tenant misbehaves: a storm of 503s, 429s, dropped connections and latency; a create
//! whose answer is lost; a short outage of every endpoint. Nothing may be lost or duplicated,
//! and recovery takes seconds.

use std::{
    collections::{BTreeMap, BTreeSet},
    time::{Duration, Instant},
};

use futures::StreamExt;
use kube::Api;
use qlik_automations_operator::{
    crd::QlikAutomation,
    emulator::{DROPPED, FaultConfig, FaultRule},
    qlik::Endpoint,
};
use rand::{Rng, SeedableRng, rngs::StdRng};

use crate::{
    WAIT,
    end_state::{
        Want, answered, create_object, delete_object, random_schedules, random_want, update_object,
        wait_converged,
    },
    scaled, start_operator,
    support::{
        control_plane::ControlPlane,
        operator::{DEBUG_LOG, TestNamespace, USER_KEY, emulator, wait_for},
    },
};

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
    let mut op = start_operator(
        &ControlPlane::shared().kubeconfig_path(),
        &[&ns.name],
        DEBUG_LOG,
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
    let op = start_operator(
        &ControlPlane::shared().kubeconfig_path(),
        &[&ns.name],
        DEBUG_LOG,
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
    ns.connection_secret("qlik", &emu.base_url(), USER_KEY)
        .await;
    let op = start_operator(
        &ControlPlane::shared().kubeconfig_path(),
        &[&ns.name],
        DEBUG_LOG,
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
