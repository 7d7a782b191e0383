//! The `QlikAutomationSettings` reconciler: one object per tenant sets the tenant's
//! automation settings: `maxConcurrentRunsPerAutomation` on a workflows connection,
//! `automationsEnabled` on a v1 one.

use std::sync::Arc;

use kube::{
    ResourceExt,
    runtime::{controller::Action as Requeue, events::EventType},
};

use crate::{
    crd::{
        ConditionStatus, QlikAutomationSettings, QlikAutomationSettingsSpec,
        QlikAutomationSettingsStatus,
    },
    qlik::{Api, model::Settings},
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

    let wanted = wanted(&obj.spec, client.api()).map_err(Error::Unsupported)?;
    let mut observed = client.get_settings().await?;
    ctx.warn_if_deprecated(obj, &client).await;
    if let Some(fields) = update_needed(&wanted, &observed) {
        ctx.metrics.wrote("settings");
        observed = client.update_settings(&wanted).await?;
        ctx.event(obj, EventType::Normal, "Updated", "Update", fields)
            .await;
    }
    let old = obj.status.clone().unwrap_or_default();
    let (usage, usage_missing) = ctx.views.get(&client).tenant_usage();
    let generation = obj.metadata.generation;
    let status = QlikAutomationSettingsStatus {
        automations_enabled: observed.automations_enabled,
        max_concurrent_runs_per_automation: observed.max_concurrent_runs_per_automation,
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

/// The settings the spec asks of a tenant spoken to through generation `api`, or why they
/// cannot be asked there (naming the field and the generation): each generation has only its
/// own field, and a spec must not be half-applied.
fn wanted(spec: &QlikAutomationSettingsSpec, api: Api) -> Result<Settings, String> {
    match api {
        Api::V1 if spec.max_concurrent_runs_per_automation.is_some() => Err(
            "spec.maxConcurrentRunsPerAutomation is not supported by the v1 API: use a workflows connection (Secret key api: workflows) or remove the field".into(),
        ),
        Api::Workflows if spec.automations_enabled.is_some() => Err(
            "spec.automationsEnabled is not supported by the workflows API: it is v1's deprecated tenant switch; use a v1 connection (Secret key api: v1) or remove the field".into(),
        ),
        _ => Ok(Settings {
            automations_enabled: spec.automations_enabled,
            max_concurrent_runs_per_automation: spec.max_concurrent_runs_per_automation,
        }),
    }
}

/// What an update would change, as an Event note; `None` when the tenant already matches
/// every field the spec sets.
fn update_needed(wanted: &Settings, observed: &Settings) -> Option<String> {
    let mut changes = Vec::new();
    if let Some(enabled) = wanted.automations_enabled
        && observed.automations_enabled != Some(enabled)
    {
        changes.push(format!("automationsEnabled to {enabled}"));
    }
    if let Some(max) = wanted.max_concurrent_runs_per_automation
        && observed.max_concurrent_runs_per_automation != Some(max)
    {
        changes.push(format!("maxConcurrentRunsPerAutomation to {max}"));
    }
    (!changes.is_empty()).then(|| format!("set {}", changes.join(", ")))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(enabled: Option<bool>, max: Option<i64>) -> QlikAutomationSettingsSpec {
        QlikAutomationSettingsSpec {
            connection: None,
            automations_enabled: enabled,
            max_concurrent_runs_per_automation: max,
        }
    }

    #[test]
    fn each_generation_takes_only_its_own_field() {
        let v1 = wanted(&spec(Some(false), None), Api::V1).unwrap();
        assert_eq!(v1.automations_enabled, Some(false));
        let w = wanted(&spec(None, Some(4)), Api::Workflows).unwrap();
        assert_eq!(w.max_concurrent_runs_per_automation, Some(4));
        let refused = wanted(&spec(None, Some(4)), Api::V1).unwrap_err();
        assert!(
            refused
                .starts_with("spec.maxConcurrentRunsPerAutomation is not supported by the v1 API"),
            "{refused}"
        );
        let refused = wanted(&spec(Some(true), None), Api::Workflows).unwrap_err();
        assert!(
            refused.starts_with("spec.automationsEnabled is not supported by the workflows API"),
            "{refused}"
        );
        assert!(wanted(&spec(None, None), Api::V1).is_ok());
    }

    #[test]
    fn only_differing_set_fields_are_written() {
        let w = wanted(&spec(None, Some(4)), Api::Workflows).unwrap();
        let observed = Settings {
            automations_enabled: None,
            max_concurrent_runs_per_automation: Some(10),
        };
        assert_eq!(
            update_needed(&w, &observed).as_deref(),
            Some("set maxConcurrentRunsPerAutomation to 4")
        );
        let same = Settings {
            max_concurrent_runs_per_automation: Some(4),
            ..observed
        };
        assert_eq!(update_needed(&w, &same), None);
        assert_eq!(update_needed(&Settings::default(), &observed), None);
    }
}
