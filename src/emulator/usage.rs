//! `GET .../automations/usage` (both generations): metrics per day (and per automation with
//! `breakdownBy=automation`), aggregated from the runs that actually happened, including runs
//! of automations deleted or moved since.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde_json::{Value, json};

use super::error::ApiError;
use super::pagination::{param, parse_filter};
use super::runs::{Run, RunOrigin};
use super::store::Store;
use crate::qlik::query::USAGE_FILTER_FIELDS;

/// The metric names, in the reference's order.
const METRICS: [&str; 7] = [
    "runs",
    "scheduledRun",
    "triggeredRun",
    "webhookRuns",
    "duration",
    "bandwidthIn",
    "bandwidthOut",
];

/// The most entries one answer carries (the reference's limitation).
const MAX_ENTRIES: usize = 1000;

/// The automation a usage entry is broken down by.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct AutomationRef {
    guid: String,
    name: String,
    owner_id: String,
}

/// Answers a usage query from the store's history.
pub(crate) fn usage(
    store: &Store,
    pairs: &[(String, String)],
    now: DateTime<Utc>,
) -> Result<Value, ApiError> {
    let raw = param(pairs, "filter")
        .filter(|f| !f.trim().is_empty())
        .ok_or_else(|| {
            ApiError::BadRequest(
                "filter is required, e.g. date ge \"2026-11-01\" and name eq \"runs\"".to_owned(),
            )
        })?;
    let filter = parse_filter(raw, USAGE_FILTER_FIELDS)?;
    let by_automation = match param(pairs, "breakdownBy") {
        None | Some("") => false,
        Some("automation") => true,
        Some(_) => {
            return Err(ApiError::BadRequest(
                "breakdownBy must be automation".to_owned(),
            ));
        }
    };

    // (date, automation) -> metric values, in METRICS order.
    let mut groups: BTreeMap<(String, Option<AutomationRef>), [i64; 7]> = BTreeMap::new();
    let mut add = |run: &Run, name: &str, owner: &str| {
        let automation = by_automation.then(|| AutomationRef {
            guid: run.automation_id.clone(),
            name: name.to_owned(),
            owner_id: owner.to_owned(),
        });
        let date = run.created_at.format("%Y-%m-%d").to_string();
        let m = groups.entry((date, automation)).or_default();
        m[0] += 1;
        match run.origin {
            RunOrigin::Api => {}
            RunOrigin::Scheduled => m[1] += 1,
            RunOrigin::Triggered => m[2] += 1,
            RunOrigin::Webhook => m[3] += 1,
        }
        if run.phase(now).ended {
            let (rx, tx) = run.network_at(now);
            m[4] += run.duration_secs(now);
            m[5] += i64::try_from(rx).unwrap_or(i64::MAX);
            m[6] += i64::try_from(tx).unwrap_or(i64::MAX);
        }
    };
    for (id, runs) in &store.runs {
        let (name, owner) = store
            .automations
            .get(id)
            .map(|a| (a.name.as_str(), a.owner_id.as_str()))
            .unwrap_or_default();
        for run in runs {
            add(run, name, owner);
        }
    }
    for archived in &store.archived {
        add(
            &archived.run,
            &archived.automation_name,
            &archived.automation_owner,
        );
    }

    let mut entries: Vec<(String, usize, Option<AutomationRef>, i64)> = groups
        .into_iter()
        .flat_map(|((date, automation), values)| {
            (0..METRICS.len()).map(move |i| (date.clone(), i, automation.clone(), values[i]))
        })
        .collect();
    entries.sort_by(|a, b| (&a.0, a.1, &a.2).cmp(&(&b.0, b.1, &b.2)));
    let data: Vec<Value> = entries
        .into_iter()
        .map(|(date, i, automation, value)| {
            let mut v = json!({"date": date, "name": METRICS[i], "value": value});
            if let (Some(a), Some(obj)) = (automation, v.as_object_mut()) {
                obj.insert(
                    "automation".into(),
                    json!({"guid": a.guid, "name": a.name, "ownerId": a.owner_id}),
                );
            }
            v
        })
        .filter(|v| filter.matches(v))
        .take(MAX_ENTRIES)
        .collect();
    Ok(json!({ "data": data }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::emulator::store::RunStart;
    use crate::emulator::validate::{SaveRules, automation_input};
    use crate::qlik::endpoint::Api;

    fn pairs(q: &[(&str, &str)]) -> Vec<(String, String)> {
        q.iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn aggregates_runs_per_day_and_metric() {
        let mut s = Store::new(std::time::Duration::from_millis(10), false);
        let t0 = Utc::now();
        let body = json!({"name": "a", "workspace": {"blocks": [{"type": "endpointBlock", "connectorId": "c"}]}});
        let id = s.create_automation(
            "u",
            automation_input(Some(&body), SaveRules::new(Api::V1, true)).unwrap(),
            t0,
        );
        for _ in 0..3 {
            s.start_run(&id, RunStart::api("u", "api".into(), json!({}), None), t0)
                .unwrap();
        }
        let later = t0 + chrono::Duration::seconds(1);
        let today = t0.format("%Y-%m-%d").to_string();
        let q = pairs(&[("filter", &format!("date ge \"{today}\""))]);
        let v = usage(&s, &q, later).unwrap();
        let get = |name: &str| {
            v["data"]
                .as_array()
                .unwrap()
                .iter()
                .find(|e| e["name"] == name)
                .unwrap()["value"]
                .clone()
        };
        assert_eq!(get("runs"), 3);
        assert_eq!(get("scheduledRun"), 0);
        assert_eq!(get("duration"), 3);
        assert_eq!(get("bandwidthIn"), 3 * (1024 + 2048));
        let q = pairs(&[
            ("filter", "name eq \"runs\""),
            ("breakdownBy", "automation"),
        ]);
        let v = usage(&s, &q, later).unwrap();
        assert_eq!(v["data"].as_array().unwrap().len(), 1);
        assert_eq!(v["data"][0]["automation"]["guid"], id.as_str());
        assert_eq!(v["data"][0]["automation"]["ownerId"], "u");
    }

    #[test]
    fn refuses_missing_filter_and_unknown_breakdown() {
        let s = Store::new(std::time::Duration::from_millis(10), false);
        assert!(usage(&s, &[], Utc::now()).is_err());
        let q = pairs(&[("filter", "name eq \"runs\""), ("breakdownBy", "user")]);
        assert!(usage(&s, &q, Utc::now()).is_err());
        let q = pairs(&[("filter", "value gt 1")]);
        assert!(usage(&s, &q, Utc::now()).is_err());
    }
}
