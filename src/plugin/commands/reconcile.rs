//! `kubectl qlik reconcile NAME`: Flux's `reconcile.fluxcd.io/requestedAt`, then wait for
//! the operator to echo it in `status.lastHandledReconcileAt`.

use std::time::Duration;

use chrono::{SecondsFormat, Utc};
use kube::api::{Patch, PatchParams};
use serde_json::json;

use crate::{
    crd::{ANNOTATION_RECONCILE_REQUESTED_AT, Condition, ConditionStatus, QlikAutomation},
    plugin::{Cluster, Io, PluginError, cli::ReconcileArgs, duration, target::RESOURCE},
};

/// The field manager of the annotation write, so `managedFields` shows who asked.
const FIELD_MANAGER: &str = "kubectl-qlik";
/// How often the object is read while waiting: cheap GETs, and the operator answers within
/// about a second when it is idle.
const POLL: Duration = Duration::from_millis(500);

/// Requests a reconcile and waits until the operator has handled it.
pub async fn execute(
    cluster: &Cluster,
    args: &ReconcileArgs,
    io: &mut Io<'_>,
) -> Result<(), PluginError> {
    let api = cluster.api();
    // Read first, so a wrong name is "not found" rather than a failed patch.
    cluster.automation(&args.name).await?;
    // Nanoseconds make two requests in the same second distinct, as Flux's CLI does.
    let token = Utc::now().to_rfc3339_opts(SecondsFormat::Nanos, true);
    let patch = json!({"metadata": {"annotations": {ANNOTATION_RECONCILE_REQUESTED_AT: token}}});
    let params = PatchParams {
        field_manager: Some(FIELD_MANAGER.into()),
        ..PatchParams::default()
    };
    api.patch(&args.name, &params, &Patch::Merge(&patch))
        .await
        .map_err(|e| PluginError::kube("patch", RESOURCE, &cluster.namespace, e))?;
    writeln!(
        io.out,
        "reconcile requested for qlikautomation {}/{} ({ANNOTATION_RECONCILE_REQUESTED_AT}={token})",
        cluster.namespace, args.name
    )?;

    let deadline = tokio::time::Instant::now() + args.timeout;
    let handled = loop {
        let obj = cluster.automation(&args.name).await?;
        if handled_value(&obj) == Some(token.as_str()) {
            break obj;
        }
        if tokio::time::Instant::now() >= deadline {
            return Err(PluginError::Timeout(format!(
                "timed out after {} waiting for the operator to handle the request \
                 (status.lastHandledReconcileAt is {}){}; is the operator running and watching namespace {:?}?",
                duration::human(args.timeout),
                handled_value(&obj).map_or("unset".into(), |v| format!("{v:?}")),
                ready(&obj)
                    .map(describe)
                    .map(|d| format!("; {d}"))
                    .unwrap_or_default(),
                cluster.namespace,
            )));
        }
        tokio::time::sleep(POLL).await;
    };
    match ready(&handled) {
        Some(c) if c.status == ConditionStatus::True => {
            writeln!(io.out, "reconciled: {}", describe(c))?;
            Ok(())
        }
        Some(c) => Err(PluginError::NotReady(format!(
            "reconciled, but not ready: {}",
            describe(c)
        ))),
        None => {
            writeln!(io.out, "reconciled (no Ready condition yet)")?;
            Ok(())
        }
    }
}

fn handled_value(obj: &QlikAutomation) -> Option<&str> {
    obj.status.as_ref()?.last_handled_reconcile_at.as_deref()
}

fn ready(obj: &QlikAutomation) -> Option<&Condition> {
    obj.status
        .as_ref()?
        .conditions
        .iter()
        .find(|c| c.type_ == "Ready")
}

/// `Ready=True (Synced): the automation matches the spec`
fn describe(c: &Condition) -> String {
    format!("{}={:?} ({}): {}", c.type_, c.status, c.reason, c.message)
}
