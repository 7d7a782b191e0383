//! Running `kubectl-qlik` (and other commands) from tests: what one invocation did, with a
//! check that no API key ever appears in its output.

use std::{path::Path, time::Duration};

use super::{
    control_plane::ControlPlane,
    operator::{ADMIN_KEY, USER_KEY},
};

/// What one command did.
#[derive(Debug)]
pub struct Out {
    /// The exit status (-1 when killed by a signal).
    pub code: i32,
    /// Everything it printed on stdout.
    pub stdout: String,
    /// Everything it printed on stderr.
    pub stderr: String,
}

impl Out {
    /// Panics with everything printed unless the exit status is `code`.
    pub fn expect_code(self, code: i32) -> Out {
        assert_eq!(self.code, code, "exit status: {self:#?}");
        self
    }

    /// Panics with everything printed unless the command succeeded.
    pub fn ok(self) -> Out {
        self.expect_code(0)
    }

    /// Neither stream contains any of `secrets`.
    pub fn assert_hides(&self, secrets: &[&str]) {
        for secret in secrets {
            assert!(
                !self.stdout.contains(secret) && !self.stderr.contains(secret),
                "a secret was printed: {self:#?}"
            );
        }
    }
}

/// Runs `cmd` (stdin closed, killed after 300 s), asynchronously so an in-process emulator
/// keeps serving meanwhile; the tests' API keys must not appear in what it printed.
pub async fn run(cmd: &mut tokio::process::Command, what: &str) -> Out {
    cmd.stdin(std::process::Stdio::null()).kill_on_drop(true);
    let output = tokio::time::timeout(Duration::from_secs(300), cmd.output())
        .await
        .unwrap_or_else(|_| panic!("{what} did not finish in 300s"))
        .unwrap_or_else(|e| panic!("cannot run {what}: {e}"));
    let out = Out {
        code: output.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    };
    out.assert_hides(&[USER_KEY, ADMIN_KEY]);
    out
}

/// `kubectl-qlik ARGS` with `KUBECONFIG=kubeconfig`, the control plane's kubectl for
/// `diff -k`, no default connection or log filter from the test's own environment, and
/// `env` on top.
pub async fn qlik_with(kubeconfig: &Path, args: &[&str], env: &[(&str, &str)]) -> Out {
    let mut cmd = tokio::process::Command::new(env!("CARGO_BIN_EXE_kubectl-qlik"));
    cmd.args(args)
        .env("KUBECONFIG", kubeconfig)
        .env("QAO_KUBECTL", ControlPlane::shared().kubectl_path())
        .env_remove("QAO_DEFAULT_CONNECTION")
        .env_remove("RUST_LOG");
    for (k, v) in env {
        cmd.env(k, v);
    }
    run(&mut cmd, &format!("kubectl-qlik {args:?}")).await
}

/// `kubectl-qlik ARGS` as the control plane's admin.
pub async fn qlik(args: &[&str]) -> Out {
    qlik_with(&ControlPlane::shared().kubeconfig_path(), args, &[]).await
}
