//! From a name on the command line to a client of the right tenant: the kubeconfig, the
//! QlikAutomation, its remote id, and its connection Secret.

use kube::{
    Api,
    config::{KubeConfigOptions, Kubeconfig},
};

use super::{PluginError, cli::GlobalArgs};
use crate::{
    connection::{self, Credentials},
    crd::{ConditionStatus, QlikAutomation},
    qlik::{ClientConfig, QlikClient},
};

/// The plural resource name, as RBAC rules and error messages spell it.
pub const RESOURCE: &str = "qlikautomations";

/// A connection to the cluster and the namespace commands work in.
#[derive(Clone)]
pub struct Cluster {
    /// The Kubernetes client.
    pub client: kube::Client,
    /// The namespace of the QlikAutomation.
    pub namespace: String,
    /// `(namespace, name)` of the Secret for objects without `spec.connection`.
    pub default_connection: Option<(String, String)>,
}

impl Cluster {
    /// Connects as the kubeconfig says: `--kubeconfig` or `$KUBECONFIG` or `~/.kube/config`
    /// (in-cluster when there is none), at `--context` or the current context.
    pub async fn connect(global: &GlobalArgs) -> Result<Cluster, PluginError> {
        crate::install_crypto_provider();
        let default_connection = parse_default_connection(global.default_connection.as_deref())?;
        let options = KubeConfigOptions {
            context: global.context.clone(),
            ..KubeConfigOptions::default()
        };
        let config = match (&global.kubeconfig, &global.context) {
            (Some(path), _) => {
                let file = Kubeconfig::read_from(path)
                    .map_err(|e| PluginError::Kubeconfig(format!("{}: {e}", path.display())))?;
                kube::Config::from_custom_kubeconfig(file, &options)
                    .await
                    .map_err(|e| PluginError::Kubeconfig(e.to_string()))?
            }
            (None, Some(_)) => kube::Config::from_kubeconfig(&options)
                .await
                .map_err(|e| PluginError::Kubeconfig(e.to_string()))?,
            // Same order as kubectl and the operator: kubeconfig, else in-cluster.
            (None, None) => kube::Config::infer()
                .await
                .map_err(|e| PluginError::Kubeconfig(e.to_string()))?,
        };
        let namespace = global
            .namespace
            .clone()
            .filter(|n| !n.is_empty())
            .unwrap_or_else(|| config.default_namespace.clone());
        let client =
            kube::Client::try_from(config).map_err(|e| PluginError::Kubeconfig(e.to_string()))?;
        Ok(Cluster {
            client,
            namespace,
            default_connection,
        })
    }

    /// The QlikAutomation API of the namespace.
    pub fn api(&self) -> Api<QlikAutomation> {
        Api::namespaced(self.client.clone(), &self.namespace)
    }

    /// Reads the QlikAutomation `name`.
    pub async fn automation(&self, name: &str) -> Result<QlikAutomation, PluginError> {
        self.api()
            .get_opt(name)
            .await
            .map_err(|e| PluginError::kube("get", RESOURCE, &self.namespace, e))?
            .ok_or_else(|| PluginError::NotFound {
                name: name.to_owned(),
                namespace: self.namespace.clone(),
            })
    }

    /// Reads the object's connection Secret and builds a client of its tenant.
    pub async fn tenant(&self, obj: &QlikAutomation) -> Result<Tenant, PluginError> {
        let credentials = connection::resolve(
            &self.client,
            &self.namespace,
            obj.spec.connection.as_ref(),
            self.default_connection.as_ref(),
        )
        .await
        .map_err(PluginError::Connection)?;
        Tenant::new(credentials)
    }

    /// Reads `name`, insists that it is linked to a remote automation, and connects to its
    /// tenant: what every command that talks to Qlik needs first.
    pub async fn target(&self, name: &str) -> Result<Target, PluginError> {
        let object = self.automation(name).await?;
        let automation_id = automation_id(&object, &self.namespace)?;
        let tenant = self.tenant(&object).await?;
        Ok(Target {
            object,
            automation_id,
            tenant,
        })
    }
}

/// A client of one tenant, and where its key came from (for error messages).
#[derive(Clone)]
pub struct Tenant {
    /// The client, with the project's rate limiter and retries.
    pub client: QlikClient,
    /// `namespace/name` of the Secret.
    pub secret: String,
}

impl Tenant {
    /// Builds the client for `credentials`.
    pub fn new(credentials: Credentials) -> Result<Tenant, PluginError> {
        let Credentials {
            tenant_url,
            credential,
            api,
            secret,
        } = credentials;
        let mut config = ClientConfig::new(tenant_url, credential);
        config.api = api;
        let client = QlikClient::new(config).map_err(|e| {
            PluginError::Connection(connection::ConnectionError::Invalid(format!(
                "Secret {secret}: {e}"
            )))
        })?;
        Ok(Tenant { client, secret })
    }
}

/// A QlikAutomation linked to a remote automation, and a client of its tenant.
pub struct Target {
    /// The object as read.
    pub object: QlikAutomation,
    /// `status.automationId`.
    pub automation_id: String,
    /// The tenant.
    pub tenant: Tenant,
}

/// The object's `status.automationId`, or an error that says why it may be missing.
pub fn automation_id(obj: &QlikAutomation, namespace: &str) -> Result<String, PluginError> {
    let status = obj.status.as_ref();
    if let Some(id) = status
        .and_then(|s| s.automation_id.clone())
        .filter(|id| !id.is_empty())
    {
        return Ok(id);
    }
    // The Ready condition usually explains it (Unauthorized, InvalidSpec, Suspended, ...).
    let hint = status
        .and_then(|s| s.conditions.iter().find(|c| c.type_ == "Ready"))
        .filter(|c| c.status != ConditionStatus::True)
        .map(|c| format!(": Ready is {:?} ({}): {}", c.status, c.reason, c.message))
        .unwrap_or_else(|| {
            ": the operator has not reconciled it yet (is the operator running and watching this namespace?)"
                .into()
        });
    Err(PluginError::NotCreated {
        name: obj.metadata.name.clone().unwrap_or_default(),
        namespace: namespace.to_owned(),
        hint,
    })
}

/// Parses `namespace/name`, as the operator's `--default-connection` does.
pub fn parse_default_connection(
    value: Option<&str>,
) -> Result<Option<(String, String)>, PluginError> {
    connection::parse_secret_ref(value).map_err(PluginError::Usage)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crd::{Condition, QlikAutomationStatus};

    fn object(status: Option<QlikAutomationStatus>) -> QlikAutomation {
        let mut obj: QlikAutomation = serde_json::from_value(serde_json::json!({
            "apiVersion": "automations.qlik.dev/v1alpha1",
            "kind": "QlikAutomation",
            "metadata": {"name": "nightly", "namespace": "team-a"},
            "spec": {}
        }))
        .unwrap();
        obj.status = status;
        obj
    }

    #[test]
    fn default_connection_is_namespace_slash_name() {
        assert_eq!(
            parse_default_connection(Some("ops/qlik")).unwrap(),
            Some(("ops".into(), "qlik".into()))
        );
        assert_eq!(parse_default_connection(None).unwrap(), None);
        assert_eq!(parse_default_connection(Some(" ")).unwrap(), None);
        for bad in ["qlik", "/qlik", "ops/", "a/b/c"] {
            assert!(parse_default_connection(Some(bad)).is_err(), "{bad}");
        }
    }

    #[test]
    fn a_missing_automation_id_is_explained_by_the_ready_condition() {
        let e = automation_id(&object(None), "team-a")
            .unwrap_err()
            .to_string();
        assert!(e.contains("no status.automationId"), "{e}");
        assert!(e.contains("operator has not reconciled"), "{e}");

        let status = QlikAutomationStatus {
            conditions: vec![Condition {
                type_: "Ready".into(),
                status: ConditionStatus::False,
                reason: "Unauthorized".into(),
                message: "the tenant refused the key".into(),
                observed_generation: None,
                last_transition_time: "2026-01-01T00:00:00Z".into(),
            }],
            ..QlikAutomationStatus::default()
        };
        let e = automation_id(&object(Some(status)), "team-a")
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("Unauthorized") && e.contains("refused the key"),
            "{e}"
        );

        let linked = QlikAutomationStatus {
            automation_id: Some("a-1".into()),
            ..QlikAutomationStatus::default()
        };
        assert_eq!(
            automation_id(&object(Some(linked)), "team-a").unwrap(),
            "a-1"
        );
    }
}
