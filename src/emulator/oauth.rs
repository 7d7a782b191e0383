//! OAuth2 client credentials, as Qlik Cloud offers them to machine-to-machine clients:
//! `POST /oauth/token` trades a registered client's id and secret for an opaque bearer token
//! that acts as a bot user (`bot-<clientId>`) with tenant-admin rights and the
//! `admin.automations` scope.
//!
//! Everything here is plain logic over [`Tokens`]; the server counts the requests and turns
//! the answers into HTTP. No answer and no `Debug` output ever contains a secret or a token
//! other than the one being granted.

use std::collections::HashMap;
use std::fmt;
use std::str::FromStr;
use std::time::{Duration, Instant};

use axum::http::StatusCode;
use rand::Rng;
use rand::distr::Alphanumeric;
use serde_json::{Value, json};

use super::error::{ApiError, envelope};
use super::pagination::query_pairs;
use super::store::Caller;

/// The only scope the emulator grants: what an operator's bot needs.
pub(crate) const BOT_SCOPE: &str = "admin.automations";

/// The only grant type the token endpoint accepts.
const GRANT_TYPE: &str = "client_credentials";

/// Expired tokens are forgotten this long after they expire (until then they answer 401
/// "expired", which tells a client more than "unknown").
const FORGET_TOKENS_AFTER: Duration = Duration::from_secs(3600);

/// Length of an access token: opaque, random, alphanumeric.
const TOKEN_CHARS: usize = 48;

/// An OAuth2 M2M client registered in the emulated tenant. `Debug` never shows the secret.
#[derive(Clone, PartialEq, Eq)]
pub struct OAuthClient {
    /// The client id; the bot user it acts as is `bot-<client_id>`.
    pub client_id: String,
    /// The client secret.
    pub client_secret: String,
}

impl OAuthClient {
    /// A client with this id and secret.
    pub fn new(client_id: impl Into<String>, client_secret: impl Into<String>) -> OAuthClient {
        OAuthClient {
            client_id: client_id.into(),
            client_secret: client_secret.into(),
        }
    }

    /// The user id the client's tokens act as: `bot-<client_id>`.
    pub fn bot_user_id(&self) -> String {
        bot_user_id(&self.client_id)
    }
}

/// The bot user id of `client_id`.
fn bot_user_id(client_id: &str) -> String {
    format!("bot-{client_id}")
}

impl fmt::Debug for OAuthClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The secret is a credential: it must never reach a log line, even through `{:?}`.
        f.debug_struct("OAuthClient")
            .field("client_id", &self.client_id)
            .field("client_secret", &"<redacted>")
            .finish()
    }
}

/// Why an `ID=SECRET` string was refused. Never contains the secret.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OAuthClientParseError {
    /// There is no `=` separating id and secret.
    #[error("an OAuth client must be written ID=SECRET")]
    MissingSeparator,
    /// The id part is empty.
    #[error("the id part of ID=SECRET is empty")]
    EmptyId,
    /// The secret part is empty.
    #[error("the secret part of ID=SECRET is empty")]
    EmptySecret,
}

impl FromStr for OAuthClient {
    type Err = OAuthClientParseError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        // Split at the first '=' so secrets ending in base64 padding still parse; client ids
        // never contain '='.
        let (id, secret) = s
            .split_once('=')
            .ok_or(OAuthClientParseError::MissingSeparator)?;
        if id.trim().is_empty() {
            return Err(OAuthClientParseError::EmptyId);
        }
        if secret.is_empty() {
            return Err(OAuthClientParseError::EmptySecret);
        }
        Ok(OAuthClient::new(id.trim(), secret))
    }
}

/// A refused token request, answered in Qlik's error envelope with the OAuth error code
/// (`invalid_request`, `invalid_client`, ...) as its title.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum OAuthError {
    /// 400: the body is not a grant, or a field is missing; the detail names it.
    InvalidRequest(String),
    /// 400: a grant type other than `client_credentials`.
    UnsupportedGrantType,
    /// 401: unknown client or wrong secret (deliberately not saying which).
    InvalidClient,
    /// 400: the scopes asked for do not include `admin.automations`.
    InvalidScope,
}

impl OAuthError {
    /// The HTTP status.
    pub(crate) fn status(&self) -> StatusCode {
        match self {
            OAuthError::InvalidClient => StatusCode::UNAUTHORIZED,
            _ => StatusCode::BAD_REQUEST,
        }
    }

    /// The envelope: the OAuth error code as title, a human detail.
    pub(crate) fn body(&self) -> Value {
        let (title, detail) = match self {
            OAuthError::InvalidRequest(d) => ("invalid_request", d.clone()),
            OAuthError::UnsupportedGrantType => (
                "unsupported_grant_type",
                format!("grant_type must be {GRANT_TYPE}"),
            ),
            OAuthError::InvalidClient => (
                "invalid_client",
                "client authentication failed: unknown client_id or wrong client_secret".to_owned(),
            ),
            OAuthError::InvalidScope => (
                "invalid_scope",
                format!("scope must include {BOT_SCOPE}, the only scope this tenant grants"),
            ),
        };
        envelope(self.status(), title, &detail)
    }
}

/// A parsed `POST /oauth/token` body. `Debug` never shows the secret.
#[derive(Clone, PartialEq, Eq)]
pub(crate) struct TokenRequest {
    client_id: String,
    client_secret: String,
    grant_type: String,
    scope: Option<String>,
}

impl fmt::Debug for TokenRequest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TokenRequest")
            .field("client_id", &self.client_id)
            .field("grant_type", &self.grant_type)
            .field("scope", &self.scope)
            .finish_non_exhaustive()
    }
}

impl TokenRequest {
    /// Reads a grant from a JSON body (what Qlik's clients send) or, when the content type
    /// says so, a form-encoded one (the OAuth standard).
    pub(crate) fn parse(body: &[u8], content_type: Option<&str>) -> Result<Self, OAuthError> {
        let form = content_type.is_some_and(|ct| {
            ct.trim_start()
                .to_ascii_lowercase()
                .starts_with("application/x-www-form-urlencoded")
        });
        let fields: HashMap<String, String> = if form {
            let text = std::str::from_utf8(body)
                .map_err(|_| OAuthError::InvalidRequest("the body is not UTF-8".to_owned()))?;
            query_pairs(Some(text)).into_iter().collect()
        } else {
            json_fields(body)?
        };
        let field = |name: &str| {
            fields
                .get(name)
                .filter(|v| !v.trim().is_empty())
                .cloned()
                .ok_or_else(|| OAuthError::InvalidRequest(format!("{name} is required")))
        };
        Ok(TokenRequest {
            grant_type: field("grant_type")?,
            client_id: field("client_id")?,
            client_secret: field("client_secret")?,
            scope: fields.get("scope").cloned(),
        })
    }
}

/// The string fields of a JSON object body.
fn json_fields(body: &[u8]) -> Result<HashMap<String, String>, OAuthError> {
    let refuse = || {
        OAuthError::InvalidRequest(
            "the body must be a JSON object with client_id, client_secret and grant_type"
                .to_owned(),
        )
    };
    let value: Value = serde_json::from_slice(body).map_err(|_| refuse())?;
    let obj = value.as_object().ok_or_else(refuse)?;
    obj.iter()
        .filter(|(_, v)| !v.is_null())
        .map(|(k, v)| match v {
            Value::String(s) => Ok((k.clone(), s.clone())),
            _ => Err(OAuthError::InvalidRequest(format!("{k} must be a string"))),
        })
        .collect()
}

/// A granted token.
#[derive(Debug, Clone)]
struct Issued {
    client_id: String,
    expires_at: Instant,
}

/// The registered clients and the tokens handed out. Deliberately not `Debug`: it holds
/// secrets and tokens.
pub(crate) struct Tokens {
    /// Client id → secret.
    clients: HashMap<String, String>,
    /// How long a token lives.
    ttl: Duration,
    /// Token → what it was issued for.
    issued: HashMap<String, Issued>,
    /// The newest tokens issued, expired or not, so that a test can look for them where they
    /// must never appear (logs, Events, status).
    history: std::collections::VecDeque<String>,
}

/// How many issued tokens [`Tokens::history`] keeps.
const HISTORY: usize = 1000;

impl Tokens {
    /// The token store for these clients. Refuses one id given with two secrets (naming the
    /// id, never a secret) and a zero lifetime.
    pub(crate) fn new(clients: &[OAuthClient], ttl: Duration) -> Result<Tokens, String> {
        if ttl.is_zero() {
            return Err("the OAuth token lifetime must be at least one second".to_owned());
        }
        let mut map = HashMap::new();
        for c in clients {
            if let Some(previous) = map.insert(c.client_id.clone(), c.client_secret.clone())
                && previous != c.client_secret
            {
                return Err(format!(
                    "OAuth client {} is given twice with different secrets",
                    c.client_id
                ));
            }
        }
        Ok(Tokens {
            clients: map,
            ttl,
            issued: HashMap::new(),
            history: std::collections::VecDeque::new(),
        })
    }

    /// Answers a grant: the token response body, or why not.
    pub(crate) fn grant(&mut self, req: &TokenRequest, now: Instant) -> Result<Value, OAuthError> {
        if req.grant_type != GRANT_TYPE {
            return Err(OAuthError::UnsupportedGrantType);
        }
        if self.clients.get(&req.client_id) != Some(&req.client_secret) {
            return Err(OAuthError::InvalidClient);
        }
        // A space-separated list; none asked for means the client's default, the bot scope.
        let scopes: Vec<&str> = req
            .scope
            .as_deref()
            .unwrap_or("")
            .split_whitespace()
            .collect();
        if !scopes.is_empty() && !scopes.contains(&BOT_SCOPE) {
            return Err(OAuthError::InvalidScope);
        }
        self.issued
            .retain(|_, t| now.saturating_duration_since(t.expires_at) < FORGET_TOKENS_AFTER);
        let token: String = rand::rng()
            .sample_iter(&Alphanumeric)
            .take(TOKEN_CHARS)
            .map(char::from)
            .collect();
        if self.history.len() == HISTORY {
            self.history.pop_front();
        }
        self.history.push_back(token.clone());
        self.issued.insert(
            token.clone(),
            Issued {
                client_id: req.client_id.clone(),
                expires_at: now + self.ttl,
            },
        );
        Ok(json!({
            "access_token": token,
            "token_type": "bearer",
            "expires_in": self.ttl.as_secs().max(1),
            "scope": BOT_SCOPE,
        }))
    }

    /// The caller a bearer token stands for: `None` when it is no token issued here (it may
    /// be an API key), a 401 when it has expired.
    pub(crate) fn caller(&self, token: &str, now: Instant) -> Option<Result<Caller, ApiError>> {
        let issued = self.issued.get(token)?;
        if now >= issued.expires_at {
            return Some(Err(ApiError::Unauthorized(
                "the access token has expired: request a new one from /oauth/token".to_owned(),
            )));
        }
        Some(Ok(Caller {
            user_id: bot_user_id(&issued.client_id),
            admin: true,
        }))
    }

    /// The newest tokens issued (up to a thousand), oldest first.
    pub(crate) fn history(&self) -> Vec<String> {
        self.history.iter().cloned().collect()
    }

    /// Expires every token issued so far (they answer 401 from now on).
    pub(crate) fn expire_all(&mut self, now: Instant) {
        for t in self.issued.values_mut() {
            t.expires_at = t.expires_at.min(now);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tokens() -> Tokens {
        Tokens::new(
            &[OAuthClient::new("op", "s3cret=")],
            Duration::from_secs(60),
        )
        .unwrap()
    }

    fn req(body: Value) -> Result<TokenRequest, OAuthError> {
        TokenRequest::parse(body.to_string().as_bytes(), Some("application/json"))
    }

    fn grant_body(extra: Value) -> Value {
        let mut b = json!({"client_id": "op", "client_secret": "s3cret=", "grant_type": "client_credentials"});
        for (k, v) in extra.as_object().unwrap() {
            b[k] = v.clone();
        }
        b
    }

    #[test]
    fn clients_parse_and_never_show_their_secret() {
        let c: OAuthClient = "op=a=b".parse().unwrap();
        assert_eq!(c, OAuthClient::new("op", "a=b"));
        assert_eq!(c.bot_user_id(), "bot-op");
        assert!(!format!("{c:?}").contains("a=b"));
        assert_eq!(
            "nope".parse::<OAuthClient>(),
            Err(OAuthClientParseError::MissingSeparator)
        );
        assert_eq!(
            "=x".parse::<OAuthClient>(),
            Err(OAuthClientParseError::EmptyId)
        );
        assert_eq!(
            "x=".parse::<OAuthClient>(),
            Err(OAuthClientParseError::EmptySecret)
        );
        let err = Tokens::new(
            &[OAuthClient::new("op", "one"), OAuthClient::new("op", "two")],
            Duration::from_secs(1),
        )
        .err()
        .unwrap();
        assert!(
            err.contains("op") && !err.contains("one") && !err.contains("two"),
            "{err}"
        );
        assert!(Tokens::new(&[], Duration::ZERO).is_err());
    }

    #[test]
    fn a_good_grant_yields_a_bot_admin_token_until_it_expires() {
        let mut t = tokens();
        let now = Instant::now();
        let body = t.grant(&req(grant_body(json!({}))).unwrap(), now).unwrap();
        assert_eq!(body["token_type"], "bearer");
        assert_eq!(body["expires_in"], 60);
        assert_eq!(body["scope"], BOT_SCOPE);
        assert!(!body.to_string().contains("s3cret"));
        let token = body["access_token"].as_str().unwrap();
        assert_eq!(token.len(), TOKEN_CHARS);
        let caller = t.caller(token, now).unwrap().unwrap();
        assert_eq!(
            caller,
            Caller {
                user_id: "bot-op".into(),
                admin: true
            }
        );
        assert!(t.caller("other", now).is_none());
        assert!(
            t.caller(token, now + Duration::from_secs(60))
                .unwrap()
                .is_err()
        );
        t.expire_all(now);
        assert!(matches!(
            t.caller(token, now),
            Some(Err(ApiError::Unauthorized(_)))
        ));
    }

    #[test]
    fn refusals_say_why_without_the_secret() {
        let mut t = tokens();
        let now = Instant::now();
        let refuse = |t: &mut Tokens, body: Value| {
            let r = req(body)?;
            t.grant(&r, now)
        };
        assert_eq!(
            refuse(&mut t, grant_body(json!({"client_secret": "wrong"}))),
            Err(OAuthError::InvalidClient)
        );
        assert_eq!(
            refuse(&mut t, grant_body(json!({"client_id": "ghost"}))),
            Err(OAuthError::InvalidClient)
        );
        assert_eq!(
            refuse(&mut t, grant_body(json!({"grant_type": "password"}))),
            Err(OAuthError::UnsupportedGrantType)
        );
        assert_eq!(
            refuse(&mut t, grant_body(json!({"scope": "user_default"}))),
            Err(OAuthError::InvalidScope)
        );
        assert!(
            refuse(
                &mut t,
                grant_body(json!({"scope": "openid admin.automations"}))
            )
            .is_ok()
        );
        assert_eq!(
            refuse(
                &mut t,
                json!({"client_id": "op", "grant_type": "client_credentials"})
            ),
            Err(OAuthError::InvalidRequest(
                "client_secret is required".into()
            ))
        );
        assert!(matches!(
            refuse(&mut t, grant_body(json!({"client_id": 7}))),
            Err(OAuthError::InvalidRequest(d)) if d.contains("client_id")
        ));
        let body = OAuthError::InvalidClient.body();
        assert_eq!(body["errors"][0]["title"], "invalid_client");
        assert_eq!(body["errors"][0]["code"], "HTTP-401");
    }

    #[test]
    fn form_encoded_grants_are_accepted_too() {
        let body = b"grant_type=client_credentials&client_id=op&client_secret=s3cret%3D";
        let r = TokenRequest::parse(body, Some("application/x-www-form-urlencoded")).unwrap();
        assert!(tokens().grant(&r, Instant::now()).is_ok());
        assert!(!format!("{r:?}").contains("s3cret"));
    }
}
