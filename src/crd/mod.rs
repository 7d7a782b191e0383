//! The two custom resources, `QlikAutomation` and `QlikAutomationSettings`, and their CRDs.

pub mod automation;
pub mod common;
pub mod settings;

pub use automation::{QlikAutomation, QlikAutomationSpec, QlikAutomationStatus};
pub use common::*;
pub use settings::{
    QlikAutomationSettings, QlikAutomationSettingsSpec, QlikAutomationSettingsStatus,
};

use kube::CustomResourceExt;

/// The YAML of both CRDs, as `qlik-automations-operator crds` prints and `crds/` holds.
pub fn crds_yaml() -> Result<String, serde_yaml::Error> {
    let mut out = String::new();
    for crd in [QlikAutomation::crd(), QlikAutomationSettings::crd()] {
        out.push_str("---\n");
        out.push_str(&serde_yaml::to_string(&crd)?);
    }
    Ok(out)
}
