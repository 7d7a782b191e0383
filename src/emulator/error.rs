//! API errors and the envelope the live service wraps them in:
//! `{"errors":[{"code":"HTTP-<status>","title":"...","detail":"..."}],"traceId":"<32 hex>"}`.

use axum::http::StatusCode;
use serde_json::{Value, json};

/// An error answer of the emulated API. The message is the envelope's `detail`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum ApiError {
    /// 400: the request is malformed; the detail names the offending field or parameter.
    #[error("{0}")]
    BadRequest(String),
    /// 401: no key, a key the emulator does not know, or an unknown or expired access token.
    #[error("{0}")]
    Unauthorized(String),
    /// 403: the key is valid but may not do this.
    #[error("{0}")]
    Forbidden(String),
    /// 404: no such route, or nothing this key may see under that id.
    #[error("{0}")]
    NotFound(String),
    /// 405: the path exists but not with this method.
    #[error("method {0} is not allowed on this path")]
    MethodNotAllowed(String),
    /// 413: the body is larger than the emulator accepts.
    #[error("the request body is too large")]
    PayloadTooLarge,
    /// 415: a body was sent with a content type other than JSON.
    #[error("content type {0:?} is not supported; send application/json")]
    UnsupportedMediaType(String),
    /// 429: the user's tier is exhausted for `retry_after` more seconds.
    #[error("You need to wait {retry_after} seconds until limit is lifted.")]
    RateLimited {
        /// Whole seconds until the tier frees (at least 1).
        retry_after: u64,
    },
    /// An injected fault answering with an arbitrary status.
    #[error("injected fault: the emulator was told to fail this request")]
    Injected(u16),
}

impl ApiError {
    /// The HTTP status of this error.
    pub(crate) fn status(&self) -> StatusCode {
        match self {
            ApiError::BadRequest(_) => StatusCode::BAD_REQUEST,
            ApiError::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            ApiError::Forbidden(_) => StatusCode::FORBIDDEN,
            ApiError::NotFound(_) => StatusCode::NOT_FOUND,
            ApiError::MethodNotAllowed(_) => StatusCode::METHOD_NOT_ALLOWED,
            ApiError::PayloadTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::UnsupportedMediaType(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            ApiError::RateLimited { .. } => StatusCode::TOO_MANY_REQUESTS,
            ApiError::Injected(code) => {
                StatusCode::from_u16(*code).unwrap_or(StatusCode::SERVICE_UNAVAILABLE)
            }
        }
    }

    /// The envelope's `title`: the live service's wording where known, else the reason phrase.
    fn title(&self) -> String {
        match self {
            ApiError::RateLimited { .. } => "API rate limit reached.".to_owned(),
            ApiError::NotFound(_) => "Not found".to_owned(),
            other => other
                .status()
                .canonical_reason()
                .unwrap_or("Error")
                .to_owned(),
        }
    }

    /// The `Retry-After` seconds to send, if any.
    pub(crate) fn retry_after(&self) -> Option<u64> {
        match self {
            ApiError::RateLimited { retry_after } => Some(*retry_after),
            ApiError::Injected(429) => Some(1),
            _ => None,
        }
    }

    /// The JSON error envelope, with a fresh trace id.
    pub(crate) fn body(&self) -> Value {
        envelope(self.status(), &self.title(), &self.to_string())
    }
}

/// Builds `{"errors":[{code,title,detail}],"traceId"}` for any status.
pub(crate) fn envelope(status: StatusCode, title: &str, detail: &str) -> Value {
    json!({
        "errors": [{
            "code": format!("HTTP-{}", status.as_u16()),
            "title": title,
            "detail": detail,
        }],
        "traceId": trace_id(),
    })
}

/// A random 32-hex-digit trace id, the shape the live service uses.
pub(crate) fn trace_id() -> String {
    uuid::Uuid::new_v4().simple().to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn envelope_has_code_title_detail_and_trace_id() {
        let body = ApiError::BadRequest("limit must be between 1 and 200".into()).body();
        assert_eq!(body["errors"][0]["code"], "HTTP-400");
        assert_eq!(body["errors"][0]["title"], "Bad Request");
        assert_eq!(
            body["errors"][0]["detail"],
            "limit must be between 1 and 200"
        );
        let trace = body["traceId"].as_str().unwrap();
        assert_eq!(trace.len(), 32);
        assert!(trace.chars().all(|c| c.is_ascii_hexdigit()));
    }

    #[test]
    fn rate_limited_uses_the_live_wording() {
        let e = ApiError::RateLimited { retry_after: 13 };
        let body = e.body();
        assert_eq!(body["errors"][0]["title"], "API rate limit reached.");
        assert_eq!(
            body["errors"][0]["detail"],
            "You need to wait 13 seconds until limit is lifted."
        );
        assert_eq!(e.retry_after(), Some(13));
        assert_eq!(e.status(), StatusCode::TOO_MANY_REQUESTS);
    }
}
