//! The writes: applying planned actions and starting requested runs.

use kube::runtime::events::EventType;

use crate::{
    crd::{QlikAutomation, automation::LastRun},
    qlik::{
        ErrorClass, QlikClient, QlikError,
        model::{Run, RunRequest},
    },
};

use super::{
    super::{
        context::{Context, Error},
        plan::Action,
    },
    converge::on_linked,
};

/// Sends each planned write for remote `id`, in order, and says so in one Event.
pub(super) async fn apply(
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
            Action::ChangeSpace(space) => {
                ctx.metrics.wrote("change-space");
                client.change_space(id, space).await
            }
            Action::Move(user) => {
                ctx.metrics.wrote("move");
                match client.set_owner(id, user).await {
                    Err(QlikError::Forbidden(f)) => {
                        return Err(Error::Forbidden(format!(
                            "spec.ownerId: giving automation {id} to {user} needs a tenant admin's key or an M2M bot; with this identity the operator would lose sight of it, so it does not change the owner ({f})"
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
pub(super) async fn request_run(
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

/// The status form of a run.
pub(super) fn last_run_of(run: &Run) -> LastRun {
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
