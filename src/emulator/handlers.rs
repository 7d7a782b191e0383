//! The endpoints' logic, one function each, working on the locked [`Store`]. Authentication,
//! counting, rate limits and faults have already happened in the server's pipeline. The
//! automation-level endpoints and settings are here, the run endpoints in [`super::run_handlers`].
//!
//! One handler serves both generations; where they differ (settings, `listAll`, what a save
//! accepts) it asks the route's [`Api`].

use std::time::{Duration, Instant};

use axum::http::StatusCode;
use chrono::{DateTime, Utc};
use serde_json::{Value, json};

use super::error::ApiError;
use super::model::AutomationState;
use super::pagination::{ListQuery, ListSpec};
use super::routes::Route;
use super::run_handlers;
use super::save::{apply, fresh_schedules};
use super::store::{Caller, Store};
use super::usage::usage;
use super::validate::{self, AutomationInput, MAX_NAME_CHARS, automation_input, json_body};
use crate::qlik::endpoint::{Api, Endpoint};
use crate::qlik::query::{
    AUTOMATION_FILTER_FIELDS, AUTOMATION_SORT_FIELDS, DEFAULT_AUTOMATION_LIMIT,
};

const AUTOMATION_LIST: ListSpec = ListSpec {
    sort_fields: AUTOMATION_SORT_FIELDS,
    filter_fields: AUTOMATION_FILTER_FIELDS,
    default_limit: DEFAULT_AUTOMATION_LIMIT,
};

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
    /// How long export and debug links live.
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
    pub(crate) fn ok(body: Value) -> Reply {
        Reply {
            status: StatusCode::OK,
            body: Some(body),
        }
    }

    pub(crate) fn created(body: Value) -> Reply {
        Reply {
            status: StatusCode::CREATED,
            body: Some(body),
        }
    }

    pub(crate) fn no_content() -> Reply {
        Reply {
            status: StatusCode::NO_CONTENT,
            body: None,
        }
    }
}

pub(crate) fn bad(detail: impl Into<String>) -> ApiError {
    ApiError::BadRequest(detail.into())
}

/// The body as JSON, refusing non-JSON content types (a missing one is fine: body-less
/// POSTs come without one).
pub(crate) fn body_json(ctx: &Ctx<'_>) -> Result<Option<Value>, ApiError> {
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

/// 403 unless the caller is a tenant admin (an OAuth bot is one).
fn require_admin(ctx: &Ctx<'_>, what: &str) -> Result<(), ApiError> {
    if ctx.caller.admin {
        Ok(())
    } else {
        Err(ApiError::Forbidden(format!(
            "only a tenant admin (or an OAuth client with admin.automations) may {what}"
        )))
    }
}

/// Dispatches one of the catalogue's endpoints (the router has refused those the route's
/// generation lacks).
pub(crate) fn handle(store: &mut Store, ctx: &Ctx<'_>, route: &Route) -> Result<Reply, ApiError> {
    use Endpoint::*;
    let (api, id) = (route.api, route.id.as_str());
    match route.endpoint {
        ListAutomations => list_automations(store, ctx, api),
        CreateAutomation => create_automation(store, ctx, api),
        GetAutomation => {
            let a = store.visible(ctx.caller, id)?;
            Ok(Reply::ok(store.detail_json(a, ctx.now)))
        }
        UpdateAutomation => update_automation(store, ctx, api, id),
        DeleteAutomation => {
            store.visible(ctx.caller, id)?;
            store.delete_automation(id);
            Ok(Reply::no_content())
        }
        CopyAutomation => copy_automation(store, ctx, id),
        DisableAutomation => set_state(store, ctx, id, AutomationState::Disabled),
        EnableAutomation => set_state(store, ctx, id, AutomationState::Available),
        // Two names for one operation: v1's move, and workflows' change-owner beside it.
        MoveAutomation | ChangeOwner => change_owner(store, ctx, id),
        ChangeSpace => change_space(store, ctx, id),
        GetSettings => Ok(Reply::ok(settings_json(store, api))),
        UpdateSettings => update_settings(store, ctx, api),
        GetUsage => {
            require_admin(ctx, "read the automations usage")?;
            Ok(Reply::ok(usage(store, ctx.query, ctx.now)?))
        }
        ListRuns | CreateRun | GetRun | ExportRun | RetryRun | StopRun | GetRunDebug => {
            run_handlers::handle(store, ctx, route)
        }
    }
}

/// A generation's settings object: v1 has `automationsEnabled`, workflows
/// `maxConcurrentRunsPerAutomation`; the tenant keeps both.
fn settings_json(store: &Store, api: Api) -> Value {
    match api {
        Api::V1 => json!({"automationsEnabled": store.automations_enabled}),
        Api::Workflows => {
            json!({"maxConcurrentRunsPerAutomation": store.max_concurrent_runs_per_automation})
        }
    }
}

fn update_settings(store: &mut Store, ctx: &Ctx<'_>, api: Api) -> Result<Reply, ApiError> {
    require_admin(ctx, "update the automation settings")?;
    let body = body_json(ctx)?;
    let field = |name: &str| body.as_ref().and_then(|b| b.get(name));
    match api {
        Api::V1 => {
            store.automations_enabled = field("automationsEnabled")
                .and_then(Value::as_bool)
                .ok_or_else(|| bad("automationsEnabled is required and must be a boolean"))?;
        }
        Api::Workflows => {
            let limit = "maxConcurrentRunsPerAutomation";
            store.max_concurrent_runs_per_automation = field(limit)
                .and_then(Value::as_i64)
                .filter(|n| *n >= 1)
                .ok_or_else(|| bad(format!("{limit} is required and must be an integer ≥ 1")))?;
        }
    }
    Ok(Reply::ok(settings_json(store, api)))
}

fn list_automations(store: &Store, ctx: &Ctx<'_>, api: Api) -> Result<Reply, ApiError> {
    let q = ListQuery::parse(ctx.query, AUTOMATION_LIST)?;
    let everything = match api {
        // An admin sees the whole tenant unless it asks for listAll=false; a plain key only
        // ever sees its own automations.
        Api::V1 => ctx.caller.admin && q.list_all.unwrap_or(true),
        // Everyone sees only their own, unless an admin or a bot asks for listAll=true.
        Api::Workflows if q.list_all == Some(true) => {
            require_admin(ctx, "list every automation of the tenant (listAll=true)")?;
            true
        }
        Api::Workflows => false,
    };
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

fn create_automation(store: &mut Store, ctx: &Ctx<'_>, api: Api) -> Result<Reply, ApiError> {
    let body = body_json(ctx)?;
    let input = automation_input(body.as_ref(), store.save_rules(api, true))?;
    store.check_space(input.space_id.as_deref())?;
    let id = store.create_automation(&ctx.caller.user_id, input, ctx.now);
    let a = store.visible(ctx.caller, &id)?;
    Ok(Reply::created(store.detail_json(a, ctx.now)))
}

fn update_automation(
    store: &mut Store,
    ctx: &Ctx<'_>,
    api: Api,
    id: &str,
) -> Result<Reply, ApiError> {
    store.visible(ctx.caller, id)?;
    let body = body_json(ctx)?;
    let input = automation_input(body.as_ref(), store.save_rules(api, false))?;
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
        // The copy lives where the source does (a personal source: the copier's own).
        space_id: source.space_id.clone(),
        max_concurrent_runs: source.max_concurrent_runs,
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

/// `actions/move` and `actions/change-owner`: a new owner; the run history goes.
fn change_owner(store: &mut Store, ctx: &Ctx<'_>, id: &str) -> Result<Reply, ApiError> {
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

/// `actions/change-space` `{"spaceId"}`: into a registered shared space, or with `""` into the
/// owner's personal space. The owner or an admin may; the runs stay.
fn change_space(store: &mut Store, ctx: &Ctx<'_>, id: &str) -> Result<Reply, ApiError> {
    store.visible(ctx.caller, id)?;
    let body = body_json(ctx)?;
    let space = body
        .as_ref()
        .and_then(Value::as_object)
        .and_then(|obj| obj.get("spaceId"))
        .filter(|v| !v.is_null())
        .ok_or_else(|| {
            bad("spaceId is required: send {\"spaceId\": \"...\"}, or \"\" for the personal space")
        })?;
    let space = validate::space_id(space)?;
    store.check_space(space.as_deref())?;
    let a = store.visible_mut(ctx.caller, id)?;
    if a.space_id != space {
        a.space_id = space;
        a.updated_at = ctx.now;
    }
    Ok(Reply::no_content())
}
