//! The desired remote state: the spec with its references (`workspaceFrom`) resolved from
//! the cluster. The resolution rules themselves are pure ([`plan::workspace_from_data`],
//! [`plan::desired`]) and shared with `kubectl qlik diff`.

use k8s_openapi::api::core::v1::ConfigMap;
use kube::{Api, ResourceExt};

use crate::crd::QlikAutomation;

use super::super::{
    context::{Context, Error},
    plan::{self, Desired},
};

/// The spec of `obj` with `workspaceFrom` read from its ConfigMap.
pub(super) async fn desired_state(ctx: &Context, obj: &QlikAutomation) -> Result<Desired, Error> {
    let resolved = match (&obj.spec.workspace, &obj.spec.workspace_from) {
        (None, Some(from)) => {
            let r = &from.config_map_key_ref;
            let ns = obj.namespace().unwrap_or_default();
            let maps: Api<ConfigMap> = Api::namespaced(ctx.kube.clone(), &ns);
            let map = maps.get_opt(&r.name).await?;
            let data = map.as_ref().map(|m| m.data.clone().unwrap_or_default());
            Some(plan::workspace_from_data(&ns, r, data.as_ref()).map_err(Error::InvalidSpec)?)
        }
        _ => None,
    };
    Ok(plan::desired(obj, resolved))
}
