//! Test support shared by the integration tests and the benchmark harness.
//!
//! A test binary at `tests/NAME.rs` declares it with `mod support;`; a binary in a directory
//! (`tests/reliability/main.rs`) or a bench names the file:
//! `#[path = "../support/mod.rs"] mod support;`.
//!
//! * [`control_plane`]: a real local etcd + kube-apiserver, one per test binary or private.
//! * [`operator`]: the CRDs installed, the operator binary as a child process (with its
//!   `/healthz` and `/readyz` when started with a fixed `--listen` address), an emulator with
//!   known keys, test namespaces and connection Secrets.
//! * [`chart`]: `helm template` of the chart and commands run off the async runtime.
//! * [`client`]: a Qlik client configuration with test-sized limits and retries.
//! * [`exposition`]: the Prometheus text exposition parsed into samples.
//! * [`plugin`]: `kubectl-qlik` and other commands run, with their output checked for keys.
//! * [`fuzz`]: the seeded generator of malformed answers (bodies, statuses, headers) behind
//!   both the client's unit-level fuzz (`src/qlik/client.rs`, which `include!`s it) and the
//!   HTTP fuzz (`tests/client_fuzz.rs`).
//!
//! Every binary uses only part of it.
#![allow(dead_code)]

pub mod chart;
pub mod client;
pub mod control_plane;
pub mod exposition;
pub mod fuzz;
pub mod operator;
pub mod plugin;
