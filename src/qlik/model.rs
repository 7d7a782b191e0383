//! Typed models of every object in the Automations API reference.
//!
//! Parsing is lenient where the live service is known to differ from the reference: every
//! field is optional unless the reference marks it required, enums keep values they do not
//! know ([`RunStatus::Other`] and friends), and fields the reference omits but the service
//! sends (`spaceId`, `maxConcurrentRuns`, `duration`, ...) are modelled too.
//!
//! One file over 500 lines on purpose: one type per schema of the reference, in its order,
//! so a reader can check the two side by side.

use std::fmt;

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// Defines a string enum that keeps unknown values in an `Other` variant instead of failing.
macro_rules! open_enum {
    (
        $(#[$meta:meta])*
        pub enum $name:ident { $( $(#[$vmeta:meta])* $variant:ident => $wire:literal ),+ $(,)? }
    ) => {
        $(#[$meta])*
        #[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
        #[serde(from = "String", into = "String")]
        pub enum $name {
            $( $(#[$vmeta])* $variant, )+
            /// A value this client does not know; kept verbatim.
            Other(String),
        }

        impl $name {
            /// The value as sent on the wire.
            pub fn as_str(&self) -> &str {
                match self {
                    $( $name::$variant => $wire, )+
                    $name::Other(s) => s.as_str(),
                }
            }
        }

        impl From<String> for $name {
            fn from(s: String) -> Self {
                match s.as_str() {
                    $( $wire => $name::$variant, )+
                    _ => $name::Other(s),
                }
            }
        }

        impl From<&str> for $name {
            fn from(s: &str) -> Self {
                $name::from(s.to_owned())
            }
        }

        impl From<$name> for String {
            fn from(v: $name) -> String {
                match v {
                    $name::Other(s) => s,
                    known => known.as_str().to_owned(),
                }
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}

open_enum! {
    /// An automation's state.
    pub enum AutomationState {
        /// Enabled and runnable.
        Available => "available",
        /// Not runnable, e.g. because of a problem with the workspace.
        Unavailable => "unavailable",
        /// Disabled by a user (`actions/disable`).
        Disabled => "disabled",
    }
}

open_enum! {
    /// How an automation is started; computed by the service on every save.
    pub enum RunMode {
        /// Started by hand or through the API.
        Manual => "manual",
        /// Started by an active schedule.
        Scheduled => "scheduled",
        /// Started over HTTP with the execution token.
        Triggered => "triggered",
        /// Started by a webhook.
        Webhook => "webhook",
    }
}

open_enum! {
    /// A run's status (and an automation's `lastRunStatus`).
    pub enum RunStatus {
        /// Waiting to start (not in the reference; the live service sends it).
        Queued => "queued",
        /// Starting.
        Starting => "starting",
        /// Running.
        Running => "running",
        /// Ended successfully.
        Finished => "finished",
        /// Ended successfully with warnings.
        FinishedWithWarnings => "finished with warnings",
        /// Ended in failure.
        Failed => "failed",
        /// Asked to stop, not stopped yet.
        MustStop => "must stop",
        /// Stopped.
        Stopped => "stopped",
        /// Never started.
        NotStarted => "not started",
        /// Paused.
        Paused => "paused",
        /// Refused because a usage limit was exceeded (live service only).
        ExceededLimit => "exceeded limit",
    }
}

impl RunStatus {
    /// True when the run can no longer change status.
    pub fn is_terminal(&self) -> bool {
        matches!(
            self,
            RunStatus::Finished
                | RunStatus::FinishedWithWarnings
                | RunStatus::Failed
                | RunStatus::Stopped
                | RunStatus::NotStarted
                | RunStatus::ExceededLimit
        )
    }

    /// True when the run ended well.
    pub fn is_success(&self) -> bool {
        matches!(self, RunStatus::Finished | RunStatus::FinishedWithWarnings)
    }
}

open_enum! {
    /// What started a run.
    pub enum RunContext {
        /// A test run from the editor.
        TestRun => "test_run",
        /// The editor.
        Editor => "editor",
        /// The detail page.
        Detail => "detail",
        /// Synchronous API call.
        ApiSync => "api_sync",
        /// Asynchronous API call.
        ApiAsync => "api_async",
        /// A webhook.
        Webhook => "webhook",
        /// A lookup.
        Lookup => "lookup",
        /// `POST .../runs` with `context: api`.
        Api => "api",
    }
}

open_enum! {
    /// The name of a usage metric.
    pub enum UsageMetric {
        /// Number of runs.
        Runs => "runs",
        /// Runs started by a schedule.
        ScheduledRun => "scheduledRun",
        /// Runs started over HTTP.
        TriggeredRun => "triggeredRun",
        /// Runs started by a webhook.
        WebhookRuns => "webhookRuns",
        /// Seconds of run time.
        Duration => "duration",
        /// Bytes received.
        BandwidthIn => "bandwidthIn",
        /// Bytes sent.
        BandwidthOut => "bandwidthOut",
    }
}

/// The execution token of a triggered automation: a credential, so `Debug` never shows it.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct ExecutionToken(String);

impl ExecutionToken {
    /// The token itself, for the one place that must send it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for ExecutionToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ExecutionToken(<redacted>)")
    }
}

/// A schedule as sent in create and update requests (`ScheduleRequestObject`).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ScheduleRequest {
    /// `YYYY-MM-DD HH:MM:SS` in `timezone`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start_at: Option<String>,
    /// `YYYY-MM-DD HH:MM:SS` in `timezone`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stop_at: Option<String>,
    /// Seconds between runs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interval: Option<i64>,
    /// IANA time zone name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timezone: Option<String>,
    /// An RRULE; wins over `interval` on the live service.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recurrence: Option<String>,
}

/// A schedule as the service returns it (`ScheduleResponseObject`).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Schedule {
    /// Server-assigned id.
    #[serde(default)]
    pub id: Option<String>,
    /// `YYYY-MM-DD HH:MM:SS` in `timezone`.
    #[serde(default)]
    pub start_at: Option<String>,
    /// `YYYY-MM-DD HH:MM:SS` in `timezone`.
    #[serde(default)]
    pub stop_at: Option<String>,
    /// Seconds between runs.
    #[serde(default)]
    pub interval: Option<i64>,
    /// IANA time zone name.
    #[serde(default)]
    pub timezone: Option<String>,
    /// An RRULE, when set.
    #[serde(default)]
    pub recurrence: Option<String>,
    /// When the schedule last started a run.
    #[serde(default)]
    pub last_started_at: Option<String>,
    /// When the schedule will next start a run.
    #[serde(default)]
    pub next_run_at: Option<String>,
}

impl Schedule {
    /// The part of the schedule a client owns, as it would be sent.
    pub fn to_request(&self) -> ScheduleRequest {
        ScheduleRequest {
            start_at: self.start_at.clone(),
            stop_at: self.stop_at.clone(),
            interval: self.interval,
            timezone: self.timezone.clone(),
            recurrence: self.recurrence.clone(),
        }
    }
}

/// The body of create and update (`AutomationDetailRequestObject`).
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AutomationRequest {
    /// Display name (not unique in Qlik).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Description.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// `available`, `unavailable` or `disabled`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub state: Option<AutomationState>,
    /// Schedules.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub schedules: Option<Vec<ScheduleRequest>>,
    /// The editor's workspace document.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub workspace: Option<Value>,
    /// The space to create the automation in (workflows create only: an update has no
    /// `spaceId`, a space changes through `actions/change-space`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub space_id: Option<String>,
    /// How many runs of this automation may run at once (workflows only; at most the
    /// tenant's `maxConcurrentRunsPerAutomation`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_concurrent_runs: Option<i64>,
}

/// An automation in full (`AutomationDetailResponseObject`).
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Automation {
    /// Unique id.
    pub id: String,
    /// Display name.
    #[serde(default)]
    pub name: Option<String>,
    /// Description.
    #[serde(default)]
    pub description: Option<String>,
    /// State.
    #[serde(default)]
    pub state: Option<AutomationState>,
    /// The owning user's id.
    #[serde(default)]
    pub owner_id: Option<String>,
    /// Computed run mode.
    #[serde(default)]
    pub run_mode: Option<RunMode>,
    /// Creation time.
    #[serde(default)]
    pub created_at: Option<String>,
    /// Last change time.
    #[serde(default)]
    pub updated_at: Option<String>,
    /// Last run's start time.
    #[serde(default)]
    pub last_run_at: Option<String>,
    /// Last run's status.
    #[serde(default)]
    pub last_run_status: Option<RunStatus>,
    /// The last run, in full.
    #[serde(default)]
    pub last_run: Option<Run>,
    /// Schedules.
    #[serde(default)]
    pub schedules: Vec<Schedule>,
    /// The editor's workspace document.
    #[serde(default)]
    pub workspace: Option<Value>,
    /// Snippets used in the workspace (derived).
    #[serde(default)]
    pub snippet_ids: Vec<String>,
    /// Endpoints used in the workspace (derived).
    #[serde(default)]
    pub endpoint_ids: Vec<String>,
    /// Connectors used in the workspace (derived).
    #[serde(default)]
    pub connector_ids: Vec<String>,
    /// Token that authorises starting a triggered automation without an API key.
    #[serde(default)]
    pub execution_token: Option<ExecutionToken>,
    /// Space the automation lives in (live service only).
    #[serde(default)]
    pub space_id: Option<String>,
    /// Concurrency limit (live service only).
    #[serde(default)]
    pub max_concurrent_runs: Option<i64>,
}

/// An automation as listed (`AutomationListObject`).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AutomationSummary {
    /// Unique id.
    pub id: String,
    /// Display name.
    #[serde(default)]
    pub name: Option<String>,
    /// Description.
    #[serde(default)]
    pub description: Option<String>,
    /// State.
    #[serde(default)]
    pub state: Option<AutomationState>,
    /// The owning user's id.
    #[serde(default)]
    pub owner_id: Option<String>,
    /// Computed run mode.
    #[serde(default)]
    pub run_mode: Option<RunMode>,
    /// Creation time.
    #[serde(default)]
    pub created_at: Option<String>,
    /// Last change time.
    #[serde(default)]
    pub updated_at: Option<String>,
    /// Last run's start time.
    #[serde(default)]
    pub last_run_at: Option<String>,
    /// Last run's status.
    #[serde(default)]
    pub last_run_status: Option<RunStatus>,
    /// Space (live service only).
    #[serde(default)]
    pub space_id: Option<String>,
    /// Duration in seconds of the last run (live service only).
    #[serde(default)]
    pub duration: Option<i64>,
    /// Concurrency limit (live service only).
    #[serde(default)]
    pub max_concurrent_runs: Option<i64>,
}

impl From<&Automation> for AutomationSummary {
    /// The list-item form of a full automation (the detail has no last-run duration).
    fn from(a: &Automation) -> AutomationSummary {
        AutomationSummary {
            id: a.id.clone(),
            name: a.name.clone(),
            description: a.description.clone(),
            state: a.state.clone(),
            owner_id: a.owner_id.clone(),
            run_mode: a.run_mode.clone(),
            created_at: a.created_at.clone(),
            updated_at: a.updated_at.clone(),
            last_run_at: a.last_run_at.clone(),
            last_run_status: a.last_run_status.clone(),
            space_id: a.space_id.clone(),
            duration: None,
            max_concurrent_runs: a.max_concurrent_runs,
        }
    }
}

/// A run (`RunDetailResponseObject`; list items, `RunListObject`, leave some fields unset).
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Run {
    /// Unique id.
    pub id: String,
    /// Status.
    #[serde(default)]
    pub status: Option<RunStatus>,
    /// What started it.
    #[serde(default)]
    pub context: Option<RunContext>,
    /// Title (the automation's name at the time).
    #[serde(default)]
    pub title: Option<String>,
    /// Error details when it failed.
    #[serde(default)]
    pub error: Option<Value>,
    /// Inputs it was started with.
    #[serde(default)]
    pub inputs: Option<Value>,
    /// Inputs the automation expects.
    #[serde(default)]
    pub expected_inputs: Option<Value>,
    /// Resource metrics.
    #[serde(default)]
    pub metrics: Option<RunMetrics>,
    /// Start time.
    #[serde(default)]
    pub start_time: Option<String>,
    /// Stop time.
    #[serde(default)]
    pub stop_time: Option<String>,
    /// Creation time.
    #[serde(default)]
    pub created_at: Option<String>,
    /// Last change time.
    #[serde(default)]
    pub updated_at: Option<String>,
    /// When a scheduled run was due.
    #[serde(default)]
    pub scheduled_start_time: Option<String>,
    /// Whether it was a test run.
    #[serde(default)]
    pub is_test_run: Option<bool>,
    /// Whether it was archived.
    #[serde(default)]
    pub is_archived: Option<bool>,
    /// The automation's owner (live service only).
    #[serde(default)]
    pub owner_id: Option<String>,
    /// Who started it (live service only).
    #[serde(default)]
    pub executed_by_id: Option<String>,
    /// Space (live service only).
    #[serde(default)]
    pub space_id: Option<String>,
    /// Seconds it ran (live service only).
    #[serde(default)]
    pub duration: Option<i64>,
}

/// A run's resource metrics.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RunMetrics {
    /// Per block.
    #[serde(default)]
    pub blocks: Vec<BlockMetrics>,
    /// Network totals.
    #[serde(default)]
    pub network: Option<NetworkMetrics>,
    /// API calls made in all.
    #[serde(default)]
    pub total_api_calls: Option<i64>,
}

/// One block's metrics in a run.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BlockMetrics {
    /// Block type, e.g. `endpointBlock`.
    #[serde(default, rename = "type")]
    pub block_type: Option<String>,
    /// Bytes received.
    #[serde(default)]
    pub rx_bytes: Option<i64>,
    /// Bytes sent.
    #[serde(default)]
    pub tx_bytes: Option<i64>,
    /// API calls made.
    #[serde(default)]
    pub api_calls: Option<i64>,
    /// Snippet used.
    #[serde(default)]
    pub snippet_id: Option<String>,
    /// Endpoint used.
    #[serde(default)]
    pub endpoint_id: Option<String>,
    /// Connector used.
    #[serde(default)]
    pub connector_id: Option<String>,
}

/// Network totals of a run.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NetworkMetrics {
    /// Bytes received.
    #[serde(default)]
    pub rx_bytes: Option<i64>,
    /// Bytes sent.
    #[serde(default)]
    pub tx_bytes: Option<i64>,
}

/// The body of `POST .../runs` (`RunDetailRequestObject`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RunRequest {
    /// Optional client-chosen run id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// Inputs for the run.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub inputs: Option<Value>,
    /// Always `api` for runs created through the API.
    pub context: String,
}

impl RunRequest {
    /// A run started through the API with the given inputs.
    pub fn api(inputs: Option<Value>) -> RunRequest {
        RunRequest {
            id: None,
            inputs,
            context: "api".to_owned(),
        }
    }
}

/// A schedule interval as the workflows generation stores it: rounded to the nearest whole
/// minute (30 s rounds up), at least one minute. Shared by the emulator, which applies it, and
/// the reconciler, which must expect it rather than see drift forever.
pub const fn workflows_interval(seconds: u64) -> u64 {
    let minutes = seconds.saturating_add(30) / 60;
    if minutes == 0 { 60 } else { minutes * 60 }
}

/// Tenant-wide automation settings: v1's `SettingsObject` (`automationsEnabled`) or the
/// workflows settings (`maxConcurrentRunsPerAutomation`). Each generation reads and writes
/// only its own field; the other stays unset.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Settings {
    /// Whether automations may run in the tenant (v1 only; deprecated by Qlik).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub automations_enabled: Option<bool>,
    /// The most runs of one automation that may run at once (workflows only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_concurrent_runs_per_automation: Option<i64>,
}

/// One usage metric value (`UsageObject`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct UsageEntry {
    /// The day, `YYYY-MM-DD`.
    pub date: String,
    /// Metric name.
    pub name: UsageMetric,
    /// Value.
    pub value: i64,
    /// The automation, when broken down by automation.
    #[serde(default)]
    pub automation: Option<UsageAutomation>,
}

/// The automation a usage value belongs to (`AutomationUsageObject`).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct UsageAutomation {
    /// Automation id.
    #[serde(default)]
    pub guid: Option<String>,
    /// Automation name.
    #[serde(default)]
    pub name: Option<String>,
    /// Owner's user id.
    #[serde(default)]
    pub owner_id: Option<String>,
}

/// `UsageList`.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct UsageList {
    /// The metric values.
    #[serde(default)]
    pub data: Vec<UsageEntry>,
}

/// One page of a list (`AutomationList`, `RunList`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Page<T> {
    /// The items.
    #[serde(default = "Vec::new")]
    pub data: Vec<T>,
    /// Cursor links.
    #[serde(default)]
    pub links: Option<Links>,
}

impl<T> Page<T> {
    /// The absolute URL of the next page, when there is one.
    pub fn next_href(&self) -> Option<&str> {
        self.links.as_ref()?.next.as_ref()?.href.as_deref()
    }

    /// The absolute URL of the previous page, when there is one.
    pub fn prev_href(&self) -> Option<&str> {
        self.links.as_ref()?.prev.as_ref()?.href.as_deref()
    }
}

/// `Links`.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Links {
    /// Next page, or null.
    #[serde(default)]
    pub next: Option<PaginationLink>,
    /// Previous page, or null.
    #[serde(default)]
    pub prev: Option<PaginationLink>,
}

/// `PaginationLink`.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct PaginationLink {
    /// Absolute URL of the page.
    #[serde(default)]
    pub href: Option<String>,
}

/// The body of `actions/copy`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CopyRequest {
    /// Name of the new automation.
    pub name: String,
}

/// The answer of `actions/copy`: the new automation's id.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CreatedId {
    /// The id.
    pub id: String,
}

/// The body of `actions/move`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MoveRequest {
    /// The user who becomes the owner.
    pub user_id: String,
}

/// The body of `actions/change-space`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ChangeSpaceRequest {
    /// The target space; empty moves the automation to its owner's personal space.
    pub space_id: String,
}

/// The answer of a run's `actions/export` and of its workflows `debug` log.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExportedRun {
    /// Pre-signed URL of the run's raw log, valid for a few minutes.
    pub url: String,
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn enums_keep_unknown_values() {
        let s: RunStatus = serde_json::from_value(json!("exceeded limit")).unwrap();
        assert_eq!(s, RunStatus::ExceededLimit);
        let s: RunStatus = serde_json::from_value(json!("teleported")).unwrap();
        assert_eq!(s, RunStatus::Other("teleported".into()));
        assert_eq!(serde_json::to_value(&s).unwrap(), json!("teleported"));
        assert_eq!(
            serde_json::to_value(RunStatus::FinishedWithWarnings).unwrap(),
            json!("finished with warnings")
        );
    }

    #[test]
    fn parses_the_reference_detail_example_with_extra_fields() {
        let body = json!({
            "id": "e0e720d0-4947-11ec-a1d2-9559fa35801d",
            "name": "string", "state": "available", "ownerId": "u1", "runMode": "triggered",
            "lastRun": {"id": "r1", "error": {}, "title": "t", "inputs": {}, "status": "queued",
                "context": "test_run", "metrics": {"blocks": [{"type": "endpointBlock", "rxBytes": 1,
                "txBytes": 2, "apiCalls": 40, "snippetId": "s", "endpointId": "e", "connectorId": "c"}],
                "network": {"rxBytes": 0, "txBytes": 0}, "totalApiCalls": 0}},
            "schedules": [{"id": "s1", "stopAt": "2022-12-01 00:00:00", "startAt": "2021-12-01 00:00:00",
                "interval": 30, "timezone": "Europe/Stockholm", "lastStartedAt": null}],
            "workspace": {}, "snippetIds": ["a"], "endpointIds": [], "connectorIds": [],
            "lastRunStatus": "paused", "executionToken": "secret-token-value",
            "spaceId": "sp", "maxConcurrentRuns": 3, "somethingNew": true
        });
        let a: Automation = serde_json::from_value(body).unwrap();
        assert_eq!(a.run_mode, Some(RunMode::Triggered));
        assert_eq!(a.last_run.as_ref().unwrap().status, Some(RunStatus::Queued));
        assert_eq!(a.schedules[0].to_request().interval, Some(30));
        assert_eq!(a.max_concurrent_runs, Some(3));
        assert!(!format!("{a:?}").contains("secret-token-value"));
    }

    #[test]
    fn requests_omit_unset_fields() {
        let r = AutomationRequest {
            name: Some("n".into()),
            ..Default::default()
        };
        assert_eq!(serde_json::to_value(&r).unwrap(), json!({"name": "n"}));
        assert_eq!(
            serde_json::to_value(RunRequest::api(None)).unwrap(),
            json!({"context": "api"})
        );
    }

    #[test]
    fn page_links_may_be_null_or_absent() {
        let p: Page<AutomationSummary> = serde_json::from_value(
            json!({"data": [{"id": "a"}], "links": {"next": null, "prev": {"href": "http://x/p"}}}),
        )
        .unwrap();
        assert_eq!(p.next_href(), None);
        assert_eq!(p.prev_href(), Some("http://x/p"));
        let p: Page<Run> = serde_json::from_value(json!({"data": []})).unwrap();
        assert_eq!(p.next_href(), None);
    }
}
