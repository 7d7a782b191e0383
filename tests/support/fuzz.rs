// The seeded generator of malformed answers from the tenant: bodies (random bytes, the
// reference's example bodies mutated structurally or byte by byte), statuses and headers
// (`Retry-After`, `Content-Type`). One generator behind two tests of two layers:
//
// * `tests/client_fuzz.rs` sends its answers over HTTP to the real client (`support::fuzz`);
// * `src/qlik/client.rs`'s `response_fuzz` unit test feeds its bodies straight to the private
//   decoder and to `QlikError::from_response`, which HTTP cannot reach at that rate or with an
//   uncapped `Retry-After`. It `include!`s this file, so it holds items only: no inner
//   attributes or `//!` docs, and nothing but `rand`, `serde_json` and `std`.

use std::time::Duration;

use rand::{Rng, rngs::StdRng, seq::IndexedRandom};
use serde_json::{Value, json};

/// The reference's example response bodies (`qlik-automations-api.txt`), plus its error
/// envelope.
pub const REFERENCE_BODIES: &[&str] = &[
    // GET /v1/automations
    r#"{"data":[{"id":"e0e720d0-4947-11ec-a1d2-9559fa35801d","name":"string","state":"available","ownerId":"sWYAHxZxhtcmBT7Ptc5xJ5I6N7HxwnEy","runMode":"triggered","createdAt":"2021-12-23T12:28:21.000000Z","lastRunAt":"2021-12-23T12:28:21.000000Z","updatedAt":"2021-12-23T12:28:21.000000Z","description":"string","lastRunStatus":"finished"}],"links":{"next":{"href":"string"},"prev":{"href":"string"}}}"#,
    // POST /v1/automations, GET and PUT /v1/automations/{id}
    r#"{"id":"e0e720d0-4947-11ec-a1d2-9559fa35801d","name":"string","state":"available","lastRun":{"id":"d452d100-9b0b-11ec-b199-8323e1031c3e","error":{},"title":"string","inputs":{},"status":"failed","context":"test_run","metrics":{"blocks":[{"type":"endpointBlock","rxBytes":18329921,"txBytes":18329921,"apiCalls":40,"snippetId":"string","endpointId":"string","connectorId":"string"}],"network":{"rxBytes":0,"txBytes":0},"totalApiCalls":0},"stopTime":"2021-12-23T12:28:21.000000Z","createdAt":"2021-12-23T12:28:21.000000Z","isTestRun":true,"startTime":"2021-12-23T12:28:21.000000Z","updatedAt":"2021-12-23T12:28:21.000000Z","isArchived":true,"expectedInputs":{},"scheduledStartTime":"2021-12-23T12:28:21.000000Z"},"ownerId":"sWYAHxZxhtcmBT7Ptc5xJ5I6N7HxwnEy","runMode":"triggered","createdAt":"2021-12-23T12:28:21.000000Z","lastRunAt":"2021-12-23T12:28:21.000000Z","schedules":[{"id":"d452d100-9b0b-11ec-b199-8323e1031c3e","stopAt":"2022-12-01 00:00:00","startAt":"2021-12-01 00:00:00","interval":30,"timezone":"Europe/Stockholm","lastStartedAt":"2022-01-01T12:28:21.000000Z"}],"updatedAt":"2021-12-23T12:28:21.000000Z","workspace":{},"snippetIds":["e0e720d0-4947-11ec-a1d2-9559fa35801d"],"description":"string","endpointIds":["9d94bef0-b28c-11eb-8dba-01593c457362","53a6fb70-b28f-11eb-b601-b545a40867e0"],"connectorIds":["0d87808f-27c0-11ea-921c-022e6b5ea1e2","0d86ee8a-27c0-11ea-921c-022e6b5ea1e2"],"lastRunStatus":"finished","executionToken":"aZXuEogT9X3le0k0WXMBnzuYKq4xRlkDnurjs8NVhEAAW1BYx8C1PpIl3ielgRb1"}"#,
    // POST /v1/automations/{id}/actions/copy
    r#"{"id":"00000000-0000-0000-0000-000000000000"}"#,
    // GET /v1/automations/{id}/runs
    r#"{"data":[{"id":"d452d100-9b0b-11ec-b199-8323e1031c3e","error":{},"title":"string","status":"failed","context":"test_run","stopTime":"2021-12-23T12:28:21.000000Z","createdAt":"2021-12-23T12:28:21.000000Z","isTestRun":true,"startTime":"2021-12-23T12:28:21.000000Z","updatedAt":"2021-12-23T12:28:21.000000Z","isArchived":true,"scheduledStartTime":"2021-12-23T12:28:21.000000Z"}],"links":{"next":{"href":"string"},"prev":{"href":"string"}}}"#,
    // POST /v1/automations/{id}/runs, GET .../runs/{runId}
    r#"{"id":"d452d100-9b0b-11ec-b199-8323e1031c3e","error":{},"title":"string","inputs":{},"status":"failed","context":"test_run","metrics":{"blocks":[{"type":"endpointBlock","rxBytes":18329921,"txBytes":18329921,"apiCalls":40,"snippetId":"string","endpointId":"string","connectorId":"string"}],"network":{"rxBytes":0,"txBytes":0},"totalApiCalls":0},"stopTime":"2021-12-23T12:28:21.000000Z","createdAt":"2021-12-23T12:28:21.000000Z","isTestRun":true,"startTime":"2021-12-23T12:28:21.000000Z","updatedAt":"2021-12-23T12:28:21.000000Z","isArchived":true,"expectedInputs":{},"scheduledStartTime":"2021-12-23T12:28:21.000000Z"}"#,
    // POST .../runs/{runId}/actions/export
    r#"{"url":"https://<bucket>.s3.<region>.amazonaws.com/<run>.json"}"#,
    // GET and PUT /v1/automations/settings
    r#"{"automationsEnabled":true}"#,
    // GET /v1/automations/usage
    r#"{"data":[{"date":"2021-12-15","name":"bandwidthIn","value":310179713,"automation":{"guid":"00000000-0000-0000-0000-000000000000","name":"My Automation.","ownerId":"KP1zJiPDn0gsla236GmETadFcxBW-J8F"}}]}"#,
    // The error envelope.
    r#"{"errors":[{"code":"HTTP-429","title":"API rate limit reached.","detail":"You need to wait 13 seconds until limit is lifted."}],"traceId":"0af6a2d64ae7b5e4e1b1c5b29d4b8e21"}"#,
];

/// Keys the structural mutations add: the API's own, so decoders meet them.
pub const KEYS: &[&str] = &[
    "id",
    "data",
    "links",
    "next",
    "prev",
    "href",
    "errors",
    "code",
    "title",
    "detail",
    "traceId",
    "status",
    "schedules",
    "startAt",
    "interval",
    "lastRun",
    "metrics",
    "blocks",
    "automationsEnabled",
    "url",
    "value",
    "name",
    "automation",
    "guid",
    "state",
    "runMode",
];

/// A string to put anywhere: empty, up to 20 000 characters, control characters, right-to-left
/// text, foreign or relative links, the API's enum words, printable noise.
pub fn random_string(rng: &mut StdRng) -> String {
    match rng.random_range(0..8) {
        0 => String::new(),
        1 => "x".repeat(rng.random_range(1000..20000)),
        2 => "\u{0}\u{7}\u{1b}[31m\r\n\t\"\\".into(),
        3 => "日本語 🚀 \u{202e}rtl".into(),
        4 => [
            "http://127.0.0.1:1/x",
            "/api/v1/automations?cursor=z",
            "../../settings",
            "//evil.example/x",
            "string",
            "https://evil.example/api/v1/automations",
        ]
        .choose(rng)
        .unwrap()
        .to_string(),
        5 => [
            "available",
            "disabled",
            "finished",
            "exceeded limit",
            "api",
            "",
            "null",
        ]
        .choose(rng)
        .unwrap()
        .to_string(),
        _ => (0..rng.random_range(1..40))
            .map(|_| char::from(rng.random_range(32u8..127)))
            .collect(),
    }
}

/// Any JSON value, nested at most four deep, with the API's keys in objects.
pub fn random_value(rng: &mut StdRng, depth: u32) -> Value {
    match rng.random_range(0..12) {
        0 => Value::Null,
        1 => json!(rng.random_bool(0.5)),
        2 => json!(rng.random::<i64>()),
        3 => json!(u64::MAX),
        4 => json!(rng.random::<f64>() * 1e300 - 5e299),
        5 => json!(-1),
        6 | 7 => json!(random_string(rng)),
        8 if depth < 4 => Value::Array(
            (0..rng.random_range(0..4))
                .map(|_| random_value(rng, depth + 1))
                .collect(),
        ),
        9 | 10 if depth < 4 => Value::Object(
            (0..rng.random_range(0..5))
                .map(|_| {
                    (
                        KEYS.choose(rng).unwrap().to_string(),
                        random_value(rng, depth + 1),
                    )
                })
                .collect(),
        ),
        _ => json!(random_string(rng)),
    }
}

/// Replaces, removes or adds something at a random place of `v`.
pub fn mutate_value(rng: &mut StdRng, v: &mut Value, depth: u32) {
    let descend = rng.random_bool(0.7);
    match v {
        Value::Object(map) if !map.is_empty() && descend => {
            let key = map
                .keys()
                .nth(rng.random_range(0..map.len()))
                .unwrap()
                .clone();
            mutate_value(rng, map.get_mut(&key).unwrap(), depth + 1);
        }
        Value::Array(items) if !items.is_empty() && descend => {
            let i = rng.random_range(0..items.len());
            mutate_value(rng, &mut items[i], depth + 1);
        }
        Value::Object(map) => match rng.random_range(0..3) {
            0 if !map.is_empty() => {
                let key = map
                    .keys()
                    .nth(rng.random_range(0..map.len()))
                    .unwrap()
                    .clone();
                map.remove(&key);
            }
            1 => {
                map.insert(
                    KEYS.choose(rng).unwrap().to_string(),
                    random_value(rng, depth),
                );
            }
            _ => *v = random_value(rng, depth),
        },
        _ => *v = random_value(rng, depth),
    }
}

/// A body for one answer: random bytes, a structurally mutated reference body, or a
/// byte-mutated one.
pub fn random_body(rng: &mut StdRng) -> Vec<u8> {
    let reference = *REFERENCE_BODIES.choose(rng).unwrap();
    match rng.random_range(0..10) {
        0 => (0..rng.random_range(0..512))
            .map(|_| rng.random())
            .collect(),
        1 => Vec::new(),
        2 => "[".repeat(rng.random_range(100..5000)).into_bytes(),
        3 => reference.as_bytes().to_vec(),
        4..=6 => {
            let mut v: Value = serde_json::from_str(reference).unwrap();
            for _ in 0..rng.random_range(1..5) {
                mutate_value(rng, &mut v, 0);
            }
            serde_json::to_vec(&v).unwrap()
        }
        _ => {
            let mut bytes = reference.as_bytes().to_vec();
            for _ in 0..rng.random_range(1..6) {
                if bytes.is_empty() {
                    break;
                }
                let i = rng.random_range(0..bytes.len());
                match rng.random_range(0..4) {
                    0 => bytes[i] = rng.random(),
                    1 => bytes.truncate(i),
                    2 => bytes.insert(i, *b"{}[]\",:\\0\xff".choose(rng).unwrap()),
                    _ => {
                        let end = (i + rng.random_range(1..20)).min(bytes.len());
                        bytes.drain(i..end);
                    }
                }
            }
            bytes
        }
    }
}

/// The statuses answers come with: successes (weighted three to one), a redirect without a
/// `Location`, and every client and server error the API or a gateway in front of it sends.
pub const STATUSES: &[u16] = &[
    200, 200, 200, 201, 204, 302, 400, 401, 403, 404, 409, 413, 429, 500, 502, 503, 504,
];

/// `Retry-After` values: valid, negative, fractional, dates, absurdly large.
pub const RETRY_AFTERS: &[&str] = &[
    "1",
    "0",
    "13",
    "-1",
    "abc",
    "",
    " 5 ",
    "3.5",
    "Wed, 21 Oct 2015 07:28:00 GMT",
    "86400000",
    "18446744073709551615",
    "99999999999999999999999",
];

/// `Content-Type` values, right and wrong.
pub const CONTENT_TYPES: &[&str] = &["application/json", "text/html", "application/octet-stream"];

/// One answer of the tenant.
#[derive(Debug, Clone)]
pub struct Answer {
    /// The HTTP status.
    pub status: u16,
    /// The headers, by lower-case name.
    pub headers: Vec<(&'static str, String)>,
    /// The body.
    pub body: Vec<u8>,
}

/// Headers for an answer with `status`: a `Retry-After` on every 429 and on a tenth of the
/// others, a `Content-Type` on half of them.
pub fn random_headers(rng: &mut StdRng, status: u16) -> Vec<(&'static str, String)> {
    let mut headers = Vec::new();
    if status == 429 || rng.random_bool(0.1) {
        headers.push(("retry-after", RETRY_AFTERS.choose(rng).unwrap().to_string()));
    }
    if rng.random_bool(0.5) {
        headers.push((
            "content-type",
            CONTENT_TYPES.choose(rng).unwrap().to_string(),
        ));
    }
    headers
}

/// A whole answer: a status of [`STATUSES`], its headers, a [`random_body`].
pub fn random_answer(rng: &mut StdRng) -> Answer {
    let status = *STATUSES.choose(rng).unwrap();
    let headers = random_headers(rng, status);
    Answer {
        status,
        headers,
        body: random_body(rng),
    }
}

/// A failure status: one of [`STATUSES`] outside 2xx.
pub fn failure_status(rng: &mut StdRng) -> u16 {
    let failures: Vec<u16> = STATUSES
        .iter()
        .copied()
        .filter(|s| !(200..300).contains(s))
        .collect();
    *failures.choose(rng).unwrap()
}

/// An already parsed `Retry-After`, half of the time: any number of seconds up to `u64::MAX`
/// (the client caps what it parses; `QlikError::from_response` must take anything).
pub fn random_retry_after(rng: &mut StdRng) -> Option<Duration> {
    rng.random_bool(0.5)
        .then(|| Duration::from_secs(rng.random()))
}
