//! The `QlikAutomation` reconciler: observe → decide → act → record.
//!
//! Every choice is made in [`super::decide`] (and the spec diff in [`super::plan`]); the
//! modules here do the I/O around it: [`desired`] resolves the spec, [`converge`] observes
//! and writes one remote, [`intent`] creates without duplicates, [`act`] sends writes and
//! runs, [`metadata`] keeps the object's link and finalizer.

mod act;
mod converge;
mod desired;
mod intent;
mod metadata;

use std::sync::Arc;

use kube::{
    ResourceExt,
    runtime::{controller::Action as Requeue, events::EventType},
};

use crate::{
    crd::{
        ANNOTATION_AUTOMATION_ID, ANNOTATION_CREATE_PENDING, ANNOTATION_RECONCILE_REQUESTED_AT,
        ConditionStatus, FINALIZER, QlikAutomation, automation::ManagementPolicy,
    },
    qlik::ErrorClass,
};

use super::{
    conditions,
    context::{Context, Error, ReadyReport},
    decide::{self, Finalize, OnGone, Outcome, Readiness},
    status,
};
pub(crate) use metadata::linked_str;
use metadata::{claim_of, ensure_finalizer, linked_id, patch_annotations, remove_finalizer};

/// The kind name used in metrics.
const KIND: &str = "QlikAutomation";

/// Reconciles one `QlikAutomation`. Failures are recorded in status and as Events here, so
/// the returned error only covers failing to record them.
pub async fn reconcile(obj: Arc<QlikAutomation>, ctx: Arc<Context>) -> Result<Requeue, Error> {
    let started = std::time::Instant::now();
    let key = format!("{}/{}", obj.namespace().unwrap_or_default(), obj.name_any());
    let deleting = obj.metadata.deletion_timestamp.is_some();
    let (result, recorded) = if deleting {
        (finalize(&obj, &ctx).await, None)
    } else {
        match sync(&obj, &ctx).await {
            Ok(Recorded { requeue, ready }) => (Ok(requeue), Some(ready)),
            Err(e) => (Err(e), None),
        }
    };
    let ready = match &recorded {
        _ if deleting => ReadyReport::finalized(&result),
        // What the written Ready condition says (Observe's drift included).
        Some((ready, reason)) => ReadyReport::synced(&result, *ready, reason),
        None => ReadyReport::synced(&result, ConditionStatus::False, ""),
    };
    let failures = ctx.account(KIND, &*obj, &key, started, &result, ready);
    match result {
        Ok(requeue) => Ok(requeue),
        Err(err) => {
            if obj.metadata.deletion_timestamp.is_none() {
                record_failure(&obj, &ctx, &err, failures).await?;
            } else {
                // A failing delete holds up the object's deletion, so every attempt says so;
                // the Recorder folds the repeats into one Event with a series.
                ctx.event(
                    &*obj,
                    EventType::Warning,
                    err.reason(),
                    "Delete",
                    err.message(),
                )
                .await;
            }
            Ok(Requeue::requeue(err.requeue_after(failures)))
        }
    }
}

/// Requeue policy for errors that escaped `reconcile` (failing to write status).
pub fn error_policy(_obj: Arc<QlikAutomation>, err: &Error, _ctx: Arc<Context>) -> Requeue {
    Requeue::requeue(err.requeue_after(1))
}

/// Another live object that claims `id` and came first, as `namespace/name`.
fn earlier_claimant(ctx: &Context, obj: &QlikAutomation, id: &str) -> Option<String> {
    let others = ctx.claimants(id);
    decide::first_claimant(&claim_of(obj), others.iter().map(|o| claim_of(o)), id).map(|c| c.key())
}

async fn sync(obj: &QlikAutomation, ctx: &Context) -> Result<Recorded, Error> {
    let obj = ensure_finalizer(ctx, obj).await?;
    let desired = desired::desired_state(ctx, &obj).await?;
    let client = ctx.client_of(&obj).await?;
    let view = ctx.views.get(&client);

    if let Some(id) = linked_id(&obj)
        && let Some(first) = earlier_claimant(ctx, &obj, &id)
    {
        return Err(Error::Conflict(format!(
            "remote automation {id} is already managed by QlikAutomation {first}; two objects never share a remote"
        )));
    }

    if obj.spec.suspend {
        let outcome = observe_suspended(ctx, &obj, &view).await?;
        return record(ctx, &obj, outcome).await;
    }

    // Refused before anything is written: a v1 connection never half-applies a spec.
    if let Some(message) = desired.unsupported(client.api()) {
        return Err(Error::Unsupported(message));
    }

    // The tenant outranks every cache: a 404 on the linked remote, from whichever call,
    // means it is gone. One the operator had seen is recreated (once per reconcile); one a
    // user named and the operator never saw is reported.
    let mut obj = obj;
    let mut link = linked_id(&obj);
    let mut recreating = false;
    loop {
        match converge::converge(ctx, &obj, &client, &view, &desired, link.clone()).await {
            Ok(outcome) => {
                ctx.warn_if_deprecated(&obj, &client).await;
                return record(ctx, &obj, outcome).await;
            }
            Err(Error::RemoteGone(id)) => {
                view.evict(&id);
                let seen = obj.status.as_ref().and_then(|s| s.automation_id.as_deref());
                let observing = obj.spec.management_policy == ManagementPolicy::Observe;
                if let OnGone::NotFound(message) =
                    decide::on_remote_gone(&id, seen, link.as_deref(), recreating, observing)
                {
                    return Err(Error::NotFound(message));
                }
                ctx.event(
                    &obj,
                    EventType::Warning,
                    "RemoteDeleted",
                    "Recreate",
                    format!("automation {id} was deleted outside Kubernetes; creating it again"),
                )
                .await;
                obj = patch_annotations(ctx, &obj, &[(ANNOTATION_AUTOMATION_ID, None)]).await?;
                link = None;
                recreating = true;
            }
            Err(e) => return Err(e),
        }
    }
}

/// A suspended object writes nothing: it shows the remote as the view last saw it.
async fn observe_suspended(
    ctx: &Context,
    obj: &QlikAutomation,
    view: &Arc<super::view::TenantView>,
) -> Result<Outcome, Error> {
    let status = obj.status.clone().unwrap_or_default();
    let id = linked_id(obj);
    let remote = match &id {
        Some(id) => converge::listed(ctx, obj, view, id).await?.map(|(s, _)| s),
        None => None,
    };
    let usage = match &id {
        Some(id) => {
            view.automation_usage(id, remote.as_ref().and_then(|s| s.created_at.as_deref()))
        }
        None => (None, None),
    };
    Ok(Outcome {
        id,
        remote,
        applied_digest: status.applied_digest,
        readiness: Readiness::Suspended,
        last_run: status.last_run,
        last_handled_run_request: status.last_handled_run_request,
        last_handled_reconcile_at: status.last_handled_reconcile_at,
        usage,
        drifted_fields: status.drifted_fields,
    })
}

/// What a successful sync recorded: when to look again, and the `Ready` status and reason
/// it wrote.
struct Recorded {
    requeue: Requeue,
    ready: (ConditionStatus, String),
}

/// Writes the status of `outcome` (only when it changed) and returns the requeue.
async fn record(ctx: &Context, obj: &QlikAutomation, outcome: Outcome) -> Result<Recorded, Error> {
    let old = obj.status.clone().unwrap_or_default();
    let requeue = match outcome.readiness {
        Readiness::Synced => decide::requeue_after(outcome.last_run.as_ref(), ctx.config.resync),
        Readiness::Suspended | Readiness::Observed => ctx.config.resync,
    };
    let status = decide::status_for(&old, obj.metadata.generation, outcome);
    let ready = status
        .conditions
        .iter()
        .find(|c| c.type_ == conditions::READY)
        .map_or((ConditionStatus::Unknown, String::new()), |c| {
            (c.status, c.reason.clone())
        });
    status::write(&ctx.kube, obj, &old, status).await?;
    Ok(Recorded {
        requeue: Requeue::requeue(requeue),
        ready,
    })
}

/// Records a failed reconcile in the conditions (and as an Event, see
/// [`Context::report_failure`]).
async fn record_failure(
    obj: &QlikAutomation,
    ctx: &Context,
    err: &Error,
    failures: u32,
) -> Result<(), Error> {
    let message = ctx.report_failure(obj, err, failures, "Reconcile").await;
    let old = obj.status.clone().unwrap_or_default();
    let status = decide::failure_status(
        &old,
        obj.metadata.generation,
        err.reason(),
        &message,
        err.is_transient(),
        obj.annotations()
            .get(ANNOTATION_RECONCILE_REQUESTED_AT)
            .map(String::as_str),
    );
    status::write(&ctx.kube, obj, &old, status).await
}

/// Deletion: remove the remote or leave it, as [`decide::on_delete`] says, then the
/// finalizer.
async fn finalize(obj: &QlikAutomation, ctx: &Context) -> Result<Requeue, Error> {
    if !obj.finalizers().iter().any(|f| f == FINALIZER) {
        return Ok(Requeue::await_change());
    }
    let id = linked_id(obj);
    let conflicted = id
        .as_deref()
        .is_some_and(|id| earlier_claimant(ctx, obj, id).is_some());
    match decide::on_delete(
        obj.spec.deletion_policy,
        obj.spec.suspend,
        conflicted,
        obj.spec.management_policy == ManagementPolicy::Observe,
    ) {
        Finalize::Delete => {
            let client = ctx.client_of(obj).await?;
            let view = ctx.views.get(&client);
            let mut ids: Vec<String> = id.into_iter().collect();
            if let Some(intent) = obj.annotations().get(ANNOTATION_CREATE_PENDING)
                && let Some(found) =
                    intent::find_own_create(ctx, obj, &client, &obj.remote_name(), intent).await?
            {
                ids.push(found.id);
            }
            for id in ids {
                ctx.metrics.wrote("delete");
                match client.delete_automation(&id).await {
                    Ok(()) => {}
                    Err(e) if e.class() == ErrorClass::NotFound => {}
                    Err(e) => return Err(e.into()),
                }
                view.evict(&id);
                ctx.event(
                    obj,
                    EventType::Normal,
                    "Deleted",
                    "Delete",
                    format!("deleted automation {id}"),
                )
                .await;
            }
        }
        Finalize::Orphan(why) => {
            if let Some(id) = &id {
                ctx.event(
                    obj,
                    EventType::Normal,
                    "Orphaned",
                    "Delete",
                    format!("left automation {id} in the tenant: {why}"),
                )
                .await;
            }
        }
    }
    remove_finalizer(ctx, obj).await?;
    Ok(Requeue::await_change())
}
