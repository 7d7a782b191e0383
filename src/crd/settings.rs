//! The `QlikAutomationSettings` resource: a tenant's automation settings, declared.

use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::common::{Condition, Connection, Usage, UsageMissing};

/// A tenant's automation settings. One per tenant: a second object pointing at the same
/// tenant reports `Ready=False, reason=Conflict` and changes nothing.
#[derive(CustomResource, JsonSchema, Debug, Clone, PartialEq, Serialize, Deserialize)]
#[kube(
    group = "automations.qlik.dev",
    version = "v1alpha1",
    kind = "QlikAutomationSettings",
    plural = "qlikautomationsettings",
    singular = "qlikautomationsettings",
    shortname = "qas",
    category = "qlik",
    namespaced,
    status = "QlikAutomationSettingsStatus",
    derive = "PartialEq",
    doc = "Tenant-wide Qlik automation settings, applied to the tenant the connection points at.",
    printcolumn = r#"{"name": "Max Runs", "type": "integer", "jsonPath": ".status.maxConcurrentRunsPerAutomation", "description": "Most concurrent runs per automation (workflows)"}"#,
    printcolumn = r#"{"name": "Enabled", "type": "boolean", "jsonPath": ".status.automationsEnabled", "description": "Whether automations may run in the tenant (v1)"}"#,
    printcolumn = r#"{"name": "Ready", "type": "string", "jsonPath": ".status.conditions[?(@.type==\"Ready\")].status"}"#,
    printcolumn = r#"{"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"}"#
)]
#[serde(rename_all = "camelCase")]
pub struct QlikAutomationSettingsSpec {
    /// Where the tenant URL and a tenant admin's (or M2M bot's) credentials come from.
    /// Optional when the operator was started with a default connection.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub connection: Option<Connection>,
    /// The most runs of one automation that may run at once (workflows connections only).
    /// No automation's `maxConcurrentRuns` may exceed it. Unset: not managed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1))]
    pub max_concurrent_runs_per_automation: Option<i64>,
    /// Whether automations may run in the tenant: v1's tenant switch, deprecated by Qlik
    /// (v1 connections only). Unset: not managed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub automations_enabled: Option<bool>,
}

/// What the operator observes of the tenant's settings.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct QlikAutomationSettingsStatus {
    /// The tenant's observed `automationsEnabled` (v1 connections).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub automations_enabled: Option<bool>,
    /// The tenant's observed `maxConcurrentRunsPerAutomation` (workflows connections).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_concurrent_runs_per_automation: Option<i64>,
    /// Tenant-wide usage over `usage.window`.
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
}
