//! Turning answers into HTTP responses: JSON bodies, error envelopes, the `Ratelimit-*`
//! headers, deliberately dropped connections, and the deprecation notice on every v1 answer.

use axum::body::{Body, Bytes};
use axum::http::header::{CONTENT_TYPE, LINK, RETRY_AFTER};
use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use chrono::Utc;
use serde_json::Value;

use super::error::ApiError;
use super::handlers::Reply;
use super::ratelimit::Quota;

/// `Deprecation` of v1 (RFC 9745): deprecated since 2026-04-01T00:00:00Z, when the workflows
/// generation appeared.
pub(crate) const V1_DEPRECATION: &str = "@1775001600";

/// `Sunset` of v1 (RFC 8594): Qlik announced removal on or after 2027-11-30.
pub(crate) const V1_SUNSET: &str = "Tue, 30 Nov 2027 00:00:00 GMT";

/// `Link` of v1 answers: where its successor lives.
pub(crate) const V1_SUCCESSOR_LINK: &str =
    "</api/workflows/automations>; rel=\"successor-version\"";

/// A JSON response.
pub(crate) fn json_response(status: StatusCode, body: &Value) -> Response {
    (
        status,
        [(CONTENT_TYPE, HeaderValue::from_static("application/json"))],
        body.to_string(),
    )
        .into_response()
}

/// An error envelope, with rate-limit headers when the caller is known.
pub(crate) fn error_response(e: &ApiError, quota: Option<Quota>) -> Response {
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

/// A handler's answer, with rate-limit headers.
pub(crate) fn reply_response(reply: Reply, quota: Option<Quota>) -> Response {
    let mut response = match reply.body {
        Some(body) => json_response(reply.status, &body),
        None => reply.status.into_response(),
    };
    if let Some(q) = quota {
        add_quota_headers(response.headers_mut(), q);
    }
    response
}

/// A response whose body fails at once: hyper then aborts the connection, so the client
/// sees a transport error instead of an HTTP answer.
pub(crate) fn dropped_response() -> Response {
    let stream = futures::stream::once(async {
        Err::<Bytes, std::io::Error>(std::io::Error::new(
            std::io::ErrorKind::ConnectionAborted,
            "fault injection: connection dropped",
        ))
    });
    Response::new(Body::from_stream(stream))
}

/// Marks an answer of the deprecated v1 generation, so clients and proxies can see it is
/// going and where to go instead.
pub(crate) fn mark_deprecated(headers: &mut HeaderMap) {
    headers.insert(
        HeaderName::from_static("deprecation"),
        HeaderValue::from_static(V1_DEPRECATION),
    );
    headers.insert(
        HeaderName::from_static("sunset"),
        HeaderValue::from_static(V1_SUNSET),
    );
    headers.insert(LINK, HeaderValue::from_static(V1_SUCCESSOR_LINK));
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::{DateTime, TimeZone};

    #[test]
    fn deprecation_headers_name_the_announced_dates() {
        let since: i64 = V1_DEPRECATION.trim_start_matches('@').parse().unwrap();
        assert_eq!(
            Utc.timestamp_opt(since, 0).unwrap(),
            Utc.with_ymd_and_hms(2026, 4, 1, 0, 0, 0).unwrap()
        );
        let sunset = DateTime::parse_from_rfc2822(V1_SUNSET).unwrap();
        assert_eq!(sunset, Utc.with_ymd_and_hms(2027, 11, 30, 0, 0, 0).unwrap());
        let mut h = HeaderMap::new();
        mark_deprecated(&mut h);
        assert_eq!(h["deprecation"], V1_DEPRECATION);
        assert_eq!(h["sunset"], V1_SUNSET);
        assert!(h[LINK].to_str().unwrap().contains("successor-version"));
    }
}
