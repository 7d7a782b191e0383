//! Turning runs, logs and values into text: aligned tables, times, sizes, JSON and YAML.
//!
//! Everything here is pure, so the formats are unit-tested without a cluster or a tenant.

use std::time::Duration;

use chrono::{DateTime, SecondsFormat, Utc};
use serde::Serialize;
use serde_json::Value;

use super::{PluginError, duration};
use crate::qlik::model::Run;

/// How a read command prints its result (`-o`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum OutputFormat {
    /// For people: an aligned table or a summary.
    #[default]
    Table,
    /// JSON, for scripts (`jq`).
    Json,
    /// YAML.
    Yaml,
}

/// Serialises `value` as pretty JSON or YAML, ending with a newline.
pub fn structured(value: &impl Serialize, format: OutputFormat) -> Result<String, PluginError> {
    match format {
        OutputFormat::Yaml => {
            serde_yaml::to_string(value).map_err(|e| PluginError::Encode(e.to_string()))
        }
        _ => serde_json::to_string_pretty(value)
            .map(|s| s + "\n")
            .map_err(|e| PluginError::Encode(e.to_string())),
    }
}

/// `value` as JSON without its top-level `null` fields (for an array, each element's): the
/// API models keep every optional field, and a page of `"spaceId": null` helps no one. Only
/// the top level is pruned, so a run's `inputs` or `error` keep their nulls as Qlik sent them.
pub fn without_null_fields(value: &impl Serialize) -> Result<Value, PluginError> {
    fn prune(v: &mut Value) {
        if let Value::Object(map) = v {
            map.retain(|_, field| !field.is_null());
        }
    }
    let mut value = serde_json::to_value(value).map_err(|e| PluginError::Encode(e.to_string()))?;
    match &mut value {
        Value::Array(items) => items.iter_mut().for_each(prune),
        other => prune(other),
    }
    Ok(value)
}

/// Aligns `rows` under `headers` the way `kubectl get` does: columns padded to their widest
/// cell and separated by three spaces, no trailing blanks.
pub fn table(headers: &[&str], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = headers.iter().map(|h| h.chars().count()).collect();
    for row in rows {
        for (i, cell) in row.iter().enumerate() {
            if let Some(w) = widths.get_mut(i) {
                *w = (*w).max(cell.chars().count());
            }
        }
    }
    let line = |cells: Vec<&str>| {
        let mut out = String::new();
        for (i, cell) in cells.iter().enumerate() {
            out.push_str(cell);
            if i + 1 < cells.len() {
                let pad = widths[i].saturating_sub(cell.chars().count()) + 3;
                out.push_str(&" ".repeat(pad));
            }
        }
        out.trim_end().to_owned() + "\n"
    };
    let mut out = line(headers.to_vec());
    for row in rows {
        out.push_str(&line(row.iter().map(String::as_str).collect()));
    }
    out
}

/// Parses an RFC 3339 timestamp as Qlik writes them.
pub fn parse_time(text: &str) -> Option<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(text)
        .ok()
        .map(|t| t.with_timezone(&Utc))
}

/// A timestamp shortened to whole seconds in UTC (`2026-01-02T03:04:05Z`); text that is not
/// a timestamp is shown as given, and a missing one as `-`.
pub fn time(text: Option<&str>) -> String {
    match text {
        None | Some("") => "-".into(),
        Some(t) => parse_time(t).map(utc).unwrap_or_else(|| t.to_owned()),
    }
}

/// A point in time as [`time`] shows it: whole seconds in UTC (`2026-01-02T03:04:05Z`).
pub fn utc(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Secs, true)
}

/// How long ago `text` was, kubectl-style (`42s`, `3m05s`), or `-`.
pub fn age(text: Option<&str>, now: DateTime<Utc>) -> String {
    text.and_then(parse_time)
        .and_then(|t| (now - t).to_std().ok())
        .map(duration::human)
        .unwrap_or_else(|| "-".into())
}

/// A run's duration: the service's own `duration` when it sends one, else stop minus start,
/// else (still running) now minus start; `-` before it starts.
pub fn run_duration(run: &Run, now: DateTime<Utc>) -> String {
    if let Some(secs) = run.duration.filter(|s| *s >= 0)
        && run.stop_time.is_some()
    {
        return duration::human(Duration::from_secs(secs.unsigned_abs()));
    }
    let Some(start) = run.start_time.as_deref().and_then(parse_time) else {
        return "-".into();
    };
    let end = run.stop_time.as_deref().and_then(parse_time).unwrap_or(now);
    (end - start)
        .to_std()
        .map(duration::human)
        .unwrap_or_else(|_| "-".into())
}

/// `value` or `-` when missing or empty, for table cells.
pub fn or_dash(value: Option<&str>) -> String {
    match value {
        Some(v) if !v.is_empty() => v.to_owned(),
        _ => "-".into(),
    }
}

/// The runs table: ID, STATUS, CONTEXT, STARTED, DURATION, TITLE.
pub fn runs_table(runs: &[Run], now: DateTime<Utc>) -> String {
    let rows: Vec<Vec<String>> = runs
        .iter()
        .map(|r| {
            vec![
                r.id.clone(),
                or_dash(r.status.as_ref().map(|s| s.as_str())),
                or_dash(r.context.as_ref().map(|c| c.as_str())),
                time(r.start_time.as_deref()),
                run_duration(r, now),
                or_dash(r.title.as_deref()),
            ]
        })
        .collect();
    table(
        &["ID", "STATUS", "CONTEXT", "STARTED", "DURATION", "TITLE"],
        &rows,
    )
}

/// Bytes in binary units (`512 B`, `1.5 KiB`, `3.2 MiB`).
pub fn bytes(n: i64) -> String {
    const UNITS: [&str; 5] = ["KiB", "MiB", "GiB", "TiB", "PiB"];
    if n.abs() < 1024 {
        return format!("{n} B");
    }
    let mut value = n as f64 / 1024.0;
    let mut unit = 0;
    while value.abs() >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    format!("{value:.1} {}", UNITS[unit])
}

/// The keys a log entry's timestamp, level, block and message may have, in order of
/// preference: Qlik documents no schema for exported logs, so several spellings are read.
const TIME_KEYS: &[&str] = &["timestamp", "time", "date", "createdAt"];
const LEVEL_KEYS: &[&str] = &["level", "severity", "type"];
const BLOCK_KEYS: &[&str] = &["blockId", "block", "blockName"];
const MESSAGE_KEYS: &[&str] = &["message", "msg", "text", "description"];

/// An exported run log as lines for people: `TIME  LEVEL  [block]  message`, one per entry,
/// any other fields appended as `key=value`. A log that is not a list of entries (or a
/// wrapper object holding one) is printed as indented JSON rather than guessed at.
pub fn log_lines(log: &Value) -> String {
    let entries = match log {
        Value::Array(items) => Some(items),
        Value::Object(map) => ["logs", "log", "entries", "data", "items", "events"]
            .iter()
            .find_map(|k| map.get(*k).and_then(Value::as_array)),
        _ => None,
    };
    let Some(entries) = entries else {
        return serde_json::to_string_pretty(log).unwrap_or_default() + "\n";
    };
    let mut out = String::new();
    for entry in entries {
        out.push_str(&log_line(entry));
        out.push('\n');
    }
    out
}

fn log_line(entry: &Value) -> String {
    let Value::Object(map) = entry else {
        return match entry {
            Value::String(s) => s.clone(),
            other => other.to_string(),
        };
    };
    let pick = |keys: &[&str]| -> Option<(&str, String)> {
        keys.iter().find_map(|k| {
            map.get_key_value(*k).and_then(|(k, v)| match v {
                Value::Null => None,
                Value::String(s) => Some((k.as_str(), s.clone())),
                other => Some((k.as_str(), other.to_string())),
            })
        })
    };
    let mut used: Vec<&str> = Vec::new();
    let mut parts: Vec<String> = Vec::new();
    if let Some((k, v)) = pick(TIME_KEYS) {
        used.push(k);
        parts.push(time(Some(&v)));
    }
    if let Some((k, v)) = pick(LEVEL_KEYS) {
        used.push(k);
        parts.push(format!("{:<7}", v.to_uppercase()));
    }
    if let Some((k, v)) = pick(BLOCK_KEYS) {
        used.push(k);
        parts.push(format!("[{v}]"));
    }
    if let Some((k, v)) = pick(MESSAGE_KEYS) {
        used.push(k);
        parts.push(v);
    }
    for (k, v) in map {
        if used.contains(&k.as_str()) || v.is_null() {
            continue;
        }
        match v {
            Value::String(s) => parts.push(format!("{k}={s}")),
            other => parts.push(format!("{k}={other}")),
        }
    }
    parts.join("  ").trim_end().to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn now() -> DateTime<Utc> {
        parse_time("2026-03-01T12:00:00Z").unwrap()
    }

    #[test]
    fn tables_align_like_kubectl() {
        let t = table(
            &["ID", "STATUS"],
            &[
                vec!["a".into(), "finished".into()],
                vec!["bbbb".into(), "failed".into()],
            ],
        );
        assert_eq!(t, "ID     STATUS\na      finished\nbbbb   failed\n");
    }

    #[test]
    fn runs_show_status_times_and_durations() {
        let runs: Vec<Run> = serde_json::from_value(json!([
            {"id": "r2", "status": "running", "context": "api", "title": "Nightly",
             "startTime": "2026-03-01T11:59:30.123456Z"},
            {"id": "r1", "status": "finished", "context": "webhook", "title": "Nightly",
             "startTime": "2026-03-01T10:00:00Z", "stopTime": "2026-03-01T10:03:05Z"},
            {"id": "r0", "status": "queued"}
        ]))
        .unwrap();
        let t = runs_table(&runs, now());
        let lines: Vec<&str> = t.lines().collect();
        assert!(lines[0].starts_with("ID   STATUS"), "{t}");
        assert!(
            lines[1].contains("running") && lines[1].contains("2026-03-01T11:59:30Z"),
            "{t}"
        );
        assert!(lines[1].contains(" 29s "), "{t}");
        assert!(
            lines[2].contains("3m05s") && lines[2].contains("webhook"),
            "{t}"
        );
        assert!(lines[3].starts_with("r0"), "{t}");
        assert!(lines[3].ends_with("-"), "{t}");
    }

    #[test]
    fn log_entries_become_readable_lines() {
        let log = json!([
            {"timestamp": "2026-03-01T10:00:00.5Z", "level": "info", "message": "Run started"},
            {"timestamp": "2026-03-01T10:00:02Z", "level": "error", "blockId": "b1",
             "message": "Block endpointBlock failed", "code": 42},
            "plain text line"
        ]);
        let text = log_lines(&log);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines[0], "2026-03-01T10:00:00Z  INFO     Run started");
        assert_eq!(
            lines[1],
            "2026-03-01T10:00:02Z  ERROR    [b1]  Block endpointBlock failed  code=42"
        );
        assert_eq!(lines[2], "plain text line");
        assert_eq!(
            log_lines(&json!({"logs": [{"message": "m"}]})),
            "m\n",
            "a wrapper object is unwrapped"
        );
        assert!(log_lines(&json!({"unknown": 1})).contains("\"unknown\": 1"));
    }

    #[test]
    fn sizes_and_ages() {
        assert_eq!(bytes(512), "512 B");
        assert_eq!(bytes(1536), "1.5 KiB");
        assert_eq!(bytes(3 * 1024 * 1024 + 200_000), "3.2 MiB");
        assert_eq!(age(Some("2026-03-01T11:58:00Z"), now()), "2m00s");
        assert_eq!(age(None, now()), "-");
        assert_eq!(time(Some("not a time")), "not a time");
        assert_eq!(
            utc(parse_time("2026-03-01T12:00:00.987+01:00").unwrap()),
            "2026-03-01T11:00:00Z"
        );
    }

    #[test]
    fn only_top_level_nulls_are_dropped() {
        let runs = json!([{"id": "r", "spaceId": null, "inputs": {"x": null}}]);
        assert_eq!(
            without_null_fields(&runs).unwrap(),
            json!([{"id": "r", "inputs": {"x": null}}])
        );
        assert_eq!(
            without_null_fields(&json!({"a": null, "b": 1})).unwrap(),
            json!({"b": 1})
        );
    }

    #[test]
    fn structured_output_is_json_or_yaml() {
        let v = json!({"a": [1, 2]});
        assert_eq!(
            structured(&v, OutputFormat::Json).unwrap(),
            "{\n  \"a\": [\n    1,\n    2\n  ]\n}\n"
        );
        assert_eq!(
            structured(&v, OutputFormat::Yaml).unwrap(),
            "a:\n- 1\n- 2\n"
        );
    }
}
