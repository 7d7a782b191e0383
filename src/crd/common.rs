//! Pieces both resources share: the connection to a tenant, conditions, and schema helpers.

use schemars::{JsonSchema, Schema, SchemaGenerator, json_schema};
use serde::{Deserialize, Serialize};

/// The API group of both resources.
pub const GROUP: &str = "automations.qlik.dev";
/// The API version of both resources.
pub const VERSION: &str = "v1alpha1";
/// The finalizer that guards remote cleanup.
pub const FINALIZER: &str = "automations.qlik.dev/cleanup";
/// The field manager of every write the operator makes.
pub const FIELD_MANAGER: &str = "qlik-automations-operator";
/// Links an object to its remote automation: set by users to adopt, by the operator after a create.
pub const ANNOTATION_AUTOMATION_ID: &str = "automations.qlik.dev/automation-id";
/// Records that a create is about to be sent (`<RFC 3339 time> <remote name>`), so that a
/// create whose answer was lost can be found again instead of repeated.
pub const ANNOTATION_CREATE_PENDING: &str = "automations.qlik.dev/create-pending";
/// A new value requests one run of the automation.
pub const ANNOTATION_RUN_REQUESTED_AT: &str = "automations.qlik.dev/run-requested-at";
/// Flux's convention: a new value forces a full reconcile now.
pub const ANNOTATION_RECONCILE_REQUESTED_AT: &str = "reconcile.fluxcd.io/requestedAt";
/// The Secret key holding the tenant URL.
pub const SECRET_KEY_TENANT_URL: &str = "tenantUrl";
/// The Secret key holding the API key.
pub const SECRET_KEY_API_KEY: &str = "apiKey";
/// The Secret key holding an OAuth2 M2M client id (instead of `apiKey`).
pub const SECRET_KEY_CLIENT_ID: &str = "clientId";
/// The Secret key holding the OAuth2 M2M client secret.
pub const SECRET_KEY_CLIENT_SECRET: &str = "clientSecret";
/// The optional Secret key holding the OAuth scopes (default `admin.automations`).
pub const SECRET_KEY_SCOPE: &str = "scope";
/// The optional Secret key choosing the API generation: `workflows` (default) or `v1`.
pub const SECRET_KEY_API: &str = "api";

/// Where the tenant URL and credentials come from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema, Default)]
#[serde(rename_all = "camelCase")]
pub struct Connection {
    /// A Secret in the resource's own namespace with the keys `tenantUrl` (e.g.
    /// `https://acme.eu.qlikcloud.com`) and either `apiKey` or an OAuth2 M2M client's
    /// `clientId` and `clientSecret` (optional `scope`, default `admin.automations`), and
    /// optionally `api`: `workflows` (default) or `v1`.
    pub secret_ref: SecretRef,
}

/// A reference to a Secret in the same namespace.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default, kube::KubeSchema)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = kube::core::Rule::new("!has(self.__namespace__)")
    .message("connection.secretRef.namespace is not allowed: a resource may only use a Secret in its own namespace")
    .field_path(".namespace"))]
pub struct SecretRef {
    /// The Secret's name.
    #[schemars(
        length(min = 1, max = 253),
        regex(pattern = r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$")
    )]
    pub name: String,
    /// Not allowed: namespaces are the tenancy boundary. Present in the schema only so that a
    /// manifest naming another namespace is refused instead of silently pruned.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
}

/// The status of a condition.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum ConditionStatus {
    /// The condition holds.
    True,
    /// The condition does not hold.
    False,
    /// Not known yet.
    Unknown,
}

/// One observation of the resource's state, in the Kubernetes convention.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Condition {
    /// `Ready` (the tenant matches the spec) or `Synced` (the last reconcile succeeded).
    #[serde(rename = "type")]
    pub type_: String,
    /// `True`, `False` or `Unknown`.
    pub status: ConditionStatus,
    /// A CamelCase reason for machines, e.g. `Unauthorized`, `InvalidSpec`, `Conflict`.
    pub reason: String,
    /// A sentence for humans, with Qlik's own detail and traceId when there is one.
    pub message: String,
    /// The `metadata.generation` this condition was computed for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// When `status` last changed (RFC 3339).
    pub last_transition_time: String,
}

/// Usage over a window: of one automation in its status, of the tenant in Settings status.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Usage {
    /// The window, e.g. `since 2026-11-01`.
    pub window: String,
    /// Runs.
    #[serde(default)]
    pub runs: i64,
    /// Seconds of run time.
    #[serde(default)]
    pub duration: i64,
    /// Bytes received.
    #[serde(default)]
    pub bandwidth_in: i64,
    /// Bytes sent.
    #[serde(default)]
    pub bandwidth_out: i64,
    /// When these figures were fetched from the tenant (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fetched_at: Option<String>,
}

/// Why usage figures are missing, or could not be refreshed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct UsageMissing {
    /// `NotYetFetched`, `Forbidden` or `Unavailable`.
    pub reason: UsageMissingReason,
    /// A sentence for humans, with Qlik's own detail when the tenant refused or failed.
    pub message: String,
}

/// Why usage figures are missing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum UsageMissingReason {
    /// Usage has not been read since the operator started, or since the automation was
    /// created; it appears at the next usage refresh.
    NotYetFetched,
    /// The tenant refuses usage to this key (only tenant admins may read it); asked again
    /// in an hour.
    Forbidden,
    /// The last attempt failed (an outage, a timeout); retried with backoff.
    Unavailable,
}

impl UsageMissingReason {
    /// The reason as status and the plugin show it.
    pub fn as_str(self) -> &'static str {
        match self {
            UsageMissingReason::NotYetFetched => "NotYetFetched",
            UsageMissingReason::Forbidden => "Forbidden",
            UsageMissingReason::Unavailable => "Unavailable",
        }
    }
}

impl Usage {
    /// An empty tally over `window`.
    pub fn new(window: impl Into<String>) -> Usage {
        Usage {
            window: window.into(),
            ..Usage::default()
        }
    }

    /// Adds one of Qlik's usage values; metrics status does not show are ignored.
    pub fn add(&mut self, metric: &crate::qlik::model::UsageMetric, value: i64) {
        use crate::qlik::model::UsageMetric;
        match metric {
            UsageMetric::Runs => self.runs += value,
            UsageMetric::Duration => self.duration += value,
            UsageMetric::BandwidthIn => self.bandwidth_in += value,
            UsageMetric::BandwidthOut => self.bandwidth_out += value,
            _ => {}
        }
    }
}

/// The schema of a free-form JSON object the apiserver must keep as given.
pub fn preserve_unknown_object(_: &mut SchemaGenerator) -> Schema {
    json_schema!({
        "type": "object",
        "x-kubernetes-preserve-unknown-fields": true
    })
}

/// The schema of any JSON value the apiserver must keep as given.
pub fn preserve_unknown_any(_: &mut SchemaGenerator) -> Schema {
    json_schema!({
        "x-kubernetes-preserve-unknown-fields": true
    })
}
