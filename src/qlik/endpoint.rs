//! The catalogue of the Automations API's endpoints: method, path shape, rate-limit tier,
//! whether a call may be retried blindly, and which API generation has it.
//!
//! The client uses it to pick the limiter tier and the retry policy of each call; the emulator
//! uses it to count requests and to enforce the same tiers. Keeping both on one table means
//! they cannot disagree about which endpoint is a write.

use std::{fmt, str::FromStr};

/// A generation of the Automations API. Both share one store on the tenant: what one creates,
/// the other sees.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub enum Api {
    /// `/api/workflows/automations`: Qlik's preferred API since 2026-04 (the default).
    #[default]
    Workflows,
    /// `/api/v1/automations`: the seed generation, deprecated and announced for removal on or
    /// after 2027-11-30.
    V1,
}

impl Api {
    /// Both generations.
    pub const ALL: [Api; 2] = [Api::Workflows, Api::V1];

    /// The stable label used in Secrets (`api` key), metrics and counters.
    pub const fn label(self) -> &'static str {
        match self {
            Api::Workflows => "workflows",
            Api::V1 => "v1",
        }
    }

    /// The path segments of the automations collection below `/api`.
    pub const fn segments(self) -> [&'static str; 2] {
        match self {
            Api::Workflows => ["workflows", "automations"],
            Api::V1 => ["v1", "automations"],
        }
    }

    /// The collection path below `/api`, e.g. `/workflows/automations`.
    pub const fn prefix(self) -> &'static str {
        match self {
            Api::Workflows => "/workflows/automations",
            Api::V1 => "/v1/automations",
        }
    }
}

impl fmt::Display for Api {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.label())
    }
}

impl FromStr for Api {
    type Err = String;

    fn from_str(s: &str) -> Result<Api, String> {
        match s.trim() {
            "workflows" => Ok(Api::Workflows),
            "v1" => Ok(Api::V1),
            other => Err(format!(
                "unknown API generation {other:?}: expected \"workflows\" or \"v1\""
            )),
        }
    }
}

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

/// Every endpoint of the Automations API: the v1 reference's 18, plus the three only the
/// workflows generation has. Paths are relative to the generation's collection
/// ([`Api::prefix`]).
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
    /// `POST /workflows/automations/{id}/actions/change-owner` (workflows only)
    ChangeOwner,
    /// `POST /workflows/automations/{id}/actions/change-space` (workflows only)
    ChangeSpace,
    /// `GET /workflows/automations/{id}/runs/{runId}/debug` (workflows only)
    GetRunDebug,
}

impl Endpoint {
    /// All endpoints, in the reference's order, the workflows-only ones last.
    pub const ALL: [Endpoint; 21] = [
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
        Endpoint::ChangeOwner,
        Endpoint::ChangeSpace,
        Endpoint::GetRunDebug,
    ];

    /// Whether the generation `api` has this endpoint.
    pub const fn in_api(self, api: Api) -> bool {
        use Endpoint::*;
        match self {
            ChangeOwner | ChangeSpace | GetRunDebug => matches!(api, Api::Workflows),
            _ => true,
        }
    }

    /// The HTTP method.
    pub const fn method(self) -> Method {
        use Endpoint::*;
        match self {
            ListAutomations | GetAutomation | ListRuns | GetRun | GetSettings | GetUsage
            | GetRunDebug => Method::Get,
            UpdateAutomation | UpdateSettings => Method::Put,
            DeleteAutomation => Method::Delete,
            CreateAutomation | CopyAutomation | DisableAutomation | EnableAutomation
            | MoveAutomation | CreateRun | ExportRun | RetryRun | StopRun | ChangeOwner
            | ChangeSpace => Method::Post,
        }
    }

    /// The rate-limit tier the reference gives this endpoint.
    pub const fn tier(self) -> Tier {
        match self.method() {
            Method::Get => Tier::Tier1,
            _ => Tier::Tier2,
        }
    }

    /// The path template relative to the generation's collection ([`Api::prefix`]); empty
    /// for the collection itself.
    pub const fn template(self) -> &'static str {
        use Endpoint::*;
        match self {
            ListAutomations | CreateAutomation => "",
            GetAutomation | UpdateAutomation | DeleteAutomation => "/{id}",
            CopyAutomation => "/{id}/actions/copy",
            DisableAutomation => "/{id}/actions/disable",
            EnableAutomation => "/{id}/actions/enable",
            MoveAutomation => "/{id}/actions/move",
            ChangeOwner => "/{id}/actions/change-owner",
            ChangeSpace => "/{id}/actions/change-space",
            ListRuns | CreateRun => "/{id}/runs",
            GetRun => "/{id}/runs/{runId}",
            GetRunDebug => "/{id}/runs/{runId}/debug",
            ExportRun => "/{id}/runs/{runId}/actions/export",
            RetryRun => "/{id}/runs/{runId}/actions/retry",
            StopRun => "/{id}/runs/{runId}/actions/stop",
            GetSettings | UpdateSettings => "/settings",
            GetUsage => "/usage",
        }
    }

    /// The full path template below `/api` in generation `api`, e.g.
    /// `/workflows/automations/{id}`.
    pub fn path(self, api: Api) -> String {
        format!("{}{}", api.prefix(), self.template())
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
            ChangeOwner => "change_owner",
            ChangeSpace => "change_space",
            GetRunDebug => "get_run_debug",
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
                Endpoint::GetUsage,
                Endpoint::GetRunDebug,
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
    fn only_workflows_has_the_three_new_operations() {
        let workflows_only: Vec<_> = Endpoint::ALL
            .into_iter()
            .filter(|e| !e.in_api(Api::V1))
            .collect();
        assert_eq!(
            workflows_only,
            vec![
                Endpoint::ChangeOwner,
                Endpoint::ChangeSpace,
                Endpoint::GetRunDebug
            ]
        );
        assert!(Endpoint::ALL.iter().all(|e| e.in_api(Api::Workflows)));
        assert_eq!(
            Endpoint::GetRun.path(Api::Workflows),
            "/workflows/automations/{id}/runs/{runId}"
        );
        assert_eq!(
            Endpoint::GetSettings.path(Api::V1),
            "/v1/automations/settings"
        );
        for api in Api::ALL {
            assert_eq!(api.label().parse::<Api>(), Ok(api));
        }
        assert!("v2".parse::<Api>().is_err());
        assert_eq!(Api::default(), Api::Workflows);
    }

    #[test]
    fn names_round_trip() {
        for e in Endpoint::ALL {
            assert_eq!(Endpoint::from_name(e.name()), Some(e));
        }
        assert_eq!(Endpoint::from_name("nope"), None);
    }
}
