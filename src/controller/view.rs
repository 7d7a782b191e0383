//! One list-based view of each tenant's automations, shared by every object that uses it.
//!
//! Reconciling N objects by GETting each one would cost N reads per resync; the view costs
//! ⌈N/200⌉ list calls per refresh however many objects read it. Refreshes are single-flight:
//! objects reconciled while one is under way wait for it instead of starting their own. A
//! failed refresh is remembered for the refresh interval too, so a bad key costs one request
//! per interval, not one per object.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
    time::Duration,
};

use chrono::{Days, Utc};
use futures::TryStreamExt;
use tokio::time::Instant;

use crate::{
    crd::Usage,
    qlik::{
        Filter, ListParams, QlikClient, QlikError, UsageQuery,
        filter::CompareOp,
        model::{Automation, AutomationSummary},
    },
};

/// Usage is refreshed this many view ages apart at most (20 minutes with the default
/// 5-minute view): it changes slowly and costs a read.
const USAGE_AGE_FACTOR: u32 = 4;
/// After a 403 on usage (the key is not an admin's), usage is not asked for this long.
const USAGE_FORBIDDEN_BACKOFF: Duration = Duration::from_secs(3600);
/// The usage window, in days.
const USAGE_WINDOW_DAYS: u64 = 30;

#[derive(Default)]
struct ViewState {
    items: HashMap<String, AutomationSummary>,
    fetched_at: Option<Instant>,
    failure: Option<(Instant, QlikError)>,
    usage: HashMap<String, Usage>,
    usage_fetched_at: Option<Instant>,
    usage_blocked_until: Option<Instant>,
}

/// The cached list of one tenant's automations as seen by one key.
pub struct TenantView {
    client: QlikClient,
    max_age: Duration,
    state: tokio::sync::Mutex<ViewState>,
}

impl TenantView {
    /// The client this view lists with.
    pub fn client(&self) -> &QlikClient {
        &self.client
    }

    /// Refreshes the list if it is older than the view's max age, then runs `f` on it.
    async fn with_fresh<T>(
        &self,
        f: impl FnOnce(&HashMap<String, AutomationSummary>) -> T,
    ) -> Result<T, QlikError> {
        let mut state = self.state.lock().await;
        let now = Instant::now();
        let fresh = state
            .fetched_at
            .is_some_and(|t| now.duration_since(t) < self.max_age);
        if !fresh {
            if let Some((at, err)) = &state.failure
                && now.duration_since(*at) < self.max_age
            {
                return Err(err.clone());
            }
            let listed: Result<Vec<AutomationSummary>, QlikError> = self
                .client
                .list_automations(&ListParams::default().limit(200))
                .try_collect()
                .await;
            match listed {
                Ok(items) => {
                    state.items = items.into_iter().map(|a| (a.id.clone(), a)).collect();
                    state.fetched_at = Some(Instant::now());
                    state.failure = None;
                }
                Err(err) => {
                    state.failure = Some((Instant::now(), err.clone()));
                    return Err(err);
                }
            }
        }
        Ok(f(&state.items))
    }

    /// The listed automation with `id`, from a list no older than the max age.
    pub async fn get(&self, id: &str) -> Result<Option<AutomationSummary>, QlikError> {
        self.with_fresh(|items| items.get(id).cloned()).await
    }

    /// Records what a write or a GET returned, so the view does not lag behind our own
    /// changes until its next refresh.
    pub async fn upsert(&self, automation: &Automation) {
        let mut state = self.state.lock().await;
        state
            .items
            .insert(automation.id.clone(), summary_of(automation));
    }

    /// Forgets an automation that was deleted.
    pub async fn remove(&self, id: &str) {
        self.state.lock().await.items.remove(id);
    }

    /// This automation's usage over the last 30 days, when the key may read usage.
    pub async fn usage(&self, id: &str) -> Option<Usage> {
        let mut state = self.state.lock().await;
        let now = Instant::now();
        let blocked = state.usage_blocked_until.is_some_and(|t| now < t);
        let fresh = state
            .usage_fetched_at
            .is_some_and(|t| now.duration_since(t) < self.max_age * USAGE_AGE_FACTOR);
        if !blocked && !fresh {
            match self.fetch_usage().await {
                Ok(usage) => {
                    state.usage = usage;
                    state.usage_fetched_at = Some(now);
                }
                Err(err) => {
                    // Usage is informative: a key that may not read it (only tenant admins
                    // may) just goes without, and is not asked again for an hour.
                    tracing::debug!(error = %err, "automation usage is not available");
                    state.usage_blocked_until = Some(now + USAGE_FORBIDDEN_BACKOFF);
                }
            }
        }
        state.usage.get(id).cloned()
    }

    async fn fetch_usage(&self) -> Result<HashMap<String, Usage>, QlikError> {
        let since = Utc::now()
            .date_naive()
            .checked_sub_days(Days::new(USAGE_WINDOW_DAYS))
            .unwrap_or_default()
            .format("%Y-%m-%d")
            .to_string();
        let entries = self
            .client
            .get_usage(&UsageQuery {
                filter: Filter::compare("date", CompareOp::Ge, since.as_str()),
                breakdown_by: Some("automation".into()),
            })
            .await?;
        let window = format!("since {since}");
        let mut out: HashMap<String, Usage> = HashMap::new();
        for entry in entries {
            let Some(guid) = entry.automation.and_then(|a| a.guid) else {
                continue;
            };
            out.entry(guid)
                .or_insert_with(|| Usage::new(window.clone()))
                .add(&entry.name, entry.value);
        }
        Ok(out)
    }
}

/// The list-item form of a full automation.
pub fn summary_of(a: &Automation) -> AutomationSummary {
    AutomationSummary {
        id: a.id.clone(),
        name: a.name.clone(),
        description: a.description.clone(),
        state: a.state.clone(),
        owner_id: a.owner_id.clone(),
        run_mode: a.run_mode.clone(),
        created_at: a.created_at.clone(),
        updated_at: a.updated_at.clone(),
        last_run_at: a.last_run_at.clone(),
        last_run_status: a.last_run_status.clone(),
        space_id: a.space_id.clone(),
        duration: None,
        max_concurrent_runs: a.max_concurrent_runs,
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

    /// The view of the tenant and key `client` speaks for.
    pub fn get(&self, client: &QlikClient) -> Arc<TenantView> {
        let mut views = self.views.lock().unwrap_or_else(|e| e.into_inner());
        views
            .entry(client.identity())
            .or_insert_with(|| {
                Arc::new(TenantView {
                    client: client.clone(),
                    max_age: self.max_age,
                    state: tokio::sync::Mutex::new(ViewState::default()),
                })
            })
            .clone()
    }
}
