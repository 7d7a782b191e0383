//! The `QlikAutomationSettings` reconciler: one object per tenant sets `automationsEnabled`.

use std::sync::Arc;

use kube::{
    ResourceExt,
    runtime::{controller::Action as Requeue, events::EventType},
};

use crate::{
    crd::{ConditionStatus, QlikAutomationSettings, QlikAutomationSettingsStatus},
    qlik::model::Settings,
};

use super::{
    conditions::pair,
    context::{Context, Error},
    status,
};

const KIND: &str = "QlikAutomationSettings";

/// Reconciles one `QlikAutomationSettings`.
pub async fn reconcile(
    obj: Arc<QlikAutomationSettings>,
    ctx: Arc<Context>,
) -> Result<Requeue, Error> {
    let started = std::time::Instant::now();
    let key = format!(
        "settings:{}/{}",
        obj.namespace().unwrap_or_default(),
        obj.name_any()
    );
    if obj.metadata.deletion_timestamp.is_some() {
        return Ok(Requeue::await_change());
    }
    let result = sync(&obj, &ctx).await;
    let failures = ctx.account(KIND, &key, started, &result);
    match result {
        Ok(requeue) => Ok(requeue),
        Err(err) => {
            let message = ctx.report_failure(&*obj, &err, failures, "Reconcile").await;
            let old = obj.status.clone().unwrap_or_default();
            let status = QlikAutomationSettingsStatus {
                observed_generation: obj.metadata.generation,
                conditions: pair(
                    &old.conditions,
                    ConditionStatus::False,
                    ConditionStatus::False,
                    err.reason(),
                    &message,
                    obj.metadata.generation,
                ),
                ..old.clone()
            };
            status::write(&ctx.kube, &*obj, &old, status).await?;
            Ok(Requeue::requeue(err.requeue_after(failures)))
        }
    }
}

/// Requeue policy for errors that escaped `reconcile`.
pub fn error_policy(_obj: Arc<QlikAutomationSettings>, err: &Error, _ctx: Arc<Context>) -> Requeue {
    Requeue::requeue(err.requeue_after(1))
}

/// The tenant identity of a Settings object: its client's API base.
async fn tenant_of(ctx: &Context, obj: &QlikAutomationSettings) -> Option<String> {
    ctx.client_of(obj).await.ok().map(|c| c.base().to_string())
}

async fn sync(obj: &QlikAutomationSettings, ctx: &Context) -> Result<Requeue, Error> {
    let client = ctx.client_of(obj).await?;
    let tenant = client.base().to_string();

    // The oldest Settings object of a tenant owns it; any later one is a conflict.
    let me = (obj.creation_timestamp(), obj.namespace(), obj.name_any());
    for other in ctx.settings.state() {
        if other.uid() == obj.uid() || other.metadata.deletion_timestamp.is_some() {
            continue;
        }
        let theirs = (
            other.creation_timestamp(),
            other.namespace(),
            other.name_any(),
        );
        if theirs < me && tenant_of(ctx, &other).await.as_deref() == Some(tenant.as_str()) {
            return Err(Error::Conflict(format!(
                "QlikAutomationSettings {}/{} already manages the settings of {tenant}",
                other.namespace().unwrap_or_default(),
                other.name_any()
            )));
        }
    }

    let mut observed = client.get_settings().await?;
    if observed.automations_enabled != obj.spec.automations_enabled {
        ctx.metrics.wrote("settings");
        observed = client
            .update_settings(&Settings {
                automations_enabled: obj.spec.automations_enabled,
            })
            .await?;
        ctx.event(
            obj,
            EventType::Normal,
            "Updated",
            "Update",
            format!("set automationsEnabled to {}", observed.automations_enabled),
        )
        .await;
    }
    let old = obj.status.clone().unwrap_or_default();
    let (usage, usage_missing) = ctx.views.get(&client).tenant_usage();
    let generation = obj.metadata.generation;
    let status = QlikAutomationSettingsStatus {
        automations_enabled: Some(observed.automations_enabled),
        // Figures fetched earlier stay until newer ones come; `usageMissing` says why.
        usage: usage.or(old.usage.clone()),
        usage_missing,
        observed_generation: generation,
        conditions: pair(
            &old.conditions,
            ConditionStatus::True,
            ConditionStatus::True,
            "Synced",
            "the tenant's settings match the spec",
            generation,
        ),
        last_sync_time: old.last_sync_time.clone(),
    };
    status::write(&ctx.kube, obj, &old, status).await?;
    Ok(Requeue::requeue(ctx.config.resync))
}
