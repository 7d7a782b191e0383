//! The Argo CD health checks in `examples/argocd/resource_customizations/` and what kstatus
//! (Flux's health checks) concludes from the same fixtures, without Kubernetes: through the Go
//! helpers in `tests/health/` (built once with `tests/health/build.sh`; needs `go`).
//!
//! - `argo-health test` runs each kind's `health_test.yaml` the way Argo CD's own
//!   `TestLuaHealthScript` does (and again with argocd-cm's default libraries);
//! - `kstatus` runs `status.Compute` (sigs.k8s.io/cli-utils) on every fixture, which must give
//!   the result in [`KSTATUS`];
//! - `argo-health run` proves the single-object mode.

// Tests state what must hold with unwrap/expect; the crate's lints forbid them elsewhere.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::{
    collections::BTreeMap,
    io::Write,
    path::{Path, PathBuf},
    process::{Command, Output, Stdio},
    sync::OnceLock,
};

const KINDS: [&str; 2] = ["QlikAutomation", "QlikAutomationSettings"];

/// What kstatus v0.37.2 computes for every fixture: `<kind>/<fixture file stem>  <Status>`.
///
/// Two results differ from what one might expect of the conditions, and are kstatus's real
/// behaviour (`pkg/kstatus/status`: `checkGenericProperties`, then `checkReadyCondition`):
/// - a new object without any status is `Current` ("Resource is current"): kstatus cannot
///   tell that a controller will write conditions later, and compares
///   `status.observedGeneration` with `metadata.generation` only when the former exists;
/// - a suspended object is `InProgress`: `Ready=False` with neither `Reconciling` nor
///   `Stalled` true makes `checkReadyCondition` answer InProgress, whatever the reason.
///
/// The `readyOnly` fixtures carry only `Ready` and `Synced` (operators before `Reconciling`
/// and `Stalled`): kstatus reads `Ready=False` as InProgress, even for a reason only a person
/// can fix; that is what `Stalled` is for.
const KSTATUS: &str = "
    QlikAutomation/healthy                                   Current
    QlikAutomation/healthy_runInProgress                     InProgress
    QlikAutomation/progressing_noStatus                      Current      # no status: Current
    QlikAutomation/progressing_generationNotObserved         InProgress
    QlikAutomation/progressing_transientError                InProgress
    QlikAutomation/progressing_rateLimited                   InProgress
    QlikAutomation/suspended                                 InProgress   # Ready=False
    QlikAutomation/degraded_unauthorized                     Failed
    QlikAutomation/degraded_invalidSpec                      Failed
    QlikAutomation/degraded_notFound                         Failed
    QlikAutomation/degraded_conflict                         Failed
    QlikAutomation/degraded_connectionError                  Failed
    QlikAutomation/progressing_readyOnlyTransientError       InProgress
    QlikAutomation/degraded_readyOnlyForbidden               InProgress   # no Stalled
    QlikAutomationSettings/healthy                           Current
    QlikAutomationSettings/progressing_noStatus              Current      # no status: Current
    QlikAutomationSettings/progressing_generationNotObserved InProgress
    QlikAutomationSettings/progressing_transientError        InProgress
    QlikAutomationSettings/progressing_kubernetesError       InProgress
    QlikAutomationSettings/suspended                         InProgress   # Ready=False
    QlikAutomationSettings/degraded_forbidden                Failed
    QlikAutomationSettings/degraded_unauthorized             Failed
    QlikAutomationSettings/degraded_conflict                 Failed
    QlikAutomationSettings/degraded_unsupportedByApi         Failed
";

/// [`KSTATUS`] as a map (a repeated fixture is a mistake).
fn expected_kstatus() -> BTreeMap<&'static str, &'static str> {
    let mut out = BTreeMap::new();
    for line in KSTATUS.lines() {
        let line = line.split('#').next().unwrap().trim();
        if line.is_empty() {
            continue;
        }
        let (name, status) = line.split_once(char::is_whitespace).unwrap();
        assert!(
            out.insert(name, status.trim()).is_none(),
            "KSTATUS lists {name} twice"
        );
    }
    out
}

fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn kind_dir(kind: &str) -> PathBuf {
    repo()
        .join("examples/argocd/resource_customizations/automations.qlik.dev")
        .join(kind)
}

/// The directory holding `kstatus`, `argo-health` and `promql-check`, built once per test
/// binary (`tests/health/build.sh` rebuilds only what is out of date).
fn bin_dir() -> &'static Path {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| {
        let out = Command::new("bash")
            .arg(repo().join("tests/health/build.sh"))
            .stdin(Stdio::null())
            .stderr(Stdio::inherit())
            .output()
            .expect("running tests/health/build.sh");
        assert!(out.status.success(), "tests/health/build.sh failed");
        let stdout = String::from_utf8(out.stdout).unwrap();
        let dir = PathBuf::from(stdout.lines().last().expect("build.sh printed the bin dir"));
        assert!(
            dir.join("kstatus").is_file(),
            "no kstatus in {}",
            dir.display()
        );
        dir
    })
}

/// Runs helper `bin` with `args` and `input` on stdin.
fn helper(bin: &str, args: &[&str], input: &[u8]) -> Output {
    let mut child = Command::new(bin_dir().join(bin))
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("starting {bin}: {e}"));
    child.stdin.take().unwrap().write_all(input).unwrap();
    child.wait_with_output().unwrap()
}

fn ok_stdout(what: &str, out: Output) -> String {
    assert!(
        out.status.success(),
        "{what} failed ({}):\n{}{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// Every fixture, as `(<kind>/<stem>, path)`, sorted.
fn fixtures() -> Vec<(String, PathBuf)> {
    let mut out = Vec::new();
    for kind in KINDS {
        for entry in std::fs::read_dir(kind_dir(kind).join("testdata")).unwrap() {
            let path = entry.unwrap().path();
            if path.extension().is_some_and(|e| e == "yaml") {
                let stem = path.file_stem().unwrap().to_str().unwrap().to_owned();
                out.push((format!("{kind}/{stem}"), path));
            }
        }
    }
    out.sort();
    out
}

/// `health_test.yaml` of `kind`: `(inputPath, status, message)`.
fn argo_cases(kind: &str) -> Vec<(String, String, String)> {
    let text = std::fs::read_to_string(kind_dir(kind).join("health_test.yaml")).unwrap();
    let doc: serde_json::Value = serde_yaml::from_str(&text).unwrap();
    doc["tests"]
        .as_array()
        .expect("health_test.yaml has a tests list")
        .iter()
        .map(|t| {
            let s = |v: &serde_json::Value| v.as_str().unwrap_or_default().to_owned();
            (
                s(&t["inputPath"]),
                s(&t["healthStatus"]["status"]),
                s(&t["healthStatus"]["message"]),
            )
        })
        .collect()
}

/// `<namespace>/<name> <Status> <message>` → (key, status, message).
fn parse_kstatus_line(line: &str) -> (String, String, String) {
    let mut parts = line.splitn(3, ' ');
    let mut next = || parts.next().unwrap_or_default().to_owned();
    (next(), next(), next())
}

#[test]
fn argo_cd_health_tests_pass_for_both_kinds() {
    let dirs: Vec<String> = KINDS
        .iter()
        .map(|k| kind_dir(k).display().to_string())
        .collect();
    let args: Vec<&str> = ["test"]
        .into_iter()
        .chain(dirs.iter().map(String::as_str))
        .collect();
    let stdout = ok_stdout("argo-health test", helper("argo-health", &args, b""));
    let total: usize = KINDS.iter().map(|k| argo_cases(k).len()).sum();
    assert!(
        stdout.contains(&format!("{total} cases in 2 dirs, 0 failures")),
        "{stdout}"
    );
}

#[test]
fn argo_cd_expectations_match_the_fixture_names_and_cover_every_case() {
    let mut seen = Vec::new();
    for kind in KINDS {
        for (input, status, message) in argo_cases(kind) {
            let stem = input
                .strip_prefix("testdata/")
                .and_then(|s| s.strip_suffix(".yaml"))
                .unwrap_or_else(|| panic!("{kind}: inputPath {input} is not testdata/*.yaml"));
            let prefix = stem.split('_').next().unwrap();
            assert_eq!(
                prefix,
                status.to_lowercase(),
                "{kind}/{stem}: Argo CD status {status} does not match the file name"
            );
            assert!(!message.is_empty(), "{kind}/{stem}: no message");
            seen.push((kind, status));
        }
    }
    // Every case of the GitOps contract, for both kinds (a Settings object has no runs).
    for kind in KINDS {
        for status in ["Healthy", "Progressing", "Degraded", "Suspended"] {
            assert!(
                seen.contains(&(kind, status.to_owned())),
                "{kind}: no {status} case"
            );
        }
    }
}

#[test]
fn kstatus_computes_the_expected_status_for_every_fixture() {
    let expected = expected_kstatus();
    let fixtures = fixtures();
    let names: Vec<&str> = fixtures.iter().map(|(n, _)| n.as_str()).collect();
    for name in expected.keys() {
        assert!(
            names.contains(name),
            "KSTATUS names {name}, which has no fixture"
        );
    }

    let mut failures = Vec::new();
    let mut items = Vec::new();
    let mut wanted = Vec::new();
    for (name, path) in &fixtures {
        let Some(want) = expected.get(name.as_str()) else {
            failures.push(format!("{name}: not in KSTATUS; add its kstatus result"));
            continue;
        };
        let yaml = std::fs::read(path).unwrap();
        let stdout = ok_stdout(&format!("kstatus < {name}"), helper("kstatus", &[], &yaml));
        let lines: Vec<&str> = stdout.lines().collect();
        assert_eq!(lines.len(), 1, "{name}: {stdout}");
        let (key, status, message) = parse_kstatus_line(lines[0]);
        assert!(key.starts_with("default/"), "{name}: {key}");
        if status != *want {
            failures.push(format!(
                "{name}: kstatus says {status} ({message}), want {want}"
            ));
        }
        items.push(serde_yaml::from_slice::<serde_json::Value>(&yaml).unwrap());
        wanted.push(*want);
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));

    // The same objects as `kubectl get -o json` prints them: one `kind: List`.
    let list = serde_json::json!({
        "apiVersion": "v1",
        "kind": "List",
        "metadata": {"resourceVersion": ""},
        "items": items,
    });
    let stdout = ok_stdout(
        "kstatus < List",
        helper("kstatus", &[], &serde_json::to_vec(&list).unwrap()),
    );
    let statuses: Vec<String> = stdout.lines().map(|l| parse_kstatus_line(l).1).collect();
    assert_eq!(statuses, wanted, "{stdout}");
}

#[test]
fn argo_health_run_reports_one_object() {
    let kind = "QlikAutomation";
    let (input, status, message) = argo_cases(kind)
        .into_iter()
        .find(|(input, ..)| input == "testdata/degraded_unauthorized.yaml")
        .expect("a degraded_unauthorized case");
    let yaml = std::fs::read_to_string(kind_dir(kind).join(&input)).unwrap();
    // As `kubectl get -o json` prints it.
    let object: serde_json::Value = serde_yaml::from_str(&yaml).unwrap();
    let script = kind_dir(kind).join("health.lua");
    let script = script.to_str().unwrap();
    for args in [vec!["run", script], vec!["run", "-open-libs", script]] {
        let stdout = ok_stdout(
            "argo-health run",
            helper("argo-health", &args, &serde_json::to_vec(&object).unwrap()),
        );
        assert_eq!(stdout, format!("{status}\t{message}\n"), "{args:?}");
        assert!(stdout.starts_with("Degraded\tUnauthorized: "), "{stdout}");
    }
}

#[test]
fn both_health_scripts_share_their_logic() {
    let code = |kind: &str| -> String {
        let text = std::fs::read_to_string(kind_dir(kind).join("health.lua")).unwrap();
        text.lines().skip(1).collect::<Vec<_>>().join("\n")
    };
    assert_eq!(
        code("QlikAutomation"),
        code("QlikAutomationSettings"),
        "the two health.lua files must differ only in their first (comment) line"
    );
}
