//! One list-based view of each tenant's automations, shared by every object that uses it.
//!
//! Reconciling N objects by GETting each one would cost N reads per resync; the view costs
//! ⌈N/200⌉ list calls per refresh however many objects read it.
//!
//! # What may come from the cache, and how old it may be
//!
//! The view is a cache, and the tenant outranks it:
//! - [`TenantView::get`] answers from entries seen — listed, fetched or written — within the
//!   view's max age, never older. When the list is older than that, the caller waits for a
//!   refresh. One refresh runs at a time and serves every caller (single flight); it starts
//!   a little before the max age runs out (a tenth of it), and until then readers keep using
//!   the last good list (stale-while-revalidate). No lock is held while a request is out.
//! - Every authoritative answer updates the view at once, for every object sharing it: a
//!   GET or a write records the automation it returned ([`TenantView::upsert`]), and a 404
//!   on an id evicts it ([`TenantView::evict`]). An evicted id is not brought back by a list
//!   that was sent before the 404 was seen.
//! - A failed refresh is answered from the cache only until its retry is due: a few
//!   seconds, jittered and capped at [`REFRESH_RETRY`]'s cap, for transient failures; the max
//!   age for a key the tenant refuses (401, 403), so a bad key costs one request per max age.
//!   Objects that failed on it are woken ([`TenantView::wake_on_recovery`]) as soon as a
//!   refresh succeeds.
//! - Usage figures ([`TenantView::automation_usage`], [`TenantView::tenant_usage`]) are
//!   informative and never make a reconcile wait: they are fetched in the background at
//!   most every [`super::usage::USAGE_AGE_FACTOR`] max ages, and each answer says when they were fetched
//!   or why they are missing.

use std::{
    collections::HashMap,
    future::Future,
    pin::Pin,
    sync::{Arc, Mutex, MutexGuard},
    time::Duration,
};

use chrono::{DateTime, Utc};
use futures::{FutureExt, future::Shared};
use tokio::time::Instant;

use crate::{
    backoff::Backoff,
    crd::{Usage, UsageMissing},
    qlik::{
        ErrorClass, ListParams, QlikClient, QlikError,
        model::{Automation, AutomationSummary},
    },
};

use super::usage::UsageCache;

/// Retries of a list refresh that failed transiently: seconds, never the view's max age.
pub const REFRESH_RETRY: Backoff = Backoff::new(Duration::from_secs(1), Duration::from_secs(8));

type RefreshFuture = Shared<Pin<Box<dyn Future<Output = Result<(), QlikError>> + Send>>>;
type Wake = Box<dyn FnOnce() + Send>;

/// One automation as last seen, and when.
struct Seen {
    summary: AutomationSummary,
    at: Instant,
}

/// A failed refresh, answered from the cache until `retry_at`.
struct Failure {
    error: QlikError,
    retry_at: Instant,
    attempts: u32,
}

#[derive(Default)]
struct ListState {
    items: HashMap<String, Seen>,
    /// When the last successful list was sent (it shows the tenant as of then, or later).
    listed_at: Option<Instant>,
    /// Ids the tenant answered 404 for, and when: a list sent before that must not bring
    /// them back.
    evicted: HashMap<String, Instant>,
    failure: Option<Failure>,
    refresh: Option<RefreshFuture>,
    /// Objects to wake when a refresh succeeds, by key (one wake per object).
    waiting: HashMap<String, Wake>,
}

/// The cached list of one tenant's automations as seen by one key.
pub struct TenantView {
    client: QlikClient,
    max_age: Duration,
    list: Mutex<ListState>,
    automation_usage: UsageCache,
    tenant_usage: UsageCache,
}

/// Locks a state mutex; a panic elsewhere while it was held leaves consistent data here
/// (every critical section is a few assignments), so a poisoned lock is used as it is.
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl TenantView {
    /// A view of what `client` sees, refreshed when older than `max_age`.
    pub fn new(client: QlikClient, max_age: Duration) -> TenantView {
        TenantView {
            client,
            max_age,
            list: Mutex::new(ListState::default()),
            automation_usage: UsageCache::new(true),
            tenant_usage: UsageCache::new(false),
        }
    }

    /// The client this view lists with.
    pub fn client(&self) -> &QlikClient {
        &self.client
    }

    /// The view's max age: nothing older is answered.
    pub fn max_age(&self) -> Duration {
        self.max_age
    }

    /// The automation with `id` as last seen within the max age (`None`: not in the tenant),
    /// with when it was seen. Waits for a refresh only when the list is older than the max
    /// age; starts one in the background when it is close to that.
    pub async fn get(
        self: &Arc<Self>,
        id: &str,
    ) -> Result<Option<(AutomationSummary, Instant)>, QlikError> {
        let refresh = {
            let mut state = lock(&self.list);
            let now = Instant::now();
            let age = state.listed_at.map(|t| now.saturating_duration_since(t));
            let fresh = age.is_some_and(|a| a < self.max_age);
            let due = age.is_none_or(|a| a >= self.max_age - self.max_age / 10);
            if fresh {
                if due {
                    // Runs as its own task; readers keep the current list meanwhile.
                    let _background = self.start_refresh(&mut state, now);
                }
                return Ok(state.lookup(id, now, self.max_age));
            }
            if let Some(failure) = &state.failure
                && now < failure.retry_at
            {
                return Err(failure.error.clone());
            }
            self.start_refresh(&mut state, now)
        };
        refresh.await?;
        let state = lock(&self.list);
        // Fresh by construction: the refresh just succeeded.
        Ok(state.items.get(id).map(|s| (s.summary.clone(), s.at)))
    }

    /// The in-flight refresh, started now when there is none.
    fn start_refresh(self: &Arc<Self>, state: &mut ListState, now: Instant) -> RefreshFuture {
        if let Some(running) = &state.refresh {
            return running.clone();
        }
        let view = self.clone();
        // Spawned, so that a reconcile that stops waiting does not cancel it for the others.
        let task = tokio::spawn(async move { view.refresh(now).await });
        let shared: RefreshFuture = async move {
            task.await.unwrap_or_else(|e| {
                Err(QlikError::Invalid(format!(
                    "the tenant list refresh stopped: {e}"
                )))
            })
        }
        .boxed()
        .shared();
        state.refresh = Some(shared.clone());
        shared
    }

    async fn refresh(&self, sent_at: Instant) -> Result<(), QlikError> {
        // The whole tenant when the identity may see it, so that adoption and duplicate
        // checks see every automation.
        let listed = self
            .client
            .list_tenant(&ListParams::default().limit(200))
            .await;
        let wake: Vec<Wake> = {
            let mut state = lock(&self.list);
            state.refresh = None;
            match listed {
                Ok(items) => {
                    state.merge_list(items, sent_at);
                    state.failure = None;
                    state.waiting.drain().map(|(_, w)| w).collect()
                }
                Err(error) => {
                    let attempts = state.failure.as_ref().map_or(0, |f| f.attempts + 1);
                    let hold = self.hold_after(&error, attempts);
                    tracing::debug!(error = %error, retry_in = ?hold, "tenant list refresh failed");
                    state.failure = Some(Failure {
                        error: error.clone(),
                        retry_at: Instant::now() + hold,
                        attempts,
                    });
                    return Err(error);
                }
            }
        };
        for w in wake {
            w();
        }
        Ok(())
    }

    /// How long a failed refresh is answered from the cache.
    fn hold_after(&self, error: &QlikError, attempts: u32) -> Duration {
        match error.class() {
            // Only a person can fix the key: asking again sooner would only spend budget.
            ErrorClass::Unauthorized | ErrorClass::Forbidden => self.max_age.max(REFRESH_RETRY.cap),
            ErrorClass::RateLimited => error
                .retry_after()
                .unwrap_or_else(|| REFRESH_RETRY.wait(attempts)),
            _ => REFRESH_RETRY.wait(attempts),
        }
    }

    /// When the failed refresh will be tried again, if the view is failing.
    pub fn retry_due_in(&self) -> Option<Duration> {
        let state = lock(&self.list);
        let failure = state.failure.as_ref()?;
        Some(failure.retry_at.saturating_duration_since(Instant::now()))
    }

    /// Runs `wake` once, as soon as a refresh of this view succeeds; `key` names the waiter,
    /// so an object that fails again before then is woken only once.
    pub fn wake_on_recovery(&self, key: String, wake: impl FnOnce() + Send + 'static) {
        lock(&self.list).waiting.insert(key, Box::new(wake));
    }

    /// Records what a write or a GET returned: the tenant just said so.
    pub fn upsert(&self, automation: &Automation) {
        let mut state = lock(&self.list);
        state.evicted.remove(&automation.id);
        state.items.insert(
            automation.id.clone(),
            Seen {
                summary: AutomationSummary::from(automation),
                at: Instant::now(),
            },
        );
    }

    /// Forgets an automation the tenant answered 404 for (or that was deleted), for every
    /// object sharing the view, including against a list already on its way.
    pub fn evict(&self, id: &str) {
        let mut state = lock(&self.list);
        state.items.remove(id);
        state.evicted.insert(id.to_owned(), Instant::now());
    }

    /// This automation's usage over the last 30 days, as last fetched, and why it is
    /// missing when it is. Never waits: a due fetch runs in the background, and its result
    /// shows at the object's next reconcile. `created_at` (the remote's) tells a fetch that
    /// predates the automation from one that found no usage.
    pub fn automation_usage(
        &self,
        id: &str,
        created_at: Option<&str>,
    ) -> (Option<Usage>, Option<UsageMissing>) {
        let created = created_at
            .and_then(|t| DateTime::parse_from_rfc3339(t).ok())
            .map(|t| t.with_timezone(&Utc));
        self.automation_usage
            .read(&self.client, self.max_age, id, created)
    }

    /// The tenant's usage over the last 30 days, as [`TenantView::automation_usage`].
    pub fn tenant_usage(&self) -> (Option<Usage>, Option<UsageMissing>) {
        self.tenant_usage.read(&self.client, self.max_age, "", None)
    }
}

impl ListState {
    /// The entry for `id` when it was seen within `max_age`.
    fn lookup(
        &self,
        id: &str,
        now: Instant,
        max_age: Duration,
    ) -> Option<(AutomationSummary, Instant)> {
        self.items
            .get(id)
            .filter(|s| now.saturating_duration_since(s.at) < max_age)
            .map(|s| (s.summary.clone(), s.at))
    }

    /// Replaces the list with one sent at `sent_at`, keeping what the tenant said since.
    fn merge_list(&mut self, listed: Vec<AutomationSummary>, sent_at: Instant) {
        let mut items: HashMap<String, Seen> = listed
            .into_iter()
            .filter(|a| self.evicted.get(&a.id).is_none_or(|at| *at <= sent_at))
            .map(|a| {
                (
                    a.id.clone(),
                    Seen {
                        summary: a,
                        at: sent_at,
                    },
                )
            })
            .collect();
        // Answers that arrived while the list was on its way are newer than it.
        for (id, seen) in self.items.drain() {
            if seen.at > sent_at {
                items.insert(id, seen);
            }
        }
        self.evicted.retain(|_, at| *at > sent_at);
        for id in self.evicted.keys() {
            items.remove(id);
        }
        self.items = items;
        self.listed_at = Some(sent_at);
    }
}

/// Every tenant view of the process, one per tenant and key.
pub struct TenantViews {
    max_age: Duration,
    views: Mutex<HashMap<String, Arc<TenantView>>>,
}

impl TenantViews {
    /// Views that refresh when older than `max_age`.
    pub fn new(max_age: Duration) -> TenantViews {
        TenantViews {
            max_age,
            views: Mutex::new(HashMap::new()),
        }
    }

    /// The view of the tenant, key and API generation `client` speaks for.
    pub fn get(&self, client: &QlikClient) -> Arc<TenantView> {
        let mut views = lock(&self.views);
        let view = views
            .entry(format!("{}@{}", client.identity(), client.api()))
            .or_insert_with(|| Arc::new(TenantView::new(client.clone(), self.max_age)));
        // The same bot with a new secret (a fixed Secret) is the same user, but the old
        // client would keep sending the old secret: the view starts over with the new one.
        if view.client.credential() != client.credential() {
            *view = Arc::new(TenantView::new(client.clone(), self.max_age));
        }
        view.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn summary(id: &str, name: &str) -> AutomationSummary {
        AutomationSummary {
            id: id.into(),
            name: Some(name.into()),
            ..AutomationSummary::default()
        }
    }

    #[test]
    fn a_list_sent_before_a_404_does_not_bring_the_automation_back() {
        let mut state = ListState::default();
        let t0 = Instant::now();
        state.merge_list(vec![summary("a", "A"), summary("b", "B")], t0);
        // The tenant answers 404 for `a` after a second list was sent but before it returned.
        let sent = t0 + Duration::from_secs(1);
        state.items.remove("a");
        state
            .evicted
            .insert("a".into(), t0 + Duration::from_secs(2));
        state.merge_list(vec![summary("a", "A"), summary("b", "B")], sent);
        assert!(!state.items.contains_key("a"));
        assert!(state.items.contains_key("b"));
        // A list sent after the 404 is the tenant's word again.
        state.merge_list(vec![summary("a", "A")], t0 + Duration::from_secs(3));
        assert!(state.items.contains_key("a"));
        assert!(state.evicted.is_empty());
    }

    #[test]
    fn answers_newer_than_a_list_survive_it_and_older_ones_do_not() {
        let mut state = ListState::default();
        let t0 = Instant::now();
        state.items.insert(
            "created-meanwhile".into(),
            Seen {
                summary: summary("created-meanwhile", "new"),
                at: t0 + Duration::from_secs(2),
            },
        );
        state.items.insert(
            "deleted-before".into(),
            Seen {
                summary: summary("deleted-before", "old"),
                at: t0,
            },
        );
        state.merge_list(vec![summary("b", "B")], t0 + Duration::from_secs(1));
        assert!(state.items.contains_key("created-meanwhile"));
        assert!(!state.items.contains_key("deleted-before"));
        assert_eq!(state.listed_at, Some(t0 + Duration::from_secs(1)));
    }

    #[test]
    fn lookups_never_answer_from_entries_older_than_the_max_age() {
        let mut state = ListState::default();
        let t0 = Instant::now();
        state.merge_list(vec![summary("a", "A")], t0);
        let age = Duration::from_secs(10);
        assert!(
            state
                .lookup("a", t0 + Duration::from_secs(9), age)
                .is_some()
        );
        assert!(
            state
                .lookup("a", t0 + Duration::from_secs(10), age)
                .is_none()
        );
        assert!(state.lookup("missing", t0, age).is_none());
    }
}
