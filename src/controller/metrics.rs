//! Prometheus metrics of the operator: reconciles, remote writes, leadership, the objects by
//! `Ready` status, and Qlik's rate budget, fed by the client through
//! [`Telemetry`] (one report per request, where it is sent).
//!
//! Every name carries the prefix `qlik_automations_operator_`; README.md ("Metrics") lists
//! them with their labels.

use std::{
    collections::{HashMap, VecDeque},
    fmt,
    sync::Mutex,
    time::{Duration, Instant},
};

use prometheus_client::{
    encoding::{EncodeLabelSet, text::encode},
    metrics::{counter::Counter, family::Family, gauge::Gauge, histogram::Histogram},
    registry::Registry,
};

use crate::{
    crd::ConditionStatus,
    qlik::{Answer, Api, Budget, Caller, Endpoint, Telemetry, Tier, TokenOutcome},
};

/// Labels of a reconcile outcome.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ReconcileLabels {
    /// `QlikAutomation` or `QlikAutomationSettings`.
    pub kind: String,
    /// `success` or the failure's condition reason.
    pub result: String,
}

/// Labels of what is measured per kind.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct KindLabels {
    /// `QlikAutomation` or `QlikAutomationSettings`.
    pub kind: String,
}

/// Labels of a remote write.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct WriteLabels {
    /// `create`, `update`, `enable`, `disable`, `move`, `delete`, `copy`, `run`, `settings`.
    pub action: String,
}

/// Labels of a request sent to Qlik.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RequestLabels {
    /// The tenant's host (and port, when the URL names one).
    pub tenant: String,
    /// The short digest of the API key (never the key).
    pub identity: String,
    /// `tier1` or `tier2`.
    pub tier: String,
    /// The endpoint's name, e.g. `list_automations`.
    pub endpoint: String,
    /// The HTTP status, or `transport` / `timeout` when none came back.
    pub code: String,
}

/// Labels of one rate-limit tier of one tenant and key: Qlik's unit of rate budget.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct TierLabels {
    /// The tenant's host (and port, when the URL names one).
    pub tenant: String,
    /// The short digest of the API key (never the key).
    pub identity: String,
    /// `tier1` or `tier2`.
    pub tier: String,
}

impl TierLabels {
    fn of(caller: &Caller, tier: Tier) -> TierLabels {
        TierLabels {
            tenant: caller.tenant.clone(),
            identity: caller.identity.clone(),
            tier: tier.label().to_owned(),
        }
    }
}

/// Labels of an OAuth token request.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct TokenLabels {
    /// The tenant's host (and port, when the URL names one).
    pub tenant: String,
    /// The short digest of the OAuth client id.
    pub identity: String,
    /// `issued`, `refused` or `failed`.
    pub outcome: String,
}

/// Labels of answers that announced the deprecation of an API generation.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct DeprecationLabels {
    /// The tenant's host (and port, when the URL names one).
    pub tenant: String,
    /// `v1` or `workflows`.
    pub api: String,
}

/// Labels of the objects gauge.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ObjectLabels {
    /// `QlikAutomation` or `QlikAutomationSettings`.
    pub kind: String,
    /// The `Ready` condition's status: `True` or `False`.
    pub ready: String,
    /// The `Ready` condition's reason, e.g. `Synced` or `Unauthorized`.
    pub reason: String,
}

/// A histogram family whose histograms all have the same buckets.
pub type HistogramFamily<L> = Family<L, Histogram, fn() -> Histogram>;

/// Buckets of reconcile durations, in seconds.
const RECONCILE_BUCKETS: [f64; 11] = [0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0];

/// Buckets of waits for a send slot, in seconds: `0` (sent at once) to five minutes.
const WAIT_BUCKETS: [f64; 15] = [
    0.0, 0.005, 0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0,
];

/// The metrics registry and the handles reconciles and the Qlik clients update.
pub struct Metrics {
    registry: Registry,
    /// Reconciles by kind and result.
    pub reconciles: Family<ReconcileLabels, Counter>,
    /// Reconcile durations in seconds, by kind.
    pub reconcile_seconds: HistogramFamily<KindLabels>,
    /// Remote writes by action.
    pub writes: Family<WriteLabels, Counter>,
    /// 1 while this replica leads (or leader election is off).
    pub leader: Gauge,
    /// Requests sent to Qlik, each retry included.
    pub qlik_requests: Family<RequestLabels, Counter>,
    /// Requests Qlik answered 429.
    pub qlik_rate_limited: Family<TierLabels, Counter>,
    /// Requests Qlik answered 429 in the last hour: what `kubectl qlik status` shows, which
    /// reads one scrape and so cannot take a rate of the counter.
    pub qlik_rate_limited_last_hour: Family<TierLabels, Gauge>,
    /// How long requests waited for a send slot in the limiter, in seconds.
    pub rate_limit_wait: HistogramFamily<TierLabels>,
    /// What the limiter believes is left in the current window.
    pub rate_budget_remaining: Family<TierLabels, Gauge>,
    /// The configured limit per window.
    pub rate_budget_limit: Family<TierLabels, Gauge>,
    /// Objects by kind and `Ready` status and reason.
    pub objects: Family<ObjectLabels, Gauge>,
    /// OAuth token requests by outcome.
    pub oauth_tokens: Family<TokenLabels, Counter>,
    /// Answers carrying `Deprecation`/`Sunset` headers, by tenant and generation.
    pub deprecated_answers: Family<DeprecationLabels, Counter>,
    /// The labels each object is counted under in `objects`, by (kind, `namespace/name`),
    /// and when it was last reported.
    counted: Mutex<HashMap<(String, String), (ObjectLabels, Instant)>>,
    /// The 429s of the last hour per tier, by minute since `started`.
    recent_429s: Mutex<HashMap<TierLabels, VecDeque<(u64, u64)>>>,
    /// When these metrics began: minute 0 of `recent_429s`.
    started: Instant,
}

impl fmt::Debug for Metrics {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Metrics").finish_non_exhaustive()
    }
}

impl Default for Metrics {
    fn default() -> Self {
        let mut registry = Registry::with_prefix("qlik_automations_operator");
        let reconciles = Family::<ReconcileLabels, Counter>::default();
        registry.register(
            "reconciles",
            "Reconciles by kind and result",
            reconciles.clone(),
        );
        let reconcile_seconds: HistogramFamily<KindLabels> =
            Family::new_with_constructor(|| Histogram::new(RECONCILE_BUCKETS));
        registry.register(
            "reconcile_duration_seconds",
            "How long reconciles take, by kind",
            reconcile_seconds.clone(),
        );
        let writes = Family::<WriteLabels, Counter>::default();
        registry.register(
            "remote_writes",
            "Writes sent to Qlik by action",
            writes.clone(),
        );
        let leader = Gauge::default();
        registry.register("leader", "1 while this replica reconciles", leader.clone());
        let qlik_requests = Family::<RequestLabels, Counter>::default();
        registry.register(
            "qlik_requests",
            "Requests sent to Qlik (each retry counts), by tenant, key digest, tier, endpoint and HTTP status (or transport/timeout)",
            qlik_requests.clone(),
        );
        let qlik_rate_limited = Family::<TierLabels, Counter>::default();
        registry.register(
            "qlik_rate_limited",
            "Requests Qlik answered 429, by tenant, key digest and tier",
            qlik_rate_limited.clone(),
        );
        let qlik_rate_limited_last_hour = Family::<TierLabels, Gauge>::default();
        registry.register(
            "qlik_rate_limited_last_hour",
            "Requests Qlik answered 429 in the last hour (to the minute), by tenant, key digest and tier",
            qlik_rate_limited_last_hour.clone(),
        );
        let rate_limit_wait: HistogramFamily<TierLabels> =
            Family::new_with_constructor(|| Histogram::new(WAIT_BUCKETS));
        registry.register(
            "rate_limit_wait_seconds",
            "How long each request waited for a send slot in the client-side rate limiter",
            rate_limit_wait.clone(),
        );
        let rate_budget_remaining = Family::<TierLabels, Gauge>::default();
        registry.register(
            "rate_budget_remaining",
            "Requests the rate limiter believes are left in the current window (0 while a 429 blocks the tier)",
            rate_budget_remaining.clone(),
        );
        let rate_budget_limit = Family::<TierLabels, Gauge>::default();
        registry.register(
            "rate_budget_limit",
            "The configured rate limit per window",
            rate_budget_limit.clone(),
        );
        let objects = Family::<ObjectLabels, Gauge>::default();
        registry.register(
            "objects",
            "Objects by kind and the status and reason of their Ready condition",
            objects.clone(),
        );
        let oauth_tokens = Family::<TokenLabels, Counter>::default();
        registry.register(
            "oauth_token_requests",
            "OAuth2 client-credentials token requests, by tenant, client digest and outcome (issued, refused, failed)",
            oauth_tokens.clone(),
        );
        let deprecated_answers = Family::<DeprecationLabels, Counter>::default();
        registry.register(
            "qlik_deprecated_answers",
            "Qlik answers carrying Deprecation or Sunset headers, by tenant and API generation",
            deprecated_answers.clone(),
        );
        Metrics {
            registry,
            oauth_tokens,
            deprecated_answers,
            reconciles,
            reconcile_seconds,
            writes,
            leader,
            qlik_requests,
            qlik_rate_limited,
            qlik_rate_limited_last_hour,
            rate_limit_wait,
            rate_budget_remaining,
            rate_budget_limit,
            objects,
            counted: Mutex::new(HashMap::new()),
            recent_429s: Mutex::new(HashMap::new()),
            started: Instant::now(),
        }
    }
}

impl Metrics {
    /// Counts a reconcile.
    pub fn reconciled(&self, kind: &str, result: &str, seconds: f64) {
        self.reconciles
            .get_or_create(&ReconcileLabels {
                kind: kind.to_owned(),
                result: result.to_owned(),
            })
            .inc();
        self.reconcile_seconds
            .get_or_create(&KindLabels {
                kind: kind.to_owned(),
            })
            .observe(seconds);
    }

    /// Counts a remote write.
    pub fn wrote(&self, action: &str) {
        self.writes
            .get_or_create(&WriteLabels {
                action: action.to_owned(),
            })
            .inc();
    }

    /// Counts the object `object` (`namespace/name`) of `kind` under its `Ready` status and
    /// reason, moving it from what it was counted under before; `None` stops counting it
    /// (the object is gone).
    pub fn object_ready(&self, kind: &str, object: &str, ready: Option<(ConditionStatus, &str)>) {
        let key = (kind.to_owned(), object.to_owned());
        let mut counted = self.counted.lock().unwrap_or_else(|e| e.into_inner());
        let Some((status, reason)) = ready else {
            if let Some((old, _)) = counted.remove(&key) {
                self.objects.get_or_create(&old).dec();
            }
            return;
        };
        let labels = ObjectLabels {
            kind: kind.to_owned(),
            ready: status_label(status).to_owned(),
            reason: reason.to_owned(),
        };
        let now = Instant::now();
        match counted.get_mut(&key) {
            Some((old, at)) => {
                if *old != labels {
                    self.objects.get_or_create(old).dec();
                    self.objects.get_or_create(&labels).inc();
                    *old = labels;
                }
                *at = now;
            }
            None => {
                self.objects.get_or_create(&labels).inc();
                counted.insert(key, (labels, now));
            }
        }
    }

    /// Stops counting the objects of `kind` that `live` says are gone, except those reported
    /// at or after `listed_at`, the time the caller listed what is live (an object created
    /// and reconciled since may be missing from that list).
    pub fn retain_objects(&self, kind: &str, listed_at: Instant, live: impl Fn(&str) -> bool) {
        let mut counted = self.counted.lock().unwrap_or_else(|e| e.into_inner());
        counted.retain(|(k, object), (labels, at)| {
            let keep = k != kind || *at >= listed_at || live(object);
            if !keep {
                self.objects.get_or_create(labels).dec();
            }
            keep
        });
    }

    /// Counts a 429 at `at` in the last-hour gauge of `labels`.
    fn rate_limited_at(&self, labels: TierLabels, at: Instant) {
        let minute = self.minute(at);
        let mut recent = self.recent_429s.lock().unwrap_or_else(|e| e.into_inner());
        let minutes = recent.entry(labels).or_default();
        match minutes.back_mut() {
            Some((m, count)) if *m == minute => *count += 1,
            _ => minutes.push_back((minute, 1)),
        }
        drop(recent);
        self.refresh_last_hour(at);
    }

    /// Sets every last-hour gauge to the 429s of the 60 minutes up to `now` (the current
    /// minute included), forgetting older minutes.
    fn refresh_last_hour(&self, now: Instant) {
        let oldest = self.minute(now).saturating_sub(59);
        let mut recent = self.recent_429s.lock().unwrap_or_else(|e| e.into_inner());
        for (labels, minutes) in recent.iter_mut() {
            while minutes.front().is_some_and(|(m, _)| *m < oldest) {
                minutes.pop_front();
            }
            let total: u64 = minutes.iter().map(|(_, count)| count).sum();
            self.qlik_rate_limited_last_hour
                .get_or_create(labels)
                .set(i64::try_from(total).unwrap_or(i64::MAX));
        }
    }

    /// Whole minutes from `started` to `at`.
    fn minute(&self, at: Instant) -> u64 {
        at.saturating_duration_since(self.started).as_secs() / 60
    }

    /// The Prometheus text exposition of every metric.
    pub fn render(&self) -> String {
        self.refresh_last_hour(Instant::now());
        let mut out = String::new();
        // Writing into a String cannot fail.
        let _ = encode(&mut out, &self.registry);
        out
    }
}

/// The label of a condition status: `True`, `False` or `Unknown`.
fn status_label(status: ConditionStatus) -> &'static str {
    match status {
        ConditionStatus::True => "True",
        ConditionStatus::False => "False",
        ConditionStatus::Unknown => "Unknown",
    }
}

/// The Qlik clients' observations, as the `qlik_*`, `rate_limit_*` and `rate_budget_*`
/// metrics.
impl Telemetry for Metrics {
    fn answered(&self, caller: &Caller, tier: Tier, endpoint: Endpoint, answer: Answer) {
        self.qlik_requests
            .get_or_create(&RequestLabels {
                tenant: caller.tenant.clone(),
                identity: caller.identity.clone(),
                tier: tier.label().to_owned(),
                endpoint: endpoint.name().to_owned(),
                code: answer.code().into_owned(),
            })
            .inc();
        if answer.is_rate_limited() {
            let labels = TierLabels::of(caller, tier);
            self.qlik_rate_limited.get_or_create(&labels).inc();
            self.rate_limited_at(labels, Instant::now());
        }
    }

    fn waited(&self, caller: &Caller, tier: Tier, wait: Duration) {
        self.rate_limit_wait
            .get_or_create(&TierLabels::of(caller, tier))
            .observe(wait.as_secs_f64());
    }

    fn budget(&self, caller: &Caller, tier: Tier, budget: Budget) {
        let labels = TierLabels::of(caller, tier);
        self.rate_budget_remaining
            .get_or_create(&labels)
            .set(i64::from(budget.remaining));
        self.rate_budget_limit
            .get_or_create(&labels)
            .set(i64::from(budget.limit));
    }

    fn token(&self, caller: &Caller, outcome: TokenOutcome) {
        self.oauth_tokens
            .get_or_create(&TokenLabels {
                tenant: caller.tenant.clone(),
                identity: caller.identity.clone(),
                outcome: outcome.label().to_owned(),
            })
            .inc();
    }

    fn deprecated(&self, caller: &Caller, api: Api, _sunset: Option<&str>) {
        self.deprecated_answers
            .get_or_create(&DeprecationLabels {
                tenant: caller.tenant.clone(),
                api: api.label().to_owned(),
            })
            .inc();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The value of the sample `name{labels}` in `text`, if it is there.
    fn sample(text: &str, name_and_labels: &str) -> Option<f64> {
        text.lines()
            .find_map(|l| l.strip_prefix(name_and_labels)?.strip_prefix(' '))
            .map(|v| v.trim().parse().unwrap())
    }

    fn objects(m: &Metrics, ready: &str, reason: &str) -> Option<f64> {
        sample(
            &m.render(),
            &format!(
                "qlik_automations_operator_objects{{kind=\"QlikAutomation\",ready=\"{ready}\",reason=\"{reason}\"}}"
            ),
        )
    }

    #[test]
    fn the_last_hour_of_429s_counts_to_the_minute_and_forgets_older_ones() {
        let m = Metrics::default();
        let labels = |tier: &str| TierLabels {
            tenant: "t.example".into(),
            identity: "abc".into(),
            tier: tier.into(),
        };
        let gauge = |m: &Metrics, tier: &str| {
            sample(
                &{
                    let mut out = String::new();
                    let _ = encode(&mut out, &m.registry);
                    out
                },
                &format!(
                    "qlik_automations_operator_qlik_rate_limited_last_hour{{tenant=\"t.example\",identity=\"abc\",tier=\"{tier}\"}}"
                ),
            )
        };
        let t0 = m.started;
        let minutes = |n: u64| t0 + Duration::from_secs(60 * n);
        m.rate_limited_at(labels("tier2"), minutes(0));
        m.rate_limited_at(labels("tier2"), minutes(0) + Duration::from_secs(30));
        m.rate_limited_at(labels("tier2"), minutes(10));
        m.rate_limited_at(labels("tier1"), minutes(30));
        assert_eq!(gauge(&m, "tier2"), Some(3.0));
        assert_eq!(gauge(&m, "tier1"), Some(1.0));
        // Minute 59 still holds minute 0; minute 60 no longer does.
        m.refresh_last_hour(minutes(59));
        assert_eq!(gauge(&m, "tier2"), Some(3.0));
        m.refresh_last_hour(minutes(60));
        assert_eq!(gauge(&m, "tier2"), Some(1.0));
        m.refresh_last_hour(minutes(89) + Duration::from_secs(59));
        assert_eq!(gauge(&m, "tier2"), Some(0.0));
        assert_eq!(gauge(&m, "tier1"), Some(1.0));
        m.refresh_last_hour(minutes(90));
        assert_eq!(gauge(&m, "tier1"), Some(0.0));
    }

    #[test]
    fn an_object_moves_between_reasons_and_is_forgotten_when_gone() {
        let m = Metrics::default();
        let a = "QlikAutomation";
        m.object_ready(a, "ns/one", Some((ConditionStatus::False, "Unauthorized")));
        m.object_ready(a, "ns/two", Some((ConditionStatus::True, "Synced")));
        assert_eq!(objects(&m, "False", "Unauthorized"), Some(1.0));
        assert_eq!(objects(&m, "True", "Synced"), Some(1.0));
        // The same report again changes nothing.
        m.object_ready(a, "ns/one", Some((ConditionStatus::False, "Unauthorized")));
        assert_eq!(objects(&m, "False", "Unauthorized"), Some(1.0));
        // Fixed: it moves.
        m.object_ready(a, "ns/one", Some((ConditionStatus::True, "Synced")));
        assert_eq!(objects(&m, "False", "Unauthorized"), Some(0.0));
        assert_eq!(objects(&m, "True", "Synced"), Some(2.0));
        // Another kind with the same namespace/name is another object.
        m.object_ready(
            "QlikAutomationSettings",
            "ns/one",
            Some((ConditionStatus::True, "Synced")),
        );
        assert_eq!(objects(&m, "True", "Synced"), Some(2.0));
        // Deleted: no longer counted; forgetting twice is harmless.
        m.object_ready(a, "ns/one", None);
        m.object_ready(a, "ns/one", None);
        assert_eq!(objects(&m, "True", "Synced"), Some(1.0));
        m.object_ready(a, "ns/two", None);
        assert_eq!(objects(&m, "True", "Synced"), Some(0.0));
        assert!(m.render().contains(
            "qlik_automations_operator_objects{kind=\"QlikAutomationSettings\",ready=\"True\",reason=\"Synced\"} 1"
        ));
    }

    #[test]
    fn objects_no_longer_listed_are_swept_unless_reported_since() {
        let m = Metrics::default();
        let a = "QlikAutomation";
        m.object_ready(a, "ns/kept", Some((ConditionStatus::True, "Synced")));
        m.object_ready(a, "ns/deleted", Some((ConditionStatus::True, "Synced")));
        m.object_ready(
            "QlikAutomationSettings",
            "ns/deleted",
            Some((ConditionStatus::True, "Synced")),
        );
        let listed_at = Instant::now();
        std::thread::sleep(Duration::from_millis(2));
        // Created and reconciled after the list was taken: kept although not in it.
        m.object_ready(
            a,
            "ns/new",
            Some((ConditionStatus::False, "TransientError")),
        );
        m.retain_objects(a, listed_at, |o| o == "ns/kept");
        assert_eq!(objects(&m, "True", "Synced"), Some(1.0));
        assert_eq!(objects(&m, "False", "TransientError"), Some(1.0));
        // Only the kind swept.
        assert!(m.render().contains(
            "qlik_automations_operator_objects{kind=\"QlikAutomationSettings\",ready=\"True\",reason=\"Synced\"} 1"
        ));
    }

    #[test]
    fn requests_429s_waits_and_budgets_are_labelled_by_tenant_key_and_tier() {
        let m = Metrics::default();
        let caller = Caller {
            tenant: "acme.eu.qlikcloud.com".into(),
            identity: "0123456789abcdef".into(),
        };
        let t = |tier: Tier| TierLabels::of(&caller, tier);
        m.answered(
            &caller,
            Tier::Tier1,
            Endpoint::ListAutomations,
            Answer::Status(200),
        );
        m.answered(
            &caller,
            Tier::Tier2,
            Endpoint::CreateAutomation,
            Answer::Status(429),
        );
        m.answered(
            &caller,
            Tier::Tier2,
            Endpoint::CreateAutomation,
            Answer::Timeout,
        );
        m.waited(&caller, Tier::Tier2, Duration::ZERO);
        m.waited(&caller, Tier::Tier2, Duration::from_secs(3));
        m.budget(
            &caller,
            Tier::Tier2,
            Budget {
                remaining: 0,
                limit: 100,
            },
        );
        assert_eq!(m.qlik_rate_limited.get_or_create(&t(Tier::Tier2)).get(), 1);
        assert_eq!(
            m.rate_budget_limit.get_or_create(&t(Tier::Tier2)).get(),
            100
        );
        assert_eq!(
            m.rate_budget_remaining.get_or_create(&t(Tier::Tier2)).get(),
            0
        );
        let text = m.render();
        let labels = "tenant=\"acme.eu.qlikcloud.com\",identity=\"0123456789abcdef\"";
        for (line, value) in [
            (
                format!(
                    "qlik_automations_operator_qlik_requests_total{{{labels},tier=\"tier1\",endpoint=\"list_automations\",code=\"200\"}}"
                ),
                1.0,
            ),
            (
                format!(
                    "qlik_automations_operator_qlik_requests_total{{{labels},tier=\"tier2\",endpoint=\"create_automation\",code=\"timeout\"}}"
                ),
                1.0,
            ),
            (
                format!(
                    "qlik_automations_operator_qlik_rate_limited_total{{{labels},tier=\"tier2\"}}"
                ),
                1.0,
            ),
            (
                format!(
                    "qlik_automations_operator_rate_limit_wait_seconds_count{{{labels},tier=\"tier2\"}}"
                ),
                2.0,
            ),
            (
                format!(
                    "qlik_automations_operator_rate_limit_wait_seconds_bucket{{le=\"0.0\",{labels},tier=\"tier2\"}}"
                ),
                1.0,
            ),
            (
                format!("qlik_automations_operator_rate_budget_limit{{{labels},tier=\"tier2\"}}"),
                100.0,
            ),
        ] {
            assert_eq!(sample(&text, &line), Some(value), "{line} in\n{text}");
        }
    }

    #[test]
    fn token_requests_and_deprecated_answers_are_counted() {
        let m = Metrics::default();
        let caller = Caller {
            tenant: "acme.eu.qlikcloud.com".into(),
            identity: "fedcba9876543210".into(),
        };
        m.token(&caller, TokenOutcome::Issued);
        m.token(&caller, TokenOutcome::Refused);
        m.token(&caller, TokenOutcome::Refused);
        m.deprecated(&caller, Api::V1, Some("Tue, 30 Nov 2027 00:00:00 GMT"));
        let text = m.render();
        for (line, value) in [
            (
                "qlik_automations_operator_oauth_token_requests_total{tenant=\"acme.eu.qlikcloud.com\",identity=\"fedcba9876543210\",outcome=\"refused\"}",
                2.0,
            ),
            (
                "qlik_automations_operator_oauth_token_requests_total{tenant=\"acme.eu.qlikcloud.com\",identity=\"fedcba9876543210\",outcome=\"issued\"}",
                1.0,
            ),
            (
                "qlik_automations_operator_qlik_deprecated_answers_total{tenant=\"acme.eu.qlikcloud.com\",api=\"v1\"}",
                1.0,
            ),
        ] {
            assert_eq!(sample(&text, line), Some(value), "{line} in\n{text}");
        }
    }

    #[test]
    fn reconcile_durations_are_per_kind() {
        let m = Metrics::default();
        m.reconciled("QlikAutomation", "success", 0.2);
        m.reconciled("QlikAutomationSettings", "Unauthorized", 0.02);
        let text = m.render();
        assert_eq!(
            sample(
                &text,
                "qlik_automations_operator_reconcile_duration_seconds_count{kind=\"QlikAutomation\"}"
            ),
            Some(1.0)
        );
        assert_eq!(
            sample(
                &text,
                "qlik_automations_operator_reconciles_total{kind=\"QlikAutomationSettings\",result=\"Unauthorized\"}"
            ),
            Some(1.0)
        );
    }
}
