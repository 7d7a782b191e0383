//! `kubectl qlik runs NAME`: an automation's runs, newest first.

use chrono::Utc;
use futures::TryStreamExt;

use crate::{
    plugin::{
        Cluster, Io, PluginError,
        cli::RunsArgs,
        render::{self, OutputFormat},
        target::Target,
    },
    qlik::{Filter, ListParams, Sort, model::Run},
};

/// Lists the runs and prints them.
pub async fn execute(
    cluster: &Cluster,
    args: &RunsArgs,
    io: &mut Io<'_>,
) -> Result<(), PluginError> {
    let target = cluster.target(&args.name).await?;
    let (runs, truncated) =
        newest_runs(&target, args.status.as_deref(), args.limit, args.chunk_size).await?;
    match args.output {
        OutputFormat::Table if runs.is_empty() => {
            let which = args
                .status
                .as_deref()
                .map(|s| format!(" with status {s:?}"))
                .unwrap_or_default();
            writeln!(
                io.err,
                "No runs{which} for qlikautomation {}/{} (automation {}).",
                cluster.namespace, args.name, target.automation_id
            )?;
        }
        OutputFormat::Table => {
            write!(io.out, "{}", render::runs_table(&runs, Utc::now()))?;
        }
        format => write!(
            io.out,
            "{}",
            render::structured(&render::without_null_fields(&runs)?, format)?
        )?,
    }
    if truncated {
        writeln!(
            io.err,
            "Showing the newest {} runs; --limit 0 shows all.",
            runs.len()
        )?;
    }
    Ok(())
}

/// Fetches up to `limit` runs (0: all), newest first, following the pagination; also says
/// whether more exist. Whole pages are read, so knowing about "more" costs no extra call.
pub async fn newest_runs(
    target: &Target,
    status: Option<&str>,
    limit: usize,
    chunk_size: u32,
) -> Result<(Vec<Run>, bool), PluginError> {
    let page_size = match u32::try_from(limit) {
        Ok(l) if l > 0 => l.min(chunk_size),
        _ => chunk_size,
    };
    let mut params = ListParams::default()
        .sort(Sort::desc("startTime"))
        .limit(page_size);
    if let Some(status) = status {
        params = params.filter(Filter::eq("status", status));
    }
    let id = &target.automation_id;
    let tenant = &target.tenant;
    let fail = |e| {
        PluginError::tenant(
            format!("list the runs of automation {id}"),
            &tenant.secret,
            e,
        )
    };
    let mut pages = std::pin::pin!(tenant.client.run_pages(id, &params));
    let mut runs = Vec::new();
    while let Some(page) = pages.try_next().await.map_err(fail)? {
        let has_next = page.next_href().is_some_and(|h| !h.is_empty());
        for run in page.data {
            if limit > 0 && runs.len() == limit {
                return Ok((runs, true));
            }
            runs.push(run);
        }
        if limit > 0 && runs.len() == limit {
            return Ok((runs, has_next));
        }
    }
    Ok((runs, false))
}
