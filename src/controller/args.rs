//! The flags of `qlik-automations-operator run`.

use std::net::SocketAddr;

/// Flags of `qlik-automations-operator run`; each is also read from an environment variable.
#[derive(Debug, Clone, clap::Args)]
pub struct RunArgs {
    /// Namespaces to watch, comma separated; all namespaces when empty.
    #[arg(long, env = "QAO_NAMESPACES", value_delimiter = ',')]
    pub namespaces: Vec<String>,
    /// Only reconcile objects matching this label selector (e.g. `team=data`).
    #[arg(long, env = "QAO_LABEL_SELECTOR")]
    pub label_selector: Option<String>,
    /// A Secret (`namespace/name`) with `tenantUrl` and `apiKey` used by objects that set no
    /// `spec.connection`.
    #[arg(long, env = "QAO_DEFAULT_CONNECTION")]
    pub default_connection: Option<String>,
    /// How many objects are reconciled at once.
    #[arg(long, env = "QAO_CONCURRENCY", default_value_t = 8)]
    pub concurrency: u16,
    /// How often a converged object is compared with the tenant again, in seconds.
    #[arg(long, env = "QAO_RESYNC_SECONDS", default_value_t = 300)]
    pub resync_seconds: u64,
    /// How old a tenant's list view may get before a reconcile refreshes it, in seconds
    /// (default: the resync interval, so a converged tenant costs one list pass per resync).
    /// Out-of-band edits are noticed within this time.
    #[arg(long, env = "QAO_VIEW_MAX_AGE_SECONDS")]
    pub view_max_age_seconds: Option<u64>,
    /// Address of the `/metrics`, `/healthz` and `/readyz` endpoints.
    #[arg(long, env = "QAO_LISTEN", default_value = "0.0.0.0:8080")]
    pub listen: SocketAddr,
    /// Elect one active replica through a Lease (turn on when running more than one).
    #[arg(long, env = "QAO_LEADER_ELECTION", default_value_t = false)]
    pub leader_election: bool,
    /// Namespace of the leader-election Lease (default: the pod's namespace, else `default`).
    #[arg(long, env = "QAO_LEASE_NAMESPACE")]
    pub lease_namespace: Option<String>,
    /// Name of the leader-election Lease.
    #[arg(
        long,
        env = "QAO_LEASE_NAME",
        default_value = "qlik-automations-operator"
    )]
    pub lease_name: String,
    /// Qlik Tier 1 (read) requests per minute per tenant and key.
    #[arg(long, env = "QAO_TIER1_PER_MINUTE", default_value_t = 1000)]
    pub tier1_per_minute: u32,
    /// Qlik Tier 2 (write) requests per minute per tenant and key.
    #[arg(long, env = "QAO_TIER2_PER_MINUTE", default_value_t = 100)]
    pub tier2_per_minute: u32,
    /// The window Qlik counts the tiers over, in seconds (the per-minute limits scaled to
    /// it): 300 on the live service, so a burst that fits goes at once, then paces.
    #[arg(long, env = "QAO_RATE_WINDOW_SECONDS", default_value_t = 300, value_parser = clap::value_parser!(u64).range(1..))]
    pub rate_window_seconds: u64,
    /// The share (0–1) of each identity's Tier 1 budget the tenant views may spend listing
    /// between reconciles, so an edit or delete made outside Kubernetes is noticed within
    /// seconds; 0 leaves it to the resync.
    #[arg(long, env = "QAO_READ_BUDGET_SHARE", default_value_t = 0.1, value_parser = parse_share)]
    pub read_budget_share: f64,
    /// Timeout of one request to Qlik, in seconds.
    #[arg(long, env = "QAO_REQUEST_TIMEOUT_SECONDS", default_value_t = 30)]
    pub request_timeout_seconds: u64,
    /// Do not verify the tenant's TLS certificate. Dangerous; for test tenants only.
    #[arg(long, env = "QAO_INSECURE_SKIP_TLS_VERIFY", default_value_t = false)]
    pub insecure_skip_tls_verify: bool,
}

/// A share of a budget: a number from 0 to 1.
fn parse_share(value: &str) -> Result<f64, String> {
    match value.trim().parse::<f64>() {
        Ok(share) if (0.0..=1.0).contains(&share) => Ok(share),
        _ => Err(format!("{value:?} is not a share from 0 to 1")),
    }
}
