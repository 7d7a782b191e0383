//! The declared state of a test's objects, and the exact end-state comparison the fault,
//! crash and outage tests end with.

use std::{
    collections::{BTreeMap, BTreeSet},
    time::{Duration, Instant},
};

use kube::{
    Api, ResourceExt,
    api::{DeleteParams, ListParams, Patch, PatchParams, PostParams},
};
use qlik_automations_operator::{
    crd::{ConditionStatus, QlikAutomation},
    emulator::{Counters, RunningEmulator},
};
use rand::{Rng, rngs::StdRng, seq::IndexedRandom};
use serde_json::{Value, json};

use crate::support::operator::{OperatorProcess, ready_status};

/// One schedule as declared.
#[derive(Debug, Clone, PartialEq)]
pub struct Sched {
    pub start: String,
    pub stop: Option<String>,
    pub interval: i64,
    pub tz: String,
}

/// What one `QlikAutomation` declares about its remote.
#[derive(Debug, Clone, PartialEq)]
pub struct Want {
    pub remote_name: String,
    pub description: String,
    pub enabled: bool,
    pub schedules: Vec<Sched>,
    pub run_mode: &'static str,
}

pub fn random_schedules(rng: &mut StdRng) -> Vec<Sched> {
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

pub fn random_want(rng: &mut StdRng, remote_name: String) -> Want {
    Want {
        remote_name,
        description: format!("declared {}", rng.random_range(0..1_000_000)),
        enabled: rng.random_bool(0.8),
        schedules: random_schedules(rng),
        run_mode: ["manual", "triggered", "webhook"].choose(rng).unwrap(),
    }
}

pub fn schedules_json(s: &[Sched]) -> Value {
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

pub fn workspace_json(run_mode: &str) -> Value {
    json!({"blocks": [{"id": "start", "type": "StartBlock", "runMode": run_mode}]})
}

/// The owned part of a spec: what updates replace.
pub fn owned_spec(w: &Want) -> Value {
    json!({
        "name": w.remote_name,
        "description": w.description,
        "enabled": w.enabled,
        "schedules": schedules_json(&w.schedules),
        "workspace": workspace_json(w.run_mode),
    })
}

pub fn manifest(name: &str, w: &Want) -> QlikAutomation {
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

pub async fn create_object(api: &Api<QlikAutomation>, name: &str, w: &Want) {
    api.create(&PostParams::default(), &manifest(name, w))
        .await
        .unwrap_or_else(|e| panic!("create {name}: {e}"));
}

pub async fn update_object(api: &Api<QlikAutomation>, name: &str, w: &Want) {
    api.patch(
        name,
        &PatchParams::default(),
        &Patch::Merge(json!({"spec": owned_spec(w)})),
    )
    .await
    .unwrap_or_else(|e| panic!("update {name}: {e}"));
}

pub async fn delete_object(api: &Api<QlikAutomation>, name: &str) {
    api.delete(name, &DeleteParams::default())
        .await
        .unwrap_or_else(|e| panic!("delete {name}: {e}"));
}

/// Everything that differs between the declared state and what Kubernetes and the tenant
/// hold; empty when they match exactly. `declared` are the objects that should exist,
/// `gone` the ones that were deleted.
pub async fn end_state_diff(
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
pub async fn wait_converged(
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
pub fn answered(counters: &Counters, status: &str) -> u64 {
    counters
        .by_endpoint
        .values()
        .map(|e| e.by_status.get(status).copied().unwrap_or(0))
        .sum()
}
