//! The operator: both reconcilers, the watches that feed them, and the process around them
//! (health and metrics endpoints, leader election, graceful shutdown).

pub mod automation;
pub mod conditions;
pub mod connection;
pub mod context;
pub mod decide;
pub mod leader;
pub mod metrics;
pub mod plan;
pub mod server;
pub mod settings;
pub mod status;
pub mod view;
pub mod wake;

use std::{
    net::SocketAddr,
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    time::Duration,
};

use futures::StreamExt;
use k8s_openapi::api::core::v1::{ConfigMap, Secret};
use kube::{
    Api, Client, ResourceExt,
    runtime::{
        Controller, Predicate, WatchStreamExt,
        controller::Config as ControllerConfig,
        predicates,
        reflector::{self, ObjectRef, Store},
        watcher,
    },
};

use crate::{
    crd::{QlikAutomation, QlikAutomationSettings},
    qlik::{ApiKey, ClientConfig, ClientPool, RateLimits},
};

pub use context::{Context, Error, OperatorSettings};

/// Flags of `qlik-automations-operator run`; each is also read from an environment variable.
#[derive(Debug, Clone, clap::Args)]
pub struct RunArgs {
    /// Namespaces to watch, comma separated; all namespaces when empty.
    #[arg(long, env = "QAO_NAMESPACES", value_delimiter = ',')]
    pub namespaces: Vec<String>,
    /// Only reconcile objects matching this label selector (e.g. `team=data`).
    #[arg(long, env = "QAO_LABEL_SELECTOR")]
    pub label_selector: Option<String>,
    /// A Secret (`namespace/name`) with `tenantUrl` and `apiKey` used by objects that set no
    /// `spec.connection`.
    #[arg(long, env = "QAO_DEFAULT_CONNECTION")]
    pub default_connection: Option<String>,
    /// How many objects are reconciled at once.
    #[arg(long, env = "QAO_CONCURRENCY", default_value_t = 8)]
    pub concurrency: u16,
    /// How often a converged object is compared with the tenant again, in seconds.
    #[arg(long, env = "QAO_RESYNC_SECONDS", default_value_t = 300)]
    pub resync_seconds: u64,
    /// How old a tenant's list view may get before a reconcile refreshes it, in seconds
    /// (default: the resync interval, so a converged tenant costs one list pass per resync).
    /// Out-of-band edits are noticed within this time.
    #[arg(long, env = "QAO_VIEW_MAX_AGE_SECONDS")]
    pub view_max_age_seconds: Option<u64>,
    /// Address of the `/metrics`, `/healthz` and `/readyz` endpoints.
    #[arg(long, env = "QAO_LISTEN", default_value = "0.0.0.0:8080")]
    pub listen: SocketAddr,
    /// Elect one active replica through a Lease (turn on when running more than one).
    #[arg(long, env = "QAO_LEADER_ELECTION", default_value_t = false)]
    pub leader_election: bool,
    /// Namespace of the leader-election Lease (default: the pod's namespace, else `default`).
    #[arg(long, env = "QAO_LEASE_NAMESPACE")]
    pub lease_namespace: Option<String>,
    /// Name of the leader-election Lease.
    #[arg(
        long,
        env = "QAO_LEASE_NAME",
        default_value = "qlik-automations-operator"
    )]
    pub lease_name: String,
    /// Qlik Tier 1 (read) requests per minute per tenant and key.
    #[arg(long, env = "QAO_TIER1_PER_MINUTE", default_value_t = 1000)]
    pub tier1_per_minute: u32,
    /// Qlik Tier 2 (write) requests per minute per tenant and key.
    #[arg(long, env = "QAO_TIER2_PER_MINUTE", default_value_t = 100)]
    pub tier2_per_minute: u32,
    /// Timeout of one request to Qlik, in seconds.
    #[arg(long, env = "QAO_REQUEST_TIMEOUT_SECONDS", default_value_t = 30)]
    pub request_timeout_seconds: u64,
    /// Do not verify the tenant's TLS certificate. Dangerous; for test tenants only.
    #[arg(long, env = "QAO_INSECURE_SKIP_TLS_VERIFY", default_value_t = false)]
    pub insecure_skip_tls_verify: bool,
}

/// The stores of several namespaces seen as one.
#[derive(Clone)]
pub struct Stores<K: kube::Resource<DynamicType = ()> + Clone + 'static>(Vec<Store<K>>);

impl<K: kube::Resource<DynamicType = ()> + Clone + 'static> Stores<K> {
    /// Every object in every store.
    pub fn state(&self) -> Vec<Arc<K>> {
        self.0.iter().flat_map(|s| s.state()).collect()
    }
}

/// Runs the operator until SIGTERM or SIGINT.
pub async fn run(args: RunArgs) -> anyhow::Result<()> {
    let client = Client::try_default().await?;
    let metrics = Arc::new(metrics::Metrics::default());
    let ready = Arc::new(AtomicBool::new(false));
    let server = tokio::spawn(server::serve(args.listen, metrics.clone(), ready.clone()));

    // Ready means the process is up and talking to the apiserver, leader or not: a standby
    // replica that never became ready would stall every rolling update. An apiserver that
    // cannot be reached yet (a restart, a cluster still coming up) is waited for, live but
    // not ready, until SIGTERM.
    tokio::select! {
        () = wait_for_apiserver(&client) => {}
        () = shutdown_signal() => {
            server.abort();
            tracing::info!("stopped before the apiserver could be reached");
            return Ok(());
        }
    }
    ready.store(true, Ordering::SeqCst);

    if args.leader_election {
        let namespace = args
            .lease_namespace
            .clone()
            .or_else(|| std::env::var("POD_NAMESPACE").ok())
            .unwrap_or_else(|| "default".into());
        leader::acquire(
            client.clone(),
            &namespace,
            &args.lease_name,
            metrics.clone(),
        )
        .await?;
    } else {
        metrics.leader.set(1);
    }

    let mut template = ClientConfig::new("https://unused.invalid", ApiKey::new("unused"));
    template.rate_limits = RateLimits {
        tier1_per_minute: args.tier1_per_minute,
        tier2_per_minute: args.tier2_per_minute,
        window: Duration::from_secs(60),
    };
    template.request_timeout = Duration::from_secs(args.request_timeout_seconds);
    template.insecure_skip_tls_verify = args.insecure_skip_tls_verify;
    let pool = ClientPool::new(template);
    let settings = OperatorSettings {
        default_connection: connection::parse_secret_ref(args.default_connection.as_deref())
            .map_err(anyhow::Error::msg)?,
        resync: Duration::from_secs(args.resync_seconds.max(1)),
        view_max_age: Duration::from_secs(args.view_max_age_seconds.unwrap_or(args.resync_seconds)),
    };

    let mut watch_config = watcher::Config::default().any_semantic();
    if let Some(selector) = &args.label_selector {
        watch_config = watch_config.labels(selector);
    }
    let namespaces: Vec<Option<String>> = if args.namespaces.iter().all(|n| n.trim().is_empty()) {
        vec![None]
    } else {
        args.namespaces
            .iter()
            .map(|n| n.trim())
            .filter(|n| !n.is_empty())
            .map(|n| Some(n.to_owned()))
            .collect()
    };
    fn api_in<K>(client: &Client, ns: &Option<String>) -> Api<K>
    where
        K: kube::Resource<Scope = kube::core::NamespaceResourceScope, DynamicType = ()>,
    {
        match ns {
            Some(ns) => Api::namespaced(client.clone(), ns),
            None => Api::all(client.clone()),
        }
    }

    let credentials = Arc::new(connection::CredentialCache::default());
    let mut wakers = wake::Wakers::default();
    let controller_config = ControllerConfig::default().concurrency(args.concurrency.max(1));
    let mut automation_controllers = Vec::new();
    let mut settings_controllers = Vec::new();
    for ns in &namespaces {
        let (reader_a, writer_a) = reflector::store();
        let (reader_s, writer_s) = reflector::store();
        let automations = Controller::for_stream(
            spec_changes(
                api_in::<QlikAutomation>(&client, ns),
                watch_config.clone(),
                writer_a,
            ),
            reader_a,
        )
        .with_config(controller_config.clone())
        .trigger_backoff(watch_backoff())
        .reconcile_on(wakers.channel(ns.clone()));
        let automation_store = automations.store();
        // A changed Secret or ConfigMap reconciles the objects that use it.
        let by_secret = automation_store.clone();
        let by_map = automation_store.clone();
        let default_secret = settings.default_connection.clone();
        let secret_cache = credentials.clone();
        let automations = automations
            .watches(
                api_in::<Secret>(&client, ns),
                watcher::Config::default(),
                move |secret| {
                    secret_cache
                        .invalidate(&secret.namespace().unwrap_or_default(), &secret.name_any());
                    let is_default = default_secret.as_ref().is_some_and(|(ns, name)| {
                        secret.namespace().as_deref() == Some(ns.as_str())
                            && secret.name_any() == *name
                    });
                    if is_default {
                        // Every object without a connection of its own uses the default.
                        return by_secret
                            .state()
                            .iter()
                            .filter(|a| a.spec.connection.is_none())
                            .map(|a| ObjectRef::from_obj(a.as_ref()))
                            .collect();
                    }
                    referencing(&by_secret, &secret, |a, name| {
                        a.spec
                            .connection
                            .as_ref()
                            .is_some_and(|c| c.secret_ref.name == name)
                    })
                },
            )
            .watches(
                api_in::<ConfigMap>(&client, ns),
                watcher::Config::default(),
                move |map| {
                    referencing(&by_map, &map, |a, name| {
                        a.spec
                            .workspace_from
                            .as_ref()
                            .is_some_and(|w| w.config_map_key_ref.name == name)
                    })
                },
            );
        let settings_controller = Controller::for_stream(
            spec_changes(
                api_in::<QlikAutomationSettings>(&client, ns),
                watch_config.clone(),
                writer_s,
            ),
            reader_s,
        )
        .with_config(controller_config.clone())
        .trigger_backoff(watch_backoff());
        settings_controllers.push(settings_controller);
        automation_controllers.push(automations);
    }
    let automation_stores = Stores(automation_controllers.iter().map(|c| c.store()).collect());
    let settings_stores = Stores(settings_controllers.iter().map(|c| c.store()).collect());
    let ctx = Arc::new(Context::new(
        client.clone(),
        pool,
        automation_stores,
        settings_stores,
        settings,
        metrics.clone(),
        credentials,
        Arc::new(wakers),
    ));

    let mut tasks = Vec::new();
    for c in automation_controllers {
        let ctx = ctx.clone();
        tasks.push(tokio::spawn(
            c.shutdown_on_signal()
                .run(automation::reconcile, automation::error_policy, ctx)
                .for_each(|r| async move {
                    if let Err(e) = r {
                        tracing::debug!(error = %e, "QlikAutomation controller event");
                    }
                }),
        ));
    }
    for c in settings_controllers {
        let ctx = ctx.clone();
        tasks.push(tokio::spawn(
            c.shutdown_on_signal()
                .run(settings::reconcile, settings::error_policy, ctx)
                .for_each(|r| async move {
                    if let Err(e) = r {
                        tracing::debug!(error = %e, "QlikAutomationSettings controller event");
                    }
                }),
        ));
    }
    tracing::info!(namespaces = ?args.namespaces, "operator started");
    for t in tasks {
        let _ = t.await;
    }
    server.abort();
    tracing::info!("operator stopped");
    Ok(())
}

/// Waits until the apiserver answers, retrying with capped, jittered backoff and saying
/// so in the log; never gives up (SIGTERM ends the wait, see `run`).
async fn wait_for_apiserver(client: &Client) {
    const RETRY: crate::backoff::Backoff =
        crate::backoff::Backoff::new(Duration::from_millis(500), Duration::from_secs(10));
    let mut attempt = 0;
    loop {
        match client.apiserver_version().await {
            Ok(version) => {
                if attempt > 0 {
                    tracing::info!(version = %version.git_version, "the apiserver answers");
                }
                return;
            }
            Err(e) => {
                let wait = RETRY.wait(attempt);
                tracing::warn!(error = %e, retry_in = ?wait, "the apiserver cannot be reached yet; waiting for it");
                tokio::time::sleep(wait).await;
                attempt += 1;
            }
        }
    }
}

/// Resolves on SIGTERM or SIGINT.
async fn shutdown_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = term.recv() => {}
                    _ = tokio::signal::ctrl_c() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

/// The watch of `api` that feeds a controller: every object goes into the store, but only a
/// change of generation (spec, deletion) or of annotations (adoption, run and reconcile
/// requests) triggers a reconcile. Status writes, the operator's own included, do not: a
/// failing object whose condition message changes on every attempt (Qlik's traceId) would
/// otherwise reconcile itself in a loop.
fn spec_changes<K>(
    api: Api<K>,
    config: watcher::Config,
    writer: reflector::store::Writer<K>,
) -> impl futures::Stream<Item = Result<K, watcher::Error>> + Send + 'static
where
    K: kube::Resource<DynamicType = ()>
        + Clone
        + serde::de::DeserializeOwned
        + std::fmt::Debug
        + Send
        + Sync
        + 'static,
{
    watcher(api, config)
        .backoff(watch_backoff())
        // managedFields are often the largest part of an object and nothing here reads them.
        .modify(|obj| obj.meta_mut().managed_fields = None)
        .reflect(writer)
        .applied_objects()
        .predicate_filter(
            predicates::generation.combine(user_annotations),
            Default::default(),
        )
}

/// The backoff of every watch after an error: client-go's shape (0.5 s, doubling, with
/// jitter) but capped at 5 s (plus jitter) instead of kube's default 30 s. After an
/// apiserver outage a watch first waits out its grown backoff, then fails once more with
/// 410 Gone (its resourceVersion is too old for the restarted apiserver) and waits again
/// before it relists; with the default cap, and the controller's shared trigger backoff on
/// top, changes made after the apiserver came back went unseen for minutes. A retry every
/// 5 s during an outage costs one cheap request per watch.
fn watch_backoff() -> WatchBackoff {
    WatchBackoff { next: None }
}

/// See [`watch_backoff`]: 0.5 s, doubling up to 5 s, each with up to 50 % jitter; reset by
/// the stream on its next success.
struct WatchBackoff {
    next: Option<Duration>,
}

impl WatchBackoff {
    const FIRST: Duration = Duration::from_millis(500);
    const MAX: Duration = Duration::from_secs(5);
}

impl Iterator for WatchBackoff {
    type Item = Duration;

    fn next(&mut self) -> Option<Duration> {
        use rand::Rng;
        let base = self.next.unwrap_or(Self::FIRST);
        self.next = Some((base * 2).min(Self::MAX));
        let jitter = rand::rng().random_range(0..=base.as_millis() as u64 / 2);
        Some(base + Duration::from_millis(jitter))
    }
}

impl kube::runtime::utils::Backoff for WatchBackoff {
    fn reset(&mut self) {
        self.next = None;
    }
}

/// A hash of the annotations, except the create intent the operator writes and clears around
/// every create: reacting to it would turn each failed create into an immediate retry.
fn user_annotations<K: kube::Resource>(obj: &K) -> Option<u64> {
    use std::hash::{DefaultHasher, Hash, Hasher};
    let mut hasher = DefaultHasher::new();
    let mut annotations: Vec<_> = obj
        .meta()
        .annotations
        .iter()
        .flatten()
        .filter(|(k, _)| k.as_str() != crate::crd::ANNOTATION_CREATE_PENDING)
        .collect();
    annotations.sort();
    annotations.hash(&mut hasher);
    Some(hasher.finish())
}

/// The automations in `store` that use the Secret or ConfigMap `other`.
fn referencing<O: ResourceExt>(
    store: &Store<QlikAutomation>,
    other: &O,
    uses: impl Fn(&QlikAutomation, &str) -> bool,
) -> Vec<ObjectRef<QlikAutomation>> {
    let name = other.name_any();
    let ns = other.namespace();
    store
        .state()
        .iter()
        .filter(|a| a.namespace() == ns && uses(a, &name))
        .map(|a| ObjectRef::from_obj(a.as_ref()))
        .collect()
}

#[cfg(test)]
mod watch_backoff_tests {
    use super::*;

    #[test]
    fn watches_back_off_briefly_even_after_a_long_outage() {
        let mut backoff = watch_backoff();
        let waits: Vec<Duration> = (0..30).map(|_| backoff.next().unwrap()).collect();
        assert!(waits[0] < Duration::from_secs(1), "{waits:?}");
        assert!(
            waits.iter().all(|w| *w <= Duration::from_millis(7500)),
            "{waits:?}"
        );
        assert!(waits[29] >= Duration::from_secs(5), "{waits:?}");
        kube::runtime::utils::Backoff::reset(&mut backoff);
        assert!(backoff.next().unwrap() < Duration::from_secs(1));
    }
}
