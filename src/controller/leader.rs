//! Leader election on a `coordination.k8s.io/v1` Lease, so that only one replica writes to
//! the tenant when several run.
//!
//! The holder renews the Lease every few seconds; another replica takes over once a Lease has
//! not been renewed for its whole duration, or at once when the holder released it.
//!
//! [`acquire`] waits until this replica holds the Lease and returns a [`Leadership`] that owns
//! the renewing task. Leadership ends in one of two ways, and never by exiting the process
//! from that task:
//!
//! - **Loss.** Another identity holds a live Lease, or no renew succeeded within
//!   [`RENEW_DEADLINE`] (shorter than the Lease duration, like client-go's `renewDeadline`, so
//!   the holder gives up before anyone else may take over). The renewer stops renewing and
//!   [`Leadership::lost`] resolves; the caller stops its controllers and
//!   [`Leadership::step_down`] returns the loss as an error, so the process exits non-zero
//!   and its Deployment restarts it as a follower.
//! - **Release.** On SIGTERM the caller stops its controllers first (in-flight reconciles
//!   finish while the Lease is still renewed), then [`Leadership::step_down`] stops the
//!   renewer and clears the holder the way client-go's `ReleaseOnCancel` does: no
//!   `holderIdentity`, a one-second duration, guarded by the resourceVersion it just read, so
//!   a replica that lost the Lease never clears its successor's. A standby takes over within
//!   its retry interval instead of waiting out the Lease duration.
//!
//! The crate `kube-lease-manager` (0.13, on kube 5) was considered and not used: it releases
//! and renews with unguarded strategic-merge patches (a release right after a takeover can
//! clear the new holder's Lease, and a renew does not notice one), it needs the `patch` verb
//! the chart does not grant, and a holder that cannot reach the apiserver keeps believing it
//! leads. The little that is needed is implemented here instead.
//!
//! Over 500 lines with its tests; the election's protocol is one piece.

use std::{fmt, sync::Arc, time::Duration};

use k8s_openapi::{
    api::coordination::v1::{Lease, LeaseSpec},
    apimachinery::pkg::apis::meta::v1::MicroTime,
    jiff::Timestamp,
};
use kube::{
    Api, Client,
    api::{ObjectMeta, PostParams},
};
use tokio::{
    sync::{oneshot, watch},
    task::JoinHandle,
    time::Instant,
};

use super::metrics::Metrics;

const LEASE_DURATION: Duration = Duration::from_secs(15);
const RENEW_EVERY: Duration = Duration::from_secs(5);
const RETRY_EVERY: Duration = Duration::from_secs(2);
/// A holder that has not renewed for this long stops leading: before the Lease expires for
/// the others (at its renew time plus [`LEASE_DURATION`]).
pub const RENEW_DEADLINE: Duration = Duration::from_secs(10);
/// How long in-flight reconciles may still run after a loss before they are aborted: the time
/// between giving up ([`RENEW_DEADLINE`]) and the Lease expiring for the others.
pub const DRAIN_AFTER_LOSS: Duration = LEASE_DURATION.saturating_sub(RENEW_DEADLINE);
/// The duration a released Lease carries (client-go writes the same).
const RELEASED_DURATION_SECONDS: i32 = 1;
/// A bound on the release request, so that shutdown does not hang on an unreachable apiserver.
const RELEASE_TIMEOUT: Duration = Duration::from_secs(5);

/// Why this replica stopped leading.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Loss {
    /// Another identity holds a live Lease.
    TakenBy(String),
    /// No renew succeeded within [`RENEW_DEADLINE`].
    NotRenewed,
    /// The renewing task ended without saying why (it panicked).
    RenewerFailed,
}

impl fmt::Display for Loss {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Loss::TakenBy(holder) => write!(f, "lost the leader Lease to {holder}"),
            Loss::NotRenewed => write!(
                f,
                "lost the leader Lease: could not renew it within {}s",
                RENEW_DEADLINE.as_secs()
            ),
            Loss::RenewerFailed => write!(f, "lost the leader Lease: its renewing task failed"),
        }
    }
}

impl std::error::Error for Loss {}

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

/// What a holder writes to give the Lease up (client-go's `ReleaseOnCancel`): no holder, a
/// one-second duration from now, the transition count kept.
fn released(spec: &LeaseSpec, now: Timestamp) -> LeaseSpec {
    LeaseSpec {
        holder_identity: None,
        lease_duration_seconds: Some(RELEASED_DURATION_SECONDS),
        acquire_time: Some(MicroTime(now)),
        renew_time: Some(MicroTime(now)),
        ..spec.clone()
    }
}

/// The outcome of one attempt to take or renew the Lease.
#[derive(Debug, PartialEq, Eq)]
enum Attempt {
    /// This replica holds it now.
    Held,
    /// Another identity holds a live Lease.
    HeldBy(String),
    /// Someone wrote the Lease between our read and our write; try again.
    Conflict,
}

/// One attempt to take or renew the Lease.
async fn try_hold(api: &Api<Lease>, name: &str, me: &str) -> Result<Attempt, kube::Error> {
    let now = Timestamp::now();
    let spec = |transitions: i32, acquired: Option<MicroTime>| LeaseSpec {
        holder_identity: Some(me.to_owned()),
        lease_duration_seconds: Some(LEASE_DURATION.as_secs() as i32),
        acquire_time: acquired.or(Some(MicroTime(now))),
        renew_time: Some(MicroTime(now)),
        lease_transitions: Some(transitions),
        ..LeaseSpec::default()
    };
    let written = match api.get_opt(name).await? {
        None => {
            let lease = Lease {
                metadata: ObjectMeta {
                    name: Some(name.to_owned()),
                    ..ObjectMeta::default()
                },
                spec: Some(spec(0, None)),
            };
            api.create(&PostParams::default(), &lease).await
        }
        Some(mut lease) => {
            if !claimable(&lease, me, now) {
                let holder = lease.spec.and_then(|s| s.holder_identity);
                return Ok(Attempt::HeldBy(holder.unwrap_or_default()));
            }
            let old = lease.spec.clone().unwrap_or_default();
            let same_holder = old.holder_identity.as_deref() == Some(me);
            let transitions = old.lease_transitions.unwrap_or(0) + i32::from(!same_holder);
            let acquired = if same_holder { old.acquire_time } else { None };
            lease.spec = Some(spec(transitions, acquired));
            // replace() carries the resourceVersion read above: a concurrent writer gets a 409.
            api.replace(name, &PostParams::default(), &lease).await
        }
    };
    match written {
        Ok(_) => Ok(Attempt::Held),
        Err(kube::Error::Api(e)) if e.code == 409 => Ok(Attempt::Conflict),
        Err(e) => Err(e),
    }
}

/// Waits until this replica holds the Lease, then keeps renewing it in a task the returned
/// [`Leadership`] owns. Returns `None` when `until` (SIGTERM) resolves first; `until` is
/// looked at between attempts, so a Lease just taken is returned and can be released.
pub async fn acquire(
    client: Client,
    namespace: &str,
    name: &str,
    metrics: Arc<Metrics>,
    until: impl Future<Output = ()>,
) -> Option<Leadership> {
    let api: Api<Lease> = Api::namespaced(client, namespace);
    let me = identity();
    tracing::info!(lease = %format!("{namespace}/{name}"), identity = %me, "waiting to become leader");
    let mut until = std::pin::pin!(until);
    let mut wait = Duration::ZERO;
    let acquired = loop {
        tokio::select! {
            biased;
            () = &mut until => return None,
            () = tokio::time::sleep(wait) => {}
        }
        wait = RETRY_EVERY;
        let started = Instant::now();
        match tokio::time::timeout(RENEW_DEADLINE, try_hold(&api, name, &me)).await {
            Ok(Ok(Attempt::Held)) => break started,
            Ok(Ok(Attempt::HeldBy(_) | Attempt::Conflict)) => {}
            Ok(Err(e)) => {
                tracing::warn!(error = %e, "leader election: cannot read or write the Lease")
            }
            Err(_) => tracing::warn!("leader election: the apiserver did not answer in time"),
        }
    };
    tracing::info!(identity = %me, "became leader");
    metrics.leader.set(1);
    let (lost_tx, lost) = watch::channel(None);
    let (stop, stop_rx) = oneshot::channel();
    let renewer = tokio::spawn(renew(
        api.clone(),
        name.to_owned(),
        me.clone(),
        acquired,
        lost_tx,
        stop_rx,
    ));
    Some(Leadership {
        api,
        name: name.to_owned(),
        me,
        metrics,
        lost,
        stop: Some(stop),
        renewer: Some(renewer),
    })
}

/// What the renewer does after one attempt.
#[derive(Debug, PartialEq, Eq)]
enum Next {
    /// Renewed: wait [`RENEW_EVERY`].
    Renew,
    /// Not renewed, still within the deadline: try again after this long.
    RetryIn(Duration),
    /// Leadership is lost.
    Lost(Loss),
}

/// The renewer's decision after an attempt that ended at `now` (`None`: it failed or timed
/// out), given the instant by which a renew must have succeeded.
fn next(attempt: Option<Attempt>, now: Instant, deadline: Instant) -> Next {
    match attempt {
        Some(Attempt::Held) => Next::Renew,
        Some(Attempt::HeldBy(holder)) => Next::Lost(Loss::TakenBy(holder)),
        Some(Attempt::Conflict) | None if now >= deadline => Next::Lost(Loss::NotRenewed),
        Some(Attempt::Conflict) | None => Next::RetryIn(RETRY_EVERY.min(deadline - now)),
    }
}

/// Renews the Lease until `stop` (or its sender is dropped), or until leadership is lost,
/// which it reports on `lost` before it returns.
async fn renew(
    api: Api<Lease>,
    name: String,
    me: String,
    mut last_renewed: Instant,
    lost: watch::Sender<Option<Loss>>,
    mut stop: oneshot::Receiver<()>,
) {
    let mut wait = RENEW_EVERY;
    loop {
        tokio::select! {
            biased;
            _ = &mut stop => return,
            () = tokio::time::sleep(wait) => {}
        }
        // The renewTime written is taken before the request: count from there.
        let started = Instant::now();
        let deadline = last_renewed + RENEW_DEADLINE;
        let attempt = match tokio::time::timeout_at(deadline, try_hold(&api, &name, &me)).await {
            Ok(Ok(attempt)) => Some(attempt),
            Ok(Err(e)) => {
                tracing::warn!(error = %e, "leader election: renewing the Lease failed");
                None
            }
            Err(_) => None,
        };
        if attempt == Some(Attempt::Conflict) {
            tracing::debug!("leader election: the Lease changed while renewing it; retrying");
        }
        match next(attempt, Instant::now(), deadline) {
            Next::Renew => {
                last_renewed = started;
                wait = RENEW_EVERY;
            }
            Next::RetryIn(retry) => wait = retry,
            Next::Lost(loss) => {
                tracing::error!("{loss}; stopping reconciling");
                lost.send_replace(Some(loss));
                return;
            }
        }
    }
}

/// This replica's leadership: the task renewing the Lease, and how it ends.
pub struct Leadership {
    api: Api<Lease>,
    name: String,
    me: String,
    metrics: Arc<Metrics>,
    lost: watch::Receiver<Option<Loss>>,
    stop: Option<oneshot::Sender<()>>,
    renewer: Option<JoinHandle<()>>,
}

impl Leadership {
    /// Resolves when leadership is lost (or the renewer is gone); pending while it is held.
    pub fn lost(&self) -> impl Future<Output = ()> + Send + Sync + 'static {
        let mut lost = self.lost.clone();
        async move {
            let _ = lost.wait_for(Option::is_some).await;
        }
    }

    /// Ends leadership; call it once the controllers have stopped. Stops the renewer; then
    /// returns the loss as an error if leadership was lost, or else releases the Lease so a
    /// standby takes over at once. A release that fails is logged: the Lease then expires.
    pub async fn step_down(mut self) -> Result<(), Loss> {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        let finished = match self.renewer.take() {
            Some(renewer) => renewer.await,
            None => Ok(()),
        };
        self.metrics.leader.set(0);
        let loss = self.lost.borrow().clone();
        if let Some(loss) = loss {
            return Err(loss);
        }
        if finished.is_err() {
            return Err(Loss::RenewerFailed);
        }
        match tokio::time::timeout(RELEASE_TIMEOUT, self.release()).await {
            Ok(Ok(Release::Released)) => {
                tracing::info!(identity = %self.me, "released the leader Lease");
                Ok(())
            }
            Ok(Ok(Release::Gone)) => {
                tracing::info!("the leader Lease is gone or has no holder; nothing to release");
                Ok(())
            }
            Ok(Ok(Release::HeldBy(holder))) => {
                let loss = Loss::TakenBy(holder);
                tracing::error!("{loss} before releasing it");
                Err(loss)
            }
            Ok(Ok(Release::Conflict)) => {
                tracing::warn!("the leader Lease changed while releasing it; left as it is");
                Ok(())
            }
            Ok(Err(e)) => {
                tracing::warn!(error = %e, "could not release the leader Lease; it expires instead");
                Ok(())
            }
            Err(_) => {
                tracing::warn!("releasing the leader Lease timed out; it expires instead");
                Ok(())
            }
        }
    }

    /// Clears the holder if it is still this replica. The write carries the resourceVersion
    /// just read, so it fails rather than clear a Lease someone took in between.
    async fn release(&self) -> Result<Release, kube::Error> {
        let Some(mut lease) = self.api.get_opt(&self.name).await? else {
            return Ok(Release::Gone);
        };
        let spec = lease.spec.clone().unwrap_or_default();
        match spec.holder_identity.as_deref().unwrap_or_default() {
            holder if holder == self.me => {}
            "" => return Ok(Release::Gone),
            holder => return Ok(Release::HeldBy(holder.to_owned())),
        }
        lease.spec = Some(released(&spec, Timestamp::now()));
        match self
            .api
            .replace(&self.name, &PostParams::default(), &lease)
            .await
        {
            Ok(_) => Ok(Release::Released),
            Err(kube::Error::Api(e)) if e.code == 409 => Ok(Release::Conflict),
            Err(e) => Err(e),
        }
    }
}

/// The outcome of releasing the Lease.
enum Release {
    Released,
    /// Someone deleted the Lease or cleared its holder.
    Gone,
    /// Another identity holds it.
    HeldBy(String),
    /// Someone wrote it between our read and our write.
    Conflict,
}

impl Drop for Leadership {
    /// A leadership dropped without [`Leadership::step_down`] (an early return) stops renewing
    /// at once; the Lease then expires.
    fn drop(&mut self) {
        if let Some(renewer) = self.renewer.take() {
            renewer.abort();
        }
    }
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

    #[test]
    fn a_released_lease_has_no_holder_and_is_claimable_at_once() {
        let now = Timestamp::now();
        let mut held = lease("me", 1);
        held.spec.as_mut().unwrap().lease_transitions = Some(4);
        let spec = released(held.spec.as_ref().unwrap(), now);
        assert_eq!(spec.holder_identity, None);
        assert_eq!(spec.lease_duration_seconds, Some(1));
        assert_eq!(spec.renew_time, Some(MicroTime(now)));
        assert_eq!(spec.acquire_time, Some(MicroTime(now)));
        assert_eq!(spec.lease_transitions, Some(4), "the count is kept");
        let released = Lease {
            metadata: ObjectMeta::default(),
            spec: Some(spec),
        };
        assert!(claimable(&released, "standby", now), "free for anyone");
        assert!(claimable(&released, "me", now));
    }

    #[test]
    fn the_holder_gives_up_before_the_lease_expires_for_the_others() {
        assert!(RENEW_EVERY < RENEW_DEADLINE);
        assert!(RENEW_DEADLINE < LEASE_DURATION);
        assert_eq!(DRAIN_AFTER_LOSS, LEASE_DURATION - RENEW_DEADLINE);
    }

    #[test]
    fn the_renewer_retries_until_the_deadline_and_gives_up_on_another_holder() {
        let deadline = Instant::now() + RENEW_DEADLINE;
        let early = deadline - RENEW_DEADLINE + Duration::from_secs(1);
        assert_eq!(next(Some(Attempt::Held), early, deadline), Next::Renew);
        assert_eq!(
            next(Some(Attempt::Held), deadline, deadline),
            Next::Renew,
            "a renew that succeeded counts, however late it returned"
        );
        assert_eq!(next(None, early, deadline), Next::RetryIn(RETRY_EVERY));
        assert_eq!(
            next(Some(Attempt::Conflict), early, deadline),
            Next::RetryIn(RETRY_EVERY)
        );
        let almost = deadline - Duration::from_millis(500);
        assert_eq!(
            next(None, almost, deadline),
            Next::RetryIn(Duration::from_millis(500)),
            "the last retry lands on the deadline"
        );
        assert_eq!(next(None, deadline, deadline), Next::Lost(Loss::NotRenewed));
        assert_eq!(
            next(Some(Attempt::Conflict), deadline, deadline),
            Next::Lost(Loss::NotRenewed)
        );
        assert_eq!(
            next(Some(Attempt::HeldBy("b".into())), early, deadline),
            Next::Lost(Loss::TakenBy("b".into()))
        );
    }

    #[test]
    fn a_loss_says_why() {
        assert_eq!(
            Loss::TakenBy("pod-b-1234".into()).to_string(),
            "lost the leader Lease to pod-b-1234"
        );
        assert!(
            Loss::NotRenewed
                .to_string()
                .contains("could not renew it within 10s")
        );
    }
}
