//! The HTTP server: the request pipeline every API call goes through (classify, fault
//! latency, authenticate, count, rate-limit, inject faults, handle, mark v1 answers
//! deprecated), and the routes of the control surface and the token endpoint
//! ([`super::control`]).
//!
//! The pipeline's stages stay in this one file: they are one ordered path through a request,
//! and splitting them would hide the order that the fault and rate-limit semantics rely on.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::http::HeaderMap;
use axum::http::header::{AUTHORIZATION, CONTENT_LENGTH, CONTENT_TYPE, HOST};
use axum::response::Response;
use axum::routing::{get, post};
use chrono::Utc;
use serde_json::Value;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use super::control;
use super::counters::{Counters, DROPPED};
use super::error::ApiError;
use super::faults::{FaultAction, FaultConfig};
use super::handlers::{Ctx, handle};
use super::oauth::Tokens;
use super::pagination::query_pairs;
use super::ratelimit::RateLimiter;
use super::respond::{dropped_response, error_response, mark_deprecated, reply_response};
use super::routes::{Route, Target, api_of, classify};
use super::run_handlers::execute;
use super::store::{Caller, Store};
use super::{EmulatorConfig, EmulatorError};
use crate::qlik::endpoint::{Api, Tier};

/// The largest request body accepted (workspaces can be big, but not this big).
const MAX_BODY_BYTES: usize = 16 * 1024 * 1024;

/// How long [`RunningEmulator::shutdown`] waits for open connections before cutting them.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

/// State shared by all requests. Deliberately not `Debug`: it holds the API keys, OAuth
/// secrets and access tokens.
pub(super) struct Shared {
    keys: HashMap<String, Caller>,
    tier1_per_minute: u32,
    tier2_per_minute: u32,
    rate_window: Duration,
    export_ttl: Duration,
    addr: SocketAddr,
    /// The tenant.
    pub(super) store: Mutex<Store>,
    limiter: Mutex<RateLimiter>,
    /// The fault rules in force.
    pub(super) faults: Mutex<FaultConfig>,
    /// The request counters.
    pub(super) counters: Mutex<Counters>,
    /// OAuth clients and the tokens issued to them.
    pub(super) tokens: Mutex<Tokens>,
}

/// Locks a mutex, carrying on after a panic in another request: the state stays usable and
/// an emulator that wedges on one bug helps nobody.
pub(super) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Shared {
    /// The requests `tier` allows per user within the window.
    fn limit(&self, tier: Tier) -> u32 {
        let per_minute = match tier {
            Tier::Tier1 => self.tier1_per_minute,
            Tier::Tier2 => self.tier2_per_minute,
        };
        crate::qlik::ratelimit::scaled_to_window(per_minute, self.rate_window)
    }

    /// Every automation's detail JSON, oldest first.
    pub(super) fn snapshot(&self) -> Vec<Value> {
        let now = Utc::now();
        let mut store = lock(&self.store);
        store.tick(now);
        let mut all: Vec<_> = store.automations.values().collect();
        all.sort_by(|a, b| (a.created_at, &a.id).cmp(&(b.created_at, &b.id)));
        all.into_iter().map(|a| store.detail_json(a, now)).collect()
    }
}

/// An emulator serving in the background. Dropping it stops the server.
pub struct RunningEmulator {
    addr: SocketAddr,
    shared: Arc<Shared>,
    shutdown: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<()>>,
}

impl RunningEmulator {
    /// Binds the listen address and serves in a background task. When this returns, the
    /// socket is bound and connections are accepted.
    pub async fn start(config: EmulatorConfig) -> Result<RunningEmulator, EmulatorError> {
        let mut keys = HashMap::new();
        for k in &config.keys {
            let caller = Caller {
                user_id: k.user_id.clone(),
                admin: k.admin,
            };
            if let Some(previous) = keys.insert(k.key.clone(), caller.clone())
                && previous != caller
            {
                return Err(EmulatorError::InvalidConfig(format!(
                    "one API key is given for two users ({} and {})",
                    previous.user_id, caller.user_id
                )));
            }
        }
        let tokens = Tokens::new(&config.oauth_clients, config.oauth_token_ttl)
            .map_err(EmulatorError::InvalidConfig)?;
        if config.rate_window.is_zero() {
            return Err(EmulatorError::InvalidConfig(
                "the rate window must be at least one second".to_owned(),
            ));
        }
        if config.tier1_per_minute == 0 || config.tier2_per_minute == 0 {
            return Err(EmulatorError::InvalidConfig(
                "rate limits must allow at least one request per minute".to_owned(),
            ));
        }
        config
            .faults
            .validate()
            .map_err(EmulatorError::InvalidConfig)?;
        let listener = tokio::net::TcpListener::bind(config.listen)
            .await
            .map_err(|source| EmulatorError::Bind {
                addr: config.listen,
                source,
            })?;
        let addr = listener
            .local_addr()
            .map_err(|source| EmulatorError::Bind {
                addr: config.listen,
                source,
            })?;
        let mut store = Store::new(config.run_duration, config.normalize_schedules);
        store.spaces = config.spaces.iter().cloned().collect();
        let shared = Arc::new(Shared {
            keys,
            tier1_per_minute: config.tier1_per_minute,
            tier2_per_minute: config.tier2_per_minute,
            rate_window: config.rate_window,
            export_ttl: config.export_ttl,
            addr,
            store: Mutex::new(store),
            limiter: Mutex::new(RateLimiter::default()),
            faults: Mutex::new(config.faults),
            counters: Mutex::new(Counters::default()),
            tokens: Mutex::new(tokens),
        });
        let app = router(shared.clone());
        let (tx, rx) = oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            let served = axum::serve(listener, app)
                .with_graceful_shutdown(async {
                    let _ = rx.await;
                })
                .await;
            if let Err(e) = served {
                tracing::warn!(error = %e, "emulator server stopped with an error");
            }
        });
        Ok(RunningEmulator {
            addr,
            shared,
            shutdown: Some(tx),
            task: Some(task),
        })
    }

    /// `http://127.0.0.1:PORT` (no trailing slash); the API is under `/api/workflows/automations`
    /// and `/api/v1/automations`, the token endpoint at `/oauth/token`.
    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The bound address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Every automation's full detail JSON (all owners), oldest first. Not counted.
    pub fn automations(&self) -> Vec<Value> {
        self.shared.snapshot()
    }

    /// The request counters so far.
    pub fn counters(&self) -> Counters {
        lock(&self.shared.counters).clone()
    }

    /// Zeroes the request counters.
    pub fn reset_counters(&self) {
        *lock(&self.shared.counters) = Counters::default();
    }

    /// The newest OAuth access tokens issued (up to a thousand, expired ones included),
    /// oldest first: what a test looks for where tokens must never appear.
    pub fn issued_tokens(&self) -> Vec<String> {
        lock(&self.shared.tokens).history()
    }

    /// Expires every OAuth access token issued so far: the next request with one gets 401.
    pub fn expire_tokens(&self) {
        lock(&self.shared.tokens).expire_all(Instant::now());
    }

    /// Replaces the fault rules. Rules naming an unknown endpoint never match.
    pub fn set_faults(&self, faults: FaultConfig) {
        if let Err(e) = faults.validate() {
            tracing::warn!(error = %e, "emulator fault configuration has problems");
        }
        *lock(&self.shared.faults) = faults;
    }

    /// Stops accepting, lets requests in flight finish (up to a few seconds), and returns.
    pub async fn shutdown(mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(mut task) = self.task.take()
            && tokio::time::timeout(SHUTDOWN_GRACE, &mut task)
                .await
                .is_err()
        {
            task.abort();
        }
    }
}

impl std::fmt::Debug for RunningEmulator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Only the address: the shared state holds API keys, OAuth secrets, access tokens and
        // execution tokens.
        f.debug_struct("RunningEmulator")
            .field("addr", &self.addr)
            .finish_non_exhaustive()
    }
}

impl Drop for RunningEmulator {
    fn drop(&mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }
}

fn router(shared: Arc<Shared>) -> Router {
    Router::new()
        .route("/_emulator/health", get(control::health))
        .route("/_emulator/counters", get(control::get_counters))
        .route("/_emulator/counters/reset", post(control::reset_counters))
        .route(
            "/_emulator/faults",
            get(control::get_faults)
                .put(control::put_faults)
                .delete(control::delete_faults),
        )
        .route("/_emulator/automations", get(control::snapshot))
        .route("/_emulator/exports/{file}", get(control::download_export))
        .route("/_emulator/oauth/expire", post(control::expire_tokens))
        .route("/oauth/token", post(control::oauth_token))
        .fallback(api_entry)
        .with_state(shared)
}

/// `http://host:port` as the client addressed us, for absolute links. Falls back to the
/// bound address when the Host header is missing or looks odd.
fn base_url(headers: &HeaderMap, addr: SocketAddr) -> String {
    let host = headers.get(HOST).and_then(|h| h.to_str().ok()).filter(|h| {
        !h.is_empty()
            && h.chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | ':' | '-' | '[' | ']'))
    });
    match host {
        Some(h) => format!("http://{h}"),
        None => format!("http://{addr}"),
    }
}

/// Every request below `/api/`: routed, answered, and marked deprecated when it came in on v1
/// (errors included, so a client sees the notice whatever happens).
async fn api_entry(State(shared): State<Arc<Shared>>, request: Request) -> Response {
    let deprecated = api_of(request.uri().path()) == Some(Api::V1);
    let mut response = route_api(shared, request).await;
    if deprecated {
        mark_deprecated(response.headers_mut());
    }
    response
}

async fn route_api(shared: Arc<Shared>, request: Request) -> Response {
    let (parts, body) = request.into_parts();
    match classify(&parts.method, parts.uri.path()) {
        Err(e) => error_response(&e, None),
        Ok(Target::Execute { id }) => {
            let token = parts
                .headers
                .get("x-execution-token")
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned);
            let bytes = match read_body(&parts.headers, body).await {
                Ok(b) => b,
                Err(e) => return error_response(&e, None),
            };
            let now = Utc::now();
            let result = {
                let mut store = lock(&shared.store);
                store.tick(now);
                execute(&mut store, &id, token.as_deref(), &bytes, now)
            };
            match result {
                Ok(reply) => reply_response(reply, None),
                Err(e) => error_response(&e, None),
            }
        }
        Ok(Target::Api(route)) => api(shared, parts, body, route).await,
    }
}

async fn read_body(headers: &HeaderMap, body: Body) -> Result<Bytes, ApiError> {
    let declared = headers
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok());
    if declared.is_some_and(|n| n > MAX_BODY_BYTES) {
        return Err(ApiError::PayloadTooLarge);
    }
    axum::body::to_bytes(body, MAX_BODY_BYTES)
        .await
        .map_err(|_| ApiError::PayloadTooLarge)
}

/// Records the outcome of a request in the counters and the debug log.
fn record(shared: &Shared, route: &Route, method: &str, outcome: &str, user: Option<&str>) {
    lock(&shared.counters).record(route.endpoint, route.api, outcome, user);
    tracing::debug!(
        method,
        api = route.api.label(),
        endpoint = route.endpoint.name(),
        status = outcome,
        user = user.unwrap_or("-"),
        "emulator request"
    );
}

/// The caller a request's bearer token stands for: an API key's user, or the bot user of an
/// OAuth access token that has not expired.
fn authenticate(shared: &Shared, headers: &HeaderMap) -> Result<Caller, ApiError> {
    let bearer = headers
        .get(AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            v.strip_prefix("Bearer ")
                .or_else(|| v.strip_prefix("bearer "))
        })
        .map(str::trim)
        .filter(|t| !t.is_empty());
    let unknown = || {
        ApiError::Unauthorized(
            "a valid API key or access token is required: Authorization: Bearer <key or token>"
                .to_owned(),
        )
    };
    let bearer = bearer.ok_or_else(unknown)?;
    if let Some(caller) = shared.keys.get(bearer) {
        return Ok(caller.clone());
    }
    lock(&shared.tokens)
        .caller(bearer, Instant::now())
        .unwrap_or_else(|| Err(unknown()))
}

async fn api(
    shared: Arc<Shared>,
    parts: axum::http::request::Parts,
    body: Body,
    route: Route,
) -> Response {
    let method = parts.method.to_string();
    let endpoint = route.endpoint;
    let plan = lock(&shared.faults).plan(endpoint);
    if !plan.latency.is_zero() {
        tokio::time::sleep(plan.latency).await;
    }

    let caller = match authenticate(&shared, &parts.headers) {
        Ok(caller) => caller,
        Err(refused) => {
            record(&shared, &route, &method, "401", None);
            return error_response(&refused, None);
        }
    };
    let user = Some(caller.user_id.as_str());

    let checked = lock(&shared.limiter).check(
        &caller.user_id,
        endpoint.tier(),
        shared.limit(endpoint.tier()),
        shared.rate_window,
        Instant::now(),
    );
    let quota = match checked {
        Ok(q) => q,
        Err(limited) => {
            lock(&shared.counters).rate_limited += 1;
            record(&shared, &route, &method, "429", user);
            return error_response(
                &ApiError::RateLimited {
                    retry_after: limited.retry_after,
                },
                Some(limited.quota),
            );
        }
    };

    let injected = |status: &str| {
        lock(&shared.counters).faults_injected += 1;
        record(&shared, &route, &method, status, user);
    };
    match plan.action {
        Some(FaultAction::RateLimit) => {
            injected("429");
            return error_response(&ApiError::RateLimited { retry_after: 1 }, Some(quota));
        }
        Some(FaultAction::Error(status)) => {
            injected(&status.to_string());
            return error_response(&ApiError::Injected(status), Some(quota));
        }
        Some(FaultAction::Drop {
            after_processing: false,
        }) => {
            injected(DROPPED);
            return dropped_response();
        }
        _ => {}
    }

    let bytes = match read_body(&parts.headers, body).await {
        Ok(b) => b,
        Err(e) => {
            record(&shared, &route, &method, e.status().as_str(), user);
            return error_response(&e, Some(quota));
        }
    };
    let base = base_url(&parts.headers, shared.addr);
    let query = query_pairs(parts.uri.query());
    let now = Utc::now();
    let ctx = Ctx {
        caller: &caller,
        now,
        instant: Instant::now(),
        base_url: &base,
        path: parts.uri.path(),
        query: &query,
        body: &bytes,
        content_type: parts
            .headers
            .get(CONTENT_TYPE)
            .and_then(|v| v.to_str().ok()),
        export_ttl: shared.export_ttl,
    };
    let result = {
        let mut store = lock(&shared.store);
        store.tick(now);
        handle(&mut store, &ctx, &route)
    };

    if let Some(FaultAction::Drop {
        after_processing: true,
    }) = plan.action
    {
        // The work is done (an automation may now exist); only the answer is lost.
        injected(DROPPED);
        return dropped_response();
    }
    let response = match result {
        Ok(reply) => reply_response(reply, Some(quota)),
        Err(e) => error_response(&e, Some(quota)),
    };
    record(&shared, &route, &method, response.status().as_str(), user);
    response
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    #[test]
    fn base_url_uses_a_sane_host_header() {
        let addr: SocketAddr = "127.0.0.1:9".parse().unwrap();
        let mut h = HeaderMap::new();
        assert_eq!(base_url(&h, addr), "http://127.0.0.1:9");
        h.insert(HOST, HeaderValue::from_static("localhost:1234"));
        assert_eq!(base_url(&h, addr), "http://localhost:1234");
        h.insert(HOST, HeaderValue::from_static("evil/x?y"));
        assert_eq!(base_url(&h, addr), "http://127.0.0.1:9");
    }
}
