//! The operator: both reconcilers, the watches that feed them, and the process around them
//! (health and metrics endpoints, leader election, graceful shutdown).
//!
//! Where each decision lives (plain values in, answers out, table-tested):
//! - [`plan`]: which writes close the gap between the spec and the remote (the diff), and
//!   whether the detail must be read at all.
//! - [`decide`]: link, recreate or report a vanished remote; whether a reconcile request or
//!   a run request is new; how long to follow a run; delete or orphan; which of two
//!   claimants of a remote wins; the status to write for an outcome or a failure.
//! - [`context::Error::requeue_after`]: how long to wait after each class of error.
//! - [`view`]: what may be answered from the tenant cache, and for how long.
//!
//! The I/O around them: [`automation`] and [`settings`] (observe → decide → act → record),
//! [`status`] (the one status writer), [`process`] and [`watches`] (wiring).

pub mod args;
pub mod automation;
pub mod claims;
pub mod conditions;
pub mod context;
pub mod decide;
pub mod leader;
pub mod metrics;
pub mod plan;
pub mod process;
pub mod server;
pub mod settings;
pub mod status;
pub mod usage;
pub mod view;
pub mod wake;
pub mod watches;

pub use args::RunArgs;
pub use context::{Context, Error, OperatorSettings};
pub use process::run;
pub use watches::Stores;
