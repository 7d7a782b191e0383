//! Nobody let in: keys and execution tokens never leak, a Secret never crosses namespaces,
//! TLS is verified unless explicitly (and loudly) turned off.

use std::{
    process::{Child, Command, Stdio},
    sync::{Arc, Mutex},
    time::Duration,
};

use base64::Engine;
use kube::{
    Api,
    api::{ListParams, Patch, PatchParams, PostParams},
};
use qlik_automations_operator::{
    crd::{ConditionStatus, QlikAutomation, QlikAutomationSettings},
    emulator::{FaultConfig, FaultRule},
    qlik::{self, RetryPolicy},
};
use serde_json::{Value, json};

use crate::{
    WAIT,
    end_state::{Want, manifest, workspace_json},
    scaled,
    specs::{automation_spec_with, dynamic, dynamic_api, refusal, schedule_with},
    start_operator,
    support::{
        control_plane::ControlPlane,
        operator::{
            ADMIN_KEY, DEBUG_LOG, TestNamespace, USER_KEY, admin_client, emulator, free_addr,
            ready_status, wait_for, wait_ready, wait_reason,
        },
    },
};

/// A key no tenant accepts; it must not show up anywhere either.
const WRONG_KEY: &str = "wrong-key-7c1e0d9a-must-never-be-printed";
/// An OAuth M2M client's secret, and one the tenant refuses.
const BOT_SECRET: &str = "bot-secret-2f8d4b61-must-never-be-printed";
const WRONG_BOT_SECRET: &str = "wrong-bot-secret-93ce05a7-must-never-be-printed";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn secrets_never_appear_in_logs_events_status_or_errors_at_trace_level() {
    let ns = TestNamespace::new("secrets").await;
    // Tokens live 2 s, so that several are issued (and renewed) while the scan's work runs.
    let emu = emulator(|c| {
        scaled(c);
        c.oauth_clients = vec![qlik_automations_operator::emulator::OAuthClient::new(
            "scan-bot", BOT_SECRET,
        )];
        c.oauth_token_ttl = Duration::from_secs(2);
    })
    .await;
    for (name, secret) in [
        ("qlik-bot", BOT_SECRET),
        ("qlik-bot-wrong", WRONG_BOT_SECRET),
    ] {
        ns.secret(
            name,
            &[
                ("tenantUrl", &emu.base_url()),
                ("clientId", "scan-bot"),
                ("clientSecret", secret),
            ],
        )
        .await;
    }
    ns.connection_secret("qlik", &emu.base_url(), USER_KEY)
        .await;
    ns.connection_secret("qlik-admin", &emu.base_url(), ADMIN_KEY)
        .await;
    ns.connection_secret("qlik-wrong", &emu.base_url(), WRONG_KEY)
        .await;
    // Some failures, so that retry and error paths log at trace level too.
    emu.set_faults(FaultConfig::with_rules(vec![
        FaultRule::all().with_error(0.15, 503),
        FaultRule::all().with_drop(0.05, true),
    ]));
    let mut op = start_operator(
        &ControlPlane::shared().kubeconfig_path(),
        &[&ns.name],
        "trace",
        &[],
    );
    let api: Api<QlikAutomation> = ns.api();
    let automations = dynamic_api::<QlikAutomation>(&ns.client, &ns.name);
    let make =
        |name: &str, changes: Value| dynamic("QlikAutomation", name, automation_spec_with(changes));
    for (name, changes) in [
        (
            "triggered",
            json!({"workspace": workspace_json("triggered"), "schedules": []}),
        ),
        (
            "webhook",
            json!({"workspace": workspace_json("webhook"), "schedules": []}),
        ),
        ("scheduled", json!({})),
        (
            "admin-owned",
            json!({"connection": {"secretRef": {"name": "qlik-admin"}}}),
        ),
        (
            "refused",
            json!({"schedules": [schedule_with(json!({"timezone": "Mars/Olympus_Mons"}))]}),
        ),
        (
            "wrong-key",
            json!({"connection": {"secretRef": {"name": "qlik-wrong"}}}),
        ),
        (
            "bot-owned",
            json!({"connection": {"secretRef": {"name": "qlik-bot"}}}),
        ),
        (
            "bot-refused",
            json!({"connection": {"secretRef": {"name": "qlik-bot-wrong"}}}),
        ),
    ] {
        automations
            .create(&PostParams::default(), &make(name, changes))
            .await
            .unwrap();
    }
    ns.apply_yaml::<QlikAutomationSettings>(
        "apiVersion: automations.qlik.dev/v1alpha1\nkind: QlikAutomationSettings\nmetadata:\n  name: tenant\nspec:\n  connection:\n    secretRef:\n      name: qlik-admin\n  automationsEnabled: true\n",
    )
    .await;
    api.patch(
        "triggered",
        &PatchParams::default(),
        &Patch::Merge(json!({"metadata": {"annotations": {"automations.qlik.dev/run-requested-at": "first"}}})),
    )
    .await
    .unwrap();
    wait_for("the requested run handled", WAIT, || async {
        let a = api.get("triggered").await.ok()?;
        (a.status?.last_handled_run_request.as_deref() == Some("first")).then_some(())
    })
    .await;
    wait_reason(&api, "refused", "InvalidSpec").await;
    wait_reason(&api, "wrong-key", "Unauthorized").await;
    wait_reason(&api, "bot-refused", "Unauthorized").await;
    for name in ["webhook", "scheduled", "admin-owned", "bot-owned"] {
        wait_ready(&api, name).await;
    }
    emu.set_faults(FaultConfig::none());
    // An out-of-band edit, set back: a full read-diff-write cycle of a token-bearing detail.
    let id = wait_ready(&api, "triggered")
        .await
        .status
        .unwrap()
        .automation_id
        .unwrap();
    admin_client(&emu)
        .update_automation(
            &id,
            &qlik::model::AutomationRequest {
                description: Some("edited by hand".into()),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    wait_for("the edit set back", WAIT, || async {
        let all = emu.automations();
        let remote = all.iter().find(|a| a["id"] == id.as_str())?;
        (remote["description"] == "valid apart from one field").then_some(())
    })
    .await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    op.assert_healthy().await;

    // Everything a secret could leak into.
    let b64 = base64::engine::general_purpose::STANDARD;
    let mut secrets: Vec<(String, String)> = Vec::new();
    for (what, key) in [
        ("user key", USER_KEY),
        ("admin key", ADMIN_KEY),
        ("wrong key", WRONG_KEY),
        ("OAuth client secret", BOT_SECRET),
        ("refused OAuth client secret", WRONG_BOT_SECRET),
    ] {
        secrets.push((what.into(), key.into()));
        secrets.push((format!("{what} (base64)"), b64.encode(key)));
    }
    let tokens: Vec<String> = emu
        .automations()
        .iter()
        .filter_map(|a| a["executionToken"].as_str().map(str::to_owned))
        .collect();
    assert!(
        tokens.len() >= 4,
        "execution tokens to look for: {tokens:?}"
    );
    for t in &tokens {
        secrets.push(("execution token".into(), t.clone()));
    }
    let access_tokens = emu.issued_tokens();
    assert!(
        access_tokens.len() >= 2,
        "access tokens to look for: {}",
        access_tokens.len()
    );
    for t in &access_tokens {
        secrets.push(("OAuth access token".into(), t.clone()));
    }
    let log = op.log();
    let events: Vec<String> = ns
        .events()
        .await
        .iter()
        .map(|e| serde_json::to_string(e).unwrap())
        .collect();
    let objects: Vec<String> = api
        .list(&ListParams::default())
        .await
        .unwrap()
        .items
        .iter()
        .map(|o| serde_json::to_string(o).unwrap())
        .chain(
            ns.api::<QlikAutomationSettings>()
                .list(&ListParams::default())
                .await
                .unwrap()
                .items
                .iter()
                .map(|o| serde_json::to_string(o).unwrap()),
        )
        .collect();
    let messages: Vec<String> = api
        .list(&ListParams::default())
        .await
        .unwrap()
        .items
        .iter()
        .flat_map(|o| o.status.clone().unwrap_or_default().conditions)
        .map(|c| c.message)
        .collect();
    let mut leaks = Vec::new();
    for (what, secret) in &secrets {
        let mut places = Vec::new();
        if log.contains(secret.as_str()) {
            places.push("operator log".to_string());
        }
        places.extend(
            events
                .iter()
                .filter(|e| e.contains(secret.as_str()))
                .map(|e| format!("Event {e}")),
        );
        places.extend(
            objects
                .iter()
                .filter(|o| o.contains(secret.as_str()))
                .map(|_| "an object (status/annotations)".to_string()),
        );
        if !places.is_empty() {
            leaks.push(format!("{what} found in {places:?}"));
        }
    }
    let trace_lines = log.lines().filter(|l| l.contains("TRACE")).count();
    assert!(
        trace_lines > 100,
        "RUST_LOG=trace produced only {trace_lines} TRACE lines"
    );
    assert!(
        messages
            .iter()
            .any(|m| m.contains("Unauthorized") || m.contains("unauthorized")),
        "the wrong key's failure is reported: {messages:?}"
    );
    assert!(leaks.is_empty(), "secrets leaked:\n{}", leaks.join("\n"));
    println!(
        "RELIABILITY secrets: scanned {} log lines ({} TRACE, {} bytes), {} Events, {} objects (status, annotations, \
         condition messages) for {} API keys, 2 OAuth client secrets (+base64), {} execution tokens and {} access tokens: 0 found",
        log.lines().count(),
        trace_lines,
        log.len(),
        events.len(),
        objects.len(),
        3,
        tokens.len(),
        access_tokens.len()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_secret_ref_never_leaves_the_namespace() {
    let ns = TestNamespace::new("xns-home").await;
    let other = TestNamespace::new("xns-other").await;
    let emu = emulator(scaled).await;
    // The Secret exists, but only in the other namespace.
    other
        .connection_secret("elsewhere", &emu.base_url(), USER_KEY)
        .await;
    // The operator watches both namespaces and could read either Secret.
    let op = start_operator(
        &ControlPlane::shared().kubeconfig_path(),
        &[&ns.name, &other.name],
        DEBUG_LOG,
        &[],
    );
    let automations = dynamic_api::<QlikAutomation>(&ns.client, &ns.name);
    automations
        .create(
            &PostParams::default(),
            &dynamic(
                "QlikAutomation",
                "borrower",
                automation_spec_with(json!({"connection": {"secretRef": {"name": "elsewhere"}}})),
            ),
        )
        .await
        .unwrap();
    ns.apply_yaml::<QlikAutomationSettings>(
        "apiVersion: automations.qlik.dev/v1alpha1\nkind: QlikAutomationSettings\nmetadata:\n  name: borrower\nspec:\n  connection:\n    secretRef:\n      name: elsewhere\n  automationsEnabled: false\n",
    )
    .await;
    // Naming the other namespace is refused outright.
    let err = automations
        .create(
            &PostParams::default(),
            &dynamic(
                "QlikAutomation",
                "explicit",
                automation_spec_with(json!({"connection": {"secretRef": {"name": "elsewhere", "namespace": other.name}}})),
            ),
        )
        .await
        .unwrap_err();
    let (code, text) = refusal(&err);
    assert!(
        code == 422 && text.contains("spec.connection.secretRef.namespace"),
        "{text}"
    );

    let api: Api<QlikAutomation> = ns.api();
    let a = wait_reason(&api, "borrower", "ConnectionError").await;
    let (_, _, message) = ready_status(&a).unwrap();
    assert!(
        message.contains(&format!("{}/elsewhere", ns.name)) && message.contains("does not exist"),
        "{message}"
    );
    let settings: Api<QlikAutomationSettings> = ns.api();
    let s = wait_for("settings ConnectionError", WAIT, || async {
        let s = settings.get("borrower").await.ok()?;
        let c = s
            .status?
            .conditions
            .into_iter()
            .find(|c| c.type_ == "Ready")?;
        (c.reason == "ConnectionError").then_some(c.message)
    })
    .await;
    assert!(s.contains(&format!("{}/elsewhere", ns.name)), "{s}");
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(emu.counters().total, 0, "the tenant was never called");
    assert!(emu.automations().is_empty());

    // The same name in its own namespace is what it uses.
    ns.connection_secret("elsewhere", &emu.base_url(), USER_KEY)
        .await;
    wait_ready(&api, "borrower").await;
    assert_eq!(emu.automations().len(), 1);
    drop(op);
    println!(
        "RELIABILITY secret_namespace: secretRef.namespace refused at admission; secretRef.name resolved only in the \
         object's namespace (ConnectionError while the Secret existed only elsewhere, 0 tenant requests; Ready once it existed at home)"
    );
}

/// `openssl s_server` with a fresh self-signed certificate for 127.0.0.1.
struct SelfSignedServer {
    child: Child,
    port: u16,
    _dir: tempfile::TempDir,
}

impl SelfSignedServer {
    async fn start() -> SelfSignedServer {
        let dir = tempfile::tempdir().unwrap();
        let (cert, key) = (dir.path().join("cert.pem"), dir.path().join("key.pem"));
        let out = Command::new("openssl")
            .args([
                "req",
                "-x509",
                "-newkey",
                "rsa:2048",
                "-nodes",
                "-days",
                "2",
                "-subj",
                "/CN=127.0.0.1",
            ])
            .args(["-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost"])
            .arg("-keyout")
            .arg(&key)
            .arg("-out")
            .arg(&cert)
            .output()
            .expect("the openssl command is needed to make a self-signed certificate");
        assert!(
            out.status.success(),
            "openssl req: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let port = free_addr().port();
        let child = Command::new("openssl")
            .args(["s_server", "-quiet", "-www", "-accept"])
            .arg(format!("127.0.0.1:{port}"))
            .arg("-cert")
            .arg(&cert)
            .arg("-key")
            .arg(&key)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        wait_for(
            "openssl s_server listening",
            Duration::from_secs(15),
            || async {
                tokio::net::TcpStream::connect(("127.0.0.1", port))
                    .await
                    .ok()
                    .map(drop)
            },
        )
        .await;
        SelfSignedServer {
            child,
            port,
            _dir: dir,
        }
    }

    fn url(&self) -> String {
        format!("https://127.0.0.1:{}", self.port)
    }
}

impl Drop for SelfSignedServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A `MakeWriter` collecting log output in memory.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_is_verified_unless_explicitly_and_loudly_turned_off() {
    qlik_automations_operator::install_crypto_provider();
    let server = SelfSignedServer::start().await;
    const WARNING: &str = "TLS certificate verification is OFF";

    // The client: refused with a certificate error by default.
    let mut config = qlik::ClientConfig::new(server.url(), qlik::ApiKey::new(USER_KEY));
    config.retry = RetryPolicy::none();
    let strict = qlik::QlikClient::new(config.clone()).unwrap();
    let err = strict.get_settings().await.unwrap_err();
    let refused = err.to_string();
    assert!(refused.to_lowercase().contains("certificate"), "{refused}");
    // Accepted (an HTML page is not JSON, so some other error) only with the option, which warns.
    config.insecure_skip_tls_verify = true;
    let captured = Captured::default();
    let writer = captured.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_writer(move || writer.clone())
        .with_ansi(false)
        .finish();
    let insecure =
        tracing::subscriber::with_default(subscriber, || qlik::QlikClient::new(config)).unwrap();
    let warned = String::from_utf8(captured.0.lock().unwrap().clone()).unwrap();
    assert!(
        warned.contains("WARN") && warned.contains(WARNING),
        "{warned}"
    );
    let accepted = match insecure.get_settings().await {
        Ok(s) => format!("{s:?}"),
        Err(e) => {
            assert!(!e.to_string().to_lowercase().contains("certificate"), "{e}");
            e.to_string()
        }
    };

    // The operator: the same, end to end.
    let strict_ns = TestNamespace::new("tls-strict").await;
    let loose_ns = TestNamespace::new("tls-insecure").await;
    for ns in [&strict_ns, &loose_ns] {
        ns.connection_secret("qlik", &server.url(), USER_KEY).await;
    }
    let kubeconfig = ControlPlane::shared().kubeconfig_path();
    let mut strict_op = start_operator(&kubeconfig, &[&strict_ns.name], DEBUG_LOG, &[]);
    let mut loose_op = start_operator(
        &kubeconfig,
        &[&loose_ns.name],
        DEBUG_LOG,
        &["--insecure-skip-tls-verify"],
    );
    for ns in [&strict_ns, &loose_ns] {
        ns.api::<QlikAutomation>()
            .create(
                &PostParams::default(),
                &manifest(
                    "tls",
                    &Want {
                        remote_name: "tls".into(),
                        description: String::new(),
                        enabled: true,
                        schedules: vec![],
                        run_mode: "manual",
                    },
                ),
            )
            .await
            .unwrap();
    }
    let message_of = |ns: &TestNamespace| {
        let api: Api<QlikAutomation> = ns.api();
        async move {
            wait_for("a failure condition", WAIT, || async {
                let a = api.get("tls").await.ok()?;
                let (status, reason, message) = ready_status(&a)?;
                (status == ConditionStatus::False).then_some(format!("{reason}: {message}"))
            })
            .await
        }
    };
    let strict_message = message_of(&strict_ns).await;
    assert!(
        strict_message.to_lowercase().contains("certificate"),
        "{strict_message}"
    );
    let loose_message = message_of(&loose_ns).await;
    assert!(
        !loose_message.to_lowercase().contains("certificate"),
        "{loose_message}"
    );
    assert!(
        loose_op.log().contains(WARNING),
        "the operator did not warn:\n{}",
        loose_op.log_tail(30)
    );
    assert!(!strict_op.log().contains(WARNING));
    strict_op.assert_healthy().await;
    loose_op.assert_healthy().await;
    println!(
        "RELIABILITY tls: self-signed tenant refused by default ({refused:?}; operator: {strict_message:?}); \
         with the option the handshake passes ({accepted:?}; operator: {loose_message:?}) and '{WARNING}' is logged at WARN"
    );
}
