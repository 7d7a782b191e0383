//! Every decision of the `QlikAutomation` reconciler that is not the spec diff (that is
//! [`super::plan`]): plain values in, an enum or a value out, no I/O. The reconciler
//! observes, asks these functions, acts on the answer and records it, so each rule here is
//! a table test, not an end-to-end scenario.
//!
//! About half of this file is the table tests; the decisions themselves are short.

use std::time::Duration;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, Time};

use crate::{
    crd::{
        ConditionStatus, QlikAutomationStatus, Usage, UsageMissing,
        automation::{DeletionPolicy, LastRun},
    },
    qlik::model::{AutomationSummary, RunStatus},
};

use super::{
    conditions::{self, Progress, Verdict},
    plan::needs_detail,
};

/// How often an object with a run in progress looks at it again.
pub const RUN_POLL: Duration = Duration::from_secs(2);

/// One object's claim on a remote automation, as the conflict rule sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Claim<'a> {
    /// The object's uid (itself is never a rival).
    pub uid: Option<&'a str>,
    /// When it was created: the first claimant wins.
    pub created: Option<&'a Time>,
    /// Its namespace and name, the tie-breakers, and how it is named in messages.
    pub namespace: Option<&'a str>,
    /// Its name.
    pub name: &'a str,
    /// What it claims: the remote automation it is linked to, or the tenant whose settings
    /// it manages.
    pub linked: Option<&'a str>,
    /// Whether it is being deleted (a deleting object gives its claim up).
    pub deleting: bool,
}

impl<'a> Claim<'a> {
    /// The claim of the object with `meta` on `linked` (a remote automation's id, or the
    /// tenant a Settings object manages).
    pub fn of(meta: &'a ObjectMeta, linked: Option<&'a str>) -> Claim<'a> {
        Claim {
            uid: meta.uid.as_deref(),
            created: meta.creation_timestamp.as_ref(),
            namespace: meta.namespace.as_deref(),
            name: meta.name.as_deref().unwrap_or_default(),
            linked,
            deleting: meta.deletion_timestamp.is_some(),
        }
    }

    fn order(&self) -> (Option<&Time>, Option<&str>, &str) {
        (self.created, self.namespace, self.name)
    }

    /// `namespace/name`.
    pub fn key(&self) -> String {
        format!("{}/{}", self.namespace.unwrap_or_default(), self.name)
    }
}

/// Another live object that claims `id` and came before `me`: then `me` is the conflict.
pub fn first_claimant<'a>(
    me: &Claim<'_>,
    others: impl IntoIterator<Item = Claim<'a>>,
    id: &str,
) -> Option<Claim<'a>> {
    others.into_iter().find(|other| {
        other.uid != me.uid
            && !other.deleting
            && other.linked == Some(id)
            && other.order() < me.order()
    })
}

/// Whether any object other than `me` claims `id` (so a found remote is not `me`'s to adopt).
pub fn claimed_by_other<'a>(
    me: &Claim<'_>,
    others: impl IntoIterator<Item = Claim<'a>>,
    id: &str,
) -> bool {
    others
        .into_iter()
        .any(|other| other.uid != me.uid && other.linked == Some(id))
}

/// What to do when the tenant answers 404 for the remote an object is linked to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OnGone {
    /// The operator had seen this remote (it created it, or adopted and reconciled it): it
    /// was deleted out of band, so create it again.
    Recreate,
    /// Report `NotFound` with this message and create nothing.
    NotFound(String),
}

/// Decides about the linked remote `gone` the tenant just answered 404 for.
///
/// `seen` is the id status last recorded (the operator only records an id it has seen),
/// `link` the id the reconcile started from, `recreating` whether this reconcile has
/// already recreated once (a remote that vanishes again at once is not chased in a loop),
/// and `observe` whether the object may not write at all (`managementPolicy: Observe`).
pub fn on_remote_gone(
    gone: &str,
    seen: Option<&str>,
    link: Option<&str>,
    recreating: bool,
    observe: bool,
) -> OnGone {
    if observe {
        return OnGone::NotFound(format!(
            "automation {gone} does not exist or is not visible to this key; managementPolicy Observe never creates it"
        ));
    }
    if recreating {
        return OnGone::NotFound(format!(
            "automation {gone} was created again but the tenant answered 404 for it at once; retrying later"
        ));
    }
    if seen == Some(gone) {
        return OnGone::Recreate;
    }
    match link {
        Some(id) if id == gone => OnGone::NotFound(format!(
            "automation {gone} named by the {} annotation does not exist or is not visible to this key",
            crate::crd::ANNOTATION_AUTOMATION_ID
        )),
        // A remote this reconcile made or found itself, then lost: it was seen, recreate.
        _ => OnGone::Recreate,
    }
}

/// Whether the `reconcile.fluxcd.io/requestedAt` value asks for a full reconcile now: it is
/// set and differs from the one last handled.
pub fn forced(requested: Option<&str>, handled: Option<&str>) -> bool {
    requested.is_some() && requested != handled
}

/// Whether the remote's detail must be fetched (and the spec diffed against it): after a
/// create, on a forced reconcile, when drift is known that may now be set back (an object
/// switched from `Observe` to `Full`), or when the spec or the remote moved since the last
/// apply. Otherwise the listed summary is enough and a converged object costs no read.
pub fn fetch_detail(
    created: bool,
    forced: bool,
    settle_drift: bool,
    digest: &str,
    applied_digest: Option<&str>,
    recorded_updated_at: Option<&str>,
    listed_updated_at: Option<&str>,
) -> bool {
    created
        || forced
        || settle_drift
        || needs_detail(
            digest,
            applied_digest,
            recorded_updated_at,
            listed_updated_at,
        )
}

/// The run-request token to act on: set and not handled yet. Each token starts exactly one
/// run.
pub fn new_run_request<'a>(token: Option<&'a str>, handled: Option<&str>) -> Option<&'a str> {
    token.filter(|t| Some(*t) != handled)
}

/// Whether a run with this status is still going, so the object should look again soon.
pub fn run_in_progress(status: Option<&str>) -> bool {
    !status.is_some_and(|s| RunStatus::from(s).is_terminal())
}

/// When to look at the object again: soon while a run is followed, else at the resync.
pub fn requeue_after(last_run: Option<&LastRun>, resync: Duration) -> Duration {
    match last_run {
        Some(run) if run.id.is_some() && run_in_progress(run.status.as_deref()) => RUN_POLL,
        _ => resync,
    }
}

/// What deleting an object does to its remote.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Finalize {
    /// Delete the remote (a 404 counts as done).
    Delete,
    /// Leave the remote in the tenant, for this reason.
    Orphan(&'static str),
}

/// Delete or orphan: only a `Delete` policy on an object that may write and owns its
/// remote deletes it.
pub fn on_delete(
    policy: DeletionPolicy,
    suspended: bool,
    conflicted: bool,
    observe: bool,
) -> Finalize {
    if observe {
        Finalize::Orphan("managementPolicy is Observe")
    } else if conflicted {
        Finalize::Orphan("another object manages it")
    } else if suspended {
        Finalize::Orphan("spec.suspend is true")
    } else if policy == DeletionPolicy::Orphan {
        Finalize::Orphan("deletionPolicy is Orphan")
    } else {
        Finalize::Delete
    }
}

/// How a reconcile that did not fail ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Readiness {
    /// The remote was seen matching the spec.
    Synced,
    /// `spec.suspend`: nothing was written; the remote is shown as observed.
    Suspended,
    /// `managementPolicy: Observe`: nothing was written; the remote was compared with the
    /// spec, and any drift is reported, not set back.
    Observed,
}

impl Readiness {
    /// How this ending reads in the conditions, with a run the operator follows (if any) in
    /// flight.
    pub fn verdict(self, following: Option<&str>, drift: &[String]) -> Verdict<'static> {
        match self {
            Readiness::Observed if drift.is_empty() => Verdict {
                ready: ConditionStatus::True,
                synced: ConditionStatus::True,
                reason: "Observed",
                message: "the remote matches the spec (managementPolicy Observe: the operator never writes)",
                progress: Progress::Settled,
            },
            Readiness::Observed => Verdict {
                ready: ConditionStatus::False,
                synced: ConditionStatus::False,
                reason: "Drifted",
                message: "the remote differs from the spec (managementPolicy Observe: not set back)",
                // The operator will not close the gap: a person changes the spec or the
                // remote (or switches to Full).
                progress: Progress::Stalled,
            },
            Readiness::Synced => Verdict {
                ready: ConditionStatus::True,
                synced: ConditionStatus::True,
                reason: "Synced",
                message: "the automation matches the spec",
                progress: match following {
                    Some(run) => Progress::Reconciling {
                        reason: "RunInProgress".into(),
                        message: format!("following run {run} until it ends"),
                    },
                    None => Progress::Settled,
                },
            },
            Readiness::Suspended => Verdict {
                ready: ConditionStatus::False,
                synced: ConditionStatus::True,
                reason: "Suspended",
                message: "spec.suspend is true: no changes are made to the tenant",
                progress: Progress::Settled,
            },
        }
    }
}

/// The run the operator is following, if the newest one it knows is still going.
pub fn followed_run(last_run: Option<&LastRun>) -> Option<&str> {
    last_run
        .filter(|r| run_in_progress(r.status.as_deref()))
        .and_then(|r| r.id.as_deref())
}

/// What one reconcile observed and decided, to be recorded in status.
#[derive(Debug, Clone, PartialEq)]
pub struct Outcome {
    /// The linked remote's id.
    pub id: Option<String>,
    /// The remote as last seen (listed, fetched or written) within the view's max age.
    pub remote: Option<AutomationSummary>,
    /// The digest of the spec last applied.
    pub applied_digest: Option<String>,
    /// How it ended.
    pub readiness: Readiness,
    /// The newest run the operator knows of.
    pub last_run: Option<LastRun>,
    /// The run-request token handled.
    pub last_handled_run_request: Option<String>,
    /// The reconcile request handled.
    pub last_handled_reconcile_at: Option<String>,
    /// Usage figures, and why they are missing.
    pub usage: (Option<Usage>, Option<UsageMissing>),
    /// The spec fields the remote differs in and that were not set back (Observe).
    pub drifted_fields: Vec<String>,
}

/// The status to write for `outcome`, over the `old` one, for `generation`.
pub fn status_for(
    old: &QlikAutomationStatus,
    generation: Option<i64>,
    outcome: Outcome,
) -> QlikAutomationStatus {
    let following = match outcome.readiness {
        Readiness::Synced => followed_run(outcome.last_run.as_ref()).map(str::to_owned),
        Readiness::Suspended | Readiness::Observed => None,
    };
    let drift_message = format!(
        "the remote differs from the spec in: {} (managementPolicy Observe: not set back)",
        outcome.drifted_fields.join(", ")
    );
    let mut verdict = outcome
        .readiness
        .verdict(following.as_deref(), &outcome.drifted_fields);
    if verdict.reason == "Drifted" {
        verdict.message = &drift_message;
    }
    let mut remote = outcome.remote;
    if let (Some(summary), Some(run)) = (remote.as_mut(), &outcome.last_run)
        && run.start_time.is_some()
        && run.start_time >= summary.last_run_at
    {
        // Our own view of the newest run is fresher than the list's.
        summary.last_run_at = run.start_time.clone();
        summary.last_run_status = run.status.as_deref().map(Into::into);
    }
    let summary = remote.as_ref();
    QlikAutomationStatus {
        automation_id: outcome.id,
        state: summary
            .and_then(|s| s.state.as_ref())
            .map(|s| s.to_string()),
        run_mode: summary
            .and_then(|s| s.run_mode.as_ref())
            .map(|s| s.to_string()),
        owner_id: summary.and_then(|s| s.owner_id.clone()),
        space_id: summary
            .and_then(|s| s.space_id.clone())
            .filter(|s| !s.is_empty()),
        max_concurrent_runs: summary.and_then(|s| s.max_concurrent_runs),
        created_at: summary.and_then(|s| s.created_at.clone()),
        updated_at: summary.and_then(|s| s.updated_at.clone()),
        last_run_at: summary.and_then(|s| s.last_run_at.clone()),
        last_run_status: summary
            .and_then(|s| s.last_run_status.as_ref())
            .map(|s| s.to_string()),
        last_run: outcome.last_run,
        // Figures fetched earlier stay until newer ones come; `usageMissing` says why.
        usage: outcome.usage.0.or(old.usage.clone()),
        usage_missing: outcome.usage.1,
        observed_generation: generation,
        conditions: conditions::conditions(&old.conditions, &verdict, generation),
        last_sync_time: old.last_sync_time.clone(),
        last_handled_run_request: outcome.last_handled_run_request,
        last_handled_reconcile_at: outcome.last_handled_reconcile_at,
        applied_digest: outcome.applied_digest,
        drifted_fields: outcome.drifted_fields,
    }
}

/// The status to write after a failed reconcile: `Ready` and `Synced` `False` with the
/// error's reason and message, `Reconciling` when it is retried by itself (`transient`) or
/// `Stalled` when a person must act, everything observed before kept. A reconcile request
/// counts as handled when it was tried, failure included, so whoever asked sees the outcome
/// at once.
pub fn failure_status(
    old: &QlikAutomationStatus,
    generation: Option<i64>,
    reason: &str,
    message: &str,
    transient: bool,
    reconcile_requested: Option<&str>,
) -> QlikAutomationStatus {
    QlikAutomationStatus {
        observed_generation: generation,
        conditions: conditions::failed(&old.conditions, reason, message, transient, generation),
        last_handled_reconcile_at: reconcile_requested
            .map(str::to_owned)
            .or(old.last_handled_reconcile_at.clone()),
        ..old.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn time(s: &str) -> Time {
        Time(s.parse().unwrap())
    }

    #[test]
    fn the_first_live_claimant_of_a_remote_wins() {
        let (t1, t2) = (time("2026-01-01T00:00:00Z"), time("2026-01-02T00:00:00Z"));
        let claim = |uid, created, name, linked, deleting| Claim {
            uid: Some(uid),
            created: Some(created),
            namespace: Some("ns"),
            name,
            linked,
            deleting,
        };
        let me = claim("me", &t2, "b", Some("r1"), false);
        let older = claim("o1", &t1, "a", Some("r1"), false);
        let younger = claim("o2", &t2, "c", Some("r1"), false);
        let other_remote = claim("o3", &t1, "d", Some("r2"), false);
        let leaving = claim("o4", &t1, "e", Some("r1"), true);
        // (others, expected first claimant)
        let cases: [(Vec<Claim>, Option<&str>); 5] = [
            (vec![older], Some("a")),
            (vec![younger], None),
            (vec![other_remote], None),
            (vec![leaving], None),
            (vec![me, younger, older], Some("a")),
        ];
        for (others, expected) in cases {
            let found = first_claimant(&me, others.clone(), "r1");
            assert_eq!(found.map(|c| c.name), expected, "{others:?}");
        }
        // Same creation time: namespace, then name decide.
        let twin = claim("o5", &t2, "a", Some("r1"), false);
        assert_eq!(
            first_claimant(&me, [twin], "r1").map(|c| c.key()),
            Some("ns/a".into())
        );
        assert!(claimed_by_other(&me, [younger, other_remote], "r1"));
        assert!(!claimed_by_other(&me, [me, other_remote], "r1"));
    }

    #[test]
    fn a_404_recreates_only_what_the_operator_has_seen() {
        // (gone, seen in status, linked at start, recreating) → recreate?
        let cases = [
            ("a", Some("a"), Some("a"), false, true),
            // A user's adoption annotation naming an id never seen: NotFound.
            ("a", None, Some("a"), false, false),
            // Status recorded another remote; the annotation was changed to `a` by a user.
            ("a", Some("b"), Some("a"), false, false),
            // Made by this very reconcile (no link at start), then gone: recreate.
            ("a", None, None, false, true),
            // Already recreated once in this reconcile: stop and report.
            ("a", Some("a"), Some("a"), true, false),
            ("c", None, None, true, false),
        ];
        for (gone, seen, link, recreating, recreate) in cases {
            let decision = on_remote_gone(gone, seen, link, recreating, false);
            assert_eq!(
                decision == OnGone::Recreate,
                recreate,
                "{gone} {seen:?} {link:?} {recreating}: {decision:?}"
            );
            if let OnGone::NotFound(message) = decision {
                assert!(message.contains(gone), "{message}");
            }
            // Observe never recreates, whatever it saw.
            assert!(matches!(
                on_remote_gone(gone, seen, link, recreating, true),
                OnGone::NotFound(m) if m.contains("Observe")
            ));
        }
    }

    #[test]
    fn a_reconcile_request_forces_once_per_value() {
        assert!(!forced(None, None));
        assert!(!forced(None, Some("1")));
        assert!(forced(Some("1"), None));
        assert!(forced(Some("2"), Some("1")));
        assert!(!forced(Some("1"), Some("1")));
    }

    #[test]
    fn the_detail_is_fetched_only_when_something_moved_or_was_asked_for() {
        let quiet = |created, forced, drift| {
            fetch_detail(created, forced, drift, "d", Some("d"), Some("t"), Some("t"))
        };
        assert!(!quiet(false, false, false));
        assert!(quiet(true, false, false));
        assert!(quiet(false, true, false));
        assert!(quiet(false, false, true));
        let moved = |digest, listed| {
            fetch_detail(
                false,
                false,
                false,
                digest,
                Some("d"),
                Some("t"),
                Some(listed),
            )
        };
        assert!(moved("new", "t"));
        assert!(moved("d", "t2"));
    }

    #[test]
    fn each_run_token_starts_one_run() {
        assert_eq!(new_run_request(None, None), None);
        assert_eq!(new_run_request(Some("a"), None), Some("a"));
        assert_eq!(new_run_request(Some("a"), Some("a")), None);
        assert_eq!(new_run_request(Some("b"), Some("a")), Some("b"));
    }

    #[test]
    fn a_run_is_followed_until_it_ends() {
        let resync = Duration::from_secs(300);
        let run = |id: Option<&str>, status: Option<&str>| LastRun {
            id: id.map(Into::into),
            status: status.map(Into::into),
            ..LastRun::default()
        };
        let cases = [
            (None, resync),
            (Some(run(Some("r"), Some("running"))), RUN_POLL),
            (Some(run(Some("r"), Some("queued"))), RUN_POLL),
            (Some(run(Some("r"), None)), RUN_POLL),
            (Some(run(Some("r"), Some("finished"))), resync),
            (Some(run(Some("r"), Some("failed"))), resync),
            (Some(run(Some("r"), Some("stopped"))), resync),
            (Some(run(None, Some("running"))), resync),
        ];
        for (last_run, expected) in cases {
            assert_eq!(
                requeue_after(last_run.as_ref(), resync),
                expected,
                "{last_run:?}"
            );
        }
    }

    #[test]
    fn only_an_unconflicted_writable_delete_policy_deletes_the_remote() {
        use DeletionPolicy::{Delete, Orphan};
        let cases = [
            (Delete, false, false, Finalize::Delete),
            (
                Orphan,
                false,
                false,
                Finalize::Orphan("deletionPolicy is Orphan"),
            ),
            (
                Delete,
                true,
                false,
                Finalize::Orphan("spec.suspend is true"),
            ),
            (
                Delete,
                false,
                true,
                Finalize::Orphan("another object manages it"),
            ),
            (
                Orphan,
                true,
                true,
                Finalize::Orphan("another object manages it"),
            ),
        ];
        for (policy, suspended, conflicted, expected) in cases {
            assert_eq!(on_delete(policy, suspended, conflicted, false), expected);
            assert_eq!(
                on_delete(policy, suspended, conflicted, true),
                Finalize::Orphan("managementPolicy is Observe")
            );
        }
    }

    fn outcome(readiness: Readiness) -> Outcome {
        Outcome {
            id: Some("a-1".into()),
            remote: Some(AutomationSummary {
                id: "a-1".into(),
                state: Some("available".into()),
                last_run_at: Some("2026-01-01T00:00:00Z".into()),
                last_run_status: Some("failed".into()),
                ..AutomationSummary::default()
            }),
            applied_digest: Some("d".into()),
            readiness,
            last_run: Some(LastRun {
                id: Some("r-2".into()),
                status: Some("running".into()),
                start_time: Some("2026-01-02T00:00:00Z".into()),
                ..LastRun::default()
            }),
            last_handled_run_request: Some("t".into()),
            last_handled_reconcile_at: None,
            usage: (None, None),
            drifted_fields: Vec::new(),
        }
    }

    #[test]
    fn the_status_of_an_outcome() {
        let old = QlikAutomationStatus {
            usage: Some(Usage::new("since 2025-12-01")),
            ..QlikAutomationStatus::default()
        };
        let s = status_for(&old, Some(3), outcome(Readiness::Synced));
        assert_eq!(s.automation_id.as_deref(), Some("a-1"));
        assert_eq!(s.state.as_deref(), Some("available"));
        assert_eq!(s.observed_generation, Some(3));
        // The run the operator follows is newer than the listed one.
        assert_eq!(s.last_run_at.as_deref(), Some("2026-01-02T00:00:00Z"));
        assert_eq!(s.last_run_status.as_deref(), Some("running"));
        // Old figures stay while no new ones came.
        assert_eq!(s.usage, old.usage);
        let by_type = |t: &str| s.conditions.iter().find(|c| c.type_ == t).cloned().unwrap();
        assert_eq!(by_type("Ready").status, ConditionStatus::True);
        assert_eq!(by_type("Synced").reason, "Synced");
        // The run it follows is in flight: kstatus sees work in progress.
        assert_eq!(by_type("Reconciling").status, ConditionStatus::True);
        assert_eq!(by_type("Reconciling").reason, "RunInProgress");
        assert_eq!(by_type("Stalled").status, ConditionStatus::False);
        let mut finished = outcome(Readiness::Synced);
        finished.last_run.as_mut().unwrap().status = Some("finished".into());
        let s2 = status_for(&old, Some(3), finished);
        let reconciling = s2
            .conditions
            .iter()
            .find(|c| c.type_ == "Reconciling")
            .unwrap();
        assert_eq!(reconciling.status, ConditionStatus::False);

        let s = status_for(&old, Some(3), outcome(Readiness::Suspended));
        let by_type = |t: &str| s.conditions.iter().find(|c| c.type_ == t).cloned().unwrap();
        assert_eq!(by_type("Ready").status, ConditionStatus::False);
        assert_eq!(by_type("Ready").reason, "Suspended");
        assert_eq!(by_type("Synced").status, ConditionStatus::True);
    }

    #[test]
    fn observe_reports_drift_and_claims_ready_only_without_it() {
        let old = QlikAutomationStatus::default();
        let mut observed = outcome(Readiness::Observed);
        let s = status_for(&old, Some(1), observed.clone());
        let ready = s.conditions.iter().find(|c| c.type_ == "Ready").unwrap();
        assert_eq!(
            (ready.status, ready.reason.as_str()),
            (ConditionStatus::True, "Observed")
        );
        // Observe never follows a run it did not start.
        let reconciling = s
            .conditions
            .iter()
            .find(|c| c.type_ == "Reconciling")
            .unwrap();
        assert_eq!(reconciling.status, ConditionStatus::False);
        observed.drifted_fields = vec!["description".into(), "enabled".into()];
        let s = status_for(&old, Some(1), observed);
        assert_eq!(s.drifted_fields, ["description", "enabled"]);
        for t in ["Ready", "Synced"] {
            let c = s.conditions.iter().find(|c| c.type_ == t).unwrap();
            assert_eq!(
                (c.status, c.reason.as_str()),
                (ConditionStatus::False, "Drifted"),
                "{t}"
            );
            assert!(c.message.contains("description, enabled"), "{}", c.message);
        }
        let stalled = s.conditions.iter().find(|c| c.type_ == "Stalled").unwrap();
        assert_eq!(
            (stalled.status, stalled.reason.as_str()),
            (ConditionStatus::True, "Drifted")
        );
    }

    #[test]
    fn a_failure_keeps_what_was_observed_and_marks_the_request_handled() {
        let old = status_for(
            &QlikAutomationStatus::default(),
            Some(1),
            outcome(Readiness::Synced),
        );
        let s = failure_status(
            &old,
            Some(2),
            "TransientError",
            "HTTP 503",
            true,
            Some("req-9"),
        );
        assert_eq!(s.automation_id, old.automation_id);
        assert_eq!(s.observed_generation, Some(2));
        assert_eq!(s.last_handled_reconcile_at.as_deref(), Some("req-9"));
        let status_of = |s: &QlikAutomationStatus, t: &str| {
            s.conditions
                .iter()
                .find(|c| c.type_ == t)
                .map(|c| (c.status, c.reason.clone()))
        };
        assert_eq!(
            status_of(&s, "Ready"),
            Some((ConditionStatus::False, "TransientError".into()))
        );
        assert_eq!(
            status_of(&s, "Reconciling"),
            Some((ConditionStatus::True, "TransientError".into()))
        );
        assert_eq!(
            status_of(&s, "Stalled").map(|c| c.0),
            Some(ConditionStatus::False)
        );
        let s = failure_status(&old, Some(2), "InvalidSpec", "bad", false, None);
        assert_eq!(
            status_of(&s, "Stalled"),
            Some((ConditionStatus::True, "InvalidSpec".into()))
        );
        assert_eq!(
            status_of(&s, "Reconciling").map(|c| c.0),
            Some(ConditionStatus::False)
        );
        assert_eq!(s.last_handled_reconcile_at, old.last_handled_reconcile_at);
    }
}
