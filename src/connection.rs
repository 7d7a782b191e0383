//! Resolving a resource's connection to a tenant URL, an identity (API key or OAuth2 M2M
//! client) and an API generation, from a Secret.
//!
//! Shared by the reconcilers and the kubectl plugin, so both read Secrets the same way and
//! refuse the same things.

use k8s_openapi::api::core::v1::Secret;
use kube::Api as KubeApi;

use crate::{
    crd::{
        Connection, SECRET_KEY_API, SECRET_KEY_API_KEY, SECRET_KEY_CLIENT_ID,
        SECRET_KEY_CLIENT_SECRET, SECRET_KEY_SCOPE, SECRET_KEY_TENANT_URL,
    },
    qlik::{Api, ApiKey, Credential, OAuthClient, Redacted, auth::DEFAULT_SCOPE},
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

/// The tenant URL, identity and API generation of a connection.
#[derive(Debug, Clone)]
pub struct Credentials {
    /// The tenant URL as written in the Secret.
    pub tenant_url: String,
    /// The API key or OAuth client.
    pub credential: Credential,
    /// The API generation to speak.
    pub api: Api,
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

/// Reads the connection in the Secret `secret_ns/secret_name` (see [`credentials_from`]).
pub async fn read_secret(
    kube: &kube::Client,
    secret_ns: &str,
    secret_name: &str,
) -> Result<Credentials, ConnectionError> {
    let secrets: KubeApi<Secret> = KubeApi::namespaced(kube.clone(), secret_ns);
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
    // `data` wins over `stringData`, as the apiserver merges them.
    let mut values = std::collections::BTreeMap::new();
    for (key, value) in secret.string_data.unwrap_or_default() {
        values.insert(key, value);
    }
    for (key, value) in secret.data.unwrap_or_default() {
        values.insert(key, String::from_utf8_lossy(&value.0).into_owned());
    }
    credentials_from(&values, &format!("{secret_ns}/{secret_name}"))
}

/// The connection a Secret's decoded `values` describe: `tenantUrl`, then either `apiKey` or
/// `clientId` + `clientSecret` (+ `scope`), and optionally `api` (`workflows`, the default,
/// or `v1`). Errors name the Secret and the key, never a value.
pub fn credentials_from(
    values: &std::collections::BTreeMap<String, String>,
    secret: &str,
) -> Result<Credentials, ConnectionError> {
    let get = |key: &str| {
        values
            .get(key)
            .map(|v| v.trim().to_owned())
            .filter(|v| !v.is_empty())
    };
    let invalid = |why: String| Err(ConnectionError::Invalid(format!("Secret {secret} {why}")));
    let Some(tenant_url) = get(SECRET_KEY_TENANT_URL) else {
        return invalid(format!("has no key {SECRET_KEY_TENANT_URL:?}"));
    };
    let oauth = (get(SECRET_KEY_CLIENT_ID), get(SECRET_KEY_CLIENT_SECRET));
    let credential = match (get(SECRET_KEY_API_KEY), oauth) {
        (Some(_), (Some(_), _) | (_, Some(_))) => {
            return invalid(format!(
                "has both {SECRET_KEY_API_KEY:?} and an OAuth client: keep one"
            ));
        }
        (Some(key), _) => Credential::ApiKey(ApiKey::new(key)),
        (None, (Some(client_id), Some(client_secret))) => Credential::OAuth(OAuthClient {
            client_id,
            client_secret: Redacted::new(client_secret),
            scope: get(SECRET_KEY_SCOPE).unwrap_or_else(|| DEFAULT_SCOPE.to_owned()),
        }),
        (None, (Some(_), None)) => {
            return invalid(format!(
                "has {SECRET_KEY_CLIENT_ID:?} but no {SECRET_KEY_CLIENT_SECRET:?}"
            ));
        }
        (None, (None, Some(_))) => {
            return invalid(format!(
                "has {SECRET_KEY_CLIENT_SECRET:?} but no {SECRET_KEY_CLIENT_ID:?}"
            ));
        }
        (None, (None, None)) => {
            return invalid(format!(
                "has no key {SECRET_KEY_API_KEY:?} (or {SECRET_KEY_CLIENT_ID:?} and {SECRET_KEY_CLIENT_SECRET:?})"
            ));
        }
    };
    let api = match get(SECRET_KEY_API) {
        None => Api::default(),
        Some(value) => match value.parse::<Api>() {
            Ok(api) => api,
            Err(e) => return invalid(format!("key {SECRET_KEY_API:?}: {e}")),
        },
    };
    Ok(Credentials {
        tenant_url,
        credential,
        api,
        secret: secret.to_owned(),
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

    fn secret(pairs: &[(&str, &str)]) -> Result<Credentials, String> {
        let values = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        credentials_from(&values, "ops/qlik").map_err(|e| e.to_string())
    }

    #[test]
    fn a_secret_holds_an_api_key_or_an_oauth_client_and_a_generation() {
        let t = ("tenantUrl", "https://t.example.com");
        let key = secret(&[t, ("apiKey", " k1 ")]).unwrap();
        assert_eq!(key.credential, Credential::ApiKey(ApiKey::new("k1")));
        assert_eq!(key.api, Api::Workflows);
        let bot = secret(&[t, ("clientId", "c1"), ("clientSecret", "s1"), ("api", "v1")]).unwrap();
        assert_eq!(
            bot.credential,
            Credential::OAuth(OAuthClient {
                client_id: "c1".into(),
                client_secret: Redacted::new("s1"),
                scope: "admin.automations".into(),
            })
        );
        assert_eq!(bot.api, Api::V1);
        let scoped = secret(&[
            t,
            ("clientId", "c1"),
            ("clientSecret", "s1"),
            ("scope", "x y"),
        ]);
        assert!(matches!(scoped.unwrap().credential, Credential::OAuth(c) if c.scope == "x y"));
    }

    #[test]
    fn a_bad_secret_is_named_without_its_values() {
        let t = ("tenantUrl", "https://t.example.com");
        for (pairs, expected) in [
            (vec![("apiKey", "k-value")], "no key \"tenantUrl\""),
            (vec![t], "no key \"apiKey\""),
            (
                vec![t, ("apiKey", "k-value"), ("clientId", "c")],
                "keep one",
            ),
            (vec![t, ("clientId", "c")], "no \"clientSecret\""),
            (vec![t, ("clientSecret", "s-value")], "no \"clientId\""),
            (vec![t, ("apiKey", "k-value"), ("api", "v2")], "\"api\""),
        ] {
            let text = secret(&pairs).unwrap_err();
            assert!(
                text.contains("ops/qlik") && text.contains(expected),
                "{text}"
            );
            assert!(
                !text.contains("k-value") && !text.contains("s-value"),
                "{text}"
            );
        }
    }
}
