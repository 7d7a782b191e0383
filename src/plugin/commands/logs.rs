//! `kubectl qlik logs NAME [RUN_ID] [--debug]`: export a run's log (or, with `--debug`, ask
//! for its debug log), download it and print it.

use crate::{
    plugin::{
        Cluster, Io, PluginError,
        cli::LogsArgs,
        follow,
        render::{self, OutputFormat},
        target::Target,
    },
    qlik::{ListParams, Sort, model::Run},
};

/// How many of the newest runs are looked at to pick one (see [`default_run`]).
const NEWEST_WINDOW: u32 = 10;

/// Prints the log of the given run, or of the newest one.
pub async fn execute(
    cluster: &Cluster,
    args: &LogsArgs,
    io: &mut Io<'_>,
) -> Result<(), PluginError> {
    let target = cluster.target(&args.name).await?;
    let id = &target.automation_id;
    let tenant = &target.tenant;
    let run_id = match &args.run_id {
        Some(run_id) => run_id.clone(),
        None => {
            let (run, newer) = default_run(&target).await?;
            // Like kubectl's "Defaulted container": say which run was picked, off stdout.
            match newer {
                Some(newer) => writeln!(
                    io.err,
                    "Showing the newest completed run: {} ({}); run {} is still {}",
                    run.id,
                    follow::status_of(&run),
                    newer.id,
                    follow::status_of(&newer)
                )?,
                None => writeln!(
                    io.err,
                    "Showing the newest run: {} ({})",
                    run.id,
                    follow::status_of(&run)
                )?,
            }
            run.id
        }
    };
    let (url, which) = if args.debug {
        let url = tenant
            .client
            .get_run_debug(id, &run_id)
            .await
            .map_err(|e| {
                PluginError::tenant(
                    format!("get the debug log of run {run_id}"),
                    &tenant.secret,
                    e,
                )
            })?;
        (url, "debug")
    } else {
        let url =
            tenant.client.export_run(id, &run_id).await.map_err(|e| {
                PluginError::tenant(format!("export run {run_id}"), &tenant.secret, e)
            })?;
        (url, "exported")
    };
    let log = tenant.client.download_export(&url).await.map_err(|e| {
        PluginError::tenant(
            format!("serve the {which} log of run {run_id}"),
            &tenant.secret,
            e,
        )
    })?;
    match args.output {
        OutputFormat::Table => write!(io.out, "{}", render::log_lines(&log))?,
        format => write!(io.out, "{}", render::structured(&log, format)?)?,
    }
    Ok(())
}

/// The run whose log `logs` shows by default: the newest run that has ended (only those
/// have a complete log to export), with the newer run that has not ended when there is one.
/// When no recent run has ended, the newest run, and the tenant decides.
///
/// Runs are sorted by `-startTime`, but a run that has not started has no start time and
/// where the service sorts those is not documented; so a few runs are read and compared by
/// start (else creation) time here.
pub async fn default_run(target: &Target) -> Result<(Run, Option<Run>), PluginError> {
    let id = &target.automation_id;
    let params = ListParams::default()
        .sort(Sort::desc("startTime"))
        .limit(NEWEST_WINDOW);
    let page = target
        .tenant
        .client
        .list_runs_page(id, &params)
        .await
        .map_err(|e| {
            PluginError::tenant(
                format!("list the runs of automation {id}"),
                &target.tenant.secret,
                e,
            )
        })?;
    pick(page.data).ok_or_else(|| {
        PluginError::Usage(format!(
            "automation {id} has no runs yet: start one with `kubectl qlik run {}`",
            target.object.metadata.name.as_deref().unwrap_or_default()
        ))
    })
}

/// See [`default_run`].
fn pick(runs: Vec<Run>) -> Option<(Run, Option<Run>)> {
    let newest = latest(runs.iter().cloned())?;
    match latest(runs.into_iter().filter(follow::has_ended)) {
        Some(ended) if ended.id == newest.id => Some((ended, None)),
        Some(ended) => Some((ended, Some(newest))),
        None => Some((newest, None)),
    }
}

/// The run with the latest start (or, before it starts, creation) time.
fn latest(runs: impl Iterator<Item = Run>) -> Option<Run> {
    runs.max_by_key(|r| {
        r.start_time
            .as_deref()
            .or(r.created_at.as_deref())
            .and_then(render::parse_time)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn the_default_is_the_newest_completed_run() {
        let runs: Vec<Run> = serde_json::from_value(json!([
            {"id": "old", "status": "finished", "startTime": "2026-01-01T10:00:00Z"},
            {"id": "newer", "status": "failed", "startTime": "2026-01-01T11:00:00.5Z"},
            {"id": "queued", "status": "queued", "createdAt": "2026-01-01T12:00:00Z"}
        ]))
        .unwrap();
        let (run, newer) = pick(runs.clone()).unwrap();
        assert_eq!(
            (run.id.as_str(), newer.unwrap().id.as_str()),
            ("newer", "queued")
        );
        let (run, newer) = pick(runs[..2].to_vec()).unwrap();
        assert_eq!(run.id, "newer");
        assert!(newer.is_none());
        let (run, _) = pick(runs[2..].to_vec()).unwrap();
        assert_eq!(
            run.id, "queued",
            "nothing ended: the newest, and the tenant decides"
        );
        assert!(pick(Vec::new()).is_none());
    }
}
