//! Request counters, so tests can assert how many calls of each kind a client made (e.g. that
//! a steady-state resync costs N/200 list calls and no writes, or that a client fetched one
//! OAuth token and not one per request).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::qlik::endpoint::{Api, Endpoint, Tier};

/// The `byStatus` key of requests whose connection was dropped on purpose.
pub const DROPPED: &str = "dropped";

/// A snapshot of the counters, as served by `GET /_emulator/counters`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct Counters {
    /// Every API request that reached authentication.
    pub total: u64,
    /// Per [`Endpoint::name`].
    pub by_endpoint: BTreeMap<String, EndpointCounters>,
    /// Authenticated requests per tier label (`tier1`, `tier2`).
    pub by_tier: BTreeMap<String, u64>,
    /// Authenticated requests per user id (an OAuth bot is `bot-<clientId>`).
    pub by_user: BTreeMap<String, u64>,
    /// Authenticated requests per API generation ([`Api::label`]: `v1`, `workflows`); both
    /// keys are always present.
    pub by_api: BTreeMap<String, u64>,
    /// Requests refused by the rate limiter (not counting injected 429s).
    pub rate_limited: u64,
    /// Requests that got an injected fault (error, 429 or dropped connection).
    pub faults_injected: u64,
    /// Requests to `POST /oauth/token`, whatever their outcome (not in `total`: the token
    /// endpoint is not one of the API's tiered endpoints).
    pub token_requests: u64,
    /// Access tokens granted.
    pub tokens_issued: u64,
}

/// The counters of one endpoint.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct EndpointCounters {
    /// Requests to this endpoint.
    pub total: u64,
    /// Per status code (`"200"`, `"429"`, ...) or [`DROPPED`].
    pub by_status: BTreeMap<String, u64>,
}

impl Default for Counters {
    fn default() -> Self {
        Counters {
            total: 0,
            by_endpoint: BTreeMap::new(),
            by_tier: [Tier::Tier1, Tier::Tier2]
                .into_iter()
                .map(|t| (t.label().to_owned(), 0))
                .collect(),
            by_user: BTreeMap::new(),
            by_api: Api::ALL
                .into_iter()
                .map(|a| (a.label().to_owned(), 0))
                .collect(),
            rate_limited: 0,
            faults_injected: 0,
            token_requests: 0,
            tokens_issued: 0,
        }
    }
}

impl Counters {
    /// Requests to `endpoint`.
    pub fn endpoint(&self, endpoint: Endpoint) -> u64 {
        self.by_endpoint.get(endpoint.name()).map_or(0, |c| c.total)
    }

    /// Requests to `endpoint` answered with `status`.
    pub fn endpoint_status(&self, endpoint: Endpoint, status: u16) -> u64 {
        self.by_endpoint
            .get(endpoint.name())
            .and_then(|c| c.by_status.get(&status.to_string()))
            .copied()
            .unwrap_or(0)
    }

    /// Authenticated requests in `tier`.
    pub fn tier(&self, tier: Tier) -> u64 {
        self.by_tier.get(tier.label()).copied().unwrap_or(0)
    }

    /// Authenticated requests in generation `api`.
    pub fn api(&self, api: Api) -> u64 {
        self.by_api.get(api.label()).copied().unwrap_or(0)
    }

    /// Requests to Tier 2 endpoints (creates, updates, deletes, actions), whatever their
    /// outcome: what a converged client should not be sending.
    pub fn writes(&self) -> u64 {
        Endpoint::ALL
            .into_iter()
            .filter(|e| e.tier() == Tier::Tier2)
            .map(|e| self.endpoint(e))
            .sum()
    }

    /// Records one request to `endpoint` in generation `api`. `user` is `None` when
    /// authentication failed.
    pub(crate) fn record(
        &mut self,
        endpoint: Endpoint,
        api: Api,
        outcome: &str,
        user: Option<&str>,
    ) {
        self.total += 1;
        let e = self
            .by_endpoint
            .entry(endpoint.name().to_owned())
            .or_default();
        e.total += 1;
        *e.by_status.entry(outcome.to_owned()).or_default() += 1;
        if let Some(user) = user {
            *self
                .by_tier
                .entry(endpoint.tier().label().to_owned())
                .or_default() += 1;
            *self.by_user.entry(user.to_owned()).or_default() += 1;
            *self.by_api.entry(api.label().to_owned()).or_default() += 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_by_endpoint_status_tier_user_and_api() {
        let mut c = Counters::default();
        assert_eq!(c.by_api.len(), 2);
        c.record(Endpoint::ListAutomations, Api::V1, "200", Some("u1"));
        c.record(
            Endpoint::CreateAutomation,
            Api::Workflows,
            "201",
            Some("u1"),
        );
        c.record(Endpoint::CreateAutomation, Api::Workflows, "401", None);
        assert_eq!(c.total, 3);
        assert_eq!(c.endpoint(Endpoint::CreateAutomation), 2);
        assert_eq!(c.endpoint_status(Endpoint::CreateAutomation, 401), 1);
        assert_eq!(c.tier(Tier::Tier1), 1);
        assert_eq!(c.tier(Tier::Tier2), 1);
        assert_eq!(c.by_user["u1"], 2);
        assert_eq!(c.writes(), 2);
        let json = serde_json::to_value(&c).unwrap();
        assert_eq!(
            json["byEndpoint"]["create_automation"]["byStatus"]["201"],
            1
        );
        assert_eq!(json["byTier"]["tier2"], 1);
        assert_eq!(json["byApi"], serde_json::json!({"v1": 1, "workflows": 1}));
        assert_eq!((c.api(Api::V1), c.api(Api::Workflows)), (1, 1));
        assert_eq!(
            (
                json["tokenRequests"].as_u64(),
                json["tokensIssued"].as_u64()
            ),
            (Some(0), Some(0))
        );
    }
}
