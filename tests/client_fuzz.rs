//! A seeded fuzz of the Automations API client over real HTTP: malformed bodies, statuses and
//! headers from a scripted server, broken HTTP from a raw TCP one, and a tenant whose pages
//! loop. Never a panic or a hang; always a value or a `QlikError` whose status and class follow
//! the answer, and never the key. Cases alternate between the two API generations (the
//! default, workflows, and v1), so both URL shapes and both settings objects are fuzzed. The
//! answers come from `support::fuzz`, the generator the client's unit-level fuzz
//! (`src/qlik/client.rs`) shares. No Kubernetes here: no control plane is started.

// Tests state what must hold with unwrap/expect; the crate's lints forbid them elsewhere.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::{
    collections::{BTreeMap, VecDeque},
    net::SocketAddr,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use qlik_automations_operator::qlik::{self, Api, ErrorClass, QlikError, RetryPolicy};
use rand::{Rng, SeedableRng, rngs::StdRng, seq::IndexedRandom};
use serde_json::json;

use support::{
    fuzz::{Answer, STATUSES, random_answer, random_body},
    operator::USER_KEY,
};

/// A server answering from a script: queued answers first, then `repeat` (or a 404).
#[derive(Clone, Default)]
struct Script {
    queue: Arc<Mutex<VecDeque<Answer>>>,
    repeat: Arc<Mutex<Option<Answer>>>,
    requests: Arc<Mutex<u64>>,
}

async fn scripted_server(script: Script) -> SocketAddr {
    use axum::{body::Body, http::Response};
    let app = axum::Router::new().fallback(move || {
        let script = script.clone();
        async move {
            *script.requests.lock().unwrap() += 1;
            let next = script.queue.lock().unwrap().pop_front();
            let answer = next
                .or_else(|| script.repeat.lock().unwrap().clone())
                .unwrap_or(Answer {
                    status: 404,
                    headers: vec![],
                    body: br#"{"errors":[{"code":"HTTP-404","title":"Not found"}]}"#.to_vec(),
                });
            let mut response = Response::builder().status(answer.status);
            for (k, v) in &answer.headers {
                response = response.header(*k, v.as_str());
            }
            response.body(Body::from(answer.body)).unwrap()
        }
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    addr
}

/// A server that writes raw bytes (broken HTTP) and hangs up.
async fn raw_server(answers: Arc<Mutex<VecDeque<Vec<u8>>>>) -> SocketAddr {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut socket, _)) = listener.accept().await {
            let answer = answers.lock().unwrap().pop_front().unwrap_or_default();
            tokio::spawn(async move {
                let mut buf = [0u8; 4096];
                let _ =
                    tokio::time::timeout(Duration::from_millis(200), socket.read(&mut buf)).await;
                let _ = socket.write_all(&answer).await;
                let _ = socket.shutdown().await;
            });
        }
    });
    addr
}

/// A client of the server at `addr` speaking `api`, without retries (each call meets exactly
/// the answers queued for it) and with a 5 s request timeout.
fn fuzz_client(addr: SocketAddr, api: Api) -> qlik::QlikClient {
    let mut config = qlik::ClientConfig::new(format!("http://{addr}"), qlik::ApiKey::new(USER_KEY));
    config.api = api;
    config.retry = RetryPolicy::none();
    config.request_timeout = Duration::from_secs(5);
    qlik::QlikClient::new(config).unwrap()
}

/// The generation of fuzz case `case`: workflows and v1 in turn.
fn api_of_case(case: u32) -> Api {
    Api::ALL[(case % 2) as usize]
}

/// Calls API method number `method` and reduces the answer to "a value" or the error. Every
/// method is one both generations have, with only fields the client's generation has (a
/// refusal before sending would meet none of the queued answers).
async fn call_method(
    client: qlik::QlikClient,
    method: u32,
    addr: SocketAddr,
) -> Result<&'static str, QlikError> {
    use futures::TryStreamExt;
    use qlik::model::{AutomationRequest, RunRequest, Settings};
    let params = qlik::ListParams::default().limit(200);
    Ok(match method {
        0 => client.get_automation("a1").await.map(|_| "automation")?,
        1 => client
            .list_automations(&params)
            .try_collect::<Vec<_>>()
            .await
            .map(|_| "automations")?,
        2 => client
            .create_automation(&AutomationRequest {
                name: Some("n".into()),
                ..Default::default()
            })
            .await
            .map(|_| "created")?,
        3 => client
            .update_automation("a1", &AutomationRequest::default())
            .await
            .map(|_| "updated")?,
        4 => client.delete_automation("a1").await.map(|_| "deleted")?,
        5 => client
            .copy_automation("a1", "copy")
            .await
            .map(|_| "copied")?,
        6 => client.enable_automation("a1").await.map(|_| "enabled")?,
        7 => client
            .create_run("a1", &RunRequest::api(None))
            .await
            .map(|_| "run")?,
        8 => client.get_run("a1", "r1").await.map(|_| "run")?,
        9 => client.export_run("a1", "r1").await.map(|_| "export")?,
        10 => client.get_settings().await.map(|_| "settings")?,
        11 => client
            .update_settings(&match client.api() {
                Api::V1 => Settings {
                    automations_enabled: Some(true),
                    ..Settings::default()
                },
                Api::Workflows => Settings {
                    max_concurrent_runs_per_automation: Some(5),
                    ..Settings::default()
                },
            })
            .await
            .map(|_| "settings")?,
        12 => client
            .get_usage(&qlik::UsageQuery {
                filter: qlik::Filter::eq("name", "runs"),
                breakdown_by: Some("automation".into()),
            })
            .await
            .map(|_| "usage")?,
        13 => client
            .list_runs("a1", &params)
            .try_collect::<Vec<_>>()
            .await
            .map(|_| "runs")?,
        _ => client
            .download_export(&format!("http://{addr}/exports/x.json"))
            .await
            .map(|_| "log")?,
    })
}

/// How many methods [`call_method`] knows.
const METHODS: u32 = 15;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_answers_give_a_value_or_a_typed_error_never_a_panic_or_a_hang() {
    const SEED: u64 = 0xF022_0005;
    const CASES: u32 = 3000;
    const RAW_CASES: u32 = 300;
    qlik_automations_operator::install_crypto_provider();
    let mut rng = StdRng::seed_from_u64(SEED);
    let script = Script::default();
    let addr = scripted_server(script.clone()).await;
    let mut outcomes: BTreeMap<String, u32> = BTreeMap::new();
    let mut failures = Vec::new();
    let started = Instant::now();
    let mut clients = Api::ALL.map(|api| fuzz_client(addr, api));
    let mut blocked = false;

    for case in 0..CASES {
        let answers: Vec<Answer> = (0..rng.random_range(1..=3))
            .map(|_| random_answer(&mut rng))
            .collect();
        *script.queue.lock().unwrap() = answers.iter().cloned().collect();
        let method = rng.random_range(0..METHODS);
        // A 429 blocks the client's tier for as long as it says: take fresh clients after one.
        if blocked {
            clients = Api::ALL.map(|api| fuzz_client(addr, api));
        }
        blocked = answers.iter().any(|a| a.status == 429);
        let api = api_of_case(case);
        let client = clients.iter().find(|c| c.api() == api).unwrap().clone();
        let call = tokio::spawn(call_method(client, method, addr));
        let result = match tokio::time::timeout(Duration::from_secs(10), call).await {
            Err(_) => {
                failures.push(format!(
                    "case {case}: {api} method {method} hung on {answers:?}"
                ));
                continue;
            }
            Ok(Err(join)) => {
                failures.push(format!(
                    "case {case}: {api} method {method} panicked ({join}) on {:?}",
                    answers[0]
                ));
                continue;
            }
            Ok(Ok(result)) => result,
        };
        let first = answers[0].status;
        match &result {
            Ok(kind) => *outcomes.entry(format!("value:{kind}")).or_default() += 1,
            Err(e) => {
                *outcomes
                    .entry(format!("error:{}", e.class().reason()))
                    .or_default() += 1;
                // The first answer's failure is what the caller sees, classified by its status.
                if !(200..400).contains(&first) {
                    let class = match first {
                        401 => ErrorClass::Unauthorized,
                        403 => ErrorClass::Forbidden,
                        404 => ErrorClass::NotFound,
                        429 => ErrorClass::RateLimited,
                        500..=599 => ErrorClass::Transient,
                        _ => ErrorClass::InvalidRequest,
                    };
                    if e.status() != Some(first) || e.class() != class {
                        failures.push(format!(
                            "case {case}: {api} {first} became {:?} {:?}: {e}",
                            e.status(),
                            e.class()
                        ));
                    }
                }
                let text = e.to_string();
                if text.contains(USER_KEY) {
                    failures.push(format!("case {case}: the key in {text}"));
                }
            }
        }
        let follows_links = matches!(method, 1 | 13);
        if !follows_links && (200..300).contains(&first) {
            // Only decode failures are possible when every answer was a success.
            if let Err(e) = &result
                && !matches!(e, QlikError::Decode { .. })
            {
                failures.push(format!("case {case}: {api} a 2xx gave {e:?}"));
            }
        }
    }
    script.queue.lock().unwrap().clear();

    // Broken HTTP: garbage, truncated bodies, lying Content-Length, a close mid-headers.
    let raw_answers = Arc::new(Mutex::new(VecDeque::new()));
    let raw_addr = raw_server(raw_answers.clone()).await;
    for case in 0..RAW_CASES {
        let body = random_body(&mut rng);
        let status = *STATUSES.choose(&mut rng).unwrap();
        let answer: Vec<u8> = match rng.random_range(0..5) {
            0 => body,
            1 => [
                format!(
                    "HTTP/1.1 {status} X\r\nContent-Length: {}\r\n\r\n",
                    body.len() + 50
                )
                .into_bytes(),
                body,
            ]
            .concat(),
            2 => format!("HTTP/1.1 {status} X\r\nContent-Le").into_bytes(),
            3 => [
                format!("HTTP/1.1 {status} X\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n")
                    .into_bytes(),
                body,
            ]
            .concat(),
            _ => [b"HTTP/9.9 ".to_vec(), body].concat(),
        };
        raw_answers.lock().unwrap().push_back(answer);
        let method = rng.random_range(0..METHODS);
        let client = fuzz_client(raw_addr, api_of_case(case));
        let call = tokio::spawn(call_method(client, method, raw_addr));
        match tokio::time::timeout(Duration::from_secs(10), call).await {
            Err(_) => failures.push(format!("raw case {case}: method {method} hung")),
            Ok(Err(join)) => failures.push(format!("raw case {case}: panicked ({join})")),
            Ok(Ok(Ok(kind))) => *outcomes.entry(format!("raw value:{kind}")).or_default() += 1,
            Ok(Ok(Err(e))) => {
                *outcomes
                    .entry(format!("raw error:{}", e.class().reason()))
                    .or_default() += 1
            }
        }
        raw_answers.lock().unwrap().clear();
    }

    // A tenant whose next page is always the same page must not keep the client forever.
    for api in Api::ALL {
        *script.repeat.lock().unwrap() = Some(Answer {
            status: 200,
            headers: vec![],
            body: json!({"data": [{"id": "a"}], "links": {"next": {"href": format!("http://{addr}/api{}?cursor=same", api.prefix())}}})
                .to_string()
                .into_bytes(),
        });
        let looped = tokio::time::timeout(
            Duration::from_secs(20),
            tokio::spawn(call_method(fuzz_client(addr, api), 1, addr)),
        )
        .await;
        match looped {
            Err(_) => failures.push(format!(
                "{api}: a pagination loop kept list_automations forever"
            )),
            Ok(Err(join)) => failures.push(format!("{api}: a pagination loop panicked: {join}")),
            Ok(Ok(Ok(_))) => failures.push(format!("{api}: a pagination loop gave a value")),
            Ok(Ok(Err(e))) => {
                *outcomes
                    .entry(format!("pagination loop:{}", e.class().reason()))
                    .or_default() += 1
            }
        }
    }
    *script.repeat.lock().unwrap() = None;

    assert!(
        failures.is_empty(),
        "{} of {} cases failed:\n{}",
        failures.len(),
        CASES + RAW_CASES + 2,
        failures
            .iter()
            .take(20)
            .cloned()
            .collect::<Vec<_>>()
            .join("\n")
    );
    println!(
        "RELIABILITY fuzz: seed={SEED:#x} {CASES} scripted + {RAW_CASES} raw-HTTP cases + 2 pagination loops, both generations, in {:.1?} \
         ({} requests): 0 panics, 0 hangs; outcomes {outcomes:?}",
        started.elapsed(),
        *script.requests.lock().unwrap()
    );
}
