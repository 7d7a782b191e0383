//! The operator's own account of a tenant's rate budget, for `kubectl qlik status`: read from
//! the `/metrics` of the operator's Pods through the apiserver's Pod proxy, so it needs no
//! port-forward and no network path to the Pods, only the rights to list Services and Pods
//! and to use `pods/proxy`.
//!
//! The Pods are found through the chart's metrics Service (label
//! `app.kubernetes.io/name=qlik-automations-operator`, a port named `metrics`). The budget
//! comes from the leader (the only replica that calls Qlik); the 429s of the last hour are
//! summed over every replica, since a replica that led earlier in the hour counted its own.

use k8s_openapi::{
    api::core::v1::{Pod, Service},
    apimachinery::pkg::util::intstr::IntOrString,
};
use kube::{Api, ResourceExt, api::ListParams};
use serde::Serialize;

use super::exposition::{self, Sample};
use crate::qlik::{Tier, telemetry::Caller};

/// The label the chart puts on its Services and Pods.
pub const OPERATOR_SELECTOR: &str = "app.kubernetes.io/name=qlik-automations-operator";
const PREFIX: &str = "qlik_automations_operator_";

/// What the operator's metrics say about one tenant and identity.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct OperatorBudget {
    /// The Pods scraped, `namespace/name`.
    pub pods: Vec<String>,
    /// The replica that leads (calls Qlik), when one said so.
    pub leader: Option<String>,
    /// Tier 1 (reads), when the operator has used this identity on this tenant.
    pub tier1: Option<OperatorTier>,
    /// Tier 2 (writes), likewise.
    pub tier2: Option<OperatorTier>,
}

/// One tier as the operator counts it.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct OperatorTier {
    /// Requests the leader's limiter counts as spent in the current window.
    pub used: i64,
    /// The limit per window the leader's limiter works with.
    pub limit: i64,
    /// 429s Qlik answered in the last hour, over all replicas.
    pub rate_limited_last_hour: i64,
}

/// Scrapes every operator Pod behind the chart's metrics Services and reports `caller`'s
/// budget. The error says what was missing (no Service, no Pod, a refused proxy).
pub async fn read(client: &kube::Client, caller: &Caller) -> Result<OperatorBudget, String> {
    let services = Api::<Service>::all(client.clone())
        .list(&ListParams::default().labels(OPERATOR_SELECTOR))
        .await
        .map_err(|e| format!("cannot list the operator's Services ({OPERATOR_SELECTOR}): {e}"))?;
    let mut scrapes = Vec::new();
    for service in &services.items {
        let Some(spec) = &service.spec else { continue };
        let Some(port) = spec
            .ports
            .iter()
            .flatten()
            .find(|p| p.name.as_deref() == Some("metrics"))
        else {
            continue;
        };
        let target = port
            .target_port
            .clone()
            .unwrap_or(IntOrString::Int(port.port));
        let namespace = service.namespace().unwrap_or_default();
        let selector = spec
            .selector
            .iter()
            .flatten()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join(",");
        if selector.is_empty() {
            continue;
        }
        let pods = Api::<Pod>::namespaced(client.clone(), &namespace)
            .list(&ListParams::default().labels(&selector))
            .await
            .map_err(|e| format!("cannot list the operator's Pods in {namespace}: {e}"))?;
        for pod in pods.items.iter().filter(|p| running(p)) {
            let Some(port) = container_port(pod, &target) else {
                continue;
            };
            let path = format!(
                "/api/v1/namespaces/{namespace}/pods/{}:{port}/proxy/metrics",
                pod.name_any()
            );
            let request = http::Request::get(&path)
                .body(Vec::new())
                .map_err(|e| format!("{path}: {e}"))?;
            let text = client
                .request_text(request)
                .await
                .map_err(|e| format!("cannot read {path}: {e}"))?;
            scrapes.push((
                format!("{namespace}/{}", pod.name_any()),
                exposition::parse(&text)?,
            ));
        }
    }
    if scrapes.is_empty() {
        return Err(format!(
            "no running operator Pod behind a Service labelled {OPERATOR_SELECTOR} with a port named metrics"
        ));
    }
    Ok(from_scrapes(caller, &scrapes))
}

/// The number of the Pod's port `target` (a Service's targetPort): the apiserver's Pod proxy
/// takes numbers only.
fn container_port(pod: &Pod, target: &IntOrString) -> Option<i32> {
    match target {
        IntOrString::Int(n) => Some(*n),
        IntOrString::String(name) => pod
            .spec
            .as_ref()?
            .containers
            .iter()
            .flat_map(|c| c.ports.iter().flatten())
            .find(|p| p.name.as_deref() == Some(name.as_str()))
            .map(|p| p.container_port),
    }
}

fn running(pod: &Pod) -> bool {
    pod.metadata.deletion_timestamp.is_none()
        && pod.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Running")
}

/// The budget of `caller` from each Pod's samples: the pure part of [`read`].
pub fn from_scrapes(caller: &Caller, scrapes: &[(String, Vec<Sample>)]) -> OperatorBudget {
    let who = [
        ("tenant", caller.tenant.as_str()),
        ("identity", caller.identity.as_str()),
    ];
    let value = |samples: &[Sample], name: &str, tier: Option<Tier>| {
        samples
            .iter()
            .filter(|s| s.name == format!("{PREFIX}{name}"))
            .filter(|s| tier.is_none_or(|t| s.has(&who) && s.has(&[("tier", t.label())])))
            .map(|s| s.value)
            .reduce(|a, b| a + b)
    };
    let leader = scrapes
        .iter()
        .find(|(_, samples)| value(samples, "leader", None) == Some(1.0));
    let tier = |t: Tier| {
        let (_, samples) = leader?;
        let limit = value(samples, "rate_budget_limit", Some(t))?;
        let remaining = value(samples, "rate_budget_remaining", Some(t)).unwrap_or(limit);
        let rate_limited: f64 = scrapes
            .iter()
            .filter_map(|(_, s)| value(s, "qlik_rate_limited_last_hour", Some(t)))
            .sum();
        // Gauges of whole requests: the casts only drop a `.0`.
        Some(OperatorTier {
            used: (limit - remaining).max(0.0) as i64,
            limit: limit as i64,
            rate_limited_last_hour: rate_limited as i64,
        })
    };
    OperatorBudget {
        pods: scrapes.iter().map(|(pod, _)| pod.clone()).collect(),
        leader: leader.map(|(pod, _)| pod.clone()),
        tier1: tier(Tier::Tier1),
        tier2: tier(Tier::Tier2),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn caller() -> Caller {
        Caller {
            tenant: "acme.example".into(),
            identity: "0123abcd".into(),
        }
    }

    fn metrics(leader: u8, lines: &str) -> Vec<Sample> {
        exposition::parse(&format!("{PREFIX}leader {leader}\n{lines}")).unwrap()
    }

    fn line(name: &str, tenant: &str, tier: &str, value: u32) -> String {
        format!(
            "{PREFIX}{name}{{tenant=\"{tenant}\",identity=\"0123abcd\",tier=\"{tier}\"}} {value}\n"
        )
    }

    #[test]
    fn the_leader_gives_the_budget_and_every_replica_its_429s() {
        let leader = metrics(
            1,
            &[
                line("rate_budget_limit", "acme.example", "tier1", 5000),
                line("rate_budget_remaining", "acme.example", "tier1", 4990),
                line("rate_budget_limit", "acme.example", "tier2", 500),
                line("rate_budget_remaining", "acme.example", "tier2", 0),
                line("qlik_rate_limited_last_hour", "acme.example", "tier2", 2),
                // Another tenant's figures are not this one's.
                line("rate_budget_limit", "other.example", "tier1", 9),
                line("qlik_rate_limited_last_hour", "other.example", "tier2", 50),
            ]
            .concat(),
        );
        // A replica that led earlier in the hour; its budget gauges are stale.
        let standby = metrics(
            0,
            &[
                line("rate_budget_limit", "acme.example", "tier2", 500),
                line("rate_budget_remaining", "acme.example", "tier2", 500),
                line("qlik_rate_limited_last_hour", "acme.example", "tier2", 3),
            ]
            .concat(),
        );
        let budget = from_scrapes(
            &caller(),
            &[("ops/b".into(), standby), ("ops/a".into(), leader)],
        );
        assert_eq!(budget.leader.as_deref(), Some("ops/a"));
        assert_eq!(budget.pods, ["ops/b", "ops/a"]);
        assert_eq!(
            budget.tier1,
            Some(OperatorTier {
                used: 10,
                limit: 5000,
                rate_limited_last_hour: 0
            })
        );
        assert_eq!(
            budget.tier2,
            Some(OperatorTier {
                used: 500,
                limit: 500,
                rate_limited_last_hour: 5
            })
        );
    }

    #[test]
    fn no_leader_or_an_identity_never_used_gives_no_tiers() {
        let unused = metrics(1, &line("rate_budget_limit", "other.example", "tier1", 9));
        let budget = from_scrapes(&caller(), &[("ops/a".into(), unused)]);
        assert_eq!((budget.tier1, budget.tier2), (None, None));
        let standby = metrics(0, &line("rate_budget_limit", "acme.example", "tier1", 9));
        let budget = from_scrapes(&caller(), &[("ops/a".into(), standby)]);
        assert_eq!(budget.leader, None);
        assert_eq!(budget.tier1, None);
    }
}
