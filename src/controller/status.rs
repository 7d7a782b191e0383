//! Writing `.status` of both kinds, one way: server-side apply by the operator's field
//! manager, only when something changed (or `lastSyncTime` is getting old), tolerating an
//! object deleted meanwhile.

use std::fmt::Debug;

use chrono::{DateTime, Utc};
use kube::{
    Api, Resource, ResourceExt,
    api::{Patch, PatchParams},
    core::NamespaceResourceScope,
};
use serde::{Serialize, de::DeserializeOwned};
use serde_json::json;

use crate::crd::{
    Connection, FIELD_MANAGER, QlikAutomation, QlikAutomationSettings,
    QlikAutomationSettingsStatus, QlikAutomationStatus,
};

use super::{conditions::now_rfc3339, context::Error};

/// How stale `lastSyncTime` may get before it is refreshed on its own: a converged object
/// causes no status write more often than this.
pub const SYNC_TIME_REFRESH: chrono::Duration = chrono::Duration::minutes(10);

/// A kind the operator reconciles: its status type and connection.
pub trait Managed:
    Resource<DynamicType = (), Scope = NamespaceResourceScope>
    + Clone
    + DeserializeOwned
    + Debug
    + Send
    + Sync
    + 'static
{
    /// The status type.
    type Status: Serialize + PartialEq + Clone + Default + Send + Sync;

    /// The status as last written (empty when none was).
    fn current_status(&self) -> Self::Status;
    /// The connection the spec names (`None`: the operator's default connection).
    fn connection(&self) -> Option<&Connection>;
    /// `status.lastSyncTime`.
    fn sync_time(status: &Self::Status) -> Option<&str>;
    /// Sets `status.lastSyncTime`.
    fn set_sync_time(status: &mut Self::Status, at: String);
}

impl Managed for QlikAutomation {
    type Status = QlikAutomationStatus;

    fn current_status(&self) -> QlikAutomationStatus {
        self.status.clone().unwrap_or_default()
    }
    fn connection(&self) -> Option<&Connection> {
        self.spec.connection.as_ref()
    }
    fn sync_time(status: &QlikAutomationStatus) -> Option<&str> {
        status.last_sync_time.as_deref()
    }
    fn set_sync_time(status: &mut QlikAutomationStatus, at: String) {
        status.last_sync_time = Some(at);
    }
}

impl Managed for QlikAutomationSettings {
    type Status = QlikAutomationSettingsStatus;

    fn current_status(&self) -> QlikAutomationSettingsStatus {
        self.status.clone().unwrap_or_default()
    }
    fn connection(&self) -> Option<&Connection> {
        self.spec.connection.as_ref()
    }
    fn sync_time(status: &QlikAutomationSettingsStatus) -> Option<&str> {
        status.last_sync_time.as_deref()
    }
    fn set_sync_time(status: &mut QlikAutomationSettingsStatus, at: String) {
        status.last_sync_time = Some(at);
    }
}

/// Whether `status` must be written over `old` at `now`: it changed, or `lastSyncTime`
/// is older than [`SYNC_TIME_REFRESH`] (or missing).
pub fn needs_write<K: Managed>(old: &K::Status, status: &K::Status, now: DateTime<Utc>) -> bool {
    let recent = K::sync_time(old)
        .and_then(|t| DateTime::parse_from_rfc3339(t).ok())
        .is_some_and(|t| now - t.with_timezone(&Utc) < SYNC_TIME_REFRESH);
    status != old || !recent
}

/// Applies `status` to `obj` (stamping `lastSyncTime`) unless [`needs_write`] says there is
/// nothing to say. An object deleted meanwhile has no status left to write: not an error.
pub async fn write<K: Managed>(
    kube: &kube::Client,
    obj: &K,
    old: &K::Status,
    mut status: K::Status,
) -> Result<(), Error> {
    if !needs_write::<K>(old, &status, Utc::now()) {
        return Ok(());
    }
    K::set_sync_time(&mut status, now_rfc3339());
    let patch = json!({
        "apiVersion": K::api_version(&()),
        "kind": K::kind(&()),
        "status": status,
    });
    let api: Api<K> = Api::namespaced(kube.clone(), &obj.namespace().unwrap_or_default());
    match api
        .patch_status(
            &obj.name_any(),
            &PatchParams::apply(FIELD_MANAGER).force(),
            &Patch::Apply(&patch),
        )
        .await
    {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(e)) if e.code == 404 => Ok(()),
        Err(e) => Err(e.into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn converged_status_is_written_only_when_its_sync_time_gets_old() {
        let now = Utc::now();
        let at = |minutes: i64| {
            (now - chrono::Duration::minutes(minutes))
                .to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
        };
        let old = QlikAutomationStatus {
            state: Some("available".into()),
            last_sync_time: Some(at(1)),
            ..QlikAutomationStatus::default()
        };
        assert!(!needs_write::<QlikAutomation>(&old, &old.clone(), now));
        let mut changed = old.clone();
        changed.state = Some("disabled".into());
        assert!(needs_write::<QlikAutomation>(&old, &changed, now));
        let stale = QlikAutomationStatus {
            last_sync_time: Some(at(11)),
            ..old.clone()
        };
        assert!(needs_write::<QlikAutomation>(&stale, &stale.clone(), now));
        let never = QlikAutomationSettingsStatus::default();
        assert!(needs_write::<QlikAutomationSettings>(
            &never,
            &never.clone(),
            now
        ));
    }

    #[test]
    fn the_patch_names_the_kinds_from_the_types() {
        assert_eq!(
            QlikAutomation::api_version(&()),
            "automations.qlik.dev/v1alpha1"
        );
        assert_eq!(QlikAutomationSettings::kind(&()), "QlikAutomationSettings");
    }
}
