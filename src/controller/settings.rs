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
    conditions::{self, Progress, Verdict},
    context::{Context, Error, ReadyReport},
    decide::{self, Claim},
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
    let ready = ReadyReport::synced(&result, ConditionStatus::True, "Synced");
    let failures = ctx.account(KIND, &*obj, &key, started, &result, ready);
    match result {
        Ok(requeue) => Ok(requeue),
        Err(err) => {
            let message = ctx.report_failure(&*obj, &err, failures, "Reconcile").await;
            let old = obj.status.clone().unwrap_or_default();
            let status = QlikAutomationSettingsStatus {
                observed_generation: obj.metadata.generation,
                conditions: conditions::failed(
                    &old.conditions,
                    err.reason(),
                    &message,
                    err.is_transient(),
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
    let others = ctx.settings.state();
    let mut tenants = Vec::with_capacity(others.len());
    for other in &others {
        tenants.push(tenant_of(ctx, other).await);
    }
    let claims = others
        .iter()
        .zip(&tenants)
        .map(|(o, t)| Claim::of(&o.metadata, t.as_deref()));
    if let Some(first) =
        decide::first_claimant(&Claim::of(&obj.metadata, Some(&tenant)), claims, &tenant)
    {
        return Err(Error::Conflict(format!(
            "QlikAutomationSettings {} already manages the settings of {tenant}",
            first.key()
        )));
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
        conditions: conditions::conditions(
            &old.conditions,
            &Verdict {
                ready: ConditionStatus::True,
                synced: ConditionStatus::True,
                reason: "Synced",
                message: "the tenant's settings match the spec",
                progress: Progress::Settled,
            },
            generation,
        ),
        last_sync_time: old.last_sync_time.clone(),
    };
    status::write(&ctx.kube, obj, &old, status).await?;
    Ok(Requeue::requeue(ctx.config.resync))
}
