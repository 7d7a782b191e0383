//! One pass over a linked (or new) remote: observe it, fetch and diff its detail when
//! something moved, apply the writes, handle a run request and follow a run.

use std::sync::Arc;

use kube::ResourceExt;

use kube::runtime::events::EventType;

use crate::{
    crd::{
        ANNOTATION_AUTOMATION_ID, ANNOTATION_RECONCILE_REQUESTED_AT, ANNOTATION_RUN_REQUESTED_AT,
        QlikAutomation, automation::ManagementPolicy,
    },
    qlik::{ErrorClass, QlikClient, QlikError, model::AutomationSummary},
};

use super::{
    super::{
        context::{Context, Error},
        decide::{self, Outcome, Readiness},
        plan::{Desired, drift, plan},
        view::TenantView,
    },
    act::{apply, last_run_of, request_run},
    intent::create_or_recover,
};

/// Maps a failed call on the linked remote `id`: a 404 there means the remote is gone.
pub(super) fn on_linked(id: &str) -> impl Fn(QlikError) -> Error + '_ {
    move |e| match e.class() {
        ErrorClass::NotFound => Error::RemoteGone(id.to_owned()),
        _ => Error::Qlik(e),
    }
}

/// The linked automation as the view has seen it within its max age; when the view cannot
/// refresh, the object is woken as soon as it can.
pub(super) async fn listed(
    ctx: &Context,
    obj: &QlikAutomation,
    view: &Arc<TenantView>,
    id: &str,
) -> Result<Option<(AutomationSummary, tokio::time::Instant)>, Error> {
    match view.get(id).await {
        Ok(found) => Ok(found),
        Err(e) => {
            if e.is_transient() {
                let wake = ctx.wake.clone();
                let target = kube::runtime::reflector::ObjectRef::from_obj(obj);
                view.wake_on_recovery(target.to_string(), move || wake.wake(target));
            }
            Err(e.into())
        }
    }
}

/// Observes the remote linked as `link` (or creates one when there is none), applies what
/// the spec asks, handles a run request and follows a run. Fails with
/// [`Error::RemoteGone`] when the tenant answers 404 for the linked remote on any call.
pub(super) async fn converge(
    ctx: &Context,
    obj: &QlikAutomation,
    client: &QlikClient,
    view: &Arc<TenantView>,
    desired: &Desired,
    link: Option<String>,
) -> Result<Outcome, Error> {
    let status = obj.status.clone().unwrap_or_default();
    let digest = desired.digest();
    let observing = obj.spec.management_policy == ManagementPolicy::Observe;
    let (id, mut remote, created) = match link {
        Some(id) => match observe(ctx, obj, view, &id).await? {
            Some(listed) => (id, listed, false),
            None => return Err(Error::RemoteGone(id)),
        },
        None if observing => {
            return Err(Error::NotFound(format!(
                "managementPolicy Observe needs the {ANNOTATION_AUTOMATION_ID} annotation naming the remote automation; nothing is created"
            )));
        }
        None => {
            let (new_id, automation) = create_or_recover(ctx, obj, client, view, desired).await?;
            (new_id, AutomationSummary::from(&automation), true)
        }
    };

    // Fetch the detail only when the spec or the remote moved since the last apply, or when
    // someone asked for a full reconcile (`reconcile.fluxcd.io/requestedAt`).
    let reconcile_request = obj
        .annotations()
        .get(ANNOTATION_RECONCILE_REQUESTED_AT)
        .cloned();
    let forced = decide::forced(
        reconcile_request.as_deref(),
        status.last_handled_reconcile_at.as_deref(),
    );
    let mut last_run = status.last_run.clone();
    // Unless the detail is read again, the last comparison stands.
    let mut drifted = status.drifted_fields.clone();
    if decide::fetch_detail(
        created,
        forced,
        !observing && !status.drifted_fields.is_empty(),
        &digest,
        status.applied_digest.as_deref(),
        status.updated_at.as_deref(),
        remote.updated_at.as_deref(),
    ) {
        let mut detail = client.get_automation(&id).await.map_err(on_linked(&id))?;
        view.upsert(&detail);
        let actions = plan(desired, &detail);
        let drift = drift(desired, &detail);
        if !drift.is_empty() && status.applied_digest.as_deref() == Some(digest.as_str()) {
            // The spec did not move since it was last compared: the remote did.
            ctx.event(
                obj,
                EventType::Warning,
                "Drifted",
                "Compare",
                format!(
                    "automation {id} was changed outside Kubernetes in: {}{}",
                    drift.join(", "),
                    if observing {
                        " (managementPolicy Observe: left as it is)"
                    } else {
                        "; setting it back"
                    }
                ),
            )
            .await;
        }
        drifted = drift.iter().map(|f| f.to_string()).collect();
        if observing {
            // Never written: the drift stands until the remote or the spec moves.
        } else if !actions.is_empty() {
            apply(ctx, obj, client, &id, &actions).await?;
            detail = client.get_automation(&id).await.map_err(on_linked(&id))?;
            view.upsert(&detail);
        }
        if !observing {
            drifted.clear();
        }
        if let Some(run) = &detail.last_run {
            last_run = Some(last_run_of(run));
        }
        remote = AutomationSummary::from(&detail);
    }

    // A requested run, exactly once per token.
    let mut last_handled = status.last_handled_run_request.clone();
    if let Some(token) = decide::new_run_request(
        obj.annotations()
            .get(ANNOTATION_RUN_REQUESTED_AT)
            .map(String::as_str),
        last_handled.as_deref(),
    ) && !observing
    {
        let run = request_run(ctx, obj, client, &id, token).await?;
        last_run = Some(last_run_of(&run));
        last_handled = Some(token.to_owned());
    }

    // A run in progress is looked at again until it ends.
    if let Some(run) = &last_run
        && let Some(run_id) = &run.id
        && decide::run_in_progress(run.status.as_deref())
    {
        match client.get_run(&id, run_id).await {
            Ok(fresh) => last_run = Some(last_run_of(&fresh)),
            Err(e) if e.class() == ErrorClass::NotFound => {}
            Err(e) => return Err(e.into()),
        }
    }

    let usage = view.automation_usage(&id, remote.created_at.as_deref());
    Ok(Outcome {
        id: Some(id),
        remote: Some(remote),
        usage,
        applied_digest: Some(digest),
        readiness: if observing {
            Readiness::Observed
        } else {
            Readiness::Synced
        },
        drifted_fields: drifted,
        last_run,
        last_handled_run_request: last_handled,
        last_handled_reconcile_at: reconcile_request.or(status.last_handled_reconcile_at),
    })
}

/// Looks the linked automation up: in the view, else by a GET (a new or just-adopted remote
/// may not be listed yet). `None` when the tenant says it does not exist.
async fn observe(
    ctx: &Context,
    obj: &QlikAutomation,
    view: &Arc<TenantView>,
    id: &str,
) -> Result<Option<AutomationSummary>, Error> {
    if let Some((listed, _)) = listed(ctx, obj, view, id).await? {
        return Ok(Some(listed));
    }
    match view.client().get_automation(id).await {
        Ok(a) => {
            view.upsert(&a);
            Ok(Some(AutomationSummary::from(&a)))
        }
        Err(e) if e.class() == ErrorClass::NotFound => {
            view.evict(id);
            Ok(None)
        }
        Err(e) => Err(e.into()),
    }
}
