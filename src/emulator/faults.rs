//! Fault injection: error statuses, synthetic 429s, extra latency and dropped connections,
//! per endpoint or for the whole API, set at start-up or at runtime under `/_emulator/faults`.

use std::time::Duration;

use rand::Rng;
use serde::{Deserialize, Serialize};

use crate::qlik::endpoint::Endpoint;

/// The set of fault rules in force. The default injects nothing.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct FaultConfig {
    /// Rules, consulted in order; the first rule whose dice fire decides the fault.
    #[serde(default)]
    pub rules: Vec<FaultRule>,
}

/// One fault rule. Rates are probabilities in `[0, 1]`; 1.0 always fires.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct FaultRule {
    /// The endpoint's [`Endpoint::name`] (e.g. `create_automation`); `None` for all.
    pub endpoint: Option<String>,
    /// Probability of answering `status` instead of processing.
    pub error_rate: f64,
    /// The status of injected errors (default 503).
    pub status: u16,
    /// Probability of dropping the connection without an HTTP response.
    pub drop_rate: f64,
    /// When true, a dropped request is processed first (the automation really is created)
    /// and only the answer is lost: the ambiguous failure clients must survive.
    pub drop_after_processing: bool,
    /// Uniformly random extra latency `[min, max]` in milliseconds.
    pub latency_ms: Option<(u64, u64)>,
    /// Probability of a synthetic 429 with `Retry-After: 1`.
    pub rate_limit_rate: f64,
    /// How many more requests this rule may affect (with latency or a fault); `None` for no
    /// limit. Counts down as the rule fires, so `GET /_emulator/faults` shows what is left;
    /// a rule at 0 is spent. Lets a test fail exactly the first N calls.
    pub times: Option<u32>,
}

impl Default for FaultRule {
    fn default() -> Self {
        FaultRule {
            endpoint: None,
            error_rate: 0.0,
            status: 503,
            drop_rate: 0.0,
            drop_after_processing: false,
            latency_ms: None,
            rate_limit_rate: 0.0,
            times: None,
        }
    }
}

impl FaultRule {
    /// A rule for every API endpoint, injecting nothing until configured.
    pub fn all() -> FaultRule {
        FaultRule::default()
    }

    /// A rule for one endpoint, injecting nothing until configured.
    pub fn on(endpoint: Endpoint) -> FaultRule {
        FaultRule {
            endpoint: Some(endpoint.name().to_owned()),
            ..FaultRule::default()
        }
    }

    /// Answers `status` with probability `rate`.
    pub fn with_error(mut self, rate: f64, status: u16) -> FaultRule {
        self.error_rate = rate;
        self.status = status;
        self
    }

    /// Drops the connection with probability `rate`, after processing when `after_processing`.
    pub fn with_drop(mut self, rate: f64, after_processing: bool) -> FaultRule {
        self.drop_rate = rate;
        self.drop_after_processing = after_processing;
        self
    }

    /// Adds uniformly random latency between `min_ms` and `max_ms`.
    pub fn with_latency_ms(mut self, min_ms: u64, max_ms: u64) -> FaultRule {
        self.latency_ms = Some((min_ms, max_ms));
        self
    }

    /// Answers a synthetic 429 with probability `rate`.
    pub fn with_rate_limit(mut self, rate: f64) -> FaultRule {
        self.rate_limit_rate = rate;
        self
    }

    /// Lets the rule affect at most `n` requests.
    pub fn times(mut self, n: u32) -> FaultRule {
        self.times = Some(n);
        self
    }

    fn applies_to(&self, endpoint: Endpoint) -> bool {
        self.times != Some(0)
            && self
                .endpoint
                .as_deref()
                .is_none_or(|e| e == endpoint.name())
    }

    fn validate(&self, index: usize) -> Result<(), String> {
        if let Some(e) = &self.endpoint
            && Endpoint::from_name(e).is_none()
        {
            return Err(format!(
                "rules[{index}].endpoint {e:?} is not an endpoint name (e.g. create_automation)"
            ));
        }
        for (name, rate) in [
            ("errorRate", self.error_rate),
            ("dropRate", self.drop_rate),
            ("rateLimitRate", self.rate_limit_rate),
        ] {
            if !(0.0..=1.0).contains(&rate) {
                return Err(format!("rules[{index}].{name} must be between 0 and 1"));
            }
        }
        if !(400..=599).contains(&self.status) {
            return Err(format!("rules[{index}].status must be between 400 and 599"));
        }
        if let Some((min, max)) = self.latency_ms
            && min > max
        {
            return Err(format!(
                "rules[{index}].latencyMs must be [min, max] with min <= max"
            ));
        }
        Ok(())
    }
}

impl FaultConfig {
    /// No faults.
    pub fn none() -> FaultConfig {
        FaultConfig::default()
    }

    /// A configuration of the given rules.
    pub fn with_rules(rules: Vec<FaultRule>) -> FaultConfig {
        FaultConfig { rules }
    }

    /// Checks endpoint names, rates, statuses and latency ranges.
    pub fn validate(&self) -> Result<(), String> {
        self.rules
            .iter()
            .enumerate()
            .try_for_each(|(i, r)| r.validate(i))
    }

    /// Rolls the dice for one request to `endpoint`, counting down `times` of the rules that
    /// fire.
    pub(crate) fn plan(&mut self, endpoint: Endpoint) -> FaultPlan {
        let mut rng = rand::rng();
        let mut plan = FaultPlan::default();
        for rule in self.rules.iter_mut().filter(|r| r.applies_to(endpoint)) {
            let mut fired = false;
            if let Some((min, max)) = rule.latency_ms {
                let ms = if max > min {
                    rng.random_range(min..=max)
                } else {
                    min
                };
                plan.latency += Duration::from_millis(ms);
                fired = true;
            }
            if plan.action.is_none() {
                let mut fires = |rate: f64| rate > 0.0 && rng.random::<f64>() < rate;
                plan.action = if fires(rule.rate_limit_rate) {
                    Some(FaultAction::RateLimit)
                } else if fires(rule.error_rate) {
                    Some(FaultAction::Error(rule.status))
                } else if fires(rule.drop_rate) {
                    Some(FaultAction::Drop {
                        after_processing: rule.drop_after_processing,
                    })
                } else {
                    None
                };
                fired |= plan.action.is_some();
            }
            if fired && let Some(n) = rule.times.as_mut() {
                *n = n.saturating_sub(1);
            }
        }
        plan
    }
}

/// What to do to one request.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct FaultPlan {
    /// Extra delay before answering.
    pub(crate) latency: Duration,
    /// The fault to inject, if any.
    pub(crate) action: Option<FaultAction>,
}

/// A fault replacing (or, for a late drop, following) normal processing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum FaultAction {
    /// Answer 429 with `Retry-After: 1`.
    RateLimit,
    /// Answer this status with an error envelope.
    Error(u16),
    /// Abort the connection.
    Drop {
        /// Process the request before dropping it.
        after_processing: bool,
    },
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn rate_one_always_fires_and_only_on_its_endpoint() {
        let mut cfg = FaultConfig::with_rules(vec![
            FaultRule::on(Endpoint::CreateAutomation).with_error(1.0, 503),
        ]);
        for _ in 0..50 {
            assert_eq!(
                cfg.plan(Endpoint::CreateAutomation).action,
                Some(FaultAction::Error(503))
            );
            assert_eq!(cfg.plan(Endpoint::ListAutomations).action, None);
        }
    }

    #[test]
    fn latency_adds_up_and_rules_are_ordered() {
        let mut cfg = FaultConfig::with_rules(vec![
            FaultRule::all().with_latency_ms(5, 5),
            FaultRule::all().with_drop(1.0, true).with_latency_ms(3, 3),
            FaultRule::all().with_error(1.0, 500),
        ]);
        let plan = cfg.plan(Endpoint::GetRun);
        assert_eq!(plan.latency, Duration::from_millis(8));
        assert_eq!(
            plan.action,
            Some(FaultAction::Drop {
                after_processing: true
            })
        );
    }

    #[test]
    fn times_limits_how_often_a_rule_fires() {
        let mut cfg = FaultConfig::with_rules(vec![
            FaultRule::on(Endpoint::GetSettings)
                .with_error(1.0, 500)
                .times(2),
        ]);
        // Requests the rule does not match do not use it up.
        assert_eq!(cfg.plan(Endpoint::ListRuns).action, None);
        for _ in 0..2 {
            assert_eq!(
                cfg.plan(Endpoint::GetSettings).action,
                Some(FaultAction::Error(500))
            );
        }
        assert_eq!(cfg.rules[0].times, Some(0));
        assert_eq!(cfg.plan(Endpoint::GetSettings).action, None);
    }

    #[test]
    fn json_is_camel_case_with_defaults() {
        let cfg: FaultConfig = serde_json::from_value(json!({
            "rules": [{"endpoint": "create_automation", "errorRate": 0.5, "latencyMs": [1, 2]}]
        }))
        .unwrap();
        assert_eq!(cfg.rules[0].status, 503);
        assert_eq!(cfg.rules[0].latency_ms, Some((1, 2)));
        assert!(cfg.validate().is_ok());
        let v = serde_json::to_value(&cfg).unwrap();
        assert_eq!(v["rules"][0]["dropAfterProcessing"], false);
        assert_eq!(v["rules"][0]["rateLimitRate"], 0.0);
    }

    #[test]
    fn validation_names_the_rule_field() {
        let bad = FaultConfig::with_rules(vec![
            FaultRule::all(),
            FaultRule::all().with_error(2.0, 503),
        ]);
        assert_eq!(
            bad.validate().unwrap_err(),
            "rules[1].errorRate must be between 0 and 1"
        );
        let mut unknown = FaultRule::all();
        unknown.endpoint = Some("nope".into());
        assert!(
            FaultConfig::with_rules(vec![unknown])
                .validate()
                .unwrap_err()
                .contains("nope")
        );
    }
}
