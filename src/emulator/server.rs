//! The HTTP server: the request pipeline every API call goes through (classify, fault
//! latency, authenticate, count, rate-limit, inject faults, handle) and the `/_emulator/`
//! control surface.
//!
//! One file over 500 lines on purpose: the pipeline's stages are one ordered path through a
//! request; splitting them would hide the order that the fault and rate-limit semantics rely on.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{Path, Request, State};
use axum::http::header::{CONTENT_LENGTH, CONTENT_TYPE, HOST, RETRY_AFTER};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use chrono::Utc;
use serde_json::{Value, json};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use super::counters::{Counters, DROPPED};
use super::error::ApiError;
use super::faults::{FaultAction, FaultConfig};
use super::handlers::{Ctx, Reply, execute, handle};
use super::pagination::query_pairs;
use super::ratelimit::{Quota, RateLimiter};
use super::routes::{Route, Target, classify};
use super::store::{Caller, Store};
use super::{EmulatorConfig, EmulatorError};
use crate::qlik::endpoint::Tier;

/// The largest request body accepted (workspaces can be big, but not this big).
const MAX_BODY_BYTES: usize = 16 * 1024 * 1024;

/// How long [`RunningEmulator::shutdown`] waits for open connections before cutting them.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

/// State shared by all requests. Deliberately not `Debug`: it holds the API keys.
struct Shared {
    keys: HashMap<String, Caller>,
    tier1_per_minute: u32,
    tier2_per_minute: u32,
    export_ttl: Duration,
    addr: SocketAddr,
    store: Mutex<Store>,
    limiter: Mutex<RateLimiter>,
    faults: Mutex<FaultConfig>,
    counters: Mutex<Counters>,
}

/// Locks a mutex, carrying on after a panic in another request: the state stays usable and
/// an emulator that wedges on one bug helps nobody.
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Shared {
    fn limit(&self, tier: Tier) -> u32 {
        match tier {
            Tier::Tier1 => self.tier1_per_minute,
            Tier::Tier2 => self.tier2_per_minute,
        }
    }

    fn snapshot(&self) -> Vec<Value> {
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
        let shared = Arc::new(Shared {
            keys,
            tier1_per_minute: config.tier1_per_minute,
            tier2_per_minute: config.tier2_per_minute,
            export_ttl: config.export_ttl,
            addr,
            store: Mutex::new(Store::new(config.run_duration, config.normalize_schedules)),
            limiter: Mutex::new(RateLimiter::default()),
            faults: Mutex::new(config.faults),
            counters: Mutex::new(Counters::default()),
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

    /// `http://127.0.0.1:PORT` (no trailing slash); the API is under `/api/v1/automations`.
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
        // Only the address: the shared state holds API keys and execution tokens.
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
        .route("/_emulator/health", get(health))
        .route("/_emulator/counters", get(get_counters))
        .route("/_emulator/counters/reset", post(reset_counters))
        .route(
            "/_emulator/faults",
            get(get_faults).put(put_faults).delete(delete_faults),
        )
        .route("/_emulator/automations", get(snapshot))
        .route("/_emulator/exports/{file}", get(download_export))
        .fallback(api_entry)
        .with_state(shared)
}

fn json_response(status: StatusCode, body: &Value) -> Response {
    (
        status,
        [(CONTENT_TYPE, HeaderValue::from_static("application/json"))],
        body.to_string(),
    )
        .into_response()
}

async fn health() -> Response {
    json_response(StatusCode::OK, &json!({"status": "ok"}))
}

async fn get_counters(State(shared): State<Arc<Shared>>) -> Response {
    let counters = lock(&shared.counters).clone();
    json_response(StatusCode::OK, &json!(counters))
}

async fn reset_counters(State(shared): State<Arc<Shared>>) -> Response {
    *lock(&shared.counters) = Counters::default();
    StatusCode::NO_CONTENT.into_response()
}

async fn get_faults(State(shared): State<Arc<Shared>>) -> Response {
    let faults = lock(&shared.faults).clone();
    json_response(StatusCode::OK, &json!(faults))
}

async fn put_faults(State(shared): State<Arc<Shared>>, body: Bytes) -> Response {
    let parsed: FaultConfig = match serde_json::from_slice(&body) {
        Ok(f) => f,
        Err(e) => {
            return error_response(
                &ApiError::BadRequest(format!("invalid fault config: {e}")),
                None,
            );
        }
    };
    if let Err(e) = parsed.validate() {
        return error_response(&ApiError::BadRequest(e), None);
    }
    *lock(&shared.faults) = parsed.clone();
    json_response(StatusCode::OK, &json!(parsed))
}

async fn delete_faults(State(shared): State<Arc<Shared>>) -> Response {
    *lock(&shared.faults) = FaultConfig::default();
    StatusCode::NO_CONTENT.into_response()
}

async fn snapshot(State(shared): State<Arc<Shared>>) -> Response {
    json_response(StatusCode::OK, &Value::Array(shared.snapshot()))
}

/// Serves an exported run log. Like a pre-signed S3 URL it needs no key and answers 403
/// once expired.
async fn download_export(State(shared): State<Arc<Shared>>, Path(file): Path<String>) -> Response {
    let token = file.strip_suffix(".json").unwrap_or(&file);
    let store = lock(&shared.store);
    match store.exports.get(token) {
        None => error_response(&ApiError::NotFound("no such export".to_owned()), None),
        Some(e) if Instant::now() >= e.expires_at => error_response(
            &ApiError::Forbidden(
                "Request has expired: export links are valid for a limited time".to_owned(),
            ),
            None,
        ),
        Some(e) => json_response(StatusCode::OK, &e.log),
    }
}

/// An error envelope, with rate-limit headers when the caller is known.
fn error_response(e: &ApiError, quota: Option<Quota>) -> Response {
    let mut response = json_response(e.status(), &e.body());
    if let Some(secs) = e.retry_after() {
        response
            .headers_mut()
            .insert(RETRY_AFTER, HeaderValue::from(secs));
    }
    if let Some(q) = quota {
        add_quota_headers(response.headers_mut(), q);
    }
    response
}

fn add_quota_headers(headers: &mut HeaderMap, q: Quota) {
    let reset_in = q.reset_in.as_secs() + u64::from(q.reset_in.subsec_nanos() > 0);
    let reset = Utc::now().timestamp() + i64::try_from(reset_in).unwrap_or(0);
    headers.insert("ratelimit-limit", HeaderValue::from(q.limit));
    headers.insert("ratelimit-remaining", HeaderValue::from(q.remaining));
    headers.insert("ratelimit-reset", HeaderValue::from(reset));
}

fn reply_response(reply: Reply, quota: Quota) -> Response {
    let mut response = match reply.body {
        Some(body) => json_response(reply.status, &body),
        None => reply.status.into_response(),
    };
    add_quota_headers(response.headers_mut(), quota);
    response
}

/// A response whose body fails at once: hyper then aborts the connection, so the client
/// sees a transport error instead of an HTTP answer.
fn dropped_response() -> Response {
    let stream = futures::stream::once(async {
        Err::<Bytes, std::io::Error>(std::io::Error::new(
            std::io::ErrorKind::ConnectionAborted,
            "fault injection: connection dropped",
        ))
    });
    Response::new(Body::from_stream(stream))
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

async fn api_entry(State(shared): State<Arc<Shared>>, request: Request) -> Response {
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
                Ok(reply) => match reply.body {
                    Some(b) => json_response(reply.status, &b),
                    None => reply.status.into_response(),
                },
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
    lock(&shared.counters).record(route.endpoint, outcome, user);
    tracing::debug!(
        method,
        endpoint = route.endpoint.name(),
        status = outcome,
        user = user.unwrap_or("-"),
        "emulator request"
    );
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

    let caller = parts
        .headers
        .get(axum::http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            v.strip_prefix("Bearer ")
                .or_else(|| v.strip_prefix("bearer "))
        })
        .and_then(|key| shared.keys.get(key.trim()))
        .cloned();
    let Some(caller) = caller else {
        record(&shared, &route, &method, "401", None);
        return error_response(
            &ApiError::Unauthorized(
                "a valid API key is required: Authorization: Bearer <API key>".to_owned(),
            ),
            None,
        );
    };
    let user = Some(caller.user_id.as_str());

    let checked = lock(&shared.limiter).check(
        &caller.user_id,
        endpoint.tier(),
        shared.limit(endpoint.tier()),
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
        Ok(reply) => reply_response(reply, quota),
        Err(e) => error_response(&e, Some(quota)),
    };
    record(&shared, &route, &method, response.status().as_str(), user);
    response
}

#[cfg(test)]
mod tests {
    use super::*;

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
