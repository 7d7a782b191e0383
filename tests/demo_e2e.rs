//! `qlik-automations-operator demo --exit-after-ready`, run as a user would: it must print
//! every example Ready, exit 0, and leave no control plane behind.

// Tests state what must hold with unwrap/expect; the crate's lints forbid them elsewhere.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::{
    io::Read,
    path::Path,
    process::{Command, Stdio},
    time::{Duration, Instant},
};

/// Long enough for a cold build of the control plane on 2 cores.
const DEADLINE: Duration = Duration::from_secs(30 * 60);

/// Processes whose command line mentions `dir`.
fn processes_using(dir: &Path) -> Vec<String> {
    let needle = dir.display().to_string();
    let mut found = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        if !name.chars().all(|c| c.is_ascii_digit()) {
            continue;
        }
        if let Ok(raw) = std::fs::read(entry.path().join("cmdline")) {
            let cmdline = String::from_utf8_lossy(&raw).replace('\0', " ");
            if cmdline.contains(&needle) {
                found.push(format!("{name}: {cmdline}"));
            }
        }
    }
    found
}

#[test]
fn the_demo_shows_every_example_ready_and_leaves_nothing_running() {
    let scratch = tempfile::tempdir().unwrap();
    let dir = scratch.path().join("demo");
    let mut child = Command::new(env!("CARGO_BIN_EXE_qlik-automations-operator"))
        .args(["demo", "--exit-after-ready", "--dir"])
        .arg(&dir)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdout_pipe = child.stdout.take().unwrap();
    let mut stderr_pipe = child.stderr.take().unwrap();
    let stdout = std::thread::spawn(move || {
        let mut s = String::new();
        stdout_pipe.read_to_string(&mut s).unwrap();
        s
    });
    let stderr = std::thread::spawn(move || {
        let mut s = String::new();
        stderr_pipe.read_to_string(&mut s).unwrap();
        s
    });
    let started = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if started.elapsed() > DEADLINE {
            let _ = child.kill();
            let _ = child.wait();
            panic!("the demo did not finish within {DEADLINE:?}");
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    let stdout = stdout.join().unwrap();
    let stderr = stderr.join().unwrap();
    assert!(
        status.success(),
        "demo failed ({status}):\n{stdout}\n{stderr}"
    );

    // Progress lines say what it does, in order.
    let steps = [
        "==> Starting a local Kubernetes control plane",
        "==> Starting the Qlik Automations API emulator",
        "==> Installing the CRDs",
        "==> Starting the operator",
        "==> Creating the connection Secret",
        "==> Applying examples/",
        "==> Waiting until every object is Ready",
        "==> kubectl get qlik -A -o wide",
        "==> Done: nothing is left running",
    ];
    let mut at = 0;
    for step in steps {
        let found = stdout[at..]
            .find(step)
            .unwrap_or_else(|| panic!("{step:?} (in order) in:\n{stdout}"));
        at += found + step.len();
    }

    // The table: both automations and the settings, each Ready True, with the wide columns.
    let table = &stdout[stdout.find("==> kubectl get qlik -A -o wide").unwrap()..];
    assert!(
        table.contains("AUTOMATION ID") && table.contains("OWNER"),
        "{table}"
    );
    for (kind, name) in [
        ("qlikautomation.automations.qlik.dev", "nightly-reload"),
        ("qlikautomation.automations.qlik.dev", "webhook-sync"),
        (
            "qlikautomationsettings.automations.qlik.dev",
            "tenant-settings",
        ),
    ] {
        let row = table
            .lines()
            .find(|l| l.contains(&format!("{kind}/{name} ")))
            .unwrap_or_else(|| panic!("no row for {name} in:\n{table}"));
        let columns: Vec<&str> = row.split_whitespace().collect();
        assert_eq!(columns[0], "default", "{row}");
        assert!(columns.contains(&"True"), "{name} is not Ready: {row}");
    }
    let automation_rows: Vec<&str> = table
        .lines()
        .filter(|l| l.contains("qlikautomation.automations.qlik.dev/"))
        .collect();
    for row in automation_rows {
        assert!(row.contains("available"), "{row}");
        assert!(row.contains("demo-admin"), "owner column: {row}");
    }

    // Nothing is left behind: the state dir is gone and no process (etcd, kube-apiserver,
    // watchdog) still refers to it.
    assert!(!dir.exists(), "{} still exists", dir.display());
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let left = processes_using(&dir);
        if left.is_empty() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "still running after the demo exited:\n{}",
            left.join("\n")
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}
