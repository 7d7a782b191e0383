//! A typed async client for the Qlik Automations REST API, both generations
//! (`/api/workflows/automations...` and `/api/v1/automations...`).
//!
//! Free of Kubernetes types, so the controller, the kubectl plugin and the tests share it.
//! [`QlikClient`] has one method per endpoint; [`ClientPool`] shares one client, and so one
//! rate limiter, per tenant and user. Free of any metrics library too: what the client sends
//! and what is left of its rate budget go to a [`Telemetry`] of the caller's choosing.

pub mod auth;
pub mod client;
pub mod endpoint;
pub mod error;
pub mod filter;
pub mod model;
pub mod pool;
pub mod query;
pub mod ratelimit;
pub mod retry;
pub mod telemetry;

pub use auth::{Credential, OAuthClient, Redacted};
pub use client::{ApiKey, ClientConfig, DeprecationNotice, QlikClient, UsageQuery};
pub use endpoint::{Api, Endpoint, Tier};
pub use error::{ErrorClass, QlikError};
pub use filter::Filter;
pub use pool::ClientPool;
pub use query::{ListParams, Sort};
pub use ratelimit::{RateLimiter, RateLimits};
pub use retry::RetryPolicy;
pub use telemetry::{Answer, Budget, Caller, Telemetry, TokenOutcome};
