//! qlik-automations-operator: makes Qlik Cloud automations declarative.
//!
//! - [`qlik`] is a typed async client for the whole Qlik Automations REST API.
//! - [`emulator`] is a faithful local implementation of that API for tests and demos.
//! - [`crd`] and [`controller`] are the operator; [`plugin`] is `kubectl qlik`; both resolve
//!   a resource's tenant and key through [`connection`].
//! - [`demo`] runs everything on one machine: `qlik-automations-operator demo`.

pub mod backoff;
pub mod connection;
pub mod controller;
pub mod crd;
pub mod demo;
pub mod emulator;
pub mod plugin;
pub mod qlik;
pub mod telemetry;

/// Installs the process-wide rustls crypto provider (ring).
///
/// Both reqwest (built without a provider of its own) and kube use rustls, and the whole
/// process must agree on one provider. Safe to call any number of times.
pub fn install_crypto_provider() {
    // An Err only means a provider is already installed, which is what we want.
    let _ = rustls::crypto::ring::default_provider().install_default();
}
