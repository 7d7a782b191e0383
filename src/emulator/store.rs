//! The emulator's tenant: automations, their runs, spaces, settings and export links, with
//! the operations the handlers share (visibility, creating, starting runs, scheduled starts).

use std::collections::{HashMap, HashSet};
use std::time::Instant;

use chrono::{DateTime, Utc};
use rand::Rng;
use rand::distr::Alphanumeric;
use serde_json::Value;
use uuid::Uuid;

use super::error::ApiError;
use super::model::{Automation, AutomationState};
use super::runs::{Run, RunOrigin};
use super::save::apply;
use super::validate::{AutomationInput, SaveRules};
use super::wire::Outcome;
use super::workspace::{WorkspaceInfo, find_outcome};
use crate::qlik::endpoint::Api;

/// The most scheduled starts turned into runs per schedule at once; older missed starts are
/// skipped, as a scheduler that was down would.
const MAX_CATCH_UP: i64 = 1000;

/// The tenant's `maxConcurrentRunsPerAutomation` until an admin changes it.
pub(crate) const DEFAULT_MAX_CONCURRENT_RUNS: i64 = 10;

/// The name of an automation created through v1 without one (v1 does not require a name;
/// workflows does).
pub(crate) const UNTITLED: &str = "Untitled automation";

/// The `context` of runs started by a schedule (the reference's enum has no such value;
/// clients must accept unknown ones).
pub(crate) const SCHEDULER_CONTEXT: &str = "scheduler";

/// Who is calling, resolved from the API key or OAuth access token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Caller {
    /// The key's user id.
    pub(crate) user_id: String,
    /// Whether the key is a tenant admin's.
    pub(crate) admin: bool,
}

/// A run whose automation was deleted or moved away: kept only for usage metrics, which
/// report what happened, not what still exists.
#[derive(Debug, Clone)]
pub(crate) struct ArchivedRun {
    /// The run as it was.
    pub(crate) run: Run,
    /// The automation's name then.
    pub(crate) automation_name: String,
    /// The automation's owner then.
    pub(crate) automation_owner: String,
}

/// A log handed out by export or debug, behind a short-lived link.
#[derive(Debug, Clone)]
pub(crate) struct Export {
    /// The log JSON.
    pub(crate) log: Value,
    /// When the link stops working.
    pub(crate) expires_at: Instant,
}

/// All tenant state, behind one mutex in the server.
#[derive(Debug)]
pub(crate) struct Store {
    /// By id.
    pub(crate) automations: HashMap<String, Automation>,
    /// Per automation id, in creation order.
    pub(crate) runs: HashMap<String, Vec<Run>>,
    /// Runs that no longer belong to a visible automation.
    pub(crate) archived: Vec<ArchivedRun>,
    /// Every run id ever used, so client-chosen ids stay unique.
    run_ids: HashSet<String>,
    /// The tenant setting `automationsEnabled` (v1's settings).
    pub(crate) automations_enabled: bool,
    /// The tenant setting `maxConcurrentRunsPerAutomation` (workflows' settings).
    pub(crate) max_concurrent_runs_per_automation: i64,
    /// The shared spaces automations may live in (besides each owner's personal space).
    pub(crate) spaces: HashSet<String>,
    /// Export tokens.
    pub(crate) exports: HashMap<String, Export>,
    /// How long runs take.
    pub(crate) run_duration: chrono::Duration,
    /// Whether saves normalise schedules like the live service reportedly does.
    pub(crate) normalize_schedules: bool,
    seq: u64,
    last_run_prefix: u64,
}

impl Store {
    /// An empty tenant with automations enabled.
    pub(crate) fn new(run_duration: std::time::Duration, normalize_schedules: bool) -> Store {
        Store {
            automations: HashMap::new(),
            runs: HashMap::new(),
            archived: Vec::new(),
            run_ids: HashSet::new(),
            automations_enabled: true,
            max_concurrent_runs_per_automation: DEFAULT_MAX_CONCURRENT_RUNS,
            spaces: HashSet::new(),
            exports: HashMap::new(),
            run_duration: chrono::Duration::from_std(run_duration)
                .unwrap_or(chrono::Duration::seconds(2)),
            normalize_schedules,
            seq: 0,
            last_run_prefix: 0,
        }
    }

    /// The automation `id` if `caller` may see it; otherwise 404, so that a plain key cannot
    /// even learn that another user's automation exists.
    pub(crate) fn visible(&self, caller: &Caller, id: &str) -> Result<&Automation, ApiError> {
        self.automations
            .get(id)
            .filter(|a| caller.admin || a.owner_id == caller.user_id)
            .ok_or_else(|| ApiError::NotFound(format!("automation {id} not found")))
    }

    /// Mutable [`Store::visible`].
    pub(crate) fn visible_mut(
        &mut self,
        caller: &Caller,
        id: &str,
    ) -> Result<&mut Automation, ApiError> {
        self.automations
            .get_mut(id)
            .filter(|a| caller.admin || a.owner_id == caller.user_id)
            .ok_or_else(|| ApiError::NotFound(format!("automation {id} not found")))
    }

    /// What a create (`create`) or update body in generation `api` is validated against.
    pub(crate) fn save_rules(&self, api: Api, create: bool) -> SaveRules {
        SaveRules {
            api,
            create,
            normalize_schedules: self.normalize_schedules,
            max_concurrent_runs: self.max_concurrent_runs_per_automation,
        }
    }

    /// 404 for a shared space that is not registered; `None` (personal) always exists.
    pub(crate) fn check_space(&self, space_id: Option<&str>) -> Result<(), ApiError> {
        match space_id {
            Some(s) if !self.spaces.contains(s) => {
                Err(ApiError::NotFound(format!("space {s} not found")))
            }
            _ => Ok(()),
        }
    }

    /// The newest run of an automation.
    pub(crate) fn last_run(&self, automation_id: &str) -> Option<&Run> {
        self.runs
            .get(automation_id)?
            .iter()
            .max_by_key(|r| (r.created_at, r.seq))
    }

    /// A run of an automation, or 404.
    pub(crate) fn run(&self, automation_id: &str, run_id: &str) -> Result<&Run, ApiError> {
        self.runs
            .get(automation_id)
            .and_then(|runs| runs.iter().find(|r| r.id == run_id))
            .ok_or_else(|| ApiError::NotFound(format!("run {run_id} not found")))
    }

    /// Mutable [`Store::run`].
    pub(crate) fn run_mut(
        &mut self,
        automation_id: &str,
        run_id: &str,
    ) -> Result<&mut Run, ApiError> {
        self.runs
            .get_mut(automation_id)
            .and_then(|runs| runs.iter_mut().find(|r| r.id == run_id))
            .ok_or_else(|| ApiError::NotFound(format!("run {run_id} not found")))
    }

    /// An automation's full detail JSON.
    pub(crate) fn detail_json(&self, a: &Automation, now: DateTime<Utc>) -> Value {
        a.detail_json(self.last_run(&a.id), now)
    }

    fn next_seq(&mut self) -> u64 {
        self.seq += 1;
        self.seq
    }

    /// A UUID v4 whose first 48 bits are a strictly increasing millisecond clock, so that run
    /// ids sort in creation order (the run list's default sort is `id`) while keeping the
    /// v4 layout clients may check.
    fn sortable_run_id(&mut self, now: DateTime<Utc>) -> String {
        let ms = u64::try_from(now.timestamp_millis()).unwrap_or(0);
        let prefix = ms.max(self.last_run_prefix + 1);
        self.last_run_prefix = prefix;
        let mut bytes: [u8; 16] = rand::rng().random();
        bytes[..6].copy_from_slice(&prefix.to_be_bytes()[2..]);
        bytes[6] = (bytes[6] & 0x0f) | 0x40;
        bytes[8] = (bytes[8] & 0x3f) | 0x80;
        Uuid::from_bytes(bytes).to_string()
    }

    /// Creates an automation owned by `owner` from a validated create request whose space
    /// (if any) the caller has checked with [`Store::check_space`].
    pub(crate) fn create_automation(
        &mut self,
        owner: &str,
        input: AutomationInput,
        now: DateTime<Utc>,
    ) -> String {
        let id = Uuid::new_v4().to_string();
        let mut a = Automation {
            id: id.clone(),
            name: UNTITLED.to_owned(),
            description: String::new(),
            state: AutomationState::Available,
            owner_id: owner.to_owned(),
            run_mode: super::wire::RunMode::Manual,
            created_at: now,
            updated_at: now,
            schedules: Vec::new(),
            workspace: Value::Object(Default::default()),
            info: WorkspaceInfo::default(),
            execution_token: rand::rng()
                .sample_iter(&Alphanumeric)
                .take(64)
                .map(char::from)
                .collect(),
            space_id: None,
            max_concurrent_runs: None,
        };
        apply(&mut a, input, now);
        self.automations.insert(id.clone(), a);
        id
    }

    /// Deletes an automation; its runs survive only in the usage history.
    pub(crate) fn delete_automation(&mut self, id: &str) {
        if let Some(a) = self.automations.remove(id) {
            self.archive_runs(&a);
        }
    }

    /// Moves an automation's runs out of sight, into the usage history.
    pub(crate) fn archive_runs(&mut self, a: &Automation) {
        for run in self.runs.remove(&a.id).unwrap_or_default() {
            self.archived.push(ArchivedRun {
                run,
                automation_name: a.name.clone(),
                automation_owner: a.owner_id.clone(),
            });
        }
    }

    /// Starts a run of automation `id`. The caller checked visibility; this checks what the
    /// service checks before any run: the tenant setting and the automation's state.
    pub(crate) fn start_run(
        &mut self,
        id: &str,
        start: RunStart,
        now: DateTime<Utc>,
    ) -> Result<String, ApiError> {
        if !self.automations_enabled {
            return Err(ApiError::Forbidden(
                "automations are disabled for this tenant (settings.automationsEnabled is false)"
                    .to_owned(),
            ));
        }
        let a = self
            .automations
            .get(id)
            .ok_or_else(|| ApiError::NotFound(format!("automation {id} not found")))?;
        if a.state != AutomationState::Available {
            return Err(ApiError::BadRequest(format!(
                "automation {id} is {} and cannot be run",
                a.state.as_str()
            )));
        }
        let outcome = find_outcome(&start.inputs)
            .or(a.info.outcome)
            .unwrap_or(Outcome::Finished);
        let (title, owner, space_id, blocks, network, log_blocks) = (
            a.name.clone(),
            a.owner_id.clone(),
            a.space_id.clone(),
            a.info.metric_blocks.clone(),
            a.info.network(),
            a.info.blocks.clone(),
        );
        let run_id = match start.requested_id {
            Some(rid) => {
                if self.run_ids.contains(&rid) {
                    return Err(ApiError::BadRequest(format!(
                        "id: a run with id {rid} already exists"
                    )));
                }
                rid
            }
            None => self.sortable_run_id(now),
        };
        let seq = self.next_seq();
        let run = Run {
            id: run_id.clone(),
            seq,
            automation_id: id.to_owned(),
            title,
            inputs: start.inputs,
            context: start.context,
            origin: start.origin,
            owner_id: owner,
            executed_by_id: start.executed_by,
            space_id,
            created_at: start.created_at.unwrap_or(now),
            scheduled_start_time: start
                .created_at
                .filter(|_| start.origin == RunOrigin::Scheduled),
            run_duration: self.run_duration,
            outcome,
            stop_requested_at: None,
            metric_blocks: blocks,
            network,
            log_blocks,
        };
        self.run_ids.insert(run_id.clone());
        self.runs.entry(id.to_owned()).or_default().push(run);
        Ok(run_id)
    }

    /// Turns the scheduled starts that came due since the last look into runs. Called before
    /// every request, so schedules behave as if a scheduler had been running all along.
    pub(crate) fn tick(&mut self, now: DateTime<Utc>) {
        let mut due: Vec<(String, String, DateTime<Utc>)> = Vec::new();
        let enabled = self.automations_enabled;
        for a in self.automations.values_mut() {
            let runnable = enabled && a.state == AutomationState::Available;
            for s in a.schedules.iter_mut() {
                if s.materialized_until >= now {
                    continue;
                }
                let from = s.materialized_until;
                s.materialized_until = now;
                if !runnable {
                    continue;
                }
                let (Some(first), Some(after_now)) =
                    (s.first_index_after(from), s.first_index_after(now))
                else {
                    continue;
                };
                let last = after_now - 1;
                let first = first.max(last - MAX_CATCH_UP + 1);
                for k in first..=last {
                    let Some(at) = s.occurrence(k) else { break };
                    s.last_started_at = Some(at);
                    due.push((a.id.clone(), a.owner_id.clone(), at));
                }
            }
        }
        due.sort_by_key(|(_, _, at)| *at);
        for (id, owner, at) in due {
            let start = RunStart {
                origin: RunOrigin::Scheduled,
                context: SCHEDULER_CONTEXT.to_owned(),
                inputs: Value::Object(Default::default()),
                executed_by: owner,
                requested_id: None,
                created_at: Some(at),
            };
            // Cannot fail: the automation exists, is available and automations are enabled.
            let _ = self.start_run(&id, start, now);
        }
    }
}

/// How a run is being started.
#[derive(Debug, Clone)]
pub(crate) struct RunStart {
    /// What started it.
    pub(crate) origin: RunOrigin,
    /// Its `context`.
    pub(crate) context: String,
    /// Its inputs.
    pub(crate) inputs: Value,
    /// The user starting it.
    pub(crate) executed_by: String,
    /// A run id chosen by the client.
    pub(crate) requested_id: Option<String>,
    /// When it was created, if not now (scheduled starts are created retroactively).
    pub(crate) created_at: Option<DateTime<Utc>>,
}

impl RunStart {
    /// A run started through the API by `user`.
    pub(crate) fn api(user: &str, context: String, inputs: Value, id: Option<String>) -> Self {
        RunStart {
            origin: RunOrigin::Api,
            context,
            inputs,
            executed_by: user.to_owned(),
            requested_id: id,
            created_at: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::emulator::validate::automation_input;
    use serde_json::json;

    fn create_rules() -> SaveRules {
        SaveRules::new(Api::V1, true)
    }

    fn store() -> Store {
        Store::new(std::time::Duration::from_millis(100), false)
    }

    #[test]
    fn run_ids_sort_in_creation_order_and_are_v4() {
        let mut s = store();
        let now = Utc::now();
        let ids: Vec<String> = (0..50).map(|_| s.sortable_run_id(now)).collect();
        let mut sorted = ids.clone();
        sorted.sort();
        assert_eq!(ids, sorted);
        for id in ids {
            assert_eq!(Uuid::parse_str(&id).unwrap().get_version_num(), 4);
        }
    }

    #[test]
    fn schedules_start_runs_lazily() {
        let mut s = store();
        let t0 = Utc::now();
        let body = json!({"name": "n", "schedules": [{
            "startAt": "2000-01-01 00:00:00", "interval": 10, "timezone": "UTC"
        }]});
        let id = s.create_automation(
            "u",
            automation_input(Some(&body), create_rules()).unwrap(),
            t0,
        );
        assert_eq!(s.automations[&id].run_mode.as_str(), "scheduled");
        s.tick(t0 + chrono::Duration::seconds(35));
        let runs = &s.runs[&id];
        // Starts fall on whole 10 s marks after creation: three or four of them in 35 s.
        assert!((3..=4).contains(&runs.len()), "{}", runs.len());
        assert!(runs.iter().all(|r| r.origin == RunOrigin::Scheduled));
        assert!(s.automations[&id].schedules[0].last_started_at.is_some());
        let before = runs.len();
        s.tick(t0 + chrono::Duration::seconds(35));
        assert_eq!(s.runs[&id].len(), before);
    }

    #[test]
    fn disabled_tenant_refuses_runs() {
        let mut s = store();
        let now = Utc::now();
        let id = s.create_automation(
            "u",
            automation_input(Some(&json!({"name": "n"})), create_rules()).unwrap(),
            now,
        );
        s.automations_enabled = false;
        let err = s
            .start_run(&id, RunStart::api("u", "api".into(), json!({}), None), now)
            .unwrap_err();
        assert!(matches!(err, ApiError::Forbidden(_)));
    }

    #[test]
    fn spaces_must_be_registered_and_v1_creates_may_be_nameless() {
        let mut s = store();
        s.spaces.insert("sp1".into());
        assert!(s.check_space(None).is_ok());
        assert!(s.check_space(Some("sp1")).is_ok());
        let err = s.check_space(Some("sp2")).unwrap_err();
        assert_eq!(err, ApiError::NotFound("space sp2 not found".into()));
        let id = s.create_automation(
            "u",
            automation_input(Some(&json!({})), create_rules()).unwrap(),
            Utc::now(),
        );
        assert_eq!(s.automations[&id].name, UNTITLED);
        assert_eq!(s.save_rules(Api::Workflows, true).max_concurrent_runs, 10);
    }
}
