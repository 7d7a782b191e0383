//! The `QlikAutomation` reconciler: observe → diff → act → record.

use std::{sync::Arc, time::Duration};

use chrono::{DateTime, Utc};
use futures::TryStreamExt;
use k8s_openapi::api::core::v1::ConfigMap;
use kube::{
    Api, ResourceExt,
    api::{Patch, PatchParams},
    runtime::{controller::Action as Requeue, events::EventType},
};
use serde_json::{Value, json};

use crate::{
    crd::{
        ANNOTATION_AUTOMATION_ID, ANNOTATION_CREATE_PENDING, ANNOTATION_RECONCILE_REQUESTED_AT,
        ANNOTATION_RUN_REQUESTED_AT, ConditionStatus, FINALIZER, QlikAutomation,
        QlikAutomationStatus,
        automation::{DeletionPolicy, LastRun},
    },
    qlik::{
        ErrorClass, Filter, ListParams, QlikClient, QlikError,
        model::{Automation, AutomationState, AutomationSummary, Run, RunRequest, ScheduleRequest},
    },
};

use super::{
    conditions::{now_rfc3339, pair},
    context::{Context, Error},
    decide,
    plan::{Action, Desired, needs_detail, plan},
    status,
    view::TenantView,
};

/// The kind name used in metrics.
const KIND: &str = "QlikAutomation";
/// How often an object with a run in progress looks at it again.
const RUN_POLL: Duration = Duration::from_secs(2);
/// How much earlier than the recorded intent a found automation may claim to have been
/// created and still count as ours: clocks of the operator and of Qlik differ a little.
const CLOCK_SKEW: chrono::Duration = chrono::Duration::seconds(120);

/// Reconciles one `QlikAutomation`. Failures are recorded in status and as Events here, so
/// the returned error only covers failing to record them.
pub async fn reconcile(obj: Arc<QlikAutomation>, ctx: Arc<Context>) -> Result<Requeue, Error> {
    let started = std::time::Instant::now();
    let key = format!("{}/{}", obj.namespace().unwrap_or_default(), obj.name_any());
    let result = if obj.metadata.deletion_timestamp.is_some() {
        finalize(&obj, &ctx).await
    } else {
        sync(&obj, &ctx).await
    };
    let failures = ctx.account(KIND, &key, started, &result);
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

fn api(ctx: &Context, obj: &QlikAutomation) -> Api<QlikAutomation> {
    Api::namespaced(ctx.kube.clone(), &obj.namespace().unwrap_or_default())
}

/// The remote automation id the object is linked to: the annotation wins over status, since
/// a user sets it to adopt and the operator writes it right after a create.
fn linked_id(obj: &QlikAutomation) -> Option<String> {
    obj.annotations()
        .get(ANNOTATION_AUTOMATION_ID)
        .filter(|s| !s.trim().is_empty())
        .map(|s| s.trim().to_owned())
        .or_else(|| obj.status.as_ref()?.automation_id.clone())
}

/// Merges annotation changes (`None` removes) into the object, guarded by its
/// resourceVersion so two writers cannot both think they recorded an intent.
async fn patch_annotations(
    ctx: &Context,
    obj: &QlikAutomation,
    changes: &[(&str, Option<String>)],
) -> Result<QlikAutomation, Error> {
    let annotations: serde_json::Map<String, Value> = changes
        .iter()
        .map(|(k, v)| {
            (
                (*k).to_owned(),
                v.clone().map_or(Value::Null, Value::String),
            )
        })
        .collect();
    Ok(patch_metadata(ctx, obj, json!({ "annotations": annotations })).await?)
}

/// Merges `metadata` into the object, guarded by the resourceVersion it was read at, so two
/// writers cannot both think they recorded an intent or a finalizer.
async fn patch_metadata(
    ctx: &Context,
    obj: &QlikAutomation,
    mut metadata: Value,
) -> Result<QlikAutomation, kube::Error> {
    metadata["resourceVersion"] = json!(obj.resource_version());
    api(ctx, obj)
        .patch(
            &obj.name_any(),
            &PatchParams::default(),
            &Patch::Merge(&json!({ "metadata": metadata })),
        )
        .await
}

async fn ensure_finalizer(ctx: &Context, obj: &QlikAutomation) -> Result<QlikAutomation, Error> {
    if obj.finalizers().iter().any(|f| f == FINALIZER) {
        return Ok(obj.clone());
    }
    let mut finalizers = obj.finalizers().to_vec();
    finalizers.push(FINALIZER.to_owned());
    Ok(patch_metadata(ctx, obj, json!({ "finalizers": finalizers })).await?)
}

async fn remove_finalizer(ctx: &Context, obj: &QlikAutomation) -> Result<(), Error> {
    let finalizers: Vec<String> = obj
        .finalizers()
        .iter()
        .filter(|f| *f != FINALIZER)
        .cloned()
        .collect();
    match patch_metadata(ctx, obj, json!({ "finalizers": finalizers })).await {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(e)) if e.code == 404 => Ok(()),
        Err(e) => Err(e.into()),
    }
}

/// Another object that claims the same remote and came first, if any.
fn earlier_claimant(ctx: &Context, obj: &QlikAutomation, id: &str) -> Option<String> {
    let me = (obj.creation_timestamp(), obj.namespace(), obj.name_any());
    ctx.automations
        .state()
        .iter()
        .filter(|other| other.uid() != obj.uid() && other.metadata.deletion_timestamp.is_none())
        .filter(|other| linked_id(other).as_deref() == Some(id))
        .filter(|other| {
            (
                other.creation_timestamp(),
                other.namespace(),
                other.name_any(),
            ) < me
        })
        .map(|other| {
            format!(
                "{}/{}",
                other.namespace().unwrap_or_default(),
                other.name_any()
            )
        })
        .next()
}

/// Whether any object other than `obj` claims `id`.
fn claimed_by_other(ctx: &Context, obj: &QlikAutomation, id: &str) -> bool {
    ctx.automations
        .state()
        .iter()
        .any(|other| other.uid() != obj.uid() && linked_id(other).as_deref() == Some(id))
}

/// The spec with its references resolved.
async fn desired_state(ctx: &Context, obj: &QlikAutomation) -> Result<Desired, Error> {
    let spec = &obj.spec;
    let workspace = match (&spec.workspace, &spec.workspace_from) {
        (Some(ws), _) => Some(ws.clone()),
        (None, Some(from)) => {
            let r = &from.config_map_key_ref;
            let ns = obj.namespace().unwrap_or_default();
            let maps: Api<ConfigMap> = Api::namespaced(ctx.kube.clone(), &ns);
            let map = maps.get_opt(&r.name).await?.ok_or_else(|| {
                Error::InvalidSpec(format!(
                    "spec.workspaceFrom: ConfigMap {ns}/{} does not exist",
                    r.name
                ))
            })?;
            let text = map
                .data
                .as_ref()
                .and_then(|d| d.get(&r.key))
                .ok_or_else(|| {
                    Error::InvalidSpec(format!(
                        "spec.workspaceFrom: ConfigMap {ns}/{} has no key {:?}",
                        r.name, r.key
                    ))
                })?;
            let value: Value = serde_json::from_str(text).map_err(|e| {
                Error::InvalidSpec(format!(
                    "spec.workspaceFrom: ConfigMap {ns}/{} key {:?} is not JSON: {e}",
                    r.name, r.key
                ))
            })?;
            if !value.is_object() {
                return Err(Error::InvalidSpec(format!(
                    "spec.workspaceFrom: ConfigMap {ns}/{} key {:?} must hold a JSON object",
                    r.name, r.key
                )));
            }
            Some(value)
        }
        (None, None) => None,
    };
    Ok(Desired {
        name: obj.remote_name(),
        description: spec.description.clone(),
        enabled: spec.enabled,
        schedules: spec
            .schedules
            .iter()
            .map(|s| ScheduleRequest {
                start_at: Some(s.start_at.clone()),
                stop_at: s.stop_at.clone(),
                interval: Some(s.interval),
                timezone: Some(s.timezone.clone()),
                recurrence: None,
            })
            .collect(),
        workspace,
        owner_id: spec.owner_id.clone(),
    })
}

/// What one reconcile observed and decided, to be recorded in status.
struct Outcome {
    remote: Observed,
    applied_digest: Option<String>,
    ready: (ConditionStatus, &'static str, String),
    last_run: Option<LastRun>,
    last_handled_run_request: Option<String>,
    last_handled_reconcile_at: Option<String>,
    usage: (Option<crate::crd::Usage>, Option<crate::crd::UsageMissing>),
    requeue: Duration,
}

/// The remote fields status shows, from a full automation or a list item.
#[derive(Default)]
struct Observed {
    id: Option<String>,
    summary: Option<AutomationSummary>,
}

async fn sync(obj: &QlikAutomation, ctx: &Context) -> Result<Requeue, Error> {
    let obj = ensure_finalizer(ctx, obj).await?;
    let desired = desired_state(ctx, &obj).await?;
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
        let status = obj.status.clone().unwrap_or_default();
        let id = linked_id(&obj);
        let listed = match &id {
            Some(id) => listed(ctx, &obj, &view, id).await?.map(|(s, _)| s),
            None => None,
        };
        let usage = match &id {
            Some(id) => {
                view.automation_usage(id, listed.as_ref().and_then(|s| s.created_at.as_deref()))
            }
            None => (None, None),
        };
        let outcome = Outcome {
            remote: Observed {
                id,
                summary: listed,
            },
            applied_digest: status.applied_digest.clone(),
            ready: (
                ConditionStatus::False,
                "Suspended",
                "spec.suspend is true: no changes are made to the tenant".into(),
            ),
            last_run: status.last_run.clone(),
            last_handled_run_request: status.last_handled_run_request.clone(),
            last_handled_reconcile_at: status.last_handled_reconcile_at.clone(),
            usage,
            requeue: ctx.config.resync,
        };
        return record(ctx, &obj, outcome).await;
    }

    // The tenant outranks every cache: a 404 on the linked remote, from whichever call,
    // means it is gone. One the operator had seen is recreated (once per reconcile); one a
    // user named and the operator never saw is reported.
    let mut obj = obj;
    let mut link = linked_id(&obj);
    let mut recreating = false;
    loop {
        match converge(ctx, &obj, &client, &view, &desired, link.clone()).await {
            Ok(outcome) => return record(ctx, &obj, outcome).await,
            Err(Error::RemoteGone(id)) => {
                view.evict(&id);
                let seen = obj.status.as_ref().and_then(|s| s.automation_id.as_deref());
                match decide::on_remote_gone(&id, seen, link.as_deref(), recreating) {
                    decide::OnGone::Recreate => {}
                    decide::OnGone::NotFound(message) => return Err(Error::NotFound(message)),
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

/// Maps a failed call on the linked remote `id`: a 404 there means the remote is gone.
fn on_linked(id: &str) -> impl Fn(QlikError) -> Error + '_ {
    move |e| match e.class() {
        ErrorClass::NotFound => Error::RemoteGone(id.to_owned()),
        _ => Error::Qlik(e),
    }
}

/// The linked automation as the view has seen it within its max age; when the view cannot
/// refresh, the object is woken as soon as it can.
async fn listed(
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
async fn converge(
    ctx: &Context,
    obj: &QlikAutomation,
    client: &QlikClient,
    view: &Arc<TenantView>,
    desired: &Desired,
    link: Option<String>,
) -> Result<Outcome, Error> {
    let status = obj.status.clone().unwrap_or_default();
    let digest = desired.digest();
    let (id, mut remote, created) = match link {
        Some(id) => match observe(ctx, obj, view, &id).await? {
            Some(listed) => (id, listed, false),
            None => return Err(Error::RemoteGone(id)),
        },
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
    let forced =
        reconcile_request.is_some() && reconcile_request != status.last_handled_reconcile_at;
    let mut last_run = status.last_run.clone();
    if created
        || forced
        || needs_detail(
            &digest,
            status.applied_digest.as_deref(),
            status.updated_at.as_deref(),
            remote.updated_at.as_deref(),
        )
    {
        let mut detail = client.get_automation(&id).await.map_err(on_linked(&id))?;
        view.upsert(&detail);
        let actions = plan(desired, &detail);
        if !actions.is_empty() {
            apply(ctx, obj, client, &id, &actions).await?;
            detail = client.get_automation(&id).await.map_err(on_linked(&id))?;
            view.upsert(&detail);
        }
        if let Some(run) = &detail.last_run {
            last_run = Some(last_run_of(run));
        }
        remote = AutomationSummary::from(&detail);
    }

    // A requested run, exactly once per token.
    let mut last_handled = status.last_handled_run_request.clone();
    if let Some(token) = obj.annotations().get(ANNOTATION_RUN_REQUESTED_AT)
        && last_handled.as_deref() != Some(token.as_str())
    {
        let run = request_run(ctx, obj, client, &id, token).await?;
        last_run = Some(last_run_of(&run));
        last_handled = Some(token.clone());
    }

    // A run in progress is followed until it ends.
    let mut requeue = ctx.config.resync;
    if let Some(run) = &last_run
        && let Some(run_id) = &run.id
        && !run
            .status
            .as_deref()
            .is_some_and(|s| crate::qlik::model::RunStatus::from(s).is_terminal())
    {
        match client.get_run(&id, run_id).await {
            Ok(fresh) => last_run = Some(last_run_of(&fresh)),
            Err(e) if e.class() == ErrorClass::NotFound => {}
            Err(e) => return Err(e.into()),
        }
        if !last_run
            .as_ref()
            .and_then(|r| r.status.as_deref())
            .is_some_and(|s| crate::qlik::model::RunStatus::from(s).is_terminal())
        {
            requeue = RUN_POLL;
        }
    }
    if let Some(run) = &last_run
        && run.start_time.is_some()
        && run.start_time >= remote.last_run_at
    {
        // Our own view of the newest run is fresher than the list's.
        remote.last_run_at = run.start_time.clone();
        remote.last_run_status = run.status.as_deref().map(Into::into);
    }

    let usage = view.automation_usage(&id, remote.created_at.as_deref());
    Ok(Outcome {
        remote: Observed {
            id: Some(id),
            summary: Some(remote),
        },
        usage,
        applied_digest: Some(digest),
        ready: (
            ConditionStatus::True,
            "Synced",
            "the automation matches the spec".into(),
        ),
        last_run,
        last_handled_run_request: last_handled,
        last_handled_reconcile_at: reconcile_request.or(status.last_handled_reconcile_at),
        requeue,
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

/// Creates the remote (or finds the one an earlier, interrupted attempt made) and links it.
///
/// The intent is recorded on the object before the POST, and the id right after it. A
/// create whose answer was lost leaves the intent behind; the next attempt then looks for an
/// automation with the same name (as the spec says now, or as the intent recorded it),
/// created after the intent and claimed by no other object, and adopts it instead of
/// creating a second one.
async fn create_or_recover(
    ctx: &Context,
    obj: &QlikAutomation,
    client: &QlikClient,
    view: &Arc<TenantView>,
    desired: &Desired,
) -> Result<(String, Automation), Error> {
    if let Some(intent) = obj.annotations().get(ANNOTATION_CREATE_PENDING)
        && let Some(found) = find_own_create(ctx, obj, client, &desired.name, intent).await?
    {
        patch_annotations(
            ctx,
            obj,
            &[
                (ANNOTATION_AUTOMATION_ID, Some(found.id.clone())),
                (ANNOTATION_CREATE_PENDING, None),
            ],
        )
        .await?;
        let automation = client.get_automation(&found.id).await?;
        view.upsert(&automation);
        ctx.event(
            obj,
            EventType::Normal,
            "Recovered",
            "Create",
            format!(
                "found automation {} made by an interrupted create and linked it",
                found.id
            ),
        )
        .await;
        return Ok((found.id, automation));
    }

    // A key the tenant refuses is known from the view (cached for its max age): do not spend
    // a write finding out again.
    listed(ctx, obj, view, "").await?;
    let obj = patch_annotations(
        ctx,
        obj,
        &[(ANNOTATION_CREATE_PENDING, Some(intent_value(&desired.name)))],
    )
    .await?;
    let result = match &obj.spec.copy_from {
        Some(source) => {
            ctx.metrics.wrote("copy");
            match client.copy_automation(source, &desired.name).await {
                Ok(id) => client.get_automation(&id).await,
                Err(e) => Err(e),
            }
        }
        None => {
            ctx.metrics.wrote("create");
            let mut request = desired.request();
            if !desired.enabled {
                request.state = Some(AutomationState::Disabled);
            }
            client.create_automation(&request).await
        }
    };
    match result {
        Ok(automation) => {
            patch_annotations(
                ctx,
                &obj,
                &[
                    (ANNOTATION_AUTOMATION_ID, Some(automation.id.clone())),
                    (ANNOTATION_CREATE_PENDING, None),
                ],
            )
            .await?;
            view.upsert(&automation);
            let how = obj
                .spec
                .copy_from
                .as_ref()
                .map(|s| format!(" as a copy of {s}"))
                .unwrap_or_default();
            ctx.event(
                &obj,
                EventType::Normal,
                "Created",
                "Create",
                format!("created automation {}{how}", automation.id),
            )
            .await;
            Ok((automation.id.clone(), automation))
        }
        Err(e) if e.is_ambiguous() => {
            // Keep the intent: the next attempt looks before it creates again.
            Err(e.into())
        }
        Err(e) => {
            patch_annotations(ctx, &obj, &[(ANNOTATION_CREATE_PENDING, None)]).await?;
            Err(e.into())
        }
    }
}

/// The value of the create intent: when it was recorded and the name the create is sent
/// with (`<RFC 3339 time> <name>`), so that a create whose answer was lost is found again
/// even when the object is renamed before the operator looks.
fn intent_value(name: &str) -> String {
    format!("{} {name}", now_rfc3339())
}

/// The time and, when recorded, the name of a create intent (a bare time is accepted too).
fn parse_intent(intent: &str) -> (DateTime<Utc>, Option<&str>) {
    let (time, name) = match intent.split_once(' ') {
        Some((time, name)) => (time, Some(name)),
        None => (intent, None),
    };
    let at = DateTime::parse_from_rfc3339(time)
        .map(|t| t.with_timezone(&Utc))
        .unwrap_or(DateTime::<Utc>::MIN_UTC);
    (at, name)
}

/// The automation an interrupted create of this object made, if any: named as the spec now
/// says or as it said when the create was sent.
async fn find_own_create(
    ctx: &Context,
    obj: &QlikAutomation,
    client: &QlikClient,
    name: &str,
    intent: &str,
) -> Result<Option<AutomationSummary>, Error> {
    let (intent_at, intent_name) = parse_intent(intent);
    let filter = match intent_name.filter(|n| *n != name) {
        Some(sent_as) => Filter::eq("name", name).or(Filter::eq("name", sent_as)),
        None => Filter::eq("name", name),
    };
    let candidates: Vec<AutomationSummary> = client
        .list_automations(&ListParams::default().filter(filter).limit(200))
        .try_collect()
        .await?;
    let mut found: Vec<AutomationSummary> = candidates
        .into_iter()
        .filter(|a| {
            a.created_at
                .as_deref()
                .and_then(|t| DateTime::parse_from_rfc3339(t).ok())
                .is_some_and(|t| t.with_timezone(&Utc) + CLOCK_SKEW >= intent_at)
        })
        .filter(|a| !claimed_by_other(ctx, obj, &a.id))
        .collect();
    found.sort_by(|a, b| a.created_at.cmp(&b.created_at));
    Ok(found.into_iter().next())
}

async fn apply(
    ctx: &Context,
    obj: &QlikAutomation,
    client: &QlikClient,
    id: &str,
    actions: &[Action],
) -> Result<(), Error> {
    for action in actions {
        let result = match action {
            Action::Update(request) => {
                ctx.metrics.wrote("update");
                client.update_automation(id, request).await.map(drop)
            }
            Action::Enable => {
                ctx.metrics.wrote("enable");
                client.enable_automation(id).await
            }
            Action::Disable => {
                ctx.metrics.wrote("disable");
                client.disable_automation(id).await
            }
            Action::Move(user) => {
                ctx.metrics.wrote("move");
                match client.move_automation(id, user).await {
                    Err(QlikError::Forbidden(f)) => {
                        return Err(Error::Forbidden(format!(
                            "spec.ownerId: moving automation {id} to {user} needs a tenant admin's key; with this key the operator would lose sight of it, so it does not move it ({f})"
                        )));
                    }
                    // A 404 on a move may be about the user rather than the automation: only
                    // the automation's own 404 means it is gone.
                    Err(e) if e.class() == ErrorClass::NotFound => {
                        client.get_automation(id).await.map_err(on_linked(id))?;
                        return Err(e.into());
                    }
                    other => other,
                }
            }
        };
        result.map_err(on_linked(id))?;
    }
    let done: Vec<String> = actions.iter().map(Action::describe).collect();
    ctx.event(
        obj,
        EventType::Normal,
        "Updated",
        "Update",
        format!("automation {id}: {}", done.join(", ")),
    )
    .await;
    Ok(())
}

/// Starts the run a `run-requested-at` token asks for, exactly once per token: the run id is
/// derived from the automation and the token, so a repeat after a lost answer finds the run
/// instead of starting another.
async fn request_run(
    ctx: &Context,
    obj: &QlikAutomation,
    client: &QlikClient,
    id: &str,
    token: &str,
) -> Result<Run, Error> {
    let run_id = uuid::Uuid::new_v5(
        &uuid::Uuid::NAMESPACE_URL,
        format!("{id}/{token}").as_bytes(),
    )
    .to_string();
    match client.get_run(id, &run_id).await {
        Ok(run) => return Ok(run),
        Err(e) if e.class() == ErrorClass::NotFound => {}
        Err(e) => return Err(e.into()),
    }
    ctx.metrics.wrote("run");
    let request = RunRequest {
        id: Some(run_id.clone()),
        inputs: obj.spec.run_inputs.clone(),
        context: "api".into(),
    };
    let run = client
        .create_run(id, &request)
        .await
        .map_err(on_linked(id))?;
    ctx.event(
        obj,
        EventType::Normal,
        "RunStarted",
        "Run",
        format!("started run {} for run request {token:?}", run.id),
    )
    .await;
    Ok(run)
}

fn last_run_of(run: &Run) -> LastRun {
    LastRun {
        id: Some(run.id.clone()),
        status: run.status.as_ref().map(|s| s.to_string()),
        context: run.context.as_ref().map(|c| c.to_string()),
        title: run.title.clone(),
        start_time: run.start_time.clone(),
        stop_time: run.stop_time.clone(),
        is_test_run: run.is_test_run,
        error: run.error.clone().filter(|e| !e.is_null()),
        metrics: run
            .metrics
            .as_ref()
            .and_then(|m| serde_json::to_value(m).ok()),
    }
}

/// Writes status (only when it changed) and returns the requeue.
async fn record(ctx: &Context, obj: &QlikAutomation, outcome: Outcome) -> Result<Requeue, Error> {
    let old = obj.status.clone().unwrap_or_default();
    let generation = obj.metadata.generation;
    let (ready, reason, message) = outcome.ready;
    let synced = if reason == "Suspended" {
        ConditionStatus::True
    } else {
        ready
    };
    let summary = outcome.remote.summary.as_ref();
    let status = QlikAutomationStatus {
        automation_id: outcome.remote.id.clone(),
        state: summary
            .and_then(|s| s.state.as_ref())
            .map(|s| s.to_string()),
        run_mode: summary
            .and_then(|s| s.run_mode.as_ref())
            .map(|s| s.to_string()),
        owner_id: summary.and_then(|s| s.owner_id.clone()),
        created_at: summary.and_then(|s| s.created_at.clone()),
        updated_at: summary.and_then(|s| s.updated_at.clone()),
        last_run_at: summary.and_then(|s| s.last_run_at.clone()),
        last_run_status: summary
            .and_then(|s| s.last_run_status.as_ref())
            .map(|s| s.to_string()),
        last_run: outcome.last_run,
        // Figures fetched earlier stay until newer ones come; `usageMissing` says why.
        usage: outcome.usage.0.or(old.usage.clone()),
        usage_missing: outcome.usage.1,
        observed_generation: generation,
        conditions: pair(&old.conditions, ready, synced, reason, &message, generation),
        last_sync_time: old.last_sync_time.clone(),
        last_handled_run_request: outcome.last_handled_run_request,
        last_handled_reconcile_at: outcome.last_handled_reconcile_at,
        applied_digest: outcome.applied_digest,
    };
    status::write(&ctx.kube, obj, &old, status).await?;
    Ok(Requeue::requeue(outcome.requeue))
}

async fn record_failure(
    obj: &QlikAutomation,
    ctx: &Context,
    err: &Error,
    failures: u32,
) -> Result<(), Error> {
    let message = ctx.report_failure(obj, err, failures, "Reconcile").await;
    let old = obj.status.clone().unwrap_or_default();
    let generation = obj.metadata.generation;
    let status = QlikAutomationStatus {
        observed_generation: generation,
        conditions: pair(
            &old.conditions,
            ConditionStatus::False,
            ConditionStatus::False,
            err.reason(),
            &message,
            generation,
        ),
        // A reconcile request is handled when it was tried, failure included, so whoever
        // asked (`kubectl qlik reconcile`, `flux reconcile`) sees the outcome at once.
        last_handled_reconcile_at: obj
            .annotations()
            .get(ANNOTATION_RECONCILE_REQUESTED_AT)
            .cloned()
            .or(old.last_handled_reconcile_at.clone()),
        ..old.clone()
    };
    status::write(&ctx.kube, obj, &old, status).await
}

/// Deletion: remove the remote (policy `Delete`) or leave it (`Orphan`), then the finalizer.
async fn finalize(obj: &QlikAutomation, ctx: &Context) -> Result<Requeue, Error> {
    if !obj.finalizers().iter().any(|f| f == FINALIZER) {
        return Ok(Requeue::await_change());
    }
    let keep = obj.spec.deletion_policy == DeletionPolicy::Orphan || obj.spec.suspend;
    let id = linked_id(obj);
    let conflicted = id
        .as_deref()
        .is_some_and(|id| earlier_claimant(ctx, obj, id).is_some());
    if !keep && !conflicted {
        let client = ctx.client_of(obj).await?;
        let view = ctx.views.get(&client);
        let mut ids: Vec<String> = id.into_iter().collect();
        if let Some(intent) = obj.annotations().get(ANNOTATION_CREATE_PENDING)
            && let Some(found) =
                find_own_create(ctx, obj, &client, &obj.remote_name(), intent).await?
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
    } else if let Some(id) = &id {
        let why = if conflicted {
            "another object manages it"
        } else if obj.spec.suspend {
            "spec.suspend is true"
        } else {
            "deletionPolicy is Orphan"
        };
        ctx.event(
            obj,
            EventType::Normal,
            "Orphaned",
            "Delete",
            format!("left automation {id} in the tenant: {why}"),
        )
        .await;
    }
    remove_finalizer(ctx, obj).await?;
    Ok(Requeue::await_change())
}

#[cfg(test)]
mod intent_tests {
    use super::*;

    #[test]
    fn the_intent_records_time_and_name_and_old_values_still_parse() {
        let value = intent_value("Nightly load (v2)");
        let (at, name) = parse_intent(&value);
        assert_eq!(name, Some("Nightly load (v2)"));
        assert!((Utc::now() - at).num_seconds().abs() < 5, "{value}");
        let (at, name) = parse_intent("2026-01-02T03:04:05Z");
        assert_eq!(at.to_rfc3339(), "2026-01-02T03:04:05+00:00");
        assert_eq!(name, None);
        assert_eq!(parse_intent("garbage").0, DateTime::<Utc>::MIN_UTC);
    }
}
