//! Smoke tests of the local control plane (tests/control-plane/, support in
//! tests/support/control_plane.rs): a real kube-apiserver + etcd at the
//! Kubernetes release pinned in tests/control-plane/versions.env.

// Tests state what must hold with unwrap/expect; the crate's lints forbid them elsewhere.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::time::Duration;

use k8s_openapi::api::authentication::v1::{SelfSubjectReview, TokenRequest, TokenRequestSpec};
use k8s_openapi::api::core::v1::{Namespace, Secret, ServiceAccount};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{Api, ApiResource, DynamicObject, ObjectMeta, Patch, PatchParams, PostParams};
use serde_json::json;
use support::control_plane::{ControlPlane, pinned_k8s_version, pinned_versions, unique_name};

const GROUP: &str = "smoke.qao.test";

fn crd() -> CustomResourceDefinition {
    serde_json::from_value(json!({
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": { "name": format!("widgets.{GROUP}") },
        "spec": {
            "group": GROUP,
            "scope": "Namespaced",
            "names": { "plural": "widgets", "singular": "widget", "kind": "Widget", "listKind": "WidgetList" },
            "versions": [{
                "name": "v1",
                "served": true,
                "storage": true,
                "subresources": { "status": {} },
                "schema": { "openAPIV3Schema": {
                    "type": "object",
                    "properties": {
                        "spec": { "type": "object", "properties": { "size": { "type": "integer" } } },
                        "status": { "type": "object", "properties": { "phase": { "type": "string" } } }
                    }
                }}
            }]
        }
    }))
    .expect("valid CRD")
}

fn widget_resource() -> ApiResource {
    ApiResource {
        group: GROUP.into(),
        version: "v1".into(),
        api_version: format!("{GROUP}/v1"),
        kind: "Widget".into(),
        plural: "widgets".into(),
    }
}

fn api_code<T: std::fmt::Debug>(r: &Result<T, kube::Error>) -> Option<u16> {
    match r {
        Err(kube::Error::Api(s)) => Some(s.code),
        _ => None,
    }
}

#[tokio::test]
async fn server_and_tools_report_the_pinned_versions() {
    let cp = ControlPlane::shared();
    let pinned = pinned_k8s_version();

    let info = cp
        .kube_client()
        .await
        .apiserver_version()
        .await
        .expect("GET /version");
    assert_eq!(info.git_version, pinned, "kube-apiserver /version");
    let minor = pinned.trim_start_matches('v').split('.').nth(1).unwrap();
    assert_eq!(info.major, "1");
    assert_eq!(info.minor, minor);

    // The kubectl built next to it: client and server versions.
    let out = cp
        .kubectl()
        .args(["version", "-o", "json"])
        .output()
        .expect("run kubectl");
    assert!(
        out.status.success(),
        "kubectl version: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("kubectl version json");
    assert_eq!(v["clientVersion"]["gitVersion"], pinned.as_str(), "{v}");
    assert_eq!(v["serverVersion"]["gitVersion"], pinned.as_str(), "{v}");

    // helm, at the version pinned in versions.env, can talk to the cluster.
    let helm_version = pinned_versions()
        .remove("HELM_VERSION")
        .expect("HELM_VERSION");
    let out = cp
        .helm()
        .args(["version", "--short"])
        .output()
        .expect("run helm");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && text.starts_with(&helm_version),
        "helm version: {text}"
    );
    let out = cp
        .helm()
        .args(["list", "--all-namespaces"])
        .output()
        .expect("run helm list");
    assert!(
        out.status.success(),
        "helm list: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[tokio::test]
async fn crd_with_status_subresource_and_custom_object() {
    let cp = ControlPlane::shared();
    let client = cp.kube_client().await;
    let ns = unique_name("smoke-crd");
    cp.create_namespace(&ns).await.expect("create namespace");
    let got = Api::<Namespace>::all(client.clone())
        .get(&ns)
        .await
        .expect("read namespace");
    assert_eq!(got.metadata.name.as_deref(), Some(ns.as_str()));

    // Apply the CRD (server-side apply, idempotent across runs) and wait until Established.
    let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
    let crd = crd();
    let name = crd.metadata.name.clone().unwrap();
    crds.patch(
        &name,
        &PatchParams::apply("qao-smoke").force(),
        &Patch::Apply(&crd),
    )
    .await
    .expect("apply CRD");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let c = crds.get(&name).await.expect("read CRD");
        let established = c
            .status
            .as_ref()
            .and_then(|s| s.conditions.as_ref())
            .is_some_and(|cs| {
                cs.iter()
                    .any(|c| c.type_ == "Established" && c.status == "True")
            });
        if established {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "CRD not Established in 30s: {:?}",
            c.status
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    // Create a custom object (retry briefly: the new resource's handler can
    // lag a moment behind the Established condition).
    let ar = widget_resource();
    let widgets: Api<DynamicObject> = Api::namespaced_with(client.clone(), &ns, &ar);
    let obj = DynamicObject::new("w1", &ar).data(json!({ "spec": { "size": 3 } }));
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    let created = loop {
        let r = widgets.create(&PostParams::default(), &obj).await;
        if api_code(&r) == Some(404) && tokio::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(200)).await;
            continue;
        }
        break r.expect("create Widget");
    };
    assert_eq!(created.data["spec"]["size"], 3);

    let read = widgets.get("w1").await.expect("read Widget");
    assert_eq!(read.data["spec"]["size"], 3);
    assert!(
        read.data.get("status").is_none(),
        "fresh object has no status: {:?}",
        read.data
    );

    // Status goes through the status subresource...
    let patched = widgets
        .patch_status(
            "w1",
            &PatchParams::default(),
            &Patch::Merge(json!({ "status": { "phase": "Ready" } })),
        )
        .await
        .expect("patch Widget status");
    assert_eq!(patched.data["status"]["phase"], "Ready");
    // ...and a status change through the main resource is ignored.
    let main = widgets
        .patch(
            "w1",
            &PatchParams::default(),
            &Patch::Merge(json!({ "spec": { "size": 5 }, "status": { "phase": "Hacked" } })),
        )
        .await
        .expect("patch Widget");
    assert_eq!(main.data["spec"]["size"], 5);
    assert_eq!(main.data["status"]["phase"], "Ready");

    let read = widgets.get("w1").await.expect("read Widget again");
    assert_eq!(read.data["status"]["phase"], "Ready");
    assert_eq!(read.data["spec"]["size"], 5);
}

#[tokio::test]
async fn secret_round_trip() {
    let cp = ControlPlane::shared();
    let client = cp.kube_client().await;
    let ns = unique_name("smoke-secret");
    cp.create_namespace(&ns).await.expect("create namespace");

    let secrets: Api<Secret> = Api::namespaced(client, &ns);
    let secret = Secret {
        metadata: ObjectMeta {
            name: Some("creds".into()),
            ..Default::default()
        },
        string_data: Some([("token".to_string(), "s3cr3t".to_string())].into()),
        ..Default::default()
    };
    secrets
        .create(&PostParams::default(), &secret)
        .await
        .expect("create Secret");
    let read = secrets.get("creds").await.expect("read Secret");
    let data = read.data.expect("Secret has data");
    assert_eq!(data["token"].0, b"s3cr3t");

    // The same through the built kubectl.
    let out = cp
        .kubectl()
        .args([
            "get",
            "secret",
            "creds",
            "-n",
            &ns,
            "-o",
            "jsonpath={.data.token}",
        ])
        .output()
        .expect("run kubectl");
    assert!(
        out.status.success(),
        "kubectl get secret: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout), "czNjcjN0"); // base64("s3cr3t")
}

#[tokio::test]
async fn service_account_without_rbac_is_forbidden() {
    let cp = ControlPlane::shared();
    let client = cp.kube_client().await;
    let ns = unique_name("smoke-rbac");
    cp.create_namespace(&ns).await.expect("create namespace");

    let accounts: Api<ServiceAccount> = Api::namespaced(client, &ns);
    let sa = ServiceAccount {
        metadata: ObjectMeta {
            name: Some("nobody".into()),
            ..Default::default()
        },
        ..Default::default()
    };
    accounts
        .create(&PostParams::default(), &sa)
        .await
        .expect("create ServiceAccount");

    // No kube-controller-manager here: tokens come from the TokenRequest API.
    let request = TokenRequest {
        spec: TokenRequestSpec {
            expiration_seconds: Some(600),
            ..Default::default()
        },
        ..Default::default()
    };
    let issued = accounts
        .create_token_request("nobody", &PostParams::default(), &request)
        .await
        .expect("TokenRequest");
    let token = issued.status.expect("TokenRequest status").token;
    assert!(!token.is_empty());

    let sa_client = cp.client_with_token(&token).await.expect("token client");

    // The token authenticates (401 would fail here)...
    let review = Api::<SelfSubjectReview>::all(sa_client.clone())
        .create(&PostParams::default(), &SelfSubjectReview::default())
        .await
        .expect("SelfSubjectReview with the ServiceAccount token");
    let username = review
        .status
        .and_then(|s| s.user_info)
        .and_then(|u| u.username);
    assert_eq!(username, Some(format!("system:serviceaccount:{ns}:nobody")));

    // ...but RBAC grants it nothing: reading secrets is forbidden.
    let r = Api::<Secret>::namespaced(sa_client, &ns)
        .list(&Default::default())
        .await;
    assert_eq!(api_code(&r), Some(403), "expected 403 Forbidden, got {r:?}");
}

/// A private control plane: stop and restart the apiserver (data survives in
/// etcd), then tear it down and check its processes are gone.
#[tokio::test]
async fn private_control_plane_restarts_apiserver_and_tears_down() {
    let cp = ControlPlane::start().expect("start private control plane");
    let ns = unique_name("smoke-restart");
    cp.create_namespace(&ns).await.expect("create namespace");

    let pids = std::fs::read_to_string(cp.dir().join("pids")).expect("pids file");
    let pids: Vec<u32> = pids
        .lines()
        .filter_map(|l| l.split_whitespace().nth(1)?.parse().ok())
        .collect();
    assert_eq!(pids.len(), 2, "etcd and kube-apiserver recorded");

    cp.stop_apiserver().expect("stop apiserver");
    let r = cp
        .try_kube_client()
        .await
        .expect("client")
        .apiserver_version()
        .await;
    assert!(r.is_err(), "apiserver should be down: {r:?}");

    cp.start_apiserver().expect("start apiserver again");
    let client = cp.kube_client().await;
    let got = Api::<Namespace>::all(client)
        .get(&ns)
        .await
        .expect("namespace survived restart");
    assert_eq!(got.metadata.name.as_deref(), Some(ns.as_str()));

    let current: Vec<u32> = std::fs::read_to_string(cp.dir().join("pids"))
        .expect("pids file")
        .lines()
        .filter_map(|l| l.split_whitespace().nth(1)?.parse().ok())
        .collect();
    let dir = cp.dir().to_path_buf();
    drop(cp);
    assert!(!dir.exists(), "state dir removed by down.sh");
    for pid in pids.iter().chain(&current) {
        assert!(
            !std::path::Path::new(&format!("/proc/{pid}")).exists()
                || std::fs::read_to_string(format!("/proc/{pid}/stat"))
                    .is_ok_and(|s| s.contains(") Z ")),
            "process {pid} still running after drop"
        );
    }
}
