//! Runs and their lifecycle.
//!
//! A run's status is computed from the time elapsed since it was created, so no background
//! task has to drive it: `queued` for the first 10% of the run duration, `starting` until 20%,
//! `running` until 100%, then its outcome. A stop request turns an unfinished run into
//! `must stop` and, [`STOP_GRACE`] later, `stopped`.

use chrono::{DateTime, Utc};
use serde_json::{Value, json};

use super::wire::{BASE_RX_BYTES, BASE_TX_BYTES, Outcome, ts, ts_opt};

/// How long a run stays in `must stop` before it is `stopped`.
pub(crate) const STOP_GRACE: chrono::Duration = chrono::Duration::milliseconds(100);

/// What started a run; decides which usage metric it counts in besides `runs`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum RunOrigin {
    /// `POST .../runs` or retry.
    Api,
    /// One of the automation's schedules.
    Scheduled,
    /// `actions/execute` on a triggered automation.
    Triggered,
    /// `actions/execute` on a webhook automation.
    Webhook,
}

/// A run as stored. Everything time-dependent is derived by [`Run::phase`].
#[derive(Debug, Clone)]
pub(crate) struct Run {
    /// UUID; sortable by creation unless the client chose it.
    pub(crate) id: String,
    /// Creation order across the emulator.
    pub(crate) seq: u64,
    /// The automation it belongs to.
    pub(crate) automation_id: String,
    /// The automation's name when the run was created.
    pub(crate) title: String,
    /// Inputs as sent.
    pub(crate) inputs: Value,
    /// `context` as reported.
    pub(crate) context: String,
    /// What started it.
    pub(crate) origin: RunOrigin,
    /// The automation's owner at creation.
    pub(crate) owner_id: String,
    /// The user whose key (or schedule) started it.
    pub(crate) executed_by_id: String,
    /// The automation's space at creation; `None` for a personal space.
    pub(crate) space_id: Option<String>,
    /// Creation time; the lifecycle counts from here.
    pub(crate) created_at: DateTime<Utc>,
    /// For scheduled runs, the slot they fill.
    pub(crate) scheduled_start_time: Option<DateTime<Utc>>,
    /// From creation to the final status.
    pub(crate) run_duration: chrono::Duration,
    /// The final status unless stopped.
    pub(crate) outcome: Outcome,
    /// When a stop was asked for (only ever set before the run ended).
    pub(crate) stop_requested_at: Option<DateTime<Utc>>,
    /// `metrics.blocks` of a completed run.
    pub(crate) metric_blocks: Vec<Value>,
    /// `(rxBytes, txBytes)` of a completed run.
    pub(crate) network: (u64, u64),
    /// `(id, type)` of the workspace's blocks, for the log.
    pub(crate) log_blocks: Vec<(String, String)>,
}

/// A run's state at one instant.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Phase {
    /// The `status` value.
    pub(crate) status: &'static str,
    /// When it left the queue.
    pub(crate) start_time: Option<DateTime<Utc>>,
    /// When it ended.
    pub(crate) stop_time: Option<DateTime<Utc>>,
    /// The last status change.
    pub(crate) updated_at: DateTime<Utc>,
    /// Whether the status is final.
    pub(crate) ended: bool,
    /// Whether it ended because of a stop request.
    pub(crate) stopped: bool,
}

impl Run {
    fn start_at(&self) -> DateTime<Utc> {
        self.created_at + self.run_duration / 10
    }

    fn running_at(&self) -> DateTime<Utc> {
        self.created_at + self.run_duration / 5
    }

    fn end_at(&self) -> DateTime<Utc> {
        self.created_at + self.run_duration
    }

    /// The status and times at `now`.
    pub(crate) fn phase(&self, now: DateTime<Utc>) -> Phase {
        let started = |at: DateTime<Utc>| (at >= self.start_at()).then(|| self.start_at());
        if let Some(asked) = self.stop_requested_at {
            let stopped_at = asked + STOP_GRACE;
            let (status, ended, updated_at, stop_time) = if now >= stopped_at {
                ("stopped", true, stopped_at, Some(stopped_at))
            } else {
                ("must stop", false, asked, None)
            };
            return Phase {
                status,
                start_time: started(asked),
                stop_time,
                updated_at,
                ended,
                stopped: ended,
            };
        }
        let (status, updated_at, ended) = if now < self.start_at() {
            ("queued", self.created_at, false)
        } else if now < self.running_at() {
            ("starting", self.start_at(), false)
        } else if now < self.end_at() {
            ("running", self.running_at(), false)
        } else {
            (self.outcome.status(), self.end_at(), true)
        };
        Phase {
            status,
            start_time: started(now),
            stop_time: ended.then(|| self.end_at()),
            updated_at,
            ended,
            stopped: false,
        }
    }

    /// Asks the run to stop. Refused (with a 400 detail) once it has ended.
    pub(crate) fn request_stop(&mut self, now: DateTime<Utc>) -> Result<(), String> {
        if self.phase(now).ended {
            return Err(format!(
                "run {} has already ended and cannot be stopped",
                self.id
            ));
        }
        // A second stop while the first is pending changes nothing.
        self.stop_requested_at.get_or_insert(now);
        Ok(())
    }

    /// Whole seconds between start (or creation) and stop (or now); an ended run's duration
    /// is rounded up so that a short run still counts.
    pub(crate) fn duration_secs(&self, now: DateTime<Utc>) -> i64 {
        let p = self.phase(now);
        let from = p.start_time.unwrap_or(self.created_at);
        let to = p.stop_time.unwrap_or(now);
        let ms = (to - from).num_milliseconds().max(0);
        if p.ended {
            (ms + 999) / 1000
        } else {
            ms / 1000
        }
    }

    /// `(rxBytes, txBytes)` at `now`: the full amounts once completed, only the base when
    /// stopped, nothing before.
    pub(crate) fn network_at(&self, now: DateTime<Utc>) -> (u64, u64) {
        let p = self.phase(now);
        match (p.ended, p.stopped) {
            (true, false) => self.network,
            (true, true) => (BASE_RX_BYTES, BASE_TX_BYTES),
            _ => (0, 0),
        }
    }

    fn metrics_json(&self, now: DateTime<Utc>) -> Value {
        let p = self.phase(now);
        let blocks = if p.ended && !p.stopped {
            self.metric_blocks.clone()
        } else {
            Vec::new()
        };
        let api_calls: u64 = blocks
            .iter()
            .filter_map(|b| b.get("apiCalls").and_then(Value::as_u64))
            .sum();
        let (rx, tx) = self.network_at(now);
        json!({
            "blocks": blocks,
            "network": {"rxBytes": rx, "txBytes": tx},
            "totalApiCalls": api_calls,
        })
    }

    fn error_json(&self, phase: &Phase) -> Value {
        if phase.status == "failed" {
            json!({
                "code": "AUTOMATION_RUN_FAILED",
                "message": "The run failed (emulated outcome).",
            })
        } else {
            Value::Null
        }
    }

    /// The RunDetailResponseObject (plus ownerId, executedById, spaceId, duration).
    pub(crate) fn detail_json(&self, now: DateTime<Utc>) -> Value {
        let mut v = self.list_json(now);
        if let Some(obj) = v.as_object_mut() {
            obj.insert("inputs".into(), self.inputs.clone());
            obj.insert("metrics".into(), self.metrics_json(now));
            obj.insert("expectedInputs".into(), json!({}));
        }
        v
    }

    /// The RunListObject (plus ownerId, executedById, spaceId, duration).
    pub(crate) fn list_json(&self, now: DateTime<Utc>) -> Value {
        let p = self.phase(now);
        json!({
            "id": self.id,
            "title": self.title,
            "status": p.status,
            "context": self.context,
            "createdAt": ts(self.created_at),
            "updatedAt": ts(p.updated_at),
            "startTime": ts_opt(p.start_time),
            "stopTime": ts_opt(p.stop_time),
            "scheduledStartTime": ts_opt(self.scheduled_start_time),
            "isTestRun": false,
            "isArchived": false,
            "error": self.error_json(&p),
            "ownerId": self.owner_id,
            "executedById": self.executed_by_id,
            "spaceId": self.space_id,
            "duration": self.duration_secs(now),
        })
    }

    /// The raw log an export serves: start, one entry per identified block, and the end.
    pub(crate) fn log_json(&self, now: DateTime<Utc>) -> Value {
        let p = self.phase(now);
        let mut entries = vec![json!({
            "timestamp": ts(self.created_at),
            "level": "info",
            "message": format!("Run {} queued (context {})", self.id, self.context),
        })];
        if let Some(start) = p.start_time {
            entries.push(json!({
                "timestamp": ts(start),
                "level": "info",
                "message": "Run started",
            }));
        }
        let end = p.stop_time.unwrap_or(now);
        if !p.stopped {
            let last = self.log_blocks.len().saturating_sub(1);
            for (i, (id, kind)) in self.log_blocks.iter().enumerate() {
                let (level, message) = match (p.status, i == last) {
                    ("failed", true) => ("error", format!("Block {kind} failed")),
                    ("finished with warnings", true) => {
                        ("warning", format!("Block {kind} finished with warnings"))
                    }
                    _ => ("info", format!("Block {kind} executed")),
                };
                entries.push(json!({
                    "timestamp": ts(end),
                    "level": level,
                    "blockId": id,
                    "message": message,
                }));
            }
        }
        let (level, message) = match p.status {
            "failed" => ("error", "Run failed".to_owned()),
            "finished with warnings" => ("warning", "Run finished with warnings".to_owned()),
            "stopped" => ("warning", "Run stopped on request".to_owned()),
            other => ("info", format!("Run {other}")),
        };
        entries.push(json!({"timestamp": ts(end), "level": level, "message": message}));
        Value::Array(entries)
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    pub(crate) fn run_at(created: DateTime<Utc>, ms: i64, outcome: Outcome) -> Run {
        Run {
            id: "r1".into(),
            seq: 1,
            automation_id: "a1".into(),
            title: "t".into(),
            inputs: json!({}),
            context: "api".into(),
            origin: RunOrigin::Api,
            owner_id: "u".into(),
            executed_by_id: "u".into(),
            space_id: None,
            created_at: created,
            scheduled_start_time: None,
            run_duration: chrono::Duration::milliseconds(ms),
            outcome,
            stop_requested_at: None,
            metric_blocks: vec![json!({"apiCalls": 1})],
            network: (5000, 600),
            log_blocks: vec![("b1".into(), "endpointBlock".into())],
        }
    }

    fn after(t: DateTime<Utc>, ms: i64) -> DateTime<Utc> {
        t + chrono::Duration::milliseconds(ms)
    }

    #[test]
    fn lifecycle_follows_elapsed_time() {
        let t0 = Utc::now();
        let r = run_at(t0, 1000, Outcome::Finished);
        let statuses: Vec<_> = [0, 99, 100, 199, 200, 999, 1000, 5000]
            .iter()
            .map(|ms| r.phase(after(t0, *ms)).status)
            .collect();
        assert_eq!(
            statuses,
            vec![
                "queued", "queued", "starting", "starting", "running", "running", "finished",
                "finished"
            ]
        );
        let done = r.phase(after(t0, 5000));
        assert_eq!(done.start_time, Some(after(t0, 100)));
        assert_eq!(done.stop_time, Some(after(t0, 1000)));
        assert!(r.phase(after(t0, 50)).start_time.is_none());
        assert_eq!(r.duration_secs(after(t0, 5000)), 1);
    }

    #[test]
    fn failed_runs_carry_an_error_and_full_metrics() {
        let t0 = Utc::now();
        let r = run_at(t0, 100, Outcome::Failed);
        let v = r.detail_json(after(t0, 200));
        assert_eq!(v["status"], "failed");
        assert!(v["error"].is_object());
        assert_eq!(v["metrics"]["network"]["rxBytes"], 5000);
        assert_eq!(v["metrics"]["totalApiCalls"], 1);
        let early = r.detail_json(t0);
        assert_eq!(early["status"], "queued");
        assert!(early["error"].is_null());
        assert!(early["stopTime"].is_null());
    }

    #[test]
    fn stop_goes_through_must_stop_and_is_refused_once_ended() {
        let t0 = Utc::now();
        let mut r = run_at(t0, 1000, Outcome::Finished);
        r.request_stop(after(t0, 500)).unwrap();
        assert_eq!(r.phase(after(t0, 550)).status, "must stop");
        let p = r.phase(after(t0, 600));
        assert_eq!(p.status, "stopped");
        assert_eq!(p.stop_time, Some(after(t0, 600)));
        assert!(r.request_stop(after(t0, 700)).is_err());
        let mut done = run_at(t0, 100, Outcome::Finished);
        assert!(done.request_stop(after(t0, 200)).is_err());
    }

    #[test]
    fn log_describes_start_blocks_and_outcome() {
        let t0 = Utc::now();
        let r = run_at(t0, 100, Outcome::Failed);
        let log = r.log_json(after(t0, 200));
        let entries = log.as_array().unwrap();
        assert_eq!(entries.len(), 4);
        assert_eq!(entries[2]["blockId"], "b1");
        assert_eq!(entries[3]["level"], "error");
    }
}
