//! Maps a method and path to an [`Endpoint`] of the catalogue (with its ids) and the API
//! generation ([`Api`]) it came in on.
//!
//! Done by hand rather than with axum's router so that `settings` and `usage` can never be
//! captured as an automation id, and so that every request passes through one pipeline that
//! authenticates, counts, rate-limits and injects faults by endpoint. Both generations share
//! one table: the path below the generation's collection is the same, only the three
//! workflows-only endpoints ([`Endpoint::in_api`]) are 404 under `/api/v1/`.

use axum::http::Method;

use super::error::ApiError;
use crate::qlik::endpoint::{Api, Endpoint};

/// An API request's target.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Target {
    /// One of the catalogue's endpoints.
    Api(Route),
    /// `POST .../automations/{id}/actions/execute` with `X-Execution-Token`: how triggered
    /// and webhook automations are started without an API key. Not in the reference's list,
    /// so neither counted nor rate limited.
    Execute {
        /// The automation id.
        id: String,
    },
}

/// An endpoint, the generation it was called in, and the ids in its path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Route {
    /// Which endpoint.
    pub(crate) endpoint: Endpoint,
    /// Which generation's path it came in on.
    pub(crate) api: Api,
    /// `{id}`, when the path has one.
    pub(crate) id: String,
    /// `{runId}`, when the path has one.
    pub(crate) run_id: String,
}

/// The generation whose collection `path` lies under (`/api/v1/automations...` or
/// `/api/workflows/automations...`), if any.
pub(crate) fn api_of(path: &str) -> Option<Api> {
    let rest = path.strip_prefix("/api/")?;
    let mut segments = rest.split('/');
    let (generation, collection) = (segments.next()?, segments.next()?);
    Api::ALL
        .into_iter()
        .find(|api| api.segments() == [generation, collection])
}

/// Classifies a request: 404 for unknown paths (and for workflows-only endpoints under
/// `/api/v1/`), 405 for known paths with the wrong method.
pub(crate) fn classify(method: &Method, path: &str) -> Result<Target, ApiError> {
    let not_found = || ApiError::NotFound(format!("no such resource: {path}"));
    let api = api_of(path).ok_or_else(not_found)?;
    let rest = path
        .strip_prefix("/api")
        .and_then(|p| p.strip_prefix(api.prefix()))
        .ok_or_else(not_found)?;
    let rest = rest.trim_end_matches('/');
    let segments: Vec<&str> = match rest.strip_prefix('/') {
        None if rest.is_empty() => Vec::new(),
        None => return Err(not_found()),
        Some(r) => r.split('/').collect(),
    };
    if segments.iter().any(|s| s.is_empty()) {
        return Err(not_found());
    }
    let target = below_collection(method, api, &segments).ok_or_else(not_found)??;
    match &target {
        Target::Api(r) if !r.endpoint.in_api(api) => Err(not_found()),
        _ => Ok(target),
    }
}

/// The target of `segments` below a generation's collection: `None` for an unknown path,
/// `Some(Err)` for a known path with the wrong method.
fn below_collection(
    method: &Method,
    api: Api,
    segments: &[&str],
) -> Option<Result<Target, ApiError>> {
    use Endpoint::*;
    let route = |endpoint: Endpoint, id: &str, run_id: &str| {
        Target::Api(Route {
            endpoint,
            api,
            id: id.to_owned(),
            run_id: run_id.to_owned(),
        })
    };
    let m = |pairs: &[(Method, Target)]| {
        pairs
            .iter()
            .find(|(allowed, _)| allowed == method)
            .map(|(_, t)| t.clone())
            .ok_or_else(|| ApiError::MethodNotAllowed(method.to_string()))
    };
    let (get, post, put, delete) = (Method::GET, Method::POST, Method::PUT, Method::DELETE);
    let target = match segments {
        [] => m(&[
            (get, route(ListAutomations, "", "")),
            (post, route(CreateAutomation, "", "")),
        ]),
        ["settings"] => m(&[
            (get, route(GetSettings, "", "")),
            (put, route(UpdateSettings, "", "")),
        ]),
        ["usage"] => m(&[(get, route(GetUsage, "", ""))]),
        [id] => m(&[
            (get, route(GetAutomation, id, "")),
            (put, route(UpdateAutomation, id, "")),
            (delete, route(DeleteAutomation, id, "")),
        ]),
        [id, "actions", action] => {
            let target = match *action {
                "copy" => route(CopyAutomation, id, ""),
                "disable" => route(DisableAutomation, id, ""),
                "enable" => route(EnableAutomation, id, ""),
                "move" => route(MoveAutomation, id, ""),
                "change-owner" => route(ChangeOwner, id, ""),
                "change-space" => route(ChangeSpace, id, ""),
                "execute" => Target::Execute {
                    id: (*id).to_owned(),
                },
                _ => return None,
            };
            m(&[(post, target)])
        }
        [id, "runs"] => m(&[
            (get, route(ListRuns, id, "")),
            (post, route(CreateRun, id, "")),
        ]),
        [id, "runs", run] => m(&[(get, route(GetRun, id, run))]),
        [id, "runs", run, "debug"] => m(&[(get, route(GetRunDebug, id, run))]),
        [id, "runs", run, "actions", action] => {
            let endpoint = match *action {
                "export" => ExportRun,
                "retry" => RetryRun,
                "stop" => StopRun,
                _ => return None,
            };
            m(&[(post, route(endpoint, id, run))])
        }
        _ => return None,
    };
    Some(target)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn route(method: Method, path: &str) -> Route {
        match classify(&method, path).unwrap() {
            Target::Api(r) => r,
            other => panic!("{other:?}"),
        }
    }

    fn http_method(e: Endpoint) -> Method {
        match e.method() {
            crate::qlik::endpoint::Method::Get => Method::GET,
            crate::qlik::endpoint::Method::Post => Method::POST,
            crate::qlik::endpoint::Method::Put => Method::PUT,
            crate::qlik::endpoint::Method::Delete => Method::DELETE,
        }
    }

    #[test]
    fn every_endpoint_is_reachable_at_its_path_in_each_generation_that_has_it() {
        for api in Api::ALL {
            for e in Endpoint::ALL {
                let path = format!(
                    "/api{}",
                    e.path(api).replace("{id}", "a1").replace("{runId}", "r1")
                );
                let answer = classify(&http_method(e), &path);
                if e.in_api(api) {
                    let r = route(http_method(e), &path);
                    assert_eq!((r.endpoint, r.api), (e, api), "{path}");
                } else {
                    assert!(matches!(answer, Err(ApiError::NotFound(_))), "{path}");
                }
            }
        }
    }

    #[test]
    fn settings_and_usage_are_not_ids() {
        for api in Api::ALL {
            let p = format!("/api{}/settings", api.prefix());
            assert_eq!(route(Method::GET, &p).endpoint, Endpoint::GetSettings);
            let p = format!("/api{}/usage", api.prefix());
            assert_eq!(route(Method::GET, &p).endpoint, Endpoint::GetUsage);
        }
        assert!(matches!(
            classify(&Method::DELETE, "/api/v1/automations/settings"),
            Err(ApiError::MethodNotAllowed(_))
        ));
    }

    #[test]
    fn ids_are_extracted_and_unknown_paths_are_404() {
        let r = route(
            Method::POST,
            "/api/workflows/automations/a/runs/b/actions/stop",
        );
        assert_eq!((r.id.as_str(), r.run_id.as_str()), ("a", "b"));
        for p in [
            "/api/v2/automations",
            "/api/v1/automations//runs",
            "/api/v1/automationsx",
            "/api/workflows",
            "/other",
            "/api/v1/automations/a/actions/nope",
            "/api/v1/automations/a/runs/b/debug",
        ] {
            assert!(
                matches!(classify(&Method::GET, p), Err(ApiError::NotFound(_))),
                "{p}"
            );
        }
        for api in Api::ALL {
            let p = format!("/api{}/x/actions/execute", api.prefix());
            assert_eq!(
                classify(&Method::POST, &p).unwrap(),
                Target::Execute { id: "x".into() }
            );
        }
    }

    #[test]
    fn the_generation_is_read_from_the_path() {
        assert_eq!(api_of("/api/v1/automations/x"), Some(Api::V1));
        assert_eq!(api_of("/api/workflows/automations"), Some(Api::Workflows));
        assert_eq!(api_of("/api/v1/automationsx"), None);
        assert_eq!(api_of("/api/v1"), None);
        assert_eq!(api_of("/oauth/token"), None);
    }
}
