//! Who the client speaks as: a person's API key, or an OAuth2 machine-to-machine client (a bot
//! user) whose access tokens the client fetches, caches and renews.
//!
//! Qlik recommends an M2M client with the `admin.automations` scope for an operator: it acts
//! as a bot user that manages every automation of the tenant, with its own rate budget, and
//! does not die with a person's account. Tokens come from `POST {tenant}/oauth/token` (a JSON
//! client-credentials grant) and are opaque: they are never parsed, only kept until shortly
//! before `expires_in`.
//!
//! One [`Authenticator`] per client (so per tenant, credential and generation, through the
//! pool) is shared by every clone: both controllers and every reconcile use one token, and
//! only one token request is in flight at a time. A refused grant (a wrong secret) is
//! remembered and retried only after a growing pause, so a broken Secret costs a handful of
//! token requests an hour, not one per reconcile.

use std::{fmt, sync::Mutex, time::Duration};

use serde::{Deserialize, Serialize};
use tokio::time::Instant;
use url::Url;

use super::{
    client::ApiKey,
    error::{ErrorEnvelope, QlikError},
    telemetry::{Caller, Telemetry, TokenOutcome},
};
use crate::backoff::Backoff;

/// The scope asked for when the connection names none: what an operator needs.
pub const DEFAULT_SCOPE: &str = "admin.automations";

/// Pauses between token requests after refusals or failures in a row: 1 s doubling to 5 min.
pub const TOKEN_BACKOFF: Backoff = Backoff::new(Duration::from_secs(1), Duration::from_secs(300));

/// The longest `expires_in` believed (Qlik allows at most 24 h).
const MAX_TOKEN_LIFETIME: Duration = Duration::from_secs(24 * 3600);

/// How long before its expiry a token is renewed: a tenth of its life, at most a minute, so a
/// request never leaves with a token about to expire on the way.
fn renewal_margin(lifetime: Duration) -> Duration {
    (lifetime / 10).min(Duration::from_secs(60))
}

/// A credential value (client secret, access token): neither `Debug` nor `Display` shows it.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct Redacted(String);

impl Redacted {
    /// Wraps a value.
    pub fn new(value: impl Into<String>) -> Redacted {
        Redacted(value.into())
    }

    /// The value itself, for the one place that sends it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Redacted {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

/// An OAuth2 M2M client registered in the tenant.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct OAuthClient {
    /// The client id (not a secret: it names the bot user).
    pub client_id: String,
    /// The client secret.
    pub client_secret: Redacted,
    /// The scopes asked for, space-separated ([`DEFAULT_SCOPE`] by default).
    pub scope: String,
}

/// How the client authenticates.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Credential {
    /// A person's API key, sent as the bearer token.
    ApiKey(ApiKey),
    /// An OAuth2 client-credentials client; its access tokens are the bearer tokens.
    OAuth(OAuthClient),
}

impl From<ApiKey> for Credential {
    fn from(key: ApiKey) -> Credential {
        Credential::ApiKey(key)
    }
}

impl From<OAuthClient> for Credential {
    fn from(client: OAuthClient) -> Credential {
        Credential::OAuth(client)
    }
}

impl Credential {
    /// What identifies the user this credential speaks for, to digest into
    /// [`Caller::identity`]: the key, or the client id (a bot is one user whatever its
    /// secret). Never shown as is.
    pub fn identity_seed(&self) -> String {
        match self {
            Credential::ApiKey(key) => key.expose().to_owned(),
            Credential::OAuth(client) => format!("oauth-client:{}", client.client_id),
        }
    }

    /// True for an M2M bot, which Qlik lets list every automation of the tenant.
    pub fn is_bot(&self) -> bool {
        matches!(self, Credential::OAuth(_))
    }

    /// Refuses an empty key, client id or secret.
    pub fn validate(&self) -> Result<(), QlikError> {
        let empty = |what: &str| Err(QlikError::Invalid(format!("the {what} is empty")));
        match self {
            Credential::ApiKey(key) if key.expose().trim().is_empty() => empty("API key"),
            Credential::OAuth(c) if c.client_id.trim().is_empty() => empty("OAuth client id"),
            Credential::OAuth(c) if c.client_secret.expose().trim().is_empty() => {
                empty("OAuth client secret")
            }
            _ => Ok(()),
        }
    }
}

/// The bearer token one request is sent with.
#[derive(Clone, PartialEq, Eq)]
pub struct Bearer(Redacted);

impl Bearer {
    /// The token, for the `Authorization` header.
    pub fn expose(&self) -> &str {
        self.0.expose()
    }
}

impl fmt::Debug for Bearer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Bearer(<redacted>)")
    }
}

/// The grant sent to the token endpoint.
#[derive(Serialize)]
struct Grant<'a> {
    client_id: &'a str,
    client_secret: &'a str,
    grant_type: &'static str,
    scope: &'a str,
}

/// The token endpoint's answer (the fields used).
#[derive(Deserialize)]
struct Granted {
    access_token: String,
    #[serde(default)]
    expires_in: Option<u64>,
}

/// The cached token and the memory of recent failures.
#[derive(Default)]
struct TokenState {
    /// The token in use and when to renew it.
    token: Option<(Bearer, Instant)>,
    /// Token requests refused or failed in a row.
    failures: u32,
    /// No token request before this, after a failure; the failure is answered meanwhile.
    quiet_until: Option<(Instant, QlikError)>,
}

/// Hands out bearer tokens for one credential, fetching and caching OAuth tokens.
pub struct Authenticator {
    credential: Credential,
    token_url: Url,
    http: reqwest::Client,
    caller: Caller,
    telemetry: Option<std::sync::Arc<dyn Telemetry>>,
    state: Mutex<TokenState>,
    /// Held while a token request is in flight, so concurrent callers wait for its answer
    /// instead of sending their own.
    flight: tokio::sync::Mutex<()>,
}

impl fmt::Debug for Authenticator {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Authenticator")
            .field("credential", &self.credential)
            .field("token_url", &self.token_url.as_str())
            .finish_non_exhaustive()
    }
}

impl Authenticator {
    /// An authenticator for `credential` on the tenant whose API base is `base`
    /// (`https://host/api/`); tokens come from `https://host/oauth/token`.
    pub fn new(
        credential: Credential,
        base: &Url,
        http: reqwest::Client,
        caller: Caller,
        telemetry: Option<std::sync::Arc<dyn Telemetry>>,
    ) -> Result<Authenticator, QlikError> {
        let token_url = base
            .join("../oauth/token")
            .map_err(|e| QlikError::Invalid(format!("cannot build the token URL: {e}")))?;
        Ok(Authenticator {
            credential,
            token_url,
            http,
            caller,
            telemetry,
            state: Mutex::new(TokenState::default()),
            flight: tokio::sync::Mutex::new(()),
        })
    }

    /// The credential.
    pub fn credential(&self) -> &Credential {
        &self.credential
    }

    /// The bearer token to send now: the API key, or a valid access token (fetched when there
    /// is none or it is about to expire). While a recent refusal's pause lasts, that refusal
    /// is answered without asking the tenant again.
    pub async fn bearer(&self) -> Result<Bearer, QlikError> {
        let client = match &self.credential {
            Credential::ApiKey(key) => return Ok(Bearer(Redacted::new(key.expose()))),
            Credential::OAuth(client) => client,
        };
        if let Some(answer) = self.cached() {
            return answer;
        }
        let _flight = self.flight.lock().await;
        // Whoever held the flight before may have fetched one meanwhile.
        if let Some(answer) = self.cached() {
            return answer;
        }
        let fetched = self.fetch(client).await;
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        match fetched {
            Ok((bearer, lifetime)) => {
                state.failures = 0;
                state.quiet_until = None;
                let renew_at = Instant::now() + lifetime - renewal_margin(lifetime);
                state.token = Some((bearer.clone(), renew_at));
                Ok(bearer)
            }
            Err(error) => {
                let pause = TOKEN_BACKOFF.wait(state.failures);
                state.failures = state.failures.saturating_add(1);
                state.token = None;
                state.quiet_until = Some((Instant::now() + pause, error.clone()));
                Err(error)
            }
        }
    }

    /// Forgets `used` after the tenant refused it (401), so the next [`Self::bearer`] fetches
    /// a new token. A token already replaced by another caller is left alone.
    pub fn invalidate(&self, used: &Bearer) {
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        if state.token.as_ref().is_some_and(|(t, _)| t == used) {
            state.token = None;
        }
    }

    /// The cached answer, if any: a token still fresh, or a failure still within its pause.
    fn cached(&self) -> Option<Result<Bearer, QlikError>> {
        let state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        let now = Instant::now();
        if let Some((token, renew_at)) = &state.token
            && now < *renew_at
        {
            return Some(Ok(token.clone()));
        }
        match &state.quiet_until {
            Some((until, error)) if now < *until => Some(Err(error.clone())),
            _ => None,
        }
    }

    /// One token request.
    async fn fetch(&self, client: &OAuthClient) -> Result<(Bearer, Duration), QlikError> {
        let scope = match client.scope.trim() {
            "" => DEFAULT_SCOPE,
            scope => scope,
        };
        let grant = Grant {
            client_id: &client.client_id,
            client_secret: client.client_secret.expose(),
            grant_type: "client_credentials",
            scope,
        };
        let outcome = self.send(&grant, &client.client_id).await;
        if let Some(telemetry) = &self.telemetry {
            let reported = match &outcome {
                Ok(_) => TokenOutcome::Issued,
                Err(e) if e.is_transient() => TokenOutcome::Failed,
                Err(_) => TokenOutcome::Refused,
            };
            telemetry.token(&self.caller, reported);
        }
        match &outcome {
            Ok(_) => tracing::debug!(client_id = %client.client_id, "got an OAuth access token"),
            Err(e) => {
                tracing::debug!(client_id = %client.client_id, error = %e, "no OAuth access token")
            }
        }
        outcome
    }

    async fn send(
        &self,
        grant: &Grant<'_>,
        client_id: &str,
    ) -> Result<(Bearer, Duration), QlikError> {
        let failed = |status: Option<u16>, message: String| QlikError::Token {
            client_id: client_id.to_owned(),
            status,
            message,
        };
        let response = self
            .http
            .post(self.token_url.clone())
            .json(grant)
            .send()
            .await
            .map_err(|e| failed(None, e.without_url().to_string()))?;
        let status = response.status().as_u16();
        let body = response
            .bytes()
            .await
            .map_err(|e| failed(Some(status), e.without_url().to_string()))?;
        if !(200..300).contains(&status) {
            return Err(failed(Some(status), refusal(status, &body)));
        }
        let granted: Granted = serde_json::from_slice(&body).map_err(|e| {
            failed(
                Some(status),
                format!("the token answer could not be read: {e}"),
            )
        })?;
        if granted.access_token.trim().is_empty() {
            return Err(failed(
                Some(status),
                "the token answer has no access_token".into(),
            ));
        }
        // No or an absurd lifetime: use the token for a short while and ask again.
        let lifetime = granted
            .expires_in
            .map(Duration::from_secs)
            .filter(|d| !d.is_zero())
            .unwrap_or(Duration::from_secs(60))
            .min(MAX_TOKEN_LIFETIME);
        Ok((Bearer(Redacted::new(granted.access_token)), lifetime))
    }
}

/// Qlik's words about a refused grant: its error envelope's titles and details with the trace
/// id, or the OAuth `error`/`error_description` pair, or the status alone. Never the request.
fn refusal(status: u16, body: &[u8]) -> String {
    #[derive(Deserialize)]
    struct OAuthError {
        error: String,
        #[serde(default)]
        error_description: Option<String>,
    }
    if let Ok(envelope) = serde_json::from_slice::<ErrorEnvelope>(body)
        && !envelope.errors.is_empty()
    {
        let mut text: Vec<String> = envelope
            .errors
            .iter()
            .map(|e| match &e.detail {
                Some(d) if !d.is_empty() && d != &e.title => format!("{}: {d}", e.title),
                _ => e.title.clone(),
            })
            .collect();
        if let Some(trace) = envelope.trace_id {
            text.push(format!("traceId {trace}"));
        }
        return format!("HTTP {status}: {}", text.join("; "));
    }
    if let Ok(e) = serde_json::from_slice::<OAuthError>(body) {
        return match e.error_description {
            Some(d) => format!("HTTP {status}: {}: {d}", e.error),
            None => format!("HTTP {status}: {}", e.error),
        };
    }
    format!("HTTP {status}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renewal_leaves_a_tenth_of_the_life_at_most_a_minute() {
        assert_eq!(
            renewal_margin(Duration::from_secs(21600)),
            Duration::from_secs(60)
        );
        assert_eq!(
            renewal_margin(Duration::from_secs(5)),
            Duration::from_millis(500)
        );
    }

    #[test]
    fn credentials_never_show_their_secrets() {
        let oauth = Credential::OAuth(OAuthClient {
            client_id: "bot-1".into(),
            client_secret: Redacted::new("s3cr3t-value"),
            scope: DEFAULT_SCOPE.into(),
        });
        let key = Credential::ApiKey(ApiKey::new("k3y-value"));
        let shown = format!("{oauth:?} {key:?} {:?}", Bearer(Redacted::new("t0ken")));
        for secret in ["s3cr3t-value", "k3y-value", "t0ken"] {
            assert!(!shown.contains(secret), "{shown}");
        }
        assert!(shown.contains("bot-1"));
        assert!(oauth.is_bot() && !key.is_bot());
        assert_ne!(oauth.identity_seed(), key.identity_seed());
    }

    #[test]
    fn empty_parts_are_refused() {
        let client = |id: &str, secret: &str| {
            Credential::OAuth(OAuthClient {
                client_id: id.into(),
                client_secret: Redacted::new(secret),
                scope: String::new(),
            })
        };
        assert!(client("", "s").validate().is_err());
        assert!(client("c", " ").validate().is_err());
        assert!(client("c", "s").validate().is_ok());
        assert!(Credential::ApiKey(ApiKey::new("")).validate().is_err());
    }

    #[test]
    fn refusals_quote_qlik_and_never_the_request() {
        let text = refusal(
            401,
            br#"{"errors":[{"code":"OAUTH-1","title":"invalid_client","detail":"client authentication failed"}],"traceId":"t-1"}"#,
        );
        assert_eq!(
            text,
            "HTTP 401: invalid_client: client authentication failed; traceId t-1"
        );
        assert_eq!(
            refusal(400, br#"{"error":"invalid_scope"}"#),
            "HTTP 400: invalid_scope"
        );
        assert_eq!(refusal(502, b"<html>"), "HTTP 502");
    }

    #[test]
    fn the_token_url_is_beside_the_api() {
        crate::install_crypto_provider();
        let base = Url::parse("http://127.0.0.1:8080/api/").unwrap();
        let auth = Authenticator::new(
            Credential::ApiKey(ApiKey::new("k")),
            &base,
            reqwest::Client::new(),
            Caller::new(&base, "k"),
            None,
        )
        .unwrap();
        assert_eq!(auth.token_url.as_str(), "http://127.0.0.1:8080/oauth/token");
    }
}
