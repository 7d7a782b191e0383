//! Saving an automation: how a validated create or update request changes the stored
//! automation, and how schedules keep their identity across saves and copies.

use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::model::{Automation, Schedule};
use super::validate::{AutomationInput, ScheduleInput};

/// Applies a validated create/update request to an automation, as a save: fields given
/// replace the stored ones, `updatedAt` moves, derived fields are recomputed.
pub(crate) fn apply(a: &mut Automation, input: AutomationInput, now: DateTime<Utc>) {
    if let Some(name) = input.name {
        a.name = name;
    }
    if let Some(d) = input.description {
        a.description = d;
    }
    if let Some(state) = input.state {
        a.state = state;
    }
    if let Some(schedules) = input.schedules {
        a.schedules = merge_schedules(&a.schedules, schedules, now);
    }
    if let Some((workspace, info)) = input.workspace {
        a.workspace = workspace;
        a.info = info;
    }
    // Only a workflows create carries a space (the store has checked it exists); an update
    // never moves an automation between spaces.
    if input.space_id.is_some() {
        a.space_id = input.space_id;
    }
    if input.max_concurrent_runs.is_some() {
        a.max_concurrent_runs = input.max_concurrent_runs;
    }
    a.updated_at = now;
    a.recompute_run_mode(now);
}

/// New schedules get fresh ids; one identical to the stored schedule at the same position
/// keeps its id and history, so re-sending an unchanged spec changes nothing visible.
fn merge_schedules(old: &[Schedule], new: Vec<ScheduleInput>, now: DateTime<Utc>) -> Vec<Schedule> {
    new.into_iter()
        .enumerate()
        .map(|(i, s)| {
            let same = old.get(i).filter(|o| {
                o.start_at == s.start_at
                    && o.stop_at == s.stop_at
                    && o.interval == s.interval
                    && o.recurrence == s.recurrence
                    && o.timezone == s.timezone
            });
            match same {
                Some(o) => o.clone(),
                None => Schedule {
                    id: Uuid::new_v4().to_string(),
                    start_at: s.start_at,
                    start_utc: s.start_utc,
                    stop_at: s.stop_at,
                    stop_utc: s.stop_utc,
                    interval: s.interval,
                    recurrence: s.recurrence,
                    timezone: s.timezone,
                    last_started_at: None,
                    materialized_until: now,
                },
            }
        })
        .collect()
}

/// A copy of `schedules` with fresh ids and no history, for `actions/copy`.
pub(crate) fn fresh_schedules(schedules: &[Schedule], now: DateTime<Utc>) -> Vec<Schedule> {
    schedules
        .iter()
        .map(|s| Schedule {
            id: Uuid::new_v4().to_string(),
            last_started_at: None,
            materialized_until: now,
            ..s.clone()
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::emulator::store::Store;
    use crate::emulator::validate::{SaveRules, automation_input};
    use crate::qlik::endpoint::Api;
    use serde_json::json;

    #[test]
    fn unchanged_schedules_keep_their_ids() {
        let mut s = Store::new(std::time::Duration::from_millis(100), false);
        let now = Utc::now();
        let body = json!({"name": "n", "schedules": [{
            "startAt": "2030-01-01 00:00:00", "interval": 60, "timezone": "UTC"
        }]});
        let id = s.create_automation(
            "u",
            automation_input(Some(&body), SaveRules::new(Api::V1, true)).unwrap(),
            now,
        );
        let before = s.automations[&id].schedules[0].id.clone();
        let a = s.automations.get_mut(&id).unwrap();
        let update = SaveRules::new(Api::V1, false);
        apply(a, automation_input(Some(&body), update).unwrap(), now);
        assert_eq!(a.schedules[0].id, before);
        // A different interval is a new schedule.
        let changed = json!({"schedules": [{
            "startAt": "2030-01-01 00:00:00", "interval": 120, "timezone": "UTC"
        }]});
        apply(a, automation_input(Some(&changed), update).unwrap(), now);
        assert_ne!(a.schedules[0].id, before);
    }

    #[test]
    fn a_save_sets_space_and_concurrency_only_when_given() {
        let mut s = Store::new(std::time::Duration::from_millis(100), false);
        let now = Utc::now();
        let create = json!({"name": "n", "spaceId": "sp", "maxConcurrentRuns": 4});
        let rules = SaveRules::new(Api::Workflows, true);
        let id = s.create_automation("u", automation_input(Some(&create), rules).unwrap(), now);
        let a = s.automations.get_mut(&id).unwrap();
        assert_eq!(
            (a.space_id.as_deref(), a.max_concurrent_runs),
            (Some("sp"), Some(4))
        );
        let update = SaveRules::new(Api::Workflows, false);
        apply(
            a,
            automation_input(Some(&json!({"name": "m"})), update).unwrap(),
            now,
        );
        assert_eq!(
            (a.space_id.as_deref(), a.max_concurrent_runs),
            (Some("sp"), Some(4))
        );
    }
}
