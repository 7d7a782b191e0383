//! A Qlik client configured for tests against the emulator: limits far above what a test
//! sends, and retries that wait milliseconds, so a suite over HTTP runs in seconds.

use std::time::Duration;

use qlik_automations_operator::qlik::{Api, ClientConfig, Credential, RateLimits, RetryPolicy};

/// The configuration of a client of `base_url` as `credential`, speaking `api`, with
/// generous rate limits and fast retries.
pub fn fast_config(base_url: &str, credential: impl Into<Credential>, api: Api) -> ClientConfig {
    let mut config = ClientConfig::new(base_url, credential);
    config.api = api;
    config.rate_limits = RateLimits {
        tier1_per_minute: 100_000,
        tier2_per_minute: 100_000,
        window: Duration::from_secs(60),
    };
    config.retry = RetryPolicy {
        base_delay: Duration::from_millis(10),
        max_delay: Duration::from_millis(50),
        ..RetryPolicy::default()
    };
    config
}
