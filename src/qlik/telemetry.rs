//! What the client reports about its traffic and its rate budget, to whoever counts it.
//!
//! The client knows every request it sends and the limiter knows the budget left, but this
//! module names no metrics library: a [`Telemetry`] given in
//! [`ClientConfig::telemetry`](super::ClientConfig::telemetry) (and so in a
//! [`ClientPool`](super::ClientPool)'s template) is told each observation, and the operator
//! turns them into Prometheus metrics. Each request is reported once, where it is sent.

use std::{borrow::Cow, fmt, time::Duration};

use url::Url;

use super::endpoint::{Api, Endpoint, Tier};

/// Receives the client's observations. Called on the request path, so implementations must
/// be quick and must not block (an atomic increment, a short lock).
pub trait Telemetry: Send + Sync + fmt::Debug {
    /// A request to `endpoint` was sent (each retry is a request of its own) and ended with
    /// `answer`.
    fn answered(&self, caller: &Caller, tier: Tier, endpoint: Endpoint, answer: Answer);

    /// A request of `tier` waited `wait` for its send slot in the rate limiter
    /// ([`Duration::ZERO`] when it could go at once).
    fn waited(&self, caller: &Caller, tier: Tier, wait: Duration);

    /// The limiter's budget of `tier` as it stands now: reported when the client is created,
    /// whenever a send slot is reserved and whenever a 429 blocks the tier.
    fn budget(&self, caller: &Caller, tier: Tier, budget: Budget);

    /// An OAuth token request ended with `outcome` (API-key callers never report this).
    fn token(&self, caller: &Caller, outcome: TokenOutcome) {
        let _ = (caller, outcome);
    }

    /// An answer of generation `api` carried a `Deprecation` or `Sunset` header; `sunset` is
    /// the `Sunset` header's value when there was one.
    fn deprecated(&self, caller: &Caller, api: Api, sunset: Option<&str>) {
        let _ = (caller, api, sunset);
    }
}

/// How an OAuth token request ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TokenOutcome {
    /// A token was issued.
    Issued,
    /// The tenant refused the grant (wrong client, secret or scope).
    Refused,
    /// The request failed (transport, 5xx, 429, unreadable answer).
    Failed,
}

impl TokenOutcome {
    /// A stable label for metrics.
    pub const fn label(self) -> &'static str {
        match self {
            TokenOutcome::Issued => "issued",
            TokenOutcome::Refused => "refused",
            TokenOutcome::Failed => "failed",
        }
    }
}

/// Whom a request is sent for: the tenant and the user, without the key.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Caller {
    /// The tenant's host, with the port when the URL names one: `acme.eu.qlikcloud.com`,
    /// `127.0.0.1:18080`.
    pub tenant: String,
    /// A short digest of the API key (16 hex digits), the same as in
    /// [`QlikClient::identity`](super::QlikClient::identity); never the key itself.
    pub identity: String,
}

impl Caller {
    /// The caller of the tenant whose API base is `base`, as the user of `api_key`.
    pub fn new(base: &Url, api_key: &str) -> Caller {
        Caller {
            tenant: tenant_of(base),
            identity: key_digest(api_key),
        }
    }
}

/// The host of `url`, with its port when it has a non-default one.
pub fn tenant_of(url: &Url) -> String {
    let host = url.host_str().unwrap_or_default();
    match url.port() {
        Some(port) => format!("{host}:{port}"),
        None => host.to_owned(),
    }
}

/// The first 8 bytes of the key's SHA-256, in hex: tells keys apart without revealing them.
pub fn key_digest(api_key: &str) -> String {
    use sha2::{Digest, Sha256};
    let digest = Sha256::digest(api_key.as_bytes());
    digest.iter().take(8).map(|b| format!("{b:02x}")).collect()
}

/// How a request that was sent ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Answer {
    /// The tenant answered with this HTTP status (whatever happened to the body after).
    Status(u16),
    /// No status came back: the connection failed or broke.
    Transport,
    /// No status came back in time.
    Timeout,
}

impl Answer {
    /// The status as a string (`"200"`, `"429"`), or `transport` / `timeout`.
    pub fn code(self) -> Cow<'static, str> {
        match self {
            Answer::Status(status) => Cow::Owned(status.to_string()),
            Answer::Transport => Cow::Borrowed("transport"),
            Answer::Timeout => Cow::Borrowed("timeout"),
        }
    }

    /// Whether the tenant refused the request for its rate limit (429).
    pub fn is_rate_limited(self) -> bool {
        self == Answer::Status(429)
    }
}

/// What the limiter believes is left of one tier's budget.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Budget {
    /// Requests that may still go out in the current window (0 while a 429 blocks the tier);
    /// see [`RateLimiter::remaining`](super::RateLimiter::remaining).
    pub remaining: u32,
    /// The configured limit per window.
    pub limit: u32,
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;

    #[test]
    fn the_tenant_is_the_host_and_the_identity_a_digest() {
        let url = |s: &str| Url::parse(s).unwrap();
        assert_eq!(
            tenant_of(&url("https://acme.eu.qlikcloud.com/api/")),
            "acme.eu.qlikcloud.com"
        );
        assert_eq!(
            tenant_of(&url("http://127.0.0.1:18080/api/")),
            "127.0.0.1:18080"
        );
        assert_eq!(tenant_of(&url("https://[::1]:8443/api/")), "[::1]:8443");
        let caller = Caller::new(&url("https://t.example.com/api/"), "k-secret");
        assert_eq!(caller.identity.len(), 16);
        assert!(caller.identity.chars().all(|c| c.is_ascii_hexdigit()));
        assert_ne!(caller.identity, key_digest("k-other"));
        assert!(!caller.identity.contains("secret"));
    }

    /// Records every observation.
    #[derive(Debug, Default)]
    struct Recorded {
        answers: std::sync::Mutex<Vec<(Caller, Tier, Endpoint, Answer)>>,
        waits: std::sync::Mutex<Vec<(Tier, Duration)>>,
        budgets: std::sync::Mutex<Vec<(Tier, Budget)>>,
    }

    impl Telemetry for Recorded {
        fn answered(&self, caller: &Caller, tier: Tier, endpoint: Endpoint, answer: Answer) {
            let entry = (caller.clone(), tier, endpoint, answer);
            self.answers.lock().unwrap().push(entry);
        }
        fn waited(&self, _: &Caller, tier: Tier, wait: Duration) {
            self.waits.lock().unwrap().push((tier, wait));
        }
        fn budget(&self, _: &Caller, tier: Tier, budget: Budget) {
            self.budgets.lock().unwrap().push((tier, budget));
        }
    }

    #[tokio::test]
    async fn every_request_sent_is_reported_once_with_what_the_tenant_answered() {
        use crate::emulator::{self, EmulatorConfig, FaultConfig, FaultRule, RunningEmulator};
        use crate::qlik::{ApiKey, ClientConfig, ListParams, QlikClient, RetryPolicy};

        let emu = RunningEmulator::start(EmulatorConfig {
            keys: vec![emulator::ApiKey::user("telemetry-key-1", "u1")],
            faults: FaultConfig {
                rules: vec![
                    FaultRule::on(Endpoint::ListAutomations)
                        .with_rate_limit(1.0)
                        .times(1),
                    FaultRule::on(Endpoint::GetAutomation)
                        .with_error(1.0, 503)
                        .times(1),
                ],
            },
            // One-minute windows on both sides: the budgets below are per-minute figures.
            rate_window: Duration::from_secs(60),
            ..EmulatorConfig::default()
        })
        .await
        .unwrap();
        let recorded = Arc::new(Recorded::default());
        let client = |key: &str| {
            let mut config = ClientConfig::new(emu.base_url(), ApiKey::new(key));
            config.rate_limits.window = Duration::from_secs(60);
            config.telemetry = Some(recorded.clone());
            config.retry = RetryPolicy {
                base_delay: Duration::from_millis(1),
                ..RetryPolicy::default()
            };
            QlikClient::new(config).unwrap()
        };
        let good = client("telemetry-key-1");
        // A 429 (retried after the limiter's block), then the list.
        good.list_automations_page(&ListParams::default())
            .await
            .unwrap();
        // A 503 (retried), then a 404.
        assert!(good.get_automation("nope").await.is_err());
        // A refused key.
        assert!(client("telemetry-revoked").get_settings().await.is_err());
        // Nothing listens: no status at all.
        let closed = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            l.local_addr().unwrap()
        };
        let mut config = ClientConfig::new(format!("http://{closed}"), ApiKey::new("k"));
        config.telemetry = Some(recorded.clone());
        config.retry = RetryPolicy::none();
        assert!(
            QlikClient::new(config)
                .unwrap()
                .get_settings()
                .await
                .is_err()
        );

        let answers = recorded.answers.lock().unwrap().clone();
        let codes: Vec<(String, Endpoint, String)> = answers
            .iter()
            .map(|(c, _, e, a)| (c.identity.clone(), *e, a.code().into_owned()))
            .collect();
        let me = good.caller().identity.clone();
        let revoked = key_digest("telemetry-revoked");
        let s = |x: &str| x.to_owned();
        assert_eq!(
            codes,
            vec![
                (me.clone(), Endpoint::ListAutomations, s("429")),
                (me.clone(), Endpoint::ListAutomations, s("200")),
                (me.clone(), Endpoint::GetAutomation, s("503")),
                (me.clone(), Endpoint::GetAutomation, s("404")),
                (revoked, Endpoint::GetSettings, s("401")),
                (key_digest("k"), Endpoint::GetSettings, s("transport")),
            ]
        );
        for (caller, tier, endpoint, _) in &answers {
            assert_eq!(*tier, endpoint.tier());
            assert!(!caller.identity.contains("telemetry"));
        }
        assert_eq!(answers[0].0.tenant, emu.addr().to_string());
        // Exactly what the tenant counted (the unreachable one aside).
        let counters = emu.counters();
        assert_eq!(counters.total, 5);
        assert_eq!(counters.endpoint_status(Endpoint::ListAutomations, 429), 1);
        // One wait per request; the one after the 429 waited for the block.
        let waits = recorded.waits.lock().unwrap().clone();
        assert_eq!(waits.len(), answers.len());
        assert!(waits[1].1 >= Duration::from_millis(900), "{waits:?}");
        assert_eq!(waits[0].1, Duration::ZERO);
        // The budget: the whole of it at creation, one less per slot, 0 after the 429 and
        // for the slot reserved behind its block, then what is left once the block ended.
        let budgets = recorded.budgets.lock().unwrap().clone();
        let t1 = |remaining| {
            (
                Tier::Tier1,
                Budget {
                    remaining,
                    limit: 1000,
                },
            )
        };
        assert_eq!(
            budgets[..6],
            [
                t1(1000),
                (
                    Tier::Tier2,
                    Budget {
                        remaining: 100,
                        limit: 100
                    }
                ),
                t1(999),
                t1(0),
                t1(0),
                t1(998),
            ]
        );
        emu.shutdown().await;
    }

    #[test]
    fn codes_are_statuses_or_what_went_wrong() {
        assert_eq!(Answer::Status(201).code(), "201");
        assert_eq!(Answer::Transport.code(), "transport");
        assert_eq!(Answer::Timeout.code(), "timeout");
        assert!(Answer::Status(429).is_rate_limited());
        assert!(!Answer::Status(503).is_rate_limited());
    }
}
