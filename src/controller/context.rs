//! What every reconcile shares: clients, views, stores, settings, and the error type.

use std::{
    collections::{HashMap, HashSet},
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use crate::{
    backoff::{Backoff, random_up_to},
    crd::{ConditionStatus, Connection, QlikAutomation, QlikAutomationSettings},
    qlik::{ClientPool, ErrorClass, QlikClient, QlikError},
};
use kube::{
    Resource, ResourceExt,
    runtime::events::{Event, EventType, Recorder, Reporter},
};

use super::{claims::ClaimIndex, metrics::Metrics, view::TenantViews};

/// Settings of the operator process that reconciles read.
#[derive(Debug, Clone)]
pub struct OperatorSettings {
    /// The Secret (`namespace`, `name`) used by objects that name none.
    pub default_connection: Option<(String, String)>,
    /// How often a converged object is looked at again.
    pub resync: Duration,
    /// How old a tenant view may be before a reconcile refreshes it.
    pub view_max_age: Duration,
    /// The share of each identity's Tier 1 budget the views may spend refreshing between
    /// reconciles to notice out-of-band edits and deletes (0: only when reconciles ask).
    pub read_budget_share: f64,
}

/// Everything a reconcile needs.
pub struct Context {
    /// The Kubernetes client.
    pub kube: kube::Client,
    /// One Qlik client (and rate limiter) per tenant and key.
    pub pool: Arc<ClientPool>,
    /// One list-based view per tenant and key.
    pub views: TenantViews,
    /// Every `QlikAutomation` the operator watches, for conflict checks.
    pub automations: super::Stores<QlikAutomation>,
    /// Which of them claim which remote (see [`Context::claimants`]).
    pub claims: Arc<ClaimIndex>,
    /// Every `QlikAutomationSettings` the operator watches, for conflict checks.
    pub settings: super::Stores<QlikAutomationSettings>,
    /// Publishes Events.
    pub recorder: Recorder,
    /// Process settings.
    pub config: OperatorSettings,
    /// Prometheus metrics.
    pub metrics: Arc<Metrics>,
    /// Recently read connection Secrets.
    pub credentials: Arc<crate::connection::CredentialCache>,
    /// Reconciles `QlikAutomation`s on demand, e.g. when their tenant view recovers.
    pub wake: Arc<super::wake::Wakers<QlikAutomation>>,
    failures: Mutex<HashMap<String, u32>>,
    /// When the `objects` gauge was last swept of objects that no longer exist.
    swept: Mutex<Option<Instant>>,
}

/// What a reconcile left in its object's `Ready` condition, for the `objects` gauge
/// (see [`Context::account`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReadyReport<'a> {
    /// `Ready` now has this status and reason.
    Reports {
        /// `True` or `False`.
        ready: ConditionStatus,
        /// The condition's reason, e.g. `Synced` or `Unauthorized`.
        reason: &'a str,
    },
    /// The object is gone (its finalizer completed): it is no longer counted.
    Gone,
    /// The conditions were left as they were (a failing delete): counted as before.
    Unchanged,
}

impl<'a> ReadyReport<'a> {
    /// After a sync that records its outcome in the conditions: `ready` and `reason` when it
    /// succeeded, `Ready=False` with the error's reason when it failed.
    pub fn synced(
        result: &Result<kube::runtime::controller::Action, Error>,
        ready: ConditionStatus,
        reason: &'a str,
    ) -> ReadyReport<'a> {
        match result {
            Ok(_) => ReadyReport::Reports { ready, reason },
            Err(e) => ReadyReport::Reports {
                ready: ConditionStatus::False,
                reason: e.reason(),
            },
        }
    }

    /// After a pass of the finalizer: gone once it succeeded; a failing delete leaves the
    /// conditions as they were.
    pub fn finalized(result: &Result<kube::runtime::controller::Action, Error>) -> ReadyReport<'a> {
        match result {
            Ok(_) => ReadyReport::Gone,
            Err(_) => ReadyReport::Unchanged,
        }
    }
}

/// How often, at most, the `objects` gauge is swept of objects deleted without a reconcile
/// seeing them go (a `QlikAutomationSettings` has no finalizer).
const SWEEP_EVERY: Duration = Duration::from_secs(10);

/// A reconcile failure, with the class that decides the condition reason and the requeue.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The Kubernetes API failed.
    #[error("Kubernetes API error: {0}")]
    Kube(#[from] kube::Error),
    /// The tenant refused or failed.
    #[error("{0}")]
    Qlik(#[from] QlikError),
    /// The connection Secret is missing or incomplete.
    #[error("{0}")]
    Connection(String),
    /// The spec cannot be applied as written (a missing ConfigMap, invalid workspace JSON).
    #[error("{0}")]
    InvalidSpec(String),
    /// Another object already manages the same remote.
    #[error("{0}")]
    Conflict(String),
    /// The automation named by the id annotation does not exist.
    #[error("{0}")]
    NotFound(String),
    /// The key may not do what the spec asks.
    #[error("{0}")]
    Forbidden(String),
    /// The tenant answered 404 for the linked remote automation with this id: it is gone.
    /// The reconciler decides whether that is a recreate or a `NotFound`.
    #[error("automation {0} answered 404: it no longer exists in the tenant")]
    RemoteGone(String),
    /// The spec uses a field the connection's API generation does not have; nothing was
    /// written.
    #[error("{0}")]
    Unsupported(String),
}

impl Error {
    /// The condition reason.
    pub fn reason(&self) -> &'static str {
        match self {
            Error::Kube(_) => "KubernetesError",
            Error::Qlik(e) => e.class().reason(),
            Error::Connection(_) => "ConnectionError",
            Error::InvalidSpec(_) => "InvalidSpec",
            Error::Conflict(_) => "Conflict",
            Error::NotFound(_) | Error::RemoteGone(_) => "NotFound",
            Error::Forbidden(_) => "Forbidden",
            Error::Unsupported(_) => "UnsupportedByApi",
        }
    }

    /// Whether trying again may succeed with no change by anyone (an outage, a 429, a
    /// failing apiserver): the object is `Reconciling`. Otherwise only a person can fix it
    /// (a refused key, a spec the tenant refuses, a conflict): the object is `Stalled`.
    pub fn is_transient(&self) -> bool {
        match self {
            Error::Kube(_) => true,
            Error::Qlik(e) => e.is_transient(),
            Error::Connection(_)
            | Error::InvalidSpec(_)
            | Error::Conflict(_)
            | Error::NotFound(_)
            | Error::Forbidden(_)
            | Error::RemoteGone(_)
            | Error::Unsupported(_) => false,
        }
    }

    /// How long to wait before trying again, given how many times in a row this object
    /// failed. Errors only a person can fix wait long; transient ones back off exponentially
    /// with jitter.
    pub fn requeue_after(&self, failures: u32) -> Duration {
        let class = match self {
            Error::Qlik(e) => Some(e.class()),
            _ => None,
        };
        match (self, class) {
            (_, Some(ErrorClass::RateLimited)) => {
                let wait = match self {
                    Error::Qlik(e) => e.retry_after().unwrap_or(Duration::from_secs(5)),
                    _ => Duration::from_secs(5),
                };
                wait + random_up_to(Duration::from_secs(2))
            }
            (_, Some(ErrorClass::Unauthorized | ErrorClass::Forbidden))
            | (Error::Connection(_) | Error::Forbidden(_), _) => PERSON_MUST_FIX.wait(failures),
            (Error::InvalidSpec(_) | Error::Unsupported(_), _)
            | (_, Some(ErrorClass::InvalidRequest | ErrorClass::Unsupported)) => {
                // A spec change triggers a reconcile by itself; this is only a safety net.
                Duration::from_secs(3600)
            }
            (Error::Conflict(_) | Error::NotFound(_) | Error::RemoteGone(_), _)
            | (_, Some(ErrorClass::NotFound)) => PERSON_MUST_FIX.wait(failures),
            _ => TRANSIENT.wait(failures),
        }
    }

    /// The message conditions and Events show: the error, with Qlik's traceId when the
    /// tenant gave one.
    pub fn message(&self) -> String {
        let mut message = self.to_string();
        if let Some(trace) = self.trace_id()
            && !message.contains(trace)
        {
            message.push_str(&format!(" (traceId {trace})"));
        }
        message
    }

    /// Qlik's trace id, when the tenant gave one.
    pub fn trace_id(&self) -> Option<&str> {
        match self {
            Error::Qlik(e) => e.trace_id(),
            _ => None,
        }
    }
}

/// `namespace/name` of an object, as the `objects` gauge keys it.
fn object_key<K: Resource>(obj: &K) -> String {
    format!(
        "{}/{}",
        obj.meta().namespace.as_deref().unwrap_or_default(),
        obj.meta().name.as_deref().unwrap_or_default()
    )
}

/// The error of a connection that could not be resolved. Failing to *reach* the apiserver
/// (an outage, a timeout, a 5xx or 429 while reading the Secret) is a transient Kubernetes
/// error, retried quickly; only an answer about the Secret itself (missing, incomplete, not
/// readable with the operator's RBAC) is a `ConnectionError` a person must fix, retried
/// slowly. Classifying an apiserver outage as the latter made objects wait up to ten minutes
/// after it ended.
fn connection_error(e: crate::connection::ConnectionError) -> Error {
    match e {
        crate::connection::ConnectionError::Read { source, .. } if !answered_about(&source) => {
            Error::Kube(source)
        }
        e => Error::Connection(e.to_string()),
    }
}

/// Whether the apiserver answered about the request itself (a 4xx other than 429), as
/// opposed to being unreachable, overloaded or failing.
fn answered_about(e: &kube::Error) -> bool {
    matches!(e, kube::Error::Api(s) if (400..500).contains(&s.code) && s.code != 429)
}

/// The requeue of an object after errors a person must fix: slow, so a broken object costs
/// little, but not so slow that a fix outside Kubernetes goes unseen for long.
const PERSON_MUST_FIX: Backoff = Backoff::new(Duration::from_secs(30), Duration::from_secs(600));

/// The requeue of an object after a transient error (an outage, a timeout, a 5xx). Capped
/// at 20 s (25 s with jitter) so that an object never waits more than that past the end of
/// an outage, however long it was; each retry costs at most one read (a failed tenant view
/// answers from its cache until its own retry is due).
const TRANSIENT: Backoff = Backoff::new(Duration::from_secs(1), Duration::from_secs(20));

impl Context {
    /// A context for the given clients and settings.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        kube: kube::Client,
        pool: Arc<ClientPool>,
        automations: super::Stores<QlikAutomation>,
        claims: Arc<ClaimIndex>,
        settings: super::Stores<QlikAutomationSettings>,
        config: OperatorSettings,
        metrics: Arc<Metrics>,
        credentials: Arc<crate::connection::CredentialCache>,
        wake: Arc<super::wake::Wakers<QlikAutomation>>,
    ) -> Context {
        let recorder = Recorder::new(
            kube.clone(),
            Reporter {
                controller: "qlik-automations-operator".into(),
                instance: std::env::var("POD_NAME").ok(),
            },
        );
        // A remote changed or gone outside Kubernetes wakes the objects linked to it.
        let index = claims.clone();
        let wakers = wake.clone();
        let on_change: super::view::OnChange = Arc::new(move |ids: &[String]| {
            for id in ids {
                for key in index.claimants(id) {
                    wakers.wake(key);
                }
            }
        });
        let views =
            TenantViews::new(config.view_max_age).with_drift_watch(super::view::DriftWatch {
                share: config.read_budget_share,
                on_change,
            });
        Context {
            kube,
            pool,
            views,
            automations,
            claims,
            settings,
            recorder,
            config,
            metrics,
            credentials,
            wake,
            failures: Mutex::new(HashMap::new()),
            swept: Mutex::new(None),
        }
    }

    /// Counts a reconcile of `obj` (of `kind`, `QlikAutomation` or `QlikAutomationSettings`)
    /// in the metrics and in `key`'s failure streak, and counts the object under what its
    /// `Ready` condition now says (`ready`); for a failure, returns how many failures in a
    /// row came before it (0 for the first).
    pub fn account<K: Resource<DynamicType = ()>>(
        &self,
        kind: &str,
        obj: &K,
        key: &str,
        started: Instant,
        result: &Result<kube::runtime::controller::Action, Error>,
        ready: ReadyReport<'_>,
    ) -> u32 {
        debug_assert_eq!(kind, K::kind(&()));
        let seconds = started.elapsed().as_secs_f64();
        let object = object_key(obj);
        match ready {
            ReadyReport::Reports { ready, reason } => {
                self.metrics
                    .object_ready(kind, &object, Some((ready, reason)))
            }
            ReadyReport::Gone => self.metrics.object_ready(kind, &object, None),
            ReadyReport::Unchanged => {}
        }
        self.sweep_objects();
        match result {
            Ok(_) => {
                self.record_success(key);
                self.metrics.reconciled(kind, "success", seconds);
                0
            }
            Err(err) => {
                let failures = self.record_failure(key);
                self.metrics.reconciled(kind, err.reason(), seconds);
                tracing::warn!(object = %key, reason = err.reason(), error = %err, "reconcile failed");
                failures
            }
        }
    }

    /// Publishes a failure as a Warning Event on the first failure in a row and every tenth
    /// after it (repeating it on every retry would flood the namespace), and returns its
    /// message for the conditions.
    pub async fn report_failure<K: Resource<DynamicType = ()>>(
        &self,
        obj: &K,
        err: &Error,
        failures: u32,
        action: &str,
    ) -> String {
        let message = err.message();
        if failures.is_multiple_of(10) {
            self.event(
                obj,
                EventType::Warning,
                err.reason(),
                action,
                message.clone(),
            )
            .await;
        }
        message
    }

    /// The watched `QlikAutomation`s that claim remote `id` (the annotation's id, else the
    /// status's): usually none or one, found without scanning every object.
    pub fn claimants(&self, id: &str) -> Vec<Arc<QlikAutomation>> {
        self.claims
            .claimants(id)
            .iter()
            .filter_map(|key| self.automations.get(key))
            .collect()
    }

    /// Stops counting, in the `objects` gauge, the objects no longer in the watch stores
    /// (deleted without a reconcile seeing them go); at most every [`SWEEP_EVERY`].
    fn sweep_objects(&self) {
        {
            let mut swept = self.swept.lock().unwrap_or_else(|e| e.into_inner());
            if swept.is_some_and(|at| at.elapsed() < SWEEP_EVERY) {
                return;
            }
            *swept = Some(Instant::now());
        }
        let listed_at = Instant::now();
        let automations: HashSet<String> = self
            .automations
            .state()
            .iter()
            .map(|o| object_key(o.as_ref()))
            .collect();
        let settings: HashSet<String> = self
            .settings
            .state()
            .iter()
            .map(|o| object_key(o.as_ref()))
            .collect();
        self.metrics
            .retain_objects(&QlikAutomation::kind(&()), listed_at, |o| {
                automations.contains(o)
            });
        self.metrics
            .retain_objects(&QlikAutomationSettings::kind(&()), listed_at, |o| {
                settings.contains(o)
            });
    }

    /// Counts a failure of `key` and returns how many in a row it has now.
    fn record_failure(&self, key: &str) -> u32 {
        let mut failures = self.failures.lock().unwrap_or_else(|e| e.into_inner());
        let n = failures.entry(key.to_owned()).or_insert(0);
        let before = *n;
        *n = n.saturating_add(1);
        before
    }

    /// Forgets the failures of `key` after a success.
    fn record_success(&self, key: &str) {
        self.failures
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(key);
    }

    /// The Qlik client for `obj`'s connection (see [`Context::client_for`]).
    pub async fn client_of<K: super::status::Managed>(&self, obj: &K) -> Result<QlikClient, Error> {
        self.client_for(&obj.namespace().unwrap_or_default(), obj.connection())
            .await
    }

    /// The Qlik client for an object's connection, resolved from a Secret in its namespace
    /// (or the operator's default connection when it names none).
    pub async fn client_for(
        &self,
        namespace: &str,
        connection: Option<&Connection>,
    ) -> Result<QlikClient, Error> {
        let (secret_ns, secret_name) = crate::connection::secret_of(
            namespace,
            connection,
            self.config.default_connection.as_ref(),
        )
        .map_err(|e| Error::Connection(e.to_string()))?;
        let credentials = match self.credentials.get(&secret_ns, &secret_name) {
            Some(c) => c,
            None => {
                let c = crate::connection::read_secret(&self.kube, &secret_ns, &secret_name)
                    .await
                    .map_err(connection_error)?;
                self.credentials.put(&secret_ns, &secret_name, c.clone());
                c
            }
        };
        self.pool
            .client(
                &credentials.tenant_url,
                &credentials.credential,
                credentials.api,
            )
            .map_err(|e| Error::Connection(format!("Secret {}: {e}", credentials.secret)))
    }

    /// Tells, with one Warning Event on `obj`, that the tenant deprecates the API generation
    /// `client` speaks: once per connection and process (the first object reconciled after
    /// the first deprecated answer), never as an error.
    pub async fn warn_if_deprecated<K: Resource<DynamicType = ()>>(
        &self,
        obj: &K,
        client: &QlikClient,
    ) {
        if let Some(notice) = client.take_deprecation_notice() {
            let sunset = notice
                .sunset
                .map(|s| format!(" (Sunset: {s})"))
                .unwrap_or_default();
            self.event(
                obj,
                EventType::Warning,
                "DeprecatedApi",
                "Connect",
                format!(
                    "the tenant deprecates the {} Automations API this connection uses{sunset}; Qlik announced its removal on or after 2027-11-30. Set the connection Secret's key api to workflows (the default).",
                    notice.api
                ),
            )
            .await;
        }
    }

    /// Publishes an Event about `obj`; a failure to publish is logged, never fatal.
    pub async fn event<K: Resource<DynamicType = ()>>(
        &self,
        obj: &K,
        type_: EventType,
        reason: &str,
        action: &str,
        note: String,
    ) {
        let event = Event {
            type_,
            reason: reason.to_owned(),
            note: Some(super::conditions::truncate(&note, 1000)),
            action: action.to_owned(),
            secondary: None,
        };
        if let Err(e) = self.recorder.publish(&event, &obj.object_ref(&())).await {
            tracing::warn!(object = %obj.name_any(), error = %e, "could not publish an Event");
        }
    }
}

#[cfg(test)]
mod connection_error_tests {
    use super::*;
    use crate::connection::ConnectionError;

    fn read(source: kube::Error) -> ConnectionError {
        ConnectionError::Read {
            namespace: "ns".into(),
            name: "qlik".into(),
            source,
        }
    }

    fn api(code: u16) -> kube::Error {
        kube::Error::Api(Box::new(kube::core::Status {
            code,
            message: format!("HTTP {code}"),
            ..kube::core::Status::default()
        }))
    }

    #[test]
    fn an_unreachable_apiserver_is_transient_and_a_refused_secret_is_not() {
        let outage = read(kube::Error::Service("client error (Connect)".into()));
        assert_eq!(connection_error(outage).reason(), "KubernetesError");
        for code in [429, 500, 503] {
            assert_eq!(
                connection_error(read(api(code))).reason(),
                "KubernetesError"
            );
        }
        for code in [401, 403] {
            let e = connection_error(read(api(code)));
            assert_eq!(e.reason(), "ConnectionError");
            assert!(e.to_string().contains("ns/qlik"), "{e}");
        }
        let missing = ConnectionError::Invalid("Secret ns/qlik does not exist".into());
        assert_eq!(connection_error(missing).reason(), "ConnectionError");
    }
}
