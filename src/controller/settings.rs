//! The `QlikAutomationSettings` reconciler: one object per tenant sets `automationsEnabled`.

use std::sync::Arc;

use chrono::{Days, Utc};
use kube::{
    Api, ResourceExt,
    api::{Patch, PatchParams},
    runtime::{controller::Action as Requeue, events::EventType},
};
use serde_json::json;

use crate::{
    crd::{
        ConditionStatus, FIELD_MANAGER, QlikAutomationSettings, QlikAutomationSettingsStatus, Usage,
    },
    qlik::{Filter, QlikClient, UsageQuery, filter::CompareOp, model::Settings},
};

use super::{
    conditions::{now_rfc3339, pair},
    context::{Context, Error},
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
            write_status(&ctx, &obj, &old, status).await?;
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
    ctx.client_for(
        &obj.namespace().unwrap_or_default(),
        obj.spec.connection.as_ref(),
    )
    .await
    .ok()
    .map(|c| c.base().to_string())
}

async fn sync(obj: &QlikAutomationSettings, ctx: &Context) -> Result<Requeue, Error> {
    let client = ctx
        .client_for(
            &obj.namespace().unwrap_or_default(),
            obj.spec.connection.as_ref(),
        )
        .await?;
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
    let usage = tenant_usage(&client).await.or(old.usage.clone());
    let generation = obj.metadata.generation;
    let status = QlikAutomationSettingsStatus {
        automations_enabled: Some(observed.automations_enabled),
        usage,
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
    write_status(ctx, obj, &old, status).await?;
    Ok(Requeue::requeue(ctx.config.resync))
}

/// Tenant-wide usage over the last 30 days; `None` when the key may not read it.
async fn tenant_usage(client: &QlikClient) -> Option<Usage> {
    let since = Utc::now()
        .date_naive()
        .checked_sub_days(Days::new(30))?
        .format("%Y-%m-%d")
        .to_string();
    let entries = client
        .get_usage(&UsageQuery {
            filter: Filter::compare("date", CompareOp::Ge, since.as_str()),
            breakdown_by: None,
        })
        .await
        .ok()?;
    let mut usage = Usage::new(format!("since {since}"));
    for e in entries {
        usage.add(&e.name, e.value);
    }
    Some(usage)
}

async fn write_status(
    ctx: &Context,
    obj: &QlikAutomationSettings,
    old: &QlikAutomationSettingsStatus,
    mut status: QlikAutomationSettingsStatus,
) -> Result<(), Error> {
    let recent = old
        .last_sync_time
        .as_deref()
        .and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok())
        .is_some_and(|t| Utc::now() - t.with_timezone(&Utc) < chrono::Duration::minutes(10));
    if &status == old && recent {
        return Ok(());
    }
    status.last_sync_time = Some(now_rfc3339());
    let api: Api<QlikAutomationSettings> =
        Api::namespaced(ctx.kube.clone(), &obj.namespace().unwrap_or_default());
    let patch = json!({
        "apiVersion": "automations.qlik.dev/v1alpha1",
        "kind": "QlikAutomationSettings",
        "status": status,
    });
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
