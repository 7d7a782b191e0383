//! HTTP-level tests of the emulator with raw reqwest: the reference's curl examples for every
//! endpoint (status codes and shapes), authentication and visibility, list parameters and
//! pagination, rate limits, the run lifecycle, export, settings, usage, fault injection and
//! counters. Each test owns its emulator, so counts are exact.

// Tests state what must hold with unwrap/expect; the crate's lints forbid them elsewhere.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::HashSet;
use std::time::{Duration, Instant};

use qlik_automations_operator::emulator::{
    ApiKey, EmulatorConfig, FaultConfig, FaultRule, RunningEmulator,
};
use qlik_automations_operator::qlik::endpoint::{Endpoint, Tier};
use reqwest::header::HeaderMap;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

const ALICE: &str = "alice-key";
const BOB: &str = "bob-key";
const ADMIN: &str = "admin-key";
const REF_AUTOMATION: &str = r#"{"name":"string","state":"available","schedules":[{"stopAt":"2022-12-01 00:00:00","startAt":"2022-01-01 00:00:00","interval":30,"timezone":"Europe/Stockholm"}],"workspace":{},"description":"string"}"#;

struct Api {
    emu: RunningEmulator,
    client: reqwest::Client,
}

struct Answer {
    status: StatusCode,
    headers: HeaderMap,
    raw: Vec<u8>,
    json: Value,
}

impl Answer {
    fn detail(&self) -> String {
        self.json["errors"][0]["detail"]
            .as_str()
            .unwrap_or_default()
            .to_owned()
    }

    fn header(&self, name: &str) -> Option<String> {
        self.headers
            .get(name)
            .map(|v| v.to_str().unwrap().to_owned())
    }
}

fn config() -> EmulatorConfig {
    EmulatorConfig {
        keys: vec![
            ApiKey::user(ALICE, "alice"),
            ApiKey::user(BOB, "bob"),
            ApiKey::admin(ADMIN, "root"),
        ],
        ..EmulatorConfig::default()
    }
}

async fn start(config: EmulatorConfig) -> Api {
    qlik_automations_operator::install_crypto_provider();
    let emu = RunningEmulator::start(config).await.unwrap();
    let client = reqwest::Client::builder().build().unwrap();
    Api { emu, client }
}

impl Api {
    fn url(&self, path: &str) -> String {
        format!("{}/api{path}", self.emu.base_url())
    }

    /// Sends a request like the reference's curl: a JSON body with its content type, or no
    /// body and no content type.
    async fn send(
        &self,
        method: Method,
        url: &str,
        key: Option<&str>,
        body: Option<&str>,
    ) -> Answer {
        let mut req = self.client.request(method, url);
        if let Some(k) = key {
            req = req.header("Authorization", format!("Bearer {k}"));
        }
        if let Some(b) = body {
            req = req
                .header("Content-type", "application/json")
                .body(b.to_owned());
        }
        let resp = req.send().await.unwrap();
        let status = resp.status();
        let headers = resp.headers().clone();
        let raw = resp.bytes().await.unwrap().to_vec();
        let json = if raw.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&raw).unwrap_or(Value::Null)
        };
        Answer {
            status,
            headers,
            raw,
            json,
        }
    }

    async fn call(&self, method: Method, path: &str, key: &str, body: Option<Value>) -> Answer {
        let body = body.map(|b| b.to_string());
        self.send(method, &self.url(path), Some(key), body.as_deref())
            .await
    }

    async fn get(&self, path: &str, key: &str) -> Answer {
        self.call(Method::GET, path, key, None).await
    }

    async fn post(&self, path: &str, key: &str, body: Option<Value>) -> Answer {
        self.call(Method::POST, path, key, body).await
    }

    async fn create(&self, key: &str, body: Value) -> String {
        let a = self.post("/v1/automations", key, Some(body)).await;
        assert_eq!(a.status, StatusCode::CREATED, "{}", a.json);
        a.json["id"].as_str().unwrap().to_owned()
    }

    async fn run(&self, key: &str, id: &str, inputs: Value) -> String {
        let a = self
            .post(
                &format!("/v1/automations/{id}/runs"),
                key,
                Some(json!({"inputs": inputs, "context": "api"})),
            )
            .await;
        assert_eq!(a.status, StatusCode::CREATED, "{}", a.json);
        a.json["id"].as_str().unwrap().to_owned()
    }

    async fn run_status(&self, key: &str, id: &str, run: &str) -> Value {
        self.get(&format!("/v1/automations/{id}/runs/{run}"), key)
            .await
            .json
    }

    /// Polls a run until `done` holds, returning the statuses seen in order (deduplicated).
    async fn watch(&self, id: &str, run: &str, done: &[&str]) -> Vec<String> {
        let mut seen: Vec<String> = Vec::new();
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let s = self.run_status(ALICE, id, run).await["status"]
                .as_str()
                .unwrap()
                .to_owned();
            if seen.last() != Some(&s) {
                seen.push(s.clone());
            }
            if done.contains(&s.as_str()) {
                return seen;
            }
            assert!(Instant::now() < deadline, "run stuck: {seen:?}");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    async fn control(&self, method: Method, path: &str, body: Option<Value>) -> Answer {
        let url = format!("{}/_emulator{path}", self.emu.base_url());
        let body = body.map(|b| b.to_string());
        self.send(method, &url, None, body.as_deref()).await
    }
}

fn is_uuid_v4(s: &Value) -> bool {
    s.as_str()
        .and_then(|s| uuid::Uuid::parse_str(s).ok())
        .is_some_and(|u| u.get_version_num() == 4)
}

fn is_ts(v: &Value) -> bool {
    v.as_str().is_some_and(|s| {
        s.len() == 27 && chrono::NaiveDateTime::parse_from_str(s, "%Y-%m-%dT%H:%M:%S%.6fZ").is_ok()
    })
}

fn keys(v: &Value) -> HashSet<String> {
    v.as_object().unwrap().keys().cloned().collect()
}

fn has_all(v: &Value, fields: &[&str]) {
    let k = keys(v);
    for f in fields {
        assert!(k.contains(*f), "missing {f} in {v}");
    }
}

fn assert_envelope(a: &Answer, status: u16) {
    assert_eq!(a.status.as_u16(), status, "{}", a.json);
    assert_eq!(a.json["errors"][0]["code"], format!("HTTP-{status}"));
    assert!(a.json["errors"][0]["title"].is_string());
    assert!(a.json["errors"][0]["detail"].is_string());
    let trace = a.json["traceId"].as_str().unwrap();
    assert!(trace.len() == 32 && trace.chars().all(|c| c.is_ascii_hexdigit()));
}

const DETAIL_FIELDS: &[&str] = &[
    "id",
    "name",
    "state",
    "lastRun",
    "ownerId",
    "runMode",
    "createdAt",
    "lastRunAt",
    "schedules",
    "updatedAt",
    "workspace",
    "snippetIds",
    "description",
    "endpointIds",
    "connectorIds",
    "lastRunStatus",
    "executionToken",
    "spaceId",
    "maxConcurrentRuns",
];

const RUN_LIST_FIELDS: &[&str] = &[
    "id",
    "error",
    "title",
    "status",
    "context",
    "stopTime",
    "createdAt",
    "isTestRun",
    "startTime",
    "updatedAt",
    "isArchived",
    "scheduledStartTime",
    "ownerId",
    "executedById",
    "spaceId",
    "duration",
];

#[tokio::test]
async fn reference_curl_examples_answer_with_documented_codes_and_shapes() {
    let api = start(EmulatorConfig {
        run_duration: Duration::from_millis(200),
        ..config()
    })
    .await;

    // POST /v1/automations
    let created = api
        .send(
            Method::POST,
            &api.url("/v1/automations"),
            Some(ALICE),
            Some(REF_AUTOMATION),
        )
        .await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.json);
    let a = &created.json;
    has_all(a, DETAIL_FIELDS);
    assert!(is_uuid_v4(&a["id"]));
    assert_eq!(a["name"], "string");
    assert_eq!(a["description"], "string");
    assert_eq!(a["state"], "available");
    assert_eq!(a["ownerId"], "alice");
    // The reference's schedule ended in 2022: not active, so the start block decides.
    assert_eq!(a["runMode"], "manual");
    assert!(is_ts(&a["createdAt"]) && is_ts(&a["updatedAt"]));
    assert!(a["lastRun"].is_null() && a["lastRunAt"].is_null() && a["lastRunStatus"].is_null());
    let s = &a["schedules"][0];
    assert!(is_uuid_v4(&s["id"]));
    assert_eq!(s["startAt"], "2022-01-01 00:00:00");
    assert_eq!(s["stopAt"], "2022-12-01 00:00:00");
    assert_eq!(s["interval"], 30);
    assert_eq!(s["timezone"], "Europe/Stockholm");
    assert!(s["lastStartedAt"].is_null() && s["nextRunAt"].is_null());
    assert_eq!(a["workspace"], json!({}));
    assert_eq!(a["snippetIds"], json!([]));
    let token = a["executionToken"].as_str().unwrap();
    assert_eq!(token.len(), 64);
    assert!(token.chars().all(|c| c.is_ascii_alphanumeric()));
    let id = a["id"].as_str().unwrap().to_owned();

    // GET /v1/automations
    let list = api.get("/v1/automations", ALICE).await;
    assert_eq!(list.status, StatusCode::OK);
    let item = &list.json["data"][0];
    has_all(
        item,
        &[
            "id",
            "name",
            "state",
            "ownerId",
            "runMode",
            "createdAt",
            "lastRunAt",
            "updatedAt",
            "description",
            "lastRunStatus",
            "duration",
        ],
    );
    assert!(!keys(item).contains("workspace") && !keys(item).contains("executionToken"));
    assert_eq!(list.json["links"], json!({"next": null, "prev": null}));

    // GET /v1/automations/{id}
    let got = api.get(&format!("/v1/automations/{id}"), ALICE).await;
    assert_eq!(got.status, StatusCode::OK);
    assert_eq!(got.json, created.json);

    // PUT /v1/automations/{id}
    tokio::time::sleep(Duration::from_millis(5)).await;
    let put = api
        .send(
            Method::PUT,
            &api.url(&format!("/v1/automations/{id}")),
            Some(ALICE),
            Some(REF_AUTOMATION),
        )
        .await;
    assert_eq!(put.status, StatusCode::OK, "{}", put.json);
    has_all(&put.json, DETAIL_FIELDS);
    assert!(put.json["updatedAt"].as_str() > created.json["updatedAt"].as_str());
    assert_eq!(put.json["createdAt"], created.json["createdAt"]);
    // An unchanged schedule keeps its id.
    assert_eq!(put.json["schedules"][0]["id"], s["id"]);

    // POST .../actions/copy: the curl sends a JSON content type and no body.
    let copy = api
        .send(
            Method::POST,
            &api.url(&format!("/v1/automations/{id}/actions/copy")),
            Some(ALICE),
            None,
        )
        .await;
    assert_eq!(copy.status, StatusCode::CREATED, "{}", copy.json);
    assert_eq!(keys(&copy.json), HashSet::from(["id".to_owned()]));
    let copy_id = copy.json["id"].as_str().unwrap();
    let copied = api.get(&format!("/v1/automations/{copy_id}"), ALICE).await;
    assert_eq!(copied.json["name"], "Copy of string");
    assert_eq!(copied.json["description"], "string");
    assert_eq!(copied.json["schedules"][0]["interval"], 30);
    assert_ne!(copied.json["schedules"][0]["id"], s["id"]);

    // POST .../actions/disable and enable: 204, empty body, no content type needed.
    for (action, state) in [("disable", "disabled"), ("enable", "available")] {
        let r = api
            .post(
                &format!("/v1/automations/{id}/actions/{action}"),
                ALICE,
                None,
            )
            .await;
        assert_eq!(r.status, StatusCode::NO_CONTENT);
        assert!(r.raw.is_empty());
        let now = api.get(&format!("/v1/automations/{id}"), ALICE).await;
        assert_eq!(now.json["state"], state);
    }

    // POST .../runs with the reference body: the client-chosen run id is used.
    let run = api
        .send(
            Method::POST,
            &api.url(&format!("/v1/automations/{id}/runs")),
            Some(ALICE),
            Some(r#"{"id":"d452d100-9b0b-11ec-b199-8323e1031c3e","inputs":{},"context":"api"}"#),
        )
        .await;
    assert_eq!(run.status, StatusCode::CREATED, "{}", run.json);
    let r = &run.json;
    has_all(r, RUN_LIST_FIELDS);
    has_all(r, &["inputs", "metrics", "expectedInputs"]);
    assert_eq!(r["id"], "d452d100-9b0b-11ec-b199-8323e1031c3e");
    assert_eq!(r["title"], "string");
    assert_eq!(r["status"], "queued");
    assert_eq!(r["context"], "api");
    assert_eq!(r["isTestRun"], false);
    assert_eq!(r["isArchived"], false);
    assert!(r["stopTime"].is_null() && r["error"].is_null() && r["scheduledStartTime"].is_null());
    assert_eq!(r["ownerId"], "alice");
    assert_eq!(r["executedById"], "alice");
    has_all(&r["metrics"], &["blocks", "network", "totalApiCalls"]);
    has_all(&r["metrics"]["network"], &["rxBytes", "txBytes"]);
    let run_id = "d452d100-9b0b-11ec-b199-8323e1031c3e";

    // GET .../runs
    let runs = api.get(&format!("/v1/automations/{id}/runs"), ALICE).await;
    assert_eq!(runs.status, StatusCode::OK);
    assert_eq!(runs.json["data"].as_array().unwrap().len(), 1);
    has_all(&runs.json["data"][0], RUN_LIST_FIELDS);
    assert!(runs.json["links"]["next"].is_null() && runs.json["links"]["prev"].is_null());

    // GET .../runs/{runId}
    let one = api
        .get(&format!("/v1/automations/{id}/runs/{run_id}"), ALICE)
        .await;
    assert_eq!(one.status, StatusCode::OK);
    assert_eq!(one.json["id"], run_id);

    // POST .../actions/stop
    let stop = api
        .post(
            &format!("/v1/automations/{id}/runs/{run_id}/actions/stop"),
            ALICE,
            None,
        )
        .await;
    assert_eq!(stop.status, StatusCode::NO_CONTENT);
    assert!(stop.raw.is_empty());
    api.watch(&id, run_id, &["stopped"]).await;

    // POST .../actions/export
    let export = api
        .post(
            &format!("/v1/automations/{id}/runs/{run_id}/actions/export"),
            ALICE,
            None,
        )
        .await;
    assert_eq!(export.status, StatusCode::OK, "{}", export.json);
    assert_eq!(keys(&export.json), HashSet::from(["url".to_owned()]));
    assert!(
        export.json["url"]
            .as_str()
            .unwrap()
            .starts_with(&format!("{}/_emulator/exports/", api.emu.base_url()))
    );

    // POST .../actions/retry: 204 without the new run's id; the new run is in the list.
    let retry = api
        .post(
            &format!("/v1/automations/{id}/runs/{run_id}/actions/retry"),
            ALICE,
            None,
        )
        .await;
    assert_eq!(retry.status, StatusCode::NO_CONTENT);
    assert!(retry.raw.is_empty());
    let runs = api.get(&format!("/v1/automations/{id}/runs"), ALICE).await;
    assert_eq!(runs.json["data"].as_array().unwrap().len(), 2);

    // GET and PUT /v1/automations/settings
    let settings = api.get("/v1/automations/settings", ALICE).await;
    assert_eq!(settings.status, StatusCode::OK);
    assert_eq!(settings.json, json!({"automationsEnabled": true}));
    let put = api
        .send(
            Method::PUT,
            &api.url("/v1/automations/settings"),
            Some(ADMIN),
            Some(r#"{"automationsEnabled":true}"#),
        )
        .await;
    assert_eq!(put.status, StatusCode::OK);
    assert_eq!(put.json, json!({"automationsEnabled": true}));

    // GET /v1/automations/usage (the filter is required).
    let usage = api
        .get("/v1/automations/usage?filter=name%20eq%20%22runs%22", ADMIN)
        .await;
    assert_eq!(usage.status, StatusCode::OK, "{}", usage.json);
    let entry = &usage.json["data"][0];
    has_all(entry, &["date", "name", "value"]);
    assert_eq!(entry["name"], "runs");
    assert_eq!(entry["value"], 2);

    // POST .../actions/move with the reference's bare-string body.
    let moved = api
        .send(
            Method::POST,
            &api.url(&format!("/v1/automations/{id}/actions/move")),
            Some(ADMIN),
            Some(r#""bob""#),
        )
        .await;
    assert_eq!(moved.status, StatusCode::NO_CONTENT, "{}", moved.json);
    assert!(moved.raw.is_empty());
    let after = api.get(&format!("/v1/automations/{id}"), BOB).await;
    assert_eq!(after.json["ownerId"], "bob");
    assert!(after.json["lastRun"].is_null());
    let runs = api.get(&format!("/v1/automations/{id}/runs"), BOB).await;
    assert_eq!(runs.json["data"], json!([]));
    assert_eq!(
        api.get(&format!("/v1/automations/{id}"), ALICE)
            .await
            .status,
        StatusCode::NOT_FOUND
    );

    // DELETE /v1/automations/{id}
    let del = api
        .call(Method::DELETE, &format!("/v1/automations/{id}"), BOB, None)
        .await;
    assert_eq!(del.status, StatusCode::NO_CONTENT);
    assert!(del.raw.is_empty());
    assert_envelope(&api.get(&format!("/v1/automations/{id}"), BOB).await, 404);
}

#[tokio::test]
async fn missing_or_unknown_keys_get_401_and_are_counted_without_a_user() {
    let api = start(config()).await;
    let none = api
        .send(Method::GET, &api.url("/v1/automations"), None, None)
        .await;
    assert_envelope(&none, 401);
    let wrong = api.get("/v1/automations", "nope").await;
    assert_envelope(&wrong, 401);
    let basic = api
        .client
        .get(api.url("/v1/automations"))
        .header("Authorization", format!("Basic {ALICE}"))
        .send()
        .await
        .unwrap();
    assert_eq!(basic.status(), StatusCode::UNAUTHORIZED);
    let c = api.emu.counters();
    assert_eq!(c.endpoint_status(Endpoint::ListAutomations, 401), 3);
    assert!(c.by_user.is_empty());
    assert_eq!(c.tier(Tier::Tier1), 0);
}

#[tokio::test]
async fn plain_keys_see_only_their_own_automations_and_admins_see_all() {
    let api = start(config()).await;
    let alices = api.create(ALICE, json!({"name": "alice's"})).await;
    let bobs = api.create(BOB, json!({"name": "bob's"})).await;
    let run = api.run(ALICE, &alices, json!({})).await;

    // Every per-automation endpoint answers 404 to another plain user.
    let other = [
        (Method::GET, format!("/v1/automations/{alices}"), None),
        (
            Method::PUT,
            format!("/v1/automations/{alices}"),
            Some(json!({"name": "x"})),
        ),
        (Method::DELETE, format!("/v1/automations/{alices}"), None),
        (
            Method::POST,
            format!("/v1/automations/{alices}/actions/copy"),
            None,
        ),
        (
            Method::POST,
            format!("/v1/automations/{alices}/actions/disable"),
            None,
        ),
        (
            Method::POST,
            format!("/v1/automations/{alices}/actions/enable"),
            None,
        ),
        (Method::GET, format!("/v1/automations/{alices}/runs"), None),
        (
            Method::POST,
            format!("/v1/automations/{alices}/runs"),
            Some(json!({"context": "api"})),
        ),
        (
            Method::GET,
            format!("/v1/automations/{alices}/runs/{run}"),
            None,
        ),
        (
            Method::POST,
            format!("/v1/automations/{alices}/runs/{run}/actions/stop"),
            None,
        ),
        (
            Method::POST,
            format!("/v1/automations/{alices}/runs/{run}/actions/retry"),
            None,
        ),
        (
            Method::POST,
            format!("/v1/automations/{alices}/runs/{run}/actions/export"),
            None,
        ),
    ];
    for (method, path, body) in other {
        let a = api.call(method.clone(), &path, BOB, body).await;
        assert_envelope(&a, 404);
    }
    let bob_list = api.get("/v1/automations", BOB).await;
    let ids: Vec<_> = bob_list.json["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["id"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(ids, vec![bobs.clone()]);

    // The admin sees everything (and only its own with listAll=false).
    let admin_list = api.get("/v1/automations", ADMIN).await;
    assert_eq!(admin_list.json["data"].as_array().unwrap().len(), 2);
    let own = api.get("/v1/automations?listAll=false", ADMIN).await;
    assert_eq!(own.json["data"], json!([]));
    assert_eq!(
        api.get(&format!("/v1/automations/{alices}/runs/{run}"), ADMIN)
            .await
            .status,
        StatusCode::OK
    );

    // Admin-only endpoints are 403 to plain keys; reading settings is allowed.
    let forbidden = [
        (
            Method::PUT,
            "/v1/automations/settings".to_owned(),
            Some(json!({"automationsEnabled": false})),
        ),
        (
            Method::GET,
            "/v1/automations/usage?filter=name%20eq%20%22runs%22".to_owned(),
            None,
        ),
        (
            Method::POST,
            format!("/v1/automations/{alices}/actions/move"),
            Some(json!({"userId": "bob"})),
        ),
    ];
    for (method, path, body) in forbidden {
        assert_envelope(&api.call(method, &path, ALICE, body).await, 403);
    }
    assert_eq!(
        api.get("/v1/automations/settings", BOB).await.status,
        StatusCode::OK
    );
    // The refused settings change did not happen.
    assert_eq!(
        api.get("/v1/automations/settings", BOB).await.json["automationsEnabled"],
        true
    );
    // {"userId"} works for the admin as well as the bare string.
    let moved = api
        .post(
            &format!("/v1/automations/{alices}/actions/move"),
            ADMIN,
            Some(json!({"userId": "bob"})),
        )
        .await;
    assert_eq!(moved.status, StatusCode::NO_CONTENT);
    assert_eq!(
        api.get(&format!("/v1/automations/{alices}"), BOB)
            .await
            .status,
        StatusCode::OK
    );
}

#[tokio::test]
async fn bad_list_parameters_and_bodies_are_400_naming_the_field() {
    let api = start(config()).await;
    let id = api.create(ALICE, json!({"name": "x"})).await;
    let cases = [
        ("/v1/automations?limit=0", "limit must be between 1 and 200"),
        (
            "/v1/automations?limit=201",
            "limit must be between 1 and 200",
        ),
        (
            "/v1/automations?limit=ten",
            "limit must be between 1 and 200",
        ),
        ("/v1/automations?sort=-description", "sort"),
        ("/v1/automations?sort=%2Bbogus", "bogus"),
        (
            "/v1/automations?filter=description%20eq%20%22x%22",
            "description",
        ),
        ("/v1/automations?filter=name%20eq", "filter"),
        ("/v1/automations?listAll=maybe", "listAll"),
        ("/v1/automations?cursor=garbage", "cursor"),
    ];
    for (path, needle) in cases {
        let a = api.get(path, ALICE).await;
        assert_envelope(&a, 400);
        assert!(a.detail().contains(needle), "{path}: {}", a.detail());
    }
    for (query, needle) in [
        ("limit=500", "limit"),
        ("sort=name", "sort"),
        ("filter=name%20eq%20%22x%22", "name"),
    ] {
        let a = api
            .get(&format!("/v1/automations/{id}/runs?{query}"), ALICE)
            .await;
        assert_envelope(&a, 400);
        assert!(a.detail().contains(needle), "{query}: {}", a.detail());
    }
    // Allowed values work, including the live service's extras.
    for ok in [
        "/v1/automations?limit=1&sort=%2BlastRunAt",
        "/v1/automations?sort=-maxConcurrentRuns&filter=spaceId%20eq%20null",
        "/v1/automations?filter=name%20eq%20%22x%22%20and%20(runMode%20eq%20%22manual%22%20or%20ownerId%20eq%20%22alice%22)",
    ] {
        assert_eq!(api.get(ok, ALICE).await.status, StatusCode::OK, "{ok}");
    }
    let runs = api
        .get(&format!("/v1/automations/{id}/runs?sort=-startTime&filter=status%20eq%20%22finished%22%20and%20title%20pr&limit=200"), ALICE)
        .await;
    assert_eq!(runs.status, StatusCode::OK);

    let bodies = [
        (r#"{"name":"#, "not valid JSON"),
        (r#"[1]"#, "JSON object"),
        (r#"{"name":""}"#, "name"),
        (
            r#"{"name":"n","schedules":[{"startAt":"2022-01-01 00:00:00","interval":0,"timezone":"UTC"}]}"#,
            "schedules[0].interval must be greater than 0",
        ),
        (
            r#"{"name":"n","schedules":[{"startAt":"2022-01-01","interval":60,"timezone":"UTC"}]}"#,
            "schedules[0].startAt",
        ),
        (
            r#"{"name":"n","schedules":[{"startAt":"2022-01-01 00:00:00","interval":60,"timezone":"Nowhere/Town"}]}"#,
            "schedules[0].timezone",
        ),
        (
            r#"{"name":"n","schedules":[{"startAt":"2022-01-01 00:00:00","stopAt":"2021-01-01 00:00:00","interval":60,"timezone":"UTC"}]}"#,
            "schedules[0].stopAt",
        ),
        (r#"{"name":"n","state":"paused"}"#, "state"),
        (
            r#"{"name":"n","workspace":{"blocks":[{"type":"StartBlock"},{"type":"StartBlock"}]}}"#,
            "start block",
        ),
    ];
    for (body, needle) in bodies {
        let a = api
            .send(
                Method::POST,
                &api.url("/v1/automations"),
                Some(ALICE),
                Some(body),
            )
            .await;
        assert_envelope(&a, 400);
        assert!(a.detail().contains(needle), "{body}: {}", a.detail());
    }
    // Runs need context "api".
    let r = api
        .post(
            &format!("/v1/automations/{id}/runs"),
            ALICE,
            Some(json!({"inputs": {}})),
        )
        .await;
    assert_envelope(&r, 400);
    assert!(r.detail().contains("context"));
    // Non-JSON content types are refused; unknown routes are 404 envelopes.
    let text = api
        .client
        .post(api.url("/v1/automations"))
        .header("Authorization", format!("Bearer {ALICE}"))
        .header("Content-Type", "text/plain")
        .body(r#"{"name":"x"}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(text.status(), StatusCode::UNSUPPORTED_MEDIA_TYPE);
    assert_envelope(&api.get("/v1/nothing", ALICE).await, 404);
    assert_envelope(
        &api.post(
            &format!("/v1/automations/{id}/actions/explode"),
            ALICE,
            None,
        )
        .await,
        404,
    );
}

#[tokio::test]
async fn pagination_lists_450_automations_completely_in_order_by_following_links() {
    let api = start(EmulatorConfig {
        tier2_per_minute: 10_000,
        ..config()
    })
    .await;
    for i in 0..450 {
        // Three automations per name, so ties are broken by id.
        api.create(ALICE, json!({"name": format!("auto-{:03}", i % 150)}))
            .await;
    }
    api.create(BOB, json!({"name": "not alice's"})).await;

    let mut expected: Vec<(String, String)> = api
        .emu
        .automations()
        .iter()
        .filter(|a| a["ownerId"] == "alice")
        .map(|a| {
            (
                a["name"].as_str().unwrap().to_owned(),
                a["id"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    expected.sort();
    expected.reverse();

    let mut seen = Vec::new();
    let mut pages = Vec::new();
    let mut url = api.url("/v1/automations?sort=-name&limit=200");
    loop {
        let page = api.send(Method::GET, &url, Some(ALICE), None).await;
        assert_eq!(page.status, StatusCode::OK, "{}", page.json);
        let data = page.json["data"].as_array().unwrap().clone();
        pages.push(page.json.clone());
        seen.extend(data.iter().map(|a| {
            (
                a["name"].as_str().unwrap().to_owned(),
                a["id"].as_str().unwrap().to_owned(),
            )
        }));
        if pages.len() == 1 {
            assert!(page.json["links"]["prev"].is_null());
            // Items created mid-listing, both before and after the cursor, must not make
            // the original ones appear twice or go missing.
            api.create(ALICE, json!({"name": "zzz-new"})).await;
            api.create(ALICE, json!({"name": "aaa-new"})).await;
        }
        match page.json["links"]["next"]["href"].as_str() {
            Some(href) => {
                assert!(
                    href.starts_with(&format!("{}/api/v1/automations?", api.emu.base_url())),
                    "{href}"
                );
                assert!(
                    href.contains("limit=200") && href.contains("sort=-name"),
                    "{href}"
                );
                url = href.to_owned();
            }
            None => break,
        }
    }
    assert_eq!(pages.len(), 3);
    assert_eq!(pages[0]["data"].as_array().unwrap().len(), 200);
    assert_eq!(pages[1]["data"].as_array().unwrap().len(), 200);
    // The "aaa-new" item sorts last and was added before we got there.
    let tail: Vec<_> = seen.iter().filter(|(n, _)| n == "aaa-new").collect();
    assert_eq!(tail.len(), 1);
    let original: Vec<_> = seen
        .iter()
        .filter(|(n, _)| n.starts_with("auto-"))
        .cloned()
        .collect();
    assert_eq!(original, expected);

    // prev links walk back to the same pages.
    let mut href = pages[2]["links"]["prev"]["href"]
        .as_str()
        .unwrap()
        .to_owned();
    let back = api.send(Method::GET, &href, Some(ALICE), None).await;
    assert_eq!(back.json["data"], pages[1]["data"]);
    href = back.json["links"]["prev"]["href"]
        .as_str()
        .unwrap()
        .to_owned();
    let first = api.send(Method::GET, &href, Some(ALICE), None).await;
    // The first page now also has "zzz-new" at its top, pushing one item out: keyset
    // pagination keeps the boundary, so the page ends where page 2 began.
    let firsts = first.json["data"].as_array().unwrap();
    assert_eq!(firsts.len(), 200);
    assert_eq!(firsts.last(), pages[0]["data"].as_array().unwrap().last());
    assert!(first.json["links"]["prev"].is_object());

    // Filters are echoed (percent-encoded) into links and applied on every page.
    let filtered = api
        .get(
            "/v1/automations?limit=2&filter=name%20sw%20%22auto-00%22",
            ALICE,
        )
        .await;
    let next = filtered.json["links"]["next"]["href"].as_str().unwrap();
    assert!(next.contains("filter=name%20sw%20%22auto-00%22"), "{next}");
    let mut total = filtered.json["data"].as_array().unwrap().len();
    let mut next = Some(next.to_owned());
    while let Some(h) = next {
        let p = api.send(Method::GET, &h, Some(ALICE), None).await;
        total += p.json["data"].as_array().unwrap().len();
        next = p.json["links"]["next"]["href"].as_str().map(str::to_owned);
    }
    assert_eq!(total, 30);
}

#[tokio::test]
async fn exceeding_tier2_answers_429_with_retry_after_while_tier1_still_works() {
    let api = start(EmulatorConfig {
        tier2_per_minute: 5,
        ..config()
    })
    .await;
    for i in 0..5 {
        let a = api
            .post(
                "/v1/automations",
                ALICE,
                Some(json!({"name": format!("n{i}")})),
            )
            .await;
        assert_eq!(a.status, StatusCode::CREATED);
        assert_eq!(a.header("ratelimit-limit").as_deref(), Some("5"));
        assert_eq!(a.header("ratelimit-remaining"), Some((4 - i).to_string()));
        let reset: i64 = a.header("ratelimit-reset").unwrap().parse().unwrap();
        assert!(reset >= chrono::Utc::now().timestamp());
    }
    let limited = api
        .post(
            "/v1/automations",
            ALICE,
            Some(json!({"name": "one too many"})),
        )
        .await;
    assert_envelope(&limited, 429);
    assert_eq!(
        limited.json["errors"][0]["title"],
        "API rate limit reached."
    );
    let retry: u64 = limited.header("retry-after").unwrap().parse().unwrap();
    assert!((1..=60).contains(&retry), "{retry}");
    assert_eq!(
        limited.detail(),
        format!("You need to wait {retry} seconds until limit is lifted.")
    );
    // The whole tier stays blocked for alice, also for other tier-2 endpoints...
    let id = api.emu.automations()[0]["id"].as_str().unwrap().to_owned();
    assert_envelope(
        &api.post(
            &format!("/v1/automations/{id}/actions/disable"),
            ALICE,
            None,
        )
        .await,
        429,
    );
    // ...but tier 1 works, and so does tier 2 for another user.
    let list = api.get("/v1/automations", ALICE).await;
    assert_eq!(list.status, StatusCode::OK);
    assert_eq!(list.header("ratelimit-limit").as_deref(), Some("1000"));
    assert_eq!(
        api.post("/v1/automations", BOB, Some(json!({"name": "b"})))
            .await
            .status,
        StatusCode::CREATED
    );
    assert_eq!(api.emu.automations().len(), 6);
    let c = api.emu.counters();
    assert_eq!(c.rate_limited, 2);
    assert_eq!(c.endpoint_status(Endpoint::CreateAutomation, 429), 1);
}

#[tokio::test]
async fn runs_go_through_their_lifecycle_and_export_serves_an_expiring_log() {
    let api = start(EmulatorConfig {
        run_duration: Duration::from_millis(500),
        export_ttl: Duration::from_millis(500),
        ..config()
    })
    .await;
    let id = api
        .create(
            ALICE,
            json!({"name": "lifecycle", "workspace": {"blocks": [
                {"type": "StartBlock", "id": "start"},
                {"type": "endpointBlock", "id": "b1", "connectorId": "c1", "endpointId": "e1"}
            ]}}),
        )
        .await;
    let created = api
        .post(
            &format!("/v1/automations/{id}/runs"),
            ALICE,
            Some(json!({"inputs": {"x": 1}, "context": "api"})),
        )
        .await;
    assert_eq!(created.status, StatusCode::CREATED);
    assert_eq!(created.json["status"], "queued");
    assert!(created.json["startTime"].is_null());
    let run = created.json["id"].as_str().unwrap().to_owned();

    // Export refuses a run that has not ended.
    let early = api
        .post(
            &format!("/v1/automations/{id}/runs/{run}/actions/export"),
            ALICE,
            None,
        )
        .await;
    assert_envelope(&early, 400);
    assert!(early.detail().contains("completed"), "{}", early.detail());

    let seen = api.watch(&id, &run, &["finished"]).await;
    assert!(seen.contains(&"running".to_owned()), "{seen:?}");
    let order = ["queued", "starting", "running", "finished"];
    let positions: Vec<_> = seen
        .iter()
        .map(|s| order.iter().position(|o| o == s).unwrap())
        .collect();
    assert!(positions.windows(2).all(|w| w[0] < w[1]), "{seen:?}");

    let done = api.run_status(ALICE, &id, &run).await;
    assert!(is_ts(&done["startTime"]) && is_ts(&done["stopTime"]));
    assert!(done["error"].is_null());
    assert_eq!(done["metrics"]["blocks"][0]["connectorId"], "c1");
    assert_eq!(done["metrics"]["totalApiCalls"], 1);
    assert!(done["metrics"]["network"]["rxBytes"].as_u64().unwrap() > 0);
    let a = api.get(&format!("/v1/automations/{id}"), ALICE).await.json;
    assert_eq!(a["lastRunStatus"], "finished");
    assert_eq!(a["lastRun"]["id"], run.as_str());
    assert_eq!(a["lastRunAt"], done["createdAt"]);

    // Stopping an ended run is refused.
    let again = api
        .post(
            &format!("/v1/automations/{id}/runs/{run}/actions/stop"),
            ALICE,
            None,
        )
        .await;
    assert_envelope(&again, 400);

    // Export: an absolute URL that needs no key and expires.
    let export = api
        .post(
            &format!("/v1/automations/{id}/runs/{run}/actions/export"),
            ALICE,
            None,
        )
        .await;
    assert_eq!(export.status, StatusCode::OK);
    let url = export.json["url"].as_str().unwrap().to_owned();
    let log = api.send(Method::GET, &url, None, None).await;
    assert_eq!(log.status, StatusCode::OK);
    let entries = log.json.as_array().unwrap();
    assert!(entries.len() >= 3);
    for e in entries {
        assert!(is_ts(&e["timestamp"]) && e["level"].is_string() && e["message"].is_string());
    }
    assert!(entries.iter().any(|e| e["blockId"] == "b1"));
    assert!(
        entries.last().unwrap()["message"]
            .as_str()
            .unwrap()
            .contains("finished")
    );
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert_eq!(
        api.send(Method::GET, &url, None, None).await.status,
        StatusCode::FORBIDDEN
    );

    // A failure marker in the inputs makes the run fail with an error object.
    let failing = api
        .run(ALICE, &id, json!({"_emulatorOutcome": "failed"}))
        .await;
    api.watch(&id, &failing, &["failed"]).await;
    let f = api.run_status(ALICE, &id, &failing).await;
    assert!(f["error"].is_object());
    assert_eq!(
        api.get(&format!("/v1/automations/{id}"), ALICE).await.json["lastRunStatus"],
        "failed"
    );

    // Stop: must stop, then stopped.
    let long = api.run(ALICE, &id, json!({})).await;
    let stop = api
        .post(
            &format!("/v1/automations/{id}/runs/{long}/actions/stop"),
            ALICE,
            None,
        )
        .await;
    assert_eq!(stop.status, StatusCode::NO_CONTENT);
    let seen = api.watch(&id, &long, &["stopped"]).await;
    assert!(
        seen == vec!["must stop", "stopped"] || seen == vec!["stopped"],
        "{seen:?}"
    );
    let stopped = api.run_status(ALICE, &id, &long).await;
    assert!(is_ts(&stopped["stopTime"]));

    // Retry: a new run with the same inputs, visible in the list (default sort id =
    // creation order).
    let retry = api
        .post(
            &format!("/v1/automations/{id}/runs/{run}/actions/retry"),
            ALICE,
            None,
        )
        .await;
    assert_eq!(retry.status, StatusCode::NO_CONTENT);
    let list = api.get(&format!("/v1/automations/{id}/runs"), ALICE).await;
    let data = list.json["data"].as_array().unwrap();
    assert_eq!(data.len(), 4);
    let ids: Vec<_> = data.iter().map(|r| r["id"].as_str().unwrap()).collect();
    assert_eq!(ids[..3], [run.as_str(), failing.as_str(), long.as_str()]);
    let newest = api.run_status(ALICE, &id, ids[3]).await;
    assert_eq!(newest["inputs"], json!({"x": 1}));
    assert_eq!(newest["context"], "api");
    // Paging runs with limit 1 follows creation order too.
    let first = api
        .get(
            &format!("/v1/automations/{id}/runs?limit=1&sort=-id"),
            ALICE,
        )
        .await;
    assert_eq!(first.json["data"][0]["id"], ids[3]);
    assert!(first.json["links"]["next"]["href"].is_string());
}

#[tokio::test]
async fn disabled_automations_and_tenants_refuse_new_runs() {
    let api = start(EmulatorConfig {
        run_duration: Duration::from_millis(50),
        ..config()
    })
    .await;
    let id = api.create(ALICE, json!({"name": "n"})).await;
    let run = api.run(ALICE, &id, json!({})).await;

    api.post(
        &format!("/v1/automations/{id}/actions/disable"),
        ALICE,
        None,
    )
    .await;
    let refused = api
        .post(
            &format!("/v1/automations/{id}/runs"),
            ALICE,
            Some(json!({"context": "api"})),
        )
        .await;
    assert_envelope(&refused, 400);
    api.post(&format!("/v1/automations/{id}/actions/enable"), ALICE, None)
        .await;

    let bad = api
        .call(
            Method::PUT,
            "/v1/automations/settings",
            ADMIN,
            Some(json!({"automationsEnabled": "no"})),
        )
        .await;
    assert_envelope(&bad, 400);
    let off = api
        .call(
            Method::PUT,
            "/v1/automations/settings",
            ADMIN,
            Some(json!({"automationsEnabled": false})),
        )
        .await;
    assert_eq!(off.json, json!({"automationsEnabled": false}));
    for path in [
        format!("/v1/automations/{id}/runs"),
        format!("/v1/automations/{id}/runs/{run}/actions/retry"),
    ] {
        let a = api
            .post(&path, ALICE, Some(json!({"context": "api"})))
            .await;
        assert_envelope(&a, 403);
        assert!(a.detail().contains("disabled"), "{}", a.detail());
    }
    api.call(
        Method::PUT,
        "/v1/automations/settings",
        ADMIN,
        Some(json!({"automationsEnabled": true})),
    )
    .await;
    api.run(ALICE, &id, json!({})).await;
}

#[tokio::test]
async fn usage_aggregates_what_happened_per_day_and_per_automation() {
    let api = start(EmulatorConfig {
        run_duration: Duration::from_millis(50),
        ..config()
    })
    .await;
    let one = api.create(ALICE, json!({"name": "one"})).await;
    let two = api
        .create(
            BOB,
            json!({"name": "two", "workspace": {"blocks": [{"type": "StartBlock", "runMode": "triggered"}]}}),
        )
        .await;
    let r1 = api.run(ALICE, &one, json!({})).await;
    let r2 = api.run(ALICE, &one, json!({})).await;
    api.run(BOB, &two, json!({})).await;
    // A triggered automation started with its execution token counts as triggeredRun.
    let token = api
        .emu
        .automations()
        .iter()
        .find(|a| a["id"] == two.as_str())
        .unwrap()["executionToken"]
        .as_str()
        .unwrap()
        .to_owned();
    let exec = api
        .client
        .post(api.url(&format!("/v1/automations/{two}/actions/execute")))
        .header("X-Execution-Token", token)
        .send()
        .await
        .unwrap();
    assert_eq!(exec.status(), StatusCode::CREATED);
    api.watch(&one, &r1, &["finished"]).await;
    api.watch(&one, &r2, &["finished"]).await;
    tokio::time::sleep(Duration::from_millis(100)).await;

    let today = chrono::Utc::now().format("%Y-%m-%d").to_string();
    let q = |filter: &str, breakdown: bool| {
        let f = filter.replace(' ', "%20").replace('"', "%22");
        if breakdown {
            format!("/v1/automations/usage?filter={f}&breakdownBy=automation")
        } else {
            format!("/v1/automations/usage?filter={f}")
        }
    };
    let tenant = api
        .get(&q(&format!("date ge \"{today}\""), false), ADMIN)
        .await;
    assert_eq!(tenant.status, StatusCode::OK, "{}", tenant.json);
    let value = |v: &Value, name: &str| {
        v["data"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|e| e["name"] == name)
            .map(|e| e["value"].as_i64().unwrap())
            .sum::<i64>()
    };
    assert_eq!(value(&tenant.json, "runs"), 4);
    assert_eq!(value(&tenant.json, "triggeredRun"), 1);
    assert_eq!(value(&tenant.json, "scheduledRun"), 0);
    assert_eq!(value(&tenant.json, "webhookRuns"), 0);
    assert_eq!(value(&tenant.json, "duration"), 4);
    assert!(value(&tenant.json, "bandwidthIn") > 0 && value(&tenant.json, "bandwidthOut") > 0);
    assert!(
        tenant.json["data"]
            .as_array()
            .unwrap()
            .iter()
            .all(|e| e["date"] == today.as_str() && e.get("automation").is_none())
    );
    assert_eq!(tenant.json["data"].as_array().unwrap().len(), 7);

    let split = api
        .get(
            &q(&format!("date eq \"{today}\" and name eq \"runs\""), true),
            ADMIN,
        )
        .await;
    let entries = split.json["data"].as_array().unwrap();
    assert_eq!(entries.len(), 2);
    let of = |guid: &str| {
        entries
            .iter()
            .find(|e| e["automation"]["guid"] == guid)
            .unwrap()
    };
    assert_eq!(of(&one)["value"], 2);
    assert_eq!(of(&one)["automation"]["name"], "one");
    assert_eq!(of(&one)["automation"]["ownerId"], "alice");
    assert_eq!(of(&two)["value"], 2);

    // Deleting an automation does not rewrite history.
    api.call(
        Method::DELETE,
        &format!("/v1/automations/{one}"),
        ALICE,
        None,
    )
    .await;
    let after = api.get(&q("name eq \"runs\"", false), ADMIN).await;
    assert_eq!(value(&after.json, "runs"), 4);
    let none = api.get(&q("date lt \"2000-01-01\"", false), ADMIN).await;
    assert_eq!(none.json, json!({"data": []}));

    for (path, needle) in [
        ("/v1/automations/usage", "filter"),
        ("/v1/automations/usage?filter=value%20gt%201", "value"),
        (
            "/v1/automations/usage?filter=name%20eq%20%22runs%22&breakdownBy=user",
            "breakdownBy",
        ),
    ] {
        let a = api.get(path, ADMIN).await;
        assert_envelope(&a, 400);
        assert!(a.detail().contains(needle), "{path}: {}", a.detail());
    }
}

#[tokio::test]
async fn injected_503_hits_only_its_endpoint_and_is_counted() {
    let api = start(config()).await;
    let rules = json!({"rules": [{"endpoint": "create_automation", "errorRate": 1.0}]});
    let put = api.control(Method::PUT, "/faults", Some(rules)).await;
    assert_eq!(put.status, StatusCode::OK);
    let got = api.control(Method::GET, "/faults", None).await;
    assert_eq!(got.json["rules"][0]["status"], 503);
    assert_eq!(got.json["rules"][0]["endpoint"], "create_automation");

    for _ in 0..3 {
        let a = api
            .post("/v1/automations", ALICE, Some(json!({"name": "x"})))
            .await;
        assert_envelope(&a, 503);
    }
    assert!(api.emu.automations().is_empty());
    assert_eq!(
        api.get("/v1/automations", ALICE).await.status,
        StatusCode::OK
    );

    let bad = api
        .control(
            Method::PUT,
            "/faults",
            Some(json!({"rules": [{"endpoint": "nope"}]})),
        )
        .await;
    assert_eq!(bad.status, StatusCode::BAD_REQUEST);

    let counters = api.control(Method::GET, "/counters", None).await.json;
    assert_eq!(counters["faultsInjected"], 3);
    assert_eq!(
        counters["byEndpoint"]["create_automation"]["byStatus"]["503"],
        3
    );

    assert_eq!(
        api.control(Method::DELETE, "/faults", None).await.status,
        StatusCode::NO_CONTENT
    );
    api.create(ALICE, json!({"name": "x"})).await;

    // Synthetic 429s carry Retry-After: 1; latency is added.
    api.emu.set_faults(FaultConfig::with_rules(vec![
        FaultRule::on(Endpoint::GetSettings)
            .with_rate_limit(1.0)
            .with_latency_ms(50, 60),
    ]));
    let t = Instant::now();
    let limited = api.get("/v1/automations/settings", ALICE).await;
    assert!(t.elapsed() >= Duration::from_millis(50));
    assert_envelope(&limited, 429);
    assert_eq!(limited.header("retry-after").as_deref(), Some("1"));
}

#[tokio::test]
async fn dropped_connections_are_transport_errors_and_may_follow_processing() {
    let api = start(config()).await;
    // Before processing: nothing is created.
    api.emu.set_faults(FaultConfig::with_rules(vec![
        FaultRule::on(Endpoint::CreateAutomation).with_drop(1.0, false),
    ]));
    let body = json!({"name": "ambiguous"}).to_string();
    let send = || {
        api.client
            .post(api.url("/v1/automations"))
            .header("Authorization", format!("Bearer {ALICE}"))
            .header("Content-Type", "application/json")
            .body(body.clone())
            .send()
    };
    // hyper polls the body before flushing the status line, so the failing body aborts the
    // connection with nothing written: reqwest's send() itself fails (IncompleteMessage).
    let outcome = send().await;
    assert!(outcome.is_err(), "{outcome:?}");
    assert!(!outcome.unwrap_err().is_status());
    assert!(api.emu.automations().is_empty());

    // After processing: the automation exists although the client saw an error.
    api.emu.set_faults(FaultConfig::with_rules(vec![
        FaultRule::on(Endpoint::CreateAutomation).with_drop(1.0, true),
    ]));
    let outcome = send().await;
    assert!(outcome.is_err(), "{outcome:?}");
    let all = api.emu.automations();
    assert_eq!(all.len(), 1);
    assert_eq!(all[0]["name"], "ambiguous");
    assert_eq!(all[0]["ownerId"], "alice");

    let c = api.emu.counters();
    assert_eq!(c.faults_injected, 2);
    assert_eq!(c.by_endpoint["create_automation"].by_status["dropped"], 2);
    // Other endpoints are untouched.
    assert_eq!(
        api.get("/v1/automations", ALICE).await.status,
        StatusCode::OK
    );
}

#[tokio::test]
async fn counters_count_by_endpoint_tier_and_user_and_can_be_reset() {
    let api = start(config()).await;
    let id = api.create(ALICE, json!({"name": "c"})).await;
    api.get(&format!("/v1/automations/{id}"), ALICE).await;
    api.get("/v1/automations", BOB).await;
    api.get("/v1/automations", "wrong").await;
    api.get(&format!("/v1/automations/{id}"), BOB).await;
    // The control surface and snapshots are not counted.
    api.control(Method::GET, "/health", None).await;
    api.control(Method::GET, "/automations", None).await;
    api.emu.automations();

    let via_http = api.control(Method::GET, "/counters", None).await;
    assert_eq!(via_http.status, StatusCode::OK);
    let c = &via_http.json;
    assert_eq!(c["total"], 5);
    assert_eq!(c["byEndpoint"]["create_automation"]["total"], 1);
    assert_eq!(c["byEndpoint"]["create_automation"]["byStatus"]["201"], 1);
    assert_eq!(c["byEndpoint"]["get_automation"]["byStatus"]["200"], 1);
    assert_eq!(c["byEndpoint"]["get_automation"]["byStatus"]["404"], 1);
    assert_eq!(c["byEndpoint"]["list_automations"]["byStatus"]["401"], 1);
    assert_eq!(c["byTier"], json!({"tier1": 3, "tier2": 1}));
    assert_eq!(c["byUser"], json!({"alice": 2, "bob": 2}));
    assert_eq!(c["rateLimited"], 0);
    assert_eq!(c["faultsInjected"], 0);
    let typed = api.emu.counters();
    assert_eq!(serde_json::to_value(&typed).unwrap(), *c);
    assert_eq!(typed.writes(), 1);

    assert_eq!(
        api.control(Method::POST, "/counters/reset", None)
            .await
            .status,
        StatusCode::NO_CONTENT
    );
    assert_eq!(api.emu.counters().total, 0);
    api.get("/v1/automations", ALICE).await;
    api.emu.reset_counters();
    assert_eq!(api.emu.counters().total, 0);

    let snapshot = api.control(Method::GET, "/automations", None).await;
    assert_eq!(snapshot.json.as_array().unwrap().len(), 1);
    assert_eq!(
        snapshot.json[0]["executionToken"].as_str().unwrap().len(),
        64
    );
    assert_eq!(
        api.control(Method::GET, "/health", None).await.status,
        StatusCode::OK
    );
}

#[tokio::test]
async fn run_mode_and_id_lists_are_derived_on_save() {
    let api = start(config()).await;
    let workspace = json!({"blocks": [
        {"type": "StartBlock", "runMode": "webhook"},
        {"type": "endpointBlock", "connectorId": "c1", "endpointId": "e1"},
        {"type": "endpointBlock", "connectorId": "c2", "endpointId": "e2"},
        {"type": "endpointBlock", "connectorId": "c1", "endpointId": "e3"},
        {"type": "SnippetBlock", "snippetId": "s1"}
    ], "variables": []});
    let created = api
        .post(
            "/v1/automations",
            ALICE,
            Some(json!({"name": "w", "workspace": workspace})),
        )
        .await;
    let a = &created.json;
    assert_eq!(a["runMode"], "webhook");
    assert_eq!(a["connectorIds"], json!(["c1", "c2"]));
    assert_eq!(a["endpointIds"], json!(["e1", "e2", "e3"]));
    assert_eq!(a["snippetIds"], json!(["s1"]));
    assert_eq!(a["workspace"], workspace);
    let id = a["id"].as_str().unwrap();

    // An active schedule (in its own timezone) wins over the start block.
    let yesterday = (chrono::Utc::now() - chrono::Duration::days(1)).format("%Y-%m-%d 00:00:00");
    let schedule = json!([{"startAt": yesterday.to_string(), "stopAt": "2099-01-01 00:00:00", "interval": 3600, "timezone": "America/New_York"}]);
    let put = api
        .call(
            Method::PUT,
            &format!("/v1/automations/{id}"),
            ALICE,
            Some(json!({"schedules": schedule})),
        )
        .await;
    assert_eq!(put.status, StatusCode::OK, "{}", put.json);
    assert_eq!(put.json["runMode"], "scheduled");
    assert!(is_ts(&put.json["schedules"][0]["nextRunAt"]));
    // PUT keeps the fields it was not given.
    assert_eq!(put.json["name"], "w");
    assert_eq!(put.json["connectorIds"], json!(["c1", "c2"]));

    // A schedule in the future is not active; a new start block changes the mode and ids.
    let later = json!([{"startAt": "2098-01-01 00:00:00", "interval": 60, "timezone": "UTC"}]);
    let put = api
        .call(
            Method::PUT,
            &format!("/v1/automations/{id}"),
            ALICE,
            Some(json!({"schedules": later, "workspace": {"blocks": [{"type": "StartBlock", "runMode": "triggered"}]}})),
        )
        .await;
    assert_eq!(put.json["runMode"], "triggered");
    assert_eq!(put.json["connectorIds"], json!([]));
    assert_eq!(
        put.json["schedules"][0]["nextRunAt"],
        "2098-01-01T00:00:00.000000Z"
    );
    let filtered = api
        .get(
            "/v1/automations?filter=runMode%20eq%20%22triggered%22",
            ALICE,
        )
        .await;
    assert_eq!(filtered.json["data"].as_array().unwrap().len(), 1);
    let put = api
        .call(
            Method::PUT,
            &format!("/v1/automations/{id}"),
            ALICE,
            Some(json!({"workspace": {}})),
        )
        .await;
    assert_eq!(put.json["runMode"], "manual");
}

#[tokio::test]
async fn schedules_are_kept_as_sent_unless_normalisation_is_on() {
    let two = json!({"name": "s", "schedules": [
        {"startAt": "2030-01-01 00:00:00", "interval": 30, "timezone": "UTC"},
        {"startAt": "2031-01-01 00:00:00", "interval": 150, "timezone": "UTC"}
    ]});
    let plain = start(config()).await;
    let a = plain
        .post("/v1/automations", ALICE, Some(two.clone()))
        .await;
    assert_eq!(a.json["schedules"].as_array().unwrap().len(), 2);
    assert_eq!(a.json["schedules"][0]["interval"], 30);

    let normalising = start(EmulatorConfig {
        normalize_schedules: true,
        ..config()
    })
    .await;
    let a = normalising.post("/v1/automations", ALICE, Some(two)).await;
    let schedules = a.json["schedules"].as_array().unwrap();
    assert_eq!(schedules.len(), 1);
    assert_eq!(schedules[0]["interval"], 60);
}

#[tokio::test]
async fn active_schedules_start_runs_that_count_as_scheduled_usage() {
    let api = start(EmulatorConfig {
        run_duration: Duration::from_millis(50),
        ..config()
    })
    .await;
    let id = api
        .create(
            ALICE,
            json!({"name": "every second", "schedules": [
                {"startAt": "2020-01-01 00:00:00", "interval": 1, "timezone": "Europe/Stockholm"}
            ]}),
        )
        .await;
    tokio::time::sleep(Duration::from_millis(2200)).await;
    let runs = api.get(&format!("/v1/automations/{id}/runs"), ALICE).await;
    let data = runs.json["data"].as_array().unwrap();
    // One start per second since creation: at least two in 2.2 s (more if this machine is slow).
    assert!(data.len() >= 2, "{}", runs.json);
    assert!(
        data.iter()
            .all(|r| r["context"] == "scheduler" && is_ts(&r["scheduledStartTime"]))
    );
    let a = api.get(&format!("/v1/automations/{id}"), ALICE).await.json;
    assert!(is_ts(&a["schedules"][0]["lastStartedAt"]));
    assert_eq!(a["runMode"], "scheduled");
    let usage = api
        .get(
            "/v1/automations/usage?filter=name%20eq%20%22scheduledRun%22",
            ADMIN,
        )
        .await;
    // Another start may have come due between the two requests.
    assert!(usage.json["data"][0]["value"].as_u64().unwrap() as usize >= data.len());
}

#[tokio::test]
async fn shutdown_is_prompt_even_with_idle_keep_alive_connections() {
    let api = start(config()).await;
    assert_eq!(
        api.get("/v1/automations", ALICE).await.status,
        StatusCode::OK
    );
    let base = api.emu.base_url();
    let t = Instant::now();
    api.emu.shutdown().await;
    assert!(t.elapsed() < Duration::from_secs(1), "{:?}", t.elapsed());
    // The port no longer answers.
    let after = api
        .client
        .get(format!("{base}/_emulator/health"))
        .send()
        .await;
    assert!(after.is_err());
}
