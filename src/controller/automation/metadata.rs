//! The object's own metadata the reconciler reads and writes: the link to its remote, the
//! finalizer, and guarded annotation patches.

use kube::{
    Api, ResourceExt,
    api::{Patch, PatchParams},
};
use serde_json::{Value, json};

use crate::crd::{ANNOTATION_AUTOMATION_ID, FINALIZER, QlikAutomation};

use super::super::{context::Context, context::Error, decide::Claim};

pub(super) fn api(ctx: &Context, obj: &QlikAutomation) -> Api<QlikAutomation> {
    Api::namespaced(ctx.kube.clone(), &obj.namespace().unwrap_or_default())
}

/// The remote automation id the object is linked to: the annotation wins over status, since
/// a user sets it to adopt and the operator writes it right after a create.
pub(super) fn linked_id(obj: &QlikAutomation) -> Option<String> {
    obj.annotations()
        .get(ANNOTATION_AUTOMATION_ID)
        .filter(|s| !s.trim().is_empty())
        .map(|s| s.trim().to_owned())
        .or_else(|| obj.status.as_ref()?.automation_id.clone())
}

/// Merges annotation changes (`None` removes) into the object, guarded by its
/// resourceVersion so two writers cannot both think they recorded an intent.
pub(super) async fn patch_annotations(
    ctx: &Context,
    obj: &QlikAutomation,
    changes: &[(&str, Option<String>)],
) -> Result<QlikAutomation, Error> {
    let annotations: serde_json::Map<String, Value> = changes
        .iter()
        .map(|(k, v)| {
            (
                (*k).to_owned(),
                v.clone().map_or(Value::Null, Value::String),
            )
        })
        .collect();
    Ok(patch_metadata(ctx, obj, json!({ "annotations": annotations })).await?)
}

/// Merges `metadata` into the object, guarded by the resourceVersion it was read at, so two
/// writers cannot both think they recorded an intent or a finalizer.
async fn patch_metadata(
    ctx: &Context,
    obj: &QlikAutomation,
    mut metadata: Value,
) -> Result<QlikAutomation, kube::Error> {
    metadata["resourceVersion"] = json!(obj.resource_version());
    api(ctx, obj)
        .patch(
            &obj.name_any(),
            &PatchParams::default(),
            &Patch::Merge(&json!({ "metadata": metadata })),
        )
        .await
}

pub(super) async fn ensure_finalizer(
    ctx: &Context,
    obj: &QlikAutomation,
) -> Result<QlikAutomation, Error> {
    if obj.finalizers().iter().any(|f| f == FINALIZER) {
        return Ok(obj.clone());
    }
    let mut finalizers = obj.finalizers().to_vec();
    finalizers.push(FINALIZER.to_owned());
    Ok(patch_metadata(ctx, obj, json!({ "finalizers": finalizers })).await?)
}

pub(super) async fn remove_finalizer(ctx: &Context, obj: &QlikAutomation) -> Result<(), Error> {
    let finalizers: Vec<String> = obj
        .finalizers()
        .iter()
        .filter(|f| *f != FINALIZER)
        .cloned()
        .collect();
    match patch_metadata(ctx, obj, json!({ "finalizers": finalizers })).await {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(e)) if e.code == 404 => Ok(()),
        Err(e) => Err(e.into()),
    }
}

/// The remote id the object links to, borrowed: the annotation (trimmed) wins over status.
pub(crate) fn linked_str(obj: &QlikAutomation) -> Option<&str> {
    obj.metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(ANNOTATION_AUTOMATION_ID))
        .map(|s| s.trim())
        .filter(|s| !s.is_empty())
        .or_else(|| obj.status.as_ref()?.automation_id.as_deref())
}

/// The object's claim on its remote, for the conflict rules in [`super::super::decide`].
pub(super) fn claim_of(obj: &QlikAutomation) -> Claim<'_> {
    Claim::of(&obj.metadata, linked_str(obj))
}
