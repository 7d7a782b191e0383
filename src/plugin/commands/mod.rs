//! One module per subcommand (retry and stop share one: both act on a single run).

pub mod actions;
pub mod diff;
pub mod export;
pub mod logs;
pub mod reconcile;
pub mod run;
pub mod runs;
pub mod status;
