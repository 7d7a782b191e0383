//! Resolving a resource's connection to a tenant URL and API key, from a Secret.
//!
//! Shared by the reconcilers and the kubectl plugin, so both read Secrets the same way and
//! refuse the same things.

use k8s_openapi::api::core::v1::Secret;
use kube::Api;

use crate::{
    crd::{Connection, SECRET_KEY_API_KEY, SECRET_KEY_TENANT_URL},
    qlik::ApiKey,
};

/// Why a connection could not be resolved.
#[derive(Debug, thiserror::Error)]
pub enum ConnectionError {
    /// Reading the Secret failed (including 403 when the caller may not read Secrets).
    #[error("cannot read Secret {namespace}/{name}: {source}")]
    Read {
        /// Secret namespace.
        namespace: String,
        /// Secret name.
        name: String,
        /// The Kubernetes error.
        source: kube::Error,
    },
    /// The Secret is missing, incomplete, or no connection was configured.
    #[error("{0}")]
    Invalid(String),
}

/// Recently read connection Secrets, so that a periodic reconcile of a converged object does
/// not cost a Secret read each time. The Secret watch drops an entry as soon as its Secret
/// changes; the time limit covers Secrets outside the watched namespaces.
#[derive(Debug, Default)]
pub struct CredentialCache {
    entries: std::sync::Mutex<
        std::collections::HashMap<(String, String), (tokio::time::Instant, Credentials)>,
    >,
}

/// How long a cached Secret is trusted without a change notice.
const CREDENTIAL_TTL: std::time::Duration = std::time::Duration::from_secs(60);

impl CredentialCache {
    /// The cached credentials of `namespace/name`, if read recently.
    pub fn get(&self, namespace: &str, name: &str) -> Option<Credentials> {
        let entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        entries
            .get(&(namespace.to_owned(), name.to_owned()))
            .filter(|(at, _)| at.elapsed() < CREDENTIAL_TTL)
            .map(|(_, c)| c.clone())
    }

    /// Remembers what `namespace/name` held.
    pub fn put(&self, namespace: &str, name: &str, credentials: Credentials) {
        let mut entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        entries.insert(
            (namespace.to_owned(), name.to_owned()),
            (tokio::time::Instant::now(), credentials),
        );
    }

    /// Forgets `namespace/name` (it changed or went away).
    pub fn invalidate(&self, namespace: &str, name: &str) {
        let mut entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        entries.remove(&(namespace.to_owned(), name.to_owned()));
    }
}

/// Parses a `namespace/name` Secret reference (the operator's and the plugin's
/// `--default-connection`); empty means none.
pub fn parse_secret_ref(value: Option<&str>) -> Result<Option<(String, String)>, String> {
    match value.map(str::trim).filter(|v| !v.is_empty()) {
        None => Ok(None),
        Some(v) => match v.split_once('/') {
            Some((ns, name)) if !ns.is_empty() && !name.is_empty() && !name.contains('/') => {
                Ok(Some((ns.to_owned(), name.to_owned())))
            }
            _ => Err(format!(
                "--default-connection must be NAMESPACE/NAME, got {v:?}"
            )),
        },
    }
}

/// The tenant URL and key of a connection.
#[derive(Debug, Clone)]
pub struct Credentials {
    /// The tenant URL as written in the Secret.
    pub tenant_url: String,
    /// The API key.
    pub api_key: ApiKey,
    /// `namespace/name` of the Secret they came from.
    pub secret: String,
}

/// Reads the Secret a resource in `namespace` points at: its own `connection` (always in its
/// own namespace), else the operator's `default` (`namespace`, `name`).
pub async fn resolve(
    kube: &kube::Client,
    namespace: &str,
    connection: Option<&Connection>,
    default: Option<&(String, String)>,
) -> Result<Credentials, ConnectionError> {
    let (secret_ns, secret_name) = secret_of(namespace, connection, default)?;
    read_secret(kube, &secret_ns, &secret_name).await
}

/// Which Secret (`namespace`, `name`) a resource in `namespace` uses.
pub fn secret_of(
    namespace: &str,
    connection: Option<&Connection>,
    default: Option<&(String, String)>,
) -> Result<(String, String), ConnectionError> {
    match (connection, default) {
        (Some(c), _) => Ok((namespace.to_owned(), c.secret_ref.name.clone())),
        (None, Some((ns, name))) => Ok((ns.clone(), name.clone())),
        (None, None) => Err(ConnectionError::Invalid(
            "spec.connection is not set and the operator has no default connection".into(),
        )),
    }
}

/// Reads `tenantUrl` and `apiKey` from the Secret `secret_ns/secret_name`.
pub async fn read_secret(
    kube: &kube::Client,
    secret_ns: &str,
    secret_name: &str,
) -> Result<Credentials, ConnectionError> {
    let secrets: Api<Secret> = Api::namespaced(kube.clone(), secret_ns);
    let secret = secrets
        .get_opt(secret_name)
        .await
        .map_err(|source| ConnectionError::Read {
            namespace: secret_ns.to_owned(),
            name: secret_name.to_owned(),
            source,
        })?
        .ok_or_else(|| {
            ConnectionError::Invalid(format!("Secret {secret_ns}/{secret_name} does not exist"))
        })?;
    let read = |key: &str| -> Result<String, ConnectionError> {
        let value = secret
            .data
            .as_ref()
            .and_then(|d| d.get(key))
            .map(|v| String::from_utf8_lossy(&v.0).trim().to_owned())
            .or_else(|| {
                secret
                    .string_data
                    .as_ref()
                    .and_then(|d| d.get(key))
                    .map(|v| v.trim().to_owned())
            });
        match value {
            Some(v) if !v.is_empty() => Ok(v),
            _ => Err(ConnectionError::Invalid(format!(
                "Secret {secret_ns}/{secret_name} has no key {key:?}"
            ))),
        }
    };
    Ok(Credentials {
        tenant_url: read(SECRET_KEY_TENANT_URL)?,
        api_key: ApiKey::new(read(SECRET_KEY_API_KEY)?),
        secret: format!("{secret_ns}/{secret_name}"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secret_refs_are_namespace_slash_name() {
        assert_eq!(
            parse_secret_ref(Some("ops/qlik")).unwrap(),
            Some(("ops".into(), "qlik".into()))
        );
        assert_eq!(parse_secret_ref(None).unwrap(), None);
        assert_eq!(parse_secret_ref(Some(" ")).unwrap(), None);
        for bad in ["qlik", "/qlik", "ops/", "a/b/c"] {
            assert!(parse_secret_ref(Some(bad)).is_err(), "{bad}");
        }
    }
}
