//! A faithful local implementation of Qlik's Automations API, in both of its generations.
//!
//! The operator's tests cannot reach Qlik Cloud, and a newcomer should be able to try the
//! operator without a tenant, so this emulator answers every endpoint with the same status
//! codes, shapes, errors, pagination and rate limits as the live service:
//!
//! - **Two generations, one tenant.** `/api/workflows/automations...` (Qlik's preferred API)
//!   and the deprecated `/api/v1/automations...` reach the same handlers and the same store:
//!   what one creates, the other sees and may change. The workflows-only endpoints
//!   (`actions/change-owner`, `actions/change-space`, `runs/{runId}/debug`) answer 404 under
//!   v1. Every v1 answer, errors included, carries `Deprecation: @1775001600`,
//!   `Sunset: Tue, 30 Nov 2027 00:00:00 GMT` and
//!   `Link: </api/workflows/automations>; rel="successor-version"`; workflows answers none.
//! - **Where the generations differ.** Workflows requires `name` on create (v1 does not and
//!   names such an automation `Untitled automation`); rounds every schedule `interval` to
//!   whole minutes on create and update ([`crate::qlik::model::workflows_interval`]); reads
//!   `spaceId` on create and `maxConcurrentRuns` on create and update (v1 ignores both, like
//!   any field outside its contract); lists only the caller's own automations unless
//!   `listAll=true`, which only tenant admins and OAuth bots may send (403 otherwise), whereas
//!   v1 shows an admin the whole tenant; and its settings are
//!   `{"maxConcurrentRunsPerAutomation": int}` where v1's are `{"automationsEnabled": bool}`
//!   (the tenant keeps both).
//! - **Spaces.** Shared spaces are registered at start-up ([`EmulatorConfig::spaces`]).
//!   `spaceId` absent, null or `""` means the owner's personal space, shown as `"spaceId":
//!   null`; an unregistered space is 404 `space X not found`. `actions/change-space
//!   {"spaceId"}` moves an automation (204; `""` back to the personal space).
//! - **Concurrency.** `maxConcurrentRuns` must be an integer from 1 to the tenant's
//!   `maxConcurrentRunsPerAutomation` (default 10), else 400. Never set, it is shown as
//!   `"maxConcurrentRuns": null` in both generations' objects (the key is always present).
//!   It is stored and echoed, not enforced on runs.
//! - **Owners.** `actions/move` and `actions/change-owner` are one operation (admin only, the
//!   run history goes).
//! - **Debug logs.** `GET .../runs/{runId}/debug` answers `{"url"}` like export, a short-lived
//!   unauthenticated link under `/_emulator/exports/`, serving
//!   `{"run": <run detail>, "log": [<log entries>]}`; unlike export it works while the run is
//!   still going.
//! - **Credentials.** API keys ([`ApiKey`]) and OAuth2 client-credentials clients
//!   ([`OAuthClient`]). `POST /oauth/token` with a JSON (or form-encoded) body
//!   `{"client_id","client_secret","grant_type":"client_credentials","scope"?}` answers
//!   `{"access_token","token_type":"bearer","expires_in","scope":"admin.automations"}`; an
//!   unknown client or wrong secret is 401 `invalid_client`, a missing field 400
//!   `invalid_request`, another grant type 400 `unsupported_grant_type`, a scope list without
//!   `admin.automations` 400 `invalid_scope`, all in the API's error envelope with the OAuth
//!   code as title. A token acts as the bot user `bot-<clientId>`, a tenant admin with its
//!   own rate budget, in both generations; an unknown or expired one is 401. The token
//!   endpoint is neither rate limited nor counted per endpoint.
//!
//! The unauthenticated control surface under `/_emulator/`:
//!
//! - `GET /health`;
//! - `GET /counters` ([`Counters`]: `total`, `byEndpoint`, `byTier`, `byUser`, `byApi`,
//!   `rateLimited`, `faultsInjected`, `tokenRequests`, `tokensIssued`) and
//!   `POST /counters/reset`;
//! - `GET`, `PUT`, `DELETE /faults` ([`FaultConfig`]);
//! - `GET /automations`: every automation's detail, all owners;
//! - `GET /exports/{token}.json`: what export and debug links serve (403 once expired);
//! - `POST /oauth/expire`: every access token issued so far expires now (204), so a client's
//!   renewal can be tested without waiting.
//!
//! Start it in-process with [`RunningEmulator::start`], or from the command line with the
//! `emulator` subcommand ([`cli`]).

pub mod cli;
mod control;
mod counters;
mod error;
mod faults;
mod handlers;
mod model;
mod oauth;
mod pagination;
mod ratelimit;
mod respond;
mod routes;
mod run_handlers;
mod runs;
mod save;
mod server;
mod store;
mod usage;
mod validate;
mod wire;
mod workspace;

use std::fmt;
use std::net::SocketAddr;
use std::str::FromStr;
use std::time::Duration;

pub use counters::{Counters, DROPPED, EndpointCounters};
pub use faults::{FaultConfig, FaultRule};
pub use oauth::{OAuthClient, OAuthClientParseError};
pub use server::RunningEmulator;

/// An API key the emulator accepts, and the user it authenticates as.
///
/// Parsed from `KEY=USERID[:admin]` on the command line. `Debug` never shows the key.
#[derive(Clone, PartialEq, Eq)]
pub struct ApiKey {
    /// The bearer token clients send in `Authorization: Bearer <key>`.
    pub key: String,
    /// The user id the key belongs to; it becomes `ownerId` of what the key creates.
    pub user_id: String,
    /// A tenant admin sees every automation (in v1 lists by default, in workflows lists with
    /// `listAll=true`) and may move automations, change settings and read usage.
    pub admin: bool,
}

impl ApiKey {
    /// A plain (non-admin) key.
    pub fn user(key: impl Into<String>, user_id: impl Into<String>) -> ApiKey {
        ApiKey {
            key: key.into(),
            user_id: user_id.into(),
            admin: false,
        }
    }

    /// A tenant-admin key.
    pub fn admin(key: impl Into<String>, user_id: impl Into<String>) -> ApiKey {
        ApiKey {
            key: key.into(),
            user_id: user_id.into(),
            admin: true,
        }
    }
}

impl fmt::Debug for ApiKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The key is a credential: it must never reach a log line, even through `{:?}`.
        f.debug_struct("ApiKey")
            .field("key", &"<redacted>")
            .field("user_id", &self.user_id)
            .field("admin", &self.admin)
            .finish()
    }
}

/// Why an `KEY=USERID[:admin]` string was refused. Never contains the key itself.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ApiKeyParseError {
    /// There is no `=` separating key and user id.
    #[error("an API key must be written KEY=USERID[:admin]")]
    MissingSeparator,
    /// The key part is empty.
    #[error("the key part of KEY=USERID[:admin] is empty")]
    EmptyKey,
    /// The user id part is empty.
    #[error("the user id part of KEY=USERID[:admin] is empty")]
    EmptyUser,
}

impl FromStr for ApiKey {
    type Err = ApiKeyParseError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        // Split at the last '=' so keys ending in base64 padding still parse; user ids never
        // contain '='.
        let (key, user) = s
            .rsplit_once('=')
            .ok_or(ApiKeyParseError::MissingSeparator)?;
        let (user, admin) = match user.strip_suffix(":admin") {
            Some(u) => (u, true),
            None => (user, false),
        };
        if key.is_empty() {
            return Err(ApiKeyParseError::EmptyKey);
        }
        if user.is_empty() {
            return Err(ApiKeyParseError::EmptyUser);
        }
        Ok(ApiKey {
            key: key.to_owned(),
            user_id: user.to_owned(),
            admin,
        })
    }
}

/// How long access tokens live unless configured otherwise: Qlik's default of six hours.
pub const DEFAULT_OAUTH_TOKEN_TTL: Duration = Duration::from_secs(6 * 3600);

/// How an emulator is set up. Start from [`EmulatorConfig::default`] and override fields.
#[derive(Debug, Clone)]
pub struct EmulatorConfig {
    /// Where to listen; `127.0.0.1:0` picks a free port.
    pub listen: SocketAddr,
    /// The keys accepted; any other bearer token (that is no live access token) gets 401.
    pub keys: Vec<ApiKey>,
    /// The OAuth2 clients that may get access tokens from `POST /oauth/token`.
    pub oauth_clients: Vec<OAuthClient>,
    /// How long an access token lives (`expires_in`); at least one second.
    pub oauth_token_ttl: Duration,
    /// The shared spaces automations may be created in or moved to.
    pub spaces: Vec<String>,
    /// Tier 1 (reads) requests allowed per user per minute, counted over `rate_window`.
    pub tier1_per_minute: u32,
    /// Tier 2 (writes and actions) requests allowed per user per minute, counted over
    /// `rate_window`.
    pub tier2_per_minute: u32,
    /// The sliding window the tiers are counted over, the per-minute limits scaled to it:
    /// five minutes as on the live service (Qlik's "to support bursts"); one minute is the
    /// strict case.
    pub rate_window: Duration,
    /// How long a run takes from creation to its final status.
    pub run_duration: Duration,
    /// How long an export or debug URL stays valid.
    pub export_ttl: Duration,
    /// Emulate the reported live normalisation of schedules in both generations: interval
    /// rounded to a multiple of 60 seconds (at least 60) and only the first schedule kept.
    /// (Workflows rounds intervals anyway.)
    pub normalize_schedules: bool,
    /// Faults injected from the start; replaceable at runtime.
    pub faults: FaultConfig,
}

impl Default for EmulatorConfig {
    fn default() -> Self {
        EmulatorConfig {
            listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            keys: Vec::new(),
            oauth_clients: Vec::new(),
            oauth_token_ttl: DEFAULT_OAUTH_TOKEN_TTL,
            spaces: Vec::new(),
            tier1_per_minute: 1000,
            tier2_per_minute: 100,
            rate_window: crate::qlik::ratelimit::DEFAULT_WINDOW,
            run_duration: Duration::from_secs(2),
            export_ttl: Duration::from_secs(5 * 60),
            normalize_schedules: false,
            faults: FaultConfig::default(),
        }
    }
}

/// Why an emulator could not start.
#[derive(Debug, thiserror::Error)]
pub enum EmulatorError {
    /// The configuration is unusable.
    #[error("invalid emulator configuration: {0}")]
    InvalidConfig(String),
    /// The listen address could not be bound.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address asked for.
        addr: SocketAddr,
        /// What the OS said.
        source: std::io::Error,
    },
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn api_key_parses_plain_and_admin() {
        assert_eq!(
            "k1=user1".parse::<ApiKey>().unwrap(),
            ApiKey::user("k1", "user1")
        );
        assert_eq!(
            "k1==user1:admin".parse::<ApiKey>().unwrap(),
            ApiKey::admin("k1=", "user1")
        );
        assert_eq!(
            "nokey".parse::<ApiKey>(),
            Err(ApiKeyParseError::MissingSeparator)
        );
        assert_eq!("=u".parse::<ApiKey>(), Err(ApiKeyParseError::EmptyKey));
        assert_eq!(
            "k=:admin".parse::<ApiKey>(),
            Err(ApiKeyParseError::EmptyUser)
        );
    }

    #[test]
    fn api_key_debug_hides_the_key() {
        let shown = format!("{:?}", ApiKey::admin("secret-value", "u1"));
        assert!(!shown.contains("secret-value"), "{shown}");
        assert!(shown.contains("u1"));
    }
}
