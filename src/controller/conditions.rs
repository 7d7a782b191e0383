//! Building conditions that move `lastTransitionTime` only when their status flips.

use chrono::{SecondsFormat, Utc};

use crate::crd::{Condition, ConditionStatus};

/// The condition type saying the tenant matches the spec.
pub const READY: &str = "Ready";
/// The condition type saying the last reconcile completed.
pub const SYNCED: &str = "Synced";

/// Now, in the RFC 3339 form conditions and status use.
pub fn now_rfc3339() -> String {
    Utc::now().to_rfc3339_opts(SecondsFormat::Secs, true)
}

/// A condition of `type_`, keeping the previous transition time when the status is unchanged.
pub fn condition(
    previous: &[Condition],
    type_: &str,
    status: ConditionStatus,
    reason: &str,
    message: &str,
    generation: Option<i64>,
) -> Condition {
    let last_transition_time = previous
        .iter()
        .find(|c| c.type_ == type_ && c.status == status)
        .map(|c| c.last_transition_time.clone())
        .unwrap_or_else(now_rfc3339);
    Condition {
        type_: type_.to_owned(),
        status,
        reason: reason.to_owned(),
        message: truncate(message, 1024),
        observed_generation: generation,
        last_transition_time,
    }
}

/// Shortens a message to at most `max` bytes on a character boundary.
pub fn truncate(message: &str, max: usize) -> String {
    if message.len() <= max {
        return message.to_owned();
    }
    let mut end = max.saturating_sub(3);
    while !message.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}...", &message[..end])
}

/// The kstatus condition saying work is in flight (abnormal-true: absent or `False` when
/// nothing is).
pub const RECONCILING: &str = "Reconciling";
/// The kstatus condition saying only a person can make progress (abnormal-true).
pub const STALLED: &str = "Stalled";

/// Whether more happens by itself, in kstatus's terms.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Progress {
    /// Nothing in flight: the outcome stands until something changes.
    Settled,
    /// Work is in flight (a retry after a transient error, a run being followed), with its
    /// own reason and message.
    Reconciling {
        /// A CamelCase reason, e.g. `TransientError` or `RunInProgress`.
        reason: String,
        /// What is in flight.
        message: String,
    },
    /// Only a person can fix it (the outcome's reason says what).
    Stalled,
}

/// How one reconcile reads in the conditions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verdict<'a> {
    /// `Ready`: the tenant was seen matching the spec.
    pub ready: ConditionStatus,
    /// `Synced`: the last reconcile completed.
    pub synced: ConditionStatus,
    /// The outcome's reason (every condition that is not itself abnormal carries it).
    pub reason: &'a str,
    /// The outcome's message.
    pub message: &'a str,
    /// `Reconciling` / `Stalled`.
    pub progress: Progress,
}

/// All four conditions of an outcome: `Ready`, `Synced`, and kstatus's `Reconciling` and
/// `Stalled` (abnormal-true), each moving `lastTransitionTime` only when it flips.
pub fn conditions(
    previous: &[Condition],
    v: &Verdict<'_>,
    generation: Option<i64>,
) -> Vec<Condition> {
    let (reconciling, r_reason, r_message) = match &v.progress {
        Progress::Reconciling { reason, message } => {
            (ConditionStatus::True, reason.as_str(), message.as_str())
        }
        _ => (ConditionStatus::False, v.reason, v.message),
    };
    let stalled = if v.progress == Progress::Stalled {
        ConditionStatus::True
    } else {
        ConditionStatus::False
    };
    vec![
        condition(previous, READY, v.ready, v.reason, v.message, generation),
        condition(previous, SYNCED, v.synced, v.reason, v.message, generation),
        condition(
            previous,
            RECONCILING,
            reconciling,
            r_reason,
            r_message,
            generation,
        ),
        condition(previous, STALLED, stalled, v.reason, v.message, generation),
    ]
}

/// The conditions of a failed reconcile: `Ready` and `Synced` false with the error's reason,
/// and `Reconciling` (it is retried by itself) or `Stalled` (a person must act).
pub fn failed(
    previous: &[Condition],
    reason: &str,
    message: &str,
    transient: bool,
    generation: Option<i64>,
) -> Vec<Condition> {
    let progress = if transient {
        Progress::Reconciling {
            reason: reason.to_owned(),
            message: format!("retrying with backoff: {message}"),
        }
    } else {
        Progress::Stalled
    };
    conditions(
        previous,
        &Verdict {
            ready: ConditionStatus::False,
            synced: ConditionStatus::False,
            reason,
            message,
            progress,
        },
        generation,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn transition_time_moves_only_on_a_flip() {
        let first = condition(&[], READY, ConditionStatus::True, "Synced", "ok", Some(1));
        let mut old = first.clone();
        old.last_transition_time = "2020-01-01T00:00:00Z".into();
        let same = condition(
            &[old.clone()],
            READY,
            ConditionStatus::True,
            "Synced",
            "still ok",
            Some(2),
        );
        assert_eq!(same.last_transition_time, "2020-01-01T00:00:00Z");
        assert_eq!(same.observed_generation, Some(2));
        let flipped = condition(
            &[old],
            READY,
            ConditionStatus::False,
            "Unauthorized",
            "no",
            Some(2),
        );
        assert_ne!(flipped.last_transition_time, "2020-01-01T00:00:00Z");
    }

    fn by_type<'a>(conditions: &'a [Condition], t: &str) -> &'a Condition {
        conditions.iter().find(|c| c.type_ == t).unwrap()
    }

    #[test]
    fn failures_are_reconciling_or_stalled_never_both() {
        let transient = failed(&[], "TransientError", "HTTP 503", true, Some(4));
        assert_eq!(transient.len(), 4);
        assert_eq!(
            by_type(&transient, RECONCILING).status,
            ConditionStatus::True
        );
        assert_eq!(by_type(&transient, RECONCILING).reason, "TransientError");
        assert_eq!(by_type(&transient, STALLED).status, ConditionStatus::False);
        assert_eq!(by_type(&transient, READY).status, ConditionStatus::False);
        let stalled = failed(&transient, "InvalidSpec", "bad", false, Some(5));
        assert_eq!(by_type(&stalled, STALLED).status, ConditionStatus::True);
        assert_eq!(by_type(&stalled, STALLED).reason, "InvalidSpec");
        assert_eq!(
            by_type(&stalled, RECONCILING).status,
            ConditionStatus::False
        );
        assert!(stalled.iter().all(|c| c.observed_generation == Some(5)));
        // Ready stayed False: its transition time did not move.
        assert_eq!(
            by_type(&stalled, READY).last_transition_time,
            by_type(&transient, READY).last_transition_time
        );
    }

    #[test]
    fn a_settled_success_has_neither_abnormal_condition() {
        let v = Verdict {
            ready: ConditionStatus::True,
            synced: ConditionStatus::True,
            reason: "Synced",
            message: "ok",
            progress: Progress::Settled,
        };
        let c = conditions(&[], &v, Some(1));
        assert_eq!(by_type(&c, RECONCILING).status, ConditionStatus::False);
        assert_eq!(by_type(&c, STALLED).status, ConditionStatus::False);
    }

    #[test]
    fn long_messages_are_cut_on_a_char_boundary() {
        let long = "é".repeat(1000);
        let cut = truncate(&long, 1024);
        assert!(cut.len() <= 1024 && cut.ends_with("..."));
        assert_eq!(truncate("short", 1024), "short");
    }
}
