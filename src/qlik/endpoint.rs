//! The catalogue of the Automations API's endpoints: method, path shape, rate-limit tier and
//! whether a call may be retried blindly.
//!
//! The client uses it to pick the limiter tier and the retry policy of each call; the emulator
//! uses it to count requests and to enforce the same tiers. Keeping both on one table means
//! they cannot disagree about which endpoint is a write.

use std::fmt;

/// A rate-limit tier of the Qlik API, counted per user.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Tier {
    /// Most reads, including listing: 1000 requests per minute by default.
    Tier1,
    /// Creates, updates, deletes and actions: 100 requests per minute by default.
    Tier2,
}

impl Tier {
    /// The default number of requests per minute Qlik allows in this tier.
    pub const fn default_per_minute(self) -> u32 {
        match self {
            Tier::Tier1 => 1000,
            Tier::Tier2 => 100,
        }
    }

    /// A short stable label ("tier1" / "tier2") for metrics and counters.
    pub const fn label(self) -> &'static str {
        match self {
            Tier::Tier1 => "tier1",
            Tier::Tier2 => "tier2",
        }
    }
}

impl fmt::Display for Tier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.label())
    }
}

/// HTTP method of an endpoint (only the ones the API uses).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Method {
    /// GET
    Get,
    /// POST
    Post,
    /// PUT
    Put,
    /// DELETE
    Delete,
}

impl Method {
    /// The method as reqwest/http understands it.
    pub fn as_http(self) -> reqwest::Method {
        match self {
            Method::Get => reqwest::Method::GET,
            Method::Post => reqwest::Method::POST,
            Method::Put => reqwest::Method::PUT,
            Method::Delete => reqwest::Method::DELETE,
        }
    }
}

/// Every endpoint of the Automations API reference (18 in all).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Endpoint {
    /// `GET /v1/automations`
    ListAutomations,
    /// `POST /v1/automations`
    CreateAutomation,
    /// `GET /v1/automations/{id}`
    GetAutomation,
    /// `PUT /v1/automations/{id}`
    UpdateAutomation,
    /// `DELETE /v1/automations/{id}`
    DeleteAutomation,
    /// `POST /v1/automations/{id}/actions/copy`
    CopyAutomation,
    /// `POST /v1/automations/{id}/actions/disable`
    DisableAutomation,
    /// `POST /v1/automations/{id}/actions/enable`
    EnableAutomation,
    /// `POST /v1/automations/{id}/actions/move`
    MoveAutomation,
    /// `GET /v1/automations/{id}/runs`
    ListRuns,
    /// `POST /v1/automations/{id}/runs`
    CreateRun,
    /// `GET /v1/automations/{id}/runs/{runId}`
    GetRun,
    /// `POST /v1/automations/{id}/runs/{runId}/actions/export`
    ExportRun,
    /// `POST /v1/automations/{id}/runs/{runId}/actions/retry`
    RetryRun,
    /// `POST /v1/automations/{id}/runs/{runId}/actions/stop`
    StopRun,
    /// `GET /v1/automations/settings`
    GetSettings,
    /// `PUT /v1/automations/settings`
    UpdateSettings,
    /// `GET /v1/automations/usage`
    GetUsage,
}

impl Endpoint {
    /// All endpoints, in the reference's order.
    pub const ALL: [Endpoint; 18] = [
        Endpoint::ListAutomations,
        Endpoint::CreateAutomation,
        Endpoint::GetAutomation,
        Endpoint::UpdateAutomation,
        Endpoint::DeleteAutomation,
        Endpoint::CopyAutomation,
        Endpoint::DisableAutomation,
        Endpoint::EnableAutomation,
        Endpoint::MoveAutomation,
        Endpoint::ListRuns,
        Endpoint::CreateRun,
        Endpoint::GetRun,
        Endpoint::ExportRun,
        Endpoint::RetryRun,
        Endpoint::StopRun,
        Endpoint::GetSettings,
        Endpoint::UpdateSettings,
        Endpoint::GetUsage,
    ];

    /// The HTTP method.
    pub const fn method(self) -> Method {
        use Endpoint::*;
        match self {
            ListAutomations | GetAutomation | ListRuns | GetRun | GetSettings | GetUsage => {
                Method::Get
            }
            UpdateAutomation | UpdateSettings => Method::Put,
            DeleteAutomation => Method::Delete,
            CreateAutomation | CopyAutomation | DisableAutomation | EnableAutomation
            | MoveAutomation | CreateRun | ExportRun | RetryRun | StopRun => Method::Post,
        }
    }

    /// The rate-limit tier the reference gives this endpoint.
    pub const fn tier(self) -> Tier {
        match self.method() {
            Method::Get => Tier::Tier1,
            _ => Tier::Tier2,
        }
    }

    /// The path template relative to `/api`, as written in the reference.
    pub const fn template(self) -> &'static str {
        use Endpoint::*;
        match self {
            ListAutomations | CreateAutomation => "/v1/automations",
            GetAutomation | UpdateAutomation | DeleteAutomation => "/v1/automations/{id}",
            CopyAutomation => "/v1/automations/{id}/actions/copy",
            DisableAutomation => "/v1/automations/{id}/actions/disable",
            EnableAutomation => "/v1/automations/{id}/actions/enable",
            MoveAutomation => "/v1/automations/{id}/actions/move",
            ListRuns | CreateRun => "/v1/automations/{id}/runs",
            GetRun => "/v1/automations/{id}/runs/{runId}",
            ExportRun => "/v1/automations/{id}/runs/{runId}/actions/export",
            RetryRun => "/v1/automations/{id}/runs/{runId}/actions/retry",
            StopRun => "/v1/automations/{id}/runs/{runId}/actions/stop",
            GetSettings | UpdateSettings => "/v1/automations/settings",
            GetUsage => "/v1/automations/usage",
        }
    }

    /// Whether repeating the call after an ambiguous failure cannot change the outcome.
    ///
    /// Creates (automation, copy, run) and retry make something new each time, so a retry
    /// after a timeout could duplicate it: the caller must look before trying again. Export
    /// makes only a fresh short-lived URL, so it is safe to repeat.
    pub const fn idempotent(self) -> bool {
        use Endpoint::*;
        !matches!(
            self,
            CreateAutomation | CopyAutomation | CreateRun | RetryRun
        )
    }

    /// A stable snake-case name for logs, metrics and the emulator's counters.
    pub const fn name(self) -> &'static str {
        use Endpoint::*;
        match self {
            ListAutomations => "list_automations",
            CreateAutomation => "create_automation",
            GetAutomation => "get_automation",
            UpdateAutomation => "update_automation",
            DeleteAutomation => "delete_automation",
            CopyAutomation => "copy_automation",
            DisableAutomation => "disable_automation",
            EnableAutomation => "enable_automation",
            MoveAutomation => "move_automation",
            ListRuns => "list_runs",
            CreateRun => "create_run",
            GetRun => "get_run",
            ExportRun => "export_run",
            RetryRun => "retry_run",
            StopRun => "stop_run",
            GetSettings => "get_settings",
            UpdateSettings => "update_settings",
            GetUsage => "get_usage",
        }
    }

    /// Looks an endpoint up by its [`Endpoint::name`].
    pub fn from_name(name: &str) -> Option<Endpoint> {
        Endpoint::ALL.into_iter().find(|e| e.name() == name)
    }
}

impl fmt::Display for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_are_tier1_and_everything_else_tier2() {
        let tier1: Vec<_> = Endpoint::ALL
            .into_iter()
            .filter(|e| e.tier() == Tier::Tier1)
            .collect();
        assert_eq!(
            tier1,
            vec![
                Endpoint::ListAutomations,
                Endpoint::GetAutomation,
                Endpoint::ListRuns,
                Endpoint::GetRun,
                Endpoint::GetSettings,
                Endpoint::GetUsage
            ]
        );
        assert_eq!(Endpoint::ExportRun.tier(), Tier::Tier2);
    }

    #[test]
    fn creating_calls_are_not_blindly_retryable() {
        for e in Endpoint::ALL {
            let creates = matches!(
                e,
                Endpoint::CreateAutomation
                    | Endpoint::CopyAutomation
                    | Endpoint::CreateRun
                    | Endpoint::RetryRun
            );
            assert_eq!(e.idempotent(), !creates, "{e}");
        }
    }

    #[test]
    fn names_round_trip() {
        for e in Endpoint::ALL {
            assert_eq!(Endpoint::from_name(e.name()), Some(e));
        }
        assert_eq!(Endpoint::from_name("nope"), None);
    }
}
