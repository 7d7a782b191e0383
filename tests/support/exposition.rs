//! The Prometheus/OpenMetrics text exposition, parsed the way tests need it: the plugin's own
//! reader ([`qlik_automations_operator::plugin::exposition`]), panicking on a line it cannot
//! read.

pub use qlik_automations_operator::plugin::exposition::Sample;

/// Parses the text exposition (comments skipped, label values unescaped); panics on a line it
/// cannot read.
pub fn parse(text: &str) -> Vec<Sample> {
    qlik_automations_operator::plugin::exposition::parse(text).unwrap_or_else(|e| panic!("{e}"))
}
