//! What the service derives from an automation's workspace (the editor's document
//! `{"blocks":[...],"variables":[...]}`): the start block's run mode, the connector, endpoint
//! and snippet ids its blocks use, and the per-block metrics a run reports.

use serde_json::{Value, json};

use super::wire::{BASE_RX_BYTES, BASE_TX_BYTES, Outcome, RunMode};

/// The key that, anywhere in a workspace or in a run's inputs, decides a run's outcome
/// (`"failed"`, `"finished with warnings"` or `"finished"`).
pub(crate) const OUTCOME_KEY: &str = "_emulatorOutcome";

/// Bytes an endpoint block reports receiving per run.
const BLOCK_RX_BYTES: u64 = 2048;
/// Bytes an endpoint block reports sending per run.
const BLOCK_TX_BYTES: u64 = 512;

/// Everything derived from a workspace at save time.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct WorkspaceInfo {
    /// The start block's `runMode` (default manual).
    pub(crate) start_run_mode: RunMode,
    /// `snippetId`s of the blocks, deduplicated, in order of appearance.
    pub(crate) snippet_ids: Vec<String>,
    /// `endpointId`s, likewise.
    pub(crate) endpoint_ids: Vec<String>,
    /// `connectorId`s, likewise.
    pub(crate) connector_ids: Vec<String>,
    /// The `metrics.blocks` entries a finished run reports.
    pub(crate) metric_blocks: Vec<Value>,
    /// `(id, type)` of blocks that carry an id, for run logs.
    pub(crate) blocks: Vec<(String, String)>,
    /// An outcome marker found in the workspace.
    pub(crate) outcome: Option<Outcome>,
}

impl Default for WorkspaceInfo {
    fn default() -> Self {
        WorkspaceInfo {
            start_run_mode: RunMode::Manual,
            snippet_ids: Vec::new(),
            endpoint_ids: Vec::new(),
            connector_ids: Vec::new(),
            metric_blocks: Vec::new(),
            blocks: Vec::new(),
            outcome: None,
        }
    }
}

impl WorkspaceInfo {
    /// Total bytes received and sent by one finished run.
    pub(crate) fn network(&self) -> (u64, u64) {
        let n = self.metric_blocks.len() as u64;
        (
            BASE_RX_BYTES + n * BLOCK_RX_BYTES,
            BASE_TX_BYTES + n * BLOCK_TX_BYTES,
        )
    }
}

/// Validates a workspace and derives what the service derives. The error is a 400 detail.
pub(crate) fn analyze(workspace: &Value) -> Result<WorkspaceInfo, String> {
    let obj = workspace
        .as_object()
        .ok_or_else(|| "workspace must be an object".to_owned())?;
    let mut info = WorkspaceInfo {
        outcome: find_outcome(workspace),
        ..WorkspaceInfo::default()
    };
    let blocks = match obj.get("blocks") {
        None | Some(Value::Null) => return Ok(info),
        Some(Value::Array(blocks)) => blocks,
        Some(_) => return Err("workspace.blocks must be an array".to_owned()),
    };
    let mut start_blocks = 0;
    for (i, block) in blocks.iter().enumerate() {
        let block = block
            .as_object()
            .ok_or_else(|| format!("workspace.blocks[{i}] must be an object"))?;
        let kind = block.get("type").and_then(Value::as_str).unwrap_or("");
        if kind == "StartBlock" {
            start_blocks += 1;
            if start_blocks > 1 {
                return Err(format!(
                    "workspace must contain exactly one start block, but workspace.blocks[{i}] is a second one"
                ));
            }
            info.start_run_mode = match block.get("runMode") {
                None | Some(Value::Null) => RunMode::Manual,
                Some(Value::String(m)) if m == "manual" => RunMode::Manual,
                Some(Value::String(m)) if m == "triggered" => RunMode::Triggered,
                Some(Value::String(m)) if m == "webhook" => RunMode::Webhook,
                Some(_) => {
                    return Err(format!(
                        "workspace.blocks[{i}].runMode must be one of manual, triggered, webhook"
                    ));
                }
            };
        }
        let field = |name: &str| block.get(name).and_then(Value::as_str).map(str::to_owned);
        let (snippet, endpoint, connector) = (
            field("snippetId"),
            field("endpointId"),
            field("connectorId"),
        );
        push_unique(&mut info.snippet_ids, &snippet);
        push_unique(&mut info.endpoint_ids, &endpoint);
        push_unique(&mut info.connector_ids, &connector);
        if snippet.is_some() || endpoint.is_some() || connector.is_some() {
            info.metric_blocks.push(json!({
                "type": if kind.is_empty() { "endpointBlock" } else { kind },
                "rxBytes": BLOCK_RX_BYTES,
                "txBytes": BLOCK_TX_BYTES,
                "apiCalls": 1,
                "snippetId": snippet,
                "endpointId": endpoint,
                "connectorId": connector,
            }));
        }
        if let Some(id) = field("id") {
            info.blocks.push((id, kind.to_owned()));
        }
    }
    Ok(info)
}

fn push_unique(list: &mut Vec<String>, value: &Option<String>) {
    if let Some(v) = value
        && !list.contains(v)
    {
        list.push(v.clone());
    }
}

/// Looks for [`OUTCOME_KEY`] anywhere in a JSON document.
pub(crate) fn find_outcome(v: &Value) -> Option<Outcome> {
    match v {
        Value::Object(map) => {
            if let Some(o) = map
                .get(OUTCOME_KEY)
                .and_then(Value::as_str)
                .and_then(Outcome::parse)
            {
                return Some(o);
            }
            map.values().find_map(find_outcome)
        }
        Value::Array(items) => items.iter().find_map(find_outcome),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn derives_ids_in_order_without_duplicates() {
        let ws = json!({"blocks": [
            {"type": "StartBlock", "runMode": "webhook", "id": "b0"},
            {"type": "endpointBlock", "connectorId": "c1", "endpointId": "e1", "id": "b1"},
            {"type": "endpointBlock", "connectorId": "c2", "endpointId": "e2"},
            {"type": "endpointBlock", "connectorId": "c1", "endpointId": "e1"},
            {"type": "SnippetBlock", "snippetId": "s1"},
        ]});
        let info = analyze(&ws).unwrap();
        assert_eq!(info.start_run_mode, RunMode::Webhook);
        assert_eq!(info.connector_ids, vec!["c1", "c2"]);
        assert_eq!(info.endpoint_ids, vec!["e1", "e2"]);
        assert_eq!(info.snippet_ids, vec!["s1"]);
        assert_eq!(info.metric_blocks.len(), 4);
        assert_eq!(info.blocks.len(), 2);
        assert_eq!(info.network(), (1024 + 4 * 2048, 256 + 4 * 512));
    }

    #[test]
    fn rejects_bad_workspaces_naming_the_field() {
        assert_eq!(
            analyze(&json!([])).unwrap_err(),
            "workspace must be an object"
        );
        assert_eq!(
            analyze(&json!({"blocks": {}})).unwrap_err(),
            "workspace.blocks must be an array"
        );
        let two = json!({"blocks": [{"type": "StartBlock"}, {"type": "StartBlock"}]});
        assert!(analyze(&two).unwrap_err().contains("workspace.blocks[1]"));
        let bad_mode = json!({"blocks": [{"type": "StartBlock", "runMode": "cron"}]});
        assert!(analyze(&bad_mode).unwrap_err().contains("runMode"));
    }

    #[test]
    fn empty_workspace_is_manual() {
        let info = analyze(&json!({})).unwrap();
        assert_eq!(info.start_run_mode, RunMode::Manual);
        assert!(info.connector_ids.is_empty());
    }

    #[test]
    fn finds_outcome_markers_anywhere() {
        let ws = json!({"blocks": [{"type": "x", "inputs": {"_emulatorOutcome": "failed"}}]});
        assert_eq!(find_outcome(&ws), Some(Outcome::Failed));
        assert_eq!(
            find_outcome(&json!({"_emulatorOutcome": "finished with warnings"})),
            Some(Outcome::FinishedWithWarnings)
        );
        assert_eq!(find_outcome(&json!({"a": 1})), None);
    }
}
