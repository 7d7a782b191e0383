//! End-to-end tests of `kubectl qlik export` and `kubectl qlik diff` on a real kube-apiserver
//! with the emulator as the tenant: the exported files (against golden copies in
//! `tests/golden/export/`; regenerate with `QAO_UPDATE_GOLDEN=1 cargo test --test
//! kubectl_export_diff`), their determinism and flags, the round trip of a 250-automation
//! tenant through `kubectl apply -k` with zero writes, diff's exit statuses, and the README's
//! promotion walkthrough run line by line.

// Tests state what must hold with unwrap/expect; the crate's lints forbid them elsewhere.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::{
    collections::BTreeMap,
    path::{Path, PathBuf},
    time::Duration,
};

use kube::ResourceExt;
use qlik_automations_operator::{
    crd::{ANNOTATION_AUTOMATION_ID, ConditionStatus, QlikAutomation},
    emulator::RunningEmulator,
    qlik::{
        ApiKey, ClientConfig, QlikClient, RateLimits,
        model::{AutomationRequest, ScheduleRequest},
    },
};
use serde_json::{Value, json};

use support::control_plane::ControlPlane;
use support::operator::{
    Operator, TestNamespace, USER_ID, USER_KEY, emulator, ready_status, wait_for,
};
use support::plugin::{Out, qlik, run};

/// Exit statuses `diff` documents (as `kubectl diff`).
const DIFF_NONE: i32 = 0;
const DIFF_SOME: i32 = 1;
const DIFF_ERROR: i32 = 2;

/// The control plane's kubectl as its admin.
async fn kubectl(args: &[&str]) -> Out {
    let cp = ControlPlane::shared();
    let mut cmd = tokio::process::Command::new(cp.kubectl_path());
    cmd.arg("--kubeconfig").arg(cp.kubeconfig_path()).args(args);
    run(&mut cmd, &format!("kubectl {args:?}")).await
}

/// A client of the emulator as the plain user (whose key the Secrets hold), without the
/// client-side rate limits, so big tenants are set up quickly.
fn tenant(emu: &RunningEmulator) -> QlikClient {
    let mut config = ClientConfig::new(emu.base_url(), ApiKey::new(USER_KEY));
    config.rate_limits = RateLimits {
        tier1_per_minute: 100_000,
        tier2_per_minute: 100_000,
        ..RateLimits::default()
    };
    QlikClient::new(config).unwrap()
}

fn schedule(start: &str, stop: Option<&str>, interval: i64, timezone: &str) -> ScheduleRequest {
    ScheduleRequest {
        start_at: Some(start.into()),
        stop_at: stop.map(Into::into),
        interval: Some(interval),
        timezone: Some(timezone.into()),
        recurrence: None,
    }
}

async fn create(
    client: &QlikClient,
    name: &str,
    description: Option<&str>,
    schedules: Vec<ScheduleRequest>,
    workspace: Value,
) -> String {
    client
        .create_automation(&AutomationRequest {
            name: Some(name.into()),
            description: description.map(Into::into),
            schedules: Some(schedules),
            workspace: Some(workspace),
            ..AutomationRequest::default()
        })
        .await
        .unwrap()
        .id
}

/// The small tenant of the golden files: a scheduled automation with a nested workspace, a
/// disabled one, and two of the same name (the older created first). Returns each remote id
/// with the stand-in the golden files use for it.
async fn small_tenant(client: &QlikClient) -> Vec<(String, String)> {
    let nightly = create(
        client,
        "Nightly reload",
        Some("Reloads the sales app"),
        vec![schedule(
            "2031-01-01 02:00:00",
            Some("2035-12-31 23:59:59"),
            3600,
            "Europe/Stockholm",
        )],
        json!({
            "variables": [{"type": "string", "name": "day"}],
            "blocks": [
                {"type": "StartBlock", "id": "start", "runMode": "manual"},
                {"id": "reload", "type": "EndpointBlock", "endpointId": "e1",
                 "inputs": {"z": 1, "a": {"y": [3, 2, 1], "b": "two words"}}}
            ]
        }),
    )
    .await;
    let archive = create(
        client,
        "Archive (old)",
        None,
        vec![],
        json!({"blocks": [{"id": "start", "type": "StartBlock"}]}),
    )
    .await;
    client.disable_automation(&archive).await.unwrap();
    let first = create(client, "Daily report", Some("first"), vec![], json!({})).await;
    // A later createdAt: the second of the pair takes the suffixed name.
    tokio::time::sleep(Duration::from_millis(20)).await;
    let second = create(
        client,
        "Daily report",
        Some("second: \"quoted\", on two\nlines"),
        vec![schedule("2031-06-01 00:00:00", None, 86400, "UTC")],
        json!({"blocks": [{"id": "start", "type": "StartBlock", "runMode": "webhook"}]}),
    )
    .await;
    [nightly, archive, first, second]
        .into_iter()
        .enumerate()
        .map(|(i, id)| {
            (
                id,
                format!("0000000{n}-0000-4000-8000-00000000000{n}", n = i + 1),
            )
        })
        .collect()
}

/// Every file under `dir`, by path relative to it (with `/`).
fn read_tree(dir: &Path) -> BTreeMap<String, String> {
    fn walk(root: &Path, dir: &Path, out: &mut BTreeMap<String, String>) {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                walk(root, &path, out);
            } else {
                let rel = path.strip_prefix(root).unwrap();
                let rel = rel
                    .components()
                    .map(|c| c.as_os_str().to_string_lossy().into_owned())
                    .collect::<Vec<_>>()
                    .join("/");
                out.insert(rel, std::fs::read_to_string(&path).unwrap());
            }
        }
    }
    let mut out = BTreeMap::new();
    if dir.exists() {
        walk(dir, dir, &mut out);
    }
    out
}

/// The tree with each real id (and the 8-character id suffix of a name) replaced by its
/// stand-in, in paths and contents: the emulator's ids are random.
fn normalise(
    tree: &BTreeMap<String, String>,
    ids: &[(String, String)],
) -> BTreeMap<String, String> {
    let swap = |s: &str| {
        let mut s = s.to_owned();
        for (real, fake) in ids {
            s = s
                .replace(real.as_str(), fake)
                .replace(&real[..8], &fake[..8]);
        }
        s
    };
    tree.iter().map(|(p, c)| (swap(p), swap(c))).collect()
}

/// Compares with `tests/golden/export/` byte for byte (`QAO_UPDATE_GOLDEN=1` rewrites it).
fn check_golden(actual: &BTreeMap<String, String>) {
    let golden = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden/export");
    if std::env::var_os("QAO_UPDATE_GOLDEN").is_some() {
        let _ = std::fs::remove_dir_all(&golden);
        for (path, content) in actual {
            let file = golden.join(path);
            std::fs::create_dir_all(file.parent().unwrap()).unwrap();
            std::fs::write(file, content).unwrap();
        }
    }
    let expected = read_tree(&golden);
    let hint = "regenerate with QAO_UPDATE_GOLDEN=1 cargo test --test kubectl_export_diff";
    assert_eq!(
        actual.keys().collect::<Vec<_>>(),
        expected.keys().collect::<Vec<_>>(),
        "the exported files differ from tests/golden/export ({hint})"
    );
    for (path, content) in actual {
        assert_eq!(
            content, &expected[path],
            "{path} differs from tests/golden/export/{path} ({hint})"
        );
    }
}

/// The documents of `kubectl kustomize DIR`.
async fn kustomize(dir: &Path) -> Vec<Value> {
    let out = kubectl(&["kustomize", dir.to_str().unwrap()]).await.ok();
    out.stdout
        .split("\n---\n")
        .map(|d| serde_yaml::from_str(d).unwrap())
        .collect()
}

fn tempdir() -> tempfile::TempDir {
    tempfile::tempdir().unwrap()
}

fn path(dir: &Path) -> &str {
    dir.to_str().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn export_of_a_small_tenant_matches_the_golden_files_and_is_deterministic() {
    let ns = TestNamespace::new("export-golden").await;
    let emu = emulator(|_| {}).await;
    ns.connection_secret("qlik", &emu.base_url(), USER_KEY)
        .await;
    let ids = small_tenant(&tenant(&emu)).await;
    emu.reset_counters();

    let (a, b) = (tempdir(), tempdir());
    let out = qlik(&[
        "export",
        "--connection",
        "qlik",
        "--output-dir",
        path(a.path()),
        "-n",
        &ns.name,
    ])
    .await
    .ok();
    assert!(
        out.stdout.starts_with("exported 4 automations to "),
        "{out:#?}"
    );
    assert!(
        out.stderr
            .contains("listed 4 automations in the tenant of Secret"),
        "{out:#?}"
    );
    qlik(&[
        "export",
        "--connection",
        "qlik",
        "--output-dir",
        path(b.path()),
        "-n",
        &ns.name,
    ])
    .await
    .ok();
    assert_eq!(emu.counters().writes(), 0, "export only reads");

    let first = read_tree(a.path());
    assert_eq!(first, read_tree(b.path()), "two exports, byte for byte");
    check_golden(&normalise(&first, &ids));

    // A third export into the same directory changes nothing.
    qlik(&[
        "export",
        "--connection",
        "qlik",
        "--output-dir",
        path(a.path()),
        "-n",
        &ns.name,
    ])
    .await
    .ok();
    assert_eq!(read_tree(a.path()), first);

    // kustomize points every configMapKeyRef at its generated (hash-suffixed) ConfigMap.
    let docs = kustomize(a.path()).await;
    let maps: Vec<&str> = docs
        .iter()
        .filter(|d| d["kind"] == "ConfigMap")
        .map(|d| d["metadata"]["name"].as_str().unwrap())
        .collect();
    let automations: Vec<&Value> = docs
        .iter()
        .filter(|d| d["kind"] == "QlikAutomation")
        .collect();
    assert_eq!((maps.len(), automations.len()), (4, 4));
    for a in automations {
        let name = a["metadata"]["name"].as_str().unwrap();
        let referenced = a["spec"]["workspaceFrom"]["configMapKeyRef"]["name"]
            .as_str()
            .unwrap();
        assert!(
            referenced.starts_with(&format!("{name}-workspace-")) && maps.contains(&referenced),
            "{name} → {referenced}, generated: {maps:?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn export_filters_and_writes_observe_deletion_policy_and_owner_when_asked() {
    let ns = TestNamespace::new("export-flags").await;
    let emu = emulator(|_| {}).await;
    ns.connection_secret("qlik", &emu.base_url(), USER_KEY)
        .await;
    small_tenant(&tenant(&emu)).await;

    let dir = tempdir();
    qlik(&[
        "export",
        "--connection",
        "qlik",
        "--output-dir",
        path(dir.path()),
        "-n",
        &ns.name,
        "--filter",
        "name eq \"Daily report\"",
        "--observe",
        "--deletion-policy",
        "Delete",
        "--include-owner",
    ])
    .await
    .ok();
    let tree = read_tree(dir.path());
    let manifests: Vec<(&String, &String)> = tree
        .iter()
        .filter(|(p, _)| p.ends_with(".yaml") && !p.starts_with("kustomiz"))
        .collect();
    assert_eq!(manifests.len(), 2, "{:?}", tree.keys());
    assert_eq!(
        tree.keys().filter(|p| p.starts_with("workspaces/")).count(),
        2
    );
    for (p, text) in manifests {
        assert!(p.starts_with("daily-report"), "{p}");
        let obj: QlikAutomation = serde_yaml::from_str(text).unwrap();
        assert_eq!(obj.spec.name.as_deref(), Some("Daily report"));
        assert_eq!(obj.spec.owner_id.as_deref(), Some(USER_ID));
        assert!(text.contains("\n  deletionPolicy: Delete\n"), "{text}");
        assert!(text.contains("\n  managementPolicy: Observe\n"), "{text}");
    }

    // The defaults: every automation, Orphan, Full, no owner.
    let all = tempdir();
    qlik(&[
        "export",
        "--connection",
        "qlik",
        "--output-dir",
        path(all.path()),
        "-n",
        &ns.name,
    ])
    .await
    .ok();
    let text = &read_tree(all.path())["nightly-reload.yaml"];
    assert!(text.contains("\n  deletionPolicy: Orphan\n"), "{text}");
    assert!(
        !text.contains("managementPolicy") && !text.contains("ownerId"),
        "{text}"
    );

    // Bad input is refused before anything is written.
    let none = tempdir();
    let bad = path(none.path()).to_owned() + "/out";
    let out = qlik(&[
        "export",
        "--connection",
        "qlik",
        "--output-dir",
        &bad,
        "-n",
        &ns.name,
        "--filter",
        "name eq",
    ])
    .await
    .expect_code(1);
    assert!(out.stderr.contains("--filter"), "{out:#?}");
    assert!(!Path::new(&bad).exists());
    qlik(&[
        "export",
        "--connection",
        "qlik",
        "--output-dir",
        &bad,
        "--deletion-policy",
        "Keep",
    ])
    .await
    .expect_code(2);
    let out = qlik(&[
        "export",
        "--connection",
        "missing",
        "--output-dir",
        &bad,
        "-n",
        &ns.name,
    ])
    .await
    .expect_code(1);
    assert!(out.stderr.contains("does not exist"), "{out:#?}");
}

/// Every QlikAutomation of the namespace is Ready for its generation and linked to the id
/// its annotation names.
async fn all_ready(ns: &TestNamespace, expected: usize) -> Vec<QlikAutomation> {
    wait_for(
        &format!("{expected} QlikAutomations Ready"),
        Duration::from_secs(300),
        || async {
            let list = ns
                .api::<QlikAutomation>()
                .list(&Default::default())
                .await
                .ok()?
                .items;
            let ready = list
                .iter()
                .filter(|a| {
                    let status = a.status.as_ref();
                    ready_status(a).is_some_and(|r| r.0 == ConditionStatus::True)
                        && status.and_then(|s| s.observed_generation) == a.metadata.generation
                        && status.and_then(|s| s.automation_id.as_deref())
                            == a.annotations()
                                .get(ANNOTATION_AUTOMATION_ID)
                                .map(String::as_str)
                })
                .count();
            (list.len() == expected && ready == expected).then_some(list)
        },
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_exported_tenant_of_250_is_adopted_by_apply_with_zero_writes() {
    const N: usize = 250;
    let ns = TestNamespace::new("export-250").await;
    let emu = emulator(|c| {
        c.tier1_per_minute = 100_000;
        c.tier2_per_minute = 100_000;
    })
    .await;
    ns.connection_secret("qlik", &emu.base_url(), USER_KEY)
        .await;
    let client = tenant(&emu);
    for i in 0..N {
        let name = if i == 100 || i == 101 {
            "Twin".to_string()
        } else {
            format!("Automation {i:03}")
        };
        let mut schedules = Vec::new();
        if i % 3 == 0 {
            schedules.push(schedule("2031-01-01 00:00:00", None, 3600, "UTC"));
        }
        if i % 7 == 0 {
            schedules.push(schedule(
                "2032-02-02 02:02:02",
                Some("2040-01-01 00:00:00"),
                600,
                "Europe/Stockholm",
            ));
        }
        let description = (i % 2 == 0).then(|| format!("number {i}"));
        let id = create(
            &client,
            &name,
            description.as_deref(),
            schedules,
            json!({"blocks": [{"id": "start", "type": "StartBlock"}], "variables": [], "n": i, "nested": {"b": [i, "x"], "a": null}}),
        )
        .await;
        if i % 10 == 0 {
            client.disable_automation(&id).await.unwrap();
        }
    }

    let dir = tempdir();
    let out = qlik(&[
        "export",
        "--connection",
        "qlik",
        "--output-dir",
        path(dir.path()),
        "-n",
        &ns.name,
    ])
    .await
    .ok();
    assert!(
        out.stderr.contains("fetched 50/250") && out.stderr.contains("fetched 200/250"),
        "progress every 50: {out:#?}"
    );
    let tree = read_tree(dir.path());
    assert_eq!(
        tree.keys().filter(|p| p.starts_with("workspaces/")).count(),
        N
    );
    assert!(tree.contains_key("twin.yaml"));

    let _operator = Operator::start(
        &ns.name,
        &[
            "--tier1-per-minute",
            "100000",
            "--tier2-per-minute",
            "100000",
        ],
    );
    emu.reset_counters();
    kubectl(&["apply", "-n", &ns.name, "-k", path(dir.path())])
        .await
        .ok();
    let objects = all_ready(&ns, N).await;

    assert_eq!(
        emu.counters().writes(),
        0,
        "adoption wrote to the tenant: {:#?}",
        emu.counters()
    );
    assert_eq!(emu.automations().len(), N, "no duplicate was created");
    let disabled = objects.iter().filter(|a| !a.spec.enabled).count();
    assert_eq!(disabled, N / 10);

    // diff agrees: nothing would change, object by object.
    let out = qlik(&["diff", "-k", path(dir.path()), "-n", &ns.name])
        .await
        .expect_code(DIFF_NONE);
    assert_eq!(out.stdout.matches(": no changes\n").count(), N, "{out:#?}");
    assert_eq!(emu.counters().writes(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bot_exports_one_shared_space_of_the_whole_tenant_and_apply_adopts_it() {
    use qlik_automations_operator::{
        emulator::OAuthClient as EmulatorOAuthClient,
        qlik::{Api, Endpoint},
    };
    let ns = TestNamespace::new("export-space").await;
    let emu = emulator(|c| {
        c.oauth_clients = vec![EmulatorOAuthClient::new("export-bot", "export-bot-secret")];
        c.spaces = vec!["team-a".into(), "team-b".into()];
    })
    .await;
    ns.secret(
        "qlik-bot",
        &[
            ("tenantUrl", &emu.base_url()),
            ("clientId", "export-bot"),
            ("clientSecret", "export-bot-secret"),
        ],
    )
    .await;
    // Made by a person, not the bot: only listAll shows them to it.
    let person = tenant(&emu);
    for (name, space, max) in [
        ("Alpha", Some("team-a"), Some(3)),
        ("Beta", Some("team-a"), None),
        ("Gamma", Some("team-b"), None),
        ("Delta", None, None),
    ] {
        person
            .create_automation(&AutomationRequest {
                name: Some(name.into()),
                space_id: space.map(Into::into),
                max_concurrent_runs: max,
                workspace: Some(json!({"blocks": []})),
                ..AutomationRequest::default()
            })
            .await
            .unwrap();
    }

    let dir = tempdir();
    emu.reset_counters();
    qlik(&[
        "export",
        "--connection",
        "qlik-bot",
        "--space",
        "team-a",
        "--output-dir",
        path(dir.path()),
        "-n",
        &ns.name,
    ])
    .await
    .ok();
    let counters = emu.counters();
    assert_eq!(counters.api(Api::V1), 0, "{counters:?}");
    assert_eq!(counters.writes(), 0, "{counters:?}");
    let tree = read_tree(dir.path());
    let manifests: Vec<&String> = tree
        .keys()
        .filter(|p| p.ends_with(".yaml") && !p.starts_with("kustom"))
        .collect();
    assert_eq!(manifests, ["alpha.yaml", "beta.yaml"], "{tree:#?}");
    assert!(
        tree["alpha.yaml"].contains("spaceId: team-a"),
        "{}",
        tree["alpha.yaml"]
    );
    assert!(tree["alpha.yaml"].contains("maxConcurrentRuns: 3"));
    assert!(!tree["beta.yaml"].contains("maxConcurrentRuns"));

    // The same export on a v1 connection: no spaces there, said before anything is read.
    ns.connection_secret("qlik-v1", &emu.base_url(), USER_KEY)
        .await;
    let out = qlik(&[
        "export",
        "--connection",
        "qlik-v1",
        "--space",
        "team-a",
        "--output-dir",
        path(tempdir().path()),
        "-n",
        &ns.name,
    ])
    .await
    .expect_code(1);
    assert!(
        out.stderr.contains("--space needs a workflows connection"),
        "{out:#?}"
    );

    // Applied, the bot adopts both without a write and keeps them in their space.
    let _operator = Operator::start(&ns.name, &[]);
    emu.reset_counters();
    kubectl(&["apply", "-n", &ns.name, "-k", path(dir.path())])
        .await
        .ok();
    let objects = all_ready(&ns, 2).await;
    assert_eq!(emu.counters().writes(), 0, "{:#?}", emu.counters());
    assert_eq!(emu.counters().endpoint(Endpoint::ChangeSpace), 0);
    for a in &objects {
        assert_eq!(
            a.status.as_ref().unwrap().space_id.as_deref(),
            Some("team-a")
        );
    }
}

/// Replaces `from` by `to` in `file`, insisting that it was there.
fn edit(file: &Path, from: &str, to: &str) {
    let text = std::fs::read_to_string(file).unwrap();
    assert!(
        text.contains(from),
        "{} has no {from:?}:\n{text}",
        file.display()
    );
    std::fs::write(file, text.replacen(from, to, 1)).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn diff_exits_0_without_changes_1_with_changes_and_2_on_errors() {
    let ns = TestNamespace::new("diff").await;
    let emu = emulator(|_| {}).await;
    ns.connection_secret("qlik", &emu.base_url(), USER_KEY)
        .await;
    let other = emulator(|_| {}).await;
    ns.connection_secret("other", &other.base_url(), USER_KEY)
        .await;
    small_tenant(&tenant(&emu)).await;
    let dir = tempdir();
    qlik(&[
        "export",
        "--connection",
        "qlik",
        "--output-dir",
        path(dir.path()),
        "-n",
        &ns.name,
    ])
    .await
    .ok();
    emu.reset_counters();
    let k = path(dir.path()).to_owned();

    // Right after the export: nothing to change.
    let out = qlik(&["diff", "-k", &k, "-n", &ns.name])
        .await
        .expect_code(DIFF_NONE);
    assert_eq!(out.stdout.lines().count(), 4, "{out:#?}");
    assert!(
        out.stdout
            .lines()
            .all(|l| l.starts_with(&format!("qlikautomation {}/", ns.name))
                && l.ends_with(": no changes")),
        "{out:#?}"
    );

    // A changed description: 1, with the old and the new value.
    edit(
        &dir.path().join("nightly-reload.yaml"),
        "description: \"Reloads the sales app\"",
        "description: \"Reloads the sales app at night\"",
    );
    let out = qlik(&["diff", "-k", &k, "-n", &ns.name])
        .await
        .expect_code(DIFF_SOME);
    assert!(
        out.stdout.contains(&format!(
            "qlikautomation {}/nightly-reload (automation ",
            ns.name
        )) && out.stdout.contains("): update\n")
            && out.stdout.contains(
                "  description: \"Reloads the sales app\" → \"Reloads the sales app at night\"\n"
            ),
        "{out:#?}"
    );
    assert_eq!(out.stdout.matches(": no changes\n").count(), 3, "{out:#?}");
    assert!(
        out.stderr.contains("1 of 4 QlikAutomations would change"),
        "{out:#?}"
    );

    // A workspace edit, an enable and a schedule change, each shown as it would be applied.
    edit(
        &dir.path().join("workspaces/nightly-reload.json"),
        "\"two words\"",
        "\"three words now\"",
    );
    edit(
        &dir.path().join("archive-old.yaml"),
        "enabled: false",
        "enabled: true",
    );
    let out = qlik(&["diff", "-k", &k, "-n", &ns.name])
        .await
        .expect_code(DIFF_SOME);
    for expected in [
        "  workspace:\n    --- tenant\n    +++ manifest\n    @@ ",
        "\n    -          \"b\": \"two words\",\n    +          \"b\": \"three words now\",\n",
        "/archive-old (automation ",
        "): enable\n  enabled: false → true (enable)\n",
    ] {
        assert!(out.stdout.contains(expected), "{expected:?} in {out:#?}");
    }

    // A manifest the tenant has never seen: create.
    let new = dir.path().join("new.yaml");
    std::fs::write(
        &new,
        "apiVersion: automations.qlik.dev/v1alpha1\nkind: QlikAutomation\nmetadata:\n  name: brand-new\n\
         spec:\n  connection:\n    secretRef:\n      name: qlik\n  name: Brand new\n",
    )
    .unwrap();
    let out = qlik(&["diff", "-f", path(&new), "-n", &ns.name])
        .await
        .expect_code(DIFF_SOME);
    assert_eq!(
        out.stdout,
        format!(
            "qlikautomation {ns}/brand-new: create \"Brand new\" in the tenant of Secret {ns}/qlik\n",
            ns = ns.name
        )
    );

    // --connection: compared with another tenant, which does not have these ids.
    let out = qlik(&["diff", "-k", &k, "-n", &ns.name, "--connection", "other"])
        .await
        .expect_code(DIFF_SOME);
    assert_eq!(
        out.stdout
            .matches("not found in the tenant of Secret")
            .count(),
        4,
        "{out:#?}"
    );

    // Errors: 2.
    let out = qlik(&["diff", "-f", "/nonexistent/manifest.yaml", "-n", &ns.name])
        .await
        .expect_code(DIFF_ERROR);
    assert!(
        out.stderr
            .contains("cannot read /nonexistent/manifest.yaml"),
        "{out:#?}"
    );
    // The manifest alone: its ConfigMap is neither beside it nor in the cluster.
    let out = qlik(&[
        "diff",
        "-f",
        path(&dir.path().join("nightly-reload.yaml")),
        "-n",
        &ns.name,
    ])
    .await
    .expect_code(DIFF_ERROR);
    assert!(
        out.stderr.contains("spec.workspaceFrom: ConfigMap")
            && out.stderr.contains("does not exist"),
        "{out:#?}"
    );
    let out = qlik(&["diff", "-k", "/nonexistent", "-n", &ns.name])
        .await
        .expect_code(DIFF_ERROR);
    assert!(out.stderr.contains("kubectl kustomize"), "{out:#?}");
    qlik(&["diff", "-n", &ns.name])
        .await
        .expect_code(DIFF_ERROR);

    assert_eq!(emu.counters().writes(), 0, "diff only reads");
    assert_eq!(other.counters().writes(), 0, "diff only reads");
}

/// The commands of the README's "Export a tenant, promote an automation" block.
fn promotion_commands() -> Vec<String> {
    let readme =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("README.md")).unwrap();
    let section = readme
        .split_once("\n## Export a tenant, promote an automation\n")
        .expect("README has a section \"Export a tenant, promote an automation\"")
        .1;
    let block = section
        .split_once("```sh\n")
        .expect("the section has a ```sh block")
        .1
        .split_once("\n```")
        .unwrap()
        .0;
    block
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(str::to_owned)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_readme_promotion_walkthrough_works_as_written() {
    let commands = promotion_commands();
    assert!(commands.len() >= 5, "{commands:?}");

    let ns = TestNamespace::new("promote").await;
    let dev = emulator(|_| {}).await;
    let prod = emulator(|_| {}).await;
    ns.connection_secret("qlik-dev", &dev.base_url(), USER_KEY)
        .await;
    ns.connection_secret("qlik-prod", &prod.base_url(), USER_KEY)
        .await;
    // Someone built the new version in the dev tenant's editor.
    let dev_workspace = json!({
        "blocks": [
            {"id": "start", "type": "StartBlock", "runMode": "manual"},
            {"id": "copy-orders", "type": "EndpointBlock", "connectorId": "0d87808f-27c0-11ea-921c-022e6b5ea1e2", "endpointId": "9d94bef0-b28c-11eb-8dba-01593c457362"},
            {"id": "notify", "type": "EndpointBlock", "endpointId": "notify-team"}
        ],
        "variables": []
    });
    create(
        &tenant(&dev),
        "Sales sync",
        Some("Copies the day's orders into the sales app"),
        vec![schedule(
            "2026-01-01 05:00:00",
            None,
            86400,
            "Europe/Stockholm",
        )],
        dev_workspace.clone(),
    )
    .await;
    create(&tenant(&dev), "Scratch", None, vec![], json!({})).await;
    dev.reset_counters();
    let _operator = Operator::start(&ns.name, &[]);

    // The README's working directory: a copy of examples/promotion at the same path, a
    // kubeconfig whose context namespace is the test's, and kubectl and the plugin on PATH,
    // so `kubectl qlik` goes through kubectl's own plugin lookup.
    let work = tempdir();
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    copy_tree(
        &root.join("examples/promotion"),
        &work.path().join("examples/promotion"),
    );
    let cp = ControlPlane::shared();
    let kubeconfig = work.path().join("kubeconfig");
    std::fs::copy(cp.kubeconfig_path(), &kubeconfig).unwrap();
    let bin = work.path().join("bin");
    std::fs::create_dir(&bin).unwrap();
    std::os::unix::fs::symlink(cp.kubectl_path(), bin.join("kubectl")).unwrap();
    std::os::unix::fs::symlink(env!("CARGO_BIN_EXE_kubectl-qlik"), bin.join("kubectl-qlik"))
        .unwrap();
    let path_env = format!(
        "{}:{}",
        bin.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let sh = |line: &str| {
        let mut cmd = tokio::process::Command::new("sh");
        cmd.arg("-c")
            .arg(line)
            .current_dir(work.path())
            .env("PATH", &path_env)
            .env("KUBECONFIG", &kubeconfig)
            .env_remove("QAO_KUBECTL")
            .env_remove("QAO_DEFAULT_CONNECTION")
            .env_remove("RUST_LOG");
        cmd
    };
    run(
        &mut sh(&format!(
            "kubectl config set-context --current --namespace={}",
            ns.name
        )),
        "set the namespace",
    )
    .await
    .ok();

    let mut outputs = Vec::new();
    for line in &commands {
        // `# exit 1` after a command: the status the README promises.
        let expected = if line.contains("# exit 1") { 1 } else { 0 };
        let out = run(&mut sh(line), line).await;
        eprintln!("$ {line}\n{}{}", out.stdout, out.stderr);
        assert_eq!(out.code, expected, "`{line}`: {out:#?}");
        outputs.push((line.clone(), out));
    }

    // The review showed the new block; the final diff nothing.
    let diffs: Vec<&Out> = outputs
        .iter()
        .filter(|(l, _)| l.starts_with("kubectl qlik diff"))
        .map(|(_, o)| o)
        .collect();
    assert!(diffs.len() >= 2, "{commands:?}");
    assert!(
        diffs[0].stdout.contains("workspace:")
            && diffs[0].stdout.contains("+      \"id\": \"notify\","),
        "{:#?}",
        diffs[0]
    );
    assert!(
        diffs.last().unwrap().stdout.ends_with(": no changes\n"),
        "{diffs:#?}"
    );

    // Prod runs what dev had; dev was only read.
    let remotes: Vec<Value> = prod.automations();
    assert_eq!(remotes.len(), 1, "{remotes:#?}");
    assert_eq!(remotes[0]["name"], "Sales sync");
    assert_eq!(remotes[0]["workspace"], dev_workspace);
    assert_eq!(dev.counters().writes(), 0);
}

fn copy_tree(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let path: PathBuf = entry.unwrap().path();
        let target = to.join(path.file_name().unwrap());
        if path.is_dir() {
            copy_tree(&path, &target);
        } else {
            std::fs::copy(&path, &target).unwrap();
        }
    }
}
