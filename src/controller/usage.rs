//! Usage figures in status: fetched in the background, never waited for, and always saying
//! when they were fetched or why they are missing. Only a 403 pauses them for an hour.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex, MutexGuard},
    time::Duration,
};

use chrono::{DateTime, Days, SecondsFormat, Utc};
use tokio::time::Instant;

use crate::{
    backoff::Backoff,
    crd::{Usage, UsageMissing, UsageMissingReason},
    qlik::{ErrorClass, Filter, QlikClient, QlikError, UsageQuery, filter::CompareOp},
};

/// Usage is refreshed this many view ages apart at most (20 minutes with the default
/// 5-minute view): it changes slowly and costs a read.
pub const USAGE_AGE_FACTOR: u32 = 4;
/// After a 403 on usage (the key is not an admin's), usage is not asked for this long.
const USAGE_FORBIDDEN_PAUSE: Duration = Duration::from_secs(3600);
/// Retries of a usage fetch that failed for any other reason.
const USAGE_RETRY: Backoff = Backoff::new(Duration::from_secs(5), Duration::from_secs(300));
/// The usage window, in days.
pub const USAGE_WINDOW_DAYS: u64 = 30;

/// Locks a state mutex; its critical sections are a few assignments, so a poisoned lock
/// holds consistent data and is used as it is.
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// Usage figures of one kind (by automation, or the tenant's), fetched in the background.
pub struct UsageCache {
    by_automation: bool,
    state: Arc<Mutex<UsageState>>,
}

#[derive(Default)]
struct UsageState {
    figures: HashMap<String, Usage>,
    /// When the figures were fetched (the fetch's send time), monotonic and wall clock.
    fetched: Option<(Instant, DateTime<Utc>)>,
    fetching: bool,
    /// Why the last attempt failed, when it did.
    failure: Option<UsageMissing>,
    retry_at: Option<Instant>,
    failures: u32,
}

impl UsageCache {
    /// Figures by automation id (`by_automation`), or the tenant's totals under `""`.
    pub fn new(by_automation: bool) -> UsageCache {
        UsageCache {
            by_automation,
            state: Arc::default(),
        }
    }

    /// The figures for `key` as last fetched, and why they are missing; starts a fetch with
    /// `client` in the background when the figures are older than `USAGE_AGE_FACTOR` ×
    /// `max_age` and no retry pause is in force. Never waits for the network.
    pub fn read(
        &self,
        client: &QlikClient,
        max_age: Duration,
        key: &str,
        created: Option<DateTime<Utc>>,
    ) -> (Option<Usage>, Option<UsageMissing>) {
        let mut state = lock(&self.state);
        let now = Instant::now();
        let stale = state
            .fetched
            .is_none_or(|(at, _)| now.saturating_duration_since(at) >= max_age * USAGE_AGE_FACTOR);
        let may_retry = state.retry_at.is_none_or(|t| now >= t);
        if stale && may_retry && !state.fetching {
            state.fetching = true;
            let shared = self.state.clone();
            let client = client.clone();
            let by_automation = self.by_automation;
            tokio::spawn(async move {
                let started = (Instant::now(), Utc::now());
                let result = fetch_usage(&client, by_automation).await;
                settle(&mut lock(&shared), result, started);
            });
        }
        state.answer(key, created)
    }
}

/// Records a finished fetch.
fn settle(
    state: &mut UsageState,
    result: Result<HashMap<String, Usage>, QlikError>,
    started: (Instant, DateTime<Utc>),
) {
    state.fetching = false;
    match result {
        Ok(figures) => {
            state.figures = figures;
            state.fetched = Some(started);
            state.failure = None;
            state.retry_at = None;
            state.failures = 0;
        }
        Err(error) => {
            let (reason, pause) = match error.class() {
                ErrorClass::Forbidden => (UsageMissingReason::Forbidden, USAGE_FORBIDDEN_PAUSE),
                _ => (
                    UsageMissingReason::Unavailable,
                    USAGE_RETRY.wait(state.failures),
                ),
            };
            tracing::debug!(error = %error, retry_in = ?pause, "usage is not available");
            state.failures = state.failures.saturating_add(1);
            state.retry_at = Some(Instant::now() + pause);
            state.failure = Some(UsageMissing {
                reason,
                message: match reason {
                    UsageMissingReason::Forbidden => format!(
                        "the tenant refused to show usage to this key (only tenant admins may read it); asked again in an hour: {}",
                        error
                    ),
                    _ => format!(
                        "the last attempt to read usage failed and is retried: {}",
                        error
                    ),
                },
            });
        }
    }
}

impl UsageState {
    fn answer(
        &self,
        key: &str,
        created: Option<DateTime<Utc>>,
    ) -> (Option<Usage>, Option<UsageMissing>) {
        let Some((_, fetched_wall)) = self.fetched else {
            let missing = self.failure.clone().unwrap_or_else(|| UsageMissing {
                reason: UsageMissingReason::NotYetFetched,
                message: "usage has not been fetched from the tenant yet".into(),
            });
            return (None, Some(missing));
        };
        let fetched_at = fetched_wall.to_rfc3339_opts(SecondsFormat::Secs, true);
        let figures = match self.figures.get(key) {
            Some(u) => Some(u.clone()),
            // The automation did not exist yet when usage was fetched: nothing to say.
            None if created.is_some_and(|c| c > fetched_wall) => {
                return (
                    None,
                    Some(UsageMissing {
                        reason: UsageMissingReason::NotYetFetched,
                        message: format!(
                            "usage was last fetched at {fetched_at}, before this automation was created"
                        ),
                    }),
                );
            }
            // Fetched after it existed, and nothing was reported: no usage in the window.
            None => Some(Usage::new(window_label(fetched_wall))),
        };
        let figures = figures.map(|mut u| {
            u.fetched_at = Some(fetched_at.clone());
            u
        });
        (figures, self.failure.clone())
    }
}

/// The first day of the usage window ending `now`, as `YYYY-MM-DD`.
fn window_start(now: DateTime<Utc>) -> String {
    now.date_naive()
        .checked_sub_days(Days::new(USAGE_WINDOW_DAYS))
        .unwrap_or_default()
        .format("%Y-%m-%d")
        .to_string()
}

/// The window label status shows, e.g. `since 2026-11-02`.
fn window_label(now: DateTime<Utc>) -> String {
    format!("since {}", window_start(now))
}

/// Usage over the window, by automation id (or under `""` for the tenant's totals).
async fn fetch_usage(
    client: &QlikClient,
    by_automation: bool,
) -> Result<HashMap<String, Usage>, QlikError> {
    let now = Utc::now();
    let since = window_start(now);
    let entries = client
        .get_usage(&UsageQuery {
            filter: Filter::compare("date", CompareOp::Ge, since.as_str()),
            breakdown_by: by_automation.then(|| "automation".into()),
        })
        .await?;
    let window = window_label(now);
    let mut out: HashMap<String, Usage> = HashMap::new();
    if !by_automation {
        out.insert(String::new(), Usage::new(window.clone()));
    }
    for entry in entries {
        let key = if by_automation {
            match entry.automation.and_then(|a| a.guid) {
                Some(guid) => guid,
                None => continue,
            }
        } else {
            String::new()
        };
        out.entry(key)
            .or_insert_with(|| Usage::new(window.clone()))
            .add(&entry.name, entry.value);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn wall(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    #[test]
    fn usage_says_why_it_is_missing() {
        let state = UsageState::default();
        let (usage, missing) = state.answer("a", None);
        assert!(usage.is_none());
        assert_eq!(missing.unwrap().reason, UsageMissingReason::NotYetFetched);

        let fetched = wall("2026-12-01T10:00:00Z");
        let mut state = UsageState {
            fetched: Some((Instant::now(), fetched)),
            ..UsageState::default()
        };
        let mut a = Usage::new("since 2026-11-01");
        a.runs = 3;
        state.figures.insert("a".into(), a);
        let (usage, missing) = state.answer("a", Some(wall("2026-11-30T00:00:00Z")));
        let usage = usage.unwrap();
        assert_eq!(usage.runs, 3);
        assert_eq!(usage.fetched_at.as_deref(), Some("2026-12-01T10:00:00Z"));
        assert!(missing.is_none());

        // Created after the fetch: not yet fetched, not "no usage".
        let (usage, missing) = state.answer("new", Some(wall("2026-12-01T10:05:00Z")));
        assert!(usage.is_none());
        assert_eq!(missing.unwrap().reason, UsageMissingReason::NotYetFetched);
        // Existed at the fetch and reported nothing: zero usage in the window.
        let (usage, missing) = state.answer("quiet", Some(wall("2026-11-01T00:00:00Z")));
        assert_eq!(usage.unwrap().runs, 0);
        assert!(missing.is_none());
    }

    #[tokio::test]
    async fn only_a_403_pauses_usage_for_an_hour() {
        let cache = UsageCache::new(true);
        let forbidden = QlikError::from_response(
            crate::qlik::Endpoint::GetUsage,
            403,
            br#"{"errors":[{"code":"AE-403","title":"Forbidden"}]}"#,
            None,
        );
        settle(
            &mut lock(&cache.state),
            Err(forbidden),
            (Instant::now(), Utc::now()),
        );
        {
            let state = lock(&cache.state);
            let wait = state.retry_at.unwrap() - Instant::now();
            assert!(wait > Duration::from_secs(3500), "{wait:?}");
            assert_eq!(
                state.failure.as_ref().unwrap().reason,
                UsageMissingReason::Forbidden
            );
        }
        let cache = UsageCache::new(true);
        let unavailable = QlikError::from_response(crate::qlik::Endpoint::GetUsage, 503, b"", None);
        settle(
            &mut lock(&cache.state),
            Err(unavailable),
            (Instant::now(), Utc::now()),
        );
        let state = lock(&cache.state);
        let wait = state.retry_at.unwrap() - Instant::now();
        assert!(wait < Duration::from_secs(10), "{wait:?}");
        assert_eq!(
            state.failure.as_ref().unwrap().reason,
            UsageMissingReason::Unavailable
        );
    }
}
