//! The operator process: the Kubernetes client, health and metrics endpoints, leader
//! election, both controllers wired to their watches, and a graceful stop on SIGTERM.

use std::{
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
        Controller,
        controller::Config as ControllerConfig,
        reflector::{self, ObjectRef},
        watcher,
    },
};
use tokio::{
    sync::watch,
    task::{JoinHandle, JoinSet},
};

use crate::{
    connection,
    crd::{QlikAutomation, QlikAutomationSettings},
    qlik::{ApiKey, ClientConfig, ClientPool, RateLimits},
};

use super::{
    Context, OperatorSettings, RunArgs, automation,
    claims::ClaimIndex,
    leader, metrics, server, settings, wake,
    watches::{Stores, referencing, spec_changes, watch_backoff},
};

/// Runs the operator until SIGTERM or SIGINT, or until it loses the leader Lease (an error,
/// so that the process exits non-zero and restarts as a follower).
pub async fn run(args: RunArgs) -> anyhow::Result<()> {
    // Listening from the start, so a signal that arrives between two phases is not lost.
    let (signals, signal_task) = listen_for_signals()?;
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
        () = signalled(&signals, 1) => {
            server.abort();
            signal_task.abort();
            tracing::info!("stopped before the apiserver could be reached");
            return Ok(());
        }
    }
    ready.store(true, Ordering::SeqCst);

    // A standby waits here (ready, not reconciling) until it holds the Lease or is stopped.
    let leadership = if args.leader_election {
        let namespace = args
            .lease_namespace
            .clone()
            .or_else(|| std::env::var("POD_NAMESPACE").ok())
            .unwrap_or_else(|| "default".into());
        let acquired = leader::acquire(
            client.clone(),
            &namespace,
            &args.lease_name,
            metrics.clone(),
            signalled(&signals, 1),
        )
        .await;
        if acquired.is_none() {
            server.abort();
            signal_task.abort();
            tracing::info!("stopped while waiting to become leader");
            return Ok(());
        }
        acquired
    } else {
        metrics.leader.set(1);
        None
    };

    let mut template = ClientConfig::new("https://unused.invalid", ApiKey::new("unused"));
    template.rate_limits = RateLimits {
        tier1_per_minute: args.tier1_per_minute,
        tier2_per_minute: args.tier2_per_minute,
        window: Duration::from_secs(args.rate_window_seconds),
    };
    template.request_timeout = Duration::from_secs(args.request_timeout_seconds);
    template.insecure_skip_tls_verify = args.insecure_skip_tls_verify;
    // Every request to Qlik, its wait for a send slot and the budget left end up in /metrics.
    template.telemetry = Some(metrics.clone());
    let pool = ClientPool::new(template);
    let settings = OperatorSettings {
        default_connection: connection::parse_secret_ref(args.default_connection.as_deref())
            .map_err(anyhow::Error::msg)?,
        resync: Duration::from_secs(args.resync_seconds.max(1)),
        view_max_age: Duration::from_secs(args.view_max_age_seconds.unwrap_or(args.resync_seconds)),
        read_budget_share: args.read_budget_share,
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
    let claims = Arc::new(ClaimIndex::new(automation::linked_str));
    let mut automation_controllers = Vec::new();
    let mut settings_controllers = Vec::new();
    for ns in &namespaces {
        let (reader_a, writer_a) = reflector::store();
        let (reader_s, writer_s) = reflector::store();
        let (part, index) = (claims.add_part(), claims.clone());
        let automations = Controller::for_stream(
            spec_changes(
                api_in::<QlikAutomation>(&client, ns),
                watch_config.clone(),
                writer_a,
                move |event| index.apply(part, event),
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
                |_| {},
            ),
            reader_s,
        )
        .with_config(controller_config.clone())
        .trigger_backoff(watch_backoff());
        settings_controllers.push(settings_controller);
        automation_controllers.push(automations);
    }
    let automation_stores = Stores::new(automation_controllers.iter().map(|c| c.store()).collect());
    let settings_stores = Stores::new(settings_controllers.iter().map(|c| c.store()).collect());
    let ctx = Arc::new(Context::new(
        client.clone(),
        pool,
        automation_stores,
        claims,
        settings_stores,
        settings,
        metrics.clone(),
        credentials,
        Arc::new(wakers),
    ));

    // The controllers stop gracefully (in-flight reconciles finish, nothing new starts) on the
    // first SIGTERM/SIGINT or when leadership is lost.
    let lost = || {
        let lost = leadership.as_ref().map(leader::Leadership::lost);
        async move {
            match lost {
                Some(lost) => lost.await,
                None => std::future::pending().await,
            }
        }
    };
    let stop = || {
        let signalled = signalled(&signals, 1);
        let lost = lost();
        async move {
            tokio::select! {
                () = signalled => {}
                () = lost => {}
            }
        }
    };
    let mut tasks = JoinSet::new();
    for c in automation_controllers {
        let ctx = ctx.clone();
        tasks.spawn(
            c.graceful_shutdown_on(stop())
                .run(automation::reconcile, automation::error_policy, ctx)
                .for_each(|r| async move {
                    if let Err(e) = r {
                        tracing::debug!(error = %e, "QlikAutomation controller event");
                    }
                }),
        );
    }
    for c in settings_controllers {
        let ctx = ctx.clone();
        tasks.spawn(
            c.graceful_shutdown_on(stop())
                .run(settings::reconcile, settings::error_policy, ctx)
                .for_each(|r| async move {
                    if let Err(e) = r {
                        tracing::debug!(error = %e, "QlikAutomationSettings controller event");
                    }
                }),
        );
    }
    tracing::info!(namespaces = ?args.namespaces, "operator started");
    // In-flight reconciles are aborted on a second signal, or once a lost Lease may already
    // be someone else's.
    let lost_a_while_ago = async {
        lost().await;
        tokio::time::sleep(leader::DRAIN_AFTER_LOSS).await;
    };
    let forced = tokio::select! {
        () = async { while tasks.join_next().await.is_some() {} } => None,
        () = signalled(&signals, 2) => Some("a second signal"),
        () = lost_a_while_ago => Some("the lost Lease may have a new holder by now"),
    };
    if let Some(why) = forced {
        tracing::warn!("aborting in-flight reconciles: {why}");
        tasks.abort_all();
        while tasks.join_next().await.is_some() {}
    }
    signal_task.abort();
    // Only now, with no reconcile left running, is the Lease released (or the loss reported).
    let stepped_down = match leadership {
        Some(leadership) => leadership.step_down().await,
        None => Ok(()),
    };
    server.abort();
    match stepped_down {
        Ok(()) => {
            tracing::info!("operator stopped");
            Ok(())
        }
        Err(loss) => {
            tracing::error!("operator stopped: {loss}");
            Err(anyhow::Error::new(loss).context("stopped reconciling"))
        }
    }
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

/// Counts SIGTERM and SIGINT from now on: the first stops the operator gracefully, a second
/// aborts what is still running. The handlers are installed before this returns.
fn listen_for_signals() -> anyhow::Result<(watch::Receiver<u32>, JoinHandle<()>)> {
    let (count, signals) = watch::channel(0);
    #[cfg(unix)]
    let task = {
        use tokio::signal::unix::{SignalKind, signal};
        let mut term = signal(SignalKind::terminate())?;
        let mut int = signal(SignalKind::interrupt())?;
        tokio::spawn(async move {
            loop {
                tokio::select! {
                    _ = term.recv() => {}
                    _ = int.recv() => {}
                }
                count.send_modify(|n| *n += 1);
                if *count.borrow() == 1 {
                    tracing::info!("SIGTERM or SIGINT: stopping gracefully");
                }
            }
        })
    };
    #[cfg(not(unix))]
    let task = tokio::spawn(async move {
        loop {
            let _ = tokio::signal::ctrl_c().await;
            count.send_modify(|n| *n += 1);
        }
    });
    Ok((signals, task))
}

/// Resolves once `n` signals have arrived.
fn signalled(
    signals: &watch::Receiver<u32>,
    n: u32,
) -> impl Future<Output = ()> + Send + Sync + 'static {
    let mut signals = signals.clone();
    async move {
        let _ = signals.wait_for(|count| *count >= n).await;
    }
}
