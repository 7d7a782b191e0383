//! Maps a method and path to an [`Endpoint`] of the catalogue (with its ids).
//!
//! Done by hand rather than with axum's router so that `settings` and `usage` can never be
//! captured as an automation id, and so that every request passes through one pipeline that
//! authenticates, counts, rate-limits and injects faults by endpoint.

use axum::http::Method;

use super::error::ApiError;
use crate::qlik::endpoint::Endpoint;

/// An API request's target.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Target {
    /// One of the reference's 18 endpoints.
    Api(Route),
    /// `POST /api/v1/automations/{id}/actions/execute` with `X-Execution-Token`: how triggered
    /// and webhook automations are started without an API key. Not in the reference's list,
    /// so neither counted nor rate limited.
    Execute {
        /// The automation id.
        id: String,
    },
}

/// An endpoint and the ids in its path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Route {
    /// Which endpoint.
    pub(crate) endpoint: Endpoint,
    /// `{id}`, when the path has one.
    pub(crate) id: String,
    /// `{runId}`, when the path has one.
    pub(crate) run_id: String,
}

fn route(endpoint: Endpoint, id: &str, run_id: &str) -> Target {
    Target::Api(Route {
        endpoint,
        id: id.to_owned(),
        run_id: run_id.to_owned(),
    })
}

/// Classifies a request: 404 for unknown paths, 405 for known paths with the wrong method.
pub(crate) fn classify(method: &Method, path: &str) -> Result<Target, ApiError> {
    use Endpoint::*;
    let not_found = || ApiError::NotFound(format!("no such resource: {path}"));
    let rest = path.strip_prefix("/api/").ok_or_else(not_found)?;
    let segments: Vec<&str> = rest.trim_end_matches('/').split('/').collect();
    if segments.iter().any(|s| s.is_empty()) {
        return Err(not_found());
    }
    let m = |pairs: &[(Method, Target)]| {
        pairs
            .iter()
            .find(|(allowed, _)| allowed == method)
            .map(|(_, t)| t.clone())
            .ok_or_else(|| ApiError::MethodNotAllowed(method.to_string()))
    };
    let (get, post, put, delete) = (Method::GET, Method::POST, Method::PUT, Method::DELETE);
    match segments.as_slice() {
        ["v1", "automations"] => m(&[
            (get, route(ListAutomations, "", "")),
            (post, route(CreateAutomation, "", "")),
        ]),
        ["v1", "automations", "settings"] => m(&[
            (get, route(GetSettings, "", "")),
            (put, route(UpdateSettings, "", "")),
        ]),
        ["v1", "automations", "usage"] => m(&[(get, route(GetUsage, "", ""))]),
        ["v1", "automations", id] => m(&[
            (get, route(GetAutomation, id, "")),
            (put, route(UpdateAutomation, id, "")),
            (delete, route(DeleteAutomation, id, "")),
        ]),
        ["v1", "automations", id, "actions", action] => {
            let target = match *action {
                "copy" => route(CopyAutomation, id, ""),
                "disable" => route(DisableAutomation, id, ""),
                "enable" => route(EnableAutomation, id, ""),
                "move" => route(MoveAutomation, id, ""),
                "execute" => Target::Execute {
                    id: (*id).to_owned(),
                },
                _ => return Err(not_found()),
            };
            m(&[(post, target)])
        }
        ["v1", "automations", id, "runs"] => m(&[
            (get, route(ListRuns, id, "")),
            (post, route(CreateRun, id, "")),
        ]),
        ["v1", "automations", id, "runs", run] => m(&[(get, route(GetRun, id, run))]),
        ["v1", "automations", id, "runs", run, "actions", action] => {
            let endpoint = match *action {
                "export" => ExportRun,
                "retry" => RetryRun,
                "stop" => StopRun,
                _ => return Err(not_found()),
            };
            m(&[(post, route(endpoint, id, run))])
        }
        _ => Err(not_found()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn endpoint(method: Method, path: &str) -> Endpoint {
        match classify(&method, path).unwrap() {
            Target::Api(r) => r.endpoint,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn every_endpoint_is_reachable_at_its_template() {
        for e in Endpoint::ALL {
            let path = format!(
                "/api{}",
                e.template().replace("{id}", "a1").replace("{runId}", "r1")
            );
            let method = match e.method() {
                crate::qlik::endpoint::Method::Get => Method::GET,
                crate::qlik::endpoint::Method::Post => Method::POST,
                crate::qlik::endpoint::Method::Put => Method::PUT,
                crate::qlik::endpoint::Method::Delete => Method::DELETE,
            };
            assert_eq!(endpoint(method, &path), e, "{path}");
        }
    }

    #[test]
    fn settings_and_usage_are_not_ids() {
        assert_eq!(
            endpoint(Method::GET, "/api/v1/automations/settings"),
            Endpoint::GetSettings
        );
        assert_eq!(
            endpoint(Method::GET, "/api/v1/automations/usage"),
            Endpoint::GetUsage
        );
        assert!(matches!(
            classify(&Method::DELETE, "/api/v1/automations/settings"),
            Err(ApiError::MethodNotAllowed(_))
        ));
    }

    #[test]
    fn ids_are_extracted_and_unknown_paths_are_404() {
        let Target::Api(r) =
            classify(&Method::POST, "/api/v1/automations/a/runs/b/actions/stop").unwrap()
        else {
            panic!()
        };
        assert_eq!((r.id.as_str(), r.run_id.as_str()), ("a", "b"));
        for p in [
            "/api/v2/automations",
            "/api/v1/automations//runs",
            "/other",
            "/api/v1/automations/a/actions/nope",
        ] {
            assert!(
                matches!(classify(&Method::GET, p), Err(ApiError::NotFound(_))),
                "{p}"
            );
        }
        assert_eq!(
            classify(&Method::POST, "/api/v1/automations/x/actions/execute").unwrap(),
            Target::Execute { id: "x".into() }
        );
    }
}
