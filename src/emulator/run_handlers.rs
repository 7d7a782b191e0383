//! The run endpoints: list, create, get, stop, retry, export and (workflows) debug, and the
//! token-authenticated `actions/execute`. Export and debug hand out the same kind of
//! short-lived, unauthenticated link under `/_emulator/exports/`.

use std::time::Duration;

use chrono::{DateTime, Utc};
use rand::Rng;
use rand::distr::Alphanumeric;
use serde_json::{Value, json};
use uuid::Uuid;

use super::error::ApiError;
use super::handlers::{Ctx, Reply, bad, body_json};
use super::pagination::{ListQuery, ListSpec};
use super::routes::Route;
use super::runs::RunOrigin;
use super::store::{Export, RunStart, Store};
use super::validate::json_body;
use crate::qlik::endpoint::Endpoint;
use crate::qlik::query::{DEFAULT_RUN_LIMIT, RUN_FILTER_FIELDS, RUN_SORT_FIELDS};

const RUN_LIST: ListSpec = ListSpec {
    sort_fields: RUN_SORT_FIELDS,
    filter_fields: RUN_FILTER_FIELDS,
    default_limit: DEFAULT_RUN_LIMIT,
};

/// Export and debug links are forgotten this long after they expire (until then they answer
/// 403).
const FORGET_EXPORTS_AFTER: Duration = Duration::from_secs(3600);

/// Dispatches a run endpoint; other endpoints are the caller's mistake and answer 404.
pub(crate) fn handle(store: &mut Store, ctx: &Ctx<'_>, route: &Route) -> Result<Reply, ApiError> {
    use Endpoint::*;
    let (id, run_id) = (route.id.as_str(), route.run_id.as_str());
    match route.endpoint {
        ListRuns => {
            store.visible(ctx.caller, id)?;
            let q = ListQuery::parse(ctx.query, RUN_LIST)?;
            let items = store
                .runs
                .get(id)
                .map(|runs| runs.iter().map(|r| r.list_json(ctx.now)).collect())
                .unwrap_or_default();
            Ok(Reply::ok(
                q.page(items, &format!("{}{}", ctx.base_url, ctx.path)),
            ))
        }
        CreateRun => create_run(store, ctx, id),
        GetRun => {
            store.visible(ctx.caller, id)?;
            Ok(Reply::ok(store.run(id, run_id)?.detail_json(ctx.now)))
        }
        ExportRun => export_run(store, ctx, id, run_id),
        GetRunDebug => debug_run(store, ctx, id, run_id),
        RetryRun => {
            store.visible(ctx.caller, id)?;
            let run = store.run(id, run_id)?;
            let start = RunStart::api(
                &ctx.caller.user_id,
                run.context.clone(),
                run.inputs.clone(),
                None,
            );
            store.start_run(id, start, ctx.now)?;
            Ok(Reply::no_content())
        }
        StopRun => {
            store.visible(ctx.caller, id)?;
            store
                .run_mut(id, run_id)?
                .request_stop(ctx.now)
                .map_err(bad)?;
            Ok(Reply::no_content())
        }
        other => Err(ApiError::NotFound(format!(
            "{} is not a run endpoint",
            other.name()
        ))),
    }
}

fn create_run(store: &mut Store, ctx: &Ctx<'_>, id: &str) -> Result<Reply, ApiError> {
    store.visible(ctx.caller, id)?;
    let body = body_json(ctx)?;
    let obj = body
        .as_ref()
        .and_then(Value::as_object)
        .ok_or_else(|| bad("the request body must be a JSON object with context \"api\""))?;
    match obj.get("context") {
        None | Some(Value::Null) => return Err(bad("context is required and must be \"api\"")),
        Some(Value::String(c)) if c == "api" => {}
        Some(_) => return Err(bad("context must be \"api\"")),
    }
    let requested_id = match obj.get("id") {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) => Some(
            Uuid::parse_str(s)
                .map_err(|_| bad("id must be a UUID"))?
                .to_string(),
        ),
        Some(_) => return Err(bad("id must be a UUID")),
    };
    let inputs = match obj.get("inputs") {
        None | Some(Value::Null) => json!({}),
        Some(v @ Value::Object(_)) => v.clone(),
        Some(_) => return Err(bad("inputs must be an object")),
    };
    let start = RunStart::api(&ctx.caller.user_id, "api".to_owned(), inputs, requested_id);
    let run_id = store.start_run(id, start, ctx.now)?;
    Ok(Reply::created(store.run(id, &run_id)?.detail_json(ctx.now)))
}

fn export_run(store: &mut Store, ctx: &Ctx<'_>, id: &str, run_id: &str) -> Result<Reply, ApiError> {
    store.visible(ctx.caller, id)?;
    let run = store.run(id, run_id)?;
    let phase = run.phase(ctx.now);
    if !phase.ended {
        return Err(bad(format!(
            "only the log of a completed run can be exported; run {run_id} is {}",
            phase.status
        )));
    }
    let log = run.log_json(ctx.now);
    Ok(Reply::ok(share(store, ctx, log)))
}

/// `GET .../runs/{runId}/debug` (workflows): a link to the run's debug log, which is the run's
/// detail and its log so far (`{"run": {...}, "log": [...]}`). Unlike export it is available
/// while the run is still going: that is when one debugs.
fn debug_run(store: &mut Store, ctx: &Ctx<'_>, id: &str, run_id: &str) -> Result<Reply, ApiError> {
    store.visible(ctx.caller, id)?;
    let run = store.run(id, run_id)?;
    let debug = json!({"run": run.detail_json(ctx.now), "log": run.log_json(ctx.now)});
    Ok(Reply::ok(share(store, ctx, debug)))
}

/// Stores `content` behind a fresh, unguessable, short-lived link, like a pre-signed URL, and
/// returns the `{"url"}` answer.
fn share(store: &mut Store, ctx: &Ctx<'_>, content: Value) -> Value {
    let token: String = rand::rng()
        .sample_iter(&Alphanumeric)
        .take(40)
        .map(char::from)
        .collect();
    let now = ctx.instant;
    store
        .exports
        .retain(|_, e| now.saturating_duration_since(e.expires_at) < FORGET_EXPORTS_AFTER);
    store.exports.insert(
        token.clone(),
        Export {
            log: content,
            expires_at: now + ctx.export_ttl,
        },
    );
    json!({"url": format!("{}/_emulator/exports/{token}.json", ctx.base_url)})
}

/// `POST .../automations/{id}/actions/execute` (both generations): starts a triggered or webhook automation
/// with its execution token instead of an API key. The body (if any) becomes the inputs.
pub(crate) fn execute(
    store: &mut Store,
    id: &str,
    token: Option<&str>,
    body: &[u8],
    now: DateTime<Utc>,
) -> Result<Reply, ApiError> {
    let a = store
        .automations
        .get(id)
        .ok_or_else(|| ApiError::NotFound(format!("automation {id} not found")))?;
    if token != Some(a.execution_token.as_str()) {
        return Err(ApiError::Unauthorized(
            "X-Execution-Token is missing or does not match".to_owned(),
        ));
    }
    let (origin, context) = match a.run_mode {
        super::wire::RunMode::Triggered => (RunOrigin::Triggered, "api_sync"),
        super::wire::RunMode::Webhook => (RunOrigin::Webhook, "webhook"),
        other => {
            return Err(bad(format!(
                "automation {id} has run mode {} and cannot be executed with its token",
                other.as_str()
            )));
        }
    };
    let inputs = match json_body(body)? {
        None => json!({}),
        Some(v @ Value::Object(_)) => v,
        Some(_) => return Err(bad("the request body must be a JSON object")),
    };
    let start = RunStart {
        origin,
        context: context.to_owned(),
        inputs,
        executed_by: a.owner_id.clone(),
        requested_id: None,
        created_at: None,
    };
    let run_id = store.start_run(id, start, now)?;
    Ok(Reply::created(store.run(id, &run_id)?.detail_json(now)))
}
