//! The operator or the control plane goes away: the operator SIGKILLed at random moments,
//! kube-apiserver stopped under a running operator, the operator started before it.

use std::{
    collections::{BTreeMap, BTreeSet},
    time::{Duration, Instant},
};

use kube::{Api, ResourceExt, api::ListParams};
use qlik_automations_operator::{
    crd::QlikAutomation,
    emulator::{FaultConfig, FaultRule},
    qlik::{self, Endpoint},
};
use rand::{Rng, SeedableRng, rngs::StdRng};

use crate::{
    WAIT,
    end_state::{
        Want, create_object, delete_object, random_schedules, random_want, update_object,
        wait_converged,
    },
    scaled, start_operator,
    support::{
        control_plane::{ControlPlane, unique_name},
        operator::{
            DEBUG_LOG, TestNamespace, USER_KEY, admin_client, connection_secret, emulator,
            install_crds,
        },
    },
};

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
    let mut op = start_operator(
        &ControlPlane::shared().kubeconfig_path(),
        &[&ns.name],
        DEBUG_LOG,
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
    let recovered = ns
        .events()
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
    let mut op = start_operator(&cp.kubeconfig_path(), &[&namespace], DEBUG_LOG, &[]);
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
    let admin = admin_client(&emu);
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
        op.is_running(),
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
    let mut op = start_operator(&cp.kubeconfig_path(), &[&namespace], DEBUG_LOG, &[]);
    // It stays up, live but not ready, for as long as the apiserver is away.
    tokio::time::sleep(Duration::from_secs(6)).await;
    assert!(
        op.is_running(),
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
