//! The plugin's one error type: every failure a user can meet, phrased as what to do next.

use std::process::ExitCode;

use crate::{
    connection::ConnectionError,
    qlik::{ErrorClass, QlikError},
};

/// Exit status of a failed command (usage errors exit 2, from clap).
pub const EXIT_ERROR: u8 = 1;
/// Exit status when a run that was waited for ended as `failed`, `stopped` or another
/// unsuccessful status.
pub const EXIT_RUN_UNSUCCESSFUL: u8 = 3;
/// Exit status when `--timeout` elapsed before the awaited change happened.
pub const EXIT_TIMEOUT: u8 = 4;
/// Exit status of `diff` when something would change (as `kubectl diff`).
pub const EXIT_DIFFERENCES: u8 = 1;
/// Exit status of `diff` on an error (`kubectl diff` exits above 1).
pub const EXIT_DIFF_ERROR: u8 = 2;

/// Why a `kubectl qlik` command failed. The Display text is what the user reads on stderr;
/// none of it ever contains the API key.
#[derive(Debug, thiserror::Error)]
pub enum PluginError {
    /// The kubeconfig could not be loaded or used.
    #[error("cannot load the kubeconfig: {0}")]
    Kubeconfig(String),
    /// The QlikAutomation does not exist (or its CRD is not installed).
    #[error(
        "qlikautomation {name:?} not found in namespace {namespace:?} (check the name and -n/--namespace)"
    )]
    NotFound {
        /// The object's name.
        name: String,
        /// Its namespace.
        namespace: String,
    },
    /// The object exists but the operator has not created or linked its remote automation.
    #[error(
        "qlikautomation {namespace}/{name} is not created in the tenant yet (no status.automationId){hint}"
    )]
    NotCreated {
        /// The object's name.
        name: String,
        /// Its namespace.
        namespace: String,
        /// What the Ready condition says, when there is one.
        hint: String,
    },
    /// A call to the Kubernetes API failed.
    #[error("{}", describe_kube(.verb, .resource, .namespace, .source))]
    Kube {
        /// The verb, e.g. `get` or `patch`.
        verb: &'static str,
        /// The plural resource, e.g. `qlikautomations`.
        resource: &'static str,
        /// The namespace.
        namespace: String,
        /// The Kubernetes error.
        source: kube::Error,
    },
    /// The connection Secret could not be read or is incomplete.
    #[error("{}", describe_connection(.0))]
    Connection(ConnectionError),
    /// The tenant refused or failed a call.
    #[error("{}", describe_qlik(.action, .secret, .source))]
    Tenant {
        /// What was attempted, e.g. `list runs of automation <id>`.
        action: String,
        /// `namespace/name` of the Secret the key came from.
        secret: String,
        /// The client's error (Qlik's detail and traceId included).
        source: QlikError,
    },
    /// A flag or argument is unusable.
    #[error("{0}")]
    Usage(String),
    /// Something awaited did not happen within `--timeout`.
    #[error("{0}")]
    Timeout(String),
    /// A run that was waited for did not end well.
    #[error("run {run_id} ended with status {status:?}{detail}")]
    RunUnsuccessful {
        /// The run's id.
        run_id: String,
        /// Its final status.
        status: String,
        /// The run's error, when Qlik gave one.
        detail: String,
    },
    /// A reconcile was handled but the object is not Ready.
    #[error("{0}")]
    NotReady(String),
    /// Writing the output failed.
    #[error("cannot write the output: {0}")]
    Output(#[from] std::io::Error),
    /// Encoding the output failed.
    #[error("cannot encode the output: {0}")]
    Encode(String),
    /// A local file, directory or command (`kubectl kustomize`) failed, or manifests are
    /// unreadable.
    #[error("{0}")]
    Local(String),
    /// `diff` found objects that applying the manifests would change.
    #[error("{0}")]
    Differences(String),
    /// `diff` could not compare everything: exit 2, as `kubectl diff` exits above 1.
    #[error("{0}")]
    DiffFailed(Box<PluginError>),
}

impl PluginError {
    /// The process exit status for this error.
    pub fn exit_code(&self) -> ExitCode {
        ExitCode::from(match self {
            PluginError::RunUnsuccessful { .. } => EXIT_RUN_UNSUCCESSFUL,
            PluginError::Timeout(_) => EXIT_TIMEOUT,
            PluginError::Differences(_) => EXIT_DIFFERENCES,
            PluginError::DiffFailed(_) => EXIT_DIFF_ERROR,
            _ => EXIT_ERROR,
        })
    }

    /// Wraps a Kubernetes error of `verb` on `resource` in `namespace`.
    pub fn kube(
        verb: &'static str,
        resource: &'static str,
        namespace: &str,
        source: kube::Error,
    ) -> PluginError {
        PluginError::Kube {
            verb,
            resource,
            namespace: namespace.to_owned(),
            source,
        }
    }

    /// Wraps a tenant error of `action`, naming the Secret the key came from.
    pub fn tenant(action: impl Into<String>, secret: &str, source: QlikError) -> PluginError {
        PluginError::Tenant {
            action: action.into(),
            secret: secret.to_owned(),
            source,
        }
    }
}

/// The HTTP status of a Kubernetes API error, when the apiserver answered.
fn api_status(error: &kube::Error) -> Option<u16> {
    match error {
        kube::Error::Api(status) => Some(status.code),
        _ => None,
    }
}

fn describe_kube(verb: &str, resource: &str, namespace: &str, source: &kube::Error) -> String {
    match api_status(source) {
        // Phrased like kubectl's own RBAC errors, plus the rule that is missing, because
        // that is what an admin has to add to a Role.
        Some(403) => format!(
            "cannot {verb} {resource} in namespace {namespace:?}: needs RBAC {verb} on {resource} ({source})"
        ),
        Some(401) => format!(
            "the Kubernetes API refused the credentials of the kubeconfig (401 Unauthorized): log in again ({source})"
        ),
        _ => format!("cannot {verb} {resource} in namespace {namespace:?}: {source}"),
    }
}

fn describe_connection(error: &ConnectionError) -> String {
    match error {
        ConnectionError::Read {
            namespace,
            name,
            source,
        } if api_status(source) == Some(403) => format!(
            "cannot get secrets in namespace {namespace:?}: needs RBAC get on secrets \
             (kubectl qlik reads the tenant URL and API key from Secret {namespace}/{name} itself)"
        ),
        ConnectionError::Read {
            namespace,
            name,
            source,
        } => format!("cannot read Secret {namespace}/{name}: {source}"),
        ConnectionError::Invalid(message) if message.contains("no default connection") => format!(
            "{message}: pass --default-connection NAMESPACE/NAME (or set QAO_DEFAULT_CONNECTION) \
             to the Secret the operator uses by default"
        ),
        ConnectionError::Invalid(message) => message.clone(),
    }
}

fn describe_qlik(action: &str, secret: &str, source: &QlikError) -> String {
    // QlikError's Display already carries Qlik's detail and traceId; add what to check.
    let hint = match source.class() {
        ErrorClass::Unauthorized => format!(
            ": the tenant refused the credentials from Secret {secret} (API key or OAuth client); check that they are valid"
        ),
        ErrorClass::Forbidden => format!(
            ": the user of the credentials in Secret {secret} may not do this; check its role or scope"
        ),
        ErrorClass::Unsupported => format!(
            ": the API generation Secret {secret} selects cannot do this; set its key api to workflows"
        ),
        ErrorClass::RateLimited => {
            ": the tenant's rate limit was reached; try again shortly".into()
        }
        _ => String::new(),
    };
    format!("the tenant refused to {action}: {source}{hint}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::qlik::Endpoint;

    fn forbidden() -> kube::Error {
        kube::Error::Api(
            kube::core::Status::failure("secrets \"qlik\" is forbidden", "Forbidden")
                .with_code(403)
                .boxed(),
        )
    }

    #[test]
    fn a_forbidden_secret_names_the_missing_permission() {
        let e = PluginError::Connection(ConnectionError::Read {
            namespace: "team-a".into(),
            name: "qlik".into(),
            source: forbidden(),
        });
        let text = e.to_string();
        assert!(
            text.contains("cannot get secrets in namespace \"team-a\": needs RBAC get on secrets"),
            "{text}"
        );
    }

    #[test]
    fn a_forbidden_patch_names_the_verb_and_resource() {
        let e = PluginError::kube("patch", "qlikautomations", "team-a", forbidden());
        assert!(
            e.to_string()
                .contains("needs RBAC patch on qlikautomations"),
            "{e}"
        );
    }

    #[test]
    fn tenant_errors_keep_qliks_trace_id() {
        let source = QlikError::from_response(
            Endpoint::ListRuns,
            401,
            br#"{"errors":[{"code":"HTTP-401","title":"Unauthorized"}],"traceId":"t-123"}"#,
            None,
        );
        let e = PluginError::tenant("list runs", "ns/qlik", source);
        let text = e.to_string();
        assert!(text.contains("traceId t-123"), "{text}");
        assert!(text.contains("Secret ns/qlik"), "{text}");
    }

    #[test]
    fn exit_codes_distinguish_failed_runs_and_timeouts() {
        let failed = PluginError::RunUnsuccessful {
            run_id: "r".into(),
            status: "failed".into(),
            detail: String::new(),
        };
        assert_eq!(failed.exit_code(), ExitCode::from(EXIT_RUN_UNSUCCESSFUL));
        assert_eq!(
            PluginError::Timeout("t".into()).exit_code(),
            ExitCode::from(EXIT_TIMEOUT)
        );
        assert_eq!(
            PluginError::Usage("u".into()).exit_code(),
            ExitCode::from(EXIT_ERROR)
        );
        let failed = PluginError::DiffFailed(Box::new(PluginError::Local("no such file".into())));
        assert_eq!(failed.exit_code(), ExitCode::from(EXIT_DIFF_ERROR));
        assert_eq!(failed.to_string(), "no such file");
        assert_eq!(
            PluginError::Differences("d".into()).exit_code(),
            ExitCode::from(EXIT_DIFFERENCES)
        );
    }
}
