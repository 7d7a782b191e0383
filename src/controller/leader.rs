//! Leader election on a `coordination.k8s.io/v1` Lease, so that only one replica writes to
//! the tenant when several run.
//!
//! The holder renews the Lease every few seconds; another replica takes over once a Lease has
//! not been renewed for its whole duration. A leader that cannot renew in time exits rather
//! than risk two replicas writing at once; its Deployment restarts it as a follower.

use std::time::Duration;

use k8s_openapi::{
    api::coordination::v1::{Lease, LeaseSpec},
    apimachinery::pkg::apis::meta::v1::MicroTime,
    jiff::Timestamp,
};
use kube::{
    Api, Client,
    api::{ObjectMeta, PostParams},
};
use std::sync::Arc;

use super::metrics::Metrics;

const LEASE_DURATION: Duration = Duration::from_secs(15);
const RENEW_EVERY: Duration = Duration::from_secs(5);
const RETRY_EVERY: Duration = Duration::from_secs(2);

/// This replica's identity: the pod name when known, plus a random suffix so that a
/// restarted pod with the same name is not mistaken for the old holder.
fn identity() -> String {
    let base = std::env::var("POD_NAME")
        .or_else(|_| std::env::var("HOSTNAME"))
        .unwrap_or_else(|_| "qlik-automations-operator".into());
    format!("{base}-{}", &uuid::Uuid::new_v4().simple().to_string()[..8])
}

/// Whether `lease` may be taken by `me` now.
fn claimable(lease: &Lease, me: &str, now: Timestamp) -> bool {
    let Some(spec) = &lease.spec else { return true };
    let holder = spec.holder_identity.as_deref().unwrap_or_default();
    if holder.is_empty() || holder == me {
        return true;
    }
    let duration = i64::from(spec.lease_duration_seconds.unwrap_or(15));
    match &spec.renew_time {
        Some(MicroTime(renewed)) => now.as_second() > renewed.as_second() + duration,
        None => true,
    }
}

/// One attempt to take or renew the Lease; `Ok(false)` when another replica holds it.
async fn try_hold(api: &Api<Lease>, name: &str, me: &str) -> Result<bool, kube::Error> {
    let now = Timestamp::now();
    let spec = |transitions: i32, acquired: Option<MicroTime>| LeaseSpec {
        holder_identity: Some(me.to_owned()),
        lease_duration_seconds: Some(LEASE_DURATION.as_secs() as i32),
        acquire_time: acquired.or(Some(MicroTime(now))),
        renew_time: Some(MicroTime(now)),
        lease_transitions: Some(transitions),
        ..LeaseSpec::default()
    };
    match api.get_opt(name).await? {
        None => {
            let lease = Lease {
                metadata: ObjectMeta {
                    name: Some(name.to_owned()),
                    ..ObjectMeta::default()
                },
                spec: Some(spec(0, None)),
            };
            match api.create(&PostParams::default(), &lease).await {
                Ok(_) => Ok(true),
                Err(kube::Error::Api(e)) if e.code == 409 => Ok(false),
                Err(e) => Err(e),
            }
        }
        Some(mut lease) => {
            if !claimable(&lease, me, now) {
                return Ok(false);
            }
            let old = lease.spec.clone().unwrap_or_default();
            let same_holder = old.holder_identity.as_deref() == Some(me);
            let transitions = old.lease_transitions.unwrap_or(0) + i32::from(!same_holder);
            let acquired = if same_holder { old.acquire_time } else { None };
            lease.spec = Some(spec(transitions, acquired));
            // replace() carries the resourceVersion read above: a concurrent taker gets a 409.
            match api.replace(name, &PostParams::default(), &lease).await {
                Ok(_) => Ok(true),
                Err(kube::Error::Api(e)) if e.code == 409 => Ok(false),
                Err(e) => Err(e),
            }
        }
    }
}

/// Waits until this replica holds the Lease, then keeps renewing it in the background.
pub async fn acquire(
    client: Client,
    namespace: &str,
    name: &str,
    metrics: Arc<Metrics>,
) -> anyhow::Result<()> {
    let api: Api<Lease> = Api::namespaced(client, namespace);
    let me = identity();
    tracing::info!(lease = %format!("{namespace}/{name}"), identity = %me, "waiting to become leader");
    loop {
        match try_hold(&api, name, &me).await {
            Ok(true) => break,
            Ok(false) => {}
            Err(e) => tracing::warn!(error = %e, "leader election: cannot read or write the Lease"),
        }
        tokio::time::sleep(RETRY_EVERY).await;
    }
    tracing::info!(identity = %me, "became leader");
    metrics.leader.set(1);
    let name = name.to_owned();
    tokio::spawn(async move {
        let mut last_renewed = tokio::time::Instant::now();
        loop {
            tokio::time::sleep(RENEW_EVERY).await;
            match try_hold(&api, &name, &me).await {
                Ok(true) => last_renewed = tokio::time::Instant::now(),
                Ok(false) => {
                    tracing::error!("lost the leader Lease to another replica; exiting");
                    std::process::exit(1);
                }
                Err(e) => tracing::warn!(error = %e, "leader election: renewing the Lease failed"),
            }
            if last_renewed.elapsed() >= LEASE_DURATION {
                tracing::error!("could not renew the leader Lease in time; exiting");
                std::process::exit(1);
            }
        }
    });
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lease(holder: &str, renewed_secs_ago: i64) -> Lease {
        let now = Timestamp::now().as_second();
        Lease {
            metadata: ObjectMeta::default(),
            spec: Some(LeaseSpec {
                holder_identity: Some(holder.into()),
                lease_duration_seconds: Some(15),
                renew_time: Some(MicroTime(
                    Timestamp::from_second(now - renewed_secs_ago).unwrap(),
                )),
                ..LeaseSpec::default()
            }),
        }
    }

    #[test]
    fn a_live_lease_of_another_holder_is_not_claimable() {
        let now = Timestamp::now();
        assert!(!claimable(&lease("other", 3), "me", now));
        assert!(claimable(&lease("other", 60), "me", now), "expired");
        assert!(claimable(&lease("me", 3), "me", now), "own lease renews");
        assert!(claimable(&lease("", 3), "me", now), "released");
    }
}
