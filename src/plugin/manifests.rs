//! Manifests as `kubectl qlik diff` reads them, and what it prints about them. Pure: the
//! command ([`commands::diff`](super::commands::diff)) does the reading and the calls.
//!
//! The desired state is built the way the reconciler builds it
//! (`controller::automation::desired`), and the changes are the reconciler's own
//! [`plan`](crate::controller::plan::plan) and [`differences`]: this module only renders
//! them.

use std::collections::BTreeMap;

use serde::Deserialize;
use serde_json::Value;

use super::{exported::canonical_json, linediff};
use crate::{
    controller::plan::{Action, Desired, differences},
    crd::{GROUP, QlikAutomation},
    qlik::model::{Automation, AutomationState, ScheduleRequest},
};

/// The objects of a manifest set that matter to a diff.
#[derive(Debug, Clone, Default)]
pub struct ManifestSet {
    /// Every QlikAutomation, in the order given, each with its namespace filled in.
    pub automations: Vec<QlikAutomation>,
    /// `data` of every ConfigMap, by (namespace, name).
    pub config_maps: BTreeMap<(String, String), BTreeMap<String, String>>,
}

/// Reads every YAML (or JSON) document of `text` (`kind: List` included); objects without a
/// namespace are in `namespace`. Other kinds than QlikAutomation and ConfigMap are skipped.
pub fn parse(text: &str, namespace: &str) -> Result<ManifestSet, String> {
    let mut set = ManifestSet::default();
    for (i, doc) in serde_yaml::Deserializer::from_str(text).enumerate() {
        let value = Value::deserialize(doc).map_err(|e| format!("document {}: {e}", i + 1))?;
        let items = match value {
            Value::Null => continue,
            Value::Object(ref o) if o.get("kind") == Some(&Value::from("List")) => o
                .get("items")
                .and_then(Value::as_array)
                .cloned()
                .unwrap_or_default(),
            other => vec![other],
        };
        for item in items {
            add(&mut set, item, namespace).map_err(|e| format!("document {}: {e}", i + 1))?;
        }
    }
    Ok(set)
}

fn add(set: &mut ManifestSet, item: Value, namespace: &str) -> Result<(), String> {
    let kind = item.get("kind").and_then(Value::as_str).unwrap_or_default();
    let api_version = item
        .get("apiVersion")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let name = item
        .pointer("/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_owned();
    match (kind, api_version) {
        ("QlikAutomation", v) if v.split('/').next() == Some(GROUP) => {
            let mut obj: QlikAutomation = serde_json::from_value(item)
                .map_err(|e| format!("QlikAutomation {name:?} is not valid: {e}"))?;
            if name.is_empty() {
                return Err("a QlikAutomation has no metadata.name".into());
            }
            obj.metadata
                .namespace
                .get_or_insert_with(|| namespace.to_owned());
            set.automations.push(obj);
        }
        ("ConfigMap", "v1") => {
            let ns = item
                .pointer("/metadata/namespace")
                .and_then(Value::as_str)
                .unwrap_or(namespace)
                .to_owned();
            let data = item
                .get("data")
                .and_then(Value::as_object)
                .map(|d| {
                    d.iter()
                        .filter_map(|(k, v)| Some((k.clone(), v.as_str()?.to_owned())))
                        .collect()
                })
                .unwrap_or_default();
            set.config_maps.insert((ns, name), data);
        }
        _ => {}
    }
    Ok(())
}

/// A string as JSON quotes it, so an empty or multi-line value is visible.
fn quoted(s: &str) -> String {
    serde_json::to_string(s).unwrap_or_default()
}

/// One schedule on one line, only what the spec owns (empty fields are absent, as the
/// reconciler compares them).
fn schedule_line(s: &ScheduleRequest) -> String {
    let field = |name: &str, v: &Option<String>| {
        v.as_deref()
            .filter(|v| !v.is_empty())
            .map(|v| format!("{name} {}", quoted(v)))
    };
    [
        field("startAt", &s.start_at),
        field("stopAt", &s.stop_at),
        s.interval.map(|i| format!("interval {i}")),
        field("timezone", &s.timezone),
        field("recurrence", &s.recurrence),
    ]
    .into_iter()
    .flatten()
    .collect::<Vec<_>>()
    .join(", ")
}

/// What the writes `actions` (the reconciler's [`plan`](crate::controller::plan::plan) of
/// `desired` against `remote`) would change, one line per field with old → new; a changed
/// workspace as a unified diff of the canonical JSON. Empty when `actions` is.
pub fn describe_changes(desired: &Desired, remote: &Automation, actions: &[Action]) -> Vec<String> {
    let mut out = Vec::new();
    for action in actions {
        match action {
            Action::Update(_) => {
                for field in differences(desired, remote) {
                    describe_field(field, desired, remote, &mut out);
                }
            }
            Action::Enable => out.push("enabled: false → true (enable)".into()),
            Action::Disable => out.push(format!(
                "enabled: true → false (disable{})",
                match &remote.state {
                    Some(AutomationState::Unavailable) => "; the tenant says unavailable",
                    _ => "",
                }
            )),
            Action::ChangeSpace(space) => out.push(format!(
                "spaceId: {} → {} (change-space)",
                space_name(remote.space_id.as_deref()),
                space_name(Some(space))
            )),
            Action::Move(user) => out.push(format!(
                "ownerId: {} → {} (change owner)",
                remote.owner_id.as_deref().map_or("none".into(), quoted),
                quoted(user)
            )),
        }
    }
    out
}

fn describe_field(field: &str, desired: &Desired, remote: &Automation, out: &mut Vec<String>) {
    match field {
        "name" => out.push(format!(
            "name: {} → {}",
            quoted(remote.name.as_deref().unwrap_or_default()),
            quoted(&desired.name)
        )),
        "description" => out.push(format!(
            "description: {} → {}",
            quoted(remote.description.as_deref().unwrap_or_default()),
            quoted(desired.description.as_deref().unwrap_or_default())
        )),
        "schedules" => {
            out.push("schedules:".into());
            let old: Vec<String> = remote
                .schedules
                .iter()
                .map(|s| schedule_line(&s.to_request()))
                .collect();
            let new: Vec<String> = desired.schedules.iter().map(schedule_line).collect();
            let old: Vec<&str> = old.iter().map(String::as_str).collect();
            let new: Vec<&str> = new.iter().map(String::as_str).collect();
            for (op, line) in linediff::diff(&old, &new) {
                let sign = match op {
                    linediff::Op::Equal => ' ',
                    linediff::Op::Delete => '-',
                    linediff::Op::Insert => '+',
                };
                out.push(format!("  {sign} {line}"));
            }
        }
        "workspace" => {
            out.push("workspace:".into());
            let empty = Value::Object(Default::default());
            let old = canonical_json(remote.workspace.as_ref().unwrap_or(&empty));
            let new = canonical_json(desired.workspace.as_ref().unwrap_or(&empty));
            let text = linediff::unified(&old, &new, "tenant", "manifest", 3);
            out.extend(text.lines().map(|l| format!("  {l}")));
        }
        "maxConcurrentRuns" => out.push(format!(
            "maxConcurrentRuns: {} → {}",
            remote
                .max_concurrent_runs
                .map_or("unset".into(), |m| m.to_string()),
            desired
                .max_concurrent_runs
                .map_or("unset".into(), |m| m.to_string())
        )),
        other => out.push(format!("{other}: differs")),
    }
}

/// A space as people read it: quoted, or "personal" for the owner's personal space.
fn space_name(space: Option<&str>) -> String {
    match space.filter(|s| !s.is_empty()) {
        Some(space) => quoted(space),
        None => "personal".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{
        controller::plan::{desired, plan, workspace_from_data},
        crd::automation::ConfigMapKeyRef,
        qlik::model::Schedule,
    };
    use serde_json::json;

    const MANIFESTS: &str = r#"
apiVersion: v1
kind: ConfigMap
metadata:
  name: sync-workspace-h895bmg5d5
data:
  workspace.json: |
    {"blocks": [{"id": "start", "type": "StartBlock"}]}
---
apiVersion: automations.qlik.dev/v1alpha1
kind: QlikAutomation
metadata:
  name: sync
spec:
  name: Sales sync
  description: new text
  enabled: false
  ownerId: u2
  schedules:
    - startAt: "2026-01-01 00:00:00"
      interval: 3600
      timezone: UTC
  workspaceFrom:
    configMapKeyRef:
      name: sync-workspace-h895bmg5d5
      key: workspace.json
---
apiVersion: v1
kind: List
items:
  - apiVersion: automations.qlik.dev/v1alpha1
    kind: QlikAutomation
    metadata: {name: other, namespace: team-b}
    spec: {}
  - apiVersion: v1
    kind: Secret
    metadata: {name: ignored}
---
"#;

    #[test]
    fn manifests_are_read_with_their_config_maps_and_namespaces() {
        let set = parse(MANIFESTS, "team-a").unwrap();
        let names: Vec<_> = set
            .automations
            .iter()
            .map(|a| {
                (
                    a.metadata.namespace.clone().unwrap(),
                    a.metadata.name.clone().unwrap(),
                )
            })
            .collect();
        assert_eq!(
            names,
            vec![
                ("team-a".to_string(), "sync".to_string()),
                ("team-b".into(), "other".into())
            ]
        );
        let key = (
            "team-a".to_string(),
            "sync-workspace-h895bmg5d5".to_string(),
        );
        let r = &set.automations[0]
            .spec
            .workspace_from
            .as_ref()
            .unwrap()
            .config_map_key_ref;
        let ws = workspace_from_data("team-a", r, set.config_maps.get(&key)).unwrap();
        assert_eq!(ws["blocks"][0]["id"], "start");
        assert!(parse("kind: QlikAutomation\napiVersion: automations.qlik.dev/v1alpha1\nmetadata: {name: x}\nspec: {enabled: maybe}\n", "a").is_err());
        assert!(parse(": : :", "a").is_err());
    }

    #[test]
    fn workspace_refs_fail_as_the_reconciler_says() {
        let r = ConfigMapKeyRef {
            name: "cm".into(),
            key: "w.json".into(),
        };
        let missing = workspace_from_data("ns", &r, None).unwrap_err();
        assert_eq!(
            missing,
            "spec.workspaceFrom: ConfigMap ns/cm does not exist"
        );
        let data: BTreeMap<String, String> = [("w.json".to_string(), "[1]".to_string())].into();
        assert!(
            workspace_from_data("ns", &r, Some(&data))
                .unwrap_err()
                .contains("must hold a JSON object")
        );
        let data: BTreeMap<String, String> = [("other".to_string(), "{}".to_string())].into();
        assert!(
            workspace_from_data("ns", &r, Some(&data))
                .unwrap_err()
                .contains("has no key \"w.json\"")
        );
    }

    #[test]
    fn space_and_concurrency_changes_are_rendered() {
        let set = parse(MANIFESTS, "team-a").unwrap();
        let mut obj = set.automations[0].clone();
        obj.spec.space_id = Some("team-b".into());
        obj.spec.max_concurrent_runs = Some(2);
        obj.spec.owner_id = None;
        let ws = json!({"blocks": [{"id": "start", "type": "StartBlock"}]});
        let d = desired(&obj, Some(ws.clone()));
        let mut remote = Automation {
            id: "a1".into(),
            name: Some(d.name.clone()),
            description: d.description.clone(),
            state: Some(AutomationState::Disabled),
            space_id: Some("team-a".into()),
            max_concurrent_runs: Some(5),
            workspace: Some(ws),
            schedules: d
                .schedules
                .iter()
                .map(|s| Schedule {
                    start_at: s.start_at.clone(),
                    stop_at: s.stop_at.clone(),
                    interval: s.interval,
                    timezone: s.timezone.clone(),
                    ..Schedule::default()
                })
                .collect(),
            ..Automation::default()
        };
        remote.state = if d.enabled {
            Some(AutomationState::Available)
        } else {
            Some(AutomationState::Disabled)
        };
        let text = describe_changes(&d, &remote, &plan(&d, &remote)).join("\n");
        assert_eq!(
            text,
            "maxConcurrentRuns: 5 → 2\nspaceId: \"team-a\" → \"team-b\" (change-space)"
        );
        obj.spec.space_id = Some(String::new());
        let d = desired(&obj, d.workspace.clone());
        let text = describe_changes(&d, &remote, &plan(&d, &remote)).join("\n");
        assert!(
            text.ends_with("spaceId: \"team-a\" → personal (change-space)"),
            "{text}"
        );
    }

    #[test]
    fn every_change_is_rendered_old_to_new() {
        let set = parse(MANIFESTS, "team-a").unwrap();
        let obj = &set.automations[0];
        let ws = json!({"blocks": [{"id": "start", "type": "StartBlock"}]});
        let d = desired(obj, Some(ws));
        let remote = Automation {
            id: "a1".into(),
            name: Some("Sales sync".into()),
            description: Some("old text".into()),
            state: Some(AutomationState::Available),
            owner_id: Some("u1".into()),
            schedules: vec![Schedule {
                id: Some("s".into()),
                start_at: Some("2026-01-01 00:00:00".into()),
                interval: Some(60),
                timezone: Some("UTC".into()),
                ..Schedule::default()
            }],
            workspace: Some(json!({"blocks": [{"id": "start", "type": "EndBlock"}]})),
            ..Automation::default()
        };
        let actions = plan(&d, &remote);
        let text = describe_changes(&d, &remote, &actions).join("\n");
        assert_eq!(
            text,
            r#"description: "old text" → "new text"
schedules:
  - startAt "2026-01-01 00:00:00", interval 60, timezone "UTC"
  + startAt "2026-01-01 00:00:00", interval 3600, timezone "UTC"
workspace:
  --- tenant
  +++ manifest
  @@ -2,7 +2,7 @@
     "blocks": [
       {
         "id": "start",
  -      "type": "EndBlock"
  +      "type": "StartBlock"
       }
     ]
   }
enabled: true → false (disable)
ownerId: "u1" → "u2" (change owner)"#
        );

        // The remote as the manifest wants it: nothing to say.
        let mut same = remote.clone();
        same.description = Some("new text".into());
        same.schedules[0].interval = Some(3600);
        same.workspace = d.workspace.clone();
        same.state = Some(AutomationState::Disabled);
        same.owner_id = Some("u2".into());
        let actions = plan(&d, &same);
        assert_eq!(actions, vec![]);
        assert!(describe_changes(&d, &same, &actions).is_empty());

        // A renamed remote, re-enabled.
        let mut renamed = same.clone();
        renamed.name = Some("Old name".into());
        let mut d2 = d.clone();
        d2.enabled = true;
        let lines = describe_changes(&d2, &renamed, &plan(&d2, &renamed));
        assert_eq!(
            lines,
            vec![
                "name: \"Old name\" → \"Sales sync\"".to_string(),
                "enabled: false → true (enable)".into()
            ]
        );
    }
}
