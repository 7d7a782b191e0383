//! The Helm chart as tests see it: commands run off the async runtime, `helm template`
//! of the chart, and the rendered documents.

use std::{
    io::Write,
    process::{Command, Output, Stdio},
};

use serde_json::Value;

use super::control_plane::ControlPlane;

/// The chart's directory.
pub const CHART: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/charts/qlik-automations-operator"
);

/// Runs `cmd` off the async runtime, with `stdin` piped in when given.
pub async fn output(mut cmd: Command, stdin: Option<String>) -> Output {
    tokio::task::spawn_blocking(move || {
        cmd.stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
        let mut child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"));
        if let Some(text) = stdin {
            let mut pipe = child.stdin.take().unwrap();
            pipe.write_all(text.as_bytes()).unwrap();
        }
        child.wait_with_output().unwrap()
    })
    .await
    .unwrap()
}

/// Runs `cmd` and returns its stdout; panics with both streams when it fails.
pub async fn succeed(cmd: Command, stdin: Option<String>) -> String {
    let what = format!("{cmd:?}");
    let out = output(cmd, stdin).await;
    assert!(
        out.status.success(),
        "{what} failed ({}):\n{}{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Every document of a multi-document YAML stream, as JSON values (empty documents dropped).
pub fn yaml_docs(text: &str) -> Vec<Value> {
    serde_yaml::Deserializer::from_str(text)
        .map(|d| serde::Deserialize::deserialize(d).unwrap())
        .filter(|v: &Value| !v.is_null())
        .collect()
}

/// The documents of `kind`.
pub fn of_kind<'a>(docs: &'a [Value], kind: &str) -> Vec<&'a Value> {
    docs.iter().filter(|d| d["kind"] == kind).collect()
}

/// The one document of `kind`; panics unless there is exactly one.
pub fn single<'a>(docs: &'a [Value], kind: &str) -> &'a Value {
    let found = of_kind(docs, kind);
    assert_eq!(found.len(), 1, "expected one {kind}, got {}", found.len());
    found[0]
}

/// `helm template RELEASE CHART -n NAMESPACE --set ...` with the control plane's helm.
pub fn helm_template(release: &str, namespace: &str, sets: &[&str]) -> Command {
    let mut cmd = Command::new(ControlPlane::shared().helm_path());
    cmd.args(["template", release, CHART, "--namespace", namespace]);
    for set in sets {
        cmd.args(["--set", set]);
    }
    cmd
}

/// The chart rendered with `sets`, as documents.
pub async fn render(release: &str, namespace: &str, sets: &[&str]) -> Vec<Value> {
    yaml_docs(&succeed(helm_template(release, namespace, sets), None).await)
}
