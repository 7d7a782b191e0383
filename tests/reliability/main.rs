//! Reliability: "nothing lost, nothing duplicated, nobody let in".
//!
//! Each test drives the operator binary against a real kube-apiserver and the emulator (or a
//! hostile TLS server) and asserts an end state, not just that something ran. One test binary,
//! so one shared control plane; a module per concern:
//!
//! * [`faults`] — the tenant misbehaves. `fault_storm_*`: 200 objects created, updated and
//!   deleted while the tenant answers 30 % 503s, 5 % dropped connections (half of them after
//!   the work was done), 10 % 429s and random latency; afterwards the tenant equals the
//!   declared state exactly. `an_ambiguous_create_*`: a create whose answer is lost is found
//!   again even when the object is renamed before the operator looks for it.
//!   `a_short_tenant_outage_*`: every object recovers within seconds of an outage.
//! * [`disruption`] — the operator or the control plane goes away. `sigkill_*`: the operator
//!   is SIGKILLed at random moments during creates, updates and deletes of 100 objects, with
//!   the same end-state guarantee. `apiserver_outage_*`, `an_operator_started_while_*`:
//!   kube-apiserver stopped and started under (or before) a running operator.
//! * [`bad_input`] — `admission_*` / `specs_the_tenant_refuses_*`: bad input refused at
//!   admission naming the field, or by Qlik with its detail in the condition and no retry
//!   storm.
//! * [`secrets`] — `secrets_*`, `a_secret_ref_*`, `tls_*`: keys and execution tokens never
//!   leak, Secrets never cross namespaces, TLS is verified unless explicitly (and loudly)
//!   turned off.
//!
//! [`end_state`] holds the declared state and the exact end-state comparison, [`specs`] the
//! manifests built field by field. The seeded fuzz of the client over HTTP needs no
//! Kubernetes: it is `tests/client_fuzz.rs`.
//!
//! Every test prints the figures `RELIABILITY.md` quotes (run with `-- --nocapture`).

// Tests state what must hold with unwrap/expect; the crate's lints forbid them elsewhere.
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "../support/mod.rs"]
mod support;

mod bad_input;
mod disruption;
mod end_state;
mod faults;
mod secrets;
mod specs;

use std::{path::Path, time::Duration};

use qlik_automations_operator::emulator::EmulatorConfig;

use support::{
    control_plane::unique_name,
    operator::{OperatorProcess, free_addr, run_args},
};

/// Qlik's limits (1000 reads, 100 writes a minute) scaled up by the same factor on the
/// emulator and the operator, so a run takes minutes, not hours, and both sides still agree.
const RATE_SCALE: u32 = 20;
const TIER1_PER_MINUTE: u32 = 1000 * RATE_SCALE;
const TIER2_PER_MINUTE: u32 = 100 * RATE_SCALE;

const WAIT: Duration = Duration::from_secs(90);

/// The emulator's side of the scaled rate limits.
fn scaled(c: &mut EmulatorConfig) {
    c.tier1_per_minute = TIER1_PER_MINUTE;
    c.tier2_per_minute = TIER2_PER_MINUTE;
}

/// Starts the operator binary watching `namespaces` through `kubeconfig`, with `RUST_LOG`
/// `rust_log`, a fixed health address (so a test can ask `/healthz` and `/readyz`), the
/// scaled rate limits, short resync and view intervals unless `extra` sets them, and `extra`.
/// Its log is `<temp>/qao-e2e-logs/reliability-<namespace>-*.log`.
fn start_operator(
    kubeconfig: &Path,
    namespaces: &[&str],
    rust_log: &str,
    extra: &[&str],
) -> OperatorProcess {
    let (tier1, tier2) = (TIER1_PER_MINUTE.to_string(), TIER2_PER_MINUTE.to_string());
    let mut flags = vec!["--tier1-per-minute", &tier1, "--tier2-per-minute", &tier2];
    flags.extend_from_slice(extra);
    OperatorProcess::start(
        &format!("reliability-{}", unique_name(namespaces[0])),
        kubeconfig,
        &run_args(&namespaces.join(","), &free_addr().to_string(), &flags),
        &[("RUST_LOG".to_string(), rust_log.to_string())],
    )
}
