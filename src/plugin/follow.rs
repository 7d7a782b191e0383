//! Following a run until it ends, reporting each status change.

use std::{io::Write, time::Duration};

use chrono::Utc;

use super::{PluginError, render, target::Tenant};
use crate::qlik::model::{Run, RunStatus};

/// The first pause between two looks at a run; it grows to [`MAX_POLL`], so a long run costs
/// a few Tier 1 reads a minute rather than one a second.
const FIRST_POLL: Duration = Duration::from_millis(500);
/// The longest pause between two looks at a run.
const MAX_POLL: Duration = Duration::from_secs(5);

/// The status text of a run (`unknown` when the service sent none).
pub fn status_of(run: &Run) -> &str {
    run.status.as_ref().map_or("unknown", RunStatus::as_str)
}

/// True when the run's status is final.
pub fn has_ended(run: &Run) -> bool {
    run.status.as_ref().is_some_and(RunStatus::is_terminal)
}

/// One progress line: `run ID: STATUS`, with the duration once it ended.
pub fn progress_line(run: &Run) -> String {
    if has_ended(run) {
        format!(
            "run {}: {} (duration {})",
            run.id,
            status_of(run),
            render::run_duration(run, Utc::now())
        )
    } else {
        format!("run {}: {}", run.id, status_of(run))
    }
}

/// Polls `run` until it ends, writing a line to `progress` whenever its status changes (the
/// current status first). Returns the final run, or a timeout error once `timeout` passes.
pub async fn until_ended(
    tenant: &Tenant,
    automation_id: &str,
    run: Run,
    timeout: Duration,
    progress: &mut dyn Write,
) -> Result<Run, PluginError> {
    let deadline = tokio::time::Instant::now() + timeout;
    let mut current = run;
    writeln!(progress, "{}", progress_line(&current))?;
    let mut pause = FIRST_POLL;
    while !has_ended(&current) {
        let now = tokio::time::Instant::now();
        if now >= deadline {
            return Err(PluginError::Timeout(format!(
                "timed out after {} waiting for run {} (last status {}); it goes on in the tenant",
                super::duration::human(timeout),
                current.id,
                status_of(&current)
            )));
        }
        tokio::time::sleep(pause.min(deadline - now)).await;
        pause = (pause * 3 / 2).min(MAX_POLL);
        let fresh = tenant
            .client
            .get_run(automation_id, &current.id)
            .await
            .map_err(|e| {
                PluginError::tenant(format!("get run {}", current.id), &tenant.secret, e)
            })?;
        if fresh.status != current.status {
            writeln!(progress, "{}", progress_line(&fresh))?;
        }
        current = fresh;
    }
    Ok(current)
}

/// Turns a run that ended badly into the error that makes the process exit non-zero.
pub fn require_success(run: &Run) -> Result<(), PluginError> {
    if run.status.as_ref().is_some_and(RunStatus::is_success) {
        return Ok(());
    }
    let detail = match &run.error {
        Some(e) if !e.is_null() && e.as_object().is_none_or(|o| !o.is_empty()) => {
            format!(": {e}")
        }
        _ => String::new(),
    };
    Err(PluginError::RunUnsuccessful {
        run_id: run.id.clone(),
        status: status_of(run).to_owned(),
        detail,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn run(value: serde_json::Value) -> Run {
        serde_json::from_value(value).unwrap()
    }

    #[test]
    fn lines_show_status_and_final_duration() {
        assert_eq!(
            progress_line(&run(json!({"id": "r1", "status": "running"}))),
            "run r1: running"
        );
        assert_eq!(
            progress_line(&run(json!({"id": "r1", "status": "finished",
                "startTime": "2026-01-01T00:00:00Z", "stopTime": "2026-01-01T00:00:02Z"}))),
            "run r1: finished (duration 2s)"
        );
    }

    #[test]
    fn only_successful_runs_pass() {
        assert!(require_success(&run(json!({"id": "r", "status": "finished"}))).is_ok());
        assert!(
            require_success(&run(json!({"id": "r", "status": "finished with warnings"}))).is_ok()
        );
        let e = require_success(&run(json!({"id": "r", "status": "failed",
            "error": {"code": "X"}})))
        .unwrap_err();
        assert_eq!(
            e.to_string(),
            r#"run r ended with status "failed": {"code":"X"}"#
        );
        assert!(require_success(&run(json!({"id": "r", "status": "stopped"}))).is_err());
    }
}
