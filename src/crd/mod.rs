//! The two custom resources, `QlikAutomation` and `QlikAutomationSettings`, and their CRDs.

pub mod automation;
pub mod common;
mod description;
pub mod settings;

pub use automation::{QlikAutomation, QlikAutomationSpec, QlikAutomationStatus};
pub use common::*;
pub use settings::{
    QlikAutomationSettings, QlikAutomationSettingsSpec, QlikAutomationSettingsStatus,
};

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::CustomResourceExt;

/// Both CRDs, with their descriptions reflowed into paragraphs.
///
/// The one way to get the CRDs: `crds/`, the chart, `demo` and the tests all go through it,
/// so none of them installs a schema that differs from the others.
pub fn crds() -> Vec<CustomResourceDefinition> {
    let mut crds = vec![QlikAutomation::crd(), QlikAutomationSettings::crd()];
    crds.iter_mut().for_each(description::normalise);
    crds
}

/// The YAML of both CRDs, as `qlik-automations-operator crds` prints and `crds/` holds.
pub fn crds_yaml() -> Result<String, serde_yaml::Error> {
    let mut out = String::new();
    for crd in crds() {
        out.push_str("---\n");
        out.push_str(&serde_yaml::to_string(&crd)?);
    }
    Ok(out)
}
