//! Typed errors of the Automations API: the HTTP status, Qlik's error envelope, and a class
//! the controller can act on.

use std::{fmt, time::Duration};

use serde::{Deserialize, Serialize};

use super::endpoint::{Api, Endpoint};

/// One entry of Qlik's error envelope (`Error`).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct ApiErrorItem {
    /// The unique code for the error, e.g. `HTTP-429`.
    #[serde(default)]
    pub code: String,
    /// A summary of what went wrong.
    #[serde(default)]
    pub title: String,
    /// Additional details, when given.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
}

/// Qlik's error envelope: `{"errors":[{"code","title","detail"}],"traceId"}` (`ErrorResponse`).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ErrorEnvelope {
    /// The errors.
    #[serde(default)]
    pub errors: Vec<ApiErrorItem>,
    /// A way to trace the source of the error.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trace_id: Option<String>,
}

/// What the service answered when a call failed with an HTTP status.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiFailure {
    /// The endpoint called.
    pub endpoint: Endpoint,
    /// The HTTP status.
    pub status: u16,
    /// The envelope, or an empty one when the body was not an envelope.
    pub envelope: ErrorEnvelope,
}

impl ApiFailure {
    /// Qlik's own words: the titles and details of every error, joined.
    pub fn message(&self) -> String {
        let parts: Vec<String> = self
            .envelope
            .errors
            .iter()
            .map(|e| match &e.detail {
                Some(d) if !d.is_empty() && d != &e.title => format!("{}: {d}", e.title),
                _ => e.title.clone(),
            })
            .filter(|s| !s.is_empty())
            .collect();
        if parts.is_empty() {
            format!("HTTP {}", self.status)
        } else {
            parts.join("; ")
        }
    }

    /// The trace id, when the service gave one.
    pub fn trace_id(&self) -> Option<&str> {
        self.envelope.trace_id.as_deref()
    }
}

impl fmt::Display for ApiFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} answered {}: {}",
            self.endpoint,
            self.status,
            self.message()
        )?;
        if let Some(t) = self.trace_id() {
            write!(f, " (traceId {t})")?;
        }
        Ok(())
    }
}

/// An error from the Automations client.
///
/// Messages never contain the API key or an execution token: requests carry the key in a
/// header, which no variant records.
#[derive(Debug, Clone, thiserror::Error)]
pub enum QlikError {
    /// 401: the API key is missing, wrong or expired.
    #[error("unauthorized: {0}")]
    Unauthorized(ApiFailure),
    /// 403: the key's user may not do this.
    #[error("forbidden: {0}")]
    Forbidden(ApiFailure),
    /// 404: no such automation or run (or not visible to this key's user).
    #[error("not found: {0}")]
    NotFound(ApiFailure),
    /// 400 (or another 4xx): the request was refused as invalid, with Qlik's detail.
    #[error("bad request: {0}")]
    BadRequest(ApiFailure),
    /// 429: the rate limit was reached.
    #[error("rate limited: {failure}")]
    RateLimited {
        /// What the service answered.
        failure: ApiFailure,
        /// How long the service asked to wait, from `Retry-After`.
        retry_after: Option<Duration>,
    },
    /// 5xx: the service failed or is unavailable.
    #[error("service unavailable: {0}")]
    Unavailable(ApiFailure),
    /// The call did not complete in time; it may or may not have taken effect.
    #[error("{endpoint} timed out")]
    Timeout {
        /// The endpoint called.
        endpoint: Endpoint,
    },
    /// The connection failed or broke; the call may or may not have taken effect unless
    /// `sent` is false.
    #[error("{endpoint} failed in transport: {message}")]
    Transport {
        /// The endpoint called.
        endpoint: Endpoint,
        /// Whether the request may have reached the service.
        sent: bool,
        /// The transport error, without headers.
        message: String,
    },
    /// The answer could not be understood.
    #[error("{endpoint} answered {status} with a body that could not be read: {message}")]
    Decode {
        /// The endpoint called.
        endpoint: Endpoint,
        /// The HTTP status.
        status: u16,
        /// What was wrong with it.
        message: String,
    },
    /// The client refused to send the request (bad configuration or argument).
    #[error("invalid request: {0}")]
    Invalid(String),
    /// The connection's API generation has no such operation or field; nothing was sent.
    #[error("{what} is not supported by the {api} API")]
    Unsupported {
        /// The operation or field, e.g. `spec.spaceId`.
        what: String,
        /// The generation the connection speaks.
        api: Api,
    },
    /// No OAuth access token: the tenant refused the client's grant (400/401/403: a wrong
    /// client id, secret or scope), or the token request failed. Never holds the secret.
    #[error("cannot get an OAuth access token for client {client_id}: {message}")]
    Token {
        /// The OAuth client id.
        client_id: String,
        /// The token endpoint's status, when it answered.
        status: Option<u16>,
        /// Qlik's words (with its traceId), or the transport failure.
        message: String,
    },
}

/// A coarse class of [`QlikError`] that decides what a caller does next.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorClass {
    /// Credentials are wrong: fix the Secret; retry slowly.
    Unauthorized,
    /// Permission missing: fix the key's role; retry slowly.
    Forbidden,
    /// The object does not exist.
    NotFound,
    /// The request is invalid: fix the spec; do not retry until it changes.
    InvalidRequest,
    /// Rate limited: wait as told.
    RateLimited,
    /// Transient server or network trouble: back off and retry.
    Transient,
    /// The connection's API generation cannot do this: change the spec or the connection.
    Unsupported,
}

impl ErrorClass {
    /// A stable CamelCase name, usable as a Kubernetes condition reason.
    pub fn reason(self) -> &'static str {
        match self {
            ErrorClass::Unauthorized => "Unauthorized",
            ErrorClass::Forbidden => "Forbidden",
            ErrorClass::NotFound => "NotFound",
            ErrorClass::InvalidRequest => "InvalidSpec",
            ErrorClass::RateLimited => "RateLimited",
            ErrorClass::Transient => "TransientError",
            ErrorClass::Unsupported => "UnsupportedByApi",
        }
    }
}

impl QlikError {
    /// The class of the error.
    pub fn class(&self) -> ErrorClass {
        match self {
            QlikError::Unauthorized(_) => ErrorClass::Unauthorized,
            QlikError::Forbidden(_) => ErrorClass::Forbidden,
            QlikError::NotFound(_) => ErrorClass::NotFound,
            QlikError::BadRequest(_) | QlikError::Invalid(_) => ErrorClass::InvalidRequest,
            QlikError::RateLimited { .. } => ErrorClass::RateLimited,
            QlikError::Unavailable(_)
            | QlikError::Timeout { .. }
            | QlikError::Transport { .. }
            | QlikError::Decode { .. } => ErrorClass::Transient,
            QlikError::Unsupported { .. } => ErrorClass::Unsupported,
            // A refused grant is the Secret's fault; a failed token request is not.
            QlikError::Token { status, .. } => match status {
                Some(400..=499) if *status != Some(429) => ErrorClass::Unauthorized,
                _ => ErrorClass::Transient,
            },
        }
    }

    /// True when trying again later may succeed without any change.
    pub fn is_transient(&self) -> bool {
        matches!(
            self.class(),
            ErrorClass::Transient | ErrorClass::RateLimited
        )
    }

    /// True when a write may have taken effect even though it failed: the caller must look
    /// before repeating a create.
    pub fn is_ambiguous(&self) -> bool {
        match self {
            QlikError::Timeout { .. } | QlikError::Decode { .. } => true,
            QlikError::Transport { sent, .. } => *sent,
            // A 5xx may come from a gateway after the service acted.
            QlikError::Unavailable(_) => true,
            _ => false,
        }
    }

    /// The service's answer, when there was one.
    pub fn failure(&self) -> Option<&ApiFailure> {
        match self {
            QlikError::Unauthorized(f)
            | QlikError::Forbidden(f)
            | QlikError::NotFound(f)
            | QlikError::BadRequest(f)
            | QlikError::Unavailable(f)
            | QlikError::RateLimited { failure: f, .. } => Some(f),
            _ => None,
        }
    }

    /// The HTTP status, when there was one.
    pub fn status(&self) -> Option<u16> {
        match self {
            QlikError::Decode { status, .. } => Some(*status),
            QlikError::Token { status, .. } => *status,
            other => other.failure().map(|f| f.status),
        }
    }

    /// Qlik's trace id, when there was one.
    pub fn trace_id(&self) -> Option<&str> {
        self.failure().and_then(ApiFailure::trace_id)
    }

    /// The wait the service asked for after a 429.
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            QlikError::RateLimited { retry_after, .. } => *retry_after,
            _ => None,
        }
    }

    /// Builds the error for an HTTP failure from its status, body and `Retry-After`.
    pub fn from_response(
        endpoint: Endpoint,
        status: u16,
        body: &[u8],
        retry_after: Option<Duration>,
    ) -> QlikError {
        let envelope = serde_json::from_slice::<ErrorEnvelope>(body).unwrap_or_else(|_| {
            // Not an envelope (a proxy's HTML page, say): keep a short, printable excerpt.
            let text: String = String::from_utf8_lossy(body)
                .chars()
                .filter(|c| !c.is_control())
                .take(200)
                .collect();
            ErrorEnvelope {
                errors: vec![ApiErrorItem {
                    code: format!("HTTP-{status}"),
                    title: if text.trim().is_empty() {
                        format!("HTTP {status}")
                    } else {
                        text
                    },
                    detail: None,
                }],
                trace_id: None,
            }
        });
        let failure = ApiFailure {
            endpoint,
            status,
            envelope,
        };
        match status {
            401 => QlikError::Unauthorized(failure),
            403 => QlikError::Forbidden(failure),
            404 => QlikError::NotFound(failure),
            429 => QlikError::RateLimited {
                failure,
                retry_after,
            },
            500..=599 => QlikError::Unavailable(failure),
            _ => QlikError::BadRequest(failure),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err(status: u16, body: &str) -> QlikError {
        QlikError::from_response(Endpoint::GetAutomation, status, body.as_bytes(), None)
    }

    #[test]
    fn classifies_statuses() {
        let body = r#"{"errors":[{"code":"X","title":"t"}]}"#;
        assert_eq!(err(401, body).class(), ErrorClass::Unauthorized);
        assert_eq!(err(403, body).class(), ErrorClass::Forbidden);
        assert_eq!(err(404, body).class(), ErrorClass::NotFound);
        assert_eq!(err(400, body).class(), ErrorClass::InvalidRequest);
        assert_eq!(err(409, body).class(), ErrorClass::InvalidRequest);
        assert_eq!(err(429, body).class(), ErrorClass::RateLimited);
        assert_eq!(err(500, body).class(), ErrorClass::Transient);
        assert_eq!(err(503, body).class(), ErrorClass::Transient);
        assert!(err(503, body).is_transient() && !err(400, body).is_transient());
    }

    #[test]
    fn a_refused_grant_is_unauthorized_and_a_failed_one_transient() {
        let token = |status| QlikError::Token {
            client_id: "c".into(),
            status,
            message: "m".into(),
        };
        assert_eq!(token(Some(401)).class(), ErrorClass::Unauthorized);
        assert_eq!(token(Some(400)).class(), ErrorClass::Unauthorized);
        assert_eq!(token(Some(429)).class(), ErrorClass::Transient);
        assert_eq!(token(Some(503)).class(), ErrorClass::Transient);
        assert_eq!(token(None).class(), ErrorClass::Transient);
        let unsupported = QlikError::Unsupported {
            what: "spec.spaceId".into(),
            api: Api::V1,
        };
        assert_eq!(unsupported.class().reason(), "UnsupportedByApi");
        assert_eq!(
            unsupported.to_string(),
            "spec.spaceId is not supported by the v1 API"
        );
    }

    #[test]
    fn keeps_qliks_detail_and_trace_id() {
        let e = err(
            400,
            r#"{"errors":[{"code":"HTTP-400","title":"Bad Request","detail":"schedules[0].interval must be greater than 0"}],"traceId":"abc123"}"#,
        );
        assert_eq!(e.trace_id(), Some("abc123"));
        let text = e.to_string();
        assert!(
            text.contains("schedules[0].interval must be greater than 0"),
            "{text}"
        );
        assert!(text.contains("traceId abc123"), "{text}");
    }

    #[test]
    fn survives_a_body_that_is_not_an_envelope() {
        let e = err(502, "<html>\n<body>Bad gateway</body></html>");
        assert_eq!(e.status(), Some(502));
        assert!(e.to_string().contains("Bad gateway"), "{e}");
        let e = err(503, "");
        assert!(e.to_string().contains("HTTP 503"), "{e}");
    }
}
