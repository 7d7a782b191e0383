//! The `QlikAutomation` resource: one Qlik Cloud automation, declared.

use kube::{CustomResource, KubeSchema};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::common::{
    Condition, Connection, Usage, UsageMissing, preserve_unknown_any, preserve_unknown_object,
};

/// The `YYYY-MM-DD HH:MM:SS` format of schedule times, as a schema pattern.
pub const SCHEDULE_TIME_PATTERN: &str =
    r"^[0-9]{4}-(0[1-9]|1[0-2])-(0[1-9]|[12][0-9]|3[01]) ([01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9]$";

/// A Qlik Cloud automation managed from Kubernetes.
#[derive(CustomResource, KubeSchema, Debug, Clone, PartialEq, Serialize, Deserialize)]
#[kube(
    group = "automations.qlik.dev",
    version = "v1alpha1",
    kind = "QlikAutomation",
    plural = "qlikautomations",
    singular = "qlikautomation",
    shortname = "qa",
    shortname = "qlikauto",
    category = "qlik",
    namespaced,
    status = "QlikAutomationStatus",
    derive = "PartialEq",
    doc = "A Qlik Cloud automation, created, updated, enabled, disabled and deleted to match this spec.",
    printcolumn = r#"{"name": "State", "type": "string", "jsonPath": ".status.state", "description": "available, unavailable or disabled"}"#,
    printcolumn = r#"{"name": "Run Mode", "type": "string", "jsonPath": ".status.runMode", "description": "manual, scheduled, triggered or webhook"}"#,
    printcolumn = r#"{"name": "Last Run", "type": "string", "jsonPath": ".status.lastRunStatus", "description": "Status of the last run"}"#,
    printcolumn = r#"{"name": "Last Run At", "type": "date", "jsonPath": ".status.lastRunAt", "description": "Start of the last run"}"#,
    printcolumn = r#"{"name": "Ready", "type": "string", "jsonPath": ".status.conditions[?(@.type==\"Ready\")].status", "description": "Whether the tenant matches the spec"}"#,
    printcolumn = r#"{"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"}"#,
    printcolumn = r#"{"name": "Automation ID", "type": "string", "jsonPath": ".status.automationId", "description": "The remote automation's id", "priority": 1}"#,
    printcolumn = r#"{"name": "Owner", "type": "string", "jsonPath": ".status.ownerId", "description": "The remote owner's user id", "priority": 1}"#,
    printcolumn = r#"{"name": "Space", "type": "string", "jsonPath": ".status.spaceId", "description": "The space the remote lives in (empty: the owner's personal space)", "priority": 1}"#
)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = kube::core::Rule::new("!(has(self.workspace) && has(self.workspaceFrom))")
    .message("spec.workspace and spec.workspaceFrom are mutually exclusive: set one or neither")
    .field_path(".workspaceFrom"))]
#[x_kube(validation = kube::core::Rule::new("has(self.copyFrom) == has(oldSelf.copyFrom) && (!has(self.copyFrom) || self.copyFrom == oldSelf.copyFrom)")
    .message("spec.copyFrom is immutable: it only applies when the automation is created")
    .field_path(".copyFrom"))]
pub struct QlikAutomationSpec {
    /// Where the tenant URL and credentials come from. Optional when the operator was started
    /// with a default connection.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub connection: Option<Connection>,

    /// The automation's name in Qlik (not blank). Defaults to `metadata.name`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 255), regex(pattern = r"\S"))]
    pub name: Option<String>,

    /// The automation's description.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 4096))]
    pub description: Option<String>,

    /// Whether the automation is enabled (`actions/enable`) or disabled (`actions/disable`).
    #[serde(default = "default_true")]
    pub enabled: bool,

    /// When the automation runs by itself. An active schedule makes the run mode `scheduled`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 20))]
    pub schedules: Vec<ScheduleSpec>,

    /// The workspace exported from the Qlik Automations editor (`{"blocks": [...], ...}`).
    /// Mutually exclusive with `workspaceFrom`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "preserve_unknown_object")]
    pub workspace: Option<Value>,

    /// Reads the workspace JSON from a ConfigMap key in the same namespace; a change to the
    /// ConfigMap is applied. Mutually exclusive with `workspace`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub workspace_from: Option<WorkspaceFrom>,

    /// The user who should own the automation; applied with `actions/change-owner`
    /// (workflows) or `actions/move` (v1), which need a tenant admin's key or an M2M bot.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 255), regex(pattern = r"\S"))]
    pub owner_id: Option<String>,

    /// The shared space the automation lives in: created there, moved with
    /// `actions/change-space` when it changes; `""` is the owner's personal space. Unset: not
    /// managed. Workflows connections only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 255))]
    pub space_id: Option<String>,

    /// How many runs of this automation may run at once (at most the tenant's
    /// `maxConcurrentRunsPerAutomation`). Unset: not managed. Workflows connections only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1))]
    pub max_concurrent_runs: Option<i64>,

    /// Create the automation as a copy of this existing automation id, then apply the rest of
    /// the spec. Only used at creation; immutable.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 255), regex(pattern = r"\S"))]
    pub copy_from: Option<String>,

    /// What happens to the remote automation when this object is deleted: `Delete` (default)
    /// deletes it, `Orphan` leaves it in the tenant.
    #[serde(default)]
    pub deletion_policy: DeletionPolicy,

    /// `Full` (default): the operator creates, updates and deletes the remote to match.
    /// `Observe`: it never writes to the tenant. It needs the
    /// `automations.qlik.dev/automation-id` annotation (nothing is created), mirrors the
    /// remote into status, reports drift without setting it back, and deleting the object
    /// never deletes the remote.
    #[serde(default)]
    pub management_policy: ManagementPolicy,

    /// While true the operator makes no changes to the tenant; status still shows what it
    /// observes.
    #[serde(default)]
    pub suspend: bool,

    /// Inputs passed to runs the operator starts (see the `run-requested-at` annotation).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "preserve_unknown_any")]
    pub run_inputs: Option<Value>,
}

fn default_true() -> bool {
    true
}

/// A schedule of the automation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, KubeSchema)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = kube::core::Rule::new("!has(self.stopAt) || self.stopAt > self.startAt")
    .message("stopAt must be after startAt")
    .field_path(".stopAt"))]
pub struct ScheduleSpec {
    /// First time the schedule applies, `YYYY-MM-DD HH:MM:SS` in `timezone`.
    #[schemars(regex(
        pattern = r"^[0-9]{4}-(0[1-9]|1[0-2])-(0[1-9]|[12][0-9]|3[01]) ([01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9]$"
    ))]
    pub start_at: String,
    /// Last time the schedule applies, `YYYY-MM-DD HH:MM:SS` in `timezone`. Open-ended when unset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(
        pattern = r"^[0-9]{4}-(0[1-9]|1[0-2])-(0[1-9]|[12][0-9]|3[01]) ([01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9]$"
    ))]
    pub stop_at: Option<String>,
    /// Seconds between runs; greater than 0.
    #[schemars(range(min = 1))]
    pub interval: i64,
    /// The IANA time zone the times are in, e.g. `Europe/Stockholm`.
    #[schemars(
        length(min = 1, max = 64),
        regex(pattern = r"^[A-Za-z0-9_+\-]+(/[A-Za-z0-9_+\-]+)*$")
    )]
    pub timezone: String,
}

/// A key of a ConfigMap in the same namespace.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct WorkspaceFrom {
    /// The ConfigMap and key holding the workspace JSON.
    pub config_map_key_ref: ConfigMapKeyRef,
}

/// A ConfigMap key reference.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ConfigMapKeyRef {
    /// The ConfigMap's name.
    #[schemars(
        length(min = 1, max = 253),
        regex(pattern = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
    )]
    pub name: String,
    /// The key whose value is the workspace JSON.
    #[schemars(length(min = 1, max = 253), regex(pattern = r"^[-._a-zA-Z0-9]+$"))]
    pub key: String,
}

/// What happens to the remote automation when the object is deleted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, JsonSchema)]
pub enum DeletionPolicy {
    /// Delete the remote automation.
    #[default]
    Delete,
    /// Leave the remote automation in the tenant.
    Orphan,
}

/// How far the operator may act on the remote automation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, JsonSchema)]
pub enum ManagementPolicy {
    /// Create, update, enable, disable, move and delete the remote to match the spec.
    #[default]
    Full,
    /// Read only: adopt by id, mirror the remote into status, report drift, never write.
    Observe,
}

/// What the operator observes of the remote automation.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct QlikAutomationStatus {
    /// The remote automation's id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub automation_id: Option<String>,
    /// `available`, `unavailable` or `disabled`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub state: Option<String>,
    /// `manual`, `scheduled`, `triggered` or `webhook`, as computed by Qlik.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub run_mode: Option<String>,
    /// The remote owner's user id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub owner_id: Option<String>,
    /// The space the remote lives in; absent for the owner's personal space.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub space_id: Option<String>,
    /// The remote's `maxConcurrentRuns`, when the tenant reports one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_concurrent_runs: Option<i64>,
    /// When the remote automation was created.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created_at: Option<String>,
    /// When the remote automation last changed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub updated_at: Option<String>,
    /// When the last run started.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_run_at: Option<String>,
    /// The last run's status, e.g. `finished` or `failed`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_run_status: Option<String>,
    /// The last run in more detail.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_run: Option<LastRun>,
    /// This automation's usage over `usage.window`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub usage: Option<Usage>,
    /// Why `usage` is missing, or could not be refreshed at the last attempt (then `usage`
    /// shows the figures of `usage.fetchedAt`). Absent when the last fetch succeeded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub usage_missing: Option<UsageMissing>,
    /// The `metadata.generation` last reconciled.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// `Ready` and `Synced`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
    /// When the operator last compared the tenant with the spec.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_sync_time: Option<String>,
    /// The last `run-requested-at` token handled.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_handled_run_request: Option<String>,
    /// The last `reconcile.fluxcd.io/requestedAt` value handled (Flux's convention).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_handled_reconcile_at: Option<String>,
    /// The spec fields the remote differs in, as last compared, while they are not set back
    /// (`managementPolicy: Observe`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub drifted_fields: Vec<String>,
    /// A digest of the desired remote state last applied, so that a spec change is noticed
    /// without fetching the remote.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub applied_digest: Option<String>,
}

/// The last run of the automation.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct LastRun {
    /// Run id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// Run status.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<String>,
    /// What started it, e.g. `api` or `webhook`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub context: Option<String>,
    /// Run title.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub title: Option<String>,
    /// Start time.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start_time: Option<String>,
    /// Stop time.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stop_time: Option<String>,
    /// Whether it was a test run.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub is_test_run: Option<bool>,
    /// Error details of a failed run.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "preserve_unknown_any")]
    pub error: Option<Value>,
    /// Resource metrics of the run.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "preserve_unknown_any")]
    pub metrics: Option<Value>,
}

impl QlikAutomation {
    /// The name the remote automation should have.
    pub fn remote_name(&self) -> String {
        self.spec
            .name
            .clone()
            .or_else(|| self.metadata.name.clone())
            .unwrap_or_default()
    }
}
