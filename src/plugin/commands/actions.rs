//! `kubectl qlik retry NAME RUN_ID` and `kubectl qlik stop NAME RUN_ID`.

use std::collections::HashSet;

use crate::{
    plugin::{
        Cluster, Io, PluginError,
        cli::{RetryArgs, StopArgs},
        follow,
        target::Target,
    },
    qlik::{ListParams, Sort, model::Run},
};

/// Runs compared before and after a retry to spot the new one: one page, the largest.
const RETRY_WINDOW: u32 = 200;

/// Retries a run and names the new run when it can be told apart.
pub async fn retry(
    cluster: &Cluster,
    args: &RetryArgs,
    io: &mut Io<'_>,
) -> Result<(), PluginError> {
    let target = cluster.target(&args.name).await?;
    let id = &target.automation_id;
    let tenant = &target.tenant;
    // Retry answers 204 without the new run, so the new run is whatever appears in the list.
    let before: HashSet<String> = recent_runs(&target)
        .await?
        .into_iter()
        .map(|r| r.id)
        .collect();
    tenant
        .client
        .retry_run(id, &args.run_id)
        .await
        .map_err(|e| {
            PluginError::tenant(format!("retry run {}", args.run_id), &tenant.secret, e)
        })?;
    let new: Vec<Run> = recent_runs(&target)
        .await?
        .into_iter()
        .filter(|r| !before.contains(&r.id))
        .collect();
    match new.as_slice() {
        [run] => writeln!(
            io.out,
            "run {} retried: new run {} ({})",
            args.run_id,
            run.id,
            follow::status_of(run)
        )?,
        _ => writeln!(
            io.out,
            "run {} retried: the new run will be listed by `kubectl qlik runs {}`",
            args.run_id, args.name
        )?,
    }
    Ok(())
}

/// Stops a run; with `--wait`, until it has ended.
pub async fn stop(cluster: &Cluster, args: &StopArgs, io: &mut Io<'_>) -> Result<(), PluginError> {
    let target = cluster.target(&args.name).await?;
    let id = &target.automation_id;
    let tenant = &target.tenant;
    tenant
        .client
        .stop_run(id, &args.run_id)
        .await
        .map_err(|e| PluginError::tenant(format!("stop run {}", args.run_id), &tenant.secret, e))?;
    writeln!(io.out, "stop requested for run {}", args.run_id)?;
    if args.wait {
        let run = get_run(&target, &args.run_id).await?;
        follow::until_ended(tenant, id, run, args.timeout, io.out).await?;
    }
    Ok(())
}

async fn get_run(target: &Target, run_id: &str) -> Result<Run, PluginError> {
    target
        .tenant
        .client
        .get_run(&target.automation_id, run_id)
        .await
        .map_err(|e| PluginError::tenant(format!("get run {run_id}"), &target.tenant.secret, e))
}

async fn recent_runs(target: &Target) -> Result<Vec<Run>, PluginError> {
    let id = &target.automation_id;
    let params = ListParams::default()
        .sort(Sort::desc("startTime"))
        .limit(RETRY_WINDOW);
    target
        .tenant
        .client
        .list_runs_page(id, &params)
        .await
        .map(|page| page.data)
        .map_err(|e| {
            PluginError::tenant(
                format!("list the runs of automation {id}"),
                &target.tenant.secret,
                e,
            )
        })
}
