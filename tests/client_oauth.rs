//! The client as an OAuth2 machine-to-machine bot against a running emulator, over real HTTP:
//! one token shared by every call and clone, the bot user in both generations, transparent
//! renewal (before `expires_in`, and once after a refused token), a refused grant that is
//! neither retried per call nor ever shown with its secret.

// Tests state what must hold with unwrap/expect; the crate's lints forbid them elsewhere.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::{
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use futures::TryStreamExt;
use qlik_automations_operator::{
    emulator::{
        ApiKey as EmulatorKey, Counters, EmulatorConfig, FaultConfig, FaultRule,
        OAuthClient as EmulatorOAuthClient, RunningEmulator,
    },
    qlik::{
        Answer, Api, ApiKey, Budget, Caller, ClientConfig, Credential, Endpoint, ErrorClass,
        ListParams, OAuthClient, QlikClient, QlikError, Redacted, RetryPolicy, Sort, Telemetry,
        Tier, TokenOutcome,
        model::{AutomationRequest, RunRequest},
    },
};

const CLIENT_ID: &str = "operator";
const SECRET: &str = "s3cret-Zq8vW1xY7pLm";
const BOT: &str = "bot-operator";
const ALICE: &str = "alice-key-4567";

/// An emulator with the OAuth client `operator` (and Alice's key), generous limits, fast
/// runs, unless the test says otherwise.
async fn emulator(tweak: impl FnOnce(&mut EmulatorConfig)) -> RunningEmulator {
    let mut config = EmulatorConfig {
        listen: "127.0.0.1:0".parse().unwrap(),
        keys: vec![EmulatorKey::user(ALICE, "alice")],
        oauth_clients: vec![EmulatorOAuthClient::new(CLIENT_ID, SECRET)],
        tier1_per_minute: 100_000,
        tier2_per_minute: 100_000,
        run_duration: Duration::from_millis(200),
        ..EmulatorConfig::default()
    };
    tweak(&mut config);
    RunningEmulator::start(config).await.unwrap()
}

fn oauth(secret: &str, scope: &str) -> Credential {
    Credential::OAuth(OAuthClient {
        client_id: CLIENT_ID.into(),
        client_secret: Redacted::new(secret),
        scope: scope.into(),
    })
}

fn config(emu: &RunningEmulator, credential: Credential, api: Api) -> ClientConfig {
    support::client::fast_config(&emu.base_url(), credential, api)
}

/// The bot with the right secret and the default scope, speaking `api`.
fn bot(emu: &RunningEmulator, api: Api) -> QlikClient {
    QlikClient::new(config(emu, oauth(SECRET, ""), api)).unwrap()
}

fn request(name: &str) -> AutomationRequest {
    AutomationRequest {
        name: Some(name.into()),
        workspace: Some(serde_json::json!({"blocks": []})),
        ..AutomationRequest::default()
    }
}

/// Requests the emulator answered 401, on any endpoint.
fn unauthorized(counters: &Counters) -> u64 {
    counters
        .by_endpoint
        .values()
        .filter_map(|e| e.by_status.get("401"))
        .sum()
}

/// Token outcomes a client reported, and when.
#[derive(Debug, Default)]
struct TokenLog(Mutex<Vec<(TokenOutcome, Instant)>>);

impl TokenLog {
    fn count(&self, outcome: TokenOutcome) -> usize {
        self.times(outcome).len()
    }

    fn times(&self, outcome: TokenOutcome) -> Vec<Instant> {
        self.0
            .lock()
            .unwrap()
            .iter()
            .filter(|(o, _)| *o == outcome)
            .map(|(_, at)| *at)
            .collect()
    }
}

impl Telemetry for TokenLog {
    fn answered(&self, _: &Caller, _: Tier, _: Endpoint, _: Answer) {}

    fn waited(&self, _: &Caller, _: Tier, _: Duration) {}

    fn budget(&self, _: &Caller, _: Tier, _: Budget) {}

    fn token(&self, _: &Caller, outcome: TokenOutcome) {
        self.0.lock().unwrap().push((outcome, Instant::now()));
    }
}

/// Whether `text` holds a run of `len` or more ASCII letters and digits: what an access token
/// (or any other long random credential) would look like.
fn has_token_like_run(text: &str, len: usize) -> bool {
    text.split(|c: char| !c.is_ascii_alphanumeric())
        .any(|word| word.len() >= len)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_token_serves_many_concurrent_calls_and_clones() {
    let emu = emulator(|_| {}).await;
    let log = Arc::new(TokenLog::default());
    let mut cfg = config(&emu, oauth(SECRET, ""), Api::Workflows);
    cfg.telemetry = Some(log.clone());
    let bot = QlikClient::new(cfg).unwrap();
    assert!(bot.credential().is_bot());
    assert_eq!(emu.counters().token_requests, 0, "no token before a call");

    let calls: Vec<_> = (0..24)
        .map(|i| {
            let c = bot.clone();
            tokio::spawn(async move {
                if i % 2 == 0 {
                    let a = c.create_automation(&request(&format!("a{i}"))).await?;
                    assert_eq!(a.owner_id.as_deref(), Some(BOT));
                } else {
                    let settings = c.get_settings().await?;
                    assert_eq!(settings.max_concurrent_runs_per_automation, Some(10));
                }
                Ok::<_, QlikError>(())
            })
        })
        .collect();
    for call in calls {
        call.await.unwrap().unwrap();
    }
    // And later calls keep using it.
    for _ in 0..5 {
        bot.clone()
            .list_automations_page(&ListParams::default())
            .await
            .unwrap();
    }

    let counters = emu.counters();
    assert_eq!(counters.tokens_issued, 1, "{counters:?}");
    assert_eq!(counters.token_requests, 1, "{counters:?}");
    assert_eq!(counters.by_user.get(BOT).copied(), Some(29), "{counters:?}");
    assert_eq!(unauthorized(&counters), 0);
    assert_eq!(log.count(TokenOutcome::Issued), 1);
    assert_eq!(emu.automations().len(), 12);
}

#[tokio::test]
async fn the_bot_acts_as_a_tenant_admin_in_both_generations() {
    let emu = emulator(|_| {}).await;
    let wf = bot(&emu, Api::Workflows);
    let v1 = bot(&emu, Api::V1);
    let alice = QlikClient::new({
        let mut c = config(&emu, ApiKey::new(ALICE).into(), Api::Workflows);
        c.retry = RetryPolicy::none();
        c
    })
    .unwrap();
    let alices = alice.create_automation(&request("alices")).await.unwrap();

    let made_wf = wf.create_automation(&request("bot-wf")).await.unwrap();
    assert_eq!(made_wf.owner_id.as_deref(), Some(BOT));
    let made_v1 = v1.create_automation(&request("bot-v1")).await.unwrap();
    assert_eq!(made_v1.owner_id.as_deref(), Some(BOT));
    assert_eq!(
        v1.get_automation(&made_wf.id)
            .await
            .unwrap()
            .owner_id
            .as_deref(),
        Some(BOT)
    );

    // listAll is allowed to a bot; without it the bot sees its own.
    let names = |c: QlikClient, params: ListParams| async move {
        c.list_automations(&params.sort(Sort::asc("name")))
            .map_ok(|a| a.name.unwrap_or_default())
            .try_collect::<Vec<_>>()
            .await
            .unwrap()
    };
    assert_eq!(
        names(wf.clone(), ListParams::default().list_all()).await,
        ["alices", "bot-v1", "bot-wf"]
    );
    assert_eq!(
        names(wf.clone(), ListParams::default()).await,
        ["bot-v1", "bot-wf"]
    );
    assert_eq!(
        names(v1.clone(), ListParams::default()).await,
        ["alices", "bot-v1", "bot-wf"],
        "a v1 admin lists the tenant"
    );

    // Admin rights: the bot runs and hands over anyone's automation.
    let run = wf
        .create_run(&alices.id, &RunRequest::api(None))
        .await
        .unwrap();
    assert!(!run.id.is_empty());
    wf.set_owner(&made_wf.id, "alice").await.unwrap();
    v1.set_owner(&made_v1.id, "alice").await.unwrap();
    for id in [&made_wf.id, &made_v1.id] {
        assert_eq!(
            alice.get_automation(id).await.unwrap().owner_id.as_deref(),
            Some("alice")
        );
    }

    let counters = emu.counters();
    assert_eq!(counters.endpoint(Endpoint::ChangeOwner), 1);
    assert_eq!(counters.endpoint(Endpoint::MoveAutomation), 1);
    assert_eq!(counters.api(Api::V1), 4, "{counters:?}");
    assert_eq!(counters.api(Api::Workflows), 8, "{counters:?}");
    assert_eq!(counters.by_user.get(BOT).copied(), Some(9), "{counters:?}");
    assert_eq!(unauthorized(&counters), 0);
    // One token per client (each generation's client has its own).
    assert_eq!(counters.tokens_issued, 2, "{counters:?}");
    // The bot's answers on v1 carry the deprecation notice like anyone's.
    assert!(v1.take_deprecation_notice().is_some());
    assert!(wf.take_deprecation_notice().is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn expired_tokens_are_renewed_transparently_with_one_new_token() {
    let emu = emulator(|_| {}).await;
    for api in Api::ALL {
        emu.reset_counters();
        let bot = bot(&emu, api);
        let a = bot.create_automation(&request("renewed")).await.unwrap();
        assert_eq!(emu.counters().tokens_issued, 1);

        // The tenant forgets every token (in-process once, through the control endpoint
        // once): the next calls meet a 401 each, renew once between them, and succeed.
        match api {
            Api::Workflows => emu.expire_tokens(),
            Api::V1 => {
                let expired = reqwest::Client::new()
                    .post(format!("{}/_emulator/oauth/expire", emu.base_url()))
                    .send()
                    .await
                    .unwrap();
                assert_eq!(expired.status().as_u16(), 204);
            }
        }
        let calls: Vec<_> = (0..10)
            .map(|_| {
                let c = bot.clone();
                let id = a.id.clone();
                tokio::spawn(async move { c.get_automation(&id).await })
            })
            .collect();
        for call in calls {
            let got = call.await.unwrap().unwrap();
            assert_eq!(got.id, a.id);
        }
        let counters = emu.counters();
        assert_eq!(counters.tokens_issued, 2, "{api}: {counters:?}");
        assert_eq!(counters.token_requests, 2, "{api}: {counters:?}");
        let refused = counters.endpoint_status(Endpoint::GetAutomation, 401);
        assert!((1..=10).contains(&refused), "{api}: {counters:?}");
        assert_eq!(
            counters.endpoint_status(Endpoint::GetAutomation, 200),
            10,
            "{api}: every call succeeded"
        );

        // The new token stands: no more 401s, no more tokens.
        emu.reset_counters();
        bot.delete_automation(&a.id).await.unwrap();
        let counters = emu.counters();
        assert_eq!((counters.tokens_issued, unauthorized(&counters)), (0, 0));
    }
}

#[tokio::test]
async fn a_token_refused_twice_is_reported_as_unauthorized_after_one_renewal() {
    let emu = emulator(|_| {}).await;
    let bot = bot(&emu, Api::Workflows);
    bot.get_settings().await.unwrap();
    emu.reset_counters();
    // Every request is refused with a 401 whatever the token.
    emu.set_faults(FaultConfig {
        rules: vec![FaultRule {
            endpoint: Some(Endpoint::GetSettings.name().into()),
            error_rate: 1.0,
            status: 401,
            ..FaultRule::default()
        }],
    });
    let err = bot.get_settings().await.unwrap_err();
    assert_eq!(err.class(), ErrorClass::Unauthorized, "{err:?}");
    assert_eq!(err.status(), Some(401));
    let counters = emu.counters();
    assert_eq!(
        counters.endpoint(Endpoint::GetSettings),
        2,
        "one renewal, then believed: {counters:?}"
    );
    assert_eq!(counters.tokens_issued, 1, "{counters:?}");

    // An API key is not renewed: one request.
    let alice = QlikClient::new(config(&emu, ApiKey::new(ALICE).into(), Api::Workflows)).unwrap();
    emu.reset_counters();
    assert_eq!(
        alice.get_settings().await.unwrap_err().class(),
        ErrorClass::Unauthorized
    );
    let counters = emu.counters();
    assert_eq!(counters.endpoint(Endpoint::GetSettings), 1);
    assert_eq!(counters.token_requests, 0);
}

#[tokio::test]
async fn tokens_are_renewed_before_they_expire() {
    // Tokens live 3 s; the client renews them 0.3 s before: calls over more than three
    // lifetimes never meet an expired token.
    let emu = emulator(|c| c.oauth_token_ttl = Duration::from_secs(3)).await;
    let log = Arc::new(TokenLog::default());
    let mut cfg = config(&emu, oauth(SECRET, ""), Api::Workflows);
    cfg.telemetry = Some(log.clone());
    let bot = QlikClient::new(cfg).unwrap();
    let started = Instant::now();
    let mut calls = 0;
    while started.elapsed() < Duration::from_millis(10_500) {
        bot.get_settings().await.unwrap();
        calls += 1;
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let counters = emu.counters();
    assert_eq!(unauthorized(&counters), 0, "{counters:?}");
    assert_eq!(counters.endpoint(Endpoint::GetSettings), calls);
    // One token per lifetime (less the renewal margin): 10.5 s / 2.7 s, at most; fewer when
    // a loaded machine delays the calls (a token is renewed at the first call after 2.7 s).
    assert!(
        (3..=5).contains(&counters.tokens_issued),
        "{} tokens in {calls} calls",
        counters.tokens_issued
    );
    assert_eq!(counters.token_requests, counters.tokens_issued);
    assert_eq!(
        log.count(TokenOutcome::Issued) as u64,
        counters.tokens_issued
    );
    // No token was replaced before its renewal time (2.7 s); that none was used after its
    // 3 s is what the zero 401s above show, whatever the machine's load.
    let issued = log.times(TokenOutcome::Issued);
    for pair in issued.windows(2) {
        let lived = pair[1] - pair[0];
        assert!(
            lived >= Duration::from_millis(2_600),
            "a token was replaced after only {lived:?}"
        );
    }
}

#[tokio::test]
async fn a_wrong_secret_is_unauthorized_never_shown_and_not_asked_again_per_call() {
    let emu = emulator(|_| {}).await;
    let wrong = "wr0ng-Secret-Kx93Jd";
    let log = Arc::new(TokenLog::default());
    let mut cfg = config(&emu, oauth(wrong, ""), Api::Workflows);
    cfg.telemetry = Some(log.clone());
    let bot = QlikClient::new(cfg.clone()).unwrap();

    let err = bot.get_settings().await.unwrap_err();
    assert_eq!(err.class(), ErrorClass::Unauthorized, "{err:?}");
    assert_eq!(err.status(), Some(401));
    assert!(
        matches!(&err, QlikError::Token { client_id, .. } if client_id == CLIENT_ID),
        "{err:?}"
    );
    let shown = format!("{err} {err:?} {bot:?} {cfg:?} {:?}", bot.credential());
    assert!(shown.contains("invalid_client"), "Qlik's words: {shown}");
    assert!(!shown.contains(wrong), "{shown}");
    assert!(!shown.contains(SECRET), "{shown}");

    // Twenty calls in a row are answered from memory.
    for _ in 0..20 {
        let again = bot.create_automation(&request("never")).await.unwrap_err();
        assert_eq!(again.class(), ErrorClass::Unauthorized);
        assert!(!again.to_string().contains(wrong));
    }
    let counters = emu.counters();
    assert!((1..=2).contains(&counters.token_requests), "{counters:?}");
    assert_eq!(counters.tokens_issued, 0);
    assert_eq!(counters.total, 0, "no API call went out without a token");
    assert_eq!(
        log.count(TokenOutcome::Refused) as u64,
        counters.token_requests
    );

    // After the first pause (1 s, up to 25 % more) one call asks again, once; the next pause
    // is longer.
    tokio::time::sleep(Duration::from_millis(1_300)).await;
    let before = emu.counters().token_requests;
    for _ in 0..5 {
        bot.get_settings().await.unwrap_err();
    }
    assert_eq!(emu.counters().token_requests, before + 1);
    assert!(emu.automations().is_empty());
}

#[tokio::test]
async fn a_scope_without_admin_automations_is_refused_as_unauthorized() {
    let emu = emulator(|_| {}).await;
    let bot = QlikClient::new(config(&emu, oauth(SECRET, "user_default"), Api::V1)).unwrap();
    let err = bot.get_settings().await.unwrap_err();
    assert_eq!(err.class(), ErrorClass::Unauthorized, "{err:?}");
    assert_eq!(err.status(), Some(400));
    assert!(err.to_string().contains("invalid_scope"), "{err}");
    assert!(!format!("{err:?}").contains(SECRET));
    let counters = emu.counters();
    assert_eq!((counters.token_requests, counters.total), (1, 0));

    // Asking for it among others is fine.
    let bot = QlikClient::new(config(
        &emu,
        oauth(SECRET, "openid admin.automations"),
        Api::V1,
    ))
    .unwrap();
    bot.get_settings().await.unwrap();
}

#[tokio::test]
async fn debug_output_never_shows_the_secret_or_the_token() {
    let emu = emulator(|_| {}).await;
    let cfg = config(&emu, oauth(SECRET, ""), Api::Workflows);
    let bot = QlikClient::new(cfg.clone()).unwrap();
    // With a token in hand.
    let a = bot.create_automation(&request("shown")).await.unwrap();
    assert_eq!(emu.counters().tokens_issued, 1);
    // And an error from the API as the bot.
    let not_found = bot.get_automation("no-such-automation").await.unwrap_err();
    assert_eq!(not_found.class(), ErrorClass::NotFound);

    let shown = format!(
        "{bot:?} {cfg:?} {:?} {not_found:?} {not_found} {:?}",
        bot.credential(),
        bot.clone()
    );
    assert!(!shown.contains(SECRET), "{shown}");
    assert!(
        shown.contains(CLIENT_ID),
        "the client id is no secret: {shown}"
    );
    // Access tokens are 48 random letters and digits (trace ids 32 hex digits); nothing of
    // the kind is shown.
    assert!(!has_token_like_run(&shown, 40), "{shown}");
    assert_eq!(a.owner_id.as_deref(), Some(BOT));

    // The detector does see a token: one granted to the same client by hand.
    let granted: serde_json::Value = reqwest::Client::new()
        .post(format!("{}/oauth/token", emu.base_url()))
        .json(&serde_json::json!({
            "client_id": CLIENT_ID,
            "client_secret": SECRET,
            "grant_type": "client_credentials",
        }))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let token = granted["access_token"].as_str().unwrap();
    assert!(has_token_like_run(token, 40), "{granted}");
    assert!(!shown.contains(token));
}
