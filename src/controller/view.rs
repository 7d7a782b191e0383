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
//! - Between reconciles, a view with a read budget ([`DriftWatch`], `--read-budget-share`)
//!   refreshes itself as often as that share of Tier 1 allows (⌈N/200⌉ list calls per
//!   refresh), and every refresh that finds a remote changed (`updatedAt`) or gone since the
//!   previous list tells whoever manages it, so an edit or a delete made in the Qlik UI is set
//!   right in seconds instead of at the next resync.
//! - Usage figures ([`TenantView::automation_usage`], [`TenantView::tenant_usage`]) are
//!   informative and never make a reconcile wait: they are fetched in the background at
//!   most every [`super::usage::USAGE_AGE_FACTOR`] max ages, and each answer says when they were fetched
//!   or why they are missing.

use std::{
    collections::HashMap,
    future::Future,
    pin::Pin,
    sync::{Arc, Mutex, MutexGuard, Weak},
    time::Duration,
};

use chrono::{DateTime, Utc};
use futures::{FutureExt, future::Shared};
use tokio::time::Instant;

use crate::{
    backoff::Backoff,
    crd::{Usage, UsageMissing},
    qlik::{
        ErrorClass, ListParams, QlikClient, QlikError, Tier,
        model::{Automation, AutomationSummary},
    },
};

use super::usage::UsageCache;

/// Retries of a list refresh that failed transiently: seconds, never the view's max age.
pub const REFRESH_RETRY: Backoff = Backoff::new(Duration::from_secs(1), Duration::from_secs(8));

type RefreshFuture = Shared<Pin<Box<dyn Future<Output = Result<(), QlikError>> + Send>>>;
type Wake = Box<dyn FnOnce() + Send>;
/// Told the ids whose remote changed or vanished between two lists.
pub type OnChange = Arc<dyn Fn(&[String]) + Send + Sync>;

/// The shortest pause between two background refreshes, however large the budget.
const WATCH_FLOOR: Duration = Duration::from_secs(1);

/// Refreshing views between reconciles, within a share of Tier 1, to notice out-of-band
/// edits and deletes in seconds.
#[derive(Clone)]
pub struct DriftWatch {
    /// The share of Tier 1 the background refreshes may spend (0 turns them off).
    pub share: f64,
    /// Told which remotes changed or vanished.
    pub on_change: OnChange,
}

impl DriftWatch {
    /// The pause between background refreshes of a view listing `pages` pages, within this
    /// watch's share of the Tier 1 budget of `limits`: `pages` list calls per refresh.
    pub fn interval(&self, pages: usize, limits: crate::qlik::RateLimits) -> Duration {
        let reads_per_window = self.share * f64::from(limits.per_window(Tier::Tier1));
        if reads_per_window <= 0.0 {
            return Duration::MAX;
        }
        limits
            .window
            .mul_f64(pages.max(1) as f64 / reads_per_window)
            .max(WATCH_FLOOR)
    }
}

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
    /// Told which remotes a refresh found changed or gone (see [`DriftWatch`]).
    on_change: Option<OnChange>,
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
            on_change: None,
        }
    }

    /// Refreshes the view in the background, as often as `watch`'s share of the Tier 1
    /// budget allows, until the view is dropped; every refresh tells `watch` which remotes
    /// changed or vanished.
    fn watch(view: &Arc<TenantView>, watch: DriftWatch) {
        let weak: Weak<TenantView> = Arc::downgrade(view);
        tokio::spawn(async move {
            loop {
                let pause = match weak.upgrade() {
                    Some(view) => {
                        let pages = lock(&view.list).items.len().div_ceil(200);
                        let pause = watch.interval(pages, view.client.limiter().limits());
                        // After a failure, not before its retry is due.
                        pause.max(view.retry_due_in().unwrap_or_default())
                    }
                    None => return,
                };
                if pause == Duration::MAX {
                    return;
                }
                tokio::time::sleep(pause).await;
                let Some(view) = weak.upgrade() else { return };
                let refresh = {
                    let mut state = lock(&view.list);
                    view.start_refresh(&mut state, Instant::now())
                };
                let _ = refresh.await;
            }
        });
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
        let (wake, changed): (Vec<Wake>, Vec<String>) = {
            let mut state = lock(&self.list);
            state.refresh = None;
            match listed {
                Ok(items) => {
                    let changed = state.merge_list(items, sent_at);
                    state.failure = None;
                    (state.waiting.drain().map(|(_, w)| w).collect(), changed)
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
        if let Some(on_change) = &self.on_change
            && !changed.is_empty()
        {
            tracing::debug!(
                changed = changed.len(),
                "remotes changed or vanished since the last list"
            );
            on_change(&changed);
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
    /// Takes a list sent at `sent_at` as the view; returns the ids whose remote changed
    /// (`updatedAt`) or vanished since what the view held (nothing on the first list).
    fn merge_list(&mut self, listed: Vec<AutomationSummary>, sent_at: Instant) -> Vec<String> {
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
        // What moved since the last list, by someone else: an answer seen after this list
        // was sent (a write of our own) is newer than it, not a change.
        let mut changed = Vec::new();
        if self.listed_at.is_some() {
            for (id, old) in &self.items {
                if old.at > sent_at {
                    continue;
                }
                match items.get(id) {
                    Some(new) if new.summary.updated_at == old.summary.updated_at => {}
                    _ => changed.push(id.clone()),
                }
            }
        }
        changed.sort();
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
        changed
    }
}

/// Every tenant view of the process, one per tenant and key.
pub struct TenantViews {
    max_age: Duration,
    watch: Option<DriftWatch>,
    views: Mutex<HashMap<String, Arc<TenantView>>>,
}

impl TenantViews {
    /// Views that refresh when older than `max_age`.
    pub fn new(max_age: Duration) -> TenantViews {
        TenantViews {
            max_age,
            watch: None,
            views: Mutex::new(HashMap::new()),
        }
    }

    /// Views that also refresh between reconciles within `watch`'s read budget and tell it
    /// what changed (a share of 0 leaves them to reconciles).
    pub fn with_drift_watch(mut self, watch: DriftWatch) -> TenantViews {
        self.watch = (watch.share > 0.0).then_some(watch);
        self
    }

    /// A new view of what `client` sees, watched when the views are.
    fn create(&self, client: &QlikClient) -> Arc<TenantView> {
        let mut view = TenantView::new(client.clone(), self.max_age);
        view.on_change = self.watch.as_ref().map(|w| w.on_change.clone());
        let view = Arc::new(view);
        if let Some(watch) = &self.watch {
            TenantView::watch(&view, watch.clone());
        }
        view
    }

    /// The view of the tenant, key and API generation `client` speaks for.
    pub fn get(&self, client: &QlikClient) -> Arc<TenantView> {
        let mut views = lock(&self.views);
        let key = format!("{}@{}", client.identity(), client.api());
        let stale = views
            .get(&key)
            // The same bot with a new secret (a fixed Secret) is the same user, but the old
            // client would keep sending the old secret: the view starts over with the new
            // one (and the old one's watch ends with it).
            .is_none_or(|view| view.client.credential() != client.credential());
        if stale {
            views.insert(key.clone(), self.create(client));
        }
        views[&key].clone()
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

    fn updated(id: &str, at: &str) -> AutomationSummary {
        AutomationSummary {
            id: id.into(),
            updated_at: Some(at.into()),
            ..AutomationSummary::default()
        }
    }

    #[test]
    fn a_list_names_what_changed_or_vanished_since_the_last_and_not_our_own_writes() {
        let mut state = ListState::default();
        let t0 = Instant::now();
        let first = vec![updated("a", "1"), updated("b", "1"), updated("c", "1")];
        assert!(
            state.merge_list(first, t0).is_empty(),
            "nothing to compare the first with"
        );
        // `a` edited out of band, `b` deleted, `d` new, `c` unchanged.
        let t1 = t0 + Duration::from_secs(1);
        let second = vec![updated("a", "2"), updated("c", "1"), updated("d", "1")];
        assert_eq!(state.merge_list(second, t1), vec!["a", "b"]);
        // A write of ours answered after the next list was sent is newer than that list.
        let t2 = t1 + Duration::from_secs(1);
        state.items.insert(
            "c".into(),
            Seen {
                summary: updated("c", "3"),
                at: t2 + Duration::from_millis(1),
            },
        );
        let third = vec![updated("a", "2"), updated("c", "1"), updated("d", "1")];
        assert!(state.merge_list(third, t2).is_empty());
    }

    #[test]
    fn the_background_refresh_spends_its_share_of_tier1() {
        let watch = DriftWatch {
            share: 0.1,
            on_change: Arc::new(|_: &[String]| {}),
        };
        let limits = crate::qlik::RateLimits::default();
        // 10 % of 5000 reads per 5 minutes: 500 lists; 5 pages (1000 automations) every 3 s.
        assert_eq!(watch.interval(5, limits), Duration::from_secs(3));
        // One page every 0.6 s by budget, but at most once a second.
        assert_eq!(watch.interval(0, limits), Duration::from_secs(1));
        // 50 pages (10 000 automations): every 30 s.
        assert_eq!(watch.interval(50, limits), Duration::from_secs(30));
        let off = DriftWatch {
            share: 0.0,
            ..watch
        };
        assert_eq!(off.interval(5, limits), Duration::MAX);
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
