//! The reconcile decision as a pure function: what the spec wants, what the tenant has, and
//! the writes that close the gap. No I/O here, so every rule is unit-tested without a server.

use serde_json::Value;
use sha2::{Digest, Sha256};

use std::collections::BTreeMap;

use crate::{
    crd::{QlikAutomation, automation::ConfigMapKeyRef},
    qlik::{
        Api,
        model::{
            Automation, AutomationRequest, AutomationState, ScheduleRequest, workflows_interval,
        },
    },
};

/// The remote state a `QlikAutomation` spec asks for, with references already resolved.
#[derive(Debug, Clone, PartialEq)]
pub struct Desired {
    /// Remote name.
    pub name: String,
    /// Remote description (`None` = leave empty).
    pub description: Option<String>,
    /// Enabled or disabled.
    pub enabled: bool,
    /// Schedules.
    pub schedules: Vec<ScheduleRequest>,
    /// Workspace (`None` = the operator does not manage it).
    pub workspace: Option<Value>,
    /// Owner (`None` = the operator does not manage it).
    pub owner_id: Option<String>,
    /// Space (`None` = not managed; `Some("")` = the owner's personal space). Workflows only.
    pub space_id: Option<String>,
    /// Concurrent runs allowed (`None` = not managed). Workflows only.
    pub max_concurrent_runs: Option<i64>,
}

impl Desired {
    /// The body of an update (a space changes through `change-space`, never a `PUT`).
    pub fn request(&self) -> AutomationRequest {
        AutomationRequest {
            name: Some(self.name.clone()),
            description: Some(self.description.clone().unwrap_or_default()),
            state: None,
            schedules: Some(self.schedules.clone()),
            workspace: self.workspace.clone(),
            space_id: None,
            max_concurrent_runs: self.max_concurrent_runs,
        }
    }

    /// The body of a create: the update's, in the desired space (an empty one is the
    /// personal space, where a create without `spaceId` lands anyway).
    pub fn create_request(&self) -> AutomationRequest {
        AutomationRequest {
            space_id: self.space_id.clone().filter(|s| !s.is_empty()),
            ..self.request()
        }
    }

    /// The first spec field the API generation `api` does not have, as an error message:
    /// checked before anything is written, so a v1 connection never half-applies a spec.
    pub fn unsupported(&self, api: Api) -> Option<String> {
        if api != Api::V1 {
            return None;
        }
        [
            (self.space_id.is_some(), "spec.spaceId"),
            (self.max_concurrent_runs.is_some(), "spec.maxConcurrentRuns"),
        ]
        .into_iter()
        .find(|(set, _)| *set)
        .map(|(_, field)| {
            format!("{field} is not supported by the v1 API: use a workflows connection (Secret key api: workflows) or remove the field")
        })
    }

    /// A stable digest of the desired remote state. Stored in status after it was applied, so
    /// a later reconcile knows, without fetching the remote, whether the spec moved.
    pub fn digest(&self) -> String {
        let canonical = serde_json::json!({
            "name": self.name,
            "description": self.description.clone().unwrap_or_default(),
            "enabled": self.enabled,
            "schedules": self.schedules,
            "workspace": self.workspace,
            "ownerId": self.owner_id,
        });
        // Added only when set, so objects that do not use them keep the digest they had.
        let mut canonical = canonical;
        if let Some(space) = &self.space_id {
            canonical["spaceId"] = space.clone().into();
        }
        if let Some(max) = self.max_concurrent_runs {
            canonical["maxConcurrentRuns"] = max.into();
        }
        let hash = Sha256::digest(canonical.to_string().as_bytes());
        hash.iter().take(16).map(|b| format!("{b:02x}")).collect()
    }
}

/// The workspace a `configMapKeyRef` names, from the ConfigMap's `data` (`None`: there is no
/// such ConfigMap), refused with a message naming the field. The reconciler and
/// `kubectl qlik diff` both resolve `workspaceFrom` through it.
pub fn workspace_from_data(
    ns: &str,
    r: &ConfigMapKeyRef,
    data: Option<&BTreeMap<String, String>>,
) -> Result<Value, String> {
    let data = data.ok_or_else(|| {
        format!(
            "spec.workspaceFrom: ConfigMap {ns}/{} does not exist",
            r.name
        )
    })?;
    let text = data.get(&r.key).ok_or_else(|| {
        format!(
            "spec.workspaceFrom: ConfigMap {ns}/{} has no key {:?}",
            r.name, r.key
        )
    })?;
    let value: Value = serde_json::from_str(text).map_err(|e| {
        format!(
            "spec.workspaceFrom: ConfigMap {ns}/{} key {:?} is not JSON: {e}",
            r.name, r.key
        )
    })?;
    if !value.is_object() {
        return Err(format!(
            "spec.workspaceFrom: ConfigMap {ns}/{} key {:?} must hold a JSON object",
            r.name, r.key
        ));
    }
    Ok(value)
}

/// The desired remote state of `obj` (the reconciler's and `kubectl qlik diff`'s); `resolved` is the
/// workspace `spec.workspaceFrom` names (an inline `spec.workspace` wins, as in the CRD's
/// validation they never both appear).
pub fn desired(obj: &QlikAutomation, resolved: Option<Value>) -> Desired {
    let spec = &obj.spec;
    Desired {
        name: obj.remote_name(),
        description: spec.description.clone(),
        enabled: spec.enabled,
        schedules: spec
            .schedules
            .iter()
            .map(|s| ScheduleRequest {
                start_at: Some(s.start_at.clone()),
                stop_at: s.stop_at.clone(),
                interval: Some(s.interval),
                timezone: Some(s.timezone.clone()),
                recurrence: None,
            })
            .collect(),
        workspace: spec.workspace.clone().or(resolved),
        owner_id: spec.owner_id.clone(),
        space_id: spec.space_id.clone(),
        max_concurrent_runs: spec.max_concurrent_runs,
    }
}

/// One write to the tenant.
#[derive(Debug, Clone, PartialEq)]
pub enum Action {
    /// `PUT` the automation with this body.
    Update(AutomationRequest),
    /// `actions/enable`
    Enable,
    /// `actions/disable`
    Disable,
    /// `actions/change-space` to this space (`""`: the owner's personal space).
    ChangeSpace(String),
    /// Make this user the owner (`change-owner` on workflows, `move` on v1).
    Move(String),
}

impl Action {
    /// A short name for events and logs.
    pub fn describe(&self) -> String {
        match self {
            Action::Update(_) => "update".into(),
            Action::Enable => "enable".into(),
            Action::Disable => "disable".into(),
            Action::ChangeSpace(space) if space.is_empty() => {
                "move to the owner's personal space".into()
            }
            Action::ChangeSpace(space) => format!("move to space {space}"),
            Action::Move(user) => format!("move to {user}"),
        }
    }
}

/// The fields of a remote that differ from what is desired, by name (for messages).
pub fn differences(desired: &Desired, remote: &Automation) -> Vec<&'static str> {
    let mut diff = Vec::new();
    if remote.name.as_deref().unwrap_or_default() != desired.name {
        diff.push("name");
    }
    if remote.description.as_deref().unwrap_or_default()
        != desired.description.as_deref().unwrap_or_default()
    {
        diff.push("description");
    }
    let remote_schedules: Vec<ScheduleRequest> = remote
        .schedules
        .iter()
        .map(|s| normalise_schedule(s.to_request()))
        .collect();
    let desired_schedules: Vec<ScheduleRequest> = desired
        .schedules
        .iter()
        .cloned()
        .map(normalise_schedule)
        .collect();
    if remote_schedules != desired_schedules {
        diff.push("schedules");
    }
    if let Some(ws) = &desired.workspace
        && !workspace_equal(ws, remote.workspace.as_ref())
    {
        diff.push("workspace");
    }
    if desired
        .max_concurrent_runs
        .is_some_and(|max| remote.max_concurrent_runs != Some(max))
    {
        diff.push("maxConcurrentRuns");
    }
    diff
}

/// Whether the remote sits in another space than the desired one (`None`: not managed; an
/// absent and an empty `spaceId` both mean the personal space).
fn space_differs(desired: &Desired, remote: &Automation) -> bool {
    desired
        .space_id
        .as_deref()
        .is_some_and(|space| remote.space_id.as_deref().unwrap_or_default() != space)
}

/// Compares schedules only on what the spec owns: empty strings and absent values are equal,
/// and intervals as whole minutes, the way the workflows generation (and, reportedly, the
/// live v1 service) stores them; otherwise a spec saying 90 s would be "updated" forever.
fn normalise_schedule(mut s: ScheduleRequest) -> ScheduleRequest {
    s.interval = s
        .interval
        .map(|i| i64::try_from(workflows_interval(i.max(0) as u64)).unwrap_or(i));
    for field in [
        &mut s.start_at,
        &mut s.stop_at,
        &mut s.recurrence,
        &mut s.timezone,
    ] {
        if field.as_deref().is_some_and(str::is_empty) {
            *field = None;
        }
    }
    s
}

/// A missing remote workspace equals an empty object: the service may omit an empty one.
fn workspace_equal(desired: &Value, remote: Option<&Value>) -> bool {
    match remote {
        Some(r) => r == desired,
        None => desired.as_object().is_some_and(|o| o.is_empty()),
    }
}

/// Plans the writes that make `remote` match `desired`, in the order they must happen.
///
/// The move goes last: after it only an admin key still sees the automation, and the other
/// writes are better done while the current owner holds it. Enable/disable go after the
/// update so that enabling an automation happens with its new definition in place; the space
/// changes after that, before the owner.
pub fn plan(desired: &Desired, remote: &Automation) -> Vec<Action> {
    let mut actions = Vec::new();
    if !differences(desired, remote).is_empty() {
        actions.push(Action::Update(desired.request()));
    }
    let enabled = !matches!(remote.state, Some(AutomationState::Disabled));
    if desired.enabled && !enabled {
        actions.push(Action::Enable);
    } else if !desired.enabled && enabled {
        actions.push(Action::Disable);
    }
    if space_differs(desired, remote) {
        actions.push(Action::ChangeSpace(
            desired.space_id.clone().unwrap_or_default(),
        ));
    }
    if let Some(owner) = &desired.owner_id
        && remote.owner_id.as_deref() != Some(owner.as_str())
    {
        actions.push(Action::Move(owner.clone()));
    }
    actions
}

/// The spec fields the remote differs in, by their spec names (`name`, `description`,
/// `schedules`, `workspace`, `enabled`, `ownerId`): what [`plan`] would write, named for
/// people (drift reports, `kubectl qlik diff`).
pub fn drift(desired: &Desired, remote: &Automation) -> Vec<&'static str> {
    let mut fields = differences(desired, remote);
    for action in plan(desired, remote) {
        match action {
            Action::Update(_) => {}
            Action::Enable | Action::Disable => fields.push("enabled"),
            Action::ChangeSpace(_) => fields.push("spaceId"),
            Action::Move(_) => fields.push("ownerId"),
        }
    }
    fields
}

/// Whether the object must fetch the remote's detail this time, or the list view suffices.
///
/// The detail is needed when the spec changed since it was last applied, when the remote
/// changed since it was last seen (drift), or when the object never saw it.
pub fn needs_detail(
    desired_digest: &str,
    applied_digest: Option<&str>,
    seen_updated_at: Option<&str>,
    listed_updated_at: Option<&str>,
) -> bool {
    applied_digest != Some(desired_digest)
        || seen_updated_at.is_none()
        || listed_updated_at.is_none()
        || seen_updated_at != listed_updated_at
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::qlik::model::Schedule;
    use serde_json::json;

    fn desired() -> Desired {
        Desired {
            name: "nightly".into(),
            description: Some("loads".into()),
            enabled: true,
            schedules: vec![ScheduleRequest {
                start_at: Some("2026-01-01 00:00:00".into()),
                stop_at: None,
                interval: Some(3600),
                timezone: Some("UTC".into()),
                recurrence: None,
            }],
            workspace: Some(json!({"blocks": []})),
            owner_id: None,
            space_id: None,
            max_concurrent_runs: None,
        }
    }

    fn remote_matching(d: &Desired) -> Automation {
        Automation {
            id: "a1".into(),
            name: Some(d.name.clone()),
            description: d.description.clone(),
            state: Some(AutomationState::Available),
            owner_id: Some("u1".into()),
            schedules: d
                .schedules
                .iter()
                .map(|s| Schedule {
                    id: Some("server-added".into()),
                    start_at: s.start_at.clone(),
                    stop_at: s.stop_at.clone(),
                    interval: s.interval,
                    timezone: s.timezone.clone(),
                    recurrence: None,
                    last_started_at: Some("2026-01-01T00:00:00.000000Z".into()),
                    next_run_at: Some("2026-01-01T01:00:00.000000Z".into()),
                })
                .collect(),
            workspace: d.workspace.clone(),
            snippet_ids: vec!["computed".into()],
            ..Automation::default()
        }
    }

    #[test]
    fn a_converged_remote_needs_nothing() {
        let d = desired();
        assert_eq!(plan(&d, &remote_matching(&d)), vec![]);
    }

    #[test]
    fn server_added_fields_are_ignored() {
        let d = desired();
        let mut r = remote_matching(&d);
        r.run_mode = Some(crate::qlik::model::RunMode::Scheduled);
        r.connector_ids = vec!["x".into()];
        r.last_run_at = Some("2026-02-02T00:00:00Z".into());
        assert!(differences(&d, &r).is_empty());
    }

    #[test]
    fn each_owned_field_is_diffed() {
        let d = desired();
        let mut r = remote_matching(&d);
        r.name = Some("other".into());
        assert_eq!(differences(&d, &r), vec!["name"]);
        let mut r = remote_matching(&d);
        r.description = None;
        assert_eq!(differences(&d, &r), vec!["description"]);
        let mut r = remote_matching(&d);
        r.schedules[0].interval = Some(60);
        assert_eq!(differences(&d, &r), vec!["schedules"]);
        let mut r = remote_matching(&d);
        r.schedules.clear();
        assert_eq!(differences(&d, &r), vec!["schedules"]);
        let mut r = remote_matching(&d);
        r.workspace = Some(json!({"blocks": [{"id": 1}]}));
        assert_eq!(differences(&d, &r), vec!["workspace"]);
        assert_eq!(
            plan(&d, &r),
            vec![Action::Update(d.request())],
            "one update carries every field"
        );
    }

    #[test]
    fn an_unmanaged_workspace_is_left_alone_and_empty_equals_absent() {
        let mut d = desired();
        d.workspace = None;
        let mut r = remote_matching(&desired());
        r.workspace = Some(json!({"blocks": [1, 2, 3]}));
        assert!(differences(&d, &r).is_empty());
        d.workspace = Some(json!({}));
        r.workspace = None;
        assert!(differences(&d, &r).is_empty());
        let mut d2 = desired();
        d2.description = None;
        let mut r2 = remote_matching(&d2);
        r2.description = Some(String::new());
        assert!(differences(&d2, &r2).is_empty());
    }

    #[test]
    fn enabled_follows_the_spec() {
        let mut d = desired();
        let mut r = remote_matching(&d);
        r.state = Some(AutomationState::Disabled);
        assert_eq!(plan(&d, &r), vec![Action::Enable]);
        d.enabled = false;
        assert_eq!(plan(&d, &r), vec![]);
        r.state = Some(AutomationState::Available);
        assert_eq!(plan(&d, &r), vec![Action::Disable]);
        // `unavailable` is not disabled: the operator does not fight the service over it.
        r.state = Some(AutomationState::Unavailable);
        assert_eq!(plan(&d, &r), vec![Action::Disable]);
        d.enabled = true;
        assert_eq!(plan(&d, &r), vec![]);
    }

    #[test]
    fn space_and_concurrency_are_managed_only_when_set() {
        let d = desired();
        let mut r = remote_matching(&d);
        r.space_id = Some("shared-1".into());
        r.max_concurrent_runs = Some(4);
        assert_eq!(plan(&d, &r), vec![], "unset fields are not managed");

        let mut d = desired();
        d.space_id = Some("shared-2".into());
        d.max_concurrent_runs = Some(2);
        d.owner_id = Some("u2".into());
        assert_eq!(
            plan(&d, &r),
            vec![
                Action::Update(d.request()),
                Action::ChangeSpace("shared-2".into()),
                Action::Move("u2".into()),
            ]
        );
        assert_eq!(
            drift(&d, &r),
            vec!["maxConcurrentRuns", "spaceId", "ownerId"]
        );
        // The update never carries the space; the create does.
        assert_eq!(d.request().space_id, None);
        assert_eq!(d.request().max_concurrent_runs, Some(2));
        assert_eq!(d.create_request().space_id.as_deref(), Some("shared-2"));

        // "" is the personal space: absent on the remote is the same place.
        d.space_id = Some(String::new());
        r.space_id = None;
        r.max_concurrent_runs = Some(2);
        r.owner_id = Some("u2".into());
        assert_eq!(plan(&d, &r), vec![]);
        assert_eq!(d.create_request().space_id, None);
        r.space_id = Some("shared-1".into());
        assert_eq!(plan(&d, &r), vec![Action::ChangeSpace(String::new())]);
    }

    #[test]
    fn intervals_compare_as_the_workflows_api_stores_them() {
        let mut d = desired();
        d.schedules[0].interval = Some(90);
        let mut r = remote_matching(&d);
        r.schedules[0].interval = Some(120);
        assert!(differences(&d, &r).is_empty(), "90 s is stored as 120 s");
        r.schedules[0].interval = Some(60);
        assert_eq!(differences(&d, &r), vec!["schedules"]);
    }

    #[test]
    fn a_v1_connection_names_the_first_workflows_only_field() {
        let mut d = desired();
        assert_eq!(d.unsupported(Api::V1), None);
        d.max_concurrent_runs = Some(1);
        assert!(
            d.unsupported(Api::V1)
                .unwrap()
                .starts_with("spec.maxConcurrentRuns is not supported by the v1 API")
        );
        d.space_id = Some(String::new());
        assert!(d.unsupported(Api::V1).unwrap().starts_with("spec.spaceId"));
        assert_eq!(d.unsupported(Api::Workflows), None);
    }

    #[test]
    fn digests_of_specs_without_the_new_fields_are_unchanged() {
        let d = desired();
        let mut with = d.clone();
        assert_eq!(d.digest(), with.digest());
        with.space_id = Some(String::new());
        assert_ne!(d.digest(), with.digest());
    }

    #[test]
    fn move_comes_last() {
        let mut d = desired();
        d.owner_id = Some("u2".into());
        d.enabled = false;
        let mut r = remote_matching(&d);
        r.name = Some("old".into());
        assert_eq!(
            plan(&d, &r),
            vec![
                Action::Update(d.request()),
                Action::Disable,
                Action::Move("u2".into())
            ]
        );
    }

    #[test]
    fn digest_changes_with_every_owned_field_only() {
        let d = desired();
        let base = d.digest();
        assert_eq!(base, desired().digest(), "stable");
        let mut e = d.clone();
        e.enabled = false;
        assert_ne!(e.digest(), base);
        let mut e = d.clone();
        e.workspace = Some(json!({"blocks": [1]}));
        assert_ne!(e.digest(), base);
        let mut e = d.clone();
        e.owner_id = Some("x".into());
        assert_ne!(e.digest(), base);
    }

    #[test]
    fn detail_is_fetched_only_when_something_moved() {
        assert!(!needs_detail("d", Some("d"), Some("t1"), Some("t1")));
        assert!(
            needs_detail("d2", Some("d"), Some("t1"), Some("t1")),
            "spec changed"
        );
        assert!(
            needs_detail("d", Some("d"), Some("t1"), Some("t2")),
            "remote changed"
        );
        assert!(
            needs_detail("d", None, Some("t1"), Some("t1")),
            "never applied"
        );
        assert!(needs_detail("d", Some("d"), None, Some("t1")), "never seen");
    }
}
