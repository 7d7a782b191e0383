//! Prometheus metrics of the operator.

use prometheus_client::{
    encoding::{EncodeLabelSet, text::encode},
    metrics::{counter::Counter, family::Family, gauge::Gauge, histogram::Histogram},
    registry::Registry,
};

/// Labels of a reconcile outcome.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ReconcileLabels {
    /// `QlikAutomation` or `QlikAutomationSettings`.
    pub kind: String,
    /// `success` or the failure's condition reason.
    pub result: String,
}

/// Labels of a remote write.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct WriteLabels {
    /// `create`, `update`, `enable`, `disable`, `move`, `delete`, `copy`, `run`.
    pub action: String,
}

/// The metrics registry and the handles reconciles update.
pub struct Metrics {
    registry: Registry,
    /// Reconciles by kind and result.
    pub reconciles: Family<ReconcileLabels, Counter>,
    /// Reconcile durations in seconds.
    pub reconcile_seconds: Histogram,
    /// Remote writes by action.
    pub writes: Family<WriteLabels, Counter>,
    /// 1 while this replica leads (or leader election is off).
    pub leader: Gauge,
}

impl Default for Metrics {
    fn default() -> Self {
        let mut registry = Registry::with_prefix("qlik_automations_operator");
        let reconciles = Family::<ReconcileLabels, Counter>::default();
        registry.register(
            "reconciles",
            "Reconciles by kind and result",
            reconciles.clone(),
        );
        let reconcile_seconds =
            Histogram::new([0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0]);
        registry.register(
            "reconcile_duration_seconds",
            "How long reconciles take",
            reconcile_seconds.clone(),
        );
        let writes = Family::<WriteLabels, Counter>::default();
        registry.register(
            "remote_writes",
            "Writes sent to Qlik by action",
            writes.clone(),
        );
        let leader = Gauge::default();
        registry.register("leader", "1 while this replica reconciles", leader.clone());
        Metrics {
            registry,
            reconciles,
            reconcile_seconds,
            writes,
            leader,
        }
    }
}

impl Metrics {
    /// Counts a reconcile.
    pub fn reconciled(&self, kind: &str, result: &str, seconds: f64) {
        self.reconciles
            .get_or_create(&ReconcileLabels {
                kind: kind.to_owned(),
                result: result.to_owned(),
            })
            .inc();
        self.reconcile_seconds.observe(seconds);
    }

    /// Counts a remote write.
    pub fn wrote(&self, action: &str) {
        self.writes
            .get_or_create(&WriteLabels {
                action: action.to_owned(),
            })
            .inc();
    }

    /// The Prometheus text exposition of every metric.
    pub fn render(&self) -> String {
        let mut out = String::new();
        // Writing into a String cannot fail.
        let _ = encode(&mut out, &self.registry);
        out
    }
}
