//! A faithful local implementation of the Qlik Automations API (`/api/v1/automations...`).
//!
//! The operator's tests cannot reach Qlik Cloud, and a newcomer should be able to try the
//! operator without a tenant, so this emulator answers every endpoint of the reference with the
//! same status codes, shapes, errors, pagination and rate limits as the live service. It adds
//! an unauthenticated control surface under `/_emulator/` for fault injection, request
//! counters, a snapshot of all automations and the run-log downloads that export hands out.
//!
//! Start it in-process with [`RunningEmulator::start`], or from the command line with the
//! `emulator` subcommand ([`cli`]).

pub mod cli;
mod counters;
mod error;
mod faults;
mod handlers;
mod model;
mod pagination;
mod ratelimit;
mod routes;
mod runs;
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
    /// A tenant admin sees every automation and may move automations, change settings and
    /// read usage.
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

/// How an emulator is set up. Start from [`EmulatorConfig::default`] and override fields.
#[derive(Debug, Clone)]
pub struct EmulatorConfig {
    /// Where to listen; `127.0.0.1:0` picks a free port.
    pub listen: SocketAddr,
    /// The keys accepted; any other bearer token gets 401.
    pub keys: Vec<ApiKey>,
    /// Tier 1 (reads) requests allowed per user in any 60-second window.
    pub tier1_per_minute: u32,
    /// Tier 2 (writes and actions) requests allowed per user in any 60-second window.
    pub tier2_per_minute: u32,
    /// How long a run takes from creation to its final status.
    pub run_duration: Duration,
    /// How long an export URL stays valid.
    pub export_ttl: Duration,
    /// Emulate the reported live normalisation of schedules: interval rounded to a multiple
    /// of 60 seconds (at least 60) and only the first schedule kept.
    pub normalize_schedules: bool,
    /// Faults injected from the start; replaceable at runtime.
    pub faults: FaultConfig,
}

impl Default for EmulatorConfig {
    fn default() -> Self {
        EmulatorConfig {
            listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            keys: Vec::new(),
            tier1_per_minute: 1000,
            tier2_per_minute: 100,
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
