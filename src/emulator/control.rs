//! The endpoints outside the API's tiers: the unauthenticated `/_emulator/` control surface
//! (health, counters, faults, snapshot, export and debug downloads, token expiry) and the
//! OAuth2 token endpoint `POST /oauth/token`.

use std::sync::Arc;
use std::time::Instant;

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::header::{CACHE_CONTROL, CONTENT_TYPE, PRAGMA};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use super::counters::Counters;
use super::error::ApiError;
use super::faults::FaultConfig;
use super::oauth::TokenRequest;
use super::respond::{error_response, json_response};
use super::server::{Shared, lock};

/// `GET /_emulator/health`
pub(super) async fn health() -> Response {
    json_response(StatusCode::OK, &json!({"status": "ok"}))
}

/// `GET /_emulator/counters`
pub(super) async fn get_counters(State(shared): State<Arc<Shared>>) -> Response {
    let counters = lock(&shared.counters).clone();
    json_response(StatusCode::OK, &json!(counters))
}

/// `POST /_emulator/counters/reset`: every counter back to zero, token counters included.
pub(super) async fn reset_counters(State(shared): State<Arc<Shared>>) -> Response {
    *lock(&shared.counters) = Counters::default();
    StatusCode::NO_CONTENT.into_response()
}

/// `GET /_emulator/faults`
pub(super) async fn get_faults(State(shared): State<Arc<Shared>>) -> Response {
    let faults = lock(&shared.faults).clone();
    json_response(StatusCode::OK, &json!(faults))
}

/// `PUT /_emulator/faults`
pub(super) async fn put_faults(State(shared): State<Arc<Shared>>, body: Bytes) -> Response {
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

/// `DELETE /_emulator/faults`
pub(super) async fn delete_faults(State(shared): State<Arc<Shared>>) -> Response {
    *lock(&shared.faults) = FaultConfig::default();
    StatusCode::NO_CONTENT.into_response()
}

/// `GET /_emulator/automations`
pub(super) async fn snapshot(State(shared): State<Arc<Shared>>) -> Response {
    json_response(StatusCode::OK, &Value::Array(shared.snapshot()))
}

/// Serves an exported run log or a debug log. Like a pre-signed S3 URL it needs no key and
/// answers 403 once expired.
pub(super) async fn download_export(
    State(shared): State<Arc<Shared>>,
    Path(file): Path<String>,
) -> Response {
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

/// `POST /_emulator/oauth/expire`: every access token issued so far answers 401 from now on,
/// as if its lifetime had run out.
pub(super) async fn expire_tokens(State(shared): State<Arc<Shared>>) -> Response {
    lock(&shared.tokens).expire_all(Instant::now());
    StatusCode::NO_CONTENT.into_response()
}

/// `POST /oauth/token`: the client-credentials grant. Counted in `tokenRequests` and
/// `tokensIssued`, never in the API's tiers; answers are not to be cached (RFC 6749 §5.1).
pub(super) async fn oauth_token(
    State(shared): State<Arc<Shared>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    lock(&shared.counters).token_requests += 1;
    let content_type = headers.get(CONTENT_TYPE).and_then(|v| v.to_str().ok());
    let granted = TokenRequest::parse(&body, content_type)
        .and_then(|req| lock(&shared.tokens).grant(&req, Instant::now()));
    let mut response = match granted {
        Ok(token) => {
            lock(&shared.counters).tokens_issued += 1;
            json_response(StatusCode::OK, &token)
        }
        Err(refusal) => {
            tracing::debug!(?refusal, "emulator refused a token request");
            json_response(refusal.status(), &refusal.body())
        }
    };
    let h = response.headers_mut();
    h.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert(PRAGMA, HeaderValue::from_static("no-cache"));
    response
}
