//! Validation of request bodies. Every refusal is a 400 whose detail names the offending
//! field, so a client can show the user exactly what to fix.
//!
//! The generations differ here: workflows requires `name` on create, rounds every schedule
//! `interval` to whole minutes, and reads `spaceId` (create only) and `maxConcurrentRuns`;
//! v1 ignores those two fields as it ignores any field its contract does not have.

use std::str::FromStr;

use chrono::{DateTime, NaiveDateTime, TimeZone, Utc};
use chrono_tz::Tz;
use serde_json::Value;

use super::error::ApiError;
use super::model::AutomationState;
use super::workspace::{WorkspaceInfo, analyze};
use crate::qlik::endpoint::Api;
use crate::qlik::model::workflows_interval;

/// Longest accepted `name`, in characters.
pub(crate) const MAX_NAME_CHARS: usize = 255;
/// Longest accepted `description`, in characters.
pub(crate) const MAX_DESCRIPTION_CHARS: usize = 4096;
/// The schedule time format (in the schedule's timezone).
const SCHEDULE_TIME_FORMAT: &str = "%Y-%m-%d %H:%M:%S";

/// A validated schedule of a create or update request.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct ScheduleInput {
    /// `startAt` as sent.
    pub(crate) start_at: String,
    /// `startAt` in UTC.
    pub(crate) start_utc: DateTime<Utc>,
    /// `stopAt` as sent.
    pub(crate) stop_at: Option<String>,
    /// `stopAt` in UTC.
    pub(crate) stop_utc: Option<DateTime<Utc>>,
    /// Seconds between starts.
    pub(crate) interval: Option<u64>,
    /// RRULE text.
    pub(crate) recurrence: Option<String>,
    /// IANA zone name.
    pub(crate) timezone: String,
}

/// What a create or update body is checked against.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct SaveRules {
    /// The generation the request came in on.
    pub(crate) api: Api,
    /// A create (`POST`) rather than an update (`PUT`).
    pub(crate) create: bool,
    /// Emulate the reported live normalisation (one schedule, whole minutes) in any
    /// generation.
    pub(crate) normalize_schedules: bool,
    /// The tenant's `maxConcurrentRunsPerAutomation`: the most `maxConcurrentRuns` may be.
    pub(crate) max_concurrent_runs: i64,
}

impl SaveRules {
    /// The rules of a tenant with default settings and no normalisation.
    #[cfg(test)]
    pub(crate) fn new(api: Api, create: bool) -> SaveRules {
        SaveRules {
            api,
            create,
            normalize_schedules: false,
            max_concurrent_runs: super::store::DEFAULT_MAX_CONCURRENT_RUNS,
        }
    }
}

/// The fields a create or update request sets; `None` leaves a field as it is.
#[derive(Debug, Clone, Default)]
pub(crate) struct AutomationInput {
    /// New name.
    pub(crate) name: Option<String>,
    /// New description.
    pub(crate) description: Option<String>,
    /// New state.
    pub(crate) state: Option<AutomationState>,
    /// New schedules (replacing all).
    pub(crate) schedules: Option<Vec<ScheduleInput>>,
    /// New workspace and what it implies.
    pub(crate) workspace: Option<(Value, WorkspaceInfo)>,
    /// The shared space to create it in (workflows create only); `None` is the owner's
    /// personal space. Whether the space exists is the store's question.
    pub(crate) space_id: Option<String>,
    /// New `maxConcurrentRuns` (workflows only), already within the tenant's limit.
    pub(crate) max_concurrent_runs: Option<i64>,
}

/// Parses a request body as JSON. An empty body is `None`.
pub(crate) fn json_body(bytes: &[u8]) -> Result<Option<Value>, ApiError> {
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Ok(None);
    }
    serde_json::from_slice(bytes)
        .map(Some)
        .map_err(|e| ApiError::BadRequest(format!("the request body is not valid JSON: {e}")))
}

fn bad(detail: impl Into<String>) -> ApiError {
    ApiError::BadRequest(detail.into())
}

/// A `name` value: a non-blank string of at most 255 characters.
pub(crate) fn name(value: &Value, field: &str) -> Result<String, ApiError> {
    let s = value
        .as_str()
        .ok_or_else(|| bad(format!("{field} must be a string")))?;
    if s.trim().is_empty() {
        return Err(bad(format!("{field} must not be empty")));
    }
    if s.chars().count() > MAX_NAME_CHARS {
        return Err(bad(format!(
            "{field} must be at most {MAX_NAME_CHARS} characters"
        )));
    }
    Ok(s.to_owned())
}

/// Validates the body of a create (`POST .../automations`) or an update
/// (`PUT .../automations/{id}`) under `rules`.
pub(crate) fn automation_input(
    body: Option<&Value>,
    rules: SaveRules,
) -> Result<AutomationInput, ApiError> {
    let obj = body
        .and_then(Value::as_object)
        .ok_or_else(|| bad("the request body must be a JSON object"))?;
    let present = |key: &str| obj.get(key).filter(|v| !v.is_null());
    let workflows = rules.api == Api::Workflows;
    let mut input = AutomationInput::default();
    match present("name") {
        Some(v) => input.name = Some(name(v, "name")?),
        None if rules.create && workflows => return Err(bad("name is required")),
        None => {}
    }
    if let Some(v) = present("description") {
        let s = v
            .as_str()
            .ok_or_else(|| bad("description must be a string"))?;
        if s.chars().count() > MAX_DESCRIPTION_CHARS {
            return Err(bad(format!(
                "description must be at most {MAX_DESCRIPTION_CHARS} characters"
            )));
        }
        input.description = Some(s.to_owned());
    }
    if let Some(v) = present("state") {
        let state = v
            .as_str()
            .and_then(AutomationState::parse)
            .ok_or_else(|| bad(format!("state must be one of {}", AutomationState::NAMES)))?;
        input.state = Some(state);
    }
    if let Some(v) = obj.get("schedules") {
        input.schedules = Some(schedules(v, rules)?);
    }
    if let Some(v) = present("workspace") {
        let info = analyze(v).map_err(bad)?;
        input.workspace = Some((v.clone(), info));
    }
    if workflows {
        // The update body has no spaceId: a space changes only through change-space.
        if rules.create {
            input.space_id = present("spaceId").map(space_id).transpose()?.flatten();
        }
        input.max_concurrent_runs = present("maxConcurrentRuns")
            .map(|v| max_concurrent_runs(v, rules.max_concurrent_runs))
            .transpose()?;
    }
    Ok(input)
}

/// The `schedules` array, with the generation's interval rounding applied.
fn schedules(value: &Value, rules: SaveRules) -> Result<Vec<ScheduleInput>, ApiError> {
    let items = match value {
        Value::Null => Vec::new(),
        Value::Array(items) => items.clone(),
        _ => return Err(bad("schedules must be an array")),
    };
    let mut schedules = items
        .iter()
        .enumerate()
        .map(|(i, s)| schedule(s, &format!("schedules[{i}]")))
        .collect::<Result<Vec<_>, _>>()?;
    if rules.normalize_schedules {
        schedules.truncate(1);
    }
    if rules.normalize_schedules || rules.api == Api::Workflows {
        round_intervals(&mut schedules);
    }
    Ok(schedules)
}

/// A `spaceId` value: a string; empty means the owner's personal space (`None`).
pub(crate) fn space_id(value: &Value) -> Result<Option<String>, ApiError> {
    let s = value
        .as_str()
        .ok_or_else(|| bad("spaceId must be a string"))?;
    Ok(Some(s.trim().to_owned()).filter(|s| !s.is_empty()))
}

/// A `maxConcurrentRuns` value: an integer from 1 to the tenant's limit.
fn max_concurrent_runs(value: &Value, limit: i64) -> Result<i64, ApiError> {
    value
        .as_i64()
        .filter(|n| (1..=limit).contains(n))
        .ok_or_else(|| {
            bad(format!(
                "maxConcurrentRuns must be an integer from 1 to {limit} \
                 (the tenant's maxConcurrentRunsPerAutomation)"
            ))
        })
}

/// Intervals become whole minutes (at least one, 30 s rounding up): what the workflows
/// generation does, and what the live v1 service reportedly does too.
fn round_intervals(schedules: &mut [ScheduleInput]) {
    for s in schedules.iter_mut() {
        s.interval = s.interval.map(workflows_interval);
    }
}

fn schedule(value: &Value, field: &str) -> Result<ScheduleInput, ApiError> {
    let obj = value
        .as_object()
        .ok_or_else(|| bad(format!("{field} must be an object")))?;
    let present = |key: &str| obj.get(key).filter(|v| !v.is_null());
    let timezone = present("timezone")
        .ok_or_else(|| bad(format!("{field}.timezone is required")))?
        .as_str()
        .ok_or_else(|| bad(format!("{field}.timezone must be a string")))?;
    let tz = Tz::from_str(timezone).map_err(|_| {
        bad(format!(
            "{field}.timezone must be an IANA time zone name such as Europe/Stockholm"
        ))
    })?;
    let start_at = present("startAt").ok_or_else(|| bad(format!("{field}.startAt is required")))?;
    let (start_at, start_utc) = local_time(start_at, &format!("{field}.startAt"), tz)?;
    let (stop_at, stop_utc) = match present("stopAt") {
        Some(v) => {
            let (text, utc) = local_time(v, &format!("{field}.stopAt"), tz)?;
            if utc <= start_utc {
                return Err(bad(format!("{field}.stopAt must be after {field}.startAt")));
            }
            (Some(text), Some(utc))
        }
        None => (None, None),
    };
    let recurrence = match present("recurrence") {
        Some(Value::String(r)) if !r.trim().is_empty() => Some(r.clone()),
        Some(_) => {
            return Err(bad(format!(
                "{field}.recurrence must be a non-empty string"
            )));
        }
        None => None,
    };
    let interval = match present("interval") {
        Some(v) => {
            let n = v
                .as_i64()
                .or_else(|| v.as_u64().map(|_| i64::MAX))
                .ok_or_else(|| bad(format!("{field}.interval must be an integer")))?;
            if n <= 0 {
                return Err(bad(format!("{field}.interval must be greater than 0")));
            }
            Some(n.unsigned_abs())
        }
        None if recurrence.is_some() => None,
        None => return Err(bad(format!("{field}.interval is required"))),
    };
    Ok(ScheduleInput {
        start_at,
        start_utc,
        stop_at,
        stop_utc,
        interval,
        recurrence,
        timezone: timezone.to_owned(),
    })
}

/// Parses `YYYY-MM-DD HH:MM:SS` in `tz`, returning the text and the UTC instant.
fn local_time(value: &Value, field: &str, tz: Tz) -> Result<(String, DateTime<Utc>), ApiError> {
    let refuse = || {
        bad(format!(
            "{field} must be a date-time formatted YYYY-MM-DD HH:MM:SS"
        ))
    };
    let text = value.as_str().ok_or_else(refuse)?;
    // chrono accepts single-digit fields; the API's format is fixed-width.
    if text.len() != 19 {
        return Err(refuse());
    }
    let naive = NaiveDateTime::parse_from_str(text, SCHEDULE_TIME_FORMAT).map_err(|_| refuse())?;
    Ok((text.to_owned(), to_utc(naive, tz)))
}

fn to_utc(naive: NaiveDateTime, tz: Tz) -> DateTime<Utc> {
    if let Some(t) = tz.from_local_datetime(&naive).earliest() {
        return t.with_timezone(&Utc);
    }
    // A wall time skipped by a DST change: the clock reads an hour later at that instant.
    tz.from_local_datetime(&(naive + chrono::Duration::hours(1)))
        .earliest()
        .map_or_else(|| naive.and_utc(), |t| t.with_timezone(&Utc))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const V1_CREATE: SaveRules = SaveRules {
        api: Api::V1,
        create: true,
        normalize_schedules: false,
        max_concurrent_runs: 10,
    };
    const WF_CREATE: SaveRules = SaveRules {
        api: Api::Workflows,
        ..V1_CREATE
    };

    fn detail_under(body: Value, rules: SaveRules) -> String {
        match automation_input(Some(&body), rules) {
            Err(ApiError::BadRequest(d)) => d,
            other => panic!("expected 400, got {other:?}"),
        }
    }

    fn detail(body: Value) -> String {
        detail_under(body, WF_CREATE)
    }

    fn sched(extra: Value) -> Value {
        let mut s = json!({
            "startAt": "2022-01-01 00:00:00",
            "stopAt": "2022-12-01 00:00:00",
            "interval": 30,
            "timezone": "Europe/Stockholm"
        });
        for (k, v) in extra.as_object().unwrap() {
            s[k] = v.clone();
        }
        json!({"name": "n", "schedules": [s]})
    }

    #[test]
    fn accepts_the_reference_example() {
        let body = json!({"name":"string","state":"available","schedules":[{"stopAt":"2022-12-01 00:00:00","startAt":"2022-01-01 00:00:00","interval":30,"timezone":"Europe/Stockholm"}],"workspace":{},"description":"string"});
        let input = automation_input(Some(&body), V1_CREATE).unwrap();
        let s = &input.schedules.unwrap()[0];
        assert_eq!(s.interval, Some(30));
        // Stockholm is UTC+1 in winter.
        assert_eq!(s.start_utc.to_rfc3339(), "2021-12-31T23:00:00+00:00");
    }

    #[test]
    fn names_the_offending_field() {
        assert_eq!(detail(json!([])), "the request body must be a JSON object");
        assert_eq!(detail(json!({})), "name is required");
        assert_eq!(detail(json!({"name": 3})), "name must be a string");
        assert_eq!(detail(json!({"name": " "})), "name must not be empty");
        assert!(detail(json!({"name": "x".repeat(256)})).contains("at most 255"));
        assert!(
            detail(json!({"name": "n", "description": "x".repeat(4097)})).contains("description")
        );
        assert!(detail(json!({"name": "n", "state": "on"})).starts_with("state must be one of"));
        assert_eq!(
            detail(json!({"name": "n", "schedules": {}})),
            "schedules must be an array"
        );
        assert_eq!(
            detail(sched(json!({"interval": 0}))),
            "schedules[0].interval must be greater than 0"
        );
        assert_eq!(
            detail(sched(json!({"interval": 1.5}))),
            "schedules[0].interval must be an integer"
        );
        assert!(
            detail(sched(json!({"startAt": "2022-01-01T00:00:00"})))
                .starts_with("schedules[0].startAt")
        );
        assert!(
            detail(sched(json!({"stopAt": "2021-01-01 00:00:00"})))
                .starts_with("schedules[0].stopAt must be after")
        );
        assert!(
            detail(sched(json!({"timezone": "Mars/Olympus"}))).starts_with("schedules[0].timezone")
        );
        assert!(detail(sched(json!({"timezone": null}))).contains("timezone is required"));
        assert!(detail(json!({"name": "n", "workspace": []})).contains("workspace"));
    }

    #[test]
    fn only_a_workflows_create_needs_a_name() {
        for rules in [
            SaveRules::new(Api::Workflows, false),
            SaveRules::new(Api::V1, false),
            V1_CREATE,
        ] {
            let input = automation_input(Some(&json!({"description": "d"})), rules).unwrap();
            assert!(input.name.is_none());
            assert_eq!(input.description.as_deref(), Some("d"));
        }
        assert_eq!(detail_under(json!({}), WF_CREATE), "name is required");
    }

    #[test]
    fn normalisation_rounds_intervals_and_keeps_one_schedule() {
        let normalize = SaveRules {
            normalize_schedules: true,
            ..V1_CREATE
        };
        let mut body = sched(json!({"interval": 30}));
        let second = body["schedules"][0].clone();
        body["schedules"].as_array_mut().unwrap().push(second);
        let input = automation_input(Some(&body), normalize).unwrap();
        let schedules = input.schedules.unwrap();
        assert_eq!(schedules.len(), 1);
        assert_eq!(schedules[0].interval, Some(60));
        let input = automation_input(Some(&sched(json!({"interval": 150}))), normalize).unwrap();
        assert_eq!(input.schedules.unwrap()[0].interval, Some(180));
    }

    #[test]
    fn workflows_always_rounds_intervals_and_keeps_every_schedule() {
        let mut body = sched(json!({"interval": 29}));
        let mut second = body["schedules"][0].clone();
        second["interval"] = json!(90);
        body["schedules"].as_array_mut().unwrap().push(second);
        for create in [true, false] {
            let rules = SaveRules::new(Api::Workflows, create);
            let schedules = automation_input(Some(&body), rules)
                .unwrap()
                .schedules
                .unwrap();
            let intervals: Vec<_> = schedules.iter().map(|s| s.interval).collect();
            assert_eq!(intervals, vec![Some(60), Some(120)]);
        }
        let v1 = automation_input(Some(&body), SaveRules::new(Api::V1, false)).unwrap();
        assert_eq!(v1.schedules.unwrap()[0].interval, Some(29));
    }

    #[test]
    fn space_and_concurrency_are_read_only_where_the_generation_has_them() {
        let body = json!({"name": "n", "spaceId": "sp1", "maxConcurrentRuns": 3});
        let wf = automation_input(Some(&body), WF_CREATE).unwrap();
        assert_eq!(
            (wf.space_id.as_deref(), wf.max_concurrent_runs),
            (Some("sp1"), Some(3))
        );
        let update = automation_input(Some(&body), SaveRules::new(Api::Workflows, false)).unwrap();
        assert_eq!(
            (update.space_id, update.max_concurrent_runs),
            (None, Some(3))
        );
        let v1 = automation_input(Some(&body), V1_CREATE).unwrap();
        assert_eq!((v1.space_id, v1.max_concurrent_runs), (None, None));
        for personal in [json!(""), json!(null)] {
            let b = json!({"name": "n", "spaceId": personal});
            assert_eq!(
                automation_input(Some(&b), WF_CREATE).unwrap().space_id,
                None
            );
        }
        assert_eq!(
            detail(json!({"name": "n", "spaceId": 5})),
            "spaceId must be a string"
        );
        for bad in [json!(0), json!(11), json!(2.5), json!("3")] {
            let d = detail(json!({"name": "n", "maxConcurrentRuns": bad}));
            assert!(
                d.starts_with("maxConcurrentRuns must be an integer from 1 to 10"),
                "{d}"
            );
        }
        let lower = SaveRules {
            max_concurrent_runs: 2,
            ..WF_CREATE
        };
        let d = detail_under(json!({"name": "n", "maxConcurrentRuns": 3}), lower);
        assert!(d.contains("from 1 to 2"), "{d}");
    }

    #[test]
    fn empty_body_is_none_and_garbage_is_refused() {
        assert_eq!(json_body(b"  ").unwrap(), None);
        assert!(json_body(b"{nope").is_err());
        assert_eq!(json_body(b"\"u1\"").unwrap(), Some(json!("u1")));
    }
}
