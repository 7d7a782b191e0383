//! The Automations API client: one method per endpoint of the reference.

use std::{fmt, sync::Arc, time::Duration};

use bytes::Bytes;
use futures::{Stream, TryStreamExt, stream};
use serde::{Serialize, de::DeserializeOwned};
use serde_json::Value;
use url::Url;

use super::{
    endpoint::Endpoint,
    error::QlikError,
    filter::Filter,
    model::{
        Automation, AutomationRequest, AutomationSummary, CopyRequest, CreatedId, ExportedRun,
        MoveRequest, Page, Run, RunRequest, Settings, UsageEntry, UsageList,
    },
    query::ListParams,
    ratelimit::{RateLimiter, RateLimits},
    retry::{Decision, RetryPolicy},
};

/// An API key: a credential, so neither `Debug` nor `Display` shows it.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct ApiKey(String);

impl ApiKey {
    /// Wraps a key.
    pub fn new(key: impl Into<String>) -> ApiKey {
        ApiKey(key.into())
    }

    /// The key itself, for the one place that sends it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for ApiKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ApiKey(<redacted>)")
    }
}

impl fmt::Display for ApiKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

/// Everything needed to build a client for one tenant and key.
#[derive(Debug, Clone)]
pub struct ClientConfig {
    /// The tenant URL, e.g. `https://acme.eu.qlikcloud.com` (a trailing `/api` is accepted).
    pub tenant_url: String,
    /// The API key.
    pub api_key: ApiKey,
    /// Limit on one request, connection and body included.
    pub request_timeout: Duration,
    /// Limit on establishing a connection.
    pub connect_timeout: Duration,
    /// Retries of failed calls.
    pub retry: RetryPolicy,
    /// The tier limits for the limiter this client creates (ignored by
    /// [`QlikClient::with_limiter`]).
    pub rate_limits: RateLimits,
    /// Skip TLS certificate verification. Dangerous: only for test tenants behind
    /// self-signed certificates.
    pub insecure_skip_tls_verify: bool,
}

impl ClientConfig {
    /// Defaults for a tenant and key: 30 s requests, 10 s connects, Qlik's tier limits.
    pub fn new(tenant_url: impl Into<String>, api_key: ApiKey) -> ClientConfig {
        ClientConfig {
            tenant_url: tenant_url.into(),
            api_key,
            request_timeout: Duration::from_secs(30),
            connect_timeout: Duration::from_secs(10),
            retry: RetryPolicy::default(),
            rate_limits: RateLimits::default(),
            insecure_skip_tls_verify: false,
        }
    }
}

/// The longest `Retry-After` believed: a larger (or absurd, e.g. `u64::MAX`) value from a
/// misbehaving tenant or proxy must neither overflow a clock nor block a tier for years.
pub const MAX_RETRY_AFTER: Duration = Duration::from_secs(3600);

/// Parses a tenant URL into the API base (`https://host/api/`).
pub fn api_base(tenant_url: &str) -> Result<Url, QlikError> {
    let trimmed = tenant_url.trim().trim_end_matches('/');
    let trimmed = trimmed.strip_suffix("/api").unwrap_or(trimmed);
    let url = Url::parse(&format!("{trimmed}/api/"))
        .map_err(|e| QlikError::Invalid(format!("tenant URL {trimmed:?} is not a URL: {e}")))?;
    if !matches!(url.scheme(), "https" | "http") || url.host_str().is_none() {
        return Err(QlikError::Invalid(format!(
            "tenant URL {trimmed:?} must be an http(s) URL with a host"
        )));
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err(QlikError::Invalid(format!(
            "tenant URL {trimmed:?} must not have a query or fragment"
        )));
    }
    Ok(url)
}

/// Query of `GET /v1/automations/usage`.
#[derive(Debug, Clone, PartialEq)]
pub struct UsageQuery {
    /// Required filter on `date` and `name`, e.g. `date ge "2026-11-01"`.
    pub filter: Filter,
    /// `automation` to split the values per automation.
    pub breakdown_by: Option<String>,
}

/// A client of one tenant's Automations API, as one user (API key).
///
/// Cheap to clone; clones share the connection pool and the rate limiter.
#[derive(Clone)]
pub struct QlikClient {
    http: reqwest::Client,
    base: Url,
    key: ApiKey,
    limiter: Arc<RateLimiter>,
    retry: RetryPolicy,
}

impl fmt::Debug for QlikClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("QlikClient")
            .field("base", &self.base.as_str())
            .field("key", &self.key)
            .finish_non_exhaustive()
    }
}

impl QlikClient {
    /// A client with a limiter of its own.
    pub fn new(config: ClientConfig) -> Result<QlikClient, QlikError> {
        let limiter = Arc::new(RateLimiter::new(config.rate_limits));
        QlikClient::with_limiter(config, limiter)
    }

    /// A client that shares `limiter` with every other user of the same tenant and key.
    pub fn with_limiter(
        config: ClientConfig,
        limiter: Arc<RateLimiter>,
    ) -> Result<QlikClient, QlikError> {
        crate::install_crypto_provider();
        let base = api_base(&config.tenant_url)?;
        if config.api_key.expose().trim().is_empty() {
            return Err(QlikError::Invalid("the API key is empty".into()));
        }
        if config.insecure_skip_tls_verify {
            tracing::warn!(
                tenant = %base.origin().ascii_serialization(),
                "TLS certificate verification is OFF for this tenant: anyone on the network path can read the API key"
            );
        }
        let http = reqwest::Client::builder()
            .timeout(config.request_timeout)
            .connect_timeout(config.connect_timeout)
            .pool_idle_timeout(Duration::from_secs(60))
            .user_agent(concat!(
                "qlik-automations-operator/",
                env!("CARGO_PKG_VERSION")
            ))
            .tls_danger_accept_invalid_certs(config.insecure_skip_tls_verify)
            .build()
            .map_err(|e| QlikError::Invalid(format!("cannot build the HTTP client: {e}")))?;
        Ok(QlikClient {
            http,
            base,
            key: config.api_key,
            limiter,
            retry: config.retry,
        })
    }

    /// The API base URL (`https://host/api/`).
    pub fn base(&self) -> &Url {
        &self.base
    }

    /// A stable identity of the tenant and user this client speaks for, without the key:
    /// the API base plus a short digest of the key.
    pub fn identity(&self) -> String {
        use sha2::{Digest, Sha256};
        let digest = Sha256::digest(self.key.expose().as_bytes());
        let short: String = digest.iter().take(8).map(|b| format!("{b:02x}")).collect();
        format!("{}#{short}", self.base)
    }

    /// The shared rate limiter.
    pub fn limiter(&self) -> &Arc<RateLimiter> {
        &self.limiter
    }

    /// The URL of `v1/automations` followed by `segments`, each percent-encoded, so an id
    /// taken from a manifest can never change which endpoint is called.
    fn url(&self, segments: &[&str]) -> Url {
        let mut url = self.base.clone();
        if let Ok(mut path) = url.path_segments_mut() {
            path.pop_if_empty()
                .extend(["v1", "automations"])
                .extend(segments);
        }
        url
    }

    /// Sends one call, retrying as the policy allows; returns the body of a 2xx answer.
    async fn execute(
        &self,
        endpoint: Endpoint,
        url: Url,
        body: Option<Vec<u8>>,
        authenticated: bool,
    ) -> Result<Bytes, QlikError> {
        // Unauthenticated calls are downloads of pre-signed URLs, always GETs.
        let method = if authenticated {
            endpoint.method().as_http()
        } else {
            reqwest::Method::GET
        };
        let mut attempt = 1;
        loop {
            if authenticated {
                self.limiter.acquire(endpoint.tier()).await;
            }
            let error = match self
                .send_once(
                    endpoint,
                    method.clone(),
                    &url,
                    body.as_deref(),
                    authenticated,
                )
                .await
            {
                Ok(bytes) => return Ok(bytes),
                Err(e) => e,
            };
            if let QlikError::RateLimited { retry_after, .. } = &error {
                self.limiter.block(
                    endpoint.tier(),
                    retry_after.unwrap_or(Duration::from_secs(1)),
                );
            }
            match self.retry.decide(endpoint, attempt, &error) {
                Decision::GiveUp => return Err(error),
                Decision::RetryAfter(wait) => {
                    tracing::debug!(%endpoint, attempt, ?wait, error = %error, "retrying Qlik call");
                    // After a 429 the limiter already holds the tier; sleeping here too would
                    // only add the wait twice.
                    if !matches!(error, QlikError::RateLimited { .. }) {
                        tokio::time::sleep(wait).await;
                    }
                    attempt += 1;
                }
            }
        }
    }

    async fn send_once(
        &self,
        endpoint: Endpoint,
        method: reqwest::Method,
        url: &Url,
        body: Option<&[u8]>,
        authenticated: bool,
    ) -> Result<Bytes, QlikError> {
        let mut request = self.http.request(method, url.clone());
        if authenticated {
            request = request.bearer_auth(self.key.expose());
        }
        if let Some(body) = body {
            request = request
                .header(reqwest::header::CONTENT_TYPE, "application/json")
                .body(body.to_vec());
        }
        let response = request
            .send()
            .await
            .map_err(|e| transport_error(endpoint, e))?;
        let status = response.status().as_u16();
        let retry_after = response
            .headers()
            .get(reqwest::header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok())
            .map(|secs| Duration::from_secs(secs).min(MAX_RETRY_AFTER));
        let bytes = response
            .bytes()
            .await
            .map_err(|e| transport_error(endpoint, e))?;
        if (200..300).contains(&status) {
            Ok(bytes)
        } else {
            Err(QlikError::from_response(
                endpoint,
                status,
                &bytes,
                retry_after,
            ))
        }
    }

    async fn call<T: DeserializeOwned>(
        &self,
        endpoint: Endpoint,
        url: Url,
        body: Option<&impl Serialize>,
    ) -> Result<T, QlikError> {
        let body = body
            .map(serde_json::to_vec)
            .transpose()
            .map_err(|e| QlikError::Invalid(format!("cannot encode the request: {e}")))?;
        let bytes = self.execute(endpoint, url, body, true).await?;
        decode(endpoint, &bytes)
    }

    async fn call_empty(
        &self,
        endpoint: Endpoint,
        url: Url,
        body: Option<&impl Serialize>,
    ) -> Result<(), QlikError> {
        let body = body
            .map(serde_json::to_vec)
            .transpose()
            .map_err(|e| QlikError::Invalid(format!("cannot encode the request: {e}")))?;
        self.execute(endpoint, url, body, true).await.map(drop)
    }

    /// Fetches one page from an absolute `links.next.href`/`links.prev.href`.
    ///
    /// The href must point at this tenant: following a link elsewhere would hand the API key
    /// to whoever wrote the link.
    pub async fn fetch_page<T: DeserializeOwned>(
        &self,
        endpoint: Endpoint,
        href: &str,
    ) -> Result<Page<T>, QlikError> {
        let url = self.base.join(href).map_err(|e| QlikError::Decode {
            endpoint,
            status: 200,
            message: format!("pagination link is not a URL: {e}"),
        })?;
        if url.origin() != self.base.origin() {
            return Err(QlikError::Decode {
                endpoint,
                status: 200,
                message: format!(
                    "pagination link points at {} instead of the tenant",
                    url.origin().ascii_serialization()
                ),
            });
        }
        self.call(endpoint, url, None::<&()>).await
    }

    fn pages<T: DeserializeOwned + Send + 'static>(
        &self,
        endpoint: Endpoint,
        first: Url,
    ) -> impl Stream<Item = Result<Page<T>, QlikError>> + Send + 'static {
        enum Next {
            First(Url),
            Href(String),
            Done,
        }
        let client = self.clone();
        // The links already followed: a tenant whose next page is one already fetched would
        // otherwise keep the caller (and the tenant view's lock) forever.
        let seen = std::collections::HashSet::<String>::new();
        stream::try_unfold((Next::First(first), seen), move |(next, mut seen)| {
            let client = client.clone();
            async move {
                let page: Page<T> = match next {
                    Next::Done => return Ok(None),
                    Next::First(url) => client.call(endpoint, url, None::<&()>).await?,
                    Next::Href(href) => {
                        if !seen.insert(href.clone()) {
                            return Err(QlikError::Decode {
                                endpoint,
                                status: 200,
                                message: "links.next.href points at a page already fetched: the pages loop".into(),
                            });
                        }
                        client.fetch_page(endpoint, &href).await?
                    }
                };
                let following = match page.next_href() {
                    Some(href) if !href.is_empty() => Next::Href(href.to_owned()),
                    _ => Next::Done,
                };
                Ok(Some((page, (following, seen))))
            }
        })
    }

    fn list_url(&self, segments: &[&str], params: &ListParams) -> Url {
        let mut url = self.url(segments);
        {
            let mut q = url.query_pairs_mut();
            for (k, v) in params.to_query() {
                q.append_pair(k, &v);
            }
        }
        if url.query() == Some("") {
            url.set_query(None);
        }
        url
    }

    /// `GET /v1/automations`: every page, following `links.next.href` until it is null.
    pub fn automation_pages(
        &self,
        params: &ListParams,
    ) -> impl Stream<Item = Result<Page<AutomationSummary>, QlikError>> + Send + 'static {
        self.pages(Endpoint::ListAutomations, self.list_url(&[], params))
    }

    /// `GET /v1/automations`: every automation, page after page.
    pub fn list_automations(
        &self,
        params: &ListParams,
    ) -> impl Stream<Item = Result<AutomationSummary, QlikError>> + Send + 'static {
        flatten_pages(self.automation_pages(params))
    }

    /// `GET /v1/automations`: only the first page, links included.
    pub async fn list_automations_page(
        &self,
        params: &ListParams,
    ) -> Result<Page<AutomationSummary>, QlikError> {
        self.call(
            Endpoint::ListAutomations,
            self.list_url(&[], params),
            None::<&()>,
        )
        .await
    }

    /// `POST /v1/automations` (never retried after an ambiguous failure).
    pub async fn create_automation(
        &self,
        request: &AutomationRequest,
    ) -> Result<Automation, QlikError> {
        self.call(Endpoint::CreateAutomation, self.url(&[]), Some(request))
            .await
    }

    /// `GET /v1/automations/{id}`
    pub async fn get_automation(&self, id: &str) -> Result<Automation, QlikError> {
        self.call(Endpoint::GetAutomation, self.url(&[id]), None::<&()>)
            .await
    }

    /// `PUT /v1/automations/{id}`
    pub async fn update_automation(
        &self,
        id: &str,
        request: &AutomationRequest,
    ) -> Result<Automation, QlikError> {
        self.call(Endpoint::UpdateAutomation, self.url(&[id]), Some(request))
            .await
    }

    /// `DELETE /v1/automations/{id}`
    pub async fn delete_automation(&self, id: &str) -> Result<(), QlikError> {
        self.call_empty(Endpoint::DeleteAutomation, self.url(&[id]), None::<&()>)
            .await
    }

    /// `POST /v1/automations/{id}/actions/copy`: returns the new automation's id.
    pub async fn copy_automation(&self, id: &str, name: &str) -> Result<String, QlikError> {
        let created: CreatedId = self
            .call(
                Endpoint::CopyAutomation,
                self.url(&[id, "actions", "copy"]),
                Some(&CopyRequest {
                    name: name.to_owned(),
                }),
            )
            .await?;
        Ok(created.id)
    }

    /// `POST /v1/automations/{id}/actions/enable`
    pub async fn enable_automation(&self, id: &str) -> Result<(), QlikError> {
        self.call_empty(
            Endpoint::EnableAutomation,
            self.url(&[id, "actions", "enable"]),
            None::<&()>,
        )
        .await
    }

    /// `POST /v1/automations/{id}/actions/disable`
    pub async fn disable_automation(&self, id: &str) -> Result<(), QlikError> {
        self.call_empty(
            Endpoint::DisableAutomation,
            self.url(&[id, "actions", "disable"]),
            None::<&()>,
        )
        .await
    }

    /// `POST /v1/automations/{id}/actions/move`: makes `user_id` the owner.
    pub async fn move_automation(&self, id: &str, user_id: &str) -> Result<(), QlikError> {
        self.call_empty(
            Endpoint::MoveAutomation,
            self.url(&[id, "actions", "move"]),
            Some(&MoveRequest {
                user_id: user_id.to_owned(),
            }),
        )
        .await
    }

    /// `GET /v1/automations/{id}/runs`: every page.
    pub fn run_pages(
        &self,
        id: &str,
        params: &ListParams,
    ) -> impl Stream<Item = Result<Page<Run>, QlikError>> + Send + 'static {
        self.pages(Endpoint::ListRuns, self.list_url(&[id, "runs"], params))
    }

    /// `GET /v1/automations/{id}/runs`: every run, page after page.
    pub fn list_runs(
        &self,
        id: &str,
        params: &ListParams,
    ) -> impl Stream<Item = Result<Run, QlikError>> + Send + 'static {
        flatten_pages(self.run_pages(id, params))
    }

    /// `GET /v1/automations/{id}/runs`: only the first page, links included.
    pub async fn list_runs_page(
        &self,
        id: &str,
        params: &ListParams,
    ) -> Result<Page<Run>, QlikError> {
        self.call(
            Endpoint::ListRuns,
            self.list_url(&[id, "runs"], params),
            None::<&()>,
        )
        .await
    }

    /// `POST /v1/automations/{id}/runs` (never retried after an ambiguous failure).
    pub async fn create_run(&self, id: &str, request: &RunRequest) -> Result<Run, QlikError> {
        self.call(Endpoint::CreateRun, self.url(&[id, "runs"]), Some(request))
            .await
    }

    /// `GET /v1/automations/{id}/runs/{runId}`
    pub async fn get_run(&self, id: &str, run_id: &str) -> Result<Run, QlikError> {
        self.call(
            Endpoint::GetRun,
            self.url(&[id, "runs", run_id]),
            None::<&()>,
        )
        .await
    }

    /// `POST /v1/automations/{id}/runs/{runId}/actions/export`: a short-lived log URL.
    pub async fn export_run(&self, id: &str, run_id: &str) -> Result<String, QlikError> {
        let exported: ExportedRun = self
            .call(
                Endpoint::ExportRun,
                self.url(&[id, "runs", run_id, "actions", "export"]),
                None::<&()>,
            )
            .await?;
        Ok(exported.url)
    }

    /// Downloads an exported run log. The URL is pre-signed: the API key is not sent.
    pub async fn download_export(&self, url: &str) -> Result<Value, QlikError> {
        let url = Url::parse(url).map_err(|e| QlikError::Decode {
            endpoint: Endpoint::ExportRun,
            status: 200,
            message: format!("export URL is not a URL: {e}"),
        })?;
        let bytes = self.execute(Endpoint::ExportRun, url, None, false).await?;
        decode(Endpoint::ExportRun, &bytes)
    }

    /// `POST /v1/automations/{id}/runs/{runId}/actions/retry` (answers 204; the new run
    /// appears in the run list).
    pub async fn retry_run(&self, id: &str, run_id: &str) -> Result<(), QlikError> {
        self.call_empty(
            Endpoint::RetryRun,
            self.url(&[id, "runs", run_id, "actions", "retry"]),
            None::<&()>,
        )
        .await
    }

    /// `POST /v1/automations/{id}/runs/{runId}/actions/stop`
    pub async fn stop_run(&self, id: &str, run_id: &str) -> Result<(), QlikError> {
        self.call_empty(
            Endpoint::StopRun,
            self.url(&[id, "runs", run_id, "actions", "stop"]),
            None::<&()>,
        )
        .await
    }

    /// `GET /v1/automations/settings`
    pub async fn get_settings(&self) -> Result<Settings, QlikError> {
        self.call(Endpoint::GetSettings, self.url(&["settings"]), None::<&()>)
            .await
    }

    /// `PUT /v1/automations/settings`
    pub async fn update_settings(&self, settings: &Settings) -> Result<Settings, QlikError> {
        self.call(
            Endpoint::UpdateSettings,
            self.url(&["settings"]),
            Some(settings),
        )
        .await
    }

    /// `GET /v1/automations/usage`
    pub async fn get_usage(&self, query: &UsageQuery) -> Result<Vec<UsageEntry>, QlikError> {
        let mut url = self.url(&["usage"]);
        url.query_pairs_mut()
            .append_pair("filter", &query.filter.to_string());
        if let Some(b) = &query.breakdown_by {
            url.query_pairs_mut().append_pair("breakdownBy", b);
        }
        let list: UsageList = self.call(Endpoint::GetUsage, url, None::<&()>).await?;
        Ok(list.data)
    }
}

fn flatten_pages<T: Send + 'static>(
    pages: impl Stream<Item = Result<Page<T>, QlikError>> + Send + 'static,
) -> impl Stream<Item = Result<T, QlikError>> + Send + 'static {
    pages
        .map_ok(|page| stream::iter(page.data.into_iter().map(Ok)))
        .try_flatten()
}

fn decode<T: DeserializeOwned>(endpoint: Endpoint, bytes: &[u8]) -> Result<T, QlikError> {
    serde_json::from_slice(bytes).map_err(|e| QlikError::Decode {
        endpoint,
        status: 200,
        message: e.to_string(),
    })
}

/// Describes a reqwest failure without headers (so never the key), with its causes.
fn transport_error(endpoint: Endpoint, error: reqwest::Error) -> QlikError {
    if error.is_timeout() {
        return QlikError::Timeout { endpoint };
    }
    let sent = !error.is_connect();
    let error = error.without_url();
    let mut message = error.to_string();
    let mut source = std::error::Error::source(&error);
    while let Some(cause) = source {
        message.push_str(": ");
        message.push_str(&cause.to_string());
        source = cause.source();
    }
    QlikError::Transport {
        endpoint,
        sent,
        message,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn client(url: &str) -> QlikClient {
        QlikClient::new(ClientConfig::new(url, ApiKey::new("k-secret"))).unwrap()
    }

    #[test]
    fn normalises_the_tenant_url() {
        for url in [
            "https://t.example.com",
            "https://t.example.com/",
            "https://t.example.com/api",
            "https://t.example.com/api/",
        ] {
            assert_eq!(
                api_base(url).unwrap().as_str(),
                "https://t.example.com/api/"
            );
        }
        assert!(api_base("t.example.com").is_err());
        assert!(api_base("ftp://t.example.com").is_err());
        assert!(api_base("https://t.example.com/?x=1").is_err());
    }

    #[test]
    fn ids_cannot_escape_their_path_segment() {
        let c = client("https://t.example.com");
        assert_eq!(
            c.url(&["../settings", "runs"]).as_str(),
            "https://t.example.com/api/v1/automations/..%2Fsettings/runs"
        );
        assert_eq!(
            c.url(&["a?b#c"]).as_str(),
            "https://t.example.com/api/v1/automations/a%3Fb%23c"
        );
    }

    #[test]
    fn list_urls_carry_encoded_params() {
        let c = client("https://t.example.com");
        let p = ListParams::default()
            .filter(Filter::eq("name", "a b"))
            .sort(super::super::query::Sort::asc("name"))
            .limit(5);
        assert_eq!(
            c.list_url(&[], &p).as_str(),
            "https://t.example.com/api/v1/automations?filter=name+eq+%22a+b%22&limit=5&sort=%2Bname"
        );
        assert_eq!(
            c.list_url(&[], &ListParams::default()).as_str(),
            "https://t.example.com/api/v1/automations"
        );
    }

    #[test]
    fn debug_hides_the_key() {
        let c = client("https://t.example.com");
        let text = format!("{c:?} {:?} {}", c.key, c.key);
        assert!(!text.contains("k-secret"), "{text}");
        assert!(
            QlikClient::new(ClientConfig::new("https://t.example.com", ApiKey::new(" "))).is_err()
        );
    }
}

/// A seeded fuzz of the response handling: arbitrary bytes and mutated reference bodies, as
/// the body of success and failure answers, always give a value or a typed error.
#[cfg(test)]
mod response_fuzz {
    use super::*;
    use crate::qlik::{error::ErrorClass, model::*};
    use rand::{Rng, SeedableRng, rngs::StdRng, seq::IndexedRandom};
    use serde_json::json;

    /// The example response bodies of the reference, and its error envelope.
    const REFERENCE_BODIES: &[&str] = &[
        r#"{"data":[{"id":"e0e720d0-4947-11ec-a1d2-9559fa35801d","name":"string","state":"available","ownerId":"sWYAHxZxhtcmBT7Ptc5xJ5I6N7HxwnEy","runMode":"triggered","createdAt":"2021-12-23T12:28:21.000000Z","lastRunAt":"2021-12-23T12:28:21.000000Z","updatedAt":"2021-12-23T12:28:21.000000Z","description":"string","lastRunStatus":"finished"}],"links":{"next":{"href":"string"},"prev":{"href":"string"}}}"#,
        r#"{"id":"e0e720d0-4947-11ec-a1d2-9559fa35801d","name":"string","state":"available","lastRun":{"id":"d452d100-9b0b-11ec-b199-8323e1031c3e","error":{},"title":"string","inputs":{},"status":"failed","context":"test_run","metrics":{"blocks":[{"type":"endpointBlock","rxBytes":18329921,"txBytes":18329921,"apiCalls":40,"snippetId":"string","endpointId":"string","connectorId":"string"}],"network":{"rxBytes":0,"txBytes":0},"totalApiCalls":0},"stopTime":"2021-12-23T12:28:21.000000Z","createdAt":"2021-12-23T12:28:21.000000Z","isTestRun":true,"startTime":"2021-12-23T12:28:21.000000Z","updatedAt":"2021-12-23T12:28:21.000000Z","isArchived":true,"expectedInputs":{},"scheduledStartTime":"2021-12-23T12:28:21.000000Z"},"ownerId":"sWYAHxZxhtcmBT7Ptc5xJ5I6N7HxwnEy","runMode":"triggered","createdAt":"2021-12-23T12:28:21.000000Z","lastRunAt":"2021-12-23T12:28:21.000000Z","schedules":[{"id":"d452d100-9b0b-11ec-b199-8323e1031c3e","stopAt":"2022-12-01 00:00:00","startAt":"2021-12-01 00:00:00","interval":30,"timezone":"Europe/Stockholm","lastStartedAt":"2022-01-01T12:28:21.000000Z"}],"updatedAt":"2021-12-23T12:28:21.000000Z","workspace":{},"snippetIds":["e0e720d0-4947-11ec-a1d2-9559fa35801d"],"description":"string","endpointIds":["9d94bef0-b28c-11eb-8dba-01593c457362","53a6fb70-b28f-11eb-b601-b545a40867e0"],"connectorIds":["0d87808f-27c0-11ea-921c-022e6b5ea1e2","0d86ee8a-27c0-11ea-921c-022e6b5ea1e2"],"lastRunStatus":"finished","executionToken":"aZXuEogT9X3le0k0WXMBnzuYKq4xRlkDnurjs8NVhEAAW1BYx8C1PpIl3ielgRb1"}"#,
        r#"{"id":"00000000-0000-0000-0000-000000000000"}"#,
        r#"{"data":[{"id":"d452d100-9b0b-11ec-b199-8323e1031c3e","error":{},"title":"string","status":"failed","context":"test_run","stopTime":"2021-12-23T12:28:21.000000Z","createdAt":"2021-12-23T12:28:21.000000Z","isTestRun":true,"startTime":"2021-12-23T12:28:21.000000Z","updatedAt":"2021-12-23T12:28:21.000000Z","isArchived":true,"scheduledStartTime":"2021-12-23T12:28:21.000000Z"}],"links":{"next":{"href":"string"},"prev":{"href":"string"}}}"#,
        r#"{"id":"d452d100-9b0b-11ec-b199-8323e1031c3e","error":{},"title":"string","inputs":{},"status":"failed","context":"test_run","metrics":{"blocks":[{"type":"endpointBlock","rxBytes":18329921,"txBytes":18329921,"apiCalls":40,"snippetId":"string","endpointId":"string","connectorId":"string"}],"network":{"rxBytes":0,"txBytes":0},"totalApiCalls":0},"stopTime":"2021-12-23T12:28:21.000000Z","createdAt":"2021-12-23T12:28:21.000000Z","isTestRun":true,"startTime":"2021-12-23T12:28:21.000000Z","updatedAt":"2021-12-23T12:28:21.000000Z","isArchived":true,"expectedInputs":{},"scheduledStartTime":"2021-12-23T12:28:21.000000Z"}"#,
        r#"{"url":"https://<bucket>.s3.<region>.amazonaws.com/<run>.json"}"#,
        r#"{"automationsEnabled":true}"#,
        r#"{"data":[{"date":"2021-12-15","name":"bandwidthIn","value":310179713,"automation":{"guid":"00000000-0000-0000-0000-000000000000","name":"My Automation.","ownerId":"KP1zJiPDn0gsla236GmETadFcxBW-J8F"}}]}"#,
        r#"{"errors":[{"code":"HTTP-429","title":"API rate limit reached.","detail":"You need to wait 13 seconds until limit is lifted."}],"traceId":"0af6a2d64ae7b5e4e1b1c5b29d4b8e21"}"#,
    ];

    const KEYS: &[&str] = &[
        "id",
        "data",
        "links",
        "next",
        "href",
        "errors",
        "code",
        "title",
        "detail",
        "traceId",
        "status",
        "schedules",
        "interval",
        "lastRun",
        "metrics",
        "blocks",
        "url",
        "value",
        "automationsEnabled",
        "automation",
        "guid",
        "state",
        "executionToken",
    ];

    fn random_value(rng: &mut StdRng, depth: u32) -> Value {
        match rng.random_range(0..11) {
            0 => Value::Null,
            1 => json!(rng.random_bool(0.5)),
            2 => json!(rng.random::<i64>()),
            3 => json!(u64::MAX),
            4 => json!(rng.random::<f64>() * 1e300),
            5 => json!(""),
            6 => json!("x".repeat(rng.random_range(1..5000))),
            7 => json!("\u{0}\u{1b}[2J\u{202e} 🚀"),
            8 if depth < 4 => Value::Array(
                (0..rng.random_range(0..4))
                    .map(|_| random_value(rng, depth + 1))
                    .collect(),
            ),
            9 if depth < 4 => Value::Object(
                (0..rng.random_range(0..5))
                    .map(|_| {
                        (
                            KEYS.choose(rng).unwrap().to_string(),
                            random_value(rng, depth + 1),
                        )
                    })
                    .collect(),
            ),
            _ => json!(
                ["available", "finished", "exceeded limit", "http://x/y"]
                    .choose(rng)
                    .unwrap()
            ),
        }
    }

    fn mutate(rng: &mut StdRng, v: &mut Value, depth: u32) {
        let descend = rng.random_bool(0.7);
        match v {
            Value::Object(map) if !map.is_empty() && descend => {
                let key = map
                    .keys()
                    .nth(rng.random_range(0..map.len()))
                    .unwrap()
                    .clone();
                mutate(rng, map.get_mut(&key).unwrap(), depth + 1);
            }
            Value::Array(items) if !items.is_empty() && descend => {
                let i = rng.random_range(0..items.len());
                mutate(rng, &mut items[i], depth + 1);
            }
            Value::Object(map) if rng.random_bool(0.5) && !map.is_empty() => {
                let key = map
                    .keys()
                    .nth(rng.random_range(0..map.len()))
                    .unwrap()
                    .clone();
                map.remove(&key);
            }
            _ => *v = random_value(rng, depth),
        }
    }

    fn random_body(rng: &mut StdRng) -> Vec<u8> {
        let reference = *REFERENCE_BODIES.choose(rng).unwrap();
        match rng.random_range(0..8) {
            0 => (0..rng.random_range(0..300))
                .map(|_| rng.random())
                .collect(),
            1 => "[".repeat(rng.random_range(1..3000)).into_bytes(),
            2 => reference.as_bytes().to_vec(),
            3..=5 => {
                let mut v: Value = serde_json::from_str(reference).unwrap();
                for _ in 0..rng.random_range(1..5) {
                    mutate(rng, &mut v, 0);
                }
                serde_json::to_vec(&v).unwrap()
            }
            _ => {
                let mut bytes = reference.as_bytes().to_vec();
                for _ in 0..rng.random_range(1..6) {
                    if bytes.is_empty() {
                        break;
                    }
                    let i = rng.random_range(0..bytes.len());
                    match rng.random_range(0..3) {
                        0 => bytes[i] = rng.random(),
                        1 => bytes.truncate(i),
                        _ => bytes.insert(i, *b"{}[]\",:\\\xff".choose(rng).unwrap()),
                    }
                }
                bytes
            }
        }
    }

    /// Decodes `bytes` as `T`: a value, or a `Decode` error naming the endpoint.
    fn decodes<T: DeserializeOwned>(endpoint: Endpoint, bytes: &[u8]) -> bool {
        match decode::<T>(endpoint, bytes) {
            Ok(_) => true,
            Err(QlikError::Decode {
                endpoint: e,
                status: 200,
                message,
            }) => {
                assert_eq!(e, endpoint);
                assert!(!message.is_empty());
                false
            }
            Err(other) => panic!("decoding gave {other:?}"),
        }
    }

    #[test]
    fn any_body_of_any_status_is_a_value_or_a_typed_error() {
        let mut rng = StdRng::seed_from_u64(0x00B0_D1E5);
        let mut values = 0;
        for _ in 0..20_000 {
            let body = random_body(&mut rng);
            // As the body of a success, for every answer type of the API.
            values += [
                decodes::<Automation>(Endpoint::GetAutomation, &body),
                decodes::<Page<AutomationSummary>>(Endpoint::ListAutomations, &body),
                decodes::<Page<Run>>(Endpoint::ListRuns, &body),
                decodes::<Run>(Endpoint::CreateRun, &body),
                decodes::<Settings>(Endpoint::GetSettings, &body),
                decodes::<UsageList>(Endpoint::GetUsage, &body),
                decodes::<CreatedId>(Endpoint::CopyAutomation, &body),
                decodes::<ExportedRun>(Endpoint::ExportRun, &body),
            ]
            .iter()
            .filter(|ok| **ok)
            .count();
            if let Ok(page) = decode::<Page<AutomationSummary>>(Endpoint::ListAutomations, &body) {
                let _ = (page.next_href(), page.prev_href());
            }
            // As the body of a failure: the status decides the class, whatever the body.
            let status = *[
                300u16, 400, 401, 403, 404, 409, 413, 429, 500, 502, 503, 504,
            ]
            .choose(&mut rng)
            .unwrap();
            let retry = rng
                .random_bool(0.5)
                .then(|| Duration::from_secs(rng.random()));
            let e = QlikError::from_response(Endpoint::UpdateAutomation, status, &body, retry);
            assert_eq!(e.status(), Some(status));
            let class = match status {
                401 => ErrorClass::Unauthorized,
                403 => ErrorClass::Forbidden,
                404 => ErrorClass::NotFound,
                429 => ErrorClass::RateLimited,
                500..=599 => ErrorClass::Transient,
                _ => ErrorClass::InvalidRequest,
            };
            assert_eq!(e.class(), class, "{status}");
            let text = e.to_string();
            assert!(text.contains(&status.to_string()), "{text}");
            if serde_json::from_slice::<super::super::error::ErrorEnvelope>(&body).is_err() {
                // A body that is not an envelope is quoted short and without control characters.
                let quoted = e.failure().unwrap().message();
                assert!(quoted.chars().count() <= 200, "{quoted}");
                assert!(!quoted.chars().any(char::is_control), "{quoted:?}");
            }
        }
        // The mutations keep enough structure that values come out too, not only errors.
        assert!(values > 1000, "only {values} values decoded");
    }
}
