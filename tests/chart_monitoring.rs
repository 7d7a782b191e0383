//! The chart's opt-in Grafana dashboard and PrometheusRule (values `monitoring.*`), checked
//! with the real tools and a real operator rather than by eye:
//!
//! - what renders: neither object by default; each behind its own switch, with its labels
//!   overridable; the dashboard is Grafana dashboard JSON with the variables and panels it
//!   promises, the rule has the five alerts with `severity` and templated annotations;
//! - every expression parses with Prometheus's own parser, the rule passes `promtool check
//!   rules`' validation and every legend/template label is one its expression keeps
//!   (`promql-check` from `tests/health/`);
//! - every metric and label those expressions use is in a live `/metrics` scrape of the
//!   operator reconciling automations, one of them with a revoked key, through a tenant that
//!   answers a 429;
//! - the render passes a server-side dry run on a control plane with the Prometheus
//!   Operator's own `PrometheusRule` and `ServiceMonitor` CRDs
//!   (`tests/health/prometheus-crds.sh`).
//!
//! The Go helpers are built (and the CRDs fetched) once per test binary, into
//! `${QAO_TOOLS_CACHE:-target/tools}`; that needs `go` and, the first time, the Go module
//! proxy.

// Tests state what must hold with unwrap/expect; the crate's lints forbid them elsewhere.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::{
    collections::{BTreeMap, BTreeSet},
    path::{Path, PathBuf},
    process::{Command, Stdio},
    sync::OnceLock,
    time::Duration,
};

use qlik_automations_operator::{
    crd::QlikAutomation,
    emulator::{FaultConfig, FaultRule},
    qlik::Endpoint,
};
use serde_json::Value;

use support::{
    chart::{CHART, helm_template, of_kind, output, render, single, succeed, yaml_docs},
    control_plane::{ControlPlane, unique_name},
    exposition::{self, Sample},
    operator::{
        DEBUG_LOG, OperatorProcess, TestNamespace, USER_KEY, automation_yaml, emulator,
        ensure_crds, free_addr, run_args, wait_ready, wait_reason,
    },
};

/// Both switches on.
const BOTH: [&str; 2] = [
    "monitoring.dashboard.enabled=true",
    "monitoring.prometheusRule.enabled=true",
];
/// The metric names' common prefix.
const PREFIX: &str = "qlik_automations_operator_";
/// The ConfigMap key holding the dashboard.
const DASHBOARD_KEY: &str = "qlik-automations-operator.json";
/// The Ready reasons for which an object is Stalled: only a person can fix it.
const STALLED: [&str; 8] = [
    "InvalidSpec",
    "Unauthorized",
    "Forbidden",
    "Conflict",
    "NotFound",
    "ConnectionError",
    "Drifted",
    "UnsupportedByApi",
];
/// A key the emulator does not know: its automation is `Unauthorized`.
const REVOKED_KEY: &str = "e2e-revoked-key-6c1d0e";

// ------------------------------------------------------------------------------------------
// Helpers

fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// `helm template` of the chart, as text.
async fn render_text(release: &str, namespace: &str, sets: &[&str]) -> String {
    succeed(helm_template(release, namespace, sets), None).await
}

/// The ConfigMaps that carry the dashboard.
fn dashboards(docs: &[Value]) -> Vec<&Value> {
    of_kind(docs, "ConfigMap")
        .into_iter()
        .filter(|c| !c["data"][DASHBOARD_KEY].is_null())
        .collect()
}

/// Runs a script that prints a directory on its last stdout line (its progress goes to
/// stderr, passed through), and returns that directory.
fn script_dir(script: &str) -> PathBuf {
    let path = repo().join(script);
    let out = Command::new("bash")
        .arg(&path)
        .stdin(Stdio::null())
        .stderr(Stdio::inherit())
        .output()
        .unwrap_or_else(|e| panic!("running {}: {e}", path.display()));
    assert!(out.status.success(), "{script} failed ({})", out.status);
    let stdout = String::from_utf8(out.stdout).unwrap();
    let dir = PathBuf::from(
        stdout
            .lines()
            .last()
            .unwrap_or_else(|| panic!("{script} printed nothing")),
    );
    assert!(dir.is_dir(), "{script} printed {}", dir.display());
    dir
}

/// `promql-check`'s directory (`tests/health/build.sh`), built once per test binary.
fn health_bin() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| script_dir("tests/health/build.sh"))
}

/// The Prometheus Operator's CRDs (`tests/health/prometheus-crds.sh`), fetched once.
fn prometheus_operator_crds() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| script_dir("tests/health/prometheus-crds.sh"))
}

/// The rendered dashboard JSON and PrometheusRule, written where the Go tools can read them.
struct Extracted {
    _dir: tempfile::TempDir,
    dashboard: PathBuf,
    rule: PathBuf,
}

/// Renders the chart with both switches on and writes out the dashboard (exactly the
/// ConfigMap's data) and the PrometheusRule.
async fn extract() -> Extracted {
    let docs = render("mon", "ops", &BOTH).await;
    let dir = tempfile::tempdir().unwrap();
    let dashboard = dir.path().join("dashboard.json");
    let rule = dir.path().join("prometheusrule.yaml");
    let configmaps = dashboards(&docs);
    assert_eq!(configmaps.len(), 1, "one dashboard ConfigMap");
    std::fs::write(
        &dashboard,
        configmaps[0]["data"][DASHBOARD_KEY].as_str().unwrap(),
    )
    .unwrap();
    std::fs::write(
        &rule,
        serde_yaml::to_string(single(&docs, "PrometheusRule")).unwrap(),
    )
    .unwrap();
    Extracted {
        _dir: dir,
        dashboard,
        rule,
    }
}

/// Runs `promql-check <flag>` on `files`; its stdout lines `<tag> <rest>` as `rest`.
async fn tool_lines(bin: PathBuf, flag: &str, tag: &str, files: &[&Path]) -> Vec<String> {
    let mut cmd = Command::new(&bin);
    cmd.arg(flag).args(files);
    let out = succeed(cmd, None).await;
    out.lines()
        .map(|l| {
            l.strip_prefix(tag)
                .and_then(|r| r.strip_prefix(' '))
                .unwrap_or_else(|| panic!("{}: unexpected line {l:?}", bin.display()))
                .to_owned()
        })
        .collect()
}

/// What the dashboard and the rule select: metric names (`promql-check -metrics`) and the
/// labels each metric must carry (`promql-check -labels`). Either fails on an expression
/// that does not parse and on a rule `promtool check rules` would refuse.
struct Uses {
    metrics: BTreeSet<String>,
    labels: BTreeMap<String, BTreeSet<String>>,
}

async fn uses(files: &Extracted) -> Uses {
    let paths = [files.rule.as_path(), files.dashboard.as_path()];
    let check = tokio::task::spawn_blocking(health_bin)
        .await
        .unwrap()
        .join("promql-check");
    let metrics = tool_lines(check.clone(), "-metrics", "metric", &paths)
        .await
        .into_iter()
        .collect();
    let mut labels: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for line in tool_lines(check, "-labels", "label", &paths).await {
        let (metric, label) = line.split_once(' ').unwrap();
        labels
            .entry(metric.to_owned())
            .or_default()
            .insert(label.to_owned());
    }
    Uses { metrics, labels }
}

/// What of `uses` the scrape lacks: metric names without a sample (a histogram's series
/// are its `_bucket`/`_sum`/`_count`, which the expressions name), and labels missing on a
/// sample of their metric. `up` is Prometheus's own, not the operator's.
fn missing(uses: &Uses, samples: &[Sample]) -> Vec<String> {
    let mut out = Vec::new();
    let names: BTreeSet<&str> = samples.iter().map(|s| s.name.as_str()).collect();
    for metric in uses.metrics.iter().filter(|m| *m != "up") {
        if !names.contains(metric.as_str()) {
            out.push(format!("metric {metric}"));
        }
    }
    for (metric, labels) in &uses.labels {
        let of: Vec<&Sample> = samples.iter().filter(|s| &s.name == metric).collect();
        for label in labels {
            if of.is_empty() || of.iter().any(|s| !s.labels.contains_key(label)) {
                out.push(format!("label {label} on every sample of {metric}"));
            }
        }
    }
    out
}

/// The dashboard file exactly as the chart embeds it.
fn dashboard_file() -> Value {
    let path = format!("{CHART}/files/dashboard.json");
    serde_json::from_str(&std::fs::read_to_string(&path).unwrap())
        .unwrap_or_else(|e| panic!("{path} is not JSON: {e}"))
}

/// Every panel, rows' nested panels included.
fn panels(dashboard: &Value) -> Vec<&Value> {
    let mut out = Vec::new();
    for p in dashboard["panels"].as_array().expect("panels") {
        out.push(p);
        if let Some(inner) = p["panels"].as_array() {
            out.extend(inner);
        }
    }
    out
}

/// Every query expression of a panel.
fn exprs(panel: &Value) -> Vec<&str> {
    panel["targets"]
        .as_array()
        .map(|t| t.iter().filter_map(|t| t["expr"].as_str()).collect())
        .unwrap_or_default()
}

// ------------------------------------------------------------------------------------------
// Tests that need no cluster

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn by_default_the_chart_renders_neither_the_dashboard_nor_the_rule() {
    let defaults = render("mon", "ops", &[]).await;
    assert!(dashboards(&defaults).is_empty());
    assert!(of_kind(&defaults, "PrometheusRule").is_empty());

    let only_dashboard = render("mon", "ops", &[BOTH[0]]).await;
    assert_eq!(dashboards(&only_dashboard).len(), 1);
    assert!(of_kind(&only_dashboard, "PrometheusRule").is_empty());
    let only_rule = render("mon", "ops", &[BOTH[1]]).await;
    assert!(dashboards(&only_rule).is_empty());
    single(&only_rule, "PrometheusRule");

    // Everything else renders exactly as without them.
    let both = render("mon", "ops", &BOTH).await;
    assert_eq!(both.len(), defaults.len() + 2);
    for doc in &defaults {
        assert!(both.contains(doc), "{} changed", doc["kind"]);
    }

    // Lint, and the schema knows the new keys and refuses others.
    let mut lint = Command::new(ControlPlane::shared().helm_path());
    lint.args(["lint", CHART, "--strict"]);
    for set in BOTH.iter().chain(&["metrics.serviceMonitor.enabled=true"]) {
        lint.args(["--set", set]);
    }
    let out = succeed(lint, None).await;
    assert!(
        out.contains("1 chart(s) linted, 0 chart(s) failed"),
        "{out}"
    );
    for (bad, complaint) in [
        ("monitoring.dashbaord.enabled=true", "dashbaord"),
        ("monitoring.prometheusRule.enabled=yes", "enabled"),
        ("monitoring.dashboard.label=not a label", "label"),
    ] {
        let out = output(helm_template("bad", "ops", &[bad]), None).await;
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{bad} was accepted");
        assert!(stderr.contains(complaint), "{bad}: {stderr}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_dashboard_is_a_configmap_the_grafana_sidecar_loads() {
    let docs = render("mon", "ops", &BOTH).await;
    let cm = dashboards(&docs)[0];
    assert_eq!(
        cm["metadata"]["name"],
        "mon-qlik-automations-operator-dashboard"
    );
    assert_eq!(cm["metadata"]["namespace"], "ops");
    assert_eq!(cm["metadata"]["labels"]["grafana_dashboard"], "1");
    assert_eq!(
        cm["metadata"]["labels"]["app.kubernetes.io/instance"],
        "mon"
    );
    // Byte for byte the file (Helm's template engine does not touch the `{{tier}}` legends).
    let file = std::fs::read_to_string(format!("{CHART}/files/dashboard.json")).unwrap();
    assert_eq!(cm["data"][DASHBOARD_KEY].as_str().unwrap(), file.trim_end());

    // The label, its value, the namespace, more labels and annotations are values.
    let custom = render(
        "mon",
        "ops",
        &[
            BOTH[0],
            "monitoring.dashboard.label=grafana.example.com/dashboard",
            "monitoring.dashboard.labelValue=yes",
            "monitoring.dashboard.namespace=monitoring",
            "monitoring.dashboard.labels.team=data",
            "monitoring.dashboard.annotations.grafana_folder=Operators",
        ],
    )
    .await;
    let cm = dashboards(&custom)[0];
    let labels = &cm["metadata"]["labels"];
    assert_eq!(labels["grafana.example.com/dashboard"], "yes");
    assert!(labels["grafana_dashboard"].is_null());
    assert_eq!(labels["team"], "data");
    assert_eq!(cm["metadata"]["namespace"], "monitoring");
    assert_eq!(cm["metadata"]["annotations"]["grafana_folder"], "Operators");
}

#[test]
fn the_dashboard_is_grafana_dashboard_json_with_the_promised_panels() {
    let d = dashboard_file();
    assert!(d["schemaVersion"].as_u64().unwrap() >= 36, "schemaVersion");
    assert_eq!(d["uid"], "qlik-automations-operator");
    assert!(d["title"].as_str().is_some_and(|t| !t.is_empty()));
    assert!(d["id"].is_null(), "a provisioned dashboard has no id");

    // Panel ids unique, every panel placed on the 24-column grid, no two overlapping.
    let all = panels(&d);
    let mut ids = BTreeSet::new();
    let mut cells = BTreeSet::new();
    for p in &all {
        let id = p["id"].as_u64().unwrap_or_else(|| panic!("no id: {p}"));
        assert!(ids.insert(id), "panel id {id} twice");
        let g = &p["gridPos"];
        let [x, y, w, h] = ["x", "y", "w", "h"].map(|k| g[k].as_u64().expect("gridPos"));
        assert!(x + w <= 24 && w > 0 && h > 0, "{}: {g}", p["title"]);
        for cx in x..x + w {
            for cy in y..y + h {
                assert!(cells.insert((cx, cy)), "{} overlaps", p["title"]);
            }
        }
        assert!(p["title"].as_str().is_some_and(|t| !t.is_empty()));
    }

    // The variables: a Prometheus data source, and tenant and identity from the metrics.
    let vars: BTreeMap<&str, &Value> = d["templating"]["list"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| (v["name"].as_str().unwrap(), v))
        .collect();
    assert_eq!(vars["datasource"]["type"], "datasource");
    assert_eq!(vars["datasource"]["query"], "prometheus");
    for (name, query) in [
        (
            "tenant",
            "label_values(qlik_automations_operator_rate_budget_limit, tenant)",
        ),
        (
            "identity",
            "label_values(qlik_automations_operator_rate_budget_limit{tenant=~\"$tenant\"}, identity)",
        ),
    ] {
        let v = vars[name];
        assert_eq!(v["type"], "query", "{name}");
        assert_eq!(v["query"], query, "{name}");
        assert_eq!(v["datasource"]["uid"], "${datasource}", "{name}");
        assert_eq!(v["includeAll"], true, "{name}");
        assert_eq!(v["allValue"], ".*", "{name}");
    }

    // Every query goes to the chosen data source; every query of a per-tenant metric is
    // filtered by both variables.
    for p in all.iter().filter(|p| p["type"] != "row") {
        assert_eq!(p["datasource"]["uid"], "${datasource}", "{}", p["title"]);
        let targets = p["targets"].as_array().expect("targets");
        assert!(!targets.is_empty(), "{}", p["title"]);
        for t in targets {
            assert_eq!(t["datasource"]["uid"], "${datasource}", "{}", p["title"]);
            let expr = t["expr"].as_str().unwrap();
            let per_tenant = ["rate_budget", "qlik_r", "rate_limit_wait"]
                .iter()
                .any(|m| expr.contains(&format!("{PREFIX}{m}")));
            if per_tenant {
                assert!(
                    expr.contains("tenant=~\"$tenant\"")
                        && expr.contains("identity=~\"$identity\""),
                    "{}: {expr}",
                    p["title"]
                );
            }
        }
    }

    // The panels the chart promises, each found by what it queries.
    let panel_with = |needles: &[&str]| -> &Value {
        all.iter()
            .find(|p| {
                exprs(p)
                    .iter()
                    .any(|e| needles.iter().all(|n| e.contains(n)))
            })
            .unwrap_or_else(|| panic!("no panel queries {needles:?}"))
    };
    let budget = panel_with(&["rate_budget_remaining", "/", "rate_budget_limit"]);
    assert_eq!(budget["fieldConfig"]["defaults"]["unit"], "percentunit");
    panel_with(&["rate(qlik_automations_operator_qlik_rate_limited_total"]);
    let waits = panel_with(&["histogram_quantile", "rate_limit_wait_seconds_bucket"]);
    assert!(exprs(waits).len() >= 2, "several quantiles of the wait");
    panel_with(&["sum by (kind, ready, reason) (qlik_automations_operator_objects)"]);
    panel_with(&[
        "histogram_quantile",
        "reconcile_duration_seconds_bucket",
        "kind",
    ]);
    panel_with(&["sum by (action)", "remote_writes_total"]);
    let stalled = panel_with(&["qlik_automations_operator_objects{reason=~"]);
    for reason in STALLED {
        assert!(exprs(stalled)[0].contains(reason), "{reason}");
    }
}

/// An alert's name, `for`, severity, what its expression contains, and the labels its
/// annotations name.
type ExpectedAlert = (
    &'static str,
    &'static str,
    &'static str,
    &'static [&'static str],
    &'static [&'static str],
);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_prometheus_rule_has_the_five_alerts() {
    let docs = render(
        "mon",
        "ops",
        &[
            BOTH[1],
            "monitoring.prometheusRule.labels.release=kube-prometheus-stack",
            "monitoring.prometheusRule.alertLabels.team=data",
            "monitoring.prometheusRule.alertLabels.severity=none",
        ],
    )
    .await;
    let rule = single(&docs, "PrometheusRule");
    assert_eq!(rule["apiVersion"], "monitoring.coreos.com/v1");
    assert_eq!(rule["metadata"]["namespace"], "ops");
    assert_eq!(
        rule["metadata"]["labels"]["release"],
        "kube-prometheus-stack"
    );
    let alerts: BTreeMap<&str, &Value> = rule["spec"]["groups"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|g| g["rules"].as_array().unwrap())
        .map(|r| (r["alert"].as_str().unwrap(), r))
        .collect();
    let expected: [ExpectedAlert; 5] = [
        (
            "QlikAutomationsObjectsStalled",
            "15m",
            "warning",
            &["qlik_automations_operator_objects{reason=~", "> 0"],
            &["kind", "reason"],
        ),
        (
            "QlikAutomationsRateLimited",
            "10m",
            "warning",
            &[
                "rate(qlik_automations_operator_qlik_rate_limited_total[10m])",
                "> 0",
            ],
            &["tenant", "identity", "tier"],
        ),
        (
            "QlikAutomationsRateBudgetExhausted",
            "5m",
            "warning",
            &["qlik_automations_operator_rate_budget_remaining", "== 0"],
            &["tenant", "identity", "tier"],
        ),
        (
            "QlikAutomationsReconcileErrors",
            "15m",
            "warning",
            &["qlik_automations_operator_reconciles_total{result!=\"success\"}"],
            &["kind", "result"],
        ),
        (
            "QlikAutomationsOperatorAbsent",
            "5m",
            "critical",
            &["absent(qlik_automations_operator_leader"],
            &[],
        ),
    ];
    assert_eq!(
        alerts.keys().copied().collect::<BTreeSet<_>>(),
        expected.iter().map(|e| e.0).collect::<BTreeSet<_>>()
    );
    for (name, for_, severity, needles, named) in expected {
        let a = alerts[name];
        assert_eq!(a["for"], for_, "{name}");
        // The severity is the alert's own; alertLabels add to it.
        assert_eq!(a["labels"]["severity"], severity, "{name}");
        assert_eq!(a["labels"]["team"], "data", "{name}");
        let expr = a["expr"].as_str().unwrap();
        for n in needles {
            assert!(expr.contains(n), "{name}: {n} in {expr}");
        }
        for key in ["summary", "description"] {
            let text = a["annotations"][key].as_str().unwrap_or_default();
            assert!(!text.is_empty(), "{name} has no {key}");
            for label in named {
                assert!(
                    text.contains(&format!("{{{{ $labels.{label} }}}}")),
                    "{name}'s {key} does not name {label}: {text}"
                );
            }
        }
    }

    // The README's table of alerts says the same: name, `for`, severity.
    let readme = std::fs::read_to_string(repo().join("README.md")).unwrap();
    let section = readme
        .split("\n### Dashboards and alerts\n")
        .nth(1)
        .expect("README has a \"Dashboards and alerts\" section");
    let section = section.split("\n#").next().unwrap();
    let table: BTreeMap<String, (String, String)> = section
        .lines()
        .filter(|l| l.starts_with("| `Qlik"))
        .map(|l| {
            let cells: Vec<&str> = l.trim_matches('|').split(" | ").map(str::trim).collect();
            let n = cells.len();
            (
                cells[0].trim_matches('`').to_owned(),
                (cells[n - 2].to_owned(), cells[n - 1].to_owned()),
            )
        })
        .collect();
    let rendered: BTreeMap<String, (String, String)> = alerts
        .iter()
        .map(|(name, a)| {
            (
                name.to_string(),
                (
                    a["for"].as_str().unwrap().to_owned(),
                    a["labels"]["severity"].as_str().unwrap().to_owned(),
                ),
            )
        })
        .collect();
    assert_eq!(table, rendered, "the README's alerts table");

    let stalled = alerts["QlikAutomationsObjectsStalled"]["expr"]
        .as_str()
        .unwrap();
    for reason in STALLED {
        assert!(stalled.contains(reason), "{reason} in {stalled}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_expression_parses_and_every_template_label_is_kept() {
    let files = extract().await;
    let uses = uses(&files).await;
    // Only the operator's own metrics: nothing depends on how it is scraped.
    for m in &uses.metrics {
        assert!(m.starts_with(PREFIX), "{m} is not the operator's");
    }
    let expected: BTreeSet<String> = [
        "qlik_requests_total",
        "qlik_rate_limited_total",
        "rate_limit_wait_seconds_bucket",
        "rate_budget_remaining",
        "rate_budget_limit",
        "objects",
        "reconcile_duration_seconds_bucket",
        "reconciles_total",
        "remote_writes_total",
        "leader",
    ]
    .iter()
    .map(|m| format!("{PREFIX}{m}"))
    .collect();
    assert_eq!(uses.metrics, expected);
    for (metric, label) in [
        ("rate_limit_wait_seconds_bucket", "le"),
        ("reconcile_duration_seconds_bucket", "le"),
        ("objects", "reason"),
        ("reconciles_total", "result"),
        ("rate_budget_remaining", "identity"),
    ] {
        assert!(
            uses.labels[&format!("{PREFIX}{metric}")].contains(label),
            "{metric} {label}"
        );
    }

    // The tools do fail: a legend naming a label its expression drops, and an alert
    // annotation that is not a valid template.
    let dir = tempfile::tempdir().unwrap();
    let broken_legend = dir.path().join("legend.json");
    std::fs::write(
        &broken_legend,
        r#"{"panels": [{"title": "t", "targets": [{"refId": "A", "legendFormat": "{{code}}",
            "expr": "sum by (tier) (rate(qlik_automations_operator_qlik_requests_total[5m]))"}]}]}"#,
    )
    .unwrap();
    let broken_rule = dir.path().join("rule.yaml");
    let rule = std::fs::read_to_string(&files.rule).unwrap().replacen(
        "{{ $labels.reason }}",
        "{{ $labels.reason ",
        1,
    );
    std::fs::write(&broken_rule, rule).unwrap();
    let bad_promql = dir.path().join("promql.json");
    std::fs::write(
        &bad_promql,
        r#"{"panels": [{"targets": [{"refId": "A", "expr": "sum by (tier (x)"}]}]}"#,
    )
    .unwrap();
    let bin = health_bin().join("promql-check");
    for (flag, file) in [
        ("-labels", &broken_legend),
        ("-labels", &broken_rule),
        ("-metrics", &bad_promql),
    ] {
        let mut cmd = Command::new(&bin);
        cmd.arg(flag).arg(file);
        let out = output(cmd, None).await;
        assert!(
            !out.status.success() && String::from_utf8_lossy(&out.stderr).contains("FAIL"),
            "{} {flag} accepted {}",
            bin.display(),
            file.display()
        );
    }
}

// ------------------------------------------------------------------------------------------
// Tests with the operator and the shared control plane

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_metric_and_label_they_use_is_in_a_live_scrape() {
    let files = extract().await;
    let uses = uses(&files).await;

    let ns = TestNamespace::new("monitoring").await;
    // The first create is answered 429, so the rate-limited counter has a sample.
    let emu = emulator(|c| {
        c.faults = FaultConfig {
            rules: vec![
                FaultRule::on(Endpoint::CreateAutomation)
                    .with_rate_limit(1.0)
                    .times(1),
            ],
        };
    })
    .await;
    ns.connection_secret("qlik", &emu.base_url(), USER_KEY)
        .await;
    ns.connection_secret("qlik-revoked", &emu.base_url(), REVOKED_KEY)
        .await;
    let listen = free_addr().to_string();
    let mut op = OperatorProcess::start(
        &unique_name("monitoring-operator"),
        &ControlPlane::shared().kubeconfig_path(),
        &run_args(
            &ns.name,
            &listen,
            &["--resync-seconds", "300", "--view-max-age-seconds", "300"],
        ),
        &[("RUST_LOG".to_string(), DEBUG_LOG.to_string())],
    );
    let ready = ["monitoring-a", "monitoring-b"];
    for name in ready {
        ns.apply_yaml::<QlikAutomation>(&automation_yaml(name, ""))
            .await;
    }
    let revoked =
        automation_yaml("monitoring-revoked", "").replace("name: qlik\n", "name: qlik-revoked\n");
    assert!(revoked.contains("qlik-revoked"), "{revoked}");
    ns.apply_yaml::<QlikAutomation>(&revoked).await;
    let api = ns.api::<QlikAutomation>();
    for name in ready {
        wait_ready(&api, name).await;
    }
    wait_reason(&api, "monitoring-revoked", "Unauthorized").await;
    op.assert_healthy().await;

    // Scrape until every name and label is there (the last counters may lag the status).
    let url = format!("http://{}/metrics", op.health_addr());
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    let samples = loop {
        let response = reqwest::get(&url)
            .await
            .unwrap_or_else(|e| panic!("GET {url}: {e}"));
        assert!(response.status().is_success(), "GET {url}: {response:?}");
        let text = response.text().await.unwrap();
        let samples = exposition::parse(&text);
        let lacking = missing(&uses, &samples);
        if lacking.is_empty() {
            break samples;
        }
        if tokio::time::Instant::now() > deadline {
            panic!(
                "the dashboard and the rule use what /metrics does not have:\n{}\n\nscrape:\n{text}\n\noperator log:\n{}",
                lacking.join("\n"),
                op.log_tail(40)
            );
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    };

    // And the values the rule matches on are the operator's: the revoked key's object is
    // counted under a Stalled reason, its reconciles under a result other than success, and
    // the dashboard's tenant variable finds the emulator.
    let of = |name: &str| -> Vec<&Sample> {
        let full = format!("{PREFIX}{name}");
        samples.iter().filter(|s| s.name == full).collect()
    };
    assert!(
        of("objects")
            .iter()
            .any(|s| s.labels["reason"] == "Unauthorized"
                && s.labels["ready"] == "False"
                && STALLED.contains(&s.labels["reason"].as_str())),
        "no Stalled object in /metrics"
    );
    assert!(
        of("reconciles_total")
            .iter()
            .any(|s| s.labels["result"] != "success")
    );
    let tenant = emu.addr().to_string();
    assert!(
        of("rate_budget_limit")
            .iter()
            .any(|s| s.labels["tenant"] == tenant)
    );
    op.assert_healthy().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_chart_with_monitoring_passes_a_server_side_dry_run() {
    let cp = ControlPlane::shared();
    let client = cp.kube_client().await;
    ensure_crds(&client).await;
    // The Prometheus Operator's own CRDs, complete with their validation.
    let crds = tokio::task::spawn_blocking(prometheus_operator_crds)
        .await
        .unwrap();
    for file in [
        "monitoring.coreos.com_prometheusrules.yaml",
        "monitoring.coreos.com_servicemonitors.yaml",
    ] {
        let mut apply = cp.kubectl();
        apply
            .args(["apply", "--server-side", "-f"])
            .arg(crds.join(file));
        succeed(apply, None).await;
    }
    let mut established = cp.kubectl();
    established.args([
        "wait",
        "--for=condition=Established",
        "crd/prometheusrules.monitoring.coreos.com",
        "crd/servicemonitors.monitoring.coreos.com",
        "--timeout=60s",
    ]);
    succeed(established, None).await;

    let release = unique_name("mon");
    let ops = unique_name("mon-ops");
    let grafana = unique_name("mon-grafana");
    for ns in [&ops, &grafana] {
        cp.create_namespace(ns).await.unwrap();
    }
    let dashboard_ns = format!("monitoring.dashboard.namespace={grafana}");
    let dry_run = |manifests: String| async move {
        let mut cmd = cp.kubectl();
        cmd.args(["apply", "--dry-run=server", "-f", "-"]);
        output(cmd, Some(manifests)).await
    };
    for sets in [
        vec![BOTH[0], BOTH[1], "metrics.serviceMonitor.enabled=true"],
        vec![
            BOTH[0],
            BOTH[1],
            "metrics.serviceMonitor.enabled=true",
            "metrics.serviceMonitor.scrapeTimeout=10s",
            "monitoring.prometheusRule.labels.release=kube-prometheus-stack",
            "monitoring.prometheusRule.alertLabels.team=data",
            dashboard_ns.as_str(),
        ],
    ] {
        let manifests = render_text(&release, &ops, &sets).await;
        let docs = yaml_docs(&manifests);
        for kind in ["PrometheusRule", "ServiceMonitor"] {
            single(&docs, kind);
        }
        assert_eq!(dashboards(&docs).len(), 1);
        let out = dry_run(manifests).await;
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "{sets:?}: {stdout}{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let accepted = stdout
            .lines()
            .filter(|l| l.contains("(server dry run)"))
            .count();
        assert_eq!(accepted, docs.len(), "{sets:?}:\n{stdout}");
        for object in [
            format!("prometheusrule.monitoring.coreos.com/{release}-qlik-automations-operator"),
            format!("servicemonitor.monitoring.coreos.com/{release}-qlik-automations-operator"),
        ] {
            assert!(stdout.contains(&object), "{object} in:\n{stdout}");
        }
    }

    // The CRD validates for real: a duration Prometheus would not read is refused.
    let manifests = render_text(&release, &ops, &BOTH).await;
    let rule = serde_yaml::to_string(single(&yaml_docs(&manifests), "PrometheusRule"))
        .unwrap()
        .replace("for: 15m", "for: 15 minutes");
    let out = dry_run(rule).await;
    assert!(!out.status.success(), "an invalid `for` was accepted");
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("for"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
