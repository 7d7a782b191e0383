//! `kubectl qlik status NAME`: what the operator recorded, and what the tenant says now,
//! its rate budget included: as the tenant's headers told the plugin, and as the operator
//! counts it ([`operator_metrics`](crate::plugin::operator_metrics)).

use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::{
    crd::{QlikAutomation, QlikAutomationStatus},
    plugin::{
        Cluster, Io, PluginError,
        cli::StatusArgs,
        operator_metrics::{self, OperatorBudget, OperatorTier},
        render::{self, OutputFormat},
        target::automation_id,
    },
    qlik::{Caller, Tier, model::Automation, ratelimit::RateLimiter},
};

/// The report `-o json` / `-o yaml` print.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct StatusReport {
    /// The object's name.
    pub name: String,
    /// Its namespace.
    pub namespace: String,
    /// `metadata.generation`.
    pub generation: Option<i64>,
    /// `spec.suspend`.
    pub suspended: bool,
    /// The object's status, as the operator wrote it.
    pub status: Option<QlikAutomationStatus>,
    /// The remote automation as the tenant returns it now, without its execution token.
    pub remote: Option<Automation>,
    /// Why the remote could not be read, when it could not.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub remote_error: Option<String>,
    /// What the tenant said about the rate budget on the plugin's own calls; `None` when the
    /// plugin did not call the tenant.
    pub budget: Option<BudgetReport>,
    /// The same budget as the operator's metrics count it, when they could be read.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub operator_budget: Option<OperatorBudget>,
    /// Why the operator's metrics could not be read, when they could not.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub operator_budget_error: Option<String>,
}

/// Per tier, what the tenant's `Ratelimit-*` headers said on the plugin's own calls (the
/// last answer of each tier). A tier is missing when no answer in it carried the headers.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct BudgetReport {
    /// Tier 1 (reads).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tier1: Option<TierBudget>,
    /// Tier 2 (writes and actions).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tier2: Option<TierBudget>,
}

impl BudgetReport {
    /// What `limiter` recorded of the tenant's headers.
    pub fn of(limiter: &RateLimiter) -> BudgetReport {
        let tier = |tier| {
            limiter.reported(tier).map(|b| TierBudget {
                limit: b.limit,
                remaining: b.remaining,
                used: b.used(),
                reset_at: render::utc(b.reset_at),
                seen_at: render::utc(b.seen_at),
            })
        };
        BudgetReport {
            tier1: tier(Tier::Tier1),
            tier2: tier(Tier::Tier2),
        }
    }
}

/// One tier's budget as the tenant reported it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct TierBudget {
    /// `Ratelimit-Limit`: requests allowed per window.
    pub limit: u32,
    /// `Ratelimit-Remaining`: requests left in the window.
    pub remaining: u32,
    /// `limit - remaining`: requests of this user counted in the window, the plugin's
    /// included, whoever sent them (the operator shares the key).
    pub used: u32,
    /// `Ratelimit-Reset`: when the window frees up.
    pub reset_at: String,
    /// When the answer carrying the headers arrived.
    pub seen_at: String,
}

/// Prints the summary; exits non-zero (after printing) when the tenant could not be read.
pub async fn execute(
    cluster: &Cluster,
    args: &StatusArgs,
    io: &mut Io<'_>,
) -> Result<(), PluginError> {
    let obj = cluster.automation(&args.name).await?;
    let mut budget = None;
    let mut caller = None;
    let live = live_remote(cluster, &obj, &mut budget, &mut caller).await;
    let (remote, error) = match live {
        Ok(a) => (Some(a), None),
        Err(e) => (None, Some(e)),
    };
    let (operator_budget, operator_budget_error) = match &caller {
        Some(caller) => match operator_metrics::read(&cluster.client, caller).await {
            Ok(b) => (Some(b), None),
            Err(e) => (None, Some(e)),
        },
        None => (
            None,
            Some("the object's connection could not be resolved".into()),
        ),
    };
    let report = StatusReport {
        name: args.name.clone(),
        namespace: cluster.namespace.clone(),
        generation: obj.metadata.generation,
        suspended: obj.spec.suspend,
        status: obj.status.clone(),
        remote,
        remote_error: error.as_ref().map(ToString::to_string),
        budget,
        operator_budget,
        operator_budget_error,
    };
    match args.output {
        OutputFormat::Table => write!(io.out, "{}", summary(&report, Utc::now()))?,
        format => {
            let mut json = render::without_null_fields(&report)?;
            if let Some(remote) = json.get_mut("remote") {
                *remote = render::without_null_fields(remote)?;
            }
            write!(io.out, "{}", render::structured(&json, format)?)?
        }
    }
    // The object's part is worth printing even when the tenant part failed; the exit status
    // still tells scripts that the picture is incomplete.
    match error {
        Some(e) => Err(e),
        None => Ok(()),
    }
}

/// The remote as the tenant returns it now. Once the tenant has been called, `budget` holds
/// what it said about the rate budget, whether the read succeeded or not; once the
/// connection is resolved, `caller` holds the tenant and identity the operator's metrics
/// label it with.
async fn live_remote(
    cluster: &Cluster,
    obj: &QlikAutomation,
    budget: &mut Option<BudgetReport>,
    caller: &mut Option<Caller>,
) -> Result<Automation, PluginError> {
    let tenant = cluster.tenant(obj).await?;
    *caller = Some(tenant.client.caller().clone());
    let id = automation_id(obj, &cluster.namespace)?;
    let read = tenant.client.get_automation(&id).await;
    *budget = Some(BudgetReport::of(tenant.client.limiter()));
    let mut automation =
        read.map_err(|e| PluginError::tenant(format!("get automation {id}"), &tenant.secret, e))?;
    // A credential: whoever holds it can start the automation.
    automation.execution_token = None;
    Ok(automation)
}

/// The human summary.
pub fn summary(report: &StatusReport, now: DateTime<Utc>) -> String {
    let mut out = String::new();
    let mut field = |label: &str, value: String| {
        out.push_str(&format!("{:<16}{value}\n", format!("{label}:")));
    };
    let status = report.status.clone().unwrap_or_default();
    field("Name", report.name.clone());
    field("Namespace", report.namespace.clone());
    field(
        "Automation ID",
        render::or_dash(status.automation_id.as_deref()),
    );
    field("State", render::or_dash(status.state.as_deref()));
    field("Run mode", render::or_dash(status.run_mode.as_deref()));
    field("Owner", render::or_dash(status.owner_id.as_deref()));
    if report.suspended {
        field(
            "Suspended",
            "true (the operator makes no changes to the tenant)".into(),
        );
    }
    field("Last run", last_run(&status, now));
    field("Usage", usage(&status));
    field("Budget", budget(report.budget.as_ref()));
    field(
        "Operator use",
        operator_budget(
            report.operator_budget.as_ref(),
            report.operator_budget_error.as_deref(),
        ),
    );
    field(
        "Generation",
        format!(
            "{} (observed {})",
            report.generation.map_or("-".into(), |g| g.to_string()),
            status
                .observed_generation
                .map_or("-".into(), |g| g.to_string())
        ),
    );
    field(
        "Last sync",
        match status.last_sync_time.as_deref() {
            Some(t) => format!(
                "{} ({} ago)",
                render::time(Some(t)),
                render::age(Some(t), now)
            ),
            None => "-".into(),
        },
    );
    if let Some(v) = &status.last_handled_reconcile_at {
        field("Reconciled at", format!("request {v}"));
    }
    if let Some(v) = &status.last_handled_run_request {
        field("Run request", format!("{v} (handled)"));
    }
    if status.conditions.is_empty() {
        out.push_str("Conditions:     none yet\n");
    } else {
        out.push_str("Conditions:\n");
        let rows: Vec<Vec<String>> = status
            .conditions
            .iter()
            .map(|c| {
                vec![
                    c.type_.clone(),
                    format!("{:?}", c.status),
                    c.reason.clone(),
                    render::age(Some(&c.last_transition_time), now),
                    c.message.clone(),
                ]
            })
            .collect();
        let table = render::table(&["TYPE", "STATUS", "REASON", "SINCE", "MESSAGE"], &rows);
        for line in table.lines() {
            out.push_str("  ");
            out.push_str(line);
            out.push('\n');
        }
    }
    match (&report.remote, &report.remote_error) {
        (Some(remote), _) => {
            out.push_str("Tenant (live):\n");
            let mut live = |label: &str, value: String| {
                out.push_str(&format!("  {:<14}{value}\n", format!("{label}:")));
            };
            live("Name", render::or_dash(remote.name.as_deref()));
            live(
                "State",
                render::or_dash(remote.state.as_ref().map(|s| s.as_str())),
            );
            live(
                "Run mode",
                render::or_dash(remote.run_mode.as_ref().map(|m| m.as_str())),
            );
            live("Owner", render::or_dash(remote.owner_id.as_deref()));
            live("Updated", render::time(remote.updated_at.as_deref()));
            live("Last run", live_last_run(remote, now));
            live("Schedules", remote.schedules.len().to_string());
        }
        // The error itself goes to stderr as the command's error; saying it twice is noise.
        (None, Some(_)) => out.push_str("Tenant (live):  not read (see the error below)\n"),
        (None, None) => {}
    }
    out
}

fn live_last_run(remote: &Automation, now: DateTime<Utc>) -> String {
    let status = remote
        .last_run
        .as_ref()
        .and_then(|r| r.status.as_ref())
        .or(remote.last_run_status.as_ref());
    let Some(status) = status else {
        return "-".into();
    };
    let mut text = status.to_string();
    if let Some(id) = remote.last_run.as_ref().map(|r| &r.id) {
        text.push_str(&format!("  run {id}"));
    }
    let started = remote
        .last_run
        .as_ref()
        .and_then(|r| r.start_time.as_deref())
        .or(remote.last_run_at.as_deref());
    if started.is_some() {
        text.push_str(&format!(
            ", started {} ({} ago)",
            render::time(started),
            render::age(started, now)
        ));
    }
    text
}

fn last_run(status: &QlikAutomationStatus, now: DateTime<Utc>) -> String {
    match &status.last_run {
        Some(run) => {
            let mut text =
                render::or_dash(run.status.as_deref().or(status.last_run_status.as_deref()));
            if let Some(id) = &run.id {
                text.push_str(&format!("  run {id}"));
            }
            if let Some(context) = &run.context {
                text.push_str(&format!(", {context}"));
            }
            if run.start_time.is_some() {
                text.push_str(&format!(
                    ", started {} ({} ago)",
                    render::time(run.start_time.as_deref()),
                    render::age(run.start_time.as_deref(), now)
                ));
            }
            text
        }
        None => match (&status.last_run_status, &status.last_run_at) {
            (Some(s), at) => format!("{s}, started {}", render::time(at.as_deref())),
            (None, _) => "-".into(),
        },
    }
}

/// Usage as status reports it: the figures and when they were fetched, and why they are
/// missing or stale, in the operator's own words.
fn usage(status: &QlikAutomationStatus) -> String {
    let figures = status.usage.as_ref().map(|u| {
        let fetched = u
            .fetched_at
            .as_deref()
            .map(|t| format!(", fetched {t}"))
            .unwrap_or_default();
        format!(
            "{} runs, {} run time, {} in, {} out ({}{fetched})",
            u.runs,
            crate::plugin::duration::human(std::time::Duration::from_secs(
                u.duration.max(0).unsigned_abs()
            )),
            render::bytes(u.bandwidth_in),
            render::bytes(u.bandwidth_out),
            u.window
        )
    });
    let missing = status
        .usage_missing
        .as_ref()
        .map(|m| format!("{}: {}", m.reason.as_str(), m.message));
    match (figures, missing) {
        (Some(f), Some(m)) => format!("{f}; not refreshed ({m})"),
        (Some(f), None) => f,
        (None, Some(m)) => format!("- ({m})"),
        (None, None) => "- (not reported yet by the operator)".into(),
    }
}

/// The rate budget as the tenant reported it on the plugin's own calls, per tier, and why a
/// tier has no figures. The plugin's only call is a read, so Tier 2 has none unless a
/// tenant sends them on reads too.
fn budget(report: Option<&BudgetReport>) -> String {
    let Some(report) = report else {
        return "- (the plugin did not call the tenant)".into();
    };
    if report.tier1.is_none() && report.tier2.is_none() {
        return "- (the tenant sent no rate-limit headers)".into();
    }
    let tier = |tier: Tier, figures: Option<&TierBudget>, missing: &str| match figures {
        Some(b) => format!(
            "{tier} {}/{} used in this window (resets {}), as the tenant reported",
            b.used, b.limit, b.reset_at
        ),
        None => format!("{tier} not reported ({missing})"),
    };
    format!(
        "{}; {}",
        tier(
            Tier::Tier1,
            report.tier1.as_ref(),
            "no read answered with rate-limit headers"
        ),
        tier(
            Tier::Tier2,
            report.tier2.as_ref(),
            "the plugin made no write"
        ),
    )
}

/// The budget as the operator counts it, per tier: used of the limit in its window and the
/// 429s of the last hour, or why there are no figures.
fn operator_budget(report: Option<&OperatorBudget>, error: Option<&str>) -> String {
    let Some(report) = report else {
        return format!("- ({})", error.unwrap_or("not read"));
    };
    let Some(leader) = &report.leader else {
        return format!(
            "- (no replica leads among {}; the operator is not reconciling)",
            report.pods.join(", ")
        );
    };
    let tier = |tier: Tier, figures: Option<&OperatorTier>| match figures {
        Some(t) => format!(
            "{tier} {}/{} used in this window, {} 429s in the last hour",
            t.used, t.limit, t.rate_limited_last_hour
        ),
        None => format!("{tier} not used by the operator since it started"),
    };
    format!(
        "{}; {} (metrics of {leader})",
        tier(Tier::Tier1, report.tier1.as_ref()),
        tier(Tier::Tier2, report.tier2.as_ref()),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn report() -> StatusReport {
        let status: QlikAutomationStatus = serde_json::from_value(json!({
            "automationId": "a-1",
            "state": "available",
            "runMode": "scheduled",
            "ownerId": "u-1",
            "lastRunStatus": "finished",
            "lastRun": {"id": "r-9", "status": "finished", "context": "api",
                        "startTime": "2026-03-01T11:00:00Z"},
            "usage": {"window": "since 2026-02-01", "runs": 3, "duration": 65,
                      "bandwidthIn": 3072, "bandwidthOut": 768},
            "observedGeneration": 2,
            "conditions": [
                {"type": "Ready", "status": "True", "reason": "Synced",
                 "message": "the automation matches the spec",
                 "lastTransitionTime": "2026-03-01T11:30:00Z"},
                {"type": "Synced", "status": "True", "reason": "Synced",
                 "message": "reconciled", "lastTransitionTime": "2026-03-01T11:30:00Z"}
            ],
            "lastSyncTime": "2026-03-01T11:59:00Z"
        }))
        .unwrap();
        let remote: Automation = serde_json::from_value(json!({
            "id": "a-1", "name": "Nightly", "state": "available", "runMode": "scheduled",
            "ownerId": "u-1", "lastRunStatus": "finished",
            "lastRunAt": "2026-03-01T11:00:00Z", "schedules": [{"interval": 3600}]
        }))
        .unwrap();
        StatusReport {
            name: "nightly".into(),
            namespace: "team-a".into(),
            generation: Some(2),
            suspended: false,
            status: Some(status),
            remote: Some(remote),
            remote_error: None,
            budget: Some(BudgetReport {
                tier1: Some(tier_budget(1000, 963)),
                tier2: None,
            }),
            operator_budget: None,
            operator_budget_error: Some("no running operator Pod".into()),
        }
    }

    fn tier_budget(limit: u32, remaining: u32) -> TierBudget {
        TierBudget {
            limit,
            remaining,
            used: limit - remaining,
            reset_at: "2026-03-01T12:00:37Z".into(),
            seen_at: "2026-03-01T11:59:59Z".into(),
        }
    }

    #[test]
    fn the_summary_shows_status_conditions_and_the_live_remote() {
        let now = render::parse_time("2026-03-01T12:00:00Z").unwrap();
        let text = summary(&report(), now);
        for expected in [
            "Automation ID:  a-1",
            "State:          available",
            "Run mode:       scheduled",
            "Owner:          u-1",
            "Last run:       finished  run r-9, api, started 2026-03-01T11:00:00Z (1h00m ago)",
            "Usage:          3 runs, 1m05s run time, 3.0 KiB in, 768 B out (since 2026-02-01)\n\
             Budget:         tier1 37/1000 used in this window (resets 2026-03-01T12:00:37Z), \
             as the tenant reported; tier2 not reported (the plugin made no write)\n",
            "Generation:     2 (observed 2)",
            "  Ready    True     Synced   30m00s   the automation matches the spec",
            "  Name:         Nightly",
            "  Last run:     finished, started 2026-03-01T11:00:00Z (1h00m ago)",
            "  Schedules:    1",
        ] {
            assert!(text.contains(expected), "missing {expected:?} in\n{text}");
        }
    }

    #[test]
    fn usage_prints_the_reason_the_operator_gave() {
        let with = |usage: serde_json::Value| -> String {
            let status: QlikAutomationStatus = serde_json::from_value(usage).unwrap();
            super::usage(&status)
        };
        let text = with(json!({"usageMissing": {"reason": "NotYetFetched",
            "message": "usage has not been fetched from the tenant yet"}}));
        assert_eq!(
            text,
            "- (NotYetFetched: usage has not been fetched from the tenant yet)"
        );
        let text = with(json!({"usageMissing": {"reason": "Forbidden", "message": "refused"}}));
        assert_eq!(text, "- (Forbidden: refused)");
        let text = with(json!({
            "usage": {"window": "since 2026-02-01", "runs": 1, "fetchedAt": "2026-03-01T10:00:00Z"},
            "usageMissing": {"reason": "Unavailable", "message": "HTTP 503"}}));
        assert!(
            text.starts_with("1 runs")
                && text.contains("fetched 2026-03-01T10:00:00Z")
                && text.ends_with("not refreshed (Unavailable: HTTP 503)"),
            "{text}"
        );
        assert!(!with(json!({})).contains("admin"));
    }

    #[test]
    fn the_operator_budget_line_says_per_tier_what_the_leader_counts_or_why_not() {
        let tier = |used, limit, rate_limited_last_hour| OperatorTier {
            used,
            limit,
            rate_limited_last_hour,
        };
        let report = OperatorBudget {
            pods: vec!["ops/a".into(), "ops/b".into()],
            leader: Some("ops/b".into()),
            tier1: Some(tier(12, 5000, 0)),
            tier2: None,
        };
        assert_eq!(
            operator_budget(Some(&report), None),
            "tier1 12/5000 used in this window, 0 429s in the last hour; tier2 not used by the \
             operator since it started (metrics of ops/b)"
        );
        let idle = OperatorBudget {
            leader: None,
            ..report
        };
        assert_eq!(
            operator_budget(Some(&idle), None),
            "- (no replica leads among ops/a, ops/b; the operator is not reconciling)"
        );
        assert_eq!(
            operator_budget(None, Some("cannot list the operator's Services")),
            "- (cannot list the operator's Services)"
        );
        let text = summary(&report_with_operator(), chrono::Utc::now());
        assert!(
            text.contains(
                "Operator use:   tier1 1/10 used in this window, 3 429s in the last hour"
            ),
            "{text}"
        );
    }

    fn report_with_operator() -> StatusReport {
        StatusReport {
            operator_budget: Some(OperatorBudget {
                pods: vec!["ops/a".into()],
                leader: Some("ops/a".into()),
                tier1: Some(OperatorTier {
                    used: 1,
                    limit: 10,
                    rate_limited_last_hour: 3,
                }),
                tier2: None,
            }),
            operator_budget_error: None,
            ..report()
        }
    }

    #[test]
    fn the_budget_line_says_per_tier_what_the_tenant_reported_or_why_not() {
        let line = |b: Option<BudgetReport>| super::budget(b.as_ref());
        assert_eq!(
            line(Some(BudgetReport {
                tier1: Some(tier_budget(1000, 1000)),
                tier2: Some(tier_budget(100, 0)),
            })),
            "tier1 0/1000 used in this window (resets 2026-03-01T12:00:37Z), as the tenant \
             reported; tier2 100/100 used in this window (resets 2026-03-01T12:00:37Z), as the \
             tenant reported"
        );
        assert_eq!(
            line(Some(BudgetReport {
                tier1: None,
                tier2: Some(tier_budget(100, 99)),
            })),
            "tier1 not reported (no read answered with rate-limit headers); tier2 1/100 used in \
             this window (resets 2026-03-01T12:00:37Z), as the tenant reported"
        );
        assert_eq!(
            line(Some(BudgetReport::default())),
            "- (the tenant sent no rate-limit headers)"
        );
        assert_eq!(line(None), "- (the plugin did not call the tenant)");
    }

    #[test]
    fn the_budget_comes_from_the_limiter_and_is_printed_as_structured_figures() {
        use crate::qlik::{RateLimits, ratelimit::ReportedBudget};
        let limiter = RateLimiter::new(RateLimits::default());
        assert_eq!(BudgetReport::of(&limiter), BudgetReport::default());
        let seen = render::parse_time("2026-03-01T11:59:59.250Z").unwrap();
        let reported = ReportedBudget::parse(Some("1000"), Some("963"), Some("1772366437"), seen);
        limiter.record_reported(Tier::Tier1, reported.unwrap());
        let budget = BudgetReport::of(&limiter);
        assert_eq!(
            budget,
            BudgetReport {
                tier1: Some(tier_budget(1000, 963)),
                tier2: None,
            }
        );
        let mut r = report();
        r.budget = Some(budget);
        let json = render::without_null_fields(&r).unwrap();
        assert_eq!(
            json["budget"],
            json!({"tier1": {"limit": 1000, "remaining": 963, "used": 37,
                             "resetAt": "2026-03-01T12:00:37Z",
                             "seenAt": "2026-03-01T11:59:59Z"}})
        );
        // Without a call there is no budget object at all.
        r.budget = None;
        assert!(
            render::without_null_fields(&r)
                .unwrap()
                .get("budget")
                .is_none()
        );
    }

    #[test]
    fn a_failed_live_read_is_reported_in_place() {
        let mut r = report();
        r.remote = None;
        r.remote_error = Some("the tenant refused".into());
        let text = summary(&r, Utc::now());
        assert!(
            text.contains("Tenant (live):  not read (see the error below)"),
            "{text}"
        );
    }
}
