//! The emulator's automations and schedules, and how they render as the API's JSON.

use chrono::{DateTime, Utc};
use serde_json::{Value, json};

use super::runs::Run;
use super::wire::{RunMode, ts, ts_opt};
use super::workspace::WorkspaceInfo;

/// `state` of an automation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum AutomationState {
    /// Runs may be created.
    Available,
    /// Present but not runnable (the live service uses it for broken automations).
    Unavailable,
    /// Switched off with `actions/disable`.
    Disabled,
}

impl AutomationState {
    /// The allowed values, for error details.
    pub(crate) const NAMES: &'static str = "available, unavailable, disabled";

    /// The wire value.
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            AutomationState::Available => "available",
            AutomationState::Unavailable => "unavailable",
            AutomationState::Disabled => "disabled",
        }
    }

    /// Parses a wire value.
    pub(crate) fn parse(s: &str) -> Option<AutomationState> {
        match s {
            "available" => Some(AutomationState::Available),
            "unavailable" => Some(AutomationState::Unavailable),
            "disabled" => Some(AutomationState::Disabled),
            _ => None,
        }
    }
}

/// A stored schedule. Times keep the client's local `YYYY-MM-DD HH:MM:SS` text for echoing,
/// plus their UTC instants for computing.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Schedule {
    /// Server-assigned UUID.
    pub(crate) id: String,
    /// `startAt` as sent.
    pub(crate) start_at: String,
    /// `startAt` in UTC.
    pub(crate) start_utc: DateTime<Utc>,
    /// `stopAt` as sent; absent means no end.
    pub(crate) stop_at: Option<String>,
    /// `stopAt` in UTC.
    pub(crate) stop_utc: Option<DateTime<Utc>>,
    /// Seconds between starts.
    pub(crate) interval: Option<u64>,
    /// An RRULE, which the live service lets win over `interval`. Stored and echoed only.
    pub(crate) recurrence: Option<String>,
    /// IANA zone the times are written in.
    pub(crate) timezone: String,
    /// When this schedule last started a run.
    pub(crate) last_started_at: Option<DateTime<Utc>>,
    /// Scheduled starts up to this instant have been turned into runs already.
    pub(crate) materialized_until: DateTime<Utc>,
}

impl Schedule {
    /// Whether `now` lies within `[startAt, stopAt]`.
    pub(crate) fn is_active(&self, now: DateTime<Utc>) -> bool {
        self.start_utc <= now && self.stop_utc.is_none_or(|stop| now <= stop)
    }

    /// The `k`-th start (0-based), if it exists and is before the stop.
    pub(crate) fn occurrence(&self, k: i64) -> Option<DateTime<Utc>> {
        let interval = i64::try_from(self.interval?).ok()?;
        let offset = k.checked_mul(interval)?;
        let at = self
            .start_utc
            .checked_add_signed(chrono::Duration::try_seconds(offset)?)?;
        match self.stop_utc {
            Some(stop) if at > stop => None,
            _ => Some(at),
        }
    }

    /// The index of the first start strictly after `t`.
    pub(crate) fn first_index_after(&self, t: DateTime<Utc>) -> Option<i64> {
        let interval = i64::try_from(self.interval?).ok()?.max(1);
        if t < self.start_utc {
            return Some(0);
        }
        let elapsed = (t - self.start_utc).num_seconds();
        Some(elapsed / interval + 1)
    }

    /// The next start after `now`; null without an interval or after the stop.
    pub(crate) fn next_run_at(&self, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
        self.occurrence(self.first_index_after(now)?)
    }

    /// The ScheduleResponseObject (plus `nextRunAt`).
    pub(crate) fn to_json(&self, now: DateTime<Utc>) -> Value {
        let mut v = json!({
            "id": self.id,
            "startAt": self.start_at,
            "stopAt": self.stop_at,
            "interval": self.interval,
            "timezone": self.timezone,
            "lastStartedAt": ts_opt(self.last_started_at),
            "nextRunAt": ts_opt(self.next_run_at(now)),
        });
        if let (Some(r), Some(obj)) = (&self.recurrence, v.as_object_mut()) {
            obj.insert("recurrence".into(), Value::String(r.clone()));
        }
        v
    }
}

/// A stored automation. Run-derived fields (`lastRun*`) are computed when rendering.
#[derive(Clone)]
pub(crate) struct Automation {
    /// UUID v4.
    pub(crate) id: String,
    /// Display name; Qlik does not require uniqueness.
    pub(crate) name: String,
    /// Free text.
    pub(crate) description: String,
    /// available / unavailable / disabled.
    pub(crate) state: AutomationState,
    /// The owning user.
    pub(crate) owner_id: String,
    /// Computed on every save.
    pub(crate) run_mode: RunMode,
    /// Creation time.
    pub(crate) created_at: DateTime<Utc>,
    /// Last save or action.
    pub(crate) updated_at: DateTime<Utc>,
    /// Schedules as stored.
    pub(crate) schedules: Vec<Schedule>,
    /// The editor's document, as sent.
    pub(crate) workspace: Value,
    /// What the workspace implies: id lists, start block run mode, metrics template.
    pub(crate) info: WorkspaceInfo,
    /// The credential for starting triggered automations over HTTP.
    pub(crate) execution_token: String,
    /// The shared space it lives in; `None` is its owner's personal space (shown as null).
    pub(crate) space_id: Option<String>,
    /// How many of its runs may run at once; `None` when never set (shown as null).
    pub(crate) max_concurrent_runs: Option<i64>,
}

impl std::fmt::Debug for Automation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The execution token is a credential and must not reach a log through `{:?}`.
        f.debug_struct("Automation")
            .field("id", &self.id)
            .field("name", &self.name)
            .field("owner_id", &self.owner_id)
            .field("state", &self.state)
            .field("run_mode", &self.run_mode)
            .field("space_id", &self.space_id)
            .finish_non_exhaustive()
    }
}

impl Automation {
    /// Recomputes `runMode` as the live service does on save: an active schedule wins,
    /// otherwise the start block decides.
    pub(crate) fn recompute_run_mode(&mut self, now: DateTime<Utc>) {
        self.run_mode = if self.schedules.iter().any(|s| s.is_active(now)) {
            RunMode::Scheduled
        } else {
            self.info.start_run_mode
        };
    }

    /// The AutomationDetailResponseObject (plus `spaceId`, `maxConcurrentRuns`).
    pub(crate) fn detail_json(&self, last_run: Option<&Run>, now: DateTime<Utc>) -> Value {
        json!({
            "id": self.id,
            "name": self.name,
            "description": self.description,
            "state": self.state.as_str(),
            "ownerId": self.owner_id,
            "runMode": self.run_mode.as_str(),
            "createdAt": ts(self.created_at),
            "updatedAt": ts(self.updated_at),
            "lastRunAt": ts_opt(last_run.map(|r| r.created_at)),
            "lastRunStatus": last_run.map(|r| r.phase(now).status),
            "lastRun": last_run.map(|r| r.detail_json(now)),
            "schedules": self.schedules.iter().map(|s| s.to_json(now)).collect::<Vec<_>>(),
            "workspace": self.workspace,
            "snippetIds": self.info.snippet_ids,
            "endpointIds": self.info.endpoint_ids,
            "connectorIds": self.info.connector_ids,
            "executionToken": self.execution_token,
            "spaceId": self.space_id,
            "maxConcurrentRuns": self.max_concurrent_runs,
        })
    }

    /// The AutomationListObject (plus `duration`, `spaceId`, `maxConcurrentRuns`).
    pub(crate) fn list_json(&self, last_run: Option<&Run>, now: DateTime<Utc>) -> Value {
        json!({
            "id": self.id,
            "name": self.name,
            "description": self.description,
            "state": self.state.as_str(),
            "ownerId": self.owner_id,
            "runMode": self.run_mode.as_str(),
            "createdAt": ts(self.created_at),
            "updatedAt": ts(self.updated_at),
            "lastRunAt": ts_opt(last_run.map(|r| r.created_at)),
            "lastRunStatus": last_run.map(|r| r.phase(now).status),
            "duration": last_run.map(|r| r.duration_secs(now)),
            "spaceId": self.space_id,
            "maxConcurrentRuns": self.max_concurrent_runs,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    fn schedule(start: &str, stop: Option<&str>, interval: u64) -> Schedule {
        Schedule {
            id: "s".into(),
            start_at: String::new(),
            start_utc: at(start),
            stop_at: None,
            stop_utc: stop.map(at),
            interval: Some(interval),
            recurrence: None,
            timezone: "UTC".into(),
            last_started_at: None,
            materialized_until: at(start),
        }
    }

    #[test]
    fn next_run_is_the_first_start_after_now() {
        let s = schedule("2024-01-01T00:00:00Z", Some("2024-01-01T01:00:00Z"), 600);
        assert_eq!(
            s.next_run_at(at("2023-12-31T00:00:00Z")),
            Some(at("2024-01-01T00:00:00Z"))
        );
        assert_eq!(
            s.next_run_at(at("2024-01-01T00:00:00Z")),
            Some(at("2024-01-01T00:10:00Z"))
        );
        assert_eq!(
            s.next_run_at(at("2024-01-01T00:15:00Z")),
            Some(at("2024-01-01T00:20:00Z"))
        );
        assert_eq!(
            s.next_run_at(at("2024-01-01T00:55:00Z")),
            Some(at("2024-01-01T01:00:00Z"))
        );
        assert_eq!(s.next_run_at(at("2024-01-01T01:00:00Z")), None);
    }

    #[test]
    fn active_means_within_start_and_stop() {
        let s = schedule("2024-01-01T00:00:00Z", Some("2024-01-02T00:00:00Z"), 60);
        assert!(!s.is_active(at("2023-12-31T23:59:59Z")));
        assert!(s.is_active(at("2024-01-01T12:00:00Z")));
        assert!(!s.is_active(at("2024-01-02T00:00:01Z")));
        let open = schedule("2024-01-01T00:00:00Z", None, 60);
        assert!(open.is_active(at("2099-01-01T00:00:00Z")));
    }
}
