//! HTTP-level tests of the emulator with raw reqwest: the reference's curl examples for every
//! endpoint (status codes and shapes), authentication and visibility, list parameters and
//! pagination, rate limits, the run lifecycle, export, settings, usage, fault injection and
//! counters. Each test owns its emulator, so counts are exact.
//!
//! Behaviour both generations share is one suite: each shared body is an `async fn(Api)` and
//! `in_both_generations!` makes it the two tests `v1::<name>` and `workflows::<name>`, with
//! paths relative to [`Api::prefix`]. What differs (settings, `name`, interval rounding,
//! `listAll`, deprecation headers, the workflows-only endpoints), spaces, concurrency, the one
//! store and OAuth have explicit tests after the shared ones. One file for one test binary,
//! long because the emulator's surface is; sections follow the module docs' order.

// Tests state what must hold with unwrap/expect; the crate's lints forbid them elsewhere.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::HashSet;
use std::time::{Duration, Instant};

use qlik_automations_operator::emulator::{
    ApiKey, Counters, EmulatorConfig, FaultConfig, FaultRule, OAuthClient, RunningEmulator,
};
use qlik_automations_operator::qlik::endpoint::{Api, Endpoint, Tier};
use reqwest::header::HeaderMap;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

const ALICE: &str = "alice-key";
const BOB: &str = "bob-key";
const ADMIN: &str = "admin-key";
/// The OAuth client registered by [`oauth_config`], and its secret.
const CLIENT_ID: &str = "operator";
const CLIENT_SECRET: &str = "s3cr3t-never-shown==";
/// The bot user the client's tokens act as.
const BOT: &str = "bot-operator";
const REF_AUTOMATION: &str = r#"{"name":"string","state":"available","schedules":[{"stopAt":"2022-12-01 00:00:00","startAt":"2022-01-01 00:00:00","interval":30,"timezone":"Europe/Stockholm"}],"workspace":{},"description":"string"}"#;

/// One emulator and an HTTP client; [`Tenant::on`] speaks one generation of its API.
struct Tenant {
    emu: RunningEmulator,
    client: reqwest::Client,
}

/// Requests in one generation. Paths are relative to the generation's collection: `""` is
/// the collection itself, `/{id}` an automation, `/settings` the settings.
#[derive(Clone, Copy)]
struct Gen<'a> {
    emu: &'a RunningEmulator,
    client: &'a reqwest::Client,
    api: Api,
}

impl Tenant {
    fn on(&self, api: Api) -> Gen<'_> {
        Gen {
            emu: &self.emu,
            client: &self.client,
            api,
        }
    }
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

/// [`config`] plus an OAuth client and two shared spaces.
fn oauth_config() -> EmulatorConfig {
    EmulatorConfig {
        oauth_clients: vec![OAuthClient::new(CLIENT_ID, CLIENT_SECRET)],
        spaces: vec!["sp-a".to_owned(), "sp-b".to_owned()],
        ..config()
    }
}

fn grant() -> Value {
    json!({"client_id": CLIENT_ID, "client_secret": CLIENT_SECRET, "grant_type": "client_credentials", "scope": "admin.automations"})
}

impl Tenant {
    /// `POST /oauth/token` with `body` as JSON.
    async fn token_request(&self, body: &Value) -> Answer {
        let url = format!("{}/oauth/token", self.emu.base_url());
        self.on(Api::Workflows)
            .send(Method::POST, &url, None, Some(&body.to_string()))
            .await
    }

    /// A fresh access token for the registered client.
    async fn token(&self) -> String {
        let a = self.token_request(&grant()).await;
        assert_eq!(a.status, StatusCode::OK, "{}", a.json);
        a.json["access_token"].as_str().unwrap().to_owned()
    }
}

async fn start(config: EmulatorConfig) -> Tenant {
    qlik_automations_operator::install_crypto_provider();
    let emu = RunningEmulator::start(config).await.unwrap();
    let client = reqwest::Client::builder().build().unwrap();
    Tenant { emu, client }
}

impl Gen<'_> {
    fn url(&self, path: &str) -> String {
        format!("{}/api{}{path}", self.emu.base_url(), self.api.prefix())
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
        let a = self.post("", key, Some(body)).await;
        assert_eq!(a.status, StatusCode::CREATED, "{}", a.json);
        a.json["id"].as_str().unwrap().to_owned()
    }

    async fn run(&self, key: &str, id: &str, inputs: Value) -> String {
        let a = self
            .post(
                &format!("/{id}/runs"),
                key,
                Some(json!({"inputs": inputs, "context": "api"})),
            )
            .await;
        assert_eq!(a.status, StatusCode::CREATED, "{}", a.json);
        a.json["id"].as_str().unwrap().to_owned()
    }

    async fn run_status(&self, key: &str, id: &str, run: &str) -> Value {
        self.get(&format!("/{id}/runs/{run}"), key).await.json
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

fn other_generation(api: Api) -> Api {
    match api {
        Api::V1 => Api::Workflows,
        Api::Workflows => Api::V1,
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

/// Runs each shared test body (an `async fn(Api)`) against both generations, as the tests
/// `v1::<name>` and `workflows::<name>`.
macro_rules! in_both_generations {
    ($($name:ident),* $(,)?) => {
        mod v1 {
            $(
                #[tokio::test]
                async fn $name() {
                    super::$name(super::Api::V1).await;
                }
            )*
        }
        mod workflows {
            $(
                #[tokio::test]
                async fn $name() {
                    super::$name(super::Api::Workflows).await;
                }
            )*
        }
    };
}

in_both_generations!(
    reference_curl_examples_answer_with_documented_codes_and_shapes,
    missing_or_unknown_keys_get_401_and_are_counted_without_a_user,
    plain_keys_see_only_their_own_automations_and_admins_reach_all,
    bad_list_parameters_and_bodies_are_400_naming_the_field,
    pagination_lists_450_automations_completely_in_order_by_following_links,
    exceeding_tier2_answers_429_with_retry_after_while_tier1_still_works,
    runs_go_through_their_lifecycle_and_export_serves_an_expiring_log,
    disabled_automations_and_tenants_refuse_new_runs,
    usage_aggregates_what_happened_per_day_and_per_automation,
    injected_503_hits_only_its_endpoint_and_is_counted,
    dropped_connections_are_transport_errors_and_may_follow_processing,
    counters_count_by_endpoint_tier_user_and_api_and_can_be_reset,
    run_mode_and_id_lists_are_derived_on_save,
    oauth_bearer_tokens_act_as_an_admin_bot,
);

async fn reference_curl_examples_answer_with_documented_codes_and_shapes(generation: Api) {
    let t = start(EmulatorConfig {
        run_duration: Duration::from_millis(200),
        ..config()
    })
    .await;
    let api = t.on(generation);

    // POST on the collection
    let created = api
        .send(
            Method::POST,
            &api.url(""),
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
    // Personal space, no concurrency limit set: both shown as null.
    assert!(a["spaceId"].is_null() && a["maxConcurrentRuns"].is_null());
    // v1 keeps the reference's 30 s; workflows rounds to the nearest minute (30 s up).
    let interval = match generation {
        Api::V1 => 30,
        Api::Workflows => 60,
    };
    let s = &a["schedules"][0];
    assert!(is_uuid_v4(&s["id"]));
    assert_eq!(s["startAt"], "2022-01-01 00:00:00");
    assert_eq!(s["stopAt"], "2022-12-01 00:00:00");
    assert_eq!(s["interval"], interval);
    assert_eq!(s["timezone"], "Europe/Stockholm");
    assert!(s["lastStartedAt"].is_null() && s["nextRunAt"].is_null());
    assert_eq!(a["workspace"], json!({}));
    assert_eq!(a["snippetIds"], json!([]));
    let token = a["executionToken"].as_str().unwrap();
    assert_eq!(token.len(), 64);
    assert!(token.chars().all(|c| c.is_ascii_alphanumeric()));
    let id = a["id"].as_str().unwrap().to_owned();

    // GET on the collection
    let list = api.get("", ALICE).await;
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

    // GET /{id}
    let got = api.get(&format!("/{id}"), ALICE).await;
    assert_eq!(got.status, StatusCode::OK);
    assert_eq!(got.json, created.json);

    // PUT /{id}
    tokio::time::sleep(Duration::from_millis(5)).await;
    let put = api
        .send(
            Method::PUT,
            &api.url(&format!("/{id}")),
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
            &api.url(&format!("/{id}/actions/copy")),
            Some(ALICE),
            None,
        )
        .await;
    assert_eq!(copy.status, StatusCode::CREATED, "{}", copy.json);
    assert_eq!(keys(&copy.json), HashSet::from(["id".to_owned()]));
    let copy_id = copy.json["id"].as_str().unwrap();
    let copied = api.get(&format!("/{copy_id}"), ALICE).await;
    assert_eq!(copied.json["name"], "Copy of string");
    assert_eq!(copied.json["description"], "string");
    assert_eq!(copied.json["schedules"][0]["interval"], interval);
    assert_ne!(copied.json["schedules"][0]["id"], s["id"]);

    // POST .../actions/disable and enable: 204, empty body, no content type needed.
    for (action, state) in [("disable", "disabled"), ("enable", "available")] {
        let r = api
            .post(&format!("/{id}/actions/{action}"), ALICE, None)
            .await;
        assert_eq!(r.status, StatusCode::NO_CONTENT);
        assert!(r.raw.is_empty());
        let now = api.get(&format!("/{id}"), ALICE).await;
        assert_eq!(now.json["state"], state);
    }

    // POST .../runs with the reference body: the client-chosen run id is used.
    let run = api
        .send(
            Method::POST,
            &api.url(&format!("/{id}/runs")),
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
    assert!(r["spaceId"].is_null());
    has_all(&r["metrics"], &["blocks", "network", "totalApiCalls"]);
    has_all(&r["metrics"]["network"], &["rxBytes", "txBytes"]);
    let run_id = "d452d100-9b0b-11ec-b199-8323e1031c3e";

    // GET .../runs
    let runs = api.get(&format!("/{id}/runs"), ALICE).await;
    assert_eq!(runs.status, StatusCode::OK);
    assert_eq!(runs.json["data"].as_array().unwrap().len(), 1);
    has_all(&runs.json["data"][0], RUN_LIST_FIELDS);
    assert!(runs.json["links"]["next"].is_null() && runs.json["links"]["prev"].is_null());

    // GET .../runs/{runId}
    let one = api.get(&format!("/{id}/runs/{run_id}"), ALICE).await;
    assert_eq!(one.status, StatusCode::OK);
    assert_eq!(one.json["id"], run_id);

    // POST .../actions/stop
    let stop = api
        .post(&format!("/{id}/runs/{run_id}/actions/stop"), ALICE, None)
        .await;
    assert_eq!(stop.status, StatusCode::NO_CONTENT);
    assert!(stop.raw.is_empty());
    api.watch(&id, run_id, &["stopped"]).await;

    // POST .../actions/export
    let export = api
        .post(&format!("/{id}/runs/{run_id}/actions/export"), ALICE, None)
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
        .post(&format!("/{id}/runs/{run_id}/actions/retry"), ALICE, None)
        .await;
    assert_eq!(retry.status, StatusCode::NO_CONTENT);
    assert!(retry.raw.is_empty());
    let runs = api.get(&format!("/{id}/runs"), ALICE).await;
    assert_eq!(runs.json["data"].as_array().unwrap().len(), 2);

    // GET and PUT /settings: each generation has its own settings object.
    let defaults = match generation {
        Api::V1 => json!({"automationsEnabled": true}),
        Api::Workflows => json!({"maxConcurrentRunsPerAutomation": 10}),
    };
    let settings = api.get("/settings", ALICE).await;
    assert_eq!(settings.status, StatusCode::OK);
    assert_eq!(settings.json, defaults);
    let put = api
        .send(
            Method::PUT,
            &api.url("/settings"),
            Some(ADMIN),
            Some(&defaults.to_string()),
        )
        .await;
    assert_eq!(put.status, StatusCode::OK);
    assert_eq!(put.json, defaults);

    // GET /usage (the filter is required).
    let usage = api.get("/usage?filter=name%20eq%20%22runs%22", ADMIN).await;
    assert_eq!(usage.status, StatusCode::OK, "{}", usage.json);
    let entry = &usage.json["data"][0];
    has_all(entry, &["date", "name", "value"]);
    assert_eq!(entry["name"], "runs");
    assert_eq!(entry["value"], 2);

    // POST .../actions/move with the reference's bare-string body.
    let moved = api
        .send(
            Method::POST,
            &api.url(&format!("/{id}/actions/move")),
            Some(ADMIN),
            Some(r#""bob""#),
        )
        .await;
    assert_eq!(moved.status, StatusCode::NO_CONTENT, "{}", moved.json);
    assert!(moved.raw.is_empty());
    let after = api.get(&format!("/{id}"), BOB).await;
    assert_eq!(after.json["ownerId"], "bob");
    assert!(after.json["lastRun"].is_null());
    let runs = api.get(&format!("/{id}/runs"), BOB).await;
    assert_eq!(runs.json["data"], json!([]));
    assert_eq!(
        api.get(&format!("/{id}"), ALICE).await.status,
        StatusCode::NOT_FOUND
    );

    // DELETE /{id}
    let del = api.call(Method::DELETE, &format!("/{id}"), BOB, None).await;
    assert_eq!(del.status, StatusCode::NO_CONTENT);
    assert!(del.raw.is_empty());
    assert_envelope(&api.get(&format!("/{id}"), BOB).await, 404);
}

async fn missing_or_unknown_keys_get_401_and_are_counted_without_a_user(generation: Api) {
    let t = start(config()).await;
    let api = t.on(generation);
    let none = api.send(Method::GET, &api.url(""), None, None).await;
    assert_envelope(&none, 401);
    let wrong = api.get("", "nope").await;
    assert_envelope(&wrong, 401);
    let basic = api
        .client
        .get(api.url(""))
        .header("Authorization", format!("Basic {ALICE}"))
        .send()
        .await
        .unwrap();
    assert_eq!(basic.status(), StatusCode::UNAUTHORIZED);
    let c = api.emu.counters();
    assert_eq!(c.endpoint_status(Endpoint::ListAutomations, 401), 3);
    assert!(c.by_user.is_empty());
    assert_eq!(c.tier(Tier::Tier1), 0);
    assert_eq!((c.api(Api::V1), c.api(Api::Workflows)), (0, 0));
}

async fn plain_keys_see_only_their_own_automations_and_admins_reach_all(generation: Api) {
    let t = start(config()).await;
    let api = t.on(generation);
    let alices = api.create(ALICE, json!({"name": "alice's"})).await;
    let bobs = api.create(BOB, json!({"name": "bob's"})).await;
    let run = api.run(ALICE, &alices, json!({})).await;

    // Every per-automation endpoint answers 404 to another plain user.
    let other = [
        (Method::GET, format!("/{alices}"), None),
        (
            Method::PUT,
            format!("/{alices}"),
            Some(json!({"name": "x"})),
        ),
        (Method::DELETE, format!("/{alices}"), None),
        (Method::POST, format!("/{alices}/actions/copy"), None),
        (Method::POST, format!("/{alices}/actions/disable"), None),
        (Method::POST, format!("/{alices}/actions/enable"), None),
        (Method::GET, format!("/{alices}/runs"), None),
        (
            Method::POST,
            format!("/{alices}/runs"),
            Some(json!({"context": "api"})),
        ),
        (Method::GET, format!("/{alices}/runs/{run}"), None),
        (
            Method::POST,
            format!("/{alices}/runs/{run}/actions/stop"),
            None,
        ),
        (
            Method::POST,
            format!("/{alices}/runs/{run}/actions/retry"),
            None,
        ),
        (
            Method::POST,
            format!("/{alices}/runs/{run}/actions/export"),
            None,
        ),
    ];
    for (method, path, body) in other {
        let a = api.call(method.clone(), &path, BOB, body).await;
        assert_envelope(&a, 404);
    }
    let bob_list = api.get("", BOB).await;
    let ids: Vec<_> = bob_list.json["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["id"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(ids, vec![bobs.clone()]);

    // The admin lists everything with listAll=true and only its own with listAll=false.
    // Without it, v1 shows an admin the whole tenant, workflows only the admin's own.
    let count = |a: Answer| a.json["data"].as_array().unwrap().len();
    assert_eq!(count(api.get("?listAll=true", ADMIN).await), 2);
    assert_eq!(count(api.get("?listAll=false", ADMIN).await), 0);
    let by_default = match generation {
        Api::V1 => 2,
        Api::Workflows => 0,
    };
    assert_eq!(count(api.get("", ADMIN).await), by_default);
    assert_eq!(
        api.get(&format!("/{alices}/runs/{run}"), ADMIN)
            .await
            .status,
        StatusCode::OK
    );

    // Admin-only endpoints are 403 to plain keys; reading settings is allowed.
    let settings = api.get("/settings", BOB).await;
    assert_eq!(settings.status, StatusCode::OK);
    let forbidden = [
        (
            Method::PUT,
            "/settings".to_owned(),
            Some(json!({"automationsEnabled": false})),
        ),
        (
            Method::GET,
            "/usage?filter=name%20eq%20%22runs%22".to_owned(),
            None,
        ),
        (
            Method::POST,
            format!("/{alices}/actions/move"),
            Some(json!({"userId": "bob"})),
        ),
    ];
    for (method, path, body) in forbidden {
        assert_envelope(&api.call(method, &path, ALICE, body).await, 403);
    }
    // The refused settings change did not happen.
    assert_eq!(api.get("/settings", BOB).await.json, settings.json);
    // {"userId"} works for the admin as well as the bare string.
    let moved = api
        .post(
            &format!("/{alices}/actions/move"),
            ADMIN,
            Some(json!({"userId": "bob"})),
        )
        .await;
    assert_eq!(moved.status, StatusCode::NO_CONTENT);
    assert_eq!(
        api.get(&format!("/{alices}"), BOB).await.status,
        StatusCode::OK
    );
}

async fn bad_list_parameters_and_bodies_are_400_naming_the_field(generation: Api) {
    let t = start(config()).await;
    let api = t.on(generation);
    let id = api.create(ALICE, json!({"name": "x"})).await;
    let cases = [
        ("?limit=0", "limit must be between 1 and 200"),
        ("?limit=201", "limit must be between 1 and 200"),
        ("?limit=ten", "limit must be between 1 and 200"),
        ("?sort=-description", "sort"),
        ("?sort=%2Bbogus", "bogus"),
        ("?filter=description%20eq%20%22x%22", "description"),
        ("?filter=name%20eq", "filter"),
        ("?listAll=maybe", "listAll"),
        ("?cursor=garbage", "cursor"),
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
        let a = api.get(&format!("/{id}/runs?{query}"), ALICE).await;
        assert_envelope(&a, 400);
        assert!(a.detail().contains(needle), "{query}: {}", a.detail());
    }
    // Allowed values work, including the live service's extras.
    for ok in [
        "?limit=1&sort=%2BlastRunAt",
        "?sort=-maxConcurrentRuns&filter=spaceId%20eq%20null",
        "?filter=name%20eq%20%22x%22%20and%20(runMode%20eq%20%22manual%22%20or%20ownerId%20eq%20%22alice%22)",
    ] {
        assert_eq!(api.get(ok, ALICE).await.status, StatusCode::OK, "{ok}");
    }
    let runs = api
        .get(&format!("/{id}/runs?sort=-startTime&filter=status%20eq%20%22finished%22%20and%20title%20pr&limit=200"), ALICE)
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
            .send(Method::POST, &api.url(""), Some(ALICE), Some(body))
            .await;
        assert_envelope(&a, 400);
        assert!(a.detail().contains(needle), "{body}: {}", a.detail());
    }
    // Runs need context "api".
    let r = api
        .post(&format!("/{id}/runs"), ALICE, Some(json!({"inputs": {}})))
        .await;
    assert_envelope(&r, 400);
    assert!(r.detail().contains("context"));
    // Non-JSON content types are refused; unknown routes are 404 envelopes.
    let text = api
        .client
        .post(api.url(""))
        .header("Authorization", format!("Bearer {ALICE}"))
        .header("Content-Type", "text/plain")
        .body(r#"{"name":"x"}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(text.status(), StatusCode::UNSUPPORTED_MEDIA_TYPE);
    assert_envelope(&api.get(&format!("/{id}/nothing"), ALICE).await, 404);
    assert_envelope(
        &api.post(&format!("/{id}/actions/explode"), ALICE, None)
            .await,
        404,
    );
}

async fn pagination_lists_450_automations_completely_in_order_by_following_links(generation: Api) {
    let t = start(EmulatorConfig {
        tier2_per_minute: 10_000,
        ..config()
    })
    .await;
    let api = t.on(generation);
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
    let mut url = api.url("?sort=-name&limit=200");
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
                assert!(href.starts_with(&api.url("?")), "{href}");
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
        .get("?limit=2&filter=name%20sw%20%22auto-00%22", ALICE)
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

async fn exceeding_tier2_answers_429_with_retry_after_while_tier1_still_works(generation: Api) {
    // The strict one-minute window: five writes and the tier is shut.
    let t = start(EmulatorConfig {
        tier2_per_minute: 5,
        rate_window: Duration::from_secs(60),
        ..config()
    })
    .await;
    let api = t.on(generation);
    for i in 0..5 {
        let a = api
            .post("", ALICE, Some(json!({"name": format!("n{i}")})))
            .await;
        assert_eq!(a.status, StatusCode::CREATED);
        assert_eq!(a.header("ratelimit-limit").as_deref(), Some("5"));
        assert_eq!(a.header("ratelimit-remaining"), Some((4 - i).to_string()));
        let reset: i64 = a.header("ratelimit-reset").unwrap().parse().unwrap();
        assert!(reset >= chrono::Utc::now().timestamp());
    }
    let limited = api
        .post("", ALICE, Some(json!({"name": "one too many"})))
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
        &api.post(&format!("/{id}/actions/disable"), ALICE, None)
            .await,
        429,
    );
    // ...but tier 1 works, and so does tier 2 for another user.
    let list = api.get("", ALICE).await;
    assert_eq!(list.status, StatusCode::OK);
    assert_eq!(list.header("ratelimit-limit").as_deref(), Some("1000"));
    assert_eq!(
        api.post("", BOB, Some(json!({"name": "b"}))).await.status,
        StatusCode::CREATED
    );
    assert_eq!(api.emu.automations().len(), 6);
    let c = api.emu.counters();
    assert_eq!(c.rate_limited, 2);
    assert_eq!(c.endpoint_status(Endpoint::CreateAutomation, 429), 1);
}

async fn runs_go_through_their_lifecycle_and_export_serves_an_expiring_log(generation: Api) {
    let t = start(EmulatorConfig {
        run_duration: Duration::from_millis(500),
        export_ttl: Duration::from_millis(500),
        ..config()
    })
    .await;
    let api = t.on(generation);
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
            &format!("/{id}/runs"),
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
        .post(&format!("/{id}/runs/{run}/actions/export"), ALICE, None)
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
    let a = api.get(&format!("/{id}"), ALICE).await.json;
    assert_eq!(a["lastRunStatus"], "finished");
    assert_eq!(a["lastRun"]["id"], run.as_str());
    assert_eq!(a["lastRunAt"], done["createdAt"]);

    // Stopping an ended run is refused.
    let again = api
        .post(&format!("/{id}/runs/{run}/actions/stop"), ALICE, None)
        .await;
    assert_envelope(&again, 400);

    // Export: an absolute URL that needs no key and expires.
    let export = api
        .post(&format!("/{id}/runs/{run}/actions/export"), ALICE, None)
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
        api.get(&format!("/{id}"), ALICE).await.json["lastRunStatus"],
        "failed"
    );

    // Stop: must stop, then stopped.
    let long = api.run(ALICE, &id, json!({})).await;
    let stop = api
        .post(&format!("/{id}/runs/{long}/actions/stop"), ALICE, None)
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
        .post(&format!("/{id}/runs/{run}/actions/retry"), ALICE, None)
        .await;
    assert_eq!(retry.status, StatusCode::NO_CONTENT);
    let list = api.get(&format!("/{id}/runs"), ALICE).await;
    let data = list.json["data"].as_array().unwrap();
    assert_eq!(data.len(), 4);
    let ids: Vec<_> = data.iter().map(|r| r["id"].as_str().unwrap()).collect();
    assert_eq!(ids[..3], [run.as_str(), failing.as_str(), long.as_str()]);
    let newest = api.run_status(ALICE, &id, ids[3]).await;
    assert_eq!(newest["inputs"], json!({"x": 1}));
    assert_eq!(newest["context"], "api");
    // Paging runs with limit 1 follows creation order too.
    let first = api
        .get(&format!("/{id}/runs?limit=1&sort=-id"), ALICE)
        .await;
    assert_eq!(first.json["data"][0]["id"], ids[3]);
    assert!(first.json["links"]["next"]["href"].is_string());
}

async fn disabled_automations_and_tenants_refuse_new_runs(generation: Api) {
    let t = start(EmulatorConfig {
        run_duration: Duration::from_millis(50),
        ..config()
    })
    .await;
    let api = t.on(generation);
    let id = api.create(ALICE, json!({"name": "n"})).await;
    let run = api.run(ALICE, &id, json!({})).await;

    api.post(&format!("/{id}/actions/disable"), ALICE, None)
        .await;
    let refused = api
        .post(
            &format!("/{id}/runs"),
            ALICE,
            Some(json!({"context": "api"})),
        )
        .await;
    assert_envelope(&refused, 400);
    api.post(&format!("/{id}/actions/enable"), ALICE, None)
        .await;

    // The tenant switch exists only in v1's settings, but the tenant is one: switching it
    // off there stops runs in either generation.
    let v1 = t.on(Api::V1);
    let bad = v1
        .call(
            Method::PUT,
            "/settings",
            ADMIN,
            Some(json!({"automationsEnabled": "no"})),
        )
        .await;
    assert_envelope(&bad, 400);
    let off = v1
        .call(
            Method::PUT,
            "/settings",
            ADMIN,
            Some(json!({"automationsEnabled": false})),
        )
        .await;
    assert_eq!(off.json, json!({"automationsEnabled": false}));
    for path in [
        format!("/{id}/runs"),
        format!("/{id}/runs/{run}/actions/retry"),
    ] {
        let a = api
            .post(&path, ALICE, Some(json!({"context": "api"})))
            .await;
        assert_envelope(&a, 403);
        assert!(a.detail().contains("disabled"), "{}", a.detail());
    }
    v1.call(
        Method::PUT,
        "/settings",
        ADMIN,
        Some(json!({"automationsEnabled": true})),
    )
    .await;
    api.run(ALICE, &id, json!({})).await;
}

async fn usage_aggregates_what_happened_per_day_and_per_automation(generation: Api) {
    let t = start(EmulatorConfig {
        run_duration: Duration::from_millis(50),
        ..config()
    })
    .await;
    let api = t.on(generation);
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
        .post(api.url(&format!("/{two}/actions/execute")))
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
            format!("/usage?filter={f}&breakdownBy=automation")
        } else {
            format!("/usage?filter={f}")
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
    api.call(Method::DELETE, &format!("/{one}"), ALICE, None)
        .await;
    let after = api.get(&q("name eq \"runs\"", false), ADMIN).await;
    assert_eq!(value(&after.json, "runs"), 4);
    let none = api.get(&q("date lt \"2000-01-01\"", false), ADMIN).await;
    assert_eq!(none.json, json!({"data": []}));

    for (path, needle) in [
        ("/usage", "filter"),
        ("/usage?filter=value%20gt%201", "value"),
        (
            "/usage?filter=name%20eq%20%22runs%22&breakdownBy=user",
            "breakdownBy",
        ),
    ] {
        let a = api.get(path, ADMIN).await;
        assert_envelope(&a, 400);
        assert!(a.detail().contains(needle), "{path}: {}", a.detail());
    }
}

async fn injected_503_hits_only_its_endpoint_and_is_counted(generation: Api) {
    let t = start(config()).await;
    let api = t.on(generation);
    let rules = json!({"rules": [{"endpoint": "create_automation", "errorRate": 1.0}]});
    let put = api.control(Method::PUT, "/faults", Some(rules)).await;
    assert_eq!(put.status, StatusCode::OK);
    let got = api.control(Method::GET, "/faults", None).await;
    assert_eq!(got.json["rules"][0]["status"], 503);
    assert_eq!(got.json["rules"][0]["endpoint"], "create_automation");

    for _ in 0..2 {
        let a = api.post("", ALICE, Some(json!({"name": "x"}))).await;
        assert_envelope(&a, 503);
    }
    // A rule names an endpoint, not a generation: the other one's creates fail too.
    let other = t.on(other_generation(generation));
    assert_envelope(
        &other.post("", ALICE, Some(json!({"name": "x"}))).await,
        503,
    );
    assert!(api.emu.automations().is_empty());
    assert_eq!(api.get("", ALICE).await.status, StatusCode::OK);

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
    let began = Instant::now();
    let limited = api.get("/settings", ALICE).await;
    assert!(began.elapsed() >= Duration::from_millis(50));
    assert_envelope(&limited, 429);
    assert_eq!(limited.header("retry-after").as_deref(), Some("1"));
}

async fn dropped_connections_are_transport_errors_and_may_follow_processing(generation: Api) {
    let t = start(config()).await;
    let api = t.on(generation);
    // Before processing: nothing is created.
    api.emu.set_faults(FaultConfig::with_rules(vec![
        FaultRule::on(Endpoint::CreateAutomation).with_drop(1.0, false),
    ]));
    let body = json!({"name": "ambiguous"}).to_string();
    let send = || {
        api.client
            .post(api.url(""))
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
    assert_eq!(api.get("", ALICE).await.status, StatusCode::OK);
}

async fn counters_count_by_endpoint_tier_user_and_api_and_can_be_reset(generation: Api) {
    let t = start(config()).await;
    let api = t.on(generation);
    let id = api.create(ALICE, json!({"name": "c"})).await;
    api.get(&format!("/{id}"), ALICE).await;
    api.get("", BOB).await;
    api.get("", "wrong").await;
    api.get(&format!("/{id}"), BOB).await;
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
    let mut by_api = json!({"v1": 0, "workflows": 0});
    by_api[generation.label()] = json!(4);
    assert_eq!(c["byApi"], by_api);
    assert_eq!(c["rateLimited"], 0);
    assert_eq!(c["faultsInjected"], 0);
    assert_eq!(
        (c["tokenRequests"].as_u64(), c["tokensIssued"].as_u64()),
        (Some(0), Some(0))
    );
    let typed = api.emu.counters();
    assert_eq!(serde_json::to_value(&typed).unwrap(), *c);
    assert_eq!(typed.writes(), 1);

    assert_eq!(
        api.control(Method::POST, "/counters/reset", None)
            .await
            .status,
        StatusCode::NO_CONTENT
    );
    assert_eq!(api.emu.counters(), Counters::default());
    api.get("", ALICE).await;
    api.emu.reset_counters();
    assert_eq!(api.emu.counters().total, 0);
    assert_eq!(api.emu.counters().api(generation), 0);

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

async fn run_mode_and_id_lists_are_derived_on_save(generation: Api) {
    let t = start(config()).await;
    let api = t.on(generation);
    let workspace = json!({"blocks": [
        {"type": "StartBlock", "runMode": "webhook"},
        {"type": "endpointBlock", "connectorId": "c1", "endpointId": "e1"},
        {"type": "endpointBlock", "connectorId": "c2", "endpointId": "e2"},
        {"type": "endpointBlock", "connectorId": "c1", "endpointId": "e3"},
        {"type": "SnippetBlock", "snippetId": "s1"}
    ], "variables": []});
    let created = api
        .post(
            "",
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
            &format!("/{id}"),
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
            &format!("/{id}"),
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
        .get("?filter=runMode%20eq%20%22triggered%22", ALICE)
        .await;
    assert_eq!(filtered.json["data"].as_array().unwrap().len(), 1);
    let put = api
        .call(
            Method::PUT,
            &format!("/{id}"),
            ALICE,
            Some(json!({"workspace": {}})),
        )
        .await;
    assert_eq!(put.json["runMode"], "manual");
}

#[tokio::test]
async fn v1_schedules_are_kept_as_sent_unless_normalisation_is_on() {
    let two = json!({"name": "s", "schedules": [
        {"startAt": "2030-01-01 00:00:00", "interval": 30, "timezone": "UTC"},
        {"startAt": "2031-01-01 00:00:00", "interval": 150, "timezone": "UTC"}
    ]});
    let plain = start(config()).await;
    let a = plain.on(Api::V1).post("", ALICE, Some(two.clone())).await;
    assert_eq!(a.json["schedules"].as_array().unwrap().len(), 2);
    assert_eq!(a.json["schedules"][0]["interval"], 30);

    // The option emulates the reported live normalisation in both generations.
    let normalising = start(EmulatorConfig {
        normalize_schedules: true,
        ..config()
    })
    .await;
    for api in Api::ALL {
        let a = normalising.on(api).post("", ALICE, Some(two.clone())).await;
        let schedules = a.json["schedules"].as_array().unwrap();
        assert_eq!(schedules.len(), 1, "{api}");
        assert_eq!(schedules[0]["interval"], 60, "{api}");
    }
}

#[tokio::test]
async fn active_schedules_start_runs_that_count_as_scheduled_usage() {
    let t = start(EmulatorConfig {
        run_duration: Duration::from_millis(50),
        ..config()
    })
    .await;
    // Only v1 keeps a one-second interval (workflows rounds it to a minute), so only v1 can
    // show scheduled starts within seconds; the scheduler is the same for both.
    let api = t.on(Api::V1);
    let id = api
        .create(
            ALICE,
            json!({"name": "every second", "schedules": [
                {"startAt": "2020-01-01 00:00:00", "interval": 1, "timezone": "Europe/Stockholm"}
            ]}),
        )
        .await;
    tokio::time::sleep(Duration::from_millis(2200)).await;
    let runs = api.get(&format!("/{id}/runs"), ALICE).await;
    let data = runs.json["data"].as_array().unwrap();
    // One start per second since creation: at least two in 2.2 s (more if this machine is slow).
    assert!(data.len() >= 2, "{}", runs.json);
    assert!(
        data.iter()
            .all(|r| r["context"] == "scheduler" && is_ts(&r["scheduledStartTime"]))
    );
    let a = api.get(&format!("/{id}"), ALICE).await.json;
    assert!(is_ts(&a["schedules"][0]["lastStartedAt"]));
    assert_eq!(a["runMode"], "scheduled");
    let usage = api
        .get("/usage?filter=name%20eq%20%22scheduledRun%22", ADMIN)
        .await;
    // Another start may have come due between the two requests.
    assert!(usage.json["data"][0]["value"].as_u64().unwrap() as usize >= data.len());
}

#[tokio::test]
async fn shutdown_is_prompt_even_with_idle_keep_alive_connections() {
    let t = start(config()).await;
    assert_eq!(
        t.on(Api::Workflows).get("", ALICE).await.status,
        StatusCode::OK
    );
    let base = t.emu.base_url();
    let began = Instant::now();
    t.emu.shutdown().await;
    assert!(
        began.elapsed() < Duration::from_secs(1),
        "{:?}",
        began.elapsed()
    );
    // The port no longer answers.
    let after = t
        .client
        .get(format!("{base}/_emulator/health"))
        .send()
        .await;
    assert!(after.is_err());
}

// ---- One store, two generations -------------------------------------------------------

#[tokio::test]
async fn one_store_serves_both_generations() {
    let t = start(oauth_config()).await;
    let (v1, wf) = (t.on(Api::V1), t.on(Api::Workflows));

    // Created on v1, read and changed on workflows, seen changed on v1.
    let id = v1.create(ALICE, json!({"name": "from v1"})).await;
    let got = wf.get(&format!("/{id}"), ALICE).await;
    assert_eq!(got.status, StatusCode::OK);
    assert_eq!(got.json["name"], "from v1");
    let put = wf
        .call(
            Method::PUT,
            &format!("/{id}"),
            ALICE,
            Some(json!({"description": "edited on workflows", "maxConcurrentRuns": 2})),
        )
        .await;
    assert_eq!(put.status, StatusCode::OK, "{}", put.json);
    let back = v1.get(&format!("/{id}"), ALICE).await.json;
    assert_eq!(back["description"], "edited on workflows");
    assert_eq!(back["maxConcurrentRuns"], 2);

    // Created on workflows in a space: v1's answers show the space and the limit too.
    let wid = wf
        .create(
            ALICE,
            json!({"name": "from workflows", "spaceId": "sp-a", "maxConcurrentRuns": 3}),
        )
        .await;
    let seen = v1.get(&format!("/{wid}"), ALICE).await.json;
    assert_eq!(
        (&seen["spaceId"], &seen["maxConcurrentRuns"]),
        (&json!("sp-a"), &json!(3))
    );
    let listed = v1
        .get("?filter=spaceId%20eq%20%22sp-a%22", ALICE)
        .await
        .json;
    assert_eq!(listed["data"].as_array().unwrap().len(), 1);
    assert_eq!(listed["data"][0]["id"], wid.as_str());
    assert_eq!(listed["data"][0]["maxConcurrentRuns"], 3);

    // A run started on one generation is the other's last run; delete on v1, gone on both.
    let run = wf.run(ALICE, &wid, json!({})).await;
    assert_eq!(
        v1.get(&format!("/{wid}"), ALICE).await.json["lastRun"]["id"],
        run.as_str()
    );
    assert_eq!(
        v1.call(Method::DELETE, &format!("/{wid}"), ALICE, None)
            .await
            .status,
        StatusCode::NO_CONTENT
    );
    assert_envelope(&wf.get(&format!("/{wid}"), ALICE).await, 404);
    assert_eq!(t.emu.automations().len(), 1);
}

// ---- Where the generations differ -------------------------------------------------------

#[tokio::test]
async fn workflows_requires_a_name_where_v1_names_the_automation_itself() {
    let t = start(config()).await;
    let refused = t
        .on(Api::Workflows)
        .post("", ALICE, Some(json!({"description": "d"})))
        .await;
    assert_envelope(&refused, 400);
    assert_eq!(refused.detail(), "name is required");
    let created = t
        .on(Api::V1)
        .post("", ALICE, Some(json!({"description": "d"})))
        .await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.json);
    assert_eq!(created.json["name"], "Untitled automation");
    // Neither generation needs a name on update.
    let id = created.json["id"].as_str().unwrap();
    for api in Api::ALL {
        let put = t
            .on(api)
            .call(
                Method::PUT,
                &format!("/{id}"),
                ALICE,
                Some(json!({"description": "e"})),
            )
            .await;
        assert_eq!(put.status, StatusCode::OK, "{api}: {}", put.json);
    }
}

#[tokio::test]
async fn workflows_rounds_schedule_intervals_on_create_and_update_and_v1_keeps_them() {
    let t = start(config()).await;
    let sched = |interval: u64| json!([{"startAt": "2030-01-01 00:00:00", "interval": interval, "timezone": "UTC"}]);
    let wf = t.on(Api::Workflows);
    let created = wf
        .post(
            "",
            ALICE,
            Some(json!({"name": "s", "schedules": sched(29)})),
        )
        .await;
    assert_eq!(created.json["schedules"][0]["interval"], 60);
    let id = created.json["id"].as_str().unwrap();
    for (sent, stored) in [(89, 60), (90, 120), (3600, 3600), (1, 60)] {
        let put = wf
            .call(
                Method::PUT,
                &format!("/{id}"),
                ALICE,
                Some(json!({"schedules": sched(sent)})),
            )
            .await;
        assert_eq!(put.json["schedules"][0]["interval"], stored, "{sent}");
    }
    // v1 stores what it was sent, also on an automation workflows made.
    let put = t
        .on(Api::V1)
        .call(
            Method::PUT,
            &format!("/{id}"),
            ALICE,
            Some(json!({"schedules": sched(90)})),
        )
        .await;
    assert_eq!(put.json["schedules"][0]["interval"], 90);
}

#[tokio::test]
async fn workflows_only_endpoints_are_404_under_v1() {
    let t = start(EmulatorConfig {
        run_duration: Duration::from_millis(50),
        ..oauth_config()
    })
    .await;
    let id = t.on(Api::V1).create(ALICE, json!({"name": "n"})).await;
    let run = t.on(Api::V1).run(ALICE, &id, json!({})).await;
    // Debug first: change-owner drops the run history, as move does.
    let calls = [
        (Method::GET, format!("/{id}/runs/{run}/debug"), None),
        (
            Method::POST,
            format!("/{id}/actions/change-space"),
            Some(json!({"spaceId": "sp-a"})),
        ),
        (
            Method::POST,
            format!("/{id}/actions/change-owner"),
            Some(json!({"userId": "bob"})),
        ),
    ];
    for (method, path, body) in calls.clone() {
        let a = t.on(Api::V1).call(method, &path, ADMIN, body).await;
        assert_envelope(&a, 404);
        assert!(a.header("deprecation").is_some(), "{path}");
    }
    // Nothing changed; the same calls work on workflows.
    let a = t.on(Api::V1).get(&format!("/{id}"), ALICE).await.json;
    assert_eq!(
        (&a["ownerId"], &a["spaceId"]),
        (&json!("alice"), &Value::Null)
    );
    for (method, path, body) in calls {
        let a = t.on(Api::Workflows).call(method, &path, ADMIN, body).await;
        assert!(a.status.is_success(), "{path}: {} {}", a.status, a.json);
    }
}

#[tokio::test]
async fn v1_answers_carry_deprecation_sunset_and_successor_link_and_workflows_none() {
    let t = start(config()).await;
    let v1 = t.on(Api::V1);
    let id = v1.create(ALICE, json!({"name": "n"})).await;
    let token = v1.get(&format!("/{id}"), ALICE).await.json["executionToken"].clone();
    let execute = |api: Api| {
        t.client
            .post(t.on(api).url(&format!("/{id}/actions/execute")))
            .header("X-Execution-Token", token.as_str().unwrap())
            .send()
    };
    for api in Api::ALL {
        let g = t.on(api);
        let answers = [
            g.get("", ALICE).await,
            g.get(&format!("/{id}"), ALICE).await,
            g.post(&format!("/{id}/actions/disable"), ALICE, None).await,
            g.get("?limit=0", ALICE).await,
            g.get("", "wrong-key").await,
            g.get("/nope/nothing/here", ALICE).await,
        ];
        for a in &answers {
            let headers = (
                a.header("deprecation"),
                a.header("sunset"),
                a.header("link"),
            );
            match api {
                Api::V1 => assert_eq!(
                    headers,
                    (
                        Some("@1775001600".to_owned()),
                        Some("Tue, 30 Nov 2027 00:00:00 GMT".to_owned()),
                        Some("</api/workflows/automations>; rel=\"successor-version\"".to_owned()),
                    ),
                    "{} {}",
                    a.status,
                    a.json
                ),
                Api::Workflows => assert_eq!(headers, (None, None, None), "{}", a.status),
            }
        }
        // Token-authenticated execute answers (a manual automation: 400) too.
        let exec = execute(api).await.unwrap();
        assert_eq!(exec.status(), StatusCode::BAD_REQUEST);
        assert_eq!(exec.headers().contains_key("deprecation"), api == Api::V1);
    }
    // Outside the API (control surface, token endpoint) nothing is deprecated.
    assert!(
        t.on(Api::V1)
            .control(Method::GET, "/health", None)
            .await
            .header("deprecation")
            .is_none()
    );
}

#[tokio::test]
async fn settings_differ_per_generation_and_the_tenant_keeps_both() {
    let t = start(config()).await;
    let (v1, wf) = (t.on(Api::V1), t.on(Api::Workflows));
    assert_eq!(
        wf.get("/settings", ALICE).await.json,
        json!({"maxConcurrentRunsPerAutomation": 10})
    );
    let put = |body: Value, key: &'static str| {
        let body = Some(body);
        async move { wf.call(Method::PUT, "/settings", key, body).await }
    };
    assert_envelope(
        &put(json!({"maxConcurrentRunsPerAutomation": 3}), ALICE).await,
        403,
    );
    for bad in [
        json!({}),
        json!({"maxConcurrentRunsPerAutomation": 0}),
        json!({"maxConcurrentRunsPerAutomation": "4"}),
        json!({"automationsEnabled": false}),
    ] {
        let a = put(bad.clone(), ADMIN).await;
        assert_envelope(&a, 400);
        assert!(
            a.detail().contains("maxConcurrentRunsPerAutomation"),
            "{bad}: {}",
            a.detail()
        );
    }
    let ok = put(json!({"maxConcurrentRunsPerAutomation": 4}), ADMIN).await;
    assert_eq!(ok.json, json!({"maxConcurrentRunsPerAutomation": 4}));
    // v1's switch is untouched by workflows' settings, and the other way round.
    assert_eq!(
        v1.get("/settings", BOB).await.json,
        json!({"automationsEnabled": true})
    );
    let off = v1
        .call(
            Method::PUT,
            "/settings",
            ADMIN,
            Some(json!({"automationsEnabled": false})),
        )
        .await;
    assert_eq!(off.json, json!({"automationsEnabled": false}));
    assert_eq!(
        wf.get("/settings", BOB).await.json,
        json!({"maxConcurrentRunsPerAutomation": 4})
    );
}

#[tokio::test]
async fn workflows_lists_only_the_callers_own_unless_an_admin_asks_list_all() {
    let t = start(config()).await;
    let (v1, wf) = (t.on(Api::V1), t.on(Api::Workflows));
    wf.create(ALICE, json!({"name": "a"})).await;
    wf.create(BOB, json!({"name": "b"})).await;
    wf.create(ADMIN, json!({"name": "r"})).await;
    let names = |a: &Answer| -> Vec<String> {
        a.json["data"]
            .as_array()
            .unwrap()
            .iter()
            .map(|i| i["name"].as_str().unwrap().to_owned())
            .collect()
    };
    assert_eq!(names(&wf.get("", ADMIN).await), vec!["r"]);
    let mut all = names(&wf.get("?listAll=true&sort=name", ADMIN).await);
    all.sort();
    assert_eq!(all, vec!["a", "b", "r"]);
    let refused = wf.get("?listAll=true", ALICE).await;
    assert_envelope(&refused, 403);
    assert!(refused.detail().contains("listAll"), "{}", refused.detail());
    assert_eq!(names(&wf.get("?listAll=false", ALICE).await), vec!["a"]);
    // v1 is as it was: a plain key asking for everything still gets its own.
    assert_eq!(names(&v1.get("?listAll=true", ALICE).await), vec!["a"]);
    assert_eq!(
        v1.get("", ADMIN).await.json["data"]
            .as_array()
            .unwrap()
            .len(),
        3
    );
}

// ---- Spaces, concurrency, owners, debug -------------------------------------------------

#[tokio::test]
async fn spaces_must_be_registered_and_change_space_moves_between_them() {
    let t = start(EmulatorConfig {
        run_duration: Duration::from_millis(50),
        ..oauth_config()
    })
    .await;
    let wf = t.on(Api::Workflows);
    let in_a = wf
        .post("", ALICE, Some(json!({"name": "a", "spaceId": "sp-a"})))
        .await;
    assert_eq!(in_a.status, StatusCode::CREATED, "{}", in_a.json);
    assert_eq!(in_a.json["spaceId"], "sp-a");
    let id = in_a.json["id"].as_str().unwrap().to_owned();
    let unknown = wf
        .post("", ALICE, Some(json!({"name": "x", "spaceId": "nope"})))
        .await;
    assert_envelope(&unknown, 404);
    assert_eq!(unknown.detail(), "space nope not found");
    for personal in [json!(""), Value::Null] {
        let p = wf
            .post("", ALICE, Some(json!({"name": "p", "spaceId": personal})))
            .await;
        assert_eq!(p.status, StatusCode::CREATED);
        assert!(p.json["spaceId"].is_null());
    }
    assert_eq!(t.emu.automations().len(), 3);

    // A PUT never moves an automation between spaces.
    let put = wf
        .call(
            Method::PUT,
            &format!("/{id}"),
            ALICE,
            Some(json!({"spaceId": "sp-b"})),
        )
        .await;
    assert_eq!(put.json["spaceId"], "sp-a");

    let change = |space: Value, key: &'static str| {
        let path = format!("/{id}/actions/change-space");
        async move { wf.post(&path, key, Some(json!({"spaceId": space}))).await }
    };
    let moved = change(json!("sp-b"), ALICE).await;
    assert_eq!(moved.status, StatusCode::NO_CONTENT, "{}", moved.json);
    assert!(moved.raw.is_empty());
    assert_eq!(
        wf.get(&format!("/{id}"), ALICE).await.json["spaceId"],
        "sp-b"
    );
    let run = wf.run(ALICE, &id, json!({})).await;
    assert_eq!(wf.run_status(ALICE, &id, &run).await["spaceId"], "sp-b");
    assert_envelope(&change(json!("nope"), ALICE).await, 404);
    assert_envelope(&change(json!("sp-a"), BOB).await, 404);
    let missing = wf
        .post(
            &format!("/{id}/actions/change-space"),
            ALICE,
            Some(json!({})),
        )
        .await;
    assert_envelope(&missing, 400);
    assert!(missing.detail().contains("spaceId"));
    assert_eq!(
        wf.get(&format!("/{id}"), ALICE).await.json["spaceId"],
        "sp-b"
    );
    // "" is the owner's personal space.
    assert_eq!(
        change(json!(""), ADMIN).await.status,
        StatusCode::NO_CONTENT
    );
    assert!(wf.get(&format!("/{id}"), ALICE).await.json["spaceId"].is_null());
}

#[tokio::test]
async fn max_concurrent_runs_stays_within_the_tenant_setting() {
    let t = start(config()).await;
    let (v1, wf) = (t.on(Api::V1), t.on(Api::Workflows));
    let three = wf
        .post(
            "",
            ALICE,
            Some(json!({"name": "m", "maxConcurrentRuns": 3})),
        )
        .await;
    assert_eq!(three.json["maxConcurrentRuns"], 3);
    let id = three.json["id"].as_str().unwrap().to_owned();
    let unset = wf.post("", ALICE, Some(json!({"name": "u"}))).await;
    assert!(unset.json["maxConcurrentRuns"].is_null());
    for bad in [json!(0), json!(11), json!(-1), json!(1.5), json!("2")] {
        let a = wf
            .post(
                "",
                ALICE,
                Some(json!({"name": "b", "maxConcurrentRuns": bad})),
            )
            .await;
        assert_envelope(&a, 400);
        assert!(
            a.detail()
                .starts_with("maxConcurrentRuns must be an integer from 1 to 10"),
            "{}",
            a.detail()
        );
    }
    // Lowering the tenant limit bounds later saves.
    wf.call(
        Method::PUT,
        "/settings",
        ADMIN,
        Some(json!({"maxConcurrentRunsPerAutomation": 4})),
    )
    .await;
    let over = wf
        .call(
            Method::PUT,
            &format!("/{id}"),
            ALICE,
            Some(json!({"maxConcurrentRuns": 5})),
        )
        .await;
    assert_envelope(&over, 400);
    assert!(over.detail().contains("from 1 to 4"), "{}", over.detail());
    let ok = wf
        .call(
            Method::PUT,
            &format!("/{id}"),
            ALICE,
            Some(json!({"maxConcurrentRuns": 4})),
        )
        .await;
    assert_eq!(ok.json["maxConcurrentRuns"], 4);
    // v1 does not know the field and ignores it.
    let v1_made = v1
        .post(
            "",
            ALICE,
            Some(json!({"name": "v", "maxConcurrentRuns": 99})),
        )
        .await;
    assert_eq!(v1_made.status, StatusCode::CREATED);
    assert!(v1_made.json["maxConcurrentRuns"].is_null());
    // Lists sort on it (unset first).
    let sorted = wf.get("?sort=-maxConcurrentRuns", ALICE).await.json;
    assert_eq!(sorted["data"][0]["maxConcurrentRuns"], 4);
    assert!(sorted["data"][2]["maxConcurrentRuns"].is_null());
}

#[tokio::test]
async fn change_owner_is_move_under_its_workflows_name() {
    let t = start(EmulatorConfig {
        run_duration: Duration::from_millis(50),
        ..config()
    })
    .await;
    let wf = t.on(Api::Workflows);
    let id = wf.create(ALICE, json!({"name": "n"})).await;
    wf.run(ALICE, &id, json!({})).await;
    let path = format!("/{id}/actions/change-owner");
    assert_envelope(
        &wf.post(&path, ALICE, Some(json!({"userId": "bob"}))).await,
        403,
    );
    let missing = wf.post(&path, ADMIN, Some(json!({}))).await;
    assert_envelope(&missing, 400);
    assert!(missing.detail().contains("userId"));
    let changed = wf.post(&path, ADMIN, Some(json!({"userId": "bob"}))).await;
    assert_eq!(changed.status, StatusCode::NO_CONTENT, "{}", changed.json);
    let a = wf.get(&format!("/{id}"), BOB).await.json;
    assert_eq!(a["ownerId"], "bob");
    // As with move, the run history goes and the old owner loses sight of it.
    assert!(a["lastRun"].is_null());
    assert_eq!(
        wf.get(&format!("/{id}/runs"), BOB).await.json["data"],
        json!([])
    );
    assert_envelope(&wf.get(&format!("/{id}"), ALICE).await, 404);
    let c = t.emu.counters();
    assert_eq!(c.endpoint(Endpoint::ChangeOwner), 3);
    assert_eq!(c.endpoint(Endpoint::MoveAutomation), 0);
}

#[tokio::test]
async fn debug_links_serve_the_run_without_a_key_and_expire() {
    let t = start(EmulatorConfig {
        run_duration: Duration::from_millis(300),
        export_ttl: Duration::from_millis(400),
        ..config()
    })
    .await;
    let wf = t.on(Api::Workflows);
    let id = wf.create(ALICE, json!({"name": "d"})).await;
    let run = wf.run(ALICE, &id, json!({"x": 1})).await;
    // Unlike export, debug works while the run is going.
    let debug = wf.get(&format!("/{id}/runs/{run}/debug"), ALICE).await;
    assert_eq!(debug.status, StatusCode::OK, "{}", debug.json);
    assert_eq!(keys(&debug.json), HashSet::from(["url".to_owned()]));
    let url = debug.json["url"].as_str().unwrap().to_owned();
    assert!(
        url.starts_with(&format!("{}/_emulator/exports/", t.emu.base_url())),
        "{url}"
    );
    let log = wf.send(Method::GET, &url, None, None).await;
    assert_eq!(log.status, StatusCode::OK);
    assert_eq!(log.json["run"]["id"], run.as_str());
    assert_eq!(log.json["run"]["inputs"], json!({"x": 1}));
    assert!(
        log.json["log"]
            .as_array()
            .unwrap()
            .iter()
            .all(|e| is_ts(&e["timestamp"]))
    );
    assert_envelope(&wf.get(&format!("/{id}/runs/{run}/debug"), BOB).await, 404);
    assert_envelope(&wf.get(&format!("/{id}/runs/nope/debug"), ALICE).await, 404);
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(
        wf.send(Method::GET, &url, None, None).await.status,
        StatusCode::FORBIDDEN
    );
}

// ---- OAuth2 client credentials ------------------------------------------------------------

async fn oauth_bearer_tokens_act_as_an_admin_bot(generation: Api) {
    let t = start(oauth_config()).await;
    let api = t.on(generation);
    let alices = api.create(ALICE, json!({"name": "alice's"})).await;
    let token = t.token().await;
    let mine = api.create(&token, json!({"name": "the bot's"})).await;
    let a = api.get(&format!("/{mine}"), &token).await;
    assert_eq!(a.json["ownerId"], BOT);
    // A tenant admin: it reaches anyone's automation, may list them all and change settings.
    assert_eq!(
        api.get(&format!("/{alices}"), &token).await.status,
        StatusCode::OK
    );
    let all = api.get("?listAll=true", &token).await;
    assert_eq!(all.status, StatusCode::OK);
    assert_eq!(all.json["data"].as_array().unwrap().len(), 2);
    let settings = api.get("/settings", &token).await.json;
    assert_eq!(
        api.call(Method::PUT, "/settings", &token, Some(settings))
            .await
            .status,
        StatusCode::OK
    );
    // Usable on the other generation too.
    let other = t.on(other_generation(generation));
    assert_eq!(
        other.get(&format!("/{mine}"), &token).await.json["ownerId"],
        BOT
    );
    let c = t.emu.counters();
    assert_eq!(c.by_user[BOT], 7);
    assert_eq!(c.api(generation), 7);
    assert_eq!((c.token_requests, c.tokens_issued), (1, 1));
}

#[tokio::test]
async fn oauth_token_answers_like_qlik_and_is_not_an_api_endpoint() {
    let t = start(EmulatorConfig {
        tier1_per_minute: 1,
        tier2_per_minute: 1,
        ..oauth_config()
    })
    .await;
    let granted = t.token_request(&grant()).await;
    assert_eq!(granted.status, StatusCode::OK, "{}", granted.json);
    assert_eq!(
        keys(&granted.json),
        HashSet::from(["access_token", "token_type", "expires_in", "scope"].map(str::to_owned))
    );
    assert_eq!(granted.json["token_type"], "bearer");
    assert_eq!(granted.json["expires_in"], 21600);
    assert_eq!(granted.json["scope"], "admin.automations");
    assert_eq!(granted.header("cache-control").as_deref(), Some("no-store"));
    let first = granted.json["access_token"].as_str().unwrap().to_owned();
    assert!(first.len() >= 32 && !first.contains(CLIENT_SECRET));
    // Without a scope the bot scope is granted; tokens are never rate limited or counted
    // as API requests, and each one is new.
    let mut no_scope = grant();
    no_scope.as_object_mut().unwrap().remove("scope");
    for _ in 0..4 {
        let again = t.token_request(&no_scope).await;
        assert_eq!(again.status, StatusCode::OK);
        assert_ne!(again.json["access_token"], first.as_str());
    }
    let c = t.emu.counters();
    assert_eq!((c.token_requests, c.tokens_issued, c.total), (5, 5, 0));
    assert!(c.by_endpoint.is_empty() && c.rate_limited == 0);
}

#[tokio::test]
async fn oauth_refusals_come_in_the_error_envelope_without_the_secret() {
    let t = start(oauth_config()).await;
    let with = |change: Value| {
        let mut body = grant();
        for (k, v) in change.as_object().unwrap() {
            body[k] = v.clone();
        }
        body
    };
    let cases = [
        (
            with(json!({"client_secret": "not-the-s3cr3t"})),
            401,
            "invalid_client",
        ),
        (
            with(json!({"client_id": "stranger"})),
            401,
            "invalid_client",
        ),
        (
            json!({"client_id": CLIENT_ID, "client_secret": CLIENT_SECRET}),
            400,
            "invalid_request",
        ),
        (
            json!({"client_id": CLIENT_ID, "grant_type": "client_credentials"}),
            400,
            "invalid_request",
        ),
        (
            with(json!({"grant_type": "password"})),
            400,
            "unsupported_grant_type",
        ),
        (with(json!({"scope": "user_default"})), 400, "invalid_scope"),
        (json!(["not", "an", "object"]), 400, "invalid_request"),
    ];
    let n = cases.len() as u64;
    for (body, status, title) in cases {
        let a = t.token_request(&body).await;
        assert_envelope(&a, status);
        assert_eq!(a.json["errors"][0]["title"], title, "{body}");
        let raw = String::from_utf8(a.raw.clone()).unwrap();
        assert!(
            !raw.contains(CLIENT_SECRET) && !raw.contains("not-the-s3cr3t"),
            "{raw}"
        );
    }
    let c = t.emu.counters();
    assert_eq!((c.token_requests, c.tokens_issued), (n, 0));
    let counters = t
        .on(Api::V1)
        .control(Method::GET, "/counters", None)
        .await
        .json;
    assert_eq!(
        (&counters["tokenRequests"], &counters["tokensIssued"]),
        (&json!(n), &json!(0))
    );
    // Nothing the emulator shows of itself reveals the secret either.
    let token = t.token().await;
    t.on(Api::Workflows)
        .create(&token, json!({"name": "n"}))
        .await;
    let shown = [
        format!("{:?}", oauth_config()),
        format!("{:?}", t.emu),
        format!("{:?}", t.emu.counters()),
        t.on(Api::V1)
            .control(Method::GET, "/automations", None)
            .await
            .json
            .to_string(),
        t.on(Api::V1)
            .control(Method::GET, "/counters", None)
            .await
            .json
            .to_string(),
    ];
    for text in shown {
        assert!(
            !text.contains(CLIENT_SECRET) && !text.contains(&token),
            "{text}"
        );
    }
}

#[tokio::test]
async fn oauth_tokens_expire_after_their_lifetime_or_on_demand() {
    let t = start(EmulatorConfig {
        oauth_token_ttl: Duration::from_secs(1),
        ..oauth_config()
    })
    .await;
    let wf = t.on(Api::Workflows);
    let short = t.token_request(&grant()).await;
    assert_eq!(short.json["expires_in"], 1);
    let token = short.json["access_token"].as_str().unwrap().to_owned();
    assert_eq!(wf.get("", &token).await.status, StatusCode::OK);
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let expired = wf.get("", &token).await;
    assert_envelope(&expired, 401);
    assert!(expired.detail().contains("expired"), "{}", expired.detail());
    assert_envelope(&wf.get("", "never-issued-token").await, 401);

    // The control endpoint (and its in-process twin) expire every token at once.
    for expire_over_http in [true, false] {
        let fresh = t.token().await;
        assert_eq!(t.on(Api::V1).get("", &fresh).await.status, StatusCode::OK);
        if expire_over_http {
            let a = wf.control(Method::POST, "/oauth/expire", None).await;
            assert_eq!(a.status, StatusCode::NO_CONTENT);
        } else {
            t.emu.expire_tokens();
        }
        assert_envelope(&t.on(Api::V1).get("", &fresh).await, 401);
    }
    // API keys do not expire.
    assert_eq!(wf.get("", ALICE).await.status, StatusCode::OK);
    let c = t.emu.counters();
    assert_eq!(c.endpoint_status(Endpoint::ListAutomations, 401), 4);
}

#[tokio::test]
async fn the_bot_has_its_own_rate_budget() {
    let t = start(EmulatorConfig {
        tier2_per_minute: 2,
        rate_window: Duration::from_secs(60),
        ..oauth_config()
    })
    .await;
    let wf = t.on(Api::Workflows);
    let token = t.token().await;
    for key in [ALICE, token.as_str()] {
        for i in 0..2 {
            let a = wf
                .post("", key, Some(json!({"name": format!("n{i}")})))
                .await;
            assert_eq!(a.status, StatusCode::CREATED, "{}", a.json);
        }
    }
    // Both are now out of tier 2, each on its own; the other users are not.
    assert_envelope(&wf.post("", &token, Some(json!({"name": "x"}))).await, 429);
    assert_envelope(
        &t.on(Api::V1)
            .post("", ALICE, Some(json!({"name": "x"})))
            .await,
        429,
    );
    assert_eq!(
        wf.post("", BOB, Some(json!({"name": "b"}))).await.status,
        StatusCode::CREATED
    );
    // A new token is the same bot, with the same spent budget.
    let again = t.token().await;
    assert_envelope(&wf.post("", &again, Some(json!({"name": "x"}))).await, 429);
    let c = t.emu.counters();
    assert_eq!(c.rate_limited, 3);
    assert_eq!(c.by_user[BOT], 4);
    assert_eq!(c.by_user["alice"], 3);
}
