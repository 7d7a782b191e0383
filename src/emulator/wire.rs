//! The small pieces of the API's wire vocabulary that automations, runs and workspaces share:
//! the timestamp format, the `runMode` and run-outcome values, and the base traffic every run
//! reports in `metrics.network`. It imports none of the emulator's other modules.
//!
//! Dependencies among the three users: `model → runs, workspace, wire`; `runs → wire`;
//! `workspace → wire`; `wire` → nothing (so the graph is acyclic).

use chrono::{DateTime, Utc};
use serde_json::Value;

/// Formats a timestamp the way the live API does: `2021-12-23T12:28:21.000000Z`.
pub(crate) fn ts(t: DateTime<Utc>) -> String {
    t.format("%Y-%m-%dT%H:%M:%S%.6fZ").to_string()
}

/// [`ts`] for optional timestamps, `null` when absent.
pub(crate) fn ts_opt(t: Option<DateTime<Utc>>) -> Value {
    t.map_or(Value::Null, |t| Value::String(ts(t)))
}

/// `runMode` of an automation: computed on save, read-only for clients.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum RunMode {
    /// Started by hand or through the API.
    Manual,
    /// An active schedule starts it.
    Scheduled,
    /// Started over HTTP with the execution token.
    Triggered,
    /// Started by a webhook.
    Webhook,
}

impl RunMode {
    /// The wire value.
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            RunMode::Manual => "manual",
            RunMode::Scheduled => "scheduled",
            RunMode::Triggered => "triggered",
            RunMode::Webhook => "webhook",
        }
    }
}

/// How a run that is not stopped ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Outcome {
    /// `finished`
    Finished,
    /// `failed`, with an `error` object.
    Failed,
    /// `finished with warnings`
    FinishedWithWarnings,
}

impl Outcome {
    /// Parses an `_emulatorOutcome` marker value.
    pub(crate) fn parse(s: &str) -> Option<Outcome> {
        match s {
            "finished" => Some(Outcome::Finished),
            "failed" => Some(Outcome::Failed),
            "finished with warnings" => Some(Outcome::FinishedWithWarnings),
            _ => None,
        }
    }

    /// The final `status` of a run that ends this way.
    pub(crate) fn status(self) -> &'static str {
        match self {
            Outcome::Finished => "finished",
            Outcome::Failed => "failed",
            Outcome::FinishedWithWarnings => "finished with warnings",
        }
    }
}

/// Bytes every run moves even without endpoint blocks (reading its definition, inputs).
pub(crate) const BASE_RX_BYTES: u64 = 1024;
/// See [`BASE_RX_BYTES`].
pub(crate) const BASE_TX_BYTES: u64 = 256;

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn timestamps_have_six_fraction_digits() {
        let t = Utc.with_ymd_and_hms(2021, 12, 23, 12, 28, 21).unwrap();
        assert_eq!(ts(t), "2021-12-23T12:28:21.000000Z");
    }
}
