//! Creating a remote without ever making two: the create intent recorded before the POST,
//! and the search for what an interrupted create made.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use futures::TryStreamExt;
use kube::{ResourceExt, runtime::events::EventType};

use crate::{
    crd::{ANNOTATION_AUTOMATION_ID, ANNOTATION_CREATE_PENDING, QlikAutomation},
    qlik::{
        Filter, ListParams, QlikClient,
        model::{Automation, AutomationState, AutomationSummary},
    },
};

use super::{
    super::{
        conditions::now_rfc3339,
        context::{Context, Error},
        decide,
        plan::Desired,
        view::TenantView,
    },
    converge::listed,
    metadata::{claim_of, patch_annotations},
};

/// How much earlier than the recorded intent a found automation may claim to have been
/// created and still count as ours: clocks of the operator and of Qlik differ a little.
const CLOCK_SKEW: chrono::Duration = chrono::Duration::seconds(120);

/// Creates the remote (or finds the one an earlier, interrupted attempt made) and links it.
///
/// The intent is recorded on the object before the POST, and the id right after it. A
/// create whose answer was lost leaves the intent behind; the next attempt then looks for an
/// automation with the same name (as the spec says now, or as the intent recorded it),
/// created after the intent and claimed by no other object, and adopts it instead of
/// creating a second one.
pub(super) async fn create_or_recover(
    ctx: &Context,
    obj: &QlikAutomation,
    client: &QlikClient,
    view: &Arc<TenantView>,
    desired: &Desired,
) -> Result<(String, Automation), Error> {
    if let Some(intent) = obj.annotations().get(ANNOTATION_CREATE_PENDING)
        && let Some(found) = find_own_create(ctx, obj, client, &desired.name, intent).await?
    {
        patch_annotations(
            ctx,
            obj,
            &[
                (ANNOTATION_AUTOMATION_ID, Some(found.id.clone())),
                (ANNOTATION_CREATE_PENDING, None),
            ],
        )
        .await?;
        let automation = client.get_automation(&found.id).await?;
        view.upsert(&automation);
        ctx.event(
            obj,
            EventType::Normal,
            "Recovered",
            "Create",
            format!(
                "found automation {} made by an interrupted create and linked it",
                found.id
            ),
        )
        .await;
        return Ok((found.id, automation));
    }

    // A key the tenant refuses is known from the view (cached for its max age): do not spend
    // a write finding out again.
    listed(ctx, obj, view, "").await?;
    let obj = patch_annotations(
        ctx,
        obj,
        &[(ANNOTATION_CREATE_PENDING, Some(intent_value(&desired.name)))],
    )
    .await?;
    let result = match &obj.spec.copy_from {
        Some(source) => {
            ctx.metrics.wrote("copy");
            match client.copy_automation(source, &desired.name).await {
                Ok(id) => client.get_automation(&id).await,
                Err(e) => Err(e),
            }
        }
        None => {
            ctx.metrics.wrote("create");
            let mut request = desired.create_request();
            if !desired.enabled {
                request.state = Some(AutomationState::Disabled);
            }
            client.create_automation(&request).await
        }
    };
    match result {
        Ok(automation) => {
            patch_annotations(
                ctx,
                &obj,
                &[
                    (ANNOTATION_AUTOMATION_ID, Some(automation.id.clone())),
                    (ANNOTATION_CREATE_PENDING, None),
                ],
            )
            .await?;
            view.upsert(&automation);
            let how = obj
                .spec
                .copy_from
                .as_ref()
                .map(|s| format!(" as a copy of {s}"))
                .unwrap_or_default();
            ctx.event(
                &obj,
                EventType::Normal,
                "Created",
                "Create",
                format!("created automation {}{how}", automation.id),
            )
            .await;
            Ok((automation.id.clone(), automation))
        }
        Err(e) if e.is_ambiguous() => {
            // Keep the intent: the next attempt looks before it creates again.
            Err(e.into())
        }
        Err(e) => {
            patch_annotations(ctx, &obj, &[(ANNOTATION_CREATE_PENDING, None)]).await?;
            Err(e.into())
        }
    }
}

/// The value of the create intent: when it was recorded and the name the create is sent
/// with (`<RFC 3339 time> <name>`), so that a create whose answer was lost is found again
/// even when the object is renamed before the operator looks.
fn intent_value(name: &str) -> String {
    format!("{} {name}", now_rfc3339())
}

/// The time and, when recorded, the name of a create intent (a bare time is accepted too).
fn parse_intent(intent: &str) -> (DateTime<Utc>, Option<&str>) {
    let (time, name) = match intent.split_once(' ') {
        Some((time, name)) => (time, Some(name)),
        None => (intent, None),
    };
    let at = DateTime::parse_from_rfc3339(time)
        .map(|t| t.with_timezone(&Utc))
        .unwrap_or(DateTime::<Utc>::MIN_UTC);
    (at, name)
}

/// The automation an interrupted create of this object made, if any: named as the spec now
/// says or as it said when the create was sent.
pub(super) async fn find_own_create(
    ctx: &Context,
    obj: &QlikAutomation,
    client: &QlikClient,
    name: &str,
    intent: &str,
) -> Result<Option<AutomationSummary>, Error> {
    let (intent_at, intent_name) = parse_intent(intent);
    let filter = match intent_name.filter(|n| *n != name) {
        Some(sent_as) => Filter::eq("name", name).or(Filter::eq("name", sent_as)),
        None => Filter::eq("name", name),
    };
    let candidates: Vec<AutomationSummary> = client
        .list_automations(&ListParams::default().filter(filter).limit(200))
        .try_collect()
        .await?;
    let mut found: Vec<AutomationSummary> = candidates
        .into_iter()
        .filter(|a| {
            a.created_at
                .as_deref()
                .and_then(|t| DateTime::parse_from_rfc3339(t).ok())
                .is_some_and(|t| t.with_timezone(&Utc) + CLOCK_SKEW >= intent_at)
        })
        .filter(|a| {
            !decide::claimed_by_other(
                &claim_of(obj),
                ctx.claimants(&a.id).iter().map(|o| claim_of(o)),
                &a.id,
            )
        })
        .collect();
    found.sort_by(|a, b| a.created_at.cmp(&b.created_at));
    Ok(found.into_iter().next())
}

#[cfg(test)]
mod intent_tests {
    use super::*;

    #[test]
    fn the_intent_records_time_and_name_and_old_values_still_parse() {
        let value = intent_value("Nightly load (v2)");
        let (at, name) = parse_intent(&value);
        assert_eq!(name, Some("Nightly load (v2)"));
        assert!((Utc::now() - at).num_seconds().abs() < 5, "{value}");
        let (at, name) = parse_intent("2026-01-02T03:04:05Z");
        assert_eq!(at.to_rfc3339(), "2026-01-02T03:04:05+00:00");
        assert_eq!(name, None);
        assert_eq!(parse_intent("garbage").0, DateTime::<Utc>::MIN_UTC);
    }
}
