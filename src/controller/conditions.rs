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

/// Both conditions for an outcome: `Ready` and `Synced` agree except when the object is
/// converged but suspended or waiting.
pub fn pair(
    previous: &[Condition],
    ready: ConditionStatus,
    synced: ConditionStatus,
    reason: &str,
    message: &str,
    generation: Option<i64>,
) -> Vec<Condition> {
    vec![
        condition(previous, READY, ready, reason, message, generation),
        condition(previous, SYNCED, synced, reason, message, generation),
    ]
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

    #[test]
    fn long_messages_are_cut_on_a_char_boundary() {
        let long = "é".repeat(1000);
        let cut = truncate(&long, 1024);
        assert!(cut.len() <= 1024 && cut.ends_with("..."));
        assert_eq!(truncate("short", 1024), "short");
    }
}
