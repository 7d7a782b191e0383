//! The endpoints' logic, one function each, working on the locked [`Store`]. Authentication,
//! counting, rate limits and faults have already happened in the server's pipeline.

use std::time::{Duration, Instant};

use axum::http::StatusCode;
use chrono::{DateTime, Utc};
use rand::Rng;
use rand::distr::Alphanumeric;
use serde_json::{Value, json};
use uuid::Uuid;

use super::error::ApiError;
use super::model::AutomationState;
use super::pagination::{ListQuery, ListSpec};
use super::routes::Route;
use super::runs::RunOrigin;
use super::store::{Caller, Export, RunStart, Store, apply, fresh_schedules};
use super::usage::usage;
use super::validate::{self, AutomationInput, MAX_NAME_CHARS, automation_input, json_body};
use crate::qlik::endpoint::Endpoint;
use crate::qlik::query::{
    AUTOMATION_FILTER_FIELDS, AUTOMATION_SORT_FIELDS, DEFAULT_AUTOMATION_LIMIT, DEFAULT_RUN_LIMIT,
    RUN_FILTER_FIELDS, RUN_SORT_FIELDS,
};

const AUTOMATION_LIST: ListSpec = ListSpec {
    sort_fields: AUTOMATION_SORT_FIELDS,
    filter_fields: AUTOMATION_FILTER_FIELDS,
    default_limit: DEFAULT_AUTOMATION_LIMIT,
};

const RUN_LIST: ListSpec = ListSpec {
    sort_fields: RUN_SORT_FIELDS,
    filter_fields: RUN_FILTER_FIELDS,
    default_limit: DEFAULT_RUN_LIMIT,
};

/// Export links are forgotten this long after they expire (until then they answer 403).
const FORGET_EXPORTS_AFTER: Duration = Duration::from_secs(3600);

/// Everything about one request a handler may need.
#[derive(Debug)]
pub(crate) struct Ctx<'a> {
    /// The authenticated caller.
    pub(crate) caller: &'a Caller,
    /// Wall-clock time of the request.
    pub(crate) now: DateTime<Utc>,
    /// Monotonic time of the request.
    pub(crate) instant: Instant,
    /// `scheme://host:port` as the client addressed the emulator.
    pub(crate) base_url: &'a str,
    /// The request path, for pagination links.
    pub(crate) path: &'a str,
    /// Decoded query parameters.
    pub(crate) query: &'a [(String, String)],
    /// The raw body.
    pub(crate) body: &'a [u8],
    /// The `Content-Type` header, if any.
    pub(crate) content_type: Option<&'a str>,
    /// How long export links live.
    pub(crate) export_ttl: Duration,
}

/// A successful answer.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Reply {
    /// Status code.
    pub(crate) status: StatusCode,
    /// JSON body; `None` for 204.
    pub(crate) body: Option<Value>,
}

impl Reply {
    fn ok(body: Value) -> Reply {
        Reply {
            status: StatusCode::OK,
            body: Some(body),
        }
    }

    fn created(body: Value) -> Reply {
        Reply {
            status: StatusCode::CREATED,
            body: Some(body),
        }
    }

    fn no_content() -> Reply {
        Reply {
            status: StatusCode::NO_CONTENT,
            body: None,
        }
    }
}

fn bad(detail: impl Into<String>) -> ApiError {
    ApiError::BadRequest(detail.into())
}

/// The body as JSON, refusing non-JSON content types (a missing one is fine: body-less
/// POSTs come without one).
fn body_json(ctx: &Ctx<'_>) -> Result<Option<Value>, ApiError> {
    if let Some(ct) = ctx.content_type {
        let mime = ct
            .split(';')
            .next()
            .unwrap_or("")
            .trim()
            .to_ascii_lowercase();
        if !(mime == "application/json" || mime.ends_with("+json") || mime.is_empty()) {
            return Err(ApiError::UnsupportedMediaType(mime));
        }
    }
    json_body(ctx.body)
}

fn require_admin(ctx: &Ctx<'_>, what: &str) -> Result<(), ApiError> {
    if ctx.caller.admin {
        Ok(())
    } else {
        Err(ApiError::Forbidden(format!(
            "only a tenant admin may {what}"
        )))
    }
}

/// Dispatches one of the 18 endpoints.
pub(crate) fn handle(store: &mut Store, ctx: &Ctx<'_>, route: &Route) -> Result<Reply, ApiError> {
    use Endpoint::*;
    let (id, run_id) = (route.id.as_str(), route.run_id.as_str());
    match route.endpoint {
        ListAutomations => list_automations(store, ctx),
        CreateAutomation => create_automation(store, ctx),
        GetAutomation => {
            let a = store.visible(ctx.caller, id)?;
            Ok(Reply::ok(store.detail_json(a, ctx.now)))
        }
        UpdateAutomation => update_automation(store, ctx, id),
        DeleteAutomation => {
            store.visible(ctx.caller, id)?;
            store.delete_automation(id);
            Ok(Reply::no_content())
        }
        CopyAutomation => copy_automation(store, ctx, id),
        DisableAutomation => set_state(store, ctx, id, AutomationState::Disabled),
        EnableAutomation => set_state(store, ctx, id, AutomationState::Available),
        MoveAutomation => move_automation(store, ctx, id),
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
        GetSettings => Ok(Reply::ok(
            json!({"automationsEnabled": store.automations_enabled}),
        )),
        UpdateSettings => {
            require_admin(ctx, "update the automation settings")?;
            let body = body_json(ctx)?;
            let enabled = body
                .as_ref()
                .and_then(|b| b.get("automationsEnabled"))
                .and_then(Value::as_bool)
                .ok_or_else(|| bad("automationsEnabled is required and must be a boolean"))?;
            store.automations_enabled = enabled;
            Ok(Reply::ok(json!({"automationsEnabled": enabled})))
        }
        GetUsage => {
            require_admin(ctx, "read the automations usage")?;
            Ok(Reply::ok(usage(store, ctx.query, ctx.now)?))
        }
    }
}

fn list_automations(store: &Store, ctx: &Ctx<'_>) -> Result<Reply, ApiError> {
    let q = ListQuery::parse(ctx.query, AUTOMATION_LIST)?;
    // An admin sees the whole tenant unless it asks for listAll=false; a plain key only ever
    // sees its own automations.
    let everything = ctx.caller.admin && q.list_all.unwrap_or(true);
    let items = store
        .automations
        .values()
        .filter(|a| everything || a.owner_id == ctx.caller.user_id)
        .map(|a| a.list_json(store.last_run(&a.id), ctx.now))
        .collect();
    Ok(Reply::ok(
        q.page(items, &format!("{}{}", ctx.base_url, ctx.path)),
    ))
}

fn create_automation(store: &mut Store, ctx: &Ctx<'_>) -> Result<Reply, ApiError> {
    let body = body_json(ctx)?;
    let input = automation_input(body.as_ref(), true, store.normalize_schedules)?;
    let id = store.create_automation(&ctx.caller.user_id, input, ctx.now);
    let a = store.visible(ctx.caller, &id)?;
    Ok(Reply::created(store.detail_json(a, ctx.now)))
}

fn update_automation(store: &mut Store, ctx: &Ctx<'_>, id: &str) -> Result<Reply, ApiError> {
    store.visible(ctx.caller, id)?;
    let body = body_json(ctx)?;
    let input = automation_input(body.as_ref(), false, store.normalize_schedules)?;
    apply(store.visible_mut(ctx.caller, id)?, input, ctx.now);
    let a = store.visible(ctx.caller, id)?;
    Ok(Reply::ok(store.detail_json(a, ctx.now)))
}

fn copy_automation(store: &mut Store, ctx: &Ctx<'_>, id: &str) -> Result<Reply, ApiError> {
    let source = store.visible(ctx.caller, id)?.clone();
    let body = body_json(ctx)?;
    let name = match &body {
        None | Some(Value::Null) => None,
        Some(Value::Object(obj)) => obj
            .get("name")
            .filter(|v| !v.is_null())
            .map(|v| validate::name(v, "name"))
            .transpose()?,
        Some(_) => {
            return Err(bad(
                "the request body must be a JSON object like {\"name\": \"...\"}",
            ));
        }
    };
    let name = name.unwrap_or_else(|| {
        format!("Copy of {}", source.name)
            .chars()
            .take(MAX_NAME_CHARS)
            .collect()
    });
    let input = AutomationInput {
        name: Some(name),
        description: Some(source.description.clone()),
        state: Some(source.state),
        schedules: None,
        workspace: Some((source.workspace.clone(), source.info.clone())),
    };
    let new_id = store.create_automation(&ctx.caller.user_id, input, ctx.now);
    if let Some(copy) = store.automations.get_mut(&new_id) {
        copy.schedules = fresh_schedules(&source.schedules, ctx.now);
        copy.recompute_run_mode(ctx.now);
    }
    Ok(Reply::created(json!({ "id": new_id })))
}

fn set_state(
    store: &mut Store,
    ctx: &Ctx<'_>,
    id: &str,
    state: AutomationState,
) -> Result<Reply, ApiError> {
    let a = store.visible_mut(ctx.caller, id)?;
    a.state = state;
    a.updated_at = ctx.now;
    Ok(Reply::no_content())
}

fn move_automation(store: &mut Store, ctx: &Ctx<'_>, id: &str) -> Result<Reply, ApiError> {
    require_admin(ctx, "move an automation to another user")?;
    store.visible(ctx.caller, id)?;
    let body = body_json(ctx)?;
    // The reference's curl sends a bare JSON string; clients generated from the schema send
    // {"userId": "..."}. Both are accepted.
    let user = match &body {
        Some(Value::String(u)) => Some(u.as_str()),
        Some(Value::Object(obj)) => obj.get("userId").and_then(Value::as_str),
        _ => None,
    }
    .filter(|u| !u.trim().is_empty())
    .ok_or_else(|| {
        bad("userId is required: send the user id as a JSON string or as {\"userId\": \"...\"}")
    })?
    .to_owned();
    let a = store.visible(ctx.caller, id)?.clone();
    if a.owner_id == user {
        return Ok(Reply::no_content());
    }
    // "This step will remove the history": the runs go, so lastRun* clear.
    store.archive_runs(&a);
    let moved = store.visible_mut(ctx.caller, id)?;
    moved.owner_id = user;
    moved.updated_at = ctx.now;
    Ok(Reply::no_content())
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
            log,
            expires_at: now + ctx.export_ttl,
        },
    );
    Ok(Reply::ok(json!({
        "url": format!("{}/_emulator/exports/{token}.json", ctx.base_url)
    })))
}

/// `POST /api/v1/automations/{id}/actions/execute`: starts a triggered or webhook automation
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
